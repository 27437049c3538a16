"""/api/v1/contracts: the handoff contract's versions, signatures and activation.

Every route needs credentials; who may draft, sign or activate is decided by the use
cases (:mod:`baton.services.contracts`), so the API and the CLI obey the same rules."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, status
from pydantic import BaseModel, Field

from baton.api.deps import Actor, Authenticated, Ctx
from baton.api.routes.status import UnfinishedRescorePublic
from baton.domain.rescores import rescore_document
from baton.services import contracts as contract_service

router = APIRouter(prefix="/api/v1/contracts", tags=["contracts"], dependencies=[Authenticated])

Version = Annotated[int, Path(ge=1, le=2**31, description="Contract version number.")]
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No such version"}}

EXAMPLE_BODY = """schema_version: 1
name: Lumen Analytics handoff contract
scoring:
  fit:
    - name: Decision-maker title
      when: {field: title, regex: "(?i)\\\\b(vp|head|director|chief)\\\\b"}
      points: 20
  engagement:
    - name: Pricing page
      event: page_view
      where: {url: /pricing}
      points: 10
      cap: 30
      half_life_days: 30
mql:
  threshold: 60
  hand_raise: [demo_request, contact_sales]
"""


class ContractCreate(BaseModel):
    """A new version: the contract as YAML text (see contracts/example.yaml)."""

    body: str = Field(min_length=1, max_length=500_000, examples=[EXAMPLE_BODY])


class RaciStepPublic(BaseModel):
    """Who does one step of the handoff; each name is a role or a team of ``teams``."""

    responsible: list[str] = Field(description="Do the work (at least one)")
    accountable: str = Field(description="Answers for the step (exactly one)")
    consulted: list[str] = Field(description="Asked before a change")
    informed: list[str] = Field(description="Told after")


RACI_EXAMPLE: dict[str, Any] = {
    "teams": {"revops": "Revenue operations"},
    "scoring": {
        "responsible": ["marketing"],
        "accountable": "marketing",
        "consulted": ["sales_manager"],
        "informed": ["sales"],
    },
    "mql": {
        "responsible": ["marketing"],
        "accountable": "revenue_lead",
        "consulted": ["sales_manager"],
        "informed": ["rep"],
    },
    "routing": {
        "responsible": ["revops"],
        "accountable": "sales_manager",
        "consulted": ["marketing"],
        "informed": ["rep"],
    },
    "first_touch": {
        "responsible": ["rep"],
        "accountable": "sales_manager",
        "consulted": [],
        "informed": ["marketing"],
    },
    "verdict": {
        "responsible": ["rep"],
        "accountable": "sales_manager",
        "consulted": ["marketing"],
        "informed": ["revops"],
    },
    "recycle": {
        "responsible": ["marketing"],
        "accountable": "marketing",
        "consulted": ["rep"],
        "informed": ["sales_manager"],
    },
    "reporting": {
        "responsible": ["revops"],
        "accountable": "revenue_lead",
        "consulted": ["marketing", "sales_manager"],
        "informed": ["sales", "rep"],
    },
}


class RaciPublic(BaseModel):
    """The contract's RACI: for each step of the handoff, who is responsible,
    accountable, consulted and informed."""

    model_config = {"json_schema_extra": {"examples": [RACI_EXAMPLE]}}

    teams: dict[str, str] = Field(description="Named teams (name -> description)")
    scoring: RaciStepPublic
    mql: RaciStepPublic
    routing: RaciStepPublic
    first_touch: RaciStepPublic
    verdict: RaciStepPublic
    recycle: RaciStepPublic
    reporting: RaciStepPublic


class ContractPublic(BaseModel):
    version: int
    name: str
    status: Literal["draft", "approved", "active", "superseded"]
    created_by: str
    created_at: datetime
    activated_at: datetime | None
    approvals: dict[str, str] = Field(description="role -> approver")
    body: str
    raci: RaciPublic | None = Field(
        description="The RACI section of this version; null when the version has none "
        '(shown as "not agreed")'
    )
    warnings: list[str] = Field(
        description="What the version leaves out but should not (path: message), e.g. "
        "no RACI section",
        examples=[[]],
    )
    rescore: UnfinishedRescorePublic | None = Field(
        None,
        description="On the active version: its re-score of every lead when that has not "
        "finished (stopped half way, or running; `baton contract rescore` finishes it); "
        "null otherwise",
    )


class ApprovalCreate(BaseModel):
    """Sign a version for one side; the signer is the authenticated user (a
    ``marketing`` user for marketing, a ``sales_manager`` for sales)."""

    role: Literal["marketing", "sales"]


class ActivationPublic(BaseModel):
    version: int
    previous: int | None
    leads_scored: int
    crossed_up: int = Field(description="Leads whose total rose to the threshold or above")
    crossed_down: int = Field(description="Leads whose total fell below the threshold")
    became_mql: int
    held_back: int = Field(
        0,
        description="Of became_mql: leads whose qualifying moment is older than the "
        "contract's mql.live_within_days, recorded as MQLs of the past with no live handoff",
    )


class ChangePublic(BaseModel):
    section: str
    text: str


def _public(version: contract_service.ContractVersion) -> ContractPublic:
    raci = version.spec.raci if version.spec is not None else None
    return ContractPublic(
        version=version.version,
        name=version.name,
        status=version.status,
        created_by=version.created_by,
        created_at=version.created_at,
        activated_at=version.activated_at,
        approvals=version.approvals,
        body=version.body,
        raci=None if raci is None else RaciPublic.model_validate(raci.model_dump()),
        warnings=list(version.warnings),
        rescore=None
        if version.rescore is None
        else UnfinishedRescorePublic.model_validate(rescore_document(version.rescore)),
    )


@router.get("", operation_id="list_contracts", response_model=list[ContractPublic])
def list_contracts(ctx: Ctx, actor: Actor) -> list[ContractPublic]:
    """Every version, newest first."""
    return [_public(v) for v in contract_service.list_contracts(ctx, actor=actor)]


@router.post(
    "",
    operation_id="create_contract",
    response_model=ContractPublic,
    status_code=status.HTTP_201_CREATED,
    responses={422: {"description": "The contract has problems, each with its path"}},
)
def create_contract(ctx: Ctx, actor: Actor, body: ContractCreate) -> ContractPublic:
    """Store a new draft version; every problem in it is reported with its path."""
    return _public(contract_service.create_contract(ctx, body.body, actor=actor))


@router.get(
    "/{version}", operation_id="get_contract", response_model=ContractPublic, responses=NOT_FOUND
)
def get_contract(ctx: Ctx, actor: Actor, version: Version) -> ContractPublic:
    """One version with its body and signatures."""
    return _public(contract_service.get_contract(ctx, version, actor=actor))


@router.post(
    "/{version}/approve",
    operation_id="approve_contract",
    response_model=ContractPublic,
    responses={
        **NOT_FOUND,
        409: {"description": "Already signed, or the same person signed the other side"},
    },
)
def approve(ctx: Ctx, actor: Actor, version: Version, body: ApprovalCreate) -> ContractPublic:
    """Sign for marketing (a ``marketing`` user) or sales (a ``sales_manager``). Two
    different people must sign; an admin never signs."""
    return _public(contract_service.approve_contract(ctx, version, role=body.role, actor=actor))


@router.post(
    "/{version}/activate",
    operation_id="activate_contract",
    response_model=ActivationPublic,
    responses={**NOT_FOUND, 409: {"description": "Not approved by both sides"}},
)
def activate(ctx: Ctx, actor: Actor, version: Version) -> ActivationPublic:
    """Make an approved version the active one and re-score every lead (for large
    databases prefer ``baton contract activate``, which shows progress). Admins only."""
    report = contract_service.activate_contract(ctx, version, actor=actor)
    return ActivationPublic.model_validate(asdict(report))


@router.get(
    "/{version}/diff",
    operation_id="diff_contracts",
    response_model=list[ChangePublic],
    responses=NOT_FOUND,
)
def diff(
    ctx: Ctx,
    actor: Actor,
    version: Version,
    against: Annotated[int, Query(ge=1, le=2**31, description="The older version")],
) -> list[ChangePublic]:
    """What changed from ``against`` to ``version``, in words."""
    return [
        ChangePublic.model_validate(asdict(c))
        for c in contract_service.diff_versions(ctx, against, version, actor=actor)
    ]
