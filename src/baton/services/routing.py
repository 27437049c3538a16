"""Opening, routing and closing handoffs: the part of a handoff that happens *to* it.

A stage change opens the handoff of a new MQL and routes it (assigned, or queued when
nobody can take it) inside the transaction that made the lead an MQL, with the lead row
locked, so a lead is handed off exactly when its stage says so; a stage change that
takes a lead out of sales' hands closes its open handoff
(:mod:`baton.services.stages` calls both). The worker routes queued handoffs again and
the SLA ladder reassigns (:mod:`baton.services.worker`); a manager's assignment and
reassignment (:mod:`baton.services.handoffs`) take the same paths.

Every routing decision takes the routing lock (the ``*`` row of ``rotations``) so that
capacity counts and rotations never race between processes; lead locks are always taken
before it, which keeps lock order acyclic. Every change to a handoff is logged as an
event (:func:`log_event`); notifications are outbox rows, delivered after commit.

Nothing here changes a lead's stage or checks an actor: the callers did (a verdict, a
stage change, the worker acting as :data:`SYSTEM`), so this module imports no use case
and sits below the stage change.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection

from baton.domain.access import Principal, system
from baton.domain.contract import HandoffContract, MqlTrigger
from baton.domain.routing import Rep, Rotation, RoutingDecision, route_lead
from baton.domain.sla import deadlines_from, next_step
from baton.services.chat import email_wanted, enqueue_chat
from baton.services.contract_rules import active_rules_in
from baton.services.milestones import on_handoff_event
from baton.services.nurture import exit_enrollments_in
from baton.services.outbox import enqueue_email, publish
from baton.services.queries import insert_ignoring_conflicts, inserted_id
from baton.services.reps import account_owner, open_loads, routing_reps
from baton.store.tables import (
    OPEN_HANDOFF_STATUSES,
    handoff_events,
    handoffs,
    lead_scores,
    leads,
    rotations,
)

SYSTEM = system("baton")
"""Baton itself, the actor of routing, the SLA ladder and the queue (the worker)."""


def log_event(
    connection: Connection,
    handoff_id: int,
    kind: str,
    *,
    actor: Principal,
    now: datetime,
    **detail: Any,
) -> None:
    """Record what happened to a handoff, by whom: the actor's name as text (kept for
    rows from before users existed, and for the operator and the system) and, when a
    user or their token acted, the user's id beside it."""
    connection.execute(
        insert(handoff_events).values(
            handoff_id=handoff_id,
            kind=kind,
            actor=actor.name,
            actor_user_id=actor.user_id,
            occurred_at=now,
            detail=detail,
        )
    )
    on_handoff_event(connection, handoff_id, kind)


def lock_routing(connection: Connection) -> dict[str, Rotation]:
    """Take the routing lock and read every pool's rotation."""
    found = connection.execute(
        select(rotations.c.pool).where(rotations.c.pool == "*").with_for_update()
    ).first()
    if found is None:
        connection.execute(
            insert_ignoring_conflicts(connection, rotations).values(
                pool="*", virtual_pass=0.0, passes={}
            )
        )
        connection.execute(
            select(rotations.c.pool).where(rotations.c.pool == "*").with_for_update()
        )
    return {
        pool: Rotation(
            virtual,
            {int(k): float(v[0] if isinstance(v, list) else v) for k, v in passes.items()},
            {int(k): float(v[1]) for k, v in passes.items() if isinstance(v, list)},
        )
        for pool, virtual, passes in connection.execute(
            select(rotations.c.pool, rotations.c.virtual_pass, rotations.c.passes).where(
                rotations.c.pool != "*"
            )
        )
    }


def _save_rotation(connection: Connection, key: str, rotation: Rotation, existed: bool) -> None:
    values = {
        "virtual_pass": rotation.virtual,
        "passes": {
            str(k): [v, rotation.seen.get(k, rotation.virtual)] for k, v in rotation.passes.items()
        },
    }
    if existed:
        connection.execute(update(rotations).where(rotations.c.pool == key).values(**values))
    else:
        connection.execute(insert(rotations).values(pool=key, **values))


def _score_of(connection: Connection, lead_id: int) -> tuple[float | None, str | None]:
    row = connection.execute(
        select(lead_scores.c.total, lead_scores.c.grade).where(lead_scores.c.lead_id == lead_id)
    ).first()
    return (row[0], row[1]) if row else (None, None)


def _decide(
    connection: Connection,
    contract: HandoffContract,
    lead: Mapping[Any, Any],
    *,
    now: datetime,
    exclude: Collection[int] = (),
) -> tuple[RoutingDecision, dict[int, Rep]]:
    pools = lock_routing(connection)
    existing = set(pools)
    reps = routing_reps(connection)
    total, grade = _score_of(connection, int(lead["id"]))
    decision = route_lead(
        contract,
        dict(lead),
        lead_id=int(lead["id"]),
        total=total,
        grade=grade,
        reps=reps,
        loads=open_loads(connection),
        rotations=pools,
        now=now,
        account_owner_id=account_owner(connection, lead.get("email_domain")),
        exclude=exclude,
    )
    if decision.rep_id is not None and decision.pool_key is not None:
        _save_rotation(
            connection, decision.pool_key, pools[decision.pool_key], decision.pool_key in existing
        )
    return decision, {r.id: r for r in reps}


def _sla_values(contract: HandoffContract, rep: Rep, assigned_at: datetime) -> dict[str, Any]:
    sla = contract.sla

    due = deadlines_from(rep.schedule, assigned_at, sla)
    step = next_step(sla, 0, accepted=False, touched=False, due_at=due)
    return {
        "accept_due_at": due(sla.accept_within_minutes),
        "touch_due_at": due(sla.first_touch_within_minutes),
        "next_step": step.index if step else None,
        "next_step_at": step.due_at if step else None,
    }


def webhook_data(handoff_id: int, lead_id: int, rep: Rep | None, **extra: Any) -> dict[str, Any]:
    """The payload every ``handoff.*`` webhook shares: the handoff, its lead, its rep."""
    return {
        "handoff_id": handoff_id,
        "lead_id": lead_id,
        "rep": {"id": rep.id, "email": rep.email, "name": rep.name} if rep else None,
        **extra,
    }


def _announce(
    connection: Connection,
    handoff_id: int,
    lead_id: int,
    decision: RoutingDecision,
    reps: Mapping[int, Rep],
    *,
    now: datetime,
    actor: Principal,
    detail: Mapping[str, Any] | None = None,
) -> None:
    rep = reps.get(decision.rep_id) if decision.rep_id is not None else None
    if rep is not None:
        # A rep has the lead: sales took it back from nurture (a no-op when the re-MQL
        # already ended its enrollment, or when its sequence does not exit on this).
        exit_enrollments_in(connection, [lead_id], "sales_took_back", now=now)
        log_event(
            connection,
            handoff_id,
            "assigned",
            actor=actor,
            now=now,
            rep=rep.email,
            why=decision.reason,
            **(detail or {}),
        )
        if email_wanted(connection, rep.id):
            enqueue_email(
                connection, topic="handoff.assigned", to=rep.email, now=now, handoff_id=handoff_id
            )
        enqueue_chat(
            connection,
            topic="handoff.assigned",
            rep_id=rep.id,
            handoff_id=handoff_id,
            now=now,
            audience="both",
            data={"why": decision.reason},
        )
        publish(
            connection,
            "handoff.assigned",
            webhook_data(handoff_id, lead_id, rep, why=decision.reason),
            now=now,
            handoff_id=handoff_id,
        )
        return
    log_event(connection, handoff_id, "queued", actor=actor, now=now, why=decision.reason)
    publish(
        connection,
        "handoff.queued",
        webhook_data(handoff_id, lead_id, None, why=decision.reason),
        now=now,
        handoff_id=handoff_id,
    )
    managers = {
        r.manager_email
        for r in reps.values()
        if r.manager_email
        and decision.rule is not None
        and any(s.rep_id == r.id for s in decision.skipped)
    }
    for manager in sorted(managers):
        enqueue_email(
            connection,
            topic="queue.alert",
            to=manager,
            now=now,
            handoff_id=handoff_id,
            data={"why": decision.reason},
        )


def open_handoff_in(
    connection: Connection,
    lead: Mapping[Any, Any],
    contract: HandoffContract | None,
    *,
    contract_version: int | None,
    now: datetime,
    actor: Principal,
) -> int:
    """Create the handoff of a lead that just became an MQL and route it (assigned, or
    queued when nobody can take it). Called by the stage change itself."""
    contract = contract or _no_contract()
    decision, reps = _decide(connection, contract, lead, now=now)
    rep = reps.get(decision.rep_id) if decision.rep_id is not None else None
    values: dict[str, Any] = {
        "lead_id": lead["id"],
        "rep_id": rep.id if rep else None,
        "status": "assigned" if rep else "queued",
        "contract_version": contract_version,
        "mql_at": now,
        "created_at": now,
        "assigned_at": now if rep else None,
        "routing": decision.to_json(),
        "reassignments": 0,
    }
    if rep is not None:
        values.update(_sla_values(contract, rep, now))
    handoff_id = inserted_id(connection.execute(insert(handoffs).values(**values)))
    connection.execute(
        update(handoffs).where(handoffs.c.id == handoff_id).values(chain_id=handoff_id)
    )
    _announce(connection, handoff_id, int(lead["id"]), decision, reps, now=now, actor=actor)
    return handoff_id


def close_open_handoff_in(
    connection: Connection, lead_id: int, *, outcome: str, now: datetime, actor: Principal
) -> None:
    """A lead left sales' hands by another way than a verdict (a manual stage change,
    a merge): close its open handoff so that no timer acts on it."""
    row = connection.execute(
        select(handoffs.c.id)
        .where(handoffs.c.lead_id == lead_id, handoffs.c.status.in_(OPEN_HANDOFF_STATUSES))
        .with_for_update()
    ).first()
    if row is None:
        return
    connection.execute(
        update(handoffs)
        .where(handoffs.c.id == row[0])
        .values(status="closed", outcome=outcome, closed_at=now, next_step_at=None)
    )
    log_event(connection, row[0], "closed", actor=actor, now=now, outcome=outcome)


def _no_contract() -> HandoffContract:
    """The rules before any contract is active: no routing rules (everything queues)."""
    return HandoffContract(schema_version=1, name="(none)", mql=MqlTrigger(threshold=0))


def assign_in(
    connection: Connection,
    handoff: Mapping[Any, Any],
    contract: HandoffContract,
    *,
    now: datetime,
    actor: Principal,
    exclude: Collection[int] = (),
    contract_version: int | None = None,
) -> int | None:
    """Route a queued handoff again with ``contract``; returns the rep id or ``None``
    (still queued). With ``contract_version`` the handoff is recorded under that
    version (its SLA now runs by it)."""
    lead = (
        connection.execute(select(leads).where(leads.c.id == handoff["lead_id"])).mappings().one()
    )
    decision, reps = _decide(connection, contract, lead, now=now, exclude=exclude)
    if decision.rep_id is None:
        return None
    give_in(connection, handoff, contract, contract_version, decision, reps, now=now, actor=actor)
    return decision.rep_id


def give_in(
    connection: Connection,
    handoff: Mapping[Any, Any],
    contract: HandoffContract,
    contract_version: int | None,
    decision: RoutingDecision,
    reps: Mapping[int, Rep],
    *,
    now: datetime,
    actor: Principal,
    routing: Mapping[str, Any] | None = None,
    detail: Mapping[str, Any] | None = None,
) -> None:
    """Assign a queued handoff to the decision's rep, with fresh deadlines, and tell
    them (email, webhook, an ``assigned`` event)."""
    rep = reps[decision.rep_id]  # type: ignore[index]
    values: dict[str, Any] = {
        "status": "assigned",
        "rep_id": rep.id,
        "assigned_at": now,
        "routing": dict(routing) if routing is not None else decision.to_json(),
        **_sla_values(contract, rep, now),
    }
    if contract_version is not None:
        values["contract_version"] = contract_version
    connection.execute(update(handoffs).where(handoffs.c.id == handoff["id"]).values(**values))
    _announce(
        connection,
        int(handoff["id"]),
        int(handoff["lead_id"]),
        decision,
        reps,
        now=now,
        actor=actor,
        detail=detail,
    )


def route_queued_in(
    connection: Connection, handoff: Mapping[Any, Any], *, now: datetime, actor: Principal
) -> RoutingDecision:
    """Route a queued handoff (locked, with its lead) by the contract active **now**,
    not the one in force when it was queued: a queue that outlived a contract change
    is routed by the new rules, gets the new SLA and is recorded under the new
    version. Still nobody: the handoff keeps waiting, and its stored decision is
    brought up to date when it changed, so the queue says why it waits now (written
    only on a change, not on every pass of the worker)."""
    version, active = active_rules_in(connection)
    contract = active or _no_contract()
    lead = (
        connection.execute(select(leads).where(leads.c.id == handoff["lead_id"])).mappings().one()
    )
    decision, reps = _decide(connection, contract, lead, now=now)
    if decision.rep_id is not None:
        give_in(connection, handoff, contract, version, decision, reps, now=now, actor=actor)
        return decision
    routing = decision.to_json()
    if routing != handoff["routing"]:
        connection.execute(
            update(handoffs).where(handoffs.c.id == handoff["id"]).values(routing=routing)
        )
    return decision


def reassign_in(
    connection: Connection,
    handoff: Mapping[Any, Any],
    contract: HandoffContract,
    *,
    now: datetime,
    actor: Principal,
    why: str,
    to_rep: Rep | None = None,
) -> int | None:
    """Close ``handoff`` as reassigned and open the next one in its chain for another
    rep (``to_rep``, or the next available rep who has not had this MQL). Returns the
    new handoff id, or ``None`` when nobody else can take it (the handoff stays)."""
    chain = int(handoff["chain_id"] or handoff["id"])
    had = {
        int(r)
        for (r,) in connection.execute(
            select(handoffs.c.rep_id).where(
                handoffs.c.chain_id == chain, handoffs.c.rep_id.is_not(None)
            )
        )
    }
    lead = (
        connection.execute(select(leads).where(leads.c.id == handoff["lead_id"])).mappings().one()
    )
    if to_rep is None:
        decision, reps = _decide(connection, contract, lead, now=now, exclude=had)
        if decision.rep_id is None:
            log_event(
                connection,
                int(handoff["id"]),
                "reassign_failed",
                actor=actor,
                now=now,
                why=decision.reason,
            )
            return None
    else:
        lock_routing(connection)
        decision = RoutingDecision(to_rep.id, f"reassigned by {actor.name}")
        reps = {to_rep.id: to_rep}
    rep = reps[decision.rep_id]  # type: ignore[index]
    connection.execute(
        update(handoffs)
        .where(handoffs.c.id == handoff["id"])
        .values(status="reassigned", outcome="reassigned", closed_at=now, next_step_at=None)
    )
    log_event(
        connection, int(handoff["id"]), "reassigned", actor=actor, now=now, to=rep.email, why=why
    )
    new_id = inserted_id(
        connection.execute(
            insert(handoffs).values(
                lead_id=handoff["lead_id"],
                rep_id=rep.id,
                status="accepted" if handoff["status"] == "accepted" else "assigned",
                accepted_at=now if handoff["status"] == "accepted" else None,
                chain_id=chain,
                previous_id=handoff["id"],
                contract_version=handoff["contract_version"],
                mql_at=handoff["mql_at"],
                created_at=now,
                assigned_at=now,
                routing=decision.to_json(),
                reassignments=int(handoff["reassignments"]) + 1,
                **_sla_values(contract, rep, now),
            )
        )
    )
    publish(
        connection,
        "handoff.reassigned",
        webhook_data(
            new_id, int(handoff["lead_id"]), rep, previous_handoff_id=handoff["id"], why=why
        ),
        now=now,
        handoff_id=new_id,
    )
    _announce(connection, new_id, int(handoff["lead_id"]), decision, reps, now=now, actor=actor)
    return new_id


def rep_of(connection: Connection, rep_id: int | None) -> Rep | None:
    """A rep as routing sees them (schedule, capacity, status), or ``None``."""
    if rep_id is None:
        return None
    return next((r for r in routing_reps(connection) if r.id == rep_id), None)
