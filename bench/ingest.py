"""Activity ingest throughput through the batch service path.

Ingests N events for M leads with ``ingest_activities`` (raw rows, validated one by one,
idempotency keys, lead creation, counters: exactly what ``POST /activities/batch`` does)
in batches of 10,000, and compares it with the raw figure of the same database measured
in the same run: the same rows, already valid and with their leads already created,
written with the driver's fastest bulk path, one transaction per 10,000: ``executemany``
on SQLite, ``COPY`` on PostgreSQL. Prints events/s, the raw figure, which one it is, and
the ratio (service events/s over raw rows/s), with the load average beside them. On
SQLite it also prints the CPU ratio (this process's CPU seconds, raw over service: the
database works in this process, so it is the same comparison without the share of the
cores other programs took meanwhile; this machine is shared) and both CPU costs per
event, in microseconds.

    python bench/ingest.py                     # 1,000,000 events, 100,000 leads, both DBs
    python bench/ingest.py --events 200000 --backend sqlite
    python bench/ingest.py --events 100000 --leads 10000 --with-contract  # scoring's cost
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from rich.console import Console
from rich.table import Table
from sqlalchemy import text

from _common import BENCH, MARIA, SAM, context, database, machine
from baton.services.activities import ingest_activities

TYPES = ("page_view", "email_open", "email_click", "form_submit", "webinar_attended")
PAGES = ("/", "/pricing", "/product", "/docs", "/blog/kpi-guide")


def make_rows(events: int, leads: int) -> list[dict[str, object]]:
    start = datetime(2026, 1, 5, tzinfo=UTC)
    return [
        {
            "email": f"person{i % leads}@company{(i % leads) % 5000}.example.com",
            "type": TYPES[i % len(TYPES)],
            "occurred_at": (start + timedelta(seconds=i)).isoformat(),
            "properties": {"url": PAGES[i % len(PAGES)]},
            "idempotency_key": f"evt-{i}",
        }
        for i in range(events)
    ]


def activate_example(url: str) -> None:
    from baton.services.contracts import activate_contract, approve_contract, create_contract

    ctx = context(url)
    body = (Path(__file__).parent.parent / "contracts" / "example.yaml").read_text()
    version = create_contract(ctx, body, actor=MARIA).version
    approve_contract(ctx, version, role="marketing", actor=MARIA)
    approve_contract(ctx, version, role="sales", actor=SAM)
    activate_contract(ctx, version, actor=BENCH)
    ctx.engine.dispose()


CPU: dict[str, float] = {}
"""Seconds of this process's CPU per measured run (``service``, ``raw``): on SQLite the
database works in this process, so their ratio is the same comparison as the wall-clock
one without the share of the cores other programs took meanwhile."""


def service_rate(
    url: str, rows: list[dict[str, object]], batch: int, *, contract: bool = False
) -> tuple[float, int]:
    if contract:
        activate_example(url)
    ctx = context(url)
    ctx.clock.set(datetime(2026, 12, 1, tzinfo=UTC))  # type: ignore[attr-defined]
    stored = 0
    began, cpu = time.perf_counter(), time.process_time()
    for start in range(0, len(rows), batch):
        report = ingest_activities(ctx, rows[start : start + batch], actor=BENCH)
        assert not report.errors, report.errors[:3]
        stored += report.stored
    elapsed = time.perf_counter() - began
    CPU["service"] = time.process_time() - cpu
    ctx.engine.dispose()
    return len(rows) / elapsed, stored


def _worker(args: tuple[str, list[dict[str, object]], int]) -> int:
    url, rows, batch = args
    ctx = context(url)
    ctx.clock.set(datetime(2026, 12, 1, tzinfo=UTC))  # type: ignore[attr-defined]
    stored = 0
    for start in range(0, len(rows), batch):
        stored += ingest_activities(ctx, rows[start : start + batch], actor=BENCH).stored
    ctx.engine.dispose()
    return stored


def parallel_rate(url: str, rows: list[dict[str, object]], batch: int, processes: int) -> float:
    """Several processes calling the same service on one database, as several API
    workers would: validation runs in parallel, writes queue on the database lock."""
    import multiprocessing

    context(url).engine.dispose()  # migrate once, before the workers start
    # Leads are created up front so that workers do not race to create the same ones.
    _worker((url, rows[: len({r["email"] for r in rows})], batch))
    rest = rows[len({r["email"] for r in rows}) :]
    shares = [
        [row for k in range(i * batch, len(rest), processes * batch) for row in rest[k : k + batch]]
        for i in range(processes)
    ]
    began = time.perf_counter()
    with multiprocessing.get_context("fork").Pool(processes) as pool:
        stored = sum(pool.map(_worker, [(url, share, batch) for share in shares]))
    elapsed = time.perf_counter() - began
    assert stored == len(rest), (stored, len(rest))
    return len(rest) / elapsed


RAW = {"sqlite": "executemany", "postgresql": "COPY"}
"""The raw figure each database's ratio uses."""


def raw_rate(url: str, rows: list[dict[str, object]], batch: int) -> float:
    """The floor: the already-valid rows written into the same table with the driver's
    bulk path (:data:`RAW`), leads pre-created, no validation, no look-ups, no
    counters."""
    ctx = context(url)
    sqlite = ctx.dialect == "sqlite"
    leads = sorted({str(r["email"]) for r in rows})
    now = "2026-12-01 00:00:00" if sqlite else datetime(2026, 12, 1, tzinfo=UTC)
    with ctx.engine.begin() as c:
        c.execute(
            text(
                "INSERT INTO leads (email, email_key, attributes, stage, stage_changed_at,"
                " created_at, updated_at, activity_count) VALUES (:e, :e, '{}', 'lead', :n, :n,"
                " :n, 0)"
            ),
            [{"e": e, "n": now} for e in leads],
        )
        ids = dict(c.execute(text("SELECT email_key, id FROM leads")).all())
    prepared = [
        (
            ids[str(r["email"])],
            r["type"],
            str(r["occurred_at"]).replace("+00:00", "") if sqlite else r["occurred_at"],
            now if sqlite else "2026-12-01T00:00:00+00:00",
            json.dumps(r["properties"]),
            r["idempotency_key"],
            "bench",
        )
        for r in rows
    ]
    columns = "lead_id, type, occurred_at, received_at, properties, idempotency_key, recorded_by"
    insert = f"INSERT INTO activities ({columns}) VALUES (?, ?, ?, ?, ?, ?, ?)"
    began, cpu = time.perf_counter(), time.process_time()
    for start in range(0, len(prepared), batch):
        part = prepared[start : start + batch]
        raw = ctx.engine.raw_connection()
        try:
            cursor = raw.cursor()
            if sqlite:
                cursor.execute("BEGIN IMMEDIATE")
                cursor.executemany(insert, part)
            else:
                with cursor.copy(f"COPY activities ({columns}) FROM STDIN") as copy:
                    copy.write("".join("\t".join(map(str, row)) + "\n" for row in part))
            raw.commit()
        finally:
            raw.close()
    elapsed = time.perf_counter() - began
    CPU["raw"] = time.process_time() - cpu
    ctx.engine.dispose()
    return len(rows) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--leads", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument(
        "--processes",
        type=int,
        default=0,
        help="Also measure N processes ingesting at once (as N API workers would)",
    )
    parser.add_argument(
        "--with-contract",
        action="store_true",
        help="Also ingest with the example contract active (scoring + MQL checks per event)",
    )
    args = parser.parse_args()
    rows = make_rows(args.events, args.leads)
    # The input is the bench's, not the server's (an API process holds one batch of
    # 10,000 at most): kept out of the garbage collector's full passes, which would
    # otherwise walk millions of rows at every pass, in the service and the raw runs.
    gc.freeze()
    backends = ("sqlite", "postgresql") if args.backend == "both" else (args.backend,)
    table = Table(
        title=f"Activity ingest: {args.events:,} events, {args.leads:,} leads ({machine()})"
    )
    columns = [
        "database",
        "service events/s",
        "raw rows/s",
        "raw figure",
        "ratio",
        "CPU ratio",
        "CPU µs/event: service, raw",
        "load",
    ]
    if args.with_contract:
        columns += ["events/s with contract", "scoring cost per event"]
    if args.processes:
        columns += [f"events/s, {args.processes} processes"]
    for column in columns:
        table.add_column(column, justify="right")
    for backend in backends:
        with database(backend) as url:
            rate, stored = service_rate(url, rows, args.batch)
            assert stored == len(rows)
        with database(backend) as url:
            floor = raw_rate(url, rows, args.batch)
        load = " ".join(f"{x:.1f}" for x in os.getloadavg())
        cells = [
            backend,
            f"{rate:,.0f}",
            f"{floor:,.0f}",
            RAW[backend],
            f"{rate / floor:.2f}",
            f"{CPU['raw'] / CPU['service']:.2f}" if backend == "sqlite" else "-",
            f"{CPU['service'] / len(rows) * 1e6:.1f}, {CPU['raw'] / len(rows) * 1e6:.1f}"
            if backend == "sqlite"
            else "-",
            load,
        ]
        if args.with_contract:
            with database(backend) as url:
                scored, _ = service_rate(url, rows, args.batch, contract=True)
            cost_ms = (1 / scored - 1 / rate) * 1000
            cells += [f"{scored:,.0f}", f"{cost_ms:.3f} ms"]
        if args.processes:
            with database(backend) as url:
                cells.append(f"{parallel_rate(url, rows, args.batch, args.processes):,.0f}")
        table.add_row(*cells)
    Console(width=200).print(table)


if __name__ == "__main__":
    main()
