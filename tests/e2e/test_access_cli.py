"""Access on the command line: `baton init` makes the first admin, `baton user`,
`baton token` and `baton intake-key` manage who gets in, secrets are printed once and
never again, the database password never appears, and production refuses to start
without an admin, with demo users, or while no admin has chosen their own password (a
colleague's unused one-time password is only a warning: a restart never waits for them)."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from baton import cli
from baton.api.app import NotReady, create_app
from baton.cli import app
from baton.config import Settings
from baton.domain.access import Principal, Role, operator
from baton.domain.users import PasswordChange, UserCreate
from baton.services.context import open_context
from baton.services.users import (
    add_user,
    change_password,
    find_user,
    login,
    session_principal,
    token_principal,
)

SECRET = "s" * 40


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("BATON_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.delenv("BATON_ENV", raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(cli.console, "width", 160)
    return CliRunner()


def run(runner: CliRunner, *args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def refused(runner: CliRunner, *args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 1, result.output
    return result.output


def shown_once(output: str, marker: str) -> str:
    found = re.search(marker + r"[^:]*: (\S+)", output)
    assert found, output
    return found.group(1)


def test_init_makes_one_first_admin_with_a_one_time_password(
    runner: CliRunner, tmp_path: Path
) -> None:
    first = run(runner, "init", "--admin-email", "ops@example.com")
    secret = shown_once(first, "one-time password")
    assert "first admin: ops@example.com" in first
    again = run(runner, "init")
    assert "one-time password" not in again
    ctx = open_context(Settings(database_url=f"sqlite:///{tmp_path / 'cli.db'}", env="test"))
    started = login(ctx, "ops@example.com", secret, address="127.0.0.1")
    assert started.user.role == "admin" and started.user.one_time_password
    listing = run(runner, "user", "list")
    assert "ops@example.com" in listing and "one-time" in listing and secret not in listing


def test_users_tokens_and_intake_keys_from_the_command_line(
    runner: CliRunner, tmp_path: Path
) -> None:
    run(runner, "team", "add", "na")
    run(
        runner,
        "rep",
        "add",
        "ana@lumen.example",
        "--name",
        "Ana",
        "--team",
        "na",
        "--timezone",
        "Europe/Lisbon",
    )
    added = run(
        runner,
        "user",
        "add",
        "ana@lumen.example",
        "--role",
        "rep",
        "--rep",
        "ana@lumen.example",
        "--name",
        "Ana Silva",
    )
    shown_once(added, "one-time password")
    assert re.search(r"ana@lumen\.example.*Europe/Lisbon", run(runner, "user", "list")), (
        "a rep user takes their rep's time zone"
    )
    bad = refused(runner, "user", "add", "sam@lumen.example", "--role", "rep")
    assert "--rep: a rep user needs the email of their rep" in bad  # the option, not rep_email
    bad_team = refused(
        runner, "user", "add", "sam@lumen.example", "--role", "sales_manager", "--team", "nowhere"
    )
    assert "team 'nowhere' does not exist" in bad_team
    run(runner, "user", "add", "sam@lumen.example", "--role", "sales_manager", "--team", "na")

    made = run(
        runner,
        "token",
        "add",
        "crm sync",
        "--user",
        "ana@lumen.example",
        "--scope",
        "handoffs:read",
        "--expires-in-days",
        "30",
    )
    token = shown_once(made, "token \\(shown only now")
    assert token.startswith("bt_")
    assert "nonsense" in refused(
        runner, "token", "add", "x", "--user", "ana@lumen.example", "--scope", "nonsense"
    )
    listing = run(runner, "token", "list")
    assert "crm sync" in listing and token not in listing and token[:10] in listing
    ctx = open_context(Settings(database_url=f"sqlite:///{tmp_path / 'cli.db'}", env="test"))
    principal = token_principal(ctx, token)
    assert principal is not None and principal.role == "rep"
    assert principal.scopes == frozenset({"handoffs:read"})
    token_id = re.search(r"token (\d+) ", made)
    assert token_id
    run(runner, "token", "revoke", token_id.group(1))
    ctx.caches.clear()
    assert token_principal(ctx, token) is None

    key = run(
        runner,
        "intake-key",
        "add",
        "website",
        "--source",
        "Web",
        "--origin",
        "https://www.example.com/",
    )
    secret = shown_once(key, "key \\(shown only now")
    keys = run(runner, "intake-key", "list")
    assert "https://www.example.com" in keys and "web" in keys and secret not in keys
    assert "not a browser origin" in refused(
        runner, "intake-key", "add", "form", "--source", "form", "--origin", "www.example.com/path"
    )

    reset = run(runner, "user", "reset-password", "ana@lumen.example")
    shown_once(reset, "new one-time password")
    run(runner, "user", "disable", "ana@lumen.example")
    assert re.search(r"ana@lumen\.example.*no", run(runner, "user", "list"))
    assert "no user has the email" in refused(runner, "user", "disable", "eve@lumen.example")


def test_production_refuses_to_start_until_access_is_ready(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("BATON_ENV", "production")
    insecure = refused(runner, "worker", "--once")
    assert "BATON_SECRET_KEY" in insecure
    monkeypatch.setenv("BATON_SECRET_KEY", SECRET)
    assert "no active admin user" in refused(runner, "worker", "--once")
    assert "no active admin user" in refused(runner, "serve")
    monkeypatch.setenv("BATON_ENV", "development")
    secret = shown_once(run(runner, "init", "--admin-email", "ops@example.com"), "one-time")
    monkeypatch.setenv("BATON_ENV", "production")
    unready = refused(runner, "worker", "--once")
    assert "no active admin has chosen their own password" in unready
    assert "baton user set-password" in unready

    ctx = open_context(Settings(database_url=url, env="test"))
    admin = find_user(ctx, "ops@example.com", actor=operator())
    person = Principal(
        kind="user", name=admin.email, role=Role.ADMIN, user_id=admin.id, email=admin.email
    )
    change_password(
        ctx,
        PasswordChange(current_password=secret, new_password="a real admin password"),
        actor=person,
    )
    run(runner, "worker", "--once")
    assert "demo" in refused(runner, "demo", "--no-serve")


def test_the_demo_makes_one_user_per_role_and_production_refuses_them(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    output = run(runner, "demo", "--leads", "30", "--no-serve")
    rows = [
        [cell.strip() for cell in line.split("│")[1:-1]]
        for line in output.split("Demo users")[1].splitlines()
        if "@lumen.example" in line
    ]
    passwords = {email: secret for email, _, secret in rows}
    assert set(passwords) == {
        "admin@lumen.example",
        "maria.lopez@lumen.example",
        "sam.becker@lumen.example",
        "alex.kim@lumen.example",
    }
    listing = run(runner, "user", "list")
    assert listing.count("(demo)") == 4
    assert all(p not in listing for p in passwords.values())
    monkeypatch.setenv("BATON_ENV", "production")
    monkeypatch.setenv("BATON_SECRET_KEY", SECRET)
    assert "demo user" in refused(runner, "worker", "--once")


def test_a_failed_connection_never_prints_the_database_password(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    password = "Sup3r-Secret-Pw"
    monkeypatch.setenv(
        "BATON_DATABASE_URL", f"postgresql+psycopg://baton:{password}@127.0.0.1:1/baton"
    )
    result = runner.invoke(app, ["init"])
    assert result.exit_code == 1
    assert "cannot open the database" in result.output
    assert password not in result.output
    assert "***" in result.output


def test_the_app_itself_refuses_production_without_safe_access(tmp_path: Path) -> None:
    """uvicorn on baton.api.asgi:app skips `baton serve`, so the app checks too."""
    url = f"sqlite:///{tmp_path / 'app.db'}"
    ctx = open_context(Settings(database_url=url, env="production", secret_key=SECRET))
    with pytest.raises(NotReady, match="no active admin user"):
        create_app(ctx)
    _, secret = add_user(
        ctx,
        UserCreate(email="ops@example.com", display_name="Ops", role="admin"),
        actor=operator(),
    )
    with pytest.raises(NotReady, match="no active admin has chosen their own password"):
        create_app(ctx)
    assert secret is not None
    admin = find_user(ctx, "ops@example.com", actor=operator())
    change_password(
        ctx,
        PasswordChange(current_password=secret, new_password="a real admin password"),
        actor=Principal(kind="user", name=admin.email, role=Role.ADMIN, user_id=admin.id),
    )
    assert create_app(ctx).title == "Baton"
    add_user(
        ctx,
        UserCreate(email="mia@example.com", display_name="Mia", role="marketing"),
        actor=operator(),
    )
    assert create_app(ctx).title == "Baton", "a colleague's one-time password stops no start"


def test_production_starts_and_restarts_with_colleagues_one_time_passwords_pending(
    runner: CliRunner,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The operator finishes the set-up from the shell, and a colleague added on a
    running deployment never stops the next start of the worker or the server."""
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    run(runner, "init", "--admin-email", "ops@example.com")
    monkeypatch.setenv("BATON_ENV", "production")
    monkeypatch.setenv("BATON_SECRET_KEY", SECRET)
    assert "set-password" in refused(runner, "worker", "--once")
    too_short = runner.invoke(
        app, ["user", "set-password", "ops@example.com", "--password-stdin"], input="short\n"
    )
    assert too_short.exit_code == 1 and "at least 12 characters" in too_short.output
    assert "set-password" in refused(runner, "worker", "--once")  # nothing was changed
    set_now = runner.invoke(
        app,
        ["user", "set-password", "ops@example.com", "--password-stdin"],
        input="a real admin password\n",
    )
    assert set_now.exit_code == 0, set_now.output
    assert "a real admin password" not in set_now.output
    run(runner, "worker", "--once")

    shown_once(run(runner, "user", "add", "mia@example.com", "--role", "marketing"), "one-time")
    caplog.set_level(logging.WARNING, logger="baton.access")
    run(runner, "worker", "--once")  # a restart after adding a colleague
    assert "1 user(s) have not yet replaced their one-time password" in caplog.text
    assert "mia@example.com" not in caplog.text  # the count, never the people's emails
    assert "each stops working 7 days after it was given" in caplog.text
    ctx = open_context(Settings(database_url=url, env="production", secret_key=SECRET))
    assert create_app(ctx).title == "Baton"  # what every server process runs at start
    started = login(ctx, "ops@example.com", "a real admin password", address="127.0.0.1")
    assert not started.user.one_time_password
    assert "set-password" not in run(runner, "user", "reset-password", "mia@example.com")
    reset = run(runner, "user", "reset-password", "ops@example.com")  # the only admin
    assert "until then production refuses to start" in reset and "set-password" in reset


def test_set_password_asks_twice_hidden_and_ends_the_users_sessions(
    runner: CliRunner, tmp_path: Path
) -> None:
    secret = shown_once(run(runner, "init", "--admin-email", "ops@example.com"), "one-time")
    ctx = open_context(Settings(database_url=f"sqlite:///{tmp_path / 'cli.db'}", env="test"))
    session = login(ctx, "ops@example.com", secret, address="127.0.0.1")
    assert session_principal(ctx, session.key) is not None
    typo = runner.invoke(
        app,
        ["user", "set-password", "ops@example.com"],
        input="a real admin password\nanother one entirely\n"
        "a real admin password\na real admin password\n",
    )
    assert typo.exit_code == 0, typo.output
    assert "do not match" in typo.output.lower() and "a real admin password" not in typo.output
    assert session_principal(ctx, session.key) is None
    assert not login(
        ctx, "ops@example.com", "a real admin password", address="127.0.0.1"
    ).user.one_time_password
    assert "no user has the email" in refused(
        runner, "user", "set-password", "eve@example.com", "--password-stdin"
    )


def test_init_takes_the_first_admins_password_from_standard_input(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    weak = runner.invoke(
        app, ["init", "--admin-email", "ops@example.com", "--admin-password-stdin"], input=" x\n"
    )
    assert weak.exit_code == 1 and "--admin-password-stdin" in weak.output
    made = runner.invoke(
        app,
        ["init", "--admin-email", "ops@example.com", "--admin-password-stdin"],
        input="a real admin password\n",
    )
    assert made.exit_code == 0, made.output
    assert "first admin: ops@example.com" in made.output and "one-time" not in made.output
    monkeypatch.setenv("BATON_ENV", "production")
    monkeypatch.setenv("BATON_SECRET_KEY", SECRET)
    run(runner, "worker", "--once")
    again = runner.invoke(app, ["init", "--admin-password-stdin"], input="another password here\n")
    assert again.exit_code == 0 and "no password changed" in again.output
    ctx = open_context(Settings(database_url=f"sqlite:///{tmp_path / 'cli.db'}", env="test"))
    assert login(ctx, "ops@example.com", "a real admin password", address="127.0.0.1")


def test_production_init_says_to_set_the_admins_password_with_their_real_email(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In production a one-time password can never be used (serve and the worker refuse
    to start until an admin has their own), so init says the command that finishes it,
    and the refusal names the real admin, not ``EMAIL``: both are copied as printed."""
    monkeypatch.setenv("BATON_ENV", "production")
    monkeypatch.setenv("BATON_SECRET_KEY", SECRET)
    made = run(runner, "init", "--admin-email", "ops@lumen.example")
    assert "`baton user set-password ops@lumen.example`" in made
    assert "sign in and choose your own" not in made
    unready = refused(runner, "worker", "--once")
    assert "`baton user set-password ops@lumen.example`" in unready
    assert "set-password EMAIL" not in unready


def test_a_token_scope_the_users_role_can_never_use_is_warned_of(runner: CliRunner) -> None:
    """A rep's token with ``status:read`` is made (a token never grants more than its
    role, and no scope is refused by role) but would be refused at every use: say so
    while whoever made it is still there, not at the first 403."""
    run(runner, "init")
    run(runner, "rep", "add", "ana@lumen.example", "--name", "Ana")
    run(runner, "user", "add", "ana@lumen.example", "--role", "rep", "--rep", "ana@lumen.example")
    made = run(
        runner,
        "token",
        "add",
        "mine",
        "--user",
        "ana@lumen.example",
        "--scope",
        "status:read",
        "--scope",
        "handoffs:read",
    )
    assert "warning: the rep role can never use status:read" in made
    assert "handoffs:read;" not in made and "use handoffs:read" not in made
    fine = run(
        runner, "token", "add", "ops", "--user", "admin@example.com", "--scope", "status:read"
    )
    assert "warning" not in fine
