"""The fast paths of lead validation (issue 17, CSV import speed) give exactly the answers
of the plain paths they short-cut: US and international (``+44 20 ...``) phone numbers
read without the library's parser, each distinct phone and country read once, and JSON
sizes bounded without encoding."""

from __future__ import annotations

import json
import random
import re
from typing import Any

import phonenumbers
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from baton.domain import contact, limits
from baton.domain.contact import InvalidContact, normalize_country, normalize_phone
from baton.domain.leads import LeadCreate
from baton.domain.limits import JsonLimits, check_json
from baton.services.imports import validate_lead_rows


def _library_phone(value: str, region: str) -> str | None:
    try:
        parsed = phonenumbers.parse(value.strip(), region.upper())
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(parsed):
        return None
    return str(phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164))


def _ours(value: str, region: str) -> str | None:
    try:
        return normalize_phone(value, region)
    except InvalidContact:
        return None


us_shaped = st.builds(
    lambda a, b, c, open_, gap, sep: f"{'(' + a + ')' + gap if open_ else a + sep}{b}{sep}{c}",
    st.text("0123456789", min_size=3, max_size=3),
    st.text("0123456789", min_size=3, max_size=3),
    st.text("0123456789", min_size=4, max_size=4),
    st.booleans(),
    st.sampled_from(["", " "]),
    st.sampled_from(["", " ", "-", "."]),
)


international_shaped = st.builds(
    lambda code, gap, rest: f"+{code}{gap}{rest}",
    st.one_of(
        st.sampled_from(["1", "44", "49", "33", "39", "7", "86", "91", "380", "800", "979"]),
        st.text("0123456789", min_size=1, max_size=3),
    ),
    st.sampled_from(["", " "]),
    st.text("0123456789 ", max_size=18),
)


@given(
    st.one_of(us_shaped, international_shaped, st.text("0123456789 ()+-.", max_size=16)),
    st.sampled_from(["US", "us", "DE", "GB"]),
)
@example("(212) 555-0100", "US")
@example("+44 20 7946 0958", "US")
@example("+44 020 7946 0958", "DE")
@example("+49 30 1234567", "GB")
@example("+39 06 6982 1234", "US")
@example("+7 8 495 123 45 67", "US")
@example("+1 212 555 0100", "DE")
@example("+800 1234 5678", "US")
@example("+0 12", "US")
@example("212-555-0100", "US")
@example("(112) 555-0100", "US")
@example("(212)5550100", "US")
@example("٢١٢٥٥٥٠١٠٠", "US")
def test_phone_fast_path_and_cache_agree_with_the_library(value: str, region: str) -> None:
    assert _ours(value, region) == _library_phone(value, region)
    assert _ours(value, region) == _ours(value, region)  # the cached answer is the same


def test_a_refused_phone_is_refused_with_the_same_message_every_time() -> None:
    messages = set()
    for _ in range(3):
        with pytest.raises(InvalidContact) as caught:
            normalize_phone("030 22732152", "us")
        messages.add(str(caught.value))
    assert len(messages) == 1 and "region US" in messages.pop()


def test_a_cached_country_is_refused_every_time() -> None:
    for _ in range(2):
        with pytest.raises(InvalidContact):
            normalize_country("Asia/Pacific")
    assert normalize_country("Germany") == normalize_country("Germany") == "DE"


ascii_text = st.text(st.characters(min_codepoint=1, max_codepoint=127), max_size=40)
# NUL and lone surrogates are refused before any size is measured (tested below).
any_text = st.text(
    st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=20
)


@given(
    st.one_of(
        st.dictionaries(ascii_text, ascii_text, max_size=8),
        st.dictionaries(any_text, any_text, max_size=5),
        st.dictionaries(ascii_text, st.one_of(st.integers(), st.booleans(), ascii_text)),
    ),
    st.integers(min_value=2, max_value=400),
)
@example({"a": "\x01\x02"}, 16)
@example({"k": '"' * 20}, 45)
def test_the_json_size_bound_never_lets_a_too_large_object_through(
    value: dict[str, Any], max_bytes: int
) -> None:
    size = len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())
    bounds = JsonLimits(max_bytes=max_bytes, max_keys=1000)
    if size > max_bytes:
        with pytest.raises(ValueError, match=re.escape(f"{size:,} bytes as JSON")):
            check_json(value, bounds)
    else:
        assert check_json(value, bounds) is value


def test_a_lone_surrogate_is_refused_by_name_not_by_the_encoder() -> None:
    """JSON's ``"\\ud800"`` escape decodes to half a UTF-16 pair, which no database
    stores and UTF-8 cannot encode: refused with a readable message and its place."""
    with pytest.raises(ValueError, match=r"lone surrogate .* at notes"):
        check_json({"notes": "hello \ud800"})
    with pytest.raises(ValueError, match=r"a key cannot contain a lone surrogate"):
        check_json({"\udfff": "x"})


FIRST = ("Ana", "Ben", " Chloe ", "", "Dana\x00", "Élodie")
PHONES = (
    "(212) 555-0100",
    "212-555-0199",
    "212.555.0123",
    "(112) 555-0100",
    "555-0134",
    "+44 20 7946 0958",
    "+49 30 1234567",
    "030 22732152",
    "hello",
    "",
    "(415)5550100",
)
COUNTRIES = ("US", "us", "Germany", "UK", "Asia/Pacific", "", "DEU")


def _rows(seed: int, count: int) -> list[tuple[int, dict[str, Any]]]:
    rng = random.Random(seed)
    rows = []
    for line in range(2, count + 2):
        raw: dict[str, Any] = {
            "email": rng.choice(
                (f"p{line}@acme.example.com", "not-an-email", "", f" P{line}@Acme.EXAMPLE.com ")
            ),
            "first_name": rng.choice(FIRST),
            "phone": rng.choice(PHONES),
            "country": rng.choice(COUNTRIES),
            "attributes": rng.choice(
                ({}, {"employees": "50"}, {"note": "ü" * 30}, {"big": "x" * 12_000}, {"q": '"' * 9})
            ),
        }
        if rng.random() < 0.1:
            raw["external_id"] = f"crm-{line}"
        rows.append((line, {k: v for k, v in raw.items() if v != ""}))
    return rows


def _outcome(rows: list[tuple[int, dict[str, Any]]]) -> Any:
    context = {"default_region": "US", "json_limits": JsonLimits(max_bytes=600)}
    good, errors, warnings = validate_lead_rows(LeadCreate, rows, context)
    return [(n, lead.model_dump()) for n, lead in good], errors, warnings


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_lead_rows_validate_the_same_with_and_without_the_fast_paths(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = _rows(seed, 400)
    fast = _outcome(rows)
    assert fast[0] and fast[1] and fast[2]  # kept rows, rejected rows and warnings
    monkeypatch.setattr(contact, "_NANP_SHAPE", re.compile(r"(?!)"))
    monkeypatch.setattr(contact, "_INTERNATIONAL_SHAPE", re.compile(r"(?!)"))
    monkeypatch.setattr(limits, "_flat_ascii_size_at_most", lambda value: float("inf"))
    contact._e164.cache_clear()
    normalize_country.cache_clear()
    try:
        plain = _outcome(rows)
    finally:
        contact._e164.cache_clear()
    assert fast == plain


def _plain_payload(cells: list[str], columns: Any) -> dict[str, Any]:
    """The per-cell reading the import's column plan replaced, kept as the reference."""
    from baton.domain.cells import unguard
    from baton.domain.lead_rows import JSON_EXTRAS, _merge_json, _parse_bool

    if len(cells) > len(columns.targets):
        raise ValueError("too many cells")
    payload: dict[str, Any] = {}
    extras: dict[str, Any] = {}
    prefix = columns.extras_key + "."
    for target, value in zip(columns.targets, cells, strict=False):
        if target is None or value == "" or value.isspace():
            continue
        if columns.blanks and value.strip().casefold() in columns.blanks:
            continue
        value = unguard(value)
        if target == prefix + JSON_EXTRAS:
            _merge_json(extras, value, columns.extras_key)
        elif target.startswith(prefix):
            extras[target[len(prefix) :]] = value
        elif target == "consent":
            payload["consent"] = _parse_bool(value)
        else:
            payload[target] = value
    if extras:
        payload[columns.extras_key] = extras
    if columns.external_system and "external_id" in payload:
        payload.setdefault("external_system", columns.external_system)
    return payload


_TARGETS = st.sampled_from(
    [None, "email", "phone", "consent", "external_id", "attributes.x", "attributes.*", "company"]
)
_CELLS = st.one_of(
    st.sampled_from(["", " ", "Select", "yes", "no", "'=1+1", "''=x", "'plain", '{"a": 1}']),
    st.text(max_size=8),
)


@given(
    targets=st.lists(_TARGETS, min_size=1, max_size=8),
    cells=st.lists(_CELLS, max_size=9),
    blanks=st.sampled_from([frozenset(), frozenset({"select"})]),
    system=st.sampled_from([None, "crm"]),
)
def test_a_rows_input_is_read_as_the_plain_per_cell_reading_reads_it(
    targets: list[str | None], cells: list[str], blanks: frozenset[str], system: str | None
) -> None:
    from baton.domain.lead_rows import Columns, payload

    columns = Columns(targets, "attributes", blanks, system)
    try:
        expected: dict[str, Any] | None = _plain_payload(cells, columns)
    except ValueError:
        expected = None
    try:
        got: dict[str, Any] | None = payload(cells, columns)
    except ValueError:
        got = None
    assert got == expected


@given(
    email=st.sampled_from([None, "ana@northwind.com"]),
    phone=st.sampled_from([None, "+14155550100"]),
    company=st.sampled_from([None, "Acme", " Acme Inc. ", "Zoë GmbH"]),
    consent=st.sampled_from([None, True, False]),
    source=st.sampled_from([None, "Web"]),
)
def test_a_validated_leads_columns_are_those_it_dumps(
    email: str | None,
    phone: str | None,
    company: str | None,
    consent: bool | None,
    source: str | None,
) -> None:
    from baton.domain.lead_rows import stored_columns as _columns_of

    lead = LeadCreate(
        email=email,
        phone=phone,
        company=company,
        consent=consent,
        source=source,
        external_id=None if email or phone else "x1",
        attributes={"k": 1},
    )
    assert _columns_of(lead) == lead.fields()
