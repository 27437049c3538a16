"""One simulated week of handoffs: 30 reps in three time zones, 2,000 MQLs arriving at
seeded random moments (nights and the weekend included), reps who accept most leads in
time, some after the reminder, some too late and some never.

The clock only jumps to moments where something happens: an MQL arrives, a rep acts,
a shift starts, or a handoff's ``next_step_at`` falls due. The worker runs at every
moment it can have work: when a step is due and when a shift starts (the only moments
the queue can move, as capacity never binds here); an arrival is routed in its own
transaction and an acceptance only cancels steps. (Running it at every arrival as well
changes nothing but the time: while the queue waits for the night to end,
``assign_queued`` walks 200 queued handoffs, one transaction each, on every pass.)
So every SLA step must be recorded *exactly* at its business-time deadline, which the
test recomputes on its own from the rep's schedule with
:func:`baton.domain.sla.deadline` (checked by hand for a few moments below).

The week is Monday 2 March 2026, 00:00 UTC, to Sunday 8 March, 24:00 UTC. Who works
when, in UTC: Tokyo (JST) 00:00-08:00, Berlin (CET) 08:00-16:00, New York (EST)
14:00-22:00, Monday to Friday. From 22:00 to 24:00 UTC and all weekend nobody does, so
those MQLs wait in the queue. The simulation then runs on into the next week until
nothing is left to do: Tokyo's Monday 09:00 is Sunday 24:00 UTC, when the weekend's
queue must empty, and New York has moved to daylight saving time (8 March), so its
Monday starts at 13:00 UTC.

Emails are outbox rows here: the worker's SLA and queue passes (what ``worker.tick``
does before delivery) run at each moment, and delivery, which renders the whole
handoff packet per email, is left to the PostgreSQL concurrency test, which sends
through a real SMTP server. SQLite only: the subject is behaviour over time, not the
database. The simulation runs once per module; each test checks one promise.
"""

from __future__ import annotations

import heapq
import random
import shutil
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select
from tests.milestone_checks import assert_milestones_equal_a_rebuild

from baton.config import Settings
from baton.domain.access import operator
from baton.domain.activities import ActivityCreate, ActivityType
from baton.domain.business_hours import Schedule, WorkingHours, is_working, next_working_moment
from baton.domain.clock import ManualClock
from baton.domain.contract import parse_contract
from baton.domain.errors import Conflict
from baton.domain.reps import RepCreate, TeamCreate
from baton.domain.routing import Rep, Rotation, route_lead
from baton.domain.sla import deadline
from baton.services import worker
from baton.services.activities import ingest_activities, ingest_activity
from baton.services.context import Context, open_context
from baton.services.contracts import activate_contract, approve_contract, create_contract
from baton.services.handoffs import accept_handoff
from baton.services.reps import create_rep, create_team
from baton.store.tables import handoff_events, handoffs, leads, outbox, transitions

SEED = 20260302
MQLS = 2000
REPS_PER_ZONE = 10
CAPACITY = 1000
"""Never binds: the subject here is time, not load."""

WEEK_START = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)
WEEK_END = WEEK_START + timedelta(days=7)
HORIZON = WEEK_END + timedelta(days=2)
"""Nothing may still be due this late; the simulation settles long before."""

ZONES = {
    "tokyo": "Asia/Tokyo",
    "berlin": "Europe/Berlin",
    "newyork": "America/New_York",
}
HOURS = {day: ["09:00-17:00"] for day in ("mon", "tue", "wed", "thu", "fri")}
SCHEDULES = {team: Schedule(zone, WorkingHours.parse(HOURS)) for team, zone in ZONES.items()}

REMIND, REASSIGN, NOTIFY = 20.0, 30.0, 30.0
MAX_REASSIGNMENTS = 2
CONTRACT = f"""
schema_version: 1
name: One week, three time zones
mql:
  threshold: 1000            # only a hand-raise makes an MQL here
  hand_raise: [demo_request]
routing:
  account_matching: false
  rules:
    - name: Everyone
      pool: {{tag: everyone}}
      strategy: round_robin
sla:
  accept_within_minutes: 30
  first_touch_within_minutes: 240
  business_hours: true
  ladder:
    - {{at_minutes: {REMIND:g}, action: remind}}
    - {{at_minutes: {REASSIGN:g}, action: reassign}}
    - {{at_minutes: {NOTIFY:g}, action: notify_manager}}
  max_reassignments: {MAX_REASSIGNMENTS}
"""

UNWANTED_EVERY = 250
"""Every 250th lead is accepted by nobody, so its chain runs out of reassignments."""

ARRIVE, ACCEPT, SHIFT = 0, 1, 2
"""Kinds of happenings; at one moment they run in this order, then the worker."""

STEP_KINDS = {
    "reminded": "remind",
    "reassigned": "reassign",
    "reassign_skipped": "reassign",
    "reassign_failed": "reassign",
    "manager_notified": "notify_manager",
    "manager_missing": "notify_manager",
}
"""Handoff events that record an SLA step, and the step's action. All but
``reassigned`` and ``reassign_failed`` (written by the reassignment itself) also carry
the step's ``due_at``."""


def buyer(number: int) -> str:
    return f"buyer{number}@company{number % 97}.example.com"


def number_of(email: str) -> int:
    return int(email.removeprefix("buyer").partition("@")[0])


# --- the simulation ---------------------------------------------------------------------


@dataclass
class Simulation:
    ctx: Context
    clock: ManualClock
    rng: random.Random
    team_of: dict[int, str]
    email_of: dict[int, str]
    queue: list[tuple[datetime, int, int, Any]] = field(default_factory=list)
    sequence: int = 0
    last_event_id: int = 0
    moments: int = 0
    ticks: int = 0
    accepts: Counter[str] = field(default_factory=Counter)
    queued_before_week_end: int | None = None
    queued_after_week_end: int | None = None

    def at(self, when: datetime, kind: int, payload: Any = None) -> None:
        self.sequence += 1
        heapq.heappush(self.queue, (when, kind, self.sequence, payload))

    def arrive(self, number: int) -> None:
        ingest_activity(
            self.ctx,
            ActivityCreate(
                email=buyer(number),
                type=ActivityType.DEMO_REQUEST,
                occurred_at=self.clock.now(),
                idempotency_key=f"demo-{number}",
            ),
            actor=operator("website"),
        )

    def observe(self) -> datetime | None:
        """After the worker: let the reps decide on every new assignment, and return
        when the next SLA step falls due (one read)."""
        with self.ctx.read() as connection:
            assigned = connection.execute(
                select(
                    handoff_events.c.id,
                    handoffs.c.id,
                    handoffs.c.rep_id,
                    handoffs.c.assigned_at,
                    leads.c.email,
                )
                .select_from(
                    handoff_events.join(handoffs).join(leads, leads.c.id == handoffs.c.lead_id)
                )
                .where(
                    handoff_events.c.kind == "assigned", handoff_events.c.id > self.last_event_id
                )
                .order_by(handoff_events.c.id)
            ).all()
            due: datetime | None = connection.execute(
                select(func.min(handoffs.c.next_step_at)).where(
                    handoffs.c.status.in_(("assigned", "accepted")),
                    handoffs.c.next_step_at.is_not(None),
                )
            ).scalar()
        for event_id, handoff_id, rep_id, assigned_at, email in assigned:
            self.last_event_id = event_id
            self.plan(handoff_id, rep_id, assigned_at, number_of(email))
        return due

    def plan(self, handoff_id: int, rep_id: int, assigned_at: datetime, number: int) -> None:
        """Whether and when the rep accepts, in business minutes of their own (a rep
        accepts while at work): most before the reminder, some between reminder and
        reassignment, some after it (too late: the lead is someone else's by then),
        some never."""
        roll = self.rng.random()
        if number % UNWANTED_EVERY == 0 or roll >= 0.92:
            self.accepts["never"] += 1
            return
        if roll < 0.80:
            minutes = self.rng.uniform(0.5, REMIND - 0.5)
        elif roll < 0.88:
            minutes = self.rng.uniform(REMIND + 0.5, REASSIGN - 0.5)
        else:
            minutes = self.rng.uniform(REASSIGN + 0.5, 120)
        schedule = SCHEDULES[self.team_of[rep_id]]
        when = deadline(schedule, assigned_at, round(minutes, 4), business_hours=True)
        self.at(when, ACCEPT, (handoff_id, rep_id))

    def accept(self, handoff_id: int, rep_id: int) -> None:
        try:
            accept_handoff(self.ctx, handoff_id, actor=operator(self.email_of[rep_id]))
        except Conflict:
            self.accepts["too late"] += 1
        else:
            self.accepts["accepted"] += 1

    def work(self) -> None:
        """``worker.tick`` without the delivery: due SLA steps, then the queue; again
        while a pass stopped at its limit."""
        while True:
            steps = worker.run_due_steps(self.ctx)
            assigned = worker.assign_queued(self.ctx)
            if steps < 200 and assigned < 200:
                return

    def run(self) -> None:
        due: datetime | None = None
        while True:
            upcoming = [t for t in (self.queue[0][0] if self.queue else None, due) if t]
            if not upcoming:
                return
            now = min(upcoming)
            assert now < HORIZON, "the simulation should have settled long before"
            if self.queued_before_week_end is None and now >= WEEK_END:
                self.queued_before_week_end = count_queued(self.ctx)
            self.clock.set(now)
            self.moments += 1
            worker_due = due == now
            accepts_only = True
            while self.queue and self.queue[0][0] == now:
                _, kind, _, payload = heapq.heappop(self.queue)
                if kind == ARRIVE:
                    self.arrive(payload)
                    accepts_only = False
                elif kind == ACCEPT:
                    self.accept(*payload)
                else:
                    worker_due = True
            if worker_due:
                self.work()
                self.ticks += 1
            if worker_due or not accepts_only:
                due = self.observe()
            if now == WEEK_END:
                self.queued_after_week_end = count_queued(self.ctx)


def count_queued(ctx: Context) -> int:
    with ctx.read() as connection:
        return int(
            connection.execute(
                select(func.count()).select_from(handoffs).where(handoffs.c.status == "queued")
            ).scalar_one()
        )


def shift_starts() -> list[datetime]:
    """09:00 local of every working day of every zone, in UTC, from the week's start to
    the horizon: the moments the queue can move."""
    found: set[datetime] = set()
    day = WEEK_START.date() - timedelta(days=1)
    while day <= HORIZON.date():
        if day.weekday() < 5:
            for zone in ZONES.values():
                start = datetime.combine(day, time(9), tzinfo=ZoneInfo(zone)).astimezone(UTC)
                if WEEK_START <= start < HORIZON:
                    found.add(start)
        day += timedelta(days=1)
    return sorted(found)


def set_up(ctx: Context) -> tuple[dict[int, str], dict[int, str]]:
    """Three teams of ten (all tagged ``everyone``), the contract signed and active,
    and the 2,000 leads known from website visits (not yet hand-raisers)."""
    for team in ZONES:
        create_team(
            ctx,
            TeamCreate(name=team, manager_email=f"boss@{team}.example.com"),
            actor=operator("ops"),
        )
    team_of: dict[int, str] = {}
    email_of: dict[int, str] = {}
    for team, zone in ZONES.items():
        for n in range(REPS_PER_ZONE):
            rep = create_rep(
                ctx,
                RepCreate(
                    email=f"rep{n}@{team}.example.com",
                    name=f"Rep {n} {team}",
                    team=team,
                    timezone=zone,
                    working_hours=HOURS,
                    capacity=CAPACITY,
                    tags=["everyone"],
                ),
                actor=operator("ops"),
            )
            team_of[rep.id] = team
            email_of[rep.id] = rep.email
    version = create_contract(ctx, CONTRACT, actor=operator("maria")).version
    approve_contract(ctx, version, role="marketing", actor=operator("maria"))
    approve_contract(ctx, version, role="sales", actor=operator("sam"))
    activate_contract(ctx, version, actor=operator("sam"))
    visits = [
        {
            "email": buyer(n),
            "type": "page_view",
            "occurred_at": (WEEK_START - timedelta(days=1)).isoformat(),
            "properties": {"url": "/product"},
        }
        for n in range(MQLS)
    ]
    report = ingest_activities(ctx, visits, actor=operator("website"))
    assert report.leads_created == MQLS and not report.mql and not report.errors
    return team_of, email_of


@dataclass
class Week:
    """The simulation's outcome, as the tests read it."""

    sim: Simulation
    rows: list[dict[str, Any]]
    by_id: dict[int, dict[str, Any]]
    events: list[dict[str, Any]]
    events_of: dict[int, list[dict[str, Any]]]
    kinds: Counter[str]
    stages: Counter[str]
    mql_transitions: Counter[int]
    emails: Counter[tuple[str, int, str]]

    def schedule_of(self, handoff: dict[str, Any]) -> Schedule:
        return SCHEDULES[self.sim.team_of[handoff["rep_id"]]]


@pytest.fixture(scope="module")
def week(sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Week]:
    path = tmp_path_factory.mktemp("week") / "baton.db"
    shutil.copyfile(sqlite_template, path)
    clock = ManualClock(current=WEEK_START)
    ctx = open_context(Settings(database_url=f"sqlite:///{path}", env="test"), clock=clock)
    try:
        team_of, email_of = set_up(ctx)
        rng = random.Random(SEED)
        sim = Simulation(ctx, clock, rng, team_of, email_of)
        for number, second in enumerate(sorted(rng.sample(range(7 * 24 * 3600), MQLS))):
            sim.at(WEEK_START + timedelta(seconds=second), ARRIVE, number)
        for start in shift_starts():
            sim.at(start, SHIFT)
        sim.run()
        assert_milestones_equal_a_rebuild(ctx)
        with ctx.read() as connection:
            rows = [dict(r) for r in connection.execute(select(handoffs)).mappings()]
            events = [
                dict(r)
                for r in connection.execute(
                    select(handoff_events).order_by(handoff_events.c.id)
                ).mappings()
            ]
            stages = Counter(s for (s,) in connection.execute(select(leads.c.stage)))
            mql_transitions = Counter(
                lead_id
                for (lead_id,) in connection.execute(
                    select(transitions.c.lead_id).where(transitions.c.to_stage == "mql")
                )
            )
            emails = Counter(
                (topic, handoff_id, to)
                for topic, handoff_id, to in connection.execute(
                    select(outbox.c.topic, outbox.c.handoff_id, outbox.c.recipient).where(
                        outbox.c.channel == "email"
                    )
                )
            )
    finally:
        ctx.engine.dispose()
    events_of: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for event in events:
        events_of[event["handoff_id"]].append(event)
    yield Week(
        sim,
        rows,
        {r["id"]: r for r in rows},
        events,
        events_of,
        Counter(e["kind"] for e in events),
        stages,
        mql_transitions,
        emails,
    )


# --- the promises -----------------------------------------------------------------------


def test_the_week_exercises_the_queue_the_reminders_and_the_reassignments(week: Week) -> None:
    assert week.sim.accepts["accepted"] > MQLS // 2
    assert week.sim.accepts["too late"] > 0, "some reps accept after the lead moved on"
    assert week.kinds["queued"] > MQLS // 20, "nights and the weekend make MQLs wait"
    assert week.sim.queued_before_week_end and week.sim.queued_before_week_end > MQLS // 20
    assert week.kinds["reminded"] > MQLS // 20
    assert week.kinds["reassigned"] > MQLS // 20
    assert week.kinds["reassign_skipped"] >= MQLS // UNWANTED_EVERY, "unwanted leads run out"


def test_every_mql_is_handed_off(week: Week) -> None:
    assert sum(week.stages.values()) == MQLS
    assert set(week.stages) <= {"mql", "sal"}
    assert week.stages["sal"] == week.sim.accepts["accepted"]
    assert len(week.mql_transitions) == MQLS and set(week.mql_transitions.values()) == {1}
    assert week.sim.queued_after_week_end == 0, "Monday 09:00 in Tokyo takes the weekend queue"
    assert [r["id"] for r in week.rows if r["status"] == "queued"] == []
    chains: dict[int, set[int]] = defaultdict(set)
    open_per_lead: Counter[int] = Counter()
    for r in week.rows:
        assert r["status"] in ("assigned", "accepted", "reassigned"), r
        assert r["rep_id"] is not None, r
        chains[r["lead_id"]].add(r["chain_id"])
        if r["status"] in ("assigned", "accepted"):
            open_per_lead[r["lead_id"]] += 1
    assert len(chains) == MQLS and all(len(c) == 1 for c in chains.values())
    assert len(open_per_lead) == MQLS and set(open_per_lead.values()) == {1}


def test_nobody_gets_a_handoff_outside_working_hours(week: Week) -> None:
    for r in week.rows:
        assert is_working(week.schedule_of(r), r["assigned_at"]), (r["id"], r["assigned_at"])
    for event in week.events:
        if event["kind"] == "assigned":
            handoff = week.by_id[event["handoff_id"]]
            assert event["occurred_at"] == handoff["assigned_at"]
            assert is_working(week.schedule_of(handoff), event["occurred_at"]), event


def test_a_queued_mql_goes_out_the_moment_the_first_rep_starts_work(week: Week) -> None:
    waited = 0
    for r in week.rows:
        if any(e["kind"] == "queued" for e in week.events_of[r["id"]]):
            waited += 1
            first_rep_at_work = min(
                next_working_moment(s, r["created_at"]) or HORIZON for s in SCHEDULES.values()
            )
            assert r["assigned_at"] == first_rep_at_work, (r["id"], r["created_at"])
        else:
            assert r["assigned_at"] == r["created_at"], "routed in the MQL's own transaction"
    assert waited == week.kinds["queued"]


def test_every_sla_step_happens_exactly_when_due(week: Week) -> None:
    """For each handoff the steps it should have had, from the rep's schedule: none
    missing, none extra, none early or late, none twice."""
    recorded_steps = 0
    for r in week.rows:
        schedule = week.schedule_of(r)

        def due(minutes: float, r: dict[str, Any] = r, s: Schedule = schedule) -> datetime:
            return deadline(s, r["assigned_at"], minutes, business_hours=True)

        assert r["accept_due_at"] == due(30)
        accepted = r["accepted_at"]
        expected: list[tuple[str, datetime]] = []
        if accepted is None or accepted > due(REMIND):
            expected.append(("remind", due(REMIND)))
        if accepted is None or accepted > due(REASSIGN):
            expected.append(("reassign", due(REASSIGN)))
            expected.append(("notify_manager", due(NOTIFY)))
        recorded = [
            (STEP_KINDS[e["kind"]], e["occurred_at"], e["detail"].get("due_at"), e["kind"])
            for e in week.events_of[r["id"]]
            if e["kind"] in STEP_KINDS
        ]
        assert [(action, at) for action, at, _, _ in recorded] == expected, (r["id"], recorded)
        for action, at, due_text, kind in recorded:
            recorded_steps += 1
            if due_text is not None:
                assert datetime.fromisoformat(due_text) == at
            if action == "reassign":
                skipped = r["reassignments"] >= MAX_REASSIGNMENTS
                assert kind == ("reassign_skipped" if skipped else "reassigned"), (r["id"], kind)
        if r["status"] == "reassigned":
            (successor,) = [n for n in week.rows if n["previous_id"] == r["id"]]
            assert successor["assigned_at"] == due(REASSIGN) == r["closed_at"]
            before = {
                n["rep_id"]
                for n in week.rows
                if n["chain_id"] == r["chain_id"] and n["id"] <= r["id"]
            }
            assert successor["rep_id"] not in before, "a reassignment never goes back"
            assert successor["reassignments"] == r["reassignments"] + 1
    assert recorded_steps == sum(week.kinds[k] for k in STEP_KINDS)


def test_every_step_and_assignment_writes_its_email(week: Week) -> None:
    """Emails are outbox rows here: one per assignment, reminder and manager alert, to
    the right person, and one queue alert per waiting MQL to each team's manager (every
    rep of the pool was passed over)."""
    assert set(week.emails.values()) == {1}
    bosses = {f"boss@{team}.example.com" for team in ZONES}
    wrote: dict[str, set[int]] = defaultdict(set)
    for topic, handoff_id, to in week.emails:
        wrote[topic].add(handoff_id)
        rep_id = week.by_id[handoff_id]["rep_id"]
        if topic in ("handoff.assigned", "sla.remind"):
            assert to == week.sim.email_of[rep_id], (topic, handoff_id, to)
        elif topic == "sla.manager":
            assert to == f"boss@{week.sim.team_of[rep_id]}.example.com"
        else:
            assert topic == "queue.alert" and to in bosses, (topic, to)
    assert set(wrote) == {"handoff.assigned", "sla.remind", "sla.manager", "queue.alert"}
    assert wrote["handoff.assigned"] == set(week.by_id)
    for topic, kind in (
        ("sla.remind", "reminded"),
        ("sla.manager", "manager_notified"),
        ("queue.alert", "queued"),
    ):
        logged = {e["handoff_id"] for e in week.events if e["kind"] == kind}
        assert wrote[topic] == logged and len(logged) == week.kinds[kind], topic
    alerts = Counter(h for (t, h, _) in week.emails if t == "queue.alert")
    assert set(alerts.values()) == {len(bosses)}


def test_round_robin_keeps_equals_within_one_lead(week: Week) -> None:
    """Reps on one schedule (one time zone) are equals: counting every lead the pool's
    rotation gave them (first assignments and reassignments), none is more than one
    ahead of another."""
    counts: dict[str, Counter[int]] = {
        team: Counter({rep: 0 for rep, t in week.sim.team_of.items() if t == team})
        for team in ZONES
    }
    for r in week.rows:
        assert r["routing"]["pool"] == "tag:everyone"
        counts[week.sim.team_of[r["rep_id"]]][r["rep_id"]] += 1
    spread = {team: max(c.values()) - min(c.values()) for team, c in counts.items()}
    assert all(s <= 1 for s in spread.values()), (spread, counts)


def test_a_rep_passed_over_by_a_reassignment_keeps_their_turn() -> None:
    """Three equal reps, five leads: one rep is a lead behind and it is their turn.
    One of their earlier leads is reassigned (so that decision must pass them over);
    the next new lead is still theirs."""
    contract = parse_contract(
        "schema_version: 1\nname: t\nmql: {threshold: 0}\nrouting:\n  account_matching: false\n"
        "  rules: [{name: all, pool: {tag: all}, strategy: round_robin}]\n"
    )
    always = Schedule("UTC", WorkingHours.always())
    reps = [
        Rep(i, f"r{i}@x.example.com", f"r{i}", always, tags=frozenset({"all"})) for i in (1, 2, 3)
    ]
    rotations: dict[str, Rotation] = {}
    counts = Counter({1: 0, 2: 0, 3: 0})
    got: dict[int, int] = {}

    def route(lead: int, exclude: frozenset[int] = frozenset()) -> int:
        decision = route_lead(
            contract,
            {"email": f"l{lead}@y.example.com"},
            lead_id=lead,
            total=None,
            grade=None,
            reps=reps,
            loads={},
            rotations=rotations,
            now=WEEK_START,
            exclude=exclude,
        )
        assert decision.rep_id is not None
        counts[decision.rep_id] += 1
        got[lead] = decision.rep_id
        return decision.rep_id

    for lead in range(1, 6):
        route(lead)
    behind = min(counts, key=lambda rep: counts[rep])
    assert sorted(counts.values()) == [1, 2, 2]
    theirs = next(lead for lead, rep in got.items() if rep == behind)
    assert route(theirs, exclude=frozenset({behind})) != behind
    assert route(6) == behind, counts


def test_hand_computed_deadlines_match_the_sla_clock() -> None:
    """A few deadlines by hand, so that the recomputation above is not circular."""
    tokyo, berlin, new_york = SCHEDULES["tokyo"], SCHEDULES["berlin"], SCHEDULES["newyork"]

    def at(day: int, hour: int, minute: int = 0) -> datetime:
        return datetime(2026, 3, day, hour, minute, tzinfo=UTC)

    # Tokyo rep assigned Friday 16:50 JST (07:50 UTC): 10 minutes on Friday, the other
    # 10 from Monday 09:00 JST (Sunday 24:00 UTC).
    assert deadline(tokyo, at(6, 7, 50), 20, business_hours=True) == at(9, 0, 10)
    # Berlin rep assigned Wednesday 16:45 CET (15:45 UTC): 15 minutes end at 17:00
    # exactly (the interval's end, not the next morning); 30 on Thursday 09:15 CET.
    assert deadline(berlin, at(4, 15, 45), 15, business_hours=True) == at(4, 16)
    assert deadline(berlin, at(4, 15, 45), 30, business_hours=True) == at(5, 8, 15)
    # New York rep assigned Friday 16:40 EST (21:40 UTC): 20 minutes end at 17:00 EST;
    # 30 end Monday 09:10 EDT, 13:10 UTC (the clocks changed on Sunday).
    assert deadline(new_york, at(6, 21, 40), 20, business_hours=True) == at(6, 22)
    assert deadline(new_york, at(6, 21, 40), 30, business_hours=True) == at(9, 13, 10)
