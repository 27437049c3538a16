"""Routing's row locks against real concurrent transactions on PostgreSQL.

A routing decision locks its pool's rotation row, then the rows of the reps it may
choose. Two properties are checked here with the interleavings forced by the locks
themselves (a transaction is let go once PostgreSQL reports the other one waiting),
not by timing:

* a transaction that makes several leads MQLs (an activity batch) locks every pool
  before any rep, so it never deadlocks with a single decision in one of those pools;
* a decision reads the reps' capacity, status and absences again once it holds their
  locks, so an admin's change committed while it waited is decided on.

PostgreSQL only: on SQLite one writer holds the whole database, so nothing interleaves.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import pytest
from sqlalchemy import func, select, text
from tests.integration import test_batch_routing as batch

from baton.domain.access import operator
from baton.domain.lifecycle import Stage
from baton.domain.reps import RepUpdate
from baton.domain.routing import pool_key
from baton.services.activities import ingest_activities
from baton.services.context import Context
from baton.services.contract_rules import active_contract_in
from baton.services.reps import update_rep
from baton.services.routing import lock_pools, lock_reps
from baton.services.stages import change_stage_in
from baton.store.tables import handoffs, leads, reps

WAITING_ON_A_LOCK = (
    "SELECT count(*) FROM pg_stat_activity"
    " WHERE datname = current_database() AND wait_event_type = 'Lock'"
)
"""Sessions of this test's database waiting for a lock (a server shared by several
test runs has others' waits in ``pg_locks``)."""

OPS = operator("ops")
POSTGRES = [pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres)]

REP = {"capacity": 3, "weight": 1.0, "status": "available", "hours": "always", "countries": []}
FLOOR = [{**REP, "team": "a", "tags": ["x"]}, {**REP, "team": "b", "tags": ["x"]}]
RULES = [
    {"pool": "team: a", "strategy": "round_robin", "countries": ["US"], "min_score": None},
    {"pool": "tag: x", "strategy": "round_robin", "countries": ["DE", "FR"], "min_score": None},
]
PEOPLE = [
    {"country": country, "domain": "acme.com", "score": None, "historical": False}
    for country in ("US", "DE", "FR")
]


@pytest.fixture
def floor(ctx: Context, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Rep 0 in team a and tag x, rep 1 in team b and tag x; US leads go to pool
    ``team: a``, DE and FR leads to pool ``tag: x``; a demo request makes an MQL. Returns
    the ids of a US, a DE and a FR lead."""
    plain = batch.contract_yaml
    monkeypatch.setattr(
        batch,
        "contract_yaml",
        lambda *args: plain(*args).replace(
            "  threshold: 1000\n", "  threshold: 1000\n  hand_raise: [demo_request]\n"
        ),
    )
    return batch.set_up(ctx, FLOOR, RULES, False, [], PEOPLE)


T = TypeVar("T")


def _pool(ctx: Context, index: int) -> str:
    with ctx.read() as connection:
        active = active_contract_in(connection)
    assert active is not None
    return pool_key(active[1].routing.rules[index].pool)


def _rep_ids(ctx: Context) -> list[int]:
    with ctx.read() as connection:
        return list(connection.execute(select(reps.c.id).order_by(reps.c.id)).scalars())


def _in_thread(work: Callable[[], Any]) -> tuple[threading.Thread, dict[str, BaseException]]:
    errors: dict[str, BaseException] = {}

    def run() -> None:
        try:
            work()
        except BaseException as error:  # reported by the test
            errors["error"] = error

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, errors


def _wait_until_blocked(ctx: Context, thread: threading.Thread) -> None:
    """Return once a transaction of the test waits for a row lock (or the thread ended,
    which the test's assertions then report)."""
    with ctx.engine.connect() as connection:
        connection = connection.execution_options(isolation_level="AUTOCOMMIT")
        for _ in range(3000):
            waiting = connection.execute(text(WAITING_ON_A_LOCK)).scalar_one()
            if waiting or not thread.is_alive():
                return
            time.sleep(0.01)
    raise AssertionError("the transaction never waited for a lock")


def _demo_requests(lead_ids: list[int]) -> list[dict[str, Any]]:
    return [{"lead_id": lead_id, "type": "demo_request"} for lead_id in lead_ids]


def _decided_while_pool_held(ctx: Context, lead_id: int, change: Callable[[], T]) -> T:
    """A demo request for ``lead_id`` (pool team:a) made while another transaction holds
    that pool's lock; once the decision waits for it, ``change()`` runs and commits, the
    lock is let go and the decision finishes (without an error). Returns ``change()``."""
    holder = ctx.engine.connect()
    transaction = holder.begin()
    lock_pools(holder, [_pool(ctx, 0)])
    decision, errors = _in_thread(
        lambda: ingest_activities(ctx, _demo_requests([lead_id]), actor=OPS)
    )
    try:
        _wait_until_blocked(ctx, decision)
        changed = change()
        transaction.commit()
    finally:
        holder.close()
    decision.join(60)
    assert not decision.is_alive()
    assert not errors, errors
    return changed


@pytest.mark.parametrize("backend", POSTGRES)
def test_a_batch_of_mqls_does_not_deadlock_with_a_decision_in_one_of_its_pools(
    ctx: Context, floor: list[int]
) -> None:
    """The reviewer's deadlock: a batch making a US lead (pool team:a, rep 0) and a DE
    lead (pool tag:x) MQLs, while another transaction holds pool tag:x and then wants
    reps 0 and 1. Opening the batch's MQLs one by one locked rep 0 before pool tag:x,
    and PostgreSQL aborted one of the two; both commit now."""
    us, de, fr = floor
    other = ctx.engine.connect()
    transaction = other.begin()
    lock_pools(other, [_pool(ctx, 1)])
    ingest, ingest_errors = _in_thread(
        lambda: ingest_activities(ctx, _demo_requests([us, de]), actor=OPS)
    )
    _wait_until_blocked(ctx, ingest)
    try:
        lock_reps(other, _rep_ids(ctx))
        change_stage_in(other, fr, Stage.MQL, actor=OPS, reason="t", now=ctx.clock.now())
        transaction.commit()
    finally:
        other.close()
    ingest.join(60)
    assert not ingest.is_alive()
    assert not ingest_errors, ingest_errors
    with ctx.read() as connection:
        stages = dict(connection.execute(select(leads.c.id, leads.c.stage)).all())
        opened = connection.execute(select(func.count()).select_from(handoffs)).scalar_one()
    assert {stages[us], stages[de], stages[fr]} == {Stage.MQL.value}
    assert opened == 3


@pytest.mark.parametrize("backend", POSTGRES)
def test_a_decision_sees_a_capacity_change_committed_while_it_waited(
    ctx: Context, floor: list[int]
) -> None:
    """A decision for a US lead (pool team:a: rep 0 only) read the roster, then waits
    for the pool's lock; meanwhile an admin sets rep 0's capacity to 0 and commits. Once
    it holds the locks the decision reads rep 0 again: the handoff waits in the queue
    instead of going to a rep who no longer takes any."""
    rep0 = _rep_ids(ctx)[0]
    _decided_while_pool_held(
        ctx, floor[0], lambda: update_rep(ctx, rep0, RepUpdate(capacity=0), actor=OPS)
    )
    with ctx.read() as connection:
        handoff = connection.execute(select(handoffs.c.status, handoffs.c.rep_id)).one()
    assert (handoff.status, handoff.rep_id) == ("queued", None)
