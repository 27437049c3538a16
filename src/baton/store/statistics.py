"""PostgreSQL's planner statistics, refreshed where autovacuum comes too late.

Autovacuum analyses a table after a tenth of it changed, and visits a database once a
minute at most. Until a table's first ``ANALYZE`` the planner has no statistics of it,
and what a long-lived connection planned while the table was nearly empty (the
foreign-key checks behind every insert that names a lead, prepared statements) reads
it whole for as long as the plans live: a table that grows from nothing in its first
minute, or a bulk load, is read with the plans of the table before. A bulk writer
refreshes what it wrote (:func:`refresh_statistics`); the worker refreshes a table
that has doubled since its statistics (:func:`grown_tables`), which in a steady
state autovacuum has always done first. ``ANALYZE`` samples a bounded number of rows
(a fraction of a second at any size) and takes a lock that neither reads nor writes
wait for. SQLite plans without such statistics: both do nothing there.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, NamedTuple

from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

ANALYZE_AFTER_ROWS = 1_000
"""New rows after which a bulk write refreshes PostgreSQL's statistics itself."""


def refresh_statistics(
    connection: Connection,
    tables: Sequence[str],
    *,
    new_rows: int,
    columns: Sequence[str] = (),
) -> bool:
    """``ANALYZE`` the ``tables`` on PostgreSQL after a bulk write of ``new_rows``
    (at least :data:`ANALYZE_AFTER_ROWS`); returns whether it ran. With ``columns``,
    only those columns of each table (the row count is refreshed all the same, at a
    fraction of the cost; autovacuum still analyses the whole table later). Only the
    tables the connection's role may analyse (:func:`analysable`): another role's
    ``ANALYZE`` is a warning in PostgreSQL's log that changes nothing.

    Autovacuum analyses a table only after a tenth of it changed, and meanwhile the
    planner reads the freshly written rows with the statistics of the table before:
    the worker's possible-duplicate comparison of a 10,000-lead import took 10.6 s on
    the stale plans and 2.8 s after ``ANALYZE`` (the same run). It samples a bounded
    number of rows, so it costs a fraction of a second at any size, and takes a lock
    that neither reads nor writes wait for. SQLite plans without such statistics."""
    if connection.dialect.name != "postgresql" or new_rows < ANALYZE_AFTER_ROWS:
        return False
    mine = analysable(connection, tables)
    if not mine:
        return False
    listed = f" ({', '.join(columns)})" if columns else ""
    connection.exec_driver_sql(f"ANALYZE {', '.join(table + listed for table in mine)}")
    return True


def analysable(connection: Connection, tables: Sequence[str]) -> list[str]:
    """Those of ``tables`` (names resolved as ``ANALYZE`` resolves them, through the
    search path) that the connection's role may ``ANALYZE``: its own, or any for a
    superuser. A role the migrations' owner granted only reads and writes may not."""
    return list(
        connection.exec_driver_sql(
            f"SELECT t.name {_NAMED} WHERE {_MAY_ANALYSE} ORDER BY t.n",
            {"tables": list(tables)},
        ).scalars()
    )


_NAMED = (
    "FROM unnest(CAST(%(tables)s AS text[])) WITH ORDINALITY AS t(name, n)"
    " JOIN pg_class c ON c.oid = to_regclass(t.name)"
)
"""The tables named in ``%(tables)s`` (``t.name``, in their order ``t.n``), resolved as
``ANALYZE`` resolves a name (the search path), with their ``pg_class`` row ``c``."""

_DOUBLED = "s.n_live_tup >= 2 * c.reltuples"
"""Whether table ``c`` (its statistics ``s``) has twice the rows of its last
statistics (``reltuples`` is -1 before the first): the rule of :func:`grown_tables` and,
under the table's lock, of :func:`analyze_table`."""

_MAY_ANALYSE = "pg_has_role(c.relowner, 'USAGE')"
"""Whether the connection's role may ``ANALYZE`` table ``c``: the one rule of
:func:`analysable` and :func:`grown_tables`."""


GROWING_TABLES = ("leads", "activities", "duplicate_checks", "duplicate_candidates", "handoffs")
"""The tables every capture, comparison or handoff writes, whose plans matter most."""


class GrownTable(NamedTuple):
    name: str
    rows: int
    """Live rows now, by PostgreSQL's own count."""
    planned: int
    """Rows at its last statistics (-1: never analysed)."""


_HELD = (
    "ShareUpdateExclusiveLock",
    "ShareLock",
    "ShareRowExclusiveLock",
    "ExclusiveLock",
    "AccessExclusiveLock",
)
"""The locks an ``ANALYZE`` would wait for (a ``VACUUM``, another ``ANALYZE``, an index
build, a schema change)."""


def grown_tables(
    connection: Connection, tables: Sequence[str] = GROWING_TABLES
) -> list[GrownTable]:
    """Those of ``tables`` holding at least :data:`ANALYZE_AFTER_ROWS` live rows and at
    least twice the rows of their last statistics (or never analysed), by PostgreSQL's
    own counts, among those the role may analyse (:func:`analysable`) and that no one
    holds a lock on that ``ANALYZE`` would wait for (autovacuum at work: it is left to
    it); none on SQLite."""
    if connection.dialect.name != "postgresql":
        return []
    rows = connection.exec_driver_sql(
        f"SELECT t.name, s.n_live_tup, c.reltuples {_NAMED}"
        " JOIN pg_stat_user_tables s ON s.relid = c.oid"
        f" WHERE {_MAY_ANALYSE}"
        f" AND s.n_live_tup >= %(least)s AND {_DOUBLED}"
        " AND NOT EXISTS (SELECT 1 FROM pg_locks l WHERE l.relation = c.oid"
        " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        " AND l.granted AND l.mode = ANY(%(held)s))"
        " ORDER BY t.n",
        {"tables": list(tables), "least": ANALYZE_AFTER_ROWS, "held": list(_HELD)},
    )
    return [GrownTable(name, int(live), int(planned)) for name, live, planned in rows]


ANALYZE_LOCK_TIMEOUT_MS = 100
"""How long :func:`analyze_table` waits for a lock taken between :func:`grown_tables`'
look and its ``ANALYZE`` (another worker's, autovacuum's) before it gives up."""

AnalyzeOutcome = Literal["analysed", "locked", "current"]
"""What :func:`analyze_table` did: ``analysed``; ``locked``, the table's lock did not
come in time (nothing done); ``current``, another ``ANALYZE`` (another worker's) had
refreshed the table by the time its lock came (nothing done)."""


def analyze_table(connection: Connection, table: str) -> AnalyzeOutcome:
    """``ANALYZE`` one table found grown by :func:`grown_tables`, in the caller's
    transaction, which should hold nothing else (the table's lock lasts until it ends).

    Its lock (the one ``ANALYZE`` takes) is taken first, waiting at most
    :data:`ANALYZE_LOCK_TIMEOUT_MS`, and the table looked at again under it: several
    workers see the same table grown at the same moment, and the first one's
    ``ANALYZE`` (committed by the time the others get the lock) makes theirs needless.
    Before, each ran its own, one after the other."""
    try:
        with connection.begin_nested():  # a timeout leaves the transaction usable
            connection.exec_driver_sql(f"SET LOCAL lock_timeout = {ANALYZE_LOCK_TIMEOUT_MS}")
            connection.exec_driver_sql(f"LOCK TABLE {table} IN SHARE UPDATE EXCLUSIVE MODE")
            if not _still_grown(connection, table):
                return "current"
            connection.exec_driver_sql(f"ANALYZE {table}")
    except DBAPIError as error:
        if getattr(error.orig, "sqlstate", None) != "55P03":  # lock_not_available
            raise
        return "locked"
    return "analysed"


def _still_grown(connection: Connection, table: str) -> bool:
    """Whether ``table`` still has twice the rows of its last statistics, as
    :func:`grown_tables` judged it, read under the table's lock: ``pg_class`` as the
    last committed ``ANALYZE`` left it."""
    grown = connection.exec_driver_sql(
        f"SELECT {_DOUBLED} FROM pg_class c"
        " JOIN pg_stat_user_tables s ON s.relid = c.oid WHERE c.oid = to_regclass(%s)",
        (table,),
    ).scalar()
    return bool(grown)
