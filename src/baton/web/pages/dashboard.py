"""``/dashboard``: marketing's home: the funnel, speed to lead, SLA by week,
rejections, marketing credit and cost, with their charts, tables and CSV downloads,
and the nurture table (:mod:`baton.services.nurture_reports`, unfiltered).

Every figure comes from :mod:`baton.services.reports` (the same use cases as
``/api/v1/reports/*``, with the same access rule: company-wide figures for admins,
marketing and sales managers; a rep gets the 403 page). This module only turns the
reader's GET form into a period and filters, and report rows into chart series and
table rows (layout); the CSV links answer the same reports' rows through
:func:`baton.services.exports.write_table`, the one path that guards formula cells.
"""

from __future__ import annotations

import io
import itertools
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, Response
from markupsafe import Markup

from baton.api.deps import get_context
from baton.domain.errors import NotFound
from baton.domain.moments import check_year
from baton.domain.nurture_report import NurtureReport
from baton.domain.reports import (
    FUNNEL,
    MAX_WEEKS,
    CostReport,
    CreditReport,
    FunnelReport,
    RejectionReport,
    ReportFilters,
    ReportPeriod,
    SlaWeeklyReport,
    SpeedDistributionReport,
    SpeedReport,
    zone,
)
from baton.services import reports as report_service
from baton.services.context import Context
from baton.services.exports import write_table
from baton.services.nurture_reports import nurture_report
from baton.web import charts
from baton.web.deps import PageSession, PageUser
from baton.web.render import render

router = APIRouter(include_in_schema=False)

DEFAULT_DAYS = 30
GROUPS = ("source", "campaign")
"""What credit and cost are broken down by (spend is recorded per source and campaign)."""
STAGE_NAMES = {
    "lead": "Leads",
    "mql": "MQL",
    "sal": "SAL",
    "sql": "SQL",
    "opportunity": "Opportunity",
    "customer": "Customer",
}


@dataclass(frozen=True)
class Asked:
    """The dashboard's form: the period (local days, ``until`` included) in the
    reader's zone, the filters, and what credit and cost are grouped by."""

    first: date
    until: date
    timezone: str
    source: str | None
    campaign: str | None
    team: str | None
    group: str
    problems: tuple[str, ...] = ()

    @property
    def period(self) -> ReportPeriod:
        return ReportPeriod.from_dates(self.first, self.until + timedelta(days=1), self.timezone)

    @property
    def filters(self) -> ReportFilters:
        return ReportFilters(source=self.source, campaign=self.campaign, team=self.team)

    @property
    def cost_filters(self) -> ReportFilters:
        """Spend is recorded per source and campaign: cost takes no team."""
        return ReportFilters(source=self.source, campaign=self.campaign)

    def query(self) -> str:
        """The form as a query string (for the CSV links)."""
        values = {
            "from": self.first.isoformat(),
            "until": self.until.isoformat(),
            "source": self.source or "",
            "campaign": self.campaign or "",
            "team": self.team or "",
            "group": self.group,
        }
        return urlencode({k: v for k, v in values.items() if v})


def _day(text: str | None, name: str, problems: list[str]) -> date | None:
    if not text:
        return None
    try:
        day = date.fromisoformat(text.strip())
        check_year(day)  # as the reports API: a year out of range would overflow (a 500)
    except ValueError:
        problems.append(
            f"{name}: '{text}' is not a date like 2026-03-02 (1970 to 2200); the default is shown"
        )
        return None
    return day


def _text(value: str | None) -> str | None:
    value = (value or "").strip()
    return value[:200] or None


def read_form(
    user: PageSession,
    ctx: Context,
    first: str | None,
    until: str | None,
    source: str | None,
    campaign: str | None,
    team: str | None,
    group: str | None,
) -> Asked:
    """The form's values, or the defaults (the last 30 days up to today in the
    reader's zone, grouped by source); a wrong value is named, never an error page."""
    problems: list[str] = []
    try:
        timezone = zone(user.timezone).key
    except ValueError:
        timezone = "UTC"
    today = ctx.clock.now().astimezone(zone(timezone)).date()
    end = _day(until, "until", problems) or today
    start = _day(first, "from", problems) or end - timedelta(days=DEFAULT_DAYS - 1)
    if start > end:
        problems.append("'from' is after 'until'; the last 30 days are shown")
        end, start = today, today - timedelta(days=DEFAULT_DAYS - 1)
    if (end - start).days >= MAX_WEEKS * 7:
        problems.append(f"a period is at most {MAX_WEEKS} weeks; the last 30 days are shown")
        end, start = today, today - timedelta(days=DEFAULT_DAYS - 1)
    if group and group not in GROUPS:
        problems.append(f"group: use source or campaign, not '{group}'")
    return Asked(
        first=start,
        until=end,
        timezone=timezone,
        source=_text(source),
        campaign=_text(campaign),
        team=_text(team),
        group=group if group in GROUPS else "source",
        problems=tuple(problems),
    )


From = Annotated[str | None, Query(alias="from", max_length=40)]
Text = Annotated[str | None, Query(max_length=200)]


# --- the reports ------------------------------------------------------------------------


@dataclass(frozen=True)
class Reports:
    cohort: FunnelReport
    flow: FunnelReport
    speed: SpeedReport
    distribution: SpeedDistributionReport
    sla: SlaWeeklyReport
    rejections: RejectionReport
    credit: CreditReport
    cost: CostReport
    nurture: NurtureReport


_SECTIONS = {
    "cohort": "funnel-cohort",
    "flow": "funnel-flow",
    "speed": "speed-to-lead",
    "distribution": "speed-distribution",
    "sla": "sla-weekly",
    "rejections": "rejections",
    "credit": "credit",
    "cost": "cost",
    "nurture": "nurture",
}
"""Each report of the page and the :data:`CSV` entry that reads it (one call per
report, shared by the page and its CSV links)."""


def _reports(ctx: Context, user: PageSession, asked: Asked) -> Reports:
    """The nine reports of the page, read at the same time: each is its own read
    transaction on its own connection, and the database works on them in parallel
    (the page waits for the slowest, not for the sum: at 1M leads the sum is ~600 ms)."""
    with ThreadPoolExecutor(max_workers=4, thread_name_prefix="dashboard") as pool:
        futures = {
            field: pool.submit(CSV[name][0], ctx, user, asked) for field, name in _SECTIONS.items()
        }
        return Reports(**{field: future.result() for field, future in futures.items()})


def _one(report: FunnelReport | SpeedReport) -> dict[str, Any]:
    """The single row of an ungrouped report (an empty dict if it has none)."""
    rows = report.to_json()["rows"]
    return dict(rows[0]) if rows else {}


def _group(value: Any) -> str:
    return "(none)" if value is None else str(value)


def _minutes(value: float) -> str:
    return f"{value:,.1f} min" if value < 120 else f"{value / 60:,.1f} h"


def _svg(svg: str) -> Markup:
    """A chart from :mod:`baton.web.charts`, which escapes every label it draws."""
    return Markup(svg)  # noqa: S704  (built by charts.py, every text escaped there)


def _sections(reports: Reports) -> dict[str, Any]:
    """Chart SVGs (markup) and the rows of the tables beside them."""
    cohort, flow = _one(reports.cohort), _one(reports.flow)
    stages = [(STAGE_NAMES[s], cohort.get(s, 0)) for s in FUNNEL]
    steps = [f"{a}→{b}" for a, b in itertools.pairwise(FUNNEL)]
    funnel_rows = [
        {
            "stage": STAGE_NAMES[s],
            "cohort": cohort.get(s, 0),
            "cohort_next": cohort.get(steps[i]) if i < len(steps) else None,
            "flow": flow.get(s, 0),
            "flow_next": flow.get(steps[i]) if i < len(steps) else None,
        }
        for i, s in enumerate(FUNNEL)
    ]
    speed = _one(reports.speed)
    buckets = [r.flat() for r in reports.distribution.rows]
    delay_parts = [
        ("system", [speed.get("system_median_minutes"), speed.get("system_p90_minutes")]),
        ("rep", [speed.get("rep_median_minutes"), speed.get("rep_p90_minutes")]),
    ]
    weeks = [r.flat() for r in reports.sla.rows]
    rejected = [r.flat() for r in reports.rejections.rows]
    credit = [r.flat() for r in reports.credit.rows]
    cost = [r.flat() for r in reports.cost.rows]
    gap = reports.cost.gap
    return {
        "funnel_rows": funnel_rows,
        "cohort_total": cohort,
        "flow_total": flow,
        "cohort_chart": _svg(
            charts.funnel_chart(
                "Funnel, cohort: leads created in the period and the stages they reached",
                stages,
                conversions=[cohort.get(k) for k in steps],
                uid="funnel-cohort",
            )
        ),
        "flow_chart": _svg(
            charts.funnel_chart(
                "Funnel, flow: leads that moved into each stage during the period",
                [(STAGE_NAMES[s], flow.get(s, 0)) for s in FUNNEL],
                conversions=[flow.get(k) for k in steps],
                uid="funnel-flow",
            )
        ),
        "speed": speed,
        "buckets": buckets,
        "speed_chart": _svg(
            charts.histogram(
                "Speed to lead: MQLs by time to first touch",
                [(b["label"], b["handoffs"]) for b in buckets],
                uid="speed-histogram",
            )
        ),
        "delay_chart": _svg(
            charts.stacked_bar_chart(
                "Speed to lead split: system delay then rep delay, in minutes",
                ["median", "p90"],
                delay_parts,
                fmt=_minutes,
                uid="speed-split",
            )
        ),
        "weeks": weeks,
        "sla_chart": _svg(
            charts.column_chart(
                "SLA compliance by week: share accepted and touched in time",
                [w["group"][5:] for w in weeks],
                [
                    ("accepted in SLA", [w["accepted_in_sla_share"] for w in weeks]),
                    ("touched in SLA", [w["touched_in_sla_share"] for w in weeks]),
                ],
                fmt=charts.percent,
                max_value=1.0,
                uid="sla-weekly",
            )
        ),
        "rejected": rejected,
        "recycled": reports.rejections.recycled.to_json(),
        "rejection_chart": _svg(
            charts.bar_chart(
                "Rejections by reason",
                [f"{r['label'] or r['code']} ({r['outcome'] or '—'})" for r in rejected],
                [("rejected", [r["count"] for r in rejected])],
                uid="rejections",
            )
        ),
        "nurture": [
            *(r.flat() for r in reports.nurture.rows),
            *([reports.nurture.total.flat()] if len(reports.nurture.rows) > 1 else []),
        ],
        "nurture_share": reports.nurture.opportunities.to_json(),
        "credit": credit,
        "credit_chart": _svg(
            charts.bar_chart(
                "Marketing credit: MQLs, credited, accepted and won",
                [_group(r["group"]) for r in credit],
                [
                    ("MQLs", [r["mqls"] for r in credit]),
                    ("credited", [r["credited_mqls"] for r in credit]),
                    ("accepted", [r["accepted"] for r in credit]),
                    ("won", [r["won"] for r in credit]),
                ],
                uid="credit",
            )
        ),
        "cost": cost,
        "currencies": reports.cost.currencies,
        "cost_chart": _svg(
            charts.bar_chart(
                "Cost per stage",
                [_group(r["group"]) for r in cost],
                [
                    ("per lead", [r["cost_per_lead"] for r in cost]),
                    ("per MQL", [r["cost_per_mql"] for r in cost]),
                    ("per SQL", [r["cost_per_sql"] for r in cost]),
                    ("per customer", [r["cost_per_customer"] for r in cost]),
                ],
                uid="cost",
            )
        ),
        "gap": gap.to_json(),
        "gap_chart": _svg(
            charts.bar_chart(
                "The cost of the gap: spend on leads lost between marketing and sales",
                ["rejected", "expired", "dropped"],
                [("spend", [gap.spend_on_rejected, gap.spend_on_expired, gap.spend_on_dropped])],
                uid="cost-gap",
            )
        ),
    }


@router.get("/dashboard", response_class=HTMLResponse)
async def dashboard(
    request: Request,
    user: PageUser,
    first: From = None,
    until: Text = None,
    source: Text = None,
    campaign: Text = None,
    team: Text = None,
    group: Text = None,
) -> HTMLResponse:
    """The dashboard for the period and filters of the GET form."""
    ctx = get_context(request)
    asked = read_form(user, ctx, first, until, source, campaign, team, group)
    reports = await run_in_threadpool(_reports, ctx, user, asked)
    values = {
        "asked": asked,
        "csv_query": asked.query(),
        "period_text": f"{asked.first:%-d %b %Y} – {asked.until:%-d %b %Y}",
        **_sections(reports),
    }
    return render(request, "dashboard/dashboard.html", values)


# --- CSV ---------------------------------------------------------------------------------


def _gap_rows(report: CostReport) -> tuple[list[str], list[list[Any]]]:
    return ["figure", "value"], [[k, v] for k, v in report.gap.to_json().items()]


def _rows(report: Any) -> tuple[list[str], list[list[Any]]]:
    columns = report.columns()
    return columns, [[row.get(c) for c in columns] for row in report.to_json()["rows"]]


CSV: dict[str, tuple[Callable[[Context, PageSession, Asked], Any], Callable[[Any], Any]]] = {
    "funnel-cohort": (
        lambda c, u, a: report_service.funnel(
            c, a.period, actor=u.principal, mode="cohort", filters=a.filters
        ),
        _rows,
    ),
    "funnel-flow": (
        lambda c, u, a: report_service.funnel(
            c, a.period, actor=u.principal, mode="flow", filters=a.filters
        ),
        _rows,
    ),
    "speed-to-lead": (
        lambda c, u, a: report_service.speed_to_lead(
            c, a.period, actor=u.principal, filters=a.filters
        ),
        _rows,
    ),
    "speed-distribution": (
        lambda c, u, a: report_service.speed_distribution(
            c, a.period, actor=u.principal, filters=a.filters
        ),
        _rows,
    ),
    "sla-weekly": (
        lambda c, u, a: report_service.sla_by_week(
            c, a.period, actor=u.principal, filters=a.filters
        ),
        _rows,
    ),
    "rejections": (
        lambda c, u, a: report_service.rejections(
            c, a.period, actor=u.principal, filters=a.filters
        ),
        _rows,
    ),
    "credit": (
        lambda c, u, a: report_service.marketing_credit(
            c, a.period, actor=u.principal, group_by=a.group, filters=a.filters
        ),
        _rows,
    ),
    "cost": (
        lambda c, u, a: report_service.cost(
            c, a.period, actor=u.principal, group_by=a.group, filters=a.cost_filters
        ),
        _rows,
    ),
    "nurture": (
        lambda c, u, a: nurture_report(c, a.period, actor=u.principal),
        _rows,
    ),
    "cost-gap": (
        lambda c, u, a: report_service.cost(
            c, a.period, actor=u.principal, group_by=a.group, filters=a.cost_filters
        ),
        _gap_rows,
    ),
}
"""Each chart's CSV: the report it comes from and how its rows are laid out."""

ASKED_COLUMNS = ("from", "until", "timezone", "source", "campaign", "team")
"""Every CSV row ends with the period and the filters it was asked for, so that a
downloaded file says what it counts."""


def csv_text(ctx: Context, user: PageSession, asked: Asked, name: str) -> str:
    make, layout = CSV[name]
    headers, rows = layout(make(ctx, user, asked))
    tail: Sequence[Any] = (
        asked.first,
        asked.until,
        asked.timezone,
        asked.source,
        asked.campaign,
        asked.team,
    )
    out = io.StringIO()
    write_table(out, [*headers, *ASKED_COLUMNS], ([*row, *tail] for row in rows))
    return out.getvalue()


@router.get("/dashboard/{name}.csv")
async def dashboard_csv(
    request: Request,
    user: PageUser,
    name: str,
    first: From = None,
    until: Text = None,
    source: Text = None,
    campaign: Text = None,
    team: Text = None,
    group: Text = None,
) -> Response:
    """One chart's numbers as CSV, for the dashboard's period and filters."""
    if name not in CSV:
        raise NotFound(f"no dashboard report named {name}")
    ctx = get_context(request)
    asked = read_form(user, ctx, first, until, source, campaign, team, group)
    text = await run_in_threadpool(csv_text, ctx, user, asked, name)
    filename = f"baton-{name}-{asked.first.isoformat()}-{asked.until.isoformat()}.csv"
    return Response(
        text,
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "no-store",
        },
    )
