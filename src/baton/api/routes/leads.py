"""/api/v1/leads: capture, read, list, stage changes, timeline, notes, tags, merge.

Every route needs an authenticated principal; what it may do, and which leads it
reaches, is decided by the use cases (a lead out of reach answers 404)."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Request, Response, status
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field, ValidationError

from baton.api.deps import Actor, Authenticated, Ctx, LeadId, get_context, get_principal
from baton.api.schemas import (
    INTAKE_RECEIPT,
    MQL_GAPS_DESCRIPTION,
    MQL_GAPS_EXAMPLE,
    TAG_PATTERN,
    CaptureResponse,
    DuplicatePublic,
    IntakeReceipt,
    LeadPagePublic,
    LeadPublic,
    MergeCreate,
    MergePublic,
    MqlGapPublic,
    NoteCreate,
    NotePublic,
    PredictedReasonPublic,
    TagCreate,
    TagsPublic,
    TimelineItemPublic,
    TransitionCreate,
    TransitionPublic,
    receipt,
)
from baton.domain.access import Principal
from baton.domain.activities import MAX_ID
from baton.domain.batches import describe
from baton.domain.errors import FieldProblem, ValidationFailed
from baton.domain.leads import LeadCreate
from baton.domain.lifecycle import Stage
from baton.domain.limits import CONTEXT_KEY as JSON_LIMITS
from baton.domain.moments import iso_instant
from baton.services import leads as lead_service
from baton.services import merge as merge_service
from baton.services import notes as note_service
from baton.services import prep as prep_service
from baton.services import scoring as score_service
from baton.services.context import Context
from baton.services.timeline import lead_timeline

router = APIRouter(prefix="/api/v1/leads", tags=["leads"], dependencies=[Authenticated])

NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No such lead (problem+json)"}}


capture_router = APIRouter(prefix="/api/v1/leads", tags=["leads"])
"""Capture alone, with no dependency for FastAPI to resolve: the busiest route reads
its credentials and body itself (each resolved dependency costs every request)."""


@capture_router.post(
    "",
    operation_id="capture_lead",
    response_model=CaptureResponse,
    responses={
        200: {"description": "An existing lead (same email) was updated", "model": CaptureResponse},
        201: {"description": "A new lead was created"},
        **INTAKE_RECEIPT,
    },
    status_code=status.HTTP_201_CREATED,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {"type": "object", "additionalProperties": True, "title": "Payload"},
                    "examples": {
                        "webinar sign-up": {"value": LeadCreate.model_json_schema()["examples"][0]}
                    },
                }
            },
        }
    },
)
async def capture_lead(request: Request) -> Response:
    """Create a lead or update the one with the same email (never blanking a field).

    The body follows the ``LeadCreate`` schema; the phone number is read in the
    configured default region when it has no +country code. Called with an intake key,
    the answer is a 202 receipt: a public key never reads back a stored lead.

    ``occurred_at`` (beside the lead's fields; not from an intake key): when the lead
    was really captured, for history brought from elsewhere; the lead is created then,
    and an MQL older than the contract's ``mql.live_within_days`` opens no handoff."""
    actor = await get_principal(request)
    ctx = get_context(request)
    body = await request.body()  # at most lead_body_limit(): the app's BodyLimit sees to it
    if len(body) <= READ_ON_THE_LOOP:
        data, occurred_at = _lead_input(request, body, ctx, actor)
    else:
        data, occurred_at = await run_in_threadpool(_lead_input, request, body, ctx, actor)
    result = await lead_service.capture_lead_async(ctx, data, actor=actor, occurred_at=occurred_at)
    return _capture_answer(actor, result)


def lead_body_limit(json_max_bytes: int) -> int:
    """The largest body a single lead may come in: its ``attributes`` may take up to
    ``json_max_bytes`` (64 KiB by default) of compact JSON and its other fields are
    short; sixteen times that (at least 1 MiB) leaves room for JSON pretty-printed or
    escaped, where the server's limit for any request (``BATON_MAX_BODY_BYTES``, 32 MiB,
    for batches) would let one public request cost seconds of CPU and hundreds of MB to
    parse."""
    return max(1024 * 1024, 16 * json_max_bytes)


def lead_too_large(limit: int) -> str:
    """The 413's words for a lead's body over ``limit``."""
    return f"a lead's body is over {limit // 1024} KiB; send one lead, its attributes small"


READ_ON_THE_LOOP = 16 * 1024
"""A capture body up to this size is parsed and validated on the event loop (a form's
lead is well under 1 KB: a few µs, cheaper than a hop to a thread); a larger one in
the thread pool, so that a body of megabytes, valid or not, never holds up the other
requests while it is read."""


def _lead_input(
    request: Request, body: bytes, ctx: Context, actor: Principal
) -> tuple[LeadCreate, datetime | None]:
    return _capture_input(ctx, actor, _json_object(request, body))


def _capture_input(
    ctx: Context, actor: Principal, payload: dict[str, object]
) -> tuple[LeadCreate, datetime | None]:
    occurred_at = _occurred_at(payload, actor.kind == "intake_key")
    try:
        # Strict: JSON types as the schema says (consent is true or false, not 0 or "no").
        data = LeadCreate.model_validate(
            payload,
            strict=True,
            context={
                "default_region": ctx.settings.default_phone_region,
                JSON_LIMITS: ctx.settings.json_limits,
            },
        )
    except ValidationError as exc:
        problems = [FieldProblem(loc, _hinted(loc, msg)) for loc, msg in describe(exc)]
        raise ValidationFailed("the lead failed validation", problems) from None
    return data, occurred_at


UNKNOWN_LEAD_FIELD = "unknown field: a form's own fields go under attributes"


def _hinted(loc: str, message: str) -> str:
    """A lead's field Baton does not know (a form's ``message``, an ad's ``gclid``) is
    refused saying where such fields go, so a web developer need not search for it."""
    if message == "unknown field" and "." not in loc:
        return UNKNOWN_LEAD_FIELD
    return message


def _capture_answer(actor: Principal, result: lead_service.CaptureResult) -> Response:
    if actor.kind == "intake_key":
        return receipt(IntakeReceipt(received=1))
    answer = CaptureResponse(
        lead=LeadPublic.model_validate(result.lead, from_attributes=True),
        created=result.created,
        changed_fields=result.changed_fields,
        possible_duplicates=[
            DuplicatePublic(other_lead_id=d.other_id, reason=d.reason, similarity=d.similarity)
            for d in result.possible_duplicates
        ],
        duplicates=result.duplicates,
    )
    # Serialised by Pydantic at once: the answer is already a validated CaptureResponse,
    # and FastAPI's own path (validate it again, then jsonable_encoder) costs more than
    # the capture's statements.
    return Response(
        answer.model_dump_json(by_alias=True),
        status_code=status.HTTP_201_CREATED if result.created else status.HTTP_200_OK,
        media_type="application/json",
    )


def _json_object(request: Request, body: bytes) -> dict[str, object]:
    """The body as a JSON object, with the answers FastAPI gives a body parameter: JSON
    is read when the content type says JSON (``application/json``, ``…+json``) or
    says nothing; 422 naming ``body`` for what is not valid JSON or not an object, or
    is sent as another type; 400 for what cannot be read at all (not UTF-8, nesting no
    reader takes; the lead's own depth limit comes later, from the settings)."""
    kind = request.headers.get("content-type")
    if kind is not None and not _json_type(kind):
        message = "send the lead as JSON (Content-Type: application/json)"
        raise ValidationFailed(message, [FieldProblem("body", message)])
    if not body:
        message = "the body is empty: send the lead as a JSON object"
        raise ValidationFailed(message, [FieldProblem("body", message)])
    try:
        payload = json.loads(body)
    except json.JSONDecodeError:
        message = "the body is not valid JSON"
        raise ValidationFailed(message, [FieldProblem("body", message)]) from None
    except UnicodeDecodeError:
        raise HTTPException(400, "the body cannot be read: send JSON encoded as UTF-8") from None
    except RecursionError:
        raise HTTPException(400, "the body cannot be read: it is nested too deeply") from None
    except ValueError:  # a number of thousands of digits
        raise HTTPException(400, "the body cannot be read: a number in it is too long") from None
    if not isinstance(payload, dict):
        message = "a lead is a JSON object"
        raise ValidationFailed(message, [FieldProblem("body", message)])
    return payload


def _json_type(content_type: str) -> bool:
    kind, _, subtype = content_type.partition(";")[0].strip().lower().partition("/")
    return kind == "application" and (subtype == "json" or subtype.endswith("+json"))


@router.get("", operation_id="list_leads", response_model=LeadPagePublic)
def list_leads(
    ctx: Ctx,
    actor: Actor,
    stage: Stage | None = None,
    q: Annotated[str | None, Query(description="Search email, name or company.")] = None,
    tag: str | None = None,
    source: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    before_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
) -> LeadPagePublic:
    """Leads the caller may read, newest first, with filters and keyset paging."""
    page = lead_service.list_leads(
        ctx,
        actor=actor,
        stage=stage,
        search=q,
        tag=tag,
        source=source,
        limit=limit,
        before_id=before_id,
    )
    return LeadPagePublic(
        items=[LeadPublic.model_validate(i.model_dump()) for i in page.items],
        total=page.total,
        next_before_id=page.next_before_id,
    )


@router.get("/{lead_id}", operation_id="get_lead", response_model=LeadPublic, responses=NOT_FOUND)
def get_lead(ctx: Ctx, actor: Actor, lead_id: LeadId) -> LeadPublic:
    """One lead. A merged lead answers too, with ``merged_into_id`` set."""
    return LeadPublic.model_validate(lead_service.get_lead(ctx, lead_id, actor=actor).model_dump())


@router.post(
    "/{lead_id}/transitions",
    operation_id="change_stage",
    response_model=TransitionPublic,
    status_code=status.HTTP_201_CREATED,
    responses={**NOT_FOUND, 409: {"description": "Not allowed; lists the allowed stages"}},
)
def change_stage(
    ctx: Ctx, actor: Actor, lead_id: LeadId, body: TransitionCreate
) -> TransitionPublic:
    """Move a lead to another stage if the lifecycle allows it. With ``occurred_at``,
    a change that happened earlier is recorded as history at that time (422 when it is
    in the future, before the lead existed or before its previous stage change)."""
    step = lead_service.change_stage(
        ctx,
        lead_id,
        body.to_stage,
        actor=actor,
        reason=body.reason,
        occurred_at=body.occurred_at,
    )
    return TransitionPublic.model_validate(asdict(step))


@router.get(
    "/{lead_id}/timeline",
    operation_id="lead_timeline",
    response_model=list[TimelineItemPublic],
    responses=NOT_FOUND,
)
def timeline(
    ctx: Ctx,
    actor: Actor,
    lead_id: LeadId,
    limit: Annotated[int | None, Query(ge=1, le=10_000, description="Newest N only")] = None,
) -> list[TimelineItemPublic]:
    """Activities, transitions, notes, tag changes and merges, oldest first."""
    return [
        TimelineItemPublic.model_validate(asdict(i))
        for i in lead_timeline(ctx, lead_id, actor=actor, limit=limit)
    ]


@router.post(
    "/{lead_id}/notes",
    operation_id="add_note",
    response_model=NotePublic,
    status_code=status.HTTP_201_CREATED,
    responses=NOT_FOUND,
)
def add_note(ctx: Ctx, actor: Actor, lead_id: LeadId, body: NoteCreate) -> NotePublic:
    """Write a note on a lead (sales and marketing both do)."""
    return NotePublic.model_validate(
        asdict(note_service.add_note(ctx, lead_id, body.body, actor=actor))
    )


@router.post(
    "/{lead_id}/tags", operation_id="add_tag", response_model=TagsPublic, responses=NOT_FOUND
)
def add_tag(ctx: Ctx, actor: Actor, lead_id: LeadId, body: TagCreate) -> TagsPublic:
    """Tag a lead (idempotent)."""
    return TagsPublic(
        lead_id=lead_id, tags=note_service.add_tag(ctx, lead_id, body.tag, actor=actor)
    )


@router.delete(
    "/{lead_id}/tags/{tag}",
    operation_id="remove_tag",
    response_model=TagsPublic,
    responses=NOT_FOUND,
)
def remove_tag(
    ctx: Ctx,
    actor: Actor,
    lead_id: LeadId,
    tag: Annotated[str, Path(min_length=1, max_length=100, pattern=TAG_PATTERN)],
) -> TagsPublic:
    """Remove a tag from a lead."""
    return TagsPublic(lead_id=lead_id, tags=note_service.remove_tag(ctx, lead_id, tag, actor=actor))


@router.post(
    "/{lead_id}/merge",
    operation_id="merge_leads",
    response_model=MergePublic,
    responses={**NOT_FOUND, 409: {"description": "Already merged or same lead"}},
)
def merge(ctx: Ctx, actor: Actor, lead_id: LeadId, body: MergeCreate) -> MergePublic:
    """Merge another lead into this one, keeping every activity, note and transition."""
    result = merge_service.merge_leads(ctx, lead_id, body.merged_lead_id, actor=actor)
    return MergePublic.model_validate(asdict(result))


class RuleHitPublic(BaseModel):
    section: Literal["fit", "engagement", "predicted"] = Field(
        description="predicted: the contract's learned model (weight × probability)"
    )
    label: str
    points: float
    events: int = Field(description="Events that fed an engagement rule")
    capped: bool


class LeadScorePublic(BaseModel):
    """A lead's score now, with every rule that fired (the explanation sales reads)
    and what still stands between the lead and the MQL rule."""

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "lead_id": 42,
                    "contract_version": 3,
                    "fit": 38.0,
                    "engagement": 17.5,
                    "total": 55.5,
                    "grade": "B",
                    "threshold": 60,
                    "explanation": [
                        {
                            "section": "fit",
                            "label": "Analyst or manager title",
                            "points": 8.0,
                            "events": 0,
                            "capped": False,
                        },
                        {
                            "section": "engagement",
                            "label": "Pricing page",
                            "points": 17.5,
                            "events": 2,
                            "capped": False,
                        },
                    ],
                    "scored_at": "2026-03-02T09:00:00Z",
                    "mql_gaps": MQL_GAPS_EXAMPLE,
                    "probability": None,
                    "reasons": [],
                    "model_problem": None,
                },
                {
                    "lead_id": 43,
                    "contract_version": 4,
                    "fit": 20.0,
                    "engagement": 10.0,
                    "total": 48.2,
                    "grade": "B",
                    "threshold": 60,
                    "explanation": [
                        {
                            "section": "fit",
                            "label": "Analyst or manager title",
                            "points": 20.0,
                            "events": 0,
                            "capped": False,
                        },
                        {
                            "section": "engagement",
                            "label": "Pricing page",
                            "points": 10.0,
                            "events": 1,
                            "capped": False,
                        },
                        {
                            "section": "predicted",
                            "label": "Predicted by model v2 (61%)",
                            "points": 18.2,
                            "events": 0,
                            "capped": False,
                        },
                    ],
                    "scored_at": "2026-03-02T09:00:00Z",
                    "mql_gaps": [
                        {
                            "kind": "score",
                            "item": "threshold",
                            "label": "11.8 points short of the threshold 60",
                            "points": 11.8,
                            "until": None,
                        }
                    ],
                    "probability": 0.6067,
                    "reasons": [
                        {"feature": "source", "label": "source = webinar", "effect": 0.2113},
                        {
                            "feature": "title.executive",
                            "label": "title says executive",
                            "effect": 0.1402,
                        },
                        {
                            "feature": "email.free_mail",
                            "label": "free mail email",
                            "effect": -0.0871,
                        },
                    ],
                    "model_problem": None,
                },
            ]
        }
    }

    lead_id: int
    contract_version: int
    fit: float
    engagement: float
    total: float
    grade: str
    threshold: int
    explanation: list[RuleHitPublic]
    scored_at: datetime
    mql_gaps: list[MqlGapPublic] = Field(description=MQL_GAPS_DESCRIPTION)
    probability: float | None = Field(
        None,
        description="The contract's learned model's probability for the lead now (null "
        "without scoring.predicted, or when the model could not be loaded)",
    )
    reasons: list[PredictedReasonPublic] = Field(
        default_factory=list, description="The features that moved that probability most"
    )
    model_problem: str | None = Field(
        None,
        description="Why there is no probability although the contract names a model (the "
        "lead is then scored without the predicted component)",
    )


class PrepItemPublic(BaseModel):
    id: str
    label: str
    required: bool
    done: bool
    done_by: str | None
    done_at: datetime | None


@router.get(
    "/{lead_id}/score",
    operation_id="lead_score",
    response_model=LeadScorePublic,
    responses=NOT_FOUND,
)
def lead_score(ctx: Ctx, actor: Actor, lead_id: LeadId) -> LeadScorePublic:
    """Score, grade and rule-by-rule explanation under the active contract."""
    result = score_service.lead_score(ctx, lead_id, actor=actor)
    return LeadScorePublic(
        lead_id=result.lead_id,
        contract_version=result.contract_version,
        fit=result.fit,
        engagement=result.engagement,
        total=result.total,
        grade=result.grade,
        threshold=result.threshold,
        explanation=[
            RuleHitPublic(
                section=h.section, label=h.label, points=h.points, events=h.events, capped=h.capped
            )
            for h in result.hits
        ],
        scored_at=result.scored_at,
        mql_gaps=[MqlGapPublic.model_validate(asdict(g)) for g in result.mql_gaps],
        probability=result.probability,
        reasons=[PredictedReasonPublic.model_validate(asdict(r)) for r in result.reasons],
        model_problem=result.model_problem,
    )


@router.get(
    "/{lead_id}/prep",
    operation_id="lead_prep",
    response_model=list[PrepItemPublic],
    responses=NOT_FOUND,
)
def lead_prep(ctx: Ctx, actor: Actor, lead_id: LeadId) -> list[PrepItemPublic]:
    """The readiness checklist of the active contract, with this lead's ticks."""
    return [
        PrepItemPublic.model_validate(asdict(i))
        for i in prep_service.prep_checklist(ctx, lead_id, actor=actor)
    ]


@router.put(
    "/{lead_id}/prep/{item}",
    operation_id="tick_prep",
    response_model=list[PrepItemPublic],
    responses=NOT_FOUND,
)
def tick_prep(ctx: Ctx, actor: Actor, lead_id: LeadId, item: str) -> list[PrepItemPublic]:
    """Tick a prep item (idempotent); may hand the lead off if it was the last one."""
    return [
        PrepItemPublic.model_validate(asdict(i))
        for i in prep_service.tick_prep(ctx, lead_id, item, actor=actor)
    ]


@router.delete(
    "/{lead_id}/prep/{item}",
    operation_id="untick_prep",
    response_model=list[PrepItemPublic],
    responses=NOT_FOUND,
)
def untick_prep(ctx: Ctx, actor: Actor, lead_id: LeadId, item: str) -> list[PrepItemPublic]:
    """Untick a prep item."""
    return [
        PrepItemPublic.model_validate(asdict(i))
        for i in prep_service.untick_prep(ctx, lead_id, item, actor=actor)
    ]


def _occurred_at(payload: dict[str, object], from_intake_key: bool) -> datetime | None:
    """Take ``occurred_at`` out of a capture's body (it is not a field of the lead)."""
    if "occurred_at" not in payload:
        return None
    raw = payload.pop("occurred_at")
    if raw is None:
        return None
    if from_intake_key:
        message = "an intake key captures leads as they come; it cannot date them"
        raise ValidationFailed(message, [FieldProblem("occurred_at", message)])
    try:
        at = datetime.fromisoformat(iso_instant(raw) or raw) if isinstance(raw, str) else None
    except ValueError:
        at = None
    if at is None or at.tzinfo is None:
        message = "give an ISO 8601 time with a time zone, e.g. 2025-11-03T14:05:00Z"
        raise ValidationFailed(message, [FieldProblem("occurred_at", message)])
    return at
