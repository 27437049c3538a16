"""The fast write paths store exactly what the Core tables would, and the demo company
is a valid, deterministic history."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, insert, select, text

from baton.domain.access import operator
from baton.domain.lifecycle import Stage, replay
from baton.services.context import Context
from baton.services.demo import generate_demo
from baton.services.exports import export_leads
from baton.services.leads import stage_history
from baton.store.bulk import insert_activities
from baton.store.tables import (
    activities,
    handoff_events,
    handoffs,
    lead_prep,
    leads,
    notes,
    tag_events,
    transitions,
)

OPS = operator("ops")


def _a_lead(ctx: Context) -> int:
    now = ctx.clock.now()
    with ctx.write() as connection:
        return connection.execute(
            insert(leads)
            .values(
                email="x@example.com",
                email_key="x@example.com",
                attributes={},
                stage="lead",
                stage_changed_at=now,
                created_at=now,
                updated_at=now,
            )
            .returning(leads.c.id)
        ).scalar_one()


def test_bulk_rows_read_back_like_core_rows(ctx: Context) -> None:
    lead_id = _a_lead(ctx)
    at = datetime(2026, 3, 1, 12, 30, 0, tzinfo=UTC)
    row = {
        "lead_id": lead_id,
        "type": "page_view",
        "occurred_at": at,
        "received_at": at,
        "properties": {"url": "/pricing", "n": 3},
        "recorded_by": "form",
    }
    with ctx.write() as connection:
        connection.execute(insert(activities).values(**row, idempotency_key="core"))
        insert_activities(connection, [{**row, "idempotency_key": "bulk"}])
        insert_activities(connection, [{**row, "idempotency_key": "bulk"}])
    with ctx.read() as connection:
        stored = (
            connection.execute(select(activities).order_by(activities.c.idempotency_key))
            .mappings()
            .all()
        )
        raw = connection.execute(text("SELECT occurred_at FROM activities")).scalars().all()
        earlier = connection.execute(
            select(func.count())
            .select_from(activities)
            .where(activities.c.occurred_at < at + timedelta(microseconds=1))
        ).scalar_one()
    assert [r["idempotency_key"] for r in stored] == ["bulk", "core"]
    bulk, core = stored
    for column in ("lead_id", "type", "occurred_at", "received_at", "properties", "recorded_by"):
        assert bulk[column] == core[column], column
    assert raw[0] == raw[1], "both paths must store the same text on SQLite"
    assert earlier == 2, "comparisons in SQL must see both rows"


def test_demo_company_is_deterministic_and_every_history_replays(ctx: Context) -> None:
    summary = generate_demo(ctx, leads_count=80, seed=11, days=30)

    assert summary.leads == 80
    assert summary.activities > 80
    assert summary.transitions > 0
    with ctx.read() as connection:
        rows = connection.execute(select(leads.c.id, leads.c.stage, leads.c.created_at)).all()
        counts = connection.execute(
            select(activities.c.lead_id, func.count()).group_by(activities.c.lead_id)
        ).all()
    assert {stage for _, stage, _ in rows} - {s.value for s in Stage} == set()
    assert len({stage for _, stage, _ in rows}) >= 3, "the demo shows several stages"
    for lead_id, stage, _ in rows:
        assert replay(stage_history(ctx, lead_id, actor=OPS)).value == stage
    assert all(n >= 1 for _, n in counts)
    start = ctx.clock.now() - timedelta(days=30)
    assert all(start <= created <= ctx.clock.now() for _, _, created in rows)
    _nothing_after(ctx, ctx.clock.now())


def _nothing_after(ctx: Context, now: datetime) -> None:
    """No activity, stage change, handoff step, note or tick of the demo is dated after
    its "now" (a visit drawn after the story's end once arrived with the last sync)."""
    dated = [
        activities.c.occurred_at,
        activities.c.received_at,
        transitions.c.occurred_at,
        handoff_events.c.occurred_at,
        tag_events.c.occurred_at,
        notes.c.created_at,
        lead_prep.c.done_at,
        *(leads.c[name] for name in ("created_at", "last_activity_at", "mql_at", "sal_at")),
        *(leads.c[name] for name in ("sql_at", "opportunity_at", "customer_at")),
        *(handoffs.c[name] for name in ("created_at", "assigned_at", "accepted_at")),
        *(handoffs.c[name] for name in ("first_touch_at", "closed_at")),
    ]
    with ctx.read() as connection:
        latest = {
            f"{column.table.name}.{column.name}": connection.execute(
                select(func.max(column))
            ).scalar()
            for column in dated
        }
    assert latest["activities.occurred_at"] is not None
    late = {name: moment for name, moment in latest.items() if moment and moment > now}
    assert late == {}, f"dated after the demo's now ({now}): {late}"


def test_same_seed_gives_the_same_company(empty_database_url: str, tmp_path: Path) -> None:
    """On two new databases (ids from 1: routing breaks ties by id), one of each
    backend under test and a SQLite file."""
    from baton.config import Settings
    from baton.domain.clock import ManualClock
    from baton.services.context import open_context

    ctx = open_context(
        Settings(database_url=empty_database_url, env="test"),
        clock=ManualClock(current=datetime(2026, 3, 2, 9, 0, tzinfo=UTC)),
    )
    other = open_context(
        Settings(database_url=f"sqlite:///{tmp_path / 'other.db'}", env="test"),
        clock=ManualClock(current=ctx.clock.now()),
    )
    try:
        generate_demo(ctx, leads_count=120, seed=5, days=30)
        generate_demo(other, leads_count=120, seed=5, days=30)
        first, second = io.StringIO(), io.StringIO()
        export_leads(ctx, first, fmt="jsonl", actor=OPS)
        export_leads(other, second, fmt="jsonl", actor=OPS)
    finally:
        other.engine.dispose()
        ctx.engine.dispose()

    def without_ids(text_: str) -> list[dict[str, object]]:
        return [
            {k: v for k, v in json.loads(line).items() if k != "id"} for line in text_.splitlines()
        ]

    company = without_ids(first.getvalue())
    assert company == without_ids(second.getvalue())
    assert len(company) == 120
    assert {"customer", "sal"} & {lead["stage"] for lead in company}, "sales played its part"


def test_the_demo_contract_is_signed_active_and_scores_leads(ctx: Context) -> None:
    from baton.services.contracts import active_contract, list_contracts
    from baton.services.scoring import lead_score

    version = generate_demo(ctx, leads_count=30, seed=3, days=10).contract_version

    assert version is not None
    assert active_contract(ctx)[0] == version  # type: ignore[index]
    (signed,) = list_contracts(ctx, actor=operator("test"))
    assert signed.approvals == {"marketing": "Maria Lopez", "sales": "Sam Becker"}
    with ctx.read() as connection:
        some_lead = connection.execute(select(leads.c.id).limit(1)).scalar_one()
    assert lead_score(ctx, some_lead, actor=OPS).contract_version == version


def test_the_demo_hands_leads_to_reps_through_the_real_use_cases(ctx: Context) -> None:
    from baton.services.handoffs import list_handoffs
    from baton.services.reps import list_reps

    summary = generate_demo(ctx, leads_count=200, seed=4, days=30)

    assert summary.reps == len(list_reps(ctx, actor=operator("test"))) == 10
    found = list_handoffs(ctx, limit=10_000, actor=OPS)
    assert len(found) >= summary.handoffs > 0
    assert any(h.accepted_at is not None for h in found), "sales accepted some"
    assert any(h.status == "rejected" for h in found), "and turned some down"
    with ctx.read() as connection:
        stage_of = dict(connection.execute(select(leads.c.id, leads.c.stage)).all())
    expected = {
        "won": {"customer"},
        "lost": {"lost"},
        "qualified": {"sql", "opportunity"},
        "accepted": {"sal"},
        "assigned": {"mql"},
        "queued": {"mql"},
    }
    catalog = {"not_ready", "junk", "no_budget", "out_of_area", "wrong_contact"}
    last = {h.lead_id: h for h in sorted(found, key=lambda h: h.id)}
    for handoff in found:
        if handoff.status in expected:
            assert stage_of[handoff.lead_id] in expected[handoff.status], handoff
        if handoff.accepted_at is not None:
            assert handoff.rep_email is not None
            assert handoff.assigned_at is not None
            assert handoff.assigned_at <= handoff.accepted_at
            # Accepted first (the SLA's 30 minutes), then the first call (its 120).
            if handoff.first_touch_at is not None:
                assert handoff.accepted_at <= handoff.first_touch_at
        if handoff.status in ("qualified", "won", "lost"):
            assert handoff.first_touch_at is not None, "qualified after a call"
        if handoff.status == "rejected":
            assert handoff.rejection_code in catalog
            if last[handoff.lead_id].id == handoff.id:
                assert stage_of[handoff.lead_id] in {"nurture", "disqualified"}
