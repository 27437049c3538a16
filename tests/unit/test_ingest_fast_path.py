"""The ingest's fast validation (issue 17, ingest speed) keeps exactly the rows the
model keeps, with the same values, and leaves every error to the model: rows of every
shape validated through :func:`validate_events` and through ``ActivityCreate`` alone
give the same answer. The store's fast conversions (JSON, SQLite datetimes) write the
text of the plain ones."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import email_validator
import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st

from baton.domain import event_rows
from baton.domain.activities import ActivityCreate
from baton.domain.batches import validate_many
from baton.domain.contact import email_key, normalize_email, simple_email
from baton.domain.event_rows import EventRow, event_row, read_event, validate_events
from baton.domain.limits import CONTEXT_KEY, JsonLimits
from baton.store.bulk import encode_json, sqlite_datetime

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
TIGHT = JsonLimits(max_bytes=80, max_keys=3, max_depth=2, max_string=12)

ZONES = st.sampled_from(
    [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(-timedelta(hours=11, minutes=15))]
)


def _written(
    moment: datetime, spec: str, zulu: bool, separator: str = "T", lower: bool = False
) -> str:
    """``moment`` as a sender may write it: RFC 3339 (section 5.6) lets ``T`` and ``Z``
    be lowercase and a space separate the day from the time."""
    text = moment.isoformat(timespec=spec)
    text = f"{text[:10]}{separator}{text[11:]}"
    text = text.replace("+00:00", "Z") if zulu else text
    return text.lower() if lower else text


instants = st.builds(
    _written,
    st.datetimes(
        min_value=datetime(1969, 12, 31, 12), max_value=datetime(2201, 1, 1, 12), timezones=ZONES
    ),
    st.sampled_from(["minutes", "seconds", "milliseconds", "microseconds"]),
    st.booleans(),
    st.sampled_from(["T", "t", " ", "_", "  "]),
    st.booleans(),
)
times = st.one_of(
    instants,
    st.builds(lambda m: m.isoformat(), st.datetimes(timezones=ZONES)),  # any year
    st.sampled_from(
        [
            "2026-03-02T08:00:00",
            "2026-03-02 08:00:00Z",
            "2026-02-30T08:00:00Z",
            "2026-03-02T08:00:00.1234567Z",
            "2026-03-02T24:00:00Z",
            "2026-03-02T08:00:00+24:00",
            "2026-03-02T09:10:00Z",
            "2026-03-02T09:10:00.000001Z",
            "2026-03-02T08:00:00z",
            "2026-03-02t08:00:00z",
            "2026-03-02 08:00:00.5+01:00",
            "2026-03-02 08:00:00",
            "2026-03-02t08:00:00",
            "2026-03-02\t08:00:00Z",
            "２０２６-03-02T08:00:00Z",
            "2026-03-02T08:00:00Z\n",
            "",
        ]
    ),
    st.builds(lambda m: m, st.datetimes(timezones=st.none() | ZONES)),
    st.sampled_from([0, 1.5, True, None, [2026]]),
)
texts = st.one_of(
    st.text(max_size=14),
    st.text("ab \t\x00-", max_size=6),
    st.sampled_from(["", " ", "evt-1", " evt-1", "evt-1 ", "\ud800", "x" * 201, "Ads  Spring"]),
    st.sampled_from([None, 7, b"evt"]),
)
emails = st.one_of(
    st.sampled_from(
        [
            "dana@northwind.com",
            "Dana.Reyes@NorthWind.COM",
            " dana@northwind.com",
            "info@acme.com",
            "a@b",
            "not-an-email",
            "ab",
            "",
            "dana@exämple.de",
            "dana@localhost.test",
            "d\ud800@x.com",
            "x" * 250 + "@a.io",
            "p" * 70 + "@acme.io",
        ]
    ),
    st.builds(
        lambda n, d: f"{n}@{d}.example.com",
        st.text("abcXYZ.-_+", max_size=8),
        st.text("ab-", min_size=1, max_size=5),
    ),
    st.sampled_from([None, 12, b"dana@northwind.com"]),
)
lead_ids = st.one_of(
    st.integers(min_value=-2, max_value=3),
    st.sampled_from([2**63 - 1, 2**63, True, False, 5.0, 5.5, "7", None]),
)
types = st.one_of(
    st.sampled_from(["page_view", "email_open", "demo_request", "captured"]),
    st.sampled_from(["Page View", "pageView", " PAGE-VIEW ", "page_veiw", "", "x" * 80]),
    st.sampled_from([None, 3, b"page_view"]),
)
scalars = st.one_of(
    st.text(max_size=14),
    st.integers(min_value=-(10**16), max_value=10**16),
    st.floats(),
    st.booleans(),
    st.none(),
)
properties = st.one_of(
    st.dictionaries(st.text(max_size=14), scalars, max_size=5),
    st.dictionaries(st.sampled_from(["url", "title", "Ünïcode", "x" * 13]), scalars, max_size=4),
    st.dictionaries(
        st.text(max_size=3),
        st.lists(scalars, max_size=2) | st.dictionaries(st.text(max_size=2), scalars, max_size=2),
        max_size=2,
    ),
    st.sampled_from([None, [], "x", {1: "a"}, {"a": "\ud800"}, {"\x00": 1}]),
)
FIELDS = {
    "email": emails,
    "lead_id": lead_ids,
    "type": types,
    "occurred_at": times,
    "properties": properties,
    "idempotency_key": texts,
    "source": texts,
    "campaign": texts,
    "colour": st.just("red"),
}
rows = st.builds(
    lambda picked, values: {name: values[name] for name in picked},
    st.sets(st.sampled_from(sorted(FIELDS))).map(
        lambda s: s | {"type", "email"} if len(s) < 2 else s
    ),
    st.fixed_dictionaries(FIELDS),
)
contexts = st.sampled_from(
    [{"now": NOW}, {"now": NOW, CONTEXT_KEY: TIGHT}, {}, {"now": NOW, "naive_timezone": "UTC"}]
)


def _model_alone(
    numbered: list[tuple[int, Any]], context: dict[str, Any]
) -> tuple[list[tuple[int, EventRow]], list[Any]]:
    good, errors = validate_many(ActivityCreate, numbered, context)
    return [(n, event_row(m)) for n, m in good], errors


PLAIN = {
    "email": "dana@northwind.com",
    "type": "page_view",
    "occurred_at": "2026-03-02T08:59:00.123+01:00",
    "properties": {"url": "/pricing", "n": 3, "ok": True},
    "idempotency_key": "evt-1",
}


def _as_model_reads(row: EventRow) -> EventRow:
    """``row`` without the text of its time and the key of its email (only the fast
    path fills them in), after checking that they are the ones the store would work out
    itself."""
    if row.occurred_text is not None:
        assert row.occurred_at is not None
        assert row.occurred_text == sqlite_datetime(row.occurred_at)
    if row.email_key is not None:
        assert row.email is not None
        assert row.email_key == email_key(row.email)
    return row._replace(occurred_text=None, email_key=None)


UTC_SPELLINGS = [
    "2026-03-02T08:59:59Z",
    "2026-03-02T08:59:59+00:00",
    "2026-03-02T08:59:59-00:00",
    "2026-03-02T08:59:59.5Z",
    "2026-03-02T08:59:59.123456+00:00",
    "2026-03-02T08:59Z",
    "2024-02-29T08:00:00Z",
    "2026-02-29T08:00:00Z",
    "2026-13-02T08:00:00Z",
    "2026-03-02T24:00:00Z",
    "2026-03-02T23:60:00Z",
    "2026-03-02T23:59:60Z",
    "2026-03-02X08:00:00Z",
    "2026-03-02 08:00:00Z",
    "2026/03/02T08:00:00Z",
    "2026-03-0２T08:00:00Z",
    "2026-03-+2T08:00:00Z",
    "2026-03-02T08:00:00z",
    "2026-03-02t08:00:00z",
    "2026-03-02t08:59:59.5+00:00",
    "2026-03-02 08:59:59.123456Z",
    "2026-03-02 08:59",
    "1969-12-31T23:59:59Z",
    "1970-01-01T00:00:00Z",
    "2200-12-31T23:59:59Z",
    "2201-01-01T00:00:00+00:00",
]


@given(st.lists(rows, max_size=6), contexts)
@example([PLAIN], {"now": NOW})
@example([PLAIN | {"occurred_at": "2026-03-02T09:10:00.000001Z"}], {"now": NOW})
@example([PLAIN | {"occurred_at": "1970-01-01T00:30:00+01:00"}], {"now": NOW})
@example([PLAIN | {"occurred_at": "2200-12-31T23:30:00-01:00"}], {})
@example([PLAIN | {"properties": {"k": "a" * 12}}], {"now": NOW, CONTEXT_KEY: TIGHT})
@example([PLAIN | {"source": " Ads  Spring"}, PLAIN | {"source": "Ads  Spring"}], {})
@example([PLAIN | {"occurred_at": t} for t in UTC_SPELLINGS], {"now": NOW})
@example([PLAIN | {"occurred_at": t} for t in UTC_SPELLINGS], {})
def test_the_fast_path_keeps_and_refuses_exactly_what_the_model_does(
    batch: list[dict[str, Any]], context: dict[str, Any]
) -> None:
    numbered = list(enumerate(batch))
    fast_good, fast_errors = validate_events(numbered, context)
    plain_good, plain_errors = _model_alone(numbered, context)
    # repr: the same types and time zones, not only equal values
    assert repr([(n, _as_model_reads(row)) for n, row in fast_good]) == repr(plain_good)
    assert sorted(fast_errors, key=repr) == sorted(plain_errors, key=repr)


@given(rows, contexts)
@example(PLAIN | {"occurred_at": "2026-03-02T08:00:00Z"}, {})
@example(PLAIN | {"occurred_at": "2026-03-02T08:00:00.25+00:00"}, {})
def test_a_row_the_fast_path_reads_is_the_row_the_model_reads(
    raw: dict[str, Any], context: dict[str, Any]
) -> None:
    read = read_event(raw, context)
    if read is not None:
        model = ActivityCreate.model_validate(raw, context=context)
        assert repr(_as_model_reads(read)) == repr(event_row(model))


@given(
    st.datetimes(
        min_value=datetime(1970, 1, 1), max_value=datetime(2200, 12, 31), timezones=st.just(UTC)
    ),
    st.sampled_from(["seconds", "milliseconds", "microseconds"]),
    st.sampled_from(["Z", "+00:00"]),
)
def test_times_sent_in_utc_take_the_fast_path_with_the_stored_text(
    moment: datetime, spec: str, zone: str
) -> None:
    """The commonest spellings of a time keep their text for the store (else the store
    writes the datetime out again, the cost the text saves)."""
    sent = moment.isoformat(timespec=spec).replace("+00:00", zone)
    read = read_event(PLAIN | {"occurred_at": sent}, {})
    assert read is not None and read.occurred_at == datetime.fromisoformat(sent)
    assert read.occurred_text == sqlite_datetime(read.occurred_at)


def test_the_common_shapes_take_the_fast_path() -> None:
    """Without this the equality above could hold by never taking the fast path."""
    common = [
        PLAIN,
        {"lead_id": 84, "type": "Email Open", "occurred_at": "2026-03-02T08:00:00Z"},
        {"email": "Dana@NorthWind.com", "type": "form_submit", "source": "Ads", "campaign": ""},
        {"email": "dana@northwind.com", "type": "webinar_attended", "properties": {"t": "Ü"}},
    ]
    assert all(read_event(row, {"now": NOW}) is not None for row in common)
    assert read_event(PLAIN, {"now": NOW, "naive_timezone": "UTC"}) is None  # a file's rows


def test_models_pass_through_and_rows_keep_their_numbers() -> None:
    model = ActivityCreate.model_validate(PLAIN)
    good, errors = validate_events([(0, PLAIN | {"type": "nope"}), (3, model), (1, PLAIN)], {})
    assert [n for n, _ in good] == [1, 3]
    assert good[1][1] == event_row(model)
    assert [(e.row, e.field) for e in errors] == [(0, "type")]


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=12,
)


@given(st.dictionaries(st.text(), json_values, max_size=5))
def test_the_prebuilt_json_encoder_writes_the_plain_encoders_text(value: dict[str, Any]) -> None:
    assert encode_json(value) == json.JSONEncoder(allow_nan=False).encode(value)


def test_the_prebuilt_json_encoder_refuses_what_the_plain_one_refuses() -> None:
    for bad in ({"n": float("nan")}, {"n": [float("-inf")]}, {"x": object()}):
        with pytest.raises((ValueError, TypeError)):
            json.JSONEncoder(allow_nan=False).encode(bad)
        with pytest.raises((ValueError, TypeError)):
            encode_json(bad)


@given(st.datetimes(timezones=ZONES | st.timezones()))
def test_sqlite_datetimes_are_the_text_sqlalchemy_stores(moment: datetime) -> None:
    plain = moment.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")
    assert sqlite_datetime(moment) == plain


_atoms = st.text(alphabet="abcXYZ019+_-.", min_size=1, max_size=8)
plain_addresses = st.builds(
    lambda local, host, tld: f"{local}@{host}.{tld}",
    _atoms,
    st.from_regex(r"[a-zA-Z0-9][a-zA-Z0-9-]{0,6}", fullmatch=True),
    st.sampled_from(["com", "COM", "de", "test", "Local", "x", "a1"]),
)


@given(st.one_of(plain_addresses, emails, st.text(max_size=20)))
@example("Info@NorthWind.com")
@example("dana@ab--cd.com")
@example("a" * 65 + "@northwind.com")
def test_the_plain_email_check_answers_as_normalize_email_or_not_at_all(address: str) -> None:
    """The fast path's email check (``simple_email``, uncached) either gives what the
    library gives (and so ``normalize_email``), or leaves the address to them."""
    assume(isinstance(address, str) and address == address.strip() and len(address) <= 254)
    plain = simple_email(address)
    if plain is not None:
        library = email_validator.validate_email(address, check_deliverability=False)
        assert plain == library.normalized == normalize_email(address)


@given(st.lists(st.lists(st.one_of(plain_addresses, emails), max_size=5), max_size=4))
def test_addresses_remembered_across_batches_read_as_the_model_reads_them(
    batches: list[list[Any]],
) -> None:
    """The addresses the fast path remembers between batches (and forgets when it holds
    its bound, here 3) change no batch's outcome."""
    kept = event_rows._EMAILS_KEPT
    event_rows._EMAILS_KEPT = 3
    try:
        for addresses in batches:
            numbered = list(enumerate(PLAIN | {"email": a} for a in addresses))
            fast_good, fast_errors = validate_events(numbered, {"now": NOW})
            plain_good, plain_errors = _model_alone(numbered, {"now": NOW})
            assert repr([(n, _as_model_reads(r)) for n, r in fast_good]) == repr(plain_good)
            assert sorted(fast_errors, key=repr) == sorted(plain_errors, key=repr)
            assert len(event_rows._EMAILS) <= 3
    finally:
        event_rows._EMAILS_KEPT = kept
        event_rows._EMAILS.clear()


def test_a_remembered_address_carries_its_key() -> None:
    for _ in range(2):  # read, then remembered
        row = read_event(PLAIN | {"email": "Dana.Reyes@NorthWind.COM"}, {"now": NOW})
        assert row is not None
        assert (row.email, row.email_key) == (
            "Dana.Reyes@northwind.com",
            email_key("Dana.Reyes@northwind.com"),
        )
