"""/api/v1/reports and /api/v1/spend: the handoff reports, and the spend they divide.

Every report takes the period as local dates (``from`` included, ``to`` excluded) in a
time zone (``tz``, default UTC), an optional ``group_by`` and filters, and answers the
report's ``to_json()``: the period and zone it covers, and flat rows ready for a chart.

Every route needs credentials; reports are for admins, marketing and sales managers,
spend imports for marketing and admins (decided by :mod:`baton.services.reports`).
"""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from starlette.concurrency import run_in_threadpool

from baton.api.deps import Actor, Authenticated, Ctx
from baton.api.schemas import SpendImportPublic, SpendPublic, SpendRowErrorPublic
from baton.domain.activities import MAX_ID
from baton.domain.errors import FieldProblem, ValidationFailed
from baton.domain.moments import Day
from baton.domain.reports import (
    GROUP_BY,
    GROUP_BY_PATTERN,
    FunnelMode,
    ReportFilters,
    ReportPeriod,
    check_group_by,
    zone,
)
from baton.domain.reps import TimeZone
from baton.services import reports as report_service
from baton.services.nurture_reports import nurture_report

router = APIRouter(prefix="/api/v1", tags=["reports"], dependencies=[Authenticated])

BAD_INPUT: dict[int | str, dict[str, Any]] = {
    422: {"description": "Unknown zone, `to` not after `from`, or an unknown group_by"}
}
MAX_SPEND_FILE = 10 * 1024 * 1024


@dataclass(frozen=True)
class ReportQuery:
    period: ReportPeriod
    group_by: str | None
    filters: ReportFilters


def _invalid(loc: str, message: str) -> ValidationFailed:
    return ValidationFailed(message, [FieldProblem(loc, message)])


FromDay = Annotated[
    Day, Query(alias="from", description="First day of the period (in `tz`), YYYY-MM-DD")
]
ToDay = Annotated[
    Day,
    Query(description="Day after the last day (exclusive, so after `from`), YYYY-MM-DD"),
]
Zone = Annotated[TimeZone, Query(description="IANA zone the days are in, e.g. Europe/Paris")]


def report_query(
    from_: FromDay,
    to: ToDay,
    tz: Zone = "UTC",
    group_by: Annotated[
        str | None,
        Query(
            max_length=120,
            pattern=GROUP_BY_PATTERN,
            description="One of: "
            + ", ".join(GROUP_BY)
            + "; or attributes.NAME, any lead attribute (a name no lead has: one group, null)",
            examples=["source", "grade", "attributes.landing_page"],
        ),
    ] = None,
    source: Annotated[str | None, Query(max_length=200)] = None,
    campaign: Annotated[str | None, Query(max_length=200)] = None,
    team: Annotated[str | None, Query(max_length=100, description="Team of the rep")] = None,
    rep: Annotated[str | None, Query(max_length=254, description="The rep's email")] = None,
    country: Annotated[str | None, Query(max_length=2)] = None,
    contract_version: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
) -> ReportQuery:
    try:
        zone(tz)
    except ValueError as exc:
        raise _invalid("tz", str(exc)) from None
    try:
        period = ReportPeriod.from_dates(from_, to, tz)
    except ValueError as exc:
        raise _invalid("to", str(exc)) from None
    try:
        check_group_by(group_by)
    except ValueError as exc:
        raise _invalid("group_by", str(exc)) from None
    filters = ReportFilters(
        source=source,
        campaign=campaign,
        team=team,
        rep=rep,
        country=country,
        contract_version=contract_version,
    )
    return ReportQuery(period, group_by, filters)


Report = Annotated[ReportQuery, Depends(report_query)]


CostGroupBy = Literal["source", "campaign"]


def cost_query(
    from_: FromDay,
    to: ToDay,
    tz: Zone = "UTC",
    group_by: Annotated[
        CostGroupBy | None, Query(description="source (default) or campaign")
    ] = None,
    source: Annotated[str | None, Query(max_length=200)] = None,
    campaign: Annotated[str | None, Query(max_length=200)] = None,
) -> ReportQuery:
    """The cost report's query: spend is recorded per source and campaign, so only
    those group and filter it."""
    return report_query(from_, to, tz, group_by, source=source, campaign=campaign)


CostReport = Annotated[ReportQuery, Depends(cost_query)]


@router.get("/reports/funnel", operation_id="report_funnel", responses=BAD_INPUT)
def funnel(
    ctx: Ctx,
    actor: Actor,
    q: Report,
    mode: Annotated[FunnelMode, Query(description="cohort (default) or flow")] = "cohort",
) -> dict[str, Any]:
    """Leads per stage: ``cohort`` counts the leads created in the period that ever
    reached each stage; ``flow`` the distinct leads that moved into each stage in the
    period. With conversion from each stage to the next."""
    return report_service.funnel(
        ctx, q.period, actor=actor, mode=mode, group_by=q.group_by, filters=q.filters
    ).to_json()


@router.get("/reports/velocity", operation_id="report_velocity", responses=BAD_INPUT)
def velocity(ctx: Ctx, actor: Actor, q: Report) -> dict[str, Any]:
    """Median and 90th-percentile hours between consecutive stages, for the leads
    created in the period. A step dated backwards (the later stage before the earlier
    one, in a history loaded around Baton) is counted in ``leads`` and
    ``negative_durations``, left out of the percentiles, and summed up in
    ``data_quality`` (with a sentence to show when there are any)."""
    return report_service.velocity(
        ctx, q.period, actor=actor, group_by=q.group_by, filters=q.filters
    ).to_json()


@router.get("/reports/speed-to-lead", operation_id="report_speed_to_lead", responses=BAD_INPUT)
def speed_to_lead(ctx: Ctx, actor: Actor, q: Report) -> dict[str, Any]:
    """MQL → first touch per MQL (chain of handoffs) of the period: median, p90, shares
    within 5 minutes, 1 hour and 24 hours, split into system and rep delay, and in the
    rep's business minutes."""
    return report_service.speed_to_lead(
        ctx, q.period, actor=actor, group_by=q.group_by, filters=q.filters
    ).to_json()


@router.get("/reports/sla", operation_id="report_sla", responses=BAD_INPUT)
def sla(ctx: Ctx, actor: Actor, q: Report) -> dict[str, Any]:
    """Handoffs assigned in the period: accepted and touched in SLA, late, or not; and
    the reminders, reassignments and manager notifications they took."""
    return report_service.sla_compliance(
        ctx, q.period, actor=actor, group_by=q.group_by, filters=q.filters
    ).to_json()


@router.get("/reports/sla-weekly", operation_id="report_sla_weekly", responses=BAD_INPUT)
def sla_weekly(ctx: Ctx, actor: Actor, q: Report) -> dict[str, Any]:
    """The SLA report week by week (weeks start on Monday in ``tz``; the first and the
    last may be partial): one row per week, its ``group`` the week's first day in the
    period, weeks without handoffs included with zeros. ``group_by`` is not taken. A
    period covers at most 262 weeks (about five years); a longer one is a 422."""
    if q.group_by is not None:
        raise _invalid("group_by", "the weekly SLA report is grouped by week")
    return report_service.sla_by_week(ctx, q.period, actor=actor, filters=q.filters).to_json()


@router.get(
    "/reports/speed-distribution", operation_id="report_speed_distribution", responses=BAD_INPUT
)
def speed_distribution(ctx: Ctx, actor: Actor, q: Report) -> dict[str, Any]:
    """The MQLs of the period (chains of handoffs) by how soon a rep first touched
    them: within 5 minutes, 5-60 minutes, 1-24 hours, later, or not yet; each bucket
    with its count and share of the group's chains."""
    return report_service.speed_distribution(
        ctx, q.period, actor=actor, group_by=q.group_by, filters=q.filters
    ).to_json()


@router.get("/reports/rejections", operation_id="report_rejections", responses=BAD_INPUT)
def rejections(ctx: Ctx, actor: Actor, q: Report) -> dict[str, Any]:
    """Rejections closed in the period by reason (label, outcome, credit, share), and
    what became of the leads recycled to nurture."""
    return report_service.rejections(
        ctx, q.period, actor=actor, group_by=q.group_by, filters=q.filters
    ).to_json()


@router.get("/reports/credit", operation_id="report_credit", responses=BAD_INPUT)
def credit(ctx: Ctx, actor: Actor, q: Report) -> dict[str, Any]:
    """MQLs of the period, those rejected without credit for marketing, and how many
    of the credited ones sales accepted and won, by a verdict or by hand
    (grouped by source unless ``group_by`` says otherwise); ``won_without_handoff``:
    customers with no chain of their own (a merged-in duplicate's win), so every
    customer is counted once."""
    return report_service.marketing_credit(
        ctx, q.period, actor=actor, group_by=q.group_by or "source", filters=q.filters
    ).to_json()


@router.get("/reports/cost", operation_id="report_cost", responses=BAD_INPUT)
def cost(ctx: Ctx, actor: Actor, q: CostReport) -> dict[str, Any]:
    """Spend (prorated to the period) per source or campaign against the leads created
    in the period, cost per lead, MQL, SAL, SQL and customer, and the cost of the gap
    between marketing and sales."""
    return report_service.cost(
        ctx, q.period, actor=actor, group_by=q.group_by or "source", filters=q.filters
    ).to_json()


@router.get(
    "/reports/nurture",
    operation_id="report_nurture",
    responses={
        **BAD_INPUT,
        200: {
            "description": "Per sequence, and the share of opportunities through nurture",
            "content": {
                "application/json": {
                    "example": {
                        "report": "nurture",
                        "period": {
                            "from": "2026-03-01",
                            "to": "2026-04-01",
                            "timezone": "UTC",
                            "start": "2026-03-01T00:00:00+00:00",
                            "end": "2026-04-01T00:00:00+00:00",
                        },
                        "timezone": "UTC",
                        "group_by": "sequence",
                        "filters": {},
                        "sequence": None,
                        "rows": [
                            {
                                "sequence": "not-ready",
                                "enrolled": 120,
                                "sent": 310,
                                "opened": 140,
                                "clicked": 31,
                                "unsubscribed": 4,
                                "hard_bounced": 2,
                                "returned_to_sales": 9,
                                "opportunities": 3,
                                "open_rate": 0.4516,
                                "click_rate": 0.1,
                                "unsubscribe_rate": 0.0129,
                            }
                        ],
                        "total": {"sequence": "(all)", "enrolled": 120, "sent": 310},
                        "opportunities": {
                            "opportunities": 18,
                            "through_nurture": 3,
                            "other": 15,
                            "share": 0.1667,
                            "uplift": 0.2,
                        },
                    }
                }
            },
        },
    },
)
def nurture(
    ctx: Ctx,
    actor: Actor,
    from_: FromDay,
    to: ToDay,
    tz: Zone = "UTC",
    sequence: Annotated[
        str | None, Query(max_length=100, description="Only this sequence", examples=["not-ready"])
    ] = None,
) -> dict[str, Any]:
    """Per nurture sequence, what happened in the period: enrollments started, emails
    sent (accepted by the SMTP server), unique opens and clicks (per step),
    unsubscribes, hard bounces, leads returned to sales (MQL again, or taken back) and
    opportunities from recycled leads; with the total, and of all the leads that
    became opportunities in the period, how many had been through nurture (``share``)
    and the uplift over the others (``uplift``: 0.2 is "+20% opportunities")."""
    q = report_query(from_, to, tz)
    return nurture_report(ctx, q.period, actor=actor, sequence=sequence).to_json()


@router.get("/spend", operation_id="list_spend", response_model=list[SpendPublic])
def list_spend(
    ctx: Ctx, actor: Actor, source: Annotated[str | None, Query(max_length=200)] = None
) -> list[SpendPublic]:
    """Spend as the cost report counts it: imported rows, and the active contract's
    ``costs`` entries that no import overrides."""
    return [
        SpendPublic.model_validate(asdict(e))
        for e in report_service.list_spend(ctx, actor=actor, source=source)
    ]


@router.post(
    "/spend/import",
    operation_id="import_spend",
    response_model=SpendImportPublic,
    responses={422: {"description": "The file cannot be read as a whole"}},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "text/csv": {
                    "schema": {"type": "string"},
                    "example": "source,campaign,start,end,amount,currency\n"
                    "google_ads,q1-brand,2026-01-01,2026-03-31,12000,EUR\n",
                }
            },
        }
    },
)
async def import_spend(
    request: Request,
    ctx: Ctx,
    actor: Actor,
    day_first: Annotated[
        bool,
        Query(description="Read 02/03/2026 as 2 March (day first), not as February 3."),
    ] = False,
) -> SpendImportPublic:
    """Upload a spend CSV (``source,campaign,start,end,amount[,currency]``, ``end``
    included; or ``month`` instead of ``start`` and ``end``) as the request body. Days
    may be written ``2026-03-02``, ``03/02/2026`` (``day_first`` for ``02/03/2026``),
    ``2 Mar 2026``...; a month (``2026-03``, ``March 2026``) is the whole month. Bad
    rows are reported with their line numbers and the good ones stored, in one
    transaction; a row for a source, campaign and days already stored replaces its
    amount."""
    body = await request.body()
    if len(body) > MAX_SPEND_FILE:
        raise _invalid("(file)", "a spend file is limited to 10 MiB")
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise _invalid("(file)", "the file is not UTF-8 text") from None
    report = await run_in_threadpool(
        report_service.import_spend, ctx, io.StringIO(text), actor=actor, day_first=day_first
    )
    return SpendImportPublic(
        rows=report.rows,
        stored=report.stored,
        replaced=report.replaced,
        rejected_rows=report.rejected,
        errors=[
            SpendRowErrorPublic(line=e.row, field=e.field, message=e.message) for e in report.errors
        ],
    )
