"""The contract's learned component in the domain: ``scoring.predicted`` adds weight ×
probability points to the total (one hit, section "predicted"), ``mql.min_probability``
gates the MQL on score (a hand-raise still qualifies at once), and the gaps name the
missing probability."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml

from baton.domain.contract import ContractError, HandoffContract, parse_contract
from baton.domain.scoring import mql_decision, mql_gaps, score, score_engagement

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
LEAD = {"email": "dana@northwind.example.com", "title": "VP Data", "country": "US"}


def contract(
    *, weight: int | None = 40, min_probability: float | None = None, name: str | None = None
) -> HandoffContract:
    mql: dict[str, Any] = {"threshold": 50, "hand_raise": ["demo_request"]}
    if min_probability is not None:
        mql["min_probability"] = min_probability
    scoring: dict[str, Any] = {
        "fit": [{"name": "VP title", "when": {"field": "title", "regex": "(?i)vp"}, "points": 20}],
        "engagement": [{"name": "Pricing", "event": "page_view", "points": 10}],
    }
    if weight is not None:
        scoring["predicted"] = {"model": 3, "weight": weight}
        if name:
            scoring["predicted"]["name"] = name
    return parse_contract(
        yaml.safe_dump({"schema_version": 1, "name": "T", "scoring": scoring, "mql": mql})
    )


def test_the_predicted_points_are_weight_times_probability_and_add_to_the_total() -> None:
    card = score(contract(weight=40), LEAD, {}, NOW, probability=0.615)

    predicted = [h for h in card.hits if h.section == "predicted"]
    assert [(h.label, h.points) for h in predicted] == [("Predicted by model v3 (62%)", 24.6)]
    assert card.fit == 20
    assert card.predicted == 24.6
    assert card.probability == 0.615
    assert card.total == 44.6
    assert card.total == pytest.approx(sum(h.points for h in card.hits))
    # The grade comes from fit alone: a model never changes the grade.
    assert card.grade == score(contract(weight=None), LEAD, {}, NOW).grade


def test_the_component_is_named_as_the_contract_says() -> None:
    card = score(contract(name="Won-likelihood"), LEAD, {}, NOW, probability=0.5)

    assert [h.label for h in card.hits if h.section == "predicted"] == ["Won-likelihood (50%)"]


def test_the_engagement_only_card_keeps_the_predicted_component() -> None:
    card = score_engagement(contract(weight=100), 20.0, {}, NOW, probability=0.25)

    assert [(h.section, h.points) for h in card.hits] == [("predicted", 25.0)]
    assert card.total == 45.0


def test_without_a_probability_the_component_adds_nothing() -> None:
    card = score(contract(weight=40), LEAD, {}, NOW)

    assert card.predicted == 0.0
    assert card.probability is None
    assert all(h.section != "predicted" for h in card.hits)
    assert card.total == 20


def test_a_contract_without_the_component_ignores_a_probability() -> None:
    card = score(contract(weight=None), LEAD, {}, NOW, probability=0.9)

    assert card.probability is None
    assert card.total == 20
    assert all(h.section != "predicted" for h in card.hits)


def test_min_probability_gates_the_mql_on_score() -> None:
    rules = contract(weight=100, min_probability=0.4)
    low = score(rules, LEAD, {}, NOW, probability=0.35)  # 20 + 35 = 55 points, over 50
    high = score(rules, LEAD, {}, NOW, probability=0.45)

    refused = mql_decision(rules, stage="lead", card=low, lead=LEAD, now=NOW)
    accepted = mql_decision(rules, stage="lead", card=high, lead=LEAD, now=NOW)

    assert low.total >= rules.mql.threshold
    assert not refused.qualifies
    assert refused.reason == "predicted probability 35% is below 40%"
    assert accepted.qualifies


def test_min_probability_without_a_probability_never_qualifies_on_score() -> None:
    rules = contract(weight=100, min_probability=0.4)
    card = score(rules, {**LEAD, "title": "VP"}, {}, NOW)

    decision = mql_decision(rules, stage="lead", card=card, lead=LEAD, now=NOW)

    assert not decision.qualifies
    assert "no predicted probability yet" in decision.reason


def test_a_hand_raise_still_qualifies_below_min_probability() -> None:
    rules = contract(weight=100, min_probability=0.9)
    card = score(rules, LEAD, {}, NOW, probability=0.05)

    decision = mql_decision(
        rules,
        stage="lead",
        card=card,
        lead=LEAD,
        now=NOW,
        event_type="demo_request",
        event_at=NOW - timedelta(hours=1),
    )

    assert decision.qualifies
    assert decision.reason == "hand-raise: demo_request"


def test_the_gaps_list_the_probability_and_agree_with_the_decision() -> None:
    rules = contract(weight=10, min_probability=0.5)
    card = score(rules, LEAD, {}, NOW, probability=0.3)  # 20 + 3 = 23 points

    gaps = mql_gaps(rules, card=card, lead=LEAD, now=NOW)

    assert [(g.kind, g.item) for g in gaps] == [
        ("probability", "min_probability"),
        ("score", "threshold"),
    ]
    assert gaps[0].label == "predicted probability 30% is below 50%"
    assert gaps[1].points == 27.0
    met = score(rules, LEAD, {"0": [30.0, NOW.timestamp(), 3.0]}, NOW, probability=0.5)
    assert mql_gaps(rules, card=met, lead=LEAD, now=NOW) == []
    assert mql_decision(rules, stage="lead", card=met, lead=LEAD, now=NOW).qualifies


def test_min_probability_needs_the_predicted_component() -> None:
    with pytest.raises(ContractError) as caught:
        contract(weight=None, min_probability=0.5)

    assert any("min_probability" in p for p in caught.value.problems)
