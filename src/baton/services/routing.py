"""Opening, routing and closing handoffs: the part of a handoff that happens *to* it.

A stage change opens the handoff of a new MQL and routes it (assigned, or queued when
nobody can take it) inside the transaction that made the lead an MQL, with the lead row
locked, so a lead is handed off exactly when its stage says so; a stage change that
takes a lead out of sales' hands closes its open handoff
(:mod:`baton.services.stages` calls both). The worker routes queued handoffs again and
the SLA ladder reassigns (:mod:`baton.services.worker`); a manager's assignment and
reassignment (:mod:`baton.services.handoffs`) take the same paths.

A routing decision locks what it may change, and nothing else: the rotation row of
the pool its rule names (two decisions in one pool take turns; other pools route in
parallel), then the rows of the reps it may choose (the pool's members and the lead's
account owner), whose roster rows (capacity, status, absences) and open loads it reads
again under those locks, so neither capacity counts nor an admin's change race a
decision. Locks are taken in one order everywhere: leads, then
pools by key, then reps by id, which keeps the lock graph acyclic. A batch of new MQLs
(:func:`open_handoffs_in`) takes the same locks once for the batch; a transaction
that opens several MQLs must open them in one batch
(:func:`baton.services.stages.change_stages_in`), since a second decision would lock a
pool after the first one's reps. Every change to a
handoff is logged as an event (:func:`log_event`); notifications are outbox rows,
delivered after commit.

Nothing here changes a lead's stage or checks an actor: the callers did (a verdict, a
stage change, the worker acting as :data:`SYSTEM`), so this module imports no use case
and sits below the stage change.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    bindparam,
    func,
    insert,
    literal_column,
    null,
    select,
    text,
    union_all,
    update,
)
from sqlalchemy.engine import Connection
from sqlalchemy.sql.schema import CallableColumnDefault

from baton.domain.access import Principal, system
from baton.domain.contract import HandoffContract, MqlTrigger, RoutingRule
from baton.domain.routing import (
    Rep,
    Rotation,
    RoutingDecision,
    first_rule,
    members,
    pool_key,
    route_lead,
)
from baton.domain.sla import deadlines_from, next_step
from baton.services.chat import Hearing, chat_rows, hearing_of
from baton.services.contract_rules import active_rules_in
from baton.services.milestones import (
    add_chains,
    chain_insert,
    on_handoff_event,
    refresh_leads_of_chains,
)
from baton.services.nurture import exit_enrollments_in
from baton.services.outbox import (
    ACTIVE_ENDPOINTS_JSON,
    Endpoint,
    active_endpoints,
    email_row,
    endpoints_of,
    publish,
    webhook_rows,
)
from baton.services.queries import (
    chunks,
    insert_ignoring_conflicts,
    inserted_id,
    one_of,
    one_of_params,
)
from baton.services.reps import last_routing_reps, routing_reps
from baton.store.tables import (
    OPEN_HANDOFF_STATUSES,
    accounts,
    handoff_events,
    handoffs,
    lead_scores,
    leads,
    outbox,
    rotations,
)
from baton.store.tables import reps as reps_table

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
    _record_event(connection, handoff_id, kind, actor=actor, now=now, detail=detail)
    on_handoff_event(connection, handoff_id, kind)


def _record_event(
    connection: Connection,
    handoff_id: int,
    kind: str,
    *,
    actor: Principal,
    now: datetime,
    detail: Mapping[str, Any],
) -> None:
    connection.execute(
        insert(handoff_events).values(
            _event_row(handoff_id, kind, actor=actor, now=now, detail=detail)
        )
    )


def _event_row(
    handoff_id: int,
    kind: str,
    *,
    actor: Principal,
    now: datetime,
    detail: Mapping[str, Any],
) -> dict[str, Any]:
    return {
        "handoff_id": handoff_id,
        "kind": kind,
        "actor": actor.name,
        "actor_user_id": actor.user_id,
        "occurred_at": now,
        "detail": dict(detail),
    }


def _rotation(virtual: float, passes: Mapping[str, Any]) -> Rotation:
    return Rotation(
        virtual,
        {int(k): float(v[0] if isinstance(v, list) else v) for k, v in passes.items()},
        {int(k): float(v[1]) for k, v in passes.items() if isinstance(v, list)},
    )


def lock_pools(connection: Connection, keys: Collection[str]) -> dict[str, Rotation]:
    """Lock the rotation rows of the pools ``keys`` for the rest of the transaction, in
    key order (a missing row is created first, as an empty rotation), and read them.
    Two decisions in one pool take turns here; decisions in other pools do not wait."""
    wanted = sorted(set(keys))
    if not wanted:
        return {}

    arity, params = one_of_params("pools", wanted, up_to=FEW)

    def locked() -> dict[str, Rotation]:
        return {
            pool: _rotation(v, p) for pool, v, p in connection.execute(_lock_pools(arity), params)
        }

    found = locked()
    if len(found) < len(wanted):
        connection.execute(
            insert_ignoring_conflicts(connection, rotations),
            [{"pool": k, "virtual_pass": 0.0, "passes": {}} for k in wanted if k not in found],
        )
        found = locked()
    return found


FEW = 32
"""Up to this many pools or reps, a lock or look-up binds one parameter per value
(:func:`~baton.services.queries.one_of`): a statement per length, built once."""


def _lock_pools_and_reps(
    connection: Connection, keys: Collection[str], rep_ids: Collection[int]
) -> dict[str, Rotation]:
    """PostgreSQL, inside :func:`_prepare`'s savepoint: :func:`lock_pools` then
    :func:`lock_reps`, in one round trip when there are at most :data:`FEW` of each
    (each lock set a materialized ``WITH`` part, read one after the other by the
    ``UNION ALL``: the pools in key order, then the reps in id order). When a pool has
    no rotation row yet, what it locked is let go (back to the savepoint) and the two
    steps are taken, the first creating the row."""
    wanted = sorted(set(keys))
    ids = sorted(set(rep_ids))
    if wanted and ids and len(wanted) <= FEW and len(ids) <= FEW:
        pool_arity, params = one_of_params("pools", wanted, up_to=FEW)
        rep_arity, by_rep = one_of_params("rep_ids", ids, up_to=FEW)
        found = {
            pool: _rotation(v, p)
            for pool, v, p, rep in connection.execute(
                _lock_both(pool_arity, rep_arity), {**params, **by_rep}
            )
            if rep is None
        }
        if len(found) == len(wanted):
            return found
        connection.exec_driver_sql(f"ROLLBACK TO {_SAVEPOINT}")
    pools = lock_pools(connection, keys)
    lock_reps(connection, ids)
    return pools


@functools.cache
def _lock_both(pools: int | None, reps: int | None) -> Any:
    locked_pools = _lock_pools(pools).cte("locked_pools").prefix_with("MATERIALIZED")
    locked_reps = _lock_reps(reps).cte("locked_reps").prefix_with("MATERIALIZED")
    return union_all(
        select(
            locked_pools.c.pool,
            locked_pools.c.virtual_pass,
            locked_pools.c.passes,
            null().label("rep"),
        ),
        select(null(), null(), null(), locked_reps.c.id),
    )


@functools.cache
def _lock_pools(arity: int | None) -> Any:
    return (
        select(rotations.c.pool, rotations.c.virtual_pass, rotations.c.passes)
        .where(one_of(rotations.c.pool, "pools", arity))
        .order_by(rotations.c.pool)
        .with_for_update()
    )


@functools.cache
def _lock_reps(arity: int | None) -> Any:
    return (
        select(reps_table.c.id)
        .where(one_of(reps_table.c.id, "rep_ids", arity))
        .order_by(reps_table.c.id)
        .with_for_update()
    )


def lock_reps(connection: Connection, rep_ids: Collection[int]) -> None:
    """Lock the rows of ``rep_ids`` for the rest of the transaction, in id order, so that
    their open-handoff counts read afterwards stay true until commit: every path that
    gives a rep a handoff takes this lock first. Pool rows are always locked before rep
    rows (and lead rows before both), which keeps the lock order acyclic. On SQLite the
    writer already holds the database, so nothing is sent."""
    if rep_ids and connection.dialect.name == "postgresql":
        for chunk in chunks(sorted(set(rep_ids))):
            arity, params = one_of_params("rep_ids", chunk, up_to=FEW)
            connection.execute(_lock_reps(arity), params).all()


def _scores_of(
    connection: Connection, lead_ids: Sequence[int]
) -> dict[int, tuple[float | None, str | None]]:
    found: dict[int, tuple[float | None, str | None]] = {}
    for chunk in chunks(sorted(set(lead_ids))):
        for lead_id, total, grade in connection.execute(
            select(lead_scores.c.lead_id, lead_scores.c.total, lead_scores.c.grade).where(
                lead_scores.c.lead_id.in_(chunk)
            )
        ):
            found[int(lead_id)] = (total, grade)
    return found


def _owners_of(connection: Connection, domains: Collection[str | None]) -> dict[str, int]:
    wanted = sorted({d for d in domains if d})
    found: dict[str, int] = {}
    for chunk in chunks(wanted):
        for domain, owner in connection.execute(
            select(accounts.c.domain, accounts.c.owner_rep_id).where(
                accounts.c.domain.in_(chunk), accounts.c.owner_rep_id.is_not(None)
            )
        ):
            found[str(domain)] = int(owner)
    return found


@dataclass
class _Routing:
    """The state a run of decisions reads once, under its locks: the roster, the open
    loads of every rep a decision may choose, the rotations of the pools it may advance,
    the leads' scores and account owners. Each decision updates the loads and rotations
    in memory for the next, so a batch decides exactly as the same decisions made one
    by one, each in its own transaction, would."""

    contract: HandoffContract
    reps: list[Rep]
    by_id: dict[int, Rep]
    loads: dict[int, int]
    rotations: dict[str, Rotation]
    owners: dict[str, int]
    scores: dict[int, tuple[float | None, str | None]]
    moved: set[str]
    hearing: dict[int, Hearing]
    """How each choosable rep hears of a new handoff, read with the loads."""

    def decide(
        self, lead: Mapping[Any, Any], *, now: datetime, exclude: Collection[int] = ()
    ) -> RoutingDecision:
        lead_id = int(lead["id"])
        total, grade = self.scores.get(lead_id, (None, None))
        decision = route_lead(
            self.contract,
            dict(lead),
            lead_id=lead_id,
            total=total,
            grade=grade,
            reps=self.reps,
            loads=self.loads,
            rotations=self.rotations,
            now=now,
            account_owner_id=self.owners.get(lead.get("email_domain") or ""),
            exclude=exclude,
        )
        if decision.rep_id is not None:
            self.loads[decision.rep_id] = self.loads.get(decision.rep_id, 0) + 1
            if decision.pool_key is not None:
                self.moved.add(decision.pool_key)
        return decision

    def saved(self) -> list[dict[str, Any]]:
        """The parameters of :data:`_SAVE_ROTATION` for the rotations the decisions
        advanced, in pool order."""
        return [
            {
                "pool_key": key,
                "virtual": self.rotations[key].virtual,
                "passes": {
                    str(k): [v, self.rotations[key].seen.get(k, self.rotations[key].virtual)]
                    for k, v in self.rotations[key].passes.items()
                },
            }
            for key in sorted(self.moved)
        ]

    def save(self, connection: Connection) -> None:
        """Write back the rotations the decisions advanced (one statement)."""
        if not self.moved:
            return
        connection.execute(_SAVE_ROTATION, self.saved())
        self.moved.clear()


_SAVE_ROTATION = (
    update(rotations)
    .where(rotations.c.pool == bindparam("pool_key"))
    .values(virtual_pass=bindparam("virtual"), passes=bindparam("passes"))
)


@dataclass(frozen=True)
class Known:
    """What a caller already read of the leads it routes, in this transaction after
    locking them: their scores (``(total, grade)`` by lead id, for the leads that have
    one) and their account owners (owner rep id by email domain, for the domains whose
    account has one), as :func:`_prepare` would read them."""

    scores: dict[int, tuple[float | None, str | None]]
    owners: dict[str, int]


def _prepare(
    connection: Connection,
    contract: HandoffContract,
    lead_rows: Sequence[Mapping[Any, Any]],
    known: Known | None = None,
) -> _Routing:
    """Lock and read what deciding for ``lead_rows`` needs: the pool of the rule each
    lead falls under (known from the lead and its score alone), then every rep such a
    decision may choose (the pools' members and the leads' account owners), whose
    roster rows (capacity, status, absences, membership) and open loads are read again
    once they are locked, so an admin change committed meanwhile is decided on. Each
    lead's rule is found once.

    On PostgreSQL the pools and reps are locked in one statement, and the roster's
    fingerprint is read with the reps' loads and email choices in the next. The locks
    are taken in a savepoint: when the roster read under them
    names a rep the decisions may choose that is not locked (someone joined a pool
    meanwhile), the savepoint is rolled back, releasing them, and the locks are taken
    again in order with the new roster, rather than locking that rep out of order."""
    if known is not None:
        scores = dict(known.scores)
        owners = dict(known.owners) if contract.routing.account_matching else {}
    else:
        scores = _scores_of(connection, [int(lead["id"]) for lead in lead_rows])
        owners = (
            _owners_of(connection, [lead.get("email_domain") for lead in lead_rows])
            if contract.routing.account_matching
            else {}
        )
    postgres = connection.dialect.name == "postgresql"
    # On PostgreSQL the roster is read again under the locks, which checks this guess.
    roster = last_routing_reps(connection) if postgres else routing_reps(connection)
    rules = _rules_of(contract, lead_rows, scores)
    while True:
        keys, choosable = _wanted(rules, owners, roster)
        if postgres:
            connection.exec_driver_sql(_SAVEPOINT)
            pools = _lock_pools_and_reps(connection, keys, choosable)
        else:
            pools = lock_pools(connection, keys)
        loads: dict[int, int] = {}
        if not postgres:
            hearing = hearing_of(connection, choosable, loads=loads) if choosable else {}
            break
        # Read committed: the roster as locked, read with the loads (one statement).
        fingerprint: list[Any] = []
        hearing = (
            hearing_of(connection, choosable, loads=loads, fingerprint=fingerprint)
            if choosable
            else {}
        )
        roster = routing_reps(connection, fingerprint or None)
        if _wanted(rules, owners, roster)[1] <= choosable:
            break  # the savepoint ends with the transaction (no round trip to release it)
        connection.exec_driver_sql(f"ROLLBACK TO {_SAVEPOINT}")
    by_id = {r.id: r for r in roster}
    return _Routing(contract, roster, by_id, loads, pools, owners, scores, set(), hearing)


_SAVEPOINT = "SAVEPOINT baton_routing_locks"


def _rules_of(
    contract: HandoffContract,
    lead_rows: Sequence[Mapping[Any, Any]],
    scores: Mapping[int, tuple[float | None, str | None]],
) -> list[tuple[RoutingRule | None, str]]:
    """Each lead's rule (:func:`~baton.domain.routing.first_rule`: known from the lead
    and its score alone, whatever the roster) and email domain, found once for
    :func:`_wanted`, which may be asked again with a fresher roster."""
    found: list[tuple[RoutingRule | None, str]] = []
    for lead in lead_rows:
        total, grade = scores.get(int(lead["id"]), (None, None))
        rule = first_rule(contract, dict(lead), total=total, grade=grade)
        found.append((rule, lead.get("email_domain") or ""))
    return found


def _wanted(
    rules: Sequence[tuple[RoutingRule | None, str]],
    owners: Mapping[str, int],
    roster: Sequence[Rep],
) -> tuple[set[str], set[int]]:
    """The pools the decisions for the leads of ``rules`` (:func:`_rules_of`) may
    advance and the reps they may choose (the pools' members and the leads' account
    owners) by ``roster``."""
    by_id = {r.id for r in roster}
    keys: set[str] = set()
    choosable: set[int] = set()
    for rule, domain in rules:
        if rule is not None:
            key = pool_key(rule.pool)
            if key not in keys:  # a pool's members, once per pool
                keys.add(key)
                choosable.update(r.id for r in members(rule.pool, roster))
        owner = owners.get(domain)
        if owner is not None and owner in by_id:
            choosable.add(owner)
    return keys, choosable


def _decide(
    connection: Connection,
    contract: HandoffContract,
    lead: Mapping[Any, Any],
    *,
    now: datetime,
    exclude: Collection[int] = (),
) -> tuple[RoutingDecision, dict[int, Rep]]:
    state = _prepare(connection, contract, [lead])
    decision = state.decide(lead, now=now, exclude=exclude)
    state.save(connection)
    return decision, state.by_id


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


Announced = tuple[int, int, RoutingDecision]
"""A routing decision just stored: the handoff id, its lead id and the decision."""


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
    """Tell everyone about one routing decision just stored on an existing chain (an
    assignment from the queue, a reassignment): :func:`_announce_all`, with the nurture
    enrollment of a lead given to a rep ended and the chain rewritten from the event."""
    if decision.rep_id is not None and decision.rep_id in reps:
        # A rep has the lead: sales took it back from nurture (a no-op when the re-MQL
        # already ended its enrollment, or when its sequence does not exit on this).
        exit_enrollments_in(connection, [lead_id], "sales_took_back", now=now)
    _announce_all(
        connection,
        [(handoff_id, lead_id, decision)],
        reps,
        now=now,
        actor=actor,
        detail=detail,
        chains=True,
    )


def _announce_all(
    connection: Connection,
    announced: Sequence[Announced],
    reps: Mapping[int, Rep],
    *,
    now: datetime,
    actor: Principal,
    detail: Mapping[str, Any] | None = None,
    chains: bool = False,
    hearing: Mapping[int, Hearing] | None = None,
) -> None:
    """Tell everyone about routing decisions just stored, in their order: the event,
    the rep's email and chat messages and the webhook when a rep has the lead, the
    webhook and the managers' alert when it waits. The rows are those of one
    announcement after another, written with one statement per table: the reps' email
    choices and channels and the webhook endpoints are read once. ``chains``: rewrite
    each handoff's chain from its event (:func:`log_event`); a batch of new handoffs
    rewrites its chains once instead. ``hearing``: the reps' email choices and channels
    when the caller read them already (:func:`_prepare`, with the loads); read here
    when it misses a rep."""
    if not announced:
        return
    events, messages = _announcement_rows(
        connection, announced, reps, now=now, actor=actor, detail=detail, hearing=hearing
    )
    connection.execute(_INSERT_EVENTS, events)
    if messages:
        connection.execute(_INSERT_OUTBOX, messages)
    if chains:
        for event in events:
            on_handoff_event(connection, event["handoff_id"], event["kind"])


def _announcement_rows(
    connection: Connection,
    announced: Sequence[Announced],
    reps: Mapping[int, Rep],
    *,
    now: datetime,
    actor: Principal,
    detail: Mapping[str, Any] | None,
    hearing: Mapping[int, Hearing] | None,
    endpoints: list[Endpoint] | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The ``handoff_events`` and ``outbox`` rows :func:`_announce_all` writes, in
    their order (``endpoints``: the active webhook endpoints, when already read)."""
    given = sorted({d.rep_id for _, _, d in announced if d.rep_id is not None and d.rep_id in reps})
    if hearing is None or any(rep_id not in hearing for rep_id in given):
        hearing = hearing_of(connection, given) if given else {}
    if endpoints is None:
        endpoints = active_endpoints(connection)
    events: list[dict[str, Any]] = []
    messages: list[dict[str, Any]] = []
    for handoff_id, lead_id, decision in announced:
        rep = reps.get(decision.rep_id) if decision.rep_id is not None else None
        why = {"why": decision.reason}
        if rep is not None:
            events.append(
                _event_row(
                    handoff_id,
                    "assigned",
                    actor=actor,
                    now=now,
                    detail={"rep": rep.email, **why, **(detail or {})},
                )
            )
            heard = hearing.get(rep.id, Hearing(True, []))
            if heard.email:
                messages.append(
                    email_row(
                        topic="handoff.assigned", to=rep.email, now=now, handoff_id=handoff_id
                    )
                )
            messages += chat_rows(
                heard.channels,
                topic="handoff.assigned",
                rep_id=rep.id,
                handoff_id=handoff_id,
                now=now,
                data=dict(why),
            )
            messages += webhook_rows(
                endpoints,
                "handoff.assigned",
                webhook_data(handoff_id, lead_id, rep, **why),
                now=now,
                handoff_id=handoff_id,
            )
            continue
        events.append(_event_row(handoff_id, "queued", actor=actor, now=now, detail=why))
        messages += webhook_rows(
            endpoints,
            "handoff.queued",
            webhook_data(handoff_id, lead_id, None, **why),
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
        messages += [
            email_row(
                topic="queue.alert", to=manager, now=now, handoff_id=handoff_id, data=dict(why)
            )
            for manager in sorted(managers)
        ]
    return events, messages


_INSERT_EVENTS = insert(handoff_events)
_INSERT_OUTBOX = insert(outbox)


def open_handoffs_in(
    connection: Connection,
    lead_rows: Sequence[Mapping[Any, Any]],
    contract: HandoffContract | None,
    *,
    contract_version: int | None,
    now: datetime,
    actor: Principal,
    nurtured: Collection[int] | None = None,
    known: Known | None = None,
    lead_facts: bool = True,
) -> list[int]:
    """Create and route the handoffs of leads that just became MQLs, in their order, in
    one transaction: the pools and reps the decisions may use are locked and read once
    (pools in key order, then reps in id order), and each decision updates the loads and
    rotations for the next, so the handoffs, assignments, rotations, events, outbox
    rows and chains are exactly those of this function called for each lead in
    turn, written with a few statements for the whole batch. Returns the handoff ids
    in the order of ``lead_rows``.

    ``nurtured``: the leads among ``lead_rows`` that may still be in an active nurture
    enrollment, when the caller knows (it just ended the others' in this transaction,
    with the leads locked); None: every lead is looked up. ``known``: the leads' scores
    and account owners, when the caller read them with the leads (see :class:`Known`).
    ``lead_facts``: False when the caller writes the leads' handoff facts itself, after
    (:func:`~baton.services.milestones.handoff_facts`, with the lead's stage: one write
    of the lead row instead of two)."""
    if not lead_rows:
        return []
    contract = contract or _no_contract()
    state = _prepare(connection, contract, lead_rows, known)
    decisions = [state.decide(lead, now=now) for lead in lead_rows]
    rows: list[dict[str, Any]] = []
    for lead, decision in zip(lead_rows, decisions, strict=True):
        rep = state.by_id.get(decision.rep_id) if decision.rep_id is not None else None
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
            "accept_due_at": None,
            "touch_due_at": None,
            "next_step": None,
            "next_step_at": None,
        }
        if rep is not None:
            values.update(_sla_values(contract, rep, now))
        rows.append(values)
    endpoints: list[Endpoint] | None = None
    if connection.dialect.name == "postgresql" and len(rows) == 1:
        first, endpoints = _insert_one_handoff(connection, rows[0])
        opened = [first]
    else:
        opened = _insert_first_handoffs(connection, rows)
    assigned = [
        int(lead["id"])
        for lead, d in zip(lead_rows, decisions, strict=True)
        if d.rep_id is not None and (nurtured is None or int(lead["id"]) in nurtured)
    ]
    if assigned:
        # A rep has the lead: sales took it back from nurture (a no-op when the re-MQL
        # already ended its enrollment, or when its sequence does not exit on this).
        exit_enrollments_in(connection, assigned, "sales_took_back", now=now)
    announced = [
        (handoff_id, int(lead["id"]), decision)
        for handoff_id, lead, decision in zip(opened, lead_rows, decisions, strict=True)
    ]
    lead_ids = [int(lead["id"]) for lead in lead_rows]
    facts_of = lead_ids if lead_facts else []
    if connection.dialect.name == "postgresql" and len(announced) == 1:
        events, messages = _announcement_rows(
            connection,
            announced,
            state.by_id,
            now=now,
            actor=actor,
            detail=None,
            hearing=state.hearing,
            endpoints=endpoints,
        )
        if _write_one_opened(connection, events, messages, state, opened, facts_of):
            return opened
        connection.execute(_INSERT_EVENTS, events)
        if messages:
            connection.execute(_INSERT_OUTBOX, messages)
    else:
        _announce_all(
            connection, announced, state.by_id, now=now, actor=actor, hearing=state.hearing
        )
    add_chains(connection, opened, facts_of)
    state.save(connection)
    return opened


def _write_one_opened(
    connection: Connection,
    events: list[dict[str, Any]],
    messages: list[dict[str, Any]],
    state: _Routing,
    opened: list[int],
    lead_ids: list[int],
) -> bool:
    """PostgreSQL, one new handoff (a hand-raise): write its events, its outbox rows,
    its pool's rotation and its chain with one statement (the first three as
    data-modifying ``WITH`` parts of the chain's ``INSERT … SELECT``, which reads none
    of them), then its lead's handoff facts: the rows :func:`_announce_all`,
    :func:`~baton.services.milestones.add_chains` and :meth:`_Routing.save` write, in
    two round trips instead of five. False, having written nothing, when the rows do
    not share their columns (then the caller writes them the usual way)."""
    # Python-side column defaults (the outbox's message key), drawn per row as an
    # INSERT of the rows themselves draws them.
    messages = [
        {**{name: _draw(default) for name, default in _OUTBOX_DRAWN if name not in row}, **row}
        for row in messages
    ]
    shapes = {tuple(row) for row in messages}
    if len({tuple(row) for row in events}) != 1 or len(shapes) > 1:
        return False
    saved = state.saved()
    chains, params = chain_insert("postgresql", opened)
    statement = _opened_statement(
        tuple(events[0]),
        len(events),
        next(iter(shapes)) if shapes else (),
        len(messages),
        len(saved),
        chains,
    )
    for i, row in enumerate(events):
        params.update({f"e{i}_{k}": v for k, v in row.items()})
    for i, row in enumerate(messages):
        params.update({f"o{i}_{k}": v for k, v in row.items()})
    for i, row in enumerate(saved):
        params.update({f"r{i}_{k}": v for k, v in row.items()})
    connection.execute(statement, params)
    state.moved.clear()
    if lead_ids:  # (none: the caller writes the lead's facts)
        refresh_leads_of_chains(connection, lead_ids)
    return True


_OUTBOX_DRAWN = tuple(
    (c.name, c.default) for c in outbox.c if isinstance(c.default, CallableColumnDefault)
)
"""The outbox's Python-side column defaults, found once (not per message of every
hand-raise)."""


def _draw(default: Any) -> Any:
    """A Python-side column default's next value (its callable takes no context)."""
    return default.arg(None)


@functools.cache
def _opened_statement(
    event_columns: tuple[str, ...],
    events: int,
    message_columns: tuple[str, ...],
    messages: int,
    pools: int,
    chains: Any,
) -> Any:
    """The statement of :func:`_write_one_opened` for its rows' shape, built once:
    ``chains``, the chains' ``INSERT … SELECT``, with the other writes added to it."""

    def values(table: Any, prefix: str, columns: tuple[str, ...], n: int) -> Any:
        def row(i: int) -> list[Any]:
            return [bindparam(f"{prefix}{i}_{c}", type_=table.c[c].type).label(c) for c in columns]

        if n == 1:  # (a multi-row VALUES is never cached by SQLAlchemy)
            return insert(table).values(
                {c: bindparam(f"{prefix}0_{c}", type_=table.c[c].type) for c in columns}
            )
        rows = union_all(
            *(select(literal_column(str(i)).label("ordinal"), *row(i)) for i in range(n))
        ).subquery(f"{prefix}_rows")
        # In the rows' order, so their ids follow it.
        return insert(table).from_select(
            list(columns),
            select(*(rows.c[c] for c in columns)).order_by(rows.c.ordinal),
            include_defaults=False,
        )

    parts = [values(handoff_events, "e", event_columns, events).cte("opened_events")]
    if messages:
        parts.append(values(outbox, "o", message_columns, messages).cte("opened_outbox"))
    parts += [
        update(rotations)
        .where(rotations.c.pool == bindparam(f"r{i}_pool_key"))
        .values(
            virtual_pass=bindparam(f"r{i}_virtual", type_=rotations.c.virtual_pass.type),
            passes=bindparam(f"r{i}_passes", type_=rotations.c.passes.type),
        )
        .cte(f"opened_rotation_{i}")
        for i in range(pools)
    ]
    return chains.add_cte(*parts)


def _insert_first_handoffs(connection: Connection, rows: list[dict[str, Any]]) -> list[int]:
    """Insert handoffs that each start their own chain (``chain_id`` = their id);
    returns their ids in the order of ``rows``. On PostgreSQL the ids are drawn from
    the table's sequence first, so the rows go in with one plain multi-row insert
    (a third of the time of ``INSERT … RETURNING`` in parameter order, measured) and
    need no second statement for their chains (one handoff alone:
    :func:`_insert_one_handoff`)."""
    if connection.dialect.name == "postgresql":
        ids = sorted(
            int(i) for i in connection.execute(_NEXT_HANDOFF_IDS, {"n": len(rows)}).scalars()
        )
        connection.execute(
            insert(handoffs),
            [{**row, "id": i, "chain_id": i} for row, i in zip(rows, ids, strict=True)],
        )
        return ids
    opened = [
        int(i)
        for i in connection.execute(
            insert(handoffs).returning(handoffs.c.id, sort_by_parameter_order=True), rows
        ).scalars()
    ]
    for chunk in chunks(opened):
        arity, params = one_of_params("ids", chunk, up_to=1)
        connection.execute(_own_chains(arity), params)
    return opened


@functools.cache
def _own_chains(arity: int | None) -> Any:
    """Handoffs made the first of their own chains (see :func:`_insert_first_handoffs`)."""
    return (
        update(handoffs).where(one_of(handoffs.c.id, "ids", arity)).values(chain_id=handoffs.c.id)
    )


_OPENED = (
    "lead_id",
    "rep_id",
    "status",
    "contract_version",
    "mql_at",
    "created_at",
    "assigned_at",
    "routing",
    "reassignments",
    "accept_due_at",
    "touch_due_at",
    "next_step",
    "next_step_at",
)
"""The columns :func:`open_handoffs_in` gives a new handoff."""


def _insert_one_handoff(connection: Connection, row: Mapping[str, Any]) -> tuple[int, Any]:
    """One new handoff on PostgreSQL, its id drawn from the sequence once and given to
    both ``id`` and ``chain_id`` in the same statement (``INSERT … SELECT`` from the
    drawn value), returning the id and the active webhook endpoints (read here for
    its announcement): one round trip instead of three."""
    found = connection.execute(
        _insert_one_statement(), {f"h_{name}": row[name] for name in _OPENED}
    ).one()
    return int(found[0]), endpoints_of(found[1])


@functools.cache
def _insert_one_statement() -> Any:
    drawn = select(func.nextval(func.pg_get_serial_sequence("handoffs", "id")).label("n")).subquery(
        "drawn"
    )
    return (
        insert(handoffs)
        .from_select(
            ["id", "chain_id", *_OPENED],
            select(
                drawn.c.n,
                drawn.c.n,
                *(bindparam(f"h_{name}", type_=handoffs.c[name].type) for name in _OPENED),
            ),
        )
        .returning(handoffs.c.id, ACTIVE_ENDPOINTS_JSON)
    )


_NEXT_HANDOFF_IDS = text(
    "SELECT nextval(pg_get_serial_sequence('handoffs', 'id')) FROM generate_series(1, :n)"
)


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
        lock_reps(connection, [to_rep.id])
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
