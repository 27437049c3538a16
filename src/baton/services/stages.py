"""A lead's stage change and what it sets off: the one owner of ``leads.stage`` after
the lead is created.

Whoever moves a lead calls :func:`change_stage_in` inside the transaction it owns:
scoring when a lead reaches the MQL point (:mod:`baton.services.scoring`), a person
moving it by hand (:func:`baton.services.leads.change_stage`), sales' verdicts
(:mod:`baton.services.handoffs`), a merge's re-score. The stage change checks the move
against the lifecycle, stores the transition with the contract version in force, keeps
the report milestones, and then sets off its consequences in the same transaction: a
new MQL gets its handoff opened and routed, and a lead leaving sales' hands (nurture,
disqualified, lost, customer) gets its open handoff closed
(:mod:`baton.services.routing`). The consequences are plain calls, not subscribers, so
what a stage change does can be read here top to bottom.

The imports run one way: contracts → scoring → stages → routing, with leads and the
handoffs' verdicts calling down into stages; routing never changes a stage.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import Integer, bindparam, exists, insert, literal_column, select, true, update
from sqlalchemy.engine import Connection

from baton.domain.access import Principal
from baton.domain.contract import HandoffContract
from baton.domain.errors import NotFound
from baton.domain.history import DEFAULT_LIVE_WITHIN_DAYS, check_occurred_at, is_live
from baton.domain.lifecycle import Stage, Transition, transition
from baton.domain.nurture import exit_for_stage
from baton.domain.routing import ROUTED_FIELDS
from baton.services import milestones
from baton.services.contract_rules import (
    ACTIVE_LOCKED,
    active_contract_from,
    active_contract_in,
    active_contract_known,
)
from baton.services.nurture import exit_on_stage_in
from baton.services.queries import chunks
from baton.services.routing import Known, close_open_handoff_in, open_handoffs_in
from baton.store.tables import accounts, lead_scores, leads, nurture_enrollments, transitions
from baton.store.types import UtcDateTime

_MOVE_COLUMNS = (  # what a stage change reads of the lead, under its lock
    leads.c.stage,
    leads.c.merged_into_id,
    leads.c.created_at,
    leads.c.stage_changed_at,
)

CLOSING_STAGES = frozenset({Stage.NURTURE, Stage.DISQUALIFIED, Stage.LOST, Stage.CUSTOMER})
"""Stages that take a lead out of sales' hands: moving there closes its open handoff."""


def change_stage_in(
    connection: Connection,
    lead_id: int,
    target: Stage,
    *,
    actor: Principal,
    reason: str,
    now: datetime,
    contract_version: int | None = None,
    occurred_at: datetime | None = None,
    historical: bool = False,
    deal_value: float | None = None,
) -> Transition:
    """Move a locked lead through the lifecycle and store the transition with the
    contract version in force (the active one unless given). The only code that writes
    ``leads.stage`` after creation. The caller has checked that ``actor`` may; the
    transition records ``actor``'s name and user.

    ``occurred_at`` is when the change really happened, when it is not ``now`` (history
    from another CRM, a verdict recorded late): never in the future, before the lead
    existed or before its previous transition (:func:`~baton.domain.history.check_occurred_at`).
    Such a transition is stored as ``historical`` with ``recorded_at`` = ``now``. An MQL
    marked ``historical``, or whose moment is older than the contract's
    ``mql.live_within_days``, opens no handoff: history never fires live work."""
    active, row = _lock_one(connection, lead_id)
    if contract_version is None:
        contract_version = active[0] if active else None
    move = _plan(
        lead_id,
        row,
        target,
        active=active,
        actor=actor,
        reason=reason,
        now=now,
        contract_version=contract_version,
        occurred_at=occurred_at,
        historical=historical,
        deal_value=deal_value,
    )
    remaining: set[int] = set()
    if target == Stage.MQL:
        lead, known, exited, deferred = _write_one_mql(
            connection,
            move,
            actor=actor,
            now=now,
            contract_version=contract_version,
            remaining=remaining,
        )
        if move.live:
            open_handoffs_in(
                connection,
                [lead],
                active[1] if active else None,
                contract_version=contract_version,
                now=now,
                actor=actor,
                nurtured=remaining if exited is not None else None,
                known=known,
                lead_facts=not deferred,
            )
        if deferred:
            connection.execute(
                _move_with_facts_statement(), _move_params(move, now, contract_version)
            )
        return move.step
    _write(
        connection,
        [move],
        target,
        actor=actor,
        now=now,
        contract_version=contract_version,
        remaining=remaining,
    )
    if target in CLOSING_STAGES:
        close_open_handoff_in(
            connection, lead_id, outcome=f"lead moved to {target.value}", now=now, actor=actor
        )
    return move.step


@dataclass(frozen=True)
class MqlChange:
    """One lead becoming an MQL in :func:`change_stages_in`: the arguments
    :func:`change_stage_in` takes for it (why, and when it really happened)."""

    lead_id: int
    reason: str
    occurred_at: datetime | None = None
    historical: bool = False


def change_stages_in(
    connection: Connection,
    changes: Sequence[MqlChange],
    *,
    actor: Principal,
    now: datetime,
    contract_version: int | None = None,
) -> list[Transition]:
    """Make many leads MQLs in one transaction: the same transitions, milestones,
    nurture exits, handoffs, assignments, rotations, events and outbox rows as
    :func:`change_stage_in` called with :attr:`Stage.MQL <baton.domain.lifecycle.Stage.MQL>`
    for each change in turn, but set-based: the leads are locked at once (in id
    order), their rows and transitions written with one statement each, and the new
    MQLs' handoffs routed together (:func:`~baton.services.routing.open_handoffs_in`:
    roster, loads, rotations and account owners read once). For a re-score that makes
    thousands of MQLs. A change that cannot be made (a lead missing or merged, a move
    the lifecycle refuses) raises before anything is written. Returns the transitions
    in the order of ``changes``. One change (a capture's hand-raise) takes
    :func:`change_stage_in`, which writes the same with fewer statements."""
    if len(changes) == 1:
        (change,) = changes
        step = change_stage_in(
            connection,
            change.lead_id,
            Stage.MQL,
            actor=actor,
            reason=change.reason,
            now=now,
            contract_version=contract_version,
            occurred_at=change.occurred_at,
            historical=change.historical,
        )
        return [step]
    return _change_stages_in(
        connection, changes, actor=actor, now=now, contract_version=contract_version
    )


def _change_stages_in(
    connection: Connection,
    changes: Sequence[MqlChange],
    *,
    actor: Principal,
    now: datetime,
    contract_version: int | None,
) -> list[Transition]:
    """:func:`change_stages_in`, set-based for any number of changes (the simple path
    of one hand-raise, which :func:`change_stage_in` replaces)."""
    if not changes:
        return []
    active = active_contract_in(connection)
    if contract_version is None:
        contract_version = active[0] if active else None
    ids = sorted({c.lead_id for c in changes})
    locked: dict[int, Mapping[Any, Any]] = {}
    for part in chunks(ids):
        for row in connection.execute(
            select(leads.c.id, *_MOVE_COLUMNS)
            .where(leads.c.id.in_(part))
            .order_by(leads.c.id)
            .with_for_update()
        ).mappings():
            locked[int(row["id"])] = row
    moves: list[_Move] = []
    for change in changes:
        move = _plan(
            change.lead_id,
            locked.get(change.lead_id),
            Stage.MQL,
            active=active,
            actor=actor,
            reason=change.reason,
            now=now,
            contract_version=contract_version,
            occurred_at=change.occurred_at,
            historical=change.historical,
            deal_value=None,
        )
        moves.append(move)
        # A lead changed twice moves on from where its first change left it.
        locked[change.lead_id] = {
            **locked[change.lead_id],
            "stage": Stage.MQL.value,
            "stage_changed_at": move.at,
        }
    remaining: set[int] = set()
    exited = _write(
        connection,
        moves,
        Stage.MQL,
        actor=actor,
        now=now,
        contract_version=contract_version,
        remaining=remaining,
    )
    live = [m.lead_id for m in moves if m.live]
    if live:
        rows: dict[int, Any] = {}
        for part in chunks(live):
            for row in connection.execute(
                select(*_ROUTED_LEAD).where(leads.c.id.in_(part))
            ).mappings():
                rows[int(row["id"])] = row
        open_handoffs_in(
            connection,
            [rows[lead_id] for lead_id in live],
            active[1] if active else None,
            contract_version=contract_version,
            now=now,
            actor=actor,
            nurtured=remaining if exited is not None else None,
        )
    return [m.step for m in moves]


_LOCK_ONE = select(*_MOVE_COLUMNS).where(leads.c.id == bindparam("lead_id")).with_for_update()


def _lock_one(
    connection: Connection, lead_id: int
) -> tuple[tuple[int, HandoffContract] | None, Mapping[Any, Any] | None]:
    """The active contract, share-locked (:func:`active_contract_in`), then the lead's
    :data:`_MOVE_COLUMNS` under its lock (None: no such lead). On PostgreSQL in one
    statement (:data:`~baton.services.contract_rules.ACTIVE_LOCKED` joined to the
    lead's row): one round trip less per stage change, with the locks taken in the same
    order (the version's row, then the lead's)."""
    if connection.dialect.name != "postgresql" or active_contract_known(connection):
        active = active_contract_in(connection)
        return active, connection.execute(_LOCK_ONE, {"lead_id": lead_id}).mappings().first()
    row = connection.execute(_lock_one_with_contract(), {"lead_id": lead_id}).mappings().first()
    if row is None:  # (no lead: the move is refused before the rules are needed)
        return None, None
    return active_contract_from(connection, row["active_version"], row["active_digest"]), row


@functools.cache
def _lock_one_with_contract() -> Any:
    """PostgreSQL: :data:`_LOCK_ONE` with the active version and its digest, read and
    share-locked by a subquery (``LEFT JOIN … ON true``: the lead is read when no
    version is active, or when the one it waited for was superseded meanwhile)."""
    active = ACTIVE_LOCKED
    return (
        select(*_MOVE_COLUMNS, active.c.active_version, active.c.active_digest)
        .select_from(leads.outerjoin(active, true()))
        .where(leads.c.id == bindparam("lead_id"))
        .with_for_update(of=leads)
    )


@dataclass(frozen=True)
class _Move:
    """One stage change checked and decided, not yet written: its transition, its
    moment, and whether it opens a live handoff."""

    lead_id: int
    step: Transition
    at: datetime
    after_the_fact: bool
    live: bool
    reason: str
    deal_value: float | None


def _plan(
    lead_id: int,
    row: Mapping[Any, Any] | None,
    target: Stage,
    *,
    active: tuple[int, HandoffContract] | None,
    actor: Principal,
    reason: str,
    now: datetime,
    contract_version: int | None,
    occurred_at: datetime | None,
    historical: bool,
    deal_value: float | None,
) -> _Move:
    """Check one stage change against the lead's :data:`_MOVE_COLUMNS` (read under its
    lock) and the lifecycle, and decide its transition, without writing anything."""
    if row is None:
        raise NotFound(f"lead {lead_id} does not exist")
    if row["merged_into_id"] is not None:
        raise NotFound(f"lead {lead_id} was merged into lead {row['merged_into_id']}")
    at = now
    if occurred_at is not None:
        check_occurred_at(
            occurred_at,
            now=now,
            created_at=row["created_at"],
            previous_at=row["stage_changed_at"],
        )
        at = occurred_at
    after_the_fact = historical or occurred_at is not None
    step = transition(
        Stage(row["stage"]),
        target,
        actor=actor.name,
        reason=reason,
        at=at,
        contract_version=contract_version,
    )
    if after_the_fact:
        step = replace(step, historical=True, recorded_at=now)
    window = active[1].mql.live_within_days if active else DEFAULT_LIVE_WITHIN_DAYS
    # History (a moment in the past) is recorded, and opens no live handoff.
    live = target == Stage.MQL and is_live(
        at, now=now, live_within_days=window, historical=historical
    )
    return _Move(lead_id, step, at, after_the_fact, live, reason, deal_value)


@functools.cache
def _move_statement(stage: str) -> Any:
    """The ``UPDATE leads`` of moves into ``stage``, built once, for one row or many."""
    at = bindparam("move_at", type_=UtcDateTime)
    return (
        update(leads)
        .where(leads.c.id == bindparam("move_lead_id"))
        .values(
            stage=stage,
            stage_changed_at=at,
            updated_at=bindparam("move_now", type_=UtcDateTime),
            **milestones.on_transition(stage, at, bindparam("move_version", type_=Integer)),
        )
    )


def _write(
    connection: Connection,
    moves: Sequence[_Move],
    target: Stage,
    *,
    actor: Principal,
    now: datetime,
    contract_version: int | None,
    remaining: set[int],
) -> list[int] | None:
    """Write planned moves into ``target`` in their order (the leads with their
    milestones, then the transitions, one statement each), keep the report milestones,
    and end the nurture enrollments the move ends. Returns what
    :func:`~baton.services.nurture.exit_on_stage_in` returns (None: nothing looked up);
    ``remaining`` receives the leads still in an active enrollment."""
    connection.execute(
        _move_statement(target.value),
        [
            {
                "move_lead_id": m.lead_id,
                "move_at": m.at,
                "move_now": now,
                "move_version": contract_version,
            }
            for m in moves
        ],
    )
    connection.execute(
        _INSERT_TRANSITION,
        [
            _transition_row(m, actor=actor, now=now, contract_version=contract_version)
            for m in moves
        ],
    )
    for m in moves:
        milestones.on_stage_change(connection, m.lead_id, target.value)  # a move by hand counts
    # Back in sales' hands (or disqualified): the leads' nurture enrollments end here, in
    # the same transaction as the MQL (re_mql / sales_took_back / disqualified).
    return exit_on_stage_in(
        connection,
        sorted({m.lead_id for m in moves}),
        target.value,
        actor=actor,
        now=now,
        remaining=remaining,
    )


_INSERT_TRANSITION = insert(transitions)


def _transition_row(
    move: _Move, *, actor: Principal, now: datetime, contract_version: int | None
) -> dict[str, Any]:
    return {
        "lead_id": move.lead_id,
        "from_stage": move.step.from_stage.value,
        "to_stage": move.step.to_stage.value,
        "actor": actor.name,
        "actor_user_id": actor.user_id,
        "reason": move.reason,
        "occurred_at": move.at,
        "contract_version": contract_version,
        "historical": move.after_the_fact,
        "recorded_at": now if move.after_the_fact else None,
        "deal_value": move.deal_value,
    }


_ROUTED_LEAD_NAMES = (*ROUTED_FIELDS, "reached_stages", "mql_at", "mql_contract_version")
"""What a new MQL's handoff reads of its lead: what routing may read
(:data:`~baton.domain.routing.ROUTED_FIELDS`) and the milestones
:func:`~baton.services.milestones.on_transition_of` moves. Not the whole row: each
result column costs the driver's and SQLAlchemy's work on every hand-raise."""

_ROUTED_LEAD = tuple(leads.c[name] for name in _ROUTED_LEAD_NAMES)


_TRANSITION_COLUMNS = (
    "lead_id",
    "from_stage",
    "to_stage",
    "actor",
    "actor_user_id",
    "reason",
    "occurred_at",
    "contract_version",
    "historical",
    "recorded_at",
    "deal_value",
)
"""The columns :func:`_transition_row` gives."""


@functools.cache
def _one_mql_statement(dialect: str) -> Any:
    """:func:`_move_statement` into MQL for one lead, returning the lead as moved
    (:data:`_ROUTED_LEAD`) with what routing reads besides (its score, its account's
    owner, and whether it is in an active nurture enrollment), read after the lead's
    lock was taken. On PostgreSQL it also inserts the transition (a data-modifying
    ``WITH`` part taking the :func:`_transition_row` values as ``t_*``): one round trip
    for both."""
    statement = _move_statement(Stage.MQL.value)
    if dialect == "postgresql":
        statement = statement.add_cte(_transition_cte())
    return statement.returning(*_ROUTED_LEAD, *_routing_reads())


def _transition_cte() -> Any:
    """PostgreSQL: the transition's ``INSERT`` as a data-modifying ``WITH`` part (the
    :func:`_transition_row` values as ``t_*``)."""
    return (
        insert(transitions)
        .values(
            {
                name: bindparam(f"t_{name}", type_=transitions.c[name].type)
                for name in _TRANSITION_COLUMNS
            }
        )
        .cte("moved_transition")
    )


def _routing_reads() -> list[Any]:
    """What routing reads of a new MQL besides its row, read with it: its score, its
    account's owner, and whether it is in an active nurture enrollment."""
    # Named in full: SQLite's RETURNING is rendered with bare column names, which
    # inside these subqueries would name their own tables' columns.
    lead_id: Any = literal_column("leads.id")
    score = select(lead_scores.c.total, lead_scores.c.grade).where(lead_scores.c.lead_id == lead_id)
    return [
        score.with_only_columns(lead_scores.c.total).scalar_subquery().label("_score_total"),
        score.with_only_columns(lead_scores.c.grade).scalar_subquery().label("_score_grade"),
        select(accounts.c.owner_rep_id)
        .where(
            accounts.c.domain == literal_column("leads.email_domain"),
            accounts.c.owner_rep_id.is_not(None),
        )
        .scalar_subquery()
        .label("_owner"),
        exists()
        .where(
            nurture_enrollments.c.lead_id == lead_id,
            nurture_enrollments.c.status == "active",
        )
        .label("_nurtured"),
    ]


@functools.cache
def _read_one_mql_statement() -> Any:
    """PostgreSQL, a live hand-raise: the locked lead as it is (:data:`_ROUTED_LEAD`),
    with :func:`_routing_reads`, read after its lock was taken, and its transition inserted
    (the ``WITH`` part of :func:`_one_mql_statement`). The lead is written once, after
    routing (:func:`_move_with_facts_statement`)."""
    return (
        select(*_ROUTED_LEAD, *_routing_reads())
        .where(leads.c.id == bindparam("move_lead_id"))
        .add_cte(_transition_cte())
    )


@functools.cache
def _move_with_facts_statement() -> Any:
    """:func:`_move_statement` into MQL with the lead's handoff facts
    (:func:`~baton.services.milestones.handoff_facts`, read from the chain just
    written): the one write of a hand-raise's lead on PostgreSQL. The stage change and
    the handoff facts touch columns of ``ix_leads_cohort``, so each write of the row
    rewrites every index of ``leads``: one write instead of two."""
    return _move_statement(Stage.MQL.value).values(**milestones.handoff_facts())


def _move_params(move: _Move, now: datetime, contract_version: int | None) -> dict[str, Any]:
    """The parameters of :func:`_move_statement` for one move."""
    return {
        "move_lead_id": move.lead_id,
        "move_at": move.at,
        "move_now": now,
        "move_version": contract_version,
    }


def _write_one_mql(
    connection: Connection,
    move: _Move,
    *,
    actor: Principal,
    now: datetime,
    contract_version: int | None,
    remaining: set[int],
) -> tuple[dict[str, Any], Known, list[int] | None, bool]:
    """:func:`_write` of one move into MQL (a hand-raise), with the lead read back by
    its ``UPDATE`` instead of by three more look-ups: returns the lead as moved (its
    :data:`_ROUTED_LEAD_NAMES`), its score and account owner for routing, what
    :func:`_write` returns, and whether the lead is still to be written. The nurture
    enrollments are looked up only when the lead is in an active one; when it is not,
    the result is the one :func:`~baton.services.nurture.exit_on_stage_in` gives for a
    lead with none (nothing ended, nothing remaining).

    On PostgreSQL, a live MQL whose lead is in no active enrollment is still to be
    written (True): its lead is read here (:func:`_read_one_mql_statement`) with the
    transition inserted, and the caller writes it after routing, with its handoff facts
    (:func:`_move_with_facts_statement`); the row returned is the lead as that write
    will leave it (:func:`~baton.services.milestones.on_transition_of`)."""
    dialect = connection.dialect.name
    step = _transition_row(move, actor=actor, now=now, contract_version=contract_version)
    params = _move_params(move, now, contract_version)
    read_first = dialect == "postgresql" and move.live  # the row read, not yet written
    defer = read_first
    if dialect == "postgresql":
        params.update({f"t_{name}": value for name, value in step.items()})
    statement = _read_one_mql_statement() if read_first else _one_mql_statement(dialect)
    row = connection.execute(statement, params).one()
    lead = dict(zip(_ROUTED_LEAD_NAMES, row, strict=False))  # then the routing reads
    total, grade, owner, nurtured = row[len(_ROUTED_LEAD_NAMES) :]
    if dialect != "postgresql":
        connection.execute(_INSERT_TRANSITION, step)
    if defer and nurtured:  # written now, for the enrollments' exit to see
        connection.execute(
            _move_statement(Stage.MQL.value), _move_params(move, now, contract_version)
        )
        defer = False
    milestones.on_stage_change(connection, move.lead_id, Stage.MQL.value)
    exited: list[int] | None
    if nurtured:
        exited = exit_on_stage_in(
            connection, [move.lead_id], Stage.MQL.value, actor=actor, now=now, remaining=remaining
        )
    else:
        role = actor.role.value if actor.role is not None else None
        exited = None if exit_for_stage(Stage.MQL.value, role) is None else []
    if read_first:
        lead.update(_moved(lead, move, now, contract_version))
    domain = lead["email_domain"]
    return (
        lead,
        Known(
            scores={move.lead_id: (total, grade)} if grade is not None else {},
            owners={str(domain): int(owner)} if domain and owner is not None else {},
        ),
        exited,
        defer,
    )


def _moved(
    lead: Mapping[str, Any], move: _Move, now: datetime, contract_version: int | None
) -> dict[str, Any]:
    """The columns :func:`_move_statement` into MQL writes, as it will write them on
    ``lead`` (a row read before the write)."""
    return {
        "stage": Stage.MQL.value,
        "stage_changed_at": move.at,
        "updated_at": now,
        **milestones.on_transition_of(lead, Stage.MQL.value, move.at, contract_version),
    }
