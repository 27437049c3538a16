"""Signing in and proving who you are, over HTTP: sessions (cookie flags, CSRF, logout
and disable end them at once), throttled sign-in that never says whether an account
exists, API tokens (scopes, expiry, revocation, never more than the owner's role),
intake keys (origins, CORS, rate), and secrets that never reach the database or the
logs in clear."""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any, Literal

import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from sqlalchemy import select
from tests.conftest import bearer, token_for

from baton.api.app import create_app
from baton.domain.access import Role, operator
from baton.domain.clock import ManualClock
from baton.domain.errors import TooManyRequests, Unauthorized
from baton.domain.users import IntakeKeyCreate, UserCreate
from baton.services import users as user_service
from baton.services.context import Context
from baton.store.tables import metadata

PASSWORD = "correct horse battery staple"
PROBLEM = "application/problem+json"
FUNNEL = "/api/v1/reports/funnel?from=2026-01-01&to=2026-02-01"


@pytest.fixture
def app_client(ctx: Context) -> Iterator[TestClient]:
    """A client over https (the session cookie is Secure outside development)."""
    with TestClient(
        create_app(ctx), base_url="https://testserver", raise_server_exceptions=False
    ) as client:
        yield client


def person(ctx: Context, role: Role = Role.MARKETING, email: str = "maria@example.com") -> int:
    user, _ = user_service.add_user(
        ctx,
        UserCreate(email=email, display_name="Maria", role=role),
        actor=operator(),
        password=PASSWORD,
    )
    return user.id


def sign_in(client: TestClient, email: str = "maria@example.com") -> str:
    response = client.post("/auth/login", json={"email": email, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return str(response.json()["csrf_token"])


def unauthorized(response: Any) -> dict[str, Any]:
    assert response.status_code == 401, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    assert response.headers["www-authenticate"].startswith("Bearer")
    return dict(response.json())


def test_every_route_but_health_and_login_needs_credentials(app_client: TestClient) -> None:
    schema = app_client.get("/openapi.json").json()
    public = {("/healthz", "get"), ("/readyz", "get"), ("/auth/login", "post")}
    public.add(("/auth/logout", "post"))
    checked = 0
    for path, methods in schema["paths"].items():
        for method in methods:
            if (path, method) in public:
                continue
            url = re.sub(r"\{[^}]+\}", "1", path)
            unauthorized(app_client.request(method.upper(), url, json={}))
            checked += 1
    assert checked > 50
    assert app_client.get("/healthz").status_code == 200
    assert app_client.get("/readyz").json()["status"] == "ready"


def test_malformed_credentials_are_401_without_a_hint(app_client: TestClient) -> None:
    for headers in (
        {"Authorization": "Basic bWFyaWE6c2VjcmV0"},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer two words"},
        {"Authorization": "Bearer bt_not-a-real-token"},
        {"Authorization": "Bearer " + "x" * 5000},
        {"X-Baton-Intake-Key": "bik_unknown"},
    ):
        body = unauthorized(app_client.get("/api/v1/leads", headers=headers))
        assert "exist" not in body["detail"]
    app_client.cookies.set("baton_session", "forged.value")
    unauthorized(app_client.get("/api/v1/leads"))


def test_sign_in_sets_a_locked_down_cookie_and_returns_the_csrf_token(
    ctx: Context, app_client: TestClient
) -> None:
    person(ctx)
    response = app_client.post(
        "/auth/login", json={"email": "Maria@Example.com ", "password": PASSWORD}
    )
    assert response.status_code == 200, response.text
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("baton_session=")
    flags = {part.strip().lower() for part in cookie.split(";")}
    assert {"httponly", "secure", "samesite=lax", "path=/"} <= flags
    body = response.json()
    assert body["user"]["email"] == "maria@example.com" and body["role"] == "marketing"
    assert len(body["csrf_token"]) >= 32
    me = app_client.get("/auth/me").json()
    assert me["user"]["email"] == "maria@example.com" and me["csrf_token"] == body["csrf_token"]


def test_changes_with_a_cookie_need_the_csrf_token(ctx: Context, app_client: TestClient) -> None:
    person(ctx)
    csrf = sign_in(app_client)
    lead = {"email": "dana@northwind.example.com"}
    refused = app_client.post("/api/v1/leads", json=lead)
    assert refused.status_code == 403 and "X-CSRF-Token" in refused.json()["detail"]
    wrong = app_client.post("/api/v1/leads", json=lead, headers={"X-CSRF-Token": "guess"})
    assert wrong.status_code == 403
    assert app_client.get("/api/v1/leads").json()["total"] == 0
    done = app_client.post("/api/v1/leads", json=lead, headers={"X-CSRF-Token": csrf})
    assert done.status_code == 201, done.text
    assert done.json()["lead"]["email"] == "dana@northwind.example.com"


def test_logout_ends_the_session_at_once(ctx: Context, app_client: TestClient) -> None:
    person(ctx)
    sign_in(app_client)
    stolen = app_client.cookies.get("baton_session")
    assert app_client.get("/auth/me").status_code == 200
    assert app_client.post("/auth/logout").status_code == 204
    unauthorized(app_client.get("/auth/me"))
    app_client.cookies.set("baton_session", stolen)
    unauthorized(app_client.get("/auth/me"))


def test_disabling_a_user_ends_their_open_session_at_once(
    ctx: Context, app_client: TestClient
) -> None:
    user_id = person(ctx)
    sign_in(app_client)
    assert app_client.get("/api/v1/leads").status_code == 200
    admin = bearer(token_for(ctx, Role.ADMIN))
    with TestClient(create_app(ctx), base_url="https://testserver") as other:
        disabled = other.patch(f"/api/v1/users/{user_id}", json={"active": False}, headers=admin)
    assert disabled.status_code == 200 and disabled.json()["active"] is False
    unauthorized(app_client.get("/api/v1/leads"))
    again = app_client.post(
        "/auth/login", json={"email": "maria@example.com", "password": PASSWORD}
    )
    unauthorized(again)


def test_changing_the_password_ends_every_other_session(
    ctx: Context, app_client: TestClient
) -> None:
    person(ctx)
    csrf = sign_in(app_client)
    with TestClient(create_app(ctx), base_url="https://testserver") as thief:
        sign_in(thief)
        assert thief.get("/auth/me").status_code == 200
        changed = app_client.post(
            "/auth/password",
            json={"current_password": PASSWORD, "new_password": "an even longer passphrase"},
            headers={"X-CSRF-Token": csrf},
        )
        assert changed.status_code == 204, changed.text
        unauthorized(thief.get("/auth/me"))
    assert app_client.get("/auth/me").status_code == 200


def test_sessions_expire(ctx: Context, app_client: TestClient, clock: ManualClock) -> None:
    person(ctx)
    sign_in(app_client)
    clock.advance(timedelta(hours=ctx.settings.session_hours, seconds=1))
    unauthorized(app_client.get("/auth/me"))


def test_a_one_time_password_must_be_replaced_before_anything_else(
    ctx: Context, app_client: TestClient
) -> None:
    admin = bearer(token_for(ctx, Role.ADMIN))
    made = app_client.post(
        "/api/v1/users",
        json={"email": "rita@example.com", "display_name": "Rita", "role": "marketing"},
        headers=admin,
    )
    assert made.status_code == 201, made.text
    secret = made.json()["one_time_password"]
    assert made.json()["user"]["one_time_password"] is True
    login = app_client.post("/auth/login", json={"email": "rita@example.com", "password": secret})
    assert login.json()["must_change_password"] is True
    csrf = login.json()["csrf_token"]
    blocked = app_client.get("/api/v1/leads")
    assert blocked.status_code == 403 and "password" in blocked.json()["detail"]
    weak = app_client.post(
        "/auth/password",
        json={"current_password": secret, "new_password": "short"},
        headers={"X-CSRF-Token": csrf},
    )
    assert weak.status_code == 422 and weak.json()["errors"][0]["loc"] == "new_password"
    changed = app_client.post(
        "/auth/password",
        json={"current_password": secret, "new_password": PASSWORD},
        headers={"X-CSRF-Token": csrf},
    )
    assert changed.status_code == 204, changed.text
    assert app_client.get("/api/v1/leads").status_code == 200
    users = {u["email"]: u for u in app_client.get("/api/v1/users", headers=admin).json()}
    assert users["rita@example.com"]["one_time_password"] is False


def test_wrong_user_and_wrong_password_get_the_same_answer_after_the_same_work(
    ctx: Context, app_client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    person(ctx)
    verified: list[str] = []

    class Counting(PasswordHasher):
        def verify(self, hash: str | bytes, password: str | bytes) -> Literal[True]:
            verified.append(str(hash)[:10])
            return super().verify(hash, password)

    monkeypatch.setattr(user_service, "_hasher", Counting())
    wrong_password = app_client.post(
        "/auth/login", json={"email": "maria@example.com", "password": "not it at all"}
    )
    wrong_user = app_client.post(
        "/auth/login", json={"email": "nobody@example.com", "password": "not it at all"}
    )
    assert wrong_password.status_code == wrong_user.status_code == 401
    first, second = wrong_password.json(), wrong_user.json()
    assert {k: v for k, v in first.items() if k != "instance"} == {
        k: v for k, v in second.items() if k != "instance"
    }
    assert len(verified) == 2 and all(v.startswith("$argon2id") for v in verified)


def test_sign_in_is_throttled_per_account_with_retry_after(
    ctx: Context, app_client: TestClient, clock: ManualClock
) -> None:
    person(ctx)
    limit = ctx.settings.login_max_failures_per_account
    for _ in range(limit):
        response = app_client.post(
            "/auth/login", json={"email": "maria@example.com", "password": "wrong guess!"}
        )
        assert response.status_code == 401
    throttled = app_client.post(
        "/auth/login", json={"email": "maria@example.com", "password": PASSWORD}
    )
    assert throttled.status_code == 429, throttled.text
    assert throttled.headers["content-type"].startswith(PROBLEM)
    wait = int(throttled.headers["retry-after"])
    assert 0 < wait <= ctx.settings.login_window_minutes * 60 + 1
    unknown = app_client.post(
        "/auth/login", json={"email": "maria@example.com", "password": "wrong guess!"}
    )
    assert unknown.status_code == 429
    clock.advance(timedelta(seconds=wait))
    sign_in(app_client)


def test_sign_in_is_throttled_per_address(ctx: Context, app_client: TestClient) -> None:
    person(ctx)
    for index in range(ctx.settings.login_max_failures_per_address):
        response = app_client.post(
            "/auth/login", json={"email": f"guess{index}@example.com", "password": "wrong guess!"}
        )
        assert response.status_code == 401
    throttled = app_client.post(
        "/auth/login", json={"email": "maria@example.com", "password": PASSWORD}
    )
    assert throttled.status_code == 429 and int(throttled.headers["retry-after"]) > 0


def test_a_burst_of_parallel_guesses_gets_no_more_tries_than_the_limit(ctx: Context) -> None:
    person(ctx)
    limit = ctx.settings.login_max_failures_per_account
    outcomes: list[str] = []

    def guess(index: int) -> None:
        try:
            user_service.login(
                ctx, "maria@example.com", f"guess {index}!", address=f"10.1.{index}.1"
            )
        except Unauthorized:
            outcomes.append("wrong")
        except TooManyRequests:
            outcomes.append("throttled")

    threads = [threading.Thread(target=guess, args=(i,)) for i in range(4 * limit)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(outcomes) == 4 * limit
    burst = outcomes.count("wrong")
    assert 0 < burst <= limit, burst
    after = 0
    while True:
        try:
            user_service.login(ctx, "maria@example.com", "one more!", address="10.2.0.1")
        except Unauthorized:
            after += 1
        except TooManyRequests:
            break
    assert burst + after == limit, "every password checked counts, and no more than the limit"


def test_throttling_is_shared_by_every_process(ctx: Context) -> None:
    person(ctx)
    other = Context(engine=ctx.engine, settings=ctx.settings, clock=ctx.clock)
    for index in range(ctx.settings.login_max_failures_per_account):
        target = ctx if index % 2 else other
        with pytest.raises(Unauthorized):
            user_service.login(
                target, "maria@example.com", "wrong guess!", address=f"10.0.0.{index}"
            )
    with pytest.raises(TooManyRequests):
        user_service.login(ctx, "maria@example.com", PASSWORD, address="10.0.1.1")


def test_a_token_acts_within_its_scopes_and_never_beyond_its_owners_role(
    ctx: Context, app_client: TestClient
) -> None:
    reader = bearer(token_for(ctx, Role.MARKETING, scopes=("reports:read",)))
    assert app_client.get(FUNNEL, headers=reader).status_code == 200
    denied = app_client.post("/api/v1/leads", json={"email": "a@example.com"}, headers=reader)
    assert denied.status_code == 403 and "scope" in denied.json()["detail"]
    marketing_with_admin_scope = bearer(token_for(ctx, Role.MARKETING, scopes=("admin",)))
    assert app_client.get("/api/v1/users", headers=marketing_with_admin_scope).status_code == 403
    person(ctx, email="other@example.com")
    for_other = app_client.post(
        "/api/v1/tokens",
        json={"name": "theirs", "scopes": ["leads:read"], "user_email": "other@example.com"},
        headers=marketing_with_admin_scope,
    )
    assert for_other.status_code == 403 and "only an admin" in for_other.json()["detail"]


def test_a_token_never_makes_a_token_with_more_scopes_than_its_own(
    ctx: Context, app_client: TestClient
) -> None:
    narrow = bearer(token_for(ctx, Role.MARKETING, scopes=("tokens:write", "leads:read")))
    wider = app_client.post(
        "/api/v1/tokens", json={"name": "wider", "scopes": ["admin"]}, headers=narrow
    )
    assert wider.status_code == 403 and "admin" in wider.json()["detail"]
    same = app_client.post(
        "/api/v1/tokens", json={"name": "same", "scopes": ["leads:read"]}, headers=narrow
    )
    assert same.status_code == 201, same.text
    child = bearer(same.json()["token"])
    assert app_client.get("/api/v1/leads", headers=child).status_code == 200
    assert (
        app_client.post(
            "/api/v1/tokens", json={"name": "x", "scopes": ["leads:read"]}, headers=child
        ).status_code
        == 403
    )


def test_tokens_expire_and_revocation_is_immediate_here_and_within_seconds_elsewhere(
    ctx: Context, app_client: TestClient, clock: ManualClock
) -> None:
    admin = bearer(token_for(ctx, Role.ADMIN))
    made = app_client.post(
        "/api/v1/tokens",
        json={
            "name": "crm sync",
            "scopes": ["leads:read"],
            "expires_at": (clock.now() + timedelta(days=1)).isoformat(),
        },
        headers=admin,
    ).json()
    token = made["token"]
    assert token.startswith("bt_") and made["prefix"] == token[:10]
    assert app_client.get("/api/v1/leads", headers=bearer(token)).status_code == 200

    elsewhere = Context(engine=ctx.engine, settings=ctx.settings, clock=ctx.clock)
    assert user_service.token_principal(elsewhere, token) is not None
    revoked = app_client.delete(f"/api/v1/tokens/{made['id']}", headers=admin)
    assert revoked.status_code == 200 and revoked.json()["revoked_at"]
    unauthorized(app_client.get("/api/v1/leads", headers=bearer(token)))
    assert user_service.token_principal(elsewhere, token) is not None  # cached there
    clock.advance(timedelta(seconds=ctx.settings.token_cache_seconds))
    assert user_service.token_principal(elsewhere, token) is None
    assert ctx.settings.token_cache_seconds <= 5

    second = app_client.post(
        "/api/v1/tokens",
        json={
            "name": "short",
            "scopes": ["leads:read"],
            "expires_at": (clock.now() + timedelta(hours=1)).isoformat(),
        },
        headers=admin,
    ).json()["token"]
    assert app_client.get("/api/v1/leads", headers=bearer(second)).status_code == 200
    clock.advance(timedelta(hours=1, seconds=1))
    unauthorized(app_client.get("/api/v1/leads", headers=bearer(second)))


def test_disabling_the_owner_stops_their_tokens(ctx: Context, app_client: TestClient) -> None:
    token = token_for(ctx, Role.MARKETING, email="mo@example.com")
    assert app_client.get("/api/v1/leads", headers=bearer(token)).status_code == 200
    user = user_service.find_user(ctx, "mo@example.com", actor=operator())
    user_service.disable_user(ctx, user.id, actor=operator())
    unauthorized(app_client.get("/api/v1/leads", headers=bearer(token)))


def test_an_intake_key_captures_from_its_origins_only(ctx: Context, app_client: TestClient) -> None:
    key, secret = user_service.add_intake_key(
        ctx,
        IntakeKeyCreate(name="website", source="Web", origins=["https://www.example.com"]),
        actor=operator(),
    )
    assert key.source == "web"
    site = {"X-Baton-Intake-Key": secret, "Origin": "https://www.example.com"}
    preflight = app_client.options(
        "/api/v1/leads",
        headers={
            "Origin": "https://www.example.com",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type, x-baton-intake-key",
        },
    )
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == "https://www.example.com"
    assert "x-baton-intake-key" in preflight.headers["access-control-allow-headers"]
    foreign = app_client.options(
        "/api/v1/leads",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert "access-control-allow-origin" not in foreign.headers
    assert foreign.status_code == 403, foreign.text  # not the router's 405
    assert "no intake key allows the origin https://evil.example" in foreign.json()["detail"]
    assert foreign.headers["content-type"] == "application/problem+json"

    made = app_client.post("/api/v1/leads", json={"email": "web@example.org"}, headers=site)
    assert made.status_code == 202, made.text
    assert made.headers["access-control-allow-origin"] == "https://www.example.com"
    again = app_client.post(
        "/api/v1/leads", json={"email": "web@example.org", "first_name": "Wes"}, headers=site
    )
    assert again.json() == made.json() == {"received": 1, "rejected_rows": 0, "errors": []}
    app_client.post(
        "/api/v1/leads", json={"email": "ads@example.org", "source": "ads"}, headers=site
    )
    admin = bearer(token_for(ctx, Role.ADMIN))
    sources = {
        lead["email"]: lead["source"]
        for lead in app_client.get("/api/v1/leads", headers=admin).json()["items"]
    }
    assert sources == {"web@example.org": "web", "ads@example.org": "ads"}

    known = {"email": "dana@northwind.example.com", "first_name": "Dana", "consent": False}
    assert app_client.post("/api/v1/leads", json=known, headers=admin).status_code == 201
    forged = {
        "email": known["email"],
        "first_name": "Mallory",
        "phone": "+14155550100",
        "consent": True,
    }
    assert app_client.post("/api/v1/leads", json=forged, headers=site).status_code == 202
    stored = next(
        lead
        for lead in app_client.get("/api/v1/leads", headers=admin).json()["items"]
        if lead["email"] == known["email"]
    )
    assert stored["first_name"] == "Dana" and stored["consent"] is False
    assert stored["phone"] == "+14155550100", "a blank field may be filled"

    evil = app_client.post(
        "/api/v1/leads",
        json={"email": "x@example.org"},
        headers={"X-Baton-Intake-Key": secret, "Origin": "https://evil.example"},
    )
    assert evil.status_code == 403
    for path in (
        "/api/v1/leads",
        "/api/v1/handoffs",
        FUNNEL,
    ):
        assert app_client.get(path, headers=site).status_code == 403
    assert (
        app_client.post("/api/v1/contracts", json={"body": "x"}, headers=bearer(secret)).status_code
        == 403
    )


def test_an_intake_key_is_rate_limited(ctx: Context, app_client: TestClient) -> None:
    _, secret = user_service.add_intake_key(
        ctx, IntakeKeyCreate(name="form", source="form", rate_per_minute=3), actor=operator()
    )
    answers = [
        app_client.post(
            "/api/v1/leads", json={"email": f"p{i}@example.org"}, headers=bearer(secret)
        )
        for i in range(5)
    ]
    assert [a.status_code for a in answers] == [202, 202, 202, 429, 429]
    assert 0 < int(answers[-1].headers["retry-after"]) <= 60


def test_an_intake_key_cannot_name_a_lead_by_its_external_id(
    ctx: Context, app_client: TestClient
) -> None:
    """A page's public key could otherwise fill (and then hand-raise) a lead imported
    from a CRM by copying its id: refused naming the fields, nothing written; a token
    may still capture by external id."""
    token = bearer(token_for(ctx, Role.MARKETING))
    made = app_client.post(
        "/api/v1/leads",
        json={"external_id": "7927b2df", "external_system": "crm", "company": "Lumen"},
        headers=token,
    )
    assert made.status_code == 201, made.text
    _, secret = user_service.add_intake_key(
        ctx, IntakeKeyCreate(name="site", source="web"), actor=operator()
    )
    for body in (
        {"external_id": "7927b2df", "external_system": "crm", "email": "x@evil.example.com"},
        {"external_id": "7927b2df", "email": "x@evil.example.com"},
    ):
        refused = app_client.post("/api/v1/leads", json=body, headers=bearer(secret))
        assert refused.status_code == 422, refused.text
        errors = refused.json()["errors"]
        assert "external_id" in [e["loc"] for e in errors]
        assert all("never by id" in e["message"] for e in errors)
    lead = app_client.get(f"/api/v1/leads/{made.json()['lead']['id']}", headers=token).json()
    assert lead["email"] is None
    again = app_client.post(
        "/api/v1/leads",
        json={"external_id": "7927b2df", "external_system": "crm", "title": "CFO"},
        headers=token,
    )
    assert again.status_code == 200 and again.json()["lead"]["title"] == "CFO"


def test_an_intake_key_cannot_record_an_unsubscribe(ctx: Context, app_client: TestClient) -> None:
    """From a page anyone can read, an unsubscribe would only lower the score of whoever
    the sender names; a token (the email platform) still records it."""
    token = bearer(token_for(ctx, Role.MARKETING))
    app_client.post("/api/v1/leads", json={"email": "una@lumen.example"}, headers=token)
    _, secret = user_service.add_intake_key(
        ctx, IntakeKeyCreate(name="site", source="web"), actor=operator()
    )
    event = {"email": "una@lumen.example", "type": "unsubscribe"}
    refused = app_client.post("/api/v1/activities", json=event, headers=bearer(secret))
    assert refused.status_code == 422, refused.text
    assert [e["loc"] for e in refused.json()["errors"]] == ["type"]
    batch = app_client.post(
        "/api/v1/activities/batch",
        json={"activities": [event, {"email": "una@lumen.example", "type": "page_view"}]},
        headers=bearer(secret),
    )
    assert batch.status_code == 202, batch.text
    assert batch.json()["rejected_rows"] == 1
    assert app_client.post("/api/v1/activities", json=event, headers=token).status_code == 201
    [lead] = app_client.get("/api/v1/leads", headers=token).json()["items"]
    assert lead["unsubscribed_at"] is not None, "the platform's unsubscribe is honoured"


def test_secrets_are_never_stored_or_logged_in_clear(
    ctx: Context, app_client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    admin_token = token_for(ctx, Role.ADMIN)
    made = app_client.post(
        "/api/v1/users",
        json={"email": "tom@example.com", "display_name": "Tom", "role": "marketing"},
        headers=bearer(admin_token),
    ).json()
    one_time = made["one_time_password"]
    login = app_client.post("/auth/login", json={"email": "tom@example.com", "password": one_time})
    csrf = login.json()["csrf_token"]
    session_cookie = app_client.cookies["baton_session"]
    app_client.post(
        "/auth/password",
        json={"current_password": one_time, "new_password": PASSWORD},
        headers={"X-CSRF-Token": csrf},
    )
    app_client.post("/auth/login", json={"email": "tom@example.com", "password": "wrong one!"})
    token = app_client.post(
        "/api/v1/tokens",
        json={"name": "mine", "scopes": ["leads:read"]},
        headers={"X-CSRF-Token": csrf},
    ).json()
    _, intake = user_service.add_intake_key(
        ctx, IntakeKeyCreate(name="site", source="web"), actor=operator()
    )
    assert app_client.get("/api/v1/leads", headers=bearer(token["token"])).status_code == 200
    secrets = {
        "admin token": admin_token,
        "one-time password": one_time,
        "password": PASSWORD,
        "csrf-less session key": session_cookie.split(".")[0],
        "token": token["token"],
        "intake key": intake,
    }
    stored: list[str] = []
    with ctx.read() as connection:
        for table in metadata.sorted_tables:
            for row in connection.execute(select(table)):
                stored.extend(str(value) for value in row)
    dump = "\n".join(stored)
    logged = caplog.text
    for name, secret in secrets.items():
        assert secret not in dump, f"{name} stored in clear"
        assert secret not in logged, f"{name} in the log"
    for listing in ("/api/v1/users", "/api/v1/tokens?all_users=true", "/api/v1/intake-keys"):
        text = app_client.get(listing, headers=bearer(admin_token)).text
        assert all(secret not in text for secret in secrets.values())
        assert "hash" not in text
    assert "sign-in failed for 'tom@example.com'" in logged
