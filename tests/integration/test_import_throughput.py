"""The fast paths of a large lead import (issue 17) keep what users rely on: the search
index holds exactly the rows the per-row trigger would have added, the possible-duplicate
comparison runs after the import (in the worker) with the same pairs, and a capture made
while a large import runs is stored, on both databases. No test here measures time:
``bench/import.py`` does."""

from __future__ import annotations

import csv
import io
import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Table, func, select, text
from sqlalchemy.engine import Connection

from baton.domain.access import operator
from baton.domain.leads import LeadCreate
from baton.services.context import Context
from baton.services.duplicate_checks import flag_pending_duplicates, pending_duplicate_checks
from baton.services.imports import ImportFileError, import_leads
from baton.services.lead_search import search_leads
from baton.services.leads import capture_lead
from baton.store.bulk import SEARCH_INSERT_TRIGGER
from baton.store.tables import activities, duplicate_candidates, leads

OPS = operator("ops")


def _leads_csv(path: Path, rows: int) -> None:
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["Email", "First Name", "Last Name", "Company", "Phone"])
        for i in range(rows):
            writer.writerow(
                [
                    f"person{i}@company{i % 40}.example.com",
                    ("Ana", "Ben", "Zoë")[i % 3],
                    f"Name{i % 7}",
                    f"Company {i % 40}",
                    f"(415) 555-{i % 97:04d}",
                ]
            )


def _search_index_is_exact(ctx: Context) -> None:
    """SQLite: FTS5's own check of the index against the ``leads`` rows (it fails on a
    lead missing from the index or indexed with other words)."""
    if ctx.engine.dialect.name != "sqlite":
        return
    with ctx.write() as connection:
        connection.execute(
            text("INSERT INTO leads_search (leads_search, rank) VALUES ('integrity-check', 1)")
        )
        trigger = connection.execute(
            text("SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND name = :n"),
            {"n": SEARCH_INSERT_TRIGGER},
        ).scalar_one()
    assert trigger == 1, "the per-row trigger is back for every other write path"


def test_an_import_indexes_its_leads_for_search_exactly(ctx: Context) -> None:
    lines = ["email,first_name,last_name,company"]
    lines += [f"p{i}@initech{i % 3}.com,Peter{i},Gibbons,Initech {i % 3}" for i in range(250)]
    lines.append("not-an-email,Bad,Row,X")
    report = import_leads(ctx, io.StringIO("\n".join(lines) + "\n"), actor=OPS)
    assert (report.created, report.rejected) == (250, 1)
    _search_index_is_exact(ctx)
    again = "email,first_name,company\np7@initech1.com,Pete,Initrode\nnew@initech.com,Bill,\n"
    report = import_leads(ctx, io.StringIO(again), actor=OPS)
    assert (report.created, report.updated) == (1, 1)
    _search_index_is_exact(ctx)

    def found(q: str) -> list[str | None]:
        return sorted(h.email for h in search_leads(ctx, {"q": q, "limit": 200}, actor=OPS).items)

    assert search_leads(ctx, {"q": "gibbons"}, actor=OPS).total == 250
    assert found("peter249") == ["p249@initech0.com"]
    assert found("initrode") == ["p7@initech1.com"] and found("bill") == ["new@initech.com"]
    assert "p7@initech1.com" not in found("peter7")
    # A capture after the import is indexed by the trigger as before.
    capture_lead(ctx, LeadCreate(email="milton@initech.com", last_name="Waddams"), actor=OPS)
    assert found("waddams") == ["milton@initech.com"]
    _search_index_is_exact(ctx)


def test_a_failed_chunk_leaves_the_index_and_its_trigger_as_they_were(
    ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    from baton.services import imports

    def fail(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the database went away")

    monkeypatch.setattr(imports, "insert_activity_rows", fail)
    with pytest.raises(RuntimeError):
        import_leads(ctx, io.StringIO("email,last_name\nx@initech.com,Lumbergh\n"), actor=OPS)
    with ctx.read() as connection:
        assert connection.execute(select(func.count()).select_from(leads)).scalar_one() == 0
    _search_index_is_exact(ctx)
    monkeypatch.undo()
    import_leads(ctx, io.StringIO("email,last_name\nx@initech.com,Lumbergh\n"), actor=OPS)
    assert [h.email for h in search_leads(ctx, {"q": "lumb"}, actor=OPS).items] == ["x@initech.com"]
    _search_index_is_exact(ctx)


def _pairs(ctx: Context) -> list[tuple[int, int, str]]:
    with ctx.read() as connection:
        return [
            (r.lead_id, r.other_lead_id, r.reason)
            for r in connection.execute(
                select(duplicate_candidates).order_by(
                    duplicate_candidates.c.lead_id, duplicate_candidates.c.other_lead_id
                )
            )
        ]


def test_duplicates_flagged_after_the_import_are_those_flagged_during_it(
    ctx: Context, tmp_path: Path
) -> None:
    """The worker's flagging of the queue gives the pairs the import used to flag
    itself, chunk by chunk: each lead compared once, with the leads before it."""
    from baton.services.duplicate_checks import possible_duplicates_of, record_pairs_in

    path = tmp_path / "leads.csv"
    _leads_csv(path, 600)
    chunked = Context(
        engine=ctx.engine,
        settings=ctx.settings.model_copy(update={"import_chunk_rows": 100}),
        clock=ctx.clock,
    )
    report = import_leads(chunked, path, actor=OPS)
    assert report.duplicate_checks_queued == report.created == 600
    assert pending_duplicate_checks(ctx) == 600 and _pairs(ctx) == []
    while flag_pending_duplicates(ctx, limit=97):
        pass
    queued = _pairs(ctx)
    assert queued and pending_duplicate_checks(ctx) == 0
    # The plain path on the same leads: compare them chunk by chunk, in id order.
    with ctx.write() as connection:
        connection.execute(duplicate_candidates.delete())
        ids = list(connection.execute(select(leads.c.id).order_by(leads.c.id)).scalars())
    for start in range(0, len(ids), 100):
        with ctx.write() as connection:
            part = ids[start : start + 100]
            record_pairs_in(
                connection, possible_duplicates_of(connection, part, now=ctx.clock.now())[1]
            )
    assert _pairs(ctx) == queued


def test_a_capture_during_a_large_import_is_stored(ctx: Context, tmp_path: Path) -> None:
    """One thread imports a large file in short chunks while another captures leads
    until it ends: every capture is stored (no "database busy", no 503), and one of them
    is made, at the latest, while the import waits between two chunks."""
    path = tmp_path / "big.csv"
    rows = 3000
    _leads_csv(path, rows)
    chunked = Context(
        engine=ctx.engine,
        settings=ctx.settings.model_copy(update={"import_chunk_rows": 200}),
        clock=ctx.clock,
    )
    first_chunk, captured_meanwhile, done = threading.Event(), threading.Event(), threading.Event()
    results: dict[str, object] = {}

    def progress(step: str, written: int, total: int) -> None:
        if step == "writing" and written < total and not first_chunk.is_set():
            first_chunk.set()
            # A guard against a hung test, not a measurement: the capture comes first.
            captured_meanwhile.wait(timeout=120)

    def run_import() -> None:
        try:
            results["report"] = import_leads(chunked, path, actor=OPS, progress=progress)
        except BaseException as exc:  # reported by the assertion below
            results["error"] = exc
        finally:
            first_chunk.set()
            done.set()

    importer = threading.Thread(target=run_import)
    importer.start()
    stored: list[int] = []
    errors: list[BaseException] = []
    first_chunk.wait(timeout=120)
    while not done.is_set() or not stored:
        data = LeadCreate(email=f"walk-in{len(stored)}@northwind.com", source="web")
        try:
            stored.append(capture_lead(ctx, data, actor=operator("web")).lead.id)
        except Exception as exc:  # every failure is the finding
            errors.append(exc)
            break
        captured_meanwhile.set()
    importer.join()
    assert errors == [] and "error" not in results, (errors, results.get("error"))
    report = results["report"]
    assert getattr(report, "created", None) == rows
    with ctx.read() as connection:
        total = connection.execute(select(func.count()).select_from(leads)).scalar_one()
    assert total == rows + len(stored)


def test_the_cycle_collector_is_paused_for_an_import_and_resumed_after_it(
    sqlite_ctx: Context,
) -> None:
    import gc

    seen: list[bool] = []
    text_file = "email,first_name\nana@northwind.com,Ana\n"
    import_leads(
        sqlite_ctx,
        io.StringIO(text_file),
        actor=OPS,
        progress=lambda *_: seen.append(gc.isenabled()),
    )
    assert seen and not any(seen)
    assert gc.isenabled()
    with pytest.raises(ImportFileError):
        import_leads(sqlite_ctx, io.StringIO(""), actor=OPS)  # the file is empty
    assert gc.isenabled()


def test_activity_counters_match_the_stored_captures(ctx: Context) -> None:
    """A new lead gets its counters with its row instead of from the UPDATE that bumps
    them: either way, ``activity_count`` and ``last_activity_at`` say what the stored
    captures say, for new leads, leads seen twice in the file and existing leads."""
    first = "email,first_name,created\nold@northwind.com,Ola,2026-01-05T10:00:00Z\n"
    import_leads(ctx, io.StringIO(first), actor=OPS)
    rows = ["email,first_name,created"]
    rows += [f"p{i}@northwind.com,P{i},2026-02-{1 + i % 27:02d}T08:00:00Z" for i in range(40)]
    rows += ["p3@northwind.com,Pat,2026-02-27T09:30:00Z", "p5@northwind.com,Pia,"]
    rows += ["old@northwind.com,Olaf,2026-02-10T11:00:00Z", "phone-only,,"]
    report = import_leads(ctx, io.StringIO("\n".join(rows) + "\n"), actor=OPS)
    assert (report.created, report.updated) == (40, 1)
    with ctx.read() as connection:
        stored = {
            r.id: (r.activity_count, r.last_activity_at)
            for r in connection.execute(
                select(leads.c.id, leads.c.activity_count, leads.c.last_activity_at)
            )
        }
        expected = {
            r.lead_id: (r.n, r.at)
            for r in connection.execute(
                select(
                    activities.c.lead_id,
                    func.count().label("n"),
                    func.max(activities.c.occurred_at).label("at"),
                ).group_by(activities.c.lead_id)
            )
        }
    assert stored == expected
    assert sorted(n for n, _ in stored.values()).count(2) == 3  # p3, p5 and old


# --- the fast write path against the plain one, and lead ids in file order --------------

_MIXED = (
    "Email,First Name,Last Name,Company,Phone,Country,Lead Source,Campaign,Employees\n"
    "zoe@zeta.example.com,Zoë,Zed,Zeta GmbH,(415) 555-0101,DE,Webinar,q4,50\n"
    "not-an-email,Bad,Row,Nowhere,,,,,\n"
    "adam@alpha.example.com,Adam,,Alpha Inc.,+44 20 7946 0000,UK,ads,,\n"
    ",Phone,Only,,(212) 555-0199,US,,,\n"
    "mia@mu.example.com,Mia,Mu,,not a phone,Narnia,Events,spring,10\n"
    "zoe@zeta.example.com,Zoe,Zed-Smith,,,,,autumn,\n"
    ",,,No identity,,,,,\n"
    "bob@beta.example.com,Bob,Beta,Beta Ltd,,,,,\n"
)
"""Good rows, a rejected row (bad email), a row without identity, values left out (a
phone nobody can read, a country that is none), one person twice and a phone-only lead,
in an order no sort gives (z, a, phone, m, b)."""

_VOLATILE = frozenset({"id", "merged_into_id"})


def _stored(ctx: Context) -> dict[str, dict[str, object]]:
    """Every lead (by email, else phone) with all its columns but the id, and its
    captures' properties."""
    with ctx.read() as connection:
        rows = connection.execute(select(leads).order_by(leads.c.id)).mappings().all()
        captures = connection.execute(
            select(activities.c.lead_id, activities.c.type, activities.c.properties).order_by(
                activities.c.id
            )
        ).all()
    by_id = {row["id"]: str(row["email"] or row["phone"]) for row in rows}
    stored: dict[str, dict[str, object]] = {
        by_id[row["id"]]: {k: v for k, v in row.items() if k not in _VOLATILE} for row in rows
    }
    for lead_id, kind, properties in captures:
        stored[by_id[lead_id]].setdefault("captures", []).append((kind, properties))  # type: ignore[attr-defined]
    return stored


def test_an_import_stores_what_one_capture_per_row_stores(ctx: Context) -> None:
    """The set-based import (columns no row fills left out of the insert, ids in file
    order) stores the same leads and captures as the plain path it stands for: each
    valid row, as the import validated it, captured one by one in file order. Its
    report accounts for every row and keeps the warnings of the rows it imported."""
    from baton.services.imports import (
        LEAD_ALIASES,
        LEAD_COLUMNS,
        _read_and_validate,
        validate_lead_rows,
    )

    report = import_leads(ctx, io.StringIO(_MIXED), actor=OPS)
    fast = _stored(ctx)
    assert (report.rows, report.imported, report.rejected) == (8, 6, 2)
    assert (report.created, report.updated, report.unchanged) == (5, 0, 0)
    assert sorted((w.row, w.field) for w in report.warnings) == [(6, "country"), (6, "phone")]
    assert sorted({e.row for e in report.errors}) == [3, 8]

    with ctx.write() as connection:
        for table in (duplicate_candidates, activities):
            connection.execute(table.delete())
        connection.execute(text("DELETE FROM duplicate_checks"))
        connection.execute(leads.delete())
    plain_report, good = _read_and_validate(
        io.StringIO(_MIXED),
        encoding="utf-8",
        aliases=LEAD_ALIASES,
        known=LEAD_COLUMNS,
        column_map=None,
        extras_key="attributes",
        model=LeadCreate,
        context={"default_region": ctx.settings.default_phone_region},
        validate=validate_lead_rows,
        step=100,
        progress=None,
    )
    assert plain_report.errors == report.errors and plain_report.warnings == report.warnings
    for _, lead in good:
        capture_lead(ctx, lead, actor=OPS)
    assert _stored(ctx) == fast


def test_lead_ids_follow_the_file_order(ctx: Context, monkeypatch: pytest.MonkeyPatch) -> None:
    """A new lead's id follows its first row in the file, across chunks, on both
    databases. On PostgreSQL the ids are taken in file order but the rows still reach
    the insert in the order of their keys, the one order every import locks in, so
    that two imports at once wait for each other instead of deadlocking."""
    from baton.services import imports
    from baton.store import bulk

    inserted: list[list[tuple[str, object]]] = []
    real = bulk.insert_new_leads

    def spy(connection: Connection, table: Table, rows: list[dict[str, Any]]) -> set[int]:
        # The identity each row was gathered under (these rows have no external id).
        inserted.append([(r.get("email_key") or f"phone:{r['phone']}", r.get("id")) for r in rows])
        return real(connection, table, rows)

    monkeypatch.setattr(imports, "insert_new_leads", spy)
    chunked = Context(
        engine=ctx.engine,
        settings=ctx.settings.model_copy(update={"import_chunk_rows": 2}),
        clock=ctx.clock,
    )
    import_leads(chunked, io.StringIO(_MIXED), actor=OPS)
    expected = [
        "zoe@zeta.example.com",
        "adam@alpha.example.com",
        "+12125550199",
        "mia@mu.example.com",
        "bob@beta.example.com",
    ]
    assert _in_id_order(ctx) == expected
    if ctx.engine.dialect.name == "postgresql":
        for rows in inserted:
            keys = [key for key, _ in rows]
            assert keys == sorted(keys), "rows reach the insert in key order"
            assert all(isinstance(lead_id, int) for _, lead_id in rows)
    assert len(inserted) > 1, "the file went in several chunks"
    # Imported again, nothing is new and the ids stay.
    again = import_leads(chunked, io.StringIO(_MIXED), actor=OPS)
    assert again.created == 0 and _in_id_order(ctx) == expected


def _in_id_order(ctx: Context) -> list[str]:
    with ctx.read() as connection:
        found = connection.execute(select(leads.c.email, leads.c.phone).order_by(leads.c.id))
        return [str(r.email or r.phone) for r in found]


def test_two_imports_of_one_list_in_opposite_orders_both_finish(database_url: str) -> None:
    """Two imports at once of the same people, one file the other's reverse, each in one
    transaction. On PostgreSQL the ids are taken in each file's order but the rows go in
    by key, so the two wait for each other instead of deadlocking; SQLite has one writer.
    Both finish, and every person is one lead."""
    from baton.config import Settings
    from baton.services.context import open_context

    lines = [f"p{i:03d}@northwind.example.com,P{i}" for i in range(300)]
    files = {
        "forward": "email,first_name\n" + "\n".join(lines) + "\n",
        "reverse": "email,first_name\n" + "\n".join(reversed(lines)) + "\n",
    }
    contexts = [
        open_context(
            Settings(database_url=database_url, env="test", import_chunk_rows=1000),
            migrate=False,
        )
        for _ in files
    ]
    start = threading.Barrier(len(files))
    results: dict[str, object] = {}

    def run(name: str, ctx: Context) -> None:
        start.wait(timeout=60)
        try:
            results[name] = import_leads(ctx, io.StringIO(files[name]), actor=OPS)
        except BaseException as exc:  # reported by the assertion below
            results[name] = exc

    threads = [
        threading.Thread(target=run, args=(name, c))
        for name, c in zip(files, contexts, strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with contexts[0].read() as connection:
        total = connection.execute(select(func.count()).select_from(leads)).scalar_one()
    for c in contexts:
        c.engine.dispose()
    assert not [r for r in results.values() if isinstance(r, BaseException)], results
    assert total == 300


def test_a_large_import_refreshes_the_planner_statistics_a_small_one_leaves_them(
    own_postgres: Context, tmp_path: Path
) -> None:
    """The worker's comparison right after a large import plans on statistics that
    count the imported leads (stale ones made it 3.8× slower), and a handful of rows
    does not pay for an ``ANALYZE``. (A database of its own: see ``own_postgres``.)"""
    ctx = own_postgres

    def counted(table: str) -> float:
        with ctx.engine.connect() as connection:
            found = connection.execute(
                text("SELECT reltuples FROM pg_class WHERE relname = :t"), {"t": table}
            ).scalar_one()
            return float(found)

    def stored(table: str) -> int:
        with ctx.engine.connect() as connection:
            return int(connection.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())

    small, large = tmp_path / "small.csv", tmp_path / "large.csv"
    _leads_csv(small, 20)
    before = counted("leads")
    import_leads(ctx, small, actor=OPS)
    assert counted("leads") == before

    _leads_csv(large, 1_200)
    report = import_leads(ctx, large, actor=OPS)
    assert report.created == 1_200 - 20
    assert counted("leads") == stored("leads") == 1_200
    assert counted("duplicate_checks") == stored("duplicate_checks") > 0


def test_a_chunk_aborted_as_a_deadlock_victim_is_written_again_and_counted_once(
    ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL aborts one of two writers that wait for each other (an import chunk
    updating people a capture group holds in another order): the chunk, rolled back
    whole, is written again, and the report counts it once, as an import that was
    never aborted does (before, the import stopped with the database's error)."""
    from tests.integration.test_write_retry import _aborted

    from baton.services import imports

    capture_lead(ctx, LeadCreate(email="person1@company1.example.com"), actor=OPS)
    body = io.StringIO()
    _leads_csv_to(body, 6)
    real = imports.write_values_in  # the import writes its rows' values
    calls: list[int] = []

    def aborted_once(connection: Connection, part: Any, **kwargs: Any) -> Any:
        calls.append(len(part))
        result = real(connection, part, **kwargs)
        if len(calls) == 1:  # after writing: PostgreSQL's abort loses all of it
            raise _aborted("40P01")
        return result

    monkeypatch.setattr(imports, "write_values_in", aborted_once)
    report = import_leads(ctx, io.StringIO(body.getvalue()), actor=OPS)
    assert len(calls) == 2
    assert (report.created, report.updated + report.unchanged) == (5, 1)
    assert report.duplicate_checks_queued == 5
    with ctx.read() as connection:
        assert connection.execute(select(func.count()).select_from(leads)).scalar_one() == 6
        captures = connection.execute(select(func.count()).select_from(activities)).scalar_one()
    assert captures == 1 + 6
    _search_index_is_exact(ctx)


def _leads_csv_to(out: io.StringIO, rows: int) -> None:
    writer = csv.writer(out)
    writer.writerow(["Email", "First Name", "Last Name"])
    for i in range(rows):
        writer.writerow([f"person{i}@company{i}.example.com", "Ana", f"Name{i}"])


def test_an_activities_import_takes_turns_of_about_a_fifth_of_a_second(
    ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An activities import writes as the lead import does: a first transaction of 200
    events, then about as many as the last one's pace writes in 0.2 s (at most twice
    as many, at most ``BATON_IMPORT_CHUNK_ROWS``), so that raising the cap saves commits
    without a capture waiting longer for its turn. Its clock here says every transaction
    took 0.5 s whatever its size (a slow machine): the turns shrink to 50 events (not
    ``BATON_IMPORT_CHUNK_ROWS`` each), and every event is stored once."""
    from baton.services import imports

    ticks = iter(range(1_000_000))
    monkeypatch.setattr(imports.time, "perf_counter", lambda: next(ticks) * 0.5)
    real = imports.ingest_validated_in
    sizes: list[int] = []

    def counted(connection: Connection, batch: Any, **kwargs: Any) -> Any:
        sizes.append(len(batch))
        return real(connection, batch, **kwargs)

    monkeypatch.setattr(imports, "ingest_validated_in", counted)
    body = io.StringIO()
    writer = csv.writer(body)
    writer.writerow(["email", "type", "occurred_at", "idempotency_key"])
    for i in range(500):
        writer.writerow(
            [f"p{i % 40}@company.example.com", "page_view", "2026-03-01T10:00:00Z", f"k{i}"]
        )
    capped = Context(
        engine=ctx.engine,
        settings=ctx.settings.model_copy(update={"import_chunk_rows": 4000}),
        clock=ctx.clock,
    )
    report = imports.import_activities(capped, io.StringIO(body.getvalue()), actor=OPS)
    # 200 in 0.5 s is 400/s: 80 in 0.2 s; 80 in 0.5 s is 32: the least, 50.
    assert sizes == [200, 80, 50, 50, 50, 50, 20]
    assert sum(sizes) == 500 and report.stored == 500
    again = imports.import_activities(capped, io.StringIO(body.getvalue()), actor=OPS)
    assert (again.stored, again.duplicates) == (0, 500)


def test_the_next_chunk_follows_the_pace_between_its_bounds() -> None:
    from baton.services.imports import next_chunk_size

    assert next_chunk_size(200, 200, 0.01, 4000) == 400  # fast: at most twice as many
    assert next_chunk_size(2000, 2000, 0.1, 4000) == 4000  # at most the cap
    assert next_chunk_size(4000, 4000, 0.4, 4000) == 2000  # 10,000/s: 0.2 s of it
    assert next_chunk_size(1000, 1000, 10.0, 4000) == 50  # at least 50
    assert next_chunk_size(20, 20, 10.0, 30) == 30  # a cap under 50 is kept
