"""A hand-raise (one lead made an MQL in its own transaction) writes what the simple
path writes.

:func:`baton.services.stages.change_stage_in` into MQL reads the lead back from its
``UPDATE … RETURNING`` with its score, account owner and nurture state (and, on
PostgreSQL, inserts the transition in the same statement), and a single new handoff's
events, outbox rows, rotation and chain go in with one statement on PostgreSQL. A
capture's hand-raise (scoring's :func:`~baton.services.stages.change_stages_in` with
one change) takes the same path. The simple path it replaces: the set-based
``change_stages_in`` of that one lead (the lead written, then read again; the score,
owner and enrollments looked up) with every routing write made by its own statement.
On random floors, contracts, leads, nurture enrollments, chat channels, webhook
endpoints and managers (the strategies of the batch routing test), each lead is handed
off one by one both ways from the same start (each run in one transaction rolled back
afterwards), and everything written is compared.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.engine import Connection
from tests.integration.test_batch_routing import (
    OPS,
    Rollback,
    empty,
    leads_st,
    notify_st,
    reps_st,
    rules_st,
    set_up,
    snapshot,
)
from tests.milestone_checks import milestones_in

from baton.domain.lifecycle import Stage
from baton.services import routing, stages
from baton.services.context import Context
from baton.services.milestones import rebuild
from baton.services.stages import MqlChange, change_stage_in, change_stages_in
from baton.store.tables import outbox


def _hand_raises(
    connection: Connection, ids: list[int], historical: set[int], *, simple: bool, now: Any
) -> Any:
    """Every lead of ``ids`` made an MQL one after the other, each as a hand-raise (or
    by the simple path), and what that wrote."""
    for lead_id in ids:
        if simple:
            stages._change_stages_in(
                connection,
                [MqlChange(lead_id, f"why {lead_id}", historical=lead_id in historical)],
                actor=OPS,
                now=now,
                contract_version=None,
            )
        elif lead_id % 2:
            change_stage_in(
                connection,
                lead_id,
                Stage.MQL,
                actor=OPS,
                reason=f"why {lead_id}",
                now=now,
                historical=lead_id in historical,
            )
        else:  # a capture's hand-raise: the scoring's call, with one change
            change_stages_in(
                connection,
                [MqlChange(lead_id, f"why {lead_id}", historical=lead_id in historical)],
                actor=OPS,
                now=now,
            )
    keys = [k for (k,) in connection.execute(select(outbox.c.message_key))]
    assert len(set(keys)) == len(keys)  # every message its own key
    written = snapshot(connection)
    kept = milestones_in(connection)  # equal to a recomputation from the history
    rebuild(connection)
    assert milestones_in(connection) == kept
    return written


@settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    floor=reps_st,
    rules=rules_st,
    account_matching=st.booleans(),
    owners=st.lists(st.one_of(st.none(), st.integers(0, 5)), min_size=4, max_size=4),
    people=leads_st,
    notify=notify_st,
)
def test_a_hand_raise_writes_what_the_simple_path_writes(
    ctx: Context,
    floor: list[dict[str, Any]],
    rules: list[dict[str, Any]],
    account_matching: bool,
    owners: list[int | None],
    people: list[dict[str, Any]],
    notify: dict[str, Any],
) -> None:
    """The same handoffs, rotations, events, outbox rows in order, chains, leads
    (milestones included), transitions and nurture exits. Both runs start from the
    same state: each is rolled back."""
    empty(ctx)
    ids = set_up(ctx, floor, rules, account_matching, owners, people, notify)
    historical = {i for i, p in zip(ids, people, strict=True) if p["historical"]}
    now = ctx.clock.now()
    results = []
    for simple in (False, True):
        with pytest.MonkeyPatch.context() as patch:
            if simple:  # every routing write by its own statement
                patch.setattr(routing, "_write_one_opened", lambda *args: False)
            with pytest.raises(Rollback), ctx.write() as connection:
                results.append(_hand_raises(connection, ids, historical, simple=simple, now=now))
                raise Rollback
    fast, simple_path = results
    assert fast["handoffs"] == simple_path["handoffs"]
    assert fast["outbox"] == simple_path["outbox"]
    assert fast == simple_path
