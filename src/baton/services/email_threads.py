"""What an inbound email means for the leads: the database half of the email adapter.

:mod:`baton.integrations.email` reads a message into one intake item without touching
the database; the intake service (:mod:`baton.services.intake`) calls
:func:`resolve_email_item_in` for items of ``email`` endpoints, inside the item's
transaction, before it captures anyone:

* a **reply** to a Baton email (``<outbox-N.KEY@baton>`` in ``In-Reply-To`` or
  ``References``) is threaded to that outbox row's lead (``outbox.handoff_id`` ->
  ``handoffs.lead_id``, or for a nurture email the send log's lead, then to the lead
  it was merged into, if any), whatever address it comes from, and records
  ``email_reply`` there. A reference is believed only when ``KEY`` is the row's
  ``message_key`` (:func:`verified_outbox_ids_in`): ids are not guessable, so nobody
  threads a forged hand-raise onto someone else's lead. An unkeyed ``<outbox-N@baton>``
  (mail sent before keys existed, or a guess) is refused. A reply naming no row Baton
  believes falls back to the sender's address;
* mail from a rep or a user of Baton (a rep answering a handoff notification,
  forwarding a customer's mail) is no hand-raise of theirs: noted, nothing recorded;
* a **bounce** marks the address as bouncing on every lead that has it
  (``leads.email_status``: a hard bounce is never downgraded by a later soft one), but
  only an address Baton has emailed: when the notice names Baton emails (keys
  verified), an address one of them went to; otherwise an address some outbox email
  went to. A hard bounce also puts the address on the suppression list and ends the
  leads' nurture enrollments; nothing else is recorded;
* an **automatic message** (auto-reply, out of office) is noted against the lead it
  threads to or that has its address, and records nothing.

This module imports the store, the domain and two in-transaction helpers
(:func:`baton.services.nurture.exit_enrollments_in`, :mod:`baton.services.queries`),
none of which imports the intake service, so the intake service can import it without
a cycle.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.engine import Connection

from baton.domain.contact import InvalidContact, email_key, normalize_email
from baton.domain.intake import IntakeItem
from baton.services.nurture import exit_enrollments_in
from baton.services.queries import insert_ignoring_conflicts
from baton.store.tables import handoffs, leads, nurture_sends, outbox, reps, suppressions, users

log = logging.getLogger(__name__)

HARD_BOUNCE = "hard_bounce"
SOFT_BOUNCE = "soft_bounce"
EMAIL_STATUSES = (HARD_BOUNCE, SOFT_BOUNCE)


@dataclass(frozen=True)
class EmailDecision:
    """How the intake service processes an email item.

    ``handled``: the item is fully dealt with here (a bounce recorded, an automatic
    message or a colleague's reply noted): no capture, no activity; the item is
    processed with ``lead_id`` (may be ``None``). Not handled with a ``lead_id``: record
    the item's activity on that existing lead instead of capturing the sender. Neither:
    the ordinary path (capture the sender, record the hand-raise)."""

    lead_id: int | None = None
    handled: bool = False
    note: str | None = None


def resolve_email_item_in(
    connection: Connection, item: IntakeItem, *, now: datetime
) -> EmailDecision:
    """See the module docstring; ``item`` comes from :func:`baton.integrations.email.read`.
    A handled item's note is logged (the intake log shows it processed, with its lead)."""
    decision = _decide(connection, item, now=now)
    if decision.handled:
        log.info("email %s: %s", item.upstream_id, decision.note)
    return decision


def _decide(connection: Connection, item: IntakeItem, *, now: datetime) -> EmailDecision:
    properties = item.properties
    kind = properties.get("kind")
    outbox_ids = verified_outbox_ids_in(connection, properties.get("outbox_refs") or [])
    if kind == "bounce":
        return _record_bounce(
            connection, properties.get("bounced") or [], now=now, outbox_ids=outbox_ids
        )
    sender = (item.lead or {}).get("email")
    threaded = thread_lead_in(connection, outbox_ids) if outbox_ids else None
    if kind == "automatic":
        lead_id = threaded or (lead_by_address_in(connection, sender) if sender else None)
        return EmailDecision(
            lead_id=lead_id, handled=True, note="automatic message: noted, no hand-raise"
        )
    if sender and _is_colleague(connection, sender):
        return EmailDecision(
            lead_id=threaded,
            handled=True,
            note=f"mail from {sender} (a rep or user of Baton): no hand-raise",
        )
    if kind == "reply" and threaded is not None:
        return EmailDecision(lead_id=threaded, note=f"threaded by outbox {outbox_ids}")
    return EmailDecision()


def verified_outbox_ids_in(connection: Connection, refs: Iterable[Any]) -> list[int]:
    """The outbox ids among ``refs`` (``"N.KEY"``, see
    :func:`baton.integrations.email.outbox_refs`) whose ``KEY`` is row ``N``'s
    ``message_key``, in order; forged, guessed and unkeyed ids are dropped."""
    wanted: dict[int, str] = {}
    for ref in refs:
        if not isinstance(ref, str) or "." not in ref:
            continue
        number, _, key = ref.partition(".")
        if number.isdigit() and len(number) <= 18 and key and int(number) not in wanted:
            wanted[int(number)] = key
    if not wanted:
        return []
    rows = connection.execute(
        select(outbox.c.id, outbox.c.message_key).where(outbox.c.id.in_(list(wanted)))
    ).all()
    keys = {int(r.id): r.message_key for r in rows if r.message_key}
    verified = [
        n
        for n, key in wanted.items()
        if n in keys and hmac.compare_digest(keys[n].encode(), key.encode())
    ]
    refused = [n for n in wanted if n not in verified]
    if refused:
        log.warning("email names outbox message(s) %s with a wrong or no key: ignored", refused)
    return verified


def thread_lead_in(connection: Connection, outbox_ids: Sequence[int]) -> int | None:
    """The lead of the first of ``outbox_ids`` (newest reference first) whose row is
    about a handoff or is a nurture email; followed to the surviving lead when it was
    merged. The ids must be verified (:func:`verified_outbox_ids_in`)."""
    if not outbox_ids:
        return None
    rows = connection.execute(
        select(outbox.c.id, handoffs.c.lead_id)
        .join(handoffs, handoffs.c.id == outbox.c.handoff_id)
        .where(outbox.c.id.in_(list(outbox_ids)))
    ).all()
    by_outbox = {int(r.id): int(r.lead_id) for r in rows}
    nurtured = connection.execute(
        select(nurture_sends.c.outbox_id, nurture_sends.c.lead_id).where(
            nurture_sends.c.outbox_id.in_(list(outbox_ids))
        )
    ).all()
    for r in nurtured:
        by_outbox.setdefault(int(r.outbox_id), int(r.lead_id))
    for outbox_id in outbox_ids:
        if outbox_id in by_outbox:
            return _survivor(connection, by_outbox[outbox_id])
    return None


def lead_by_address_in(connection: Connection, address: str) -> int | None:
    """The (surviving) lead with this address, if any."""
    key = _key(address)
    if key is None:
        return None
    found = connection.execute(select(leads.c.id).where(leads.c.email_key == key)).scalar()
    return None if found is None else _survivor(connection, int(found))


def _emailed(connection: Connection, key: str, outbox_ids: Sequence[int]) -> bool:
    """Whether Baton sent email to the address ``key``: one of the (verified) emails the
    bounce names went to it, or, when it names none, some outbox email did."""
    query = select(outbox.c.id).where(
        outbox.c.channel == "email", func.lower(outbox.c.recipient) == key
    )
    if outbox_ids:
        query = query.where(outbox.c.id.in_(list(outbox_ids)))
    return connection.execute(query.limit(1)).first() is not None


def _record_bounce(
    connection: Connection,
    bounced: Iterable[Any],
    *,
    now: datetime,
    outbox_ids: Sequence[int] = (),
) -> EmailDecision:
    marked: list[int] = []
    notes: list[str] = []
    for entry in bounced:
        if not isinstance(entry, dict) or not isinstance(entry.get("address"), str):
            continue
        key = _key(entry["address"])
        if key is None:
            notes.append(f"{entry['address']}: not an address")
            continue
        if not _emailed(connection, key, outbox_ids):
            notes.append(f"{entry['address']}: Baton sent it no email, ignored")
            continue
        hard = bool(entry.get("hard"))
        status = HARD_BOUNCE if hard else SOFT_BOUNCE
        detail = " ".join(str(p) for p in (entry.get("status"), entry.get("diagnostic")) if p)[:500]
        statement = (
            update(leads)
            .where(leads.c.email_key == key)
            .values(email_status=status, email_status_at=now, email_status_detail=detail or None)
            .returning(leads.c.id)
        )
        if not hard:  # a soft bounce never hides an earlier hard one
            statement = statement.where(func.coalesce(leads.c.email_status, "") != HARD_BOUNCE)
        ids = [int(i) for i in connection.execute(statement).scalars()]
        marked.extend(ids)
        if hard and ids:  # no more nurture email to a dead address
            exit_enrollments_in(connection, ids, "hard_bounce", now=now)
        if hard:
            connection.execute(
                insert_ignoring_conflicts(connection, suppressions).values(
                    email_key=key,
                    reason=HARD_BOUNCE,
                    source=(detail or "bounce")[:300],
                    created_at=now,
                    created_by="bounce",
                )
            )
        notes.append(f"{status} {entry['address']}: {len(ids)} lead(s)")
        if ids:
            log.info("%s for %s on lead(s) %s", status, entry["address"], ids)
    return EmailDecision(
        lead_id=marked[0] if marked else None,
        handled=True,
        note="; ".join(notes) or "bounce notice naming no failed recipient",
    )


def record_hard_bounce_in(
    connection: Connection, address: str, detail: str, *, now: datetime
) -> list[int]:
    """The mail server refused ``address`` for good while Baton was sending to it (a
    ``550 No such user`` at RCPT): the same as a bounce notice saying so, so nurture
    stops and the address is suppressed. Returns the leads marked."""
    decision = _record_bounce(
        connection, [{"address": address, "hard": True, "status": detail}], now=now
    )
    return [] if decision.lead_id is None else [decision.lead_id]


def _is_colleague(connection: Connection, address: str) -> bool:
    key = _key(address)
    if key is None:
        return False
    for table in (reps, users):
        if connection.execute(
            select(table.c.id).where(func.lower(table.c.email) == key).limit(1)
        ).first():
            return True
    return False


def _survivor(connection: Connection, lead_id: int) -> int:
    """Follow ``merged_into_id`` to the lead that absorbed this one (bounded)."""
    current = lead_id
    for _ in range(20):
        merged = connection.execute(
            select(leads.c.merged_into_id).where(leads.c.id == current)
        ).scalar()
        if merged is None:
            return current
        current = int(merged)
    return current


def _key(address: str) -> str | None:
    try:
        return email_key(normalize_email(address))
    except InvalidContact:
        return None
