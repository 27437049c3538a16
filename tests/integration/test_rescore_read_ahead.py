"""A large re-score on a SQLite file has its worker processes read each chunk's leads
(the fit rules' SQL, the inputs of those left to Python, the stages) while the chunk
before it writes (``scoring._rescore_chunks_read_ahead``): the same outcome as the
per-lead path on random contracts, leads and histories, every chunk taking the
workers' read when nothing else writes; a read that another writer made stale (a
commit between the worker's read and the chunk's write transaction, told by SQLite's
``PRAGMA data_version``) is not used, and the chunk reads its leads itself."""

from __future__ import annotations

import shutil
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select, update
from tests.conftest import START
from tests.integration.test_rescore_sets import (
    CONTRACT,
    EVENTS,
    LEADS,
    contract_text,
    fill,
    northwind,
    outcome,
    same_outcome,
    signed,
)
from tests.integration.test_rescore_workers import Spawned, activation, scored

from baton.config import Settings
from baton.domain.access import operator
from baton.domain.clock import ManualClock
from baton.services import contracts as contracts_service
from baton.services import scoring
from baton.services.context import Context, open_context
from baton.services.contracts import activate_contract
from baton.services.scoring import ActivationReport, RescoreWorkerFailed, rescore_all
from baton.store.tables import leads


@contextmanager
def opened(path: Path) -> Iterator[Context]:
    context = open_context(
        Settings(database_url=f"sqlite:///{path}", env="test"), clock=ManualClock(current=START)
    )
    try:
        yield context
    finally:
        context.engine.dispose()


def copy_of(ctx: Context, path: Path) -> None:
    """The database of ``ctx`` copied, whole, to ``path`` (SQLite's backup)."""
    source = sqlite3.connect(str(ctx.engine.url.database))
    target = sqlite3.connect(str(path))
    try:
        source.backup(target)
    finally:
        target.close()
        source.close()


@contextmanager
def counted() -> Iterator[list[scoring._ChunkReads]]:
    """The :class:`scoring._ChunkReads` of the re-scores run meanwhile."""
    made: list[scoring._ChunkReads] = []
    real = scoring._ChunkReads.__init__

    def spy(reads: scoring._ChunkReads, *args: Any) -> None:
        real(reads, *args)
        made.append(reads)

    with mock.patch.object(scoring._ChunkReads, "__init__", spy):
        yield made


def with_workers(
    ctx: Context, version: int, size: int, report: ActivationReport | None = None
) -> ActivationReport:
    report = report or ActivationReport(version=version, previous=None)
    with (
        mock.patch.object(scoring, "ONE_PASS_LEADS", 0),
        mock.patch.object(scoring, "STATE_BLOCK", 2),
        mock.patch.object(scoring, "_cores", return_value=2),
    ):
        rescore_all(ctx, report, actor=operator("ops"), chunk=size)
    return report


def per_lead(ctx: Context, version: int) -> ActivationReport:
    report = ActivationReport(version=version, previous=None)
    rescore_all(ctx, report, actor=operator("ops"), set_based=False)
    return report


def counts(report: ActivationReport) -> tuple[int, ...]:
    return (
        report.leads_scored,
        report.crossed_up,
        report.crossed_down,
        report.became_mql,
        report.held_back,
    )


@settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(new=CONTRACT, people=LEADS, events=EVENTS, size=st.integers(1, 5))
def test_chunks_read_ahead_by_the_workers_store_what_the_per_lead_path_stores(
    sqlite_template: Path,
    tmp_path: Path,
    new: dict[str, Any],
    people: list[dict[str, Any]],
    events: list[Any],
    size: int,
) -> None:
    """Two copies of one database, re-scored with the workers reading ahead and lead by
    lead: the same scores, states, stages, transitions, handoffs and counts; with no
    other writer every chunk took the workers' read (the re-score's own commits and
    the workers' reads never look like another writer's)."""
    tag = uuid.uuid4().hex[:8]
    fast_path, slow_path = tmp_path / f"fast-{tag}.db", tmp_path / f"slow-{tag}.db"
    shutil.copyfile(sqlite_template, fast_path)
    with opened(fast_path) as fast:
        ids = fill(fast, people, events)
        version = signed(fast, contract_text(new, "ahead " + tag))
        with mock.patch.object(contracts_service, "rescore_all"):
            activate_contract(fast, version, actor=operator("maria"))
        copy_of(fast, slow_path)
        with Spawned() as spawned, counted() as reads:
            fast_report = with_workers(fast, version, size)
        assert spawned.workers and spawned.all_ended()
        assert len(reads) == 1
        with fast.read() as connection:
            live = connection.execute(
                select(func.count()).where(leads.c.id.in_(ids), leads.c.merged_into_id.is_(None))
            ).scalar_one()
        chunks = -(-live // size)
        assert (reads[0].used, reads[0].redone) == (chunks, 0)
        with fast.read() as connection:
            seen_fast = outcome(connection, ids)
    with opened(slow_path) as slow:
        slow_report = per_lead(slow, version)
        with slow.read() as connection:
            seen_slow = outcome(connection, ids)
    assert counts(fast_report) == counts(slow_report)
    same_outcome(seen_fast, seen_slow)


def test_a_read_made_stale_by_another_writer_is_not_used(
    sqlite_ctx: Context, tmp_path: Path
) -> None:
    """Another connection commits after a worker read the second chunk's leads and
    before that chunk's write transaction: here it moves a lead of that chunk to
    another country and stage (its fit and handoff change). The chunk reads its leads
    itself and scores that lead as it now is: the outcome of the per-lead path on the
    database with that write made first."""
    version, ids = activation(sqlite_ctx, n=12)
    with sqlite_ctx.write() as connection:
        connection.execute(
            update(leads).where(leads.c.id.in_(ids)).values(country="US", stage="lead")
        )
    # A fit rule on the country, a threshold the fit alone reaches.
    spec = {
        "fit": [{"when": {"field": "country", "in": ["US"]}, "points": 30}],
        "engagement": [],
        "grades": {"A": 40, "B": 25, "C": 10},
        "threshold": 25,
        "min_grade": "D",
        "required": [],
        "prep_required": False,
        "cooldown": 0,
        "live": 7,
    }
    version = signed(sqlite_ctx, contract_text(spec, "stale " + uuid.uuid4().hex[:8]))
    with mock.patch.object(contracts_service, "rescore_all"):
        activate_contract(sqlite_ctx, version, actor=operator("maria"))
    moved = ids[5]  # in the second chunk of four

    def move(connection: Any) -> None:
        connection.execute(
            update(leads).where(leads.c.id == moved).values(country="FR", stage="nurture")
        )

    slow_path = tmp_path / "slow.db"
    copy_of(sqlite_ctx, slow_path)
    real = scoring._ChunkReads.take
    taken: list[int] = []

    def then_write(reads: scoring._ChunkReads, ahead: Any) -> Any:
        found = real(reads, ahead)
        taken.append(ahead.after)
        if len(taken) == 2:  # the second chunk's read is in hand: another writer commits
            with sqlite_ctx.write() as connection:
                move(connection)
        return found

    with counted() as reads, mock.patch.object(scoring._ChunkReads, "take", then_write):
        fast_report = with_workers(sqlite_ctx, version, 4)
    assert reads[0].redone >= 1 and reads[0].used >= 1
    with sqlite_ctx.read() as connection:
        seen_fast = outcome(connection, ids)
    with opened(slow_path) as slow:
        with slow.write() as connection:
            move(connection)
        slow_report = per_lead(slow, version)
        with slow.read() as connection:
            seen_slow = outcome(connection, ids)
    assert seen_fast["scores"][moved][1] == 0.0
    assert counts(fast_report) == counts(slow_report)
    same_outcome(seen_fast, seen_slow)


def test_a_worker_failing_a_chunks_read_stops_the_rescore_between_two_chunks(
    sqlite_ctx: Context,
) -> None:
    """The worker's error is named in the re-score's error; the chunks before it stay,
    whole, and no worker is left."""
    version, ids = activation(sqlite_ctx, n=12)
    real = scoring._leads_read_text

    def broken_later(reading: Any) -> Any:
        sql, params, converted = real(reading)
        return sql.replace("FROM leads", "FROM no_such_table"), params, converted

    real_ask = scoring._ChunkReads.ask

    def ask(
        reads: scoring._ChunkReads,
        driver: Any,
        reading: Any,
        after: int,
        skip: int = 0,
        count: int = 1,
    ) -> Any:
        first = (ids.index(after) + 1 if after else 0) + skip * 4
        if first >= 8:  # the third chunk
            with mock.patch.object(scoring, "_leads_read_text", broken_later):
                reads.texts.clear()
                return real_ask(reads, driver, reading, after, skip, count)
        reads.texts.clear()
        return real_ask(reads, driver, reading, after, skip, count)

    report = ActivationReport(version=version, previous=None)
    with (
        Spawned() as spawned,
        mock.patch.object(scoring._ChunkReads, "ask", ask),
        mock.patch.object(scoring, "EARLY_READS", 1),  # one chunk a request
        pytest.raises(RescoreWorkerFailed, match=r"chunk's leads(.|\n)*no such table"),
    ):
        with_workers(sqlite_ctx, version, 4, report)
    assert spawned.workers and spawned.all_ended()
    assert report.leads_scored == 8 == scored(sqlite_ctx) < len(ids)


def test_a_workers_read_gives_python_rules_the_values_the_chunk_would_read(
    sqlite_template: Path, tmp_path: Path
) -> None:
    """A rule left to Python that reads ``consent`` (a boolean, which SQLite stores as
    0 or 1 and SQLAlchemy converts back) scores alike from the workers' read and lead
    by lead, every chunk taking the workers' read."""
    spec = {
        "fit": [
            {"when": {"field": "consent", "equals": True}, "points": 30},
            {"when": {"field": "consent", "equals": False}, "points": 7},
        ],
        "engagement": [],
        "grades": {"A": 40, "B": 25, "C": 10},
        "threshold": 25,
        "min_grade": "D",
        "required": [],
        "prep_required": False,
        "cooldown": 0,
        "live": 7,
    }
    people = [
        {**person, "consent": consent}
        for person, consent in zip(northwind(9), [True, False, None] * 3, strict=True)
    ]
    fast_path, slow_path = tmp_path / "fast.db", tmp_path / "slow.db"
    shutil.copyfile(sqlite_template, fast_path)
    with opened(fast_path) as fast:
        ids = fill(fast, people, [(0, "email_click", 60, {})])
        version = signed(fast, contract_text(spec, "consent " + uuid.uuid4().hex[:8]))
        with mock.patch.object(contracts_service, "rescore_all"):
            activate_contract(fast, version, actor=operator("maria"))
        copy_of(fast, slow_path)
        with counted() as reads:
            fast_report = with_workers(fast, version, 4)
        assert (reads[0].used, reads[0].redone) == (3, 0)
        with fast.read() as connection:
            seen_fast = outcome(connection, ids)
    with opened(slow_path) as slow:
        slow_report = per_lead(slow, version)
        with slow.read() as connection:
            seen_slow = outcome(connection, ids)
    assert (
        sorted(fit for _, fit, *_ in seen_fast["scores"].values())
        == [0.0] * 3 + [7.0] * 3 + [30.0] * 3
    )
    assert counts(fast_report) == counts(slow_report)
    same_outcome(seen_fast, seen_slow)
