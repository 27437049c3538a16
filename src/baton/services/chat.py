"""Chat channels (Slack and Microsoft Teams incoming webhooks) of reps and teams, and
each rep's choice of how they hear about leads.

A rep adds their own channels and chooses what they hear on: email on or off, each of
their channels on or off. A manager does the same for the reps of their teams and adds
the team's channels (a team channel hears its reps' assignments and the escalations);
an admin does it for anyone (``Action.MANAGE_CHANNELS``). A channel out of reach is
reported as missing (404), like one that does not exist.

The webhook URL is a secret: it is returned once, by the use case that adds the
channel, and never again (lists show :func:`~baton.domain.chat.url_hint`); removing a
channel blanks it. Messages are enqueued in the transaction of the event that caused
them (:func:`enqueue_chat`), one outbox row per channel, and delivered by the worker's
chat lane (:mod:`baton.services.delivery`) with the outbox's retries and fencing.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import and_, func, insert, or_, select, update
from sqlalchemy.engine import Connection, RowMapping

from baton.domain.access import Action, Principal, Reach
from baton.domain.chat import CHAT_KINDS, MAX_LABEL, check_chat_url, url_hint
from baton.domain.egress import EgressPolicy
from baton.domain.errors import FieldProblem, NotFound, ValidationFailed
from baton.services.access import allowed, check_rep
from baton.services.context import Context
from baton.services.queries import chunks, constant, inserted_id, one_of, one_of_params
from baton.services.reps import ROSTER_FINGERPRINT
from baton.store.tables import chat_channels, handoffs, outbox, reps, teams

log = logging.getLogger("baton.chat")

Audience = Literal["rep", "team", "both"]


@dataclass(frozen=True)
class ChannelPublic:
    """A chat channel as people see it: never its URL, only a hint of it."""

    id: int
    kind: str
    label: str
    url_hint: str
    rep_id: int | None
    team_id: int | None
    active: bool
    created_by: str
    created_at: datetime


@dataclass(frozen=True)
class NotificationsPublic:
    """How a rep hears about leads: email on or off, and their chat channels."""

    rep_id: int
    email: bool
    channels: list[ChannelPublic]


_COLUMNS = (
    chat_channels.c.id,
    chat_channels.c.kind,
    chat_channels.c.label,
    chat_channels.c.url_hint,
    chat_channels.c.rep_id,
    chat_channels.c.team_id,
    chat_channels.c.active,
    chat_channels.c.created_by,
    chat_channels.c.created_at,
)


def _public(row: RowMapping) -> ChannelPublic:
    return ChannelPublic(
        id=int(row["id"]),
        kind=row["kind"],
        label=row["label"],
        url_hint=row["url_hint"],
        rep_id=row["rep_id"],
        team_id=row["team_id"],
        active=bool(row["active"]),
        created_by=row["created_by"],
        created_at=row["created_at"],
    )


# --- access ----------------------------------------------------------------------------


def _check_rep(connection: Connection, actor: Principal, rep_id: int) -> None:
    check_rep(connection, actor, Action.MANAGE_CHANNELS, rep_id)
    if connection.execute(select(reps.c.id).where(reps.c.id == rep_id)).first() is None:
        raise NotFound(f"rep {rep_id} does not exist")


def _check_team(connection: Connection, actor: Principal, team_id: int) -> None:
    level = allowed(actor, Action.MANAGE_CHANNELS)
    row = connection.execute(
        select(teams.c.id, teams.c.manager_email).where(teams.c.id == team_id)
    ).first()
    inside = row is not None and (
        level is Reach.ALL
        or (
            level is Reach.TEAM
            and (
                team_id in actor.team_ids
                or (
                    actor.email is not None
                    and (row.manager_email or "").lower() == actor.email.lower()
                )
            )
        )
    )
    if not inside:
        log.info("out of reach: %s (%s) asked for team %s", actor.name, actor.kind, team_id)
        raise NotFound(f"team {team_id} does not exist")


def _live_channel(connection: Connection, actor: Principal, channel_id: int) -> RowMapping:
    row = (
        connection.execute(
            select(*_COLUMNS).where(
                chat_channels.c.id == channel_id, chat_channels.c.removed_at.is_(None)
            )
        )
        .mappings()
        .first()
    )
    if row is None:
        allowed(actor, Action.MANAGE_CHANNELS)
        raise NotFound(f"chat channel {channel_id} does not exist")
    try:
        if row["rep_id"] is not None:
            _check_rep(connection, actor, int(row["rep_id"]))
        else:
            _check_team(connection, actor, int(row["team_id"]))
    except NotFound:
        raise NotFound(f"chat channel {channel_id} does not exist") from None
    return row


# --- use cases -------------------------------------------------------------------------


def add_channel(
    ctx: Context,
    *,
    kind: str,
    url: str,
    actor: Principal,
    rep_id: int | None = None,
    team_id: int | None = None,
    label: str | None = None,
) -> tuple[ChannelPublic, str]:
    """Add a Slack or Teams channel to a rep or a team (exactly one); returns it with
    its URL, which is not shown again."""
    allowed(actor, Action.MANAGE_CHANNELS)
    url = url.strip()
    problems: list[FieldProblem] = []
    if kind not in CHAT_KINDS:
        problems.append(FieldProblem("kind", f"use one of: {', '.join(CHAT_KINDS)}"))
    problems += check_chat_url(
        url,
        EgressPolicy.parse(ctx.settings.webhook_internal_allowlist),
        production=ctx.settings.env == "production",
    )
    label = (label or "").strip() or f"{kind} channel"
    if len(label) > MAX_LABEL:
        problems.append(FieldProblem("label", f"at most {MAX_LABEL} characters"))
    if (rep_id is None) == (team_id is None):
        problems.append(FieldProblem("owner", "give a rep or a team, not both"))
    if problems:
        raise ValidationFailed("the chat channel is not valid", problems)
    now = ctx.clock.now()
    with ctx.write() as connection:
        if rep_id is not None:
            _check_rep(connection, actor, rep_id)
        else:
            assert team_id is not None
            _check_team(connection, actor, team_id)
        values: dict[str, Any] = {
            "rep_id": rep_id,
            "team_id": team_id,
            "kind": kind,
            "url": url,
            "url_hint": url_hint(url),
            "label": label,
            "active": True,
            "created_by": actor.name,
            "created_at": now,
        }
        channel_id = inserted_id(connection.execute(insert(chat_channels).values(**values)))
    owner = f"rep {rep_id}" if rep_id is not None else f"team {team_id}"
    log.info("%s added %s channel %s for %s", actor.name, kind, channel_id, owner)
    return (
        ChannelPublic(
            id=int(channel_id),
            kind=kind,
            label=label,
            url_hint=values["url_hint"],
            rep_id=rep_id,
            team_id=team_id,
            active=True,
            created_by=actor.name,
            created_at=now,
        ),
        url,
    )


def list_channels(
    ctx: Context, *, actor: Principal, rep_id: int | None = None, team_id: int | None = None
) -> list[ChannelPublic]:
    """The channels of a rep or of a team (not removed ones), oldest first."""
    if (rep_id is None) == (team_id is None):
        raise ValidationFailed(
            "the chat channels are not listed", [FieldProblem("owner", "give a rep or a team")]
        )
    with ctx.read() as connection:
        if rep_id is not None:
            _check_rep(connection, actor, rep_id)
            where = chat_channels.c.rep_id == rep_id
        else:
            assert team_id is not None
            _check_team(connection, actor, team_id)
            where = chat_channels.c.team_id == team_id
        query = (
            select(*_COLUMNS)
            .where(where, chat_channels.c.removed_at.is_(None))
            .order_by(chat_channels.c.id)
        )
        return [_public(r) for r in connection.execute(query).mappings()]


def set_channel_active(
    ctx: Context, channel_id: int, active: bool, *, actor: Principal
) -> ChannelPublic:
    """Turn a channel on or off (off: it hears nothing, and keeps its URL)."""
    with ctx.write() as connection:
        _live_channel(connection, actor, channel_id)
        connection.execute(
            update(chat_channels).where(chat_channels.c.id == channel_id).values(active=active)
        )
        row = _live_channel(connection, actor, channel_id)
    return _public(row)


def remove_channel(ctx: Context, channel_id: int, *, actor: Principal) -> None:
    """Remove a channel: it hears nothing more, its URL is blanked, and messages still
    waiting for it fail (the outbox keeps their log)."""
    now = ctx.clock.now()
    with ctx.write() as connection:
        _live_channel(connection, actor, channel_id)
        connection.execute(
            update(chat_channels)
            .where(chat_channels.c.id == channel_id)
            .values(active=False, url="", removed_at=now)
        )
    log.info("%s removed chat channel %s", actor.name, channel_id)


def get_notifications(ctx: Context, rep_id: int, *, actor: Principal) -> NotificationsPublic:
    """How a rep hears about leads."""
    with ctx.read() as connection:
        _check_rep(connection, actor, rep_id)
        email = connection.execute(
            select(reps.c.notify_email).where(reps.c.id == rep_id)
        ).scalar_one()
        channels = [
            _public(r)
            for r in connection.execute(
                select(*_COLUMNS)
                .where(chat_channels.c.rep_id == rep_id, chat_channels.c.removed_at.is_(None))
                .order_by(chat_channels.c.id)
            ).mappings()
        ]
    return NotificationsPublic(rep_id=rep_id, email=bool(email), channels=channels)


def set_notifications(
    ctx: Context,
    rep_id: int,
    *,
    actor: Principal,
    email: bool | None = None,
    channels: dict[int, bool] | None = None,
) -> NotificationsPublic:
    """Choose: email on or off, and each of the rep's channels on or off (``channels``:
    channel id -> on). All in one transaction; a channel not the rep's is a 404."""
    with ctx.write() as connection:
        _check_rep(connection, actor, rep_id)
        if email is not None:
            connection.execute(update(reps).where(reps.c.id == rep_id).values(notify_email=email))
        for channel_id, on in (channels or {}).items():
            row = _live_channel(connection, actor, channel_id)
            if row["rep_id"] != rep_id:
                raise NotFound(f"chat channel {channel_id} does not exist")
            connection.execute(
                update(chat_channels).where(chat_channels.c.id == channel_id).values(active=on)
            )
    return get_notifications(ctx, rep_id, actor=actor)


# --- inside the transaction of an event ------------------------------------------------


def email_wanted(connection: Connection, rep_id: int | None) -> bool:
    """Whether the rep gets email (True for no rep: a manager's email is theirs)."""
    if rep_id is None:
        return True
    wanted = connection.execute(
        select(reps.c.notify_email).where(reps.c.id == rep_id)
    ).scalar_one_or_none()
    return wanted is None or bool(wanted)


def enqueue_chat(
    connection: Connection,
    *,
    topic: str,
    rep_id: int,
    handoff_id: int,
    now: datetime,
    audience: Audience,
    data: dict[str, Any] | None = None,
) -> int:
    """One outbox row per active channel that hears ``topic`` about rep ``rep_id``:
    the rep's own channels (``rep``), their team's (``team``) or both; returns how
    many. The recipient shown in the outbox is the channel's label, never its URL."""
    conditions = []
    if audience in ("rep", "both"):
        conditions.append(chat_channels.c.rep_id == rep_id)
    if audience in ("team", "both"):
        conditions.append(
            chat_channels.c.team_id.in_(select(reps.c.team_id).where(reps.c.id == rep_id))
        )
    found = connection.execute(
        select(chat_channels.c.id, chat_channels.c.kind, chat_channels.c.label)
        .where(or_(*conditions), *_LIVE)
        .order_by(chat_channels.c.id)
    ).all()
    rows = chat_rows(
        [(int(i), str(k), str(label)) for i, k, label in found],
        topic=topic,
        rep_id=rep_id,
        handoff_id=handoff_id,
        now=now,
        data=data,
    )
    if rows:
        connection.execute(insert(outbox), rows)
    return len(rows)


_LIVE = (
    chat_channels.c.active.is_(True),
    chat_channels.c.removed_at.is_(None),
    func.length(chat_channels.c.url) > 0,
)
"""A channel that can be sent to."""

Channel = tuple[int, str, str]
"""A live chat channel: its id, kind and label."""


@dataclass(frozen=True)
class Hearing:
    """How a rep hears about their leads: by email or not, and the live channels that
    hear about them, their own and their team's (``audience="both"``), by id."""

    email: bool
    channels: list[Channel]


def hearing_of(
    connection: Connection,
    rep_ids: Collection[int],
    *,
    loads: dict[int, int] | None = None,
    fingerprint: list[Any] | None = None,
) -> dict[int, Hearing]:
    """:func:`email_wanted` and the channels :func:`enqueue_chat` with
    ``audience="both"`` would find, for many reps in one statement per 900 (a batch of
    new handoffs). A rep id that does not exist is left out. ``loads``, when given,
    receives the reps' open loads as :func:`baton.services.reps.open_loads` counts them
    (reps with none left out), read by the same statement: for routing, which reads
    both under the reps' locks. ``fingerprint``, when given (and empty), receives the
    roster's fingerprint (:data:`~baton.services.reps.ROSTER_FINGERPRINT`) read by the
    same statement, for :func:`~baton.services.reps.routing_reps`; it stays empty when
    no rep of ``rep_ids`` exists."""
    found: dict[int, Hearing] = {}
    for part in chunks(sorted(set(rep_ids))):
        arity, params = one_of_params("rep_ids", part, up_to=_FEW)
        statement = _hearing(arity, loads is not None, fingerprint is not None)
        for row in connection.execute(statement, params):
            rep_id, email, channel_id, kind, label = row[:5]
            if loads is not None and row[5]:
                loads[int(rep_id)] = int(row[5])
            if fingerprint is not None and not fingerprint:
                fingerprint.extend(row[-len(ROSTER_FINGERPRINT) :])
            hearing = found.setdefault(int(rep_id), Hearing(email is None or bool(email), []))
            if channel_id is not None:
                hearing.channels.append((int(channel_id), str(kind), str(label)))
    return found


_FEW = 32
"""Up to this many reps, :func:`hearing_of` binds one parameter per rep (a statement
per length, built once: see :func:`~baton.services.queries.one_of`)."""


@functools.cache
def _hearing(arity: int | None, loads: bool, fingerprint: bool) -> Any:
    """The statement of :func:`hearing_of`, built once per shape: every new handoff
    asks it."""
    statement = (
        select(
            reps.c.id,
            reps.c.notify_email,
            chat_channels.c.id,
            chat_channels.c.kind,
            chat_channels.c.label,
        )
        .select_from(
            reps.outerjoin(
                chat_channels,
                and_(
                    or_(
                        chat_channels.c.rep_id == reps.c.id,
                        chat_channels.c.team_id == reps.c.team_id,
                    ),
                    *_LIVE,
                ),
            )
        )
        .where(one_of(reps.c.id, "rep_ids", arity))
        .order_by(reps.c.id, chat_channels.c.id)
    )
    if loads:
        statement = statement.add_columns(
            select(func.count())
            .where(
                handoffs.c.rep_id == reps.c.id,
                handoffs.c.status.in_([constant("assigned"), constant("accepted")]),
            )
            .scalar_subquery()
        )
    if fingerprint:
        statement = statement.add_columns(*ROSTER_FINGERPRINT)
    return statement


def chat_rows(
    channels: Sequence[Channel],
    *,
    topic: str,
    rep_id: int,
    handoff_id: int,
    now: datetime,
    data: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """The outbox rows :func:`enqueue_chat` writes for ``channels``, in their order."""
    return [
        {
            "channel": "chat",
            "topic": topic,
            "handoff_id": handoff_id,
            "endpoint_id": None,
            "chat_channel_id": channel_id,
            "recipient": f"{kind} channel {channel_id} ({label})"[:2000],
            "payload": {"rep_id": rep_id, **(data or {})},
            "status": "pending",
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
        }
        for channel_id, kind, label in channels
    ]
