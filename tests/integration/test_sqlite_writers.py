"""SQLite under concurrent writes (issue 11, item 16): writers take turns first come,
first served, processes take turns with each other, and a large CLI import commits in
chunks, so a burst of eight writers during an import gets through with no error.

SQLite only: PostgreSQL queues writers on row locks and needs none of this. No test
here measures time; ``bench/sqlite_writers.py`` measures the waits.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import textwrap
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError

from baton.config import Settings
from baton.domain.access import operator
from baton.domain.clock import ManualClock
from baton.domain.leads import LeadCreate
from baton.services.context import Context, open_context
from baton.services.imports import import_leads
from baton.services.leads import capture_lead
from baton.store.engine import WriteQueue, write_queue
from baton.store.tables import leads

WRITERS = 8


def _wait_until(condition: object, what: str) -> None:
    """Poll ``condition()`` (threads and processes start when they start); fail with
    ``what`` only after a minute, which no healthy run comes near."""
    give_up = time.monotonic() + 60
    while not condition():  # type: ignore[operator]
        if time.monotonic() > give_up:
            pytest.fail(f"gave up waiting: {what}")
        time.sleep(0.001)


def test_writers_of_a_process_get_their_turns_in_the_order_they_came(tmp_path: Path) -> None:
    queue = WriteQueue(tmp_path / "baton.db-writers")
    order: list[int] = []

    def write(i: int) -> None:
        with queue.turn(timeout=60):
            order.append(i)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(WRITERS)]
    with queue.turn(timeout=60):
        for i, thread in enumerate(threads):
            thread.start()
            _wait_until(lambda i=i: queue.waiting == i + 1, f"writer {i} to queue")
    for thread in threads:
        thread.join()
    assert order == list(range(WRITERS))


def test_a_write_inside_a_write_keeps_the_turn(tmp_path: Path) -> None:
    queue = WriteQueue(tmp_path / "baton.db-writers")
    with queue.turn(timeout=1), queue.turn(timeout=1):
        pass
    with queue.turn(timeout=1):  # and it was given back
        pass


def test_a_writer_that_gets_no_turn_in_time_is_told_the_database_is_locked(
    sqlite_ctx: Context, tmp_path: Path
) -> None:
    url = str(sqlite_ctx.engine.url)
    impatient = open_context(
        Settings(database_url=url, env="test", sqlite_write_timeout_seconds=0.05),
        clock=ManualClock(current=sqlite_ctx.clock.now()),
    )
    queue = write_queue(sqlite_ctx.engine)
    assert queue is not None and queue is write_queue(impatient.engine), "one queue per file"
    held = threading.Event()
    done = threading.Event()

    def hold() -> None:
        with sqlite_ctx.write():
            held.set()
            done.wait(60)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        held.wait(60)
        data = LeadCreate.model_validate({"email": "late@northwind.com"})
        with pytest.raises(OperationalError, match="database is locked"):
            capture_lead(impatient, data, actor=operator("late"))
    finally:
        done.set()
        holder.join()
        impatient.engine.dispose()
    with sqlite_ctx.read() as connection:
        assert connection.execute(select(func.count()).select_from(leads)).scalar_one() == 0


WRITING_PROCESS = textwrap.dedent(
    """
    import sys, threading, time
    from pathlib import Path
    from baton.store.engine import WriteQueue

    queue, counter = WriteQueue(Path(sys.argv[1])), Path(sys.argv[2])
    count, mutex = [0], threading.Lock()

    def lane():
        for _ in range(2000):
            with queue.turn(timeout=60):
                with mutex:
                    count[0] += 1
                    # Replaced whole, never read half written (write_text empties it first).
                    counter.with_suffix(".new").write_text(str(count[0]))
                    counter.with_suffix(".new").replace(counter)
                time.sleep(0.002)

    lanes = [threading.Thread(target=lane) for _ in range(int(sys.argv[3]))]
    for thread in lanes:
        thread.start()
    for thread in lanes:
        thread.join()
    """
)
"""A process whose ``argv[3]`` threads take write turns back to back, counting them."""


def _turns_before_ours(tmp_path: Path, lanes: int, started: int) -> int:
    """How many turns a process writing with ``lanes`` threads (:data:`WRITING_PROCESS`)
    takes between our asking for a turn and our getting it, once it has ``started``."""
    lock, counter = tmp_path / "baton.db-writers", tmp_path / "turns"
    other = subprocess.Popen(
        [sys.executable, "-c", WRITING_PROCESS, str(lock), str(counter), str(lanes)]
    )
    try:

        def turns() -> int:
            text = counter.read_text() if counter.exists() else ""
            return int(text) if text else 0

        _wait_until(lambda: turns() >= started, "the other process to start writing")
        before = turns()
        with WriteQueue(lock).turn(timeout=60):
            return turns() - before
    finally:
        other.kill()
        other.wait()


def test_a_process_that_keeps_writing_lets_a_waiting_process_go_first(tmp_path: Path) -> None:
    waited_for = _turns_before_ours(tmp_path, lanes=1, started=5)
    assert waited_for <= 3, f"the other process took {waited_for} turns before ours"


def test_a_process_whose_threads_write_in_a_row_lets_a_waiting_process_go_first(
    tmp_path: Path,
) -> None:
    """A worker's lanes, each queued behind the other: the turn passes from thread to
    thread inside that process, which may keep it for its own queued writers only
    while no other process waits (a waiting server's captures were kept out up to
    90 ms, the turns of HOLD_SECONDS)."""
    waited_for = _turns_before_ours(tmp_path, lanes=3, started=10)
    assert waited_for <= 3, f"the other process took {waited_for} turns before ours"


def test_an_import_commits_in_chunks_with_every_row_of_a_person_in_one(
    sqlite_ctx: Context, tmp_path: Path
) -> None:
    path = tmp_path / "leads.csv"
    rows = [
        ("ana@northwind.com", "Ana", "Analyst"),
        ("ben@northwind.com", "Ben", ""),
        ("chloe@northwind.com", "Chloe", ""),
        ("dario@northwind.com", "Dario", ""),
        ("ana@northwind.com", "Ana", "Head of Data"),
    ]
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["email", "first_name", "title"])
        writer.writerows(rows)
    chunked = Context(
        engine=sqlite_ctx.engine,
        settings=Settings(database_url="sqlite://", env="test", import_chunk_rows=2),
        clock=sqlite_ctx.clock,
    )
    commits: list[int] = []

    def count_writes(connection: Connection) -> None:
        if not connection.get_execution_options().get("baton_read_only"):
            commits.append(1)

    event.listen(sqlite_ctx.engine, "commit", count_writes)
    try:
        report = import_leads(chunked, path, actor=operator("import"))
    finally:
        event.remove(sqlite_ctx.engine, "commit", count_writes)
    assert (report.created, report.updated, report.rejected) == (4, 0, 0)
    assert len(commits) == 3, "two people per transaction, Ana's two rows together"
    with sqlite_ctx.read() as connection:
        titles = dict(connection.execute(select(leads.c.email, leads.c.title)).all())
    assert titles["ana@northwind.com"] == "Head of Data"


def _leads_csv(path: Path, rows: int) -> None:
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["Email", "First Name", "Company", "Lead Source"])
        for i in range(rows):
            writer.writerow([f"person{i}@company{i % 50}.example.com", "Ana", f"Co {i}", "list"])


def test_eight_writers_during_a_large_cli_import_all_get_through(
    sqlite_ctx: Context, tmp_path: Path
) -> None:
    """The issue's scenario, at small scale: ``baton import leads`` as its own process,
    eight threads capturing leads without pause until it ends. Every capture is
    stored (no "database is locked"), and captures landed between the import's
    chunks, not only before or after the whole file."""
    path = tmp_path / "big.csv"
    rows = 3000
    _leads_csv(path, rows)
    env = {
        **os.environ,
        "BATON_DATABASE_URL": str(sqlite_ctx.engine.url),
        "BATON_IMPORT_CHUNK_ROWS": "200",
        "BATON_ENV": "test",
    }
    importer = subprocess.Popen(
        [sys.executable, "-m", "baton.cli", "import", "leads", str(path)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    errors: list[BaseException] = []

    def capture_until_done(writer: int) -> int:
        done = 0
        while importer.poll() is None or done == 0:
            data = LeadCreate.model_validate(
                {"email": f"burst{writer}.{done}@northwind.com", "source": "web"}
            )
            try:
                capture_lead(sqlite_ctx, data, actor=operator(f"writer-{writer}"))
            except Exception as exc:  # every failure is the finding
                errors.append(exc)
            done += 1
        return done

    with ThreadPoolExecutor(WRITERS) as pool:
        captured = sum(pool.map(capture_until_done, range(WRITERS)))
    out, err = importer.communicate()
    assert importer.returncode == 0, out + err
    assert errors == []
    with sqlite_ctx.read() as connection:
        imported = connection.execute(
            select(func.min(leads.c.id), func.max(leads.c.id), func.count()).where(
                leads.c.source == "list"
            )
        ).one()
        burst = connection.execute(
            select(leads.c.id).where(leads.c.source == "web").order_by(leads.c.id)
        ).scalars()
        between = [i for i in burst if imported[0] < i < imported[1]]
    assert imported[2] == rows
    assert captured >= WRITERS
    assert between, "no capture got a turn while the import ran"
