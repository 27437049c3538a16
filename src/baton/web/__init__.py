"""The web app for people: server-rendered pages on the same use cases as the API.

:func:`install` adds to the API's app: the page routers (``baton.web.pages.*``, each an
``APIRouter(include_in_schema=False)``), ``/static`` (our own CSS and JavaScript,
cached), the HTML error pages for page requests (404, 403, a refused change, a busy
database, an unexpected error with its incident id; the API keeps problem+json), the
redirect to ``/login`` when a page needs a session, and security headers on every
HTML page (a CSP without inline script, no framing, no referrer to other sites).

To add a page group: write ``web/pages/<group>.py`` with ``router = APIRouter(
include_in_schema=False)`` and add it to :data:`ROUTERS` below.
"""

from __future__ import annotations

import html
import inspect
import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy.exc import DataError, IntegrityError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from baton.domain.errors import BatonError, Forbidden, NotFound, Unauthorized
from baton.web import deps
from baton.web.pages import (
    admin,
    auth,
    backtest,
    contract,
    dashboard,
    home,
    inbox,
    intake,
    leads,
    models,
    packet,
    settings,
    team,
)

ROUTERS = [
    auth.router,
    home.router,
    dashboard.router,
    inbox.router,
    packet.router,
    leads.router,
    team.router,
    admin.router,
    intake.router,
    models.router,
    backtest.router,
    contract.router,
    settings.router,
]
"""Every page group's router, in the order they are matched."""

log = logging.getLogger("baton.web")

API_PREFIXES = (
    "/api/",
    "/auth/",
    "/docs",
    "/redoc",
    "/openapi",
    "/healthz",
    "/readyz",
    "/static/",
)

SECURITY_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        b"object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    ),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (b"x-content-type-options", b"nosniff"),
]


class SecurityHeaders:
    """Add :data:`SECURITY_HEADERS` to HTML answers (not to ``/docs``, whose Swagger
    page has a script of its own)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if scope["type"] != "http" or path.startswith(("/docs", "/redoc")):
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                kind = dict(headers).get(b"content-type", b"")
                if kind.startswith(b"text/html") or message["status"] in (301, 302, 303, 307):
                    names = {name.lower() for name, _ in headers}
                    headers += [(n, v) for n, v in SECURITY_HEADERS if n not in names]
                    message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)


class CachedStatic(StaticFiles):
    """Our CSS and JavaScript; URLs carry Baton's version (``?v=``), so a day's cache
    never serves an old file after an upgrade."""

    def file_response(self, *args: Any, **kwargs: Any) -> Response:
        response = super().file_response(*args, **kwargs)
        response.headers["Cache-Control"] = "public, max-age=86400"
        return response


def is_page_request(request: Request) -> bool:
    """A person's browser asking for a page (HTML errors), not a program (problem+json)."""
    if getattr(request.state, "page_session", None) is not None:
        return True
    if request.url.path.startswith(API_PREFIXES):
        return False
    route = request.scope.get("route")
    if route is not None and getattr(route, "include_in_schema", True) is False:
        return True
    return "text/html" in request.headers.get("accept", "")


def error_page(request: Request, status: int, title: str, detail: str) -> Response:
    from baton.web.render import render

    return render(
        request,
        "error.html",
        {"status": status, "title": title, "detail": detail},
        status=status,
    )


def problem_page(request: Request, problem: Response) -> Response:
    """An API problem answer (``application/problem+json``) as an HTML error page.

    A 500 is answered by Starlette's outermost middleware, outside
    :class:`SecurityHeaders`, so the page carries those headers itself; and should the
    page itself fail to render (the database gone), a bare page says the same."""
    try:
        body = json.loads(bytes(problem.body))
    except ValueError:
        body = {}
    status = problem.status_code
    title = str(body.get("title") or "Something went wrong")
    detail = str(body.get("detail") or "Baton could not finish this request.")
    try:
        page = error_page(request, status, title, detail)
    except Exception:  # the error page must not fail in turn
        log.exception("the error page for %s could not be rendered", request.url.path)
        text = f"<!doctype html><title>{html.escape(title)}</title><h1>{html.escape(title)}</h1>"
        page = HTMLResponse(f"{text}<p>{html.escape(detail)}</p>", status_code=status)
    for name, value in problem.headers.items():
        if name.lower() not in ("content-type", "content-length"):
            page.headers.setdefault(name, value)
    for raw_name, raw_value in SECURITY_HEADERS:
        page.headers.setdefault(raw_name.decode(), raw_value.decode())
    page.headers.setdefault("Cache-Control", "no-store")
    return page


async def _answer(handler: Any, request: Request, exc: Exception) -> Response:
    """What an exception handler of the API answers (sync or async)."""
    result = handler(request, exc)
    if inspect.isawaitable(result):
        result = await result
    assert isinstance(result, Response)
    return result


def install(app: FastAPI) -> None:
    """Mount the web app on ``app`` (after the API's problem handlers)."""
    from importlib.resources import files

    app.add_middleware(SecurityHeaders)
    app.mount("/static", CachedStatic(directory=str(files("baton.web") / "static")), name="static")
    for router in ROUTERS:
        app.include_router(router)

    api_domain = app.exception_handlers[BatonError]
    api_http = app.exception_handlers[StarletteHTTPException]

    async def _login(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, deps.LoginRequired)
        return RedirectResponse(deps.login_url(exc.next_url), status_code=303)

    async def _password(request: Request, exc: Exception) -> Response:
        return RedirectResponse(deps.PASSWORD_PAGE, status_code=303)

    async def _domain(request: Request, exc: Exception) -> Response:
        if not is_page_request(request):
            return await _answer(api_domain, request, exc)
        if isinstance(exc, Unauthorized):
            return RedirectResponse(deps.login_url(request.url.path), status_code=303)
        if isinstance(exc, NotFound):
            return error_page(
                request, 404, "Not found", "There is nothing here, or it is not yours to see."
            )
        if isinstance(exc, Forbidden):
            return error_page(request, 403, "Not allowed", exc.detail)
        # A refused change (a wrong state, a bad value): the API's status, said plainly.
        response = await _answer(api_domain, request, exc)
        assert isinstance(exc, BatonError)
        return error_page(request, response.status_code, exc.title, exc.detail)

    async def _http(request: Request, exc: Exception) -> Response:
        if not is_page_request(request):
            return await _answer(api_http, request, exc)
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code == 404:
            return error_page(request, 404, "Not found", "There is no page at this address.")
        if exc.status_code == 405:
            return error_page(request, 405, "Not allowed", "This address does not take that.")
        return error_page(request, exc.status_code, "Something went wrong", str(exc.detail))

    api_invalid = app.exception_handlers[RequestValidationError]

    async def _invalid(request: Request, exc: Exception) -> Response:
        if not is_page_request(request):
            return await _answer(api_invalid, request, exc)
        if request.method == "GET":  # /handoffs/abc: no such page
            return error_page(request, 404, "Not found", "There is no page at this address.")
        return error_page(
            request, 400, "Not sent", "The form was incomplete or had a value out of range."
        )

    def _as_page(api_handler: Any) -> Any:
        """The API's answer to a database clash, a busy database or an unexpected error
        (it logs, and names the incident), shown to a person as an HTML page with the
        same status, title, detail and headers (``Retry-After``)."""

        async def handler(request: Request, exc: Exception) -> Response:
            response = await _answer(api_handler, request, exc)
            if not is_page_request(request):
                return response
            return problem_page(request, response)

        return handler

    for kind in (IntegrityError, DataError, OperationalError, Exception):
        app.add_exception_handler(kind, _as_page(app.exception_handlers[kind]))
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(deps.LoginRequired, _login)
    app.add_exception_handler(deps.PasswordRequired, _password)
    app.add_exception_handler(BatonError, _domain)
    app.add_exception_handler(StarletteHTTPException, _http)
