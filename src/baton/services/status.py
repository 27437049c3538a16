"""How the deployment is doing (``baton status``, ``GET /api/v1/status``), and the
workers' heartbeats that tell it.

:func:`deployment_status` reads, in one read transaction, every queue a worker lane
drains (depth, and the age of its oldest due item), the heartbeat rows of the workers,
and judges them (:mod:`baton.domain.status`). Each query is an aggregate over an index
the lane itself claims by, so asking costs milliseconds even with a backlog; it is
cheap enough for a monitor every few seconds, yet admin-only (``status:read``): queue
depths tell an outsider how busy the business is.

A running worker keeps one row of ``worker_heartbeats`` (:func:`start_heartbeat`,
:func:`record_heartbeat` every :data:`~baton.domain.status.HEARTBEAT_SECONDS`,
:func:`stop_heartbeat` on its way out). The heartbeat is a lane of its own, so a lane
stuck in a long pass does not stop it: such a lane shows as its queue falling behind,
and by its own last pass in the row. A worker killed (``kill -9``, a crash) never says
it stopped: the next worker to start on its host marks its row *replaced* when its
process is gone, rather than leave a silent worker beside the running one for a day.
A heartbeat that finds no row of its own (deleted, or a backup restored) writes a new
one, so that worker never reads silent while it runs.

Whose clock: on PostgreSQL, workers on several hosts write their beats and another
host judges them, so with the real clock both the beat and the check take the
database's time (``statement_timestamp()``): a host's clock off by a minute would
otherwise read as a silent worker. SQLite lives on one host, whose clock is the
database's; an injected clock (tests, simulations) is always used as it is.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import re
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, delete, func, insert, inspect, or_, select, text, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from baton.config import Settings
from baton.domain.access import Action, Principal
from baton.domain.status import (
    DUPLICATES_LANE,
    INTAKE_FETCH_LANE,
    NURTURE_LANE,
    SILENT_AFTER_SECONDS,
    TIMERS_LANE,
    DeploymentStatus,
    LaneBeat,
    QueueStatus,
    WorkerBeat,
    delivery_lane,
    duplicates_allowance,
    queue_status,
    verdict_of,
    worker_state,
)
from baton.services.access import allowed
from baton.services.context import Context, database_now
from baton.services.rescore_progress import unfinished_rescore_in
from baton.store.tables import (
    deliveries,
    duplicate_checks,
    handoffs,
    intake_items,
    nurture_enrollments,
    outbox,
    webhook_endpoints,
    worker_heartbeats,
)

log = logging.getLogger("baton.status")

SHOWN_FOR = timedelta(days=1)
"""Workers whose last heartbeat is older than this are left out of the list (the
verdict still says when the last one beat)."""
KEPT_FOR = timedelta(days=7)
"""Heartbeat rows silent this long are removed when a worker starts."""

OUTBOX_QUEUES = (
    ("email", "outbox_email", "email to send", delivery_lane("email")),
    ("webhook", "outbox_webhook", "webhooks to deliver", delivery_lane("webhook")),
    ("chat", "outbox_chat", "chat messages to post", delivery_lane("chat")),
)
"""Outbox channel, queue key, name and the worker lane that delivers it."""


def deployment_status(
    ctx: Context, *, actor: Principal, now: datetime | None = None
) -> DeploymentStatus:
    """Every worker queue's depth and lateness, the workers' heartbeats, the verdict
    (``ok``, ``behind``, ``worker_silent``) at ``now`` (the context's clock by default),
    and the active contract version's re-score when it has not finished."""
    allowed(actor, Action.READ_STATUS)
    with ctx.read() as connection:
        now = now or database_now(ctx, connection)
        queues = _queues(connection, now=now, settings=ctx.settings)
        workers, last_tick_at = _workers(connection, now=now)
        hosts = _endpoint_hosts(connection, workers)
        rescore = unfinished_rescore_in(connection, now=now)
    queues = _with_pauses(queues, workers, hosts)
    verdict, reasons = verdict_of(queues, workers, last_tick_at=last_tick_at, now=now)
    return DeploymentStatus(
        verdict=verdict,
        reasons=reasons,
        checked_at=now,
        behind_after_seconds=ctx.settings.status_behind_seconds,
        silent_after_seconds=SILENT_AFTER_SECONDS,
        last_tick_at=last_tick_at,
        queues=queues,
        workers=workers,
        rescore=rescore,
    )


SCHEMA_MISMATCH = "the database schema is not the one this version of Baton needs"


@functools.cache
def expected_revision() -> str | None:
    """The schema revision this code ships (its newest migration), read once."""
    from alembic.script import ScriptDirectory

    from baton.store.migrate import alembic_config

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def unready_because(ctx: Context, *, for_operator: bool = False) -> str | None:
    """Why this process should not take traffic yet (``/readyz``), or None: the
    database does not answer, or its schema is not the revision this code ships (a
    deploy whose migrations have not run, or an older process after they ran). The
    workers' state is no part of it on purpose: taking API processes out of a load
    balancer because the worker is behind would refuse the captures too.

    ``for_operator`` (`baton status`, on the server's own terminal) adds what to do
    about it: the driver's reason (password masked; a missing role or database is not
    a silent one), the two revisions, or that an empty database needs `baton init`.
    The public probe keeps the bare phrases: an anonymous caller learns nothing."""
    try:
        with ctx.read() as connection:
            found = None  # a database never migrated has no alembic_version at all
            if inspect(connection).has_table("alembic_version"):
                found = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except DBAPIError as exc:
        if not for_operator:
            return "the database does not answer"
        from baton.redact import mask

        reason = " ".join(str(exc.orig).split())  # a driver's message may span lines
        return f"the database does not answer or refuses the connection: {mask(reason)}"
    needed = expected_revision()
    if found != needed:
        if not for_operator:
            return SCHEMA_MISMATCH
        if found is None:
            return "the database was never initialised: run `baton init`"
        return f"{SCHEMA_MISMATCH}: database at {found}, this version needs {needed}"
    return None


def queue_statuses(ctx: Context, *, now: datetime) -> list[QueueStatus]:
    """Only the queues (the worker's own lateness check; no access check: the worker
    is the system)."""
    with ctx.read() as connection:
        return _queues(connection, now=now, settings=ctx.settings)


def _queues(connection: Connection, *, now: datetime, settings: Settings) -> list[QueueStatus]:
    behind_after = settings.status_behind_seconds

    def judged(key: str, name: str, lane: str, found: Any, **extra: Any) -> QueueStatus:
        waiting, oldest = int(found[0] or 0), found[1]
        return queue_status(
            key,
            name,
            lane,
            waiting=waiting,
            oldest_due_at=oldest,
            now=now,
            behind_after=behind_after,
            **extra,
        )

    steps = connection.execute(
        select(func.count(), func.min(handoffs.c.next_step_at)).where(
            handoffs.c.status.in_(("assigned", "accepted")), handoffs.c.next_step_at <= now
        )
    ).one()
    queued = connection.execute(
        select(func.count(), func.min(handoffs.c.created_at)).where(handoffs.c.status == "queued")
    ).one()
    reserved = func.count().filter(duplicate_checks.c.reserved_until > now)
    checks = connection.execute(
        select(func.count(), func.min(duplicate_checks.c.queued_at), reserved)
    ).one()
    # A failed read leaves its error and moves next_attempt_at on: such an item is
    # late since its series first fell due (due_since), whenever its next try is.
    fetch_failed = intake_items.c.error.is_not(None)
    fetch_due = case(
        (fetch_failed, func.coalesce(intake_items.c.due_since, intake_items.c.next_attempt_at)),
        else_=intake_items.c.next_attempt_at,
    )
    fetches = connection.execute(
        select(
            func.count(),
            func.min(fetch_due),
            func.coalesce(func.sum(case((fetch_failed, 1), else_=0)), 0),
        ).where(
            intake_items.c.status == "awaiting_fetch",
            or_(intake_items.c.next_attempt_at <= now, fetch_failed),
        )
    ).one()
    nurture = connection.execute(
        select(func.count(), func.min(nurture_enrollments.c.next_due_at)).where(
            nurture_enrollments.c.status == "active", nurture_enrollments.c.next_due_at <= now
        )
    ).one()
    allowance = 0.0
    if nurture[0]:
        from baton.services.nurture_send import send_rate

        # The send rate spreads what is due over minutes on purpose.
        allowance = 60.0 * int(nurture[0]) / max(1, send_rate(connection))
    # A failed attempt moves next_attempt_at on (the backoff): a message that failed
    # in its current series is late since that series fell due, whenever its next try
    # is: when it was written (created_at), or after an admin's retry (attempts_base
    # above 0) its series' first attempt (soon after the retry made it due).
    failing = outbox.c.attempts > outbox.c.attempts_base
    series_first_attempt = (
        select(func.min(deliveries.c.attempted_at))
        .where(
            deliveries.c.outbox_id == outbox.c.id,
            deliveries.c.attempt == outbox.c.attempts_base + 1,
        )
        .scalar_subquery()
    )
    outbox_due = case(
        (
            failing,
            case(
                (outbox.c.attempts_base == 0, outbox.c.created_at),
                else_=func.coalesce(series_first_attempt, outbox.c.next_attempt_at),
            ),
        ),
        else_=outbox.c.next_attempt_at,
    )
    retry = func.coalesce(func.sum(case((failing, 1), else_=0)), 0)
    by_channel = {}
    for channel, *_ in OUTBOX_QUEUES:  # one index range each: (channel, status)
        by_channel[channel] = connection.execute(
            select(func.count(), func.min(outbox_due), retry).where(
                outbox.c.channel == channel,
                outbox.c.status == "pending",
                or_(outbox.c.next_attempt_at <= now, failing),
            )
        ).one()
    queues = [
        judged("sla_steps", "SLA steps due", TIMERS_LANE, steps),
        judged(
            "handoff_queue",
            "handoffs waiting for a rep",
            TIMERS_LANE,
            queued,
            judged=False,
            note="wait for an available rep: a staffing question, not the worker's lateness",
        ),
        judged(
            "duplicate_checks",
            "leads to check for duplicates",
            DUPLICATES_LANE,
            checks,
            allowance_seconds=duplicates_allowance(settings.worker_poll_seconds),
            # Several workers on PostgreSQL reserve their batches: a dead worker's stay
            # reserved (not taken) until its reservation runs out, a minute at most.
            note=f"{checks[2]:,} reserved by a worker comparing them" if checks[2] else "",
        ),
        judged(
            "intake_fetch",
            "intake items to fetch",
            INTAKE_FETCH_LANE,
            fetches,
            retrying=int(fetches[2]),
        ),
        judged(
            "nurture",
            "nurture steps due",
            NURTURE_LANE,
            nurture,
            allowance_seconds=allowance,
            note="spread by the contract's send rate" if allowance else "",
        ),
    ]
    for channel, key, name, lane in OUTBOX_QUEUES:
        count, oldest, retrying = by_channel[channel]
        queues.append(judged(key, name, lane, (count, oldest), retrying=int(retrying)))
    return queues


def _workers(connection: Connection, *, now: datetime) -> tuple[list[WorkerBeat], datetime | None]:
    last_tick_at = connection.execute(select(func.max(worker_heartbeats.c.last_tick_at))).scalar()
    rows = connection.execute(
        select(worker_heartbeats)
        .where(worker_heartbeats.c.last_tick_at > now - SHOWN_FOR)
        .order_by(worker_heartbeats.c.last_tick_at.desc(), worker_heartbeats.c.id.desc())
        .limit(50)
    ).mappings()
    workers = [
        WorkerBeat(
            id=int(row["id"]),
            host=row["host"],
            pid=int(row["pid"]),
            started_at=row["started_at"],
            last_tick_at=row["last_tick_at"],
            stopped_at=row["stopped_at"],
            state=worker_state(
                row["last_tick_at"],
                row["stopped_at"],
                now=now,
                silent_after=SILENT_AFTER_SECONDS,
                replaced_by=row["replaced_by"],
            ),
            silent_seconds=max(0.0, (now - row["last_tick_at"]).total_seconds()),
            lanes=_lanes(row["lanes"]),
            replaced_by=row["replaced_by"],
            one_pass=bool(row["one_pass"]),
        )
        for row in rows
    ]
    return workers, last_tick_at


_PAUSED_ENDPOINT = re.compile(r"^webhook endpoint (\d+)\b")


def _endpoint_hosts(connection: Connection, workers: Sequence[WorkerBeat]) -> dict[str, str]:
    """The host of each webhook endpoint a worker pauses, by its id: "webhook endpoint
    2" alone sends the operator to `baton webhook list`. The host only: an endpoint's
    URL may carry credentials or a token in its query."""
    from urllib.parse import urlsplit

    ids = {
        int(found.group(1))
        for worker in workers
        for lane in worker.lanes
        for pause in lane.paused
        if (found := _PAUSED_ENDPOINT.match(pause))
    }
    if not ids:
        return {}
    rows = connection.execute(
        select(webhook_endpoints.c.id, webhook_endpoints.c.url).where(
            webhook_endpoints.c.id.in_(ids)
        )
    )
    return {str(row.id): urlsplit(row.url).hostname or "?" for row in rows}


def _with_pauses(
    queues: list[QueueStatus], workers: Sequence[WorkerBeat], hosts: dict[str, str] | None = None
) -> list[QueueStatus]:
    """Each queue with the destinations its lane pauses in a running worker (a pause
    lives in the worker's memory; its heartbeat reports it), a webhook endpoint named
    with its host (``hosts``, by id)."""

    def named(pause: str) -> str:
        found = _PAUSED_ENDPOINT.match(pause)
        if found is None or found.group(1) not in (hosts or {}):
            return pause
        head = found.group(0)
        return f"{head} ({(hosts or {})[found.group(1)]}){pause[len(head) :]}"

    paused: dict[str, list[str]] = {}
    for worker in workers:
        if worker.state == "running":
            for lane in worker.lanes:
                paused.setdefault(lane.name, []).extend(named(p) for p in lane.paused)
    return [
        dataclasses.replace(queue, paused=sorted(set(paused[queue.lane])))
        if paused.get(queue.lane)
        else queue
        for queue in queues
    ]


def _lanes(stored: Any) -> list[LaneBeat]:
    beats = []
    for name, lane in sorted((stored or {}).items()):
        last = lane.get("last_pass_at")
        beats.append(
            LaneBeat(
                name=name,
                last_pass_at=datetime.fromisoformat(last) if last else None,
                failures=int(lane.get("failures") or 0),
                paused=[str(p) for p in lane.get("paused") or []],
            )
        )
    return beats


def _lanes_json(lanes: Sequence[LaneBeat]) -> dict[str, dict[str, Any]]:
    return {
        lane.name: {
            "last_pass_at": lane.last_pass_at.isoformat() if lane.last_pass_at else None,
            "failures": lane.failures,
            **({"paused": lane.paused} if lane.paused else {}),
        }
        for lane in lanes
    }


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists on this host (signal 0 checks, sends nothing)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # it exists, under another user (PermissionError), or we cannot tell
        return True
    return True


def start_heartbeat(
    ctx: Context,
    *,
    host: str,
    pid: int,
    lanes: Sequence[LaneBeat] = (),
    alive: Callable[[int], bool] = pid_alive,
) -> int:
    """A worker's first heartbeat: its row (returns its id). Rows of workers silent for
    :data:`KEPT_FOR` go, so restarts never grow the table without bound. The rows of
    this host that never said they stopped and whose process is gone (``alive`` is
    false, or it is this very pid, reused) are marked replaced by it: a worker killed
    and restarted reads *replaced*, not silent. A process still there (another worker
    on the host, or one hung) keeps its row and its state."""
    host = host[:255]
    with ctx.write() as connection:
        now = database_now(ctx, connection)
        connection.execute(delete(worker_heartbeats).where(_silent_for_long(now)))
        heartbeat_id = _insert_heartbeat(connection, host=host, pid=pid, now=now, lanes=lanes)
        earlier = connection.execute(
            select(worker_heartbeats.c.id, worker_heartbeats.c.pid).where(
                worker_heartbeats.c.host == host,
                worker_heartbeats.c.id != heartbeat_id,
                worker_heartbeats.c.stopped_at.is_(None),
                worker_heartbeats.c.replaced_by.is_(None),
            )
        ).all()
        gone = [int(row_id) for row_id, row_pid in earlier if row_pid == pid or not alive(row_pid)]
        if gone:
            connection.execute(
                update(worker_heartbeats)
                .where(worker_heartbeats.c.id.in_(gone))
                .values(replaced_by=heartbeat_id)
            )
        return heartbeat_id


def other_running_workers(ctx: Context, heartbeat_id: int) -> list[tuple[str, int]]:
    """The (host, pid) of the workers other than heartbeat row ``heartbeat_id`` that
    ``baton status`` shows running: on SQLite, a second one adds no speed."""
    with ctx.read() as connection:
        workers, _ = _workers(connection, now=database_now(ctx, connection))
    return [
        (worker.host, worker.pid)
        for worker in sorted(workers, key=lambda w: w.id)
        if worker.state == "running" and worker.id != heartbeat_id
    ]


def _insert_heartbeat(
    connection: Connection,
    *,
    host: str,
    pid: int,
    now: datetime,
    lanes: Sequence[LaneBeat],
    started_at: datetime | None = None,
    one_pass: bool = False,
) -> int:
    """A worker's row beating ``now``; a ``one_pass`` row is stopped as it is written."""
    return int(
        connection.execute(
            insert(worker_heartbeats)
            .values(
                host=host[:255],
                pid=pid,
                started_at=started_at or now,
                last_tick_at=now,
                stopped_at=now if one_pass else None,
                lanes=_lanes_json(lanes),
                one_pass=one_pass,
            )
            .returning(worker_heartbeats.c.id)
        ).scalar_one()
    )


def record_heartbeat(
    ctx: Context,
    heartbeat_id: int,
    lanes: Sequence[LaneBeat],
    *,
    host: str,
    pid: int,
    started_at: datetime | None = None,
) -> int:
    """The worker is alive now; each lane's last pass as it stands. Returns the id of
    its row: a new one when its own is gone (deleted, a backup restored) or was marked
    replaced or stopped, so a running worker never reads silent or replaced."""
    with ctx.write() as connection:
        now = database_now(ctx, connection)
        found = connection.execute(
            update(worker_heartbeats)
            .where(
                worker_heartbeats.c.id == heartbeat_id,
                worker_heartbeats.c.stopped_at.is_(None),
                worker_heartbeats.c.replaced_by.is_(None),
            )
            .values(last_tick_at=now, lanes=_lanes_json(lanes))
        ).rowcount
        if found:
            return heartbeat_id
        fresh = _insert_heartbeat(
            connection, host=host, pid=pid, now=now, lanes=lanes, started_at=started_at
        )
    log.warning("heartbeat %d: its row was gone or marked replaced; now %d", heartbeat_id, fresh)
    return fresh


def record_one_pass(
    ctx: Context,
    *,
    host: str,
    pid: int,
    took_seconds: float,
    lanes: Sequence[LaneBeat] = (),
) -> int:
    """A one-off pass of the worker (``baton worker --once``) that took ``took_seconds``
    has ended: its heartbeat row (started that long before the database's now), stopped
    now and marked ``one_pass`` (returns its id), so ``baton status`` tells when work
    last ran rather than that no worker ever did. The earlier one-off row goes, whatever
    its host (a cron job's container often has a new host name each run): passes every
    minute keep one row, not one a minute that would crowd the workers' list. Rows of
    workers silent for :data:`KEPT_FOR` go too, as when a worker starts. A long-running
    worker's rows are otherwise left as they are, and a one-off pass never reads
    *running* (no process goes on beating)."""
    with ctx.write() as connection:
        now = database_now(ctx, connection)
        connection.execute(
            delete(worker_heartbeats).where(_silent_for_long(now) | worker_heartbeats.c.one_pass)
        )
        return _insert_heartbeat(
            connection,
            host=host,
            pid=pid,
            now=now,
            lanes=lanes,
            started_at=now - timedelta(seconds=max(0.0, took_seconds)),
            one_pass=True,
        )


def _silent_for_long(now: datetime) -> Any:
    """Heartbeat rows silent for :data:`KEPT_FOR`, which a starting worker or a one-off
    pass removes."""
    return worker_heartbeats.c.last_tick_at < now - KEPT_FOR


def stop_heartbeat(ctx: Context, heartbeat_id: int) -> None:
    """The worker stops cleanly: ``stopped_at``, so it reads *stopped*, not silent."""
    with ctx.write() as connection:
        now = database_now(ctx, connection)
        connection.execute(
            update(worker_heartbeats)
            .where(worker_heartbeats.c.id == heartbeat_id)
            .values(last_tick_at=now, stopped_at=now)
        )
