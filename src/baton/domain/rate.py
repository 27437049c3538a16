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


class MovingWindow:
    """Hits per key within the last ``window`` seconds; safe to share between threads.

    Memory is at most ``rate`` timestamps per key that was hit in the last window."""

    def __init__(self, window: float = 60.0) -> None:
        self.window = window
        self._hits: dict[object, deque[float]] = {}
        self._lock = threading.Lock()

    def hit(self, key: object, rate: int, now: float) -> float | None:
        """Count a hit of ``key`` at ``now`` if fewer than ``rate`` hits fell in the
        window ending at ``now``, and return None; else count nothing and return the
        seconds until the oldest of them leaves the window (> 0)."""
        cutoff = now - self.window
        with self._lock:
            hits = self._hits.get(key)
            if hits is None:
                hits = self._hits[key] = deque()
            while hits and hits[0] <= cutoff:
                hits.popleft()
            if len(hits) >= rate:
                return max(hits[0] - cutoff, 1e-9)
            hits.append(now)
            return None
