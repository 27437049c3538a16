"""The duplicate lane with several worker processes on one PostgreSQL.

Imports a CSV of N leads (``bench/import.py``'s file: a company and a work email domain
per lead, repeating every 20,000 rows; 10 first and 8 last names; phones from 8 area
codes; every 1,000th row rejected on purpose) with ``baton import leads``, which queues
every new lead for the possible-duplicate comparison, then runs P worker processes at
once, each running the worker's duplicate lane (``check_duplicates``, with its poll
interval's wait when a pass leaves it nothing to take) until the queue is empty, for P
in ``--processes`` (a fresh database each, the same file).

It prints, per P: the leads compared by all processes together against the leads
queued (1.00 when no two processes compare the same lead), the wall time until the
queue is empty, the CPU seconds of the processes and of PostgreSQL's backends, and
leads dequeued per second.

    python bench/duplicate_workers.py                 # 20,000 leads; 1, 2 and 4 processes
    python bench/duplicate_workers.py --rows 50000 --processes 1,2 --repeat 3
"""

from __future__ import annotations

import argparse
import importlib
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from _common import ServerCpu, context, database, machine, postgres_database

BATON = [sys.executable, "-m", "baton.cli"]


def child(url: str) -> None:
    """One worker process: the worker's duplicate lane until the queue is empty (its
    passes, and its poll interval's wait after a pass that found no batch left for it);
    prints the leads it compared, the leads it dequeued and its CPU seconds."""
    from baton.config import Settings
    from baton.services import duplicate_checks
    from baton.services.context import open_context
    from baton.services.worker import check_duplicates

    compare = duplicate_checks.possible_duplicates_of
    compared = 0

    def counted(connection, lead_ids, **kwargs):  # type: ignore[no-untyped-def]
        nonlocal compared
        compared += len(lead_ids)
        return compare(connection, lead_ids, **kwargs)

    duplicate_checks.possible_duplicates_of = counted  # type: ignore[assignment]
    ctx = open_context(Settings(database_url=url, env="test"))  # the real clock, as a worker
    ready = Path(os.environ["BENCH_GO"])
    while not ready.exists():
        time.sleep(0.005)
    before = resource.getrusage(resource.RUSAGE_SELF)
    dequeued = 0
    while True:
        report = check_duplicates(ctx)
        dequeued += report.checked
        if report.checked and not report.drained:
            continue  # the lane goes on at once
        if duplicate_checks.pending_duplicate_checks(ctx, at_most=1) == 0:
            break
        time.sleep(ctx.settings.worker_poll_seconds)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = usage.ru_utime + usage.ru_stime - before.ru_utime - before.ru_stime
    print("bench-child", compared, dequeued, cpu)
    ctx.engine.dispose()


def run(url: str, processes: int, server: ServerCpu) -> dict[str, float]:
    """P worker processes on the queue of ``url`` until it is empty."""
    with tempfile.TemporaryDirectory() as tmp:
        go = Path(tmp) / "go"
        env = {**os.environ, "BENCH_GO": str(go)}
        children = [
            subprocess.Popen(
                [sys.executable, __file__, "--child", url],
                env=env,
                stdout=subprocess.PIPE,
                text=True,
            )
            for _ in range(processes)
        ]
        time.sleep(1.5)  # their imports and connections, before the clock starts
        server_before = server.now()
        began = time.perf_counter()
        go.touch()
        outputs = [c.communicate()[0] for c in children]
        elapsed = time.perf_counter() - began
        server_cpu = server.now() - server_before
    compared = dequeued = 0
    cpu = 0.0
    for out, process in zip(outputs, children, strict=True):
        if process.returncode != 0:
            sys.exit(f"a worker process failed:\n{out}")
        line = next(x for x in out.splitlines() if x.startswith("bench-child "))
        fields = line.split()
        compared += int(fields[1])
        dequeued += int(fields[2])
        cpu += float(fields[3])
    return {
        "compared": compared,
        "dequeued": dequeued,
        "wall": elapsed,
        "cpu": cpu,
        "server": server_cpu,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--processes", default="1,2,4")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    counts = [int(p) for p in args.processes.split(",")]
    write_csv = importlib.import_module("import").write_csv
    table = Table(title=f"duplicate lane, PostgreSQL ({machine()})")
    for name in (
        "processes",
        "leads queued",
        "leads compared",
        "compared / queued",
        "seconds",
        "leads/s",
        "processes' CPU s",
        "PostgreSQL CPU s",
    ):
        table.add_column(name, justify="right")
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp, database("postgresql") as url:
        csv_path = Path(tmp) / "leads.csv"
        write_csv(csv_path, args.rows)
        server = ServerCpu(url)
        number = 0
        for _ in range(args.repeat):
            for processes in counts:
                number += 1
                fresh = postgres_database(url, f"bench_duplicates_{number}")
                env = {**os.environ, "BATON_DATABASE_URL": fresh}
                subprocess.run([*BATON, "init"], env=env, check=True, capture_output=True)
                subprocess.run(
                    [*BATON, "import", "leads", str(csv_path), "--errors", str(Path(tmp) / "e")],
                    env=env,
                    check=False,
                    capture_output=True,
                )
                queued = _queued(fresh)
                figures = run(fresh, processes, server)
                if figures["dequeued"] != queued:
                    sys.exit(f"{queued} leads queued, {figures['dequeued']} dequeued")
                table.add_row(
                    str(processes),
                    f"{queued:,}",
                    f"{figures['compared']:,.0f}",
                    f"{figures['compared'] / queued:.2f}",
                    f"{figures['wall']:.2f}",
                    f"{queued / figures['wall']:,.0f}",
                    f"{figures['cpu']:.2f}",
                    f"{figures['server']:.2f}",
                )
        server.close()
    Console(width=130).print(table)
    print(
        "leads compared counts every lead each process compared (a lead compared by two "
        "processes counts twice); processes' CPU s is the worker processes' own from the "
        "start signal (their imports and connections before it left out)"
    )
    print(f"load average (1, 5, 15 min) before: {load_before}; after: {os.getloadavg()}")


def _queued(url: str) -> int:
    from baton.services.duplicate_checks import pending_duplicate_checks

    ctx = context(url)
    try:
        return pending_duplicate_checks(ctx)
    finally:
        ctx.engine.dispose()


if __name__ == "__main__":
    main()
