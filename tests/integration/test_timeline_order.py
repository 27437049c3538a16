"""A lead's timeline keeps the causal order of entries written at the same instant, on
SQLite and PostgreSQL.

One use case stamps everything it writes with one reading of the clock, so a deal won
from SQL stores ``sql → opportunity`` and ``opportunity → customer`` with the same time.
Entries of one time sort by the order they were written: within a kind by row id (write
order), across kinds in the order one transaction causes them (the lead, its activity,
a merge, the stage change, the handoff event it sets off). With the clock stopped (the
ManualClock never advanced) separate transactions share a time too: each kind still
reads in causal order, the kinds one after the other.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from baton.domain.access import operator
from baton.domain.activities import ActivityCreate
from baton.domain.clock import ManualClock
from baton.domain.reps import RepCreate, TeamCreate
from baton.services.activities import ingest_activity
from baton.services.context import Context
from baton.services.contracts import activate_contract, approve_contract, create_contract
from baton.services.handoffs import (
    accept_handoff,
    list_handoffs,
    log_touch,
    qualify_handoff,
    won_handoff,
)
from baton.services.leads import CaptureResult
from baton.services.merge import merge_leads
from baton.services.reps import create_rep, create_team
from baton.services.timeline import TimelineItem, lead_timeline

EXAMPLE = (Path(__file__).parents[2] / "contracts" / "example.yaml").read_text()
OPS = operator("ops")
Capture = Callable[..., CaptureResult]
BUDGET = {"budget": "40k", "authority": "VP Ops", "need": "dashboards", "timing": "Q2"}


def _sales_floor(ctx: Context) -> None:
    version = create_contract(ctx, EXAMPLE, actor=operator("maria")).version
    approve_contract(ctx, version, role="marketing", actor=operator("maria"))
    approve_contract(ctx, version, role="sales", actor=operator("sam"))
    activate_contract(ctx, version, actor=operator("maria"))
    create_team(ctx, TeamCreate(name="na", manager_email="sam@lumen.example"), actor=OPS)
    create_rep(ctx, RepCreate(email="ana@lumen.example", name="Ana", team="na"), actor=OPS)


def _entry(item: TimelineItem) -> str:
    if item.kind == "transition":
        return f"{item.data['from']} → {item.data['to']}"
    if item.kind == "handoff":
        return f"handoff {item.data['event']}"
    if item.kind == "activity":
        return str(item.data["type"])
    return item.kind


def test_a_whole_handoff_in_one_instant_reads_in_causal_order(
    ctx: Context, capture: Capture
) -> None:
    _sales_floor(ctx)
    lead_id = capture(
        email="dana@northwind.com",
        first_name="Dana",
        last_name="Reyes",
        company="Northwind Traders",
        country="US",
    ).lead.id
    raise_hand = {"email": "dana@northwind.com", "type": "demo_request"}
    ingest_activity(ctx, ActivityCreate.model_validate(raise_hand), actor=operator("web"))
    [handoff] = list_handoffs(ctx, lead_id=lead_id, actor=OPS)
    rep = operator("ana")
    accept_handoff(ctx, handoff.id, actor=OPS)
    log_touch(ctx, handoff.id, kind="call", actor=rep)
    qualify_handoff(ctx, handoff.id, fields=BUDGET, actor=OPS)
    won_handoff(ctx, handoff.id, amount=24_000, actor=OPS)  # from SQL: two stage changes

    items = lead_timeline(ctx, lead_id, actor=OPS)

    assert len({i.at for i in items}) == 1, "the clock never moved"
    entries = [_entry(i) for i in items]
    assert entries == [
        "created",
        "captured",
        "demo_request",
        "lead → mql",
        "mql → sal",
        "sal → sql",
        "sql → opportunity",
        "opportunity → customer",
        "handoff assigned",
        "handoff accepted",
        "handoff touch",
        "handoff qualified",
        "handoff won",
    ]
    assert [_entry(i) for i in lead_timeline(ctx, lead_id, actor=OPS, limit=3)] == entries[-3:]


def test_a_merge_reads_before_the_handoff_it_closes(
    ctx: Context, clock: ManualClock, capture: Capture
) -> None:
    _sales_floor(ctx)
    survivor = capture(email="dana@northwind.com", company="Northwind Traders").lead.id
    absorbed = capture(email="dana.reyes@gmail.com", country="US").lead.id
    raise_hand = {"email": "dana.reyes@gmail.com", "type": "demo_request"}
    ingest_activity(ctx, ActivityCreate.model_validate(raise_hand), actor=operator("web"))
    [handoff] = list_handoffs(ctx, lead_id=absorbed, actor=OPS)
    assert handoff.status == "assigned"
    clock.advance(hours=1)

    merge_leads(ctx, survivor, absorbed, actor=operator("alice"))

    merged_at = clock.now()
    at_merge = [_entry(i) for i in lead_timeline(ctx, survivor, actor=OPS) if i.at == merged_at]
    assert at_merge == ["merge", "handoff closed"]
    [closed] = list_handoffs(ctx, lead_id=absorbed, actor=OPS)
    assert (closed.id, closed.status) == (handoff.id, "closed")
