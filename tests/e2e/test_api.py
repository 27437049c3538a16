"""The HTTP API as a client sees it: status codes, problem+json errors, idempotent
retries, the authenticated actor stored on every change, and leads out of a caller's
reach answering like missing ones."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from tests.conftest import bearer, token_for

import baton
from baton.api.app import create_app
from baton.domain.access import operator
from baton.domain.clock import ManualClock
from baton.domain.reps import RepCreate, TeamCreate
from baton.domain.users import IntakeKeyCreate
from baton.services.context import Context
from baton.services.contracts import activate_contract, approve_contract, create_contract
from baton.services.reps import create_rep, create_team
from baton.services.users import add_intake_key, token_principal
from baton.services.worker import check_duplicates

PROBLEM = "application/problem+json"
LEADS = "/api/v1/leads"
ACTIVITIES = "/api/v1/activities"


@pytest.fixture
def api(sqlite_ctx: Context) -> Iterator[TestClient]:
    """A client signed in as an admin (API token)."""
    with TestClient(
        create_app(sqlite_ctx),
        raise_server_exceptions=False,
        headers=bearer(token_for(sqlite_ctx, "admin", email="admin@lumen.example")),
    ) as client:
        yield client


def user(ctx: Context, role: str, email: str, **kwargs: Any) -> tuple[dict[str, str], str]:
    """Headers that authenticate as a new ``role`` user with a token, and the actor
    name Baton stores for that token."""
    token = token_for(ctx, role, email=email, **kwargs)
    principal = token_principal(ctx, token)
    assert principal is not None and principal.name.startswith(email)
    return bearer(token), principal.name


@pytest.fixture
def api_clock(sqlite_ctx: Context) -> ManualClock:
    assert isinstance(sqlite_ctx.clock, ManualClock)
    return sqlite_ctx.clock


def capture(api: TestClient, **body: Any) -> dict[str, Any]:
    response = api.post(LEADS, json=body)
    assert response.status_code in (200, 201), response.text
    return dict(response.json())


def assert_problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body = dict(response.json())
    assert body["status"] == status
    assert body["title"] and body["detail"] and body["type"]
    return body


def test_capture_creates_then_updates_the_same_email(api: TestClient) -> None:
    first = api.post(
        LEADS, json={"email": "dana@northwind.com", "first_name": "Dana", "source": "webinar"}
    )
    assert first.status_code == 201
    assert first.json()["created"] is True
    lead_id = first.json()["lead"]["id"]
    second = api.post(LEADS, json={"email": "DANA@Northwind.com", "title": "CTO", "first_name": ""})
    assert second.status_code == 200
    body = second.json()
    assert body["created"] is False
    assert body["lead"]["id"] == lead_id
    assert (body["lead"]["first_name"], body["lead"]["title"]) == ("Dana", "CTO")
    assert "title" in body["changed_fields"]
    got = api.get(f"{LEADS}/{lead_id}")
    assert got.status_code == 200
    assert got.json()["title"] == "CTO"
    assert api.get(LEADS).json()["total"] == 1


def test_capture_reports_a_possible_duplicate(api: TestClient, sqlite_ctx: Context) -> None:
    first = capture(api, email="dana@northwind.com", phone="+1 202 456 1111")
    second = capture(api, email="dana@gmail.com", phone="(202) 456-1111")
    assert (second["duplicates"], second["possible_duplicates"]) == ("pending", [])
    assert api.get("/api/v1/duplicates").json() == []
    check_duplicates(sqlite_ctx)  # the worker's lane, within seconds in production
    [queued] = api.get("/api/v1/duplicates").json()
    assert {queued["lead_id"], queued["other_lead_id"]} == {
        first["lead"]["id"],
        second["lead"]["id"],
    }
    assert api.post(f"/api/v1/duplicates/{queued['id']}/dismiss").status_code == 204
    assert api.get("/api/v1/duplicates").json() == []


def test_validation_errors_are_problem_json_with_a_location_per_field(api: TestClient) -> None:
    response = api.post(
        LEADS, json={"email": "dana@", "phone": "hello", "country": "Atlantis", "shoe": 42}
    )
    body = assert_problem(response, 422)
    by_loc = {e["loc"]: e["message"] for e in body["errors"]}
    assert set(by_loc) == {"email", "phone", "country", "shoe"}
    assert "email" in by_loc["email"]
    assert by_loc["shoe"] == "unknown field: a form's own fields go under attributes"
    assert api.get(LEADS).json()["total"] == 0
    kept = api.post(LEADS, json={"email": "dana@northwind.com", "attributes": {"shoe": 42}})
    assert kept.status_code == 201 and kept.json()["lead"]["attributes"] == {"shoe": 42}


def test_a_lead_without_email_or_phone_is_refused(api: TestClient) -> None:
    body = assert_problem(api.post(LEADS, json={"first_name": "Dana"}), 422)
    assert any("email or a phone" in e["message"] for e in body["errors"])


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (f"{LEADS}/1/transitions", {"to_stage": "heaven", "reason": "x"}),
        (f"{LEADS}/1/transitions", {"to_stage": "mql"}),
        (f"{LEADS}/1/notes", {"body": ""}),
        (f"{ACTIVITIES}/batch", {"activities": "not a list"}),
    ],
)
def test_malformed_bodies_are_problem_json(api: TestClient, path: str, body: Any) -> None:
    capture(api, email="dana@northwind.com")
    problem = assert_problem(api.post(path, json=body), 422)
    assert problem["errors"] and all(e["loc"] and e["message"] for e in problem["errors"])


def test_a_body_that_is_not_json_is_problem_json(api: TestClient) -> None:
    response = api.post(LEADS, content=b"{not json", headers={"content-type": "application/json"})
    assert_problem(response, 422)


def test_batch_ingest_reports_bad_rows_by_index_and_stores_the_rest(
    api: TestClient, api_clock: ManualClock
) -> None:
    now = api_clock.now().isoformat()
    rows = [
        {"email": "dana@northwind.com", "type": "page_view", "occurred_at": now},
        {"email": "dana@northwind.com", "type": "page_veiw", "occurred_at": now},
        {"email": "sam@acme.io", "type": "email_open", "occurred_at": "2026-03-02T08:00:00"},
        {"email": "sam@acme.io", "type": "email_open", "occurred_at": now, "idempotency_key": "k"},
        {"type": "email_open", "occurred_at": now},
    ]
    response = api.post(f"{ACTIVITIES}/batch", json={"activities": rows})
    assert response.status_code == 200
    body = response.json()
    assert (body["received"], body["stored"], body["leads_created"]) == (5, 2, 2)
    assert body["rejected_rows"] == 3
    assert sorted({e["index"] for e in body["errors"]}) == [1, 2, 4]
    assert {e["index"]: e["field"] for e in body["errors"]}[1] == "type"
    retry = api.post(f"{ACTIVITIES}/batch", json={"activities": rows[3:4]}).json()
    assert (retry["stored"], retry["duplicates"]) == (0, 1)


def test_a_retried_single_event_is_stored_once(api: TestClient, api_clock: ManualClock) -> None:
    event = {
        "email": "dana@northwind.com",
        "type": "demo_request",
        "occurred_at": api_clock.now().isoformat(),
        "properties": {"page": "/demo"},
        "idempotency_key": "web-evt-7f3a9c",
    }
    first = api.post(ACTIVITIES, json=event)
    assert first.status_code == 201
    assert first.json()["duplicate"] is False and first.json()["lead_created"] is True
    second = api.post(ACTIVITIES, json=event)
    assert second.status_code == 200
    assert second.json()["duplicate"] is True
    assert second.json()["activity_id"] == first.json()["activity_id"]
    assert second.json()["lead_id"] == first.json()["lead_id"]
    timeline = api.get(f"{LEADS}/{first.json()['lead_id']}/timeline").json()
    demos = [i for i in timeline if i["kind"] == "activity" and i["data"]["type"] == "demo_request"]
    assert len(demos) == 1
    assert demos[0]["data"]["id"] == first.json()["activity_id"]


def test_an_event_in_the_future_or_without_zone_is_refused(
    api: TestClient, api_clock: ManualClock
) -> None:
    base = {"email": "dana@northwind.com", "type": "page_view"}
    later = (api_clock.now() + timedelta(hours=1)).isoformat()
    body = assert_problem(api.post(ACTIVITIES, json=base | {"occurred_at": later}), 422)
    assert [e["loc"] for e in body["errors"]] == ["occurred_at"]
    naive = assert_problem(
        api.post(ACTIVITIES, json=base | {"occurred_at": "2026-03-02T08:00"}), 422
    )
    assert [e["loc"] for e in naive["errors"]] == ["occurred_at"]


def test_an_event_for_an_unknown_lead_id_is_not_found(
    api: TestClient, api_clock: ManualClock
) -> None:
    event = {"lead_id": 987_654_321, "type": "chat", "occurred_at": api_clock.now().isoformat()}
    assert_problem(api.post(ACTIVITIES, json=event), 404)


def test_timeline_is_in_time_order_with_actors(
    api: TestClient, api_clock: ManualClock, sqlite_ctx: Context
) -> None:
    admin = token_principal(sqlite_ctx, api.headers["Authorization"].split()[1])
    assert admin is not None
    scoring, scoring_name = user(sqlite_ctx, "marketing", "scoring-engine@lumen.example")
    bob, bob_name = user(sqlite_ctx, "marketing", "bob@lumen.example")
    lead_id = capture(api, email="dana@northwind.com")["lead"]["id"]
    api_clock.advance(hours=1)
    assert api.post(f"{LEADS}/{lead_id}/notes", json={"body": "called"}).status_code == 201
    api_clock.advance(hours=1)
    moved = api.post(
        f"{LEADS}/{lead_id}/transitions",
        json={"to_stage": "mql", "reason": "score 70"},
        headers=scoring,
    )
    assert moved.status_code == 201
    api_clock.advance(hours=1)
    tags = api.post(f"{LEADS}/{lead_id}/tags", json={"tag": "Hot"}, headers=bob)
    assert tags.json() == {"lead_id": lead_id, "tags": ["hot"]}
    items = api.get(f"{LEADS}/{lead_id}/timeline").json()
    assert [i["kind"] for i in items] == [
        "created",
        "activity",
        "note",
        "transition",
        "handoff",
        "tag",
    ]
    assert [i["at"] for i in items] == sorted(i["at"] for i in items)
    assert items[1]["actor"] == admin.name
    assert items[2]["actor"] == admin.name
    assert items[3]["actor"] == scoring_name
    assert items[4]["actor"] == scoring_name
    assert items[5]["actor"] == bob_name
    newest = api.get(f"{LEADS}/{lead_id}/timeline", params={"limit": 2}).json()
    assert [i["kind"] for i in newest] == ["handoff", "tag"]


def test_the_authenticated_user_is_stored_never_a_name_the_caller_sends(
    api: TestClient, sqlite_ctx: Context
) -> None:
    lead_id = capture(api, email="dana@northwind.com")["lead"]["id"]
    alice, alice_name = user(sqlite_ctx, "marketing", "alice@lumen.example")
    # The header that once named the actor is ignored: anyone could have sent it.
    who = {**alice, "X-Baton-Actor": "someone.else@lumen.example"}
    note = api.post(f"{LEADS}/{lead_id}/notes", json={"body": "hi"}, headers=who)
    assert note.json()["author"] == alice_name
    step = api.post(
        f"{LEADS}/{lead_id}/transitions",
        json={"to_stage": "nurture", "reason": "later"},
        headers=who,
    )
    assert step.json()["actor"] == alice_name
    assert (step.json()["from_stage"], step.json()["to_stage"]) == ("lead", "nurture")
    items = api.get(f"{LEADS}/{lead_id}/timeline").json()
    assert {i["actor"] for i in items if i["kind"] in ("note", "transition")} == {alice_name}


def test_an_invalid_transition_is_409_listing_the_allowed_stages(api: TestClient) -> None:
    lead_id = capture(api, email="dana@northwind.com")["lead"]["id"]
    response = api.post(
        f"{LEADS}/{lead_id}/transitions", json={"to_stage": "customer", "reason": "skip"}
    )
    body = assert_problem(response, 409)
    assert sorted(body["allowed"]) == ["disqualified", "mql", "nurture"]
    assert (body["current"], body["requested"]) == ("lead", "customer")
    assert api.get(f"{LEADS}/{lead_id}").json()["stage"] == "lead"


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("get", f"{LEADS}/987654321", None),
        ("get", f"{LEADS}/987654321/timeline", None),
        ("post", f"{LEADS}/987654321/notes", {"body": "hello"}),
        ("post", f"{LEADS}/987654321/tags", {"tag": "hot"}),
        ("post", f"{LEADS}/987654321/transitions", {"to_stage": "mql", "reason": "r"}),
        ("delete", f"{LEADS}/987654321/tags/hot", None),
    ],
)
def test_an_unknown_lead_is_404_problem_json(
    api: TestClient, method: str, path: str, body: Any
) -> None:
    response = api.request(method.upper(), path, json=body)
    problem = assert_problem(response, 404)
    assert "987654321" in problem["detail"]


def test_an_unknown_route_is_404_problem_json(api: TestClient) -> None:
    assert_problem(api.get("/api/v1/nothing-here"), 404)
    assert_problem(api.put(LEADS), 405)


def test_merge_endpoint_moves_history_and_refuses_a_second_merge(
    api: TestClient, api_clock: ManualClock, sqlite_ctx: Context
) -> None:
    survivor = capture(api, email="dana@northwind.com", first_name="Dana")["lead"]["id"]
    absorbed = capture(api, email="dana@gmail.com", last_name="Reyes")["lead"]["id"]
    api_clock.advance(hours=1)
    api.post(f"{LEADS}/{absorbed}/notes", json={"body": "met at the fair"})
    api_clock.advance(hours=1)
    alice, alice_name = user(sqlite_ctx, "marketing", "alice@lumen.example")
    response = api.post(
        f"{LEADS}/{survivor}/merge", json={"merged_lead_id": absorbed}, headers=alice
    )
    assert response.status_code == 200
    body = response.json()
    assert (body["survivor_id"], body["merged_id"]) == (survivor, absorbed)
    assert "last_name" in body["filled_fields"]
    assert api.get(f"{LEADS}/{survivor}").json()["last_name"] == "Reyes"
    assert api.get(f"{LEADS}/{absorbed}").json()["merged_into_id"] == survivor
    items = api.get(f"{LEADS}/{survivor}/timeline").json()
    notes = [i for i in items if i["kind"] == "note"]
    assert [(n["summary"], n["merged_from"]) for n in notes] == [("met at the fair", absorbed)]
    assert [i["actor"] for i in items if i["kind"] == "merge"] == [alice_name]
    assert_problem(api.get(f"{LEADS}/{absorbed}/timeline"), 404)
    again = api.post(f"{LEADS}/{survivor}/merge", json={"merged_lead_id": absorbed})
    assert_problem(again, 409)
    itself = api.post(f"{LEADS}/{survivor}/merge", json={"merged_lead_id": survivor})
    assert_problem(itself, 409)


def floor_with_ann(ctx: Context) -> None:
    """The example contract and rep Ann (team na), who gets every US hand-raise."""
    example = (Path(__file__).parents[2] / "contracts" / "example.yaml").read_text()
    ops = operator("ops")
    version = create_contract(ctx, example, actor=ops).version
    approve_contract(ctx, version, role="marketing", actor=operator("maria"))
    approve_contract(ctx, version, role="sales", actor=operator("sam"))
    activate_contract(ctx, version, actor=ops)
    create_team(ctx, TeamCreate(name="na"), actor=ops)
    create_rep(ctx, RepCreate(email="ann@lumen.example", name="Ann", team="na"), actor=ops)


def test_a_rep_reaches_only_the_leads_of_their_handoffs(
    api: TestClient, api_clock: ManualClock, sqlite_ctx: Context
) -> None:
    floor_with_ann(sqlite_ctx)
    mine = capture(api, email="dana@northwind.com", country="US")["lead"]["id"]
    raised = {
        "email": "dana@northwind.com",
        "type": "demo_request",
        "occurred_at": api_clock.now().isoformat(),
    }
    assert api.post(ACTIVITIES, json=raised).status_code == 201, "routed to Ann"
    theirs = capture(api, email="jonas@northwind.de")["lead"]["id"]
    ann, ann_name = user(sqlite_ctx, "rep", "ann@lumen.example", rep_email="ann@lumen.example")

    page = api.get(LEADS, headers=ann).json()
    assert ([lead["id"] for lead in page["items"]], page["total"]) == ([mine], 1)
    assert api.get(f"{LEADS}/{mine}", headers=ann).status_code == 200
    note = api.post(f"{LEADS}/{mine}/notes", json={"body": "booked"}, headers=ann)
    assert (note.status_code, note.json()["author"]) == (201, ann_name)
    missing = assert_problem(api.get(f"{LEADS}/987654321", headers=ann), 404)
    for method, path, body in [
        ("GET", f"{LEADS}/{theirs}", None),
        ("GET", f"{LEADS}/{theirs}/timeline", None),
        ("GET", f"{LEADS}/{theirs}/score", None),
        ("GET", f"{LEADS}/{theirs}/prep", None),
        ("POST", f"{LEADS}/{theirs}/notes", {"body": "guessed"}),
        ("POST", f"{LEADS}/{theirs}/tags", {"tag": "guessed"}),
        ("DELETE", f"{LEADS}/{theirs}/tags/hot", None),
        ("PUT", f"{LEADS}/{theirs}/prep/budget_owner_known", None),
    ]:
        problem = assert_problem(api.request(method, path, json=body, headers=ann), 404)
        assert problem["detail"] == missing["detail"].replace("987654321", str(theirs))
    assert_problem(api.post(LEADS, json={"email": "x@northwind.com"}, headers=ann), 403)
    assert_problem(
        api.post(f"{LEADS}/{mine}/merge", json={"merged_lead_id": theirs}, headers=ann), 403
    )
    assert [i["kind"] for i in api.get(f"{LEADS}/{theirs}/timeline").json()].count("note") == 0


def test_an_intake_key_captures_with_its_source_and_reads_nothing(
    api: TestClient, api_clock: ManualClock, sqlite_ctx: Context
) -> None:
    _, secret = add_intake_key(
        sqlite_ctx, IntakeKeyCreate(name="website", source="Web"), actor=operator("ops")
    )
    key = {"X-Baton-Intake-Key": secret}
    with TestClient(create_app(sqlite_ctx), raise_server_exceptions=False) as public:
        made = public.post(LEADS, json={"email": "dana@northwind.com"}, headers=key)
        assert made.status_code == 202, made.text
        assert made.json() == {"received": 1, "rejected_rows": 0, "errors": []}
        named = public.post(LEADS, json={"email": "jo@acme.io", "source": "ads"}, headers=key)
        assert named.status_code == 202, named.text
        event = {
            "email": "sam@acme.io",
            "type": "page_view",
            "occurred_at": api_clock.now().isoformat(),
        }
        ingested = public.post(ACTIVITIES, json=event, headers=key)
        assert ingested.status_code == 202, ingested.text
        assert "lead_id" not in ingested.json()
        assert_problem(public.get(LEADS, headers=key), 403)
        lead_id = api.get(LEADS).json()["items"][-1]["id"]
        by_id = public.post(
            ACTIVITIES, json={**event, "email": None, "lead_id": lead_id}, headers=key
        )
        assert_problem(by_id, 422)
        assert "by email" in by_id.json()["errors"][0]["message"]
        assert_problem(public.get(f"{LEADS}/{lead_id}", headers=key), 403)
    sources = {lead["email"]: lead["source"] for lead in api.get(LEADS).json()["items"]}
    assert sources == {"dana@northwind.com": "web", "jo@acme.io": "ads", "sam@acme.io": "web"}


def test_list_leads_filters_and_pages(api: TestClient) -> None:
    ids = [capture(api, email=f"p{i}@northwind.com", source="ads")["lead"]["id"] for i in range(5)]
    capture(api, email="other@acme.io", company="Acme", source="webinar")
    page = api.get(LEADS, params={"source": "ads", "limit": 2}).json()
    assert page["total"] == 5
    seen = [lead["id"] for lead in page["items"]]
    while page["next_before_id"] is not None:
        page = api.get(
            LEADS, params={"source": "ads", "limit": 2, "before_id": page["next_before_id"]}
        ).json()
        seen += [lead["id"] for lead in page["items"]]
    assert seen == sorted(ids, reverse=True)
    assert [lead["email"] for lead in api.get(LEADS, params={"q": "acme"}).json()["items"]] == [
        "other@acme.io"
    ]


def test_openapi_lists_the_operations(api: TestClient) -> None:
    spec = api.get("/openapi.json").json()
    operations = {op["operationId"] for path in spec["paths"].values() for op in path.values()}
    assert {
        "capture_lead",
        "list_leads",
        "get_lead",
        "change_stage",
        "lead_timeline",
        "add_note",
        "add_tag",
        "remove_tag",
        "merge_leads",
        "ingest_activity",
        "ingest_activity_batch",
        "list_duplicates",
        "dismiss_duplicate",
        "health",
    } <= operations


def test_health_answers(api: TestClient) -> None:
    response = api.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "version": baton.__version__}


@pytest.mark.parametrize("backend", ["postgresql"])
@pytest.mark.postgres
def test_capture_ingest_and_timeline_on_postgresql(ctx: Context) -> None:
    """One end-to-end pass over PostgreSQL (the rest of this module uses SQLite)."""
    assert isinstance(ctx.clock, ManualClock)
    with TestClient(
        create_app(ctx), raise_server_exceptions=False, headers=bearer(token_for(ctx, "admin"))
    ) as api:
        created = api.post(LEADS, json={"email": "dana@northwind.com"})
        assert created.status_code == 201
        lead_id = created.json()["lead"]["id"]
        assert api.post(LEADS, json={"email": "Dana@NORTHWIND.com"}).status_code == 200
        event = {
            "email": "dana@northwind.com",
            "type": "email_click",
            "occurred_at": ctx.clock.now().isoformat(),
            "idempotency_key": "pg-1",
        }
        assert api.post(ACTIVITIES, json=event).status_code == 201
        assert api.post(ACTIVITIES, json=event).status_code == 200
        refused = api.post(
            f"{LEADS}/{lead_id}/transitions", json={"to_stage": "sal", "reason": "skip"}
        )
        assert_problem(refused, 409)
        kinds = [i["kind"] for i in api.get(f"{LEADS}/{lead_id}/timeline").json()]
        assert kinds.count("activity") == 3
