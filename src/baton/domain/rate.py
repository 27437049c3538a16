"""A moving-window rate limit kept in memory: at most ``rate`` hits per key in any
window of ``window`` seconds.

It replaces a library limiter whose in-memory storage started a timer thread every
10 ms under steady load to expire old hits (about one request in four paid for a
thread start on the event loop). Here old hits are dropped on the next hit of the same
key, so nothing runs in between. Times are given by the caller (a monotonic clock in
the API, any numbers in tests), which makes the rule a pure function of the hits."""

from __future__ import annotations

import threading
from collections import deque

SWEEP_EVERY = 1000
"""Hits between two sweeps of the keys nobody hit for a whole window."""


class MovingWindow:
    """Hits per key within the last ``window`` seconds; safe to share between threads.

    Memory: at most ``rate`` timestamps for each key hit in the last window, plus keys
    idle since then until the next sweep (every :data:`SWEEP_EVERY` hits), which
    forgets them (a revoked key, an old rate)."""

    def __init__(self, window: float = 60.0) -> None:
        self.window = window
        self._hits: dict[object, deque[float]] = {}
        self._lock = threading.Lock()
        self._since_sweep = 0

    def hit(self, key: object, rate: int, now: float) -> float | None:
        """Count a hit of ``key`` at ``now`` if fewer than ``rate`` hits fell in the
        window ending at ``now``, and return None; else count nothing and return the
        seconds until the oldest of them leaves the window (> 0)."""
        cutoff = now - self.window
        with self._lock:
            self._since_sweep += 1
            if self._since_sweep >= SWEEP_EVERY:
                self._sweep(cutoff)
            hits = self._hits.get(key)
            if hits is None:
                hits = self._hits[key] = deque()
            while hits and hits[0] <= cutoff:
                hits.popleft()
            if len(hits) >= rate:
                return max(hits[0] - cutoff, 1e-9)
            hits.append(now)
            return None

    def _sweep(self, cutoff: float) -> None:
        self._since_sweep = 0
        for key in [k for k, hits in self._hits.items() if not hits or hits[-1] <= cutoff]:
            del self._hits[key]

    def __len__(self) -> int:
        """Keys remembered now (for tests)."""
        return len(self._hits)
