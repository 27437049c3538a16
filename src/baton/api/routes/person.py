"""/api/v1/people: a person's data on request (GDPR access and erasure), by email.

Admins only (decided by :mod:`baton.services.person`). The export is one JSON document
(its shape is described, not typed field by field: it is every stored column of every
row about the person). The models live here: nothing else uses them.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from baton.api.deps import Actor, Authenticated, Ctx
from baton.services import person as person_service

router = APIRouter(prefix="/api/v1/people", tags=["people"], dependencies=[Authenticated])

Email = Annotated[
    str, Query(min_length=3, max_length=254, description="The person's email address.")
]


class PersonExportPublic(BaseModel):
    """Everything Baton holds about one person. Each list holds the stored rows as
    they are (every column; times in ISO 8601; raw bodies as text, or
    ``{"base64": ...}`` when not UTF-8). Empty lists: Baton holds nothing of theirs."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "email": "dana.reyes@northwind.example.com",
                    "exported_at": "2026-03-02T09:00:00+00:00",
                    "leads": [{"id": 42, "email": "dana.reyes@northwind.example.com"}],
                    "activities": [{"id": 7, "type": "captured", "properties": {}}],
                    "notes": [],
                    "tags": [],
                    "tag_events": [],
                    "transitions": [],
                    "handoffs": [{"id": 3, "status": "accepted", "events": []}],
                    "scores": [],
                    "prep": [],
                    "merges": [],
                    "nurture_enrollments": [{"id": 5, "sequence": "not-ready", "sends": []}],
                    "intake_requests": [{"id": 12, "endpoint": "site-form", "body": "..."}],
                    "inbound_email": [],
                    "outbox": [{"id": 31, "topic": "handoff.assigned", "deliveries": []}],
                    "suppressions": [],
                }
            ]
        },
    )

    email: str
    exported_at: str
    leads: list[dict[str, Any]] = Field(
        description="The lead(s): the one with the address and every lead merged with it"
    )
    activities: list[dict[str, Any]]
    notes: list[dict[str, Any]]
    tags: list[dict[str, Any]]
    tag_events: list[dict[str, Any]]
    transitions: list[dict[str, Any]]
    handoffs: list[dict[str, Any]] = Field(description="With their events")
    scores: list[dict[str, Any]]
    prep: list[dict[str, Any]]
    merges: list[dict[str, Any]]
    nurture_enrollments: list[dict[str, Any]] = Field(description="With their sends")
    intake_requests: list[dict[str, Any]] = Field(description="Raw hook requests, with their items")
    inbound_email: list[dict[str, Any]] = Field(description="Raw mail from or about the person")
    outbox: list[dict[str, Any]] = Field(description="Email and webhooks to or about them")
    suppressions: list[dict[str, Any]]


class EraseRequest(BaseModel):
    """Whose data to erase."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"email": "dana.reyes@northwind.example.com"}]},
    )

    email: str = Field(min_length=3, max_length=254, description="The person's email address.")


class ErasurePublic(BaseModel):
    """What the erasure changed, in counts (the address is not repeated)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "leads": 1,
                    "activities": 14,
                    "notes": 2,
                    "intake_requests": 3,
                    "intake_items": 3,
                    "outbox_messages": 4,
                    "nurture_sends": 2,
                    "enrollments_ended": 1,
                    "suppression_key": "sha256:9f2c" + "0" * 60,
                }
            ]
        }
    )

    leads: int = Field(description="Lead rows kept with their personal fields nulled")
    activities: int = Field(description="Activities whose properties were removed")
    notes: int = Field(description="Notes deleted")
    intake_requests: int = Field(description="Raw requests emptied (status erased)")
    intake_items: int
    outbox_messages: int = Field(description="Messages whose payload was blanked")
    nurture_sends: int
    enrollments_ended: int = Field(description="Active nurture enrollments ended")
    suppression_key: str = Field(
        description="The SHA-256 of the address kept on the suppression list, so a later "
        "import is not mailed until the person opts in again"
    )


@router.get(
    "/export",
    operation_id="export_person",
    response_model=PersonExportPublic,
    responses={422: {"description": "Not an email address"}},
)
def export_person(ctx: Ctx, actor: Actor, email: Email) -> dict[str, Any]:
    """Everything Baton holds about the person with this address (a data subject
    access request): leads, activities, notes, tags, transitions, handoffs and their
    events, raw intake requests and inbound mail, outbox messages, nurture enrollments
    and sends, suppression entry."""
    return person_service.export_person(ctx, email, actor=actor)


@router.post(
    "/erase",
    operation_id="erase_person",
    response_model=ErasurePublic,
    responses={422: {"description": "Not an email address"}},
)
def erase_person(ctx: Ctx, actor: Actor, body: EraseRequest) -> ErasurePublic:
    """Erase the person with this address in one transaction, keeping anonymous counts
    for the reports; the address is kept only as a SHA-256 on the suppression list.
    Cannot be undone."""
    result = person_service.erase_person(ctx, body.email, actor=actor)
    return ErasurePublic.model_validate(result.as_dict())
