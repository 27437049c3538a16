"""The readiness (prep) checklist of a lead: the items the active contract declares,
which of them are ticked, by whom and when. Required items must be ticked before a
lead can be handed off on score (a hand-raise goes through; sales sees what is open).

Reading the list follows who may read the lead; ticking follows who may annotate it
(a rep ticks the leads of their own handoffs)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.engine import Connection

from baton.domain.access import Action, Principal
from baton.domain.contract import HandoffContract
from baton.domain.errors import FieldProblem, NotFound, ValidationFailed
from baton.services.access import check_lead
from baton.services.context import Context
from baton.services.contract_rules import active_contract_in
from baton.services.queries import insert_ignoring_conflicts, lock_active_lead
from baton.services.scoring import score_leads_in
from baton.store.tables import lead_prep, leads


@dataclass(frozen=True)
class PrepItemState:
    """One checklist item on one lead."""

    id: str
    label: str
    required: bool
    done: bool
    done_by: str | None = None
    done_at: datetime | None = None


def _contract(connection: Connection) -> HandoffContract:
    active = active_contract_in(connection)
    if active is None:
        raise NotFound("no contract is active yet, so there is no prep checklist")
    return active[1]


def prep_state_in(
    connection: Connection, lead_id: int, *, share_lock: bool = True
) -> list[PrepItemState]:
    """The checklist of the active contract with this lead's ticks (empty without an
    active contract)."""
    active = active_contract_in(connection, share_lock=share_lock)
    if active is None:
        return []
    ticks = {
        item: (by, at)
        for item, by, at in connection.execute(
            select(lead_prep.c.item, lead_prep.c.done_by, lead_prep.c.done_at).where(
                lead_prep.c.lead_id == lead_id
            )
        )
    }
    return [
        PrepItemState(
            item.id,
            item.label,
            item.required,
            item.id in ticks,
            *(ticks.get(item.id) or (None, None)),
        )
        for item in active[1].prep_checklist
    ]


def prep_checklist(ctx: Context, lead_id: int, *, actor: Principal) -> list[PrepItemState]:
    """The lead's checklist; a lead out of ``actor``'s reach is :class:`NotFound`."""
    with ctx.read() as connection:
        check_lead(connection, actor, Action.READ_LEADS, lead_id)
        merged = connection.execute(
            select(leads.c.id, leads.c.merged_into_id).where(leads.c.id == lead_id)
        ).first()
        if merged is None:
            raise NotFound(f"lead {lead_id} does not exist")
        if merged[1] is not None:
            raise NotFound(f"lead {lead_id} was merged into lead {merged[1]}; use that lead")
        return prep_state_in(connection, lead_id, share_lock=False)


def _known(contract: HandoffContract, item: str) -> None:
    ids = [i.id for i in contract.prep_checklist]
    if item not in ids:
        raise ValidationFailed(
            f"unknown prep item '{item}'",
            [FieldProblem("item", f"the active contract lists: {', '.join(ids) or 'none'}")],
        )


def tick_prep(ctx: Context, lead_id: int, item: str, *, actor: Principal) -> list[PrepItemState]:
    """Mark an item done (idempotent). Ticking the last required item can hand the lead
    off at once if its score already qualifies (that handoff is recorded as ``actor``'s)."""
    now = ctx.clock.now()
    with ctx.write() as connection:
        check_lead(connection, actor, Action.ANNOTATE_LEAD, lead_id)
        lock_active_lead(connection, lead_id)
        _known(_contract(connection), item)
        connection.execute(
            insert_ignoring_conflicts(connection, lead_prep).values(
                lead_id=lead_id, item=item, done_by=actor.name, done_at=now
            )
        )
        score_leads_in(connection, [lead_id], now=now, actor=actor)
        return prep_state_in(connection, lead_id)


def untick_prep(ctx: Context, lead_id: int, item: str, *, actor: Principal) -> list[PrepItemState]:
    """Mark an item not done."""
    with ctx.write() as connection:
        check_lead(connection, actor, Action.ANNOTATE_LEAD, lead_id)
        lock_active_lead(connection, lead_id)
        _known(_contract(connection), item)
        connection.execute(
            delete(lead_prep).where(lead_prep.c.lead_id == lead_id, lead_prep.c.item == item)
        )
        return prep_state_in(connection, lead_id)
