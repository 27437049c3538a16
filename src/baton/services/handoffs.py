"""The handoff: an MQL given to an available rep, held to the SLA, and sales' verdict.

This module holds what people do with handoffs: read them, give verdicts, assign and
reassign. Opening and routing a handoff happen inside the stage change that made the
lead an MQL, and are in :mod:`baton.services.routing` (with the routing lock, the SLA
deadlines and the event log), below :mod:`baton.services.stages`.

Verdicts (accept, reject, touch, qualify, won, lost) lock the lead, then the handoff,
and change the lead's stage only through :func:`baton.services.stages.change_stage_in`
(which closes the handoff when the lead leaves sales' hands).
Notifications are outbox rows, delivered by the worker after commit.

Access (:mod:`baton.domain.access`): a rep reads and gives verdicts on their own
handoffs, a sales manager on their team's (and the unassigned queue's), an admin on
any; only a manager (of the team) or an admin reassigns, and only to a rep they reach.
A handoff out of the actor's reach is reported as missing, exactly as one that does
not exist, so ids cannot be probed. Routing, the SLA ladder and the queue act as
:data:`baton.services.routing.SYSTEM`.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import select, update
from sqlalchemy.engine import Connection, RowMapping

from baton.domain.access import Action, Principal, Reach
from baton.domain.business_hours import business_minutes_between
from baton.domain.contract import HandoffContract
from baton.domain.errors import Conflict, FieldProblem, NotFound, ValidationFailed
from baton.domain.history import is_live
from baton.domain.lifecycle import Stage, check_deal_value
from baton.domain.routing import (
    Rep,
    RoutingDecision,
    manual_assignment_check,
)
from baton.domain.sla import deadlines_from, next_step
from baton.services.access import allowed, check_handoff, handoff_scope, rep_scope
from baton.services.context import Context
from baton.services.contract_rules import active_rules_in
from baton.services.nurture import enroll_on_rejection_in
from baton.services.outbox import publish
from baton.services.queries import insert_ignoring_conflicts
from baton.services.reps import open_loads
from baton.services.routing import (
    give_in,
    lock_reps,
    log_event,
    reassign_in,
    rep_of,
    webhook_data,
)
from baton.services.stages import change_stage_in
from baton.store.tables import (
    accounts,
    handoff_events,
    handoffs,
    leads,
)

TouchKind = Literal["call", "email", "meeting"]


@dataclass(frozen=True)
class HandoffPublic:
    """A handoff as reps and managers see it."""

    id: int
    lead_id: int
    rep_id: int | None
    rep_email: str | None
    status: str
    chain_id: int | None
    contract_version: int | None
    mql_at: datetime
    assigned_at: datetime | None
    notified_at: datetime | None
    accepted_at: datetime | None
    first_touch_at: datetime | None
    closed_at: datetime | None
    outcome: str | None
    rejection_code: str | None
    marketing_credit: bool | None
    accept_due_at: datetime | None
    touch_due_at: datetime | None
    next_step_at: datetime | None
    reassignments: int
    routing: dict[str, Any]
    qualification: dict[str, Any] | None
    deal_value: float | None
    created_at: datetime | None = None

    @property
    def system_delay_seconds(self) -> float | None:
        """From the handoff's creation (the MQL moment, or the reassignment) to the rep's
        notification being accepted by the mail server: queueing and Baton's own
        delay, never the rep's."""
        if self.notified_at is None or self.created_at is None:
            return None
        return (self.notified_at - self.created_at).total_seconds()

    @property
    def rep_delay_seconds(self) -> float | None:
        """From the notification to the rep's first touch."""
        if self.first_touch_at is None or self.notified_at is None:
            return None
        return max(0.0, (self.first_touch_at - self.notified_at).total_seconds())

    @property
    def speed_to_lead_seconds(self) -> float | None:
        """From the MQL moment to this handoff's first touch (wall-clock)."""
        if self.first_touch_at is None:
            return None
        return (self.first_touch_at - self.mql_at).total_seconds()


@dataclass(frozen=True)
class HandoffEvent:
    at: datetime
    kind: str
    actor: str
    detail: dict[str, Any]


# --- reading -----------------------------------------------------------------------


def handoff_query() -> Any:
    """Handoff rows with their rep's email as ``rep_email`` (add ``where`` clauses)."""
    from baton.store.tables import reps

    return select(handoffs, reps.c.email.label("rep_email")).select_from(
        handoffs.outerjoin(reps, reps.c.id == handoffs.c.rep_id)
    )


def _to_public(row: Mapping[Any, Any]) -> HandoffPublic:
    return HandoffPublic(**{k: row[k] for k in HandoffPublic.__dataclass_fields__})


def _handoff_in(connection: Connection, handoff_id: int, where: Any = None) -> HandoffPublic:
    """One handoff (within ``where``, when given), or :class:`NotFound`."""
    query = handoff_query().where(handoffs.c.id == handoff_id)
    if where is not None:
        query = query.where(where)
    row = connection.execute(query).mappings().first()
    if row is None:
        raise NotFound(f"handoff {handoff_id} does not exist")
    return _to_public(row)


def get_handoff(ctx: Context, handoff_id: int, *, actor: Principal) -> HandoffPublic:
    """One handoff; one out of the actor's reach is missing (404), never forbidden, so
    a rep cannot learn which ids are someone else's."""
    level = allowed(actor, Action.READ_HANDOFFS)
    with ctx.read() as connection:
        return _handoff_in(
            connection, handoff_id, None if level is Reach.ALL else handoff_scope(actor, level)
        )


def _list_query(
    *,
    status: Collection[str] | None,
    rep_email: str | None,
    lead_id: int | None,
    limit: int,
    before_id: int | None,
) -> Any:
    from baton.store.tables import reps

    query = handoff_query().order_by(handoffs.c.id.desc()).limit(limit)
    if status:
        query = query.where(handoffs.c.status.in_(list(status)))
    if rep_email:
        query = query.where(reps.c.email == rep_email.strip().lower())
    if lead_id is not None:
        query = query.where(handoffs.c.lead_id == lead_id)
    if before_id is not None:
        query = query.where(handoffs.c.id < before_id)
    return query


def _listed(ctx: Context, query: Any, actor: Principal, level: Reach) -> list[HandoffPublic]:
    if level is not Reach.ALL:
        query = query.where(handoff_scope(actor, level))
    with ctx.read() as connection:
        return [_to_public(r) for r in connection.execute(query).mappings()]


def list_handoffs(
    ctx: Context,
    *,
    actor: Principal,
    status: Collection[str] | None = None,
    rep_email: str | None = None,
    lead_id: int | None = None,
    limit: int = 100,
    before_id: int | None = None,
) -> list[HandoffPublic]:
    """Newest first, only those within the actor's reach (a rep's own, a manager's
    team's and the queue). A rep's inbox is their open handoffs."""
    level = allowed(actor, Action.READ_HANDOFFS)
    query = _list_query(
        status=status, rep_email=rep_email, lead_id=lead_id, limit=limit, before_id=before_id
    )
    return _listed(ctx, query, actor, level)


def handoff_queue(
    ctx: Context, *, actor: Principal, limit: int = 100, before_id: int | None = None
) -> list[HandoffPublic]:
    """The unassigned queue, newest first: a manager's and an admin's to watch (a rep
    has no handoff in it, and marketing no say over who takes one)."""
    level = allowed(actor, Action.READ_QUEUE)
    query = _list_query(
        status=["queued"], rep_email=None, lead_id=None, limit=limit, before_id=before_id
    )
    return _listed(ctx, query, actor, level)


def lead_handoffs_in(connection: Connection, lead_id: int, *, limit: int) -> list[HandoffPublic]:
    """Every handoff of a lead, newest first, without an access check: for callers
    that already checked the actor reaches the lead (the packet shows its rep the
    verdicts of earlier reps, so the customer never explains twice)."""
    query = _list_query(status=None, rep_email=None, lead_id=lead_id, limit=limit, before_id=None)
    return [_to_public(r) for r in connection.execute(query).mappings()]


def _changed(ctx: Context, handoff_id: int) -> HandoffPublic:
    """A handoff as a verdict just left it, for the actor who gave it: the verdict
    checked their reach (a reassignment's new handoff may go to a rep outside it)."""
    with ctx.read() as connection:
        return _handoff_in(connection, handoff_id)


def handoff_events_of(ctx: Context, handoff_id: int, *, actor: Principal) -> list[HandoffEvent]:
    """What happened to a handoff, oldest first (404 when it is out of reach)."""
    allowed(actor, Action.READ_HANDOFFS)
    with ctx.read() as connection:
        rep_id = connection.execute(
            select(handoffs.c.rep_id).where(handoffs.c.id == handoff_id)
        ).first()
        if rep_id is None:
            raise NotFound(f"handoff {handoff_id} does not exist")
        check_handoff(connection, actor, Action.READ_HANDOFFS, rep_id[0], handoff_id)
        return [
            HandoffEvent(r.occurred_at, r.kind, r.actor, r.detail)
            for r in connection.execute(
                select(handoff_events)
                .where(handoff_events.c.handoff_id == handoff_id)
                .order_by(handoff_events.c.occurred_at, handoff_events.c.id)
            )
        ]


# --- assigning by hand (routing itself is baton.services.routing) --------------------


def assign_handoff(
    ctx: Context,
    handoff_id: int,
    *,
    to_email: str,
    actor: Principal,
    override_reason: str | None = None,
) -> HandoffPublic:
    """A manager (of the rep's team) or an admin gives a **queued** handoff to a rep they
    name, who must be within their reach, active and under capacity. A rep who is away,
    out of office or outside working hours gets it only with ``override_reason`` (the
    manager knows they are covering), which is recorded on the handoff and its
    ``assigned`` event; a lead outside the rep's territory is noted, not refused.

    The same path as the worker's assignment: the lead, then the handoff, then the
    rep's row lock (so capacity counts never race), deadlines by the active contract in
    the rep's working hours, the email, the webhook and the event naming who did it.
    Shared by the API, the CLI and the web app."""
    allowed(actor, Action.REASSIGN)
    reason = (override_reason or "").strip() or None
    if override_reason is not None and reason is None:
        raise ValidationFailed(
            "an override needs a reason", [FieldProblem("override_reason", "is empty")]
        )
    now = ctx.clock.now()
    with ctx.write() as connection:
        handoff = _lock(connection, handoff_id)
        check_handoff(connection, actor, Action.REASSIGN, handoff["rep_id"], handoff_id)
        if handoff["status"] != "queued":
            raise Conflict(
                f"cannot assign handoff {handoff_id}: it is {handoff['status']}, and only a "
                "queued handoff is assigned (reassign moves one a rep has)"
            )
        target = _target_rep(connection, actor, to_email)
        version, contract = active_rules_in(connection)
        if contract is None:
            raise Conflict("no contract is active")
        lock_reps(connection, [target])
        rep = rep_of(connection, target)
        if rep is None:
            raise NotFound(f"rep {to_email} does not exist")
        lead = (
            connection.execute(select(leads).where(leads.c.id == handoff["lead_id"]))
            .mappings()
            .one()
        )
        load = open_loads(connection, [rep.id]).get(rep.id, 0)
        check = manual_assignment_check(rep, dict(lead), now, load)
        if check.refused is not None:
            raise Conflict(f"cannot assign handoff {handoff_id} to {rep.email}: {check.refused}")
        if check.unavailable is not None and reason is None:
            raise Conflict(
                f"{rep.email} cannot take leads now ({check.unavailable}); to assign anyway, "
                "give the reason to override (it is recorded)"
            )
        why = f"assigned by {actor.name}"
        if check.unavailable is not None:
            why += f" although {check.unavailable}: {reason}"
        decision = RoutingDecision(rep.id, why, strategy="manual")
        overridden = {"unavailable": check.unavailable, "override_reason": reason}
        if check.unavailable is None:
            overridden = {}
        notes = {"uncovered": check.uncovered} if check.uncovered else {}
        give_in(
            connection,
            handoff,
            contract,
            version,
            decision,
            {rep.id: rep},
            now=now,
            actor=actor,
            routing={**decision.to_json(), "assigned_by": actor.name, **overridden, **notes},
            detail={**overridden, **notes},
        )
    return _changed(ctx, handoff_id)


# --- verdicts ----------------------------------------------------------------------


def _lock(connection: Connection, handoff_id: int) -> RowMapping:
    """Lock the handoff's lead, then the handoff: the same order as ingest (lead, then
    handoff), so a verdict and a stage change on one lead never deadlock."""
    lead_id = connection.execute(
        select(handoffs.c.lead_id).where(handoffs.c.id == handoff_id)
    ).scalar()
    if lead_id is not None:
        connection.execute(select(leads.c.id).where(leads.c.id == lead_id).with_for_update())
    row = (
        connection.execute(select(handoffs).where(handoffs.c.id == handoff_id).with_for_update())
        .mappings()
        .first()
    )
    if row is None:
        raise NotFound(f"handoff {handoff_id} does not exist")
    return row


def _take(
    connection: Connection,
    handoff_id: int,
    statuses: Collection[str],
    verb: str,
    actor: Principal,
    *,
    action: Action = Action.GIVE_VERDICT,
) -> tuple[RowMapping, Rep | None]:
    """The start of every verdict: check the actor's role may take ``action`` at all
    (403), lock the handoff (lead first), check it is within the actor's reach (404
    otherwise, before its status is revealed), then its status (409); returns the
    handoff and its rep."""
    allowed(actor, action)
    handoff = _lock(connection, handoff_id)
    check_handoff(connection, actor, action, handoff["rep_id"], handoff_id)
    _need(handoff, statuses, verb)
    return handoff, rep_of(connection, handoff["rep_id"])


def _need(handoff: Mapping[Any, Any], statuses: Collection[str], action: str) -> None:
    if handoff["status"] not in statuses:
        raise Conflict(
            f"cannot {action} handoff {handoff['id']}: it is {handoff['status']} "
            f"(needs {' or '.join(statuses)})"
        )


def _refresh_timer(
    connection: Connection,
    handoff: Mapping[Any, Any],
    contract: HandoffContract | None,
    rep: Rep | None,
    *,
    accepted: bool,
    touched: bool,
) -> None:
    if contract is None or rep is None or handoff["assigned_at"] is None:
        return
    due = deadlines_from(rep.schedule, handoff["assigned_at"], contract.sla)
    step = next_step(
        contract.sla, int(handoff["next_step"] or 0), accepted=accepted, touched=touched, due_at=due
    )
    connection.execute(
        update(handoffs)
        .where(handoffs.c.id == handoff["id"])
        .values(next_step=step.index if step else None, next_step_at=step.due_at if step else None)
    )


def _late(occurred_at: datetime | None, now: datetime) -> dict[str, Any]:
    """The event detail of a verdict recorded after the fact: the event is dated when
    the verdict happened (``occurred_at``, checked with the lead's stage change: never
    in the future nor before the lead's previous transition), and says when it was
    recorded. Its webhook still goes out (a late verdict on a live handoff is news to
    the systems that follow it)."""
    if occurred_at is None:
        return {}
    return {"historical": True, "recorded_at": now.isoformat()}


def accept_handoff_in(
    connection: Connection,
    handoff_id: int,
    *,
    actor: Principal,
    now: datetime,
    occurred_at: datetime | None = None,
) -> None:
    """Sales accepts the lead: the lead becomes a SAL and the accept SLA is met.
    ``occurred_at``: when it really happened, if not ``now`` (see :func:`_late`)."""
    handoff, rep = _take(connection, handoff_id, ("assigned",), "accept", actor)
    change_stage_in(
        connection,
        handoff["lead_id"],
        Stage.SAL,
        actor=actor,
        reason=f"accepted handoff {handoff_id}",
        now=now,
        occurred_at=occurred_at,
    )
    at = occurred_at or now
    connection.execute(
        update(handoffs)
        .where(handoffs.c.id == handoff_id)
        .values(status="accepted", accepted_at=at)
    )
    _, contract = active_rules_in(connection)
    _refresh_timer(
        connection,
        handoff,
        contract,
        rep,
        accepted=True,
        touched=handoff["first_touch_at"] is not None,
    )
    log_event(connection, handoff_id, "accepted", actor=actor, now=at, **_late(occurred_at, now))
    publish(
        connection,
        "handoff.accepted",
        webhook_data(handoff_id, handoff["lead_id"], rep),
        now=now,
        handoff_id=handoff_id,
    )


def accept_handoff(
    ctx: Context, handoff_id: int, *, actor: Principal, occurred_at: datetime | None = None
) -> HandoffPublic:
    """Sales accepts the lead: the lead becomes a SAL and the accept SLA is met."""
    with ctx.write() as connection:
        accept_handoff_in(
            connection, handoff_id, actor=actor, now=ctx.clock.now(), occurred_at=occurred_at
        )
    return _changed(ctx, handoff_id)


def reject_handoff_in(
    connection: Connection,
    handoff_id: int,
    *,
    code: str,
    note: str | None = None,
    actor: Principal,
    now: datetime,
    occurred_at: datetime | None = None,
) -> None:
    """Sales turns the lead down with a reason from the contract's catalog; the reason
    decides the lead's stage (disqualified or nurture) and marketing's credit."""
    handoff, rep = _take(connection, handoff_id, ("assigned", "accepted"), "reject", actor)
    at = occurred_at or now
    _, contract = active_rules_in(connection)
    reason = contract.rejection_reason(code) if contract else None
    if reason is None:
        known = ", ".join(r.code for r in contract.rejection_reasons) if contract else ""
        raise ValidationFailed(
            f"unknown rejection reason '{code}'",
            [
                FieldProblem(
                    "code",
                    f"use one of: {known}"
                    if known
                    else "the active contract lists no rejection reasons",
                )
            ],
        )
    connection.execute(
        update(handoffs)
        .where(handoffs.c.id == handoff_id)
        .values(
            status="rejected",
            outcome=reason.outcome,
            rejection_code=code,
            marketing_credit=reason.marketing_credit,
            closed_at=at,
            next_step_at=None,
        )
    )
    target = Stage.NURTURE if reason.outcome == "recycle" else Stage.DISQUALIFIED
    change_stage_in(
        connection,
        handoff["lead_id"],
        target,
        actor=actor,
        reason=f"rejected: {reason.label}" + (f" ({note})" if note else ""),
        now=now,
        occurred_at=occurred_at,
    )
    if target == Stage.NURTURE and contract is not None and (
        occurred_at is None
        or is_live(
            occurred_at,
            now=now,
            live_within_days=contract.mql.live_within_days,
            historical=False,
        )
    ):
        # Recycled with a reason the contract maps to a sequence: enrolled in this
        # same transaction (a lead that may not get nurture email is left out).
        enroll_on_rejection_in(connection, handoff["lead_id"], code, now=now, actor=actor)
    log_event(
        connection,
        handoff_id,
        "rejected",
        actor=actor,
        now=at,
        **_late(occurred_at, now),
        code=code,
        outcome=reason.outcome,
        marketing_credit=reason.marketing_credit,
        note=note,
    )
    publish(
        connection,
        "handoff.rejected",
        webhook_data(
            handoff_id,
            handoff["lead_id"],
            rep,
            code=code,
            outcome=reason.outcome,
            marketing_credit=reason.marketing_credit,
        ),
        now=now,
        handoff_id=handoff_id,
    )


def reject_handoff(
    ctx: Context,
    handoff_id: int,
    *,
    code: str,
    note: str | None = None,
    actor: Principal,
    occurred_at: datetime | None = None,
) -> HandoffPublic:
    """Sales turns the lead down with a reason from the contract's catalog; the reason
    decides the lead's stage (disqualified or nurture) and marketing's credit."""
    with ctx.write() as connection:
        reject_handoff_in(
            connection,
            handoff_id,
            code=code,
            note=note,
            actor=actor,
            now=ctx.clock.now(),
            occurred_at=occurred_at,
        )
    return _changed(ctx, handoff_id)


def log_touch_in(
    connection: Connection,
    handoff_id: int,
    *,
    kind: TouchKind,
    note: str | None = None,
    actor: Principal,
    now: datetime,
) -> None:
    """A call, email or meeting with the lead. The first one stops the speed-to-lead
    clock."""
    handoff, rep = _take(
        connection, handoff_id, ("assigned", "accepted", "qualified"), "log a touch on", actor
    )
    first = handoff["first_touch_at"] is None
    if first:
        connection.execute(
            update(handoffs)
            .where(handoffs.c.id == handoff_id)
            .values(
                first_touch_at=now,
                first_touch_business_minutes=_business_minutes_to(connection, handoff, rep, now),
            )
        )
        _, contract = active_rules_in(connection)
        _refresh_timer(
            connection,
            handoff,
            contract,
            rep,
            accepted=handoff["accepted_at"] is not None,
            touched=True,
        )
    log_event(
        connection,
        handoff_id,
        "touch",
        actor=actor,
        now=now,
        touch=kind,
        note=note,
        first=first,
    )
    publish(
        connection,
        "handoff.touched",
        webhook_data(handoff_id, handoff["lead_id"], rep, touch=kind, first=first),
        now=now,
        handoff_id=handoff_id,
    )


def _business_minutes_to(
    connection: Connection, handoff: Mapping[Any, Any], rep: Rep | None, now: datetime
) -> float | None:
    """Business minutes, in the touching rep's schedule, from the first assignment of
    the handoff's chain to ``now``: stored with the chain's first touch for the
    speed-to-lead report (``None`` on later handoffs of a chain already touched, so a
    chain has one figure)."""
    if rep is None:
        return None
    chain = handoff["chain_id"] or handoff["id"]
    touched_before = connection.execute(
        select(handoffs.c.id)
        .where(
            handoffs.c.chain_id == chain,
            handoffs.c.id != handoff["id"],
            handoffs.c.first_touch_at.is_not(None),
        )
        .limit(1)
    ).first()
    if touched_before is not None:
        return None
    started = connection.execute(
        select(handoffs.c.assigned_at).where(handoffs.c.id == chain)
    ).scalar()
    started = started or handoff["assigned_at"]
    if started is None:
        return None
    return business_minutes_between(rep.schedule, started, now)


def log_touch(
    ctx: Context, handoff_id: int, *, kind: TouchKind, note: str | None = None, actor: Principal
) -> HandoffPublic:
    """A call, email or meeting with the lead. The first one stops the speed-to-lead
    clock."""
    with ctx.write() as connection:
        log_touch_in(connection, handoff_id, kind=kind, note=note, actor=actor, now=ctx.clock.now())
    return _changed(ctx, handoff_id)


def qualify_handoff_in(
    connection: Connection,
    handoff_id: int,
    *,
    fields: Mapping[Any, Any],
    actor: Principal,
    now: datetime,
) -> None:
    """SAL → SQL, with the qualification fields the contract asks for."""
    handoff, rep = _take(connection, handoff_id, ("accepted",), "qualify", actor)
    _, contract = active_rules_in(connection)
    required = contract.qualification.required_fields if contract else []
    missing = [f for f in required if fields.get(f) in (None, "")]
    if missing:
        raise ValidationFailed(
            f"qualification needs {', '.join(missing)}",
            [FieldProblem(f"fields.{f}", "is required by the contract") for f in missing],
        )
    change_stage_in(
        connection,
        handoff["lead_id"],
        Stage.SQL,
        actor=actor,
        reason="qualified: " + ", ".join(f"{k}={v}" for k, v in fields.items()),
        now=now,
    )
    connection.execute(
        update(handoffs)
        .where(handoffs.c.id == handoff_id)
        .values(
            status="qualified",
            qualification=dict(fields),
            next_step_at=None if handoff["first_touch_at"] else handoffs.c.next_step_at,
        )
    )
    log_event(connection, handoff_id, "qualified", actor=actor, now=now, fields=dict(fields))
    publish(
        connection,
        "handoff.qualified",
        webhook_data(handoff_id, handoff["lead_id"], rep, fields=dict(fields)),
        now=now,
        handoff_id=handoff_id,
    )


def qualify_handoff(
    ctx: Context, handoff_id: int, *, fields: Mapping[Any, Any], actor: Principal
) -> HandoffPublic:
    """SAL → SQL, with the qualification fields the contract asks for."""
    with ctx.write() as connection:
        qualify_handoff_in(connection, handoff_id, fields=fields, actor=actor, now=ctx.clock.now())
    return _changed(ctx, handoff_id)


def open_opportunity_in(
    connection: Connection,
    handoff_id: int,
    *,
    amount: float | None = None,
    actor: Principal,
    now: datetime,
) -> None:
    """SQL → opportunity, optionally with the expected deal value."""
    check_deal_value(amount)
    handoff, _ = _take(connection, handoff_id, ("qualified",), "open an opportunity on", actor)
    change_stage_in(
        connection,
        handoff["lead_id"],
        Stage.OPPORTUNITY,
        actor=actor,
        reason="opportunity opened",
        now=now,
    )
    if amount is not None:
        connection.execute(
            update(handoffs).where(handoffs.c.id == handoff_id).values(deal_value=amount)
        )
    log_event(connection, handoff_id, "opportunity", actor=actor, now=now, amount=amount)


def open_opportunity(
    ctx: Context, handoff_id: int, *, amount: float | None = None, actor: Principal
) -> HandoffPublic:
    """SQL → opportunity, optionally with the expected deal value."""
    with ctx.write() as connection:
        open_opportunity_in(connection, handoff_id, amount=amount, actor=actor, now=ctx.clock.now())
    return _changed(ctx, handoff_id)


def _current_stage(connection: Connection, lead_id: int) -> Stage:
    return Stage(
        connection.execute(select(leads.c.stage).where(leads.c.id == lead_id)).scalar_one()
    )


def won_handoff_in(
    connection: Connection,
    handoff_id: int,
    *,
    amount: float | None = None,
    note: str | None = None,
    actor: Principal,
    now: datetime,
    occurred_at: datetime | None = None,
) -> None:
    """The deal is won: the lead becomes a customer (through opportunity if it was
    not one yet) and its company domain becomes an account owned by the rep."""
    check_deal_value(amount)
    handoff, rep = _take(connection, handoff_id, ("qualified",), "mark as won", actor)
    lead_id = int(handoff["lead_id"])
    at = occurred_at or now
    if _current_stage(connection, lead_id) == Stage.SQL:
        change_stage_in(
            connection,
            lead_id,
            Stage.OPPORTUNITY,
            actor=actor,
            reason="opportunity opened",
            now=now,
            occurred_at=occurred_at,
        )
    connection.execute(
        update(handoffs)
        .where(handoffs.c.id == handoff_id)
        .values(
            status="won",
            outcome="won",
            closed_at=at,
            next_step_at=None,
            deal_value=amount if amount is not None else handoffs.c.deal_value,
        )
    )
    change_stage_in(
        connection,
        lead_id,
        Stage.CUSTOMER,
        actor=actor,
        reason="won" + (f": {note}" if note else ""),
        now=now,
        occurred_at=occurred_at,
        deal_value=amount,
    )
    _claim_account(connection, lead_id, rep, now=now)
    log_event(
        connection,
        handoff_id,
        "won",
        actor=actor,
        now=at,
        amount=amount,
        note=note,
        **_late(occurred_at, now),
    )
    publish(
        connection,
        "handoff.won",
        webhook_data(handoff_id, lead_id, rep, amount=amount),
        now=now,
        handoff_id=handoff_id,
    )


def won_handoff(
    ctx: Context,
    handoff_id: int,
    *,
    amount: float | None = None,
    note: str | None = None,
    actor: Principal,
    occurred_at: datetime | None = None,
) -> HandoffPublic:
    """The deal is won: the lead becomes a customer (through opportunity if it was
    not one yet) and its company domain becomes an account owned by the rep."""
    with ctx.write() as connection:
        won_handoff_in(
            connection,
            handoff_id,
            amount=amount,
            note=note,
            actor=actor,
            now=ctx.clock.now(),
            occurred_at=occurred_at,
        )
    return _changed(ctx, handoff_id)


def _claim_account(connection: Connection, lead_id: int, rep: Rep | None, *, now: datetime) -> None:
    """Make the won lead's email domain an account of ``rep``, unless the domain is
    shared (:func:`~baton.domain.contact.shared_domain_reason`): then the next lead from
    it is routed on its own merits, not sent to whoever won one of its neighbours."""
    lead = connection.execute(
        select(leads.c.email_domain, leads.c.company).where(leads.c.id == lead_id)
    ).first()
    if rep is None or lead is None or not lead.email_domain:
        return
    from baton.domain.contact import SHARED_DOMAIN_COMPANIES, shared_domain_reason

    companies = len(
        connection.execute(
            select(leads.c.company_key)
            .where(
                leads.c.email_domain == lead.email_domain,
                leads.c.merged_into_id.is_(None),
                leads.c.company_key.is_not(None),
            )
            .distinct()
            .limit(SHARED_DOMAIN_COMPANIES)
        ).all()
    )
    if shared_domain_reason(lead.email_domain, companies, SHARED_DOMAIN_COMPANIES):
        return
    connection.execute(
        insert_ignoring_conflicts(connection, accounts).values(
            domain=lead.email_domain,
            name=lead.company,
            owner_rep_id=rep.id,
            created_at=now,
            updated_at=now,
        )
    )


def lost_handoff_in(
    connection: Connection,
    handoff_id: int,
    *,
    reason: str,
    actor: Principal,
    now: datetime,
    occurred_at: datetime | None = None,
) -> None:
    """The deal is lost (from SAL, SQL or opportunity), with a reason."""
    if not reason.strip():
        raise ValidationFailed(
            "a lost deal needs a reason", [FieldProblem("reason", "is required")]
        )
    handoff, rep = _take(connection, handoff_id, ("accepted", "qualified"), "mark as lost", actor)
    at = occurred_at or now
    connection.execute(
        update(handoffs)
        .where(handoffs.c.id == handoff_id)
        .values(status="lost", outcome="lost", closed_at=at, next_step_at=None)
    )
    change_stage_in(
        connection,
        handoff["lead_id"],
        Stage.LOST,
        actor=actor,
        reason=f"lost: {reason}",
        now=now,
        occurred_at=occurred_at,
    )
    log_event(
        connection,
        handoff_id,
        "lost",
        actor=actor,
        now=at,
        reason=reason,
        **_late(occurred_at, now),
    )
    publish(
        connection,
        "handoff.lost",
        webhook_data(handoff_id, handoff["lead_id"], rep, reason=reason),
        now=now,
        handoff_id=handoff_id,
    )


def lost_handoff(
    ctx: Context,
    handoff_id: int,
    *,
    reason: str,
    actor: Principal,
    occurred_at: datetime | None = None,
) -> HandoffPublic:
    """The deal is lost (from SAL, SQL or opportunity), with a reason."""
    with ctx.write() as connection:
        lost_handoff_in(
            connection,
            handoff_id,
            reason=reason,
            actor=actor,
            now=ctx.clock.now(),
            occurred_at=occurred_at,
        )
    return _changed(ctx, handoff_id)


def _target_rep(connection: Connection, actor: Principal, email: str) -> int:
    """The id of the rep a handoff is reassigned to, who must be within the actor's
    reach (a manager's team); one out of it is missing, as a rep that does not exist."""
    from baton.store.tables import reps

    email = email.strip().lower()
    level = allowed(actor, Action.REASSIGN)
    query = select(reps.c.id).where(reps.c.email == email)
    if level is not Reach.ALL:
        query = query.where(rep_scope(actor, level))
    found = connection.execute(query).scalar()
    if found is None:
        raise NotFound(f"rep {email} does not exist")
    return int(found)


def reassign_handoff(
    ctx: Context, handoff_id: int, *, to_email: str | None = None, actor: Principal
) -> HandoffPublic:
    """A manager (of the rep's team) or an admin moves a handoff to another rep: one
    they name, who must be within their reach, or the next available one. Returns the
    new handoff."""
    allowed(actor, Action.REASSIGN)
    now = ctx.clock.now()
    with ctx.write() as connection:
        handoff, _ = _take(
            connection,
            handoff_id,
            ("assigned", "accepted"),
            "reassign",
            actor,
            action=Action.REASSIGN,
        )
        target = _target_rep(connection, actor, to_email) if to_email else None
        _, contract = active_rules_in(connection)
        if contract is None:
            raise Conflict("no contract is active")
        to_rep = rep_of(connection, target) if target is not None else None
        if to_rep is not None and (to_rep.id == handoff["rep_id"] or not to_rep.active):
            why = "already has it" if to_rep.id == handoff["rep_id"] else "is deactivated"
            raise Conflict(f"cannot reassign handoff {handoff_id} to {to_rep.email}: {why}")
        new_id = reassign_in(
            connection,
            handoff,
            contract,
            now=now,
            actor=actor,
            why=f"reassigned by {actor.name}",
            to_rep=to_rep,
        )
        if new_id is None:
            raise Conflict("nobody else is available to take this lead now")
    return _changed(ctx, new_id)
