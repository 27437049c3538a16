"""A handoff's packet (``/handoffs/{id}``) and the forms that act on a handoff.

The page is :func:`baton.services.packet.handoff_packet` as a person reads it: who,
the score's explanation, what is missing for an MQL on score, the timeline, the prep
checklist (tick items), notes and tags (add both), earlier handoffs with their
verdicts, and the verdicts. A handoff out of the reader's reach is the 404 page.

Every form POSTs to ``/handoffs/{id}/<action>`` and comes back (303) to the page it
came from (``next``: the inbox or the packet) with a message; a verdict the handoff's
state does not allow comes back with the reason.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

from fastapi import APIRouter, Form, Path, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from baton.api.deps import Ctx
from baton.domain.activities import MAX_ID
from baton.domain.errors import Conflict, ValidationFailed
from baton.services import handoffs as handoff_service
from baton.services import notes as note_service
from baton.services import prep as prep_service
from baton.services.inbox import verdict_choices
from baton.services.packet import handoff_packet
from baton.web.deps import PageUser, safe_next
from baton.web.forms import FormUser
from baton.web.render import redirect, render

router = APIRouter(include_in_schema=False)

HandoffId = Annotated[int, Path(ge=1, le=MAX_ID)]
Next = Annotated[str, Form(max_length=2000)]
Note = Annotated[str, Form(max_length=2000)]
"""The API's bound on a won deal's value (``WonCreate.amount``: 0 to 10^12)."""


def _back(next_url: str, handoff_id: int) -> str:
    target = safe_next(next_url)
    return target if target != "/" else f"/handoffs/{handoff_id}"


@router.get("/handoffs/{handoff_id}", response_model=None)
def packet_page(request: Request, ctx: Ctx, user: PageUser, handoff_id: HandoffId) -> HTMLResponse:
    packet = handoff_packet(ctx, handoff_id, actor=user.principal)
    choices = verdict_choices(ctx, actor=user.principal)
    hits = sorted(packet.score.hits, key=lambda hit: -abs(hit.points)) if packet.score else []
    return render(
        request,
        "packet/index.html",
        {
            "packet": packet,
            "h": packet.handoff,
            "lead": packet.lead,
            "hits": hits,
            "inbox": choices,
            "back": f"/handoffs/{handoff_id}",
        },
    )


def _acted(request: Request, handoff_id: int, next_url: str, done: str) -> RedirectResponse:
    return redirect(request, _back(next_url, handoff_id), done)


def _refused(request: Request, handoff_id: int, next_url: str, exc: Exception) -> RedirectResponse:
    detail = getattr(exc, "detail", str(exc))
    problems = getattr(exc, "problems", [])
    if problems:
        detail += ": " + "; ".join(f"{p.loc} {p.message}" for p in problems)
    return redirect(request, _back(next_url, handoff_id), f"Not done: {detail}", "error")


@router.post("/handoffs/{handoff_id}/accept", response_model=None)
def accept(
    request: Request, ctx: Ctx, user: FormUser, handoff_id: HandoffId, next: Next = ""
) -> RedirectResponse:
    try:
        handoff_service.accept_handoff(ctx, handoff_id, actor=user.principal)
    except (Conflict, ValidationFailed) as exc:
        return _refused(request, handoff_id, next, exc)
    return _acted(request, handoff_id, next, "Accepted: the lead is yours (SAL).")


@router.post("/handoffs/{handoff_id}/reject", response_model=None)
def reject(
    request: Request,
    ctx: Ctx,
    user: FormUser,
    handoff_id: HandoffId,
    code: Annotated[str, Form(max_length=60)] = "",
    note: Note = "",
    next: Next = "",
) -> RedirectResponse:
    try:
        handoff_service.reject_handoff(
            ctx, handoff_id, code=code, note=note.strip() or None, actor=user.principal
        )
    except (Conflict, ValidationFailed) as exc:
        return _refused(request, handoff_id, next, exc)
    return _acted(request, handoff_id, next, "Rejected: the lead goes back to marketing.")


@router.post("/handoffs/{handoff_id}/touch", response_model=None)
def touch(
    request: Request,
    ctx: Ctx,
    user: FormUser,
    handoff_id: HandoffId,
    kind: Annotated[Literal["call", "email", "meeting"], Form()] = "call",
    note: Note = "",
    next: Next = "",
) -> RedirectResponse:
    try:
        handoff_service.log_touch(
            ctx, handoff_id, kind=kind, note=note.strip() or None, actor=user.principal
        )
    except (Conflict, ValidationFailed) as exc:
        return _refused(request, handoff_id, next, exc)
    return _acted(request, handoff_id, next, f"Logged: {kind}.")


@router.post("/handoffs/{handoff_id}/qualify", response_model=None)
async def qualify(
    request: Request, ctx: Ctx, user: FormUser, handoff_id: HandoffId
) -> RedirectResponse:
    from fastapi.concurrency import run_in_threadpool

    form = await request.form()
    next_url = str(form.get("next") or "")
    fields = {
        str(key).removeprefix("field_"): str(value).strip()[:500]
        for key, value in form.items()
        if str(key).startswith("field_") and isinstance(value, str)
    }
    try:
        await run_in_threadpool(
            lambda: handoff_service.qualify_handoff(
                ctx, handoff_id, fields=fields, actor=user.principal
            )
        )
    except (Conflict, ValidationFailed) as exc:
        return _refused(request, handoff_id, next_url, exc)
    return _acted(request, handoff_id, next_url, "Qualified (SQL).")


@router.post("/handoffs/{handoff_id}/won", response_model=None)
def won(
    request: Request,
    ctx: Ctx,
    user: FormUser,
    handoff_id: HandoffId,
    amount: Annotated[str, Form(max_length=20)] = "",
    note: Note = "",
    next: Next = "",
) -> RedirectResponse:
    try:
        value = float(amount.replace(",", "").strip()) if amount.strip() else None
    except ValueError:
        value = math.nan  # not a number: the use case refuses it with its message
    try:
        handoff_service.won_handoff(
            ctx, handoff_id, amount=value, note=note.strip() or None, actor=user.principal
        )
    except (Conflict, ValidationFailed) as exc:
        return _refused(request, handoff_id, next, exc)
    return _acted(request, handoff_id, next, "Won: a new customer.")


@router.post("/handoffs/{handoff_id}/lost", response_model=None)
def lost(
    request: Request,
    ctx: Ctx,
    user: FormUser,
    handoff_id: HandoffId,
    reason: Annotated[str, Form(max_length=500)] = "",
    next: Next = "",
) -> RedirectResponse:
    try:
        handoff_service.lost_handoff(ctx, handoff_id, reason=reason, actor=user.principal)
    except (Conflict, ValidationFailed) as exc:
        return _refused(request, handoff_id, next, exc)
    return _acted(request, handoff_id, next, "Marked as lost.")


@router.post("/handoffs/{handoff_id}/prep", response_model=None)
def prep(
    request: Request,
    ctx: Ctx,
    user: FormUser,
    handoff_id: HandoffId,
    item: Annotated[str, Form(max_length=60)] = "",
    done: Annotated[bool, Form()] = True,
    next: Next = "",
) -> RedirectResponse:
    lead_id = handoff_service.get_handoff(ctx, handoff_id, actor=user.principal).lead_id
    try:
        change = prep_service.tick_prep if done else prep_service.untick_prep
        change(ctx, lead_id, item, actor=user.principal)
    except (Conflict, ValidationFailed) as exc:
        return _refused(request, handoff_id, next, exc)
    return _acted(request, handoff_id, next, "Checklist updated.")


@router.post("/handoffs/{handoff_id}/notes", response_model=None)
def add_note(
    request: Request,
    ctx: Ctx,
    user: FormUser,
    handoff_id: HandoffId,
    body: Annotated[str, Form(max_length=10_000)] = "",
    next: Next = "",
) -> RedirectResponse:
    lead_id = handoff_service.get_handoff(ctx, handoff_id, actor=user.principal).lead_id
    try:
        note_service.add_note(ctx, lead_id, body, actor=user.principal)
    except (Conflict, ValidationFailed) as exc:
        return _refused(request, handoff_id, next, exc)
    return _acted(request, handoff_id, next, "Note added.")


@router.post("/handoffs/{handoff_id}/tags", response_model=None)
def add_tag(
    request: Request,
    ctx: Ctx,
    user: FormUser,
    handoff_id: HandoffId,
    tag: Annotated[str, Form(max_length=100)] = "",
    next: Next = "",
) -> RedirectResponse:
    lead_id = handoff_service.get_handoff(ctx, handoff_id, actor=user.principal).lead_id
    try:
        note_service.add_tag(ctx, lead_id, tag, actor=user.principal)
    except (Conflict, ValidationFailed) as exc:
        return _refused(request, handoff_id, next, exc)
    return _acted(request, handoff_id, next, f"Tagged: {tag.strip()}.")
