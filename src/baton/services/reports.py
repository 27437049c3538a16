"""Reports: funnel, velocity, speed-to-lead, SLA compliance, rejections, marketing
credit and cost, plus the spend they divide.

Every figure is computed in SQL, set-based (``GROUP BY`` and window functions, one
read-only transaction per report), the same way on SQLite and PostgreSQL; Python only
turns the rows into the dataclasses of :mod:`baton.domain.reports`. Definitions are in
the README ("Reports"); the binding ones in short:

* merged leads are left out everywhere;
* ``source``, ``campaign`` and ``country`` are the lead's first-touch fields; ``team``
  and ``rep`` are those of the handoff's rep: for lead-based reports (funnel, velocity,
  cost) the lead's first handoff (lowest id), for handoff-based reports the handoff
  itself (for chains, the chain's first handoff);
* percentiles are nearest-rank: the value at rank ``ceil(p/100 * n)`` in order.

Who may read them: admins, marketing and sales managers (``Action.READ_REPORTS``);
marketing and admins import spend (``Action.IMPORT_SPEND``). Every use case takes the
acting principal and checks it first.

Durations are computed in the database with :func:`seconds_between` (``julianday`` on
SQLite, ``EXTRACT(EPOCH ...)`` on PostgreSQL), rounded to the millisecond so that both
give the same answer.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import IO, Any

from sqlalchemy import (
    Date,
    Float,
    Integer,
    String,
    and_,
    bindparam,
    case,
    cast,
    delete,
    distinct,
    func,
    insert,
    literal,
    null,
    or_,
    select,
    union_all,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from baton.domain.access import Action, Principal, Reach
from baton.domain.batches import RowError
from baton.domain.dates import read_period
from baton.domain.errors import FieldProblem, Forbidden, ValidationFailed
from baton.domain.leads import fold_source
from baton.domain.reports import (
    COST_GROUP_BY,
    FUNNEL,
    FUNNEL_MODES,
    GROUP_BY,
    MAX_WEEKS,
    OUTCOME_BITS,
    PERCENTILES,
    SIDE_STAGES,
    SPEED_BUCKETS,
    STAGE_BITS,
    CostOfGap,
    CostReport,
    CreditReport,
    CreditRow,
    FunnelMode,
    FunnelReport,
    FunnelRow,
    Group,
    RecycleSummary,
    RejectionReport,
    RejectionRow,
    ReportFilters,
    ReportPeriod,
    SlaReport,
    SlaRow,
    SlaWeeklyReport,
    SpeedBucketRow,
    SpeedDistributionReport,
    SpeedReport,
    SpeedRow,
    SpendEntry,
    VelocityReport,
    VelocityRow,
    attribute_group,
    check_group_by,
    conversion,
    cost_row,
    group_order,
    hours,
    minutes,
    share,
    weeks,
)
from baton.services.access import allowed
from baton.services.context import Context
from baton.services.contract_rules import active_contract_in
from baton.services.imports import ImportFileError, _read_csv, header_key
from baton.services.queries import flag, seconds_between
from baton.store.tables import (
    contracts,
    handoff_chains,
    handoffs,
    lead_scores,
    leads,
    reps,
    spend,
    teams,
    transitions,
)


class ReportInputError(ValidationFailed):
    """A report asked with a value it cannot take (group_by, mode, filters)."""


def _may_read(actor: Principal) -> None:
    """Reports and spend are company-wide figures (every team, source and rep) and are
    not narrowed to the reps a principal reaches, so they need ``READ_REPORTS`` over
    everything; a partial reach is refused rather than answered with figures that
    include others' handoffs (today every role that may read reports reaches all)."""
    level = allowed(actor, Action.READ_REPORTS)
    if level is not Reach.ALL:
        raise Forbidden("reports cover every team and rep, so they need access to all of them")


def _refuse(loc: str, message: str) -> ReportInputError:
    return ReportInputError(message, [FieldProblem(loc, message)])


# --- dialect helpers --------------------------------------------------------------------


def _day_number(dialect: str, value: Any) -> ColumnElement[Any]:
    """Days from 2000-01-01 to a DATE value (an exact integer on both databases)."""
    if dialect == "postgresql":
        difference: ColumnElement[Any] = value.op("-")(literal(date(2000, 1, 1), Date))
        return difference
    return cast(func.julianday(value) - func.julianday("2000-01-01"), Integer)


def _days(day: date) -> int:
    return (day - date(2000, 1, 1)).days


def _least(a: Any, b: Any) -> ColumnElement[Any]:
    return case((a < b, a), else_=b)


def _greatest(a: Any, b: Any) -> ColumnElement[Any]:
    return case((a > b, a), else_=b)


def _count_if(condition: ColumnElement[bool]) -> ColumnElement[Any]:
    return func.coalesce(func.sum(flag(condition)), 0)


def _int(value: Any) -> int:
    return int(value or 0)


def _num(value: Any) -> float | None:
    return None if value is None else float(value)


# --- scope: grouping and filters ----------------------------------------------------------


LEAD_DIMENSIONS = ("source", "campaign", "country")


@dataclass
class _Scope:
    """The FROM clause with the joins a grouping or a filter needs, the group
    expression, and the filter conditions."""

    from_: Any
    group: ColumnElement[Any]
    where: list[ColumnElement[bool]] = field(default_factory=list)
    grouping: list[ColumnElement[Any]] = field(default_factory=list)
    """What to ``GROUP BY``: nothing for an ungrouped report (grouping by a constant
    would still make SQLite sort every row), whose aggregate then always gives exactly
    one row, even over no rows at all."""


def _scope(
    lead: Any,
    from_: Any,
    group_by: str | None,
    filters: ReportFilters,
    *,
    rep_join: Callable[[Any, Any], Any],
    contract_version: Callable[[Any], tuple[Any, ColumnElement[Any]]],
    lead_join: Callable[[Any], Any] | None = None,
) -> _Scope:
    """Group and filter rows whose lead is ``lead``. ``rep_join(from_, reps_alias)``
    joins the rep that counts for the row; ``contract_version(from_)`` returns the
    FROM clause with whatever it needs and the version expression. Merged leads are
    left out; with ``lead_join(from_)`` the rows are known to belong to live leads and
    the lead is joined only when a grouping or a filter reads it."""
    where: list[ColumnElement[bool]] = []
    attribute = attribute_group(group_by)
    reads_lead = group_by in LEAD_DIMENSIONS or group_by == "grade" or attribute is not None
    if lead_join is None:
        where.append(lead.c.merged_into_id.is_(None))
    elif reads_lead or any(k in LEAD_DIMENSIONS for k in filters.given()):
        from_ = lead_join(from_)
    score = lead_scores.alias("gs")
    if group_by == "grade":
        # The lead's grade now, under the active contract (kept beside the lead).
        from_ = from_.outerjoin(score, score.c.lead_id == lead.c.id)
    rep = reps.alias("gr")
    team = teams.alias("gt")
    if group_by in ("team", "rep") or filters.team is not None or filters.rep is not None:
        from_ = rep_join(from_, rep)
        if group_by == "team" or filters.team is not None:
            from_ = from_.outerjoin(team, team.c.id == rep.c.team_id)
    version: ColumnElement[Any] | None = None
    if group_by == "contract_version" or filters.contract_version is not None:
        from_, version = contract_version(from_)
    dims: dict[str, Any] = {
        "source": lead.c.source,
        "campaign": lead.c.campaign,
        "country": lead.c.country,
        "team": team.c.name,
        "rep": rep.c.email,
        "contract_version": version,
        "grade": score.c.grade,
    }
    if attribute is not None and group_by is not None:
        # As text on both databases (SQLite's json_extract gives numbers as numbers).
        dims[group_by] = cast(lead.c.attributes[attribute].as_string(), String)
    for name, value in filters.given().items():
        where.append(dims[name] == value)
    group = dims[group_by] if group_by else cast(null(), String)
    return _Scope(from_, group.label("grp"), where, [group] if group_by else [])


def _lead_scope(lead: Any, from_: Any, group_by: str | None, filters: ReportFilters) -> _Scope:
    """Scope for lead-based reports: rep and team of the lead's first handoff, contract
    version of the lead's first MQL (both kept on the lead, see
    :mod:`baton.services.milestones`)."""

    def rep_join(current: Any, rep: Any) -> Any:
        return current.outerjoin(rep, rep.c.id == lead.c.first_rep_id)

    def contract_version(current: Any) -> tuple[Any, ColumnElement[Any]]:
        return current, lead.c.mql_contract_version

    return _scope(
        lead, from_, group_by, filters, rep_join=rep_join, contract_version=contract_version
    )


def _handoff_scope(
    lead: Any,
    handoff: Any,
    from_: Any,
    group_by: str | None,
    filters: ReportFilters,
    lead_join: Callable[[Any], Any] | None = None,
) -> _Scope:
    """Scope for handoff-based reports: the handoff's own rep and contract version."""

    def rep_join(current: Any, rep: Any) -> Any:
        return current.outerjoin(rep, rep.c.id == handoff.c.rep_id)

    def contract_version(current: Any) -> tuple[Any, ColumnElement[Any]]:
        return current, handoff.c.contract_version

    return _scope(
        lead,
        from_,
        group_by,
        filters,
        rep_join=rep_join,
        contract_version=contract_version,
        lead_join=lead_join,
    )


def _chain_scope(group_by: str | None, filters: ReportFilters) -> tuple[Any, _Scope]:
    """Chains of handoffs (``handoff_chains``: an MQL and its reassignments, of live
    leads only), grouped by the first handoff's rep and contract version or by their
    lead: the shape of the per-chain reports (speed to lead, credit)."""
    lead = leads.alias("l")
    chain = handoff_chains.alias("c")
    scope = _handoff_scope(
        lead,
        chain,
        chain,
        group_by,
        filters,
        lead_join=lambda current: current.join(lead, lead.c.id == chain.c.lead_id),
    )
    return chain, scope


def _in_period(column: Any, period: ReportPeriod) -> list[ColumnElement[bool]]:
    return [column >= period.start, column < period.end]


def _check(group_by: str | None, filters: ReportFilters) -> None:
    try:
        check_group_by(group_by, GROUP_BY)
    except ValueError as exc:
        raise _refuse("group_by", str(exc)) from None
    if not isinstance(filters, ReportFilters):
        raise TypeError("filters must be a ReportFilters")


def _sorted(rows: Sequence[Any]) -> list[Any]:
    return sorted(rows, key=lambda r: group_order(r.group))


# --- percentiles ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Spread:
    """How many values a measure had, and its percentiles."""

    n: int
    at: dict[int, float | None]


def _spreads(dialect: str, values: Mapping[str, Any]) -> list[ColumnElement[Any]]:
    """Aggregates: for each of ``values``, its count and its nearest-rank percentiles
    :data:`PERCENTILES` (NULLs left out), read back with :func:`_spread_of`.
    PostgreSQL's ``percentile_disc`` and SQLite's ``baton_percentiles`` (registered by
    :mod:`baton.store.engine`, one call per row for every measure) follow the same
    rule: the value at rank ``ceil(p/100 * n)``."""
    if dialect == "postgresql":
        fractions = postgresql.array([literal(p / 100, Float) for p in PERCENTILES])
        columns: list[ColumnElement[Any]] = []
        for name, value in values.items():
            columns.append(func.count(value).label(f"{name}_n"))
            columns.append(func.percentile_disc(fractions).within_group(value).label(name))
        return columns
    return [func.baton_percentiles(*values.values()).label("spreads")]


def _spread_of(row: Mapping[str, Any], names: Sequence[str]) -> dict[str, _Spread]:
    """``{name: _Spread}`` from a row with :func:`_spreads` columns (or none: a group
    with no rows)."""
    if "spreads" in row:
        found = [(int(n), ranks) for n, *ranks in json.loads(row["spreads"] or "[]")]
    else:
        found = [(_int(row.get(f"{name}_n")), row.get(name) or []) for name in names]
    spreads: dict[str, _Spread] = {}
    for name, (n, ranks) in zip(names, found, strict=False):
        at: dict[int, float | None] = dict.fromkeys(PERCENTILES)
        at.update(zip(PERCENTILES, (_num(v) for v in ranks), strict=False))
        spreads[name] = _Spread(n, at)
    empty = _Spread(0, dict.fromkeys(PERCENTILES))
    return {name: spreads.get(name, empty) for name in names}


# --- funnel ---------------------------------------------------------------------------------


def _has(mask: Any, stage: str) -> ColumnElement[bool]:
    """``mask`` (``leads.reached_stages``, never NULL) has the stage's bit."""
    has: ColumnElement[bool] = mask.bitwise_and(STAGE_BITS[stage]) != 0
    return has


def _funnel_rows(counts: dict[Group, dict[str, int]]) -> list[FunnelRow]:
    rows = []
    for group, found in counts.items():
        full = {s: int(found.get(s, 0)) for s in (*FUNNEL, *SIDE_STAGES)}
        rows.append(FunnelRow(group, full, conversion(full)))
    return _sorted(rows)


def _grouped(connection: Connection, query: Any) -> dict[Group, dict[str, Any]]:
    return {row["grp"]: dict(row) for row in connection.execute(query).mappings()}


def funnel(
    ctx: Context,
    period: ReportPeriod,
    *,
    actor: Principal,
    mode: FunnelMode = "cohort",
    group_by: str | None = None,
    filters: ReportFilters | None = None,
) -> FunnelReport:
    """How many leads reached each stage.

    ``cohort``: the leads created in the period, and how many of them ever reached
    each stage (up to now; read from the lead's milestones). ``flow``: how many
    distinct leads moved into each stage during the period (``lead``: leads created
    in it)."""
    _may_read(actor)
    filters = filters or ReportFilters()
    _check(group_by, filters)
    if mode not in FUNNEL_MODES:
        raise _refuse("mode", f"unknown mode {mode!r}; use cohort or flow")
    lead = leads.alias("l")
    scope = _lead_scope(lead, lead, group_by, filters)
    created = [*_in_period(lead.c.created_at, period), *scope.where]
    counts: dict[Group, dict[str, int]] = {}
    with ctx.read() as connection:
        if mode == "cohort":
            stages = [_count_if(_has(lead.c.reached_stages, s)).label(s) for s in STAGE_BITS]
        else:
            stages = []
        query = (
            select(scope.group, func.count().label("lead"), *stages)
            .select_from(scope.from_)
            .where(*created)
            .group_by(*scope.grouping)
        )
        for grp, row in _grouped(connection, query).items():
            counts[grp] = {k: _int(v) for k, v in row.items() if k != "grp"}
        if mode == "flow":
            for grp, stage, n in connection.execute(_flow(lead, period, group_by, filters)):
                counts.setdefault(grp, {})[stage] = _int(n)
    return FunnelReport(
        period=period,
        group_by=group_by,
        filters=filters,
        mode=mode,
        rows=_funnel_rows(counts),
    )


def _flow(lead: Any, period: ReportPeriod, group_by: str | None, filters: ReportFilters) -> Any:
    """(group, stage, distinct leads that moved into the stage in the period). A
    merge moves the absorbed lead's transitions to the survivor, so transitions never
    belong to a merged lead: without a grouping or a filter, the lead is not read.
    Grouped, the distinct (lead, stage) pairs come first, so each lead is looked up once
    per stage (PostgreSQL reads them in lead order from ``ix_transitions_lead_stage``
    without sorting)."""
    t = transitions.alias("t")
    moved = [*_in_period(t.c.occurred_at, period), t.c.to_stage.in_(list(STAGE_BITS))]
    if group_by is None and not filters.given():
        return (
            select(
                cast(null(), String).label("grp"),
                t.c.to_stage,
                func.count(distinct(t.c.lead_id)),
            )
            .where(*moved)
            .group_by(t.c.to_stage)
        )
    pairs = select(t.c.lead_id, t.c.to_stage).where(*moved).distinct().subquery("pairs")
    scope = _lead_scope(lead, pairs.join(lead, lead.c.id == pairs.c.lead_id), group_by, filters)
    return (
        select(scope.group, pairs.c.to_stage, func.count())
        .select_from(scope.from_)
        .where(*scope.where)
        .group_by(*scope.grouping, pairs.c.to_stage)
    )


# --- velocity -------------------------------------------------------------------------------


def velocity(
    ctx: Context,
    period: ReportPeriod,
    *,
    actor: Principal,
    group_by: str | None = None,
    filters: ReportFilters | None = None,
) -> VelocityReport:
    """For the leads created in the period, the time between consecutive stages of the
    funnel: lead → mql from the lead's creation to its first MQL transition, then each
    first transition into a stage to the first transition into the next one (the
    lead's milestones).

    A lead reaches a stage only from the one before it, so the first transition into
    the next stage comes at or after the first into the previous one, unless history
    was written around Baton (a loaded history, a merge of two leads' pasts): a step
    that goes backwards is counted in ``leads`` and ``negative_durations`` and left
    out of the percentiles, never dropped silently."""
    _may_read(actor)
    filters = filters or ReportFilters()
    _check(group_by, filters)
    dialect = ctx.dialect
    lead = leads.alias("l")
    scope = _lead_scope(lead, lead, group_by, filters)
    pairs = list(itertools.pairwise(FUNNEL))

    def moment(stage: str) -> Any:
        return lead.c.created_at if stage == "lead" else lead.c[f"{stage}_at"]

    durations: dict[str, Any] = {}
    backwards: list[Any] = []
    for a, b in pairs:
        start, end = moment(a), moment(b)
        durations[a] = case((end >= start, seconds_between(dialect, start, end)))
        backwards.append(_count_if(end < start).label(f"{a}_backwards"))
    columns = _spreads(dialect, durations)
    query = (
        select(scope.group, *columns, *backwards)
        .select_from(scope.from_)
        .where(
            *_in_period(lead.c.created_at, period),
            lead.c.mql_at.is_not(None),
            *scope.where,
        )
        .group_by(*scope.grouping)
    )
    with ctx.read() as connection:
        found = _grouped(connection, query)
    rows = []
    for group, row in found.items():
        spreads = _spread_of(row, list(durations))
        for a, b in pairs:
            spread = spreads[a]
            negative = _int(row.get(f"{a}_backwards"))
            rows.append(
                VelocityRow(
                    group=group,
                    from_stage=a,
                    to_stage=b,
                    leads=spread.n + negative,
                    median_hours=hours(spread.at[50]),
                    p90_hours=hours(spread.at[90]),
                    negative_durations=negative,
                )
            )
    order = {a: i for i, (a, _) in enumerate(pairs)}
    rows.sort(key=lambda r: (group_order(r.group), order[r.from_stage]))
    return VelocityReport(period=period, group_by=group_by, filters=filters, rows=rows)


# --- speed to lead --------------------------------------------------------------------------

WITHIN = {"within_5m": 300, "within_1h": 3600, "within_24h": 86400}


def speed_to_lead(
    ctx: Context,
    period: ReportPeriod,
    *,
    actor: Principal,
    group_by: str | None = None,
    filters: ReportFilters | None = None,
) -> SpeedReport:
    """MQL → first touch per chain of handoffs (an MQL and its reassignments), for
    chains whose MQL moment is in the period and whose first handoff has a rep.
    System delay: MQL → the chain's first notification; rep delay: that notification
    → first touch (never below 0); business minutes: from the chain's first
    assignment to first touch in the touching rep's working hours."""
    _may_read(actor)
    filters = filters or ReportFilters()
    _check(group_by, filters)
    dialect = ctx.dialect
    chain, scope = _chain_scope(group_by, filters)
    metrics = {
        "speed": chain.c.speed_seconds,
        "system": chain.c.system_seconds,
        "rep": chain.c.rep_seconds,
        "business": case(
            (chain.c.first_touch_at.is_not(None), chain.c.touch_business_minutes * 60)
        ),
    }
    speed = metrics["speed"]
    query = (
        select(
            scope.group,
            func.count().label("chains"),
            *(_count_if(speed <= limit).label(name) for name, limit in WITHIN.items()),
            *_spreads(dialect, metrics),
        )
        .select_from(scope.from_)
        .where(*_in_period(chain.c.mql_at, period), chain.c.rep_id.is_not(None), *scope.where)
        .group_by(*scope.grouping)
    )
    with ctx.read() as connection:
        found = _grouped(connection, query)
    rows = []
    for group, row in found.items():
        n = _int(row.get("chains"))
        spread = _spread_of(row, list(metrics))
        speed_at, system_at = spread["speed"].at, spread["system"].at
        rep_at, business_at = spread["rep"].at, spread["business"].at
        rows.append(
            SpeedRow(
                group=group,
                handoffs=n,
                touched=spread["speed"].n,
                median_minutes=minutes(speed_at[50]),
                p90_minutes=minutes(speed_at[90]),
                within_5m=share(_int(row.get("within_5m")), n),
                within_1h=share(_int(row.get("within_1h")), n),
                within_24h=share(_int(row.get("within_24h")), n),
                system_median_minutes=minutes(system_at[50]),
                system_p90_minutes=minutes(system_at[90]),
                rep_median_minutes=minutes(rep_at[50]),
                rep_p90_minutes=minutes(rep_at[90]),
                business_median_minutes=minutes(business_at[50]),
                business_p90_minutes=minutes(business_at[90]),
            )
        )
    return SpeedReport(period=period, group_by=group_by, filters=filters, rows=_sorted(rows))


def speed_distribution(
    ctx: Context,
    period: ReportPeriod,
    *,
    actor: Principal,
    group_by: str | None = None,
    filters: ReportFilters | None = None,
) -> SpeedDistributionReport:
    """The chains of :func:`speed_to_lead` (MQL moment in the period, first handoff to
    a rep) by how soon they were first touched: the buckets of
    :data:`~baton.domain.reports.SPEED_BUCKETS` (within 5 minutes, 5-60 minutes, 1-24
    hours, later, not touched yet), each bucket with its count and share of the
    group's chains; every bucket has a row, zeros included."""
    _may_read(actor)
    filters = filters or ReportFilters()
    _check(group_by, filters)
    chain, scope = _chain_scope(group_by, filters)
    speed = chain.c.speed_seconds
    conditions: dict[str, ColumnElement[bool]] = {}
    below: int | None = None
    for key, _label, limit in SPEED_BUCKETS:
        if key == "not_touched":
            conditions[key] = speed.is_(None)
        elif limit is None:
            conditions[key] = speed > below
        else:
            floor = speed > below if below is not None else speed.is_not(None)
            conditions[key] = and_(floor, speed <= limit)
            below = limit
    query = (
        select(
            scope.group,
            func.count().label("chains"),
            *(_count_if(condition).label(key) for key, condition in conditions.items()),
        )
        .select_from(scope.from_)
        .where(*_in_period(chain.c.mql_at, period), chain.c.rep_id.is_not(None), *scope.where)
        .group_by(*scope.grouping)
    )
    with ctx.read() as connection:
        found = _grouped(connection, query)
    if group_by is None and not found:
        found = {None: {}}
    rows = []
    for group in sorted(found, key=group_order):
        row = found[group]
        n = _int(row.get("chains"))
        for key, label, _limit in SPEED_BUCKETS:
            count = _int(row.get(key))
            rows.append(SpeedBucketRow(group, key, label, count, share(count, n)))
    return SpeedDistributionReport(period=period, group_by=group_by, filters=filters, rows=rows)


# --- SLA --------------------------------------------------------------------------------------


def sla_compliance(
    ctx: Context,
    period: ReportPeriod,
    *,
    actor: Principal,
    group_by: str | None = None,
    filters: ReportFilters | None = None,
) -> SlaReport:
    """Every handoff assigned to a rep in the period (reassignments are handoffs of
    their own): accepted and first touched within their deadlines, late, or not at
    all, and the escalation steps taken on it (reminders and manager notifications
    as counted on the handoff, and whether it was reassigned). A handoff without a
    deadline (no contract was active) counts as in time. One still open inside its
    window now (assigned 5 minutes ago, 30 to accept) is *pending*, neither in time
    nor missed, and left out of the shares: a report run during the day counted every
    fresh handoff as "not accepted" (a newcomer's trial)."""
    _may_read(actor)
    filters = filters or ReportFilters()
    _check(group_by, filters)
    lead = leads.alias("l")
    h = handoffs.alias("h")
    scope = _handoff_scope(lead, h, h.join(lead, lead.c.id == h.c.lead_id), group_by, filters)
    query = (
        select(scope.group, *_sla_columns(h, ctx.clock.now()))
        .select_from(scope.from_)
        .where(*_in_period(h.c.assigned_at, period), h.c.rep_id.is_not(None), *scope.where)
        .group_by(*scope.grouping)
    )
    with ctx.read() as connection:
        found = list(_grouped(connection, query).values())
    rows = [_sla_row(row["grp"], row) for row in found]
    return SlaReport(period=period, group_by=group_by, filters=filters, rows=_sorted(rows))


def _sla_columns(h: Any, now: datetime) -> list[ColumnElement[Any]]:
    """The aggregates of the SLA report over handoffs ``h``; pending: still open, not
    accepted (touched) yet, and its deadline after ``now``."""
    accepted = h.c.accepted_at.is_not(None)
    accepted_ok = and_(
        accepted, or_(h.c.accept_due_at.is_(None), h.c.accepted_at <= h.c.accept_due_at)
    )
    touched = h.c.first_touch_at.is_not(None)
    touched_ok = and_(
        touched, or_(h.c.touch_due_at.is_(None), h.c.first_touch_at <= h.c.touch_due_at)
    )
    flags = {
        "a_ok": accepted_ok,
        "a_late": and_(accepted, ~accepted_ok),
        "t_ok": touched_ok,
        "t_late": and_(touched, ~touched_ok),
        "reassignments": h.c.status == "reassigned",
        "a_pending": and_(~accepted, h.c.status == "assigned", h.c.accept_due_at > now),
        "t_pending": and_(
            ~touched,
            h.c.status.in_(("assigned", "accepted", "qualified")),
            h.c.touch_due_at > now,
        ),
    }
    return [
        func.count().label("handoffs"),
        *(_count_if(f).label(name) for name, f in flags.items()),
        func.coalesce(func.sum(h.c.reminders), 0).label("reminders"),
        func.coalesce(func.sum(h.c.manager_notifications), 0).label("manager_notifications"),
    ]


def _sla_row(group: Group, row: Mapping[str, Any]) -> SlaRow:
    n = _int(row.get("handoffs"))
    a_ok, a_late = _int(row.get("a_ok")), _int(row.get("a_late"))
    t_ok, t_late = _int(row.get("t_ok")), _int(row.get("t_late"))
    a_pending, t_pending = _int(row.get("a_pending")), _int(row.get("t_pending"))
    return SlaRow(
        group=group,
        handoffs=n,
        accepted_in_sla=a_ok,
        accepted_late=a_late,
        not_accepted=n - a_ok - a_late - a_pending,
        pending_accept=a_pending,
        touched_in_sla=t_ok,
        touched_late=t_late,
        not_touched=n - t_ok - t_late - t_pending,
        pending_touch=t_pending,
        # Of the handoffs whose window has closed: a pending one may yet be in time.
        accepted_in_sla_share=share(a_ok, n - a_pending),
        touched_in_sla_share=share(t_ok, n - t_pending),
        reminders=_int(row.get("reminders")),
        reassignments=_int(row.get("reassignments")),
        manager_notifications=_int(row.get("manager_notifications")),
    )


def sla_by_week(
    ctx: Context,
    period: ReportPeriod,
    *,
    actor: Principal,
    filters: ReportFilters | None = None,
) -> SlaWeeklyReport:
    """:func:`sla_compliance` week by week (weeks start on Monday in the period's zone,
    see :func:`~baton.domain.reports.weeks`), in one query: each handoff falls in the
    week its assignment does. Every week of the period has a row, with zeros when
    nothing was assigned in it."""
    _may_read(actor)
    filters = filters or ReportFilters()
    _check(None, filters)
    if (period.end - period.start).days > MAX_WEEKS * 7:
        raise ValidationFailed(
            f"a weekly report covers at most {MAX_WEEKS} weeks; choose a shorter period",
            [FieldProblem("to", f"at most {MAX_WEEKS} weeks after 'from'")],
        )
    parts = weeks(period)
    lead = leads.alias("l")
    h = handoffs.alias("h")
    scope = _handoff_scope(lead, h, h.join(lead, lead.c.id == h.c.lead_id), None, filters)
    whens = [(h.c.assigned_at < part.end, index) for index, part in enumerate(parts[:-1])]
    last = literal(len(parts) - 1, Integer)
    week: ColumnElement[Any] = (case(*whens, else_=last) if whens else last).label("grp")
    query = (
        select(week, *_sla_columns(h, ctx.clock.now()))
        .select_from(scope.from_)
        .where(*_in_period(h.c.assigned_at, period), h.c.rep_id.is_not(None), *scope.where)
        .group_by(week)
    )
    with ctx.read() as connection:
        found = {_int(row["grp"]): dict(row) for row in connection.execute(query).mappings()}
    rows = [
        _sla_row(part.first_day.isoformat(), found.get(index, {}))
        for index, part in enumerate(parts)
    ]
    return SlaWeeklyReport(period=period, group_by="week", filters=filters, rows=rows)


# --- rejections -------------------------------------------------------------------------------


def _labels(connection: Connection, versions: set[int]) -> dict[tuple[int, str], str]:
    """(contract version, code) → label, from the stored catalogs."""
    labels: dict[tuple[int, str], str] = {}
    if not versions:
        return labels
    for version, spec in connection.execute(
        select(contracts.c.version, contracts.c.spec).where(contracts.c.version.in_(versions))
    ):
        for reason in (spec or {}).get("rejection_reasons") or []:
            if isinstance(reason, Mapping) and "code" in reason:
                labels[(int(version), str(reason["code"]))] = str(reason.get("label") or "")
    return labels


def rejections(
    ctx: Context,
    period: ReportPeriod,
    *,
    actor: Principal,
    group_by: str | None = None,
    filters: ReportFilters | None = None,
) -> RejectionReport:
    """Handoffs rejected in the period by reason code (with the label of the handoff's
    contract version, the outcome and marketing's credit) and each reason's share of
    the group's rejections; and what became of the leads recycled to nurture: of the
    leads whose first recycle rejection in the period is at time T, those with a
    transition into ``mql`` after T, and into ``customer`` after T."""
    _may_read(actor)
    filters = filters or ReportFilters()
    _check(group_by, filters)
    lead = leads.alias("l")
    h = handoffs.alias("h")
    scope = _handoff_scope(lead, h, h.join(lead, lead.c.id == h.c.lead_id), group_by, filters)
    conditions = [h.c.status == "rejected", *_in_period(h.c.closed_at, period), *scope.where]
    base = (
        select(
            scope.group,
            h.c.rejection_code.label("code"),
            h.c.contract_version.label("version"),
            h.c.outcome.label("outcome"),
            h.c.marketing_credit.label("credit"),
        )
        .select_from(scope.from_)
        .where(*conditions)
        .subquery("rejected")
    )
    query = select(
        base.c.grp,
        base.c.code,
        base.c.version,
        base.c.outcome,
        base.c.credit,
        func.count().label("n"),
    ).group_by(base.c.grp, base.c.code, base.c.version, base.c.outcome, base.c.credit)
    t = transitions.alias("rt")
    recycled = (
        select(
            func.min(h.c.closed_at).label("at"),
            func.max(case((t.c.to_stage == "mql", t.c.occurred_at))).label("mql"),
            func.max(case((t.c.to_stage == "customer", t.c.occurred_at))).label("customer"),
        )
        .select_from(
            scope.from_.outerjoin(
                t, and_(t.c.lead_id == h.c.lead_id, t.c.to_stage.in_(("mql", "customer")))
            )
        )
        .where(*conditions, h.c.outcome == "recycle")
        .group_by(h.c.lead_id)
        .subquery("recycled")
    )
    summary = select(
        func.count().label("recycled"),
        _count_if(recycled.c.mql > recycled.c.at).label("returned"),
        _count_if(recycled.c.customer > recycled.c.at).label("won"),
    )
    with ctx.read() as connection:
        found = list(connection.execute(query).mappings())
        labels = _labels(connection, {int(r["version"]) for r in found if r["version"] is not None})
        back = connection.execute(summary).mappings().one()
    merged: dict[tuple[Any, ...], int] = {}
    for row in found:
        code = row["code"] or "(none)"
        version = row["version"]
        label = labels.get((int(version), code), code) if version is not None else code
        credit = None if row["credit"] is None else bool(row["credit"])
        key = (row["grp"], code, label, row["outcome"], credit)
        merged[key] = merged.get(key, 0) + _int(row["n"])
    totals: dict[Group, int] = {}
    for (group, *_), n in merged.items():
        totals[group] = totals.get(group, 0) + n
    rows = [
        RejectionRow(group, code, label, outcome, credit, n, share(n, totals[group]))
        for (group, code, label, outcome, credit), n in merged.items()
    ]
    rows.sort(key=lambda r: (group_order(r.group), -r.count, r.code, r.label))
    return RejectionReport(
        period=period,
        group_by=group_by,
        filters=filters,
        rows=rows,
        recycled=RecycleSummary(
            recycled=_int(back["recycled"]),
            returned_as_mql=_int(back["returned"]),
            won=_int(back["won"]),
        ),
    )


# --- marketing credit -------------------------------------------------------------------------


def marketing_credit(
    ctx: Context,
    period: ReportPeriod,
    *,
    actor: Principal,
    group_by: str | None = "source",
    filters: ReportFilters | None = None,
) -> CreditReport:
    """MQLs of the period (chains of handoffs: an MQL and its reassignments, by the
    MQL moment), those sales rejected without credit for marketing, and of the
    credited ones how many sales accepted and won, whatever path the lead took while
    the chain was its latest MQL (a verdict, or a manager's moves by hand; see
    :func:`baton.services.milestones._by_the_lead`); and the customers won without a
    handoff, by their first MQL moment (or the moment they became customers), so that
    every customer is in the report exactly once."""
    _may_read(actor)
    filters = filters or ReportFilters()
    _check(group_by, filters)
    chain, scope = _chain_scope(group_by, filters)
    query = (
        select(
            scope.group,
            func.count().label("mqls"),
            _count_if(chain.c.rejected_without_credit).label("no_credit"),
            _count_if(chain.c.accepted).label("accepted"),
            _count_if(chain.c.won).label("won"),
        )
        .select_from(scope.from_)
        .where(*_in_period(chain.c.mql_at, period), *scope.where)
        .group_by(*scope.grouping)
    )
    with ctx.read() as connection:
        found = _grouped(connection, query)
        unhanded = {
            grp: _int(n)
            for grp, n in connection.execute(_won_without_handoff(period, group_by, filters))
        }
    rows = []
    for group in set(found) | set(unhanded):
        row = found.get(group) or {}
        mqls, no_credit = _int(row.get("mqls")), _int(row.get("no_credit"))
        credited = mqls - no_credit
        accepted, won = _int(row.get("accepted")), _int(row.get("won"))
        rows.append(
            CreditRow(
                group=group,
                mqls=mqls,
                rejected_without_credit=no_credit,
                credited_mqls=credited,
                accepted=accepted,
                won=won,
                acceptance_rate=share(accepted, credited),
                win_rate=share(won, credited),
                won_without_handoff=unhanded.get(group, 0),
            )
        )
    return CreditReport(period=period, group_by=group_by, filters=filters, rows=_sorted(rows))


def _won_without_handoff(period: ReportPeriod, group_by: str | None, filters: ReportFilters) -> Any:
    """(group, customers with no won chain) for the leads whose first MQL (or, never an
    MQL, whose first customer moment) is in the period, grouped like the lead-based
    reports. Customers are looked up from their transitions into ``customer`` (few, and
    indexed by stage), not by scanning every lead."""
    lead = leads.alias("l")
    scope = _lead_scope(lead, lead, group_by, filters)
    t = transitions.alias("ct")
    c = handoff_chains.alias("wc")
    won = select(c.c.chain_id).where(c.c.lead_id == lead.c.id, c.c.won).exists()
    moment = func.coalesce(lead.c.mql_at, lead.c.customer_at)
    return (
        select(scope.group, func.count())
        .select_from(scope.from_)
        .where(
            lead.c.id.in_(select(t.c.lead_id).where(t.c.to_stage == "customer")),
            ~won,
            *_in_period(moment, period),
            *scope.where,
        )
        .group_by(*scope.grouping)
    )


# --- spend and cost ----------------------------------------------------------------------------


def _contract_costs(connection: Connection) -> list[SpendEntry]:
    active = active_contract_in(connection, share_lock=False)
    if active is None:
        return []
    return [
        SpendEntry(
            source=c.source,
            campaign=c.campaign,
            starts_on=c.start,
            ends_on=c.end,
            amount=c.amount,
            currency=c.currency,
            origin="contract",
        )
        for c in active[1].costs
    ]


def _spend_rows(connection: Connection) -> Any:
    """Imported spend, and the active contract's ``costs`` entries for keys not
    imported, as one subquery (source, campaign, starts_on, ends_on, amount,
    currency)."""
    imported = select(
        spend.c.source,
        spend.c.campaign,
        spend.c.starts_on,
        spend.c.ends_on,
        spend.c.amount,
        spend.c.currency,
    )
    parts: list[Any] = [imported]
    for entry in _contract_costs(connection):
        shadowed = (
            select(spend.c.id)
            .where(
                spend.c.source == entry.source,
                func.coalesce(spend.c.campaign, "") == (entry.campaign or ""),
                spend.c.starts_on == entry.starts_on,
                spend.c.ends_on == entry.ends_on,
            )
            .exists()
        )
        parts.append(
            select(
                literal(entry.source, String).label("source"),
                literal(entry.campaign, String).label("campaign"),
                literal(entry.starts_on, Date).label("starts_on"),
                literal(entry.ends_on, Date).label("ends_on"),
                literal(entry.amount, Float).label("amount"),
                literal(entry.currency, String).label("currency"),
            ).where(~shadowed)
        )
    return union_all(*parts).subquery("all_spend")


def _spend_by_group(
    connection: Connection, period: ReportPeriod, group_by: str, filters: ReportFilters
) -> tuple[dict[Group, float], list[str]]:
    dialect = connection.dialect.name
    rows = _spend_rows(connection)
    first, end = period.first_day, period.end_day
    start_n = _day_number(dialect, rows.c.starts_on)
    end_n = _day_number(dialect, rows.c.ends_on) + 1
    overlap = _least(end_n, _days(end)) - _greatest(start_n, _days(first))
    conditions: list[ColumnElement[bool]] = [rows.c.starts_on < end, rows.c.ends_on >= first]
    if filters.source is not None:
        conditions.append(rows.c.source == filters.source)
    if filters.campaign is not None:
        conditions.append(rows.c.campaign == filters.campaign)
    key = rows.c[group_by]
    query = (
        select(key.label("grp"), func.sum(rows.c.amount * overlap / (end_n - start_n)))
        .where(*conditions)
        .group_by(key)
    )
    amounts = {grp: float(total or 0) for grp, total in connection.execute(query)}
    currencies = sorted(
        c for (c,) in connection.execute(select(rows.c.currency).where(*conditions).distinct())
    )
    return amounts, currencies


def _check_cost_filters(group_by: str, filters: ReportFilters) -> None:
    if group_by not in COST_GROUP_BY:
        raise _refuse(
            "group_by",
            f"cost is grouped by {' or '.join(COST_GROUP_BY)} (spend is recorded per source "
            f"and campaign), not {group_by!r}",
        )
    extra = [k for k in filters.given() if k not in COST_GROUP_BY]
    if extra:
        raise _refuse(
            extra[0],
            f"cost can be filtered by source and campaign only (spend is recorded per "
            f"source and campaign), not by {extra[0]}",
        )


def cost(
    ctx: Context,
    period: ReportPeriod,
    *,
    actor: Principal,
    group_by: str = "source",
    filters: ReportFilters | None = None,
) -> CostReport:
    """Spend in the period (prorated by days of overlap) against the leads created in
    it and how far they went; and the cost of the gap between marketing and sales:
    what the rejected, expired and dropped leads cost and the revenue the expired and
    dropped ones were expected to bring.

    A lead is *rejected* when a handoff of it was; *expired* when, not rejected, one of
    its chains was handed and never accepted, and is closed or overdue; *dropped* when
    it stalled (MQL without SAL, or SAL without SQL), neither rejected nor expired, with
    nothing open (read from the lead's milestones and handoff outcomes)."""
    _may_read(actor)
    filters = filters or ReportFilters()
    _check_cost_filters(group_by, filters)
    now = ctx.clock.now()
    lead = leads.alias("l")

    scope = _scope(
        lead,
        lead,
        group_by,
        filters,
        rep_join=lambda current, _rep: current,
        contract_version=lambda current: (current, null()),
    )
    mask, outcomes = lead.c.reached_stages, lead.c.handoff_outcomes

    def outcome(name: str) -> ColumnElement[bool]:
        return outcomes.bitwise_and(OUTCOME_BITS[name]) != 0

    rejected = outcome("rejected")
    expired = and_(
        ~rejected,
        or_(
            outcome("closed_unaccepted"),
            and_(lead.c.open_accept_due_at.is_not(None), lead.c.open_accept_due_at < now),
        ),
    )
    stalled = or_(
        and_(_has(mask, "mql"), ~_has(mask, "sal")),
        and_(_has(mask, "sal"), ~_has(mask, "sql")),
    )
    dropped = and_(stalled, ~rejected, ~expired, ~outcome("open"))
    query = (
        select(
            scope.group,
            func.count().label("lead"),
            *(_count_if(_has(mask, s)).label(s) for s in ("mql", "sal", "sql", "customer")),
            _count_if(and_(_has(mask, "mql"), outcome("rejected_without_credit"))).label(
                "no_credit"
            ),
            _count_if(rejected).label("rejected"),
            _count_if(expired).label("expired"),
            _count_if(dropped).label("dropped"),
        )
        .select_from(scope.from_)
        .where(*_in_period(lead.c.created_at, period), *scope.where)
        .group_by(*scope.grouping)
    )
    w = handoff_chains.alias("w")
    won_lost = select(
        _count_if(w.c.won),
        _count_if(w.c.lost),
        func.avg(case((w.c.won, w.c.deal_value))),
    ).where(or_(w.c.won, w.c.lost))
    with ctx.read() as connection:
        amounts, currencies = _spend_by_group(connection, period, group_by, filters)
        counted = _grouped(connection, query)
        won, lost, average = connection.execute(won_lost).one()
    rows = []
    totals = dict.fromkeys(("rejected", "expired", "dropped"), 0)
    costs = dict.fromkeys(("rejected", "expired", "dropped"), 0.0)
    for group in set(amounts) | set(counted):
        row = counted.get(group) or {}
        amount = amounts.get(group, 0.0)
        counts = {s: _int(row.get(s)) for s in ("lead", "mql", "sal", "sql", "customer")}
        rows.append(cost_row(group, amount, counts, counts["mql"] - _int(row.get("no_credit"))))
        for name in totals:
            n = _int(row.get(name))
            totals[name] += n
            if counts["lead"]:
                costs[name] += amount / counts["lead"] * n
    win_rate = share(_int(won), _int(won) + _int(lost))
    average_deal = _num(average)
    expected = (
        round((totals["expired"] + totals["dropped"]) * average_deal * win_rate, 2)
        if average_deal is not None and win_rate is not None
        else None
    )
    gap = CostOfGap(
        spend_on_rejected=round(costs["rejected"], 2),
        spend_on_expired=round(costs["expired"], 2),
        spend_on_dropped=round(costs["dropped"], 2),
        leads_rejected=totals["rejected"],
        leads_expired=totals["expired"],
        leads_dropped=totals["dropped"],
        average_deal_value=None if average_deal is None else round(average_deal, 2),
        win_rate=win_rate,
        expected_revenue_lost=expected,
    )
    return CostReport(
        period=period,
        group_by=group_by,
        filters=filters,
        rows=_sorted(rows),
        gap=gap,
        currencies=currencies,
    )


# --- spend import --------------------------------------------------------------------------------


@dataclass
class SpendImportReport:
    """What a spend import did. Row numbers are the file's line numbers (header = 1)."""

    rows: int = 0
    stored: int = 0
    replaced: int = 0
    errors: list[RowError] = field(default_factory=list)

    @property
    def rejected(self) -> int:
        return len({e.row for e in self.errors})


SPEND_ALIASES = {
    "channel": "source",
    "lead_source": "source",
    "campaign_name": "campaign",
    "start_date": "start",
    "starts_on": "start",
    "from": "start",
    "end_date": "end",
    "ends_on": "end",
    "to": "end",
    "until": "end",
    "cost": "amount",
    "spend": "amount",
    "value": "amount",
    "period": "month",
}
SPEND_COLUMNS = ("source", "campaign", "start", "end", "month", "amount", "currency")
"""``month`` (``2026-03``, ``March 2026``) stands for ``start`` and ``end`` of a
monthly spend sheet; a month written in ``start`` or ``end`` means its first or its
last day."""
_AMOUNT = re.compile(r"^[+]?(\d{1,3}(,\d{3})+|\d+)(\.\d+)?$|^[+]?\.\d+$")
"""Commas only as thousands separators: ``12,5`` (a decimal comma) is refused, never
read as 125."""


def _spend_row(
    values: Mapping[str, str], line: int, *, day_first: bool = False
) -> tuple[dict[str, Any] | None, list[RowError]]:
    problems: list[RowError] = []
    source = fold_source(values.get("source") or "")  # as leads store it
    campaign = (values.get("campaign") or "").strip() or None
    if not source:
        problems.append(RowError(line, "source", "is required"))
    elif len(source) > 200:
        problems.append(RowError(line, "source", "is longer than 200 characters"))
    if campaign and len(campaign) > 200:
        problems.append(RowError(line, "campaign", "is longer than 200 characters"))
    days: dict[str, date] = {}
    month = (values.get("month") or "").strip()
    for index, name in enumerate(("start", "end")):
        text = (values.get(name) or "").strip()
        if not text and month:
            text, name = month, "month"
        if not text:
            problems.append(RowError(line, name, "is required"))
            continue
        try:
            days[("start", "end")[index]] = read_period(text, day_first=day_first)[index]
        except ValueError as exc:
            problem = RowError(line, name, str(exc))
            if problem not in problems:  # a bad month is one problem, not two
                problems.append(problem)
    if len(days) == 2 and days["end"] < days["start"]:
        problems.append(RowError(line, "end", f"{days['end']} is before start {days['start']}"))
    text = (values.get("amount") or "").strip()
    amount: float | None = None
    if not text:
        problems.append(RowError(line, "amount", "is required"))
    elif not _AMOUNT.match(text):
        problems.append(
            RowError(line, "amount", f"'{text}' is not an amount; write e.g. 1200 or 1,200.50")
        )
    else:
        amount = float(text.replace(",", ""))
        if not math.isfinite(amount):
            problems.append(RowError(line, "amount", "is not a finite number"))
    currency = (values.get("currency") or "").strip().upper() or "USD"
    if not re.fullmatch(r"[A-Z]{3}", currency):
        problems.append(
            RowError(line, "currency", f"'{currency}' is not a three-letter code like EUR")
        )
    if problems:
        return None, problems
    return {
        "source": source,
        "campaign": campaign,
        "starts_on": days["start"],
        "ends_on": days["end"],
        "amount": amount,
        "currency": currency,
    }, []


def import_spend(
    ctx: Context,
    source: Path | IO[str],
    *,
    actor: Principal,
    encoding: str = "utf-8-sig",
    day_first: bool = False,
) -> SpendImportReport:
    """Import marketing spend from CSV (``source,campaign,start,end,amount[,currency]``,
    or ``month`` instead of ``start`` and ``end``; ``end`` is included; currency
    defaults to USD). Days are read in the common formats
    (:func:`~baton.domain.dates.read_period`; ``02/03/2026`` is 2 March with
    ``day_first``), and a month (``2026-03``, ``March 2026``) is the whole month. Bad
    rows are reported with their line numbers and the good ones kept, all in one
    transaction; a row for a (source, campaign, start, end) already stored replaces its
    amount. Marketing and admins import (the spend divides every cost figure); the
    importer's name is kept."""
    allowed(actor, Action.IMPORT_SPEND)
    headers, rows = _read_csv(source, encoding)
    mapping: dict[str, str] = {}
    for header in headers:
        key = header_key(header)
        target = SPEND_ALIASES.get(key, key)
        if target not in SPEND_COLUMNS:
            raise ImportFileError(
                f"unknown column {header!r}; a spend file has the columns "
                f"{', '.join(SPEND_COLUMNS)} (currency optional)"
            )
        if target in mapping.values():
            raise ImportFileError(f"two columns mean {target}; keep one")
        mapping[header] = target
    days = ("month",) if "month" in mapping.values() else ("start", "end")
    missing = [c for c in ("source", *days, "amount") if c not in mapping.values()]
    if missing:
        raise ImportFileError(
            f"the file has no {', '.join(missing)} column; a spend file has the columns "
            f"{', '.join(SPEND_COLUMNS)} (currency optional)"
        )
    report = SpendImportReport(rows=len(rows))
    good: dict[tuple[str, str, date, date], dict[str, Any]] = {}
    for index, row in enumerate(rows):
        line = index + 2
        if None in row:
            report.errors.append(RowError(line, "(row)", "row has more cells than the header"))
            continue
        values = {mapping[h]: v or "" for h, v in row.items() if h in mapping}
        parsed, problems = _spend_row(values, line, day_first=day_first)
        report.errors.extend(problems)
        if parsed is not None:
            good[
                (parsed["source"], parsed["campaign"] or "", parsed["starts_on"], parsed["ends_on"])
            ] = parsed
    now = ctx.clock.now()
    with ctx.write() as connection:
        if good:
            params = [
                {"k_source": s, "k_campaign": c, "k_start": a, "k_end": b} for s, c, a, b in good
            ]
            match = and_(
                spend.c.source == bindparam("k_source"),
                func.coalesce(spend.c.campaign, "") == bindparam("k_campaign"),
                spend.c.starts_on == bindparam("k_start", type_=Date),
                spend.c.ends_on == bindparam("k_end", type_=Date),
            )
            result = connection.execute(delete(spend).where(match), params)
            report.replaced = max(0, result.rowcount or 0)
            connection.execute(
                insert(spend),
                [{**row, "imported_at": now, "imported_by": actor.name} for row in good.values()],
            )
        report.stored = len(good)
    report.errors.sort(key=lambda e: e.row)
    return report


def list_spend(ctx: Context, *, actor: Principal, source: str | None = None) -> list[SpendEntry]:
    """Spend as reports count it: imported rows, and the active contract's ``costs``
    entries not overridden by an import; ordered by start day, source, campaign."""
    _may_read(actor)
    query = select(spend)
    if source is not None:
        query = query.where(spend.c.source == source)
    with ctx.read() as connection:
        found = [
            SpendEntry(
                source=r["source"],
                campaign=r["campaign"],
                starts_on=r["starts_on"],
                ends_on=r["ends_on"],
                amount=float(r["amount"]),
                currency=r["currency"],
                origin="import",
                imported_at=r["imported_at"],
                imported_by=r["imported_by"],
            )
            for r in connection.execute(query).mappings()
        ]
        keys = {e.key() for e in found}
        found += [
            e
            for e in _contract_costs(connection)
            if e.key() not in keys and (source is None or e.source == source)
        ]
    found.sort(key=lambda e: (e.starts_on, e.source, e.campaign or "", e.ends_on))
    return found
