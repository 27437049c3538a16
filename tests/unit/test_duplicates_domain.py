"""Which possible-duplicate pairs a new lead keeps (at most a handful, the best), and
which pairs a bulk dismissal may pick."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from pydantic import ValidationError

from baton.domain.duplicates import DuplicateDismissal, DuplicateFilter
from baton.domain.leads import (
    MAX_PAIRS_PER_LEAD,
    SAME_EMAIL_DOMAIN,
    SAME_PHONE,
    SIMILAR_COMPANY,
    DuplicateMatch,
    best_duplicates,
)


def test_a_lead_keeps_its_best_pairs_a_shared_phone_first() -> None:
    matches = [DuplicateMatch(i, SIMILAR_COMPANY, 90.0 + i) for i in range(1, 9)]
    matches += [
        DuplicateMatch(20, SAME_EMAIL_DOMAIN, 100.0),
        DuplicateMatch(30, SAME_EMAIL_DOMAIN, 100.0),
        DuplicateMatch(40, SAME_PHONE, 100.0),
    ]
    kept = best_duplicates(matches)
    assert [m.other_id for m in kept] == [40, 20, 30, 8, 7]
    assert len(kept) == MAX_PAIRS_PER_LEAD


@given(
    st.lists(
        st.builds(
            DuplicateMatch,
            st.integers(1, 10_000),
            st.sampled_from([SAME_PHONE, SAME_EMAIL_DOMAIN, SIMILAR_COMPANY]),
            st.floats(85, 100),
        ),
        max_size=30,
    )
)
def test_never_more_than_the_cap_and_nothing_better_left_out(
    matches: list[DuplicateMatch],
) -> None:
    kept = best_duplicates(matches)
    assert len(kept) == min(len(matches), MAX_PAIRS_PER_LEAD)
    dropped = [m for m in matches if m not in kept]
    for left_out in dropped:
        for chosen in kept:
            if left_out.reason == SAME_PHONE:
                assert chosen.reason == SAME_PHONE
            if chosen.reason != SAME_PHONE and left_out.reason != SAME_PHONE:
                assert chosen.similarity >= left_out.similarity


@pytest.mark.parametrize(
    ("given_", "stored"),
    [
        ("phone", SAME_PHONE),
        ("Email_Domain", SAME_EMAIL_DOMAIN),
        ("similar name and company", SIMILAR_COMPANY),
    ],
)
def test_a_reason_is_a_code_or_the_reason_as_listed(given_: str, stored: str) -> None:
    assert DuplicateFilter(reason=given_).reason == stored


def test_an_unknown_reason_lists_the_codes() -> None:
    with pytest.raises(ValidationError, match="phone, mailbox, email_domain, company"):
        DuplicateFilter(reason="same name")


def test_a_bulk_dismissal_must_say_which_pairs() -> None:
    with pytest.raises(ValidationError, match="say which pairs"):
        DuplicateDismissal()
    with pytest.raises(ValidationError, match="say which pairs"):
        DuplicateDismissal(dry_run=True)
    assert DuplicateDismissal(ids=[3]).ids == [3]
    assert DuplicateDismissal(similarity_below=95).similarity_below == 95


def test_the_period_is_in_order_and_aware() -> None:
    with pytest.raises(ValidationError, match="created_before must be after"):
        DuplicateFilter(
            created_since=datetime(2026, 3, 2, tzinfo=UTC),
            created_before=datetime(2026, 3, 1, tzinfo=UTC),
        )
    with pytest.raises(ValidationError):
        DuplicateFilter.model_validate({"created_since": "2026-03-02 09:00"})
    found = DuplicateFilter.model_validate({"created_since": "2026-03-02T10:00:00+01:00"})
    assert found.created_since == datetime(2026, 3, 2, 9, tzinfo=UTC)


NAMES = st.sampled_from(["Ana", "Anna", "Ana María", "Ana-María", "Ben", "Benn", None])
SURNAMES = st.sampled_from(
    ["Alvarez", "Álvarez", "Alvares", "Becker", "van den Berg", "Vandenberg", "Li", "Liu", None]
)
PERSON = st.fixed_dictionaries(
    {
        "phone": st.sampled_from(["+14155550100", "+14155550101", None]),
        "mailbox_key": st.sampled_from(["ana@gmail.com", "ben@gmail.com", None]),
        "first_name": NAMES,
        "last_name": SURNAMES,
        "company": st.sampled_from(["Acme", "Acme Inc", "Globex", None]),
        "email_domain": st.sampled_from(["acme.io", "gmail.com", "globex.com", None]),
    }
)


def _groups_of(
    people: list[dict[str, object]], draws: list[tuple[int, bool]]
) -> list[tuple[list[dict[str, object]], int | None]]:
    """Groups of candidates, each oldest first, each with its cap (a shared line's)."""
    out = []
    for size, capped in draws:
        members = sorted(people[:size], key=lambda p: int(p["id"]))  # type: ignore[call-overload]
        out.append((members, 3 if capped else None))
    return out


ANA = {
    "phone": "+14155550100",
    "mailbox_key": None,
    "first_name": "Ana",
    "last_name": "Alvarez",
    "company": "Acme",
    "email_domain": "acme.io",
}


# A lead reached by four older records of hers in one group: skipped when the group is
# capped at three (a shared line), all of them pairs when it is not; three records in a
# group capped at three are pairs, as many as the limit (two) takes.
@example(lead=ANA, people=[ANA] * 4, draws=[(4, True)], lead_at=11, limit=6, copies=0)
@example(lead=ANA, people=[ANA] * 4, draws=[(4, False)], lead_at=11, limit=6, copies=0)
@example(lead=ANA, people=[ANA] * 3, draws=[(3, True)], lead_at=11, limit=2, copies=0)
@given(
    lead=PERSON,
    people=st.lists(PERSON, min_size=0, max_size=12),
    draws=st.lists(st.tuples(st.integers(0, 12), st.booleans()), max_size=3),
    lead_at=st.integers(0, 12),
    limit=st.integers(1, 6),
    copies=st.integers(0, 4),
)
def test_grouped_matching_finds_what_find_duplicates_finds_in_the_union(
    lead: dict[str, object],
    people: list[dict[str, object]],
    draws: list[tuple[int, bool]],
    lead_at: int,
    limit: int,
    copies: int,
) -> None:
    """The worker's matching group by group gives what comparing the lead with the union
    of its candidates gave (the path it replaced): each group cut at the lead's arrival
    (its id) and at ``limit``, a capped group (a shared line) skipped when more than its
    cap reach the lead, the lead itself never its own candidate. ``copies`` older
    records of the lead come first, so that most examples have pairs to find (drawn
    apart, 94 in 100 had none, and the cap went untested)."""
    from baton.domain.leads import CandidateGroup, duplicates_in_groups, find_duplicates

    people = [{**p, "id": 10 * (i + 1)} for i, p in enumerate([*[lead] * copies, *people])]
    me = {**lead, "id": 10 * lead_at + 5}
    if people and lead_at % 3 == 0:  # sometimes the lead is in the groups itself
        me = people[lead_at % len(people)]
    groups = _groups_of([*people, me] if me not in people else people, draws)
    union: dict[int, dict[str, object]] = {}
    for members, cap in groups:  # the path replaced, as it was
        upto = [m for m in members if int(m["id"]) <= int(me["id"])]  # type: ignore[call-overload]
        if cap is not None and len(upto) > cap:
            continue
        for other in upto[:limit]:
            if int(other["id"]) < int(me["id"]):  # type: ignore[call-overload]
                union[int(other["id"])] = other  # type: ignore[call-overload]
    expected = set(find_duplicates(me, list(union.values())))
    got = duplicates_in_groups(
        me, [(CandidateGroup(list(members)), cap) for members, cap in groups], limit=limit
    )
    assert len(got) == len(set(got))
    assert set(got) == expected


@given(
    changed=PERSON,
    people=st.lists(PERSON, min_size=1, max_size=12),
    changed_at=st.integers(0, 12),
    cap=st.sampled_from([None, 3]),
)
def test_the_newer_leads_that_could_match_a_lead_include_every_one_that_does(
    changed: dict[str, object],
    people: list[dict[str, object]],
    changed_at: int,
    cap: int | None,
) -> None:
    """``newer_candidates`` leaves out only newer leads whose own comparison could not
    pair them with the lead (it spares comparing the rest of a group of 200)."""
    from baton.domain.leads import CandidateGroup, duplicates_in_groups, newer_candidates

    me = {**changed, "id": 10 * changed_at + 5}
    members = sorted(
        [*({**p, "id": 10 * (i + 1)} for i, p in enumerate(people)), me],
        key=lambda p: int(p["id"]),  # type: ignore[call-overload]
    )
    group = CandidateGroup(members)
    kept = {int(members[p]["id"]) for p in newer_candidates(me, group)}  # type: ignore[call-overload]
    assert all(i > me["id"] for i in kept)  # type: ignore[operator]
    for other in members:
        if int(other["id"]) <= int(me["id"]):  # type: ignore[call-overload]
            continue
        found = duplicates_in_groups(other, [(group, cap)], limit=len(members))
        if any(match.other_id == me["id"] for match in found):
            assert int(other["id"]) in kept  # type: ignore[call-overload]
