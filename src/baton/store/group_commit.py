"""Group commit: concurrent small writes committed together by one writer.

A capture is a few milliseconds of work, and on SQLite every one of them also pays for
its own write turn, ``BEGIN IMMEDIATE`` and commit, one after the other. So concurrent
writes join a group: the first thread to arrive becomes the **leader**, takes the write
turn (:func:`baton.store.engine.write_turn`), runs every write waiting at that moment
and commits once; each thread gets its own result or its own exception. Writes rarely
fail (their input was validated before), so a group first runs without savepoints; only
if one of its writes raises is the group rolled back and run again with each write in
its own ``SAVEPOINT`` (two statements a write saved in the usual case). The others
wait on their own event meanwhile; when a group is done and writes are waiting, the
oldest waiting thread leads the next group.

A caller on an event loop (the API's capture) awaits its write instead
(:meth:`GroupCommit.run_async`): no thread is held while it waits, and the engine's
**writer thread** leads the groups whose first write is awaited. When a group is done,
each loop is told once (one ``call_soon_threadsafe`` for all of its writes); a thread
per write took one wake-up each, and with eight waiting the leader spent a fifth of
its time handing the GIL round (measured with py-spy's ``--gil``).

A group hands each run of consecutive works that know how to run together (a
``run_together(connection, works)``, as :class:`baton.services.leads.Capture` has) to
it, so the captures of new people are written with one statement per step for all of
them; any other work runs alone, in its place.

On PostgreSQL, where row locks do the queueing, :data:`POSTGRES_LANES` groups are in
flight at once, each a transaction of its own: to each other they are concurrent
transactions, as the same writes without grouping would be.

What a caller may rely on:

* each write runs exactly as it would in a transaction of its own, in arrival order,
  and sees the writes before it (the same database state as one transaction per write);
* a write that raises fails alone: its savepoint is rolled back, the others commit
  (they ran once before, in the attempt without savepoints that was rolled back: a
  write's work may run twice, as a retried write's does, and must not act outside
  the database);
* a write is answered only after its group committed, so an answer always means saved;
  if the commit itself fails, every write of the group gets that error and nothing of
  the group is saved;
* a write waits no longer than the engine's write timeout
  (``BATON_SQLITE_WRITE_TIMEOUT_SECONDS``) counted from its own arrival, as without
  grouping: one still queued then, or whose group's turn did not come in time, gets
  "database is locked" (503) with nothing saved, and only it;
* a thread that already holds the write turn (a write inside a write) runs its write
  directly, in a transaction of its own, so grouping never waits for itself;
* all of this holds alike for awaited writes, and for groups that mix both (an awaited
  write past its deadline while still queued is taken out by a timer on its loop).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Engine
from sqlalchemy.engine import Connection

from baton.store.engine import database_is_locked, write_queue, write_timeout, write_turn

T = TypeVar("T")

_MEMO = "baton.group_memo"

log = logging.getLogger("baton.store")


def group_memo(connection: Connection) -> dict[str, Any] | None:
    """A dict that lives as long as the transaction of the group ``connection`` runs
    (None outside a group): for a read every write of the group would repeat and no
    write of a group changes, such as the active contract, which a group's transaction
    keeps from changing (SQLite: the group holds the write lock; PostgreSQL: the share
    lock of the first read is held to the commit). Emptied when a write's savepoint is
    rolled back, since that releases the locks the write took."""
    memo: dict[str, Any] | None = connection.info.get(_MEMO)
    return memo


LOCKED_READS_ONLY = "baton.locked_reads_only"
"""Set in a :func:`transaction_memo`: only a read that holds what it read until the
transaction ends may be remembered there (a group's memo also keeps a read of "none"
that no lock holds, one read per group; see
:func:`baton.services.contract_rules.active_contract_in`)."""


@contextmanager
def transaction_memo(connection: Connection) -> Iterator[None]:
    """A :func:`group_memo` for the rest of the transaction of ``connection``, a write
    outside any group (a hook request's processing on PostgreSQL, where its retried
    runs take an advisory lock no group takes): its steps read the active contract
    once, as a group's do. Nothing when a memo is there already (a group's). The
    caller empties it with :func:`forget_memo` when it rolls a savepoint back."""
    if _MEMO in connection.info:
        yield
        return
    with _memo_held(connection, {LOCKED_READS_ONLY: True}):
        yield


@contextmanager
def _memo_held(connection: Connection, memo: dict[str, Any]) -> Iterator[None]:
    """``memo`` as the transaction's memo of ``connection`` while the block runs."""
    info = connection.info  # (read once: a connection invalidated meanwhile refuses it)
    info[_MEMO] = memo
    try:
        yield
    finally:
        info.pop(_MEMO, None)


def forget_memo(connection: Connection) -> None:
    """Empty the memo of the transaction of ``connection`` (if any) after a savepoint's
    rollback: on PostgreSQL that releases the share lock a read inside it took, so what
    the memo says may change from now on."""
    memo = group_memo(connection)
    if memo is not None:
        kind = memo.get(LOCKED_READS_ONLY)
        memo.clear()
        if kind is not None:
            memo[LOCKED_READS_ONLY] = kind


WRITER_IDLE_SECONDS = 5.0
"""How long a writer thread waits for another group before it ends."""

POSTGRES_LANES = 2
"""Groups in flight at once on PostgreSQL, each in its own transaction (row locks do
the queueing there): one group at a time waits out every round trip of its
transaction, however idle the process; two keep the database busy while groups still
form under load."""

MAX_GROUP = 32
"""Writes per group at most: a group holds the write turn for all of them (a capture is
a few ms), so a burst of 64 is committed in two groups instead of one long hold."""


@dataclass(eq=False)
class _Write(Generic[T]):
    work: Callable[[Connection], T]
    deadline: float | None = None
    """When its wait ends (``time.monotonic()``: arrival plus the engine's write
    timeout); None: no bound (PostgreSQL)."""
    ready: threading.Event | None = None
    """How a thread's write (:meth:`GroupCommit.run`) hears it is done or leads next."""
    future: asyncio.Future[None] | None = None
    """How a write awaited on an event loop (:meth:`GroupCommit.run_async`) hears it is
    done; it never leads (the writer thread does)."""
    done: bool = False
    result: Any = None
    error: BaseException | None = None

    def outcome(self) -> T:
        if self.error is not None:
            raise self.error
        return self.result  # type: ignore[no-any-return]


class GroupCommit:
    """The groups of one engine (one per process and database; see the module docs)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._mutex = threading.Lock()
        self._pending: list[_Write[Any]] = []
        self._lanes = 1 if write_queue(engine) is not None else POSTGRES_LANES
        """Groups in flight at once: one where writers take turns (SQLite)."""
        self._leaders = 0
        self._chosen: set[_Write[Any]] = set()
        """Queued writes told to lead a group (they may not give up then)."""
        self.groups = 0
        """Groups committed or failed (for tests and benchmarks)."""
        self._writers: list[threading.Thread] = []
        self._idle_writers = 0
        self._wake = threading.Condition(self._mutex)
        self._to_lead: collections.deque[_Write[Any]] = collections.deque()

    def run(self, work: Callable[[Connection], T]) -> T:
        """Run ``work(connection)`` in a group; return its result or raise its error."""
        queue = write_queue(self.engine)
        if queue is not None and queue.owned_by_me():
            with write_turn(self.engine), self.engine.begin() as connection:
                return work(connection)
        write: _Write[T] = _Write(work, self._deadline(), ready=threading.Event())
        if not self._join(write):
            if not self._wait(write):
                raise database_is_locked(write_timeout(self.engine) or 0.0)
            if write.done:
                return write.outcome()
        self._lead(write)
        return write.outcome()

    async def run_async(self, work: Callable[[Connection], T]) -> T:
        """:meth:`run` for a caller on an event loop: the same groups, the same outcome,
        but the caller's coroutine waits instead of a thread, and a group is led by this
        engine's writer thread; the loop hears once per group that its writes are done
        (one wake-up where threads took one each)."""
        loop = asyncio.get_running_loop()
        write: _Write[T] = _Write(work, self._deadline(), future=loop.create_future())
        self._join(write)
        assert write.future is not None
        expiry = None
        if write.deadline is not None:
            expiry = loop.call_at(
                loop.time() + max(0.0, write.deadline - time.monotonic()), self._expire, write
            )
        try:
            await write.future  # cancelled (the client left): the write goes on, unheard
        finally:
            # A cancelled wait keeps its timer: still queued at its deadline, the write
            # leaves the queue then, as a thread's does.
            if expiry is not None and not write.future.cancelled():
                expiry.cancel()
        return write.outcome()

    def _deadline(self) -> float | None:
        """When a write arriving now stops waiting: now plus the engine's write timeout
        (None on PostgreSQL: no bound)."""
        timeout = write_timeout(self.engine)
        return None if timeout is None else time.monotonic() + timeout

    def _join(self, write: _Write[Any]) -> bool:
        """Queue ``write``; True when no group was being led, so it leads the next one:
        a thread's write leads it itself, an awaited one through the writer thread."""
        with self._mutex:
            self._pending.append(write)
            if self._leaders >= self._lanes:
                return False
            self._choose(write)
            return True

    def _choose(self, write: _Write[Any]) -> None:
        """Make ``write`` lead a group (mutex held): a thread's write is told by its
        caller, an awaited one is handed to a writer thread."""
        self._leaders += 1
        self._chosen.add(write)
        if write.future is not None:
            self._hand_to_writer(write)

    def _expire(self, write: _Write[Any]) -> None:
        """On the loop at a write's deadline: one still queued gets "database is locked"
        and leaves the queue (one a leader took, or that leads next, is near its end)."""
        with self._mutex:
            if write.done or write in self._chosen or write not in self._pending:
                return
            self._pending.remove(write)
        write.error = database_is_locked(write_timeout(self.engine) or 0.0)
        if write.future is not None and not write.future.done():
            write.future.set_result(None)

    def _hand_to_writer(self, write: _Write[Any]) -> None:
        """Have a writer thread lead a group for ``write`` (mutex held): an idle one
        when there are more idle writers than groups handed over, else a new one (never
        more than one per lane; with every lane busy, the next writer free takes it).
        Only a writer counts itself idle, before its wait and again after it, however
        the wait ended (a wait that timed out as it was woken still finds the write)."""
        self._to_lead.append(write)
        if self._idle_writers >= len(self._to_lead):
            self._wake.notify()
            return
        self._writers = [thread for thread in self._writers if thread.is_alive()]
        if len(self._writers) < self._lanes:
            writer = threading.Thread(
                target=self._write_loop, name="baton-group-commit", daemon=True
            )
            self._writers.append(writer)
            writer.start()

    def _write_loop(self) -> None:
        """Lead the groups handed over; after :data:`WRITER_IDLE_SECONDS` with none the
        thread ends (the next awaited write starts another), so an engine let go of is
        not kept alive by its writer."""
        while True:
            with self._mutex:
                if not self._to_lead:
                    self._idle_writers += 1
                    try:
                        self._wake.wait(WRITER_IDLE_SECONDS)
                    finally:
                        self._idle_writers -= 1
                if not self._to_lead:
                    with contextlib.suppress(ValueError):
                        self._writers.remove(threading.current_thread())
                    return
                leader = self._to_lead.popleft()
            try:
                self._lead(leader)
            except BaseException:  # never die: the writes it led got their errors
                log.exception("group commit: the writer thread's group failed")

    def _wait(self, write: _Write[Any]) -> bool:
        """Wait until ``write`` is done or told to lead; False when its deadline came
        first while it was still queued (it is then taken out of the queue)."""
        assert write.ready is not None
        if write.deadline is None:
            write.ready.wait()
            return True
        if write.ready.wait(max(0.0, write.deadline - time.monotonic())):
            return True
        with self._mutex:
            if write not in self._chosen and write in self._pending:
                self._pending.remove(write)
                return False
        write.ready.wait()  # a leader has it, or it leads next: its outcome is near
        return True

    def _turn(self, leader: _Write[Any]) -> AbstractContextManager[None]:
        """The write turn a leader takes (SQLite's queue; nothing on PostgreSQL), waited
        for until the leader's own deadline."""
        if leader.deadline is None:
            return write_turn(self.engine)
        return write_turn(self.engine, max(0.0, leader.deadline - time.monotonic()))

    def _take(self, leader: _Write[Any]) -> list[_Write[Any]]:
        """The leader and the writes queued before and after it that no other leader
        was told to take, in arrival order, at most :data:`MAX_GROUP`."""
        with self._mutex:
            batch = [w for w in self._pending if w is leader or w not in self._chosen]
            batch = batch[:MAX_GROUP]
            if leader not in batch:
                batch[-1] = leader
            taken = set(batch)
            self._pending = [w for w in self._pending if w not in taken]
            return batch

    def _lead(self, leader: _Write[Any]) -> None:
        batch: list[_Write[Any]] = []
        try:
            with self._turn(leader):
                batch = self._take(leader)  # the writes that arrived while the turn came
                now = time.monotonic()
                # A thread that leads got the turn within its own time; the writer thread
                # may take a leader (an awaited write) past its deadline.
                late = [
                    w
                    for w in batch
                    if _past(w, now) and (w is not leader or leader.future is not None)
                ]
                for write in late:  # as a write of its own would have: 503, nothing saved
                    write.error = database_is_locked(write_timeout(self.engine) or 0.0)
                if any(w.error is None for w in batch):
                    self._commit([w for w in batch if w.error is None])
        except BaseException as error:  # no turn in time, the commit, an interruption
            if not batch:  # no turn: only the leader waited its whole time
                with self._mutex:
                    self._pending.remove(leader)
                batch = [leader]
            for write in batch:  # nothing of the group was saved
                write.error, write.result = error, None
        finally:
            with self._mutex:
                self.groups += 1
                self._leaders -= 1
                self._chosen.discard(leader)
                following = next((w for w in self._pending if w not in self._chosen), None)
                if following is not None:
                    self._choose(following)
            loops: dict[asyncio.AbstractEventLoop, list[_Write[Any]]] = {}
            for write in batch:
                write.done = True
                if write.ready is not None:
                    write.ready.set()
                elif write.future is not None:
                    loops.setdefault(write.future.get_loop(), []).append(write)
            for loop, writes in loops.items():
                with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits
                    loop.call_soon_threadsafe(_settle, writes)
            if following is not None and following.ready is not None:
                following.ready.set()  # not done: it leads the next group

    @contextmanager
    def _transaction(self, batch: list[_Write[Any]]) -> Iterator[Connection]:
        """The group's transaction. On SQLite its ``BEGIN IMMEDIATE`` waits for a writer
        outside Baton's turns (another program) no longer than the group's earliest
        deadline, so no write waits past its own timeout there either (the busy timeout
        of the connection is put back after)."""
        with self._begin(batch) as connection, _memo_held(connection, {}):
            if len(batch) > 1:
                _lock_together(connection, batch)
            yield connection

    @contextmanager
    def _begin(self, batch: list[_Write[Any]]) -> Iterator[Connection]:
        deadlines = [w.deadline for w in batch if w.deadline is not None]
        if not deadlines:
            with self.engine.begin() as connection:
                yield connection
            return
        usual = round((write_timeout(self.engine) or 0.0) * 1000)
        budget = max(1, round((min(deadlines) - time.monotonic()) * 1000))
        with self.engine.connect() as connection:
            raw = connection.connection.driver_connection
            assert raw is not None
            raw.execute(f"PRAGMA busy_timeout={min(budget, usual) if usual else budget}")
            try:
                with connection.begin():
                    yield connection
            finally:
                raw.execute(f"PRAGMA busy_timeout={usual}")

    def _commit(self, batch: list[_Write[Any]]) -> None:
        if len(batch) > 1 and self._commit_at_once(batch):
            return
        with self._transaction(batch) as connection:
            if len(batch) == 1:  # alone: its own transaction, no savepoint needed
                try:
                    batch[0].result = batch[0].work(connection)
                except Exception as error:
                    batch[0].error = error
                    connection.rollback()
                return
            for write in batch:
                savepoint = connection.begin_nested()
                try:
                    write.result = write.work(connection)
                except Exception as error:
                    savepoint.rollback()
                    # What the failed write read and cached may be gone with it (on
                    # PostgreSQL, the share lock that kept the active contract).
                    forget_memo(connection)
                    write.error = error
                else:
                    savepoint.commit()

    def _commit_at_once(self, batch: list[_Write[Any]]) -> bool:
        """Run the group without savepoints and commit it; False (nothing saved, no
        result set) when one of its writes raised."""
        results: list[Any] = []
        with self._transaction(batch) as connection:
            for works, together in _runs(batch):
                try:
                    if together is None:
                        results.append(works[0](connection))
                    else:
                        results.extend(together(connection, works))
                except Exception:
                    connection.rollback()
                    return False
        for write, result in zip(batch, results, strict=True):
            write.result = result
        return True


def _lock_together(connection: Connection, batch: list[_Write[Any]]) -> None:
    """Before anything of the group runs (and before any savepoint, so that the locks
    outlive a failed write's rollback), let each kind of work that has a
    ``lock_together(connection, works)`` lock what its works will write, in an order
    every group shares (:meth:`baton.services.leads.Capture.lock_together`)."""
    kinds: dict[Any, list[Callable[[Connection], Any]]] = {}
    for write in batch:
        lock = getattr(type(write.work), "lock_together", None)
        if lock is not None:
            kinds.setdefault(lock, []).append(write.work)
    for lock, works in kinds.items():
        lock(connection, works)


def _runs(
    batch: list[_Write[Any]],
) -> Iterator[tuple[list[Callable[[Connection], Any]], Callable[..., list[Any]] | None]]:
    """The group's works in order, as runs: consecutive works of one kind that has a
    ``run_together(connection, works)`` (one result per work, as if each were run in
    turn) come together with it; any other work comes alone, with None."""
    run: list[Callable[[Connection], Any]] = []
    together: Callable[..., list[Any]] | None = None
    for write in batch:
        kind = getattr(type(write.work), "run_together", None)
        if run and kind is not None and kind is together:
            run.append(write.work)
            continue
        if run:
            yield run, together
        run, together = [write.work], kind
    if run:
        yield run, together


def _settle(writes: list[_Write[Any]]) -> None:
    for write in writes:
        if write.future is not None and not write.future.done():
            write.future.set_result(None)


def _past(write: _Write[Any], now: float) -> bool:
    return write.deadline is not None and now >= write.deadline
