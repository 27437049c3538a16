"""Sign in, sign out, and choose your own password.

The same use cases as ``/auth`` (:func:`baton.services.users.login`, its throttle, the
same session cookie): a person signed in here is signed in to the API, and back.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError

from baton.api.deps import SESSION_COOKIE, Ctx, client_address
from baton.api.routes.auth import set_session_cookie
from baton.domain.errors import TooManyRequests, Unauthorized, ValidationFailed
from baton.domain.users import PasswordChange
from baton.services import users as user_service
from baton.web.deps import PASSWORD_PAGE, AnyUser, read_session, safe_next, session_key
from baton.web.forms import (
    LOGIN_CSRF_COOKIE,
    AnyFormUser,
    check_login_token,
    new_login_token,
    set_login_token,
)
from baton.web.render import redirect, render

router = APIRouter(include_in_schema=False)


def _login_page(
    request: Request,
    ctx: Ctx,
    *,
    next_url: str,
    email: str = "",
    error: str | None = None,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    token = new_login_token(request)
    response = render(
        request,
        "auth/login.html",
        {"login_token": token, "next_url": next_url, "email": email, "error": error},
        status=status,
        headers=headers,
    )
    set_login_token(response, token, secure=request.url.scheme == "https")
    return response


@router.get("/login", response_model=None)
def login_form(request: Request, ctx: Ctx, next: str | None = None) -> Response:
    """The sign-in form (already signed in: straight on)."""
    if read_session(ctx, request) is not None:
        return redirect(request, safe_next(next))
    return _login_page(request, ctx, next_url=safe_next(next))


@router.post("/login", response_model=None)
async def login_submit(
    request: Request,
    ctx: Ctx,
    email: Annotated[str, Form(max_length=254)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/",
) -> Response:
    await check_login_token(request)
    return await _login(request, ctx, email, password, safe_next(next))


async def _login(request: Request, ctx: Ctx, email: str, password: str, next_url: str) -> Response:
    from fastapi.concurrency import run_in_threadpool

    if not email.strip() or not password:
        return _login_page(
            request, ctx, next_url=next_url, email=email,
            error="Enter your email and your password.", status=400,
        )  # fmt: skip
    try:
        started = await run_in_threadpool(
            user_service.login, ctx, email, password, address=client_address(request)
        )
    except Unauthorized as exc:
        expired = exc.detail == user_service.ONE_TIME_EXPIRED
        return _login_page(
            request, ctx, next_url=next_url, email=email,
            error="This one-time password has expired: ask an admin for a new one."
            if expired else "That email and password do not match an account.",
            status=400,
        )  # fmt: skip
    except TooManyRequests as exc:
        return _login_page(
            request, ctx, next_url=next_url, email=email,
            error=f"Too many failed sign-ins: wait {exc.retry_after} s and try again.",
            status=429, headers={"Retry-After": str(exc.retry_after)},
        )  # fmt: skip
    target = PASSWORD_PAGE if started.user.one_time_password else next_url
    response = redirect(request, target)
    set_session_cookie(ctx, response, started)
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return response


@router.post("/logout", response_model=None)
def logout(request: Request, ctx: Ctx, user: AnyFormUser) -> Response:
    """End this session (the API's too: it is the same one) and go to the sign-in page."""
    key = session_key(ctx, request)
    if key is not None:
        user_service.logout(ctx, key)
    response = redirect(request, "/login", "You are signed out.", "info")
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax")
    return response


@router.get(PASSWORD_PAGE, response_model=None)
def password_form(request: Request, user: AnyUser) -> HTMLResponse:
    return render(request, "auth/password.html", {"errors": {}, "forced": user.one_time_password})


@router.post(PASSWORD_PAGE, response_model=None)
def password_submit(
    request: Request,
    ctx: Ctx,
    user: AnyFormUser,
    current_password: Annotated[str, Form(max_length=1024)] = "",
    new_password: Annotated[str, Form(max_length=1024)] = "",
    confirm_password: Annotated[str, Form(max_length=1024)] = "",
) -> Response:
    errors: dict[str, str] = {}
    if new_password != confirm_password:
        errors["confirm_password"] = "The two new passwords differ."  # noqa: S105
    else:
        try:
            change = PasswordChange(current_password=current_password, new_password=new_password)
            user_service.change_password(
                ctx, change, actor=user.principal, keep_session=session_key(ctx, request)
            )
        except ValidationError as exc:
            for problem in exc.errors():
                field = str(problem["loc"][0]) if problem["loc"] else "new_password"
                errors[field] = str(problem["msg"]).removeprefix("Value error, ")
        except ValidationFailed as exc:
            errors.update({p.loc: p.message for p in exc.problems})
    if errors:
        return render(
            request,
            "auth/password.html",
            {"errors": errors, "forced": user.one_time_password},
            status=400,
        )
    return redirect(request, "/", "Your password is changed.")
