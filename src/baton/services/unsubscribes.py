"""Unsubscribing a lead: ``unsubscribed_at``, a suppression of its address (reason
``unsubscribe``) and its nurture enrollments ended. Shared by Baton's own unsubscribe
link (:mod:`baton.services.nurture_links`, which also records the ``unsubscribe``
activity) and the ingest of an ``unsubscribe`` activity reported by an email platform
(:mod:`baton.services.activities`), which is that activity already; below both, so
neither imports the other."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.engine import Connection

from baton.domain.access import Principal
from baton.domain.contact import InvalidContact, email_key, normalize_email
from baton.services.nurture import exit_enrollments_in
from baton.services.queries import insert_ignoring_conflicts, lock_survivors
from baton.store.tables import leads, suppressions

log = logging.getLogger("baton.services.nurture_links")


def survivor_row(connection: Connection, lead_id: int, *, lock: bool) -> Any:
    """The lead ``lead_id`` was merged into (itself if none), with its address and
    ``unsubscribed_at``, locked when ``lock``; None if there is no such lead."""
    current = lead_id
    for _ in range(50):
        statement = select(
            leads.c.id, leads.c.email, leads.c.unsubscribed_at, leads.c.merged_into_id
        ).where(leads.c.id == current)
        row = connection.execute(statement).first()
        if row is None:
            return None
        if row.merged_into_id is None:
            if lock:
                lock_survivors(connection, [int(row.id)])
            return row
        current = int(row.merged_into_id)
    return None


def unsubscribe_leads_in(
    connection: Connection,
    lead_ids: Sequence[int],
    *,
    now: datetime,
    actor: Principal,
    source: str,
) -> list[int]:
    """In the caller's transaction, for an ``unsubscribe`` activity already recorded
    (an email platform reporting one): what
    :func:`~baton.services.nurture_links.unsubscribe_lead_in` does, without
    recording the activity again. Returns the leads this call changed."""
    changed_leads = []
    for lead_id in sorted(set(lead_ids)):
        row = survivor_row(connection, lead_id, lock=True)
        if row is None:
            continue
        changed, ended = unsubscribe_in(connection, row, now=now, actor=actor, source=source)
        if changed:
            changed_leads.append(int(row.id))
            log.info(
                "lead %s unsubscribed (%s); %d enrollment(s) ended", row.id, source, len(ended)
            )
    return changed_leads


def unsubscribe_in(
    connection: Connection, row: Any, *, now: datetime, actor: Principal, source: str
) -> tuple[bool, list[Any]]:
    """``unsubscribed_at``, the suppression, the enrollments ended; whether anything
    changed, and the enrollments ended."""
    survivor = int(row.id)
    changed = row.unsubscribed_at is None
    if changed:
        connection.execute(
            update(leads).where(leads.c.id == survivor).values(unsubscribed_at=now, updated_at=now)
        )
    key = address_key(row.email)
    if key is not None:
        inserted = connection.execute(
            insert_ignoring_conflicts(connection, suppressions)
            .values(
                email_key=key,
                reason="unsubscribe",
                source=source[:300],
                created_at=now,
                created_by=actor.name[:200],
            )
            .returning(suppressions.c.id)
        ).first()
        changed = changed or inserted is not None
    ended = exit_enrollments_in(connection, [survivor], "unsubscribe", now=now)
    return changed, list(ended)


def address_key(address: str | None) -> str | None:
    """The suppression key of a stored address (its email key, also for an address
    that no longer validates)."""
    if not address:
        return None
    try:
        return email_key(normalize_email(address))
    except InvalidContact:
        return email_key(address.strip())
