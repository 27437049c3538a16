"""Points in time and days that people and programs send: written out, and plausible.

A number is not a timestamp here: ``starts_at: 0`` is more likely a bug in the caller
(seconds? milliseconds? an unset field?) than an absence that began on 1 January 1970,
so timestamps must be written as ISO 8601 text. And nothing Baton keeps happened before
1970 or after 2200: a year such as 0001 or 9999 is a typo or a sentinel that would later
overflow date arithmetic in reports and SLA clocks. Both rules are also in the JSON
schema (a ``pattern`` that spells out the valid days), so the OpenAPI document tells a
client what the server accepts.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, WithJsonSchema

from baton.domain.clock import ensure_utc

FIRST_YEAR = 1970
LAST_YEAR = 2200
YEAR_PATTERN = r"^(19[7-9][0-9]|2[01][0-9]{2}|2200)-"
"""The years FIRST_YEAR to LAST_YEAR at the start of an ISO 8601 text."""


def _day_pattern() -> str:
    """Every calendar day from FIRST_YEAR to LAST_YEAR, leap days included, as a regular
    expression: a schema that states the range with a pattern alone lets clients and
    fuzzers produce valid days directly (a date format plus a year pattern makes them
    draw days from year 1 to 9999 and throw 97 % away)."""
    years = r"(19[7-9][0-9]|2[01][0-9][0-9]|2200)"
    leap = "|".join(
        str(year)
        for year in range(FIRST_YEAR, LAST_YEAR + 1)
        if year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    )
    days = (
        r"(0[13578]|1[02])-(0[1-9]|[12][0-9]|3[01])"
        r"|(0[469]|11)-(0[1-9]|[12][0-9]|30)"
        r"|02-(0[1-9]|1[0-9]|2[0-8])"
    )
    return f"({years}-({days})|({leap})-02-29)"


DAY = _day_pattern()
DAY_PATTERN = f"^{DAY}$"
"""A day (YYYY-MM-DD) from FIRST_YEAR to LAST_YEAR."""
INSTANT_PATTERN = (
    f"^{DAY}[Tt ]([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\\.[0-9]{{1,6}})?)?"
    "([Zz]|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$"
)
"""An ISO 8601 timestamp with a time zone (Z or an offset) from FIRST_YEAR to LAST_YEAR.

As RFC 3339 (section 5.6) allows, ``T`` and ``Z`` may be lowercase and a space may
separate the day from the time; :func:`iso_instant` writes such a text the one way."""
_INSTANT = re.compile(INSTANT_PATTERN)


def written(value: Any) -> Any:
    """Refuse numbers (and booleans) where a date or time must be written out."""
    if isinstance(value, bool | int | float):
        raise ValueError("write the time as ISO 8601 text, e.g. 2026-11-20T14:03:00Z")
    return value


def iso_instant(text: str) -> str | None:
    """``text`` spelled as ISO 8601 writes it (``T`` between day and time, ``Z`` in
    capitals) when it matches :data:`INSTANT_PATTERN`, else ``None``. The one rule for
    a timestamp sent as text: the activities model and the ingest's fast path both read
    through it, so they accept exactly the same spellings."""
    if _INSTANT.fullmatch(text) is None:
        return None
    if text[10] == "T" and text[-1] != "z":
        return text
    return f"{text[:10]}T{text[11:]}".upper()


def instant_text(value: Any) -> Any:
    """A timestamp sent as text must match :data:`INSTANT_PATTERN` exactly (a zone
    included) and is passed on as :func:`iso_instant` spells it; datetimes made in code
    pass as they are."""
    value = written(value)
    if isinstance(value, str):
        spelled = iso_instant(value)
        if spelled is None:
            raise ValueError(
                "write the time as ISO 8601 with its time zone, e.g. 2026-11-20T14:03:00Z or "
                "2026-11-20T15:03:00+01:00, between 1970 and 2200"
            )
        return spelled
    return value


def day_text(value: Any) -> Any:
    """A day sent as text must be YYYY-MM-DD between 1970 and 2200."""
    value = written(value)
    if isinstance(value, str) and not re.fullmatch(DAY_PATTERN, value):
        raise ValueError("write the day as YYYY-MM-DD, between 1970 and 2200")
    return value


def check_year(value: date) -> None:
    """Raise ``ValueError`` unless the year is FIRST_YEAR to LAST_YEAR."""
    if not FIRST_YEAR <= value.year <= LAST_YEAR:
        raise ValueError(f"the year must be between {FIRST_YEAR} and {LAST_YEAR}")


def _instant(value: datetime) -> datetime:
    check_year(value)
    return ensure_utc(value)


def _day(value: date) -> date:
    check_year(value)
    return value


Instant = Annotated[
    datetime,
    BeforeValidator(instant_text),
    AfterValidator(_instant),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": INSTANT_PATTERN,
            "description": "ISO 8601 date and time with a zone, 1970 to 2200",
            "examples": ["2026-08-03T09:00:00Z"],
        }
    ),
]
"""An ISO 8601 timestamp from 1970 to 2200, as aware UTC (no zone: read as UTC)."""

Day = Annotated[
    date,
    BeforeValidator(day_text),
    AfterValidator(_day),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": DAY_PATTERN,
            "description": "ISO 8601 day (YYYY-MM-DD), 1970 to 2200",
            "examples": ["2026-03-01"],
        }
    ),
]
"""An ISO 8601 calendar day (YYYY-MM-DD) from 1970 to 2200."""
