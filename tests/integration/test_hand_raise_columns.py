"""A new MQL's lead is read for routing with the columns routing may read
(:data:`~baton.domain.routing.ROUTED_FIELDS`, and the milestones the hand-raise moves),
not the whole row: on a hand-raise every result column costs the driver's description
and SQLAlchemy's processing, and half the lead's columns are never looked at. A rule on
a field few contracts test still routes, one lead at a time and in a batch.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, update
from tests.integration import test_batch_routing as batch
from tests.integration.test_active_contract_digest import PERSON, REP, TO_A, _team_of_handoff
from tests.integration.test_batch_routing import OPS, empty

from baton.domain.access import operator
from baton.domain.lifecycle import Stage
from baton.domain.routing import ROUTED_FIELDS
from baton.services.context import Context
from baton.services.contracts import activate_contract, approve_contract, create_contract
from baton.services.stages import MqlChange, change_stage_in, change_stages_in
from baton.store.tables import leads, metadata

NOT_ROUTED = {c.name for c in leads.c} - {
    *ROUTED_FIELDS,
    "reached_stages",
    "mql_at",
    "mql_contract_version",
    *("stage", "merged_into_id", "stage_changed_at"),  # (read to check the move)
    *(c.name for t in metadata.sorted_tables if t is not leads for c in t.c),
}
"""Columns of the lead that neither routing nor the stage change's check reads and no
other table has (so a result column of that name can only be the lead's)."""

BY_UTM = """schema_version: 1
name: By campaign content
mql:
  threshold: 1000
routing:
  rules:
    - name: Spring campaign
      when:
        - {field: utm_content, equals: spring}
      pool: {team: b}
    - name: Everyone else
      pool: {team: a}
"""


def _described(ctx: Context) -> tuple[list[set[str]], Any]:
    """The column names of every result set described from now on, and the listener
    (to remove)."""
    seen: list[set[str]] = []

    def note(_c: Any, cursor: Any, *_: Any) -> None:
        if cursor.description:
            seen.append({str(d[0]) for d in cursor.description})

    event.listen(ctx.engine, "after_cursor_execute", note)
    return seen, note


def _floor(ctx: Context, people: int) -> list[int]:
    """Reps in teams a and b, :data:`BY_UTM` active; returns the lead ids."""
    empty(ctx)
    floor = [{**REP, "team": "a"}, {**REP, "team": "b"}]
    ids = batch.set_up(ctx, floor, TO_A, False, [], [{**PERSON, "nurture": None}] * people)
    version = create_contract(ctx, BY_UTM, actor=operator("maria")).version
    approve_contract(ctx, version, role="marketing", actor=operator("maria"))
    approve_contract(ctx, version, role="sales", actor=operator("sam"))
    activate_contract(ctx, version, actor=operator("sam"))
    return ids


def test_a_new_mqls_lead_is_read_with_the_routed_columns_only(ctx: Context) -> None:
    assert {"email_status_detail", "unsubscribed_at", "handoff_outcomes"} <= NOT_ROUTED
    ids = _floor(ctx, 3)
    seen, note = _described(ctx)
    try:
        with ctx.write() as connection:
            change_stage_in(
                connection, ids[0], Stage.MQL, actor=OPS, reason="r", now=ctx.clock.now()
            )
        with ctx.write() as connection:
            change_stages_in(
                connection,
                [MqlChange(ids[1], "r"), MqlChange(ids[2], "r")],
                actor=OPS,
                now=ctx.clock.now(),
            )
    finally:
        event.remove(ctx.engine, "after_cursor_execute", note)
    assert seen  # (the lead was read)
    assert [names & NOT_ROUTED for names in seen if names & NOT_ROUTED] == []


def test_a_rule_on_a_field_few_contracts_test_routes_each_way(ctx: Context) -> None:
    ids = _floor(ctx, 4)
    with ctx.write() as connection:
        connection.execute(
            update(leads).where(leads.c.id.in_([ids[0], ids[2]])).values(utm_content="spring")
        )
    with ctx.write() as connection:
        for lead_id in ids[:2]:
            change_stage_in(
                connection, lead_id, Stage.MQL, actor=OPS, reason="r", now=ctx.clock.now()
            )
    with ctx.write() as connection:
        change_stages_in(
            connection,
            [MqlChange(ids[2], "r"), MqlChange(ids[3], "r")],
            actor=OPS,
            now=ctx.clock.now(),
        )
    assert [_team_of_handoff(ctx, i)[0] for i in ids] == ["b", "a", "b", "a"]
