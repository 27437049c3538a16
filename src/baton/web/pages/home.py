"""``/``: each person's home page by role; ``/home`` when that page is not there."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.routing import Match

from baton.web.deps import HOMES, PageUser
from baton.web.render import render

router = APIRouter(include_in_schema=False)


def _served(request: Request, path: str) -> bool:
    scope = {"type": "http", "path": path, "method": "GET"}
    return any(route.matches(scope)[0] is Match.FULL for route in request.app.routes)


@router.get("/", response_model=None)
def root(request: Request, user: PageUser) -> RedirectResponse:
    home = HOMES.get(user.principal.role) if user.principal.role else None
    target = home if home is not None and _served(request, home) else "/home"
    return RedirectResponse(target, status_code=303)


@router.get("/home", response_model=None)
def home(request: Request, user: PageUser) -> HTMLResponse:
    """A plain start page: who you are and where to go."""
    return render(request, "home.html")
