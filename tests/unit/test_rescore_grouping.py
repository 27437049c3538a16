"""SQLite's one pass groups events with numpy: its ordering shortcut is the plain stable
argsort (the grouping itself is compared with the per-lead path in
tests/integration/test_rescore_sets.py)."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from baton.services.scoring import _stable_order


@given(
    st.lists(
        st.one_of(
            st.integers(0, 40),
            st.integers(0, 2**40),
            st.integers(-(2**63), 2**63 - 1),
        ),
        max_size=200,
    )
)
def test_the_stable_order_is_numpys_stable_argsort(keys: list[int]) -> None:
    """Equal keys keep their order (each lead's events are summed in the order read),
    whatever the keys: small, large, negative (which take numpy's argsort itself)."""
    found = np.array(keys, dtype=np.int64)
    assert _stable_order(found).tolist() == np.argsort(found, kind="stable").tolist()


def test_many_repeated_keys_keep_their_order() -> None:
    keys = np.random.default_rng(7).integers(1, 1_000, 50_000, dtype=np.int64)
    assert np.array_equal(_stable_order(keys), np.argsort(keys, kind="stable"))
