"""Running the Alembic migrations from code (``baton init``, server start, tests)."""

from __future__ import annotations

import functools
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, func, inspect, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, OperationalError

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(connection: Connection | None = None) -> Config:
    from alembic.config import Config

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
    that error is tried again a few times; the migrations are then read afresh.

    A database already at the head revision (every start but the first after an
    upgrade) is told by one read of ``alembic_version`` against the revisions the
    migration files name (:func:`head_revisions`), without loading Alembic, its
    dialects and every migration script: about a seventh of a command's start-up."""
    if revision == "head" and _at_head(engine):
        return
    from alembic import command

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

_REVISION = re.compile(r"^revision(?:\s*:[^=\n]*)?\s*=\s*[\"']([^\"'\n]+)[\"']\s*$", re.M)
_DOWN_REVISION = re.compile(
    r"^down_revision(?:\s*:[^=\n]*)?\s*=\s*(None|[\"']([^\"'\n]+)[\"'])\s*$", re.M
)


@functools.cache
def head_revisions() -> frozenset[str] | None:
    """The revisions no migration file revises (Alembic's heads), read from the files'
    ``revision`` and ``down_revision`` lines; ``None`` when a file says either in another
    form (a merge's tuple): :func:`upgrade` then asks Alembic. A test holds this equal to
    Alembic's own heads."""
    revisions: set[str] = set()
    revised: set[str] = set()
    for path in sorted((MIGRATIONS / "versions").glob("*.py")):
        text = path.read_text(encoding="utf-8")
        found, down = _REVISION.findall(text), _DOWN_REVISION.findall(text)
        if len(found) != 1 or len(down) != 1:
            return None
        revisions.add(found[0])
        if down[0][0] != "None":
            revised.add(down[0][1])
    heads = revisions - revised
    return frozenset(heads) if heads and revised <= revisions else None


def _at_head(engine: Engine) -> bool:
    """Whether the database's ``alembic_version`` holds exactly the head revisions (so
    that an upgrade to head has nothing to do); ``False`` when that cannot be told
    (no table yet, files in another form)."""
    heads = head_revisions()
    if heads is None:
        return False
    try:
        with engine.connect() as connection:
            # A new database has no table yet: asked first, so that PostgreSQL's log
            # gets no ERROR line at every first `baton init`.
            if not inspect(connection).has_table("alembic_version"):
                return False
            stored = connection.exec_driver_sql("SELECT version_num FROM alembic_version")
            return {str(v) for (v,) in stored} == heads
    except DBAPIError:
        return False


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()
