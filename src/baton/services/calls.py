"""Inbound calls: someone rang sales, and Baton records it as a hand-raise.

:func:`log_inbound_call` finds the caller's lead (by id, else email, else phone
number), creates it when nobody is known by that email or number, and records an
``inbound_call`` activity on it in the same transaction. The activity is scored like
any other event, so where the active contract lists ``inbound_call`` as a hand-raise
(the example contract does) the lead becomes an MQL at once and is routed: the answer
says which handoff it is in and whose it is.

One number on several leads (a switchboard, a shared office line, duplicates not yet
merged): the call goes to the lead that was active most recently, and the answer says
so, naming how many leads share the number.

Who may: logging a call creates leads and records activities for any lead, and the
answer shows the lead and its handoff, so it takes ``CAPTURE_LEAD``,
``INGEST_ACTIVITY`` and ``READ_LEADS``: admins and marketing (and the operator). Intake
keys may not (a public key must not read leads back); a rep who takes a call on a lead
of theirs logs it on the handoff (``POST /api/v1/handoffs/{id}/touch``, kind ``call``),
which is where their SLA counts it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection

from baton.domain.access import Action, Principal
from baton.domain.activities import ActivityCreate, ActivityType
from baton.domain.calls import CallCreate
from baton.domain.contact import email_key
from baton.domain.errors import FieldProblem, NotFound, ValidationFailed
from baton.domain.leads import Lead, LeadCreate, fold_source
from baton.domain.scans import RosterRep, resolve_rep
from baton.services.access import allowed
from baton.services.activities import ingest_validated_in
from baton.services.context import Context
from baton.services.leads import capture_lead_in
from baton.services.queries import lock_survivors, tags_of
from baton.store.tables import OPEN_HANDOFF_STATUSES, handoffs, leads, reps

CALL_SOURCE = "phone"
"""The source of a lead created by a call that names none."""


@dataclass(frozen=True)
class HandoffRef:
    """The open handoff a lead is in: its id, status and rep (none while queued)."""

    id: int
    status: str
    rep_email: str | None
    rep_name: str | None


@dataclass(frozen=True)
class CallResult:
    """What logging a call did: the lead (as stored now), how it was found
    (``lead_id``, ``email``, ``phone`` or ``created``), a note when the choice needs
    saying, the activity, whether it was a retry, and the lead's open handoff."""

    lead: Lead
    lead_created: bool
    matched_by: str
    note: str | None
    activity_id: int | None
    duplicate: bool
    became_mql: bool
    handoff: HandoffRef | None


def find_rep_in(connection: Connection, written: str) -> RosterRep:
    """The rep ``written`` names (email or name, see
    :func:`baton.domain.scans.resolve_rep`); :class:`ValueError` naming the problem."""
    roster = [
        RosterRep(int(r.id), str(r.email), str(r.name))
        for r in connection.execute(select(reps.c.id, reps.c.email, reps.c.name))
    ]
    return resolve_rep(written, roster)


def open_handoff_of(connection: Connection, lead_id: int) -> HandoffRef | None:
    """The lead's open handoff (queued, assigned, accepted or qualified), if any."""
    row = connection.execute(
        select(handoffs.c.id, handoffs.c.status, reps.c.email, reps.c.name)
        .select_from(handoffs.outerjoin(reps, reps.c.id == handoffs.c.rep_id))
        .where(handoffs.c.lead_id == lead_id, handoffs.c.status.in_(OPEN_HANDOFF_STATUSES))
        .order_by(handoffs.c.id.desc())
    ).first()
    if row is None:
        return None
    return HandoffRef(int(row[0]), str(row[1]), row[2], row[3])


def _by_phone(connection: Connection, phone: str) -> tuple[int | None, str | None]:
    """The live lead with this number that was active most recently, and a note when
    several share it."""
    rows = connection.execute(
        select(leads.c.id)
        .where(leads.c.phone == phone, leads.c.merged_into_id.is_(None))
        .order_by(
            leads.c.last_activity_at.is_(None),
            leads.c.last_activity_at.desc(),
            leads.c.id.desc(),
        )
    ).all()
    if not rows:
        return None, None
    chosen = int(rows[0][0])
    if len(rows) == 1:
        return chosen, None
    others = ", ".join(str(r[0]) for r in rows[1:6]) + (" ..." if len(rows) > 6 else "")
    return chosen, (
        f"{len(rows)} leads have the number {phone}; the call went to lead {chosen}, the most "
        f"recently active (the others: {others})"
    )


def _find_lead(connection: Connection, call: CallCreate) -> tuple[int | None, str, str | None]:
    """(lead id or ``None``, how it was found, note)."""
    if call.lead_id is not None:
        final = lock_survivors(connection, [call.lead_id]).get(call.lead_id)
        if final is None:
            raise NotFound(f"lead {call.lead_id} does not exist")
        note = (
            f"lead {call.lead_id} was merged into lead {final}; the call is on lead {final}"
            if final != call.lead_id
            else None
        )
        return final, "lead_id", note
    if call.email is not None:
        found = connection.execute(
            select(leads.c.id).where(leads.c.email_key == email_key(call.email))
        ).scalar()
        if found is not None:
            final = lock_survivors(connection, [int(found)]).get(int(found))
            return final, "email", None
    if call.phone is not None:
        chosen, note = _by_phone(connection, call.phone)
        if chosen is not None:
            lock_survivors(connection, [chosen])
            return chosen, "phone", note
    return None, "created", None


def validation_context(ctx: Context) -> dict[str, Any]:
    return {"default_region": ctx.settings.default_phone_region, "now": ctx.clock.now()}


def log_inbound_call(ctx: Context, call: CallCreate, *, actor: Principal) -> CallResult:
    """Record an inbound call on its lead (found or created) as an ``inbound_call``
    activity, in one transaction; see the module docstring for who may and how the
    lead is found. A retry with the same ``call_id`` stores nothing twice and answers
    with the first activity."""
    allowed(actor, Action.CAPTURE_LEAD)
    allowed(actor, Action.INGEST_ACTIVITY)
    allowed(actor, Action.READ_LEADS)
    now = ctx.clock.now()
    with ctx.write() as connection:
        rep = None
        if call.rep is not None:
            try:
                rep = find_rep_in(connection, call.rep)
            except ValueError as exc:
                raise ValidationFailed(str(exc), [FieldProblem("rep", str(exc))]) from None
        lead_id, matched_by, note = _find_lead(connection, call)
        created = False
        if lead_id is None:
            source = fold_source(call.source) if call.source else CALL_SOURCE
            data = LeadCreate(email=call.email, phone=call.phone, source=source)
            captured = capture_lead_in(connection, data, actor=actor, now=now)
            lead_id, created = captured.lead_id, captured.created
            matched_by = "created" if created else "email"
        properties: dict[str, Any] = {"direction": "inbound"}
        if call.phone is not None:
            properties["phone"] = call.phone
        if call.duration_seconds is not None:
            properties["duration_seconds"] = call.duration_seconds
        if rep is not None:
            properties["rep"] = rep.email
            properties["rep_name"] = rep.name
        if call.notes:
            properties["notes"] = call.notes
        if call.recording_url:
            properties["recording_url"] = call.recording_url
        if call.call_id:
            properties["call_id"] = call.call_id
        event = ActivityCreate(
            lead_id=lead_id,
            type=ActivityType.INBOUND_CALL,
            occurred_at=call.occurred_at,
            properties=properties,
            idempotency_key=f"call:{call.call_id}" if call.call_id else None,
        )
        report = ingest_validated_in(
            connection, [(0, event)], actor=actor, now=now, return_ids=True
        )
        if report.errors:
            raise NotFound(report.errors[0].message)
        handoff = open_handoff_of(connection, lead_id)
        row = connection.execute(select(leads).where(leads.c.id == lead_id)).mappings().one()
        lead = Lead.model_validate({**row, "tags": tags_of(connection, [lead_id])[lead_id]})
    return CallResult(
        lead=lead,
        lead_created=created,
        matched_by=matched_by,
        note=note,
        activity_id=report.activity_ids[0],
        duplicate=report.duplicates > 0,
        became_mql=lead_id in report.mql,
        handoff=handoff,
    )
