"""The busiest route answered without the router: ``POST /api/v1/leads``.

A website's form posts every lead there, and for that one request the framework's
own layers (exception middleware, exit stack, route matching, the endpoint wrapper)
cost about as much CPU as the capture's Python work. :class:`DirectRoute` sits inside
Baton's middlewares (limits, CORS, security headers all still apply), hands that one
method and path straight to the route's own function, and answers its errors with
the app's own exception handlers, so the answers are the same bytes the router gives
(the route stays declared for OpenAPI, and every other request goes the usual way).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI
from starlette._utils import get_route_path
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

Endpoint = Callable[[Request], Awaitable[Response]]


class DirectRoute:
    """Send ``method`` ``path`` to ``endpoint`` directly (see the module docs)."""

    def __init__(
        self, app: ASGIApp, *, owner: FastAPI, method: str, path: str, endpoint: Endpoint
    ) -> None:
        self.app = app
        self.owner = owner
        self.method = method
        self.path = path
        self.endpoint = endpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != self.method
            or get_route_path(scope) != self.path
        ):
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive, send)
        try:
            response = await self.endpoint(request)
        except Exception as exc:
            handler = self._handler(exc)
            if handler is None:
                raise  # to the server error middleware, as from the router
            response = await handler(request, exc)
        await response(scope, receive, send)

    def _handler(self, exc: Exception) -> Callable[[Request, Any], Awaitable[Response]] | None:
        """The handler the exception middleware would pick: a status handler for an
        HTTP exception, else the nearest class in the exception's MRO (``Exception``
        itself belongs to the server error middleware, which logs the incident)."""
        handlers: dict[Any, Any] = self.owner.exception_handlers
        if isinstance(exc, HTTPException) and exc.status_code in handlers:
            return handlers[exc.status_code]  # type: ignore[no-any-return]
        for cls in type(exc).__mro__:
            if cls is Exception:
                return None
            if cls in handlers:
                return handlers[cls]  # type: ignore[no-any-return]
        return None
