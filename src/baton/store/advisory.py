"""The first keys of Baton's two-key PostgreSQL advisory locks, in one place so that no
two features ever share one (the one-key locks, such as the migrations', live in a key
space of their own)."""

from __future__ import annotations

PEOPLE_LOCKS = 0x6C656164
"""The people's locks (``lead``): the second key a 32-bit hash of who a capture is about
(a collision only makes two groups wait for each other)."""


PAIR_LOCKS = 0x70616972
"""The possible-duplicate pairs' locks (``pair``): the second key a lead's id (modulo
2^31 - 1), taken by a worker adding pairs to that lead, so that two workers count its
pairs one after the other."""


def rescore_run_key(draw: int) -> int:
    """The first key of one re-score's chunk locks, from a random 31-bit ``draw``: any
    value but the people's or the pairs' (the second key is the chunk's number)."""
    return draw if draw not in (PEOPLE_LOCKS, PAIR_LOCKS) else draw ^ 1
