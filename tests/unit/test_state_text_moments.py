"""The state texts write a moment that is a whole millisecond (SQLite's, as the re-score
keeps them) as its whole seconds and a fixed text per millisecond instead of ``repr``
(``baton.store.event_pass.moment_texts``): the text must be ``repr``'s, character for
character, so what readers parse (``json.loads``) is the same float."""

from __future__ import annotations

import json

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from baton.store.event_pass import moment_texts, state_texts

WHOLE_MILLISECONDS = st.integers(0, 2**43 - 1) | st.sampled_from(
    [0, 1, 5, 10, 100, 999, 1000, 1001, 1_000_000_000_000, 1_753_279_405_000, 2**43 - 1]
)


@given(st.lists(WHOLE_MILLISECONDS, max_size=50))
def test_a_whole_millisecond_is_written_as_repr_writes_it(milliseconds: list[int]) -> None:
    moments = np.array(milliseconds, dtype=np.float64) / 1000.0
    found = moment_texts(moments)
    assert found is not None
    whole, rest = found
    assert [f"{w}{r}" for w, r in zip(whole, rest, strict=True)] == [
        repr(moment) for moment in moments.tolist()
    ]


@given(st.lists(st.floats(width=64), min_size=1, max_size=20))
def test_any_other_moment_is_left_to_repr_or_written_the_same(moments: list[float]) -> None:
    """Negative, ``-0.0``, past 2^43 ms, finer than a millisecond, not a number: the
    column is left to ``repr`` (``None``); whatever it takes is ``repr``'s text."""
    found = moment_texts(np.array(moments, dtype=np.float64))
    if found is not None:
        assert [f"{w}{r}" for w, r in zip(*found, strict=True)] == [repr(m) for m in moments]
    for odd in (-0.0, -1.5, 0.0001, 1.0005, 2.0**43, float("nan")):
        assert moment_texts(np.array([1.5, odd])) is None


@given(st.data())
def test_state_texts_with_whole_milliseconds_are_the_json_of_each_state(
    data: st.DataObject,
) -> None:
    n = data.draw(st.integers(1, 12))
    names = ["0", "1", "2"]
    values = {
        k: np.array(data.draw(st.lists(st.floats(-1e6, 1e6), min_size=n, max_size=n)))
        for k in names
    }
    as_of = {
        k: np.array(data.draw(st.lists(WHOLE_MILLISECONDS, min_size=n, max_size=n)), dtype=float)
        / 1000.0
        for k in names[:2]
    }
    # One rule's moments are not all whole milliseconds: that rule's column is repr'd.
    as_of["2"] = np.array(data.draw(st.lists(st.floats(0, 2e9), min_size=n, max_size=n)))
    counts = {
        k: np.array(data.draw(st.lists(st.sampled_from([0.0, 1.0, 3.0]), min_size=n, max_size=n)))
        for k in names
    }
    expected = [
        json.dumps(
            {
                k: [float(values[k][row]), float(as_of[k][row]), float(counts[k][row])]
                for k in names
                if counts[k][row] > 0
            }
        )
        for row in range(n)
    ]
    assert state_texts(n, names, values, as_of, counts) == expected
