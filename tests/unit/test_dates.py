"""Reading the dates files hold (baton.domain.dates): ISO 8601 as before, the other
common formats, day-first files, zones, Unix time, and what is never guessed."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from baton.domain.dates import read_day, read_instant, read_period


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-03-02", utc(2026, 3, 2)),
        ("2026-03-02T14:05:00Z", utc(2026, 3, 2, 14, 5)),
        ("2026-03-02T14:05:00+01:00", utc(2026, 3, 2, 13, 5)),
        ("2026-03-02 14:05", utc(2026, 3, 2, 14, 5)),
        ("03/02/2026", utc(2026, 3, 2)),
        ("3/2/26", utc(2026, 3, 2)),
        ("March 2, 2026", utc(2026, 3, 2)),
        ("2 Mar 2026 14:05", utc(2026, 3, 2, 14, 5)),
        ("Mar 2 2026 2:05 PM", utc(2026, 3, 2, 14, 5)),
        ("Mon, 2 Mar 2026 14:05:00 GMT", utc(2026, 3, 2, 14, 5)),
        ("2 Mar 2026 14:05 UTC", utc(2026, 3, 2, 14, 5)),
        ("2026/03/02", utc(2026, 3, 2)),
        ("20260302", utc(2026, 3, 2)),
        ("1772460300", utc(2026, 3, 2, 14, 5)),
        ("1772460300.5", datetime(2026, 3, 2, 14, 5, 0, 500000, tzinfo=UTC)),
        ("1772460300000", utc(2026, 3, 2, 14, 5)),
        # The real data sets' formats: Maven's engage_date, Olist's won_date.
        ("2016-10-20", utc(2016, 10, 20)),
        ("2018-02-26 19:58:54", utc(2018, 2, 26, 19, 58, 54)),
    ],
)
def test_common_formats_are_read(text: str, expected: datetime) -> None:
    assert read_instant(text) == expected


def test_day_first_flips_only_the_ambiguous_numeric_dates() -> None:
    assert read_instant("02/03/2026") == utc(2026, 2, 3)
    assert read_instant("02/03/2026", day_first=True) == utc(2026, 3, 2)
    assert read_instant("02.03.2026 14:05", day_first=True) == utc(2026, 3, 2, 14, 5)
    # ISO 8601, a written month and a year first never depend on it.
    for text in ("2026-03-02", "2026/03/02", "March 2, 2026", "2 Mar 2026"):
        assert read_instant(text, day_first=True) == utc(2026, 3, 2), text


def test_a_date_that_fits_only_the_other_order_is_an_error_not_a_guess() -> None:
    with pytest.raises(ValueError, match=r"no month 13.*--day-first"):
        read_instant("13/03/2026")
    with pytest.raises(ValueError, match="no month 13"):
        read_instant("03/13/2026", day_first=True)
    assert read_instant("13/03/2026", day_first=True) == utc(2026, 3, 13)


def test_a_time_without_a_zone_is_read_in_the_stated_zone() -> None:
    assert read_instant("2 Mar 2026 14:05", zone="Europe/Berlin") == utc(2026, 3, 2, 13, 5)
    # Summer time where it applies, and a day is its midnight there.
    assert read_instant("07/01/2026 08:00", zone="America/New_York") == utc(2026, 7, 1, 12)
    assert read_instant("2026-03-02", zone="Asia/Tokyo") == utc(2026, 3, 1, 15)
    # A written zone wins over the stated one.
    assert read_instant("2026-03-02T14:05:00Z", zone="Asia/Tokyo") == utc(2026, 3, 2, 14, 5)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("2 Mar 2026 14:05 CET", "ambiguous"),
        ("2 Mar 2026 14:05 EST", "ambiguous"),
        ("2 Mar", "no year"),
        ("14:05", "no year"),
        ("March 2026", "gives no day"),
        ("yesterday", "not a date"),
        ("12", "is a number, not a date"),
        ("0", "is a number, not a date"),
        ("1733400000000000", "looks like Unix time in microseconds"),
        ("1733400000000000000", "looks like Unix time in nanoseconds"),
        ("20261302", "YYYYMMDD"),
        ("1969-12-31", "between 1970 and 2200"),
        ("31 Dec 9999", "between 1970 and 2200"),
        ("", "empty"),
    ],
)
def test_what_cannot_be_read_says_why(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        read_instant(text)


def test_a_month_is_a_whole_month_where_a_period_is_asked_for() -> None:
    assert read_period("2026-03") == (date(2026, 3, 1), date(2026, 3, 31))
    assert read_period("March 2026") == (date(2026, 3, 1), date(2026, 3, 31))
    assert read_period("Feb 2028") == (date(2028, 2, 1), date(2028, 2, 29))
    assert read_period("02/03/2026", day_first=True) == (date(2026, 3, 2), date(2026, 3, 2))
    with pytest.raises(ValueError, match="gives no day"):
        read_period("2026-03", month="refuse")
    with pytest.raises(ValueError, match="not a day"):
        read_period("1772460300")


def test_a_day_keeps_the_day_written() -> None:
    assert read_day("2026-03-02T23:30:00-05:00") == date(2026, 3, 2)
    assert read_day("2 Mar 2026") == date(2026, 3, 2)
    assert read_day("02/03/2026", day_first=True) == date(2026, 3, 2)
