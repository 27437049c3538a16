"""SQLite's re-score with worker processes notes how far it got inside a chunk's own
write transaction (``RescoreNotes.note_in``, called by ``_rescore_chunks_read_ahead``):
no transaction of its own, no commit by another connection, so the workers' reads of
the next chunks are never asked again for it; and the note's contract holds (what a
reader sees after a chunk's commit includes that chunk, Ctrl+C half way leaves the row
with how far it got, the end deletes it)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from unittest import mock

import pytest
from sqlalchemy import select
from tests.integration.test_rescore_read_ahead import counted
from tests.integration.test_rescore_workers import Spawned, activation

from baton.domain.access import operator
from baton.services import contracts as contracts_service
from baton.services import rescore_progress, scoring
from baton.services.context import Context
from baton.services.scoring import ActivationReport
from baton.store.tables import contract_rescores


def _noted(ctx: Context) -> tuple[int, int] | None:
    with ctx.read() as connection:
        row = connection.execute(
            select(contract_rescores.c.scored, contract_rescores.c.total)
        ).first()
    return None if row is None else (int(row.scored), int(row.total))


def _activated(ctx: Context) -> tuple[int, datetime]:
    """A version activated, its re-score not begun: its row says 0 of 12."""
    version, _ = activation(ctx, n=12)
    with ctx.write() as connection:  # ``activation`` skipped the re-score, row and all
        started_at = rescore_progress.begin_rescore_in(ctx, connection, version, total=12)
    return version, started_at


def _rescore_in_workers(
    ctx: Context, run: tuple[int, datetime], progress: Any
) -> tuple[Any, list[int]]:
    """The activation's re-score of ``version`` (its row written by ``activation``) in
    chunks of 3 with two workers, the notes at their default pace (every chunk's own,
    in its transaction); the reads it made and the reads it dropped (asked again)."""
    version, started_at = run
    forgotten: list[int] = []
    real_forget = scoring._ChunkReads.forget

    def forget(reads: scoring._ChunkReads, ahead: Any) -> None:
        forgotten.append(ahead.after)
        real_forget(reads, ahead)

    report = ActivationReport(version=version, previous=None)
    with (
        Spawned() as spawned,
        counted() as reads,
        mock.patch.object(scoring, "ONE_PASS_LEADS", 0),
        mock.patch.object(scoring, "STATE_BLOCK", 2),
        mock.patch.object(scoring, "SET_CHUNK", 3),
        mock.patch.object(scoring, "_cores", return_value=2),
        mock.patch.object(scoring._ChunkReads, "forget", forget),
    ):
        try:
            contracts_service._rescore_noted(
                ctx,
                report,
                started_at=started_at,
                actor=operator("ops"),
                progress=progress,
                watch=None,
            )
        finally:
            assert spawned.workers and spawned.all_ended()
    return reads, forgotten


def test_each_chunk_notes_its_own_progress_and_no_read_is_asked_again(
    sqlite_ctx: Context,
) -> None:
    run = _activated(sqlite_ctx)
    assert _noted(sqlite_ctx) == (0, 12)
    seen: list[tuple[int, tuple[int, int] | None]] = []

    def progress(done: int, total: int) -> None:
        seen.append((done, _noted(sqlite_ctx)))

    reads, forgotten = _rescore_in_workers(sqlite_ctx, run, progress)
    # Committed with the chunk: read after it, the row already says it.
    assert seen == [(3, (3, 12)), (6, (6, 12)), (9, (9, 12)), (12, (12, 12))]
    assert (reads[0].used, reads[0].redone) == (4, 0)
    assert forgotten == []
    assert _noted(sqlite_ctx) is None  # finished: the row goes


def test_ctrl_c_half_way_leaves_how_far_it_got(sqlite_ctx: Context) -> None:
    run = _activated(sqlite_ctx)

    def ctrl_c(done: int, total: int) -> None:
        if done >= 6:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _rescore_in_workers(sqlite_ctx, run, ctrl_c)
    assert _noted(sqlite_ctx) == (6, 12)


def test_alive_notes_stop_before_the_workers_are_asked_for_the_first_reads(
    sqlite_ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before its first chunk a run notes it is alive; a note that commits after the
    first reads were asked would have the first chunks read their leads again, so the
    notes stop as the chunks begin (here one is due every millisecond)."""
    monkeypatch.setattr(rescore_progress, "ALIVE_EVERY_SECONDS", 0.001)
    run = _activated(sqlite_ctx)
    asked: list[bool] = []
    real_ask = scoring._ChunkReads.ask

    def ask(reads: scoring._ChunkReads, *args: Any, **kwargs: Any) -> Any:
        notes = getattr(ask, "notes", None)
        asked.append(notes is not None and notes.chunked.is_set())
        return real_ask(reads, *args, **kwargs)

    real_begin = rescore_progress.RescoreNotes.chunks_begin

    def begin(notes: rescore_progress.RescoreNotes) -> None:
        ask.notes = notes  # type: ignore[attr-defined]
        real_begin(notes)

    monkeypatch.setattr(scoring._ChunkReads, "ask", ask)
    monkeypatch.setattr(rescore_progress.RescoreNotes, "chunks_begin", begin)
    reads, forgotten = _rescore_in_workers(sqlite_ctx, run, None)
    assert asked and all(asked), asked  # every read asked once the alive notes stopped
    assert (reads[0].used, reads[0].redone) == (4, 0)
    assert forgotten == []
