"""Handoffs over HTTP as sales and sales ops use them: teams and reps, a demo request
handed to an available rep, the packet, verdicts with the actor rule, the unassigned
queue, and webhooks. Every test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from tests.notify_servers import http_receiver, smtp_server

from baton.api.app import create_app
from baton.notify.email import SmtpConfig
from baton.services.context import Context
from baton.services.worker import assign_queued, tick

EXAMPLE = Path(__file__).parents[2] / "contracts" / "example.yaml"
PROBLEM = "application/problem+json"
HANDOFFS = "/api/v1/handoffs"
ANA, BEN, SAM = "ana@lumen.example", "ben@lumen.example", "sam@lumen.example"


@pytest.fixture
def api(ctx: Context) -> Iterator[TestClient]:
    with TestClient(create_app(ctx), raise_server_exceptions=False) as client:
        yield client


def by(actor: str) -> dict[str, str]:
    return {"X-Baton-Actor": actor}


def ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body = dict(response.json())
    assert body["status"] == status and body["title"] and body["detail"]
    return body


def activate_example_contract(api: TestClient) -> None:
    version = ok(
        api.post("/api/v1/contracts", json={"body": EXAMPLE.read_text()}, headers=by("maria")),
        201,
    )["version"]
    for role, person in (("marketing", "maria"), ("sales", "sam")):
        ok(
            api.post(
                f"/api/v1/contracts/{version}/approve", json={"role": role}, headers=by(person)
            )
        )
    ok(api.post(f"/api/v1/contracts/{version}/activate"))


@pytest.fixture
def floor(api: TestClient) -> TestClient:
    """The example contract active; team ``na`` (where US leads go) managed by Sam,
    with Ana in it, working Monday to Friday 09:00-17:00 UTC (the clock starts on a
    Monday at 09:00)."""
    activate_example_contract(api)
    team = ok(api.post("/api/v1/teams", json={"name": "na", "manager_email": SAM}), 201)
    assert team == {"id": team["id"], "name": "na", "manager_email": SAM, "reps": 0}
    rep = ok(api.post("/api/v1/reps", json={"email": ANA, "name": "Ana Silva", "team": "na"}), 201)
    assert (rep["team"], rep["timezone"], rep["status"]) == ("na", "UTC", "available")
    assert rep["working_hours"]["mon"] == ["09:00-17:00"]
    assert rep["working_hours"]["sat"] == []
    return api


def hand_raise(api: TestClient, ctx: Context, email: str = "dana@northwind.example.com") -> int:
    """A US decision-maker asks for a demo: an MQL at once (hand-raise)."""
    lead = ok(
        api.post(
            "/api/v1/leads",
            json={
                "email": email,
                "first_name": "Dana",
                "title": "VP Operations",
                "company": "Northwind & Co",
                "country": "US",
                "attributes": {"employees": 420},
            },
        ),
        201,
    )["lead"]
    ok(
        api.post(
            "/api/v1/activities",
            json={
                "email": email,
                "type": "demo_request",
                "occurred_at": ctx.clock.now().isoformat(),
            },
        ),
        201,
    )
    return int(lead["id"])


def stage(api: TestClient, lead_id: int) -> str:
    return str(ok(api.get(f"/api/v1/leads/{lead_id}"))["stage"])


def test_a_demo_request_goes_to_an_available_rep_with_its_packet(
    floor: TestClient, ctx: Context
) -> None:
    lead_id = hand_raise(floor, ctx)

    [handoff] = ok(floor.get(HANDOFFS))
    assert (handoff["lead_id"], handoff["status"], handoff["rep_email"]) == (
        lead_id,
        "assigned",
        ANA,
    )
    assert handoff["routing"]["rule"] == "Everyone else"
    assert handoff["accept_due_at"] == "2026-03-02T09:30:00Z"
    assert ok(floor.get(HANDOFFS, params={"rep": ANA}))[0]["id"] == handoff["id"]
    assert ok(floor.get(HANDOFFS, params={"status": ["queued", "won"]})) == []
    assert ok(floor.get(HANDOFFS, params={"lead_id": lead_id}))[0]["id"] == handoff["id"]
    assert ok(floor.get(f"{HANDOFFS}/{handoff['id']}")) == handoff
    assert ok(floor.get(f"{HANDOFFS}/queue")) == []
    assert [e["kind"] for e in ok(floor.get(f"{HANDOFFS}/{handoff['id']}/events"))] == ["assigned"]
    assert stage(floor, lead_id) == "mql"

    packet = ok(floor.get(f"{HANDOFFS}/{handoff['id']}/packet"))
    assert packet["handoff"]["id"] == handoff["id"]
    assert packet["lead"]["email"] == "dana@northwind.example.com"
    score = packet["score"]
    assert {h["label"] for h in score["hits"]} >= {"Decision-maker title", "Target market"}
    assert sum(h["points"] for h in score["hits"]) == pytest.approx(score["total"])
    reasons = [i["data"].get("reason") for i in packet["timeline"] if i["kind"] == "transition"]
    assert "hand-raise: demo_request" in reasons
    assert {i["id"] for i in packet["prep"]} == {"slot_booked", "knows_address", "brings_computer"}

    text = floor.get(f"{HANDOFFS}/{handoff['id']}/packet", params={"format": "text"})
    assert text.status_code == 200
    assert text.headers["content-type"].startswith("text/plain")
    assert "Dana (Northwind & Co)" in text.text
    assert "+20  Decision-maker title" in text.text
    assert "Accept by:      2026-03-02 09:30 UTC" in text.text

    html = floor.get(f"{HANDOFFS}/{handoff['id']}/packet", params={"format": "html"})
    assert html.headers["content-type"].startswith("text/html")
    assert "Northwind &amp; Co" in html.text and "Northwind & Co" not in html.text

    assert problem(floor.get(f"{HANDOFFS}/999999/packet"), 404)["detail"] == (
        "handoff 999999 does not exist"
    )
    bad = problem(floor.get(f"{HANDOFFS}/{handoff['id']}/packet", params={"format": "pdf"}), 422)
    assert bad["errors"][0]["loc"] == "format"


def test_verdicts_move_the_lead_and_only_the_rep_or_manager_may_give_them(
    floor: TestClient, ctx: Context
) -> None:
    lead_id = hand_raise(floor, ctx)
    [handoff] = ok(floor.get(HANDOFFS))
    url = f"{HANDOFFS}/{handoff['id']}"

    stranger = problem(floor.post(f"{url}/accept", headers=by("eve@lumen.example")), 403)
    assert stranger["type"] == "/problems/forbidden"
    assert ANA in stranger["detail"] and SAM in stranger["detail"]
    assert "eve@lumen.example" in stranger["detail"]
    assert problem(floor.post(f"{url}/accept"), 403)  # no actor header at all
    assert stage(floor, lead_id) == "mql"

    accepted = ok(floor.post(f"{url}/accept", headers=by("Ana@Lumen.example")))
    assert accepted["status"] == "accepted" and accepted["accepted_at"]
    assert stage(floor, lead_id) == "sal"
    again = problem(floor.post(f"{url}/accept", headers=by(ANA)), 409)
    assert "it is accepted" in again["detail"]

    unknown = problem(floor.post(f"{url}/reject", json={"code": "meh"}, headers=by(ANA)), 422)
    assert unknown["detail"] == "unknown rejection reason 'meh'"
    [code_error] = unknown["errors"]
    assert code_error["loc"] == "code"
    for known in ("out_of_area", "no_budget", "not_ready", "wrong_contact", "junk"):
        assert known in code_error["message"]
    bad_touch = problem(floor.post(f"{url}/touches", json={"kind": "fax"}, headers=by(ANA)), 422)
    assert bad_touch["errors"][0]["loc"] == "kind"

    touched = ok(
        floor.post(f"{url}/touches", json={"kind": "call", "note": "intro call"}, headers=by(ANA)),
        201,
    )
    assert touched["first_touch_at"] is not None

    missing = problem(
        floor.post(f"{url}/qualify", json={"fields": {"budget": "40k"}}, headers=by(ANA)), 422
    )
    assert [e["loc"] for e in missing["errors"]] == [
        "fields.authority",
        "fields.need",
        "fields.timing",
    ]
    assert stage(floor, lead_id) == "sal"
    fields = {"budget": "40k", "authority": "VP Ops", "need": "dashboards", "timing": "Q3"}
    qualified = ok(floor.post(f"{url}/qualify", json={"fields": fields}, headers=by(ANA)))
    assert (qualified["status"], qualified["qualification"]) == ("qualified", fields)
    assert stage(floor, lead_id) == "sql"

    won = ok(floor.post(f"{url}/won", json={"amount": 52000, "note": "3 years"}, headers=by(SAM)))
    assert (won["status"], won["outcome"], won["deal_value"]) == ("won", "won", 52000)
    assert stage(floor, lead_id) == "customer"
    events = ok(floor.get(f"{url}/events"))
    assert [(e["kind"], e["actor"]) for e in events] == [
        ("assigned", "api"),
        ("accepted", "Ana@Lumen.example"),  # as the header spelled it
        ("touch", ANA),
        ("qualified", ANA),
        ("won", SAM),
    ]
    assert events[2]["detail"]["note"] == "intro call"
    assert [
        {k: v for k, v in a.items() if k != "id"} for a in ok(floor.get("/api/v1/accounts"))
    ] == [{"domain": "northwind.example.com", "name": "Northwind & Co", "owner_email": ANA}]


def test_a_rejection_recycles_the_lead_and_a_lost_deal_needs_a_reason(
    floor: TestClient, ctx: Context
) -> None:
    first = hand_raise(floor, ctx)
    second = hand_raise(floor, ctx, email="lee@fabrikam.example.com")
    handoffs = {h["lead_id"]: h["id"] for h in ok(floor.get(HANDOFFS))}

    rejected = ok(
        floor.post(
            f"{HANDOFFS}/{handoffs[first]}/reject",
            json={"code": "not_ready", "note": "budget next year"},
            headers=by(ANA),
        )
    )
    assert (rejected["status"], rejected["rejection_code"]) == ("rejected", "not_ready")
    assert rejected["marketing_credit"] is True
    assert stage(floor, first) == "nurture"

    url = f"{HANDOFFS}/{handoffs[second]}"
    ok(floor.post(f"{url}/accept", headers=by(ANA)))
    assert problem(floor.post(f"{url}/lost", json={"reason": ""}, headers=by(ANA)), 422)
    lost = ok(floor.post(f"{url}/lost", json={"reason": "chose a competitor"}, headers=by(ANA)))
    assert lost["status"] == "lost"
    assert stage(floor, second) == "lost"


def test_only_the_manager_reassigns_and_gets_the_new_handoff(
    floor: TestClient, ctx: Context
) -> None:
    ok(floor.post("/api/v1/reps", json={"email": BEN, "name": "Ben Okafor", "team": "na"}), 201)
    hand_raise(floor, ctx)
    [handoff] = ok(floor.get(HANDOFFS))
    owner = handoff["rep_email"]
    other = BEN if owner == ANA else ANA
    url = f"{HANDOFFS}/{handoff['id']}/reassign"

    refused = problem(floor.post(url, json={"to": other}, headers=by(owner)), 403)
    assert "manager" in refused["detail"]
    new = ok(floor.post(url, json={"to": other}, headers=by(SAM)), 201)

    assert (new["rep_email"], new["status"], new["reassignments"]) == (other, "assigned", 1)
    assert new["chain_id"] == handoff["id"]
    assert ok(floor.get(f"{HANDOFFS}/{handoff['id']}"))["status"] == "reassigned"
    assert [h["id"] for h in ok(floor.get(HANDOFFS, params={"status": "assigned"}))] == [new["id"]]


def test_with_every_rep_away_the_handoff_waits_in_the_queue(
    floor: TestClient, ctx: Context
) -> None:
    ben = ok(floor.post("/api/v1/reps", json={"email": BEN, "name": "Ben", "team": "na"}), 201)
    ana = next(r for r in ok(floor.get("/api/v1/reps", params={"team": "na"})) if r["email"] == ANA)
    away = ok(floor.patch(f"/api/v1/reps/{ana['id']}", json={"status": "away"}))
    assert away["status"] == "away"
    absent = ok(
        floor.post(
            f"/api/v1/reps/{ben['id']}/absences",
            json={
                "starts_at": "2026-03-02T00:00:00Z",
                "ends_at": "2026-03-07T00:00:00Z",
                "note": "conference",
            },
        ),
        201,
    )
    [absence] = absent["absences"]
    assert absence["note"] == "conference"

    lead_id = hand_raise(floor, ctx)

    [queued] = ok(floor.get(f"{HANDOFFS}/queue"))
    assert (queued["lead_id"], queued["status"], queued["rep_id"]) == (lead_id, "queued", None)
    assert "team na" in queued["routing"]["reason"]
    assert ok(floor.get(HANDOFFS, params={"status": "queued"})) == [queued]
    assert (
        "it is queued"
        in problem(floor.post(f"{HANDOFFS}/{queued['id']}/accept", headers=by(ANA)), 409)["detail"]
    )

    ok(floor.delete(f"/api/v1/reps/{ben['id']}/absences/{absence['id']}"))
    problem(floor.delete(f"/api/v1/reps/{ben['id']}/absences/{absence['id']}"), 404)
    assert assign_queued(ctx) == 1
    assert ok(floor.get(f"{HANDOFFS}/queue")) == []
    assert ok(floor.get(f"{HANDOFFS}/{queued['id']}"))["rep_email"] == BEN


def test_rep_input_errors_name_each_field(floor: TestClient) -> None:
    bad = problem(
        floor.post(
            "/api/v1/reps",
            json={
                "email": "not-an-email",
                "name": "Bad",
                "timezone": "Mars/Olympus",
                "working_hours": {"mon": ["9-5"]},
                "countries": ["USA"],
                "capacity": -1,
                "colour": "blue",
            },
        ),
        422,
    )
    errors = {e["loc"]: e["message"] for e in bad["errors"]}
    assert set(errors) == {"email", "timezone", "working_hours", "countries", "capacity", "colour"}
    assert "unknown time zone 'Mars/Olympus'" in errors["timezone"]
    assert "'9-5' is not an 'HH:MM-HH:MM' interval" in errors["working_hours"]
    assert errors["colour"] == "unknown field"

    overlapping = problem(
        floor.post(
            "/api/v1/reps",
            json={
                "email": BEN,
                "name": "Ben",
                "working_hours": {"tue": ["09:00-13:00", "12:00-17:00"]},
            },
        ),
        422,
    )
    assert overlapping["errors"][0]["loc"] == "working_hours"

    assert (
        "team 'nowhere'"
        in problem(
            floor.post("/api/v1/reps", json={"email": BEN, "name": "Ben", "team": "nowhere"}), 404
        )["detail"]
    )
    assert problem(floor.post("/api/v1/reps", json={"email": ANA, "name": "Ana again"}), 409)
    assert problem(floor.post("/api/v1/teams", json={"name": "na"}), 409)

    [ana] = ok(floor.get("/api/v1/reps"))
    cleared = problem(floor.patch(f"/api/v1/reps/{ana['id']}", json={"timezone": None}), 422)
    assert cleared["errors"][0]["loc"] == "timezone"
    late = problem(
        floor.post(
            f"/api/v1/reps/{ana['id']}/absences",
            json={"starts_at": "2026-03-09T00:00:00Z", "ends_at": "2026-03-02T00:00:00Z"},
        ),
        422,
    )
    assert "ends_at must be after starts_at" in late["errors"][0]["message"]
    assert ok(floor.get(f"/api/v1/reps/{ana['id']}")) == ana
    assert problem(floor.get("/api/v1/reps/999999"), 404)

    moved = ok(
        floor.patch(
            f"/api/v1/reps/{ana['id']}",
            json={"timezone": "Europe/Berlin", "working_hours": {"mon": ["08:00-12:00"]}},
        )
    )
    assert moved["timezone"] == "Europe/Berlin"
    assert moved["working_hours"]["mon"] == ["08:00-12:00"]
    assert moved["working_hours"]["tue"] == []
    assert moved["team"] == "na"


def test_webhooks_are_created_listed_delivered_and_disabled(
    floor: TestClient, ctx: Context
) -> None:
    bad = problem(
        floor.post(
            "/api/v1/webhooks",
            json={"url": "ftp://hooks.example.com", "events": ["handoff.assigned", "lead.eaten"]},
        ),
        422,
    )
    errors = {e["loc"]: e["message"] for e in bad["errors"]}
    assert set(errors) == {"url", "events[1]"}
    assert "unknown event 'lead.eaten'" in errors["events[1]"]
    assert "handoff.assigned" in errors["events[1]"]
    assert problem(floor.post("/api/v1/webhooks", json={"url": "https:///nohost"}), 422)

    with http_receiver() as receiver, smtp_server() as smtp:
        created = ok(
            floor.post(
                "/api/v1/webhooks",
                json={"url": receiver.url, "events": ["handoff.assigned"]},
                headers=by("ops"),
            ),
            201,
        )
        assert len(created["secret"]) >= 32
        assert (created["events"], created["active"], created["created_by"]) == (
            ["handoff.assigned"],
            True,
            "ops",
        )
        everything = ok(floor.post("/api/v1/webhooks", json={"url": receiver.url}), 201)
        assert everything["events"] == ["*"]
        listed = ok(floor.get("/api/v1/webhooks"))
        assert [e["id"] for e in listed] == [created["id"], everything["id"]]
        assert all("secret" not in e for e in listed)

        hand_raise(floor, ctx)
        tick(ctx, smtp=SmtpConfig(host=smtp.host, port=smtp.port))

        [delivery] = ok(floor.get(f"/api/v1/webhooks/{created['id']}/deliveries"))
        assert (delivery["topic"], delivery["status"], delivery["attempts"]) == (
            "handoff.assigned",
            "sent",
            1,
        )
        [attempt] = delivery["history"]
        assert (attempt["ok"], attempt["status_code"]) == (True, 200)
        bodies = [json.loads(r.body) for r in receiver.requests]
        assert sorted(b["event"] for b in bodies) == ["handoff.assigned", "handoff.assigned"]
        assert bodies[0]["data"]["rep"]["email"] == ANA

    removed = ok(floor.delete(f"/api/v1/webhooks/{created['id']}"))
    assert removed["active"] is False
    assert problem(floor.delete("/api/v1/webhooks/999999"), 404)
    assert problem(floor.get("/api/v1/webhooks/999999/deliveries"), 404)
    [handoff] = ok(floor.get(HANDOFFS))
    ok(floor.post(f"{HANDOFFS}/{handoff['id']}/accept", headers=by(ANA)))
    assert len(ok(floor.get(f"/api/v1/webhooks/{created['id']}/deliveries"))) == 1
    topics = [d["topic"] for d in ok(floor.get(f"/api/v1/webhooks/{everything['id']}/deliveries"))]
    assert topics == ["handoff.accepted", "handoff.assigned"]
