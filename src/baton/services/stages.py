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

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection, RowMapping

from baton.domain.access import Principal
from baton.domain.contract import HandoffContract
from baton.domain.errors import NotFound
from baton.domain.history import DEFAULT_LIVE_WITHIN_DAYS, check_occurred_at, is_live
from baton.domain.lifecycle import Stage, Transition, transition
from baton.services import milestones
from baton.services.contract_rules import active_contract_in
from baton.services.nurture import exit_on_stage_in
from baton.services.queries import chunks
from baton.services.routing import close_open_handoff_in, open_handoff_in, open_handoffs_in
from baton.store.tables import leads, transitions

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
    step, live = _move(
        connection,
        lead_id,
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
    if live:
        lead = connection.execute(select(leads).where(leads.c.id == lead_id)).mappings().one()
        open_handoff_in(
            connection,
            lead,
            active[1] if active else None,
            contract_version=contract_version,
            now=now,
            actor=actor,
        )
    elif target in CLOSING_STAGES:
        close_open_handoff_in(
            connection, lead_id, outcome=f"lead moved to {target.value}", now=now, actor=actor
        )
    return step


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
    """Make many leads MQLs in one transaction: the same transitions, handoffs,
    assignments and rotations as :func:`change_stage_in` called with
    :attr:`Stage.MQL <baton.domain.lifecycle.Stage.MQL>` for each change in turn, but
    the leads are locked at once (in id order) and the new MQLs' handoffs are routed
    together (:func:`~baton.services.routing.open_handoffs_in`: roster, loads,
    rotations and account owners read once). For a re-score that makes thousands of
    MQLs. Returns the transitions in the order of ``changes``."""
    if not changes:
        return []
    active = active_contract_in(connection)
    if contract_version is None:
        contract_version = active[0] if active else None
    ids = sorted({c.lead_id for c in changes})
    locked: dict[int, RowMapping] = {}
    for part in chunks(ids):
        for row in connection.execute(
            select(leads.c.id, *_MOVE_COLUMNS)
            .where(leads.c.id.in_(part))
            .order_by(leads.c.id)
            .with_for_update()
        ).mappings():
            locked[int(row["id"])] = row
    steps: list[Transition] = []
    live: list[int] = []
    for change in changes:
        step, opens = _move(
            connection,
            change.lead_id,
            Stage.MQL,
            active=active,
            actor=actor,
            reason=change.reason,
            now=now,
            contract_version=contract_version,
            occurred_at=change.occurred_at,
            historical=change.historical,
            deal_value=None,
            row=locked.pop(change.lead_id, None),
        )
        steps.append(step)
        if opens:
            live.append(change.lead_id)
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
        )
    return steps


def _move(
    connection: Connection,
    lead_id: int,
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
    row: RowMapping | None = None,
) -> tuple[Transition, bool]:
    """The stage change itself, up to its handoff: returns the transition and whether
    the lead now needs a live handoff opened (a live MQL). ``row``: the lead's
    :data:`_MOVE_COLUMNS`, already read under its lock."""
    if row is None:
        row = (
            connection.execute(
                select(*_MOVE_COLUMNS).where(leads.c.id == lead_id).with_for_update()
            )
            .mappings()
            .first()
        )
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
    connection.execute(
        update(leads)
        .where(leads.c.id == lead_id)
        .values(
            stage=target.value,
            stage_changed_at=at,
            updated_at=now,
            **milestones.on_transition(target.value, at, contract_version),
        )
    )
    connection.execute(
        insert(transitions).values(
            lead_id=lead_id,
            from_stage=step.from_stage.value,
            to_stage=step.to_stage.value,
            actor=actor.name,
            actor_user_id=actor.user_id,
            reason=reason,
            occurred_at=at,
            contract_version=contract_version,
            historical=after_the_fact,
            recorded_at=now if after_the_fact else None,
            deal_value=deal_value,
        )
    )
    milestones.on_stage_change(connection, lead_id, target.value)  # a move by hand counts
    # Back in sales' hands (or disqualified): the lead's nurture enrollment ends here, in
    # the same transaction as the MQL (re_mql / sales_took_back / disqualified).
    exit_on_stage_in(connection, lead_id, target.value, actor=actor, now=now)
    window = active[1].mql.live_within_days if active else DEFAULT_LIVE_WITHIN_DAYS
    # History (a moment in the past) is recorded, and opens no live handoff.
    return step, target == Stage.MQL and is_live(
        at, now=now, live_within_days=window, historical=historical
    )
