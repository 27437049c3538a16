"""The short cuts on the writing process' path of a lead import (issue 17) give exactly
the answers of the plain code they replace: the identity groups read from the
identifying cells alone (:func:`~baton.domain.lead_rows.identity_groups`) against the
groups of each row built whole by :func:`~baton.domain.lead_rows.payload`, and the
whitespace the fit SQL strips written out against all of Unicode. No timings here:
``bench/import.py`` has them."""

from __future__ import annotations

import contextlib
import dataclasses
import random
from collections.abc import Sequence

import pytest

from baton.domain.contact import InvalidContact, email_key, normalize_email, normalize_phone
from baton.domain.lead_rows import Columns, _trimmed, identity_groups, payload
from baton.store.score_sql import WHITESPACE


def _groups_of_whole_rows(
    records: Sequence[tuple[int, Sequence[str]]], columns: Columns, region: str
) -> list[int]:
    """The grouping as it was: each row built whole by :func:`payload`, every address
    through the cached :func:`normalize_email`; groups numbered by their first row."""
    only = dataclasses.replace(
        columns,
        targets=[t if t in ("email", "phone", "external_id") else None for t in columns.targets],
        external_system=None,
    )
    parent = list(range(len(records)))

    def root(i: int) -> int:
        while parent[i] != i:
            i = parent[i]
        return i

    first: dict[str, int] = {}
    for index, (_, cells) in enumerate(records):
        try:
            raw = payload(cells, only)
        except ValueError:
            continue
        candidates = []
        if (external_id := _trimmed(raw.get("external_id"))) is not None:
            candidates.append("x\x1f" + external_id)
        if (email := _trimmed(raw.get("email"))) is not None:
            with contextlib.suppress(InvalidContact):
                candidates.append("e\x1f" + email_key(normalize_email(email)))
        elif (phone := _trimmed(raw.get("phone"))) is not None:
            with contextlib.suppress(InvalidContact):
                candidates.append("p\x1f" + normalize_phone(phone, region))
        for candidate in candidates:
            other = first.setdefault(candidate, index)
            if other != index:
                parent[root(index)] = root(other)
    return [root(i) for i in range(len(records))]


def _same_partition(left: Sequence[int], right: Sequence[int]) -> bool:
    """Whether two group numberings put the same rows together (the numbers may differ)."""
    pairs = set(zip(left, right, strict=True))
    return len(pairs) == len(set(left)) == len(set(right))


EMAILS = [
    "p{n}@acme.example",
    " P{n}@Acme.EXAMPLE ",
    "'p{n}@acme.example",  # a guard only an export puts there, before a non-formula
    "'=p{n}@acme.example",  # a guarded formula: the same address as the next, unguarded
    "=p{n}@acme.example",
    "p{n}@ＡCME.example",  # a full-width letter the library folds
    "p{n}@bücher.example",
    "P{n}@xn--bcher-kva.example",
    "info@acme.example",  # a role mailbox: only the library answers
    "x" * 250 + "{n}@acme.example",  # longer than an address may be
    "not-an-email",
    "p{n}@",
    "a\x00b{n}@acme.example",
    "Select",  # declared blank
    "  ",
    "",
]
PHONES = [
    "(415) 555-01{n:02d}",
    "+1 415 555 01{n:02d}",
    "'=+1 415 555 01{n:02d}",
    "+44 20 7946 00{n:02d}",
    "12",
    "",
]
EXTERNAL_IDS = ["", "X{n}", " X{n} ", "x{n}", "'=X{n}", "=X{n}", "\x00", "Select"]
"""Cells of one of a few people (``{n}``), as files write them, or no usable one."""


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize(
    "targets",
    [
        ["email", "phone", "external_id", "first_name", "attributes.note"],
        ["first_name", "external_id", "attributes.email", "phone", "email"],  # other order
        ["phone", "first_name"],  # no email column: phones identify
    ],
)
def test_identity_groups_from_the_identifying_cells_are_those_of_whole_rows(
    seed: int, targets: list[str]
) -> None:
    rng = random.Random(seed)
    columns = Columns(
        targets=list[str | None](targets), extras_key="attributes", blanks=frozenset({"select"})
    )
    pools = {"email": EMAILS, "phone": PHONES, "external_id": EXTERNAL_IDS}
    records: list[tuple[int, list[str]]] = []
    for line in range(2, 602):
        person = rng.randrange(25)
        cells = [rng.choice(pools.get(t, ["Ana", "", "x"])).format(n=person) for t in targets]
        shape = rng.random()
        if shape < 0.04:
            cells.append("one cell too many")  # cannot be built: in no group
        elif shape < 0.08:
            cells = cells[: rng.randrange(len(cells))]  # a short row
        records.append((line, cells))
    fast = identity_groups(records, columns, "US")
    assert _same_partition(fast, _groups_of_whole_rows(records, columns, "US"))
    assert len(set(fast)) > 5


def test_the_whitespace_written_out_is_what_str_strip_removes() -> None:
    every = "".join(chr(c) for c in range(0x110000) if chr(c).isspace())
    assert every == WHITESPACE
