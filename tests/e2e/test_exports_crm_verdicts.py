"""Exports for loading back into a CRM (issue 14, item 5): sales' verdicts (accept,
reject with its reason code, qualify, win with its value: who and when) through the
one export path, on SQLite and PostgreSQL, over the API and the CLI; and lead columns
named as Salesforce's Lead and HubSpot's contact import templates name them.

Time: Monday 2026-03-02 09:00 UTC; Ana works around the clock.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from tests.conftest import bearer, principal_for, token_for
from typer.testing import CliRunner

from baton.api.app import create_app
from baton.cli import app
from baton.domain.access import operator
from baton.domain.activities import ActivityCreate
from baton.domain.clock import ManualClock
from baton.domain.errors import ValidationFailed
from baton.domain.leads import LeadCreate
from baton.domain.reps import RepCreate, TeamCreate
from baton.services import contracts as contract_service
from baton.services import handoffs as handoff_service
from baton.services import reps as rep_service
from baton.services.activities import ingest_activity
from baton.services.context import Context
from baton.services.exports import lead_export, verdict_export
from baton.services.leads import capture_lead
from baton.services.nurture_links import unsubscribe_lead_in

EXAMPLE = (Path(__file__).parents[2] / "contracts" / "example.yaml").read_text()
OP = operator("test")
ANA = "ana@lumen.example"
ALWAYS = {d: ["00:00-24:00"] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
BUDGET = {"budget": "40k", "authority": "VP Ops", "need": "dashboards", "timing": "Q2"}


def table(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text, newline="")))


def floor(ctx: Context) -> dict[str, int]:
    """Dana (from Salesforce, id 00Q1) accepted, qualified and won for 12,000; Lee
    rejected (no budget); Kim captured only, no name or company, opted out."""
    version = contract_service.create_contract(ctx, EXAMPLE, actor=OP).version
    contract_service.approve_contract(ctx, version, role="marketing", actor=operator("maria"))
    contract_service.approve_contract(ctx, version, role="sales", actor=operator("sam"))
    contract_service.activate_contract(ctx, version, actor=OP)
    rep_service.create_team(ctx, TeamCreate(name="na"), actor=OP)
    rep_service.create_rep(
        ctx, RepCreate(email=ANA, name="Ana", team="na", working_hours=ALWAYS), actor=OP
    )
    ana = principal_for(ctx, "rep", rep_email=ANA)
    handoff_of: dict[str, int] = {}
    for email, extra in (
        ("dana@northwind.com", {"external_id": "00Q1", "external_system": "salesforce"}),
        ("lee@contoso.com", {}),
    ):
        data = LeadCreate(
            email=email, first_name=email[:3].title(), last_name="Reyes", company="Co",
            country="US", title="VP Ops", **extra,
        )  # fmt: skip
        lead_id = capture_lead(ctx, data, actor=OP).lead.id
        ingest_activity(ctx, ActivityCreate(email=email, type="demo_request"), actor=OP)
        [handoff] = handoff_service.list_handoffs(ctx, actor=OP, lead_id=lead_id)
        handoff_of[email] = handoff.id
    clock = ctx.clock
    assert isinstance(clock, ManualClock)
    clock.advance(timedelta(minutes=5))
    dana = handoff_of["dana@northwind.com"]
    handoff_service.accept_handoff(ctx, dana, actor=ana)
    handoff_service.qualify_handoff(ctx, dana, fields=BUDGET, actor=ana)
    clock.advance(timedelta(days=3))
    handoff_service.won_handoff(ctx, dana, amount=12000, actor=ana)
    handoff_service.reject_handoff(
        ctx, handoff_of["lee@contoso.com"], code="no_budget", note="next year", actor=ana
    )
    capture_lead(ctx, LeadCreate(email="kim@fabrikam.com", consent=False), actor=OP)
    said_yes = capture_lead(
        ctx, LeadCreate(email="una@fabrikam.com", consent_basis="consent"), actor=OP
    )
    with ctx.write() as connection:  # then the one-click unsubscribe (consent kept as it was)
        unsubscribe_lead_in(
            connection, said_yes.lead_id, now=ctx.clock.now(), actor=OP, source="one-click"
        )
    return handoff_of


def test_verdicts_and_crm_columns(ctx: Context) -> None:
    handoff_of = floor(ctx)
    out = io.StringIO()
    assert verdict_export(ctx, actor=OP).write(out) == 4
    rows = table(out.getvalue())
    assert [r["verdict"] for r in rows] == ["accepted", "qualified", "won", "rejected"]
    assert {r["by"] for r in rows} == {f"{ANA} (token rep test token)"}  # who, as recorded
    assert {r["rep_email"] for r in rows} == {ANA}
    won, rejected = rows[2], rows[3]
    assert (won["handoff_id"], won["outcome"], won["deal_value"]) == (
        str(handoff_of["dana@northwind.com"]),
        "won",
        "12000",
    )
    assert (won["lead_external_system"], won["lead_external_id"]) == ("salesforce", "00Q1")
    assert won["occurred_at"] == "2026-03-05T09:05:00+00:00"
    assert (rejected["reason_code"], rejected["reason"], rejected["outcome"]) == (
        "no_budget",
        "next year",
        "disqualify",
    )
    assert rejected["marketing_credit"] == "false"
    only = io.StringIO()
    verdict_export(ctx, actor=OP, filters={"verdict": "rejected,won"}).write(only, "jsonl")
    assert [json.loads(line)["verdict"] for line in only.getvalue().splitlines()] == [
        "won",
        "rejected",
    ]

    salesforce = io.StringIO()
    lead_export(ctx, actor=OP, columns="salesforce").write(salesforce)
    sf = {r["Email"]: r for r in table(salesforce.getvalue())}
    assert list(next(iter(sf.values())))[:11] == [
        "FirstName", "LastName", "Email", "Phone", "Company", "Title", "Country", "State",
        "PostalCode", "LeadSource", "Status",
    ]  # fmt: skip
    assert sf["dana@northwind.com"]["Status"] == "Closed - Converted"
    assert sf["lee@contoso.com"]["Status"] == "Closed - Not Converted"
    kim = sf["kim@fabrikam.com"]
    assert (kim["LastName"], kim["Company"], kim["Status"]) == (
        "[not provided]",
        "[not provided]",
        "Open - Not Contacted",
    )
    assert kim["HasOptedOutOfEmail"] == "true"
    assert sf["una@fabrikam.com"]["HasOptedOutOfEmail"] == "true", "unsubscribed"
    assert sf["dana@northwind.com"]["HasOptedOutOfEmail"] == "false"
    hubspot = io.StringIO()
    lead_export(ctx, actor=OP, columns="HubSpot").write(hubspot)
    hs = {r["Email"]: r for r in table(hubspot.getvalue())}
    assert hs["dana@northwind.com"]["Lifecycle Stage"] == "Customer"
    assert hs["dana@northwind.com"]["Job Title"] == "VP Ops"
    assert hs["kim@fabrikam.com"]["Lifecycle Stage"] == "Lead"
    assert hs["kim@fabrikam.com"]["Last Name"] == ""
    assert hs["una@fabrikam.com"]["Marketing contact status"] == "Non-marketing contact"
    with pytest.raises(ValidationFailed, match="did you mean 'hubspot'"):
        lead_export(ctx, actor=OP, columns="hubspt")


def test_over_http_and_the_command_line(
    sqlite_ctx: Context, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    floor(sqlite_ctx)
    client = TestClient(create_app(sqlite_ctx))
    admin = bearer(token_for(sqlite_ctx, "admin"))
    answer = client.get("/api/v1/exports/verdicts", params={"verdict": "won"}, headers=admin)
    assert answer.status_code == 200, answer.text
    assert [r["deal_value"] for r in table(answer.text)] == ["12000"]
    assert "baton-verdicts-" in answer.headers["content-disposition"]
    bad = client.get("/api/v1/exports/verdicts", params={"verdict": "maybe"}, headers=admin)
    assert bad.status_code == 422
    hs = client.get("/api/v1/exports/leads", params={"columns": "hubspot"}, headers=admin)
    assert hs.status_code == 200 and hs.text.startswith("First Name,Last Name,Email")

    monkeypatch.setenv("BATON_DATABASE_URL", str(sqlite_ctx.engine.url))
    monkeypatch.delenv("BATON_ENV", raising=False)
    runner = CliRunner()
    result = runner.invoke(app, ["export", "verdicts", "--verdict", "rejected"])
    assert result.exit_code == 0, result.output
    assert [r["reason_code"] for r in table(result.stdout)] == ["no_budget"]
    result = runner.invoke(app, ["export", "leads", "--columns", "salesforce"])
    assert result.exit_code == 0 and result.stdout.startswith("FirstName,LastName,Email")
    result = runner.invoke(app, ["export", "leads", "--columns", "pipedrive"])
    assert result.exit_code == 1 and "--columns" in result.output
