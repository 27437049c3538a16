"""`baton user|token|intake-key ...`: people who sign in, API tokens, intake keys."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from baton.cli._common import ActorOption, valid, work
from baton.cli._output import console, fail, say, show_list, when
from baton.domain.access import Role, operator

user_app = typer.Typer(
    help="People who sign in: add, list, disable, reset or set a password.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)
token_app = typer.Typer(
    help="API tokens for programs (shown once, stored as a hash).",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)
intake_app = typer.Typer(
    help="Intake keys: public keys that only capture leads and activities.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)


def _password_cell(user: Any, now: datetime) -> str:
    """``own``, ``one-time`` (with the day it stops working) or ``one-time, expired``."""
    if not user.one_time_password:
        return "own"
    expires = user.one_time_password_expires_at
    if expires is None:
        return "[yellow]one-time[/]"
    if expires <= now:
        return "[red]one-time, expired[/]"
    return f"[yellow]one-time[/] until {when(expires)}"


def _say_until(expires: datetime | None) -> None:
    """On a line of its own: the line before keeps ``...: <secret>`` for scripts."""
    if expires is not None:
        say(f"it works until {when(expires)}; after that, an admin gives a new one")


def _user_rows(found: list[Any], now: datetime) -> list[list[str]]:
    """The cells (Rich markup) of ``baton user list``, one row per user."""
    return [
        [
            str(u.id),
            escape(u.email),
            escape(u.display_name),
            u.role,
            escape(u.rep_email or ", ".join(u.teams) or "-"),
            u.timezone,
            "yes" if u.active else "[red]no[/]",
            _password_cell(u, now)
            + (" (demo)" if u.demo else ""),
        ]
        for u in found
    ]


@user_app.command("add")
def user_add(
    email: str,
    role: Annotated[Role, typer.Option("--role", help="admin, marketing, sales_manager or rep.")],
    name: Annotated[str | None, typer.Option("--name", help="Display name.")] = None,
    rep: Annotated[
        str | None, typer.Option("--rep", help="For a rep user: the email of their rep record.")
    ] = None,
    team: Annotated[
        list[str] | None, typer.Option("--team", help="For a sales manager: a team (repeat).")
    ] = None,
    timezone: Annotated[
        str | None,
        typer.Option("--timezone", help="IANA time zone (default: the rep's, else UTC)."),
    ] = None,
    actor: ActorOption = "cli",
) -> None:
    """Add a person; prints their one-time password (shown only now)."""
    from baton.domain.users import UserCreate
    from baton.services.users import add_user

    data = valid(
        UserCreate,
        {
            "email": email,
            "display_name": name or email.split("@")[0],
            "role": role.value,
            "rep_email": rep,
            "teams": team or [],
            **({"timezone": timezone} if timezone else {}),
        },
    )
    with work() as ctx:
        user, secret = add_user(ctx, data, actor=operator(actor))
    say(f"user {user.id} added: {user.email} ({user.role})")
    say(f"one-time password (shown only now; they choose their own at first sign-in): {secret}")
    _say_until(user.one_time_password_expires_at)


@user_app.command("list")
def user_list() -> None:
    """Every user, their role, and who still has a one-time password."""
    from baton.services.users import list_users

    with work() as ctx:
        found = list_users(ctx, actor=operator())
        now = ctx.clock.now()
    # A list, not a bare table: an email is never folded mid-word (``you@exam`` /
    # ``ple.com`` cannot be grepped); when the emails do not fit whole, one block a user.
    columns = [
        ("id", False),
        ("email", False),
        ("name", True),
        ("role", False),
        ("rep / teams", False),
        ("time zone", False),
        ("active", False),
        ("password", False),
    ]
    show_list("Users", columns, _user_rows(found, now), record="user")


@user_app.command("disable")
def user_disable(email: str, actor: ActorOption = "cli") -> None:
    """Disable a user: their sessions end at once, their tokens within seconds."""
    from baton.services.users import disable_user, find_user

    with work() as ctx:
        user = disable_user(ctx, find_user(ctx, email, actor=operator()).id, actor=operator(actor))
    say(f"user {user.email} disabled")


@user_app.command("reset-password")
def user_reset_password(email: str, actor: ActorOption = "cli") -> None:
    """Give a user a new one-time password (shown only now); their sessions end."""
    from baton.services.users import find_user, production_problems, reset_password

    with work() as ctx:
        user_id = find_user(ctx, email, actor=operator()).id
        secret = reset_password(ctx, user_id, actor=operator(actor))
        expires = find_user(ctx, email, actor=operator()).one_time_password_expires_at
        # The last admin with a password of their own: say it before a restart does.
        unready = [p for p in production_problems(ctx) if "set-password" in p]
    say(f"new one-time password for {email} (shown only now): {secret}")
    _say_until(expires)
    for problem in unready:
        console.print(f"[yellow]note: {problem}; until then production refuses to start[/]")


@user_app.command("set-password")
def user_set_password(
    email: str,
    password_stdin: Annotated[
        bool,
        typer.Option("--password-stdin", help="Read the password from standard input (one line)."),
    ] = False,
    actor: ActorOption = "cli",
) -> None:
    """Set a user's own password from the server's shell (asked twice, hidden), e.g.
    the first admin's before production starts; their sessions end. For a colleague,
    prefer `reset-password`: they then choose their own."""
    import sys

    from baton.domain.users import PasswordSet
    from baton.services.users import find_user, set_password

    with work() as ctx:
        user = find_user(ctx, email, actor=operator())  # a mistyped email before a password
        if password_stdin:
            secret = sys.stdin.readline().rstrip("\r\n")
        else:
            secret = typer.prompt("New password", hide_input=True, confirmation_prompt=True)
        option = "--password-stdin" if password_stdin else "new password"
        data = valid(PasswordSet, {"password": secret}, {"password": option})
        set_password(ctx, user.id, data, actor=operator(actor))
    say(f"password of {email} set; their sessions ended")


@token_app.command("add")
def token_add(
    name: str,
    user: Annotated[str, typer.Option("--user", help="Email of the user the token acts as.")],
    scope: Annotated[
        list[str],
        typer.Option("--scope", help="A scope, e.g. leads:write (repeat). `baton token scopes`."),
    ],
    expires_in_days: Annotated[
        int | None, typer.Option("--expires-in-days", min=1, help="Expire after so many days.")
    ] = None,
    actor: ActorOption = "cli",
) -> None:
    """Make an API token for a user (an integration's service user, say); it never
    grants more than that user's role. Prints the token once."""
    from datetime import timedelta

    from baton.domain.access import scopes_unusable_by
    from baton.domain.users import TokenCreate
    from baton.services.users import create_token, find_user

    with work() as ctx:
        expires = (
            None if expires_in_days is None else ctx.clock.now() + timedelta(days=expires_in_days)
        )
        data = valid(
            TokenCreate,
            {"name": name, "scopes": scope, "expires_at": expires, "user_email": user},
            {"name": "NAME"},
        )
        token, secret = create_token(ctx, data, actor=operator(actor))
        owner = find_user(ctx, token.user_email, actor=operator())
    say(f"token {token.id} ({token.prefix}…) for {token.user_email}: {', '.join(token.scopes)}")
    say(f"token (shown only now, send it as a bearer token): {secret}")
    # A warning, not a refusal: no other scope is refused by the owner's role either
    # (the token simply never grants more than the role), and a role may change later.
    useless = scopes_unusable_by(Role(owner.role), token.scopes)
    if useless:
        console.print(
            f"[yellow]warning: the {owner.role} role can never use {', '.join(useless)}; "
            "this token will be refused there[/]",
            highlight=False,
        )


@token_app.command("list")
def token_list() -> None:
    """Every API token (never the secrets), with when each was last used."""
    from baton.services.users import list_tokens

    with work() as ctx:
        found = list_tokens(ctx, actor=operator(), all_users=True)
    names = ("id", "prefix", "name", "user", "scopes", "expires", "last used", "state")
    rows = [
        [
            str(t.id),
            escape(t.prefix) + "…",
            escape(t.name),
            escape(t.user_email),
            ", ".join(t.scopes),
            when(t.expires_at),
            when(t.last_used_at),
            "[red]revoked[/]" if t.revoked_at else "active",
        ]
        for t in found
    ]
    columns = [(name, name in ("name", "user", "scopes")) for name in names]
    show_list("API tokens", columns, rows, record="token")


@token_app.command("revoke")
def token_revoke(
    token_id: Annotated[int, typer.Argument(metavar="ID")], actor: ActorOption = "cli"
) -> None:
    """Revoke a token: refused by every process within seconds."""
    from baton.services.users import revoke_token

    with work() as ctx:
        token = revoke_token(ctx, token_id, actor=operator(actor))
    say(f"token {token.id} ({token.name}) revoked")


@token_app.command("scopes")
def token_scopes() -> None:
    """The scopes a token can carry."""
    from baton.domain.access import SCOPES

    table = Table(title="Token scopes")
    table.add_column("scope", no_wrap=True)
    table.add_column("lets a program")
    for scope, meaning in SCOPES.items():
        table.add_row(scope, meaning)
    console.print(table)


@intake_app.command("add")
def intake_key_add(
    name: str,
    source: Annotated[str, typer.Option("--source", help="Source given to leads it captures.")],
    origin: Annotated[
        list[str] | None,
        typer.Option("--origin", help="A browser origin allowed, e.g. https://www.example.com."),
    ] = None,
    rate: Annotated[
        int, typer.Option("--rate", help="Requests a minute at most, per server process.")
    ] = 60,
    actor: ActorOption = "cli",
) -> None:
    """Make a public intake key for a website or form tool: it may only capture
    leads and activities. Prints the key once."""
    from baton.domain.users import IntakeKeyCreate
    from baton.services.users import add_intake_key

    data = valid(
        IntakeKeyCreate,
        {"name": name, "source": source, "origins": origin or [], "rate_per_minute": rate},
        {"name": "NAME"},
    )
    with work() as ctx:
        key, secret = add_intake_key(ctx, data, actor=operator(actor))
    say(f"intake key {key.id} '{key.name}' (source {key.source}, {key.rate_per_minute}/min)")
    say(f"key (shown only now; send as X-Baton-Intake-Key): {secret}")


@intake_app.command("list")
def intake_key_list() -> None:
    """Every intake key (never the secrets)."""
    from baton.services.users import list_intake_keys

    with work() as ctx:
        found = list_intake_keys(ctx, actor=operator())
    table = Table(title="Intake keys")
    for column in ("id", "prefix", "name", "source", "origins", "rate/min", "state"):
        table.add_column(column, no_wrap=column in ("id", "prefix"))
    for k in found:
        table.add_row(
            str(k.id),
            k.prefix + "…",
            escape(k.name),
            escape(k.source),
            escape(", ".join(k.origins) or "(servers only)"),
            str(k.rate_per_minute),
            "[red]revoked[/]" if k.revoked_at else "active",
        )
    console.print(table)


@intake_app.command("update")
def intake_key_update(
    key_id: Annotated[int, typer.Argument(metavar="ID")],
    rate: Annotated[
        int | None,
        typer.Option("--rate", help="Requests a minute at most, per server process."),
    ] = None,
    origin: Annotated[
        list[str] | None,
        typer.Option("--origin", help="A browser origin allowed (repeat; replaces the list)."),
    ] = None,
    servers_only: Annotated[
        bool, typer.Option("--servers-only", help="Allow no browser origin (servers only).")
    ] = False,
    actor: ActorOption = "cli",
) -> None:
    """Change an intake key's rate or origins; the key itself stays, so the website
    needs no change. The server applies it within seconds (`baton intake-key list`
    shows the ids)."""
    from baton.domain.users import IntakeKeyUpdate
    from baton.services.users import update_intake_key

    if servers_only and origin:
        raise fail("--origin and --servers-only: choose one")
    changes: dict[str, Any] = {}
    if rate is not None:
        changes["rate_per_minute"] = rate
    if origin or servers_only:
        changes["origins"] = origin or []
    if not changes:
        raise fail("say what to change: --rate, --origin or --servers-only")
    data = valid(IntakeKeyUpdate, changes)
    with work() as ctx:
        key = update_intake_key(ctx, key_id, data, actor=operator(actor))
    origins = ", ".join(key.origins) or "servers only"
    say(f"intake key {key.id} ({key.name}): {key.rate_per_minute}/min, origins: {origins}")


@intake_app.command("revoke")
def intake_key_revoke(
    key_id: Annotated[int, typer.Argument(metavar="ID")], actor: ActorOption = "cli"
) -> None:
    """Revoke an intake key: refused within seconds. To change its rate or origins
    instead, keeping the website's key, use `baton intake-key update`."""
    from baton.services.users import revoke_intake_key

    with work() as ctx:
        key = revoke_intake_key(ctx, key_id, actor=operator(actor))
    say(f"intake key {key.id} ({key.name}) revoked")
