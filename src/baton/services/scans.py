"""Import of an event's badge scans (``baton import scans FILE --event NAME``).

The file is read like a lead import (:mod:`baton.services.imports`: every line
accounted for, headers matched forgivingly, ``--map``, an errors file to mend and
import as it is). Each valid row, in short transactions of :data:`CHUNK` rows:

1. captures the person (create-or-update by email, else phone), source ``event`` and
   the event as campaign, unless the row was imported before (its scan key is known:
   then the row is counted as already imported and nothing is written);
2. records an ``event_booth_scan`` activity with the event, rating, who scanned and
   the notes (and the file's other columns), dated by ``scanned_at``;
3. hot: records an ``event_hot_scan`` too, a hand-raise where the contract lists it;
   cold: moves a lead still in ``lead`` to ``nurture`` through
   :func:`baton.services.stages.change_stage_in`, before the scan is scored, so the
   scan does not hand it off; a lead in another stage stays, with a warning.

What a rating does is :mod:`baton.domain.scans`'s rule. A row is rejected (errors
file) when the person cannot be identified, ``scanned_by`` names no rep, the rating is
not hot, warm or cold (with "did you mean"), or ``scanned_at`` cannot be read; a bad
optional value (a country nobody can read) is left out with a warning, as in a lead
import.

Who may: marketing and admins (capture, record activities, move stages).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import select

from baton.domain.access import Action, Principal
from baton.domain.activities import MAX_FUTURE_SKEW, ActivityCreate, ActivityType
from baton.domain.batches import RowError
from baton.domain.contact import email_key
from baton.domain.dates import read_instant
from baton.domain.errors import FieldProblem, ValidationFailed
from baton.domain.leads import LeadCreate, fold_source
from baton.domain.lifecycle import Stage
from baton.domain.scans import (
    SCAN_ALIASES,
    SCAN_COLUMNS,
    Rating,
    RosterRep,
    read_rating,
    resolve_rep,
    scan_key,
    split_name,
)
from baton.services.access import allowed
from baton.services.activities import ingest_validated_in
from baton.services.context import Context
from baton.services.imports import (
    ImportReport,
    Progress,
    _read_and_validate,
    validate_lead_rows,
)
from baton.services.leads import capture_lead_in
from baton.services.stages import change_stage_in
from baton.store.tables import activities, leads, reps

CHUNK = 200
"""Rows written per transaction at most: captures and the worker get their turns. On
PostgreSQL a transaction also ends after a row that may have routed a handoff (its lead
is an MQL after it). Routing locks pools, then reps, after the leads; a later row of the
same transaction would lock its lead, and then its own pools and reps, after them, and
a capture or another import taking the same rows in the global order would deadlock
with it. Ending the transaction there keeps every transaction's locks in that order
(leads, then at most one routing's pools and reps); what is written, reported and
handed off is the same as with one transaction per chunk. SQLite has one writer at a
time, which cannot deadlock: its chunks stay whole (a commit per hot row cost about a
third of a scans import's speed there)."""

ROW_LOCKING = frozenset({"postgresql"})
"""The databases whose writers lock rows, and can therefore deadlock (see :data:`CHUNK`)."""

EVENT_SOURCE = "event"
"""The source of leads a badge scan creates (the event is their campaign)."""

LEAD_PARTS = ("email", "phone", "first_name", "last_name", "company", "title", "country")


class ScanRow(BaseModel):
    """One valid row: the person, the rating, who scanned, when, notes and the file's
    other columns."""

    model_config = ConfigDict(frozen=True)

    lead: LeadCreate
    rating: Rating | None
    rep: str | None
    rep_name: str | None
    scanned_at: datetime | None
    notes: str | None
    extras: dict[str, Any]
    key: str


@dataclass
class ScanReport(ImportReport):
    """What a scan import did, besides what every import reports: the scans recorded,
    rows already imported, hot rows handed off (``mql``) and cold leads nurtured."""

    hot: int = 0
    warm: int = 0
    cold: int = 0
    nurtured: int = 0


def _roster(ctx: Context) -> list[RosterRep]:
    with ctx.read() as connection:
        return [
            RosterRep(int(r.id), str(r.email), str(r.name))
            for r in connection.execute(select(reps.c.id, reps.c.email, reps.c.name))
        ]


def _validator(
    event: str,
    roster: Sequence[RosterRep],
    *,
    zone: str,
    day_first: bool,
    now: datetime,
    source: str,
) -> Any:
    def run(
        model: type[ScanRow],
        rows: Sequence[tuple[int, Mapping[str, Any]]],
        context: Mapping[str, Any],
    ) -> tuple[list[tuple[int, ScanRow]], list[RowError], list[RowError]]:
        good: list[tuple[int, ScanRow]] = []
        errors: list[RowError] = []
        warnings: list[RowError] = []
        for number, raw in rows:
            problems: list[RowError] = []
            person = {k: raw[k] for k in LEAD_PARTS if k in raw}
            if "name" in raw and not (person.get("first_name") or person.get("last_name")):
                first, last = split_name(str(raw["name"]))
                person.update({k: v for k, v in (("first_name", first), ("last_name", last)) if v})
            person.update({"source": source, "campaign": event})
            valid, lead_errors, lead_warnings = validate_lead_rows(
                LeadCreate, [(number, person)], context
            )
            problems.extend(lead_errors)
            rating = None
            if raw.get("rating"):
                try:
                    rating = read_rating(str(raw["rating"]))
                except ValueError as exc:
                    problems.append(RowError(number, "rating", str(exc)))
            rep = None
            if raw.get("scanned_by"):
                try:
                    rep = resolve_rep(str(raw["scanned_by"]), roster)
                except ValueError as exc:
                    problems.append(RowError(number, "scanned_by", str(exc)))
            scanned_at = None
            if raw.get("scanned_at"):
                try:
                    scanned_at = read_instant(
                        str(raw["scanned_at"]), zone=zone, day_first=day_first
                    )
                except ValueError as exc:
                    problems.append(RowError(number, "scanned_at", str(exc)))
                else:
                    if scanned_at > now + MAX_FUTURE_SKEW:
                        problems.append(
                            RowError(
                                number, "scanned_at", f"'{raw['scanned_at']}' is in the future"
                            )
                        )
            if problems or not valid:
                errors.extend(problems)
                continue
            lead = valid[0][1]
            warnings.extend(lead_warnings)
            identity = email_key(lead.email) if lead.email else str(lead.phone or "")
            good.append(
                (
                    number,
                    ScanRow(
                        lead=lead,
                        rating=rating,
                        rep=rep.email if rep else None,
                        rep_name=rep.name if rep else None,
                        scanned_at=scanned_at,
                        notes=str(raw["notes"]) if raw.get("notes") else None,
                        extras=dict(raw.get("properties") or {}),
                        key=scan_key(event, identity, scanned_at),
                    ),
                )
            )
        return good, errors, warnings

    return run


def import_scans(
    ctx: Context,
    source: Path | IO[str],
    *,
    event: str,
    actor: Principal,
    column_map: Mapping[str, str] | None = None,
    progress: Progress | None = None,
    encoding: str = "utf-8-sig",
    naive_timezone: str = "UTC",
    day_first: bool = False,
    lead_source: str = EVENT_SOURCE,
) -> ScanReport:
    """Import an event's badge scans (see the module docstring). ``event`` names the
    event (``SaaStr 2026``): it is the campaign of the leads the scans create and part
    of each scan's key. Times without a zone are read in ``naive_timezone``;
    ``02/03/2026`` is 2 March with ``day_first``."""
    allowed(actor, Action.CAPTURE_LEAD)
    allowed(actor, Action.INGEST_ACTIVITY)
    allowed(actor, Action.CHANGE_STAGE)
    event = " ".join(event.split())
    if not event or len(event) > 200:
        message = "name the event (1 to 200 characters), e.g. --event 'SaaStr 2026'"
        raise ValidationFailed(message, [FieldProblem("event", message)])
    now = ctx.clock.now()
    report, good = _read_and_validate(
        source,
        encoding=encoding,
        aliases=SCAN_ALIASES,
        known=SCAN_COLUMNS,
        column_map=column_map,
        extras_key="properties",
        model=ScanRow,
        context={
            "default_region": ctx.settings.default_phone_region,
            "json_limits": ctx.settings.json_limits,
        },
        validate=_validator(
            event,
            _roster(ctx),
            zone=naive_timezone,
            day_first=day_first,
            now=now,
            source=fold_source(lead_source) or EVENT_SOURCE,
        ),
        step=1000,
        progress=progress,
    )
    scans = ScanReport(**{f: getattr(report, f) for f in ImportReport.__dataclass_fields__})
    done = 0
    row_locks = ctx.dialect in ROW_LOCKING
    while done < len(good):
        with ctx.write() as connection:
            end = min(done + CHUNK, len(good))
            while done < end:
                number, row = good[done]
                done += 1
                routed = _write_scan(
                    connection, number, row, event=event, actor=actor, now=now, report=scans
                )
                if routed and row_locks:
                    break
        if progress:
            progress("writing", done, len(good))
    scans.errors.sort(key=lambda e: e.row)
    scans.warnings.sort(key=lambda e: e.row)
    return scans


def _write_scan(
    connection: Any,
    number: int,
    row: ScanRow,
    *,
    event: str,
    actor: Principal,
    now: datetime,
    report: ScanReport,
) -> bool:
    """One row inside the chunk's transaction (see the module docstring). Returns
    whether the row may have opened and routed a handoff (its lead is an MQL after it):
    on PostgreSQL the caller then commits before the next row (see :data:`CHUNK`)."""
    known = connection.execute(
        select(activities.c.id).where(activities.c.idempotency_key == row.key)
    ).first()
    if known is not None:
        report.duplicates += 1
        return False
    captured = capture_lead_in(connection, row.lead, actor=actor, now=now)
    lead_id = captured.lead_id
    if captured.created:
        report.created += 1
    elif captured.changed_fields:
        report.updated += 1
    else:
        report.unchanged += 1
    if row.rating is Rating.COLD:
        report.cold += 1
        stage = connection.execute(select(leads.c.stage).where(leads.c.id == lead_id)).scalar_one()
        if stage == Stage.LEAD.value:
            change_stage_in(
                connection,
                lead_id,
                Stage.NURTURE,
                actor=actor,
                reason=f"cold badge scan at {event}",
                now=now,
            )
            report.nurtured += 1
        elif stage != Stage.NURTURE.value:
            report.warnings.append(
                RowError(
                    number,
                    "rating",
                    f"cold, but lead {lead_id} is in stage {stage} (sales holds it or it is "
                    "closed): it stays there",
                )
            )
    elif row.rating is Rating.HOT:
        report.hot += 1
    elif row.rating is Rating.WARM:
        report.warm += 1
    properties: dict[str, Any] = {**row.extras, "event": event}
    for name, value in (
        ("rating", row.rating.value if row.rating else None),
        ("scanned_by", row.rep),
        ("scanned_by_name", row.rep_name),
        ("notes", row.notes),
    ):
        if value is not None:
            properties[name] = value
    events = [
        ActivityCreate(
            lead_id=lead_id,
            type=ActivityType.EVENT_BOOTH_SCAN,
            occurred_at=row.scanned_at,
            properties=properties,
            idempotency_key=row.key,
        )
    ]
    if row.rating is Rating.HOT:
        events.append(
            ActivityCreate(
                lead_id=lead_id,
                type=ActivityType.EVENT_HOT_SCAN,
                occurred_at=row.scanned_at,
                properties={
                    k: v
                    for k, v in (("event", event), ("scanned_by", row.rep), ("notes", row.notes))
                    if v is not None
                },
                idempotency_key=row.key + ":hot",
            )
        )
    stored = ingest_validated_in(connection, list(enumerate(events)), actor=actor, now=now)
    report.stored += 1 if stored.stored else 0
    report.mql += len(stored.mql)
    assert captured.lead is not None  # scans change stages, which no intake key may
    return captured.lead.stage == Stage.MQL.value or bool(stored.mql)
