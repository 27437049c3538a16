"""An import's chunk of many addresses asks which were erased with one array parameter
(``find_by_keys``), a capture with its few fixed ones: both find the same erased
addresses and put them back on the suppression list, on both databases."""

from __future__ import annotations

import io

import pytest
from sqlalchemy import select

from baton.domain.access import operator
from baton.services.context import Context
from baton.services.imports import import_leads
from baton.services.person import FIXED_KEYS, erase_person
from baton.store.tables import suppressions

OPS = operator("ops")


@pytest.mark.parametrize("others", [0, 3 * FIXED_KEYS])
def test_every_erased_address_of_an_import_is_suppressed_again(ctx: Context, others: int) -> None:
    admin = operator("admin")
    for name in ("gone", "left"):
        erase_person(ctx, f"{name}@acme.example", actor=admin)
    lines = ["Email,First Name", "Gone@Acme.example,Ana", "left@acme.example,Lea"]
    lines += [f"person{i}@acme.example,P{i}" for i in range(others)]
    report = import_leads(ctx, io.StringIO("\n".join(lines) + "\n"), actor=OPS)
    assert report.created == 2 + others
    with ctx.read() as connection:
        rows = connection.execute(select(suppressions.c.email_key, suppressions.c.reason))
        keys = {str(key): str(reason) for key, reason in rows}
    assert keys.get("gone@acme.example") == keys.get("left@acme.example") == "erased"
    assert not any(key.startswith("person") for key in keys)
