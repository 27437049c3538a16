"""The worker's lines are log lines, in one format (time, level, logger), as
`baton serve --with-worker` writes them (a newcomer's trial: ``06:07:12 UTC duplicates:
...`` printed beside ``2026-12-06 06:07:12,158 WARNING baton.worker: ...``), and its
start says what it is (not ``heartbeat 3: vm pid 20098``)."""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path

import pytest
from typer.testing import CliRunner

from baton.cli import app
from baton.services import worker as worker_service
from baton.services.context import Context
from baton.services.worker import TickReport, Worker


def test_a_busy_pass_of_baton_worker_is_a_log_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("BATON_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.delenv("BATON_ENV", raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(worker_service, "tick", lambda ctx, **_: TickReport(sent=2, failed=1))
    caplog.set_level(logging.INFO, logger="baton.worker")
    result = CliRunner().invoke(app, ["worker", "--once"])
    assert result.exit_code == 0, result.output
    passes = [r for r in caplog.records if r.name == "baton.worker"]
    assert [(r.levelname, r.getMessage()) for r in passes] == [("INFO", "pass: sent 2, failed 1")]


def test_the_worker_says_it_started(sqlite_ctx: Context, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="baton.worker")
    heartbeat = Worker(sqlite_ctx).heartbeat
    heartbeat.beat()
    said = [r.getMessage() for r in caplog.records if r.name == "baton.worker"]
    assert (
        f"worker started: heartbeat row {heartbeat.id}, host {socket.gethostname()}, "
        f"pid {os.getpid()}" in said
    ), said
