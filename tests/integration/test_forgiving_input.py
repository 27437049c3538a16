"""Forgiving input, through the services on SQLite and PostgreSQL: an event without a
time happened when it was received; imports read dates in common formats (day first
when told, in the file's zone), date leads from a ``created_at`` column, spend by the
month, and report their progress with totals; the real data sets' dates import."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from baton.domain.access import operator
from baton.domain.activities import ActivityCreate
from baton.domain.clock import ManualClock
from baton.services.activities import ingest_activities, ingest_activity
from baton.services.context import Context
from baton.services.imports import import_activities, import_leads
from baton.services.reports import import_spend, list_spend
from baton.store.tables import activities, leads

MARKETING = operator("marketing")
DATASETS = Path(__file__).parents[3] / "shared" / "datasets"
JUNE = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def created_by_external_id(ctx: Context) -> dict[str, datetime]:
    with ctx.read() as connection:
        rows = connection.execute(select(leads.c.external_id, leads.c.created_at)).all()
    return {r.external_id: r.created_at.replace(tzinfo=UTC) for r in rows}


def events(ctx: Context, kind: str | None = None) -> list[tuple[str, datetime, datetime]]:
    """(type, occurred_at, received_at) of every stored event, oldest first."""
    query = select(activities.c.type, activities.c.occurred_at, activities.c.received_at)
    if kind is not None:
        query = query.where(activities.c.type == kind)
    with ctx.read() as connection:
        rows = connection.execute(query.order_by(activities.c.occurred_at)).all()
    return [(r[0], r[1].replace(tzinfo=UTC), r[2].replace(tzinfo=UTC)) for r in rows]


# --- occurred_at defaults to the time of receipt ------------------------------------------


def test_an_event_without_a_time_happened_when_it_was_received(
    ctx: Context, clock: ManualClock
) -> None:
    clock.set(JUNE)
    event = ActivityCreate.model_validate({"email": "dana@northwind.com", "type": "Page View"})
    ingest_activity(ctx, event, actor=MARKETING)
    clock.advance(minutes=5)
    report = ingest_activities(
        ctx,
        [
            {"email": "dana@northwind.com", "type": "form-submit"},
            {"email": "dana@northwind.com", "type": "EMAIL_OPEN", "occurred_at": None},
        ],
        actor=MARKETING,
    )
    assert (report.stored, report.errors) == (2, [])
    assert events(ctx) == [
        ("page_view", JUNE, JUNE),
        ("form_submit", JUNE + timedelta(minutes=5), JUNE + timedelta(minutes=5)),
        ("email_open", JUNE + timedelta(minutes=5), JUNE + timedelta(minutes=5)),
    ]


def test_a_batch_row_with_a_misspelled_type_names_the_closest_one(ctx: Context) -> None:
    report = ingest_activities(
        ctx, [{"email": "dana@northwind.com", "type": "webinar atended"}], actor=MARKETING
    )
    [error] = report.errors
    assert (error.row, error.field) == (0, "type")
    assert "did you mean 'webinar_attended'?" in error.message


# --- activity imports ---------------------------------------------------------------------

EVENTS = (
    "Email,Event,Timestamp,Event ID\n"
    "dana@northwind.com,Page View,02/03/2026 10:00,e-1\n"
    "dana@northwind.com,webinar-attended,March 4 2026 4:30 PM,e-2\n"
    "dana@northwind.com,Demo Request,1772445600,e-3\n"
)


def test_an_activity_file_reads_common_formats_in_its_zone_and_day_first_flips(
    ctx: Context, clock: ManualClock, tmp_path: Path
) -> None:
    clock.set(JUNE)
    report = import_activities(
        ctx, io.StringIO(EVENTS), actor=MARKETING, naive_timezone="Europe/Berlin"
    )
    assert (report.stored, report.errors) == (3, [])
    assert [(kind, at) for kind, at, _ in events(ctx)] == [
        ("page_view", utc(2026, 2, 3, 9, 0)),  # month first: 3 February, 10:00 in Berlin
        ("demo_request", utc(2026, 3, 2, 10, 0)),  # Unix time carries its zone
        ("webinar_attended", utc(2026, 3, 4, 15, 30)),
    ]

    flipped = EVENTS.replace("e-", "f-")
    report = import_activities(
        ctx, io.StringIO(flipped), actor=MARKETING, naive_timezone="Europe/Berlin", day_first=True
    )
    assert report.stored == 3
    assert utc(2026, 3, 2, 9, 0) in [at for kind, at, _ in events(ctx, "page_view")]


def test_an_activity_row_without_its_time_or_with_an_unreadable_one_is_rejected_by_line(
    ctx: Context, clock: ManualClock
) -> None:
    clock.set(JUNE)
    text = (
        "email,type,occurred_at\n"
        "dana@northwind.com,page_view,\n"
        "dana@northwind.com,page_view,13/03/2026\n"
        "dana@northwind.com,page_veiw,2026-03-02\n"
        "dana@northwind.com,page_view,2026-03-02\n"
    )
    report = import_activities(ctx, io.StringIO(text), actor=MARKETING)
    assert report.stored == 1
    problems = {(e.row, e.field): e.message for e in report.errors}
    assert set(problems) == {(2, "occurred_at"), (3, "occurred_at"), (4, "type")}
    assert "required in a file" in problems[2, "occurred_at"]
    assert "no month 13" in problems[3, "occurred_at"]
    assert "--day-first" in problems[3, "occurred_at"]
    assert "did you mean 'page_view'?" in problems[4, "type"]


def test_an_import_reports_its_progress_with_totals_from_the_start(
    ctx: Context, clock: ManualClock
) -> None:
    clock.set(JUNE)
    calls: list[tuple[str, int, int]] = []
    rows = "".join(f"p{i}@acme.example.com,page_view,2026-03-02\n" for i in range(7))
    text = "email,type,occurred_at\n" + rows + "bad,page_view,2026-03-02\n"
    import_activities(
        ctx, io.StringIO(text), actor=MARKETING, progress=lambda *call: calls.append(call)
    )
    assert calls[0] == ("checking", 0, 8)
    assert [c for c in calls if c[0] == "checking"][-1] == ("checking", 8, 8)
    assert calls[-1] == ("writing", 7, 7)

    calls.clear()
    leads_text = "email\n" + "".join(f"q{i}@acme.example.com\n" for i in range(5))
    import_leads(ctx, io.StringIO(leads_text), actor=MARKETING, progress=lambda *c: calls.append(c))
    assert calls[0] == ("checking", 0, 5)
    assert calls[-1] == ("writing", 5, 5)


# --- lead imports: created_at -------------------------------------------------------------


def test_a_created_at_column_dates_the_lead_and_its_capture(
    ctx: Context, clock: ManualClock
) -> None:
    clock.set(JUNE)
    text = (
        "Lead ID,Email,Created Date\n"
        "L-1,ana@acme.example.com,02/03/2026 14:05\n"
        "L-2,ben@acme.example.com,2026-03-02T14:05:00Z\n"
        "L-3,cy@acme.example.com,\n"
    )
    report = import_leads(
        ctx,
        io.StringIO(text),
        actor=MARKETING,
        column_map={"Lead ID": "external_id"},
        naive_timezone="America/New_York",
        day_first=True,
    )
    assert (report.created, report.errors, report.warnings) == (3, [], [])
    assert created_by_external_id(ctx) == {
        "L-1": utc(2026, 3, 2, 19, 5),  # 14:05 in New York, 2 March (day first)
        "L-2": utc(2026, 3, 2, 14, 5),
        "L-3": JUNE,  # no date: captured now
    }
    assert sorted(at for _, at, _ in events(ctx, "captured")) == [
        utc(2026, 3, 2, 14, 5),
        utc(2026, 3, 2, 19, 5),
        JUNE,
    ]


def test_an_unreadable_created_at_is_left_out_and_reported_by_line_and_column(
    ctx: Context, clock: ManualClock
) -> None:
    clock.set(JUNE)
    text = (
        "external_id,email,created_at\n"
        "L-1,ana@acme.example.com,13/03/2026\n"
        "L-2,ben@acme.example.com,next tuesday\n"
        "L-3,cy@acme.example.com,2027-01-01\n"
        ",not-an-email,2 Mar 2026 14:05 CET\n"
    )
    report = import_leads(ctx, io.StringIO(text), actor=MARKETING)
    assert report.created == 3  # the last row has no usable identity
    warnings = {(w.row, w.field): w.message for w in report.warnings}
    assert "no month 13" in warnings[2, "created_at"]
    assert "not a date" in warnings[3, "created_at"]
    assert "in the future" in warnings[4, "created_at"]
    errors = {(e.row, e.field): e.message for e in report.errors}
    assert "ambiguous" in errors[5, "created_at"]  # reported with the rejected row
    assert set(created_by_external_id(ctx).values()) == {JUNE}


# --- spend -------------------------------------------------------------------------------


def test_spend_reads_months_and_day_first_days(ctx: Context, clock: ManualClock) -> None:
    clock.set(JUNE)
    text = (
        "source,campaign,month,start,end,amount\n"
        "google,brand,March 2026,,,3100\n"
        "google,search,,01/04/2026,15/04/2026,1500\n"
        "linkedin,,2026-02,,,900\n"
        "linkedin,abm,Smarch 2026,,,1\n"
    )
    report = import_spend(ctx, io.StringIO(text), actor=MARKETING, day_first=True)
    assert report.stored == 3
    [error] = report.errors
    assert (error.row, error.field) == (5, "month")
    periods = {
        (e.source, e.campaign): (e.starts_on, e.ends_on) for e in list_spend(ctx, actor=MARKETING)
    }
    assert periods == {
        ("google", "brand"): (date(2026, 3, 1), date(2026, 3, 31)),
        ("google", "search"): (date(2026, 4, 1), date(2026, 4, 15)),
        ("linkedin", None): (date(2026, 2, 1), date(2026, 2, 28)),
    }


# --- the real data sets ------------------------------------------------------------------


MQL_DAY = "first_contact_date"


def head(path: Path, rows: int) -> str:
    """The header and the first ``rows`` rows of a data set's file, as CSV text."""
    with path.open(newline="", encoding="utf-8") as source:
        lines = list(csv.reader(source))[: rows + 1]
    out = io.StringIO()
    csv.writer(out).writerows(lines)
    return out.getvalue()


@pytest.mark.parametrize(
    ("file", "id_column", "date_column"),
    [
        ("olist-marketing-funnel/olist_marketing_qualified_leads_dataset.csv", "mql_id", MQL_DAY),
        ("olist-marketing-funnel/olist_closed_deals_dataset.csv", "mql_id", "won_date"),
        ("maven-crm-sales-opportunities/sales_pipeline.csv", "opportunity_id", "engage_date"),
    ],
)
def test_the_real_data_sets_dates_import_as_written(
    ctx: Context, file: str, id_column: str, date_column: str
) -> None:
    path = DATASETS / file
    if not path.exists():
        pytest.skip(f"{path} is not on this machine")
    text = head(path, 150)
    report = import_leads(
        ctx,
        io.StringIO(text),
        actor=MARKETING,
        column_map={id_column: "external_id", date_column: "created_at"},
        external_system="dataset",
    )
    assert (report.errors, report.warnings) == ([], [])
    rows: list[dict[str, Any]] = list(csv.DictReader(io.StringIO(text)))
    created = created_by_external_id(ctx)
    dated = [r for r in rows if r[date_column]]
    assert dated, "the file's head has dates"
    for row in dated:
        written = row[date_column]
        expected = datetime.fromisoformat(written).replace(tzinfo=UTC)
        assert created[row[id_column]] == expected, written
