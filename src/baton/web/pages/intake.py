"""The intake pages (``/admin/intake``): inbound endpoints and the intake log, for
admins and marketing (marketing ops wire the forms).

* ``/admin/intake``: the endpoints (kind, the URL to give the platform, whether a
  secret and a fetch token are set, requests, failures, throttled requests), a form to
  add one, and the log (newest first, filtered by state and endpoint) with each
  request's state and failed submissions, and a button retrying every failed request;
* ``/admin/intake/endpoints/{name}``: one endpoint, its settings form (the mapping fix
  a retry then reads with; a blank fetch token or secret keeps the one set) and its
  log;
* ``/admin/intake/requests/{id}``: one request as received (headers and the raw body,
  as text when it is UTF-8, else base64) with each submission's outcome and errors,
  and a *Retry* button.

Every form posts to the intake use cases (:mod:`baton.services.intake`), which decide
who may do it (``Action.MANAGE_INTAKE``; reading the log, whose raw bodies hold
personal data, ``Action.VIEW_INTAKE_LOG``): the same rules as the API's. A secret
Baton generates is shown once, in the answer to the form that made it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.datastructures import FormData

from baton.api.deps import get_context
from baton.domain.activities import MAX_ID, ActivityType
from baton.domain.errors import (
    BatonError,
    FieldProblem,
    Forbidden,
    NotFound,
    Unauthorized,
    ValidationFailed,
)
from baton.domain.intake import INTAKE_KINDS
from baton.domain.intake_endpoints import NAME_PATTERN
from baton.integrations.fetch import DEFAULT_BASE_URLS
from baton.services import intake as intake_service
from baton.web.deps import PageUser
from baton.web.forms import FormUser
from baton.web.pages.admin import SECTIONS
from baton.web.pages.team import problem_text
from baton.web.render import redirect, render

router = APIRouter(include_in_schema=False)

T = TypeVar("T")
RequestId = Annotated[int, Path(ge=1, le=MAX_ID)]
EndpointName = Annotated[str, Path(min_length=1, max_length=64, pattern=NAME_PATTERN)]
PAGE = 50
"""Requests shown per page of the log."""
HOME = "/admin/intake"
FETCH_KINDS = {"meta_lead_ads": "meta", "hubspot": "hubspot"}
"""Kinds whose webhooks carry ids only, and the platform the worker reads from."""


def _page(request: Request, name: str, values: dict[str, Any]) -> HTMLResponse:
    return render(request, f"intake/{name}.html", {"sections": SECTIONS, **values})


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def _optional(form: FormData, name: str) -> str | None:
    return _text(form, name) or None


def _lines(form: FormData, name: str) -> list[str]:
    raw = _text(form, name).replace(",", "\n")
    return [part.strip() for part in raw.splitlines() if part.strip()]


def _number(form: FormData, name: str) -> int | str | None:
    text = _text(form, name)
    if not text:
        return None
    return int(text) if text.isdigit() else text  # the model refuses a non-number


def _mapping(form: FormData) -> dict[str, Any] | None:
    """The mapping field: a JSON object (blank: none)."""
    text = _text(form, "mapping")
    if not text:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValidationFailed(
            "the mapping is not JSON", [FieldProblem("mapping", f"{exc.msg} at line {exc.lineno}")]
        ) from None
    if not isinstance(value, dict):
        raise ValidationFailed(
            "the mapping is not valid",
            [FieldProblem("mapping", 'a JSON object such as {"email": "contact.email"}')],
        )
    return value


async def _attempt(
    request: Request, back: str, ok: Callable[[T], str], work: Callable[[], T]
) -> RedirectResponse:
    """Run a use case for a form and go back with what happened (a missing object
    stays the 404 page, a refusal the reader may not make the 403 page)."""
    try:
        done = await run_in_threadpool(work)
    except NotFound:
        raise
    except ValidationFailed as exc:
        return redirect(request, back, problem_text(exc), "error")
    except BatonError as exc:
        if isinstance(exc, Forbidden | Unauthorized):
            raise
        return redirect(request, back, problem_text(exc), "error")
    return redirect(request, back, ok(done))


def _log_link(status: str | None, endpoint: str | None, before: int | None) -> str:
    from urllib.parse import urlencode

    query = {k: v for k, v in (("status", status), ("endpoint", endpoint)) if v}
    if before is not None:
        query["before"] = str(before)
    return HOME + ("?" + urlencode(query) if query else "") + "#log"


# ---------------------------------------------------------------- the overview


@router.get("/admin/intake", response_model=None)
def intake_page(
    request: Request,
    user: PageUser,
    status: Annotated[str | None, Query(max_length=20)] = None,
    endpoint: Annotated[str | None, Query(max_length=64)] = None,
    before: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
) -> HTMLResponse:
    ctx, actor = get_context(request), user.principal
    status = status or None
    endpoint = endpoint or None
    endpoints = intake_service.list_endpoints(ctx, actor=actor)
    log = intake_service.intake_log(
        ctx, actor=actor, status=status, endpoint=endpoint, limit=PAGE + 1, before=before
    )
    more = len(log) > PAGE
    log = log[:PAGE]
    failed_ids = [r.id for r in log if r.status in ("failed", "partial")]
    return _page(
        request,
        "index",
        {
            "endpoints": endpoints,
            "log": log,
            "failed_ids": failed_ids,
            "status": status,
            "endpoint": endpoint,
            "statuses": intake_service.REQUEST_STATUSES,
            "kinds": INTAKE_KINDS,
            "event_types": [t.value for t in ActivityType],
            "fetch_kinds": FETCH_KINDS,
            "default_bases": DEFAULT_BASE_URLS,
            "next_page": _log_link(status, endpoint, log[-1].id) if more and log else None,
            "base_url": ctx.settings.public_url.rstrip("/"),
        },
    )


@router.post("/admin/intake/endpoints", response_model=None)
async def add_endpoint(request: Request, user: FormUser) -> HTMLResponse | RedirectResponse:
    form = await request.form()
    ctx = get_context(request)

    def work() -> tuple[str, str | None]:
        data: dict[str, Any] = {
            "name": _text(form, "name"),
            "kind": _text(form, "kind"),
            "source": _text(form, "source"),
            "campaign": _optional(form, "campaign"),
            "event_type": _optional(form, "event_type"),
            "mapping": _mapping(form) or {},
            "secret": _optional(form, "secret"),
            "fetch_token": _optional(form, "fetch_token"),
            "fetch_base_url": _optional(form, "fetch_base_url"),
            "return_urls": _lines(form, "return_urls"),
            "honeypot_field": _optional(form, "honeypot_field"),
        }
        for key in ("rate_per_minute", "max_body_bytes"):
            value = _number(form, key)
            if value is not None:
                data[key] = value
        view, secret = intake_service.add_endpoint(ctx, data, actor=user.principal)
        base = ctx.settings.public_url.rstrip("/")
        return f"the secret of the endpoint {base}{view.path} ({view.kind})", secret

    try:
        what, secret = await run_in_threadpool(work)
    except NotFound:
        raise
    except ValidationFailed as exc:
        return redirect(request, HOME + "#add", problem_text(exc), "error")
    except BatonError as exc:
        if isinstance(exc, Forbidden | Unauthorized):
            raise
        return redirect(request, HOME + "#add", problem_text(exc), "error")
    if secret is None:
        return redirect(request, HOME, f"Added {what.removeprefix('the secret of ')}")
    return render(
        request,
        "admin/secret.html",
        {"sections": SECTIONS, "what": what, "secret": secret, "back": HOME},
    )


@router.post("/admin/intake/retry", response_model=None)
async def retry_failed(request: Request, user: FormUser) -> RedirectResponse:
    """Retry every failed request (of one endpoint when the form names it)."""
    form = await request.form()
    ctx = get_context(request)
    endpoint = _optional(form, "endpoint")
    back = f"{HOME}/endpoints/{endpoint}" if endpoint else HOME
    return await _attempt(
        request,
        back + "#log",
        _retried,
        lambda: intake_service.retry(
            ctx, actor=user.principal, endpoint=endpoint, all_failed=endpoint is None
        ),
    )


def _retried(report: intake_service.RetryReport) -> str:
    if not report.requests:
        return "Nothing to retry: no failed request."
    parts = [f"{report.processed} processed"]
    if report.awaiting_fetch:
        parts.append(f"{report.awaiting_fetch} waiting for their fetch")
    if report.failed:
        parts.append(f"{report.failed} still failing (see their errors)")
    plural = "s" if report.requests != 1 else ""
    return f"Read {report.requests} request{plural} again: " + ", ".join(parts) + "."


# ---------------------------------------------------------------- one endpoint


@router.get("/admin/intake/endpoints/{name}", response_model=None)
def endpoint_page(request: Request, user: PageUser, name: EndpointName) -> HTMLResponse:
    ctx, actor = get_context(request), user.principal
    view = intake_service.show_endpoint(ctx, name, actor=actor)
    log = intake_service.intake_log(ctx, actor=actor, endpoint=view.name, limit=PAGE)
    return _page(
        request,
        "endpoint",
        {
            "e": view,
            "log": log,
            "mapping_text": json.dumps(view.mapping, indent=2, ensure_ascii=False),
            "event_types": [t.value for t in ActivityType],
            "fetch_platform": FETCH_KINDS.get(view.kind),
            "default_bases": DEFAULT_BASE_URLS,
            "base_url": ctx.settings.public_url.rstrip("/"),
        },
    )


@router.post("/admin/intake/endpoints/{name}", response_model=None)
async def update_endpoint(request: Request, user: FormUser, name: EndpointName) -> RedirectResponse:
    form = await request.form()
    ctx = get_context(request)
    back = f"{HOME}/endpoints/{name}"

    def work() -> intake_service.EndpointView:
        changes: dict[str, Any] = {
            "source": _text(form, "source"),
            "campaign": _optional(form, "campaign"),
            "event_type": _optional(form, "event_type"),
            "fetch_base_url": _optional(form, "fetch_base_url"),
            "return_urls": _lines(form, "return_urls"),
            "honeypot_field": _optional(form, "honeypot_field"),
            "active": _text(form, "active") == "yes",
        }
        mapping = _mapping(form)
        changes["mapping"] = mapping if mapping is not None else {}
        for key in ("secret", "fetch_token"):  # blank: keep the one set
            if _text(form, key):
                changes[key] = _text(form, key)
        for key in ("rate_per_minute", "max_body_bytes"):
            value = _number(form, key)
            if value is not None:
                changes[key] = value
        return intake_service.update_endpoint(ctx, name, changes, actor=user.principal)

    return await _attempt(
        request,
        back,
        lambda view: f"Saved {view.path}. Retry its failed requests to read them with this.",
        work,
    )


@router.post("/admin/intake/endpoints/{name}/deactivate", response_model=None)
async def deactivate_endpoint(
    request: Request, user: FormUser, name: EndpointName
) -> RedirectResponse:
    ctx = get_context(request)
    return await _attempt(
        request,
        HOME,
        lambda view: f"{view.path} is off: it answers 404 now; its log is kept.",
        lambda: intake_service.deactivate_endpoint(ctx, name, actor=user.principal),
    )


# ---------------------------------------------------------------- one request


@router.get("/admin/intake/requests/{request_id}", response_model=None)
def request_page(request: Request, user: PageUser, request_id: RequestId) -> HTMLResponse:
    ctx = get_context(request)
    detail = intake_service.show_request(ctx, request_id, actor=user.principal)
    body_json: str | None = None
    if detail.body_text is not None and "json" in detail.summary.content_type:
        try:
            body_json = json.dumps(json.loads(detail.body_text), indent=2, ensure_ascii=False)
        except (ValueError, RecursionError):  # not JSON, or nested past any reader
            body_json = None
    return _page(
        request,
        "request",
        {
            "r": detail.summary,
            "detail": detail,
            "body_json": body_json,
            "retryable": detail.summary.status in intake_service.RETRYABLE,
            "item_text": lambda item: json.dumps(item, indent=2, ensure_ascii=False, default=str),
        },
    )


@router.post("/admin/intake/requests/{request_id}/retry", response_model=None)
async def retry_request(
    request: Request, user: FormUser, request_id: RequestId
) -> RedirectResponse:
    ctx = get_context(request)
    return await _attempt(
        request,
        f"{HOME}/requests/{request_id}",
        _retried,
        lambda: intake_service.retry(ctx, actor=user.principal, request_ids=[request_id]),
    )
