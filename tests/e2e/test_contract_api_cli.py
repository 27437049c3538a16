"""The contract over HTTP and on the command line, as marketing ops would use it."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from baton.api.app import create_app
from baton.cli import app as cli_app
from baton.services.context import Context

EXAMPLE = Path(__file__).parents[2] / "contracts" / "example.yaml"


@pytest.fixture
def client(sqlite_ctx: Context) -> TestClient:
    return TestClient(create_app(sqlite_ctx))


def signed(client: TestClient, body: str) -> int:
    created = client.post(
        "/api/v1/contracts", json={"body": body}, headers={"X-Baton-Actor": "maria"}
    )
    assert created.status_code == 201, created.text
    version = created.json()["version"]
    for role, person in (("marketing", "maria"), ("sales", "sam")):
        response = client.post(
            f"/api/v1/contracts/{version}/approve",
            json={"role": role},
            headers={"X-Baton-Actor": person},
        )
        assert response.status_code == 200, response.text
    return int(version)


def test_a_broken_contract_gets_every_problem_with_its_path(client: TestClient) -> None:
    body = (
        EXAMPLE.read_text()
        .replace("field: title", "field: titel", 1)
        .replace("threshold: 60", "threshhold: 60")
    )

    response = client.post("/api/v1/contracts", json={"body": body})

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    locs = {e["loc"]: e["message"] for e in response.json()["errors"]}
    assert locs["scoring.fit[0].when.field"].startswith("unknown field 'titel' (did you mean")
    assert "mql.threshhold" in locs


def test_sign_activate_and_read_a_score_over_http(client: TestClient, sqlite_ctx: Context) -> None:
    lead = client.post(
        "/api/v1/leads",
        json={
            "email": "dana@northwind.example.com",
            "title": "VP Operations",
            "country": "US",
            "company": "Northwind",
            "attributes": {"employees": 420},
        },
    ).json()["lead"]

    early = client.post("/api/v1/contracts/1/activate")
    assert early.status_code == 404
    version = signed(client, EXAMPLE.read_text())
    activation = client.post(f"/api/v1/contracts/{version}/activate")
    assert activation.status_code == 200, activation.text
    assert activation.json()["leads_scored"] == 1

    score = client.get(f"/api/v1/leads/{lead['id']}/score").json()
    assert score["contract_version"] == version
    assert score["grade"] == "A"
    assert {h["label"] for h in score["explanation"]} >= {"Decision-maker title", "Target market"}
    assert sum(h["points"] for h in score["explanation"]) == pytest.approx(score["total"])

    demo = client.post(
        "/api/v1/activities",
        json={
            "email": "dana@northwind.example.com",
            "type": "demo_request",
            "occurred_at": sqlite_ctx.clock.now().isoformat(),
        },
    )
    assert demo.status_code == 201
    assert client.get(f"/api/v1/leads/{lead['id']}").json()["stage"] == "mql"
    timeline = client.get(f"/api/v1/leads/{lead['id']}/timeline").json()
    mql = [i for i in timeline if i["kind"] == "transition"]
    assert mql[-1]["data"]["reason"] == "hand-raise: demo_request"
    assert mql[-1]["data"]["contract_version"] == version

    prep = client.put(
        f"/api/v1/leads/{lead['id']}/prep/slot_booked", headers={"X-Baton-Actor": "maria"}
    )
    assert prep.status_code == 200
    assert next((i["id"], i["done"], i["done_by"]) for i in prep.json()) == (
        "slot_booked",
        True,
        "maria",
    )


def test_activation_needs_both_signatures(client: TestClient) -> None:
    created = client.post("/api/v1/contracts", json={"body": EXAMPLE.read_text()}).json()
    response = client.post(f"/api/v1/contracts/{created['version']}/activate")
    assert response.status_code == 409
    assert "needs approval by marketing and sales" in response.json()["detail"]


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("BATON_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.chdir(tmp_path)
    return CliRunner()


def test_validate_prints_every_problem_and_fails(runner: CliRunner, tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text(EXAMPLE.read_text().replace("event: page_view", "event: page_veiw", 1))

    result = runner.invoke(cli_app, ["contract", "validate", str(broken)])
    good = runner.invoke(cli_app, ["contract", "validate", str(EXAMPLE)])

    assert result.exit_code == 1
    assert "scoring.engagement[0].event: unknown event type 'page_veiw'" in result.output
    assert good.exit_code == 0 and "MQL at 60" in good.output


def test_the_whole_signing_flow_on_the_command_line(runner: CliRunner, tmp_path: Path) -> None:
    stricter = tmp_path / "stricter.yaml"
    stricter.write_text(EXAMPLE.read_text().replace("threshold: 60", "threshold: 70"))

    steps = [
        ["contract", "create", str(EXAMPLE), "--actor", "maria"],
        ["contract", "approve", "1", "--role", "marketing", "--actor", "maria"],
        ["contract", "approve", "1", "--role", "sales", "--actor", "sam"],
        ["contract", "activate", "1"],
        ["contract", "create", str(stricter)],
    ]
    for step in steps:
        result = runner.invoke(cli_app, step)
        assert result.exit_code == 0, (step, result.output)
    same_person = runner.invoke(
        cli_app, ["contract", "approve", "2", "--role", "marketing", "--actor", "sam"]
    )
    twice = runner.invoke(
        cli_app, ["contract", "approve", "2", "--role", "sales", "--actor", "sam"]
    )
    listing = runner.invoke(cli_app, ["contract", "list"])
    diff = runner.invoke(cli_app, ["contract", "diff", "1", "2"])

    assert same_person.exit_code == 0
    assert twice.exit_code == 1 and "two different approvers" in twice.output
    assert "active" in listing.output and "draft" in listing.output
    assert "threshold 60 → 70" in diff.output
