"""Intake keys over real HTTP, on SQLite and PostgreSQL (issue 17, found by the user
trial), and on the command line:

* a credential goes in the header meant for it: an API token sent as
  ``X-Baton-Intake-Key`` (even one this process has just verified), or two credentials
  at once, is a 401 problem saying where a token goes, never echoing it; an intake key
  is still taken in its own header and, as documented, as a bearer token, where it is
  still only an intake key;
* an admin changes a key's rate or origins with ``PATCH /api/v1/intake-keys/{id}``
  (validated as when a key is made: 422 naming the field) and the very next requests
  obey them (a new rate starts a fresh window); other roles and the key itself get
  403, an unknown key 404, a revoked one 409; the change is logged like the key's
  creation and revocation;
* ``baton intake-key update ID --rate N`` does the same from the CLI.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tests.conftest import bearer, token_for
from tests.e2e.live_server import live_server
from typer.testing import CliRunner

from baton.api.app import create_app
from baton.cli import app as cli_app
from baton.config import Settings
from baton.domain.access import operator
from baton.domain.users import IntakeKeyCreate
from baton.services import users as user_service
from baton.services.context import Context, open_context

OP = operator("test")
LEADS = "/api/v1/leads"
KEYS = "/api/v1/intake-keys"
SITE = "https://www.example.com"
SHOP = "https://shop.example.com"


@pytest.fixture
def served(ctx: Context) -> Iterator[tuple[Context, httpx.Client, str]]:
    """The server, a client with no credentials, and an admin's API token."""
    admin = token_for(ctx, "admin", email="ops@lumen.example")
    with (
        live_server(create_app(ctx)) as url,
        httpx.Client(base_url=url, timeout=30) as client,
    ):
        yield ctx, client, admin


def captured(client: httpx.Client, n: int, headers: dict[str, str]) -> int:
    """A capture by visitor ``n``: each from an address of its own (the server trusts
    the loopback proxy's X-Forwarded-For), so the key's own rate is what answers, not a
    sender's share of it."""
    sender = {"X-Forwarded-For": f"203.0.113.{n % 250 + 1}"}
    answer = client.post(LEADS, json={"email": f"v{n}@acme.example"}, headers={**sender, **headers})
    return answer.status_code


def test_a_credential_in_the_wrong_header_is_refused_saying_where_it_goes(
    served: tuple[Context, httpx.Client, str],
) -> None:
    ctx, client, admin = served
    _, key = user_service.add_intake_key(
        ctx, IntakeKeyCreate(name="site", source="web", rate_per_minute=1000), actor=OP
    )
    assert client.get("/api/v1/users", headers=bearer(admin)).status_code == 200  # cached now
    wrong = [
        ({"X-Baton-Intake-Key": admin}, "X-Baton-Intake-Key takes an intake key"),
        ({"X-Baton-Intake-Key": "bt_not-a-real-token"}, "X-Baton-Intake-Key takes"),
        ({"X-Baton-Intake-Key": key, **bearer(admin)}, "send one credential"),
        ({"X-Baton-Intake-Key": admin, **bearer(key)}, "send one credential"),
    ]
    for headers, said in wrong:
        for method, path in (("GET", "/api/v1/users"), ("POST", LEADS)):
            answer = client.request(method, path, json={"email": "x@acme.example"}, headers=headers)
            assert answer.status_code == 401, (headers.keys(), answer.text)
            assert answer.headers["content-type"].startswith("application/problem+json")
            detail = answer.json()["detail"]
            assert said in detail and "Authorization: Bearer <token>" in detail, detail
            assert admin not in answer.text and key not in answer.text
            assert not any(admin in v or key in v for v in answer.headers.values())
    blank = {"X-Baton-Intake-Key": "", **bearer(admin)}  # a client or proxy left it empty
    assert client.get("/api/v1/users", headers=blank).status_code == 200
    assert captured(client, 1, {"X-Baton-Intake-Key": key}) == 202
    assert captured(client, 2, bearer(key)) == 202, "an intake key as a bearer token: documented"
    assert client.get("/api/v1/users", headers=bearer(key)).status_code == 403
    assert client.get("/auth/me", headers=bearer(key)).json()["kind"] == "intake_key"
    assert captured(client, 3, bearer(admin)) == 201


def test_an_admin_changes_a_keys_rate_and_the_next_requests_obey_it(
    served: tuple[Context, httpx.Client, str], caplog: pytest.LogCaptureFixture
) -> None:
    _, client, admin = served
    made = client.post(
        KEYS,
        json={"name": "site", "source": "web", "origins": [SITE], "rate_per_minute": 2},
        headers=bearer(admin),
    )
    assert made.status_code == 201, made.text
    key_id, key = made.json()["id"], made.json()["key"]
    site = {"X-Baton-Intake-Key": key, "Origin": SITE}
    assert [captured(client, n, site) for n in range(3)] == [202, 202, 429]

    with caplog.at_level(logging.INFO, logger="baton.access"):
        raised = client.patch(
            f"{KEYS}/{key_id}", json={"rate_per_minute": 4}, headers=bearer(admin)
        )
    assert raised.status_code == 200, raised.text
    assert raised.json()["rate_per_minute"] == 4 and raised.json()["origins"] == [SITE]
    assert "key" not in raised.json(), "the secret is shown once, when made"
    assert "changed by ops@lumen.example" in caplog.text and "rate 2 -> 4/min" in caplog.text
    assert [captured(client, n, site) for n in range(10, 15)] == [202] * 4 + [429]

    lowered = client.patch(f"{KEYS}/{key_id}", json={"rate_per_minute": 1}, headers=bearer(admin))
    assert lowered.status_code == 200, lowered.text
    # A fresh window at the new rate: one request, then 429 with a wait.
    assert captured(client, 20, site) == 202
    limited = client.post(LEADS, json={"email": "w@acme.example"}, headers=site)
    assert limited.status_code == 429 and "at most 1 requests" in limited.json()["detail"]
    assert 1 <= int(limited.headers["retry-after"]) <= 61

    moved = client.patch(
        f"{KEYS}/{key_id}", json={"origins": [SHOP], "rate_per_minute": 100}, headers=bearer(admin)
    )
    assert moved.status_code == 200 and moved.json()["origins"] == [SHOP]
    assert captured(client, 30, {**site, "Origin": SHOP}) == 202
    assert captured(client, 31, site) == 403, "the old origin is refused at once"
    preflight = client.options(
        LEADS, headers={"Origin": SHOP, "Access-Control-Request-Method": "POST"}
    )
    assert preflight.status_code == 204, "a browser's preflight from the new origin, at once"
    assert preflight.headers["access-control-allow-origin"] == SHOP
    listed = client.get(KEYS, headers=bearer(admin)).json()
    assert [(k["id"], k["rate_per_minute"], k["origins"]) for k in listed] == [
        (key_id, 100, [SHOP])
    ]


def test_changing_a_key_is_an_admins_and_validated_as_when_made(
    served: tuple[Context, httpx.Client, str],
) -> None:
    ctx, client, admin = served
    key, secret = user_service.add_intake_key(
        ctx, IntakeKeyCreate(name="site", source="web", rate_per_minute=7), actor=OP
    )
    path = f"{KEYS}/{key.id}"
    change = {"rate_per_minute": 50}
    marketing = token_for(ctx, "marketing")
    for headers, status in (
        (bearer(marketing), 403),
        ({"X-Baton-Intake-Key": secret}, 403),
        ({}, 401),
    ):
        assert client.patch(path, json=change, headers=headers).status_code == status
    for body, loc in (
        ({"rate_per_minute": 0}, "rate_per_minute"),
        ({"rate_per_minute": 100_001}, "rate_per_minute"),
        ({"rate_per_minute": "fast"}, "rate_per_minute"),
        ({"rate_per_minute": "10"}, "rate_per_minute"),  # a number, not a text of digits
        ({"rate_per_minute": True}, "rate_per_minute"),  # not 1 request a minute
        ({"rate": 50}, "rate"),
        ({"origins": ["www.example.com/form"]}, "origins[0]"),
    ):
        refused = client.patch(path, json=body, headers=bearer(admin))
        assert refused.status_code == 422, (body, refused.text)
        assert [e["loc"] for e in refused.json()["errors"]] == [loc], refused.text
    made = {"name": "strict", "source": "web"}
    for rate, sent in (("10", "not text"), (True, "not true or false")):
        refused = client.post(KEYS, json={**made, "rate_per_minute": rate}, headers=bearer(admin))
        assert refused.status_code == 422, refused.text
        [error] = refused.json()["errors"]
        assert error["loc"] == "rate_per_minute" and sent in error["message"], error
    for nothing in ({}, {"rate_per_minute": None}, {"rate_per_minute": None, "origins": None}):
        refused = client.patch(path, json=nothing, headers=bearer(admin))
        assert refused.status_code == 422, (nothing, refused.text)
        assert "nothing to change" in refused.text, refused.text
    assert client.get(KEYS, headers=bearer(admin)).json()[0]["rate_per_minute"] == 7
    schema = client.get("/openapi.json").json()["components"]["schemas"]["IntakeKeyUpdate"]
    assert {tuple(branch["required"]) for branch in schema["anyOf"]} == {
        ("rate_per_minute",),
        ("origins",),
    }
    assert client.patch(f"{KEYS}/999", json=change, headers=bearer(admin)).status_code == 404
    assert client.delete(path, headers=bearer(admin)).status_code == 200
    revoked = client.patch(path, json=change, headers=bearer(admin))
    assert revoked.status_code == 409 and "make a new key" in revoked.json()["detail"]
    [unchanged] = client.get(KEYS, headers=bearer(admin)).json()
    assert unchanged["rate_per_minute"] == 7 and unchanged["revoked_at"] is not None

    operation = client.get("/openapi.json").json()["paths"][KEYS + "/{key_id}"]
    examples = operation["patch"]["requestBody"]["content"]["application/json"]["examples"]
    assert examples["a higher rate"]["value"] == {"rate_per_minute": 120}


def test_the_cli_changes_a_keys_rate_and_origins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("BATON_DATABASE_URL", url)
    monkeypatch.delenv("BATON_ENV", raising=False)
    runner = CliRunner()

    def run(*args: str, code: int = 0) -> str:
        result = runner.invoke(cli_app, list(args))
        assert result.exit_code == code, result.output
        return result.output

    run("init")
    run("intake-key", "add", "website", "--source", "web", "--origin", SITE)
    changed = run("intake-key", "update", "1", "--rate", "5", "--origin", SHOP, "--origin", SITE)
    assert "intake key 1 (website): 5/min, origins: https://shop.example.com, " in changed
    assert "servers only" in run("intake-key", "update", "1", "--servers-only")
    assert "--rate: Input should be greater than or equal to 1" in run(
        "intake-key", "update", "1", "--rate", "0", code=1
    )
    assert "say what to change" in run("intake-key", "update", "1", code=1)
    assert "does not exist" in run("intake-key", "update", "7", "--rate", "5", code=1)
    ctx = open_context(Settings(database_url=url, env="test"))
    try:
        [key] = user_service.list_intake_keys(ctx, actor=OP)
    finally:
        ctx.engine.dispose()
    assert (key.rate_per_minute, key.origins) == (5, [])
