"""SQLite under concurrent writes: a burst of captures over HTTP, alone and during a
large ``baton import leads`` run as its own process.

A real uvicorn server on a fresh SQLite file; eight keep-alive connections post new
leads as fast as the server answers. Phase 1: a burst alone. Phase 2: the same eight
connections post without pause for as long as a CLI import of ``--rows`` leads runs.
Prints captures, errors (any answer but 201, e.g. 503 "database is locked"), captures
per second and latency percentiles, and the import's duration.

    python bench/sqlite_writers.py                  # 100,000 rows imported
    python bench/sqlite_writers.py --rows 20000 --burst 1000

To compare with another version of Baton, run the same file with that version first on
``PYTHONPATH`` (``PYTHONPATH=/path/to/other/src python bench/sqlite_writers.py``).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

from _common import (
    bench_token,
    context,
    database,
    local_server,
    machine,
)

write_csv = importlib.import_module("import").write_csv  # bench/import.py's realistic leads
console = Console()


def serve(port: int, url: str) -> None:
    """Run the API (in a child process) on ``url``."""
    import uvicorn

    from baton.api.app import create_app
    from baton.config import Settings
    from baton.services.context import open_context

    app = create_app(open_context(Settings(database_url=url, env="test", log_level="warning")))
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


@contextlib.contextmanager
def server(url: str) -> Iterator[str]:
    command = [sys.executable, __file__, "--serve"]
    with local_server(
        lambda port: [*command, str(port), url], what="the server", quiet=False
    ) as base:
        yield base


class Load:
    """Eight connections posting leads until told to stop (or ``requests`` are sent)."""

    def __init__(self, base: str, token: str, connections: int, tag: str) -> None:
        self.base, self.token, self.connections, self.tag = base, token, connections, tag
        self.latencies: list[float] = []
        self.failures: dict[int, int] = {}
        self.elapsed = 0.0
        self._lock = threading.Lock()
        self._counter = 0

    def run(self, *, requests: int | None = None, until: threading.Event | None = None) -> None:
        began = time.perf_counter()
        threads = [
            threading.Thread(target=self._connection, args=(requests, until))
            for _ in range(self.connections)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        self.elapsed = time.perf_counter() - began

    def _next(self, requests: int | None, until: threading.Event | None) -> int | None:
        with self._lock:
            if requests is not None and self._counter >= requests:
                return None
            if until is not None and until.is_set():
                return None
            self._counter += 1
            return self._counter

    def _connection(self, requests: int | None, until: threading.Event | None) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        mine: list[float] = []
        failed: dict[int, int] = {}
        with httpx.Client(base_url=self.base, headers=headers, timeout=120) as client:
            while (index := self._next(requests, until)) is not None:
                began = time.perf_counter()
                answer = client.post(
                    "/api/v1/leads",
                    json={
                        "email": f"{self.tag}-{index}@burst{index % 97}.example.com",
                        "first_name": "Bench",
                        "source": "web",
                    },
                )
                mine.append(time.perf_counter() - began)
                if answer.status_code != 201:
                    failed[answer.status_code] = failed.get(answer.status_code, 0) + 1
        with self._lock:
            self.latencies.extend(mine)
            for code, n in failed.items():
                self.failures[code] = self.failures.get(code, 0) + n

    def row(self, name: str) -> list[str]:
        ordered = sorted(self.latencies)

        def at(p: float) -> str:
            return f"{ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000:,.0f}"

        errors = sum(self.failures.values())
        codes = ", ".join(f"{n} × {code}" for code, n in sorted(self.failures.items()))
        return [
            name,
            f"{len(ordered):,}",
            f"{errors:,}" + (f" ({codes})" if codes else ""),
            f"{len(ordered) / self.elapsed:,.0f}",
            at(0.50),
            at(0.99),
            f"{ordered[-1] * 1000:,.0f}",
        ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000, help="Leads the CLI imports.")
    parser.add_argument("--burst", type=int, default=2000, help="Captures in the burst alone.")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--serve", nargs=2, metavar=("PORT", "URL"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(int(args.serve[0]), args.serve[1])
        return
    with database("sqlite") as url:
        ctx = context(url)
        token = bench_token(ctx, ["leads:write"])
        ctx.engine.dispose()
        folder = Path(url.removeprefix("sqlite:///")).parent
        csv_path = folder / "leads.csv"
        write_csv(csv_path, args.rows)
        with server(url) as base:
            Load(base, token, args.connections, "warm").run(requests=200)
            alone = Load(base, token, args.connections, "alone")
            alone.run(requests=args.burst)
            during = Load(base, token, args.connections, "during")
            finished = threading.Event()
            env = {**os.environ, "BATON_DATABASE_URL": url, "BATON_ENV": "test"}
            began = time.perf_counter()
            importer = subprocess.Popen(  # a fixed command line, no shell
                [sys.executable, "-m", "baton.cli", "import", "leads", str(csv_path)],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            waiter = threading.Thread(target=lambda: (importer.wait(), finished.set()), daemon=True)
            waiter.start()
            during.run(until=finished)
            import_seconds = time.perf_counter() - began
            if importer.returncode not in (0, 1):
                raise SystemExit(f"the import failed: {importer.stderr.read()[-2000:]}")

    import baton

    where = Path(baton.__file__).parent.parent
    table = Table(
        title=f"Captures over HTTP on SQLite, {args.connections} connections ({machine()})"
    )
    for column in ("phase", "captures", "errors", "captures/s", "p50 ms", "p99 ms", "max ms"):
        table.add_column(column, justify="left" if column == "phase" else "right")
    table.add_row(*alone.row("burst alone"))
    table.add_row(*during.row(f"during an import of {args.rows:,} rows"))
    console.print(table)
    console.print(
        f"import: {args.rows:,} rows in {import_seconds:.1f} s "
        f"({args.rows / import_seconds:,.0f} rows/s, start-up included); Baton from {where}"
    )


if __name__ == "__main__":
    main()
