"""Fast paths for the high-volume writes (activity ingest, counters).

SQLAlchemy's per-row parameter processing costs more than SQLite's own insert, so these
statements go to the driver directly with values already in the column's stored form:
on SQLite an ``executemany`` with the same text format SQLAlchemy uses for datetimes;
on PostgreSQL a single statement over ``unnest`` of arrays (one round trip per batch
instead of one per row). Both honour the idempotency key with ``ON CONFLICT DO
NOTHING``. A test checks that rows written here read back exactly like rows written
through the Core tables.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Column, MetaData, Table
from sqlalchemy.engine import Connection

from baton.store.types import UtcDateTime

_JSON = json.JSONEncoder(allow_nan=False)
"""One encoder for all rows: ``json.dumps`` with a non-default option builds a new
encoder per call, which costs more than the insert itself."""


def sqlite_datetime(value: datetime) -> str:
    """The text SQLAlchemy stores for a datetime on SQLite (naive UTC, microseconds)."""
    if value.tzinfo is None:
        raise ValueError("naive datetime given to the database; use the injected clock")
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    return value.replace(tzinfo=None).isoformat(" ", "microseconds")


def read_datetime(value: datetime | str) -> datetime:
    """A datetime as the driver returns it (SQLite: the text above) made aware UTC."""
    if isinstance(value, str):
        return datetime.fromisoformat(value).replace(tzinfo=UTC)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def insert_activities(connection: Connection, rows: Sequence[Mapping[str, Any]]) -> list[int]:
    """Insert activity rows (keys: lead_id, type, occurred_at, received_at, properties,
    idempotency_key, recorded_by) and return the positions (in ``rows``) of the rows
    actually stored: a row whose idempotency key exists already (a concurrent retry
    won the race) is skipped and not returned, so counters and scores stay exact."""
    if not rows:
        return []
    if connection.dialect.name == "postgresql":
        # Keys in a fixed order, so concurrent batches with overlapping keys wait for
        # each other instead of deadlocking.
        ordered = sorted(
            rows, key=lambda r: (r["idempotency_key"] is None, r["idempotency_key"] or "")
        )
        stored = connection.exec_driver_sql(
            "INSERT INTO activities (lead_id, type, occurred_at, received_at, properties,"
            " idempotency_key, recorded_by) SELECT * FROM unnest(%s::bigint[],"
            " %s::varchar[], %s::timestamptz[], %s::timestamptz[], %s::jsonb[],"
            " %s::varchar[], %s::varchar[])"
            " ON CONFLICT (idempotency_key) DO NOTHING RETURNING idempotency_key",
            (
                [r["lead_id"] for r in ordered],
                [r["type"] for r in ordered],
                [r["occurred_at"] for r in ordered],
                [r["received_at"] for r in ordered],
                [_JSON.encode(r["properties"]) for r in ordered],
                [r["idempotency_key"] for r in ordered],
                [r["recorded_by"] for r in ordered],
            ),
        )
        won = {key for (key,) in stored}
        return [
            i
            for i, r in enumerate(rows)
            if r["idempotency_key"] is None or r["idempotency_key"] in won
        ]
    # SQLite: writers are serialized (BEGIN IMMEDIATE), so a look-up of the keys inside
    # this transaction is exact: skip known keys (and repeats within the batch) first.
    keyed = [r["idempotency_key"] for r in rows if r["idempotency_key"] is not None]
    known = {row[0] for row in find_by_keys(connection, _ACTIVITY_KEYS, "idempotency_key", keyed)}
    positions: list[int] = []
    for i, r in enumerate(rows):
        key = r["idempotency_key"]
        if key is not None:
            if key in known:
                continue
            known.add(key)
        positions.append(i)
    if not positions:
        return []
    dumps = _JSON.encode
    received: dict[datetime, str] = {}
    for r in rows:
        if r["received_at"] not in received:
            received[r["received_at"]] = sqlite_datetime(r["received_at"])
    connection.exec_driver_sql(
        "INSERT INTO activities (lead_id, type, occurred_at, received_at, properties,"
        " idempotency_key, recorded_by) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [
            (
                r["lead_id"],
                r["type"],
                sqlite_datetime(r["occurred_at"]),
                received[r["received_at"]],
                dumps(r["properties"]),
                r["idempotency_key"],
                r["recorded_by"],
            )
            for r in (rows[i] for i in positions)
        ],
    )
    return positions


_ACTIVITY_KEYS = Table("activities", MetaData(), Column("idempotency_key"))


def bump_counters(connection: Connection, per_lead: Mapping[int, tuple[int, datetime]]) -> None:
    """Add ``n`` to each lead's activity count and move ``last_activity_at`` forward to
    ``at`` (never backward: a late-arriving old event does not make a lead look stale)."""
    if not per_lead:
        return
    if connection.dialect.name == "postgresql":
        ids = sorted(per_lead)
        connection.exec_driver_sql(
            "UPDATE leads SET activity_count = leads.activity_count + v.n,"
            " last_activity_at = GREATEST(leads.last_activity_at, v.at)"
            " FROM unnest(%s::bigint[], %s::bigint[], %s::timestamptz[]) AS v(id, n, at)"
            " WHERE leads.id = v.id",
            (ids, [per_lead[i][0] for i in ids], [per_lead[i][1] for i in ids]),
        )
        return
    connection.exec_driver_sql(
        "UPDATE leads SET activity_count = activity_count + ?,"
        " last_activity_at = CASE WHEN last_activity_at IS NULL OR last_activity_at < ?"
        " THEN ? ELSE last_activity_at END WHERE id = ?",
        [
            (n, stamp, stamp, lead_id)
            for lead_id, (n, at) in sorted(per_lead.items())
            for stamp in (sqlite_datetime(at),)
        ],
    )


def insert_rows(
    connection: Connection,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    *,
    ignore_conflicts: bool = False,
) -> None:
    """Plain multi-row insert of ``rows`` (all with the same keys) into ``table``,
    converting datetimes and JSON the way the Core column types would. With
    ``ignore_conflicts`` a row that hits a unique constraint is skipped (a concurrent
    writer created it first)."""
    if not rows:
        return
    names = list(rows[0])
    postgres = connection.dialect.name == "postgresql"
    converters: list[Any] = []
    for name in names:
        column_type = table.c[name].type
        if isinstance(column_type, UtcDateTime):
            converters.append(None if postgres else _memo(_sqlite_datetime_or_none))
        elif isinstance(column_type, JSON) or "JSON" in type(column_type).__name__:
            converters.append(json.dumps)
        else:
            converters.append(None)
    mark = "%s" if postgres else "?"
    sql = (
        f"INSERT INTO {table.name} ({', '.join(names)}) "
        f"VALUES ({', '.join([mark] * len(names))})"
        + (" ON CONFLICT DO NOTHING" if ignore_conflicts else "")
    )
    pairs = list(zip(names, converters, strict=True))
    connection.exec_driver_sql(
        sql,
        [
            tuple(row[name] if convert is None else convert(row[name]) for name, convert in pairs)
            for row in rows
        ],
    )


def _memo(convert: Any) -> Any:
    """Rows of one batch share most timestamps (``now``): convert each value once."""
    seen: dict[Any, Any] = {}

    def cached(value: Any) -> Any:
        if value not in seen:
            seen[value] = convert(value)
        return seen[value]

    return cached


def _sqlite_datetime_or_none(value: datetime | None) -> str | None:
    return None if value is None else sqlite_datetime(value)


def find_by_keys(
    connection: Connection,
    table: Table,
    key: str,
    values: Sequence[Any],
    *columns: str,
    lock: bool = False,
) -> list[tuple[Any, ...]]:
    """Rows of ``table`` whose ``key`` is one of ``values``, as tuples of ``key`` then
    ``columns``: one statement with one parameter (SQLite ``json_each``, PostgreSQL
    ``= ANY``), however many values. Much cheaper than chunked ``IN (...)`` lists with
    thousands of bound parameters. With ``lock`` the rows are locked (PostgreSQL
    ``FOR UPDATE``, in id order so that concurrent writers never deadlock; SQLite's
    write transaction already excludes other writers)."""
    if not values:
        return []
    selected = ", ".join(f"t.{name}" for name in (key, *columns))
    if connection.dialect.name == "postgresql":
        sql = f"SELECT {selected} FROM {table.name} t WHERE t.{key} = ANY(%s)"
        if lock:
            sql += " ORDER BY t.id FOR UPDATE"
        return [tuple(r) for r in connection.exec_driver_sql(sql, (list(values),))]
    sql = f"SELECT {selected} FROM json_each(?) j JOIN {table.name} t ON t.{key} = j.value"
    return [tuple(r) for r in connection.exec_driver_sql(sql, (json.dumps(list(values)),))]
