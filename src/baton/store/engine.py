"""Engine set-up for SQLite and PostgreSQL.

SQLite: WAL journal (readers never block the writer), foreign keys on, and write
transactions that begin IMMEDIATE, so that two writers queue at BEGIN instead of
failing halfway with "database is locked" after reading stale rows. Read-only
transactions (connection option ``baton_read_only``) begin DEFERRED. SQLite has no
percentile aggregate: ``baton_percentiles(...)`` is registered on every connection
(PostgreSQL's ``percentile_disc`` does the same work there).
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import Connection

from baton.domain.reports import PERCENTILES, nearest_rank


class Percentiles:
    """SQLite aggregate ``baton_percentiles(a, b, ...)``: for each argument, how many
    non-NULL values it had and their nearest-rank percentiles
    :data:`~baton.domain.reports.PERCENTILES` (``[n, p50, p90]``, the percentiles NULL
    when n is 0), as one JSON list. Taking every measure of a report in one call keeps
    the per-row cost to a single call; values are sorted once per group."""

    def __init__(self) -> None:
        self.values: list[list[float]] = []

    def step(self, *values: float | None) -> None:
        if not self.values:
            self.values = [[] for _ in values]
        for column, value in zip(self.values, values, strict=True):
            if value is not None:
                column.append(value)

    def finalize(self) -> str:
        picked: list[list[float | None]] = []
        for column in self.values:
            column.sort()
            n = len(column)
            ranks = [column[nearest_rank(p, n) - 1] if n else None for p in PERCENTILES]
            picked.append([n, *ranks])
        return json.dumps(picked)


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for ``url`` with Baton's connection rules applied."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30}, **kwargs)
        _configure_sqlite(engine)
        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return create_engine(url, pool_pre_ping=True, **kwargs)


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA cache_size=-65536")
        cursor.execute("PRAGMA temp_store=MEMORY")
        cursor.close()
        dbapi_connection.create_aggregate("baton_percentiles", -1, Percentiles)

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        if connection.get_execution_options().get("baton_read_only"):
            connection.exec_driver_sql("BEGIN")
        else:
            connection.exec_driver_sql("BEGIN IMMEDIATE")
