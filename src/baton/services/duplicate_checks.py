"""Possible-duplicate flagging as work that can wait.

Comparing a new lead with every older lead that shares its phone, company or corporate
email domain is the costliest part of a capture (about half of it, growing with the
database), and nothing a caller does next depends on it: the pairs land in the review
queue for a person to look at. So capture and import only queue the new lead
(:func:`queue_duplicate_checks_in`, one row in the caller's transaction) and the worker
flags pairs in batches (:func:`flag_pending_duplicates`).

What a caller may rely on: a queued lead is compared exactly as
:func:`baton.services.leads.flag_possible_duplicates` compares it, once, in a
transaction that also removes it from the queue (a worker killed midway leaves it
queued); a lead merged away before its turn is dropped from the queue unflagged."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.engine import Connection

from baton.services.context import Context
from baton.services.leads import flag_possible_duplicates
from baton.services.queries import chunks, insert_ignoring_conflicts
from baton.store.tables import duplicate_checks, leads

BATCH = 500
"""Leads compared per worker transaction: set-based, so a batch costs a handful of
indexed queries, and short enough never to hold the database for long."""


def queue_duplicate_checks_in(
    connection: Connection, lead_ids: Sequence[int], *, now: datetime
) -> None:
    """Queue new leads for the comparison, inside the caller's transaction."""
    for part in chunks(list(lead_ids)):
        connection.execute(
            insert_ignoring_conflicts(connection, duplicate_checks),
            [{"lead_id": lead_id, "queued_at": now} for lead_id in part],
        )


def pending_duplicate_checks(ctx: Context) -> int:
    """Leads still waiting for the comparison (the capture answer and health say so)."""
    with ctx.read() as connection:
        return int(
            connection.execute(select(func.count()).select_from(duplicate_checks)).scalar_one()
        )


def flag_pending_duplicates(ctx: Context, *, limit: int = BATCH) -> int:
    """Compare up to ``limit`` queued leads, oldest first, in one transaction; return how
    many left the queue. Rows another worker holds are skipped (PostgreSQL), so several
    workers share the queue without waiting for each other."""
    with ctx.write() as connection:
        query = (
            select(duplicate_checks.c.lead_id)
            .order_by(duplicate_checks.c.queued_at, duplicate_checks.c.lead_id)
            .limit(limit)
        )
        if connection.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        ids = list(connection.execute(query).scalars())
        if not ids:
            return 0
        live = list(
            connection.execute(
                select(leads.c.id).where(leads.c.id.in_(ids), leads.c.merged_into_id.is_(None))
            ).scalars()
        )
        if live:
            flag_possible_duplicates(connection, sorted(live), now=ctx.clock.now())
        connection.execute(delete(duplicate_checks).where(duplicate_checks.c.lead_id.in_(ids)))
        return len(ids)
