"""Routing as a pure function: who may take a lead (and why the others may not), which
rule and pool decide, and how the strategies share leads out over time.

Nothing here touches a database: reps, loads and rotations are plain values, and the
expected answers are worked out by hand in each test.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from baton.domain.business_hours import WEEKDAYS, Absence, Schedule, WorkingHours
from baton.domain.contract import HandoffContract, RoutingRule
from baton.domain.reps import RepCreate
from baton.domain.routing import (
    Rep,
    Rotation,
    RoutingDecision,
    first_rule,
    members,
    pick,
    pool_key,
    route_lead,
    rule_matches,
    unavailable_reason,
)

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
"""Monday 09:00 UTC (04:00 in New York, 10:00 in Berlin, 18:00 in Tokyo)."""

ALWAYS = Schedule("UTC", WorkingHours.always())


def rep(rep_id: int, **fields: Any) -> Rep:
    """A rep who works around the clock unless told otherwise."""
    fields.setdefault("email", f"rep{rep_id}@lumen.test")
    fields.setdefault("name", f"Rep {rep_id}")
    fields.setdefault("schedule", ALWAYS)
    return Rep(id=rep_id, **fields)


def contract(*rules: dict[str, Any], account_matching: bool = True) -> HandoffContract:
    return HandoffContract.model_validate(
        {
            "schema_version": 1,
            "name": "Routing test",
            "mql": {"threshold": 50},
            "routing": {"account_matching": account_matching, "rules": list(rules)},
        }
    )


def team_rule(name: str, team: str, strategy: str = "round_robin", **extra: Any) -> dict[str, Any]:
    return {"name": name, "pool": {"team": team}, "strategy": strategy, **extra}


def route(
    the_contract: HandoffContract,
    reps: Sequence[Rep],
    lead: dict[str, Any] | None = None,
    *,
    lead_id: int = 1,
    total: float | None = 70.0,
    grade: str | None = "B",
    loads: dict[int, int] | None = None,
    rotations: dict[str, Rotation] | None = None,
    now: datetime = NOW,
    account_owner_id: int | None = None,
    exclude: Sequence[int] = (),
) -> RoutingDecision:
    return route_lead(
        the_contract,
        lead if lead is not None else {"country": "US"},
        lead_id=lead_id,
        total=total,
        grade=grade,
        reps=reps,
        loads=loads or {},
        rotations=rotations if rotations is not None else {},
        now=now,
        account_owner_id=account_owner_id,
        exclude=exclude,
    )


def skipped(decision: RoutingDecision) -> dict[int, str]:
    return {s.rep_id: s.reason for s in decision.skipped}


# --- eligibility -------------------------------------------------------------------------


def test_an_available_rep_in_hours_under_capacity_can_take_a_lead() -> None:
    assert unavailable_reason(rep(1), {"country": "US"}, NOW, open_handoffs=0) is None


def test_away_and_deactivated_reps_cannot_take_leads() -> None:
    lead = {"country": "US"}
    assert unavailable_reason(rep(1, status="away"), lead, NOW, 0) == "status away"
    assert unavailable_reason(rep(1, active=False), lead, NOW, 0) == "deactivated"


def test_an_absence_makes_a_rep_out_of_office_for_exactly_its_period() -> None:
    holiday = Absence(NOW - timedelta(days=2), NOW + timedelta(hours=1))
    away = rep(1, schedule=Schedule("UTC", WorkingHours.always(), (holiday,)))
    lead = {"country": "US"}
    assert unavailable_reason(away, lead, NOW, 0) == "out of office"
    assert unavailable_reason(away, lead, NOW + timedelta(minutes=59, seconds=59), 0) == (
        "out of office"
    )
    # The end is exclusive: back at the first moment after the absence.
    assert unavailable_reason(away, lead, NOW + timedelta(hours=1), 0) is None
    assert unavailable_reason(away, lead, NOW - timedelta(days=2, seconds=1), 0) is None


def test_working_hours_are_read_in_the_reps_own_time_zone() -> None:
    # 09:00-17:00 New York; on Monday 2 March 2026 New York is UTC-5 (EST).
    new_york = rep(1, schedule=Schedule("America/New_York", WorkingHours.weekdays()))
    lead = {"country": "US"}
    assert unavailable_reason(new_york, lead, NOW, 0) == (
        "outside working hours (America/New_York)"
    )  # 04:00 in New York
    assert unavailable_reason(new_york, lead, datetime(2026, 3, 2, 14, 0, tzinfo=UTC), 0) is None
    last_second = datetime(2026, 3, 2, 21, 59, 59, tzinfo=UTC)  # 16:59:59 in New York
    assert unavailable_reason(new_york, lead, last_second, 0) is None
    assert unavailable_reason(new_york, lead, datetime(2026, 3, 2, 22, 0, tzinfo=UTC), 0) == (
        "outside working hours (America/New_York)"
    )
    # The same UTC moment is inside a Berlin rep's hours (10:00 there).
    berlin = rep(2, schedule=Schedule("Europe/Berlin", WorkingHours.weekdays()))
    assert unavailable_reason(berlin, lead, NOW, 0) is None
    # Saturday in Berlin is not worked even at 10:00.
    saturday = datetime(2026, 3, 7, 9, 0, tzinfo=UTC)
    assert unavailable_reason(berlin, lead, saturday, 0) == (
        "outside working hours (Europe/Berlin)"
    )


def test_a_rep_at_capacity_takes_no_more_leads() -> None:
    lead = {"country": "US"}
    assert unavailable_reason(rep(1, capacity=3), lead, NOW, 2) is None
    assert unavailable_reason(rep(1, capacity=3), lead, NOW, 3) == (
        "at capacity (3/3 open handoffs)"
    )
    assert unavailable_reason(rep(1, capacity=0), lead, NOW, 0) == (
        "at capacity (0/0 open handoffs)"
    )


def test_territory_by_country_region_or_postal_prefix() -> None:
    germany = rep(1, countries=frozenset({"DE"}))
    assert unavailable_reason(germany, {"country": "DE"}, NOW, 0) is None
    assert unavailable_reason(germany, {"country": "de"}, NOW, 0) is None
    assert unavailable_reason(germany, {"country": "FR"}, NOW, 0) == (
        "outside territory (lead: FR)"
    )
    california = rep(2, regions=frozenset({"CA"}))
    assert unavailable_reason(california, {"country": "US", "region": "CA"}, NOW, 0) is None
    assert unavailable_reason(california, {"country": "US", "region": "NY"}, NOW, 0) == (
        "outside territory (lead: US, NY)"
    )
    bay_area = rep(3, postal_prefixes=("941", "940"))
    assert unavailable_reason(bay_area, {"postal_code": "94107"}, NOW, 0) is None
    assert unavailable_reason(bay_area, {"postal_code": "940 25"}, NOW, 0) is None
    assert unavailable_reason(
        bay_area, {"country": "US", "region": "NY", "postal_code": "10001"}, NOW, 0
    ) == ("outside territory (lead: US, NY, 10001)")
    # A lead without any location is outside every territory.
    assert unavailable_reason(germany, {}, NOW, 0) == "outside territory (lead: unknown)"
    # Any one of the three is enough.
    mixed = rep(4, countries=frozenset({"DE"}), postal_prefixes=("SW1",))
    assert unavailable_reason(mixed, {"country": "GB", "postal_code": "sw1a 1aa"}, NOW, 0) is None
    # A rep without a territory covers everyone.
    assert unavailable_reason(rep(5), {"country": "JP"}, NOW, 0) is None


def rep_from_settings(**fields: Any) -> Rep:
    """A rep whose territory went through the same validation as the API's."""
    data = RepCreate(email="terry@lumen.example", name="Terry", **fields)
    return rep(
        1,
        countries=frozenset(data.countries or ()),
        regions=frozenset(data.regions or ()),
        postal_prefixes=tuple(data.postal_prefixes or ()),
    )


def test_a_postal_prefix_with_a_space_covers_postcodes_written_with_one() -> None:
    westminster = rep_from_settings(postal_prefixes=["sw1a 1"])
    assert unavailable_reason(westminster, {"postal_code": "SW1A 1AA"}, NOW, 0) is None


def test_region_codes_match_whatever_their_case() -> None:
    california = rep_from_settings(regions=["ca"])
    assert unavailable_reason(california, {"country": "US", "region": "CA"}, NOW, 0) is None
    upper = rep_from_settings(regions=["CA"])
    assert unavailable_reason(upper, {"country": "US", "region": "ca"}, NOW, 0) is None


def test_segment_from_the_leads_segment_or_product_attribute() -> None:
    enterprise = rep(1, segments=frozenset({"enterprise"}))
    assert unavailable_reason(enterprise, {"attributes": {"segment": "Enterprise"}}, NOW, 0) is None
    assert unavailable_reason(enterprise, {"attributes": {"product": "enterprise"}}, NOW, 0) is None
    assert unavailable_reason(enterprise, {"attributes": {"segment": "SMB"}}, NOW, 0) == (
        "does not cover segment smb"
    )
    assert unavailable_reason(enterprise, {"attributes": {}}, NOW, 0) == (
        "does not cover segment (none given)"
    )


def test_the_first_reason_a_manager_would_ask_about_is_given() -> None:
    """Away, then out of office, then hours, then capacity, then patch."""
    holiday = Absence(NOW - timedelta(hours=1), NOW + timedelta(hours=1))
    everything = rep(
        1,
        status="away",
        capacity=1,
        countries=frozenset({"DE"}),
        schedule=Schedule("America/New_York", WorkingHours.weekdays(), (holiday,)),
    )
    lead = {"country": "US"}
    assert unavailable_reason(everything, lead, NOW, 1) == "status away"
    back = replace(everything, status="available")
    assert unavailable_reason(back, lead, NOW, 1) == "out of office"
    after = NOW + timedelta(hours=2)  # 06:00 in New York
    assert unavailable_reason(back, lead, after, 1) == "outside working hours (America/New_York)"
    in_hours = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
    assert unavailable_reason(back, lead, in_hours, 1) == "at capacity (1/1 open handoffs)"
    assert unavailable_reason(back, lead, in_hours, 0) == "outside territory (lead: US)"


# --- rules --------------------------------------------------------------------------------


def test_rules_match_on_field_conditions_score_range_and_grades() -> None:
    the_contract = contract(
        team_rule(
            "Big EMEA",
            "emea",
            when=[
                {"field": "country", "in": ["GB", "DE"]},
                {"field": "attributes.employees", "min": 1000},
            ],
        ),
        team_rule("Hot", "na", min_score=80, max_score=200),
        team_rule("Good fit", "na", grades=["A", "B"]),
    )
    big, hot, good = the_contract.routing.rules

    def matches(
        rule: RoutingRule, lead: dict[str, Any], total: float | None, grade: str | None
    ) -> bool:
        return rule_matches(rule, the_contract, lead, total=total, grade=grade)

    assert matches(big, {"country": "DE", "attributes": {"employees": 1000}}, None, None)
    assert not matches(big, {"country": "DE", "attributes": {"employees": 999}}, None, None)
    assert not matches(big, {"country": "US", "attributes": {"employees": 5000}}, None, None)
    assert not matches(big, {"country": "DE"}, None, None)
    assert matches(hot, {}, 80, "D")
    assert matches(hot, {}, 200, "D")
    assert not matches(hot, {}, 79.9, "A")
    assert not matches(hot, {}, 200.5, "A")
    assert not matches(hot, {}, None, "A"), "no score: a score range cannot hold"
    assert matches(good, {}, None, "B")
    assert not matches(good, {}, 100, "C")
    assert not matches(good, {}, 100, None)


def test_the_first_matching_rule_decides_even_when_its_pool_is_empty() -> None:
    the_contract = contract(
        team_rule("EMEA", "emea", when=[{"field": "country", "in": ["GB", "DE"]}]),
        team_rule("Everyone else", "na"),
    )
    emea, na = rep(1, team="emea"), rep(2, team="na")
    german = route(the_contract, [emea, na], {"country": "DE"})
    assert (german.rep_id, german.rule, german.pool_key) == (1, "EMEA", "team:emea")
    american = route(the_contract, [emea, na], {"country": "US"})
    assert (american.rep_id, american.rule) == (2, "Everyone else")
    # The EMEA rep is away: the German lead waits for EMEA, it does not fall through.
    waiting = route(the_contract, [rep(1, team="emea", status="away"), na], {"country": "DE"})
    assert waiting.rep_id is None
    assert waiting.rule == "EMEA"
    assert waiting.reason == "nobody in team emea is available"
    assert skipped(waiting) == {1: "status away"}


def test_no_matching_rule_or_no_rules_leaves_the_lead_unassigned() -> None:
    only_emea = contract(team_rule("EMEA", "emea", when=[{"field": "country", "equals": "DE"}]))
    decision = route(only_emea, [rep(1, team="emea")], {"country": "US"})
    assert decision == RoutingDecision(None, "no routing rule matches this lead")
    assert route(contract(), [rep(1)]).reason == "no routing rules"
    empty_team = route(contract(team_rule("All", "ghosts")), [rep(1, team="na")])
    assert (empty_team.rep_id, empty_team.reason) == (None, "team ghosts has no reps")


def test_pools_by_team_tag_or_named_reps() -> None:
    reps = [
        rep(1, team="na", tags=frozenset({"french"})),
        rep(2, team="emea", tags=frozenset({"french", "german"})),
        rep(3, team="emea", email="cara@lumen.test"),
        rep(4, team="emea", active=False, tags=frozenset({"french"})),
    ]
    team = contract(team_rule("r", "emea")).routing.rules[0].pool
    tag = contract({"name": "r", "pool": {"tag": "french"}}).routing.rules[0].pool
    named = (
        contract(
            {"name": "r", "pool": {"reps": ["CARA@lumen.test", "rep1@lumen.test", "nobody@x.test"]}}
        )
        .routing.rules[0]
        .pool
    )
    # Inactive reps are no longer members of any pool.
    assert [r.id for r in members(team, reps)] == [2, 3]
    assert [r.id for r in members(tag, reps)] == [1, 2]
    assert [r.id for r in members(named, reps)] == [1, 3]
    assert pool_key(team) == "team:emea"
    assert pool_key(tag) == "tag:french"
    assert pool_key(named) == "reps:cara@lumen.test,nobody@x.test,rep1@lumen.test"

    decision = route(contract({"name": "French", "pool": {"tag": "french"}}), reps[2:])
    assert decision.rep_id is None and decision.reason == "reps tagged french has no reps"
    decision = route(
        contract({"name": "Named", "pool": {"reps": ["cara@lumen.test"]}}),
        reps,
    )
    assert (decision.rep_id, decision.pool_key) == (3, "reps:cara@lumen.test")


def test_a_pool_tag_matches_rep_tags_whatever_their_case() -> None:
    saved = RepCreate(email="fleur@lumen.example", name="Fleur", tags=["French"])
    fleur = rep(1, tags=frozenset(saved.tags or ()))
    pool = contract({"name": "French", "pool": {"tag": "French"}}).routing.rules[0].pool
    assert [r.id for r in members(pool, [fleur])] == [1]


# --- account owner, skips, exclusion -----------------------------------------------------


def test_the_account_owner_gets_the_lead_when_eligible() -> None:
    the_contract = contract(team_rule("All", "na"))
    owner = rep(7, team="emea")  # not even in the matched pool
    rotations: dict[str, Rotation] = {}
    decision = route(
        the_contract, [rep(1, team="na"), owner], account_owner_id=7, rotations=rotations
    )
    assert decision.rep_id == 7
    assert decision.account_owner is True
    assert decision.reason == "account owner rep7@lumen.test"
    assert decision.skipped == ()
    assert rotations == {}, "an owner's lead does not advance any rotation"


def test_an_unavailable_account_owner_is_skipped_with_the_reason() -> None:
    the_contract = contract(team_rule("All", "na"))
    reps = [rep(1, team="na"), rep(7, team="emea", status="away")]
    decision = route(the_contract, reps, account_owner_id=7)
    assert decision.rep_id == 1
    assert decision.account_owner is False
    assert skipped(decision) == {7: "account owner, status away"}
    # At capacity is a reason as good as away.
    full = route(
        the_contract, [rep(1, team="na"), rep(7, capacity=2)], account_owner_id=7, loads={7: 2}
    )
    assert skipped(full) == {7: "account owner, at capacity (2/2 open handoffs)"}


def test_account_matching_off_ignores_the_owner() -> None:
    the_contract = contract(team_rule("All", "na"), account_matching=False)
    decision = route(the_contract, [rep(1, team="na"), rep(7)], account_owner_id=7)
    assert decision.rep_id == 1 and not decision.account_owner and decision.skipped == ()


def test_nobody_eligible_records_every_rep_and_why() -> None:
    the_contract = contract(team_rule("NA", "na"))
    holiday = Absence(NOW - timedelta(days=1), NOW + timedelta(days=6))
    reps = [
        rep(1, team="na", status="away"),
        rep(2, team="na", schedule=Schedule("UTC", WorkingHours.always(), (holiday,))),
        rep(3, team="na", schedule=Schedule("Asia/Tokyo", WorkingHours.weekdays())),
        rep(4, team="na", capacity=5),
        rep(5, team="na", countries=frozenset({"CA"})),
        rep(6, team="na", segments=frozenset({"enterprise"})),
        rep(7, team="na"),
        rep(8, team="emea", status="away"),
    ]
    decision = route(
        the_contract, reps, {"country": "US"}, loads={4: 5}, exclude=[7], account_owner_id=8
    )
    assert decision.rep_id is None
    assert decision.reason == "nobody in team na is available"
    assert (decision.rule, decision.strategy, decision.pool_key) == ("NA", "round_robin", "team:na")
    assert skipped(decision) == {
        8: "account owner, status away",
        1: "status away",
        2: "out of office",
        3: "outside working hours (Asia/Tokyo)",
        4: "at capacity (5/5 open handoffs)",
        5: "outside territory (lead: US)",
        6: "does not cover segment (none given)",
        7: "already had this lead",
    }
    assert len(decision.skipped) == 8, "each rep is listed once"
    assert decision.to_json()["skipped"][1] == {
        "rep_id": 1,
        "rep": "rep1@lumen.test",
        "reason": "status away",
    }
    # An excluded owner is not considered as owner at all.
    decision = route(
        the_contract, reps, {"country": "US"}, loads={4: 5}, exclude=[7, 8], account_owner_id=8
    )
    assert decision.rep_id is None and decision.account_owner is False
    assert set(skipped(decision)) == {1, 2, 3, 4, 5, 6, 7}


def test_excluded_reps_are_never_chosen_even_when_they_own_the_account() -> None:
    the_contract = contract(team_rule("NA", "na"))
    reps = [rep(1, team="na"), rep(2, team="na"), rep(3, team="na")]
    for lead_id in range(1, 40):
        decision = route(the_contract, reps, lead_id=lead_id, exclude=[1, 3], account_owner_id=1)
        assert decision.rep_id == 2
        assert skipped(decision) == {1: "already had this lead", 3: "already had this lead"}


# --- strategies ---------------------------------------------------------------------------


def shares(
    strategy: str,
    reps: Sequence[Rep],
    leads: Sequence[int],
    rotation: Rotation,
    counts: Counter[int] | None = None,
) -> Counter[int]:
    """Give each lead id in turn to one of ``reps`` and count who got how many."""
    counts = counts if counts is not None else Counter()
    for lead_id in leads:
        counts[pick(strategy, reps, rotation=rotation, loads={}, lead_id=lead_id).id] += 1
    return counts


@given(
    size=st.integers(min_value=2, max_value=7),
    leads=st.integers(min_value=1, max_value=150),
    first_lead=st.integers(min_value=1, max_value=10**9),
)
def test_round_robin_keeps_equal_reps_within_one_lead(
    size: int, leads: int, first_lead: int
) -> None:
    reps = [rep(i) for i in range(1, size + 1)]
    rotation = Rotation()
    counts: Counter[int] = Counter()
    for lead_id in range(first_lead, first_lead + leads):
        counts[pick("round_robin", reps, rotation=rotation, loads={}, lead_id=lead_id).id] += 1
        given_out = [counts[r.id] for r in reps]
        assert max(given_out) - min(given_out) <= 1, given_out
    # After whole rounds everyone has exactly the same number.
    whole = shares("round_robin", reps, range(10**9 + 1, 10**9 + 1 + size * 3), Rotation())
    assert sorted(whole.values()) == [3] * size


def test_round_robin_ties_are_not_broken_by_creation_order() -> None:
    """With a fresh rotation all reps tie: who goes first depends on the lead, so the
    oldest rep does not collect every first lead of every new pool or rotation."""
    reps = [rep(i) for i in range(1, 5)]
    first = Counter(
        pick("round_robin", reps, rotation=Rotation(), loads={}, lead_id=lead_id).id
        for lead_id in range(1, 201)
    )
    assert set(first) == {1, 2, 3, 4}
    assert first[1] < 200 and min(first.values()) >= 25, first


HOLIDAY_FROM = NOW + timedelta(hours=1)
HOLIDAY_TO = NOW + timedelta(days=14)
NA_ROUND_ROBIN = contract(team_rule("NA", "na"))


def route_many(
    reps: Sequence[Rep], leads: Sequence[int], at: datetime, rotations: dict[str, Rotation]
) -> Counter[int]:
    """Route each lead id in turn at ``at`` through the NA round-robin rule."""
    counts: Counter[int] = Counter()
    for lead_id in leads:
        decision = route(NA_ROUND_ROBIN, reps, lead_id=lead_id, rotations=rotations, now=at)
        assert decision.rep_id is not None
        counts[decision.rep_id] += 1
    return counts


def level_then_away(first_lead: int) -> tuple[dict[str, Rotation], list[Rep], int]:
    """Three equal reps share 3 leads; then rep 3 is out of office for two weeks while
    reps 1 and 2 share 40 more (21 leads each); returns the rotations, the reps and the
    next lead id, for leads routed after the absence."""
    holiday = Schedule("UTC", WorkingHours.always(), (Absence(HOLIDAY_FROM, HOLIDAY_TO),))
    reps = [rep(1, team="na"), rep(2, team="na"), rep(3, team="na", schedule=holiday)]
    rotations: dict[str, Rotation] = {}
    counts = route_many(reps, range(first_lead, first_lead + 3), NOW, rotations)
    assert sorted(counts.values()) == [1, 1, 1]
    during = NOW + timedelta(days=3)
    assert route(NA_ROUND_ROBIN, reps, now=during).skipped[0].reason == "out of office"
    counts += route_many(reps, range(first_lead + 3, first_lead + 43), during, rotations)
    assert (counts[1], counts[2], counts[3]) == (21, 21, 1)
    return rotations, reps, first_lead + 43


def test_a_rep_back_from_a_long_absence_gets_no_backlog() -> None:
    """Over any number of whole rounds after the return, the returning rep gets at most
    one lead more than a round's share."""
    for first_lead in range(1, 3001, 100):
        rotations, reps, next_lead = level_then_away(first_lead)
        for rounds in (1, 5, 20):
            leads = range(next_lead, next_lead + 3 * rounds)
            after = route_many(reps, leads, HOLIDAY_TO, rotations)
            next_lead += 3 * rounds
            assert after[3] <= rounds + 1, (first_lead, rounds, after)


def test_a_returning_rep_gets_at_most_one_lead_more_than_each_equal_in_the_next_round() -> None:
    for first_lead in range(1, 3001, 100):
        rotations, reps, next_lead = level_then_away(first_lead)
        # Reps 1 and 2 are level (21 each); rep 3 comes back.
        round_ = route_many(reps, range(next_lead, next_lead + 3), HOLIDAY_TO, rotations)
        assert round_[3] <= min(round_[1], round_[2]) + 1, (first_lead, round_)


SHIFTS = (3, 5, 4, 1, 7, 2, 2, 5, 3, 6, 1, 1, 4, 3, 5, 2, 7, 4, 1, 6)
EARLY = Schedule("UTC", WorkingHours.parse({day: ["06:00-14:00"] for day in WEEKDAYS}))
LATE = Schedule("UTC", WorkingHours.parse({day: ["14:00-22:00"] for day in WEEKDAYS}))
SHIFT_TEAM = [
    rep(1, team="na", schedule=EARLY),
    rep(2, team="na", schedule=EARLY),
    rep(3, team="na", schedule=LATE),
    rep(4, team="na", schedule=LATE),
]


def work_shifts(lengths: Sequence[int], first_lead: int) -> None:
    """Leads arrive in the early shift (10:00) and the late shift (18:00) of each day,
    ``lengths[i]`` of them in the i-th shift; the other pair is out of hours. After
    every lead, each pair must be within one lead of each other."""
    rotations: dict[str, Rotation] = {}
    counts: Counter[int] = Counter()
    lead_id = first_lead
    for index, length in enumerate(lengths):
        at = NOW + timedelta(days=index // 2, hours=1 if index % 2 == 0 else 9)
        for _ in range(length):
            lead_id += 1
            decision = route(
                NA_ROUND_ROBIN, SHIFT_TEAM, lead_id=lead_id, rotations=rotations, now=at
            )
            assert decision.rep_id in ((1, 2) if index % 2 == 0 else (3, 4))
            counts[decision.rep_id] += 1
            assert abs(counts[1] - counts[2]) <= 1, (first_lead, index, dict(counts))
            assert abs(counts[3] - counts[4]) <= 1, (first_lead, index, dict(counts))


def test_reps_who_rejoin_together_stay_within_one_lead_across_shifts() -> None:
    for offset in range(20):
        work_shifts(SHIFTS[offset:] + SHIFTS[:offset], first_lead=1000 * offset)


def test_reps_who_leave_level_come_back_level() -> None:
    """What works today: shifts of even length leave each pair level."""
    for offset in range(5):
        work_shifts((2, 4, 6, 2, 8, 4, 2, 6) * 3, first_lead=1000 * offset)


@given(
    weights=st.tuples(
        st.sampled_from([0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0]),
        st.sampled_from([0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0]),
    ),
    leads=st.integers(min_value=1, max_value=300),
    first_lead=st.integers(min_value=1, max_value=10**9),
)
def test_weighted_two_reps_get_shares_proportional_to_weight_within_one_lead(
    weights: tuple[float, float], leads: int, first_lead: int
) -> None:
    reps = [rep(1, weight=weights[0]), rep(2, weight=weights[1])]
    rotation = Rotation()
    counts: Counter[int] = Counter()
    total = sum(weights)
    for n, lead_id in enumerate(range(first_lead, first_lead + leads), start=1):
        counts[pick("weighted", reps, rotation=rotation, loads={}, lead_id=lead_id).id] += 1
        for r in reps:
            assert abs(counts[r.id] - n * r.weight / total) <= 1 + 1e-9, (n, dict(counts))


@pytest.mark.parametrize("weights", [(1, 2), (1, 1, 4), (2, 3, 5), (1, 2, 3, 4), (5, 1, 1, 1)])
def test_weighted_whole_rounds_give_exact_shares(weights: tuple[int, ...]) -> None:
    reps = [rep(i, weight=float(w)) for i, w in enumerate(weights, start=1)]
    rotation = Rotation()
    counts: Counter[int] = Counter()
    per_round = sum(weights)
    for round_ in range(1, 31):
        start = 1 + (round_ - 1) * per_round
        shares("weighted", reps, range(start, start + per_round), rotation, counts)
        assert [counts[r.id] for r in reps] == [w * round_ for w in weights]


def test_weighted_shares_stay_within_one_lead_with_three_reps() -> None:
    weights = (1.0, 1.0, 4.0)
    reps = [rep(i, weight=w) for i, w in enumerate(weights, start=1)]
    rotation = Rotation()
    counts: Counter[int] = Counter()
    for n in range(1, 601):
        counts[pick("weighted", reps, rotation=rotation, loads={}, lead_id=n).id] += 1
        for r in reps:
            assert abs(counts[r.id] - n * r.weight / 6) <= 1, (n, dict(counts))


def test_least_loaded_picks_the_lowest_load_for_its_capacity() -> None:
    the_contract = contract(team_rule("NA", "na", "least_loaded"))
    reps = [rep(1, team="na", capacity=4), rep(2, team="na", capacity=20), rep(3, team="na")]
    # Loads 2/4 = 0.5, 3/20 = 0.15, 5/20 = 0.25: rep 2 despite more open handoffs than rep 1.
    loads = {1: 2, 2: 3, 3: 5}
    for lead_id in range(1, 30):
        decision = route(the_contract, reps, lead_id=lead_id, loads=loads)
        assert decision.rep_id == 2
    # Equal ratios: the rotation decides between them, fairly.
    level = {1: 1, 2: 5, 3: 5}
    rotation = Rotation()
    got = Counter(
        pick("least_loaded", reps, rotation=rotation, loads=level, lead_id=i).id
        for i in range(1, 13)
    )
    assert got == Counter({1: 4, 2: 4, 3: 4})
    # A rep with no open handoffs at all beats everyone.
    assert route(the_contract, reps, loads={1: 1, 2: 1}).rep_id == 3


def test_least_loaded_fills_up_the_emptiest_rep_first() -> None:
    reps = [rep(1, capacity=10), rep(2, capacity=10)]
    loads = {1: 4, 2: 0}
    rotation = Rotation()
    for lead_id in range(1, 9):
        chosen = pick("least_loaded", reps, rotation=rotation, loads=loads, lead_id=lead_id)
        loads[chosen.id] += 1
    assert loads == {1: 6, 2: 6}


# --- the invariant ------------------------------------------------------------------------

TEAMS = ("na", "emea")
TAGS = ("french", "german")
COUNTRIES = ("US", "DE", "GB")
NEW_YORK_DAY = Schedule("America/New_York", WorkingHours.weekdays())  # off at NOW
HOLIDAY = Schedule("UTC", WorkingHours.always(), (Absence(NOW, NOW + timedelta(days=1)),))


@st.composite
def rep_strategy(draw: st.DrawFn, rep_id: int) -> tuple[Rep, int]:
    capacity = draw(st.integers(min_value=0, max_value=3))
    the_rep = rep(
        rep_id,
        team=draw(st.sampled_from(TEAMS)),
        tags=frozenset(draw(st.sets(st.sampled_from(TAGS)))),
        status=draw(st.sampled_from(["available", "available", "away"])),
        active=draw(st.booleans() | st.just(True)),
        capacity=capacity,
        countries=frozenset(draw(st.sets(st.sampled_from(COUNTRIES), max_size=2))),
        schedule=draw(st.sampled_from([ALWAYS, ALWAYS, NEW_YORK_DAY, HOLIDAY])),
    )
    return the_rep, draw(st.integers(min_value=0, max_value=3))


@st.composite
def rule_strategy(draw: st.DrawFn, index: int, emails: list[str]) -> dict[str, Any]:
    kind = draw(st.sampled_from(["team", "tag", "reps"]))
    if kind == "team":
        pool: dict[str, Any] = {"team": draw(st.sampled_from(TEAMS))}
    elif kind == "tag":
        pool = {"tag": draw(st.sampled_from(TAGS))}
    else:
        pool = {"reps": draw(st.lists(st.sampled_from(emails), min_size=1, max_size=4))}
    countries = draw(st.sets(st.sampled_from(COUNTRIES), min_size=1))
    return {
        "name": f"rule {index}",
        "when": [{"field": "country", "in": sorted(countries)}],
        "pool": pool,
        "strategy": draw(st.sampled_from(["round_robin", "weighted", "least_loaded"])),
    }


def eligible_by_hand(the_rep: Rep, load: int, country: str) -> bool:
    """What the generated reps allow, written out plainly (not via routing)."""
    return (
        the_rep.active
        and the_rep.status == "available"
        and the_rep.schedule is ALWAYS
        and load < the_rep.capacity
        and (not the_rep.countries or country in the_rep.countries)
    )


def in_pool_by_hand(the_rep: Rep, pool: dict[str, Any]) -> bool:
    if not the_rep.active:
        return False
    if "team" in pool:
        return bool(the_rep.team == pool["team"])
    if "tag" in pool:
        return pool["tag"] in the_rep.tags
    return the_rep.email in pool["reps"]


@settings(max_examples=50)
@given(data=st.data())
def test_the_chosen_rep_is_an_eligible_member_of_the_matched_pool_and_not_excluded(
    data: st.DataObject,
) -> None:
    size = data.draw(st.integers(min_value=1, max_value=7), label="reps")
    drawn = [data.draw(rep_strategy(i), label=f"rep {i}") for i in range(1, size + 1)]
    reps = [r for r, _ in drawn]
    loads = {r.id: load for r, load in drawn}
    emails = [r.email for r in reps]
    rule_count = data.draw(st.integers(min_value=1, max_value=3), label="rules")
    rules = [data.draw(rule_strategy(i, emails), label=f"rule {i}") for i in range(rule_count)]
    account_matching = data.draw(st.booleans(), label="account matching")
    the_contract = contract(*rules, account_matching=account_matching)
    rotations: dict[str, Rotation] = {}
    for lead_id in range(1, data.draw(st.integers(min_value=1, max_value=6), label="leads") + 1):
        country = data.draw(st.sampled_from(COUNTRIES), label="country")
        exclude = data.draw(st.sets(st.sampled_from([r.id for r in reps])), label="exclude")
        owner = data.draw(st.none() | st.sampled_from([r.id for r in reps]), label="owner")
        decision = route(
            the_contract,
            reps,
            {"country": country},
            lead_id=lead_id,
            loads=loads,
            rotations=rotations,
            account_owner_id=owner,
            exclude=sorted(exclude),
        )
        by_id = {r.id: r for r in reps}
        assert decision.rep_id not in exclude
        if decision.rep_id is not None:
            assert eligible_by_hand(by_id[decision.rep_id], loads[decision.rep_id], country)
        owner_can = (
            account_matching
            and owner is not None
            and owner not in exclude
            and eligible_by_hand(by_id[owner], loads[owner], country)
        )
        if owner_can:
            assert (decision.rep_id, decision.account_owner) == (owner, True)
            continue
        assert not decision.account_owner
        matching = [r for r in rules if country in r["when"][0]["in"]]
        # The rule (and pool) the service locks before deciding is the one that decides.
        found = first_rule(the_contract, {"country": country}, total=70.0, grade="B")
        if not matching:
            assert decision.rep_id is None and decision.rule is None and found is None
            continue
        rule = matching[0]
        assert decision.rule == rule["name"]
        assert found is not None and found.name == rule["name"]
        assert decision.pool_key == pool_key(found.pool)
        pool = [r for r in reps if in_pool_by_hand(r, rule["pool"])]
        candidates = [
            r.id for r in pool if r.id not in exclude and eligible_by_hand(r, loads[r.id], country)
        ]
        if candidates:
            assert decision.rep_id in candidates
            loads[decision.rep_id] += 1  # as the service would count the new handoff
        else:
            assert decision.rep_id is None
            assert {r.id for r in pool} <= {s.rep_id for s in decision.skipped}
