"""PostgreSQL: a hand-raise reads the active contract version share-locked in the same
statement that locks its lead (:func:`baton.services.stages.change_stage_in`, one round
trip instead of two), and keeps the guarantee of the separate read: an activation waits
for the hand-raises already using the old version, and a hand-raise that starts while an
activation is not yet committed waits for it and routes by the new version.
"""

from __future__ import annotations

from typing import Any

import pytest
from psycopg import _queries
from sqlalchemy import event, select, update
from tests.integration import test_batch_routing as batch
from tests.integration.test_active_contract_digest import (
    PERSON,
    REP,
    TO_A,
    TO_B,
    _team_of_handoff,
)
from tests.integration.test_batch_routing import OPS, empty
from tests.integration.test_routing_locks import POSTGRES, _in_thread, _wait_until_blocked

from baton.domain.access import operator
from baton.domain.errors import NotFound
from baton.domain.lifecycle import Stage
from baton.services.context import Context
from baton.services.contracts import activate_contract, approve_contract, create_contract
from baton.services.stages import change_stage_in
from baton.store.tables import contracts

FLOOR = [{**REP, "team": "a"}, {**REP, "team": "b"}]


def _floor(ctx: Context, leads: int) -> tuple[list[int], int]:
    """Reps in teams a and b, version 1 active (every lead to team a), version 2 signed
    but not active (every lead to team b); returns the lead ids and version 2."""
    empty(ctx)
    ids = batch.set_up(ctx, FLOOR, TO_A, False, [], [{**PERSON, "nurture": None}] * leads)
    # (named apart: a content another test expects this process not to have seen)
    spec = batch.contract_yaml(TO_B, False, len(FLOOR)).replace("name: Batch", "name: Lock")
    version = create_contract(ctx, spec, actor=operator("maria")).version
    approve_contract(ctx, version, role="marketing", actor=operator("maria"))
    approve_contract(ctx, version, role="sales", actor=operator("sam"))
    return ids, version


def _hand_raise(ctx: Context, lead_id: int) -> None:
    with ctx.write() as connection:
        change_stage_in(connection, lead_id, Stage.MQL, actor=OPS, reason="r", now=ctx.clock.now())


def _active_version(ctx: Context) -> int:
    with ctx.read() as connection:
        return int(
            connection.execute(
                select(contracts.c.version).where(contracts.c.status == "active")
            ).scalar_one()
        )


@pytest.mark.parametrize("backend", POSTGRES)
def test_a_hand_raise_locks_the_active_version_and_its_lead_in_one_statement(
    ctx: Context,
) -> None:
    """The stage change's first statement reads the version share-locked with the lead
    under its lock; the contract is not read again by a statement of its own."""
    ids, _ = _floor(ctx, 1)
    sent: list[str] = []

    def count(_c: Any, _cur: Any, statement: str, *_: Any) -> None:
        sent.append(" ".join(statement.split()))

    event.listen(ctx.engine, "before_cursor_execute", count)
    try:
        _hand_raise(ctx, ids[0])
    finally:
        event.remove(ctx.engine, "before_cursor_execute", count)
    assert "FOR SHARE" in sent[0] and sent[0].endswith("FOR UPDATE OF leads"), sent[0]
    assert not [s for s in sent[1:] if "FROM contracts" in s], sent
    assert _team_of_handoff(ctx, ids[0]) == ("a", 1)


@pytest.mark.parametrize("backend", POSTGRES)
def test_an_activation_waits_for_a_hand_raise_using_the_old_version(ctx: Context) -> None:
    """A hand-raise made under version 1 and not yet committed holds its share of the
    version's row: activating version 2 waits until it commits, and the handoff keeps
    version 1."""
    ids, version = _floor(ctx, 1)
    holder = ctx.engine.connect()
    transaction = holder.begin()
    try:
        change_stage_in(holder, ids[0], Stage.MQL, actor=OPS, reason="r", now=ctx.clock.now())
        activation, errors = _in_thread(
            lambda: activate_contract(ctx, version, actor=operator("sam"))
        )
        _wait_until_blocked(ctx, activation)
        assert activation.is_alive(), "the activation did not wait for the hand-raise"
        assert _active_version(ctx) == 1, "the activation committed before the hand-raise"
        transaction.commit()
    finally:
        holder.close()
    activation.join(60)
    assert not activation.is_alive()
    assert not errors, errors
    assert _team_of_handoff(ctx, ids[0]) == ("a", 1)
    assert _active_version(ctx) == version


@pytest.mark.parametrize("backend", POSTGRES)
def test_a_hand_raise_during_an_activation_waits_and_routes_by_the_new_version(
    ctx: Context,
) -> None:
    """An activation not yet committed (version 1 superseded, version 2 active): a
    hand-raise waits for it, then reads version 2 (the row it waited for no longer the
    active one) and routes by it."""
    ids, version = _floor(ctx, 2)
    _hand_raise(ctx, ids[0])  # version 1 known to this process, under its digest
    holder = ctx.engine.connect()
    transaction = holder.begin()
    try:
        holder.execute(
            update(contracts).where(contracts.c.status == "active").values(status="superseded")
        )
        holder.execute(
            update(contracts).where(contracts.c.version == version).values(status="active")
        )
        raised, errors = _in_thread(lambda: _hand_raise(ctx, ids[1]))
        _wait_until_blocked(ctx, raised)
        assert raised.is_alive(), "the hand-raise did not wait for the activation"
        transaction.commit()
    finally:
        holder.close()
    raised.join(60)
    assert not raised.is_alive()
    assert not errors, errors
    assert _team_of_handoff(ctx, ids[0]) == ("a", 1)
    assert _team_of_handoff(ctx, ids[1]) == ("b", version)


@pytest.mark.parametrize("backend", POSTGRES)
def test_every_statement_of_a_hand_raise_is_converted_once_by_the_driver(
    ctx: Context,
) -> None:
    """psycopg converts a statement's placeholders once per process only when it is
    short enough and has few enough parameters (:func:`baton.store.engine._cache_long_statements`):
    every statement of a hand-raise, the combined write of its events, outbox row,
    rotation and chain included, is."""
    ids, _ = _floor(ctx, 1)
    sent: list[tuple[str, int]] = []

    def count(_c: Any, _cur: Any, statement: str, parameters: Any, *_: Any) -> None:
        sent.append((statement, len(parameters or ())))

    event.listen(ctx.engine, "before_cursor_execute", count)
    try:
        _hand_raise(ctx, ids[0])
    finally:
        event.remove(ctx.engine, "before_cursor_execute", count)
    assert any(s.startswith("WITH opened_events") for s, _ in sent)
    for statement, n in sent:
        assert len(statement.encode()) <= _queries.MAX_CACHED_STATEMENT_LENGTH, statement[:60]
        assert n <= _queries.MAX_CACHED_STATEMENT_PARAMS, statement[:60]


@pytest.mark.parametrize("backend", POSTGRES)
def test_a_hand_raise_for_a_missing_lead_is_refused(ctx: Context) -> None:
    ids, _ = _floor(ctx, 1)
    with pytest.raises(NotFound, match="does not exist"):
        _hand_raise(ctx, ids[0] + 1000)
