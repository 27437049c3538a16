"""/api/v1/activities: engagement events, one at a time or in batches.

Marketing, admins and intake keys (websites, form tools) record events; the use cases
decide, the routes only authenticate."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Response, status
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from baton.api.deps import Actor, Authenticated, Ctx
from baton.api.schemas import (
    INTAKE_RECEIPT,
    ActivityBatchCreate,
    ActivityBatchPublic,
    ActivityPublic,
    IntakeReceipt,
    RowErrorPublic,
    receipt,
)
from baton.domain.activities import ActivityCreate
from baton.domain.batches import describe
from baton.domain.errors import FieldProblem, ValidationFailed
from baton.services import activities as activity_service

router = APIRouter(prefix="/api/v1/activities", tags=["activities"], dependencies=[Authenticated])


@router.post(
    "",
    operation_id="ingest_activity",
    response_model=ActivityPublic,
    status_code=status.HTTP_201_CREATED,
    responses={
        200: {"description": "Retry of an event already stored", "model": ActivityPublic},
        404: {"description": "No lead with this lead_id"},
        **INTAKE_RECEIPT,
    },
)
def ingest_activity(
    ctx: Ctx,
    actor: Actor,
    response: Response,
    payload: Annotated[
        dict[str, object],
        Body(
            openapi_examples={
                "pricing page view": {"value": ActivityCreate.model_json_schema()["examples"][0]},
                "demo request, just now": {
                    "summary": "No occurred_at: it happened when Baton received it",
                    "value": {"email": "dana.reyes@northwind.example.com", "type": "demo_request"},
                },
            }
        ),
    ],
) -> ActivityPublic | JSONResponse:
    """Store one event (body: ``ActivityCreate``). An unknown email creates the lead; a
    repeated ``idempotency_key`` stores nothing and answers 200 with the first id.
    Without ``occurred_at`` the event happened when it was received; ``type`` ignores
    case and separators, and an unknown one is answered with the closest known type."""
    try:
        event = ActivityCreate.model_validate(
            payload, context=activity_service.validation_context(ctx)
        )
    except ValidationError as exc:
        raise ValidationFailed(
            "the activity failed validation",
            [FieldProblem(loc, msg) for loc, msg in describe(exc)],
        ) from None
    result = activity_service.ingest_activity(ctx, event, actor=actor)
    if actor.kind == "intake_key":
        return receipt(IntakeReceipt(received=1))
    if result.duplicate:
        response.status_code = status.HTTP_200_OK
    return ActivityPublic(
        activity_id=result.activity_id,
        lead_id=result.lead_id,
        duplicate=result.duplicate,
        lead_created=result.lead_created,
    )


@router.post(
    "/batch",
    operation_id="ingest_activity_batch",
    response_model=ActivityBatchPublic,
    responses=INTAKE_RECEIPT,
)
def ingest_batch(
    ctx: Ctx, actor: Actor, body: ActivityBatchCreate
) -> ActivityBatchPublic | JSONResponse:
    """Store up to 10,000 events, written in transactions of at most 2,500 (other
    writers get turns between them). Each row is validated on its own; rejected rows are
    listed by index (0-based) with the reason, the others are stored. Retrying the same
    batch with idempotency keys stores nothing twice, also after a failure halfway."""
    report = activity_service.ingest_activities(ctx, body.activities, actor=actor)
    errors = [RowErrorPublic(index=e.row, field=e.field, message=e.message) for e in report.errors]
    rejected = len({e.row for e in report.errors})
    if actor.kind == "intake_key":
        return receipt(
            IntakeReceipt(received=report.received, rejected_rows=rejected, errors=errors)
        )
    return ActivityBatchPublic(
        received=report.received,
        stored=report.stored,
        duplicates=report.duplicates,
        leads_created=report.leads_created,
        rejected_rows=rejected,
        errors=errors,
    )
