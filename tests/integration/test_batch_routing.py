"""Batch routing equals one-by-one routing, and routing in parallel keeps capacity.

:func:`baton.services.stages.change_stages_in` makes many leads MQLs in one
transaction and routes their handoffs together (roster, loads, rotations and account
owners read once per batch). It must decide exactly as :func:`change_stage_in` called
for each lead in turn, each in its own transaction, from the same roster and rotation
state: random floors (teams, tags, named reps, capacities, weights, hours, territories,
accounts), random contracts (rules on country and score, every strategy) and random
leads, some routed before the comparison so that loads and rotations are not fresh,
with nurture enrollments, chat channels, webhook endpoints, email choices and team
managers in play. Everything it writes is compared (handoffs, rotations, events,
outbox rows, chains, leads, transitions, nurture exits), its milestones with a
recomputation from the history, and its outbox rows with the per-message writes
(``enqueue_email``, ``enqueue_chat``, ``publish``) it replaced.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, func, select, update
from sqlalchemy.engine import Connection
from tests.milestone_checks import assert_milestones_equal_a_rebuild, milestones_in

from baton.domain.access import operator
from baton.domain.lifecycle import Stage
from baton.domain.reps import AccountCreate, RepCreate, TeamCreate
from baton.services.chat import email_wanted, enqueue_chat
from baton.services.context import Context
from baton.services.contracts import activate_contract, approve_contract, create_contract
from baton.services.milestones import rebuild
from baton.services.outbox import enqueue_email, publish
from baton.services.reps import create_rep, create_team, routing_reps, upsert_account
from baton.services.routing import lock_pools, open_handoffs_in, webhook_data
from baton.services.stages import MqlChange, change_stage_in, change_stages_in
from baton.store.bulk import insert_rows
from baton.store.tables import (
    chat_channels,
    handoff_chains,
    handoff_events,
    handoffs,
    lead_scores,
    leads,
    metadata,
    nurture_enrollments,
    outbox,
    reps,
    rotations,
    teams,
    transitions,
    webhook_endpoints,
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
            "email": st.sampled_from((True, True, False)),
            "channel": st.sampled_from(("none", "none", "live", "paused")),
        }
    ),
    min_size=1,
    max_size=6,
)
notify_st = st.fixed_dictionaries(
    {
        "team_channels": st.sampled_from(((), ("a",), ("a", "b"))),
        "hooks": st.lists(
            st.sampled_from(("*", "handoff.assigned", "handoff.queued", "inactive")), max_size=3
        ),
        "manager": st.booleans(),
    }
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
            "nurture": st.sampled_from((None, None, "stays", "rep-ends", "mql-ends", "gone")),
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
    return "\n".join(lines) + "\n" + NURTURE


NURTURE = """nurture:
  sequences:
    stays:
      exit_on: [hand_raise]
      steps:
        - {template: t, delay_days: 7}
    rep-ends:
      exit_on: [sales_took_back]
      steps:
        - {template: t, delay_days: 7}
    mql-ends:
      exit_on: [re_mql]
      steps:
        - {template: t, delay_days: 7}
  templates:
    t:
      subject: Hi
      text: Hello
"""
"""Sequences that a new MQL leaves (``mql-ends``), that it leaves only once a rep has
it (``rep-ends``), and that it stays in (``stays``); an enrollment in a sequence the
contract does not name (``gone``) ends on anything."""


def set_up(
    ctx: Context,
    floor: list[dict[str, Any]],
    rules: list[dict[str, Any]],
    account_matching: bool,
    owners: list[int | None],
    people: list[dict[str, Any]],
    notify: dict[str, Any] | None = None,
) -> list[int]:
    """The floor, the active contract, the accounts and the leads, and how the reps
    hear (``notify``: emails off, rep and team chat channels, webhook endpoints) and
    the leads' nurture enrollments; returns lead ids."""
    notify = notify or {"team_channels": (), "hooks": [], "manager": False}
    for team in ("a", "b"):
        manager = f"boss-{team}@sales.example.com" if notify["manager"] else None
        create_team(ctx, TeamCreate(name=team, manager_email=manager), actor=OPS)
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
        _notify_and_nurture(connection, floor, notify, ids, people, version, now)
    return ids


def _notify_and_nurture(
    connection: Connection,
    floor: list[dict[str, Any]],
    notify: dict[str, Any],
    ids: list[int],
    people: list[dict[str, Any]],
    version: int,
    now: Any,
) -> None:
    rep_ids = {
        str(email): int(i) for i, email in connection.execute(select(reps.c.id, reps.c.email))
    }
    team_ids = {str(n): int(i) for i, n in connection.execute(select(teams.c.id, teams.c.name))}
    for n, rep in enumerate(floor):
        rep_id = rep_ids[f"rep{n}@sales.example.com"]
        if not rep.get("email", True):
            connection.execute(update(reps).where(reps.c.id == rep_id).values(notify_email=False))
    channel = {
        "kind": "slack",
        "url": "https://hooks.slack.com/services/T/B/x",
        "url_hint": "x",
        "created_by": "ops",
        "created_at": now,
    }
    channels = [
        {
            **channel,
            "rep_id": rep_ids[f"rep{n}@sales.example.com"],
            "team_id": None,
            "label": f"rep {n}",
            "active": rep.get("channel") == "live",
        }
        for n, rep in enumerate(floor)
        if rep.get("channel", "none") != "none"
    ] + [
        {
            **channel,
            "rep_id": None,
            "team_id": team_ids[team],
            "label": f"team {team}",
            "active": True,
        }
        for team in notify["team_channels"]
    ]
    if channels:
        insert_rows(connection, chat_channels, channels)
    hooks = [
        {
            "url": f"https://hooks.example.com/{n}",
            "secret": "s",
            "events": ["*"] if hook in ("*", "inactive") else [hook],
            "active": hook != "inactive",
            "created_by": "ops",
            "created_at": now,
        }
        for n, hook in enumerate(notify["hooks"])
    ]
    if hooks:
        insert_rows(connection, webhook_endpoints, hooks)
    enrolled = [
        {
            "lead_id": lead_id,
            "sequence": p["nurture"],
            "contract_version": version,
            "status": "active",
            "reason": "test",
            "enrolled_at": now,
            "enrolled_by": "ops",
            "next_due_at": now,
        }
        for lead_id, p in zip(ids, people, strict=True)
        if p.get("nurture")
    ]
    if enrolled:
        insert_rows(connection, nurture_enrollments, enrolled)


def snapshot(connection: Connection) -> dict[str, Any]:
    """What the stage changes and routing decided and wrote, keyed by lead (handoff ids
    are not compared: PostgreSQL's sequences move on in a rolled-back transaction),
    each lead's rows in the order they were written."""
    rows = [dict(r) for r in connection.execute(select(handoffs)).mappings()]
    lead_of = {r["id"]: r["lead_id"] for r in rows}
    kept = {
        r["lead_id"]: {k: v for k, v in r.items() if k not in ("id", "chain_id", "previous_id")}
        for r in rows
    }
    events = [
        (lead_of[r["handoff_id"]], {k: v for k, v in r.items() if k not in ("id", "handoff_id")})
        for r in connection.execute(select(handoff_events).order_by(handoff_events.c.id)).mappings()
    ]
    messages: list[tuple[Any, dict[str, Any]]] = []
    for r in connection.execute(select(outbox).order_by(outbox.c.id)).mappings():
        # message_key: random, the receiver's idempotency key
        row = {k: v for k, v in r.items() if k not in ("id", "handoff_id", "message_key")}
        data = dict(row["payload"].get("data") or {})
        if "handoff_id" in data:
            data["handoff_id"] = lead_of[data["handoff_id"]]
            row["payload"] = {**row["payload"], "data": data}
        messages.append((lead_of.get(r["handoff_id"]), row))
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
    moves = [
        {k: v for k, v in r.items() if k != "id"}
        for r in connection.execute(select(transitions).order_by(transitions.c.id)).mappings()
    ]
    enrollments = sorted(
        (r["lead_id"], r["sequence"], r["status"], r["exit_reason"], r["ended_at"])
        for r in connection.execute(select(nurture_enrollments)).mappings()
    )
    return {
        "handoffs": kept,
        "events": _by_lead(events),
        "outbox": _by_lead(messages),
        "rotations": pools,
        "chains": chains,
        "leads": people,
        "transitions": _by_lead([(m["lead_id"], m) for m in moves]),
        "enrollments": enrollments,
    }


def announced_message_by_message(connection: Connection, *, after: int) -> Any:
    """The outbox rows that the simple path the batch replaced would write for the
    handoffs after ``after``: one handoff after another, each message written by its
    own use case (``email_wanted``, ``enqueue_email``, ``enqueue_chat``, ``publish``),
    from the decision stored on the handoff; the outbox as :func:`snapshot` shows it."""
    opened = (
        connection.execute(select(handoffs).where(handoffs.c.id > after).order_by(handoffs.c.id))
        .mappings()
        .all()
    )
    connection.execute(delete(outbox).where(outbox.c.handoff_id.in_([h["id"] for h in opened])))
    roster = {r.id: r for r in routing_reps(connection)}
    for h in opened:
        why = h["routing"]["reason"]
        at = h["created_at"]
        rep = roster.get(h["rep_id"]) if h["rep_id"] is not None else None
        if rep is not None:
            if email_wanted(connection, rep.id):
                enqueue_email(
                    connection, topic="handoff.assigned", to=rep.email, now=at, handoff_id=h["id"]
                )
            enqueue_chat(
                connection,
                topic="handoff.assigned",
                rep_id=rep.id,
                handoff_id=h["id"],
                now=at,
                audience="both",
                data={"why": why},
            )
            publish(
                connection,
                "handoff.assigned",
                webhook_data(h["id"], h["lead_id"], rep, why=why),
                now=at,
                handoff_id=h["id"],
            )
            continue
        publish(
            connection,
            "handoff.queued",
            webhook_data(h["id"], h["lead_id"], None, why=why),
            now=at,
            handoff_id=h["id"],
        )
        skipped = {s["rep_id"] for s in h["routing"]["skipped"]}
        managers = {
            r.manager_email
            for r in roster.values()
            if r.manager_email and h["routing"]["rule"] is not None and r.id in skipped
        }
        for manager in sorted(managers):
            enqueue_email(
                connection,
                topic="queue.alert",
                to=manager,
                now=at,
                handoff_id=h["id"],
                data={"why": why},
            )
    return snapshot(connection)["outbox"]


def _by_lead(rows: list[tuple[Any, dict[str, Any]]]) -> dict[Any, list[dict[str, Any]]]:
    found: dict[Any, list[dict[str, Any]]] = {}
    for lead_id, row in rows:
        found.setdefault(lead_id, []).append(row)
    return found


@settings(max_examples=30, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    floor=reps_st,
    rules=rules_st,
    account_matching=st.booleans(),
    owners=st.lists(st.one_of(st.none(), st.integers(0, 5)), min_size=4, max_size=4),
    people=leads_st.filter(lambda people: len(people) >= 2),
    before=st.integers(0, 12),
    notify=notify_st,
)
def test_batch_routing_decides_as_one_by_one(
    ctx: Context,
    floor: list[dict[str, Any]],
    rules: list[dict[str, Any]],
    account_matching: bool,
    owners: list[int | None],
    people: list[dict[str, Any]],
    before: int,
    notify: dict[str, Any],
) -> None:
    """The same handoffs, rotations, events, outbox rows (emails, chat messages,
    webhooks, managers' alerts), chains, lead milestones, transitions and nurture exits,
    each lead's rows in the same order. The batch always holds two leads or more: a
    batch of one is written by the one-by-one path itself (until December 7 most
    examples were, ``before`` taking all leads but the last)."""
    empty(ctx)
    ids = set_up(ctx, floor, rules, account_matching, owners, people, notify)
    now = ctx.clock.now()
    cut = min(before, len(ids) - 2)
    first, rest = ids[:cut], ids[cut:]
    for lead_id in first:  # loads and rotations that are not fresh
        with ctx.write() as connection:
            change_stage_in(connection, lead_id, Stage.MQL, actor=OPS, reason="earlier", now=now)
    historical = {lead_id for lead_id, p in zip(ids, people, strict=True) if p["historical"]}
    changes = [
        MqlChange(lead_id, f"why {lead_id}", historical=lead_id in historical) for lead_id in rest
    ]
    batch: dict[str, Any] = {}
    with pytest.raises(Rollback), ctx.write() as connection:
        earlier = connection.execute(select(func.coalesce(func.max(handoffs.c.id), 0))).scalar()
        steps = change_stages_in(connection, changes, actor=OPS, now=now)
        assert [s.to_stage for s in steps] == [Stage.MQL] * len(changes)
        batch = snapshot(connection)
        # The leads' milestones and the chains equal a recomputation from the history.
        kept = milestones_in(connection)
        rebuild(connection)
        assert milestones_in(connection) == kept
        assert announced_message_by_message(connection, after=int(earlier or 0)) == batch["outbox"]
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
    assert_milestones_equal_a_rebuild(ctx)
    assert batch["handoffs"] == one_by_one["handoffs"]
    assert batch["rotations"] == one_by_one["rotations"]
    assert batch["outbox"] == one_by_one["outbox"]
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
