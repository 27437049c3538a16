"""The statements a hand-raise sends, made cheaper, find and write what the plain ones
did.

* Short ``IN`` lists bind one parameter per value (a statement per length, built once)
  instead of an expanding list rendered again at every run: the reps' hearing and
  loads, and the rep and pool locks, find the same rows either way.
* On PostgreSQL the roster's fingerprint is read with the reps' hearing and loads, in
  the statement after the locks: a rep who joined the pool while the decision waited
  for its lock is still seen, locked in order and chosen.
* A chain just opened (its first handoff its only member) is written from that row
  alone, without the join and grouping over members: the same row as the general
  recomputation (:func:`~baton.services.milestones.refresh_chains`).
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import event, select
from tests.integration import test_batch_routing as batch
from tests.integration.test_batch_routing import (
    OPS,
    Rollback,
    empty,
    leads_st,
    notify_st,
    reps_st,
    rules_st,
)
from tests.integration.test_routing_locks import (
    FLOOR,
    POSTGRES,
    _decided_while_pool_held,
    _pool,
    _rep_ids,
    floor,
)
from tests.milestone_checks import assert_milestones_equal_a_rebuild

from baton.domain.lifecycle import Stage
from baton.domain.reps import RepCreate, RepUpdate
from baton.domain.routing import ROUTED_FIELDS
from baton.services import chat, routing, stages
from baton.services.chat import hearing_of
from baton.services.context import Context
from baton.services.milestones import refresh_chains
from baton.services.reps import create_rep, routing_reps, update_rep
from baton.services.routing import lock_pools
from baton.services.stages import MqlChange, change_stage_in, change_stages_in
from baton.store.tables import handoff_chains, handoffs, leads, nurture_enrollments

__all__ = ["floor"]  # the fixture, used by name


@settings(max_examples=15, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    team_floor=reps_st,
    notify=notify_st,
    picks=st.lists(st.integers(0, 40), max_size=40),
)
def test_short_lists_find_what_expanding_lists_find(
    ctx: Context,
    team_floor: list[dict[str, Any]],
    notify: dict[str, Any],
    picks: list[int],
) -> None:
    """Hearing, loads and the roster's fingerprint of any reps (some not existing),
    with one parameter per rep and with an expanding list; the pools locked and read
    both ways."""
    empty(ctx)
    batch.set_up(ctx, team_floor, [], False, [], [], notify)
    with ctx.read() as connection:
        ids = sorted(connection.execute(select(batch.reps.c.id)).scalars())
    wanted = sorted({(ids[p] if p < len(ids) else 10_000 + p) for p in picks} if ids else picks)
    found = []
    for few in (chat._FEW, 0):
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(chat, "_FEW", few)
            patch.setattr(routing, "FEW", few)
            with pytest.raises(Rollback), ctx.write() as connection:
                loads: dict[int, int] = {}
                fingerprint: list[Any] = []
                heard = hearing_of(connection, wanted, loads=loads, fingerprint=fingerprint)
                pools = lock_pools(connection, ["team:a", "team:b", "tag:x"][: len(picks) % 4])
                roster = routing_reps(connection, fingerprint or None)
                found.append((heard, loads, roster, routing_reps(connection), pools))
                raise Rollback
    assert found[0] == found[1]
    heard, loads, roster, fresh, _ = found[0]
    assert roster == fresh


@settings(max_examples=20, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    team_floor=reps_st, rules=rules_st, people=leads_st, notify=notify_st, one_by_one=st.booleans()
)
def test_a_new_chain_is_written_as_its_recomputation(
    ctx: Context,
    team_floor: list[dict[str, Any]],
    rules: list[dict[str, Any]],
    people: list[dict[str, Any]],
    notify: dict[str, Any],
    one_by_one: bool,
) -> None:
    """The chains written for new MQLs (hand-raises one by one, or a batch) equal the
    rows :func:`refresh_chains` writes for them from all their members."""
    empty(ctx)
    ids = batch.set_up(ctx, team_floor, rules, False, [], people, notify)
    now = ctx.clock.now()
    with pytest.raises(Rollback), ctx.write() as connection:
        if one_by_one:
            for lead_id in ids:
                change_stage_in(connection, lead_id, Stage.MQL, actor=OPS, reason="r", now=now)
        else:
            change_stages_in(connection, [MqlChange(i, "r") for i in ids], actor=OPS, now=now)
        order = handoff_chains.c.chain_id
        written = [
            dict(r) for r in connection.execute(select(handoff_chains).order_by(order)).mappings()
        ]
        chains = list(connection.execute(select(handoffs.c.id)).scalars())
        refresh_chains(connection, chains)
        again = [
            dict(r) for r in connection.execute(select(handoff_chains).order_by(order)).mappings()
        ]
        raise Rollback
    assert len(written) == len(ids)
    assert written == again


@pytest.mark.parametrize("backend", POSTGRES)
def test_a_rep_who_joined_the_pool_while_the_decision_waited_is_chosen(
    ctx: Context, floor: list[int]
) -> None:
    """A decision for a US lead (pool team:a: rep 0 only) guessed its reps, then waits
    for the pool's lock; meanwhile rep 0 stops taking leads and a new rep joins team a.
    Once it holds the locks the decision reads the roster (with the loads) and sees a
    rep it did not lock: it lets its locks go, takes them again in order with the new
    rep, and gives the lead to the new rep."""
    us = floor[0]
    rep0 = _rep_ids(ctx)[0]
    said: list[str] = []

    @event.listens_for(ctx.engine, "before_cursor_execute")
    def count(_c: Any, _cur: Any, statement: str, *_: Any) -> None:
        said.append(statement)

    with ctx.write() as connection:  # the pool's rotation row, there before the race
        lock_pools(connection, [_pool(ctx, 0)])

    def joins() -> int:
        update_rep(ctx, rep0, RepUpdate(capacity=0), actor=OPS)
        return create_rep(
            ctx,
            RepCreate(
                email="joined@sales.example.com",
                name="Joined",
                timezone="UTC",
                working_hours=batch.ALWAYS,
                team="a",
                capacity=FLOOR[0]["capacity"],
            ),
            actor=OPS,
        ).id

    joined = _decided_while_pool_held(ctx, us, joins)
    event.remove(ctx.engine, "before_cursor_execute", count)
    with ctx.read() as connection:
        handoff = connection.execute(select(handoffs.c.status, handoffs.c.rep_id)).one()
    assert (handoff.status, handoff.rep_id) == ("assigned", joined)
    assert sum(s.startswith("ROLLBACK TO") for s in said) == 1  # let go once, for the roster


@pytest.mark.parametrize("backend", POSTGRES)
@settings(max_examples=12, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(team_floor=reps_st, rules=rules_st, people=leads_st, notify=notify_st)
def test_a_hand_raise_writes_its_lead_once_as_routing_saw_it(
    ctx: Context,
    team_floor: list[dict[str, Any]],
    rules: list[dict[str, Any]],
    people: list[dict[str, Any]],
    notify: dict[str, Any],
) -> None:
    """PostgreSQL: a live hand-raise routes the lead before writing it, then writes its
    stage, milestones and handoff facts with one ``UPDATE leads`` (two before: the
    stage, then the facts, each rewriting every index of ``leads``). Routing decided on
    the lead as it was then written; the milestones equal a rebuild from the history.
    A lead in an active nurture enrollment is written before its enrollments end, as
    before (historical MQLs route nothing)."""
    empty(ctx)
    ids = batch.set_up(ctx, team_floor, rules, False, [], people, notify)
    now = ctx.clock.now()
    seen: list[dict[str, Any]] = []
    routed = stages.open_handoffs_in

    def spy(connection: Any, lead_rows: Any, *args: Any, **kwargs: Any) -> list[int]:
        seen.extend(dict(row) for row in lead_rows)
        return routed(connection, lead_rows, *args, **kwargs)

    writes: list[str] = []

    def count(_c: Any, _cur: Any, statement: str, *_: Any) -> None:
        if "UPDATE leads SET" in statement:  # (alone, or after WITH parts)
            writes.append(statement)

    facts = {"first_rep_id", "handoff_outcomes", "open_accept_due_at"}
    event.listen(ctx.engine, "before_cursor_execute", count)
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(stages, "open_handoffs_in", spy)
            for lead_id, person in zip(ids, people, strict=True):
                with ctx.read() as connection:
                    nurtured = connection.execute(
                        select(nurture_enrollments.c.id).where(
                            nurture_enrollments.c.lead_id == lead_id,
                            nurture_enrollments.c.status == "active",
                        )
                    ).first()
                writes.clear()
                seen.clear()
                with ctx.write() as connection:
                    change_stage_in(
                        connection,
                        lead_id,
                        Stage.MQL,
                        actor=OPS,
                        reason="r",
                        now=now,
                        historical=person["historical"],
                    )
                with ctx.read() as connection:
                    written = dict(
                        connection.execute(select(leads).where(leads.c.id == lead_id))
                        .mappings()
                        .one()
                    )
                assert written["stage"] == "mql"
                if person["historical"]:
                    assert seen == []
                    continue
                # (the columns routing reads, ROUTED_FIELDS, not the whole row)
                assert set(ROUTED_FIELDS) <= set(seen[0])
                assert [{k: v for k, v in s.items() if k not in facts} for s in seen] == [
                    {k: v for k, v in written.items() if k in seen[0] and k not in facts}
                ]
                if nurtured is None:
                    assert len(writes) == 1, writes
    finally:
        event.remove(ctx.engine, "before_cursor_execute", count)
    assert_milestones_equal_a_rebuild(ctx)
