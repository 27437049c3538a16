"""``Context.write_grouped`` runs a write again, once, when PostgreSQL aborted it as a
deadlock victim or a serialization failure, and never for any other error."""

from __future__ import annotations

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError

from baton.services.context import Context
from baton.store.tables import teams


class _DriverError(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(sqlstate)
        self.sqlstate = sqlstate


def _aborted(sqlstate: str) -> OperationalError:
    return OperationalError("SELECT 1", {}, _DriverError(sqlstate))


def _teams(ctx: Context) -> int:
    with ctx.read() as connection:
        return int(connection.execute(select(func.count()).select_from(teams)).scalar_one())


@pytest.mark.parametrize("sqlstate", ["40P01", "40001"])
def test_an_aborted_write_is_run_again_from_the_start(sqlite_ctx: Context, sqlstate: str) -> None:
    runs: list[int] = []

    def work(connection: Connection) -> str:
        runs.append(1)
        connection.execute(
            insert(teams).values(name=f"team {len(runs)}", created_at=sqlite_ctx.clock.now())
        )
        if len(runs) == 1:
            raise _aborted(sqlstate)
        return "saved"

    assert sqlite_ctx.write_grouped(work) == "saved"
    assert len(runs) == 2
    assert _teams(sqlite_ctx) == 1  # the first run's insert was rolled back whole


def test_a_write_aborted_twice_fails_and_other_errors_are_not_retried(
    sqlite_ctx: Context,
) -> None:
    runs: list[str] = []

    def deadlocked(connection: Connection) -> None:
        runs.append("deadlock")
        raise _aborted("40P01")

    def refused(connection: Connection) -> None:
        runs.append("refused")
        raise _aborted("23505")

    with pytest.raises(OperationalError):
        sqlite_ctx.write_grouped(deadlocked)
    with pytest.raises(OperationalError):
        sqlite_ctx.write_grouped(refused)
    assert runs == ["deadlock", "deadlock", "refused"]
