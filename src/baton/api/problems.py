"""RFC 9457 problem details for every error response.

Every 4xx and 5xx leaves as ``application/problem+json`` with ``type``, ``title``,
``status`` and ``detail``; validation problems add ``errors``: one entry per bad field
with its location and a readable message. A 500 never carries a stack trace: the trace
goes to the server log under an id that the response repeats.
"""

from __future__ import annotations

import logging
import re
import uuid
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import DataError, IntegrityError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from baton.domain.errors import (
    BatonError,
    Conflict,
    Forbidden,
    InvalidTransitionError,
    NotFound,
    TooManyRequests,
    Unauthorized,
    ValidationFailed,
)

log = logging.getLogger("baton.api")

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "/problems/"
TITLES = {
    400: "Bad request",
    404: "Not found",
    405: "Method not allowed",
    413: "Payload too large",
}


def problem(
    status: int,
    title: str,
    detail: str,
    *,
    kind: str,
    instance: str | None = None,
    **extra: Any,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": TYPE_BASE + kind,
        "title": title,
        "status": status,
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON)


def _loc(parts: tuple[Any, ...] | list[Any]) -> str:
    shown = [str(p) for p in parts if p not in ("body", "query", "path", "header")]
    text = ""
    for part in shown:
        text += f"[{part}]" if part.isdigit() else (f".{part}" if text else part)
    return text or "(body)"


def _allowed_methods(request: Request) -> list[str]:
    """Every method the API answers on the request's path, for ``Allow``, read from
    the OpenAPI paths (Starlette names only the methods of the first matching route,
    and the routes' nesting differs between FastAPI versions)."""
    index: list[tuple[re.Pattern[str], int, list[str]]] | None = getattr(
        request.app.state, "allow_index", None
    )
    if index is None:
        index = []
        for template, operations in request.app.openapi().get("paths", {}).items():
            pattern = re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template))
            methods = sorted(m.upper() for m in operations)
            index.append((re.compile(pattern), template.count("{"), methods))
        request.app.state.allow_index = index
    path = request.url.path
    found = [(params, methods) for pattern, params, methods in index if pattern.fullmatch(path)]
    if not found:
        return []
    # /outbox/retry-failed is that resource, not /outbox/{message_id}: the most literal
    # template is the one the path names.
    fewest = min(params for params, _ in found)
    return sorted({m for params, methods in found if params == fewest for m in methods})


def install(app: FastAPI) -> None:
    """Register the handlers that turn every error into problem+json."""

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = []
        for item in exc.errors():
            message = str(item.get("msg", "invalid")).removeprefix("Value error, ")
            if item.get("type") == "extra_forbidden":
                message = "unknown field"
            elif item.get("type") == "json_invalid":
                message = "the body is not valid JSON"
            errors.append({"loc": _loc(item.get("loc", ())), "message": message})
        return problem(
            422,
            "Invalid input",
            f"{len(errors)} field(s) failed validation",
            kind="validation",
            instance=request.url.path,
            errors=errors,
        )

    @app.exception_handler(BatonError)
    async def _domain(request: Request, exc: BatonError) -> JSONResponse:
        extra: dict[str, Any] = {}
        if isinstance(exc, NotFound):
            status, kind = 404, "not-found"
        elif isinstance(exc, InvalidTransitionError):
            status, kind = 409, "invalid-transition"
            extra = {"current": exc.current, "requested": exc.requested, "allowed": exc.allowed}
        elif isinstance(exc, Conflict):
            status, kind = 409, "conflict"
        elif isinstance(exc, Forbidden):
            status, kind = 403, "forbidden"
        elif isinstance(exc, Unauthorized):
            response = problem(
                401, exc.title, exc.detail, kind="unauthorized", instance=request.url.path
            )
            response.headers["WWW-Authenticate"] = 'Bearer realm="baton"'
            return response
        elif isinstance(exc, TooManyRequests):
            response = problem(
                429, exc.title, exc.detail, kind="too-many-requests", instance=request.url.path
            )
            response.headers["Retry-After"] = str(exc.retry_after)
            return response
        elif isinstance(exc, ValidationFailed):
            status, kind = 422, "validation"
            extra = {"errors": [{"loc": p.loc, "message": p.message} for p in exc.problems]}
        else:
            status, kind = 400, "bad-request"
        return problem(status, exc.title, exc.detail, kind=kind, instance=request.url.path, **extra)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = str(exc.detail)
        if exc.status_code == 400 and detail == "There was an error parsing the body":
            detail = "the body cannot be read: send JSON encoded as UTF-8"
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            # Starlette names only the first route on the path; list every method.
            headers["Allow"] = ", ".join(_allowed_methods(request)) or headers.get("Allow", "")
            detail = f"{request.method} is not allowed here; allowed: {headers['Allow']}"
        response = problem(
            exc.status_code,
            TITLES.get(exc.status_code, "HTTP error"),
            detail,
            kind=f"http-{exc.status_code}",
            instance=request.url.path,
        )
        # Keep what the error carries: a 405 lists the allowed methods in Allow.
        response.headers.update(headers)
        return response

    @app.exception_handler(IntegrityError)
    async def _integrity(request: Request, exc: IntegrityError) -> JSONResponse:
        log.warning("integrity error on %s %s: %s", request.method, request.url.path, exc.orig)
        return problem(
            409,
            "Conflict",
            "the change clashes with another change made at the same moment; nothing was "
            "saved, retry the request",
            kind="conflict",
            instance=request.url.path,
        )

    @app.exception_handler(DataError)
    async def _data(request: Request, exc: DataError) -> JSONResponse:
        log.warning("data error on %s %s: %s", request.method, request.url.path, exc.orig)
        return problem(
            422,
            "Invalid input",
            "a value cannot be stored (too long, or not representable); nothing was saved",
            kind="validation",
            instance=request.url.path,
            errors=[],
        )

    @app.exception_handler(OperationalError)
    async def _busy(request: Request, exc: OperationalError) -> JSONResponse:
        log.error("database unavailable on %s %s: %s", request.method, request.url.path, exc.orig)
        response = problem(
            503,
            "Service unavailable",
            "the database is busy or unreachable; nothing was saved, retry shortly",
            kind="unavailable",
            instance=request.url.path,
        )
        response.headers["Retry-After"] = "5"
        return response

    @app.exception_handler(ClientDisconnect)
    async def _gone(request: Request, exc: ClientDisconnect) -> Response:
        # Nobody is left to answer, and nothing was done: one line, not an incident
        # with a traceback (a client may leave mid-body on purpose, again and again).
        path = request.url.path
        log.info("the client left before its request was read: %s %s", request.method, path)
        return Response(status_code=400)

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> JSONResponse:
        incident = uuid.uuid4().hex[:12]
        log.exception("unhandled error %s on %s %s", incident, request.method, request.url.path)
        return problem(
            500,
            "Internal error",
            f"Baton could not finish this request; nothing was saved. Incident {incident} "
            "is in the server log.",
            kind="internal",
            instance=request.url.path,
            incident=incident,
        )
