"""/hooks/{name} over real HTTP (uvicorn on a free port), the management API under
/api/v1/intake and `baton intake` (issue 14, items 1 and 4): a generic mapping on
SQLite and PostgreSQL, a replay, garbage bodies of every content type to every kind
(never a 5xx), a streamed body over the limit, 429 with Retry-After, a web form's 303
to an allowed return URL only, and the log, show and retry on the API and the CLI."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from tests.conftest import bearer, token_for
from tests.e2e.live_server import live_server
from typer.testing import CliRunner

from baton import cli as baton_cli
from baton.api.app import create_app
from baton.cli import app as cli
from baton.config import Settings
from baton.domain.access import operator
from baton.domain.intake import INTAKE_KINDS
from baton.services import intake as intake_service
from baton.services.context import Context, open_context
from baton.store.tables import intake_requests, leads

OP = operator("test")
MAPPING = {"email": "contact.email", "first_name": "contact.first", "upstream_id": "id"}


def add(ctx: Context, name: str = "contact", **extra: Any) -> None:
    spec = {"name": name, "kind": "generic", "source": "website", "mapping": MAPPING}
    _, secret = intake_service.add_endpoint(ctx, {**spec, **extra}, actor=OP)
    if secret and "secret" not in extra:
        intake_service.update_endpoint(ctx, name, {"secret": None}, actor=OP)


def stored(ctx: Context, table: Any = intake_requests) -> int:
    with ctx.read() as connection:
        return int(connection.execute(select(func.count()).select_from(table)).scalar_one())


@pytest.fixture
def served(ctx: Context) -> Iterator[tuple[Context, httpx.Client]]:
    with live_server(create_app(ctx)) as url, httpx.Client(base_url=url, timeout=30) as client:
        yield ctx, client


def test_a_generic_post_over_http_makes_the_lead_once(
    served: tuple[Context, httpx.Client],
) -> None:
    ctx, client = served
    add(ctx)
    body = {"id": "f-1", "contact": {"email": "dana@northwind.example.com", "first": "Dana"}}
    first = client.post("/hooks/contact", json=body)
    assert first.status_code == 200, first.text
    answer = first.json()
    assert answer["status"] == "processed"
    [item] = answer["items"]
    assert item == {"status": "processed", "errors": []}, "no internal id to the sender"
    assert set(answer) == {"request_id", "status", "detail", "items"}
    replay = client.post("/hooks/contact", json=body)
    assert replay.status_code == 200
    assert replay.json()["items"][0] == {**item, "status": "duplicate"}
    assert stored(ctx, leads) == 1 and stored(ctx) == 2
    missing = client.post("/hooks/nope", json=body)
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    unmapped = client.post("/hooks/contact", json={"id": "f-2", "contact": {}})
    assert unmapped.status_code == 422
    problem = unmapped.json()
    assert problem["errors"][0]["loc"] == "email"
    assert problem["request_id"] == intake_service.intake_log(ctx, actor=OP)[0].id


GARBAGE: list[tuple[str, bytes]] = [
    ("application/json", b"{"),
    ("application/json", b"[1, 2, 3]"),
    ("application/json", b'{"a": {"b": [null, true, 1e999]}}'),
    ("application/json", b"\xff\xfe\x00\x01"),
    ("application/x-www-form-urlencoded", b"a=%zz&&=&b"),
    ("application/x-www-form-urlencoded", b"email=%E0%A4%A&retURL=javascript:alert(1)"),
    ("multipart/form-data; boundary=x", b"--x\r\nContent-Disposition: form-data\r\n\r\n--x--"),
    ("text/plain", b"hello"),
    ("text/xml", b"<?xml version='1.0'?><a><b/></a>"),
    ("message/rfc822", b"From: nobody\r\n\r\nbody"),
    ("application/octet-stream", bytes(range(256))),
    ("application/json", b'{"id": "\\u0000", "contact": {"email": "a\\u0000@x.example.com"}}'),
    ("application/json", b"[" * 5000 + b"]" * 5000),
    ("", b""),
]


def test_garbage_of_every_content_type_to_every_kind_is_never_a_5xx(ctx: Context) -> None:
    for kind in INTAKE_KINDS:
        spec: dict[str, Any] = {"name": kind.replace("_", "-"), "kind": kind, "source": "web"}
        if kind == "generic":
            spec["mapping"] = MAPPING
        if kind == "web_to_lead":
            spec["return_urls"] = ["https://www.example.com/thanks"]
        try:
            intake_service.add_endpoint(ctx, spec, actor=OP)
        except Exception as exc:  # a kind whose adapter needs more configuration
            pytest.fail(f"{kind}: {exc}")
    with live_server(create_app(ctx)) as url, httpx.Client(base_url=url, timeout=30) as client:
        for kind in INTAKE_KINDS:
            for content_type, body in GARBAGE:
                headers = {"content-type": content_type} if content_type else {}
                answer = client.post(
                    f"/hooks/{kind.replace('_', '-')}", content=body, headers=headers
                )
                assert answer.status_code < 500, (kind, content_type, body, answer.text)
                if kind == "web_to_lead" and answer.status_code != 422:
                    # garbage that makes no lead is refused (below); the rest is thanked
                    assert answer.status_code == 303, answer.text
                    assert answer.headers["location"] == "https://www.example.com/thanks"
                elif answer.status_code >= 400:
                    assert answer.headers["content-type"] == "application/problem+json"
            # the handshake of a kind without one is a plain 404
            assert client.get(f"/hooks/{kind.replace('_', '-')}").status_code < 500
    assert stored(ctx) == len(INTAKE_KINDS) * len(GARBAGE)  # each one kept raw
    log = intake_service.intake_log(ctx, actor=OP, limit=1000)
    assert [r for r in log if (r.error or "").startswith("internal")] == []


def test_the_limits_at_the_door_over_http(sqlite_ctx: Context) -> None:
    add(sqlite_ctx, max_body_bytes=1024, rate_per_minute=3)
    with (
        live_server(create_app(sqlite_ctx)) as url,
        httpx.Client(base_url=url, timeout=30) as client,
    ):

        def chunks() -> Iterator[bytes]:
            for _ in range(64):  # streamed (chunked, no Content-Length): 64 KiB
                yield b" " * 1024

        streamed = client.post(
            "/hooks/contact", content=chunks(), headers={"content-type": "application/json"}
        )
        assert streamed.status_code == 413, streamed.text
        declared = client.post("/hooks/contact", json={"pad": "x" * 5000})
        assert declared.status_code == 413
        assert stored(sqlite_ctx) == 0
        for n in range(3):
            body = {"id": str(n), "contact": {"email": f"p{n}@example.org"}}
            assert client.post("/hooks/contact", json=body).status_code == 200
        throttled = client.post("/hooks/contact", json={"id": "9"})
        assert throttled.status_code == 429
        assert 1 <= int(throttled.headers["retry-after"]) <= 61
    assert stored(sqlite_ctx) == 3
    [view] = intake_service.list_endpoints(sqlite_ctx, actor=OP)
    assert view.throttled_count == 1


def test_a_web_form_always_goes_back_to_an_allowed_page(sqlite_ctx: Context) -> None:
    intake_service.add_endpoint(
        sqlite_ctx,
        {
            "name": "w2l",
            "kind": "web_to_lead",
            "source": "website",
            "return_urls": ["https://www.example.com/thanks", "https://shop.example.com/"],
            "honeypot_field": "website_url",
            "rate_per_minute": 4,
        },
        actor=OP,
    )
    form = {"email": "dana@northwind.example.com", "last_name": "Reyes", "company": "Northwind"}
    with (
        live_server(create_app(sqlite_ctx)) as url,
        httpx.Client(base_url=url, timeout=30) as client,
    ):
        cases = [
            (
                {**form, "retURL": "https://shop.example.com/done?x=1"},
                "https://shop.example.com/done?x=1",
            ),
            ({**form, "retURL": "https://evil.example/phish"}, "https://www.example.com/thanks"),
            ({**form, "website_url": "http://spam.example"}, "https://www.example.com/thanks"),
            (form, "https://www.example.com/thanks"),
        ]
        for data, target in cases:
            answer = client.post("/hooks/w2l", data=data)
            assert (answer.status_code, answer.headers.get("location")) == (303, target), data
        over = client.post("/hooks/w2l", data=form)  # nothing stored: no thank-you page
        assert (over.status_code, over.headers.get("location")) == (429, None)
    statuses = [r.status for r in intake_service.intake_log(sqlite_ctx, actor=OP)]
    assert "refused" in statuses  # the honeypot post is logged as refused
    assert len(statuses) == 4  # the throttled one is counted, not stored


def test_the_management_api(served: tuple[Context, httpx.Client]) -> None:
    ctx, client = served
    marketing = bearer(token_for(ctx, "marketing"))
    rep = bearer(token_for(ctx, "sales_manager"))
    created = client.post(
        "/api/v1/intake/endpoints",
        json={
            "name": "contact",
            "kind": "generic",
            "source": "Website",
            "mapping": {**MAPPING, "email": "contact.mail"},
        },
        headers=marketing,
    )
    assert created.status_code == 201, created.text
    secret = created.json()["secret"]
    assert secret.startswith("bhk_")
    listed = client.get("/api/v1/intake/endpoints", headers=marketing).json()
    assert listed[0]["secret_set"] is True and "secret" not in listed[0]
    assert client.get("/api/v1/intake/endpoints", headers=rep).status_code == 403
    body = {"id": "f-1", "contact": {"email": "dana@northwind.example.com"}}
    sent = {"x-baton-hook-key": secret, "x-baton-intake-key": "bik_sent-here-by-mistake"}
    failed = client.post("/hooks/contact", json=body, headers=sent)
    assert failed.status_code == 422
    request_id = failed.json()["request_id"]
    log = client.get("/api/v1/intake/requests?status=failed", headers=marketing).json()
    assert [r["id"] for r in log] == [request_id]
    shown = client.get(f"/api/v1/intake/requests/{request_id}", headers=marketing).json()
    assert json.loads(shown["body_text"]) == body
    assert shown["headers"]["x-baton-hook-key"] == "***"  # the key is never logged
    assert shown["headers"]["x-baton-intake-key"] == "***"  # nor an intake key sent here
    assert shown["request_items"][0]["errors"][0]["loc"] == "email"
    fixed = client.patch(
        "/api/v1/intake/endpoints/contact", json={"mapping": MAPPING}, headers=marketing
    )
    assert fixed.status_code == 200 and fixed.json()["mapping"] == MAPPING
    retried = client.post("/api/v1/intake/retry", json={"endpoint": "contact"}, headers=marketing)
    assert retried.json()["processed"] == 1
    assert stored(ctx, leads) == 1
    gone = client.delete("/api/v1/intake/endpoints/contact", headers=marketing)
    assert gone.json()["active"] is False
    assert client.post("/hooks/contact", json=body).status_code == 404


# --- the command line -------------------------------------------------------------------


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("BATON_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.delenv("BATON_ENV", raising=False)
    monkeypatch.setattr(baton_cli.console, "width", 200)
    return CliRunner()


def run(runner: CliRunner, *args: str) -> str:
    result = runner.invoke(cli, list(args))
    assert result.exit_code == 0, (args, result.output)
    return result.output


def test_baton_intake_on_the_command_line(runner: CliRunner, tmp_path: Path) -> None:
    added = run(
        runner,
        "intake",
        "add",
        "contact",
        "--kind",
        "generic",
        "--source",
        "Website",
        "--event-type",
        "contact sales",
        "--map",
        "email=contact.mail",
        "--map",
        "upstream_id=id",
        "--map",
        "event_type_path=form",
        "--map",
        "event_types.newsletter=-",
    )
    assert "POST /hooks/contact" in added and "secret (shown only now" in added
    refused = runner.invoke(cli, ["intake", "add", "x", "--kind", "nope", "--source", "web"])
    assert refused.exit_code == 1 and "--kind" in refused.output
    ctx = open_context(Settings())
    try:
        intake_service.update_endpoint(ctx, "contact", {"secret": None}, actor=OP)
        body = {"id": "1", "contact": {"email": "dana@northwind.example.com"}}
        with live_server(create_app(ctx)) as url:
            assert httpx.post(f"{url}/hooks/contact", json=body, timeout=30).status_code == 422
    finally:
        ctx.engine.dispose()
    listed = run(runner, "intake", "list")
    assert "contact" in listed and "contact_sales" in listed
    log = run(runner, "intake", "log", "--status", "failed")
    assert "failed" in log and "email" in log
    shown = run(runner, "intake", "show", "1")
    assert "dana@northwind.example.com" in shown and "item 0 [1]: failed" in shown
    run(runner, "intake", "update", "contact", "--map", "email=contact.email")
    retried = run(runner, "intake", "retry", "--endpoint", "contact")
    assert "1 submission(s) processed" in retried
    assert "processed" in run(runner, "intake", "log")
    nothing = runner.invoke(cli, ["intake", "retry"])
    assert nothing.exit_code == 1


def test_a_subscription_handshake_is_answered_by_kinds_that_have_one(
    sqlite_ctx: Context,
) -> None:
    add(sqlite_ctx)
    intake_service.add_endpoint(
        sqlite_ctx,
        {"name": "meta", "kind": "meta_lead_ads", "source": "ads", "secret": "verify-me-please"},
        actor=OP,
    )
    hub = {"hub.mode": "subscribe", "hub.challenge": "1158201444"}
    with (
        live_server(create_app(sqlite_ctx)) as url,
        httpx.Client(base_url=url, timeout=30) as client,
    ):
        ok = client.get("/hooks/meta", params={**hub, "hub.verify_token": "verify-me-please"})
        assert (ok.status_code, ok.text) == (200, "1158201444")
        wrong = client.get("/hooks/meta", params={**hub, "hub.verify_token": "guess"})
        assert wrong.status_code == 403
        assert client.get("/hooks/contact", params=hub).status_code == 404
        assert client.get("/hooks/nope").status_code == 404


BROWSER = {"accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
"""What a browser's plain form post asks for."""


def web_form(ctx: Context, **settings: Any) -> None:
    """A ``web_to_lead`` endpoint ``w2l`` thanking at one return URL, with ``settings``."""
    intake_service.add_endpoint(
        ctx,
        {
            "name": "w2l",
            "kind": "web_to_lead",
            "source": "website",
            "return_urls": ["https://www.example.com/thanks"],
            **settings,
        },
        actor=OP,
    )


def test_a_person_whose_form_was_over_the_rate_is_told_to_send_it_again(
    sqlite_ctx: Context,
) -> None:
    """A browser's form post over the rate was not stored: the person gets a page in
    plain words (429, Retry-After), not the thank-you page nor a problem+json; a form
    tool's server, curl or a site's fetch (no text/html in Accept) gets the 429
    problem+json, from a web_to_lead endpoint too: never the 303 to the thank-you."""
    web_form(sqlite_ctx, rate_per_minute=1)
    add(sqlite_ctx, rate_per_minute=1)
    form = {"email": "dana@northwind.example.com", "last_name": "Reyes"}
    with (
        live_server(create_app(sqlite_ctx)) as url,
        httpx.Client(base_url=url, timeout=30) as client,
    ):
        assert client.post("/hooks/w2l", data=form, headers=BROWSER).status_code == 303
        for path in ("/hooks/w2l", "/hooks/contact"):
            if path == "/hooks/contact":
                body = {"id": "1", "contact": {"email": "p1@example.org"}}
                assert client.post(path, json=body).status_code == 200
            busy = client.post(path, data=form, headers=BROWSER)
            assert busy.status_code == 429, (path, busy.text)
            assert busy.headers["content-type"].startswith("text/html")
            assert 1 <= int(busy.headers["retry-after"]) <= 61
            text = " ".join(busy.text.split())
            assert "Your form was not sent" in text
            assert "send it again" in text and "requests a minute" not in text
        for accept in ({}, {"accept": "*/*"}, {"accept": "application/json"}):
            # curl, a site posting the form with fetch: told, never sent to the thank-you
            server = client.post("/hooks/w2l", data=form, headers=accept)
            assert server.status_code == 429, (accept, server.headers.get("location"))
            assert server.headers["content-type"] == "application/problem+json"
            assert 1 <= int(server.headers["retry-after"]) <= 61
            assert "requests a minute" in server.json()["detail"]
        api = client.post("/hooks/contact", json={"id": "2"})
        assert api.status_code == 429
        assert api.headers["content-type"] == "application/problem+json"


def test_a_form_too_large_is_never_thanked(sqlite_ctx: Context) -> None:
    """A web form's post over the endpoint's size was not stored: a browser gets a page
    saying so (413), curl or a site's fetch the 413 problem+json; never the 303 to the
    thank-you page (it was, before: from a newcomer's trial)."""
    web_form(sqlite_ctx, max_body_bytes=2048)
    form = {"email": "dana@northwind.example.com", "last_name": "Reyes"}
    large = {**form, "notes": "x" * 4000}
    with (
        live_server(create_app(sqlite_ctx)) as url,
        httpx.Client(base_url=url, timeout=30) as client,
    ):
        assert client.post("/hooks/w2l", data=form, headers=BROWSER).status_code == 303
        page = client.post("/hooks/w2l", data=large, headers=BROWSER)
        assert (page.status_code, page.headers.get("location")) == (413, None)
        assert page.headers["content-type"].startswith("text/html")
        assert "Your form was not sent" in " ".join(page.text.split())
        for accept in ({}, {"accept": "*/*"}):
            server = client.post("/hooks/w2l", data=large, headers=accept)
            assert (server.status_code, server.headers.get("location")) == (413, None)
            assert server.headers["content-type"] == "application/problem+json"
    assert len(intake_service.intake_log(sqlite_ctx, actor=OP)) == 1


def test_a_form_that_cannot_be_read_is_never_thanked(sqlite_ctx: Context) -> None:
    """A web form's post whose fields cannot make a lead (an email without its @) is
    kept in the intake log to retry, but the visitor is not thanked as if it had
    reached sales: a browser gets a page naming each field to correct (422, the
    values escaped), curl or a site's fetch the 422 problem+json with the errors; a
    readable form still gets its 303."""
    web_form(sqlite_ctx)
    form = {"email": "dana@northwind.example.com", "last_name": "Reyes"}
    broken = {"email": "dana.northwind.example.com<b>", "last_name": "Reyes"}
    with (
        live_server(create_app(sqlite_ctx)) as url,
        httpx.Client(base_url=url, timeout=30) as client,
    ):
        assert client.post("/hooks/w2l", data=form, headers=BROWSER).status_code == 303
        page = client.post("/hooks/w2l", data=broken, headers=BROWSER)
        assert (page.status_code, page.headers.get("location")) == (422, None), page.text
        assert page.headers["content-type"].startswith("text/html")
        text = " ".join(page.text.split())
        assert "Your form was not sent" in text
        assert "email" in text.lower() and "<b>" not in text
        for accept in ({}, {"accept": "*/*"}):
            server = client.post("/hooks/w2l", data=broken, headers=accept)
            assert (server.status_code, server.headers.get("location")) == (422, None)
            assert server.headers["content-type"] == "application/problem+json"
            assert any("email" in e["loc"] for e in server.json()["errors"])
    log = intake_service.intake_log(sqlite_ctx, actor=OP)
    assert sorted(r.status for r in log) == ["failed", "failed", "failed", "processed"]
