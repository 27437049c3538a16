"""The outbox: writing messages inside the transaction that decided them, and letting
an admin see and retry them.

Nothing here talks to the network: the worker (:mod:`baton.services.worker`) delivers
rows after commit. So a handoff that rolls back never emails anyone, and one that
commits is never forgotten, even if the process dies a moment later.

A message is ``pending`` (due, or waiting for its next attempt: then it has attempts
and a ``last_error``, and its state reads ``retrying``), ``sent``, or ``failed`` (given
up: a permanent refusal, or every attempt of its series used). Admins list them by
state and channel and retry them (``Action.MANAGE_OUTBOX``): a retry makes a failed or
retrying message due at once with a fresh series of attempts; a sent message is never
sent again.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import and_, func, insert, or_, select, update
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.engine import Connection, RowMapping

from baton.domain.access import Action, Principal
from baton.domain.errors import Conflict, NotFound
from baton.services.access import allowed
from baton.services.context import Context
from baton.store.tables import chat_channels, deliveries, outbox, webhook_endpoints

log = logging.getLogger("baton.outbox")

OutboxState = Literal["pending", "retrying", "failed", "sent"]
OUTBOX_STATES: tuple[OutboxState, ...] = ("pending", "retrying", "failed", "sent")
OutboxChannel = Literal["email", "webhook", "chat"]

WEBHOOK_TOPICS = (
    "handoff.assigned",
    "handoff.queued",
    "handoff.accepted",
    "handoff.rejected",
    "handoff.touched",
    "handoff.qualified",
    "handoff.won",
    "handoff.lost",
    "handoff.reassigned",
    "handoff.escalated",
)
"""Events a webhook endpoint can subscribe to (``*`` for all)."""


def enqueue_email(
    connection: Connection,
    *,
    topic: str,
    to: str,
    now: datetime,
    handoff_id: int | None = None,
    data: dict[str, Any] | None = None,
) -> None:
    """An email for the worker to render and send: ``topic`` names the template
    (``handoff.assigned``, ``sla.remind``, ``sla.manager``, ``queue.alert``)."""
    connection.execute(
        insert(outbox).values(
            email_row(topic=topic, to=to, now=now, handoff_id=handoff_id, data=data)
        )
    )


def email_row(
    *,
    topic: str,
    to: str,
    now: datetime,
    handoff_id: int | None = None,
    data: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The outbox row :func:`enqueue_email` writes, for a caller that writes many rows
    in one statement (every kind of row names the same columns, since one statement
    writes the columns of its first row)."""
    return {
        "channel": "email",
        "topic": topic,
        "handoff_id": handoff_id,
        "endpoint_id": None,
        "chat_channel_id": None,
        "recipient": to,
        "payload": data or {},
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
    }


def publish(
    connection: Connection,
    topic: str,
    payload: dict[str, Any],
    *,
    now: datetime,
    handoff_id: int | None = None,
) -> int:
    """One outbox row per active webhook endpoint subscribed to ``topic``; returns how
    many."""
    rows = webhook_rows(
        active_endpoints(connection), topic, payload, now=now, handoff_id=handoff_id
    )
    if rows:
        connection.execute(insert(outbox), rows)
    return len(rows)


Endpoint = tuple[int, str, list[str]]
"""An active webhook endpoint: its id, URL and the topics it hears (``*``: all)."""


def active_endpoints(connection: Connection) -> list[Endpoint]:
    """The active webhook endpoints in id order, read once by a caller that publishes
    many events in one transaction (:func:`webhook_rows`)."""
    return [
        (int(endpoint_id), str(url), list(events))
        for endpoint_id, url, events in connection.execute(_ACTIVE_ENDPOINTS)
    ]


_ACTIVE_ENDPOINTS = (
    select(webhook_endpoints.c.id, webhook_endpoints.c.url, webhook_endpoints.c.events)
    .where(webhook_endpoints.c.active.is_(True))
    .order_by(webhook_endpoints.c.id)
)

ACTIVE_ENDPOINTS_JSON = (
    select(
        func.json_agg(
            aggregate_order_by(
                func.json_build_array(
                    webhook_endpoints.c.id, webhook_endpoints.c.url, webhook_endpoints.c.events
                ),
                webhook_endpoints.c.id,
            )
        )
    )
    .where(webhook_endpoints.c.active.is_(True))
    .scalar_subquery()
)
"""PostgreSQL: :func:`active_endpoints` as one JSON value (``[[id, url, events], …]`` in
id order, NULL for none), for a statement that reads them beside something else
(:func:`endpoints_of`)."""


def endpoints_of(found: Any) -> list[Endpoint]:
    """:func:`active_endpoints` from the value :data:`ACTIVE_ENDPOINTS_JSON` read."""
    return [(int(i), str(url), list(events)) for i, url, events in found or ()]


def webhook_rows(
    endpoints: Sequence[Endpoint],
    topic: str,
    payload: dict[str, Any],
    *,
    now: datetime,
    handoff_id: int | None = None,
) -> list[dict[str, Any]]:
    """The outbox rows :func:`publish` writes for ``endpoints``, in their order."""
    return [
        {
            "channel": "webhook",
            "topic": topic,
            "handoff_id": handoff_id,
            "endpoint_id": endpoint_id,
            "chat_channel_id": None,
            "recipient": url,
            "payload": {"event": topic, "occurred_at": now.isoformat(), "data": payload},
            "status": "pending",
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
        }
        for endpoint_id, url, events in endpoints
        if "*" in events or topic in events
    ]


@dataclass(frozen=True)
class AttemptPublic:
    """One try at sending a message: when, how it went, how long it took."""

    attempt: int
    attempted_at: datetime
    ok: bool
    status_code: int | None
    error: str | None
    duration_ms: float


@dataclass(frozen=True)
class MessagePublic:
    """An outbox message as an admin sees it (never its payload's secrets: a webhook's
    signing secret is not part of it)."""

    id: int
    channel: str
    topic: str
    state: OutboxState
    recipient: str
    handoff_id: int | None
    endpoint_id: int | None
    attempts: int
    last_error: str | None
    created_at: datetime
    next_attempt_at: datetime | None
    sent_at: datetime | None
    in_flight: bool
    history: list[AttemptPublic] | None = None


def _state(row: RowMapping) -> OutboxState:
    if row["status"] == "pending":
        return "retrying" if int(row["attempts"]) > int(row["attempts_base"]) else "pending"
    return "sent" if row["status"] == "sent" else "failed"


def _public(
    row: RowMapping, now: datetime, history: list[AttemptPublic] | None = None
) -> MessagePublic:
    claimed = row["claimed_until"]
    return MessagePublic(
        id=int(row["id"]),
        channel=row["channel"],
        topic=row["topic"],
        state=_state(row),
        recipient=row["recipient"],
        handoff_id=row["handoff_id"],
        endpoint_id=row["endpoint_id"],
        attempts=int(row["attempts"]),
        last_error=row["last_error"],
        created_at=row["created_at"],
        next_attempt_at=row["next_attempt_at"] if row["status"] == "pending" else None,
        sent_at=row["sent_at"],
        in_flight=row["status"] == "pending" and claimed is not None and claimed > now,
        history=history,
    )


def _where_state(state: OutboxState) -> Any:
    if state == "pending":
        return and_(outbox.c.status == "pending", outbox.c.attempts == outbox.c.attempts_base)
    if state == "retrying":
        return and_(outbox.c.status == "pending", outbox.c.attempts > outbox.c.attempts_base)
    return outbox.c.status == state


def list_messages(
    ctx: Context,
    *,
    actor: Principal,
    states: Sequence[OutboxState] = (),
    channel: OutboxChannel | None = None,
    limit: int = 100,
    before_id: int | None = None,
) -> list[MessagePublic]:
    """Outbox messages newest first, optionally only some states and one channel;
    ``before_id`` pages back."""
    allowed(actor, Action.MANAGE_OUTBOX)
    query = select(outbox).order_by(outbox.c.id.desc()).limit(limit)
    if states:
        query = query.where(or_(*[_where_state(s) for s in dict.fromkeys(states)]))
    if channel is not None:
        query = query.where(outbox.c.channel == channel)
    if before_id is not None:
        query = query.where(outbox.c.id < before_id)
    now = ctx.clock.now()
    with ctx.read() as connection:
        return [_public(r, now) for r in connection.execute(query).mappings()]


def get_message(ctx: Context, message_id: int, *, actor: Principal) -> MessagePublic:
    """One message with every attempt so far, oldest first."""
    allowed(actor, Action.MANAGE_OUTBOX)
    with ctx.read() as connection:
        row = _row(connection, message_id)
        history = [
            AttemptPublic(
                attempt=int(d.attempt),
                attempted_at=d.attempted_at,
                ok=bool(d.ok),
                status_code=d.status_code,
                error=d.error,
                duration_ms=float(d.duration_ms),
            )
            for d in connection.execute(
                select(deliveries)
                .where(deliveries.c.outbox_id == message_id)
                .order_by(deliveries.c.attempt, deliveries.c.id)
            )
        ]
    return _public(row, ctx.clock.now(), history)


def _row(connection: Connection, message_id: int) -> RowMapping:
    row = connection.execute(select(outbox).where(outbox.c.id == message_id)).mappings().first()
    if row is None:
        raise NotFound(f"outbox message {message_id} does not exist")
    return row


def retry_message(ctx: Context, message_id: int, *, actor: Principal) -> MessagePublic:
    """Make a failed or retrying message due now, with a fresh series of attempts.
    Refused (409) for a sent message (it would arrive twice), one being sent right now,
    and a webhook whose endpoint was removed."""
    allowed(actor, Action.MANAGE_OUTBOX)
    now = ctx.clock.now()
    with ctx.write() as connection:
        row = _row(connection, message_id)
        if row["status"] == "sent":
            raise Conflict(f"outbox message {message_id} was sent; a retry would send it twice")
        if row["claimed_until"] is not None and row["claimed_until"] > now:
            raise Conflict(f"outbox message {message_id} is being sent right now")
        if row["channel"] == "webhook" and not _endpoint_active(connection, row["endpoint_id"]):
            raise Conflict(
                f"outbox message {message_id}: webhook endpoint {row['endpoint_id']} is disabled"
            )
        if row["channel"] == "chat" and not _chat_channel_live(connection, row["chat_channel_id"]):
            raise Conflict(
                f"outbox message {message_id}: chat channel {row['chat_channel_id']} was removed"
            )
        _make_due(connection, [message_id], now)
        row = _row(connection, message_id)
    log.info("%s retried outbox message %s (%s)", actor.name, message_id, row["topic"])
    return _public(row, now)


def retry_failed(ctx: Context, *, actor: Principal, channel: OutboxChannel | None = None) -> int:
    """Retry every failed message (of one channel) that can still be sent; returns how
    many (webhooks of disabled endpoints stay failed)."""
    allowed(actor, Action.MANAGE_OUTBOX)
    now = ctx.clock.now()
    query = select(outbox.c.id, outbox.c.channel, outbox.c.endpoint_id).where(
        outbox.c.status == "failed"
    )
    if channel is not None:
        query = query.where(outbox.c.channel == channel)
    with ctx.write() as connection:
        active = {
            int(i)
            for (i,) in connection.execute(
                select(webhook_endpoints.c.id).where(webhook_endpoints.c.active.is_(True))
            )
        }
        ids = [
            int(i)
            for i, kind, endpoint in connection.execute(query)
            if kind != "webhook" or endpoint in active
        ]
        for start in range(0, len(ids), 500):
            _make_due(connection, ids[start : start + 500], now)
    log.info("%s retried %d failed outbox messages", actor.name, len(ids))
    return len(ids)


def _make_due(connection: Connection, ids: list[int], now: datetime) -> None:
    connection.execute(
        update(outbox)
        .where(outbox.c.id.in_(ids), outbox.c.status != "sent")
        .values(
            status="pending",
            next_attempt_at=now,
            attempts_base=outbox.c.attempts,
            claimed_until=None,
            claim_token=None,
        )
    )


def _endpoint_active(connection: Connection, endpoint_id: int | None) -> bool:
    return bool(
        connection.execute(
            select(webhook_endpoints.c.active).where(webhook_endpoints.c.id == endpoint_id)
        ).scalar_one_or_none()
    )


def _chat_channel_live(connection: Connection, channel_id: int | None) -> bool:
    return (
        connection.execute(
            select(chat_channels.c.id).where(
                chat_channels.c.id == channel_id, chat_channels.c.removed_at.is_(None)
            )
        ).first()
        is not None
    )
