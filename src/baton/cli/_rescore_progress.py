"""The progress of a re-score of every lead (``baton contract activate`` and ``baton
contract rescore``), on a terminal or in a log.

On a terminal it is Rich's bar. Anywhere else (a deploy log, CI, ``| tee``) Rich hides
its bar, and an activation of 20 s to several minutes printed nothing until it ended:
it looked hung. There a plain line is printed instead, each time another
:data:`STEP_PERCENT` % of the leads is done and at least every :data:`EVERY_SECONDS`
seconds while chunks commit (``re-scored 300,000 of 1,000,000 leads (30 %), 412 MQLs
so far``), the command's own summary following at the end.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from baton.cli._output import on_terminal, progress, say

if TYPE_CHECKING:
    from baton.services.scoring import ActivationReport

STEP_PERCENT = 10
"""A plain line each time this much more of the leads is done."""
EVERY_SECONDS = 15.0
"""And at least this often (a line per chunk at most) when the steps come slower."""


def progress_line(done: int, total: int, mqls: int) -> str:
    """``re-scored 300,000 of 1,000,000 leads (30 %), 412 MQLs so far``."""
    percent = 100 * done // total if total else 100
    return f"re-scored {done:,} of {total:,} leads ({percent} %), {mqls:,} MQLs so far"


@contextmanager
def rescore_progress(
    description: str,
) -> Iterator[Callable[[ActivationReport, int], None]]:
    """A ``watch(report, total)`` for :func:`baton.services.contracts.activate_contract`
    and :func:`~baton.services.contracts.rescore_active`: Rich's bar on a terminal,
    plain lines elsewhere (see the module docstring)."""
    if on_terminal():
        with progress() as bar:
            task = bar.add_task(description, total=None)

            def advance(report: ActivationReport, total: int) -> None:
                bar.update(task, completed=report.leads_scored, total=total)

            yield advance
        return
    say(f"{description}: a line every {STEP_PERCENT} % of the leads or {EVERY_SECONDS:g} s")
    last_step = 0
    last_at = time.monotonic()

    def line(report: ActivationReport, total: int) -> None:
        nonlocal last_step, last_at
        done = report.leads_scored
        step = (100 * done // total if total else 100) // STEP_PERCENT
        now = time.monotonic()
        if step > last_step or now - last_at >= EVERY_SECONDS:
            last_step, last_at = step, now
            say(progress_line(done, total, report.became_mql))

    yield line
