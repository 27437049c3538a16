"""A re-score's ``progress`` that commits on a connection of its own (a note of how far
it got, :mod:`baton.services.rescore_progress`) does not cost the chunks after it the
workers' reads: those asked before the commit are asked again after it, so no chunk
reads its leads itself in its write turn (``baton.services.scoring``,
``_rescore_chunks_read_ahead``)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any
from unittest import mock

from sqlalchemy import func, select, update
from tests.integration.test_rescore_read_ahead import copy_of, counted, counts, opened, per_lead
from tests.integration.test_rescore_sets import outcome, same_outcome
from tests.integration.test_rescore_workers import Spawned, activation

from baton.domain.access import operator
from baton.services import scoring
from baton.services.context import Context
from baton.services.scoring import ActivationReport, rescore_all
from baton.store.tables import contracts, leads


def test_a_progress_that_commits_leaves_every_chunk_the_workers_read(
    sqlite_ctx: Context, tmp_path: Path
) -> None:
    """Each chunk's ``progress`` commits a write of its own (the contract row touched,
    nothing a chunk reads of its leads): every chunk still takes a worker's read, and
    the outcome is the per-lead path's."""
    version, ids = activation(sqlite_ctx, n=12)
    slow_path = tmp_path / f"slow-{uuid.uuid4().hex[:8]}.db"
    copy_of(sqlite_ctx, slow_path)
    noted: list[int] = []

    def note(done: int, total: int) -> None:
        with sqlite_ctx.write() as connection:
            connection.execute(
                update(contracts)
                .where(contracts.c.version == version)
                .values(activated_by=f"noted {done} of {total}")
            )
        noted.append(done)

    report = ActivationReport(version=version, previous=None)
    with (
        Spawned() as spawned,
        counted() as reads,
        mock.patch.object(scoring, "ONE_PASS_LEADS", 0),
        mock.patch.object(scoring, "STATE_BLOCK", 2),
        mock.patch.object(scoring, "_cores", return_value=2),
    ):
        rescore_all(sqlite_ctx, report, actor=operator("ops"), chunk=3, progress=note)
    assert spawned.workers and spawned.all_ended()
    with sqlite_ctx.read() as connection:
        live = connection.execute(
            select(func.count()).where(leads.c.id.in_(ids), leads.c.merged_into_id.is_(None))
        ).scalar_one()
    chunks = -(-live // 3)
    assert len(noted) == chunks
    assert (reads[0].used, reads[0].redone) == (chunks, 0)
    with sqlite_ctx.read() as connection:
        seen_fast: dict[str, Any] = outcome(connection, ids)
    with opened(slow_path) as slow:
        slow_report = per_lead(slow, version)
        with slow.read() as connection:
            seen_slow = outcome(connection, ids)
    assert counts(report) == counts(slow_report)
    same_outcome(seen_fast, seen_slow)
