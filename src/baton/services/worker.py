"""The worker: run due SLA steps, assign queued handoffs, deliver the outbox.

One loop, :class:`Worker`, is what ``baton worker`` and ``baton serve --with-worker``
both run. It keeps seven **lanes**, each in a thread of its own, so none waits for
another: *timers* (due SLA steps, then the queue, in small batches, alternating),
*intake fetch* (intake items whose webhook carried only ids, read from Meta or HubSpot:
:mod:`baton.services.intake_fetch`), *nurture* (due nurture steps written to the outbox,
throttled: :mod:`baton.services.nurture_send`), *webhooks*, *email* and *chat* (Slack and Teams;
one :class:`~baton.services.delivery.Courier` each), *duplicates* (new leads compared
with older ones and possible duplicates flagged: :mod:`baton.services.duplicate_checks`,
a batch per read, written in short parts, back to back while the queue has work, so a backlog never
makes it late), with ``BATON_RETRAIN_MODEL_DAYS`` *model retraining* (a draft
scoring model like the active one, checked hourly:
:func:`baton.services.models.retrain_if_due`), and on PostgreSQL *statistics*
(:class:`PlannerStatistics`: ``ANALYZE`` of a busy table that has doubled since its
statistics, before autovacuum comes). A mail server that is down or
slow therefore never delays an SLA step, a queued handoff's assignment, a fetch, a
webhook or a chat message. One more thread, the *heartbeat* (:class:`Heartbeat`),
does no work of its own: it writes the worker's row of ``worker_heartbeats`` every
10 s, which ``baton status`` reads, and warns once a minute at most of a queue behind.

A lane never dies: any error in a pass (the database restarting or its connection
killed, a bug) is logged and the lane backs off (1 s, doubling to 30 s) and carries
on; the first pass that works again is logged too. Stopping is cooperative (a
``threading.Event``): each lane ends after its current pass.

:func:`tick` is one synchronous pass of every lane (steps, queue, then the outbox
until nothing is due), for ``baton worker --once``, tests and simulations with a
manual clock.

Any number of workers may run against one PostgreSQL database. Due handoffs are
claimed one per transaction with ``FOR UPDATE SKIP LOCKED``, so two workers never act
on the same handoff, and a step is recorded in the transaction that acts on it, so no
step runs twice. Before each step the handoff's state is read again, and a late pass
does what passes on time would have done: after a reassignment closed the handoff,
only the steps due at that same moment still run, never a later one.
Outbox rows are leased and fenced (see :mod:`baton.services.delivery`).

The worker acts on no one's behalf: every step it records names
:data:`~baton.services.routing.SYSTEM` (``system("baton")``), which reaches every
handoff, so a rep's notification carries the same packet the rep reads in the API.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
from sqlalchemy import and_, bindparam, or_, select, update
from sqlalchemy.engine import Connection, RowMapping
from sqlalchemy.exc import DBAPIError

from baton.domain.clock import Clock
from baton.domain.contract import HandoffContract
from baton.domain.sla import deadlines_from, ladder, next_step
from baton.domain.status import (
    DUPLICATES_LANE,
    HEARTBEAT_SECONDS,
    INTAKE_FETCH_LANE,
    NURTURE_LANE,
    PASS_LANES,
    TIMERS_LANE,
    WARN_EVERY_SECONDS,
    LaneBeat,
    age_text,
    delivery_lane,
    duplicates_allowance,
)
from baton.notify.email import SmtpConfig
from baton.services.chat import email_wanted, enqueue_chat
from baton.services.context import Context
from baton.services.contract_rules import active_contract_in, rules_of
from baton.services.delivery import CHANNELS, Channel, Courier
from baton.services.duplicate_checks import BATCH as DUPLICATE_BATCH
from baton.services.duplicate_checks import compare_batch
from baton.services.intake_fetch import Fetcher
from baton.services.outbox import enqueue_email, publish
from baton.services.routing import SYSTEM, log_event, reassign_in, rep_of, route_queued_in
from baton.services.status import (
    other_running_workers,
    queue_statuses,
    record_heartbeat,
    record_one_pass,
    start_heartbeat,
    stop_heartbeat,
)
from baton.store.statistics import GROWING_TABLES, analysable, analyze_table, grown_tables
from baton.store.tables import contracts, handoffs, leads

log = logging.getLogger("baton.worker")

OPEN = ("assigned", "accepted")
"""Handoff statuses the SLA ladder applies to."""
BATCH = 50
"""Handoffs the timer lane handles per pass of each kind (steps, then the queue)."""
BACKOFF_FIRST = 1.0
BACKOFF_MOST = 30.0
RETRAIN_IDLE_SECONDS = 3600.0
"""How often the retraining lane checks whether a retraining is due."""


@dataclass
class TickReport:
    """What one pass of the worker did."""

    steps: int = 0
    assigned: int = 0
    sent: int = 0
    failed: int = 0
    fetched: int = 0
    """Intake items read from their platform (done, failed or rescheduled)."""
    nurtured: int = 0
    """Nurture enrollments handled: a step planned or skipped, or the enrollment ended."""
    retrained: int = 0
    """Draft scoring models trained by the scheduled retraining (never activated)."""
    checked: int = 0
    """New leads compared with older ones for possible duplicates (and flagged)."""
    analyzed: int = 0
    """Tables whose PostgreSQL statistics were refreshed (they had doubled since)."""
    drained: bool = False
    """The pass emptied its queue with a partial batch: the lane waits its idle time
    before the next, so work arriving piece by piece is taken in batches."""

    @property
    def busy(self) -> bool:
        return bool(
            self.steps
            or self.assigned
            or self.sent
            or self.failed
            or self.fetched
            or self.nurtured
            or self.retrained
            or self.checked
            or self.analyzed
        )


def _contract_of(connection: Connection, version: int | None) -> HandoffContract | None:
    if version is not None:
        row = connection.execute(
            select(contracts.c.version, contracts.c.created_at, contracts.c.spec).where(
                contracts.c.version == version
            )
        ).first()
        if row is not None:
            return rules_of(row[2])
    active = active_contract_in(connection, share_lock=False)
    return active[1] if active else None


def _skip_locked(connection: Connection, query: Any) -> Any:
    return query.with_for_update(skip_locked=True)


def _claim_handoff(
    connection: Connection,
    *conditions: Any,
    order: bool = False,
    params: dict[str, Any] | None = None,
) -> tuple[RowMapping | None, bool]:
    """The first handoff meeting ``conditions``, locked, then its lead, both skipping
    rows another transaction holds: the worker never waits for a lead while holding a
    handoff (verdicts and stage changes lock the lead first), so it cannot deadlock with
    them. Returns the handoff (None when there is none) and whether its lead is locked
    too (False: another transaction has it; leave that handoff for a later pass)."""
    query = select(handoffs).where(*conditions)
    if order:
        query = query.order_by(handoffs.c.next_step_at, handoffs.c.id)
    row = connection.execute(_skip_locked(connection, query.limit(1)), params).mappings().first()
    if row is None:
        return None, False
    lead = connection.execute(
        _skip_locked(connection, select(leads.c.id).where(leads.c.id == row["lead_id"]))
    ).first()
    return row, lead is not None


_STEP_IS_DUE = (
    handoffs.c.status.in_(OPEN),
    handoffs.c.next_step_at <= bindparam("now", type_=handoffs.c.next_step_at.type),
)
"""An open handoff with an SLA step due at the bound ``now``: one definition for
:func:`run_due_steps`' claim and for :func:`_steps_due`, which must agree."""
_STEP_DUE = select(handoffs.c.id).where(*_STEP_IS_DUE).limit(1)


def _steps_due(ctx: Context, now: datetime) -> bool:
    """Whether any open handoff has an SLA step due at ``now``: one prebuilt read, so
    that the timer lane's idle pass (five a second) takes no write transaction (on
    SQLite the database's single write turn)."""
    with ctx.read() as connection:
        return connection.execute(_STEP_DUE, {"now": now}).first() is not None


def run_due_steps(ctx: Context, *, limit: int = 200) -> int:
    """Act on every SLA step that is due (up to ``limit`` handoffs); returns how many
    handoffs were handled."""
    handled = 0
    busy: set[int] = set()
    if not _steps_due(ctx, ctx.clock.now()):
        return 0
    while handled < limit:
        now = ctx.clock.now()
        with ctx.write() as connection:
            row, claimed = _claim_handoff(
                connection,
                *_STEP_IS_DUE,
                handoffs.c.id.not_in(busy),
                order=True,
                params={"now": now},
            )
            if row is None:
                break
            if not claimed:
                busy.add(int(row["id"]))
                continue
            _run_steps(connection, dict(row), now=now)
        handled += 1
    return handled


def _run_steps(connection: Connection, handoff: dict[str, Any], *, now: datetime) -> None:
    contract = _contract_of(connection, handoff["contract_version"])
    rep = rep_of(connection, handoff["rep_id"])
    if contract is None or rep is None:
        connection.execute(
            update(handoffs).where(handoffs.c.id == handoff["id"]).values(next_step_at=None)
        )
        return
    sla = contract.sla
    steps = ladder(sla)
    due = deadlines_from(rep.schedule, handoff["assigned_at"], sla)
    accepted = handoff["accepted_at"] is not None
    touched = handoff["first_touch_at"] is not None
    index = int(handoff["next_step"] or 0)
    moved_on = False
    closed_by: datetime | None = None
    while True:
        step = next_step(sla, index, accepted=accepted, touched=touched, due_at=due)
        if step is None or step.due_at > now:
            break
        if closed_by is None and not _still_open(connection, handoff["id"]):
            return  # closed meanwhile (a verdict, a manager's reassignment): no step
        if closed_by is not None and step.due_at > closed_by:
            # A late pass does what passes on time would have done: once a step (a
            # reassignment) closed the handoff, only the steps due at that same moment
            # (the manager told with it) still apply; later ones belong to a handoff
            # that no longer exists, and the next one of the chain has its own ladder.
            return
        index = step.index + 1
        detail = {"step": step.index, "action": step.step.action, "due_at": step.due_at.isoformat()}
        if step.step.action == "remind":
            if email_wanted(connection, rep.id):
                enqueue_email(
                    connection, topic="sla.remind", to=rep.email, now=now, handoff_id=handoff["id"]
                )
            enqueue_chat(
                connection,
                topic="sla.remind",
                rep_id=rep.id,
                handoff_id=handoff["id"],
                now=now,
                audience="rep",
            )
            log_event(connection, handoff["id"], "reminded", actor=SYSTEM, now=now, **detail)
        elif step.step.action == "notify_manager":
            why = "not accepted in time" if step.step.until == "accepted" else "not touched in time"
            enqueue_chat(
                connection,
                topic="sla.manager",
                rep_id=rep.id,
                handoff_id=handoff["id"],
                now=now,
                audience="team",
                data={"why": f"{rep.name}: {why}"},
            )
            if rep.manager_email:
                enqueue_email(
                    connection,
                    topic="sla.manager",
                    to=rep.manager_email,
                    now=now,
                    handoff_id=handoff["id"],
                    data={"why": f"{rep.email}: {why}"},
                )
                log_event(
                    connection,
                    handoff["id"],
                    "manager_notified",
                    actor=SYSTEM,
                    now=now,
                    manager=rep.manager_email,
                    why=why,
                    **detail,
                )
            else:
                log_event(
                    connection,
                    handoff["id"],
                    "manager_missing",
                    actor=SYSTEM,
                    now=now,
                    why=why,
                    **detail,
                )
        elif not moved_on:
            if int(handoff["reassignments"]) >= sla.max_reassignments:
                log_event(
                    connection,
                    handoff["id"],
                    "reassign_skipped",
                    actor=SYSTEM,
                    now=now,
                    why=f"already reassigned {handoff['reassignments']} times",
                    **detail,
                )
            else:
                new_id = reassign_in(
                    connection,
                    handoff,
                    contract,
                    now=now,
                    actor=SYSTEM,
                    why=f"not accepted within {step.step.at_minutes:g} minutes",
                )
                moved_on = new_id is not None
                if moved_on:
                    closed_by = step.due_at
        publish(
            connection,
            "handoff.escalated",
            {"handoff_id": handoff["id"], "lead_id": handoff["lead_id"], **detail},
            now=now,
            handoff_id=handoff["id"],
        )
    if moved_on:
        return
    following = next_step(sla, index, accepted=accepted, touched=touched, due_at=due)
    connection.execute(
        update(handoffs)
        .where(handoffs.c.id == handoff["id"])
        .values(
            next_step=following.index if following else len(steps),
            next_step_at=following.due_at if following else None,
        )
    )


def _still_open(connection: Connection, handoff_id: int) -> bool:
    status = connection.execute(
        select(handoffs.c.status).where(handoffs.c.id == handoff_id)
    ).scalar_one_or_none()
    return status in OPEN


def assign_queued(ctx: Context, *, limit: int = 200) -> int:
    """Route waiting handoffs to whoever has become available; returns how many got
    a rep. Oldest first, so the queue is fair; once a pool has nobody, its later
    handoffs are not tried again in this pass, and the pass reads on past them (other
    pools' handoffs behind a long queue of a full pool still get their turn). At most
    ``limit`` decisions per pass."""
    pool = handoffs.c.routing["pool"].as_string()
    assigned = tried = 0
    stuck: set[str] = set()
    after: tuple[datetime, int] | None = None
    while tried < limit:
        query = select(handoffs.c.id, handoffs.c.routing, handoffs.c.created_at).where(
            handoffs.c.status == "queued"
        )
        if stuck:
            query = query.where(or_(pool.is_(None), pool.not_in(sorted(stuck))))
        if after is not None:
            query = query.where(
                or_(
                    handoffs.c.created_at > after[0],
                    and_(handoffs.c.created_at == after[0], handoffs.c.id > after[1]),
                )
            )
        with ctx.read() as connection:
            waiting = connection.execute(
                query.order_by(handoffs.c.created_at, handoffs.c.id).limit(limit - tried)
            ).all()
        if not waiting:
            break
        for handoff_id, routing, created_at in waiting:
            after = (created_at, handoff_id)
            if str((routing or {}).get("pool")) in stuck:
                continue
            tried += 1
            now = ctx.clock.now()
            with ctx.write() as connection:
                row, claimed = _claim_handoff(
                    connection, handoffs.c.id == handoff_id, handoffs.c.status == "queued"
                )
                if row is None or not claimed:
                    continue
                # By the contract active now (a queue outlives contract changes); the pool
                # that had nobody is the one the new decision chose.
                decision = route_queued_in(connection, row, now=now, actor=SYSTEM)
                if decision.rep_id is not None:
                    assigned += 1
                else:
                    stuck.add(str(decision.pool_key))
    return assigned


def one_pass(
    ctx: Context, *, smtp: SmtpConfig | None = None, client: httpx.Client | None = None
) -> TickReport:
    """:func:`tick`, recorded as a one-off pass (``baton worker --once``, from a script
    or cron) in the worker heartbeats, so ``baton status`` says when work last ran
    (:func:`~baton.services.status.record_one_pass`). A pass that fails is not recorded:
    its error is the caller's. The record is bookkeeping: when it cannot be written (the
    database busy or gone by then) the pass, whose work is committed, still succeeds,
    with a warning."""
    began = time.monotonic()
    report = tick(ctx, smtp=smtp, client=client)
    at = ctx.clock.now()
    # Model retraining is left out: tick() logs its failure and goes on.
    names = [*PASS_LANES, *(delivery_lane(channel) for channel in CHANNELS)]
    try:
        record_one_pass(
            ctx,
            host=socket.gethostname(),
            pid=os.getpid(),
            took_seconds=time.monotonic() - began,
            lanes=[LaneBeat(name, at, 0) for name in names],
        )
    except Exception:
        log.warning("the pass's heartbeat could not be recorded", exc_info=True)
    return report


def tick(
    ctx: Context, *, smtp: SmtpConfig | None = None, client: httpx.Client | None = None
) -> TickReport:
    """One pass of everything: intake items awaiting a fetch, SLA steps, then the
    queue, then the outbox until nothing is due (so the emails those steps wrote go
    out in the same pass). A destination found unreachable is paused for the rest of
    the pass."""
    report = TickReport()
    fetcher = Fetcher(ctx, client=client)
    try:
        report.fetched = fetch_intake(fetcher).fetched
    finally:
        fetcher.close()
    report.steps = run_due_steps(ctx)
    report.assigned = assign_queued(ctx)
    report.checked = check_duplicates(ctx).checked  # bounded: intake may never stop
    if ctx.settings.retrain_model_days:
        try:
            report.retrained = retrain_models(ctx).retrained
        except Exception:  # a failed retraining never stops the pass
            log.exception("model retraining: the pass failed")
    while True:  # every due nurture step the throttle lets through
        nurtured = send_nurture(ctx).nurtured
        report.nurtured += nurtured
        if not nurtured:
            break
    couriers = [Courier(ctx, channel, smtp=smtp, client=client) for channel in CHANNELS]
    try:
        while True:
            moved = 0
            for courier in couriers:
                sent, failed = courier.deliver()
                report.sent += sent
                report.failed += failed
                moved += sent + failed
            if not moved:
                break
    finally:
        for courier in couriers:
            courier.close()
    return report


def run_timers(ctx: Context, *, limit: int = BATCH) -> TickReport:
    """The timer lane's pass: a batch of due SLA steps, then a batch of the queue."""
    return TickReport(
        steps=run_due_steps(ctx, limit=limit), assigned=assign_queued(ctx, limit=limit)
    )


DUPLICATE_BATCHES = 20
"""Batches of the duplicate lane per pass at most (then the lane starts a new pass at
once while work remains), so one pass never holds the lane for long."""


def check_duplicates(ctx: Context, *, batches: int = DUPLICATE_BATCHES) -> TickReport:
    """The duplicate lane's pass: queued new leads compared with older ones and their
    possible duplicates flagged (:mod:`baton.services.duplicate_checks`), a batch at a
    time (compared in one read, written in short parts) while the queue has work, up to
    ``batches`` batches.

    A batch that took fewer than :data:`~baton.services.duplicate_checks.BATCH` leads
    took all that was queued (``drained``; ``baton worker --once`` therefore compares
    everything queued when it started, up to ``batches`` batches, even past a lead that
    cannot be compared and stays at the head of the queue): the lane then waits
    :data:`~baton.domain.status.DUPLICATES_IDLE_SECONDS` before looking again, rather
    than comparing the leads of a stream of captures a few at a time, each batch paying
    its round trips and its candidates' reads (a shared company's or domain's oldest 200
    holders serve every lead of the batch that names it). Under ``bench/intake_http.py`` on
    PostgreSQL the worker's CPU per capture fell from 571-808 µs to 195-413 with the
    poll interval's wait, and to 86-158 with a second's (132-253 with 0.2 s, same
    session). SQLite went on at once until 0.12.0: measured before a batch's pairs were
    written in parts of :data:`~baton.services.duplicate_checks.WRITE_BATCH`, waiting
    made the write turns longer and the captures' p99 worse; with the parts, waiting
    0.2 s took the worker's CPU per capture from 408-764 µs to 155-461 with the same
    captures per second and p99 (A/B, alternated runs)."""
    report = TickReport()
    for _ in range(batches):
        batch = compare_batch(ctx, limit=DUPLICATE_BATCH)
        report.checked += batch.dequeued
        # A batch that took fewer than a full one took all that was queued (and free of
        # other workers' reservations: those leads are theirs, and a worker waits while
        # they compare them rather than taking each new lead on its own). One that
        # dequeued fewer than it took is not an empty queue (a lead that cannot be
        # compared stays queued at its head, another worker claimed part of it): it
        # goes on while full batches come.
        if batch.taken < DUPLICATE_BATCH:
            report.drained = batch.taken > 0
            break
    return report


STATISTICS_IDLE_SECONDS = 5.0
"""How often the statistics lane (PostgreSQL) looks for a table that has doubled."""

STATISTICS_REST_SECONDS = 60.0
"""How long the statistics lane leaves a table alone after its ``ANALYZE`` found the
table locked (autovacuum's visit is at most a minute apart)."""


@dataclass
class PlannerStatistics:
    """The statistics lane (PostgreSQL): ``ANALYZE`` of Baton's busiest tables that have
    doubled since their last statistics (:mod:`baton.store.statistics`), each in a short
    transaction of its own, so a new database filling fast is not read with the plans
    of its empty tables until autovacuum's first visit (up to a minute). A table
    another ``ANALYZE`` or ``VACUUM`` holds is left to it (a lock seen, or one that did
    not come within 100 ms: then for :data:`STATISTICS_REST_SECONDS`), so PostgreSQL's
    log gets no error every pass. Under ``bench/intake_http.py`` PostgreSQL spent
    710-987 µs of CPU per capture with it against 1,163-2,628 without (README)."""

    ctx: Context
    clock: Callable[[], float] = time.monotonic
    resting: dict[str, float] = field(default_factory=dict)
    """Table -> the :attr:`clock` time until which it is left alone."""
    checked_role: bool = False

    def refresh(self) -> TickReport:
        with self.ctx.read() as connection:
            if not self.checked_role:
                self.checked_role = True
                if not analysable(connection, GROWING_TABLES):
                    log.info(
                        "statistics: this database role may analyse none of %s (it owns "
                        "none); their statistics are left to autovacuum",
                        ", ".join(GROWING_TABLES),
                    )
            grown = grown_tables(connection)
        now = self.clock()
        done = 0
        for table in grown:
            if self.resting.get(table.name, 0.0) > now:
                continue
            with self.ctx.write() as connection:
                outcome = analyze_table(connection, table.name)
            if outcome == "current":
                log.debug("statistics: %s was analysed meanwhile (another worker?)", table.name)
            elif outcome == "analysed":
                done += 1
                log.info(
                    "statistics: analysed %s (%s rows, %s at its last statistics)",
                    table.name,
                    f"{table.rows:,}",
                    "none" if table.planned < 0 else f"{table.planned:,}",
                )
            else:
                self.resting[table.name] = now + STATISTICS_REST_SECONDS
                log.debug("statistics: %s is locked (autovacuum?); left to it", table.name)
        return TickReport(analyzed=done)


def fetch_intake(fetcher: Fetcher) -> TickReport:
    """The intake lane's pass: items whose webhook carried only ids, read from their
    platform (:mod:`baton.services.intake_fetch`)."""
    done = fetcher.run()
    return TickReport(fetched=done.done + done.failed + done.retrying)


def send_nurture(ctx: Context) -> TickReport:
    """The nurture lane's pass: a batch of due nurture steps written to the outbox,
    within the contract's send rate (:mod:`baton.services.nurture_send`)."""
    from baton.services.nurture_send import run_nurture

    done = run_nurture(ctx)
    return TickReport(nurtured=done.planned + done.skipped + done.exited)


def retrain_models(ctx: Context) -> TickReport:
    """The retraining lane's pass (``BATON_RETRAIN_MODEL_DAYS``): a draft scoring model
    like the active one when it is due (:func:`baton.services.models.retrain_if_due`);
    never an active one."""
    from baton.services.models import retrain_if_due

    return TickReport(retrained=int(retrain_if_due(ctx) is not None))


def deliver(courier: Courier) -> TickReport:
    """A delivery lane's pass: one claimed batch of the courier's channel."""
    sent, failed = courier.deliver()
    return TickReport(sent=sent, failed=failed)


@dataclass
class Lane:
    """One strand of the worker: a pass function run again and again, which never
    dies of an error (see the module docstring)."""

    name: str
    work: Callable[[], TickReport]
    idle_seconds: float
    on_pass: Callable[[str, TickReport], None] | None = None
    failures: int = 0
    clock: Clock | None = None
    """Reads the time of each pass that ends well (:attr:`last_pass_at`), which the
    worker's heartbeat reports for ``baton status``."""
    last_pass_at: datetime | None = None
    paused: Callable[[], list[str]] | None = None
    """The destinations its courier does not try for now, for the heartbeat."""

    def step(self) -> float:
        """Run one pass; returns how long to wait before the next (0: more is due)."""
        try:
            report = self.work()
        except Exception as error:  # the point: nothing stops the lane
            self.failures += 1
            delay = min(BACKOFF_FIRST * 2 ** (self.failures - 1), BACKOFF_MOST)
            if isinstance(error, DBAPIError):
                log.warning(
                    "%s: the database failed (%s); trying again in %g s",
                    self.name,
                    _first_line(error),
                    delay,
                )
            else:
                log.exception("%s: the pass failed; trying again in %g s", self.name, delay)
            return float(delay)
        if self.failures:
            log.warning("%s: working again after %d failed passes", self.name, self.failures)
            self.failures = 0
        if self.clock is not None:
            self.last_pass_at = self.clock.now()
        if report.busy and self.on_pass is not None:
            self.on_pass(self.name, report)
        return 0.0 if report.busy and not report.drained else self.idle_seconds

    def run(self, stop: threading.Event) -> None:
        """Pass after pass until ``stop`` is set."""
        while not stop.is_set():
            delay = self.step()
            if delay:
                stop.wait(delay)


def _first_line(error: DBAPIError) -> str:
    text = str(error.orig) if error.orig is not None else str(error)
    return text.strip().splitlines()[0] if text.strip() else type(error.orig).__name__


def paused_destinations(courier: Courier) -> list[str]:
    """What a courier does not try for now, as ``baton status`` shows it."""
    now = courier.ctx.clock.now()
    pauses = courier.pauses.copy()  # one step: its lane's thread changes it meanwhile
    return [
        f"{key} until {pause.until:%H:%M:%S}"
        for key, pause in sorted(pauses.items())
        if pause.until > now
    ]


class Heartbeat:
    """The worker's heartbeat lane: its row in ``worker_heartbeats`` (host, pid, each
    lane's last pass) every :data:`~baton.domain.status.HEARTBEAT_SECONDS`, and at most
    once a minute a look at the queues, with a warning for each one behind (and a line
    when it has caught up), so the worker's own log says it is late, not only SQL."""

    def __init__(self, ctx: Context, lanes: list[Lane]) -> None:
        self.ctx = ctx
        self.lanes = lanes
        self.id: int | None = None
        self.started_at: datetime | None = None
        self.checked_at: datetime | None = None
        self.behind: set[str] = set()

    def _beats(self) -> list[LaneBeat]:
        return [
            LaneBeat(
                lane.name,
                lane.last_pass_at,
                lane.failures,
                lane.paused() if lane.paused is not None else [],
            )
            for lane in self.lanes
            if lane.name != "heartbeat"
        ]

    def beat(self) -> TickReport:
        """One heartbeat (the first one writes the row), then the lateness check when
        a minute has passed since the last one. Never busy: the lane then waits
        :data:`HEARTBEAT_SECONDS`."""
        host, pid = socket.gethostname(), os.getpid()
        if self.id is None:
            self.started_at = self.ctx.clock.now()
            self.id = start_heartbeat(self.ctx, host=host, pid=pid, lanes=self._beats())
            log.info("worker started: heartbeat row %d, host %s, pid %d", self.id, host, pid)
            if self.ctx.dialect == "sqlite" and (
                others := other_running_workers(self.ctx, self.id)
            ):
                log.warning(
                    "another worker is running against this SQLite database (%s): SQLite "
                    "has one writer, so a second worker adds no speed, and both compare "
                    "the same new leads for duplicates; stop one (`baton serve "
                    "--with-worker` runs a worker too)",
                    ", ".join(f"host {h}, pid {p}" for h, p in others),
                )
        else:
            self.id = record_heartbeat(
                self.ctx, self.id, self._beats(), host=host, pid=pid, started_at=self.started_at
            )
        now = self.ctx.clock.now()
        if self.checked_at is None or (now - self.checked_at).total_seconds() >= WARN_EVERY_SECONDS:
            self.checked_at = now
            self.check(now)
        return TickReport()

    def check(self, now: datetime) -> None:
        """Warn of each queue behind; say when one that was has caught up."""
        behind = set()
        for queue in queue_statuses(self.ctx, now=now):
            if not queue.behind or queue.age_seconds is None:
                continue
            behind.add(queue.key)
            log.warning(
                "%s: behind, %d waiting, the oldest due %s ago (lane %s)",
                queue.name,
                queue.waiting,
                age_text(queue.age_seconds),
                queue.lane,
            )
        for key in sorted(self.behind - behind):
            log.info("%s: caught up", key)
        self.behind = behind

    def stop(self) -> None:
        """Say the worker stopped (so it reads *stopped*, not silent); a database that
        is gone by then only costs the log line."""
        if self.id is None:
            return
        try:
            stop_heartbeat(self.ctx, self.id)
        except Exception:
            log.warning("heartbeat %d: could not record the stop", self.id, exc_info=True)


@dataclass
class Worker:
    """The worker's loop, shared by ``baton worker`` and ``baton serve --with-worker``:
    seven lanes (timers, intake fetch, nurture, duplicates, webhooks, email, chat) in
    threads of their own; on PostgreSQL a statistics lane too (:class:`PlannerStatistics`),
    and model retraining when it is on."""

    ctx: Context
    smtp: SmtpConfig | None = None
    client: httpx.Client | None = None
    on_pass: Callable[[str, TickReport], None] | None = None
    couriers: dict[Channel, Courier] = field(init=False)
    fetcher: Fetcher = field(init=False)
    lanes: list[Lane] = field(init=False)
    heartbeat: Heartbeat = field(init=False)

    def __post_init__(self) -> None:
        poll = self.ctx.settings.worker_poll_seconds
        self.couriers = {
            channel: Courier(self.ctx, channel, smtp=self.smtp, client=self.client)
            for channel in CHANNELS
        }

        self.fetcher = Fetcher(self.ctx, client=self.client)

        def lane(
            name: str,
            work: Callable[[], TickReport],
            paused: Callable[[], list[str]] | None = None,
            idle: float = poll,
        ) -> Lane:
            return Lane(name, work, idle, self.on_pass, clock=self.ctx.clock, paused=paused)

        self.lanes = [
            lane(TIMERS_LANE, lambda: run_timers(self.ctx)),
            lane(INTAKE_FETCH_LANE, lambda: fetch_intake(self.fetcher)),
            lane(NURTURE_LANE, lambda: send_nurture(self.ctx)),
            lane(
                DUPLICATES_LANE,
                lambda: check_duplicates(self.ctx),
                idle=duplicates_allowance(poll),
            ),
            *(
                lane(
                    delivery_lane(channel),
                    lambda c=courier: deliver(c),  # type: ignore[misc]
                    paused=lambda c=courier: paused_destinations(c),  # type: ignore[misc]
                )
                for channel, courier in self.couriers.items()
            ),
        ]
        if self.ctx.dialect == "postgresql":
            statistics = PlannerStatistics(self.ctx)
            self.lanes.append(
                Lane(
                    "statistics",
                    statistics.refresh,
                    STATISTICS_IDLE_SECONDS,
                    self.on_pass,
                    clock=self.ctx.clock,
                )
            )
        if self.ctx.settings.retrain_model_days:
            # Checked hourly: a retraining is due after days, and the check counts outcomes.
            self.lanes.append(
                Lane(
                    "model retraining",
                    lambda: retrain_models(self.ctx),
                    RETRAIN_IDLE_SECONDS,
                    self.on_pass,
                    clock=self.ctx.clock,
                )
            )
        self.heartbeat = Heartbeat(self.ctx, self.lanes)
        self.lanes.append(Lane("heartbeat", self.heartbeat.beat, HEARTBEAT_SECONDS))

    def run(self, stop: threading.Event) -> None:
        """Run every lane until ``stop`` is set; returns when they have all ended."""
        threads = [
            threading.Thread(
                target=lane.run, args=(stop,), name=f"baton-worker-{lane.name}", daemon=True
            )
            for lane in self.lanes
        ]
        for thread in threads:
            thread.start()
        try:
            for thread in threads:
                while thread.is_alive():
                    thread.join(0.5)  # short joins: Ctrl+C reaches this thread
        finally:
            stop.set()
            for thread in threads:
                thread.join()  # each lane ends after its current pass
            for courier in self.couriers.values():
                courier.close()
            self.fetcher.close()
            self.heartbeat.stop()
