"""Eight processes route and run timers over 5,000 MQLs on one PostgreSQL database.

Every process has its own engine and context (the real system clock), as eight API and
worker processes would. Each one sends the hand-raises of its share of 5,000 captured
leads in batches, and on top of that hand-raises for leads of its neighbour's share,
in the same batches the neighbour sends them: half are the very same event delivered
twice (same idempotency key), half a second hand-raise from another channel. Every
fourth batch (and after its last), each process runs ``worker.tick`` (SLA steps, the
queue, the outbox) against the one real SMTP server of the test process, and the reps
of some of its leads accept three handoffs and turn one down, which frees a place, so
the queue moves while other processes are routing. After all processes finish, the
test process ticks until the outbox is drained and no SLA step is due. (Not a tick per
batch: while the pool is full, each queue pass walks 200 queued handoffs, one
transaction each, which on two cores slows the routing everyone waits for.)

Capacity binds on purpose: 16 reps may hold 10 open handoffs each, so most MQLs wait
in the queue. That makes "never over capacity" a real check (every routing decision
and every queue pass races for the same few free places), and it keeps the number of
emails, each rendered with the whole handoff packet, within what two cores can send
in a test. The ladder (remind after 1.2 s, then the manager after 2.4 s) runs on the
real clock, so steps fall due while the processes are still busy.

Every caller is authenticated as it would be over HTTP: each process turns API tokens
into principals itself (a marketing integration's token for the hand-raises, each rep's
own token for their verdicts), so the verdicts go through the object-level check of a
rep acting on their own handoff, and the events keep the rep user's id.

PostgreSQL only: SQLite has one writer at a time, so there is nothing to race.
"""

from __future__ import annotations

import io
import multiprocessing
import queue
import time
import traceback
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from tests.conftest import token_for
from tests.milestone_checks import assert_milestones_equal_a_rebuild
from tests.notify_servers import smtp_server

from baton.config import Settings
from baton.domain.access import Principal, operator
from baton.domain.errors import Conflict
from baton.domain.reps import RepCreate
from baton.notify.email import SmtpConfig
from baton.services import worker
from baton.services.activities import ingest_activities
from baton.services.context import Context, open_context
from baton.services.contracts import activate_contract, approve_contract, create_contract
from baton.services.handoffs import accept_handoff, reject_handoff
from baton.services.imports import import_leads
from baton.services.reps import create_rep
from baton.services.users import token_principal
from baton.store.tables import handoff_events, handoffs, leads, outbox, reps, transitions, users

pytestmark = pytest.mark.postgres

PROCESSES = 8
MQLS = 5000
BATCH = 50
REPS = 16
CAPACITY = 10
RACE_EVERY = 5
"""Every 5th lead of a share is also sent by the process before it."""
TICK_EVERY = 4
"""Batches between two ticks of a process's worker."""
VERDICT_EVERY = 4
"""Batches between two rounds of verdicts (accepts and a rejection)."""
JOIN_TIMEOUT = 900.0

CONTRACT = """
schema_version: 1
name: Eight processes
mql:
  threshold: 1000              # only a hand-raise makes an MQL
  hand_raise: [demo_request, contact_sales]
routing:
  account_matching: false
  rules:
    - name: Everyone
      pool: {tag: floor}
      strategy: round_robin
sla:
  business_hours: false        # the reps work around the clock anyway
  accept_within_minutes: 0.03
  first_touch_within_minutes: 60
  ladder:
    - {at_minutes: 0.02, action: remind}          # 1.2 s
    - {at_minutes: 0.04, action: notify_manager}  # 2.4 s; nobody has a manager
rejection_reasons:
  - {code: not_ready, label: Not ready yet, outcome: recycle, marketing_credit: true}
"""

LADDER = (0.02, 0.04)
"""The ladder's minutes, by step index."""
STEP_KINDS = ("reminded", "manager_notified", "manager_missing", "reassign_skipped")
INTAKE = "intake"
"""The key, among the tokens, of the integration that sends the hand-raises."""


def lead_email(number: int) -> str:
    return f"person{number}@firm{number % 211}.example.com"


def share(process: int) -> list[int]:
    """The leads a process owns, in the order it sends them."""
    return list(range(process, MQLS, PROCESSES))


@dataclass
class Outcome:
    """What one process saw (sent back to the test process)."""

    process: int
    mqls: list[int] = field(default_factory=list)
    stored: int = 0
    duplicates: int = 0
    row_errors: int = 0
    accepted: int = 0
    rejected: int = 0
    lost_verdicts: int = 0
    ticks: int = 0
    sent: int = 0
    max_open: int = 0
    seconds: float = 0.0
    error: str | None = None


def _events(process: int, occurred_at: str) -> list[list[dict[str, Any]]]:
    """The process's batches: its own hand-raises, plus every RACE_EVERY-th lead of the
    next process's share at the same position (so both send it at about the same
    time): alternately the same event again and a second hand-raise."""
    neighbour = share((process + 1) % PROCESSES)
    rows: list[dict[str, Any]] = []
    for position, number in enumerate(share(process)):
        rows.append(
            {
                "email": lead_email(number),
                "type": "demo_request",
                "occurred_at": occurred_at,
                "idempotency_key": f"demo-{number}",
            }
        )
        if position % RACE_EVERY == 0 and position < len(neighbour):
            other = neighbour[position]
            same_event = (position // RACE_EVERY) % 2 == 0
            rows.append(
                {
                    "email": lead_email(other),
                    "type": "demo_request" if same_event else "contact_sales",
                    "occurred_at": occurred_at,
                    "idempotency_key": f"demo-{other}" if same_event else f"call-{other}",
                }
            )
    return [rows[i : i + BATCH] for i in range(0, len(rows), BATCH)]


def _max_open(ctx: Context) -> int:
    with ctx.read() as connection:
        loads = connection.execute(
            select(func.count())
            .select_from(handoffs)
            .where(handoffs.c.status.in_(("assigned", "accepted")))
            .group_by(handoffs.c.rep_id)
        ).all()
    return max((int(n) for (n,) in loads), default=0)


def _verdicts(
    ctx: Context, process: int, outcome: Outcome, principals: dict[str, Principal]
) -> None:
    """The reps of some of the process's own leads decide, each as themselves: three
    accepted, one turned down (which frees a place, so the queue moves while the others
    route)."""
    mine = {lead_email(n) for n in share(process)}
    with ctx.read() as connection:
        rows = connection.execute(
            select(handoffs.c.id, reps.c.email, leads.c.email)
            .select_from(handoffs.join(reps).join(leads, leads.c.id == handoffs.c.lead_id))
            .where(handoffs.c.status == "assigned")
            .order_by(handoffs.c.id)
        ).all()
    own = [(handoff_id, rep) for handoff_id, rep, email in rows if email in mine]
    for position, (handoff_id, rep_email) in enumerate(own[:4]):
        try:
            if position < 3:
                accept_handoff(ctx, handoff_id, actor=principals[rep_email])
                outcome.accepted += 1
            else:
                reject_handoff(ctx, handoff_id, code="not_ready", actor=principals[rep_email])
                outcome.rejected += 1
        except Conflict:  # the ladder or a drain got there first: not an error
            outcome.lost_verdicts += 1


def _authenticate(ctx: Context, tokens: dict[str, str]) -> dict[str, Principal]:
    """Each token as the API would see it (verified in this process)."""
    principals: dict[str, Principal] = {}
    for name, token in tokens.items():
        principal = token_principal(ctx, token)
        assert principal is not None, f"the token of {name} does not authenticate"
        principals[name] = principal
    return principals


def run_process(
    process: int,
    url: str,
    smtp_port: int,
    occurred_at: str,
    tokens: dict[str, str],
    barrier: Any,
    results: Any,
) -> None:
    """One of the eight: its own engine, context and (system) clock."""
    outcome = Outcome(process)
    ctx: Context | None = None
    try:
        ctx = open_context(Settings(database_url=url, env="test"), migrate=False)
        smtp = SmtpConfig(host="127.0.0.1", port=smtp_port)
        batches = _events(process, occurred_at)
        principals = _authenticate(ctx, tokens)
        with httpx.Client(timeout=30) as client:
            barrier.wait(timeout=120)
            started = time.perf_counter()
            for number, batch in enumerate(batches):
                report = ingest_activities(ctx, batch, actor=principals[INTAKE])
                outcome.mqls.extend(report.mql)
                outcome.stored += report.stored
                outcome.duplicates += report.duplicates
                outcome.row_errors += len(report.errors)
                if number % TICK_EVERY == TICK_EVERY - 1 or number == len(batches) - 1:
                    tick = worker.tick(ctx, smtp=smtp, client=client)
                    outcome.ticks += 1
                    outcome.sent += tick.sent
                if number % VERDICT_EVERY == VERDICT_EVERY - 1:
                    _verdicts(ctx, process, outcome, principals)
                outcome.max_open = max(outcome.max_open, _max_open(ctx))
            outcome.seconds = time.perf_counter() - started
    except BaseException:  # every failure goes back to the test, with its traceback
        outcome.error = traceback.format_exc()
    finally:
        if ctx is not None:
            ctx.engine.dispose()
        results.put(outcome)


@pytest.fixture
def database(postgres_server: Any) -> Iterator[str]:
    """A PostgreSQL database of this test's own (the processes connect to it by URL)."""
    name = postgres_server.create_database()
    try:
        yield postgres_server.url_for(name)
    finally:
        postgres_server.drop_database(name)


def _set_up(ctx: Context) -> dict[str, str]:
    """The floor, the contract and the leads; returns the API tokens of the callers:
    each rep's own (by their email) and the intake integration's."""
    always = {day: ["00:00-24:00"] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
    for n in range(REPS):
        create_rep(
            ctx,
            RepCreate(
                email=f"rep{n}@sales.example.com",
                name=f"Rep {n}",
                timezone=("America/New_York", "Europe/Berlin", "Asia/Tokyo")[n % 3],
                working_hours=always,
                capacity=CAPACITY,
                tags=["floor"],
            ),
            actor=operator("ops"),
        )
    version = create_contract(ctx, CONTRACT, actor=operator("maria")).version
    approve_contract(ctx, version, role="marketing", actor=operator("maria"))
    approve_contract(ctx, version, role="sales", actor=operator("sam"))
    activate_contract(ctx, version, actor=operator("sam"))
    csv = "email,company,country\n" + "".join(
        f"{lead_email(n)},Firm {n % 211},US\n" for n in range(MQLS)
    )
    report = import_leads(ctx, io.StringIO(csv), actor=operator("marketing"))
    assert not report.errors
    with ctx.read() as connection:
        assert connection.execute(select(func.count()).select_from(leads)).scalar_one() == MQLS
    tokens = {
        f"rep{n}@sales.example.com": token_for(
            ctx,
            "rep",
            rep_email=f"rep{n}@sales.example.com",
            scopes=("handoffs:read", "handoffs:verdict"),
        )
        for n in range(REPS)
    }
    tokens[INTAKE] = token_for(ctx, "marketing", scopes=("activities:write",))
    return tokens


def _drain(ctx: Context, smtp: SmtpConfig) -> int:
    """Tick until nothing is left to send and no SLA step is still to come."""
    ticks = 0
    deadline = time.monotonic() + 300
    with httpx.Client(timeout=30) as client:
        while time.monotonic() < deadline:
            report = worker.tick(ctx, smtp=smtp, client=client)
            ticks += 1
            with ctx.read() as connection:
                pending = connection.execute(
                    select(func.count()).select_from(outbox).where(outbox.c.status == "pending")
                ).scalar_one()
                timers = connection.execute(
                    select(func.count())
                    .select_from(handoffs)
                    .where(
                        handoffs.c.status.in_(("assigned", "accepted")),
                        handoffs.c.next_step_at.is_not(None),
                    )
                ).scalar_one()
            if not report.busy and not pending and not timers:
                return ticks
            if not report.busy:
                time.sleep(0.2)
    raise AssertionError("the outbox did not drain within 5 minutes")


def test_eight_processes_route_and_time_5000_mqls(database: str) -> None:
    ctx = open_context(Settings(database_url=database, env="test"))
    try:
        tokens = _set_up(ctx)
        # Every hand-raise happened before the race: a late copy arriving after its
        # lead was turned down (recycled) is then history, not a new hand-raise.
        occurred_at = datetime.now(UTC).isoformat()
        spawn = multiprocessing.get_context("spawn")
        barrier = spawn.Barrier(PROCESSES)
        results = spawn.Queue()
        with smtp_server() as server:
            smtp = SmtpConfig(host=server.host, port=server.port)
            started = time.perf_counter()
            processes = [
                spawn.Process(
                    target=run_process,
                    args=(p, database, server.port, occurred_at, tokens, barrier, results),
                    name=f"baton-{p}",
                )
                for p in range(PROCESSES)
            ]
            for process in processes:
                process.start()
            outcomes: list[Outcome] = []
            give_up = time.monotonic() + JOIN_TIMEOUT
            try:
                while len(outcomes) < PROCESSES and time.monotonic() < give_up:
                    try:
                        outcomes.append(results.get(timeout=2))
                    except queue.Empty:
                        if all(not p.is_alive() for p in processes) and results.empty():
                            break
            finally:
                for process in processes:
                    process.join(timeout=30)
                    if process.is_alive():
                        process.kill()
            racing = time.perf_counter() - started
            drain_ticks = _drain(ctx, smtp)
            total = time.perf_counter() - started
            messages = list(server.messages)
        _check(ctx, outcomes, messages)
        # Verdicts, workers and routing raced on the same chains and leads: what they
        # kept for the reports still equals a recomputation.
        assert_milestones_equal_a_rebuild(ctx)
        print(
            f"\n{PROCESSES} processes: {racing:.1f} s racing, {total:.1f} s with the drain "
            f"({drain_ticks} ticks); per process "
            + ", ".join(f"{o.seconds:.0f}s" for o in sorted(outcomes, key=lambda o: o.process))
            + f"; emails {len(messages)}; accepted {sum(o.accepted for o in outcomes)}, "
            f"rejected {sum(o.rejected for o in outcomes)}, "
            f"verdicts too late {sum(o.lost_verdicts for o in outcomes)}"
        )
    finally:
        ctx.engine.dispose()


def _check(ctx: Context, outcomes: list[Outcome], messages: list[Any]) -> None:
    errors = [o.error for o in outcomes if o.error]
    assert not errors, "\n".join(e for e in errors if e)
    assert len(outcomes) == PROCESSES
    assert sum(o.row_errors for o in outcomes) == 0

    with ctx.read() as connection:
        rows = [dict(r) for r in connection.execute(select(handoffs)).mappings()]
        events = [dict(r) for r in connection.execute(select(handoff_events)).mappings()]
        rep_of = dict(connection.execute(select(reps.c.id, reps.c.email)).all())
        user_of = dict(connection.execute(select(users.c.email, users.c.id)).all())
        capacity_of = dict(connection.execute(select(reps.c.id, reps.c.capacity)).all())
        to_mql = Counter(
            lead_id
            for (lead_id,) in connection.execute(
                select(transitions.c.lead_id).where(transitions.c.to_stage == "mql")
            )
        )
        unsent = connection.execute(
            select(outbox.c.status, func.count())
            .where(outbox.c.status != "sent")
            .group_by(outbox.c.status)
        ).all()
        sent_rows = Counter(
            (topic, handoff_id)
            for topic, handoff_id in connection.execute(
                select(outbox.c.topic, outbox.c.handoff_id).where(
                    outbox.c.channel == "email", outbox.c.status == "sent"
                )
            )
        )

    # Every lead's MQL happened exactly once, however many processes sent it.
    reported = Counter(lead for o in outcomes for lead in o.mqls)
    assert len(reported) == MQLS and set(reported.values()) == {1}
    assert len(to_mql) == MQLS and set(to_mql.values()) == {1}
    keys = Counter(
        row["idempotency_key"]
        for p in range(PROCESSES)
        for batch in _events(p, "2026-01-01T00:00:00+00:00")
        for row in batch
    )
    twice = sum(1 for n in keys.values() if n == 2)
    assert twice > 100 and set(keys.values()) == {1, 2}
    assert sum(o.duplicates for o in outcomes) == twice, "an event sent twice is stored once"
    assert sum(o.stored for o in outcomes) == len(keys)

    # Exactly one handoff per MQL: no lead with two open handoffs, none with two at all.
    per_lead = Counter(r["lead_id"] for r in rows)
    assert len(per_lead) == MQLS and set(per_lead.values()) == {1}
    open_rows = [r for r in rows if r["status"] in ("queued", "assigned", "accepted")]
    assert len({r["lead_id"] for r in open_rows}) == len(open_rows)

    # No handoff assigned to two reps: one assignment each, to the rep it names.
    assignments: dict[int, list[str]] = defaultdict(list)
    for event in events:
        if event["kind"] == "assigned":
            assignments[event["handoff_id"]].append(event["detail"]["rep"])
    assigned = [r for r in rows if r["assigned_at"] is not None]
    assert {h: len(v) for h, v in assignments.items() if len(v) != 1} == {}
    assert set(assignments) == {r["id"] for r in assigned}
    for r in assigned:
        assert assignments[r["id"]] == [rep_of[r["rep_id"]]]
    for r in rows:
        assert (r["rep_id"] is None) == (r["assigned_at"] is None) == (r["status"] == "queued")

    # No rep over capacity: at every point a process looked, and at the end.
    assert max(o.max_open for o in outcomes) <= CAPACITY
    loads = Counter(r["rep_id"] for r in rows if r["status"] in ("assigned", "accepted"))
    assert all(loads[rep] <= capacity_of[rep] for rep in loads), loads
    if any(r["status"] == "queued" for r in rows):
        assert all(loads[rep] == capacity_of[rep] for rep in capacity_of), (
            "a handoff still waits although a rep has room",
            loads,
        )

    # SLA steps: none twice for one handoff, none before it was due, and every handoff
    # still waiting for its rep at the end went through the whole ladder.
    steps = Counter(
        (e["handoff_id"], e["detail"]["step"]) for e in events if e["kind"] in STEP_KINDS
    )
    assert {k: n for k, n in steps.items() if n > 1} == {}
    by_id = {r["id"]: r for r in rows}
    for e in events:
        if e["kind"] in STEP_KINDS:
            handoff = by_id[e["handoff_id"]]
            due = handoff["assigned_at"] + timedelta(minutes=LADDER[e["detail"]["step"]])
            assert datetime.fromisoformat(e["detail"]["due_at"]) == due
            assert e["occurred_at"] >= due, (e, due)
            settled = handoff["accepted_at"] or handoff["closed_at"]
            assert settled is None or settled > due, (e, handoff)
    for r in rows:
        if r["status"] == "assigned":
            assert {step for (h, step) in steps if h == r["id"]} == {0, 1}, r
    reminded = {e["handoff_id"] for e in events if e["kind"] == "reminded"}

    # Every verdict was given by the handoff's own rep, as that rep's user.
    verdicts = [e for e in events if e["kind"] in ("accepted", "rejected")]
    assert len(verdicts) == sum(o.accepted + o.rejected for o in outcomes) > 0
    for e in verdicts:
        rep_email = rep_of[by_id[e["handoff_id"]]["rep_id"]]
        assert e["actor_user_id"] == user_of[rep_email], e
        assert e["actor"].startswith(f"{rep_email} (token "), e

    # The outbox is drained and every email arrived exactly once.
    assert unsent == []
    ids = Counter(m["Message-ID"] for m in messages)
    assert {i: n for i, n in ids.items() if n > 1} == {}, "duplicate Message-IDs"
    assert len(messages) == sum(sent_rows.values())
    by_topic: dict[str, Counter[int]] = defaultdict(Counter)
    for message in messages:
        by_topic[message["X-Baton-Topic"]][int(message["X-Baton-Handoff"])] += 1
    assigned_mail = by_topic["handoff.assigned"]
    assert set(assigned_mail) == {r["id"] for r in assigned}
    assert set(assigned_mail.values()) == {1}, "one handoff.assigned email per handoff"
    for message in messages:
        if message["X-Baton-Topic"] == "handoff.assigned":
            handoff = next(r for r in assigned if r["id"] == int(message["X-Baton-Handoff"]))
            assert message["To"] == rep_of[handoff["rep_id"]]
    assert set(by_topic["sla.remind"]) == reminded
    assert set(by_topic["sla.remind"].values()) <= {1}
