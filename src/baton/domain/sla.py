"""The SLA clock: deadlines in the rep's business time, and the escalation ladder.

A handoff's accept and first-touch deadlines (``accept_due_at``, ``touch_due_at``) are
fixed when it is assigned, from the rep's schedule as it is then; they are what reports
judge. The ladder's steps are computed from the rep's current schedule when they are
checked, so an absence entered after assignment delays the reminders (a known limit:
a snapshot of the schedule on the handoff would remove it). The ladder is walked in
``at_minutes`` order; a step is skipped once its ``until`` condition holds
(accepted, or touched), which is why :func:`next_step` is asked again after every
verdict.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from baton.domain.business_hours import Schedule, add_business_minutes
from baton.domain.contract import Sla, SlaStep


def deadline(
    schedule: Schedule | None, start: datetime, minutes: float, *, business_hours: bool
) -> datetime:
    """``minutes`` after ``start``: in the schedule's working time when
    ``business_hours`` (falling back to wall-clock time for a schedule with no working
    time in the coming year), else in wall-clock time."""
    if business_hours and schedule is not None:
        due = add_business_minutes(schedule, start, minutes)
        if due is not None:
            return due
    return start + timedelta(minutes=minutes)


def deadlines_from(
    schedule: Schedule | None, assigned_at: datetime, sla: Sla
) -> Callable[[float], datetime]:
    """A handoff's deadline function: ``minutes`` after its assignment, in the rep's
    business time when the SLA says so (what :func:`next_step` takes as ``due_at``)."""

    def due(minutes: float) -> datetime:
        return deadline(schedule, assigned_at, minutes, business_hours=sla.business_hours)

    return due


def ladder(sla: Sla) -> list[SlaStep]:
    """The steps in the order they fall due (contract order among equal times)."""
    return sorted(sla.ladder, key=lambda s: s.at_minutes)


@dataclass(frozen=True)
class NextStep:
    """The next rung to act on: its index in :func:`ladder` order and when it is due."""

    index: int
    step: SlaStep
    due_at: datetime


def next_step(
    sla: Sla,
    after: int,
    *,
    accepted: bool,
    touched: bool,
    due_at: Callable[[float], datetime],
) -> NextStep | None:
    """The first step at index ≥ ``after`` that still applies, or ``None`` when the
    ladder is done. ``due_at(minutes)`` turns a step's minutes into a moment (the
    handoff's business-time deadline function)."""
    steps = ladder(sla)
    for index in range(max(after, 0), len(steps)):
        step = steps[index]
        if (step.until == "accepted" and accepted) or (step.until == "touched" and touched):
            continue
        return NextStep(index, step, due_at(step.at_minutes))
    return None


SlaState = Literal["on time", "reminded", "breached"]
"""Where an open handoff stands against its SLA, as a manager reads it."""


@dataclass(frozen=True)
class SlaStanding:
    """An open handoff against its SLA: ``state``; what the rep owes next
    (``waiting_for``: accept or first touch, ``None`` once both are done) and by when
    (``due_at``, the deadline fixed at assignment)."""

    state: SlaState
    waiting_for: Literal["accept", "touch"] | None
    due_at: datetime | None


def standing(
    *,
    accept_due_at: datetime | None,
    touch_due_at: datetime | None,
    accepted_at: datetime | None,
    first_touch_at: datetime | None,
    reminders: int,
    now: datetime,
) -> SlaStanding:
    """``breached`` when a deadline passed before its step was done (accepted or
    touched late, or not yet and the deadline is gone); else ``reminded`` when the
    ladder already reminded the rep; else ``on time``."""
    late = False
    waiting_for: Literal["accept", "touch"] | None
    if accepted_at is None:
        waiting_for, due = "accept", accept_due_at
    else:
        late = accept_due_at is not None and accepted_at > accept_due_at
        if first_touch_at is None:
            waiting_for, due = "touch", touch_due_at
        else:
            waiting_for, due = None, None
            late = late or (touch_due_at is not None and first_touch_at > touch_due_at)
    if late or (due is not None and now >= due):
        state: SlaState = "breached"
    else:
        state = "reminded" if reminders > 0 else "on time"
    return SlaStanding(state, waiting_for, due)
