"""Webhooks never reach inside the network, and never keep what a receiver answered.

No test here connects to a private or link-local address: the resolver and the
connector of the worker's HTTP client are injected. The resolver answers what a
hostile DNS server would; the connector records the address it was asked to connect
to and connects to an HTTP receiver on loopback instead. Loopback receivers are
reached directly only where the test allows 127.0.0.1 (as a deployment with an
internal receiver would) or checks that they are refused before any connection.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpcore
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy import insert, select
from tests.conftest import bearer, token_for
from tests.notify_servers import HttpReceiver, closed_port, http_receiver

from baton.api.app import create_app
from baton.domain.access import operator
from baton.domain.errors import ValidationFailed
from baton.notify.egress import tcp_connector, webhook_client
from baton.notify.email import SmtpConfig
from baton.services.context import Context
from baton.services.outbox import publish
from baton.services.queries import inserted_id
from baton.services.webhooks import create_endpoint
from baton.services.worker import tick
from baton.store.engine import make_engine
from baton.store.migrate import upgrade
from baton.store.tables import deliveries, outbox, webhook_endpoints

OPS = operator("ops")
PUBLIC_ADDRESS = "93.184.215.14"
"""A public address the tests resolve names to; the connector never connects to it."""
NO_MAIL = SmtpConfig(host="127.0.0.1", port=closed_port(), timeout=1)
INSIDE_URLS = [
    ("http://169.254.169.254/latest/meta-data/iam/", "169.254.169.254 is a link-local address"),
    ("http://127.0.0.1:5432/", "127.0.0.1 is a loopback address"),
    ("http://10.0.0.7/admin", "10.0.0.7 is a private address"),
    ("http://localhost:9000/", "localhost is a loopback address"),
    ("http://100.64.1.1/", "100.64.1.1 is a shared (carrier-grade NAT) address"),
]
INSIDE_IPV6_URLS = [
    ("http://[::1]:8080/hook", "::1 is a loopback address"),
    ("http://[::ffff:a9fe:a9fe]/", "is a link-local (IPv4 169.254.169.254 inside IPv6) address"),
    ("http://[fd00::5]/", "fd00::5 is a private address"),
]


class Network:
    """An injected resolver and connector: names resolve to what ``answers`` says
    (one list per look-up; the last repeats), and every connection goes to
    ``receiver`` on loopback while ``connected`` records where it was meant to go."""

    def __init__(self, receiver: HttpReceiver, *answers: list[str]) -> None:
        self.receiver = receiver
        self.answers = list(answers)
        self.looked_up: list[str] = []
        self.connected: list[tuple[str, int]] = []

    def resolve(self, host: str, port: int) -> list[str]:
        self.looked_up.append(host)
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]

    def connect(self, address: str, port: int, timeout: float | None) -> httpcore.NetworkStream:
        self.connected.append((address, port))
        return tcp_connector(self.receiver.host, self.receiver.port, timeout)


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    with http_receiver() as server:
        yield server


def add_endpoint(ctx: Context, url: str) -> int:
    """An endpoint stored as it is (as one saved before this release could be)."""
    with ctx.write() as connection:
        return int(
            inserted_id(
                connection.execute(
                    insert(webhook_endpoints).values(
                        url=url,
                        secret="whsec_egress_tests_0123456789",
                        events=["*"],
                        active=True,
                        created_by="test",
                        created_at=ctx.clock.now(),
                    )
                )
            )
        )


def an_event(ctx: Context) -> None:
    with ctx.write() as connection:
        publish(connection, "handoff.assigned", {"lead_id": 1}, now=ctx.clock.now())


def webhook_rows(ctx: Context) -> list[dict[str, Any]]:
    with ctx.read() as connection:
        rows = connection.execute(
            select(outbox).where(outbox.c.channel == "webhook").order_by(outbox.c.id)
        )
        return [dict(r) for r in rows.mappings()]


def send(ctx: Context, network: Network | None = None) -> None:
    """A worker pass; with ``network``, through the worker's own client with the
    injected resolver and connector."""
    if network is None:
        tick(ctx, smtp=NO_MAIL)
        return
    with webhook_client(ctx.settings, resolver=network.resolve, connector=network.connect) as http:
        tick(ctx, smtp=NO_MAIL, client=http)


# --- when an endpoint is saved ---------------------------------------------------------


@pytest.mark.parametrize(("url", "why"), INSIDE_URLS)
def test_an_endpoint_inside_the_network_is_refused_over_the_api(
    sqlite_ctx: Context, url: str, why: str
) -> None:
    with TestClient(create_app(sqlite_ctx), headers=bearer(token_for(sqlite_ctx, "admin"))) as api:
        answer = api.post("/api/v1/webhooks", json={"url": url, "events": ["*"]})
        assert answer.status_code == 422, answer.text
        assert answer.headers["content-type"].startswith("application/problem+json")
        [error] = answer.json()["errors"]
        assert error["loc"] == "url"
        assert why in error["message"]
        assert "BATON_WEBHOOK_INTERNAL_ALLOWLIST" in error["message"]
        assert api.get("/api/v1/webhooks").json() == []


@pytest.mark.parametrize(("url", "why"), INSIDE_IPV6_URLS)
def test_an_ipv6_endpoint_inside_the_network_is_refused(
    sqlite_ctx: Context, url: str, why: str
) -> None:
    # (The API's URL pattern refuses IPv6 literals before the use case sees them; the
    # use case, which the CLI calls too, refuses those inside the network on its own.)
    with pytest.raises(ValidationFailed) as refused:
        create_endpoint(sqlite_ctx, url=url, events=["*"], actor=OPS)
    [problem] = refused.value.problems
    assert (problem.loc, why in problem.message) == ("url", True), problem


def test_the_allowlist_lets_an_internal_receiver_in(sqlite_ctx: Context) -> None:
    ctx = sqlite_ctx
    ctx.settings = ctx.settings.model_copy(
        update={"webhook_internal_allowlist": "10.20.0.0/16, crm.internal"}
    )
    for url in ("http://10.20.0.7/in", "http://crm.internal/in"):
        create_endpoint(ctx, url=url, events=["*"], actor=OPS)
    with pytest.raises(ValidationFailed) as refused:
        create_endpoint(ctx, url="http://10.21.0.7/in", events=["*"], actor=OPS)
    assert "10.21.0.7 is a private address" in refused.value.problems[0].message


# --- when the worker connects ----------------------------------------------------------


def test_a_name_that_resolves_inside_is_refused_without_connecting(
    sqlite_ctx: Context, receiver: HttpReceiver
) -> None:
    ctx = sqlite_ctx
    create_endpoint(ctx, url="http://hooks.example.com/baton", events=["*"], actor=OPS)
    an_event(ctx)
    network = Network(receiver, ["169.254.169.254"])

    send(ctx, network)

    assert network.looked_up == ["hooks.example.com"]
    assert network.connected == [] and receiver.requests == []
    [row] = webhook_rows(ctx)
    assert (row["status"], row["attempts"]) == ("failed", 1), "refused, not retried"
    assert row["last_error"] == (
        "refused: hooks.example.com (169.254.169.254) is a link-local address; webhooks may "
        "only reach public addresses (list an internal receiver in "
        "BATON_WEBHOOK_INTERNAL_ALLOWLIST)"
    )


def test_dns_rebinding_after_the_check_gets_nothing(
    sqlite_ctx: Context, receiver: HttpReceiver
) -> None:
    """The name is public when the endpoint is saved and at the first delivery, then
    resolves to the metadata service: the second delivery is refused, and the first
    went to the very address that was checked."""
    ctx = sqlite_ctx
    create_endpoint(ctx, url="http://hooks.example.com/baton", events=["*"], actor=OPS)
    network = Network(receiver, [PUBLIC_ADDRESS], ["169.254.169.254"])

    an_event(ctx)
    send(ctx, network)
    an_event(ctx)
    send(ctx, network)

    assert network.connected == [(PUBLIC_ADDRESS, 80)]
    [request] = receiver.requests
    assert request.headers["Host"] == "hooks.example.com"
    first, second = webhook_rows(ctx)
    assert (first["status"], second["status"]) == ("sent", "failed")
    assert "(169.254.169.254) is a link-local address" in second["last_error"]


def test_a_name_that_resolves_partly_inside_is_refused(
    sqlite_ctx: Context, receiver: HttpReceiver
) -> None:
    ctx = sqlite_ctx
    create_endpoint(ctx, url="http://hooks.example.com/baton", events=["*"], actor=OPS)
    an_event(ctx)
    network = Network(receiver, [PUBLIC_ADDRESS, "10.0.0.1"])

    send(ctx, network)

    assert network.connected == []
    [row] = webhook_rows(ctx)
    assert "hooks.example.com (10.0.0.1) is a private address" in row["last_error"]


def test_an_allowed_internal_name_is_reached_at_its_checked_address(
    sqlite_ctx: Context, receiver: HttpReceiver
) -> None:
    ctx = sqlite_ctx
    ctx.settings = ctx.settings.model_copy(update={"webhook_internal_allowlist": "crm.internal"})
    create_endpoint(ctx, url="http://crm.internal:8080/in", events=["*"], actor=OPS)
    an_event(ctx)
    network = Network(receiver, ["10.1.2.3"])

    send(ctx, network)

    assert network.connected == [("10.1.2.3", 8080)]
    assert len(receiver.requests) == 1
    assert [r["status"] for r in webhook_rows(ctx)] == ["sent"]


def test_the_worker_refuses_an_old_endpoint_inside_the_network(
    ctx: Context, receiver: HttpReceiver
) -> None:
    """An endpoint saved before this release with a loopback URL: the worker's own
    client (nothing injected) refuses it before connecting."""
    add_endpoint(ctx, receiver.url)
    an_event(ctx)

    send(ctx)

    assert receiver.requests == []
    [row] = webhook_rows(ctx)
    assert row["status"] == "failed"
    assert row["last_error"].startswith("refused: 127.0.0.1 is a loopback address")

    # Listed, the same internal receiver is reached.
    ctx.settings = ctx.settings.model_copy(update={"webhook_internal_allowlist": "127.0.0.1"})
    an_event(ctx)
    send(ctx)
    assert len(receiver.requests) == 1


# --- what is kept of an answer ---------------------------------------------------------


def test_the_delivery_log_never_shows_what_the_receiver_answered(
    sqlite_ctx: Context, receiver: HttpReceiver
) -> None:
    ctx = sqlite_ctx
    ctx.settings = ctx.settings.model_copy(update={"webhook_internal_allowlist": "127.0.0.1"})
    receiver.status = 500
    receiver.body = b'{"AccessKeyId": "ASIAEXAMPLE", "SecretAccessKey": "wJalrXUtnFEMI/K7MDENG"}'
    with TestClient(create_app(ctx), headers=bearer(token_for(ctx, "admin"))) as api:
        endpoint = api.post("/api/v1/webhooks", json={"url": receiver.url}).json()
        an_event(ctx)
        send(ctx)
        [delivery] = api.get(f"/api/v1/webhooks/{endpoint['id']}/deliveries").json()
        message = api.get(f"/api/v1/outbox/{delivery['id']}").json()
    assert len(receiver.requests) == 1
    assert delivery["last_error"] == "HTTP 500 Internal Server Error"
    assert delivery["history"][0]["error"] == "HTTP 500 Internal Server Error"
    assert message["history"][0]["status_code"] == 500
    for answer in (delivery, message):
        assert "ASIAEXAMPLE" not in str(answer) and "wJalrXUtnFEMI" not in str(answer)


def test_migration_0007_forgets_the_reply_bodies_already_stored(empty_database_url: str) -> None:
    engine = make_engine(empty_database_url)
    # The tables as they were at 0006 (the columns 0007 adds do not exist yet).
    old_outbox = sa.table(
        "outbox",
        *(
            sa.column(c, outbox.c[c].type)
            for c in ("id", "channel", "topic", "recipient", "payload", "status", "attempts")
        ),
        *(sa.column(c, outbox.c[c].type) for c in ("next_attempt_at", "last_error", "created_at")),
    )
    old_deliveries = sa.table(
        "deliveries",
        *(
            sa.column(c, deliveries.c[c].type)
            for c in ("outbox_id", "attempt", "attempted_at", "ok", "error", "duration_ms")
        ),
    )
    when = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    try:
        upgrade(engine, "0006")
        with engine.begin() as connection:
            for row_id, channel, error in (
                (1, "webhook", "HTTP 500 Internal Server Error: SecretAccessKey=wJalr"),
                (2, "webhook", "HTTP 410 Gone"),
                (3, "email", "cannot reach SMTP server mail:25: Connection refused"),
            ):
                connection.execute(
                    insert(old_outbox).values(
                        id=row_id,
                        channel=channel,
                        topic="handoff.assigned",
                        recipient="x",
                        payload={},
                        status="failed",
                        attempts=1,
                        next_attempt_at=when,
                        last_error=error,
                        created_at=when,
                    )
                )
                connection.execute(
                    insert(old_deliveries).values(
                        outbox_id=row_id,
                        attempt=1,
                        attempted_at=when,
                        ok=False,
                        error=error,
                        duration_ms=1.0,
                    )
                )
        upgrade(engine, "0007")
        with engine.connect() as connection:
            kept = (
                connection.execute(select(outbox.c.last_error).order_by(outbox.c.id))
                .scalars()
                .all()
            )
            logged = (
                connection.execute(select(deliveries.c.error).order_by(deliveries.c.outbox_id))
                .scalars()
                .all()
            )
    finally:
        engine.dispose()
    expected = [
        "HTTP 500 Internal Server Error",
        "HTTP 410 Gone",
        "cannot reach SMTP server mail:25: Connection refused",
    ]
    assert kept == expected
    assert logged == expected
