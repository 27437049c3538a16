"""``POST /api/v1/leads`` is answered by :class:`baton.api.direct_route.DirectRoute`,
without the router: every answer, success or error, is the one the router gives (the
same app with the direct route taken out), and the router is not entered."""

from __future__ import annotations

import dataclasses
import re
import threading
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy.exc import OperationalError
from tests.conftest import bearer, token_for

from baton.api.app import create_app
from baton.api.direct_route import DirectRoute
from baton.config import Settings
from baton.domain.access import operator
from baton.domain.users import IntakeKeyCreate
from baton.services import leads as lead_service
from baton.services.context import Context
from baton.services.users import add_intake_key

LEADS = "/api/v1/leads"
OPS = operator("ops")
KEPT_HEADERS = ("content-type", "www-authenticate", "retry-after", "allow", "location")


def _with_small_body(ctx: Context) -> Context:
    settings = Settings(**{**ctx.settings.model_dump(), "max_body_bytes": 4_096})
    return dataclasses.replace(ctx, settings=settings)


@pytest.fixture
def apps(sqlite_ctx: Context) -> Iterator[dict[str, TestClient]]:
    """The same app twice on one database: as built, and with the direct route out."""
    ctx = _with_small_body(sqlite_ctx)
    direct = create_app(ctx)
    routed = create_app(ctx)
    routed.user_middleware = [m for m in routed.user_middleware if m.cls is not DirectRoute]
    assert len(routed.user_middleware) == len(direct.user_middleware) - 1
    with (
        TestClient(direct, raise_server_exceptions=False) as a,
        TestClient(routed, raise_server_exceptions=False) as b,
    ):
        yield {"direct": a, "routed": b}


def answer(response: httpx.Response) -> tuple[int, dict[str, str], str]:
    """What a caller sees, with what differs between two runs (ids, incident numbers,
    a new key's secret) masked."""
    headers = {k: v for k, v in response.headers.items() if k in KEPT_HEADERS}
    body = re.sub(r'"(id|lead_id|incident)":\s*("?)[0-9a-f]+\2', r'"\1":"…"', response.text)
    body = re.sub(r"Incident [0-9a-f]+", "Incident …", body)
    return response.status_code, headers, body


Case = Callable[[TestClient, dict[str, str]], httpx.Response]


def _post(**kwargs: Any) -> Case:
    return lambda client, _keys: client.post(LEADS, **kwargs)


def _keyed(name: str, **kwargs: Any) -> Case:
    extra = kwargs.pop("headers", {})

    def send(client: TestClient, keys: dict[str, str]) -> httpx.Response:
        return client.post(LEADS, headers={"X-Baton-Intake-Key": keys[name], **extra}, **kwargs)

    return send


CASES: dict[str, Case] = {
    "a website's capture": _keyed("web", json={"email": "ana@northwind.example.com"}),
    "no credentials": _post(json={"email": "bo@northwind.example.com"}),
    "an unknown key": lambda c, _k: c.post(
        LEADS, json={"email": "c@x.example.com"}, headers={"X-Baton-Intake-Key": "bik_nope"}
    ),
    "not JSON": _keyed("web", content=b"{nope", headers={"Content-Type": "application/json"}),
    "not an object": _keyed("web", json=[1, 2]),
    "sent as text": _keyed("web", content=b"{}", headers={"Content-Type": "text/plain"}),
    "not UTF-8": _keyed("web", content=b'{"email": "\xff"}'),
    "an invalid field": _keyed("web", json={"email": "not an address", "phone": 12}),
    "an id from a public key": _keyed("web", json={"email": "d@x.example.com", "external_id": "1"}),
    "too large": _keyed("web", json={"email": "e@x.example.com", "notes": "x" * 5_000}),
    "from an origin not listed": _keyed(
        "web", json={"email": "f@x.example.com"}, headers={"Origin": "https://evil.example"}
    ),
    "over the rate": _keyed("slow", json={"email": "g@x.example.com"}),
    "another method": lambda c, _k: c.put(LEADS, json={}),
    "a slash more": _keyed("web", json={"email": "h@x.example.com"}),  # sent to LEADS + "/"
}


def _keys(ctx: Context, side: str) -> dict[str, str]:
    """Fresh keys for one side (so a rate spent on one side is not the other's)."""
    web = IntakeKeyCreate(name=f"web-{side}", source="web", origins=["https://shop.example"])
    slow = IntakeKeyCreate(name=f"slow-{side}", source="web", rate_per_minute=1)
    return {
        "web": add_intake_key(ctx, web, actor=OPS)[1],
        "slow": add_intake_key(ctx, slow, actor=OPS)[1],
    }


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_answer_is_the_routers(
    apps: dict[str, TestClient], sqlite_ctx: Context, case: str
) -> None:
    seen = {}
    for side, client in apps.items():
        keys = _keys(sqlite_ctx, side)
        if case == "over the rate":
            assert CASES[case](client, keys).status_code == 202
        if case == "a slash more":
            seen[side] = answer(
                client.post(
                    LEADS + "/",
                    json={"email": "h@x.example.com"},
                    headers={"X-Baton-Intake-Key": keys["web"]},
                    follow_redirects=False,
                )
            )
            continue
        seen[side] = answer(CASES[case](client, keys))
    assert seen["direct"] == seen["routed"]


def test_a_tokens_capture_and_update_are_the_routers(
    apps: dict[str, TestClient], sqlite_ctx: Context
) -> None:
    auth = bearer(token_for(sqlite_ctx, "admin"))
    seen = {}
    for side, client in apps.items():
        person = {"email": f"{side}@northwind.example.com", "first_name": "Dana"}
        made = client.post(LEADS, json=person, headers=auth)
        again = client.post(LEADS, json={**person, "title": "CFO"}, headers=auth)
        seen[side] = [answer(made), answer(again)]
    direct, routed = seen["direct"], seen["routed"]
    assert [s for s, _, _ in direct] == [201, 200]
    for mine, theirs in zip(direct, routed, strict=True):
        assert mine[:2] == theirs[:2]
        assert mine[2].replace("direct@", "routed@") == theirs[2]


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (RuntimeError("a bug"), 500),
        (OperationalError("BEGIN IMMEDIATE", None, Exception("database is locked")), 503),
    ],
)
def test_errors_of_the_use_case_are_answered_as_the_router_answers_them(
    apps: dict[str, TestClient],
    sqlite_ctx: Context,
    monkeypatch: pytest.MonkeyPatch,
    error: Exception,
    status: int,
) -> None:
    async def fails(*_args: Any, **_kwargs: Any) -> Any:
        raise error

    monkeypatch.setattr(lead_service, "capture_lead_async", fails)
    seen = {}
    for side, client in apps.items():
        key = {"X-Baton-Intake-Key": _keys(sqlite_ctx, side)["web"]}
        seen[side] = answer(client.post(LEADS, json={"email": "i@x.example.com"}, headers=key))
    assert seen["direct"][0] == status
    assert seen["direct"] == seen["routed"]


def test_the_router_is_not_entered_for_a_capture(
    apps: dict[str, TestClient], sqlite_ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    handled: list[str] = []
    original = APIRoute.handle

    async def counted(self: APIRoute, scope: Any, receive: Any, send: Any) -> None:
        handled.append(self.path)
        await original(self, scope, receive, send)

    monkeypatch.setattr(APIRoute, "handle", counted)
    for side, client in apps.items():
        key = {"X-Baton-Intake-Key": _keys(sqlite_ctx, side)["web"]}
        handled.clear()
        made = client.post(LEADS, json={"email": f"{side}@x.example.com"}, headers=key)
        assert made.status_code == 202
        assert handled == ([] if side == "direct" else [LEADS])
    auth = bearer(token_for(sqlite_ctx, "admin"))
    handled.clear()
    assert apps["direct"].get(LEADS, headers=auth).status_code == 200  # not a capture
    assert handled == [LEADS]


def test_a_large_body_is_read_off_the_event_loop(
    sqlite_ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A form's lead is parsed on the loop; a body of many kilobytes, valid or not, in
    the thread pool, so reading it holds up no other request."""
    from baton.api.routes import leads as routes

    threads: list[str] = []
    original = routes._capture_input

    def watched(*args: Any) -> Any:
        threads.append(threading.current_thread().name)
        return original(*args)

    monkeypatch.setattr(routes, "_capture_input", watched)
    key = {"X-Baton-Intake-Key": _keys(sqlite_ctx, "large")["web"]}
    notes = "x" * (routes.READ_ON_THE_LOOP + 1)
    with TestClient(create_app(sqlite_ctx)) as client:
        small = client.post(LEADS, json={"email": "s@x.example.com"}, headers=key)
        large = client.post(LEADS, json={"email": "l@x.example.com", "n": notes}, headers=key)
    assert small.status_code == 202 and large.status_code == 422  # an unknown field
    loop_thread, other = threads
    assert loop_thread != other
    assert "AnyIO worker thread" in other


def test_with_telemetry_the_capture_goes_through_the_router(
    sqlite_ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    """FastAPI names a request's route on its span and metrics in its router: where
    the deployment configures OpenTelemetry, the capture keeps that name."""
    monkeypatch.setenv("OTEL_SERVICE_NAME", "baton")
    assert DirectRoute not in [m.cls for m in create_app(sqlite_ctx).user_middleware]
    monkeypatch.delenv("OTEL_SERVICE_NAME")
    assert DirectRoute in [m.cls for m in create_app(sqlite_ctx).user_middleware]
