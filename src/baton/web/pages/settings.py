"""A rep's notification settings (``/settings/notifications``): email on or off, and
their Slack and Microsoft Teams channels (add, turn on or off, remove).

Every form posts to the same use cases as ``PUT /api/v1/reps/{id}/notifications`` and
``POST /api/v1/reps/{id}/channels`` (:mod:`baton.services.chat`), which decide who may
do it. A channel's URL is never shown back: the person just typed it, and the page
shows its hint (``hooks.slack.com/…x9Qz``) from then on.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Path, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import Field

from baton.api.deps import get_context
from baton.domain.activities import MAX_ID
from baton.domain.errors import BatonError, Forbidden, NotFound, ValidationFailed
from baton.services import chat as chat_service
from baton.web.deps import PageSession, PageUser
from baton.web.forms import FormUser
from baton.web.render import redirect, render

router = APIRouter(include_in_schema=False)

PAGE = "/settings/notifications"
ChannelId = Annotated[int, Path(ge=1, le=MAX_ID)]
ChannelNumber = Annotated[int, Field(ge=1, le=MAX_ID)]
"""A channel id in a form (past MAX_ID it would overflow the database: a 500)."""


def _rep_id(user: PageSession) -> int:
    if user.principal.rep_id is None:
        raise Forbidden("notification settings belong to a rep; your account has no rep record")
    return user.principal.rep_id


def _refusal(exc: BatonError) -> str:
    problems = exc.problems if isinstance(exc, ValidationFailed) else []
    return "; ".join([exc.detail, *(p.message for p in problems)])


@router.get(PAGE, response_model=None)
def notifications_page(request: Request, user: PageUser) -> HTMLResponse:
    """Where the signed-in rep hears about new leads, reminders and escalations."""
    settings = chat_service.get_notifications(
        get_context(request), _rep_id(user), actor=user.principal
    )
    return render(request, "settings/notifications.html", {"settings": settings})


@router.post(PAGE, response_model=None)
async def choose(
    request: Request,
    user: FormUser,
    email: Annotated[str, Form(max_length=10)] = "",
    shown: Annotated[list[ChannelNumber], Form(max_length=100)] = [],  # noqa: B006 (FastAPI copies it)
    on: Annotated[list[ChannelNumber], Form(max_length=100)] = [],  # noqa: B006
) -> RedirectResponse:
    """Email on or off, and each channel shown on the page on or off (a box left
    unticked turns it off)."""
    chosen = {channel_id: channel_id in on for channel_id in shown}
    try:
        await run_in_threadpool(
            chat_service.set_notifications,
            get_context(request),
            _rep_id(user),
            email=email == "on",
            channels=chosen,
            actor=user.principal,
        )
    except NotFound:
        raise
    except BatonError as exc:
        return redirect(request, PAGE, _refusal(exc), "error")
    return redirect(request, PAGE, "Notification settings saved")


@router.post(PAGE + "/channels", response_model=None)
async def add(
    request: Request,
    user: FormUser,
    kind: Annotated[str, Form(max_length=10)],
    url: Annotated[str, Form(max_length=2000)],
    label: Annotated[str, Form(max_length=100)] = "",
) -> RedirectResponse:
    """Add a Slack or Teams incoming webhook of the rep's."""
    try:
        channel, _ = await run_in_threadpool(
            lambda: chat_service.add_channel(
                get_context(request),
                kind=kind,
                url=url,
                label=label,
                rep_id=_rep_id(user),
                actor=user.principal,
            )
        )
    except NotFound:
        raise
    except BatonError as exc:
        return redirect(request, PAGE + "#add", _refusal(exc), "error")
    return redirect(
        request,
        PAGE,
        f"{'Slack' if channel.kind == 'slack' else 'Teams'} channel “{channel.label}” added "
        f"({channel.url_hint}); its URL is not shown again",
    )


@router.post(PAGE + "/channels/{channel_id}/remove", response_model=None)
async def remove(request: Request, user: FormUser, channel_id: ChannelId) -> RedirectResponse:
    """Remove a channel of the rep's (its URL is forgotten)."""
    _rep_id(user)
    await run_in_threadpool(
        chat_service.remove_channel, get_context(request), channel_id, actor=user.principal
    )
    return redirect(request, PAGE, f"Channel {channel_id} removed")
