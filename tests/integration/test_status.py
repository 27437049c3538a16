"""How the deployment is doing (``deployment_status``), on both databases with a manual
clock: each queue's depth and the age of its oldest due item, the worker heartbeats,
and the verdict; and the worker's heartbeat lane, which writes them and warns (once a
minute at most) of a queue behind.

A newcomer's trial stopped the worker and loaded Baton: ``/healthz`` said ok while 961
duplicate checks and 114 outbox messages waited, and only SQL showed it.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta

import pytest
from sqlalchemy import delete, func, insert, select, update
from tests.conftest import principal_for
from tests.integration.test_worker import ANA, hand_raise, sales_floor
from tests.notify_servers import closed_port

from baton.domain.access import operator
from baton.domain.clock import ManualClock, SystemClock
from baton.domain.errors import Forbidden
from baton.domain.status import DeploymentStatus, QueueStatus
from baton.services.context import Context
from baton.services.delivery import Courier
from baton.services.duplicate_checks import queue_duplicate_checks_in
from baton.services.outbox import enqueue_email, publish, retry_message
from baton.services.status import (
    deployment_status,
    record_heartbeat,
    record_one_pass,
    start_heartbeat,
    stop_heartbeat,
)
from baton.services.webhooks import create_endpoint
from baton.services.worker import Heartbeat, Lane, TickReport, Worker, one_pass
from baton.store.tables import (
    deliveries,
    duplicate_checks,
    handoffs,
    nurture_enrollments,
    outbox,
    worker_heartbeats,
)

OPS = operator("ops")


def queue(found: DeploymentStatus, key: str) -> QueueStatus:
    [one] = [q for q in found.queues if q.key == key]
    return one


def fill_queues(ctx: Context, t0: datetime) -> None:
    """At ``t0``: three email due (one a retry) and one due in an hour; one lead queued
    for the duplicate check 30 s later; an assigned handoff whose SLA step falls due at
    t0 + 20 min; a handoff waiting in the queue since t0; a nurture step due at
    t0 + 1 min. Everything the hand-raises wrote on their own is cleared first."""
    sales_floor(ctx, ANA)
    first, second = hand_raise(ctx, 1), hand_raise(ctx, 2)
    with ctx.write() as connection:
        connection.execute(delete(outbox))
        connection.execute(delete(duplicate_checks))
        for at in (t0, t0, t0, t0 + timedelta(hours=1)):
            enqueue_email(connection, topic="sla.remind", to=ANA, now=at)
        retry = connection.execute(select(func.min(outbox.c.id))).scalar_one()
        connection.execute(
            update(outbox).where(outbox.c.id == retry).values(attempts=1, last_error="refused")
        )
        queue_duplicate_checks_in(connection, [first.lead_id], now=t0 + timedelta(seconds=30))
        connection.execute(
            update(handoffs)
            .where(handoffs.c.id == first.id)
            .values(next_step=0, next_step_at=t0 + timedelta(minutes=20))
        )
        connection.execute(
            update(handoffs)
            .where(handoffs.c.id == second.id)
            .values(status="queued", rep_id=None, created_at=t0, next_step_at=None)
        )
        connection.execute(
            insert(nurture_enrollments).values(
                lead_id=second.lead_id,
                sequence="not-ready",
                contract_version=1,
                status="active",
                reason="test",
                enrolled_at=t0,
                enrolled_by="test",
                next_step=0,
                next_due_at=t0 + timedelta(minutes=1),
            )
        )


def test_each_queue_tells_its_depth_and_how_long_its_oldest_due_item_waited(
    ctx: Context, clock: ManualClock
) -> None:
    t0 = clock.now()
    fill_queues(ctx, t0)
    clock.advance(minutes=2)  # the oldest email has waited exactly the threshold
    beat = start_heartbeat(ctx, host="app-1", pid=4182)
    on_time = deployment_status(ctx, actor=OPS)
    assert on_time.verdict == "ok", on_time.reasons
    email = queue(on_time, "outbox_email")
    assert (email.waiting, email.retrying, email.age_seconds) == (3, 1, 120.0)
    assert not email.behind
    assert queue(on_time, "sla_steps").waiting == 0  # due only at t0 + 20 min

    clock.set(t0 + timedelta(minutes=25))
    record_heartbeat(ctx, beat, [], host="app-1", pid=4182)
    found = deployment_status(ctx, actor=OPS)
    waited = {q.key: (q.waiting, q.age_seconds, q.behind) for q in found.queues}
    assert waited == {
        "sla_steps": (1, 300.0, True),
        "handoff_queue": (1, 1500.0, False),  # staffing, never the worker's lateness
        "duplicate_checks": (1, 1470.0, True),
        "intake_fetch": (0, None, False),
        "nurture": (1, 1440.0, True),
        "outbox_email": (3, 1500.0, True),
        "outbox_webhook": (0, None, False),
        "outbox_chat": (0, None, False),
    }
    assert queue(found, "outbox_email").oldest_due_at == t0
    assert queue(found, "nurture").allowance_seconds == pytest.approx(0.5)  # 1 at 120/min
    assert found.verdict == "behind"
    assert any(
        r.startswith("email to send: 3 waiting, the oldest due 25 min") for r in found.reasons
    )
    assert not any("handoffs waiting" in r for r in found.reasons)
    [worker] = found.workers
    assert (worker.host, worker.pid, worker.state) == ("app-1", 4182, "running")


def test_the_verdict_says_when_no_worker_beats(ctx: Context, clock: ManualClock) -> None:
    never = deployment_status(ctx, actor=OPS)
    assert never.verdict == "worker_silent" and never.last_tick_at is None
    assert never.reasons == ["no worker has ever run against this database (`baton worker`)"]

    beat = start_heartbeat(ctx, host="app-1", pid=11)
    assert deployment_status(ctx, actor=OPS).verdict == "ok"
    clock.advance(seconds=50)
    record_heartbeat(ctx, beat, [], host="app-1", pid=11)
    clock.advance(seconds=60)  # 6 beats of 10 s missed: not yet silent
    assert deployment_status(ctx, actor=OPS).verdict == "ok"
    clock.advance(seconds=1)
    silent = deployment_status(ctx, actor=OPS)
    assert silent.verdict == "worker_silent"
    assert silent.workers[0].state == "silent" and silent.workers[0].silent_seconds == 61
    assert silent.reasons == ["no worker is running: the last heartbeat was 1 min 1 s ago"]

    other = start_heartbeat(ctx, host="app-2", pid=12)  # another worker keeps it ok
    assert deployment_status(ctx, actor=OPS).verdict == "ok"
    stop_heartbeat(ctx, other)
    stopped = deployment_status(ctx, actor=OPS)
    assert stopped.verdict == "worker_silent"
    assert {w.host: w.state for w in stopped.workers} == {"app-1": "silent", "app-2": "stopped"}

    clock.advance(days=8)  # a week later, a start clears rows silent since
    start_heartbeat(ctx, host="app-3", pid=13)
    with ctx.read() as connection:
        hosts = connection.execute(select(worker_heartbeats.c.host)).scalars().all()
    assert hosts == ["app-3"]


def test_a_one_off_pass_says_when_work_last_ran_and_keeps_one_row_per_host(
    ctx: Context, clock: ManualClock
) -> None:
    """`baton worker --once` from a script or cron: status said "no worker has ever
    run" right after a pass had checked duplicates (a trial found it)."""
    one_pass(ctx)
    found = deployment_status(ctx, actor=OPS)
    assert found.verdict == "worker_silent"  # nothing keeps running the SLA steps
    [row] = found.workers
    assert (row.host, row.pid, row.state, row.one_pass) == (
        socket.gethostname(),
        os.getpid(),
        "stopped",
        True,
    )
    assert {lane.name for lane in row.lanes} >= {"timers", "duplicates", "email delivery"}
    assert found.reasons == [
        "no worker is running: the last heartbeat was 0 s ago, a one-off pass "
        "(`baton worker --once`)"
    ]

    clock.advance(seconds=60)
    record_one_pass(ctx, host=socket.gethostname(), pid=77, took_seconds=2.5)
    for minute in range(3):  # a cron job's containers, a new host name each run
        clock.advance(seconds=60)
        record_one_pass(ctx, host=f"cron-{minute}", pid=78, took_seconds=2.5)
    [latest] = deployment_status(ctx, actor=OPS).workers  # the latest pass only
    assert (latest.host, latest.one_pass) == ("cron-2", True)
    assert (latest.last_tick_at - latest.started_at).total_seconds() == 2.5

    running = start_heartbeat(ctx, host=socket.gethostname(), pid=4182)
    clock.advance(seconds=5)
    one_pass(ctx)  # beside a running worker: its row is left alone
    beside = deployment_status(ctx, actor=OPS)
    assert beside.verdict == "ok", beside.reasons
    assert {(w.id == running, w.state, w.one_pass) for w in beside.workers} == {
        (True, "running", False),
        (False, "stopped", True),
    }
    clock.advance(seconds=5)
    stop_heartbeat(ctx, running)  # the latest beat is a worker's stop, not a pass
    assert deployment_status(ctx, actor=OPS).reasons == [
        "no worker is running: the last heartbeat was 0 s ago"
    ]


def test_a_one_off_pass_whose_heartbeat_cannot_be_written_still_succeeds(
    ctx: Context, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Its work is committed by then; the row is bookkeeping (cron must not report a
    failed pass because the database was busy a moment after it)."""
    import baton.services.worker as worker_service

    def busy(*args: object, **kwargs: object) -> int:
        raise RuntimeError("database is locked")

    monkeypatch.setattr(worker_service, "record_one_pass", busy)
    with caplog.at_level(logging.WARNING, logger="baton.worker"):
        one_pass(ctx)
    assert "heartbeat could not be recorded" in caplog.text
    assert deployment_status(ctx, actor=OPS).workers == []


def test_only_admins_read_the_status(ctx: Context) -> None:
    assert deployment_status(ctx, actor=principal_for(ctx, "admin")).verdict == "worker_silent"
    for role in ("marketing", "sales_manager"):
        with pytest.raises(Forbidden):
            deployment_status(ctx, actor=principal_for(ctx, role))
    scoped = principal_for(ctx, "admin", email="monitor@lumen.example", scopes=("status:read",))
    assert deployment_status(ctx, actor=scoped).queues
    unscoped = principal_for(ctx, "admin", email="crm@lumen.example", scopes=("leads:read",))
    with pytest.raises(Forbidden):
        deployment_status(ctx, actor=unscoped)


def test_a_second_worker_on_sqlite_says_it_adds_nothing(
    ctx: Context, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A new user runs `baton serve --with-worker` and `baton worker` on the demo's
    SQLite: the second worker's log says why one is enough. Not on PostgreSQL, where
    several workers share the work; nor for a worker that stopped or went silent."""
    gone = start_heartbeat(ctx, host="laptop", pid=7)
    stop_heartbeat(ctx, gone)
    start_heartbeat(ctx, host="old", pid=8)
    clock.advance(minutes=2)  # silent since
    first = start_heartbeat(ctx, host="laptop", pid=4182)
    caplog.set_level(logging.INFO, logger="baton.worker")

    Heartbeat(ctx, []).beat()

    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    if ctx.dialect == "sqlite":
        assert warnings == [
            "another worker is running against this SQLite database (host laptop, pid 4182): "
            "SQLite has one writer, so a second worker adds no speed, and both compare the "
            "same new leads for duplicates; stop one (`baton serve --with-worker` runs a "
            "worker too)"
        ]
    else:
        assert warnings == []
    stop_heartbeat(ctx, first)
    caplog.clear()
    Heartbeat(ctx, []).beat()
    assert not [r for r in caplog.records if r.levelno == logging.WARNING]


def test_the_worker_beats_and_warns_once_a_minute_of_a_queue_behind(
    ctx: Context, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    t0 = clock.now()
    lane = Lane("email delivery", lambda: TickReport(), 0.2, clock=clock)
    heartbeat = Heartbeat(ctx, [lane])
    with ctx.write() as connection:
        enqueue_email(connection, topic="sla.remind", to=ANA, now=t0)
    caplog.set_level(logging.INFO, logger="baton.worker")

    heartbeat.beat()  # the first beat writes the row; nothing is late yet
    assert deployment_status(ctx, actor=OPS).verdict == "ok"
    clock.advance(seconds=30)
    lane.step()
    clock.advance(minutes=5)
    heartbeat.beat()  # a minute since the last check: look, and warn
    with ctx.read() as connection:
        row = connection.execute(select(worker_heartbeats)).mappings().one()
    assert row["last_tick_at"] == clock.now() and row["stopped_at"] is None
    assert row["lanes"] == {
        "email delivery": {"last_pass_at": (t0 + timedelta(seconds=30)).isoformat(), "failures": 0}
    }
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        "email to send: behind, 1 waiting, the oldest due 5 min 30 s ago (lane email delivery)"
    ]

    for _ in range(5):  # every 10 s: no repeat within the minute
        clock.advance(seconds=10)
        heartbeat.beat()
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1
    clock.advance(seconds=10)
    heartbeat.beat()
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 2

    with ctx.write() as connection:
        connection.execute(update(outbox).values(status="sent", sent_at=clock.now()))
    clock.advance(minutes=1)
    heartbeat.beat()
    assert caplog.records[-1].getMessage() == "outbox_email: caught up"

    heartbeat.stop()
    assert deployment_status(ctx, actor=OPS).workers[0].state == "stopped"


def test_the_worker_loop_beats_while_it_runs_and_says_when_it_stopped(
    ctx: Context, clock: ManualClock
) -> None:
    stop = threading.Event()
    worker = Worker(ctx)
    runner = threading.Thread(target=worker.run, args=(stop,))
    runner.start()
    try:
        for _ in range(300):  # the heartbeat lane's first pass writes the row
            if deployment_status(ctx, actor=OPS).workers:
                break
            time.sleep(0.05)
        running = deployment_status(ctx, actor=OPS)
        assert running.verdict == "ok", running.reasons
        [beat] = running.workers
        assert (beat.host, beat.pid, beat.state) == (socket.gethostname(), os.getpid(), "running")
    finally:
        stop.set()
        runner.join(timeout=30)
    assert not runner.is_alive()
    stopped = deployment_status(ctx, actor=OPS)
    assert stopped.verdict == "worker_silent" and stopped.workers[0].state == "stopped"


# --- review findings: failing retries, restarts, the database's clock ----------------------


def beat_now(ctx: Context) -> None:
    """A worker that beats at the clock's time (the verdict is about the queues)."""
    start_heartbeat(ctx, host="app-1", pid=4182)


def test_a_webhook_failing_for_minutes_is_late_though_its_next_try_is_later(
    ctx: Context, clock: ManualClock
) -> None:
    """Each failed attempt moves next_attempt_at on (the backoff): judged by it, a
    message failing since t0 showed waiting 0, retrying 0 and the verdict ok."""
    ctx.settings = ctx.settings.model_copy(update={"webhook_internal_allowlist": "127.0.0.1"})
    t0 = clock.now()
    create_endpoint(ctx, url=f"http://127.0.0.1:{closed_port()}/hook", events=["*"], actor=OPS)
    with ctx.write() as connection:
        connection.execute(delete(outbox))
        publish(connection, "handoff.created", {"n": 1}, now=t0)
    courier = Courier(ctx, "webhook")
    for wait in (0, 30, 60):  # attempts at t0, t0 + 30 s, t0 + 90 s (then paused 60 s)
        clock.advance(seconds=wait)
        assert courier.deliver() == (0, 1)
    with ctx.read() as connection:
        next_at = connection.execute(select(outbox.c.next_attempt_at)).scalar_one()
    assert next_at == t0 + timedelta(seconds=210)

    clock.set(t0 + timedelta(seconds=100))
    beat_now(ctx)
    early = queue(deployment_status(ctx, actor=OPS), "outbox_webhook")
    assert (early.waiting, early.retrying, early.age_seconds, early.behind) == (1, 1, 100.0, False)
    assert early.oldest_due_at == t0

    clock.set(t0 + timedelta(seconds=150))  # still 60 s before its next try
    beat_now(ctx)
    found = deployment_status(ctx, actor=OPS)
    webhook = queue(found, "outbox_webhook")
    assert (webhook.waiting, webhook.retrying, webhook.age_seconds) == (1, 1, 150.0)
    assert webhook.behind and found.verdict == "behind"
    assert "webhooks to deliver: 1 waiting, the oldest due 2 min 30 s ago" in found.reasons[0]

    with ctx.write() as connection:  # one more, untried: the paused endpoint's wait shows
        publish(connection, "handoff.created", {"n": 2}, now=clock.now())
    clock.advance(seconds=10)
    assert courier.deliver() == (0, 0)  # paused until t0 + 210 s: handed back, untried
    beat_now(ctx)
    paused = queue(deployment_status(ctx, actor=OPS), "outbox_webhook")
    assert (paused.waiting, paused.retrying, paused.age_seconds) == (2, 1, 160.0)


def test_a_retried_message_is_late_since_its_new_series_fell_due_not_since_it_was_written(
    ctx: Context, clock: ManualClock
) -> None:
    t0 = clock.now()
    sales_floor(ctx, ANA)
    hand_raise(ctx, 1)
    with ctx.write() as connection:
        connection.execute(delete(outbox))
        enqueue_email(connection, topic="sla.remind", to=ANA, now=t0 - timedelta(days=3))
        message = connection.execute(select(outbox.c.id)).scalar_one()
        # Eight attempts failed days ago; an admin retried it at t0 (a new series), and
        # its first attempt at t0 + 5 s failed too, next try at t0 + 35 s.
        connection.execute(update(outbox).values(status="failed", attempts=8, attempts_base=0))
    retry_message(ctx, message, actor=OPS)
    with ctx.write() as connection:
        connection.execute(
            insert(deliveries).values(
                outbox_id=message,
                attempt=9,
                attempted_at=t0 + timedelta(seconds=5),
                ok=False,
                error="refused",
                duration_ms=3.0,
            )
        )
        connection.execute(
            update(outbox).values(attempts=9, next_attempt_at=t0 + timedelta(seconds=35))
        )
    clock.set(t0 + timedelta(seconds=60))
    beat_now(ctx)
    email = queue(deployment_status(ctx, actor=OPS), "outbox_email")
    assert (email.waiting, email.retrying, email.age_seconds, email.behind) == (1, 1, 55.0, False)
    with ctx.write() as connection:
        connection.execute(update(outbox).values(next_attempt_at=t0 + timedelta(hours=1)))
    clock.set(t0 + timedelta(minutes=3))
    beat_now(ctx)
    email = queue(deployment_status(ctx, actor=OPS), "outbox_email")
    assert (email.waiting, email.retrying, email.age_seconds, email.behind) == (1, 1, 175.0, True)


def test_an_intake_fetch_failing_for_minutes_is_late_though_its_next_try_is_later(
    ctx: Context, clock: ManualClock
) -> None:
    from tests.integration.test_intake_fetch import add, allow_loopback, fetch_pass, hubspot_batch
    from tests.integration.test_intake_fetch import post as post_hook

    allow_loopback(ctx)
    add(ctx, "hubspot-contacts", "hubspot", f"http://127.0.0.1:{closed_port()}")
    t0 = clock.now()
    post_hook(ctx, "hubspot-contacts", hubspot_batch("2982973"))
    for wait in (0, 30, 60):  # attempts at t0, t0 + 30 s, t0 + 90 s; the next at t0 + 210 s
        clock.advance(seconds=wait)
        assert fetch_pass(ctx).retrying == 1
    clock.set(t0 + timedelta(seconds=150))
    beat_now(ctx)
    found = deployment_status(ctx, actor=OPS)
    fetches = queue(found, "intake_fetch")
    assert (fetches.waiting, fetches.retrying, fetches.age_seconds) == (1, 1, 150.0)
    assert fetches.behind and found.verdict == "behind"


def dead_pid() -> int:
    """The pid of a process that has ended (a child, reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_worker_killed_and_restarted_on_its_host_reads_replaced_not_silent(
    ctx: Context, clock: ManualClock
) -> None:
    """kill -9 leaves the row unstopped: it read silent beside the new worker for a
    day. A live process of the same host keeps its row (another worker, or one hung)."""
    hung = start_heartbeat(ctx, host="app-1", pid=os.getppid())  # still there
    killed = start_heartbeat(ctx, host="app-1", pid=dead_pid())
    elsewhere = start_heartbeat(ctx, host="app-2", pid=dead_pid())  # another host's
    clock.advance(minutes=2)
    restarted = start_heartbeat(ctx, host="app-1", pid=os.getpid())
    found = deployment_status(ctx, actor=OPS)
    states = {w.id: w.state for w in found.workers}
    assert states == {
        killed: "replaced",
        hung: "silent",
        elsewhere: "silent",
        restarted: "running",
    }
    assert {w.id: w.replaced_by for w in found.workers}[killed] == restarted
    again = start_heartbeat(ctx, host="app-1", pid=os.getpid())  # its pid, so it is gone
    states = {w.id: w.state for w in deployment_status(ctx, actor=OPS).workers}
    assert (states[restarted], states[again], states[hung]) == ("replaced", "running", "silent")


def test_a_heartbeat_whose_row_is_gone_writes_a_new_one(ctx: Context, clock: ManualClock) -> None:
    """A row deleted (or a backup restored without it): the update hit no row and the
    running worker read silent for ever."""
    lane = Lane("email delivery", lambda: TickReport(), 0.2, clock=clock)
    heartbeat = Heartbeat(ctx, [lane])
    heartbeat.beat()
    with ctx.write() as connection:
        connection.execute(delete(worker_heartbeats))
    clock.advance(seconds=10)
    heartbeat.beat()
    found = deployment_status(ctx, actor=OPS)
    assert found.verdict == "ok", found.reasons
    [worker] = found.workers
    assert (worker.id, worker.state, worker.pid) == (heartbeat.id, "running", os.getpid())

    with ctx.write() as connection:  # marked replaced by mistake (a pid namespace)
        connection.execute(update(worker_heartbeats).values(replaced_by=999))
    clock.advance(seconds=10)
    heartbeat.beat()
    assert {w.state for w in deployment_status(ctx, actor=OPS).workers} == {"replaced", "running"}


def test_a_short_threshold_allows_the_duplicate_lanes_own_wait_between_batches(
    ctx: Context, clock: ManualClock
) -> None:
    """The duplicate lane compares a second's captures at a time (it waits a second, or
    the poll interval when longer, after emptying its queue), so a lead captured just
    after a batch waits that long by design: with ``BATON_STATUS_BEHIND_SECONDS=1`` a
    worker that keeps up is not behind, one that does not is. The other queues keep
    the threshold as it is."""
    ctx.settings = ctx.settings.model_copy(
        update={"status_behind_seconds": 1.0, "worker_poll_seconds": 0.2}
    )
    t0 = clock.now()
    fill_queues(ctx, t0 - timedelta(seconds=30))  # the lead queued at t0
    start_heartbeat(ctx, host="app-1", pid=4182)
    judged = []
    for waited in (1.5, 2.0, 2.5):
        clock.set(t0 + timedelta(seconds=waited))
        checks = queue(deployment_status(ctx, actor=OPS), "duplicate_checks")
        judged.append((checks.age_seconds, checks.allowance_seconds, checks.behind))
    assert judged == [(1.5, 1.0, False), (2.0, 1.0, False), (2.5, 1.0, True)]
    assert queue(deployment_status(ctx, actor=OPS), "outbox_email").allowance_seconds == 0.0

    ctx.settings = ctx.settings.model_copy(update={"worker_poll_seconds": 5.0})
    clock.set(t0 + timedelta(seconds=5.5))
    checks = queue(deployment_status(ctx, actor=OPS), "duplicate_checks")
    assert (checks.allowance_seconds, checks.behind) == (5.0, False)  # waits the poll


class SkewedClock(SystemClock):
    """A host whose real clock runs five minutes slow."""

    def now(self) -> datetime:
        return super().now() - timedelta(minutes=5)


def test_beats_and_the_check_take_the_databases_time_not_each_hosts(ctx: Context) -> None:
    """A worker host whose clock is minutes slow read silent from another host (60 s
    of skew is enough); with the real clock both take PostgreSQL's time."""
    if ctx.engine.dialect.name != "postgresql":
        pytest.skip("SQLite lives on one host: its clock is the database's")
    worker_host = Context(engine=ctx.engine, settings=ctx.settings, clock=SkewedClock())
    checking_host = Context(engine=ctx.engine, settings=ctx.settings, clock=SystemClock())
    beat = start_heartbeat(worker_host, host="app-1", pid=4182)
    record_heartbeat(worker_host, beat, [], host="app-1", pid=4182)
    found = deployment_status(checking_host, actor=OPS)
    assert found.verdict == "ok", found.reasons
    [worker] = found.workers
    assert worker.state == "running" and worker.silent_seconds < 30


def test_a_paused_endpoint_shows_beside_its_waiting_messages(
    ctx: Context, clock: ManualClock
) -> None:
    """A destination the worker cannot reach is paused in the worker's memory: its
    messages wait untried (waiting), the probe that failed retries (retrying), and the
    pause itself is told by the heartbeat, so paused and failing read apart."""
    ctx.settings = ctx.settings.model_copy(update={"webhook_internal_allowlist": "127.0.0.1"})
    endpoint, _ = create_endpoint(
        ctx, url=f"http://127.0.0.1:{closed_port()}/hook", events=["*"], actor=OPS
    )
    with ctx.write() as connection:
        connection.execute(delete(outbox))
        for n in (1, 2):
            publish(connection, "handoff.created", {"n": n}, now=clock.now())
    worker = Worker(ctx)
    [webhooks] = [lane for lane in worker.lanes if lane.name == "webhook delivery"]
    webhooks.step()
    worker.heartbeat.beat()
    found = deployment_status(ctx, actor=OPS)
    queued = queue(found, "outbox_webhook")
    pause = f"webhook endpoint {endpoint.id} until 09:00:30"
    # The queue names the endpoint's host (never its URL: a path or query may hold a
    # token), so the operator knows which receiver is down without a look-up.
    named = f"webhook endpoint {endpoint.id} (127.0.0.1) until 09:00:30"
    assert (queued.waiting, queued.retrying, queued.paused) == (2, 1, [named])
    [lane] = [lane for lane in found.workers[0].lanes if lane.name == "webhook delivery"]
    assert lane.paused == [pause]
    assert queue(found, "outbox_email").paused == []
