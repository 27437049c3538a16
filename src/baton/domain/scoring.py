"""Scoring a lead against the contract: fit (who they are), engagement (what they did,
fading with time), a grade, a total, and the rule-by-rule explanation that travels to
sales.

Engagement is kept as a small **state** per lead: for each engagement rule, its decayed
sum at a moment (``value`` at ``as_of``). Exponential decay is linear, so a new event
updates the state in O(1) whatever the lead's history, in any order, and the score at
any later time is ``value * 0.5 ** (age / half_life)``. This is what lets a new
activity update the score inside the transaction that stores it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, Literal

from baton.domain.contact import FREE_MAIL_DOMAINS
from baton.domain.contract import (
    GRADE_ORDER,
    EmailCondition,
    EngagementRule,
    FieldCondition,
    Grade,
    HandoffContract,
    rule_label,
)

DISPOSABLE_DOMAINS = frozenset(
    {
        "mailinator.com",
        "guerrillamail.com",
        "10minutemail.com",
        "tempmail.com",
        "temp-mail.org",
        "yopmail.com",
        "trashmail.com",
        "getnada.com",
        "dispostable.com",
        "sharklasers.com",
        "maildrop.cc",
        "throwawaymail.com",
    }
)
"""Well-known throw-away mailbox providers; contracts add their own."""

ROLE_LOCAL_PARTS = frozenset(
    {
        "info",
        "sales",
        "contact",
        "admin",
        "hello",
        "office",
        "team",
        "support",
        "marketing",
        "noreply",
        "no-reply",
        "enquiries",
        "inquiries",
        "billing",
        "hr",
        "jobs",
        "careers",
        "webmaster",
        "postmaster",
    }
)
"""Shared mailboxes: nobody in particular reads them."""

SECONDS_PER_DAY = 86_400.0


@dataclass(frozen=True)
class Event:
    """What scoring needs of an activity."""

    type: str
    occurred_at: datetime
    properties: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RuleHit:
    """One rule that fired: which, for how many points, on how many events, and
    whether its cap held it back."""

    section: Literal["fit", "engagement", "predicted"]
    rule: int
    label: str
    points: float
    events: int = 0
    capped: bool = False


@dataclass(frozen=True)
class ScoreCard:
    """A lead's score at a moment, with the explanation. ``total`` is exactly the sum
    of the hits' points. ``probability`` is the learned model's (contracts with
    ``scoring.predicted``), ``predicted`` the points it gave."""

    fit: float
    engagement: float
    total: float
    grade: Grade
    hits: tuple[RuleHit, ...]
    probability: float | None = None
    predicted: float = 0.0


EngagementState = dict[str, list[float]]
"""Per engagement rule index (as a string, JSON-friendly): ``[value, as_of_epoch,
events]``: the decayed sum at ``as_of`` and how many events fed it."""


@lru_cache(maxsize=1024)
def _pattern(expression: str) -> re.Pattern[str]:
    return re.compile(expression)


def field_value(lead: Mapping[str, Any], name: str) -> Any:
    """A lead field or ``attributes.<key>``; blank strings count as missing."""
    if name.startswith("attributes."):
        value = (lead.get("attributes") or {}).get(name.removeprefix("attributes."))
    elif name == "email_domain" and not lead.get("email_domain") and lead.get("email"):
        value = str(lead["email"]).rpartition("@")[2].lower()
    else:
        value = lead.get(name)
    if isinstance(value, str) and not value.strip():
        return None
    return value


def _as_number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.replace(",", "").strip())
        except ValueError:
            return None
    return None


def _same(actual: Any, expected: Any) -> bool:
    if isinstance(expected, str) and actual is not None:
        return str(actual).strip().lower() == expected.strip().lower()
    if isinstance(expected, int | float) and not isinstance(expected, bool):
        number = _as_number(actual)
        return number is not None and number == float(expected)
    return bool(actual == expected)


def email_classes(lead: Mapping[str, Any], contract: HandoffContract) -> set[str]:
    """The classes of the lead's email: free_mail, disposable, role, competitor, or
    corporate (none of free_mail/disposable)."""
    email = lead.get("email")
    if not email:
        return set()
    local, _, domain = str(email).lower().rpartition("@")
    found: set[str] = set()
    if domain in FREE_MAIL_DOMAINS:
        found.add("free_mail")
    if domain in DISPOSABLE_DOMAINS or domain in contract.scoring.disposable_domains:
        found.add("disposable")
    if local in ROLE_LOCAL_PARTS:
        found.add("role")
    if any(domain == c or domain.endswith("." + c) for c in contract.scoring.competitors):
        found.add("competitor")
    if not found & {"free_mail", "disposable"}:
        found.add("corporate")
    return found


def condition_holds(
    condition: FieldCondition | EmailCondition,
    lead: Mapping[str, Any],
    contract: HandoffContract,
    classes: set[str] | None = None,
) -> bool:
    """Whether a fit condition is true of ``lead`` (a mapping of lead columns);
    ``classes`` are the lead's email classes when the caller already has them."""
    if isinstance(condition, EmailCondition):
        if classes is None:
            classes = email_classes(lead, contract)
        return condition.email_domain in classes
    value = field_value(lead, condition.field)
    if condition.exists is not None:
        return (value is not None) == condition.exists
    if value is None:
        return False
    if condition.equals is not None:
        return _same(value, condition.equals)
    if condition.in_ is not None:
        return any(_same(value, option) for option in condition.in_)
    if condition.regex is not None:
        return _pattern(condition.regex).search(str(value)) is not None
    number = _as_number(value)
    if number is None:
        return False
    if condition.min is not None and number < condition.min:
        return False
    return not (condition.max is not None and number > condition.max)


def fit_hits(contract: HandoffContract, lead: Mapping[str, Any]) -> list[RuleHit]:
    """Every fit rule that holds for ``lead``, in contract order."""
    classes = email_classes(lead, contract)
    return [
        RuleHit("fit", index, _label(rule), float(rule.points))
        for index, rule in enumerate(contract.scoring.fit)
        if condition_holds(rule.when, lead, contract, classes)
    ]


_LABELS: dict[int, tuple[object, str]] = {}


def _label(rule: Any) -> str:
    """``rule_label`` once per rule object (labels are shown, not computed, per lead)."""
    cached = _LABELS.get(id(rule))
    if cached is not None and cached[0] is rule:
        return cached[1]
    if len(_LABELS) > 4096:
        _LABELS.clear()
    label = rule_label(rule)
    _LABELS[id(rule)] = (rule, label)
    return label


def event_matches(rule: EngagementRule, event: Event) -> bool:
    if rule.event.value != event.type:
        return False
    for key, wanted in rule.where.items():
        actual = event.properties.get(key)
        if actual is None:
            return False
        if wanted.equals is not None and not _same(actual, wanted.equals):
            return False
        if wanted.contains is not None and wanted.contains.lower() not in str(actual).lower():
            return False
        if wanted.regex is not None and not _pattern(wanted.regex).search(str(actual)):
            return False
    return True


def _decay(rule: EngagementRule, seconds: float) -> float:
    if rule.half_life_days is None:
        return 1.0
    return float(0.5 ** (seconds / (rule.half_life_days * SECONDS_PER_DAY)))


Where = tuple[tuple[str, Any, str | None, re.Pattern[str] | None], ...]
"""A rule's property filter, prepared: (key, equals, contains lower-cased, regex)."""


def _prepared_where(rule: EngagementRule) -> Where:
    return tuple(
        (
            key,
            wanted.equals,
            None if wanted.contains is None else wanted.contains.lower(),
            None if wanted.regex is None else _pattern(wanted.regex),
        )
        for key, wanted in rule.where.items()
    )


def _where_holds(where: Where, properties: Mapping[str, Any]) -> bool:
    """:func:`event_matches` for an event of the rule's type (the fold's hot loop)."""
    for key, equals, contains, regex in where:
        actual = properties.get(key)
        if actual is None:
            return False
        if equals is not None and not _same(actual, equals):
            return False
        if contains is not None and contains not in str(actual).lower():
            return False
        if regex is not None and not regex.search(str(actual)):
            return False
    return True


@dataclass(frozen=True)
class _RulePlan:
    key: str
    rule: EngagementRule
    points: float
    half_life_seconds: float | None
    where: Where = ()


_PLANS: dict[int, tuple[HandoffContract, dict[str, list[_RulePlan]]]] = {}


def _plan(contract: HandoffContract) -> dict[str, list[_RulePlan]]:
    """Engagement rules grouped by event type, computed once per contract object."""
    cached = _PLANS.get(id(contract))
    if cached is not None and cached[0] is contract:
        return cached[1]
    plan: dict[str, list[_RulePlan]] = {}
    for index, rule in enumerate(contract.scoring.engagement):
        half = rule.half_life_days * SECONDS_PER_DAY if rule.half_life_days else None
        plan.setdefault(rule.event.value, []).append(
            _RulePlan(str(index), rule, float(rule.points), half, _prepared_where(rule))
        )
    if len(_PLANS) > 256:
        _PLANS.clear()
    _PLANS[id(contract)] = (contract, plan)
    return plan


def relevant_event_types(contract: HandoffContract) -> set[str]:
    """Event types some engagement rule counts (others never change a score)."""
    return set(_plan(contract))


def event_types_needing_properties(contract: HandoffContract) -> set[str]:
    return {kind for kind, rules in _plan(contract).items() if any(r.rule.where for r in rules)}


def _fold(plan: dict[str, list[_RulePlan]], state: EngagementState, event: Event) -> bool:
    """Fold ``event`` into ``state`` in place; whether some rule counted it."""
    rules = plan.get(event.type)
    if not rules:
        return False
    at = event.occurred_at.timestamp()
    counted = False
    for item in rules:
        if item.where and not _where_holds(item.where, event.properties):
            continue
        counted = True
        entry = state.get(item.key)
        if entry is None:
            state[item.key] = [item.points, at, 1.0]
            continue
        value, as_of, count = entry
        half = item.half_life_seconds
        if at >= as_of:
            decay = 0.5 ** ((at - as_of) / half) if half else 1.0
            state[item.key] = [value * decay + item.points, at, count + 1]
        else:
            decay = 0.5 ** ((as_of - at) / half) if half else 1.0
            state[item.key] = [value + item.points * decay, as_of, count + 1]
    return counted


def add_event(
    contract: HandoffContract, state: Mapping[str, list[float]], event: Event
) -> EngagementState:
    """The engagement state after ``event`` (a new dict; ``state`` is not changed).
    Events may arrive in any order."""
    updated: EngagementState = {k: list(v) for k, v in state.items()}
    _fold(_plan(contract), updated, event)
    return updated


def engagement_state(contract: HandoffContract, events: Iterable[Event]) -> EngagementState:
    """The state of a whole history (the same, up to rounding, in any order)."""
    state: EngagementState = {}
    plan = _plan(contract)
    for event in events:
        _fold(plan, state, event)
    return state


def engagement_hits(
    contract: HandoffContract, state: Mapping[str, list[float]], now: datetime
) -> list[RuleHit]:
    """Each engagement rule's contribution at ``now``: decayed, then capped."""
    hits: list[RuleHit] = []
    for index, rule in enumerate(contract.scoring.engagement):
        entry = state.get(str(index))
        if entry is None:
            continue
        value, as_of, count = entry
        current = value * _decay(rule, max(0.0, now.timestamp() - as_of))
        capped = False
        if rule.cap is not None and abs(current) > rule.cap:
            current, capped = math.copysign(rule.cap, current), True
        points = round(current, 2)
        if points != 0:
            hits.append(RuleHit("engagement", index, _label(rule), points, int(count), capped))
    return hits


def fold_event(contract: HandoffContract, state: EngagementState, event: Event) -> bool:
    """:func:`add_event` in place (a backtest's hot loop): whether some rule counted it."""
    return _fold(_plan(contract), state, event)


_LIMITS: dict[int, tuple[HandoffContract, dict[str, tuple[float | None, float | None]]]] = {}


def engagement_total(
    contract: HandoffContract, state: Mapping[str, list[float]], now: datetime
) -> float:
    """``score_engagement(...).engagement`` without building the explanation (a
    backtest's hot loop): the very decay, cap and rounding of :func:`engagement_hits`."""
    cached = _LIMITS.get(id(contract))
    if cached is None or cached[0] is not contract:
        limits = {
            str(index): (
                rule.half_life_days * SECONDS_PER_DAY if rule.half_life_days else None,
                None if rule.cap is None else float(rule.cap),
            )
            for index, rule in enumerate(contract.scoring.engagement)
        }
        if len(_LIMITS) > 256:
            _LIMITS.clear()
        cached = _LIMITS[id(contract)] = (contract, limits)
    limits = cached[1]
    at = now.timestamp()
    points: list[float] = []
    for key, entry in state.items():
        limit = limits.get(key)
        if limit is None:  # a rule this contract does not have (engagement_hits skips it)
            continue
        half, cap = limit
        value = entry[0]
        if half is not None:
            seconds = at - entry[1]
            if seconds > 0:
                value = value * 0.5 ** (seconds / half)
        if cap is not None and abs(value) > cap:
            value = math.copysign(cap, value)
        rounded = round(value, 2)
        if rounded != 0:
            points.append(rounded)
    return round(math.fsum(points), 2)


def grade_for(contract: HandoffContract, fit: float) -> Grade:
    grades = contract.scoring.grades
    if fit >= grades.A:
        return "A"
    if fit >= grades.B:
        return "B"
    if fit >= grades.C:
        return "C"
    return "D"


def score(
    contract: HandoffContract,
    lead: Mapping[str, Any],
    state: Mapping[str, list[float]],
    now: datetime,
    *,
    probability: float | None = None,
) -> ScoreCard:
    """The lead's score card at ``now``: fit, decayed engagement, grade, total, hits.
    ``probability`` is the contract's model's for this lead at ``now`` (the caller
    computes it: models live outside the domain); without it a ``predicted``
    component adds nothing."""
    fits = fit_hits(contract, lead)
    return _card(
        contract, round(math.fsum(h.points for h in fits), 2), fits, state, now, probability
    )


def score_engagement(
    contract: HandoffContract,
    fit: float,
    state: Mapping[str, list[float]],
    now: datetime,
    *,
    probability: float | None = None,
) -> ScoreCard:
    """The card when only engagement can have moved since ``fit`` was computed (the
    lead's fields did not change): fit and grade stand, and the hits list the
    engagement rules (and the predicted component) only."""
    return _card(contract, fit, [], state, now, probability)


def predicted_hit(contract: HandoffContract, probability: float | None) -> RuleHit | None:
    """The ``predicted`` component's hit: weight × probability points."""
    component = contract.scoring.predicted
    if component is None or probability is None:
        return None
    label = component.name or f"Predicted by model v{component.model}"
    return RuleHit(
        "predicted",
        0,
        f"{label} ({probability:.0%})",
        round(component.weight * probability, 2),
    )


def _card(
    contract: HandoffContract,
    fit: float,
    fits: list[RuleHit],
    state: Mapping[str, list[float]],
    now: datetime,
    probability: float | None = None,
) -> ScoreCard:
    engaged = engagement_hits(contract, state, now)
    engagement = round(math.fsum(h.points for h in engaged), 2)
    hit = predicted_hit(contract, probability)
    predicted = hit.points if hit is not None else 0.0
    return ScoreCard(
        fit=fit,
        engagement=engagement,
        total=round(fit + engagement + predicted, 2),
        grade=grade_for(contract, fit),
        hits=tuple(fits + engaged + ([hit] if hit is not None else [])),
        probability=None if contract.scoring.predicted is None else probability,
        predicted=predicted,
    )


def grade_at_least(grade: Grade, minimum: Grade) -> bool:
    return GRADE_ORDER.index(grade) <= GRADE_ORDER.index(minimum)


@dataclass(frozen=True)
class MqlDecision:
    """Whether the lead is handed off now, and why (stored on the transition)."""

    qualifies: bool
    reason: str


def mql_decision(
    contract: HandoffContract,
    *,
    stage: str,
    card: ScoreCard,
    lead: Mapping[str, Any],
    now: datetime,
    event_type: str | None = None,
    event_at: datetime | None = None,
    recycled_at: datetime | None = None,
    prep_done: Collection[str] = (),
) -> MqlDecision:
    """The handoff point. A hand-raise qualifies at once (even during a recycle
    cool-down, and with prep items still open: sales sees them in the packet) when it
    is recent (``hand_raise_max_age_days``) and, for a recycled lead, newer than the
    recycle: a backfilled old demo request hands nobody off;
    otherwise the total must reach the threshold with the required fields present, the
    required prep items ticked, the grade high enough, and no cool-down running."""
    trigger = contract.mql
    if stage not in ("lead", "nurture"):
        return MqlDecision(False, f"stage {stage} is past the handoff point")
    if event_type is not None and event_type in {e.value for e in trigger.hand_raise}:
        fresh = event_at is None or (
            (now - event_at).total_seconds() <= trigger.hand_raise_max_age_days * SECONDS_PER_DAY
            and (recycled_at is None or event_at >= recycled_at)
        )
        if fresh:
            return MqlDecision(True, f"hand-raise: {event_type}")
    if stage == "nurture" and recycled_at is not None:
        remaining = (
            trigger.recycle_cooldown_days * SECONDS_PER_DAY - (now - recycled_at).total_seconds()
        )
        if remaining > 0:
            return MqlDecision(
                False, f"recycle cool-down: {remaining / SECONDS_PER_DAY:.1f} days left"
            )
    missing = [name for name in trigger.required_fields if field_value(lead, name) is None]
    if missing:
        return MqlDecision(False, f"missing required field(s): {', '.join(missing)}")
    open_items = [i.label for i in contract.prep_checklist if i.required and i.id not in prep_done]
    if open_items:
        return MqlDecision(False, f"prep not ready: {', '.join(open_items)}")
    if not grade_at_least(card.grade, trigger.min_grade):
        return MqlDecision(False, f"grade {card.grade} is below {trigger.min_grade}")
    if trigger.min_probability is not None and not (
        card.probability is not None and card.probability >= trigger.min_probability
    ):
        return MqlDecision(False, _probability_short(card.probability, trigger.min_probability))
    if card.total >= trigger.threshold:
        return MqlDecision(True, f"score {card.total:g} ≥ {trigger.threshold}")
    return MqlDecision(False, f"score {card.total:g} < {trigger.threshold}")


def _probability_short(probability: float | None, minimum: float) -> str:
    if probability is None:
        return f"no predicted probability yet (the MQL rule needs {minimum:.0%})"
    return f"predicted probability {probability:.0%} is below {minimum:.0%}"


MqlGapKind = Literal["cooldown", "field", "prep", "grade", "probability", "score"]


@dataclass(frozen=True)
class MqlGap:
    """One condition of the MQL rule (on score) that a lead does not meet yet: what
    marketing still has to do, or what the lead still has to show, before the handoff.

    ``item`` names the condition for programs: the field, the prep item's id,
    ``min_grade``, ``threshold`` or ``recycle_cooldown_days``; ``label`` says it for
    people. ``points`` (score) is how many points are missing; ``until`` (cool-down)
    when the cool-down ends."""

    kind: MqlGapKind
    item: str
    label: str
    points: float | None = None
    until: datetime | None = None


def mql_gaps(
    contract: HandoffContract,
    *,
    card: ScoreCard,
    lead: Mapping[str, Any],
    now: datetime,
    prep_done: Collection[str] = (),
    recycled_at: datetime | None = None,
) -> list[MqlGap]:
    """Every condition of the MQL rule on score that ``lead`` does not meet at ``now``,
    in the order :func:`mql_decision` checks them (cool-down, required fields, required
    prep items, grade, predicted probability, threshold); empty exactly when a lead in
    ``lead`` or ``nurture`` with this card would be handed off on score.
    ``recycled_at`` is when a lead in ``nurture`` was recycled (``None`` for any other stage).

    Where :func:`mql_decision` stops at the first unmet condition (it only needs a
    yes or no), this lists all of them, so that "why is this lead not an MQL yet?" has
    one complete answer. A hand-raise hands a lead off whatever these say."""
    trigger = contract.mql
    gaps: list[MqlGap] = []
    if recycled_at is not None:
        # The very arithmetic of mql_decision, so both always agree at the boundary.
        remaining = (
            trigger.recycle_cooldown_days * SECONDS_PER_DAY - (now - recycled_at).total_seconds()
        )
        if remaining > 0:
            gaps.append(
                MqlGap(
                    "cooldown",
                    "recycle_cooldown_days",
                    f"recycled to nurture: {remaining / SECONDS_PER_DAY:.1f} days of "
                    "cool-down left before a return on score",
                    until=now + timedelta(seconds=remaining),
                )
            )
    gaps.extend(
        MqlGap("field", name, f"required field {name} is missing")
        for name in trigger.required_fields
        if field_value(lead, name) is None
    )
    gaps.extend(
        MqlGap("prep", item.id, item.label)
        for item in contract.prep_checklist
        if item.required and item.id not in prep_done
    )
    if not grade_at_least(card.grade, trigger.min_grade):
        gaps.append(
            MqlGap("grade", "min_grade", f"grade {card.grade} is below {trigger.min_grade}")
        )
    if trigger.min_probability is not None and not (
        card.probability is not None and card.probability >= trigger.min_probability
    ):
        gaps.append(
            MqlGap(
                "probability",
                "min_probability",
                _probability_short(card.probability, trigger.min_probability),
            )
        )
    if not card.total >= trigger.threshold:
        # Rounded up to the cent: a lead 0.001 short is never told it misses 0 points.
        missing = math.ceil((trigger.threshold - card.total) * 100 - 1e-9) / 100
        missing = max(missing, 0.01)
        gaps.append(
            MqlGap(
                "score",
                "threshold",
                f"{missing:g} points short of the threshold {trigger.threshold}",
                points=missing,
            )
        )
    return gaps
