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


class ContractPublic(BaseModel):
    version: int
    name: str
    status: Literal["draft", "approved", "active", "superseded"]
    created_by: str
    created_at: datetime
    activated_at: datetime | None
    approvals: dict[str, str] = Field(description="role -> approver")
    body: str


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


class ChangePublic(BaseModel):
    section: str
    text: str


def _public(version: contract_service.ContractVersion) -> ContractPublic:
    return ContractPublic.model_validate(asdict(version))


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
