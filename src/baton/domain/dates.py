"""Reading the dates people's files hold: ISO 8601 as before, and the other common ways
of writing a day or a moment, with a maintained parser (``python-dateutil``).

The API keeps its strict rule (ISO 8601 with a zone, :mod:`baton.domain.moments`):
programs can write it. A CSV file comes from a spreadsheet or another tool's export,
so an import reads what those write: ``2026-03-02``, ``02/03/2026``, ``March 2, 2026``,
``2 Mar 2026 14:05``, ``2026-03-02T14:05:00+01:00``, ``Mon, 2 Mar 2026 14:05:00 GMT``,
``20260302``, and Unix time.

What is never guessed:

* **The order of day and month** in ``02/03/2026``: month first unless the import says
  ``day_first`` (spreadsheets outside the US write day first). A value that fits only
  the other order (``13/03/2026`` read month first) is an error that says so, rather
  than a date silently read the other way round from its neighbours in the same file.
  A year written first is always year-month-day (``2026/03/02``).
* **A zone from an abbreviation** (``CET``, ``EST``, ``IST``...): several zones share
  each one, so only ``UTC``/``GMT``/``Z`` and numeric offsets are read; a time without
  a zone is read in the zone the import states (``naive_zone``).
* **Missing parts**: a value without a year (``2 Mar``, ``14:05``) is an error; so is a
  moment without its day (``March 2026``), except where a whole month means something
  (:func:`read_period`, a spend row).

Numbers: 8 digits are a compact ISO day (``20260302``); 9 or 10 digits are Unix seconds
(a fraction allowed), 12 or 13 digits Unix milliseconds, as event-tool exports write
them (the ranges cannot be confused between 1973 and 2200); any other number is refused
(``0`` or ``12`` is a broken cell, not 1 January 1970), and 16 or 19 digits are named as
the microseconds or nanoseconds they look like (refused too: no tool a file comes from
needs them, and guessing the unit of other lengths would misread broken cells).
Two-digit years are 2000-2099 (``2/3/26`` is 2026), whatever today's date is, so a file
reads the same every year.

Pure: no clock, no I/O. Years outside 1970-2200 are refused as everywhere in Baton.
"""

from __future__ import annotations

import calendar
import re
import warnings
from datetime import UTC, date, datetime, timedelta, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo

from dateutil import parser as _dateutil
from dateutil.tz import tzoffset

from baton.domain.moments import FIRST_YEAR, LAST_YEAR


class _AmbiguousZone(ValueError):
    """A zone abbreviation that several zones share."""


_UTC_NAMES = frozenset({"UTC", "GMT", "Z", "UT"})
_DAY_MONTH = re.compile(r"\s*(\d{1,2})[/.\-](\d{1,2})[/.\-](\d{4}|\d{2})(?!\d)")
_YEAR_FIRST = re.compile(r"\s*\d{4}[/.\-]")
_NUMERIC = re.compile(
    r"(\d{1,2})([/.\-])(\d{1,2})\2(\d{4}|\d{2})"
    r"(?:[ T](\d{1,2}):(\d{2})(?::(\d{2})(?:\.(\d{1,6}))?)?)?"
)
"""A spreadsheet's numeric date (``02/03/2026 14:05:33``): read without dateutil, which
takes about 30 times longer and is the cost of a large file."""
_NUMBER = re.compile(r"\s*(\d+)(?:\.(\d+))?\s*")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class _Info(_dateutil.parserinfo):
    """dateutil's words, with two-digit years fixed to 2000-2099 (dateutil's own rule
    depends on today's date, so a file would read differently from year to year)."""

    def convertyear(self, year: int, century_specified: bool = False) -> int:
        if year < 100 and not century_specified:
            return 2000 + year
        return int(year)


_INFO = _Info()
_PARSER = _dateutil.parser(_INFO)
_DEFAULT = datetime(1, 1, 1)  # noqa: DTZ001 (a sentinel: no year, month or day given)
_OTHER_DEFAULT = datetime(1, 2, 2)  # noqa: DTZ001


def _zone_of(name: str | None, offset: int | None) -> tzinfo | None:
    """The zone a value names: an offset, or one of the names of UTC; any other name
    (an abbreviation shared by several zones) is an error."""
    if offset is not None:
        return UTC if offset == 0 else tzoffset(None, offset)
    if name is None:
        return None
    if name.upper() in _UTC_NAMES:
        return UTC
    raise _AmbiguousZone(
        f"the zone '{name}' is ambiguous (several zones share the abbreviation): write an "
        "offset such as +01:00, or leave the zone out and state the file's zone"
    )


def _check_year(year: int, text: str) -> None:
    if year == _DEFAULT.year:
        raise ValueError(f"'{text}' has no year")
    if not FIRST_YEAR <= year <= LAST_YEAR:
        raise ValueError(f"'{text}' is not between {FIRST_YEAR} and {LAST_YEAR}")


def _check_order(text: str, day_first: bool) -> None:
    """Refuse a numeric date that fits only the other order of day and month."""
    found = _DAY_MONTH.match(text)
    if found is None:
        return
    first, second = int(found.group(1)), int(found.group(2))
    month = second if day_first else first
    other = first if day_first else second
    if month > 12 and other <= 12:
        order = "day/month/year" if day_first else "month/day/year"
        hint = "without --day-first" if day_first else "with --day-first"
        raise ValueError(
            f"'{text.strip()}' is not {order} (there is no month {month}); is the file "
            f"written the other way round? Import it {hint}"
        )


@lru_cache(maxsize=4096)
def _parsed(text: str, day_first: bool) -> tuple[datetime, bool, bool]:
    """``text`` read by dateutil: (naive or aware datetime, whether it gave a day,
    whether it gave a month). Cached: a file's date column repeats its values."""
    _check_order(text, day_first)
    year_first = _YEAR_FIRST.match(text) is not None
    dayfirst = day_first and not year_first
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            value = _PARSER.parse(
                text, _DEFAULT, tzinfos=_zone_of, dayfirst=dayfirst, yearfirst=year_first
            )
            has_day = has_month = True
            if value.day == _DEFAULT.day or value.month == _DEFAULT.month:
                other = _PARSER.parse(
                    text, _OTHER_DEFAULT, tzinfos=_zone_of, dayfirst=dayfirst, yearfirst=year_first
                )
                has_day, has_month = other.day == value.day, other.month == value.month
    except _AmbiguousZone:
        raise
    except (ValueError, OverflowError, Warning):  # dateutil's ParserError is a ValueError
        raise ValueError(f"'{text}' is not a date Baton can read") from None
    _check_year(value.year, text)
    return value, has_day, has_month


def _numeric(text: str, day_first: bool) -> datetime | None:
    """A numeric day-month-year (or month-day-year) with an optional 24-hour time, read
    directly; ``None`` for anything else (dateutil reads it)."""
    found = _NUMERIC.fullmatch(text)
    if found is None:
        return None
    _check_order(text, day_first)
    first, _, second, year, hour, minute, second_, fraction = found.groups()
    day, month = (first, second) if day_first else (second, first)
    try:
        value = datetime(  # noqa: DTZ001 (zoned by the caller)
            int(year) + (2000 if len(year) == 2 else 0),
            int(month),
            int(day),
            int(hour or 0),
            int(minute or 0),
            int(second_ or 0),
            int((fraction or "0").ljust(6, "0")),
        )
    except ValueError:
        raise ValueError(f"'{text}' is not a date Baton can read") from None
    _check_year(value.year, text)
    return value


def _from_number(text: str) -> datetime | date | None:
    """A value written as a number (see the module docstring), or ``None`` when the
    text is not a number."""
    found = _NUMBER.fullmatch(text)
    if found is None:
        return None
    whole, fraction = found.group(1), found.group(2)
    if len(whole) == 8 and fraction is None:
        try:
            return date(int(whole[:4]), int(whole[4:6]), int(whole[6:]))
        except ValueError:
            raise ValueError(f"'{text}' is not a date (YYYYMMDD)") from None
    seconds = float(f"{whole}.{fraction or 0}")
    if len(whole) in (12, 13):
        seconds /= 1000
    elif len(whole) in (16, 19):
        unit = "microseconds" if len(whole) == 16 else "nanoseconds"
        raise ValueError(
            f"'{text}' looks like Unix time in {unit} ({len(whole)} digits): write Unix "
            "time in seconds (10 digits) or milliseconds (13 digits), or a date (2026-03-02)"
        )
    elif len(whole) not in (9, 10):
        raise ValueError(
            f"'{text}' is a number, not a date: write a date (2026-03-02), or Unix time in "
            "seconds (10 digits) or milliseconds (13 digits)"
        )
    return _EPOCH + timedelta(seconds=seconds)


def _iso(text: str) -> datetime | None:
    """The existing reading of ISO 8601 (the fast path: most files write it)."""
    if len(text) < 10 or not text[:4].isdigit() or text[4] != "-":
        return None
    try:
        return datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        return None


def read_instant(text: str, *, zone: str = "UTC", day_first: bool = False) -> datetime:
    """The moment ``text`` names, as aware UTC; a time written without a zone is read in
    ``zone`` (an IANA name), a day without a time is its midnight there. Raises
    ``ValueError`` with a message that quotes the value and says what is wrong."""
    text = text.strip()
    if not text:
        raise ValueError("is empty")
    value: datetime | date | None = _iso(text) or _from_number(text) or _numeric(text, day_first)
    if value is None:
        value, has_day, has_month = _parsed(text, day_first)
        if not (has_day and has_month):
            raise ValueError(f"'{text}' gives no day")
    if not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day)  # noqa: DTZ001 (zoned below)
    if value.tzinfo is None:
        value = value.replace(tzinfo=ZoneInfo(zone))
    value = value.astimezone(UTC)
    if not FIRST_YEAR <= value.year <= LAST_YEAR:
        raise ValueError(f"'{text}' is not between {FIRST_YEAR} and {LAST_YEAR}")
    return value


def read_day(text: str, *, day_first: bool = False) -> date:
    """The calendar day ``text`` names (a time of day, if written, is ignored; a zone
    too: the day is the one written). Raises ``ValueError`` like
    :func:`read_instant`."""
    return read_period(text, day_first=day_first, month="refuse")[0]


def read_period(text: str, *, day_first: bool = False, month: str = "whole") -> tuple[date, date]:
    """The first and last day ``text`` names: one day (``2026-03-02``, ``2 Mar 2026``),
    or with ``month="whole"`` a whole month written without a day (``2026-03``,
    ``March 2026``, ``Mar 2026``: 1 to 31 March); ``month="refuse"`` makes that an
    error. Unix time is refused here (a day is not a moment)."""
    text = text.strip()
    if not text:
        raise ValueError("is empty")
    iso = _iso(text)
    if iso is not None:
        return iso.date(), iso.date()
    if _NUMBER.fullmatch(text):
        value = _from_number(text)
        if isinstance(value, datetime):
            raise ValueError(f"'{text}' is a number, not a day: write it as 2026-03-02")
        assert value is not None
        return value, value
    numeric = _numeric(text, day_first)
    if numeric is not None:
        return numeric.date(), numeric.date()
    parsed, has_day, has_month = _parsed(text, day_first)
    day = parsed.date()
    if has_day and has_month:
        return day, day
    if has_month and month == "whole":
        last = calendar.monthrange(day.year, day.month)[1]
        return day.replace(day=1), day.replace(day=last)
    raise ValueError(f"'{text}' gives no day")
