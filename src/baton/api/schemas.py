"""HTTP input and output shapes that are not domain models themselves."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from baton.domain.leads import Lead
from baton.domain.lifecycle import Stage


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
    changed_fields: list[str]
    possible_duplicates: list[DuplicatePublic]


class LeadPagePublic(BaseModel):
    items: list[LeadPublic]
    total: int
    next_before_id: int | None = Field(
        None, description="Pass as before_id to get the next page; null on the last page."
    )


class TransitionCreate(BaseModel):
    """A requested stage change."""

    model_config = {
        "json_schema_extra": {
            "examples": [{"to_stage": "nurture", "reason": "not ready this quarter"}]
        }
    }

    to_stage: Stage
    reason: str = Field(min_length=1, max_length=2000)


class TransitionPublic(BaseModel):
    from_stage: Stage
    to_stage: Stage
    actor: str
    reason: str
    occurred_at: datetime
    contract_version: int | None


class TimelineItemPublic(BaseModel):
    at: datetime
    kind: Literal["created", "activity", "transition", "note", "tag", "merge"]
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


class TagCreate(BaseModel):
    tag: str = Field(min_length=1, max_length=100, examples=["cold"])


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


class DuplicateCandidatePublic(BaseModel):
    id: int
    lead_id: int
    other_lead_id: int
    reason: str
    similarity: float
    status: str
    created_at: datetime
