"""On PostgreSQL a set-based re-score keeps two chunks in flight at once
(``scoring.CHUNKS_AT_ONCE``), each in its own transaction on its own connection: it
gives exactly what the per-lead path gives, hands off the MQLs chunk after chunk in id
order, and when a chunk fails keeps only the whole chunks committed before it."""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from typing import Any
from unittest import mock

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from tests.integration.test_rescore_sets import (
    CONTRACT,
    EVENTS,
    LEADS,
    contract_text,
    fill,
    northwind,
    outcome,
    run,
    same_states,
    signed,
)

from baton.domain.access import operator
from baton.services import contracts as contracts_service
from baton.services import scoring
from baton.services.context import Context
from baton.services.contracts import activate_contract
from baton.services.scoring import ActivationReport, rescore_all
from baton.store.tables import lead_scores, leads

POSTGRES = pytest.mark.parametrize(
    "backend", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True
)

EASY_MQL = {
    "fit": [{"when": {"field": "title", "exists": True}, "points": 40}],
    "engagement": [],
    "grades": {"A": 40, "B": 25, "C": 10},
    "threshold": 30,
    "min_grade": "D",
    "required": [],
    "prep_required": False,
    "cooldown": 0,
    "live": 7,
}
"""Every lead of :func:`northwind` becomes an MQL."""

CLICKS = [(i, "email_click", 3600, {}) for i in range(6)]


def only_these(ctx: Context, ids: list[int]) -> None:
    """Leave ``ids`` the only leads a re-score takes (earlier examples' merged away)."""
    with ctx.write() as connection:
        connection.execute(
            leads.update()
            .where(leads.c.id < ids[0], leads.c.merged_into_id.is_(None))
            .values(merged_into_id=ids[0])
        )


@POSTGRES
@settings(
    max_examples=10,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    new=CONTRACT,
    old=CONTRACT | st.none(),
    people=LEADS,
    events=EVENTS,
    size=st.integers(1, 4),
)
def test_chunks_at_once_equal_the_per_lead_path(
    ctx: Context,
    backend: str,
    new: dict[str, Any],
    old: dict[str, Any] | None,
    people: list[dict[str, Any]],
    events: list[Any],
    size: int,
) -> None:
    ids = fill(ctx, people, events)
    only_these(ctx, ids)
    previous = None
    if old is not None:
        previous = signed(ctx, contract_text(old, "old " + uuid.uuid4().hex[:8]))
        activate_contract(ctx, previous, actor=operator("maria"))
    version = signed(ctx, contract_text(new, "new " + uuid.uuid4().hex[:8]))
    with mock.patch.object(contracts_service, "rescore_all"):
        activate_contract(ctx, version, actor=operator("maria"))
    slow_report, slow = run(ctx, version, previous, ids, sets=False)
    report = ActivationReport(version=version, previous=previous)
    rescore_all(ctx, report, actor=operator("ops"), chunk=size)
    with ctx.read() as connection:
        fast = outcome(connection, ids)
    counts = ("crossed_up", "crossed_down", "became_mql", "held_back")
    assert [getattr(report, n) for n in counts] == [getattr(slow_report, n) for n in counts]
    assert fast["scores"] == slow["scores"]
    assert fast["stages"] == slow["stages"]
    assert fast["transitions"] == slow["transitions"]
    assert fast["handoffs"] == slow["handoffs"]
    assert set(fast["states"]) == set(slow["states"])
    for lead_id, state in slow["states"].items():
        same_states(fast["states"][lead_id], state)


@POSTGRES
def test_two_chunks_are_in_flight_at_once_and_hand_off_in_order(ctx: Context, backend: str) -> None:
    """The first chunk holds on until the second has begun (on the old one-after-the-
    other path it would wait in vain); the handoffs still come chunk after chunk."""
    ids = fill(ctx, northwind(6), CLICKS)
    version = signed(ctx, contract_text(EASY_MQL, "at once"))
    with mock.patch.object(contracts_service, "rescore_all"):
        activate_contract(ctx, version, actor=operator("maria"))
    real_chunk, real_hand_off = scoring.rescore_chunk, scoring._hand_off
    began = threading.Event()
    in_flight: list[int] = []
    most = [0]
    handed: list[int] = []
    guard = threading.Lock()

    def chunk(connection: Any, *args: Any, **kwargs: Any) -> None:
        chunk_ids = args[4]
        with guard:
            in_flight.append(chunk_ids[0])
            most[0] = max(most[0], len(in_flight))
        if chunk_ids[0] == ids[0]:
            began.wait(10)
        else:
            began.set()
        try:
            real_chunk(connection, *args, **kwargs)
        finally:
            with guard:
                in_flight.remove(chunk_ids[0])

    def hand_off(*args: Any, **kwargs: Any) -> None:
        handed.extend(lead_id for lead_id, _ in args[4].leads)
        real_hand_off(*args, **kwargs)

    report = ActivationReport(version=version, previous=None)
    with (
        mock.patch.object(scoring, "rescore_chunk", chunk),
        mock.patch.object(scoring, "_hand_off", hand_off),
    ):
        rescore_all(ctx, report, actor=operator("ops"), chunk=2)
    assert most[0] == 2
    assert began.is_set()
    assert handed == ids
    assert (report.leads_scored, report.became_mql) == (6, 6)


@POSTGRES
def test_a_failing_chunk_keeps_the_chunks_before_it_and_rolls_back_the_one_after(
    ctx: Context, backend: str
) -> None:
    """Chunks of two: the second fails once the third has begun; the first stays
    committed, the second and third leave nothing, and the failure is what is raised."""
    ids = fill(ctx, northwind(6), CLICKS)
    version = signed(ctx, contract_text(EASY_MQL, "failing"))
    with mock.patch.object(contracts_service, "rescore_all"):
        activate_contract(ctx, version, actor=operator("maria"))
    real_chunk = scoring.rescore_chunk
    third = threading.Event()

    def chunk(connection: Any, *args: Any, **kwargs: Any) -> None:
        first = args[4][0]
        if first == ids[4]:
            third.set()
        real_chunk(connection, *args, **kwargs)
        if first == ids[2]:
            third.wait(5)
            raise RuntimeError("the second chunk broke")

    report = ActivationReport(version=version, previous=None)
    with (
        mock.patch.object(scoring, "rescore_chunk", chunk),
        pytest.raises(RuntimeError, match="the second chunk broke"),
    ):
        rescore_all(ctx, report, actor=operator("ops"), chunk=2)
    with ctx.read() as connection:
        scored = set(
            connection.execute(
                select(lead_scores.c.lead_id).where(lead_scores.c.lead_id.in_(ids))
            ).scalars()
        )
        stages = dict(
            connection.execute(select(leads.c.id, leads.c.stage).where(leads.c.id.in_(ids))).all()
        )
    assert scored == set(ids[:2])
    assert [stages[i] for i in ids] == ["mql", "mql", "lead", "lead", "lead", "lead"]
    assert (report.leads_scored, report.became_mql) == (2, 2)


@POSTGRES
def test_the_one_pass_reads_its_rows_by_binary_copy_as_the_driver_reads_them(
    ctx: Context, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The one pass's rows come as binary ``COPY`` read by numpy: the same floats as
    the driver's rows, none at all included, and many taken a part at a time (review:
    the whole text was held beside the array); a null is refused, not read as garbage."""
    from baton.services import scoring
    from baton.services.scoring import _copied_rows, _driver_rows

    monkeypatch.setattr(scoring, "FETCH_ROWS", 1000)

    sql = (
        "SELECT g, g * CAST(0.1 AS DOUBLE PRECISION), CAST(g AS BIGINT) * 3,"
        " CAST(1e300 AS DOUBLE PRECISION) / g FROM generate_series(1, %s) AS g ORDER BY g"
    )
    raw = ctx.engine.raw_connection()
    try:
        driver = raw.driver_connection
        for n in (0, 1, 7, 25_013):
            copied = _copied_rows(driver, sql, (n,), 4)
            assert copied.shape == (n, 4)
            assert np.array_equal(copied, _driver_rows(driver, sql, (n,), 4))
        with pytest.raises(ValueError, match="not all floats"):
            _copied_rows(driver, "SELECT 1, CAST(NULL AS DOUBLE PRECISION)", (), 2)
        late_null = (
            "SELECT g, CASE WHEN g = 4000 THEN NULL ELSE g END FROM generate_series(1, 9000) g"
        )
        with pytest.raises(ValueError, match="not all floats"):
            _copied_rows(driver, late_null, (), 2)
    finally:
        raw.close()


ROUTING_LOCK = 424242
"""Stands for the pools' and reps' rows a chunk's handoffs lock."""


@POSTGRES
def test_a_cycle_through_a_concurrent_writer_is_one_postgresql_breaks(
    ctx: Context, backend: str
) -> None:
    """Review finding (rv5): a writer holding a routing lock and waiting for a lead of
    chunk 2, chunk 2 waiting for chunk 1, chunk 1's handoff waiting for that routing
    lock. With chunk 2's wait kept in Python, PostgreSQL saw no cycle and all of them
    hung for good; now it sees one and ends it within its deadlock timeout (one side
    gets the deadlock error), and what was committed is what the report says."""
    ids = fill(ctx, northwind(6), CLICKS)
    version = signed(ctx, contract_text(EASY_MQL, "cycle"))
    with mock.patch.object(contracts_service, "rescore_all"):
        activate_contract(ctx, version, actor=operator("maria"))
    real_chunk, real_hand_off = scoring.rescore_chunk, scoring._hand_off
    second_locked, writer_holds = threading.Event(), threading.Event()
    writer_pid: list[int] = []

    def chunk(connection: Any, *args: Any, **kwargs: Any) -> None:
        if args[4][0] == ids[2]:
            second_locked.set()
        real_chunk(connection, *args, **kwargs)

    def writer() -> None:  # a group commit: one capture routed, the next on ids[2]
        with ctx.engine.connect() as connection, connection.begin():
            writer_pid.append(connection.exec_driver_sql("SELECT pg_backend_pid()").scalar_one())
            connection.exec_driver_sql("SELECT pg_advisory_xact_lock(%s)", (ROUTING_LOCK,))
            writer_holds.set()
            with contextlib.suppress(Exception):  # the deadlock's victim, maybe
                connection.exec_driver_sql(
                    "SELECT id FROM leads WHERE id = %s FOR UPDATE", (ids[2],)
                )

    def hand_off(connection: Any, *args: Any, **kwargs: Any) -> None:
        if ids[0] in [lead for lead, _ in args[3].leads]:
            assert second_locked.wait(10)
            threading.Thread(target=writer, daemon=True).start()
            assert writer_holds.wait(10)
            time.sleep(0.5)
            connection.exec_driver_sql("SELECT pg_advisory_xact_lock(%s)", (ROUTING_LOCK,))
        real_hand_off(connection, *args, **kwargs)

    report = ActivationReport(version=version, previous=None)
    errors: list[BaseException] = []

    def activation() -> None:
        try:
            rescore_all(ctx, report, actor=operator("ops"), chunk=2)
        except BaseException as error:
            errors.append(error)

    with (
        mock.patch.object(scoring, "rescore_chunk", chunk),
        mock.patch.object(scoring, "_hand_off", hand_off),
    ):
        runner = threading.Thread(target=activation, daemon=True)
        runner.start()
        runner.join(20)  # PostgreSQL's deadlock_timeout is 1 s
        hung = runner.is_alive()
        if hung:  # let the test end: cancel the writer
            with ctx.engine.connect() as connection:
                connection.exec_driver_sql("SELECT pg_cancel_backend(%s)", (writer_pid[0],))
            runner.join(30)
    assert not hung, "the re-score and the writer waited for each other for good"
    assert all("deadlock" in str(error) for error in errors), errors
    with ctx.read() as connection:
        scored = (
            connection.execute(select(lead_scores.c.lead_id).where(lead_scores.c.lead_id.in_(ids)))
            .scalars()
            .all()
        )
    assert len(scored) == report.leads_scored


@POSTGRES
def test_a_chunk_the_database_stops_says_what_was_kept_and_how_to_finish(
    ctx: Context, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Review finding (rv6): a chunk that lost a deadlock read "the database is busy or
    unreachable; nothing was saved" while the version was active and a chunk kept."""
    from typer.testing import CliRunner

    from baton.cli import app

    ids = fill(ctx, northwind(6), CLICKS)
    version = signed(ctx, contract_text(EASY_MQL, "victim"))
    with mock.patch.object(contracts_service, "rescore_all"):
        activate_contract(ctx, version, actor=operator("maria"))
    real_hand_off = scoring._hand_off

    def hand_off(connection: Any, *args: Any, **kwargs: Any) -> None:
        if ids[2] in [lead for lead, _ in args[3].leads]:
            connection.exec_driver_sql(
                "DO $$ BEGIN RAISE EXCEPTION USING ERRCODE = '40P01',"
                " MESSAGE = 'deadlock detected'; END $$"
            )
        real_hand_off(connection, *args, **kwargs)

    monkeypatch.setenv("BATON_DATABASE_URL", ctx.engine.url.render_as_string(hide_password=False))
    monkeypatch.delenv("BATON_ENV", raising=False)
    monkeypatch.setattr(scoring, "SET_CHUNK", 2)
    with mock.patch.object(scoring, "_hand_off", hand_off):
        result = CliRunner().invoke(app, ["contract", "rescore"])
    assert result.exit_code == 1
    said = " ".join(result.output.split())
    assert f"version {version} is active, but its re-score stopped after 2 of 6 leads" in said
    assert "deadlock detected" in said and "`baton contract rescore` to finish it" in said
    assert "nothing was saved" not in said


@POSTGRES
def test_a_lock_timeout_of_the_role_does_not_end_the_wait_for_the_chunk_before(
    ctx: Context, backend: str
) -> None:
    """Review finding (rv6): the wait became a lock wait, so a role's lock_timeout ended
    it (0 leads scored) where the wait in Python had not."""
    from sqlalchemy import event

    ids = fill(ctx, northwind(6), CLICKS)
    version = signed(ctx, contract_text(EASY_MQL, "timeout"))
    with mock.patch.object(contracts_service, "rescore_all"):
        activate_contract(ctx, version, actor=operator("maria"))
    real_hand_off = scoring._hand_off

    def hand_off(connection: Any, *args: Any, **kwargs: Any) -> None:
        if ids[0] in [lead for lead, _ in args[3].leads]:
            time.sleep(1.5)  # chunk 1's handoffs take a while (a busy routing lock)
        real_hand_off(connection, *args, **kwargs)

    def timeouts(dbapi: Any, _record: Any) -> None:  # as ALTER ROLE ... SET would
        with dbapi.cursor() as cursor:
            cursor.execute("SET lock_timeout = '500ms'")
            cursor.execute("SET statement_timeout = '1s'")
        dbapi.commit()

    event.listen(ctx.engine, "connect", timeouts)
    ctx.engine.dispose()
    report = ActivationReport(version=version, previous=None)
    try:
        with mock.patch.object(scoring, "_hand_off", hand_off):
            rescore_all(ctx, report, actor=operator("ops"), chunk=2)
        with ctx.engine.connect() as connection:  # and they apply again after the wait
            assert connection.exec_driver_sql("SHOW lock_timeout").scalar_one() == "500ms"
    finally:
        event.remove(ctx.engine, "connect", timeouts)
        ctx.engine.dispose()
    assert report.leads_scored == 6


@POSTGRES
def test_a_failing_chunk_keeps_the_chunk_before_it_that_is_handing_off(
    ctx: Context, backend: str
) -> None:
    """Review finding (rv6): chunk 2 failing while chunk 1 waited on its routing rolled
    chunk 1 back too; only the chunks after a failure roll back."""
    ids = fill(ctx, northwind(6), CLICKS)
    version = signed(ctx, contract_text(EASY_MQL, "kept"))
    with mock.patch.object(contracts_service, "rescore_all"):
        activate_contract(ctx, version, actor=operator("maria"))
    real_chunk, real_hand_off = scoring.rescore_chunk, scoring._hand_off
    failed = threading.Event()

    def chunk(connection: Any, *args: Any, **kwargs: Any) -> None:
        if args[4][0] == ids[2]:
            failed.set()
            raise RuntimeError("chunk 2 fails")
        real_chunk(connection, *args, **kwargs)

    def hand_off(connection: Any, *args: Any, **kwargs: Any) -> None:
        if ids[0] in [lead for lead, _ in args[3].leads]:
            assert failed.wait(10)
            time.sleep(0.3)
        real_hand_off(connection, *args, **kwargs)

    report = ActivationReport(version=version, previous=None)
    with (
        mock.patch.object(scoring, "rescore_chunk", chunk),
        mock.patch.object(scoring, "_hand_off", hand_off),
        pytest.raises(RuntimeError, match="chunk 2 fails"),
    ):
        rescore_all(ctx, report, actor=operator("ops"), chunk=2)
    with ctx.read() as connection:
        scored = (
            connection.execute(select(lead_scores.c.lead_id).where(lead_scores.c.lead_id.in_(ids)))
            .scalars()
            .all()
        )
    assert sorted(scored) == ids[:2] and report.leads_scored == 2
