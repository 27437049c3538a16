"""Inbound hooks under load: real-format payloads to ``/hooks/…`` next to the floor.

Real processes, as in production: a fresh database (SQLite in a temporary folder, a
throw-away PostgreSQL), ``baton init``, one inbound endpoint per kind made with the
intake service, then ``baton serve`` started the way the README tells production users
(one process on SQLite, which has one writer; ``--workers N`` on PostgreSQL, N = the
cores by default). Every request is a platform's documented payload with a unique id
and email (a Google Ads lead-form webhook with its ``google_key``, or a HubSpot Forms
v3 submission; built like ``../shared/datasets/webhook-samples``), so each one is
stored raw, committed, read by the adapter, captured and recorded as an activity.

The floor, measured in the same run with the same load and server settings: a minimal
FastAPI endpoint (one uvicorn process) that validates the same body with Pydantic and
inserts one row into SQLite (WAL, ``synchronous=NORMAL``, as Baton opens SQLite). The
goal (issue 14) is at least half the floor's requests per second.

The load comes from ``wrk`` (Debian's package, a C client that leaves the cores to the
server; installed with apt-get when missing and this runs as root) with a Lua script
that makes each request's ids unique, 8 connections by default; without it, from a
Python asyncio client (httpx), which shares the 2 cores with the server and so
understates every figure. The output says which.

    python bench/hooks.py                         # SQLite and PostgreSQL, 15 s each
    python bench/hooks.py --backend sqlite --seconds 5 --kind hubspot
    python bench/hooks.py --client python         # without wrk

After each run the database is read: requests stored raw, items processed, leads.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from pydantic import BaseModel, Field
from rich.console import Console
from rich.table import Table

from _common import BENCH, Meter, database, free_port, local_server, machine
from speed_to_lead import baton_command, started, wait_healthy

console = Console(width=None if sys.stdout.isatty() else 150)
HOST = "127.0.0.1"
GOOGLE_KEY = "bench-google-key-0123456789"
MARK = "__N__"
"""Replaced in each request by a unique id (run, connection thread, counter)."""
PERSON = ("__FIRST__", "__LAST__", "__COMPANY__", "__PHONE__")
"""Replaced in each request by a name, a company and a phone number drawn at random:
a stream of one person a thousand times over would make every capture compare itself
with every earlier lead (the possible-duplicate check), which no real stream does."""
FIRST = "Ann Bob Carla Dana David Emil Eva Frank Grace Hana Ivan Jonas Julia Karl Lena Liam"
LAST = "Lee Smith Meyer Garcia Novak Rossi Kim Tanaka Brown Weber Silva Khan Dubois Jensen"
SYLLABLES = "nor th wind ac me glo bex ini tech um bre lla stark hoo li vand ley tyr cy ber"
PHONES = (
    "+442079460",
    "+441134960",
    "+441614960",
    "+441174960",
    "+441214960",
    "+441314960",
    "+441414960",
    "+441914980",
)
"""Ofcom's ranges for drama (each followed by three digits): valid, and nobody's."""
TARGET_RATIO = 0.5

GOOGLE = {
    "lead_id": f"bench-{MARK}",
    "campaign_id": 231298,
    "gcl_id": f"Cj0KCQiAbench{MARK}",
    "user_column_data": [
        {
            "column_name": "Full Name",
            "string_value": "__FIRST__ __LAST__",
            "column_id": "FULL_NAME",
        },
        {"column_name": "User Phone", "string_value": "__PHONE__", "column_id": "PHONE_NUMBER"},
        {
            "column_name": "User Email",
            "string_value": f"lead.{MARK}@example.org",
            "column_id": "EMAIL",
        },
        {
            "column_name": "Company Name",
            "string_value": "__COMPANY__",
            "column_id": "COMPANY_NAME",
        },
        {"column_name": "Job Title", "string_value": "VP Finance", "column_id": "JOB_TITLE"},
    ],
    "api_version": "1.0",
    "form_id": 5517,
    "google_key": GOOGLE_KEY,
}
"""Built like the sample's production lead (google-ads-lead-form.json)."""

HUBSPOT = {
    "submittedAt": "1762164862000",
    "fields": [
        {"objectTypeId": "0-1", "name": "email", "value": f"lead.{MARK}@example.com"},
        {"objectTypeId": "0-1", "name": "firstname", "value": "__FIRST__"},
        {"objectTypeId": "0-1", "name": "lastname", "value": "__LAST__"},
        {"objectTypeId": "0-1", "name": "company", "value": "__COMPANY__"},
        {"objectTypeId": "0-1", "name": "jobtitle", "value": "Head of Operations"},
        {"objectTypeId": "0-1", "name": "phone", "value": "__PHONE__"},
        {"objectTypeId": "0-1", "name": "country", "value": "United Kingdom"},
    ],
    "context": {
        "hutk": f"a8baf657400a5c949fda56f6{MARK}",
        "pageUri": "www.northwind-analytics.example.com/demo?utm_source=linkedin",
        "pageName": "Book a demo | Northwind Analytics",
    },
    "legalConsentOptions": {
        "consent": {
            "consentToProcess": True,
            "text": "I'm happy for Northwind Analytics to keep these details.",
            "communications": [],
        }
    },
}
"""Built like the sample's basic Forms v3 submission (hubspot.json)."""

KINDS: dict[str, tuple[str, dict[str, Any]]] = {
    "google": ("google_ads_lead_form", GOOGLE),
    "hubspot": ("hubspot", HUBSPOT),
}


def template(kind: str, run: str) -> str:
    """The body of every request of ``kind``, with :data:`MARK` where the unique id
    goes (prefixed with the run's tag, so a reused database takes the run too)."""
    body = json.dumps(KINDS[kind][1], separators=(",", ":"))
    return body.replace(MARK, f"{run}-{MARK}")


def companies() -> list[str]:
    """400 company names made of two or three syllables (the same every run)."""
    rng = random.Random(14)
    parts = SYLLABLES.split()
    return sorted(
        {"".join(rng.choice(parts) for _ in range(rng.randint(2, 3))).title() for _ in range(500)}
    )[:400]


def filled(body: str, unique: str, rng: random.Random) -> str:
    """``body`` for one request (what the Lua script does for wrk)."""
    values = (
        rng.choice(FIRST.split()),
        rng.choice(LAST.split()),
        rng.choice(companies_cached()),
        f"{rng.choice(PHONES)}{rng.randrange(1000):03d}",
    )
    for mark, value in zip(PERSON, values, strict=True):
        body = body.replace(mark, value)
    return body.replace(MARK, unique)


_COMPANIES: list[str] = []


def companies_cached() -> list[str]:
    if not _COMPANIES:
        _COMPANIES.extend(companies())
    return _COMPANIES


def lua_list(values: list[str]) -> str:
    return "{" + ", ".join(json.dumps(v) for v in values) + "}"


# --- the floor ----------------------------------------------------------------------------


class Column(BaseModel):
    column_name: str | None = None
    string_value: str = Field(max_length=1000)
    column_id: str | None = None


class GoogleLead(BaseModel):
    lead_id: str = Field(min_length=1, max_length=300)
    user_column_data: list[Column] = Field(max_length=100)
    api_version: str
    form_id: int
    campaign_id: int
    google_key: str
    gcl_id: str | None = None


class HubSpotField(BaseModel):
    objectTypeId: str | None = None  # noqa: N815 (HubSpot's name)
    name: str
    value: str | int | bool


class HubSpotForm(BaseModel):
    submittedAt: str  # noqa: N815
    fields: list[HubSpotField] = Field(max_length=200)
    context: dict[str, Any] = {}
    legalConsentOptions: dict[str, Any] = {}  # noqa: N815


def floor_app(path: str) -> Any:
    """The floor: validate the body with Pydantic, insert one row into SQLite."""
    from fastapi import FastAPI

    local = threading.local()

    def connection() -> sqlite3.Connection:
        found = getattr(local, "connection", None)
        if found is None:
            found = sqlite3.connect(path, timeout=30, isolation_level=None)
            found.execute("PRAGMA journal_mode=WAL")
            found.execute("PRAGMA synchronous=NORMAL")
            local.connection = found
        return found

    setup = sqlite3.connect(path)
    setup.execute("CREATE TABLE IF NOT EXISTS leads (id INTEGER PRIMARY KEY, key TEXT, body TEXT)")
    setup.commit()
    setup.close()
    app = FastAPI()

    @app.post("/floor/google", status_code=201)
    def google(lead: GoogleLead) -> dict[str, bool]:
        connection().execute(
            "INSERT INTO leads (key, body) VALUES (?, ?)", (lead.lead_id, lead.model_dump_json())
        )
        return {"ok": True}

    @app.post("/floor/hubspot", status_code=201)
    def hubspot(form: HubSpotForm) -> dict[str, bool]:
        connection().execute(
            "INSERT INTO leads (key, body) VALUES (?, ?)",
            (form.submittedAt, form.model_dump_json()),
        )
        return {"ok": True}

    @app.get("/healthz")
    def healthz() -> dict[str, bool]:
        return {"ok": True}

    return app


def serve_floor(port: int, path: str, log_level: str) -> None:
    import uvicorn

    uvicorn.run(floor_app(path), host=HOST, port=port, log_level=log_level)


# --- the load -----------------------------------------------------------------------------


@dataclass
class Load:
    client: str
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int
    detail: str = ""

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


LUA = """
local template = [==[%(template)s]==]
local path = "%(path)s"
local first = %(first)s
local last = %(last)s
local companies = %(companies)s
local phones = %(phones)s
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end
function init(args)
  n = 0
  math.randomseed(tid * 7919 + os.time())
end
local function pick(list)
  return list[math.random(#list)]
end
function request()
  n = n + 1
  local body = (template:gsub("%(mark)s", tid .. "-" .. n))
  body = (body:gsub("__FIRST__", pick(first)))
  body = (body:gsub("__LAST__", pick(last)))
  body = (body:gsub("__COMPANY__", pick(companies)))
  body = (body:gsub("__PHONE__", pick(phones) .. string.format("%%03d", math.random(0, 999))))
  return wrk.format("POST", path, %(headers)s, body)
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH {\\"requests\\":%%d,\\"duration_us\\":%%d,\\"p50_us\\":%%d,\\"p99_us\\":%%d," ..
    "\\"connect\\":%%d,\\"read\\":%%d,\\"write\\":%%d,\\"status\\":%%d,\\"timeout\\":%%d}\\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect, e.read, e.write, e.status, e.timeout))
end
"""


def wrk_binary(allow_install: bool) -> str | None:
    """``wrk``, installed from Debian's packages when missing (as root, like ./run does
    for chromium)."""
    found = shutil.which("wrk")
    if found or not allow_install:
        return found
    if hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get"):
        console.print("[dim]installing Debian's wrk with apt-get…[/]")
        for command in (["apt-get", "install", "-y", "-qq", "wrk"], ["apt-get", "update", "-qq"]):
            subprocess.run(command, capture_output=True, check=False)  # fixed command lines
            found = shutil.which("wrk")
            if found:
                return found
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], capture_output=True, check=False)
    return shutil.which("wrk")


def run_wrk(
    wrk: str,
    base: str,
    path: str,
    body: str,
    connections: int,
    seconds: float,
    folder: Path,
    headers: dict[str, str] | None = None,
) -> Load:
    script = folder / f"load-{time.monotonic_ns()}.lua"
    sent = {"Content-Type": "application/json", **(headers or {})}
    script.write_text(
        LUA
        % {
            "headers": "{"
            + ", ".join(f"[{json.dumps(k)}] = {json.dumps(v)}" for k, v in sent.items())
            + "}",
            "template": body,
            "path": path,
            "mark": MARK,
            "first": lua_list(FIRST.split()),
            "last": lua_list(LAST.split()),
            "companies": lua_list(companies_cached()),
            "phones": lua_list(list(PHONES)),
        }
    )
    threads = max(1, min(connections, 2))
    done = subprocess.run(  # a fixed command line, no shell
        [
            wrk,
            f"-t{threads}",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "--timeout",
            "10s",
            "-s",
            str(script),
            base + path,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    found = re.search(r"^BENCH (\{.*\})$", done.stdout, re.MULTILINE)
    if done.returncode != 0 or found is None:
        raise SystemExit(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    figures = json.loads(found.group(1))
    errors = sum(figures[k] for k in ("connect", "read", "write", "status", "timeout"))
    detail = ", ".join(
        f"{k} {figures[k]}" for k in ("status", "timeout", "connect", "read", "write") if figures[k]
    )
    return Load(
        client="wrk",
        requests=int(figures["requests"]) - int(figures["status"]),
        seconds=figures["duration_us"] / 1e6,
        p50_ms=figures["p50_us"] / 1000,
        p99_ms=figures["p99_us"] / 1000,
        errors=errors,
        detail=detail,
    )


def run_python(
    base: str,
    path: str,
    body: str,
    connections: int,
    seconds: float,
    headers: dict[str, str] | None = None,
) -> Load:
    """The fallback client: ``connections`` keep-alive connections in one asyncio loop."""
    sent = {"Content-Type": "application/json", **(headers or {})}
    latencies: list[float] = []
    errors: dict[str, int] = {}

    async def one(client: httpx.AsyncClient, worker: int, deadline: float) -> None:
        n = 0
        rng = random.Random(worker)
        while time.perf_counter() < deadline:
            n += 1
            content = filled(body, f"py{worker}-{n}", rng).encode()
            began = time.perf_counter()
            try:
                answer = await client.post(path, content=content, headers=sent)
            except httpx.HTTPError as error:
                errors[type(error).__name__] = errors.get(type(error).__name__, 0) + 1
                continue
            if 200 <= answer.status_code < 300:
                latencies.append(time.perf_counter() - began)
            else:
                key = f"HTTP {answer.status_code}"
                errors[key] = errors.get(key, 0) + 1

    async def main() -> float:
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        async with httpx.AsyncClient(base_url=base, limits=limits, timeout=10) as client:
            began = time.perf_counter()
            deadline = began + seconds
            await asyncio.gather(*(one(client, i, deadline) for i in range(connections)))
            return time.perf_counter() - began

    took = asyncio.run(main())
    ordered = sorted(latencies) or [0.0]
    return Load(
        client="python",
        requests=len(latencies),
        seconds=took,
        p50_ms=statistics.median(ordered) * 1000,
        p99_ms=ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000,
        errors=sum(errors.values()),
        detail=", ".join(f"{k} {v}" for k, v in errors.items()),
    )


def load(
    wrk: str | None,
    base: str,
    path: str,
    body: str,
    connections: int,
    seconds: float,
    folder: Path,
    headers: dict[str, str] | None = None,
) -> Load:
    # A short warm-up, not measured (imports, first connections, SQLite's caches).
    rng = random.Random()
    with httpx.Client(base_url=base, timeout=10) as client:
        for i in range(20):
            client.post(
                path,
                content=filled(body, f"warm{time.monotonic_ns()}-{i}", rng).encode(),
                headers={"Content-Type": "application/json", **(headers or {})},
            )
    if wrk:
        return run_wrk(wrk, base, path, body, connections, seconds, folder, headers)
    return run_python(base, path, body, connections, seconds, headers)


# --- Baton ------------------------------------------------------------------------------


@contextlib.contextmanager
def baton_server(url: str, folder: Path, processes: int, log_level: str) -> Iterator[str]:
    port = free_port()
    env = {
        **os.environ,
        "BATON_DATABASE_URL": url,
        "BATON_ENV": "test",
        "BATON_LOG_LEVEL": log_level,
        "BATON_SECRET_KEY": "bench-secret-key-0123456789-0123456789",
    }
    init = subprocess.run(  # a fixed command line, no shell
        [*baton_command(), "init"], env=env, cwd=folder, capture_output=True, check=False
    )
    if init.returncode != 0:
        raise SystemExit("baton init failed:\n" + (init.stdout + init.stderr).decode())
    make_endpoints(url)
    args = ["serve", "--host", HOST, "--port", str(port)]
    if processes > 1:
        args += ["--workers", str(processes)]
    with started("serve", args, env, folder) as process:
        base = f"http://{HOST}:{port}"
        wait_healthy(base, [process])
        yield base


def make_endpoints(url: str) -> None:
    from baton.config import Settings
    from baton.services import intake as intake_service
    from baton.services.context import open_context

    ctx = open_context(Settings(database_url=url, env="test"), migrate=False)
    try:
        for name, (kind, _) in KINDS.items():
            intake_service.add_endpoint(
                ctx,
                {
                    "name": f"bench-{name}",
                    "kind": kind,
                    "source": f"bench-{name}",
                    "secret": GOOGLE_KEY if kind == "google_ads_lead_form" else None,
                    "rate_per_minute": 100_000,
                },
                actor=BENCH,
            )
    finally:
        ctx.engine.dispose()


def stored(url: str) -> str:
    """What the run left in the database: requests stored raw, items processed, leads."""
    from sqlalchemy import func, select

    from baton.store.engine import make_engine
    from baton.store.tables import intake_items, intake_requests, leads

    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            raw = connection.execute(select(func.count()).select_from(intake_requests)).scalar()
            done = connection.execute(
                select(func.count())
                .select_from(intake_items)
                .where(intake_items.c.status == "processed")
            ).scalar()
            people = connection.execute(select(func.count()).select_from(leads)).scalar()
    finally:
        engine.dispose()
    return f"{raw:,} raw / {done:,} processed / {people:,} leads"


@contextlib.contextmanager
def floor_server(folder: Path, log_level: str) -> Iterator[str]:
    def command(port: int) -> list[str]:
        floor = str(folder / "floor.db")
        return [sys.executable, __file__, "--serve-floor", str(port), floor, log_level]

    with local_server(command, what="the floor server", seconds=30) as base:
        yield base


# --- the run ------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--kind", choices=sorted(KINDS), default="google")
    parser.add_argument("--seconds", type=float, default=15.0, help="Load per measurement")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--client", choices=["auto", "wrk", "python"], default="auto")
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 2,
        help="baton serve --workers on PostgreSQL (SQLite: always one process)",
    )
    parser.add_argument("--log-level", default="warning", help="BATON_LOG_LEVEL of both servers")
    args = parser.parse_args()

    wrk = None if args.client == "python" else wrk_binary(allow_install=True)
    if args.client == "wrk" and wrk is None:
        raise SystemExit("wrk is not installed (apt-get install wrk)")
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    run = f"r{int(time.time())}"
    body = template(args.kind, run)
    client_name = "wrk (C, Debian's package)" if wrk else "Python asyncio client (httpx)"
    console.print(
        f"[bold]/hooks/bench-{args.kind}[/] ({KINDS[args.kind][0]} payloads), "
        f"{args.connections} connections, {args.seconds:g} s each, load from {client_name}; "
        f"{machine()}"
    )
    results: list[tuple[str, Load, str, dict[str, float]]] = []
    with tempfile.TemporaryDirectory(prefix="baton-hooks-") as tmp:
        folder = Path(tmp)
        with floor_server(folder, args.log_level) as base:
            floor = load(
                wrk, base, f"/floor/{args.kind}", body, args.connections, args.seconds, folder
            )
        for backend in backends:
            processes = 1 if backend == "sqlite" else max(1, args.workers)
            with (
                database(backend) as url,
                baton_server(url, folder, processes, args.log_level) as base,
            ):
                meter = Meter.of(url, base)
                before = meter.seconds()
                measured = load(
                    wrk,
                    base,
                    f"/hooks/bench-{args.kind}",
                    body,
                    args.connections,
                    args.seconds,
                    folder,
                )
                after = meter.seconds()
                time.sleep(1)  # the last answers in flight when the load stopped
                results.append(
                    (
                        f"{backend} ({processes} process{'es' if processes > 1 else ''})",
                        measured,
                        stored(url),
                        {part: after[part] - before.get(part, 0.0) for part in after},
                    )
                )

    table = Table(title="Inbound hooks against the floor (same run, same load)")
    columns = ("server", "requests/s", "p50", "p99", "errors", "ratio to floor", "CPU", "stored")
    for column in columns:
        table.add_column(column, justify="left" if column in ("server", "stored") else "right")
    table.add_row(
        "floor: FastAPI + Pydantic + one SQLite insert (1 process)",
        f"{floor.rate:,.0f}",
        f"{floor.p50_ms:.1f} ms",
        f"{floor.p99_ms:.1f} ms",
        f"{floor.errors}" + (f" ({floor.detail})" if floor.detail else ""),
        "1.00",
        "",
        "",
    )
    for name, measured, what, cpu in results:
        ratio = measured.rate / floor.rate if floor.rate else 0.0
        mark = "green" if ratio >= TARGET_RATIO else "red"
        # The warm-up's 20 requests ran between the two readings too.
        answered = measured.requests + 20
        server = cpu.get("HTTP server", 0.0) / answered * 1e3
        database_cpu = cpu.get("PostgreSQL", 0.0) / answered * 1e3
        table.add_row(
            f"baton serve, {name}",
            f"{measured.rate:,.0f}",
            f"{measured.p50_ms:.1f} ms",
            f"{measured.p99_ms:.1f} ms",
            f"{measured.errors}" + (f" ({measured.detail})" if measured.detail else ""),
            f"[{mark}]{ratio:.2f}[/]",
            f"{server:.2f} ms" + (f" + {database_cpu:.2f} ms" if database_cpu else ""),
            what,
        )
    console.print(table)
    console.print(
        f"target: ≥ {TARGET_RATIO} of the floor's requests/s; load from {client_name}. "
        "CPU: per request, of baton serve's processes (+ PostgreSQL's, from /proc)"
    )


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--serve-floor":
        serve_floor(int(sys.argv[2]), sys.argv[3], sys.argv[4])
    else:
        main()
