"""A large re-score on SQLite writes without ``ix_lead_scores_total`` and builds it again
as it ends; a process killed before that (SIGKILL, out of memory, a restart
mid-activation) left it out, and search by score stayed slow until the next large
re-score (review finding). Every server process and worker now builds it again as it
starts."""

from __future__ import annotations

import logging

import pytest
from typer.testing import CliRunner

from baton.api.app import create_app
from baton.cli import app as cli_app
from baton.services.context import Context
from baton.services.scoring import TOTAL_INDEX, restore_total_index


def _definition(ctx: Context) -> str | None:
    with ctx.read() as connection:
        found = connection.exec_driver_sql(
            "SELECT sql FROM sqlite_master WHERE type = 'index' AND name = ?",
            (TOTAL_INDEX.name,),
        ).first()
    return None if found is None else str(found[0])


def _drop(ctx: Context) -> None:
    with ctx.write() as connection:
        connection.exec_driver_sql(f"DROP INDEX {TOTAL_INDEX.name}")


def test_a_server_process_builds_the_index_a_killed_rescore_left_out(
    sqlite_ctx: Context, caplog: pytest.LogCaptureFixture
) -> None:
    made = _definition(sqlite_ctx)
    assert made is not None
    _drop(sqlite_ctx)
    with caplog.at_level(logging.WARNING, logger="baton.services.scoring"):
        create_app(sqlite_ctx)
    assert _definition(sqlite_ctx) == made
    assert "the index for search by score (ix_lead_scores_total) was missing" in caplog.text
    assert "`baton contract rescore` finishes it" in caplog.text
    assert restore_total_index(sqlite_ctx) is False  # there: nothing to do, nothing said


def test_a_worker_builds_it_as_it_starts(
    sqlite_ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = _definition(sqlite_ctx)
    _drop(sqlite_ctx)
    monkeypatch.setenv("BATON_DATABASE_URL", str(sqlite_ctx.engine.url))
    ran = CliRunner().invoke(cli_app, ["worker", "--once"])
    assert ran.exit_code == 0, ran.output
    assert _definition(sqlite_ctx) == made
