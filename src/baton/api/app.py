"""The application factory."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from fastapi.telemetry import TelemetryConfig
from starlette._utils import get_route_path
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from baton import __version__, redact
from baton.api import docs, openapi, problems
from baton.api.cors import IntakeCors
from baton.api.direct_route import DirectRoute
from baton.api.routes import (
    activities,
    auth,
    backtest,
    calls,
    channels,
    contracts,
    duplicates,
    exports,
    handoffs,
    hooks,
    intake,
    lead_search,
    leads,
    models,
    nurture,
    nurture_links,
    outbox,
    person,
    plan,
    reports,
    reps,
    status,
    suggest,
    team,
    users,
    webhooks,
)
from baton.services.context import Context, open_context

DESCRIPTION = """
Baton takes leads from every channel, records every touch, and moves each lead through
an explicit lifecycle (lead → mql → sal → sql → opportunity → customer, with nurture,
disqualified and lost on the side).

* Errors are [RFC 9457](https://www.rfc-editor.org/rfc/rfc9457) `application/problem+json`
  with field-level `errors`.
* Every route but `/healthz` and `/auth/login` needs credentials: an API token
  (`Authorization: Bearer bt_…`, made at `POST /api/v1/tokens` or with
  `baton token add`), a session cookie from `POST /auth/login` (changes then need the
  `X-CSRF-Token` header), or, for capturing leads and activities from a website, an
  intake key (`X-Baton-Intake-Key: bik_…`). Missing or bad credentials: 401 with
  `WWW-Authenticate`; a role or scope that may not act: 403; an object outside your
  reach (another rep's handoff): 404. The authenticated user is stored on every change.
* Roles: `admin` (everything but signing contracts), `marketing` (leads, activities,
  contracts, spend, reports), `sales_manager` (their teams' reps and handoffs, the
  queue, reports), `rep` (their own handoffs and the leads in them).
* Send an `idempotency_key` with each activity so retries never double an event.
* Form tools, ad platforms, calendars and web forms post to `/hooks/{name}` (an inbound
  endpoint, managed under `/api/v1/intake`): no credentials, the platform's own format
  and signature; those routes are outside this document (see the README's "Inbound
  endpoints").
"""


class BodyLimit:
    """Refuse request bodies over ``limit`` bytes with 413 problem+json, whether the
    size is announced (Content-Length: refused before a byte is read) or streamed
    (chunked: counted as it arrives, refused as soon as it passes the limit).
    ``smaller``: a lower limit, with its own words, for one method and path (a single
    lead needs far less than a batch).

    The streamed case raises an ``HTTPException`` from ``receive``: FastAPI passes an
    ``HTTPException`` raised while it reads the body on to the handlers (any other
    error there becomes 400 "error parsing the body"). Should a route still answer
    something else after the limit was passed, that answer is replaced by the 413."""

    def __init__(
        self,
        app: ASGIApp,
        limit: int,
        smaller: Mapping[tuple[str, str], tuple[int, str]] | None = None,
    ) -> None:
        self.app = app
        self.limit = limit
        # Only a lower limit: a server whose limit is lower still holds every request to it.
        self.smaller = {key: rule for key, rule in (smaller or {}).items() if rule[0] < limit}
        self.usual = (limit, _too_large_detail(limit))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit, detail = self.smaller.get((scope["method"], get_route_path(scope)), self.usual)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _too_large(detail, scope, receive, send)
            return
        seen = 0
        over = False
        replaced = False

        async def counted() -> Message:
            nonlocal seen, over
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:
                over = True
                raise StarletteHTTPException(413, detail)
            return message

        async def guarded(message: Message) -> None:
            nonlocal replaced
            if message["type"] == "http.response.start" and over and message["status"] != 413:
                replaced = True
                await _too_large(detail, scope, receive, send)
            elif not replaced:
                await send(message)

        await self.app(scope, counted, guarded)


def _too_large_detail(limit: int) -> str:
    mib = 1024 * 1024
    size = f"{limit // mib} MiB" if limit % mib == 0 else f"{limit:,} bytes"
    return f"the request body is over {size}; send smaller batches"


async def _too_large(detail: str, scope: Scope, receive: Receive, send: Send) -> None:
    response = problems.problem(
        413, "Payload too large", detail, kind="http-413", instance=scope.get("path")
    )
    await response(scope, receive, send)


class NotReady(RuntimeError):
    """Production was asked to start while access is not set up safely."""


def refuse_unready(context: Context, *, warn: bool = True) -> None:
    """With ``BATON_ENV=production``, refuse to serve without an admin, with demo
    users, or while no admin has chosen their own password (whatever starts the app:
    `baton serve`, or uvicorn on ``baton.api.asgi:app``). Colleagues' unused one-time
    passwords are only a logged warning (``warn``): a restart must never wait for
    someone to sign in."""
    from baton.services.users import pending_one_time_passwords, production_problems

    if context.settings.env != "production":
        return
    problems = production_problems(context)
    if problems:
        raise NotReady("not ready for production: " + "; ".join(problems))
    pending = pending_one_time_passwords(context) if warn else []
    if pending:
        # The count only: the log (shipped, kept, read by many) at every start is no
        # place for people's emails; `baton user list` says who.
        logging.getLogger("baton.access").warning(
            "%d user(s) have not yet replaced their one-time password (`baton user list` "
            "shows who); each stops working %g days after it was given",
            len(pending),
            context.settings.one_time_password_days,
        )


def telemetry_wanted(environ: Mapping[str, str]) -> bool:
    """Whether FastAPI's own OpenTelemetry (a span per request and per operation,
    request metrics, logs) is on: when the deployment configures OpenTelemetry the
    standard way, by an ``OTEL_*`` variable (``OTEL_EXPORTER_OTLP_ENDPOINT``, ...) or
    ``FASTAPI_OTEL_AUTO_CONFIGURE=true``; never with ``OTEL_SDK_DISABLED=true``, and a
    variable that says ``none`` (``OTEL_TRACES_EXPORTER=none``) turns nothing on.
    Otherwise the spans would go nowhere and still cost every request (about 30 µs of
    a capture's CPU, measured)."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if environ.get("FASTAPI_OTEL_AUTO_CONFIGURE", "").strip().lower() == "true":
        return True
    return any(
        name.startswith("OTEL_") and value.strip() and value.strip().lower() != "none"
        for name, value in environ.items()
    )


NO_TELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}


def create_app(context: Context | None = None) -> FastAPI:
    """Build the API around a service context (opened from the settings if not given)."""
    app = FastAPI(
        telemetry=None if telemetry_wanted(os.environ) else NO_TELEMETRY,
        title="Baton",
        version=__version__,
        description=DESCRIPTION,
        # /docs and /redoc come from baton.api.docs: the same pages, without a CDN.
        docs_url=None,
        redoc_url=None,
        openapi_tags=[
            {"name": "auth", "description": "Sign in and out (session cookie), who am I."},
            {"name": "access", "description": "Users, API tokens and intake keys."},
            {"name": "leads", "description": "Capture, lifecycle, timeline, notes, tags."},
            {"name": "activities", "description": "Engagement events, single and batch."},
            {"name": "duplicates", "description": "Possible duplicates awaiting review."},
            {"name": "contracts", "description": "The handoff contract: versions, signatures."},
            {
                "name": "models",
                "description": "Learned scoring models: train on the recorded outcomes, "
                "evaluation, signatures, activation.",
            },
            {"name": "reps", "description": "Teams, reps, out-of-office periods, accounts."},
            {
                "name": "handoffs",
                "description": "Handoffs, their packets, and sales' verdicts (accept, reject, "
                "touch, qualify, won, lost, reassign).",
            },
            {"name": "webhooks", "description": "Endpoints for handoff events, and deliveries."},
            {"name": "outbox", "description": "Email and webhooks to send: states, retries."},
            {
                "name": "operations",
                "description": "Liveness and readiness probes (public), and how the "
                "deployment is doing: worker queues and heartbeats (admins).",
            },
            {
                "name": "people",
                "description": "A person's data on request (GDPR): export it, or erase it "
                "keeping anonymous counts.",
            },
            {
                "name": "intake",
                "description": "Inbound endpoints (/hooks/{name}: form tools, ad platforms, "
                "calendars, web forms), the raw intake log, retries after a mapping fix.",
            },
            {
                "name": "exports",
                "description": "Leads, handoffs and activities as CSV (formula cells "
                "neutralised) or JSON lines, streamed, within the caller's reach.",
            },
            {
                "name": "reports",
                "description": "Funnel, velocity, speed to lead, SLA, rejections, marketing "
                "credit, cost; and the marketing spend the cost report divides.",
            },
        ],
    )
    app.state.context = context or open_context()
    # Whatever this process logs from now on has its passwords masked.
    redact.install_log_masking()
    redact.remember_settings(app.state.context.settings)
    refuse_unready(app.state.context)
    from baton.services.scoring import restore_total_index

    restore_total_index(app.state.context)
    if not telemetry_wanted(os.environ):  # FastAPI's spans name routes in its router
        app.add_middleware(
            DirectRoute,
            owner=app,
            method="POST",
            path="/api/v1/leads",
            endpoint=leads.capture_lead,
        )
    app.add_middleware(IntakeCors, context=app.state.context)
    settings = app.state.context.settings
    lead_limit = leads.lead_body_limit(settings.json_max_bytes)
    app.add_middleware(
        BodyLimit,
        limit=settings.max_body_bytes,
        smaller={("POST", "/api/v1/leads"): (lead_limit, leads.lead_too_large(lead_limit))},
    )
    problems.install(app)
    openapi.install(app)
    docs.install(app)
    # Capture first: the busiest route is found without trying the others (no path
    # of auth's or users' routers can match a path under /api/v1/leads).
    app.include_router(leads.capture_router)
    # Then the hooks: every web form, ad platform and form tool posts there, and the
    # router tries its routes in order (last, a hook's request tried about 300 of them
    # first: a seventh of its CPU). No other path starts with /hooks/.
    app.include_router(hooks.router)
    app.include_router(leads.router)
    app.include_router(auth.router)
    app.include_router(users.users_router)
    app.include_router(users.tokens_router)
    app.include_router(users.keys_router)
    app.include_router(lead_search.search_router)
    app.include_router(lead_search.filters_router)
    app.include_router(activities.router)
    app.include_router(calls.router)
    app.include_router(duplicates.router)
    app.include_router(suggest.router)  # before contracts: /suggest is no version
    app.include_router(backtest.router)  # before contracts, like /suggest
    app.include_router(contracts.router)
    app.include_router(models.router)
    app.include_router(reps.router)
    app.include_router(handoffs.router)
    app.include_router(team.router)
    app.include_router(webhooks.router)
    app.include_router(channels.router)
    app.include_router(outbox.router)
    app.include_router(person.router)
    app.include_router(reports.router)
    app.include_router(plan.router)
    app.include_router(exports.router)
    app.include_router(intake.router)
    app.include_router(nurture_links.router)  # /n/...: signed links in nurture email
    app.include_router(nurture.router)
    app.include_router(status.router)

    @app.get("/healthz", tags=["operations"], operation_id="health")
    def health() -> dict[str, str]:
        """Liveness: the process answers and the database is reachable."""
        app.state.context.ping()
        return {"status": "ok", "version": __version__}

    @app.get(
        "/readyz",
        tags=["operations"],
        operation_id="ready",
        responses={503: {"description": "Not ready: the database, or its schema"}},
    )
    def ready() -> JSONResponse:
        """Readiness, for a load balancer: the database answers and its schema is the
        one this version needs (503 problem+json otherwise). Public, so it tells no
        queue or worker detail; an admin's (or a ``status:read`` token's)
        `GET /api/v1/status` does."""
        from baton.services.status import unready_because

        why = unready_because(app.state.context)
        if why is None:
            return JSONResponse({"status": "ready", "version": __version__})
        response = problems.problem(503, "Not ready", why, kind="unavailable", instance="/readyz")
        response.headers["Retry-After"] = "5"
        return response

    # The web app for people: `/` (each role's home), `/login`, the pages, `/static`.
    from baton import web

    web.install(app)
    return app
