"""One-time passwords stop working after ``one_time_password_days`` (7 by default).

They travel by chat or on paper; before, one never used stayed a working credential for
good. The person who knows an expired one is told so (and to ask an admin), a wrong
password is still only "wrong email or password", a reset gives a fresh week, and a
password the user chose never expires. The upgrade gives the one-time passwords that
exist a week from then."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from alembic import command
from fastapi.testclient import TestClient
from sqlalchemy import insert, select
from typer.testing import CliRunner

from baton.api.app import create_app
from baton.cli import app as cli_app
from baton.domain.access import Principal, Role, operator
from baton.domain.clock import ManualClock
from baton.domain.errors import TooManyRequests, Unauthorized
from baton.domain.users import PasswordChange, UserCreate
from baton.services import users as user_service
from baton.services.context import Context
from baton.store.engine import make_engine
from baton.store.migrate import alembic_config, upgrade
from baton.store.tables import sessions, users

OPS = operator("test")
OWN = "correct horse battery staple"


def _add(ctx: Context, email: str, role: Role = Role.MARKETING) -> tuple[int, str]:
    user, secret = user_service.add_user(
        ctx, UserCreate(email=email, display_name=email.split("@")[0], role=role), actor=OPS
    )
    assert secret is not None
    return user.id, secret


def _login(ctx: Context, email: str, password: str) -> None:
    user_service.login(ctx, email, password, address="198.51.100.7")


def test_a_one_time_password_works_for_a_week_then_says_it_expired(
    ctx: Context, clock: ManualClock
) -> None:
    made_at = clock.now()
    user_id, secret = _add(ctx, "rita@lumen.example")
    shown = user_service.get_user(ctx, user_id, actor=OPS)
    assert shown.one_time_password_expires_at == made_at + timedelta(days=7)

    clock.advance(days=6, hours=23)
    _login(ctx, "rita@lumen.example", secret)

    clock.advance(hours=1)
    with pytest.raises(Unauthorized) as expired:
        _login(ctx, "rita@lumen.example", secret)
    assert expired.value.detail == user_service.ONE_TIME_EXPIRED
    with pytest.raises(Unauthorized) as wrong:
        _login(ctx, "rita@lumen.example", secret + "x")
    assert wrong.value.detail == user_service.WRONG_CREDENTIALS

    fresh = user_service.reset_password(ctx, user_id, actor=OPS)
    after_reset = user_service.get_user(ctx, user_id, actor=OPS)
    assert after_reset.one_time_password_expires_at == clock.now() + timedelta(days=7)
    _login(ctx, "rita@lumen.example", fresh)


def test_a_session_opened_with_a_one_time_password_ends_when_the_password_does(
    ctx: Context, clock: ManualClock
) -> None:
    """Review finding: a session opened an hour before expiry lasted its 12 hours and
    traded the expired password for a new one."""
    user_id, secret = _add(ctx, "rita@lumen.example")
    clock.advance(days=6, hours=23)
    started = user_service.login(ctx, "rita@lumen.example", secret, address="198.51.100.7")
    assert started.expires_at == clock.now() + timedelta(hours=1)
    assert user_service.session_principal(ctx, started.key) is not None
    clock.advance(hours=1)
    assert user_service.session_principal(ctx, started.key) is None
    me = Principal(
        kind="user", name="rita@lumen.example", role=Role.MARKETING, user_id=user_id,
        email="rita@lumen.example",
    )  # fmt: skip
    with pytest.raises(Unauthorized, match="expired"):
        user_service.change_password(
            ctx, PasswordChange(current_password=secret, new_password=OWN), actor=me
        )
    assert user_service.get_user(ctx, user_id, actor=OPS).one_time_password


def test_a_reset_lifts_the_limit_that_expired_attempts_reached(
    ctx: Context, clock: ManualClock
) -> None:
    """Review finding: ten tries of the expired password, then the admin's fresh one was
    refused (429) for up to 15 minutes."""
    user_id, secret = _add(ctx, "rita@lumen.example")
    clock.advance(days=8)
    for _ in range(ctx.settings.login_max_failures_per_account):
        with pytest.raises(Unauthorized, match="expired"):
            _login(ctx, "rita@lumen.example", secret)
    with pytest.raises(TooManyRequests):
        _login(ctx, "rita@lumen.example", secret)
    fresh = user_service.reset_password(ctx, user_id, actor=OPS)
    _login(ctx, "rita@lumen.example", fresh)


def test_a_password_of_ones_own_never_expires(ctx: Context, clock: ManualClock) -> None:
    user_id, secret = _add(ctx, "omar@lumen.example")
    _login(ctx, "omar@lumen.example", secret)
    me = Principal(
        kind="user", name="omar@lumen.example", role=Role.MARKETING, user_id=user_id,
        email="omar@lumen.example",
    )  # fmt: skip
    user_service.change_password(
        ctx, PasswordChange(current_password=secret, new_password=OWN), actor=me
    )
    assert user_service.get_user(ctx, user_id, actor=OPS).one_time_password_expires_at is None
    clock.advance(days=400)
    _login(ctx, "omar@lumen.example", OWN)


def test_the_start_warning_counts_only_one_time_passwords_that_still_work(
    ctx: Context, clock: ManualClock
) -> None:
    _add(ctx, "old@lumen.example")
    clock.advance(days=3)
    _add(ctx, "new@lumen.example")
    assert user_service.pending_one_time_passwords(ctx) == [
        "new@lumen.example",
        "old@lumen.example",
    ]
    clock.advance(days=5)
    assert user_service.pending_one_time_passwords(ctx) == ["new@lumen.example"]


def test_the_setting_sets_the_days(ctx: Context, clock: ManualClock) -> None:
    ctx.settings = ctx.settings.model_copy(update={"one_time_password_days": 1})
    _, secret = _add(ctx, "ana@lumen.example")
    clock.advance(hours=25)
    with pytest.raises(Unauthorized, match="expired"):
        _login(ctx, "ana@lumen.example", secret)


@pytest.fixture
def client(sqlite_ctx: Context) -> Iterator[TestClient]:
    with TestClient(
        create_app(sqlite_ctx), base_url="https://testserver", follow_redirects=False
    ) as client:
        yield client


def test_the_sign_in_page_and_the_api_say_it_expired(
    client: TestClient, sqlite_ctx: Context
) -> None:
    _, secret = _add(sqlite_ctx, "rita@lumen.example")
    assert isinstance(sqlite_ctx.clock, ManualClock)
    sqlite_ctx.clock.advance(days=8)

    form = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token is not None
    page = client.post(
        "/login",
        data={"email": "rita@lumen.example", "password": secret, "csrf_token": token.group(1)},
    )
    assert page.status_code == 400
    assert "This one-time password has expired: ask an admin for a new one." in page.text

    api = client.post("/auth/login", json={"email": "rita@lumen.example", "password": secret})
    assert api.status_code == 401
    assert api.headers["content-type"].startswith("application/problem+json")
    assert "expired" in api.json()["detail"]
    wrong = client.post("/auth/login", json={"email": "rita@lumen.example", "password": "nope"})
    assert wrong.status_code == 401 and "expired" not in wrong.json()["detail"]


def test_the_user_list_shows_until_when_and_expired(
    sqlite_ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The shell reads the wall clock: the users are made a week and a day ago, and now.
    assert isinstance(sqlite_ctx.clock, ManualClock)
    sqlite_ctx.clock.set(datetime.now(UTC) - timedelta(days=8))
    _add(sqlite_ctx, "old@lumen.example")
    sqlite_ctx.clock.set(datetime.now(UTC))
    _add(sqlite_ctx, "new@lumen.example")
    monkeypatch.setenv("BATON_DATABASE_URL", str(sqlite_ctx.engine.url))
    monkeypatch.setenv("COLUMNS", "200")
    added = CliRunner().invoke(cli_app, ["user", "add", "kim@lumen.example", "--role", "marketing"])
    told = added.output.splitlines()
    assert len(told) == 3, added.output
    assert told[1].startswith("one-time password (shown only now") and told[1].count(":") == 1
    assert told[2].startswith("it works until ") and "an admin gives a new one" in told[2]
    listing = CliRunner().invoke(cli_app, ["user", "list"])
    assert listing.exit_code == 0, listing.output
    # A table row or a block a user, as the width allows: the first password cell after
    # each email is theirs.
    cells = {
        email: re.search(re.escape(email) + r".*?(own|one-time[^│\n]*)", listing.output, re.S)
        for email in ("old@lumen.example", "new@lumen.example")
    }
    old, new = (c.group(1).strip() if c else "" for c in cells.values())
    assert old == "one-time, expired", listing.output
    until = (datetime.now(UTC) + timedelta(days=7)).date()
    shown = re.fullmatch(r"one-time until (\d{4}-\d\d-\d\d) \d\d:\d\d \S+", new)
    assert shown is not None, listing.output
    assert shown.group(1) in {str(until), str(until - timedelta(days=1))}, listing.output


def test_the_upgrade_gives_existing_one_time_passwords_a_week(empty_database_url: str) -> None:
    engine = make_engine(empty_database_url)
    try:
        upgrade(engine, "0026")  # not head: later migrations add what 0025 lacks too
        now = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
        with engine.begin() as connection:
            # Back to the schema of 0025, as a deployment upgrading from it has.
            connection.exec_driver_sql("ALTER TABLE users DROP COLUMN one_time_password_expires_at")
            connection.exec_driver_sql("UPDATE alembic_version SET version_num = '0025'")
        with engine.begin() as connection:
            for email, one_time in (("a@lumen.example", True), ("b@lumen.example", False)):
                connection.execute(
                    insert(users).values(
                        email=email,
                        display_name=email[0],
                        role="marketing",
                        active=True,
                        timezone="UTC",
                        password_hash="x",
                        one_time_password=one_time,
                        demo=False,
                        created_at=now,
                        updated_at=now,
                        created_by="test",
                    )
                )
        started = datetime.now(UTC)
        upgrade(engine)
        with engine.connect() as connection:
            rows = dict(
                connection.execute(
                    select(users.c.email, users.c.one_time_password_expires_at)
                ).all()
            )
        assert rows["b@lumen.example"] is None
        expires = rows["a@lumen.example"]
        assert expires is not None
        assert started + timedelta(days=7) <= expires <= datetime.now(UTC) + timedelta(days=7)
        with engine.begin() as connection:  # users that others point at (sessions, teams)
            user_id = connection.execute(
                select(users.c.id).where(users.c.email == "a@lumen.example")
            ).scalar_one()
            connection.execute(
                insert(sessions).values(
                    key_hash="k" * 64, user_id=user_id, csrf_token="c", created_at=now,
                    expires_at=now,
                )
            )  # fmt: skip
        with engine.begin() as connection:  # the downgrade keeps them, on both databases
            command.downgrade(alembic_config(connection), "0025")
        upgrade(engine)
        with engine.connect() as connection:
            assert connection.execute(select(sessions.c.user_id)).scalar_one() == user_id
    finally:
        engine.dispose()
