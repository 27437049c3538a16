"""The statements of a group of captures. A run of new people captured together goes
into PostgreSQL by ``unnest`` of one array per column
(:data:`baton.services.leads.NEW_LEADS_UNNEST`): one statement whose text is the same
however many people, so psycopg converts it once and prepares it. It writes what
SQLAlchemy's multi-row ``VALUES`` wrote, byte for byte, on values an array literal must
quote or escape (quotes, backslashes, braces, commas, the word NULL, non-ASCII), JSON
attributes, consent answers mixed with none, and with nothing in a column for some
people. A group reads the active contract once, also when none is active."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from psycopg import _queries
from sqlalchemy import event
from tests.integration.test_capture_together import KEY, answers, setup, state, together
from tests.integration.test_group_commit import OPS, empty

from baton.domain.leads import LeadCreate
from baton.services import leads as lead_service
from baton.services.context import Context
from baton.services.leads import Capture

AWKWARD = [
    'Mc"Quote',
    "back\\slash",
    "{braces}",
    "a, b",
    "NULL",
    "Zoë Ünal 東京",
    " padded ",
    "line\nbreak",
]


def awkward_people(ctx: Context, by_key: bool) -> list[Capture]:
    """New people whose every text field is awkward for an array literal, some fields
    left out, attributes nested, consent yes, no and unanswered."""
    out = []
    for i, text in enumerate(AWKWARD):
        fields: dict[str, Any] = {
            "email": f"p{i}@north-wind.example.com",
            "first_name": text,
            "company": text if i % 2 else None,
            "title": None if i % 3 else text,
            "utm_source": "linkedin" if i % 2 else None,
            "campaign": text,
            "attributes": {"note": text, "nested": {"n": i, "list": [text, None]}} if i % 2 else {},
        }
        if i % 3 == 0:
            fields |= {"consent": True, "consent_basis": "consent"}
        elif i % 3 == 1:
            fields["consent"] = False
        lead = LeadCreate.model_validate({k: v for k, v in fields.items() if v is not None})
        out.append(Capture(lead, KEY if by_key else OPS, ctx.clock))
    return out


def renamed(capture: Capture, mailbox: str) -> Capture:
    data = capture.data.model_copy(update={"email": f"{mailbox}@north-wind.example.com"})
    return Capture(data, capture.actor, capture.clock)


@pytest.fixture
def said(ctx: Context) -> Iterator[list[tuple[str, Any]]]:
    seen: list[tuple[str, Any]] = []

    def note(_c: Any, _cur: Any, statement: str, parameters: Any, *_rest: Any) -> None:
        seen.append((statement, parameters))

    event.listen(ctx.engine, "before_cursor_execute", note)
    yield seen
    event.remove(ctx.engine, "before_cursor_execute", note)


@pytest.mark.parametrize("by_key", [True, False], ids=["intake key", "api"])
def test_unnest_writes_what_multi_row_values_writes(
    ctx: Context, monkeypatch: pytest.MonkeyPatch, by_key: bool
) -> None:
    batch = awkward_people(ctx, by_key)
    setup(ctx, ["ana"])
    fast = answers(together(ctx, batch)), state(ctx)
    monkeypatch.setattr(lead_service, "NEW_LEADS_UNNEST", False)
    setup(ctx, ["ana"])
    assert (answers(together(ctx, batch)), state(ctx)) == fast
    assert len(fast[1]["leads"]) == len(AWKWARD) + 1


def test_new_leads_of_any_run_take_one_statement_psycopg_keeps(
    ctx: Context, said: list[tuple[str, Any]]
) -> None:
    """Runs of 3 and of 7 new people: the leads' insert and the touches' insert have
    one text each, with few enough parameters and bytes that psycopg caches its
    conversion (a multi-row ``VALUES`` had one placeholder per value: 52 for 2 people)."""
    if ctx.dialect != "postgresql":
        pytest.skip("SQLite keeps SQLAlchemy's multi-row VALUES")
    setup(ctx, [])
    people = awkward_people(ctx, True)
    for size in (3, 7):
        together(ctx, [renamed(capture, f"r{size}-{i}") for i, capture in enumerate(people[:size])])
    for table in ("leads", "activities"):
        texts = [(s, p) for s, p in said if s.startswith(f"INSERT INTO {table} ")]
        assert len(texts) == 2, table
        assert texts[0][0] == texts[1][0], table
        statement, parameters = texts[0]
        assert len(parameters) <= _queries.MAX_CACHED_STATEMENT_PARAMS, table
        assert len(statement.encode()) <= _queries.MAX_CACHED_STATEMENT_LENGTH, table


def test_a_group_with_no_contract_active_reads_the_contracts_once(
    ctx: Context, said: list[tuple[str, Any]]
) -> None:
    """Before any activation a group's one read of the active version says "none"
    (its statement also asks whether any version is active), not a second read."""
    empty(ctx)  # no contract
    said.clear()
    together(ctx, [renamed(c, f"n{i}") for i, c in enumerate(awkward_people(ctx, True)[:3])])
    assert sum("FROM contracts" in s for s, _ in said) == 1, [s for s, _ in said]


def test_two_new_people_take_one_statement_each_three_the_grouped_steps(
    ctx: Context, said: list[tuple[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL (:data:`~baton.services.leads.TOGETHER_FROM`): a run of two new
    people is written one capture at a time, each by its one statement (fewer round
    trips than the grouped steps, which a run of three takes), and leaves the database
    and the answers that writing the two together leaves."""
    if ctx.dialect != "postgresql":
        pytest.skip("SQLite writes every run of two or more together")
    people = awkward_people(ctx, True)
    setup(ctx, ["ana"])
    said.clear()
    two = answers(together(ctx, people[:2])), state(ctx)
    written = [s for s, _ in said]
    assert sum(s.startswith("WITH found AS") for s in written) == 2, written
    assert not any(s.startswith(("INSERT INTO leads ", "INSERT INTO activities ")) for s in written)
    with monkeypatch.context() as patched:
        patched.setattr(lead_service, "TOGETHER_FROM", 2)
        setup(ctx, ["ana"])
        said.clear()
        assert (answers(together(ctx, people[:2])), state(ctx)) == two
        grouped = [s for s, _ in said]
    assert sum(s.startswith("INSERT INTO leads ") for s in grouped) == 1, grouped
    assert len(written) < len(grouped), (written, grouped)
    said.clear()
    together(ctx, [renamed(c, f"three-{i}") for i, c in enumerate(people[:3])])
    three = [s for s, _ in said]
    assert sum(s.startswith("INSERT INTO leads ") for s in three) == 1, three
    assert not any(s.startswith("WITH found AS") for s in three), three
