"""The rep's inbox (``/inbox``): open handoffs, most urgent first, with the actions on
each row. ``/inbox/list`` is the list alone, which our JavaScript fetches every 5 s
(without JavaScript, a refresh link). Built from :func:`baton.services.inbox.rep_inbox`;
the actions post to the handoff routes of :mod:`baton.web.pages.packet`."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from baton.api.deps import Ctx
from baton.services.inbox import rep_inbox
from baton.web.deps import PageUser
from baton.web.render import render, render_text

router = APIRouter(include_in_schema=False)

POLL_MS = 5000


@router.get("/inbox", response_model=None)
def inbox(request: Request, ctx: Ctx, user: PageUser) -> HTMLResponse:
    box = rep_inbox(ctx, actor=user.principal)
    return render(request, "inbox/index.html", {"inbox": box, "poll_ms": POLL_MS, "back": "/inbox"})


@router.get("/inbox/list", response_model=None)
def inbox_list(request: Request, ctx: Ctx, user: PageUser) -> HTMLResponse:
    box = rep_inbox(ctx, actor=user.principal)
    html = render_text(request, "inbox/_list.html", {"inbox": box, "back": "/inbox"})
    return HTMLResponse(html, headers={"Cache-Control": "no-store"})
