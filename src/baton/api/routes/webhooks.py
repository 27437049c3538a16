"""/api/v1/webhooks: endpoints that receive signed handoff events, and their deliveries.

Admins only (decided by :mod:`baton.services.webhooks`); every route needs credentials."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, status

from baton.api.deps import Actor, Authenticated, Ctx
from baton.api.schemas import DeliveryPublic, WebhookCreate, WebhookCreatedPublic, WebhookPublic
from baton.domain.activities import MAX_ID
from baton.services import webhooks as webhook_service

router = APIRouter(prefix="/api/v1/webhooks", tags=["webhooks"], dependencies=[Authenticated])

EndpointId = Annotated[int, Path(ge=1, le=MAX_ID, description="A webhook endpoint's id.")]
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No such endpoint"}}


@router.post(
    "",
    operation_id="create_webhook",
    response_model=WebhookCreatedPublic,
    status_code=status.HTTP_201_CREATED,
    responses={422: {"description": "Bad URL or unknown event names (problem+json)"}},
)
def create_webhook(ctx: Ctx, actor: Actor, body: WebhookCreate) -> WebhookCreatedPublic:
    """Register an endpoint for some events (or ``*``). The answer carries the signing
    secret: it is shown this once, store it to verify the ``X-Baton-Signature``."""
    endpoint, secret = webhook_service.create_endpoint(
        ctx, url=body.url, events=body.events, secret=body.secret, actor=actor
    )
    return WebhookCreatedPublic(**asdict(endpoint), secret=secret)


@router.get("", operation_id="list_webhooks", response_model=list[WebhookPublic])
def list_webhooks(ctx: Ctx, actor: Actor) -> list[WebhookPublic]:
    """Every endpoint, active or disabled (secrets are never shown again)."""
    return [
        WebhookPublic.model_validate(asdict(e))
        for e in webhook_service.list_endpoints(ctx, actor=actor)
    ]


@router.delete(
    "/{endpoint_id}",
    operation_id="delete_webhook",
    response_model=WebhookPublic,
    responses=NOT_FOUND,
)
def delete_webhook(ctx: Ctx, actor: Actor, endpoint_id: EndpointId) -> WebhookPublic:
    """Disable an endpoint: nothing more is sent to it; its delivery log is kept."""
    return WebhookPublic.model_validate(
        asdict(webhook_service.disable_endpoint(ctx, endpoint_id, actor=actor))
    )


@router.get(
    "/{endpoint_id}/deliveries",
    operation_id="list_webhook_deliveries",
    response_model=list[DeliveryPublic],
    responses=NOT_FOUND,
)
def deliveries(
    ctx: Ctx,
    actor: Actor,
    endpoint_id: EndpointId,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[DeliveryPublic]:
    """The newest events for this endpoint with every attempt (status code, error,
    duration)."""
    return [
        DeliveryPublic.model_validate(asdict(d))
        for d in webhook_service.list_deliveries(ctx, endpoint_id, actor=actor, limit=limit)
    ]
