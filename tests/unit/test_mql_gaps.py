"""Why is this lead not an MQL yet? The unmet conditions of the MQL rule, named one
by one, and the invariant that makes the answer trustworthy: the list is empty exactly
when the handoff point says yes on score."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import yaml
from hypothesis import example, given
from hypothesis import strategies as st

from baton.domain.contract import HandoffContract, parse_contract
from baton.domain.scoring import MqlGap, ScoreCard, mql_decision, mql_gaps

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
PREP = [
    {"id": "use_case_noted", "label": "Use case noted", "required": True},
    {"id": "company_size_confirmed", "label": "Company size confirmed", "required": True},
    {"id": "budget_owner_known", "label": "Budget owner known"},
]
READY = {"email": "dana@northwind.example.com", "company": "Northwind", "country": "US"}


def contract(
    *, threshold: int = 60, min_grade: str = "C", cooldown: float = 30, prep: Any = None
) -> HandoffContract:
    data = {
        "schema_version": 1,
        "name": "Test",
        "mql": {
            "threshold": threshold,
            "min_grade": min_grade,
            "required_fields": ["email", "company", "country"],
            "recycle_cooldown_days": cooldown,
        },
        "prep_checklist": PREP if prep is None else prep,
    }
    return parse_contract(yaml.safe_dump(data))


def card(total: float, grade: str = "B") -> ScoreCard:
    return ScoreCard(fit=30, engagement=total - 30, total=total, grade=grade, hits=())  # type: ignore[arg-type]


def test_a_lead_at_the_threshold_without_a_required_prep_item_is_told_which_one() -> None:
    gaps = mql_gaps(
        contract(), card=card(60), lead=READY, now=NOW, prep_done={"company_size_confirmed"}
    )

    assert gaps == [MqlGap("prep", "use_case_noted", "Use case noted")]


def test_every_unmet_condition_is_listed_not_only_the_first() -> None:
    lead = {"email": "dana@gmail.com", "company": " ", "country": None}

    gaps = mql_gaps(contract(), card=card(47.5, grade="D"), lead=lead, now=NOW)

    assert [(g.kind, g.item) for g in gaps] == [
        ("field", "company"),
        ("field", "country"),
        ("prep", "use_case_noted"),
        ("prep", "company_size_confirmed"),
        ("grade", "min_grade"),
        ("score", "threshold"),
    ]
    assert gaps[-1].points == 12.5
    assert gaps[-1].label == "12.5 points short of the threshold 60"
    assert gaps[-2].label == "grade D is below C"


def test_points_missing_are_never_zero_when_the_score_is_a_hair_short() -> None:
    (gap,) = mql_gaps(contract(prep=[]), card=card(59.999), lead=READY, now=NOW)

    assert gap.kind == "score"
    assert gap.points == 0.01


def test_a_recycled_lead_is_told_when_its_cool_down_ends() -> None:
    recycled = NOW - timedelta(days=20)

    (gap,) = mql_gaps(contract(prep=[]), card=card(80), lead=READY, now=NOW, recycled_at=recycled)

    assert gap.kind == "cooldown"
    assert gap.until == recycled + timedelta(days=30)
    assert "10.0 days" in gap.label
    assert (
        mql_gaps(
            contract(prep=[]), card=card(80), lead=READY, now=NOW, recycled_at=NOW - timedelta(31)
        )
        == []
    )


PREP_IDS = [item["id"] for item in PREP]
FIELDS = st.fixed_dictionaries(
    {
        "email": st.sampled_from([None, "", "a@b.example.com"]),
        "company": st.sampled_from([None, "  ", "Northwind"]),
        "country": st.sampled_from([None, "US"]),
    }
)


@given(
    threshold=st.integers(0, 120),
    min_grade=st.sampled_from(["A", "B", "C", "D"]),
    cooldown=st.sampled_from([0, 0.5, 30]),
    total=st.one_of(st.floats(-200, 200, allow_nan=False), st.integers(0, 120).map(float)),
    grade=st.sampled_from(["A", "B", "C", "D"]),
    lead=FIELDS,
    done=st.sets(st.sampled_from([*PREP_IDS, "unknown_item"])),
    stage=st.sampled_from(["lead", "nurture"]),
    recycled_days_ago=st.one_of(st.floats(0, 60, allow_nan=False), st.sampled_from([0.5, 30])),
)
@example(  # a total a hair under 0: "1 point short" of 1 holds in cents
    threshold=1,
    min_grade="A",
    cooldown=0,
    total=-1.0098922666043319e-14,
    grade="A",
    lead={"email": None, "company": None, "country": None},
    done=set(),
    stage="lead",
    recycled_days_ago=0.0,
)
def test_no_gap_exactly_when_the_mql_rule_is_met(
    threshold: int,
    min_grade: str,
    cooldown: float,
    total: float,
    grade: str,
    lead: dict[str, Any],
    done: set[str],
    stage: str,
    recycled_days_ago: float,
) -> None:
    c = contract(threshold=threshold, min_grade=min_grade, cooldown=cooldown)
    recycled_at = NOW - timedelta(days=recycled_days_ago) if stage == "nurture" else None
    scored = card(total, grade)

    gaps = mql_gaps(c, card=scored, lead=lead, now=NOW, prep_done=done, recycled_at=recycled_at)
    decision = mql_decision(
        c, stage=stage, card=scored, lead=lead, now=NOW, recycled_at=recycled_at, prep_done=done
    )

    assert (gaps == []) == decision.qualifies, (gaps, decision.reason)
    for gap in gaps:
        assert gap.label
        if gap.kind == "score":
            assert gap.points is not None and gap.points > 0
            # Totals are kept in cents (the score card rounds them), so what the gap
            # promises is judged on the total in cents: in floats -127.98 + 128.98 is
            # 0.99999999999998, and -1e-14 + 1.0 is under 1.
            assert round(total + gap.points, 2) >= threshold
        if gap.kind == "prep":
            assert gap.item not in done
