"""One person written two ways: the name with or without a hyphen or a particle, one
inbox spelled two ways at a provider that reads them as one. And what stays apart:
a part of a name missing, a dot or a +tag at a domain that may read it otherwise."""

from __future__ import annotations

from typing import Any

import pytest

from baton.domain.contact import email_key, mailbox_key
from baton.domain.leads import (
    SAME_EMAIL_DOMAIN,
    SAME_MAILBOX,
    SAME_PHONE,
    DuplicateMatch,
    best_duplicates,
    find_duplicates,
)


def person(lead_id: int, first: str | None, last: str | None, **fields: Any) -> dict[str, Any]:
    return {
        "id": lead_id,
        "first_name": first,
        "last_name": last,
        "email_domain": "acme.io",
        **fields,
    }


@pytest.mark.parametrize(
    ("one", "other"),
    [
        (("Jean-Paul", "Martin"), ("Jean Paul", "Martin")),
        (("Jean-Paul", "Martin"), ("Jeanpaul", "Martin")),
        (("Mary-Jane", "Watson"), ("Maryjane", "Watson")),
        (("Anna", "van den Berg"), ("Anna", "Vandenberg")),
        (("Maria", "de la Cruz"), ("Maria", "Delacruz")),
        (("Omar", "Al-Hassan"), ("Omar", "Alhassan")),
        (("Ludwig", "van Beethoven"), ("Ludwig", "Beethoven")),  # as before: close enough
        (("Martin", "Jean-Paul"), ("Jean Paul", "Martin")),  # first and last name swapped
    ],
)
def test_a_name_written_with_or_without_a_hyphen_or_particle_is_one_name(
    one: tuple[str, str], other: tuple[str, str]
) -> None:
    lead, older = person(2, *one), person(1, *other)
    assert [(m.other_id, m.reason) for m in find_duplicates(lead, [older])] == [
        (1, SAME_EMAIL_DOMAIN)
    ]
    assert [m.other_id for m in find_duplicates(older, [lead])] == [2]


@pytest.mark.parametrize(
    ("one", "other"),
    [
        (("Jean-Paul", "Martin"), ("Paul", "Martin")),
        (("Anna", "van den Berg"), ("Anna", "Berg")),
        (("Anna", "de Vries"), ("Anna", "Devos")),
        (("Van", "Morrison"), ("Ann", "Morrison")),  # a first name is never a particle
    ],
)
def test_a_part_of_the_name_missing_is_another_person(
    one: tuple[str, str], other: tuple[str, str]
) -> None:
    assert find_duplicates(person(2, *one), [person(1, *other)]) == []


@pytest.mark.parametrize(
    ("address", "inbox"),
    [
        ("J.Smith+news@gmail.com", "jsmith@gmail.com"),
        ("jsmith@googlemail.com", "jsmith@gmail.com"),
        ("j.s.m.i.t.h@gmail.com", "jsmith@gmail.com"),
        ("john.smith+crm@outlook.com", "john.smith@outlook.com"),  # dots matter there
        ("ann+x+y@icloud.com", "ann@icloud.com"),
        ("+tag@gmail.com", None),
        ("john+sales@acme.example", None),  # a company's server may read + otherwise
        ("j.smith@yahoo.com", None),
    ],
)
def test_the_inbox_of_an_address(address: str, inbox: str | None) -> None:
    assert mailbox_key(email_key(address)) == inbox


def test_one_inbox_is_a_match_on_its_own_and_kept_first() -> None:
    lead = person(3, "Johnny", None, mailbox_key="jsmith@gmail.com", email_domain="gmail.com")
    inbox = person(1, "J", "S", mailbox_key="jsmith@gmail.com", email_domain="gmail.com")
    phone = person(2, "Jo", None, phone="+12024561111", mailbox_key="jsmith@gmail.com")
    lead["phone"] = "+12024561111"
    matches = find_duplicates(lead, [inbox, phone])
    assert matches == [
        DuplicateMatch(1, SAME_MAILBOX, 100.0),
        DuplicateMatch(2, SAME_PHONE, 100.0),  # both: the phone says it
    ]
    alike = [DuplicateMatch(i, SAME_EMAIL_DOMAIN, 100.0) for i in range(10, 20)]
    assert DuplicateMatch(30, SAME_MAILBOX, 100.0) in best_duplicates(
        [*alike, DuplicateMatch(30, SAME_MAILBOX, 100.0)]
    )


def _both_ways(lead: dict[str, Any], older: dict[str, Any]) -> list[list[int]]:
    """What the capture path (find_duplicates) and the worker (duplicates_in_groups)
    find for ``lead`` among ``older``, and for ``older`` looking at ``lead``."""
    from baton.domain.leads import CandidateGroup, duplicates_in_groups

    grouped = duplicates_in_groups(lead, [(CandidateGroup([older]), None)], limit=5)
    return [
        [m.other_id for m in find_duplicates(lead, [older])],
        [m.other_id for m in grouped],
        [m.other_id for m in find_duplicates(older, [lead])],
    ]


@pytest.mark.parametrize(
    ("one", "other"),
    [
        (("Yu", "Li"), ("Yu", "Liu")),  # 90.9 by the whole name
        (("Wei", "Wang"), ("Wei", "Wan")),  # 93.3
        (("Jonathan", "Chen"), ("Jonathan", "Chan")),
        (("Xiaoming", "Li"), ("Xiaoming", "Lu")),
        (("Yu Li", None), ("Yu Liu", None)),  # the whole name in one field
    ],
)
def test_a_short_family_name_a_letter_apart_is_another_family(
    one: tuple[str, str | None], other: tuple[str, str | None]
) -> None:
    assert _both_ways(person(2, *one), person(1, *other)) == [[], [], []]


@pytest.mark.parametrize(
    ("one", "other"),
    [
        (("Yu", "Li"), ("Yu", "Li")),
        (("Li", "Yu"), ("Yu", "Li")),  # first and last name swapped
        (("Zoë", "Bär"), ("Zoe", "Bar")),  # accents
        (("Anna", "Ng-Li"), ("Anna", "Ng Li")),
        (("Jonathan", "Wu"), ("Jonathon", "Wu")),  # a typo in the first name
        (("Marco", "De Luca"), ("Marco", "Deluca")),
        (("Christopher", "Johnson"), ("Christopher", "Jonson")),  # a typo, a long name
        (("Anna", "van den Berg"), ("Anna", "Vandenberg")),
    ],
)
def test_a_short_family_name_written_the_same_still_matches(
    one: tuple[str, str], other: tuple[str, str]
) -> None:
    assert _both_ways(person(2, *one), person(1, *other)) == [[1], [1], [2]]
