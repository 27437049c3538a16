"""Whether the active version's re-score of every lead has finished, kept where it is
cheap to read.

An activation makes its version active, then re-scores every lead in chunks that
commit one by one (:func:`baton.services.scoring.rescore_all`); stopped half way
(killed, Ctrl+C, a database error), it leaves the leads after the last chunk scored by
the older version. Telling that from the scores themselves means comparing every row of
``lead_scores`` with the active version (a million rows, no index on the version: a
full scan each time ``baton status`` is asked), so the re-score keeps a row of
``contract_rescores`` instead:

- :func:`begin_rescore_in`, in the activation's own transaction: the row, with the
  leads to re-score (:func:`leads_to_rescore`, counted just before), so there is no
  moment when the version is active and the row missing;
- :class:`RescoreNotes`, the re-score's ``progress``: the leads scored so far, noted at
  most every :data:`NOTE_EVERY_SECONDS` (one small write between chunks: PostgreSQL's
  chunks in flight together), or at every chunk in the chunk's own transaction where
  chunks commit one after the other (exact, at no cost of a transaction), once more
  when it stops on an error or Ctrl+C, and every
  :data:`ALIVE_EVERY_SECONDS` before its first chunk (the workers' start and the one
  pass over the events can take a minute: a row left unnoted that long would say the
  re-score stopped while it runs);
- :meth:`RescoreNotes.finished`: the row deleted when every lead was re-scored (by the
  activation, or by ``baton contract rescore`` afterwards).

:func:`unfinished_rescore_in` reads it back: one primary-key row joined to the active
version, for ``baton status``, ``baton contract list``, the contract page and
``GET /api/v1/status``. A progress note only ever updates an existing row, and only
the row of its own run (its version and ``started_at``): a re-score that another
activation overtook never brings back, moves or deletes a row a newer activation wrote
(one of the same version again included, after a rollback).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import and_, delete, func, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from baton.domain.clock import ensure_utc
from baton.domain.rescores import UnfinishedRescore, unfinished_rescore
from baton.services.context import Context, database_now
from baton.store.tables import contract_rescores, contracts, leads

if TYPE_CHECKING:  # not imported for real: `baton status` reads the row without numpy
    from baton.services.scoring import ActivationReport

log = logging.getLogger("baton.contracts")

NOTE_EVERY_SECONDS = 2.0
"""How often a running re-score writes how far it got: about one write per 2 s of a
20–30 s activation of 1,000,000 leads (chunks of 10,000 commit about every 0.2–0.3 s)."""

ALIVE_EVERY_SECONDS = 10.0
"""How often a re-score that has not reached its first chunk yet says it is alive
(``noted_at`` only): well within the minute during which a note means "it may still be
running" (:data:`baton.domain.rescores.RUNNING_WITHIN_SECONDS`)."""


def leads_to_rescore(ctx: Context) -> int:
    """The leads a re-score of every lead takes (those not merged into another), counted
    in a read of its own before the activation's write: on a SQLite file just copied,
    1,000,000 leads took 1.6 s to count, which inside the write would have held every
    other writer back as long."""
    with ctx.read() as connection:
        return int(
            connection.execute(
                select(func.count()).select_from(leads).where(leads.c.merged_into_id.is_(None))
            ).scalar_one()
        )


def begin_rescore_in(ctx: Context, connection: Connection, version: int, *, total: int) -> datetime:
    """In the transaction that activates ``version``: its re-score of ``total`` leads
    begins (the rows of versions no longer active go: their re-scores no longer matter,
    and one still running stops at its next chunk). Returns the run's ``started_at``,
    which its notes go by (:class:`RescoreNotes`)."""
    now = database_now(ctx, connection)
    connection.execute(delete(contract_rescores))
    connection.execute(
        insert(contract_rescores).values(
            version=version, total=total, scored=0, started_at=now, noted_at=now
        )
    )
    return now


def rescore_started_at(ctx: Context, version: int) -> datetime | None:
    """When the unfinished re-score of ``version`` began (None: it has none): what
    ``baton contract rescore`` finishes, so that its end removes that row."""
    with ctx.read() as connection:
        found = connection.execute(
            select(contract_rescores.c.started_at).where(contract_rescores.c.version == version)
        ).scalar()
    return None if found is None else ensure_utc(found)


class RescoreNotes:
    """The ``progress`` of a re-score of ``report.version``: passes each chunk on to
    ``progress(done, total)`` and ``watch(report, total)`` (the caller's), and notes in
    its run's row how far it got, at most every :data:`NOTE_EVERY_SECONDS`. Called
    between chunks, outside their transactions, one call at a time; where the chunks
    allow it, the note is written in each chunk's own transaction instead
    (:meth:`note_in`). ``started_at`` names the run's row (:func:`begin_rescore_in`,
    :func:`rescore_started_at`); None: the version has no row (a re-score of a version
    whose re-score finished), and nothing is noted. Use it as a context manager: until
    the first chunk, a thread notes every :data:`ALIVE_EVERY_SECONDS` that the run is
    alive."""

    def __init__(
        self,
        ctx: Context,
        report: ActivationReport,
        *,
        started_at: datetime | None,
        progress: Callable[[int, int], None] | None = None,
        watch: Callable[[ActivationReport, int], None] | None = None,
    ) -> None:
        self.ctx = ctx
        self.report = report
        self.started_at = started_at
        self.progress = progress
        self.watch = watch
        self.noted = 0
        self.total: int | None = None
        self.noted_at = time.monotonic()
        self.in_chunks = False
        """Whether the chunks note in their own transactions (:meth:`note_in`): then
        a call after a chunk's commit does not note too."""
        self.chunked = threading.Event()
        """Set at the first chunk (or the end): the alive notes stop."""

    def __enter__(self) -> RescoreNotes:
        if self.started_at is not None:
            threading.Thread(target=self._alive, name="baton-rescore-alive", daemon=True).start()
        return self

    def __exit__(self, *_: object) -> None:
        self.chunked.set()

    def _alive(self) -> None:
        while not self.chunked.wait(ALIVE_EVERY_SECONDS):
            try:
                with self.ctx.write() as connection:
                    if not self.chunked.is_set():
                        connection.execute(
                            update(contract_rescores)
                            .where(self._mine())
                            .values(noted_at=database_now(self.ctx, connection), stopped_at=None)
                        )
            except Exception:  # the re-score itself reports a database that fails
                log.debug("could not note that the re-score is alive", exc_info=True)

    def chunks_begin(self) -> None:
        """SQLite's chunks with worker processes are about to ask for their first reads:
        the alive notes stop now, so none commits between the asking and the chunks'
        own notes (it would have the first two chunks read their leads again)."""
        self.chunked.set()

    def __call__(self, done: int, total: int) -> None:
        self.chunked.set()
        self.total = total
        if self.progress is not None:
            self.progress(done, total)
        if self.watch is not None:
            self.watch(self.report, total)
        if not self.in_chunks and time.monotonic() - self.noted_at >= NOTE_EVERY_SECONDS:
            self._note(done)

    def note_in(self, connection: Connection, done: int, total: int) -> None:
        """In a chunk's own write transaction, before its commit (chunks that commit one
        after the other, ``baton.services.scoring.NotedInChunks``): note that ``done``
        leads will be scored once it commits, at every chunk, so a kill leaves the
        exact count. The chunk already holds the write turn, so the note costs no transaction of
        its own (one small update), and no other connection commits: the workers'
        reads of the next chunks asked before it stay usable (a note on its own
        connection had them asked again, about 90 ms of their CPU each). Killed before
        the commit, neither the chunk nor its note is kept; a chunk that fails after
        it leaves :meth:`stopped` to note again (``report.leads_scored`` is then
        behind the note)."""
        self.chunked.set()
        self.total = total
        self.in_chunks = True
        self._note_on(connection, done)

    def _mine(self) -> ColumnElement[bool]:
        return and_(
            contract_rescores.c.version == self.report.version,
            contract_rescores.c.started_at == self.started_at,
        )

    def _note(self, done: int, *, stopped: bool = False) -> None:
        if self.started_at is None:
            return
        with self.ctx.write() as connection:
            self._note_on(connection, done, stopped=stopped)

    def _note_on(self, connection: Connection, done: int, *, stopped: bool = False) -> None:
        if self.started_at is None:
            return
        now = database_now(self.ctx, connection)
        values: dict[str, object] = {"scored": done, "stopped_at": now if stopped else None}
        if self.total is not None:
            values["total"] = self.total
        connection.execute(
            update(contract_rescores).where(self._mine()).values(**values, noted_at=now)
        )
        self.noted = done
        self.noted_at = time.monotonic()

    def stopped(self) -> None:
        """The re-score stopped before its end: note how far it got, and that it stopped
        (so nobody is told it may still be running). A database that fails here too
        only costs that: the note's age then tells, as after a kill."""
        self.chunked.set()
        try:
            self._note(self.report.leads_scored, stopped=True)
        except Exception:
            log.warning(
                "could not note how far the re-score of version %s got",
                self.report.version,
                exc_info=True,
            )

    def finished(self) -> None:
        """Every lead was re-scored with the version, by this run: its row goes (a
        newer run's row, of another version or of this one activated again, stays)."""
        self.chunked.set()
        if self.started_at is None:
            return
        with self.ctx.write() as connection:
            connection.execute(delete(contract_rescores).where(self._mine()))


def unfinished_rescore_in(connection: Connection, *, now: datetime) -> UnfinishedRescore | None:
    """The active version's re-score, when it has not finished (one small read)."""
    row = connection.execute(
        select(
            contract_rescores.c.version,
            contract_rescores.c.scored,
            contract_rescores.c.total,
            contract_rescores.c.started_at,
            contract_rescores.c.noted_at,
            contract_rescores.c.stopped_at,
        )
        .join(contracts, contracts.c.version == contract_rescores.c.version)
        .where(contracts.c.status == "active")
    ).first()
    if row is None:
        return None
    return unfinished_rescore(
        int(row.version),
        scored=int(row.scored),
        total=int(row.total),
        started_at=row.started_at,
        noted_at=row.noted_at,
        now=now,
        stopped=row.stopped_at is not None,
    )
