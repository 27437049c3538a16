"""Learned scoring models (``/admin/models``): every version with its evaluation, and
one version (``/admin/models/{version}``) with its evaluation, calibration table, top
features, the history it learned from, its signatures and the reader's buttons (sign
for their side, activate).

For admins, marketing and sales managers (the use cases decide: a rep gets the 403
page from :func:`baton.services.models.list_models`). The buttons post, with the CSRF
token, to the same use cases as the API (:mod:`baton.services.models`). Training is
not a button: it takes a while and is ``baton model train`` or ``POST /api/v1/models``.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Form, Path, Request
from fastapi.responses import HTMLResponse, Response

from baton.api.deps import Ctx
from baton.domain.errors import Conflict, Forbidden, NotFound, ValidationFailed
from baton.services import models as model_service
from baton.web.deps import PageUser
from baton.web.forms import FormUser
from baton.web.render import redirect, render

router = APIRouter(include_in_schema=False)

Version = Annotated[int, Path(ge=1, le=2**31)]


@router.get("/admin/models", response_model=None)
def models_home(request: Request, ctx: Ctx, user: PageUser) -> HTMLResponse:
    """Every model version, newest first, with its evaluation and signatures."""
    models = model_service.list_models(ctx, actor=user.principal)
    return render(request, "models/index.html", {"models": models})


@router.get("/admin/models/{version}", response_model=None)
def model_page(request: Request, ctx: Ctx, user: PageUser, version: Version) -> HTMLResponse:
    """One version: evaluation, calibration, top features, signatures, buttons."""
    model = model_service.get_model(ctx, version, actor=user.principal)
    bands = [
        {
            "band": f"{min(int(p * 10), 9) / 10:.1f}–{min(int(p * 10), 9) / 10 + 0.1:.1f}",
            "predicted": p,
            "observed": o,
            "rows": n,
            "width": round(o * 100, 1),
        }
        for p, o, n in model.evaluation.calibration
    ]
    return render(
        request,
        "models/model.html",
        {
            "model": model,
            "as_of": model_service.features_as_of(model.trained_on),
            "bands": bands,
            "actions": model_service.model_actions(model, actor=user.principal),
        },
    )


@router.post("/admin/models/{version}/approve", response_model=None)
def approve(
    request: Request,
    ctx: Ctx,
    user: FormUser,
    version: Version,
    role: Annotated[Literal["marketing", "sales"], Form()],
) -> Response:
    """Sign ``version`` for one side (the same use case as the API)."""
    try:
        signed = model_service.approve_model(ctx, version, role=role, actor=user.principal)
    except NotFound as exc:
        return redirect(request, "/admin/models", exc.detail, "error")
    except (Conflict, Forbidden, ValidationFailed) as exc:
        return redirect(request, f"/admin/models/{version}", exc.detail, "error")
    message = f"Model version {version} signed for {role}."
    if signed.status == "approved":
        message += " Both sides have signed: an admin can activate it."
    return redirect(request, f"/admin/models/{version}", message)


@router.post("/admin/models/{version}/activate", response_model=None)
def activate(request: Request, ctx: Ctx, user: FormUser, version: Version) -> Response:
    """Make a signed version the active model (admins)."""
    try:
        result = model_service.activate_model(ctx, version, actor=user.principal)
    except NotFound as exc:
        return redirect(request, "/admin/models", exc.detail, "error")
    except (Conflict, Forbidden) as exc:
        return redirect(request, f"/admin/models/{version}", exc.detail, "error")
    was = f" (was version {result.previous})" if result.previous else ""
    return redirect(request, f"/admin/models/{version}", f"Model version {version} is active{was}.")
