"""/api/v1/duplicates: the review queue of possible duplicate leads (marketing and
admins review it; the use cases decide)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Literal

from fastapi import APIRouter, Query, status

from baton.api.deps import Actor, Authenticated, CandidateId, Ctx
from baton.api.schemas import DuplicateCandidatePublic
from baton.services import merge as merge_service

router = APIRouter(prefix="/api/v1/duplicates", tags=["duplicates"], dependencies=[Authenticated])


@router.get("", operation_id="list_duplicates", response_model=list[DuplicateCandidatePublic])
def list_duplicates(
    ctx: Ctx,
    actor: Actor,
    status_: Annotated[Literal["open", "merged", "dismissed"], Query(alias="status")] = "open",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[DuplicateCandidatePublic]:
    """Pairs of leads that may be one person. Merge with ``POST /leads/{id}/merge``."""
    return [
        DuplicateCandidatePublic.model_validate(asdict(c))
        for c in merge_service.list_duplicates(ctx, actor=actor, status=status_, limit=limit)
    ]


@router.post(
    "/{candidate_id}/dismiss",
    operation_id="dismiss_duplicate",
    status_code=status.HTTP_204_NO_CONTENT,
)
def dismiss(ctx: Ctx, actor: Actor, candidate_id: CandidateId) -> None:
    """These are two different people: take the pair off the queue."""
    merge_service.dismiss_duplicate(ctx, candidate_id, actor=actor)
