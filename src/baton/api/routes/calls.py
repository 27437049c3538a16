"""/api/v1/calls: an inbound phone call, logged by a phone system or a person.

The use case (:func:`baton.services.calls.log_inbound_call`) finds or creates the lead
and records the call as an ``inbound_call`` hand-raise; this route only parses.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Response, status
from pydantic import BaseModel, Field, ValidationError

from baton.api.deps import Actor, Authenticated, Ctx
from baton.api.schemas import LeadPublic
from baton.domain.batches import describe
from baton.domain.calls import CallCreate
from baton.domain.errors import FieldProblem, ValidationFailed
from baton.services import calls as call_service

router = APIRouter(prefix="/api/v1/calls", tags=["calls"], dependencies=[Authenticated])


class CallHandoffPublic(BaseModel):
    """The open handoff the caller's lead is in."""

    id: int
    status: str
    rep_email: str | None
    rep_name: str | None


class CallPublic(BaseModel):
    """What logging a call did."""

    lead: LeadPublic
    lead_created: bool
    matched_by: str = Field(description="lead_id, email, phone or created")
    note: str | None = Field(
        None, description="Why this lead, when several share the number (or a merge moved it)"
    )
    activity_id: int | None
    duplicate: bool = Field(description="A retry with a call_id already stored")
    became_mql: bool = Field(description="The call handed the lead off (a hand-raise)")
    handoff: CallHandoffPublic | None


@router.post(
    "",
    operation_id="log_inbound_call",
    response_model=CallPublic,
    status_code=status.HTTP_201_CREATED,
    responses={
        200: {"description": "Retry of a call already logged (same call_id)", "model": CallPublic},
        404: {"description": "No lead with this lead_id"},
        422: {"description": "No caller named, a bad number, URL, time or unknown rep"},
    },
)
def log_inbound_call(
    ctx: Ctx,
    actor: Actor,
    response: Response,
    payload: Annotated[
        dict[str, object],
        Body(
            openapi_examples={
                "a known number calls": {"value": CallCreate.model_json_schema()["examples"][0]},
                "a new caller, just now": {
                    "summary": "Unknown number: the lead is created",
                    "value": {"phone": "(415) 555-0188", "duration_seconds": 95},
                },
            }
        ),
    ],
) -> CallPublic:
    """Log an inbound call (body: ``CallCreate``): the lead is found by ``lead_id``,
    else ``email``, else ``phone`` (E.164; a number on several leads picks the most
    recently active, and ``note`` says so), or created. The call is an
    ``inbound_call`` activity, a hand-raise in the example contract, so the answer
    shows the handoff it opened. ``recording_url`` is stored, never fetched. Admins
    and marketing; a rep logs a call on their handoff (``/handoffs/{id}/touch``)."""
    try:
        call = CallCreate.model_validate(payload, context=call_service.validation_context(ctx))
    except ValidationError as exc:
        raise ValidationFailed(
            "the call failed validation", [FieldProblem(loc, msg) for loc, msg in describe(exc)]
        ) from None
    result = call_service.log_inbound_call(ctx, call, actor=actor)
    if result.duplicate:
        response.status_code = status.HTTP_200_OK
    handoff = result.handoff
    return CallPublic(
        lead=LeadPublic.model_validate(result.lead.model_dump()),
        lead_created=result.lead_created,
        matched_by=result.matched_by,
        note=result.note,
        activity_id=result.activity_id,
        duplicate=result.duplicate,
        became_mql=result.became_mql,
        handoff=CallHandoffPublic(
            id=handoff.id,
            status=handoff.status,
            rep_email=handoff.rep_email,
            rep_name=handoff.rep_name,
        )
        if handoff
        else None,
    )
