"""Lead import throughput through the real command line: ``baton import leads FILE``.

Writes a CSV of N realistic leads (names, companies, phones, countries, campaigns; a few
bad rows on purpose), runs ``baton import leads`` as a separate process on a fresh
SQLite database, and prints rows/s (wall clock of the whole command, start-up
included).

    python bench/import.py            # 100,000 rows
    python bench/import.py --rows 20000
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from _common import machine

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="baton-bench-") as tmp:
        csv_path = Path(tmp) / "leads.csv"
        bad = write_csv(csv_path, args.rows)
        env = {**os.environ, "BATON_DATABASE_URL": f"sqlite:///{Path(tmp) / 'bench.db'}"}
        baton = [sys.executable, "-m", "baton.cli"]
        subprocess.run([*baton, "init"], env=env, check=True, capture_output=True)
        began = time.perf_counter()
        done = subprocess.run(
            [*baton, "import", "leads", str(csv_path)],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        elapsed = time.perf_counter() - began
        if done.returncode not in (0, 1) or f"{bad} row(s) rejected" not in done.stderr:
            sys.exit(f"import failed:\n{done.stdout}\n{done.stderr}")
    table = Table(title=f"baton import leads ({machine()})")
    for column in ("rows", "rejected", "seconds", "rows/s"):
        table.add_column(column, justify="right")
    table.add_row(f"{args.rows:,}", f"{bad:,}", f"{elapsed:.1f}", f"{args.rows / elapsed:,.0f}")
    Console().print(table)


if __name__ == "__main__":
    main()
