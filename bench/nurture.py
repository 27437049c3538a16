"""Nurture: plan one due step for 100,000 enrolled leads, then send steps to a local SMTP
server with 1 and 2 workers.

Fills a fresh database with N consenting leads (bulk, not measured) and activates the
example contract (its ``nurture`` section, with the send rate raised out of the way).

* **planning**: every lead's enrollment in ``not-ready`` with its first step planned by
  the domain planner (:func:`baton.domain.nurture.plan_first`: the step whose condition
  holds, its delay within the contract's bounds, moved off the lead country's weekend)
  and written in bulk, as a bulk enrollment does. Target: < 5 s for 100,000.
* **lane**: the worker's nurture lane (:func:`baton.services.nurture_send.run_nurture`)
  writing due steps to the outbox: every check again, render, signed links, send log,
  advance; steps/s on one process.
* **sending**: ``--send`` due steps planned AND delivered end to end by real
  :class:`~baton.services.worker.Worker` processes (all six lanes, threads, fenced
  outbox) to an aiosmtpd server in this process; emails/s per worker with 1, then 2
  workers. Target: >= 200 emails/s per worker.

    python bench/nurture.py                      # PostgreSQL, 100,000 leads, send 4,000 twice
    python bench/nurture.py --leads 20000 --send 1000 --backend sqlite
"""

from __future__ import annotations

import argparse
import multiprocessing
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from rich.console import Console
from rich.table import Table
from sqlalchemy import select, text, update

from _common import MARIA, SAM, context, database, fill, free_port, machine
from baton.config import Settings
from baton.domain.nurture import Bounds, LeadFacts, plan_first
from baton.notify.email import SmtpConfig
from baton.services.context import open_context
from baton.services.contracts import activate_contract, approve_contract, create_contract
from baton.services.nurture_send import run_nurture
from baton.services.worker import Worker
from baton.store.tables import lead_scores, leads, nurture_enrollments, outbox

EXAMPLE = Path(__file__).parent.parent / "contracts" / "example.yaml"
COUNTRIES = ("US", "DE", "FR", "GB", "BR", "IN", "AE", "IL")


class Counting:
    """aiosmtpd handler that only counts what it accepts (the server must not be the
    slow part)."""

    def __init__(self) -> None:
        self.count = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.count += 1
        return "250 OK"


def prepare(url: str, n: int) -> int:
    """N consenting leads, the example contract active; returns its version."""
    ctx = context(url)
    fill(ctx, n, seed=15, stages=("nurture",))
    with ctx.write() as connection:
        connection.execute(
            update(leads).values(
                consent=True,
                consent_basis="consent",
                country=text(
                    "CASE id % 8 "
                    + " ".join(f"WHEN {i} THEN '{c}'" for i, c in enumerate(COUNTRIES))
                    + " END"
                ),
            )
        )
    body = EXAMPLE.read_text().replace("send_rate_per_minute: 120", "send_rate_per_minute: 60000")
    version = create_contract(ctx, body, actor=MARIA).version
    approve_contract(ctx, version, role="marketing", actor=MARIA)
    approve_contract(ctx, version, role="sales", actor=SAM)
    activate_contract(ctx, version, actor=MARIA)
    ctx.engine.dispose()
    return version


def plan_all(url: str, version: int) -> tuple[float, float, int]:
    """Plan the first step of every lead's enrollment and write them in bulk; returns
    the seconds in all, the seconds of the planner itself and how many were planned."""
    ctx = context(url)
    from baton.services.contract_rules import contract_spec

    started = time.perf_counter()
    contract = contract_spec(ctx, version)
    section = contract.nurture
    sequence = section.sequences["not-ready"]
    bounds = Bounds(section.delay_days.min, section.delay_days.max)
    cap = section.touch_cap("not-ready")
    now = datetime.now(UTC)
    with ctx.read() as connection:
        facts = connection.execute(
            select(leads.c.id, leads.c.country, leads.c.source, lead_scores.c.grade).select_from(
                leads.outerjoin(lead_scores, lead_scores.c.lead_id == leads.c.id)
            )
        ).all()
    rows: list[tuple[Any, ...]] = []
    planner = time.perf_counter()
    for lead_id, country, source, grade in facts:
        plan = plan_first(
            sequence.steps,
            enrolled_at=now,
            lead=LeadFacts(country=country, grade=grade, source=source),
            max_touches=cap,
            bounds=bounds,
        )
        rows.append(
            (
                lead_id,
                "not-ready",
                version,
                "active",
                "bench",
                now,
                "bench",
                plan.step,
                plan.due_at,
                0,
            )
        )
    planner = time.perf_counter() - planner
    columns = (
        "lead_id, sequence, contract_version, status, reason, enrolled_at, enrolled_by,"
        " next_step, next_due_at, touches"
    )
    raw = ctx.engine.raw_connection()
    try:
        cursor = raw.cursor()
        if ctx.dialect == "postgresql":
            with cursor.copy(f"COPY nurture_enrollments ({columns}) FROM STDIN") as copy:  # type: ignore[attr-defined]
                for row in rows:
                    copy.write_row(row)
        else:
            stamp = "%Y-%m-%d %H:%M:%S.%f"
            cursor.executemany(
                f"INSERT INTO nurture_enrollments ({columns}) VALUES ({', '.join('?' * 10)})",
                [
                    (*r[:5], r[5].strftime(stamp), r[6], r[7], r[8] and r[8].strftime(stamp), r[9])
                    for r in rows
                ],
            )
        raw.commit()
    finally:
        raw.close()
    seconds = time.perf_counter() - started
    ctx.engine.dispose()
    return seconds, planner, len(rows)


def make_due(url: str, first: int, count: int) -> None:
    """Enrollments ``first`` .. ``first + count - 1`` due now."""
    ctx = context(url)
    with ctx.write() as connection:
        connection.execute(
            update(nurture_enrollments)
            .where(nurture_enrollments.c.id.between(first, first + count - 1))
            .values(next_due_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    ctx.engine.dispose()


def settle(url: str) -> None:
    """The lane-only run's outbox rows count as sent (the sending runs measure their
    own steps only)."""
    ctx = context(url)
    with ctx.write() as connection:
        connection.execute(update(outbox).values(status="sent"))
    ctx.engine.dispose()


def lane(url: str, count: int) -> float:
    """The nurture lane alone, one process: due steps written to the outbox; steps/s."""
    ctx = open_context(Settings(database_url=url, env="test"), migrate=False)
    started = time.perf_counter()
    done = 0
    while done < count:
        planned = run_nurture(ctx).planned
        if not planned:
            break
        done += planned
    seconds = time.perf_counter() - started
    ctx.engine.dispose()
    return done / seconds


def _work(url: str, host: str, port: int, stop: Any) -> None:
    ctx = open_context(
        Settings(database_url=url, env="test", worker_poll_seconds=0.05), migrate=False
    )
    Worker(ctx, smtp=SmtpConfig(host=host, port=port)).run(stop)


def send(url: str, workers: int, count: int) -> float:
    """``count`` due steps planned and sent by ``workers`` worker processes; emails/s in
    all (until the server has them all)."""
    handler = Counting()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    stop = multiprocessing.Event()
    started = time.perf_counter()
    processes = [
        multiprocessing.Process(target=_work, args=(url, "127.0.0.1", port, stop))
        for _ in range(workers)
    ]
    try:
        for process in processes:
            process.start()
        while handler.count < count and time.perf_counter() - started < 900:
            time.sleep(0.02)
        seconds = time.perf_counter() - started
    finally:
        stop.set()
        for process in processes:
            process.join(timeout=60)
        controller.stop()
    return handler.count / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=100_000)
    parser.add_argument("--send", type=int, default=4_000, help="steps sent per worker count")
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="postgresql")
    args = parser.parse_args()
    console = Console()
    table = Table(title=f"Nurture: {args.leads:,} enrolled leads, {args.backend} ({machine()})")
    for column in ("what", "figure", "target"):
        table.add_column(column, justify="right")
    with database(args.backend) as url:
        version = prepare(url, args.leads)
        seconds, planner, planned = plan_all(url, version)
        table.add_row(f"planning, {planned:,} enrollments", f"{seconds:.2f} s", "< 5 s")
        table.add_row("of which the planner (pure)", f"{planner:.2f} s", "")
        console.print(
            f"planned {planned:,} first steps in {seconds:.2f} s ({planner:.2f} s planner)"
        )
        make_due(url, 1, args.send)
        rate = lane(url, args.send)
        table.add_row("nurture lane, steps to the outbox", f"{rate:,.0f} /s", "")
        console.print(f"lane: {rate:,.0f} steps/s")
        settle(url)
        first = args.send + 1
        for workers in (1, 2):
            make_due(url, first, args.send)
            total = send(url, workers, args.send)
            first += args.send
            table.add_row(
                f"sending, {workers} worker{'s' * (workers > 1)}",
                f"{total / workers:,.0f} emails/s per worker ({total:,.0f} in all)",
                ">= 200 /s per worker",
            )
            console.print(f"{workers} worker(s): {total:,.0f} emails/s")
    console.print(table)


if __name__ == "__main__":
    main()
