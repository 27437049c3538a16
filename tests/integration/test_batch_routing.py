"""Batch routing equals one-by-one routing, and routing in parallel keeps capacity.

:func:`baton.services.stages.change_stages_in` makes many leads MQLs in one
transaction and routes their handoffs together (roster, loads, rotations and account
owners read once per batch). It must decide exactly as :func:`change_stage_in` called
for each lead in turn, each in its own transaction, from the same roster and rotation
state: random floors (teams, tags, named reps, capacities, weights, hours, territories,
accounts), random contracts (rules on country and score, every strategy) and random
leads, some routed before the comparison so that loads and rotations are not fresh.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, select
from sqlalchemy.engine import Connection

from baton.domain.access import operator
from baton.domain.lifecycle import Stage
from baton.domain.reps import AccountCreate, RepCreate, TeamCreate
from baton.services.context import Context
from baton.services.contracts import activate_contract, approve_contract, create_contract
from baton.services.reps import create_rep, create_team, upsert_account
from baton.services.routing import lock_pools, open_handoffs_in
from baton.services.stages import MqlChange, change_stage_in, change_stages_in
from baton.store.bulk import insert_rows
from baton.store.tables import (
    handoff_chains,
    handoff_events,
    handoffs,
    lead_scores,
    leads,
    metadata,
    nurture_enrollments,
    outbox,
    rotations,
)

OPS = operator("ops")
ALWAYS = {day: ["00:00-24:00"] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
AFTERNOON = {"mon": ["13:00-17:00"]}  # the tests' clock stands at Monday 09:00 UTC
COUNTRIES = ("US", "DE", "FR")
DOMAINS = ("acme.com", "globex.com", "initech.com", "umbrella.com")
STRATEGIES = ("round_robin", "weighted", "least_loaded")


class Rollback(Exception):
    """Ends a transaction whose writes were only to be looked at."""


def empty(ctx: Context) -> None:
    with ctx.write() as connection:
        for table in reversed(metadata.sorted_tables):
            connection.execute(delete(table))


reps_st = st.lists(
    st.fixed_dictionaries(
        {
            "team": st.sampled_from(("a", "b", None)),
            "tags": st.sampled_from(([], ["x"])),
            "capacity": st.integers(0, 3),
            "weight": st.sampled_from((1.0, 2.0, 3.0)),
            "status": st.sampled_from(("available", "available", "away")),
            "hours": st.sampled_from(("always", "always", "afternoon")),
            "countries": st.sampled_from(([], [], ["US"], ["DE", "FR"])),
        }
    ),
    min_size=1,
    max_size=6,
)
rules_st = st.lists(
    st.fixed_dictionaries(
        {
            "pool": st.sampled_from(("team: a", "team: b", "tag: x", "reps")),
            "strategy": st.sampled_from(STRATEGIES),
            "countries": st.sampled_from((None, ["US"], ["DE", "FR"])),
            "min_score": st.sampled_from((None, None, 50)),
        }
    ),
    min_size=0,
    max_size=4,
)
leads_st = st.lists(
    st.fixed_dictionaries(
        {
            "country": st.sampled_from(COUNTRIES),
            "domain": st.sampled_from(DOMAINS),
            "score": st.sampled_from((None, 20.0, 80.0)),
            "historical": st.sampled_from((False, False, False, True)),
        }
    ),
    min_size=1,
    max_size=12,
)


def contract_yaml(rules: list[dict[str, Any]], account_matching: bool, n_reps: int) -> str:
    lines = [
        "schema_version: 1",
        "name: Batch",
        "mql:",
        "  threshold: 1000",
        "routing:",
        f"  account_matching: {'true' if account_matching else 'false'}",
        "  rules:" if rules else "  rules: []",
    ]
    for i, rule in enumerate(rules):
        lines.append(f"    - name: rule{i}")
        when = []
        if rule["countries"]:
            when.append(f"{{field: country, in: [{', '.join(rule['countries'])}]}}")
        if when:
            lines.append(f"      when: [{', '.join(when)}]")
        if rule["min_score"] is not None:
            lines.append(f"      min_score: {rule['min_score']}")
        if rule["pool"] == "reps":
            named = ", ".join(f"rep{n}@sales.example.com" for n in range(0, n_reps, 2))
            lines.append(f"      pool: {{reps: [{named}]}}")
        else:
            lines.append(f"      pool: {{{rule['pool']}}}")
        lines.append(f"      strategy: {rule['strategy']}")
    lines += [
        "sla:",
        "  business_hours: false",
        "  accept_within_minutes: 30",
        "  first_touch_within_minutes: 60",
        "  ladder:",
        "    - {at_minutes: 20, action: remind}",
    ]
    return "\n".join(lines) + "\n"


def set_up(
    ctx: Context,
    floor: list[dict[str, Any]],
    rules: list[dict[str, Any]],
    account_matching: bool,
    owners: list[int | None],
    people: list[dict[str, Any]],
) -> list[int]:
    """The floor, the active contract, the accounts and the leads; returns lead ids."""
    for team in ("a", "b"):
        create_team(ctx, TeamCreate(name=team), actor=OPS)
    for n, rep in enumerate(floor):
        create_rep(
            ctx,
            RepCreate(
                email=f"rep{n}@sales.example.com",
                name=f"Rep {n}",
                timezone="UTC",
                working_hours=ALWAYS if rep["hours"] == "always" else AFTERNOON,
                team=rep["team"],
                tags=rep["tags"],
                capacity=rep["capacity"],
                weight=rep["weight"],
                status=rep["status"],
                countries=rep["countries"],
            ),
            actor=OPS,
        )
    for domain, owner in zip(DOMAINS, owners, strict=False):
        if owner is not None and owner < len(floor):
            upsert_account(
                ctx,
                AccountCreate(domain=domain, owner_email=f"rep{owner}@sales.example.com"),
                actor=OPS,
            )
    version = create_contract(
        ctx, contract_yaml(rules, account_matching, len(floor)), actor=operator("maria")
    ).version
    approve_contract(ctx, version, role="marketing", actor=operator("maria"))
    approve_contract(ctx, version, role="sales", actor=operator("sam"))
    activate_contract(ctx, version, actor=operator("sam"))
    now = ctx.clock.now()
    created = now - timedelta(days=1)
    with ctx.write() as connection:
        insert_rows(
            connection,
            leads,
            [
                {
                    "email": f"p{i}@{p['domain']}",
                    "email_key": f"p{i}@{p['domain']}",
                    "email_domain": p["domain"],
                    "country": p["country"],
                    "attributes": {},
                    "stage": "lead",
                    "stage_changed_at": created,
                    "created_at": created,
                    "updated_at": created,
                    "activity_count": 0,
                }
                for i, p in enumerate(people)
            ],
        )
        ids = [
            int(i)
            for (i,) in connection.execute(
                select(leads.c.id).where(leads.c.email.like("p%")).order_by(leads.c.id)
            )
        ]
        scored = [
            {
                "lead_id": lead_id,
                "contract_version": version,
                "fit": p["score"],
                "engagement": 0.0,
                "total": p["score"],
                "grade": "A" if p["score"] > 50 else "C",
                "state": {},
                "scored_at": now,
            }
            for lead_id, p in zip(ids, people, strict=True)
            if p["score"] is not None
        ]
        if scored:
            insert_rows(connection, lead_scores, scored)
    return ids


def snapshot(connection: Connection) -> dict[str, Any]:
    """What routing decided and wrote, keyed by lead (handoff ids are not compared:
    PostgreSQL's sequences move on in a rolled-back transaction)."""
    rows = [dict(r) for r in connection.execute(select(handoffs)).mappings()]
    lead_of = {r["id"]: r["lead_id"] for r in rows}
    kept = {
        r["lead_id"]: {k: v for k, v in r.items() if k not in ("id", "chain_id", "previous_id")}
        for r in rows
    }
    events = sorted(
        (lead_of[h], kind, repr(sorted(detail.items())))
        for h, kind, detail in connection.execute(
            select(handoff_events.c.handoff_id, handoff_events.c.kind, handoff_events.c.detail)
        )
    )
    messages = sorted(
        (lead_of.get(h), topic, channel)
        for h, topic, channel in connection.execute(
            select(outbox.c.handoff_id, outbox.c.topic, outbox.c.channel)
        )
    )
    pools = {
        str(pool): (virtual, passes)
        for pool, virtual, passes in connection.execute(
            select(rotations.c.pool, rotations.c.virtual_pass, rotations.c.passes).where(
                rotations.c.pool != "*"  # the routing lock of 0.11, still in old databases
            )
        )
    }
    chains = {
        r["lead_id"]: {k: v for k, v in r.items() if k != "chain_id"}
        for r in connection.execute(select(handoff_chains)).mappings()
    }
    people = {r["id"]: dict(r) for r in connection.execute(select(leads)).mappings()}
    enrollments = sorted(
        (r["lead_id"], r["status"], r["exit_reason"])
        for r in connection.execute(select(nurture_enrollments)).mappings()
    )
    return {
        "handoffs": kept,
        "events": events,
        "outbox": messages,
        "rotations": pools,
        "chains": chains,
        "leads": people,
        "enrollments": enrollments,
    }


@settings(max_examples=30, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    floor=reps_st,
    rules=rules_st,
    account_matching=st.booleans(),
    owners=st.lists(st.one_of(st.none(), st.integers(0, 5)), min_size=4, max_size=4),
    people=leads_st,
    before=st.integers(0, 12),
)
def test_batch_routing_decides_as_one_by_one(
    ctx: Context,
    floor: list[dict[str, Any]],
    rules: list[dict[str, Any]],
    account_matching: bool,
    owners: list[int | None],
    people: list[dict[str, Any]],
    before: int,
) -> None:
    empty(ctx)
    ids = set_up(ctx, floor, rules, account_matching, owners, people)
    now = ctx.clock.now()
    first, rest = ids[: min(before, len(ids) - 1)], ids[min(before, len(ids) - 1) :]
    for lead_id in first:  # loads and rotations that are not fresh
        with ctx.write() as connection:
            change_stage_in(connection, lead_id, Stage.MQL, actor=OPS, reason="earlier", now=now)
    historical = {lead_id for lead_id, p in zip(ids, people, strict=True) if p["historical"]}
    changes = [
        MqlChange(lead_id, f"why {lead_id}", historical=lead_id in historical) for lead_id in rest
    ]
    batch: dict[str, Any] = {}
    with pytest.raises(Rollback), ctx.write() as connection:
        steps = change_stages_in(connection, changes, actor=OPS, now=now)
        assert [s.to_stage for s in steps] == [Stage.MQL] * len(changes)
        batch = snapshot(connection)
        raise Rollback
    for change in changes:
        with ctx.write() as connection:
            change_stage_in(
                connection,
                change.lead_id,
                Stage.MQL,
                actor=OPS,
                reason=change.reason,
                now=now,
                historical=change.historical,
            )
    with ctx.read() as connection:
        one_by_one = snapshot(connection)
    assert batch["handoffs"] == one_by_one["handoffs"]
    assert batch["rotations"] == one_by_one["rotations"]
    assert batch == one_by_one


def test_a_batch_of_nothing_writes_nothing(ctx: Context) -> None:
    with ctx.write() as connection:
        assert change_stages_in(connection, [], actor=OPS, now=ctx.clock.now()) == []
        assert (
            open_handoffs_in(
                connection, [], None, contract_version=None, now=ctx.clock.now(), actor=OPS
            )
            == []
        )
        before = snapshot(connection)
    assert before["handoffs"] == {} and before["rotations"] == {}


def test_pools_are_locked_in_key_order_and_created_empty(ctx: Context) -> None:
    with ctx.write() as connection:
        found = lock_pools(connection, ["team:b", "team:a", "team:b"])
        assert sorted(found) == ["team:a", "team:b"]
        assert all(r.virtual == 0.0 and r.passes == {} for r in found.values())
        again = lock_pools(connection, ["team:a"])
        assert list(again) == ["team:a"]
