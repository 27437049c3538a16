"""The worker's use cases: run due SLA steps, assign queued handoffs, deliver the
outbox. ``baton worker`` calls :func:`tick` in a loop; tests and simulations call it
with a manual clock.

Any number of workers may run against one PostgreSQL database. Due handoffs are
claimed one per transaction with ``FOR UPDATE SKIP LOCKED``, so two workers never act
on the same handoff, and a step is recorded in the transaction that acts on it, so no
step runs twice. Outbox rows are *leased* (``claimed_until``) in a short transaction
and sent outside it: a slow SMTP server never holds a lock, and a worker that dies
mid-send leaves a lease that expires, so the message is retried (at least once; the
Message-ID and the ``X-Baton-Delivery`` header let receivers drop a repeat).

The worker acts on no one's behalf: every step it records names
:data:`~baton.services.handoffs.SYSTEM` (``system("baton")``), which reaches every
handoff, so a rep's notification carries the same packet the rep reads in the API.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import insert, or_, select, update
from sqlalchemy.engine import Connection, RowMapping

from baton.domain.contract import HandoffContract
from baton.domain.sla import deadlines_from, ladder, next_step
from baton.notify.email import DeliveryError, OutgoingEmail, SmtpConfig, send_email
from baton.notify.render import render_email
from baton.notify.webhooks import MAX_ATTEMPTS, next_attempt_delay, post_webhook
from baton.services.context import Context
from baton.services.handoffs import SYSTEM, _rep, assign_in, log_event, reassign_in
from baton.services.outbox import enqueue_email, publish
from baton.store.tables import contracts, deliveries, handoffs, leads, outbox, webhook_endpoints

log = logging.getLogger("baton.worker")

LEASE = timedelta(minutes=2)


@dataclass
class TickReport:
    """What one pass of the worker did."""

    steps: int = 0
    assigned: int = 0
    sent: int = 0
    failed: int = 0

    @property
    def busy(self) -> bool:
        return bool(self.steps or self.assigned or self.sent or self.failed)


def _contract_of(connection: Connection, version: int | None) -> HandoffContract | None:
    from baton.services.contracts import _parsed, active_contract_in

    if version is not None:
        row = connection.execute(
            select(contracts.c.version, contracts.c.created_at, contracts.c.spec).where(
                contracts.c.version == version
            )
        ).first()
        if row is not None:
            return _parsed(connection, row[0], row[1], row[2])
    active = active_contract_in(connection, share_lock=False)
    return active[1] if active else None


def _skip_locked(connection: Connection, query: Any) -> Any:
    return query.with_for_update(skip_locked=True)


def _claim_handoff(
    connection: Connection, *conditions: Any, order: bool = False
) -> tuple[RowMapping | None, bool]:
    """The first handoff meeting ``conditions``, locked, then its lead, both skipping
    rows another transaction holds: the worker never waits for a lead while holding a
    handoff (verdicts and stage changes lock the lead first), so it cannot deadlock with
    them. Returns the handoff (None when there is none) and whether its lead is locked
    too (False: another transaction has it; leave that handoff for a later pass)."""
    query = select(handoffs).where(*conditions)
    if order:
        query = query.order_by(handoffs.c.next_step_at, handoffs.c.id)
    row = connection.execute(_skip_locked(connection, query.limit(1))).mappings().first()
    if row is None:
        return None, False
    lead = connection.execute(
        _skip_locked(connection, select(leads.c.id).where(leads.c.id == row["lead_id"]))
    ).first()
    return row, lead is not None


def run_due_steps(ctx: Context, *, limit: int = 200) -> int:
    """Act on every SLA step that is due (up to ``limit`` handoffs); returns how many
    handoffs were handled."""
    handled = 0
    busy: set[int] = set()
    while handled < limit:
        now = ctx.clock.now()
        with ctx.write() as connection:
            row, claimed = _claim_handoff(
                connection,
                handoffs.c.status.in_(("assigned", "accepted")),
                handoffs.c.next_step_at <= now,
                handoffs.c.id.not_in(busy),
                order=True,
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
    rep = _rep(connection, handoff["rep_id"])
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
    while True:
        step = next_step(sla, index, accepted=accepted, touched=touched, due_at=due)
        if step is None or step.due_at > now:
            break
        index = step.index + 1
        detail = {"step": step.index, "action": step.step.action, "due_at": step.due_at.isoformat()}
        if step.step.action == "remind":
            enqueue_email(
                connection, topic="sla.remind", to=rep.email, now=now, handoff_id=handoff["id"]
            )
            log_event(connection, handoff["id"], "reminded", actor=SYSTEM, now=now, **detail)
        elif step.step.action == "notify_manager":
            why = "not accepted in time" if step.step.until == "accepted" else "not touched in time"
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


def assign_queued(ctx: Context, *, limit: int = 200) -> int:
    """Route waiting handoffs to whoever has become available; returns how many got
    a rep. Oldest first, so the queue is fair; once a pool has nobody, its later
    handoffs are not tried again in this pass (other pools' are)."""
    with ctx.read() as connection:
        waiting = connection.execute(
            select(handoffs.c.id, handoffs.c.routing)
            .where(handoffs.c.status == "queued")
            .order_by(handoffs.c.created_at, handoffs.c.id)
            .limit(limit)
        ).all()
    assigned = 0
    stuck: set[str] = set()
    for handoff_id, routing in waiting:
        pool = str((routing or {}).get("pool"))
        if pool in stuck:
            continue
        now = ctx.clock.now()
        with ctx.write() as connection:
            row, claimed = _claim_handoff(
                connection, handoffs.c.id == handoff_id, handoffs.c.status == "queued"
            )
            if row is None or not claimed:
                continue
            contract = _contract_of(connection, row["contract_version"])
            if contract is None:
                continue
            if assign_in(connection, row, contract, now=now, actor=SYSTEM) is not None:
                assigned += 1
            else:
                stuck.add(pool)
    return assigned


@dataclass(frozen=True)
class _Claimed:
    id: int
    channel: str
    topic: str
    handoff_id: int | None
    endpoint_id: int | None
    recipient: str
    payload: dict[str, Any]
    attempts: int


def _claim(ctx: Context, limit: int) -> list[_Claimed]:
    now = ctx.clock.now()
    with ctx.write() as connection:
        rows = (
            connection.execute(
                _skip_locked(
                    connection,
                    select(outbox)
                    .where(
                        outbox.c.status == "pending",
                        outbox.c.next_attempt_at <= now,
                        or_(outbox.c.claimed_until.is_(None), outbox.c.claimed_until < now),
                    )
                    .order_by(outbox.c.next_attempt_at, outbox.c.id)
                    .limit(limit),
                )
            )
            .mappings()
            .all()
        )
        if not rows:
            return []
        connection.execute(
            update(outbox)
            .where(outbox.c.id.in_([r["id"] for r in rows]))
            .values(claimed_until=now + LEASE, attempts=outbox.c.attempts + 1)
        )
    return [
        _Claimed(
            r["id"],
            r["channel"],
            r["topic"],
            r["handoff_id"],
            r["endpoint_id"],
            r["recipient"],
            r["payload"],
            int(r["attempts"]) + 1,
        )
        for r in rows
    ]


def _finish(
    ctx: Context,
    item: _Claimed,
    *,
    ok: bool,
    error: str | None,
    retryable: bool,
    status_code: int | None,
    started: float,
    retry_after: float | None = None,
) -> None:
    now = ctx.clock.now()
    duration = (time.perf_counter() - started) * 1000
    with ctx.write() as connection:
        connection.execute(
            insert(deliveries).values(
                outbox_id=item.id,
                attempt=item.attempts,
                attempted_at=now,
                ok=ok,
                status_code=status_code,
                error=error,
                duration_ms=duration,
            )
        )
        if ok:
            connection.execute(
                update(outbox)
                .where(outbox.c.id == item.id)
                .values(status="sent", sent_at=now, claimed_until=None, last_error=None)
            )
            if (
                item.channel == "email"
                and item.topic == "handoff.assigned"
                and item.handoff_id is not None
            ):
                notified = connection.execute(
                    update(handoffs)
                    .where(handoffs.c.id == item.handoff_id, handoffs.c.notified_at.is_(None))
                    .values(notified_at=now)
                ).rowcount
                if notified:
                    log_event(
                        connection,
                        item.handoff_id,
                        "notified",
                        actor=SYSTEM,
                        now=now,
                        to=item.recipient,
                    )
            return
        dead = not retryable or item.attempts >= MAX_ATTEMPTS
        connection.execute(
            update(outbox)
            .where(outbox.c.id == item.id)
            .values(
                status="failed" if dead else "pending",
                claimed_until=None,
                last_error=error,
                next_attempt_at=now
                if dead
                else now
                + max(next_attempt_delay(item.attempts), timedelta(seconds=retry_after or 0)),
            )
        )
    if dead:
        log.warning(
            "giving up on outbox %s (%s to %s): %s", item.id, item.topic, item.recipient, error
        )


def _deliver_email(ctx: Context, item: _Claimed, smtp: SmtpConfig) -> None:
    from baton.services.packet import handoff_packet

    started = time.perf_counter()
    try:
        if item.handoff_id is None:
            raise DeliveryError("an email without a handoff has nothing to say", permanent=True)
        packet = handoff_packet(ctx, item.handoff_id, actor=SYSTEM)
        rendered = render_email(
            item.topic, packet, data=item.payload, base_url=ctx.settings.public_url
        )
        send_email(
            smtp,
            OutgoingEmail(
                to=(item.recipient,),
                subject=rendered.subject,
                text=rendered.text,
                html=rendered.html,
                message_id=f"<outbox-{item.id}@baton>",
                headers={"X-Baton-Handoff": str(item.handoff_id), "X-Baton-Topic": item.topic},
            ),
            now=ctx.clock.now(),
        )
    except DeliveryError as exc:
        _finish(
            ctx,
            item,
            ok=False,
            error=str(exc),
            retryable=not exc.permanent,
            status_code=getattr(exc, "smtp_code", None),
            started=started,
        )
        return
    except Exception as exc:  # a bug must not stop the worker; it is logged and retried
        log.exception("rendering outbox %s failed", item.id)
        _finish(
            ctx,
            item,
            ok=False,
            error=f"internal error: {type(exc).__name__}",
            retryable=True,
            status_code=None,
            started=started,
        )
        return
    _finish(ctx, item, ok=True, error=None, retryable=False, status_code=250, started=started)


def _deliver_webhook(ctx: Context, item: _Claimed, client: httpx.Client) -> None:
    started = time.perf_counter()
    with ctx.read() as connection:
        endpoint = connection.execute(
            select(webhook_endpoints.c.secret, webhook_endpoints.c.active).where(
                webhook_endpoints.c.id == item.endpoint_id
            )
        ).first()
    if endpoint is None or not endpoint.active:
        _finish(
            ctx,
            item,
            ok=False,
            error="endpoint removed or disabled",
            retryable=False,
            status_code=None,
            started=started,
        )
        return
    body = json.dumps({"id": item.id, **item.payload}, separators=(",", ":")).encode()
    result = post_webhook(
        item.recipient,
        endpoint.secret,
        event=item.topic,
        body=body,
        delivery_id=str(item.id),
        timestamp=int(ctx.clock.now().timestamp()),
        timeout=ctx.settings.webhook_timeout_seconds,
        client=client,
    )
    _finish(
        ctx,
        item,
        ok=result.ok,
        error=result.error,
        retryable=result.retryable,
        status_code=result.status_code,
        started=started,
        retry_after=result.retry_after_seconds,
    )


def deliver_outbox(
    ctx: Context,
    *,
    limit: int = 50,
    smtp: SmtpConfig | None = None,
    client: httpx.Client | None = None,
) -> tuple[int, int]:
    """Send due outbox messages; returns (sent, failed attempts)."""
    items = _claim(ctx, limit)
    if not items:
        return 0, 0
    smtp = smtp or SmtpConfig.from_settings(ctx.settings)
    http = client
    try:
        for item in items:
            if item.channel == "email":
                _deliver_email(ctx, item, smtp)
            else:
                if http is None:
                    http = httpx.Client(follow_redirects=False)
                _deliver_webhook(ctx, item, http)
    finally:
        if client is None and http is not None:
            http.close()
    with ctx.read() as connection:
        sent = connection.execute(
            select(outbox.c.id).where(
                outbox.c.id.in_([i.id for i in items]), outbox.c.status == "sent"
            )
        ).all()
    return len(sent), len(items) - len(sent)


def tick(
    ctx: Context, *, smtp: SmtpConfig | None = None, client: httpx.Client | None = None
) -> TickReport:
    """One pass: SLA steps, then the queue, then the outbox (so the emails those steps
    wrote go out in the same pass)."""
    report = TickReport()
    report.steps = run_due_steps(ctx)
    report.assigned = assign_queued(ctx)
    while True:
        sent, failed = deliver_outbox(ctx, smtp=smtp, client=client)
        report.sent += sent
        report.failed += failed
        if sent + failed == 0:
            break
    return report
