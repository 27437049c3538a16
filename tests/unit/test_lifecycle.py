"""The lead lifecycle against its specification, written out here independently of the
table in ``baton.domain.lifecycle``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from baton.domain.errors import InvalidTransitionError, ValidationFailed
from baton.domain.lifecycle import (
    INITIAL_STAGE,
    MAX_DEAL_VALUE,
    Stage,
    Transition,
    check_deal_value,
    replay,
    transition,
)

SPEC: dict[str, set[str]] = {
    "lead": {"mql", "nurture", "disqualified"},
    "mql": {"sal", "nurture", "disqualified"},
    "sal": {"sql", "nurture", "disqualified", "lost"},
    "sql": {"opportunity", "nurture", "lost"},
    "opportunity": {"customer", "lost"},
    "customer": set(),
    "nurture": {"mql", "disqualified"},
    "disqualified": {"nurture"},
    "lost": {"nurture"},
}
"""Allowed moves, as the README states them."""

NAMES = sorted(SPEC)
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def move(current: str, target: str, at: datetime = T0) -> Transition:
    return transition(Stage(current), Stage(target), actor="alice", reason="because", at=at)


def test_the_stages_are_exactly_the_specified_ones() -> None:
    assert {s.value for s in Stage} == set(SPEC)
    assert Stage("lead") == INITIAL_STAGE


@pytest.mark.parametrize("current", NAMES)
@pytest.mark.parametrize("target", NAMES)
def test_a_single_move_succeeds_exactly_when_the_spec_allows_it(current: str, target: str) -> None:
    if target in SPEC[current]:
        step = move(current, target)
        assert (step.from_stage, step.to_stage) == (Stage(current), Stage(target))
        assert (step.actor, step.reason, step.occurred_at) == ("alice", "because", T0)
    else:
        with pytest.raises(InvalidTransitionError) as caught:
            move(current, target)
        assert set(caught.value.allowed) == SPEC[current]
        assert (caught.value.current, caught.value.requested) == (current, target)


def test_customer_is_final() -> None:
    for target in NAMES:
        with pytest.raises(InvalidTransitionError):
            move("customer", target)


@pytest.mark.parametrize(
    ("stage", "only_from"),
    [("sal", {"mql"}), ("sql", {"sal"}), ("opportunity", {"sql"}), ("customer", {"opportunity"})],
)
def test_sales_stages_are_reached_only_through_the_funnel(stage: str, only_from: set[str]) -> None:
    reachable_from = set()
    for current in NAMES:
        try:
            move(current, stage)
        except InvalidTransitionError:
            continue
        reachable_from.add(current)
    assert reachable_from == only_from


def test_disqualified_and_lost_reopen_only_through_nurture() -> None:
    for closed in ("disqualified", "lost"):
        for target in NAMES:
            if target == "nurture":
                move(closed, target)
            else:
                with pytest.raises(InvalidTransitionError):
                    move(closed, target)


@pytest.mark.parametrize("current", NAMES)
def test_the_refusal_names_every_allowed_stage(current: str) -> None:
    forbidden = next(t for t in NAMES if t not in SPEC[current])
    with pytest.raises(InvalidTransitionError) as caught:
        move(current, forbidden)
    message = str(caught.value)
    assert current in message and forbidden in message
    for allowed in SPEC[current]:
        assert allowed in message
    if not SPEC[current]:
        assert "final" in message
    assert caught.value.detail == message


@settings(max_examples=300)
@given(st.lists(st.sampled_from(NAMES), max_size=40))
def test_random_walks_follow_the_spec_and_replay(targets: list[str]) -> None:
    current = "lead"
    history: list[Transition] = []
    at = T0
    for target in targets:
        at += timedelta(hours=1)
        if target in SPEC[current]:
            step = move(current, target, at)
            assert step.from_stage == Stage(current) and step.to_stage == Stage(target)
            history.append(step)
            current = target
        else:
            with pytest.raises(InvalidTransitionError):
                move(current, target, at)
    assert replay(history) == Stage(current)


def test_replay_of_nothing_is_the_initial_stage() -> None:
    assert replay([]) == Stage("lead")


def test_replay_refuses_a_history_that_does_not_chain() -> None:
    history = [move("lead", "mql"), move("sal", "sql")]
    with pytest.raises(InvalidTransitionError):
        replay(history)


def test_replay_refuses_a_forbidden_step_in_the_history() -> None:
    forged = Transition(Stage("lead"), Stage("customer"), "mallory", "forged", T0)
    with pytest.raises(InvalidTransitionError):
        replay([forged])


class LifecycleMachine(RuleBasedStateMachine):
    """A lead driven by arbitrary requests: the model is the spec table."""

    def __init__(self) -> None:
        super().__init__()
        self.stage = "lead"
        self.history: list[Transition] = []
        self.at = T0

    @rule(requested=st.sampled_from(NAMES))
    def request(self, requested: str) -> None:
        self.at += timedelta(minutes=5)
        if requested in SPEC[self.stage]:
            self.history.append(move(self.stage, requested, self.at))
            self.stage = requested
        else:
            with pytest.raises(InvalidTransitionError) as caught:
                move(self.stage, requested, self.at)
            assert set(caught.value.allowed) == SPEC[self.stage]

    @rule(data=st.data())
    def allowed_move(self, data: st.DataObject) -> None:
        options = sorted(SPEC[self.stage])
        if not options:
            return
        target = data.draw(st.sampled_from(options))
        self.at += timedelta(minutes=5)
        self.history.append(move(self.stage, target, self.at))
        self.stage = target

    @invariant()
    def history_replays_to_the_current_stage(self) -> None:
        assert replay(self.history) == Stage(self.stage)


TestLifecycleMachine = LifecycleMachine.TestCase
TestLifecycleMachine.settings = settings(max_examples=60, stateful_step_count=30)


@pytest.mark.parametrize("amount", [-5.0, -1e300, float("nan"), float("inf"), 2e12])
def test_a_deal_value_out_of_range_is_refused_naming_the_amount(amount: float) -> None:
    with pytest.raises(ValidationFailed) as refused:
        check_deal_value(amount)
    assert [p.loc for p in refused.value.problems] == ["amount"]


@pytest.mark.parametrize("amount", [None, 0.0, 52_000.0, MAX_DEAL_VALUE])
def test_a_deal_value_in_range_or_not_given_passes(amount: float | None) -> None:
    check_deal_value(amount)
