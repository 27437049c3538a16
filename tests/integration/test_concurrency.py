"""Several writers at once (threads sharing the engine's pool): the same new person
captured or ingested concurrently becomes one lead, every event is stored once, and
no request fails."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from sqlalchemy import func, select

from baton.domain.access import operator
from baton.domain.leads import LeadCreate
from baton.services.activities import ingest_activities
from baton.services.context import Context
from baton.services.leads import capture_lead
from baton.store.tables import activities, leads

WRITERS = 6


def _count(ctx: Context, table: object, *where: object) -> int:
    with ctx.read() as connection:
        return int(
            connection.execute(select(func.count()).select_from(table).where(*where)).scalar_one()  # type: ignore[arg-type]
        )


def test_concurrent_captures_of_one_new_email_make_one_lead(ctx: Context) -> None:
    def capture(i: int) -> int:
        data = LeadCreate.model_validate(
            {"email": "Dana@Northwind.com", "title": f"title {i}", "source": f"s{i}"}
        )
        return capture_lead(ctx, data, actor=operator(f"worker-{i}")).lead.id

    with ThreadPoolExecutor(WRITERS) as pool:
        ids = list(pool.map(capture, range(WRITERS * 3)))

    assert len(set(ids)) == 1
    assert _count(ctx, leads) == 1
    assert _count(ctx, activities, activities.c.type == "captured") == WRITERS * 3


def test_concurrent_batches_with_overlapping_new_leads_and_retries(ctx: Context) -> None:
    start = ctx.clock.now() - timedelta(days=1)
    rows = [
        {
            "email": f"person{i % 7}@northwind.com",
            "type": "page_view",
            "occurred_at": (start + timedelta(minutes=i)).isoformat(),
            "idempotency_key": f"evt-{i}",
        }
        for i in range(60)
    ]

    def send(worker: int) -> tuple[int, int]:
        part = rows[worker * 10 : worker * 10 + 30]  # overlapping slices: retries
        report = ingest_activities(ctx, part, actor=operator(f"worker-{worker}"))
        assert not report.errors
        return report.stored, report.duplicates

    with ThreadPoolExecutor(WRITERS) as pool:
        results = list(pool.map(send, range(4)))

    assert sum(stored for stored, _ in results) == 60
    assert _count(ctx, activities) == 60
    assert _count(ctx, leads) == 7
    with ctx.read() as connection:
        counted = connection.execute(select(func.sum(leads.c.activity_count))).scalar_one()
    assert counted == 60, "counters follow the events actually stored"
