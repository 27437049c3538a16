"""Activity ingest: the high-volume path.

A batch (up to 10,000 events) is validated row by row, then written in one transaction
with set-based statements: one look-up of the leads by email, one insert of the leads
that do not exist yet, one look-up of idempotency keys already seen, one insert of the
events and one update of the leads' activity counters. Invalid rows are reported by
index and the valid ones are stored; a retried batch with the same idempotency keys
stores nothing twice.

Recording activities is :data:`~baton.domain.access.Action.INGEST_ACTIVITY`: marketing,
admins and intake keys (a website or form tool), whose events name the key's source
when they name none.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection

from baton.domain.access import Action, Principal
from baton.domain.activities import ActivityCreate
from baton.domain.batches import RowError, validate_many
from baton.domain.contact import email_domain, email_key
from baton.domain.errors import FieldProblem, NotFound, ValidationFailed
from baton.domain.lifecycle import INITIAL_STAGE
from baton.domain.limits import CONTEXT_KEY as JSON_LIMITS
from baton.domain.scoring import Event
from baton.services.access import allowed
from baton.services.context import Context
from baton.services.nurture import exit_on_activities_in
from baton.services.queries import insert_ignoring_conflicts, lock_survivors
from baton.services.scoring import score_leads_in
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
    mql: list[int] = field(default_factory=list)
    """Leads that reached the handoff point with this batch."""


def validation_context(ctx: Context, naive_timezone: str | None = None) -> dict[str, Any]:
    context: dict[str, Any] = {"now": ctx.clock.now(), JSON_LIMITS: ctx.settings.json_limits}
    if naive_timezone:
        context["naive_timezone"] = naive_timezone
    return context


def ingest_activities(
    ctx: Context,
    rows: Sequence[Mapping[str, Any] | ActivityCreate],
    *,
    actor: Principal,
    naive_timezone: str | None = None,
    return_ids: bool = False,
) -> IngestReport:
    """Validate and store a batch of events in one transaction.

    Rows may be raw mappings (validated here, errors indexed from 0) or already
    validated :class:`ActivityCreate` models. With ``return_ids`` the report lists, per
    row, the activity id: the new one, or for a retry (known idempotency key) the id of
    the event stored the first time; ``None`` for rejected rows.
    """
    allowed(actor, Action.INGEST_ACTIVITY)
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
    """Row number -> lead id, creating leads for unknown emails (a lead created at the
    same moment by another writer is used, not duplicated); unknown ``lead_id`` values
    become row errors."""
    keys = sorted({email_key(e.email) for _, e in events if e.email is not None})
    by_key = dict(find_by_keys(connection, leads, "email_key", keys, "id"))
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
            for key, e in sorted(first_seen.items())
        ]
        # In key order: two batches creating overlapping new leads then wait on each
        # other in the same order instead of deadlocking.
        insert_rows(connection, leads, new_rows, ignore_conflicts=True)
        for key, lead_id in find_by_keys(connection, leads, "email_key", list(first_seen), "id"):
            by_key[key] = lead_id
        report.leads_created += len(first_seen)
    wanted = set(by_key.values()) | {
        e.lead_id for _, e in events if e.lead_id is not None and e.email is None
    }
    final = lock_survivors(connection, wanted)
    resolved: dict[int, int] = {}
    for number, event in events:
        target = final.get(
            by_key[email_key(event.email)] if event.email is not None else event.lead_id or 0
        )
        if target is None:
            report.errors.append(
                RowError(number, "lead_id", f"lead {event.lead_id} does not exist")
            )
            continue
        resolved[number] = target
    return resolved


INTAKE_BY_EMAIL = "an intake key names the lead by email, never by id"
"""A public key must not learn which lead ids exist, nor add events to any lead."""


def ingest_validated_in(
    connection: Connection,
    events: Sequence[tuple[int, ActivityCreate]],
    *,
    actor: Principal,
    now: datetime,
    return_ids: bool = False,
    size: int | None = None,
    score: bool = True,
) -> IngestReport:
    """Store validated events inside the caller's transaction; ``actor``'s name is
    recorded on each stored event (the caller checked that ``actor`` may), and an
    intake key's source names the source of events that name none. ``score=False``
    stores history without scoring it (a backfill that is re-scored as a whole
    afterwards)."""
    events = with_intake_source(events, actor)
    report = IngestReport()
    if return_ids:
        report.activity_ids = [None] * (size if size is not None else len(events))
        report.lead_ids = [None] * len(report.activity_ids)
    if actor.kind == "intake_key":
        report.errors.extend(
            RowError(n, "lead_id", INTAKE_BY_EMAIL) for n, e in events if e.lead_id is not None
        )
        events = [(n, e) for n, e in events if e.lead_id is None]
    if not events:
        return report
    lead_of = _resolve_leads(connection, events, now=now, report=report)
    keys = [e.idempotency_key for _, e in events if e.idempotency_key is not None]
    seen: set[str] = {
        row[0] for row in find_by_keys(connection, activities, "idempotency_key", sorted(set(keys)))
    }
    to_store: list[dict[str, Any]] = []
    numbers: list[int] = []
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
                if return_ids:
                    report.activity_ids[number] = _id_of_key(connection, key)
                continue
            seen.add(key)
        to_store.append(
            {
                "lead_id": lead_id,
                "type": event.type.value,
                "occurred_at": event.occurred_at or now,  # sent without: when received
                "received_at": now,
                "properties": event.properties,
                "idempotency_key": key,
                "recorded_by": actor.name,
            }
        )
        numbers.append(number)
    if not to_store:
        return report
    if return_ids:
        positions: list[int] = []
        for position, (number, row) in enumerate(zip(numbers, to_store, strict=True)):
            activity_id = connection.execute(
                insert_ignoring_conflicts(connection, activities)
                .values(row)
                .returning(activities.c.id)
            ).scalar()
            if activity_id is None:
                report.duplicates += 1
                report.activity_ids[number] = _id_of_key(connection, row["idempotency_key"])
            else:
                report.activity_ids[number] = activity_id
                positions.append(position)
    else:
        positions = insert_activities(connection, to_store)
        report.duplicates += len(to_store) - len(positions)
    report.stored = len(positions)
    per_lead: dict[int, tuple[int, datetime]] = {}
    new_events: dict[int, list[Event]] = {}
    for position in positions:
        row = to_store[position]
        lead_id, occurred_at = row["lead_id"], row["occurred_at"]
        count, latest = per_lead.get(lead_id, (0, occurred_at))
        per_lead[lead_id] = (count + 1, max(latest, occurred_at))
        new_events.setdefault(lead_id, []).append(
            Event(row["type"], occurred_at, row["properties"])
        )
    bump_counters(connection, per_lead)
    if not score:
        return report
    # A reply or a hand-raise ends the lead's nurture enrollment (before scoring, so a
    # hand-raise that also makes the lead an MQL ends it as a hand-raise).
    exit_on_activities_in(
        connection, {i: {e.type for e in evs} for i, evs in new_events.items()}, now=now
    )
    report.mql = [
        u.lead_id
        for u in score_leads_in(
            connection, sorted(new_events), now=now, actor=actor, new_events=new_events
        )
        if u.became_mql
    ]
    return report


def with_intake_source(
    events: Sequence[tuple[int, ActivityCreate]], actor: Principal
) -> Sequence[tuple[int, ActivityCreate]]:
    """Events sent through an intake key come from the key's source unless they name
    their own (it becomes the source of a lead they create), as for a capture."""
    if actor.kind != "intake_key" or not actor.source:
        return events
    return [
        (number, e if e.source is not None else e.model_copy(update={"source": actor.source}))
        for number, e in events
    ]


def _id_of_key(connection: Connection, key: str | None) -> int | None:
    if key is None:
        return None
    return connection.execute(
        select(activities.c.id).where(activities.c.idempotency_key == key)
    ).scalar()


@dataclass(frozen=True)
class IngestOne:
    """Outcome of a single event: its id, its lead, and whether it was a retry."""

    activity_id: int | None
    lead_id: int
    duplicate: bool
    lead_created: bool


def ingest_activity(ctx: Context, event: ActivityCreate, *, actor: Principal) -> IngestOne:
    """Store one validated event (the batch path with one row), in one transaction.
    A retried event (same idempotency key) answers with the first event's id."""
    allowed(actor, Action.INGEST_ACTIVITY)
    with ctx.write() as connection:
        report = ingest_validated_in(
            connection, [(0, event)], actor=actor, now=ctx.clock.now(), return_ids=True
        )
    if report.errors:
        error = report.errors[0]
        if error.message == INTAKE_BY_EMAIL:
            raise ValidationFailed(
                "the activity was not stored", [FieldProblem("lead_id", error.message)]
            )
        raise NotFound(error.message)
    lead_id = report.lead_ids[0]
    assert lead_id is not None
    return IngestOne(
        activity_id=report.activity_ids[0],
        lead_id=lead_id,
        duplicate=report.duplicates > 0,
        lead_created=report.leads_created > 0,
    )
