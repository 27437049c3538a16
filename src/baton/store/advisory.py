"""The first keys of Baton's two-key PostgreSQL advisory locks, in one place so that no
two features ever share one (the one-key locks, such as the migrations', live in a key
space of their own)."""

from __future__ import annotations

PEOPLE_LOCKS = 0x6C656164
"""The people's locks (``lead``): the second key a 32-bit hash of who a capture is about
(a collision only makes two groups wait for each other)."""


DUPLICATE_BATCHES = 0x64757073
"""A worker's reservation of the leads it compares for possible duplicates (``dups``):
the second key the lead's id modulo 2**31 - 1 (a collision only makes another worker
leave a lead to the next batch)."""


def rescore_run_key(draw: int) -> int:
    """The first key of one re-score's chunk locks, from a random 31-bit ``draw``: any
    value but the other features' (the second key is the chunk's number)."""
    while draw in (PEOPLE_LOCKS, DUPLICATE_BATCHES):
        draw ^= 1 << (draw % 7)
    return draw
