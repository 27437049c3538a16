"""``check_json``'s fast path for an object of texts (a CSV row's attributes) gives the
full walk's answer: the same object accepted, or the same words refused. The full walk
is what a ``dict`` subclass still takes."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from baton.domain.limits import JsonLimits, check_json


class _Walked(dict[str, Any]):
    """A dict the fast path leaves to the full walk (it takes plain dicts only)."""


def _answer(value: dict[str, Any], limits: JsonLimits) -> str:
    try:
        check_json(value, limits)
    except ValueError as exc:
        return f"refused: {exc}"
    return "accepted"


texts = st.lists(
    st.sampled_from(["a", "é", "\x00", "\x01", '"', "\\", "\ud800", "\u2028", "z" * 5]),
    max_size=12,
).map("".join)
limits = st.builds(
    JsonLimits,
    max_bytes=st.integers(0, 300),
    max_keys=st.integers(0, 6),
    max_depth=st.integers(0, 2),
    max_string=st.integers(0, 40),
)


@given(st.dictionaries(texts, texts | st.integers() | st.none(), max_size=6), limits)
@example({}, JsonLimits(max_bytes=1))
@example({"a": "b"}, JsonLimits(max_depth=0))
@example({"Company": "Ünïcödé " * 3}, JsonLimits(max_bytes=40))
def test_a_flat_object_of_texts_gets_the_full_walks_answer(
    value: dict[str, Any], bounds: JsonLimits
) -> None:
    assert _answer(value, bounds) == _answer(_Walked(value), bounds)


def test_a_wide_row_of_texts_is_accepted_as_it_is() -> None:
    row = {f"column {i}": f"value {i}" for i in range(40)}
    assert check_json(row) is row
    with pytest.raises(ValueError, match="NUL character at column 7"):
        check_json({**row, "column 7": "a\x00b"})
