"""The demo company tells the truth: every MQL in its history is the contract's doing,
every handoff went to a rep routing allowed at that moment, and the cost report prices
each stage with the spend marketing recorded.

The checks recompute from what Baton recorded (stage history with reasons, the events
and when they were received, the prep ticks, the handoffs' routing) with the domain's
own rules, independently of the path that made the history."""

from __future__ import annotations

import re
import shutil
import uuid
from collections import defaultdict
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text
from tests.conftest import START, PostgresServer

from baton.config import Settings
from baton.domain.access import operator
from baton.domain.clock import ManualClock
from baton.domain.reports import ReportPeriod
from baton.domain.routing import members, rule_matches, unavailable_reason
from baton.domain.scoring import Event, engagement_state, field_value, grade_at_least, score
from baton.services.context import Context, open_context
from baton.services.contract_rules import active_contract
from baton.services.demo import generate_demo
from baton.services.reports import cost
from baton.services.reps import routing_reps
from baton.services.scoring import SCORED_COLUMNS, lead_score
from baton.store.tables import accounts, activities, handoffs, lead_prep, leads, transitions

OPS = operator("ops")
SCORE_REASON = re.compile(r"^score (?P<total>-?[\d.]+) ≥ (?P<threshold>\d+)$")


def _demo(ctx: Context) -> None:
    generate_demo(ctx, leads_count=160, seed=3, days=45)


class _Demos:
    """The demo company made once per backend for the module (it is the costly part:
    each test used to make the same one, seed and clock alike) and copied for each test:
    the SQLite file, or a PostgreSQL database made from it as a template. The tests only
    read it, each from a copy of its own."""

    def __init__(self, request: pytest.FixtureRequest) -> None:
        self.request = request
        self.made: dict[str, str] = {}

    def source(self, backend: str) -> str:
        if backend not in self.made:
            if backend == "sqlite":
                template = self.request.getfixturevalue("sqlite_template")
                factory = self.request.getfixturevalue("tmp_path_factory")
                path = factory.mktemp("demo") / "baton.db"
                shutil.copyfile(template, path)
                name, url = str(path), f"sqlite:///{path}"
            else:
                server = self._server()
                name = server.create_database()
                url = server.url_for(name)
            made = open_context(
                Settings(database_url=url, env="test"), clock=ManualClock(current=START)
            )
            try:
                _demo(made)
            finally:
                made.engine.dispose()
            self.made[backend] = name  # only a whole demo: a failed one is made again
        return self.made[backend]

    def _server(self) -> PostgresServer:
        server: PostgresServer = self.request.getfixturevalue("postgres_server")
        return server

    def close(self) -> None:
        if "postgresql" in self.made:
            self._server().drop_database(self.made["postgresql"])


@pytest.fixture(scope="module")
def demos(request: pytest.FixtureRequest) -> Iterator[_Demos]:
    made = _Demos(request)
    try:
        yield made
    finally:
        made.close()


@pytest.fixture
def ctx(backend: str, demos: _Demos, tmp_path: Path) -> Iterator[Context]:
    """A copy of the demo company of this backend, with the clock it was made at."""
    source = demos.source(backend)
    dropped: str | None = None
    if backend == "sqlite":
        path = tmp_path / "baton.db"
        shutil.copyfile(source, path)
        url = f"sqlite:///{path}"
    else:
        server = demos._server()
        dropped = f"t_{uuid.uuid4().hex}"
        with server.admin.connect() as connection:
            connection.execute(text(f"CREATE DATABASE {dropped} TEMPLATE {source}"))
        url = server.url_for(dropped)
    context = open_context(Settings(database_url=url, env="test"), clock=ManualClock(current=START))
    try:
        yield context
    finally:
        context.engine.dispose()
        if dropped is not None:
            demos._server().drop_database(dropped)


def test_every_mql_of_the_demo_is_explained_by_the_contract(ctx: Context) -> None:
    version, contract = active_contract(ctx)  # type: ignore[misc]
    trigger = contract.mql
    required = {i.id for i in contract.prep_checklist if i.required}
    with ctx.read() as connection:
        moves = connection.execute(
            select(transitions).order_by(transitions.c.lead_id, transitions.c.id)
        ).mappings()
        history: dict[int, list[Any]] = defaultdict(list)
        for move in moves:
            history[move["lead_id"]].append(move)
        people = {
            row["id"]: dict(row) for row in connection.execute(select(*SCORED_COLUMNS)).mappings()
        }
        events: dict[int, list[Any]] = defaultdict(list)
        for row in connection.execute(select(activities)).mappings():
            events[row["lead_id"]].append(row)
        ticks: dict[int, dict[str, Any]] = defaultdict(dict)
        for lead_id, item, done_at in connection.execute(
            select(lead_prep.c.lead_id, lead_prep.c.item, lead_prep.c.done_at)
        ):
            ticks[lead_id][item] = done_at
        handed = {
            (lead_id, mql_at)
            for lead_id, mql_at in connection.execute(select(handoffs.c.lead_id, handoffs.c.mql_at))
        }

    on_score = by_hand = 0
    for lead_id, moves_of_lead in history.items():
        for index, move in enumerate(moves_of_lead):
            if move["to_stage"] != "mql":
                continue
            at, reason = move["occurred_at"], move["reason"]
            assert move["from_stage"] in ("lead", "nurture"), move
            assert move["contract_version"] == version
            assert (lead_id, at) in handed, f"lead {lead_id}: an MQL without its handoff"
            recycled_at = None
            if move["from_stage"] == "nurture":
                recycled_at = moves_of_lead[index - 1]["occurred_at"]
            if reason.startswith("hand-raise: "):
                kind = reason.removeprefix("hand-raise: ")
                assert kind in {e.value for e in trigger.hand_raise}
                raised = [
                    e
                    for e in events[lead_id]
                    if e["type"] == kind
                    and e["received_at"] == at
                    and at - e["occurred_at"] <= timedelta(days=trigger.hand_raise_max_age_days)
                    and (recycled_at is None or e["occurred_at"] >= recycled_at)
                ]
                assert raised, f"lead {lead_id}: {reason} at {at} but no such event came then"
                by_hand += 1
                continue
            found = SCORE_REASON.match(reason)
            assert found, f"lead {lead_id}: MQL for an unknown reason {reason!r}"
            assert int(found["threshold"]) == trigger.threshold
            # The score at that moment, recomputed from the events received by then.
            received = [
                Event(e["type"], e["occurred_at"], e["properties"] or {})
                for e in events[lead_id]
                if e["received_at"] <= at
            ]
            lead = people[lead_id]
            card = score(contract, lead, engagement_state(contract, received), at)
            assert abs(card.total - float(found["total"])) < 0.02, (lead_id, card, reason)
            assert card.total >= trigger.threshold
            assert grade_at_least(card.grade, trigger.min_grade), (lead_id, card.grade)
            assert all(field_value(lead, f) is not None for f in trigger.required_fields)
            done = {item for item, done_at in ticks[lead_id].items() if done_at <= at}
            assert required <= done, f"lead {lead_id}: MQL at {at} with prep {done} only"
            if recycled_at is not None:
                assert at - recycled_at >= timedelta(days=trigger.recycle_cooldown_days)
            on_score += 1
    assert on_score >= 5, "the demo shows MQLs on score (threshold and prep)"
    assert by_hand >= 5, "and MQLs by a hand-raise"


def test_every_handoff_of_the_demo_went_to_a_rep_routing_allowed_then(ctx: Context) -> None:
    _, contract = active_contract(ctx)  # type: ignore[misc]
    with ctx.read() as connection:
        roster = {rep.id: rep for rep in routing_reps(connection)}
        given = list(
            connection.execute(
                select(handoffs).where(handoffs.c.rep_id.is_not(None)).order_by(handoffs.c.id)
            ).mappings()
        )
        people = {row["id"]: dict(row) for row in connection.execute(select(leads)).mappings()}
        owners = {
            row["domain"]: (row["owner_rep_id"], row["created_at"])
            for row in connection.execute(select(accounts)).mappings()
        }
    assert len(given) >= 10
    earlier: dict[int, set[int]] = defaultdict(set)
    for handoff in given:
        rep, lead, at = (
            roster[handoff["rep_id"]],
            people[handoff["lead_id"]],
            handoff["assigned_at"],
        )
        routing = handoff["routing"]
        assert routing["rep_id"] == rep.id
        assert rep.id not in earlier[handoff["chain_id"]], "a reassignment never goes back"
        earlier[handoff["chain_id"]].add(rep.id)
        # In working hours, not out of office, in the patch: available at that moment.
        assert unavailable_reason(rep, lead, at, 0) is None, (handoff["id"], rep.email, at)
        if routing["account_owner"]:
            owner, since = owners[lead["email_domain"]]
            assert owner == rep.id and since <= at
            continue
        first = next(
            r
            for r in contract.routing.rules
            if rule_matches(r, contract, lead, total=None, grade=None)
        )
        assert routing["rule"] == first.name, (handoff["id"], routing, lead["country"])
        assert rep in members(first.pool, list(roster.values())), (rep.email, first.name)


def test_the_demo_records_spend_so_the_cost_report_prices_every_stage(ctx: Context) -> None:
    now = ctx.clock.now()
    report = cost(ctx, ReportPeriod(now - timedelta(days=45), now), actor=OPS)

    assert sum(row.spend for row in report.rows) > 10_000
    paid = [row for row in report.rows if row.spend > 0 and row.mqls > 0]
    assert paid, report.rows
    assert any(row.cost_per_sql and row.cost_per_sql > row.cost_per_mql > 0 for row in paid)  # type: ignore[operator]
    assert all(row.cost_per_lead and row.cost_per_lead > 0 for row in paid)
    assert report.gap.leads_rejected > 0
    assert report.gap.spend_on_rejected > 0
    assert report.currencies == ["USD"]


def test_a_demo_lead_at_the_threshold_says_which_prep_item_holds_it(ctx: Context) -> None:
    """The demo's warm leads that are not MQLs yet name what stands in the way."""
    with ctx.read() as connection:
        waiting = list(
            connection.execute(
                select(leads.c.id).where(leads.c.stage == "lead").order_by(leads.c.id)
            ).scalars()
        )
    gaps = [lead_score(ctx, lead_id, actor=OPS).mql_gaps for lead_id in waiting]
    kinds = {gap.kind for found in gaps for gap in found}
    assert {"score", "prep"} <= kinds
    assert all(found for found in gaps), "a lead that is not an MQL always has a reason"
