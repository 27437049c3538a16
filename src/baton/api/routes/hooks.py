"""/hooks/{name}: where form tools, ad platforms, calendars and web forms post leads.

No credentials: an endpoint is known by its name, and its kind checks the platform's
signature or key where the platform has one. Any content type is taken; the body is
read up to the endpoint's limit (never buffered beyond it), stored raw in the intake
log and committed before it is read (see :mod:`baton.services.intake`). Answers:
200 (processed; a replay answers as the first time did) or 202 (stored, a fetch from
the platform or a retry pending) with ``{request_id, status, items:[{status, errors}]}``
(no lead or activity id: the sender is not authenticated; the intake log has them);
problem+json for 401 (signature), 404 (no such active endpoint), 413, 422 (the body
or a field cannot be read; the request stays in the log), 429 (with Retry-After); a
``web_to_lead`` form post gets its 303 to an allowed return URL, but not over the rate
nor over the size (nothing was stored) nor when its fields make no lead (it is logged,
but reaches no one until retried): the thank-you page would mislead. Then a person's
browser (``Accept: text/html``) gets a page saying the form was not sent and what to
do (for 422, each field to correct), anything else (a site's fetch, curl: ``*/*``) the
429 (with Retry-After), 413 or 422 problem+json.
``GET /hooks/{name}`` answers a platform's subscription handshake (Meta's
``hub.challenge``) when the kind has one.

Kept out of the OpenAPI document: these are not Baton's API but the platforms' own
webhook formats (documented in the README's "Inbound endpoints")."""

from __future__ import annotations

from html import escape
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse

from baton.api.deps import client_address
from baton.api.problems import problem
from baton.domain.intake import Delivery
from baton.services import intake as intake_service
from baton.services.context import Context

router = APIRouter(tags=["hooks"])

KINDS = {
    400: "bad-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    413: "http-413",
    422: "validation",
    429: "too-many-requests",
}


async def _read_capped(request: Request, limit: int) -> bytes:
    """The body, but never more than ``limit + 1`` bytes of it (enough to know it is
    too large); a declared length over the limit is not read at all."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return b"\0" * (limit + 1)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            break
    return b"".join(chunks)[: limit + 1]


def _delivery(request: Request, ctx: Context, body: bytes) -> Delivery:
    return Delivery(
        body=body,
        content_type=request.headers.get("content-type", "application/octet-stream"),
        headers={k.lower(): v for k, v in request.headers.items()},
        query=dict(request.query_params),
        received_at=ctx.clock.now(),
        method=request.method,
        url=str(request.url),
    )


NOT_SENT_FRAME = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title></head>
<body><main>
<h1>Your form was not sent</h1>
{body}</main></body></html>
"""
"""The page around each of the paragraphs below: what a person's browser shows when a
form it posted was not taken (a problem+json would be a screen of JSON)."""


def _not_sent(body: str, status: int, title: str = "Your form was not sent") -> HTMLResponse:
    return HTMLResponse(NOT_SENT_FRAME.format(title=title, body=body), status_code=status)


BUSY_PAGE = """\
<p>This form is receiving more submissions than it can take right now, so yours did not
reach us. Please wait {wait}, go back with your browser's Back button (what you typed is
usually still there) and send it again.</p>
"""
"""What a person sees when their browser posted a form over the endpoint's rate: the
submission was not stored, so a thank-you page (a ``web_to_lead`` form's 303) would
tell them it was, and a problem+json would be a screen of JSON."""


def _busy(outcome: intake_service.HookOutcome) -> Response:
    seconds = outcome.retry_after or 60
    wait = "a minute" if seconds > 45 else f"{seconds} second{'s' if seconds != 1 else ''}"
    page = _not_sent(
        BUSY_PAGE.format(wait=wait), 429, title="Please send the form again in a minute"
    )
    page.headers["Retry-After"] = str(seconds)
    return page


TOO_LARGE_PAGE = """\
<p>What you sent is larger than this form takes, so it did not reach us. Please go back
with your browser's Back button, shorten the longest fields or leave out attachments,
and send it again.</p>
"""
"""What a person sees when their browser posted a form larger than the endpoint reads:
nothing was stored, so the thank-you page would tell them it was."""

UNREADABLE_PAGE = """\
<p>Some of what you typed could not be read, so it did not reach our team:</p>
<ul>{problems}</ul>
<p>Please go back with your browser's Back button (what you typed is usually still
there), correct it and send the form again.</p>
"""
"""What a person sees when their browser posted a form whose fields make no lead (an
email without its @): the request is in the intake log, but no one in sales will see
it until an admin retries it, so a thank-you page would mislead them."""


NOT_PROCESSED_PAGE = """\
<p>Your form could not be processed just now, so it did not reach our team. Please go
back with your browser's Back button (what you typed is usually still there) and send
it again.</p>
"""
"""What a person sees when their form failed for a reason that is none of its fields (a
lead changed by someone else at that moment): nothing they typed is wrong, so the page
names no field and says to send it again."""


def _unreadable(outcome: intake_service.HookOutcome) -> Response:
    errors = outcome.errors or []
    if errors and all(e.get("message") == intake_service.NOT_PROCESSED_MESSAGE for e in errors):
        return _not_sent(NOT_PROCESSED_PAGE, 422)
    problems = "".join(
        f"<li><strong>{escape(str(e.get('loc', 'form')))}</strong>: "
        f"{escape(str(e.get('message', 'cannot be read')))}</li>"
        for e in (outcome.errors or [{"loc": "form", "message": outcome.detail or ""}])
    )
    return _not_sent(UNREADABLE_PAGE.format(problems=problems), 422)


NOT_THANKED = frozenset({413, 422, 429})
"""A web form's post answered with anything but its thank-you page: over the size or
the rate nothing was stored, and a form that cannot be read reaches no one."""


def _render(outcome: intake_service.HookOutcome, request: Request) -> Response:
    if outcome.status in NOT_THANKED and "text/html" in request.headers.get("accept", ""):
        # A person's browser, not a platform's server.
        if outcome.status == 429:
            return _busy(outcome)
        if outcome.status == 413:
            return _not_sent(TOO_LARGE_PAGE, 413)
        if outcome.redirect is not None:  # a web form; other kinds keep the problem
            return _unreadable(outcome)
    if outcome.redirect is not None and outcome.status not in NOT_THANKED:
        # A site posting the form with fetch (Accept */*) or a form tool's server gets
        # the problem it can act on, never the thank-you.
        return RedirectResponse(outcome.redirect, status_code=303)
    if outcome.is_problem:
        extra: dict[str, Any] = {}
        if outcome.errors:
            extra["errors"] = outcome.errors
        if outcome.request_id is not None:
            extra["request_id"] = outcome.request_id
        response = problem(
            outcome.status,
            outcome.title or "Request refused",
            outcome.detail or "the request was refused",
            kind=KINDS.get(outcome.status, "bad-request"),
            instance=request.url.path,
            **extra,
        )
        if outcome.retry_after is not None:
            response.headers["Retry-After"] = str(outcome.retry_after)
        return response
    return JSONResponse(
        {
            "request_id": outcome.request_id,
            "status": outcome.request_status,
            "detail": outcome.detail,
            "items": [
                # Never an internal id (lead, activity, item) to an unauthenticated
                # sender: the request id finds it all in the intake log.
                # Nor the operator's hints (the mapping, a command): the log has them.
                {"status": item.status, "errors": item.answer_errors}
                for item in outcome.items
            ],
        },
        status_code=outcome.status,
    )


@router.post("/hooks/{name}", include_in_schema=False)
async def receive_hook(name: str, request: Request) -> Response:
    """Store the request raw, then read it into leads and activities."""
    ctx: Context = request.app.state.context
    known, endpoint = intake_service.known_door(ctx, name)
    if not known:
        endpoint = await run_in_threadpool(intake_service.door, ctx, name)
    if endpoint is None:
        return _render(
            intake_service.HookOutcome(
                404, title="Not found", detail=f"no inbound endpoint {name[:100]!r}"
            ),
            request,
        )
    body = await _read_capped(request, endpoint.max_body_bytes)
    outcome = await intake_service.receive_async(
        ctx,
        name,
        _delivery(request, ctx, body),
        remote_address=client_address(request),
        endpoint=endpoint,
    )
    return _render(outcome, request)


@router.get("/hooks/{name}", include_in_schema=False)
async def hook_handshake(name: str, request: Request) -> Response:
    """A platform's subscription handshake (Meta sends ``hub.challenge`` with the
    verify token), answered by the kind's adapter; 404 for kinds without one."""
    ctx: Context = request.app.state.context
    endpoint = await run_in_threadpool(intake_service.door, ctx, name)
    challenge = None
    if endpoint is not None:
        from baton.integrations import adapter_for

        challenge = getattr(adapter_for(endpoint.kind), "challenge", None)
    if endpoint is None or challenge is None:
        return _render(
            intake_service.HookOutcome(
                404, title="Not found", detail=f"no handshake at /hooks/{name[:100]}"
            ),
            request,
        )
    wait = intake_service.handshake_wait(ctx, endpoint)
    if wait:
        return _render(
            intake_service.HookOutcome(
                429,
                title="Too many requests",
                detail=f"this endpoint takes at most {endpoint.rate_per_minute} requests a minute",
                retry_after=wait,
            ),
            request,
        )
    try:
        answer = challenge(_delivery(request, ctx, b""), endpoint.config)
    except Exception:  # a wrong token or a malformed handshake: refused, never a 5xx
        answer = None
    if answer is None:
        return _render(
            intake_service.HookOutcome(
                403, title="Forbidden", detail="the verify token does not match"
            ),
            request,
        )
    return PlainTextResponse(str(answer))
