"""The worker's routine work is quiet at INFO (a newcomer's trial: under steady captures
``duplicates: duplicates checked 1`` came once per pass): each busy pass is a DEBUG
line, summed up in one INFO line a minute, while a failing pass still logs at once."""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from baton import heap
from baton.cli import app
from baton.services import worker as worker_service
from baton.services.worker import Lane, TickReport
from baton.services.worker_log import PassLog


class _Seconds:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _records(caplog: pytest.LogCaptureFixture, level: int) -> list[tuple[str, str]]:
    return [
        (r.levelname, r.getMessage())
        for r in caplog.records
        if r.name == "baton.worker" and r.levelno >= level
    ]


def test_baton_worker_is_quiet_at_info_over_busy_passes_and_a_failure_still_logs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """`baton worker` as it runs: real lanes, six busy passes and a failing one."""
    monkeypatch.setenv("BATON_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.delenv("BATON_ENV", raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(heap, "freeze_startup_heap", lambda: None)

    def broken() -> TickReport:
        raise RuntimeError("the chat platform answered nonsense")

    class Passes:
        """Stands for :class:`~baton.services.worker.Worker`: its lanes' passes."""

        def __init__(self, ctx: Any, on_pass: Any = None, **_: Any) -> None:
            self.lanes = [
                Lane("duplicates", lambda: TickReport(checked=1), 0.0, on_pass),
                Lane("email delivery", lambda: TickReport(sent=2), 0.0, on_pass),
                Lane("chat delivery", broken, 0.0, on_pass),
            ]

        def run(self, stop: threading.Event) -> None:
            for _ in range(3):
                for lane in self.lanes:
                    lane.step()

    monkeypatch.setattr(worker_service, "Worker", Passes)
    caplog.set_level(logging.INFO, logger="baton.worker")
    result = CliRunner().invoke(app, ["worker", "--poll", "0.01"])
    assert result.exit_code == 0, result.output
    said = _records(caplog, logging.INFO)
    assert not [m for _, m in said if m.startswith(("duplicates:", "email delivery:"))], said
    summaries = [m for level, m in said if level == "INFO" and m.startswith("in the last ")]
    assert len(summaries) == 1, said
    assert summaries[0].endswith(": duplicates: duplicates checked 3; email delivery: sent 6"), (
        summaries
    )
    failures = [m for level, m in said if level == "ERROR"]
    assert failures == [
        "chat delivery: the pass failed; trying again in 1 s",
        "chat delivery: the pass failed; trying again in 2 s",
        "chat delivery: the pass failed; trying again in 4 s",
    ], said


def test_each_busy_pass_is_a_debug_line_and_a_minute_one_info_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="baton.worker")
    seconds = _Seconds()
    passes = PassLog(logging.getLogger("baton.worker"), clock=seconds)
    for _ in range(5):  # ten seconds apart: no summary yet
        passes("duplicates", TickReport(checked=1))
        seconds.now += 10
    assert _records(caplog, logging.INFO) == []
    assert _records(caplog, logging.DEBUG) == [("DEBUG", "duplicates: duplicates checked 1")] * 5
    seconds.now += 10
    passes("timers", TickReport(steps=2, assigned=1))  # a minute since the start
    assert _records(caplog, logging.INFO) == [
        ("INFO", "in the last 60 s: duplicates: duplicates checked 5; timers: steps 2, assigned 1")
    ]
    caplog.clear()
    seconds.now += 600
    passes.flush_due()  # ten quiet minutes: no line
    passes.flush()
    assert _records(caplog, logging.INFO) == []


def test_a_quiet_minute_after_busy_passes_still_gets_its_summary(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The summary comes from a thread of its own, not only from the next busy pass."""
    caplog.set_level(logging.INFO, logger="baton.worker")
    passes = PassLog(logging.getLogger("baton.worker"), every=0.05)
    stop = threading.Event()
    thread = threading.Thread(target=passes.run, args=(stop,))
    thread.start()
    passes("nurture", TickReport(nurtured=3))
    try:
        for _ in range(100):
            if _records(caplog, logging.INFO):
                break
            stop.wait(0.05)
    finally:
        stop.set()
        thread.join(10)
    said = [m for _, m in _records(caplog, logging.INFO)]
    assert len(said) == 1 and said[0].endswith(": nurture: nurtured 3"), said


def test_the_last_summary_is_written_as_the_process_exits_without_a_stop() -> None:
    """``baton serve --with-worker`` never sets the worker's stop: a SIGTERM ends the
    process, and the counts of its last minute are still written as it exits."""
    import subprocess
    import sys

    script = (
        "import logging, sys, threading\n"
        "from baton.services.worker import TickReport\n"
        "from baton.services.worker_log import start_pass_log\n"
        "logging.basicConfig(stream=sys.stdout, level=logging.INFO, format='%(message)s')\n"
        "passes = start_pass_log(logging.getLogger('baton.worker'), threading.Event())\n"
        "passes('duplicates', TickReport(checked=3))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert "duplicates: duplicates checked 3" in done.stdout


def test_serve_with_worker_writes_the_last_summary_and_its_stop_on_sigterm(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A service manager stops `baton serve --with-worker` with SIGTERM: uvicorn shuts
    down, then raises the signal again, so nothing registered for a normal exit runs.
    The worker's last minute of counts and its stop are still in the log, in the log's
    own format, and the process still ends by the signal."""
    import signal
    import subprocess
    import sys
    import time

    import httpx
    from tests.e2e.live_server import free_port

    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("BATON_")},
        "BATON_DATABASE_URL": f"sqlite:///{tmp_path / 'serve.db'}",
        "BATON_ENV": "test",
        "BATON_LOG_LEVEL": "info",
        "BATON_WORKER_POLL_SECONDS": "0.2",
    }
    people = tmp_path / "people.csv"
    people.write_text(
        "email,first_name\nana@example.org,Ana\nben@example.org,Ben\nchloe@example.org,Chloe\n"
    )
    # The database is made and filled in this process (the same commands, without two
    # more interpreters starting); only the server under test is a process of its own.
    monkeypatch.chdir(tmp_path)
    outside = {k: None for k in os.environ if k.startswith("BATON_")}
    for args in (["init"], ["import", "leads", str(people)]):
        done = CliRunner().invoke(app, args, env={**outside, **env})
        assert done.exit_code == 0, done.output
    queued = sqlite3.connect(f"file:{tmp_path / 'serve.db'}?mode=ro", uri=True)
    assert queued.execute("SELECT count(*) FROM duplicate_checks").fetchone()[0] == 3
    baton = [sys.executable, "-c", "from baton.cli import main; main()"]
    port = free_port()
    server = subprocess.Popen(
        [*baton, "serve", "--port", str(port), "--with-worker"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, "no server"
            time.sleep(0.2)
        # The three new leads' duplicate check: their queue empties in the pass that
        # checks them; one more poll (0.2 s) and that pass has been counted.
        while queued.execute("SELECT count(*) FROM duplicate_checks").fetchone()[0]:
            assert server.poll() is None and time.monotonic() < deadline, "never checked"
            time.sleep(0.05)
        time.sleep(0.5)
        server.send_signal(signal.SIGTERM)
        output, _ = server.communicate(timeout=60)
    finally:
        queued.close()
        if server.poll() is None:
            server.kill()
    assert server.returncode == -signal.SIGTERM, output
    lines = output.splitlines()
    summary = [line for line in lines if "duplicates: duplicates checked 3" in line]
    assert summary and " INFO baton.worker: in the last " in summary[-1], output
    assert any(line.endswith("INFO baton.worker: worker stopped") for line in lines), output
