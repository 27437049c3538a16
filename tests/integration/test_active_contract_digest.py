"""PostgreSQL: the active contract is read as its version and a digest of its spec, and
its spec is fetched (and parsed) only for a content this process has not seen
(:func:`baton.services.contract_rules.active_contract_in`): a version activated by
another process is read and used from the next transaction on.
"""

from __future__ import annotations

import re
import subprocess
import sys
from typing import Any

import pytest
from sqlalchemy import event, select
from tests.integration import test_batch_routing as batch
from tests.integration.test_batch_routing import OPS, empty
from tests.integration.test_routing_locks import POSTGRES

from baton.domain.lifecycle import Stage
from baton.services import contract_rules
from baton.services.context import Context
from baton.services.stages import change_stage_in
from baton.store.tables import handoffs, reps, teams

REP = {
    "capacity": 3,
    "weight": 1.0,
    "status": "available",
    "hours": "always",
    "countries": [],
    "tags": [],
}
TO_A = [{"pool": "team: a", "strategy": "round_robin", "countries": None, "min_score": None}]
TO_B = [{**TO_A[0], "pool": "team: b"}]
SPEC_SELECTED = re.compile(r"(SELECT|,)\s*contracts\.spec\s*(,|FROM)")
"""A statement that reads the spec itself (not its digest)."""
PERSON = {"country": "US", "domain": "a.example.com", "score": None, "historical": False}

ACTIVATE = """
import sys
from baton.config import Settings
from baton.domain.access import operator
from baton.services.context import open_context
from baton.services.contracts import activate_contract, approve_contract, create_contract

ctx = open_context(Settings(database_url=sys.argv[1], env="test"), migrate=False)
version = create_contract(ctx, sys.stdin.read(), actor=operator("maria")).version
approve_contract(ctx, version, role="marketing", actor=operator("maria"))
approve_contract(ctx, version, role="sales", actor=operator("sam"))
activate_contract(ctx, version, actor=operator("sam"))
ctx.engine.dispose()
"""


def _team_of_handoff(ctx: Context, lead_id: int) -> tuple[str, int]:
    with ctx.read() as connection:
        found = connection.execute(
            select(teams.c.name, handoffs.c.contract_version)
            .select_from(handoffs.join(reps, reps.c.id == handoffs.c.rep_id).join(teams))
            .where(handoffs.c.lead_id == lead_id)
        ).one()
    return str(found[0]), int(found[1])


@pytest.mark.parametrize("backend", POSTGRES)
def test_a_contract_activated_by_another_process_routes_the_next_hand_raise(
    ctx: Context,
) -> None:
    """Hand-raises under version 1 (to team a) read its spec once; another process
    activates version 2 (to team b); the next hand-raise reads the new spec once and
    routes by it, and the ones after read no spec."""
    empty(ctx)
    floor = [{**REP, "team": "a"}, {**REP, "team": "b"}]
    ids = batch.set_up(ctx, floor, TO_A, False, [], [{**PERSON, "nurture": None}] * 4)
    specs: list[str] = []

    def count(_c: Any, _cur: Any, statement: str, *_: Any) -> None:
        if SPEC_SELECTED.search(statement):
            specs.append(statement)

    def hand_raise(lead_id: int) -> None:
        with ctx.write() as connection:
            change_stage_in(
                connection, lead_id, Stage.MQL, actor=OPS, reason="r", now=ctx.clock.now()
            )

    event.listen(ctx.engine, "before_cursor_execute", count)
    try:
        hand_raise(ids[0])
        hand_raise(ids[1])
        assert _team_of_handoff(ctx, ids[0]) == ("a", 1)
        assert _team_of_handoff(ctx, ids[1]) == ("a", 1)
        assert len(specs) <= 1  # (none when this process parsed version 1 before)
        activated = subprocess.run(
            [sys.executable, "-c", ACTIVATE, ctx.settings.database_url],
            input=batch.contract_yaml(TO_B, False, len(floor)),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert activated.returncode == 0, activated.stderr
        # As a process that never saw version 2's content (another test in this
        # process may have parsed the same contract).
        contract_rules._BY_DIGEST.clear()
        specs.clear()
        hand_raise(ids[2])
        assert _team_of_handoff(ctx, ids[2]) == ("b", 2)
        assert len(specs) == 1, "version 2's spec, read once"
        hand_raise(ids[3])
        assert _team_of_handoff(ctx, ids[3]) == ("b", 2)
        assert len(specs) == 1, "then known by its digest"
    finally:
        event.remove(ctx.engine, "before_cursor_execute", count)
