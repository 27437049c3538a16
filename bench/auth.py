"""What authentication costs: single-lead capture over HTTP with an API token, against
the same server with authentication switched off, in one run.

Two real uvicorn servers are started one after the other on the same database, one
with Baton's authentication and one whose principal dependency is replaced by a fixed
marketing user (the only difference). Eight connections post leads as fast as the
server answers; each mode runs three times, alternating, and the better run counts. Also
times the token check alone (the cached path and the database path) in this process.

    python bench/auth.py                       # PostgreSQL, 8 connections, 2,000 leads a run
    python bench/auth.py --backend sqlite --requests 1000
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import threading
import time
from collections.abc import Iterator

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
from baton.domain.access import Role
from baton.services.users import token_principal

TARGET = 0.10
console = Console()


def serve(mode: str, port: int, url: str) -> None:
    """Run one server (in a child process): ``auth`` as shipped, ``open`` without."""
    import uvicorn

    from baton.api.app import create_app
    from baton.api.deps import get_principal
    from baton.config import Settings
    from baton.domain.access import Principal
    from baton.services.context import open_context

    app = create_app(open_context(Settings(database_url=url, env="test", log_level="warning")))
    if mode == "open":
        fixed = Principal(kind="user", name="bench@example.com", role=Role.MARKETING, user_id=1)

        async def no_authentication() -> Principal:
            return fixed

        app.dependency_overrides[get_principal] = no_authentication
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


@contextlib.contextmanager
def server(mode: str, url: str) -> Iterator[str]:
    command = [sys.executable, __file__, "--serve", mode]
    with local_server(
        lambda port: [*command, str(port), url], what=f"the {mode} server", quiet=False
    ) as base:
        yield base


def load(base: str, token: str, requests: int, connections: int, tag: str) -> list[float]:
    """Post ``requests`` new leads over ``connections`` keep-alive connections; returns
    each request's latency in seconds."""
    latencies: list[float] = []
    lock = threading.Lock()
    counter = iter(range(requests))
    failures: list[str] = []

    def one_connection() -> None:
        with httpx.Client(
            base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30
        ) as client:
            mine: list[float] = []
            while True:
                with lock:
                    index = next(counter, None)
                if index is None:
                    break
                began = time.perf_counter()
                answer = client.post(
                    "/api/v1/leads",
                    json={
                        "email": f"{tag}-{index}@company{index % 97}.example.com",
                        "first_name": "Bench",
                        "source": "webinar",
                    },
                )
                mine.append(time.perf_counter() - began)
                if answer.status_code != 201:
                    failures.append(f"{answer.status_code} {answer.text[:200]}")
            with lock:
                latencies.extend(mine)

    threads = [threading.Thread(target=one_connection) for _ in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise SystemExit(f"{len(failures)} captures failed, e.g. {failures[0]}")
    return latencies


def check_cost(url: str, token: str, rounds: int = 20_000) -> tuple[float, float]:
    """Microseconds per token check: cached, and with the cache off (a database read)."""
    ctx = context(url)
    token_principal(ctx, token)
    began = time.perf_counter()
    for _ in range(rounds):
        token_principal(ctx, token)
    cached = (time.perf_counter() - began) / rounds * 1e6
    ctx.caches.clear()
    ctx.settings.token_cache_seconds = 0
    began = time.perf_counter()
    for _ in range(rounds // 20):
        token_principal(ctx, token)
    uncached = (time.perf_counter() - began) / (rounds // 20) * 1e6
    ctx.engine.dispose()
    return cached, uncached


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("postgresql", "sqlite"), default="postgresql")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3, help="Runs per mode (best counts).")
    parser.add_argument("--serve", nargs=3, metavar=("MODE", "PORT", "URL"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve[0], int(args.serve[1]), args.serve[2])
        return
    with database(args.backend) as url:
        ctx = context(url)
        token = bench_token(ctx, ["leads:write"])
        ctx.engine.dispose()
        runs: dict[str, list[list[float]]] = {"open": [], "auth": []}
        for round_number in range(args.rounds):
            for mode in ("open", "auth"):
                with server(mode, url) as base:
                    load(base, token, 100, args.connections, f"warm{mode}{round_number}")
                    began = time.perf_counter()
                    latencies = load(
                        base, token, args.requests, args.connections, f"{mode}{round_number}"
                    )
                    elapsed = time.perf_counter() - began
                    runs[mode].append([elapsed, *latencies])
        cached, uncached = check_cost(url, token)

    def best(mode: str) -> tuple[float, float, float]:
        elapsed, *latencies = min(runs[mode], key=lambda r: r[0])
        ordered = sorted(latencies)
        return (
            args.requests / elapsed,
            statistics.fmean(latencies) * 1000,
            ordered[max(0, round(0.99 * len(ordered)) - 1)] * 1000,
        )

    open_rate, open_mean, open_p99 = best("open")
    auth_rate, auth_mean, auth_p99 = best("auth")
    where = "PostgreSQL" if args.backend == "postgresql" else "SQLite"
    table = Table(
        title=f"Single-lead capture over HTTP, {args.connections} connections, "
        f"{args.requests:,} leads a run, {where} ({machine()})"
    )
    for column in ("server", "captures/s", "mean ms", "p99 ms"):
        table.add_column(column, justify="right" if column != "server" else "left")
    table.add_row("authentication off", f"{open_rate:,.0f}", f"{open_mean:.1f}", f"{open_p99:.1f}")
    table.add_row("API token", f"{auth_rate:,.0f}", f"{auth_mean:.1f}", f"{auth_p99:.1f}")
    console.print(table)
    share = 1 - auth_rate / open_rate
    verdict = "[green]met[/]" if share < TARGET else "[red]missed[/]"
    console.print(
        f"Authentication costs {share:+.1%} of a capture's throughput (best of "
        f"{args.rounds} runs each; below zero is the noise between runs); "
        f"target < {TARGET:.0%}: {verdict}."
    )
    console.print(
        f"One token check in process: {cached:.1f} µs cached, {uncached:.0f} µs from the "
        f"database (cache off): {cached / (auth_mean * 1000):.2%} and "
        f"{uncached / (auth_mean * 1000):.1%} of a capture's mean latency."
    )
    if os.environ.get("BATON_BENCH_STRICT") and share >= TARGET:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
