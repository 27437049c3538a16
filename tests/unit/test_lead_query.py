"""The lead query's closed lists: a value given twice is the same filter, so a list
naming every grade or stage (with repeats, as a form or a program may send) is valid."""

from __future__ import annotations

import pytest

from baton.domain.errors import ValidationFailed
from baton.domain.search import read_lead_query


def test_repeated_grades_and_stages_count_once() -> None:
    query = read_lead_query(
        {"grade": ["c", "D", "C", "a", "B", "b", "D"], "stage": ["SAL", "sal", "mql", "Mql"]}
    )
    assert list(query.grade) == ["C", "D", "A", "B"]
    assert list(query.stage) == ["sal", "mql"]


def test_an_unknown_grade_is_still_named() -> None:
    with pytest.raises(ValidationFailed) as caught:
        read_lead_query({"grade": ["A", "Z"]})
    assert [p.loc for p in caught.value.problems] == ["grade"]
