"""CSRF for the pages' forms.

Every form that POSTs carries a hidden ``csrf_token`` field (``{{ csrf_field() }}`` in
a template) holding the session's CSRF token, the same one the API wants in
``X-CSRF-Token``; our JavaScript may send the header instead. A POST without it, or
with another, is refused with the 403 page. Sign-in happens before there is a
session: its form carries a token from a short-lived signed cookie of its own
(double submit).

POST page routes take :data:`FormUser`, which is :data:`~baton.web.deps.PageUser`
plus this check.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Annotated

from fastapi import Depends, Request, Response

from baton.api.deps import CSRF_HEADER
from baton.domain.errors import Forbidden
from baton.web.deps import PageSession, any_session, page_session

CSRF_FIELD = "csrf_token"
LOGIN_CSRF_COOKIE = "baton_login_csrf"
REFUSED_FORM = "this form has expired or did not come from Baton; reload the page and try again"


async def submitted_token(request: Request) -> str:
    """The token a POST carries: the form field, else the header."""
    header = request.headers.get(CSRF_HEADER)
    if header:
        return header
    content_type = request.headers.get("content-type", "")
    if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        form = await request.form()  # parsed once: FastAPI's Form() fields reuse it
        value = form.get(CSRF_FIELD)
        return value if isinstance(value, str) else ""
    return ""


def same(given: str, expected: str) -> bool:
    return bool(given) and hmac.compare_digest(given.encode(), expected.encode())


async def check_csrf(request: Request, page: PageSession) -> None:
    if not same(await submitted_token(request), page.csrf_token):
        raise Forbidden(REFUSED_FORM)


async def form_session(
    request: Request, page: Annotated[PageSession, Depends(page_session)]
) -> PageSession:
    await check_csrf(request, page)
    return page


async def password_form_session(
    request: Request, page: Annotated[PageSession, Depends(any_session)]
) -> PageSession:
    await check_csrf(request, page)
    return page


FormUser = Annotated[PageSession, Depends(form_session)]
"""For POST pages: the reader, after their form's CSRF token was checked."""

AnyFormUser = Annotated[PageSession, Depends(password_form_session)]


def new_login_token(request: Request) -> str:
    """The sign-in form's token: the one in the cookie, or a new one."""
    current = request.cookies.get(LOGIN_CSRF_COOKIE)
    return current if current and len(current) == 43 else secrets.token_urlsafe(32)


def set_login_token(response: Response, token: str, *, secure: bool) -> None:
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        token,
        max_age=2 * 3600,
        httponly=True,
        samesite="strict",
        secure=secure,
        path="/login",
    )


async def check_login_token(request: Request) -> None:
    expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not same(await submitted_token(request), expected):
        raise Forbidden(REFUSED_FORM)
