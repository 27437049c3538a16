"""How long a capture waits during a large import, per ``BATON_IMPORT_CHUNK_ROWS``.

An import writes its valid rows in chunks, one transaction each (about 0.2 s of writing,
at most ``BATON_IMPORT_CHUNK_ROWS`` rows); on SQLite a capture that arrives meanwhile
waits for the chunk being written. Larger chunks commit less often (less CPU per row)
but may hold the database longer. For each size given, a fresh SQLite database, a real
API server on it and ``baton import leads`` of ``--rows`` rows as its own process; while
it runs, ``--clients`` connections each post one new lead every ``--every`` seconds
(a steady stream of web-form captures, not a flood), and for 5 s before it as a
baseline. Prints, per size, the import's CPU
seconds (its own process, start-up included) and wall seconds, and the captures' p50,
p99 and max latency and any answer but 201 (a 503 is a capture that gave up waiting).
``--rounds N`` runs every size N times, the order rotated each round; medians shown,
the load average beside each run.

    python bench/import_chunks.py                       # 1000, 2000, 4000; 100,000 rows
    python bench/import_chunks.py --sizes 1000,4000 --rounds 3
"""

from __future__ import annotations

import argparse
import importlib
import os
import resource
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import NamedTuple

import httpx
from rich.console import Console
from rich.table import Table

from _common import bench_token, context, database, machine

write_csv = importlib.import_module("import").write_csv  # bench/import.py's realistic leads
server = importlib.import_module("sqlite_writers").server  # the API on a SQLite file
console = Console()


class Run(NamedTuple):
    size: int
    cpu: float
    seconds: float
    latencies: list[float]
    failures: int
    load: float
    alone: list[float]


def paced(
    base: str,
    token: str,
    tag: str,
    every: float,
    until: threading.Event,
    out: list[float],
    failed: list[int],
) -> None:
    """One connection posting a new lead every ``every`` seconds until ``until``."""
    with httpx.Client(
        base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=120
    ) as client:
        index = 0
        while not until.is_set():
            index += 1
            began = time.perf_counter()
            answer = client.post(
                "/api/v1/leads",
                json={"email": f"{tag}-{index}@paced{index % 97}.example.com", "source": "web"},
            )
            took = time.perf_counter() - began
            out.append(took)
            if answer.status_code != 201:
                failed.append(answer.status_code)
            until.wait(max(0.0, every - took))


def one(size: int, rows: int, csv_path: Path, clients: int, every: float, jobs: int) -> Run:
    with database("sqlite") as url:
        ctx = context(url)
        token = bench_token(ctx, ["leads:write"])
        ctx.engine.dispose()
        errors = Path(url.removeprefix("sqlite:///")).parent / "errors.csv"
        with server(url) as base:
            warm: list[float] = []
            done = threading.Event()
            threading.Timer(1.0, done.set).start()
            paced(base, token, "warm", 0.02, done, warm, [])
            alone: list[float] = []
            stop = threading.Event()
            threading.Timer(5.0, stop.set).start()
            quiet = [
                threading.Thread(
                    target=paced, args=(base, token, f"a{size}-{n}", every, stop, alone, [])
                )
                for n in range(clients)
            ]
            for thread in quiet:
                thread.start()
            for thread in quiet:
                thread.join()
            latencies: list[float] = []
            failed: list[int] = []
            finished = threading.Event()
            threads = [
                threading.Thread(
                    target=paced,
                    args=(base, token, f"c{size}-{n}", every, finished, latencies, failed),
                )
                for n in range(clients)
            ]
            env = {
                **os.environ,
                "BATON_DATABASE_URL": url,
                "BATON_ENV": "test",
                "BATON_IMPORT_CHUNK_ROWS": str(size),
            }
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            began = time.perf_counter()
            importer = subprocess.Popen(  # a fixed command line, no shell
                [
                    sys.executable,
                    "-m",
                    "baton.cli",
                    "import",
                    "leads",
                    str(csv_path),
                    "--errors",
                    str(errors),
                    "--jobs",
                    str(jobs),
                ],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            for thread in threads:
                thread.start()
            _, stderr = importer.communicate()
            seconds = time.perf_counter() - began
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            finished.set()
            for thread in threads:
                thread.join()
            if importer.returncode not in (0, 1):
                raise SystemExit(f"the import failed: {stderr[-2000:]}")
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return Run(size, cpu, seconds, latencies, len(failed), os.getloadavg()[0], alone)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--sizes", default="1000,2000,4000")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument(
        "--every", type=float, default=0.1, help="Seconds between a client's posts."
    )
    parser.add_argument("--jobs", type=int, default=1)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    runs: dict[int, list[Run]] = {size: [] for size in sizes}
    with database("sqlite") as folder_url:
        csv_path = Path(folder_url.removeprefix("sqlite:///")).parent / "leads.csv"
        write_csv(csv_path, args.rows)
        for round_ in range(args.rounds):
            order = sizes[round_ % len(sizes) :] + sizes[: round_ % len(sizes)]
            for size in order:
                run = one(size, args.rows, csv_path, args.clients, args.every, args.jobs)
                runs[size].append(run)
                ordered = sorted(run.latencies)
                console.print(
                    f"round {round_ + 1} size {size}: import cpu {run.cpu:.2f} s wall "
                    f"{run.seconds:.2f} s; {len(ordered)} captures p50 "
                    f"{ordered[len(ordered) // 2] * 1000:.0f} ms p99 "
                    f"{ordered[int(0.99 * len(ordered))] * 1000:.0f} ms max "
                    f"{ordered[-1] * 1000:.0f} ms, {run.failures} failed; load {run.load:.1f}; "
                    f"5 s before the import: max {max(run.alone) * 1000:.0f} ms"
                )
    table = Table(
        title=f"Captures during an import of {args.rows:,} rows on SQLite, "
        f"{args.clients} clients every {args.every} s, --jobs {args.jobs} ({machine()})"
    )
    for column in (
        "chunk rows",
        "import CPU s",
        "import wall s",
        "captures",
        "failed",
        "p50 ms",
        "p99 ms",
        "max ms",
    ):
        table.add_column(column, justify="right")
    for size, done in runs.items():
        every = sorted(x for run in done for x in run.latencies)
        table.add_row(
            f"{size:,}",
            f"{statistics.median(r.cpu for r in done):.2f}",
            f"{statistics.median(r.seconds for r in done):.2f}",
            f"{len(every):,}",
            f"{sum(r.failures for r in done)}",
            f"{every[len(every) // 2] * 1000:.0f}",
            f"{every[int(0.99 * len(every))] * 1000:.0f}",
            f"{every[-1] * 1000:.0f}",
        )
    alone = sorted(x for done in runs.values() for run in done for x in run.alone)
    table.add_row(
        "no import",
        "",
        "",
        f"{len(alone):,}",
        "",
        f"{alone[len(alone) // 2] * 1000:.0f}",
        f"{alone[int(0.99 * len(alone))] * 1000:.0f}",
        f"{alone[-1] * 1000:.0f}",
    )
    console.print(table)
    console.print(f"medians of {args.rounds} round(s); load average now {os.getloadavg()}")


if __name__ == "__main__":
    main()
