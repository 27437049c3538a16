"""Lead import throughput through the real command line: ``baton import leads FILE``.

Writes a CSV of N realistic leads (names, companies, phones, countries, campaigns; a few
bad rows on purpose), runs ``baton import leads`` as a separate process on a fresh
database, and prints rows/s (wall clock of the whole command, start-up included).

The import queues its new leads for the possible-duplicate comparison, which the worker
runs afterwards: the bench then runs that flagging to the end, batch by batch as the
worker does, and prints its time on its own line and the rate of import and flagging
together, so the cost moved off the import is shown, not hidden.

On SQLite the reference measured in the same run is the database's own work for the
same rows: the leads the import stored, their captures and their queue rows inserted
again into an empty database of the same schema (every index, the search index filled
per chunk as the import fills it) by plain ``executemany`` of ready tuples of the
columns the import filled (as it binds them; until 0.12.0 every column, which cost
SQLite about 8 µs more per lead), in chunks of 1,000 rows per transaction. The ratio
printed is import rows/s over that figure. On
PostgreSQL it is ``COPY`` of the same rows (read back as ``COPY``'s text) into an empty
database of the same schema on the same server, 1,000 leads per transaction with their
captures and queue rows; PostgreSQL's own CPU (its backends', read from ``/proc``) is
printed for the import and the reference, with the ratio of command and server CPU
together.

The import can validate a large file in worker processes while it writes (``--jobs``,
default 1): on SQLite the bench also runs it with ``--also-jobs`` processes (default 2;
0 skips it) on a database of its own, in the same run (``--rounds N``: N pairs, their
order alternated, medians shown), so that the two are compared under the same load. CPU
seconds are the import command's, its worker processes' included; with workers, the
importing process' own (it writes: the critical path when a core is free for the
workers) and the workers' are printed apart.

    python bench/import.py            # 100,000 rows, SQLite
    python bench/import.py --rows 20000 --database postgresql
    python bench/import.py --also-jobs 0
    python bench/import.py --rounds 3
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

from rich.console import Console
from rich.table import Table

from _common import ServerCpu, context, database, machine, postgres_database

FIRST = ("Ana", "Ben", "Chloe", "Diego", "Elif", "Farah", "Gustav", "Hana", "Ines", "Jonas")
LAST = ("Alvarez", "Becker", "Chen", "Dubois", "Eriksen", "Fischer", "Garcia", "Haddad")
AREAS = (212, 310, 415, 617, 720, 206, 312, 404)


def write_csv(path: Path, rows: int, seed: int = 3) -> int:
    rng = random.Random(seed)
    bad = 0
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(
            [
                "Email",
                "First Name",
                "Last Name",
                "Company",
                "Job Title",
                "Country",
                "Phone",
                "Lead Source",
                "Campaign",
                "Employees",
            ]
        )
        for i in range(rows):
            first, last = rng.choice(FIRST), rng.choice(LAST)
            country = rng.choice(("US", "US", "GB", "DE"))
            phone = {
                "US": f"({rng.choice(AREAS)}) {rng.randrange(200, 999)}-"
                f"{rng.randrange(10_000):04d}",
                "GB": f"+44 20 7946 {rng.randrange(10_000):04d}",
                "DE": f"+49 30 {rng.randrange(1_000_000, 9_999_999)}",
            }[country]
            email = f"{first}.{last}.{i}@company{i % 20000}.example.com"
            if i % 1000 == 999:
                email, bad = "not-an-email", bad + 1
            writer.writerow(
                [
                    email,
                    first,
                    last,
                    f"Company {i % 20000} Ltd",
                    "Head of Data",
                    country,
                    phone,
                    "webinar",
                    "2026-q4-webinar",
                    rng.choice((10, 50, 200, 1000)),
                ]
            )
    return bad


def flag_queue(url: str) -> tuple[float, int]:
    """Run the worker's duplicate flagging until the queue is empty: seconds, leads."""
    from baton.services.duplicate_checks import flag_pending_duplicates

    ctx = context(url)
    began, flagged = time.perf_counter(), 0
    while done := flag_pending_duplicates(ctx):
        flagged += done
    elapsed = time.perf_counter() - began
    ctx.engine.dispose()
    return elapsed, flagged


def raw_reference(imported: str, empty: str) -> tuple[float, float]:
    """Seconds (wall, CPU) to write the rows the import stored (leads, captures, queue) into the
    empty database ``empty`` by plain ``executemany`` of tuples read from ``imported``
    (two SQLite files of the same schema; the columns the import filled, as it binds
    them), 1,000 leads per transaction with their
    captures and queue rows, the search index filled per chunk as the import fills it."""
    import sqlite3

    source = sqlite3.connect(imported)
    data = {}
    for name in ("leads", "activities", "duplicate_checks"):
        # The columns the import filled (as it binds them; the others keep their
        # defaults): binding all 51 of leads cost SQLite about 8 µs more per row.
        every = [r[1] for r in source.execute(f"PRAGMA table_info({name})")]
        filled = [
            c
            for c in every
            if source.execute(f"SELECT 1 FROM {name} WHERE {c} IS NOT NULL LIMIT 1").fetchone()
        ]
        cursor = source.execute(f"SELECT {', '.join(filled)} FROM {name} ORDER BY 1")
        data[name] = (filled, cursor.fetchall())
    source.close()
    by_lead: dict[str, dict[int, list[tuple[object, ...]]]] = {}
    for name, key in (("activities", "lead_id"), ("duplicate_checks", "lead_id")):
        columns, rows = data[name]
        at = columns.index(key)
        by_lead[name] = {}
        for row in rows:
            by_lead[name].setdefault(row[at], []).append(row)
    target = sqlite3.connect(empty, isolation_level=None)
    for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON"):
        target.execute(f"PRAGMA {pragma}")
    target.execute("PRAGMA cache_size=-65536")
    target.execute("DROP TRIGGER IF EXISTS leads_search_insert")
    sql = {
        name: f"INSERT INTO {name} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
        for name, (columns, _) in data.items()
    }
    leads = data["leads"][1]
    began, cpu_began = time.perf_counter(), time.process_time()
    for start in range(0, len(leads), 1000):
        part = leads[start : start + 1000]
        target.execute("BEGIN IMMEDIATE")
        target.executemany(sql["leads"], part)
        target.execute(
            "INSERT INTO leads_search (rowid, email, first_name, last_name, company)"
            " SELECT id, email, first_name, last_name, company FROM leads WHERE id >= ?",
            (part[0][0],),
        )
        for name in ("activities", "duplicate_checks"):
            rows = [r for lead in part for r in by_lead[name].get(lead[0], ())]
            target.executemany(sql[name], rows)
        target.execute("COMMIT")
    elapsed, cpu = time.perf_counter() - began, time.process_time() - cpu_began
    target.close()
    return elapsed, cpu


def raw_reference_postgres(
    imported: str, empty: str, server: ServerCpu
) -> tuple[float, float, float]:
    """Seconds (wall, CPU, the server's CPU) to ``COPY`` the rows the import stored
    (leads, captures, queue) from the database ``imported`` into the empty database
    ``empty`` of the same schema (every index, the search index among them), 1,000
    leads per transaction with their captures and queue rows, as the text ``COPY``
    reads (read back by ``COPY … TO``, so that the reference writes no conversion)."""
    import psycopg

    data: dict[str, tuple[list[str], list[str]]] = {}
    with psycopg.connect(imported) as source:
        for name, order in (("leads", "id"), ("activities", "id"), ("duplicate_checks", "lead_id")):
            columns = [
                c
                for (c,) in source.execute(
                    "SELECT column_name FROM information_schema.columns WHERE table_name = %s"
                    " AND is_generated = 'NEVER' ORDER BY ordinal_position",
                    (name,),
                )
            ]
            listed = ", ".join(columns)
            with source.cursor().copy(
                f"COPY (SELECT {listed} FROM {name} ORDER BY {order}) TO STDOUT"
            ) as copy:
                text = b"".join(bytes(block) for block in copy).decode()
            data[name] = (columns, text.splitlines(keepends=True))
    by_lead: dict[str, dict[int, list[str]]] = {}
    for name in ("activities", "duplicate_checks"):
        columns, lines = data[name]
        at = columns.index("lead_id")
        by_lead[name] = {}
        for line in lines:
            by_lead[name].setdefault(int(line.split("\t")[at]), []).append(line)
    id_at = data["leads"][0].index("id")
    leads = data["leads"][1]
    with psycopg.connect(empty) as target:
        began, cpu_began, server_began = time.perf_counter(), time.process_time(), server.now()
        for start in range(0, len(leads), 1000):
            part = leads[start : start + 1000]
            ids = [int(line.split("\t")[id_at]) for line in part]
            with target.transaction(), target.cursor() as cursor:
                for name, lines in (
                    ("leads", part),
                    ("activities", [x for i in ids for x in by_lead["activities"].get(i, ())]),
                    (
                        "duplicate_checks",
                        [x for i in ids for x in by_lead["duplicate_checks"].get(i, ())],
                    ),
                ):
                    with cursor.copy(
                        f"COPY {name} ({', '.join(data[name][0])}) FROM STDIN"
                    ) as copy:
                        copy.write("".join(lines))
        elapsed = time.perf_counter() - began
        cpu, server_cpu = time.process_time() - cpu_began, server.now() - server_began
    return elapsed, cpu, server_cpu


BATON = [sys.executable, "-m", "baton.cli"]

MEASURED = [
    sys.executable,
    "-c",
    "import atexit, resource, runpy, sys\n"
    "def cpu():\n"
    "    own = resource.getrusage(resource.RUSAGE_SELF)\n"
    "    workers = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
    "    print('bench-cpu', own.ru_utime + own.ru_stime, workers.ru_utime + workers.ru_stime,"
    " file=sys.stderr)\n"
    "atexit.register(cpu)\n"
    "sys.argv[0] = 'baton'\n"
    "runpy.run_module('baton.cli', run_name='__main__', alter_sys=True)\n",
]
"""``baton`` as ``BATON`` runs it, printing at exit the CPU seconds of its own process
(the importing one, which writes) and of its worker processes (which validate)."""


class Run(NamedTuple):
    seconds: float
    cpu: float
    """The command's and its worker processes'."""
    writer_cpu: float
    """The importing process' alone, start-up included: the critical path with a spare
    core for the workers."""
    workers_cpu: float
    server_cpu: float = 0.0
    """PostgreSQL's backends' (:class:`ServerCpu`), 0 on SQLite."""


def run_import(
    url: str, csv_path: Path, bad: int, jobs: int, errors: Path, server: ServerCpu | None = None
) -> Run:
    """``baton import leads`` with ``--jobs`` on the fresh database ``url``: wall seconds
    and CPU seconds (all, the importing process', its worker processes', the server's)."""
    env = {**os.environ, "BATON_DATABASE_URL": url}
    subprocess.run([*BATON, "init"], env=env, check=True, capture_output=True)
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    server_before = server.now() if server is not None else 0.0
    began = time.perf_counter()
    done = subprocess.run(
        [*MEASURED, "import", "leads", str(csv_path), "--errors", str(errors), "--jobs", str(jobs)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - began
    server_cpu = server.now() - server_before if server is not None else 0.0
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (cpu_after.ru_utime + cpu_after.ru_stime) - (cpu_before.ru_utime + cpu_before.ru_stime)
    said = (f"{bad} row", f"{bad:,} row")  # "100 rows rejected" (was "100 row(s)")
    if done.returncode not in (0, 1) or not any(s in done.stderr for s in said):
        sys.exit(f"import failed:\n{done.stdout}\n{done.stderr}")
    line = next(x for x in done.stderr.splitlines() if x.startswith("bench-cpu "))
    writer, workers = (float(x) for x in line.split()[1:])
    return Run(elapsed, cpu, writer, workers, server_cpu)


def _median(runs: list[Run]) -> Run:
    """The run of median wall time (the lower of the two middle ones)."""
    return sorted(runs, key=lambda r: r.seconds)[(len(runs) - 1) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument(
        "--also-jobs", type=int, default=2, help="a second import with this --jobs (0: none)"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="pairs of imports (--jobs, --also-jobs), alternated in order; medians shown",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="baton-bench-") as tmp, database(args.database) as url:
        csv_path = Path(tmp) / "leads.csv"
        bad = write_csv(csv_path, args.rows)
        load = os.getloadavg()
        postgres = args.database == "postgresql"
        server = ServerCpu(url) if postgres else None

        def fresh(name: str) -> str:
            if postgres:
                return postgres_database(url, name)
            return f"sqlite:///{Path(tmp) / f'{name}.db'}"

        others: list[Run] = []
        runs: list[Run] = []
        for round_ in range(args.rounds):
            last = round_ == args.rounds - 1  # the one the reference and flagging read
            target = url if last else fresh(f"main{round_}")
            if args.also_jobs:
                pair = [
                    (others, fresh(f"other{round_}"), args.also_jobs, "e2.csv"),
                    (runs, target, args.jobs, "e.csv"),
                ]
                for found, at, jobs, errors in pair[:: 1 if round_ % 2 == 0 else -1]:
                    found.append(run_import(at, csv_path, bad, jobs, Path(tmp) / errors, server))
            else:
                runs.append(
                    run_import(target, csv_path, bad, args.jobs, Path(tmp) / "e.csv", server)
                )
        run = _median(runs)
        other = _median(others) if others else None
        elapsed, cpu = run.seconds, run.cpu
        raw = raw_cpu = raw_server = None
        if server is not None:
            empty = fresh("raw")
            subprocess.run(
                [*BATON, "init"],
                env={**os.environ, "BATON_DATABASE_URL": empty},
                check=True,
                capture_output=True,
            )
            raw, raw_cpu, raw_server = raw_reference_postgres(url, empty, server)
            server.close()
        else:
            empty = Path(tmp) / "raw.db"
            subprocess.run(
                [*BATON, "init"],
                env={**os.environ, "BATON_DATABASE_URL": f"sqlite:///{empty}"},
                check=True,
                capture_output=True,
            )
            raw, raw_cpu = raw_reference(url.removeprefix("sqlite:///"), str(empty))
        flagging, flagged = flag_queue(url)
        load_after = os.getloadavg()
    table = Table(title=f"baton import leads, {args.database} ({machine()})")
    for column in ("step", "rows", "seconds", "rows/s"):
        table.add_column(column, justify="right")
    for column in ("CPU s", "rows per CPU s"):
        table.add_column(column, justify="right")
    table.add_row(
        f"import, --jobs {args.jobs} ({bad:,} rejected)",
        f"{args.rows:,}",
        f"{elapsed:.1f}",
        f"{args.rows / elapsed:,.0f}",
        f"{cpu:.1f}",
        f"{args.rows / cpu:,.0f}",
    )
    if other is not None:
        table.add_row(
            f"the same import, --jobs {args.also_jobs} (alternated, own database)",
            f"{args.rows:,}",
            f"{other.seconds:.1f}",
            f"{args.rows / other.seconds:,.0f}",
            f"{other.cpu:.1f}",
            f"{args.rows / other.cpu:,.0f}",
        )
    for label, found in ((args.jobs, run), (args.also_jobs, other)):
        if found is not None and found.workers_cpu > 0.05:
            table.add_row(
                f"  --jobs {label}: the importing process alone (it writes)",
                f"{args.rows:,}",
                "",
                "",
                f"{found.writer_cpu:.1f}",
                f"{args.rows / found.writer_cpu:,.0f}",
            )
            table.add_row(
                f"  --jobs {label}: its worker processes (they validate)",
                f"{args.rows:,}",
                "",
                "",
                f"{found.workers_cpu:.1f}",
                f"{args.rows / found.workers_cpu:,.0f}",
            )
    table.add_row(
        "then the worker flags duplicates",
        f"{flagged:,}",
        f"{flagging:.1f}",
        f"{flagged / max(flagging, 1e-9):,.0f}",
        "",
        "",
    )
    table.add_row(
        "import and flagging together",
        f"{args.rows:,}",
        f"{elapsed + flagging:.1f}",
        f"{args.rows / (elapsed + flagging):,.0f}",
        "",
        "",
    )
    if raw is not None:
        table.add_row(
            f"reference: the same rows by plain {'COPY' if postgres else 'executemany'}",
            f"{args.rows - bad:,}",
            f"{raw:.1f}",
            f"{(args.rows - bad) / raw:,.0f}",
            f"{raw_cpu:.1f}",
            f"{(args.rows - bad) / max(raw_cpu or 0, 1e-9):,.0f}",
        )
    Console().print(table)
    if raw is not None:
        print(
            f"import / reference: {(args.rows / elapsed) / ((args.rows - bad) / raw):.2f} "
            "(rows/s of the whole command, start-up included, over rows/s of the plain "
            f"{'COPY' if postgres else 'executemany'} of the rows it stored)"
        )
    if raw_server is not None and raw_cpu is not None:
        print(
            f"PostgreSQL's CPU: the import's {run.server_cpu:.1f} s "
            f"({run.server_cpu / args.rows * 1e6:.0f} µs per row), the reference's "
            f"{raw_server:.1f} s ({raw_server / (args.rows - bad) * 1e6:.0f} µs per row); "
            f"command and server together {run.cpu + run.server_cpu:.1f} CPU s against "
            f"{raw_cpu + raw_server:.1f} for the reference (ratio "
            f"{(raw_cpu + raw_server) / (run.cpu + run.server_cpu):.2f})"
            + (
                f"; --jobs {args.also_jobs}: the server {other.server_cpu:.1f} s"
                if other is not None
                else ""
            )
        )
    print(
        f"the import with --jobs {args.jobs} used {cpu:.1f} CPU seconds, its worker processes'"
        f" included ({args.rows / cpu:,.0f} rows per CPU second: the figure a busy machine "
        "changes least)"
    )
    for label, found in ((args.jobs, run), (args.also_jobs, other)):
        if found is not None and found.workers_cpu > 0.05:
            print(
                f"with --jobs {label} the importing process used {found.writer_cpu:.1f} CPU s "
                f"({found.writer_cpu / args.rows * 1e6:.0f} µs per row, start-up included): "
                f"with a core free for its workers, {args.rows / found.writer_cpu:,.0f} rows/s"
            )
    if args.rounds > 1:
        print(
            f"medians of {args.rounds} alternated rounds; walls --jobs {args.jobs}: "
            + ", ".join(f"{r.seconds:.1f}" for r in runs)
            + (
                f"; --jobs {args.also_jobs}: " + ", ".join(f"{r.seconds:.1f}" for r in others)
                if others
                else ""
            )
        )
    print(
        "load average (1, 5, 15 min) before: "
        + ", ".join(f"{x:.2f}" for x in load)
        + "; after: "
        + ", ".join(f"{x:.2f}" for x in load_after)
    )


if __name__ == "__main__":
    main()
