"""The pure rules under the manager's view: an open handoff's SLA standing and a rep's
availability now."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from baton.domain.business_hours import Absence, Schedule, WorkingHours
from baton.domain.routing import Rep, availability, manual_assignment_check
from baton.domain.sla import standing

MONDAY_10 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
ACCEPT_BY = MONDAY_10 + timedelta(minutes=30)
TOUCH_BY = MONDAY_10 + timedelta(hours=2)


def _standing(now: datetime, **given: object) -> tuple[str, str | None]:
    values: dict[str, object] = {
        "accept_due_at": ACCEPT_BY,
        "touch_due_at": TOUCH_BY,
        "accepted_at": None,
        "first_touch_at": None,
        "reminders": 0,
        **given,
    }
    found = standing(now=now, **values)  # type: ignore[arg-type]
    return found.state, found.waiting_for


def test_sla_standing() -> None:
    assert _standing(MONDAY_10) == ("on time", "accept")
    assert _standing(MONDAY_10, reminders=1) == ("reminded", "accept")
    assert _standing(ACCEPT_BY) == ("breached", "accept")
    accepted = MONDAY_10 + timedelta(minutes=5)
    assert _standing(ACCEPT_BY, accepted_at=accepted) == ("on time", "touch")
    late = ACCEPT_BY + timedelta(minutes=1)
    assert _standing(late, accepted_at=late) == ("breached", "touch"), "accepted late"
    assert _standing(TOUCH_BY, accepted_at=accepted) == ("breached", "touch")
    touched = accepted + timedelta(minutes=1)
    assert _standing(TOUCH_BY, accepted_at=accepted, first_touch_at=touched) == ("on time", None)


def _rep(**fields: object) -> Rep:
    schedule = Schedule("UTC", WorkingHours.weekdays(), fields.pop("absences", ()))  # type: ignore[arg-type]
    return Rep(id=1, email="ana@lumen.example", name="Ana", schedule=schedule, **fields)  # type: ignore[arg-type]


def test_availability_in_the_order_a_manager_asks() -> None:
    off = (Absence(MONDAY_10 - timedelta(hours=1), MONDAY_10 + timedelta(hours=1)),)
    assert availability(_rep(), MONDAY_10, 0) == "in hours"
    assert availability(_rep(capacity=2), MONDAY_10, 2) == "full"
    assert availability(_rep(), MONDAY_10.replace(hour=20), 0) == "outside hours"
    assert availability(_rep(absences=off), MONDAY_10, 0) == "out of office"
    assert availability(_rep(status="away", absences=off), MONDAY_10, 9) == "away"
    assert availability(_rep(active=False), MONDAY_10, 0) == "inactive"
    # The manual assignment check reads the same facts.
    assert manual_assignment_check(_rep(absences=off), {}, MONDAY_10, 0).unavailable == (
        "out of office"
    )
    assert manual_assignment_check(_rep(status="away"), {}, MONDAY_10, 0).unavailable == (
        "status away"
    )
