"""Stage changes as stored: who, when, why; refusals write nothing; the timeline."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from baton.domain.access import operator
from baton.domain.clock import ManualClock
from baton.domain.errors import InvalidTransitionError, NotFound
from baton.domain.lifecycle import Stage, replay
from baton.services.activities import ingest_activities
from baton.services.context import Context
from baton.services.leads import CaptureResult, change_stage, get_lead, stage_history
from baton.services.merge import merge_leads
from baton.services.notes import add_note, add_tag, remove_tag
from baton.services.timeline import lead_timeline
from baton.store.tables import transitions

CLI = operator()
"""The local operator, reading what a test stored (reads record nothing)."""

Capture = Callable[..., CaptureResult]

SPEC: dict[str, list[str]] = {
    "lead": ["mql", "nurture", "disqualified"],
    "mql": ["sal", "nurture", "disqualified"],
    "sal": ["sql", "nurture", "disqualified", "lost"],
    "sql": ["opportunity", "nurture", "lost"],
    "opportunity": ["customer", "lost"],
    "customer": [],
    "nurture": ["mql", "disqualified"],
    "disqualified": ["nurture"],
    "lost": ["nurture"],
}


def transition_rows(ctx: Context, lead_id: int) -> int:
    with ctx.read() as connection:
        return connection.execute(
            select(func.count()).select_from(transitions).where(transitions.c.lead_id == lead_id)
        ).scalar_one()


def test_a_stage_change_is_stored_with_actor_reason_and_time(
    ctx: Context, clock: ManualClock, capture: Capture
) -> None:
    lead_id = capture(email="dana@northwind.com").lead.id
    clock.advance(hours=4)
    step = change_stage(ctx, lead_id, Stage.MQL, actor=operator("scoring"), reason="score 62 >= 60")
    assert (step.from_stage, step.to_stage) == (Stage.LEAD, Stage.MQL)
    clock.advance(days=1)
    change_stage(ctx, lead_id, Stage.SAL, actor=operator("alice@sales"), reason="accepted")
    [first, second] = stage_history(ctx, lead_id, actor=CLI)
    assert (first.actor, first.reason, first.occurred_at) == (
        "scoring",
        "score 62 >= 60",
        clock.now() - timedelta(days=1),
    )
    assert (second.from_stage, second.to_stage, second.actor) == ("mql", "sal", "alice@sales")
    assert second.occurred_at == clock.now()
    lead = get_lead(ctx, lead_id, actor=CLI)
    assert lead.stage == "sal"
    assert lead.stage_changed_at == clock.now()


def test_a_forbidden_change_is_refused_and_writes_nothing(
    ctx: Context, clock: ManualClock, capture: Capture
) -> None:
    lead_id = capture(email="dana@northwind.com").lead.id
    before = get_lead(ctx, lead_id, actor=CLI)
    clock.advance(hours=1)
    with pytest.raises(InvalidTransitionError) as caught:
        change_stage(ctx, lead_id, Stage.CUSTOMER, actor=operator("eve"), reason="skip the funnel")
    assert set(caught.value.allowed) == set(SPEC["lead"])
    after = get_lead(ctx, lead_id, actor=CLI)
    assert after.stage == "lead"
    assert after.stage_changed_at == before.stage_changed_at
    assert after.updated_at == before.updated_at
    assert transition_rows(ctx, lead_id) == 0
    assert stage_history(ctx, lead_id, actor=CLI) == []


def test_changing_the_stage_of_an_unknown_or_merged_lead_is_not_found(
    ctx: Context, capture: Capture
) -> None:
    with pytest.raises(NotFound):
        change_stage(ctx, 987_654_321, Stage.MQL, actor=operator("a"), reason="r")
    survivor = capture(email="dana@northwind.com").lead.id
    absorbed = capture(email="dana@gmail.com").lead.id
    merge_leads(ctx, survivor, absorbed, actor=operator("alice"))
    with pytest.raises(NotFound):
        change_stage(ctx, absorbed, Stage.MQL, actor=operator("a"), reason="r")
    assert get_lead(ctx, absorbed, actor=CLI).stage == "lead"


def test_customer_is_final_in_storage_too(
    ctx: Context, clock: ManualClock, capture: Capture
) -> None:
    lead_id = capture(email="dana@northwind.com").lead.id
    for stage in ("mql", "sal", "sql", "opportunity", "customer"):
        clock.advance(days=1)
        change_stage(ctx, lead_id, Stage(stage), actor=operator("alice"), reason=f"to {stage}")
    for stage in Stage:
        with pytest.raises(InvalidTransitionError):
            change_stage(ctx, lead_id, stage, actor=operator("alice"), reason="reopen")
    assert transition_rows(ctx, lead_id) == 5


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(choices=st.lists(st.integers(min_value=0, max_value=3), min_size=1, max_size=12))
def test_stored_history_replays_to_the_current_stage(
    ctx: Context, clock: ManualClock, capture: Capture, choices: list[int]
) -> None:
    # Each example works on a lead of its own, so examples sharing the database is fine.
    lead_id = capture(email=f"walker-{clock.now().timestamp()}@northwind.com").lead.id
    expected = "lead"
    for choice in choices:
        options = SPEC[expected]
        if not options:
            break
        clock.advance(minutes=30)
        expected = options[choice % len(options)]
        change_stage(ctx, lead_id, Stage(expected), actor=operator("walker"), reason="random walk")
    clock.advance(minutes=1)
    history = stage_history(ctx, lead_id, actor=CLI)
    assert replay(history) == Stage(expected)
    assert get_lead(ctx, lead_id, actor=CLI).stage == expected
    assert [h.occurred_at for h in history] == sorted(h.occurred_at for h in history)


def test_timeline_lists_everything_in_time_order(
    ctx: Context, clock: ManualClock, capture: Capture
) -> None:
    lead_id = capture(email="dana@northwind.com", source="webinar").lead.id
    clock.advance(hours=1)
    add_note(ctx, lead_id, "asked about pricing", actor=operator("alice"))
    clock.advance(hours=1)
    add_tag(ctx, lead_id, "Hot", actor=operator("alice"))
    clock.advance(hours=1)
    change_stage(ctx, lead_id, Stage.MQL, actor=operator("scoring"), reason="score 70")
    clock.advance(hours=1)
    late = clock.now()
    clock.advance(hours=1)
    # An event that happened before it was received sorts at the time it happened.
    row = {
        "email": "dana@northwind.com",
        "type": "email_click",
        "occurred_at": late.isoformat(),
        "properties": {"url": "/demo"},
    }
    ingest_activities(ctx, [row], actor=operator("esp"))
    remove_tag(ctx, lead_id, "hot", actor=operator("bob"))

    items = lead_timeline(ctx, lead_id, actor=CLI)
    assert [i.at for i in items] == sorted(i.at for i in items)
    described = [(i.kind, i.actor) for i in items]
    assert described == [
        ("created", None),
        ("activity", "marketing"),
        ("note", "alice"),
        ("tag", "alice"),
        ("transition", "scoring"),
        ("handoff", "scoring"),
        ("activity", "esp"),
        ("tag", "bob"),
    ]
    assert items[1].data["type"] == "captured"
    assert items[2].summary == "asked about pricing"
    assert items[3].data == {"tag": "hot", "action": "added"}
    assert (items[4].data["from"], items[4].data["to"], items[4].data["reason"]) == (
        "lead",
        "mql",
        "score 70",
    )
    assert items[5].data["event"] == "queued"
    assert items[6].data["type"] == "email_click" and items[6].at == late
    assert items[7].data == {"tag": "hot", "action": "removed"}


def test_timeline_limit_keeps_the_newest(
    ctx: Context, clock: ManualClock, capture: Capture
) -> None:
    lead_id = capture(email="dana@northwind.com").lead.id
    for i in range(4):
        clock.advance(minutes=10)
        add_note(ctx, lead_id, f"note {i}", actor=operator("alice"))
    newest = lead_timeline(ctx, lead_id, limit=2, actor=CLI)
    assert [i.summary for i in newest] == ["note 2", "note 3"]


def test_timeline_of_an_unknown_lead_is_not_found(ctx: Context) -> None:
    with pytest.raises(NotFound):
        lead_timeline(ctx, 987_654_321, actor=CLI)
