"""Activity ingest: the high-volume path.

A batch (up to 10,000 events) is validated row by row, then written in one transaction
with set-based statements: one look-up of the leads by email, one insert of the leads
that do not exist yet, one look-up of idempotency keys already seen, one insert of the
events and one update of the leads' activity counters. Invalid rows are reported by
index and the valid ones are stored; a retried batch with the same idempotency keys
stores nothing twice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection

from baton.domain.activities import ActivityCreate
from baton.domain.batches import RowError, validate_many
from baton.domain.contact import email_domain, email_key
from baton.domain.lifecycle import INITIAL_STAGE
from baton.services.context import Context
from baton.services.queries import chunks, insert_ignoring_conflicts
from baton.store.bulk import bump_counters, find_by_keys, insert_activities, insert_rows
from baton.store.tables import activities, leads

MAX_BATCH = 10_000


@dataclass
class IngestReport:
    """Outcome of a batch: how many events were stored, how many were already known
    (same idempotency key), how many leads were created, and the rejected rows."""

    received: int = 0
    stored: int = 0
    duplicates: int = 0
    leads_created: int = 0
    errors: list[RowError] = field(default_factory=list)
    activity_ids: list[int | None] = field(default_factory=list)
    lead_ids: list[int | None] = field(default_factory=list)


def validation_context(ctx: Context, naive_timezone: str | None = None) -> dict[str, Any]:
    context: dict[str, Any] = {"now": ctx.clock.now()}
    if naive_timezone:
        context["naive_timezone"] = naive_timezone
    return context


def ingest_activities(
    ctx: Context,
    rows: Sequence[Mapping[str, Any] | ActivityCreate],
    *,
    actor: str,
    naive_timezone: str | None = None,
    return_ids: bool = False,
) -> IngestReport:
    """Validate and store a batch of events in one transaction.

    Rows may be raw mappings (validated here, errors indexed from 0) or already
    validated :class:`ActivityCreate` models. With ``return_ids`` the report lists, per
    row, the stored activity id (``None`` for rejected rows and for duplicates).
    """
    raw = [(i, r) for i, r in enumerate(rows) if not isinstance(r, ActivityCreate)]
    ready = [(i, r) for i, r in enumerate(rows) if isinstance(r, ActivityCreate)]
    good, errors = validate_many(ActivityCreate, raw, validation_context(ctx, naive_timezone))
    good.extend(ready)
    good.sort(key=lambda pair: pair[0])
    with ctx.write() as connection:
        report = ingest_validated_in(
            connection,
            good,
            actor=actor,
            now=ctx.clock.now(),
            return_ids=return_ids,
            size=len(rows),
        )
    report.received = len(rows)
    report.errors = errors + report.errors
    report.errors.sort(key=lambda e: e.row)
    return report


def _resolve_leads(
    connection: Connection,
    events: Sequence[tuple[int, ActivityCreate]],
    *,
    now: datetime,
    report: IngestReport,
) -> dict[int, int]:
    """Row number -> lead id, creating leads for unknown emails; unknown ``lead_id``
    values become row errors."""
    keys = sorted({email_key(e.email) for _, e in events if e.email is not None})
    by_key: dict[str, int] = {}
    merged: dict[int, int] = {}
    for key, lead_id, merged_into in find_by_keys(
        connection, leads, "email_key", keys, "id", "merged_into_id"
    ):
        by_key[key] = lead_id
        if merged_into is not None:
            merged[lead_id] = merged_into
    first_seen: dict[str, ActivityCreate] = {}
    for _, event in events:
        if event.email is not None:
            key = email_key(event.email)
            if key not in by_key and key not in first_seen:
                first_seen[key] = event
    if first_seen:
        new_rows: list[dict[str, Any]] = [
            {
                "email": e.email,
                "email_key": key,
                "email_domain": email_domain(key),
                "source": e.source,
                "campaign": e.campaign,
                "last_source": e.source,
                "last_campaign": e.campaign,
                "attributes": {},
                "stage": INITIAL_STAGE.value,
                "stage_changed_at": now,
                "created_at": now,
                "updated_at": now,
                "activity_count": 0,
            }
            for key, e in first_seen.items()
        ]
        insert_rows(connection, leads, new_rows, ignore_conflicts=True)
        for key, lead_id in find_by_keys(connection, leads, "email_key", list(first_seen), "id"):
            by_key[key] = lead_id
        report.leads_created += len(first_seen)
    ids = sorted({e.lead_id for _, e in events if e.lead_id is not None and e.email is None})
    known: set[int] = set()
    for id_part in chunks(ids):
        for lead_id, merged_into in connection.execute(
            select(leads.c.id, leads.c.merged_into_id).where(leads.c.id.in_(id_part))
        ):
            known.add(lead_id)
            if merged_into is not None:
                merged[lead_id] = merged_into
    resolved: dict[int, int] = {}
    for number, event in events:
        if event.email is not None:
            lead_id = by_key[email_key(event.email)]
        elif event.lead_id in known:
            lead_id = event.lead_id
        else:
            report.errors.append(
                RowError(number, "lead_id", f"lead {event.lead_id} does not exist")
            )
            continue
        while lead_id in merged:
            lead_id = merged[lead_id]
        resolved[number] = lead_id
    return resolved


def ingest_validated_in(
    connection: Connection,
    events: Sequence[tuple[int, ActivityCreate]],
    *,
    actor: str,
    now: datetime,
    return_ids: bool = False,
    size: int | None = None,
) -> IngestReport:
    """Store validated events inside the caller's transaction."""
    report = IngestReport()
    if return_ids:
        report.activity_ids = [None] * (size if size is not None else len(events))
        report.lead_ids = [None] * len(report.activity_ids)
    if not events:
        return report
    lead_of = _resolve_leads(connection, events, now=now, report=report)
    keys = [e.idempotency_key for _, e in events if e.idempotency_key is not None]
    seen: set[str] = {
        row[0] for row in find_by_keys(connection, activities, "idempotency_key", sorted(set(keys)))
    }
    to_store: list[dict[str, Any]] = []
    numbers: list[int] = []
    per_lead: dict[int, tuple[int, datetime]] = {}
    for number, event in events:
        lead_id = lead_of.get(number)
        if lead_id is None:
            continue
        if return_ids:
            report.lead_ids[number] = lead_id
        key = event.idempotency_key
        if key is not None:
            if key in seen:
                report.duplicates += 1
                continue
            seen.add(key)
        to_store.append(
            {
                "lead_id": lead_id,
                "type": event.type.value,
                "occurred_at": event.occurred_at,
                "received_at": now,
                "properties": event.properties,
                "idempotency_key": key,
            }
        )
        numbers.append(number)
        count, latest = per_lead.get(lead_id, (0, event.occurred_at))
        per_lead[lead_id] = (count + 1, max(latest, event.occurred_at))
    if to_store:
        if return_ids:
            statement = insert_ignoring_conflicts(connection, activities)
            stored_ids = (
                connection.execute(
                    statement.returning(activities.c.id, sort_by_parameter_order=True), to_store
                )
                .scalars()
                .all()
            )
            for number, activity_id in zip(numbers, stored_ids, strict=False):
                report.activity_ids[number] = activity_id
        else:
            insert_activities(connection, to_store)
        report.stored = len(to_store)
        bump_counters(connection, per_lead)
    return report


@dataclass(frozen=True)
class IngestOne:
    """Outcome of a single event: its id, its lead, and whether it was a retry."""

    activity_id: int | None
    lead_id: int
    duplicate: bool
    lead_created: bool


def ingest_activity(ctx: Context, event: ActivityCreate, *, actor: str) -> IngestOne:
    """Store one validated event (the batch path with one row)."""
    with ctx.write() as connection:
        report = ingest_validated_in(
            connection, [(0, event)], actor=actor, now=ctx.clock.now(), return_ids=True
        )
    if report.errors:
        from baton.domain.errors import NotFound

        raise NotFound(report.errors[0].message)
    lead_id = report.lead_ids[0]
    assert lead_id is not None
    activity_id = report.activity_ids[0]
    if activity_id is None and event.idempotency_key is not None:
        with ctx.read() as connection:
            activity_id = connection.execute(
                select(activities.c.id).where(activities.c.idempotency_key == event.idempotency_key)
            ).scalar_one_or_none()
    return IngestOne(
        activity_id=activity_id,
        lead_id=lead_id,
        duplicate=report.duplicates > 0,
        lead_created=report.leads_created > 0,
    )
