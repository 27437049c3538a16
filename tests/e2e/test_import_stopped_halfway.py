"""An import stopped halfway by an unexpected error (review finding: the CLI said
"Nothing was half-written" while the chunks written so far stayed): the message says
what is true, that the chunks written are whole and that importing the same file again
completes the import, and running it again does complete it, as one run would have."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from baton.cli import app, main
from baton.services import imports


def _leads(runner: CliRunner) -> list[tuple[str, str]]:
    result = runner.invoke(app, ["export", "leads", "--format", "jsonl"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    return sorted((row["email"], row["first_name"]) for row in rows)


def _database(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BATON_DATABASE_URL", f"sqlite:///{path}")


def test_an_import_stopped_halfway_says_that_importing_again_completes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("BATON_ENV", raising=False)
    monkeypatch.delenv("BATON_DEBUG", raising=False)
    monkeypatch.setenv("BATON_IMPORT_CHUNK_ROWS", "10")
    monkeypatch.chdir(tmp_path)
    source = tmp_path / "leads.csv"
    source.write_text(
        "Email,First Name\n" + "".join(f"p{n}@acme.example,Ana{n}\n" for n in range(60))
    )
    runner = CliRunner()
    _database(tmp_path / "whole.db", monkeypatch)
    whole = runner.invoke(app, ["import", "leads", str(source)])
    assert whole.exit_code == 0, whole.output
    expected = _leads(runner)

    _database(tmp_path / "stopped.db", monkeypatch)
    write = imports.write_values_in
    calls = {"n": 0}

    def fails_on_the_third_chunk(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("the disk is full")
        return write(*args, **kwargs)

    monkeypatch.setattr(imports, "write_values_in", fails_on_the_third_chunk)
    monkeypatch.setattr(sys, "argv", ["baton", "import", "leads", str(source)])
    with pytest.raises(SystemExit) as stopped:
        main()
    assert stopped.value.code == 70
    said = " ".join(capsys.readouterr().err.split())
    assert "internal error: RuntimeError: the disk is full" in said
    assert "importing the same file again completes it" in said
    kept = _leads(runner)
    assert len(kept) == 20 and set(kept) < set(expected)  # two whole chunks of 10 rows

    monkeypatch.setattr(imports, "write_values_in", write)
    again = runner.invoke(app, ["import", "leads", str(source)])
    assert again.exit_code == 0, again.output
    assert _leads(runner) == expected
