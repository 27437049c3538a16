"""Output piped to a file or a program (cron, grep, a log alert) is never broken at
Rich's 80 columns (a newcomer's trial: `ready sqlite:///... at schema` / `revision
0025`, and `you@exam` / `ple.com` in `baton user list`). CliRunner's output is not a
terminal, as a pipe is not."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from baton.cli import app

LONG = "dana.reyes-okafor@northwind-enterprises-international.example.com"


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    deep = tmp_path / ("a-rather-long-directory-name-" * 3) / "and-one-more-segment"
    deep.mkdir(parents=True)
    monkeypatch.setenv("BATON_DATABASE_URL", f"sqlite:///{deep / 'cli.db'}")
    monkeypatch.delenv("BATON_ENV", raising=False)
    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.chdir(tmp_path)
    return CliRunner()


def run(runner: CliRunner, *args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, (args, result.output)
    return result.output


def test_a_long_line_stays_one_line(runner: CliRunner, tmp_path: Path) -> None:
    said = run(runner, "init")
    ready = [line for line in said.splitlines() if line.startswith("ready ")]
    assert len(ready) == 1 and ready[0].endswith("cli.db at schema revision " + ready[0][-4:]), said
    assert len(ready[0]) > 80  # the case the trial met


def test_a_long_email_is_never_folded_in_user_list(runner: CliRunner) -> None:
    run(runner, "init")
    run(runner, "user", "add", LONG, "--role", "marketing", "--name", "Dana Reyes-Okafor")
    listed = run(runner, "user", "list")
    assert LONG in listed, listed  # whole, on one line: greppable
    assert "admin@example.com" in listed and "one-time" in listed
