"""The active version read as the text of its spec (SQLite's writers, and any unlocked
read): its rules are those of its spec, parsed once per text, and a version activated
since is read by the next transaction (:func:`baton.services.contract_rules.rules_of_text`).
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from baton.domain.access import operator
from baton.services import contract_rules
from baton.services.context import Context
from baton.services.demo import sign_demo_contract
from baton.store.tables import contracts

EXAMPLE = (Path(__file__).parents[2] / "contracts" / "example.yaml").read_text()
OP = operator("test")


def activate(ctx: Context, text: str) -> int:
    version = sign_demo_contract(ctx, text)  # stored, signed by both sides, active
    assert version is not None
    return version


def test_the_active_rules_are_the_specs_parsed_once_and_follow_an_activation(
    ctx: Context,
) -> None:
    first = activate(ctx, EXAMPLE)
    reads = []
    for _ in range(2):
        with ctx.read() as connection:
            reads.append(contract_rules.active_contract_in(connection, share_lock=False))
    with ctx.read() as connection:
        spec = connection.execute(
            select(contracts.c.spec).where(contracts.c.version == first)
        ).scalar_one()
    assert reads[0] is not None and reads[1] is not None
    assert reads[0][0] == first
    assert reads[0][1] == contract_rules.rules_of(spec)
    assert reads[0][1] is reads[1][1]  # parsed once for its text
    changed = EXAMPLE.replace("threshold: 60  ", "threshold: 61  ", 1)
    assert changed != EXAMPLE
    second = activate(ctx, changed)
    with ctx.read() as connection:
        now = contract_rules.active_contract_in(connection, share_lock=False)
    assert now is not None and now[0] == second
    assert now[1].mql.threshold == 61 and reads[0][1].mql.threshold == 60
