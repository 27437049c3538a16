"""Users, sessions, API tokens and intake keys: turning credentials into a principal.

Secrets are never stored or returned after creation: passwords as argon2id hashes,
session keys, API tokens and intake keys as SHA-256 digests of 256-bit random values
(a slow hash adds nothing to a secret nobody chose). The secret is shown once, when it
is made.

A session is looked up at every request, so logout and disabling a user end it at
once. A verified token or intake key is cached in the process for at most
``token_cache_seconds`` (5 s at most), so a revocation or a disabled owner takes effect
everywhere within that time without a database read per request; the password hash is
never cached.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, insert, or_, select, true, update
from sqlalchemy.engine import Connection, RowMapping
from sqlalchemy.exc import IntegrityError

from baton.domain.access import ADMIN_SCOPE, Action, Principal, Reach, Role
from baton.domain.clock import Clock, ensure_utc
from baton.domain.errors import (
    Conflict,
    FieldProblem,
    Forbidden,
    NotFound,
    TooManyRequests,
    Unauthorized,
    ValidationFailed,
)
from baton.domain.users import (
    IntakeKeyCreate,
    IntakeKeyUpdate,
    PasswordChange,
    PasswordSet,
    TokenCreate,
    UserCreate,
    UserUpdate,
)
from baton.services.access import allowed
from baton.services.context import Context
from baton.services.queries import inserted_id
from baton.store.tables import (
    api_tokens,
    intake_keys,
    login_failures,
    reps,
    sessions,
    teams,
    user_teams,
    users,
)

log = logging.getLogger("baton.access")

_hasher = PasswordHasher()


@cache
def _dummy_hash() -> str:
    """Verified when the account does not exist, so a wrong email costs the same time as
    a wrong password. Made at the first sign-in rather than at import: hashing costs
    0.1-0.2 s of CPU, which every process start (each server worker, each command)
    paid whether or not anyone signed in."""
    return _hasher.hash(secrets.token_urlsafe(16))


TOKEN_PREFIX = "bt_"  # noqa: S105 (a marker, not a secret)
INTAKE_PREFIX = "bik_"
WRONG_CREDENTIALS = "wrong email or password"
ONE_TIME_EXPIRED = "this one-time password has expired: ask an admin for a new one"


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def one_time_password() -> str:
    return secrets.token_urlsafe(12)


# ---------------------------------------------------------------- users


@dataclass(frozen=True)
class UserPublic:
    """A user as admins see them; never a password or its hash."""

    id: int
    email: str
    display_name: str
    role: str
    active: bool
    rep_email: str | None
    teams: list[str]
    timezone: str
    one_time_password: bool
    demo: bool
    created_at: datetime
    one_time_password_expires_at: datetime | None = None
    """When the one-time password stops working (None: the user chose their own)."""


def _user_rows(connection: Connection, where: Any = None) -> list[UserPublic]:
    query = (
        select(users, reps.c.email.label("rep_email"))
        .select_from(users.outerjoin(reps, reps.c.id == users.c.rep_id))
        .order_by(users.c.id)
    )
    if where is not None:
        query = query.where(where)
    rows = connection.execute(query).mappings().all()
    names: dict[int, list[str]] = {}
    if rows:
        for user_id, name in connection.execute(
            select(user_teams.c.user_id, teams.c.name)
            .join(teams, teams.c.id == user_teams.c.team_id)
            .where(user_teams.c.user_id.in_([r["id"] for r in rows]))
            .order_by(teams.c.name)
        ):
            names.setdefault(int(user_id), []).append(str(name))
    return [
        UserPublic(
            id=int(r["id"]),
            email=r["email"],
            display_name=r["display_name"],
            role=r["role"],
            active=bool(r["active"]),
            rep_email=r["rep_email"],
            teams=names.get(int(r["id"]), []),
            timezone=r["timezone"],
            one_time_password=bool(r["one_time_password"]),
            demo=bool(r["demo"]),
            created_at=r["created_at"],
            one_time_password_expires_at=(
                r["one_time_password_expires_at"] if r["one_time_password"] else None
            ),
        )
        for r in rows
    ]


def _one_user(connection: Connection, user_id: int) -> UserPublic:
    found = _user_rows(connection, users.c.id == user_id)
    if not found:
        raise NotFound(f"user {user_id} does not exist")
    return found[0]


def _links(
    connection: Connection, role: Role, rep_email: str | None, team_names: Sequence[str]
) -> tuple[int | None, list[int]]:
    """The rep record of a rep user and the team ids of a manager, checked."""
    problems: list[FieldProblem] = []
    rep_id: int | None = None
    if role is Role.REP:
        if rep_email is None:
            problems.append(FieldProblem("rep_email", "a rep user needs the email of their rep"))
        else:
            found = connection.execute(select(reps.c.id).where(reps.c.email == rep_email)).scalar()
            if found is None:
                problems.append(FieldProblem("rep_email", f"no rep has the email {rep_email}"))
            else:
                rep_id = int(found)
    elif rep_email is not None:
        problems.append(FieldProblem("rep_email", "only a rep user is linked to a rep"))
    team_ids: list[int] = []
    if team_names and role is not Role.SALES_MANAGER:
        problems.append(FieldProblem("teams", "only a sales manager manages teams"))
    for index, name in enumerate(team_names):
        found = connection.execute(select(teams.c.id).where(teams.c.name == name)).scalar()
        if found is None:
            problems.append(FieldProblem(f"teams[{index}]", f"team '{name}' does not exist"))
        else:
            team_ids.append(int(found))
    if problems:
        raise ValidationFailed("the user cannot be saved", problems)
    return rep_id, sorted(set(team_ids))


def _set_teams(connection: Connection, user_id: int, team_ids: Iterable[int]) -> None:
    connection.execute(delete(user_teams).where(user_teams.c.user_id == user_id))
    rows = [{"user_id": user_id, "team_id": t} for t in team_ids]
    if rows:
        connection.execute(insert(user_teams), rows)


def add_user(
    ctx: Context,
    data: UserCreate,
    *,
    actor: Principal,
    password: str | None = None,
    demo: bool = False,
) -> tuple[UserPublic, str | None]:
    """Create a user. Without ``password`` a one-time password is made and returned
    (the only time it is shown); the user must replace it before production starts."""
    allowed(actor, Action.MANAGE_USERS)
    secret = password or one_time_password()
    hashed = _hasher.hash(secret)
    now = ctx.clock.now()
    with ctx.write() as connection:
        rep_id, team_ids = _links(connection, data.role, data.rep_email, data.teams)
        timezone = data.timezone
        if rep_id is not None and "timezone" not in data.model_fields_set:
            timezone = connection.execute(
                select(reps.c.timezone).where(reps.c.id == rep_id)
            ).scalar_one()
        try:
            with connection.begin_nested():
                user_id = inserted_id(
                    connection.execute(
                        insert(users).values(
                            email=data.email,
                            display_name=data.display_name,
                            role=data.role.value,
                            active=True,
                            rep_id=rep_id,
                            timezone=timezone,
                            password_hash=hashed,
                            one_time_password=password is None,
                            one_time_password_expires_at=(
                                _one_time_expiry(ctx, now) if password is None else None
                            ),
                            demo=demo,
                            created_at=now,
                            updated_at=now,
                            created_by=actor.name,
                        )
                    )
                )
        except IntegrityError:
            raise Conflict(
                f"a user with the email {data.email} exists"
                if rep_id is None
                else f"a user with the email {data.email} or for the rep {data.rep_email} exists"
            ) from None
        _set_teams(connection, user_id, team_ids)
        user = _one_user(connection, user_id)
    log.info("user %s (%s) added by %s", user.email, user.role, actor.name)
    return user, None if password else secret


def list_users(ctx: Context, *, actor: Principal) -> list[UserPublic]:
    allowed(actor, Action.MANAGE_USERS)
    with ctx.read() as connection:
        return _user_rows(connection)


def get_user(ctx: Context, user_id: int, *, actor: Principal) -> UserPublic:
    if actor.user_id != user_id:
        allowed(actor, Action.MANAGE_USERS)
    with ctx.read() as connection:
        return _one_user(connection, user_id)


def find_user(ctx: Context, email: str, *, actor: Principal) -> UserPublic:
    allowed(actor, Action.MANAGE_USERS)
    with ctx.read() as connection:
        found = _user_rows(connection, users.c.email == email.strip().lower())
    if not found:
        raise NotFound(f"no user has the email {email}")
    return found[0]


def update_user(ctx: Context, user_id: int, data: UserUpdate, *, actor: Principal) -> UserPublic:
    """Change a user's name, role, links, time zone or active flag; disabling ends
    their sessions at once and their tokens within the token cache time."""
    allowed(actor, Action.MANAGE_USERS)
    now = ctx.clock.now()
    with ctx.write() as connection:
        row = connection.execute(select(users).where(users.c.id == user_id).with_for_update())
        current = row.mappings().first()
        if current is None:
            raise NotFound(f"user {user_id} does not exist")
        if actor.user_id == user_id and (data.active is False or data.role not in (None, "admin")):
            raise Conflict("you cannot disable yourself or take away your own admin role")
        role = data.role or Role(current["role"])
        values: dict[str, Any] = {"updated_at": now}
        touched = data.model_fields_set
        rep_email = data.rep_email
        if "rep_email" not in touched and role is Role.REP and current["rep_id"] is not None:
            rep_email = connection.execute(
                select(reps.c.email).where(reps.c.id == current["rep_id"])
            ).scalar()
        team_names = data.teams
        if team_names is None:
            team_names = (
                []
                if role is not Role.SALES_MANAGER
                else [
                    str(n)
                    for n in connection.execute(
                        select(teams.c.name)
                        .join(user_teams, user_teams.c.team_id == teams.c.id)
                        .where(user_teams.c.user_id == user_id)
                    ).scalars()
                ]
            )
        rep_id, team_ids = _links(connection, role, rep_email, team_names)
        values.update(role=role.value, rep_id=rep_id)
        for name in ("display_name", "timezone", "active"):
            if name in touched and getattr(data, name) is not None:
                values[name] = getattr(data, name)
        try:
            with connection.begin_nested():
                connection.execute(update(users).where(users.c.id == user_id).values(**values))
        except IntegrityError:
            raise Conflict(f"another user is already the rep {rep_email}") from None
        _set_teams(connection, user_id, team_ids)
        if values.get("active") is False:
            _end_sessions(connection, user_id, now)
        user = _one_user(connection, user_id)
    _cache(ctx).forget_user(user_id)
    log.info("user %s changed by %s", user.email, actor.name)
    return user


def disable_user(ctx: Context, user_id: int, *, actor: Principal) -> UserPublic:
    """Disable a user: their sessions end now, their tokens stop within seconds."""
    return update_user(ctx, user_id, UserUpdate(active=False), actor=actor)


def reset_password(ctx: Context, user_id: int, *, actor: Principal) -> str:
    """Give a user a new one-time password (returned once) and end their sessions.

    From the API or the web pages, the last active admin with a password of their own
    keeps it (409): with only one-time passwords left, production refuses its next
    start (:func:`production_problems`) and nobody signed in could undo it. The shell
    operator may (`baton user reset-password` says what it costs, and `baton user
    set-password` mends it)."""
    allowed(actor, Action.MANAGE_USERS)
    secret = one_time_password()
    hashed = _hasher.hash(secret)
    now = ctx.clock.now()
    with ctx.write() as connection:
        if not actor.trusted:
            _keep_last_own_admin_password(connection, user_id, actor)
        _replace_password(
            connection, user_id, hashed, one_time=True, now=now, expires=_one_time_expiry(ctx, now)
        )
    log.info("password of user %s reset by %s", user_id, actor.name)
    return secret


LAST_SELF_CHOSEN_ADMIN = (
    "{who} the last admin with a password of {whose} own; set another admin's first or "
    "use `baton user set-password`"
)


def _keep_last_own_admin_password(connection: Connection, user_id: int, actor: Principal) -> None:
    """Refuse (409) to replace the password of the only active admin who chose their
    own: the next production start would refuse to serve (a lock-out)."""
    target = connection.execute(
        select(users.c.role, users.c.active, users.c.one_time_password)
        .where(users.c.id == user_id)
        .with_for_update()
    ).first()
    if target is None or target.role != "admin" or not target.active or target.one_time_password:
        return
    others = connection.execute(
        select(func.count()).where(
            users.c.role == "admin",
            users.c.active.is_(True),
            users.c.one_time_password.is_(False),
            users.c.id != user_id,
        )
    ).scalar_one()
    if not others:
        own = actor.user_id == user_id
        raise Conflict(
            LAST_SELF_CHOSEN_ADMIN.format(
                who="you are" if own else "this user is", whose="your" if own else "their"
            )
        )


def set_password(ctx: Context, user_id: int, data: PasswordSet, *, actor: Principal) -> None:
    """Set a user's own password without a running server (the local operator's way
    to finish a production set-up, or to let an admin back in): it is theirs, not a
    one-time one, and every session of theirs ends."""
    allowed(actor, Action.MANAGE_USERS)
    hashed = _hasher.hash(data.password)
    now = ctx.clock.now()
    with ctx.write() as connection:
        _replace_password(connection, user_id, hashed, one_time=False, now=now, expires=None)
    log.info("password of user %s set by %s", user_id, actor.name)


def _one_time_expiry(ctx: Context, now: datetime) -> datetime:
    """When a one-time password made ``now`` stops working: it travels by chat or on
    paper, so one never used must not stay a working credential for good."""
    return now + timedelta(days=ctx.settings.one_time_password_days)


def _replace_password(
    connection: Connection,
    user_id: int,
    hashed: str,
    *,
    one_time: bool,
    now: datetime,
    expires: datetime | None,
) -> None:
    """Store a user's new password hash (a one-time one until ``expires``, or their
    own) and end every session of theirs; NotFound for no such user."""
    done = connection.execute(
        update(users)
        .where(users.c.id == user_id)
        .values(
            password_hash=hashed,
            one_time_password=one_time,
            one_time_password_expires_at=expires if one_time else None,
            updated_at=now,
        )
    ).rowcount
    if not done:
        raise NotFound(f"user {user_id} does not exist")
    _end_sessions(connection, user_id, now)
    # A new password is a fresh start: sign-ins refused for the old one (an expired
    # one-time password typed again and again) must not hold the new one back.
    email = connection.execute(select(users.c.email).where(users.c.id == user_id)).scalar_one()
    connection.execute(delete(login_failures).where(login_failures.c.account == email))


def change_password(
    ctx: Context, data: PasswordChange, *, actor: Principal, keep_session: str | None = None
) -> None:
    """A signed-in person sets their own password (this clears a one-time one). Every
    other session of theirs ends (someone who took one is out); ``keep_session`` is
    the key of the session making the change."""
    if actor.user_id is None or actor.kind != "user":
        raise Forbidden("only a signed-in person changes their own password")
    with ctx.read() as connection:
        found = connection.execute(
            select(
                users.c.password_hash,
                users.c.one_time_password,
                users.c.one_time_password_expires_at,
            ).where(users.c.id == actor.user_id)
        ).first()
    stored = None if found is None else found.password_hash
    if not _verify(stored, data.current_password):
        raise ValidationFailed(
            "the password was not changed",
            [FieldProblem("current_password", "this is not your current password")],
        )
    assert found is not None
    if (
        found.one_time_password
        and found.one_time_password_expires_at is not None
        and ctx.clock.now() >= ensure_utc(found.one_time_password_expires_at)
    ):
        raise Unauthorized(ONE_TIME_EXPIRED)
    if data.new_password == data.current_password:
        raise ValidationFailed(
            "the password was not changed",
            [FieldProblem("new_password", "choose a password different from the current one")],
        )
    hashed = _hasher.hash(data.new_password)
    with ctx.write() as connection:
        connection.execute(
            update(users)
            .where(users.c.id == actor.user_id)
            .values(
                password_hash=hashed,
                one_time_password=False,
                one_time_password_expires_at=None,
                updated_at=ctx.clock.now(),
            )
        )
        others = sessions.c.key_hash != digest(keep_session) if keep_session is not None else true()
        connection.execute(
            update(sessions)
            .where(sessions.c.user_id == actor.user_id, sessions.c.ended_at.is_(None), others)
            .values(ended_at=ctx.clock.now())
        )
    log.info("user %s changed their password", actor.name)


def _verify(stored: str | None, password: str) -> bool:
    dummy = _dummy_hash()  # made before either branch: the first sign-in pays it either way
    try:
        return _hasher.verify(stored or dummy, password) and stored is not None
    except (VerificationError, InvalidHashError):
        return False


# ---------------------------------------------------------------- principals


def _principal(connection: Connection, user: RowMapping) -> Principal:
    team_ids = frozenset(
        int(t)
        for t in connection.execute(
            select(user_teams.c.team_id).where(user_teams.c.user_id == user["id"])
        ).scalars()
    )
    return Principal(
        kind="user",
        name=user["email"],
        role=Role(user["role"]),
        user_id=int(user["id"]),
        email=user["email"],
        rep_id=None if user["rep_id"] is None else int(user["rep_id"]),
        team_ids=team_ids,
    )


# ---------------------------------------------------------------- sessions


@dataclass(frozen=True)
class SessionStart:
    """What a successful sign-in gives: the cookie's key (to sign), the CSRF token the
    page must echo on every change, and who signed in."""

    key: str
    csrf_token: str
    expires_at: datetime
    user: UserPublic


def _failures(
    connection: Connection, column: Any, value: str, since: datetime, besides: int
) -> list[datetime]:
    """Attempts (failed or in flight) for ``value`` since ``since``, oldest first, other
    than the attempt ``besides``."""
    return list(
        connection.execute(
            select(login_failures.c.failed_at)
            .where(
                column == value,
                login_failures.c.failed_at > since,
                login_failures.c.id != besides,
            )
            .order_by(login_failures.c.failed_at)
        ).scalars()
    )


def login(ctx: Context, email: str, password: str, *, address: str) -> SessionStart:
    """Check a person's email and password and open a session.

    Throttled per account and per address, counted in the database so every process
    shares the counts. Each attempt is written *before* the password is checked, so a
    burst of parallel guesses sees itself and cannot slip past the limit; an attempt
    refused by the throttle is removed again (waiting it out is enough), and a
    successful one clears the account's failures. A wrong email and a wrong password
    give the same answer and cost the same time."""
    settings = ctx.settings
    account = email.strip().lower()[:254]
    address = address[:64]
    now = ctx.clock.now()
    window = timedelta(minutes=settings.login_window_minutes)
    with ctx.write() as connection:
        attempt = inserted_id(
            connection.execute(
                insert(login_failures).values(account=account, address=address, failed_at=now)
            )
        )
        connection.execute(
            delete(login_failures).where(login_failures.c.failed_at < now - 4 * window)
        )
    wait: float | None = None
    with ctx.read() as connection:
        user = connection.execute(select(users).where(users.c.email == account)).mappings().first()
        for column, value, limit in (
            (login_failures.c.account, account, settings.login_max_failures_per_account),
            (login_failures.c.address, address, settings.login_max_failures_per_address),
        ):
            failed = _failures(connection, column, value, now - window, attempt)
            if len(failed) >= limit:
                wait = max(wait or 0.0, (failed[-limit] + window - now).total_seconds())
    who = repr(account) if user is not None else f"an unknown account #{digest(account)[:12]}"
    if wait is not None:
        with ctx.write() as connection:
            connection.execute(delete(login_failures).where(login_failures.c.id == attempt))
        log.warning("sign-in throttled for %s from %r", who, address)
        raise TooManyRequests("too many failed sign-ins; wait before trying again", int(wait) + 1)
    ok = _verify(None if user is None else user["password_hash"], password)
    if not ok or user is None or not user["active"]:
        log.warning("sign-in failed for %s from %r", who, address)
        raise Unauthorized(WRONG_CREDENTIALS)
    one_time_expires = (
        ensure_utc(user["one_time_password_expires_at"])
        if user["one_time_password"] and user["one_time_password_expires_at"] is not None
        else None
    )
    if one_time_expires is not None and now >= one_time_expires:
        # Said only to whoever knows the password: it is theirs, and it is the one thing
        # they can do nothing about but ask.
        log.warning("sign-in refused for %s from %r: one-time password expired", who, address)
        raise Unauthorized(ONE_TIME_EXPIRED)
    key = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    expires = now + timedelta(hours=settings.session_hours)
    if one_time_expires is not None:
        # The session of a one-time password may only set the user's own password: it
        # ends with the password, or it would trade an expired one for a new one.
        expires = min(expires, one_time_expires)
    with ctx.write() as connection:
        connection.execute(
            insert(sessions).values(
                key_hash=digest(key),
                user_id=user["id"],
                csrf_token=csrf,
                created_at=now,
                expires_at=expires,
                address=address,
            )
        )
        connection.execute(delete(login_failures).where(login_failures.c.account == account))
        public = _one_user(connection, int(user["id"]))
    log.info("signed in: %r from %r", account, address)
    return SessionStart(key=key, csrf_token=csrf, expires_at=expires, user=public)


def logout(ctx: Context, key: str) -> None:
    """End the session with this key (no error if it already ended)."""
    with ctx.write() as connection:
        connection.execute(
            update(sessions)
            .where(sessions.c.key_hash == digest(key), sessions.c.ended_at.is_(None))
            .values(ended_at=ctx.clock.now())
        )


def _end_sessions(connection: Connection, user_id: int, now: datetime) -> None:
    connection.execute(
        update(sessions)
        .where(sessions.c.user_id == user_id, sessions.c.ended_at.is_(None))
        .values(ended_at=now)
    )


@dataclass(frozen=True)
class SessionPrincipal:
    principal: Principal
    csrf_token: str
    one_time_password: bool
    display_name: str = ""
    timezone: str = "UTC"
    """The person's own zone (IANA name): the web pages show times in it."""


def session_principal(ctx: Context, key: str) -> SessionPrincipal | None:
    """The person behind a session key, or None when it is unknown, ended, expired or
    its user is disabled (read at every request: logout takes effect at once)."""
    with ctx.read() as connection:
        row = (
            connection.execute(
                select(users, sessions.c.csrf_token)
                .join(sessions, sessions.c.user_id == users.c.id)
                .where(
                    sessions.c.key_hash == digest(key),
                    sessions.c.ended_at.is_(None),
                    sessions.c.expires_at > ctx.clock.now(),
                    users.c.active.is_(True),
                )
            )
            .mappings()
            .first()
        )
        if row is None:
            return None
        return SessionPrincipal(
            _principal(connection, row),
            row["csrf_token"],
            bool(row["one_time_password"]),
            display_name=row["display_name"] or row["email"],
            timezone=row["timezone"] or "UTC",
        )


# ---------------------------------------------------------------- tokens


@dataclass(frozen=True)
class TokenPublic:
    """An API token as its owner sees it; the secret itself is shown once only."""

    id: int
    name: str
    prefix: str
    user_email: str
    scopes: list[str]
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None
    created_at: datetime
    created_by: str


def _token_rows(connection: Connection, where: Any) -> list[TokenPublic]:
    rows = connection.execute(
        select(api_tokens, users.c.email.label("user_email"))
        .join(users, users.c.id == api_tokens.c.user_id)
        .where(where)
        .order_by(api_tokens.c.id)
    ).mappings()
    return [
        TokenPublic(
            id=int(r["id"]),
            name=r["name"],
            prefix=r["prefix"],
            user_email=r["user_email"],
            scopes=list(r["scopes"]),
            expires_at=r["expires_at"],
            last_used_at=r["last_used_at"],
            revoked_at=r["revoked_at"],
            created_at=r["created_at"],
            created_by=r["created_by"],
        )
        for r in rows
    ]


def create_token(ctx: Context, data: TokenCreate, *, actor: Principal) -> tuple[TokenPublic, str]:
    """Make an API token (returned once with its record). A person makes tokens for
    themselves; an admin also for another user (an integration's service user)."""
    level = allowed(actor, Action.OWN_TOKENS)
    now = ctx.clock.now()
    if data.expires_at is not None and data.expires_at <= now:
        raise ValidationFailed(
            "the token was not made", [FieldProblem("expires_at", "must be in the future")]
        )
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with ctx.write() as connection:
        if data.user_email is not None:
            owner = connection.execute(
                select(users.c.id, users.c.active).where(users.c.email == data.user_email)
            ).first()
            if owner is None:
                raise NotFound(f"no user has the email {data.user_email}")
            owner_id = int(owner[0])
            if owner_id != actor.user_id and level is not Reach.ALL:
                raise Forbidden("only an admin makes tokens for other users")
        elif actor.user_id is None:
            raise ValidationFailed(
                "the token was not made",
                [FieldProblem("user_email", "name the user the token acts as")],
            )
        else:
            owner_id = actor.user_id
        if actor.kind == "token" and owner_id != actor.user_id:
            raise Forbidden("a token cannot make tokens for other users")
        if actor.scopes is not None and ADMIN_SCOPE not in actor.scopes:
            wider = sorted(set(data.scopes) - actor.scopes)
            if wider:
                raise Forbidden(
                    f"a token cannot make a token with scopes it lacks ({', '.join(wider)})"
                )
        token_id = inserted_id(
            connection.execute(
                insert(api_tokens).values(
                    prefix=secret[:10],
                    token_hash=digest(secret),
                    user_id=owner_id,
                    name=data.name,
                    scopes=data.scopes,
                    expires_at=data.expires_at,
                    created_at=now,
                    created_by=actor.name,
                )
            )
        )
        token = _token_rows(connection, api_tokens.c.id == token_id)[0]
    log.info(
        "token %s (%s) made for %s by %s", token.prefix, token.name, token.user_email, actor.name
    )
    return token, secret


def list_tokens(ctx: Context, *, actor: Principal, all_users: bool = False) -> list[TokenPublic]:
    """The caller's own tokens; an admin may ask for everyone's."""
    level = allowed(actor, Action.OWN_TOKENS)
    with ctx.read() as connection:
        if all_users or actor.user_id is None:
            if level is not Reach.ALL:
                raise Forbidden("only an admin lists other users' tokens")
            return _token_rows(connection, api_tokens.c.id.is_not(None))
        return _token_rows(connection, api_tokens.c.user_id == actor.user_id)


def revoke_token(ctx: Context, token_id: int, *, actor: Principal) -> TokenPublic:
    """Revoke a token: refused in this process at once, in every process within the
    token cache time."""
    level = allowed(actor, Action.OWN_TOKENS)
    with ctx.write() as connection:
        row = connection.execute(
            select(api_tokens.c.user_id, api_tokens.c.token_hash).where(api_tokens.c.id == token_id)
        ).first()
        if row is None or (level is not Reach.ALL and row[0] != actor.user_id):
            raise NotFound(f"token {token_id} does not exist")
        connection.execute(
            update(api_tokens)
            .where(api_tokens.c.id == token_id, api_tokens.c.revoked_at.is_(None))
            .values(revoked_at=ctx.clock.now())
        )
        token = _token_rows(connection, api_tokens.c.id == token_id)[0]
    _cache(ctx).forget(str(row[1]))
    log.info("token %s revoked by %s", token.prefix, actor.name)
    return token


class CredentialCache:
    """Verified tokens and intake keys for a few seconds, keyed by their digest; time
    comes from the context's clock, so tests can pass it."""

    def __init__(self, clock: Clock, seconds: float) -> None:
        self.clock = clock
        self.seconds = timedelta(seconds=seconds)
        self._entries: dict[str, tuple[datetime, Principal, datetime | None]] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> tuple[Principal, datetime | None] | None:
        entry = self._entries.get(key)
        if entry is None or entry[0] <= self.clock.now():
            return None
        return entry[1], entry[2]

    def put(self, key: str, principal: Principal, expires_at: datetime | None) -> None:
        if not self.seconds:
            return
        with self._lock:
            if len(self._entries) > 10_000:
                self._entries.clear()
            self._entries[key] = (self.clock.now() + self.seconds, principal, expires_at)

    def forget(self, key: str) -> None:
        with self._lock:
            self._entries.pop(key, None)

    def forget_user(self, user_id: int) -> None:
        """Drop every cached token of a user whose role, links or state changed."""
        with self._lock:
            for key in [k for k, v in self._entries.items() if v[1].user_id == user_id]:
                del self._entries[key]


def _cache(ctx: Context) -> CredentialCache:
    cache = ctx.caches.get("credentials")
    if not isinstance(cache, CredentialCache):
        cache = ctx.caches.setdefault(
            "credentials", CredentialCache(ctx.clock, ctx.settings.token_cache_seconds)
        )
    return cache


def cached_principal(ctx: Context, credential: str) -> Principal | None:
    """The principal of a token or intake key verified in the last few seconds, from
    memory only (no database, safe on an event loop); None when it must be looked up."""
    cached = _cache(ctx).get(digest(credential))
    if cached is None:
        return None
    principal, expires = cached
    return principal if expires is None or expires > ctx.clock.now() else None


def token_principal(ctx: Context, token: str) -> Principal | None:
    """The principal behind an API token, or None when it is unknown, revoked, expired
    or its owner is disabled."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    key = digest(token)
    now = ctx.clock.now()
    cache = _cache(ctx)
    if cache.get(key) is not None:
        return cached_principal(ctx, token)
    with ctx.read() as connection:
        row = (
            connection.execute(
                select(
                    users,
                    api_tokens.c.id.label("token_id"),
                    api_tokens.c.name.label("token_name"),
                    api_tokens.c.scopes,
                    api_tokens.c.expires_at,
                    api_tokens.c.last_used_at,
                )
                .join(api_tokens, api_tokens.c.user_id == users.c.id)
                .where(
                    api_tokens.c.token_hash == key,
                    api_tokens.c.revoked_at.is_(None),
                    users.c.active.is_(True),
                )
            )
            .mappings()
            .first()
        )
        if row is None or (row["expires_at"] is not None and row["expires_at"] <= now):
            return None
        person = _principal(connection, row)
    principal = replace(
        person,
        kind="token",
        name=f"{person.email} (token {row['token_name']})"[:200],
        scopes=frozenset(row["scopes"]),
        key_id=int(row["token_id"]),
    )
    cache.put(key, principal, row["expires_at"])
    if row["last_used_at"] is None or row["last_used_at"] < now - timedelta(minutes=1):
        with ctx.write() as connection:
            connection.execute(
                update(api_tokens)
                .where(api_tokens.c.id == row["token_id"])
                .values(last_used_at=now)
            )
    return principal


# ---------------------------------------------------------------- intake keys


@dataclass(frozen=True)
class IntakeKeyPublic:
    id: int
    name: str
    prefix: str
    source: str
    origins: list[str]
    rate_per_minute: int
    revoked_at: datetime | None
    created_at: datetime
    created_by: str


def _key_rows(connection: Connection, where: Any) -> list[IntakeKeyPublic]:
    return [
        IntakeKeyPublic(
            id=int(r["id"]),
            name=r["name"],
            prefix=r["prefix"],
            source=r["source"],
            origins=list(r["origins"]),
            rate_per_minute=int(r["rate_per_minute"]),
            revoked_at=r["revoked_at"],
            created_at=r["created_at"],
            created_by=r["created_by"],
        )
        for r in connection.execute(
            select(intake_keys).where(where).order_by(intake_keys.c.id)
        ).mappings()
    ]


def add_intake_key(
    ctx: Context, data: IntakeKeyCreate, *, actor: Principal
) -> tuple[IntakeKeyPublic, str]:
    """Make an intake key for a website or form tool (the key is returned once)."""
    allowed(actor, Action.MANAGE_USERS)
    secret = INTAKE_PREFIX + secrets.token_urlsafe(32)
    with ctx.write() as connection:
        try:
            with connection.begin_nested():
                key_id = inserted_id(
                    connection.execute(
                        insert(intake_keys).values(
                            prefix=secret[:11],
                            key_hash=digest(secret),
                            name=data.name,
                            source=data.source,
                            origins=data.origins,
                            rate_per_minute=data.rate_per_minute,
                            created_at=ctx.clock.now(),
                            created_by=actor.name,
                        )
                    )
                )
        except IntegrityError:
            raise Conflict(f"an intake key named '{data.name}' exists") from None
        key = _key_rows(connection, intake_keys.c.id == key_id)[0]
    _origins_changed(ctx)
    log.info("intake key %s (%s) made by %s", key.prefix, key.name, actor.name)
    return key, secret


def list_intake_keys(ctx: Context, *, actor: Principal) -> list[IntakeKeyPublic]:
    allowed(actor, Action.MANAGE_USERS)
    with ctx.read() as connection:
        return _key_rows(connection, intake_keys.c.id.is_not(None))


def revoke_intake_key(ctx: Context, key_id: int, *, actor: Principal) -> IntakeKeyPublic:
    allowed(actor, Action.MANAGE_USERS)
    with ctx.write() as connection:
        hashed = connection.execute(
            select(intake_keys.c.key_hash).where(intake_keys.c.id == key_id)
        ).scalar()
        if hashed is None:
            raise NotFound(f"intake key {key_id} does not exist")
        connection.execute(
            update(intake_keys)
            .where(intake_keys.c.id == key_id, intake_keys.c.revoked_at.is_(None))
            .values(revoked_at=ctx.clock.now())
        )
        key = _key_rows(connection, intake_keys.c.id == key_id)[0]
    _cache(ctx).forget(str(hashed))
    _origins_changed(ctx)
    log.info("intake key %s (%s) revoked by %s", key.prefix, key.name, actor.name)
    return key


def update_intake_key(
    ctx: Context, key_id: int, data: IntakeKeyUpdate, *, actor: Principal
) -> IntakeKeyPublic:
    """Change an active key's rate or origins (404 for no such key, 409 for a revoked
    one). This process applies them from its next request, every other within the
    token cache time, as a revocation. A new rate starts a fresh one-minute window
    (the limiter keeps one per key and rate): requests made before the change do not
    count against the new rate, so a lower rate bounds the key from the change on."""
    allowed(actor, Action.MANAGE_USERS)
    changes: dict[str, Any] = {}
    if data.rate_per_minute is not None:
        changes["rate_per_minute"] = data.rate_per_minute
    if data.origins is not None:
        changes["origins"] = list(dict.fromkeys(data.origins))
    with ctx.write() as connection:
        before = (
            connection.execute(
                select(
                    intake_keys.c.key_hash,
                    intake_keys.c.revoked_at,
                    intake_keys.c.rate_per_minute,
                    intake_keys.c.origins,
                )
                .where(intake_keys.c.id == key_id)
                .with_for_update()
            )
            .mappings()
            .first()
        )
        if before is None:
            raise NotFound(f"intake key {key_id} does not exist")
        if before["revoked_at"] is not None:
            raise Conflict(f"intake key {key_id} is revoked; make a new key")
        if changes:
            connection.execute(
                update(intake_keys).where(intake_keys.c.id == key_id).values(**changes)
            )
        key = _key_rows(connection, intake_keys.c.id == key_id)[0]
    if not changes:
        return key
    _cache(ctx).forget(str(before["key_hash"]))
    _origins_changed(ctx)
    log.info(
        "intake key %s (%s) changed by %s: rate %s -> %s/min, origins %s -> %s",
        key.prefix,
        key.name,
        actor.name,
        before["rate_per_minute"],
        key.rate_per_minute,
        list(before["origins"]),
        key.origins,
    )
    return key


def intake_principal(ctx: Context, key: str) -> Principal | None:
    """The intake key's principal (its source and allowed origins in ``extra``)."""
    if not key.startswith(INTAKE_PREFIX) or len(key) > 200:
        return None
    hashed = digest(key)
    cache = _cache(ctx)
    if cache.get(hashed) is not None:
        return cached_principal(ctx, key)
    with ctx.read() as connection:
        row = (
            connection.execute(
                select(intake_keys).where(
                    intake_keys.c.key_hash == hashed, intake_keys.c.revoked_at.is_(None)
                )
            )
            .mappings()
            .first()
        )
    if row is None:
        return None
    principal = Principal(
        kind="intake_key",
        name=f"intake:{row['name']}",
        source=row["source"],
        key_id=int(row["id"]),
        extra={
            "origins": " ".join(row["origins"]),
            "rate_per_minute": str(row["rate_per_minute"]),
        },
    )
    cache.put(hashed, principal, None)
    return principal


ORIGINS_CHANGED = "intake_origins_changed"
"""The context cache counting changes to intake keys made in this process, so the CORS
preflight answers read the origins again at once (other processes within
``BATON_TOKEN_CACHE_SECONDS``)."""


def _origins_changed(ctx: Context) -> None:
    ctx.caches[ORIGINS_CHANGED] = ctx.caches.get(ORIGINS_CHANGED, 0) + 1


def origins_version(ctx: Context) -> int:
    """How many intake-key changes this process has made (see :data:`ORIGINS_CHANGED`)."""
    return int(ctx.caches.get(ORIGINS_CHANGED, 0))


def intake_origins(ctx: Context) -> frozenset[str]:
    """Every origin any active intake key allows (for answering CORS preflights, which
    carry no key)."""
    with ctx.read() as connection:
        return frozenset(
            o
            for origins in connection.execute(
                select(intake_keys.c.origins).where(intake_keys.c.revoked_at.is_(None))
            ).scalars()
            for o in origins
        )


# ---------------------------------------------------------------- start-up checks


def production_problems(ctx: Context) -> list[str]:
    """Why this database may not serve production yet (empty when it may): no active
    admin, demo users, or no active admin who chose their own password (a fresh
    `baton init`: `baton user set-password` finishes it from the shell).

    A colleague's unused one-time password is never a reason: a restart (a deploy, a
    crash, a reboot) must not take Baton and its SLA timers down because someone
    added last week has not signed in yet (see :func:`pending_one_time_passwords`)."""
    problems: list[str] = []
    with ctx.read() as connection:
        admins = _active_admins(connection)
        own = connection.execute(
            select(func.count()).where(
                users.c.role == "admin",
                users.c.active.is_(True),
                users.c.one_time_password.is_(False),
            )
        ).scalar_one()
        demo = connection.execute(
            select(func.count()).where(users.c.demo.is_(True), users.c.active.is_(True))
        ).scalar_one()
    if not admins:
        problems.append("there is no active admin user (run `baton init`)")
    elif not own:
        # Their real emails: the operator reading this at the server's terminal copies
        # the command as is (the refusal never reaches an anonymous caller).
        with ctx.read() as connection:
            emails = list(
                connection.execute(
                    select(users.c.email)
                    .where(users.c.role == "admin", users.c.active.is_(True))
                    .order_by(users.c.id)
                    .limit(3)
                ).scalars()
            )
        commands = " or ".join(f"`baton user set-password {email}`" for email in emails)
        problems.append(
            "no active admin has chosen their own password yet; set one from the shell "
            f"with {commands}"
        )
    if demo:
        problems.append(f"{demo} demo user(s) exist (disable them with `baton user disable`)")
    return problems


def pending_one_time_passwords(ctx: Context) -> list[str]:
    """The active users whose one-time password is unused and still works, by email (a
    warning at start in production, never a refusal). An expired one is no credential
    any more, so it is left out."""
    expiry = users.c.one_time_password_expires_at
    with ctx.read() as connection:
        return sorted(
            connection.execute(
                select(users.c.email).where(
                    users.c.one_time_password.is_(True),
                    users.c.active.is_(True),
                    or_(expiry.is_(None), expiry > ctx.clock.now()),
                )
            ).scalars()
        )


def _active_admins(connection: Connection) -> int:
    return int(
        connection.execute(
            select(func.count()).where(users.c.role == "admin", users.c.active.is_(True))
        ).scalar_one()
    )


def has_admin(ctx: Context) -> bool:
    with ctx.read() as connection:
        return _active_admins(connection) > 0
