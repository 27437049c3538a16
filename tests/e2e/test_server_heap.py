"""The server process's start-up heap is frozen, so full garbage collections under
load walk only what requests made (they walked ~250,000 start-up objects: 50-270 ms
pauses, the capture's p99; figures in bench/intake_http.py's README row)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_asgi_entry_point_leaves_its_start_up_heap_frozen(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "BATON_DATABASE_URL": f"sqlite:///{tmp_path / 'baton.db'}",
        "BATON_ENV": "test",
        "BATON_SECRET_KEY": "heap-test-secret-key-0123456789-0123456789",
    }

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, *args],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    init = run("-m", "baton.cli", "init")
    assert init.returncode == 0, init.stdout + init.stderr
    probe = (
        "import gc, baton.api.asgi as entry; "
        "print(gc.get_freeze_count(), len(gc.get_objects()), type(entry.app).__name__)"
    )
    done = run("-c", probe)
    assert done.returncode == 0, done.stderr
    frozen, tracked, app = done.stdout.split()
    assert app == "FastAPI"
    # Nearly everything alive at start-up sits in the permanent generation.
    assert int(frozen) > 100_000
    assert int(tracked) * 20 < int(frozen)
