"""The manager's view (``/team``): the team's open handoffs against the SLA, the
unassigned queue and why each item waits, reps' availability today; assign a queued
handoff to a named rep, reassign an open one.

Everything comes from :func:`baton.services.team_view.team_today`; the forms post to
the same use cases as ``POST /api/v1/handoffs/{id}/assign`` and ``…/reassign``
(:func:`~baton.services.handoffs.assign_handoff`,
:func:`~baton.services.handoffs.reassign_handoff`), which decide who may do it.
"""

from __future__ import annotations

from datetime import datetime, time
from typing import Annotated
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse

from baton.api.deps import get_context
from baton.domain.activities import MAX_ID
from baton.domain.errors import BatonError, Conflict, ValidationFailed
from baton.services import handoffs as handoff_service
from baton.services.team_view import team_today
from baton.web.deps import PageUser
from baton.web.forms import FormUser
from baton.web.render import redirect, render, templates

router = APIRouter(include_in_schema=False)


def span_in(span: tuple[datetime, datetime], zone: str) -> str:
    """A working interval as wall-clock times in ``zone``: ``09:00–17:00``; an end at
    the next midnight is ``24:00``."""
    place = ZoneInfo(zone)
    start, end = span[0].astimezone(place), span[1].astimezone(place)
    until = "24:00" if end.date() > start.date() and end.time() == time(0) else f"{end:%H:%M}"
    return f"{start:%H:%M}–{until}"


templates.filters["span_in"] = span_in

SLA_CLASS = {"breached": "late", "reminded": "soon", "on time": "ontime"}
AVAILABILITY_CLASS = {
    "in hours": "ontime",
    "outside hours": "muted",
    "away": "soon",
    "out of office": "soon",
    "full": "late",
    "inactive": "muted",
}

HandoffId = Annotated[int, Path(ge=1, le=MAX_ID)]
TeamName = Annotated[str | None, Query(max_length=100)]

AVAILABILITY_NOTE = {
    "in hours": "can take leads now",
    "outside hours": "outside working hours",
    "away": "status away",
    "out of office": "out of office",
    "full": "at capacity",
    "inactive": "deactivated",
}


def _back(team: str | None, anchor: str) -> str:
    query = f"?{urlencode({'team': team})}" if team else ""
    return f"/team{query}#{anchor}"


@router.get("/team", response_model=None)
def team_page(request: Request, user: PageUser, team: TeamName = None) -> HTMLResponse:
    """Today for a sales manager (or an admin): who is late, what waits, who is free."""
    view = team_today(get_context(request), actor=user.principal, team=team or None)
    return render(
        request,
        "team/team.html",
        {
            "view": view,
            "rep_names": {r.email: r.name for r in view.reps},
            "team": team or "",
            "notes": AVAILABILITY_NOTE,
            "sla_class": SLA_CLASS,
            "availability_class": AVAILABILITY_CLASS,
        },
    )


def problem_text(exc: BatonError) -> str:
    """A refusal said in one line: the detail, then each bad field."""
    problems = exc.problems if isinstance(exc, ValidationFailed) else []
    return "; ".join([exc.detail, *(f"{p.loc}: {p.message}" for p in problems)])


def _refused(request: Request, team: str | None, anchor: str, exc: BatonError) -> RedirectResponse:
    return redirect(request, _back(team, anchor), problem_text(exc), "error")


@router.post("/team/handoffs/{handoff_id}/assign", response_model=None)
async def assign(
    request: Request,
    user: FormUser,
    handoff_id: HandoffId,
    to: Annotated[str, Form(min_length=1, max_length=254)],
    override_reason: Annotated[str, Form(max_length=500)] = "",
    team: Annotated[str, Form(max_length=100)] = "",
) -> RedirectResponse:
    """Give a queued handoff to the rep named (an unavailable rep with a reason)."""
    ctx = get_context(request)
    try:
        done = await run_in_threadpool(
            handoff_service.assign_handoff,
            ctx,
            handoff_id,
            to_email=to,
            override_reason=override_reason.strip() or None,
            actor=user.principal,
        )
    except (Conflict, ValidationFailed) as exc:
        return _refused(request, team or None, "queue", exc)
    return redirect(
        request, _back(team or None, "queue"), f"Handoff {handoff_id} assigned to {done.rep_email}"
    )


@router.post("/team/handoffs/{handoff_id}/reassign", response_model=None)
async def reassign(
    request: Request,
    user: FormUser,
    handoff_id: HandoffId,
    to: Annotated[str, Form(max_length=254)] = "",
    team: Annotated[str, Form(max_length=100)] = "",
) -> RedirectResponse:
    """Move an open handoff to the rep named, or to the next available one."""
    ctx = get_context(request)
    try:
        done = await run_in_threadpool(
            handoff_service.reassign_handoff,
            ctx,
            handoff_id,
            to_email=to.strip() or None,
            actor=user.principal,
        )
    except (Conflict, ValidationFailed) as exc:
        return _refused(request, team or None, "open", exc)
    return redirect(
        request,
        _back(team or None, "open"),
        f"Handoff {handoff_id} reassigned to {done.rep_email} (now handoff {done.id})",
    )
