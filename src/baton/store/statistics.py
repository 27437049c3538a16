"""PostgreSQL's planner statistics, refreshed where autovacuum comes too late.

Autovacuum analyses a table after a tenth of it changed, and visits a database once a
minute at most. Until a table's first ``ANALYZE`` the planner has no statistics of it,
and what a long-lived connection planned while the table was nearly empty (the
foreign-key checks behind every insert that names a lead, prepared statements) reads
it whole for as long as the plans live: a table that grows from nothing in its first
minute, or a bulk load, is read with the plans of the table before. A bulk writer
refreshes what it wrote (:func:`refresh_statistics`); the worker refreshes a table
that has doubled since its statistics (:func:`analyze_grown`), which in a steady
state autovacuum has always done first. ``ANALYZE`` samples a bounded number of rows
(a fraction of a second at any size) and takes a lock that neither reads nor writes
wait for. SQLite plans without such statistics: both do nothing there.
"""

from __future__ import annotations

from collections.abc import Sequence

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
    fraction of the cost; autovacuum still analyses the whole table later).

    Autovacuum analyses a table only after a tenth of it changed, and meanwhile the
    planner reads the freshly written rows with the statistics of the table before:
    the worker's possible-duplicate comparison of a 10,000-lead import took 10.6 s on
    the stale plans and 2.8 s after ``ANALYZE`` (the same run). It samples a bounded
    number of rows, so it costs a fraction of a second at any size, and takes a lock
    that neither reads nor writes wait for. SQLite plans without such statistics."""
    if connection.dialect.name != "postgresql" or new_rows < ANALYZE_AFTER_ROWS:
        return False
    listed = f" ({', '.join(columns)})" if columns else ""
    connection.exec_driver_sql(f"ANALYZE {', '.join(table + listed for table in tables)}")
    return True


GROWING_TABLES = ("leads", "activities", "duplicate_checks", "duplicate_candidates", "handoffs")
"""The tables every capture, comparison or handoff writes, whose plans matter most."""


def grown_tables(connection: Connection, tables: Sequence[str] = GROWING_TABLES) -> list[str]:
    """Those of ``tables`` holding at least :data:`ANALYZE_AFTER_ROWS` live rows and at
    least twice the rows of their last statistics (or never analysed), by PostgreSQL's
    own counts, among the tables the connection's role may ``ANALYZE`` (their owner's,
    or a superuser's: another role's ``ANALYZE`` is a warning that changes nothing);
    none on SQLite."""
    if connection.dialect.name != "postgresql":
        return []
    return list(
        connection.exec_driver_sql(
            "SELECT s.relname FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid"
            " WHERE s.schemaname = current_schema() AND s.relname = ANY(%(tables)s)"
            " AND s.n_live_tup >= %(least)s AND s.n_live_tup >= 2 * c.reltuples"
            " AND pg_has_role(c.relowner, 'USAGE')"
            " ORDER BY s.relname",
            {"tables": list(tables), "least": ANALYZE_AFTER_ROWS},
        ).scalars()
    )


ANALYZE_LOCK_TIMEOUT_MS = 100
"""How long :func:`analyze_grown` waits for a table another ``ANALYZE`` (autovacuum's)
or a schema change holds, before it leaves that table to them."""


def analyze_grown(connection: Connection, tables: Sequence[str] = GROWING_TABLES) -> list[str]:
    """``ANALYZE`` each of :func:`grown_tables` in the caller's transaction; return the
    tables analysed. A table whose lock does not come within
    :data:`ANALYZE_LOCK_TIMEOUT_MS` (autovacuum is analysing it) is skipped, each under
    a savepoint of its own, so the others are still done."""
    done: list[str] = []
    for table in grown_tables(connection, tables):
        try:
            with connection.begin_nested():
                connection.exec_driver_sql(f"SET LOCAL lock_timeout = {ANALYZE_LOCK_TIMEOUT_MS}")
                connection.exec_driver_sql(f"ANALYZE {table}")
        except DBAPIError as error:
            if getattr(error.orig, "sqlstate", None) != "55P03":  # lock_not_available
                raise
            continue
        done.append(table)
    return done
