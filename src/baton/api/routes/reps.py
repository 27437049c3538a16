"""/api/v1/teams, /reps, /accounts: the sales side that routing hands leads to.

Every route needs credentials; what each role may see or change (a rep: only their own
record) is decided by :mod:`baton.services.reps`, and a rep out of reach is a 404."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, status

from baton.api.deps import Actor, Authenticated, Ctx
from baton.api.schemas import AccountPublic, RepPublic, TeamPublic
from baton.domain.activities import MAX_ID
from baton.domain.errors import FieldProblem, ValidationFailed
from baton.domain.reps import AbsenceCreate, AccountCreate, RepCreate, RepUpdate, TeamCreate
from baton.services import reps as rep_service

router = APIRouter(prefix="/api/v1", tags=["reps"], dependencies=[Authenticated])

RepId = Annotated[int, Path(ge=1, le=MAX_ID, description="A rep's id.")]
AbsenceId = Annotated[int, Path(ge=1, le=MAX_ID, description="An absence's id.")]
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No such rep (problem+json)"}}
INVALID: dict[int | str, dict[str, Any]] = {
    422: {"description": "Invalid input; every bad field with its path (problem+json)"}
}


CLEARABLE = frozenset({"team", "manager_email"})
"""The only rep settings a PATCH may set to null."""


def _rep(rep: rep_service.RepPublic) -> RepPublic:
    return RepPublic.model_validate(asdict(rep))


@router.post(
    "/teams",
    operation_id="create_team",
    response_model=TeamPublic,
    status_code=status.HTTP_201_CREATED,
    responses={409: {"description": "A team with this name exists"}, **INVALID},
)
def create_team(ctx: Ctx, actor: Actor, body: TeamCreate) -> TeamPublic:
    """Create a team; routing pools (``pool: {team: emea}``) name it."""
    return TeamPublic.model_validate(asdict(rep_service.create_team(ctx, body, actor=actor)))


@router.get("/teams", operation_id="list_teams", response_model=list[TeamPublic])
def list_teams(ctx: Ctx, actor: Actor) -> list[TeamPublic]:
    """Every team with its manager and number of reps, by name (a rep: their own)."""
    return [TeamPublic.model_validate(asdict(t)) for t in rep_service.list_teams(ctx, actor=actor)]


@router.post(
    "/reps",
    operation_id="create_rep",
    response_model=RepPublic,
    status_code=status.HTTP_201_CREATED,
    responses={
        404: {"description": "The team does not exist"},
        409: {"description": "A rep with this email exists"},
        **INVALID,
    },
)
def create_rep(ctx: Ctx, actor: Actor, body: RepCreate) -> RepPublic:
    """Add a rep. Only ``email`` and ``name`` are required: by default a rep works
    Monday to Friday 09:00-17:00 UTC, carries 20 open handoffs, with weight 1."""
    return _rep(rep_service.create_rep(ctx, body, actor=actor))


@router.get("/reps", operation_id="list_reps", response_model=list[RepPublic])
def list_reps(
    ctx: Ctx,
    actor: Actor,
    team: Annotated[str | None, Query(max_length=100, description="Only this team")] = None,
) -> list[RepPublic]:
    """Every rep with the current load and absences, by email (a rep: only themselves)."""
    return [_rep(r) for r in rep_service.list_reps(ctx, actor=actor, team=team)]


@router.get("/reps/{rep_id}", operation_id="get_rep", response_model=RepPublic, responses=NOT_FOUND)
def get_rep(ctx: Ctx, actor: Actor, rep_id: RepId) -> RepPublic:
    """One rep with the current load and absences."""
    return _rep(rep_service.get_rep(ctx, rep_id, actor=actor))


@router.patch(
    "/reps/{rep_id}",
    operation_id="update_rep",
    response_model=RepPublic,
    responses={**NOT_FOUND, **INVALID},
)
def update_rep(ctx: Ctx, actor: Actor, rep_id: RepId, body: RepUpdate) -> RepPublic:
    """Change some settings of a rep; fields left out stay as they are (``null``
    clears only ``team`` and ``manager_email``). A rep made available again gets
    queued handoffs on the worker's next pass."""
    nulls = [
        FieldProblem(name, "cannot be null; leave the field out to keep its value")
        for name in sorted(body.model_fields_set - CLEARABLE)
        if getattr(body, name) is None
    ]
    if nulls:
        raise ValidationFailed("the change to the rep failed validation", nulls)
    return _rep(rep_service.update_rep(ctx, rep_id, body, actor=actor))


@router.post(
    "/reps/{rep_id}/absences",
    operation_id="add_absence",
    response_model=RepPublic,
    status_code=status.HTTP_201_CREATED,
    responses={**NOT_FOUND, **INVALID},
)
def add_absence(ctx: Ctx, actor: Actor, rep_id: RepId, body: AbsenceCreate) -> RepPublic:
    """Record an out-of-office period: no new handoffs, and SLA business time stops."""
    return _rep(rep_service.add_absence(ctx, rep_id, body, actor=actor))


@router.delete(
    "/reps/{rep_id}/absences/{absence_id}",
    operation_id="remove_absence",
    response_model=RepPublic,
    responses={404: {"description": "No such rep or absence"}},
)
def remove_absence(ctx: Ctx, actor: Actor, rep_id: RepId, absence_id: AbsenceId) -> RepPublic:
    """Cancel an out-of-office period."""
    return _rep(rep_service.remove_absence(ctx, rep_id, absence_id, actor=actor))


@router.put(
    "/accounts",
    operation_id="upsert_account",
    response_model=AccountPublic,
    responses={404: {"description": "The owner is not a rep"}, **INVALID},
)
def upsert_account(ctx: Ctx, actor: Actor, body: AccountCreate) -> AccountPublic:
    """Create or update the account of an email domain and its owning rep: with
    ``routing.account_matching`` its leads go to the owner."""
    return AccountPublic.model_validate(asdict(rep_service.upsert_account(ctx, body, actor=actor)))


@router.get("/accounts", operation_id="list_accounts", response_model=list[AccountPublic])
def list_accounts(ctx: Ctx, actor: Actor) -> list[AccountPublic]:
    """Every account with its owner, by domain (a rep: the accounts they own)."""
    return [
        AccountPublic.model_validate(asdict(a)) for a in rep_service.list_accounts(ctx, actor=actor)
    ]
