"""No password in any output (issue 11, item 2): what the CLI prints, what the server
and the worker log, and what a crash shows, whatever error quotes the database URL."""

from __future__ import annotations

import dataclasses
import logging
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from pydantic import ValidationError
from tests.e2e.live_server import free_port

from baton import redact
from baton.api.app import create_app
from baton.config import Settings
from baton.services.context import Context

PASSWORD = f"Pw-{uuid.uuid4().hex[:12]}@x"
"""Has an ``@``: written percent-encoded in the URL, and decoded by the driver."""
ENCODED = PASSWORD.replace("@", "%40")
ROOT = Path(__file__).resolve().parents[2]


def _url(port: int, host: str = "127.0.0.1") -> str:
    return f"postgresql+psycopg://baton:{ENCODED}@{host}:{port}/baton"


def _leaks(text: str) -> list[str]:
    """Every form of the password, or a telling piece of it, found in ``text``."""
    pieces = {PASSWORD, ENCODED, PASSWORD[3:15], ENCODED[-8:], PASSWORD[-8:]}
    return sorted(piece for piece in pieces if piece in text)


def _run(*command: str, env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, *command],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env},
        cwd=ROOT,
        check=False,
    )
    assert done.returncode != 0, "the command was meant to fail"
    return done.stdout + done.stderr


@pytest.mark.parametrize(
    ("command", "extra", "host"),
    [
        (["-m", "baton.cli", "init"], {}, "127.0.0.1"),
        (["-m", "baton.cli", "worker", "--once"], {"BATON_DEBUG": "1"}, "127.0.0.1"),
        (
            ["-m", "uvicorn", "baton.api.asgi:app", "--port", "0"],
            {"BATON_ENV": "production"},  # refused: no secret key
            "db",
        ),
    ],
    ids=["init", "worker-debug-trace", "uvicorn-refused-settings"],
)
def test_a_failing_connection_prints_no_password(
    command: list[str], extra: dict[str, str], host: str
) -> None:
    """Nothing listens on the port: every command fails, and says why without the
    password (a refused setting used to echo the settings, URL included)."""
    # A short host: an echo of the settings, cut to its ends, would show the password.
    output = _run(*command, env={"BATON_DATABASE_URL": _url(free_port(), host), **extra})
    assert output.strip()
    assert _leaks(output) == [], output


def test_settings_errors_never_echo_the_values() -> None:
    with pytest.raises(ValidationError) as refused:
        Settings(env="production", database_url=_url(5, "db"))  # refused: no secret key
    assert _leaks(str(refused.value)) == []


def test_logs_never_carry_a_password(sqlite_ctx: Context, caplog: pytest.LogCaptureFixture) -> None:
    """The server masks every record it logs, whoever made it: a driver error quoting
    the URL, a message with the URL as an argument, a traceback."""
    settings = Settings(database_url=_url(5432), env="test")
    create_app(dataclasses.replace(sqlite_ctx, settings=settings))  # as every server does
    log = logging.getLogger("baton.test")
    with caplog.at_level(logging.INFO):
        log.error("cannot reach %s", _url(5432))
        log.warning("connection failed for %r", {"dsn": f"user=baton password={PASSWORD}"})
        try:
            raise RuntimeError(f"Could not parse SQLAlchemy URL from string '{_url(5432)}'")
        except RuntimeError:
            log.exception("worker pass failed")
    text = caplog.text + "".join(r.getMessage() for r in caplog.records)
    assert "baton:***@127.0.0.1" in text
    assert _leaks(text) == [], text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("postgresql://u:p4ssw0rd@db/x", "postgresql://u:***@db/x"),
        (
            "see 'postgresql+psycopg://u:a@b@db:5432/x'",
            "see 'postgresql+psycopg://u:***@db:5432/x'",
        ),
        ("smtp://mail:pa%40ss@mx ok", "smtp://mail:***@mx ok"),
        ("http://example.com:8000/path", "http://example.com:8000/path"),
        ("no url here", "no url here"),
    ],
)
def test_mask_hides_url_passwords(text: str, expected: str) -> None:
    assert redact.mask(text) == expected


def test_mask_hides_known_secrets_in_every_form() -> None:
    secret = f"s3cr3t@{uuid.uuid4().hex[:6]}"
    redact.remember(secret, "abc")  # too short to replace in free text
    text = f"auth failed: {secret} / {secret.replace('@', '%40')} / abc"
    assert redact.mask(text) == "auth failed: *** / *** / abc"
