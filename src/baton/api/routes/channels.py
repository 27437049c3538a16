"""/api/v1 chat channels (Slack, Microsoft Teams) of reps and teams, and a rep's
notification choices.

Access is decided by :mod:`baton.services.chat`: a rep manages their own, a manager
their teams' reps and teams, an admin everyone's; anything else answers 404. The
webhook URL is in the answer that adds a channel and in no other answer."""

from __future__ import annotations

import re
from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Response, status
from pydantic import BaseModel, Field, field_validator

from baton.api.deps import Actor, Authenticated, Ctx
from baton.api.schemas import WEBHOOK_URL_PATTERN
from baton.domain.activities import MAX_ID
from baton.services import chat as chat_service

router = APIRouter(prefix="/api/v1", tags=["notifications"], dependencies=[Authenticated])

RepId = Annotated[int, Path(ge=1, le=MAX_ID, description="A rep's id.")]
TeamId = Annotated[int, Path(ge=1, le=MAX_ID, description="A team's id.")]
ChannelId = Annotated[int, Path(ge=1, le=MAX_ID, description="A chat channel's id.")]
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such rep, team or channel, or not yours (problem+json)"}
}
INVALID: dict[int | str, dict[str, Any]] = {
    **NOT_FOUND,
    422: {"description": "Bad kind, URL or label (problem+json)"},
}


class ChatChannelCreate(BaseModel):
    """A Slack or Microsoft Teams incoming webhook to post notifications to."""

    model_config = {
        "extra": "forbid",
        "json_schema_extra": {
            "examples": [
                {
                    "kind": "slack",
                    "url": "https://hooks.slack.com/services/T000/B000/XXXXXXXXXXXXXXXXXXXXXXXX",
                    "label": "#ana-leads",
                }
            ]
        },
    }

    kind: Literal["slack", "teams"] = Field(description="slack or teams")
    url: str = Field(
        min_length=1,
        max_length=2000,
        description="The incoming webhook's URL (a secret: shown in this answer only); "
        "https:// in production, a public host unless BATON_WEBHOOK_INTERNAL_ALLOWLIST "
        "lists it",
        json_schema_extra={"pattern": WEBHOOK_URL_PATTERN},
    )

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not re.fullmatch(WEBHOOK_URL_PATTERN, value):
            raise ValueError(
                "give an https:// URL with an ASCII host name, e.g. "
                "https://hooks.slack.com/services/..."
            )
        return value

    label: str | None = Field(None, max_length=100, description="A name to tell channels apart")


class ChatChannelPublic(BaseModel):
    """A chat channel without its URL (``url_hint`` tells channels apart)."""

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "id": 3,
                    "kind": "slack",
                    "label": "#ana-leads",
                    "url_hint": "hooks.slack.com/…XXXX",
                    "rep_id": 7,
                    "team_id": None,
                    "active": True,
                    "created_by": "ana@lumen.example",
                    "created_at": "2026-03-02T09:00:00Z",
                }
            ]
        }
    }

    id: int
    kind: str
    label: str
    url_hint: str
    rep_id: int | None
    team_id: int | None
    active: bool
    created_by: str
    created_at: datetime


class ChatChannelCreated(ChatChannelPublic):
    """The channel just added, with its URL: the only answer that carries it."""

    url: str


class ChatChannelUpdate(BaseModel):
    """Turn a channel on or off."""

    model_config = {"extra": "forbid", "json_schema_extra": {"examples": [{"active": False}]}}

    active: bool


class NotificationsPublic(BaseModel):
    """How a rep hears about leads: email on or off, and their chat channels."""

    model_config = {
        "json_schema_extra": {"examples": [{"rep_id": 7, "email": False, "channels": []}]}
    }

    rep_id: int
    email: bool
    channels: list[ChatChannelPublic]


class ChannelChoice(BaseModel):
    """One of the rep's channels, on or off."""

    model_config = {"extra": "forbid"}

    id: int = Field(ge=1, le=MAX_ID, description="The channel's id")
    active: bool


class NotificationsUpdate(BaseModel):
    """A rep's choice: email on or off, and each of their channels on or off."""

    model_config = {
        "extra": "forbid",
        "json_schema_extra": {
            "examples": [{"email": False, "channels": [{"id": 3, "active": True}]}]
        },
    }

    email: bool | None = Field(None, description="Email notifications on or off")
    channels: list[ChannelChoice] = Field(
        default_factory=list, max_length=100, description="Channels to turn on or off"
    )


def _created(channel: chat_service.ChannelPublic, url: str) -> ChatChannelCreated:
    return ChatChannelCreated(**asdict(channel), url=url)


@router.get(
    "/reps/{rep_id}/channels",
    operation_id="list_rep_channels",
    response_model=list[ChatChannelPublic],
    responses=NOT_FOUND,
)
def list_rep_channels(ctx: Ctx, actor: Actor, rep_id: RepId) -> list[ChatChannelPublic]:
    """The rep's Slack and Teams channels (URLs are never shown again)."""
    return [
        ChatChannelPublic.model_validate(asdict(c))
        for c in chat_service.list_channels(ctx, rep_id=rep_id, actor=actor)
    ]


@router.post(
    "/reps/{rep_id}/channels",
    operation_id="add_rep_channel",
    response_model=ChatChannelCreated,
    status_code=status.HTTP_201_CREATED,
    responses=INVALID,
)
def add_rep_channel(
    ctx: Ctx, actor: Actor, rep_id: RepId, body: ChatChannelCreate
) -> ChatChannelCreated:
    """Add a channel the rep hears assignments and reminders on. The answer carries the
    URL this once."""
    channel, url = chat_service.add_channel(
        ctx, kind=body.kind, url=body.url, label=body.label, rep_id=rep_id, actor=actor
    )
    return _created(channel, url)


@router.get(
    "/teams/{team_id}/channels",
    operation_id="list_team_channels",
    response_model=list[ChatChannelPublic],
    responses=NOT_FOUND,
)
def list_team_channels(ctx: Ctx, actor: Actor, team_id: TeamId) -> list[ChatChannelPublic]:
    """The team's Slack and Teams channels (URLs are never shown again)."""
    return [
        ChatChannelPublic.model_validate(asdict(c))
        for c in chat_service.list_channels(ctx, team_id=team_id, actor=actor)
    ]


@router.post(
    "/teams/{team_id}/channels",
    operation_id="add_team_channel",
    response_model=ChatChannelCreated,
    status_code=status.HTTP_201_CREATED,
    responses=INVALID,
)
def add_team_channel(
    ctx: Ctx, actor: Actor, team_id: TeamId, body: ChatChannelCreate
) -> ChatChannelCreated:
    """Add a channel the team hears its reps' assignments and the escalations on. The
    answer carries the URL this once."""
    channel, url = chat_service.add_channel(
        ctx, kind=body.kind, url=body.url, label=body.label, team_id=team_id, actor=actor
    )
    return _created(channel, url)


@router.patch(
    "/chat-channels/{channel_id}",
    operation_id="update_chat_channel",
    response_model=ChatChannelPublic,
    responses=NOT_FOUND,
)
def update_chat_channel(
    ctx: Ctx, actor: Actor, channel_id: ChannelId, body: ChatChannelUpdate
) -> ChatChannelPublic:
    """Turn a channel on or off (off keeps it, and its URL, for later)."""
    channel = chat_service.set_channel_active(ctx, channel_id, body.active, actor=actor)
    return ChatChannelPublic.model_validate(asdict(channel))


@router.delete(
    "/chat-channels/{channel_id}",
    operation_id="remove_chat_channel",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=NOT_FOUND,
)
def remove_chat_channel(ctx: Ctx, actor: Actor, channel_id: ChannelId) -> Response:
    """Remove a channel: its URL is forgotten; messages waiting for it fail."""
    chat_service.remove_channel(ctx, channel_id, actor=actor)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/reps/{rep_id}/notifications",
    operation_id="get_notifications",
    response_model=NotificationsPublic,
    responses=NOT_FOUND,
)
def get_notifications(ctx: Ctx, actor: Actor, rep_id: RepId) -> NotificationsPublic:
    """How the rep hears about leads: email on or off, and their channels."""
    return NotificationsPublic.model_validate(
        asdict(chat_service.get_notifications(ctx, rep_id, actor=actor))
    )


@router.put(
    "/reps/{rep_id}/notifications",
    operation_id="set_notifications",
    response_model=NotificationsPublic,
    responses=NOT_FOUND,
)
def set_notifications(
    ctx: Ctx, actor: Actor, rep_id: RepId, body: NotificationsUpdate
) -> NotificationsPublic:
    """Choose email on or off and each channel on or off, in one change."""
    return NotificationsPublic.model_validate(
        asdict(
            chat_service.set_notifications(
                ctx,
                rep_id,
                email=body.email,
                channels={c.id: c.active for c in body.channels},
                actor=actor,
            )
        )
    )
