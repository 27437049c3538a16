"""A lead import validated by worker processes (issue 17, ``--jobs``) gives exactly what
the import validated in one process gives: the same leads with the same ids, the same
captures, the same errors and warnings files and the same summary, on seeded random
files full of bad rows. No test here measures time: ``bench/import.py`` does."""

from __future__ import annotations

import csv
import gc
import io
import logging
import multiprocessing
import os
import random
import time
import weakref
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any, ClassVar

import pytest
from sqlalchemy import select
from tests.conftest import START

from baton.config import Settings
from baton.domain.access import operator
from baton.domain.clock import ManualClock
from baton.domain.lead_rows import Columns, validate_records
from baton.domain.leads import LeadCreate
from baton.services import imports
from baton.services.context import Context, open_context
from baton.services.imports import ImportReport, import_leads, write_lines_to_mend
from baton.store.tables import activities, duplicate_checks, leads, suppressions

OPS = operator("ops")
HEADER = [
    "Email",
    "First Name",
    "Company",
    "Phone",
    "Country",
    "Opt In",
    "Created Date",
    "external_id",
    "Employees",
]


def _row(rng: random.Random, i: int, people: list[str]) -> list[str]:
    """One row, good or bad in one of the ways files are: every branch of validation
    (kept, kept with a value left out, rejected, unreadable) and rows of one person
    spread over the file."""
    email = f"p{i}@co{i % 7}.example.com"
    kind = rng.randrange(14)
    if kind == 0 and people:
        email = rng.choice(people).upper()  # the same person again, another case
    elif kind == 1:
        email = "not-an-email"
    people.append(email)
    cells = [
        email,
        rng.choice(["Ana", " Ben ", "Zoë", "", "'=1+1"]),
        rng.choice(["Acme Inc.", "Northwind", "", "Globex GmbH"]),
        rng.choice(["(415) 555-0100", "+44 20 7946 0018", "12", "", f"+4930{i:07d}"]),
        rng.choice(["US", "Germany", "Atlantis", ""]),
        rng.choice(["yes", "no", "maybe", ""]),
        rng.choice(["2026-03-02", "03/02/2026", "someday", "2099-01-01", ""]),
        rng.choice(["", "", f"X{i % 50}"]),
        str(rng.choice((10, 50, 200))),
    ]
    if kind == 2:
        cells[0] = ""  # identified by the phone, or by nothing
    elif kind == 3:
        cells[0], cells[3], cells[7] = "", "", ""  # nothing identifies it
    elif kind == 4:
        cells.append("one cell too many")
    return cells


def _file(seed: int, rows: int) -> str:
    rng = random.Random(seed)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(HEADER)
    people: list[str] = []
    for i in range(rows):
        writer.writerow(_row(rng, i, people))
        if rng.random() < 0.02:
            out.write("\n")  # a blank line
        if rng.random() < 0.01:
            out.write('"a quote left open,x\n')
    return out.getvalue()


@pytest.fixture
def two_databases(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[Context, Context]]:
    template: Path = request.getfixturevalue("sqlite_template")
    opened = []
    for name in ("one.db", "pool.db"):
        path = tmp_path / name
        path.write_bytes(template.read_bytes())
        opened.append(
            open_context(
                Settings(database_url=f"sqlite:///{path}", env="test"),
                clock=ManualClock(current=START),
            )
        )
    try:
        yield opened[0], opened[1]
    finally:
        for context in opened:
            context.engine.dispose()


def _outcome(ctx: Context, report: ImportReport) -> dict[str, Any]:
    errors, warnings = io.StringIO(), io.StringIO()
    write_lines_to_mend(report, errors)
    write_lines_to_mend(report, warnings, warnings=True)
    with ctx.read() as connection:
        tables = {
            table.name: [
                tuple(row)
                for row in connection.execute(select(table).order_by(*table.primary_key.columns))
            ]
            for table in (leads, activities, duplicate_checks)
        }
    summary = {
        name: getattr(report, name)
        for name in ImportReport.__dataclass_fields__
        if name not in ("file",)
    }
    return {"tables": tables, "errors": errors.getvalue(), "warnings": warnings.getvalue()} | {
        "summary": summary
    }


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_an_import_validated_by_worker_processes_stores_and_reports_the_same(
    two_databases: tuple[Context, Context], monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    one, pool = two_databases
    text = _file(seed, 400)
    # Small parts, and the pool used at any size, so that the workers take many parts.
    monkeypatch.setattr(imports, "VALIDATE_STEP", 23)
    monkeypatch.setattr(imports, "POOL_MIN_ROWS", 0)
    used: list[int] = []
    checked = imports._checked_parts

    def spy(*args: Any, **kwargs: Any) -> Any:
        used.append(args[5])  # jobs
        return checked(*args, **kwargs)

    monkeypatch.setattr(imports, "_checked_parts", spy)
    alone = import_leads(one, io.StringIO(text), actor=OPS, jobs=1)
    together = import_leads(pool, io.StringIO(text), actor=OPS, jobs=3)
    assert used == [1, 3]
    assert alone.rejected and alone.rows_with_warnings and alone.updated + alone.unchanged
    with pool.read() as connection:  # the rows' own dates were read, in the workers too
        dated = connection.execute(select(leads.c.id).where(leads.c.created_at < START)).all()
    assert len(dated) > 20
    assert _outcome(pool, together) == _outcome(one, alone)


def test_a_small_file_or_one_core_validates_in_the_importing_process(
    sqlite_ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Below :data:`POOL_MIN_ROWS` no worker starts (it costs more than it saves), and
    without ``jobs`` nor ``BATON_IMPORT_JOBS`` the importing process validates alone."""
    used: list[int] = []
    checked = imports._checked_parts

    def spy(*args: Any, **kwargs: Any) -> Any:
        used.append(args[5])  # jobs
        return checked(*args, **kwargs)

    monkeypatch.setattr(imports, "_checked_parts", spy)
    import_leads(sqlite_ctx, io.StringIO(_file(4, 50)), actor=OPS, jobs=4)
    monkeypatch.setattr(imports, "POOL_MIN_ROWS", 0)
    import_leads(sqlite_ctx, io.StringIO(_file(5, 50)), actor=OPS)
    assert used == [1, 1]


def test_an_import_puts_an_erased_address_back_on_the_suppression_list(ctx: Context) -> None:
    """An address erased before and imported again is suppressed under its plain key
    too, whether or not the import's chunk looked for erasures first (it looks only
    when some erasure left its key), on both databases."""
    from baton.services.person import erase_person

    admin = operator("admin")
    erase_person(ctx, "gone@acme.example", actor=admin)
    text = "Email,First Name\nGone@Acme.example,Ana\nstays@acme.example,Ben\n"
    report = import_leads(ctx, io.StringIO(text), actor=OPS)
    assert report.created == 2
    with ctx.read() as connection:
        rows = connection.execute(select(suppressions.c.email_key, suppressions.c.reason))
        keys: dict[str, str] = {}
        for key, reason in rows:
            keys[key] = reason
    assert keys.get("gone@acme.example") == "erased"
    assert "stays@acme.example" not in keys


def _people_file(seed: int, rows: int) -> str:
    """Rows of many people, some of whom come back far apart in the file (another case,
    a phone alone, a bad email beside the phone), and bad rows: small identity groups,
    so that the writing goes on while later parts are being validated."""
    rng = random.Random(seed)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["Email", "Phone", "First Name", "Opt In", "Created Date"])
    for _ in range(rows):
        person = rng.randrange(rows // 2)
        email = rng.choice(
            [f"p{person}@co.example.com", f" P{person}@CO.example.com", "", "not-an-email"]
        )
        phone = rng.choice(["", f"+49 30 {1000000 + person}", f"+4930{1000000 + person}", "12"])
        writer.writerow(
            [
                email,
                phone,
                rng.choice(["Ana", "", "Zoë"]),
                rng.choice(["yes", "no", ""]),
                rng.choice(["2026-03-02", "someday", ""]),
            ]
        )
    return out.getvalue()


@pytest.mark.parametrize("seed", [7, 8])
def test_an_import_writes_while_its_workers_validate_and_stores_the_same(
    two_databases: tuple[Context, Context], monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    """With worker processes the importing process writes the first people while later
    parts are still being validated (before, every row was validated before the first
    was written), and the result is the same as with one process: the same leads, ids,
    captures, queue, errors, warnings and summary."""
    one, pool = two_databases
    text = _people_file(seed, 600)
    monkeypatch.setattr(imports, "VALIDATE_STEP", 20)
    monkeypatch.setattr(imports, "POOL_MIN_ROWS", 0)
    for context in (one, pool):
        context.settings = context.settings.model_copy(update={"import_chunk_rows": 40})
    steps: list[str] = []

    def progress(step: str, done: int, total: int) -> None:
        if not steps or steps[-1] != step:
            steps.append(step)

    alone = import_leads(one, io.StringIO(text), actor=OPS, jobs=1)
    together = import_leads(pool, io.StringIO(text), actor=OPS, jobs=2, progress=progress)
    assert alone.rejected and alone.rows_with_warnings and alone.updated + alone.unchanged == 0
    assert steps[:3] == ["checking", "writing", "checking"], steps
    assert _outcome(pool, together) == _outcome(one, alone)
    # Imported again: nothing new, and still the same either way.
    again = import_leads(one, io.StringIO(text), actor=OPS, jobs=1)
    again_together = import_leads(pool, io.StringIO(text), actor=OPS, jobs=2)
    assert again.created == 0 and again.unchanged
    assert _outcome(pool, again_together) == _outcome(one, again)


_WORKER_PARTS = 0
"""Parts validated so far by this process, when it is a worker process."""


def _dies_on_its_second_part(*args: Any, **kwargs: Any) -> Any:
    """``validate_records``, except that a worker process dies on the second part it
    takes, without a word, as one the out-of-memory killer or ``kill -9`` ends (its
    first part's result is sent back first)."""
    global _WORKER_PARTS
    if multiprocessing.parent_process() is not None:
        _WORKER_PARTS += 1
        if _WORKER_PARTS == 2:
            os._exit(9)
    return validate_records(*args, **kwargs)


class _Watched(ProcessPoolExecutor):
    """The import's pool, its futures kept in ``submitted`` (weakly in ``refs``)."""

    submitted: ClassVar[list[Future[Any]]] = []
    refs: ClassVar[list[weakref.ref[Future[Any]]]] = []

    def submit(self, *args: Any, **kwargs: Any) -> Future[Any]:
        future = super().submit(*args, **kwargs)
        self.submitted.append(future)
        self.refs.append(weakref.ref(future))
        return future


@pytest.fixture
def watched(monkeypatch: pytest.MonkeyPatch) -> type[_Watched]:
    """One worker process whatever the machine, its pool watched."""
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    monkeypatch.setattr(_Watched, "submitted", [])
    monkeypatch.setattr(_Watched, "refs", [])
    monkeypatch.setattr(imports, "ProcessPoolExecutor", _Watched)
    return _Watched


def test_an_import_whose_worker_process_dies_completes_with_the_same_result(
    two_databases: tuple[Context, Context],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    watched: type[_Watched],
) -> None:
    """Review finding: a validating worker killed mid-import stopped the import with
    an internal error (BrokenProcessPool), the chunks written so far kept. Now this
    process validates the rest itself and the result is that of one process."""
    one, pool = two_databases
    text = _people_file(9, 600)
    monkeypatch.setattr(imports, "VALIDATE_STEP", 20)
    monkeypatch.setattr(imports, "POOL_MIN_ROWS", 0)
    for context in (one, pool):
        context.settings = context.settings.model_copy(update={"import_chunk_rows": 40})
    alone = import_leads(one, io.StringIO(text), actor=OPS, jobs=1)

    monkeypatch.setattr(imports, "validate_records", _dies_on_its_second_part)
    checked = imports._checked_parts

    def worker_takes_two_parts(*args: Any, **kwargs: Any) -> Any:
        """The worker has parts 0 and 1 (started: this process waits for them) before
        this process reaches the first, so it dies mid-import, every run."""
        group = kwargs["meanwhile"]

        def meanwhile() -> None:
            group()
            deadline = time.monotonic() + 60
            while not all(f.running() or f.done() for f in watched.submitted[:2]):
                assert time.monotonic() < deadline
                time.sleep(0.01)

        kwargs["meanwhile"] = meanwhile
        return checked(*args, **kwargs)

    monkeypatch.setattr(imports, "_checked_parts", worker_takes_two_parts)
    with caplog.at_level(logging.WARNING, logger="baton.services.imports"):
        together = import_leads(pool, io.StringIO(text), actor=OPS, jobs=2)
    assert "worker process died" in caplog.text
    assert _outcome(pool, together) == _outcome(one, alone)


def test_a_validated_part_is_let_go_once_the_import_has_it(watched: type[_Watched]) -> None:
    """Review finding: every part's result stayed in the pool's futures until the
    import ended (a 1M-row import held all its rows twice). Each is dropped once
    yielded: here every part is validated by the worker before the first is read."""

    def all_validated() -> None:
        wait(watched.submitted)
        watched.submitted.clear()

    records: list[tuple[int, list[str]]] = [
        (n + 2, [f"p{n}@co.example.com", "Ana"]) for n in range(60)
    ]
    parts = [records[start : start + 10] for start in range(0, len(records), 10)]
    columns = Columns(targets=["email", "first_name"], extras_key="attributes", blanks=frozenset())
    validate = imports._dated_leads({}, zone="UTC", day_first=False, now=START)
    found = imports._checked_parts(
        parts, columns, LeadCreate, {}, validate, 2, meanwhile=all_validated
    )
    try:
        good = [len(next(found).good) for _ in range(len(parts) - 1)]
        gc.collect()
        kept = [ref() is not None for ref in watched.refs[:-2]]
    finally:
        found.close()
    assert good == [10] * (len(parts) - 1)
    assert kept == [False] * (len(parts) - 2)


def test_a_large_files_validators_start_before_it_is_read_and_give_the_same(
    two_databases: tuple[Context, Context], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A file of :data:`~baton.services.imports.POOL_MIN_ROWS` lines or more given by
    path: its worker processes start before the file is read (they take half a second
    to start, about what reading 100,000 rows takes), and are used even when its rows
    turn out fewer (its header, a value over two lines); the result is one process'."""
    one, pool = two_databases
    path = tmp_path / "leads.csv"
    path.write_text(_file(11, 300), encoding="utf-8")
    monkeypatch.setattr(imports, "VALIDATE_STEP", 23)
    monkeypatch.setattr(imports, "POOL_MIN_ROWS", path.read_bytes().count(b"\n"))
    monkeypatch.setattr(os, "cpu_count", lambda: 2)  # a core for a worker on any runner
    order: list[str] = []
    start, read = imports.start_validators, imports._read_mapped
    started: list[Any] = []

    def starting(jobs: int) -> Any:
        order.append("start")
        started.append(start(jobs))
        return started[-1]

    def reading(*args: Any, **kwargs: Any) -> Any:
        order.append("read")
        return read(*args, **kwargs)

    monkeypatch.setattr(imports, "start_validators", starting)
    monkeypatch.setattr(imports, "_read_mapped", reading)
    alone = import_leads(one, path, actor=OPS, jobs=1)
    together = import_leads(pool, path, actor=OPS, jobs=2)
    assert order == ["read", "start", "read"]  # one job: nothing to start
    assert started[0] is not None and started[0]._shutdown_thread  # shut down after
    assert _outcome(pool, together) == _outcome(one, alone)


def test_a_file_of_fewer_lines_starts_no_validators_whatever_its_size(
    sqlite_ctx: Context, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Wide rows make a large file of few rows (X Education's 2.3 MB are 9,240 rows):
    workers started for it cost more than they save (1.62 s against 1.39)."""
    path = tmp_path / "leads.csv"
    text = _file(13, 60)
    path.write_text(text, encoding="utf-8")
    monkeypatch.setattr(imports, "POOL_MIN_ROWS", text.count("\n") + 1)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    started: list[int] = []
    monkeypatch.setattr(imports, "start_validators", lambda jobs: started.append(jobs))
    import_leads(sqlite_ctx, path, actor=OPS, jobs=2)
    assert started == []
    monkeypatch.setattr(imports, "POOL_MIN_ROWS", text.count("\n"))
    assert imports._large(path)


def test_a_large_file_that_cannot_be_read_stops_its_started_validators(
    sqlite_ctx: Context, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = tmp_path / "leads.csv"
    path.write_bytes(b"Email,Name\n" + b"\xff\xfe broken\n" * 10)
    monkeypatch.setattr(imports, "POOL_MIN_ROWS", 1)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)  # a core for a worker on any runner
    started: list[Any] = []
    start = imports.start_validators

    def starting(jobs: int) -> Any:
        started.append(start(jobs))
        return started[-1]

    monkeypatch.setattr(imports, "start_validators", starting)
    with pytest.raises(imports.ImportFileError, match="not valid utf-8-sig"):
        import_leads(sqlite_ctx, path, actor=OPS, jobs=2)
    assert started[0] is not None and started[0]._shutdown_thread  # not left running


def test_a_started_validator_that_dies_before_its_first_part_leaves_the_work_here(
    two_databases: tuple[Context, Context],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
) -> None:
    one, pool = two_databases
    path = tmp_path / "leads.csv"
    path.write_text(_file(12, 200), encoding="utf-8")
    monkeypatch.setattr(imports, "VALIDATE_STEP", 23)
    monkeypatch.setattr(imports, "POOL_MIN_ROWS", 1)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)  # a core for a worker on any runner
    start = imports.start_validators

    def killed(jobs: int) -> Any:
        validators = start(jobs)
        assert validators is not None
        wait([validators.submit(os.getpid)])  # running
        for process in list(validators._processes.values()):  # type: ignore[attr-defined]
            process.kill()
            process.join(30)
        return validators

    monkeypatch.setattr(imports, "start_validators", killed)
    alone = import_leads(one, path, actor=OPS, jobs=1)
    with caplog.at_level(logging.WARNING, logger="baton.services.imports"):
        together = import_leads(pool, path, actor=OPS, jobs=2)
    assert "worker process died" in caplog.text
    assert _outcome(pool, together) == _outcome(one, alone)
