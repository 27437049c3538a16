"""Backtest: replay a year of history through a draft contract, side by side with the
active one.

Fills a fresh SQLite database with N leads and M activities (written in bulk: the set-up
is not measured), about 8 % of them won and some accepted, stores the example contract
as the active version, and times ``backtest_contract`` with a draft that changes one
rule (the real use case: one read transaction, every lead replayed through both
contracts). Prints seconds, leads/s, events/s, the processes that replayed (2 from
200,000 leads on a machine with 2 cores or more) and the CPU seconds they used.

    python bench/backtest.py                          # 1,000,000 leads, 10,000,000 events
    python bench/backtest.py --leads 200000           # events default to 10 per lead
    python bench/backtest.py --backend postgresql --leads 100000
    python bench/backtest.py --keep /tmp/backtest.db  # fill once, reuse on later runs
    python bench/backtest.py --processes 1            # one process, whatever the size
"""

from __future__ import annotations

import argparse
import random
import resource
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from rich.console import Console
from rich.table import Table

from _common import BENCH, context, database, machine
from baton.services.backtest import backtest_contract, processes_for
from baton.services.contracts import check_contract
from baton.store.bulk import insert_rows
from baton.store.tables import activities, contracts, leads

EXAMPLE = Path(__file__).parent.parent / "contracts" / "example.yaml"
TITLES = ("VP Operations", "Data Analyst", "Student", "Head of Data", "CTO", "Consultant")
COUNTRIES = ("US", "DE", "FR", "GB", "BR", "IN")
EVENTS = (
    ("page_view", "/pricing"),
    ("page_view", "/product/x"),
    ("email_click", None),
    ("content_download", None),
    ("webinar_attended", None),
    ("email_open", None),
)
START = datetime(2025, 6, 1, tzinfo=UTC)
BATCH = 50_000


def fill(url: str, n_leads: int, n_events: int) -> None:
    ctx = context(url)
    rng = random.Random(1)
    with ctx.write() as connection:
        for first in range(0, n_leads, BATCH):
            rows = []
            for i in range(first, min(n_leads, first + BATCH)):
                created = START + timedelta(minutes=rng.randrange(0, 365 * 1440))
                won = rng.random() < 0.08
                accepted = won or rng.random() < 0.15
                rows.append(
                    {
                        "email": f"p{i}@c{i % 9000}.example.com",
                        "email_key": f"p{i}@c{i % 9000}.example.com",
                        "email_domain": f"c{i % 9000}.example.com",
                        "title": rng.choice(TITLES),
                        "country": rng.choice(COUNTRIES),
                        "company": f"Company {i % 9000}",
                        "attributes": {"employees": rng.choice((5, 80, 400, 9000))},
                        "stage": "lead",
                        "stage_changed_at": created,
                        "created_at": created,
                        "updated_at": created,
                        "activity_count": 0,
                        "sal_at": created + timedelta(days=20) if accepted else None,
                        "customer_at": created + timedelta(days=60) if won else None,
                    }
                )
            insert_rows(connection, leads, rows)
    # Activities in lead order (as a year of capture would leave them, near enough),
    # each within 90 days of its lead's creation.
    per_lead = max(1, n_events // max(1, n_leads))
    with ctx.write() as connection:
        created_of = [
            row[0] for row in connection.exec_driver_sql("SELECT created_at FROM leads ORDER BY id")
        ]
    with ctx.write() as connection:
        rows = []
        for lead_index in range(n_leads):
            base = created_of[lead_index]
            if isinstance(base, str):
                base = datetime.fromisoformat(base).replace(tzinfo=UTC)
            for _ in range(per_lead):
                kind, page = EVENTS[rng.randrange(len(EVENTS))]
                moment = base + timedelta(minutes=rng.randrange(0, 90 * 1440))
                rows.append(
                    {
                        "lead_id": lead_index + 1,
                        "type": kind,
                        "occurred_at": moment,
                        "received_at": moment,
                        "properties": {"url": page} if page else {},
                    }
                )
            if len(rows) >= BATCH:
                insert_rows(connection, activities, rows)
                rows = []
        insert_rows(connection, activities, rows)
    body = EXAMPLE.read_text()
    spec = check_contract(body)
    with ctx.write() as connection:
        insert_rows(
            connection,
            contracts,
            [
                {
                    "version": 1,
                    "name": spec.name,
                    "body": body,
                    "spec": spec.model_dump(mode="json", by_alias=True),
                    "status": "active",
                    "created_by": "bench",
                    "created_at": START,
                    "activated_at": START,
                    "activated_by": "bench",
                }
            ],
        )
    ctx.engine.dispose()


def _cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def run(url: str, processes: int | None) -> tuple[float, float, int, int, int, int]:
    ctx = context(url)
    body = EXAMPLE.read_text()
    draft = body.replace("threshold: 60", "threshold: 50", 1)
    cpu = _cpu()
    began = time.perf_counter()
    report = backtest_contract(ctx, draft, actor=BENCH, processes=processes)
    elapsed = time.perf_counter() - began
    cpu = _cpu() - cpu
    used = processes if processes is not None else processes_for(ctx, report.leads)
    ctx.engine.dispose()
    against = report.against.totals.mqls if report.against else 0
    return elapsed, cpu, used, report.leads, report.draft.totals.mqls, against


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=None, help="default: 10 per lead")
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="sqlite")
    parser.add_argument("--processes", type=int, default=None, help="default: Baton's choice")
    parser.add_argument(
        "--keep", type=Path, default=None, help="SQLite file to fill once and reuse (sqlite only)"
    )
    args = parser.parse_args()
    events = args.events if args.events is not None else args.leads * 10
    backends = ("sqlite", "postgresql") if args.backend == "both" else (args.backend,)
    table = Table(
        title=f"Backtest, draft vs active: {args.leads:,} leads, {events:,} events ({machine()})"
    )
    columns = ("database", "set-up s", "seconds", "leads/s", "events/s", "processes", "CPU s")
    for column in (*columns, "MQLs (draft/active)"):
        table.add_column(column, justify="right")
    for backend in backends:
        began = time.perf_counter()
        if args.keep is not None and backend == "sqlite":
            url = f"sqlite:///{args.keep}"
            if not args.keep.exists():
                fill(url, args.leads, events)
            setup = time.perf_counter() - began
            measured = run(url, args.processes)
        else:
            with database(backend) as url:
                fill(url, args.leads, events)
                setup = time.perf_counter() - began
                measured = run(url, args.processes)
        seconds, cpu, used, replayed, draft_mqls, active_mqls = measured
        table.add_row(
            backend,
            f"{setup:.0f}",
            f"{seconds:.1f}",
            f"{replayed / seconds:,.0f}",
            f"{events / seconds:,.0f}",
            str(used),
            f"{cpu:.0f}",
            f"{draft_mqls:,} / {active_mqls:,}",
        )
    Console().print(table)


if __name__ == "__main__":
    main()
