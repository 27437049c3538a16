"""CORS for the intake routes only: a website's own page may post leads and activities
to Baton with an intake key, from an origin that some active key lists.

A preflight carries no key, so it is answered for any origin an active key allows; the
real request is then checked against *its* key's origins (see
:mod:`baton.api.deps`). No other route answers cross-origin requests.
"""

from __future__ import annotations

import time

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from baton.api.problems import problem
from baton.services import users as user_service
from baton.services.context import Context

INTAKE_PATHS = frozenset({"/api/v1/leads", "/api/v1/activities", "/api/v1/activities/batch"})
ALLOWED_HEADERS = "authorization, content-type, x-baton-intake-key"


class IntakeCors:
    """Answer preflights and add ``Access-Control-Allow-Origin`` on intake routes."""

    def __init__(self, app: ASGIApp, context: Context) -> None:
        self.app = app
        self.context = context
        self._origins: frozenset[str] = frozenset()
        self._read_at = float("-inf")
        self._version = -1

    def origins(self) -> frozenset[str]:
        """The origins, read again after ``BATON_TOKEN_CACHE_SECONDS`` or at once when
        this process changed a key."""
        version = user_service.origins_version(self.context)
        stale = time.monotonic() - self._read_at > self.context.settings.token_cache_seconds
        if stale or version != self._version:
            self._origins = user_service.intake_origins(self.context)
            self._read_at, self._version = time.monotonic(), version
        return self._origins

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].rstrip("/") not in INTAKE_PATHS:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        origin = headers.get("origin")
        if origin is None or origin.rstrip("/").lower() not in self.origins():
            if origin is not None and _is_preflight(scope, headers):
                await _refused_preflight(origin, scope, receive, send)
                return
            await self.app(scope, receive, send)
            return
        if scope["method"] == "OPTIONS":
            await send(
                {
                    "type": "http.response.start",
                    "status": 204,
                    "headers": [
                        (b"access-control-allow-origin", origin.encode("latin-1")),
                        (b"access-control-allow-methods", b"POST"),
                        (b"access-control-allow-headers", ALLOWED_HEADERS.encode()),
                        (b"access-control-max-age", b"600"),
                        (b"vary", b"Origin"),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": b""})
            return

        async def with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["Access-Control-Allow-Origin"] = origin
                headers.append("Vary", "Origin")
            await send(message)

        await self.app(scope, receive, with_cors)


def _is_preflight(scope: Scope, headers: Headers) -> bool:
    return scope["method"] == "OPTIONS" and "access-control-request-method" in headers


async def _refused_preflight(origin: str, scope: Scope, receive: Receive, send: Send) -> None:
    """A browser asking from an origin no intake key lists: 403 saying so (the browser
    only reports a CORS failure; the page's developer reads this in the network tab),
    not the router's "OPTIONS is not allowed here", which sent them looking elsewhere."""
    shown = origin[:200]
    response = problem(
        403,
        "Forbidden",
        f"no intake key allows the origin {shown}: add it to the key's origins "
        f"(`baton intake-key update ID --origin {shown}`, or PATCH /api/v1/intake-keys/ID)",
        kind="forbidden",
        instance=scope.get("path"),
    )
    await response(scope, receive, send)

