"""Handoffs over HTTP as sales and sales ops use them: teams and reps, a demo request
handed to an available rep, the packet, verdicts by the rep or their manager, the
unassigned queue, and webhooks. Every caller authenticates with an API token (an admin
for sales ops, each person with their own); a rep never sees another rep's handoff.
Every test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from tests.conftest import bearer, token_for
from tests.notify_servers import http_receiver, smtp_server

from baton.api.app import create_app
from baton.notify.email import SmtpConfig
from baton.services.context import Context
from baton.services.users import token_principal
from baton.services.worker import assign_queued, tick

EXAMPLE = Path(__file__).parents[2] / "contracts" / "example.yaml"
PROBLEM = "application/problem+json"
HANDOFFS = "/api/v1/handoffs"
ANA, BEN, SAM = "ana@lumen.example", "ben@lumen.example", "sam@lumen.example"
MARIA, LEE = "maria@lumen.example", "lee@lumen.example"
ADMIN = "admin"


@pytest.fixture
def tokens(ctx: Context) -> dict[str, str]:
    """API tokens by who holds them; people are added as the floor is built."""
    return {ADMIN: token_for(ctx, "admin", email="ops@lumen.example")}


@pytest.fixture
def api(ctx: Context, tokens: dict[str, str]) -> Iterator[TestClient]:
    """The API, called by sales ops (an admin's token) unless a request says who."""
    with TestClient(
        create_app(ctx), raise_server_exceptions=False, headers=bearer(tokens[ADMIN])
    ) as client:
        yield client


def name_of(ctx: Context, token: str) -> str:
    """The actor stored for changes made with ``token``."""
    principal = token_principal(ctx, token)
    assert principal is not None
    return principal.name


def ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body = dict(response.json())
    assert body["status"] == status and body["title"] and body["detail"]
    return body


def activate_example_contract(api: TestClient, tokens: dict[str, str]) -> None:
    """Maria drafts and signs for marketing, Sam signs for sales, sales ops activates."""
    version = ok(
        api.post(
            "/api/v1/contracts",
            json={"body": EXAMPLE.read_text()},
            headers=bearer(tokens[MARIA]),
        ),
        201,
    )["version"]
    for role, person in (("marketing", MARIA), ("sales", SAM)):
        ok(
            api.post(
                f"/api/v1/contracts/{version}/approve",
                json={"role": role},
                headers=bearer(tokens[person]),
            )
        )
    ok(api.post(f"/api/v1/contracts/{version}/activate"))


def add_rep_user(ctx: Context, tokens: dict[str, str], email: str) -> dict[str, str]:
    """A rep user (with a token) for the rep ``email``; returns their headers."""
    tokens[email] = token_for(ctx, "rep", rep_email=email)
    return bearer(tokens[email])


@pytest.fixture
def floor(api: TestClient, ctx: Context, tokens: dict[str, str]) -> TestClient:
    """Team ``na`` (where US leads go) managed by Sam, with Ana in it, working Monday
    to Friday 09:00-17:00 UTC (the clock starts on a Monday at 09:00); users for Ana,
    Sam (the manager of ``na``) and Maria (marketing); the example contract active."""
    team = ok(api.post("/api/v1/teams", json={"name": "na", "manager_email": SAM}), 201)
    assert team == {"id": team["id"], "name": "na", "manager_email": SAM, "reps": 0}
    rep = ok(api.post("/api/v1/reps", json={"email": ANA, "name": "Ana Silva", "team": "na"}), 201)
    assert (rep["team"], rep["timezone"], rep["status"]) == ("na", "UTC", "available")
    assert rep["working_hours"]["mon"] == ["09:00-17:00"]
    assert rep["working_hours"]["sat"] == []
    add_rep_user(ctx, tokens, ANA)
    tokens[SAM] = token_for(ctx, "sales_manager", email=SAM, teams=("na",))
    tokens[MARIA] = token_for(ctx, "marketing", email=MARIA)
    activate_example_contract(api, tokens)
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
    floor: TestClient, ctx: Context, tokens: dict[str, str]
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
    assert {i["id"] for i in packet["prep"]} == {
        "use_case_noted",
        "company_size_confirmed",
        "budget_owner_known",
        "current_tools_noted",
    }
    # Ana reads the same packet as sales ops: it is her handoff.
    as_ana = bearer(tokens[ANA])
    assert ok(floor.get(f"{HANDOFFS}/{handoff['id']}/packet", headers=as_ana)) == packet
    assert ok(floor.get(HANDOFFS, headers=as_ana)) == [handoff]

    text = floor.get(f"{HANDOFFS}/{handoff['id']}/packet", params={"format": "text"})
    assert text.status_code == 200
    assert text.headers["content-type"].startswith("text/plain")
    assert "Dana (Northwind & Co)" in text.text
    assert "+20  Decision-maker title" in text.text
    assert "Accept by:      Mon 2 Mar 09:30 UTC" in text.text

    html = floor.get(f"{HANDOFFS}/{handoff['id']}/packet", params={"format": "html"})
    assert html.headers["content-type"].startswith("text/html")
    assert "Northwind &amp; Co" in html.text and "Northwind & Co" not in html.text

    assert problem(floor.get(f"{HANDOFFS}/999999/packet"), 404)["detail"] == (
        "handoff 999999 does not exist"
    )
    bad = problem(floor.get(f"{HANDOFFS}/{handoff['id']}/packet", params={"format": "pdf"}), 422)
    assert bad["errors"][0]["loc"] == "format"


def test_verdicts_move_the_lead_and_only_the_rep_or_manager_may_give_them(
    floor: TestClient, ctx: Context, tokens: dict[str, str]
) -> None:
    lead_id = hand_raise(floor, ctx)
    [handoff] = ok(floor.get(HANDOFFS))
    url = f"{HANDOFFS}/{handoff['id']}"
    ana, sam = bearer(tokens[ANA]), bearer(tokens[SAM])

    # Eve, a rep of the same team, does not see Ana's handoff: 404, as for no handoff.
    ok(
        floor.post(
            "/api/v1/reps", json={"email": "eve@lumen.example", "name": "Eve", "team": "na"}
        ),
        201,
    )
    eve = add_rep_user(ctx, tokens, "eve@lumen.example")
    stranger = problem(floor.post(f"{url}/accept", headers=eve), 404)
    assert stranger["detail"] == f"handoff {handoff['id']} does not exist"
    # Marketing may not give sales' verdict at all: 403 with the reason.
    refused = problem(floor.post(f"{url}/accept", headers=bearer(tokens[MARIA])), 403)
    assert refused["type"] == "/problems/forbidden"
    assert "marketing role may not accept" in refused["detail"]
    # No credentials, malformed ones or a token that is not one: 401 with the scheme.
    nobody = TestClient(floor.app, raise_server_exceptions=False)
    for anonymous in (
        nobody.post(f"{url}/accept"),
        nobody.get(url),
        floor.post(f"{url}/accept", headers={"Authorization": "Basic c2FtOnNhbQ=="}),
        floor.post(f"{url}/accept", headers={"Authorization": "Bearer bt_not-a-token"}),
    ):
        assert problem(anonymous, 401)["type"] == "/problems/unauthorized"
        assert anonymous.headers["WWW-Authenticate"].startswith("Bearer")
    assert stage(floor, lead_id) == "mql"

    accepted = ok(floor.post(f"{url}/accept", headers=ana))
    assert accepted["status"] == "accepted" and accepted["accepted_at"]
    assert stage(floor, lead_id) == "sal"
    again = problem(floor.post(f"{url}/accept", headers=ana), 409)
    assert "it is accepted" in again["detail"]

    unknown = problem(floor.post(f"{url}/reject", json={"code": "meh"}, headers=ana), 422)
    assert unknown["detail"] == "unknown rejection reason 'meh'"
    [code_error] = unknown["errors"]
    assert code_error["loc"] == "code"
    for known in ("out_of_area", "no_budget", "not_ready", "wrong_contact", "junk"):
        assert known in code_error["message"]
    bad_touch = problem(floor.post(f"{url}/touches", json={"kind": "fax"}, headers=ana), 422)
    assert bad_touch["errors"][0]["loc"] == "kind"

    touched = ok(
        floor.post(f"{url}/touches", json={"kind": "call", "note": "intro call"}, headers=ana),
        201,
    )
    assert touched["first_touch_at"] is not None

    missing = problem(
        floor.post(f"{url}/qualify", json={"fields": {"budget": "40k"}}, headers=ana), 422
    )
    assert [e["loc"] for e in missing["errors"]] == [
        "fields.authority",
        "fields.need",
        "fields.timing",
    ]
    assert stage(floor, lead_id) == "sal"
    fields = {"budget": "40k", "authority": "VP Ops", "need": "dashboards", "timing": "Q3"}
    qualified = ok(floor.post(f"{url}/qualify", json={"fields": fields}, headers=ana))
    assert (qualified["status"], qualified["qualification"]) == ("qualified", fields)
    assert stage(floor, lead_id) == "sql"

    # The team's manager may give the verdict for the rep.
    won = ok(floor.post(f"{url}/won", json={"amount": 52000, "note": "3 years"}, headers=sam))
    assert (won["status"], won["outcome"], won["deal_value"]) == ("won", "won", 52000)
    assert stage(floor, lead_id) == "customer"
    events = ok(floor.get(f"{url}/events", headers=ana))
    # The actor of each change is who authenticated, never a name the caller chose.
    as_ana, as_sam = name_of(ctx, tokens[ANA]), name_of(ctx, tokens[SAM])
    assert as_ana.startswith(ANA) and as_sam.startswith(SAM)
    assert [(e["kind"], e["actor"]) for e in events] == [
        ("assigned", name_of(ctx, tokens[ADMIN])),  # the admin's token sent the hand-raise
        ("accepted", as_ana),
        ("touch", as_ana),
        ("qualified", as_ana),
        ("won", as_sam),
    ]
    assert events[2]["detail"]["note"] == "intro call"
    assert [
        {k: v for k, v in a.items() if k != "id"} for a in ok(floor.get("/api/v1/accounts"))
    ] == [{"domain": "northwind.example.com", "name": "Northwind & Co", "owner_email": ANA}]


def test_a_rep_cannot_see_or_act_on_another_reps_handoff_by_guessing_its_id(
    floor: TestClient, ctx: Context, tokens: dict[str, str]
) -> None:
    ok(floor.post("/api/v1/reps", json={"email": BEN, "name": "Ben Okafor", "team": "na"}), 201)
    ben = add_rep_user(ctx, tokens, BEN)
    ana = bearer(tokens[ANA])
    hand_raise(floor, ctx)
    hand_raise(floor, ctx, email="lee@fabrikam.example.com")
    by_rep = {h["rep_email"]: h for h in ok(floor.get(HANDOFFS))}
    assert set(by_rep) == {ANA, BEN}, "round robin gives each one"
    theirs = by_rep[BEN]
    url = f"{HANDOFFS}/{theirs['id']}"

    assert ok(floor.get(HANDOFFS, headers=ana)) == [by_rep[ANA]]
    assert ok(floor.get(HANDOFFS, params={"rep": BEN}, headers=ana)) == []
    assert ok(floor.get(HANDOFFS, params={"lead_id": theirs["lead_id"]}, headers=ana)) == []
    for path in ("", "/events", "/packet"):
        assert problem(floor.get(f"{url}{path}", headers=ana), 404)["detail"] == (
            f"handoff {theirs['id']} does not exist"
        )
    for path, body in (
        ("/accept", None),
        ("/reject", {"code": "junk"}),
        ("/touches", {"kind": "call"}),
        ("/lost", {"reason": "none"}),
    ):
        assert problem(floor.post(f"{url}{path}", json=body, headers=ana), 404)
    # Nothing happened to Ben's handoff; Ben himself may act on it.
    assert ok(floor.get(url))["status"] == "assigned"
    assert [e["kind"] for e in ok(floor.get(f"{url}/events"))] == ["assigned"]
    assert ok(floor.post(f"{url}/accept", headers=ben))["status"] == "accepted"
    # A rep has no queue to read and no one to reassign to.
    assert (
        "may not read the unassigned queue"
        in problem(floor.get(f"{HANDOFFS}/queue", headers=ana), 403)["detail"]
    )


def test_a_rejection_recycles_the_lead_and_a_lost_deal_needs_a_reason(
    floor: TestClient, ctx: Context, tokens: dict[str, str]
) -> None:
    first = hand_raise(floor, ctx)
    second = hand_raise(floor, ctx, email="lee@fabrikam.example.com")
    handoffs = {h["lead_id"]: h["id"] for h in ok(floor.get(HANDOFFS))}
    ana = bearer(tokens[ANA])

    rejected = ok(
        floor.post(
            f"{HANDOFFS}/{handoffs[first]}/reject",
            json={"code": "not_ready", "note": "budget next year"},
            headers=ana,
        )
    )
    assert (rejected["status"], rejected["rejection_code"]) == ("rejected", "not_ready")
    assert rejected["marketing_credit"] is True
    assert stage(floor, first) == "nurture"

    url = f"{HANDOFFS}/{handoffs[second]}"
    ok(floor.post(f"{url}/accept", headers=ana))
    assert problem(floor.post(f"{url}/lost", json={"reason": ""}, headers=ana), 422)
    lost = ok(floor.post(f"{url}/lost", json={"reason": "chose a competitor"}, headers=ana))
    assert lost["status"] == "lost"
    assert stage(floor, second) == "lost"


def test_only_the_manager_reassigns_and_gets_the_new_handoff(
    floor: TestClient, ctx: Context, tokens: dict[str, str]
) -> None:
    ok(floor.post("/api/v1/reps", json={"email": BEN, "name": "Ben Okafor", "team": "na"}), 201)
    add_rep_user(ctx, tokens, BEN)
    ok(floor.post("/api/v1/teams", json={"name": "emea", "manager_email": LEE}), 201)
    ok(
        floor.post(
            "/api/v1/reps", json={"email": "eva@lumen.example", "name": "Eva", "team": "emea"}
        ),
        201,
    )
    tokens[LEE] = token_for(ctx, "sales_manager", email=LEE, teams=("emea",))
    hand_raise(floor, ctx)
    [handoff] = ok(floor.get(HANDOFFS))
    owner = handoff["rep_email"]
    other = BEN if owner == ANA else ANA
    url = f"{HANDOFFS}/{handoff['id']}/reassign"
    sam = bearer(tokens[SAM])

    refused = problem(floor.post(url, json={"to": other}, headers=bearer(tokens[owner])), 403)
    assert "rep role may not reassign" in refused["detail"]
    # Another team's manager does not see the handoff; Sam cannot give it to a rep
    # outside his team (missing to him, as a rep that does not exist).
    assert problem(floor.post(url, json={"to": other}, headers=bearer(tokens[LEE])), 404)
    outside = problem(floor.post(url, json={"to": "eva@lumen.example"}, headers=sam), 404)
    assert outside["detail"] == "rep eva@lumen.example does not exist"
    new = ok(floor.post(url, json={"to": other}, headers=sam), 201)

    assert (new["rep_email"], new["status"], new["reassignments"]) == (other, "assigned", 1)
    assert new["chain_id"] == handoff["id"]
    assert ok(floor.get(f"{HANDOFFS}/{handoff['id']}"))["status"] == "reassigned"
    assert [h["id"] for h in ok(floor.get(HANDOFFS, params={"status": "assigned"}))] == [new["id"]]


def test_with_every_rep_away_the_handoff_waits_in_the_queue(
    floor: TestClient, ctx: Context, tokens: dict[str, str]
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

    sam = bearer(tokens[SAM])
    [queued] = ok(floor.get(f"{HANDOFFS}/queue", headers=sam))
    assert (queued["lead_id"], queued["status"], queued["rep_id"]) == (lead_id, "queued", None)
    assert "team na" in queued["routing"]["reason"]
    assert ok(floor.get(HANDOFFS, params={"status": "queued"})) == [queued]
    assert ok(floor.get(f"{HANDOFFS}/queue")) == [queued]
    accept = f"{HANDOFFS}/{queued['id']}/accept"
    assert "it is queued" in problem(floor.post(accept, headers=sam), 409)["detail"]
    # Not yet any rep's: to Ana it does not exist.
    assert problem(floor.post(accept, headers=bearer(tokens[ANA])), 404)

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
    assert set(errors) == {
        "email",
        "timezone",
        "working_hours",
        "countries[0]",
        "capacity",
        "colour",
    }
    assert "'USA' is not a two-letter country code" in errors["countries[0]"]
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
    floor: TestClient, ctx: Context, tokens: dict[str, str]
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

    # The receiver listens on loopback: an internal receiver must be allowed by name.
    ctx.settings = ctx.settings.model_copy(update={"webhook_internal_allowlist": "127.0.0.1"})
    with http_receiver() as receiver, smtp_server() as smtp:
        created = ok(
            floor.post(
                "/api/v1/webhooks",
                json={"url": receiver.url, "events": ["handoff.assigned"]},
            ),
            201,
        )
        assert len(created["secret"]) >= 32
        assert (created["events"], created["active"], created["created_by"]) == (
            ["handoff.assigned"],
            True,
            name_of(ctx, tokens[ADMIN]),
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
    ok(floor.post(f"{HANDOFFS}/{handoff['id']}/accept", headers=bearer(tokens[ANA])))
    assert len(ok(floor.get(f"/api/v1/webhooks/{created['id']}/deliveries"))) == 1
    topics = [d["topic"] for d in ok(floor.get(f"/api/v1/webhooks/{everything['id']}/deliveries"))]
    assert topics == ["handoff.accepted", "handoff.assigned"]
