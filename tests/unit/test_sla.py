"""The SLA clock: deadlines in the rep's business time (or wall-clock time), the ladder's
order, and which step comes next once a handoff is accepted or touched."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from baton.domain.business_hours import Absence, Schedule, WorkingHours
from baton.domain.contract import Sla, SlaStep
from baton.domain.sla import NextStep, deadline, ladder, next_step

NEW_YORK = Schedule("America/New_York", WorkingHours.weekdays())
BERLIN = Schedule("Europe/Berlin", WorkingHours.weekdays())


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def test_business_minutes_carry_over_the_weekend_in_the_reps_zone() -> None:
    # Friday 6 March 2026 16:50 in New York is 21:50 UTC (EST, UTC-5). Ten minutes are
    # left that day; the other twenty run from 09:00 on Monday 9 March, after the switch
    # to daylight saving time (EDT, UTC-4): 09:20 New York = 13:20 UTC.
    friday = utc(2026, 3, 6, 21, 50)
    assert deadline(NEW_YORK, friday, 30, business_hours=True) == utc(2026, 3, 9, 13, 20)
    # In wall-clock time it is simply half an hour later.
    assert deadline(NEW_YORK, friday, 30, business_hours=False) == utc(2026, 3, 6, 22, 20)


def test_a_deadline_that_uses_up_the_day_exactly_ends_at_closing_time() -> None:
    # 16:30 Berlin (15:30 UTC) + 30 business minutes = 17:00 Berlin the same day.
    assert deadline(BERLIN, utc(2026, 3, 2, 15, 30), 30, business_hours=True) == utc(
        2026, 3, 2, 16, 0
    )
    # One minute more runs into Tuesday: 09:01 Berlin = 08:01 UTC.
    assert deadline(BERLIN, utc(2026, 3, 2, 15, 30), 31, business_hours=True) == utc(
        2026, 3, 3, 8, 1
    )


def test_a_handoff_assigned_out_of_hours_starts_counting_at_the_next_opening() -> None:
    saturday = utc(2026, 3, 7, 12, 0)
    # Monday 9 March 09:00 Berlin is 08:00 UTC (Berlin stays on CET until 29 March).
    assert deadline(BERLIN, saturday, 30, business_hours=True) == utc(2026, 3, 9, 8, 30)
    assert deadline(BERLIN, saturday, 120, business_hours=True) == utc(2026, 3, 9, 10, 0)


def test_an_absence_stops_the_sla_clock() -> None:
    # Out all of Tuesday 3 March (Berlin): Monday 16:50 + 30 minutes is Wednesday 09:20.
    tuesday_off = Absence(utc(2026, 3, 2, 23, 0), utc(2026, 3, 3, 23, 0))
    schedule = Schedule("Europe/Berlin", WorkingHours.weekdays(), (tuesday_off,))
    assert deadline(schedule, utc(2026, 3, 2, 15, 50), 30, business_hours=True) == utc(
        2026, 3, 4, 8, 20
    )


def test_without_a_schedule_or_working_time_the_deadline_is_wall_clock() -> None:
    start = utc(2026, 3, 7, 12, 0)
    assert deadline(None, start, 45, business_hours=True) == start + timedelta(minutes=45)
    never = Schedule("UTC", WorkingHours.parse({}))
    assert deadline(never, start, 45, business_hours=True) == start + timedelta(minutes=45)


def test_the_ladder_is_walked_in_time_order_keeping_contract_order_for_ties() -> None:
    sla = Sla(
        ladder=[
            SlaStep(at_minutes=120, action="notify_manager", until="touched"),
            SlaStep(at_minutes=30, action="reassign"),
            SlaStep(at_minutes=20, action="remind"),
            SlaStep(at_minutes=30, action="notify_manager"),
        ]
    )
    assert [(s.at_minutes, s.action) for s in ladder(sla)] == [
        (20, "remind"),
        (30, "reassign"),
        (30, "notify_manager"),
        (120, "notify_manager"),
    ]
    reversed_ties = Sla(
        ladder=[
            SlaStep(at_minutes=30, action="notify_manager"),
            SlaStep(at_minutes=30, action="reassign"),
        ]
    )
    assert [s.action for s in ladder(reversed_ties)] == ["notify_manager", "reassign"]


def test_the_default_ladder_reminds_then_reassigns_and_tells_the_manager() -> None:
    assert [(s.at_minutes, s.action, s.until) for s in ladder(Sla())] == [
        (20, "remind", "accepted"),
        (30, "reassign", "accepted"),
        (30, "notify_manager", "accepted"),
    ]


EXAMPLE_LADDER = Sla(
    ladder=[
        SlaStep(at_minutes=20, action="remind"),
        SlaStep(at_minutes=30, action="reassign"),
        SlaStep(at_minutes=30, action="notify_manager"),
        SlaStep(at_minutes=120, action="notify_manager", until="touched"),
    ]
)
ASSIGNED = utc(2026, 3, 2, 15, 50)  # Monday 16:50 in Berlin


def berlin_due(minutes: float) -> datetime:
    return deadline(BERLIN, ASSIGNED, minutes, business_hours=True)


def test_next_step_for_a_fresh_handoff_is_the_first_rung_in_business_time() -> None:
    step = next_step(EXAMPLE_LADDER, 0, accepted=False, touched=False, due_at=berlin_due)
    # 10 minutes on Monday, 10 on Tuesday from 09:00 Berlin (08:00 UTC).
    assert step == NextStep(0, SlaStep(at_minutes=20, action="remind"), utc(2026, 3, 3, 8, 10))
    after_remind = next_step(EXAMPLE_LADDER, 1, accepted=False, touched=False, due_at=berlin_due)
    assert after_remind is not None
    assert (after_remind.index, after_remind.step.action) == (1, "reassign")
    assert after_remind.due_at == utc(2026, 3, 3, 8, 20)


def test_next_step_skips_the_steps_whose_until_already_holds() -> None:
    accepted = next_step(EXAMPLE_LADDER, 0, accepted=True, touched=False, due_at=berlin_due)
    assert accepted is not None
    # Only the "until touched" rung is left: 120 minutes = Tuesday 10:50 Berlin.
    assert (accepted.index, accepted.step.until) == (3, "touched")
    assert accepted.due_at == utc(2026, 3, 3, 9, 50)
    # Touched but not accepted: the accept rungs still apply.
    touched = next_step(EXAMPLE_LADDER, 1, accepted=False, touched=True, due_at=berlin_due)
    assert touched is not None and touched.index == 1
    assert next_step(EXAMPLE_LADDER, 3, accepted=False, touched=True, due_at=berlin_due) is None
    assert next_step(EXAMPLE_LADDER, 0, accepted=True, touched=True, due_at=berlin_due) is None


def test_next_step_past_the_end_of_the_ladder_is_none() -> None:
    assert next_step(EXAMPLE_LADDER, 4, accepted=False, touched=False, due_at=berlin_due) is None
    assert next_step(Sla(ladder=[]), 0, accepted=False, touched=False, due_at=berlin_due) is None
    # A negative index is read as the start.
    first = next_step(EXAMPLE_LADDER, -3, accepted=False, touched=False, due_at=berlin_due)
    assert first is not None and first.index == 0
