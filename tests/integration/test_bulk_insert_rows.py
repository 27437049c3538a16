"""The bulk writer's plain multi-row insert (:func:`baton.store.bulk.insert_rows`) stores
exactly what one Core insert of the same rows stores, on both databases: on PostgreSQL it
sends one ``INSERT … SELECT … FROM unnest`` of arrays (the import's queue rows went
one statement per row before, 45 µs each on the server), on SQLite one ``executemany``
of tuples built by ``itemgetter``. No test here measures time: ``bench/import.py`` does."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Table, delete, event, insert, select
from sqlalchemy.engine import Connection

from baton.services.context import Context
from baton.store.bulk import insert_rows
from baton.store.tables import suppressions, webhook_endpoints

TEXT = st.text(alphabet=st.sampled_from('ab é"\\,{}\t\n\r\x01\u2028NUL'), max_size=8)
"""Texts made of the characters array literals escape, and a few others (never NUL,
which no database stores in text)."""
moments = st.datetimes(
    min_value=datetime(1970, 1, 2), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=6,
)
endpoints = st.lists(
    st.fixed_dictionaries(
        {
            "url": TEXT,
            "secret": TEXT,
            "events": json_values,
            "active": st.booleans(),
            "created_by": TEXT,
            "created_at": moments,
        }
    ),
    min_size=1,
    max_size=12,
)
EXAMPLES = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


def _stored(connection: Connection, table: Table) -> list[dict[str, Any]]:
    """The table's rows in insertion (id) order, without their ids."""
    rows = connection.execute(select(table).order_by(table.c.id)).mappings()
    return [{k: v for k, v in row.items() if k != "id"} for row in rows]


@EXAMPLES
@given(rows=endpoints)
def test_rows_read_back_as_one_core_insert_stores_them(
    ctx: Context, rows: list[dict[str, Any]]
) -> None:
    with ctx.engine.connect() as connection, connection.begin() as transaction:
        insert_rows(connection, webhook_endpoints, rows)
        fast = _stored(connection, webhook_endpoints)
        connection.execute(delete(webhook_endpoints))
        connection.execute(insert(webhook_endpoints), rows)
        plain = _stored(connection, webhook_endpoints)
        transaction.rollback()
    assert fast == plain
    assert len(fast) == len(rows)


@EXAMPLES
@given(
    keys=st.lists(st.sampled_from(["a@x.example", "b@x.example", 'q"\\@x.example']), min_size=1),
    at=moments,
)
def test_a_conflicting_row_is_skipped_and_the_first_of_each_key_kept(
    ctx: Context, keys: list[str], at: datetime
) -> None:
    rows = [
        {
            "email_key": key,
            "reason": "unsubscribed",
            "source": f"row {i}",
            "created_at": at,
            "created_by": "ops",
        }
        for i, key in enumerate(keys)
    ]
    first: dict[str, dict[str, Any]] = {}
    for row in rows:
        first.setdefault(row["email_key"], row)
    with ctx.engine.connect() as connection, connection.begin() as transaction:
        insert_rows(connection, suppressions, rows, ignore_conflicts=True)
        stored = _stored(connection, suppressions)
        transaction.rollback()
    assert stored == list(first.values())


def test_many_rows_go_in_one_statement(ctx: Context) -> None:
    """One statement for the whole batch on both databases; on PostgreSQL not an
    ``executemany`` (the driver would run it once per row on the server)."""
    sent: list[bool] = []

    def count(*args: Any) -> None:
        sent.append(bool(args[-1]))  # executemany

    rows = [
        {
            "email_key": f"p{i}@x.example",
            "reason": "unsubscribed",
            "source": None,
            "created_at": datetime(2026, 12, 1, tzinfo=UTC),
            "created_by": "ops",
        }
        for i in range(50)
    ]
    with ctx.engine.connect() as connection, connection.begin() as transaction:
        event.listen(connection, "before_cursor_execute", count)
        insert_rows(connection, suppressions, rows, ignore_conflicts=True)
        event.remove(connection, "before_cursor_execute", count)
        stored = len(_stored(connection, suppressions))
        transaction.rollback()
    assert stored == 50
    postgres = ctx.engine.dialect.name == "postgresql"
    assert sent == [not postgres]
