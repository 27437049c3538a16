"""Lead use cases: capture (create-or-update), read, list, change stage.

Capture is create-or-update by identity (the id another system gave the lead, else its
email, else its phone): the same person captured twice is one lead, and
every capture is also recorded as a ``captured`` activity so the timeline shows each
touch with its source and campaign. Possible duplicates that email cannot prove (same
phone, similar name at a similar company) are flagged for a human, never merged.

:func:`change_stage` is the move by hand (who may, and not past an open handoff); the
stage change itself, and the handoff it opens or closes, is
:func:`baton.services.stages.change_stage_in`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import bindparam, func, insert, select, text, update
from sqlalchemy.engine import Connection, RowMapping

from baton.domain.access import INTAKE_BY_EMAIL, Action, Principal, Reach
from baton.domain.activities import ActivityType
from baton.domain.clock import Clock
from baton.domain.contact import company_key, email_domain, email_key, mailbox_key
from baton.domain.errors import Conflict, FieldProblem, NotFound, ValidationFailed
from baton.domain.history import check_occurred_at
from baton.domain.leads import (
    ATTRIBUTION_FIELDS,
    IDENTITY_FIELDS,
    PROFILE_FIELDS,
    DuplicateMatch,
    Lead,
    LeadCreate,
    fold_source,
    merge_profile,
)
from baton.domain.lifecycle import INITIAL_STAGE, Stage, Transition
from baton.domain.privacy import ConsentDecision, decide_consent, suppression_keys
from baton.domain.scoring import Event
from baton.domain.search import search_tokens
from baton.services.access import allowed, check_lead, lead_scope
from baton.services.context import Context
from baton.services.contract_rules import (
    active_contract_from,
    active_contract_in,
    active_contract_known,
)
from baton.services.duplicate_checks import compared_fields_changed, queue_duplicate_checks_in
from baton.services.new_lead_write import NewLeadWritten, write_new_lead
from baton.services.person import settle_suppressions_in, suppressed_addresses_in
from baton.services.queries import insert_ignoring_conflicts, lock_lead, tags_of
from baton.services.routing import close_open_handoff_in
from baton.services.scoring import SCORED_COLUMNS, score_leads_in
from baton.services.stages import change_stage_in
from baton.store.advisory import PEOPLE_LOCKS
from baton.store.bulk import find_by_keys, insert_returning, insert_rows
from baton.store.group_commit import group_memo
from baton.store.search import search_condition
from baton.store.tables import (
    OPEN_HANDOFF_STATUSES,
    activities,
    handoffs,
    lead_tags,
    leads,
    transitions,
)

DuplicateCheck = Literal["pending", "not_needed"]


@dataclass(frozen=True)
class CaptureResult:
    """What a capture did: the lead's id and the lead as stored now, whether it was
    new, which fields changed, and whether it waits for the possible-duplicate
    comparison.

    ``lead`` is None for an intake key: a public key never reads back what Baton knows
    about an address (:data:`~baton.domain.access.Action.READ_LEADS` is not among its
    actions), so the lead is not read back for it either.

    ``duplicates`` is ``"pending"`` for a new lead: the comparison with older leads is
    queued and the worker flags its pairs for review within seconds (see
    :mod:`baton.services.duplicate_checks`), so ``possible_duplicates`` is empty then;
    also for an update that changed a compared field (:data:`COMPARED_FIELDS`: the lead
    is compared again, with newer leads too); ``"not_needed"`` for any other update.
    The field ``possible_duplicates`` stays for callers that read it."""

    lead_id: int
    lead: Lead | None
    created: bool
    changed_fields: list[str]
    possible_duplicates: list[DuplicateMatch] = field(default_factory=list)
    duplicates: DuplicateCheck = "not_needed"


def keep_identity(
    existing: RowMapping | dict[str, Any], changes: dict[str, Any], *, email_free: bool = False
) -> None:
    """Drop an email change that would change who the lead *is*: a capture can fix the
    case of an address, but an address that reached this lead through a merge (or any
    other key) stays on the record that owns it. A lead without email (found by its
    external id or phone) takes one, when ``email_free`` says no other lead has it."""
    new = changes.get("email")
    if new is None or email_key(new) == existing["email_key"]:
        return
    if not (existing["email_key"] is None and email_free):
        del changes["email"]


def email_free_in(connection: Connection, address: str) -> bool:
    """Whether no lead has this email (so a lead without one may take it)."""
    found = connection.execute(select(leads.c.id).where(leads.c.email_key == email_key(address)))
    return found.first() is None


def _derived(values: dict[str, Any]) -> dict[str, Any]:
    """Columns computed from others: the email identity and the company key."""
    out: dict[str, Any] = {}
    if "email" in values:
        out["email_key"] = email_key(values["email"]) if values["email"] else None
        out["email_domain"] = email_domain(values["email"]) if values["email"] else None
        out["mailbox_key"] = mailbox_key(out["email_key"])
    if "company" in values:
        out["company_key"] = company_key(values["company"])
    return out


MERGED_COLUMNS: tuple[str, ...] = (
    *PROFILE_FIELDS,
    *IDENTITY_FIELDS,
    *ATTRIBUTION_FIELDS,
    "last_source",
    "last_campaign",
    "attributes",
    "consent",
    "consent_basis",
    "consent_source",
    "consent_at",
    "unsubscribed_at",
)
"""The columns of a lead that :func:`merge_profile` and :func:`decide_consent` read
and may change (a capture's and an import's merge)."""
CAPTURE_READS: tuple[str, ...] = (
    "id",
    "merged_into_id",
    "email_key",
    "created_at",
    "last_activity_at",
    *MERGED_COLUMNS,
)
"""The columns of an existing lead a capture reads (to merge the profile, decide
consent, keep its identity, date the touch); a test holds :func:`merge_profile` and
:func:`decide_consent` to them. Not the whole row: on PostgreSQL each column of a
result costs the driver a description object, about a fifth of a capture's CPU."""
_FOUND = [leads.c[name] for name in CAPTURE_READS]

# The capture path's statements, built once: a statement object keeps its compiled form
# and cache key, where building one per call costs more than running it on SQLite.
_BY_EXTERNAL_ID = (
    select(*_FOUND)
    .where(
        leads.c.external_id == bindparam("external_id"),
        leads.c.external_system == bindparam("external_system"),
    )
    .with_for_update()
)
_BY_EMAIL = select(*_FOUND).where(leads.c.email_key == bindparam("email_key")).with_for_update()
_BY_PHONE = (
    select(*_FOUND)
    .where(leads.c.phone == bindparam("phone"), leads.c.email_key.is_(None))
    .with_for_update()
)
_LOCK_LEAD = select(leads).where(leads.c.id == bindparam("lead_id")).with_for_update()
_TOUCH_LEAD = (
    update(leads)
    .where(leads.c.id == bindparam("target_id"))
    .values(activity_count=leads.c.activity_count + 1)
)
"""The other columns a capture sets are the parameters of each execution."""
_RECORD_TOUCH = insert(activities)
_NEW_LEAD: dict[tuple[str, bool], Any] = {}
"""``INSERT ... ON CONFLICT DO NOTHING RETURNING id`` (and ``email_key``, for many) per
dialect."""


def _new_lead_statement(connection: Connection, *, with_key: bool = False) -> Any:
    known = (connection.dialect.name, with_key)
    if known not in _NEW_LEAD:
        returned = (leads.c.id, leads.c.email_key) if with_key else (leads.c.id,)
        _NEW_LEAD[known] = insert_ignoring_conflicts(connection, leads).returning(*returned)
    return _NEW_LEAD[known]


def _locked(connection: Connection, lead_id: int) -> RowMapping:
    row = connection.execute(_LOCK_LEAD, {"lead_id": lead_id}).mappings().first()
    if row is None:
        raise NotFound(f"lead {lead_id} does not exist")
    return row


def _find_existing(connection: Connection, data: LeadCreate) -> RowMapping | dict[str, Any] | None:
    """The lead ``data`` is about, locked: by external id, else by email, else (for a
    capture without email) by phone among the leads without email."""
    row = None
    if data.external_id is not None and data.external_system is not None:
        row = (
            connection.execute(
                _BY_EXTERNAL_ID,
                {"external_id": data.external_id, "external_system": data.external_system},
            )
            .mappings()
            .first()
        )
    if row is None and data.email is not None:
        found = connection.execute(_BY_EMAIL, {"email_key": email_key(data.email)})
        row = found.mappings().first()
    elif row is None and data.phone is not None:
        row = connection.execute(_BY_PHONE, {"phone": data.phone}).mappings().first()
    return _merged_into(connection, row)


def _merged_into(
    connection: Connection, row: RowMapping | dict[str, Any] | None
) -> RowMapping | dict[str, Any] | None:
    """The lead ``row`` was merged into (locked), or ``row`` itself."""
    while row is not None and row["merged_into_id"] is not None:
        row = _locked(connection, row["merged_into_id"])
    return row


def _touch_row(
    lead_id: int, properties: dict[str, Any], at: datetime, now: datetime, actor: Principal
) -> dict[str, Any]:
    """The capture's touch (an activity) as :data:`_RECORD_TOUCH` inserts it."""
    return {
        "lead_id": lead_id,
        "type": ActivityType.CAPTURED.value,
        "occurred_at": at,
        "received_at": now,
        "properties": properties,
        "recorded_by": actor.name,
    }


NEW_LEAD_AT_ONCE = True
"""PostgreSQL: a capture by email looks up and writes a new lead, its touch and its
queue row in one statement (:func:`_write_new_lead`); False: one statement each, the
path it replaced (a test holds the two equal)."""


def _write_new_lead(
    connection: Connection,
    data: LeadCreate,
    actor: Principal,
    *,
    occurred_at: datetime | None,
    now: datetime,
) -> NewLeadWritten | None:
    """PostgreSQL, a capture dated now naming its person by email only: the look-up
    (locked) and, when nobody is found, the new lead, its touch and its duplicate-queue
    row, in one statement (:mod:`baton.services.new_lead_write`) that also asks whether
    the address is on the suppression list and, inside a group commit that has not read
    it yet, which contract version is active (kept for the group, as
    :func:`~baton.services.contract_rules.active_contract_in` keeps it, so scoring does
    not ask again). None: any other capture, or nobody found and another writer's lead
    in the way of the insert (nothing written: the caller looks up again)."""
    if not (
        NEW_LEAD_AT_ONCE
        and connection.dialect.name == "postgresql"
        and data.email is not None
        and occurred_at is None
        and data.external_id is None
        and data.external_system is None
    ):
        return None
    fill_only = actor.kind == "intake_key"
    consent = decide_consent({}, data.consent_answer(), fill_only=fill_only)
    known = active_contract_known(connection)
    with_contract = group_memo(connection) is not None and not known
    # The new lead's scored columns come back with it unless no contract is active for
    # sure (then nothing is scored): one read fewer per capture when one is.
    active_known = known and active_contract_in(connection) is not None
    unscored = known and not active_known
    written = write_new_lead(
        connection,
        _new_lead_row(data, consent.changes, at=now, now=now),
        _touch_row(0, _touch_properties(data), now, now, actor),
        queued_at=now,
        reads=CAPTURE_READS,
        suppression_keys=suppression_keys(data.email),
        with_contract=with_contract,
        returned=() if unscored else _SCORED_NAMES,
        active_known=active_known,
    )
    if written is not None and written.active is not None:
        active_contract_from(
            connection, written.active_version, written.active_digest, any_active=written.active
        )
    return written


_SCORED_NAMES = tuple(c.name for c in SCORED_COLUMNS)


def _touch_properties(data: LeadCreate) -> dict[str, Any]:
    return {
        name: value for name in ATTRIBUTION_FIELDS if (value := getattr(data, name)) is not None
    }


INTAKE_NO_EXTERNAL_ID = (
    f"{INTAKE_BY_EMAIL}: leave out external_id and external_system (send them with an API token)"
)


def _by_email_only(data: LeadCreate) -> None:
    """A website's public intake key may not name a lead by its id in another system:
    a capture by ``external_id`` would write into (and then hand-raise) a lead that
    Baton matched by an id anyone reading the page can copy. Inbound endpoints
    (``hook:``) may, since their requests are signed by the platform."""
    names = [n for n in ("external_id", "external_system") if getattr(data, n) is not None]
    if names:
        raise ValidationFailed(
            "the lead failed validation", [FieldProblem(n, INTAKE_NO_EXTERNAL_ID) for n in names]
        )


def with_intake_source(data: LeadCreate, actor: Principal) -> LeadCreate:
    """A lead captured through an intake key comes from that key's source (the form or
    website it was issued for) unless the payload names its own: the website does not
    have to repeat it, and attribution is right even when it forgets."""
    if actor.kind == "intake_key" and actor.source and data.source is None:
        return data.model_copy(update={"source": fold_source(actor.source)})
    return data


def with_consent_source(data: LeadCreate, actor: Principal) -> LeadCreate:
    """A capture that answers about consent without saying where it was given records
    who gave it to Baton (the actor's name: ``ana@… (token crm-sync)``,
    ``intake:website``, ``hook:typeform``), as an import records its file and a form
    hook its page. Without it, a changed answer would empty the lead's stored
    ``consent_source``: a consent with no record of where it came from."""
    if data.consent_source is None and (data.consent is not None or data.consent_basis):
        return data.model_copy(update={"consent_source": actor.name[:300]})
    return data


def _new_lead_row(
    data: LeadCreate, consent: dict[str, Any], *, at: datetime, now: datetime
) -> dict[str, Any]:
    """The row of a new lead for a capture at ``at`` (written ``now``), with the
    consent record its answer makes."""
    fields = data.fields()
    return {
        **fields,
        **_derived(fields | {"email": data.email, "company": data.company}),
        "attributes": data.attributes,
        **consent,
        **({"consent_at": at} if consent else {}),
        "last_source": data.source,
        "last_campaign": data.campaign,
        "stage": INITIAL_STAGE.value,
        "stage_changed_at": at,
        "created_at": at,
        "updated_at": now,
        "last_activity_at": at,
        "activity_count": 1,
    }


def capture_lead_in(
    connection: Connection,
    data: LeadCreate,
    *,
    actor: Principal,
    now: datetime,
    occurred_at: datetime | None = None,
) -> CaptureResult:
    """The capture use case inside a transaction the caller owns (the CSV import runs
    many captures in one transaction). Prefer :func:`capture_lead`, which checks that
    ``actor`` may capture; this records ``actor`` on the capture and any handoff.

    ``occurred_at``: when the capture really happened (history): a new lead is created
    then, and the capture touch is dated then; never in the future, nor before an
    existing lead was created. Scored as of its moment: an MQL older than the contract's
    ``mql.live_within_days`` is recorded as history and opens no live handoff."""
    if actor.kind == "intake_key" and actor.key_id is not None:
        _by_email_only(data)
    data = with_consent_source(with_intake_source(data, actor), actor)
    at_once = _write_new_lead(connection, data, actor, occurred_at=occurred_at, now=now)
    if at_once is not None:  # the look-up, and the writes of a new lead, in one statement
        existing = _merged_into(connection, at_once.found)
    else:
        existing = _find_existing(connection, data)
    at = occurred_at or now
    if occurred_at is not None:
        check_occurred_at(
            occurred_at,
            now=now,
            created_at=existing["created_at"] if existing is not None else None,
            previous_at=None,
            field_name="occurred_at",
        )
    answer = data.consent_answer()
    incoming = {**data.fields(), "attributes": data.attributes, **answer}
    fill_only = actor.kind == "intake_key"
    consent = decide_consent(dict(existing or {}), answer, fill_only=fill_only)
    lead_id: int | None = None
    compare_again = False
    written = at_once is not None and at_once.lead_id is not None  # with its touch, queue row
    inserted = at_once.inserted if at_once is not None and written else None
    if existing is None:
        if at_once is not None:
            lead_id = at_once.lead_id
        else:
            values = _new_lead_row(data, consent.changes, at=at, now=now)
            lead_id = connection.execute(_new_lead_statement(connection), values).scalar()
            if lead_id is not None and connection.dialect.name == "sqlite":
                # Scored as inserted, not read back: SQLite keeps each value as given,
                # where PostgreSQL's jsonb may rewrite a number of the attributes.
                inserted = {**{n: values.get(n) for n in _SCORED_NAMES}, "id": lead_id}
        # Another writer may create the same email between our look-up and this insert
        # (PostgreSQL): then nothing is inserted and we update the lead it created.
        if lead_id is None:
            existing = _find_existing(connection, data)
            if existing is None:
                raise Conflict("the lead was changed concurrently; retry the capture")
        created, changed = True, sorted(data.fields())
    if existing is not None:
        lead_id = existing["id"]
        consent = decide_consent(dict(existing), answer, fill_only=fill_only)
        changes = merge_profile(dict(existing), incoming, fill_only=fill_only, at=at)
        free = existing["email_key"] is None and bool(changes.get("email"))
        keep_identity(
            existing, changes, email_free=free and email_free_in(connection, data.email or "")
        )
        # The fields the capture changed, as the caller knows them: not the keys derived
        # from them (email_key, company_key...), which a client never sees.
        created, changed = False, sorted(changes)
        compare_again = compared_fields_changed(changes, existing["email_key"])
        changes.update(_derived(changes))
        connection.execute(
            _TOUCH_LEAD,
            {
                **changes,
                "updated_at": now,
                # Never backwards: a capture run again after a deadlock, with the moment
                # of its first run, may come after a later activity was stored.
                "last_activity_at": max(at, existing["last_activity_at"] or at),
                "target_id": lead_id,
            },
        )
    assert lead_id is not None
    if data.email is not None:
        # A public source's opt-in lifts no suppression (an unsubscribe, a complaint, an
        # erasure): knowing an address is not enough to re-subscribe someone.
        lifts = consent.opt_in and not fill_only
        if at_once is None or at_once.suppressed:  # (its statement asked: on the list?)
            settle_suppressions_in(connection, data.email, created=created, opt_in=lifts, now=now)
    touch_properties = _touch_properties(data)
    if not written:
        connection.execute(_RECORD_TOUCH, _touch_row(lead_id, touch_properties, at, now, actor))
    touch = Event(ActivityType.CAPTURED.value, at, touch_properties)
    score_leads_in(
        connection,
        [lead_id],
        now=now,
        actor=actor,
        new_events={lead_id: [touch]},
        created=[lead_id] if created else (),
        fields={lead_id: inserted} if inserted is not None else None,
    )
    if created and not written:
        queue_duplicate_checks_in(connection, [lead_id], now=now)
    elif compare_again:
        queue_duplicate_checks_in(connection, [lead_id], now=now, again=True)
    return CaptureResult(
        lead_id=lead_id,
        lead=None if actor.kind == "intake_key" else _read_back(connection, lead_id, created),
        created=created,
        changed_fields=changed,
        duplicates="pending" if created or compare_again else "not_needed",
    )


@dataclass(frozen=True)
class Capture:
    """One capture as a group commit runs it: alone (a call), or with the captures next
    to it in its group (:meth:`run_together`, which gives the same results and the same
    database state as calling each in turn at one moment).

    It is dated when it is written (``clock`` is read then, once per group), not when
    it arrived: the captures of a group share one moment, so writing them together
    stamps what writing them one by one would."""

    data: LeadCreate
    actor: Principal
    clock: Clock
    occurred_at: datetime | None = None

    def __call__(self, connection: Connection) -> CaptureResult:
        return self.alone(connection, self.clock.now())

    def alone(self, connection: Connection, now: datetime) -> CaptureResult:
        """This capture by itself, at ``now``."""
        return capture_lead_in(
            connection, self.data, actor=self.actor, now=now, occurred_at=self.occurred_at
        )

    def may_join(self) -> bool:
        """Whether this capture may be written with others as a new lead: a capture
        dated now, naming its person by email only (a lead found by external id or
        phone, or a capture in the past, takes the path of its own)."""
        data = self.data
        return (
            self.occurred_at is None
            and data.email is not None
            and data.external_id is None
            and data.external_system is None
        )

    def identities(self) -> tuple[str, ...]:
        """Every way the capture's look-up (:func:`_find_existing`) may find its person:
        the external id and the email's key (a new external id is found by its email),
        else the phone. Two captures that may reach one row share one of these."""
        data = self.data
        found_by: list[str] = []
        if data.external_id is not None and data.external_system is not None:
            found_by.append(f"ext:{data.external_system}\x1f{data.external_id}")
        if data.email is not None:
            found_by.append(email_key(data.email))
        elif data.phone is not None:
            found_by.append(f"phone:{data.phone}")
        return tuple(found_by)

    @staticmethod
    def lock_together(connection: Connection, captures: Sequence[Capture]) -> None:
        """PostgreSQL: before a group's captures run, take a transaction lock on each
        person they are about, all in one order (every group sorts the same way). A
        group locks its people's rows in arrival order and holds them to its commit, so
        two groups (two lanes, two processes) capturing the same people in crossed
        orders deadlocked, a second each in ``deadlock_timeout`` (a newcomer's trial:
        30 clients re-capturing 10 people, 12-21 captures/s). One statement; SQLite's
        one writer needs nothing."""
        if connection.dialect.name != "postgresql" or len(captures) < 2:
            return
        keys = sorted({_lock_key(who) for capture in captures for who in capture.identities()})
        connection.execute(_LOCK_PEOPLE, {"people": keys})

    @staticmethod
    def run_together(connection: Connection, captures: Sequence[Capture]) -> list[CaptureResult]:
        """Run ``captures`` in order inside the caller's transaction, as if one by one:
        each maximal run of captures of new people, by one actor and with emails
        unseen in the run, is written by :func:`_new_leads_in` (a statement per step
        for the whole run, not per capture; on PostgreSQL a run or stretch of fewer
        than :data:`TOGETHER_FROM` one capture at a time, each by its one statement);
        every other capture runs alone, in its place."""
        if not captures:
            return []
        results: list[CaptureResult] = []
        run: list[Capture] = []
        keys: set[str] = set()
        now = captures[0].clock.now()

        def flush() -> None:
            if run:
                results.extend(_new_leads_in(connection, run, now))
                run.clear()
                keys.clear()

        for capture in captures:
            key = email_key(capture.data.email or "") if capture.may_join() else None
            if key is None:
                flush()
                results.append(capture.alone(connection, now))
                continue
            if key in keys or (run and run[0].actor != capture.actor):
                flush()
            run.append(capture)
            keys.add(key)
        flush()
        return results


_LOCK_PEOPLE = text(
    f"SELECT count(pg_advisory_xact_lock({PEOPLE_LOCKS}, person))"
    " FROM unnest(CAST(:people AS integer[])) AS person"
)


def _lock_key(identity: str) -> int:
    return int.from_bytes(
        hashlib.blake2b(identity.encode(), digest_size=4).digest(), "big", signed=True
    )


def _new_leads_in(
    connection: Connection, run: Sequence[Capture], now: datetime
) -> list[CaptureResult]:
    """Captures (:meth:`Capture.may_join`, one actor, distinct emails) in order: those
    whose person is already a lead run alone, in their place; each stretch of new
    people between them is created together, with the rows, suppressions, touches,
    scores and duplicate checks each capture would have written. A run or a stretch
    shorter than :func:`_together_from` (PostgreSQL: fewer than three) is written one
    capture at a time, and such a run skips the look-up of stored people (each capture
    looks its person up in its own statement)."""
    if len(run) < _together_from(connection):
        return [capture.alone(connection, now) for capture in run]
    keys = [email_key(c.data.email or "") for c in run]
    stored = {key for (key,) in find_by_keys(connection, leads, "email_key", keys)}
    results: list[CaptureResult] = []
    fresh: list[Capture] = []
    for capture, key in zip(run, keys, strict=True):
        if key in stored:
            results.extend(_created_together(connection, fresh, now))
            fresh = []
            results.append(capture.alone(connection, now))
        else:
            fresh.append(capture)
    results.extend(_created_together(connection, fresh, now))
    return results


def _created_together(
    connection: Connection, run: Sequence[Capture], now: datetime
) -> list[CaptureResult]:
    """New leads for captures of people no lead has (checked by the caller), as
    :func:`capture_lead_in` creates one each. A lead another writer created meanwhile
    (PostgreSQL) is a :class:`Conflict`: the group then runs each capture alone. A
    stretch shorter than :func:`_together_from` is written one capture at a time."""
    if len(run) < _together_from(connection):
        return [capture.alone(connection, now) for capture in run]
    actor = run[0].actor
    fill_only = actor.kind == "intake_key"
    prepared: list[tuple[LeadCreate, ConsentDecision]] = []
    rows: list[dict[str, Any]] = []
    for capture in run:  # by email only (may_join): an intake key's rule holds already
        data = with_consent_source(with_intake_source(capture.data, actor), actor)
        consent = decide_consent({}, data.consent_answer(), fill_only=fill_only)
        rows.append(_new_lead_row(data, consent.changes, at=now, now=now))
        prepared.append((data, consent))
    columns = sorted({name for row in rows for name in row})
    ids = {key: lead_id for lead_id, key in _insert_new_leads(connection, rows, columns)}
    if len(ids) < len(rows):
        raise Conflict("a lead was created concurrently; retry the capture")
    lead_ids = [ids[row["email_key"]] for row in rows]
    suppressed = suppressed_addresses_in(connection, [data.email or "" for data, _ in prepared])
    for data, consent in prepared:
        if data.email in suppressed:
            lifts = consent.opt_in and not fill_only
            settle_suppressions_in(connection, data.email, created=True, opt_in=lifts, now=now)
    touches = {}
    touch_rows = []
    for lead_id, (data, _) in zip(lead_ids, prepared, strict=True):
        properties = _touch_properties(data)
        touch_rows.append(_touch_row(lead_id, properties, now, now, actor))
        touches[lead_id] = [Event(ActivityType.CAPTURED.value, now, properties)]
    if NEW_LEADS_UNNEST and connection.dialect.name == "postgresql":
        insert_rows(connection, activities, touch_rows)  # one unnest, as the leads
    else:
        connection.execute(_RECORD_TOUCH, touch_rows)
    score_leads_in(connection, lead_ids, now=now, actor=actor, new_events=touches, created=lead_ids)
    queue_duplicate_checks_in(connection, lead_ids, now=now)
    read_back = {} if fill_only else _read_back_new(connection, lead_ids)
    return [
        CaptureResult(
            lead_id=lead_id,
            lead=read_back.get(lead_id),
            created=True,
            changed_fields=sorted(data.fields()),
            duplicates="pending",
        )
        for lead_id, (data, _) in zip(lead_ids, prepared, strict=True)
    ]


TOGETHER_FROM = 3
"""PostgreSQL: the fewest new people :func:`_new_leads_in` writes together
(:func:`_created_together`: a group of two sent about ten statements, with the people's
locks, the look-up by email (once per run), the leads, the suppressions, the contract
(once per group), the touches, the scores and the queue rows each a statement of its
own). A shorter run or stretch is written one capture at a time, each new person by its
one write statement (:data:`NEW_LEAD_AT_ONCE`; the score row is one more when a contract
is active), which for two people is fewer round trips. Measured in process (1,000-1,500
groups of new people, the client's CPU and PostgreSQL's per capture, together against
one by one): groups of 2, 578-613 + 317-357 µs against 461-485 + 257-277; of 3, 391-398
+ 240-243 against 381-400 + 223-237; of 4, 320 + 220 against 426 + 297. With the example
contract active: of 2, 862 + 473 against 735 + 403; of 3, 595 + 353 against 652 + 360;
of 4, 469 + 280 against 598 + 323. Over HTTP (``bench/intake_http.py``'s load, 8
connections, ``--workers 2``, 4 alternated pairs of 12 s on one database): 1,038-1,210
leads/s against 980-1,075 with runs of 2 together. SQLite writes every run of two or
more together: its captures have no round trips to save (in process, groups of 2: 391 µs
of CPU per capture together against 460 one by one; of 3: 286 against 405)."""


def _together_from(connection: Connection) -> int:
    """The fewest new people a run writes together on this connection's database
    (:data:`TOGETHER_FROM` on PostgreSQL, where each capture alone is one statement)."""
    if NEW_LEAD_AT_ONCE and connection.dialect.name == "postgresql":
        return TOGETHER_FROM
    return 2


NEW_LEADS_UNNEST = True
"""PostgreSQL: the new leads of a run, and their touches, go in by one ``unnest`` of an
array per column each (:func:`~baton.store.bulk.insert_returning`,
:func:`~baton.store.bulk.insert_rows`): statements whose text is the same for 2 leads or
9, so psycopg converts them once and prepares them, where the multi-row ``VALUES`` of
the leads (one placeholder per value, 52 for two leads) was parsed again at each group
(about 30 % of a grouped capture's CPU in process, measured). False: SQLAlchemy's
multi-row ``VALUES`` and ``executemany``, the paths they replaced (a test holds the two
equal)."""


def _insert_new_leads(
    connection: Connection, rows: Sequence[dict[str, Any]], columns: Sequence[str]
) -> Sequence[tuple[Any, ...]]:
    """The (id, email key) of each row of ``rows`` inserted (``ON CONFLICT DO
    NOTHING``), every row given all of ``columns`` (None where it has none)."""
    full = [{c: row.get(c) for c in columns} for row in rows]
    if NEW_LEADS_UNNEST and connection.dialect.name == "postgresql":
        return insert_returning(connection, leads, full, ("id", "email_key"))
    return list(connection.execute(_new_lead_statement(connection, with_key=True), full))


def _read_back_new(connection: Connection, lead_ids: Sequence[int]) -> dict[int, Lead]:
    """New leads as :func:`_read_back` reads each (a new lead has no tags)."""
    rows = connection.execute(select(leads).where(leads.c.id.in_(lead_ids))).mappings()
    return {row["id"]: _to_lead(row, []) for row in rows}


def capture_lead(
    ctx: Context, data: LeadCreate, *, actor: Principal, occurred_at: datetime | None = None
) -> CaptureResult:
    """Create a lead, or update the one with the same email, in one transaction
    (unless ``BATON_GROUP_COMMIT=off``, committed together with the captures that arrive
    at the same moment, as if each had its own:
    :meth:`~baton.services.context.Context.write_grouped`, :meth:`Capture.run_together`).

    Capture is create-or-update across all leads (the same email anywhere is one
    person), so only those who reach every lead may capture: marketing, admins, intake
    keys and the trusted operator."""
    return ctx.write_grouped(_capture_work(ctx, data, actor=actor, occurred_at=occurred_at))


async def capture_lead_async(
    ctx: Context, data: LeadCreate, *, actor: Principal, occurred_at: datetime | None = None
) -> CaptureResult:
    """:func:`capture_lead` awaited on an event loop (the API): the same use case, the
    same transaction and group, without a thread held while the group runs."""
    work = _capture_work(ctx, data, actor=actor, occurred_at=occurred_at)
    return await ctx.write_grouped_async(work)


def _capture_work(
    ctx: Context, data: LeadCreate, *, actor: Principal, occurred_at: datetime | None
) -> Callable[[Connection], CaptureResult]:
    allowed(actor, Action.CAPTURE_LEAD)
    if actor.kind == "intake_key" and actor.key_id is not None:
        _by_email_only(data)  # before the group: a predictable 422 never joins one
    return Capture(data, actor, ctx.clock, occurred_at)


def _read_back(connection: Connection, lead_id: int, created: bool) -> Lead:
    tags = [] if created else tags_of(connection, [lead_id])[lead_id]  # a new lead has none
    return _to_lead(_locked(connection, lead_id), tags)


def _to_lead(row: RowMapping, tags: list[str]) -> Lead:
    return Lead.model_validate({**row, "tags": tags})


def get_lead(ctx: Context, lead_id: int, *, actor: Principal) -> Lead:
    """The lead with this id (a merged lead still answers, with ``merged_into_id``).

    A lead out of ``actor``'s reach (for a rep, any lead not in one of their handoffs)
    is :class:`NotFound`, exactly like one that does not exist."""
    with ctx.read() as connection:
        check_lead(connection, actor, Action.READ_LEADS, lead_id)
        row = connection.execute(select(leads).where(leads.c.id == lead_id)).mappings().first()
        if row is None:
            raise NotFound(f"lead {lead_id} does not exist")
        return _to_lead(row, tags_of(connection, [lead_id])[lead_id])


@dataclass(frozen=True)
class LeadPage:
    """One page of leads, newest first, with the cursor for the next page."""

    items: list[Lead]
    next_before_id: int | None
    total: int


def list_leads(
    ctx: Context,
    *,
    actor: Principal,
    stage: Stage | None = None,
    search: str | None = None,
    tag: str | None = None,
    source: str | None = None,
    limit: int = 50,
    before_id: int | None = None,
) -> LeadPage:
    """Leads matching the filters, newest first, ``limit`` at a time (keyset paging, so
    deep pages stay fast). Merged leads are left out, and so are leads out of
    ``actor``'s reach (the total counts only what ``actor`` may see)."""
    level = allowed(actor, Action.READ_LEADS)
    conditions: list[Any] = [leads.c.merged_into_id.is_(None)]
    if level is not Reach.ALL:
        conditions.append(lead_scope(actor, level))
    if stage is not None:
        conditions.append(leads.c.stage == stage.value)
    if source:
        conditions.append(leads.c.source == fold_source(source))
    if tag:
        conditions.append(
            leads.c.id.in_(select(lead_tags.c.lead_id).where(lead_tags.c.tag == tag.lower()))
        )
    if search and "\x00" in search:
        raise ValidationFailed("invalid search", [FieldProblem("q", "cannot contain NUL")])
    tokens = search_tokens(search or "")
    if tokens:  # each word starts a word of the email, name or company (the index)
        conditions.append(search_condition(ctx.dialect, tokens))
    with ctx.read() as connection:
        total = connection.execute(
            select(func.count()).select_from(leads).where(*conditions)
        ).scalar_one()
        page_conditions = list(conditions)
        if before_id is not None:
            page_conditions.append(leads.c.id < before_id)
        rows = (
            connection.execute(
                select(leads).where(*page_conditions).order_by(leads.c.id.desc()).limit(limit + 1)
            )
            .mappings()
            .all()
        )
        more = len(rows) > limit
        rows = rows[:limit]
        tags = tags_of(connection, [r["id"] for r in rows])
    return LeadPage(
        items=[_to_lead(r, tags[r["id"]]) for r in rows],
        next_before_id=rows[-1]["id"] if more and rows else None,
        total=total,
    )


def change_stage(
    ctx: Context,
    lead_id: int,
    target: Stage,
    *,
    actor: Principal,
    reason: str,
    occurred_at: datetime | None = None,
) -> Transition:
    """Move a lead to ``target`` if the lifecycle allows it (else
    :class:`~baton.domain.errors.InvalidTransitionError`, naming the allowed stages).

    Marketing and admins move any lead, a sales manager the leads of their team's
    handoffs and of the queue; a rep moves a lead only through their handoff's verdicts."""
    with ctx.write() as connection:
        check_lead(connection, actor, Action.CHANGE_STAGE, lead_id)
        if target in SALES_STAGES:
            lock_lead(connection, lead_id)
            found = connection.execute(
                select(handoffs.c.id, handoffs.c.status).where(
                    handoffs.c.lead_id == lead_id, handoffs.c.status.in_(OPEN_HANDOFF_STATUSES)
                )
            ).first()
            open_id = found[0] if found else None
            if found is not None and found[1] == "queued":
                # Nobody in sales has it yet: a manual move takes it out of the queue.
                close_open_handoff_in(
                    connection,
                    lead_id,
                    outcome=f"lead moved to {target.value} by hand",
                    now=ctx.clock.now(),
                    actor=actor,
                )
            elif open_id is not None:
                raise Conflict(
                    f"lead {lead_id} is in handoff {open_id}: sales moves it with a verdict "
                    f"(POST /api/v1/handoffs/{open_id}/accept, /qualify, /won, /lost ...)"
                )
        return change_stage_in(
            connection,
            lead_id,
            target,
            actor=actor,
            reason=reason,
            now=ctx.clock.now(),
            occurred_at=occurred_at,
        )


SALES_STAGES = frozenset({Stage.SAL, Stage.SQL, Stage.OPPORTUNITY, Stage.CUSTOMER, Stage.LOST})
"""Stages that belong to sales: while a lead has an open handoff they change only
through the handoff's verdicts, so the handoff, its SLA and the lead never disagree."""


def stage_history(ctx: Context, lead_id: int, *, actor: Principal) -> Sequence[Transition]:
    """The lead's own transitions in order (not those brought in by a merge); a lead
    out of ``actor``'s reach is :class:`NotFound`."""
    with ctx.read() as connection:
        check_lead(connection, actor, Action.READ_LEADS, lead_id)
        rows = connection.execute(
            select(transitions)
            .where(transitions.c.lead_id == lead_id, transitions.c.merged_from_id.is_(None))
            .order_by(transitions.c.occurred_at, transitions.c.id)
        ).mappings()
        return [
            Transition(
                Stage(r["from_stage"]),
                Stage(r["to_stage"]),
                r["actor"],
                r["reason"],
                r["occurred_at"],
                r["contract_version"],
                historical=bool(r["historical"]),
                recorded_at=r["recorded_at"],
            )
            for r in rows
        ]
