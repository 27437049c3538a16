"""A re-score of every lead that has not finished, as people are told about it.

Activating a contract version makes it active first, then re-scores every lead in
chunks; one stopped half way (killed, Ctrl+C, a database error) leaves the leads after
it scored by the older version until ``baton contract rescore`` finishes it. Its row
(:mod:`baton.services.rescore_progress`) is read by ``baton status``, ``baton contract
list``, the contract page and ``GET /api/v1/status``; the words are here, pure, so each
of them says the same thing.

Why "may still be running" rather than a verdict: a re-score notes its progress every
few seconds, but nothing tells a process that died from one between two notes (or in
its first pass over the events, before the first chunk), so a note younger than
:data:`RUNNING_WITHIN_SECONDS` is reported as possibly running and an older one as
stopped.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from baton.domain.status import age_text

RUNNING_WITHIN_SECONDS = 60.0
"""A re-score whose last progress note is younger than this may still be running."""


@dataclass(frozen=True)
class UnfinishedRescore:
    """The active version's re-score of every lead, begun and not finished."""

    version: int
    scored: int
    """Leads re-scored when its progress was last noted."""
    total: int
    """Leads to re-score (those not merged into another, counted as it began)."""
    started_at: datetime
    noted_at: datetime
    """When its progress was last noted (as it began, then every few seconds)."""
    noted_seconds: float
    """Seconds since then."""
    may_be_running: bool
    """Its last note is younger than :data:`RUNNING_WITHIN_SECONDS` and did not say it
    stopped."""


def unfinished_rescore(
    version: int,
    *,
    scored: int,
    total: int,
    started_at: datetime,
    noted_at: datetime,
    now: datetime,
    stopped: bool = False,
) -> UnfinishedRescore:
    """The re-score of ``version`` as its row tells it, judged at ``now``; ``stopped``:
    its last note said it stopped (an error or Ctrl+C in its own process)."""
    seconds = max(0.0, (now - noted_at).total_seconds())
    return UnfinishedRescore(
        version=version,
        scored=scored,
        total=total,
        started_at=started_at,
        noted_at=noted_at,
        noted_seconds=seconds,
        may_be_running=not stopped and seconds < RUNNING_WITHIN_SECONDS,
    )


def rescore_text(rescore: UnfinishedRescore) -> str:
    """One sentence: what is unfinished and what to do about it."""
    done = (
        f"re-score of version {rescore.version} unfinished: {rescore.scored:,} of "
        f"{rescore.total:,} leads scored"
    )
    if rescore.may_be_running:
        return (
            f"{done}, progress noted {age_text(rescore.noted_seconds)} ago (it may still be "
            "running; if it stopped, `baton contract rescore` finishes it)"
        )
    return f"{done}; run `baton contract rescore` to finish it"


def rescore_document(rescore: UnfinishedRescore) -> dict[str, Any]:
    """The re-score as data (``GET /api/v1/status``, ``GET /api/v1/contracts``,
    ``baton status --json``), with the sentence ``baton status`` prints as ``text``."""
    return {**asdict(rescore), "text": rescore_text(rescore)}
