"""Scoring rules on plain values: every rule kind, decay over injected time, caps,
negative points, grades, the MQL trigger, and the properties sales relies on."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import yaml
from hypothesis import given
from hypothesis import strategies as st

from baton.domain.contract import HandoffContract, parse_contract
from baton.domain.scoring import (
    Event,
    add_event,
    engagement_state,
    mql_decision,
    score,
)

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def contract(**sections: Any) -> HandoffContract:
    data = {"schema_version": 1, "name": "Test", "mql": {"threshold": 50}, **sections}
    return parse_contract(yaml.safe_dump(data))


def fit_points(c: HandoffContract, lead: dict[str, Any]) -> float:
    return score(c, lead, {}, NOW).fit


def one_rule(when: dict[str, Any], points: int = 10) -> HandoffContract:
    return contract(scoring={"fit": [{"when": when, "points": points}]})


class TestFitRules:
    def test_equals_ignores_case_and_spaces(self) -> None:
        c = one_rule({"field": "country", "equals": "us"})
        assert fit_points(c, {"country": "US "}) == 10
        assert fit_points(c, {"country": "CA"}) == 0

    def test_in_list(self) -> None:
        c = one_rule({"field": "country", "in": ["DE", "FR"]})
        assert fit_points(c, {"country": "FR"}) == 10
        assert fit_points(c, {"country": "ES"}) == 0
        assert fit_points(c, {}) == 0

    def test_regex(self) -> None:
        c = one_rule({"field": "title", "regex": "(?i)\\bvp\\b"})
        assert fit_points(c, {"title": "VP Sales"}) == 10
        assert fit_points(c, {"title": "MVP builder"}) == 0

    def test_numeric_range_on_an_attribute_reads_numbers_written_as_text(self) -> None:
        c = one_rule({"field": "attributes.employees", "min": 50, "max": 5000})
        assert fit_points(c, {"attributes": {"employees": 420}}) == 10
        assert fit_points(c, {"attributes": {"employees": "1,200"}}) == 10
        assert fit_points(c, {"attributes": {"employees": 12}}) == 0
        assert fit_points(c, {"attributes": {"employees": "many"}}) == 0
        assert fit_points(c, {"attributes": {}}) == 0

    def test_open_ended_range(self) -> None:
        c = one_rule({"field": "attributes.revenue", "min": 1_000_000})
        assert fit_points(c, {"attributes": {"revenue": 5_000_000}}) == 10
        assert fit_points(c, {"attributes": {"revenue": 10}}) == 0

    def test_exists_and_missing_treat_blank_as_missing(self) -> None:
        present = one_rule({"field": "phone", "exists": True})
        missing = one_rule({"field": "phone", "exists": False}, points=-5)
        assert fit_points(present, {"phone": "+14155550134"}) == 10
        assert fit_points(present, {"phone": "  "}) == 0
        assert fit_points(missing, {"phone": None}) == -5

    def test_email_domain_classes(self) -> None:
        c = contract(
            scoring={
                "competitors": ["rival.example.com"],
                "disposable_domains": ["junk.example.net"],
                "fit": [
                    {"when": {"email_domain": "free_mail"}, "points": -10},
                    {"when": {"email_domain": "disposable"}, "points": -50},
                    {"when": {"email_domain": "role"}, "points": -5},
                    {"when": {"email_domain": "competitor"}, "points": -100},
                    {"when": {"email_domain": "corporate"}, "points": 7},
                ],
            }
        )
        assert fit_points(c, {"email": "dana@gmail.com"}) == -10
        assert fit_points(c, {"email": "x@mailinator.com"}) == -50
        assert fit_points(c, {"email": "x@junk.example.net"}) == -50
        assert fit_points(c, {"email": "info@northwind.com"}) == -5 + 7
        assert fit_points(c, {"email": "ann@eu.rival.example.com"}) == -100 + 7
        assert fit_points(c, {"email": "ann@northwind.com"}) == 7
        assert fit_points(c, {"phone": "+14155550134"}) == 0

    def test_negative_points_and_grades(self) -> None:
        c = contract(
            scoring={
                "grades": {"A": 30, "B": 20, "C": 10},
                "fit": [
                    {"when": {"field": "title", "regex": "(?i)director"}, "points": 25},
                    {"when": {"field": "title", "regex": "(?i)student"}, "points": -30},
                ],
            }
        )
        assert score(c, {"title": "Director"}, {}, NOW).grade == "B"
        assert score(c, {"title": "Student director"}, {}, NOW).grade == "D"
        assert score(c, {"title": "Student director"}, {}, NOW).fit == -5


def pricing(**rule: Any) -> HandoffContract:
    base = {"event": "page_view", "where": {"url": "/pricing"}, "points": 10}
    return contract(scoring={"engagement": [{**base, **rule}]})


def view(url: str, days_ago: float = 0) -> Event:
    return Event("page_view", NOW - timedelta(days=days_ago), {"url": url})


class TestEngagementRules:
    def test_event_type_and_property_filters(self) -> None:
        c = contract(
            scoring={
                "engagement": [
                    {"event": "page_view", "where": {"url": "/pricing"}, "points": 10},
                    {"event": "page_view", "where": {"url": {"contains": "/product"}}, "points": 3},
                    {"event": "email_click", "where": {"campaign": {"regex": "^q4-"}}, "points": 2},
                ]
            }
        )
        events = [
            view("/pricing"),
            view("/product/dashboards"),
            view("/blog"),
            Event("email_click", NOW, {"campaign": "q4-launch"}),
            Event("email_click", NOW, {"campaign": "q3-launch"}),
            Event("email_open", NOW, {"url": "/pricing"}),
        ]
        card = score(c, {}, engagement_state(c, events), NOW)
        assert card.engagement == 15
        assert [(h.label, h.events) for h in card.hits] == [
            ("page_view where url = /pricing", 1),
            ("page_view where url contains /product", 1),
            ("email_click where campaign matches ^q4-", 1),
        ]

    def test_cap_limits_a_rule_and_says_so(self) -> None:
        c = pricing(cap=25)
        card = score(c, {}, engagement_state(c, [view("/pricing")] * 4), NOW)
        assert card.engagement == 25
        assert card.hits[0].capped and card.hits[0].events == 4

    def test_half_life_halves_points_over_injected_time(self) -> None:
        c = pricing(half_life_days=30)
        state = engagement_state(c, [view("/pricing", days_ago=0)])
        assert score(c, {}, state, NOW).engagement == 10
        assert score(c, {}, state, NOW + timedelta(days=30)).engagement == 5
        assert score(c, {}, state, NOW + timedelta(days=60)).engagement == 2.5

    def test_old_events_count_less_than_new_ones(self) -> None:
        c = pricing(half_life_days=10)
        old = score(c, {}, engagement_state(c, [view("/pricing", days_ago=20)]), NOW)
        assert old.engagement == 2.5

    def test_negative_engagement(self) -> None:
        c = contract(scoring={"engagement": [{"event": "unsubscribe", "points": -20, "cap": 30}]})
        card = score(c, {}, engagement_state(c, [Event("unsubscribe", NOW)] * 2), NOW)
        assert card.engagement == -30
        assert card.hits[0].capped


class TestMqlTrigger:
    C = contract(
        scoring={
            "fit": [{"when": {"field": "country", "equals": "US"}, "points": 20}],
            "engagement": [{"event": "page_view", "points": 10}],
        },
        mql={
            "threshold": 50,
            "min_grade": "C",
            "required_fields": ["company"],
            "hand_raise": ["demo_request"],
            "recycle_cooldown_days": 30,
        },
    )
    LEAD: ClassVar[dict[str, Any]] = {"country": "US", "company": "Northwind"}

    def decide(self, lead: dict[str, Any], views: int, **kwargs: Any) -> tuple[bool, str]:
        state = engagement_state(self.C, [view("/")] * views)
        card = score(self.C, lead, state, NOW)
        decision = mql_decision(
            self.C, card=card, lead=lead, now=NOW, **{"stage": "lead", **kwargs}
        )
        return decision.qualifies, decision.reason

    def test_score_reaching_the_threshold_qualifies_with_the_reason(self) -> None:
        assert self.decide(self.LEAD, 3) == (True, "score 50 ≥ 50")
        assert self.decide(self.LEAD, 2) == (False, "score 40 < 50")

    def test_required_fields_and_grade_gate_the_score(self) -> None:
        assert self.decide({"country": "US"}, 9) == (False, "missing required field(s): company")
        assert self.decide({"country": "CA", "company": "X"}, 9) == (False, "grade D is below C")

    def test_hand_raise_qualifies_whatever_the_score(self) -> None:
        assert self.decide({}, 0, event_type="demo_request") == (True, "hand-raise: demo_request")

    def test_recycled_lead_waits_for_the_cool_down_unless_it_raises_its_hand(self) -> None:
        recycled = NOW - timedelta(days=10)
        qualifies, reason = self.decide(self.LEAD, 9, stage="nurture", recycled_at=recycled)
        assert not qualifies and reason == "recycle cool-down: 20.0 days left"
        assert self.decide(self.LEAD, 9, stage="nurture", recycled_at=NOW - timedelta(days=31))[0]
        assert self.decide(
            self.LEAD, 0, stage="nurture", recycled_at=recycled, event_type="demo_request"
        )[0]

    def test_leads_past_the_handoff_point_are_left_alone(self) -> None:
        assert self.decide(self.LEAD, 9, stage="sal") == (
            False,
            "stage sal is past the handoff point",
        )


# Properties ---------------------------------------------------------------------------

RULES = st.lists(
    st.fixed_dictionaries(
        {
            "event": st.sampled_from(["page_view", "email_click", "webinar_attended"]),
            "points": st.integers(1, 40),
            "cap": st.none() | st.integers(0, 100),
            "half_life_days": st.none() | st.floats(0.5, 120),
        }
    ),
    min_size=1,
    max_size=4,
)
EVENTS = st.lists(
    st.builds(
        Event,
        type=st.sampled_from(["page_view", "email_click", "webinar_attended", "email_open"]),
        occurred_at=st.integers(0, 200 * 86400).map(lambda s: NOW - timedelta(seconds=s)),
    ),
    max_size=25,
)


@given(RULES, EVENTS, EVENTS)
def test_score_never_drops_when_positive_activity_is_added(
    rules: list[dict[str, Any]], history: list[Event], more: list[Event]
) -> None:
    c = contract(scoring={"engagement": rules})
    before = score(c, {}, engagement_state(c, history), NOW).total
    after = score(c, {}, engagement_state(c, history + more), NOW).total
    assert after >= before - 0.011  # rounding to cents, per rule


@given(RULES, EVENTS)
def test_the_explanation_adds_up_to_the_score(
    rules: list[dict[str, Any]], events: list[Event]
) -> None:
    c = contract(
        scoring={
            "engagement": rules,
            "fit": [
                {"when": {"field": "country", "equals": "US"}, "points": 12},
                {"when": {"email_domain": "free_mail"}, "points": -7},
            ],
        }
    )
    card = score(c, {"country": "US", "email": "a@gmail.com"}, engagement_state(c, events), NOW)
    assert math.isclose(sum(h.points for h in card.hits), card.total, abs_tol=1e-9)
    assert math.isclose(card.fit + card.engagement, card.total, abs_tol=1e-9)


@given(RULES, EVENTS, st.randoms())
def test_event_order_does_not_change_the_score(
    rules: list[dict[str, Any]], events: list[Event], rnd: Any
) -> None:
    c = contract(scoring={"engagement": rules})
    shuffled = list(events)
    rnd.shuffle(shuffled)
    first = score(c, {}, engagement_state(c, events), NOW)
    second = score(c, {}, engagement_state(c, shuffled), NOW)
    assert math.isclose(first.total, second.total, abs_tol=0.011 * len(rules))


def test_adding_an_event_leaves_the_old_state_untouched() -> None:
    c = pricing(half_life_days=5)
    state = engagement_state(c, [view("/pricing")])
    frozen = {k: list(v) for k, v in state.items()}
    add_event(c, state, view("/pricing"))
    assert state == frozen


def test_an_old_or_pre_recycle_hand_raise_hands_nobody_off() -> None:
    c = contract(
        mql={"threshold": 500, "hand_raise": ["demo_request"], "hand_raise_max_age_days": 14}
    )
    card = score(c, {}, {}, NOW)

    def decide(days_ago: float, **kwargs: Any) -> bool:
        return mql_decision(
            c,
            card=card,
            lead={},
            now=NOW,
            event_type="demo_request",
            event_at=NOW - timedelta(days=days_ago),
            **{"stage": "lead", **kwargs},
        ).qualifies

    assert decide(1)
    assert not decide(30), "a backfilled demo request from last month is history, not a hand-raise"
    recycled = NOW - timedelta(days=2)
    assert not decide(3, stage="nurture", recycled_at=recycled)
    assert decide(1, stage="nurture", recycled_at=recycled)
