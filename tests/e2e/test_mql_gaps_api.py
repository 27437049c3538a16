"""Why is this lead not an MQL yet? Over HTTP, as marketing asks it: the score of a lead
that reached the threshold names the required prep item still open; once ticked, the
lead is handed off and nothing stands in the way any more. A lead handed off by a demo
request carries what it still misses into the handoff packet. On SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from tests.conftest import bearer, token_for

from baton.api.app import create_app
from baton.services.context import Context

EXAMPLE = Path(__file__).parents[2] / "contracts" / "example.yaml"
LEADS = "/api/v1/leads"
USE_CASE = "Use case noted (what they want to analyse, and for whom)"


def ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


@pytest.fixture
def marketing(ctx: Context) -> Iterator[TestClient]:
    """The API as Maria (marketing), with the example contract signed and active."""
    maria = bearer(token_for(ctx, "marketing", email="maria@lumen.example"))
    sam = bearer(token_for(ctx, "sales_manager", email="sam@lumen.example"))
    admin = bearer(token_for(ctx, "admin", email="ops@lumen.example"))
    with TestClient(create_app(ctx), raise_server_exceptions=False, headers=maria) as client:
        version = ok(client.post("/api/v1/contracts", json={"body": EXAMPLE.read_text()}), 201)[
            "version"
        ]
        ok(client.post(f"/api/v1/contracts/{version}/approve", json={"role": "marketing"}))
        ok(client.post(f"/api/v1/contracts/{version}/approve", json={"role": "sales"}, headers=sam))
        ok(client.post(f"/api/v1/contracts/{version}/activate", headers=admin))
        yield client


def a_fit_lead(api: TestClient, email: str) -> int:
    """A VP at a 450-person US company with a phone: fit 50 (grade A)."""
    lead = ok(
        api.post(
            LEADS,
            json={
                "email": email,
                "first_name": "Dana",
                "company": "Northwind Traders",
                "title": "VP Operations",
                "country": "US",
                "phone": "+1 415 555 0134",
                "attributes": {"employees": 450},
            },
        ),
        201,
    )
    return int(lead["lead"]["id"])


def event(api: TestClient, ctx: Context, email: str, kind: str, **properties: Any) -> None:
    ok(
        api.post(
            "/api/v1/activities",
            json={
                "email": email,
                "type": kind,
                "occurred_at": ctx.clock.now().isoformat(),
                "properties": properties,
            },
        ),
        201,
    )


def test_a_lead_at_the_threshold_without_a_required_prep_item_is_told_which(
    marketing: TestClient, ctx: Context
) -> None:
    email = "dana@northwind.example.com"
    lead_id = a_fit_lead(marketing, email)
    event(marketing, ctx, email, "page_view", url="/pricing")  # +10: exactly 60
    ok(marketing.put(f"{LEADS}/{lead_id}/prep/company_size_confirmed"))

    score = ok(marketing.get(f"{LEADS}/{lead_id}/score"))

    assert (score["total"], score["threshold"], score["grade"]) == (60, 60, "A")
    assert score["mql_gaps"] == [
        {"kind": "prep", "item": "use_case_noted", "label": USE_CASE, "points": None, "until": None}
    ]
    assert ok(marketing.get(f"{LEADS}/{lead_id}"))["stage"] == "lead"

    ok(marketing.put(f"{LEADS}/{lead_id}/prep/use_case_noted"))

    assert ok(marketing.get(f"{LEADS}/{lead_id}"))["stage"] == "mql"
    assert ok(marketing.get(f"{LEADS}/{lead_id}/score"))["mql_gaps"] == []


def test_points_and_fields_missing_are_named_too(marketing: TestClient, ctx: Context) -> None:
    lead = ok(
        marketing.post(
            LEADS, json={"email": "kim@gmail.com", "company": "Kim Consulting", "title": "Student"}
        ),
        201,
    )
    lead_id = lead["lead"]["id"]

    gaps = ok(marketing.get(f"{LEADS}/{lead_id}/score"))["mql_gaps"]

    assert [(g["kind"], g["item"]) for g in gaps] == [
        ("field", "country"),
        ("prep", "use_case_noted"),
        ("prep", "company_size_confirmed"),
        ("grade", "min_grade"),
        ("score", "threshold"),
    ]
    assert gaps[-1]["points"] == 100  # fit -40 (student, free mail): 100 short of 60


def test_the_packet_of_a_hand_raise_says_what_the_lead_still_misses(
    marketing: TestClient, ctx: Context
) -> None:
    email = "lee@northwind.example.com"
    lead_id = a_fit_lead(marketing, email)
    event(marketing, ctx, email, "demo_request", form="book-a-demo")  # handed off at once
    admin = bearer(token_for(ctx, "admin", email="lead.ops@lumen.example"))
    (handoff,) = ok(marketing.get("/api/v1/handoffs", params={"lead_id": lead_id}, headers=admin))

    packet = ok(marketing.get(f"/api/v1/handoffs/{handoff['id']}/packet", headers=admin))

    assert [(g["kind"], g["item"]) for g in packet["mql_gaps"]] == [
        ("prep", "use_case_noted"),
        ("prep", "company_size_confirmed"),
        ("score", "threshold"),
    ]


def test_the_score_answer_is_documented_with_its_gaps(marketing: TestClient) -> None:
    schema = ok(marketing.get("/openapi.json"))["components"]["schemas"]

    score = schema["LeadScorePublic"]
    assert "mql_gaps" in score["required"]
    assert score["examples"][0]["mql_gaps"][0]["kind"] == "prep"
    assert set(schema["MqlGapPublic"]["properties"]) == {"kind", "item", "label", "points", "until"}
    assert "mql_gaps" in schema["PacketPublic"]["properties"]
