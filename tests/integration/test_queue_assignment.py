"""The unassigned queue after a contract change, and a manager's assignment of a
queued handoff to a rep they name (issue 11, item 8), on SQLite and PostgreSQL.

Contracts: ``contracts/example.yaml`` (US leads to team na, GB/DE/FR/NL to emea,
1,000+ employees to enterprise; 30 business minutes to accept), and a version 1 of it
with no routing rules at all, under which every MQL waits in the queue. Time: Monday
2026-03-02 09:00 UTC; reps work 09:00-17:00 UTC on weekdays unless told otherwise.
"""

from __future__ import annotations

import re
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from tests.conftest import principal_for

from baton.domain.access import Principal, operator
from baton.domain.activities import ActivityCreate
from baton.domain.clock import ManualClock
from baton.domain.errors import Conflict, Forbidden, NotFound, ValidationFailed
from baton.domain.leads import LeadCreate
from baton.domain.reps import AbsenceCreate, RepCreate, RepUpdate, TeamCreate
from baton.services.activities import ingest_activity
from baton.services.context import Context
from baton.services.contracts import activate_contract, approve_contract, create_contract
from baton.services.handoffs import (
    HandoffPublic,
    accept_handoff,
    assign_handoff,
    get_handoff,
    handoff_events_of,
    list_handoffs,
)
from baton.services.leads import capture_lead
from baton.services.reps import add_absence, create_rep, create_team, update_rep
from baton.services.worker import assign_queued
from baton.store.tables import outbox

EXAMPLE = (Path(__file__).parents[2] / "contracts" / "example.yaml").read_text()
NO_RULES = re.sub(
    r"\nrouting:\n.*?\n(?=# What sales promises)",
    "\nrouting:\n  rules: []\n\n",
    EXAMPLE,
    flags=re.DOTALL,
)
SAM, ERIN = "sam@lumen.example", "erin@lumen.example"
ANA, BEN, EMIL = "ana@lumen.example", "ben@lumen.example", "emil@lumen.example"
OPS = operator("ops")


def activate(ctx: Context, body: str) -> int:
    version = create_contract(ctx, body, actor=operator("maria")).version
    approve_contract(ctx, version, role="marketing", actor=operator("maria"))
    approve_contract(ctx, version, role="sales", actor=operator("sam"))
    activate_contract(ctx, version, actor=operator("maria"))
    return version


def rep(ctx: Context, email: str, team: str, **fields: Any) -> int:
    name = email.split("@")[0].title()
    return create_rep(ctx, RepCreate(email=email, name=name, team=team, **fields), actor=OPS).id


def floor(ctx: Context) -> None:
    """Team na (Ana, Ben) managed by Sam, team emea (Emil) managed by Erin."""
    create_team(ctx, TeamCreate(name="na", manager_email=SAM), actor=OPS)
    create_team(ctx, TeamCreate(name="emea", manager_email=ERIN), actor=OPS)
    rep(ctx, ANA, "na")
    rep(ctx, BEN, "na")
    rep(ctx, EMIL, "emea")


def hand_raise(ctx: Context, email: str, **fields: Any) -> int:
    data = LeadCreate.model_validate(
        {"email": email, "first_name": "Dana", "country": "US", **fields},
        context={"default_region": "US"},
    )
    lead_id = capture_lead(ctx, data, actor=operator("form")).lead.id
    event = ActivityCreate(email=email, type="demo_request", occurred_at=ctx.clock.now())
    ingest_activity(ctx, event, actor=operator("web"))
    return lead_id


def handoff_of(ctx: Context, lead_id: int) -> HandoffPublic:
    [handoff] = list_handoffs(ctx, lead_id=lead_id, actor=OPS)
    return handoff


def enterprise_lead(ctx: Context, email: str = "cio@bigcorp.example.com") -> HandoffPublic:
    """A US company of 5,000: the enterprise pool, which has no reps, so it queues."""
    handoff = handoff_of(ctx, hand_raise(ctx, email, attributes={"employees": 5000}))
    assert handoff.status == "queued", handoff
    assert handoff.routing["reason"] == "team enterprise has no reps"
    return handoff


def manager(ctx: Context, email: str = SAM, team: str = "na") -> Principal:
    return principal_for(ctx, "sales_manager", email=email, teams=(team,))


def kinds(ctx: Context, handoff_id: int) -> list[str]:
    return [e.kind for e in handoff_events_of(ctx, handoff_id, actor=OPS)]


# --- the queue routes with the contract active now ----------------------------------------


def test_handoffs_queued_under_an_old_contract_are_routed_by_the_new_one(
    ctx: Context, clock: ManualClock
) -> None:
    floor(ctx)
    old = activate(ctx, NO_RULES)
    german = handoff_of(ctx, hand_raise(ctx, "jonas@fabrik.example.de", country="DE"))
    clock.advance(minutes=1)
    american = handoff_of(ctx, hand_raise(ctx, "lou@tiny.example.com"))
    for queued in (german, american):
        assert (queued.status, queued.contract_version) == ("queued", old)
        assert queued.routing["reason"] == "no routing rules"
    update_rep(ctx, rep_id_of(ctx, EMIL), RepUpdate(status="away"), actor=OPS)
    assert assign_queued(ctx) == 0, "version 1 has no rules: nobody can be chosen"

    new = activate(ctx, EXAMPLE)
    clock.advance(minutes=5)
    assert assign_queued(ctx) == 1

    routed = get_handoff(ctx, american.id, actor=OPS)
    assert (routed.status, routed.contract_version) == ("assigned", new)
    assert routed.rep_email in (ANA, BEN)
    assert routed.routing["rule"] == "Everyone else"
    assert routed.assigned_at == clock.now()
    assert routed.accept_due_at == clock.now() + timedelta(minutes=30), "the new SLA"
    assert kinds(ctx, american.id) == ["queued", "assigned"]
    # The German lead's pool under version 2 (emea) has nobody: it waits, and says why
    # now, not why it waited under version 1. It did not hold the American lead up.
    waiting = get_handoff(ctx, german.id, actor=OPS)
    assert (waiting.status, waiting.contract_version) == ("queued", old)
    assert waiting.routing["reason"] == "nobody in team emea is available"
    assert waiting.routing["skipped"] == [
        {"rep_id": rep_id_of(ctx, EMIL), "rep": EMIL, "reason": "status away"}
    ]

    update_rep(ctx, rep_id_of(ctx, EMIL), RepUpdate(status="available"), actor=OPS)
    assert assign_queued(ctx) == 1
    assert get_handoff(ctx, german.id, actor=OPS).rep_email == EMIL


def rep_id_of(ctx: Context, email: str) -> int:
    from baton.services.reps import find_rep

    return find_rep(ctx, email, actor=OPS).id


def test_a_pass_reads_on_past_a_long_queue_of_a_pool_with_nobody(
    ctx: Context, clock: ManualClock
) -> None:
    """More handoffs of a pool with nobody than one pass reads at a time (its
    ``limit``) do not hold up a later handoff of a pool that has someone free: the
    pass skips the stuck pool's handoffs and reads on."""
    floor(ctx)
    activate(ctx, EXAMPLE)
    stuck = [enterprise_lead(ctx, f"cio{i}@bigcorp{i}.example.com") for i in range(4)]
    for email in (ANA, BEN):
        update_rep(ctx, rep_id_of(ctx, email), RepUpdate(status="away"), actor=OPS)
    clock.advance(minutes=1)
    later = handoff_of(ctx, hand_raise(ctx, "lou@tiny.example.com"))
    assert later.status == "queued"
    update_rep(ctx, rep_id_of(ctx, ANA), RepUpdate(status="available"), actor=OPS)
    clock.advance(minutes=1)

    assert assign_queued(ctx, limit=2) == 1

    assert get_handoff(ctx, later.id, actor=OPS).rep_email == ANA
    assert [get_handoff(ctx, h.id, actor=OPS).status for h in stuck] == ["queued"] * 4


# --- a manager assigns a queued handoff to a named rep -------------------------------------


def test_a_manager_gives_a_queued_handoff_to_a_rep_of_their_team(
    ctx: Context, clock: ManualClock
) -> None:
    floor(ctx)
    version = activate(ctx, EXAMPLE)
    queued = enterprise_lead(ctx)
    sam = manager(ctx)
    clock.advance(minutes=3)

    assigned = assign_handoff(ctx, queued.id, to_email=ANA, actor=sam)

    assert (assigned.status, assigned.rep_email, assigned.contract_version) == (
        "assigned",
        ANA,
        version,
    )
    assert assigned.assigned_at == clock.now()
    assert assigned.accept_due_at == clock.now() + timedelta(minutes=30)
    assert assigned.next_step_at == clock.now() + timedelta(minutes=20), "the SLA ladder runs"
    assert assigned.routing["assigned_by"] == sam.name
    assert assigned.routing["strategy"] == "manual"
    assert assigned.routing["reason"] == f"assigned by {sam.name}"
    [event] = [e for e in handoff_events_of(ctx, queued.id, actor=OPS) if e.kind == "assigned"]
    assert (event.actor, event.detail["rep"]) == (sam.name, ANA)
    with ctx.read() as connection:
        sent = connection.execute(
            select(outbox.c.channel, outbox.c.topic, outbox.c.recipient).where(
                outbox.c.handoff_id == queued.id, outbox.c.topic == "handoff.assigned"
            )
        ).all()
    assert ("email", "handoff.assigned", ANA) in [tuple(r) for r in sent]
    # Ana works it like any other handoff, and the worker leaves it alone.
    assert assign_queued(ctx) == 0
    ana = principal_for(ctx, "rep", rep_email=ANA)
    assert accept_handoff(ctx, queued.id, actor=ana).status == "accepted"


def test_an_unavailable_rep_gets_it_only_with_the_managers_recorded_reason(
    ctx: Context, clock: ManualClock
) -> None:
    floor(ctx)
    activate(ctx, EXAMPLE)
    update_rep(ctx, rep_id_of(ctx, BEN), RepUpdate(status="away"), actor=OPS)
    start = clock.now() - timedelta(hours=1)
    add_absence(
        ctx,
        rep_id_of(ctx, ANA),
        AbsenceCreate(starts_at=start, ends_at=start + timedelta(days=1)),
        actor=OPS,
    )
    sam = manager(ctx)
    queued = enterprise_lead(ctx)

    with pytest.raises(Conflict, match=r"ben@lumen\.example cannot take leads now \(status away\)"):
        assign_handoff(ctx, queued.id, to_email=BEN, actor=sam)
    with pytest.raises(Conflict, match=r"\(out of office\)"):
        assign_handoff(ctx, queued.id, to_email=ANA, actor=sam)
    with pytest.raises(ValidationFailed, match="needs a reason"):
        assign_handoff(ctx, queued.id, to_email=BEN, actor=sam, override_reason="   ")
    assert get_handoff(ctx, queued.id, actor=OPS).status == "queued"

    done = assign_handoff(
        ctx, queued.id, to_email=BEN, actor=sam, override_reason="Ben is back at noon"
    )
    assert (done.status, done.rep_email) == ("assigned", BEN)
    assert done.routing["unavailable"] == "status away"
    assert done.routing["override_reason"] == "Ben is back at noon"
    assert "although status away: Ben is back at noon" in done.routing["reason"]
    [event] = [e for e in handoff_events_of(ctx, queued.id, actor=OPS) if e.kind == "assigned"]
    assert event.detail["override_reason"] == "Ben is back at noon"
    assert event.detail["unavailable"] == "status away"

    # Outside working hours is an availability too (Saturday).
    clock.set(clock.now() + timedelta(days=5))
    later = enterprise_lead(ctx, "cfo@bigcorp.example.com")
    with pytest.raises(Conflict, match=r"outside working hours \(UTC\)"):
        assign_handoff(ctx, later.id, to_email=EMIL, actor=OPS)
    done = assign_handoff(ctx, later.id, to_email=EMIL, actor=OPS, override_reason="on call")
    assert done.rep_email == EMIL
    assert done.accept_due_at is not None and done.accept_due_at > clock.now() + timedelta(
        days=1
    ), "deadlines run in Emil's business hours, from Monday"


def test_capacity_and_deactivation_are_never_overridden(ctx: Context) -> None:
    floor(ctx)
    activate(ctx, EXAMPLE)
    update_rep(ctx, rep_id_of(ctx, ANA), RepUpdate(capacity=1), actor=OPS)
    update_rep(ctx, rep_id_of(ctx, BEN), RepUpdate(active=False), actor=OPS)
    sam = manager(ctx)
    first, second = enterprise_lead(ctx), enterprise_lead(ctx, "cto@bigcorp.example.com")
    assign_handoff(ctx, first.id, to_email=ANA, actor=sam)
    with pytest.raises(Conflict, match=r"at capacity \(1/1 open handoffs\)"):
        assign_handoff(ctx, second.id, to_email=ANA, actor=sam, override_reason="please")
    with pytest.raises(Conflict, match="deactivated"):
        assign_handoff(ctx, second.id, to_email=BEN, actor=sam, override_reason="please")
    assert get_handoff(ctx, second.id, actor=OPS).status == "queued"


def test_who_may_assign_and_to_whom(ctx: Context) -> None:
    floor(ctx)
    activate(ctx, EXAMPLE)
    queued = enterprise_lead(ctx)
    with pytest.raises(Forbidden):
        assign_handoff(ctx, queued.id, to_email=ANA, actor=principal_for(ctx, "rep", rep_email=ANA))
    with pytest.raises(Forbidden):
        assign_handoff(ctx, queued.id, to_email=ANA, actor=principal_for(ctx, "marketing"))
    sam = manager(ctx)
    with pytest.raises(NotFound, match=re.escape(f"rep {EMIL} does not exist")):
        assign_handoff(ctx, queued.id, to_email=EMIL, actor=sam)
    with pytest.raises(NotFound, match=re.escape("rep nobody@lumen.example does not exist")):
        assign_handoff(ctx, queued.id, to_email="nobody@lumen.example", actor=OPS)
    with pytest.raises(NotFound, match="handoff 999999 does not exist"):
        assign_handoff(ctx, 999_999, to_email=ANA, actor=OPS)
    # Erin manages emea: Emil is hers to name, Ana is not.
    erin = manager(ctx, ERIN, "emea")
    with pytest.raises(NotFound):
        assign_handoff(ctx, queued.id, to_email=ANA, actor=erin)
    assert assign_handoff(ctx, queued.id, to_email=EMIL, actor=erin).rep_email == EMIL

    # Only a queued handoff: one a rep has is reassigned instead.
    with pytest.raises(Conflict, match="it is assigned, and only a queued handoff is assigned"):
        assign_handoff(ctx, queued.id, to_email=EMIL, actor=OPS)
    # ... and once it is Emil's, it is out of Sam's reach altogether.
    with pytest.raises(NotFound):
        assign_handoff(ctx, queued.id, to_email=ANA, actor=sam)


def test_managers_racing_for_one_rep_never_exceed_capacity_or_assign_twice(
    ctx: Context,
) -> None:
    floor(ctx)
    activate(ctx, EXAMPLE)
    update_rep(ctx, rep_id_of(ctx, ANA), RepUpdate(capacity=2), actor=OPS)
    queued = [enterprise_lead(ctx, f"exec{i}@bigcorp.example.com") for i in range(4)]
    attempts = [(h.id, to) for h in queued for to in (ANA, ANA)]
    barrier = threading.Barrier(len(attempts))

    def attempt(args: tuple[int, str]) -> str:
        handoff_id, to = args
        barrier.wait()
        try:
            assign_handoff(ctx, handoff_id, to_email=to, actor=OPS)
        except Conflict:
            return "refused"
        return "assigned"

    with ThreadPoolExecutor(len(attempts)) as pool:
        outcomes = list(pool.map(attempt, attempts))
    assert outcomes.count("assigned") == 2
    mine = list_handoffs(ctx, rep_email=ANA, actor=OPS)
    assert len(mine) == 2
    for handoff in queued:
        assert kinds(ctx, handoff.id).count("assigned") <= 1
