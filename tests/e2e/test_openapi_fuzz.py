"""Schemathesis over the whole OpenAPI document, as a client would meet it (issue 11,
item 15): a real server on 127.0.0.1, an admin token, every check, the examples,
fuzzing and stateful phases, a fixed seed and a few examples per operation
(``schemathesis.toml``), and the answer must be 0 server errors and 0 schema
violations. Rules no JSON Schema can state are handled in ``fuzz_hooks.py``."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from tests.e2e.live_server import live_server

from baton.api.app import create_app
from baton.domain.clock import ManualClock
from baton.services.context import Context

HERE = Path(__file__).parent
ROOT = HERE.parents[1]


def test_schemathesis_finds_no_server_error_and_no_schema_violation(
    sqlite_ctx: Context, tmp_path: Path
) -> None:
    pytest.importorskip("schemathesis", reason="the test extras install schemathesis")
    # After the examples' dates: an activity on 2026-11-20 is not in the future.
    assert isinstance(sqlite_ctx.clock, ManualClock)
    sqlite_ctx.clock.current = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    env = {
        **os.environ,
        "BATON_DATABASE_URL": sqlite_ctx.settings.database_url,
        "SCHEMATHESIS_HOOKS": "fuzz_hooks",
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(HERE), os.environ.get("PYTHONPATH", "")]),
        "NO_COLOR": "1",
    }
    with live_server(create_app(sqlite_ctx)) as url:
        run = subprocess.run(
            [
                sys.executable,
                "-m",
                "schemathesis.cli",
                "--config-file",
                str(HERE / "schemathesis.toml"),
                "run",
                f"{url}/openapi.json",
                "--checks",
                "all",
                "--phases",
                "examples,fuzzing,stateful",
                "--report",
                "junit",
                "--report-dir",
                str(tmp_path),
            ],
            capture_output=True,
            text=True,
            timeout=600,
            env=env,
            cwd=tmp_path,
            check=False,
        )
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-20_000:]
