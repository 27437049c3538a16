"""/api/v1/contracts/backtest: what a draft contract would have done to the recorded
history, side by side with the active version (:mod:`baton.services.backtest`). Reads
only: no score, stage, handoff or email comes of it."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, status
from pydantic import BaseModel, Field

from baton.api.deps import Actor, Authenticated, Ctx
from baton.api.heavy import heavy_run
from baton.api.routes.contracts import EXAMPLE_BODY
from baton.domain.errors import FieldProblem, ValidationFailed
from baton.services.backtest import backtest_contract

router = APIRouter(prefix="/api/v1/contracts", tags=["contracts"], dependencies=[Authenticated])


class BacktestRequest(BaseModel):
    """The contract to backtest: a draft's YAML text (``draft``) or a stored
    ``version``; ``against``: a stored version to compare with (default: the active
    one)."""

    draft: str | None = Field(
        None,
        min_length=1,
        max_length=500_000,
        description="A draft contract's YAML text",
        examples=[EXAMPLE_BODY],
    )
    version: int | None = Field(
        None, ge=1, le=2**31, description="A stored version to backtest", examples=[5]
    )
    against: int | None = Field(
        None,
        ge=1,
        le=2**31,
        description="A stored version to compare with (default: the active one)",
        examples=[3],
    )
    outcome: str = Field(
        "won",
        max_length=111,
        pattern=r"^(won|attributes\.[^\s]{1,100})$",
        description="What counts as won: won (became a customer) or attributes.KEY, an "
        "imported outcome column (X Education: attributes.converted)",
        examples=["won", "attributes.converted"],
    )


class TotalsPublic(BaseModel):
    mqls: int = Field(description="Leads the contract would have handed off")
    median_hours_to_mql: float | None = Field(description="First touch to MQL, median")
    p90_hours_to_mql: float | None
    accepted: int = Field(description="Of the MQLs: accepted by sales in history")
    qualified: int
    won: int
    accepted_share: float | None
    qualified_share: float | None
    won_share: float | None
    missed_winners: int = Field(description="Won in history, never an MQL here")
    missed_sample: list[int] = Field(description="Some of the missed winners' lead ids")
    rejected_by_reason: dict[str, int] = Field(
        description="MQLs here that sales rejected in history, by reason code"
    )
    precision: float | None = Field(description="Of the MQLs, the share won (None: no won lead)")
    recall: float | None = Field(description="Of the won leads, the share MQL")
    roc_auc: float | None = Field(description="Peak score before the outcome, against won")
    pr_auc: float | None


class WeekPublic(BaseModel):
    week: str = Field(examples=["2026-W07"])
    mqls: int
    accepted: int
    qualified: int
    won: int
    rejected: int
    median_hours_to_mql: float | None


class SweepPointPublic(BaseModel):
    threshold: float
    mqls: int
    precision: float | None
    recall: float | None
    own: bool = Field(description="The contract's own threshold")


class SidePublic(BaseModel):
    label: str = Field(examples=["draft", "version 3"])
    version: int | None
    threshold: int
    totals: TotalsPublic
    weeks: list[WeekPublic]
    sweep: list[SweepPointPublic]


class BacktestPublic(BaseModel):
    """The draft's and the compared version's figures over the same history."""

    leads: int = Field(description="Leads replayed (merged ones left out)")
    won: int
    accepted: int
    qualified: int
    rejected: int
    first_touch: str | None
    last_event: str | None
    draft: SidePublic
    against: SidePublic | None
    warnings: list[str]
    notes: list[str]
    outcome: str = Field(description="What counted as won: won or attributes.KEY")


EXAMPLE_RESPONSE: dict[str, Any] = {
    "leads": 8000,
    "won": 842,
    "accepted": 842,
    "qualified": 842,
    "rejected": 0,
    "outcome": "won",
    "first_touch": "2017-06-14T00:00:00+00:00",
    "last_event": "2018-05-31T00:00:00+00:00",
    "draft": {
        "label": "draft",
        "version": None,
        "threshold": 50,
        "totals": {
            "mqls": 1200,
            "median_hours_to_mql": 0.0,
            "p90_hours_to_mql": 0.0,
            "accepted": 310,
            "qualified": 310,
            "won": 310,
            "accepted_share": 0.2583,
            "qualified_share": 0.2583,
            "won_share": 0.2583,
            "missed_winners": 532,
            "missed_sample": [14, 71, 90],
            "rejected_by_reason": {},
            "precision": 0.2583,
            "recall": 0.3682,
            "roc_auc": 0.71,
            "pr_auc": 0.22,
        },
        "weeks": [
            {
                "week": "2018-W05",
                "mqls": 40,
                "accepted": 12,
                "qualified": 12,
                "won": 12,
                "rejected": 0,
                "median_hours_to_mql": 0.0,
            }
        ],
        "sweep": [
            {"threshold": 50.0, "mqls": 1200, "precision": 0.2583, "recall": 0.3682, "own": True}
        ],
    },
    "against": None,
    "warnings": [],
    "notes": ["Lead fields are their stored values: Baton keeps no history of fields."],
}


@router.post(
    "/backtest",
    operation_id="backtest_contract",
    response_model=BacktestPublic,
    status_code=status.HTTP_200_OK,
    responses={
        200: {"content": {"application/json": {"example": EXAMPLE_RESPONSE}}},
        404: {"description": "No such version"},
        422: {"description": "A bad draft (each problem with its line), or no leads to replay"},
        429: {"description": "Another heavy run is under way on this server (Retry-After)"},
    },
)
def backtest(ctx: Ctx, actor: Actor, request: BacktestRequest) -> BacktestPublic:
    """Replay the recorded leads and activities in time order through a draft's (or a
    stored version's) scoring and MQL rules, side by side with ``against`` (default:
    the active version): MQL volume per week and in total, time from first touch to
    MQL, what sales did with those MQLs in history, missed winners, rejections by
    reason, precision, recall and ROC AUC against won, and a threshold sweep. Nothing
    is written. Exactly one of ``draft`` and ``version``."""
    if (request.draft is None) == (request.version is None):
        raise ValidationFailed(
            "give exactly one of draft and version",
            [FieldProblem("body", "give exactly one of draft (YAML text) and version")],
        )
    target: str | int = request.draft if request.draft is not None else int(request.version or 0)
    with heavy_run("backtest"):
        report = backtest_contract(
            ctx,
            target,
            against=request.against,
            actor=actor,
            processes=1,
            outcome=request.outcome,
        )
    return BacktestPublic.model_validate(report.to_json())
