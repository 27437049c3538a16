"""A suggested contract: the EXISTING fit and engagement rules of a contract, with
points fitted from outcomes instead of guessed.

One row per example lead, one column per rule, computed by the real scoring code
(:func:`baton.domain.scoring.condition_holds` for a fit rule's indicator; the decayed,
capped event count of an engagement rule from :func:`~baton.domain.scoring.
engagement_state` and :func:`~baton.domain.scoring.engagement_hits` on the lead's
events up to its moment). A logistic regression (L2) fitted on those columns says how
much each rule moves the odds of the outcome; its coefficients become whole points,
scaled so the largest |points| equals the largest |points| of the original contract
(the familiar range), and the MQL threshold is chosen so the suggested contract hands
off as many leads as the original (:func:`match_volume`, counted by the caller as the
backtest counts them: every recorded lead, replayed; the F1-best threshold on the
example leads is reported beside it). The ROC AUCs are in-sample: measured on the very
leads the points were fitted on (``bench/evaluate.py`` measures them on a hold-out).
The YAML is the original text with only the numbers changed and a comment saying what
each was.

Pure: no I/O; numpy and scikit-learn only.
"""

from __future__ import annotations

import math
import re
import warnings
from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import numpy as np
import yaml

from baton.domain.contract import EngagementRule, FitRule, HandoffContract, rule_label
from baton.domain.scoring import (
    Event,
    condition_holds,
    email_classes,
    engagement_hits,
    engagement_state,
)
from baton.learn.model import check_outcomes

MAX_POINTS = 1000
DEFAULT_RANGE = 10
"""The largest |points| when the original contract has none other than zero."""


@dataclass(frozen=True)
class RuleSuggestion:
    """One rule's old and suggested points. ``coefficient``: change in log-odds of the
    outcome per unit (a fit rule that holds; one event, decayed, of an engagement rule)."""

    section: Literal["fit", "engagement"]
    index: int
    label: str
    old: int
    suggested: int
    coefficient: float
    cap: int | None = None
    suggested_cap: int | None = None
    support: int = 0
    """Example leads the rule holds for (fit) or has an event for (engagement)."""

    @property
    def worthless(self) -> bool:
        """The data gives the rule less than one point."""
        return self.suggested == 0

    @property
    def wrong_sign(self) -> bool:
        """The data says the opposite of the hand-written points."""
        return self.old * self.suggested < 0


@dataclass(frozen=True)
class ThresholdChoice:
    threshold: int
    handed_off: int
    precision: float
    recall: float
    f1: float


IN_SAMPLE = "in-sample: fitted on these leads"
"""How the suggestion's ROC AUCs were measured (said wherever they are shown)."""
VOLUME_TOLERANCE = 0.05
"""A threshold keeps the volume when it hands off within 5 % of the original's count
(whole-number thresholds cannot always hit it exactly)."""


@dataclass(frozen=True)
class VolumeMatch:
    """The threshold handing off closest to the original's MQL volume, counted over
    ``leads`` recorded leads the way the backtest counts (a lead is an MQL at ``t``
    when it hand-raised or its peak total while the MQL rule's other conditions held
    reaches ``t``). ``kept``: within :data:`VOLUME_TOLERANCE`; ``bound``: "lowest" when
    even threshold 0 hands off too few, "highest" when no threshold hands off few
    enough (hand-raisers always count)."""

    threshold: int
    old_threshold: int
    wanted: int
    handed_off: int
    leads: int
    kept: bool
    bound: str | None = None
    blocked: int = 0
    """Leads whose other MQL conditions never held under the suggested points (a grade
    below ``min_grade``: grade bands are left as written; a required field missing)."""

    @property
    def sentence(self) -> str:
        counted = f"counted as the backtest does, over all {self.leads:,} recorded leads"
        change = f"MQL threshold {self.old_threshold} -> {self.threshold}"
        volumes = f"{self.wanted:,} -> {self.handed_off:,} MQLs"
        if self.kept:
            return f"{change} keeps the volume ({volumes}; {counted})"
        if self.bound == "lowest":
            why = (
                f": {self.blocked:,} leads never meet the MQL rule's other conditions under "
                "the suggested points (a grade below min_grade, the grade bands being left "
                "as written; or a required field missing)"
                if self.blocked
                else ""
            )
            return (
                f"cannot keep the volume: even at threshold 0, the lowest a contract "
                f"allows, the suggested points hand off {self.handed_off:,} leads where the "
                f"original hands off {self.wanted:,} ({counted}){why}; {change}"
            )
        if self.bound == "highest":
            return (
                f"cannot keep the volume: {self.handed_off:,} leads hand-raise or score "
                f"above every threshold where the original hands off {self.wanted:,} "
                f"({counted}); {change}"
            )
        return (
            f"cannot keep the volume exactly: the closest whole-number threshold hands off "
            f"{self.handed_off:,} leads where the original hands off {self.wanted:,} "
            f"({counted}); {change}"
        )


def match_volume(eligible: Iterable[float], wanted: int, *, old_threshold: int) -> VolumeMatch:
    """The whole-number threshold (≥ 0) whose MQL count is closest to ``wanted`` (on a
    tie the original threshold, else the higher one). ``eligible``: per lead, the
    backtest's peak total while the MQL rule's other conditions held (+inf for a
    hand-raise, -inf for never; :attr:`baton.domain.backtest.Tally.eligible`)."""
    values = sorted(eligible)
    total = len(values)

    def count(threshold: int) -> int:
        return total - bisect_left(values, threshold)

    finite = [v for v in values if math.isfinite(v)]
    candidates = {0} | {max(0, math.ceil(round(v, 6))) for v in finite}
    candidates.add(max(candidates) + 1)
    top = max(candidates)
    candidates.add(old_threshold)
    best = min(sorted(candidates), key=lambda t: (abs(count(t) - wanted), t != old_threshold, -t))
    handed = count(best)
    kept = abs(handed - wanted) <= VOLUME_TOLERANCE * max(wanted, 1)
    bound: str | None = None
    if not kept and handed < wanted and handed == count(0):
        bound = "lowest"  # no lower threshold hands off more
    elif not kept and handed > wanted and handed == count(top):
        bound = "highest"  # no higher threshold hands off fewer
    blocked = sum(1 for v in values if v == -math.inf)
    return VolumeMatch(best, old_threshold, wanted, handed, total, kept, bound, blocked)


@dataclass(frozen=True)
class Suggestion:
    """The suggested points, the threshold keeping the original's MQL volume on the
    history, the F1-best alternative, and how both contracts rank the history."""

    rules: tuple[RuleSuggestion, ...]
    scale: float
    examples: int
    positives: int
    old_threshold: int
    volume: ThresholdChoice
    best_f1: ThresholdChoice
    old_choice: ThresholdChoice
    old_roc_auc: float | None
    new_roc_auc: float | None
    volume_match: VolumeMatch | None = None
    """The volume counted as the backtest counts it (set by the service); ``volume``
    is then the example leads' figures at that threshold."""


def _unit_contract(contract: HandoffContract) -> HandoffContract:
    """The contract with every engagement rule worth one point per event, uncapped: its
    engagement hits are decayed event counts."""
    unit = [r.model_copy(update={"points": 1, "cap": None}) for r in contract.scoring.engagement]
    scoring = contract.scoring.model_copy(update={"engagement": unit})
    return contract.model_copy(update={"scoring": scoring})


def _cap_events(rule: EngagementRule) -> float | None:
    if rule.cap is None or rule.points == 0:
        return None
    return rule.cap / abs(rule.points)


def rule_rows(
    contract: HandoffContract,
    leads: Sequence[Mapping[str, Any]],
    events: Sequence[Iterable[Event]],
    moments: Sequence[datetime],
) -> np.ndarray:
    """One row per lead, one column per fit rule then per engagement rule: 1/0 for a
    fit rule, the decayed and capped event count at the lead's moment for an
    engagement rule. Events after a lead's moment are ignored (the leakage guard)."""
    fit = contract.scoring.fit
    engagement = contract.scoring.engagement
    unit = _unit_contract(contract)
    caps = [_cap_events(r) for r in engagement]
    matrix = np.zeros((len(leads), len(fit) + len(engagement)), dtype=float)
    for row, (lead, lead_events, moment) in enumerate(zip(leads, events, moments, strict=True)):
        classes = email_classes(lead, contract)
        for column, rule in enumerate(fit):
            if condition_holds(rule.when, lead, contract, classes):
                matrix[row, column] = 1.0
        if not engagement:
            continue
        state = engagement_state(unit, (e for e in lead_events if e.occurred_at <= moment))
        for hit in engagement_hits(unit, state, moment):
            cap = caps[hit.rule]
            value = hit.points if cap is None else min(hit.points, cap)
            matrix[row, len(fit) + hit.rule] = value
    return matrix


def old_points(contract: HandoffContract) -> np.ndarray:
    return np.asarray(
        [r.points for r in contract.scoring.fit] + [r.points for r in contract.scoring.engagement],
        dtype=float,
    )


def totals(points: Sequence[float] | np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Each row's total score under ``points`` (fit + engagement; what scoring adds up,
    with caps scaled with the points)."""
    if rows.shape[1] == 0:
        return np.zeros(rows.shape[0])
    found: np.ndarray = rows @ np.asarray(points, dtype=float)
    return found


def fit_coefficients(rows: np.ndarray, labels: Sequence[int], *, c: float = 1.0) -> np.ndarray:
    """A logistic regression's coefficient per column (L2, ``c`` its inverse strength)."""
    from sklearn.linear_model import LogisticRegression

    y = np.asarray(labels, dtype=int)
    if rows.shape[1] == 0:
        return np.zeros(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = LogisticRegression(C=c, max_iter=5000).fit(rows, y)
    return np.asarray(model.coef_[0], dtype=float)


def to_points(coefficients: Sequence[float], old: Sequence[float]) -> tuple[float, list[int]]:
    """Whole points from coefficients: ``round(coefficient × K)`` with K chosen so the
    largest |points| equals the largest |old points| (or 10 when all were 0).
    Returns ``(K, points)``; all zero when every coefficient is."""
    largest = max((abs(c) for c in coefficients), default=0.0)
    target = max((abs(p) for p in old), default=0.0) or DEFAULT_RANGE
    if largest == 0:
        return 0.0, [0 for _ in coefficients]
    scale = target / largest
    points = [int(max(-MAX_POINTS, min(MAX_POINTS, round(c * scale)))) for c in coefficients]
    return scale, points


def threshold_choice(scores: np.ndarray, labels: np.ndarray, threshold: int) -> ThresholdChoice:
    """How many of ``scores`` reach ``threshold``, and precision, recall and F1 of that
    against ``labels``."""
    sent = scores >= threshold
    handed = int(sent.sum())
    hits = int((sent & (labels == 1)).sum())
    positives = int(labels.sum())
    precision = hits / handed if handed else 0.0
    recall = hits / positives if positives else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return ThresholdChoice(threshold, handed, round(precision, 4), round(recall, 4), round(f1, 4))


def _candidates(scores: np.ndarray) -> list[int]:
    found = {max(0, math.ceil(round(float(s), 6))) for s in scores}
    found.add(max(found, default=0) + 1)
    return sorted(found)


def volume_threshold(scores: np.ndarray, labels: np.ndarray, volume: int) -> ThresholdChoice:
    """The whole-number threshold (≥ 0) handing off closest to ``volume`` rows (the
    higher threshold on a tie)."""
    best: ThresholdChoice | None = None
    for t in _candidates(scores):
        choice = threshold_choice(scores, labels, t)
        if best is None or abs(choice.handed_off - volume) <= abs(best.handed_off - volume):
            best = choice
    assert best is not None
    return best


def f1_threshold(scores: np.ndarray, labels: np.ndarray) -> ThresholdChoice:
    """The whole-number threshold with the best F1 against the outcomes."""
    best: ThresholdChoice | None = None
    for t in _candidates(scores):
        choice = threshold_choice(scores, labels, t)
        if best is None or choice.f1 > best.f1:
            best = choice
    assert best is not None
    return best


def _auc(scores: np.ndarray, labels: np.ndarray) -> float | None:
    from sklearn.metrics import roc_auc_score

    if len(set(labels.tolist())) < 2 or len(set(np.round(scores, 6).tolist())) < 2:
        return None
    return round(float(roc_auc_score(labels, scores)), 4)


def suggest_points(
    contract: HandoffContract, rows: np.ndarray, labels: Sequence[int], *, c: float = 1.0
) -> Suggestion:
    """Fit the rules' points on ``rows`` (from :func:`rule_rows`) and their 0/1
    ``labels``. Refuses (:class:`~baton.learn.model.NotEnoughOutcomes`) a history too
    small or with one class only."""
    check_outcomes(labels)
    y = np.asarray(labels, dtype=int)
    rules: list[FitRule | EngagementRule] = [*contract.scoring.fit, *contract.scoring.engagement]
    old = old_points(contract)
    coefficients = fit_coefficients(rows, labels, c=c)
    scale, points = to_points(coefficients.tolist(), old.tolist())
    fit_count = len(contract.scoring.fit)
    found: list[RuleSuggestion] = []
    for column, (rule, new) in enumerate(zip(rules, points, strict=True)):
        engagement = column >= fit_count
        cap = rule.cap if isinstance(rule, EngagementRule) else None
        suggested_cap = None
        if isinstance(rule, EngagementRule) and cap is not None:
            events = _cap_events(rule)
            suggested_cap = cap if events is None else round(events * abs(new))
        found.append(
            RuleSuggestion(
                section="engagement" if engagement else "fit",
                index=column - fit_count if engagement else column,
                label=rule_label(rule),
                old=int(rule.points),
                suggested=new,
                coefficient=round(float(coefficients[column]), 4),
                cap=cap,
                suggested_cap=suggested_cap,
                support=int((rows[:, column] != 0).sum()),
            )
        )
    before = totals(old, rows)
    after = totals(points, rows)
    old_choice = threshold_choice(before, y, contract.mql.threshold)
    return Suggestion(
        rules=tuple(found),
        scale=round(scale, 4),
        examples=len(y),
        positives=int(y.sum()),
        old_threshold=contract.mql.threshold,
        volume=volume_threshold(after, y, old_choice.handed_off),
        best_f1=f1_threshold(after, y),
        old_choice=old_choice,
        old_roc_auc=_auc(before, y),
        new_roc_auc=_auc(after, y),
    )


def _scalar_spans(body: str) -> dict[str, tuple[int, int]]:
    """Character spans of the scalar values the suggestion rewrites, by path
    (``scoring.fit[2].points``, ``mql.threshold``, ``name``...)."""
    spans: dict[str, tuple[int, int]] = {}
    root = yaml.compose(body, Loader=yaml.SafeLoader)
    if not isinstance(root, yaml.MappingNode):
        return spans

    def child(node: yaml.Node, key: str) -> yaml.Node | None:
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                if k.value == key:
                    found: yaml.Node = v
                    return found
        return None

    def keep(path: str, node: yaml.Node | None) -> None:
        if isinstance(node, yaml.ScalarNode):
            spans[path] = (node.start_mark.index, node.end_mark.index)

    keep("name", child(root, "name"))
    keep("mql.threshold", child(child(root, "mql") or root, "threshold"))
    scoring = child(root, "scoring")
    for section in ("fit", "engagement"):
        rules = child(scoring, section) if scoring is not None else None
        if isinstance(rules, yaml.SequenceNode):
            for index, rule in enumerate(rules.value):
                keep(f"scoring.{section}[{index}].points", child(rule, "points"))
                keep(f"scoring.{section}[{index}].cap", child(rule, "cap"))
    return spans


def _line_end(body: str, index: int) -> int:
    end = body.find("\n", index)
    return len(body) if end < 0 else end


def suggested_yaml(
    body: str, suggestion: Suggestion, *, outcomes: str, day: str, threshold: int | None = None
) -> str:
    """The original contract text with the suggested points (and caps scaled with
    them), the volume-keeping threshold (or ``threshold``), a ``# was X`` comment on
    each changed line and a header saying where the numbers come from. Everything else
    (rules, comments, routing, SLA...) is kept as written."""
    spans = _scalar_spans(body)
    edits: list[tuple[int, int, str, str]] = []  # start, end, new text, comment
    for rule in suggestion.rules:
        path = f"scoring.{rule.section}[{rule.index}]"
        if f"{path}.points" in spans and rule.suggested != rule.old:
            start, end = spans[f"{path}.points"]
            edits.append((start, end, str(rule.suggested), f"was {rule.old}"))
        cap = rule.suggested_cap
        if f"{path}.cap" in spans and cap is not None and cap != rule.cap:
            start, end = spans[f"{path}.cap"]
            edits.append((start, end, str(cap), f"cap was {rule.cap}"))
    wanted = suggestion.volume.threshold if threshold is None else threshold
    if "mql.threshold" in spans and wanted != suggestion.old_threshold:
        start, end = spans["mql.threshold"]
        edits.append((start, end, str(wanted), f"was {suggestion.old_threshold}"))
    # Comments go at the end of each edited line, once per line.
    comments: dict[int, list[str]] = {}
    for start, _, _, comment in edits:
        comments.setdefault(_line_end(body, start), []).append(comment)
    pieces: list[tuple[int, int, str]] = [(s, e, text) for s, e, text, _ in edits]
    for line_end, notes in comments.items():
        line = body[body.rfind("\n", 0, line_end) + 1 : line_end]
        joined = "; ".join(notes)
        pieces.append((line_end, line_end, f"  # {joined}" if "#" not in line else f"; {joined}"))
    text = body
    for start, end, new in sorted(pieces, key=lambda p: (p[0], p[1]), reverse=True):
        text = text[:start] + new + text[end:]
    match = suggestion.volume_match
    volume = (
        f"the MQL threshold: {match.sentence}"
        if match is not None and threshold is None
        else f"the MQL threshold is {wanted}"
    )
    header = (
        f"# Suggested by Baton from {suggestion.examples} outcomes ({outcomes}, "
        f"{suggestion.positives} positive) on {day}: each rule's points fitted by a logistic "
        f"regression, scaled to the original's range; {volume}; the best-F1 threshold on "
        f"the outcome leads would be {suggestion.best_f1.threshold}.\n"
        "# Review before signing: it is a draft like any other.\n"
    )
    return header + text


_NAME_LIMIT = 200


def suggested_name(name: str, day: str) -> str:
    """The suggested version's name (shown in the version list)."""
    suffix = f" (suggested {day})"
    base = re.sub(r" \(suggested [0-9-]+\)$", "", name)
    return base[: _NAME_LIMIT - len(suffix)] + suffix


def rename(body: str, name: str) -> str:
    """``body`` with its top-level ``name`` replaced (quoted as YAML needs)."""
    spans = _scalar_spans(body)
    if "name" not in spans:
        return body
    start, end = spans["name"]
    quoted = yaml.safe_dump(name, default_flow_style=True, width=10_000).strip()
    quoted = quoted.removesuffix("\n...").removesuffix("...").strip()
    return body[:start] + quoted + body[end:]


def describe(rules: Iterable[RuleSuggestion]) -> Mapping[str, list[RuleSuggestion]]:
    """The rules the data calls worthless (< 1 point) and those it gives the opposite
    sign, for the report."""
    listed = list(rules)
    return {
        "worthless": [r for r in listed if r.worthless and r.old != 0],
        "wrong_sign": [r for r in listed if r.wrong_sign],
    }
