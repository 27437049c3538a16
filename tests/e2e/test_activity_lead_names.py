"""An activity that names its lead twice, by ``lead_id`` and by ``email``, must name
one lead: it is stored when both names agree (a merged lead's id counts as its
survivor's), and refused on ``lead_id`` when they differ (422 for one event, the row's
error in a batch), with nothing stored and no lead created for the email."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from tests.conftest import bearer, token_for

from baton.api.app import create_app
from baton.domain.access import operator
from baton.domain.clock import ManualClock
from baton.services.context import Context
from baton.services.merge import merge_leads

LEADS = "/api/v1/leads"
ACTIVITIES = "/api/v1/activities"


@pytest.fixture
def api(ctx: Context) -> Iterator[TestClient]:
    with TestClient(
        create_app(ctx),
        raise_server_exceptions=False,
        headers=bearer(token_for(ctx, "admin", email="admin@lumen.example")),
    ) as client:
        yield client


def lead(api: TestClient, email: str) -> int:
    response = api.post(LEADS, json={"email": email})
    assert response.status_code == 201, response.text
    return int(response.json()["lead"]["id"])


def activity_count(api: TestClient, lead_id: int) -> int:
    response = api.get(f"{LEADS}/{lead_id}")
    assert response.status_code == 200, response.text
    return int(response.json()["activity_count"])


def emails(api: TestClient) -> list[str]:
    response = api.get(LEADS, params={"limit": 100})
    assert response.status_code == 200, response.text
    return sorted(item["email"] for item in response.json()["items"])


def event(clock: ManualClock, **names: Any) -> dict[str, Any]:
    return {"type": "page_view", "occurred_at": clock.now().isoformat()} | names


def test_one_event_naming_two_different_leads_is_refused_on_lead_id(
    api: TestClient, clock: ManualClock
) -> None:
    dana, sam = lead(api, "dana@northwind.com"), lead(api, "sam@acme.io")
    before = (activity_count(api, dana), activity_count(api, sam))
    response = api.post(ACTIVITIES, json=event(clock, email="dana@northwind.com", lead_id=sam))
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    [problem] = response.json()["errors"]
    assert problem["loc"] == "lead_id"
    assert str(sam) in problem["message"] and "dana@northwind.com" in problem["message"]
    assert (activity_count(api, dana), activity_count(api, sam)) == before


def test_one_event_naming_one_lead_twice_is_stored_on_it(
    api: TestClient, clock: ManualClock
) -> None:
    dana = lead(api, "dana@northwind.com")
    before = activity_count(api, dana)
    response = api.post(ACTIVITIES, json=event(clock, email="Dana@NorthWind.com", lead_id=dana))
    assert response.status_code == 201, response.text
    assert response.json()["lead_id"] == dana
    assert activity_count(api, dana) == before + 1


def test_an_unknown_email_beside_a_lead_id_creates_no_lead(
    api: TestClient, clock: ManualClock
) -> None:
    dana = lead(api, "dana@northwind.com")
    before = activity_count(api, dana)
    response = api.post(ACTIVITIES, json=event(clock, email="new@acme.io", lead_id=dana))
    assert response.status_code == 422, response.text
    assert [p["loc"] for p in response.json()["errors"]] == ["lead_id"]
    assert emails(api) == ["dana@northwind.com"]
    assert activity_count(api, dana) == before


def test_an_unknown_lead_id_beside_an_email_is_not_found(
    api: TestClient, clock: ManualClock
) -> None:
    lead(api, "dana@northwind.com")
    body = event(clock, email="dana@northwind.com", lead_id=987_654_321)
    assert api.post(ACTIVITIES, json=body).status_code == 404


def test_a_merged_leads_id_agrees_with_its_survivors_email(
    api: TestClient, ctx: Context, clock: ManualClock
) -> None:
    survivor, absorbed = lead(api, "dana@northwind.com"), lead(api, "dana.r@northwind.com")
    merge_leads(ctx, survivor, absorbed, actor=operator())
    response = api.post(ACTIVITIES, json=event(clock, email="dana@northwind.com", lead_id=absorbed))
    assert response.status_code == 201, response.text
    assert response.json()["lead_id"] == survivor


def test_a_batch_refuses_only_the_rows_whose_names_disagree(
    api: TestClient, clock: ManualClock
) -> None:
    dana, sam = lead(api, "dana@northwind.com"), lead(api, "sam@acme.io")
    before = (activity_count(api, dana), activity_count(api, sam))
    rows = [
        event(clock, email="dana@northwind.com", lead_id=dana, idempotency_key="a"),
        event(clock, email="dana@northwind.com", lead_id=sam, idempotency_key="b"),
        event(clock, email="sam@acme.io", idempotency_key="c"),
        event(clock, email="new@acme.io", lead_id=sam, idempotency_key="d"),
        event(clock, email="new@acme.io", idempotency_key="e"),
    ]
    response = api.post(f"{ACTIVITIES}/batch", json={"activities": rows})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["received"], body["stored"], body["leads_created"]) == (5, 3, 1)
    assert [(e["index"], e["field"]) for e in body["errors"]] == [(1, "lead_id"), (3, "lead_id")]
    assert (activity_count(api, dana), activity_count(api, sam)) == (before[0] + 1, before[1] + 1)
    assert emails(api) == ["dana@northwind.com", "new@acme.io", "sam@acme.io"]
