"""Activity ingest: the high-volume path.

A batch (up to 10,000 events) is validated row by row (the common shape in plain
Python, anything else by the model, see :mod:`baton.domain.event_rows`), then written
in transactions of at most :data:`COMMIT_ROWS` events, so that other writers (a capture,
the worker) get their turn between them instead of waiting for the whole batch. Each
transaction uses set-based statements: one look-up of the leads by email, one insert of
the leads that do not exist yet, one insert of the events that skips the idempotency
keys already stored (``COPY`` on PostgreSQL, see
:func:`~baton.store.bulk.insert_activity_rows`) and one update of the leads' activity
counters. Invalid rows are reported by index and the valid ones are stored; a retried
batch with the same idempotency keys stores nothing twice, and so does the retry of a
batch that failed halfway (its first transactions are kept: send idempotency keys).
An event naming its lead both by ``lead_id`` and by ``email`` is stored only when the
two name one lead (after merges); otherwise it is refused on ``lead_id``.

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

from baton.domain.access import (
    INTAKE_BY_EMAIL,
    INTAKE_REFUSED_TYPE,
    INTAKE_REFUSED_TYPES,
    Action,
    Principal,
)
from baton.domain.activities import ActivityCreate
from baton.domain.batches import RowError
from baton.domain.contact import email_domain, email_key, mailbox_key
from baton.domain.errors import FieldProblem, NotFound, ValidationFailed
from baton.domain.event_rows import EventRow, event_row, utc_text, validate_events
from baton.domain.lifecycle import INITIAL_STAGE
from baton.domain.limits import CONTEXT_KEY as JSON_LIMITS
from baton.domain.scoring import Event
from baton.services.access import allowed
from baton.services.collector import collector_paused
from baton.services.context import Context
from baton.services.contract_rules import active_contract_in
from baton.services.duplicate_checks import queue_duplicate_checks_in
from baton.services.nurture import exit_on_activities_in
from baton.services.queries import lock_survivors, new_row_id_of
from baton.services.scoring import score_leads_in
from baton.services.unsubscribes import unsubscribe_leads_in
from baton.store.bulk import (
    ActivityRow,
    bump_counters,
    find_by_keys,
    insert_activity_rows,
    insert_new_leads,
)
from baton.store.statistics import ANALYZE_AFTER_ROWS, refresh_statistics
from baton.store.tables import activities, leads, nurture_enrollments

MAX_BATCH = 10_000
COMMIT_ROWS = 2_500
"""Most events one transaction of :func:`ingest_activities` writes: a few tens of
milliseconds of holding the database, a small share of a transaction's fixed cost."""


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


@collector_paused
def ingest_activities(
    ctx: Context,
    rows: Sequence[Mapping[str, Any] | ActivityCreate],
    *,
    actor: Principal,
    naive_timezone: str | None = None,
    return_ids: bool = False,
) -> IngestReport:
    """Validate a batch of events and store the valid ones, in transactions of at most
    :data:`COMMIT_ROWS` events (each one whole or not at all).

    Rows may be raw mappings (validated here, errors indexed from 0) or already
    validated :class:`ActivityCreate` models. With ``return_ids`` the report lists, per
    row, the activity id: the new one, or for a retry (known idempotency key) the id of
    the event stored the first time; ``None`` for rejected rows. On PostgreSQL an ingest
    that created :data:`~baton.store.statistics.ANALYZE_AFTER_ROWS` leads or more refreshes
    the planner's count of leads afterwards, in a short transaction of its own.
    """
    allowed(actor, Action.INGEST_ACTIVITY)
    good, errors = validate_events(list(enumerate(rows)), validation_context(ctx, naive_timezone))
    report = IngestReport(received=len(rows))
    if return_ids:
        report.activity_ids = [None] * len(rows)
        report.lead_ids = [None] * len(rows)
    for start in range(0, len(good), COMMIT_ROWS):
        with ctx.write() as connection:
            _store_in(
                connection,
                good[start : start + COMMIT_ROWS],
                actor=actor,
                now=ctx.clock.now(),
                return_ids=return_ids,
                report=report,
            )
    if report.leads_created >= ANALYZE_AFTER_ROWS and ctx.dialect == "postgresql":
        # With the count of an emptier table the planner hashed every lead for each
        # transaction's counter update (see bump_counters).
        with ctx.write() as connection:
            refresh_statistics(
                connection, ("leads",), new_rows=report.leads_created, columns=("id",)
            )
    report.errors = errors + report.errors
    report.errors.sort(key=lambda e: e.row)
    return report


def _resolve_leads(
    connection: Connection,
    events: Sequence[tuple[int, EventRow]],
    *,
    now: datetime,
    report: IngestReport,
) -> list[int | None]:
    """The lead of each event (in the order of ``events``), creating leads for unknown
    emails (a lead created at the same moment by another writer is used, not
    duplicated); ``None`` for an event that cannot be stored, whose error is added to
    ``report``: an unknown ``lead_id``, or a ``lead_id`` and an ``email`` that name
    different leads (an event naming both must name one lead twice; an unknown email
    creates nothing then). The leads written to are locked, and merged leads followed
    to their survivor (:func:`~baton.services.queries.lock_survivors`), before the two
    names are compared."""
    keys: list[str | None] = []
    first_seen: dict[str, EventRow] = {}
    """Emails whose lead an event may create, and the first such event."""
    checked: set[str] = set()
    """Emails sent beside a lead_id: looked up, never created."""
    follow: set[int] = set()
    for _, event in events:
        email, named, _, _, _, _, _, _, _, key = event
        if email is None:
            keys.append(None)
            follow.add(named or 0)
            continue
        if key is None:
            key = email_key(email)
        keys.append(key)
        if named is not None:
            checked.add(key)
            follow.add(named)
        elif key not in first_seen:
            first_seen[key] = event
    by_key: dict[str, int] = {}
    final: dict[int, int | None] = {}

    def look_up(wanted: list[str]) -> None:
        for key, lead_id, merged_into in find_by_keys(
            connection, leads, "email_key", wanted, "id", "merged_into_id"
        ):
            by_key[key] = lead_id
            if merged_into is None:
                final[lead_id] = lead_id
            else:
                follow.add(lead_id)

    look_up(sorted(first_seen.keys() | checked) if checked else sorted(first_seen))
    unknown = sorted(key for key in first_seen if key not in by_key)
    if unknown:
        new_rows: list[dict[str, Any]] = [
            {
                "email": e.email,
                "email_key": key,
                "email_domain": email_domain(key),
                "mailbox_key": mailbox_key(key),
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
            for key in unknown
            for e in (first_seen[key],)
        ]
        # In key order: two batches creating overlapping new leads then wait on each
        # other in the same order instead of deadlocking.
        insert_new_leads(connection, leads, new_rows)
        look_up(unknown)
        report.leads_created += len(unknown)
        # An event's new lead has only an email: the one comparison it can match is
        # a mailbox another lead already has (j.smith@ and jsmith@ at Gmail).
        shared = [by_key[r["email_key"]] for r in new_rows if r["mailbox_key"] is not None]
        queue_duplicate_checks_in(connection, shared, now=now)
    if connection.dialect.name == "sqlite":
        # The write transaction is the lock, and a lead found unmerged above is its own
        # survivor: only merged leads and leads named by id need following.
        if follow:
            final.update(lock_survivors(connection, follow))
    else:
        # Every lead locked in one statement, in id order (no deadlock between batches).
        final = lock_survivors(connection, set(by_key.values()) | follow)
    if not checked and None not in keys:
        # Every event named by its email alone (the common batch): each one's lead was
        # found or created above.
        resolved = [final.get(by_key.get(k or "", 0)) for k in keys]
        if None not in resolved:
            return resolved
    resolved = []
    errors = report.errors
    for (number, event), by_email in zip(events, keys, strict=True):
        named = event.lead_id
        if by_email is not None:
            found = by_key.get(by_email)
            target = final.get(found) if found is not None else None
            if named is not None:
                survivor = final.get(named)
                if survivor is None:
                    errors.append(RowError(number, "lead_id", no_such_lead(named)))
                    target = None
                elif survivor != target:
                    errors.append(
                        RowError(number, "lead_id", different_leads(named, event.email or ""))
                    )
                    target = None
            elif target is None:  # deleted by another writer since it was looked up
                errors.append(RowError(number, "email", f"no lead has the email {event.email}"))
        else:
            target = final.get(named or 0)
            if target is None:
                errors.append(RowError(number, "lead_id", no_such_lead(named)))
        resolved.append(target)
    return resolved


def no_such_lead(lead_id: int | None) -> str:
    """The error of an event whose ``lead_id`` names no lead (404 for one event)."""
    return f"lead {lead_id} does not exist"


def different_leads(lead_id: int, email: str) -> str:
    """The error of an event whose ``lead_id`` and ``email`` name two leads, or whose
    email names no lead yet (422 on ``lead_id`` for one event)."""
    return f"lead {lead_id} is not the lead with the email {email}"


def ingest_validated_in(
    connection: Connection,
    events: Sequence[tuple[int, ActivityCreate | EventRow]],
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
    report = IngestReport()
    if return_ids:
        report.activity_ids = [None] * (size if size is not None else len(events))
        report.lead_ids = [None] * len(report.activity_ids)
    rows = [(n, e if isinstance(e, EventRow) else event_row(e)) for n, e in events]
    _store_in(
        connection, rows, actor=actor, now=now, return_ids=return_ids, report=report, score=score
    )
    return report


def _store_in(
    connection: Connection,
    events: Sequence[tuple[int, EventRow]],
    *,
    actor: Principal,
    now: datetime,
    return_ids: bool,
    report: IngestReport,
    score: bool = True,
) -> None:
    """:func:`ingest_validated_in` adding to ``report`` (the counts, the errors, and
    with ``return_ids`` the ids at each row's number)."""
    events = with_intake_source(events, actor)
    if actor.kind == "intake_key":
        report.errors.extend(
            RowError(n, "lead_id", INTAKE_BY_EMAIL) for n, e in events if e.lead_id is not None
        )
        public = actor.key_id is not None  # a website's key, not a configured hook
        report.errors.extend(
            RowError(n, "type", INTAKE_REFUSED_TYPE)
            for n, e in events
            if public and e.lead_id is None and e.type in INTAKE_REFUSED_TYPES
        )
        events = [
            (n, e)
            for n, e in events
            if e.lead_id is None and not (public and e.type in INTAKE_REFUSED_TYPES)
        ]
    if not events:
        return
    lead_of = _resolve_leads(connection, events, now=now, report=report)
    recorded_by = actor.name
    now_text = utc_text(now)

    def activity_row(lead_id: int, e: EventRow) -> ActivityRow:
        sent = e.occurred_at
        return ActivityRow(
            lead_id,
            e.type,
            now if sent is None else sent,  # sent without: when received
            now,
            e.properties,
            e.idempotency_key,
            recorded_by,
            now_text if sent is None else e.occurred_text,
        )

    numbers: list[int] = []
    if not return_ids:
        # The batch path leaves known keys to the insert. The rows are activity_row's,
        # built inline by tuple's own constructor (a call per row costs more than
        # building it); an event sent without a time happened when received.
        new_row = tuple.__new__
        to_store = [
            new_row(
                ActivityRow,
                (lead_id, kind, now, now, data, key, recorded_by, now_text)
                if sent is None
                else (lead_id, kind, sent, now, data, key, recorded_by, sent_text),
            )
            for (_, (_, _, kind, sent, data, key, _, _, sent_text, _)), lead_id in zip(
                events, lead_of, strict=True
            )
            if lead_id
        ]
    else:
        # Ids per row need the known keys first; one event's insert answers alike (a key
        # already stored inserts nothing and returns no id), a look-up less for each
        # event a hook or the API records alone.
        keys = {e.idempotency_key for _, e in events if e.idempotency_key is not None}
        seen = (
            {
                found[0]
                for found in find_by_keys(connection, activities, "idempotency_key", sorted(keys))
            }
            if len(events) > 1
            else set()
        )
        to_store = []
        for (number, event), lead_id in zip(events, lead_of, strict=True):
            if lead_id is None:
                continue
            report.lead_ids[number] = lead_id
            key = event.idempotency_key
            if key is not None:
                if key in seen:
                    report.duplicates += 1
                    report.activity_ids[number] = _id_of_key(connection, key)
                    continue
                seen.add(key)
            to_store.append(activity_row(lead_id, event))
            numbers.append(number)
    if not to_store:
        return
    if return_ids:
        positions: list[int] = []
        for position, (number, row) in enumerate(zip(numbers, to_store, strict=True)):
            activity_id = connection.execute(
                new_row_id_of(activities, connection.dialect.name), row.columns()
            ).scalar()
            if activity_id is None:
                report.duplicates += 1
                report.activity_ids[number] = _id_of_key(connection, row.idempotency_key)
            else:
                report.activity_ids[number] = activity_id
                positions.append(position)
        stored = [to_store[p] for p in positions]
    else:
        positions = insert_activity_rows(connection, to_store)
        report.duplicates += len(to_store) - len(positions)
        stored = to_store if len(positions) == len(to_store) else [to_store[p] for p in positions]
    report.stored += len(stored)
    per_lead: dict[int, tuple[int, datetime]] = {}
    latest_texts: dict[int, str | None] = {}
    for lead_id, _, occurred_at, _, _, _, _, occurred_text in stored:
        counted = per_lead.get(lead_id)
        if counted is None:
            per_lead[lead_id] = (1, occurred_at)
            latest_texts[lead_id] = occurred_text
        elif occurred_at > counted[1]:
            per_lead[lead_id] = (counted[0] + 1, occurred_at)
            latest_texts[lead_id] = occurred_text
        else:
            per_lead[lead_id] = (counted[0] + 1, counted[1])
    bump_counters(connection, per_lead, texts=latest_texts)
    unsubscribed = [row.lead_id for row in stored if row.type == "unsubscribe"]
    if unsubscribed:
        # An unsubscribe reported by an email platform is honoured, not only scored:
        # the lead is unsubscribed and its address suppressed, as by Baton's own link.
        source = f"unsubscribe activity from {actor.name}"
        unsubscribe_leads_in(connection, unsubscribed, now=now, actor=actor, source=source)
    if not score:
        return
    # A reply or a hand-raise ends the lead's nurture enrollment (before scoring, so a
    # hand-raise that also makes the lead an MQL ends it as a hand-raise). Only leads
    # with an active enrollment can end one: looked up in one statement first (none
    # while nobody is enrolled).
    enrolled = (
        [
            lead_id
            for lead_id, status in find_by_keys(
                connection, nurture_enrollments, "lead_id", sorted(per_lead), "status"
            )
            if status == "active"
        ]
        if connection.execute(_ANY_ENROLLED).first() is not None
        else []
    )
    if enrolled:
        types: dict[int, set[str]] = {lead_id: set() for lead_id in enrolled}
        for row in stored:
            if row.lead_id in types:
                types[row.lead_id].add(row.type)
        exit_on_activities_in(connection, types, now=now)
    # Scoring needs the events only under an active contract (without one it does
    # nothing; it reads the contract again, locked, before it scores).
    if active_contract_in(connection, share_lock=False) is None:
        return
    new_events: dict[int, list[Event]] = {}
    for row in stored:
        new_events.setdefault(row.lead_id, []).append(
            Event(row.type, row.occurred_at, row.properties)
        )
    report.mql.extend(
        u.lead_id
        for u in score_leads_in(
            connection, sorted(new_events), now=now, actor=actor, new_events=new_events
        )
        if u.became_mql
    )


_ANY_ENROLLED = (
    select(nurture_enrollments.c.id).where(nurture_enrollments.c.status == "active").limit(1)
)


def with_intake_source(
    events: Sequence[tuple[int, EventRow]], actor: Principal
) -> Sequence[tuple[int, EventRow]]:
    """Events sent through an intake key come from the key's source unless they name
    their own (it becomes the source of a lead they create), as for a capture."""
    if actor.kind != "intake_key" or not actor.source:
        return events
    return [
        (number, e if e.source is not None else e._replace(source=actor.source))
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
        if error.message == no_such_lead(event.lead_id):
            raise NotFound(error.message)
        raise ValidationFailed(
            "the activity was not stored", [FieldProblem(error.field, error.message)]
        )
    lead_id = report.lead_ids[0]
    assert lead_id is not None
    return IngestOne(
        activity_id=report.activity_ids[0],
        lead_id=lead_id,
        duplicate=report.duplicates > 0,
        lead_created=report.leads_created > 0,
    )
