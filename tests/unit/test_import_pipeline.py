"""The pieces that let a lead import write while its rows are still being validated
(issue 17): the groups that hold every row of one person
(:func:`~baton.domain.lead_rows.identity_groups`) and the chunks cut from the parts as
they come (:class:`~baton.services.imports._ValidatedChunks`), held to the plain path
they replace on seeded random files. No timings here: ``bench/import.py`` has them."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from baton.domain.lead_rows import (
    CaptureValues,
    Columns,
    DatedLeads,
    identity_groups,
    validate_records,
)
from baton.domain.leads import LeadCreate
from baton.services import imports

HEADERS = ["email", "phone", "external_id", "first_name", "attributes.note"]
COLUMNS = Columns(
    targets=HEADERS,
    extras_key="attributes",
    blanks=frozenset({"select"}),
)
CONTEXT = {"default_region": "US"}

PHONES = ["(415) 555-0100", "+1 415 555 0100", "415.555.0100", "+44 20 7946 0018", "12", ""]


def _email(rng: random.Random) -> str:
    """One of forty people's addresses as files write them, or no usable one."""
    person = rng.randrange(40)
    return rng.choice(
        [
            f"p{person}@acme.example",
            f" P{person}@ACME.example ",
            f"p{person}@ＡCME.example",  # a full-width letter the library folds
            f"p{person}@bücher.example",
            f"p{person}@xn--bcher-kva.example",  # the same domain, IDNA-encoded
            f"'p{person}@acme.example",  # a guard only an export puts there
            "not-an-email",
            f"p{person}@",
            "Select",  # declared blank: the row is identified by its phone
            " ",
            "",
            "a\x00b@acme.example",
        ]
    )


def _records(seed: int, rows: int) -> list[tuple[int, list[str]]]:
    rng = random.Random(seed)
    records = []
    for line in range(2, rows + 2):
        cells = [
            _email(rng),
            rng.choice(PHONES),
            rng.choice([f"X{rng.randrange(30)}", f" x{rng.randrange(30)}"])
            if rng.random() < 0.1
            else "",
            rng.choice(["Ana", ""]),
            rng.choice(["x", ""]),
        ]
        if rng.random() < 0.03:
            cells.append("one cell too many")
        records.append((line, cells))
    return records


def _validated(
    records: list[tuple[int, list[str]]],
) -> list[tuple[int, LeadCreate]]:
    dated = DatedLeads("UTC", False, datetime(2026, 6, 1, tzinfo=UTC), imports.MAX_FUTURE_SKEW)
    return validate_records(records, COLUMNS, LeadCreate, CONTEXT, dated).good


@pytest.mark.parametrize("seed", range(8))
def test_every_row_of_one_person_is_in_one_identity_group(seed: int) -> None:
    """Whatever validation makes of a row (an email read in another case or with a
    guard, a declared blank, a bad email beside an external id, a phone alone), the
    rows it finds to be one person (:func:`_identity`, which gathers a chunk's rows, and
    :func:`_identities`, which also joins an email to the external id given with it)
    share one group."""
    records = _records(seed, 300)
    groups = identity_groups(records, COLUMNS, "US")
    group_of = {line: group for (line, _), group in zip(records, groups, strict=True)}
    good = _validated(records)
    assert len(good) > 100
    for keys in ([imports._identity(lead) for _, lead in good], imports._identities(good)):
        seen: dict[str, int] = {}
        for key, (line, _) in zip(keys, good, strict=True):
            assert seen.setdefault(key, group_of[line]) == group_of[line], key
    # Not everything in one group: the grouping leaves a writer something to take early.
    assert len({group_of[line] for line, _ in good}) > 10


def test_rows_of_different_people_are_not_grouped_without_a_shared_identity() -> None:
    records = [
        (2, ["ana@acme.example", "", "", "", ""]),
        (3, ["ben@acme.example", "", "", "", ""]),
        (4, ["", "(415) 555-0100", "", "", ""]),
        (5, ["ANA@acme.example", "+1 415 555 0100", "", "", ""]),  # Ana's, not the phone's
        (6, ["", "415.555.0100", "", "", ""]),  # the phone's
        (7, ["ben@other.example", "", "X9", "", ""]),
        (8, ["ben@acme.example", "", "X9", "", ""]),  # joins Ben's two emails by the id
        (9, ["chloe@xn--bcher-kva.example", "", "", "", ""]),
        (10, ["Chloe@bücher.example", "", "", "", ""]),  # the same address to the library
        (11, ["'=chloe@bücher.example", "", "", "", ""]),  # unguarded: not an email
    ]
    groups = identity_groups(records, COLUMNS, "US")
    assert groups[0] == groups[3]
    assert groups[2] == groups[4] != groups[0]
    assert groups[1] == groups[5] == groups[6] != groups[0]
    assert groups[7] == groups[8] != groups[9]


@pytest.mark.parametrize("seed", range(6))
def test_chunks_cut_while_validating_are_those_of_the_whole_file(seed: int) -> None:
    """Parts handed over one at a time, each person taken once its group's last part
    is in: the chunks (rows and order) are those :class:`_Chunks` cuts from the whole
    file validated first, whatever the chunk size does between chunks."""
    rng = random.Random(seed)
    records = _records(seed, 400)
    step = rng.choice([7, 23, 50])
    parts = [records[start : start + step] for start in range(0, len(records), step)]
    good_parts = [_validated(part) for part in parts]
    values = CaptureValues(None, "import")
    whole = imports._Chunks([row for part in good_parts for row in part], 60)
    ready = imports._ready_after(records, COLUMNS, "US", step)
    streamed = imports._ValidatedChunks(
        ([(n, values(lead)) for n, lead in part] for part in good_parts), ready, 60
    )
    sizes = [rng.randrange(10, 90) for _ in range(400)]
    cut: list[list[int]] = []
    for chunk in whole:
        cut.append([n for n, _ in chunk])
        whole.size = sizes[len(cut)]
    streamed_cut: list[list[int]] = []
    for chunk in streamed:
        streamed_cut.append([n for n, _ in chunk])
        streamed.size = sizes[len(streamed_cut)]
    assert streamed_cut == cut
    assert len(cut) > 3


def test_a_chunk_is_written_before_the_last_part_is_validated() -> None:
    """The point of the groups: people whose rows are all in the first parts go out
    while later parts are still to come (before, every row was validated first)."""
    records = [(n + 2, [f"p{n}@acme.example", "", "", "", ""]) for n in range(100)]
    parts = [records[start : start + 10] for start in range(0, len(records), 10)]
    values = CaptureValues(None, "import")
    handed: list[int] = []

    def given() -> object:
        for index, part in enumerate(parts):
            handed.append(index)
            yield [(n, values(lead)) for n, lead in _validated(part)]

    ready = imports._ready_after(records, COLUMNS, "US", 10)
    chunks = imports._ValidatedChunks(given(), ready, 25)  # type: ignore[arg-type]
    first = next(iter(chunks))
    assert [n for n, _ in first] == list(range(2, 27))
    assert handed[-1] < len(parts) - 1
