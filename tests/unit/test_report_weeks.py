"""The weeks of a weekly report: cut at each local Monday midnight of the period's
zone, the first and last possibly partial, together exactly the period."""

from __future__ import annotations

import itertools
from datetime import date

from baton.domain.reports import ReportPeriod, weeks


def test_weeks_start_on_local_mondays_and_cover_the_period() -> None:
    period = ReportPeriod.from_dates(date(2026, 2, 25), date(2026, 3, 10), "Europe/Paris")
    parts = weeks(period)
    assert [p.first_day.isoformat() for p in parts] == ["2026-02-25", "2026-03-02", "2026-03-09"]
    assert parts[0].start == period.start and parts[-1].end == period.end
    assert all(a.end == b.start for a, b in itertools.pairwise(parts))
    assert parts[1].start.isoformat() == "2026-03-01T23:00:00+00:00"  # Paris midnight
    assert {p.timezone for p in parts} == {"Europe/Paris"}


def test_a_period_within_one_week_is_one_week_and_dst_keeps_local_midnight() -> None:
    one = ReportPeriod.from_dates(date(2026, 3, 2), date(2026, 3, 3), "UTC")
    assert weeks(one) == [one]
    monday = ReportPeriod.from_dates(date(2026, 3, 2), date(2026, 3, 9), "UTC")
    assert weeks(monday) == [monday]  # ends exactly at the next Monday
    # New York moves its clocks on Sunday 8 March 2026: the next Monday starts at 04:00 UTC
    spring = ReportPeriod.from_dates(date(2026, 3, 1), date(2026, 3, 15), "America/New_York")
    assert [p.start.hour for p in weeks(spring)] == [5, 5, 4]
