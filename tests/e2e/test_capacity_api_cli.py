"""Capacity planning over HTTP and on the command line (issue 16, item 5): the answers,
the one-line errors, and what the OpenAPI promises."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from tests.conftest import bearer, token_for
from typer.testing import CliRunner

from baton.api.app import create_app
from baton.cli import app as cli
from baton.domain.access import operator
from baton.domain.reps import RepCreate
from baton.services.context import Context
from baton.services.reps import create_rep

PROBLEM = "application/problem+json"
URL = "/api/v1/plan/capacity"


@pytest.fixture
def api(ctx: Context) -> Iterator[TestClient]:
    """The API, called by a sales manager."""
    token = token_for(ctx, "sales_manager")
    with TestClient(create_app(ctx), raise_server_exceptions=False, headers=bearer(token)) as c:
        yield c


def problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    return dict(response.json())


def test_a_manager_plans_over_http(api: TestClient, ctx: Context) -> None:
    body = {
        "rates": ["Mon-Fri 09-17=3"],
        "reps": 1,
        "hours": "Mon-Fri 09-17",
        "timezone": "Europe/Berlin",
        "minutes_per_lead": 10,
        "target": 0.9,
        "runs": 1,
    }
    answer = api.post(URL, json=body)
    assert answer.status_code == 200, answer.text
    plan = answer.json()
    assert plan["target_met"] is True and plan["share_within"] >= 0.9
    assert plan["reps"] == 1 + sum(s["reps"] for s in plan["added"])
    assert plan["timezone"] == "Europe/Berlin" and len(plan["rates"]) == 168
    assert len(plan["staffing"]) == 7 and plan["staffing"][0][10] >= 2
    assert [label for label, _ in plan["histogram"]][:2] == ["≤ 1 min", "1-5 min"]

    no_history = problem(api.post(URL, json={"reps": 2}), 422)
    assert "give the arrival rates" in no_history["detail"]
    no_reps = problem(api.post(URL, json={"rates": ["Mon=1"]}), 422)
    assert "no active reps" in no_reps["detail"]
    problem(api.post(URL, json={"rates": ["Mon=1"], "reps": 1, "timezone": "Mars/Base"}), 422)
    problem(api.post(URL, json={"rates": ["Mon=1"], "reps": 1, "hours": "never"}), 422)
    problem(api.post(URL, json={"reps": 1, "surprise": 1}), 422)
    create_rep(ctx, RepCreate(email="ana@lumen.example", name="Ana"), actor=operator("ops"))
    rep = token_for(ctx, "rep", rep_email="ana@lumen.example")
    problem(api.post(URL, json=body, headers=bearer(rep)), 403)


def test_the_openapi_describes_the_plan(api: TestClient) -> None:
    spec = api.get("/openapi.json").json()
    operation = spec["paths"][URL]["post"]
    assert operation["operationId"] == "plan_capacity"
    assert {"403", "422"} <= set(operation["responses"])
    body = spec["components"]["schemas"]["CapacityRequest"]
    assert body["additionalProperties"] is False
    assert body["examples"][0]["target"] == 0.9


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


def test_plan_capacity_on_the_command_line(runner: CliRunner, tmp_path: Path) -> None:
    run(runner, "init")
    out = run(
        runner,
        "plan",
        "capacity",
        "--rate",
        "Mon-Fri 09-17=3",
        "--rate",
        "Sat=1",
        "--reps",
        "2",
        "--hours",
        "Mon-Fri 08-18",
        "--minutes-per-lead",
        "10",
        "--target",
        "0.9",
        "--runs",
        "1",
    )
    assert "Target 90% within 5 min: met" in out
    assert "Reps to add" in out and "Speed to lead" in out and "█" in out
    assert "Reps working per hour (UTC)" in out

    csv = tmp_path / "rates.csv"
    csv.write_text("hour,rate\n" + "".join(f"{h},{2 if h % 24 == 10 else 0}\n" for h in range(168)))
    data = json.loads(
        run(runner, "plan", "capacity", "--rates-csv", str(csv), "--reps", "1", "--format", "json")
    )
    assert data["mqls_per_week"] == 14 and data["arrivals_from"] == "the given rates (CSV)"

    err = run(runner, "plan", "capacity", "--reps", "1", code=1)
    assert "--rate" in err and "give the arrival rates" in err
    err = run(runner, "plan", "capacity", "--rate", "Mon=1", code=1)
    assert "no active reps on the roster" in err and "--reps" in err
    err = run(runner, "plan", "capacity", "--rate", "Mon 9-17", "--reps", "1", code=1)
    assert "must look like 'Mon-Fri 09-17=6'" in err
    err = run(runner, "plan", "capacity", "--rate", "Mon=1", "--reps", "1", "--tz", "Mars", code=1)
    assert "--tz" in err and "unknown time zone" in err


def test_the_plan_reads_as_the_user_typed_it(runner: CliRunner) -> None:
    """Whole numbers with separators, work per lead to one decimal, the SLA's origin
    said (no contract: Baton's default, as a warning), the expected arrivals beside the
    simulated ones, options named as typed, the internal pool never shown."""
    run(runner, "init")
    args = ["plan", "capacity", "--rate", "Mon-Fri 09-17=2", "--reps", "1"]
    out = run(runner, *args, "--minutes-per-lead", "37.1666", "--hours", "Mon-Fri 10-12")
    assert "Work per lead: 37.2 min (given)" in out
    assert "SLA first touch: 120 min of business time (Baton's default: no active contract)" in (
        " ".join(out.split())
    )
    assert "Warning: no active contract: the SLA used is Baton's default" in " ".join(out.split())
    # 80 MQLs a week: 7 runs (about 500 simulated), the expected count shown.
    assert "in 7 runs (the rates expect 560" in out
    assert "1 hypothetical rep," in out and "no hypothetical rep is available" in out
    assert "capacity-plan" not in out
    err = run(runner, *args, "--runs", "0", "--shift-hours", "30", code=1)
    assert "--runs:" in err and "--shift-hours:" in err and "shift_hours" not in err
