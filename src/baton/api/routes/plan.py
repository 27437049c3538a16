"""/api/v1/plan/capacity: the capacity plan of ``baton plan capacity`` (a simulated
week through the real routing and SLA code; nothing is written). For admins,
marketing and sales managers (``models:read`` tokens)."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel, Field

from baton.api.deps import Actor, Authenticated, Ctx
from baton.api.heavy import heavy_run
from baton.services import capacity
from baton.services.capacity import CapacityRequest

router = APIRouter(prefix="/api/v1", tags=["reports"], dependencies=[Authenticated])


class ShiftPublic(BaseModel):
    hours: str = Field(description="Working hours and zone of these reps")
    reps: int


class SearchPointPublic(BaseModel):
    added: int = Field(description="Reps added so far")
    hours: str = Field(description="The shift of the rep added at this step")
    share: float = Field(description="Share touched within `within` minutes after it")


class CapacityPlanPublic(BaseModel):
    """The simulated week(s), pooled over the seeded runs."""

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "arrivals_from": "the given rates",
                    "mqls_per_week": 246.0,
                    "rates": [0.0] * 168,
                    "timezone": "Europe/Berlin",
                    "week_of": "2026-03-01T23:00:00+00:00",
                    "roster": "3 hypothetical reps, Mon-Fri 08:00-18:00",
                    "reps": 5,
                    "minutes_per_lead": 10.0,
                    "minutes_per_lead_from": "given",
                    "sla_minutes": 120.0,
                    "sla_business_hours": True,
                    "sla_from": "contract v3",
                    "within": 5.0,
                    "runs": 3,
                    "mqls_expected": 738.0,
                    "mqls_simulated": 741,
                    "share_within": 0.91,
                    "share_within_sla": 0.99,
                    "share_touched": 1.0,
                    "p50_minutes": 0.0,
                    "p90_minutes": 4.2,
                    "p99_minutes": 810.5,
                    "histogram": [["≤ 1 min", 600], ["1-5 min", 75]],
                    "waiting_reasons": [
                        ["no hypothetical rep is available: outside working hours (UTC)", 12]
                    ],
                    "staffing": [[0] * 24 for _ in range(7)],
                    "shifts": [{"hours": "Mon-Fri 08:00-18:00 (Europe/Berlin)", "reps": 3}],
                    "target": 0.9,
                    "target_met": True,
                    "added": [{"hours": "Mon-Fri 08:00-16:00 (Europe/Berlin)", "reps": 2}],
                    "search": [
                        {"added": 1, "hours": "Mon-Fri 08:00-16:00", "share": 0.84},
                        {"added": 2, "hours": "Mon-Fri 08:00-16:00", "share": 0.91},
                    ],
                    "warnings": [],
                }
            ]
        }
    }

    arrivals_from: str = Field(description="Where the arrival rates came from")
    mqls_per_week: float
    rates: list[float] = Field(description="MQLs per hour of the week, Monday 00:00 first")
    timezone: str
    week_of: datetime = Field(description="The simulated week's Monday 00:00 (UTC)")
    roster: str
    reps: int
    minutes_per_lead: float
    minutes_per_lead_from: str
    sla_minutes: float = Field(description="The contract's first-touch SLA")
    sla_business_hours: bool
    sla_from: str = Field(
        description="Whose SLA: the active contract's, or Baton's default without one"
    )
    within: float
    runs: int = Field(description="Seeded runs pooled (more for small volumes by default)")
    mqls_expected: float = Field(description="MQLs the rates promise over the runs")
    mqls_simulated: int = Field(description="MQLs the seeded Poisson draws gave")
    share_within: float = Field(description="Share touched within `within` minutes")
    share_within_sla: float = Field(description="Share touched by the SLA deadline")
    share_touched: float
    p50_minutes: float | None = Field(description="Speed to lead; null: never touched")
    p90_minutes: float | None
    p99_minutes: float | None
    histogram: list[tuple[str, int]]
    waiting_reasons: list[tuple[str, int]]
    staffing: list[list[int]] = Field(description="Reps working per day (Monday first), hour")
    shifts: list[ShiftPublic]
    target: float | None
    target_met: bool | None
    added: list[ShiftPublic] = Field(description="Reps the search adds, by shift")
    search: list[SearchPointPublic]
    warnings: list[str] = Field(
        description="What to know before trusting the plan: arrivals learnt from an "
        "import (MQLs bunched in one hour), the default SLA for want of a contract"
    )


@router.post(
    "/plan/capacity",
    operation_id="plan_capacity",
    response_model=CapacityPlanPublic,
    responses={
        403: {"description": "Only admins, marketing and sales managers (problem+json)"},
        422: {"description": "No reps, no arrivals to learn from, bad rates (problem+json)"},
        429: {"description": "Another heavy run is under way on this server (Retry-After)"},
    },
)
def plan_capacity(body: CapacityRequest, ctx: Ctx, actor: Actor) -> CapacityPlanPublic:
    """Predict the share of MQLs touched within `within` minutes and within the SLA,
    and the speed-to-lead spread, by running simulated weeks of arrivals (the MQL
    history of the last `weeks`, or the given `rates`) through the real routing and SLA
    code on the current roster (or `reps` hypothetical reps on `hours`); with `target`,
    add reps one at a time on the shift that helps most until it is met."""
    with heavy_run("capacity plan"):
        plan = capacity.plan_capacity(ctx, body, actor=actor)
    return CapacityPlanPublic.model_validate(capacity.plan_json(plan))
