"""Fetching the full record of an id-only webhook (Meta lead ads, HubSpot contacts).

The platforms are played by a real HTTP server on loopback that answers each path with
the platform's JSON (the Graph API lead and the CRM v3 contact, shaped like
``../shared/datasets/webhook-samples``): mocked only at the HTTP boundary. Loopback is
reached the way a deployment reaches an internal service, through
``BATON_WEBHOOK_INTERNAL_ALLOWLIST``; without it the egress rule refuses the address
before anything is sent.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from tests.notify_servers import closed_port, silent_server

from baton.api.app import create_app
from baton.domain.access import operator
from baton.domain.clock import ManualClock
from baton.domain.errors import ValidationFailed
from baton.domain.intake import Delivery, FetchRequest
from baton.integrations.fetch import DEFAULT_BASE_URLS, fetch_record, record_url
from baton.notify.egress import webhook_client
from baton.notify.email import SmtpConfig
from baton.services import intake as intake_service
from baton.services.context import Context
from baton.services.intake_fetch import MAX_ATTEMPTS, run_fetches
from baton.services.worker import Worker, tick
from baton.store.tables import intake_items, leads

OPS = operator("ops")
TOKEN = "EAAGm0PX4ZCpsBAfetch-token-for-tests-0123456789"
APP_SECRET = "meta-app-secret-for-tests"
LEADGEN_IDS = ("437874384353", "437874384986")


# --- the platforms, on loopback ------------------------------------------------------------


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, list[str]]
    authorization: str | None


@dataclass
class Platform:
    """Answers ``GET <path>`` with ``answers[path]`` (status, JSON body, headers); any
    other path 404 with the platform's error shape."""

    host: str
    port: int
    answers: dict[str, tuple[int, Any, dict[str, str]]] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def answer(self, path: str, body: Any, status: int = 200, **headers: str) -> None:
        self.answers[path] = (status, body, headers)


class _Handler(BaseHTTPRequestHandler):
    server: Any

    def do_GET(self) -> None:
        platform: Platform = self.server.platform
        parts = urlsplit(self.path)
        platform.seen.append(
            Seen("GET", parts.path, parse_qs(parts.query), self.headers.get("Authorization"))
        )
        status, body, headers = platform.answers.get(
            parts.path,
            (404, {"error": {"message": "Unsupported get request.", "code": 100}}, {}),
        )
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        """Silent."""


@pytest.fixture
def platform() -> Iterator[Platform]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    server.platform = Platform("127.0.0.1", server.server_address[1])  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield server.platform  # type: ignore[attr-defined]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def graph_lead(leadgen_id: str, email: str, name: str = "Liam Hargreaves") -> dict[str, Any]:
    """A lead as ``GET /<leadgen_id>`` answers it (the sample's shape)."""
    return {
        "created_time": "2025-11-05T07:12:44+0000",
        "id": leadgen_id,
        "ad_id": "48916357195",
        "form_id": "45624053658",
        "field_data": [
            {"name": "full_name", "values": [name]},
            {"name": "email", "values": [email]},
            {"name": "phone_number", "values": ["+61491570156"]},
            {"name": "company_name", "values": ["Quokka Retail Pty Ltd"]},
            {"name": "job_title", "values": ["Chief Technology Officer"]},
            {"name": "team_size_band", "values": ["201-1000"]},
        ],
    }


def meta_webhook(*leadgen_ids: str) -> bytes:
    """Meta's page webhook: ids only (numbers, as in the docs' example)."""
    changes = [
        {
            "field": "leadgen",
            "value": {
                "leadgen_id": int(i),
                "page_id": 387264046062,
                "form_id": 45624053658,
                "adgroup_id": 48916357195,
                "ad_id": 48916357195,
                "created_time": 1762326764,
            },
        }
        for i in leadgen_ids
    ]
    entry = [{"id": 387264046062, "time": 1762327145, "changes": changes}]
    return json.dumps({"object": "page", "entry": entry}).encode()


def hubspot_contact(contact_id: str, email: str) -> dict[str, Any]:
    """A CRM v3 contact as ``GET /crm/v3/objects/contacts/{id}`` answers it."""
    return {
        "id": contact_id,
        "properties": {
            "email": email,
            "firstname": "Priya",
            "lastname": "Raman",
            "company": "Larchmont Freight Ltd",
            "jobtitle": "Head of Operations",
            "hs_object_id": contact_id,
            "createdate": "2025-11-03T10:14:23.387Z",
        },
        "createdAt": "2025-11-03T10:14:23.387Z",
        "updatedAt": "2025-11-03T10:14:23.387Z",
        "archived": False,
    }


def hubspot_batch(*object_ids: str) -> bytes:
    return json.dumps(
        [
            {
                "objectId": int(object_id),
                "changeSource": "FORM",
                "eventId": 2476869041 + n,
                "subscriptionId": 22,
                "portalId": 53,
                "appId": 3709640,
                "occurredAt": 1762164863387,
                "subscriptionType": "contact.creation",
                "attemptNumber": 0,
            }
            for n, object_id in enumerate(object_ids)
        ]
    ).encode()


# --- the set-up ---------------------------------------------------------------------------


def allow_loopback(ctx: Context) -> None:
    ctx.settings = ctx.settings.model_copy(update={"webhook_internal_allowlist": "127.0.0.1"})


def add(ctx: Context, name: str, kind: str, base: str | None, **extra: Any) -> None:
    intake_service.add_endpoint(
        ctx,
        {
            "name": name,
            "kind": kind,
            "source": name,
            "fetch_token": TOKEN,
            "fetch_base_url": base,
            **extra,
        },
        actor=OPS,
    )


def post(ctx: Context, name: str, body: bytes, headers: dict[str, str] | None = None) -> Any:
    delivery = Delivery(
        body=body,
        content_type="application/json",
        headers={k.lower(): v for k, v in (headers or {}).items()},
        query={},
        received_at=ctx.clock.now(),
        url=f"https://baton.example.com/hooks/{name}",
    )
    return intake_service.receive(ctx, name, delivery, remote_address="203.0.113.9")


def post_meta(ctx: Context, name: str, *leadgen_ids: str) -> Any:
    body = meta_webhook(*leadgen_ids)
    signature = hmac.new(APP_SECRET.encode(), body, hashlib.sha256).hexdigest()
    return post(ctx, name, body, {"X-Hub-Signature-256": f"sha256={signature}"})


def items(ctx: Context) -> list[dict[str, Any]]:
    with ctx.read() as connection:
        rows = connection.execute(select(intake_items).order_by(intake_items.c.id))
        return [dict(r) for r in rows.mappings()]


def fetch_pass(ctx: Context) -> Any:
    with webhook_client(ctx.settings) as http:
        return run_fetches(ctx, client=http)


def lead_emails(ctx: Context) -> list[str]:
    with ctx.read() as connection:
        return sorted(connection.execute(select(leads.c.email)).scalars())


# --- the worker job -----------------------------------------------------------------------


def test_meta_leads_are_fetched_with_the_token_in_a_header_and_captured(
    ctx: Context, platform: Platform
) -> None:
    allow_loopback(ctx)
    add(ctx, "meta-ads", "meta_lead_ads", platform.url + "/v21.0", secret=APP_SECRET)
    platform.answer(f"/v21.0/{LEADGEN_IDS[0]}", graph_lead(LEADGEN_IDS[0], "liam@example.com"))
    platform.answer(
        f"/v21.0/{LEADGEN_IDS[1]}", graph_lead(LEADGEN_IDS[1], "grace@example.org", "Grace W")
    )

    # Over HTTP, as Meta posts it: stored, answered 202 (the record is still to read).
    body = meta_webhook(*LEADGEN_IDS)
    signature = hmac.new(APP_SECRET.encode(), body, hashlib.sha256).hexdigest()
    with TestClient(create_app(ctx)) as client:
        answer = client.post(
            "/hooks/meta-ads",
            content=body,
            headers={
                "Content-Type": "application/json",
                "X-Hub-Signature-256": f"sha256={signature}",
            },
        )
    assert answer.status_code == 202, answer.text
    assert [i["status"] for i in items(ctx)] == ["awaiting_fetch", "awaiting_fetch"]
    assert lead_emails(ctx) == []

    report = fetch_pass(ctx)

    assert (report.done, report.failed, report.retrying) == (2, 0, 0)
    assert lead_emails(ctx) == ["grace@example.org", "liam@example.com"]
    done = items(ctx)
    assert [i["status"] for i in done] == ["processed", "processed"]
    assert [i["upstream_id"] for i in done] == list(LEADGEN_IDS), "the replay key is kept"
    assert all(i["lead_id"] for i in done)
    assert [s.path for s in platform.seen] == [f"/v21.0/{i}" for i in LEADGEN_IDS]
    for seen in platform.seen:
        assert seen.authorization == f"Bearer {TOKEN}"
        assert "field_data" in seen.query["fields"][0]
        assert TOKEN not in json.dumps(seen.query), "the token never goes in the URL"

    # A replay of the same webhook: recognized, nothing fetched or written again.
    post_meta(ctx, "meta-ads", *LEADGEN_IDS)
    assert fetch_pass(ctx).busy is False
    assert len(platform.seen) == 2
    assert lead_emails(ctx) == ["grace@example.org", "liam@example.com"]


def test_hubspot_contact_events_fetch_the_contact(ctx: Context, platform: Platform) -> None:
    allow_loopback(ctx)
    add(ctx, "hubspot-contacts", "hubspot", platform.url, mapping={"attributes.goal": "demo_goal"})
    contact = hubspot_contact("2982973", "priya@example.com")
    contact["properties"]["demo_goal"] = "one weekly view of depot costs"
    platform.answer("/crm/v3/objects/contacts/2982973", contact)

    post(ctx, "hubspot-contacts", hubspot_batch("2982973"))
    report = fetch_pass(ctx)

    assert report.done == 1
    assert lead_emails(ctx) == ["priya@example.com"]
    (seen,) = platform.seen
    assert seen.path == "/crm/v3/objects/contacts/2982973"
    asked = seen.query["properties"][0].split(",")
    assert "email" in asked and "demo_goal" in asked, "the mapping's properties are asked for"
    with ctx.read() as connection:
        attributes = connection.execute(select(leads.c.attributes)).scalar_one()
    assert attributes["goal"] == "one weekly view of depot costs"
    assert seen.authorization == f"Bearer {TOKEN}"
    (item,) = items(ctx)
    assert item["status"] == "processed"
    assert item["upstream_id"] == "2476869041", "the webhook's event id stays the replay key"


def test_a_refused_token_fails_the_item_at_once_with_a_clear_error_and_no_token(
    ctx: Context, platform: Platform, caplog: pytest.LogCaptureFixture
) -> None:
    allow_loopback(ctx)
    add(ctx, "meta-ads", "meta_lead_ads", platform.url, secret=APP_SECRET)
    platform.answer(
        f"/{LEADGEN_IDS[0]}",
        {"error": {"message": "Error validating access token: Session has expired", "code": 190}},
        status=401,
    )
    post_meta(ctx, "meta-ads", LEADGEN_IDS[0], LEADGEN_IDS[1])  # the second: 404

    with caplog.at_level(logging.DEBUG):
        report = fetch_pass(ctx)
        ctx.clock.advance(hours=3)  # type: ignore[attr-defined]
        later = fetch_pass(ctx)

    assert (report.failed, report.retrying, later.busy) == (2, 0, False), "no retry storm"
    assert len(platform.seen) == 2, "one request each"
    first, second = items(ctx)
    assert first["status"] == second["status"] == "failed"
    assert "HTTP 401" in first["error"][0]["message"]
    assert "fetch token was refused" in first["error"][0]["message"]
    assert "Session has expired" in first["error"][0]["message"]
    assert "HTTP 404" in second["error"][0]["message"]
    assert "no such record" in second["error"][0]["message"]
    assert first["error"][0]["loc"] == "fetch"
    everything = json.dumps([first["error"], second["error"]]) + caplog.text
    assert TOKEN not in everything
    assert lead_emails(ctx) == []


def test_server_errors_back_off_and_give_up_after_the_last_attempt(
    ctx: Context, platform: Platform
) -> None:
    allow_loopback(ctx)
    clock: ManualClock = ctx.clock  # type: ignore[assignment]
    add(ctx, "hubspot-contacts", "hubspot", platform.url)
    path = "/crm/v3/objects/contacts/2982973"
    platform.answer(path, {"status": "error", "message": "internal error"}, status=502)
    post(ctx, "hubspot-contacts", hubspot_batch("2982973"))

    first = fetch_pass(ctx)
    (item,) = items(ctx)
    assert (first.retrying, item["status"], item["attempts"]) == (1, "awaiting_fetch", 1)
    assert item["next_attempt_at"] == clock.now() + timedelta(seconds=30)
    assert fetch_pass(ctx).busy is False, "not due before its backoff"

    for _ in range(MAX_ATTEMPTS - 1):
        clock.advance(hours=1)
        fetch_pass(ctx)
    (item,) = items(ctx)
    assert item["status"] == "failed"
    assert item["attempts"] == MAX_ATTEMPTS
    assert f"gave up after {MAX_ATTEMPTS} attempts" in item["error"][0]["message"]
    assert len(platform.seen) == MAX_ATTEMPTS


def test_a_poisoned_item_never_blocks_the_others(ctx: Context, platform: Platform) -> None:
    allow_loopback(ctx)
    add(ctx, "hubspot-contacts", "hubspot", platform.url)
    platform.answer("/crm/v3/objects/contacts/1", b"<html>not json</html>")
    platform.answer("/crm/v3/objects/contacts/2", {"id": "2", "properties": "nope"})
    platform.answer("/crm/v3/objects/contacts/3", hubspot_contact("3", "ok@example.com"))
    post(ctx, "hubspot-contacts", hubspot_batch("1", "2", "3"))

    report = fetch_pass(ctx)

    assert (report.done, report.failed) == (1, 2)
    one, two, three = items(ctx)
    assert one["status"] == "failed" and "without a JSON object" in one["error"][0]["message"]
    assert two["status"] == "failed"
    assert [e["loc"] for e in two["error"]] == ["fetch", "properties"], "the field is named"
    assert three["status"] == "processed"
    assert lead_emails(ctx) == ["ok@example.com"]


def test_a_base_url_inside_the_network_is_refused_before_anything_is_sent(
    ctx: Context, platform: Platform
) -> None:
    with pytest.raises(ValidationFailed) as refused:  # no allow-list: refused when saved
        add(ctx, "meta-ads", "meta_lead_ads", platform.url, secret=APP_SECRET)
    assert "127.0.0.1 is a loopback address" in refused.value.problems[0].message
    allow_loopback(ctx)  # saved while allowed; the allow-list is then taken back
    add(ctx, "meta-ads", "meta_lead_ads", platform.url, secret=APP_SECRET)
    ctx.settings = ctx.settings.model_copy(update={"webhook_internal_allowlist": ""})
    post_meta(ctx, "meta-ads", LEADGEN_IDS[0])

    report = fetch_pass(ctx)

    assert report.failed == 1
    assert platform.seen == []
    (item,) = items(ctx)
    assert "127.0.0.1 is a loopback address" in item["error"][0]["message"]


def test_a_fixed_token_then_retry_fetches_again(ctx: Context, platform: Platform) -> None:
    allow_loopback(ctx)
    add(ctx, "meta-ads", "meta_lead_ads", platform.url, secret=APP_SECRET)
    path = f"/{LEADGEN_IDS[0]}"
    platform.answer(path, {"error": {"message": "Invalid OAuth access token."}}, status=400)
    outcome = post_meta(ctx, "meta-ads", LEADGEN_IDS[0])
    fetch_pass(ctx)
    assert items(ctx)[0]["status"] == "failed"

    platform.answer(path, graph_lead(LEADGEN_IDS[0], "liam@example.com"))
    intake_service.update_endpoint(ctx, "meta-ads", {"fetch_token": TOKEN + "-new"}, actor=OPS)
    intake_service.retry(ctx, actor=OPS, request_ids=[outcome.request_id])
    fetch_pass(ctx)

    assert [i["status"] for i in items(ctx)] == ["processed"]
    assert platform.seen[-1].authorization == f"Bearer {TOKEN}-new"
    assert lead_emails(ctx) == ["liam@example.com"]
    with ctx.read() as connection:
        assert connection.execute(select(func.count()).select_from(leads)).scalar_one() == 1


def test_an_unreachable_platform_is_tried_once_a_pass_and_later_again(ctx: Context) -> None:
    allow_loopback(ctx)
    add(ctx, "hubspot-contacts", "hubspot", f"http://127.0.0.1:{closed_port()}")
    post(ctx, "hubspot-contacts", hubspot_batch("1", "2", "3"))

    report = fetch_pass(ctx)

    assert (report.retrying, report.failed, report.done) == (1, 0, 0), "the others wait untried"
    tried, *untried = items(ctx)
    assert "could not connect to HubSpot" in tried["error"][0]["message"]
    assert [i["error"] for i in untried] == [None, None]
    assert all(i["status"] == "awaiting_fetch" for i in items(ctx))


def test_the_worker_runs_the_fetches_in_its_pass_and_its_own_lane(
    ctx: Context, platform: Platform
) -> None:
    allow_loopback(ctx)
    add(ctx, "meta-ads", "meta_lead_ads", platform.url, secret=APP_SECRET)
    platform.answer(f"/{LEADGEN_IDS[0]}", graph_lead(LEADGEN_IDS[0], "liam@example.com"))
    post_meta(ctx, "meta-ads", LEADGEN_IDS[0])

    with webhook_client(ctx.settings) as http:
        assert "intake fetch" in [lane.name for lane in Worker(ctx, client=http).lanes]
        report = tick(ctx, smtp=SmtpConfig(host="127.0.0.1", port=closed_port()), client=http)

    assert report.fetched == 1
    assert lead_emails(ctx) == ["liam@example.com"]


# --- the client on its own ----------------------------------------------------------------


def test_the_default_base_urls_are_the_platforms_apis() -> None:
    meta = record_url(FetchRequest("meta", "437874384353"), None)
    assert meta.startswith(DEFAULT_BASE_URLS["meta"] + "/437874384353?fields=")
    assert meta.startswith("https://graph.facebook.com/v")
    hubspot = record_url(FetchRequest("hubspot", "2982973"), "")
    assert hubspot.startswith("https://api.hubapi.com/crm/v3/objects/contacts/2982973?properties=")
    # A configured base wins (a pinned version, an EU data centre), without a double slash.
    assert record_url(FetchRequest("meta", "1"), "https://graph.example/v19.0/").startswith(
        "https://graph.example/v19.0/1?"
    )


@pytest.mark.parametrize("object_id", ["../me", "1/leads", "1?x=y", "", "abc"])
def test_an_id_that_is_not_a_platform_id_is_never_requested(object_id: str) -> None:
    with pytest.raises(ValueError, match="not a"):
        record_url(FetchRequest("meta", object_id), None)


def test_no_token_no_request(platform: Platform) -> None:
    with webhook_client_for_loopback() as http:
        result = fetch_record(
            http, FetchRequest("meta", "1"), token=None, configured_base=platform.url
        )
    assert not result.ok and not result.retryable
    assert "no fetch token" in (result.error or "")
    assert platform.seen == []


def test_rate_limits_are_retried_after_the_platforms_retry_after(platform: Platform) -> None:
    platform.answer("/1", {"error": {"message": "User request limit reached"}}, status=429,
                    **{"Retry-After": "120"})  # fmt: skip
    with webhook_client_for_loopback() as http:
        result = fetch_record(
            http, FetchRequest("meta", "1"), token=TOKEN, configured_base=platform.url
        )
    assert (result.ok, result.retryable, result.retry_after_seconds) == (False, True, 120.0)
    assert "User request limit reached" in (result.error or "")


def test_a_platform_that_never_answers_times_out_and_is_retried() -> None:
    with silent_server() as (host, port), webhook_client_for_loopback() as http:
        result = fetch_record(
            http,
            FetchRequest("hubspot", "1"),
            token=TOKEN,
            configured_base=f"http://{host}:{port}",
            timeout=0.3,
        )
    assert (result.ok, result.retryable) == (False, True)
    assert result.error == "HubSpot did not answer within 0.3 s"


def webhook_client_for_loopback() -> Any:
    from baton.config import Settings

    return webhook_client(Settings(env="test", webhook_internal_allowlist="127.0.0.1"))


def test_a_new_token_makes_the_waiting_fetches_due_at_once(
    ctx: Context, platform: Platform
) -> None:
    """A platform failing with 5xx leaves its items waiting out a backoff; the fix an
    admin makes (a new token) is tried at the next pass, not minutes later."""
    allow_loopback(ctx)
    clock: ManualClock = ctx.clock  # type: ignore[assignment]
    add(ctx, "hubspot-contacts", "hubspot", platform.url)
    path = "/crm/v3/objects/contacts/2982973"
    platform.answer(path, {"status": "error", "message": "internal error"}, status=502)
    post(ctx, "hubspot-contacts", hubspot_batch("2982973"))
    fetch_pass(ctx)
    assert items(ctx)[0]["next_attempt_at"] > clock.now()
    assert fetch_pass(ctx).busy is False, "waiting out its backoff"

    platform.answer(path, hubspot_contact("2982973", "fixed@example.com"))
    intake_service.update_endpoint(
        ctx, "hubspot-contacts", {"fetch_token": TOKEN + "-new"}, actor=OPS
    )
    fetch_pass(ctx)

    assert [i["status"] for i in items(ctx)] == ["processed"]
    assert platform.seen[-1].authorization == f"Bearer {TOKEN}-new"
    assert lead_emails(ctx) == ["fixed@example.com"]
