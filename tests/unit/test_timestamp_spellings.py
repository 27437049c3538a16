"""Timestamps as senders really write them (issue 17, found by the real-data trial).

RFC 3339 (section 5.6) lets ``T`` and ``Z`` be lowercase and a space separate the day
from the time: every model that takes a timestamp as text accepts those spellings and
reads the same moment as from ``2026-03-02T08:00:00Z``; a time without its zone is
still refused (the API documents that it must carry one). A generic hook reads epoch
time sent as a text of digits as a file's cell (10 digits seconds, 13 milliseconds, 8
a day): the same moment as the number; it refuses a value outside 1970-2200, or a
number of another length, naming the field."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from baton.domain.activities import ActivityCreate
from baton.domain.calls import CallCreate
from baton.domain.event_rows import event_row, read_event
from baton.domain.intake import Delivery, EndpointConfig, PayloadRefused
from baton.domain.moments import Instant, iso_instant
from baton.integrations import generic

ZONES = st.sampled_from(
    [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(-timedelta(hours=3))]
)
MOMENTS = st.datetimes(
    min_value=datetime(1970, 1, 2), max_value=datetime(2200, 12, 30), timezones=ZONES
)


def spelled(moment: datetime, spec: str, separator: str, lower: bool, zulu: bool) -> str:
    text = moment.isoformat(timespec=spec)
    text = f"{text[:10]}{separator}{text[11:]}"
    text = text.replace("+00:00", "Z") if zulu else text
    return text.lower() if lower else text


@given(
    MOMENTS,
    st.sampled_from(["minutes", "seconds", "milliseconds", "microseconds"]),
    st.sampled_from(["T", "t", " "]),
    st.booleans(),
    st.booleans(),
)
def test_every_rfc3339_spelling_names_the_same_moment_as_the_canonical_one(
    moment: datetime, spec: str, separator: str, lower: bool, zulu: bool
) -> None:
    sent = spelled(moment, spec, separator, lower, zulu)
    canonical = spelled(moment, spec, "T", False, zulu)
    assert iso_instant(sent) == canonical
    expected = datetime.fromisoformat(canonical).astimezone(UTC)
    event = {"email": "dana@northwind.com", "type": "page_view"}
    assert ActivityCreate.model_validate(event | {"occurred_at": sent}).occurred_at == expected
    call = {"phone": "+14155550100", "occurred_at": sent}
    assert CallCreate.model_validate(call).occurred_at == expected
    assert TypeAdapter(Instant).validate_python(sent) == expected


@pytest.mark.parametrize(
    "sent",
    [
        "2026-03-02T08:00:00",  # no zone: which moment is unknown
        "2026-03-02 08:00:00",
        "2026-03-02t08:00",
        "2026-03-02_08:00:00Z",
        "2026-03-02  08:00:00Z",
        "2026-03-02\t08:00:00Z",
        "2026-03-02T08:00:00Z\n",
        " 2026-03-02T08:00:00Z",
        "2026-03-02T08:00:00 Z",
        "2026-03-02T08:00:00+0100",
        "2026-03-02",
        "1969-12-31 23:59:59Z",
    ],
)
def test_what_stays_ambiguous_or_malformed_is_still_refused(sent: str) -> None:
    assert iso_instant(sent) is None
    with pytest.raises(ValidationError, match="ISO 8601 with its time zone"):
        ActivityCreate.model_validate(
            {"email": "dana@northwind.com", "type": "page_view", "occurred_at": sent}
        )


def config(mapping: dict[str, Any]) -> EndpointConfig:
    return EndpointConfig(name="contact", kind="generic", source="web", mapping=mapping)


def read_at(value: Any) -> datetime | None:
    body = {"e": "dana@northwind.example.com", "at": value}
    delivery = Delivery(
        body=json.dumps(body).encode(),
        content_type="application/json",
        headers={},
        query={},
        received_at=datetime(2026, 3, 2, 9, tzinfo=UTC),
    )
    [item] = generic.read(delivery, config({"email": "e", "occurred_at": "at"}))
    return item.occurred_at


@given(
    st.one_of(
        st.integers(10**8, 7_258_118_399),  # seconds (9 or 10 digits) up to 2199-12-31
        st.integers(10**11, 7_258_118_399_000),  # milliseconds (12 or 13 digits)
        st.floats(10**8, 7_258_118_399, allow_nan=False).map(lambda f: round(f, 3)),
    )
)
def test_a_hook_reads_epoch_digits_in_a_text_as_the_number(number: int | float) -> None:
    assert read_at(str(number)) == read_at(number)
    assert read_at(f" {number} ") == read_at(number)


def test_a_hook_reads_epoch_text_and_rfc3339_spellings() -> None:
    assert read_at("1733400000") == datetime(2024, 12, 5, 12, 0, tzinfo=UTC)
    assert read_at("1733400000.5") == datetime(2024, 12, 5, 12, 0, 0, 500000, tzinfo=UTC)
    assert read_at("1733400000000") == datetime(2024, 12, 5, 12, 0, tzinfo=UTC)
    assert read_at("20241205") == datetime(2024, 12, 5, tzinfo=UTC)  # a compact day, as before
    for text in ("2024-12-05t12:00:00z", "2024-12-05 12:00:00Z", "2024-12-05T13:00:00+01:00"):
        assert read_at(text) == datetime(2024, 12, 5, 12, 0, tzinfo=UTC), text


@pytest.mark.parametrize("unset", [0, 0.0, "0", " 0 ", "0.0", "000"])
def test_a_hook_reads_a_zero_time_as_none_given(unset: Any) -> None:
    """Zero is what many platforms send for a time they lack: the submission is dated
    when received, not on 1 January 1970."""
    assert read_at(unset) is None
    assert read_at(None) is None


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("9999999999", "is not between 1970 and 2200"),  # seconds in the year 2286
        (99999999999, "99999999999 as epoch seconds is after 2200: send ISO 8601"),
        (9_000_000_000_000, "as epoch milliseconds is after 2200"),
        (1e300, "as epoch milliseconds is after 2200"),
        (-5, "-5 is before 1970 as an epoch time"),
        (1_733_400_000_000_000, "looks like epoch microseconds: send ISO 8601 text, or"),
        (1_733_400_000_000_000_000, "looks like epoch nanoseconds"),
        ("1733400000000000", "looks like Unix time in microseconds (16 digits)"),
        ("2201-01-01T00:00:00Z", "'2201-01-01T00:00:00Z' is outside 1970 to 2200"),
        ("1969-12-31 23:59:59", "is outside 1970 to 2200"),
        ("99999999999", "is a number, not a date"),  # 11 digits: seconds or milliseconds?
        ("12", "is a number, not a date"),
        ("9" * 40, "is a number, not a date"),
        ("-5", "not a date-time"),
        ("1733400000.", "not a date-time"),
        ("0x1F", "not a date-time"),
        ("１７３３４００００００", "not a date-time"),  # full-width digits are not a number
        (True, "a date-time (ISO 8601) or epoch seconds"),
    ],
)
def test_a_hook_refuses_absurd_or_unreadable_times_naming_the_field(
    value: Any, message: str
) -> None:
    with pytest.raises(PayloadRefused) as refused:
        read_at(value)
    [problem] = refused.value.problems
    assert problem.loc == "at" and message in problem.message


@pytest.mark.parametrize("sent", ["2026-03-02t08:00:00z", "2026-03-02 09:00:00.5+01:00"])
def test_the_ingest_fast_path_reads_the_rfc3339_spellings_as_the_model_does(sent: str) -> None:
    """Not left to the model: the fast path reads them, with the model's values (its
    equality with the model over every shape is tests/unit/test_ingest_fast_path.py)."""
    raw = {"email": "dana@northwind.com", "type": "page_view", "occurred_at": sent}
    read = read_event(raw, {})
    assert read is not None
    assert read.email_key in (None, "dana@northwind.com")  # carried by the fast path only
    model = event_row(ActivityCreate.model_validate(raw))
    assert read._replace(occurred_text=None, email_key=None) == model
