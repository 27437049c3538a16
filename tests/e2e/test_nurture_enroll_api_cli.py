"""Nurture enrollment over HTTP and on the command line: preview first (who and why),
then enroll the same selection once; a named lead without consent is a 422
problem+json naming the lead and the field, and nothing is enrolled; list, show and
end enrollments."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from tests.conftest import bearer, token_for
from typer.testing import CliRunner

from baton.api.app import create_app
from baton.cli import app as cli_app
from baton.domain.access import operator
from baton.domain.leads import LeadCreate
from baton.services import contracts as contract_service
from baton.services.context import Context
from baton.services.leads import capture_lead
from baton.services.notes import add_tag

EXAMPLE = Path(__file__).parents[2] / "contracts" / "example.yaml"
OP = operator("test")


def activate_example(ctx: Context) -> int:
    version = contract_service.create_contract(ctx, EXAMPLE.read_text(), actor=OP).version
    contract_service.approve_contract(ctx, version, role="marketing", actor=operator("m"))
    contract_service.approve_contract(ctx, version, role="sales", actor=operator("s"))
    contract_service.activate_contract(ctx, version, actor=OP)
    return version


def lead(ctx: Context, email: str, *, tag: str = "spring", **fields: Any) -> int:
    data = LeadCreate.model_validate({"email": email, "first_name": "Ana", **fields})
    lead_id = capture_lead(ctx, data, actor=OP).lead.id
    add_tag(ctx, lead_id, tag, actor=OP)
    return lead_id


@pytest.fixture
def world(ctx: Context) -> dict[str, int]:
    activate_example(ctx)
    return {
        "ok": lead(ctx, "ok@acme.example", consent_basis="consent"),
        "ok2": lead(ctx, "ok2@acme.example", consent_basis="legitimate_interest"),
        "no_consent": lead(ctx, "nobasis@acme.example"),
    }


def test_preview_then_enroll_over_http(ctx: Context, world: dict[str, int]) -> None:
    api = TestClient(create_app(ctx), headers=bearer(token_for(ctx, "marketing")))
    body = {"sequence": "not-ready", "tag": "spring"}

    preview = api.post("/api/v1/nurture/enrollments/preview", json=body)
    assert preview.status_code == 200, preview.text
    shown = preview.json()
    assert (shown["matched"], shown["would_enroll"], shown["excluded"]) == (3, 2, 1)
    assert shown["excluded_by_reason"] == {"no_consent": 1}
    [excluded] = shown["excluded_sample"]
    assert excluded["lead_id"] == world["no_consent"] and excluded["reasons"] == ["no_consent"]
    assert shown["enrolled"] == 0
    assert api.get("/api/v1/nurture/enrollments").json() == []

    done = api.post("/api/v1/nurture/enrollments", json=body)
    again = api.post("/api/v1/nurture/enrollments", json=body)
    assert done.status_code == 200 and done.json()["enrolled"] == 2
    assert again.json()["enrolled"] == 0
    assert again.json()["excluded_by_reason"] == {"already_enrolled": 2, "no_consent": 1}

    listed = api.get("/api/v1/nurture/enrollments", params={"status": "active"}).json()
    assert sorted(e["lead_id"] for e in listed) == sorted([world["ok"], world["ok2"]])
    first = listed[0]
    assert (first["next_step"], first["next_template"], first["touches"]) == (0, "check-in", 0)
    assert first["max_touches"] == 6
    one = api.get(f"/api/v1/nurture/enrollments/{first['id']}")
    assert one.status_code == 200 and one.json()["id"] == first["id"]
    ended = api.delete(f"/api/v1/nurture/enrollments/{first['id']}")
    assert ended.status_code == 200
    assert (ended.json()["status"], ended.json()["exit_reason"]) == ("exited", "manual")
    assert api.get("/api/v1/nurture/enrollments/999999").status_code == 404
    by_lead = api.get("/api/v1/nurture/enrollments", params={"lead_id": world["ok2"]}).json()
    assert [e["lead_id"] for e in by_lead] == [world["ok2"]]


def test_bad_enrollments_are_problems_naming_the_field(ctx: Context, world: dict[str, int]) -> None:
    api = TestClient(create_app(ctx), headers=bearer(token_for(ctx, "admin")))
    refused = api.post(
        "/api/v1/nurture/enrollments",
        json={"sequence": "not-ready", "lead_ids": [world["ok"], world["no_consent"]]},
    )
    assert refused.status_code == 422
    assert refused.headers["content-type"].startswith("application/problem+json")
    [error] = refused.json()["errors"]
    assert error["loc"].endswith("consent_basis")
    assert f"lead {world['no_consent']}" in error["message"]
    assert api.get("/api/v1/nurture/enrollments").json() == []  # nothing half-enrolled

    unknown = api.post("/api/v1/nurture/enrollments", json={"sequence": "nope", "tag": "spring"})
    assert unknown.status_code == 422 and unknown.json()["errors"][0]["loc"] == "sequence"
    both = api.post(
        "/api/v1/nurture/enrollments/preview",
        json={"sequence": "not-ready", "tag": "spring", "filter": "x"},
    )
    assert both.status_code == 422
    missing = api.post(
        "/api/v1/nurture/enrollments", json={"sequence": "not-ready", "lead_ids": [999999]}
    )
    assert missing.status_code == 404
    rep = TestClient(create_app(ctx), headers=bearer(token_for(ctx, "sales_manager")))
    assert rep.get("/api/v1/nurture/enrollments").status_code == 403


def test_enroll_list_show_and_exit_on_the_command_line(
    ctx: Context, world: dict[str, int], database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BATON_DATABASE_URL", database_url)
    runner = CliRunner()
    args = ["nurture", "enroll", "--sequence", "not-ready", "--tag", "spring"]

    declined = runner.invoke(cli_app, args, input="n\n")
    assert declined.exit_code == 1, declined.output
    assert "Would enroll: 2; excluded: 1 (no_consent 1)" in declined.output
    assert "no consent with a lawful basis recorded" in declined.output
    assert "nothing enrolled" in declined.output

    done = runner.invoke(cli_app, [*args, "--yes"])
    assert done.exit_code == 0, done.output
    assert "Enrolled 2 lead(s) in not-ready." in done.output
    again = runner.invoke(cli_app, [*args, "--yes"])
    assert again.exit_code == 0 and "Nobody to enroll." in again.output

    listed = runner.invoke(cli_app, ["nurture", "list", "--status", "active"])
    assert listed.exit_code == 0, listed.output
    assert "ok2@acme.example" in listed.output and "check-in" in listed.output

    shown = runner.invoke(cli_app, ["nurture", "show", "ok@acme.example"])
    assert shown.exit_code == 0, shown.output
    assert "in not-ready — active" in shown.output and "bulk: tag 'spring'" in shown.output
    assert "Next: step 1 check-in" in shown.output  # from 1, as `nurture preview --step`

    refused = runner.invoke(
        cli_app,
        ["nurture", "enroll", "--sequence", "not-ready", "--lead", str(world["no_consent"])],
    )
    assert refused.exit_code == 1
    assert "no consent with a lawful basis recorded" in refused.output
    unknown = runner.invoke(cli_app, ["nurture", "enroll", "--sequence", "nope", "--tag", "x"])
    assert unknown.exit_code == 1 and "unknown nurture sequence 'nope'" in unknown.output

    enrollment = shown.output.split("Enrollment ", 1)[1].split(":", 1)[0]
    ended = runner.invoke(cli_app, ["nurture", "exit", enrollment])
    assert ended.exit_code == 0 and "exited (manual)" in ended.output
