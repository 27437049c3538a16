"""History import from another CRM: leads with their original created time, their past
stage changes with the moments they happened, and their outcomes (won with value and
date, lost, disqualified), from CSV with a saved column mapping.

``baton import leads FILE --mapping NAME [--historical]`` reads the file with the same
reader, header matching and row checks as a plain lead import
(:mod:`baton.services.imports`: every line accounted for, rejected lines to a file to
mend), and writes the leads with the same set-based writer. The mapping (saved with
``baton import mapping save``, or the built-ins ``hubspot`` and ``salesforce`` for
those CRMs' standard export columns) sends each column to a lead field, an attribute,
or a history field (:data:`~baton.domain.history.HISTORY_FIELDS`): each "Became X
date" column is a transition into X at that moment.

What a row's history becomes is planned by :func:`~baton.domain.history.plan_history`
(stages the file skips are implied at the next given moment; a date out of order is
moved up to the step before it, and said so); the transitions are written in bulk,
marked ``historical`` with ``recorded_at`` and the importing actor, and the report
milestones of the leads are recomputed from them, so every report is right for the
past. Re-running the file records nothing twice: captures are keyed, and steps already
recorded (same stage, same moment) are skipped.

History never fires live work: with ``historical`` (``--historical``), or for a lead
whose history is older than the contract's ``mql.live_within_days``, an MQL is
recorded and no handoff opens, nothing is routed, no email or webhook leaves. Without
``--historical``, a lead whose file history ends in a recent MQL is handed off live
(through :func:`~baton.services.stages.change_stage_in`). The report says what was
recorded and what was held back.
"""

from __future__ import annotations

import io
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.engine import Connection

from baton.domain.access import Action, Principal
from baton.domain.batches import RowError
from baton.domain.contract import HandoffContract
from baton.domain.dates import read_instant
from baton.domain.errors import FieldProblem, NotFound, ValidationFailed
from baton.domain.history import (
    BUILT_IN_MAPPINGS,
    DEFAULT_LIVE_WITHIN_DAYS,
    HISTORY_FIELDS,
    MAX_FUTURE_SKEW,
    Plan,
    is_live,
    outcome_of,
    plan_history,
    read_amount,
    read_stage_word,
)
from baton.domain.leads import LeadCreate
from baton.domain.lifecycle import FUNNEL, Stage
from baton.domain.routing import pool_key
from baton.services import milestones
from baton.services.access import allowed
from baton.services.context import Context
from baton.services.contract_rules import active_contract_in
from baton.services.imports import (
    DROP,
    LEAD_ALIASES,
    LEAD_COLUMNS,
    ImportFileError,
    ImportReport,
    Progress,
    Validate,
    _Chunks,
    _dated_leads,
    _identities,
    _read_and_validate,
    header_key,
    read_csv_file,
    write_leads_in,
)
from baton.services.queries import chunks
from baton.services.reps import routing_reps
from baton.services.routing import lock_pools, lock_reps
from baton.services.scoring import score_leads_in
from baton.services.stages import MqlChange, change_stage_in, change_stages_in
from baton.store.tables import handoffs, import_mappings, leads, transitions

STAGE_DATES = {f"{s.value}_at": s for s in FUNNEL if s != Stage.LEAD}
"""History fields that date a funnel stage: ``mql_at`` ... ``customer_at``."""

MAPPING_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,99}$")
MAPPING_TARGETS = LEAD_COLUMNS | HISTORY_FIELDS


# --- saved mappings --------------------------------------------------------------------------


@dataclass(frozen=True)
class SavedMapping:
    """A column mapping for history imports: CSV header -> target."""

    name: str
    columns: dict[str, str]
    built_in: bool
    created_by: str | None = None
    updated_at: datetime | None = None


def check_mapping_columns(columns: Mapping[str, str]) -> None:
    """Refuse a mapping whose target is not a lead field, ``attributes.NAME``, a history
    field or ``-``, naming the column."""
    if not columns:
        raise ValidationFailed(
            "a mapping needs at least one column", [FieldProblem("columns", "is empty")]
        )
    for header, target in columns.items():
        target = target.strip()
        if target in MAPPING_TARGETS or target == DROP:
            continue
        prefix, dot, name = target.partition(".")
        if prefix == "attributes" and dot and name.strip():
            continue
        message = (
            f"{header}={target}: {target!r} is not a field; use one of "
            f"{', '.join(sorted(MAPPING_TARGETS))}, attributes.NAME, or {DROP}"
        )
        raise ValidationFailed(message, [FieldProblem(f"columns.{header}", message)])


def save_mapping(
    ctx: Context, name: str, columns: Mapping[str, str], *, actor: Principal
) -> SavedMapping:
    """Save (or replace) the column mapping ``name``; a saved ``hubspot`` or
    ``salesforce`` replaces the built-in of that name."""
    allowed(actor, Action.CAPTURE_LEAD)
    if not MAPPING_NAME.match(name):
        message = "a mapping name is lower-case letters, digits, - and _ (at most 100)"
        raise ValidationFailed(message, [FieldProblem("name", message)])
    check_mapping_columns(columns)
    now = ctx.clock.now()
    clean = {h.strip(): t.strip() for h, t in columns.items()}
    with ctx.write() as connection:
        found = connection.execute(
            select(import_mappings.c.id).where(import_mappings.c.name == name)
        ).scalar()
        if found is None:
            connection.execute(
                insert(import_mappings).values(
                    name=name,
                    columns=clean,
                    created_by=actor.name,
                    created_at=now,
                    updated_at=now,
                )
            )
        else:
            connection.execute(
                update(import_mappings)
                .where(import_mappings.c.id == found)
                .values(columns=clean, updated_at=now)
            )
    return SavedMapping(name, clean, False, actor.name, now)


def list_mappings(ctx: Context, *, actor: Principal) -> list[SavedMapping]:
    """The saved mappings and the built-ins they do not replace, by name."""
    allowed(actor, Action.CAPTURE_LEAD)
    with ctx.read() as connection:
        saved = {
            row.name: SavedMapping(
                row.name, dict(row.columns), False, row.created_by, row.updated_at
            )
            for row in connection.execute(select(import_mappings))
        }
    for name, columns in BUILT_IN_MAPPINGS.items():
        saved.setdefault(name, SavedMapping(name, dict(columns), True))
    return [saved[name] for name in sorted(saved)]


def get_mapping(ctx: Context, name: str, *, actor: Principal) -> SavedMapping:
    """One mapping by name (saved first, then the built-ins)."""
    for mapping in list_mappings(ctx, actor=actor):
        if mapping.name == name:
            return mapping
    known = ", ".join(m.name for m in list_mappings(ctx, actor=actor))
    raise NotFound(f"no mapping named {name!r}; known: {known}")


# --- the import ------------------------------------------------------------------------------


@dataclass
class HistoryReport(ImportReport):
    """What a history import did, beside what every lead import reports: the stage
    changes recorded (``implied`` of them filled in on the way), the outcomes, what
    was already recorded (a re-import), and what was held back: MQLs recorded with no
    live handoff, and steps not recorded (each a warning naming its line)."""

    transitions: int = 0
    implied: int = 0
    already_recorded: int = 0
    won: int = 0
    won_value: float = 0.0
    lost: int = 0
    disqualified: int = 0
    mql_live: int = 0
    mql_held_back: int = 0
    steps_held_back: int = 0
    moved: int = 0
    leads_with_history: int = 0


@dataclass
class HistoryItem:
    """One row's history, read: the moment each funnel stage was reached, the outcome
    with its moment and value."""

    dates: dict[Stage, datetime] = field(default_factory=dict)
    outcome: str | None = None
    outcome_at: datetime | None = None
    amount: float | None = None

    def earliest(self) -> datetime | None:
        moments = [*self.dates.values(), *([self.outcome_at] if self.outcome_at else [])]
        return min(moments) if moments else None

    def latest(self) -> datetime | None:
        moments = [*self.dates.values(), *([self.outcome_at] if self.outcome_at else [])]
        return max(moments) if moments else None


def _combine(items: Iterable[HistoryItem]) -> HistoryItem:
    """The rows of one lead as one history: each stage at its earliest moment; won wins
    over lost over disqualified, with that row's moment and amount."""
    combined = HistoryItem()
    rank = {"won": 3, "lost": 2, "disqualified": 1}
    for item in items:
        for stage, at in item.dates.items():
            combined.dates[stage] = min(combined.dates.get(stage, at), at)
        if item.outcome and rank[item.outcome] > rank.get(combined.outcome or "", 0):
            combined.outcome, combined.outcome_at = item.outcome, item.outcome_at
            combined.amount = item.amount
    return combined


def _read_history(
    line: int,
    values: Mapping[str, str],
    *,
    zone: str,
    day_first: bool,
    now: datetime,
    warnings: list[RowError],
) -> HistoryItem:
    """A row's history fields as a :class:`HistoryItem`; a value that cannot be read is
    left out with a warning (the lead is imported, that step held back)."""
    item = HistoryItem()

    def moment(name: str) -> datetime | None:
        text = values.get(name)
        if not text or not text.strip():
            return None
        try:
            at = read_instant(text, zone=zone, day_first=day_first)
        except ValueError as exc:
            warnings.append(RowError(line, name, f"{exc}; this step was not recorded"))
            return None
        if at > now + MAX_FUTURE_SKEW:
            warnings.append(
                RowError(line, name, f"'{text}' is in the future; this step was not recorded")
            )
            return None
        return at

    for name, stage in STAGE_DATES.items():
        at = moment(name)
        if at is not None:
            item.dates[stage] = at
    for name in ("stage", "outcome"):
        word = values.get(name)
        if word and word.strip() and read_stage_word(word) is None:
            warnings.append(
                RowError(
                    line,
                    name,
                    f"{word!r} is not a stage Baton knows (Baton's: "
                    f"{', '.join(s.value for s in Stage)}; or the CRM's standard ones); "
                    "left out",
                )
            )
    item.outcome = outcome_of({k: v for k, v in values.items() if v is not None})
    if item.outcome is not None:
        item.outcome_at = (
            moment(f"{item.outcome}_at")
            or moment("closed_at")
            or (item.dates.get(Stage.CUSTOMER) if item.outcome == "won" else None)
        )
        if item.outcome_at is None:
            warnings.append(
                RowError(
                    line,
                    "outcome",
                    f"the row says {item.outcome} but gives no date for it (map a "
                    f"{item.outcome}_at or closed_at column); not recorded",
                )
            )
            item.outcome = None
    stage_word = read_stage_word(values.get("stage") or "")
    if stage_word in {s.value for s in FUNNEL} and stage_word != Stage.LEAD.value:
        at_stage = Stage(stage_word)
        dated = list(item.dates) + ([Stage.CUSTOMER] if item.outcome == "won" else [])
        if not any(FUNNEL.index(s) >= FUNNEL.index(at_stage) for s in dated):
            warnings.append(
                RowError(
                    line,
                    "stage",
                    f"the row is at {at_stage.value} but gives no date for it (map its "
                    f"'{at_stage.value}_at' column); the stages it dates were recorded",
                )
            )
    amount_text = values.get("amount")
    if amount_text:
        try:
            item.amount = read_amount(amount_text)
        except ValueError as exc:
            warnings.append(RowError(line, "amount", f"{exc}; left out"))
    return item


def _history_validator(
    found: dict[int, HistoryItem],
    created: dict[int, datetime],
    *,
    zone: str,
    day_first: bool,
    now: datetime,
) -> Validate[LeadCreate]:
    """The lead import's validator (:func:`~baton.services.imports._dated_leads`),
    after taking the history fields out of each row into ``found``; a row without a
    created time is dated by its earliest history moment (a lead exists before it
    moves)."""
    inner = _dated_leads(created, zone=zone, day_first=day_first, now=now)

    def run(
        model: type[LeadCreate],
        rows: Sequence[tuple[int, Mapping[str, Any]]],
        context: Mapping[str, Any],
    ) -> tuple[list[tuple[int, LeadCreate]], list[RowError], list[RowError]]:
        kept: list[tuple[int, Mapping[str, Any]]] = []
        notes: list[RowError] = []
        for number, raw in rows:
            values = {k: str(v) for k, v in raw.items() if k in HISTORY_FIELDS}
            found[number] = _read_history(
                number, values, zone=zone, day_first=day_first, now=now, warnings=notes
            )
            kept.append((number, {k: v for k, v in raw.items() if k not in HISTORY_FIELDS}))
        good, errors, warnings = inner(model, kept, context)
        rejected = {e.row for e in errors}
        for number, _ in good:
            earliest = found[number].earliest()
            if earliest is not None and (number not in created or earliest < created[number]):
                created[number] = earliest
        warnings.extend(n for n in notes if n.row not in rejected)
        return good, errors, warnings

    return run


def _columns_for(file_headers: Sequence[str], mapping: Mapping[str, str]) -> dict[str, str]:
    """The mapping's columns that the file has (a built-in mapping names every column
    of a CRM's exports; a given file has some of them), by the file's own headers."""
    by_key = {header_key(h): t for h, t in mapping.items()}
    return {h: by_key[header_key(h)] for h in file_headers if header_key(h) in by_key}


def import_history(
    ctx: Context,
    source: Path | IO[str],
    *,
    actor: Principal,
    mapping: str,
    historical: bool = False,
    column_map: Mapping[str, str] | None = None,
    progress: Progress | None = None,
    encoding: str = "utf-8-sig",
    blanks: Sequence[str] = (),
    external_system: str | None = None,
    naive_timezone: str = "UTC",
    day_first: bool = False,
) -> HistoryReport:
    """Import a CRM's leads with their history through the saved (or built-in) column
    mapping ``mapping``; ``column_map`` (``--map``) adds to it and wins. See the module
    docstring for what is recorded and what is held back."""
    allowed(actor, Action.CAPTURE_LEAD)
    saved = get_mapping(ctx, mapping, actor=actor)
    if external_system is None and saved.built_in:
        external_system = mapping  # a HubSpot "Record ID" is an id in HubSpot
    if isinstance(source, Path):
        headers = read_csv_file(source, encoding).headers
    else:
        text = source.read()
        headers = read_csv_file(io.StringIO(text), encoding).headers
        source = io.StringIO(text)
    columns = {**_columns_for(headers, saved.columns), **(column_map or {})}
    if not any(t in HISTORY_FIELDS or t == "created_at" for t in columns.values()) and not any(
        header_key(h) in HISTORY_FIELDS for h in headers
    ):
        raise ImportFileError(
            f"the mapping {mapping!r} finds no history column in this file (a created "
            "date, a stage, a 'became X' date, an outcome); its columns are "
            + ", ".join(repr(h) for h in headers[:40])
        )
    now = ctx.clock.now()
    found: dict[int, HistoryItem] = {}
    created: dict[int, datetime] = {}
    base, good = _read_and_validate(
        source,
        encoding=encoding,
        aliases=LEAD_ALIASES,
        known=MAPPING_TARGETS,
        column_map=columns,
        extras_key="attributes",
        model=LeadCreate,
        context={
            "default_region": ctx.settings.default_phone_region,
            "json_limits": ctx.settings.json_limits,
        },
        validate=_history_validator(
            found, created, zone=naive_timezone, day_first=day_first, now=now
        ),
        step=2000,
        progress=progress,
        blanks=blanks,
        external_system=external_system,
    )
    report = HistoryReport(**{f: getattr(base, f) for f in ImportReport.__dataclass_fields__})
    name = source.name if isinstance(source, Path) else "file"
    record_history(
        ctx,
        good,
        found,
        created,
        actor=actor,
        report=report,
        historical=historical,
        label=f"imported from {name} (mapping {mapping})",
        key_prefix=f"history:{external_system or 'default'}",
        progress=progress,
    )
    return report


def record_history(
    ctx: Context,
    good: Sequence[tuple[int, LeadCreate]],
    found: Mapping[int, HistoryItem],
    created: Mapping[int, datetime],
    *,
    actor: Principal,
    report: HistoryReport,
    historical: bool,
    label: str,
    key_prefix: str,
    progress: Progress | None = None,
) -> None:
    """Write validated rows and their history in short transactions (a chunk of
    people each, see :class:`~baton.services.imports._Chunks`): the leads, dated by
    ``created``, with keyed captures; their stage history; then their scores, as
    history where it is."""
    chunker = _Chunks(good, ctx.settings.import_chunk_rows)
    written = 0
    for part in chunker:
        with ctx.write() as connection:
            began = time.perf_counter()
            now = ctx.clock.now()
            keys = {
                number: f"{key_prefix}:{identity}:{_moment_key(created.get(number))}"[:200]
                for identity, (number, _) in zip(_identities(part), part, strict=True)
            }
            ids = write_leads_in(
                connection,
                part,
                actor=actor,
                now=now,
                report=report,
                captured_at=created,
                score=False,
                capture_keys=keys,
            )
            by_lead: dict[int, list[tuple[int, HistoryItem]]] = {}
            for identity, (number, _) in zip(_identities(part), part, strict=True):
                by_lead.setdefault(ids[identity], []).append((number, found[number]))
            _record_in(
                connection,
                by_lead,
                actor=actor,
                now=now,
                report=report,
                historical=historical,
                label=label,
            )
        chunker.took(time.perf_counter() - began)
        written += len(part)
        if progress:
            progress("writing", written, len(good))
    report.errors.sort(key=lambda e: e.row)
    report.warnings.sort(key=lambda e: e.row)


def _moment_key(moment: datetime | None) -> str:
    """The moment part of a history capture's idempotency key: a row without any date
    is captured once, whenever the file is imported again."""
    return moment.isoformat() if moment is not None else "undated"


def _record_in(
    connection: Connection,
    by_lead: Mapping[int, Sequence[tuple[int, HistoryItem]]],
    *,
    actor: Principal,
    now: datetime,
    report: HistoryReport,
    historical: bool,
    label: str,
) -> None:
    """Plan and write the history of ``by_lead`` (lead id -> its rows), then score
    the leads (as history where it is)."""
    lead_ids = sorted(by_lead)
    current: dict[int, Any] = {}
    known: dict[int, set[tuple[str, datetime]]] = {}
    open_handoff: set[int] = set()
    for part in chunks(lead_ids):
        for row in connection.execute(
            select(leads.c.id, leads.c.stage, leads.c.stage_changed_at, leads.c.merged_into_id)
            .where(leads.c.id.in_(part))
            .with_for_update()
        ):
            current[row.id] = row
        for lead_id, stage, at in connection.execute(
            select(transitions.c.lead_id, transitions.c.to_stage, transitions.c.occurred_at).where(
                transitions.c.lead_id.in_(part)
            )
        ):
            known.setdefault(lead_id, set()).add((stage, at))
        open_handoff.update(
            connection.execute(
                select(handoffs.c.lead_id).where(
                    handoffs.c.lead_id.in_(part),
                    handoffs.c.status.in_(("queued", "assigned", "accepted", "qualified")),
                )
            ).scalars()
        )
    active = active_contract_in(connection)
    window = active[1].mql.live_within_days if active else DEFAULT_LIVE_WITHIN_DAYS
    rows: list[dict[str, Any]] = []
    moves: list[dict[str, Any]] = []
    live: list[tuple[int, Plan]] = []
    old: list[int] = []
    recent: list[int] = []
    for lead_id in lead_ids:
        lines = by_lead[lead_id]
        first_line = min(number for number, _ in lines)
        item = _combine(item for _, item in lines)
        lead = current[lead_id]
        plan = plan_history(
            current=Stage(lead.stage),
            current_at=lead.stage_changed_at,
            dates=item.dates,
            outcome=item.outcome,
            outcome_at=item.outcome_at,
            deal_value=item.amount,
            known=known.get(lead_id, set()),
        )
        latest = item.latest() or lead.stage_changed_at
        if not historical and is_live(latest, now=now, live_within_days=window, historical=False):
            recent.append(lead_id)
        else:
            old.append(lead_id)
        report.already_recorded += plan.already_recorded
        for reason in plan.held_back:
            report.steps_held_back += 1
            report.warnings.append(RowError(first_line, "history", f"held back: {reason}"))
        for reason in plan.moved:
            report.moved += 1
            report.warnings.append(RowError(first_line, "history", reason))
        if not plan.steps:
            continue
        if lead_id in open_handoff:
            report.steps_held_back += len(plan.steps)
            report.warnings.append(
                RowError(
                    first_line,
                    "history",
                    f"held back: lead {lead_id} has an open handoff in Baton; sales records "
                    "its verdict there",
                )
            )
            continue
        report.leads_with_history += 1
        last = plan.steps[-1]
        if (
            not historical
            and last.stage == Stage.MQL
            and is_live(last.at, now=now, live_within_days=window, historical=False)
        ):
            live.append((lead_id, plan))
            continue
        previous = Stage(lead.stage)
        for step in plan.steps:
            rows.append(
                {
                    "lead_id": lead_id,
                    "from_stage": previous.value,
                    "to_stage": step.stage.value,
                    "actor": actor.name,
                    "actor_user_id": actor.user_id,
                    "reason": _reason(label, step.implied, step.deal_value),
                    "occurred_at": step.at,
                    "contract_version": None,
                    "historical": True,
                    "recorded_at": now,
                    "deal_value": step.deal_value,
                }
            )
            previous = step.stage
            _count(report, step.stage, step.implied, step.deal_value, lead_id)
            if step.stage == Stage.MQL:
                report.mql_held_back += 1
        moves.append({"lid": lead_id, "v_stage": last.stage.value, "v_at": last.at, "v_now": now})
    if rows:
        connection.execute(insert(transitions), rows)
        connection.execute(
            update(leads)
            .where(leads.c.id == bindparam("lid"))
            .values(
                stage=bindparam("v_stage"),
                stage_changed_at=bindparam("v_at"),
                updated_at=bindparam("v_now"),
            ),
            moves,
        )
        changed = [m["lid"] for m in moves]
        milestones.refresh_leads(connection, changed)
        milestones.refresh_chains_of_leads(connection, changed)
    # Recent MQLs from a file imported as live: handed off like any MQL, all by one
    # call, which locks every pool before any rep (one by one, a pool would be locked
    # after a rep, and crossed orders deadlock on PostgreSQL).
    if live and recent and active is not None:
        _lock_routing_in(connection, active[1])
    mqls: list[MqlChange] = []
    for lead_id, plan in live:
        *before, last = plan.steps
        for step in before:
            change_stage_in(
                connection,
                lead_id,
                step.stage,
                actor=actor,
                reason=_reason(label, step.implied, step.deal_value),
                now=now,
                occurred_at=step.at,
                deal_value=step.deal_value,
            )
        mqls.append(
            MqlChange(lead_id, _reason(label, last.implied, last.deal_value), occurred_at=last.at)
        )
        for step in plan.steps:
            _count(report, step.stage, step.implied, step.deal_value, lead_id)
        report.mql_live += 1
    change_stages_in(connection, mqls, actor=actor, now=now)
    if active is not None:
        for group, as_history in ((old, True), (recent, False)):
            if not group:
                continue
            updates = score_leads_in(connection, group, now=now, actor=actor, historical=as_history)
            became = sum(u.became_mql for u in updates)
            report.mql += became
            if as_history:
                report.mql_held_back += became
            else:
                report.mql_live += became


def _lock_routing_in(connection: Connection, contract: HandoffContract) -> None:
    """Lock, in the global order, every pool and rep that the two routings of
    :func:`_record_in` may take: the live MQLs of the file, then the recent leads that
    qualify on score (:func:`~baton.services.scoring.score_leads_in` hands those off by
    itself, after the first batch). Each routing alone locks its pools before its reps,
    but the second would lock a pool after the first's reps, and a capture routed in
    that pool, waiting for one of those reps, would deadlock with the import on
    PostgreSQL. Held from here, the rows the routings ask for are already this
    transaction's. Every pool of the contract and every rep of the roster: the
    second routing's pools depend on scores not computed yet, and a chunk with live
    history is rare. The routings then decide on exactly what they would have. On
    SQLite the writer holds the whole database and nothing is locked."""
    if connection.dialect.name != "postgresql":
        return
    lock_pools(connection, [pool_key(rule.pool) for rule in contract.routing.rules])
    lock_reps(connection, [rep.id for rep in routing_reps(connection)])


def _reason(label: str, implied: bool, deal_value: float | None) -> str:
    text = label + (" (implied by the next stage given)" if implied else "")
    if deal_value is not None:
        text += f"; won {deal_value:,.2f}"
    return text


def _count(
    report: HistoryReport, stage: Stage, implied: bool, deal_value: float | None, lead_id: int
) -> None:
    report.transitions += 1
    report.implied += int(implied)
    if stage == Stage.CUSTOMER:
        report.won += 1
        report.won_value += deal_value or 0.0
    elif stage == Stage.LOST:
        report.lost += 1
    elif stage == Stage.DISQUALIFIED:
        report.disqualified += 1
