"""One heavy run at a time per process: a backtest, a training run, a contract
suggestion or a capacity plan each take seconds to minutes of CPU on the request's
thread. Without a bound, a handful of repeated requests (one impatient user pressing
reload on the backtest page) would take every worker thread and starve the rest of
the API. While one runs, the next is answered at once with 429 and ``Retry-After``
(problem+json on the API, the error page on the web) instead of queueing.

The CLI is not bound: it runs in its own process."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from baton.domain.errors import TooManyRequests

MAX_HEAVY_RUNS = 1
"""Heavy runs at once in one process (the API's thread pool is shared by every route)."""

RETRY_AFTER_SECONDS = 30
"""What the 429 tells the caller to wait before trying again."""

_SLOTS = threading.BoundedSemaphore(MAX_HEAVY_RUNS)
_RUNNING: list[str] = []
_LOCK = threading.Lock()


@contextmanager
def heavy_run(what: str) -> Iterator[None]:
    """Run the ``with`` body as this process's heavy run, or raise
    :class:`TooManyRequests` at once when another one is running."""
    if not _SLOTS.acquire(blocking=False):
        with _LOCK:
            running = ", ".join(_RUNNING) or "another heavy run"
        raise TooManyRequests(
            f"{running} is running on this server; try the {what} again in "
            f"{RETRY_AFTER_SECONDS} seconds (or run it with the baton command)",
            RETRY_AFTER_SECONDS,
        )
    with _LOCK:
        _RUNNING.append(f"a {what}")
    try:
        yield
    finally:
        with _LOCK:
            _RUNNING.remove(f"a {what}")
        _SLOTS.release()
