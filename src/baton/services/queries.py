"""Small shared query helpers used by several use cases."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, TypeVar

from sqlalchemy import (
    Integer,
    Numeric,
    String,
    Table,
    bindparam,
    case,
    cast,
    extract,
    func,
    literal_column,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, RowMapping
from sqlalchemy.sql.elements import ColumnElement

from baton.domain.errors import NotFound
from baton.store.bulk import find_by_keys
from baton.store.tables import lead_tags, leads

T = TypeVar("T")

IN_CHUNK = 900
"""Values per ``IN (...)`` list: far under every backend's bound-parameter limit."""


def chunks(values: Sequence[T], size: int = IN_CHUNK) -> Iterator[Sequence[T]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def one_of(column: Any, name: str, arity: int | None) -> ColumnElement[bool]:
    """``column IN (...)``, the list bound as ``name`` at each run: with ``arity``, that
    many parameters ``name_0``, ``name_1``… (see :func:`one_of_params`), so that the
    statement's text is the same at every run (SQLAlchemy renders an expanding ``IN``
    again at each run, about 40 µs of CPU); None: an expanding ``IN``. (PostgreSQL's
    ``= ANY(:array)`` would also keep the text, but is planned again at each run.)"""
    if arity is None:
        return column.in_(bindparam(name, expanding=True))  # type: ignore[no-any-return]
    return column.in_(  # type: ignore[no-any-return]
        [bindparam(f"{name}_{i}", type_=column.type) for i in range(arity)]
    )


def constant(value: int | str) -> Any:
    """A constant written into a statement's text instead of bound at each run, for a
    statement built once and run often (each bound constant costs SQLAlchemy and the
    driver some work at every run, and a list of them in an ``IN`` is even rendered
    again each time). Only for Baton's own names and numbers."""
    if isinstance(value, int):
        return literal_column(str(value), Integer)
    if not value.replace("_", "").isalnum():
        raise ValueError(f"not a plain name: {value!r}")
    return literal_column(f"'{value}'", String)


def one_of_params(
    name: str, values: Sequence[Any], *, up_to: int
) -> tuple[int | None, dict[str, Any]]:
    """The ``arity`` of :func:`one_of` for ``values`` and the parameters to run it
    with: one parameter per value up to ``up_to`` values (a statement built for each
    such length), else one expanding list."""
    if len(values) <= up_to:
        return len(values), {f"{name}_{i}": v for i, v in enumerate(values)}
    return None, {name: list(values)}


def seconds_between(dialect: str, start: Any, end: Any) -> ColumnElement[Any]:
    """``end - start`` in seconds (rounded to the millisecond), computed by the
    database: ``julianday`` on SQLite, ``EXTRACT(EPOCH FROM ...)`` on PostgreSQL."""
    if dialect == "postgresql":
        # The 3 is written into the text: a statement built once binds nothing per run.
        return func.round(cast(extract("epoch", end.op("-")(start)), Numeric), literal_column("3"))
    return func.round((func.julianday(end) - func.julianday(start)) * 86400.0, 3)


def flag(condition: ColumnElement[bool]) -> ColumnElement[Any]:
    """1 where ``condition`` holds, else 0: for MAX and SUM over conditions."""
    return case((condition, literal_column("1", Integer)), else_=literal_column("0", Integer))


def dialect_insert(connection: Connection, table: Table) -> Any:
    """The connection's dialect's ``INSERT`` of ``table`` (with ``ON CONFLICT`` clauses)."""
    if connection.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def insert_ignoring_conflicts(connection: Connection, table: Table) -> Any:
    """``INSERT ... ON CONFLICT DO NOTHING`` for the connection's dialect."""
    return insert_ignoring_conflicts_of(table, connection.dialect.name)


@functools.cache
def insert_ignoring_conflicts_of(table: Table, dialect: str) -> Any:
    """:func:`insert_ignoring_conflicts` for the dialect named ``dialect``, built once
    (a statement is immutable: ``.values()`` and ``.returning()`` answer a copy)."""
    insert_of = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return insert_of(table).on_conflict_do_nothing()


@functools.cache
def new_row_id_of(table: Table, dialect: str) -> Any:
    """One row of ``table`` given as the parameters, skipped on a key already taken,
    its ``id`` answered (none when skipped): built once per table and dialect (built
    from the row's values at every call, a statement cost more than its insert)."""
    return insert_ignoring_conflicts_of(table, dialect).returning(table.c.id)


def lock_lead(connection: Connection, lead_id: int) -> RowMapping:
    """Read a lead with its row locked for the rest of the transaction (PostgreSQL
    ``FOR UPDATE``; SQLite already holds the write lock), or raise :class:`NotFound`."""
    row = (
        connection.execute(select(leads).where(leads.c.id == lead_id).with_for_update())
        .mappings()
        .first()
    )
    if row is None:
        raise NotFound(f"lead {lead_id} does not exist")
    return row


def lock_active_lead(connection: Connection, lead_id: int) -> RowMapping:
    """Like :func:`lock_lead`, but a lead merged into another is refused with
    :class:`NotFound` naming the survivor, so nothing is written where no one looks."""
    row = lock_lead(connection, lead_id)
    if row["merged_into_id"] is not None:
        raise NotFound(
            f"lead {lead_id} was merged into lead {row['merged_into_id']}; use that lead"
        )
    return row


def lock_survivors(connection: Connection, lead_ids: Iterable[int]) -> dict[int, int | None]:
    """Lock the given leads (and the survivors they were merged into, transitively, all
    in id order) and map each to the lead that now stands for it; ``None`` for ids that
    do not exist. Locking before writing means a concurrent merge either finishes first
    (and is followed) or waits for the writer (and then moves what it wrote)."""
    lead_ids = list(lead_ids)
    final: dict[int, int | None] = {}
    merged_into: dict[int, int] = {}
    pending = set(lead_ids)
    while pending:
        found = find_by_keys(connection, leads, "id", sorted(pending), "merged_into_id", lock=True)
        seen = {row[0] for row in found}
        for missing in pending - seen:
            final[missing] = None
        pending = set()
        for lead_id, target in found:
            if target is not None:
                merged_into[lead_id] = target
                if target not in seen and target not in final:
                    pending.add(target)
            else:
                final[lead_id] = lead_id
    for lead_id in lead_ids:
        current: int | None = lead_id
        hops = 0
        while current is not None and current in merged_into and hops < 100:
            current, hops = merged_into[current], hops + 1
        final[lead_id] = final.get(current) if current is not None else None
    return final


def tags_of(connection: Connection, lead_ids: Iterable[int]) -> dict[int, list[str]]:
    ids = list(lead_ids)
    found: dict[int, list[str]] = {i: [] for i in ids}
    for part in chunks(ids):
        rows = connection.execute(
            select(lead_tags.c.lead_id, lead_tags.c.tag)
            .where(lead_tags.c.lead_id.in_(part))
            .order_by(lead_tags.c.tag)
        )
        for lead_id, tag in rows:
            found[lead_id].append(tag)
    return found


def inserted_id(result: Any) -> int:
    """The primary key of the row an ``INSERT`` just wrote."""
    key = result.inserted_primary_key
    if key is None:
        raise RuntimeError("the insert returned no primary key")
    return int(key[0])
