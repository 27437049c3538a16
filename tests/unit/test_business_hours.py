"""Business-time arithmetic against hand-computed UTC answers (weekends, lunch breaks,
three continents, both DST changes in Berlin and New York, absences, 24/7 and never),
parse errors, and the properties routing and SLA timers rely on.

Every expected UTC value below is worked out by hand in the comment next to it, from the
zone's offsets (Berlin CET +1 / CEST +2, New York EST -5 / EDT -4, Los Angeles PST -8 /
PDT -7, Tokyo +9), never by calling the code under test.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from baton.domain.business_hours import (
    WEEKDAYS,
    Absence,
    Schedule,
    WorkingHours,
    add_business_minutes,
    business_minutes_between,
    is_working,
    next_working_moment,
    working_intervals,
)

US = timedelta(microseconds=1)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def office(zone: str, **extra: list[str]) -> Schedule:
    """Weekdays 09:00-17:00 in ``zone``, plus or instead of any ``extra`` days."""
    spec: dict[str, list[str]] = {name: ["09:00-17:00"] for name in WEEKDAYS[:5]}
    spec.update(extra)
    return Schedule(zone, WorkingHours.parse(spec))


def only(zone: str, **days: list[str]) -> Schedule:
    return Schedule(zone, WorkingHours.parse(days))


BERLIN = office("Europe/Berlin")
NEW_YORK = office("America/New_York")
LOS_ANGELES = office("America/Los_Angeles")
TOKYO = office("Asia/Tokyo")


def test_calendar_used_by_the_hand_computations() -> None:
    # The dates below are chosen for these weekdays and these DST changes.
    assert date(2026, 1, 5).weekday() == 0  # Monday
    assert date(2026, 1, 16).weekday() == 4  # Friday
    assert date(2026, 3, 8).weekday() == 6  # second Sunday of March: US spring forward
    assert date(2026, 3, 29).weekday() == 6  # last Sunday of March: EU spring forward
    assert date(2026, 10, 25).weekday() == 6  # last Sunday of October: EU fall back
    assert date(2026, 11, 1).weekday() == 6  # first Sunday of November: US fall back


class TestWeekendsAndBreaks:
    def test_a_weekday_is_worked_from_nine_to_five_local(self) -> None:
        # Wed 2026-01-14 in Berlin (CET, +1): 09:00-17:00 local is 08:00-16:00 UTC.
        day = working_intervals(BERLIN, utc(2026, 1, 14), utc(2026, 1, 15))
        assert day == [(utc(2026, 1, 14, 8), utc(2026, 1, 14, 16))]
        assert business_minutes_between(BERLIN, utc(2026, 1, 14), utc(2026, 1, 15)) == 480

    def test_intervals_are_half_open(self) -> None:
        assert is_working(BERLIN, utc(2026, 1, 14, 8))
        assert not is_working(BERLIN, utc(2026, 1, 14, 8) - US)
        assert is_working(BERLIN, utc(2026, 1, 14, 16) - US)
        assert not is_working(BERLIN, utc(2026, 1, 14, 16))

    def test_the_weekend_is_skipped(self) -> None:
        # Fri 2026-01-16 15:30 UTC is 16:30 CET: 30 minutes left on Friday, the other
        # 30 on Monday 2026-01-19 from 09:00 CET = 08:00 UTC.
        assert add_business_minutes(BERLIN, utc(2026, 1, 16, 15, 30), 60) == utc(2026, 1, 19, 8, 30)
        assert not is_working(BERLIN, utc(2026, 1, 17, 12))
        assert next_working_moment(BERLIN, utc(2026, 1, 17, 12)) == utc(2026, 1, 19, 8)
        # A whole week is five 8-hour days.
        assert business_minutes_between(BERLIN, utc(2026, 1, 12), utc(2026, 1, 19)) == 5 * 480

    def test_running_out_exactly_at_closing_time_answers_closing_time(self) -> None:
        assert add_business_minutes(BERLIN, utc(2026, 1, 16, 15), 60) == utc(2026, 1, 16, 16)

    def test_a_lunch_break_is_not_working_time(self) -> None:
        lunch = Schedule(
            "UTC",
            WorkingHours.parse({d: ["09:00-12:00", "13:00-17:30"] for d in WEEKDAYS[:5]}),
        )
        monday = utc(2026, 1, 5)
        assert working_intervals(lunch, monday, monday + timedelta(days=1)) == [
            (utc(2026, 1, 5, 9), utc(2026, 1, 5, 12)),
            (utc(2026, 1, 5, 13), utc(2026, 1, 5, 17, 30)),
        ]
        assert business_minutes_between(lunch, monday, monday + timedelta(days=1)) == 450
        assert not is_working(lunch, utc(2026, 1, 5, 12, 30))
        assert next_working_moment(lunch, utc(2026, 1, 5, 12, 30)) == utc(2026, 1, 5, 13)
        # From 10:00: 120 minutes until lunch, the other 80 from 13:00.
        assert add_business_minutes(lunch, utc(2026, 1, 5, 10), 200) == utc(2026, 1, 5, 14, 20)
        # Exactly the morning's remainder ends at 12:00, not at 13:00.
        assert add_business_minutes(lunch, utc(2026, 1, 5, 10), 120) == utc(2026, 1, 5, 12)

    def test_touching_intervals_and_days_merge(self) -> None:
        s = only(
            "UTC", mon=["09:00-12:00", "12:00-13:00"], tue=["22:00-24:00"], wed=["00:00-02:00"]
        )
        assert working_intervals(s, utc(2026, 1, 5), utc(2026, 1, 8)) == [
            (utc(2026, 1, 5, 9), utc(2026, 1, 5, 13)),
            (utc(2026, 1, 6, 22), utc(2026, 1, 7, 2)),
        ]
        assert is_working(s, utc(2026, 1, 5, 12))
        assert is_working(s, utc(2026, 1, 7))

    def test_intervals_are_clipped_to_the_window(self) -> None:
        window = working_intervals(BERLIN, utc(2026, 1, 14, 10), utc(2026, 1, 15, 9, 15))
        assert window == [
            (utc(2026, 1, 14, 10), utc(2026, 1, 14, 16)),
            (utc(2026, 1, 15, 8), utc(2026, 1, 15, 9, 15)),
        ]
        assert working_intervals(BERLIN, utc(2026, 1, 15), utc(2026, 1, 14)) == []
        assert business_minutes_between(BERLIN, utc(2026, 1, 15), utc(2026, 1, 14)) == 0


class TestThreeContinents:
    def test_winter_day(self) -> None:
        # Wed 2026-01-14: Berlin 09-17 CET = 08:00-16:00 UTC; Los Angeles 09-17 PST =
        # 17:00-01:00(+1) UTC; Tokyo 09-17 JST = 00:00-08:00 UTC.
        noon = utc(2026, 1, 14, 12)
        assert [is_working(s, noon) for s in (BERLIN, LOS_ANGELES, TOKYO)] == [
            True,
            False,
            False,
        ]
        # 00:30 UTC Thursday: 16:30 Wednesday in LA, 09:30 Thursday in Tokyo.
        late = utc(2026, 1, 15, 0, 30)
        assert [is_working(s, late) for s in (BERLIN, LOS_ANGELES, TOKYO)] == [
            False,
            True,
            True,
        ]
        # 16:30 UTC: 17:30 Berlin, 08:30 LA, 01:30 Thursday Tokyo: nobody.
        gap = utc(2026, 1, 14, 16, 30)
        assert not any(is_working(s, gap) for s in (BERLIN, LOS_ANGELES, TOKYO))
        assert next_working_moment(BERLIN, gap) == utc(2026, 1, 15, 8)
        assert next_working_moment(LOS_ANGELES, gap) == utc(2026, 1, 14, 17)
        assert next_working_moment(TOKYO, gap) == utc(2026, 1, 15, 0)

    def test_the_local_weekend_not_the_utc_one(self) -> None:
        # Fri 2026-01-16 20:00 UTC is Saturday 05:00 in Tokyo but Friday 12:00 in LA.
        friday_evening = utc(2026, 1, 16, 20)
        assert not is_working(TOKYO, friday_evening)
        assert is_working(LOS_ANGELES, friday_evening)
        # Tokyo's next moment is Monday 09:00 JST = Monday 00:00 UTC.
        assert next_working_moment(TOKYO, friday_evening) == utc(2026, 1, 19, 0)
        # LA's day crosses UTC midnight: Friday 09-17 PST = Fri 17:00 - Sat 01:00 UTC.
        assert working_intervals(LOS_ANGELES, utc(2026, 1, 17), utc(2026, 1, 18)) == [
            (utc(2026, 1, 17, 0), utc(2026, 1, 17, 1))
        ]

    def test_summer_day(self) -> None:
        # Wed 2026-07-15 16:30 UTC: 18:30 CEST, 09:30 PDT, 01:30 Thursday JST.
        moment = utc(2026, 7, 15, 16, 30)
        assert [is_working(s, moment) for s in (BERLIN, LOS_ANGELES, TOKYO)] == [
            False,
            True,
            False,
        ]
        # Berlin in summer: 09-17 CEST = 07:00-15:00 UTC.
        assert next_working_moment(BERLIN, moment) == utc(2026, 7, 16, 7)


class TestDaylightSaving:
    def test_berlin_spring_office_day_is_still_eight_hours(self) -> None:
        # Fri 2026-03-27 (CET, +1): 08:00-16:00 UTC; Mon 2026-03-30 (CEST, +2):
        # 07:00-15:00 UTC.
        assert working_intervals(BERLIN, utc(2026, 3, 27), utc(2026, 3, 31)) == [
            (utc(2026, 3, 27, 8), utc(2026, 3, 27, 16)),
            (utc(2026, 3, 30, 7), utc(2026, 3, 30, 15)),
        ]
        # 60 minutes from Fri 15:30 UTC (16:30 CET): 30 on Friday, 30 from Mon 07:00 UTC.
        assert add_business_minutes(BERLIN, utc(2026, 3, 27, 15, 30), 60) == utc(2026, 3, 30, 7, 30)

    def test_berlin_interval_across_the_spring_switch_is_five_hours(self) -> None:
        night = only("Europe/Berlin", sun=["00:00-06:00"])
        # Sun 2026-03-29 00:00 CET = Sat 23:00 UTC; 06:00 CEST = 04:00 UTC.
        assert working_intervals(night, utc(2026, 3, 28), utc(2026, 3, 30)) == [
            (utc(2026, 3, 28, 23), utc(2026, 3, 29, 4))
        ]
        assert business_minutes_between(night, utc(2026, 3, 28), utc(2026, 3, 30)) == 300
        assert add_business_minutes(night, utc(2026, 3, 28, 12), 300) == utc(2026, 3, 29, 4)

    def test_berlin_interval_across_the_autumn_switch_is_seven_hours(self) -> None:
        night = only("Europe/Berlin", sun=["00:00-06:00"])
        # Sun 2026-10-25 00:00 CEST = Sat 22:00 UTC; 06:00 CET = 05:00 UTC.
        assert working_intervals(night, utc(2026, 10, 24), utc(2026, 10, 26)) == [
            (utc(2026, 10, 24, 22), utc(2026, 10, 25, 5))
        ]
        assert business_minutes_between(night, utc(2026, 10, 24), utc(2026, 10, 26)) == 420

    def test_berlin_autumn_office_days(self) -> None:
        # Fri 2026-10-23 09-17 CEST = 07:00-15:00 UTC; Mon 2026-10-26 09-17 CET =
        # 08:00-16:00 UTC.
        assert add_business_minutes(BERLIN, utc(2026, 10, 23, 14, 30), 60) == utc(
            2026, 10, 26, 8, 30
        )
        assert business_minutes_between(BERLIN, utc(2026, 10, 23), utc(2026, 10, 27)) == 960

    def test_a_repeated_local_time_is_its_first_occurrence(self) -> None:
        early = only("Europe/Berlin", sun=["02:30-06:00"])
        # 02:30 on 2026-10-25 happens twice; the first is CEST = 00:30 UTC. 06:00 CET =
        # 05:00 UTC: 4.5 hours.
        assert working_intervals(early, utc(2026, 10, 24), utc(2026, 10, 26)) == [
            (utc(2026, 10, 25, 0, 30), utc(2026, 10, 25, 5))
        ]

    def test_berlin_spring_gap_never_goes_negative(self) -> None:
        # 02:00-03:00 does not exist on 2026-03-29. With fold=0 a gap time is read with
        # the offset before the change (+1): 02:30 -> 01:30 UTC, while 03:00 is CEST,
        # 01:00 UTC. 02:30-03:00 is therefore empty, not -30 minutes.
        empty = only("Europe/Berlin", sun=["02:30-03:00"])
        assert working_intervals(empty, utc(2026, 3, 28), utc(2026, 3, 30)) == []
        assert business_minutes_between(empty, utc(2026, 3, 28), utc(2026, 3, 30)) == 0
        assert not is_working(empty, utc(2026, 3, 29, 1))
        # The next Sunday it is an ordinary half hour: 02:30-03:00 CEST = 00:30-01:00 UTC.
        assert next_working_moment(empty, utc(2026, 3, 28)) == utc(2026, 4, 5, 0, 30)

    def test_berlin_spring_gap_overlaps_are_counted_once(self) -> None:
        # 02:00-02:30 (gap, +1) -> 01:00-01:30 UTC; 03:00-04:00 CEST -> 01:00-02:00 UTC.
        s = only("Europe/Berlin", sun=["02:00-02:30", "03:00-04:00"])
        assert working_intervals(s, utc(2026, 3, 28), utc(2026, 3, 30)) == [
            (utc(2026, 3, 29, 1), utc(2026, 3, 29, 2))
        ]
        assert business_minutes_between(s, utc(2026, 3, 28), utc(2026, 3, 30)) == 60

    def test_berlin_interval_ending_in_the_gap_joins_the_evening_before(self) -> None:
        # Sat 22:00-24:00 CET = 21:00-23:00 UTC; Sun 00:00-02:00, 02:00 read as +1 =
        # 23:00-01:00 UTC: one interval.
        s = only("Europe/Berlin", sat=["22:00-24:00"], sun=["00:00-02:00"])
        assert working_intervals(s, utc(2026, 3, 28), utc(2026, 3, 30)) == [
            (utc(2026, 3, 28, 21), utc(2026, 3, 29, 1))
        ]

    def test_new_york_spring(self) -> None:
        # Fri 2026-03-06 09-17 EST = 14:00-22:00 UTC; Mon 2026-03-09 09-17 EDT =
        # 13:00-21:00 UTC.
        assert add_business_minutes(NEW_YORK, utc(2026, 3, 6, 21), 120) == utc(2026, 3, 9, 14)
        night = only("America/New_York", sun=["00:00-06:00"])
        # Sun 2026-03-08 00:00 EST = 05:00 UTC; 06:00 EDT = 10:00 UTC.
        assert working_intervals(night, utc(2026, 3, 7), utc(2026, 3, 9)) == [
            (utc(2026, 3, 8, 5), utc(2026, 3, 8, 10))
        ]
        # 01:00 EST = 06:00 UTC; 03:30 EDT = 07:30 UTC.
        across = only("America/New_York", sun=["01:00-03:30"])
        assert business_minutes_between(across, utc(2026, 3, 7), utc(2026, 3, 9)) == 90
        # 02:30 (gap, read as EST) = 07:30 UTC = 03:30 EDT: nothing left.
        gap = only("America/New_York", sun=["02:30-03:30"])
        assert business_minutes_between(gap, utc(2026, 3, 7), utc(2026, 3, 9)) == 0

    def test_new_york_autumn(self) -> None:
        # Fri 2026-10-30 09-17 EDT = 13:00-21:00 UTC; Mon 2026-11-02 09-17 EST =
        # 14:00-22:00 UTC.
        assert add_business_minutes(NEW_YORK, utc(2026, 10, 30, 20), 120) == utc(2026, 11, 2, 15)
        night = only("America/New_York", sun=["00:00-06:00"])
        # Sun 2026-11-01 00:00 EDT = 04:00 UTC; 06:00 EST = 11:00 UTC.
        assert working_intervals(night, utc(2026, 10, 31), utc(2026, 11, 2)) == [
            (utc(2026, 11, 1, 4), utc(2026, 11, 1, 11))
        ]

    def test_around_the_clock_counts_real_time_through_the_changes(self) -> None:
        berlin_24_7 = Schedule("Europe/Berlin", WorkingHours.always())
        assert (
            business_minutes_between(berlin_24_7, utc(2026, 3, 28, 12), utc(2026, 3, 29, 12))
            == 1440
        )
        # Local Sunday 2026-10-25 lasts 25 hours: 22:00 UTC Saturday to 23:00 UTC Sunday.
        assert (
            business_minutes_between(berlin_24_7, utc(2026, 10, 24, 22), utc(2026, 10, 25, 23))
            == 1500
        )
        assert working_intervals(berlin_24_7, utc(2026, 3, 20), utc(2026, 11, 5)) == [
            (utc(2026, 3, 20), utc(2026, 11, 5))
        ]

    def test_samoa_skipping_a_whole_day(self) -> None:
        # Pacific/Apia went from -10 to +14 at the end of 2011-12-29: local 30 December
        # never happened. Local 2011-12-29 00:00 (-10) = 10:00 UTC that day; local
        # 2012-01-01 00:00 (+14) = 2011-12-31 10:00 UTC: 48 real hours.
        apia = Schedule("Pacific/Apia", WorkingHours.always())
        start, end = utc(2011, 12, 29, 10), utc(2011, 12, 31, 10)
        assert working_intervals(apia, start, end) == [(start, end)]
        assert business_minutes_between(apia, start, end) == 2880


class TestAbsences:
    def test_an_absence_starting_mid_interval(self) -> None:
        # Berlin Wed 2026-01-14 is 08:00-16:00 UTC; the rep is out 10:00-12:00 UTC.
        s = Schedule(
            "Europe/Berlin",
            WorkingHours.weekdays(),
            (Absence(utc(2026, 1, 14, 10), utc(2026, 1, 14, 12)),),
        )
        assert working_intervals(s, utc(2026, 1, 14), utc(2026, 1, 15)) == [
            (utc(2026, 1, 14, 8), utc(2026, 1, 14, 10)),
            (utc(2026, 1, 14, 12), utc(2026, 1, 14, 16)),
        ]
        assert business_minutes_between(s, utc(2026, 1, 14), utc(2026, 1, 15)) == 360
        assert is_working(s, utc(2026, 1, 14, 10) - US)
        assert not is_working(s, utc(2026, 1, 14, 10))
        assert not is_working(s, utc(2026, 1, 14, 11))
        assert is_working(s, utc(2026, 1, 14, 12))
        assert next_working_moment(s, utc(2026, 1, 14, 11)) == utc(2026, 1, 14, 12)
        assert add_business_minutes(s, utc(2026, 1, 14, 8), 150) == utc(2026, 1, 14, 12, 30)

    def test_an_absence_spanning_a_weekend(self) -> None:
        # Out from Fri 2026-01-16 12:00 UTC (13:00 CET) to Tue 2026-01-20 10:00 UTC.
        s = Schedule(
            "Europe/Berlin",
            WorkingHours.weekdays(),
            (Absence(utc(2026, 1, 16, 12), utc(2026, 1, 20, 10)),),
        )
        assert add_business_minutes(s, utc(2026, 1, 16, 11), 60) == utc(2026, 1, 16, 12)
        assert add_business_minutes(s, utc(2026, 1, 16, 11), 90) == utc(2026, 1, 20, 10, 30)
        assert next_working_moment(s, utc(2026, 1, 17, 12)) == utc(2026, 1, 20, 10)
        assert not is_working(s, utc(2026, 1, 19, 9))  # Monday, but away
        # Friday 08:00-12:00 and Tuesday 10:00-16:00 UTC.
        assert business_minutes_between(s, utc(2026, 1, 16), utc(2026, 1, 21)) == 600

    def test_overlapping_absences_and_absences_in_other_zones(self) -> None:
        tokyo = ZoneInfo("Asia/Tokyo")
        s = Schedule(
            "UTC",
            WorkingHours.always(),
            (
                Absence(utc(2026, 1, 5, 12), utc(2026, 1, 5, 14)),
                # 22:00-23:30 JST on 2026-01-05 = 13:00-14:30 UTC
                Absence(
                    datetime(2026, 1, 5, 22, tzinfo=tokyo),
                    datetime(2026, 1, 5, 23, 30, tzinfo=tokyo),
                ),
            ),
        )
        assert s.absences[1].start == utc(2026, 1, 5, 13)
        assert s.absences[1].start.tzinfo is UTC
        assert working_intervals(s, utc(2026, 1, 5), utc(2026, 1, 6)) == [
            (utc(2026, 1, 5), utc(2026, 1, 5, 12)),
            (utc(2026, 1, 5, 14, 30), utc(2026, 1, 6)),
        ]

    def test_an_absence_covering_the_horizon_gives_none(self) -> None:
        s = Schedule("UTC", WorkingHours.always(), (Absence(utc(2026, 1, 1), utc(2027, 6, 1)),))
        assert next_working_moment(s, utc(2026, 1, 5)) is None
        assert add_business_minutes(s, utc(2026, 1, 5), 10) is None
        assert next_working_moment(s, utc(2026, 1, 5), horizon_days=600) == utc(2027, 6, 1)

    def test_absences_must_be_aware_and_positive(self) -> None:
        with pytest.raises(ValueError, match="timezone-aware"):
            Absence(datetime(2026, 1, 5), utc(2026, 1, 6))
        with pytest.raises(ValueError, match="before it ends"):
            Absence(utc(2026, 1, 6), utc(2026, 1, 6))


class TestAlwaysAndNever:
    def test_around_the_clock(self) -> None:
        s = Schedule("UTC", WorkingHours.always())
        moment = datetime(2026, 1, 17, 3, 4, 5, 6, tzinfo=UTC)
        assert is_working(s, moment)
        assert next_working_moment(s, moment) == moment
        assert add_business_minutes(s, moment, 90) == moment + timedelta(minutes=90)
        assert add_business_minutes(s, moment, 60 * 24 * 30) == moment + timedelta(days=30)
        assert business_minutes_between(s, moment, moment + timedelta(days=9)) == 9 * 1440
        assert working_intervals(s, utc(2026, 1, 1), utc(2026, 2, 1)) == [
            (utc(2026, 1, 1), utc(2026, 2, 1))
        ]

    @pytest.mark.parametrize("hours", [WorkingHours.parse({}), WorkingHours.parse({"mon": []})])
    def test_no_working_days(self, hours: WorkingHours) -> None:
        s = Schedule("Europe/Berlin", hours)
        start = utc(2026, 1, 5, 10)
        assert not is_working(s, start)
        assert next_working_moment(s, start) is None
        assert add_business_minutes(s, start, 0) is None
        assert add_business_minutes(s, start, 30) is None
        assert business_minutes_between(s, start, start + timedelta(days=400)) == 0
        assert working_intervals(s, start, start + timedelta(days=30)) == []

    def test_the_horizon_bounds_the_search(self) -> None:
        saturday = utc(2026, 1, 17, 12)
        assert next_working_moment(BERLIN, saturday, horizon_days=1) is None
        assert next_working_moment(BERLIN, saturday, horizon_days=2) == utc(2026, 1, 19, 8)
        assert add_business_minutes(BERLIN, saturday, 60, horizon_days=2) == utc(2026, 1, 19, 9)
        assert add_business_minutes(BERLIN, saturday, 60 * 9, horizon_days=2) is None
        # A working moment is its own answer, whatever the horizon.
        assert next_working_moment(BERLIN, utc(2026, 1, 19, 9), horizon_days=0) == utc(
            2026, 1, 19, 9
        )

    def test_zero_minutes_is_the_next_working_moment(self) -> None:
        assert add_business_minutes(BERLIN, utc(2026, 1, 17), 0) == utc(2026, 1, 19, 8)
        assert add_business_minutes(BERLIN, utc(2026, 1, 19, 9), 0) == utc(2026, 1, 19, 9)


class TestInputs:
    def test_results_are_utc_whatever_the_input_zone(self) -> None:
        berlin_morning = datetime(2026, 1, 14, 7, 0, tzinfo=ZoneInfo("Europe/Berlin"))
        moment = next_working_moment(BERLIN, berlin_morning)
        assert moment == utc(2026, 1, 14, 8)
        assert moment is not None and moment.tzinfo is UTC
        later = add_business_minutes(BERLIN, berlin_morning, 30)
        assert later is not None and later.tzinfo is UTC
        assert all(
            a.tzinfo is UTC and b.tzinfo is UTC
            for a, b in working_intervals(
                BERLIN, berlin_morning, berlin_morning + timedelta(days=3)
            )
        )

    def test_naive_datetimes_are_refused(self) -> None:
        naive = datetime(2026, 1, 14, 9)
        with pytest.raises(ValueError, match="timezone-aware"):
            is_working(BERLIN, naive)
        with pytest.raises(ValueError, match="timezone-aware"):
            next_working_moment(BERLIN, naive)
        with pytest.raises(ValueError, match="timezone-aware"):
            add_business_minutes(BERLIN, naive, 10)
        with pytest.raises(ValueError, match="timezone-aware"):
            business_minutes_between(BERLIN, utc(2026, 1, 14), naive)
        with pytest.raises(ValueError, match="timezone-aware"):
            working_intervals(BERLIN, naive, utc(2026, 1, 15))

    @pytest.mark.parametrize("minutes", [-1.0, math.nan, math.inf])
    def test_bad_minutes_are_refused(self, minutes: float) -> None:
        with pytest.raises(ValueError, match="minutes"):
            add_business_minutes(BERLIN, utc(2026, 1, 14), minutes)

    def test_a_negative_horizon_is_refused(self) -> None:
        with pytest.raises(ValueError, match="horizon"):
            next_working_moment(BERLIN, utc(2026, 1, 17), horizon_days=-1)

    @pytest.mark.parametrize(
        "zone", ["Mars/Olympus_Mons", "", "europe/berlin", "Europe", "/etc/localtime", "localtime"]
    )
    def test_unknown_time_zones_are_refused(self, zone: str) -> None:
        with pytest.raises(ValueError, match="time zone"):
            Schedule(zone, WorkingHours.always())

    def test_schedules_are_values(self) -> None:
        a = Schedule("UTC", WorkingHours.weekdays(), (Absence(utc(2026, 1, 1), utc(2026, 1, 2)),))
        b = Schedule("UTC", WorkingHours.weekdays(), (Absence(utc(2026, 1, 1), utc(2026, 1, 2)),))
        assert a == b
        assert hash(a) == hash(b)
        assert a != Schedule("UTC", WorkingHours.weekdays())


class TestParsing:
    def test_the_documented_example(self) -> None:
        hours = WorkingHours.parse({"mon": ["09:00-12:00", "13:00-17:30"], "sat": []})
        assert hours.days[0] == ((time(9), time(12)), (time(13), time(17, 30)))
        assert all(day == () for day in hours.days[1:])

    def test_24_00_ends_the_day_and_intervals_are_sorted(self) -> None:
        hours = WorkingHours.parse({" Sun ": ["20:00-24:00", "00:00-06:00"]})
        assert hours.days[6] == ((time(0), time(6)), (time(20), time.max))

    def test_helpers(self) -> None:
        assert WorkingHours.weekdays().days == (((time(9), time(17)),),) * 5 + ((), ())
        assert WorkingHours.weekdays("08:30", "16:00").days[4] == ((time(8, 30), time(16)),)
        assert WorkingHours.always().days == (((time(0), time.max),),) * 7

    @pytest.mark.parametrize(
        ("spec", "message"),
        [
            ({"monday": ["09:00-17:00"]}, "unknown day 'monday'"),
            ({"mon": ["09:00-17:00"], "MON": ["10:00-11:00"]}, "more than once"),
            ({"mon": "09:00-17:00"}, "expected a list"),
            ({"mon": ["9-5"]}, "is not an 'HH:MM-HH:MM' interval"),
            ({"mon": ["09:00"]}, "is not an 'HH:MM-HH:MM' interval"),
            ({"mon": ["09:00-17:00-18:00"]}, "is not an 'HH:MM-HH:MM' interval"),
            ({"mon": ["25:00-26:00"]}, "impossible time"),
            ({"mon": ["09:60-17:00"]}, "impossible time"),
            ({"mon": ["17:00-09:00"]}, "must start before it ends"),
            ({"mon": ["09:00-09:00"]}, "must start before it ends"),
            ({"mon": ["24:00-24:00"]}, "24:00 can only end"),
            ({"mon": ["09:00-12:00", "11:00-14:00"]}, "overlaps"),
            ({"tue": ["13:00-17:00", "09:00-13:30"]}, "tue: 09:00-13:30 overlaps 13:00-17:00"),
        ],
    )
    def test_errors_are_clear(self, spec: dict[str, list[str]], message: str) -> None:
        with pytest.raises(ValueError, match=message):
            WorkingHours.parse(spec)

    def test_direct_construction_is_checked(self) -> None:
        with pytest.raises(ValueError, match="7 days"):
            WorkingHours(((),) * 6)
        with pytest.raises(ValueError, match="sorted"):
            WorkingHours((((time(13), time(14)), (time(9), time(10))),) + ((),) * 6)
        with pytest.raises(ValueError, match="before it ends"):
            WorkingHours((((time(13), time(9)),),) + ((),) * 6)

    def test_to_spec_round_trips(self) -> None:
        spec = {
            "mon": ["09:00-12:00", "13:00-17:30"],
            "tue": [],
            "wed": ["00:00-24:00"],
            "thu": ["08:15:30-12:00"],
            "fri": ["22:00-24:00"],
            "sat": [],
            "sun": ["00:00-02:00"],
        }
        hours = WorkingHours.parse(spec)
        assert hours.to_spec() == spec
        assert WorkingHours.parse(hours.to_spec()) == hours
        assert WorkingHours.parse({}).to_spec() == {name: [] for name in WEEKDAYS}


# ------------------------------------------------------------------------------ properties

ZONES = [
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "America/Los_Angeles",
    "Asia/Tokyo",
    "Asia/Kolkata",
    "Australia/Lord_Howe",  # 30-minute DST
    "America/Santiago",  # changes at midnight
    "Pacific/Apia",  # skipped a whole day in 2011
]


def _clock(minute: int) -> time:
    return time.max if minute == 24 * 60 else time(minute // 60, minute % 60)


@st.composite
def working_hours(draw: st.DrawFn) -> WorkingHours:
    days = []
    for _ in WEEKDAYS:
        points = sorted(draw(st.sets(st.integers(0, 24 * 60), max_size=6)))
        pairs = zip(points[0::2], points[1::2], strict=False)
        days.append(tuple((_clock(a), _clock(b)) for a, b in pairs))
    return WorkingHours(tuple(days))


START = st.datetimes(
    min_value=datetime(2010, 1, 1), max_value=datetime(2030, 12, 31), timezones=st.just(UTC)
)


@st.composite
def schedule_and_start(draw: st.DrawFn) -> tuple[Schedule, datetime]:
    start = draw(START)
    absences = tuple(
        Absence(start + timedelta(minutes=offset), start + timedelta(minutes=offset + length))
        for offset, length in draw(
            st.lists(
                st.tuples(st.integers(-3 * 1440, 20 * 1440), st.integers(1, 5 * 1440)),
                max_size=3,
            )
        )
    )
    return Schedule(draw(st.sampled_from(ZONES)), draw(working_hours()), absences), start


MINUTES = st.floats(min_value=0, max_value=60 * 24 * 40, allow_nan=False)


@settings(deadline=None)
@given(schedule_and_start(), MINUTES)
def test_adding_then_measuring_gives_the_minutes_back(
    case: tuple[Schedule, datetime], minutes: float
) -> None:
    schedule, start = case
    end = add_business_minutes(schedule, start, minutes)
    if end is None:
        return
    assert end >= start
    assert math.isclose(business_minutes_between(schedule, start, end), minutes, abs_tol=1e-6)


@settings(deadline=None)
@given(schedule_and_start(), MINUTES, MINUTES)
def test_adding_is_monotone_in_minutes(case: tuple[Schedule, datetime], a: float, b: float) -> None:
    schedule, start = case
    fewer, more = sorted((a, b))
    first = add_business_minutes(schedule, start, fewer)
    second = add_business_minutes(schedule, start, more)
    if first is None:
        assert second is None
    elif second is not None:
        assert first <= second


@settings(deadline=None)
@given(schedule_and_start(), MINUTES)
def test_the_result_is_working_or_the_end_of_an_interval(
    case: tuple[Schedule, datetime], minutes: float
) -> None:
    schedule, start = case
    end = add_business_minutes(schedule, start, minutes)
    if end is None:
        return
    assert is_working(schedule, end) or is_working(schedule, end - US)
    if minutes == 0:
        assert is_working(schedule, end)
        assert business_minutes_between(schedule, start, end) == 0


@settings(deadline=None)
@given(schedule_and_start(), st.integers(0, 14 * 1440))
def test_intervals_are_well_formed_and_agree_with_is_working(
    case: tuple[Schedule, datetime], length: int
) -> None:
    schedule, start = case
    end = start + timedelta(minutes=length)
    spans = working_intervals(schedule, start, end)
    for (_, e), (s, _) in pairwise(spans):
        assert e < s  # sorted, disjoint, merged
    for s, e in spans:
        assert start <= s < e <= end
        assert s.tzinfo is UTC and e.tzinfo is UTC
        assert is_working(schedule, s)
        assert is_working(schedule, e - US)
        if e < end:
            assert not is_working(schedule, e)
        if s > start:
            assert not is_working(schedule, s - US)
        assert not any(a.start < e and s < a.end for a in schedule.absences)
    total = sum((e - s for s, e in spans), timedelta(0)) / timedelta(minutes=1)
    assert business_minutes_between(schedule, start, end) == total


@settings(deadline=None)
@given(schedule_and_start(), st.integers(0, 3 * 1440), st.integers(0, 3 * 1440))
def test_measuring_is_additive(case: tuple[Schedule, datetime], ab: int, bc: int) -> None:
    schedule, a = case
    b = a + timedelta(minutes=ab)
    c = b + timedelta(minutes=bc)
    whole = business_minutes_between(schedule, a, c)
    parts = business_minutes_between(schedule, a, b) + business_minutes_between(schedule, b, c)
    assert math.isclose(whole, parts, abs_tol=1e-6)


@settings(deadline=None)
@given(schedule_and_start())
def test_next_working_moment_is_the_first_working_moment(case: tuple[Schedule, datetime]) -> None:
    schedule, start = case
    moment = next_working_moment(schedule, start, horizon_days=30)
    spans = working_intervals(schedule, start, start + timedelta(days=30))
    if moment is None:
        assert spans == []
        return
    assert spans[0][0] == moment
    assert is_working(schedule, moment)
    assert (moment == start) == is_working(schedule, start)


@given(working_hours())
def test_to_spec_round_trips_for_any_hours(hours: WorkingHours) -> None:
    assert WorkingHours.parse(hours.to_spec()) == hours
