"""The worker job that completes intake items whose webhook carried only ids.

Meta's lead-ads webhook and HubSpot's contact webhooks say *which* lead or contact
arrived, not who it is. The intake (:mod:`baton.services.intake`) stores such items as
``awaiting_fetch``, due at once; this job, a lane of the worker
(:mod:`baton.services.worker`), reads each record from the platform with the
endpoint's ``fetch_token`` (:mod:`baton.integrations.fetch`), reads it with the
adapter's ``read_fetched`` and hands it to the intake's one processing path
(``process_item_in``), so a fetched lead is captured, deduplicated and handed off
exactly as a posted one.

Claiming is the outbox's (:mod:`baton.services.delivery`): one due item at a time is
leased (``claimed_until = now + BATON_OUTBOX_LEASE_SECONDS``, at least four HTTP
time-outs, so a read always ends within its lease) under a claim token, with ``FOR
UPDATE SKIP LOCKED`` on PostgreSQL, so any number of workers share the work and never
read the same item at once; the attempt is counted in the claim. The result is
recorded only while the claim is still this worker's.

What a failed read does:

* the platform refused (401/403: a bad or expired token; 404: no such record; any
  other 4xx), the endpoint has no token, or the record cannot be read: the item is
  **failed** at once with the reason (no retry storm); fix the token or the mapping
  and retry it (``baton intake retry``, the admin page's *Retry*), which fetches again;
* 408, 429, 5xx, time-outs and network errors: tried again with backoff (30 s,
  doubling: :func:`~baton.notify.webhooks.next_attempt_delay`, at least the
  platform's ``Retry-After``), **failed** after :data:`MAX_ATTEMPTS` attempts; a
  platform that cannot be reached is not tried again for its other items in the same
  pass;
* a bug (any other exception) is logged and treated like a 5xx: the item backs off
  and the pass goes on with the next, so a poisoned item never blocks the others and
  the worker never dies.

The token never appears in an error, a log line or the log's pages (see
:mod:`baton.integrations.fetch`).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import or_, select, update
from sqlalchemy.engine import Connection

from baton.domain.errors import FieldProblem
from baton.domain.intake import FetchRequest, IntakeItem, PayloadRefused
from baton.integrations import adapter_for
from baton.integrations.fetch import FetchResult, fetch_record
from baton.notify.egress import webhook_client
from baton.notify.webhooks import next_attempt_delay
from baton.services.context import Context
from baton.store.tables import intake_items

log = logging.getLogger("baton.worker")

MAX_ATTEMPTS = 6
"""Attempts per item for failures that may pass (5xx, time-outs); with the backoff
the last is made about 15 minutes after the first."""
AWAITING = "awaiting_fetch"


@dataclass
class FetchReport:
    """What one pass did: items completed (processed, duplicate or failed by their
    content), items that failed to be read for good, and reads to try again later."""

    done: int = 0
    failed: int = 0
    retrying: int = 0
    unreachable: set[int] = field(default_factory=set)

    @property
    def busy(self) -> bool:
        return bool(self.done or self.failed or self.retrying)


@dataclass(frozen=True)
class _Claimed:
    id: int
    endpoint_id: int
    upstream_id: str | None
    item: dict[str, Any]
    attempts: int
    token: str


@dataclass
class Fetcher:
    """The worker's fetch lane: keep one for the life of a worker (it keeps its HTTP
    client, which only reaches public addresses and the allow-list, unless ``client``
    is given)."""

    ctx: Context
    client: httpx.Client | None = None
    _own: httpx.Client | None = field(default=None, init=False, repr=False)

    def run(self, *, limit: int = 50) -> FetchReport:
        # A client is made only once there is something to fetch: most passes are idle,
        # and setting one up costs more than the pass (about 90 ms).
        if self.client is None and self._own is None and not _anything_due(self.ctx):
            return FetchReport()
        return run_fetches(self.ctx, client=self._http(), limit=limit)

    def _http(self) -> httpx.Client:
        if self.client is not None:
            return self.client
        if self._own is None:
            self._own = webhook_client(self.ctx.settings)
        return self._own

    def close(self) -> None:
        if self._own is not None:
            self._own.close()
            self._own = None


def run_fetches(
    ctx: Context, *, client: httpx.Client | None = None, limit: int = 50
) -> FetchReport:
    """Read up to ``limit`` due items from their platforms and process them.

    ``client`` is the HTTP client to read with (the worker passes one that only
    reaches public addresses and the allow-list); without one, such a client is made
    for this pass."""
    report = FetchReport()
    # Made on the first item only: an idle pass (the common case, every worker tick)
    # costs no client set-up.
    http: httpx.Client | None = client
    own = False
    try:
        tried: set[int] = set()
        while len(tried) < limit:
            claimed = _claim(ctx, tried, report.unreachable)
            if claimed is None:
                break
            tried.add(claimed.id)
            if http is None:
                http, own = webhook_client(ctx.settings), True
            try:
                _complete(ctx, http, claimed, report)
            except Exception as error:  # a bug: logged, the item backs off, the pass goes on
                log.exception("intake item %s: the fetch failed inside Baton", claimed.id)
                _reschedule(ctx, claimed, f"internal error: {type(error).__name__}", None, report)
    finally:
        if own and http is not None:
            http.close()
    return report


# --- claiming ---------------------------------------------------------------------------


def _lease(ctx: Context) -> timedelta:
    return timedelta(seconds=ctx.settings.outbox_lease_seconds)


def _anything_due(ctx: Context) -> bool:
    now = ctx.clock.now()
    with ctx.read() as connection:
        return (
            connection.execute(
                select(intake_items.c.id)
                .where(
                    intake_items.c.status == AWAITING,
                    intake_items.c.next_attempt_at <= now,
                    or_(intake_items.c.claimed_until.is_(None), intake_items.c.claimed_until < now),
                )
                .limit(1)
            ).first()
            is not None
        )


def _claim(ctx: Context, tried: set[int], unreachable: set[int]) -> _Claimed | None:
    now = ctx.clock.now()
    token = uuid.uuid4().hex
    query = (
        select(
            intake_items.c.id,
            intake_items.c.endpoint_id,
            intake_items.c.upstream_id,
            intake_items.c.item,
            intake_items.c.attempts,
            intake_items.c.error,
            intake_items.c.next_attempt_at,
        )
        .where(
            intake_items.c.status == AWAITING,
            intake_items.c.next_attempt_at <= now,
            or_(intake_items.c.claimed_until.is_(None), intake_items.c.claimed_until < now),
        )
        .order_by(intake_items.c.next_attempt_at, intake_items.c.id)
        .limit(1)
    )
    if tried:
        query = query.where(intake_items.c.id.not_in(tried))
    if unreachable:
        query = query.where(intake_items.c.endpoint_id.not_in(unreachable))
    with ctx.read() as connection:
        # Idle passes (most of them) never take SQLite's write turn.
        if connection.execute(query).first() is None:
            return None
    with ctx.write() as connection:
        row = connection.execute(query.with_for_update(skip_locked=True)).mappings().first()
        if row is None:
            return None
        # A series of attempts starts when the intake (a hook request, a retry) set the
        # item waiting afresh, without an error; each failed read since leaves one.
        attempts = 1 if row["error"] is None else int(row["attempts"] or 0) + 1
        series: dict[str, Any] = {}
        if attempts == 1:
            # When the series fell due: failed reads move next_attempt_at on, and
            # `baton status` measures a retrying item's lateness from here.
            series["due_since"] = row["next_attempt_at"]
        connection.execute(
            update(intake_items)
            .where(intake_items.c.id == row["id"])
            .values(claimed_until=now + _lease(ctx), claim_token=token, attempts=attempts, **series)
        )
    return _Claimed(
        id=int(row["id"]),
        endpoint_id=int(row["endpoint_id"]),
        upstream_id=row["upstream_id"],
        item=dict(row["item"] or {}),
        attempts=attempts,
        token=token,
    )


def _mine(connection: Connection, claimed: _Claimed) -> bool:
    """Whether the item is still this worker's to finish (locked for the rest of the
    transaction on PostgreSQL)."""
    found = connection.execute(
        select(intake_items.c.id)
        .where(
            intake_items.c.id == claimed.id,
            intake_items.c.claim_token == claimed.token,
            intake_items.c.status == AWAITING,
        )
        .with_for_update()
    ).first()
    if found is None:
        log.warning(
            "intake item %s: the lease ran out during the fetch; left to its new owner", claimed.id
        )
    return found is not None


# --- one item ---------------------------------------------------------------------------


def _complete(ctx: Context, http: httpx.Client, claimed: _Claimed, report: FetchReport) -> None:
    from baton.services import intake as intake_service

    with ctx.read() as connection:
        endpoint = intake_service.endpoint_in(connection, endpoint_id=claimed.endpoint_id)
    if endpoint is None:
        _fail(ctx, claimed, "the endpoint of this item no longer exists", report)
        return
    request = fetch_request_of(claimed.item)
    if request is None:
        _fail(ctx, claimed, "the stored item says nothing to fetch", report)
        return
    result = fetch_record(
        http,
        request,
        token=endpoint.fetch_token,
        configured_base=endpoint.fetch_base_url,
        mapping=endpoint.mapping,
        timeout=ctx.settings.webhook_timeout_seconds,
    )
    if not result.ok:
        error = result.error or "the read failed"
        if result.retryable:
            if result.status_code is None:
                report.unreachable.add(claimed.endpoint_id)
            _reschedule(ctx, claimed, error, result, report)
        else:
            _fail(ctx, claimed, error, report)
        return
    assert result.record is not None
    adapter = adapter_for(endpoint.kind)
    try:
        fetched: IntakeItem = adapter.read_fetched(result.record, endpoint.config)
    except PayloadRefused as refused:
        _fail(ctx, claimed, refused.detail, report, problems=refused.problems)
        return
    fetched = _merged(fetched, claimed)
    now = ctx.clock.now()
    with ctx.write() as connection:
        if not _mine(connection, claimed):
            return
        intake_service.process_item_in(
            connection,
            claimed.id,
            fetched,
            endpoint=endpoint,
            now=now,
            actor=intake_service.hook_principal(endpoint),
        )
        connection.execute(
            update(intake_items)
            .where(intake_items.c.id == claimed.id)
            .values(claimed_until=None, claim_token=None, next_attempt_at=None)
        )
    report.done += 1


def fetch_request_of(stored: dict[str, Any]) -> FetchRequest | None:
    """The platform read a stored item waits for (``item.fetch``), if any."""
    fetch = stored.get("fetch")
    if not isinstance(fetch, dict):
        return None
    platform, object_id = fetch.get("platform"), fetch.get("object_id")
    if platform not in ("meta", "hubspot") or object_id in (None, ""):
        return None
    return FetchRequest(platform=platform, object_id=str(object_id))


def _merged(fetched: IntakeItem, claimed: _Claimed) -> IntakeItem:
    """The fetched item under the webhook item's upstream id (the replay key), with the
    webhook's details kept beside the record's."""
    stored = claimed.item
    webhook_properties = stored.get("properties")
    properties = {**(webhook_properties if isinstance(webhook_properties, dict) else {})}
    properties.update(fetched.properties)
    occurred_at = fetched.occurred_at
    if occurred_at is None and isinstance(stored.get("occurred_at"), str):
        try:
            occurred_at = datetime.fromisoformat(stored["occurred_at"])
        except ValueError:
            occurred_at = None
    event_type = fetched.event_type or stored.get("event_type")
    return replace(
        fetched,
        upstream_id=claimed.upstream_id,
        properties=properties,
        occurred_at=occurred_at,
        event_type=event_type,
        fetch=None,
    )


# --- recording failures -----------------------------------------------------------------


def _fail(
    ctx: Context,
    claimed: _Claimed,
    error: str,
    report: FetchReport,
    *,
    problems: list[FieldProblem] | None = None,
) -> None:
    now = ctx.clock.now()
    with ctx.write() as connection:
        if not _mine(connection, claimed):
            return
        connection.execute(
            update(intake_items)
            .where(intake_items.c.id == claimed.id)
            .values(
                status="failed",
                error=fetch_error(error, problems),
                claimed_until=None,
                claim_token=None,
                next_attempt_at=None,
                processed_at=now,
            )
        )
        _settle_request(connection, claimed.id, now=now)
    report.failed += 1
    log.warning("intake item %s: failed: %s", claimed.id, error)


def _reschedule(
    ctx: Context,
    claimed: _Claimed,
    error: str,
    result: FetchResult | None,
    report: FetchReport,
) -> None:
    if claimed.attempts >= MAX_ATTEMPTS:
        _fail(ctx, claimed, f"{error} (gave up after {claimed.attempts} attempts)", report)
        return
    now = ctx.clock.now()
    wait = next_attempt_delay(claimed.attempts)
    if result is not None and result.retry_after_seconds:
        wait = max(wait, timedelta(seconds=result.retry_after_seconds))
    with ctx.write() as connection:
        if not _mine(connection, claimed):
            return
        connection.execute(
            update(intake_items)
            .where(intake_items.c.id == claimed.id)
            .values(
                error=fetch_error(error, None, retrying_at=now + wait),
                claimed_until=None,
                claim_token=None,
                next_attempt_at=now + wait,
            )
        )
    report.retrying += 1
    log.info(
        "intake item %s: fetch attempt %s of %s failed, next at %s: %s",
        claimed.id,
        claimed.attempts,
        MAX_ATTEMPTS,
        f"{now + wait:%H:%M:%S}",
        error,
    )


def fetch_error(
    detail: str,
    problems: list[FieldProblem] | None,
    *,
    retrying_at: datetime | None = None,
) -> list[dict[str, str]]:
    """The item's ``error`` as the intake log keeps every item's: ``[{loc, message}]``,
    the read's outcome under ``fetch``, then the record's field problems."""
    message = detail
    if retrying_at is not None:
        message += f"; next attempt at {retrying_at:%Y-%m-%d %H:%M:%S} UTC"
    errors = [{"loc": "fetch", "message": message}]
    errors += [{"loc": p.loc, "message": p.message} for p in problems or []]
    return errors


def _settle_request(connection: Connection, item_id: int, *, now: datetime) -> None:
    """Bring the request's status in line with its items' (the intake's rule)."""
    from baton.services import intake as intake_service

    request_id = connection.execute(
        select(intake_items.c.request_id).where(intake_items.c.id == item_id)
    ).scalar_one()
    intake_service.settle_request_in(connection, int(request_id), now=now)
