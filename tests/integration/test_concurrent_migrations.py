"""Processes that start together migrate a database once: every process runs the
migrations at start (`baton init`, `serve`, `worker`), and on a fresh PostgreSQL three
`baton worker --once` started at once used to leave two of them failing on
``UniqueViolation ... pg_type_typname_nsp_index``."""

from __future__ import annotations

import select
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.exc import OperationalError
from tests.integration.test_migrations import head_revision

from baton.store.engine import make_engine
from baton.store.migrate import current_revision
from baton.store.tables import metadata

PROCESSES = 4

MIGRATE_AT = """
import sys, time
from baton.store.engine import make_engine
from baton.store.migrate import upgrade
engine = make_engine(sys.argv[1])
print("ready", flush=True)
sys.stdin.readline()
upgrade(engine)
"""
"""One process: imports first, says so, then waits for the common start (a line on its
standard input, sent to all once all are ready) so all migrate at once."""


def _line_within(run: subprocess.Popen[str], *, seconds: float) -> str:
    """The process's next line of output, or "" when it gives none within ``seconds``
    (stalled) or ends first."""
    assert run.stdout is not None
    readable, _, _ = select.select([run.stdout], [], [], seconds)
    return run.stdout.readline() if readable else ""


def _errors(run: subprocess.Popen[str]) -> str:
    return run.stderr.read() if run.stderr and not run.stderr.closed else ""


def test_processes_starting_together_on_a_fresh_database_all_succeed(
    empty_database_url: str,
) -> None:
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", MIGRATE_AT, empty_database_url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(PROCESSES)
    ]
    try:
        # Each waits, imported, for the start: given to all once the last one is ready
        # (was a start 8 s ahead, to cover four imports on a loaded machine).
        ready = [_line_within(run, seconds=300) for run in runs]
        if ready != ["ready\n"] * PROCESSES:
            for run in runs:
                run.kill()
            said = zip(ready, map(_errors, runs), strict=True)
            raise AssertionError(list(said))
        for run in runs:
            if run.stdin:
                run.stdin.write("go\n")
                run.stdin.close()
        results = [(run.wait(timeout=300), _errors(run)) for run in runs]
    finally:
        for run in runs:
            if run.poll() is None:
                run.kill()
            for stream in (run.stdin, run.stdout, run.stderr):
                if stream and not stream.closed:
                    stream.close()
    failures = [
        next((line for line in reversed(err.splitlines()) if "Error" in line), err[-300:])
        for code, err in results
        if code != 0
    ]
    assert failures == [], failures
    engine = make_engine(empty_database_url)
    try:
        assert current_revision(engine) == head_revision()
        assert {t.name for t in metadata.sorted_tables} <= set(inspect(engine).get_table_names())
        with engine.connect() as connection:
            versions = connection.execute(text("SELECT version_num FROM alembic_version")).all()
        assert len(versions) == 1, "one schema, migrated once"
    finally:
        engine.dispose()


def test_sqlites_database_is_locked_at_start_is_tried_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Four processes opening a fresh SQLite file at once: once in a loaded CI run one
    got SQLite's "database is locked" with no wait. That error is tried again; any
    other is not."""
    from alembic import command

    from baton.store import migrate

    real = command.upgrade
    calls: list[str] = []

    def locked_once(config: Any, revision: str) -> None:
        calls.append(revision)
        if len(calls) == 1:
            raise OperationalError("PRAGMA journal_mode=WAL", None, Exception("database is locked"))
        real(config, revision)

    engine = make_engine(f"sqlite:///{tmp_path / 'baton.db'}")
    try:
        monkeypatch.setattr(command, "upgrade", locked_once)
        migrate.upgrade(engine)
        assert len(calls) == 2 and current_revision(engine) == head_revision()

        def broken(config: Any, revision: str) -> None:
            calls.append(revision)
            raise OperationalError("SELECT", None, Exception("disk I/O error"))

        monkeypatch.setattr(command, "upgrade", broken)
        # At head now, which upgrade tells without Alembic: as if it were not.
        monkeypatch.setattr(migrate, "_at_head", lambda engine: False)
        with pytest.raises(OperationalError, match="disk I/O error"):
            migrate.upgrade(engine)
        assert len(calls) == 3
    finally:
        engine.dispose()
