"""The object-level half of access, in SQL: which leads, handoffs and reps a principal
reaches, for the use cases to filter lists and guard single objects.

An object out of reach is reported as missing (:class:`NotFound`), exactly as one that
does not exist, so a rep cannot learn which ids belong to others (OWASP API1).
"""

from __future__ import annotations

import logging

from sqlalchemy import ColumnElement, exists, false, func, or_, select, true
from sqlalchemy.engine import Connection

from baton.domain.access import Action, Principal, Reach, covers, reach
from baton.domain.errors import Forbidden, NotFound
from baton.store.tables import handoffs, leads, reps

log = logging.getLogger("baton.access")


def allowed(principal: Principal, action: Action) -> Reach:
    """:func:`baton.domain.access.reach`, logging a refusal with who asked."""
    try:
        return reach(principal, action)
    except Forbidden as refused:
        log.warning(
            "denied: %s (%s) may not %s: %s", principal.name, principal.kind, action, refused.detail
        )
        raise


def managed_rep(principal: Principal) -> ColumnElement[bool]:
    """Rows of ``reps`` the principal manages."""
    conditions: list[ColumnElement[bool]] = []
    if principal.team_ids:
        conditions.append(reps.c.team_id.in_(sorted(principal.team_ids)))
    if principal.email:
        conditions.append(func.lower(reps.c.manager_email) == principal.email.lower())
    return or_(*conditions) if conditions else false()


def handoff_scope(principal: Principal, level: Reach) -> ColumnElement[bool]:
    """Rows of ``handoffs`` within ``level``."""
    if level is Reach.ALL:
        return true()
    if level is Reach.OWN:
        return handoffs.c.rep_id == principal.rep_id if principal.rep_id else false()
    return or_(
        handoffs.c.rep_id.is_(None),
        handoffs.c.rep_id.in_(select(reps.c.id).where(managed_rep(principal))),
    )


def lead_scope(principal: Principal, level: Reach) -> ColumnElement[bool]:
    """Rows of ``leads`` within ``level``: for a rep, the leads of their handoffs (open
    or past); for a manager, those of their reps' handoffs and of the queue."""
    if level is Reach.ALL:
        return true()
    return exists(
        select(handoffs.c.id).where(
            handoffs.c.lead_id == leads.c.id, handoff_scope(principal, level)
        )
    )


def rep_scope(principal: Principal, level: Reach) -> ColumnElement[bool]:
    """Rows of ``reps`` within ``level`` (a rep reaches their own record only)."""
    if level is Reach.ALL:
        return true()
    if level is Reach.OWN:
        return reps.c.id == principal.rep_id if principal.rep_id else false()
    return managed_rep(principal)


def check_lead(connection: Connection, principal: Principal, action: Action, lead_id: int) -> None:
    """Raise :class:`NotFound` unless the lead exists and ``principal`` may take
    ``action`` on it (the role check raises :class:`Forbidden` first)."""
    level = allowed(principal, action)
    if level is Reach.ALL:
        return
    found = connection.execute(
        select(leads.c.id).where(leads.c.id == lead_id, lead_scope(principal, level))
    ).first()
    if found is None:
        raise NotFound(f"lead {lead_id} does not exist")


def check_handoff(
    connection: Connection,
    principal: Principal,
    action: Action,
    rep_id: int | None,
    handoff_id: int,
) -> None:
    """Raise :class:`NotFound` unless a handoff of rep ``rep_id`` is within reach."""
    level = allowed(principal, action)
    if level is Reach.ALL:
        return
    team_id: int | None = None
    manager: str | None = None
    if rep_id is not None and level is Reach.TEAM:
        row = connection.execute(
            select(reps.c.team_id, reps.c.manager_email).where(reps.c.id == rep_id)
        ).first()
        if row is not None:
            team_id, manager = row[0], row[1]
    if not covers(principal, level, rep_id=rep_id, rep_team_id=team_id, rep_manager_email=manager):
        raise NotFound(f"handoff {handoff_id} does not exist")


def check_rep(connection: Connection, principal: Principal, action: Action, rep_id: int) -> None:
    """Raise :class:`NotFound` unless the rep is within reach."""
    level = allowed(principal, action)
    if level is Reach.ALL:
        return
    found = connection.execute(
        select(reps.c.id).where(reps.c.id == rep_id, rep_scope(principal, level))
    ).first()
    if found is None:
        raise NotFound(f"rep {rep_id} does not exist")
