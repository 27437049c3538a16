"""MQLs routed per second: the stage change that makes a lead an MQL, with its handoff
opened and routed, one transaction per lead, in 1, 2 and 4 processes on one PostgreSQL
(and one process on SQLite, whose writers take turns anyway).

The floor: 64 reps in 8 teams, working around the clock, with room for every lead (so
every MQL is assigned: the path with the email row; no chat channel or webhook is set
up, so those cost one look-up per transaction); a contract whose rules send each lead
to its country's team (round robin), with a catch-all. Leads are written in bulk (not
measured), then each process moves its share to MQL through
:func:`baton.services.stages.change_stage_in`, each in its own transaction, as an API
process does for a hand-raise. The figure is all MQLs divided by the wall time from
the common start to the last process's end.

Each figure is measured with and without, alternating (best of ``--repeat``):
``before`` takes, in addition, the
routing lock every decision took until 0.12 (the ``*`` row of ``rotations`` FOR
UPDATE, held to commit), switched on in this bench only, so the ratio shows what the
per-pool and per-rep locks bought. The second set of lines makes the same MQLs in
batches (:func:`baton.services.stages.change_stages_in`, ``--batch`` leads per
transaction: set-based, a few statements per batch), the path a re-score takes.
``--waits`` samples ``pg_stat_activity`` while the current code runs and prints where
the sessions spent their time (waiting for a lock, for their Python process, running).
First it prints what one hand-raise costs on each database, measured in one process
with nobody else writing (CPU time, which other work on the machine distorts little):
the statements sent, by kind, and the client's and (PostgreSQL) the server's CPU.

    python bench/route_parallel.py                  # 2,000 MQLs per figure, best of 2
    python bench/route_parallel.py --mqls 400 --processes 1,2 --batches-only --waits
    python bench/route_parallel.py --cost-only      # statements and CPU per hand-raise
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from _common import BENCH, MARIA, SAM, context, database, machine
from baton.domain.lifecycle import Stage
from baton.domain.reps import RepCreate, TeamCreate
from baton.services.contracts import activate_contract, approve_contract, create_contract
from baton.services.reps import create_rep, create_team
from baton.store.bulk import insert_rows
from baton.store.tables import handoffs, leads

COUNTRIES = ("US", "CA", "GB", "DE", "FR", "BR", "JP", "IN")
TEAMS = ("na", "canada", "uk", "dach", "france", "latam", "japan", "india")
REPS_PER_TEAM = 8
ALWAYS = {day: ["00:00-24:00"] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}


def contract_yaml() -> str:
    rules = "".join(
        f"    - name: {team}\n"
        f"      when:\n"
        f"        - {{field: country, in: [{country}]}}\n"
        f"      pool: {{team: {team}}}\n"
        f"      strategy: round_robin\n"
        for team, country in zip(TEAMS, COUNTRIES, strict=True)
    )
    return (
        "schema_version: 1\n"
        "name: Route in parallel\n"
        "mql:\n  threshold: 1000\n  hand_raise: [demo_request]\n"
        "routing:\n  account_matching: true\n  rules:\n"
        + rules
        + "    - name: Everyone else\n      pool: {team: na}\n      strategy: round_robin\n"
        "sla:\n  business_hours: false\n  accept_within_minutes: 30\n"
        "  first_touch_within_minutes: 120\n"
        "  ladder:\n    - {at_minutes: 20, action: remind}\n"
    )


def set_up(url: str, n_leads: int) -> None:
    ctx = context(url)
    try:
        for t, team in enumerate(TEAMS):
            create_team(ctx, TeamCreate(name=team), actor=BENCH)
            for n in range(REPS_PER_TEAM):
                create_rep(
                    ctx,
                    RepCreate(
                        email=f"rep{t}-{n}@sales.example.com",
                        name=f"Rep {t}-{n}",
                        timezone="UTC",
                        working_hours=ALWAYS,
                        capacity=100_000,
                        team=team,
                    ),
                    actor=BENCH,
                )
        version = create_contract(ctx, contract_yaml(), actor=MARIA).version
        approve_contract(ctx, version, role="marketing", actor=MARIA)
        approve_contract(ctx, version, role="sales", actor=SAM)
        activate_contract(ctx, version, actor=SAM)
        now = datetime(2026, 6, 1, tzinfo=UTC)
        with ctx.write() as connection:
            insert_rows(
                connection,
                leads,
                [
                    {
                        "email": f"p{i}@c{i % 997}.example.com",
                        "email_key": f"p{i}@c{i % 997}.example.com",
                        "email_domain": f"c{i % 997}.example.com",
                        "country": COUNTRIES[i % len(COUNTRIES)],
                        "company": f"Company {i % 997}",
                        "attributes": {},
                        "stage": "lead",
                        "stage_changed_at": now,
                        "created_at": now,
                        "updated_at": now,
                        "activity_count": 0,
                    }
                    for i in range(n_leads)
                ],
            )
    finally:
        ctx.engine.dispose()


def _old_global_lock() -> None:
    """Make every routing decision of this process take the routing lock of 0.11 first."""
    from sqlalchemy import select

    from baton.services import routing
    from baton.store.tables import rotations

    prepare = routing._prepare

    def locked(connection: Any, *args: Any, **kwargs: Any) -> Any:
        connection.execute(
            select(rotations.c.pool).where(rotations.c.pool == "*").with_for_update()
        )
        return prepare(connection, *args, **kwargs)

    routing._prepare = locked  # type: ignore[assignment]


def hand_raise(ctx: Any, lead_id: int, reason: str) -> None:
    """One lead made an MQL and routed in a transaction of its own (a hand-raise)."""
    from baton.services.stages import change_stage_in

    with ctx.write() as connection:
        change_stage_in(
            connection, lead_id, Stage.MQL, actor=BENCH, reason=reason, now=ctx.clock.now()
        )


def run(
    url: str, lead_ids: list[int], before: bool, batch: int, barrier: Any, results: Any
) -> None:
    from baton.services.stages import MqlChange, change_stages_in

    if before:
        _old_global_lock()
    ctx = context(url)
    try:
        barrier.wait(timeout=120)
        started = time.perf_counter()
        if batch == 1:
            for lead_id in lead_ids:
                hand_raise(ctx, lead_id, "bench")
        else:
            for start in range(0, len(lead_ids), batch):
                with ctx.write() as connection:
                    change_stages_in(
                        connection,
                        [MqlChange(i, "bench") for i in lead_ids[start : start + batch]],
                        actor=BENCH,
                        now=ctx.clock.now(),
                    )
        results.put((started, time.perf_counter(), None))
    except BaseException as error:
        results.put((0.0, 0.0, repr(error)))
    finally:
        ctx.engine.dispose()


def measure(
    backend: str,
    processes: int,
    n: int,
    *,
    before: bool,
    batch: int = 1,
    waits: Counter[str] | None = None,
) -> float:
    with database(backend) as url:
        set_up(url, n)
        spawn = multiprocessing.get_context("spawn")
        barrier = spawn.Barrier(processes)
        results = spawn.Queue()
        ids = list(range(1, n + 1))
        workers = [
            spawn.Process(
                target=run, args=(url, ids[p::processes], before, batch, barrier, results)
            )
            for p in range(processes)
        ]
        for worker in workers:
            worker.start()
        if waits is not None and backend == "postgresql":
            waits.update(sample_waits(url, results, len(workers)))
        outcomes = [results.get(timeout=1800) for _ in workers]
        for worker in workers:
            worker.join()
        errors = [e for _, _, e in outcomes if e]
        if errors:
            raise SystemExit(f"{backend}, {processes} processes: {errors[0]}")
        seconds = max(end for _, end, _ in outcomes) - min(start for start, _, _ in outcomes)
        check(url, n)
        return n / seconds


def sample_waits(url: str, results: Any, processes: int) -> Counter[str]:
    """What the bench's sessions are doing, sampled every 5 ms from ``pg_stat_activity``
    until the first process reports (then the rest are still running): ``CPU`` for an
    active session not waiting, else its wait event (``Lock:transactionid``,
    ``Lock:tuple``: a row lock held by another transaction; ``IO:WALSync``: a commit's
    flush; ``Client:ClientRead``: waiting for its Python process)."""
    import psycopg

    seen: Counter[str] = Counter()
    query = (
        "SELECT state, wait_event_type, wait_event FROM pg_stat_activity "
        "WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() "
        "AND datname = current_database()"
    )
    with psycopg.connect(url, autocommit=True) as connection:
        while results.empty():
            for state, kind, event in connection.execute(query):
                if state == "idle":
                    seen["idle (between transactions)"] += 1
                elif kind is None:
                    seen["CPU (running)"] += 1
                else:
                    seen[f"{kind}:{event}"] += 1
            time.sleep(0.005)
    return seen


def cost(backend: str, n: int) -> tuple[float, float, float, Counter[str]]:
    """What one hand-raise costs, in one process with nobody else writing: statements
    sent, client CPU (``time.process_time``: Python, SQLAlchemy, the driver; and SQLite
    itself) and, on PostgreSQL, the server backend's CPU (``/proc``), per MQL made by
    :func:`~baton.services.stages.change_stage_in` in its own transaction (after 40
    to warm up). CPU time, not wall time, so other work on the machine distorts it
    little. Returns (statements, client ms, server ms, statements by their first
    words)."""
    from sqlalchemy import event, text

    with database(backend) as url:
        set_up(url, n + 40)
        ctx = context(url)
        try:
            sent: Counter[str] = Counter()
            counting = [False]

            def count(_c: Any, _cur: Any, statement: str, *_: Any) -> None:
                if counting[0]:
                    sent[" ".join(statement.split()[:4])[:60]] += 1

            event.listen(ctx.engine, "before_cursor_execute", count)
            for lead_id in range(n + 1, n + 41):
                hand_raise(ctx, lead_id, "warm")
            pid = None
            if backend == "postgresql":
                with ctx.engine.connect() as connection:
                    pid = connection.execute(text("SELECT pg_backend_pid()")).scalar()

            def server() -> float:
                if pid is None:
                    return 0.0
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

            counting[0] = True
            server_start, client_start = server(), time.process_time()
            for lead_id in range(1, n + 1):
                hand_raise(ctx, lead_id, "b")
            client = time.process_time() - client_start
            served = server() - server_start
        finally:
            ctx.engine.dispose()
    return sum(sent.values()) / n, client / n * 1000, served / n * 1000, sent


def check(url: str, n: int) -> None:
    from sqlalchemy import func, select

    ctx = context(url)
    try:
        with ctx.read() as connection:
            assigned = connection.execute(
                select(func.count()).select_from(handoffs).where(handoffs.c.status == "assigned")
            ).scalar_one()
    finally:
        ctx.engine.dispose()
    if assigned != n:
        raise SystemExit(f"{assigned} of {n} MQLs assigned")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mqls", type=int, default=2000)
    parser.add_argument("--processes", default="1,2,4")
    parser.add_argument("--no-before", action="store_true", help="skip the old global lock")
    parser.add_argument("--batch", type=int, default=100, help="MQLs per batch transaction")
    parser.add_argument(
        "--repeat", type=int, default=2, help="runs per figure; the best is printed"
    )
    parser.add_argument(
        "--batches-only", action="store_true", help="skip the one-MQL-per-transaction lines"
    )
    parser.add_argument(
        "--waits",
        action="store_true",
        help="sample pg_stat_activity during the PostgreSQL runs of the current code and "
        "print where the sessions spent their time",
    )
    parser.add_argument(
        "--cost-only",
        action="store_true",
        help="print only the cost of one hand-raise (statements, client and server CPU)",
    )
    args = parser.parse_args()
    counts = [int(p) for p in args.processes.split(",")]
    console = Console()
    console.print(f"machine: {machine()}; {args.mqls:,} MQLs per figure")
    for backend in ("postgresql", "sqlite"):
        statements, client, served, sent = cost(backend, 300)
        print(
            f"  one hand-raise on {backend} (one process, 300 MQLs, CPU time): "
            f"{statements:.1f} statements, client CPU {client:.2f} ms"
            + (f", server CPU {served:.2f} ms" if backend == "postgresql" else "")
            + f"  (load {os.getloadavg()[0]:.2f})"
        )
        for k, v in sent.most_common():
            print(f"    {v / 300:g} × {k}")
    if args.cost_only:
        return
    table = Table(
        "database",
        "processes",
        "MQLs per transaction",
        "before (global lock)",
        "now",
        "now / before",
    )
    sizes = (args.batch,) if args.batches_only else (1, args.batch)
    plan = [("postgresql", p, b) for b in sizes for p in counts]
    plan += [("sqlite", 1, b) for b in sizes]
    for backend, processes, batch in plan:
        olds: list[float] = []
        news: list[float] = []
        waits: Counter[str] | None = Counter() if args.waits else None
        for _ in range(args.repeat):  # alternating, so a drift in load hits both
            if not args.no_before:
                olds.append(measure(backend, processes, args.mqls, before=True, batch=batch))
            news.append(
                measure(backend, processes, args.mqls, before=False, batch=batch, waits=waits)
            )
        old = max(olds) if olds else None
        new = max(news)
        console.print(
            f"  {backend} x{processes}, {batch} per transaction: now {new:,.0f} MQLs/s"
            + (f", before {old:,.0f}" if old else "")
            + f"  (load {os.getloadavg()[0]:.2f})"
        )
        if waits:
            total = sum(waits.values())
            locks = sum(v for k, v in waits.items() if k.startswith("Lock:"))
            console.print(
                "    sessions' time (pg_stat_activity samples): "
                + ", ".join(f"{k} {v / total:.0%}" for k, v in waits.most_common(5))
                + f"; row and transaction locks {locks / total:.1%}"
            )
        table.add_row(
            backend,
            str(processes),
            str(batch),
            f"{old:,.0f}/s" if old else "-",
            f"{new:,.0f}/s",
            f"{new / old:.1f}x" if old else "-",
        )
    console.print(table)
    console.print(
        f"before: with the global routing lock of 0.11 switched on in this bench; each "
        f"figure the best of {args.repeat} runs (before and now alternating); now / "
        "before: the ratio of the two MQLs/s figures of the same line"
    )
    console.print(f"load average (1, 5, 15 min): {os.getloadavg()}")


if __name__ == "__main__":
    main()
