"""/api/v1/models: learned scoring models: train a draft on the recorded outcomes, read
versions with their evaluation, sign (both teams) and activate.

Every route needs credentials; who may train, sign or activate is decided by the use
cases (:mod:`baton.services.models`), so the API and the CLI obey the same rules."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, status
from pydantic import BaseModel, Field

from baton.api.deps import Actor, Authenticated, Ctx
from baton.api.heavy import heavy_run
from baton.services import models as model_service

router = APIRouter(prefix="/api/v1/models", tags=["models"], dependencies=[Authenticated])

Version = Annotated[int, Path(ge=1, le=2**31, description="Model version number.")]
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No such model version"}}


class ModelTrain(BaseModel):
    """What to train: a draft model on the recorded outcomes, with features as they
    were at each lead's first handoff (activities after it are never read)."""

    kind: Literal["gradient_boosting", "logistic_regression", "naive_bayes"] = "gradient_boosting"
    target: str = Field(
        "won",
        min_length=1,
        max_length=120,
        description="won (became a customer vs lost, disqualified, or handed off 90+ days "
        "ago without a win), accepted (sales' verdicts) or attributes.KEY (an outcome "
        "column that came with imported data: 1/yes/true vs 0/no/false)",
        examples=["won", "accepted", "attributes.converted"],
    )
    name: str | None = Field(None, max_length=200, examples=["Q3 gradient boosting"])
    exclude: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(
        default_factory=list,
        max_length=200,
        description="Features to leave out: every field sales fills in after the first "
        "contact (it would leak the outcome), e.g. attributes.tags",
        examples=[["attributes.tags", "attributes.lead_quality"]],
    )
    keep: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(
        default_factory=list,
        max_length=200,
        description="Attributes to use although they look like identifiers for their many "
        "values (200+ values, or one per lead), e.g. attributes.landing_page_id; identity "
        "and contact data (emails, names, phones) are refused",
        examples=[["attributes.landing_page_id"]],
    )
    attributes: list[Annotated[str, Field(min_length=1, max_length=200)]] | None = Field(
        None,
        max_length=500,
        description="Exactly these attribute keys as features (default: those present on "
        "2 % of the examples)",
    )
    holdout: float = Field(0.3, ge=0.05, le=0.5, description="Share held out for evaluation")
    split: Literal["auto", "time", "stratified"] = Field(
        "auto",
        description="auto: by time when the handoffs spread over more than a week, else stratified",
    )

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "kind": "gradient_boosting",
                    "target": "won",
                    "exclude": ["attributes.tags"],
                    "holdout": 0.3,
                    "split": "auto",
                }
            ]
        }
    }


class CalibrationBand(BaseModel):
    predicted: float = Field(description="Mean predicted probability in the band")
    observed: float = Field(description="Share of positives observed in the band")
    rows: int


class EvaluationPublic(BaseModel):
    """How the model did on the held-out examples."""

    rows: int
    positives: int
    roc_auc: float
    pr_auc: float
    brier: float
    base_rate: float
    calibration: list[CalibrationBand]
    warnings: list[str] = Field(
        default_factory=list,
        description="What to check before trusting the figures, e.g. a suspiciously good "
        "ROC AUC (a field filled in after the outcome), naming the top features",
    )


class TopFeaturePublic(BaseModel):
    feature: str = Field(examples=["attributes.lead_origin=lead add form"])
    weight: float = Field(description="Log-odds in a logistic regression")
    label: str


class FeatureSpecPublic(BaseModel):
    fields: list[str]
    attributes: list[str]
    event_types: list[str]
    exclude: list[str]


class ModelPublic(BaseModel):
    version: int
    name: str
    kind: str
    target: str
    status: Literal["draft", "approved", "active", "superseded"]
    created_by: str
    created_at: datetime
    activated_at: datetime | None
    approvals: dict[str, str] = Field(description="role -> approver")
    evaluation: EvaluationPublic
    features: FeatureSpecPublic
    trained_on: dict[str, Any] = Field(
        description="The history it learned from: rows, positives, negatives, split, "
        "holdout, period_from, period_to, excluded, excluded_leaks, rejected_by_reason...",
        examples=[{"rows": 8000, "positives": 842, "split": "time", "holdout": 0.3}],
    )
    top_features: list[TopFeaturePublic]
    top_features_source: str


class ApprovalCreate(BaseModel):
    """Sign a model version for one side; the signer is the authenticated user (a
    ``marketing`` user for marketing, a ``sales_manager`` for sales)."""

    role: Literal["marketing", "sales"]


class ActivationPublic(BaseModel):
    version: int
    previous: int | None


def _public(model: model_service.ModelVersion) -> ModelPublic:
    e = model.evaluation
    return ModelPublic(
        version=model.version,
        name=model.name,
        kind=model.kind,
        target=model.target,
        status=model.status,
        created_by=model.created_by,
        created_at=model.created_at,
        activated_at=model.activated_at,
        approvals=model.approvals,
        evaluation=EvaluationPublic(
            rows=e.rows,
            positives=e.positives,
            roc_auc=e.roc_auc,
            pr_auc=e.pr_auc,
            brier=e.brier,
            base_rate=e.base_rate,
            calibration=[
                CalibrationBand(predicted=p, observed=o, rows=n) for p, o, n in e.calibration
            ],
            warnings=list(e.warnings),
        ),
        features=FeatureSpecPublic.model_validate(model.spec.to_json()),
        trained_on={k: v for k, v in model.trained_on.items() if k != "top_features"},
        top_features=[
            TopFeaturePublic(feature=t.feature, weight=t.weight, label=t.label)
            for t in model.top_features
        ],
        top_features_source=model.top_features_source,
    )


@router.get("", operation_id="list_models", response_model=list[ModelPublic])
def list_models(ctx: Ctx, actor: Actor) -> list[ModelPublic]:
    """Every model version, newest first."""
    return [_public(m) for m in model_service.list_models(ctx, actor=actor)]


@router.post(
    "",
    operation_id="train_model",
    response_model=ModelPublic,
    status_code=status.HTTP_201_CREATED,
    responses={
        422: {
            "description": "The options are not valid, or the history cannot teach (empty, "
            "no positive or no negative outcome, fewer than 20 of one, fewer than 10 of "
            "one in the hold-out), or ``keep`` names personal data: the problem says what "
            "is missing"
        },
        429: {"description": "Another heavy run is under way on this server (Retry-After)"},
    },
)
def train_model(ctx: Ctx, actor: Actor, body: ModelTrain) -> ModelPublic:
    """Train a model on the recorded outcomes and store it as a draft with its
    evaluation on the hold-out (for large histories prefer ``baton model train``, which
    shows progress)."""
    with heavy_run("training run"):
        trained = model_service.train_model(
            ctx,
            actor=actor,
            kind=body.kind,
            target=body.target,
            name=body.name,
            exclude=tuple(body.exclude),
            keep=tuple(body.keep),
            attributes=None if body.attributes is None else tuple(body.attributes),
            holdout=body.holdout,
            split=body.split,
        )
    return _public(trained)


@router.get("/{version}", operation_id="get_model", response_model=ModelPublic, responses=NOT_FOUND)
def get_model(ctx: Ctx, actor: Actor, version: Version) -> ModelPublic:
    """One version: its evaluation with the calibration bands, features, the history it
    learned from and its top features."""
    return _public(model_service.get_model(ctx, version, actor=actor))


@router.post(
    "/{version}/approvals",
    operation_id="approve_model",
    response_model=ModelPublic,
    responses={
        **NOT_FOUND,
        409: {"description": "Already signed, or the same person signed the other side"},
    },
)
def approve(ctx: Ctx, actor: Actor, version: Version, body: ApprovalCreate) -> ModelPublic:
    """Sign for marketing (a ``marketing`` user) or sales (a ``sales_manager``). Two
    different people must sign; an admin never signs."""
    return _public(model_service.approve_model(ctx, version, role=body.role, actor=actor))


@router.post(
    "/{version}/activate",
    operation_id="activate_model",
    response_model=ActivationPublic,
    responses={**NOT_FOUND, 409: {"description": "Not approved by both sides, or already active"}},
)
def activate(ctx: Ctx, actor: Actor, version: Version) -> ActivationPublic:
    """Make a version signed by both sides the active model (the previous one is
    superseded). Admins only. A contract names the version it scores with."""
    result = model_service.activate_model(ctx, version, actor=actor)
    return ActivationPublic(version=result.version, previous=result.previous)
