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

from dataclasses import replace
from datetime import datetime

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection

from baton.domain.access import Principal
from baton.domain.errors import NotFound
from baton.domain.history import DEFAULT_LIVE_WITHIN_DAYS, check_occurred_at, is_live
from baton.domain.lifecycle import Stage, Transition, transition
from baton.services import milestones
from baton.services.contract_rules import active_contract_in
from baton.services.nurture import exit_on_stage_in
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
    row = (
        connection.execute(
            select(
                leads.c.stage, leads.c.merged_into_id, leads.c.created_at, leads.c.stage_changed_at
            )
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
    if target == Stage.MQL and not is_live(
        at, now=now, live_within_days=window, historical=historical
    ):
        return step  # history: recorded, and no live handoff for a moment in the past
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
