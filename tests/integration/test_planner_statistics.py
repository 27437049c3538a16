"""The worker refreshes PostgreSQL's statistics of a busy table that has doubled since
its last ``ANALYZE`` (a new database filling faster than autovacuum's first visit), and
never waits behind another ``ANALYZE`` for it. SQLite has no such statistics: no lane."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import create_engine, event

from baton.config import Settings
from baton.services import worker as worker_service
from baton.services.context import Context, open_context
from baton.services.worker import PlannerStatistics, Worker
from baton.store.statistics import (
    ANALYZE_AFTER_ROWS,
    analyze_table,
    grown_tables,
    refresh_statistics,
)


@pytest.fixture
def fresh(empty_database_url: str, backend: str) -> Iterator[Context]:
    """A database migrated now, whose tables were never analysed, with autovacuum kept
    off its ``leads`` so that only the lane analyses it."""
    if backend != "postgresql":
        pytest.skip("planner statistics: PostgreSQL")
    context = open_context(Settings(database_url=empty_database_url, env="test"))
    with context.write() as connection:
        connection.exec_driver_sql("ALTER TABLE leads SET (autovacuum_enabled = off)")
    try:
        yield context
    finally:
        context.engine.dispose()


def add_leads(ctx: Context, count: int) -> None:
    """``count`` more leads, their live-row count reported to PostgreSQL's statistics
    at once (it is otherwise sent within a second)."""
    with ctx.write() as connection:
        first = connection.exec_driver_sql("SELECT coalesce(max(id), 0) FROM leads").scalar()
        connection.exec_driver_sql(
            "INSERT INTO leads (email, email_key, attributes, stage, stage_changed_at,"
            " created_at, updated_at) SELECT 'p' || i || '@example.com', 'p' || i ||"
            " '@example.com', '{}', 'lead', now(), now(), now()"
            " FROM generate_series(%(first)s + 1, %(first)s + %(count)s) AS i",
            {"first": first, "count": count},
        )
        connection.exec_driver_sql("SELECT pg_stat_force_next_flush()")


def rows_planned(ctx: Context) -> float:
    with ctx.read() as connection:
        return float(
            connection.exec_driver_sql(
                "SELECT reltuples FROM pg_class WHERE relname = 'leads'"
            ).scalar_one()
        )


def test_a_table_is_analysed_when_it_has_doubled_since_its_statistics(fresh: Context) -> None:
    add_leads(fresh, ANALYZE_AFTER_ROWS - 1)
    assert rows_planned(fresh) < 0  # never analysed
    assert PlannerStatistics(fresh).refresh().analyzed == 0  # too few rows to matter

    add_leads(fresh, 501)  # 1,500: never analysed
    assert PlannerStatistics(fresh).refresh().analyzed == 1
    assert rows_planned(fresh) == 1500
    assert PlannerStatistics(fresh).refresh().analyzed == 0  # just analysed

    add_leads(fresh, 1400)  # 2,900: not yet twice 1,500
    assert PlannerStatistics(fresh).refresh().analyzed == 0
    assert rows_planned(fresh) == 1500

    add_leads(fresh, 100)  # 3,000
    assert PlannerStatistics(fresh).refresh().analyzed == 1
    assert rows_planned(fresh) == 3000


def test_a_table_another_analyze_holds_is_left_to_it(fresh: Context) -> None:
    add_leads(fresh, 2000)
    url = fresh.engine.url
    holder = create_engine(url)
    locked, release = threading.Event(), threading.Event()

    def hold() -> None:
        # ANALYZE's own lock, as autovacuum's ANALYZE holds it.
        with holder.begin() as connection:
            connection.exec_driver_sql("LOCK TABLE leads IN SHARE UPDATE EXCLUSIVE MODE")
            locked.set()
            release.wait(30)

    thread = threading.Thread(target=hold)
    thread.start()
    try:
        assert locked.wait(30)
        with fresh.read() as connection:
            assert grown_tables(connection) == []  # seen held: not even tried
        with fresh.write() as connection:  # taken between the look and the ANALYZE
            assert analyze_table(connection, "leads") == "locked"  # in 100 ms, no error
            assert connection.exec_driver_sql("SELECT count(*) FROM leads").scalar() == 2000
        assert PlannerStatistics(fresh).refresh().analyzed == 0
        assert rows_planned(fresh) < 0
    finally:
        release.set()
        thread.join()
        holder.dispose()
    with fresh.read() as connection:
        assert [t.name for t in grown_tables(connection)] == ["leads"]
    assert PlannerStatistics(fresh).refresh().analyzed == 1
    assert rows_planned(fresh) == 2000


def test_workers_that_find_the_same_table_grown_analyse_it_once(
    fresh: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Several workers look at the same moment and all find the table grown; the first
    to get its lock analyses it, and the others, their turn come, find it current and
    leave it (before, each ran its own ANALYZE, one after the other)."""
    add_leads(fresh, 2000)
    with fresh.read() as connection:
        seen = grown_tables(connection)  # the look of every worker, before any ANALYZE
    assert [t.name for t in seen] == ["leads"]
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    event.listen(fresh.engine, "before_cursor_execute", record)
    monkeypatch.setattr(worker_service, "grown_tables", lambda _connection: seen)
    try:
        assert PlannerStatistics(fresh).refresh().analyzed == 1
        assert PlannerStatistics(fresh).refresh().analyzed == 0  # another worker, later
    finally:
        event.remove(fresh.engine, "before_cursor_execute", record)
    assert [s for s in statements if s.startswith("ANALYZE")] == ["ANALYZE leads"]
    assert rows_planned(fresh) == 2000


def test_the_worker_has_a_statistics_lane_on_postgresql_only(ctx: Context) -> None:
    names = [lane.name for lane in Worker(ctx).lanes]
    assert ("statistics" in names) == (ctx.dialect == "postgresql")
    if ctx.dialect == "sqlite":
        with ctx.read() as connection:
            assert grown_tables(connection) == []


def test_a_new_database_has_nothing_to_refresh(fresh: Context) -> None:
    """A database of its own: the shared test database's counts still carry the rows
    earlier tests wrote and deleted (PostgreSQL reports them within a second)."""
    with fresh.read() as connection:
        assert grown_tables(connection) == []
    add_leads(fresh, ANALYZE_AFTER_ROWS - 1)
    with fresh.read() as connection:
        assert grown_tables(connection) == []  # below the threshold: autovacuum's part


def test_a_table_the_role_may_not_analyse_is_not_tried(fresh: Context) -> None:
    """Baton's role may be another than the tables' owner (the migrations ran as the
    owner): ANALYZE would be a warning in PostgreSQL's log every pass, changing nothing."""
    add_leads(fresh, 2000)
    role = f"baton_other_{uuid.uuid4().hex[:12]}"
    with fresh.write() as connection:
        connection.exec_driver_sql(f"CREATE ROLE {role}")
    try:
        with fresh.write() as connection:
            assert [t.name for t in grown_tables(connection)] == ["leads"]
            connection.exec_driver_sql(f"SET LOCAL ROLE {role}")
            assert grown_tables(connection) == []
    finally:
        with fresh.write() as connection:
            connection.exec_driver_sql(f"DROP ROLE {role}")


def test_a_table_found_locked_is_left_alone_for_a_while(
    fresh: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A lock taken after the lane's look (another worker's ANALYZE, autovacuum's)
    makes it leave the table for a minute, instead of an error in PostgreSQL's log
    every 5 s."""
    add_leads(fresh, 2000)
    with fresh.read() as connection:
        grown = grown_tables(connection)
    tried: list[str] = []

    def counted(connection: Any, table: str) -> str:
        tried.append(table)
        return analyze_table(connection, table)

    monkeypatch.setattr(worker_service, "grown_tables", lambda _connection: grown)
    monkeypatch.setattr(worker_service, "analyze_table", counted)
    now = [1000.0]
    lane = PlannerStatistics(fresh, clock=lambda: now[0])
    holder = create_engine(fresh.engine.url)
    try:
        with holder.begin() as connection:
            connection.exec_driver_sql("LOCK TABLE leads IN SHARE UPDATE EXCLUSIVE MODE")
            assert lane.refresh().analyzed == 0
            assert lane.refresh().analyzed == 0
            assert tried == ["leads"]  # tried once, then left alone
    finally:
        holder.dispose()
    now[0] += 59
    assert lane.refresh().analyzed == 0
    now[0] += 2
    assert lane.refresh().analyzed == 1
    assert tried == ["leads", "leads"]


def test_a_bulk_write_refreshes_only_tables_its_role_may_analyse(fresh: Context) -> None:
    role = f"baton_other_{uuid.uuid4().hex[:12]}"
    with fresh.write() as connection:
        connection.exec_driver_sql(f"CREATE ROLE {role}")
    try:
        with fresh.write() as connection:
            connection.exec_driver_sql(f"SET LOCAL ROLE {role}")
            assert not refresh_statistics(connection, ("leads",), new_rows=5000)
        with fresh.write() as connection:
            assert refresh_statistics(connection, ("leads",), new_rows=5000)
    finally:
        with fresh.write() as connection:
            connection.exec_driver_sql(f"DROP ROLE {role}")
