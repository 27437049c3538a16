"""What the worker's routine work leaves in its log: one line a minute, not one a pass.

Under steady captures a lane has work on nearly every pass, and one INFO line per busy
pass (``duplicates: duplicates checked 1``) filled a worker's log with thousands of
lines a day that said nothing an operator acts on (a newcomer's trial on real data).
So :class:`PassLog`, the worker's ``on_pass``, writes each busy pass at DEBUG
(``BATON_LOG_LEVEL=debug`` shows them as before) and sums the passes per lane into one
INFO line every :data:`SUMMARY_EVERY_SECONDS` that had work (``in the last 60 s:
timers: steps 3, assigned 2; duplicates: duplicates checked 41``); a minute without
work writes nothing.

What is not routine keeps its own line at once, where it happens: a failed pass
(:class:`~baton.services.worker.Lane`: ERROR, or WARNING for the database, and a
WARNING when the lane works again), a delivery that failed or was given up
(:mod:`baton.services.delivery`), a queue behind and caught up
(:class:`~baton.services.worker.Heartbeat`), the worker's start and stop.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from baton.services.worker import TickReport

SUMMARY_EVERY_SECONDS = 60.0
"""How often the worker sums up its routine work in one INFO line (when it had any)."""

COUNTS = (
    ("steps", "steps"),
    ("assigned", "assigned"),
    ("sent", "sent"),
    ("failed", "failed"),
    ("fetched", "fetched"),
    ("nurtured", "nurtured"),
    ("checked", "duplicates checked"),
    ("retrained", "models retrained"),
    ("analyzed", "ANALYZE runs"),
)
"""The counts of a pass (:class:`~baton.services.worker.TickReport` fields) and their
words in a log line."""


def pass_summary(report: TickReport) -> str:
    """What a busy pass did, in one line (``sent 12, failed 1``)."""
    return counts_text({key: getattr(report, key) for key, _ in COUNTS})


def counts_text(counts: dict[str, int]) -> str:
    """``sent 12, failed 1``: the non-zero ``counts``, in :data:`COUNTS` order."""
    return ", ".join(f"{words} {counts[key]:,}" for key, words in COUNTS if counts.get(key))


class PassLog:
    """The worker's ``on_pass`` (called by each lane's thread after a busy pass): the
    pass at DEBUG, its counts added to its lane's; :meth:`flush_due` (from
    :meth:`run`'s thread, and after a pass) writes the sums at INFO once
    :data:`SUMMARY_EVERY_SECONDS` have passed since the last summary."""

    def __init__(
        self,
        log: logging.Logger,
        *,
        every: float = SUMMARY_EVERY_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.log = log
        self.every = every
        self.clock = clock
        self.lock = threading.RLock()
        """Reentrant: a SIGTERM's handler may flush on the thread that holds it (a
        nested flush then writes nothing)."""
        self.lanes: dict[str, dict[str, int]] = {}
        self.since = clock()

    def __call__(self, lane: str, report: TickReport) -> None:
        self.log.debug("%s: %s", lane, pass_summary(report))
        with self.lock:
            counts = self.lanes.setdefault(lane, {})
            for key, _ in COUNTS:
                counts[key] = counts.get(key, 0) + int(getattr(report, key))
        self.flush_due()

    def flush_due(self) -> None:
        """The summary, when :attr:`every` seconds have passed since the last one
        (checked under the lock: two lanes at the minute's end write one line)."""
        self.flush(due_only=True)

    def flush(self, *, due_only: bool = False) -> None:
        """The summary of the passes since the last one, now (nothing when none was
        busy): at the worker's stop, and every :attr:`every` seconds."""
        with self.lock:  # logged under it too: the last summary comes before "stopped"
            now = self.clock()
            if due_only and now - self.since < self.every:
                return
            lanes, seconds = self.lanes, now - self.since
            self.lanes, self.since = {}, now
            parts = [f"{lane}: {counts_text(c)}" for lane, c in lanes.items() if any(c.values())]
            if parts:
                self.log.info("in the last %.0f s: %s", seconds, "; ".join(parts))

    def run(self, stop: threading.Event) -> None:
        """Summaries every :attr:`every` seconds until ``stop`` is set, then the last
        one (a thread beside the worker's lanes, so a quiet minute after busy ones
        still gets its line)."""
        while not stop.wait(min(self.every, 5.0)):
            self.flush_due()
        self.flush()


def start_pass_log(log: logging.Logger, stop: threading.Event) -> PassLog:
    """A :class:`PassLog` with its summary thread started (a daemon: it ends with the
    process when ``stop`` is never set, as in ``baton serve --with-worker``, where the
    last summary is written as the process exits, so a SIGTERM loses no counts)."""
    passes = PassLog(log)
    threading.Thread(target=passes.run, args=(stop,), name="baton-worker-log", daemon=True).start()
    atexit.register(passes.flush)
    return passes
