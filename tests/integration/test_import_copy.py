"""A lead import on PostgreSQL copies its new leads and their queue rows (``COPY``;
issue 17) and writes exactly what the ``INSERT … unnest`` it replaced wrote: the same
file, with rows repeated within it and rows about leads already stored, imported into
two databases from the same start, one of them by the old statements, leaves the same
rows in every table it writes. A lead another writer stored first is skipped as the
insert skipped it."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, text

from baton.config import Settings
from baton.domain.access import operator
from baton.domain.clock import ManualClock
from baton.services import duplicate_checks
from baton.services.context import Context, open_context
from baton.services.imports import import_leads
from baton.store import bulk
from baton.store.tables import leads

WAITING_ON_A_LOCK = (
    "SELECT count(*) FROM pg_stat_activity"
    " WHERE datname = current_database() AND wait_event_type = 'Lock'"
)
"""Sessions of this test's database waiting for a lock (a server shared by several
test runs has others' waits in ``pg_locks``)."""

pytestmark = pytest.mark.postgres

HEADERS = ["Email", "First Name", "Last Name", "Company", "Country", "Phone", "External Id"]
HEADERS += ["Consent", "Created Date", "Notes"]


def _rows(first: int, last: int) -> list[list[str]]:
    rows = []
    for i in range(first, last):
        rows.append(
            [
                f"p{i}@co{i % 7}.example.com",
                f"F{i}",
                "O'Hara\\" if i % 5 == 0 else f"L{i}",
                f"Co {i % 7}" if i % 4 else 'Tab\tand "quote"',
                ["US", "GB", "", "DE"][i % 4],
                f"+1 212 555 {i:04d}" if i % 3 else "",
                f"X{i}" if i % 6 == 0 else "",
                ["yes", "no", ""][i % 3],
                "2026-01-02 03:04:05" if i % 2 else "",
                ["plain", "back\\slash", "line\nbreak", ""][i % 4],
            ]
        )
    return rows


def _file(rows: list[list[str]]) -> io.StringIO:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(HEADERS)
    writer.writerows(rows)
    out.seek(0)
    return out


@pytest.fixture
def two_databases(postgres_server: Any) -> Iterator[tuple[Context, Context]]:
    names = [postgres_server.create_database() for _ in range(2)]
    contexts = [
        open_context(
            Settings(database_url=postgres_server.url_for(name), env="test", import_chunk_rows=60),
            clock=ManualClock(datetime(2026, 3, 2, 9, 0, tzinfo=UTC)),
        )
        for name in names
    ]
    try:
        yield contexts[0], contexts[1]
    finally:
        for ctx in contexts:
            ctx.engine.dispose()
        for name in names:
            postgres_server.drop_database(name)


def _import_all(ctx: Context) -> list[tuple[int, int, int, int]]:
    """The stored leads, then the file with them again (repeated, changed, new rows),
    then the file again: each import's (created, updated, unchanged, rejected)."""
    stored = _rows(0, 120)[::3]
    again = _rows(0, 300)
    again += [
        [r[0].upper(), r[1] + "b", "", "Other Co", "", r[5], r[6], "", "", "again"]
        for r in again[::9]
    ]  # the same people again within the file
    again += [
        ["", f"Phone{i}", "", "", "US", f"+1 415 555 {i:04d}", "", "", "", ""] for i in range(40)
    ]  # identified by phone alone
    again += [["not-an-email", "", "", "", "", "", "", "", "", ""]]
    found = []
    for rows in (stored, again, again):
        report = import_leads(ctx, _file(rows), actor=operator("cli"))
        found.append((report.created, report.updated, report.unchanged, report.rejected))
        assert isinstance(ctx.clock, ManualClock)
        ctx.clock.advance(timedelta(minutes=1))
    return found


def _tables(ctx: Context) -> dict[str, list[tuple[Any, ...]]]:
    with ctx.read() as connection:
        return {
            name: [
                tuple(row)
                for row in connection.execute(text(f"SELECT * FROM {name} ORDER BY {key}"))
            ]
            for name, key in (
                ("leads", "id"),
                ("activities", "id"),
                ("duplicate_checks", "lead_id"),
                ("suppressions", "email_key"),
            )
        }


def _lead_row(email: str, lead_id: int | None = None) -> dict[str, Any]:
    """A new lead's row as :func:`bulk.insert_new_leads` takes it (with ``lead_id``: an
    id taken from the sequence, as an import's)."""
    at = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    row: dict[str, Any] = {
        "email": email,
        "email_key": email,
        "attributes": {},
        "stage": "lead",
        "stage_changed_at": at,
        "created_at": at,
        "updated_at": at,
        "activity_count": 0,
    }
    return {"id": lead_id, **row} if lead_id else row


def _ids_from_sequence(connection: Any, count: int) -> list[int]:
    return list(
        connection.execute(
            text(
                "SELECT nextval(pg_get_serial_sequence('leads', 'id'))"
                f" FROM generate_series(1, {int(count)})"
            )
        ).scalars()
    )


def test_the_copied_rows_are_the_rows_the_insert_wrote(
    two_databases: tuple[Context, Context], monkeypatch: pytest.MonkeyPatch
) -> None:
    copied, inserted = two_databases
    copies: list[bool] = []
    real_copy = bulk.copy_new_rows

    def counted(*args: Any) -> bool:
        copies.append(real_copy(*args))
        return copies[-1]

    monkeypatch.setattr(bulk, "copy_new_rows", counted)
    with_copy = _import_all(copied)
    assert copies and all(copies), "every chunk's new leads copied"

    monkeypatch.setattr(bulk, "copy_new_rows", lambda *args: False)  # the insert, as before
    monkeypatch.setattr(
        duplicate_checks,
        "copy_rows_in",
        lambda connection, table, rows: bulk.insert_rows(
            connection, table, rows, ignore_conflicts=True
        ),
    )
    assert _import_all(inserted) == with_copy
    assert with_copy[2][0] == 0, "the file imported again creates no lead"
    assert _tables(copied) == _tables(inserted)


def test_a_lead_another_writer_stored_first_is_skipped(
    two_databases: tuple[Context, Context],
) -> None:
    ctx, _ = two_databases
    import_leads(ctx, _file(_rows(0, 3)), actor=operator("cli"))
    with ctx.write() as connection:
        taken = _ids_from_sequence(connection, 2)
        new = [
            _lead_row(email, lead_id)
            for lead_id, email in zip(taken, ["p1@co1.example.com", "new@example.com"], strict=True)
        ]
        assert bulk.insert_new_leads(connection, leads, new) == {taken[1]}
    with ctx.read() as connection:
        stored = dict(connection.execute(select(leads.c.email_key, leads.c.id)).all())
    assert stored["new@example.com"] == taken[1]
    assert stored["p1@co1.example.com"] != taken[0] and len(stored) == 4


def test_a_chunk_that_loses_a_deadlock_in_its_copy_is_tried_again(
    two_databases: tuple[Context, Context],
) -> None:
    """The copy runs on the driver's own connection: its errors must reach the caller as
    SQLAlchemy's, like every other statement's, or the chunk's retry on a deadlock
    (``Context.write_retrying``) never sees one (found in review: the import failed
    where the insert it replaced was tried again)."""
    import threading

    ctx, _ = two_databases
    other = ctx.engine.connect()
    other_transaction = other.begin()
    bulk.insert_new_leads(other, leads, [_lead_row("a@x.example")])  # held, uncommitted
    holding = threading.Event()
    attempts: list[int] = []
    outcome: list[object] = []

    def other_waits() -> None:
        with ctx.engine.connect() as watcher:
            for _ in range(200):
                waiting = watcher.execute(text(WAITING_ON_A_LOCK)).scalar_one()
                if waiting:
                    return
                threading.Event().wait(0.05)
        raise AssertionError("the other transaction never waited")

    def chunk(connection: Any) -> Any:
        attempts.append(1)
        ids = _ids_from_sequence(connection, 2)
        connection.execute(text("SET LOCAL deadlock_timeout = '100ms'"))  # the victim
        bulk.insert_new_leads(connection, leads, [_lead_row("c@x.example")])
        if len(attempts) == 1:
            holding.set()
            other_waits()  # for c@x.example, which this transaction holds
        rows = [_lead_row("a@x.example", ids[0]), _lead_row("b@x.example", ids[1])]
        return bulk.insert_new_leads(connection, leads, rows)

    def run() -> None:
        try:
            outcome.append(ctx.write_retrying(chunk, attempts=3))
        except BaseException as error:
            outcome.append(error)

    worker = threading.Thread(target=run)
    worker.start()
    assert holding.wait(30)
    other.execute(text("SET LOCAL deadlock_timeout = '10s'"))
    bulk.insert_new_leads(other, leads, [_lead_row("c@x.example")])  # waits on the chunk
    other_transaction.commit()
    other.close()
    worker.join(60)
    assert len(attempts) == 2, outcome
    assert not isinstance(outcome[0], BaseException), outcome
