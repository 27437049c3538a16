"""What one hostile sender can do with a website's public intake key (it sits in the
page's HTML): not shut the form for everyone (a share of the key's rate per address),
not make one capture cost seconds of CPU and hundreds of MB (a lead's body is capped
well under the server's limit for batches), not fill the error log by leaving
mid-body (one INFO line, no incident)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from baton.api.app import create_app
from baton.api.routes.leads import lead_body_limit
from baton.config import Settings
from baton.domain.access import operator
from baton.domain.users import IntakeKeyCreate
from baton.services import intake as intake_service
from baton.services.context import Context
from baton.services.users import add_intake_key

LEADS = "/api/v1/leads"
OPS = operator("ops")
SITE = "https://shop.example"


def _with(ctx: Context, **settings: Any) -> Context:
    return dataclasses.replace(ctx, settings=Settings(**{**ctx.settings.model_dump(), **settings}))


def _key(ctx: Context, name: str, *, origins: list[str], rate: int) -> dict[str, str]:
    data = IntakeKeyCreate(name=name, source="web", origins=origins, rate_per_minute=rate)
    return {"X-Baton-Intake-Key": add_intake_key(ctx, data, actor=OPS)[1]}


@pytest.fixture
def ctx3(sqlite_ctx: Context) -> Iterator[Context]:
    yield _with(sqlite_ctx, intake_rate_per_address=3)


def _post(client: TestClient, key: dict[str, str], n: int) -> int:
    return client.post(LEADS, json={"email": f"p{n}@x.example.com"}, headers=key).status_code


def test_one_address_cannot_use_up_a_websites_key(ctx3: Context) -> None:
    key = _key(ctx3, "web", origins=[SITE], rate=40)  # a share of min(40 / 4, 3)
    app = create_app(ctx3)
    with (
        TestClient(app, client=("198.51.100.7", 1000)) as flooder,
        TestClient(app, client=("203.0.113.9", 1000)) as visitor,
    ):
        codes = [_post(flooder, key, n) for n in range(8)]
        refused = flooder.post(LEADS, json={"email": "z@x.example.com"}, headers=key)
        real = _post(visitor, key, 100)
    assert codes == [202] * 3 + [429] * 5
    assert "at most 3 requests a minute from one address" in refused.json()["detail"]
    assert int(refused.headers["retry-after"]) > 0
    assert real == 202, "the flood spent none of the key's own rate"


def test_a_servers_key_is_limited_by_its_rate_only(ctx3: Context) -> None:
    """A key without origins is a server's secret: all its requests come from that
    server, so no share per address."""
    key = _key(ctx3, "backend", origins=[], rate=6)
    with TestClient(create_app(ctx3)) as server:
        assert [_post(server, key, n) for n in range(7)] == [202] * 6 + [429]


def test_a_leads_body_is_capped_well_under_the_servers_limit(sqlite_ctx: Context) -> None:
    limit = lead_body_limit(sqlite_ctx.settings.json_max_bytes)
    assert limit < sqlite_ctx.settings.max_body_bytes // 16
    key = _key(sqlite_ctx, "web", origins=[], rate=100)
    padding = "x" * limit

    def streamed() -> Iterator[bytes]:  # chunked: no size announced
        yield b'{"email": "a@x.example.com", "notes": "'
        for i in range(0, len(padding), 65536):
            yield padding[i : i + 65536].encode()
        yield b'"}'

    with TestClient(create_app(sqlite_ctx)) as client:
        announced = client.post(
            LEADS, json={"email": "a@x.example.com", "notes": padding}, headers=key
        )
        chunked = client.post(
            LEADS, content=streamed(), headers={**key, "Content-Type": "application/json"}
        )
        fine = client.post(LEADS, json={"email": "b@x.example.com", "n": "x" * 1000}, headers=key)
    for answer in (announced, chunked):
        assert answer.status_code == 413, answer.text
        assert answer.headers["content-type"] == "application/problem+json"
        assert f"over {limit // 1024} KiB" in answer.json()["detail"]
    assert fine.status_code == 422  # an unknown field: read and answered as usual


@pytest.mark.parametrize("path", [LEADS, "/hooks/site-form"])
def test_a_client_that_leaves_mid_body_is_one_info_line(
    sqlite_ctx: Context, caplog: pytest.LogCaptureFixture, path: str
) -> None:
    key = _key(sqlite_ctx, "web", origins=[], rate=100)
    spec = {"name": "site-form", "kind": "generic", "source": "web", "mapping": {"email": "e"}}
    _, secret = intake_service.add_endpoint(sqlite_ctx, spec, actor=OPS)
    if secret:
        intake_service.update_endpoint(sqlite_ctx, "site-form", {"secret": None}, actor=OPS)
    app = create_app(sqlite_ctx)
    sent: list[dict[str, Any]] = []
    messages = iter(
        [
            {"type": "http.request", "body": b'{"email": "a@', "more_body": True},
            {"type": "http.disconnect"},
        ]
    )

    async def receive() -> dict[str, Any]:
        return next(messages, {"type": "http.disconnect"})

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    headers = [(k.lower().encode(), v.encode()) for k, v in key.items()]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", b"application/json"), *headers],
        "client": ("198.51.100.7", 1000),
        "server": ("testserver", 80),
    }
    with caplog.at_level(logging.INFO, logger="baton.api"):
        asyncio.run(app(scope, receive, send))
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == []
    left = [r for r in caplog.records if "left before its request was read" in r.getMessage()]
    assert len(left) == 1 and left[0].levelno == logging.INFO


@pytest.mark.parametrize(
    ("rate", "share"), [(4, 1), (10, 2), (60, 15), (1000, 20)], ids=lambda v: str(v)
)
def test_one_sender_gets_a_quarter_of_a_keys_rate_at_most(
    sqlite_ctx: Context, rate: int, share: int
) -> None:
    """Whatever the key's rate (a key of 10 a minute was all one sender's with a fixed
    share of 20), and at most BATON_INTAKE_RATE_PER_ADDRESS."""
    key = _key(sqlite_ctx, f"web{rate}", origins=[SITE], rate=rate)
    with TestClient(create_app(sqlite_ctx), client=("198.51.100.7", 1000)) as flooder:
        codes = [_post(flooder, key, n) for n in range(share + 2)]
    assert codes == [202] * share + [429] * 2


def test_an_ipv6_sender_is_counted_by_its_64(ctx3: Context) -> None:
    """One machine commonly holds a whole /64: its addresses share one share."""
    key = _key(ctx3, "web6", origins=[SITE], rate=40)
    app = create_app(ctx3)
    codes = []
    for n in range(5):
        with TestClient(app, client=(f"2001:db8:0:1::{n + 1}", 1000)) as one_of_many:
            codes.append(_post(one_of_many, key, n))
    with TestClient(app, client=("2001:db8:0:2::1", 1000)) as another_network:
        codes.append(_post(another_network, key, 99))
    assert codes == [202] * 3 + [429] * 2 + [202]
