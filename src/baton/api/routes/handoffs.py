"""/api/v1/handoffs: the handoffs, their packets, and sales' verdicts.

Every route needs credentials; the actor is the authenticated principal. Who may read
or act on which handoff is decided by the use cases (:mod:`baton.domain.access`): a rep
their own handoffs, a sales manager their team's and the queue, an admin any. A
handoff out of reach answers 404 like a missing one; a role that may not take the
action at all answers 403.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Path, Query, Response, status
from fastapi.responses import HTMLResponse, PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field

from baton.api.deps import Actor, Authenticated, Ctx
from baton.api.schemas import (
    AcceptCreate,
    AssignCreate,
    HandoffEventPublic,
    HandoffPublic,
    HandoffStatus,
    InterestPublic,
    LeadPublic,
    LostCreate,
    MqlGapPublic,
    NurtureHistoryPublic,
    OpportunityCreate,
    PacketNotePublic,
    PacketPrepItemPublic,
    PacketPublic,
    PacketScorePublic,
    PacketTimesPublic,
    PredictedReasonPublic,
    QualifyCreate,
    ReassignCreate,
    RejectCreate,
    ScoreHitPublic,
    TimelineItemPublic,
    TouchCreate,
    WonCreate,
)
from baton.domain.activities import MAX_ID
from baton.notify.render import render_email
from baton.services import handoffs as handoff_service
from baton.services.inbox import rep_inbox
from baton.services.packet import HandoffPacket, handoff_packet

router = APIRouter(prefix="/api/v1/handoffs", tags=["handoffs"], dependencies=[Authenticated])

HandoffId = Annotated[int, Path(ge=1, le=MAX_ID, description="A handoff's id.")]
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such handoff, or not one within your reach (problem+json)"}
}
VERDICT: dict[int | str, dict[str, Any]] = {
    **NOT_FOUND,
    403: {"description": "Your role (or token scope) may not give verdicts"},
    409: {"description": "Not possible in the handoff's current status"},
    422: {"description": "Invalid input; every bad field with its path"},
}


def _public(handoff: handoff_service.HandoffPublic) -> HandoffPublic:
    return HandoffPublic.model_validate(asdict(handoff))


@router.get("", operation_id="list_handoffs", response_model=list[HandoffPublic])
def list_handoffs(
    ctx: Ctx,
    actor: Actor,
    status: Annotated[
        list[HandoffStatus] | None, Query(description="Only these statuses (repeat the key)")
    ] = None,
    rep: Annotated[
        str | None, Query(max_length=254, description="Only this rep's (their email)")
    ] = None,
    lead_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    before_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
) -> list[HandoffPublic]:
    """Handoffs within your reach, newest first; page with ``before_id`` (the last id
    you got)."""
    return [
        _public(h)
        for h in handoff_service.list_handoffs(
            ctx,
            actor=actor,
            status=status,
            rep_email=rep,
            lead_id=lead_id,
            limit=limit,
            before_id=before_id,
        )
    ]


@router.get("/queue", operation_id="handoff_queue", response_model=list[HandoffPublic])
def queue(
    ctx: Ctx,
    actor: Actor,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    before_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
) -> list[HandoffPublic]:
    """The unassigned queue: handoffs nobody could take yet (``routing.reason`` says
    why). The worker assigns them as soon as a rep is available. For sales managers
    and admins."""
    return [
        _public(h)
        for h in handoff_service.handoff_queue(ctx, actor=actor, limit=limit, before_id=before_id)
    ]


class RejectChoicePublic(BaseModel):
    """A reason of the active contract's rejection catalog, and where it sends the lead."""

    code: str
    label: str
    outcome: str = Field(description="disqualify or recycle")
    goes_to: str = Field(description="What the rep is told: 'disqualified' or 'back to nurture'")
    marketing_credit: bool


class InboxItemPublic(BaseModel):
    """One open handoff as the rep's inbox shows it."""

    handoff: HandoffPublic
    name: str
    email: str
    company: str | None
    title: str | None
    source: str | None
    score: float | None
    grade: str | None
    why_now: str = Field(description="The hand-raise, or the score and its top rules")
    due_label: str = Field(description="What the next deadline is for")
    due_at: datetime | None


class InboxPublic(BaseModel):
    """The rep's open handoffs, most urgent first, and the contract's verdict choices."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "items": [],
                    "reasons": [
                        {
                            "code": "not_ready",
                            "label": "Not ready to buy yet",
                            "outcome": "recycle",
                            "goes_to": "back to nurture",
                            "marketing_credit": True,
                        }
                    ],
                    "qualification_fields": ["budget", "authority", "need", "timing"],
                    "zone": "America/New_York",
                }
            ]
        }
    )

    items: list[InboxItemPublic]
    reasons: list[RejectChoicePublic]
    qualification_fields: list[str]
    zone: str = Field(description="The rep's zone (IANA name)")


@router.get(
    "/inbox",
    operation_id="handoff_inbox",
    response_model=InboxPublic,
    responses={403: {"description": "Only a user linked to a rep has an inbox"}},
)
def inbox(ctx: Ctx, actor: Actor) -> InboxPublic:
    """The calling rep's open handoffs (assigned, accepted, qualified), most urgent
    first (the earliest deadline to accept, to touch first, or the next step), each
    with score, grade, source and why now; with the contract's rejection reasons
    (and where each sends the lead) and qualification fields. The web inbox's list."""
    box = rep_inbox(ctx, actor=actor)
    return InboxPublic(
        items=[
            InboxItemPublic(
                handoff=_public(item.handoff),
                name=item.name,
                email=item.email,
                company=item.company,
                title=item.title,
                source=item.source,
                score=item.score,
                grade=item.grade,
                why_now=item.why_now,
                due_label=item.due_label,
                due_at=item.due_at,
            )
            for item in box.items
        ],
        reasons=[
            RejectChoicePublic(
                code=r.code,
                label=r.label,
                outcome=r.outcome,
                goes_to=r.goes_to,
                marketing_credit=r.marketing_credit,
            )
            for r in box.reasons
        ],
        qualification_fields=box.qualification_fields,
        zone=box.zone,
    )


@router.get(
    "/{handoff_id}", operation_id="get_handoff", response_model=HandoffPublic, responses=NOT_FOUND
)
def get_handoff(ctx: Ctx, actor: Actor, handoff_id: HandoffId) -> HandoffPublic:
    return _public(handoff_service.get_handoff(ctx, handoff_id, actor=actor))


@router.get(
    "/{handoff_id}/events",
    operation_id="handoff_events",
    response_model=list[HandoffEventPublic],
    responses=NOT_FOUND,
)
def events(ctx: Ctx, actor: Actor, handoff_id: HandoffId) -> list[HandoffEventPublic]:
    """What happened to the handoff, oldest first: assigned, accepted, touches,
    reminders, escalations, verdicts."""
    return [
        HandoffEventPublic.model_validate(asdict(e))
        for e in handoff_service.handoff_events_of(ctx, handoff_id, actor=actor)
    ]


def _packet_public(packet: HandoffPacket) -> PacketPublic:
    score = packet.score
    return PacketPublic(
        handoff=_public(packet.handoff),
        lead=LeadPublic.model_validate(packet.lead.model_dump()),
        score=None
        if score is None
        else PacketScorePublic(
            fit=score.fit,
            engagement=score.engagement,
            total=score.total,
            grade=score.grade,
            threshold=score.threshold,
            contract_version=score.contract_version,
            hits=[
                ScoreHitPublic(
                    section=h.section,
                    label=h.label,
                    points=h.points,
                    events=h.events,
                    capped=h.capped,
                )
                for h in score.hits
            ],
            scored_at=score.scored_at,
            probability=score.probability,
            reasons=[PredictedReasonPublic.model_validate(asdict(r)) for r in score.reasons],
            model_problem=score.model_problem,
        ),
        attribution=packet.attribution,
        interests=[InterestPublic.model_validate(asdict(i)) for i in packet.interests],
        timeline=[TimelineItemPublic.model_validate(asdict(i)) for i in packet.timeline],
        prep=[PacketPrepItemPublic.model_validate(asdict(i)) for i in packet.prep],
        notes=[PacketNotePublic.model_validate(asdict(n)) for n in packet.notes],
        tags=packet.tags,
        earlier_handoffs=[_public(h) for h in packet.earlier_handoffs],
        events=[HandoffEventPublic.model_validate(asdict(e)) for e in packet.events],
        mql_gaps=[MqlGapPublic.model_validate(asdict(g)) for g in packet.mql_gaps],
        nurture=[NurtureHistoryPublic.model_validate(asdict(n)) for n in packet.nurture],
        time_zone=packet.time_zone,
        local_times=PacketTimesPublic(
            **{
                name: packet.local(getattr(packet.handoff, name))
                for name in PacketTimesPublic.model_fields
            }
        ),
    )


@router.get(
    "/{handoff_id}/packet",
    operation_id="handoff_packet",
    response_model=PacketPublic,
    responses={
        **NOT_FOUND,
        200: {
            "description": "The packet (JSON, or as the rep's email reads with ``format``)",
            "content": {"text/plain": {}, "text/html": {}},
        },
    },
)
def packet(
    ctx: Ctx,
    actor: Actor,
    handoff_id: HandoffId,
    fmt: Annotated[
        Literal["json", "text", "html"],
        Query(
            alias="format", description="json (default), or text / html as the rep's email shows it"
        ),
    ] = "json",
) -> PacketPublic | Response:
    """Everything about the lead for the rep: who, score and why, attribution,
    interests, timeline, prep checklist, notes, tags, earlier handoffs."""
    found = handoff_packet(ctx, handoff_id, actor=actor)
    if fmt == "json":
        return _packet_public(found)
    rendered = render_email("handoff.assigned", found)
    if fmt == "text":
        return PlainTextResponse(rendered.text)
    return HTMLResponse(rendered.html)


@router.post(
    "/{handoff_id}/accept",
    operation_id="accept_handoff",
    response_model=HandoffPublic,
    responses=VERDICT,
)
def accept(
    ctx: Ctx,
    actor: Actor,
    handoff_id: HandoffId,
    body: Annotated[AcceptCreate | None, Body()] = None,
) -> HandoffPublic:
    """The rep takes the lead: it becomes a SAL and the accept SLA is met. With
    ``occurred_at``, an acceptance that happened earlier is recorded at that time."""
    occurred_at = body.occurred_at if body else None
    return _public(
        handoff_service.accept_handoff(ctx, handoff_id, actor=actor, occurred_at=occurred_at)
    )


@router.post(
    "/{handoff_id}/reject",
    operation_id="reject_handoff",
    response_model=HandoffPublic,
    responses=VERDICT,
)
def reject(ctx: Ctx, actor: Actor, handoff_id: HandoffId, body: RejectCreate) -> HandoffPublic:
    """Turn the lead down with a code from the contract's ``rejection_reasons``; the
    reason sends it to ``disqualified`` or back to marketing in ``nurture``."""
    return _public(
        handoff_service.reject_handoff(
            ctx,
            handoff_id,
            code=body.code,
            note=body.note,
            actor=actor,
            occurred_at=body.occurred_at,
        )
    )


@router.post(
    "/{handoff_id}/touches",
    operation_id="log_touch",
    response_model=HandoffPublic,
    status_code=status.HTTP_201_CREATED,
    responses=VERDICT,
)
def touch(ctx: Ctx, actor: Actor, handoff_id: HandoffId, body: TouchCreate) -> HandoffPublic:
    """Record a call, email or meeting; the first one meets the first-touch SLA."""
    return _public(
        handoff_service.log_touch(ctx, handoff_id, kind=body.kind, note=body.note, actor=actor)
    )


@router.post(
    "/{handoff_id}/qualify",
    operation_id="qualify_handoff",
    response_model=HandoffPublic,
    responses=VERDICT,
)
def qualify(ctx: Ctx, actor: Actor, handoff_id: HandoffId, body: QualifyCreate) -> HandoffPublic:
    """SAL → SQL with the contract's qualification fields (422 lists missing ones)."""
    return _public(
        handoff_service.qualify_handoff(ctx, handoff_id, fields=body.fields, actor=actor)
    )


@router.post(
    "/{handoff_id}/opportunity",
    operation_id="open_opportunity",
    response_model=HandoffPublic,
    responses=VERDICT,
)
def opportunity(
    ctx: Ctx,
    actor: Actor,
    handoff_id: HandoffId,
    body: Annotated[OpportunityCreate | None, Body()] = None,
) -> HandoffPublic:
    """SQL → opportunity, optionally with the expected deal value."""
    amount = body.amount if body else None
    return _public(handoff_service.open_opportunity(ctx, handoff_id, amount=amount, actor=actor))


@router.post(
    "/{handoff_id}/won",
    operation_id="won_handoff",
    response_model=HandoffPublic,
    responses=VERDICT,
)
def won(
    ctx: Ctx,
    actor: Actor,
    handoff_id: HandoffId,
    body: Annotated[WonCreate | None, Body()] = None,
) -> HandoffPublic:
    """The deal is won: the lead becomes a customer and its domain an account of the
    rep."""
    body = body or WonCreate()
    return _public(
        handoff_service.won_handoff(
            ctx,
            handoff_id,
            amount=body.amount,
            note=body.note,
            actor=actor,
            occurred_at=body.occurred_at,
        )
    )


@router.post(
    "/{handoff_id}/lost",
    operation_id="lost_handoff",
    response_model=HandoffPublic,
    responses=VERDICT,
)
def lost(ctx: Ctx, actor: Actor, handoff_id: HandoffId, body: LostCreate) -> HandoffPublic:
    """The deal is lost, with a reason; the lead goes to ``lost``."""
    return _public(
        handoff_service.lost_handoff(
            ctx, handoff_id, reason=body.reason, actor=actor, occurred_at=body.occurred_at
        )
    )


@router.post(
    "/{handoff_id}/assign",
    operation_id="assign_handoff",
    response_model=HandoffPublic,
    responses={
        **VERDICT,
        403: {"description": "Only a sales manager or an admin assigns"},
        404: {"description": "No such handoff or rep within your reach (problem+json)"},
        409: {
            "description": "Not queued, no contract active, the rep is deactivated or at "
            "capacity, or unavailable without an override reason"
        },
    },
)
def assign(ctx: Ctx, actor: Actor, handoff_id: HandoffId, body: AssignCreate) -> HandoffPublic:
    """A sales manager or an admin gives a queued handoff to a rep they name (of their
    team, for a manager): the rep must be active and under capacity; one who is away,
    out of office or outside working hours takes it only with ``override_reason``,
    which is recorded. Deadlines, email, webhook and event as when the worker assigns."""
    return _public(
        handoff_service.assign_handoff(
            ctx,
            handoff_id,
            to_email=body.to,
            override_reason=body.override_reason,
            actor=actor,
        )
    )


@router.post(
    "/{handoff_id}/reassign",
    operation_id="reassign_handoff",
    response_model=HandoffPublic,
    status_code=status.HTTP_201_CREATED,
    responses={
        **VERDICT,
        403: {"description": "Only a sales manager or an admin reassigns"},
        409: {"description": "Not reassignable now, or nobody else is available"},
    },
)
def reassign(
    ctx: Ctx,
    actor: Actor,
    handoff_id: HandoffId,
    body: Annotated[ReassignCreate | None, Body()] = None,
) -> HandoffPublic:
    """A sales manager (of the rep's team) or an admin moves the lead to another rep:
    one they name, who must be within their reach, or the next available one. Closes
    this handoff and returns the new one."""
    to = body.to if body else None
    return _public(handoff_service.reassign_handoff(ctx, handoff_id, to_email=to, actor=actor))
