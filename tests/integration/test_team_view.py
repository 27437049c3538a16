"""The manager's view of today (``services/team_view.py``), on SQLite and PostgreSQL:
open handoffs with their SLA state, the queue with its reasons, reps' availability.

Floor (from ``test_queue_assignment``): team na (Ana, Ben) managed by Sam, team emea
(Emil) managed by Erin, the example contract (30 business minutes to accept, a
reminder at 20). Time: Monday 2026-03-02 09:00 UTC; reps work 09:00-17:00 UTC.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from tests.conftest import principal_for
from tests.integration.test_queue_assignment import (
    ANA,
    BEN,
    EMIL,
    ERIN,
    EXAMPLE,
    OPS,
    activate,
    enterprise_lead,
    floor,
    hand_raise,
    handoff_of,
    manager,
)

from baton.domain.clock import ManualClock
from baton.domain.errors import Forbidden
from baton.domain.reps import AbsenceCreate, RepUpdate
from baton.services.context import Context
from baton.services.reps import add_absence, find_rep, update_rep
from baton.services.team_view import team_today
from baton.services.worker import run_due_steps


def test_a_manager_sees_their_team_today_and_the_queue_with_its_reasons(
    ctx: Context, clock: ManualClock
) -> None:
    floor(ctx)
    activate(ctx, EXAMPLE)
    now = clock.now()
    ben = find_rep(ctx, BEN, actor=OPS)
    add_absence(
        ctx,
        ben.id,
        AbsenceCreate(starts_at=now - timedelta(hours=1), ends_at=now + timedelta(days=1)),
        actor=OPS,
    )
    us = handoff_of(ctx, hand_raise(ctx, "dana@acme.example.com"))
    assert us.rep_email == ANA
    german = handoff_of(ctx, hand_raise(ctx, "jonas@fabrik.example.de", country="DE"))
    assert german.rep_email == EMIL
    queued = enterprise_lead(ctx)

    sam = manager(ctx)
    view = team_today(ctx, actor=sam)
    assert view.teams == ["na"]
    assert [h.handoff.id for h in view.handoffs] == [us.id]
    [mine] = view.handoffs
    assert (mine.sla.state, mine.sla.waiting_for) == ("on time", "accept")
    assert mine.sla.due_at == us.accept_due_at
    assert mine.lead.name == "Dana" and mine.team == "na" and mine.rep_timezone == "UTC"
    assert [(q.handoff.id, q.reason) for q in view.queue] == [
        (queued.id, "team enterprise has no reps")
    ]
    reps = {r.email: r for r in view.reps}
    assert set(reps) == {ANA, BEN}, "a manager sees their own reps only"
    assert (reps[ANA].availability, reps[ANA].open_handoffs, reps[ANA].capacity) == (
        "in hours",
        1,
        20,
    )
    assert reps[ANA].hours_today == [
        (now.replace(hour=9), now.replace(hour=17)),
    ]
    assert reps[BEN].availability == "out of office"
    assert reps[BEN].hours_today == []
    assert reps[BEN].next_working_at == (now + timedelta(days=1)).replace(hour=9)

    # The ladder's reminder at 20 business minutes, then the accept deadline passing.
    clock.advance(minutes=21)
    run_due_steps(ctx)
    [mine] = team_today(ctx, actor=sam).handoffs
    assert mine.sla.state == "reminded"
    clock.advance(minutes=10)
    [mine] = team_today(ctx, actor=sam).handoffs
    assert (mine.sla.state, mine.sla.waiting_for) == ("breached", "accept")

    # Full: at capacity; away: the rep's status.
    update_rep(ctx, reps[ANA].id, RepUpdate(capacity=1), actor=sam)
    assert {r.email: r.availability for r in team_today(ctx, actor=sam).reps}[ANA] == "full"
    erin = manager(ctx, ERIN, "emea")
    update_rep(ctx, german.rep_id or 0, RepUpdate(status="away"), actor=erin)
    other = team_today(ctx, actor=erin)
    assert [h.handoff.id for h in other.handoffs] == [german.id]
    assert [(r.email, r.availability) for r in other.reps] == [(EMIL, "away")]
    assert [q.handoff.id for q in other.queue] == [queued.id], "the queue is shared"


def test_an_admin_sees_every_team_or_one_and_others_are_refused(
    ctx: Context, clock: ManualClock
) -> None:
    floor(ctx)
    activate(ctx, EXAMPLE)
    hand_raise(ctx, "dana@acme.example.com")
    hand_raise(ctx, "jonas@fabrik.example.de", country="DE")
    admin = principal_for(ctx, "admin")
    view = team_today(ctx, actor=admin)
    assert view.teams == ["emea", "na"]
    assert len(view.handoffs) == 2
    assert {r.email for r in view.reps} == {ANA, BEN, EMIL}
    emea = team_today(ctx, actor=admin, team="emea")
    assert [r.email for r in emea.reps] == [EMIL]
    assert [h.handoff.rep_email for h in emea.handoffs] == [EMIL]
    limited = team_today(ctx, actor=admin, limit=1)
    assert len(limited.handoffs) == 1 and limited.more_handoffs
    for role, extra in (("rep", {"rep_email": ANA}), ("marketing", {})):
        with pytest.raises(Forbidden):
            team_today(ctx, actor=principal_for(ctx, role, **extra))
