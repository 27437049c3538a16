"""Shared set-up for the benchmarks: fresh SQLite files and a PostgreSQL per run, and the
principals the benchmarks act as."""

from __future__ import annotations

import contextlib
import platform
import tempfile
from collections.abc import Iterator
from pathlib import Path

from baton.config import Settings
from baton.domain.access import Principal, operator
from baton.domain.clock import ManualClock
from baton.services.context import Context, open_context

BENCH: Principal = operator("bench")
"""The local operator the benchmarks act as (recorded as ``bench``)."""
MARIA: Principal = operator("maria")
"""Signs contracts for marketing (a different name from :data:`SAM`, as the two sides need)."""
SAM: Principal = operator("sam")
"""Signs contracts for sales."""


def machine() -> str:
    import os

    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


@contextlib.contextmanager
def database(backend: str) -> Iterator[str]:
    """A URL for an empty database of ``backend`` (sqlite or postgresql)."""
    with tempfile.TemporaryDirectory(prefix="baton-bench-") as tmp:
        if backend == "sqlite":
            yield f"sqlite:///{Path(tmp) / 'bench.db'}"
            return
        import pgserver

        server = pgserver.get_server(Path(tmp) / "pg", cleanup_mode="stop")
        try:
            yield server.get_uri()
        finally:
            server.cleanup()


def context(url: str) -> Context:
    return open_context(Settings(database_url=url, env="test"), clock=ManualClock())


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def bench_token(ctx: Context, scopes: list[str]) -> str:
    """A marketing user for the benchmark and an API token of theirs with ``scopes``."""
    from baton.domain.access import Role, operator
    from baton.domain.users import TokenCreate, UserCreate
    from baton.services.users import add_user, create_token

    user, _ = add_user(
        ctx,
        UserCreate(email="bench@example.com", display_name="Bench", role=Role.MARKETING),
        actor=operator("bench"),
        password="a bench password",
    )
    _, token = create_token(
        ctx,
        TokenCreate(name="bench", scopes=scopes, user_email=user.email),
        actor=operator("bench"),
    )
    return token
