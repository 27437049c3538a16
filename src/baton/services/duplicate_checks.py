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

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from baton.services.context import Context
from baton.services.queries import chunks, insert_ignoring_conflicts
from baton.store.tables import duplicate_candidates, duplicate_checks, leads

log = logging.getLogger("baton.worker")

BATCH = 500
"""Leads compared per worker transaction: set-based, so a batch costs a handful of
indexed queries, and short enough never to hold the database for long."""


def queue_duplicate_checks_in(
    connection: Connection, lead_ids: Sequence[int], *, now: datetime
) -> None:
    """Queue new leads for the comparison, inside the caller's transaction."""
    name = connection.dialect.name
    if name not in _QUEUE:  # built once per dialect: every capture of a new lead runs it
        _QUEUE[name] = insert_ignoring_conflicts(connection, duplicate_checks)
    for part in chunks(list(lead_ids)):
        connection.execute(_QUEUE[name], [{"lead_id": i, "queued_at": now} for i in part])


_QUEUE: dict[str, Any] = {}


def pending_duplicate_checks(ctx: Context) -> int:
    """Leads still waiting for the comparison (the capture answer and health say so)."""
    with ctx.read() as connection:
        return int(
            connection.execute(select(func.count()).select_from(duplicate_checks)).scalar_one()
        )


def flag_pending_duplicates(ctx: Context, *, limit: int = BATCH) -> int:
    """Compare up to ``limit`` queued leads, oldest first, and flag their pairs; return
    how many left the queue.

    The comparison (the costly part: candidates read, names compared) runs in a read
    transaction, so on SQLite it never holds the one write turn that captures wait for;
    a short write transaction then claims the leads still queued (on PostgreSQL
    skipping rows another worker holds, so several workers share the queue without
    waiting for each other), writes the pairs of those still not merged away, and
    removes them from the queue, all or nothing. A lead another worker claimed first
    is left to it; one merged meanwhile is dropped unflagged."""
    from baton.services.leads import possible_duplicates_of  # leads queues here

    with ctx.read() as connection:
        ids = list(connection.execute(_OLDEST.limit(limit)).scalars())
        if not ids:
            return 0
        live = _live(connection, ids)
        now = ctx.clock.now()
        try:
            records = possible_duplicates_of(connection, live, now=now)[1] if live else []
        except DBAPIError:
            raise
        except Exception:
            records, failed = _one_by_one(connection, live, now=now)
            ids = [lead_id for lead_id in ids if lead_id not in failed]
    with ctx.write() as connection:
        claim = select(duplicate_checks.c.lead_id).where(duplicate_checks.c.lead_id.in_(ids))
        if connection.dialect.name == "postgresql":
            claim = claim.with_for_update(skip_locked=True)
        claimed = list(connection.execute(claim).scalars())
        if not claimed:
            return 0
        still = set(_live(connection, claimed))
        _record(connection, [r for r in records if r["lead_id"] in still])
        connection.execute(delete(duplicate_checks).where(duplicate_checks.c.lead_id.in_(claimed)))
        return len(claimed)


def _one_by_one(
    connection: Connection, lead_ids: Sequence[int], *, now: datetime
) -> tuple[list[dict[str, Any]], set[int]]:
    """After a batch whose comparison raised: each lead on its own (the same pairs, since
    a lead is compared as of its arrival), so one lead that cannot be compared stays
    queued, logged, instead of holding up every lead queued after it. When none can be
    compared the error is raised (a bug, not a bad lead): the lane logs it and backs off,
    and the queue keeps them all."""
    from baton.services.leads import possible_duplicates_of

    records: list[dict[str, Any]] = []
    failed: set[int] = set()
    error: Exception | None = None
    for lead_id in lead_ids:
        try:
            records.extend(possible_duplicates_of(connection, [lead_id], now=now)[1])
        except DBAPIError:
            raise
        except Exception as exc:
            log.exception(
                "possible duplicates: lead %s could not be compared; it stays queued", lead_id
            )
            failed.add(lead_id)
            error = exc
    if error is not None and len(failed) == len(lead_ids):
        raise error
    return records, failed


_OLDEST = select(duplicate_checks.c.lead_id).order_by(
    duplicate_checks.c.queued_at, duplicate_checks.c.lead_id
)


def _live(connection: Connection, ids: Sequence[int]) -> list[int]:
    """The leads among ``ids`` not merged into another, in id order."""
    query = select(leads.c.id).where(leads.c.id.in_(ids), leads.c.merged_into_id.is_(None))
    return sorted(connection.execute(query).scalars())


def _record(connection: Connection, rows: list[dict[str, Any]]) -> None:
    """Write the review items (a pair already flagged is kept as it is)."""
    if rows:
        connection.execute(insert_ignoring_conflicts(connection, duplicate_candidates), rows)
