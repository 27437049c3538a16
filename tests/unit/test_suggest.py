"""The suggested contract's arithmetic, by hand: coefficients to whole points on the
contract's own range, thresholds, the rule rows the real scoring code builds, and the
YAML that keeps everything but the numbers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from baton.domain.contract import parse_contract
from baton.domain.scoring import Event
from baton.learn.model import NotEnoughOutcomes
from baton.learn.suggest import (
    f1_threshold,
    rename,
    rule_rows,
    suggest_points,
    suggested_yaml,
    to_points,
    volume_threshold,
)

BODY = """schema_version: 1
name: Tiny
scoring:
  fit:
    - name: Pro plan
      when: {field: attributes.plan, equals: pro}
      points: 5
    - name: Red
      when: {field: attributes.color, equals: red}
      points: -20   # a guess
  engagement:
    - name: Page views
      event: page_view
      points: 4
      cap: 12
      half_life_days: 10
mql:
  threshold: 10
"""
NOW = datetime(2026, 3, 1, tzinfo=UTC)


def test_points_scale_so_the_largest_matches_the_original() -> None:
    # largest |old| = 20, largest |coefficient| = 2.0 -> K = 10
    scale, points = to_points([2.0, -0.5, 0.04, 1.26], [5, -20, 3, 0])
    assert scale == 10.0
    assert points == [20, -5, 0, 13]


def test_points_without_any_original_points_use_ten_and_zero_stays_zero() -> None:
    assert to_points([0.5, -0.25], [0, 0]) == (20.0, [10, -5])
    assert to_points([0.0, 0.0], [5, 5]) == (0.0, [0, 0])


def test_thresholds_by_volume_and_by_f1() -> None:
    scores = np.array([30.0, 25.0, 12.0, 12.0, 5.0, 0.0])
    labels = np.array([1, 1, 0, 1, 0, 0])
    # three leads handed off: 25 gives 2, 12 gives 4 -> the tie goes to the higher
    kept = volume_threshold(scores, labels, 3)
    assert (kept.threshold, kept.handed_off) == (25, 2)
    best = f1_threshold(scores, labels)
    # >= 12: precision 3/4, recall 1 -> F1 6/7; >= 25: 1 and 2/3 -> 0.8
    assert best.threshold == 12 and best.f1 == pytest.approx(6 / 7, abs=1e-4)


def test_rule_rows_come_from_the_real_conditions_and_decay() -> None:
    contract = parse_contract(BODY)
    lead = {"attributes": {"plan": "PRO", "color": "blue"}}
    views = [Event("page_view", NOW - timedelta(days=10)), Event("page_view", NOW)]
    late = [Event("page_view", NOW + timedelta(days=1))] * 9  # after the moment: ignored
    many = [Event("page_view", NOW)] * 5  # 5 events, capped at 12/4 = 3

    rows = rule_rows(contract, [lead, lead, lead], [views, late, many], [NOW, NOW, NOW])

    assert rows[0].tolist() == [1.0, 0.0, 1.5]  # 1 + 0.5 (one half-life old)
    assert rows[1].tolist() == [1.0, 0.0, 0.0]
    assert rows[2].tolist() == [1.0, 0.0, 3.0]


def test_a_suggestion_raises_the_signal_and_drops_the_noise() -> None:
    contract = parse_contract(BODY)
    rng = np.random.default_rng(3)
    n = 3000
    pro = rng.random(n) < 0.5
    red = rng.random(n) < 0.5
    labels = (rng.random(n) < np.where(pro, 0.8, 0.2)).astype(int).tolist()
    rows = np.column_stack([pro, red, np.zeros(n)]).astype(float)

    found = suggest_points(contract, rows, labels)

    pro_rule, red_rule, views = found.rules
    assert pro_rule.suggested == 20 and pro_rule.old == 5  # the largest: the old range
    assert abs(red_rule.suggested) <= 2 and red_rule.old == -20
    assert views.suggested == 0 and views.worthless and views.suggested_cap == 0
    assert found.new_roc_auc is not None and found.old_roc_auc is not None
    assert found.new_roc_auc > found.old_roc_auc


def test_too_few_outcomes_are_refused() -> None:
    contract = parse_contract(BODY)
    rows = np.zeros((30, 3))
    with pytest.raises(NotEnoughOutcomes, match="too few"):
        suggest_points(contract, rows, [1] * 5 + [0] * 25)


def test_the_yaml_keeps_the_text_and_changes_only_the_numbers() -> None:
    contract = parse_contract(BODY)
    rng = np.random.default_rng(3)
    pro = rng.random(300) < 0.5
    labels = (rng.random(300) < np.where(pro, 0.8, 0.2)).astype(int).tolist()
    views = rng.integers(0, 3, 300).astype(float)
    found = suggest_points(contract, np.column_stack([pro, np.zeros(300), views]), labels)

    text = suggested_yaml(rename(BODY, "Tiny (suggested)"), found, outcomes="won", day="2026-03-01")
    again = parse_contract(text)

    assert again.name == "Tiny (suggested)"
    assert [r.points for r in again.scoring.fit] == [20, 0]
    assert again.mql.threshold == found.volume.threshold
    assert "points: 20  # was 5" in text
    assert "points: 0   # a guess; was -20" in text
    assert text.startswith("# Suggested by Baton from 300 outcomes (won")
    assert again.scoring.engagement[0].half_life_days == 10
