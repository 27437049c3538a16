"""Writing messages to the outbox, inside the transaction that decided them.

Nothing here talks to the network: the worker (:mod:`baton.services.worker`) delivers
rows after commit. So a handoff that rolls back never emails anyone, and one that
commits is never forgotten, even if the process dies a moment later.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.engine import Connection

from baton.store.tables import outbox, webhook_endpoints

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
            channel="email",
            topic=topic,
            handoff_id=handoff_id,
            recipient=to,
            payload=data or {},
            status="pending",
            attempts=0,
            next_attempt_at=now,
            created_at=now,
        )
    )


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
    rows = [
        {
            "channel": "webhook",
            "topic": topic,
            "handoff_id": handoff_id,
            "endpoint_id": endpoint_id,
            "recipient": url,
            "payload": {"event": topic, "occurred_at": now.isoformat(), "data": payload},
            "status": "pending",
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
        }
        for endpoint_id, url, events in connection.execute(
            select(
                webhook_endpoints.c.id, webhook_endpoints.c.url, webhook_endpoints.c.events
            ).where(webhook_endpoints.c.active.is_(True))
        )
        if "*" in events or topic in events
    ]
    if rows:
        connection.execute(insert(outbox), rows)
    return len(rows)
