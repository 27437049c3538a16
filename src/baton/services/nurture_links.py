"""Signed links in nurture email: the open pixel, click redirects and unsubscribing.

Every nurture email carries three kinds of links to Baton, all under
``BATON_PUBLIC_URL`` and all without a login (the person reading the email has no
account): the link *is* the credential, a token signed with ``BATON_SECRET_KEY``
(:mod:`itsdangerous`, one salt per kind, so a token of one kind never works as another):

* ``/n/o/{token}``: a 1×1 image whose fetch records an ``email_open``; the token holds
  the enrollment and the step;
* ``/n/c/{token}``: a click; the token holds the enrollment, the step and a hash of the
  URL. The redirect goes only to a URL of that step's rendered email: the send log row
  (``nurture_sends.links``, the renderer's list of original URLs, written with the
  send) is read and the URL whose hash the token names is the target. A URL not in the
  list, a send without a list, a forged or damaged token: the 404 page, never a
  redirect somewhere else (no open redirect even for someone holding the secret key).
  Records an ``email_click``;
* ``/n/u/{token}``: unsubscribing; the token holds the lead. ``GET`` shows a page with a
  confirm button (a link scanner fetching it changes nothing); ``POST`` with the form
  field ``List-Unsubscribe=One-Click`` (RFC 8058: what a mail client's one-click
  unsubscribe sends, and what the page's button sends) unsubscribes at once and answers
  200, no redirect.

Tokens do not expire: an unsubscribe link in a mail from last year must still work.

Opens and clicks go through the activities ingest path (so they re-score the lead and
may make it an MQL again, which ends its enrollment) with ``properties`` ``sequence``,
``enrollment_id``, ``step``, ``send_id`` and, for a click, ``url``. They are idempotent
per (send, kind, URL) within :data:`ENGAGEMENT_WINDOW`: the idempotency key names the
10-minute window, so a mail scanner or a client prefetching every link and image as the
message arrives, or a person reloading, counts once, while a real second visit later
counts again ("clicked pricing twice"). A ``HEAD`` request records nothing (scanners
probe with it).

Unsubscribing (:func:`unsubscribe_lead_in`), in one transaction: ``leads.unsubscribed_at``
is set, the address goes on the suppression list (reason ``unsubscribe``), an
``unsubscribe`` activity is recorded and every active enrollment of the lead ends with
``unsubscribe``. It lasts until the person opts in again: a later capture with
``consent=true`` *and* a lawful basis clears ``unsubscribed_at`` and the suppression
(:mod:`baton.services.leads`, the capture path); nothing else does.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from itsdangerous import BadData, URLSafeSerializer
from sqlalchemy import select
from sqlalchemy.engine import Connection

from baton.config import Settings
from baton.domain.access import Action, Principal, system
from baton.domain.activities import ActivityCreate, ActivityType
from baton.domain.errors import NotFound
from baton.services.access import allowed
from baton.services.activities import ingest_validated_in
from baton.services.context import Context
from baton.services.unsubscribes import address_key, survivor_row, unsubscribe_in
from baton.store.tables import (
    activities,
    nurture_enrollments,
    nurture_sends,
    suppressions,
)

log = logging.getLogger(__name__)

LINK_PREFIX = "/n/"
OPEN_SALT = "baton-nurture-open"
CLICK_SALT = "baton-nurture-click"
UNSUBSCRIBE_SALT = "baton-nurture-unsubscribe"
ENGAGEMENT_WINDOW = timedelta(minutes=10)
"""Opens of one send, or clicks of one URL of one send, within one such window count once."""
ONE_CLICK = ("List-Unsubscribe", "One-Click")
"""The form field of an RFC 8058 one-click unsubscribe (``List-Unsubscribe=One-Click``)."""
MAX_ID = 2**63 - 1

LINK_ACTOR = system("email link")
"""Who acts when a signed link is followed: the link is the credential (no person)."""

PIXEL_GIF = (
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00"
    b"\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)
"""A transparent 1×1 GIF (43 bytes)."""


# ---------------------------------------------------------------- building links


def _serializer(settings: Settings, salt: str) -> URLSafeSerializer:
    return URLSafeSerializer(settings.secret_key, salt=salt)


def _base(settings: Settings) -> str:
    return settings.public_url.rstrip("/")


def url_hash(url: str) -> str:
    """A short fingerprint of a URL (72 bits of SHA-256, URL-safe): what a click token
    carries instead of the URL itself."""
    digest = hashlib.sha256(url.encode("utf-8")).digest()[:9]
    return base64.urlsafe_b64encode(digest).decode("ascii")


def open_url(settings: Settings, enrollment_id: int, step: int) -> str:
    """The open pixel's address for one step of one enrollment."""
    token = _serializer(settings, OPEN_SALT).dumps([enrollment_id, step])
    return f"{_base(settings)}{LINK_PREFIX}o/{token}"


def click_url(settings: Settings, enrollment_id: int, step: int, url: str) -> str:
    """The signed click link standing for ``url`` in one step's email. Baton's own
    ``/n/`` links (the unsubscribe link) are returned unchanged."""
    if url.startswith(_base(settings) + LINK_PREFIX):
        return url
    token = _serializer(settings, CLICK_SALT).dumps([enrollment_id, step, url_hash(url)])
    return f"{_base(settings)}{LINK_PREFIX}c/{token}"


def unsubscribe_url(settings: Settings, lead_id: int) -> str:
    """The lead's unsubscribe link (the page, and the RFC 8058 one-click POST target)."""
    token = _serializer(settings, UNSUBSCRIBE_SALT).dumps([lead_id])
    return f"{_base(settings)}{LINK_PREFIX}u/{token}"


def link_hook(settings: Settings, enrollment_id: int, step: int) -> Callable[[str], str]:
    """The renderer's ``link`` callback for one step of one enrollment."""
    return lambda url: click_url(settings, enrollment_id, step, url)


def open_pixel_html(settings: Settings, enrollment_id: int, step: int) -> str:
    """The ``<img>`` to put at the end of the html part."""
    src = open_url(settings, enrollment_id, step)
    return (
        f'<img src="{src}" width="1" height="1" alt="" '
        'style="display:block;border:0;width:1px;height:1px">'
    )


def with_open_pixel(html: str, pixel: str) -> str:
    """``html`` with ``pixel`` just before ``</body>`` (or at the end)."""
    at = html.lower().rfind("</body>")
    return html + pixel if at < 0 else html[:at] + pixel + html[at:]


def list_unsubscribe_headers(settings: Settings, lead_id: int) -> dict[str, str]:
    """``List-Unsubscribe`` (RFC 2369) with the one-click ``List-Unsubscribe-Post``
    (RFC 8058) for a nurture email to this lead."""
    return {
        "List-Unsubscribe": f"<{unsubscribe_url(settings, lead_id)}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }


# ---------------------------------------------------------------- reading tokens


def _ids(value: Any, count: int) -> list[int] | None:
    if not isinstance(value, list) or len(value) < count:
        return None
    head = value[:count]
    if not all(type(v) is int and 0 <= v <= MAX_ID for v in head):
        return None
    return head


def _load(settings: Settings, salt: str, token: str) -> Any:
    if not token or len(token) > 400:
        return None
    try:
        return _serializer(settings, salt).loads(token)
    except (BadData, ValueError, UnicodeError):
        return None


def read_open_token(settings: Settings, token: str) -> tuple[int, int] | None:
    """(enrollment id, step) of a genuine open token, else ``None``."""
    ids = _ids(_load(settings, OPEN_SALT, token), 2)
    return None if ids is None else (ids[0], ids[1])


def read_click_token(settings: Settings, token: str) -> tuple[int, int, str] | None:
    """(enrollment id, step, URL hash) of a genuine click token, else ``None``."""
    value = _load(settings, CLICK_SALT, token)
    ids = _ids(value, 2)
    if ids is None or len(value) != 3 or not isinstance(value[2], str):
        return None
    return ids[0], ids[1], value[2]


def read_unsubscribe_token(settings: Settings, token: str) -> int | None:
    """The lead id of a genuine unsubscribe token, else ``None``."""
    ids = _ids(_load(settings, UNSUBSCRIBE_SALT, token), 1)
    return None if ids is None else ids[0]


# ---------------------------------------------------------------- opens and clicks

NOT_A_LINK = "this link is not valid (it may have been copied incompletely)"


@dataclass(frozen=True)
class SendRef:
    """The send log row a link names, with its sequence."""

    send_id: int
    enrollment_id: int
    step: int
    lead_id: int
    sequence: str
    links: Sequence[str]


def _send_of(connection: Connection, enrollment_id: int, step: int) -> SendRef | None:
    row = connection.execute(
        select(
            nurture_sends.c.id,
            nurture_sends.c.lead_id,
            nurture_sends.c.links,
            nurture_enrollments.c.sequence,
        )
        .join(nurture_enrollments, nurture_enrollments.c.id == nurture_sends.c.enrollment_id)
        .where(nurture_sends.c.enrollment_id == enrollment_id, nurture_sends.c.step == step)
    ).first()
    if row is None:
        return None
    links = row.links if isinstance(row.links, list) else []
    return SendRef(
        send_id=int(row.id),
        enrollment_id=enrollment_id,
        step=step,
        lead_id=int(row.lead_id),
        sequence=str(row.sequence),
        links=[u for u in links if isinstance(u, str)],
    )


def _window(now: datetime) -> int:
    return int(now.timestamp() // ENGAGEMENT_WINDOW.total_seconds())


def _engagement_key(send: SendRef, kind: ActivityType, now: datetime, url: str | None) -> str:
    target = "" if url is None else url_hash(url)
    return f"nurture:{kind.value}:{send.send_id}:{target}:{_window(now)}"


def _counted_already(
    ctx: Context, send: SendRef, kind: ActivityType, now: datetime, url: str | None = None
) -> bool:
    """Whether this window already has this open or click: a repeat (a scanner, a
    reload, someone hammering a link from their own email) costs one indexed read,
    never a write transaction (the single SQLite writer is not theirs to hold)."""
    key = _engagement_key(send, kind, now, url)
    with ctx.read() as connection:
        found = connection.execute(
            select(activities.c.id).where(activities.c.idempotency_key == key)
        ).first()
    return found is not None


def _record_in(
    connection: Connection,
    send: SendRef,
    kind: ActivityType,
    *,
    now: datetime,
    actor: Principal,
    url: str | None = None,
) -> bool:
    """Record an open or a click of ``send`` (scored); ``False`` when this window already
    has it."""
    key = _engagement_key(send, kind, now, url)
    properties: dict[str, Any] = {
        "sequence": send.sequence,
        "enrollment_id": send.enrollment_id,
        "step": send.step,
        "send_id": send.send_id,
    }
    if url is not None:
        properties["url"] = url[:2000]
    event = ActivityCreate(
        lead_id=send.lead_id,
        type=kind,
        occurred_at=now,
        properties=properties,
        idempotency_key=key,
    )
    report = ingest_validated_in(connection, [(0, event)], actor=actor, now=now)
    return report.stored > 0


def open_target(ctx: Context, token: str) -> SendRef:
    """The send an open token names (:class:`NotFound` unless genuine and held)."""
    found = read_open_token(ctx.settings, token)
    if found is None:
        raise NotFound(NOT_A_LINK)
    with ctx.read() as connection:
        send = _send_of(connection, *found)
    if send is None:
        raise NotFound(NOT_A_LINK)
    return send


def record_open(ctx: Context, token: str, *, actor: Principal = LINK_ACTOR) -> bool:
    """The open pixel was fetched: record ``email_open`` (once per send and window).
    Raises :class:`NotFound` for a token Baton did not make or a send it does not hold;
    a failure to record (the database busy) is logged, the image is served anyway."""
    allowed(actor, Action.INGEST_ACTIVITY)
    send = open_target(ctx, token)
    now = ctx.clock.now()
    try:
        if _counted_already(ctx, send, ActivityType.EMAIL_OPEN, now):
            return False
        with ctx.write() as connection:
            return _record_in(connection, send, ActivityType.EMAIL_OPEN, now=now, actor=actor)
    except Exception:  # the image is served whatever happens to the count
        log.exception("open of send %s not recorded", send.send_id)
        return False


def click_target(ctx: Context, token: str) -> tuple[SendRef, str]:
    """The send and the URL a click token stands for; :class:`NotFound` unless the token
    is genuine AND the URL is one of that send's rendered links."""
    found = read_click_token(ctx.settings, token)
    if found is None:
        raise NotFound(NOT_A_LINK)
    enrollment_id, step, wanted = found
    with ctx.read() as connection:
        send = _send_of(connection, enrollment_id, step)
    if send is None:
        raise NotFound(NOT_A_LINK)
    for url in send.links:
        if hmac.compare_digest(url_hash(url).encode(), wanted.encode()) and url.lower().startswith(
            ("https://", "http://")
        ):
            return send, url
    raise NotFound(NOT_A_LINK)


def follow_click(ctx: Context, token: str, *, actor: Principal = LINK_ACTOR) -> str:
    """The URL to redirect to (see :func:`click_target`), after recording the click. A
    failure to record (the database busy) is logged and never keeps the person from
    their page."""
    allowed(actor, Action.INGEST_ACTIVITY)
    send, url = click_target(ctx, token)
    now = ctx.clock.now()
    try:
        if not _counted_already(ctx, send, ActivityType.EMAIL_CLICK, now, url):
            with ctx.write() as connection:
                _record_in(
                    connection, send, ActivityType.EMAIL_CLICK, now=now, actor=actor, url=url
                )
    except Exception:  # the redirect matters more than the count
        log.exception("click of send %s not recorded", send.send_id)
    return url


# ---------------------------------------------------------------- unsubscribing


@dataclass(frozen=True)
class UnsubscribeView:
    """What the unsubscribe page shows: the address (masked) and whether it is done."""

    lead_id: int
    address: str | None
    unsubscribed: bool
    changed: bool = False


def mask_address(address: str | None) -> str | None:
    """``d***@northwind.com``: enough for a person to recognise their address, not
    enough for someone holding a forwarded mail to learn it."""
    if not address or "@" not in address:
        return None
    local, _, domain = address.rpartition("@")
    return f"{local[:1]}***@{domain}"


def _lead_of_token(ctx: Context, token: str) -> int:
    lead_id = read_unsubscribe_token(ctx.settings, token)
    if lead_id is None:
        raise NotFound(NOT_A_LINK)
    return lead_id


def unsubscribe_view(ctx: Context, token: str) -> UnsubscribeView:
    """The page's content for an unsubscribe token (:class:`NotFound` if not genuine)."""
    lead_id = _lead_of_token(ctx, token)
    with ctx.read() as connection:
        row = survivor_row(connection, lead_id, lock=False)
    if row is None:
        raise NotFound(NOT_A_LINK)
    return UnsubscribeView(
        lead_id=int(row.id),
        address=mask_address(row.email),
        unsubscribed=row.unsubscribed_at is not None,
    )


def unsubscribe(
    ctx: Context, token: str, *, source: str = "link", actor: Principal = LINK_ACTOR
) -> UnsubscribeView:
    """Unsubscribe the lead the token names, at once (see :func:`unsubscribe_lead_in`)."""
    allowed(actor, Action.INGEST_ACTIVITY)
    lead_id = _lead_of_token(ctx, token)
    with ctx.read() as connection:
        row = survivor_row(connection, lead_id, lock=False)
        key = address_key(row.email) if row is not None else None
        done = (
            row is not None
            and row.unsubscribed_at is not None
            and (
                key is None
                or connection.execute(
                    select(suppressions.c.id).where(suppressions.c.email_key == key)
                ).first()
                is not None
            )
        )
    if done:  # a repeat (a client retrying, someone replaying the POST): no write
        assert row is not None
        return UnsubscribeView(
            lead_id=int(row.id), address=mask_address(row.email), unsubscribed=True
        )
    with ctx.write() as connection:
        return unsubscribe_lead_in(
            connection, lead_id, now=ctx.clock.now(), actor=actor, source=source
        )


def unsubscribe_lead_in(
    connection: Connection,
    lead_id: int,
    *,
    now: datetime,
    actor: Principal,
    source: str,
) -> UnsubscribeView:
    """In the caller's transaction: the lead (or the lead it was merged into) gets no
    more marketing email: ``unsubscribed_at``, a suppression of its address (reason
    ``unsubscribe``), an ``unsubscribe`` activity and its active enrollments ended with
    ``unsubscribe``. Doing it again changes nothing (``changed`` says whether this call
    did). The caller checked that ``actor`` may."""
    row = survivor_row(connection, lead_id, lock=True)
    if row is None:
        raise NotFound(NOT_A_LINK)
    survivor = int(row.id)
    changed, ended = unsubscribe_in(connection, row, now=now, actor=actor, source=source)
    if changed:
        ingest_validated_in(
            connection,
            [
                (
                    0,
                    ActivityCreate(
                        lead_id=survivor,
                        type=ActivityType.UNSUBSCRIBE,
                        occurred_at=now,
                        properties={"source": source[:200], "enrollments_ended": len(ended)},
                        idempotency_key=f"nurture:unsubscribe:{survivor}:{now.isoformat()}",
                    ),
                )
            ],
            actor=actor,
            now=now,
        )
        log.info("lead %s unsubscribed (%s); %d enrollment(s) ended", survivor, source, len(ended))
    return UnsubscribeView(
        lead_id=survivor, address=mask_address(row.email), unsubscribed=True, changed=changed
    )
