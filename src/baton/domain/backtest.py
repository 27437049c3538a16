"""Backtest: what a contract would have done to the recorded history (pure).

Each lead is replayed on its own: its activities in time order go through the
contract's real scoring code (:func:`baton.domain.scoring.add_event`,
:func:`~baton.domain.scoring.score` once for fit at capture time, then
:func:`~baton.domain.scoring.score_engagement` at each event's moment, so decay runs
from then, not from today) and :func:`~baton.domain.scoring.mql_decision` with stage
``lead`` (a hand-raise is judged at its own moment). The contract's MQL moment is the
first moment the decision says yes: at capture (``created_at``, with the events
recorded up to then) or at an event.

Choices, stated once (the report's notes repeat them):

* Baton keeps no history of a lead's fields: fit rules and required fields read the
  stored values, as if the lead always had them.
* Prep checklist items count as done (they are marketing's work before a handoff, not
  the lead's behaviour).
* A won lead is replayed up to the moment it was won (``customer_at``): an MQL after
  that sends nobody. Its **peak score** (for ROC AUC) is its highest total up to then;
  a lead without that outcome is replayed over its whole history.
* The threshold sweep reuses the replay: a lead is an MQL at threshold ``t`` when it
  hand-raised, or when its highest total at a moment where every other condition of
  the MQL rule held (grade, required fields, probability) reaches ``t``. At the
  contract's own threshold this is exactly the replay's count.

Metrics (:func:`summarise`): MQL volume; time from first touch (``created_at`` or the
first activity, whichever is earlier) to the MQL (median, p90); the shares of those
MQLs that sales accepted, qualified and won in history; missed winners (won in history,
never an MQL); sent but rejected (an MQL whose handoff sales rejected in history) by
reason code; precision and recall of "MQL" against won; ROC AUC and PR AUC of the peak
score against won. Without a won lead in the history these are ``None`` with a
warning (never a silent 0.5). AUCs are computed by the caller (``baton.learn``) and
passed in: this module imports no numerical library.
"""

from __future__ import annotations

import math
from array import array
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from baton.domain.contract import HandoffContract
from baton.domain.scoring import (
    EngagementState,
    Event,
    MqlDecision,
    engagement_total,
    fold_event,
    mql_decision,
    score,
    score_engagement,
)

SAMPLE_SIZE = 10
"""How many lead ids of missed winners a report lists."""
SWEEP_STEPS = 20

NOTES: tuple[str, ...] = (
    "Lead fields are their stored values: Baton keeps no history of fields, so fit "
    "rules and required fields read today's values at every past moment.",
    "Scores are computed as of each past event (decay runs from then); prep checklist "
    "items count as done.",
    "A won lead is replayed up to the moment it was won; its peak score before then "
    "ranks it for ROC AUC (a lead without that outcome: its peak over its whole history).",
    "The threshold sweep counts a lead as an MQL at a threshold when it hand-raised or "
    "its highest total while the MQL rule's other conditions held reaches it.",
)


@dataclass(frozen=True)
class Outcome:
    """What happened to a lead in history."""

    won: bool = False
    accepted: bool = False
    qualified: bool = False
    won_at: datetime | None = None
    rejections: tuple[str, ...] = ()
    """Reason codes of the lead's rejected handoffs (one entry per distinct code)."""


@dataclass(frozen=True)
class Replay:
    """One lead under one contract."""

    lead_id: int
    first_touch: datetime
    mql_at: datetime | None
    reason: str
    peak: float
    """Highest total up to the outcome (see the module docstring)."""
    eligible_peak: float | None
    """Highest total at a moment where the MQL rule's other conditions held."""
    hand_raised: bool


ProbabilityAt = Callable[[datetime], float | None]
"""The learned model's probability for the lead at a moment (``scoring.predicted``)."""


_Rules = tuple[set[str], set[str], bool]


def _rules(contract: HandoffContract) -> _Rules:
    """What a replay reads of the contract at each event: prep items (all done), the
    hand-raise types, and whether the score can rise between events."""
    return (
        {item.id for item in contract.prep_checklist},
        {e.value for e in contract.mql.hand_raise},
        _rises_between_events(contract),
    )


class _Run:
    """One contract's replay of one lead; the engagement state is the caller's (one
    state serves every contract with the same engagement rules)."""

    def __init__(
        self,
        contract: HandoffContract,
        lead: Mapping[str, Any],
        probability_at: ProbabilityAt | None,
        fit: float | None,
        rules: _Rules | None = None,
    ) -> None:
        self.contract = contract
        self.lead = lead
        self.prep_done, self.hand_raise, rises = rules or _rules(contract)
        self.threshold = contract.mql.threshold
        self.probability_at = probability_at
        # With a model the probability moves with every event: each one is checked in
        # full. Otherwise only events some rule counts (or hand-raises) can move the
        # score up - unless a decaying negative rule lets it rise between events.
        self.slow = probability_at is not None
        self.every = self.slow or rises
        self.fit = fit
        self.started = False
        self.gate = False
        self.mql_at: datetime | None = None
        self.reason = ""
        self.peak = -math.inf
        self.eligible: float | None = None
        self.raised = False

    def full(self, state: EngagementState, now: datetime, event: Event | None) -> None:
        """The real card and the real decision at ``now``."""
        contract, lead = self.contract, self.lead
        p = self.probability_at(now) if self.probability_at is not None else None
        raising = event is not None and event.type in self.hand_raise
        decision: MqlDecision | None = None
        if not self.started or self.fit is None:
            self.started = True
            if self.fit is None:
                card = score(contract, lead, state, now, probability=p)
                self.fit = card.fit
            else:
                # The same grade and total as score(): only the explanation lacks
                # the fit hits, which the decision does not read.
                card = score_engagement(contract, self.fit, state, now, probability=p)
            # Fields never change in the replay: whether the rule's conditions other
            # than the threshold hold is known once (without a model).
            decision = mql_decision(
                contract, stage="lead", card=card, lead=lead, now=now, prep_done=self.prep_done
            )
            self.gate = decision.reason.startswith("score ")
        else:
            card = score_engagement(contract, self.fit, state, now, probability=p)
        self.peak = max(self.peak, card.total)
        if decision is None or raising:
            decision = mql_decision(
                contract,
                stage="lead",
                card=card,
                lead=lead,
                now=now,
                event_type=event.type if event is not None and raising else None,
                event_at=event.occurred_at if event is not None else None,
                prep_done=self.prep_done,
            )
        if decision.reason.startswith("hand-raise"):
            self.raised = True
        if decision.reason.startswith("score ") or (self.gate and not self.slow):
            self.eligible = card.total if self.eligible is None else max(self.eligible, card.total)
        if decision.qualifies and self.mql_at is None:
            self.mql_at, self.reason = now, decision.reason

    def check(
        self,
        state: EngagementState,
        now: datetime,
        event: Event | None,
        shared: list[float] | None = None,
    ) -> None:
        """The score at ``now``; ``shared`` holds the engagement total at ``now`` once
        a contract with the same engagement rules has computed it."""
        fit = self.fit
        if (
            self.slow
            or not self.started
            or fit is None
            or (event is not None and event.type in self.hand_raise)
        ):
            self.full(state, now, event)
            return
        # The total as score_engagement computes it, without the explanation; the
        # decision itself is always the real one.
        if shared is None:
            engagement = engagement_total(self.contract, state, now)
        elif shared:
            engagement = shared[0]
        else:
            engagement = engagement_total(self.contract, state, now)
            shared.append(engagement)
        total = round(fit + engagement, 2)
        if total > self.peak:
            self.peak = total
        if self.gate:
            if self.eligible is None or total > self.eligible:
                self.eligible = total
            if self.mql_at is None and total >= self.threshold:
                self.full(state, now, event)

    def result(self, lead_id: int, first_touch: datetime, created_at: datetime) -> Replay:
        peak = self.peak
        if peak == -math.inf:
            # Won before it was created (a data error): scored at capture.
            peak = score(self.contract, self.lead, {}, created_at).total
        return Replay(
            lead_id, first_touch, self.mql_at, self.reason, peak, self.eligible, self.raised
        )


def _first_touch(
    created_at: datetime, events: Sequence[Event], first_activity: datetime | None
) -> datetime:
    first_touch = created_at
    for moment in (first_activity, events[0].occurred_at if events else None):
        if moment is not None and moment < first_touch:
            first_touch = moment
    return first_touch


def replay_lead(
    contract: HandoffContract,
    lead_id: int,
    lead: Mapping[str, Any],
    created_at: datetime,
    events: Sequence[Event],
    *,
    until: datetime | None = None,
    first_activity: datetime | None = None,
    probability_at: ProbabilityAt | None = None,
    fit: float | None = None,
) -> Replay:
    """Replay one lead's ``events`` (in time order) through ``contract``; ``until``
    (the moment it was won) ends the replay; ``first_activity`` is the lead's first
    activity of any type (``events`` may hold only those the contract counts);
    ``fit`` is the lead's fit score when the caller already has it (another contract
    with the same fit rules, see :func:`fit_key`). O(1) work per event."""
    run = _Run(contract, lead, probability_at, fit)
    state: EngagementState = {}
    captured = False
    for event in events:
        if until is not None and event.occurred_at > until:
            break
        if not captured and event.occurred_at > created_at:
            captured = True
            run.check(state, created_at, None)
        counted = fold_event(contract, state, event)
        if counted or run.every or event.type in run.hand_raise:
            run.check(state, event.occurred_at, event)
    if not captured and (until is None or created_at <= until):
        run.check(state, created_at, None)
    return run.result(lead_id, _first_touch(created_at, events, first_activity), created_at)


class Replayer:
    """:func:`replay_lead` for several contracts in one pass over a lead's events:
    contracts with the same engagement rules share one engagement state (each event
    folded once) and one engagement total per moment; each contract keeps its own
    fit, conditions, threshold and decision. Equal to one :func:`replay_lead` per
    contract (tests/unit/test_backtest_replay.py checks it on random histories)."""

    def __init__(self, contracts: Sequence[HandoffContract]) -> None:
        self.contracts = list(contracts)
        self.rules = [_rules(contract) for contract in self.contracts]
        keys: list[Any] = []
        self.groups: list[tuple[HandoffContract, list[int]]] = []
        for index, contract in enumerate(self.contracts):
            key = [rule.model_dump() for rule in contract.scoring.engagement]
            if key in keys:
                self.groups[keys.index(key)][1].append(index)
            else:
                keys.append(key)
                self.groups.append((contract, [index]))

    def replay(
        self,
        lead_id: int,
        lead: Mapping[str, Any],
        created_at: datetime,
        events: Sequence[Event],
        *,
        until: datetime | None = None,
        first_activity: datetime | None = None,
        probability_at: Sequence[ProbabilityAt | None] | None = None,
        fits: Sequence[float | None] | None = None,
    ) -> list[Replay]:
        """One :class:`Replay` per contract, in the order given."""
        runs = [
            _Run(
                contract,
                lead,
                probability_at[index] if probability_at is not None else None,
                fits[index] if fits is not None else None,
                self.rules[index],
            )
            for index, contract in enumerate(self.contracts)
        ]
        groups: list[tuple[HandoffContract, EngagementState, list[_Run]]] = [
            (contract, {}, [runs[index] for index in members]) for contract, members in self.groups
        ]
        captured = False
        for event in events:
            at = event.occurred_at
            if until is not None and at > until:
                break
            if not captured and at > created_at:
                captured = True
                for _, state, members in groups:
                    shared: list[float] = []
                    for run in members:
                        run.check(state, created_at, None, shared)
            for contract, state, members in groups:
                counted = fold_event(contract, state, event)
                shared = []
                for run in members:
                    if counted or run.every or event.type in run.hand_raise:
                        run.check(state, at, event, shared)
        if not captured and (until is None or created_at <= until):
            for _, state, members in groups:
                shared = []
                for run in members:
                    run.check(state, created_at, None, shared)
        first_touch = _first_touch(created_at, events, first_activity)
        return [run.result(lead_id, first_touch, created_at) for run in runs]


def fit_key(contract: HandoffContract) -> tuple[Any, ...]:
    """What a lead's fit score depends on besides the lead: contracts with equal keys
    give every lead the same fit (one computation serves both sides)."""
    scoring = contract.scoring
    return (
        [rule.model_dump() for rule in scoring.fit],
        tuple(scoring.competitors),
        tuple(scoring.disposable_domains),
    )


def fit_of(contract: HandoffContract, lead: Mapping[str, Any], now: datetime) -> float:
    """The lead's fit score as :func:`~baton.domain.scoring.score` computes it."""
    return score(contract, lead, {}, now).fit


def _rises_between_events(contract: HandoffContract) -> bool:
    return any(r.points < 0 and r.half_life_days for r in contract.scoring.engagement)


# --- Summaries -------------------------------------------------------------------


@dataclass(frozen=True)
class Totals:
    """One contract's figures over a set of leads."""

    mqls: int
    median_hours_to_mql: float | None
    p90_hours_to_mql: float | None
    accepted: int
    qualified: int
    won: int
    accepted_share: float | None
    qualified_share: float | None
    won_share: float | None
    missed_winners: int
    missed_sample: tuple[int, ...]
    rejected_by_reason: dict[str, int]
    precision: float | None
    recall: float | None
    roc_auc: float | None = None
    pr_auc: float | None = None


@dataclass(frozen=True)
class WeekRow:
    """The MQLs of one ISO week (of the contract's MQL moment)."""

    week: str
    mqls: int
    accepted: int
    qualified: int
    won: int
    rejected: int
    median_hours_to_mql: float | None


@dataclass(frozen=True)
class SweepPoint:
    threshold: float
    mqls: int
    precision: float | None
    recall: float | None
    own: bool = False
    """The contract's own threshold."""


@dataclass(frozen=True)
class SideReport:
    """One contract's backtest."""

    label: str
    version: int | None
    threshold: int
    totals: Totals
    weeks: tuple[WeekRow, ...]
    sweep: tuple[SweepPoint, ...]


def iso_week(moment: datetime) -> str:
    year, week, _ = moment.isocalendar()
    return f"{year}-W{week:02d}"


def quantile(values: Sequence[float], share: float) -> float | None:
    """The ``share`` quantile (linear interpolation) of ``values``; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * share
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _hours(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds / 3600.0, 2)


@dataclass
class _Week:
    mqls: int = 0
    accepted: int = 0
    qualified: int = 0
    won: int = 0
    rejected: int = 0
    seconds: list[float] = field(default_factory=list)


@dataclass
class Tally:
    """One contract's running totals, fed one lead at a time (O(1) per lead; the
    per-lead peaks are kept in compact arrays for the AUC and the sweep)."""

    contract: HandoffContract
    mqls: int = 0
    accepted: int = 0
    qualified: int = 0
    won: int = 0
    won_total: int = 0
    missed: int = 0
    missed_sample: list[int] = field(default_factory=list)
    rejected: Counter[str] = field(default_factory=Counter)
    seconds: array[float] = field(default_factory=lambda: array("d"))
    peaks: array[float] = field(default_factory=lambda: array("d"))
    eligible: array[float] = field(default_factory=lambda: array("d"))
    labels: array[int] = field(default_factory=lambda: array("b"))
    weeks: dict[str, _Week] = field(default_factory=dict)

    def merge(self, other: Tally) -> None:
        """Append ``other`` (the tally of the leads after this one's, in id order): the
        result equals one tally fed every lead in order."""
        self.mqls += other.mqls
        self.accepted += other.accepted
        self.qualified += other.qualified
        self.won += other.won
        self.won_total += other.won_total
        self.missed += other.missed
        self.missed_sample.extend(other.missed_sample[: SAMPLE_SIZE - len(self.missed_sample)])
        self.rejected.update(other.rejected)
        self.seconds.extend(other.seconds)
        self.peaks.extend(other.peaks)
        self.eligible.extend(other.eligible)
        self.labels.extend(other.labels)
        for name, week in other.weeks.items():
            mine = self.weeks.setdefault(name, _Week())
            mine.mqls += week.mqls
            mine.accepted += week.accepted
            mine.qualified += week.qualified
            mine.won += week.won
            mine.rejected += week.rejected
            mine.seconds.extend(week.seconds)

    def add(self, replay: Replay, outcome: Outcome) -> None:
        self.peaks.append(replay.peak)
        self.eligible.append(
            math.inf
            if replay.hand_raised
            else (replay.eligible_peak if replay.eligible_peak is not None else -math.inf)
        )
        self.labels.append(1 if outcome.won else 0)
        self.won_total += outcome.won
        if replay.mql_at is None:
            if outcome.won:
                self.missed += 1
                if len(self.missed_sample) < SAMPLE_SIZE:
                    self.missed_sample.append(replay.lead_id)
            return
        seconds = max(0.0, (replay.mql_at - replay.first_touch).total_seconds())
        self.mqls += 1
        self.accepted += outcome.accepted
        self.qualified += outcome.qualified
        self.won += outcome.won
        self.seconds.append(seconds)
        for code in outcome.rejections:
            self.rejected[code] += 1
        week = self.weeks.setdefault(iso_week(replay.mql_at), _Week())
        week.mqls += 1
        week.accepted += outcome.accepted
        week.qualified += outcome.qualified
        week.won += outcome.won
        week.rejected += bool(outcome.rejections)
        week.seconds.append(seconds)


def sweep_thresholds(peaks: Iterable[float], own: float, steps: int = SWEEP_STEPS) -> list[float]:
    """``steps`` thresholds from the lowest to the highest peak score, plus ``own``."""
    values = [p for p in peaks if math.isfinite(p)]
    found = {round(float(own), 2)}
    if values:
        low, high = min(values), max(values)
        if high > low:
            found.update(round(low + (high - low) * i / (steps - 1), 2) for i in range(steps))
        else:
            found.add(round(low, 2))
    return sorted(found)


def sweep(tally: Tally) -> list[SweepPoint]:
    """MQL volume, precision and recall at each threshold of :func:`sweep_thresholds`."""
    own = tally.contract.mql.threshold
    positives = tally.won_total
    points: list[SweepPoint] = []
    order = sorted(range(len(tally.eligible)), key=tally.eligible.__getitem__)
    values = [tally.eligible[i] for i in order]
    # won_above[k]: won leads among values[k:] (the leads at or over values[k]).
    won_above = [0] * (len(values) + 1)
    for k in range(len(values) - 1, -1, -1):
        won_above[k] = won_above[k + 1] + tally.labels[order[k]]
    for threshold in sweep_thresholds(tally.peaks, own):
        first = bisect_left(values, threshold)
        mqls = len(values) - first
        hits = won_above[first]
        points.append(
            SweepPoint(
                threshold,
                mqls,
                _share(hits, mqls) if positives else None,
                _share(hits, positives),
                own=threshold == round(float(own), 2),
            )
        )
    return points


RankMeasure = Callable[[Sequence[float], Sequence[int]], tuple[float, float]]
"""ROC AUC and PR AUC of scores against labels (given by the caller)."""


def summarise(
    tally: Tally,
    *,
    label: str,
    version: int | None,
    rank: RankMeasure | None = None,
) -> SideReport:
    """The report of one contract from its tally. ``rank`` measures the AUCs (only
    called when there are won and not-won leads)."""
    positives = tally.won_total
    measurable = 0 < positives < len(tally.labels)
    roc = pr = None
    if measurable and rank is not None:
        roc, pr = rank(list(tally.peaks), list(tally.labels))
    seconds = list(tally.seconds)
    totals = Totals(
        mqls=tally.mqls,
        median_hours_to_mql=_hours(quantile(seconds, 0.5)),
        p90_hours_to_mql=_hours(quantile(seconds, 0.9)),
        accepted=tally.accepted,
        qualified=tally.qualified,
        won=tally.won,
        accepted_share=_share(tally.accepted, tally.mqls),
        qualified_share=_share(tally.qualified, tally.mqls),
        won_share=_share(tally.won, tally.mqls),
        missed_winners=tally.missed,
        missed_sample=tuple(tally.missed_sample),
        rejected_by_reason=dict(sorted(tally.rejected.items(), key=lambda kv: (-kv[1], kv[0]))),
        precision=_share(tally.won, tally.mqls) if positives else None,
        recall=_share(tally.won, positives),
        roc_auc=roc,
        pr_auc=pr,
    )
    weeks = tuple(
        WeekRow(
            week=name,
            mqls=w.mqls,
            accepted=w.accepted,
            qualified=w.qualified,
            won=w.won,
            rejected=w.rejected,
            median_hours_to_mql=_hours(quantile(w.seconds, 0.5)),
        )
        for name, w in sorted(tally.weeks.items())
    )
    return SideReport(
        label=label,
        version=version,
        threshold=tally.contract.mql.threshold,
        totals=totals,
        weeks=weeks,
        sweep=tuple(sweep(tally)),
    )


def no_winner_warning(leads: int) -> str:
    return (
        f"no lead was won in the history ({leads:,} leads replayed): precision, recall "
        "and ROC AUC against won cannot be measured"
    )
