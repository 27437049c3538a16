"""Inbound endpoints and the intake log: leads from form tools, ad platforms, calendars
and web forms, stored raw first.

A request to ``/hooks/{name}`` passes the door (the endpoint exists and is active,
its rate and body size are respected; a throttled request is counted, never stored),
is **stored raw and committed** (``intake_requests``), and only then read, in a second
transaction: the signature or key is checked, the endpoint's adapter reads the body
into submissions with the endpoint's current mapping, a filled honeypot refuses it,
and each submission becomes an ``intake_items`` row that captures the lead and records
the activity its event type names (so a "contact sales" form is a hand-raise that is
handed to a rep like any other). Nothing is lost when reading fails: the request stays
in the log with its error and :func:`retry` reads it again once the mapping is fixed.
A submission the platform sends again (same upstream id) is answered like the first
time and writes nothing twice.

Managing endpoints is :data:`~baton.domain.access.Action.MANAGE_INTAKE`, reading the
log (raw bodies hold personal data) :data:`~baton.domain.access.Action.VIEW_INTAKE_LOG`:
admins and marketing. Hook work itself is done by an intake principal named after the
endpoint (``hook:NAME``), which may only capture leads and record activities.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import Any, TypeVar, cast
from urllib.parse import parse_qsl, urlsplit

from pydantic import ValidationError
from sqlalchemy import and_, bindparam, case, exists, func, insert, or_, select, update
from sqlalchemy.engine import Connection, RowMapping
from starlette.concurrency import run_in_threadpool

from baton.domain.access import Action, Principal
from baton.domain.activities import MAX_FUTURE_SKEW, ActivityCreate
from baton.domain.batches import describe
from baton.domain.contact import email_domain
from baton.domain.egress import EgressPolicy
from baton.domain.errors import (
    BatonError,
    Conflict,
    FieldProblem,
    NotFound,
    ValidationFailed,
)
from baton.domain.intake import (
    Delivery,
    EndpointConfig,
    FetchRequest,
    IntakeItem,
    PayloadRefused,
    SignatureRefused,
)
from baton.domain.intake_endpoints import (
    GENERATED_SECRET_KINDS,
    EndpointCreate,
    EndpointUpdate,
    allowed_return_url,
    honeypot_filled,
    mapping_problems,
)
from baton.domain.leads import LeadCreate
from baton.domain.moments import FIRST_YEAR, LAST_YEAR
from baton.domain.scoring import DISPOSABLE_DOMAINS
from baton.redact import remember
from baton.services.access import allowed
from baton.services.activities import ingest_validated_in
from baton.services.context import Context
from baton.services.contract_rules import active_contract_in
from baton.services.leads import capture_lead_in
from baton.services.queries import (
    insert_ignoring_conflicts,
    lock_lead,
    new_row_id_of,
)
from baton.store.group_commit import forget_memo, transaction_memo
from baton.store.tables import (
    intake_endpoints,
    intake_items,
    intake_requests,
    lead_tags,
    tag_events,
)

log = logging.getLogger("baton.intake")
T = TypeVar("T")

DISPOSABLE_TAG = "disposable-email"
"""Tag on a lead whose email is at a throw-away mailbox provider (kept, not refused)."""
REQUEST_STATUSES = ("received", "processed", "partial", "failed", "refused", "erased")
"""``erased``: the body was removed at the person's request (``baton person erase``)."""
ITEM_STATUSES = ("pending", "processed", "failed", "awaiting_fetch", "duplicate", "refused")
DONE = frozenset({"processed", "duplicate", "refused"})
RATE_WINDOW = timedelta(minutes=1)
MAX_LOG = 1000
HEADERS_KEPT = 50


# --- endpoints --------------------------------------------------------------------


@dataclass(frozen=True)
class EndpointRow:
    """An endpoint as stored (its secret and fetch token included: internal only)."""

    id: int
    name: str
    kind: str
    source: str
    campaign: str | None
    event_type: str | None
    mapping: dict[str, Any]
    secret: str | None = field(repr=False)  # never in a log line or a traceback
    fetch_token: str | None = field(repr=False)
    fetch_base_url: str | None
    return_urls: tuple[str, ...]
    honeypot_field: str | None
    rate_per_minute: int
    max_body_bytes: int
    active: bool
    throttled_count: int
    created_at: datetime
    created_by: str
    updated_at: datetime

    @property
    def config(self) -> EndpointConfig:
        """What the adapter is given."""
        return EndpointConfig(
            name=self.name,
            kind=self.kind,
            source=self.source,
            campaign=self.campaign,
            event_type=self.event_type,
            mapping=self.mapping,
            secret=self.secret,
            return_urls=self.return_urls,
            honeypot_field=self.honeypot_field,
        )


@dataclass(frozen=True)
class EndpointView:
    """An endpoint as shown: whether a secret and a fetch token are set, never them."""

    id: int
    name: str
    kind: str
    path: str
    source: str
    campaign: str | None
    event_type: str | None
    mapping: dict[str, Any]
    secret_set: bool
    fetch_token_set: bool
    fetch_base_url: str | None
    return_urls: list[str]
    honeypot_field: str | None
    rate_per_minute: int
    max_body_bytes: int
    active: bool
    throttled_count: int
    requests: int
    failed_requests: int
    last_request_at: datetime | None
    created_at: datetime
    created_by: str
    updated_at: datetime


def _row(row: RowMapping) -> EndpointRow:
    # Known to the process from now on: a log line or an error that quotes either is
    # masked where it leaves the process (baton.redact).
    remember(row["secret"], row["fetch_token"])
    return EndpointRow(
        id=int(row["id"]),
        name=row["name"],
        kind=row["kind"],
        source=row["source"],
        campaign=row["campaign"],
        event_type=row["event_type"],
        mapping=dict(row["mapping"] or {}),
        secret=row["secret"],
        fetch_token=row["fetch_token"],
        fetch_base_url=row["fetch_base_url"],
        return_urls=tuple(row["return_urls"] or ()),
        honeypot_field=row["honeypot_field"],
        rate_per_minute=int(row["rate_per_minute"]),
        max_body_bytes=int(row["max_body_bytes"]),
        active=bool(row["active"]),
        throttled_count=int(row["throttled_count"] or 0),
        created_at=row["created_at"],
        created_by=row["created_by"],
        updated_at=row["updated_at"],
    )


def endpoint_in(
    connection: Connection, *, name: str | None = None, endpoint_id: int | None = None
) -> EndpointRow | None:
    """The endpoint by name or id (active or not), or ``None``."""
    query = select(intake_endpoints)
    if name is not None:
        query = query.where(intake_endpoints.c.name == name.strip().lower())
    if endpoint_id is not None:
        query = query.where(intake_endpoints.c.id == endpoint_id)
    found = connection.execute(query).mappings().first()
    return None if found is None else _row(found)


def _view(connection: Connection, endpoint: EndpointRow) -> EndpointView:
    return _views(connection, [endpoint])[0]


def _views(connection: Connection, endpoints: Sequence[EndpointRow]) -> list[EndpointView]:
    ids = [e.id for e in endpoints]
    counts: dict[int, tuple[int, int, datetime | None]] = {}
    if ids:
        failed = func.sum(case((intake_requests.c.status.in_(("failed", "partial")), 1), else_=0))
        for endpoint_id, total, bad, last in connection.execute(
            select(
                intake_requests.c.endpoint_id,
                func.count(),
                failed,
                func.max(intake_requests.c.received_at),
            )
            .where(intake_requests.c.endpoint_id.in_(ids))
            .group_by(intake_requests.c.endpoint_id)
        ):
            counts[int(endpoint_id)] = (int(total), int(bad or 0), last)
    return [
        EndpointView(
            id=e.id,
            name=e.name,
            kind=e.kind,
            path=f"/hooks/{e.name}",
            source=e.source,
            campaign=e.campaign,
            event_type=e.event_type,
            mapping=e.mapping,
            secret_set=bool(e.secret),
            fetch_token_set=bool(e.fetch_token),
            fetch_base_url=e.fetch_base_url,
            return_urls=list(e.return_urls),
            honeypot_field=e.honeypot_field,
            rate_per_minute=e.rate_per_minute,
            max_body_bytes=e.max_body_bytes,
            active=e.active,
            throttled_count=e.throttled_count,
            requests=counts.get(e.id, (0, 0, None))[0],
            failed_requests=counts.get(e.id, (0, 0, None))[1],
            last_request_at=counts.get(e.id, (0, 0, None))[2],
            created_at=e.created_at,
            created_by=e.created_by,
            updated_at=e.updated_at,
        )
        for e in endpoints
    ]


def _validated(model: type[EndpointCreate] | type[EndpointUpdate], data: Any) -> Any:
    if isinstance(data, model):
        return data
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ValidationFailed(
            "the endpoint is not valid",
            [FieldProblem(loc or "(endpoint)", message) for loc, message in describe(exc)],
        ) from None


def _check_mapping(kind: str, mapping: Mapping[str, Any]) -> None:
    """The kind's own checks of a mapping (its adapter's ``check_mapping``)."""
    check = getattr(_adapter(kind), "check_mapping", None)
    problems = list(check(mapping)) if check is not None else []
    if problems:
        raise ValidationFailed(
            "the mapping is not valid",
            [
                FieldProblem(
                    p.loc if p.loc.startswith("mapping") else f"mapping.{p.loc}", p.message
                )
                for p in problems
            ],
        )


def _check_fetch_base(ctx: Context, url: str | None) -> None:
    """Where the fetch token may be sent: https (http too outside production), no user
    name or password, printable ASCII, and no address inside the network (a literal
    one now; a name is checked on every address it resolves to when the worker
    connects, by the egress-guarded client)."""
    if not url:
        return
    problem: str | None = None
    parts = urlsplit(url)
    production = ctx.settings.env == "production"
    if not url.isascii() or not url.isprintable() or " " in url:
        problem = "use printable ASCII only (an international host as xn--…)"
    elif parts.scheme != "https" and (production or parts.scheme != "http"):
        problem = "must start with https://" if production else "an http(s) URL"
    elif not parts.hostname:
        problem = "needs a host, e.g. https://graph.facebook.com/v21.0"
    elif parts.username or parts.password:
        problem = "must not carry a user name or password"
    else:
        try:
            parts.port  # noqa: B018 (raises on a bad port)
        except ValueError:
            problem = "not a valid URL (its port)"
        else:
            policy = EgressPolicy.parse(ctx.settings.webhook_internal_allowlist)
            problem = policy.host_problem(parts.hostname)
    if problem is not None:
        raise ValidationFailed(
            "the endpoint is not valid", [FieldProblem("fetch_base_url", problem)]
        )


def add_endpoint(
    ctx: Context, data: EndpointCreate | Mapping[str, Any], *, actor: Principal
) -> tuple[EndpointView, str | None]:
    """Create an endpoint; returns it with its secret when Baton generated one (shown
    only now: the list says only whether a secret is set)."""
    allowed(actor, Action.MANAGE_INTAKE)
    spec: EndpointCreate = _validated(EndpointCreate, data)
    _check_mapping(spec.kind, spec.mapping)
    _check_fetch_base(ctx, spec.fetch_base_url)
    generated = None
    secret = spec.secret
    if secret is None and spec.kind in GENERATED_SECRET_KINDS:
        secret = generated = "bhk_" + secrets.token_urlsafe(32)
    now = ctx.clock.now()
    with ctx.write() as connection:
        if endpoint_in(connection, name=spec.name) is not None:
            raise Conflict(f"an endpoint named {spec.name!r} exists; choose another name")
        connection.execute(
            insert(intake_endpoints).values(
                name=spec.name,
                kind=spec.kind,
                source=spec.source,
                campaign=spec.campaign,
                event_type=spec.event_type,
                mapping=spec.mapping,
                secret=secret,
                fetch_token=spec.fetch_token,
                fetch_base_url=spec.fetch_base_url,
                return_urls=spec.return_urls,
                honeypot_field=spec.honeypot_field,
                rate_per_minute=spec.rate_per_minute,
                max_body_bytes=spec.max_body_bytes,
                active=spec.active,
                throttled_count=0,
                created_at=now,
                created_by=actor.name,
                updated_at=now,
            )
        )
        endpoint = endpoint_in(connection, name=spec.name)
        assert endpoint is not None
        view = _view(connection, endpoint)
    _forget_doors(ctx)
    return view, generated


def update_endpoint(
    ctx: Context, name: str, changes: EndpointUpdate | Mapping[str, Any], *, actor: Principal
) -> EndpointView:
    """Change an endpoint (a mapping fix: :func:`retry` then reads with it)."""
    allowed(actor, Action.MANAGE_INTAKE)
    spec: EndpointUpdate = _validated(EndpointUpdate, changes)
    values = spec.model_dump(exclude_unset=True)
    if "source" in values and not values["source"]:
        raise ValidationFailed("the endpoint is not valid", [FieldProblem("source", "required")])
    for key in ("rate_per_minute", "max_body_bytes", "active", "mapping", "return_urls"):
        if key in values and values[key] is None:
            del values[key]
    with ctx.write() as connection:
        endpoint = endpoint_in(connection, name=name)
        if endpoint is None:
            raise NotFound(f"no inbound endpoint named {name!r}")
        if "mapping" in values:
            problems = mapping_problems(endpoint.kind, values["mapping"])
            if problems:
                raise ValidationFailed(
                    "the mapping is not valid", [FieldProblem(w, m) for w, m in problems]
                )
            _check_mapping(endpoint.kind, values["mapping"])
        if "fetch_base_url" in values and values["fetch_base_url"] != endpoint.fetch_base_url:
            _check_fetch_base(ctx, values["fetch_base_url"])
            if endpoint.fetch_token and not values.get("fetch_token"):
                # The token set (by whoever) is never sent to a new place on another
                # person's word alone: who moves the base URL gives the token again.
                raise ValidationFailed(
                    "give the fetch token again with a new fetch base URL",
                    [
                        FieldProblem(
                            "fetch_token",
                            "required when fetch_base_url changes (the token set is "
                            "never sent to a new host)",
                        )
                    ],
                )
        if endpoint.kind == "web_to_lead" and values.get("return_urls") == []:
            raise ValidationFailed(
                "a web_to_lead endpoint needs a return URL",
                [FieldProblem("return_urls", "at least one")],
            )
        if values:
            connection.execute(
                update(intake_endpoints)
                .where(intake_endpoints.c.id == endpoint.id)
                .values(**values, updated_at=ctx.clock.now())
            )
        if {"fetch_token", "fetch_base_url"} & values.keys():
            # The usual fix for waiting fetches (an expired token, a moved API): they
            # are read again at the next pass, not after their backoff runs out.
            now = ctx.clock.now()
            connection.execute(
                update(intake_items)
                .where(
                    intake_items.c.endpoint_id == endpoint.id,
                    intake_items.c.status == "awaiting_fetch",
                    or_(
                        intake_items.c.claimed_until.is_(None),
                        intake_items.c.claimed_until < now,
                    ),
                )
                .values(next_attempt_at=now)
            )
        fresh = endpoint_in(connection, endpoint_id=endpoint.id)
        assert fresh is not None
        view = _view(connection, fresh)
    _forget_doors(ctx)
    return view


def deactivate_endpoint(ctx: Context, name: str, *, actor: Principal) -> EndpointView:
    """Stop an endpoint: its hook answers 404 from now on; its log is kept."""
    return update_endpoint(ctx, name, {"active": False}, actor=actor)


def list_endpoints(ctx: Context, *, actor: Principal) -> list[EndpointView]:
    """Every endpoint with its counts (requests, failed, throttled)."""
    allowed(actor, Action.MANAGE_INTAKE)
    with ctx.read() as connection:
        rows = connection.execute(select(intake_endpoints).order_by(intake_endpoints.c.name))
        return _views(connection, [_row(r) for r in rows.mappings()])


def show_endpoint(ctx: Context, name: str, *, actor: Principal) -> EndpointView:
    allowed(actor, Action.MANAGE_INTAKE)
    with ctx.read() as connection:
        endpoint = endpoint_in(connection, name=name)
        if endpoint is None:
            raise NotFound(f"no inbound endpoint named {name!r}")
        return _view(connection, endpoint)


def hook_principal(endpoint: EndpointRow | EndpointConfig) -> Principal:
    """Who does an endpoint's work: an intake principal named after it, which may only
    capture leads and record activities, and fills in a known lead without
    overwriting it (like an intake key)."""
    return Principal(kind="intake_key", name=f"hook:{endpoint.name}", source=endpoint.source)


# --- receiving --------------------------------------------------------------------


@dataclass
class ItemOutcome:
    """What became of one submission."""

    item_id: int | None
    status: str
    lead_id: int | None = None
    activity_id: int | None = None
    duplicate_of: int | None = None
    errors: list[dict[str, str]] = field(default_factory=list)
    public_errors: list[dict[str, str]] | None = None
    """What the sender is told, when it differs from ``errors`` (which the intake log
    keeps): the same fields without the operator's hints (the mapping, a command)."""

    @property
    def answer_errors(self) -> list[dict[str, str]]:
        """The errors for the sender's answer (``errors`` unless told otherwise)."""
        return self.errors if self.public_errors is None else self.public_errors


@dataclass
class HookOutcome:
    """The answer to a hook request: an HTTP status, the request's id in the log, the
    submissions' outcomes; a problem (title, detail, field errors) for a 4xx; where a
    web form's visitor goes next; when to try again after a 429."""

    status: int
    request_id: int | None = None
    request_status: str | None = None
    items: list[ItemOutcome] = field(default_factory=list)
    title: str | None = None
    detail: str | None = None
    errors: list[dict[str, str]] = field(default_factory=list)
    redirect: str | None = None
    retry_after: int | None = None

    @property
    def is_problem(self) -> bool:
        return self.status >= 400


DOOR_CACHE = "intake.door"
RATE_CACHE = "intake.rate"
_RATE_LOCK = threading.Lock()
DOOR_SECONDS = 2.0
"""How long a process answers hooks from the endpoint it read (a change made in this
process applies at once; one made elsewhere, such as by the CLI, within this time)."""


def door(ctx: Context, name: str) -> EndpointRow | None:
    """The active endpoint a hook request addresses (``None``: answer 404), read
    before the body so its size limit applies while reading."""
    known, endpoint = known_door(ctx, name)
    if known:
        return endpoint
    cache: dict[str, tuple[float, EndpointRow | None]] = ctx.caches.setdefault(DOOR_CACHE, {})
    key = name.strip().lower()
    with ctx.read() as connection:
        endpoint = endpoint_in(connection, name=key)
    if len(cache) > 10_000:  # names probed at random are not kept forever
        cache.clear()
    cache[key] = (time.monotonic(), endpoint)
    return endpoint if endpoint is not None and endpoint.active else None


def known_door(ctx: Context, name: str) -> tuple[bool, EndpointRow | None]:
    """:func:`door`'s answer when it needs no read (``(True, answer)``): a name no
    endpoint can have, or one read less than :data:`DOOR_SECONDS` ago; ``(False,
    None)`` when it would read. The API's event loop asks this first and hands only a
    read to a thread."""
    if not name or len(name) > 100:
        return True, None
    cache: dict[str, tuple[float, EndpointRow | None]] = ctx.caches.get(DOOR_CACHE, {})
    found = cache.get(name.strip().lower())
    if found is None or time.monotonic() - found[0] > DOOR_SECONDS:
        return False, None
    endpoint = found[1]
    return True, endpoint if endpoint is not None and endpoint.active else None


def _forget_doors(ctx: Context) -> None:
    ctx.caches.pop(DOOR_CACHE, None)


def _rate_check(ctx: Context, endpoint: EndpointRow, now: datetime) -> int:
    """0 when the request may pass (and it is counted), else the seconds until it
    may: at most ``rate_per_minute`` requests in any sliding minute, per process (as
    for intake keys), on the context's clock."""
    windows: dict[int, deque[datetime]] = ctx.caches.setdefault(RATE_CACHE, {})
    with _RATE_LOCK:
        window = windows.setdefault(endpoint.id, deque())
        while window and window[0] <= now - RATE_WINDOW:
            window.popleft()
        if len(window) >= endpoint.rate_per_minute:
            return max(1, int((window[0] + RATE_WINDOW - now).total_seconds()) + 1)
        window.append(now)
        return 0


def handshake_wait(ctx: Context, endpoint: EndpointRow) -> int:
    """0 when a subscription handshake (``GET /hooks/{name}``, which compares the
    verify token) may be answered, else the seconds to wait: it counts against the
    endpoint's rate like a POST, so the token cannot be guessed at line speed."""
    return _rate_check(ctx, endpoint, ctx.clock.now())


def _problems(problems: Iterable[FieldProblem]) -> list[dict[str, str]]:
    return [{"loc": p.loc, "message": p.message} for p in problems]


def _form_value(delivery: Delivery, name: str) -> str | None:
    if not delivery.content_type.lower().startswith("application/x-www-form-urlencoded"):
        return None
    try:
        text = delivery.body.decode("utf-8")
    except UnicodeDecodeError:
        return None
    for key, value in parse_qsl(text, keep_blank_values=True):
        if key == name:
            return value
    return None


def _redirect(endpoint: EndpointRow, delivery: Delivery) -> str | None:
    if endpoint.kind != "web_to_lead":
        return None
    return allowed_return_url(_form_value(delivery, "retURL"), endpoint.return_urls)


def receive(
    ctx: Context,
    name: str,
    delivery: Delivery,
    *,
    remote_address: str | None = None,
    endpoint: EndpointRow | None = None,
) -> HookOutcome:
    """Take one hook request: the door, the raw log (committed), then the reading and
    the leads. Raises only when the raw request cannot be stored (a database error:
    the sender should retry); every other problem is an outcome with a 4xx."""
    taken = _admit(ctx, name, delivery, remote_address, endpoint or door(ctx, name))
    if isinstance(taken, _Throttled):
        _count_throttled(ctx, taken)
        return taken.outcome
    if isinstance(taken, HookOutcome):
        return taken
    # The raw request is committed before it is read (a server stopped meanwhile leaves
    # it for `baton intake retry`), together with the raw requests other senders sent at
    # the same moment: one commit for many (group commit).
    request_id = ctx.write_grouped(taken.store)
    try:
        outcome = _process_grouped(ctx, taken.reading(ctx, request_id))
    except Exception as exc:  # the raw request is kept: report it, never a 5xx
        return _kept_failed(ctx, taken, request_id, exc)
    outcome.redirect = taken.redirect
    return outcome


SMALL_BODY = 64 * 1024
"""A request with a body up to this size is checked on the API's event loop
(:func:`receive_async`); a larger one in a thread, so that parsing it (a web form's,
for its return URL: 65 ms at 256 KB, 1.6 s at 10 MB) holds no other request up."""


async def receive_async(
    ctx: Context,
    name: str,
    delivery: Delivery,
    *,
    remote_address: str | None = None,
    endpoint: EndpointRow | None = None,
) -> HookOutcome:
    """:func:`receive` awaited on the API's event loop: the same steps and writes, in
    the same transactions and groups; on SQLite both writes are awaited without a
    thread held while their groups run (a thread per request took a wake-up per write),
    and what else reads or writes the database runs in a thread."""
    if endpoint is None:
        endpoint = await run_in_threadpool(door, ctx, name)
    if len(delivery.body) <= SMALL_BODY:
        taken = _admit(ctx, name, delivery, remote_address, endpoint)
    else:  # (a large web form's body is parsed for its return URL)
        taken = await run_in_threadpool(_admit, ctx, name, delivery, remote_address, endpoint)
    if isinstance(taken, _Throttled):
        await run_in_threadpool(_count_throttled, ctx, taken)
        return taken.outcome
    if isinstance(taken, HookOutcome):
        return taken
    request_id = await ctx.write_grouped_async(taken.store)
    try:
        work = taken.reading(ctx, request_id)
        if _reading_grouped(ctx):
            outcome = await ctx.write_grouped_async(work)
        else:
            outcome = await run_in_threadpool(_write_retrying, ctx, work)
    except Exception as exc:  # the raw request is kept: report it, never a 5xx
        return await run_in_threadpool(_kept_failed, ctx, taken, request_id, exc)
    outcome.redirect = taken.redirect
    return outcome


@dataclass(frozen=True)
class _Taken:
    """A hook request past the door and its limits, to store and read."""

    endpoint: EndpointRow
    delivery: Delivery
    redirect: str | None
    raw: dict[str, Any]
    """The raw request's row (``intake_requests``)."""

    def store(self, connection: Connection) -> int:
        return int(connection.execute(_STORE_REQUEST, self.raw).scalar_one())

    def reading(self, ctx: Context, request_id: int) -> Callable[[Connection], HookOutcome]:
        """The stored request's reading, as one write's work."""

        def process(connection: Connection) -> HookOutcome:
            return _process_request_in(
                connection,
                request_id,
                self.endpoint,
                self.delivery,
                now=ctx.clock.now(),
                verify=True,
                region=ctx.settings.default_phone_region,
            )

        return process


@dataclass(frozen=True)
class _Throttled:
    """A request over its endpoint's rate: answered 429, and counted."""

    outcome: HookOutcome
    endpoint_id: int
    at: datetime


def _admit(
    ctx: Context,
    name: str,
    delivery: Delivery,
    remote_address: str | None,
    endpoint: EndpointRow | None,
) -> HookOutcome | _Throttled | _Taken:
    """The checks before anything is stored (the door, the size, the rate), without the
    database: a request to answer at once, one to count as throttled, or one taken."""
    if endpoint is None or not endpoint.active:
        return HookOutcome(404, title="Not found", detail=f"no inbound endpoint {name[:100]!r}")
    # Over the size or the rate a request is never thanked (its return URL is not read:
    # a web form's body is parsed for it, 65 ms at 256 KB).
    if len(delivery.body) > endpoint.max_body_bytes:
        return HookOutcome(
            413,
            title="Payload too large",
            detail=f"this endpoint reads bodies of at most {endpoint.max_body_bytes:,} bytes",
        )
    now = ctx.clock.now()
    retry_after = _rate_check(ctx, endpoint, now)
    if retry_after:
        return _Throttled(
            HookOutcome(
                429,
                title="Too many requests",
                detail=f"this endpoint takes at most {endpoint.rate_per_minute} requests a minute",
                retry_after=retry_after,
            ),
            endpoint.id,
            now,
        )
    redirect = _redirect(endpoint, delivery)
    raw = {
        "endpoint_id": endpoint.id,
        "received_at": delivery.received_at,
        "content_type": delivery.content_type[:200],
        "headers": _kept_headers(delivery.headers),
        "body": delivery.body,
        "remote_address": (remote_address or "")[:64] or None,
        "method": delivery.method[:10],
        "url": delivery.url[:2000] or None,
        "query": _storable(dict(list(delivery.query.items())[:HEADERS_KEPT])),
        "status": "received",
    }
    return _Taken(endpoint, delivery, redirect, raw)


def _count_throttled(ctx: Context, throttled: _Throttled) -> None:
    with ctx.write() as connection:
        connection.execute(
            update(intake_endpoints)
            .where(intake_endpoints.c.id == throttled.endpoint_id)
            .values(
                throttled_count=intake_endpoints.c.throttled_count + 1,
                last_throttled_at=throttled.at,
            )
        )


def _kept_failed(ctx: Context, taken: _Taken, request_id: int, exc: Exception) -> HookOutcome:
    """The reading of a stored request broke (a bug, or the database): the request is
    marked ``failed`` for ``baton intake retry`` and answered 202, never a 5xx."""
    log.exception(
        "intake request %s (%s) could not be processed",
        request_id,
        taken.endpoint.name,
        exc_info=exc,
    )
    with ctx.write() as connection:
        connection.execute(
            update(intake_requests)
            .where(intake_requests.c.id == request_id)
            .values(status="failed", error=f"internal error: {type(exc).__name__}")
        )
    return HookOutcome(
        202,
        request_id=request_id,
        request_status="failed",
        # No command to an anonymous sender: the log tells admins how to retry it.
        detail="stored, but it could not be processed yet",
        redirect=taken.redirect,
    )


def _kept_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The request's headers as logged: lower-cased names, at most 50, values cut to
    1,000 characters, credentials masked (a cookie or bearer token is never kept)."""
    kept: dict[str, str] = {}
    for name, value in list(headers.items())[:HEADERS_KEPT]:
        key = name.lower()
        kept[_text(key)[:200]] = MASK if _credential_header(key) else _text(value)[:1000]
    return kept


def _text(value: str) -> str:
    """Text PostgreSQL can store (JSONB refuses the NUL character)."""
    return value.replace("\x00", "\ufffd")


def _storable(value: Any, depth: int = 0) -> Any:
    """A JSON value with NUL characters replaced and nesting cut at 32 levels, so any
    submission can be stored with its item (the raw body keeps the original)."""
    if isinstance(value, str):
        return _text(value)
    if depth > 32:
        return None
    if isinstance(value, Mapping):
        return {_text(str(k)): _storable(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_storable(v, depth + 1) for v in value]
    if isinstance(value, float) and value != value:  # NaN is not JSON
        return None
    return value


ATTEMPTS = 4
"""How many times a request's processing runs when PostgreSQL keeps aborting it."""

_RETRY_LOCK = 0x62746E696E74616B  # "btnintak": the advisory lock of retried requests


_STORE_REQUEST = insert(intake_requests).returning(intake_requests.c.id)
"""A raw request's row, built once and given its values as parameters: a statement
built from its values (``.values(...)``) coerces each value and makes a cache key of
them on every call, which cost a hook request more than SQLite's work for its row."""

_SET_REQUEST = update(intake_requests).where(intake_requests.c.id == bindparam("row_id"))
"""A request's ``status``, ``error`` and ``processed_at`` (the parameters given) set."""


def _reading_grouped(ctx: Context) -> bool:
    """Whether a request's reading is one write of a group commit, as on SQLite: there
    it is committed together with the other writes of the moment (one writer holds the
    database, so a commit each made the requests wait in line for their turns); the
    work acts on the database only, so a run again in its group (when another write of
    the group fails) changes nothing there (its log lines, a honeypot's or a reader's
    crash, are then written twice). On PostgreSQL it is :func:`_write_retrying`, whose
    retried runs take an advisory lock that a group could not take for one write alone
    (see docs/benchmarks.md: grouped, two requests naming two people in crossed order
    could deadlock)."""
    return ctx.dialect == "sqlite"


def _process_grouped(ctx: Context, work: Callable[[Connection], T]) -> T:
    """Run a request's reading as one write (:func:`_reading_grouped`)."""
    if _reading_grouped(ctx):
        return ctx.write_grouped(work)
    return _write_retrying(ctx, work)


def _write_retrying(ctx: Context, work: Callable[[Connection], T]) -> T:
    """Run ``work`` (a request's processing: database work only) in one write
    transaction, again up to :data:`ATTEMPTS` runs in all when PostgreSQL aborted it,
    the runs after the first holding :data:`_RETRY_LOCK`
    (:meth:`~baton.services.context.Context.write_retrying`).

    A request's submissions are captured and recorded one after the other in one
    transaction, and each may make its lead an MQL and route it: the leads of a request
    are locked in its order, and routing locks pools and reps after each one. Two
    requests naming the same people, or a capture taking the same rows in the global
    order, can then deadlock, and PostgreSQL aborts one of them. Ordering is not
    possible here (a capture scores and routes before the next submission is read), so
    the victim, whose locks the abort released, runs again after a short random pause,
    holding an advisory lock that the other retried requests take too: retried requests
    never deadlock with each other (a trial of 12 concurrent requests of 60 submissions
    over 200 shared people left 6 of them failed with a single retry). A request still
    aborted at the last attempt is stored ``failed`` for ``baton intake retry``.

    Each run reads the active contract once however many steps ask for it (a
    submission's capture, its activity, the throw-away address check):
    :func:`~baton.store.group_commit.transaction_memo`."""

    def remembering(connection: Connection) -> T:
        with transaction_memo(connection):
            return work(connection)

    return ctx.write_retrying(remembering, attempts=ATTEMPTS, retry_lock=_RETRY_LOCK)


def _adapter(kind: str) -> ModuleType:
    from baton.integrations import adapter_for

    return adapter_for(kind)


def _process_request_in(
    connection: Connection,
    request_id: int,
    endpoint: EndpointRow,
    delivery: Delivery,
    *,
    now: datetime,
    verify: bool,
    region: str | None = None,
) -> HookOutcome:
    """Read a stored request and process its submissions (the caller's transaction)."""
    adapter = _adapter(endpoint.kind)
    config = endpoint.config

    def finish(status: str, error: str | None, outcome: HookOutcome) -> HookOutcome:
        connection.execute(
            _SET_REQUEST,
            {"row_id": request_id, "status": status, "error": error, "processed_at": now},
        )
        outcome.request_id, outcome.request_status = request_id, status
        return outcome

    check = getattr(adapter, "verify", None)
    if verify and check is not None:
        try:
            check(delivery, config)
        except SignatureRefused as exc:
            return finish(
                "refused", exc.detail, HookOutcome(401, title=exc.title, detail=exc.detail)
            )
        except Exception as exc:  # a garbage request the check could not even parse
            log.warning("intake %s: verify crashed: %r", endpoint.name, exc)
            detail = "the request's signature cannot be checked"
            return finish("refused", detail, HookOutcome(401, title="Unauthorized", detail=detail))
    try:
        items = _read_items(adapter, delivery, config)
    except PayloadRefused as exc:
        errors = _problems(exc.problems)
        return finish(
            "failed",
            json.dumps({"detail": exc.detail, "errors": errors}),
            HookOutcome(422, title="Invalid input", detail=exc.detail, errors=errors),
        )
    except RecursionError:  # nesting no reader takes: the sender's fault, no trace to log
        detail = "the body cannot be read: it is nested too deeply"
        errors = [{"loc": "body", "message": "nested too deeply to read"}]
        return finish(
            "failed",
            json.dumps({"detail": detail, "errors": errors}),
            HookOutcome(422, title="Invalid input", detail=detail, errors=errors),
        )
    except Exception as exc:  # an adapter that did not expect this body
        log.warning("intake %s: read crashed: %r", endpoint.name, exc, exc_info=True)
        detail = "the body cannot be read by this endpoint's kind"
        errors = [{"loc": "body", "message": f"unreadable ({type(exc).__name__})"}]
        return finish(
            "failed",
            json.dumps({"detail": detail, "errors": errors}),
            HookOutcome(422, title="Invalid input", detail=detail, errors=errors),
        )
    if endpoint.honeypot_field and honeypot_filled(
        delivery.body, delivery.content_type, endpoint.honeypot_field
    ):
        log.info("intake %s: request %s refused (honeypot filled)", endpoint.name, request_id)
        detail = "the submission was refused by the spam check"
        for position, item in enumerate(items):
            connection.execute(
                insert(intake_items).values(
                    request_id=request_id,
                    endpoint_id=endpoint.id,
                    position=position,
                    upstream_id=None,
                    status="refused",
                    item=item_json(item),
                    error=[{"loc": endpoint.honeypot_field, "message": "honeypot field filled"}],
                    attempts=0,
                    processed_at=now,
                )
            )
        # The bot is answered as if its post was taken (a 4xx naming the field would
        # teach it which field to leave empty); the log says what really happened.
        answer = finish(
            "refused",
            f"honeypot field {endpoint.honeypot_field!r} filled",
            HookOutcome(200, detail=detail, items=[ItemOutcome(None, "processed") for _ in items]),
        )
        answer.request_status, answer.detail = "processed", None
        return answer
    if not items:
        return finish("processed", None, HookOutcome(200))
    actor = hook_principal(endpoint)
    outcomes = [
        _place_and_process_in(
            connection,
            request_id,
            endpoint,
            position,
            item,
            now=now,
            actor=actor,
            received_at=delivery.received_at,
            region=region,
        )
        for position, item in enumerate(items)
    ]
    statuses = {o.status for o in outcomes}
    if statuses <= {"processed", "duplicate", "awaiting_fetch"}:
        # Nothing failed: the status follows from the outcomes (no read back).
        status = _request_status(statuses)
        connection.execute(
            _SET_REQUEST,
            {"row_id": request_id, "status": status, "error": None, "processed_at": now},
        )
    else:
        status = settle_request_in(connection, request_id, now=now)
    outcome = HookOutcome(_http_status(outcomes), request_id=request_id, request_status=status)
    outcome.items = outcomes
    if outcome.status == 422:
        failed = [(i, o) for i, o in enumerate(outcomes) if o.status == "failed"]
        outcome.title = "Invalid input"
        # The sender is not told how Baton is set up (the mapping, `baton intake
        # retry`): the intake log keeps each error's full text for admins.
        outcome.detail = (
            "the submission was stored but could not be processed; each error names a "
            "field to correct"
        )
        many = len(outcomes) > 1
        outcome.errors = [
            {"loc": f"[{i}].{e['loc']}" if many else e["loc"], "message": e["message"]}
            for i, o in failed
            for e in o.answer_errors
        ]
        if all(e["message"] == NOT_PROCESSED_MESSAGE for e in outcome.errors):
            outcome.detail = "the submission was stored but could not be processed"
    return outcome


_NEW_ITEM = insert(intake_items).returning(intake_items.c.id)
"""A submission's row (its values as the parameters; see :data:`_STORE_REQUEST`)."""


_ITEM_TRIED = (
    update(intake_items)
    .where(intake_items.c.id == bindparam("row_id"))
    .values(attempts=intake_items.c.attempts + 1)
)
"""A processed submission's row: one attempt more, and the columns given."""


MAX_ITEMS_PER_REQUEST = 1000
"""Submissions one request may carry (HubSpot batches 100, Meta a few): a body of
100,000 tiny events inside the size limit is refused whole, not processed for minutes
in one transaction."""


def _read_items(adapter: ModuleType, delivery: Delivery, config: EndpointConfig) -> list[Any]:
    items = list(adapter.read(delivery, config))
    if len(items) > MAX_ITEMS_PER_REQUEST:
        raise PayloadRefused(
            "too many submissions in one request",
            [FieldProblem("body", f"at most {MAX_ITEMS_PER_REQUEST:,} per request")],
        )
    return items


def _http_status(outcomes: Sequence[ItemOutcome]) -> int:
    statuses = {o.status for o in outcomes}
    if statuses <= {"failed"}:
        return 422
    if "awaiting_fetch" in statuses or "pending" in statuses:
        return 202
    return 200


def item_json(item: IntakeItem) -> dict[str, Any]:
    """An item as stored in ``intake_items.item`` (the raw part is left out: the raw
    request is in the log)."""
    return {
        "upstream_id": item.upstream_id,
        "lead": _storable(item.lead),
        "event_type": item.event_type,
        "occurred_at": item.occurred_at.isoformat() if item.occurred_at else None,
        "properties": _storable(item.properties),
        "fetch": (
            {"platform": item.fetch.platform, "object_id": item.fetch.object_id}
            if item.fetch
            else None
        ),
    }


def item_from_json(data: Mapping[str, Any]) -> IntakeItem:
    """The item stored by :func:`item_json` (the fetch worker reads it back)."""
    fetch = data.get("fetch")
    occurred = data.get("occurred_at")
    return IntakeItem(
        upstream_id=data.get("upstream_id"),
        lead=dict(data.get("lead") or {}),
        event_type=data.get("event_type"),
        occurred_at=datetime.fromisoformat(occurred) if occurred else None,
        properties=dict(data.get("properties") or {}),
        fetch=FetchRequest(fetch["platform"], str(fetch["object_id"])) if fetch else None,
    )


def _place_and_process_in(
    connection: Connection,
    request_id: int,
    endpoint: EndpointRow,
    position: int,
    item: IntakeItem,
    *,
    now: datetime,
    actor: Principal,
    received_at: datetime,
    row_id: int | None = None,
    region: str | None = None,
) -> ItemOutcome:
    """Give a submission its row in the request (or reuse ``row_id``), recognize a
    replay (same upstream id at this endpoint), and process it.

    A replay of a submission still to be done processes the first row again with this
    content; if that fails again, this request's row is ``failed`` with the errors (and
    ``duplicate_of`` the first), so the request's status says what the first run's
    said rather than ``processed``."""
    base = {
        "request_id": request_id,
        "endpoint_id": endpoint.id,
        "position": position,
        "item": item_json(item),
    }
    first: RowMapping | None = None
    fresh = row_id is None
    if item.upstream_id is not None:
        item = replace(item, upstream_id=_text(str(item.upstream_id))[:300])
    if item.upstream_id is not None and row_id is None:
        # The common case first: a new upstream id (one statement); a taken one is a
        # replay (or another request took it just now).
        row_id = connection.execute(
            new_row_id_of(intake_items, connection.dialect.name),
            {**base, "upstream_id": item.upstream_id, "status": "pending", "attempts": 0},
        ).scalar()
        if row_id is None:
            first = _by_upstream(connection, endpoint.id, item.upstream_id)
    elif item.upstream_id is not None:
        first = _by_upstream(connection, endpoint.id, item.upstream_id, not_id=row_id)
        if first is None:
            connection.execute(
                update(intake_items)
                .where(intake_items.c.id == row_id)
                .values(upstream_id=item.upstream_id, item=base["item"])
            )
    elif row_id is None:
        row_id = connection.execute(
            _NEW_ITEM, {**base, "upstream_id": None, "status": "pending", "attempts": 0}
        ).scalar_one()
    if first is None:
        assert row_id is not None
        return process_item_in(
            connection,
            row_id,
            item,
            endpoint=endpoint,
            now=now,
            actor=actor,
            settle=False,
            received_at=received_at,
            default_region=region,
            _new_in_request=request_id if fresh else None,
        )
    # A replay: answered as the first time was, unless that one is still to be done.
    outcome: ItemOutcome | None = None
    again = ("failed", "pending") if item.fetch else ("failed", "pending", "awaiting_fetch")
    if first["status"] in again:
        # A failed one is processed again with this content; one awaiting a fetch is
        # completed by a full record sent directly (a Meta lead relayed by a server).
        outcome = process_item_in(
            connection,
            int(first["id"]),
            item,
            endpoint=endpoint,
            now=now,
            actor=actor,
            settle=True,
            received_at=received_at,
            default_region=region,
        )
        first = (
            connection.execute(select(intake_items).where(intake_items.c.id == first["id"]))
            .mappings()
            .one()
        )
    values = {
        "upstream_id": None,
        "status": "duplicate",
        "duplicate_of": int(first["id"]),
        "lead_id": first["lead_id"],
        "activity_id": first["activity_id"],
        "processed_at": now,
        "error": None,
    }
    if outcome is not None and outcome.status == "failed":
        # Failed again: this request failed too (its status, the log and a retry say
        # so), not a duplicate of something done; a retry of it processes the first.
        values.update(status="failed", error=outcome.errors)
    if row_id is None:
        row_id = connection.execute(
            insert(intake_items).values(**base, **values, attempts=0).returning(intake_items.c.id)
        ).scalar_one()
    else:
        connection.execute(update(intake_items).where(intake_items.c.id == row_id).values(**values))
    if outcome is not None:
        outcome.duplicate_of = None
        return outcome
    return ItemOutcome(
        item_id=row_id,
        status="duplicate",
        lead_id=first["lead_id"],
        activity_id=first["activity_id"],
        duplicate_of=int(first["id"]),
    )


def _by_upstream(
    connection: Connection, endpoint_id: int, upstream_id: str, not_id: int | None = None
) -> RowMapping | None:
    query = select(intake_items).where(
        intake_items.c.endpoint_id == endpoint_id, intake_items.c.upstream_id == upstream_id
    )
    if not_id is not None:
        query = query.where(intake_items.c.id != not_id)
    return connection.execute(query.with_for_update()).mappings().first()


class _ItemFailed(Exception):
    """A submission's field problems: ``problems`` for the intake log (with hints for
    admins: the mapping, a command), ``public`` for the sender's answer (the same
    fields without them; ``problems`` when there is nothing to hide)."""

    def __init__(
        self, problems: list[FieldProblem], public: list[FieldProblem] | None = None
    ) -> None:
        super().__init__(problems)
        self.problems = problems
        self.public = problems if public is None else public


def _idempotency_key(endpoint: EndpointRow, upstream_id: str | None, item_id: int) -> str:
    key = (
        f"hook:{endpoint.id}:{upstream_id}" if upstream_id else f"hook:{endpoint.id}:item:{item_id}"
    )
    if len(key) > 200:
        key = f"hook:{endpoint.id}:sha256:{hashlib.sha256(key.encode()).hexdigest()}"
    return key


def process_item_in(
    connection: Connection,
    item_id: int,
    item: IntakeItem,
    *,
    endpoint: EndpointRow,
    now: datetime,
    actor: Principal | None = None,
    settle: bool = True,
    received_at: datetime | None = None,
    default_region: str | None = None,
    _new_in_request: int | None = None,
) -> ItemOutcome:
    """Process one submission whose row exists: the one path of a hook request, a
    retry and the fetch worker (which passes the item completed from the platform).

    A processed row is answered as it is (nothing twice). An item still needing a
    fetch is left ``awaiting_fetch`` (due now). Otherwise the lead is validated and
    captured (its source and campaign those of the endpoint unless the item names
    them; a throw-away email domain tags it ``disposable-email``) and the item's
    activity is recorded (idempotency key from endpoint + upstream id; it happened
    at ``occurred_at``, else when the request was received). Field errors leave the row
    ``failed`` with them (to retry after a mapping fix). ``item.lead`` may hold a
    ``lead_id`` (an email reply threaded to a lead): that lead gets the activity and
    no capture happens. ``settle`` updates the request's status afterwards."""
    actor = actor or hook_principal(endpoint)
    if _new_in_request is not None and received_at is not None:
        # Just inserted by this transaction: pending, nothing to read back.
        row: Mapping[str, Any] = {"request_id": _new_in_request, "request_received_at": received_at}
    else:
        found = (
            connection.execute(
                select(intake_items, intake_requests.c.received_at.label("request_received_at"))
                .join(intake_requests, intake_requests.c.id == intake_items.c.request_id)
                .where(intake_items.c.id == item_id)
                .with_for_update(of=intake_items)
            )
            .mappings()
            .first()
        )
        if found is None:
            raise NotFound(f"intake item {item_id} does not exist")
        row = cast(Mapping[str, Any], found)
        if row["status"] in DONE:
            return ItemOutcome(
                item_id=item_id,
                status=row["status"],
                lead_id=row["lead_id"],
                activity_id=row["activity_id"],
                duplicate_of=row["duplicate_of"],
            )
    received = received_at or row["request_received_at"] or now
    values: dict[str, Any] = {"item": item_json(item)}  # and one attempt more
    if item.fetch is not None:
        values.update(status="awaiting_fetch", next_attempt_at=now, error=None)
        outcome = ItemOutcome(item_id=item_id, status="awaiting_fetch")
    else:
        try:
            with _savepoint(connection):
                lead_id, activity_id = _apply_in(
                    connection,
                    item,
                    endpoint,
                    item_id,
                    now=now,
                    actor=actor,
                    received_at=received,
                    default_region=default_region,
                )
        except _ItemFailed as failed:
            errors = _problems(failed.problems)
            values.update(status="failed", error=errors, processed_at=now, next_attempt_at=None)
            outcome = ItemOutcome(
                item_id=item_id,
                status="failed",
                errors=errors,
                public_errors=_problems(failed.public),
            )
        except BatonError as exc:
            # Not the sender's fields (a lead changed concurrently, one named by an
            # email thread gone): the log keeps the full text, which may name an
            # internal id or a command; the sender reads a plain word.
            problems = exc.problems if isinstance(exc, ValidationFailed) else []
            errors = _problems(problems) or [{"loc": "(item)", "message": exc.detail}]
            values.update(status="failed", error=errors, processed_at=now, next_attempt_at=None)
            outcome = ItemOutcome(
                item_id=item_id,
                status="failed",
                errors=errors,
                public_errors=_problems(problems) or _problems([_NOT_PROCESSED_PROBLEM]),
            )
        else:
            values.update(
                status="processed",
                error=None,
                lead_id=lead_id,
                activity_id=activity_id,
                processed_at=now,
                next_attempt_at=None,
                claimed_until=None,
                claim_token=None,
            )
            outcome = ItemOutcome(
                item_id=item_id, status="processed", lead_id=lead_id, activity_id=activity_id
            )
    connection.execute(_ITEM_TRIED, {"row_id": item_id, **values})
    if settle:
        settle_request_in(connection, int(row["request_id"]), now=now)
    return outcome


@contextlib.contextmanager
def _savepoint(connection: Connection) -> Iterator[None]:
    """A submission's savepoint: rolled back when it raises, and then the memo of the
    transaction (the active contract read once) emptied, since on PostgreSQL the
    rollback releases the share lock a read inside it took
    (:func:`~baton.store.group_commit.forget_memo`)."""
    try:
        with connection.begin_nested():
            yield
    except BaseException:
        forget_memo(connection)
        raise


def _apply_in(
    connection: Connection,
    item: IntakeItem,
    endpoint: EndpointRow,
    item_id: int,
    *,
    now: datetime,
    actor: Principal,
    received_at: datetime,
    default_region: str | None = None,
) -> tuple[int | None, int | None]:
    if endpoint.kind == "email":
        # Replies, bounces and automatic mail need the database (outbox -> lead).
        from baton.services.email_threads import resolve_email_item_in

        decision = resolve_email_item_in(connection, item, now=now)
        if decision.handled:  # a bounce, an auto-reply, a rep's mail: nothing recorded
            return decision.lead_id, None
        if decision.lead_id is not None:
            item = replace(item, lead={"lead_id": decision.lead_id})
    lead = dict(item.lead)
    hint = lead.pop("lead_id", None)
    if endpoint.kind != "email":
        # Only the email threading above names a lead by id; from anywhere else an id
        # would let a sender write onto any lead (an adapter never puts one there).
        hint = None
    email: str | None = None
    source: str | None = None
    campaign: str | None = None
    if hint is not None:
        try:
            lead_id = int(hint)
        except (TypeError, ValueError):
            raise _ItemFailed([FieldProblem("lead_id", "not a lead id")]) from None
        lock_lead(connection, lead_id)
    else:
        if not lead.get("source"):
            lead["source"] = endpoint.source
        if not lead.get("campaign") and endpoint.campaign:
            lead["campaign"] = endpoint.campaign
        try:
            context: dict[str, Any] = {"now": now}
            if default_region:
                context["default_region"] = default_region
            data = LeadCreate.model_validate(lead, context=context)
        except ValidationError as exc:
            pairs = [_lead_problem(endpoint, loc, message) for loc, message in describe(exc)]
            raise _ItemFailed([p for p, _ in pairs], [p for _, p in pairs]) from None
        if data.email is None and data.phone is None and data.external_id is None:
            raise _ItemFailed(
                [FieldProblem("email", f"{NO_CONTACT} (check the mapping)")],
                [FieldProblem("email", NO_CONTACT)],
            )
        lead_id = capture_lead_in(connection, data, actor=actor, now=now).lead_id
        email, source, campaign = data.email, data.source, data.campaign
    if email is not None and _disposable(connection, email):
        _tag_in(connection, lead_id, DISPOSABLE_TAG, actor=actor, now=now)
    if not item.event_type:
        return lead_id, None
    at = item.occurred_at
    if at is not None and at.tzinfo is not None and at > now + MAX_FUTURE_SKEW:
        logged, public = _future_problem(endpoint, at)
        raise _ItemFailed([logged], [public])
    properties = dict(item.properties)
    properties.setdefault("intake_endpoint", endpoint.name)
    try:
        event = ActivityCreate.model_validate(
            {
                "lead_id": lead_id,
                "type": item.event_type,
                "occurred_at": item.occurred_at or received_at,
                "properties": properties,
                "idempotency_key": _idempotency_key(endpoint, item.upstream_id, item_id),
                "source": source,
                "campaign": campaign,
            },
            context={"now": now},
        )
    except ValidationError as exc:
        raise _ItemFailed(
            [FieldProblem(_activity_loc(loc), message) for loc, message in describe(exc)]
        ) from None
    # The lead was resolved here, not named by the sender: record by its id, as the
    # endpoint (an intake principal may not name leads by id itself).
    report = ingest_validated_in(
        connection, [(0, event)], actor=replace(actor, kind="system"), now=now, return_ids=True
    )
    if report.errors:
        kept = [FieldProblem(e.field, e.message) for e in report.errors]
        # The lead was resolved here, not named by the sender: its id is not theirs.
        told = [p if p.loc != "lead_id" else _NOT_PROCESSED_PROBLEM for p in kept]
        raise _ItemFailed(kept, told)
    return lead_id, report.activity_ids[0]


NOT_PROCESSED_MESSAGE = "the submission could not be processed; please try again"
"""What an anonymous sender is told when a submission failed for a reason that is not
one of its fields (the intake log keeps the reason)."""
_NOT_PROCESSED_PROBLEM = FieldProblem("(item)", NOT_PROCESSED_MESSAGE)


NO_CONTACT = "the submission names no email or phone number"
"""What a sender is told when nothing in the submission reaches a person (the log adds
"check the mapping"; the model's own words name ``external_id``, a mapping target)."""


def _lead_problem(
    endpoint: EndpointRow, loc: str, message: str
) -> tuple[FieldProblem, FieldProblem]:
    """A lead field's problem for the intake log, naming where the mapping reads it
    from, and for the sender, the same field without the mapping: an anonymous sender
    (a web form's visitor) is not told how the endpoint is set up."""
    if loc == "(row)":
        return FieldProblem("email", f"{message} (check the mapping)"), FieldProblem(
            "email", NO_CONTACT
        )
    path = endpoint.mapping.get(loc) if endpoint.kind == "generic" else None
    if isinstance(path, str):
        return FieldProblem(loc, f"{message} (mapped from {path})"), FieldProblem(loc, message)
    return FieldProblem(loc, message), FieldProblem(loc, message)


def _future_problem(
    endpoint: EndpointRow, occurred_at: datetime
) -> tuple[FieldProblem, FieldProblem]:
    """A submission dated ahead of this server's clock, named by the payload field the
    mapping reads it from: for the intake log, and for the sender. Neither a retry nor a
    mapping fix mends a sender's clock, so the log's message says what to check and
    which change lets a retry succeed; the sender's says what it can check (its field,
    its clock and zone), without the mapping or the command."""
    moment = occurred_at.astimezone(UTC).isoformat().replace("+00:00", "Z")
    minutes = MAX_FUTURE_SKEW.seconds // 60
    ahead = f"{moment} is more than {minutes} minutes ahead of this server's clock"
    path = endpoint.mapping.get("occurred_at") if endpoint.kind == "generic" else None
    if not isinstance(path, str) and occurred_at.year > LAST_YEAR:
        # No clock is that far off: a wrong year (the generic adapter refuses one itself).
        outside = FieldProblem(
            "occurred_at",
            f"the time the {endpoint.kind} platform sent, {moment}, is outside {FIRST_YEAR} "
            f"to {LAST_YEAR}, the times Baton keeps: check what the platform sends there",
        )
        return outside, outside
    if not isinstance(path, str):
        sent = f"the time the {endpoint.kind} platform sent, {ahead}"
        return FieldProblem(
            "occurred_at",
            f"{sent}: check this server's clock (a retry, baton intake retry, reads it "
            "again once the clock is right)",
        ), FieldProblem("occurred_at", sent)
    check = (
        f"Check that {path} says when the submission was made (not, say, a meeting's "
        "start), the sender's clock and time zone (a time without one is read as UTC)"
    )
    return FieldProblem(
        path,
        f"{ahead} (read into occurred_at by the mapping). {check}, and this server's "
        "clock. Point occurred_at at the right field, or remove it to date submissions "
        "when received, then retry (baton intake retry)",
    ), FieldProblem(path, f"{ahead}. {check}")


def _activity_loc(loc: str) -> str:
    return {"type": "event_type"}.get(loc, loc)


def _disposable(connection: Connection, email: str) -> bool:
    """Whether the address is at a throw-away mailbox provider: a well-known one, or
    one the active contract lists (``scoring.disposable_domains``)."""
    try:
        domain = email_domain(email.lower())
    except Exception:
        return False
    if domain in DISPOSABLE_DOMAINS:
        return True
    active = active_contract_in(connection, share_lock=False)
    return active is not None and domain in active[1].scoring.disposable_domains


def _tag_in(
    connection: Connection, lead_id: int, tag: str, *, actor: Principal, now: datetime
) -> None:
    added = connection.execute(
        insert_ignoring_conflicts(connection, lead_tags)
        .values(lead_id=lead_id, tag=tag, added_by=actor.name, added_at=now)
        .returning(lead_tags.c.tag)
    ).first()
    if added is not None:
        connection.execute(
            insert(tag_events).values(
                lead_id=lead_id, tag=tag, action="added", actor=actor.name, occurred_at=now
            )
        )


def _current_error(connection: Connection, request_id: int) -> str | None:
    return connection.execute(
        select(intake_requests.c.error).where(intake_requests.c.id == request_id)
    ).scalar()


def _request_status(statuses: set[str]) -> str:
    if statuses <= {"refused"}:
        return "refused"
    if "failed" in statuses:
        return "failed" if statuses == {"failed"} else "partial"
    if statuses & {"pending", "awaiting_fetch"}:
        return "received"
    return "processed"


def settle_request_in(connection: Connection, request_id: int, *, now: datetime) -> str:
    """The request's status from its items: processed (all done), partial (some
    failed), failed (all failed), received (some still waiting for a fetch)."""
    statuses = set(
        connection.execute(
            select(intake_items.c.status).where(intake_items.c.request_id == request_id).distinct()
        ).scalars()
    )
    if not statuses:
        return str(
            connection.execute(
                select(intake_requests.c.status).where(intake_requests.c.id == request_id)
            ).scalar()
        )
    status = _request_status(statuses)
    error = None
    if status in ("failed", "partial"):
        failed = list(
            connection.execute(
                select(intake_items.c.position, intake_items.c.error)
                .where(intake_items.c.request_id == request_id, intake_items.c.status == "failed")
                .order_by(intake_items.c.position)
                .limit(3)
            )
        )
        errors = [
            {"loc": f"[{position}].{e.get('loc')}", "message": str(e.get("message"))}
            for position, found in failed
            for e in (found or [])[:3]
        ]
        error = json.dumps({"detail": "submission(s) failed", "errors": errors})
    elif status == "refused":
        error = _current_error(connection, request_id)
    connection.execute(
        update(intake_requests)
        .where(intake_requests.c.id == request_id)
        .values(status=status, error=error, processed_at=now)
    )
    return status


# --- the intake log ---------------------------------------------------------------


@dataclass(frozen=True)
class RequestSummary:
    """One request of the intake log."""

    id: int
    endpoint: str
    kind: str
    received_at: datetime
    content_type: str
    size: int
    remote_address: str | None
    status: str
    error: str | None
    items: int
    failed_items: int
    processed_at: datetime | None


@dataclass(frozen=True)
class ItemView:
    """One submission of a logged request, with its errors."""

    id: int
    position: int
    upstream_id: str | None
    status: str
    lead_id: int | None
    activity_id: int | None
    duplicate_of: int | None
    attempts: int
    errors: list[dict[str, str]]
    item: dict[str, Any] | None
    next_attempt_at: datetime | None
    processed_at: datetime | None


@dataclass(frozen=True)
class RequestDetail:
    """A logged request in full: its headers, the raw body (as text when it is UTF-8,
    else base64) and its submissions."""

    summary: RequestSummary
    method: str | None
    url: str | None
    headers: dict[str, str]
    query: dict[str, str]
    body_text: str | None
    body_base64: str | None
    items: list[ItemView]


def _summaries(connection: Connection, query: Any) -> list[RequestSummary]:
    rows = list(connection.execute(query).mappings())
    ids = [int(r["id"]) for r in rows]
    counts: dict[int, tuple[int, int]] = {}
    if ids:
        for request_id, total, failed in connection.execute(
            select(
                intake_items.c.request_id,
                func.count(),
                func.sum(case((intake_items.c.status == "failed", 1), else_=0)),
            )
            .where(intake_items.c.request_id.in_(ids))
            .group_by(intake_items.c.request_id)
        ):
            counts[int(request_id)] = (int(total), int(failed or 0))
    return [
        RequestSummary(
            id=int(r["id"]),
            endpoint=r["endpoint"],
            kind=r["kind"],
            received_at=r["received_at"],
            content_type=r["content_type"],
            size=int(r["size"] or 0),
            remote_address=r["remote_address"],
            status=r["status"],
            error=r["error"],
            items=counts.get(int(r["id"]), (0, 0))[0],
            failed_items=counts.get(int(r["id"]), (0, 0))[1],
            processed_at=r["processed_at"],
        )
        for r in rows
    ]


def _log_query() -> Any:
    return select(
        intake_requests.c.id,
        intake_endpoints.c.name.label("endpoint"),
        intake_endpoints.c.kind,
        intake_requests.c.received_at,
        intake_requests.c.content_type,
        func.length(intake_requests.c.body).label("size"),
        intake_requests.c.remote_address,
        intake_requests.c.status,
        intake_requests.c.error,
        intake_requests.c.processed_at,
    ).join(intake_endpoints, intake_endpoints.c.id == intake_requests.c.endpoint_id)


def intake_log(
    ctx: Context,
    *,
    actor: Principal,
    status: str | None = None,
    endpoint: str | None = None,
    limit: int = 50,
    before: int | None = None,
) -> list[RequestSummary]:
    """The newest requests first; ``status`` (received, processed, partial, failed,
    refused) and ``endpoint`` narrow it, ``before`` (a request id) pages on."""
    allowed(actor, Action.VIEW_INTAKE_LOG)
    if status is not None and status not in REQUEST_STATUSES:
        raise ValidationFailed(
            "unknown status",
            [FieldProblem("status", f"one of {', '.join(REQUEST_STATUSES)}")],
        )
    query = _log_query().order_by(intake_requests.c.id.desc()).limit(max(1, min(limit, MAX_LOG)))
    if status is not None:
        query = query.where(intake_requests.c.status == status)
    if endpoint is not None:
        query = query.where(intake_endpoints.c.name == endpoint.strip().lower())
    if before is not None:
        query = query.where(intake_requests.c.id < before)
    with ctx.read() as connection:
        return _summaries(connection, query)


def show_request(ctx: Context, request_id: int, *, actor: Principal) -> RequestDetail:
    """One logged request with its raw body and its submissions."""
    allowed(actor, Action.VIEW_INTAKE_LOG)
    with ctx.read() as connection:
        found = _summaries(connection, _log_query().where(intake_requests.c.id == request_id))
        if not found:
            raise NotFound(f"intake request {request_id} does not exist")
        raw = connection.execute(
            select(
                intake_requests.c.body,
                intake_requests.c.headers,
                intake_requests.c.query,
                intake_requests.c.method,
                intake_requests.c.url,
            ).where(intake_requests.c.id == request_id)
        ).one()
        items = [
            ItemView(
                id=int(r["id"]),
                position=int(r["position"]),
                upstream_id=r["upstream_id"],
                status=r["status"],
                lead_id=r["lead_id"],
                activity_id=r["activity_id"],
                duplicate_of=r["duplicate_of"],
                attempts=int(r["attempts"] or 0),
                errors=list(r["error"] or []),
                item=r["item"],
                next_attempt_at=r["next_attempt_at"],
                processed_at=r["processed_at"],
            )
            for r in connection.execute(
                select(intake_items)
                .where(intake_items.c.request_id == request_id)
                .order_by(intake_items.c.position, intake_items.c.id)
            ).mappings()
        ]
        endpoint = endpoint_in(connection, name=found[0].endpoint)
    hidden = _secret_forms(endpoint)
    body = _mask_bytes(bytes(raw.body), hidden)
    try:
        text: str | None = body.decode("utf-8")
        encoded = None
    except UnicodeDecodeError:
        text, encoded = None, base64.b64encode(body).decode()
    summary = found[0]
    if summary.error is not None:
        summary = replace(summary, error=_mask_text(summary.error, hidden))
    return RequestDetail(
        summary=summary,
        method=raw.method,
        url=None if raw.url is None else _mask_text(raw.url, hidden),
        headers={
            k: "***" if _credential_header(k) else _mask_text(str(v), hidden)
            for k, v in dict(raw.headers or {}).items()
        },
        query={k: _mask_text(str(v), hidden) for k, v in dict(raw.query or {}).items()},
        body_text=text,
        body_base64=encoded,
        items=[replace(i, item=_mask_json(i.item, hidden)) for i in items],
    )


MASK = "***"
CREDENTIAL_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "x-baton-hook-key",
        "x-baton-intake-key",
    }
)
"""Headers whose value is a credential: never kept, never shown (a platform's HMAC
signature header is not a secret and is shown)."""


def _credential_header(name: str) -> bool:
    key = name.lower()
    return key in CREDENTIAL_HEADERS or key.endswith(("-api-key", "-token", "-auth-key"))


def _secret_forms(endpoint: EndpointRow | None) -> list[str]:
    """The endpoint's secret and fetch token as they can appear in a logged request:
    as is, URL-encoded (a form field, a query) and JSON-escaped; longest first."""
    if endpoint is None:
        return []
    from urllib.parse import quote, quote_plus

    forms: set[str] = set()
    for value in (endpoint.secret, endpoint.fetch_token):
        if value and len(value) >= 4:
            forms.update({value, quote(value, safe=""), quote_plus(value), json.dumps(value)[1:-1]})
    return sorted(forms, key=len, reverse=True)


def _mask_text(text: str, hidden: Sequence[str]) -> str:
    for value in hidden:
        text = text.replace(value, MASK)
    return text


def _mask_bytes(body: bytes, hidden: Sequence[str]) -> bytes:
    for value in hidden:
        body = body.replace(value.encode("utf-8"), MASK.encode())
    return body


def _mask_json(value: Any, hidden: Sequence[str]) -> Any:
    if not hidden or value is None:
        return value
    if isinstance(value, str):
        return _mask_text(value, hidden)
    if isinstance(value, Mapping):
        return {_mask_text(str(k), hidden): _mask_json(v, hidden) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask_json(v, hidden) for v in value]
    return value


@dataclass
class RetryReport:
    """What a retry did: requests read again, submissions now processed, those still
    failing (with their errors in the log), and requests it left alone."""

    requests: int = 0
    processed: int = 0
    failed: int = 0
    awaiting_fetch: int = 0
    skipped: list[str] = field(default_factory=list)
    request_ids: list[int] = field(default_factory=list)


RETRYABLE = ("failed", "partial", "received")
STALE = timedelta(minutes=5)
"""A request still unread after this long was interrupted (not in progress)."""


def retry(
    ctx: Context,
    *,
    actor: Principal,
    request_ids: Sequence[int] | None = None,
    endpoint: str | None = None,
    all_failed: bool = False,
    limit: int = 10_000,
) -> RetryReport:
    """Read failed requests again with their endpoint's *current* mapping and process
    the submissions that failed (processed ones are never done twice). Choose the
    requests by id, by endpoint (its failed ones), or every failed one. Each request
    is one transaction. Requests refused at the door (a bad signature, the honeypot)
    are not retried."""
    allowed(actor, Action.MANAGE_INTAKE)
    if not request_ids and endpoint is None and not all_failed:
        raise ValidationFailed(
            "say which requests to retry",
            [FieldProblem("request_ids", "give request ids, an endpoint, or all failed")],
        )
    query = select(intake_requests.c.id, intake_requests.c.status).order_by(intake_requests.c.id)
    if request_ids:
        query = query.where(intake_requests.c.id.in_(sorted(set(request_ids))))
    else:
        # Failed ones, and any left unread (the server stopped between storing and
        # reading it) for more than STALE.
        unread = and_(
            intake_requests.c.status == "received",
            intake_requests.c.received_at < ctx.clock.now() - STALE,
            ~exists().where(intake_items.c.request_id == intake_requests.c.id),
        )
        query = query.where(or_(intake_requests.c.status.in_(("failed", "partial")), unread))
    if endpoint is not None:
        query = query.join(
            intake_endpoints, intake_endpoints.c.id == intake_requests.c.endpoint_id
        ).where(intake_endpoints.c.name == endpoint.strip().lower())
    with ctx.read() as connection:
        chosen = list(connection.execute(query.limit(limit)))
    report = RetryReport()
    if request_ids:
        missing = set(request_ids) - {int(r.id) for r in chosen}
        if missing:
            raise NotFound(f"intake request {min(missing)} does not exist")
    for request_id, status in chosen:
        if status not in RETRYABLE:
            report.skipped.append(f"request {request_id}: {status}")
            continue

        def again(connection: Connection, request_id: int = int(request_id)) -> RetryReport:
            part = RetryReport()  # a fresh one per run: a run aborted adds nothing
            _retry_in(
                connection,
                request_id,
                now=ctx.clock.now(),
                report=part,
                region=ctx.settings.default_phone_region,
            )
            return part

        part = _write_retrying(ctx, again)
        report.requests += part.requests
        report.processed += part.processed
        report.failed += part.failed
        report.awaiting_fetch += part.awaiting_fetch
        report.skipped.extend(part.skipped)
        report.request_ids.extend(part.request_ids)
    return report


def _retry_in(
    connection: Connection,
    request_id: int,
    *,
    now: datetime,
    report: RetryReport,
    region: str | None = None,
) -> None:
    stored = (
        connection.execute(
            select(intake_requests).where(intake_requests.c.id == request_id).with_for_update()
        )
        .mappings()
        .one()
    )
    endpoint = endpoint_in(connection, endpoint_id=int(stored["endpoint_id"]))
    assert endpoint is not None
    delivery = Delivery(
        body=bytes(stored["body"]),
        content_type=stored["content_type"],
        headers=dict(stored["headers"] or {}),
        query=dict(stored["query"] or {}),
        received_at=stored["received_at"],
        method=stored["method"] or "POST",
        url=stored["url"] or "",
    )
    report.requests += 1
    report.request_ids.append(request_id)
    rows = {
        int(r["position"]): r
        for r in connection.execute(
            select(intake_items).where(intake_items.c.request_id == request_id)
        ).mappings()
    }
    if not rows:
        # Never read (or the reading failed): read and process it as on arrival,
        # without the signature check it passed then (a signed timestamp has expired).
        answer = _process_request_in(
            connection, request_id, endpoint, delivery, now=now, verify=False, region=region
        )
        outcomes = answer.items
        if answer.is_problem and not outcomes:
            report.failed += 1
    else:
        adapter = _adapter(endpoint.kind)
        try:
            items = _read_items(adapter, delivery, endpoint.config)
        except PayloadRefused as exc:
            connection.execute(
                update(intake_requests)
                .where(intake_requests.c.id == request_id)
                .values(
                    status="failed",
                    error=json.dumps({"detail": exc.detail, "errors": _problems(exc.problems)}),
                    processed_at=now,
                )
            )
            report.failed += 1
            return
        actor = hook_principal(endpoint)
        outcomes = []
        for position, item in enumerate(items):
            row = rows.get(position)
            if row is not None and row["status"] not in ("failed", "pending"):
                continue
            outcomes.append(
                _place_and_process_in(
                    connection,
                    request_id,
                    endpoint,
                    position,
                    item,
                    now=now,
                    actor=actor,
                    received_at=stored["received_at"],
                    row_id=None if row is None else int(row["id"]),
                    region=region,
                )
            )
        settle_request_in(connection, request_id, now=now)
    for outcome in outcomes:
        if outcome.status in ("processed", "duplicate"):
            report.processed += 1
        elif outcome.status == "failed":
            report.failed += 1
        elif outcome.status == "awaiting_fetch":
            report.awaiting_fetch += 1
