"""Teams, reps, accounts, webhooks, contracts and reports over HTTP with real
credentials (on SQLite and PostgreSQL): nothing answers without them, a rep asking
for another rep's record by id gets the same 404 as for a missing one, and a role
that may not act gets a 403 problem with the reason."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from tests.conftest import bearer, token_for

from baton.api.app import create_app
from baton.services.context import Context

PROBLEM = "application/problem+json"
ANA, BEN, SAM = "ana@lumen.example", "ben@lumen.example", "sam@lumen.example"


def ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def problem(response: Any, status: int) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    return str(response.json()["detail"])


@pytest.fixture
def admin(ctx: Context) -> Iterator[TestClient]:
    """An admin's client, with team na (manager Sam) and its reps Ana and Ben."""
    with TestClient(
        create_app(ctx), raise_server_exceptions=False, headers=bearer(token_for(ctx, "admin"))
    ) as client:
        ok(client.post("/api/v1/teams", json={"name": "na", "manager_email": SAM}), 201)
        for email in (ANA, BEN):
            ok(
                client.post("/api/v1/reps", json={"email": email, "name": email[:3], "team": "na"}),
                201,
            )
        yield client


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/teams"),
        ("POST", "/api/v1/teams"),
        ("GET", "/api/v1/reps"),
        ("GET", "/api/v1/reps/1"),
        ("PATCH", "/api/v1/reps/1"),
        ("GET", "/api/v1/accounts"),
        ("PUT", "/api/v1/accounts"),
        ("GET", "/api/v1/webhooks"),
        ("POST", "/api/v1/webhooks"),
        ("GET", "/api/v1/webhooks/1/deliveries"),
        ("GET", "/api/v1/contracts"),
        ("POST", "/api/v1/contracts/1/approve"),
        ("GET", "/api/v1/reports/funnel?from=2026-03-01&to=2026-03-02"),
        ("GET", "/api/v1/spend"),
        ("POST", "/api/v1/spend/import"),
    ],
)
def test_nothing_answers_without_credentials(admin: TestClient, method: str, path: str) -> None:
    anonymous = TestClient(admin.app, raise_server_exceptions=False)
    response = anonymous.request(method, path, json={})
    problem(response, 401)
    assert response.headers["www-authenticate"].startswith("Bearer")
    forged = anonymous.request(method, path, json={}, headers={"X-Baton-Actor": "admin"})
    assert forged.status_code == 401, "the old actor header grants nothing"


def test_a_rep_reaches_only_their_own_record(admin: TestClient, ctx: Context) -> None:
    reps = {r["email"]: r["id"] for r in ok(admin.get("/api/v1/reps"))}
    ana = bearer(token_for(ctx, "rep", rep_email=ANA))
    ben_id = reps[BEN]

    assert [r["email"] for r in ok(admin.get("/api/v1/reps", headers=ana))] == [ANA]
    missing = problem(admin.get("/api/v1/reps/999999", headers=ana), 404)
    hidden = problem(admin.get(f"/api/v1/reps/{ben_id}", headers=ana), 404)
    assert hidden.replace(str(ben_id), "N") == missing.replace("999999", "N")
    problem(admin.patch(f"/api/v1/reps/{ben_id}", json={"status": "away"}, headers=ana), 404)
    holiday = {"starts_at": "2026-03-10T00:00:00Z", "ends_at": "2026-03-12T00:00:00Z"}
    problem(admin.post(f"/api/v1/reps/{ben_id}/absences", json=holiday, headers=ana), 404)
    assert ok(admin.get(f"/api/v1/reps/{ben_id}"))["status"] == "available"

    own = f"/api/v1/reps/{reps[ANA]}"
    assert ok(admin.patch(own, json={"status": "away"}, headers=ana))["status"] == "away"
    assert "ask your manager" in problem(admin.patch(own, json={"capacity": 99}, headers=ana), 403)
    assert ok(admin.post(f"{own}/absences", json=holiday, headers=ana), 201)["absences"]
    problem(
        admin.post("/api/v1/reps", json={"email": "x@lumen.example", "name": "X"}, headers=ana), 403
    )


def test_webhooks_are_for_admins_only(admin: TestClient, ctx: Context) -> None:
    manager = bearer(token_for(ctx, "sales_manager", teams=("na",)))
    body = {"url": "https://hooks.example.com/baton", "events": ["*"]}

    for response in (
        admin.post("/api/v1/webhooks", json=body, headers=manager),
        admin.get("/api/v1/webhooks", headers=manager),
    ):
        assert "may not manage webhooks" in problem(response, 403)
    created = ok(admin.post("/api/v1/webhooks", json=body), 201)
    assert created["created_by"].endswith("(token admin test token)")
    assert "may not manage webhooks" in problem(
        admin.delete(f"/api/v1/webhooks/{created['id']}", headers=manager), 403
    )
    assert ok(admin.delete(f"/api/v1/webhooks/{created['id']}"))["active"] is False
