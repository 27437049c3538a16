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

from sqlalchemy import Integer, bindparam, insert, select, update
from sqlalchemy.engine import Connection

from baton.domain.access import Principal
from baton.domain.contract import HandoffContract
from baton.domain.errors import NotFound
from baton.domain.history import DEFAULT_LIVE_WITHIN_DAYS, check_occurred_at, is_live
from baton.domain.lifecycle import Stage, Transition, transition
from baton.services import milestones
from baton.services.contract_rules import active_contract_in
from baton.services.nurture import exit_on_stage_in
from baton.services.queries import chunks
from baton.services.routing import close_open_handoff_in, open_handoffs_in
from baton.store.tables import leads, transitions
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
    active = active_contract_in(connection)
    if contract_version is None:
        contract_version = active[0] if active else None
    row = connection.execute(_LOCK_ONE, {"lead_id": lead_id}).mappings().first()
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
    exited = _write(
        connection,
        [move],
        target,
        actor=actor,
        now=now,
        contract_version=contract_version,
        remaining=remaining,
    )
    if move.live:
        lead = connection.execute(select(leads).where(leads.c.id == lead_id)).mappings().one()
        open_handoffs_in(
            connection,
            [lead],
            active[1] if active else None,
            contract_version=contract_version,
            now=now,
            actor=actor,
            nurtured=remaining if exited is not None else None,
        )
    elif target in CLOSING_STAGES:
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
    in the order of ``changes``."""
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
            for row in connection.execute(select(leads).where(leads.c.id.in_(part))).mappings():
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
        insert(transitions),
        [
            {
                "lead_id": m.lead_id,
                "from_stage": m.step.from_stage.value,
                "to_stage": m.step.to_stage.value,
                "actor": actor.name,
                "actor_user_id": actor.user_id,
                "reason": m.reason,
                "occurred_at": m.at,
                "contract_version": contract_version,
                "historical": m.after_the_fact,
                "recorded_at": now if m.after_the_fact else None,
                "deal_value": m.deal_value,
            }
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
