"""Times as people read them: their zone, its abbreviation at that moment, the year
only when it is not this year."""

from __future__ import annotations

from datetime import UTC, datetime

from baton.domain.local_time import local_text

NOW = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)


def test_new_york_reads_eastern_time_with_its_label_in_winter_and_summer() -> None:
    assert local_text(datetime(2026, 3, 2, 15, 30, tzinfo=UTC), "America/New_York", now=NOW) == (
        "Mon 2 Mar 10:30 EST"
    )
    assert local_text(datetime(2026, 7, 6, 14, 30, tzinfo=UTC), "America/New_York", now=NOW) == (
        "Mon 6 Jul 10:30 EDT"
    )


def test_the_day_is_the_readers_day() -> None:
    late = datetime(2026, 3, 2, 23, 30, tzinfo=UTC)
    assert local_text(late, "Europe/Berlin", now=NOW) == "Tue 3 Mar 00:30 CET"
    assert local_text(late, "UTC", now=NOW) == "Mon 2 Mar 23:30 UTC"


def test_another_year_shows_its_year_and_a_zone_without_letters_its_offset() -> None:
    assert local_text(datetime(2025, 12, 30, 9, 0, tzinfo=UTC), "UTC", now=NOW) == (
        "Tue 30 Dec 2025 09:00 UTC"
    )
    assert local_text(datetime(2026, 3, 2, 9, 0, tzinfo=UTC), "Asia/Dubai", now=NOW) == (
        "Mon 2 Mar 13:00 UTC+04"
    )
    # A stored naive time is UTC.
    assert local_text(datetime(2026, 3, 2, 9, 0), "UTC", now=NOW) == "Mon 2 Mar 09:00 UTC"
