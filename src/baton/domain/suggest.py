"""Suggesting the name a person meant: one rule for every "did you mean" Baton says
(a contract's misspelled key or event type, an activity's type), so that the same typo
gets the same answer everywhere."""

from __future__ import annotations

import difflib
from collections.abc import Sequence


def suggest(word: str, choices: Sequence[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest choice, or nothing."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""
