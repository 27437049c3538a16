"""Delivering the outbox: one :class:`Courier` per channel (email, webhooks, chat:
Slack and Microsoft Teams incoming webhooks, see :mod:`baton.services.chat`).

How a message goes out exactly once when nothing crashes
    A courier *claims* a few due rows in a short transaction: it leases them
    (``claimed_until = now + BATON_OUTBOX_LEASE_SECONDS``) under a claim token of its
    own. Before each send it *fences*: one short transaction that counts the attempt
    and renews the lease of the row and of the rest of its batch, but only where the
    claim token is still its own. A row whose token changed (the lease ran out and
    another worker claimed it) is not sent. The lease is at least eight SMTP timeouts
    long (:class:`~baton.config.Settings` refuses less), so a send that started under
    a fresh lease ends before the lease can run out, and no other worker can start the
    same message meanwhile, however slow the mail server is. The claim itself is sized
    to what fits in half the lease at the pace sends have been taking, so one worker
    never sits on messages the others could send.

    What stays possible is a crash (``kill -9``, power loss) after the receiver took a
    message and before the result was committed: the lease then expires and the
    message is sent again. Every email carries ``Message-ID: <outbox-N.KEY@baton>`` and
    every webhook ``X-Baton-Delivery: N``, the same on every attempt, so a receiver can
    drop the repeat.

Why a Message-ID carries a key
    ``KEY`` is the row's ``message_key``, 96 random bits stored with the row when it is
    written (:func:`message_id_of`). Replies and bounces name the Message-ID they answer;
    :mod:`baton.services.email_threads` believes one only when its key matches the row,
    so nobody can thread a forged hand-raise onto a lead or fake a bounce by guessing
    ``<outbox-N@baton>``. (A stored random key rather than an HMAC: the inbound path needs
    no secret, and replies to old mail keep threading after the secret key is rotated.)

Why a dead receiver never delays anything else
    Each channel has its own courier (the worker runs each in a lane of its own, see
    :mod:`baton.services.worker`), so email and webhooks never wait for each other.
    When a destination cannot be reached at all (the mail server refuses connections
    or times out; a webhook endpoint does not answer), the courier *pauses* that
    destination for ``BATON_OUTBOX_PAUSE_SECONDS`` (doubling while it stays down, up to
    10 minutes), hands the rest of its claim back untouched (no attempt counted) and
    goes on with other destinations; the first message due after the pause is the
    probe. A backlog of 5,000 emails for a dead server therefore costs one connection
    attempt per pause, not 5,000. Within a channel, messages never tried yet go before
    retries, so a failing series never holds up a fresh handoff's notification.

Failures are visible: the first failed attempt of a message is logged at once
(warning), later ones at info, giving up as an error; a pause and its end are logged.
Admins list, filter and retry the outbox with :mod:`baton.services.outbox`.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, Literal

import httpx
from sqlalchemy import bindparam, insert, or_, select, update
from sqlalchemy.engine import Connection

from baton.domain.chat import ChatMessage, chat_payload
from baton.domain.privacy import suppression_keys
from baton.notify.chat import post_chat
from baton.notify.egress import webhook_client
from baton.notify.email import DeliveryError, OutgoingEmail, SmtpConfig, send_email
from baton.notify.render import render_email, who_of
from baton.notify.webhooks import MAX_ATTEMPTS, next_attempt_delay, post_webhook
from baton.redact import remember
from baton.services.context import Context
from baton.services.packet import HandoffPacket, handoff_packet
from baton.services.queries import lock_lead
from baton.services.routing import SYSTEM, log_event
from baton.services.scoring import LeadScore
from baton.store.tables import (
    chat_channels,
    deliveries,
    handoffs,
    leads,
    nurture_sends,
    outbox,
    reps,
    suppressions,
    transitions,
    webhook_endpoints,
)

log = logging.getLogger("baton.worker")

Channel = Literal["email", "webhook", "chat"]
CHANNELS: tuple[Channel, ...] = ("webhook", "email", "chat")
MAX_PAUSE = timedelta(minutes=10)
SMTP_UNAVAILABLE = 421
"""The reply of a mail server that is shutting down or overloaded: the server, not the
message, is the problem."""


@dataclass(frozen=True)
class Claimed:
    """An outbox row this courier holds, as it was claimed: ``attempts`` made so far
    (the next is number ``attempts + 1``), ``attempts_base`` where the current series
    began (an admin's retry starts a new one)."""

    id: int
    topic: str
    handoff_id: int | None
    endpoint_id: int | None
    recipient: str
    payload: dict[str, Any]
    attempts: int
    attempts_base: int
    chat_channel_id: int | None = None
    message_key: str | None = None

    @property
    def destination(self) -> str:
        """What a pause applies to: the mail server, one webhook endpoint, or one chat
        channel."""
        if self.chat_channel_id is not None:
            return f"chat channel {self.chat_channel_id}"
        return "email" if self.endpoint_id is None else f"webhook endpoint {self.endpoint_id}"


@dataclass
class Pause:
    """A destination this courier does not try until ``until``."""

    until: datetime
    length: timedelta
    why: str


@dataclass
class Outcome:
    """One attempt's result, as the courier records it."""

    ok: bool
    error: str | None = None
    retryable: bool = False
    status_code: int | None = None
    retry_after: float | None = None
    unreachable: bool = False
    """The destination itself could not be reached (pause it, not just this message)."""
    mailbox_gone: bool = False
    """The mail server refused the recipient for good (550/551/553 at RCPT): a hard
    bounce learnt at send time, not from a bounce notice."""


@dataclass
class Courier:
    """Sends the due messages of one channel (see the module docstring).

    Keep one per channel for the life of a worker: it remembers paused destinations
    and how long sends take. ``smtp`` (email) and ``client`` (webhooks) default to the
    settings' mail server and to a client that only reaches public addresses
    (:func:`~baton.notify.egress.guarded_client`); a client passed in is used as it is.
    """

    ctx: Context
    channel: Channel
    smtp: SmtpConfig | None = None
    client: httpx.Client | None = None
    pauses: dict[str, Pause] = field(default_factory=dict)
    seconds_per_send: float | None = None
    _own_client: httpx.Client | None = field(default=None, init=False, repr=False)
    _token: str = field(default="", init=False, repr=False)
    _batch: list[Claimed] = field(default_factory=list, init=False, repr=False)
    _unrecorded: tuple[Claimed, Outcome, datetime, float] | None = field(
        default=None, init=False, repr=False
    )

    def __enter__(self) -> Courier:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._own_client is not None:
            self._own_client.close()
            self._own_client = None

    # --- one pass ----------------------------------------------------------------------

    def deliver(self) -> tuple[int, int]:
        """Claim a batch of due messages and send them; returns (sent, failed).

        When the database fails in the middle (the error propagates to the caller),
        what was already sent is remembered, with the claim: the next call records
        those results first (nothing is sent twice for a database blip) and hands the
        untried rest back."""
        self._settle()
        batch = self._claim()
        self._batch = batch
        sent = failed = 0
        for index, item in enumerate(batch):
            key = item.destination
            if self._paused(key):
                continue  # handed back below, untried
            if not self._fence(batch, index):
                log.debug("outbox %s: claimed by another worker meanwhile; not sent", item.id)
                continue
            started, timer = self.ctx.clock.now(), time.perf_counter()
            outcome = self._send(item)
            self._learn(self.ctx.clock.now() - started)
            self._unrecorded = (item, outcome, started, (time.perf_counter() - timer) * 1000)
            self._finish(*self._unrecorded)
            self._unrecorded = None
            if outcome.ok:
                sent += 1
                self._reachable(key)
            else:
                failed += 1
                if outcome.unreachable:
                    self._pause(key, outcome.error or "unreachable")
        self._hand_back(batch)
        self._batch = []
        return sent, failed

    def _settle(self) -> None:
        """Finish what a pass interrupted by the database left: record the result of
        a send that happened, release the claim on the rest."""
        if self._unrecorded is not None:
            self._finish(*self._unrecorded)
            self._unrecorded = None
        if self._batch:
            self._hand_back(self._batch)
            self._batch = []

    # --- claiming and fencing ----------------------------------------------------------

    @property
    def _lease(self) -> timedelta:
        return timedelta(seconds=self.ctx.settings.outbox_lease_seconds)

    def claim_size(self) -> int:
        """How many messages to claim: what can be sent in half the lease at the pace
        sends have taken so far (all of ``BATON_OUTBOX_CLAIM_SIZE`` before the first)."""
        most = self.ctx.settings.outbox_claim_size
        if not self.seconds_per_send:
            return most
        fits = int(self._lease.total_seconds() / 2 / self.seconds_per_send)
        return max(1, min(most, fits))

    def _learn(self, took: timedelta) -> None:
        seconds = max(took.total_seconds(), 0.0)
        previous = self.seconds_per_send
        # Quick to learn that sends got slow, slower to forget it.
        weight = 0.5 if previous is None or seconds > previous else 0.2
        self.seconds_per_send = (
            seconds if previous is None else previous + weight * (seconds - previous)
        )

    def _claim(self) -> list[Claimed]:
        now = self.ctx.clock.now()
        skipped = [key for key, pause in self.pauses.items() if pause.until > now]
        if self.channel == "email" and skipped:
            return []
        paused = [int(key.rsplit(" ", 1)[1]) for key in skipped]
        if not anything_due(self.ctx, self.channel, now, paused=paused):
            return []
        size = self.claim_size()
        token = uuid.uuid4().hex
        due = select(outbox).where(*_DUE).order_by(outbox.c.next_attempt_at, outbox.c.id)
        if paused:
            due = due.where(_destination_of(self.channel).not_in(paused))
        at = {"channel": self.channel, "now": now}
        with self.ctx.write() as connection:
            # Messages never tried (in this series) first: a failing series waits.
            fresh = due.where(outbox.c.attempts == outbox.c.attempts_base)
            rows = list(_locked(connection, fresh.limit(size), at))
            if len(rows) < size:
                retries = due.where(outbox.c.attempts > outbox.c.attempts_base)
                rows += _locked(connection, retries.limit(size - len(rows)), at)
            if not rows:
                return []
            connection.execute(
                update(outbox)
                .where(outbox.c.id.in_([r["id"] for r in rows]))
                .values(claimed_until=now + self._lease, claim_token=token)
            )
        self._token = token
        return [
            Claimed(
                id=int(r["id"]),
                topic=r["topic"],
                handoff_id=r["handoff_id"],
                endpoint_id=r["endpoint_id"],
                recipient=r["recipient"],
                payload=r["payload"],
                attempts=int(r["attempts"]),
                attempts_base=int(r["attempts_base"]),
                chat_channel_id=r["chat_channel_id"],
                message_key=r["message_key"],
            )
            for r in rows
        ]

    def _fence(self, batch: list[Claimed], index: int) -> bool:
        """Before sending ``batch[index]``: count its attempt and renew the lease of it
        and of the rest of the batch, where the claim is still this courier's. True
        when ``batch[index]`` is still ours to send."""
        item = batch[index]
        now = self.ctx.clock.now()
        with self.ctx.write() as connection:
            mine = connection.execute(
                update(outbox)
                .where(
                    outbox.c.id == item.id,
                    outbox.c.claim_token == self._token,
                    outbox.c.status == "pending",
                )
                .values(attempts=outbox.c.attempts + 1, claimed_until=now + self._lease)
            ).rowcount
            rest = [b.id for b in batch[index + 1 :]]
            if mine and rest:
                connection.execute(
                    update(outbox)
                    .where(outbox.c.id.in_(rest), outbox.c.claim_token == self._token)
                    .values(claimed_until=now + self._lease)
                )
        return bool(mine)

    def _hand_back(self, batch: list[Claimed]) -> None:
        """Release what this pass claimed and did not try (a paused destination), so
        it is due again at once for any worker, with no attempt counted. (What was
        tried no longer carries the token: :meth:`_finish` cleared it.)"""
        if not batch:
            return
        with self.ctx.write() as connection:
            connection.execute(
                update(outbox)
                .where(
                    outbox.c.id.in_([b.id for b in batch]),
                    outbox.c.claim_token == self._token,
                    outbox.c.status == "pending",
                )
                .values(claimed_until=None, claim_token=None)
            )

    # --- sending -----------------------------------------------------------------------

    def _send(self, item: Claimed) -> Outcome:
        try:
            if self.channel == "email":
                return self._send_email(item)
            if self.channel == "chat":
                return self._send_chat(item)
            return self._send_webhook(item)
        except Exception as exc:  # a bug must not stop the worker: logged and retried
            log.exception("outbox %s: sending failed inside Baton", item.id)
            return Outcome(ok=False, error=f"internal error: {type(exc).__name__}", retryable=True)

    def _send_email(self, item: Claimed) -> Outcome:
        if item.topic == "nurture":
            return self._send_nurture(item)
        if item.handoff_id is None:
            return Outcome(ok=False, error="an email without a handoff has nothing to say")
        # In the zone of whoever receives it: the rep, or the manager told about them.
        packet = handoff_packet(
            self.ctx, item.handoff_id, actor=SYSTEM, reader_email=item.recipient
        )
        rendered = render_email(
            item.topic, packet, data=item.payload, base_url=self.ctx.settings.public_url
        )
        smtp = self.smtp or SmtpConfig.from_settings(self.ctx.settings)
        try:
            send_email(
                smtp,
                OutgoingEmail(
                    to=(item.recipient,),
                    subject=rendered.subject,
                    text=rendered.text,
                    html=rendered.html,
                    message_id=message_id_of(item.id, item.message_key),
                    headers={
                        "X-Baton-Handoff": str(item.handoff_id),
                        "X-Baton-Topic": item.topic,
                    },
                ),
                now=self.ctx.clock.now(),
            )
        except DeliveryError as exc:
            return Outcome(
                ok=False,
                error=str(exc),
                retryable=not exc.permanent,
                status_code=exc.smtp_code,
                unreachable=not exc.permanent
                and not exc.refused
                and exc.smtp_code in (None, SMTP_UNAVAILABLE),
            )
        return Outcome(ok=True, status_code=250)

    def _send_nurture(self, item: Claimed) -> Outcome:
        """A nurture step (:mod:`baton.services.nurture_send`): rendered when it was
        planned; the payload carries subject, text, html and the ``List-Unsubscribe``
        headers (RFC 8058 one-click).

        The person's state is read again right before the SMTP conversation: a step
        planned before an unsubscribe, a suppression, a hard bounce, a withdrawn
        consent or an erasure (the message may have waited behind the throttle or an
        SMTP outage for hours) is never sent; it fails at once, not retried."""
        refusal = self._nurture_refusal(item)
        if refusal is not None:
            # Routine (counted as failed in the pass summary): per item at debug.
            log.debug("outbox %s: nurture step not sent: %s", item.id, refusal)
            return Outcome(ok=False, error=f"not sent: {refusal}", retryable=False)
        payload = item.payload
        smtp = self.smtp or SmtpConfig.from_settings(self.ctx.settings)
        try:
            send_email(
                smtp,
                OutgoingEmail(
                    to=(item.recipient,),
                    subject=str(payload["subject"]),
                    text=str(payload["text"]),
                    html=payload.get("html"),
                    message_id=message_id_of(item.id, item.message_key),
                    headers={
                        **{str(k): str(v) for k, v in (payload.get("headers") or {}).items()},
                        "X-Baton-Topic": item.topic,
                    },
                ),
                now=self.ctx.clock.now(),
            )
        except DeliveryError as exc:
            outcome = _email_failure(exc)
            outcome.mailbox_gone = exc.permanent and any(
                code in MAILBOX_GONE for code, _ in (exc.refused or {}).values()
            )
            return outcome
        return Outcome(ok=True, status_code=250)

    def _nurture_refusal(self, item: Claimed) -> str | None:
        """Why this nurture message may not go out now, or None."""
        with self.ctx.read() as connection:
            lead = connection.execute(
                select(
                    leads.c.email,
                    leads.c.email_key,
                    leads.c.unsubscribed_at,
                    leads.c.email_status,
                    leads.c.consent,
                    leads.c.consent_basis,
                )
                .select_from(nurture_sends.join(leads, leads.c.id == nurture_sends.c.lead_id))
                .where(nurture_sends.c.outbox_id == item.id)
            ).first()
            if lead is None:
                return "its send log row or lead is gone (erased)"
            if lead.unsubscribed_at is not None:
                return "the person unsubscribed after the step was planned"
            if lead.email_status == "hard_bounce":
                return "the address hard-bounced after the step was planned"
            if not lead.consent or not lead.consent_basis:
                return "the lead has no consent with a lawful basis any more"
            keys = {
                key
                for address in (item.recipient, lead.email_key, lead.email)
                if address
                for key in suppression_keys(str(address))
            }
            suppressed = connection.execute(
                select(suppressions.c.reason).where(suppressions.c.email_key.in_(sorted(keys)))
            ).first()
        if suppressed is not None:
            return f"the address is suppressed ({suppressed.reason})"
        if not isinstance(item.payload, dict) or "subject" not in item.payload:
            return "the message was emptied (erased)"
        return None

    def _http(self) -> httpx.Client:
        if self.client is not None:
            return self.client
        if self._own_client is None:
            self._own_client = webhook_client(self.ctx.settings)
        return self._own_client

    def _send_webhook(self, item: Claimed) -> Outcome:
        with self.ctx.read() as connection:
            endpoint = connection.execute(
                select(webhook_endpoints.c.secret, webhook_endpoints.c.active).where(
                    webhook_endpoints.c.id == item.endpoint_id
                )
            ).first()
        if endpoint is None or not endpoint.active:
            return Outcome(ok=False, error="endpoint removed or disabled")
        body = json.dumps({"id": item.id, **item.payload}, separators=(",", ":")).encode()
        result = post_webhook(
            item.recipient,
            endpoint.secret,
            event=item.topic,
            body=body,
            delivery_id=str(item.id),
            timestamp=int(self.ctx.clock.now().timestamp()),
            timeout=self.ctx.settings.webhook_timeout_seconds,
            client=self._http(),
        )
        return Outcome(
            ok=result.ok,
            error=result.error,
            retryable=result.retryable,
            status_code=result.status_code,
            retry_after=result.retry_after_seconds,
            unreachable=result.retryable and result.status_code is None,
        )

    def _send_chat(self, item: Claimed) -> Outcome:
        with self.ctx.read() as connection:
            channel = connection.execute(
                select(
                    chat_channels.c.kind,
                    chat_channels.c.url,
                    chat_channels.c.active,
                    chat_channels.c.removed_at,
                ).where(chat_channels.c.id == item.chat_channel_id)
            ).first()
        if channel is None or channel.removed_at is not None or not channel.url:
            return Outcome(ok=False, error="chat channel removed")
        if not channel.active:
            return Outcome(ok=False, error="chat channel turned off")
        if item.handoff_id is None:
            return Outcome(ok=False, error="a chat message without a handoff has nothing to say")
        remember(channel.url)  # a log line that quotes it is masked from now on
        message = self._chat_message(item)
        body = json.dumps(chat_payload(channel.kind, message), separators=(",", ":")).encode()
        result = post_chat(
            channel.url,
            body,
            delivery_id=str(item.id),
            timeout=self.ctx.settings.webhook_timeout_seconds,
            client=self._http(),
            now=int(self.ctx.clock.now().timestamp()),
        )
        return Outcome(
            ok=result.ok,
            error=result.error,
            retryable=result.retryable,
            status_code=result.status_code,
            retry_after=result.retry_after_seconds,
            unreachable=result.retryable and result.status_code is None,
        )

    def _chat_message(self, item: Claimed) -> ChatMessage:
        """The message in the words and the zone of the rep the handoff is given to."""
        assert item.handoff_id is not None
        packet = handoff_packet(self.ctx, item.handoff_id, actor=SYSTEM)
        with self.ctx.read() as connection:
            why_mql = connection.execute(
                select(transitions.c.reason)
                .where(transitions.c.lead_id == packet.lead.id, transitions.c.to_stage == "mql")
                .order_by(transitions.c.occurred_at.desc(), transitions.c.id.desc())
                .limit(1)
            ).scalar_one_or_none()
            rep_name = connection.execute(
                select(reps.c.name).where(reps.c.id == packet.handoff.rep_id)
            ).scalar_one_or_none()
        handoff = packet.handoff
        if item.topic == "handoff.assigned" or handoff.accepted_at is None:
            label, due = "Accept by", handoff.accept_due_at
        else:
            label, due = "First touch by", handoff.touch_due_at
        base = self.ctx.settings.public_url.rstrip("/")
        return ChatMessage(
            topic=item.topic,
            handoff_id=handoff.id,
            rep=rep_name or handoff.rep_email or "nobody",
            who=who_of(packet),
            why_now=why_now(why_mql, packet),
            deadline_label=label,
            deadline=packet.local(due) or "no deadline",
            link=f"{base}/handoffs/{handoff.id}",
            detail=item.payload.get("why") if item.topic == "sla.manager" else None,
        )

    # --- recording ---------------------------------------------------------------------

    def _finish(self, item: Claimed, outcome: Outcome, started: datetime, took_ms: float) -> None:
        now = self.ctx.clock.now()
        attempt = item.attempts + 1
        series = attempt - item.attempts_base
        with self.ctx.write() as connection:
            connection.execute(
                insert(deliveries).values(
                    outbox_id=item.id,
                    attempt=attempt,
                    attempted_at=started,
                    ok=outcome.ok,
                    status_code=outcome.status_code,
                    error=outcome.error,
                    duration_ms=took_ms,
                )
            )
            if outcome.ok:
                self._sent(connection, item, now)
                return
            dead = not outcome.retryable or series >= MAX_ATTEMPTS
            delay = max(next_attempt_delay(series), timedelta(seconds=outcome.retry_after or 0))
            next_at = now if dead else now + delay
            kept = connection.execute(
                update(outbox)
                .where(outbox.c.id == item.id, outbox.c.claim_token == self._token)
                .values(
                    status="failed" if dead else "pending",
                    claimed_until=None,
                    claim_token=None,
                    last_error=outcome.error,
                    next_attempt_at=next_at,
                )
            ).rowcount
            if kept and dead and item.topic == "nurture":
                connection.execute(
                    update(nurture_sends)
                    .where(nurture_sends.c.outbox_id == item.id)
                    .values(status="failed")
                )
                if outcome.mailbox_gone:
                    from baton.services.email_threads import record_hard_bounce_in

                    record_hard_bounce_in(
                        connection, item.recipient, outcome.error or "refused", now=now
                    )
        what = f"{item.topic} to {item.recipient} (outbox {item.id})"
        if not kept:
            log.warning(
                "%s: the lease ran out during a failed attempt; left to its new owner", what
            )
        elif dead:
            log.error("giving up on %s after attempt %s: %s", what, series, outcome.error)
        elif series == 1:
            log.warning(
                "%s failed, attempt 1 of %s, next at %s: %s",
                what,
                MAX_ATTEMPTS,
                f"{next_at:%H:%M:%S}",
                outcome.error,
            )
        else:
            log.info(
                "%s failed, attempt %s of %s, next at %s: %s",
                what,
                series,
                MAX_ATTEMPTS,
                f"{next_at:%H:%M:%S}",
                outcome.error,
            )

    def _sent(self, connection: Connection, item: Claimed, now: datetime) -> None:
        notified_handoff = (
            item.handoff_id
            if self.channel in ("email", "chat") and item.topic == "handoff.assigned"
            else None
        )
        if notified_handoff is not None:
            # The lead before its handoff, as every verdict takes them: marking the
            # handoff notified rewrites its chain and the lead's handoff facts, and a
            # verdict holding the lead while waiting for the handoff would otherwise
            # deadlock with this (PostgreSQL; seen in the 8-process race test).
            lead_id = connection.execute(
                select(handoffs.c.lead_id).where(handoffs.c.id == notified_handoff)
            ).scalar()
            if lead_id is not None:
                lock_lead(connection, lead_id)
        owner = connection.execute(
            select(outbox.c.claim_token).where(outbox.c.id == item.id)
        ).scalar_one_or_none()
        if owner != self._token:
            log.warning(
                "outbox %s: the lease ran out during a send; another worker may have sent it "
                "too (raise BATON_OUTBOX_LEASE_SECONDS)",
                item.id,
            )
        # Sent is sent, whoever holds the claim now: a late success still stops retries.
        connection.execute(
            update(outbox)
            .where(outbox.c.id == item.id, outbox.c.status == "pending")
            .values(
                status="sent", sent_at=now, claimed_until=None, claim_token=None, last_error=None
            )
        )
        if item.topic == "nurture":
            connection.execute(
                update(nurture_sends)
                .where(nurture_sends.c.outbox_id == item.id)
                .values(status="sent", sent_at=now)
            )
        if notified_handoff is not None:
            notified = connection.execute(
                update(handoffs)
                .where(handoffs.c.id == notified_handoff, handoffs.c.notified_at.is_(None))
                .values(notified_at=now)
            ).rowcount
            if notified:
                log_event(
                    connection,
                    notified_handoff,
                    "notified",
                    actor=SYSTEM,
                    now=now,
                    to=item.recipient,
                )

    # --- pauses ------------------------------------------------------------------------

    def _paused(self, key: str) -> bool:
        pause = self.pauses.get(key)
        return pause is not None and pause.until > self.ctx.clock.now()

    def _pause(self, key: str, why: str) -> None:
        now = self.ctx.clock.now()
        base = timedelta(seconds=self.ctx.settings.outbox_pause_seconds)
        previous = self.pauses.get(key)
        length = base if previous is None else min(previous.length * 2, max(MAX_PAUSE, base))
        self.pauses[key] = Pause(until=now + length, length=length, why=why)
        log.warning("%s unreachable: not trying it for %g s (%s)", key, length.total_seconds(), why)

    def _reachable(self, key: str) -> None:
        if self.pauses.pop(key, None) is not None:
            log.warning("%s reachable again", key)


def message_id_of(outbox_id: int, key: str | None) -> str:
    """The ``Message-ID`` of outbox row ``outbox_id`` whose ``message_key`` is ``key``:
    ``<outbox-N.KEY@baton>`` (``<outbox-N@baton>`` for a row written before keys, which
    replies and bounces can no longer name)."""
    return f"<outbox-{outbox_id}.{key}@baton>" if key else f"<outbox-{outbox_id}@baton>"


MAILBOX_GONE = frozenset({550, 551, 553})
"""RCPT replies that say the mailbox does not exist or is not accepted: a hard bounce."""


def _email_failure(exc: DeliveryError) -> Outcome:
    return Outcome(
        ok=False,
        error=str(exc),
        retryable=not exc.permanent,
        status_code=exc.smtp_code,
        unreachable=not exc.permanent
        and not exc.refused
        and exc.smtp_code in (None, SMTP_UNAVAILABLE),
    )


_NOW = bindparam("now", type_=outbox.c.next_attempt_at.type)
_DUE = (
    outbox.c.channel == bindparam("channel"),
    outbox.c.status == "pending",
    outbox.c.next_attempt_at <= _NOW,
    or_(outbox.c.claimed_until.is_(None), outbox.c.claimed_until < _NOW),
)
"""A message of the bound ``channel`` a courier may claim at the bound ``now``: one
definition for the claim and for :func:`anything_due`, which must agree."""
_ANY_DUE = select(outbox.c.id).where(*_DUE).limit(1)


def anything_due(
    ctx: Context, channel: Channel, now: datetime, *, paused: Sequence[int] = ()
) -> bool:
    """Whether ``channel`` has a message a courier could claim at ``now``, leaving out
    the ``paused`` destinations (webhook endpoints or chat channels): one read,
    prebuilt when none is paused, so that an idle courier's pass (five a second)
    takes no write transaction. Before, every idle pass took one with two locking
    reads: on SQLite the database's single write turn, 15 a second for the three
    couriers, which captures queued behind. A message that becomes due just after the
    read is claimed at the next pass, as one due just after the claim always was."""
    query = _ANY_DUE
    if paused:
        query = query.where(_destination_of(channel).not_in(list(paused)))
    with ctx.read() as connection:
        found = connection.execute(query, {"channel": channel, "now": now}).first()
    return found is not None


def _destination_of(channel: Channel) -> Any:
    """The column naming a message's destination where a courier pauses one."""
    return outbox.c.chat_channel_id if channel == "chat" else outbox.c.endpoint_id


def _locked(connection: Connection, query: Any, params: dict[str, Any]) -> list[Any]:
    locking = query.with_for_update(skip_locked=True)
    return list(connection.execute(locking, params).mappings().all())


def why_now(mql_reason: str | None, packet: HandoffPacket) -> str:
    """One line on why this lead is worth a call now: the hand-raise that made it an
    MQL, else its score and the top rules of the explanation."""
    return why_now_of(mql_reason, packet.score)


def why_now_of(mql_reason: str | None, score: LeadScore | None) -> str:
    """:func:`why_now` from the MQL reason and the score (the rep's inbox has no
    packet per row)."""
    if mql_reason and mql_reason.startswith("hand-raise"):
        kind = mql_reason.partition(":")[2].strip().replace("_", " ")
        return f"hand-raise ({kind})" if kind else "hand-raise"
    if score is None:
        return mql_reason or "handed off"
    top = sorted(score.hits, key=lambda hit: -hit.points)[:2]
    rules = ", ".join(f"{hit.label} {hit.points:+g}" for hit in top if hit.points > 0)
    head = f"score {score.total:g} ({score.grade})"
    return f"{head}: {rules}" if rules else head
