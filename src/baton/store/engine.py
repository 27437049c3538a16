"""Engine set-up for SQLite and PostgreSQL.

SQLite: WAL journal (readers never block the writer), foreign keys on, and write
transactions that begin IMMEDIATE, so that two writers queue at BEGIN instead of
failing halfway with "database is locked" after reading stale rows. Read-only
transactions (connection option ``baton_read_only``) begin DEFERRED. SQLite has no
percentile aggregate: ``baton_percentiles(...)`` is registered on every connection
(PostgreSQL's ``percentile_disc`` does the same work there).

SQLite allows one writer at a time, and its own waiting (the busy handler) is unfair:
a waiting connection sleeps and retries with growing pauses (up to 100 ms), so under
a burst some writers pass at once while others wait for seconds, and one that keeps
the lock busy (a long import) can starve the rest until their timeout answers 503.
So writers take turns before ``BEGIN IMMEDIATE`` (:class:`WriteQueue`): first come,
first served among the threads of a process (the waiting thread sleeps on its own
event and is handed the turn directly); between processes (the server, ``baton
worker``, a CLI import) through a lock file beside the database, where a process
that wants the turn again while another process waits lets it go first. SQLite's
busy timeout stays as the last resort for writers that bypass the queue (migrations).
"""

from __future__ import annotations

import json
import logging
import os
import select
import sqlite3
import threading
import time
import weakref
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import InvalidatePoolError, OperationalError

try:  # POSIX: processes take turns through a lock file; elsewhere threads only.
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

from baton.domain.reports import PERCENTILES, nearest_rank


class Percentiles:
    """SQLite aggregate ``baton_percentiles(a, b, ...)``: for each argument, how many
    non-NULL values it had and their nearest-rank percentiles
    :data:`~baton.domain.reports.PERCENTILES` (``[n, p50, p90]``, the percentiles NULL
    when n is 0), as one JSON list. Taking every measure of a report in one call keeps
    the per-row cost to a single call; values are sorted once per group."""

    def __init__(self) -> None:
        self.values: list[list[float]] = []

    def step(self, *values: float | None) -> None:
        if not self.values:
            self.values = [[] for _ in values]
        for column, value in zip(self.values, values, strict=True):
            if value is not None:
                column.append(value)

    def finalize(self) -> str:
        picked: list[list[float | None]] = []
        for column in self.values:
            column.sort()
            n = len(column)
            ranks = [column[nearest_rank(p, n) - 1] if n else None for p in PERCENTILES]
            picked.append([n, *ranks])
        return json.dumps(picked)


def make_engine(url: str, *, write_timeout: float = 30.0, **kwargs: Any) -> Engine:
    """An engine for ``url`` with Baton's connection rules applied. On SQLite, a write
    waits at most ``write_timeout`` seconds for its turn (then "database is locked",
    which the API answers with 503)."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": write_timeout}, **kwargs)
        _configure_sqlite(engine, write_timeout)
        _QUEUES[engine] = (_queue_for(engine), write_timeout)
        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    engine = create_engine(url, **kwargs)
    _check_on_checkout(engine)
    if url.startswith("postgresql+psycopg"):
        _cache_long_statements()
    return engine


CACHED_STATEMENT_LENGTH = 8192
"""The longest statement whose placeholders psycopg converts once per process (see
:func:`_cache_long_statements`)."""


def _cache_long_statements() -> None:
    """psycopg turns a statement's ``%(name)s`` placeholders into ``$1``… with a regular
    expression at every execution, and remembers the result (a 128-entry cache) only
    for statements of at most 4,096 bytes (``psycopg._queries.MAX_CACHED_STATEMENT_LENGTH``,
    which keeps ORMs' one-off multi-row inserts out; so does its limit of 50
    parameters, kept). A hand-raise's combined write (events, outbox row, rotation and
    chain: about 4,900 bytes, built once) was converted again at every hand-raise, about
    50 µs of client CPU each (measured): the limit is raised to
    :data:`CACHED_STATEMENT_LENGTH` for the process (never lowered; nothing happens if
    psycopg no longer has it)."""
    from psycopg import _queries

    limit = getattr(_queries, "MAX_CACHED_STATEMENT_LENGTH", None)
    if isinstance(limit, int) and limit < CACHED_STATEMENT_LENGTH:
        _queries.MAX_CACHED_STATEMENT_LENGTH = CACHED_STATEMENT_LENGTH


def _check_on_checkout(engine: Engine) -> None:
    """PostgreSQL: make sure a pooled connection is alive before a transaction uses
    it, without a round trip when it is. SQLAlchemy's pre-ping sends ``SELECT 1`` at
    every checkout (one round trip per transaction, measured on a hand-raise). A server
    that ended a session (a restart, ``pg_terminate_backend``, an idle timeout) has
    sent its last message and closed the socket, which makes the socket readable, and
    an idle connection between transactions has nothing else to read (Baton does not
    LISTEN; anything else read is pinged, which costs only that round trip). So the
    socket is polled (no wait), and only a connection with something to read, or one
    the driver knows is closed, is pinged; a failed ping invalidates the pool (as a
    failed pre-ping does) and SQLAlchemy checks out a new connection: the retry is
    safe, since nothing of the transaction was sent. A server host gone without
    closing its sockets is found by the first statement, after the network's timeout
    (a pre-ping would have waited for the same timeout)."""
    dialect = engine.dialect

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        if not dbapi_connection.closed and not _has_news(dbapi_connection.fileno()):
            return
        try:
            alive = not dbapi_connection.closed and dialect.do_ping(dbapi_connection)
        except dialect.loaded_dbapi.Error as error:
            if not dialect.is_disconnect(error, dbapi_connection, None):
                raise
            alive = False
        if not alive:
            raise InvalidatePoolError("the database closed the connection")


def _has_news(fd: int) -> bool:
    """Whether the socket ``fd`` has something to read (or was closed), now."""
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        return bool(poller.poll(0))
    return bool(select.select([fd], [], [], 0)[0])  # pragma: no cover - Windows


def _configure_sqlite(engine: Engine, write_timeout: float) -> None:
    busy_ms = max(1, round(write_timeout * 1000))

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={busy_ms}")
        cursor.execute("PRAGMA cache_size=-65536")
        cursor.execute("PRAGMA temp_store=MEMORY")
        cursor.close()
        dbapi_connection.create_aggregate("baton_percentiles", -1, Percentiles)

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        if connection.get_execution_options().get("baton_read_only"):
            connection.exec_driver_sql("BEGIN")
        else:
            connection.exec_driver_sql("BEGIN IMMEDIATE")


# --- taking turns to write (SQLite) ------------------------------------------------------

log = logging.getLogger("baton.store")

POLL_SECONDS = 0.001
"""How often the thread at the head of a process's queue looks whether another process
has finished writing (only while processes contend)."""
COURTESY_SECONDS = 0.003
"""How long at most a process that wants the turn again waits first when another
process is already waiting (longer than that process's poll, so it gets there first):
until that process has the turn, looked at every :data:`COURTESY_POLL_SECONDS`."""
COURTESY_POLL_SECONDS = 0.0002
HOLD_SECONDS = 0.2
"""How long a process may keep the turn for its own queued writers, one after the
other, while no other process waits for it (a batch of turns, not one write per round:
eight writers in a burst would otherwise each wait a whole round)."""


def database_is_locked(waited: float) -> OperationalError:
    """The error SQLite itself raises when a write waited too long (the API answers 503,
    the CLI says the database is busy)."""
    return OperationalError(
        "BEGIN IMMEDIATE",
        None,
        sqlite3.OperationalError(
            f"database is locked: no turn to write within {waited:g} s; nothing was saved"
        ),
    )


@dataclass(eq=False)
class _Waiter:
    thread: int
    ready: threading.Event = field(default_factory=threading.Event)


class WriteQueue:
    """Write turns on one SQLite database: first come, first served among the threads
    of this process, and taking turns with other processes through a lock file.

    Threads: the owner hands the turn to the oldest waiter directly when it is done,
    so no writer overtakes one that came earlier and none sleeps longer than needed.
    A thread that already has the turn (a write inside a write) keeps it.

    Processes: POSIX record locks on ``lock_path``: byte 0 is the turn, byte 1 is
    shared by every process waiting for it. A process keeps the turn for the writers
    queued in it for up to :data:`HOLD_SECONDS` while no other process waits, then gives
    it up (a worker whose lanes wrote one after the other kept a waiting server's
    captures out for up to 90 ms). One that wants it again first looks whether another
    process waits (byte 1 taken): if so it waits, at most :data:`COURTESY_SECONDS`,
    until that process has taken the turn (it then stops announcing), so the waiting
    process, polling every :data:`POLL_SECONDS`, goes first. Record locks belong to the
    process, which is why the queue (one per database file and process) lets one thread
    at a time take them, and why the file is opened for a turn and closed after it
    (closing any descriptor of the file would drop the process's locks)."""

    def __init__(self, lock_path: Path | None) -> None:
        self.lock_path = lock_path
        self._mutex = threading.Lock()
        self._owner: int | None = None
        self._depth = 0
        self._waiters: deque[_Waiter] = deque()
        self._fd: int | None = None
        self._held_since = 0.0
        self._warned = False

    def owned_by_me(self) -> bool:
        """Whether the calling thread holds the turn (a write inside a write)."""
        with self._mutex:
            return self._owner == threading.get_ident()

    @property
    def waiting(self) -> int:
        """Threads of this process waiting for a turn."""
        with self._mutex:
            return len(self._waiters)

    @contextmanager
    def turn(self, timeout: float) -> Iterator[None]:
        """Hold the write turn for the block (reentrant for the thread that has it);
        :func:`database_is_locked` when it does not come within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        if not self._enter(deadline):
            raise database_is_locked(timeout)
        if self._depth > 1:
            try:
                yield
            finally:
                self._leave()
            return
        try:
            if self._fd is None:  # else the process kept it for this writer
                self._lock_file(deadline, timeout)
        except BaseException:
            self._leave()
            raise
        try:
            yield
        finally:
            self._leave()

    # -- threads ---------------------------------------------------------------------

    def _enter(self, deadline: float) -> bool:
        me = threading.get_ident()
        with self._mutex:
            if self._owner == me:
                self._depth += 1
                return True
            if self._owner is None and not self._waiters:
                self._owner, self._depth = me, 1
                return True
            waiter = _Waiter(me)
            self._waiters.append(waiter)
        waiter.ready.wait(max(0.0, deadline - time.monotonic()))
        with self._mutex:
            if self._owner == me:  # handed over, perhaps just as the wait timed out
                return True
            self._waiters.remove(waiter)
            return False

    def _leave(self) -> None:
        with self._mutex:
            self._depth -= 1
            if self._depth > 0:
                return
            held = time.monotonic() - self._held_since
            if self._fd is not None and not (
                self._waiters and held < HOLD_SECONDS and not self._others_wait(self._fd)
            ):
                self._unlock_file()
            if self._waiters:
                following = self._waiters.popleft()
                self._owner, self._depth = following.thread, 1
                following.ready.set()
            else:
                self._owner = None

    # -- processes -------------------------------------------------------------------

    def _lock_file(self, deadline: float, timeout: float) -> None:
        if self.lock_path is None or fcntl is None:
            return
        try:
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:  # a read-only folder: SQLite's own waiting still works
            if not self._warned:
                self._warned = True
                log.warning("no write turns across processes (%s): %s", self.lock_path, exc)
            return
        announced = False
        try:
            courteous = self._others_wait(fd)
            if not courteous and _try_lock(fd, fcntl.LOCK_EX, 0):
                self._fd, self._held_since = fd, time.monotonic()
                return
            if courteous:
                # The waiting process goes first: it stops announcing once it has the
                # turn, and this one then queues behind it at once (a fixed pause left
                # the database idle for most of it after a short write).
                until = time.monotonic() + COURTESY_SECONDS
                while time.monotonic() < until and self._others_wait(fd):
                    time.sleep(COURTESY_POLL_SECONDS)
            while not _try_lock(fd, fcntl.LOCK_SH, 1):  # a probe holds it for a moment
                _wait_or_give_up(deadline, timeout)
            announced = True
            while not _try_lock(fd, fcntl.LOCK_EX, 0):
                _wait_or_give_up(deadline, timeout)
            self._fd, self._held_since = fd, time.monotonic()
        except BaseException:
            os.close(fd)  # drops every lock this process has on the file
            raise
        finally:
            if announced and self._fd == fd:
                fcntl.lockf(fd, fcntl.LOCK_UN, 1, 1)

    def _unlock_file(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # releases the turn

    @staticmethod
    def _others_wait(fd: int) -> bool:
        """Whether another process announced that it waits for the turn."""
        if not _try_lock(fd, fcntl.LOCK_EX, 1):
            return True
        fcntl.lockf(fd, fcntl.LOCK_UN, 1, 1)
        return False


def _try_lock(fd: int, mode: int, byte: int) -> bool:
    try:
        fcntl.lockf(fd, mode | fcntl.LOCK_NB, 1, byte)
    except OSError:
        return False
    return True


def _wait_or_give_up(deadline: float, timeout: float) -> None:
    if time.monotonic() >= deadline:
        raise database_is_locked(timeout)
    time.sleep(POLL_SECONDS)


_QUEUES: weakref.WeakKeyDictionary[Engine, tuple[WriteQueue, float]] = weakref.WeakKeyDictionary()
"""Each SQLite engine's queue and write timeout."""
_BY_FILE: weakref.WeakValueDictionary[str, WriteQueue] = weakref.WeakValueDictionary()
_BY_FILE_LOCK = threading.Lock()


def _queue_for(engine: Engine) -> WriteQueue:
    """One queue per database file and process, shared by every engine on the file (an
    in-memory database has no file and no other process: threads only)."""
    database = make_url(str(engine.url)).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return WriteQueue(None)
    path = Path(database).resolve()
    with _BY_FILE_LOCK:
        found = _BY_FILE.get(str(path))
        if found is None:
            found = WriteQueue(path.with_name(path.name + "-writers"))
            _BY_FILE[str(path)] = found
        return found


@contextmanager
def write_turn(engine: Engine, timeout: float | None = None) -> Iterator[None]:
    """Hold the engine's write turn for the block (SQLite; nothing elsewhere, where
    PostgreSQL's row locks do the queueing). ``timeout``: wait at most this long
    (default: the engine's write timeout)."""
    found = _QUEUES.get(engine)
    if found is None:
        yield
        return
    queue, configured = found
    with queue.turn(configured if timeout is None else timeout):
        yield


def write_timeout(engine: Engine) -> float | None:
    """How long a writer of this engine waits for its turn (None: no queue, PostgreSQL)."""
    found = _QUEUES.get(engine)
    return found[1] if found else None


def write_queue(engine: Engine) -> WriteQueue | None:
    """The queue of an SQLite engine (for tests and benchmarks to look into)."""
    found = _QUEUES.get(engine)
    return found[0] if found else None
