"""Lead capture validation and the rules that combine two records of one person."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError
from rapidfuzz import fuzz

from baton.domain.contact import FREE_MAIL_DOMAINS, company_key
from baton.domain.leads import (
    COMPANY_SIMILARITY,
    NAME_SIMILARITY,
    SAME_EMAIL_DOMAIN,
    SAME_PHONE,
    SIMILAR_COMPANY,
    DuplicateMatch,
    LeadCreate,
    duplicate_name,
    fill_blanks,
    find_duplicates,
    merge_profile,
)

PROFILE = ("email", "phone", "first_name", "last_name", "company", "title", "country")
PROFILE += ("region", "postal_code")
ATTRIBUTION = ("source", "campaign", "utm_source", "utm_medium", "utm_campaign")
ATTRIBUTION += ("utm_term", "utm_content")


def lead_create(context: dict[str, Any] | None = None, **fields: Any) -> LeadCreate:
    return LeadCreate.model_validate(fields, context=context)


def errors_of(**fields: Any) -> dict[str, str]:
    with pytest.raises(ValidationError) as caught:
        lead_create(**fields)
    return {".".join(map(str, e["loc"])): e["msg"] for e in caught.value.errors()}


# --- LeadCreate --------------------------------------------------------------------


def test_email_alone_is_enough_and_is_normalized() -> None:
    lead = lead_create(email="  Dana@Northwind.COM ")
    assert lead.email == "Dana@northwind.com"
    assert lead.phone is None


def test_phone_alone_is_enough_and_is_read_in_the_default_region() -> None:
    assert lead_create(phone="(202) 456-1111").phone == "+12024561111"
    german = lead_create({"default_region": "DE"}, phone="030 22732152")
    assert german.phone == "+493022732152"


@pytest.mark.parametrize("fields", [{}, {"first_name": "Dana"}, {"email": "  ", "phone": ""}])
def test_a_lead_needs_an_email_or_a_phone(fields: dict[str, Any]) -> None:
    problems = errors_of(**fields)
    assert any("email or a phone" in message for message in problems.values())


def test_invalid_email_and_phone_are_reported_on_their_fields() -> None:
    problems = errors_of(email="dana@", phone="hello")
    assert "not a valid email address" in problems["email"]
    assert "phone" in problems["phone"]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("de", "DE"),
        (" us ", "US"),
        ("Fr", "FR"),
        ("DEU", "DE"),
        ("Germany", "DE"),
        ("India", "IN"),
        ("united  states", "US"),
        ("U.S.A.", "US"),
        ("UK", "GB"),
        ("United Arab Emirates", "AE"),
        ("Korea, Republic of", "KR"),
    ],
)
def test_country_codes_and_english_names_become_the_iso_code(raw: str, expected: str) -> None:
    assert lead_create(email="a@b.io", country=raw).country == expected


@pytest.mark.parametrize("raw", ["D", "D1", "12", "XX", "unknown", "Asia/Pacific Region"])
def test_a_country_nobody_can_read_is_refused_with_what_to_write(raw: str) -> None:
    problems = errors_of(email="a@b.io", country=raw)
    assert "is not a country" in problems["country"]
    assert "ISO 3166-1" in problems["country"]


@pytest.mark.parametrize("raw", ["Google", "google", " GOOGLE ", "Google  "])
def test_sources_are_case_folded(raw: str) -> None:
    lead = lead_create(email="a@b.io", source=raw, utm_source=raw)
    assert (lead.source, lead.utm_source) == ("google", "google")
    assert lead_create(email="a@b.io", source="Direct   Traffic").source == "direct traffic"


def test_an_external_id_identifies_a_lead_without_email_or_phone() -> None:
    lead = lead_create(external_id=" 7927b2df ")
    assert (lead.external_system, lead.external_id) == ("default", "7927b2df")
    named = lead_create(external_id="A-1", external_system=" HubSpot ")
    assert (named.external_system, named.external_id) == ("hubspot", "A-1")
    assert "external_id" in errors_of(external_system="hubspot")[""]


def test_blanks_become_none_and_values_are_trimmed() -> None:
    lead = lead_create(email="a@b.io", first_name="  ", last_name=" Reyes ", company="")
    assert lead.first_name is None
    assert lead.company is None
    assert lead.last_name == "Reyes"
    assert "first_name" not in lead.fields()
    assert lead.fields()["last_name"] == "Reyes"


def test_unknown_fields_are_refused() -> None:
    with pytest.raises(ValidationError) as caught:
        lead_create(email="a@b.io", favourite_colour="teal")
    assert [e["type"] for e in caught.value.errors()] == ["extra_forbidden"]
    assert caught.value.errors()[0]["loc"] == ("favourite_colour",)


# --- merge_profile -----------------------------------------------------------------

EXISTING = {
    "email": "dana@northwind.com",
    "phone": "+12024561111",
    "first_name": "Dana",
    "last_name": "Reyes",
    "company": "Northwind",
    "title": "Ops lead",
    "source": "webinar",
    "campaign": "q4-webinar",
    "last_source": "webinar",
    "last_campaign": "q4-webinar",
    "utm_source": "linkedin",
    "attributes": {"employees": 400, "industry": "logistics"},
    "consent": True,
}


def apply(existing: dict[str, Any], incoming: dict[str, Any]) -> dict[str, Any]:
    return {**existing, **merge_profile(existing, incoming)}


@pytest.mark.parametrize("blank", [None, ""])
def test_a_blank_never_replaces_a_value(blank: str | None) -> None:
    incoming = dict.fromkeys((*PROFILE, *ATTRIBUTION), blank)
    assert merge_profile(EXISTING, incoming | {"attributes": {}, "consent": None}) == {}


def test_profile_fields_take_the_newer_value() -> None:
    after = apply(EXISTING, {"title": "VP Operations", "company": "Northwind Traders"})
    assert after["title"] == "VP Operations"
    assert after["company"] == "Northwind Traders"
    assert after["first_name"] == "Dana"


def test_unchanged_values_are_not_reported_as_changes() -> None:
    assert merge_profile(EXISTING, {"first_name": "Dana", "source": "webinar"}) == {}


def test_attribution_keeps_the_first_touch_and_records_the_last() -> None:
    changes = merge_profile(
        EXISTING, {"source": "ads", "campaign": "spring-promo", "utm_source": "google"}
    )
    after = {**EXISTING, **changes}
    assert (after["source"], after["campaign"], after["utm_source"]) == (
        "webinar",
        "q4-webinar",
        "linkedin",
    )
    assert (after["last_source"], after["last_campaign"]) == ("ads", "spring-promo")


def test_first_touch_fills_empty_attribution() -> None:
    existing = {**EXISTING, "source": None, "last_source": None, "utm_medium": None}
    after = apply(existing, {"source": "ads", "utm_medium": "cpc"})
    assert (after["source"], after["last_source"], after["utm_medium"]) == ("ads", "ads", "cpc")


def test_attributes_are_merged_key_by_key_without_erasing() -> None:
    after = apply(EXISTING, {"attributes": {"employees": 450, "region": "west", "industry": None}})
    assert after["attributes"] == {"employees": 450, "industry": "logistics", "region": "west"}


def test_withdrawn_consent_replaces_given_consent() -> None:
    assert apply(EXISTING, {"consent": False})["consent"] is False


def test_unspecified_consent_keeps_the_old_answer() -> None:
    withdrawn = {**EXISTING, "consent": False}
    assert apply(withdrawn, {"consent": None, "title": "CTO"})["consent"] is False


values = st.one_of(st.none(), st.just(""), st.text(min_size=1, max_size=5))
records = st.fixed_dictionaries(
    dict.fromkeys((*PROFILE, *ATTRIBUTION, "last_source", "last_campaign"), values)
)


@given(records, records)
def test_merge_profile_never_blanks_a_field(existing: dict[str, Any], incoming: dict[str, Any]):
    after = apply(existing, incoming)
    for name, value in existing.items():
        if value not in (None, ""):
            assert after[name] not in (None, ""), name
    for name in ATTRIBUTION:
        if existing[name] not in (None, ""):
            assert after[name] == existing[name], name


# --- fill_blanks -------------------------------------------------------------------


def test_merge_fills_only_the_survivors_blanks() -> None:
    survivor = {"first_name": "Dana", "last_name": None, "title": "", "attributes": {"a": 1}}
    absorbed = {
        "first_name": "Danielle",
        "last_name": "Reyes",
        "title": "CTO",
        "source": "fair",
        "attributes": {"a": 2, "b": 3},
    }
    after = {**survivor, **fill_blanks(survivor, absorbed)}
    assert after["first_name"] == "Dana"
    assert (after["last_name"], after["title"], after["source"]) == ("Reyes", "CTO", "fair")
    assert after["attributes"] == {"a": 1, "b": 3}


@pytest.mark.parametrize(
    ("survivor", "absorbed", "expected"),
    [
        (True, False, False),
        (False, True, False),
        (None, False, False),
        (None, True, True),
        (True, None, True),
        (None, None, None),
    ],
)
def test_merge_consent_a_withdrawal_on_either_side_wins(
    survivor: bool | None, absorbed: bool | None, expected: bool | None
) -> None:
    s, a = {"consent": survivor, "attributes": {}}, {"consent": absorbed, "attributes": {}}
    assert {**s, **fill_blanks(s, a)}["consent"] is expected


# --- find_duplicates ---------------------------------------------------------------


def person(lead_id: int, **fields: Any) -> dict[str, Any]:
    base = {
        "id": lead_id,
        "phone": None,
        "first_name": None,
        "last_name": None,
        "company": None,
        "email_domain": None,
    }
    return base | fields


def matched_ids(lead: dict[str, Any], *others: dict[str, Any]) -> list[int]:
    return [m.other_id for m in find_duplicates(lead, list(others))]


def test_same_phone_is_a_match_on_its_own() -> None:
    lead = person(1, phone="+12024561111", first_name="Dana", email_domain="gmail.com")
    other = person(2, phone="+12024561111", first_name="Zed", email_domain="yahoo.com")
    [match] = find_duplicates(lead, [other])
    assert match.other_id == 2
    assert "phone" in match.reason


def test_similar_name_and_same_corporate_domain_match() -> None:
    lead = person(1, first_name="Dana", last_name="Reyes", email_domain="northwind.com")
    other = person(2, first_name="Dana", last_name="Reyes ", email_domain="northwind.com")
    assert matched_ids(lead, other) == [2]


def test_similar_name_and_similar_company_match() -> None:
    lead = person(1, first_name="Jonathan", last_name="Smith", company="ACME, Inc.")
    other = person(2, first_name="Jonathon", last_name="Smith", company="Acme")
    assert matched_ids(lead, other) == [2]


def test_a_free_mail_domain_is_never_enough() -> None:
    lead = person(1, first_name="Dana", last_name="Reyes", email_domain="gmail.com")
    other = person(2, first_name="Dana", last_name="Reyes", email_domain="gmail.com")
    assert matched_ids(lead, other) == []


def test_different_names_do_not_match_even_at_the_same_company() -> None:
    lead = person(1, first_name="Dana", last_name="Reyes", company="Acme", email_domain="acme.io")
    other = person(2, first_name="Sam", last_name="Okafor", company="Acme", email_domain="acme.io")
    assert matched_ids(lead, other) == []


def test_similar_names_at_different_companies_do_not_match() -> None:
    lead = person(1, first_name="Dana", last_name="Reyes", company="Acme")
    other = person(2, first_name="Dana", last_name="Reyes", company="Globex")
    assert matched_ids(lead, other) == []


def test_a_lead_is_not_its_own_duplicate() -> None:
    lead = person(1, phone="+12024561111", first_name="Dana", last_name="Reyes")
    assert matched_ids(lead, lead) == []


def _one_by_one(lead: dict[str, Any], candidates: list[dict[str, Any]]) -> list[DuplicateMatch]:
    """The plain loop find_duplicates replaced: one rapidfuzz call per candidate."""
    found: list[DuplicateMatch] = []
    name = f"{lead.get('first_name') or ''} {lead.get('last_name') or ''}".strip()
    for other in candidates:
        if other["id"] == lead.get("id"):
            continue
        if lead.get("phone") and lead.get("phone") == other.get("phone"):
            found.append(DuplicateMatch(int(other["id"]), SAME_PHONE, 100.0))
            continue
        other_name = f"{other.get('first_name') or ''} {other.get('last_name') or ''}".strip()
        if not name or not other_name:
            continue
        name_score = fuzz.token_sort_ratio(name.lower(), other_name.lower())
        if name_score < NAME_SIMILARITY:
            continue
        family, other_family = (
            ((p.get("last_name") or p.get("first_name") or "").split() or [""])[-1].lower()
            for p in (lead, other)
        )
        if family != other_family and (
            (len(family) <= 4 and family not in other_name.lower().split())
            or (len(other_family) <= 4 and other_family not in name.lower().split())
        ):
            continue  # a short family name a letter apart: another family (Li, Liu)
        domain = lead.get("email_domain")
        if domain and domain not in FREE_MAIL_DOMAINS and domain == other.get("email_domain"):
            found.append(DuplicateMatch(int(other["id"]), SAME_EMAIL_DOMAIN, round(name_score, 1)))
            continue
        key, other_key = company_key(lead.get("company")), company_key(other.get("company"))
        if key and other_key:
            company_score = fuzz.ratio(key, other_key)
            if company_score >= COMPANY_SIMILARITY:
                found.append(
                    DuplicateMatch(
                        int(other["id"]), SIMILAR_COMPANY, round(min(name_score, company_score), 1)
                    )
                )
    return found


_FIRST_NAMES = st.sampled_from(["Dana", "Dan", "dana", "Ana", "", None])
_LAST_NAMES = st.sampled_from(["Reyes", "Reyes ", "Rey", "Reye", "Ng", None])
_COMPANIES = st.sampled_from(["Northwind", "Northwind Inc", "Nortwind", "Acme", "", None])
_DOMAINS = st.sampled_from(["northwind.com", "northwind.com", "gmail.com", None])
_PHONES = st.sampled_from(["+12024561111", "+12024562222", None])


@st.composite
def _people(draw: st.DrawFn) -> list[dict[str, Any]]:
    count = draw(st.integers(1, 12))
    return [
        person(
            i + 1,
            first_name=draw(_FIRST_NAMES),
            last_name=draw(_LAST_NAMES),
            company=draw(_COMPANIES),
            email_domain=draw(_DOMAINS),
            phone=draw(_PHONES),
        )
        for i in range(count)
    ]


@given(_people(), st.booleans())
def test_comparing_names_in_one_call_finds_what_one_call_per_candidate_found(
    people: list[dict[str, Any]], precomputed: bool
) -> None:
    lead, candidates = people[0], people
    names = {p["id"]: duplicate_name(p) for p in candidates} if precomputed else None
    assert find_duplicates(lead, candidates, names=names) == _one_by_one(lead, candidates)


WORDS = st.text(
    alphabet=st.characters(categories=("L", "N", "P"), max_codepoint=127), min_size=1, max_size=12
)
NAMES = st.fixed_dictionaries(
    {"first_name": st.none() | st.lists(WORDS, max_size=3).map(" ".join), "last_name": WORDS}
)


@given(NAMES, NAMES)
def test_names_as_compared_score_what_the_token_sorted_ratio_scores(
    one: dict[str, Any], other: dict[str, Any]
) -> None:
    def written(person: dict[str, Any]) -> str:  # a hyphen splits words (Jean-Paul)
        name = f"{person['first_name'] or ''} {person['last_name']}".strip().lower()
        return name.replace("-", " ")

    assert fuzz.ratio(duplicate_name(one), duplicate_name(other)) == fuzz.token_sort_ratio(
        written(one), written(other)
    )


@pytest.mark.parametrize(
    ("pasted", "typed"),
    [
        ("Ann\u00a0Marie Lee", "Ann Marie Lee"),  # a no-break space
        ("Maria\u200bGonzalez", "Maria Gonzalez"),  # a zero-width space
        ("María González", "Maria Gonzalez"),  # accents
        ("ZO\u00adË O'Brien", "Zoe O'Brien"),  # a soft hyphen is dropped
    ],
)
def test_names_written_apart_only_by_invisible_or_accented_letters_are_one_name(
    pasted: str, typed: str
) -> None:
    assert duplicate_name({"first_name": pasted}) == duplicate_name({"first_name": typed})
