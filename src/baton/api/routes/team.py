"""/api/v1/team/today: the manager's view (open handoffs against the SLA, the queue
with reasons, reps' availability now), the same use case as the ``/team`` page.

For sales managers (their teams) and admins (everyone); others get 403."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from baton.api.deps import Actor, Authenticated, Ctx
from baton.api.schemas import HandoffPublic
from baton.services import team_view

router = APIRouter(prefix="/api/v1", tags=["handoffs"], dependencies=[Authenticated])


class LeadLabelPublic(BaseModel):
    id: int
    name: str
    company: str | None
    email: str | None


class SlaStandingPublic(BaseModel):
    state: Literal["on time", "reminded", "breached"] = Field(
        description="breached: a deadline passed before its step; reminded: the ladder "
        "reminded the rep; else on time"
    )
    waiting_for: Literal["accept", "touch"] | None
    due_at: datetime | None


class TeamHandoffPublic(BaseModel):
    handoff: HandoffPublic
    lead: LeadLabelPublic
    team: str | None
    rep_timezone: str | None
    sla: SlaStandingPublic


class QueuedHandoffPublic(BaseModel):
    handoff: HandoffPublic
    lead: LeadLabelPublic
    reason: str = Field(description="Why routing could not place it")


class RepTodayPublic(BaseModel):
    id: int
    email: str
    name: str
    team: str | None
    timezone: str
    availability: Literal["in hours", "outside hours", "away", "out of office", "full", "inactive"]
    open_handoffs: int
    capacity: int
    hours_today: list[tuple[datetime, datetime]] = Field(
        description="Working time on the rep's local calendar day, UTC (start, end) pairs"
    )
    next_working_at: datetime | None


class TeamTodayPublic(BaseModel):
    """The manager's view now: open handoffs most urgent first, the queue oldest first,
    reps by name."""

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "at": "2026-03-02T10:00:00Z",
                    "teams": ["emea"],
                    "handoffs": [],
                    "queue": [],
                    "reps": [
                        {
                            "id": 3,
                            "email": "ana@lumen.example",
                            "name": "Ana",
                            "team": "emea",
                            "timezone": "Europe/Paris",
                            "availability": "in hours",
                            "open_handoffs": 2,
                            "capacity": 20,
                            "hours_today": [["2026-03-02T08:00:00Z", "2026-03-02T16:00:00Z"]],
                            "next_working_at": None,
                        }
                    ],
                    "more_handoffs": False,
                    "more_queued": False,
                }
            ]
        }
    }

    at: datetime
    teams: list[str]
    handoffs: list[TeamHandoffPublic]
    queue: list[QueuedHandoffPublic]
    reps: list[RepTodayPublic]
    more_handoffs: bool
    more_queued: bool


@router.get(
    "/team/today",
    operation_id="team_today",
    response_model=TeamTodayPublic,
    responses={403: {"description": "Only sales managers and admins (problem+json)"}},
)
def team_today(
    ctx: Ctx,
    actor: Actor,
    team: Annotated[str | None, Query(max_length=100, description="Only this team")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> TeamTodayPublic:
    """Today for a sales manager: their team's open handoffs with SLA state (on time,
    reminded, breached) and the next deadline, the unassigned queue with the reason
    each item waits, and each rep's availability now (in hours, outside hours, away,
    out of office, full) with open load against capacity."""
    view = team_view.team_today(ctx, actor=actor, team=team, limit=limit)
    return TeamTodayPublic.model_validate(asdict(view))
