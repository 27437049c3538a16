"""/api/v1/outbox: every email and webhook Baton has to send, by state, and retries.

Admins only (decided by :mod:`baton.services.outbox`); every route needs credentials.
The models live here rather than in ``schemas.py``: nothing else uses them.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field

from baton.api.deps import Actor, Authenticated, Ctx
from baton.domain.activities import MAX_ID
from baton.services import outbox as outbox_service
from baton.services.outbox import OutboxChannel, OutboxState

router = APIRouter(prefix="/api/v1/outbox", tags=["outbox"], dependencies=[Authenticated])

MessageId = Annotated[int, Path(ge=1, le=MAX_ID, description="An outbox message's id.")]
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No such message"}}


class OutboxAttemptPublic(BaseModel):
    """One try at sending a message (never the receiver's reply, only its status)."""

    attempt: int
    attempted_at: datetime
    ok: bool
    status_code: int | None = Field(description="HTTP status, or the SMTP reply code")
    error: str | None
    duration_ms: float


class OutboxMessagePublic(BaseModel):
    """An email or a webhook delivery waiting, sent, or given up on."""

    id: int
    channel: OutboxChannel
    topic: str = Field(description="handoff.assigned, sla.remind, sla.manager, ...")
    state: OutboxState = Field(
        description="pending (not tried yet), retrying (failed, tried again at "
        "next_attempt_at), failed (given up), sent"
    )
    recipient: str = Field(description="An email address, or the webhook's URL")
    handoff_id: int | None
    endpoint_id: int | None
    attempts: int
    last_error: str | None
    created_at: datetime
    next_attempt_at: datetime | None
    sent_at: datetime | None
    in_flight: bool = Field(description="A worker holds it and may be sending it now")
    history: list[OutboxAttemptPublic] | None = Field(
        None, description="Every attempt (only when one message is asked for)"
    )


class RetriedPublic(BaseModel):
    retried: int = Field(description="How many failed messages are due again")


@router.get("", operation_id="list_outbox", response_model=list[OutboxMessagePublic])
def list_outbox(
    ctx: Ctx,
    actor: Actor,
    state: Annotated[
        list[OutboxState] | None, Query(description="Only these states (repeat the key)")
    ] = None,
    channel: Annotated[OutboxChannel | None, Query(description="email, webhook or chat")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    before_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
) -> list[OutboxMessagePublic]:
    """Messages newest first (``?state=failed&channel=email``); ``before_id`` pages."""
    return [
        OutboxMessagePublic.model_validate(asdict(m))
        for m in outbox_service.list_messages(
            ctx, actor=actor, states=state or (), channel=channel, limit=limit, before_id=before_id
        )
    ]


@router.post(
    "/retry-failed",
    operation_id="retry_failed_outbox",
    response_model=RetriedPublic,
)
def retry_failed_outbox(
    ctx: Ctx,
    actor: Actor,
    channel: Annotated[OutboxChannel | None, Query(description="Only this channel")] = None,
) -> RetriedPublic:
    """Retry every failed message (webhooks of disabled endpoints stay failed), each
    with a fresh series of attempts."""
    return RetriedPublic(retried=outbox_service.retry_failed(ctx, actor=actor, channel=channel))


@router.get(
    "/{message_id:int}",
    operation_id="get_outbox_message",
    response_model=OutboxMessagePublic,
    responses=NOT_FOUND,
)
def get_outbox_message(ctx: Ctx, actor: Actor, message_id: MessageId) -> OutboxMessagePublic:
    """One message with every attempt (status code, short error, duration)."""
    return OutboxMessagePublic.model_validate(
        asdict(outbox_service.get_message(ctx, message_id, actor=actor))
    )


@router.post(
    "/{message_id:int}/retry",
    operation_id="retry_outbox_message",
    response_model=OutboxMessagePublic,
    responses={
        **NOT_FOUND,
        409: {"description": "Already sent, being sent, or its webhook endpoint is disabled"},
    },
)
def retry_outbox_message(ctx: Ctx, actor: Actor, message_id: MessageId) -> OutboxMessagePublic:
    """Send a failed or retrying message again now, with a fresh series of attempts."""
    return OutboxMessagePublic.model_validate(
        asdict(outbox_service.retry_message(ctx, message_id, actor=actor))
    )
