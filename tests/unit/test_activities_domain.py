"""Validation of engagement events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from baton.domain.activities import ActivityCreate, ActivityType

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def event(context: dict[str, Any] | None = None, **fields: Any) -> ActivityCreate:
    payload = {"email": "dana@northwind.com", "type": "page_view", "occurred_at": NOW} | fields
    return ActivityCreate.model_validate(payload, context=context)


def messages(context: dict[str, Any] | None = None, **fields: Any) -> dict[str, str]:
    with pytest.raises(ValidationError) as caught:
        event(context, **fields)
    return {".".join(map(str, e["loc"])): e["msg"] for e in caught.value.errors()}


def test_a_valid_event_is_kept_as_sent() -> None:
    got = event(properties={"url": "/pricing"}, idempotency_key=" evt-1 ")
    assert got.type is ActivityType.PAGE_VIEW
    assert got.occurred_at == NOW
    assert got.properties == {"url": "/pricing"}
    assert got.idempotency_key == "evt-1"


def test_an_unknown_type_is_refused_listing_the_known_types() -> None:
    problem = messages(type="page_veiw")["type"]
    for known in ("page_view", "form_submit", "demo_request", "webinar_attended"):
        assert known in problem


def test_a_naive_time_is_refused_without_a_time_zone_context() -> None:
    problem = messages(occurred_at="2026-03-02T08:00:00")["occurred_at"]
    assert "time zone" in problem


def test_a_naive_time_is_read_in_the_given_zone_and_stored_in_utc() -> None:
    got = event({"naive_timezone": "Europe/Berlin"}, occurred_at="2026-03-02T08:00:00")
    assert got.occurred_at == datetime(2026, 3, 2, 7, 0, tzinfo=UTC)
    summer = event({"naive_timezone": "America/New_York"}, occurred_at="2026-07-01T08:00:00")
    assert summer.occurred_at == datetime(2026, 7, 1, 12, 0, tzinfo=UTC)


def test_an_aware_time_is_converted_to_utc() -> None:
    got = event(occurred_at="2026-03-02T10:30:00+02:00")
    assert got.occurred_at == datetime(2026, 3, 2, 8, 30, tzinfo=UTC)
    assert got.occurred_at.utcoffset() == timedelta(0)


def test_events_more_than_ten_minutes_ahead_of_now_are_refused() -> None:
    context = {"now": NOW}
    assert event(context, occurred_at=NOW + timedelta(minutes=10)).occurred_at > NOW
    assert event(context, occurred_at=NOW - timedelta(days=400)).occurred_at < NOW
    assert "future" in messages(context, occurred_at=NOW + timedelta(minutes=11))["occurred_at"]


def test_without_now_in_the_context_future_events_are_not_checked() -> None:
    assert event(occurred_at=NOW + timedelta(days=1)).occurred_at == NOW + timedelta(days=1)


def test_an_event_needs_an_email_or_a_lead_id() -> None:
    problems = messages(email=None)
    assert any("email or lead_id" in m for m in problems.values())
    assert event(email=None, lead_id=7).lead_id == 7


def test_email_is_validated_and_normalized() -> None:
    assert event(email=" Dana@NorthWind.com").email == "Dana@northwind.com"
    assert "not a valid email" in messages(email="dana@")["email"]


@pytest.mark.parametrize("lead_id", [0, -3])
def test_lead_id_must_be_positive(lead_id: int) -> None:
    assert "lead_id" in messages(email=None, lead_id=lead_id)


def test_unknown_fields_are_refused() -> None:
    assert "occured_at" in messages(occured_at=NOW)


@pytest.mark.parametrize(
    ("written", "kind"),
    [
        ("Page View", ActivityType.PAGE_VIEW),
        ("page-view", ActivityType.PAGE_VIEW),
        ("PAGE_VIEW", ActivityType.PAGE_VIEW),
        (" pageView ", ActivityType.PAGE_VIEW),
        ("Form Submit", ActivityType.FORM_SUBMIT),
        ("webinar.attended", ActivityType.WEBINAR_ATTENDED),
    ],
)
def test_a_type_is_read_whatever_its_case_and_separators(written: str, kind: str) -> None:
    assert event(type=written).type is kind


def test_an_unknown_type_suggests_the_closest_one() -> None:
    problem = messages(type="from-submit")["type"]
    assert "unknown activity type 'from-submit' (did you mean 'form_submit'?)" in problem
    assert "did you mean" not in messages(type="purchase")["type"]


def test_without_occurred_at_the_model_leaves_the_time_to_the_service() -> None:
    got = ActivityCreate.model_validate(
        {"email": "dana@northwind.com", "type": "page_view"}, context={"now": NOW}
    )
    assert got.occurred_at is None
    assert event(occurred_at=None).occurred_at is None


def test_a_file_row_needs_its_time_and_is_read_in_common_formats() -> None:
    in_a_file = {"naive_timezone": "Europe/Berlin"}
    assert "required in a file" in messages(in_a_file, occurred_at=None)["occurred_at"]
    got = event(in_a_file, occurred_at="2 Mar 2026 14:05")
    assert got.occurred_at == datetime(2026, 3, 2, 13, 5, tzinfo=UTC)
    assert event(in_a_file, occurred_at="02/03/2026 10:00").occurred_at.month == 2
    day_first = {**in_a_file, "day_first": True}
    assert event(day_first, occurred_at="02/03/2026 10:00").occurred_at.month == 3
    assert "no month 13" in messages(in_a_file, occurred_at="13/03/2026")["occurred_at"]


def test_the_api_keeps_asking_for_iso_8601_with_a_zone() -> None:
    assert "ISO 8601" in messages(occurred_at="2 Mar 2026 14:05")["occurred_at"]
