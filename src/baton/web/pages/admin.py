"""The admin's pages (``/admin`` and its sub-pages): users, API tokens, reps and teams,
webhook endpoints and their deliveries, intake keys, and the possible-duplicate review.

Each form posts to the use case the API and the CLI use (``services/users.py``,
``reps.py``, ``webhooks.py``, ``merge.py``), which decides who may do it: a reader who
may not gets the 403 page from the use case, never from here. Secrets (a one-time
password, an API token, an intake key, a webhook signing secret) are shown once, in
the answer to the form that made them (never in a redirect or a cookie), and listed
afterwards by their prefix only.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, TypeVar
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import ValidationError
from starlette.datastructures import FormData

from baton.api.deps import get_context
from baton.domain.access import SCOPES, Action, Principal
from baton.domain.activities import MAX_ID
from baton.domain.duplicates import DuplicateDismissal, DuplicateFilter
from baton.domain.errors import BatonError, NotFound
from baton.domain.reps import AbsenceCreate, RepCreate, RepUpdate, TeamCreate
from baton.domain.users import (
    MAX_RATE_PER_MINUTE,
    IntakeKeyCreate,
    IntakeKeyUpdate,
    TokenCreate,
    UserCreate,
    UserUpdate,
    origin_for,
)
from baton.services import leads as lead_service
from baton.services import merge as merge_service
from baton.services import reps as rep_service
from baton.services import users as user_service
from baton.services import webhooks as webhook_service
from baton.services.access import allowed
from baton.services.outbox import WEBHOOK_TOPICS
from baton.web.deps import PageUser
from baton.web.forms import FormUser
from baton.web.pages.team import problem_text
from baton.web.render import redirect, render

router = APIRouter(include_in_schema=False)

T = TypeVar("T")
ObjectId = Annotated[int, Path(ge=1, le=MAX_ID)]
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
ROLES = ("admin", "marketing", "sales_manager", "rep")
SECTIONS = (
    ("/admin/users", "Users"),
    ("/admin/tokens", "API tokens"),
    ("/admin/reps", "Reps and teams"),
    ("/admin/webhooks", "Webhooks"),
    ("/admin/intake-keys", "Intake keys"),
    ("/admin/intake", "Inbound endpoints"),
    ("/admin/duplicates", "Duplicates"),
)
REVIEW_PAGE = 50
"""Duplicate pairs shown per page (each shows both leads side by side)."""


def _admin(request: Request, name: str, values: dict[str, Any]) -> HTMLResponse:
    return render(request, f"admin/{name}.html", {"sections": SECTIONS, **values})


def _invalid(exc: ValidationError) -> str:
    """A form's refused fields in one line."""
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"]) or "form"
        parts.append(f"{where}: {error['msg'].removeprefix('Value error, ')}")
    return "; ".join(parts)


async def _attempt(
    request: Request, back: str, ok: Callable[[T], str], work: Callable[[], T]
) -> RedirectResponse:
    """Run a use case for a form and go back with what happened (the refusal, if any,
    as an error message; a missing object stays the 404 page)."""
    try:
        done = await run_in_threadpool(work)
    except ValidationError as exc:
        return redirect(request, back, _invalid(exc), "error")
    except NotFound:
        raise
    except BatonError as exc:
        return redirect(request, back, problem_text(exc), "error")
    return redirect(request, back, ok(done))


async def _secret(
    request: Request,
    back: str,
    work: Callable[[], tuple[str, str]],
) -> HTMLResponse | RedirectResponse:
    """Run a use case that makes a secret, and show the secret once in the answer."""
    try:
        what, secret = await run_in_threadpool(work)
    except ValidationError as exc:
        return redirect(request, back, _invalid(exc), "error")
    except NotFound:
        raise
    except BatonError as exc:
        return redirect(request, back, problem_text(exc), "error")
    return _admin(request, "secret", {"what": what, "secret": secret, "back": back})


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def _list(form: FormData, name: str) -> list[str]:
    """A comma- or line-separated field as a list (blank parts dropped)."""
    raw = _text(form, name).replace("\n", ",")
    return [p.strip() for p in raw.split(",") if p.strip()]


def _optional(form: FormData, name: str) -> str | None:
    return _text(form, name) or None


def _whole_number(form: FormData, name: str, default: int) -> int | str:
    """A number field of a form, as a number (a form posts text; the API takes numbers
    only): blank is ``default``; anything but digits stays text, for the model to
    refuse naming the field."""
    text = _text(form, name)
    if not text:
        return default
    return int(text) if text.isascii() and text.isdigit() else text


def _when(form: FormData, name: str, zone: str) -> datetime | str | None:
    """A ``datetime-local`` field, in the reader's zone (a browser sends no zone)."""
    text = _text(form, name)
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return text  # the model refuses it with its own message
    return moment if moment.tzinfo else moment.replace(tzinfo=ZoneInfo(zone))


# ---------------------------------------------------------------- overview


@router.get("/admin", response_model=None)
def admin_home(request: Request, user: PageUser) -> HTMLResponse:
    """The admin's home: what there is, with a link to each section."""
    ctx, actor = get_context(request), user.principal
    people = user_service.list_users(ctx, actor=actor)
    tokens = user_service.list_tokens(ctx, actor=actor, all_users=True)
    keys = user_service.list_intake_keys(ctx, actor=actor)
    reps = rep_service.list_reps(ctx, actor=actor)
    teams = rep_service.list_teams(ctx, actor=actor)
    counts = {
        "/admin/users": f"{sum(u.active for u in people)} active of {len(people)}",
        "/admin/tokens": f"{sum(t.revoked_at is None for t in tokens)} in use",
        "/admin/reps": f"{len(reps)} reps in {len(teams)} teams",
        "/admin/webhooks": f"{len(webhook_service.list_endpoints(ctx, actor=actor))} endpoints",
        "/admin/intake-keys": f"{sum(k.revoked_at is None for k in keys)} in use",
        "/admin/intake": _intake_count(ctx, actor),
        "/admin/duplicates": f"{merge_service.count_duplicates(ctx, actor=actor)} pairs to review",
    }
    return _admin(request, "index", {"counts": counts})


def _intake_count(ctx: Any, actor: Any) -> str:
    """The inbound endpoints' line on the admin's home (their failures first)."""
    from baton.services import intake as intake_service

    endpoints = intake_service.list_endpoints(ctx, actor=actor)
    failed = sum(e.failed_requests for e in endpoints)
    head = f"{sum(e.active for e in endpoints)} active"
    return f"{head}, {failed} failed requests" if failed else head


# ---------------------------------------------------------------- users


@router.get("/admin/users", response_model=None)
def users_page(request: Request, user: PageUser) -> HTMLResponse:
    ctx, actor = get_context(request), user.principal
    return _admin(
        request,
        "users",
        {
            "people": user_service.list_users(ctx, actor=actor),
            "reps": rep_service.list_reps(ctx, actor=actor),
            "teams": rep_service.list_teams(ctx, actor=actor),
            "roles": ROLES,
            "now": ctx.clock.now(),
        },
    )


def _until(made: user_service.UserPublic) -> str:
    expires = made.one_time_password_expires_at
    return "" if expires is None else f" (it stops working at {expires:%Y-%m-%d %H:%M} UTC)"


@router.post("/admin/users", response_model=None)
async def add_user(request: Request, user: FormUser) -> HTMLResponse | RedirectResponse:
    form = await request.form()
    ctx = get_context(request)

    def work() -> tuple[str, str]:
        data = UserCreate.model_validate(
            {
                "email": _text(form, "email"),
                "display_name": _text(form, "display_name"),
                "role": _text(form, "role"),
                "rep_email": _optional(form, "rep_email"),
                "teams": _list(form, "teams"),
                **({"timezone": _text(form, "timezone")} if _text(form, "timezone") else {}),
            }
        )
        made, secret = user_service.add_user(ctx, data, actor=user.principal)
        assert secret is not None
        return f"the one-time password of {made.email} ({made.role}){_until(made)}", secret

    return await _secret(request, "/admin/users", work)


@router.post("/admin/users/{user_id}/disable", response_model=None)
async def disable_user(request: Request, user: FormUser, user_id: ObjectId) -> RedirectResponse:
    ctx = get_context(request)
    return await _attempt(
        request,
        "/admin/users",
        lambda u: f"{u.email} is disabled; their sessions ended",
        lambda: user_service.disable_user(ctx, user_id, actor=user.principal),
    )


@router.post("/admin/users/{user_id}/enable", response_model=None)
async def enable_user(request: Request, user: FormUser, user_id: ObjectId) -> RedirectResponse:
    ctx = get_context(request)
    return await _attempt(
        request,
        "/admin/users",
        lambda u: f"{u.email} is enabled",
        lambda: user_service.update_user(
            ctx, user_id, UserUpdate(active=True), actor=user.principal
        ),
    )


@router.post("/admin/users/{user_id}/reset-password", response_model=None)
async def reset_password(
    request: Request, user: FormUser, user_id: ObjectId
) -> HTMLResponse | RedirectResponse:
    ctx = get_context(request)

    def work() -> tuple[str, str]:
        secret = user_service.reset_password(ctx, user_id, actor=user.principal)
        found = user_service.get_user(ctx, user_id, actor=user.principal)
        return f"the new one-time password of {found.email}{_until(found)}", secret

    return await _secret(request, "/admin/users", work)


# ---------------------------------------------------------------- tokens


@router.get("/admin/tokens", response_model=None)
def tokens_page(request: Request, user: PageUser) -> HTMLResponse:
    ctx, actor = get_context(request), user.principal
    return _admin(
        request,
        "tokens",
        {
            "tokens": user_service.list_tokens(ctx, actor=actor, all_users=True),
            "people": user_service.list_users(ctx, actor=actor),
            "scopes": SCOPES,
        },
    )


@router.post("/admin/tokens", response_model=None)
async def create_token(request: Request, user: FormUser) -> HTMLResponse | RedirectResponse:
    form = await request.form()
    ctx = get_context(request)

    def work() -> tuple[str, str]:
        data = TokenCreate.model_validate(
            {
                "name": _text(form, "name"),
                "scopes": [s for s in form.getlist("scopes") if isinstance(s, str)],
                "user_email": _optional(form, "user_email"),
                "expires_at": _when(form, "expires_at", user.timezone),
            }
        )
        token, secret = user_service.create_token(ctx, data, actor=user.principal)
        return f"the API token “{token.name}” of {token.user_email}", secret

    return await _secret(request, "/admin/tokens", work)


@router.post("/admin/tokens/{token_id}/revoke", response_model=None)
async def revoke_token(request: Request, user: FormUser, token_id: ObjectId) -> RedirectResponse:
    ctx = get_context(request)
    return await _attempt(
        request,
        "/admin/tokens",
        lambda t: f"token {t.prefix}… ({t.name}) revoked",
        lambda: user_service.revoke_token(ctx, token_id, actor=user.principal),
    )


# ---------------------------------------------------------------- reps and teams


@router.get("/admin/reps", response_model=None)
def reps_page(request: Request, user: PageUser) -> HTMLResponse:
    """Teams and reps as an admin manages them (reading them is wider: a rep reads
    their own record, in their settings; this page is for who creates reps)."""
    ctx, actor = get_context(request), user.principal
    allowed(actor, Action.MANAGE_REPS)
    return _admin(
        request,
        "reps",
        {
            "teams": rep_service.list_teams(ctx, actor=actor),
            "reps": rep_service.list_reps(ctx, actor=actor),
        },
    )


@router.post("/admin/teams", response_model=None)
async def create_team(request: Request, user: FormUser) -> RedirectResponse:
    form = await request.form()
    ctx = get_context(request)
    return await _attempt(
        request,
        "/admin/reps",
        lambda t: f"team {t.name} created",
        lambda: rep_service.create_team(
            ctx,
            TeamCreate(name=_text(form, "name"), manager_email=_optional(form, "manager_email")),
            actor=user.principal,
        ),
    )


@router.post("/admin/reps", response_model=None)
async def create_rep(request: Request, user: FormUser) -> RedirectResponse:
    form = await request.form()
    ctx = get_context(request)
    given = {
        "email": _text(form, "email"),
        "name": _text(form, "name"),
        "team": _optional(form, "team"),
        "timezone": _optional(form, "timezone"),
        "capacity": _optional(form, "capacity"),
    }
    return await _attempt(
        request,
        "/admin/reps",
        lambda r: f"rep {r.email} added",
        lambda: rep_service.create_rep(
            ctx,
            RepCreate.model_validate({k: v for k, v in given.items() if v is not None}),
            actor=user.principal,
        ),
    )


def hours_text(hours: dict[str, list[str]]) -> str:
    """Working hours as the form shows them: ``mon 09:00-12:00, 13:00-17:00`` per line."""
    return "\n".join(f"{day} {', '.join(hours.get(day, []))}".rstrip() for day in DAYS)


def _hours(text: str) -> dict[str, list[str]] | str:
    """The form's hours (see :func:`hours_text`) as the rep model takes them; a line
    naming no day is given back whole for the model to refuse."""
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        day, _, spans = line.partition(" ")
        if day.lower() not in DAYS:
            return line
        found[day.lower()] = [s.strip() for s in spans.split(",") if s.strip()]
    return found


@router.get("/admin/reps/{rep_id}", response_model=None)
def rep_page(request: Request, user: PageUser, rep_id: ObjectId) -> HTMLResponse:
    ctx, actor = get_context(request), user.principal
    allowed(actor, Action.MANAGE_REPS)
    rep = rep_service.get_rep(ctx, rep_id, actor=actor)
    return _admin(
        request,
        "rep",
        {
            "rep": rep,
            "hours": hours_text(rep.working_hours),
            "teams": rep_service.list_teams(ctx, actor=actor),
        },
    )


@router.post("/admin/reps/{rep_id}", response_model=None)
async def update_rep(request: Request, user: FormUser, rep_id: ObjectId) -> RedirectResponse:
    form = await request.form()
    ctx = get_context(request)
    back = f"/admin/reps/{rep_id}"

    def work() -> rep_service.RepPublic:
        data = RepUpdate.model_validate(
            {
                "name": _text(form, "name"),
                "team": _optional(form, "team"),
                "manager_email": _optional(form, "manager_email"),
                "timezone": _text(form, "timezone"),
                "working_hours": _hours(_text(form, "working_hours")),
                "status": _text(form, "status"),
                "capacity": _text(form, "capacity"),
                "weight": _text(form, "weight"),
                "countries": _list(form, "countries"),
                "regions": _list(form, "regions"),
                "postal_prefixes": _list(form, "postal_prefixes"),
                "segments": _list(form, "segments"),
                "tags": _list(form, "tags"),
                "active": _text(form, "active") == "yes",
            }
        )
        return rep_service.update_rep(ctx, rep_id, data, actor=user.principal)

    return await _attempt(request, back, lambda r: f"{r.email} saved", work)


@router.post("/admin/reps/{rep_id}/absences", response_model=None)
async def add_absence(request: Request, user: FormUser, rep_id: ObjectId) -> RedirectResponse:
    form = await request.form()
    ctx = get_context(request)

    def work() -> rep_service.RepPublic:
        data = AbsenceCreate.model_validate(
            {
                "starts_at": _when(form, "starts_at", user.timezone),
                "ends_at": _when(form, "ends_at", user.timezone),
                "note": _optional(form, "note"),
            }
        )
        return rep_service.add_absence(ctx, rep_id, data, actor=user.principal)

    return await _attempt(
        request, f"/admin/reps/{rep_id}", lambda r: f"out of office added for {r.email}", work
    )


@router.post("/admin/reps/{rep_id}/absences/{absence_id}/remove", response_model=None)
async def remove_absence(
    request: Request, user: FormUser, rep_id: ObjectId, absence_id: ObjectId
) -> RedirectResponse:
    ctx = get_context(request)
    return await _attempt(
        request,
        f"/admin/reps/{rep_id}",
        lambda r: f"out of office removed for {r.email}",
        lambda: rep_service.remove_absence(ctx, rep_id, absence_id, actor=user.principal),
    )


# ---------------------------------------------------------------- webhooks


@router.get("/admin/webhooks", response_model=None)
def webhooks_page(request: Request, user: PageUser) -> HTMLResponse:
    ctx = get_context(request)
    return _admin(
        request,
        "webhooks",
        {
            "endpoints": webhook_service.list_endpoints(ctx, actor=user.principal),
            "topics": WEBHOOK_TOPICS,
        },
    )


@router.post("/admin/webhooks", response_model=None)
async def create_endpoint(request: Request, user: FormUser) -> HTMLResponse | RedirectResponse:
    form = await request.form()
    ctx = get_context(request)

    def work() -> tuple[str, str]:
        events = [e for e in form.getlist("events") if isinstance(e, str)]
        endpoint, secret = webhook_service.create_endpoint(
            ctx, url=_text(form, "url"), events=events, actor=user.principal
        )
        return f"the signing secret of endpoint {endpoint.id} ({endpoint.url})", secret

    return await _secret(request, "/admin/webhooks", work)


@router.post("/admin/webhooks/{endpoint_id}/disable", response_model=None)
async def disable_endpoint(
    request: Request, user: FormUser, endpoint_id: ObjectId
) -> RedirectResponse:
    ctx = get_context(request)
    return await _attempt(
        request,
        "/admin/webhooks",
        lambda e: f"endpoint {e.id} disabled",
        lambda: webhook_service.disable_endpoint(ctx, endpoint_id, actor=user.principal),
    )


@router.get("/admin/webhooks/{endpoint_id}", response_model=None)
def deliveries_page(request: Request, user: PageUser, endpoint_id: ObjectId) -> HTMLResponse:
    ctx, actor = get_context(request), user.principal
    return _admin(
        request,
        "deliveries",
        {
            "endpoint": webhook_service.get_endpoint(ctx, endpoint_id, actor=actor),
            "deliveries": webhook_service.list_deliveries(ctx, endpoint_id, actor=actor, limit=50),
        },
    )


# ---------------------------------------------------------------- intake keys


KEY_FIELDS = {"name": "Name", "source": "Source of its leads"}
"""The intake-key forms' labels of the fields :func:`_key_problems` does not word itself."""


def _key_problems(exc: ValidationError, origins: list[str]) -> str:
    """An intake-key form's refusal in sentences naming its fields, with what to write
    instead, rather than the API's wording (``origins.0``, "a JSON number")."""
    said: list[str] = []
    for error in exc.errors():
        loc = error["loc"]
        if loc and loc[0] == "rate_per_minute":
            sentence = f"Rate per minute must be a whole number from 1 to {MAX_RATE_PER_MINUTE:,}."
        elif len(loc) == 2 and loc[0] == "origins" and isinstance(loc[1], int):
            written = origins[loc[1]] if loc[1] < len(origins) else ""
            meant = origin_for(written)
            sentence = f"Origin {loc[1] + 1} ({written}) is not a browser origin: " + (
                f"write it as {meant}." if meant else "write it as https://www.example.com."
            )
        elif loc == ("origins",):
            sentence = "Give at most 50 browser origins, one a line."
        else:
            label = KEY_FIELDS.get(str(loc[0]), "") if loc else ""
            text = error["msg"].removeprefix("Value error, ")
            sentence = f"{label}: {text}." if label else f"{text[:1].upper()}{text[1:]}."
        if sentence not in said:
            said.append(sentence)
    return " ".join(said)


def _intake_keys(
    request: Request,
    actor: Principal,
    problem: str | None = None,
    typed: dict[str, Any] | None = None,
) -> HTMLResponse:
    """The intake keys page; after a refused form, answered without a redirect: the
    refusal, and the form as it was typed (``typed``: the key's ``id``, ``None`` for a
    new key, and the fields), so that nothing typed is lost (422)."""
    values = {"keys": user_service.list_intake_keys(get_context(request), actor=actor)}
    if problem is None:
        return _admin(request, "intake_keys", values)
    context = {"sections": SECTIONS, **values, "flashes": [("error", problem)], "typed": typed}
    return render(request, "admin/intake_keys.html", context, status=422)


@router.get("/admin/intake-keys", response_model=None)
def intake_keys_page(request: Request, user: PageUser) -> HTMLResponse:
    return _intake_keys(request, user.principal)


@router.post("/admin/intake-keys", response_model=None)
async def add_intake_key(request: Request, user: FormUser) -> HTMLResponse | RedirectResponse:
    form = await request.form()
    ctx = get_context(request)
    origins = _list(form, "origins")
    try:
        data = IntakeKeyCreate.model_validate(
            {
                "name": _text(form, "name"),
                "source": _text(form, "source"),
                "origins": origins,
                "rate_per_minute": _whole_number(form, "rate_per_minute", 60),
            }
        )
    except ValidationError as exc:
        typed = {"id": None, **{f: _text(form, f) for f in ("name", "source", "origins")}}
        typed["rate_per_minute"] = _text(form, "rate_per_minute")
        return _intake_keys(request, user.principal, _key_problems(exc, origins), typed)

    def work() -> tuple[str, str]:
        key, secret = user_service.add_intake_key(ctx, data, actor=user.principal)
        return f"the intake key “{key.name}” (source {key.source})", secret

    return await _secret(request, "/admin/intake-keys", work)


def _key_now(key: user_service.IntakeKeyPublic) -> str:
    origins = ", ".join(key.origins) or "none (servers only)"
    return (
        f"intake key {key.prefix}… ({key.name}) changed: {key.rate_per_minute} requests a "
        f"minute, browser origins {origins}; the website keeps its key"
    )


@router.post("/admin/intake-keys/{key_id}", response_model=None)
async def change_intake_key(
    request: Request, user: FormUser, key_id: ObjectId
) -> HTMLResponse | RedirectResponse:
    """Change a key's rate and origins, as ``PATCH /api/v1/intake-keys/{id}`` does: the
    form posts both as they should be (it shows them as they are), so blank origins
    make a key for servers only and a blank rate keeps the rate. A refused form comes
    back open, as typed, with what to write instead."""
    form = await request.form()
    ctx = get_context(request)
    origins = _list(form, "origins")
    rate = _whole_number(form, "rate_per_minute", 0) if _text(form, "rate_per_minute") else None
    try:
        data = IntakeKeyUpdate.model_validate({"rate_per_minute": rate, "origins": origins})
    except ValidationError as exc:
        typed = {"id": key_id, **{f: _text(form, f) for f in ("rate_per_minute", "origins")}}
        return _intake_keys(request, user.principal, _key_problems(exc, origins), typed)

    def work() -> user_service.IntakeKeyPublic:
        return user_service.update_intake_key(ctx, key_id, data, actor=user.principal)

    return await _attempt(request, "/admin/intake-keys", _key_now, work)


@router.post("/admin/intake-keys/{key_id}/revoke", response_model=None)
async def revoke_intake_key(request: Request, user: FormUser, key_id: ObjectId) -> RedirectResponse:
    ctx = get_context(request)
    return await _attempt(
        request,
        "/admin/intake-keys",
        lambda k: f"intake key {k.prefix}… ({k.name}) revoked",
        lambda: user_service.revoke_intake_key(ctx, key_id, actor=user.principal),
    )


# ---------------------------------------------------------------- duplicates


def _review_filter(reason: str | None, below: str | None) -> DuplicateFilter | str:
    try:
        return DuplicateFilter.model_validate(
            {"reason": reason or None, "similarity_below": below or None}
        )
    except ValidationError as exc:
        return _invalid(exc)


def _filter_query(reason: str | None, below: str | None) -> str:
    given = {k: v for k, v in (("reason", reason), ("similarity_below", below)) if v}
    return f"?{urlencode(given)}" if given else ""


@router.get("/admin/duplicates", response_model=None)
def duplicates_page(
    request: Request,
    user: PageUser,
    reason: Annotated[str | None, Query(max_length=200)] = None,
    similarity_below: Annotated[str | None, Query(max_length=20)] = None,
) -> HTMLResponse:
    """Possible duplicates side by side (newest first), with the dry-run count of what
    a dismissal by the filter would dismiss."""
    ctx, actor = get_context(request), user.principal
    wanted = _review_filter(reason, similarity_below)
    problem = wanted if isinstance(wanted, str) else None
    where = wanted if isinstance(wanted, DuplicateFilter) else None
    pairs = merge_service.list_duplicates(ctx, actor=actor, where=where, limit=REVIEW_PAGE)
    matching = merge_service.count_duplicates(ctx, actor=actor, where=where)
    leads: dict[int, Any] = {}
    for pair in pairs:
        for lead_id in (pair.lead_id, pair.other_lead_id):
            if lead_id not in leads:
                leads[lead_id] = lead_service.get_lead(ctx, lead_id, actor=actor)
    return _admin(
        request,
        "duplicates",
        {
            "pairs": pairs,
            "leads": leads,
            "matching": matching,
            "filtered": where is not None and not where.empty,
            "reason": reason or "",
            "similarity_below": similarity_below or "",
            "problem": problem,
        },
    )


def _dismissed(report: merge_service.DismissReport) -> str:
    if report.dry_run:
        return f"Dry run: {report.matched} pairs would be dismissed; nothing changed"
    skipped = f" ({len(report.skipped)} were not open pairs)" if report.skipped else ""
    return f"{report.dismissed} pairs dismissed{skipped}"


@router.post("/admin/duplicates/dismiss", response_model=None)
async def dismiss_many(request: Request, user: FormUser) -> RedirectResponse:
    """Dismiss the pairs ticked (``ids``), or every pair the filter picks
    (``by_filter``), or only count them (``dry_run``)."""
    form = await request.form()
    ctx = get_context(request)
    reason, below = _optional(form, "reason"), _optional(form, "similarity_below")
    back = "/admin/duplicates" + _filter_query(reason, below)
    if _text(form, "by_filter"):
        body: dict[str, Any] = {"reason": reason, "similarity_below": below}
    else:
        body = {"ids": [i for i in form.getlist("ids") if isinstance(i, str)] or None}
    body["dry_run"] = bool(_text(form, "dry_run"))
    return await _attempt(
        request,
        back,
        _dismissed,
        lambda: merge_service.dismiss_duplicates(
            ctx, DuplicateDismissal.model_validate(body), actor=user.principal
        ),
    )


@router.post("/admin/duplicates/{pair_id}/dismiss", response_model=None)
async def dismiss_one(request: Request, user: FormUser, pair_id: ObjectId) -> RedirectResponse:
    form = await request.form()
    ctx = get_context(request)
    back = "/admin/duplicates" + _filter_query(
        _optional(form, "reason"), _optional(form, "similarity_below")
    )
    return await _attempt(
        request,
        back,
        lambda _: f"pair {pair_id} dismissed: two different people",
        lambda: merge_service.dismiss_duplicate(ctx, pair_id, actor=user.principal),
    )


@router.post("/admin/duplicates/merge", response_model=None)
async def merge(request: Request, user: FormUser) -> RedirectResponse:
    """Merge one lead of a pair into the other (the survivor keeps its id)."""
    form = await request.form()
    ctx = get_context(request)
    back = "/admin/duplicates" + _filter_query(
        _optional(form, "reason"), _optional(form, "similarity_below")
    )
    try:
        survivor, merged = int(_text(form, "survivor_id")), int(_text(form, "merged_id"))
    except ValueError:
        return redirect(request, back, "choose which lead to keep", "error")
    if not (1 <= survivor <= MAX_ID and 1 <= merged <= MAX_ID):  # past MAX_ID: a 500
        return redirect(request, back, "choose which lead to keep", "error")
    return await _attempt(
        request,
        back,
        lambda r: f"lead {r.merged_id} merged into lead {r.survivor_id}",
        lambda: merge_service.merge_leads(ctx, survivor, merged, actor=user.principal),
    )
