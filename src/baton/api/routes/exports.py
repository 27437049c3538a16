"""/api/v1/exports: leads, handoffs, activities and verdicts as CSV (or JSON lines), streamed.

Every download goes through :mod:`baton.services.exports`: cells a spreadsheet would
run as formulas are neutralised, only what the caller may read is listed (a rep's own
handoffs and their leads), and the rows stream page by page, so a large export never
sits in memory. The filters are checked before the first byte: a misspelt one is a 422
that lists the allowed values, never an empty file; a lead out of reach is a 404.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from baton.api.deps import Actor, Authenticated, Ctx
from baton.domain.activities import MAX_ID, ActivityType
from baton.domain.exports import HandoffStatus, Verdict
from baton.domain.lifecycle import Stage
from baton.domain.moments import DAY, INSTANT_PATTERN
from baton.services.exports import (
    Export,
    activity_export,
    handoff_export,
    lead_export,
    verdict_export,
)

router = APIRouter(prefix="/api/v1/exports", tags=["exports"], dependencies=[Authenticated])

MEDIA = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson"}
BOUND = f"^{DAY}$|{INSTANT_PATTERN}"
"""A day (YYYY-MM-DD) or a time with its zone, 1970 to 2200."""

Format = Annotated[
    Literal["csv", "jsonl"],
    Query(
        alias="format",
        description="csv (safe to open in a spreadsheet) or jsonl (one JSON object a line)",
    ),
]
Since = Annotated[
    str | None,
    Query(
        pattern=BOUND,
        description="From this day (UTC, included) or time with its zone",
        examples=["2026-03-01"],
    ),
]
Until = Annotated[
    str | None,
    Query(
        pattern=BOUND,
        description="To this day (UTC, included) or up to this time (excluded); after `since`",
        examples=["2026-03-31"],
    ),
]
LeadRef = Annotated[int | None, Query(ge=1, le=MAX_ID, description="Only this lead's")]


def _download(example: str, what: str, jsonl: dict[str, Any]) -> dict[int | str, dict[str, Any]]:
    """The documented answers of a download: the file in both formats, with examples."""
    return {
        200: {
            "description": f"{what}, streamed, with a Content-Disposition file name",
            "content": {
                "text/csv": {"schema": {"type": "string"}, "example": example},
                "application/x-ndjson": {
                    "schema": {"type": "string"},
                    "example": json.dumps(jsonl) + "\n",
                },
            },
            "headers": {
                "Content-Disposition": {
                    "description": 'attachment; filename="baton-<kind>-<UTC time>.<format>"',
                    "schema": {"type": "string"},
                }
            },
        },
        404: {"description": "The lead named by lead_id does not exist or is out of reach"},
        422: {"description": "A filter is not valid; every bad one with the allowed values"},
    }


def _stream(export: Export, fmt: str) -> StreamingResponse:
    return StreamingResponse(
        export.chunks(fmt),
        media_type=MEDIA[fmt],
        headers={"Content-Disposition": f'attachment; filename="{export.filename(fmt)}"'},
    )


LEAD_CSV = (
    "id,email,phone,first_name,last_name,company,...,stage,...,score,grade,fit,engagement,"
    "tags,owner_rep_name,owner_rep_email,attributes\r\n"
    "40,dana@northwind.example.com,+14155550134,Dana,Reyes,Northwind,...,mql,...,"
    '72.5,A,40.0,32.5,webinar; hot,Ana Ruiz,ana@lumen.example,"{""plan"": ""pro""}"\r\n'
)


@router.get(
    "/leads",
    operation_id="export_leads",
    response_class=StreamingResponse,
    responses=_download(
        LEAD_CSV,
        "The leads",
        {"id": 40, "email": "dana@northwind.example.com", "stage": "mql", "score": 72.5},
    ),
)
def export_leads(
    ctx: Ctx,
    actor: Actor,
    fmt: Format = "csv",
    stage: Annotated[list[Stage] | None, Query(description="Only these stages (repeat)")] = None,
    source: Annotated[str | None, Query(max_length=200)] = None,
    owner: Annotated[
        str | None,
        Query(max_length=254, description="Only leads whose latest handoff is this rep's (email)"),
    ] = None,
    tag: Annotated[str | None, Query(max_length=100)] = None,
    grade: Annotated[
        list[Literal["A", "B", "C", "D"]] | None, Query(description="Only these grades (repeat)")
    ] = None,
    since: Since = None,
    until: Until = None,
    q: Annotated[
        str | None,
        Query(max_length=200, description="Search words, as on the lead list (word prefixes)"),
    ] = None,
    columns: Annotated[
        Literal["baton", "salesforce", "hubspot"],
        Query(
            description="baton (default), or the columns of a CRM's import template: "
            "salesforce (Lead: FirstName, LastName, Email, Company, ..., LeadSource, Status) "
            "or hubspot (contact: First Name, ..., Lifecycle Stage)"
        ),
    ] = "baton",
) -> StreamingResponse:
    """Every lead you may read (merged ones left out) matching the filters, with its
    score, grade, tags and owner rep (the rep of its latest handoff). ``since`` and
    ``until`` bound when each lead was created. Text cells a spreadsheet would run as
    a formula start with an apostrophe (``'=HYPERLINK(...)``); ``baton import leads``
    reads the file back without it. ``columns=salesforce`` or ``hubspot`` names the
    columns as that CRM's import template does (stage as its Lead Status or Lifecycle
    Stage), to load the leads back into it."""
    export = lead_export(
        ctx,
        actor=actor,
        filters={
            "stage": stage,
            "source": source,
            "owner": owner,
            "tag": tag,
            "grade": grade,
            "since": since,
            "until": until,
            "q": q,
        },
        columns=columns,
    )
    return _stream(export, fmt)


HANDOFF_CSV = (
    "id,lead_id,lead_email,lead_name,lead_company,rep_name,rep_email,status,outcome,"
    "reason_code,reason,marketing_credit,mql_at,opened_at,...\r\n"
    "12,40,dana@northwind.example.com,Dana Reyes,Northwind,Ana Ruiz,ana@lumen.example,"
    "rejected,recycle,no_budget,next quarter,true,2026-03-02T09:00:00+00:00,"
    "2026-03-02T09:00:00+00:00,...\r\n"
)


@router.get(
    "/handoffs",
    operation_id="export_handoffs",
    response_class=StreamingResponse,
    responses=_download(
        HANDOFF_CSV, "The handoffs", {"id": 12, "lead_id": 40, "status": "rejected"}
    ),
)
def export_handoffs(
    ctx: Ctx,
    actor: Actor,
    fmt: Format = "csv",
    status: Annotated[
        list[HandoffStatus] | None, Query(description="Only these statuses (repeat)")
    ] = None,
    rep: Annotated[str | None, Query(max_length=254, description="Only this rep's (email)")] = None,
    lead_id: LeadRef = None,
    since: Since = None,
    until: Until = None,
) -> StreamingResponse:
    """Every handoff you may read (a rep their own, a manager their team's and the
    queue) matching the filters: lead, rep, status, sales' verdict (``outcome``,
    ``reason_code``, and the words given as ``reason``) and its moments. ``since`` and
    ``until`` bound when each handoff was opened."""
    export = handoff_export(
        ctx,
        actor=actor,
        filters={
            "status": status,
            "rep": rep,
            "lead_id": lead_id,
            "since": since,
            "until": until,
        },
    )
    return _stream(export, fmt)


ACTIVITY_CSV = (
    "id,lead_id,lead_email,type,occurred_at,received_at,recorded_by,idempotency_key,"
    "properties\r\n"
    "7,40,dana@northwind.example.com,page_view,2026-03-02T08:55:00+00:00,"
    '2026-03-02T08:55:01+00:00,web,web-evt-7f3a9c,"{""url"": ""/pricing""}"\r\n'
)


@router.get(
    "/activities",
    operation_id="export_activities",
    response_class=StreamingResponse,
    responses=_download(
        ACTIVITY_CSV, "The activities", {"id": 7, "lead_id": 40, "type": "page_view"}
    ),
)
def export_activities(
    ctx: Ctx,
    actor: Actor,
    fmt: Format = "csv",
    type_: Annotated[
        list[ActivityType] | None, Query(alias="type", description="Only these types (repeat)")
    ] = None,
    lead_id: LeadRef = None,
    since: Since = None,
    until: Until = None,
) -> StreamingResponse:
    """The activities of every lead you may read, matching the filters, with their
    properties as JSON text. ``since`` and ``until`` bound when each happened."""
    export = activity_export(
        ctx,
        actor=actor,
        filters={"type": type_, "lead_id": lead_id, "since": since, "until": until},
    )
    return _stream(export, fmt)


VERDICT_CSV = (
    "id,handoff_id,lead_id,lead_email,lead_external_system,lead_external_id,verdict,"
    "reason_code,reason,outcome,marketing_credit,deal_value,by,rep_email,occurred_at,"
    "contract_version\r\n"
    "31,12,40,dana@northwind.example.com,salesforce,00Q5e00000AbCdE,rejected,no_budget,"
    "next quarter,disqualify,false,,ana@lumen.example,ana@lumen.example,"
    "2026-03-02T09:20:00+00:00,3\r\n"
)


@router.get(
    "/verdicts",
    operation_id="export_verdicts",
    response_class=StreamingResponse,
    responses=_download(
        VERDICT_CSV,
        "The verdicts",
        {"id": 31, "handoff_id": 12, "verdict": "rejected", "reason_code": "no_budget"},
    ),
)
def export_verdicts(
    ctx: Ctx,
    actor: Actor,
    fmt: Format = "csv",
    verdict: Annotated[
        list[Verdict] | None, Query(description="Only these verdicts (repeat)")
    ] = None,
    rep: Annotated[str | None, Query(max_length=254, description="Only this rep's (email)")] = None,
    lead_id: LeadRef = None,
    since: Since = None,
    until: Until = None,
) -> StreamingResponse:
    """Sales' verdicts on every handoff you may read: each accept, reject (with its
    reason code and words), qualify, win (with the deal value) and loss, who gave it
    and when, with the lead's email and its id in another system, for loading back
    into a CRM. ``since`` and ``until`` bound when each verdict was given."""
    export = verdict_export(
        ctx,
        actor=actor,
        filters={
            "verdict": verdict,
            "rep": rep,
            "lead_id": lead_id,
            "since": since,
            "until": until,
        },
    )
    return _stream(export, fmt)
