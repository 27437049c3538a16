"""Single-lead capture over HTTP (``POST /api/v1/leads``) next to the floor of its stack.

Real processes, as in production: a fresh database (SQLite in a temporary folder, a
throw-away PostgreSQL from ``pgserver``), ``baton init``, then ``baton serve`` started
the way the README's operations section tells production users (one process on
SQLite, which has one writer and refuses ``--workers``; ``--workers N`` on
PostgreSQL). An intake key (the capture a website's form sends, ``X-Baton-Intake-Key``)
and an API token with ``leads:write`` (``Authorization: Bearer``) are made with the
services. ``wrk`` (Debian's package, installed with apt-get when missing, as
``bench/hooks.py`` does; its Lua script and helpers are reused from there) sends a new
person per request (a unique email, a name, company and phone drawn at random) at 8
and 64 connections, so every request creates a lead.

THE FLOOR, measured in the same run before Baton and again after it (each ratio is
against the two together: the floor alone moved by a third between runs on this host),
same load, same server settings (uvicorn, the same number of processes): a minimal
FastAPI endpoint that validates the same body with the same Pydantic model
(``LeadCreate``) and inserts one row, into SQLite (WAL, ``synchronous=NORMAL``, as Baton
opens it) for the SQLite ratios and into PostgreSQL (a fresh ``pgserver``, autocommit)
for the PostgreSQL ratios; no authentication. The cost of authentication is Baton with
a token against Baton with an intake key, both against the floor without any.

    python bench/intake_http.py                       # both databases, 15 s each
    python bench/intake_http.py --quick               # 5 s each
    python bench/intake_http.py --backend sqlite --seconds 8
    python bench/intake_http.py --backend postgresql --workers 1,2
    python bench/intake_http.py --profile 300         # cProfile of capture_lead, in process

Errors are wrk's: non-2xx answers (``status``) and socket errors and timeouts.

WHERE THE CPU GOES: each measurement also reads the CPU seconds of the HTTP server's
processes, ``baton worker``'s (the possible-duplicate comparison the captures queue;
the floor has no worker), PostgreSQL's (the postmaster and its backends) and wrk's from
``/proc``, printed per answered request with the cores they kept busy: on two cores the
ratio is a question of CPU per capture, and this says whose.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.table import Table

from _common import BENCH, PARTS, Meter, bench_token, database, local_server, machine
from baton.domain.leads import LeadCreate  # module level: FastAPI reads the annotation
from hooks import HOST, MARK, Load, baton_server, console, load, wrk_binary
from speed_to_lead import started

TARGET_RATIO = 0.5
LEAD = {
    "email": f"lead.{MARK}@example.org",
    "first_name": "__FIRST__",
    "last_name": "__LAST__",
    "company": "__COMPANY__",
    "phone": "__PHONE__",
    "title": "VP Finance",
    "country": "GB",
    "campaign": "bench-form",
    "consent": True,
    "consent_basis": "consent",
    "consent_source": "https://www.example.com/demo",
}
"""A form's capture: a new person per request (the marks are replaced by wrk's Lua)."""


def body(tag: str) -> str:
    """The request body with the measurement's ``tag`` before each unique id, so every
    measurement against one database creates new leads, never updates."""
    return json.dumps(LEAD, separators=(",", ":")).replace(MARK, f"{tag}-{MARK}")


# --- the floor ----------------------------------------------------------------------------


def floor_app() -> Any:
    """The floor (a uvicorn factory; ``FLOOR_DATABASE`` names the database): validate
    the body with ``LeadCreate``, insert one row, answer 201."""
    from fastapi import FastAPI

    url = os.environ["FLOOR_DATABASE"]
    local = threading.local()
    if url.startswith("sqlite"):
        import sqlite3

        path = url.removeprefix("sqlite:///")
        setup = sqlite3.connect(path)
        setup.execute("PRAGMA journal_mode=WAL")
        setup.execute(
            "CREATE TABLE IF NOT EXISTS floor_leads"
            " (id INTEGER PRIMARY KEY, email TEXT UNIQUE, body TEXT)"
        )
        setup.commit()
        setup.close()
        sql = "INSERT INTO floor_leads (email, body) VALUES (?, ?)"

        def connection() -> Any:
            found = getattr(local, "connection", None)
            if found is None:
                found = sqlite3.connect(path, timeout=30, isolation_level=None)
                found.execute("PRAGMA journal_mode=WAL")
                found.execute("PRAGMA synchronous=NORMAL")
                local.connection = found
            return found

    else:
        import psycopg

        with psycopg.connect(url, autocommit=True) as setup_pg:
            setup_pg.execute(
                "CREATE TABLE IF NOT EXISTS floor_leads"
                " (id BIGSERIAL PRIMARY KEY, email TEXT UNIQUE, body JSONB)"
            )
        sql = "INSERT INTO floor_leads (email, body) VALUES (%s, %s)"

        def connection() -> Any:
            found = getattr(local, "connection", None)
            if found is None:
                found = psycopg.connect(url, autocommit=True)
                local.connection = found
            return found

    app = FastAPI()

    @app.post("/floor/leads", status_code=201)
    def capture(lead: LeadCreate) -> dict[str, bool]:
        connection().execute(sql, (lead.email, lead.model_dump_json()))
        return {"ok": True}

    @app.get("/healthz")
    def healthz() -> dict[str, bool]:
        return {"ok": True}

    return app


@contextlib.contextmanager
def floor_server(url: str, processes: int, log_level: str) -> Iterator[str]:
    """The floor served as ``baton serve`` serves Baton: ``uvicorn.run`` with
    ``processes`` workers and the same log level."""

    def command(port: int) -> list[str]:
        code = (
            "import uvicorn; uvicorn.run('intake_http:floor_app', factory=True, "
            f"host={HOST!r}, port={port}, workers={processes}, log_level={log_level!r})"
        )
        return [sys.executable, "-c", code]

    env = {**os.environ, "FLOOR_DATABASE": url, "PYTHONPATH": str(Path(__file__).parent)}
    with local_server(command, what="the floor server", env=env) as base:
        yield base


# --- Baton's credentials ------------------------------------------------------------------


def api_token(url: str) -> dict[str, str]:
    """An API token with ``leads:write``, as a request header."""
    from baton.config import Settings
    from baton.services.context import open_context

    ctx = open_context(Settings(database_url=url, env="test"), migrate=False)
    try:
        token = bench_token(ctx, ["leads:write"])
    finally:
        ctx.engine.dispose()
    return {"Authorization": f"Bearer {token}"}


def intake_key(url: str) -> dict[str, str]:
    """A new intake key at the highest rate a key may have, as a request header.

    Each measurement takes its own: a key's rate is counted over any sliding minute, and
    at about 2,000 captures/s the key's three runs of one minute (key, key again, then
    64 connections) passed the most a key may be given (100,000 a minute): the last
    was answered 429 about 17,500 times."""
    from baton.config import Settings
    from baton.domain.users import MAX_RATE_PER_MINUTE, IntakeKeyCreate
    from baton.services.context import open_context
    from baton.services.users import add_intake_key

    ctx = open_context(Settings(database_url=url, env="test"), migrate=False)
    try:
        _, key = add_intake_key(
            ctx,
            IntakeKeyCreate(
                name=f"bench-form-{time.monotonic_ns()}",
                source="web",
                origins=[],
                rate_per_minute=MAX_RATE_PER_MINUTE,
            ),
            actor=BENCH,
        )
    finally:
        ctx.engine.dispose()
    return {"X-Baton-Intake-Key": key}


def sign_example_contract(url: str) -> None:
    """The repository's example contract, signed and active (``--contract``): each
    capture is then scored by its fit rules, as in a deployment, where the bench's
    default measures the capture with no contract active."""
    from baton.config import Settings
    from baton.services.context import open_context
    from baton.services.demo import sign_demo_contract

    ctx = open_context(Settings(database_url=url, env="test"), migrate=False)
    try:
        if sign_demo_contract(ctx) is None:
            raise SystemExit("--contract: contracts/example.yaml is not in this checkout")
    finally:
        ctx.engine.dispose()


def leads_stored(url: str) -> int:
    from sqlalchemy import func, select

    from baton.store.engine import make_engine
    from baton.store.tables import leads

    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return int(connection.execute(select(func.count()).select_from(leads)).scalar() or 0)
    finally:
        engine.dispose()


def duplicate_work(url: str) -> tuple[int, int]:
    """Leads still waiting for the possible-duplicate comparison, and pairs flagged."""
    from sqlalchemy import func, select

    from baton.store.engine import make_engine
    from baton.store.tables import duplicate_candidates, duplicate_checks

    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            count = [
                int(connection.execute(select(func.count()).select_from(t)).scalar() or 0)
                for t in (duplicate_checks, duplicate_candidates)
            ]
            return count[0], count[1]
    finally:
        engine.dispose()


@contextlib.contextmanager
def worker(url: str, folder: Path, log_level: str) -> Iterator[int]:
    """``baton worker`` beside the server, as in production: it flags the possible
    duplicates the captures queue (and takes its write turns on SQLite meanwhile).
    Yields its process id."""
    env = {
        **os.environ,
        "BATON_DATABASE_URL": url,
        "BATON_ENV": "test",
        # At least info: its start ("worker running") is an info line, and under load it
        # writes one line a minute there.
        "BATON_LOG_LEVEL": log_level if log_level in ("debug", "info") else "info",
        "BATON_SECRET_KEY": "bench-secret-key-0123456789-0123456789",
    }
    with started("worker", ["worker"], env, folder) as process:
        # Measured from when it runs: its start-up (imports, migrations check) is a few
        # CPU seconds that would otherwise fall on the first measurement alone.
        deadline = time.monotonic() + 120
        while "worker running" not in process.tail(5):
            if process.popen.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the worker did not start:\n{process.tail()}")
            time.sleep(0.1)
        yield process.popen.pid  # the leader of its process group


# --- the run ------------------------------------------------------------------------------


@dataclass
class Row:
    backend: str
    processes: int
    server: str
    connections: int
    measured: Load
    load_avg: str
    floor: Load | None = None
    cpu: dict[str, float] | None = None
    """CPU seconds of each of :data:`PARTS` during the measurement."""


def load_average() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.2f}/{five:.2f}"


def measure(
    wrk: str | None,
    base: str,
    path: str,
    connections: int,
    seconds: float,
    folder: Path,
    headers: dict[str, str] | None = None,
    meter: Meter | None = None,
) -> tuple[Load, str, dict[str, float]]:
    tag = f"t{time.monotonic_ns()}"
    before = meter.seconds() if meter else {}
    measured = load(wrk, base, path, body(tag), connections, seconds, folder, headers)
    after = meter.seconds() if meter else {}
    return measured, load_average(), {k: after[k] - before.get(k, 0.0) for k in after}


def run_backend(
    backend: str,
    processes: int,
    wrk: str | None,
    seconds: float,
    connection_counts: list[int],
    folder: Path,
    log_level: str,
    contract: bool = False,
) -> list[Row]:
    rows: list[Row] = []
    floors: dict[int, list[Load]] = {}

    def measure_floor(name: str) -> None:
        with database(backend) as url, floor_server(url, processes, log_level) as base:
            for connections in connection_counts:
                meter = Meter.of(url, base)
                floor, avg, cpu = measure(
                    wrk, base, "/floor/leads", connections, seconds, folder, meter=meter
                )
                floors.setdefault(connections, []).append(floor)
                rows.append(Row(backend, processes, name, connections, floor, avg, cpu=cpu))

    measure_floor("floor, no auth")
    with (
        database(backend) as url,
        baton_server(url, folder, processes, log_level) as base,
        worker(url, folder, log_level) as worker_pid,
    ):
        meter = Meter.of(url, base, worker_pid)
        token = api_token(url)
        if contract:
            sign_example_contract(url)
        before = leads_stored(url)
        created = 0
        for connections in connection_counts:
            # Key, token, key again: the database grows during the run (and each capture's
            # possible-duplicate check with it), so the token is compared with the two key
            # runs that bracket it.
            auth = ["intake key", "token", "intake key, again"]
            for name in auth if connections == min(connection_counts) else ["intake key"]:
                measured, avg, cpu = measure(
                    wrk,
                    base,
                    "/api/v1/leads",
                    connections,
                    seconds,
                    folder,
                    token if name == "token" else intake_key(url),
                    meter,
                )
                created += measured.requests + 20  # the warm-up's requests
                rows.append(
                    Row(
                        backend,
                        processes,
                        f"baton, {name}",
                        connections,
                        measured,
                        avg,
                        None,  # the floors before and after, once both are measured
                        cpu,
                    )
                )
        time.sleep(1)  # answers in flight when the load stopped
        pending, flagged = duplicate_work(url)
        console.print(
            f"[dim]{backend}, {processes} process(es): {leads_stored(url) - before:,} leads "
            f"stored for about {created:,} answered captures; the worker's duplicate lane: "
            f"{pending:,} leads still queued 1 s after the load, {flagged:,} pairs flagged[/]"
        )
    # The floor again, after Baton: on this host it moved between runs by a third (PostgreSQL
    # at 8 connections 1,426-1,524 in some, 1,861-2,156 in others, Baton 825-931 in all), so
    # each ratio is taken against the floor measured before and after it, together.
    measure_floor("floor, no auth, after")
    for row in rows:
        if row.server.startswith("baton"):
            row.floor = bracketing(floors[row.connections])
    return rows


def bracketing(floors: list[Load]) -> Load:
    """The floors measured before and after Baton's measurements as one: their requests
    over their seconds, and the mean of their p50 and p99."""
    return Load(
        floors[0].client,
        sum(f.requests for f in floors),
        sum(f.seconds for f in floors),
        sum(f.p50_ms for f in floors) / len(floors),
        sum(f.p99_ms for f in floors) / len(floors),
        sum(f.errors for f in floors),
    )


def show_cpu(rows: list[Row]) -> None:
    """Where each measurement's CPU went, per answered request: the server's processes,
    ``baton worker`` (the possible-duplicate comparison the captures queue; the floor
    has none), PostgreSQL's processes and ``wrk``; and the cores they kept busy."""
    if not any(row.cpu for row in rows):
        return
    table = Table(
        title="CPU per answered request (µs), same measurements",
        caption="HTTP server: baton serve or the floor, with its processes; worker: baton "
        "worker; PostgreSQL: the postmaster and its backends; cores: all of it over the "
        "measurement's seconds",
    )
    for column in ("database", "proc", "server", "conn", *PARTS, "total", "cores"):
        table.add_column(column, justify="left" if column == "server" else "right")
    for row in rows:
        if not row.cpu or not row.measured.requests:
            continue
        per = {part: row.cpu.get(part, 0.0) / row.measured.requests * 1e6 for part in PARTS}
        total = sum(row.cpu.get(part, 0.0) for part in PARTS)
        table.add_row(
            row.backend,
            str(row.processes),
            row.server,
            str(row.connections),
            *(
                f"{per[part]:,.0f}" if row.backend != "sqlite" or part != "PostgreSQL" else ""
                for part in PARTS
            ),
            f"{total / row.measured.requests * 1e6:,.0f}",
            f"{total / row.measured.seconds:.2f}" if row.measured.seconds else "",
        )
    console.print(table)


def show(rows: list[Row], client: str) -> None:
    table = Table(
        title="POST /api/v1/leads against the floor (same run, same load)",
        caption="ratio = leads/s ÷ the floor's leads/s on the same database, with the same "
        "processes and connections: its runs before and after Baton's together (column "
        "'floor/s used')",
    )
    for column in (
        "database",
        "proc",
        "server",
        "conn",
        "leads/s",
        "p50",
        "p99",
        "errors",
        "ratio",
        "floor/s used",
        "load 1m/5m",
    ):
        table.add_column(column, justify="left" if column == "server" else "right")
    for row in rows:
        m = row.measured
        if row.floor is None:
            ratio, used = "1.00", ""
        else:
            value = m.rate / row.floor.rate if row.floor.rate else 0.0
            mark = "green" if value >= TARGET_RATIO else "red"
            ratio = f"[{mark}]{value:.3f}[/]"
            used = f"{row.floor.rate:,.0f}"
        table.add_row(
            row.backend,
            str(row.processes),
            row.server,
            str(row.connections),
            f"{m.rate:,.0f}",
            f"{m.p50_ms:.1f} ms",
            f"{m.p99_ms:.1f} ms",
            f"{m.errors}" + (f" ({m.detail})" if m.detail else ""),
            ratio,
            used,
            row.load_avg,
        )
    console.print(table)
    show_cpu(rows)
    by = {(r.backend, r.processes, r.server, r.connections): r for r in rows}
    for (backend, processes, server, connections), row in by.items():
        if server != "baton, token":
            continue
        keys = [
            by[(backend, processes, name, connections)].measured
            for name in ("baton, intake key", "baton, intake key, again")
            if (backend, processes, name, connections) in by
        ]
        if not keys or not row.measured.rate or not all(k.rate for k in keys):
            continue
        key_rate = sum(k.rate for k in keys) / len(keys)
        key_p50 = sum(k.p50_ms for k in keys) / len(keys)
        token_ms = 1000 / row.measured.rate * connections
        key_ms = 1000 / key_rate * connections
        console.print(
            f"authentication, {backend} {processes} proc, {connections} conn: token "
            f"{row.measured.rate:,.0f}/s vs intake key {key_rate:,.0f}/s (mean of the runs "
            f"before and after) (≈ {token_ms - key_ms:+.1f} ms per request at that "
            f"concurrency; p50 {row.measured.p50_ms:.1f} vs {key_p50:.1f} ms); "
            f"the floor has no authentication. Both are verified from memory after the "
            f"first request; what a token's capture costs more is its answer: the lead "
            f"read back and serialised (an API client's), where an intake key's is a "
            f"receipt (a web form's)"
        )
    console.print(
        f"target: ≥ {TARGET_RATIO} of the floor's leads/s measured in the same run, each ratio "
        f"against the floor on the same database, processes and connections; load from {client}"
    )


# --- the profile --------------------------------------------------------------------------


def profile(captures: int) -> None:
    """cProfile of ``capture_lead`` in process on SQLite, the statements it sends."""
    import cProfile
    import pstats
    import random

    from sqlalchemy import event

    from _common import context
    from baton.domain.access import Principal
    from baton.services.leads import capture_lead
    from hooks import filled

    rng = random.Random(17)
    template = body("p")
    with database("sqlite") as url:
        ctx = context(url)
        statements = 0

        def count(*_: Any) -> None:
            nonlocal statements
            statements += 1

        event.listen(ctx.engine, "before_cursor_execute", count)
        actor = Principal(kind="intake_key", name="intake:bench-form", source="web", key_id=1)
        payloads = [
            LeadCreate.model_validate_json(filled(template, str(i), rng))
            for i in range(captures + 20)
        ]
        for lead in payloads[:20]:
            capture_lead(ctx, lead, actor=actor)
        statements = 0
        profiler = cProfile.Profile()
        began = time.perf_counter()
        profiler.enable()
        for lead in payloads[20:]:
            capture_lead(ctx, lead, actor=actor)
        profiler.disable()
        took = time.perf_counter() - began
        console.print(
            f"capture_lead in process, SQLite, {captures} new leads: "
            f"{took / captures * 1000:.2f} ms per capture under cProfile, "
            f"{statements / captures:.1f} SQL statements per capture (load {load_average()})"
        )
        resolve(ctx, 500)
        ctx.engine.dispose()
    stats = pstats.Stats(profiler)
    stats.sort_stats("cumulative").print_stats(35)
    stats.sort_stats("tottime").print_stats(15)


def resolve(ctx: Any, times: int) -> None:
    """What authenticating one request costs in process: a token and an intake key
    looked up in the database, and through the per-process cache the API uses."""
    from baton.domain.users import IntakeKeyCreate
    from baton.services.users import (
        add_intake_key,
        cached_principal,
        intake_principal,
        token_principal,
    )

    _, key = add_intake_key(
        ctx,
        IntakeKeyCreate(name="bench-resolve", source="web", origins=[], rate_per_minute=60),
        actor=BENCH,
    )
    token = bench_token(ctx, ["leads:write"])

    def fresh(lookup: Any, credential: str) -> Any:
        ctx.caches.pop("credentials", None)  # as when the cache's few seconds ran out
        return lookup(ctx, credential)

    for name, call in (
        ("token, uncached", lambda: fresh(token_principal, token)),
        ("intake key, uncached", lambda: fresh(intake_principal, key)),
        ("token, cached", lambda: cached_principal(ctx, token)),
        ("intake key, cached", lambda: cached_principal(ctx, key)),
    ):
        token_principal(ctx, token)  # fills the cache for the cached rows
        intake_principal(ctx, key)
        assert call() is not None
        began = time.perf_counter()
        for _ in range(times):
            call()
        took = (time.perf_counter() - began) / times
        console.print(f"authentication in process, SQLite, {name}: {took * 1e6:,.0f} µs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--seconds", type=float, default=15.0, help="load per measurement")
    parser.add_argument("--quick", action="store_true", help="5 s per measurement")
    parser.add_argument("--connections", default="8,64", help="comma-separated")
    parser.add_argument(
        "--workers",
        default=str(os.cpu_count() or 2),
        help="baton serve --workers on PostgreSQL, comma-separated to compare (1,2); "
        "SQLite: always one process",
    )
    parser.add_argument("--log-level", default="warning", help="BATON_LOG_LEVEL of the servers")
    parser.add_argument("--profile", type=int, default=0, metavar="N", help="profile N captures")
    parser.add_argument(
        "--contract",
        action="store_true",
        help="activate the example contract first, so captures are scored as in a deployment",
    )
    args = parser.parse_args()
    if args.profile:
        profile(args.profile)
        return
    seconds = 5.0 if args.quick else args.seconds
    connection_counts = [int(c) for c in args.connections.split(",")]
    wrk = wrk_binary(allow_install=True)
    client = "wrk (C, Debian's package)" if wrk else "Python asyncio client (httpx): understates"
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    console.print(
        f"[bold]POST /api/v1/leads[/], {seconds:g} s per measurement, connections "
        f"{args.connections}, load from {client}; {machine()}; load {load_average()}"
        + ("; the example contract active (captures scored)" if args.contract else "")
    )
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="baton-intake-") as tmp:
        for backend in backends:
            counts = [1] if backend == "sqlite" else [int(w) for w in args.workers.split(",")]
            for processes in counts:
                rows += run_backend(
                    backend,
                    processes,
                    wrk,
                    seconds,
                    connection_counts,
                    Path(tmp),
                    args.log_level,
                    args.contract,
                )
    show(rows, client)


if __name__ == "__main__":
    main()
