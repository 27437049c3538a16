"""Worker lateness: how late SLA steps, webhooks and queued assignments run while the
mail server is down and thousands of emails wait.

Real processes, as in production: a fresh database (a throw-away PostgreSQL by default,
``--backend sqlite`` for a file, or ``--database-url``), ``baton init``, then three
``baton worker`` processes (``--workers``). The mail server is down for the whole run:
``--mail refused`` (nothing listens on its port: every connection is refused at once)
or ``--mail silent`` (it accepts connections and never answers, so every attempt waits
for ``BATON_SMTP_TIMEOUT_SECONDS``). Before the workers start, 5,000 emails
(``--backlog``) are already due.

Then, for ``--seconds``, this process captures demo requests through the use cases
(``--rate`` per second): each becomes a handoff assigned at once, whose
``handoff.assigned`` webhook goes to an HTTP receiver in this process, and whose SLA
ladder (wall-clock minutes) reminds the rep 6 s after assignment and tells the manager
12 s after. Some demo requests (every ``--queue-every``-th) come from a country whose
team has nobody available: they wait in the unassigned queue until that team's rep
becomes available, half-way through the run.

Lateness is when a thing was done minus when it was due:

* SLA step: the event's time minus the step's ``due_at`` (both in the database);
* webhook: arrival at the receiver minus the event's ``occurred_at`` (due at once);
* queued assignment: ``assigned_at`` minus the moment the rep became available.

    python bench/lateness.py                         # PostgreSQL, 3 workers, mail refused
    python bench/lateness.py --mail silent --seconds 90
    python bench/lateness.py --backend sqlite --workers 1

Run it against another checkout's code with ``PYTHONPATH=/path/to/src`` (the workers
inherit it), to compare before and after a change.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
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
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import Any

from rich.console import Console
from rich.table import Table
from sqlalchemy import func, select

from _common import BENCH, MARIA, SAM, database, machine
from baton.config import Settings
from baton.domain.activities import ActivityCreate
from baton.domain.leads import LeadCreate
from baton.domain.reps import RepCreate, RepUpdate, TeamCreate
from baton.services.activities import ingest_activity
from baton.services.context import Context, open_context
from baton.services.contracts import activate_contract, approve_contract, create_contract
from baton.services.leads import capture_lead
from baton.services.outbox import enqueue_email
from baton.services.reps import create_rep, create_team, find_rep, update_rep
from baton.services.webhooks import create_endpoint
from baton.store.tables import deliveries, handoff_events, handoffs, outbox

TARGET_P99_S = 5.0
HOST = "127.0.0.1"
ALWAYS = {day: ["00:00-24:00"] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
STEPS = ("reminded", "manager_notified")

CONTRACT = """\
schema_version: 1
name: Lateness benchmark
description: Demo requests go to sales at once; Canada has its own (often empty) team.
mql:
  threshold: 1000
  hand_raise: [demo_request]
routing:
  account_matching: false
  rules:
    - name: Canada
      when:
        - {field: country, in: [CA]}
      pool: {team: canada}
      strategy: round_robin
    - name: Everyone
      pool: {team: floor}
      strategy: least_loaded
sla:
  accept_within_minutes: 1
  first_touch_within_minutes: 1
  business_hours: false
  ladder:
    - {at_minutes: 0.1, action: remind}
    - {at_minutes: 0.2, action: notify_manager}
"""


# --- the webhook receiver ------------------------------------------------------------------


@dataclass
class Receiver:
    arrivals: list[tuple[float, float]] = field(default_factory=list)
    """(occurred_at, arrived) in Unix seconds, each delivery's first arrival."""
    seen: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Handler(BaseHTTPRequestHandler):
    server: Any

    def do_POST(self) -> None:
        arrived = time.time()
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        receiver: Receiver = self.server.receiver
        try:
            occurred = datetime.fromisoformat(json.loads(body)["occurred_at"]).timestamp()
        except (ValueError, KeyError):
            occurred = arrived
        delivery = str(self.headers.get("X-Baton-Delivery"))
        with receiver.lock:
            receiver.seen[delivery] = receiver.seen.get(delivery, 0) + 1
            if receiver.seen[delivery] == 1:
                receiver.arrivals.append((occurred, arrived))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        """Quiet."""


@contextlib.contextmanager
def webhook_receiver(receiver: Receiver) -> Iterator[int]:
    server = ThreadingHTTPServer((HOST, 0), _Handler)
    server.daemon_threads = True
    server.receiver = receiver  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def dead_mail_server(kind: str) -> Iterator[int]:
    """A port where mail goes nowhere: refused (nothing listens) or silent (a listener
    that never answers)."""
    with socket.socket() as listener:
        listener.bind((HOST, 0))
        port = int(listener.getsockname()[1])
        if kind == "silent":
            listener.listen(1024)
            yield port
            return
    yield port


# --- the Baton processes -------------------------------------------------------------------


def baton_command() -> list[str]:
    script = Path(sys.executable).parent / "baton"
    if script.exists() and not os.environ.get("PYTHONPATH"):
        return [str(script)]
    return [sys.executable, "-c", "from baton.cli import main; main()"]


@contextlib.contextmanager
def workers(
    count: int, env: dict[str, str], folder: Path
) -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    try:
        for index in range(count):
            log = (folder / f"worker{index}.log").open("wb")
            started.append(
                subprocess.Popen(  # a fixed command line, no shell
                    [*baton_command(), "worker"],
                    env=env,
                    cwd=folder,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
        yield started
    finally:
        for popen in started:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(popen.pid, signal.SIGTERM)
        for popen in started:
            try:
                popen.wait(timeout=30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(popen.pid, signal.SIGKILL)
                popen.wait(timeout=10)


def wait_running(running: list[subprocess.Popen[bytes]], folder: Path) -> None:
    """Until every worker has said it runs (start-up is not lateness)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        logs = [
            (folder / f"worker{i}.log").read_text(errors="replace") for i in range(len(running))
        ]
        for popen, log in zip(running, logs, strict=True):
            if popen.poll() is not None:
                raise SystemExit(f"a worker exited with {popen.returncode}:\n{log[-2000:]}")
        if all("worker running" in log for log in logs):
            return
        time.sleep(0.1)
    raise SystemExit("the workers did not start within 120 s")


def prepare(ctx: Context, *, reps: int, webhook_port: int, backlog: int) -> None:
    version = create_contract(ctx, CONTRACT, actor=BENCH).version
    approve_contract(ctx, version, role="marketing", actor=MARIA)
    approve_contract(ctx, version, role="sales", actor=SAM)
    activate_contract(ctx, version, actor=BENCH)
    create_team(ctx, TeamCreate(name="floor", manager_email="boss@sales.example.com"), actor=BENCH)
    create_team(ctx, TeamCreate(name="canada"), actor=BENCH)
    for index in range(reps):
        create_rep(
            ctx,
            RepCreate.model_validate(
                {
                    "email": f"rep{index}@sales.example.com",
                    "name": f"Rep {index}",
                    "team": "floor",
                    "working_hours": ALWAYS,
                    "capacity": 100_000,
                }
            ),
            actor=BENCH,
        )
    create_rep(
        ctx,
        RepCreate.model_validate(
            {
                "email": "maple@sales.example.com",
                "name": "Maple",
                "team": "canada",
                "working_hours": ALWAYS,
                "capacity": 100_000,
                "status": "away",
            }
        ),
        actor=BENCH,
    )
    create_endpoint(
        ctx,
        url=f"http://{HOST}:{webhook_port}/hook",
        events=["handoff.assigned"],
        actor=BENCH,
    )
    first = demo_request(ctx, 0, "US")
    with ctx.write() as connection:
        now = ctx.clock.now()
        for _ in range(backlog):
            enqueue_email(
                connection,
                topic="sla.remind",
                to="rep0@sales.example.com",
                now=now,
                handoff_id=first,
            )


def demo_request(ctx: Context, index: int, country: str) -> int:
    email = f"buyer{index}@company{index}.example.com"
    data = LeadCreate.model_validate(
        {"email": email, "first_name": "Buyer", "company": f"Company {index}", "country": country}
    )
    lead_id = capture_lead(ctx, data, actor=BENCH).lead.id
    ingest_activity(
        ctx,
        ActivityCreate.model_validate(
            {"email": email, "type": "demo_request", "occurred_at": ctx.clock.now()}
        ),
        actor=BENCH,
    )
    with ctx.read() as connection:
        return int(
            connection.execute(
                select(func.max(handoffs.c.id)).where(handoffs.c.lead_id == lead_id)
            ).scalar_one()
        )


# --- measuring -----------------------------------------------------------------------------


def step_lateness(ctx: Context, since: float, end: datetime) -> tuple[list[float], int]:
    """Steps due once the workers ran (not the set-up handoff's, due during start-up),
    and how many of them never ran: those count as late by ``end - due`` (at least)."""
    with ctx.read() as connection:
        rows = connection.execute(
            select(handoff_events.c.occurred_at, handoff_events.c.detail).where(
                handoff_events.c.kind.in_(STEPS)
            )
        ).all()
        overdue = connection.execute(
            select(handoffs.c.next_step_at).where(
                handoffs.c.status.in_(("assigned", "accepted")), handoffs.c.next_step_at <= end
            )
        ).all()
    due = [
        (at, datetime.fromisoformat(detail["due_at"]))
        for at, detail in rows
        if detail and "due_at" in detail
    ]
    done = [(at - when).total_seconds() for at, when in due if when.timestamp() >= since]
    missed = [(end - when).total_seconds() for (when,) in overdue if when.timestamp() >= since]
    return done + missed, len(missed)


def webhooks_missing(ctx: Context, since: float, end: datetime, arrived: int) -> list[float]:
    """``end - created_at`` of the run's webhooks that never arrived."""
    with ctx.read() as connection:
        created = connection.execute(
            select(outbox.c.created_at)
            .where(outbox.c.channel == "webhook")
            .order_by(outbox.c.created_at)
        ).all()
    runs = [when for (when,) in created if when.timestamp() >= since]
    return [(end - when).total_seconds() for when in runs[arrived:]]


def queue_lateness(
    ctx: Context, available_at: datetime, handoff_ids: list[int], end: datetime
) -> tuple[list[float], int]:
    """``assigned_at - available_at``; one never assigned counts ``end - available_at``."""
    with ctx.read() as connection:
        rows = connection.execute(
            select(handoffs.c.assigned_at).where(handoffs.c.id.in_(handoff_ids))
        ).all()
    missed = sum(1 for (at,) in rows if at is None)
    return [((at or end) - available_at).total_seconds() for (at,) in rows], missed


def email_attempts(ctx: Context) -> int:
    with ctx.read() as connection:
        return int(
            connection.execute(
                select(func.count())
                .select_from(deliveries.join(outbox))
                .where(outbox.c.channel == "email")
            ).scalar_one()
        )


def row(label: str, seconds: list[float]) -> list[str]:
    if not seconds:
        return [label, "0", "—", "—", "—", "—", "—"]
    ordered = sorted(seconds)

    def at(fraction: float) -> str:
        index = min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))
        return f"{ordered[index]:,.2f} s"

    return [
        label,
        f"{len(ordered)}",
        at(0.50),
        at(0.90),
        at(0.99),
        f"{ordered[-1]:,.2f} s",
        f"{statistics.fmean(ordered):,.2f} s",
    ]


def p99(seconds: list[float]) -> float:
    ordered = sorted(seconds)
    return ordered[min(len(ordered) - 1, max(0, round(0.99 * len(ordered)) - 1))]


def _interrupted(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # so that every ``finally`` stops what it started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--backlog", type=int, default=5000, help="Emails due at the start")
    parser.add_argument("--mail", choices=("refused", "silent"), default="refused")
    parser.add_argument("--seconds", type=float, default=60, help="How long demo requests come")
    parser.add_argument("--rate", type=float, default=4, help="Demo requests per second")
    parser.add_argument("--queue-every", type=int, default=10, help="Every n-th goes to Canada")
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--poll", type=float, default=0.2, help="BATON_WORKER_POLL_SECONDS")
    parser.add_argument("--smtp-timeout", type=float, default=10, help="BATON_SMTP_TIMEOUT_SECONDS")
    parser.add_argument("--database-url", help="Use this (scratch!) database")
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="postgresql")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _interrupted)
    console = Console()
    receiver = Receiver()
    with (
        tempfile.TemporaryDirectory(prefix="baton-bench-") as tmp,
        contextlib.nullcontext(args.database_url)
        if args.database_url
        else database(args.backend) as url,
        webhook_receiver(receiver) as webhook_port,
        dead_mail_server(args.mail) as smtp_port,
    ):
        folder = Path(tmp)
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("BATON_")},
            "BATON_DATABASE_URL": url,
            "BATON_SMTP_HOST": HOST,
            "BATON_SMTP_PORT": str(smtp_port),
            "BATON_SMTP_TIMEOUT_SECONDS": str(args.smtp_timeout),
            "BATON_WORKER_POLL_SECONDS": str(args.poll),
            "BATON_WEBHOOK_INTERNAL_ALLOWLIST": HOST,
            "BATON_LOG_LEVEL": "error",
        }
        init = subprocess.run(  # a fixed command line, no shell
            [*baton_command(), "init"], env=env, cwd=folder, capture_output=True, check=False
        )
        if init.returncode != 0:
            raise SystemExit("baton init failed:\n" + (init.stdout + init.stderr).decode())
        settings = Settings(database_url=url, env="test", webhook_internal_allowlist=HOST)
        ctx = open_context(settings, migrate=False)
        try:
            prepare(ctx, reps=args.reps, webhook_port=webhook_port, backlog=args.backlog)
            queued: list[int] = []
            available_at: datetime | None = None
            with workers(args.workers, env, folder) as running:
                wait_running(running, folder)
                began, began_at = time.monotonic(), time.time()
                index = 0
                while (elapsed := time.monotonic() - began) < args.seconds:
                    index += 1
                    canada = index % args.queue_every == 0
                    handoff_id = demo_request(ctx, index, "CA" if canada else "US")
                    if canada and available_at is None:
                        queued.append(handoff_id)
                    if available_at is None and elapsed >= args.seconds / 2:
                        maple = find_rep(ctx, "maple@sales.example.com", actor=BENCH)
                        update_rep(ctx, maple.id, RepUpdate(status="available"), actor=BENCH)
                        available_at = ctx.clock.now()
                    time.sleep(max(0.0, began + index / args.rate - time.monotonic()))
                time.sleep(15)  # the last ladders (12 s) and deliveries
            end = ctx.clock.now()
            steps, steps_missed = step_lateness(ctx, began_at, end)
            waiting, queue_missed = (
                queue_lateness(ctx, available_at, queued, end) if available_at else ([], 0)
            )
            attempts = email_attempts(ctx)
            arrived = sum(1 for occurred, _ in receiver.arrivals if occurred >= began_at)
            hooks_missed = webhooks_missing(ctx, began_at, end, arrived)
        finally:
            ctx.engine.dispose()

    # Events of this run only (the set-up's first handoff waited for the workers to start).
    hooks = [
        arrived - occurred for occurred, arrived in receiver.arrivals if occurred >= began_at
    ] + hooks_missed
    never = steps_missed + len(hooks_missed) + queue_missed
    twice = sum(1 for n in receiver.seen.values() if n > 1)
    where = "PostgreSQL" if url.startswith("postgresql") else "SQLite"
    table = Table(
        title=f"Worker lateness: {args.workers} workers, {where}, {args.backlog:,} emails due "
        f"and the mail server {args.mail}, {index} demo requests in {args.seconds:g} s "
        f"({machine()})"
    )
    table.add_column("late by")
    for column in ("n", "p50", "p90", "p99", "max", "mean"):
        table.add_column(column, justify="right")
    table.add_row(*row("SLA steps (remind, tell the manager)", steps))
    table.add_row(*row("webhooks (handoff.assigned)", hooks))
    table.add_row(*row("queued handoffs, once a rep is free", waiting))
    everything = steps + hooks + waiting
    table.add_row(*row("all", everything))
    console.print(table)
    worst = p99(everything) if everything else float("inf")
    verdict = "[green]met[/]" if worst < TARGET_P99_S else "[red]missed[/]"
    console.print(
        f"Target p99 < {TARGET_P99_S:g} s: {verdict} (p99 {worst:,.2f} s). Never done by the "
        f"end (counted as late until then, a lower bound): {never}. Email attempts during the "
        f"run: {attempts:,} for {args.backlog:,} waiting; webhooks delivered twice: {twice}; "
        f"load average at the end: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores."
    )


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        print("interrupted; the workers were stopped")
        sys.exit(130)
