"""The learned model in the score, over HTTP: a contract naming a model that does not
exist is a 422 on ``scoring.predicted.model``; one whose model is not signed by both
teams is a 409 on activation; once active, the lead's score carries the probability,
its top reasons and a "predicted" hit, and so does the handoff packet; the lead page,
the packet page and the contract page say it in words. On SQLite and PostgreSQL."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from sqlalchemy import insert, select, update
from tests.conftest import bearer, token_for
from tests.e2e.test_web_access import sign_in
from tests.model_helpers import store_tiny_model

from baton.api.app import create_app
from baton.services.context import Context
from baton.store.tables import lead_model_approvals, lead_models

LEADS = "/api/v1/leads"
MARIA, SAM, OPS = "maria@lumen.example", "sam@lumen.example", "ops@lumen.example"


def text(page: str) -> str:
    """A page's words: tags out, entities decoded, spaces folded."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", "", page)).split())


def ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def contract(model: int) -> str:
    return yaml.safe_dump(
        {
            "schema_version": 1,
            "name": "Learned handoff",
            "scoring": {
                "fit": [{"name": "US", "when": {"field": "country", "equals": "US"}, "points": 10}],
                "predicted": {"model": model, "weight": 80, "name": "Won-likelihood"},
            },
            "mql": {"threshold": 40, "min_probability": 0.55, "hand_raise": ["demo_request"]},
        },
        sort_keys=False,
    )


def sign_model(ctx: Context, version: int, *sides: str) -> None:
    with ctx.write() as connection:
        model_id = connection.execute(
            select(lead_models.c.id).where(lead_models.c.version == version)
        ).scalar_one()
        for side in sides:
            connection.execute(
                insert(lead_model_approvals).values(
                    model_id=model_id, role=side, approver=side, approved_at=ctx.clock.now()
                )
            )
        connection.execute(
            update(lead_models).where(lead_models.c.id == model_id).values(status="approved")
        )


@pytest.fixture
def api(ctx: Context) -> Iterator[tuple[TestClient, dict[str, str], dict[str, str]]]:
    """The API as Maria (marketing), with Sam's (sales manager) and an admin's headers."""
    maria = bearer(token_for(ctx, "marketing", email=MARIA))
    sam = bearer(token_for(ctx, "sales_manager", email=SAM))
    admin = bearer(token_for(ctx, "admin", email=OPS))
    with TestClient(
        create_app(ctx),
        raise_server_exceptions=False,
        headers=maria,
        base_url="https://testserver",
        follow_redirects=False,
    ) as client:
        yield client, sam, admin


def test_the_score_and_the_packet_carry_the_models_probability_and_reasons(
    ctx: Context, api: tuple[TestClient, dict[str, str], dict[str, str]]
) -> None:
    client, sam, admin = api
    refused = client.post("/api/v1/contracts", json={"body": contract(7)})
    assert refused.status_code == 422, refused.text
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert [(e["loc"], e["message"]) for e in refused.json()["errors"]] == [
        ("scoring.predicted.model", "model version 7 does not exist; see baton model list")
    ]

    model = store_tiny_model(ctx, status="draft")
    version = ok(client.post("/api/v1/contracts", json={"body": contract(model)}), 201)["version"]
    ok(client.post(f"/api/v1/contracts/{version}/approve", json={"role": "marketing"}))
    ok(client.post(f"/api/v1/contracts/{version}/approve", json={"role": "sales"}, headers=sam))
    unsigned = client.post(f"/api/v1/contracts/{version}/activate", headers=admin)
    assert unsigned.status_code == 409, unsigned.text
    assert "not signed by marketing and sales" in unsigned.json()["detail"]
    sign_model(ctx, model, "marketing", "sales")
    ok(client.post(f"/api/v1/contracts/{version}/activate", headers=admin))

    hot = ok(
        client.post(
            LEADS,
            json={
                "email": "dana@northwind.example.com",
                "source": "webinar",
                "title": "CEO",
                "country": "US",
            },
        ),
        201,
    )["lead"]
    cold = ok(
        client.post(
            LEADS,
            json={"email": "bo@gmail.com", "source": "ads", "title": "Analyst", "country": "US"},
        ),
        201,
    )["lead"]

    score = ok(client.get(f"{LEADS}/{hot['id']}/score"))
    assert score["probability"] > 0.55
    predicted = [h for h in score["explanation"] if h["section"] == "predicted"]
    assert len(predicted) == 1
    assert predicted[0]["label"].startswith("Won-likelihood (")
    assert predicted[0]["points"] == pytest.approx(round(80 * score["probability"], 2))
    assert score["total"] == pytest.approx(sum(h["points"] for h in score["explanation"]))
    assert 1 <= len(score["reasons"]) <= 3
    assert set(score["reasons"][0]) == {"feature", "label", "effect"}
    assert score["model_problem"] is None

    cold_score = ok(client.get(f"{LEADS}/{cold['id']}/score"))
    assert cold_score["probability"] < 0.55
    assert "probability" in [g["kind"] for g in cold_score["mql_gaps"]]

    handoffs = ok(client.get("/api/v1/handoffs", params={"lead_id": hot["id"]}))
    assert len(handoffs) == 1, "the likely lead went to sales on score"
    packet = ok(client.get(f"/api/v1/handoffs/{handoffs[0]['id']}/packet", headers=sam))
    assert packet["score"]["probability"] == pytest.approx(score["probability"])
    assert packet["score"]["reasons"] == score["reasons"]
    assert "predicted" in [h["section"] for h in packet["score"]["hits"]]

    # The pages say it in words.
    client.headers.pop("Authorization")
    sign_in(client, MARIA)
    page = text(client.get(f"/leads/{hot['id']}").text)
    assert "Predicted by the model" in page
    assert f"{score['probability'] * 100:.0f} %" in page
    assert score["reasons"][0]["label"] in page
    rules = text(client.get(f"/contract/{version}").text)
    assert f"learned model v{model}" in rules
    assert "adds up to 80 points" in rules
    assert "a probability of at least 55 %" in rules
    sign_in(client, SAM)
    packet_page = text(client.get(f"/handoffs/{handoffs[0]['id']}").text)
    assert "Predicted by the model" in packet_page
