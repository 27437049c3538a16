"""Issue 14's inbound doors against hostile input (OWASP API Top 10): the intake log
never shows an endpoint's secret or fetch token, a fetch base URL never points the
token inside the network or off https in production, nor to a new host without the
token being given again, a web form's visitor is never sent off the allowed pages,
and the SMTP listener survives crafted sessions and messages."""

from __future__ import annotations

import json
import smtplib
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlencode

import httpcore
import pytest

from baton.config import Settings
from baton.domain.access import operator
from baton.domain.errors import ValidationFailed
from baton.domain.intake import Delivery, FetchRequest
from baton.domain.intake_endpoints import allowed_return_url
from baton.inbound_smtp import MAX_RECIPIENTS, ListenerConfig, listening
from baton.integrations import email as email_adapter
from baton.integrations.fetch import fetch_record
from baton.notify.egress import webhook_client
from baton.redact import mask
from baton.services import intake as intake_service
from baton.services.context import Context
from baton.services.inbound_email import SmtpReply, ensure_email_endpoint, receive_message

OP = operator("test")
SECRET = "s3cr3t+key/with=odd&chars"
TOKEN = "EAAG-fetch-token-0123456789"


def post(
    ctx: Context,
    name: str,
    body: bytes,
    content_type: str,
    headers: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
) -> intake_service.HookOutcome:
    url = f"https://baton.example.com/hooks/{name}"
    if query:
        url += "?" + urlencode(query)
    delivery = Delivery(
        body=body,
        content_type=content_type,
        headers=headers or {},
        query=query or {},
        received_at=ctx.clock.now(),
        url=url,
    )
    return intake_service.receive(ctx, name, delivery, remote_address="203.0.113.9")


def shown(ctx: Context, request_id: int | None) -> str:
    assert request_id is not None
    detail = intake_service.show_request(ctx, request_id, actor=OP)
    return json.dumps(
        {
            "url": detail.url,
            "headers": detail.headers,
            "query": detail.query,
            "body": detail.body_text,
            "base64": detail.body_base64,
            "error": detail.summary.error,
            "items": [i.item for i in detail.items],
        }
    )


def test_the_log_never_shows_an_endpoints_secret_or_fetch_token(ctx: Context) -> None:
    intake_service.add_endpoint(
        ctx,
        {"name": "gads", "kind": "google_ads_lead_form", "source": "google", "secret": SECRET},
        actor=OP,
    )
    body = {
        "lead_id": "L-1",
        "Google_key": SECRET,
        "user_column_data": [{"column_id": "EMAIL", "string_value": "dana@northwind.example"}],
        "note": f"key again: {SECRET}",
    }
    first = post(ctx, "gads", json.dumps(body).encode(), "application/json")
    wrong = post(ctx, "gads", json.dumps({**body, "Google_key": "nope-nope"}).encode(), "x/y")
    intake_service.add_endpoint(
        ctx,
        {
            "name": "w2l",
            "kind": "web_to_lead",
            "source": "website",
            "secret": "00D5e000000ORGID",
            "return_urls": ["https://www.example.com/thanks"],
        },
        actor=OP,
    )
    form = urlencode({"oid": "00D5e000000ORGID", "email": "ana@example.org", "last_name": "Ng"})
    posted = post(ctx, "w2l", form.encode(), "application/x-www-form-urlencoded")
    intake_service.add_endpoint(
        ctx,
        {
            "name": "generic",
            "kind": "generic",
            "source": "website",
            "mapping": {"email": "email"},
            "secret": SECRET,
            "fetch_token": TOKEN,
        },
        actor=OP,
    )
    raw = b"\xff\xfe not utf-8 " + SECRET.encode() + b" " + TOKEN.encode()
    keyed = post(
        ctx,
        "generic",
        raw,
        "application/octet-stream",
        headers={"x-baton-hook-key": SECRET, "x-api-key": "abc123", "x-note": f"k={SECRET}"},
        query={"key": SECRET, "t": TOKEN},
    )
    for outcome in (first, wrong, posted, keyed):
        text = shown(ctx, outcome.request_id)
        for secret in (SECRET, TOKEN, "00D5e000000ORGID", "abc123"):
            assert secret not in text, (outcome.request_id, secret)
            assert secret.replace("+", "%2B").replace("/", "%2F") not in text
        if outcome is keyed:
            detail = intake_service.show_request(ctx, outcome.request_id or 0, actor=OP)
            assert detail.body_base64 is not None
            assert SECRET.encode() not in __import__("base64").b64decode(detail.body_base64)
    assert "***" in shown(ctx, first.request_id)
    with ctx.read() as connection:
        row = intake_service.endpoint_in(connection, name="generic")
    assert row is not None and SECRET not in repr(row) and TOKEN not in repr(row)
    assert SECRET not in repr(row.config)
    # and a log line or an error that quotes them is masked where it leaves the process
    assert mask(f"refused {SECRET} with {TOKEN}") == "refused *** with ***"


def test_a_fetch_base_url_never_points_the_token_inside_or_off_https(ctx: Context) -> None:
    spec: dict[str, Any] = {"name": "meta", "kind": "meta_lead_ads", "source": "meta"}
    for url in (
        "http://127.0.0.1:8080/v21.0",
        "https://10.1.2.3/v21.0",
        "https://[::1]/",
        "https://169.254.169.254/latest",
        "https://localhost/v1",
        "https://user:pw@graph.example.com/",
    ):
        with pytest.raises(ValidationFailed) as refused:
            intake_service.add_endpoint(ctx, {**spec, "fetch_base_url": url}, actor=OP)
        assert refused.value.problems[0].loc == "fetch_base_url", url
    production = ctx.settings.model_copy(update={"env": "production"})
    saved, ctx.settings = ctx.settings, production
    try:
        with pytest.raises(ValidationFailed, match="not valid"):
            intake_service.add_endpoint(
                ctx, {**spec, "fetch_base_url": "http://graph.example.com/v21.0"}, actor=OP
            )
    finally:
        ctx.settings = saved
    ctx.settings = ctx.settings.model_copy(update={"webhook_internal_allowlist": "10.1.2.3"})
    intake_service.add_endpoint(
        ctx,
        {**spec, "fetch_base_url": "https://10.1.2.3/v21.0", "fetch_token": TOKEN},
        actor=OP,
    )
    # Moving the token somewhere else takes the token itself, not just the URL.
    with pytest.raises(ValidationFailed) as moved:
        intake_service.update_endpoint(
            ctx, "meta", {"fetch_base_url": "https://collector.example.net/"}, actor=OP
        )
    assert moved.value.problems[0].loc == "fetch_token"
    view = intake_service.update_endpoint(
        ctx,
        "meta",
        {"fetch_base_url": "https://graph.example.com/v21.0", "fetch_token": TOKEN + "x"},
        actor=OP,
    )
    assert view.fetch_base_url == "https://graph.example.com/v21.0"
    same = intake_service.update_endpoint(
        ctx, "meta", {"fetch_base_url": view.fetch_base_url, "campaign": "q2"}, actor=OP
    )
    assert same.campaign == "q2"  # the web form sends the URL unchanged: fine


@pytest.mark.parametrize("inside", ["127.0.0.1", "10.20.30.40", "169.254.169.254"])
def test_a_fetch_host_resolving_inside_is_refused_unless_allow_listed(inside: str) -> None:
    """A public-looking name that resolves inside (DNS rebinding): refused at connect,
    nothing sent, the token in no error; allow-listed, the connection is attempted."""
    connected: list[str] = []

    def resolver(host: str, port: int) -> list[str]:
        return [inside]

    def connector(address: str, port: int, timeout: float | None) -> httpcore.NetworkStream:
        connected.append(address)
        raise httpcore.ConnectError("test: no connection made")

    request = FetchRequest("meta", "1234567890")
    base = "https://graph.rebind.example/v21.0"
    with webhook_client(Settings(env="test"), resolver=resolver, connector=connector) as client:
        refused = fetch_record(client, request, token=TOKEN, configured_base=base)
    assert not refused.ok and not refused.retryable and connected == []
    assert refused.error is not None and TOKEN not in refused.error
    assert inside in refused.error
    allowing = Settings(env="test", webhook_internal_allowlist=inside)
    with webhook_client(allowing, resolver=resolver, connector=connector) as client:
        tried = fetch_record(client, request, token=TOKEN, configured_base=base)
    assert connected == [inside] and tried.retryable


ALLOWED = ("https://www.example.com/thanks", "https://shop.example.com/")


@pytest.mark.parametrize(
    "wanted",
    [
        "javascript:alert(1)",
        "JavaScript:alert(document.cookie)//https://www.example.com/thanks",
        "data:text/html,<script>alert(1)</script>",
        "//evil.example/thanks",
        "///evil.example/thanks",
        "https://evil.example/thanks",
        "https://www.example.com@evil.example/thanks",
        "https://www.example.com.evil.example/thanks",
        "https://www.example.com:8443/thanks",
        "http://www.example.com/thanks",
        "https://www.example.com\\@evil.example/thanks",
        "https:\\\\evil.example/thanks",
        "https://www.example.com/other",
        "/thanks",
        "",
    ],
)
def test_a_return_url_off_the_allowed_pages_goes_to_the_first(wanted: str) -> None:
    assert allowed_return_url(wanted, ALLOWED) == ALLOWED[0]


def test_a_return_url_on_an_allowed_page_is_kept() -> None:
    assert allowed_return_url("https://www.example.com/thanks?x=1", ALLOWED).endswith("?x=1")
    assert allowed_return_url("https://shop.example.com/done", ALLOWED) == (
        "https://shop.example.com/done"
    )


def test_a_thread_of_thousands_of_references_is_read_to_a_bound() -> None:
    ids = " ".join(f"<m{n}@mail.example>" for n in range(5000))
    raw = (
        "From: Dana <dana@northwind.example>\r\nTo: sales@lumen.example\r\n"
        f"Subject: hi\r\nMessage-ID: <x1@mail.example>\r\nReferences: {ids} <outbox-7@baton>\r\n"
        "\r\nhello\r\n"
    ).encode()
    message = email_adapter.parse(raw)
    references = email_adapter.thread_references(message)
    assert len(references) <= email_adapter.MAX_REFERENCES_READ
    assert references[0] == "<outbox-7@baton>"  # the newest is read first
    assert email_adapter.outbox_ids(references) == [7]


def test_the_smtp_listener_survives_crafted_sessions(sqlite_ctx: Context) -> None:
    """10,000 recipients, a header-injection subject, a 1,000-id References, a
    huge header line, then an ordinary message: each answered, the listener alive."""
    ctx = sqlite_ctx
    sales = "sales@lumen.example"
    ensure_email_endpoint(ctx, "sales-mail", actor=OP)

    def deliver(content: bytes, mail_from: str, rcpt: Sequence[str], peer: str | None) -> SmtpReply:
        return receive_message(
            ctx, "sales-mail", content, mail_from=mail_from, rcpt_tos=rcpt, peer=peer
        )

    config = ListenerConfig(host="127.0.0.1", port=0, addresses=(sales,), max_bytes=200_000)
    codes: list[int] = []
    with listening(config, deliver) as port:
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
            client.ehlo()
            client.mail("x@spam.example")
            for n in range(10_000):
                code, _ = client.rcpt(sales if n % 2 else f"victim{n}@elsewhere.example")
                codes.append(code)
            client.rset()
        assert codes.count(250) == MAX_RECIPIENTS
        assert set(codes) == {250, 452, 550}
        references = " ".join(f"<m{n}@mail.example>" for n in range(1000))
        crafted = [
            b"From: a@b.example\r\nTo: sales@lumen.example\r\nSubject: x\r\n"
            b"Bcc: victim@elsewhere.example\r\n\r\nhi\r\n",
            (
                "From: dana@northwind.example\r\nSubject: =?utf-8?q?x=0D=0ABcc:_v@e.example?=\r\n"
                f"References: {references}\r\n\r\nhi\r\n"
            ).encode(),
            b"From: dana@northwind.example\r\nX-Long: " + b"a" * 150_000 + b"\r\n\r\nhi\r\n",
            b"\r\n\r\n",
        ]
        for raw in crafted:
            with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
                try:
                    client.sendmail("dana@northwind.example", [sales], raw)
                except smtplib.SMTPException as exc:  # refused is fine; never a crash
                    assert getattr(exc, "smtp_code", 500) < 600
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
            client.sendmail(
                "ana@acme.example",
                [sales],
                b"From: Ana <ana@acme.example>\r\nSubject: pricing\r\n\r\nCall me\r\n",
            )
    log = intake_service.intake_log(ctx, actor=OP)
    assert [r for r in log if (r.error or "").startswith("internal")] == []
    assert log[0].status == "processed"


def test_a_huge_batch_or_a_deep_body_is_refused_whole_never_a_5xx(ctx: Context) -> None:
    intake_service.add_endpoint(
        ctx,
        {"name": "hs", "kind": "hubspot", "source": "hubspot", "max_body_bytes": 4_000_000},
        actor=OP,
    )
    event = {"objectId": 1, "eventId": 0, "subscriptionType": "contact.creation"}
    batch = [{**event, "objectId": n + 1, "eventId": n + 1} for n in range(5000)]
    outcome = post(ctx, "hs", json.dumps(batch).encode(), "application/json")
    assert outcome.status == 422, outcome
    assert outcome.errors == [{"loc": "body", "message": "at most 1,000 per request"}]
    assert intake_service.show_request(ctx, outcome.request_id or 0, actor=OP).items == []
    intake_service.add_endpoint(
        ctx,
        {"name": "deep", "kind": "generic", "source": "web", "mapping": {"email": "a.b"}},
        actor=OP,
    )
    intake_service.update_endpoint(ctx, "deep", {"secret": None}, actor=OP)
    for body in (b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 20_000 + b"1" + b"}" * 20_000):
        deep = post(ctx, "deep", body, "application/json")
        assert deep.status == 422 and deep.request_id is not None
    duplicate = post(ctx, "deep", b'{"a": {"b": "x@y.example"}, "a": {"b": 1}}', "application/json")
    assert duplicate.status == 422  # the last of duplicate keys is read (1: no email)


def test_the_verify_token_cannot_be_guessed_at_line_speed(sqlite_ctx: Context) -> None:
    from fastapi.testclient import TestClient

    from baton.api.app import create_app

    intake_service.add_endpoint(
        sqlite_ctx,
        {
            "name": "meta",
            "kind": "meta_lead_ads",
            "source": "ads",
            "secret": "verify-me-please",
            "rate_per_minute": 3,
        },
        actor=OP,
    )
    hub = {"hub.mode": "subscribe", "hub.challenge": "42"}
    with TestClient(create_app(sqlite_ctx)) as client:
        codes = [
            client.get("/hooks/meta", params={**hub, "hub.verify_token": f"guess-{n}"}).status_code
            for n in range(5)
        ]
        late = client.get("/hooks/meta", params={**hub, "hub.verify_token": "verify-me-please"})
    assert codes == [403, 403, 403, 429, 429]
    assert late.status_code == 429 and int(late.headers["retry-after"]) > 0


def test_no_adapter_but_emails_can_name_a_lead_by_id(
    sqlite_ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Defence in depth: an item naming ``lead_id`` (only the email threading does)
    from any other kind captures its sender, never writes onto that lead."""
    from baton.domain.intake import IntakeItem
    from baton.domain.leads import LeadCreate
    from baton.integrations import generic
    from baton.services.leads import capture_lead

    victim = capture_lead(sqlite_ctx, LeadCreate(email="victim@acme.example", source="x"), actor=OP)
    item = IntakeItem(
        upstream_id="u-1",
        lead={"lead_id": victim.lead.id, "email": "mallory@evil.example"},
        event_type="contact_sales",
    )
    monkeypatch.setattr(generic, "read", lambda delivery, endpoint: [item])
    intake_service.add_endpoint(
        sqlite_ctx,
        {"name": "g", "kind": "generic", "source": "web", "mapping": {"email": "email"}},
        actor=OP,
    )
    intake_service.update_endpoint(sqlite_ctx, "g", {"secret": None}, actor=OP)
    outcome = post(sqlite_ctx, "g", b"{}", "application/json")
    assert outcome.status == 200, outcome
    [done] = intake_service.show_request(sqlite_ctx, outcome.request_id or 0, actor=OP).items
    assert done.lead_id is not None and done.lead_id != victim.lead.id
