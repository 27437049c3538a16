"""How the deployment is doing: each worker queue's depth and lateness, the workers'
heartbeats, and one verdict an operator or a monitor can act on.

Pure rules over plain values (the queries live in :mod:`baton.services.status`), so the
thresholds are tested with a manual clock and no database.

Why "late" is measured from the moment an item became *due* (an outbox message's next
attempt, an SLA step's time, a lead's arrival in the duplicate queue), never from when
it was made: a message scheduled for a retry in ten minutes is not late, a reminder due
five minutes ago that nobody sent is. Why the unassigned handoff queue is shown but
never judged: a handoff waits there for a rep to become available (out of hours, every
rep at capacity), which is a staffing question the worker cannot answer by working
faster; the SLA steps it owes are judged in their own queue. Why a message or a fetch
that failed counts whatever its next try: each failed attempt moves that try into the
future (the backoff), so judged by it a message failing for hours would never look
late; it is late since its series of attempts first fell due. Why nurture gets an
allowance: the contract's send rate spreads a burst over minutes on purpose
(``allowance_seconds``), and only lateness beyond that is the worker's. The duplicate
checks get the duplicate lane's own wait between batches for the same reason: a lead
captured just after a batch waits for the next one by design.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:  # baton.domain.rescores words its sentence with age_text, from here
    from baton.domain.rescores import UnfinishedRescore

Verdict = Literal["ok", "behind", "worker_silent"]
"""``ok``; ``behind``: a queue's oldest due item waited longer than the threshold;
``worker_silent``: no worker beat lately (nothing drains the queues, whatever they
hold now)."""
WorkerState = Literal["running", "silent", "stopped", "replaced"]
"""``replaced``: its process is gone (killed, so it never said it stopped) and a worker
started since on the same host; it no longer counts as silent."""

HEARTBEAT_SECONDS = 10.0
"""How often a running worker writes its heartbeat (one small row update)."""
SILENT_AFTER_BEATS = 6
"""Heartbeats a worker may miss before it counts as silent: 60 s, room for a write
that waits its turn on SQLite behind an import, never minutes of blindness."""
SILENT_AFTER_SECONDS = HEARTBEAT_SECONDS * SILENT_AFTER_BEATS
WARN_EVERY_SECONDS = 60.0
"""A worker looks at its queues' lateness (and warns) at most this often."""

TIMERS_LANE = "timers"
INTAKE_FETCH_LANE = "intake fetch"
NURTURE_LANE = "nurture"
DUPLICATES_LANE = "duplicates"
DUPLICATES_IDLE_SECONDS = 1.0
"""How long the duplicate lane waits, at least (the poll interval when longer), after a
pass that emptied the queue or found it empty: possible duplicates are flagged up to
about two seconds after a capture (the capture's answer says flagging is pending), and a
stream of captures is compared in batches of a second's captures, which share their
candidates' reads (see :func:`baton.services.worker.check_duplicates`). The wait is
also the duplicates queue's allowance in ``baton status`` (:func:`duplicates_allowance`)."""


def duplicates_allowance(poll_seconds: float) -> float:
    """Seconds the duplicates queue's oldest lead may wait beyond
    ``BATON_STATUS_BEHIND_SECONDS`` before the queue counts as behind: the lane's own
    wait between batches (:data:`DUPLICATES_IDLE_SECONDS`, or the worker's poll interval
    when longer). A lead captured just after a batch waits that long by design, so a
    short threshold (1 s is allowed) would otherwise call a worker that keeps up behind
    under any steady stream of captures."""
    return max(poll_seconds, DUPLICATES_IDLE_SECONDS)


PASS_LANES = (INTAKE_FETCH_LANE, TIMERS_LANE, DUPLICATES_LANE, NURTURE_LANE)
"""The worker's lanes, by the names its heartbeat and ``baton status`` give them, that a
one-off pass (``baton worker --once``) runs besides the deliveries (:func:`delivery_lane`)."""


def delivery_lane(channel: str) -> str:
    """The name of the lane that delivers the outbox's ``channel`` (email, webhook, chat)."""
    return f"{channel} delivery"


@dataclass(frozen=True)
class QueueStatus:
    """One queue a worker lane drains: how many items are due now and how long the
    oldest of them has waited since it became due."""

    key: str
    """A stable name for programs (``outbox_email``, ``sla_steps``, ...)."""
    name: str
    lane: str
    """The worker lane that drains it (``baton worker`` prints lanes by these names)."""
    waiting: int
    """Items due now, not yet done (in flight ones included), and every item that failed
    in its current series of attempts, whenever its next try is."""
    retrying: int
    """Of those, items that already failed at least once (outbox, intake fetch)."""
    oldest_due_at: datetime | None
    age_seconds: float | None
    """Seconds since the oldest waiting item became due (None: nothing waits); for one
    retrying, since its series of attempts first fell due."""
    allowance_seconds: float
    """Lateness expected by design on top of the threshold (nurture's send rate, the
    duplicate lane's wait between batches)."""
    judged: bool
    """Whether its lateness counts towards the verdict."""
    behind: bool
    note: str = ""
    paused: list[str] = field(default_factory=list)
    """Destinations a running worker does not try for now because it could not reach
    them (``webhook endpoint 3 until 10:15:30``): their messages wait untried, while a
    destination that answers with errors shows as messages retrying."""


def queue_status(
    key: str,
    name: str,
    lane: str,
    *,
    waiting: int,
    oldest_due_at: datetime | None,
    now: datetime,
    behind_after: float,
    retrying: int = 0,
    allowance_seconds: float = 0.0,
    judged: bool = True,
    note: str = "",
) -> QueueStatus:
    """A queue judged at ``now``: behind when its oldest due item has waited longer
    than ``behind_after`` seconds plus its allowance."""
    age = None
    if waiting and oldest_due_at is not None:
        age = max(0.0, (now - oldest_due_at).total_seconds())
    behind = judged and age is not None and age > behind_after + allowance_seconds
    return QueueStatus(
        key=key,
        name=name,
        lane=lane,
        waiting=waiting,
        retrying=retrying,
        oldest_due_at=oldest_due_at if waiting else None,
        age_seconds=age,
        allowance_seconds=allowance_seconds,
        judged=judged,
        behind=behind,
        note=note,
    )


@dataclass(frozen=True)
class LaneBeat:
    """When one lane of a worker last ended a pass, and how many passes in a row
    failed since (a lane that fails backs off and keeps trying)."""

    name: str
    last_pass_at: datetime | None
    failures: int
    paused: list[str] = field(default_factory=list)
    """Destinations its courier does not try for now (it could not reach them)."""


@dataclass(frozen=True)
class WorkerBeat:
    """A worker process as its heartbeat row tells it."""

    id: int
    host: str
    pid: int
    started_at: datetime
    last_tick_at: datetime
    stopped_at: datetime | None
    state: WorkerState
    silent_seconds: float
    """Seconds since its last heartbeat."""
    lanes: list[LaneBeat] = field(default_factory=list)
    replaced_by: int | None = None
    """The heartbeat row of the worker that replaced it (state ``replaced``)."""
    one_pass: bool = False
    """A one-off pass (``baton worker --once``), not a long-running worker: its row
    reads *stopped* from the moment it is written."""


def worker_state(
    last_tick_at: datetime,
    stopped_at: datetime | None,
    *,
    now: datetime,
    silent_after: float,
    replaced_by: int | None = None,
) -> WorkerState:
    """``stopped`` (it said so on its way out), ``replaced`` (killed, and a worker
    started since on its host), ``silent`` (no heartbeat for longer than
    ``silent_after`` seconds: killed, hung, or its host gone) or ``running``."""
    if stopped_at is not None:
        return "stopped"
    if replaced_by is not None:
        return "replaced"
    if (now - last_tick_at).total_seconds() > silent_after:
        return "silent"
    return "running"


@dataclass(frozen=True)
class DeploymentStatus:
    """The answer of ``baton status`` and ``GET /api/v1/status``."""

    verdict: Verdict
    reasons: list[str]
    """One sentence per problem (empty when ok)."""
    checked_at: datetime
    behind_after_seconds: float
    silent_after_seconds: float
    last_tick_at: datetime | None
    """The latest heartbeat of any worker (None: no worker ever beat here)."""
    queues: list[QueueStatus]
    workers: list[WorkerBeat]
    rescore: UnfinishedRescore | None = None
    """The active contract version's re-score of every lead, when it has not finished
    (stopped half way, or still running). Not part of the verdict: the workers are not
    what finishes it (``baton contract rescore`` is)."""


def verdict_of(
    queues: Sequence[QueueStatus],
    workers: Sequence[WorkerBeat],
    *,
    last_tick_at: datetime | None,
    now: datetime,
) -> tuple[Verdict, list[str]]:
    """The verdict and its reasons: a silent worker first (then nothing drains any
    queue, even an empty one stays healthy only until the next SLA step falls due),
    then every queue behind."""
    reasons: list[str] = []
    running = [w for w in workers if w.state == "running"]
    if not running:
        if last_tick_at is not None:
            ago = age_text((now - last_tick_at).total_seconds())
            latest = max(workers, key=lambda w: w.last_tick_at, default=None)
            was = (
                ", a one-off pass (`baton worker --once`)"
                if latest is not None and latest.one_pass and latest.last_tick_at == last_tick_at
                else ""
            )
            reasons.append(f"no worker is running: the last heartbeat was {ago} ago{was}")
        else:
            reasons.append("no worker has ever run against this database (`baton worker`)")
    for queue in queues:
        if queue.behind and queue.age_seconds is not None:
            reasons.append(
                f"{queue.name}: {queue.waiting:,} waiting, the oldest due "
                f"{age_text(queue.age_seconds)} ago (lane {queue.lane})"
            )
    if not running:
        return "worker_silent", reasons
    return ("behind" if reasons else "ok"), reasons


def age_text(seconds: float) -> str:
    """A duration as people read it: ``45 s``, ``3 min 12 s``, ``2 h 5 min``, ``3 d 4 h``."""
    whole = int(seconds)
    if whole < 60:
        return f"{whole} s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"
