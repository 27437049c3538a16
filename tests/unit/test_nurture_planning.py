"""Nurture cadence planning (baton.domain.nurture) over an injected clock: bounds,
working days by country, conditions that skip steps, touch caps, exits; the invariants
by hypothesis (spacing always within the contract's bounds, never more touches than
the cap, nothing planned after an exit, the same inputs always give the same plan)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from baton.domain.nurture import (
    Blocker,
    Bounds,
    Completion,
    ExitReason,
    LeadFacts,
    Reachability,
    blockers,
    due_after,
    ends,
    exit_for_activity,
    exit_for_stage,
    plan_after_touch,
    plan_first,
    weekend_of,
)
from baton.domain.nurture_rules import NurtureStep, StepWhen

MONDAY = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def step(delay: int, template: str = "t", **when: object) -> NurtureStep:
    return NurtureStep(
        template=template, delay_days=delay, when=StepWhen.model_validate(when) if when else None
    )


def test_first_step_is_due_its_delay_after_enrollment() -> None:
    plan = plan_first([step(7)], enrolled_at=MONDAY, lead=LeadFacts(), max_touches=10)
    assert (plan.step, plan.due_at, plan.status) == (0, MONDAY + timedelta(days=7), "active")


def test_a_step_whose_condition_fails_is_skipped_and_the_next_counts_from_the_last_touch() -> None:
    steps = [step(7), step(14, grades=["A"]), step(21)]
    lead = LeadFacts(grade="C")
    plan = plan_after_touch(
        steps, sent_step=0, touches=1, touched_at=MONDAY, lead=lead, max_touches=10
    )
    assert (plan.step, plan.due_at) == (2, MONDAY + timedelta(days=21))
    graded = plan_after_touch(
        steps, sent_step=0, touches=1, touched_at=MONDAY, lead=LeadFacts(grade="A"), max_touches=10
    )
    assert graded.step == 1


def test_sources_and_countries_conditions() -> None:
    steps = [step(7, sources=["Webinar"], countries=["de"])]
    assert (
        plan_first(
            steps, enrolled_at=MONDAY, lead=LeadFacts("DE", None, "webinar"), max_touches=3
        ).step
        == 0
    )
    nothing = plan_first(
        steps, enrolled_at=MONDAY, lead=LeadFacts("FR", None, "webinar"), max_touches=3
    )
    assert (nothing.step, nothing.status, nothing.completion) == (
        None,
        "completed",
        Completion.COMPLETED,
    )


def test_the_touch_cap_completes_the_enrollment() -> None:
    plan = plan_after_touch(
        [step(7)] * 5, sent_step=1, touches=2, touched_at=MONDAY, lead=LeadFacts(), max_touches=2
    )
    assert (plan.step, plan.status, plan.completion) == (None, "completed", Completion.MAX_TOUCHES)


def test_after_the_last_step_the_enrollment_is_completed() -> None:
    plan = plan_after_touch(
        [step(7)], sent_step=0, touches=1, touched_at=MONDAY, lead=LeadFacts(), max_touches=10
    )
    assert (plan.status, plan.completion) == ("completed", Completion.COMPLETED)


def test_working_days_move_a_weekend_date_to_monday_or_to_sunday_in_the_gulf() -> None:
    friday = datetime(2026, 3, 6, 9, 0, tzinfo=UTC)
    # 8 days after Friday is a Saturday: Sat-Sun weekend -> Monday.
    assert due_after(friday, 8, working_days_only=True, country="DE").weekday() == 0
    # In Saudi Arabia (Fri-Sat) the same Saturday moves to Sunday.
    assert due_after(friday, 8, working_days_only=True, country="SA").weekday() == 6
    # Without working_days_only, the weekend date stands.
    assert due_after(friday, 8, country="DE").weekday() == 5
    assert weekend_of(None) == weekend_of("us") == frozenset({5, 6})


def test_bounds_win_over_working_days() -> None:
    friday = datetime(2026, 3, 6, 9, 0, tzinfo=UTC)
    # 8 days -> Saturday, but the max is 8: moving to Monday would break it, so Friday.
    due = due_after(friday, 8, working_days_only=True, country="DE", bounds=Bounds(6, 8))
    assert due == friday + timedelta(days=7)
    # min = max = 8 and the day is a weekend: neither way keeps the bound, it stays.
    due = due_after(friday, 8, working_days_only=True, country="DE", bounds=Bounds(8, 8))
    assert due == friday + timedelta(days=8)


def test_exit_rules() -> None:
    assert exit_for_activity("email_reply", {"demo_request"}) is ExitReason.REPLY
    assert exit_for_activity("demo_request", {"demo_request"}) is ExitReason.HAND_RAISE
    assert exit_for_activity("email_open", {"demo_request"}) is None
    assert exit_for_stage("mql", "marketing") is ExitReason.RE_MQL
    assert exit_for_stage("mql", None) is ExitReason.RE_MQL
    assert exit_for_stage("mql", "rep") is ExitReason.SALES_TOOK_BACK
    assert exit_for_stage("disqualified", None) is ExitReason.DISQUALIFIED
    assert exit_for_stage("nurture", None) is None
    assert ends("unsubscribe", []) and ends("hard_bounce", []) and ends("erased", [])
    assert not ends("reply", ["hand_raise"]) and ends("reply", ["reply"])


def test_blockers_name_every_reason() -> None:
    ok = Reachability("a@b.example", True, "consent", False, False, None, False, "nurture")
    assert blockers(ok) == []
    bad = Reachability(None, False, None, True, True, "hard_bounce", True, "customer")
    assert blockers(bad) == [
        Blocker.NO_EMAIL,
        Blocker.NO_CONSENT,
        Blocker.UNSUBSCRIBED,
        Blocker.SUPPRESSED,
        Blocker.HARD_BOUNCE,
        Blocker.OPEN_HANDOFF,
        Blocker.STAGE,
    ]
    # A basis recorded but consent withdrawn: no lawful basis.
    withdrawn = Reachability("a@b.example", False, "consent", False, False, None, False, "lead")
    assert blockers(withdrawn) == [Blocker.NO_CONSENT]


# --- invariants ------------------------------------------------------------------------

bounds_st = st.tuples(st.integers(1, 60), st.integers(0, 60)).map(
    lambda t: Bounds(t[0], t[0] + t[1])
)


@st.composite
def sequences(draw: st.DrawFn) -> tuple[Bounds, list[NurtureStep]]:
    bounds = draw(bounds_st)
    count = draw(st.integers(1, 12))
    steps = []
    for _ in range(count):
        delay = draw(st.integers(int(bounds.min_days), int(bounds.max_days)))
        when: dict[str, object] = {}
        if draw(st.booleans()):
            when["working_days_only"] = True
        if draw(st.integers(0, 3)) == 0:
            when["grades"] = draw(st.lists(st.sampled_from("ABCD"), min_size=1, max_size=2))
        steps.append(step(delay, **when))
    return bounds, steps


leads_st = st.builds(
    LeadFacts,
    country=st.sampled_from([None, "US", "DE", "SA", "IR", "AE"]),
    grade=st.sampled_from([None, "A", "B", "C", "D"]),
    source=st.none(),
)
starts = st.datetimes(
    min_value=datetime(2024, 1, 1), max_value=datetime(2030, 12, 31), timezones=st.just(UTC)
)


def run(
    bounds: Bounds,
    steps: list[NurtureStep],
    lead: LeadFacts,
    start: datetime,
    cap: int,
    exit_after: int | None = None,
) -> list[datetime]:
    """Send every planned step on time; returns the touch times."""
    touches: list[datetime] = []
    plan = plan_first(steps, enrolled_at=start, lead=lead, max_touches=cap, bounds=bounds)
    while plan.status == "active":
        assert plan.step is not None and plan.due_at is not None
        touches.append(plan.due_at)
        if exit_after is not None and len(touches) >= exit_after:
            break  # exited: the enrollment plans nothing more
        plan = plan_after_touch(
            steps,
            sent_step=plan.step,
            touches=len(touches),
            touched_at=plan.due_at,
            lead=lead,
            max_touches=cap,
            bounds=bounds,
        )
    return touches


@settings(max_examples=300, deadline=None)
@given(sequences(), leads_st, starts, st.integers(1, 12))
def test_spacing_is_within_bounds_and_touches_within_the_cap(
    seq: tuple[Bounds, list[NurtureStep]], lead: LeadFacts, start: datetime, cap: int
) -> None:
    bounds, steps = seq
    touches = run(bounds, steps, lead, start, cap)
    assert len(touches) <= min(cap, len(steps))
    previous = start
    for at in touches:
        gap = at - previous
        assert timedelta(days=bounds.min_days) <= gap <= timedelta(days=bounds.max_days)
        previous = at


@settings(max_examples=200, deadline=None)
@given(sequences(), leads_st, starts, st.integers(1, 12))
def test_planning_is_deterministic(
    seq: tuple[Bounds, list[NurtureStep]], lead: LeadFacts, start: datetime, cap: int
) -> None:
    bounds, steps = seq
    assert run(bounds, steps, lead, start, cap) == run(bounds, steps, lead, start, cap)


@settings(max_examples=200, deadline=None)
@given(sequences(), leads_st, starts, st.integers(1, 12), st.integers(1, 5))
def test_an_exited_enrollment_never_plans_again(
    seq: tuple[Bounds, list[NurtureStep]], lead: LeadFacts, start: datetime, cap: int, after: int
) -> None:
    bounds, steps = seq
    full = run(bounds, steps, lead, start, cap)
    cut = run(bounds, steps, lead, start, cap, exit_after=after)
    assert cut == full[:after]


@pytest.mark.parametrize("country", ["US", "DE", "SA", "IR"])
def test_working_day_steps_never_land_on_the_weekend_when_bounds_allow(country: str) -> None:
    start = MONDAY
    for delay in range(6, 46):
        due = due_after(start, delay, working_days_only=True, country=country)
        assert due.weekday() not in weekend_of(country)
