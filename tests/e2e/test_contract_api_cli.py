"""The contract over HTTP and on the command line, as marketing ops would use it: a
marketing user drafts and signs for marketing, a sales manager signs for sales, an
admin activates; over HTTP every caller authenticates with an API token."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from tests.conftest import bearer, token_for
from typer.testing import CliRunner

from baton.api.app import create_app
from baton.cli import app as cli_app
from baton.services.context import Context

EXAMPLE = Path(__file__).parents[2] / "contracts" / "example.yaml"


MARIA, SAM = "maria@lumen.example", "sam@lumen.example"


@pytest.fixture
def client(sqlite_ctx: Context) -> TestClient:
    """An admin's client; :func:`signers` gives marketing's and sales' headers."""
    return TestClient(create_app(sqlite_ctx), headers=bearer(token_for(sqlite_ctx, "admin")))


@pytest.fixture
def signers(sqlite_ctx: Context) -> dict[str, dict[str, str]]:
    """Headers of Maria (marketing) and Sam (sales manager), by the side they sign."""
    return {
        "marketing": bearer(token_for(sqlite_ctx, "marketing", email=MARIA)),
        "sales": bearer(token_for(sqlite_ctx, "sales_manager", email=SAM)),
    }


def signed(client: TestClient, signers: dict[str, dict[str, str]], body: str) -> int:
    created = client.post("/api/v1/contracts", json={"body": body}, headers=signers["marketing"])
    assert created.status_code == 201, created.text
    assert created.json()["created_by"] == f"{MARIA} (token marketing test token)"
    version = created.json()["version"]
    for role, headers in signers.items():
        response = client.post(
            f"/api/v1/contracts/{version}/approve", json={"role": role}, headers=headers
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


def test_sign_activate_and_read_a_score_over_http(
    client: TestClient, signers: dict[str, dict[str, str]], sqlite_ctx: Context
) -> None:
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
    version = signed(client, signers, EXAMPLE.read_text())
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
        f"/api/v1/leads/{lead['id']}/prep/use_case_noted", headers=signers["marketing"]
    )
    assert prep.status_code == 200
    assert next((i["id"], i["done"], i["done_by"]) for i in prep.json()) == (
        "use_case_noted",
        True,
        f"{MARIA} (token marketing test token)",
    )


def test_activation_needs_both_signatures(client: TestClient) -> None:
    created = client.post("/api/v1/contracts", json={"body": EXAMPLE.read_text()}).json()
    response = client.post(f"/api/v1/contracts/{created['version']}/activate")
    assert response.status_code == 409
    assert "needs approval by marketing and sales" in response.json()["detail"]


def test_signing_is_for_the_two_sides_and_activation_for_an_admin(
    client: TestClient, signers: dict[str, dict[str, str]], sqlite_ctx: Context
) -> None:
    created = client.post("/api/v1/contracts", json={"body": EXAMPLE.read_text()})
    assert created.status_code == 201, created.text
    version = created.json()["version"]
    approve, activate = (
        f"/api/v1/contracts/{version}/approve",
        f"/api/v1/contracts/{version}/activate",
    )

    anonymous = TestClient(client.app).post(approve, json={"role": "sales"})
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"].startswith("Bearer")
    refusals = [
        (client.post(approve, json={"role": "marketing"}), "the admin role may not sign"),
        (
            client.post(approve, json={"role": "sales"}, headers=signers["marketing"]),
            "only a sales_manager user signs for sales",
        ),
        (client.post(activate, headers=signers["marketing"]), "may not activate"),
    ]
    for response, reason in refusals:
        assert response.status_code == 403, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert reason in response.json()["detail"]

    for role, headers in signers.items():
        assert client.post(approve, json={"role": role}, headers=headers).status_code == 200
    assert client.post(activate, headers=signers["sales"]).status_code == 403
    assert client.post(activate).status_code == 200
    listed = client.get("/api/v1/contracts", headers=signers["sales"]).json()
    assert [(v["status"], v["approvals"]) for v in listed] == [
        (
            "active",
            {
                "marketing": f"{MARIA} (token marketing test token)",
                "sales": f"{SAM} (token sales_manager test token)",
            },
        )
    ]


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
    # Readable at the runner's 80 columns: nothing cut, whole dates.
    assert "…" not in listing.output and max(map(len, listing.output.splitlines())) <= 80
    assert re.search(r"\b2 +draft +.*\d{4}-\d{2}-\d{2}", listing.output), listing.output
    assert "threshold 60 → 70" in diff.output


def test_the_contract_json_carries_its_raci_and_a_warning_without_one(
    client: TestClient, signers: dict[str, dict[str, str]]
) -> None:
    with_raci = signed(client, signers, EXAMPLE.read_text())
    without = EXAMPLE.read_text().split("\n# Who does each step of the handoff (RACI)")[0]
    created = client.post("/api/v1/contracts", json={"body": without}, headers=signers["marketing"])
    assert created.status_code == 201, created.text

    agreed = client.get(f"/api/v1/contracts/{with_raci}").json()
    assert agreed["warnings"] == []
    assert agreed["raci"]["routing"] == {
        "responsible": ["revops"],
        "accountable": "sales_manager",
        "consulted": ["marketing"],
        "informed": ["rep"],
    }
    assert agreed["raci"]["teams"]["revops"].startswith("Revenue operations")
    assert created.json()["raci"] is None
    assert created.json()["warnings"][0].startswith("raci: not agreed yet")
    diff = client.get(
        f"/api/v1/contracts/{created.json()['version']}/diff", params={"against": with_raci}
    ).json()
    assert {"section": "raci", "text": "RACI removed (now not agreed)"} in diff

    broken = EXAMPLE.read_text().replace(
        "accountable: revenue_lead, consulted", "accountable: revenue_led, consulted", 1
    )
    refused = client.post("/api/v1/contracts", json={"body": broken}, headers=signers["marketing"])
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["loc"] == "raci.mql.accountable"
    assert "(did you mean 'revenue_lead'?)" in refused.json()["errors"][0]["message"]
