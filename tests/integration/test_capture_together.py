"""Captures written together (:meth:`baton.services.leads.Capture.run_together`, what
a group commit runs) leave the database state and the answers that the same captures,
run one by one in the same transaction, leave: on random mixes of new people, people
already stored, one person twice, captures without email, intake keys and API
callers, consent answers, suppressed and erased addresses, and hand-raises that open
and route handoffs. On both databases."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from tests.integration.test_group_commit import OPS, empty, world

from baton.domain.access import Principal
from baton.domain.contact import email_key
from baton.domain.leads import LeadCreate
from baton.domain.privacy import erased_key
from baton.services.context import Context
from baton.services.leads import Capture, CaptureResult, capture_lead_in
from baton.store.tables import (
    activities,
    duplicate_checks,
    handoffs,
    lead_scores,
    leads,
    metadata,
    reps,
    suppressions,
)

KEY = Principal(kind="intake_key", name="intake:website", source="web", key_id=1)
PEOPLE = ["ana", "ben", "cy", "dee", "eve", "fay"]
SUPPRESSED = {"dee": "unsubscribe", "eve": "erased"}


def address(who: str) -> str:
    return f"{who}@northwind.example.com"


@st.composite
def captures(draw: st.DrawFn) -> list[tuple[bool, LeadCreate]]:
    """(by the intake key?, the lead) in arrival order. Half the mixes are a burst of a
    web form's: one caller, each capture a different person by email, so that runs of
    three new people or more, which PostgreSQL writes together, come often (drawn as
    the other half are, a run that long came in 0-2 of 12 examples there)."""
    out = []
    if draw(st.booleans()):
        by_key = draw(st.booleans())
        burst = draw(st.permutations(PEOPLE))[: draw(st.integers(3, len(PEOPLE)))]
        for who in burst:
            fields: dict[str, Any] = {
                "email": address(who).upper() if draw(st.booleans()) else address(who),
                "first_name": who.title(),
                "company": draw(st.sampled_from(["Northwind", "Lumen", None])),
            }
            consent = draw(st.sampled_from([None, True, False]))
            if consent is not None:
                fields["consent"] = consent
                if consent:
                    fields["consent_basis"] = "consent"
            out.append((by_key, LeadCreate.model_validate(fields)))
        return out
    for _ in range(draw(st.integers(2, 9))):
        who = draw(st.sampled_from(PEOPLE))
        fields = {
            "first_name": who.title(),
            "last_name": "Reyes",
            "company": draw(st.sampled_from(["Northwind", "Lumen", None])),
            "title": draw(st.sampled_from(["VP Finance", "Analyst", None])),
            "country": draw(st.sampled_from(["US", "GB"])),
        }
        if draw(st.booleans()) or who == "fay":
            fields["email"] = address(who).upper() if draw(st.booleans()) else address(who)
        else:
            fields["phone"] = "+1 415 555 01" + str(10 + PEOPLE.index(who))
        consent = draw(st.sampled_from([None, True, False]))
        if consent is not None:
            fields["consent"] = consent
            if consent:
                fields["consent_basis"] = "consent"
        out.append((draw(st.booleans()), LeadCreate.model_validate(fields)))
    return out


def setup(ctx: Context, stored: Sequence[str]) -> None:
    """Reps and a contract under which a capture is a hand-raise and scores engagement
    (by its type and by a property); ``stored`` people captured before; two addresses
    on the suppression list (one erased)."""
    empty(ctx)
    world(ctx, captures_engage=True)
    now = ctx.clock.now()
    with ctx.write() as connection:
        for who in stored:
            capture_lead_in(
                connection,
                LeadCreate(email=address(who), first_name=who.title(), company="Lumen"),
                actor=OPS,
                now=now,
            )
        for who, reason in SUPPRESSED.items():
            key = erased_key(address(who)) if reason == "erased" else email_key(address(who))
            connection.execute(
                suppressions.insert().values(
                    email_key=key, reason=reason, created_at=now, created_by="test"
                )
            )


def state(ctx: Context) -> dict[str, list[tuple[Any, ...]]]:
    with ctx.read() as connection:
        rep = dict(connection.execute(select(reps.c.id, reps.c.email)).all())
        out = {}
        for table in (leads, activities, lead_scores, handoffs, duplicate_checks, suppressions):
            rows = []
            for row in connection.execute(select(table)).mappings():
                rows.append(
                    tuple(
                        (name, rep.get(value) if name == "rep_id" else repr(value))
                        for name, value in sorted(row.items())
                        if name not in ("id",) or table is leads
                    )
                )
            out[table.name] = sorted(rows)
        return out


def answers(results: Sequence[CaptureResult | Exception]) -> list[Any]:
    return [
        repr(r)
        if isinstance(r, Exception)
        else (r.lead_id, r.created, r.changed_fields, r.duplicates, r.lead)
        for r in results
    ]


def one_by_one(ctx: Context, batch: list[Capture]) -> list[CaptureResult]:
    with ctx.write() as connection:
        return [capture(connection) for capture in batch]


def together(ctx: Context, batch: list[Capture]) -> list[CaptureResult]:
    with ctx.write() as connection:
        return Capture.run_together(connection, batch)


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@example(  # the suppressed people among new ones: an erasure carried, an opt-in lifting
    mix=[
        (False, LeadCreate(email=address("ana"), consent=True, consent_basis="consent")),
        (False, LeadCreate(email=address("eve"), first_name="Eve")),
        (False, LeadCreate(email=address("dee"), consent=True, consent_basis="consent")),
        (True, LeadCreate(email=address("fay"), consent=False)),
        (True, LeadCreate(email=address("ben"), consent=True, consent_basis="consent")),
        (True, LeadCreate(email=address("cy"), title="Analyst")),
    ],
    stored=[],
)
@example(  # a stored person between a pair (one by one on PostgreSQL) and three together
    mix=[
        (True, LeadCreate(email=address("ana"), first_name="Ana")),
        (True, LeadCreate(email=address("dee"), consent=True, consent_basis="consent")),
        (True, LeadCreate(email=address("ben"), title="VP Finance")),
        (True, LeadCreate(email=address("eve"), company="Lumen")),
        (True, LeadCreate(email=address("cy"), consent=False)),
        (True, LeadCreate(email=address("fay"), title="Analyst")),
    ],
    stored=["ben"],
)
@given(
    mix=captures(),
    stored=st.lists(st.sampled_from(PEOPLE), unique=True, max_size=3),
)
def test_captures_together_leave_what_one_by_one_leaves(
    ctx: Context, mix: list[tuple[bool, LeadCreate]], stored: list[str]
) -> None:
    batch = [Capture(lead, KEY if by_key else OPS, ctx.clock) for by_key, lead in mix]
    setup(ctx, stored)
    expected = answers(one_by_one(ctx, batch))
    expected_state = state(ctx)
    setup(ctx, stored)
    assert answers(together(ctx, batch)) == expected
    assert state(ctx) == expected_state


NAMED = r"\b(?:FROM|JOIN|INTO|UPDATE)\s+(\w+)"
"""The tables a statement names (its step, with its verb)."""


def test_new_people_are_written_together(ctx: Context) -> None:
    """The point of it: a run of new people takes one statement per step, however many (not
    one set per capture), and their handoffs are opened and routed. Twelve are counted
    against three (two are written one by one on PostgreSQL:
    :data:`~baton.services.leads.TOGETHER_FROM`), step by step, after a first run that
    settles what routing keeps between runs (its guess of the roster, per process and
    database, which an earlier test on the same database may have left naming other
    reps: then routing locks again, 12 statements more, and a bound on the count failed
    by chance)."""
    from sqlalchemy import event

    def run(first: int, n: int) -> tuple[list[CaptureResult], list[str]]:
        batch = [
            Capture(LeadCreate(email=f"p{i}@northwind.example.com", first_name="P"), KEY, ctx.clock)
            for i in range(first, first + n)
        ]
        said: list[str] = []

        def count(*args: Any) -> None:
            said.append(args[2])

        event.listen(ctx.engine, "before_cursor_execute", count)
        try:
            results = together(ctx, batch)
        finally:
            event.remove(ctx.engine, "before_cursor_execute", count)
        assert [r.created for r in results] == [True] * n
        assert len({r.lead_id for r in results}) == n
        # Routing inserts the handoffs one by one on SQLite (each takes the next rep's
        # turn), all at once on PostgreSQL: left out of the steps.
        return results, [s for s in said if not s.startswith("INSERT INTO handoffs ")]

    def steps(said: list[str]) -> list[tuple[str, ...]]:
        return [
            (s.split()[0], *{t: 1 for t in re.findall(NAMED, s) if t in metadata.tables})
            for s in said
        ]

    setup(ctx, [])
    run(0, 3)
    _, three = run(3, 3)
    results, twelve = run(6, 12)
    for table in ("leads", "activities", "lead_scores", "duplicate_checks"):
        assert sum(s.startswith(f"INSERT INTO {table} ") for s in twelve) == 1, table
    assert steps(twelve) == steps(three)
    with ctx.read() as connection:
        opened = connection.execute(select(handoffs.c.lead_id)).scalars().all()
    assert {r.lead_id for r in results} <= set(opened)
    assert len(opened) == 18


def test_a_new_leads_score_from_its_capture_equals_the_score_read_back(
    ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Scoring a lead the capture just created from its capture alone (``created``: no
    score, history or prep ticks read back) leaves what reading them back leaves: with
    engagement by the capture's type and by its properties, written together and alone
    (a capture without email runs alone), by an intake key and by an API caller."""
    from baton.services import leads as lead_service
    from baton.services import scoring

    linkedin = {"utm_source": "linkedin", "campaign": "q4"}
    batch = [
        Capture(LeadCreate(email=address("ana"), **linkedin), OPS, ctx.clock),
        Capture(LeadCreate(email=address("ben")), OPS, ctx.clock),
        Capture(LeadCreate(phone="+1 415 555 0110", **linkedin), KEY, ctx.clock),
        Capture(LeadCreate(email=address("cy"), **linkedin), KEY, ctx.clock),
        Capture(LeadCreate(email=address("fay"), consent=True), KEY, ctx.clock),
        Capture(LeadCreate(email=address("gus"), **linkedin), KEY, ctx.clock),
        Capture(  # dated three days back: the engagement decays from then
            LeadCreate(email=address("eve"), **linkedin),
            OPS,
            ctx.clock,
            occurred_at=ctx.clock.now() - timedelta(days=3),
        ),
    ]
    setup(ctx, ["ben"])
    fast = answers(together(ctx, batch)), state(ctx)
    with ctx.read() as connection:
        engagement = connection.execute(select(lead_scores.c.engagement)).scalars().all()
    assert 12.0 in engagement and 5.0 in engagement, "both rules counted somewhere"
    assert any(0 < e < 12.0 and e != 5.0 for e in engagement), "the dated one decayed"
    read_back = scoring.score_leads_in

    def without_created(*args: Any, created: Any = (), fields: Any = None, **kwargs: Any) -> Any:
        return read_back(*args, **kwargs)  # the new leads' columns read back too

    with monkeypatch.context() as patched:
        patched.setattr(lead_service, "score_leads_in", without_created)
        setup(ctx, ["ben"])
        assert (answers(together(ctx, batch)), state(ctx)) == fast
