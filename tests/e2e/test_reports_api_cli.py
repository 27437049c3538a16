"""Reports over HTTP and on the command line, on a small day of handoffs: every report
answers for the period and zone asked, in JSON, CSV or tables; spend files keep their
good rows and name the bad ones by line; bad periods are refused in one line (CLI) or
as problem+json (API). The API tests run on SQLite and on PostgreSQL with the same
expected figures. Over HTTP everyone authenticates with an API token: an admin by
default, Maria (marketing) and Sam (sales manager) sign the contract, Ana acts on her
own handoffs with her rep token."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from tests.conftest import START, bearer, token_for
from typer.testing import CliRunner

from baton.api.app import create_app
from baton.cli import app as cli_app
from baton.config import Settings
from baton.domain.clock import ManualClock
from baton.services.context import Context, open_context

EXAMPLE = Path(__file__).parents[2] / "contracts" / "example.yaml"
PROBLEM = "application/problem+json"
ANA, SAM, MARIA = "ana@lumen.example", "sam@lumen.example", "maria@lumen.example"
DAY = {"from": "2026-03-02", "to": "2026-03-03", "tz": "Europe/Paris"}
REPORTS = ("funnel", "velocity", "speed-to-lead", "sla", "rejections", "credit", "cost")


def ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def seed(api: TestClient, ctx: Context) -> dict[str, int]:
    """Monday 2 March 2026 from 09:00 UTC, the example contract active, Ana (team na,
    09:00-17:00 UTC) takes every MQL:

    * dana (webinar): demo request at 09:00, touched at 09:03, accepted at 09:10;
    * eve (ads): demo request at 09:10, rejected as junk (no credit) at 10:00;
    * finn (ads): demo request at 10:00, rejected as not ready (recycle) at 10:30;
    * gus (webinar): a form fill, never an MQL.
    """
    clock = ctx.clock
    assert isinstance(clock, ManualClock)
    version = ok(api.post("/api/v1/contracts", json={"body": EXAMPLE.read_text()}), 201)["version"]
    ok(api.post("/api/v1/teams", json={"name": "na", "manager_email": SAM}), 201)
    ok(api.post("/api/v1/reps", json={"email": ANA, "name": "Ana Silva", "team": "na"}), 201)
    signers = {
        "marketing": token_for(ctx, "marketing", email=MARIA),
        "sales": token_for(ctx, "sales_manager", email=SAM, teams=("na",)),
    }
    for role, token in signers.items():
        ok(
            api.post(
                f"/api/v1/contracts/{version}/approve", json={"role": role}, headers=bearer(token)
            )
        )
    ok(api.post(f"/api/v1/contracts/{version}/activate"))
    ana = bearer(token_for(ctx, "rep", rep_email=ANA))

    def lead(name: str, source: str, *, hand_raise: bool = True) -> int:
        email = f"{name}@northwind.example.com"
        body = {
            "email": email,
            "first_name": name.title(),
            "title": "VP Operations",
            "company": "Northwind",
            "country": "US",
            "source": source,
            "campaign": f"{source}-q1",
        }
        lead_id = int(ok(api.post("/api/v1/leads", json=body), 201)["lead"]["id"])
        if hand_raise:
            event = {"email": email, "type": "demo_request", "occurred_at": clock.now().isoformat()}
            ok(api.post("/api/v1/activities", json=event), 201)
        return lead_id

    def handoff_of(lead_id: int) -> int:
        [handoff] = ok(api.get("/api/v1/handoffs", params={"lead_id": lead_id}))
        assert handoff["rep_email"] == ANA
        return int(handoff["id"])

    dana = handoff_of(lead("dana", "webinar"))
    clock.advance(minutes=3)
    ok(api.post(f"/api/v1/handoffs/{dana}/touches", json={"kind": "call"}, headers=ana), 201)
    clock.advance(minutes=7)
    ok(api.post(f"/api/v1/handoffs/{dana}/accept", headers=ana))
    eve = handoff_of(lead("eve", "ads"))
    clock.advance(minutes=50)
    ok(api.post(f"/api/v1/handoffs/{eve}/reject", json={"code": "junk"}, headers=ana))
    finn = handoff_of(lead("finn", "ads"))
    clock.advance(minutes=30)
    ok(api.post(f"/api/v1/handoffs/{finn}/reject", json={"code": "not_ready"}, headers=ana))
    lead("gus", "webinar", hand_raise=False)
    return {"dana": dana, "eve": eve, "finn": finn}


SPEND = (
    "source,campaign,start,end,amount,currency\n"
    "ads,,2026-03-01,2026-03-31,3100,EUR\n"
    "webinar,webinar-q1,2026-03-02,2026-03-02,40,EUR\n"
    "ads,ads-q1,2026-03-05,2026-03-01,10,EUR\n"
)
"""Ads spend 100 a day in March, a 40 webinar on 2 March, and a row that ends before it
starts (line 4)."""


@pytest.fixture
def api(ctx: Context) -> Iterator[TestClient]:
    """An admin's client."""
    with TestClient(
        create_app(ctx), raise_server_exceptions=False, headers=bearer(token_for(ctx, "admin"))
    ) as client:
        yield client


@pytest.fixture
def day(api: TestClient, ctx: Context) -> TestClient:
    assert isinstance(ctx.clock, ManualClock) and ctx.clock.now() == START
    seed(api, ctx)
    return api


def report(api: TestClient, name: str, **params: Any) -> dict[str, Any]:
    body = ok(api.get(f"/api/v1/reports/{name}", params={**DAY, **params}))
    assert body["timezone"] == "Europe/Paris"
    assert body["period"] == {
        "from": "2026-03-02",
        "to": "2026-03-03",
        "timezone": "Europe/Paris",
        "start": "2026-03-01T23:00:00+00:00",
        "end": "2026-03-02T23:00:00+00:00",
    }
    return dict(body)


def test_every_report_answers_for_the_period_and_zone_asked(day: TestClient) -> None:
    for name in REPORTS:
        body = report(day, name)
        assert body["rows"], name

    [funnel] = report(day, "funnel")["rows"]
    assert {k: funnel[k] for k in ("group", "lead", "mql", "sal", "sql", "customer")} == {
        "group": None,
        "lead": 4,
        "mql": 3,
        "sal": 1,
        "sql": 0,
        "customer": 0,
    }
    assert (funnel["nurture"], funnel["disqualified"]) == (1, 1)
    assert funnel["lead→mql"] == 0.75 and funnel["mql→sal"] == pytest.approx(1 / 3)
    assert funnel["sql→opportunity"] is None
    flow = report(day, "funnel", mode="flow", group_by="source")
    assert flow["mode"] == "flow"
    assert [(r["group"], r["lead"], r["mql"], r["sal"]) for r in flow["rows"]] == [
        ("ads", 2, 2, 0),
        ("webinar", 2, 1, 1),
    ]

    [speed] = report(day, "speed-to-lead")["rows"]
    assert (speed["handoffs"], speed["touched"]) == (3, 1)
    assert speed["median_minutes"] == speed["p90_minutes"] == 3.0
    assert speed["business_median_minutes"] == 3.0
    assert speed["within_5m"] == pytest.approx(1 / 3)
    assert speed["system_median_minutes"] is None  # no email was sent in this test

    [sla] = report(day, "sla", group_by="rep")["rows"]
    assert sla["group"] == ANA
    assert (sla["handoffs"], sla["accepted_in_sla"], sla["not_accepted"]) == (3, 1, 2)
    assert (sla["touched_in_sla"], sla["not_touched"]) == (1, 2)

    rejected = report(day, "rejections")
    assert [(r["code"], r["label"], r["count"], r["share"]) for r in rejected["rows"]] == [
        ("junk", "Spam, student or test entry", 1, 0.5),
        ("not_ready", "Interested, but not ready to buy yet", 1, 0.5),
    ]
    assert rejected["recycled"] == {"recycled": 1, "returned_as_mql": 0, "won": 0, "uplift": 0.0}

    credit = report(day, "credit")
    assert credit["group_by"] == "source"
    assert [
        (r["group"], r["mqls"], r["rejected_without_credit"], r["credited_mqls"], r["accepted"])
        for r in credit["rows"]
    ] == [("ads", 2, 1, 1, 0), ("webinar", 1, 0, 1, 1)]

    [velocity] = [r for r in report(day, "velocity")["rows"] if r["from_stage"] == "mql"]
    assert (velocity["to_stage"], velocity["leads"]) == ("sal", 1)
    assert velocity["median_hours"] == pytest.approx(10 / 60, abs=1e-4)


def test_a_team_filter_and_an_unknown_group(day: TestClient) -> None:
    [row] = report(day, "funnel", team="na")["rows"]
    assert (row["lead"], row["mql"]) == (3, 3)  # gus was never handed to anyone
    assert report(day, "funnel", team="emea")["rows"][0]["lead"] == 0
    assert report(day, "sla", group_by="team", team="emea")["rows"] == []


def test_spend_import_keeps_good_rows_and_names_the_bad_line(day: TestClient, ctx: Context) -> None:
    maria = token_for(ctx, "marketing", email="maria.spend@lumen.example")
    result = ok(
        day.post(
            "/api/v1/spend/import",
            content=SPEND.encode(),
            headers={"Content-Type": "text/csv", **bearer(maria)},
        )
    )
    assert (result["rows"], result["stored"], result["rejected_rows"]) == (3, 2, 1)
    assert result["errors"] == [
        {"line": 4, "field": "end", "message": "2026-03-01 is before start 2026-03-05"}
    ]
    spend = ok(day.get("/api/v1/spend"))
    importer = "maria.spend@lumen.example (token marketing test token)"
    assert [(s["source"], s["campaign"], s["amount"], s["imported_by"]) for s in spend] == [
        ("ads", None, 3100.0, importer),
        ("webinar", "webinar-q1", 40.0, importer),
    ]

    cost = report(day, "cost")
    assert cost["currencies"] == ["EUR"]
    by_source = {r["group"]: r for r in cost["rows"]}
    assert (by_source["ads"]["spend"], by_source["ads"]["leads"]) == (100.0, 2)
    assert by_source["ads"]["cost_per_lead"] == 50.0
    assert by_source["ads"]["cost_per_mql"] == 50.0
    assert by_source["ads"]["net_mqls"] == 1  # eve was rejected without credit
    assert by_source["ads"]["net_cost_per_mql"] == 100.0
    assert (by_source["webinar"]["spend"], by_source["webinar"]["cost_per_sal"]) == (40.0, 40.0)
    gap = cost["gap"]
    assert (gap["leads_rejected"], gap["spend_on_rejected"]) == (2, 100.0)

    again = ok(
        day.post(
            "/api/v1/spend/import",
            content=b"source,start,end,amount\nads,2026-03-01,2026-03-31,6200\n",
            headers={"Content-Type": "text/csv"},
        )
    )
    assert (again["stored"], again["replaced"]) == (1, 1)
    ads = report(day, "cost", source="ads")["rows"]
    assert [(r["group"], r["spend"]) for r in ads] == [("ads", 200.0)]


@pytest.mark.parametrize(
    ("params", "loc"),
    [
        ({"from": "2026-03-02", "to": "2026-03-02"}, "to"),
        ({"from": "2026-03-03", "to": "2026-03-02"}, "to"),
        ({"from": "2026-03-02", "to": "2026-03-03", "tz": "Mars/Olympus"}, "tz"),
        ({"from": "2026-03-02", "to": "2026-03-03", "group_by": "colour"}, "group_by"),
        ({"from": "2026-03-02"}, "to"),
        ({"from": "2026-13-02", "to": "2026-03-03"}, "from"),
    ],
)
def test_bad_periods_are_refused_as_problems(
    api: TestClient, params: dict[str, str], loc: str
) -> None:
    for name in REPORTS:
        response = api.get(f"/api/v1/reports/{name}", params=params)
        assert response.status_code == 422, (name, response.text)
        assert response.headers["content-type"].startswith(PROBLEM)
        body = response.json()
        assert body["status"] == 422 and body["detail"]
        assert [e["loc"] for e in body["errors"]] == [loc], body


def test_cost_takes_only_source_or_campaign(api: TestClient) -> None:
    response = api.get("/api/v1/reports/cost", params={**DAY, "group_by": "team"})
    assert response.status_code == 422
    [error] = response.json()["errors"]
    assert error["loc"] == "group_by" and "'source' or 'campaign'" in error["message"]


def test_reports_need_a_role_that_reads_them_and_spend_one_that_imports_it(
    day: TestClient, ctx: Context
) -> None:
    bo = "bo@lumen.example"
    ok(day.post("/api/v1/reps", json={"email": bo, "name": "Bo", "team": "na"}), 201)
    marketing = bearer(token_for(ctx, "marketing"))
    manager = bearer(token_for(ctx, "sales_manager", teams=("na",)))
    rep = bearer(token_for(ctx, "rep", rep_email=bo))
    narrow = bearer(token_for(ctx, "sales_manager", scopes=("handoffs:read",)))

    anonymous = TestClient(day.app).get("/api/v1/reports/funnel", params=DAY)
    assert anonymous.status_code == 401 and anonymous.headers["content-type"] == PROBLEM
    for name in REPORTS:
        for headers in (marketing, manager):
            ok(day.get(f"/api/v1/reports/{name}", params=DAY, headers=headers))
        for headers, reason in ((rep, "rep role may not"), (narrow, "lacks the scope")):
            refused = day.get(f"/api/v1/reports/{name}", params=DAY, headers=headers)
            assert refused.status_code == 403, (name, refused.text)
            assert refused.headers["content-type"] == PROBLEM
            assert reason in refused.json()["detail"]
    assert day.get("/api/v1/spend", headers=rep).status_code == 403

    csv_headers = {"Content-Type": "text/csv"}
    refused = day.post(
        "/api/v1/spend/import", content=SPEND.encode(), headers={**csv_headers, **manager}
    )
    assert refused.status_code == 403
    assert "may not import marketing spend" in refused.json()["detail"]
    assert ok(day.get("/api/v1/spend", headers=manager)) == [], "the refused file left no row"


# --- the command line ---------------------------------------------------------------------


@pytest.fixture
def cli_day(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    """The same day in a SQLite file, then the CLI pointed at it."""
    url = f"sqlite:///{tmp_path / 'reports.db'}"
    ctx = open_context(Settings(database_url=url, env="test"), clock=ManualClock(current=START))
    try:
        with TestClient(create_app(ctx), headers=bearer(token_for(ctx, "admin"))) as client:
            seed(client, ctx)
    finally:
        ctx.engine.dispose()
    monkeypatch.setenv("BATON_DATABASE_URL", url)
    monkeypatch.delenv("BATON_ENV", raising=False)
    monkeypatch.chdir(tmp_path)
    return CliRunner()


def run(runner: CliRunner, *args: str) -> str:
    result = runner.invoke(cli_app, list(args))
    assert result.exit_code == 0, (args, result.output)
    return result.output


def refused(runner: CliRunner, *args: str) -> str:
    result = runner.invoke(cli_app, list(args))
    assert result.exit_code == 1, (args, result.output)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]


PERIOD = ("--from", "2026-03-02", "--to", "2026-03-03", "--tz", "Europe/Paris")


def test_cli_reports_as_json_csv_and_tables(cli_day: CliRunner) -> None:
    data = json.loads(run(cli_day, "report", "funnel", *PERIOD, "--format", "json"))
    assert data["timezone"] == "Europe/Paris" and data["period"]["from"] == "2026-03-02"
    assert (data["rows"][0]["lead"], data["rows"][0]["mql"]) == (4, 3)

    text = run(cli_day, "report", "credit", *PERIOD, "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [(r["group"], r["mqls"], r["rejected_without_credit"]) for r in rows] == [
        ("ads", "2", "1"),
        ("webinar", "1", "0"),
    ]
    header = run(
        cli_day, "report", "sla", *PERIOD, "--team", "emea", "--group-by", "rep", "--format", "csv"
    )
    assert header.strip().split(",")[:3] == ["group", "handoffs", "accepted_in_sla"]

    for command in ("funnel", "velocity", "speed", "sla", "rejections", "credit", "cost"):
        shown = run(cli_day, "report", command, *PERIOD)
        assert "Europe/Paris" in shown, (command, shown)
        json.loads(run(cli_day, "report", command, *PERIOD, "--format", "json"))
    assert "Cost of the gap" in run(cli_day, "report", "cost", *PERIOD)
    assert "recycled" in run(cli_day, "report", "rejections", *PERIOD)


def test_cli_spend_import_and_bad_input(cli_day: CliRunner, tmp_path: Path) -> None:
    spend = tmp_path / "spend.csv"
    spend.write_text(SPEND)
    result = cli_day.invoke(cli_app, ["import", "spend", str(spend)])
    assert result.exit_code == 1, result.output
    assert "line 4: end: 2026-03-01 is before start 2026-03-05" in result.output
    assert "1 row rejected; the other 2 rows were imported" in result.output
    assert (tmp_path / "spend.csv.errors.csv").read_text().splitlines()[1].startswith("4,end,")
    data = json.loads(run(cli_day, "report", "cost", *PERIOD, "--format", "json"))
    assert {r["group"]: r["spend"] for r in data["rows"]} == {"ads": 100.0, "webinar": 40.0}

    assert "--to must be after --from" in refused(
        cli_day, "report", "funnel", "--from", "2026-03-02", "--to", "2026-03-01"
    )
    assert "unknown time zone" in refused(cli_day, "report", "sla", *PERIOD[:4], "--tz", "Nowhere")
    assert "cannot group by 'colour'" in refused(
        cli_day, "report", "velocity", *PERIOD, "--group-by", "colour"
    )
    assert "not a date" in refused(cli_day, "report", "speed", "--from", "2 March", "--to", "x")
    assert "source or campaign" in refused(
        cli_day, "report", "cost", *PERIOD, "--group-by", "country"
    )


def test_business_minutes_are_stored_with_the_first_touch(day: TestClient, ctx: Context) -> None:
    from sqlalchemy import select

    from baton.store.tables import handoffs

    with ctx.read() as connection:
        stored = dict(
            connection.execute(
                select(handoffs.c.lead_id, handoffs.c.first_touch_business_minutes)
            ).all()
        )
    assert sorted(stored.values(), key=lambda v: (v is None, v)) == [3.0, None, None]
    assert ctx.clock.now() - START == timedelta(minutes=90)
