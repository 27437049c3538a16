"""A capture by email in one statement on PostgreSQL (:mod:`baton.services.new_lead_write`:
the look-up and, for a new person, the lead, its touch and its duplicate-queue row,
with the suppression check and the active contract read) leaves the rows and answers
that one statement each leaves: new people and people stored before (merged ones too),
with and without an active contract, each capture alone in its group commit as at 8
connections; and it is the round trips it says."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import event, select
from tests.integration.test_capture_together import (
    KEY,
    PEOPLE,
    address,
    answers,
    captures,
    setup,
    state,
)
from tests.integration.test_group_commit import OPS, empty, with_mode

from baton.domain.contact import email_key
from baton.domain.leads import LeadCreate
from baton.services import leads as lead_service
from baton.services.context import Context
from baton.services.demo import sign_demo_contract
from baton.services.leads import Capture, CaptureResult
from baton.store.tables import leads


def each_in_its_group(ctx: Context, batch: Sequence[Capture]) -> list[CaptureResult | Exception]:
    grouped = with_mode(ctx, "on")
    out: list[CaptureResult | Exception] = []
    for capture in batch:
        try:
            out.append(grouped.write_grouped(capture))
        except Exception as error:  # compared as an answer
            out.append(error)
    return out


@pytest.fixture
def pg_ctx(ctx: Context) -> Context:
    """``ctx`` on PostgreSQL; skipped on SQLite before Hypothesis runs (a skip inside
    its explicit example is reported as a failing example)."""
    if ctx.dialect != "postgresql":
        pytest.skip("the one statement is PostgreSQL's")
    return ctx


def prepare(ctx: Context, stored: Sequence[str], contract: bool) -> None:
    setup(ctx, stored)
    if not contract:
        with ctx.write() as connection:
            connection.execute(lead_service.text("UPDATE contracts SET status = 'superseded'"))


@settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@example(  # suppressed people: an erasure carried, an opt-in lifting; a key's opt-in
    mix=[
        (False, LeadCreate(email=address("eve"), first_name="Eve")),
        (False, LeadCreate(email=address("dee"), consent=True, consent_basis="consent")),
        (True, LeadCreate(email=address("ben"), consent=True, consent_basis="consent")),
        (True, LeadCreate(email=address("ben"), title="CFO")),
    ],
    stored=[],
    contract=True,
)
@given(
    mix=captures(),
    stored=st.lists(st.sampled_from(PEOPLE), unique=True, max_size=3),
    contract=st.booleans(),
)
def test_a_new_lead_written_at_once_leaves_what_one_statement_each_leaves(
    pg_ctx: Context,
    monkeypatch: pytest.MonkeyPatch,
    mix: list[tuple[bool, LeadCreate]],
    stored: list[str],
    contract: bool,
) -> None:
    ctx = pg_ctx
    batch = [Capture(lead, KEY if by_key else OPS, ctx.clock) for by_key, lead in mix]
    with monkeypatch.context() as patched:
        patched.setattr(lead_service, "NEW_LEAD_AT_ONCE", False)
        prepare(ctx, stored, contract)
        expected = answers(each_in_its_group(ctx, batch)), state(ctx)
    prepare(ctx, stored, contract)
    assert (answers(each_in_its_group(ctx, batch)), state(ctx)) == expected


@pytest.mark.parametrize("contract", [False, True])
def test_a_new_lead_alone_in_its_group_is_one_statement_and_a_commit(
    ctx: Context, contract: bool
) -> None:
    """The round trips: the one statement (and with a contract, the lead's score row:
    its scored columns come back from the insert, 0.12); the contract is read by the
    statement."""
    if ctx.dialect != "postgresql":
        pytest.skip("the one statement is PostgreSQL's")
    empty(ctx)
    if contract:  # the example contract, as the intake bench signs it: no hand-raise here
        assert sign_demo_contract(ctx) is not None
    said: list[str] = []

    def count(*args: Any) -> None:
        said.append(args[2])

    grouped = with_mode(ctx, "on")
    capture = Capture(LeadCreate(email="new@northwind.example.com", first_name="N"), KEY, ctx.clock)
    event.listen(ctx.engine, "before_cursor_execute", count)
    try:
        result = grouped.write_grouped(capture)
    finally:
        event.remove(ctx.engine, "before_cursor_execute", count)
    assert result.created
    assert said[0].startswith("WITH found AS")
    assert not any("FROM contracts" in s for s in said[1:]), said
    assert len(said) == (2 if contract else 1), said


def test_a_capture_of_a_merged_leads_email_lands_on_its_survivor_as_before(
    ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lead the statement finds was merged away: the capture follows it to the
    lead it was merged into, as the look-up alone does."""
    if ctx.dialect != "postgresql":
        pytest.skip("the one statement is PostgreSQL's")
    from baton.services.merge import merge_leads

    batch = [
        Capture(LeadCreate(email=address("ben"), title="CFO"), KEY, ctx.clock),
        Capture(LeadCreate(email=address("ben").upper(), company="Lumen"), OPS, ctx.clock),
    ]

    def run() -> tuple[list[Any], dict[str, list[tuple[Any, ...]]]]:
        prepare(ctx, ["ana", "ben"], contract=True)
        with ctx.read() as connection:
            ids = dict(connection.execute(select(leads.c.email_key, leads.c.id)).all())
        merge_leads(ctx, ids[email_key(address("ana"))], ids[email_key(address("ben"))], actor=OPS)
        return answers(each_in_its_group(ctx, batch)), state(ctx)

    with monkeypatch.context() as patched:
        patched.setattr(lead_service, "NEW_LEAD_AT_ONCE", False)
        expected = run()
    got = run()
    assert got == expected
    assert all(not isinstance(a, str) and not a[1] for a in got[0])  # updates, not new leads
