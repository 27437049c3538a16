"""Which possible-duplicate pairs a new lead keeps (at most a handful, the best), and
which pairs a bulk dismissal may pick."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
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
    with pytest.raises(ValidationError, match="phone, email_domain, company"):
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
