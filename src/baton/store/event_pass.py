"""SQLite's one pass over the activities of a re-score (``baton.services.scoring``),
in pieces that a process of its own can run: this module imports ``sqlite3`` and
numpy only, so a worker process started for a large re-score is ready in about 0.2 s
instead of the 1.3 s of importing the services.

The services decide what is read and when (the statement, the snapshot's checks); a
share read here is one read transaction on a connection of its own, what a reader
thread of the re-score does in process."""

from __future__ import annotations

import contextlib
import itertools
import os
import pickle
import queue
import sqlite3
import subprocess
import sys
import threading
import traceback
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

SECONDS_PER_DAY = 86_400.0
"""As :data:`baton.domain.scoring.SECONDS_PER_DAY` (not imported: see the module's
docstring); a test holds the two equal."""


def snapshot_events(
    driver: Any,
    sql: str,
    params: tuple[Any, ...],
    index: int,
    count: int,
    window: int,
    claims: str | None = None,
) -> tuple[int, int, np.ndarray]:
    """In one read transaction, the largest activity id, the activity revision, and the
    events (rows of three whole numbers: lead id, epoch milliseconds, rule bits) of
    every ``count``-th window of ``window`` ids from the ``index``-th, by the one
    pass's statement ``sql`` (its parameters, the window's bounds appended). With
    ``claims``, the windows this reader claims from that file instead
    (:func:`claimed_windows`), from the first on, until one begins past its largest id."""
    driver.execute("BEGIN")
    try:
        found = driver.execute("SELECT COALESCE(MAX(id), 0) FROM activities").fetchone()
        high = int(found[0])
        revised = driver.execute("SELECT revision FROM activity_revisions WHERE id = 1").fetchone()
        revision = int(revised[0]) if revised is not None else 0
        parts: list[np.ndarray] = []
        numbers = claimed_windows(claims) if claims else itertools.count(index, count)
        for number in numbers:
            low = number * window
            if low >= high:
                break
            text = driver.execute(sql, (*params, low, min(high, low + window))).fetchone()
            if text is not None and text[0]:
                parts.append(np.fromstring(text[0], dtype=np.int64, sep=","))
    finally:
        driver.execute("COMMIT")
    events = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
    return high, revision, events.reshape(-1, 3)


def claimed_windows(path: str) -> Iterator[int]:
    """The numbers of the windows a reader of the one pass reads, claimed one at a time
    from the file ``path`` that the readers share (a count under an exclusive ``flock``;
    an empty file is 0): a reader that gets on faster, or gets more of a core, reads
    more windows, so the readers end within about one window of one another, where
    every ``count``-th window each ended up to 1.7 s apart at 1,000,000 leads (the
    re-score's process waiting on the last one). Each window goes to exactly one
    reader, in ascending order for each."""
    import fcntl  # POSIX only: the caller passes no file where it is missing

    descriptor = os.open(path, os.O_RDWR)
    try:
        while True:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            try:
                found = os.pread(descriptor, 8, 0)
                number = int.from_bytes(found, "little") if len(found) == 8 else 0
                os.pwrite(descriptor, (number + 1).to_bytes(8, "little"), 0)
            finally:
                fcntl.flock(descriptor, fcntl.LOCK_UN)
            yield number
    finally:
        os.close(descriptor)


def stable_order(keys: np.ndarray) -> np.ndarray:
    """``np.argsort(keys, kind="stable")`` for whole numbers, sorting values instead
    where each key and its position fit one 63-bit number (about twice as fast: 0.6
    against 1.2 s of CPU for 8.3 million events)."""
    n = len(keys)
    shift = max(1, (n - 1).bit_length())
    if not n or int(keys.min()) < 0 or int(keys.max()) >= 1 << (62 - shift):
        return np.argsort(keys, kind="stable")
    packed = np.sort((keys << shift) | np.arange(n, dtype=np.int64))
    return packed & ((1 << shift) - 1)


def group_events(half_lives: Sequence[float | None], at: float, events: np.ndarray) -> np.ndarray:
    """The events of :func:`snapshot_events` grouped for rules of these half-lives in
    days (the i-th bit for the i-th rule): per lead with an event, ascending, its id,
    then per rule the count, the latest moment (epoch seconds, 0 without events) and
    ``sum(0.5 ** ((at - t) / half_life))`` (the count without a half-life), each lead's
    events summed in the order they were read."""
    width = 1 + 3 * len(half_lives)
    if not len(events):
        return np.zeros((0, width))
    order = stable_order(events[:, 0])
    lead = events[order, 0]
    seconds = events[order, 1] / 1000.0
    bits = events[order, 2]
    del order
    first = np.concatenate(([True], lead[1:] != lead[:-1]))
    group = np.cumsum(first) - 1
    sums = np.zeros((int(group[-1]) + 1, width))
    sums[:, 0] = lead[first]
    for j, half_life in enumerate(half_lives):
        # The rule's own events only (still by lead), each of its leads' run reduced
        # at once; the leads it has no event for keep zeros.
        rows = np.flatnonzero((bits >> j) & 1)
        if not len(rows):
            continue
        mine = group[rows]
        begins = np.flatnonzero(np.concatenate(([True], mine[1:] != mine[:-1])))
        place = mine[begins]
        counted = np.diff(np.append(begins, len(rows))).astype(np.float64)
        moments = seconds[rows]
        sums[place, 1 + 3 * j] = counted
        sums[place, 2 + 3 * j] = np.maximum.reduceat(moments, begins)
        if half_life:
            half = half_life * SECONDS_PER_DAY
            with np.errstate(over="ignore"):
                weights = np.power(0.5, (at - moments) / half)
            sums[place, 3 + 3 * j] = np.add.reduceat(weights, begins)
        else:
            sums[place, 3 + 3 * j] = counted
    return sums


def merge_grouped(parts: Sequence[np.ndarray], width: int) -> np.ndarray:
    """Rows of :func:`group_events` (``width`` columns) for disjoint sets of events
    (each lead's events split between them), as the rows of all the events: counts and
    weighted sums added, the latest moment the latest of those with events (a moment
    may be negative, before 1970).

    It runs in the re-score's own process between the pass and the chunks, so its time
    is wall time: lead ids of up to twice the rows are placed through a table indexed
    by id instead of a sort and binary searches, the first part's rows are copied whole,
    and each further part's rows are gathered once and updated as one block (0.5–0.6 s
    of CPU against 1.4–1.7 s for two parts of 900,000 leads of 6 rules)."""
    parts = [part for part in parts if len(part)]
    if not parts:
        return np.zeros((0, width))
    if len(parts) == 1:
        return parts[0]
    keys = [part[:, 0].astype(np.int64) for part in parts]
    low = min(int(key.min()) for key in keys)
    high = max(int(key.max()) for key in keys)
    if low >= 0 and high <= 2 * sum(len(key) for key in keys):
        seen = np.zeros(high + 1, dtype=bool)
        for key in keys:
            seen[key] = True
        ids = np.flatnonzero(seen)
        place = np.cumsum(seen) - 1
        where = [place[key] for key in keys]
    else:
        ids = np.unique(np.concatenate(keys))
        where = [np.searchsorted(ids, key) for key in keys]
    merged = np.zeros((len(ids), width))
    merged[:, 0] = ids
    merged[where[0]] = parts[0]
    for part, rows in zip(parts[1:], where[1:], strict=True):
        block = merged[rows]
        for k in range(1, width, 3):
            count = part[:, k]
            later = (count > 0) & ((block[:, k] <= 0) | (part[:, k + 1] > block[:, k + 1]))
            block[later, k + 1] = part[later, k + 1]
            block[:, k] += count
            block[:, k + 2] += part[:, k + 2]
        merged[rows] = block
    return merged


def read_share(
    path: str,
    sql: str,
    params: tuple[Any, ...],
    index: int,
    count: int,
    window: int,
    half_lives: Sequence[float | None],
    at: float,
    mmap_bytes: int,
    claims: str | None = None,
) -> tuple[int, int, np.ndarray]:
    """A worker process's share of the one pass (:func:`snapshot_events` on a
    connection of its own to the file ``path``, read-only, its windows claimed from
    ``claims`` when given), grouped by lead (:func:`group_events`): the largest
    activity id and the revision it saw, and its rows. Grouping here spreads the
    grouping over the workers too (about 1.4 s of CPU for half the events of 1,000,000
    leads; what is handed back is about as large as the events would be: 150 MB against
    100 MB, 0.13 s to pickle)."""
    driver = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
    try:
        driver.execute("PRAGMA query_only=1")
        driver.execute(f"PRAGMA mmap_size={int(mmap_bytes)}")
        high, revision, events = snapshot_events(
            driver, sql, params, index, count, window, claims
        )
    finally:
        driver.close()
    return high, revision, group_events(half_lives, at, events)


_CHUNK_READERS: dict[str, sqlite3.Connection] = {}
"""A worker's connection per file for :func:`chunk_leads` (kept for the chunks after)."""


def chunk_leads(
    path: str,
    after: int,
    skip: int,
    size: int,
    sql: str,
    params: dict[str, Any],
    mmap_bytes: int,
    count: int = 1,
) -> list[tuple[tuple[int, ...], list[tuple[Any, ...]], int]]:
    """A re-score's chunks read ahead of their writes (``baton.services.scoring``): in
    one read transaction on a connection of its own to the file ``path``, read-only,
    for each of the ``count`` chunks of ``size`` unmerged leads that follow ``after``
    and ``skip`` chunks more (as the chunks' write transactions select them, one after
    the other), its ids, the rows of its read of its leads ``sql`` (named parameters:
    ``params``, and ``first`` and ``last`` its first and last ids) as columns, and the
    id it follows (``after``, or the last id of the chunk before it); only the chunks
    that have leads."""
    driver = _CHUNK_READERS.get(path)
    if driver is None:
        driver = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
        driver.execute("PRAGMA query_only=1")
        driver.execute(f"PRAGMA mmap_size={int(mmap_bytes)}")
        _CHUNK_READERS[path] = driver
    driver.execute("BEGIN")
    try:
        # From the last lead skipped on: the chunks' ids and the one they follow.
        wanted = size * count
        found = [
            row[0]
            for row in driver.execute(
                "SELECT id FROM leads WHERE id > ? AND merged_into_id IS NULL"
                " ORDER BY id LIMIT ? OFFSET ?",
                (after, wanted + 1, skip * size - 1) if skip else (after, wanted, 0),
            )
        ]
        follows, ids = (found[0], found[1:]) if skip and found else (after, found)
        made: list[tuple[tuple[int, ...], list[tuple[Any, ...]], int]] = []
        for begin in range(0, len(ids), size):
            chunk = tuple(ids[begin : begin + size])
            rows = driver.execute(sql, {**params, "first": chunk[0], "last": chunk[-1]}).fetchall()
            made.append((chunk, list(zip(*rows, strict=True)), follows))
            follows = chunk[-1]
    finally:
        driver.execute("COMMIT")
    return made


Columns = dict[str, np.ndarray]
"""Per engagement rule key, one value per lead."""

_MILLISECONDS = np.array(["." + (f"{r:03d}".rstrip("0") or "0") for r in range(1000)], dtype=object)
"""The text after the whole seconds of a moment's ``repr`` per millisecond 0–999
(``.0``, ``.5``, ``.25``, ``.125``)."""

_WHOLE_MILLISECONDS_BELOW = float(1 << 43)
"""Milliseconds (about year 2248) below which a moment's double is one millisecond
apart from the next many times over its precision (2^-19 s at most)."""


def moment_texts(moments: np.ndarray) -> tuple[list[Any], list[Any]] | None:
    """The ``repr`` of each of these moments (epoch seconds) as two columns, its whole
    seconds (an ``int`` for ``%d``) and the rest (a ``str`` for ``%s``), when every
    one is a whole millisecond from 0 to 2^43 (the state's moments on SQLite,
    ``baton.services.scoring._whole_milliseconds``); else ``None``.

    ``repr`` of a float looks for its shortest text (about 400 ns each, a third of the
    state texts' CPU); for such a moment that text is the millisecond's decimal, since
    no other decimal of at most three places is within the double's precision of it
    (below 2^43 ms, about 2^33.03 s, it is 2^-19 s at most), and ``%d%s`` of two
    columns costs a tenth."""
    if not len(moments):
        return [], []
    with np.errstate(over="ignore", invalid="ignore"):  # those are not whole milliseconds
        milliseconds = np.rint(moments * 1000.0)
        exact = (
            (milliseconds / 1000.0 == moments)
            & (milliseconds >= 0.0)
            & (milliseconds < _WHOLE_MILLISECONDS_BELOW)
            & ~np.signbit(moments)
        )
    if not bool(exact.all()):
        return None
    whole = milliseconds.astype(np.int64)
    return (whole // 1000).tolist(), _MILLISECONDS[whole % 1000].tolist()


def state_texts(
    n: int, keys: Sequence[str], values: Columns, as_of: Columns, counts: Columns
) -> list[str]:
    """Each of ``n`` leads' engagement state as the JSON ``json.dumps`` gives for it
    (rule keys in contract order, the rules it has events for only; floats as
    ``repr``), from its state's columns ``[value, as_of, count]`` per rule key.

    The leads are grouped by which rules they have events for, and each group is
    formatted with one template (``%r`` is ``repr``), a C-level call per lead; a
    rule's moments as :func:`moment_texts` gives them where it can."""
    if not n:
        return []
    if len(keys) > 62:
        return [state_text_of(keys, values, as_of, counts, row) for row in range(n)]
    codes = np.zeros(n, dtype=np.int64)
    for bit, key in enumerate(keys):
        codes |= (counts[key] > 0).astype(np.int64) << bit
    order = np.argsort(codes, kind="stable")
    found, starts = np.unique(codes[order], return_index=True)
    texts = [""] * n
    for code, begin, end in zip(
        found.tolist(), starts.tolist(), [*starts.tolist()[1:], n], strict=True
    ):
        rows = order[begin:end]
        members = [key for bit, key in enumerate(keys) if code >> bit & 1]
        if not members:
            strings = ["{}"] * len(rows)
        else:
            parts: list[str] = []
            columns: list[list[Any]] = []
            for key in members:
                moments = moment_texts(as_of[key][rows])
                if moments is None:
                    parts.append(f'"{key}": [%r, %r, %r]')
                    columns += [values[key][rows].tolist(), as_of[key][rows].tolist()]
                else:
                    parts.append(f'"{key}": [%r, %d%s, %r]')
                    columns += [values[key][rows].tolist(), *moments]
                columns.append(counts[key][rows].tolist())
            template = "{" + ", ".join(parts) + "}"
            strings = [template % each for each in zip(*columns, strict=True)]
        for row, text in zip(rows.tolist(), strings, strict=True):
            texts[row] = text
    return texts


def state_text_of(
    keys: Sequence[str], values: Columns, as_of: Columns, counts: Columns, row: int
) -> str:
    """One lead's state text, as :func:`state_texts` gives it."""
    return (
        "{"
        + ", ".join(
            f'"{key}": [{float(values[key][row])!r},'
            f" {float(as_of[key][row])!r}, {float(counts[key][row])!r}]"
            for key in keys
            if counts[key][row] > 0
        )
        + "}"
    )


def state_text_lines(
    n: int, keys: Sequence[str], values: Columns, as_of: Columns, counts: Columns
) -> str:
    """:func:`state_texts` as one text, a line each (a JSON text has no line break):
    one string to hand back from a worker instead of one per lead."""
    return "\n".join(state_texts(n, keys, values, as_of, counts))


WORKER_ALLOCATOR = {
    "MALLOC_MMAP_THRESHOLD_": str(1 << 32),
    "MALLOC_TRIM_THRESHOLD_": str(1 << 34),
    "MALLOC_TOP_PAD_": str(1 << 28),
}
"""glibc's allocator settings for a worker process (the caller's own, when set, win;
other allocators ignore them): its large arrays (the events' columns, 33 MB each for
4 million events, and their temporaries) are taken from and given back to its heap,
kept at its peak until the worker ends, instead of each being mapped, zeroed page by
page and unmapped. A worker's share of the one pass of the 1,000,000-lead fill took
0.4–0.6 s less CPU (5.5–5.9 against 5.8–6.4 s, most of it the kernel's), at the same
peak memory (1.09 GB, with the file's mapped pages)."""


class WorkerFailed(RuntimeError):
    """A worker process answered with an error (its traceback is the message) or
    exited without answering."""


class Worker:
    """A process of its own running this module (``python -m baton.store.event_pass``):
    it imports ``sqlite3`` and numpy only, and none of the caller's modules (the
    ``spawn`` start method of :mod:`multiprocessing` runs the caller's main script
    again in each child: 1.3 s of imports for a bench, and a script without a main
    guard would start over). It answers :meth:`ask` in order, one request at a time,
    and ends when its input is closed (:meth:`close`), also when the caller dies."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(  # noqa: S603 - this interpreter, this module
            [sys.executable, "-m", __name__],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env={**WORKER_ALLOCATOR, **os.environ},
        )
        self.asked = 0
        self.read = 0
        self.open: list[int] = []
        self.kept: dict[int, tuple[str, Any]] = {}
        self.dropped: set[int] = set()

    def ask(self, name: str, *args: Any) -> int:
        """Send a request: the function of :data:`FUNCTIONS` called ``name``, with
        ``args``; its ticket (for :meth:`answer` and :meth:`forget`)."""
        stream = self.process.stdin
        assert stream is not None
        pickle.dump((name, args), stream, protocol=pickle.HIGHEST_PROTOCOL)
        stream.flush()
        ticket = self.asked
        self.asked += 1
        self.open.append(ticket)
        return ticket

    def answer(self, ticket: int | None = None) -> Any:
        """The answer to the request ``ticket``, by default the oldest one not taken
        yet (:class:`WorkerFailed` when the worker failed or exited). The answers come
        in the order asked: those read on the way are kept for their own callers (the
        re-score's chunk reads and its state texts share the workers)."""
        if ticket is None:
            ticket = self.open[0]
        stream = self.process.stdout
        assert stream is not None
        while ticket not in self.kept:
            try:
                found = pickle.load(stream)  # noqa: S301 - our own child's answer
            except EOFError:
                raise WorkerFailed(
                    f"worker process {self.process.pid} exited with {self.process.wait()}"
                ) from None
            if self.read in self.dropped:
                self.dropped.discard(self.read)
            else:
                self.kept[self.read] = found
            self.read += 1
        self.open.remove(ticket)
        status, value = self.kept.pop(ticket)
        if status != "ok":
            raise WorkerFailed(value)
        return value

    def forget(self, ticket: int) -> None:
        """Drop the answer to ``ticket``, read or not (a chunk read that came too late)."""
        if ticket in self.open:
            self.open.remove(ticket)
            if self.kept.pop(ticket, None) is None:
                self.dropped.add(ticket)

    def close(self, *, kill: bool = False) -> None:
        """End the process (at once with ``kill``, else once its requests are
        answered) and wait for it."""
        if kill:
            self.process.kill()
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        self.process.wait()


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "read_share": read_share,
    "state_text_lines": state_text_lines,
    "chunk_leads": chunk_leads,
}
"""What a :class:`Worker` may be asked to run."""


def serve() -> None:
    """A worker's loop: requests from standard input, answers to standard output
    (which is then standard error's, so that nothing printed mixes with the
    answers)."""
    source = sys.stdin.buffer
    sink = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    requests: queue.Queue[tuple[str, Any] | None] = queue.Queue()

    def take() -> None:
        # Requests are read as they come, also while an answer is being written: the
        # caller may send a large request (a block of state columns) while this
        # process writes a large answer, and each would otherwise wait for the other.
        try:
            while True:
                requests.put(pickle.load(source))  # noqa: S301 - our own parent's request
        except Exception:  # the input ended (a request cut short: the caller died)
            requests.put(None)

    threading.Thread(target=take, daemon=True).start()
    while True:
        request = requests.get()
        if request is None:
            return
        name, args = request
        try:
            answer: tuple[str, Any] = ("ok", FUNCTIONS[name](*args))
        except Exception:
            answer = ("error", traceback.format_exc())
        try:
            pickle.dump(answer, sink, protocol=pickle.HIGHEST_PROTOCOL)
            sink.flush()
        except BrokenPipeError:
            return


if __name__ == "__main__":
    serve()
