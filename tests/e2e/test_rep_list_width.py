"""`baton rep list` piped (80 columns): every rep's out-of-office periods are there
whole, and no line is wider than the terminal (a newcomer's trial: the table was wider
than 80 columns and cut the out-of-office column off; a long email squeezed the other
columns to a letter each)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from baton.cli import app as cli

LONG = "dana.reyes@northwind-enterprises.example.com"
LEE = "lee@fabrikam.example"


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("BATON_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.delenv("BATON_ENV", raising=False)
    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.chdir(tmp_path)
    return CliRunner()


def run(runner: CliRunner, *args: str) -> str:
    result = runner.invoke(cli, list(args))
    assert result.exit_code == 0, (args, result.output)
    return result.output


@pytest.mark.parametrize("email", [LEE, LONG])
def test_the_out_of_office_periods_are_whole_at_80_columns(runner: CliRunner, email: str) -> None:
    run(runner, "team", "add", "na")
    run(
        runner,
        "rep",
        "add",
        email,
        "--name",
        "Dana Reyes-Okafor",
        "--team",
        "na",
        "--timezone",
        "America/Los_Angeles",
    )
    run(runner, "rep", "add", "sam@lumen.example", "--name", "Sam", "--team", "na")
    run(
        runner,
        "rep",
        "away",
        email,
        "--from",
        "2026-12-07T09:00:00Z",
        "--until",
        "2026-12-14T09:00:00Z",
    )
    run(
        runner,
        "rep",
        "away",
        email,
        "--from",
        "2026-12-21T09:00:00Z",
        "--until",
        "2026-12-28T09:00:00Z",
    )
    listed = run(runner, "rep", "list")
    assert max(len(line) for line in listed.splitlines()) <= 80, listed
    for said in (
        email,
        "America/Los_Angeles",
        "2026-12-07 09:00 UTC → 2026-12-14 09:00 UTC",
        "2026-12-21 09:00 UTC → 2026-12-28 09:00 UTC",
    ):
        assert said in listed, (said, listed)
