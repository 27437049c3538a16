"""The milestones reports read (see :mod:`baton.services.milestones`), as tests compare
them: what the use cases kept must equal a recomputation from the history."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection

from baton.domain.reports import MILESTONE_STAGES
from baton.services.context import Context
from baton.services.milestones import rebuild
from baton.store.tables import handoff_chains, handoffs, leads

MILESTONE_COLUMNS = (
    "reached_stages",
    *(f"{stage}_at" for stage in MILESTONE_STAGES),
    "mql_contract_version",
    "first_rep_id",
    "handoff_outcomes",
    "open_accept_due_at",
)


def milestones_in(connection: Connection) -> dict[str, list[tuple[Any, ...]]]:
    lead_columns = (leads.c.id, *(leads.c[c] for c in MILESTONE_COLUMNS))
    step_columns = (handoffs.c.id, handoffs.c.reminders, handoffs.c.manager_notifications)
    return {
        "leads": [tuple(r) for r in connection.execute(select(*lead_columns).order_by(leads.c.id))],
        "chains": [
            tuple(r)
            for r in connection.execute(select(handoff_chains).order_by(handoff_chains.c.chain_id))
        ],
        "steps": [
            tuple(r) for r in connection.execute(select(*step_columns).order_by(handoffs.c.id))
        ],
    }


def milestones_of(ctx: Context) -> dict[str, list[tuple[Any, ...]]]:
    with ctx.read() as connection:
        return milestones_in(connection)


def assert_milestones_equal_a_rebuild(ctx: Context) -> dict[str, list[tuple[Any, ...]]]:
    """What the use cases kept equals :func:`rebuild` from the history (run in a
    transaction that is rolled back); returns what was kept."""
    kept = milestones_of(ctx)
    with ctx.engine.connect() as connection:
        transaction = connection.begin()
        try:
            rebuild(connection)
            fresh = milestones_in(connection)
        finally:
            transaction.rollback()
    for part in kept:
        wrong = [(a, b) for a, b in zip(kept[part], fresh[part], strict=False) if a != b]
        assert len(kept[part]) == len(fresh[part]), (part, len(kept[part]), len(fresh[part]))
        assert not wrong, (part, len(wrong), wrong[:3])
    return kept
