"""Nurture planning and exit rules: pure functions over plain values.

A lead enrolled in a contract sequence gets its steps one at a time. After each touch
(or at enrollment) :func:`plan_next` picks the next step whose condition holds for the
lead (a step whose condition does not hold is skipped, never sent late) and dates it
``delay_days`` after the last touch (the enrollment, for the first step). Nothing is
planned once the enrollment has reached its touch cap or has no step left: it is then
``completed``.

Working days: a step with ``working_days_only`` moves a due date that falls on the
weekend of the lead's country to the next working day. Weekends only, by country
(Friday-Saturday in much of the Middle East, Friday alone in Iran, Saturday-Sunday
elsewhere), judged on the due time's UTC date; public holidays are not modelled (no
holiday calendar dependency). The contract's bounds win over working days: when the
shift would take the spacing past ``delay_days.max``, the date moves back to the last
working day before it instead, and when neither keeps it within bounds it stays where
the delay put it. So the spacing between two touches of one enrollment is always within
``[min, max]`` days.

Exits: why an enrollment ends (:class:`ExitReason`). Unsubscribe, hard bounce, erasure,
disqualification, an error and an explicit end always end it; a reply, a hand-raise, a
re-MQL and sales taking the lead back end it when the sequence's ``exit_on`` lists them
(the default lists all four). An enrollment kept through a re-MQL sends nothing while
the lead is in an open handoff (:class:`Blocker`) and goes on when sales gives it back.

Who may be enrolled: :func:`blockers` names why a lead cannot get nurture email (no
address, no lawful basis, unsubscribed, suppressed, hard bounce, in sales' hands).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Final, Protocol


class ExitReason(StrEnum):
    """Why an enrollment ended before its last step (``nurture_enrollments.exit_reason``)."""

    REPLY = "reply"
    HAND_RAISE = "hand_raise"
    RE_MQL = "re_mql"
    UNSUBSCRIBE = "unsubscribe"
    HARD_BOUNCE = "hard_bounce"
    SALES_TOOK_BACK = "sales_took_back"
    DISQUALIFIED = "disqualified"
    ERASED = "erased"
    MERGED = "merged"
    NO_CONSENT = "no_consent"
    NO_EMAIL = "no_email"
    ERROR = "error"
    MANUAL = "manual"


class Completion(StrEnum):
    """Why an enrollment completed (``status='completed'``)."""

    MAX_TOUCHES = "max_touches"
    COMPLETED = "completed"


ALWAYS_EXIT: Final = frozenset(
    {
        ExitReason.UNSUBSCRIBE,
        ExitReason.HARD_BOUNCE,
        ExitReason.DISQUALIFIED,
        ExitReason.ERASED,
        ExitReason.MERGED,
        ExitReason.ERROR,
        ExitReason.MANUAL,
    }
)
"""Reasons that end an enrollment whatever the sequence's ``exit_on`` says."""


class Blocker(StrEnum):
    """Why a lead gets no nurture email (enrollment preview and send-time re-check)."""

    NO_EMAIL = "no_email"
    NO_CONSENT = "no_consent"
    UNSUBSCRIBED = "unsubscribed"
    SUPPRESSED = "suppressed"
    HARD_BOUNCE = "hard_bounce"
    OPEN_HANDOFF = "open_handoff"
    STAGE = "stage"
    ALREADY_ENROLLED = "already_enrolled"
    NO_STEP = "no_step"


BLOCKER_TEXT: Final[dict[Blocker, str]] = {
    Blocker.NO_EMAIL: "no email address",
    Blocker.NO_CONSENT: "no consent with a lawful basis recorded",
    Blocker.UNSUBSCRIBED: "unsubscribed",
    Blocker.SUPPRESSED: "address on the suppression list",
    Blocker.HARD_BOUNCE: "email hard-bounced",
    Blocker.OPEN_HANDOFF: "in an open handoff (sales has it)",
    Blocker.STAGE: "stage is not lead, nurture or lost",
    Blocker.ALREADY_ENROLLED: "already enrolled",
    Blocker.NO_STEP: "no step of the sequence applies to the lead",
}

NURTURABLE_STAGES: Final = frozenset({"lead", "nurture", "lost"})
"""Stages whose leads may be enrolled: not in sales' hands, not disqualified."""

_FRI_SAT: Final = frozenset({4, 5})
_SAT_SUN: Final = frozenset({5, 6})
WEEKENDS: Final[dict[str, frozenset[int]]] = {
    **dict.fromkeys(
        ("BH", "DZ", "EG", "IL", "IQ", "JO", "KW", "LY", "OM", "QA", "SA", "SD"), _FRI_SAT
    ),
    "AF": _FRI_SAT,
    "BD": _FRI_SAT,
    "IR": frozenset({4}),
    "YE": _FRI_SAT,
    "SY": _FRI_SAT,
}
"""Weekend days (``datetime.weekday()``) of countries whose weekend is not Sat-Sun."""


def weekend_of(country: str | None) -> frozenset[int]:
    """The weekend days of a country (ISO 3166 alpha-2; unknown or none: Sat-Sun)."""
    return WEEKENDS.get((country or "").upper(), _SAT_SUN)


class StepCondition(Protocol):
    """A step's ``when`` (:class:`baton.domain.nurture_rules.StepWhen`)."""

    @property
    def working_days_only(self) -> bool: ...

    def applies(self, *, grade: str | None, source: str | None, country: str | None) -> bool: ...


class Step(Protocol):
    @property
    def template(self) -> str: ...
    @property
    def delay_days(self) -> float: ...
    @property
    def when(self) -> StepCondition | None: ...


@dataclass(frozen=True)
class LeadFacts:
    """What a step's condition looks at."""

    country: str | None = None
    grade: str | None = None
    source: str | None = None


def lead_facts(row: Mapping[Any, Any]) -> LeadFacts:
    """The facts of a lead row (``country``, ``source`` and the score's ``grade``)."""
    return LeadFacts(row.get("country"), row.get("grade"), row.get("source"))


@dataclass(frozen=True)
class Bounds:
    """The contract's ``nurture.delay_days``: every spacing is within [min, max] days."""

    min_days: float = 6
    max_days: float = 45


@dataclass(frozen=True)
class Plan:
    """What comes next: a step and its due time, or the end (``completed``)."""

    step: int | None
    due_at: datetime | None
    status: str  # active | completed
    completion: Completion | None = None


def step_applies(step: Step, lead: LeadFacts) -> bool:
    """Whether a step's condition (grades, sources, countries) holds for the lead; an
    absent condition always holds."""
    when = step.when
    return when is None or when.applies(grade=lead.grade, source=lead.source, country=lead.country)


def due_after(
    last: datetime,
    delay_days: float,
    *,
    working_days_only: bool = False,
    country: str | None = None,
    bounds: Bounds = Bounds(),
) -> datetime:
    """``last`` + the step's delay (clamped to ``bounds``), moved off the lead's weekend
    when the step asks for working days, without leaving ``bounds``."""
    days = min(max(delay_days, bounds.min_days), bounds.max_days)
    due = last + timedelta(days=days)
    if not working_days_only:
        return due
    weekend = weekend_of(country)
    if len(weekend) >= 7 or due.weekday() not in weekend:
        return due
    low, high = last + timedelta(days=bounds.min_days), last + timedelta(days=bounds.max_days)
    later = due
    while later.weekday() in weekend:
        later += timedelta(days=1)
    if later <= high:
        return later
    earlier = due
    while earlier.weekday() in weekend:
        earlier -= timedelta(days=1)
    return earlier if earlier >= low else due


def cap_of(sequence_max: int | None, global_max: int) -> int:
    """The touch cap of a sequence: its own ``max_touches`` or the contract's."""
    return min(sequence_max, global_max) if sequence_max is not None else global_max


def plan_next(
    steps: Sequence[Step],
    *,
    from_step: int,
    touches: int,
    last_at: datetime,
    lead: LeadFacts,
    max_touches: int,
    bounds: Bounds = Bounds(),
) -> Plan:
    """The next step at or after index ``from_step`` whose condition holds, due
    ``delay_days`` after ``last_at`` (the last touch, or the enrollment); ``completed``
    when ``touches`` reached ``max_touches`` or no step is left. Deterministic."""
    if touches >= max_touches:
        return Plan(None, None, "completed", Completion.MAX_TOUCHES)
    for index in range(max(from_step, 0), len(steps)):
        step = steps[index]
        if not step_applies(step, lead):
            continue
        when = step.when
        due = due_after(
            last_at,
            step.delay_days,
            working_days_only=bool(when and when.working_days_only),
            country=lead.country,
            bounds=bounds,
        )
        return Plan(index, due, "active")
    return Plan(None, None, "completed", Completion.COMPLETED)


def plan_first(
    steps: Sequence[Step],
    *,
    enrolled_at: datetime,
    lead: LeadFacts,
    max_touches: int,
    bounds: Bounds = Bounds(),
) -> Plan:
    """The first step of a new enrollment (see :func:`plan_next`)."""
    return plan_next(
        steps,
        from_step=0,
        touches=0,
        last_at=enrolled_at,
        lead=lead,
        max_touches=max_touches,
        bounds=bounds,
    )


def plan_after_touch(
    steps: Sequence[Step],
    *,
    sent_step: int,
    touches: int,
    touched_at: datetime,
    lead: LeadFacts,
    max_touches: int,
    bounds: Bounds = Bounds(),
) -> Plan:
    """After step ``sent_step`` was sent (``touches`` counts it): the step after it."""
    return plan_next(
        steps,
        from_step=sent_step + 1,
        touches=touches,
        last_at=touched_at,
        lead=lead,
        max_touches=max_touches,
        bounds=bounds,
    )


def ends(reason: str, exit_on: Collection[str]) -> bool:
    """Whether ``reason`` ends an enrollment of a sequence with this ``exit_on``."""
    return reason in ALWAYS_EXIT or reason in set(exit_on)


def exit_for_activity(activity_type: str, hand_raise_types: Collection[str]) -> ExitReason | None:
    """The exit an activity may set off: a reply, or a contract hand-raise type."""
    if activity_type == "email_reply":
        return ExitReason.REPLY
    if activity_type in hand_raise_types:
        return ExitReason.HAND_RAISE
    return None


SALES_ROLES: Final = frozenset({"rep", "sales_manager"})


def exit_for_stage(target: str, actor_role: str | None) -> ExitReason | None:
    """The exit a stage change sets off: an MQL is a re-MQL (or sales taking the lead
    back, when a rep or a sales manager moved it); a sales stage is sales taking it
    back; disqualified ends it; lead, nurture and lost keep it."""
    if target == "mql":
        return ExitReason.SALES_TOOK_BACK if actor_role in SALES_ROLES else ExitReason.RE_MQL
    if target in ("sal", "sql", "opportunity", "customer"):
        return ExitReason.SALES_TOOK_BACK
    if target == "disqualified":
        return ExitReason.DISQUALIFIED
    return None


@dataclass(frozen=True)
class Reachability:
    """What decides whether a lead may get nurture email (from its row and lookups)."""

    email: str | None
    consent: bool | None
    consent_basis: str | None
    unsubscribed: bool
    suppressed: bool
    email_status: str | None
    open_handoff: bool
    stage: str


def blockers(lead: Reachability) -> list[Blocker]:
    """Every reason the lead may not get nurture email, in a fixed order (empty: it may).

    A lawful basis is required: ``consent_basis`` recorded and consent not withdrawn
    (``consent`` false)."""
    found: list[Blocker] = []
    if not (lead.email or "").strip():
        found.append(Blocker.NO_EMAIL)
    if not lead.consent_basis or lead.consent is False:
        found.append(Blocker.NO_CONSENT)
    if lead.unsubscribed:
        found.append(Blocker.UNSUBSCRIBED)
    if lead.suppressed:
        found.append(Blocker.SUPPRESSED)
    if lead.email_status == "hard_bounce":
        found.append(Blocker.HARD_BOUNCE)
    if lead.open_handoff:
        found.append(Blocker.OPEN_HANDOFF)
    if lead.stage not in NURTURABLE_STAGES:
        found.append(Blocker.STAGE)
    return found
