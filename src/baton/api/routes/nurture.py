"""/api/v1/nurture: the contract's nurture sequences at work: preview a template for a
lead (and, added by the enrollment and engagement work, enrollments and their steps).

Every route needs credentials; who may do what is decided by the use cases
(:mod:`baton.services.nurture_preview` and friends), so the API and the CLI obey the
same rules."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field, model_validator

from baton.api.deps import Actor, Authenticated, Ctx
from baton.domain.activities import MAX_ID
from baton.services import nurture as enroll_service
from baton.services import nurture_preview as preview_service

router = APIRouter(prefix="/api/v1/nurture", tags=["nurture"], dependencies=[Authenticated])

TemplateName = Annotated[str, Field(min_length=1, max_length=100, examples=["check-in"])]


class PreviewRequest(BaseModel):
    """Which email to render for which lead: a ``template`` by name, or a ``sequence``
    and its ``step`` (1-based). With ``contract`` (a draft's YAML text) the draft's
    templates are used instead of the active contract's."""

    lead_id: int = Field(ge=1, le=MAX_ID, examples=[42])
    template: TemplateName | None = None
    sequence: str | None = Field(None, min_length=1, max_length=100, examples=["not-ready"])
    step: int | None = Field(None, ge=1, le=100, examples=[2])
    contract: str | None = Field(
        None,
        min_length=1,
        max_length=500_000,
        description="A draft contract's YAML text; its templates are previewed instead",
    )

    model_config = {
        "json_schema_extra": {
            "examples": [
                {"lead_id": 42, "template": "check-in"},
                {"lead_id": 42, "sequence": "not-ready", "step": 2},
            ]
        }
    }

    @model_validator(mode="after")
    def _one_choice(self) -> PreviewRequest:
        if (self.template is None) == (self.sequence is None):
            raise ValueError("give either template, or sequence (and step)")
        if self.step is not None and self.sequence is None:
            raise ValueError("step needs a sequence")
        return self


class PreviewPublic(BaseModel):
    """The email as the lead would get it (links not yet rewritten to click links)."""

    lead_id: int
    to: str | None = Field(description="The lead's email address")
    template: str
    sequence: str | None
    step: int | None = Field(description="1-based step of the sequence, when asked by step")
    contract_version: int | None = Field(description="The active version; null for a draft")
    subject: str
    text: str
    html: str | None
    links: list[str] = Field(description="Every URL the email links to (click-tracked)")


PREVIEW_EXAMPLE: dict[str, Any] = {
    "lead_id": 42,
    "to": "ana@acme.example",
    "template": "check-in",
    "sequence": None,
    "step": None,
    "contract_version": 3,
    "subject": "Ana, a quick thought for Acme",
    "text": "Hi Ana,\n\n...",
    "html": "<p>Hi Ana,</p>...",
    "links": ["https://lumen-analytics.example/guides/when-to-replace-reporting"],
}


@router.post(
    "/preview",
    operation_id="preview_nurture_email",
    response_model=PreviewPublic,
    responses={
        200: {"content": {"application/json": {"example": PREVIEW_EXAMPLE}}},
        404: {"description": "No such lead, or no active contract"},
        422: {"description": "Unknown template, sequence or step; or a draft with problems"},
    },
)
def preview(ctx: Ctx, actor: Actor, body: PreviewRequest) -> PreviewPublic:
    """Render a nurture template of the active contract (or of a draft's text) for one
    lead: subject, text, html and the links it carries. Admins and marketing."""
    shown = preview_service.preview_template(
        ctx,
        lead_id=body.lead_id,
        template=body.template,
        sequence=body.sequence,
        step=body.step,
        contract_text=body.contract,
        actor=actor,
    )
    return PreviewPublic(
        lead_id=shown.lead_id,
        to=shown.to,
        template=shown.template,
        sequence=shown.sequence,
        step=shown.step,
        contract_version=shown.contract_version,
        subject=shown.email.subject,
        text=shown.email.text,
        html=shown.email.html,
        links=shown.email.links,
    )


# --- enrollments (who is in which sequence; bulk enrollment with a preview) ---------------

SequenceName = Annotated[str, Field(min_length=1, max_length=100, examples=["not-ready"])]
EnrollmentId = Annotated[int, Path(ge=1, le=MAX_ID, description="An enrollment's id.")]


class EnrollRequest(BaseModel):
    """Which leads to enroll in ``sequence``: exactly one of a ``tag``, a saved lead
    ``filter`` (its name or id) or explicit ``lead_ids``. Send the same body to
    ``/enrollments/preview`` first: it shows who would be enrolled and who is excluded
    and why, and changes nothing."""

    sequence: SequenceName
    tag: str | None = Field(None, min_length=1, max_length=100, examples=["cold"])
    filter: str | None = Field(
        None, min_length=1, max_length=100, description="A saved lead filter's name or id"
    )
    lead_ids: list[Annotated[int, Field(ge=1, le=MAX_ID)]] | None = Field(
        None,
        min_length=1,
        max_length=10_000,
        description="Explicit leads: any that may not be enrolled fails the whole call (422)",
    )
    sample: int = Field(50, ge=0, le=1000, description="How many leads of each list to show")

    model_config = {
        "json_schema_extra": {
            "examples": [
                {"sequence": "not-ready", "tag": "cold"},
                {"sequence": "not-ready", "filter": "stalled trials"},
                {"sequence": "not-ready", "lead_ids": [42]},
            ]
        }
    }

    @model_validator(mode="after")
    def _one_selection(self) -> EnrollRequest:
        given = [v for v in (self.tag, self.filter, self.lead_ids) if v is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of tag, filter or lead_ids")
        return self

    def selection(self) -> enroll_service.Selection:
        return enroll_service.Selection(
            sequence=self.sequence,
            tag=self.tag,
            saved_filter=self.filter,
            lead_ids=tuple(self.lead_ids) if self.lead_ids is not None else None,
        )


class PreviewLeadPublic(BaseModel):
    lead_id: int
    email: str | None
    name: str | None
    first_template: str | None = Field(None, description="The step it would get first")
    first_due_at: datetime | None = None
    reasons: list[str] = Field(
        default_factory=list,
        description="Why it is excluded: no_email, no_consent, unsubscribed, suppressed, "
        "hard_bounce, open_handoff, stage, already_enrolled, no_step",
    )
    why: list[str] = Field(default_factory=list, description="The reasons in words")


class EnrollPreviewPublic(BaseModel):
    """Who the selection enrolls (or would) and who it leaves out, with counts."""

    sequence: str
    selection: str
    contract_version: int
    matched: int = Field(description="Leads the tag, filter or list names")
    would_enroll: int
    excluded: int
    excluded_by_reason: dict[str, int]
    enroll_sample: list[PreviewLeadPublic]
    excluded_sample: list[PreviewLeadPublic]
    enrolled: int = Field(0, description="Enrolled by this call (0 for a preview)")
    enrollment_ids: list[int] = Field(default_factory=list)


ENROLL_EXAMPLE: dict[str, Any] = {
    "sequence": "not-ready",
    "selection": "tag 'cold'",
    "contract_version": 3,
    "matched": 3,
    "would_enroll": 1,
    "excluded": 2,
    "excluded_by_reason": {"no_consent": 1, "already_enrolled": 1},
    "enroll_sample": [
        {
            "lead_id": 42,
            "email": "ana@acme.example",
            "name": "Ana Ruiz",
            "first_template": "check-in",
            "first_due_at": "2026-03-09T09:00:00Z",
            "reasons": [],
            "why": [],
        }
    ],
    "excluded_sample": [
        {
            "lead_id": 43,
            "email": "bo@acme.example",
            "name": None,
            "first_template": None,
            "first_due_at": None,
            "reasons": ["no_consent"],
            "why": ["no consent with a lawful basis recorded"],
        }
    ],
    "enrolled": 0,
    "enrollment_ids": [],
}


class SendPublic(BaseModel):
    step: int = Field(description="0-based index of the sequence's step")
    template: str
    status: str
    planned_at: datetime
    sent_at: datetime | None
    message_id: str | None


class EnrollmentPublic(BaseModel):
    """A lead's place in a sequence: the next step and when it is due, or why it ended."""

    id: int
    lead_id: int
    email: str | None
    sequence: str
    contract_version: int
    status: str = Field(description="active, completed or exited")
    reason: str = Field(description="Why the lead was enrolled")
    enrolled_at: datetime
    enrolled_by: str
    next_step: int | None = Field(description="0-based index of the next step (active only)")
    next_template: str | None
    next_due_at: datetime | None
    touches: int
    max_touches: int | None
    last_touch_at: datetime | None
    ended_at: datetime | None
    exit_reason: str | None = Field(
        description="reply, hand_raise, re_mql, unsubscribe, hard_bounce, sales_took_back, "
        "disqualified, erased, manual, error; max_touches or completed when completed"
    )
    sends: list[SendPublic] | None = None


ENROLLMENT_EXAMPLE: dict[str, Any] = {
    "id": 7,
    "lead_id": 42,
    "email": "ana@acme.example",
    "sequence": "not-ready",
    "contract_version": 3,
    "status": "active",
    "reason": "rejected: not_ready",
    "enrolled_at": "2026-03-02T09:00:00Z",
    "enrolled_by": "rep@lumen.example",
    "next_step": 1,
    "next_template": "case-study",
    "next_due_at": "2026-03-23T09:00:00Z",
    "touches": 1,
    "max_touches": 6,
    "last_touch_at": "2026-03-09T09:00:00Z",
    "ended_at": None,
    "exit_reason": None,
    "sends": None,
}


def _preview_public(found: enroll_service.EnrollPreview) -> EnrollPreviewPublic:
    return EnrollPreviewPublic.model_validate(asdict(found))


@router.post(
    "/enrollments/preview",
    operation_id="preview_nurture_enrollment",
    response_model=EnrollPreviewPublic,
    responses={
        200: {"content": {"application/json": {"example": ENROLL_EXAMPLE}}},
        404: {"description": "A lead named in lead_ids does not exist"},
        422: {"description": "Unknown sequence or saved filter; not exactly one selection"},
    },
)
def preview_enrollment(ctx: Ctx, actor: Actor, body: EnrollRequest) -> EnrollPreviewPublic:
    """Who the selection would enroll now (first step and when) and who is excluded and
    why (no consent, unsubscribed or suppressed, hard bounce, already enrolled, open
    handoff, no email), with counts. Changes nothing. Admins and marketing."""
    return _preview_public(
        enroll_service.preview_enrollment(ctx, body.selection(), actor=actor, sample=body.sample)
    )


@router.post(
    "/enrollments",
    operation_id="enroll_in_nurture",
    response_model=EnrollPreviewPublic,
    responses={
        200: {
            "content": {
                "application/json": {
                    "example": {**ENROLL_EXAMPLE, "enrolled": 1, "enrollment_ids": [7]}
                }
            }
        },
        404: {"description": "A lead named in lead_ids does not exist"},
        422: {
            "description": "Unknown sequence or filter; a named lead that may not be "
            "enrolled (the problem names the lead and the field); nothing is enrolled"
        },
    },
)
def enroll(ctx: Ctx, actor: Actor, body: EnrollRequest) -> EnrollPreviewPublic:
    """Enroll the selection in one transaction (re-checked now; leads already enrolled
    are skipped, so repeating the call enrolls nobody twice). Admins and marketing."""
    return _preview_public(
        enroll_service.enroll_leads(ctx, body.selection(), actor=actor, sample=body.sample)
    )


@router.get(
    "/enrollments",
    operation_id="list_nurture_enrollments",
    response_model=list[EnrollmentPublic],
    responses={200: {"content": {"application/json": {"example": [ENROLLMENT_EXAMPLE]}}}},
)
def list_enrollments(
    ctx: Ctx,
    actor: Actor,
    lead_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    sequence: Annotated[str | None, Query(min_length=1, max_length=100)] = None,
    status: Annotated[
        Literal["active", "completed", "exited"] | None, Query(description="By status")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> list[EnrollmentPublic]:
    """Enrollments newest first, with the next step and when it is due."""
    return [
        EnrollmentPublic.model_validate(asdict(e))
        for e in enroll_service.list_enrollments(
            ctx,
            actor=actor,
            lead_id=lead_id,
            sequence=sequence,
            status=status,
            limit=limit,
            offset=offset,
        )
    ]


@router.get(
    "/enrollments/{enrollment_id}",
    operation_id="get_nurture_enrollment",
    response_model=EnrollmentPublic,
    responses={
        200: {"content": {"application/json": {"example": ENROLLMENT_EXAMPLE}}},
        404: {"description": "No such enrollment"},
    },
)
def get_enrollment(ctx: Ctx, actor: Actor, enrollment_id: EnrollmentId) -> EnrollmentPublic:
    """One enrollment."""
    return EnrollmentPublic.model_validate(
        asdict(enroll_service.get_enrollment(ctx, enrollment_id, actor=actor))
    )


@router.delete(
    "/enrollments/{enrollment_id}",
    operation_id="end_nurture_enrollment",
    response_model=EnrollmentPublic,
    responses={
        200: {
            "content": {
                "application/json": {
                    "example": {
                        **ENROLLMENT_EXAMPLE,
                        "status": "exited",
                        "exit_reason": "manual",
                        "next_step": None,
                        "next_template": None,
                        "next_due_at": None,
                        "ended_at": "2026-03-10T09:00:00Z",
                    }
                }
            }
        },
        404: {"description": "No such enrollment"},
    },
)
def end_enrollment(ctx: Ctx, actor: Actor, enrollment_id: EnrollmentId) -> EnrollmentPublic:
    """End one enrollment now (exit reason ``manual``); ending an ended one changes
    nothing. Admins and marketing."""
    return EnrollmentPublic.model_validate(
        asdict(enroll_service.end_enrollment(ctx, enrollment_id, actor=actor))
    )
