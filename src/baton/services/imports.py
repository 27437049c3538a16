"""CSV import and export of leads and activities.

An import reads the whole file, validates every row (collecting row-level errors with
the file's line numbers), then writes every valid row in **one** transaction with
set-based statements. So a file is never half-imported: either all its valid rows are
stored or, if the database fails, none are; invalid rows never block valid ones.

Columns are matched by header name, forgivingly (``E-mail``, ``Email Address`` and
``email`` are one column); columns Baton does not know are kept in the lead's
``attributes`` (for leads) or the event's ``properties`` (for activities), never dropped.

An import is many captures (or activities) at once and obeys the same rules
(:data:`~baton.domain.access.Action.CAPTURE_LEAD`, ``INGEST_ACTIVITY``); an export
lists only the leads the principal may read.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any, TypeVar

from pydantic import BaseModel
from sqlalchemy import bindparam, select, update
from sqlalchemy.engine import Connection

from baton.domain.access import Action, Principal, Reach
from baton.domain.activities import ActivityCreate, ActivityType
from baton.domain.batches import RowError, validate_many, validate_rows
from baton.domain.contact import company_key, email_domain, email_key
from baton.domain.errors import FieldProblem, ValidationFailed
from baton.domain.leads import ATTRIBUTION_FIELDS, PROFILE_FIELDS, LeadCreate, merge_profile
from baton.domain.lifecycle import INITIAL_STAGE
from baton.domain.scoring import Event
from baton.services.access import allowed, lead_scope
from baton.services.activities import ingest_validated_in, validation_context
from baton.services.context import Context
from baton.services.leads import flag_possible_duplicates, keep_identity, with_intake_source
from baton.services.queries import chunks, lock_survivors
from baton.services.scoring import score_leads_in
from baton.store.bulk import bump_counters, find_by_keys, insert_activities, insert_rows
from baton.store.tables import leads

Progress = Callable[[int], None]
"""Called with the number of rows just processed (for a progress bar)."""

LEAD_ALIASES: dict[str, str] = {
    "e_mail": "email",
    "email_address": "email",
    "mail": "email",
    "work_email": "email",
    "phone_number": "phone",
    "mobile": "phone",
    "telephone": "phone",
    "tel": "phone",
    "mobile_phone": "phone",
    "first": "first_name",
    "firstname": "first_name",
    "given_name": "first_name",
    "last": "last_name",
    "lastname": "last_name",
    "surname": "last_name",
    "family_name": "last_name",
    "company_name": "company",
    "organization": "company",
    "organisation": "company",
    "account": "company",
    "account_name": "company",
    "job_title": "title",
    "position": "title",
    "role": "title",
    "country_code": "country",
    "state": "region",
    "province": "region",
    "county": "region",
    "zip": "postal_code",
    "zip_code": "postal_code",
    "postcode": "postal_code",
    "postal": "postal_code",
    "lead_source": "source",
    "channel": "source",
    "campaign_name": "campaign",
    "opt_in": "consent",
    "marketing_consent": "consent",
    "email_consent": "consent",
}
LEAD_COLUMNS = frozenset({*PROFILE_FIELDS, *ATTRIBUTION_FIELDS, "consent"})

ACTIVITY_ALIASES: dict[str, str] = {
    "e_mail": "email",
    "email_address": "email",
    "event": "type",
    "event_type": "type",
    "activity": "type",
    "activity_type": "type",
    "timestamp": "occurred_at",
    "time": "occurred_at",
    "date": "occurred_at",
    "occurred": "occurred_at",
    "event_id": "idempotency_key",
    "id": "idempotency_key",
    "key": "idempotency_key",
}
ACTIVITY_COLUMNS = frozenset(
    {"email", "lead_id", "type", "occurred_at", "idempotency_key", "source", "campaign"}
)

_HEADER = re.compile(r"[^a-z0-9]+")
_TRUE = frozenset({"1", "true", "yes", "y", "opt-in", "opted in", "subscribed"})
_FALSE = frozenset({"0", "false", "no", "n", "opt-out", "opted out", "unsubscribed"})


def header_key(raw: str) -> str:
    return _HEADER.sub("_", raw.strip().lower()).strip("_")


def map_headers(
    headers: Sequence[str],
    aliases: Mapping[str, str],
    known: frozenset[str],
    overrides: Mapping[str, str] | None = None,
) -> dict[str, str | None]:
    """Header -> field name; ``None`` means "keep as an extra attribute/property".
    ``overrides`` (header -> field) come from ``--map`` and win."""
    by_key = {header_key(k): v for k, v in (overrides or {}).items()}
    mapping: dict[str, str | None] = {}
    for header in headers:
        key = header_key(header)
        target = by_key.get(key) or aliases.get(key) or (key if key in known else None)
        mapping[header] = target
    return mapping


@dataclass
class ImportReport:
    """What an import did. Row numbers are the file's line numbers (header = line 1)."""

    rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    stored: int = 0
    duplicates: int = 0
    possible_duplicates: int = 0
    mql: int = 0
    errors: list[RowError] = field(default_factory=list)
    extra_columns: list[str] = field(default_factory=list)

    @property
    def rejected(self) -> int:
        return len({e.row for e in self.errors})


class ImportFileError(ValidationFailed):
    """The file as a whole cannot be read (encoding, CSV syntax, headers)."""

    title = "File cannot be imported"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, [FieldProblem("(file)", detail)])


MAX_CELL = 1_000_000
csv.field_size_limit(MAX_CELL)


def _read_csv(
    source: Path | IO[str], encoding: str = "utf-8-sig"
) -> tuple[list[str], list[dict[str, str]]]:
    """Headers and rows of a CSV file; the delimiter is sniffed (comma, semicolon, tab,
    pipe). Raises :class:`ImportFileError` with a line number where it can."""
    if isinstance(source, Path):
        try:
            text = source.read_bytes().decode(encoding)
        except UnicodeDecodeError as exc:
            line = source.read_bytes()[: exc.start].count(b"\n") + 1
            raise ImportFileError(
                f"line {line} is not valid {encoding} text; give the file's encoding with "
                "--encoding (for example latin-1 or utf-16)"
            ) from None
        except LookupError:
            raise ImportFileError(f"unknown encoding {encoding!r}") from None
        stream: IO[str] = io.StringIO(text.removeprefix("\ufeff"))
    else:
        stream = source
    sample = stream.read(65536)
    stream.seek(0)
    if not sample.strip():
        raise ImportFileError("the file is empty")
    try:
        sniffed: Any = csv.Sniffer().sniff(sample, delimiters=",;\t|")
        delimiter = sniffed.delimiter
    except csv.Error:
        delimiter = ","

    class Dialect(csv.excel):
        pass

    Dialect.delimiter = delimiter
    Dialect.doublequote = True
    reader = csv.DictReader(stream, dialect=Dialect)
    try:
        rows = list(reader)
    except csv.Error as exc:
        raise ImportFileError(f"line {reader.line_num}: not valid CSV ({exc})") from None
    headers = list(reader.fieldnames or [])
    seen: set[str] = set()
    for header in headers:
        key = header_key(header)
        if not key:
            raise ImportFileError("a column has no header name")
        if key in seen:
            raise ImportFileError(f"the header {header!r} appears twice")
        seen.add(key)
    if not rows:
        raise ImportFileError("the file has a header but no rows")
    return headers, rows


def _check_mapping(mapping: Mapping[str, str | None]) -> None:
    targets: dict[str, str] = {}
    for header, target in mapping.items():
        if target is None:
            continue
        if target in targets:
            raise ImportFileError(
                f"the columns {targets[target]!r} and {header!r} both map to {target}; "
                "rename one, or map it elsewhere with --map"
            )
        targets[target] = header


def _parse_bool(value: str) -> bool | str:
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    return value


def _payload(
    row: Mapping[str, str | None], mapping: Mapping[str, str | None], extras_key: str
) -> dict[str, Any]:
    """One CSV row as model input: mapped columns by field name, ``consent`` read as a
    yes/no answer, and every unmapped column kept under ``extras_key``."""
    payload: dict[str, Any] = {}
    extras: dict[str, Any] = {}
    for header, value in row.items():
        if header is None:
            raise ValueError("row has more cells than the header")
        if value is None or value == "":
            continue
        target = mapping.get(header)
        if target is None:
            extras[header_key(header)] = value
        elif target == "consent":
            payload["consent"] = _parse_bool(value)
        else:
            payload[target] = value
    if extras:
        payload[extras_key] = extras
    return payload


M = TypeVar("M", bound=BaseModel)


def _read_and_validate(
    source: Path | IO[str],
    *,
    encoding: str,
    aliases: Mapping[str, str],
    known: frozenset[str],
    column_map: Mapping[str, str] | None,
    extras_key: str,
    model: type[M],
    context: Mapping[str, Any],
    validate: Callable[..., tuple[list[tuple[int, M]], list[RowError]]],
    step: int,
    progress: Progress | None,
) -> tuple[ImportReport, list[tuple[int, M]]]:
    """The part both imports share: read the file, map its headers, build each row's
    input (a malformed row is a row error) and validate ``step`` rows at a time. Row
    numbers are the file's line numbers."""
    headers, rows = _read_csv(source, encoding)
    report = ImportReport(rows=len(rows))
    mapping = map_headers(headers, aliases, known, column_map)
    _check_mapping(mapping)
    report.extra_columns = [h for h, target in mapping.items() if target is None]
    payloads: list[tuple[int, dict[str, Any]]] = []
    for index, row in enumerate(rows):
        line = index + 2
        try:
            payloads.append((line, _payload(row, mapping, extras_key)))
        except ValueError as exc:
            report.errors.append(RowError(line, "(row)", str(exc)))
    good: list[tuple[int, M]] = []
    for start in range(0, len(payloads), step):
        part = payloads[start : start + step]
        valid, errors = validate(model, part, context)
        good.extend(valid)
        report.errors.extend(errors)
        if progress:
            progress(len(part))
    return report, good


def import_leads(
    ctx: Context,
    source: Path | IO[str],
    *,
    actor: Principal,
    column_map: Mapping[str, str] | None = None,
    progress: Progress | None = None,
    encoding: str = "utf-8-sig",
) -> ImportReport:
    """Import a leads CSV: create-or-update by email, in one transaction, recorded as
    ``actor``'s captures."""
    allowed(actor, Action.CAPTURE_LEAD)
    report, good = _read_and_validate(
        source,
        encoding=encoding,
        aliases=LEAD_ALIASES,
        known=LEAD_COLUMNS,
        column_map=column_map,
        extras_key="attributes",
        model=LeadCreate,
        context={"default_region": ctx.settings.default_phone_region},
        validate=validate_rows,
        step=2000,
        progress=progress,
    )
    with ctx.write() as connection:
        write_leads_in(
            connection, good, actor=actor, now=ctx.clock.now(), report=report, progress=progress
        )
    report.errors.sort(key=lambda e: e.row)
    return report


_MERGEABLE_INPUT = (
    *PROFILE_FIELDS,
    *ATTRIBUTION_FIELDS,
    "last_source",
    "last_campaign",
    "attributes",
    "consent",
)


def _ids_of(connection: Connection, identities: Sequence[str]) -> dict[str, int]:
    """Identity (email key, or ``phone:<e164>`` for leads without email) -> lead id."""
    found: dict[str, int] = {}
    email_keys = [k for k in identities if not k.startswith("phone:")]
    for key, lead_id in find_by_keys(connection, leads, "email_key", email_keys, "id"):
        found[key] = lead_id
    phones = [k.removeprefix("phone:") for k in identities if k.startswith("phone:")]
    for part in chunks(phones):
        for phone, lead_id in connection.execute(
            select(leads.c.phone, leads.c.id)
            .where(leads.c.phone.in_(part), leads.c.email_key.is_(None))
            .order_by(leads.c.id.desc())
        ):
            found[f"phone:{phone}"] = lead_id
    return found


def _lock_survivors(connection: Connection, lead_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    """Lock the leads (see :func:`~baton.services.queries.lock_survivors`) and map each
    id to the full row of the lead that now stands for it."""
    final = lock_survivors(connection, lead_ids)
    rows: dict[int, dict[str, Any]] = {}
    for part in chunks(sorted({t for t in final.values() if t is not None})):
        for row in connection.execute(select(leads).where(leads.c.id.in_(part))).mappings():
            rows[row["id"]] = dict(row)
    return {i: rows[t] for i, t in final.items() if t is not None}


def _identity(lead: LeadCreate) -> str:
    return email_key(lead.email) if lead.email else f"phone:{lead.phone}"


def write_leads_in(
    connection: Connection,
    good: Sequence[tuple[int, LeadCreate]],
    *,
    actor: Principal,
    now: datetime,
    report: ImportReport,
    progress: Progress | None = None,
    captured_at: Mapping[int, datetime] | None = None,
) -> dict[str, int]:
    """Create-or-update many validated leads with set-based statements inside the
    caller's transaction; the same rules as one capture (the caller checked that
    ``actor`` may capture). Returns identity -> lead id.

    ``captured_at`` (row number -> time) dates individual captures, for replaying
    history (the demo, backfills); rows not in it are captured ``now``."""
    when = captured_at or {}
    first_at: dict[str, datetime] = {}
    combined: dict[str, dict[str, Any]] = {}
    touches: list[tuple[str, dict[str, Any], datetime]] = []
    for number, lead in good:
        lead = with_intake_source(lead, actor)
        key = _identity(lead)
        incoming = {**lead.fields(), "attributes": lead.attributes, "consent": lead.consent}
        if key in combined:
            combined[key].update(merge_profile(combined[key], incoming))
        else:
            combined[key] = {**incoming, "last_source": lead.source, "last_campaign": lead.campaign}
        touch = {name: v for name in ATTRIBUTION_FIELDS if (v := getattr(lead, name))}
        at = when.get(number, now)
        touches.append((key, touch, at))
        first_at[key] = min(first_at.get(key, at), at)

    ids = _ids_of(connection, list(combined))
    new_rows: list[dict[str, Any]] = []
    for key, values in combined.items():
        if key in ids:
            continue
        email = values.get("email")
        new_rows.append(
            {
                **{c: values.get(c) for c in (*PROFILE_FIELDS, *ATTRIBUTION_FIELDS)},
                "email_key": email_key(email) if email else None,
                "email_domain": email_domain(email) if email else None,
                "company_key": company_key(values.get("company")),
                "last_source": values.get("last_source"),
                "last_campaign": values.get("last_campaign"),
                "attributes": values.get("attributes") or {},
                "consent": values.get("consent"),
                "stage": INITIAL_STAGE.value,
                "stage_changed_at": first_at[key],
                "created_at": first_at[key],
                "updated_at": first_at[key],
                "activity_count": 0,
            }
        )
    existed = set(ids)
    # A lead created by another writer since the look-up is skipped here and updated
    # below like any existing lead.
    new_rows.sort(key=lambda r: (r["email_key"] or "", r["phone"] or ""))  # no deadlocks
    insert_rows(connection, leads, new_rows, ignore_conflicts=True)
    ids.update(_ids_of(connection, [k for k in combined if k not in ids]))
    report.created += len(new_rows)

    survivors = _lock_survivors(connection, sorted({ids[k] for k in existed}))
    pending: dict[int, dict[str, Any]] = {}
    for key, values in combined.items():
        if key not in existed:
            continue
        target = survivors[ids[key]]
        ids[key] = int(target["id"])
        current = pending.setdefault(int(target["id"]), dict(target))
        changes = merge_profile(current, values)
        keep_identity(current, changes)
        current.update(changes)
    by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for lead_id in sorted(pending):
        current = pending[lead_id]
        original = survivors[lead_id]
        changes = {c: current[c] for c in _MERGEABLE_INPUT if current.get(c) != original.get(c)}
        if not changes:
            report.unchanged += 1
            continue
        report.updated += 1
        if "email" in changes:
            changes["email_key"] = email_key(changes["email"])
            changes["email_domain"] = email_domain(changes["email"])
        if "company" in changes:
            changes["company_key"] = company_key(changes["company"])
        columns = tuple(sorted(changes))
        by_columns.setdefault(columns, []).append(
            {"lid": lead_id, **{f"v_{c}": v for c, v in changes.items()}}
        )
    for columns, rows in by_columns.items():
        connection.execute(
            update(leads)
            .where(leads.c.id == bindparam("lid"))
            .values({c: bindparam(f"v_{c}") for c in columns} | {"updated_at": now}),
            rows,
        )

    captured: list[dict[str, Any]] = []
    latest: dict[int, datetime] = {}
    counts: dict[int, int] = {}
    for key, touch, at in touches:
        lead_id = ids[key]
        counts[lead_id] = counts.get(lead_id, 0) + 1
        latest[lead_id] = max(latest.get(lead_id, at), at)
        captured.append(
            {
                "lead_id": lead_id,
                "type": ActivityType.CAPTURED.value,
                "occurred_at": at,
                "received_at": at,
                "properties": touch,
                "idempotency_key": None,
                "recorded_by": actor.name,
            }
        )
    insert_activities(connection, captured)
    if counts:
        bump_counters(connection, {i: (n, latest[i]) for i, n in counts.items()})
    touched: dict[int, list[Event]] = {}
    for row_values in captured:
        touched.setdefault(row_values["lead_id"], []).append(
            Event(row_values["type"], row_values["occurred_at"], row_values["properties"])
        )
    report.mql += sum(
        u.became_mql
        for u in score_leads_in(
            connection, sorted(touched), now=now, actor=actor, new_events=touched
        )
    )
    new_ids = [
        ids[r["email_key"] or f"phone:{r['phone']}"]
        for r in new_rows
        if r["phone"] or r["company_key"] or r["email_domain"]
    ]
    report.possible_duplicates += len(flag_possible_duplicates(connection, new_ids, now=now))
    return ids


def import_activities(
    ctx: Context,
    source: Path | IO[str],
    *,
    actor: Principal,
    column_map: Mapping[str, str] | None = None,
    naive_timezone: str = "UTC",
    progress: Progress | None = None,
    encoding: str = "utf-8-sig",
) -> ImportReport:
    """Import an activities CSV in one transaction (idempotency keys honoured: a file
    imported twice stores its keyed events once), recorded as ``actor``'s."""
    allowed(actor, Action.INGEST_ACTIVITY)
    report, good = _read_and_validate(
        source,
        encoding=encoding,
        aliases=ACTIVITY_ALIASES,
        known=ACTIVITY_COLUMNS,
        column_map=column_map,
        extras_key="properties",
        model=ActivityCreate,
        context=validation_context(ctx, naive_timezone),
        validate=validate_many,
        step=5000,
        progress=progress,
    )
    with ctx.write() as connection:
        for start in range(0, len(good), 10_000):
            batch = good[start : start + 10_000]
            result = ingest_validated_in(connection, batch, actor=actor, now=ctx.clock.now())
            report.stored += result.stored
            report.duplicates += result.duplicates
            report.created += result.leads_created
            report.errors.extend(result.errors)
    report.errors.sort(key=lambda e: e.row)
    return report


EXPORT_COLUMNS = (
    "id",
    *PROFILE_FIELDS,
    *ATTRIBUTION_FIELDS,
    "last_source",
    "last_campaign",
    "consent",
    "stage",
    "stage_changed_at",
    "created_at",
    "last_activity_at",
    "activity_count",
    "attributes",
)


def export_leads(
    ctx: Context,
    out: IO[str],
    *,
    actor: Principal,
    fmt: str = "csv",
    stage: str | None = None,
    page: int = 5000,
) -> int:
    """Write every (unmerged) lead ``actor`` may read to ``out`` as CSV or JSON lines;
    returns the count. Reads page by page so memory stays flat on large databases."""
    level = allowed(actor, Action.READ_LEADS)
    written = 0
    writer = csv.writer(out) if fmt == "csv" else None
    if writer:
        writer.writerow(EXPORT_COLUMNS)
    last_id = 0
    while True:
        with ctx.read() as connection:
            query = select(*(leads.c[c] for c in EXPORT_COLUMNS)).where(
                leads.c.merged_into_id.is_(None), leads.c.id > last_id
            )
            if stage:
                query = query.where(leads.c.stage == stage)
            if level is not Reach.ALL:
                query = query.where(lead_scope(actor, level))
            rows = connection.execute(query.order_by(leads.c.id).limit(page)).mappings().all()
        if not rows:
            return written
        for row in rows:
            values = {c: row[c] for c in EXPORT_COLUMNS}
            for name in ("stage_changed_at", "created_at", "last_activity_at"):
                if values[name] is not None:
                    values[name] = values[name].isoformat()
            if writer:
                values["attributes"] = json.dumps(values["attributes"], sort_keys=True)
                writer.writerow([values[c] for c in EXPORT_COLUMNS])
            else:
                out.write(json.dumps(values, sort_keys=False) + "\n")
            written += 1
        last_id = rows[-1]["id"]
