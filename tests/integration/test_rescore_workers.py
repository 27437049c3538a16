"""A large re-score on SQLite reads every lead's engagement in worker processes of its
own (``baton.store.event_pass``), which then write the state texts while the chunks
run: the same outcome as the per-lead path, on random contracts, leads and histories;
no worker outlives the re-score; a failing worker stops it with a clear error and the
chunk it was in rolled back; one core keeps the pass in process."""

from __future__ import annotations

import uuid
from typing import Any
from unittest import mock

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from tests.integration.test_rescore_sets import (
    CONTRACT,
    EVENTS,
    LEADS,
    chunked,
    contract_text,
    engagement_spec,
    fill,
    northwind,
    outcome,
    same_outcome,
    signed,
)

from baton.domain.access import operator
from baton.services import contracts as contracts_service
from baton.services import scoring
from baton.services.context import Context
from baton.services.contracts import activate_contract
from baton.services.scoring import ActivationReport, RescoreWorkerFailed, rescore_all
from baton.store import event_pass
from baton.store.tables import lead_scores

RULES = [
    {
        "event": "page_view",
        "where": {"url": "/pricing"},
        "points": 10,
        "cap": None,
        "half_life_days": 30,
    },
    {"event": "email_click", "where": {}, "points": 3, "cap": None, "half_life_days": 7},
    {"event": "webinar_attended", "where": {}, "points": 15, "cap": 40, "half_life_days": None},
]


class Spawned:
    """The worker processes a test started (:class:`event_pass.Worker` spied on)."""

    def __init__(self) -> None:
        self.workers: list[event_pass.Worker] = []
        self.real = event_pass.Worker.__init__

    def __enter__(self) -> Spawned:
        spawned = self

        def spy(worker: event_pass.Worker) -> None:
            spawned.real(worker)
            spawned.workers.append(worker)

        self.patch = mock.patch.object(event_pass.Worker, "__init__", spy)
        self.patch.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self.patch.stop()

    def all_ended(self) -> bool:
        return all(worker.process.poll() is not None for worker in self.workers)


def in_workers(ctx: Context, version: int, ids: list[int], size: int) -> tuple[Any, Any, bool]:
    """:func:`chunked` with the one pass in worker processes (windows of three ids,
    state texts in blocks of two rows, so that leads, windows, blocks and chunks cut
    across one another), and whether the workers made the texts."""
    made: list[bool] = []
    real = scoring._one_pass

    def through_workers(ctx: Context, report: Any, reader: Any, total: int) -> Any:
        with scoring._pass_workers(ctx, 10**9) as workers:
            assert workers is not None and len(workers) == scoring.PASS_WORKERS
            found = real(ctx, report, reader, total, workers)
            made.append(found is not None and found.texts is not None)
            if found is None:
                return None
            # The chunks run after the workers end here: take every text first.
            assert found.texts is not None
            every = found.texts.lines(0, len(found.sums))
            assert len(every) == len(found.sums)
            found.texts.lines = lambda begin, end: every[begin:end]  # type: ignore[method-assign]
            return found

    with (
        mock.patch.object(scoring, "_one_pass", through_workers),
        mock.patch.object(scoring, "STATE_BLOCK", 2),
        mock.patch.object(scoring, "_cores", return_value=2),
    ):
        report, seen, taken = chunked(ctx, version, ids, size=size, whole=True)
    return report, seen, bool(made and made[0]) and taken


@settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(new=CONTRACT, people=LEADS, events=EVENTS, size=st.integers(1, 5))
def test_the_one_pass_in_worker_processes_stores_what_the_per_lead_path_stores(
    sqlite_ctx: Context,
    new: dict[str, Any],
    people: list[dict[str, Any]],
    events: list[Any],
    size: int,
) -> None:
    """The workers' shares (windows of activity ids), merged, and their state texts
    give each lead the scores, states, decisions and handoffs of the per-lead path."""
    ids = fill(sqlite_ctx, people, events)
    version = signed(sqlite_ctx, contract_text(new, "workers " + uuid.uuid4().hex[:8]))
    with mock.patch.object(contracts_service, "rescore_all"):
        activate_contract(sqlite_ctx, version, actor=operator("maria"))
    clock: Any = sqlite_ctx.clock
    began = clock.now()
    with Spawned() as spawned:
        fast_report, fast, made = in_workers(sqlite_ctx, version, ids, size)
    assert spawned.workers and spawned.all_ended()
    assert made == bool(new["engagement"])
    clock.set(began)
    slow_report, slow, _ = chunked(sqlite_ctx, version, ids, size=size, whole=False, sets=False)
    assert fast_report == slow_report
    same_outcome(fast, slow)


def merged_equals_all(parts: list[np.ndarray], events: np.ndarray, half_lives: Any) -> None:
    at = 1_800_000_000.0
    whole = event_pass.group_events(half_lives, at, events)
    merged = event_pass.merge_grouped(
        [event_pass.group_events(half_lives, at, part) for part in parts], whole.shape[1]
    )
    assert merged.shape == whole.shape
    for k in range(whole.shape[1]):
        assert np.allclose(merged[:, k], whole[:, k], rtol=1e-12, atol=0), k


@given(
    rows=st.lists(
        st.tuples(
            st.integers(1, 6),
            st.integers(-5_000_000_000, 2_000_000_000_000),
            st.integers(0, 7),
            st.booleans(),
        ),
        max_size=40,
    )
)
def test_shares_grouped_apart_and_merged_equal_the_events_grouped_together(
    rows: list[tuple[int, int, int, bool]],
) -> None:
    """Counts and decayed sums add up, and each rule's latest moment is the latest of
    the shares that have its events (also before 1970, where a share without them
    has 0)."""
    events = np.array([row[:3] for row in rows], dtype=np.int64).reshape(-1, 3)
    first = np.array([row[3] for row in rows], dtype=bool)
    merged_equals_all([events[first], events[~first]], events, (30, None, 7))


@pytest.mark.parametrize("base", [0, 10**12])
def test_shares_merge_alike_by_a_table_of_ids_or_by_sorting_them(base: int) -> None:
    """Lead ids up to twice the rows are placed through a table indexed by id, larger
    ones by sorting: the same merge either way, with three shares (a lead in one, two
    or all of them)."""
    rng = np.random.default_rng(7)
    n = 600
    events = np.column_stack(
        [
            base + rng.integers(1, 200, n),
            rng.integers(-(10**9), 2 * 10**12, n),
            rng.integers(0, 8, n),
        ]
    ).astype(np.int64)
    share = rng.integers(0, 3, n)
    merged_equals_all([events[share == i] for i in range(3)], events, (30, None, 7))


def activation(ctx: Context, n: int = 12) -> tuple[int, list[int]]:
    people = northwind(n)
    events = [
        (i % n, kind, 3600 * i, props)
        for i, (kind, props) in enumerate(
            [("page_view", {"url": "/pricing"}), ("email_click", {}), ("webinar_attended", {})]
            * (2 * n)
        )
    ]
    ids = fill(ctx, people, events)
    version = signed(ctx, contract_text(engagement_spec(RULES), "w " + uuid.uuid4().hex[:8]))
    with mock.patch.object(contracts_service, "rescore_all"):
        activate_contract(ctx, version, actor=operator("maria"))
    return version, ids


def scored(ctx: Context) -> int:
    with ctx.read() as connection:
        return int(connection.execute(select(func.count()).select_from(lead_scores)).scalar_one())


def test_a_rescore_runs_its_pass_in_workers_that_end_with_it(sqlite_ctx: Context) -> None:
    """From ONE_PASS_LEADS leads, with two cores: two workers read the pass and make the
    texts; none is left running after the re-score, and the scores are those of the
    chunks reading their own events."""
    version, ids = activation(sqlite_ctx)
    report = ActivationReport(version=version, previous=None)
    with (
        Spawned() as spawned,
        mock.patch.object(scoring, "ONE_PASS_LEADS", 0),
        mock.patch.object(scoring, "STATE_BLOCK", 5),
        mock.patch.object(scoring, "_cores", return_value=2),
    ):
        rescore_all(sqlite_ctx, report, actor=operator("ops"), chunk=4)
    assert len(spawned.workers) == scoring.PASS_WORKERS
    assert spawned.all_ended()
    assert report.leads_scored == len(ids)
    with sqlite_ctx.read() as connection:
        first = outcome(connection, ids)
    again = ActivationReport(version=version, previous=None)
    with Spawned() as none, mock.patch.object(scoring, "ONE_PASS_LEADS", 10**9):
        rescore_all(sqlite_ctx, again, actor=operator("ops"), chunk=4)
    assert none.workers == []
    with sqlite_ctx.read() as connection:
        same_outcome(first, outcome(connection, ids))


def test_one_core_keeps_the_pass_in_process(sqlite_ctx: Context) -> None:
    version, ids = activation(sqlite_ctx)
    report = ActivationReport(version=version, previous=None)
    with (
        Spawned() as spawned,
        mock.patch.object(scoring, "ONE_PASS_LEADS", 0),
        mock.patch.object(scoring, "_cores", return_value=1),
    ):
        rescore_all(sqlite_ctx, report, actor=operator("ops"), chunk=4)
    assert spawned.workers == []
    assert report.leads_scored == len(ids) == scored(sqlite_ctx)


def test_a_failing_pass_in_a_worker_stops_the_rescore_before_its_chunks(
    sqlite_ctx: Context,
) -> None:
    """The worker's error (here SQLite's, on a statement it cannot run) is named in the
    re-score's error; no chunk ran, and no worker is left."""
    version, _ = activation(sqlite_ctx)
    report = ActivationReport(version=version, previous=None)
    real = scoring._event_rows_query

    def broken(contract: Any) -> Any:
        sql, params = real(contract)
        return sql.replace("FROM activities", "FROM no_such_table"), params

    with (
        Spawned() as spawned,
        mock.patch.object(scoring, "ONE_PASS_LEADS", 0),
        mock.patch.object(scoring, "_cores", return_value=2),
        mock.patch.object(scoring, "_event_rows_query", broken),
        pytest.raises(
            RescoreWorkerFailed, match=r"worker process(.|\n)*no such table: no_such_table"
        ),
    ):
        rescore_all(sqlite_ctx, report, actor=operator("ops"), chunk=4)
    assert spawned.workers and spawned.all_ended()
    assert report.leads_scored == 0 == scored(sqlite_ctx)


def test_workers_that_die_during_the_chunks_stop_the_rescore_between_two_chunks(
    sqlite_ctx: Context,
) -> None:
    """Killed after the pass, while they make the state texts: the re-score stops with a
    clear error before the chunk that needs them writes anything (the chunks before it
    stay, whole: a re-score can be run again), and no worker is left."""
    version, ids = activation(sqlite_ctx)
    report = ActivationReport(version=version, previous=None)
    real = scoring._one_pass

    def then_kill(*args: Any, **kwargs: Any) -> Any:
        found = real(*args, **kwargs)
        for worker in spawned.workers:
            worker.process.kill()
            worker.process.wait()
        return found

    with (
        Spawned() as spawned,
        mock.patch.object(scoring, "ONE_PASS_LEADS", 0),
        mock.patch.object(scoring, "STATE_BLOCK", 1),
        mock.patch.object(scoring, "_cores", return_value=2),
        mock.patch.object(scoring, "_one_pass", then_kill),
        pytest.raises(RescoreWorkerFailed, match="worker process"),
    ):
        rescore_all(sqlite_ctx, report, actor=operator("ops"), chunk=4)
    assert spawned.all_ended()
    assert report.leads_scored == scored(sqlite_ctx) < len(ids)
    assert report.leads_scored % 4 == 0


def test_a_worker_imports_neither_the_services_nor_sqlalchemy() -> None:
    """What makes a worker ready in a fraction of a second (and keeps a server's
    modules, threads and locks out of it)."""
    import subprocess
    import sys

    found = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, baton.store.event_pass; print(sorted(m for m in sys.modules"
            " if m.startswith(('sqlalchemy', 'baton.services'))))",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert found.stdout.strip() == "[]"


def test_the_workers_day_is_the_domains() -> None:
    from baton.domain.scoring import SECONDS_PER_DAY

    assert event_pass.SECONDS_PER_DAY == SECONDS_PER_DAY


def total_index(ctx: Context) -> str | None:
    """The definition of ``ix_lead_scores_total`` as SQLite holds it, or None."""
    with ctx.read() as connection:
        found = connection.exec_driver_sql(
            "SELECT sql FROM sqlite_master WHERE type = 'index' AND name = 'ix_lead_scores_total'"
        ).first()
    return None if found is None else str(found[0])


def index_seen_by_chunks() -> tuple[list[bool], Any]:
    """Whether ``ix_lead_scores_total`` was there as each chunk ran, and the patch that
    records it."""
    seen: list[bool] = []
    real = scoring.rescore_chunk

    def spy(connection: Any, *args: Any, **kwargs: Any) -> None:
        found = connection.exec_driver_sql(
            "SELECT 1 FROM sqlite_master WHERE name = 'ix_lead_scores_total'"
        ).first()
        seen.append(found is not None)
        real(connection, *args, **kwargs)

    return seen, mock.patch.object(scoring, "rescore_chunk", spy)


def test_a_large_rescore_writes_without_the_total_index_and_builds_it_again(
    sqlite_ctx: Context,
) -> None:
    """From REBUILD_TOTAL_INDEX_LEADS leads on SQLite the chunks write their scores
    without ``ix_lead_scores_total`` (its upkeep was most of their writes), which is
    there again afterwards as the migration made it; the scores are those of a re-score
    that kept it."""
    version, ids = activation(sqlite_ctx)
    made = total_index(sqlite_ctx)
    assert made is not None
    seen, spying = index_seen_by_chunks()
    report = ActivationReport(version=version, previous=None)
    with (
        spying,
        mock.patch.object(scoring, "REBUILD_TOTAL_INDEX_LEADS", 0),
        mock.patch.object(scoring, "ONE_PASS_LEADS", 0),
        mock.patch.object(scoring, "_cores", return_value=2),
    ):
        rescore_all(sqlite_ctx, report, actor=operator("ops"), chunk=4)
    assert seen == [False] * 3
    assert total_index(sqlite_ctx) == made
    with sqlite_ctx.read() as connection:
        first = outcome(connection, ids)
    kept, spying = index_seen_by_chunks()
    with spying, mock.patch.object(scoring, "ONE_PASS_LEADS", 10**9):
        rescore_all(sqlite_ctx, ActivationReport(version, None), actor=operator("ops"), chunk=4)
    assert kept == [True] * 3
    with sqlite_ctx.read() as connection:
        same_outcome(first, outcome(connection, ids))


def test_a_rescore_that_fails_builds_the_total_index_again(sqlite_ctx: Context) -> None:
    """Its workers killed between two chunks: the re-score stops with its error, and
    the index is back all the same."""
    version, _ = activation(sqlite_ctx)
    made = total_index(sqlite_ctx)
    real = scoring._one_pass

    def then_kill(*args: Any, **kwargs: Any) -> Any:
        found = real(*args, **kwargs)
        left.append(total_index(sqlite_ctx))
        for worker in spawned.workers:
            worker.process.kill()
            worker.process.wait()
        return found

    left: list[str | None] = []
    with (
        Spawned() as spawned,
        mock.patch.object(scoring, "REBUILD_TOTAL_INDEX_LEADS", 0),
        mock.patch.object(scoring, "ONE_PASS_LEADS", 0),
        mock.patch.object(scoring, "STATE_BLOCK", 1),
        mock.patch.object(scoring, "_cores", return_value=2),
        mock.patch.object(scoring, "_one_pass", then_kill),
        pytest.raises(RescoreWorkerFailed, match="worker process"),
    ):
        rescore_all(sqlite_ctx, ActivationReport(version, None), actor=operator("ops"), chunk=4)
    assert left == [None]
    assert total_index(sqlite_ctx) == made


def test_a_large_rescore_puts_back_a_total_index_a_dead_one_left_out(
    sqlite_ctx: Context,
) -> None:
    """A re-score whose process died before building the index again left it out: the
    next large one (``baton contract rescore``) ends with it there; one core (the pass
    in process) does the same."""
    version, _ = activation(sqlite_ctx)
    made = total_index(sqlite_ctx)
    with sqlite_ctx.write() as connection:
        connection.exec_driver_sql("DROP INDEX ix_lead_scores_total")
    with (
        mock.patch.object(scoring, "REBUILD_TOTAL_INDEX_LEADS", 0),
        mock.patch.object(scoring, "ONE_PASS_LEADS", 0),
        mock.patch.object(scoring, "_cores", return_value=1),
    ):
        rescore_all(sqlite_ctx, ActivationReport(version, None), actor=operator("ops"), chunk=4)
    assert total_index(sqlite_ctx) == made
