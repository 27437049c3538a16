"""Contract activation: re-score every lead with a new contract.

Fills a fresh database with N leads and M activities (written in bulk: the set-up is
not measured), activates the example contract (the real use case: approvals,
activation, chunked re-scoring, MQL transitions) and prints the seconds it took, per
database. The reference, measured in the same run on each database: the per-lead path
the set-based re-score replaced, on a smaller fill (``--reference-leads``, events in
the same proportion); the ratio compares leads per second. ``--chunk`` (repeatable)
measures the set-based path at several chunk sizes (leads per transaction) on the same
fill (copied on SQLite, refilled on PostgreSQL).

    python bench/rescore.py                                 # 100,000 leads, 1,000,000 events
    python bench/rescore.py --leads 1000000 --events 10000000 --backend sqlite
    python bench/rescore.py --backend sqlite --chunk 50000 --chunk 20000 --chunk 10000
    python bench/rescore.py --leads 1000000 --events 10000000 --backend sqlite --filled /tmp/f

``--filled DIR`` keeps each SQLite fill in DIR and copies it on later runs (the 1,000,000
lead fill takes about 20 minutes here); the activation is measured on the copy, after
the copy is written to disk (``fsync``: a user's database is not 2 GB of pages the
kernel has yet to write, whose write-back would run during the activation) and migrated.
On PostgreSQL it keeps a server's data directory in ``DIR/pg``: each fill is a database
there (vacuumed and analysed after the load, as autovacuum would), used as the TEMPLATE
of a fresh database for every run, so each run starts from the same data in seconds.

What is timed is what a user waits for: ``activate_contract`` from its call to its
return (the worker processes' start, the one pass, the chunks, the handoffs, the index
of totals built again), nothing of the set-up (fill, copy, migration, the contract's
creation and approvals). Beside the wall seconds the table gives the CPU seconds of the
activation's process and of its worker processes, and the CPU the machine gave other
processes meanwhile (``/proc/stat``): on a shared machine the wall varies with that, by
10 s and more at 1,000,000 leads, with about the same CPU. On PostgreSQL the server's
processes are among the others (they are not the bench's children)."""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import random
import resource
import shutil
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

from rich.console import Console
from rich.table import Table

from _common import BENCH, MARIA, SAM, context, database, machine
from baton.services import contracts as contracts_service
from baton.services import scoring
from baton.services.contracts import activate_contract, approve_contract, create_contract
from baton.services.scoring import rescore_all
from baton.store.bulk import insert_activities, insert_rows
from baton.store.tables import lead_prep, leads

EXAMPLE = Path(__file__).parent.parent / "contracts" / "example.yaml"
TITLES = ("VP Operations", "Data Analyst", "Student", "Head of Data", "CTO", "Consultant")
COUNTRIES = ("US", "DE", "FR", "GB", "BR", "IN")
EVENTS = (
    ("page_view", "/pricing"),
    ("page_view", "/product/x"),
    ("email_click", None),
    ("content_download", None),
    ("webinar_attended", None),
    ("email_open", None),
)


def fill(url: str, n_leads: int, n_events: int) -> None:
    ctx = context(url)
    rng = random.Random(1)
    now = datetime(2026, 6, 1, tzinfo=UTC)
    batch = 50_000
    with ctx.write() as connection:
        for start in range(0, n_leads, batch):
            insert_rows(
                connection,
                leads,
                [
                    {
                        "email": f"p{i}@c{i % 9000}.example.com",
                        "email_key": f"p{i}@c{i % 9000}.example.com",
                        "email_domain": f"c{i % 9000}.example.com",
                        "title": rng.choice(TITLES),
                        "country": rng.choice(COUNTRIES),
                        "company": f"Company {i % 9000}",
                        "attributes": {"employees": rng.choice((5, 80, 400, 9000))},
                        "stage": "lead",
                        "stage_changed_at": now,
                        "created_at": now,
                        "updated_at": now,
                        "activity_count": 0,
                    }
                    for i in range(start, min(n_leads, start + batch))
                ],
            )
    with ctx.write() as connection:
        # Marketing has done the prep of one lead in a hundred: those over the
        # threshold become MQLs on activation (the example contract requires two prep
        # items); the others wait for their prep.
        insert_rows(
            connection,
            lead_prep,
            [
                {"lead_id": lead_id, "item": item, "done_by": "bench", "done_at": now}
                for lead_id in range(1, n_leads + 1, 100)
                for item in ("use_case_noted", "company_size_confirmed")
            ],
        )
    with ctx.write() as connection:
        for start in range(0, n_events, batch):
            rows = []
            for i in range(start, min(n_events, start + batch)):
                kind, url_ = EVENTS[i % len(EVENTS)]
                rows.append(
                    {
                        "lead_id": 1 + rng.randrange(n_leads),
                        "type": kind,
                        "occurred_at": now - timedelta(minutes=rng.randrange(0, 180 * 1440)),
                        "received_at": now,
                        "properties": {"url": url_} if url_ else {},
                        "idempotency_key": None,
                        "recorded_by": "bench",
                    }
                )
            insert_activities(connection, rows)
    if url.startswith("postgresql"):
        # What autovacuum does to a running database after a bulk load: statistics for
        # the planner, and the visibility map that lets the engagement query read the
        # activities index alone.
        with ctx.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as raw:
            raw.exec_driver_sql("VACUUM ANALYZE")
    ctx.engine.dispose()


def filled(url: str, n_leads: int, n_events: int, keep: Path | None) -> None:
    """:func:`fill`, or on SQLite with ``keep`` a copy of the same fill kept there."""
    if keep is None or not url.startswith("sqlite:///"):
        fill(url, n_leads, n_events)
        return
    kept = keep / f"rescore-{n_leads}-{n_events}.db"
    target = url.removeprefix("sqlite:///")
    if not kept.exists():
        fill(url, n_leads, n_events)
        keep.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(target, kept)
    else:
        shutil.copyfile(kept, target)
        # The copy's pages on disk now, not written back while the activation runs.
        descriptor = os.open(target, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


@contextlib.contextmanager
def kept_postgresql(keep: Path, n_leads: int, n_events: int) -> Iterator[str]:
    """A URL for a fresh PostgreSQL database holding :func:`fill`'s data, copied from a
    fill kept in ``keep/pg`` (filled first if it is not there yet). The fill is renamed
    to its template name only once complete, so a fill cut short is redone next time;
    the copy is dropped when the block ends (the server stops with its last user)."""
    import pgserver
    from sqlalchemy import create_engine

    keep.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(keep.resolve() / "pg", cleanup_mode="stop")
    template = f"rescore_{n_leads}_{n_events}"
    copy = f"run_{os.getpid()}"
    admin = create_engine(server.get_uri(), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            # Another run filling the same template: wait for it rather than fill twice.
            connection.exec_driver_sql("SELECT pg_advisory_lock(hashtext(%s))", (template,))
            kept = connection.exec_driver_sql(
                "SELECT 1 FROM pg_database WHERE datname = %s", (template,)
            ).first()
            if kept is None:
                connection.exec_driver_sql(f"DROP DATABASE IF EXISTS {template}_filling")
                connection.exec_driver_sql(f"CREATE DATABASE {template}_filling")
                fill(server.get_uri(f"{template}_filling"), n_leads, n_events)
                connection.exec_driver_sql(
                    f"ALTER DATABASE {template}_filling RENAME TO {template}"
                )
            connection.exec_driver_sql("SELECT pg_advisory_unlock(hashtext(%s))", (template,))
        with admin.connect() as connection:
            connection.exec_driver_sql(f"DROP DATABASE IF EXISTS {copy}")
            # FILE_COPY: the files copied as they are (a checkpoint, no WAL for every
            # page), seconds for gigabytes.
            connection.exec_driver_sql(
                f"CREATE DATABASE {copy} TEMPLATE {template} STRATEGY FILE_COPY"
            )
        try:
            yield server.get_uri(copy)
        finally:
            with admin.connect() as connection:
                connection.exec_driver_sql(f"DROP DATABASE IF EXISTS {copy} WITH (FORCE)")
    finally:
        admin.dispose()
        server.cleanup()


@contextlib.contextmanager
def filled_database(backend: str, n_leads: int, n_events: int, keep: Path | None) -> Iterator[str]:
    """A URL for a database of ``backend`` holding :func:`fill`'s data: kept fills
    copied when ``keep`` is given (:func:`filled`, :func:`kept_postgresql`)."""
    if keep is not None and backend == "postgresql":
        with kept_postgresql(keep, n_leads, n_events) as url:
            yield url
        return
    with database(backend) as url:
        filled(url, n_leads, n_events, keep)
        yield url


def machine_busy() -> float | None:
    """CPU seconds the machine has spent busy (all cores, all processes) since it
    started, from ``/proc/stat``; ``None`` where there is none."""
    try:
        with Path("/proc/stat").open() as stat:
            ticks = [int(value) for value in stat.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    idle = ticks[3] + ticks[4]  # idle and waiting for I/O
    return (sum(ticks) - idle) / os.sysconf("SC_CLK_TCK")


class Activation(NamedTuple):
    """One measured activation."""

    seconds: float
    """Wall seconds of ``activate_contract``, from its call to its return."""
    scored: int
    mql: int
    handing: float
    """Of ``seconds``: opening and routing the MQLs' handoffs."""
    longest: float
    """The longest chunk's seconds (about how long its transaction held the leads it
    locked, and SQLite's write turn)."""
    passing: float
    """Of ``seconds``: the one pass over the activities before the chunks (SQLite from
    ``scoring.ONE_PASS_LEADS`` leads; 0 otherwise)."""
    cpu: float
    """CPU seconds of the activation's process meanwhile."""
    workers: float
    """CPU seconds of the worker processes it started and ended meanwhile."""
    others: float | None
    """CPU seconds the machine gave other processes meanwhile (None: not known)."""
    load: float
    """The load average (1 minute) as the activation began."""


def activate(url: str, *, set_based: bool = True, chunk: int | None = None) -> Activation:
    """Activate the example contract on the database at ``url`` (created and approved
    first, not timed) and measure it (:class:`Activation`)."""
    ctx = context(url)
    ctx.clock.set(datetime(2026, 6, 1, tzinfo=UTC))  # type: ignore[attr-defined]
    version = create_contract(ctx, EXAMPLE.read_text(), actor=MARIA).version
    approve_contract(ctx, version, role="marketing", actor=MARIA)
    approve_contract(ctx, version, role="sales", actor=SAM)
    real = contracts_service.rescore_all
    contracts_service.rescore_all = functools.partial(rescore_all, set_based=set_based, chunk=chunk)  # type: ignore[assignment]
    real_hand_off = scoring._hand_off
    handing = [0.0]

    def timed_hand_off(*args: Any, **kwargs: Any) -> None:
        began = time.perf_counter()
        real_hand_off(*args, **kwargs)
        handing[0] += time.perf_counter() - began

    real_chunk = scoring.rescore_chunk
    longest = [0.0]

    def timed_chunk(*args: Any, **kwargs: Any) -> None:
        began = time.perf_counter()
        real_chunk(*args, **kwargs)
        longest[0] = max(longest[0], time.perf_counter() - began)

    real_one_pass = scoring._one_pass
    passing = [0.0]

    def timed_one_pass(*args: Any, **kwargs: Any) -> Any:
        began = time.perf_counter()
        try:
            return real_one_pass(*args, **kwargs)
        finally:
            passing[0] += time.perf_counter() - began

    scoring._hand_off = timed_hand_off  # type: ignore[assignment]
    scoring.rescore_chunk = timed_chunk  # type: ignore[assignment]
    scoring._one_pass = timed_one_pass  # type: ignore[assignment]
    load = os.getloadavg()[0]
    busy = machine_busy()
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = time.process_time()
    try:
        began = time.perf_counter()
        report = activate_contract(ctx, version, actor=BENCH)
        elapsed = time.perf_counter() - began
        cpu = time.process_time() - cpu
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        workers = (after.ru_utime - children.ru_utime) + (after.ru_stime - children.ru_stime)
        busy_after = machine_busy()
        others = (
            None
            if busy is None or busy_after is None
            else max(0.0, busy_after - busy - cpu - workers)
        )
    finally:
        contracts_service.rescore_all = real  # type: ignore[assignment]
        scoring._hand_off = real_hand_off  # type: ignore[assignment]
        scoring.rescore_chunk = real_chunk  # type: ignore[assignment]
        scoring._one_pass = real_one_pass  # type: ignore[assignment]
    ctx.engine.dispose()
    return Activation(
        elapsed,
        report.leads_scored,
        report.became_mql,
        handing[0],
        longest[0],
        passing[0],
        cpu,
        workers,
        others,
        load,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument(
        "--reference-leads",
        type=int,
        default=20_000,
        help="leads of the per-lead reference's fill (at least 1: the ratio needs it)",
    )
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument(
        "--chunk",
        type=int,
        action="append",
        help=f"leads per transaction of the set-based path (default {scoring.SET_CHUNK:,})",
    )
    parser.add_argument(
        "--filled", type=Path, help="keep fills in this folder and reuse them (both databases)"
    )
    args = parser.parse_args()
    if args.reference_leads < 1:
        parser.error("--reference-leads must be at least 1 (the rate is given against it)")
    sizes: list[int] = args.chunk or [scoring.SET_CHUNK]
    backends = ("sqlite", "postgresql") if args.backend == "both" else (args.backend,)
    reference_events = args.events * args.reference_leads // max(args.leads, 1)
    table = Table(
        title=f"Contract activation: {args.leads:,} leads, {args.events:,} events ({machine()})"
    )
    for column in (
        "database",
        "path",
        "chunk",
        "leads",
        "seconds",
        "leads/s",
        "events/s",
        "became MQL",
        "of which handoffs s",
        "of which one pass s",
        "longest chunk s",
        "× per-lead leads/s",
        "CPU s: its process + workers",
        "others' CPU s",
        "load (1 min) at start",
    ):
        table.add_column(column, justify="right")

    def cpu_cells(run: Activation) -> tuple[str, str, str]:
        return (
            f"{run.cpu:.1f} + {run.workers:.1f}",
            "?" if run.others is None else f"{run.others:.1f}",
            f"{run.load:.1f}",
        )

    def add_row(backend: str, size: int, run: Activation, old_rate: float) -> None:
        table.add_row(
            backend,
            "set-based",
            f"{size:,}",
            f"{args.leads:,}",
            f"{run.seconds:.1f}",
            f"{run.scored / run.seconds:,.0f}",
            f"{args.events / run.seconds:,.0f}",
            f"{run.mql:,}",
            f"{run.handing:.1f}",
            f"{run.passing:.1f}",
            f"{run.longest:.2f}",
            f"{run.scored / run.seconds / old_rate:.1f}",
            *cpu_cells(run),
        )

    for backend in backends:
        with filled_database(backend, args.reference_leads, reference_events, args.filled) as url:
            old = activate(url, set_based=False)
        old_rate = old.scored / old.seconds

        table.add_row(
            backend,
            "per lead (reference)",
            "2,000",
            f"{args.reference_leads:,}",
            f"{old.seconds:.1f}",
            f"{old_rate:,.0f}",
            f"{reference_events / old.seconds:,.0f}",
            f"{old.mql:,}",
            f"{old.handing:.1f}",
            "0.0",
            f"{old.longest:.2f}",
            "1.0",
            *cpu_cells(old),
        )
        with filled_database(backend, args.leads, args.events, args.filled) as url:
            path = url.removeprefix("sqlite:///")
            for index, size in enumerate(sizes):
                if index and backend == "sqlite":
                    for suffix in ("-wal", "-shm"):
                        Path(path + suffix).unlink(missing_ok=True)
                    shutil.copyfile(path + ".template", path)
                elif index:
                    continue
                elif backend == "sqlite" and len(sizes) > 1:
                    shutil.copyfile(path, path + ".template")
                add_row(backend, size, activate(url, chunk=size), old_rate)
        if backend != "sqlite":
            for size in sizes[1:]:
                with filled_database(backend, args.leads, args.events, args.filled) as url:
                    run = activate(url, chunk=size)
                add_row(backend, size, run, old_rate)
    Console(width=200).print(table)


if __name__ == "__main__":
    main()
