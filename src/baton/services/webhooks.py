"""Webhook endpoints: where Baton posts handoff events, and how each delivery went.

An endpoint subscribes to some of :data:`~baton.services.outbox.WEBHOOK_TOPICS` (or
``*`` for all). Events become outbox rows in the transaction that decided them and the
worker posts them, signed with the endpoint's secret; every attempt is kept in
``deliveries``. The secret is shown once, when the endpoint is created. Removing an
endpoint disables it (no new events, pending ones are dropped by the worker) and keeps
its delivery log.

Only admins manage endpoints and read their deliveries (``Action.MANAGE_WEBHOOKS``): an
endpoint receives every handoff event it subscribes to, so adding one is a way to copy
the whole pipeline out of Baton.

A URL must point outside the network (:mod:`baton.domain.egress`): an address literal
or a ``localhost`` name inside it is refused here; a host name is checked on the
addresses it resolves to each time the worker connects (a name can change its address
after it was saved). Deliveries keep the status, the timing and a short error of each
attempt, never the receiver's reply.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection, RowMapping

from baton.domain.access import Action, Principal
from baton.domain.egress import EgressPolicy
from baton.domain.errors import FieldProblem, NotFound, ValidationFailed
from baton.services.access import allowed
from baton.services.context import Context
from baton.services.outbox import WEBHOOK_TOPICS
from baton.services.queries import inserted_id
from baton.store.tables import deliveries, outbox, webhook_endpoints

MAX_URL = 2000
MIN_SECRET = 16
MAX_SECRET = 200


@dataclass(frozen=True)
class EndpointPublic:
    """An endpoint without its secret."""

    id: int
    url: str
    events: list[str]
    active: bool
    created_by: str
    created_at: datetime


@dataclass(frozen=True)
class DeliveryAttempt:
    """One try at posting an event."""

    attempt: int
    attempted_at: datetime
    ok: bool
    status_code: int | None
    error: str | None
    duration_ms: float


@dataclass(frozen=True)
class DeliveryPublic:
    """One event for one endpoint (an outbox row) with every attempt so far."""

    id: int
    topic: str
    handoff_id: int | None
    status: str
    attempts: int
    last_error: str | None
    created_at: datetime
    sent_at: datetime | None
    history: list[DeliveryAttempt]


def _check_url(url: str, policy: EgressPolicy) -> list[FieldProblem]:
    if not url or len(url) > MAX_URL:
        return [FieldProblem("url", f"give a URL of 1 to {MAX_URL} characters")]
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError as exc:
        return [FieldProblem("url", f"not a valid URL: {exc}")]
    if parts.scheme not in ("http", "https"):
        return [FieldProblem("url", "must start with http:// or https://")]
    if not host:
        return [FieldProblem("url", "needs a host, e.g. https://hooks.example.com/baton")]
    problem = policy.host_problem(host)
    if problem is not None:
        return [FieldProblem("url", problem)]
    return []


def _check_events(events: Sequence[str]) -> tuple[list[str], list[FieldProblem]]:
    if not events:
        return [], [FieldProblem("events", "name at least one event, or * for all")]
    problems = [
        FieldProblem(
            f"events[{i}]",
            f"unknown event '{event}'; use * or one of: {', '.join(WEBHOOK_TOPICS)}",
        )
        for i, event in enumerate(events)
        if event != "*" and event not in WEBHOOK_TOPICS
    ]
    if "*" in events:
        return ["*"], problems
    return list(dict.fromkeys(events)), problems


def create_endpoint(
    ctx: Context,
    *,
    url: str,
    events: Sequence[str],
    actor: Principal,
    secret: str | None = None,
) -> tuple[EndpointPublic, str]:
    """Register an endpoint; returns it with its signing secret (generated when not
    given). The secret is not shown again."""
    allowed(actor, Action.MANAGE_WEBHOOKS)
    url = url.strip()
    problems = _check_url(url, EgressPolicy.parse(ctx.settings.webhook_internal_allowlist))
    wanted, event_problems = _check_events([e.strip() for e in events])
    problems += event_problems
    if secret is not None and not MIN_SECRET <= len(secret) <= MAX_SECRET:
        problems.append(
            FieldProblem("secret", f"must be {MIN_SECRET} to {MAX_SECRET} characters long")
        )
    if problems:
        raise ValidationFailed("the webhook endpoint is not valid", problems)
    secret = secret if secret is not None else secrets.token_urlsafe(32)
    now = ctx.clock.now()
    with ctx.write() as connection:
        endpoint_id = inserted_id(
            connection.execute(
                insert(webhook_endpoints).values(
                    url=url,
                    secret=secret,
                    events=wanted,
                    active=True,
                    created_by=actor.name,
                    created_at=now,
                )
            )
        )
    return EndpointPublic(int(endpoint_id), url, wanted, True, actor.name, now), secret


def _public(row: RowMapping) -> EndpointPublic:
    return EndpointPublic(
        id=int(row["id"]),
        url=row["url"],
        events=list(row["events"]),
        active=bool(row["active"]),
        created_by=row["created_by"],
        created_at=row["created_at"],
    )


_COLUMNS = (
    webhook_endpoints.c.id,
    webhook_endpoints.c.url,
    webhook_endpoints.c.events,
    webhook_endpoints.c.active,
    webhook_endpoints.c.created_by,
    webhook_endpoints.c.created_at,
)


def list_endpoints(ctx: Context, *, actor: Principal) -> list[EndpointPublic]:
    """Every endpoint, active or not, oldest first."""
    allowed(actor, Action.MANAGE_WEBHOOKS)
    with ctx.read() as connection:
        return [
            _public(r)
            for r in connection.execute(
                select(*_COLUMNS).order_by(webhook_endpoints.c.id)
            ).mappings()
        ]


def get_endpoint(ctx: Context, endpoint_id: int, *, actor: Principal) -> EndpointPublic:
    """One endpoint, without its secret."""
    allowed(actor, Action.MANAGE_WEBHOOKS)
    with ctx.read() as connection:
        return _endpoint(connection, endpoint_id)


def _endpoint(connection: Connection, endpoint_id: int) -> EndpointPublic:
    row = (
        connection.execute(select(*_COLUMNS).where(webhook_endpoints.c.id == endpoint_id))
        .mappings()
        .first()
    )
    if row is None:
        raise NotFound(f"webhook endpoint {endpoint_id} does not exist")
    return _public(row)


def disable_endpoint(ctx: Context, endpoint_id: int, *, actor: Principal) -> EndpointPublic:
    """Stop sending to an endpoint (idempotent); its delivery log is kept."""
    allowed(actor, Action.MANAGE_WEBHOOKS)
    with ctx.write() as connection:
        changed = connection.execute(
            update(webhook_endpoints)
            .where(webhook_endpoints.c.id == endpoint_id)
            .values(active=False)
        ).rowcount
        if not changed:
            raise NotFound(f"webhook endpoint {endpoint_id} does not exist")
        return _endpoint(connection, endpoint_id)


def list_deliveries(
    ctx: Context, endpoint_id: int, *, actor: Principal, limit: int = 100
) -> list[DeliveryPublic]:
    """The newest ``limit`` events of an endpoint, newest first, each with its
    attempts in order."""
    allowed(actor, Action.MANAGE_WEBHOOKS)
    with ctx.read() as connection:
        found = connection.execute(
            select(webhook_endpoints.c.id).where(webhook_endpoints.c.id == endpoint_id)
        ).first()
        if found is None:
            raise NotFound(f"webhook endpoint {endpoint_id} does not exist")
        rows = connection.execute(
            select(
                outbox.c.id,
                outbox.c.topic,
                outbox.c.handoff_id,
                outbox.c.status,
                outbox.c.attempts,
                outbox.c.last_error,
                outbox.c.created_at,
                outbox.c.sent_at,
            )
            .where(outbox.c.channel == "webhook", outbox.c.endpoint_id == endpoint_id)
            .order_by(outbox.c.id.desc())
            .limit(limit)
        ).all()
        history: dict[int, list[DeliveryAttempt]] = {}
        if rows:
            for d in connection.execute(
                select(deliveries)
                .where(deliveries.c.outbox_id.in_([r.id for r in rows]))
                .order_by(deliveries.c.outbox_id, deliveries.c.attempt, deliveries.c.id)
            ):
                history.setdefault(int(d.outbox_id), []).append(
                    DeliveryAttempt(
                        attempt=int(d.attempt),
                        attempted_at=d.attempted_at,
                        ok=bool(d.ok),
                        status_code=d.status_code,
                        error=d.error,
                        duration_ms=float(d.duration_ms),
                    )
                )
    return [
        DeliveryPublic(
            id=int(r.id),
            topic=r.topic,
            handoff_id=r.handoff_id,
            status=r.status,
            attempts=int(r.attempts),
            last_error=r.last_error,
            created_at=r.created_at,
            sent_at=r.sent_at,
            history=history.get(int(r.id), []),
        )
        for r in rows
    ]
