"""The SLA report keeps a handoff still inside its window apart (a newcomer's trial:
100 handoffs 5 minutes old, 30 minutes to accept, read "not accepted 100, 0.0% in
SLA"). Pending until its deadline passes, then not accepted (or accepted)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from baton.domain.access import operator
from baton.domain.activities import ActivityCreate
from baton.domain.clock import ManualClock
from baton.domain.reports import ReportPeriod
from baton.domain.reps import RepCreate, TeamCreate
from baton.services.activities import ingest_activity
from baton.services.context import Context
from baton.services.contracts import activate_contract, approve_contract, create_contract
from baton.services.handoffs import accept_handoff, list_handoffs
from baton.services.reports import sla_compliance
from baton.services.reps import create_rep, create_team

EXAMPLE = Path(__file__).parents[2] / "contracts" / "example.yaml"
OPS = operator("ops")


def test_a_handoff_inside_its_window_is_pending_not_missed(
    ctx: Context, clock: ManualClock
) -> None:
    version = create_contract(ctx, EXAMPLE.read_text(), actor=OPS).version
    approve_contract(ctx, version, role="marketing", actor=operator("maria"))
    approve_contract(ctx, version, role="sales", actor=operator("sam"))
    activate_contract(ctx, version, actor=OPS)
    create_team(ctx, TeamCreate(name="na", manager_email="sam@lumen.example"), actor=OPS)
    create_rep(ctx, RepCreate(email="ana@lumen.example", name="Ana", team="na"), actor=OPS)
    for n in range(2):
        ingest_activity(
            ctx,
            ActivityCreate(
                email=f"ops@small{n}.example.com", type="demo_request", occurred_at=clock.now()
            ),
            actor=OPS,
        )
    first, second = list_handoffs(ctx, actor=OPS)
    assert first.status == second.status == "assigned"
    period = ReportPeriod.from_dates(clock.now().date(), clock.now().date() + timedelta(days=1))

    clock.advance(minutes=5)
    [row] = sla_compliance(ctx, period, actor=OPS).rows
    assert (row.handoffs, row.accepted_in_sla, row.not_accepted, row.pending_accept) == (2, 0, 0, 2)
    assert (row.not_touched, row.pending_touch) == (0, 2)
    assert row.accepted_in_sla_share is None, "no window has closed: no share yet"

    accept_handoff(ctx, first.id, actor=operator("ana@lumen.example"))
    clock.advance(minutes=40)  # the second's 30 minutes to accept have passed
    [row] = sla_compliance(ctx, period, actor=OPS).rows
    assert (row.accepted_in_sla, row.not_accepted, row.pending_accept) == (1, 1, 0)
    assert row.accepted_in_sla_share == 0.5
    assert (row.not_touched, row.pending_touch) == (0, 2), "120 minutes to touch"
