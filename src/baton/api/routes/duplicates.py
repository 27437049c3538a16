"""/api/v1/duplicates: the review queue of possible duplicate leads (marketing and
admins review it; the use cases decide). The bulk dismissal's models live here rather
than in ``schemas.py``: nothing else uses them."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Literal

from fastapi import APIRouter, Query, status
from pydantic import BaseModel, Field, ValidationError

from baton.api.deps import Actor, Authenticated, CandidateId, Ctx
from baton.api.schemas import DuplicateCandidatePublic
from baton.domain.batches import describe
from baton.domain.duplicates import DuplicateDismissal, DuplicateFilter
from baton.domain.errors import FieldProblem, ValidationFailed
from baton.domain.moments import Instant
from baton.services import merge as merge_service

router = APIRouter(prefix="/api/v1/duplicates", tags=["duplicates"], dependencies=[Authenticated])

ReasonCode = Literal["phone", "mailbox", "email_domain", "company"]


class DismissReportPublic(BaseModel):
    """What a bulk dismissal did, or would do (``dry_run``)."""

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "matched": 1840,
                    "dismissed": 0,
                    "dry_run": True,
                    "sample": [9120, 9118],
                    "skipped": [],
                },
                {
                    "matched": 2,
                    "dismissed": 2,
                    "dry_run": False,
                    "sample": [107, 101],
                    "skipped": [102],
                },
            ]
        }
    }

    matched: int = Field(description="Open pairs within your reach that the request picked")
    dismissed: int = Field(description="Pairs dismissed now (0 on a dry run)")
    dry_run: bool
    sample: list[int] = Field(description="Up to 20 of the picked pair ids, newest first")
    skipped: list[int] = Field(
        description="Ids you named that are not open pairs within your reach (missing, "
        "out of reach, already merged or dismissed): left as they are"
    )


@router.get("", operation_id="list_duplicates", response_model=list[DuplicateCandidatePublic])
def list_duplicates(
    ctx: Ctx,
    actor: Actor,
    status_: Annotated[Literal["open", "merged", "dismissed"], Query(alias="status")] = "open",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    reason: Annotated[ReasonCode | None, Query(description="Only pairs flagged for this")] = None,
    similarity_below: Annotated[
        float | None, Query(gt=0, le=100, description="Only pairs less similar than this")
    ] = None,
    created_since: Annotated[Instant | None, Query(description="Flagged at or after")] = None,
    created_before: Annotated[Instant | None, Query(description="Flagged before")] = None,
) -> list[DuplicateCandidatePublic]:
    """Pairs of leads that may be one person, newest first. Merge with
    ``POST /leads/{id}/merge``; dismiss with ``POST /duplicates/{id}/dismiss`` or in
    bulk with ``POST /duplicates/dismiss``."""
    try:
        where = DuplicateFilter(
            reason=reason,
            similarity_below=similarity_below,
            created_since=created_since,
            created_before=created_before,
        )
    except ValidationError as exc:
        raise ValidationFailed(
            "the filter is not valid", [FieldProblem(loc, msg) for loc, msg in describe(exc)]
        ) from None
    return [
        DuplicateCandidatePublic.model_validate(asdict(c))
        for c in merge_service.list_duplicates(
            ctx, actor=actor, status=status_, limit=limit, where=where
        )
    ]


@router.post("/dismiss", operation_id="dismiss_duplicates", response_model=DismissReportPublic)
def dismiss_many(ctx: Ctx, actor: Actor, body: DuplicateDismissal) -> DismissReportPublic:
    """Dismiss open pairs in bulk, in one transaction: those named in ``ids``, those
    a filter picks (``reason``, ``similarity_below``, ``created_since``,
    ``created_before``; all given conditions hold), or the named ones the filter also
    picks. ``dry_run`` counts them and changes nothing. Pairs outside your reach are
    never touched."""
    report = merge_service.dismiss_duplicates(ctx, body, actor=actor)
    return DismissReportPublic.model_validate(asdict(report))


@router.post(
    "/{candidate_id}/dismiss",
    operation_id="dismiss_duplicate",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={409: {"description": "The pair was merged already"}},
)
def dismiss(ctx: Ctx, actor: Actor, candidate_id: CandidateId) -> None:
    """These are two different people: take the pair off the queue."""
    merge_service.dismiss_duplicate(ctx, candidate_id, actor=actor)
