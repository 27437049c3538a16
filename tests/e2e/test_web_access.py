"""Every page × every role, by status code, over HTTP (FastAPI's TestClient), on a
small world (:mod:`tests.web_world`); and every POST form refuses a missing or wrong
CSRF token with 403.

To add a page: one line in :data:`PAGES` (``{ana_handoff}``-style placeholders are
the world's ids, see :func:`_ids`); a form: one line in :data:`FORMS`.
"""

from __future__ import annotations

import copy
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from tests.conftest import START
from tests.web_world import ANA, BEN, EXAMPLE, PASSWORD, World, build_world

from baton.api.app import create_app
from baton.config import Settings
from baton.domain.clock import ManualClock
from baton.services.context import Context, open_context

ROLES = ("anonymous", "admin", "marketing", "sales_manager", "rep")
LOGIN = "login"
"""Status for an anonymous visitor: 303 to /login?next=…"""

ALL_OK = {"admin": 200, "marketing": 200, "sales_manager": 200, "rep": 200}
REPORTS = {"admin": 200, "marketing": 200, "sales_manager": 200, "rep": 403}
"""Company-wide figures: the reports' rule (``Action.READ_REPORTS`` over everything)."""
REP_ONLY = {"admin": 403, "marketing": 403, "sales_manager": 403, "rep": 200}
ADMIN_ONLY = {"admin": 200, "marketing": 403, "sales_manager": 403, "rep": 403}

PAGES: list[tuple[str, dict[str, int]]] = [
    ("/home", ALL_OK),
    ("/password", ALL_OK),
    ("/contract", ALL_OK),
    ("/contract/1", ALL_OK),
    ("/contract/99", {"admin": 404, "marketing": 404, "sales_manager": 404, "rep": 404}),
    ("/contract/diff?old=1&new=1", ALL_OK),
    ("/contract/1/backtest", REPORTS),
    ("/contract/new", {"admin": 200, "marketing": 200, "sales_manager": 403, "rep": 403}),
    ("/admin/models", REPORTS),
    ("/admin/models/99", {"admin": 404, "marketing": 404, "sales_manager": 404, "rep": 403}),
    ("/team", {"admin": 200, "marketing": 403, "sales_manager": 200, "rep": 403}),
    ("/team?team=na", {"admin": 200, "marketing": 403, "sales_manager": 200, "rep": 403}),
    ("/admin", ADMIN_ONLY),
    ("/admin/users", ADMIN_ONLY),
    ("/admin/tokens", ADMIN_ONLY),
    ("/admin/reps", ADMIN_ONLY),
    ("/admin/reps/1", ADMIN_ONLY),
    ("/admin/webhooks", ADMIN_ONLY),
    ("/admin/webhooks/99", {"admin": 404, "marketing": 403, "sales_manager": 403, "rep": 403}),
    ("/admin/intake-keys", ADMIN_ONLY),
    ("/admin/intake", {"admin": 200, "marketing": 200, "sales_manager": 403, "rep": 403}),
    (
        "/admin/intake?status=failed&endpoint=x&before=9",
        {"admin": 200, "marketing": 200, "sales_manager": 403, "rep": 403},
    ),
    (
        "/admin/intake/endpoints/nope",
        {"admin": 404, "marketing": 404, "sales_manager": 403, "rep": 403},
    ),
    (
        "/admin/intake/requests/999999",
        {"admin": 404, "marketing": 404, "sales_manager": 403, "rep": 403},
    ),
    ("/admin/duplicates", {"admin": 200, "marketing": 200, "sales_manager": 403, "rep": 403}),
    # A 303 for everyone signed in: each role's home (see test_root_sends_each_role_home).
    ("/", {"admin": 303, "marketing": 303, "sales_manager": 303, "rep": 303}),
    ("/dashboard", REPORTS),
    ("/dashboard?from=2026-03-01&until=2026-03-31&team=na&group=campaign", REPORTS),
    ("/dashboard/nothing.csv", {"admin": 404, "marketing": 404, "sales_manager": 404, "rep": 404}),
    ("/inbox", REP_ONLY),
    ("/inbox/list", REP_ONLY),
    ("/handoffs/{ana_handoff}", ALL_OK),
    ("/handoffs/{ben_handoff}", {"admin": 200, "marketing": 200, "sales_manager": 200, "rep": 404}),
    ("/handoffs/999999", {"admin": 404, "marketing": 404, "sales_manager": 404, "rep": 404}),
    ("/handoffs/abc", {"admin": 404, "marketing": 404, "sales_manager": 404, "rep": 404}),
    ("/leads", ALL_OK),
    ("/leads?q=dana&stage=mql&grade=A&sort=score&order=asc&offset=0", ALL_OK),
    ("/leads?stage=bogus", {"admin": 422, "marketing": 422, "sales_manager": 422, "rep": 422}),
    ("/leads?q=dana&partial=1", ALL_OK),
    ("/leads/{ana_lead}", ALL_OK),
    ("/leads/{ben_lead}", {"admin": 200, "marketing": 200, "sales_manager": 200, "rep": 404}),
    ("/leads/999999", {"admin": 404, "marketing": 404, "sales_manager": 404, "rep": 404}),
    ("/settings/notifications", REP_ONLY),
]
"""(path, status by role); the anonymous visitor is always sent to sign in."""

FORMS: list[tuple[str, str, dict[str, str]]] = [
    ("/logout", "rep", {}),
    ("/contract/new", "marketing", {"body": EXAMPLE.read_text()}),
    ("/contract/1/approve", "sales_manager", {"role": "sales"}),
    ("/contract/1/activate", "admin", {}),
    ("/admin/models/1/approve", "marketing", {"role": "marketing"}),
    ("/admin/models/1/activate", "admin", {}),
    ("/password", "rep", {"current_password": PASSWORD, "new_password": "x" * 20,
                          "confirm_password": "x" * 20}),
    ("/handoffs/{ana_handoff}/accept", "rep", {"next": "/inbox"}),
    ("/handoffs/{ana_handoff}/reject", "rep", {"code": "no_budget", "note": "n"}),
    ("/handoffs/{ana_handoff}/touch", "rep", {"kind": "call", "note": "hello"}),
    ("/handoffs/{ana_handoff}/qualify", "rep", {"field_budget": "10k"}),
    ("/handoffs/{ana_handoff}/won", "rep", {"amount": "1000"}),
    ("/handoffs/{ana_handoff}/lost", "rep", {"reason": "went elsewhere"}),
    ("/handoffs/{ana_handoff}/prep", "rep", {"item": "x", "done": "true"}),
    ("/handoffs/{ana_handoff}/notes", "rep", {"body": "a note"}),
    ("/handoffs/{ana_handoff}/tags", "rep", {"tag": "vip"}),
    ("/team/handoffs/{ana_handoff}/reassign", "sales_manager", {"to": BEN}),
    ("/team/handoffs/{ana_handoff}/assign", "sales_manager", {"to": BEN}),
    ("/admin/users", "admin", {"email": "zoe@lumen.example", "display_name": "Zoe",
                               "role": "marketing"}),
    ("/admin/users/5/disable", "admin", {}),
    ("/admin/users/5/enable", "admin", {}),
    ("/admin/users/5/reset-password", "admin", {}),
    ("/admin/tokens", "admin", {"name": "sync", "scopes": "leads:read"}),
    ("/admin/teams", "admin", {"name": "apac"}),
    ("/admin/reps", "admin", {"email": "zoe@lumen.example", "name": "Zoe"}),
    ("/admin/reps/1", "admin", {"name": "Ana", "timezone": "UTC", "status": "available",
                                "capacity": "20", "weight": "1", "active": "yes",
                                "working_hours": "mon 09:00-17:00"}),
    ("/admin/reps/1/absences", "admin", {"starts_at": "2026-03-10T09:00",
                                         "ends_at": "2026-03-11T09:00"}),
    ("/admin/webhooks", "admin", {"url": "https://hooks.example.com/baton", "events": "*"}),
    ("/admin/intake-keys", "admin", {"name": "site", "source": "web"}),
    ("/admin/intake/endpoints", "marketing", {"name": "site-form", "kind": "generic",
                                              "source": "web", "mapping": '{"email": "email"}'}),
    ("/admin/intake/retry", "marketing", {}),
    ("/admin/duplicates/dismiss", "admin", {"by_filter": "1", "reason": "x", "dry_run": "1"}),
    ("/admin/duplicates/merge", "admin", {"survivor_id": "1", "merged_id": "2"}),
    ("/leads/filters", "marketing", {"name": "Hot", "query": "q=dana&grade=A", "shared": "1"}),
    ("/leads/filters/1/delete", "marketing", {}),
    ("/leads/{ana_lead}/notes", "rep", {"body": "called"}),
    ("/leads/{ana_lead}/tags", "rep", {"tag": "vip"}),
    ("/leads/{ana_lead}/tags/remove", "rep", {"tag": "vip"}),
    ("/leads/import/rejected.csv", "marketing", {"lines": "line,errors\r\n"}),
    ("/settings/notifications", "rep", {"email": "on"}),
    ("/settings/notifications/channels", "rep", {"kind": "slack", "label": "#me",
                                                 "url": "https://hooks.slack.com/services/T/B/x"}),
]  # fmt: skip
"""(path, role who may post it, a valid form without its csrf_token)."""


def _ids(world: World) -> dict[str, int]:
    return {
        "ana_handoff": world.first(ANA),
        "ben_handoff": world.first(BEN),
        "ana_lead": world.leads[ANA][0],
        "ben_lead": world.leads[BEN][0],
    }


@pytest.fixture(scope="session")
def world_template(
    tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path
) -> tuple[Path, World]:
    """The world built once (users' passwords hashed once); each test gets a copy."""
    path = tmp_path_factory.mktemp("web-world") / "baton.db"
    shutil.copyfile(sqlite_template, path)
    context = open_context(
        Settings(database_url=f"sqlite:///{path}", env="test"), clock=ManualClock(current=START)
    )
    try:
        world = build_world(context, handoffs_each=1)
    finally:
        context.engine.dispose()
    return path, world


@pytest.fixture
def sqlite_ctx(world_template: tuple[Path, World], tmp_path: Path) -> Iterator[Context]:
    """This module's database: a fresh copy of the world (overrides tests/conftest.py's)."""
    path = tmp_path / "baton.db"
    shutil.copyfile(world_template[0], path)
    context = open_context(
        Settings(database_url=f"sqlite:///{path}", env="test"), clock=ManualClock(current=START)
    )
    try:
        yield context
    finally:
        context.engine.dispose()


@pytest.fixture
def world(sqlite_ctx: Context, world_template: tuple[Path, World]) -> World:
    return copy.deepcopy(world_template[1])


@pytest.fixture
def app_client(sqlite_ctx: Context, world: World) -> Iterator[TestClient]:
    app = create_app(sqlite_ctx)
    with TestClient(app, base_url="https://testserver", follow_redirects=False) as client:
        yield client


def sign_in(client: TestClient, email: str, password: str = PASSWORD) -> str:
    """Sign in through the form; returns the session's CSRF token (from a page)."""
    client.cookies.clear()
    form = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token is not None
    answer = client.post(
        "/login", data={"email": email, "password": password, "csrf_token": token.group(1)}
    )
    assert answer.status_code == 303, answer.text
    return str(client.get("/auth/me").json()["csrf_token"])


def test_every_page_answers_each_role_as_the_table_says(
    app_client: TestClient, world: World
) -> None:
    ids = _ids(world)
    seen: dict[tuple[str, str], int] = {}
    expected: dict[tuple[str, str], int] = {}
    for role in ROLES:
        if role == "anonymous":
            app_client.cookies.clear()
        else:
            sign_in(app_client, world.users[role])
        for path, statuses in PAGES:
            url = path.format(**ids)
            answer = app_client.get(url, headers={"accept": "text/html"})
            seen[role, url] = answer.status_code
            if role == "anonymous":
                expected[role, url] = 303
                assert answer.headers["location"].startswith("/login?next=")
            else:
                expected[role, url] = statuses[role]
            if answer.status_code in (200, 403, 404):
                assert answer.headers["content-type"].startswith("text/html")
                assert "default-src 'self'" in answer.headers["content-security-policy"]
    assert seen == expected


def test_root_sends_each_role_home(app_client: TestClient, world: World) -> None:
    """Each role's home page, or /home while that page is not built."""
    homes = {
        "rep": "/inbox",
        "sales_manager": "/team",
        "marketing": "/dashboard",
        "admin": "/admin",
    }
    for role, home in homes.items():
        sign_in(app_client, world.users[role])
        location = app_client.get("/").headers["location"]
        if location == "/home":
            assert app_client.get(home).status_code == 404, home
        else:
            assert location == home
            assert app_client.get(home).status_code == 200, home


def test_a_rep_opening_another_reps_packet_gets_the_404_page(
    app_client: TestClient, world: World
) -> None:
    sign_in(app_client, world.users["rep"])
    answer = app_client.get(f"/handoffs/{world.first(BEN)}")
    assert answer.status_code == 404
    assert answer.headers["content-type"].startswith("text/html")
    assert "Not found" in answer.text


@pytest.mark.parametrize(("path", "role", "data"), FORMS, ids=[f[0] for f in FORMS])
def test_every_form_refuses_a_missing_or_wrong_csrf_token(
    app_client: TestClient, world: World, path: str, role: str, data: dict[str, str]
) -> None:
    ids = _ids(world)
    url = path.format(**ids)
    token = sign_in(app_client, world.users[role])
    for bad in ({}, {"csrf_token": "not-the-token"}, {"csrf_token": token[:-1]}):
        answer = app_client.post(url, data={**data, **bad}, headers={"accept": "text/html"})
        assert answer.status_code == 403, (url, bad, answer.text[:300])
        assert "did not come from Baton" in answer.text
    # With the token the form goes through (a redirect, or the page again with a message).
    answer = app_client.post(url, data={**data, "csrf_token": token})
    assert answer.status_code in (200, 303, 400), answer.text[:300]


def test_the_sign_in_form_needs_its_own_token_and_says_what_went_wrong(
    app_client: TestClient, world: World
) -> None:
    app_client.cookies.clear()
    form = {"email": ANA, "password": PASSWORD}
    assert app_client.post("/login", data=form).status_code == 403
    page = app_client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token is not None
    wrong = app_client.post("/login", data={**form, "password": "nope", "csrf_token": token[1]})
    assert wrong.status_code == 400 and "do not match" in wrong.text
    ok = app_client.post("/login", data={**form, "next": "//evil.example", "csrf_token": token[1]})
    assert ok.status_code == 303 and ok.headers["location"] == "/"
    # The same session works for the API.
    assert app_client.get("/auth/me").json()["user"]["email"] == ANA


def test_a_one_time_password_must_be_replaced_first(
    app_client: TestClient, sqlite_ctx: Context, world: World
) -> None:
    from baton.domain.access import operator
    from baton.services.users import find_user, reset_password

    user = find_user(sqlite_ctx, BEN, actor=operator("t"))
    once = reset_password(sqlite_ctx, user.id, actor=operator("t"))
    app_client.cookies.clear()
    page = app_client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token is not None
    answer = app_client.post(
        "/login", data={"email": BEN, "password": once, "csrf_token": token[1]}
    )
    assert answer.headers["location"] == "/password"
    assert app_client.get("/home").headers["location"] == "/password"
    csrf = app_client.get("/auth/me").json()["csrf_token"]
    new = "a brand new passphrase"
    short = app_client.post(
        "/password",
        data={"current_password": once, "new_password": "short", "confirm_password": "short",
              "csrf_token": csrf},
    )  # fmt: skip
    assert short.status_code == 400 and "12 characters" in short.text
    done = app_client.post(
        "/password",
        data={"current_password": once, "new_password": new, "confirm_password": new,
              "csrf_token": csrf},
    )  # fmt: skip
    assert done.status_code == 303
    assert app_client.get("/home").status_code == 200


def test_static_files_are_ours_and_cached(app_client: TestClient) -> None:
    css = app_client.get("/static/baton.css")
    assert css.status_code == 200 and "max-age" in css.headers["cache-control"]
    page = app_client.get("/login")
    assert "http" not in "".join(re.findall(r'(?:src|href)="([^"]+)"', page.text))
    assert page.headers["x-frame-options"] == "DENY"
    assert "<script>" not in page.text


def test_the_sign_in_form_is_throttled_like_the_api(
    app_client: TestClient, sqlite_ctx: Context
) -> None:
    app_client.cookies.clear()
    page = app_client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token is not None
    form = {"email": ANA, "password": "guess", "csrf_token": token[1]}
    limit = sqlite_ctx.settings.login_max_failures_per_account
    answers = [app_client.post("/login", data=form) for _ in range(limit + 1)]
    assert [a.status_code for a in answers] == [400] * limit + [429]
    assert int(answers[-1].headers["retry-after"]) > 0
    assert "Too many failed sign-ins" in answers[-1].text
