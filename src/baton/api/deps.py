"""Request dependencies: the service context and the authenticated principal.

Routes only authenticate; what a principal may do is decided by the use cases (see
:mod:`baton.domain.access`). Three ways in:

* ``Authorization: Bearer bt_…``: an API token (programs);
* ``Authorization: Bearer bik_…`` or ``X-Baton-Intake-Key: bik_…``: an intake key
  (websites and form tools; only lead and activity capture, from its listed origins,
  rate-limited per key); that header carries nothing else, and one request carries
  one credential;
* the ``baton_session`` cookie set by ``POST /auth/login`` (people); every request
  that changes something must then echo the session's CSRF token in ``X-CSRF-Token``.
"""

from __future__ import annotations

import hmac
import ipaddress
import time
from typing import Annotated

from fastapi import Depends, Path, Request
from fastapi.concurrency import run_in_threadpool
from itsdangerous import BadSignature, Signer

from baton.domain.access import Principal
from baton.domain.activities import MAX_ID
from baton.domain.errors import Forbidden, TooManyRequests, Unauthorized
from baton.domain.rate import MovingWindow
from baton.services import users as user_service
from baton.services.context import Context

SESSION_COOKIE = "baton_session"
CSRF_HEADER = "X-CSRF-Token"
INTAKE_HEADER = "X-Baton-Intake-Key"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
PASSWORD_PATHS = frozenset({"/auth/me", "/auth/password", "/auth/logout"})
"""All a person with a one-time password may do until they choose their own."""

INTAKE_RATES = "intake_rates"
"""The context cache holding each intake key's requests of the last minute (per
process and database, like the key cache)."""


def get_context(request: Request) -> Context:
    context: Context = request.app.state.context
    return context


async def _context(request: Request) -> Context:
    """:func:`get_context` as a dependency. A coroutine on purpose: FastAPI runs a plain
    function dependency in the thread pool, a hop per request to read an attribute."""
    return get_context(request)


Ctx = Annotated[Context, Depends(_context)]


def session_signer(ctx: Context) -> Signer:
    return Signer(ctx.settings.secret_key, salt="baton-session")


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, value = header.partition(" ")
    value = value.strip()
    if scheme.lower() != "bearer" or not value or " " in value:
        raise Unauthorized("malformed Authorization header; send 'Authorization: Bearer <token>'")
    return value


def _credential(request: Request) -> str | None:
    """The bearer token or intake key sent, or None. :data:`INTAKE_HEADER` carries
    only an intake key: an API token there (a secret where a page's public key goes)
    or two credentials at once are refused, saying where a token goes, never echoing
    what was sent."""
    bearer = _bearer(request)
    key = (request.headers.get(INTAKE_HEADER) or "").strip()
    if not key:  # absent, or left blank by a client or proxy: no credential there
        return bearer
    if bearer is not None:
        raise Unauthorized(
            f"send one credential: 'Authorization: Bearer <token>' or {INTAKE_HEADER}, not both"
        )
    if not key.startswith(user_service.INTAKE_PREFIX):
        raise Unauthorized(
            f"{INTAKE_HEADER} takes an intake key (bik_…) only; "
            "send an API token as 'Authorization: Bearer <token>'"
        )
    return key


def _intake(request: Request, principal: Principal) -> Principal:
    """An intake key only from its listed browser origins, at its rate."""
    origin = request.headers.get("origin")
    allowed = principal.extra.get("origins", "").split()
    if origin is not None and origin.rstrip("/").lower() not in allowed:
        raise Forbidden(f"this intake key is not allowed from the origin {origin[:200]}")
    rate = int(principal.extra.get("rate_per_minute", "60"))
    ctx = get_context(request)
    rates = ctx.caches.get(INTAKE_RATES)
    if rates is None:
        rates = ctx.caches.setdefault(INTAKE_RATES, MovingWindow(60.0))
    now = time.monotonic()
    if allowed:
        # A browser's key sits in a public page: one sender may use only a share of its
        # rate (a quarter at most), and a sender refused here spends none of it, so one
        # sender cannot shut a website's form. (A key without origins is a server's
        # secret, and all its requests come from that server.)
        share = max(1, min(rate // 4, ctx.settings.intake_rate_per_address))
        sender = _sender(client_address(request))
        wait = rates.hit((principal.key_id, rate, "from", sender, share), share, now)
        if wait is not None:
            raise TooManyRequests(
                f"this intake key takes at most {share} requests a minute from one address",
                int(wait) + 1,
            )
    # A new rate starts a new window, as the key's owner would expect.
    wait = rates.hit((principal.key_id, rate), rate, now)
    if wait is not None:
        raise TooManyRequests(
            f"this intake key takes at most {rate} requests a minute", int(wait) + 1
        )
    return principal


def _sender(address: str) -> str:
    """Who sent a request, for a share of a public key's rate: the address, or for IPv6
    its /64 (one machine commonly holds a whole /64)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if ip.version == 6:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return address


SECURITY_SCHEMES: dict[str, dict[str, str]] = {
    "token": {
        "type": "http",
        "scheme": "bearer",
        "description": "An API token (bt_…) or an intake key (bik_…): 'Authorization: Bearer …'.",
    },
    "intake_key": {
        "type": "apiKey",
        "in": "header",
        "name": INTAKE_HEADER,
        "description": "An intake key (bik_…): capture leads and activities only.",
    },
    "session": {
        "type": "apiKey",
        "in": "cookie",
        "name": SESSION_COOKIE,
        "description": "The session cookie from POST /auth/login; changes also need X-CSRF-Token.",
    },
}
"""The three ways in, as the OpenAPI document names them (the Authorize button of
/docs). :mod:`baton.api.openapi` lists them on every operation that depends on
:func:`get_principal`; they are not FastAPI security dependencies, because those are
resolved on every request only to be ignored (the request is read below)."""


async def get_principal(request: Request) -> Principal:
    """Who is calling, from a bearer token, an intake key or a session cookie; 401
    when none is given or it is not valid (never saying which part was wrong).

    A token or key verified in the last seconds is answered from memory on the event
    loop; anything that needs the database (a first sight, a session) runs in the
    thread pool like the routes. It depends on nothing but the request: each
    dependency FastAPI resolves costs every request of every route."""
    cached: Principal | None = request.scope.get(_PRINCIPAL)
    if cached is not None:
        return cached
    ctx = get_context(request)
    credential = _credential(request)
    principal = None if credential is None else user_service.cached_principal(ctx, credential)
    if principal is not None and principal.kind == "intake_key":
        principal = _intake(request, principal)
    if principal is None:
        principal = await run_in_threadpool(_authenticate, request, ctx)
    request.scope[_PRINCIPAL] = principal
    return principal


_PRINCIPAL = "baton.principal"
"""Where a request keeps who it is from (in its ASGI scope, a plain dict: looking for it
in ``request.state`` costs an AttributeError on every first look)."""


def _authenticate(request: Request, ctx: Context) -> Principal:
    credential = _credential(request)
    if credential is not None:
        if credential.startswith(user_service.INTAKE_PREFIX):
            key = user_service.intake_principal(ctx, credential)
            if key is None:
                raise Unauthorized("the intake key is unknown or revoked")
            return _intake(request, key)
        token = user_service.token_principal(ctx, credential)
        if token is None:
            raise Unauthorized("the token is unknown, expired or revoked")
        return token
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        try:
            session_key = session_signer(ctx).unsign(cookie).decode()
        except (BadSignature, UnicodeDecodeError):
            raise Unauthorized("the session cookie is not valid; sign in again") from None
        session = user_service.session_principal(ctx, session_key)
        if session is None:
            raise Unauthorized("the session has ended; sign in again")
        if request.method not in SAFE_METHODS and not hmac.compare_digest(
            request.headers.get(CSRF_HEADER, "").encode(), session.csrf_token.encode()
        ):
            raise Forbidden(
                f"a change made with a session cookie needs the {CSRF_HEADER} header "
                "(the csrf_token from POST /auth/login or GET /auth/me)"
            )
        if session.one_time_password and request.url.path not in PASSWORD_PATHS:
            raise Forbidden("choose your own password first (POST /auth/password)")
        return session.principal
    raise Unauthorized("sign in (POST /auth/login) or send 'Authorization: Bearer <token>'")


Actor = Annotated[Principal, Depends(get_principal)]
Authenticated = Depends(get_principal)
"""For ``APIRouter(dependencies=[Authenticated])``: no route of the router can be
reached without credentials, even one that forgets to take :data:`Actor`."""

LeadId = Annotated[int, Path(ge=1, le=MAX_ID, description="A lead's id.")]
CandidateId = Annotated[int, Path(ge=1, le=MAX_ID)]
