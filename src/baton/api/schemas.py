"""HTTP input and output shapes that are not domain models themselves."""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Any, Literal

from fastapi.responses import JSONResponse
from pydantic import AfterValidator, BaseModel, Field, WithJsonSchema, field_validator

from baton.domain.leads import Lead
from baton.domain.lifecycle import MAX_DEAL_VALUE, Stage
from baton.services.outbox import WEBHOOK_TOPICS


class LeadPublic(Lead):
    """A lead as the API shows it."""


class DuplicatePublic(BaseModel):
    other_lead_id: int
    reason: str
    similarity: float


class CaptureResponse(BaseModel):
    """Result of a capture: the lead, whether it is new, and what changed."""

    lead: LeadPublic
    created: bool
    changed_fields: list[str] = Field(
        description="The lead's fields this capture set or changed (for a new lead, every "
        "field it gave), named as the lead shows them; not the keys Baton derives from "
        "them to find people."
    )
    possible_duplicates: list[DuplicatePublic] = Field(
        description="Kept for older clients: empty, since the comparison runs in the worker "
        "(see duplicates)."
    )
    duplicates: Literal["pending", "not_needed"] = Field(
        "not_needed",
        description="pending: a new lead, or an update that changed its name, company, "
        "phone or email; the worker compares it with the other leads within seconds and "
        "puts any possible duplicate in GET /api/v1/duplicates. not_needed: an update "
        "of other fields.",
    )


class LeadPagePublic(BaseModel):
    items: list[LeadPublic]
    total: int
    next_before_id: int | None = Field(
        None, description="Pass as before_id to get the next page; null on the last page."
    )


OccurredAt = Annotated[
    datetime | None,
    Field(
        description="When it really happened, if earlier than now (history; with a time "
        "zone): never in the future, never before the lead existed or its previous stage "
        "change. Recorded as history (historical, recorded_at); an MQL older than the "
        "contract's mql.live_within_days opens no live handoff.",
        examples=["2025-11-03T14:05:00Z"],
    ),
]


class TransitionCreate(BaseModel):
    """A requested stage change."""

    model_config = {
        "json_schema_extra": {
            "examples": [{"to_stage": "nurture", "reason": "not ready this quarter"}]
        }
    }

    to_stage: Stage
    reason: str = Field(min_length=1, max_length=2000)
    occurred_at: OccurredAt = None


class TransitionPublic(BaseModel):
    from_stage: Stage
    to_stage: Stage
    actor: str
    reason: str
    occurred_at: datetime
    contract_version: int | None
    historical: bool = False
    recorded_at: datetime | None = None


class TimelineItemPublic(BaseModel):
    at: datetime
    kind: Literal["created", "activity", "transition", "note", "tag", "merge", "handoff"]
    summary: str
    actor: str | None
    data: dict[str, Any]
    merged_from: int | None


class NoteCreate(BaseModel):
    body: str = Field(min_length=1, max_length=10_000)


class NotePublic(BaseModel):
    id: int
    lead_id: int
    author: str
    body: str
    created_at: datetime


TAG_PATTERN = r"^ *[A-Za-z0-9][A-Za-z0-9 _:./-]*$"
"""A tag as sent: lower-cased and with runs of spaces made one when stored."""


class TagCreate(BaseModel):
    tag: str = Field(min_length=1, max_length=100, pattern=TAG_PATTERN, examples=["cold"])


class TagsPublic(BaseModel):
    lead_id: int
    tags: list[str]


class MergeCreate(BaseModel):
    """Merge lead ``merged_lead_id`` into the lead named in the path."""

    merged_lead_id: int = Field(ge=1, le=2**63 - 1)


class MergePublic(BaseModel):
    survivor_id: int
    merged_id: int
    moved: dict[str, int]
    filled_fields: list[str]


class IntakeReceipt(BaseModel):
    """What an intake key gets back: that its rows arrived, never the stored lead (a
    public key must not read back what Baton knows about an email)."""

    received: int = Field(description="Rows received")
    rejected_rows: int = Field(0, description="Rows refused; see errors")
    errors: list[RowErrorPublic] = Field(default_factory=list)


def receipt(body: IntakeReceipt) -> JSONResponse:
    return JSONResponse(body.model_dump(), status_code=202)


INTAKE_RECEIPT: dict[int | str, dict[str, Any]] = {
    202: {
        "description": "Received from an intake key (the stored lead is not shown to it)",
        "model": IntakeReceipt,
    }
}


class ActivityPublic(BaseModel):
    activity_id: int | None
    lead_id: int
    duplicate: bool = Field(description="True when the idempotency key was already seen.")
    lead_created: bool


class ActivityBatchCreate(BaseModel):
    """Up to 10,000 events. Each row is validated on its own: bad rows are reported by
    index, good rows are stored."""

    activities: list[dict[str, Any]] = Field(max_length=10_000)


class RowErrorPublic(BaseModel):
    index: int
    field: str
    message: str


class ActivityBatchPublic(BaseModel):
    received: int
    stored: int
    duplicates: int
    leads_created: int
    rejected_rows: int
    errors: list[RowErrorPublic]


class PairLeadPublic(BaseModel):
    """One lead of a possible-duplicate pair, as a reviewer needs it to decide."""

    id: int
    name: str | None = Field(description="First and last name as captured")
    email: str | None
    phone: str | None
    company: str | None
    stage: str
    created_at: datetime


class DuplicateCandidatePublic(BaseModel):
    """A pair of leads that may be one person: why, how alike, and both leads."""

    id: int
    lead_id: int
    other_lead_id: int
    reason: str = Field(description="Why the pair was flagged, in words")
    similarity: float
    status: str
    created_at: datetime
    reason_code: str | None = Field(
        description="The reason's short code, as the reason filter takes it "
        "(phone, mailbox, email_domain, company)"
    )
    lead: PairLeadPublic = Field(description="The newer lead (the one compared)")
    other_lead: PairLeadPublic = Field(description="The older lead it looks like")


# --- the sales side: teams, reps, absences, accounts --------------------------------


class TeamPublic(BaseModel):
    model_config = {
        "json_schema_extra": {
            "examples": [{"id": 1, "name": "emea", "manager_email": "sam@lumen.example", "reps": 4}]
        }
    }

    id: int
    name: str
    manager_email: str | None
    reps: int = Field(description="Reps in the team")


class AbsencePublic(BaseModel):
    id: int
    starts_at: datetime
    ends_at: datetime
    note: str | None


class RepPublic(BaseModel):
    """A rep with the current load (open handoffs that count against capacity)."""

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "id": 3,
                    "email": "ana@lumen.example",
                    "name": "Ana Silva",
                    "team": "emea",
                    "timezone": "Europe/Berlin",
                    "working_hours": {
                        "mon": ["09:00-12:00", "13:00-17:00"],
                        "tue": ["09:00-17:00"],
                        "wed": ["09:00-17:00"],
                        "thu": ["09:00-17:00"],
                        "fri": ["09:00-15:00"],
                        "sat": [],
                        "sun": [],
                    },
                    "status": "available",
                    "capacity": 20,
                    "weight": 1.0,
                    "tags": ["enterprise"],
                    "countries": ["DE", "NL"],
                    "regions": [],
                    "postal_prefixes": [],
                    "segments": [],
                    "manager_email": "sam@lumen.example",
                    "active": True,
                    "open_handoffs": 2,
                    "absences": [],
                }
            ]
        }
    }

    id: int
    email: str
    name: str
    team: str | None
    timezone: str
    working_hours: dict[str, list[str]]
    status: Literal["available", "away"]
    capacity: int
    weight: float
    tags: list[str]
    countries: list[str]
    regions: list[str]
    postal_prefixes: list[str]
    segments: list[str]
    manager_email: str | None
    active: bool
    open_handoffs: int
    absences: list[AbsencePublic]


class AccountPublic(BaseModel):
    id: int
    domain: str
    name: str | None
    owner_email: str | None


# --- handoffs --------------------------------------------------------------------

HandoffStatus = Literal[
    "queued", "assigned", "accepted", "qualified", "rejected", "won", "lost", "reassigned", "closed"
]


class HandoffPublic(BaseModel):
    """One passing of the baton: the lead, the rep (none while queued), the SLA
    deadlines, the routing decision and sales' verdict."""

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "id": 12,
                    "lead_id": 40,
                    "rep_id": 3,
                    "rep_email": "ana@lumen.example",
                    "status": "assigned",
                    "chain_id": 12,
                    "contract_version": 1,
                    "mql_at": "2026-03-02T09:00:00Z",
                    "assigned_at": "2026-03-02T09:00:00Z",
                    "notified_at": None,
                    "accepted_at": None,
                    "first_touch_at": None,
                    "closed_at": None,
                    "outcome": None,
                    "rejection_code": None,
                    "marketing_credit": None,
                    "accept_due_at": "2026-03-02T09:30:00Z",
                    "touch_due_at": "2026-03-02T11:00:00Z",
                    "next_step_at": "2026-03-02T09:20:00Z",
                    "reassignments": 0,
                    "routing": {"rep_id": 3, "reason": "EMEA: round_robin", "rule": "EMEA"},
                    "qualification": None,
                    "deal_value": None,
                }
            ]
        }
    }

    id: int
    lead_id: int
    rep_id: int | None
    rep_email: str | None
    status: HandoffStatus
    chain_id: int | None
    contract_version: int | None
    mql_at: datetime
    assigned_at: datetime | None
    notified_at: datetime | None
    accepted_at: datetime | None
    first_touch_at: datetime | None
    closed_at: datetime | None
    outcome: str | None
    rejection_code: str | None
    marketing_credit: bool | None
    accept_due_at: datetime | None
    touch_due_at: datetime | None
    next_step_at: datetime | None
    reassignments: int
    routing: dict[str, Any] = Field(description="The routing decision and why")
    qualification: dict[str, Any] | None
    deal_value: float | None


class HandoffEventPublic(BaseModel):
    at: datetime
    kind: str = Field(description="assigned, queued, accepted, rejected, touch, qualified, ...")
    actor: str
    detail: dict[str, Any]


MQL_GAPS_EXAMPLE: list[Any] = [
    {
        "kind": "prep",
        "item": "use_case_noted",
        "label": "Use case noted (what they want to analyse, and for whom)",
        "points": None,
        "until": None,
    },
    {
        "kind": "score",
        "item": "threshold",
        "label": "4.5 points short of the threshold 60",
        "points": 4.5,
        "until": None,
    },
]


class MqlGapPublic(BaseModel):
    """One condition of the contract's MQL rule (on score) the lead does not meet yet."""

    model_config = {"json_schema_extra": {"examples": [MQL_GAPS_EXAMPLE[0]]}}

    kind: Literal["cooldown", "field", "prep", "grade", "probability", "score"] = Field(
        description="cooldown (recycled, waiting), field (a required field is missing), prep "
        "(a required prep item is not ticked), grade (below min_grade), probability (the "
        "learned model's probability below mql.min_probability), score (below the threshold)"
    )
    item: str = Field(
        description="The field, the prep item's id, min_grade, min_probability, threshold, "
        "recycle_cooldown_days"
    )
    label: str = Field(description="The condition in words (a prep item's label)")
    points: float | None = Field(None, description="score: points missing to the threshold")
    until: datetime | None = Field(None, description="cooldown: when it ends")


MQL_GAPS_DESCRIPTION = (
    "Why the lead is not an MQL yet: every condition of the MQL rule on score it does not "
    "meet now (empty: the rule is met). A hand-raise hands a lead off whatever these say, so "
    "a lead handed off by a demo request may still list them (sales sees what marketing did "
    "not get to)."
)


class ScoreHitPublic(BaseModel):
    section: Literal["fit", "engagement", "predicted"] = Field(
        description="predicted: the contract's learned model (weight × probability)"
    )
    label: str
    points: float
    events: int
    capped: bool


class PredictedReasonPublic(BaseModel):
    """One feature's part in the learned model's probability for a lead."""

    model_config = {
        "json_schema_extra": {
            "examples": [{"feature": "source", "label": "source = webinar", "effect": 0.2113}]
        }
    }

    feature: str = Field(description="The feature's name (source, events.page_view, ...)")
    label: str = Field(description="The feature and its value in words")
    effect: float = Field(
        description="How much the probability drops without this feature (negative: rises)"
    )


class PacketScorePublic(BaseModel):
    fit: float
    engagement: float
    total: float
    grade: str
    threshold: int
    contract_version: int
    hits: list[ScoreHitPublic] = Field(description="Every rule that fired (they add up)")
    scored_at: datetime
    probability: float | None = Field(
        None, description="The contract's learned model's probability (null without one)"
    )
    reasons: list[PredictedReasonPublic] = Field(
        default_factory=list, description="The features that moved that probability most"
    )
    model_problem: str | None = Field(
        None, description="Why there is no probability although the contract names a model"
    )


class InterestPublic(BaseModel):
    topic: str
    kind: str
    count: int
    last_at: datetime


class PacketPrepItemPublic(BaseModel):
    id: str
    label: str
    required: bool
    done: bool
    done_by: str | None
    done_at: datetime | None


class PacketNotePublic(BaseModel):
    at: datetime
    author: str
    body: str


class NurtureClicksPublic(BaseModel):
    label: str = Field(description="What the link is about (its last path segment)")
    url: str
    count: int


class NurtureHistoryPublic(BaseModel):
    """One nurture enrollment of the lead, summarised for the rep."""

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "enrollment_id": 41,
                    "sequence": "not-ready",
                    "reason": "rejected: not_ready",
                    "enrolled_at": "2026-03-03T15:00:00Z",
                    "status": "exited",
                    "touches": 4,
                    "opened": 3,
                    "clicks": [
                        {
                            "label": "pricing",
                            "url": "https://lumen-analytics.example/pricing",
                            "count": 2,
                        }
                    ],
                    "exit_reason": "re_mql",
                    "ended_at": "2026-06-02T10:12:00Z",
                    "summary": "Recycled on 3 Mar (not ready), sequence not-ready: 4 touches, "
                    "opened 3, clicked pricing twice, came back on 2 Jun by score.",
                }
            ]
        }
    }

    enrollment_id: int
    sequence: str
    reason: str = Field(description="Why it was enrolled (`rejected: <code>`, `tagged cold`)")
    enrolled_at: datetime
    status: str = Field(description="active, completed or exited")
    touches: int
    opened: int = Field(description="Emails opened (each counted once)")
    clicks: list[NurtureClicksPublic]
    exit_reason: str | None
    ended_at: datetime | None
    summary: str = Field(description="The history in one sentence, days in the reader's zone")


class PacketTimesPublic(BaseModel):
    """The handoff's times as the packet's reader reads them: in ``time_zone``, with the
    zone's abbreviation at that moment (EST or EDT). The ISO 8601 UTC fields of
    ``handoff`` stay as they are, for programs."""

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "mql_at": "Mon 2 Mar 09:55 EST",
                    "assigned_at": "Mon 2 Mar 09:55 EST",
                    "accept_due_at": "Mon 2 Mar 10:25 EST",
                    "touch_due_at": "Mon 2 Mar 11:25 EST",
                    "accepted_at": None,
                    "first_touch_at": None,
                    "closed_at": None,
                }
            ]
        }
    }

    mql_at: str
    assigned_at: str | None
    accept_due_at: str | None = Field(description="The accept SLA's deadline")
    touch_due_at: str | None = Field(description="The first-touch SLA's deadline")
    accepted_at: str | None
    first_touch_at: str | None
    closed_at: str | None


class PacketPublic(BaseModel):
    """Everything a rep needs so the customer never explains twice."""

    handoff: HandoffPublic
    lead: LeadPublic
    score: PacketScorePublic | None
    attribution: dict[str, Any]
    interests: list[InterestPublic]
    timeline: list[TimelineItemPublic]
    prep: list[PacketPrepItemPublic]
    notes: list[PacketNotePublic]
    tags: list[str]
    earlier_handoffs: list[HandoffPublic]
    events: list[HandoffEventPublic]
    mql_gaps: list[MqlGapPublic] = Field(
        default_factory=list, description=MQL_GAPS_DESCRIPTION, examples=[MQL_GAPS_EXAMPLE]
    )
    time_zone: str = Field(
        "UTC",
        description="The reader's time zone (IANA name): the user's who asks, else the "
        "rep's the handoff is given to. Every time in the packet is UTC; local_times shows "
        "the handoff's in this zone.",
        examples=["America/New_York"],
    )
    local_times: PacketTimesPublic | None = Field(
        None, description="The handoff's times as the reader reads them, in time_zone"
    )
    nurture: list[NurtureHistoryPublic] = Field(
        default_factory=list,
        description="The lead's nurture enrollments, newest first: why it was recycled, "
        "touches, opens, clicks, and how it came back to sales.",
    )


class RejectCreate(BaseModel):
    """Turn a handoff down with a reason code from the contract's catalog."""

    model_config = {
        "extra": "forbid",
        "json_schema_extra": {"examples": [{"code": "not_ready", "note": "budget next year"}]},
    }

    code: str = Field(min_length=1, max_length=60)
    note: str | None = Field(None, max_length=2000)
    occurred_at: OccurredAt = None


class AcceptCreate(BaseModel):
    """Accept a handoff; ``occurred_at`` when it was accepted earlier than now."""

    model_config = {
        "extra": "forbid",
        "json_schema_extra": {"examples": [{"occurred_at": "2026-03-02T10:15:00Z"}]},
    }

    occurred_at: OccurredAt = None


class TouchCreate(BaseModel):
    model_config = {
        "extra": "forbid",
        "json_schema_extra": {"examples": [{"kind": "call", "note": "left a voicemail"}]},
    }

    kind: Literal["call", "email", "meeting"]
    note: str | None = Field(None, max_length=2000)


class QualifyCreate(BaseModel):
    model_config = {
        "extra": "forbid",
        "json_schema_extra": {
            "examples": [
                {
                    "fields": {
                        "budget": "40k",
                        "authority": "VP Ops signs",
                        "need": "replace spreadsheets",
                        "timing": "Q3",
                    }
                }
            ]
        },
    }

    fields: dict[str, Any] = Field(description="The qualification fields the contract asks for")


class OpportunityCreate(BaseModel):
    model_config = {"extra": "forbid", "json_schema_extra": {"examples": [{"amount": 48000}]}}

    amount: float | None = Field(None, ge=0, le=MAX_DEAL_VALUE, description="Expected deal value")


class WonCreate(BaseModel):
    model_config = {
        "extra": "forbid",
        "json_schema_extra": {"examples": [{"amount": 52000, "note": "3-year deal"}]},
    }

    amount: float | None = Field(None, ge=0, le=MAX_DEAL_VALUE)
    note: str | None = Field(None, max_length=2000)
    occurred_at: OccurredAt = None


class LostCreate(BaseModel):
    model_config = {
        "extra": "forbid",
        "json_schema_extra": {"examples": [{"reason": "chose a competitor"}]},
    }

    reason: str = Field(min_length=1, max_length=2000)
    occurred_at: OccurredAt = None


class ReassignCreate(BaseModel):
    """Move the handoff to a named rep, or (``to`` left out) to the next available one."""

    model_config = {
        "extra": "forbid",
        "json_schema_extra": {"examples": [{"to": "ben@lumen.example"}]},
    }

    to: str | None = Field(None, max_length=254, description="The new rep's email")


class AssignCreate(BaseModel):
    """Give a queued handoff to a named rep (active and under capacity); one who is
    away, out of office or outside working hours only with ``override_reason``."""

    model_config = {
        "extra": "forbid",
        "json_schema_extra": {
            "examples": [
                {"to": "ana@lumen.example"},
                {"to": "ben@lumen.example", "override_reason": "Ben covers EMEA this week"},
            ]
        },
    }

    to: str = Field(min_length=3, max_length=254, description="The rep's email")
    override_reason: str | None = Field(
        None,
        min_length=1,
        max_length=300,
        pattern=r"\S",
        description="Why the rep gets it although they are away, out of office or outside "
        "working hours (recorded on the handoff)",
    )


# --- webhooks --------------------------------------------------------------------


WEBHOOK_URL_PATTERN = r"^https?://[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:[0-9]{1,5})?([/?#][!-~]*)?$"
"""An http(s) URL with a host name or IPv4 address, in ASCII (an IDN as xn--)."""


def _event(value: str) -> str:
    if value != "*" and value not in WEBHOOK_TOPICS:
        raise ValueError(f"unknown event '{value}'; use * or one of: {', '.join(WEBHOOK_TOPICS)}")
    return value


WebhookEvent = Annotated[
    str,
    AfterValidator(_event),
    WithJsonSchema({"type": "string", "enum": ["*", *WEBHOOK_TOPICS]}),
]


class WebhookCreate(BaseModel):
    """An endpoint that receives signed POSTs of handoff events."""

    model_config = {
        "extra": "forbid",
        "json_schema_extra": {
            "examples": [
                {
                    "url": "https://hooks.example.com/baton",
                    "events": ["handoff.assigned", "handoff.accepted"],
                }
            ]
        },
    }

    url: str = Field(
        max_length=2000,
        description="http(s) URL of a public host (internal addresses only when allowed by "
        "BATON_WEBHOOK_INTERNAL_ALLOWLIST)",
        json_schema_extra={"pattern": WEBHOOK_URL_PATTERN},
    )
    events: list[WebhookEvent] = Field(
        default_factory=lambda: ["*"],
        min_length=1,
        max_length=50,
        description="Event names (handoff.assigned, handoff.queued, ...) or * for all",
    )

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not re.fullmatch(WEBHOOK_URL_PATTERN, value):
            raise ValueError(
                "give an http:// or https:// URL with an ASCII host name, e.g. "
                "https://hooks.example.com/baton"
            )
        return value
    secret: str | None = Field(
        None,
        min_length=16,
        max_length=200,
        description="Signing secret (16-200 characters); generated when left out",
    )


class WebhookPublic(BaseModel):
    id: int
    url: str
    events: list[str]
    active: bool
    created_by: str
    created_at: datetime


class WebhookCreatedPublic(WebhookPublic):
    secret: str = Field(description="Shown only now: store it to verify signatures")


class DeliveryAttemptPublic(BaseModel):
    attempt: int
    attempted_at: datetime
    ok: bool
    status_code: int | None
    error: str | None
    duration_ms: float


class DeliveryPublic(BaseModel):
    id: int
    topic: str
    handoff_id: int | None
    status: str = Field(description="pending, sent or failed")
    attempts: int
    last_error: str | None
    created_at: datetime
    sent_at: datetime | None
    history: list[DeliveryAttemptPublic]


# --- spend -------------------------------------------------------------------------


class SpendPublic(BaseModel):
    """Money spent on a source (and campaign) over whole days, both included."""

    source: str
    campaign: str | None
    starts_on: date
    ends_on: date
    amount: float
    currency: str
    origin: Literal["import", "contract"] = Field(
        description="import: from a spend file; contract: the active contract's costs"
    )
    imported_at: datetime | None
    imported_by: str | None


class SpendRowErrorPublic(BaseModel):
    line: int = Field(description="Line in the file (the header is line 1)")
    field: str
    message: str


class SpendImportPublic(BaseModel):
    rows: int
    stored: int
    replaced: int = Field(description="Rows that replaced the amount of a stored row")
    rejected_rows: int
    errors: list[SpendRowErrorPublic]
