"""/api/v1/contracts/suggest: points for a contract's existing rules, fitted from the
history's outcomes (:mod:`baton.services.contract_suggest`)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, status
from pydantic import BaseModel, Field

from baton.api.deps import Actor, Authenticated, Ctx
from baton.api.heavy import heavy_run
from baton.api.routes.contracts import EXAMPLE_BODY
from baton.learn.suggest import IN_SAMPLE
from baton.services import contract_suggest

router = APIRouter(prefix="/api/v1/contracts", tags=["contracts"], dependencies=[Authenticated])


class SuggestRequest(BaseModel):
    """Which contract to start from (``body``, or a stored ``version``, or else the
    active one), the outcome to learn from, and whether to store the result."""

    body: str | None = Field(
        None,
        min_length=1,
        max_length=500_000,
        description="A contract's YAML text to start from",
        examples=[EXAMPLE_BODY],
    )
    version: int | None = Field(
        None, ge=1, le=2**31, description="A stored version to start from", examples=[3]
    )
    target: str = Field(
        "won",
        min_length=1,
        max_length=200,
        pattern=r"^(won|accepted|attributes\.[A-Za-z0-9_.-]+)$",
        description="won, accepted (sales' verdicts) or attributes.KEY (an imported "
        "outcome column)",
        examples=["won", "attributes.converted"],
    )
    save: bool = Field(False, description="Store the suggestion as a draft version")


class RulePoints(BaseModel):
    section: Literal["fit", "engagement"]
    index: int = Field(description="The rule's position in its section")
    label: str
    old: int = Field(description="Points as written")
    suggested: int = Field(description="Points the outcomes suggest")
    coefficient: float = Field(description="Log-odds per unit (a rule that holds; one event)")
    support: int = Field(description="Example leads the rule holds for")
    worthless: bool = Field(description="Less than one point")
    wrong_sign: bool = Field(description="The data says the opposite")


class ThresholdPublic(BaseModel):
    threshold: int
    handed_off: int
    precision: float
    recall: float
    f1: float


class VolumePublic(BaseModel):
    """The MQL volume the suggested threshold keeps, counted as the backtest counts it
    over every recorded lead."""

    threshold: int
    wanted: int = Field(description="MQLs of the original contract at its own threshold")
    handed_off: int = Field(description="MQLs of the suggested contract at ``threshold``")
    leads: int = Field(description="Recorded leads the volume was counted on")
    kept: bool = Field(description="Within 5 % of the original's volume")
    bound: Literal["lowest", "highest"] | None = Field(
        None, description="The threshold hit a bound and cannot keep the volume"
    )
    message: str = Field(
        examples=[
            "MQL threshold 40 -> 38 keeps the volume (482 -> 479 MQLs; counted as "
            "the backtest does, over all 1,200 recorded leads)"
        ]
    )


class SuggestionPublic(BaseModel):
    """The suggested contract (``body``, the original's text with new points), per rule
    the old and suggested points, the volume-keeping threshold and the F1-best one."""

    source: str = Field(description="'version N' or 'file'", examples=["version 3"])
    target: str
    examples: int
    positives: int
    scale: float = Field(description="Points per unit of log-odds")
    rules: list[RulePoints]
    old_threshold: int
    threshold: ThresholdPublic = Field(
        description="The volume-keeping threshold, with its precision and recall on the "
        "example leads (``handed_off``: examples at or over it; the volume is ``volume``)"
    )
    volume: VolumePublic | None
    best_f1: ThresholdPublic
    original: ThresholdPublic = Field(description="The original threshold on the history")
    old_roc_auc: float | None = Field(
        description="In-sample: on the leads the points were fitted on"
    )
    new_roc_auc: float | None = Field(
        description="In-sample: on the leads the points were fitted on"
    )
    roc_auc_basis: str = Field(
        description="How the ROC AUCs were measured", examples=["in-sample: fitted on these leads"]
    )
    body: str
    saved_version: int | None = Field(None, description="The draft stored with save")


@router.post(
    "/suggest",
    operation_id="suggest_contract",
    response_model=SuggestionPublic,
    status_code=status.HTTP_200_OK,
    responses={
        404: {"description": "No such version"},
        422: {"description": "Too few outcomes, no contract to start from, or a bad draft"},
        429: {"description": "Another heavy run is under way on this server (Retry-After)"},
    },
)
def suggest(ctx: Ctx, actor: Actor, request: SuggestRequest) -> SuggestionPublic:
    """Suggest points for a contract's existing fit and engagement rules from the
    history's outcomes (a logistic regression, rounded to whole points on the
    contract's own range) and an MQL threshold keeping its volume; with ``save`` the
    suggestion is stored as a draft version. Marketing and admins."""
    with heavy_run("contract suggestion"):
        result = contract_suggest.suggest_contract(
            ctx,
            actor=actor,
            target=request.target,
            version=request.version,
            body=request.body,
            save=request.save,
        )
    s = result.suggestion
    return SuggestionPublic(
        source=result.source,
        target=result.target,
        examples=s.examples,
        positives=s.positives,
        scale=s.scale,
        rules=[
            RulePoints(
                section=r.section,
                index=r.index,
                label=r.label,
                old=r.old,
                suggested=r.suggested,
                coefficient=r.coefficient,
                support=r.support,
                worthless=r.worthless,
                wrong_sign=r.wrong_sign,
            )
            for r in s.rules
        ],
        old_threshold=s.old_threshold,
        threshold=ThresholdPublic(**s.volume.__dict__),
        best_f1=ThresholdPublic(**s.best_f1.__dict__),
        original=ThresholdPublic(**s.old_choice.__dict__),
        volume=(
            None
            if s.volume_match is None
            else VolumePublic(
                threshold=s.volume_match.threshold,
                wanted=s.volume_match.wanted,
                handed_off=s.volume_match.handed_off,
                leads=s.volume_match.leads,
                kept=s.volume_match.kept,
                bound=s.volume_match.bound,
                message=s.volume_match.sentence,
            )
        ),
        old_roc_auc=s.old_roc_auc,
        new_roc_auc=s.new_roc_auc,
        roc_auc_basis=IN_SAMPLE,
        body=result.body,
        saved_version=result.saved.version if result.saved is not None else None,
    )
