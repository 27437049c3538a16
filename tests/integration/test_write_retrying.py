"""Writes PostgreSQL aborts whole are run again (services/context.py ``retrying``,
``Context.write_retrying``, ``Context.write_grouped``): how many runs, which errors, and
the advisory lock the later runs of a serialised retry hold."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from baton.services.context import Context, retrying


class _Orig(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(sqlstate)
        self.sqlstate = sqlstate


def aborted(sqlstate: str = "40P01") -> DBAPIError:
    return DBAPIError("UPDATE ...", {}, _Orig(sqlstate))


@pytest.fixture(autouse=True)
def no_pause(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("baton.services.context.time.sleep", lambda _seconds: None)


def test_an_aborted_write_runs_again_until_it_succeeds_or_the_attempts_are_spent() -> None:
    runs: list[int] = []

    def run(number: int) -> str:
        runs.append(number)
        if number < 3:
            raise aborted()
        return "saved"

    assert retrying(run, attempts=3) == "saved" and runs == [1, 2, 3]
    runs.clear()
    with pytest.raises(DBAPIError):
        retrying(run, attempts=2)
    assert runs == [1, 2]


def test_no_attempt_at_all_is_a_mistake() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        retrying(lambda _number: None, attempts=0)


def test_any_other_error_is_raised_at_once() -> None:
    runs: list[int] = []

    def run(number: int) -> None:
        runs.append(number)
        raise aborted("23505")  # a unique violation: running it again changes nothing

    with pytest.raises(DBAPIError):
        retrying(run, attempts=4)
    assert runs == [1]


def test_later_runs_of_a_serialised_retry_hold_the_lock_and_nothing_of_the_first_stays(
    ctx: Context,
) -> None:
    lock = 0x5EED
    seen: list[Any] = []
    with ctx.write() as connection:
        connection.execute(text("CREATE TABLE retried (n INTEGER)"))

    def work(connection: Connection) -> int:
        connection.execute(text("INSERT INTO retried (n) VALUES (1)"))
        if ctx.dialect == "postgresql":
            held = text(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
                " AND pid = pg_backend_pid() AND objid = :lock"
            )
            seen.append(connection.execute(held, {"lock": lock}).scalar())
        else:
            seen.append(None)
        if len(seen) == 1:
            raise aborted()
        return len(seen)

    try:
        assert ctx.write_retrying(work, attempts=2, retry_lock=lock) == 2
        expected = [0, 1] if ctx.dialect == "postgresql" else [None, None]
        assert seen == expected
        with ctx.read() as connection:  # the aborted first run left nothing
            counted = select(text("count(*)")).select_from(text("retried"))
            assert connection.execute(counted).scalar() == 1
    finally:  # the PostgreSQL test database is shared: only its own tables are emptied
        with ctx.write() as connection:
            connection.execute(text("DROP TABLE retried"))


def test_a_grouped_write_runs_once_more_after_an_abort(ctx: Context) -> None:
    runs: list[int] = []

    def work(connection: Connection) -> str:
        runs.append(1)
        if len(runs) == 1:
            raise aborted("40001")
        return "saved"

    assert ctx.write_grouped(work) == "saved" and len(runs) == 2
