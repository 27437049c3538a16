"""The last admin with a password of their own cannot reset it from the API or the
admin page (review finding: it left only one-time passwords, and the next production
start refused to serve, a lock-out nobody signed in could undo). Over HTTP; the shell
operator still may (`baton user reset-password` warns, `set-password` mends it)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from tests.e2e.test_web_access import sign_in

from baton.api.app import create_app
from baton.domain.access import Principal, Role, operator
from baton.domain.errors import Conflict
from baton.domain.users import UserCreate
from baton.services import users as user_service
from baton.services.context import Context

PASSWORD = "correct horse battery staple"
OPS = operator("test")
REFUSED = "you are the last admin with a password of your own"


def _admin(ctx: Context, email: str) -> int:
    user, _ = user_service.add_user(
        ctx,
        UserCreate(email=email, display_name=email.split("@")[0], role=Role.ADMIN),
        actor=OPS,
        password=PASSWORD,
    )
    return user.id


@pytest.fixture
def client(sqlite_ctx: Context) -> Iterator[TestClient]:
    with TestClient(
        create_app(sqlite_ctx), base_url="https://testserver", follow_redirects=False
    ) as client:
        yield client


def test_the_last_admin_with_their_own_password_keeps_it(
    client: TestClient, sqlite_ctx: Context
) -> None:
    ops = _admin(sqlite_ctx, "ops@lumen.example")
    csrf = sign_in(client, "ops@lumen.example")

    page = client.post(f"/admin/users/{ops}/reset-password", data={"csrf_token": csrf})
    assert page.status_code == 303, page.text
    listing = " ".join(client.get(page.headers["location"]).text.split())
    assert REFUSED in listing and "`baton user set-password`" in listing.replace("&#96;", "`")

    api = client.post(f"/api/v1/users/{ops}/reset-password", headers={"X-CSRF-Token": csrf})
    assert api.status_code == 409, api.text
    assert api.headers["content-type"].startswith("application/problem+json")
    assert REFUSED in api.json()["detail"]

    assert user_service.production_problems(sqlite_ctx) == []  # production still starts
    assert client.get("/auth/me").status_code == 200  # and the session was not ended


def test_with_another_admin_of_their_own_password_the_reset_goes_ahead(
    client: TestClient, sqlite_ctx: Context
) -> None:
    ops = _admin(sqlite_ctx, "ops@lumen.example")
    _admin(sqlite_ctx, "kai@lumen.example")
    csrf = sign_in(client, "ops@lumen.example")
    page = client.post(f"/admin/users/{ops}/reset-password", data={"csrf_token": csrf})
    assert page.status_code == 200 and "only this once" in page.text
    assert re.search(r'id="secret" class="secret" value="([^"]+)"', page.text)
    assert user_service.production_problems(sqlite_ctx) == []


def test_the_shell_operator_may_still_reset_it(sqlite_ctx: Context) -> None:
    ops = _admin(sqlite_ctx, "ops@lumen.example")
    assert user_service.reset_password(sqlite_ctx, ops, actor=OPS)
    assert any("set-password" in p for p in user_service.production_problems(sqlite_ctx))


def test_the_rule_holds_on_both_databases(ctx: Context) -> None:
    ops = _admin(ctx, "ops@lumen.example")
    me = Principal(kind="user", name="ops@lumen.example", role=Role.ADMIN, user_id=ops)
    with pytest.raises(Conflict, match=REFUSED):
        user_service.reset_password(ctx, ops, actor=me)
    kai = _admin(ctx, "kai@lumen.example")
    assert user_service.reset_password(ctx, ops, actor=me)  # Kai keeps one of their own
    with pytest.raises(Conflict, match="this user is the last admin with a password of their"):
        user_service.reset_password(ctx, kai, actor=me)  # (a token of Ops, say)
