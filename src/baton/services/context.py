"""What every use case needs: the database, the clock and the settings.

A :class:`Context` is cheap to pass around and holds no per-request state. Use cases take
it as their first argument and the acting user or system as the keyword ``actor``.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Engine, func, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from starlette.concurrency import run_in_threadpool

from baton.config import Settings
from baton.domain.clock import Clock, SystemClock, ensure_utc
from baton.store.engine import make_engine, write_turn
from baton.store.group_commit import GroupCommit
from baton.store.migrate import upgrade

T = TypeVar("T")
log = logging.getLogger(__name__)
_GROUPS_LOCK = threading.Lock()


@dataclass
class Context:
    """The engine, the injected clock and the settings."""

    engine: Engine
    settings: Settings
    clock: Clock = field(default_factory=SystemClock)
    caches: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    """Per-process caches that live as long as the context (verified tokens)."""
    _groups: GroupCommit | None = field(default=None, init=False, repr=False, compare=False)

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """One write transaction: committed when the block ends, rolled back whole if it
        raises. On SQLite the writer first waits for its turn (first come, first served,
        see :mod:`baton.store.engine`), then begins IMMEDIATE."""
        with write_turn(self.engine), self.engine.begin() as connection:
            yield connection

    def write_grouped(self, work: Callable[[Connection], T]) -> T:
        """Run ``work(connection)`` as one write, committed together with the writes
        other threads of this process run at the same moment (group commit, see
        :mod:`baton.store.group_commit`): the same outcome as :meth:`write` for the
        caller (its own result or its own exception, answered once committed), one
        commit for many. Only where :attr:`group_commit` says so; else this is
        :meth:`write`.

        A write PostgreSQL aborts as a deadlock victim or a serialization failure
        (nothing of it saved) is run once more from the start (:func:`retrying`), since
        ``work`` is the whole use case: ``work`` must therefore act on the database only
        (no state of its own that a second run would change twice)."""
        return retrying(lambda _attempt: self._write_grouped_once(work), attempts=2)

    def write_retrying(
        self,
        work: Callable[[Connection], T],
        *,
        attempts: int = 2,
        retry_lock: int | None = None,
    ) -> T:
        """Run ``work(connection)`` in one write transaction, and again from the start,
        up to ``attempts`` times in all, when PostgreSQL aborted it as a deadlock victim
        or a serialization failure (:func:`retrying`; ``work``: database work only).

        ``retry_lock``: a PostgreSQL advisory lock that every second or later attempt
        takes first, so the writes that were aborted once run one at a time and never
        deadlock with each other again (for work whose lock order cannot be fixed in
        advance). On SQLite the writer holds the whole database and nothing is aborted."""

        def attempt(number: int) -> T:
            with self.write() as connection:
                if number > 1 and retry_lock is not None and self.dialect == "postgresql":
                    connection.execute(select(func.pg_advisory_xact_lock(retry_lock)))
                return work(connection)

        return retrying(attempt, attempts=attempts)

    async def write_grouped_async(self, work: Callable[[Connection], T]) -> T:
        """:meth:`write_grouped` for a caller on an event loop (the API's capture): the
        same groups and outcome, awaited instead of holding a thread while it waits."""
        if not self.group_commit:
            return await run_in_threadpool(self.write_grouped, work)
        for number in (1, 2):
            try:
                return await self._group_commit().run_async(work)
            except DBAPIError as error:
                await asyncio.sleep(_pause_before_retry(error, number, attempts=2))
        raise AssertionError("unreachable")

    def _group_commit(self) -> GroupCommit:
        if self._groups is None:
            with _GROUPS_LOCK:
                if self._groups is None:
                    self._groups = GroupCommit(self.engine)
        return self._groups

    def _write_grouped_once(self, work: Callable[[Connection], T]) -> T:
        if not self.group_commit:
            with self.write() as connection:
                return work(connection)
        return self._group_commit().run(work)

    @property
    def group_commit(self) -> bool:
        """Whether :meth:`write_grouped` groups writes (``auto``, the default: yes, on
        both databases; before 0.12 PostgreSQL did not, since one group at a time
        serialised its writers: see :data:`~baton.store.group_commit.POSTGRES_LANES`)."""
        return self.settings.group_commit != "off"

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """One read-only transaction (a consistent snapshot)."""
        with self.engine.connect() as connection:
            connection = connection.execution_options(baton_read_only=True)
            with connection.begin():
                yield connection

    def ping(self) -> None:
        """Raise if the database cannot answer a trivial query."""
        from sqlalchemy import text

        with self.read() as connection:
            connection.execute(text("SELECT 1"))

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name


RETRYABLE_SQLSTATES = frozenset({"40P01", "40001"})
"""PostgreSQL's deadlock_detected and serialization_failure: the transaction was
aborted whole, and running it again may succeed."""


def is_retryable(error: DBAPIError) -> bool:
    """Whether ``error`` aborted a PostgreSQL transaction that may be run again as is
    (a deadlock victim, a serialization failure)."""
    return getattr(error.orig, "sqlstate", None) in RETRYABLE_SQLSTATES


def retrying(run: Callable[[int], T], *, attempts: int) -> T:
    """``run(1)``, and ``run(2)``, ``run(3)``... after a short random pause each time the
    attempt before was aborted whole (:func:`is_retryable`), up to ``attempts`` runs;
    any other error, or the last attempt's, is raised. The pause grows with the attempt
    and is random, so two writers that deadlocked do not meet again at once."""
    if attempts < 1:
        raise ValueError("attempts must be at least 1")
    for number in range(1, attempts + 1):
        try:
            return run(number)
        except DBAPIError as error:
            time.sleep(_pause_before_retry(error, number, attempts=attempts))
    raise AssertionError("unreachable")


def _pause_before_retry(error: DBAPIError, number: int, *, attempts: int) -> float:
    """How long to wait before running an aborted write again (random, growing with the
    attempt); ``error`` itself, raised, when it is not worth another attempt (not an
    abort, or the last attempt's)."""
    if not is_retryable(error) or number == attempts:
        raise error
    log.info("a write was aborted by PostgreSQL (attempt %d); running it again", number)
    return random.uniform(0.01, 0.05) * number  # noqa: S311 (a jitter, no secret)


def database_now(ctx: Context, connection: Connection) -> datetime:
    """The time heartbeats and progress notes are written and judged by: the database's
    on PostgreSQL with the real clock (one clock for every host), else the context's
    clock."""
    if isinstance(ctx.clock, SystemClock) and connection.dialect.name == "postgresql":
        return ensure_utc(connection.execute(select(func.statement_timestamp())).scalar_one())
    return ctx.clock.now()


def open_context(
    settings: Settings | None = None, *, clock: Clock | None = None, migrate: bool = True
) -> Context:
    """Connect to the configured database, bring its schema up to date, and return the
    context every use case takes."""
    settings = settings or Settings()
    engine = make_engine(settings.database_url, write_timeout=settings.sqlite_write_timeout_seconds)
    if migrate:
        upgrade(engine)
    return Context(engine=engine, settings=settings, clock=clock or SystemClock())
