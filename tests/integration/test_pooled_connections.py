"""PostgreSQL: a pooled connection is checked before a transaction uses it without a
round trip when it is alive (its socket has nothing to read), and pinged, then
replaced, when the server ended its session (:func:`baton.store.engine.make_engine`).
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select, text
from tests.integration.test_routing_locks import POSTGRES

from baton.services.context import Context
from baton.store.tables import leads


def _pings(ctx: Context, patch: pytest.MonkeyPatch) -> list[bool]:
    """Every ping of ``ctx``'s engine, with its result."""
    dialect = ctx.engine.dialect
    ping = dialect.do_ping
    pings: list[bool] = []

    def counted(dbapi_connection: Any) -> bool:
        try:
            alive = ping(dbapi_connection)
        except Exception:
            pings.append(False)
            raise
        pings.append(alive)
        return alive

    patch.setattr(dialect, "do_ping", counted)
    return pings


def _count_leads(ctx: Context) -> int:
    with ctx.write() as connection:
        return int(connection.execute(select(func.count()).select_from(leads)).scalar_one())


@pytest.mark.parametrize("backend", POSTGRES)
def test_a_live_pooled_connection_is_used_without_a_ping(
    ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Transactions one after the other on a pooled connection send no ``SELECT 1``
    first (a pre-ping did, at every checkout)."""
    _count_leads(ctx)  # the pool's connection, made
    pings = _pings(ctx, monkeypatch)
    for _ in range(3):
        _count_leads(ctx)
    assert pings == []


@pytest.mark.parametrize("backend", POSTGRES)
def test_a_transaction_after_the_server_ended_the_session_gets_a_new_connection(
    ctx: Context, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    """The server ends every session of the database (as a restart does) while the
    pool holds a connection: the next transaction finds it closed before sending
    anything, and runs on a new connection instead of failing."""
    _count_leads(ctx)
    pings = _pings(ctx, monkeypatch)
    admin = request.getfixturevalue("postgres_server").admin
    with admin.connect() as connection:
        ended = connection.execute(
            text(
                "SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity "
                "WHERE datname = :name AND pid <> pg_backend_pid()"
                " AND backend_type = 'client backend'"  # not an autovacuum worker
            ),
            {"name": ctx.engine.url.database},
        ).all()
    assert ended and all(row[0] for row in ended)
    assert _count_leads(ctx) == 0
    assert pings == [False]  # the dead connection, pinged once, then replaced
    assert _count_leads(ctx) == 0
    assert pings == [False]
