"""History from another CRM, on SQLite and PostgreSQL: imported stage changes keep their
timestamps, the funnel and velocity reports over the imported period equal figures
computed by hand from the file, a re-import records nothing twice, and history never
fires live work (no handoff, nothing in the outbox). Times given with a stage change, a
verdict or a capture obey the rules (never in the future, never before the lead existed
or its previous stage change). Files are generated here; the clock starts on Monday
2026-03-02 09:00 UTC.
"""

from __future__ import annotations

import csv
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import func, select

from baton.domain.access import operator
from baton.domain.activities import ActivityCreate
from baton.domain.clock import ManualClock
from baton.domain.errors import NotFound, ValidationFailed
from baton.domain.history import plan_history
from baton.domain.leads import LeadCreate
from baton.domain.lifecycle import Stage
from baton.domain.reports import ReportPeriod
from baton.domain.reps import RepCreate, TeamCreate
from baton.services.activities import ingest_activity
from baton.services.context import Context
from baton.services.contracts import activate_contract, approve_contract, create_contract
from baton.services.handoffs import accept_handoff, list_handoffs, lost_handoff
from baton.services.history import get_mapping, import_history, list_mappings, save_mapping
from baton.services.leads import capture_lead, change_stage
from baton.services.reports import funnel, velocity
from baton.services.reps import create_rep, create_team
from baton.store.tables import activities, handoff_events, handoffs, leads, outbox, transitions

IMPORTER = operator("importer")
EXAMPLE = (Path(__file__).parents[2] / "contracts" / "example.yaml").read_text()


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


CRM_MAPPING = {
    "Lead ID": "external_id",
    "Email": "email",
    "Source": "source",
    "Country": "country",
    "Created": "created_at",
    "MQL Date": "mql_at",
    "SAL Date": "sal_at",
    "SQL Date": "sql_at",
    "Opportunity Date": "opportunity_at",
    "Won Date": "won_at",
    "Closed Date": "closed_at",
    "Amount": "amount",
    "Status": "outcome",
}
HEADERS = list(CRM_MAPPING)

ROWS: list[dict[str, str]] = [
    {
        "Email": "ada@acme.example",
        "Source": "webinar",
        "Created": "2025-01-02 10:00",
        "MQL Date": "2025-01-03 10:00",
        "SAL Date": "2025-01-04 10:00",
        "SQL Date": "2025-01-06 10:00",
        "Opportunity Date": "2025-01-10 10:00",
        "Won Date": "2025-01-20 10:00",
        "Amount": "$12,000.00",
        "Status": "Closed Won",
    },
    {
        "Email": "bo@beta.example",
        "Source": "webinar",
        "Created": "2025-01-05 10:00",
        "MQL Date": "2025-01-05 12:00",
        "SAL Date": "2025-01-07 12:00",
    },
    {
        "Email": "cy@gamma.example",
        "Source": "ads",
        "Created": "2025-01-08 10:00",
        "MQL Date": "2025-01-10 10:00",
        "SAL Date": "2025-01-11 10:00",
        "SQL Date": "2025-01-15 10:00",
        "Closed Date": "2025-01-30 10:00",
        "Status": "Closed Lost",
    },
    {"Email": "di@delta.example", "Source": "ads", "Created": "2025-01-09 10:00"},
    {
        "Email": "ed@eps.example",
        "Source": "ads",
        "Created": "2025-01-12 10:00",
        "MQL Date": "2025-01-20 10:00",
        "Closed Date": "2025-01-25 10:00",
        "Status": "Disqualified",
    },
    {  # February: outside the January cohort; the SAL is implied at the SQL date
        "Email": "fay@phi.example",
        "Source": "ads",
        "Created": "2025-02-10 10:00",
        "MQL Date": "2025-02-11 10:00",
        "SQL Date": "2025-02-14 10:00",
    },
]
"""A CRM's history. January's cohort (five leads): MQL a b c e, SAL a b c, SQL a c,
opportunity a, customer a (12,000), lost c, disqualified e."""


def write_csv(path: Path, rows: list[dict[str, str]], headers: list[str] = HEADERS) -> Path:
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.DictWriter(out, fieldnames=headers)
        writer.writeheader()
        for row in rows:
            writer.writerow({h: row.get(h, "") for h in headers})
    return path


def count(ctx: Context, table: Any, *where: Any) -> int:
    with ctx.read() as connection:
        return int(
            connection.execute(select(func.count()).select_from(table).where(*where)).scalar_one()
        )


def lead_id(ctx: Context, email: str) -> int:
    with ctx.read() as connection:
        return int(
            connection.execute(select(leads.c.id).where(leads.c.email == email)).scalar_one()
        )


def steps(ctx: Context, email: str) -> list[tuple[str, datetime, bool, datetime | None, str]]:
    with ctx.read() as connection:
        return [
            (r.to_stage, r.occurred_at, r.historical, r.recorded_at, r.actor)
            for r in connection.execute(
                select(transitions)
                .where(transitions.c.lead_id == lead_id(ctx, email))
                .order_by(transitions.c.occurred_at, transitions.c.id)
            )
        ]


def crm_import(ctx: Context, tmp_path: Path, *, historical: bool = True, rows: Any = None) -> Any:
    save_mapping(ctx, "crm", CRM_MAPPING, actor=IMPORTER)
    source = write_csv(tmp_path / "crm.csv", ROWS if rows is None else rows)
    return import_history(ctx, source, actor=IMPORTER, mapping="crm", historical=historical)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# --- timestamps ----------------------------------------------------------------------------


def test_imported_stage_changes_keep_their_timestamps(ctx: Context, tmp_path: Path) -> None:
    report = crm_import(ctx, tmp_path)
    assert (report.created, report.rejected) == (6, 0)
    stored = steps(ctx, "ada@acme.example")
    row = ROWS[0]
    assert [(s, when) for s, when, *_ in stored] == [
        ("mql", at(row["MQL Date"])),
        ("sal", at(row["SAL Date"])),
        ("sql", at(row["SQL Date"])),
        ("opportunity", at(row["Opportunity Date"])),
        ("customer", at(row["Won Date"])),
    ]
    # Recorded as history, with when Baton learnt of it and who imported it.
    assert {(h, rec, who) for _, _, h, rec, who in stored} == {(True, ctx.clock.now(), "importer")}
    with ctx.read() as connection:
        lead = connection.execute(select(leads).where(leads.c.email == "ada@acme.example")).one()
        value = connection.execute(
            select(transitions.c.deal_value).where(
                transitions.c.lead_id == lead.id, transitions.c.to_stage == "customer"
            )
        ).scalar_one()
    assert (lead.stage, lead.created_at, lead.stage_changed_at) == (
        "customer",
        at(row["Created"]),
        at(row["Won Date"]),
    )
    assert (lead.mql_at, lead.customer_at, value) == (
        at(row["MQL Date"]),
        at(row["Won Date"]),
        12000.0,
    )
    # A stage the file skips is implied at the next stage's moment, and says so.
    fay = steps(ctx, "fay@phi.example")
    assert [(s, when) for s, when, *_ in fay] == [
        ("mql", at("2025-02-11 10:00")),
        ("sal", at("2025-02-14 10:00")),
        ("sql", at("2025-02-14 10:00")),
    ]
    assert (report.won, report.won_value, report.lost, report.disqualified) == (1, 12000.0, 1, 1)
    assert (report.transitions, report.implied) == (5 + 2 + 4 + 2 + 3, 1)


def _nearest_rank(values: list[float], p: int) -> float:
    ordered = sorted(values)
    return ordered[math.ceil(p / 100 * len(ordered)) - 1]


def test_funnel_and_velocity_over_the_imported_period_equal_the_hand_computed_figures(
    ctx: Context, tmp_path: Path
) -> None:
    crm_import(ctx, tmp_path)
    january = ReportPeriod(utc(2025, 1, 1), utc(2025, 2, 1))
    # By hand, from the file: the leads created in January and the stages they reached.
    cohort = [r for r in ROWS if r["Created"].startswith("2025-01")]
    reached = {
        "lead": len(cohort),
        "mql": sum(bool(r.get("MQL Date")) for r in cohort),
        "sal": sum(bool(r.get("SAL Date")) for r in cohort),
        "sql": sum(bool(r.get("SQL Date")) for r in cohort),
        "opportunity": sum(bool(r.get("Opportunity Date")) for r in cohort),
        "customer": sum(r.get("Status") == "Closed Won" for r in cohort),
        "lost": sum(r.get("Status") == "Closed Lost" for r in cohort),
        "disqualified": sum(r.get("Status") == "Disqualified" for r in cohort),
        "nurture": 0,
    }
    assert reached == {
        "lead": 5,
        "mql": 4,
        "sal": 3,
        "sql": 2,
        "opportunity": 1,
        "customer": 1,
        "lost": 1,
        "disqualified": 1,
        "nurture": 0,
    }
    (row,) = funnel(ctx, january, actor=IMPORTER).rows
    assert row.counts == reached
    by_source = {
        r.group: r.counts for r in funnel(ctx, january, actor=IMPORTER, group_by="source").rows
    }
    assert by_source["webinar"]["mql"] == 2 and by_source["ads"]["mql"] == 2
    assert by_source["webinar"]["customer"] == 1 and by_source["ads"]["lead"] == 3

    columns = ["Created", "MQL Date", "SAL Date", "SQL Date", "Opportunity Date", "Won Date"]
    names = ["lead", "mql", "sal", "sql", "opportunity", "customer"]
    expected: dict[str, tuple[int, float, float]] = {}
    for i in range(5):
        hours = [
            (at(r[columns[i + 1]]) - at(r[columns[i]])).total_seconds() / 3600
            for r in cohort
            if r.get(columns[i]) and r.get(columns[i + 1]) and r.get("MQL Date")
        ]
        expected[names[i]] = (len(hours), _nearest_rank(hours, 50), _nearest_rank(hours, 90))
    assert expected == {
        "lead": (4, 24.0, 192.0),
        "mql": (3, 24.0, 48.0),
        "sal": (2, 48.0, 96.0),
        "sql": (1, 96.0, 96.0),
        "opportunity": (1, 240.0, 240.0),
    }
    got = {
        r.from_stage: (r.leads, r.median_hours, r.p90_hours)
        for r in velocity(ctx, january, actor=IMPORTER).rows
    }
    assert got == expected


def test_a_reimport_records_nothing_twice(ctx: Context, tmp_path: Path) -> None:
    first = crm_import(ctx, tmp_path)
    counts = (count(ctx, leads), count(ctx, transitions), count(ctx, activities))
    again = crm_import(ctx, tmp_path)
    assert (count(ctx, leads), count(ctx, transitions), count(ctx, activities)) == counts
    assert (again.created, again.transitions, again.won) == (0, 0, 0)
    assert again.already_recorded == first.transitions  # every step, implied ones too
    # A later export of the same CRM adds only what is new: bo was qualified since.
    later = [dict(r) for r in ROWS]
    later[1]["SQL Date"] = "2025-03-01 10:00"
    third = crm_import(ctx, tmp_path, rows=later)
    assert third.transitions == 1
    assert steps(ctx, "bo@beta.example")[-1][:2] == ("sql", at("2025-03-01 10:00"))


def test_out_of_order_and_unreadable_history_is_reported_not_lost(
    ctx: Context, tmp_path: Path
) -> None:
    rows = [
        {  # won before its MQL: recorded at the MQL moment, and said so
            "Email": "ola@omega.example",
            "Created": "2025-01-02 10:00",
            "MQL Date": "2025-01-05 10:00",
            "Won Date": "2025-01-03 10:00",
            "Status": "Closed Won",
        },
        {  # an unreadable date: the lead is imported, that step is not
            "Email": "pia@pi.example",
            "Created": "2025-01-02 10:00",
            "MQL Date": "someday",
        },
        {  # in the future
            "Email": "quinn@q.example",
            "Created": "2025-01-02 10:00",
            "MQL Date": "2027-01-01",
        },
        {"Email": "not an email", "Created": "2025-01-02"},
    ]
    report = crm_import(ctx, tmp_path, rows=rows)
    assert (report.created, report.rejected) == (3, 1)
    ola = steps(ctx, "ola@omega.example")
    assert ola[-1][:2] == ("customer", at("2025-01-05 10:00"))
    messages = {(w.row, w.field): w.message for w in report.warnings}
    assert "before the step before it" in messages[(2, "history")]
    assert "not recorded" in messages[(3, "mql_at")]
    assert "future" in messages[(4, "mql_at")]
    assert steps(ctx, "pia@pi.example") == [] and steps(ctx, "quinn@q.example") == []
    assert report.moved == 1


# --- mappings ------------------------------------------------------------------------------


def test_saved_and_built_in_mappings(ctx: Context, tmp_path: Path) -> None:
    names = {m.name: m.built_in for m in list_mappings(ctx, actor=IMPORTER)}
    assert names == {"hubspot": True, "salesforce": True}
    save_mapping(ctx, "crm", CRM_MAPPING, actor=IMPORTER)
    save_mapping(ctx, "crm", {**CRM_MAPPING, "Region": "region"}, actor=IMPORTER)
    assert get_mapping(ctx, "crm", actor=IMPORTER).columns["Region"] == "region"
    with pytest.raises(ValidationFailed, match="not a field"):
        save_mapping(ctx, "bad", {"Became MQL": "mql_date"}, actor=IMPORTER)
    with pytest.raises(NotFound, match="no mapping named"):
        get_mapping(ctx, "nope", actor=IMPORTER)
    with pytest.raises(ValidationFailed):
        save_mapping(ctx, "Has Spaces", CRM_MAPPING, actor=IMPORTER)


def test_a_hubspot_export_imports_with_the_built_in_mapping(ctx: Context, tmp_path: Path) -> None:
    headers = [
        "Record ID",
        "First Name",
        "Last Name",
        "Email",
        "Original Source",
        "Create Date",
        "Lifecycle Stage",
        "Became a Marketing Qualified Lead Date",
        "Became a Sales Qualified Lead Date",
        "Became a Customer Date",
        "Deal Stage",
        "Close Date",
        "Amount",
        "Favourite Colour",
    ]
    rows = [
        {
            "Record ID": "101",
            "First Name": "Ana",
            "Last Name": "Lima",
            "Email": "ana@lima.example",
            "Original Source": "ORGANIC_SEARCH",
            "Create Date": "2025-04-01 09:00",
            "Lifecycle Stage": "customer",
            "Became a Marketing Qualified Lead Date": "2025-04-02 09:00",
            "Became a Sales Qualified Lead Date": "2025-04-09 09:00",
            "Became a Customer Date": "2025-05-01 09:00",
            "Deal Stage": "closedwon",
            "Close Date": "2025-05-01 09:00",
            "Amount": "5000",
            "Favourite Colour": "teal",
        },
        {
            "Record ID": "102",
            "Email": "ben@lima.example",
            "Create Date": "2025-04-03 09:00",
            "Lifecycle Stage": "marketingqualifiedlead",
            "Became a Marketing Qualified Lead Date": "2025-04-04 09:00",
        },
    ]
    path = write_csv(tmp_path / "hubspot.csv", rows, headers)
    report = import_history(
        ctx, path, actor=IMPORTER, mapping="hubspot", historical=True, external_system="hubspot"
    )
    assert (report.created, report.rejected, report.won, report.won_value) == (2, 0, 1, 5000.0)
    assert [s for s, *_ in steps(ctx, "ana@lima.example")] == [
        "mql",
        "sal",
        "sql",
        "opportunity",
        "customer",
    ]
    with ctx.read() as connection:
        ana = connection.execute(select(leads).where(leads.c.email == "ana@lima.example")).one()
    assert (ana.source, ana.external_id, ana.first_name) == ("organic_search", "101", "Ana")
    assert ana.attributes == {"favourite_colour": "teal"}
    assert [s for s, *_ in steps(ctx, "ben@lima.example")] == ["mql"]


def test_plan_history_fills_the_funnel_and_holds_back_what_cannot_be() -> None:
    day = utc(2025, 1, 1)
    plan = plan_history(
        current=Stage.LEAD,
        current_at=day,
        dates={Stage.MQL: day + timedelta(days=1)},
        outcome="lost",
        outcome_at=day + timedelta(days=9),
    )
    assert [(s.stage.value, s.implied) for s in plan.steps] == [
        ("mql", False),
        ("sal", True),
        ("lost", False),
    ]
    blocked = plan_history(
        current=Stage.CUSTOMER,
        current_at=day,
        dates={},
        outcome="lost",
        outcome_at=day + timedelta(days=2),
    )
    assert blocked.steps == [] and "cannot move there" in blocked.held_back[0]


# --- history never fires live work ---------------------------------------------------------


def contract_yaml(threshold: int = 20) -> str:
    return yaml.safe_dump(
        {
            "schema_version": 1,
            "name": "History test",
            "scoring": {
                "fit": [{"name": "US", "when": {"field": "country", "equals": "US"}, "points": 20}],
            },
            "mql": {"threshold": threshold, "hand_raise": ["demo_request"]},
        },
        sort_keys=False,
    )


def activate(ctx: Context, body: str) -> Any:
    version = create_contract(ctx, body, actor=operator("maria")).version
    approve_contract(ctx, version, role="marketing", actor=operator("maria"))
    approve_contract(ctx, version, role="sales", actor=operator("sam"))
    return activate_contract(ctx, version, actor=operator("maria"))


def recent_rows(ctx: Context) -> list[dict[str, str]]:
    """Two US leads whose MQL was yesterday and a month ago."""
    now = ctx.clock.now()

    def text(moment: datetime) -> str:
        return moment.strftime("%Y-%m-%d %H:%M")

    return [
        {
            "Email": "new@us.example",
            "Country": "US",
            "Created": text(now - timedelta(days=2)),
            "MQL Date": text(now - timedelta(days=1)),
        },
        {
            "Email": "old@us.example",
            "Country": "US",
            "Created": text(now - timedelta(days=40)),
            "MQL Date": text(now - timedelta(days=30)),
        },
        {"Email": "plain@us.example", "Country": "US", "Created": text(now - timedelta(days=3))},
    ]


def test_a_historical_import_opens_no_handoff_and_sends_nothing(
    ctx: Context, tmp_path: Path
) -> None:
    activate(ctx, contract_yaml())
    report = crm_import(ctx, tmp_path, rows=recent_rows(ctx))
    assert count(ctx, handoffs) == 0 and count(ctx, outbox) == 0
    # Every one is an MQL now, recorded as history: the two the file says, and the
    # third that qualifies on score under the active contract.
    assert count(ctx, leads, leads.c.stage == "mql") == 3
    assert (report.mql_held_back, report.mql_live) == (3, 0)
    assert count(ctx, transitions, transitions.c.historical.is_(True)) == 3


def test_without_historical_only_a_recent_mql_is_handed_off(ctx: Context, tmp_path: Path) -> None:
    activate(ctx, contract_yaml())
    report = crm_import(ctx, tmp_path, rows=recent_rows(ctx), historical=False)
    # The third lead's last history (its capture, three days ago) is within the window:
    # it qualifies on score now and is handed off live too. The month-old MQL is not.
    handed = {h.lead_id for h in list_handoffs(ctx, actor=IMPORTER)}
    assert handed == {lead_id(ctx, "new@us.example"), lead_id(ctx, "plain@us.example")}
    assert (report.mql_live, report.mql_held_back) == (2, 1)
    assert steps(ctx, "old@us.example")[0][:3] == (
        "mql",
        ctx.clock.now() - timedelta(days=30),
        True,
    )


def test_activating_a_contract_over_old_leads_hands_off_only_the_recent_ones(
    ctx: Context, clock: ManualClock
) -> None:
    now = clock.now()
    for email, days in (("a@us.example", 30), ("b@us.example", 9), ("c@us.example", 1)):
        data = LeadCreate.model_validate({"email": email, "country": "US"})
        capture_lead(ctx, data, actor=IMPORTER, occurred_at=now - timedelta(days=days))
    report = activate(ctx, contract_yaml())
    assert (report.became_mql, report.held_back) == (3, 2)
    [handoff] = list_handoffs(ctx, actor=IMPORTER)
    assert handoff.lead_id == lead_id(ctx, "c@us.example")
    old = steps(ctx, "a@us.example")
    assert old == [("mql", now - timedelta(days=30), True, now, "maria")]
    assert (
        count(ctx, outbox, outbox.c.handoff_id.is_not(None), outbox.c.handoff_id != handoff.id) == 0
    )


def test_an_old_event_makes_an_mql_of_the_past(ctx: Context, clock: ManualClock) -> None:
    activate(ctx, contract_yaml(threshold=50))
    capture_lead(ctx, LeadCreate.model_validate({"email": "z@z.example"}), actor=IMPORTER)
    ten_days_ago = clock.now() - timedelta(days=10)
    event = ActivityCreate.model_validate(
        {"email": "z@z.example", "type": "demo_request", "occurred_at": ten_days_ago}
    )
    ingest_activity(ctx, event, actor=IMPORTER)
    assert count(ctx, handoffs) == 0 and count(ctx, outbox) == 0
    [(stage, when, historical, *_)] = steps(ctx, "z@z.example")
    assert (stage, historical) == ("mql", True) and when >= ten_days_ago


# --- times given with a change -------------------------------------------------------------


def test_a_stage_change_with_its_time_obeys_the_rules(ctx: Context, clock: ManualClock) -> None:
    created = clock.now()
    lead = capture_lead(ctx, LeadCreate.model_validate({"email": "t@t.example"}), actor=IMPORTER)
    clock.advance(timedelta(days=20))
    lid = lead.lead.id
    for when, words in (
        (clock.now() + timedelta(hours=1), "in the future"),
        (created - timedelta(days=1), "before the lead existed"),
    ):
        with pytest.raises(ValidationFailed, match=words) as caught:
            change_stage(ctx, lid, Stage.NURTURE, actor=IMPORTER, reason="x", occurred_at=when)
        assert caught.value.problems[0].loc == "occurred_at"
    step = change_stage(
        ctx,
        lid,
        Stage.NURTURE,
        actor=IMPORTER,
        reason="recycled last week",
        occurred_at=created + timedelta(days=3),
    )
    assert (step.occurred_at, step.historical, step.recorded_at) == (
        created + timedelta(days=3),
        True,
        clock.now(),
    )
    with pytest.raises(ValidationFailed, match="previous stage change"):
        change_stage(
            ctx,
            lid,
            Stage.MQL,
            actor=IMPORTER,
            reason="x",
            occurred_at=created + timedelta(days=2),
        )
    # Without a contract (default window 7 days), an MQL 10 days back opens no handoff.
    change_stage(
        ctx, lid, Stage.MQL, actor=IMPORTER, reason="x", occurred_at=created + timedelta(days=10)
    )
    assert count(ctx, handoffs) == 0


def test_verdicts_recorded_late_carry_their_time(ctx: Context, clock: ManualClock) -> None:
    activate(ctx, EXAMPLE)
    create_team(ctx, TeamCreate(name="na", manager_email="sam@lumen.example"), actor=IMPORTER)
    create_rep(ctx, RepCreate(email="ana@lumen.example", name="Ana", team="na"), actor=IMPORTER)
    data = LeadCreate.model_validate(
        {"email": "dana@northwind.com", "company": "Northwind", "country": "US"}
    )
    lid = capture_lead(ctx, data, actor=IMPORTER).lead.id
    event = ActivityCreate.model_validate(
        {"email": "dana@northwind.com", "type": "demo_request", "occurred_at": clock.now()}
    )
    ingest_activity(ctx, event, actor=IMPORTER)
    [handoff] = list_handoffs(ctx, lead_id=lid, actor=IMPORTER)
    start = clock.now()
    clock.advance(timedelta(hours=5))
    accepted = accept_handoff(
        ctx, handoff.id, actor=IMPORTER, occurred_at=start + timedelta(minutes=20)
    )
    assert accepted.accepted_at == start + timedelta(minutes=20)
    with pytest.raises(ValidationFailed, match="previous stage change"):
        lost_handoff(
            ctx,
            handoff.id,
            reason="budget",
            actor=IMPORTER,
            occurred_at=start + timedelta(minutes=5),
        )
    lost = lost_handoff(
        ctx, handoff.id, reason="budget", actor=IMPORTER, occurred_at=start + timedelta(hours=2)
    )
    assert (lost.status, lost.closed_at) == ("lost", start + timedelta(hours=2))
    assert [(s, w, h) for s, w, h, *_ in steps(ctx, "dana@northwind.com")][-2:] == [
        ("sal", start + timedelta(minutes=20), True),
        ("lost", start + timedelta(hours=2), True),
    ]
    with ctx.read() as connection:
        detail = connection.execute(
            select(handoff_events.c.occurred_at, handoff_events.c.detail).where(
                handoff_events.c.handoff_id == handoff.id, handoff_events.c.kind == "lost"
            )
        ).one()
    assert detail.occurred_at == start + timedelta(hours=2)
    assert detail.detail["historical"] is True


def test_a_capture_with_its_time_is_created_then(ctx: Context, clock: ManualClock) -> None:
    then = clock.now() - timedelta(days=100)
    data = LeadCreate.model_validate({"email": "old@friend.example"})
    result = capture_lead(ctx, data, actor=IMPORTER, occurred_at=then)
    assert result.created and result.lead.created_at == then
    with pytest.raises(ValidationFailed, match="before the lead existed"):
        capture_lead(ctx, data, actor=IMPORTER, occurred_at=then - timedelta(days=1))
    with pytest.raises(ValidationFailed, match="future"):
        capture_lead(ctx, data, actor=IMPORTER, occurred_at=clock.now() + timedelta(days=1))


def test_a_salesforce_export_imports_with_the_built_in_mapping(
    ctx: Context, tmp_path: Path
) -> None:
    headers = [
        "Lead ID",
        "Email",
        "Created Date",
        "Lead Source",
        "Lead Status",
        "Converted Date",
        "Stage",
        "Close Date",
        "Amount",
        "Won",
    ]
    rows = [
        {
            "Lead ID": "00Q1",
            "Email": "won@sf.example",
            "Created Date": "1/15/2025",
            "Lead Source": "Web",
            "Lead Status": "Closed - Converted",
            "Converted Date": "2/1/2025",
            "Stage": "Closed Won",
            "Close Date": "3/1/2025",
            "Amount": "9000",
            "Won": "true",
        },
        {
            "Lead ID": "00Q2",
            "Email": "cold@sf.example",
            "Created Date": "1/16/2025",
            "Lead Status": "Closed - Not Converted",
        },
        {
            "Lead ID": "00Q3",
            "Email": "lost@sf.example",
            "Created Date": "1/17/2025",
            "Lead Status": "Closed - Converted",
            "Converted Date": "2/10/2025",
            "Stage": "Closed Lost",
            "Close Date": "3/5/2025",
            "Won": "false",
        },
    ]
    path = write_csv(tmp_path / "salesforce.csv", rows, headers)
    report = import_history(ctx, path, actor=IMPORTER, mapping="salesforce", historical=True)
    assert (report.created, report.won, report.won_value, report.lost) == (3, 1, 9000.0, 1)
    won = steps(ctx, "won@sf.example")
    assert [(s, w) for s, w, *_ in won] == [
        ("mql", at("2025-02-01 00:00")),
        ("sal", at("2025-02-01 00:00")),
        ("sql", at("2025-02-01 00:00")),
        ("opportunity", at("2025-03-01 00:00")),
        ("customer", at("2025-03-01 00:00")),
    ]
    assert [s for s, *_ in steps(ctx, "lost@sf.example")] == ["mql", "sal", "sql", "lost"]
    # A disqualified lead without a date for it: imported, its outcome reported.
    assert steps(ctx, "cold@sf.example") == []
    assert any(w.field == "outcome" and w.row == 3 for w in report.warnings)
    with ctx.read() as connection:
        system = connection.execute(
            select(leads.c.external_system).where(leads.c.external_id == "00Q1")
        ).scalar_one()
    assert system == "salesforce"
