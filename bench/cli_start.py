"""How fast the ``baton`` command starts: wall time of ``baton --version`` and
``baton --help`` in fresh processes, and what ``import baton.cli`` loads.

Each command runs N times in a subprocess (the installed ``baton`` script beside this
Python, else ``python -m baton.cli``), after one unmeasured warm-up run that fills the
disk cache; p50 and p95 of the wall times are printed against the 0.5 s target. The
command line imports the database stack, FastAPI and the services only inside the
command that needs them; the last line checks that none of them is loaded by
``import baton.cli``.

    python bench/cli_start.py            # 20 runs of each
    python bench/cli_start.py --runs 50
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from _common import machine

TARGET = 0.5
HEAVY = ("sqlalchemy", "fastapi", "pydantic", "pydantic_settings", "baton.services", "uvicorn")
console = Console()


def baton_command() -> list[str]:
    script = Path(sys.executable).with_name("baton")
    return [str(script)] if script.exists() else [sys.executable, "-m", "baton.cli"]


def wall_times(argv: list[str], runs: int) -> list[float]:
    env = {**os.environ, "COLUMNS": "80"}
    subprocess.run(argv, env=env, capture_output=True, check=True)  # warm-up
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        subprocess.run(argv, env=env, capture_output=True, check=True)
        times.append(time.perf_counter() - began)
    return sorted(times)


def percentile(ordered: list[float], share: float) -> float:
    return ordered[max(0, round(share * len(ordered)) - 1)]


def heavy_modules_loaded() -> list[str]:
    """The heavy packages ``import baton.cli`` loads (none, when imports stay lazy)."""
    probe = f"import sys, baton.cli; print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    return out.split()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="Runs of each command.")
    args = parser.parse_args()
    baton = baton_command()
    table = Table(title=f"CLI start, {args.runs} runs each ({machine()})")
    for column in ("command", "p50 s", "p95 s", "max s", "target"):
        table.add_column(column, justify="left" if column == "command" else "right")
    worst = 0.0
    for flag in ("--version", "--help"):
        ordered = wall_times([*baton, flag], args.runs)
        p95 = percentile(ordered, 0.95)
        worst = max(worst, p95)
        verdict = "[green]met[/]" if p95 < TARGET else "[red]missed[/]"
        table.add_row(
            f"baton {flag}",
            f"{percentile(ordered, 0.5):.3f}",
            f"{p95:.3f}",
            f"{ordered[-1]:.3f}",
            f"< {TARGET} s: {verdict}",
        )
    console.print(table)
    loaded = heavy_modules_loaded()
    console.print(
        "import baton.cli loads "
        + (f"[red]{', '.join(loaded)}[/]" if loaded else "none of " + ", ".join(HEAVY))
    )
    if os.environ.get("BATON_BENCH_STRICT") and (worst >= TARGET or loaded):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
