"""Business-time arithmetic: when a rep works, and how much working time lies between
two moments.

Routing and SLA timers must not count nights, weekends, lunch breaks or a rep's holiday
as time a lead waited, and a rep in Tokyo works at other UTC hours than one in Berlin.
This module answers those questions from a :class:`Schedule` (an IANA time zone, weekly
local :class:`WorkingHours` and one-off :class:`Absence` periods) without I/O and
without reading the clock.

What a caller may rely on:

* Every datetime taken is timezone-aware (naive input raises ``ValueError``: a naive
  datetime has no defined moment, and guessing is how SLAs silently drift by hours);
  every datetime returned is aware UTC.
* Working hours are *wall-clock* times: each local date's intervals are converted to
  UTC on their own, so ``09:00-17:00`` is 8 real hours on every day, including the days
  the clocks change, while an interval spanning the switch is as long as it really is
  (``00:00-06:00`` in Europe/Berlin is 5 hours on the last Sunday of March and 7 on
  the last Sunday of October).
* A local time that does not exist (the spring gap) is read with ``fold=0``, as
  :mod:`zoneinfo` does by default, i.e. with the offset in force before the change
  (``02:30`` in Berlin on the spring day is 01:30 UTC). A repeated local time (the
  autumn overlap) is its first occurrence. An interval that comes out empty or
  negative this way (``02:30-03:00`` on the spring day) is no working time at all, and
  intervals that come out overlapping are counted once.
* Intervals are half-open: a rep working ``09:00-17:00`` is working at 09:00:00 and no
  longer at 17:00:00; an :class:`Absence` likewise excludes its ``end``.
* The functions are exact to the microsecond (``datetime`` resolution); minutes are
  floats only at the edges (:func:`add_business_minutes`' argument,
  :func:`business_minutes_between`'s result).

Cost: :func:`is_working` looks at the intervals of three local days (the instant's and
its neighbours, which is what makes it exact around time-zone changes); the walking
functions go interval by interval, never minute by minute. Time zones and each local
day's UTC intervals are cached, so the hundreds of calls of one routing decision mostly
hit the cache.
"""

from __future__ import annotations

import math
import re
from bisect import bisect_right
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import cache, lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from baton.domain.clock import ensure_utc

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
"""Day names accepted by :meth:`WorkingHours.parse`, in ``date.weekday()`` order."""

Interval = tuple[datetime, datetime]
"""A half-open ``[start, end)`` span of aware UTC datetimes."""

LocalSpan = tuple[time, time]
"""A half-open ``[start, end)`` span of local wall-clock times; ``time.max`` as the end
means 24:00 (the next midnight)."""

_ONE_DAY = timedelta(days=1)
_CHUNK = timedelta(days=7)
"""How far the walking functions look at a time: long enough that a week of intervals
costs one sort, short enough that the usual answer (within a day or two) is cheap."""

_SPAN = re.compile(
    r"^\s*(?P<sh>\d{1,2}):(?P<sm>\d{2})(?::(?P<ss>\d{2}))?"
    r"\s*-\s*(?P<eh>\d{1,2}):(?P<em>\d{2})(?::(?P<es>\d{2}))?\s*$"
)


# --------------------------------------------------------------------------- weekly hours


@dataclass(frozen=True)
class WorkingHours:
    """Local working intervals per weekday (0=Monday .. 6=Sunday).

    ``days`` has exactly 7 entries; each is a tuple of ``(start, end)`` naive local
    times, sorted, with ``start < end`` and no two intervals overlapping (touching is
    allowed: ``09:00-12:00`` and ``12:00-13:00`` simply work through noon). ``end`` may
    be ``time.max``, which means 24:00, so a day can be worked to its very end. Times
    have whole seconds (``time.max`` as an end excepted). These invariants are checked
    on construction, so any instance a caller holds is valid.
    """

    days: tuple[tuple[LocalSpan, ...], ...]

    def __post_init__(self) -> None:
        days = tuple(tuple((s, e) for s, e in day) for day in self.days)
        if len(days) != len(WEEKDAYS):
            raise ValueError(f"working hours need 7 days (Monday first), got {len(days)}")
        for name, spans in zip(WEEKDAYS, days, strict=True):
            previous: LocalSpan | None = None
            for start, end in spans:
                _check_local_time(name, start, is_end=False)
                _check_local_time(name, end, is_end=True)
                if start >= end:
                    raise ValueError(
                        f"{name}: {_span_text((start, end))} must start before it ends"
                    )
                if previous is not None:
                    if start < previous[0]:
                        raise ValueError(f"{name}: intervals must be sorted by start time")
                    if start < previous[1]:
                        raise ValueError(
                            f"{name}: {_span_text(previous)} overlaps {_span_text((start, end))}"
                        )
                previous = (start, end)
        object.__setattr__(self, "days", days)

    @classmethod
    def parse(cls, spec: Mapping[str, Sequence[str]]) -> WorkingHours:
        """Read ``{"mon": ["09:00-12:00", "13:00-17:30"], "sat": []}``.

        Day names are those of :data:`WEEKDAYS` (case and surrounding spaces ignored); a
        day that is missing or has an empty list is not worked. Each interval is
        ``HH:MM-HH:MM`` (seconds ``HH:MM:SS`` allowed); ``24:00`` is allowed as an end
        and means midnight at the end of the day. Intervals may be listed in any order.
        Raises ``ValueError`` naming the day and the interval for an unknown or repeated
        day name, a malformed interval, one that does not start before it ends, or two
        that overlap.
        """
        days: list[list[LocalSpan]] = [[] for _ in WEEKDAYS]
        seen: set[str] = set()
        for raw_name, texts in spec.items():
            if not isinstance(raw_name, str):
                raise ValueError(f"day names must be strings, got {raw_name!r}")
            name = raw_name.strip().lower()
            if name not in WEEKDAYS:
                raise ValueError(f"unknown day {raw_name!r}: expected one of {', '.join(WEEKDAYS)}")
            if name in seen:
                raise ValueError(f"day {name!r} is given more than once")
            seen.add(name)
            if isinstance(texts, str):
                raise ValueError(
                    f"{name}: expected a list of 'HH:MM-HH:MM' intervals, got the "
                    f"string {texts!r} (write [{texts!r}])"
                )
            spans = days[WEEKDAYS.index(name)]
            for text in texts:
                spans.append(_parse_span(name, text))
            spans.sort()
        return cls(tuple(tuple(spans) for spans in days))

    @classmethod
    def weekdays(cls, start: str = "09:00", end: str = "17:00") -> WorkingHours:
        """``start-end`` Monday to Friday, weekends off (times as in :meth:`parse`)."""
        return cls.parse({name: [f"{start}-{end}"] for name in WEEKDAYS[:5]})

    @classmethod
    def always(cls) -> WorkingHours:
        """Around the clock, every day (a queue, a bot, an on-call rotation)."""
        return cls.parse({name: ["00:00-24:00"] for name in WEEKDAYS})

    def to_spec(self) -> dict[str, list[str]]:
        """The mapping :meth:`parse` reads, with all 7 days (``[]`` for days off).

        ``WorkingHours.parse(hours.to_spec()) == hours`` always holds; times print as
        ``HH:MM`` (``HH:MM:SS`` when they have seconds) and ``time.max`` as ``24:00``.
        """
        return {
            name: [_span_text(span) for span in spans]
            for name, spans in zip(WEEKDAYS, self.days, strict=True)
        }


def _check_local_time(day: str, value: object, *, is_end: bool) -> None:
    if not isinstance(value, time):
        raise ValueError(f"{day}: working hours hold datetime.time values, got {value!r}")
    if value.tzinfo is not None:
        raise ValueError(f"{day}: working hours are local times, without a tzinfo")
    if value == time.max:
        if not is_end:
            raise ValueError(f"{day}: 24:00 can only end an interval")
    elif value.microsecond:
        raise ValueError(f"{day}: working hours have whole seconds, got {value.isoformat()}")


def _parse_span(day: str, text: object) -> LocalSpan:
    if not isinstance(text, str):
        raise ValueError(f"{day}: expected an 'HH:MM-HH:MM' string, got {text!r}")
    match = _SPAN.match(text)
    if match is None:
        raise ValueError(f"{day}: {text!r} is not an 'HH:MM-HH:MM' interval")
    start = _parse_clock(day, text, match["sh"], match["sm"], match["ss"], is_end=False)
    end = _parse_clock(day, text, match["eh"], match["em"], match["es"], is_end=True)
    if start >= end:
        raise ValueError(f"{day}: {text!r} must start before it ends")
    return start, end


def _parse_clock(
    day: str, text: str, hours: str, minutes: str, seconds: str | None, *, is_end: bool
) -> time:
    h, m, s = int(hours), int(minutes), int(seconds or "0")
    if h == 24 and m == 0 and s == 0:
        if not is_end:
            raise ValueError(f"{day}: {text!r}: 24:00 can only end an interval")
        return time.max
    if h > 23 or m > 59 or s > 59:
        raise ValueError(f"{day}: {text!r} has an impossible time of day")
    return time(h, m, s)


def _clock_text(value: time) -> str:
    if value == time.max:
        return "24:00"
    text = f"{value.hour:02d}:{value.minute:02d}"
    return f"{text}:{value.second:02d}" if value.second else text


def _span_text(span: LocalSpan) -> str:
    return f"{_clock_text(span[0])}-{_clock_text(span[1])}"


# ------------------------------------------------------------------ absences and schedule


@dataclass(frozen=True)
class Absence:
    """A period a rep does not work whatever the weekly hours say (holiday, sick day).

    ``start`` and ``end`` are aware datetimes, stored as UTC; ``end`` is exclusive and
    must be after ``start``. Naive datetimes raise ``ValueError``.
    """

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        start = _aware_utc(self.start, "absence start")
        end = _aware_utc(self.end, "absence end")
        if start >= end:
            raise ValueError(f"an absence must start before it ends ({start} >= {end})")
        object.__setattr__(self, "start", start)
        object.__setattr__(self, "end", end)


@dataclass(frozen=True)
class Schedule:
    """When one rep (or team) works: IANA ``timezone``, weekly ``hours``, ``absences``.

    The time zone is checked on construction (``ValueError`` for an unknown name, and
    for ``localtime``, which is whatever the host is set to). Absences may overlap and
    be in any order. Instances are immutable and hashable.
    """

    timezone: str
    hours: WorkingHours
    absences: tuple[Absence, ...] = ()
    _off_starts: tuple[datetime, ...] = field(init=False, repr=False, compare=False)
    _off_ends: tuple[datetime, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.timezone, str):
            raise TypeError(f"timezone must be an IANA name, got {self.timezone!r}")
        _zone(self.timezone)
        if not isinstance(self.hours, WorkingHours):
            raise TypeError(f"hours must be WorkingHours, got {self.hours!r}")
        absences = tuple(self.absences)
        object.__setattr__(self, "absences", absences)
        # Merged and sorted once, so that "is this instant absent?" is a bisection.
        merged = _merge(sorted((a.start, a.end) for a in absences))
        object.__setattr__(self, "_off_starts", tuple(s for s, _ in merged))
        object.__setattr__(self, "_off_ends", tuple(e for _, e in merged))

    def _is_absent(self, at: datetime) -> bool:
        index = bisect_right(self._off_starts, at) - 1
        return index >= 0 and at < self._off_ends[index]

    def _without_absences(self, spans: list[Interval]) -> list[Interval]:
        """``spans`` (sorted, disjoint) minus the absences."""
        if not self._off_starts:
            return spans
        starts, ends = self._off_starts, self._off_ends
        kept: list[Interval] = []
        for start, end in spans:
            index = bisect_right(ends, start)  # first absence ending after ``start``
            while index < len(starts) and starts[index] < end:
                if starts[index] > start:
                    kept.append((start, starts[index]))
                start = max(start, ends[index])
                index += 1
            if start < end:
                kept.append((start, end))
        return kept


@cache
def _zone(name: str) -> ZoneInfo:
    if name == "localtime":
        raise ValueError("time zone 'localtime' depends on the host: use an IANA name")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as error:
        raise ValueError(f"unknown time zone {name!r} (expected an IANA name)") from error


def _aware_utc(value: object, what: str) -> datetime:
    if not isinstance(value, datetime):
        raise TypeError(f"{what} must be a datetime, got {value!r}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware, got naive {value.isoformat()}")
    return ensure_utc(value)


# ---------------------------------------------------------------------- interval building


@lru_cache(maxsize=16_384)
def _day_spans(zone_name: str, spans: tuple[LocalSpan, ...], day: date) -> tuple[Interval, ...]:
    """The UTC intervals of one local date's wall-clock ``spans``, sorted by start.

    Empty or negative results of the spring gap are dropped; the result may still
    contain overlapping intervals (a span inside the gap maps onto the hour after it),
    which the callers merge or only test membership against.
    """
    zone = _zone(zone_name)
    result: list[Interval] = []
    for start, end in spans:
        utc_start = _local_to_utc(day, start, zone)
        utc_end = (
            _local_to_utc(day + _ONE_DAY, time(0), zone)
            if end == time.max
            else _local_to_utc(day, end, zone)
        )
        if utc_start < utc_end:
            result.append((utc_start, utc_end))
    result.sort()
    return tuple(result)


def _local_to_utc(day: date, clock: time, zone: ZoneInfo) -> datetime:
    # Built field by field so that fold is always 0, whatever the given time carried.
    local = datetime(
        day.year, day.month, day.day, clock.hour, clock.minute, clock.second, tzinfo=zone
    )
    return local.astimezone(UTC)


def _merge(spans: list[Interval]) -> list[Interval]:
    """Sorted ``spans`` with overlapping and touching ones joined."""
    merged: list[Interval] = []
    for start, end in spans:
        if merged and start <= merged[-1][1]:
            if end > merged[-1][1]:
                merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


def _spans_within(schedule: Schedule, start: datetime, end: datetime) -> list[Interval]:
    """Working time within ``[start, end)``: sorted, disjoint, non-touching, absences out.

    Each local date's intervals are built on their own; one extra date on each side
    catches intervals pushed across midnight by an offset change (the largest real
    change, Samoa skipping 30 December 2011, is one day).
    """
    if end <= start:
        return []
    zone = _zone(schedule.timezone)
    day = start.astimezone(zone).date() - _ONE_DAY
    last = end.astimezone(zone).date() + _ONE_DAY
    days = schedule.hours.days
    raw: list[Interval] = []
    while day <= last:
        spans = days[day.weekday()]
        if spans:
            for span_start, span_end in _day_spans(schedule.timezone, spans, day):
                if span_start < end and span_end > start:
                    raw.append((max(span_start, start), min(span_end, end)))
        day += _ONE_DAY
    raw.sort()
    return schedule._without_absences(_merge(raw))


def _walk(schedule: Schedule, start: datetime, limit: datetime) -> Iterator[Interval]:
    """Working intervals within ``[start, limit)`` in time order, a week at a time.

    Intervals are disjoint and sorted, but one crossing a week boundary comes out in two
    touching pieces; callers that sum or search do not care.
    """
    chunk_start = start
    while chunk_start < limit:
        chunk_end = min(chunk_start + _CHUNK, limit)
        yield from _spans_within(schedule, chunk_start, chunk_end)
        chunk_start = chunk_end


def _horizon(start: datetime, horizon_days: int) -> datetime:
    if horizon_days < 0:
        raise ValueError(f"horizon_days must not be negative, got {horizon_days}")
    return start + timedelta(days=horizon_days)


# ------------------------------------------------------------------------------ questions


def is_working(schedule: Schedule, at: datetime) -> bool:
    """Whether ``at`` falls in the rep's working hours and outside every absence.

    Half-open: true at an interval's start, false at its end. Looks at three local
    days' intervals (cached) and bisects the absences, so it is cheap enough to ask for
    every rep of a routing decision.
    """
    moment = _aware_utc(at, "at")
    if schedule._is_absent(moment):
        return False
    days = schedule.hours.days
    today = moment.astimezone(_zone(schedule.timezone)).date()
    for day in (today - _ONE_DAY, today, today + _ONE_DAY):
        spans = days[day.weekday()]
        if not spans:
            continue
        for start, end in _day_spans(schedule.timezone, spans, day):
            if start > moment:
                break
            if moment < end:
                return True
    return False


def working_intervals(schedule: Schedule, start: datetime, end: datetime) -> list[Interval]:
    """The working time within ``[start, end)`` as UTC ``(start, end)`` pairs.

    Sorted, each non-empty, clipped to the window, absences removed, and overlapping or
    adjacent intervals merged (so two consecutive days worked to and from midnight come
    out as one interval, and no two returned intervals touch). Empty if ``end <=
    start``.
    """
    window_start = _aware_utc(start, "start")
    window_end = _aware_utc(end, "end")
    return _merge(list(_walk(schedule, window_start, window_end)))


def next_working_moment(
    schedule: Schedule, at: datetime, *, horizon_days: int = 366
) -> datetime | None:
    """The first working moment at or after ``at``: ``at`` itself when it is working.

    ``None`` when there is no working time in ``[at, at + horizon_days)`` (no working
    days at all, or an absence covering the whole horizon); the horizon bounds the
    search, so an impossible schedule costs a bounded amount of work.
    """
    moment = _aware_utc(at, "at")
    if is_working(schedule, moment):
        return moment
    for start, _ in _walk(schedule, moment, _horizon(moment, horizon_days)):
        return start
    return None


def add_business_minutes(
    schedule: Schedule, start: datetime, minutes: float, *, horizon_days: int = 366
) -> datetime | None:
    """The moment at which ``minutes`` of working time have elapsed since ``start``.

    The earliest such moment, so when the count runs out exactly at the end of an
    interval the answer is that end (17:00), not the next morning. ``0`` minutes gives
    :func:`next_working_moment`. ``None`` when the time cannot be reached by ``start +
    horizon_days``. ``minutes`` is rounded to the microsecond; negative or non-finite
    values raise ``ValueError``. ``business_minutes_between(s, start, result)`` gives
    ``minutes`` back.
    """
    origin = _aware_utc(start, "start")
    if not math.isfinite(minutes) or minutes < 0:
        raise ValueError(f"minutes must be a finite number >= 0, got {minutes}")
    if minutes == 0:
        return next_working_moment(schedule, origin, horizon_days=horizon_days)
    remaining = timedelta(minutes=minutes)
    for span_start, span_end in _walk(schedule, origin, _horizon(origin, horizon_days)):
        length = span_end - span_start
        if remaining <= length:
            return span_start + remaining
        remaining -= length
    return None


def business_minutes_between(schedule: Schedule, start: datetime, end: datetime) -> float:
    """Minutes of working time within ``[start, end)``; ``0.0`` if ``end <= start``.

    Summed exactly (in microseconds) before the one conversion to float minutes.
    """
    window_start = _aware_utc(start, "start")
    window_end = _aware_utc(end, "end")
    total = sum(
        (
            span_end - span_start
            for span_start, span_end in _walk(schedule, window_start, window_end)
        ),
        timedelta(0),
    )
    return total / timedelta(minutes=1)
