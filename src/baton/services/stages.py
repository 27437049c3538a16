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

from datetime import datetime

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection

from baton.domain.access import Principal
from baton.domain.errors import NotFound
from baton.domain.lifecycle import Stage, Transition, transition
from baton.services import milestones
from baton.services.contract_rules import active_contract_in
from baton.services.routing import close_open_handoff_in, open_handoff_in
from baton.store.tables import leads, transitions

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
) -> Transition:
    """Move a locked lead through the lifecycle and store the transition with the
    contract version in force (the active one unless given). The only code that writes
    ``leads.stage`` after creation. The caller has checked that ``actor`` may; the
    transition records ``actor``'s name and user."""
    active = active_contract_in(connection)
    if contract_version is None:
        contract_version = active[0] if active else None
    row = (
        connection.execute(
            select(leads.c.stage, leads.c.merged_into_id)
            .where(leads.c.id == lead_id)
            .with_for_update()
        )
        .mappings()
        .first()
    )
    if row is None:
        raise NotFound(f"lead {lead_id} does not exist")
    if row["merged_into_id"] is not None:
        raise NotFound(f"lead {lead_id} was merged into lead {row['merged_into_id']}")
    step = transition(
        Stage(row["stage"]),
        target,
        actor=actor.name,
        reason=reason,
        at=now,
        contract_version=contract_version,
    )
    connection.execute(
        update(leads)
        .where(leads.c.id == lead_id)
        .values(
            stage=target.value,
            stage_changed_at=now,
            updated_at=now,
            **milestones.on_transition(target.value, now, contract_version),
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
            occurred_at=now,
            contract_version=contract_version,
        )
    )
    milestones.on_stage_change(connection, lead_id, target.value)  # a move by hand counts
    if target == Stage.MQL:
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
