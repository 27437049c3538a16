"""The handoff contract both teams sign (``/contract``).

``/contract`` shows the active version in words (scoring rules with their points, the
handoff point, prep items, SLA, rejection catalog, routing, the RACI) and every
version; ``/contract/{version}`` one version with its signatures and the buttons its
reader may use (sign for their side, activate); ``/contract/diff`` what changed between
any two versions; ``/contract/new`` a new draft from YAML (pasted or a file), its
problems shown by field and line. Everything comes from
:mod:`baton.services.contracts`; the buttons post to the same use cases as the API.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, File, Form, Path, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, Response
from markupsafe import Markup

from baton.api.deps import Ctx
from baton.domain.contract import (
    RACI_ROLES,
    RACI_STEP_LABELS,
    RACI_STEPS,
    condition_text,
    rule_label,
)
from baton.domain.errors import BatonError, Conflict, Forbidden, NotFound, ValidationFailed
from baton.domain.rescores import UnfinishedRescore, rescore_text
from baton.services import contracts as contract_service
from baton.web.deps import PageUser
from baton.web.forms import FormUser
from baton.web.render import redirect, render, templates

router = APIRouter(include_in_schema=False)

templates.filters.setdefault("contract_rule", rule_label)
templates.filters.setdefault("condition_text", condition_text)


def _rescore_html(rescore: UnfinishedRescore) -> Markup:
    """:func:`rescore_text` for a page: escaped, its command in ``<code>`` rather than
    between the backticks a terminal shows."""
    parts = rescore_text(rescore).split("`")
    code = Markup("<code>{}</code>")
    return Markup("").join(code.format(p) if i % 2 else p for i, p in enumerate(parts))


templates.filters.setdefault("rescore_text", _rescore_html)

Version = Annotated[int, Path(ge=1, le=2**31)]
MAX_UPLOAD = 500_000
SIDE_LABELS = {"marketing": "marketing", "sales": "sales"}


def _page_values(
    version: contract_service.ContractVersion | None, user: PageUser
) -> dict[str, object]:
    return {
        "contract": version,
        "spec": version.spec if version is not None else None,
        "actions": (
            contract_service.version_actions(version, actor=user.principal)
            if version is not None
            else contract_service.VersionActions()
        ),
        "raci_steps": [(step, RACI_STEP_LABELS[step]) for step in RACI_STEPS],
        "raci_roles": RACI_ROLES,
    }


@router.get("/contract", response_model=None)
def contract_home(request: Request, ctx: Ctx, user: PageUser) -> HTMLResponse:
    """The active version in words, and every version."""
    versions = contract_service.list_contracts(ctx, actor=user.principal)
    active = next((v for v in versions if v.status == "active"), None)
    return render(
        request,
        "contract/index.html",
        {
            **_page_values(active, user),
            "versions": versions,
            "may_draft": contract_service.may_draft(user.principal),
            "pending": [v for v in versions if v.status in ("draft", "approved")],
        },
    )


@router.get("/contract/diff", response_model=None)
def contract_diff(
    request: Request,
    ctx: Ctx,
    user: PageUser,
    old: Annotated[int | None, Query(ge=1, le=2**31)] = None,
    new: Annotated[int | None, Query(ge=1, le=2**31)] = None,
) -> HTMLResponse:
    """What changed between two versions (picked in a form)."""
    versions = contract_service.list_contracts(ctx, actor=user.principal)
    numbers = [v.version for v in versions]
    active = next((v.version for v in versions if v.status == "active"), None)
    if new is None and numbers:
        new = numbers[0]
    if old is None and new is not None:
        # The version before ``new``, or the active one, or ``new`` itself (no changes).
        earlier = [n for n in numbers if n < new]
        old = earlier[0] if earlier else active if active is not None else new
    changes: list[tuple[str, list[str]]] = []
    if old is not None and new is not None:
        if old not in numbers or new not in numbers:
            raise NotFound("no such contract version")
        grouped: dict[str, list[str]] = {}
        for change in contract_service.diff_versions(ctx, old, new, actor=user.principal):
            grouped.setdefault(change.section, []).append(change.text)
        changes = list(grouped.items())
    return render(
        request,
        "contract/diff.html",
        {"versions": versions, "old": old, "new": new, "changes": changes},
    )


@router.get("/contract/new", response_model=None)
def draft_form(request: Request, ctx: Ctx, user: PageUser) -> HTMLResponse:
    """A new draft: paste the YAML, or choose a file; starts from the newest version."""
    if not contract_service.may_draft(user.principal):
        raise Forbidden("only marketing and admins draft contract versions")
    versions = contract_service.list_contracts(ctx, actor=user.principal)
    body = versions[0].body if versions else ""
    return render(request, "contract/new.html", {"body": body, "problems": [], "error": None})


@router.post("/contract/new", response_model=None)
async def draft_submit(
    request: Request,
    ctx: Ctx,
    user: FormUser,
    body: Annotated[str, Form(max_length=MAX_UPLOAD)] = "",
    file: Annotated[UploadFile | None, File()] = None,
) -> Response:
    """Store the draft, or show its problems beside the text (422)."""
    from fastapi.concurrency import run_in_threadpool

    error: str | None = None
    if file is not None and file.filename:
        raw = await file.read(MAX_UPLOAD + 1)
        if len(raw) > MAX_UPLOAD:
            error = f"The file is larger than {MAX_UPLOAD:,} bytes."
        else:
            try:
                body = raw.decode("utf-8")
            except UnicodeDecodeError:
                error = "The file is not UTF-8 text."
    if error is None and not body.strip():
        error = "Paste the contract's YAML or choose a file."
    if error is not None:
        values: dict[str, object] = {"body": body, "problems": [], "error": error}
        return render(request, "contract/new.html", values, status=400)
    try:
        created = await run_in_threadpool(
            contract_service.create_contract, ctx, body, actor=user.principal
        )
    except ValidationFailed as exc:
        problems = contract_service.problem_lines(body, exc.problems)
        values = {"body": body, "problems": problems, "error": exc.detail}
        return render(request, "contract/new.html", values, status=422)
    message = f"Draft version {created.version} stored: it needs both signatures."
    if created.warnings:
        message += " Warning: " + "; ".join(created.warnings)
    return redirect(request, f"/contract/{created.version}", message)


@router.get("/contract/{version}", response_model=None)
def contract_version(request: Request, ctx: Ctx, user: PageUser, version: Version) -> HTMLResponse:
    """One version in words, its signatures, and the reader's buttons."""
    found = contract_service.get_contract(ctx, version, actor=user.principal)
    return render(request, "contract/version.html", _page_values(found, user))


def _refused(request: Request, version: int, exc: BatonError) -> Response:
    return redirect(request, f"/contract/{version}", exc.detail, "error")


@router.post("/contract/{version}/approve", response_model=None)
def approve(
    request: Request,
    ctx: Ctx,
    user: FormUser,
    version: Version,
    role: Annotated[Literal["marketing", "sales"], Form()],
) -> Response:
    """Sign ``version`` for one side (the same use case as the API)."""
    try:
        signed = contract_service.approve_contract(ctx, version, role=role, actor=user.principal)
    except (Conflict, Forbidden, ValidationFailed) as exc:
        return _refused(request, version, exc)
    message = f"Version {version} signed for {SIDE_LABELS[role]}."
    if signed.status == "approved":
        message += " Both sides have signed: an admin can activate it."
    return redirect(request, f"/contract/{version}", message)


@router.post("/contract/{version}/activate", response_model=None)
def activate(request: Request, ctx: Ctx, user: FormUser, version: Version) -> Response:
    """Make a signed version the active one and re-score every lead (admins)."""
    try:
        report = contract_service.activate_contract(ctx, version, actor=user.principal)
    except (Conflict, Forbidden) as exc:
        return _refused(request, version, exc)
    message = (
        f"Version {version} is active. {report.leads_scored:,} leads re-scored, "
        f"{report.became_mql:,} became MQL."
    )
    return redirect(request, f"/contract/{version}", message)
