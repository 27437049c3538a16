"""Running the Alembic migrations from code (``baton init``, server start, tests)."""

from __future__ import annotations

import time
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, func, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


MIGRATION_LOCK = 0x6261746F6E_01
"""The PostgreSQL advisory lock key that migrations take turns on ("baton", 1)."""


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the database schema to ``revision`` (idempotent).

    Every process runs this at start (`baton init`, `serve`, `worker`, each server
    process), so several may start at once: on a fresh database, or after an upgrade,
    three `baton worker --once` used to race to create the same tables and two failed
    (``UniqueViolation ... pg_type_typname_nsp_index``). On PostgreSQL the upgrade
    therefore first takes a transaction-level advisory lock, in the transaction that
    migrates: the others wait for it, and Alembic then reads the revision the first
    one committed and has nothing left to do. (SQLite's migrating transaction begins
    IMMEDIATE, so its writers already take turns.) On a fresh SQLite file, processes that
    open it at the same moment may still get SQLite's "database is locked" without any
    wait (its switch to WAL, a reader's lock upgrade): seen once in a loaded CI run, so
    that error is tried again a few times; the migrations are then read afresh."""
    for attempt in range(SQLITE_LOCKED_ATTEMPTS):
        try:
            with engine.begin() as connection:
                if connection.dialect.name == "postgresql":
                    connection.execute(select(func.pg_advisory_xact_lock(MIGRATION_LOCK)))
                command.upgrade(alembic_config(connection), revision)
            return
        except OperationalError as error:
            locked = engine.dialect.name == "sqlite" and "database is locked" in str(error)
            if not locked or attempt == SQLITE_LOCKED_ATTEMPTS - 1:
                raise
            time.sleep(0.1 * (attempt + 1))


SQLITE_LOCKED_ATTEMPTS = 5


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()
