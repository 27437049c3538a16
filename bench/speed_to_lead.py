"""Speed to lead, end to end: from a demo request over HTTP to the rep's email.

Real processes, as in production: a fresh database (SQLite in a temporary folder, a
throw-away PostgreSQL with ``--backend postgresql``, or the database of
``--database-url``), ``baton init``, a contract written here (a ``demo_request``
hands the lead over at once; one routing rule sends every lead to a team whose reps
work around the clock, so nobody is ever out of hours), then
``baton serve`` and ``baton worker`` started as separate processes, the worker sending
through an SMTP server (aiosmtpd) that runs on loopback inside this benchmark.

For each of N leads, one after the other with a short random pause: capture the lead
(``POST /api/v1/leads``), then post its ``demo_request`` (``POST /api/v1/activities``)
and measure from just before that request until the SMTP server has received the
rep's email for that lead (the arrival is timed in the SMTP handler, matched by the
lead's name in the subject and checked against the ``X-Baton-Handoff`` header). The
split: the HTTP answer (scoring, MQL, routing, outbox write), the rest (the worker
noticing the outbox row, rendering, SMTP), and the system's own record of it
(``handoffs.notified_at - mql_at``, read from the database afterwards).

    python bench/speed_to_lead.py                       # 200 leads, SQLite
    python bench/speed_to_lead.py --leads 50 --poll 0.2 --backend postgresql
    python bench/speed_to_lead.py --database-url postgresql+psycopg://u:pw@host/scratch

``--database-url`` writes into that database (a team, reps, leads, and a contract that
becomes the active one): give it a scratch database.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import message_from_bytes, policy
from pathlib import Path
from types import FrameType
from typing import Any

import httpx
from aiosmtpd.controller import Controller
from rich.console import Console
from rich.table import Table
from sqlalchemy import select

from _common import BENCH, MARIA, SAM, database, machine, stop
from baton.config import Settings
from baton.domain.access import Role
from baton.domain.reps import RepCreate, TeamCreate
from baton.domain.users import TokenCreate, UserCreate
from baton.services.context import open_context
from baton.services.contracts import activate_contract, approve_contract, create_contract
from baton.services.reps import create_rep, create_team
from baton.services.users import add_user, create_token
from baton.store.tables import handoffs

TARGET_P99_S = 1.0
HOST = "127.0.0.1"
ALWAYS = {day: ["00:00-24:00"] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
ZONES = ("America/Los_Angeles", "America/New_York", "Europe/Berlin", "Asia/Tokyo")

CONTRACT = """\
schema_version: 1
name: Speed-to-lead benchmark
description: Every demo request goes to the {team} team at once.
mql:
  threshold: 1000
  hand_raise: [demo_request]
routing:
  account_matching: false
  rules:
    - name: Everyone
      pool: {{team: {team}}}
      strategy: round_robin
"""


# --- the SMTP server ---------------------------------------------------------------------


@dataclass
class Arrival:
    at: float
    """``time.perf_counter()`` when the message was fully received."""
    handoff_id: int | None
    topic: str | None
    subject: str
    recipients: tuple[str, ...]


@dataclass
class Inbox:
    arrivals: list[Arrival] = field(default_factory=list)
    changed: threading.Condition = field(default_factory=threading.Condition)

    def wait_for(self, needle: str, timeout: float) -> Arrival | None:
        """The first ``handoff.assigned`` message whose subject contains ``needle``."""

        def found() -> Arrival | None:
            return next(
                (a for a in self.arrivals if a.topic == "handoff.assigned" and needle in a.subject),
                None,
            )

        with self.changed:
            self.changed.wait_for(found, timeout)
            return found()


class Handler:
    """aiosmtpd handler: timestamps each message as soon as its data is in."""

    def __init__(self, inbox: Inbox) -> None:
        self.inbox = inbox

    async def handle_DATA(  # noqa: N802 (aiosmtpd's hook name)
        self, server: Any, session: Any, envelope: Any
    ) -> str:
        at = time.perf_counter()
        content = envelope.original_content or envelope.content
        message = message_from_bytes(content.replace(b"\r\n", b"\n"), policy=policy.default)
        handoff = message.get("X-Baton-Handoff")
        arrival = Arrival(
            at=at,
            handoff_id=int(handoff) if handoff and str(handoff).isdigit() else None,
            topic=message.get("X-Baton-Topic"),
            subject=str(message.get("Subject", "")),
            recipients=tuple(envelope.rcpt_tos),
        )
        with self.inbox.changed:
            self.inbox.arrivals.append(arrival)
            self.inbox.changed.notify_all()
        return "250 Message accepted for delivery"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.contextmanager
def smtp_server(inbox: Inbox) -> Iterator[int]:
    """aiosmtpd on loopback; yields its port. (aiosmtpd cannot listen on port 0, so
    take a free port and retry if another process grabs it first.)"""
    for attempt in range(5):
        port = free_port()
        controller = Controller(Handler(inbox), hostname=HOST, port=port)
        try:
            controller.start()
        except (OSError, RuntimeError):
            if attempt == 4:
                raise
            continue
        try:
            yield port
        finally:
            controller.stop()
        return


# --- the Baton processes -----------------------------------------------------------------


def baton_command() -> list[str]:
    script = Path(sys.executable).parent / "baton"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from baton.cli import main; main()"]


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def tail(self, lines: int = 30) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


@contextlib.contextmanager
def started(name: str, args: list[str], env: dict[str, str], folder: Path) -> Iterator[Process]:
    """A ``baton`` subcommand as a process of its own (own process group), stopped with
    SIGTERM (then SIGKILL) when the block ends, whatever ends it."""
    log = folder / f"{name}.log"
    with log.open("wb") as out:
        popen = subprocess.Popen(  # a fixed command line, no shell
            [*baton_command(), *args],
            env=env,
            cwd=folder,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    process = Process(name, popen, log)
    try:
        yield process
    finally:
        stop(popen)


def wait_healthy(base: str, processes: list[Process], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        for process in processes:
            if process.popen.poll() is not None:
                raise SystemExit(
                    f"baton {process.name} exited with {process.popen.returncode}:\n"
                    + process.tail()
                )
        try:
            if httpx.get(f"{base}/healthz", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"{base}/healthz did not answer within {timeout:g} s")
        time.sleep(0.1)


def prepare(url: str, env: dict[str, str], folder: Path, team: str, reps: int) -> str:
    """``baton init``, then the contract, the team and its reps through the services, and
    an admin user (named after the team, so a reused scratch database takes it) with an
    API token for the requests; returns the token."""
    init = subprocess.run(  # a fixed command line, no shell
        [*baton_command(), "init"], env=env, cwd=folder, capture_output=True, check=False
    )
    if init.returncode != 0:
        raise SystemExit("baton init failed:\n" + (init.stdout + init.stderr).decode())
    ctx = open_context(Settings(database_url=url, env="test"))
    try:
        version = create_contract(ctx, CONTRACT.format(team=team), actor=BENCH).version
        approve_contract(ctx, version, role="marketing", actor=MARIA)
        approve_contract(ctx, version, role="sales", actor=SAM)
        activate_contract(ctx, version, actor=BENCH)
        create_team(ctx, TeamCreate(name=team), actor=BENCH)
        for i in range(reps):
            create_rep(
                ctx,
                RepCreate.model_validate(
                    {
                        "email": f"rep{i}-{team}@sales.example.com",
                        "name": f"Rep {i}",
                        "team": team,
                        "timezone": ZONES[i % len(ZONES)],
                        "working_hours": ALWAYS,
                        "capacity": 100_000,
                    }
                ),
                actor=BENCH,
            )
        user, _ = add_user(
            ctx,
            UserCreate(email=f"{team}@bench.example.com", display_name="Bench", role=Role.ADMIN),
            actor=BENCH,
            password=secrets.token_urlsafe(16),
        )
        _, secret = create_token(
            ctx, TokenCreate(name="bench", scopes=["admin"], user_email=user.email), actor=BENCH
        )
        return secret
    finally:
        ctx.engine.dispose()


# --- the measurement ---------------------------------------------------------------------


@dataclass
class Sample:
    lead_id: int
    total: float
    """Seconds from just before the demo request to the email's arrival."""
    http: float
    """Seconds until the demo request was answered."""
    handoff_id: int | None


def one_lead(client: httpx.Client, inbox: Inbox, index: int, token: str, timeout: float) -> Sample:
    name = f"Lead{index:05d}x{token}"
    captured = client.post(
        "/api/v1/leads",
        json={
            "email": f"speed{index}-{token}@company{index % 97}.example.com",
            "first_name": "Speedy",
            "last_name": name,
            "company": f"Company {index % 97}",
            "country": "US",
            "title": "Head of Data",
        },
    )
    captured.raise_for_status()
    lead_id = int(captured.json()["lead"]["id"])
    body = {
        "lead_id": lead_id,
        "type": "demo_request",
        "occurred_at": datetime.now(UTC).isoformat(),
        "properties": {"form": "book-a-demo"},
        "idempotency_key": f"demo-{token}-{index}",
    }
    began = time.perf_counter()
    answer = client.post("/api/v1/activities", json=body)
    answered = time.perf_counter()
    answer.raise_for_status()
    arrival = inbox.wait_for(f" {name} ", timeout)
    if arrival is None:
        raise SystemExit(f"no email for lead {lead_id} ({name}) within {timeout:g} s")
    return Sample(lead_id, arrival.at - began, answered - began, arrival.handoff_id)


def system_delays(url: str, lead_ids: list[int]) -> dict[int, tuple[int, float | None]]:
    """Per lead: its handoff id and ``notified_at - mql_at`` in seconds."""
    ctx = open_context(Settings(database_url=url, env="test"), migrate=False)
    try:
        with ctx.read() as connection:
            rows = connection.execute(
                select(
                    handoffs.c.lead_id, handoffs.c.id, handoffs.c.mql_at, handoffs.c.notified_at
                ).where(handoffs.c.lead_id.in_(lead_ids))
            ).all()
    finally:
        ctx.engine.dispose()
    return {
        lead: (handoff, (notified - mql).total_seconds() if notified else None)
        for lead, handoff, mql, notified in rows
    }


def row(label: str, seconds: list[float]) -> list[str]:
    ordered = sorted(seconds)

    def at(fraction: float) -> str:
        index = min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))
        return f"{ordered[index] * 1000:,.0f} ms"

    return [
        label,
        f"{len(ordered)}",
        at(0.50),
        at(0.90),
        at(0.99),
        f"{ordered[-1] * 1000:,.0f} ms",
        f"{statistics.fmean(ordered) * 1000:,.0f} ms",
    ]


def _interrupted(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # so that every ``finally`` stops what it started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=3, help="Leads sent first, not measured")
    parser.add_argument(
        "--pause", type=float, default=0.1, help="Mean seconds between leads (randomized ±50%%)"
    )
    parser.add_argument(
        "--poll", type=float, default=0.05, help="BATON_WORKER_POLL_SECONDS of the worker"
    )
    parser.add_argument("--reps", type=int, default=4)
    parser.add_argument("--timeout", type=float, default=30.0, help="Seconds to wait per email")
    parser.add_argument(
        "--database-url",
        help="Use this (scratch!) database, e.g. postgresql+psycopg://user:pw@host/scratch",
    )
    parser.add_argument(
        "--backend",
        choices=("sqlite", "postgresql"),
        default="sqlite",
        help="Without --database-url: a fresh SQLite file, or a throw-away PostgreSQL"
        " (pgserver, as the other benchmarks)",
    )
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _interrupted)
    console = Console()
    token = secrets.token_hex(3)
    team = f"speed-{token}"
    rng = random.Random(1)
    inbox = Inbox()
    with (
        tempfile.TemporaryDirectory(prefix="baton-bench-") as tmp,
        contextlib.nullcontext(args.database_url)
        if args.database_url
        else database(args.backend) as url,
        smtp_server(inbox) as smtp_port,
    ):
        folder = Path(tmp)
        port = free_port()
        base = f"http://{HOST}:{port}"
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("BATON_")},
            "BATON_DATABASE_URL": url,
            "BATON_HOST": HOST,
            "BATON_PORT": str(port),
            "BATON_PUBLIC_URL": base,
            "BATON_SMTP_HOST": HOST,
            "BATON_SMTP_PORT": str(smtp_port),
            "BATON_WORKER_POLL_SECONDS": str(args.poll),
            "BATON_LOG_LEVEL": "warning",
        }
        bearer = prepare(url, env, folder, team, args.reps)
        with (
            started("serve", ["serve"], env, folder) as server,
            started("worker", ["worker"], env, folder) as worker,
        ):
            wait_healthy(base, [server, worker])
            samples: list[Sample] = []
            with httpx.Client(
                base_url=base, headers={"Authorization": f"Bearer {bearer}"}
            ) as client:
                try:
                    for index in range(args.warmup + args.leads):
                        sample = one_lead(client, inbox, index, token, args.timeout)
                        if index >= args.warmup:
                            samples.append(sample)
                        time.sleep(args.pause * rng.uniform(0.5, 1.5))
                except (SystemExit, httpx.HTTPError):
                    for process in (server, worker):
                        console.print(f"--- baton {process.name} log ---\n{process.tail()}")
                    raise
        recorded = system_delays(url, [s.lead_id for s in samples])

    mismatched = [s for s in samples if recorded.get(s.lead_id, (None,))[0] != s.handoff_id]
    delays = [d for _, d in recorded.values() if d is not None]
    where = "PostgreSQL" if url.startswith("postgresql") else "SQLite"
    table = Table(
        title=f"Speed to lead, end to end: {len(samples)} demo requests, {where},"
        f" worker polling every {args.poll:g} s ({machine()})"
    )
    table.add_column("measured")
    for column in ("n", "p50", "p90", "p99", "max", "mean"):
        table.add_column(column, justify="right")
    table.add_row(*row("demo request → rep's email at the SMTP server", [s.total for s in samples]))
    table.add_row(*row("  HTTP answer to the demo request", [s.http for s in samples]))
    table.add_row(*row("  answer → email received", [s.total - s.http for s in samples]))
    if delays:
        table.add_row(*row("system delay in the DB (notified_at − mql_at)", delays))
    console.print(table)
    p99 = sorted(s.total for s in samples)[max(0, round(0.99 * len(samples)) - 1)]
    verdict = "[green]met[/]" if p99 < TARGET_P99_S else "[red]missed[/]"
    console.print(
        f"Target p99 < {TARGET_P99_S:g} s: {verdict} (p99 {p99 * 1000:,.0f} ms);"
        f" load average at the end: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores."
    )
    if mismatched or len(delays) < len(samples):
        console.print(
            f"[red]{len(mismatched)} emails did not match their lead's handoff,"
            f" {len(samples) - len(delays)} handoffs have no notified_at[/]"
        )


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        print("interrupted; the server, the worker and the SMTP server were stopped")
        sys.exit(130)
