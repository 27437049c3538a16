"""Exactly once under crashes: `baton worker` killed with SIGKILL 20 times while it sends
due nurture steps to a real SMTP server, on PostgreSQL.

The steps fall due one after another over 20 s; each next worker starts while the
current one works, then the current one is killed at a random moment (a claim, a render,
an SMTP conversation, a commit). After the last kill the last worker is let finish.
Every due step must have reached the server (0 missing); a step may have arrived twice
only in the documented window (the server accepted it, the process died before the
outbox row was marked sent), and then with the SAME Message-ID as the send log records.
The test counts and prints those.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from tests.conftest import PostgresServer
from tests.notify_servers import smtp_server

from baton.config import Settings
from baton.domain.access import operator
from baton.services.context import open_context
from baton.services.contracts import activate_contract, approve_contract, create_contract
from baton.store.bulk import insert_rows
from baton.store.tables import leads, nurture_enrollments, nurture_sends, outbox

pytestmark = pytest.mark.postgres

EXAMPLE = Path(__file__).parents[2] / "contracts" / "example.yaml"
DUE = 400
KILLS = 20
SPREAD = 20.0
"""Seconds over which the steps fall due."""


def _setup(url: str) -> None:
    ctx = open_context(Settings(database_url=url, env="test"))
    try:
        body = EXAMPLE.read_text().replace(
            "send_rate_per_minute: 120", "send_rate_per_minute: 60000"
        )
        version = create_contract(ctx, body, actor=operator("maria")).version
        approve_contract(ctx, version, role="marketing", actor=operator("maria"))
        approve_contract(ctx, version, role="sales", actor=operator("sam"))
        activate_contract(ctx, version, actor=operator("maria"))
        now = datetime.now(UTC)
        with ctx.write() as connection:
            insert_rows(
                connection,
                leads,
                [
                    {
                        "id": i,
                        "email": f"p{i}@example.com",
                        "email_key": f"p{i}@example.com",
                        "first_name": f"Pat{i}",
                        "consent": True,
                        "consent_basis": "consent",
                        "attributes": {},
                        "stage": "nurture",
                        "stage_changed_at": now,
                        "created_at": now,
                        "updated_at": now,
                    }
                    for i in range(1, DUE + 1)
                ],
            )
            insert_rows(
                connection,
                nurture_enrollments,
                [
                    {
                        "lead_id": i,
                        "sequence": "not-ready",
                        "contract_version": version,
                        "status": "active",
                        "reason": "crash test",
                        "enrolled_at": now - timedelta(days=7),
                        "enrolled_by": "test",
                        "next_step": 0,
                        # Due one after another over the test, so every kill lands
                        # among claims, renders, SMTP conversations and commits.
                        "next_due_at": now + timedelta(seconds=SPREAD * i / DUE),
                    }
                    for i in range(1, DUE + 1)
                ],
            )
    finally:
        ctx.engine.dispose()


ZYGOTE = r"""
import os, signal, sys
signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
import baton.api.app, baton.cli, baton.services.nurture_send, baton.services.worker
from baton.cli import main
for line in sys.stdin:
    n = int(line)
    pid = os.fork()
    if pid == 0:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        log = os.open(f"worker-{n}.log", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(log, 1)
        os.dup2(log, 2)
        sys.argv = ["baton", "worker"]
        try:
            main()
        finally:
            os._exit(0)
    print(pid, flush=True)
"""
"""Starts ``baton worker`` processes quickly: Python imports Baton once (seconds on a
busy machine), then each worker is a fork that runs the CLI's ``worker`` command from
the start (settings, database, lanes), so 21 start-ups fit in the test's time."""


class Workers:
    """``baton worker`` processes forked from one :data:`ZYGOTE`."""

    def __init__(self, env: dict[str, str], cwd: Path) -> None:
        self.cwd = cwd
        self.zygote = subprocess.Popen(
            [sys.executable, "-c", ZYGOTE],
            env=env,
            cwd=cwd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.pids: dict[int, int] = {}

    def start(self, n: int) -> None:
        assert self.zygote.stdin is not None and self.zygote.stdout is not None
        self.zygote.stdin.write(f"{n}\n")
        self.zygote.stdin.flush()
        self.pids[n] = int(self.zygote.stdout.readline())

    def running(self, n: int) -> None:
        """Wait until worker ``n`` says it runs (settings read, database reached)."""
        log = self.cwd / f"worker-{n}.log"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if log.exists() and b"worker running" in log.read_bytes():
                return
            assert self.alive(n), log.read_text() if log.exists() else "no output"
            time.sleep(0.02)
        raise AssertionError(f"worker {n} did not start within 30 s")

    def alive(self, n: int) -> bool:
        try:
            os.kill(self.pids[n], 0)
        except ProcessLookupError:
            return False
        return True

    def kill(self, n: int) -> None:
        os.kill(self.pids[n], signal.SIGKILL)
        while self.alive(n):
            time.sleep(0.01)

    def close(self) -> None:
        for n in self.pids:
            with contextlib.suppress(ProcessLookupError):
                self.kill(n)
        self.zygote.kill()
        self.zygote.wait(timeout=10)


def test_sigkill_twenty_times_loses_no_step_and_repeats_only_with_the_same_message_id(
    postgres_server: PostgresServer, tmp_path: Path
) -> None:
    name = postgres_server.create_database()
    url = postgres_server.url_for(name)
    rng = random.Random(15)
    try:
        _setup(url)
        # A little slow per message, so kills land inside the SMTP conversation too.
        with smtp_server(on_message=lambda: time.sleep(rng.uniform(0.001, 0.01))) as smtp:
            env = {
                **{k: v for k, v in os.environ.items() if not k.startswith("BATON_")},
                "BATON_DATABASE_URL": url,
                "BATON_SMTP_HOST": smtp.host,
                "BATON_SMTP_PORT": str(smtp.port),
                "BATON_SMTP_TIMEOUT_SECONDS": "1",
                "BATON_WEBHOOK_TIMEOUT_SECONDS": "1",
                "BATON_OUTBOX_LEASE_SECONDS": "10",
                "BATON_OUTBOX_CLAIM_SIZE": "20",
                "BATON_WORKER_POLL_SECONDS": "0.05",
                "BATON_LOG_LEVEL": "info",  # the start line ("worker running") is info
            }
            started = time.monotonic()
            kills_during_sends = 0
            workers = Workers(env, tmp_path)
            try:
                workers.start(0)
                workers.running(0)
                for n in range(1, KILLS + 1):
                    # The next worker starts while the current one works (two workers
                    # of one installation side by side), then the current one dies at a
                    # random point of its work.
                    workers.start(n)
                    workers.running(n)
                    before = len(smtp.messages)
                    time.sleep(rng.uniform(0.0, 0.6))
                    workers.kill(n - 1)
                    kills_during_sends += len(smtp.messages) > before
                ctx = open_context(Settings(database_url=url, env="test"))
                deadline = time.monotonic() + 40
                while time.monotonic() < deadline:
                    with ctx.read() as connection:
                        pending = connection.execute(
                            select(func.count())
                            .select_from(outbox)
                            .where(outbox.c.status != "sent")
                        ).scalar_one()
                        planned = connection.execute(
                            select(func.count()).select_from(nurture_sends)
                        ).scalar_one()
                    if planned == DUE and pending == 0:
                        break
                    time.sleep(0.2)
            finally:
                workers.close()
            took = time.monotonic() - started
            received = Counter(str(message["Message-ID"]) for message in smtp.messages)
            per_recipient = Counter(str(message["To"]) for message in smtp.messages)
        with ctx.read() as connection:
            log = connection.execute(
                select(
                    nurture_sends.c.enrollment_id,
                    nurture_sends.c.step,
                    nurture_sends.c.message_id,
                    nurture_sends.c.status,
                    nurture_sends.c.email,
                )
            ).all()
            touched = connection.execute(
                select(func.count())
                .select_from(nurture_enrollments)
                .where(nurture_enrollments.c.touches == 1)
            ).scalar_one()
        ctx.engine.dispose()
    finally:
        postgres_server.drop_database(name)

    assert len(log) == DUE and touched == DUE  # every enrollment planned its step, once
    assert {row.step for row in log} == {0}
    logged = {row.message_id for row in log}
    missing = [row for row in log if received[row.message_id] == 0]
    assert not missing, f"{len(missing)} steps never reached the SMTP server"
    assert set(received) == logged  # nothing arrived that the send log does not know
    assert all(row.status == "sent" for row in log)
    duplicates = sum(count - 1 for count in received.values())
    # A repeat is always the same Message-ID: no person got two different messages.
    assert all(per_recipient[row.email] == received[row.message_id] for row in log)
    print(
        f"\nnurture crash test: {DUE} steps, {KILLS} SIGKILLs ({kills_during_sends} while "
        f"sending), {len(smtp.messages)} messages received, 0 missing, {duplicates} "
        f"duplicates (same Message-ID, the documented window), {took:.1f} s"
    )
