"""The intake keys' moving-window rate limit (domain/rate.py)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from baton.domain.rate import SWEEP_EVERY, MovingWindow


@given(
    rate=st.integers(1, 5),
    gaps=st.lists(st.floats(0, 30, allow_nan=False), min_size=1, max_size=60),
)
def test_no_window_ever_holds_more_than_the_rate_and_the_wait_is_exact(
    rate: int, gaps: list[float]
) -> None:
    limit = MovingWindow(window=60.0)
    now, accepted = 1000.0, list[float]()
    for gap in gaps:
        now += gap
        wait = limit.hit("key", rate, now)
        recent = [t for t in accepted if t > now - 60]
        if wait is None:
            assert len(recent) < rate
            accepted.append(now)
        else:  # refused only when full, and told how long until the oldest leaves
            assert len(recent) == rate
            assert wait > 0 and abs(wait - (min(recent) + 60 - now)) < 1e-6
            now += wait + 1e-6  # just after the oldest left
            assert limit.hit("key", rate, now) is None
            accepted.append(now)
    for start in accepted:
        assert len([t for t in accepted if start <= t < start + 60]) <= rate


def test_keys_are_counted_apart_and_a_refusal_counts_nothing() -> None:
    limit = MovingWindow(window=60.0)
    assert [limit.hit(1, 2, 0.0), limit.hit(1, 2, 1.0)] == [None, None]
    assert limit.hit(1, 2, 2.0) == 58.0
    assert limit.hit(1, 2, 3.0) == 57.0  # the refused hit at 2.0 holds no slot
    assert limit.hit(2, 2, 3.0) is None
    assert limit.hit(1, 2, 60.0) is None  # the hit at 0.0 left the window


def test_keys_idle_for_a_window_are_forgotten_at_the_next_sweep() -> None:
    limit = MovingWindow(window=60.0)
    for key in range(50):  # revoked keys, old rates
        assert limit.hit(("old", key), 1000, 0.0) is None
    now = 61.0
    for i in range(SWEEP_EVERY):
        limit.hit("busy", 10_000, now + i / 1000)
    assert len(limit) == 1
