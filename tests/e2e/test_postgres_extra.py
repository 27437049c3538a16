"""The PostgreSQL driver is an extra (``baton-handoff[postgres]``): SQLite installs run
without it, and pointing Baton at PostgreSQL without it says what to install.

Each check runs in a fresh interpreter where ``import psycopg`` fails (its entry in
``sys.modules`` is ``None``), as on a machine that installed Baton without the extra.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

NO_DRIVER = "import sys; sys.modules['psycopg'] = None\n"


def run(code: str, tmp_path: Path, database_url: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "BATON_DATABASE_URL": database_url,
        "BATON_ENV": "development",
        "COLUMNS": "200",
    }
    return subprocess.run(
        [sys.executable, "-c", NO_DRIVER + code],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_sqlite_needs_no_postgresql_driver(tmp_path: Path) -> None:
    code = """
from fastapi.testclient import TestClient
from baton.api.app import create_app
from baton.cli import app as cli_app
from baton.domain.access import operator
from baton.domain.leads import LeadCreate
from baton.services.context import open_context
from baton.services.leads import capture_lead

ctx = open_context()
capture_lead(ctx, LeadCreate(email="dana@northwind.example.com"), actor=operator("t"))
assert TestClient(create_app(ctx)).get("/healthz").status_code == 200
assert sys.modules["psycopg"] is None, "something imported the driver"
print("ok")
"""
    done = run(code, tmp_path, f"sqlite:///{tmp_path / 'baton.db'}")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_postgresql_without_the_driver_says_what_to_install(tmp_path: Path) -> None:
    code = "from baton.cli import main\nsys.argv = ['baton', 'init']\nmain()\n"
    done = run(code, tmp_path, "postgresql://baton:s3cret@127.0.0.1:9/baton")
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "pip install 'baton-handoff[postgres]'" in done.stderr, done.stderr
    assert "BATON_DATABASE_URL points at PostgreSQL" in done.stderr
    assert "s3cret" not in done.stderr
    assert "Traceback" not in done.stderr
