"""Lead search at scale: p50/p99 of prefix searches through the index.

Fills a migrated database with N generated leads (written straight to the driver with
``executemany``, so the index is kept by the database as for an import: the FTS5
triggers on SQLite, the GIN index on PostgreSQL), about 60% of them scored, then times
:func:`baton.services.lead_search.search_leads` (the use case the list page and the
API call: a page of 50 with the total) for prefix searches of 1 to 6 letters of
names, companies and email words, alone and with a filter, sorted by creation and by
score. The figure excludes the fill.

    python bench/search.py                              # 1,000,000 leads, SQLite
    python bench/search.py --leads 100000 --backend postgresql
    python bench/search.py --keep /tmp/search.db        # generate once, reuse
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table
from sqlalchemy import func, select, text

from _common import BENCH, FIRST, LAST, SYLLABLES, context, database, fill, machine
from baton.services.lead_search import search_leads
from baton.store.search import search_condition
from baton.store.tables import leads

QUERIES = (
    ("1 letter", lambda rng: rng.choice("abcdefghijklmnoprstvwyz")),
    ("2 letters", lambda rng: rng.choice(FIRST.split() + LAST.split())[:2]),
    ("3 letters", lambda rng: rng.choice(FIRST.split() + LAST.split())[:3]),
    ("name word", lambda rng: rng.choice(LAST.split())),
    ("company prefix", lambda rng: rng.choice(SYLLABLES.split())),
    ("first + last", lambda rng: f"{rng.choice(FIRST.split())} {rng.choice(LAST.split())[:3]}"),
    ("email prefix", lambda rng: f"{rng.choice(FIRST.split())}.{rng.choice(LAST.split())}1"),
)
VARIANTS = (
    ("created", {}),
    ("by score", {"sort": "score"}),
    ("+ stage filter", {"stage": ["mql", "sal"]}),
    ("+ grade, by score", {"grade": ["A"], "sort": "score"}),
)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--leads", type=int, default=1_000_000)
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--runs", type=int, default=40, help="searches per row of the table")
    parser.add_argument("--keep", type=Path, help="SQLite file to fill once and reuse")
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args()
    console = Console()
    with database(args.backend) as url:
        if args.keep is not None and args.backend == "sqlite":
            url = f"sqlite:///{args.keep}"
        ctx = context(url)
        with ctx.read() as connection:
            have = connection.execute(select(func.count()).select_from(leads)).scalar_one()
        if have == 0:
            seconds = fill(ctx, args.leads, args.seed)
            console.print(f"filled {args.leads:,} leads in {seconds:.0f} s")
        elif have != args.leads:
            raise SystemExit(f"{url} holds {have:,} leads, not {args.leads:,}; give a fresh file")
        with ctx.read() as connection:
            if ctx.dialect == "sqlite":
                size = connection.execute(
                    text("SELECT page_count * page_size FROM pragma_page_count, pragma_page_size")
                ).scalar_one()
                console.print(f"database {size / 1e6:,.0f} MB")
        if ctx.dialect == "postgresql":
            with ctx.read() as connection:
                probe = (
                    select(func.count())
                    .select_from(leads)
                    .where(search_condition(ctx.dialect, ["ann"]))
                )
                plan = connection.execute(
                    text(
                        "EXPLAIN "
                        + str(probe.compile(ctx.engine, compile_kwargs={"literal_binds": True}))
                    )
                ).scalars()
                used = [line.strip() for line in plan if "ix_leads_search" in line]
                console.print(f"plan of a search: {used or 'does not use ix_leads_search'}")
        rng = random.Random(args.seed)
        table = Table(title=f"search_leads at {args.leads:,} leads ({args.backend}; {machine()})")
        for name in ("query", "variant", "p50 ms", "p99 ms", "max ms", "median total"):
            table.add_column(name, justify="right" if "ms" in name or "total" in name else "left")
        everything: list[float] = []
        for label, make in QUERIES:
            for variant, extra in VARIANTS:
                times, totals = [], []
                for _ in range(args.runs):
                    q = make(rng)
                    started = time.perf_counter()
                    found = search_leads(ctx, {"q": q, **extra}, actor=BENCH)
                    times.append((time.perf_counter() - started) * 1000)
                    totals.append(found.total)
                everything += times
                table.add_row(
                    label,
                    variant,
                    f"{percentile(times, 50):.1f}",
                    f"{percentile(times, 99):.1f}",
                    f"{max(times):.1f}",
                    f"{statistics.median(totals):,.0f}",
                )
        console.print(table)
        console.print(
            f"all {len(everything)} searches: p50 {percentile(everything, 50):.1f} ms,"
            f" p99 {percentile(everything, 99):.1f} ms"
        )
        ctx.engine.dispose()


if __name__ == "__main__":
    main()
