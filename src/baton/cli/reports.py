"""`baton report ...`: funnel, velocity, speed to lead, SLA, rejections, credit, cost."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.cells import cell_len

from baton.cli._common import LOCAL, context
from baton.cli._output import (
    console,
    fail,
    fit_table,
    heading,
    print_records,
    reader_zone_name,
    say,
)

if TYPE_CHECKING:
    from baton.domain.reports import ReportFilters, ReportPeriod
    from baton.services.context import Context

report_app = typer.Typer(
    help="Reports: funnel, velocity, speed to lead, SLA, rejections, credit, cost.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)


class ReportFormat(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


class FunnelModeOption(StrEnum):
    cohort = "cohort"
    flow = "flow"


DEFAULT_DAYS = 30
"""A report without --from/--to covers the last 30 days, today included."""

FromOption = Annotated[
    str | None,
    typer.Option(
        "--from",
        help="First day of the period, YYYY-MM-DD (in --tz). Default: 30 days before --to.",
    ),
]
ToOption = Annotated[
    str | None,
    typer.Option("--to", help="Day after the last one (exclusive). Default: tomorrow."),
]
TzOption = Annotated[
    str | None,
    typer.Option(
        "--tz",
        help="IANA zone of the days (default: BATON_TIMEZONE, else the machine's zone).",
    ),
]
GroupByOption = Annotated[
    str | None,
    typer.Option(
        "--group-by",
        help="source, campaign, team, rep, country, contract_version, grade, or "
        "attributes.NAME (any lead attribute: attributes.landing_page).",
    ),
]
SourceFilter = Annotated[str | None, typer.Option("--source", help="Only this source.")]
CampaignFilter = Annotated[str | None, typer.Option("--campaign", help="Only this campaign.")]
TeamFilter = Annotated[str | None, typer.Option("--team", help="Only this team's reps.")]
RepFilter = Annotated[str | None, typer.Option("--rep", help="Only this rep (email).")]
CountryFilter = Annotated[str | None, typer.Option("--country", help="Only this country.")]
VersionFilter = Annotated[
    int | None, typer.Option("--contract-version", help="Only this contract version.")
]
FormatOption = Annotated[
    ReportFormat, typer.Option("--format", help="table (default), csv or json.")
]


@dataclass(frozen=True)
class _Asked:
    """A report command's period and filters as given, checked before the database is
    opened; the days left out are filled in from the context's clock."""

    start: date | None
    end: date | None
    tz: str | None
    group_by: str | None
    filters: ReportFilters

    @property
    def zone_name(self) -> str:
        """--tz, else the operator's zone (known once the settings are loaded), else UTC."""
        return self.tz or reader_zone_name() or "UTC"

    def period(self, ctx: Context) -> ReportPeriod:
        """The period asked, by default the last :data:`DEFAULT_DAYS` days (today in
        --tz included), or a one-line error naming --from and --to."""
        from baton.domain.reports import ReportPeriod, zone

        tomorrow = ctx.clock.now().astimezone(zone(self.zone_name)).date() + timedelta(days=1)
        end = self.end or tomorrow
        start = self.start or end - timedelta(days=DEFAULT_DAYS)
        if end <= start:
            given = f"--from {start} --to {end}" + ("" if self.end else " (tomorrow)")
            raise fail(f"--to must be after --from (--to is exclusive): got {given}")
        return ReportPeriod.from_dates(start, end, self.zone_name)

    @property
    def defaulted(self) -> bool:
        return self.start is None and self.end is None


def _asked(
    start: str | None,
    end: str | None,
    tz: str | None,
    group_by: str | None,
    filters: dict[str, Any],
) -> _Asked:
    """The period and filters of a report command, or a one-line error naming the
    option."""
    from baton.domain.reports import ReportFilters, check_group_by, zone

    days: list[date | None] = []
    for option, text in (("--from", start), ("--to", end)):
        try:
            days.append(None if text is None else date.fromisoformat(text))
        except ValueError:
            raise fail(f"{option}: {text!r} is not a date; write YYYY-MM-DD") from None
    try:
        if tz is not None:
            zone(tz)
    except ValueError as exc:
        raise fail(f"--tz: {exc}") from None
    try:
        check_group_by(group_by)
    except ValueError as exc:
        raise fail(f"--group-by: {exc}") from None
    return _Asked(days[0], days[1], tz, group_by, ReportFilters(**filters))


_PERCENT_KEYS = ("share", "rate", "within_", "uplift", "→")
_KEYS = ("group", "from_stage", "to_stage", "code", "sequence")
"""Columns that say which row it is (a group, a step, a reason), not a figure."""
_LEFT = (*_KEYS, "label", "outcome")


def _cell(key: str, value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if any(k in key for k in _PERCENT_KEYS):
            return f"{value:.1%}"
        return f"{value:,.2f}"
    return str(value)


def _period_text(report: Any, asked: _Asked) -> str:
    period = report.period
    text = f"{period.first_day} → {period.end_day} (exclusive) in {report.timezone}"
    if asked.defaulted:
        text = f"the last {DEFAULT_DAYS} days, {text}"
    if report.group_by:
        text += f", by {report.group_by}"
    given = report.filters.given()
    if given:
        text += ", only " + ", ".join(f"{k}={v}" for k, v in given.items())
    return text


def _title(title: str, report: Any, asked: _Asked) -> str:
    """``Title: period`` on one line, or on two when that would not fit."""
    period = _period_text(report, asked)
    one_line = f"{title}: {period}"
    return one_line if cell_len(one_line) <= console.width else f"{title}\n{period}"


def _show(title: str | None, rows: list[dict[str, Any]], columns: list[str]) -> None:
    """Rows of a report so that no cell wraps at the console's width: one row a line
    when they fit; else one column per row, the figures down (a short report, or few
    groups); else ``key: value`` lines, one block per row."""
    if title:
        heading(title)
    keys = [c for c in columns if c in _KEYS]
    figures = [c for c in columns if c not in _KEYS]
    cells = [[_cell(c, row.get(c)) for c in columns] for row in rows]
    left = [i for i, c in enumerate(columns) if c in _LEFT]
    table = fit_table([c.replace("_", " ") for c in columns], cells, left=left)
    if table is None:
        names = [" → ".join(_cell(k, row.get(k)) for k in keys) or "value" for row in rows]
        down = [[f.replace("_", " "), *(_cell(f, row.get(f)) for row in rows)] for f in figures]
        table = fit_table(["", *names], down) if len(set(names)) == len(names) else None
    if table is not None:
        console.print(table)
        return
    print_records(
        [
            (
                " → ".join(_cell(k, row.get(k)) for k in keys),
                [(f.replace("_", " "), _cell(f, row.get(f))) for f in figures],
            )
            for row in rows
        ]
    )


def _emit(
    report: Any,
    fmt: ReportFormat,
    title: str,
    asked: _Asked,
    extra: list[tuple[str, dict[str, Any]]] | None = None,
) -> None:
    """Print a report as tables that fit the console, CSV rows (stdout) or its JSON;
    ``extra`` are summaries (title, figures) shown after the table."""
    import json

    data = report.to_json()
    rows: list[dict[str, Any]] = data["rows"]
    if fmt == ReportFormat.json:
        typer.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))
        return
    if fmt == ReportFormat.csv:
        from baton.services.exports import write_table

        columns = report.columns()
        rows_out = ([row.get(c) for c in columns] for row in rows)
        write_table(sys.stdout, columns, rows_out, lineterminator="\n")
        return
    columns = [c for c in report.columns() if report.group_by or c != "group"]
    if not _nothing_to_group(report, title, asked):
        _show(_title(title, report, asked), rows, columns)
    for name, summary in extra or []:
        _show(name, [summary], list(summary))


def _nothing_to_group(report: Any, title: str, asked: _Asked) -> bool:
    """Say so, in words, when a grouped report has no group in its period (an empty
    table reads like a display fault); ``True`` when it said so."""
    if not report.group_by or report.rows:
        return False
    fewer = " or fewer filters" if report.filters.given() else ""
    heading(
        f"{_title(title, report, asked)}\nNothing to show: the period has no data "
        f"to group by {report.group_by} (try a wider period{fewer})."
    )
    return True


def _show_funnel(report: Any, asked: _Asked) -> None:
    """Stages down, groups across: the count and the conversion from the stage before;
    per group ``stage: count`` lines when the groups do not fit across."""
    from baton.domain.reports import FUNNEL, SIDE_STAGES

    heading(_title(f"Funnel ({report.mode})", report, asked))
    names = [
        _cell("group", row.group if row.group is not None else "(none)")
        if report.group_by
        else "leads"
        for row in report.rows
    ]
    stages: list[list[str]] = []
    previous = None
    for stage in (*FUNNEL, *SIDE_STAGES):
        cells = []
        for row in report.rows:
            count = f"{row.counts[stage]:,}"
            rate = row.conversion.get(f"{previous}→{stage}") if previous else None
            cells.append(count + (f" ({rate:.1%})" if rate is not None else ""))
        stages.append([stage, *cells])
        previous = stage if stage in FUNNEL else None
    stages.append(
        ["lead → customer", *(_cell("→", row.conversion["lead→customer"]) for row in report.rows)]
    )
    table = fit_table(["stage", *names], stages)
    if table is not None:
        console.print(table)
        return
    print_records(
        [(name, [(line[0], line[1 + i]) for line in stages]) for i, name in enumerate(names)]
    )


@report_app.command("funnel")
def report_funnel(
    start: FromOption = None,
    end: ToOption = None,
    tz: TzOption = None,
    group_by: GroupByOption = None,
    mode: Annotated[
        FunnelModeOption,
        typer.Option(
            "--mode",
            help="cohort: leads created in the period, and how far they "
            "went; flow: leads that moved into each stage in the period.",
        ),
    ] = FunnelModeOption.cohort,
    source: SourceFilter = None,
    campaign: CampaignFilter = None,
    team: TeamFilter = None,
    rep: RepFilter = None,
    country: CountryFilter = None,
    contract_version: VersionFilter = None,
    fmt: FormatOption = ReportFormat.table,
) -> None:
    """Leads per stage and the conversion from each stage to the next (default: the
    last 30 days)."""
    from baton.services.reports import funnel

    asked = _asked(start, end, tz, group_by, locals_filters(locals()))
    with context() as ctx:
        report = funnel(
            ctx,
            asked.period(ctx),
            mode=mode.value,
            group_by=group_by,
            filters=asked.filters,
            actor=LOCAL,
        )
    if fmt == ReportFormat.table:
        if not _nothing_to_group(report, f"Funnel ({mode.value})", asked):
            _show_funnel(report, asked)
        return
    _emit(report, fmt, "Funnel", asked)


def locals_filters(values: dict[str, Any]) -> dict[str, Any]:
    """The filter options of a report command, by their ReportFilters names."""
    return {
        name: values.get(name)
        for name in ("source", "campaign", "team", "rep", "country", "contract_version")
    }


@report_app.command("velocity")
def report_velocity(
    start: FromOption = None,
    end: ToOption = None,
    tz: TzOption = None,
    group_by: GroupByOption = None,
    source: SourceFilter = None,
    campaign: CampaignFilter = None,
    team: TeamFilter = None,
    rep: RepFilter = None,
    country: CountryFilter = None,
    contract_version: VersionFilter = None,
    fmt: FormatOption = ReportFormat.table,
) -> None:
    """Hours between consecutive stages (median, 90th percentile) for the leads created
    in the period (default: the last 30 days)."""
    from baton.services.reports import velocity

    asked = _asked(start, end, tz, group_by, locals_filters(locals()))
    with context() as ctx:
        report = velocity(
            ctx, asked.period(ctx), group_by=group_by, filters=asked.filters, actor=LOCAL
        )
    _emit(report, fmt, "Velocity (hours)", asked)
    note = report.to_json()["data_quality"]["note"]
    if note and fmt == ReportFormat.table:
        say(f"data quality: {note}")


@report_app.command("speed")
def report_speed(
    start: FromOption = None,
    end: ToOption = None,
    tz: TzOption = None,
    group_by: GroupByOption = None,
    source: SourceFilter = None,
    campaign: CampaignFilter = None,
    team: TeamFilter = None,
    rep: RepFilter = None,
    country: CountryFilter = None,
    contract_version: VersionFilter = None,
    fmt: FormatOption = ReportFormat.table,
) -> None:
    """Speed to lead (minutes) of the MQLs of the period (default: the last 30 days):
    MQL → first touch, system and rep delay, business minutes, shares touched within
    5 min, 1 h, 24 h."""
    from baton.services.reports import speed_to_lead

    asked = _asked(start, end, tz, group_by, locals_filters(locals()))
    with context() as ctx:
        report = speed_to_lead(
            ctx, asked.period(ctx), group_by=group_by, filters=asked.filters, actor=LOCAL
        )
    _emit(report, fmt, "Speed to lead (minutes)", asked)


@report_app.command("sla")
def report_sla(
    start: FromOption = None,
    end: ToOption = None,
    tz: TzOption = None,
    group_by: GroupByOption = None,
    source: SourceFilter = None,
    campaign: CampaignFilter = None,
    team: TeamFilter = None,
    rep: RepFilter = None,
    country: CountryFilter = None,
    contract_version: VersionFilter = None,
    fmt: FormatOption = ReportFormat.table,
) -> None:
    """SLA compliance of the handoffs assigned in the period (default: the last 30
    days), and the escalations."""
    from baton.services.reports import sla_compliance

    asked = _asked(start, end, tz, group_by, locals_filters(locals()))
    with context() as ctx:
        report = sla_compliance(
            ctx, asked.period(ctx), group_by=group_by, filters=asked.filters, actor=LOCAL
        )
    _emit(report, fmt, "SLA compliance", asked)


@report_app.command("rejections")
def report_rejections(
    start: FromOption = None,
    end: ToOption = None,
    tz: TzOption = None,
    group_by: GroupByOption = None,
    source: SourceFilter = None,
    campaign: CampaignFilter = None,
    team: TeamFilter = None,
    rep: RepFilter = None,
    country: CountryFilter = None,
    contract_version: VersionFilter = None,
    fmt: FormatOption = ReportFormat.table,
) -> None:
    """Rejections of the period (default: the last 30 days) by reason, and what became
    of the recycled leads."""
    from baton.services.reports import rejections

    asked = _asked(start, end, tz, group_by, locals_filters(locals()))
    with context() as ctx:
        report = rejections(
            ctx, asked.period(ctx), group_by=group_by, filters=asked.filters, actor=LOCAL
        )
    extra = [("Leads recycled to nurture", report.recycled.to_json())]
    _emit(report, fmt, "Rejections", asked, extra)


@report_app.command("credit")
def report_credit(
    start: FromOption = None,
    end: ToOption = None,
    tz: TzOption = None,
    group_by: Annotated[
        str,
        typer.Option(
            "--group-by", help="source (default), campaign, team, rep, country or contract_version."
        ),
    ] = "source",
    source: SourceFilter = None,
    campaign: CampaignFilter = None,
    team: TeamFilter = None,
    rep: RepFilter = None,
    country: CountryFilter = None,
    contract_version: VersionFilter = None,
    fmt: FormatOption = ReportFormat.table,
) -> None:
    """Marketing credit of the period (default: the last 30 days): MQLs, those rejected
    without credit, and of the credited ones how many were accepted and won."""
    from baton.services.reports import marketing_credit

    asked = _asked(start, end, tz, group_by, locals_filters(locals()))
    with context() as ctx:
        report = marketing_credit(
            ctx, asked.period(ctx), group_by=group_by, filters=asked.filters, actor=LOCAL
        )
    _emit(report, fmt, "Marketing credit", asked)


@report_app.command("cost")
def report_cost(
    start: FromOption = None,
    end: ToOption = None,
    tz: TzOption = None,
    group_by: Annotated[
        str, typer.Option("--group-by", help="source (default) or campaign.")
    ] = "source",
    source: SourceFilter = None,
    campaign: CampaignFilter = None,
    fmt: FormatOption = ReportFormat.table,
) -> None:
    """Spend per source or campaign against the leads created in the period (default:
    the last 30 days), cost per lead, MQL, SAL, SQL and customer, and the cost of the
    gap."""
    from baton.services.reports import cost

    asked = _asked(start, end, tz, group_by, {"source": source, "campaign": campaign})
    with context() as ctx:
        report = cost(ctx, asked.period(ctx), group_by=group_by, filters=asked.filters, actor=LOCAL)
    _emit(report, fmt, "Cost", asked, [("Cost of the gap", report.gap.to_json())])
    if report.currencies and fmt == ReportFormat.table:
        say(f"Amounts in {', '.join(report.currencies)}")


@report_app.command("nurture")
def report_nurture(
    start: FromOption = None,
    end: ToOption = None,
    tz: TzOption = None,
    sequence: Annotated[
        str | None, typer.Option("--sequence", help="Only this nurture sequence.")
    ] = None,
    fmt: FormatOption = ReportFormat.table,
) -> None:
    """Nurture per sequence in the period (default: the last 30 days): enrolled, sent,
    opened and clicked (unique per step), unsubscribed, hard bounced, returned to
    sales, opportunities; and the share of all opportunities that came through
    nurture."""
    from baton.services.nurture_reports import nurture_report

    asked = _asked(start, end, tz, None, {})
    with context() as ctx:
        report = nurture_report(ctx, asked.period(ctx), sequence=sequence, actor=LOCAL)
    if fmt != ReportFormat.table:
        _emit(report, fmt, "Nurture", asked)
        return
    rows = [r.flat() for r in report.rows]
    if len(rows) != 1:
        rows.append(report.total.flat())
    title = _title(f"Nurture ({sequence})" if sequence else "Nurture", report, asked)
    if not report.rows:
        heading(f"{title}\nNo nurture sequence has figures in this period.")
    else:
        _show(title, rows, report.columns())
    share = report.opportunities.to_json()
    _show("Opportunities through nurture", [share], list(share))


@report_app.command("rebuild")
def report_rebuild() -> None:
    """Recompute the milestones reports read (stages each lead reached, chains of
    handoffs, SLA step counts) from the history. Baton keeps them as it goes; run this
    after writing to the database around Baton (a bulk load, a manual fix)."""
    from baton.services.milestones import rebuild_milestones

    with context() as ctx, console.status("Recomputing milestones from the history..."):
        started = time.perf_counter()
        counts = rebuild_milestones(ctx)
    say(
        f"Rebuilt milestones of {counts['leads']:,} leads and {counts['chains']:,} chains of"
        f" handoffs, step counts of {counts['handoffs']:,} handoffs"
        f" ({time.perf_counter() - started:,.1f} s)."
    )
