"""Shared set-up for the benchmarks: fresh SQLite files and a PostgreSQL per run, and the
principals the benchmarks act as."""

from __future__ import annotations

import contextlib
import os
import platform
import random
import resource
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

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


def wait_for_health(base: str, popen: Any, *, seconds: float, what: str) -> None:
    """Wait until ``base``/healthz answers 200; stop the bench (SystemExit) when the
    server process ``popen`` exits first or ``seconds`` pass."""
    import httpx

    deadline = time.monotonic() + seconds
    while True:
        if popen.poll() is not None:
            raise SystemExit(f"{what} exited with {popen.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        if time.monotonic() > deadline:
            raise SystemExit(f"{what} did not start within {seconds:g} s")
        time.sleep(0.1)


@contextlib.contextmanager
def local_server(
    command: Callable[[int], list[str]],
    *,
    what: str,
    seconds: float = 60,
    env: dict[str, str] | None = None,
    quiet: bool = True,
) -> Iterator[str]:
    """A server process on a free port of 127.0.0.1: ``command(port)`` started from the
    bench folder in a process group of its own, its base URL yielded once ``/healthz``
    answers (:func:`wait_for_health`), the group stopped when the block ends, whatever
    ends it (:func:`stop`). ``quiet``: its output is dropped."""
    import subprocess

    port = free_port()
    output = subprocess.DEVNULL if quiet else None
    popen = subprocess.Popen(  # a fixed command line, no shell
        command(port),
        cwd=Path(__file__).parent,
        env=env,
        stdout=output,
        stderr=output,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_health(base, popen, seconds=seconds, what=what)
        yield base
    finally:
        stop(popen)


def stop(popen: Any) -> None:
    """Stop a process started in its own group: SIGTERM to the group, then SIGKILL."""
    import os
    import signal
    import subprocess

    if popen.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(popen.pid, signal.SIGTERM)
    try:
        popen.wait(timeout=10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(popen.pid, signal.SIGKILL)
        popen.wait(timeout=10)


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


# Generated leads at scale (bench/search.py, bench/pages.py --leads 1000000).

FIRST = (
    "ann anna bob carla dana david emil eva frank grace hana ivan jonas julia karl lena "
    "liam maria marco nina olga omar paul petra quinn rosa sam sara tom uma vera will yara zoe"
)
LAST = (
    "lee smith meyer garcia novak rossi kim tanaka brown weber silva khan dubois "
    "ivanova jensen moreau costa walsh berg young adams lopez schmidt fischer"
)
SYLLABLES = (
    "nor th wind ac me glo bex ini tech um bre lla stark hoo li vand ley tyr rell "
    "cy ber dyne so ylent wa yne pie d piper glob o mega"
)
STAGES = ("lead",) * 6 + ("mql", "sal", "sql", "nurture", "disqualified", "customer")
SOURCES = ("webinar", "ads", "seo", "referral", "events", "partner")


def company(rng: random.Random) -> str:
    parts = SYLLABLES.split()
    return "".join(rng.choice(parts) for _ in range(rng.randint(2, 3))).title()


def fill(
    ctx: Context,
    n: int,
    seed: int,
    *,
    first_id: int = 1,
    created: Callable[[random.Random], str] | None = None,
    stages: Sequence[str] = STAGES,
) -> float:
    """Write ``n`` generated leads (ids from ``first_id``), about 60% of them scored
    (contract version 1), straight to the driver with ``executemany``; then ``ANALYZE``.
    ``created`` draws each lead's creation time (``YYYY-MM-DD HH:MM:SS.ffffff``, UTC);
    by default all are created on 2026-01-01. Each lead's stage is drawn from ``stages``
    (repeat a stage to weight it). Returns the seconds it took."""
    rng = random.Random(seed)
    first, last = FIRST.split(), LAST.split()
    started = time.perf_counter()
    batch = 20_000
    stamp = "2026-01-01 09:00:00.000000"
    raw = ctx.engine.raw_connection()
    try:
        cursor = raw.cursor()
        mark = "?" if ctx.dialect == "sqlite" else "%s"
        lead_sql = (
            "INSERT INTO leads (id, email, email_key, email_domain, first_name, last_name,"
            " company, company_key, source, attributes, stage, stage_changed_at, created_at,"
            " updated_at, activity_count, reached_stages, handoff_outcomes) VALUES ("
            + ", ".join([mark] * 14)
            + ", 0, 0, 0)"
        )
        score_sql = (
            "INSERT INTO lead_scores (lead_id, contract_version, fit, engagement, total, grade,"
            " state, scored_at) VALUES (" + ", ".join([mark] * 8) + ")"
        )
        last_id = first_id + n - 1
        for low in range(first_id, last_id + 1, batch):
            rows, scores = [], []
            for i in range(low, min(last_id, low + batch - 1) + 1):
                when = stamp if created is None else created(rng)
                f, la, co = rng.choice(first), rng.choice(last), company(rng)
                domain = f"{co.lower()}.example"
                email = f"{f}.{la}{i}@{domain}"
                rows.append(
                    (
                        i,
                        email,
                        email,
                        domain,
                        f.title(),
                        la.title(),
                        co,
                        co.lower(),
                        rng.choice(SOURCES),
                        "{}",
                        rng.choice(stages),
                        when,
                        when,
                        when,
                    )
                )
                if rng.random() < 0.6:
                    fit, eng = rng.randint(0, 60), rng.randint(0, 60)
                    grade = "A" if fit >= 40 else "B" if fit >= 25 else "C" if fit >= 10 else "D"
                    scores.append((i, 1, fit, eng, fit + eng, grade, "{}", when))
            cursor.executemany(lead_sql, rows)
            cursor.executemany(score_sql, scores)
            raw.commit()
        cursor.execute("ANALYZE")
        raw.commit()
    finally:
        raw.close()
    return time.perf_counter() - started


def postgres_database(url: str, name: str) -> str:
    """A new empty database ``name`` on the server of ``url``: its URL."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(f"CREATE DATABASE {name}")
    base, _, query = url.partition("?")
    return f"{base.rpartition('/')[0]}/{name}" + (f"?{query}" if query else "")


class ServerCpu:
    """CPU seconds of a local PostgreSQL's backends (the postmaster's children, read
    from ``/proc`` every 0.1 s on a thread, so that a backend that exits keeps its share
    up to its last reading); 0 where there is no ``/proc``."""

    def __init__(self, url: str) -> None:
        import threading

        import psycopg

        with psycopg.connect(url) as connection:
            data_dir = connection.execute("SHOW data_directory").fetchone()[0]  # type: ignore[index]
        self.pid = int((Path(data_dir) / "postmaster.pid").read_text().split()[0])
        self.first: dict[int, float] = {}
        self.last: dict[int, float] = {}
        self.lock = threading.Lock()
        self.sample(first=True)
        self.stopping = threading.Event()
        threading.Thread(target=self.loop, daemon=True).start()

    def sample(self, first: bool = False) -> None:
        tick = os.sysconf("SC_CLK_TCK")
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rpartition(")")[2].split()
            except OSError:
                continue
            if int(fields[1]) != self.pid:  # the parent's pid
                continue
            pid, seconds = int(stat.parent.name), (int(fields[11]) + int(fields[12])) / tick
            with self.lock:
                if first:
                    self.first[pid] = seconds
                self.first.setdefault(pid, 0.0)
                self.last[pid] = seconds

    def loop(self) -> None:
        while not self.stopping.wait(0.1):
            self.sample()

    def now(self) -> float:
        """CPU seconds of the backends since this sampler started."""
        self.sample()
        with self.lock:
            return sum(v - self.first.get(p, 0.0) for p, v in self.last.items())

    def close(self) -> None:
        self.stopping.set()


# --- where the CPU goes -------------------------------------------------------------------

PARTS = ("HTTP server", "worker", "PostgreSQL", "wrk")
"""The processes whose CPU a measurement adds up, per answered request."""


@dataclass(frozen=True)
class Meter:
    """This run's own processes, so that neither another cluster on the machine nor
    another bench's server is counted: PostgreSQL's postmaster (from ``postmaster.pid``
    in the data folder the URL names) and its children, the HTTP server's process group
    (the process listening on ``port`` leads it: ``baton serve`` or the floor, started
    in sessions of their own) and the worker's."""

    postmaster: int | None
    port: int
    worker: int | None = None

    @classmethod
    def of(cls, url: str, base: str, worker: int | None = None) -> Meter:
        host = parse_qs(urlsplit(url.replace("+psycopg", "")).query).get("host", [""])[0]
        postmaster = None
        if host and (Path(host) / "postmaster.pid").is_file():
            postmaster = int((Path(host) / "postmaster.pid").read_text().split()[0])
        if url.startswith("postgresql") and postmaster is None:
            raise SystemExit(
                f"PostgreSQL's postmaster.pid not found under {host!r}: its CPU would read 0"
            )
        return cls(postmaster, int(base.rsplit(":", 1)[1]), worker)

    def seconds(self) -> dict[str, float]:
        """CPU seconds (user + system, with those of children already reaped: backends
        and autovacuum workers come and go) of each of :data:`PARTS` so far, read from
        ``/proc`` (Linux; empty elsewhere). ``wrk`` ends with each measurement: its
        share is the bench's own finished children's."""
        proc = Path("/proc")
        if not proc.is_dir():
            return {}
        ticks = os.sysconf("SC_CLK_TCK")
        stats: dict[int, list[str]] = {}
        for entry in proc.iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError):
                    stats[int(entry.name)] = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        port = f"{self.port}".encode()
        used = dict.fromkeys(PARTS, 0.0)
        for pid, fields in stats.items():
            parent, group = int(fields[1]), int(fields[2])
            if self.postmaster is not None and self.postmaster in (pid, parent):
                part = "PostgreSQL"
            elif self.worker is not None and group == self.worker:
                part = "worker"
            elif group in stats and _listens_on(group, port):
                part = "HTTP server"
            else:
                continue
            used[part] += sum(int(f) for f in fields[11:15]) / ticks
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        used["wrk"] = children.ru_utime + children.ru_stime
        return used


def _listens_on(leader: int, port: bytes) -> bool:
    """Whether the process group ``leader`` is a server started on ``port`` (its
    command line names it: ``--port N`` for ``baton serve``, ``port=N`` for the
    floor)."""
    try:
        line = Path(f"/proc/{leader}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return False
    return b"--port " + port + b" " in line + b" " or b"port=" + port + b"," in line
