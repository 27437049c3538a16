"""`baton import` says what became of a file's rows when some were rejected: all of
them, none or some (a newcomer's trial: Maven's 8,800 rows, every one rejected for
want of an identifier, ended with "8800 row(s) rejected; all other rows were
imported")."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from baton.cli import app
from baton.cli.imports import rejected_summary

NO_IDENTIFIER = """opportunity_id,account,engage_date
1C1I7A6R,Cancity,2016-10-20
Z063OYW0,Isdom,2016-10-25
"""


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("BATON_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.delenv("BATON_ENV", raising=False)
    monkeypatch.chdir(tmp_path)
    return CliRunner()


def test_a_file_whose_rows_were_all_rejected_says_nothing_was_imported(
    runner: CliRunner, tmp_path: Path
) -> None:
    source = tmp_path / "pipeline.csv"
    source.write_text(NO_IDENTIFIER)
    errors = tmp_path / "errors.csv"
    result = runner.invoke(
        app,
        [
            "import",
            "leads",
            str(source),
            "--map",
            "engage_date=created_at",
            "--errors",
            str(errors),
        ],
    )
    assert result.exit_code == 1
    assert "all 2 rows were rejected; nothing was imported" in result.output
    assert "all other rows were imported" not in result.output
    assert len(errors.read_text().splitlines()) == 3


@pytest.mark.parametrize(
    ("rejected", "imported", "said"),
    [
        (8800, 0, "all 8,800 rows were rejected; nothing was imported"),
        (1, 0, "the only row was rejected; nothing was imported"),
        (2, 3, "2 rows rejected; the other 3 rows were imported"),
        (1, 1, "1 row rejected; the other row was imported"),
        (1200, 7600, "1,200 rows rejected; the other 7,600 rows were imported"),
    ],
)
def test_the_summary_says_all_none_or_some(rejected: int, imported: int, said: str) -> None:
    assert rejected_summary(rejected, imported) == said
