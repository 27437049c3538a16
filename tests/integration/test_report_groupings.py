"""Reports grouped by any lead attribute and by grade (issue 14, item 5), on SQLite and
PostgreSQL, against figures computed by hand; over the API and the CLI's checks.

Five leads captured on 2026-03-02 under the example contract (fit: decision-maker
title 20, analyst 8, target country 10, 50-5,000 employees 15; grades A >= 40,
B >= 25, C >= 10, D below):

=====  ==============  =======  ===========================  ====  =====  ====
lead   landing_page    segment  fit                          grade  demo?  MQL
=====  ==============  =======  ===========================  ====  =====  ====
L1     /pricing        smb      VP 20 + US 10 = 30           B     yes    yes
L2     /pricing        mid      analyst 8 + US 10 = 18       C     no     no
L3     /blog           smb      BR: 0                        D     yes    yes
L4     (none)          (none)   director 20 + US 10 + 15     A     no     no
L5     (none)          7 (int)  DE 10                        C     no     no
=====  ==============  =======  ===========================  ====  =====  ====
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest

from baton.domain.access import operator
from baton.domain.activities import ActivityCreate
from baton.domain.leads import LeadCreate
from baton.domain.reports import ReportPeriod, check_group_by
from baton.domain.reps import RepCreate, TeamCreate
from baton.services import contracts as contract_service
from baton.services import reps as rep_service
from baton.services.activities import ingest_activity
from baton.services.context import Context
from baton.services.leads import capture_lead
from baton.services.reports import ReportInputError, funnel, speed_to_lead

EXAMPLE = (Path(__file__).parents[2] / "contracts" / "example.yaml").read_text()
OP = operator("test")
ALWAYS = {d: ["00:00-24:00"] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
MARCH = ReportPeriod.from_dates(date(2026, 3, 1), date(2026, 4, 1))
PRICING = "/pricing"
PEOPLE: list[tuple[dict[str, Any], bool]] = [
    ({"title": "VP Ops", "country": "US",
      "attributes": {"landing_page": PRICING, "segment": "smb"}}, True),
    ({"title": "Data Analyst", "country": "US",
      "attributes": {"landing_page": PRICING, "segment": "mid"}}, False),
    ({"country": "BR", "attributes": {"landing_page": "/blog", "segment": "smb"}}, True),
    ({"title": "Director", "country": "US", "attributes": {"employees": 100}}, False),
    ({"country": "DE", "attributes": {"segment": 7}}, False),
]  # fmt: skip


@pytest.fixture
def floor(ctx: Context) -> Context:
    version = contract_service.create_contract(ctx, EXAMPLE, actor=OP).version
    contract_service.approve_contract(ctx, version, role="marketing", actor=operator("maria"))
    contract_service.approve_contract(ctx, version, role="sales", actor=operator("sam"))
    contract_service.activate_contract(ctx, version, actor=OP)
    rep_service.create_team(ctx, TeamCreate(name="na"), actor=OP)
    for team in ("emea", "enterprise"):
        rep_service.create_team(ctx, TeamCreate(name=team), actor=OP)
    for team in ("na", "emea", "enterprise"):
        rep_service.create_rep(
            ctx,
            RepCreate(email=f"{team}@lumen.example", name=team, team=team, working_hours=ALWAYS),
            actor=OP,
        )
    for number, (fields, demo) in enumerate(PEOPLE, start=1):
        email = f"l{number}@company{number}.example.com"
        capture_lead(ctx, LeadCreate(email=email, company=f"Company {number}", **fields), actor=OP)
        if demo:
            ingest_activity(ctx, ActivityCreate(email=email, type="demo_request"), actor=OP)
    return ctx


def rows(report: Any) -> dict[Any, tuple[int, int]]:
    return {r.group: (r.counts["lead"], r.counts["mql"]) for r in report.rows}


def test_funnel_by_attribute_and_by_grade(floor: Context) -> None:
    by_page = funnel(floor, MARCH, actor=OP, group_by="attributes.landing_page")
    assert [r.group for r in by_page.rows] == ["/blog", "/pricing", None]
    assert rows(by_page) == {"/blog": (1, 1), "/pricing": (2, 1), None: (2, 0)}
    by_segment = funnel(floor, MARCH, actor=OP, group_by="attributes.segment")
    assert rows(by_segment) == {"7": (1, 0), "mid": (1, 0), "smb": (2, 2), None: (1, 0)}
    by_grade = funnel(floor, MARCH, actor=OP, group_by="grade")
    assert rows(by_grade) == {"A": (1, 0), "B": (1, 1), "C": (2, 0), "D": (1, 1)}
    flow = funnel(floor, MARCH, actor=OP, group_by="attributes.segment", mode="flow")
    assert {r.group: r.counts.get("mql", 0) for r in flow.rows}["smb"] == 2
    speed = speed_to_lead(floor, MARCH, actor=OP, group_by="attributes.landing_page")
    assert {r.group: r.handoffs for r in speed.rows} == {"/blog": 1, "/pricing": 1}
    by_grade_speed = speed_to_lead(floor, MARCH, actor=OP, group_by="grade")
    assert {r.group: r.handoffs for r in by_grade_speed.rows} == {"B": 1, "D": 1}


def test_an_attribute_no_lead_has_is_one_labelled_group(floor: Context) -> None:
    report = funnel(floor, MARCH, actor=OP, group_by="attributes.nobody_has_this")
    assert rows(report) == {None: (5, 2)}
    assert report.group_by == "attributes.nobody_has_this"


def test_bad_groupings_are_refused_by_name(sqlite_ctx: Context) -> None:
    for bad, words in (
        ("bogus", "attributes.NAME"),
        ("attributes.", "attribute name"),
        ("attributes.a/b", "attribute name"),
    ):
        with pytest.raises(ReportInputError, match=words):
            funnel(sqlite_ctx, MARCH, actor=OP, group_by=bad)
    with pytest.raises(ValueError, match=r"use one of source, campaign$"):
        check_group_by("attributes.segment", ("source", "campaign"))


def test_over_http_and_the_command_line(
    sqlite_ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fastapi.testclient import TestClient
    from tests.conftest import bearer, token_for
    from typer.testing import CliRunner

    from baton.api.app import create_app
    from baton.cli import app

    capture_lead(
        sqlite_ctx,
        LeadCreate(email="a@b.example.com", attributes={"landing_page": "/pricing"}),
        actor=OP,
    )
    client = TestClient(create_app(sqlite_ctx))
    admin = bearer(token_for(sqlite_ctx, "admin"))
    period = {"from": "2026-03-01", "to": "2026-04-01"}
    answer = client.get(
        "/api/v1/reports/funnel", params={**period, "group_by": "attributes.landing_page"},
        headers=admin,
    )  # fmt: skip
    assert answer.status_code == 200, answer.text
    assert [(r["group"], r["lead"]) for r in answer.json()["rows"]] == [("/pricing", 1)]
    bad = client.get("/api/v1/reports/funnel", params={**period, "group_by": "x"}, headers=admin)
    assert bad.status_code == 422 and "group_by" in bad.text

    monkeypatch.setenv("BATON_DATABASE_URL", str(sqlite_ctx.engine.url))
    monkeypatch.delenv("BATON_ENV", raising=False)
    args = ["report", "funnel", "--from", "2026-03-01", "--to", "2026-04-01", "--format", "csv"]
    result = CliRunner().invoke(app, [*args, "--group-by", "grade"])
    assert result.exit_code == 0, result.output
    wrong = CliRunner().invoke(app, [*args, "--group-by", "attributes."])
    assert wrong.exit_code == 1 and "--group-by" in wrong.output
