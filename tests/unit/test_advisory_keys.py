"""A re-score's chunk locks never take the people's first key (a chunk number equal to a
person's hash would then make a capture wait on a re-score's chunk, and the other way)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from baton.store.advisory import PEOPLE_LOCKS, rescore_run_key


@given(st.integers(min_value=0, max_value=2**31 - 1))
def test_a_rescore_key_is_any_31_bit_value_but_the_peoples(draw: int) -> None:
    key = rescore_run_key(draw)
    assert 0 <= key < 2**31 and key != PEOPLE_LOCKS
    if draw != PEOPLE_LOCKS:
        assert key == draw


def test_the_peoples_own_key_is_moved() -> None:
    assert rescore_run_key(PEOPLE_LOCKS) != PEOPLE_LOCKS
