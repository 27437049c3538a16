"""Capacity planning on a real roster and a real MQL history (issue 16, item 5), on
SQLite and PostgreSQL: the plan reads the reps, their absences, the active contract and
the MQLs of the last weeks, simulates in memory and writes nothing.

History: two weeks before Monday 2026-03-02 09:00 UTC, 10 hand-raises, all on weekdays
between 10:00 and 11:00 UTC (8 from the US for team na, 2 from Germany for emea).
Roster: Ana and Ben in na, Emil in emea, 09:00-17:00 UTC on weekdays; Ben is out of
office the whole planned week.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from tests.conftest import principal_for

from baton.domain.access import operator
from baton.domain.activities import ActivityCreate
from baton.domain.clock import ManualClock
from baton.domain.errors import Forbidden, ValidationFailed
from baton.domain.leads import LeadCreate
from baton.domain.lifecycle import Stage
from baton.domain.reps import AbsenceCreate, RepCreate, TeamCreate
from baton.services.activities import ingest_activity
from baton.services.capacity import CapacityRequest, plan_capacity
from baton.services.context import Context
from baton.services.contracts import activate_contract, approve_contract, create_contract
from baton.services.handoffs import list_handoffs, log_touch
from baton.services.leads import capture_lead, change_stage
from baton.services.reps import add_absence, create_rep, create_team
from baton.store.tables import handoffs, rotations, transitions

EXAMPLE = (Path(__file__).parents[2] / "contracts" / "example.yaml").read_text()
OPS = operator("ops")
START = datetime(2026, 2, 16, 9, 0, tzinfo=UTC)  # a Monday
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # two weeks later


def activate(ctx: Context) -> None:
    version = create_contract(ctx, EXAMPLE, actor=operator("maria")).version
    approve_contract(ctx, version, role="marketing", actor=operator("maria"))
    approve_contract(ctx, version, role="sales", actor=operator("sam"))
    activate_contract(ctx, version, actor=operator("maria"))


def rep(ctx: Context, email: str, team: str) -> int:
    data = RepCreate(email=email, name=email.split("@")[0].title(), team=team)
    return create_rep(ctx, data, actor=OPS).id


def hand_raise(ctx: Context, n: int, country: str) -> int:
    email = f"buyer{n}@firm{n}.example.com"
    data = LeadCreate.model_validate(
        {"email": email, "first_name": "Dana", "country": country},
        context={"default_region": "US"},
    )
    lead_id = capture_lead(ctx, data, actor=operator("form")).lead.id
    event = ActivityCreate(email=email, type="demo_request", occurred_at=ctx.clock.now())
    ingest_activity(ctx, event, actor=operator("web"))
    return lead_id


def counts(ctx: Context) -> tuple[Any, ...]:
    with ctx.read() as connection:
        return tuple(
            connection.execute(select(func.count()).select_from(t)).scalar()
            for t in (handoffs, transitions, rotations)
        )


@pytest.fixture
def world(ctx: Context) -> Context:
    clock = ctx.clock
    assert isinstance(clock, ManualClock)
    clock.set(START)
    activate(ctx)
    for team in ("na", "emea"):
        create_team(ctx, TeamCreate(name=team), actor=OPS)
    rep(ctx, "ana@lumen.example", "na")
    ben = rep(ctx, "ben@lumen.example", "na")
    rep(ctx, "emil@lumen.example", "emea")
    for n in range(10):
        day = (n % 5) + 7 * (n // 5)  # Mon-Fri of both weeks
        clock.set(START + timedelta(days=day, hours=1, minutes=5 * n))
        hand_raise(ctx, n, "DE" if n in (3, 8) else "US")
    clock.set(NOW)
    absence = AbsenceCreate(starts_at=NOW - timedelta(hours=9), ends_at=NOW + timedelta(days=15))
    add_absence(ctx, ben, absence, actor=OPS)
    return ctx


def test_the_plan_runs_the_roster_and_history_and_writes_nothing(world: Context) -> None:
    before = counts(world)
    plan = plan_capacity(world, CapacityRequest(weeks=2, minutes_per_lead=10, runs=2), actor=OPS)
    assert counts(world) == before
    assert plan.arrivals_from == "MQL history, last 2 weeks: 10 MQLs"
    assert plan.sla_from == "contract v1" and plan.warnings == []
    assert plan.runs == 2 and plan.mqls_expected == 10
    assert plan.mqls_per_week == 5
    assert plan.rates[10] == 1 and plan.rates[9] == 0  # Monday 10:00-11:00 UTC
    assert plan.roster.startswith("the current roster (3 active reps")
    assert plan.sla_minutes == 120 and plan.sla_business_hours
    assert plan.week_of == datetime(2026, 3, 9, tzinfo=UTC)  # the next Monday
    # Ben is out of office: on Monday at 10:00 two of the three reps work.
    assert plan.staffing[0][10] == 2 and plan.staffing[0][8] == 0
    # Five MQLs a week in weekday mornings: most touched at once; US ones arriving in
    # the same hour wait for Ana (Ben is away), never beyond the 2-hour SLA.
    assert plan.mqls_simulated > 0
    assert plan.share_touched == 1.0 and plan.share_within_sla == 1.0
    assert 0.5 < plan.share_within <= 1.0
    assert plan.p50_minutes == 0 and (plan.p99_minutes or 0) < 60
    assert plan.minutes_per_lead_from == "given"


def test_no_reps_or_no_history_are_clear_errors(ctx: Context) -> None:
    assert isinstance(ctx.clock, ManualClock)
    ctx.clock.set(NOW)
    with pytest.raises(ValidationFailed, match="give the arrival rates"):
        plan_capacity(ctx, CapacityRequest(reps=2), actor=OPS)
    with pytest.raises(ValidationFailed, match="no active reps on the roster"):
        plan_capacity(ctx, CapacityRequest(rates=["Mon-Fri 09-17=2"]), actor=OPS)
    with pytest.raises(ValidationFailed, match="is not a number"):
        plan_capacity(ctx, CapacityRequest(rates=["Mon=lots"], reps=1), actor=OPS)
    # Hypothetical reps with given rates need nothing from the database; the search
    # finds the reps for 90 % within 5 minutes.
    plan = plan_capacity(
        ctx,
        CapacityRequest(
            rates=["Mon-Fri 09-17=4"],
            reps=0,
            minutes_per_lead=12,
            target=0.9,
            runs=1,
        ),
        actor=OPS,
    )
    assert plan.target_met and plan.share_within >= 0.9
    assert plan.reps == sum(s.reps for s in plan.added) >= 2
    assert plan.search[-1].share >= 0.9
    assert plan.minutes_per_lead_from == "given"


def test_only_planners_may_plan(world: Context) -> None:
    rep_user = principal_for(world, "rep", rep_email="ana@lumen.example")
    with pytest.raises(Forbidden):
        plan_capacity(world, CapacityRequest(weeks=2), actor=rep_user)
    marketing = principal_for(world, "marketing")
    plan = plan_capacity(world, CapacityRequest(weeks=2, runs=1), actor=marketing)
    assert plan.minutes_per_lead_from.startswith("Baton's default: no touched handoff")
    assert plan.minutes_per_lead == 10


def test_the_search_adds_reps_to_the_pools_of_the_contract(world: Context) -> None:
    # 4 MQLs an hour on weekday mornings (the replayed leads: 8 in 10 from the US), 30
    # minutes each: Ana alone (Ben is away) cannot keep up; the search adds reps to
    # team na, the pool the US leads go to; Emil keeps up with emea's.
    plan = plan_capacity(
        world,
        CapacityRequest(
            rates=["Mon-Fri 10-12=4"], minutes_per_lead=30, target=0.9, runs=1, weeks=2
        ),
        actor=OPS,
    )
    assert plan.target_met
    assert plan.added and all(s.hours.endswith("team na") for s in plan.added)
    assert all(p.hours.endswith("team na") for p in plan.search)


def test_work_per_lead_defaults_to_the_median_rep_delay(ctx: Context) -> None:
    clock = ctx.clock
    assert isinstance(clock, ManualClock)
    clock.set(NOW)
    activate(ctx)
    create_team(ctx, TeamCreate(name="na"), actor=OPS)
    rep(ctx, "ana@lumen.example", "na")
    for n, minutes in enumerate((12, 20, 4)):
        [handoff] = list_handoffs(ctx, lead_id=hand_raise(ctx, n, "US"), actor=OPS)
        clock.advance(minutes=minutes)
        log_touch(ctx, handoff.id, kind="call", actor=OPS)
    plan = plan_capacity(ctx, CapacityRequest(rates=["Mon=1"], reps=1, runs=1), actor=OPS)
    assert plan.minutes_per_lead == 12
    assert plan.minutes_per_lead_from == "median rep delay, assignment → first touch"


def test_an_import_dated_now_and_no_contract_are_said_not_silently_used(ctx: Context) -> None:
    """24 leads made MQLs within one hour (what an import that dates its MQLs when it
    runs leaves), no active contract, hypothetical reps: the plan warns that the
    arrival pattern comes from an import and that the SLA is Baton's default; the
    internal pool of the hypothetical reps is never named; a small volume gets more
    runs, and the expected arrivals are reported beside the simulated ones."""
    assert isinstance(ctx.clock, ManualClock)
    ctx.clock.set(NOW - timedelta(hours=1))
    for n in range(24):
        data = LeadCreate.model_validate({"email": f"row{n}@import.example.com"})
        lead_id = capture_lead(ctx, data, actor=operator("import")).lead.id
        change_stage(ctx, lead_id, Stage.MQL, actor=OPS, reason="imported as an MQL")
    ctx.clock.set(NOW)
    plan = plan_capacity(ctx, CapacityRequest(reps=1, hours="Mon-Fri 10-11"), actor=OPS)
    assert plan.arrivals_from == "MQL history, last 8 weeks: 24 MQLs"
    imported, default_sla = plan.warnings
    assert "24 of the 24 MQLs in the history (100%) became MQLs within one hour" in imported
    assert "2026-03-02 08:00 UTC" in imported and "--rate" in imported
    assert plan.sla_from == "Baton's default: no active contract"
    assert default_sla.startswith("no active contract: the SLA used is Baton's default")
    assert "first touch within 120 minutes of business time" in default_sla
    # 3 MQLs a week: 20 runs (the most), 60 expected; the draws are reported.
    assert plan.runs == 20 and plan.mqls_expected == 60
    assert plan.mqls_simulated > 0
    reasons = " ".join(reason for reason, _ in plan.waiting_reasons)
    assert "no hypothetical rep is available" in reasons
    assert "capacity-plan" not in repr(plan)
    # Given rates are the reader's own: no import warning; a big volume keeps 3 runs.
    given = plan_capacity(
        ctx, CapacityRequest(rates=["Mon-Fri 09-17=5"], reps=2, target=0.5), actor=OPS
    )
    assert len(given.warnings) == 1 and given.runs == 3 and given.mqls_expected == 600
    assert all(point.hours.endswith("hypothetical reps") for point in given.search)
