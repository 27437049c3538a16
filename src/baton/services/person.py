"""A person's data on request (GDPR Art. 15, 17, 20): export it all, or erase it.

Both start from an email address and find **the person**: the lead with that address,
the lead it was merged into and every lead merged into that one (one person, several
records), and everything tied to them:

* their activities, notes, tags and tag events, stage transitions, handoffs with their
  events, score, prep list, merges, nurture enrollments and sends;
* the raw intake requests behind them: requests with an item that made or updated one of
  the leads, whose envelope sender is the address (inbound mail), or whose body, or an
  item read from it, holds the address (a failed form post, a bounce report);
* outbox messages to the address, about one of their handoffs, from a nurture send, or
  whose payload holds the address; the suppression entry.

:func:`export_person` returns all of it as one JSON document. :func:`erase_person`, in one
transaction, removes it while keeping anonymous counts: each lead row stays (stage,
stage times, source, campaign, country, region, score, milestones) so funnels and
reports stay true, with every personal field nulled; notes are deleted; activities keep
their type and time but lose their properties and idempotency keys (an email's key is
its Message-ID, which often holds a name), but for a nurture open's or click's anonymous
references (:data:`NURTURE_ACTIVITY_KEYS`, for the nurture report); intake requests
keep their endpoint and time around an empty body (status ``erased``), their items lose
their parsed copy and upstream id; outbox messages keep their topic, times and status
with an empty payload (and no recipient when it was the person; unsent ones become
``erased``); nurture sends lose their address, links and Message-ID, and an active
enrollment ends.

A suppression keyed by the SHA-256 of the address (reason ``erased``,
:func:`baton.domain.privacy.erased_key`) replaces any plain one, so a later import of
the address is not mailed until the person opts in again explicitly. A later capture of
the address creates a fresh lead (nothing links it to the erased one) and
:func:`carry_erasure_in` puts the plain key back beside the hash: the lead holds the
address again anyway, and every check by email key then sees the refusal.

What erasure does not reach: backups and database files' free pages (PostgreSQL frees
dead rows at ``VACUUM``; on SQLite, the search index keeps name tokens until its
segments merge), copies already delivered elsewhere (a CRM a webhook fed, a rep's
mailbox), and server logs. Both are :data:`~baton.domain.access.Action.MANAGE_PERSONAL_DATA`
(admins).
"""

from __future__ import annotations

import base64
import functools
import logging
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import date, datetime
from typing import Any
from urllib.parse import quote

from sqlalchemy import (
    ColumnElement,
    Table,
    Text,
    bindparam,
    cast,
    delete,
    func,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Connection
from sqlalchemy.sql import Delete, Executable, Select
from sqlalchemy.sql.elements import BindParameter

from baton.domain.access import Action, Principal
from baton.domain.contact import InvalidContact, email_key, normalize_email
from baton.domain.errors import FieldProblem, ValidationFailed
from baton.domain.privacy import CLEARED_BY_OPT_IN, erased_key, suppression_keys
from baton.services.access import allowed
from baton.services.context import Context
from baton.services.queries import chunks, insert_ignoring_conflicts
from baton.store.bulk import find_by_keys
from baton.store.tables import (
    activities,
    deliveries,
    handoff_events,
    handoffs,
    intake_endpoints,
    intake_items,
    intake_requests,
    lead_merges,
    lead_prep,
    lead_scores,
    lead_tags,
    leads,
    notes,
    nurture_enrollments,
    nurture_sends,
    outbox,
    suppressions,
    tag_events,
    transitions,
)

log = logging.getLogger(__name__)

PERSONAL_LEAD_FIELDS: tuple[str, ...] = (
    "email",
    "email_key",
    "email_domain",
    "mailbox_key",
    "phone",
    "external_system",
    "external_id",
    "first_name",
    "last_name",
    "company",
    "company_key",
    "title",
    "postal_code",
    "consent_basis",
    "consent_source",
    "email_status_detail",
)
"""Lead columns an erasure nulls (``attributes`` becomes ``{}``); stage, times,
source, campaign, UTM, country and region stay for the reports."""

ERASED = "erased"


FIXED_KEYS = 4
"""Up to this many keys (a capture has one address: two keys), the suppression
statements list their keys as fixed parameters, compiled once per count; more keys (an
import's chunk) take one expanding list, rendered again at each run but compiled once,
so a few hundred statement shapes never fill SQLAlchemy's statement cache."""


def _key_list(count: int) -> list[BindParameter[str]] | BindParameter[list[str]]:
    if count <= FIXED_KEYS:
        return [bindparam(f"k{i}") for i in range(count)]
    return bindparam("keys", expanding=True)


@functools.lru_cache(maxsize=2 * (FIXED_KEYS + 1))
def _lift(count: int) -> Delete:
    """Delete the suppressions an opt-in lifts for ``count`` keys (see FIXED_KEYS)."""
    return delete(suppressions).where(
        suppressions.c.email_key.in_(_key_list(count)),
        suppressions.c.reason.in_([literal(r) for r in sorted(CLEARED_BY_OPT_IN)]),
    )


@functools.lru_cache(maxsize=2 * (FIXED_KEYS + 1))
def _suppressed(count: int) -> Select[Any]:
    """Which of ``count`` keys are suppressed (see FIXED_KEYS)."""
    return select(suppressions.c.email_key).where(suppressions.c.email_key.in_(_key_list(count)))


def _for_keys(
    statement: Callable[[int], Executable], keys: Sequence[str]
) -> tuple[Executable, dict[str, Any]]:
    """``statement`` (:func:`_lift`, :func:`_suppressed`) for these keys, with its
    parameters."""
    if len(keys) <= FIXED_KEYS:
        return statement(len(keys)), {f"k{i}": key for i, key in enumerate(keys)}
    return statement(FIXED_KEYS + 1), {"keys": list(keys)}


def lift_suppressions_in(connection: Connection, addresses: Iterable[str]) -> int:
    """Remove the suppressions an explicit opt-in lifts (unsubscribe, complaint,
    erased) for these addresses; returns how many. Hard bounces and manual entries stay."""
    keys = sorted({k for a in addresses if a for k in suppression_keys(a)})
    removed = 0
    for part in chunks(keys):
        removed += connection.execute(*_for_keys(_lift, part)).rowcount
    return removed


def _suppressed_among(connection: Connection, keys: Sequence[str]) -> list[str]:
    """Which of ``keys`` are on the suppression list. An import's chunk (more than
    :data:`FIXED_KEYS`) asks with one array parameter (:func:`find_by_keys`): an
    expanding list of a thousand parameters cost PostgreSQL 10 µs per imported row."""
    if len(keys) <= FIXED_KEYS:
        return list(connection.execute(*_for_keys(_suppressed, keys)).scalars())
    return [key for (key,) in find_by_keys(connection, suppressions, "email_key", keys)]


def carry_erasure_in(connection: Connection, addresses: Iterable[str], *, now: datetime) -> int:
    """A captured address that was erased before comes back on the suppression list
    under its plain key too (reason ``erased``), so every check by email key keeps it
    from being mailed; the lead now holds the address anyway, so this reveals nothing
    more. Returns how many were carried."""
    by_hash = {erased_key(a): email_key(a) for a in addresses if a}
    carried = 0
    for part in chunks(sorted(by_hash)):
        found = _suppressed_among(connection, part)
        if not found:
            continue
        plain = [by_hash[h] for h in found]
        known = set(_suppressed_among(connection, plain))
        rows = [
            {
                "email_key": key,
                "reason": ERASED,
                "source": "erased earlier, captured again",
                "created_at": now,
                "created_by": "baton",
            }
            for key in sorted(set(plain) - known)
        ]
        if rows:  # (an unsubscribe of the same address at the same moment wins)
            connection.execute(insert_ignoring_conflicts(connection, suppressions), rows)
            carried += len(rows)
    return carried


def suppressed_addresses_in(connection: Connection, addresses: Sequence[str]) -> set[str]:
    """The addresses any of whose :func:`suppression_keys` is on the suppression list:
    one look-up for many captures (most addresses have no suppression at all)."""
    keys_of = {address: suppression_keys(address) for address in addresses}
    found = set(_suppressed_among(connection, sorted({k for ks in keys_of.values() for k in ks})))
    return {address for address, keys in keys_of.items() if found.intersection(keys)}


def settle_suppressions_in(
    connection: Connection, address: str, *, created: bool, opt_in: bool, now: datetime
) -> None:
    """What one capture of ``address`` does to the suppression list: a new lead carries
    an earlier erasure (:func:`carry_erasure_in`), an explicit opt-in lifts what it lifts
    (:func:`lift_suppressions_in`). One look-up first: most addresses have no
    suppression at all, and then neither has anything to do."""
    if not (created or opt_in):
        return
    if not connection.execute(*_for_keys(_suppressed, suppression_keys(address))).first():
        return
    if created:
        carry_erasure_in(connection, [address], now=now)
    if opt_in:
        lift_suppressions_in(connection, [address])


def _address(email: str) -> str:
    try:
        return normalize_email(email.strip())
    except InvalidContact as exc:
        raise ValidationFailed(
            "not a valid email address", [FieldProblem("email", str(exc))]
        ) from None


@dataclass(frozen=True)
class Found:
    """The person's rows, by table (ids)."""

    lead_ids: list[int]
    handoff_ids: list[int]
    request_ids: list[int]
    item_ids: list[int]
    outbox_ids: list[int]


def _as_text(dialect: str, column: Any, *, binary: bool = False) -> ColumnElement[Any]:
    """``column`` (text, JSON or bytes) as lower-case text (bytes: PostgreSQL's escape
    encoding, which keeps ASCII as it is)."""
    if binary and dialect == "postgresql":
        return func.lower(func.encode(column, literal("escape")))
    return func.lower(cast(column, Text))


def _address_in(key: str) -> re.Pattern[str]:
    """The address as a whole word of lower-case text: ``ann@acme.example`` is not in
    ``joann@acme.example`` nor in ``ann@acme.example.org``."""
    return re.compile(r"(?<![a-z0-9._%+\-])" + re.escape(key) + r"(?![a-z0-9\-])(?!\.[a-z0-9])")


def _mentioning(
    connection: Connection,
    id_column: Any,
    columns: Sequence[Any],
    key: str,
    *,
    binary: bool = False,
    scanned: Scanned | None = None,
) -> list[int]:
    """Ids of rows where one of ``columns`` holds the address, as it is or URL-encoded
    (a form post's ``ann%40acme.example``): a ``LIKE`` scan picks the candidates, a
    whole-word match in Python keeps the real ones."""
    dialect = connection.dialect.name
    needles = sorted({key, quote(key, safe=".-_~").lower()})
    texts = [_as_text(dialect, c, binary=binary).label(f"t{i}") for i, c in enumerate(columns)]
    query = select(id_column, *texts).where(
        or_(*(t.element.contains(n, autoescape=True) for t in texts for n in needles))
    )
    if scanned is not None:  # only the rows since the scan outside the transaction
        done = scanned.get(id_column.table.name, ([], 0))
        query = query.where(id_column > done[1])
    pattern = re.compile("|".join(_address_in(n).pattern for n in needles))
    found = {
        int(row[0])
        for row in connection.execute(query)
        if any(value is not None and pattern.search(value) for value in row[1:])
    }
    if scanned is not None:
        found.update(scanned.get(id_column.table.name, ([], 0))[0])
    return sorted(found)


Scanned = dict[str, tuple[list[int], int]]
"""Per table, the ids a scan found and the highest id it covered."""


def scan_in(connection: Connection, key: str) -> Scanned:
    """The full-text scans of :func:`_find`, done ahead (outside the erasing
    transaction, so that SQLite's one writer is not held for them)."""
    out: Scanned = {}
    for table, columns, binary in (
        (intake_items, [intake_items.c.item], False),
        (
            intake_requests,
            [intake_requests.c.headers, intake_requests.c.query, intake_requests.c.url],
            False,
        ),
        (outbox, [outbox.c.payload], False),
    ):
        top = connection.execute(select(func.coalesce(func.max(table.c.id), 0))).scalar_one()
        ids = _mentioning(connection, table.c.id, columns, key, binary=binary)
        if table is intake_requests:
            ids += _mentioning(connection, table.c.id, [intake_requests.c.body], key, binary=True)
        out[table.name] = (sorted(set(ids)), int(top))
    return out


def _family(connection: Connection, key: str) -> list[int]:
    """The leads of the person with this email key: the lead, the one it was merged
    into (followed to the end), and every lead merged into those."""
    start = connection.execute(
        select(leads.c.id, leads.c.merged_into_id).where(leads.c.email_key == key)
    ).first()
    if start is None:
        return []
    top, up = int(start[0]), start[1]
    seen = {top}
    while up is not None and up not in seen:
        seen.add(int(up))
        top = int(up)
        up = connection.execute(
            select(leads.c.merged_into_id).where(leads.c.id == top)
        ).scalar_one_or_none()
    family = {top}
    frontier = [top]
    while frontier:
        found = [
            int(i)
            for part in chunks(frontier)
            for (i,) in connection.execute(
                select(leads.c.id).where(leads.c.merged_into_id.in_(part))
            )
        ]
        frontier = [i for i in found if i not in family]
        family.update(frontier)
    return sorted(family | seen)


def _ids(connection: Connection, query: Any) -> list[int]:
    return sorted({int(i) for (i,) in connection.execute(query)})


def _find(connection: Connection, address: str, scanned: Scanned | None = None) -> Found:
    """The person's rows; ``scanned``: the text scans done ahead (:func:`scan_in`), so only
    the rows written since are scanned here."""
    key = email_key(address)
    lead_ids = _family(connection, key)
    handoff_ids: list[int] = []
    items: set[int] = set()
    outbox_ids: set[int] = set()
    for part in chunks(lead_ids):
        handoff_ids += _ids(connection, select(handoffs.c.id).where(handoffs.c.lead_id.in_(part)))
        items.update(
            _ids(connection, select(intake_items.c.id).where(intake_items.c.lead_id.in_(part)))
        )
        outbox_ids.update(
            _ids(
                connection,
                select(nurture_sends.c.outbox_id).where(
                    nurture_sends.c.lead_id.in_(part), nurture_sends.c.outbox_id.is_not(None)
                ),
            )
        )
    items.update(
        _mentioning(connection, intake_items.c.id, [intake_items.c.item], key, scanned=scanned)
    )
    requests = set(
        _mentioning(
            connection,
            intake_requests.c.id,
            [intake_requests.c.headers, intake_requests.c.query, intake_requests.c.url],
            key,
            scanned=scanned,
        )
    )
    requests.update(
        _mentioning(
            connection,
            intake_requests.c.id,
            [intake_requests.c.body],
            key,
            binary=True,
            scanned=scanned,
        )
    )
    for part in chunks(sorted(items)):
        requests.update(
            _ids(connection, select(intake_items.c.request_id).where(intake_items.c.id.in_(part)))
        )
    for part in chunks(sorted(requests)):
        items.update(
            _ids(connection, select(intake_items.c.id).where(intake_items.c.request_id.in_(part)))
        )
    outbox_ids.update(
        _ids(connection, select(outbox.c.id).where(func.lower(outbox.c.recipient) == key))
    )
    outbox_ids.update(
        _mentioning(connection, outbox.c.id, [outbox.c.payload], key, scanned=scanned)
    )
    for part in chunks(handoff_ids):
        outbox_ids.update(
            _ids(connection, select(outbox.c.id).where(outbox.c.handoff_id.in_(part)))
        )
    return Found(lead_ids, handoff_ids, sorted(requests), sorted(items), sorted(outbox_ids))


# ---- export -------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """A stored value as JSON: times in ISO 8601, bytes as text (or base64)."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bytes | memoryview):
        raw = bytes(value)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return {"base64": base64.b64encode(raw).decode("ascii")}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _rows(
    connection: Connection,
    table: Table,
    column: Any,
    ids: Sequence[Any],
    *,
    order: Any = None,
    skip: tuple[str, ...] = (),
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for part in chunks(list(ids)):
        query = select(*(c for c in table.c if c.name not in skip)).where(column.in_(part))
        query = query.order_by(
            order if order is not None else table.c[table.primary_key.columns.keys()[0]]
        )
        out.extend(
            {k: _plain(v) for k, v in row.items()} for row in connection.execute(query).mappings()
        )
    return out


LEASE_COLUMNS = ("claimed_until", "claim_token")
"""Workers' leases: not about the person (nor is an outbox row's ``message_key``, the
secret part of its Message-ID that makes a reply believable)."""


def _export_in(connection: Connection, address: str, found: Found) -> dict[str, Any]:
    keys = suppression_keys(address)
    handoff_rows = _rows(connection, handoffs, handoffs.c.id, found.handoff_ids)
    events = _rows(
        connection,
        handoff_events,
        handoff_events.c.handoff_id,
        found.handoff_ids,
        order=handoff_events.c.id,
    )
    for handoff in handoff_rows:
        handoff["events"] = [e for e in events if e["handoff_id"] == handoff["id"]]
    enrollments = _rows(
        connection,
        nurture_enrollments,
        nurture_enrollments.c.lead_id,
        found.lead_ids,
        skip=LEASE_COLUMNS,
    )
    sends = _rows(connection, nurture_sends, nurture_sends.c.lead_id, found.lead_ids)
    for enrollment in enrollments:
        enrollment["sends"] = [s for s in sends if s["enrollment_id"] == enrollment["id"]]
    kinds = {
        int(i): (name, kind)
        for i, name, kind in connection.execute(
            select(intake_endpoints.c.id, intake_endpoints.c.name, intake_endpoints.c.kind)
        )
    }
    requests = _rows(connection, intake_requests, intake_requests.c.id, found.request_ids)
    items = _rows(connection, intake_items, intake_items.c.id, found.item_ids, skip=LEASE_COLUMNS)
    for request in requests:
        name, kind = kinds.get(int(request["endpoint_id"]), (None, None))
        request["endpoint"], request["endpoint_kind"] = name, kind
        request["items"] = [i for i in items if i["request_id"] == request["id"]]
    messages = _rows(
        connection, outbox, outbox.c.id, found.outbox_ids, skip=(*LEASE_COLUMNS, "message_key")
    )
    attempts = _rows(connection, deliveries, deliveries.c.outbox_id, found.outbox_ids)
    for message in messages:
        message["deliveries"] = [d for d in attempts if d["outbox_id"] == message["id"]]
    return {
        "email": address,
        "leads": _rows(connection, leads, leads.c.id, found.lead_ids),
        "activities": _rows(
            connection,
            activities,
            activities.c.lead_id,
            found.lead_ids,
            order=activities.c.occurred_at,
        ),
        "notes": _rows(connection, notes, notes.c.lead_id, found.lead_ids),
        "tags": _rows(
            connection, lead_tags, lead_tags.c.lead_id, found.lead_ids, order=lead_tags.c.tag
        ),
        "tag_events": _rows(connection, tag_events, tag_events.c.lead_id, found.lead_ids),
        "transitions": _rows(
            connection,
            transitions,
            transitions.c.lead_id,
            found.lead_ids,
            order=transitions.c.occurred_at,
        ),
        "handoffs": handoff_rows,
        "scores": _rows(
            connection,
            lead_scores,
            lead_scores.c.lead_id,
            found.lead_ids,
            order=lead_scores.c.lead_id,
        ),
        "prep": _rows(
            connection, lead_prep, lead_prep.c.lead_id, found.lead_ids, order=lead_prep.c.item
        ),
        "merges": _rows(connection, lead_merges, lead_merges.c.merged_id, found.lead_ids),
        "nurture_enrollments": enrollments,
        "intake_requests": [r for r in requests if r["endpoint_kind"] != "email"],
        "inbound_email": [r for r in requests if r["endpoint_kind"] == "email"],
        "outbox": messages,
        "suppressions": _rows(connection, suppressions, suppressions.c.email_key, list(keys)),
    }


def export_person(ctx: Context, email: str, *, actor: Principal) -> dict[str, Any]:
    """Everything Baton holds about the person with this address, as one JSON-ready
    document (an address Baton does not know gives empty lists: that is the answer)."""
    allowed(actor, Action.MANAGE_PERSONAL_DATA)
    address = _address(email)
    with ctx.read() as connection:
        found = _find(connection, address)
        document = _export_in(connection, address, found)
    document["exported_at"] = ctx.clock.now().isoformat()
    log.info("%s exported the data of a person (%d leads)", actor.name, len(found.lead_ids))
    return document


# ---- erase --------------------------------------------------------------------------


@dataclass(frozen=True)
class Erasure:
    """What an erasure changed, in counts (the address is not repeated)."""

    leads: int
    activities: int
    notes: int
    intake_requests: int
    intake_items: int
    outbox_messages: int
    nurture_sends: int
    enrollments_ended: int
    suppression_key: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _update(
    connection: Connection, table: Table, column: Any, ids: Sequence[int], **values: Any
) -> int:
    done = 0
    for part in chunks(list(ids)):
        done += connection.execute(update(table).where(column.in_(part)).values(**values)).rowcount
    return done


NURTURE_ACTIVITY_KEYS = ("sequence", "enrollment_id", "step", "send_id")
"""What an erased nurture open or click keeps (no URL: a link may carry personal data),
so the nurture report's opened and clicked stay true after an erasure."""


def _nurture_keys(connection: Connection, lead_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    """The anonymous nurture references of the person's opens and clicks, by activity id."""
    kept: dict[int, dict[str, Any]] = {}
    for part in chunks(list(lead_ids)):
        rows = connection.execute(
            select(activities.c.id, activities.c.properties).where(
                activities.c.lead_id.in_(part),
                activities.c.type.in_(("email_open", "email_click")),
            )
        )
        for activity_id, properties in rows:
            if isinstance(properties, dict) and properties.get("enrollment_id") is not None:
                kept[activity_id] = {
                    key: properties[key] for key in NURTURE_ACTIVITY_KEYS if key in properties
                }
    return kept


def _personal_values(connection: Connection, lead_ids: Sequence[int], address: str) -> set[str]:
    """The person's own values (lower-case), to find them inside free text: addresses,
    phone numbers (also without ``+``), names, company, title, postal code, external
    id. Values shorter than 3 characters are left out (they would match anything)."""
    values = {email_key(address)}
    for part in chunks(list(lead_ids)):
        for row in connection.execute(
            select(*(leads.c[name] for name in PERSONAL_LEAD_FIELDS)).where(leads.c.id.in_(part))
        ).mappings():
            for name in (
                "email",
                "phone",
                "first_name",
                "last_name",
                "company",
                "title",
                "postal_code",
                "external_id",
            ):
                if row[name]:
                    values.add(str(row[name]).strip().lower())
            if row["phone"]:
                values.add(str(row["phone"]).lstrip("+"))
    return {v for v in values if len(v) >= 3}


FREE_TEXT_KEYS = frozenset({"note", "fields"})
QUALIFIED = "qualified: "


def _erase_free_text_in(connection: Connection, found: Found, personal: set[str]) -> None:
    """Free text that people wrote about the person outside notes: the ``note`` of every
    handoff event (a rep's words on a touch or a verdict) and the qualification
    ``fields`` (budget, authority... as the person told them) are removed; a stage
    change's reason loses a verdict's note and the qualification fields, and becomes
    ``(erased)`` if it still holds one of the person's values (a reason typed by
    hand)."""
    notes_written: set[str] = set()
    for part in chunks(found.handoff_ids):
        for event_id, detail in connection.execute(
            select(handoff_events.c.id, handoff_events.c.detail).where(
                handoff_events.c.handoff_id.in_(part)
            )
        ):
            if isinstance(detail, dict) and FREE_TEXT_KEYS & detail.keys():
                if detail.get("note") is not None:
                    notes_written.add(str(detail["note"]))
                kept = {k: v for k, v in detail.items() if k not in FREE_TEXT_KEYS}
                connection.execute(
                    update(handoff_events)
                    .where(handoff_events.c.id == event_id)
                    .values(detail=kept)
                )
    for part in chunks(found.lead_ids):
        for transition_id, reason in connection.execute(
            select(transitions.c.id, transitions.c.reason).where(transitions.c.lead_id.in_(part))
        ):
            text = str(reason)
            if text.startswith(QUALIFIED):  # "qualified: budget=..., authority=..."
                text = QUALIFIED.rstrip(": ")
            for note in notes_written:
                text = text.replace(f" ({note})", "")
            if any(value in text.lower() for value in personal):
                text = "(erased)"
            if text != reason:
                connection.execute(
                    update(transitions).where(transitions.c.id == transition_id).values(reason=text)
                )


def erase_in(
    connection: Connection,
    address: str,
    *,
    actor: Principal,
    now: datetime,
    scanned: Scanned | None = None,
) -> Erasure:
    """:func:`erase_person` inside the caller's transaction (see the module text);
    ``scanned``: the text scans done ahead of it (:func:`scan_in`)."""
    found = _find(connection, address, scanned)
    lead_ids = found.lead_ids
    _erase_free_text_in(connection, found, _personal_values(connection, lead_ids, address))
    erased_leads = _update(
        connection,
        leads,
        leads.c.id,
        lead_ids,
        **dict.fromkeys(PERSONAL_LEAD_FIELDS),
        attributes={},
        consent=None,
        updated_at=now,
    )
    kept = _nurture_keys(connection, lead_ids)
    erased_activities = _update(
        connection, activities, activities.c.lead_id, lead_ids, properties={}, idempotency_key=None
    )
    for activity_id, properties in kept.items():
        connection.execute(
            update(activities).where(activities.c.id == activity_id).values(properties=properties)
        )
    deleted_notes = 0
    for part in chunks(lead_ids):
        deleted_notes += connection.execute(delete(notes).where(notes.c.lead_id.in_(part))).rowcount
    _update(connection, lead_merges, lead_merges.c.merged_id, lead_ids, changes={})
    _update(connection, lead_merges, lead_merges.c.survivor_id, lead_ids, changes={})
    _update(connection, handoffs, handoffs.c.id, found.handoff_ids, qualification=None)
    requests = _update(
        connection,
        intake_requests,
        intake_requests.c.id,
        found.request_ids,
        body=b"",
        headers={},
        query=None,
        url=None,
        remote_address=None,
        error=None,
        status=ERASED,
    )
    items = _update(
        connection,
        intake_items,
        intake_items.c.id,
        found.item_ids,
        item=None,
        error=None,
        upstream_id=None,
    )
    unsent = (outbox.c.status != "sent") & (outbox.c.status != ERASED)
    for part in chunks(found.outbox_ids):
        connection.execute(
            update(outbox)
            .where(outbox.c.id.in_(part), unsent)
            .values(status=ERASED, claimed_until=None, claim_token=None)
        )
        connection.execute(
            update(outbox)
            .where(outbox.c.id.in_(part), func.lower(outbox.c.recipient) == email_key(address))
            .values(recipient="")
        )
    messages = _update(
        connection, outbox, outbox.c.id, found.outbox_ids, payload={}, last_error=None
    )
    _update(connection, deliveries, deliveries.c.outbox_id, found.outbox_ids, error=None)
    sends = _update(
        connection,
        nurture_sends,
        nurture_sends.c.lead_id,
        lead_ids,
        email="",
        links=None,
        message_id=None,
    )
    ended = 0
    for part in chunks(lead_ids):
        ended += connection.execute(
            update(nurture_enrollments)
            .where(
                nurture_enrollments.c.lead_id.in_(part), nurture_enrollments.c.status == "active"
            )
            .values(
                status="exited",
                exit_reason=ERASED,
                ended_at=now,
                next_due_at=None,
                claimed_until=None,
                claim_token=None,
            )
        ).rowcount
    hashed = erased_key(address)
    connection.execute(
        delete(suppressions).where(suppressions.c.email_key.in_(suppression_keys(address)))
    )
    connection.execute(
        insert_ignoring_conflicts(connection, suppressions).values(
            email_key=hashed,
            reason=ERASED,
            source="erasure request",
            created_at=now,
            created_by=actor.name,
        )
    )
    return Erasure(
        leads=erased_leads,
        activities=erased_activities,
        notes=deleted_notes,
        intake_requests=requests,
        intake_items=items,
        outbox_messages=messages,
        nurture_sends=sends,
        enrollments_ended=ended,
        suppression_key=hashed,
    )


def erase_person(ctx: Context, email: str, *, actor: Principal) -> Erasure:
    """Erase the person with this address in one transaction, keeping anonymous counts
    (see the module text). Erasing an address Baton does not know still records the
    suppression, so that it is never mailed."""
    allowed(actor, Action.MANAGE_PERSONAL_DATA)
    address = _address(email)
    # The slow part, the scans of raw bodies and payloads, reads outside the erasing
    # transaction; inside it only the rows written since are scanned.
    with ctx.read() as connection:
        scanned = scan_in(connection, email_key(address))
    with ctx.write() as connection:
        result = erase_in(connection, address, actor=actor, now=ctx.clock.now(), scanned=scanned)
    log.info(
        "%s erased a person's data (%d leads, %d intake requests, %d outbox messages)",
        actor.name,
        result.leads,
        result.intake_requests,
        result.outbox_messages,
    )
    return result
