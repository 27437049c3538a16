"""One Jinja2 environment for every page, and the helpers routes answer with.

``render(request, "group/page.html", {...})`` gives the page in the layout
(``base.html``), with these always in the template's context: ``user`` (the
:class:`~baton.web.deps.PageSession`, or None on the sign-in and error pages),
``zone`` and ``now`` (the reader's zone and the injected clock's time), ``flashes``
(messages left by the last redirect), ``csrf_field()`` (the hidden field every POST
form carries) and ``static(path)`` (an asset URL that changes with Baton's version).

Filters: ``when`` (a time in the reader's zone with its label, ``Mon 2 Mar 10:00
EST``), ``countdown`` (``25 min left`` / ``overdue by 1 h 5 min``), ``ago`` (``3 h
ago``), ``money`` (``12,500`` or ``USD 12,500``), ``percent`` (a fraction as ``42%``).

``redirect(request, url, "Accepted")`` answers a form with 303 and leaves a message
the next page shows (in a signed cookie, read once).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse
from itsdangerous import BadSignature, URLSafeSerializer
from jinja2 import Environment, PackageLoader, StrictUndefined, pass_context
from jinja2.runtime import Context as TemplateContext
from markupsafe import Markup, escape

from baton import __version__
from baton.api.deps import get_context
from baton.domain.local_time import local_text
from baton.services.context import Context
from baton.web.forms import CSRF_FIELD

FLASH_COOKIE = "baton_flash"
FLASH_KINDS = frozenset({"ok", "error", "info"})


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo else at.replace(tzinfo=UTC)


@pass_context
def when(context: TemplateContext, at: datetime | None, zone: str | None = None) -> str:
    """``at`` in the reader's zone (or ``zone``), labelled: ``Mon 2 Mar 10:00 EST``."""
    if at is None:
        return "—"
    return local_text(at, zone or context.get("zone") or "UTC", now=context.get("now"))


def duration(seconds: float) -> str:
    """``45 s``, ``12 min``, ``3 h 5 min``, ``2 d 4 h``."""
    seconds = abs(int(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


@pass_context
def countdown(context: TemplateContext, at: datetime | None) -> str:
    """Time left until ``at`` (``25 min left``), or how late (``overdue by 5 min``)."""
    if at is None:
        return "—"
    now: datetime = context["now"]
    left = (_aware(at) - now).total_seconds()
    return f"{duration(left)} left" if left >= 0 else f"overdue by {duration(left)}"


@pass_context
def ago(context: TemplateContext, at: datetime | None) -> str:
    """How long ago ``at`` was (``3 h ago``), or how far ahead (``in 3 h``)."""
    if at is None:
        return "—"
    now: datetime = context["now"]
    passed = (now - _aware(at)).total_seconds()
    if abs(passed) < 30:
        return "just now"
    return f"{duration(passed)} ago" if passed > 0 else f"in {duration(passed)}"


def money(value: float | int | None, currency: str | None = None) -> str:
    """A sum with thousands separators, cents only when there are some."""
    if value is None:
        return "—"
    text = f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"
    return f"{currency} {text}" if currency else text


def percent(value: float | None, digits: int = 0) -> str:
    """A fraction (0.42) as a percentage (``42%``)."""
    if value is None:
        return "—"
    return f"{value * 100:.{digits}f}%"


def _static(path: str) -> str:
    return f"/static/{path}?v={__version__}"


@pass_context
def _csrf_field(context: TemplateContext) -> Markup:
    token = context.get("csrf_token") or ""
    return Markup('<input type="hidden" name="{}" value="{}">').format(CSRF_FIELD, escape(token))


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("baton.web", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        when=when, countdown=countdown, ago=ago, money=money, percent=percent, duration=duration
    )
    env.globals.update(static=_static, csrf_field=_csrf_field, version=__version__)
    return env


templates = _environment()
"""The one environment; page modules may add filters or globals at import time."""


# ---------------------------------------------------------------- flash messages


def _flash_serializer(ctx: Context) -> URLSafeSerializer:
    return URLSafeSerializer(ctx.settings.secret_key, salt="baton-flash")


def read_flashes(request: Request) -> list[tuple[str, str]]:
    raw = request.cookies.get(FLASH_COOKIE)
    if not raw:
        return []
    try:
        items = _flash_serializer(get_context(request)).loads(raw)
    except BadSignature:
        return []
    if not isinstance(items, list):
        return []
    return [
        (str(item[0]), str(item[1]))
        for item in items
        if isinstance(item, list) and len(item) == 2 and str(item[0]) in FLASH_KINDS
    ][:5]


def redirect(
    request: Request, url: str, message: str | None = None, kind: str = "ok"
) -> RedirectResponse:
    """303 to ``url`` (a form's answer), with ``message`` shown on the next page."""
    response = RedirectResponse(url, status_code=303)
    if message:
        ctx = get_context(request)
        items = [*read_flashes(request), (kind if kind in FLASH_KINDS else "info", message)]
        response.set_cookie(
            FLASH_COOKIE,
            _flash_serializer(ctx).dumps(items[-5:]),
            max_age=120,
            httponly=True,
            samesite="lax",
            secure=ctx.settings.env != "development" and request.url.scheme == "https",
            path="/",
        )
    return response


# ---------------------------------------------------------------- pages


def page_context(request: Request, values: Mapping[str, Any]) -> dict[str, Any]:
    ctx = get_context(request)
    user = getattr(request.state, "page_session", None)
    context: dict[str, Any] = {
        "request": request,
        "user": user,
        "csrf_token": user.csrf_token if user is not None else "",
        "zone": user.timezone if user is not None else "UTC",
        "now": ctx.clock.now(),
        "flashes": read_flashes(request),
        "path": request.url.path,
    }
    context.update(values)
    return context


def render_text(request: Request, name: str, values: Mapping[str, Any] | None = None) -> str:
    return templates.get_template(name).render(page_context(request, values or {}))


def render(
    request: Request,
    name: str,
    values: Mapping[str, Any] | None = None,
    *,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
) -> HTMLResponse:
    """The template ``name`` rendered for this request's reader, as a page."""
    response = HTMLResponse(render_text(request, name, values), status, headers=headers)
    if request.cookies.get(FLASH_COOKIE):
        response.delete_cookie(FLASH_COOKIE, path="/")
    response.headers.setdefault("Cache-Control", "no-store")
    return response


def as_json(value: Any) -> str:
    """For ``data-`` attributes read by our JavaScript (autoescaped in the template)."""
    return json.dumps(value, default=str, separators=(",", ":"))
