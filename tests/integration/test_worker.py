"""The worker under the conditions that broke it: the database going away mid-pass, a
slow mail server with three workers, a dead mail server with a backlog, a late pass
after a reassignment. Real SMTP and HTTP servers on loopback, both databases, and a
manual clock: a "slow" mail server moves the clock, never the wall clock.
"""

from __future__ import annotations

import logging
import shutil
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text, update
from tests.notify_servers import SmtpServer, closed_port, http_receiver, smtp_server

from baton.domain.access import operator
from baton.domain.activities import ActivityCreate
from baton.domain.clock import ManualClock
from baton.domain.leads import LeadCreate
from baton.domain.reps import RepCreate, TeamCreate
from baton.notify.email import SmtpConfig
from baton.services.activities import ingest_activity
from baton.services.context import Context
from baton.services.contracts import activate_contract, approve_contract, create_contract
from baton.services.delivery import Courier
from baton.services.handoffs import HandoffPublic, handoff_events_of, list_handoffs
from baton.services.leads import capture_lead
from baton.services.outbox import enqueue_email
from baton.services.reps import create_rep, create_team
from baton.services.webhooks import create_endpoint
from baton.services.worker import Lane, Worker, tick
from baton.store.tables import deliveries, handoffs, outbox

EXAMPLE = (Path(__file__).parents[2] / "contracts" / "example.yaml").read_text()
ANA, BEN, SAM = "ana@lumen.example", "ben@lumen.example", "sam@lumen.example"
OPS = operator("ops")
STEP_EVENTS = ("reminded", "reassigned", "manager_notified", "manager_missing")


def utc(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, minute, tzinfo=UTC)


def sales_floor(ctx: Context, *reps: str) -> None:
    """The example contract (remind at 20, reassign and tell the manager at 30, tell
    the manager at 120 if not touched) and team ``na`` managed by Sam, Monday to Friday
    09:00-17:00 UTC."""
    version = create_contract(ctx, EXAMPLE, actor=operator("maria")).version
    approve_contract(ctx, version, role="marketing", actor=operator("maria"))
    approve_contract(ctx, version, role="sales", actor=operator("sam"))
    activate_contract(ctx, version, actor=operator("maria"))
    create_team(ctx, TeamCreate(name="na", manager_email=SAM), actor=OPS)
    for email in reps:
        name = email.split("@")[0].title()
        create_rep(ctx, RepCreate(email=email, name=name, team="na", capacity=500), actor=OPS)


def hand_raise(ctx: Context, number: int = 1) -> HandoffPublic:
    """A US prospect asks for a demo: an MQL handed to a rep at once."""
    email = f"dana{number}@northwind{number}.com"
    data = LeadCreate.model_validate(
        {"email": email, "first_name": "Dana", "company": "Northwind", "country": "US"}
    )
    lead_id = capture_lead(ctx, data, actor=operator("form")).lead.id
    ingest_activity(
        ctx,
        ActivityCreate.model_validate(
            {"email": email, "type": "demo_request", "occurred_at": ctx.clock.now()}
        ),
        actor=operator("web"),
    )
    [handoff] = list_handoffs(ctx, lead_id=lead_id, actor=OPS)
    return handoff


def emails(ctx: Context, count: int, handoff_id: int, *, at: datetime) -> None:
    """``count`` reminders for ``handoff_id``, due at ``at``."""
    with ctx.write() as connection:
        for _ in range(count):
            enqueue_email(connection, topic="sla.remind", to=ANA, now=at, handoff_id=handoff_id)


def count(ctx: Context, *where: Any) -> int:
    with ctx.read() as connection:
        query = select(func.count()).select_from(outbox).where(*where)
        return int(connection.execute(query).scalar_one())


def config_for(server: SmtpServer) -> SmtpConfig:
    return SmtpConfig(host=server.host, port=server.port, sender="baton@lumen.example", timeout=5)


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with smtp_server() as server:
        yield server


# --- item 7: no step for a closed handoff ------------------------------------------------


def test_a_late_pass_runs_no_step_after_the_reassignment_that_closed_the_handoff(
    ctx: Context, clock: ManualClock, smtp: SmtpServer
) -> None:
    sales_floor(ctx, ANA, BEN)
    first = hand_raise(ctx)
    assert first.assigned_at == utc(2, 9)

    # No worker ran for 150 business minutes: every rung of the ladder is overdue.
    clock.set(utc(2, 11, 30))
    tick(ctx, smtp=config_for(smtp))

    steps = [e for e in handoff_events_of(ctx, first.id, actor=OPS) if e.kind in STEP_EVENTS]
    assert [e.kind for e in steps] == ["reminded", "reassigned", "manager_notified"]
    assert steps[-1].detail["why"] == "not accepted in time"
    told = [
        m["To"] + ": " + str(m.get_body(("plain",)).get_content())  # type: ignore[union-attr]
        for m in smtp.messages
        if m["To"] == SAM
    ]
    assert len(told) == 1, "the manager hears once, as passes on time would have told"
    assert "not touched in time" not in told[0]
    # The next handoff of the chain has a ladder of its own, from its assignment.
    [second] = list_handoffs(ctx, status=["assigned"], actor=OPS)
    assert (second.assigned_at, second.next_step_at) == (clock.now(), utc(2, 11, 50))


def test_a_step_is_not_run_for_a_handoff_closed_since_it_was_due(
    ctx: Context, clock: ManualClock
) -> None:
    """Re-checked before each step: a handoff closed by a verdict or a manager while
    its step waited gets no step, whatever ``next_step_at`` still says."""
    sales_floor(ctx, ANA)
    handoff = hand_raise(ctx)
    with ctx.write() as connection:  # closed behind the ladder's back
        connection.execute(
            update(handoffs).where(handoffs.c.id == handoff.id).values(status="reassigned")
        )
    clock.set(utc(2, 11, 30))
    from baton.services.worker import _run_steps

    with ctx.write() as connection:
        row = connection.execute(select(handoffs).where(handoffs.c.id == handoff.id))
        _run_steps(connection, dict(row.mappings().one()), now=clock.now())
    kinds = [e.kind for e in handoff_events_of(ctx, handoff.id, actor=OPS)]
    assert not set(kinds) & set(STEP_EVENTS)


# --- item 5: exactly one delivery with a slow mail server ----------------------------------


def test_three_workers_send_each_email_once_through_a_mail_server_taking_3_seconds(
    ctx: Context, clock: ManualClock
) -> None:
    """60 reminders and the assignment email; each message the server takes moves
    the clock 3 s, so the first worker's claim of 50 outlives a 2-minute lease unless
    it is renewed, and a worker that took an expired claim would send it again."""
    sales_floor(ctx, ANA)
    handoff = hand_raise(ctx)
    emails(ctx, 60, handoff.id, at=clock.now())
    problems: list[BaseException] = []

    def work(config: SmtpConfig) -> None:
        try:
            for _ in range(2000):
                if not count(ctx, outbox.c.status == "pending"):
                    return
                tick(ctx, smtp=config)
        except BaseException as error:  # reported below, on the test's thread
            problems.append(error)

    with smtp_server(on_message=lambda: clock.advance(seconds=3)) as server:
        workers = [threading.Thread(target=work, args=(config_for(server),)) for _ in range(3)]
        for thread in workers:
            thread.start()
        for thread in workers:
            thread.join()

    assert problems == []
    sent = Counter(str(m["Message-ID"]) for m in server.messages)
    assert len(sent) == 61
    assert {mid: n for mid, n in sent.items() if n > 1} == {}, "sent twice"
    assert count(ctx, outbox.c.status == "sent") == 61
    assert clock.now() - utc(2, 9) >= timedelta(seconds=3 * 61) > timedelta(minutes=2)


def test_a_worker_claims_only_what_it_can_send_in_half_the_lease(
    ctx: Context, clock: ManualClock
) -> None:
    sales_floor(ctx, ANA)
    handoff = hand_raise(ctx)
    emails(ctx, 4, handoff.id, at=clock.now())
    with smtp_server(on_message=lambda: clock.advance(seconds=3)) as server:
        courier = Courier(ctx, "email", smtp=config_for(server))
        assert courier.claim_size() == ctx.settings.outbox_claim_size == 50
        assert courier.deliver() == (5, 0)
    # 3 s a message: 20 fit in half of the 120-second lease.
    assert courier.claim_size() == 20


# --- item 6: no head-of-line blocking ------------------------------------------------------


def test_a_dead_mail_server_costs_one_attempt_and_holds_up_no_webhook(
    ctx: Context, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    ctx.settings = ctx.settings.model_copy(update={"webhook_internal_allowlist": "127.0.0.1"})
    sales_floor(ctx, ANA)
    backlog = hand_raise(ctx, 1)
    emails(ctx, 300, backlog.id, at=clock.now() - timedelta(hours=1))
    dead = SmtpConfig(host="127.0.0.1", port=closed_port(), timeout=2)
    with http_receiver() as receiver:
        create_endpoint(ctx, url=receiver.url, events=["handoff.assigned"], actor=OPS)
        clock.advance(minutes=1)
        fresh = hand_raise(ctx, 2)
        with caplog.at_level(logging.INFO, logger="baton.worker"):
            report = tick(ctx, smtp=dead)
        arrived = [r.headers["X-Baton-Event"] for r in receiver.requests]

    assert arrived == ["handoff.assigned"], "the webhook went out with the mail server down"
    assert fresh.rep_email == ANA
    with ctx.read() as connection:
        tried = connection.execute(
            select(func.count())
            .select_from(deliveries.join(outbox))
            .where(outbox.c.channel == "email")
        ).scalar_one()
    assert (tried, report.failed) == (1, 1), "one connection attempt, not 302"
    untried = (outbox.c.attempts == 0, outbox.c.claimed_until.is_(None))
    assert count(ctx, outbox.c.channel == "email", *untried) == 301
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert any("failed, attempt 1 of 8" in w and "cannot reach SMTP server" in w for w in warnings)
    assert any(w.startswith("email unreachable: not trying it for 30 s") for w in warnings)


def test_a_paused_mail_server_is_tried_again_after_the_pause_and_resumes(
    ctx: Context, clock: ManualClock, smtp: SmtpServer
) -> None:
    sales_floor(ctx, ANA)
    handoff = hand_raise(ctx)
    emails(ctx, 9, handoff.id, at=clock.now())
    courier = Courier(ctx, "email", smtp=SmtpConfig(host="127.0.0.1", port=closed_port()))

    assert courier.deliver() == (0, 1)
    assert courier.deliver() == (0, 0), "paused: not tried"
    clock.advance(seconds=30)
    assert courier.deliver() == (0, 1), "one probe after the pause"
    clock.advance(seconds=30)
    assert courier.deliver() == (0, 0), "the pause doubled to 60 s"
    clock.advance(seconds=30)
    courier.smtp = config_for(smtp)  # the mail server is back
    assert courier.deliver() == (10, 0)
    assert count(ctx, outbox.c.status == "sent") == 10


def test_messages_never_tried_go_before_retries(
    ctx: Context, clock: ManualClock, smtp: SmtpServer
) -> None:
    sales_floor(ctx, ANA)
    handoff = hand_raise(ctx)  # its assignment email: fresh, due now
    emails(ctx, 1, handoff.id, at=clock.now() - timedelta(minutes=5))
    with ctx.write() as connection:  # that reminder failed once and is due again
        connection.execute(
            update(outbox)
            .where(outbox.c.topic == "sla.remind")
            .values(attempts=1, last_error="451 try later")
        )
        retry_id, retry_key = connection.execute(
            select(outbox.c.id, outbox.c.message_key).where(outbox.c.topic == "sla.remind")
        ).one()
    ctx.settings = ctx.settings.model_copy(update={"outbox_claim_size": 1})

    tick(ctx, smtp=config_for(smtp))

    assert [m["X-Baton-Topic"] for m in smtp.messages] == ["handoff.assigned", "sla.remind"]
    assert smtp.messages[1]["Message-ID"] == f"<outbox-{retry_id}.{retry_key}@baton>"


# --- item 4: the database going away ------------------------------------------------------


class Outage:
    """Takes the test's database away and brings it back, as a restart would: on
    PostgreSQL it refuses new connections and terminates every session; on SQLite the
    file disappears (a new connection finds an empty database)."""

    def __init__(self, ctx: Context, request: pytest.FixtureRequest) -> None:
        self.ctx = ctx
        self.request = request
        self.url = ctx.engine.url
        self.moved = Path(str(self.url.database) + ".away")

    def begin(self) -> None:
        if self.ctx.dialect == "postgresql":
            admin = self.request.getfixturevalue("postgres_server").admin
            with admin.connect() as connection:
                name = self.url.database
                connection.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'))
                connection.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = :name AND pid <> pg_backend_pid()"
                    ),
                    {"name": name},
                )
            return
        self.ctx.engine.dispose()
        self.moved.mkdir()
        for suffix in ("", "-wal", "-shm"):
            path = Path(str(self.url.database) + suffix)
            if path.exists():
                shutil.move(path, self.moved / path.name)

    def end(self) -> None:
        if self.ctx.dialect == "postgresql":
            admin = self.request.getfixturevalue("postgres_server").admin
            with admin.connect() as connection:
                name = self.url.database
                connection.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
            return
        self.ctx.engine.dispose()
        for suffix in ("", "-wal", "-shm"):
            path = Path(str(self.url.database) + suffix)
            if path.exists():
                path.unlink()  # the empty database made while the real one was away
        for moved in self.moved.iterdir():
            shutil.move(moved, Path(str(self.url.database)).parent / moved.name)
        self.moved.rmdir()


def lane(worker: Worker, name: str) -> Lane:
    [found] = [lane for lane in worker.lanes if lane.name == name]
    return found


def test_a_worker_survives_its_database_going_away_in_the_middle_of_a_send(
    ctx: Context,
    clock: ManualClock,
    request: pytest.FixtureRequest,
    caplog: pytest.LogCaptureFixture,
) -> None:
    sales_floor(ctx, ANA)
    handoff = hand_raise(ctx)
    outage = Outage(ctx, request)
    try:
        with smtp_server(on_message=outage.begin) as server:
            worker = Worker(ctx, smtp=config_for(server))
            email, timers = lane(worker, "email delivery"), lane(worker, "timers")
            with caplog.at_level(logging.INFO, logger="baton.worker"):
                # The mail server takes the assignment email, then the database goes.
                assert email.step() == 1.0, "backs off, does not raise"
                assert len(server.messages) == 1
                assert timers.step() == 1.0
                assert email.step() == 2.0, "the backoff doubles"
                outage.end()
                server.on_message = None
                assert email.step() == ctx.settings.worker_poll_seconds
                assert timers.step() == ctx.settings.worker_poll_seconds
            # Carries on with new work.
            clock.advance(minutes=1)
            hand_raise(ctx, 2)
            assert email.step() == 0.0
    finally:
        if outage.moved.exists() or ctx.dialect == "postgresql":
            outage.end()

    assert len(server.messages) == 2, "the email taken before the outage was not sent again"
    assert count(ctx, outbox.c.status == "sent") == 2
    with ctx.read() as connection:
        notified = connection.execute(
            select(handoffs.c.notified_at).where(handoffs.c.id == handoff.id)
        ).scalar_one()
    assert notified is not None, "the send was recorded once the database was back"
    logged = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("email delivery: the database failed (") for m in logged)
    assert "email delivery: working again after 2 failed passes" in logged


def test_the_worker_loop_runs_its_lanes_until_stopped(ctx: Context, smtp: SmtpServer) -> None:
    sales_floor(ctx, ANA)
    hand_raise(ctx)
    stop = threading.Event()
    passes: list[str] = []

    def seen(name: str, report: Any) -> None:
        passes.append(name)
        if report.sent:
            stop.set()

    runner = threading.Thread(
        target=Worker(ctx, smtp=config_for(smtp), on_pass=seen).run, args=(stop,)
    )
    runner.start()
    runner.join(timeout=30)
    assert not runner.is_alive(), "the lanes ended when told to"
    assert "email delivery" in passes
    assert len(smtp.messages) == 1


# --- an idle worker only reads -----------------------------------------------------------


class Writes(list[str]):
    """The write transactions a context opened, each as the :attr:`label` of the moment
    (the lane stepping)."""

    label = ""


def watch_writes(ctx: Context, monkeypatch: pytest.MonkeyPatch) -> Writes:
    """Every write transaction ``ctx`` opens from now on."""
    writes = Writes()
    real_write = ctx.write

    def counted() -> Any:
        writes.append(writes.label)
        return real_write()

    monkeypatch.setattr(ctx, "write", counted)
    return writes


def test_an_idle_worker_takes_no_write_transaction_until_work_is_due(
    ctx: Context, clock: ManualClock, smtp: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker idles most of the day, five passes a second per lane: on SQLite a pass
    that wrote would take the database's single write turn from the captures. With an
    open handoff whose SLA step is not due and an email that is not due yet, no lane
    but the heartbeat writes; once both are due, the same lanes act on them."""
    sales_floor(ctx, ANA)
    handoff = hand_raise(ctx)
    assert tick(ctx, smtp=config_for(smtp)).sent == 1  # the assignment email
    emails(ctx, 1, handoff.id, at=clock.now() + timedelta(minutes=5))
    writes = watch_writes(ctx, monkeypatch)
    worker = Worker(ctx, smtp=config_for(smtp))
    for lane in worker.lanes:  # what is due now (the new lead's duplicate comparison)
        lane.step()
    writes.clear()
    for lane in worker.lanes:
        if lane.name != "heartbeat":
            writes.label = lane.name
            lane.step()
    assert writes == []
    assert [lane.failures for lane in worker.lanes] == [0] * len(worker.lanes)

    clock.advance(minutes=25)  # past the email's time and the 20-minute reminder
    writes.clear()
    for lane in worker.lanes:
        if lane.name in ("timers", "email delivery"):
            writes.label = lane.name
            lane.step()
    assert set(writes) == {"timers", "email delivery"}
    assert "reminded" in [e.kind for e in handoff_events_of(ctx, handoff.id, actor=OPS)]
    # The assignment's email, the one that became due, and the reminder just written.
    assert count(ctx, outbox.c.status == "sent") == 3


@pytest.mark.parametrize(
    ("status", "due_in", "lease_left", "attempts", "claimable"),
    [
        ("pending", 0, None, 0, True),  # due this very moment
        ("pending", -60, None, 0, True),
        ("pending", 0, None, 2, True),  # a retry (after two attempts)
        ("pending", 1, None, 0, False),  # a second from now
        ("pending", 1, None, 2, False),
        ("pending", -60, 0, 0, False),  # a lease ending this very moment: still held
        ("pending", -60, -1, 2, True),  # a lease that ended
        ("pending", -60, 30, 0, False),  # another worker holds it
        ("sent", -60, None, 1, False),
        ("failed", -60, None, 8, False),
    ],
)
def test_a_courier_finds_due_exactly_what_its_claim_takes(
    ctx: Context,
    clock: ManualClock,
    status: str,
    due_in: int,
    lease_left: int | None,
    attempts: int,
    claimable: bool,
) -> None:
    """The courier's read before its claim (``anything_due``) and the claim itself
    agree on every message: a probe that said no where the claim would take one would
    leave it unsent."""
    from baton.services.delivery import anything_due

    now = clock.now()
    with ctx.write() as connection:
        enqueue_email(connection, topic="queue.alert", to=SAM, now=now)
    lease = None if lease_left is None else now + timedelta(seconds=lease_left)
    with ctx.write() as connection:
        connection.execute(
            update(outbox).values(
                status=status,
                next_attempt_at=now + timedelta(seconds=due_in),
                claimed_until=lease,
                claim_token=None if lease is None else "another-worker",
                attempts=attempts,
            )
        )
    assert anything_due(ctx, "email", now) is claimable
    assert bool(Courier(ctx, "email")._claim()) is claimable


def test_a_webhook_courier_with_a_dead_endpoint_idles_without_writing(
    ctx: Context, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While one endpoint is paused (it could not be reached), its due messages wait
    untried, and a pass with nothing else due takes no write transaction; a message
    for another endpoint is still claimed and sent."""
    ctx.settings = ctx.settings.model_copy(update={"webhook_internal_allowlist": "127.0.0.1"})
    sales_floor(ctx, ANA)
    dead = f"http://127.0.0.1:{closed_port()}/hook"
    create_endpoint(ctx, url=dead, events=["handoff.assigned"], actor=OPS)
    hand_raise(ctx, 1)
    hand_raise(ctx, 2)
    courier = Courier(ctx, "webhook")
    assert courier.deliver() == (0, 1), "one attempt, then the endpoint is paused"
    writes = watch_writes(ctx, monkeypatch)
    assert courier.deliver() == (0, 0)
    assert writes == [], "only the paused endpoint's messages are due"

    with http_receiver() as receiver:
        create_endpoint(ctx, url=receiver.url, events=["handoff.assigned"], actor=OPS)
        hand_raise(ctx, 3)  # one message for each endpoint
        writes.clear()
        assert courier.deliver() == (1, 0)
        assert len(receiver.requests) == 1
    assert writes, "the live endpoint's message was claimed"
    pending = (outbox.c.channel == "webhook", outbox.c.status == "pending")
    assert count(ctx, *pending) == 3, "the dead endpoint's three wait for the pause to end"
