"""The OpenAPI document tells the truth (issue 11, item 15): typed bodies with
examples for capture and activities, every error answer documented as problem+json,
405 with ``Allow``, schema constraints that match the validation, and no absurd
timestamp accepted. The fuzzing run over the whole document is test_openapi_fuzz.py."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from tests.conftest import bearer, token_for

from baton.api.app import create_app
from baton.config import Settings
from baton.domain.access import operator
from baton.domain.users import IntakeKeyCreate
from baton.services import users as user_service
from baton.services.context import Context, open_context


@pytest.fixture
def api(sqlite_ctx: Context) -> TestClient:
    return TestClient(create_app(sqlite_ctx), headers=bearer(token_for(sqlite_ctx, "admin")))


@pytest.fixture(scope="module")
def spec(sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The document as the server publishes it, fetched once for the module: it is
    made from the routes and models alone (no row of the database goes into it), and
    building it costs about a CPU second, which nine tests paid each. Tests only read
    it."""
    path = tmp_path_factory.mktemp("openapi") / "baton.db"
    shutil.copyfile(sqlite_template, path)
    ctx = open_context(Settings(database_url=f"sqlite:///{path}", env="test"))
    try:
        response = TestClient(create_app(ctx)).get("/openapi.json")
        assert response.status_code == 200, response.text
        document: dict[str, Any] = response.json()
    finally:
        ctx.engine.dispose()
    return document


def _schema(spec: dict[str, Any], ref: dict[str, Any]) -> dict[str, Any]:
    name = ref["$ref"].rsplit("/", 1)[1]
    found: dict[str, Any] = spec["components"]["schemas"][name]
    return found


@pytest.mark.parametrize(
    ("path", "model", "required"),
    [
        ("/api/v1/leads", "LeadCreate", {"email", "phone"}),
        ("/api/v1/activities", "ActivityCreate", {"type"}),  # occurred_at: when received
    ],
)
def test_capture_and_activity_bodies_are_typed_with_examples(
    spec: dict[str, Any], path: str, model: str, required: set[str]
) -> None:
    content = spec["paths"][path]["post"]["requestBody"]["content"]["application/json"]
    assert content["schema"] == {"$ref": f"#/components/schemas/{model}"}
    assert content["examples"], "an example to start from"
    schema = _schema(spec, content["schema"])
    assert schema.get("additionalProperties") is False
    named = set(schema.get("required", [])) | {
        name for option in schema.get("anyOf", []) for name in option.get("required", [])
    }
    assert required <= named


def test_every_error_answer_is_documented_as_problem_json(spec: dict[str, Any]) -> None:
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            codes = {int(code) for code in responses if code.isdigit()}
            where = f"{method.upper()} {path}"
            assert {500, 503} <= codes, where
            if operation.get("security"):
                assert {401, 403} <= codes, where
                assert "WWW-Authenticate" in responses["401"]["headers"], where
            if "{" in path:
                assert 404 in codes, where
            if "requestBody" in operation:
                assert {400, 413, 422} <= codes, where
            for code in codes:
                if code >= 400:
                    content = responses[str(code)]["content"]
                    assert list(content) == ["application/problem+json"], (where, code)
                    assert content["application/problem+json"]["schema"] == {
                        "$ref": "#/components/schemas/Problem"
                    }


def test_every_operation_that_lists_the_ways_in_needs_them(
    sqlite_ctx: Context, spec: dict[str, Any]
) -> None:
    """The document says which operations need credentials (not FastAPI: the routes
    authenticate in one dependency it does not see as a security scheme); every one of
    them answers 401 without credentials, and the three that list none answer without;
    an intake key is listed exactly where it is not refused (403)."""
    assert set(spec["components"]["securitySchemes"]) == {"token", "intake_key", "session"}
    app = create_app(sqlite_ctx)
    anonymous = TestClient(app)
    _, secret = user_service.add_intake_key(
        sqlite_ctx,
        IntakeKeyCreate(name="site", source="web", rate_per_minute=10_000),
        actor=operator(),
    )
    site = TestClient(app, headers={"X-Baton-Intake-Key": secret})
    public, intake = [], []
    for path, operations in spec["paths"].items():
        url = re.sub(r"\{[^}]+\}", "1", path)
        for method, operation in operations.items():
            where = f"{method.upper()} {path}"
            answer = anonymous.request(method.upper(), url, json={})
            if not operation.get("security"):
                public.append(operation["operationId"])
                assert answer.status_code != 401, where
                continue
            assert answer.status_code == 401, where
            ways = [name for option in operation["security"] for name in option]
            assert ways[0] == "token" and ways[-1] == "session", where
            by_key = site.request(method.upper(), url, json={}).status_code
            if "intake_key" in ways:  # read and judged: no 401 nor 403
                intake.append(operation["operationId"])
                assert by_key not in (401, 403), where
            else:  # refused: 403, or a body read first and found wrong (422)
                assert by_key in (403, 422), where
    assert sorted(public) == ["health", "login", "logout", "ready"]
    assert sorted(intake) == ["capture_lead", "ingest_activity", "ingest_activity_batch", "whoami"]


def test_a_405_lists_every_allowed_method(api: TestClient) -> None:
    response = api.put("/api/v1/leads")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, POST"
    assert response.headers["content-type"] == "application/problem+json"
    assert api.request("TRACE", "/api/v1/leads/1").headers["allow"] == "GET"
    assert api.get("/api/v1/leads/1/tags/cold").headers["allow"] == "DELETE"
    literal = api.get("/api/v1/outbox/retry-failed")  # not read as a message id
    assert literal.status_code == 405 and literal.headers["allow"] == "POST"


def _pattern(spec: dict[str, Any], model: str, field: str) -> str:
    schema = spec["components"]["schemas"][model]["properties"][field]
    options = schema.get("anyOf", [schema])
    return str(next(o["pattern"] for o in options if "pattern" in o))


@pytest.mark.parametrize(
    ("model", "field", "path", "body", "good", "bad"),
    [
        (
            "AccountCreate",
            "domain",
            "/api/v1/accounts",
            {},
            ["northwind.com", "www.northwind.co.uk"],
            ["000", "a@b.com", "northwind", "-x.com"],
        ),
        ("TagCreate", "tag", "/api/v1/leads/{lead}/tags", {}, ["cold", "q3:demo"], ["!x", " "]),
        (
            "IntakeKeyCreate",
            "origins",
            "/api/v1/intake-keys",
            {"name": "web", "source": "web"},
            ["https://www.example.com"],
            ["", "www.example.com", "https://x.com/path"],
        ),
    ],
    ids=["domains", "tags", "origins"],
)
def test_schema_constraints_match_the_validation(
    api: TestClient,
    spec: dict[str, Any],
    model: str,
    field: str,
    path: str,
    body: dict[str, Any],
    good: list[str],
    bad: list[str],
) -> None:
    """What the schema's pattern accepts, the API accepts, and what it refuses, the API
    refuses (422), so generated clients and fuzzers meet no surprise."""
    schema = spec["components"]["schemas"][model]["properties"][field]
    pattern = schema["items"]["pattern"] if "items" in schema else _pattern(spec, model, field)
    lead = api.post("/api/v1/leads", json={"email": "dana@northwind.com"}).json()["lead"]["id"]
    url = path.replace("{lead}", str(lead))
    for value in good + bad:
        sent = [value] if "items" in schema else value
        status = (api.put if "accounts" in url else api.post)(url, json={**body, field: sent})
        accepted = re.search(pattern, value) is not None
        assert accepted == (value in good), (value, pattern)
        assert (status.status_code < 300) == accepted, (value, status.text)


def test_a_report_period_and_an_absence_say_their_order(spec: dict[str, Any]) -> None:
    to = next(
        p for p in spec["paths"]["/api/v1/reports/funnel"]["get"]["parameters"] if p["name"] == "to"
    )
    assert "after `from`" in to["description"]
    absence = spec["components"]["schemas"]["AbsenceCreate"]["properties"]["ends_at"]
    assert "After starts_at" in absence["description"]


def _rep(api: TestClient) -> int:
    made = api.post("/api/v1/reps", json={"email": "ana@lumen.example", "name": "Ana"})
    assert made.status_code == 201, made.text
    return int(made.json()["id"])


@pytest.mark.parametrize(
    "starts_at",
    [0, 1_700_000_000, "0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "2026-08-03", True],
)
def test_absurd_timestamps_are_refused(api: TestClient, starts_at: object) -> None:
    rep = _rep(api)
    response = api.post(
        f"/api/v1/reps/{rep}/absences",
        json={"starts_at": starts_at, "ends_at": "2026-08-17T00:00:00Z"},
    )
    assert response.status_code == 422, response.text
    assert [e["loc"] for e in response.json()["errors"]] == ["starts_at"]


def test_absurd_days_and_expiries_are_refused(api: TestClient) -> None:
    for bad in ("0001-01-01", "9999-12-30", "20260301", "2026-02-30"):
        response = api.get("/api/v1/reports/funnel", params={"from": bad, "to": "2026-04-01"})
        assert response.status_code == 422, (bad, response.text)
    ok = api.get("/api/v1/reports/funnel", params={"from": "2026-03-01", "to": "2026-04-01"})
    assert ok.status_code == 200, ok.text
    token = api.post("/api/v1/tokens", json={"name": "x", "scopes": ["admin"], "expires_at": 0})
    assert token.status_code == 422
    event = {"email": "a@northwind.com", "type": "page_view", "occurred_at": 0}
    assert api.post("/api/v1/activities", json=event).status_code == 422


def test_an_absence_in_plain_text_still_works(api: TestClient) -> None:
    rep = _rep(api)
    response = api.post(
        f"/api/v1/reps/{rep}/absences",
        json={"starts_at": "2026-08-03T00:00:00+02:00", "ends_at": "2026-08-17T00:00:00Z"},
    )
    assert response.status_code == 201, response.text


def test_every_published_bound_is_a_json_schema_keyword(spec: dict[str, Any]) -> None:
    """A bound pydantic cannot express in JSON Schema is published under its own name
    (``ge``, ``le``...), which no client or fuzzer reads (a validator placed before the
    bounds did that to an intake key's ``rate_per_minute``: its maximum vanished)."""
    document = spec
    stray: list[str] = []

    def walk(node: object, path: str, under_properties: bool = False) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if not under_properties and key in {"ge", "le", "gt", "lt"}:
                    stray.append(f"{path}/{key}")
                walk(value, f"{path}/{key}", key == "properties" and not under_properties)
        elif isinstance(node, list):
            for index, value in enumerate(node):
                walk(value, f"{path}/{index}")

    walk(document, "")
    assert stray == []
