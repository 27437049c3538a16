"""`baton worker` as an operator runs it: started before its database, it waits."""

from __future__ import annotations

from pathlib import Path


def test_a_worker_started_before_its_database_waits_for_it(tmp_path: Path) -> None:
    """It retries with backoff and says so, masked; it does not exit."""
    import os
    import subprocess
    import sys
    import threading
    import time

    password = "Wait-For-Me-9"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("BATON_")},
        "BATON_DATABASE_URL": f"postgresql+psycopg://baton:{password}@127.0.0.1:1/baton",
    }
    worker = subprocess.Popen(
        [sys.executable, "-c", "from baton.cli import main; main()", "worker"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(worker.stdout or ()), daemon=True)
    reader.start()
    try:
        # Attempts at 0, 1 and 3 s after start-up; a loaded machine may start slowly, so
        # wait for the second attempt rather than for a fixed time.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if sum("waiting for the database" in line for line in lines) >= 2:
                break
            assert worker.poll() is None, "".join(lines)
            time.sleep(0.2)
        assert worker.poll() is None, "".join(lines)
    finally:
        worker.terminate()
        worker.wait(timeout=10)
        reader.join(timeout=10)
    output = "".join(lines)
    assert output.count("waiting for the database") >= 2, output
    assert "trying again in 2 s" in output
    assert password not in output


def test_a_poll_interval_out_of_range_is_refused_before_the_worker_starts() -> None:
    """`--poll 0` or a negative one made every idle lane wait no time at all: each
    thread spun a core. Refused like BATON_WORKER_POLL_SECONDS out of its range."""
    from typer.testing import CliRunner

    from baton.cli import app

    for poll in ("0", "-5", "61"):
        result = CliRunner().invoke(app, ["worker", "--poll", poll])
        assert result.exit_code == 2, result.output
        assert "Invalid value for '--poll'" in result.output
