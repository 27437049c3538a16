"""A manager gives a queued handoff to a named rep, over HTTP and on the command line
(issue 11, item 8): the answers, the one-line errors, and what the OpenAPI promises."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from tests.conftest import bearer, token_for
from typer.testing import CliRunner

from baton.api.app import create_app
from baton.cli import app as cli
from baton.domain.access import operator
from baton.domain.activities import ActivityCreate
from baton.domain.leads import LeadCreate
from baton.domain.reps import RepCreate, TeamCreate
from baton.services.activities import ingest_activity
from baton.services.context import Context
from baton.services.contracts import activate_contract, approve_contract, create_contract
from baton.services.handoffs import list_handoffs
from baton.services.leads import capture_lead
from baton.services.reps import create_rep, create_team

EXAMPLE = Path(__file__).parents[2] / "contracts" / "example.yaml"
ANA, BEN, SAM = "ana@lumen.example", "ben@lumen.example", "sam@lumen.example"
PROBLEM = "application/problem+json"
OPS = operator("ops")


@pytest.fixture
def handoff_id(ctx: Context) -> int:
    """The example contract, team na (Ana available, Ben away) managed by Sam, and a
    US company of 5,000 asking for a demo: the enterprise pool has no reps, it queues."""
    version = create_contract(ctx, EXAMPLE.read_text(), actor=OPS).version
    approve_contract(ctx, version, role="marketing", actor=operator("maria"))
    approve_contract(ctx, version, role="sales", actor=operator("sam"))
    activate_contract(ctx, version, actor=OPS)
    create_team(ctx, TeamCreate(name="na", manager_email=SAM), actor=OPS)
    create_rep(ctx, RepCreate(email=ANA, name="Ana", team="na"), actor=OPS)
    create_rep(ctx, RepCreate(email=BEN, name="Ben", team="na", status="away"), actor=OPS)
    email = "cio@bigcorp.example.com"
    data = LeadCreate.model_validate({"email": email, "attributes": {"employees": 5000}})
    lead_id = capture_lead(ctx, data, actor=OPS).lead.id
    ingest_activity(
        ctx,
        ActivityCreate(email=email, type="demo_request", occurred_at=ctx.clock.now()),
        actor=OPS,
    )
    [handoff] = list_handoffs(ctx, lead_id=lead_id, actor=OPS)
    assert handoff.status == "queued"
    return handoff.id


@pytest.fixture
def api(ctx: Context, handoff_id: int) -> Iterator[TestClient]:
    """The API, called by Sam, the manager of team na."""
    sam = token_for(ctx, "sales_manager", email=SAM, teams=("na",))
    with TestClient(create_app(ctx), raise_server_exceptions=False, headers=bearer(sam)) as client:
        yield client


def problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    return dict(response.json())


def test_a_manager_assigns_a_queued_handoff_over_http(
    api: TestClient, ctx: Context, handoff_id: int
) -> None:
    url = f"/api/v1/handoffs/{handoff_id}/assign"

    away = problem(api.post(url, json={"to": BEN}), 409)
    assert "cannot take leads now (status away)" in away["detail"]
    for body in ({}, {"to": BEN, "override_reason": ""}, {"to": BEN, "why": "x"}):
        problem(api.post(url, json=body), 422)
    rep = token_for(ctx, "rep", rep_email=ANA)
    problem(api.post(url, json={"to": ANA}, headers=bearer(rep)), 403)

    answer = api.post(url, json={"to": BEN, "override_reason": "Ben covers enterprise"})
    assert answer.status_code == 200, answer.text
    handoff = answer.json()
    assert (handoff["status"], handoff["rep_email"]) == ("assigned", BEN)
    assert handoff["routing"]["override_reason"] == "Ben covers enterprise"
    assert handoff["accept_due_at"] is not None
    again = problem(api.post(url, json={"to": ANA}), 409)
    assert "only a queued handoff is assigned" in again["detail"]


def test_the_openapi_describes_the_assignment(api: TestClient) -> None:
    spec = api.get("/openapi.json").json()
    operation = spec["paths"]["/api/v1/handoffs/{handoff_id}/assign"]["post"]
    assert operation["operationId"] == "assign_handoff"
    assert {"403", "404", "409", "422"} <= set(operation["responses"])
    body = spec["components"]["schemas"]["AssignCreate"]
    assert body["required"] == ["to"]
    assert set(body["properties"]) == {"to", "override_reason"}
    assert body["additionalProperties"] is False


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("BATON_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.delenv("BATON_ENV", raising=False)
    monkeypatch.chdir(tmp_path)
    return CliRunner()


def run(runner: CliRunner, *args: str, code: int = 0) -> str:
    result = runner.invoke(cli, list(args))
    assert result.exit_code == code, (args, result.output)
    assert "Traceback" not in result.output
    return result.output


def test_a_manager_assigns_a_queued_handoff_on_the_command_line(
    runner: CliRunner, tmp_path: Path
) -> None:
    run(runner, "contract", "create", str(EXAMPLE), "--actor", "maria")
    run(runner, "contract", "approve", "1", "--role", "marketing", "--actor", "maria")
    run(runner, "contract", "approve", "1", "--role", "sales", "--actor", "sam")
    run(runner, "contract", "activate", "1")
    run(runner, "team", "add", "na", "--manager", SAM)
    always = "mon-sun=00:00-24:00"  # the CLI reads the wall clock
    run(runner, "rep", "add", ANA, "--name", "Ana", "--team", "na", "--hours", always)
    run(runner, "rep", "add", BEN, "--name", "Ben", "--team", "na", "--hours", always)
    run(runner, "rep", "update", BEN, "--status", "away")
    leads = tmp_path / "leads.csv"
    leads.write_text("Email,Country,Employees\ncio@bigcorp.example.com,US,5000\n")
    now = datetime.now(UTC).isoformat(timespec="seconds")
    events = tmp_path / "events.csv"
    events.write_text(f"email,type,occurred_at\ncio@bigcorp.example.com,demo_request,{now}\n")
    run(runner, "import", "leads", str(leads))
    run(runner, "import", "activities", str(events))
    assert "team enterprise has no reps" in run(runner, "handoff", "queue")
    small = tmp_path / "small.csv"
    small.write_text(f"email,type,occurred_at\nops@small.example.com,demo_request,{now}\n")
    run(runner, "rep", "update", ANA, "--status", "away")
    run(runner, "import", "activities", str(small))
    run(runner, "rep", "update", ANA, "--status", "available")
    waiting = run(runner, "handoff", "show", "2")  # the queue's reason, rep by rep
    assert "routing:      nobody in team na is available" in waiting
    assert f"  passed over: {BEN}: status away" in waiting

    refused = run(runner, "handoff", "assign", "1", "--to", BEN, "--actor", SAM, code=1)
    assert refused.strip().splitlines() == [
        f"error: {BEN} cannot take leads now (status away); to assign anyway, give the "
        "reason to override (it is recorded)"
    ]
    done = run(
        runner, "handoff", "assign", "1", "--to", BEN, "--actor", SAM, "--override", "covering"
    )
    assert done.startswith(f"handoff 1 assigned to {BEN}, accept by ")
    shown = run(runner, "handoff", "show", "1")
    assert "covering" in shown
