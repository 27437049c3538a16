"""What a server process holds once its entry point is imported.

Its start-up heap is frozen, so full garbage collections under load walk only what
requests made (they walked ~250,000 start-up objects: 50-270 ms pauses, the capture's
p99; figures in bench/intake_http.py's README row). And it has not loaded
scikit-learn: only training, evaluating and the contract suggestion use it (a stored
model's bytes load it when unpickled), while importing it cost every server worker and
command about 1 s of CPU and 100 MB of memory at start-up."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOT_AT_START = ("sklearn", "scipy", "threadpoolctl")


@pytest.fixture(scope="module")
def started(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """What a fresh interpreter says after importing ``baton.api.asgi`` on a new
    database: the frozen count, the tracked count, the app's type, then the modules of
    :data:`NOT_AT_START` it loaded."""
    tmp_path = tmp_path_factory.mktemp("heap")
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
        "import gc, sys, baton.api.asgi as entry; "
        "print(gc.get_freeze_count(), len(gc.get_objects()), type(entry.app).__name__, "
        f"*(m for m in {NOT_AT_START!r} if m in sys.modules))"
    )
    done = run("-c", probe)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_the_asgi_entry_point_leaves_its_start_up_heap_frozen(started: list[str]) -> None:
    frozen, tracked, app = started[:3]
    assert app == "FastAPI"
    # Nearly everything alive at start-up sits in the permanent generation.
    assert int(frozen) > 100_000
    assert int(tracked) * 20 < int(frozen)


def test_a_server_process_starts_without_scikit_learn(started: list[str]) -> None:
    assert started[3:] == []
