"""Processes that start together migrate a database once: every process runs the
migrations at start (`baton init`, `serve`, `worker`), and on a fresh PostgreSQL three
`baton worker --once` started at once used to leave two of them failing on
``UniqueViolation ... pg_type_typname_nsp_index``."""

from __future__ import annotations

import subprocess
import sys
import time

from sqlalchemy import inspect, text
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
time.sleep(max(0.0, float(sys.argv[2]) - time.time()))
upgrade(engine)
"""
"""One process: imports first, then waits for the common start so all migrate at once."""


def test_processes_starting_together_on_a_fresh_database_all_succeed(
    empty_database_url: str,
) -> None:
    start = time.time() + 8  # the imports of four processes on a loaded machine
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", MIGRATE_AT, empty_database_url, str(start)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(PROCESSES)
    ]
    results = [(run.wait(timeout=300), run.stderr.read() if run.stderr else "") for run in runs]
    for run in runs:
        if run.stdout:
            run.stdout.close()
        if run.stderr:
            run.stderr.close()
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
