"""A large re-score on a SQLite file keeps both cores at work and its writing process
short: the workers of the one pass claim its windows one at a time from a file they
share (``event_pass.claimed_windows``), so neither waits long for the other; a chunk
whose leads a worker read while nothing else wrote takes that read's ids instead of
selecting them again in its write transaction; and a chunk's score rows bind only the
values that differ between them."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
from sqlalchemy import event
from tests.conftest import START
from tests.integration.test_rescore_read_ahead import counted, with_workers
from tests.integration.test_rescore_workers import activation, scored

from baton.services import scoring
from baton.services.context import Context
from baton.store import event_pass
from baton.store.bulk import sqlite_datetime


def test_readers_claim_every_window_once_each_in_ascending_order() -> None:
    """Two readers claiming windows at the same time from one file: every number from 0
    up is claimed by exactly one of them, and each sees its own in ascending order."""
    claimed: list[list[int]] = [[], []]
    with scoring._window_claims() as claims:
        assert claims is not None
        start = threading.Barrier(2)

        def claim(mine: list[int]) -> None:
            numbers = event_pass.claimed_windows(claims)
            start.wait()
            mine.extend(next(numbers) for _ in range(300))

        threads = [threading.Thread(target=claim, args=(mine,)) for mine in claimed]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert not Path(claims).exists()
    assert sorted(claimed[0] + claimed[1]) == list(range(600))
    assert all(mine == sorted(mine) for mine in claimed)


def events_file(path: Path, n: int) -> None:
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE activities (id INTEGER PRIMARY KEY, lead_id INTEGER)")
    db.execute("CREATE TABLE activity_revisions (id INTEGER PRIMARY KEY, revision INTEGER)")
    db.execute("INSERT INTO activity_revisions VALUES (1, 7)")
    db.executemany(
        "INSERT INTO activities VALUES (?, ?)", [(i, i % 5 + 1) for i in range(1, n + 1)]
    )
    db.commit()
    db.close()


def test_readers_claiming_windows_read_every_event_once(tmp_path: Path) -> None:
    """Two readers of one file taking their windows from one claims file (one of them
    late): together they read each activity exactly once, and each saw the
    largest id and the revision."""
    path = tmp_path / "events.db"
    events_file(path, 100)
    sql = (
        "SELECT group_concat(lead_id || ',' || id || ',' || 1, ',') FROM activities"
        " WHERE id > ? AND id <= ?"
    )
    found: list[Any] = [None, None]
    with scoring._window_claims() as claims:

        def read(index: int) -> None:
            driver = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            if index == 1:  # a reader that gets on late
                time.sleep(0.05)
            try:
                found[index] = event_pass.snapshot_events(driver, sql, (), index, 2, 7, claims)
            finally:
                driver.close()

        threads = [threading.Thread(target=read, args=(i,)) for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert [(high, revision) for high, revision, _ in found] == [(100, 7), (100, 7)]
    read_ids = sorted(int(i) for _, _, rows in found for i in rows[:, 1])
    assert read_ids == list(range(1, 101))


def test_chunks_read_after_skipped_chunks_say_which_lead_each_follows(tmp_path: Path) -> None:
    """A worker's read of ``count`` chunks after ``skip`` chunks gives each chunk of
    unmerged leads in turn (the last one short) with the lead it follows: the last
    one skipped, then the last of the chunk before it."""
    path = tmp_path / "leads.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE leads (id INTEGER PRIMARY KEY, merged_into_id INTEGER)")
    db.executemany(
        "INSERT INTO leads VALUES (?, ?)", [(i, 1 if i in (2, 5) else None) for i in range(1, 12)]
    )
    db.commit()
    db.close()
    sql = (
        "SELECT id FROM leads WHERE id >= :first AND id <= :last AND merged_into_id IS NULL"
        " ORDER BY id"
    )
    unmerged = [1, 3, 4, 6, 7, 8, 9, 10, 11]
    cases = [(0, 0, 1), (0, 1, 1), (0, 2, 1), (3, 1, 1), (8, 1, 1), (9, 1, 1), (0, 0, 9)]
    cases += [(0, 1, 3), (4, 2, 2), (0, 3, 2)]
    for after, skip, count in cases:
        got = event_pass.chunk_leads(str(path), after, skip, 2, sql, {}, 0, count)
        later = [i for i in unmerged if i > after]
        wanted = [
            (tuple(later[i : i + 2]), later[i - 1] if i else after)
            for i in range(2 * skip, min(len(later), 2 * (skip + count)), 2)
        ]
        assert [(ids, follows) for ids, _, follows in got] == wanted, (after, skip, count)
        assert all(columns == [ids] for ids, columns, _ in got)


def test_chunks_taking_the_workers_reads_select_no_ids_of_their_own(
    sqlite_ctx: Context,
) -> None:
    """With no other writer, each chunk takes the ids of its worker's read: no chunk
    selects the next leads again in its write transaction (the one select left finds
    that no lead is left), and every lead is scored."""
    version, ids = activation(sqlite_ctx, n=12)
    selects: list[str] = []

    def seen(_c: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.startswith("SELECT leads.id") and "LIMIT" in statement:
            selects.append(statement)

    event.listen(sqlite_ctx.engine, "before_cursor_execute", seen)
    try:
        with counted() as reads:
            report = with_workers(sqlite_ctx, version, 4)
    finally:
        event.remove(sqlite_ctx.engine, "before_cursor_execute", seen)
    assert (reads[0].used, reads[0].redone) == (3, 0)
    assert len(selects) == 1
    assert report.leads_scored == len(ids) == scored(sqlite_ctx)


def test_a_chunks_score_rows_store_what_binding_every_value_stores(
    sqlite_ctx: Context,
) -> None:
    """The version and the moment written in the chunk's statement store the same
    values, of the same types, as bound ones; a second upsert replaces the first."""
    version, ids = activation(sqlite_ctx, n=4)
    at = sqlite_datetime(START)
    state = '{"0": [1.5, 1780000000.25, 2.0]}'
    row = (12.5, 3.25, 15.75, "B", state)
    columns = "lead_id, contract_version, fit, engagement, total, grade, state, scored_at"
    typed = ", ".join(f"typeof({c})" for c in [*columns.split(", "), "probability"])
    with sqlite_ctx.write() as connection:
        scoring._upsert_scores(connection, [(ids[0], version, *row, at, None)])
        scoring._upsert_chunk_scores(connection, version, at, [(ids[1], 0.0, 0.0, 0.0, "D", "{}")])
        scoring._upsert_chunk_scores(connection, version, at, [(ids[1], *row)])
        bound, literal = (
            connection.exec_driver_sql(
                f"SELECT {columns}, probability, {typed} FROM lead_scores WHERE lead_id = ?",
                (lead,),
            ).one()[1:]
            for lead in ids[:2]
        )
    assert bound == literal
    with sqlite_ctx.write() as connection:  # the moment quoted as SQL quotes a text
        scoring._upsert_chunk_scores(connection, version, "it's", [(ids[1], *row)])
        stored = connection.exec_driver_sql(
            "SELECT scored_at FROM lead_scores WHERE lead_id = ?", (ids[1],)
        ).scalar_one()
    assert stored == "it's"


def test_the_workers_read_the_first_chunks_while_the_pass_is_merged(
    sqlite_ctx: Context,
) -> None:
    """The chunks' first reads are asked of the workers as they hand back the one pass,
    before the re-score's process merges it (a run of chunks each): here every chunk's
    read was asked by then, and every chunk took it."""
    version, ids = activation(sqlite_ctx, n=12)
    moments: list[str] = []
    real_ask, real_merge = scoring._ChunkReads.ask, event_pass.merge_grouped

    def ask(reads: scoring._ChunkReads, *args: Any) -> Any:
        moments.append("ask")
        return real_ask(reads, *args)

    def merge(*args: Any) -> Any:
        moments.append("merge")
        return real_merge(*args)

    with (
        counted() as reads,
        mock.patch.object(scoring._ChunkReads, "ask", ask),
        # Through the scoring module's own name for it (it may stand for it lazily).
        mock.patch("baton.store.event_pass.merge_grouped", merge),
    ):
        report = with_workers(sqlite_ctx, version, 4)
    assert moments == ["ask", "ask", "merge"]
    assert (reads[0].used, reads[0].redone) == (3, 0)
    assert report.leads_scored == len(ids) == scored(sqlite_ctx)


def test_the_first_blocks_of_state_texts_are_smaller() -> None:
    """The chunks begin by waiting for the first blocks of state texts: the first is a
    tenth of a block, each next one twice the one before, up to a whole block."""

    class Asked:
        def ask(self, *args: Any) -> int:
            return 0

    state = scoring._sums_state((), np.zeros((250, 1)), 0.0, True)
    with mock.patch.object(scoring, "STATE_BLOCK", 100):
        lines = scoring._StateLines([Asked(), Asked()], [], state, 250)  # type: ignore[list-item]
        assert lines.bounds == [0, 10, 30, 70, 150, 250]
        assert scoring._StateLines([Asked()], [], state, 0).bounds == [0]  # type: ignore[list-item]
        assert scoring._StateLines([Asked()], [], state, 7).bounds == [0, 7]  # type: ignore[list-item]
