"""/auth: people sign in and out with a server-side session in a signed cookie.

The cookie is ``HttpOnly`` and ``SameSite=Lax`` (and ``Secure`` outside development);
every change made with it must echo the session's CSRF token in ``X-CSRF-Token``.
Programs use API tokens instead (``/api/v1/tokens``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request, Response, status
from itsdangerous import BadSignature
from pydantic import BaseModel, ConfigDict, Field

from baton.api.deps import (
    SESSION_COOKIE,
    Actor,
    Ctx,
    client_address,
    session_signer,
)
from baton.api.routes.users import UserPublicModel, user_model
from baton.domain.users import MAX_PASSWORD_LENGTH, PasswordChange
from baton.services import users as user_service
from baton.services.context import Context

router = APIRouter(prefix="/auth", tags=["auth"])

UNAUTHORIZED: dict[int | str, dict[str, Any]] = {
    401: {"description": "No valid session or token (problem+json, WWW-Authenticate)"}
}


class LoginCreate(BaseModel):
    """A person's email and password."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"email": "maria.lopez@example.com", "password": "a long passphrase"}]
        },
    )

    email: str = Field(min_length=1, max_length=254)
    password: str = Field(min_length=1, max_length=MAX_PASSWORD_LENGTH)


class SessionPublic(BaseModel):
    """Who is signed in, and the CSRF token every change made with the cookie echoes."""

    user: UserPublicModel | None
    kind: str
    role: str | None
    scopes: list[str] | None
    csrf_token: str | None = Field(None, description="Send as X-CSRF-Token on changes.")
    expires_at: datetime | None = None
    must_change_password: bool = False


@router.post(
    "/login",
    operation_id="login",
    response_model=SessionPublic,
    responses={
        401: {
            "description": "Wrong email or password (the same answer for both); or, to "
            "whoever typed it right, a one-time password that has expired"
        },
        429: {"description": "Too many failed sign-ins (Retry-After says how long to wait)"},
    },
)
def login(ctx: Ctx, request: Request, response: Response, body: LoginCreate) -> SessionPublic:
    """Sign in: sets the session cookie and returns the CSRF token. Failed attempts are
    throttled per account and per address."""
    started = user_service.login(ctx, body.email, body.password, address=client_address(request))
    set_session_cookie(ctx, response, started)
    return SessionPublic(
        user=user_model(started.user),
        kind="user",
        role=started.user.role,
        scopes=None,
        csrf_token=started.csrf_token,
        expires_at=started.expires_at,
        must_change_password=started.user.one_time_password,
    )


def set_session_cookie(
    ctx: Context, response: Response, started: user_service.SessionStart
) -> None:
    """The session cookie of a sign-in (the API's and the web app's): signed,
    ``HttpOnly``, ``SameSite=Lax``, ``Secure`` outside development."""
    response.set_cookie(
        SESSION_COOKIE,
        session_signer(ctx).sign(started.key).decode(),
        max_age=int(ctx.settings.session_hours * 3600),
        httponly=True,
        samesite="lax",
        secure=ctx.settings.env != "development",
        path="/",
    )


def _session_key(ctx: Context, request: Request) -> str | None:
    """The session key in the request's cookie, if it carries a validly signed one."""
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        return None
    try:
        return session_signer(ctx).unsign(cookie).decode()
    except (BadSignature, UnicodeDecodeError):
        return None


@router.post("/logout", operation_id="logout", status_code=status.HTTP_204_NO_CONTENT)
def logout(ctx: Ctx, request: Request) -> Response:
    """End this session at once (on every process) and clear the cookie."""
    key = _session_key(ctx, request)
    if key is not None:
        user_service.logout(ctx, key)
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax")
    return response


@router.get("/me", operation_id="whoami", response_model=SessionPublic, responses=UNAUTHORIZED)
def whoami(ctx: Ctx, request: Request, actor: Actor) -> SessionPublic:
    """Who the caller is: the person (and their CSRF token) or the token's scopes."""
    user = (
        user_model(user_service.get_user(ctx, actor.user_id, actor=actor))
        if actor.user_id is not None
        else None
    )
    csrf: str | None = None
    must_change = False
    key = _session_key(ctx, request) if actor.kind == "user" else None
    if key is not None:
        session = user_service.session_principal(ctx, key)
        if session is not None:
            csrf, must_change = session.csrf_token, session.one_time_password
    return SessionPublic(
        user=user,
        kind=actor.kind,
        role=actor.role.value if actor.role else None,
        scopes=sorted(actor.scopes) if actor.scopes is not None else None,
        csrf_token=csrf,
        must_change_password=must_change,
    )


@router.post(
    "/password",
    operation_id="change_password",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={**UNAUTHORIZED, 422: {"description": "Wrong current or weak new password"}},
)
def change_password(ctx: Ctx, request: Request, actor: Actor, body: PasswordChange) -> Response:
    """Set your own password (this is how a one-time password is replaced). Your other
    sessions end; this one goes on."""
    keep = _session_key(ctx, request) if actor.kind == "user" else None
    user_service.change_password(ctx, body, actor=actor, keep_session=keep)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
