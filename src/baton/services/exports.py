"""Exports: the one path every download of Baton's data takes (the CLI's ``baton
export``, the API's ``/api/v1/exports/...``, the web pages, an import's errors file).

Going through one path buys three guarantees everywhere at once:

* **Safe cells.** Every CSV cell is written by :func:`baton.domain.cells.csv_cell`: a
  text that a spreadsheet would run as a formula (``=HYPERLINK(...)`` as a name) is
  neutralised; the import strips the guard again, so export → import gives the same
  values back.
* **Object-level access.** An export lists what the principal may read and nothing
  else (:mod:`baton.services.access`: a rep's leads are those of their handoffs).
* **Flat memory.** Rows are read page by page by id (keyset), each page in its own
  short read transaction, and written as they come: a million leads stream through
  a few thousand rows of memory, and a slow download never holds a transaction (or,
  on SQLite, the database) open while the client reads. The price: a row changed
  while the export runs may show its state before or after the change, as a list
  paged by hand would.

An export is prepared first (:func:`lead_export` and its siblings check the role and
validate the filters, raising before the first byte is written, so an HTTP answer can
still be a 403 or a 422), then written or streamed (:meth:`Export.chunks`).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import IO, Any

from sqlalchemy import and_, exists, func, select
from sqlalchemy.engine import Connection, RowMapping

from baton.domain.access import Action, Principal, Reach
from baton.domain.cells import csv_cell
from baton.domain.errors import FieldProblem, ValidationFailed
from baton.domain.exports import (
    ACTIVITY_COLUMNS,
    CRM_COLUMNS,
    FORMATS,
    HANDOFF_COLUMNS,
    LEAD_COLUMNS,
    VERDICT_COLUMNS,
    VERDICT_KINDS,
    ActivityFilter,
    Column,
    HandoffFilter,
    LeadFilter,
    VerdictFilter,
    check_crm,
    crm_value,
    export_filename,
    read_filter,
)
from baton.domain.search import search_tokens
from baton.services.access import allowed, check_lead, handoff_scope, lead_scope, rep_scope
from baton.services.context import Context
from baton.services.queries import chunks, tags_of
from baton.store.search import search_condition
from baton.store.tables import (
    activities,
    handoff_events,
    handoffs,
    lead_scores,
    lead_tags,
    leads,
    reps,
)

PAGE = 1000
"""Rows read per page (per short read transaction)."""

Page = Callable[[Connection, int, int], list[dict[str, Any]]]
"""Reads the next page: (connection, last id seen, page size) -> rows, by id."""


@dataclass(frozen=True)
class Export:
    """A prepared export: what it is (``kind``: leads, handoffs, activities), its
    columns, and how to read it page by page. Nothing is read until it is written."""

    kind: str
    columns: tuple[Column, ...]
    ctx: Context
    page: Page
    size: int = PAGE

    def pages(self) -> Iterator[list[dict[str, Any]]]:
        """Every row, as column -> value, in id order, a page at a time (each page read
        in its own short transaction, closed before the page is handed on)."""
        last = 0
        while True:
            with self.ctx.read() as connection:
                rows = self.page(connection, last, self.size)
            if not rows:
                return
            yield rows
            last = int(rows[-1]["id"])

    def chunks(self, fmt: str = "csv") -> Iterator[str]:
        """The file as text, one chunk per page (the CSV header first): what an HTTP
        response streams."""
        check_format(fmt)
        names = [name for name, _ in self.columns]
        if fmt == "csv":
            buffer = io.StringIO()
            writer = csv.writer(buffer)
            writer.writerow(names)
            yield _drain(buffer)
            for rows in self.pages():
                writer.writerows(
                    [csv_cell(row[name], kind) for name, kind in self.columns] for row in rows
                )
                yield _drain(buffer)
            return
        for rows in self.pages():
            yield "".join(_json_line(row, names) for row in rows)

    def write(self, out: IO[str], fmt: str = "csv") -> int:
        """Write the whole export to ``out``; returns the number of rows."""
        check_format(fmt)
        count = 0
        names = [name for name, _ in self.columns]
        if fmt == "csv":
            writer = csv.writer(out)
            writer.writerow(names)
            for rows in self.pages():
                writer.writerows(
                    [csv_cell(row[name], kind) for name, kind in self.columns] for row in rows
                )
                count += len(rows)
            return count
        for rows in self.pages():
            out.write("".join(_json_line(row, names) for row in rows))
            count += len(rows)
        return count

    def filename(self, fmt: str = "csv") -> str:
        """The name a download is saved under (``baton-leads-20260302T0900Z.csv``)."""
        return export_filename(self.kind, fmt, self.ctx.clock.now())


def _drain(buffer: io.StringIO) -> str:
    text = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
    return text


def _json_value(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def _json_line(row: Mapping[str, Any], names: Sequence[str]) -> str:
    """One row as a JSON line: the same columns, with their JSON types (numbers,
    booleans, lists, objects; times in ISO 8601). JSON lines are read by programs,
    not spreadsheets: nothing is neutralised."""
    return json.dumps({n: _json_value(row[n]) for n in names}, ensure_ascii=True) + "\n"


def check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise ValidationFailed(
            f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}",
            [FieldProblem("format", f"use one of {', '.join(FORMATS)}")],
        )


def write_table(
    out: IO[str],
    headers: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    delimiter: str = ",",
    lineterminator: str = "\r\n",
) -> int:
    """Write a table of text (a file's own columns, as an import's errors file gives
    them back, or a report's rows) as CSV with ``delimiter``, every cell and header
    written by the cell rule; returns the number of rows."""
    writer = csv.writer(out, delimiter=delimiter, lineterminator=lineterminator)
    writer.writerow([csv_cell(h) for h in headers])
    count = 0
    for row in rows:
        writer.writerow([csv_cell(value) for value in row])
        count += 1
    return count


# --- leads ---------------------------------------------------------------------------

_LEAD_FIELDS = tuple(
    name
    for name, _ in LEAD_COLUMNS
    if name
    not in {"score", "grade", "fit", "engagement", "tags", "owner_rep_name", "owner_rep_email"}
)


def _rep_id(connection: Connection, actor: Principal, email: str, option: str) -> int:
    """The rep with this email among those ``actor`` may read, or a filter error."""
    level = allowed(actor, Action.READ_REPS)
    found = connection.execute(
        select(reps.c.id).where(func.lower(reps.c.email) == email, rep_scope(actor, level))
    ).scalar()
    if found is None:
        message = f"no rep has the email {email}"
        raise ValidationFailed(
            f"invalid export filter: {option}: {message}", [FieldProblem(option, message)]
        )
    return int(found)


def _latest_handoff_rep(connection: Connection, lead_ids: Sequence[int]) -> dict[int, RowMapping]:
    """Lead id -> (name, email) of the rep of its latest handoff, when it has one."""
    found: dict[int, RowMapping] = {}
    for part in chunks(list(lead_ids)):
        latest = (
            select(handoffs.c.lead_id, func.max(handoffs.c.id).label("handoff_id"))
            .where(handoffs.c.lead_id.in_(part))
            .group_by(handoffs.c.lead_id)
            .subquery()
        )
        rows = connection.execute(
            select(latest.c.lead_id, reps.c.name, reps.c.email).select_from(
                latest.join(handoffs, handoffs.c.id == latest.c.handoff_id).join(
                    reps, reps.c.id == handoffs.c.rep_id
                )
            )
        ).mappings()
        for row in rows:
            found[int(row["lead_id"])] = row
    return found


def lead_export(
    ctx: Context,
    *,
    actor: Principal,
    filters: LeadFilter | Mapping[str, Any] | None = None,
    page: int = PAGE,
    columns: str | None = None,
) -> Export:
    """The leads ``actor`` may read (merged ones left out) that match ``filters``
    (:class:`~baton.domain.exports.LeadFilter`: stage, source, owner rep, tag, grade,
    created since/until), with their score, grade, tags and owner rep.

    ``columns="salesforce"`` or ``"hubspot"`` names and fills the columns as that CRM's
    lead (contact) import template does (:data:`~baton.domain.exports.CRM_COLUMNS`),
    to load the leads back into it; ``None`` (or ``"baton"``): Baton's own columns."""
    crm = check_crm(columns)
    level = allowed(actor, Action.READ_LEADS)
    wanted = filters if isinstance(filters, LeadFilter) else read_filter(LeadFilter, filters or {})
    conditions: list[Any] = [leads.c.merged_into_id.is_(None)]
    if level is not Reach.ALL:
        conditions.append(lead_scope(actor, level))
    if wanted.stage:
        conditions.append(leads.c.stage.in_([s.value for s in wanted.stage]))
    if wanted.source:
        conditions.append(leads.c.source == wanted.source)
    if wanted.tag:
        conditions.append(
            leads.c.id.in_(select(lead_tags.c.lead_id).where(lead_tags.c.tag == wanted.tag))
        )
    if wanted.grade:
        conditions.append(lead_scores.c.grade.in_(list(wanted.grade)))
    if wanted.q and (words := search_tokens(wanted.q)):
        conditions.append(search_condition(ctx.dialect, words))
    if wanted.since:
        conditions.append(leads.c.created_at >= wanted.since)
    if wanted.until:
        conditions.append(leads.c.created_at < wanted.until)
    if wanted.owner:
        with ctx.read() as connection:
            owner = _rep_id(connection, actor, wanted.owner, "owner")
        later = handoffs.alias("later")
        conditions.append(
            leads.c.id.in_(
                select(handoffs.c.lead_id).where(
                    handoffs.c.rep_id == owner,
                    ~exists().where(
                        and_(later.c.lead_id == handoffs.c.lead_id, later.c.id > handoffs.c.id)
                    ),
                )
            )
        )
    query = select(
        *(leads.c[name] for name in _LEAD_FIELDS),
        leads.c.unsubscribed_at,  # not a column of the file: read by the CRM mappings
        lead_scores.c.total.label("score"),
        lead_scores.c.grade,
        lead_scores.c.fit,
        lead_scores.c.engagement,
    ).select_from(leads.outerjoin(lead_scores, lead_scores.c.lead_id == leads.c.id))

    def read(connection: Connection, last: int, size: int) -> list[dict[str, Any]]:
        rows = [
            dict(row)
            for row in connection.execute(
                query.where(*conditions, leads.c.id > last).order_by(leads.c.id).limit(size)
            ).mappings()
        ]
        ids = [int(row["id"]) for row in rows]
        tags = tags_of(connection, ids)
        owners = _latest_handoff_rep(connection, ids)
        for row in rows:
            owner_row = owners.get(int(row["id"]))
            row["tags"] = tags[int(row["id"])]
            row["owner_rep_name"] = owner_row["name"] if owner_row else None
            row["owner_rep_email"] = owner_row["email"] if owner_row else None
        return rows

    if crm is not None:
        return _in_crm_columns(Export("leads", LEAD_COLUMNS, ctx, read, page), crm)
    return Export("leads", LEAD_COLUMNS, ctx, read, page)


def _in_crm_columns(export: Export, crm: str) -> Export:
    """``export`` (of leads) with the columns of ``crm``'s import template; the rows
    keep their ``id`` for paging."""
    template = CRM_COLUMNS[crm]

    def read(connection: Connection, last: int, size: int) -> list[dict[str, Any]]:
        return [
            {"id": row["id"], **{header: crm_value(row, src) for header, src, _ in template}}
            for row in export.page(connection, last, size)
        ]

    columns = tuple((header, kind) for header, _, kind in template)
    return Export(f"leads-{crm}", columns, export.ctx, read, export.size)


def export_leads(
    ctx: Context,
    out: IO[str],
    *,
    actor: Principal,
    fmt: str = "csv",
    stage: str | None = None,
    page: int = PAGE,
    **filters: Any,
) -> int:
    """Write the leads ``actor`` may read to ``out`` as CSV or JSON lines (see
    :func:`lead_export`); returns the count."""
    export = lead_export(ctx, actor=actor, filters={"stage": stage, **filters}, page=page)
    return export.write(out, fmt)


# --- handoffs ------------------------------------------------------------------------


def _verdict_words(connection: Connection, handoff_ids: Sequence[int]) -> dict[int, str]:
    """Handoff id -> the words given with its rejection (the note) or its lost deal."""
    found: dict[int, str] = {}
    for part in chunks(list(handoff_ids)):
        rows = connection.execute(
            select(handoff_events.c.handoff_id, handoff_events.c.kind, handoff_events.c.detail)
            .where(
                handoff_events.c.handoff_id.in_(part),
                handoff_events.c.kind.in_(["rejected", "lost"]),
            )
            .order_by(handoff_events.c.id)
        )
        for handoff_id, kind, detail in rows:
            words = (detail or {}).get("note" if kind == "rejected" else "reason")
            if words:
                found[int(handoff_id)] = str(words)
    return found


def handoff_export(
    ctx: Context,
    *,
    actor: Principal,
    filters: HandoffFilter | Mapping[str, Any] | None = None,
    page: int = PAGE,
) -> Export:
    """The handoffs ``actor`` may read (a rep's own, a manager's team's and the queue)
    that match ``filters`` (:class:`~baton.domain.exports.HandoffFilter`: status, rep,
    lead, opened since/until), with their lead, rep, verdict and moments."""
    level = allowed(actor, Action.READ_HANDOFFS)
    wanted = (
        filters if isinstance(filters, HandoffFilter) else read_filter(HandoffFilter, filters or {})
    )
    conditions: list[Any] = []
    if level is not Reach.ALL:
        conditions.append(handoff_scope(actor, level))
    if wanted.status:
        conditions.append(handoffs.c.status.in_(list(wanted.status)))
    if wanted.since:
        conditions.append(handoffs.c.created_at >= wanted.since)
    if wanted.until:
        conditions.append(handoffs.c.created_at < wanted.until)
    with ctx.read() as connection:
        if wanted.rep:
            conditions.append(handoffs.c.rep_id == _rep_id(connection, actor, wanted.rep, "rep"))
        if wanted.lead_id is not None:
            check_lead(connection, actor, Action.READ_HANDOFFS, wanted.lead_id)
            conditions.append(handoffs.c.lead_id == wanted.lead_id)
    query = select(
        handoffs,
        handoffs.c.created_at.label("opened_at"),
        handoffs.c.rejection_code.label("reason_code"),
        leads.c.email.label("lead_email"),
        leads.c.first_name,
        leads.c.last_name,
        leads.c.company.label("lead_company"),
        reps.c.name.label("rep_name"),
        reps.c.email.label("rep_email"),
    ).select_from(
        handoffs.join(leads, leads.c.id == handoffs.c.lead_id).outerjoin(
            reps, reps.c.id == handoffs.c.rep_id
        )
    )

    def read(connection: Connection, last: int, size: int) -> list[dict[str, Any]]:
        rows = [
            dict(row)
            for row in connection.execute(
                query.where(*conditions, handoffs.c.id > last).order_by(handoffs.c.id).limit(size)
            ).mappings()
        ]
        words = _verdict_words(connection, [int(row["id"]) for row in rows])
        for row in rows:
            names = (row["first_name"], row["last_name"])
            row["lead_name"] = " ".join(n for n in names if n) or None
            row["reason"] = words.get(int(row["id"]))
        return rows

    return Export("handoffs", HANDOFF_COLUMNS, ctx, read, page)


# --- activities ----------------------------------------------------------------------


def activity_export(
    ctx: Context,
    *,
    actor: Principal,
    filters: ActivityFilter | Mapping[str, Any] | None = None,
    page: int = PAGE,
) -> Export:
    """The activities of the leads ``actor`` may read that match ``filters``
    (:class:`~baton.domain.exports.ActivityFilter`: type, lead, happened since/until),
    with their properties as JSON text."""
    level = allowed(actor, Action.READ_LEADS)
    wanted = (
        filters
        if isinstance(filters, ActivityFilter)
        else read_filter(ActivityFilter, filters or {})
    )
    conditions: list[Any] = []
    if level is not Reach.ALL:
        conditions.append(lead_scope(actor, level))
    if wanted.type:
        conditions.append(activities.c.type.in_([t.value for t in wanted.type]))
    if wanted.since:
        conditions.append(activities.c.occurred_at >= wanted.since)
    if wanted.until:
        conditions.append(activities.c.occurred_at < wanted.until)
    if wanted.lead_id is not None:
        with ctx.read() as connection:
            check_lead(connection, actor, Action.READ_LEADS, wanted.lead_id)
        conditions.append(activities.c.lead_id == wanted.lead_id)
    query = select(
        activities.c.id,
        activities.c.lead_id,
        leads.c.email.label("lead_email"),
        activities.c.type,
        activities.c.occurred_at,
        activities.c.received_at,
        activities.c.recorded_by,
        activities.c.idempotency_key,
        activities.c.properties,
    ).select_from(activities.join(leads, leads.c.id == activities.c.lead_id))

    def read(connection: Connection, last: int, size: int) -> list[dict[str, Any]]:
        return [
            dict(row)
            for row in connection.execute(
                query.where(*conditions, activities.c.id > last)
                .order_by(activities.c.id)
                .limit(size)
            ).mappings()
        ]

    return Export("activities", ACTIVITY_COLUMNS, ctx, read, page)


# --- verdicts ------------------------------------------------------------------------


def verdict_export(
    ctx: Context,
    *,
    actor: Principal,
    filters: VerdictFilter | Mapping[str, Any] | None = None,
    page: int = PAGE,
) -> Export:
    """Sales' verdicts on the handoffs ``actor`` may read (a rep their own, a manager
    their team's): each accept, reject, qualify, win and loss with its reason code and
    words, outcome, credit, deal value, who gave it and when, matching ``filters``
    (:class:`~baton.domain.exports.VerdictFilter`: verdict, rep, lead, given
    since/until). For loading back into a CRM: the lead's id there comes along."""
    level = allowed(actor, Action.READ_HANDOFFS)
    wanted = (
        filters if isinstance(filters, VerdictFilter) else read_filter(VerdictFilter, filters or {})
    )
    event = handoff_events.alias("v")
    conditions: list[Any] = [event.c.kind.in_(wanted.verdict or list(VERDICT_KINDS))]
    if level is not Reach.ALL:
        conditions.append(handoff_scope(actor, level))
    if wanted.since:
        conditions.append(event.c.occurred_at >= wanted.since)
    if wanted.until:
        conditions.append(event.c.occurred_at < wanted.until)
    with ctx.read() as connection:
        if wanted.rep:
            conditions.append(handoffs.c.rep_id == _rep_id(connection, actor, wanted.rep, "rep"))
        if wanted.lead_id is not None:
            check_lead(connection, actor, Action.READ_HANDOFFS, wanted.lead_id)
            conditions.append(handoffs.c.lead_id == wanted.lead_id)
    query = select(
        event.c.id,
        event.c.handoff_id,
        event.c.kind.label("verdict"),
        event.c.actor.label("by"),
        event.c.occurred_at,
        event.c.detail,
        handoffs.c.lead_id,
        handoffs.c.contract_version,
        leads.c.email.label("lead_email"),
        leads.c.external_system.label("lead_external_system"),
        leads.c.external_id.label("lead_external_id"),
        reps.c.email.label("rep_email"),
    ).select_from(
        event.join(handoffs, handoffs.c.id == event.c.handoff_id)
        .join(leads, leads.c.id == handoffs.c.lead_id)
        .outerjoin(reps, reps.c.id == handoffs.c.rep_id)
    )

    def read(connection: Connection, last: int, size: int) -> list[dict[str, Any]]:
        rows = []
        for found in connection.execute(
            query.where(*conditions, event.c.id > last).order_by(event.c.id).limit(size)
        ).mappings():
            row = dict(found)
            detail = row.pop("detail") or {}
            kind = row["verdict"]
            row["reason_code"] = detail.get("code")
            row["reason"] = detail.get("note") if kind == "rejected" else detail.get("reason")
            row["outcome"] = (
                detail.get("outcome")
                if kind == "rejected"
                else (kind if kind in ("won", "lost") else None)
            )
            row["marketing_credit"] = detail.get("marketing_credit")
            row["deal_value"] = detail.get("amount") if kind == "won" else None
            rows.append(row)
        return rows

    return Export("verdicts", VERDICT_COLUMNS, ctx, read, page)


EXPORTS: dict[str, Callable[..., Export]] = {
    "leads": lead_export,
    "handoffs": handoff_export,
    "activities": activity_export,
    "verdicts": verdict_export,
}
"""Every export by name, for shells that offer them all alike."""
