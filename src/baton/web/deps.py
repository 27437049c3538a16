"""Who is reading a page: the person behind the session cookie.

The pages share the API's session (the ``baton_session`` cookie set by ``/login`` or
``POST /auth/login``). No valid session: 303 to ``/login?next=…``; a one-time password
not yet replaced: 303 to ``/password``. Objects out of the reader's reach are the 404
page (the use cases raise :class:`~baton.domain.errors.NotFound`, as for a missing one).

Page routes take :data:`PageUser` (GET) or :data:`FormUser` (POST: also checks the
CSRF token, see :mod:`baton.web.forms`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated
from urllib.parse import quote

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from itsdangerous import BadSignature

from baton.api.deps import SESSION_COOKIE, get_context, session_signer
from baton.domain.access import Principal, Role
from baton.services import users as user_service
from baton.services.context import Context

PASSWORD_PAGE = "/password"  # noqa: S105  (a path)

HOMES: dict[Role, str] = {
    Role.REP: "/inbox",
    Role.SALES_MANAGER: "/team",
    Role.MARKETING: "/dashboard",
    Role.ADMIN: "/admin",
}
"""Each role's home page (``/`` sends there); a page not built yet falls back to
``/home``."""


class LoginRequired(Exception):
    """No valid session: the handler answers 303 to ``/login?next=<this page>``."""

    def __init__(self, next_url: str) -> None:
        super().__init__(next_url)
        self.next_url = next_url


class PasswordRequired(Exception):
    """A one-time password: the handler answers 303 to the password page."""


@dataclass(frozen=True)
class PageSession:
    """The reader of a page: their principal (what every use case takes), the CSRF
    token their forms carry, and how to greet them and show them times."""

    principal: Principal
    csrf_token: str
    display_name: str
    timezone: str
    one_time_password: bool = False

    @property
    def role(self) -> str:
        return self.principal.role.value if self.principal.role else ""


def session_key(ctx: Context, request: Request) -> str | None:
    """The session key in the request's cookie, if validly signed."""
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        return None
    try:
        return session_signer(ctx).unsign(cookie).decode()
    except (BadSignature, UnicodeDecodeError):
        return None


def read_session(ctx: Context, request: Request) -> PageSession | None:
    """The page session of this request, or None (no cookie, ended, expired)."""
    key = session_key(ctx, request)
    if key is None:
        return None
    found = user_service.session_principal(ctx, key)
    if found is None:
        return None
    return PageSession(
        principal=found.principal,
        csrf_token=found.csrf_token,
        display_name=found.display_name,
        timezone=found.timezone,
        one_time_password=found.one_time_password,
    )


def _here(request: Request) -> str:
    path = request.url.path
    if request.url.query and request.method == "GET":
        path += "?" + request.url.query
    return path


def login_url(next_url: str) -> str:
    return "/login?next=" + quote(next_url, safe="/")


async def any_session(request: Request) -> PageSession:
    """The reader, one-time password or not (the password page itself)."""
    ctx = get_context(request)
    page: PageSession | None = await run_in_threadpool(read_session, ctx, request)
    if page is None:
        raise LoginRequired(_here(request) if request.method == "GET" else "/")
    request.state.page_session = page
    return page


async def page_session(
    request: Request, page: Annotated[PageSession, Depends(any_session)]
) -> PageSession:
    """The reader of an ordinary page; a one-time password must be replaced first."""
    if page.one_time_password:
        raise PasswordRequired()
    return page


PageUser = Annotated[PageSession, Depends(page_session)]
"""For GET pages: ``def page(request: Request, user: PageUser) -> HTMLResponse``."""


def safe_next(value: str | None) -> str:
    """Where to go after signing in: a path on this site only (never ``//host``)."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    return value


AnyUser = Annotated[PageSession, Depends(any_session)]
"""The reader even before they replaced a one-time password (the password page)."""
