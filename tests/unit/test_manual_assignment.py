"""What stands between a rep and a queued handoff a manager gives them (issue 11, item
8), as a pure rule: capacity and deactivation refuse, availability needs a reason,
territory is only noted."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from baton.domain.business_hours import Absence, Schedule, WorkingHours
from baton.domain.routing import ManualCheck, Rep, manual_assignment_check

MONDAY_10 = datetime(2026, 3, 2, 10, tzinfo=UTC)
LEAD = {"country": "DE"}


def rep(**fields: Any) -> Rep:
    values: dict[str, Any] = {
        "id": 1,
        "email": "ana@lumen.example",
        "name": "Ana",
        "schedule": Schedule("UTC", WorkingHours.weekdays()),
        **fields,
    }
    return Rep(**values)


def test_an_available_rep_under_capacity_passes() -> None:
    assert manual_assignment_check(rep(), LEAD, MONDAY_10, 0) == ManualCheck()


def test_capacity_and_deactivation_refuse_whatever_else() -> None:
    full = manual_assignment_check(rep(capacity=2, status="away"), LEAD, MONDAY_10, 2)
    assert full == ManualCheck(refused="at capacity (2/2 open handoffs)")
    gone = manual_assignment_check(rep(active=False), LEAD, MONDAY_10, 0)
    assert gone == ManualCheck(refused="deactivated")


def test_away_out_of_office_and_off_hours_are_availability() -> None:
    assert manual_assignment_check(rep(status="away"), LEAD, MONDAY_10, 0).unavailable == (
        "status away"
    )
    holiday = Absence(MONDAY_10 - timedelta(hours=1), MONDAY_10 + timedelta(days=1))
    off = rep(schedule=Schedule("UTC", WorkingHours.weekdays(), (holiday,)))
    assert manual_assignment_check(off, LEAD, MONDAY_10, 0).unavailable == "out of office"
    tokyo = rep(schedule=Schedule("Asia/Tokyo", WorkingHours.weekdays()))
    assert manual_assignment_check(tokyo, LEAD, MONDAY_10, 0).unavailable == (
        "outside working hours (Asia/Tokyo)"
    )


def test_a_lead_outside_the_reps_patch_is_noted_not_refused() -> None:
    check = manual_assignment_check(rep(countries=frozenset({"US"})), LEAD, MONDAY_10, 0)
    assert check == ManualCheck(uncovered="outside territory (lead: DE)")
