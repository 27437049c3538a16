"""The lead lifecycle: stages and the explicit table of allowed transitions.

Nothing changes a lead's stage except a :class:`Transition` checked here. The table is
deliberately small and named, so that the contract, the routing and the reports can
rely on it: a lead reaches ``sal`` only from ``mql`` (sales accepted a handed-off lead),
``customer`` only from ``opportunity``, and so on. Side stages: ``nurture`` (recycled to
marketing), ``disqualified`` and ``lost``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from baton.domain.errors import FieldProblem, InvalidTransitionError, ValidationFailed


class Stage(StrEnum):
    """Where a lead is in the funnel."""

    LEAD = "lead"
    MQL = "mql"
    SAL = "sal"
    SQL = "sql"
    OPPORTUNITY = "opportunity"
    CUSTOMER = "customer"
    NURTURE = "nurture"
    DISQUALIFIED = "disqualified"
    LOST = "lost"


FUNNEL: tuple[Stage, ...] = (
    Stage.LEAD,
    Stage.MQL,
    Stage.SAL,
    Stage.SQL,
    Stage.OPPORTUNITY,
    Stage.CUSTOMER,
)
"""The main line of the funnel, in order."""

INITIAL_STAGE = Stage.LEAD

ALLOWED: dict[Stage, frozenset[Stage]] = {
    Stage.LEAD: frozenset({Stage.MQL, Stage.NURTURE, Stage.DISQUALIFIED}),
    Stage.MQL: frozenset({Stage.SAL, Stage.NURTURE, Stage.DISQUALIFIED}),
    Stage.SAL: frozenset({Stage.SQL, Stage.NURTURE, Stage.DISQUALIFIED, Stage.LOST}),
    Stage.SQL: frozenset({Stage.OPPORTUNITY, Stage.NURTURE, Stage.LOST}),
    Stage.OPPORTUNITY: frozenset({Stage.CUSTOMER, Stage.LOST}),
    Stage.CUSTOMER: frozenset(),
    Stage.NURTURE: frozenset({Stage.MQL, Stage.DISQUALIFIED}),
    Stage.DISQUALIFIED: frozenset({Stage.NURTURE}),
    Stage.LOST: frozenset({Stage.NURTURE}),
}
"""Every allowed move. ``customer`` is final; ``disqualified`` and ``lost`` can only be
reopened by recycling to ``nurture``, so a lead never jumps back into sales' hands
without passing the handoff point again."""


def allowed_from(stage: Stage) -> list[Stage]:
    """Stages reachable in one step from ``stage``, in a stable order."""
    order = {s: i for i, s in enumerate(Stage)}
    return sorted(ALLOWED[stage], key=order.__getitem__)


def can_transition(current: Stage, target: Stage) -> bool:
    return target in ALLOWED[current]


@dataclass(frozen=True)
class Transition:
    """One stage change as it is stored: who moved the lead, when, why, and under
    which contract version (``None`` until contracts exist)."""

    from_stage: Stage
    to_stage: Stage
    actor: str
    reason: str
    occurred_at: datetime
    contract_version: int | None = None
    historical: bool = False
    """Recorded after the fact (a history import, a time given with the change):
    ``occurred_at`` is when it happened, ``recorded_at`` when Baton learnt of it."""
    recorded_at: datetime | None = None


def transition(
    current: Stage,
    target: Stage,
    *,
    actor: str,
    reason: str,
    at: datetime,
    contract_version: int | None = None,
) -> Transition:
    """Check a move against the table and describe it, or raise
    :class:`InvalidTransitionError` naming the allowed targets."""
    if not can_transition(current, target):
        raise InvalidTransitionError(
            current.value, target.value, [s.value for s in allowed_from(current)]
        )
    return Transition(current, target, actor, reason, at, contract_version)


def replay(history: Iterable[Transition], start: Stage = INITIAL_STAGE) -> Stage:
    """The stage a lead must be in after ``history``; raises if the history itself
    contains a move the table forbids or does not chain (a corrupted audit trail)."""
    stage = start
    for step in history:
        if step.from_stage != stage:
            raise InvalidTransitionError(
                stage.value, step.to_stage.value, [s.value for s in allowed_from(stage)]
            )
        stage = transition(
            stage, step.to_stage, actor=step.actor, reason=step.reason, at=step.occurred_at
        ).to_stage
    return stage


MAX_DEAL_VALUE = 1e12
"""The largest deal value Baton stores: far above any real deal, below what sums of
deal values in reports could lose precision on."""


def check_deal_value(amount: float | None) -> None:
    """Refuse a deal value that is not a number from 0 to :data:`MAX_DEAL_VALUE` (NaN and
    infinities included), whichever shell it came through; ``None`` means "not given"."""
    if amount is not None and not 0 <= amount <= MAX_DEAL_VALUE:  # NaN fails too
        message = f"the deal value must be a number from 0 to {MAX_DEAL_VALUE:,.0f}"
        raise ValidationFailed(message, [FieldProblem("amount", message)])
