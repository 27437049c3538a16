"""The pure backtest (baton.domain.backtest): one lead's replay through the real scoring
code, its fast path equal to checking every event in full, and the summaries."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from baton.domain.backtest import (
    Outcome,
    Replay,
    Replayer,
    Tally,
    fit_key,
    fit_of,
    quantile,
    replay_lead,
    summarise,
    sweep_thresholds,
)
from baton.domain.contract import HandoffContract, parse_contract
from baton.domain.scoring import (
    Event,
    engagement_state,
    engagement_total,
    score_engagement,
)

EXAMPLE = parse_contract(
    (Path(__file__).parents[2] / "contracts" / "example.yaml").read_text(encoding="utf-8")
)
DECAYING = parse_contract(
    """schema_version: 1
name: Decay
scoring:
  engagement:
    - name: Pricing
      event: page_view
      points: 20
      half_life_days: 7
mql:
  threshold: 35
  hand_raise: [demo_request]
"""
)
T0 = datetime(2026, 1, 5, 9, tzinfo=UTC)
LEAD = {"title": "Analyst", "email": "a@acme.example", "attributes": {}}
KINDS = (
    ("page_view", {"url": "/pricing"}),
    ("page_view", {"url": "/product/x"}),
    ("email_click", {}),
    ("content_download", {}),
    ("webinar_attended", {}),
    ("email_open", {}),
    ("unsubscribe", {}),
    ("demo_request", {}),
)


def test_scores_are_taken_as_of_each_event_not_today() -> None:
    events = [
        Event("page_view", T0 + timedelta(days=1), {}),
        Event("page_view", T0 + timedelta(days=1, hours=1), {}),
    ]
    close = replay_lead(DECAYING, 1, LEAD, T0, events)
    apart = replay_lead(
        DECAYING,
        2,
        LEAD,
        T0,
        [events[0], Event("page_view", T0 + timedelta(days=15), {})],
    )

    assert close.mql_at == events[1].occurred_at  # ~40 points an hour apart
    assert close.reason.startswith("score 39.9")
    assert apart.mql_at is None  # 20 * 0.25 + 20 = 25 two weeks apart
    assert apart.peak == 25.0


def test_a_hand_raise_qualifies_at_its_moment_and_the_outcome_ends_the_replay() -> None:
    demo = Event("demo_request", T0 + timedelta(days=3))
    raised = replay_lead(DECAYING, 1, LEAD, T0, [demo])
    after_win = replay_lead(DECAYING, 2, LEAD, T0, [demo], until=T0 + timedelta(days=2))

    assert (raised.mql_at, raised.reason, raised.hand_raised) == (
        demo.occurred_at,
        "hand-raise: demo_request",
        True,
    )
    assert after_win.mql_at is None and not after_win.hand_raised


def test_the_first_touch_is_the_earliest_of_creation_and_any_activity() -> None:
    replay = replay_lead(DECAYING, 1, LEAD, T0, [], first_activity=T0 - timedelta(hours=2))
    assert replay.first_touch == T0 - timedelta(hours=2)


def test_the_fast_total_is_score_engagement_s() -> None:
    rng = random.Random(5)
    for _ in range(300):
        events = [
            Event(kind, T0 + timedelta(minutes=rng.randrange(0, 120 * 1440)), props)
            for kind, props in rng.choices(KINDS, k=rng.randrange(0, 25))
        ]
        state = engagement_state(EXAMPLE, sorted(events, key=lambda e: e.occurred_at))
        now = T0 + timedelta(days=rng.randrange(0, 200))
        assert engagement_total(EXAMPLE, state, now) == (
            score_engagement(EXAMPLE, 0.0, state, now).engagement
        )


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_fast_path_replays_like_checking_every_event_in_full(seed: int) -> None:
    rng = random.Random(seed)
    titles = ("VP Operations", "Head of Data", "Student", "CTO", "")
    for lead_id in range(120):
        lead = {
            "title": rng.choice(titles),
            "email": f"p{lead_id}@c{lead_id % 7}.example.com",
            "country": rng.choice(("US", "DE", "BR")),
            "attributes": {"employees": rng.choice((5, 80, 400, 9000))},
        }
        events = sorted(
            (
                Event(kind, T0 + timedelta(minutes=rng.randrange(-1440, 90 * 1440)), props)
                for kind, props in rng.choices(KINDS, k=rng.randrange(0, 30))
            ),
            key=lambda e: e.occurred_at,
        )
        until = T0 + timedelta(days=rng.randrange(1, 120)) if rng.random() < 0.3 else None
        fast = replay_lead(EXAMPLE, lead_id, lead, T0, events, until=until)
        full = replay_lead(
            EXAMPLE, lead_id, lead, T0, events, until=until, probability_at=lambda _: None
        )
        assert fast.mql_at == full.mql_at
        assert fast.peak == full.peak
        assert fast.hand_raised == full.hand_raised
        if not fast.hand_raised:
            assert fast.eligible_peak == full.eligible_peak


def _replay(lead_id: int, peak: float, mql: bool, hand: bool = False) -> Replay:
    return Replay(
        lead_id,
        T0,
        T0 + timedelta(hours=lead_id) if mql else None,
        "",
        peak,
        peak,
        hand,
    )


def test_summaries_count_by_hand() -> None:
    tally = Tally(DECAYING)
    rows = [
        (_replay(1, 40, True), Outcome(won=True, accepted=True)),
        (_replay(2, 10, False, hand=False), Outcome(won=True)),
        (_replay(3, 36, True), Outcome(rejections=("no_budget",))),
        (_replay(4, 5, True, hand=True), Outcome()),
    ]
    for replay, outcome in rows:
        tally.add(replay, outcome)

    side = summarise(tally, label="draft", version=None, rank=lambda s, y: (0.75, 0.5))

    totals = side.totals
    assert (totals.mqls, totals.won, totals.missed_winners, totals.missed_sample) == (3, 1, 1, (2,))
    assert totals.rejected_by_reason == {"no_budget": 1}
    assert (totals.precision, totals.recall) == (0.3333, 0.5)
    assert totals.median_hours_to_mql == 3.0
    assert (totals.roc_auc, totals.pr_auc) == (0.75, 0.5)
    at_own = next(p for p in side.sweep if p.own)
    assert (at_own.threshold, at_own.mqls) == (35.0, 3)
    lowest = side.sweep[0]
    assert (lowest.threshold, lowest.mqls, lowest.recall) == (5.0, 4, 1.0)


def test_without_a_won_lead_nothing_is_measured() -> None:
    tally = Tally(DECAYING)
    tally.add(_replay(1, 40, True), Outcome())
    called: list[int] = []
    side = summarise(
        tally, label="draft", version=None, rank=lambda s, y: (called.append(1), (0.5, 0.5))[1]
    )
    assert (side.totals.precision, side.totals.recall, side.totals.roc_auc) == (None, None, None)
    assert not called
    assert all(p.precision is None and p.recall is None for p in side.sweep)


def test_quantiles_and_thresholds() -> None:
    assert quantile([], 0.5) is None
    assert quantile([24.0, 192.0, 48.0], 0.5) == 48.0
    assert quantile([24.0, 48.0, 192.0], 0.9) == pytest.approx(163.2)
    assert sweep_thresholds([0.0, 10.0], 7, steps=3) == [0.0, 5.0, 7.0, 10.0]
    assert sweep_thresholds([], 60) == [60.0]


def test_the_sweep_chart_draws_precision_and_recall_inside_the_box() -> None:
    from baton.web.pages.backtest import HEIGHT, WIDTH, sweep_chart

    tally = Tally(DECAYING)
    tally.add(_replay(1, 40, True), Outcome(won=True))
    tally.add(_replay(2, 10, False), Outcome())
    chart = sweep_chart([summarise(tally, label="draft", version=None)])

    drawn = [line for line in chart["lines"] if line["points"]]
    assert [line["label"] for line in drawn] == ["draft: precision", "draft: recall"]
    for line in drawn:
        for pair in line["points"].split():
            x, y = (float(v) for v in pair.split(","))
            assert 0 <= x <= WIDTH and 0 <= y <= HEIGHT
    assert any(line["marker"] is not None for line in chart["lines"])


def _variants() -> list[HandoffContract]:
    """Contracts that share some rules and not others: the same engagement rules with
    another threshold, grade or hand-raise list; changed engagement and fit rules."""
    body = (Path(__file__).parents[2] / "contracts" / "example.yaml").read_text(encoding="utf-8")
    return [
        EXAMPLE,
        parse_contract(body.replace("threshold: 60", "threshold: 45", 1)),
        parse_contract(body.replace("min_grade: C", "min_grade: B", 1)),
        parse_contract(body.replace("hand_raise: [demo_request, ", "hand_raise: [", 1)),
        parse_contract(body.replace("points: 10\n      cap: 30", "points: 14\n      cap: 30", 1)),
        parse_contract(body.replace("points: 20\n", "points: 35\n", 1)),
        DECAYING,
    ]


def _history(rng: random.Random, lead_id: int) -> tuple[dict[str, Any], list[Event]]:
    lead = {
        "title": rng.choice(("VP Operations", "Head of Data", "Student", "CTO", "")),
        "email": f"p{lead_id}@c{lead_id % 7}.example.com",
        "company": rng.choice(("Acme", "")),
        "country": rng.choice(("US", "DE", "BR")),
        "attributes": {"employees": rng.choice((5, 80, 400, 9000))},
    }
    events = sorted(
        (
            Event(kind, T0 + timedelta(minutes=rng.randrange(-1440, 90 * 1440)), props)
            for kind, props in rng.choices(KINDS, k=rng.randrange(0, 30))
        ),
        key=lambda e: e.occurred_at,
    )
    return lead, events


@pytest.mark.parametrize("seed", [11, 12])
def test_one_pass_over_several_contracts_equals_one_replay_each(seed: int) -> None:
    rng = random.Random(seed)
    contracts = _variants()
    replayer = Replayer(contracts)
    assert len(replayer.groups) < len(contracts)  # some contracts share a state
    for lead_id in range(150):
        lead, events = _history(rng, lead_id)
        until = T0 + timedelta(days=rng.randrange(-2, 120)) if rng.random() < 0.3 else None
        first = T0 - timedelta(hours=rng.randrange(0, 48)) if rng.random() < 0.2 else None
        slow = rng.random() < 0.2
        chances = [
            (lambda now, k=k: ((now - T0).total_seconds() * (k + 1)) % 1.0) if slow else None
            for k in range(len(contracts))
        ]
        # Contracts with the fit rules of the first share its fit (as the service does).
        fits = [
            fit_of(contracts[0], lead, T0) if fit_key(c) == fit_key(contracts[0]) else None
            for c in contracts
        ]
        together = replayer.replay(
            lead_id,
            lead,
            T0,
            events,
            until=until,
            first_activity=first,
            probability_at=chances,
            fits=fits,
        )
        alone = [
            replay_lead(
                c, lead_id, lead, T0, events, until=until, first_activity=first, probability_at=p
            )
            for c, p in zip(contracts, chances, strict=True)
        ]
        assert together == alone


def test_tallies_merged_in_id_order_equal_one_tally() -> None:
    rng = random.Random(3)
    whole, first, second = Tally(EXAMPLE), Tally(EXAMPLE), Tally(EXAMPLE)
    for lead_id in range(400):
        lead, events = _history(rng, lead_id)
        outcome = Outcome(
            won=rng.random() < 0.2,
            accepted=rng.random() < 0.3,
            rejections=("no_budget",) if rng.random() < 0.1 else (),
        )
        replay = replay_lead(EXAMPLE, lead_id, lead, T0, events)
        whole.add(replay, outcome)
        (first if lead_id < 170 else second).add(replay, outcome)
    first.merge(second)
    assert first == whole
    assert summarise(first, label="a", version=None) == summarise(whole, label="a", version=None)


def test_the_fold_s_prepared_filters_match_like_event_matches() -> None:
    from baton.domain.scoring import _prepared_where, _where_holds, event_matches

    filters = parse_contract(
        """schema_version: 1
name: Filters
scoring:
  engagement:
    - {name: Equals, event: page_view, where: {url: /Pricing}, points: 1}
    - {name: Number, event: page_view, where: {seats: 5}, points: 1}
    - {name: Contains, event: page_view, where: {url: {contains: PRODUCT}}, points: 1}
    - {name: Regex, event: page_view, where: {url: {regex: "^/docs/v[0-9]"}}, points: 1}
    - {name: Both, event: page_view, where: {url: /pricing, seats: 5}, points: 1}
mql:
  threshold: 10
"""
    )
    rng = random.Random(8)
    values = ("/pricing", "/PRICING ", "/product/x", "/docs/v2", "/docs/x", 5, "5", 5.0, None)
    for _ in range(400):
        props = {k: v for k in ("url", "seats") if (v := rng.choice(values)) is not None}
        event = Event("page_view", T0, props)
        for rule in filters.scoring.engagement:
            assert _where_holds(_prepared_where(rule), props) == event_matches(rule, event)
