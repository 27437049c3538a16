"""Email into Baton: the use cases behind ``baton inbound-smtp``.

A message accepted by the SMTP listener (:mod:`baton.inbound_smtp`) is one request to
an intake endpoint of kind ``email``, handed to the intake service exactly like a
request to ``/hooks/{name}``: stored raw and committed first (the intake log, so
``baton intake log`` and ``baton intake retry`` work for mail too), then read by
:mod:`baton.integrations.email` and processed, a reply threaded and a bounce recorded
by :mod:`baton.services.email_threads`.

What the sending server is told follows from that order. ``250`` only once the raw
message is committed; a message the adapter cannot read is still ``250`` (it is in the
log and a fixed mapping re-reads it; refusing it would bounce a person's email back to
them). A database failure before the commit is ``451`` (try again later: the sending
server keeps the message and retries, so nothing is lost); a throttled endpoint is
``451`` too, an oversized message ``552``. Baton never sends anything back to the
sender, so no reply of its own can start a mail loop.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from baton.domain.access import Action, Principal
from baton.domain.errors import Conflict
from baton.domain.intake import Delivery
from baton.services.access import allowed
from baton.services.context import Context

log = logging.getLogger(__name__)

DEFAULT_MAX_MESSAGE_BYTES = 10 * 1024 * 1024
"""Largest message a new email endpoint takes (SMTP ``SIZE``; more is refused with
552): a message with a few office attachments fits."""
DEFAULT_RATE_PER_MINUTE = 600
"""Messages a minute a new email endpoint takes before answering 451 (try later)."""
EMAIL_SOURCE = "email"
CONTENT_TYPE = "message/rfc822"


@dataclass(frozen=True)
class EmailEndpoint:
    """The intake endpoint a listener delivers to."""

    name: str
    max_bytes: int
    created: bool


@dataclass(frozen=True)
class SmtpReply:
    """What the listener answers to ``DATA``: a code, an enhanced status and text."""

    code: int
    text: str
    request_id: int | None = None

    @property
    def line(self) -> str:
        return f"{self.code} {self.text}"


def ensure_email_endpoint(
    ctx: Context,
    name: str,
    *,
    actor: Principal,
    max_bytes: int | None = None,
    source: str = EMAIL_SOURCE,
) -> EmailEndpoint:
    """The email endpoint ``name``, created (kind ``email``, source ``source``) when
    missing. An endpoint of that name of another kind, or a deactivated one, is a
    :class:`Conflict`: the listener never reroutes mail behind the operator's back."""
    from baton.services import intake as intake_service

    allowed(actor, Action.MANAGE_INTAKE)
    with ctx.read() as connection:
        row = intake_service.endpoint_in(connection, name=name)
    if row is None:
        data: dict[str, Any] = {
            "name": name,
            "kind": "email",
            "source": source,
            "max_body_bytes": max_bytes or DEFAULT_MAX_MESSAGE_BYTES,
            "rate_per_minute": DEFAULT_RATE_PER_MINUTE,
        }
        intake_service.add_endpoint(ctx, data, actor=actor)
        log.info("%s created the email endpoint %s", actor.name, name)
        return EmailEndpoint(name=name, max_bytes=int(data["max_body_bytes"]), created=True)
    if row.kind != "email":
        raise Conflict(
            f"the intake endpoint {name!r} reads {row.kind} requests, not email; "
            "choose another --endpoint"
        )
    if not row.active:
        raise Conflict(
            f"the intake endpoint {name!r} is deactivated; activate it first "
            f"(baton intake update {name} --active)"
        )
    limit = int(row.max_body_bytes)
    return EmailEndpoint(
        name=name, max_bytes=min(limit, max_bytes) if max_bytes else limit, created=False
    )


def receive_message(
    ctx: Context,
    endpoint: str,
    content: bytes,
    *,
    mail_from: str,
    rcpt_tos: Sequence[str],
    peer: str | None = None,
) -> SmtpReply:
    """Store one message raw (committed), then read and process it; the SMTP answer.

    Raises nothing: a database error before the commit is a ``451`` (logged), so the
    sending server tries again."""
    from baton.services import intake as intake_service

    delivery = Delivery(
        body=content,
        content_type=CONTENT_TYPE,
        headers={
            "x-envelope-from": mail_from or "<>",
            "x-envelope-to": ", ".join(rcpt_tos),
            **({"x-peer": peer} if peer else {}),
        },
        query={},
        received_at=ctx.clock.now(),
        method="SMTP",
        url=f"smtp:{endpoint}",
    )
    try:
        outcome = intake_service.receive(ctx, endpoint, delivery, remote_address=peer)
    except Exception:
        log.exception("could not store a message from %s for %s", mail_from or "<>", endpoint)
        return SmtpReply(451, "4.3.0 Cannot store the message now; try again later")
    return smtp_reply(outcome.status, outcome.request_id, retry_after=outcome.retry_after)


def smtp_reply(status: int, request_id: int | None, *, retry_after: int | None = None) -> SmtpReply:
    """The SMTP answer to the intake service's HTTP-style outcome."""
    if status == 413:
        return SmtpReply(552, "5.3.4 Message too big for this address")
    if status == 429:
        wait = f" in {retry_after} s" if retry_after else " later"
        return SmtpReply(451, f"4.7.1 Too many messages; try again{wait}")
    if request_id is None:  # not stored: endpoint gone or deactivated meanwhile
        return SmtpReply(451, "4.3.2 Not accepting mail for this address now; try later")
    # Stored: read or not, the message is in the intake log and is never lost.
    return SmtpReply(250, f"2.0.0 Stored as intake request {request_id}", request_id)
