"""Times as a person reads them: in their own zone, labelled with it.

A rep in New York who reads "accept by 15:00 UTC" has to do arithmetic (and gets it
wrong twice a year); "accept by Mon 2 Mar 10:00 EST" needs none. Baton stores and sends
UTC to programs (ISO 8601); people get :func:`local_text`.

Names of days and months are English whatever the machine's locale, so an email reads
the same from every server. Pure: ``now`` is passed in.
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def zone_label(local: datetime) -> str:
    """The abbreviation of an aware time's zone at that moment (``EST`` in winter,
    ``EDT`` in summer); a zone without one is shown by its offset (``UTC+04``)."""
    name = local.tzname() or "UTC"
    return f"UTC{name}" if name[:1] in "+-" else name


def local_text(at: datetime, zone: str, *, now: datetime | None = None) -> str:
    """``at`` in ``zone`` (IANA name) as ``Mon 2 Mar 10:00 EST``; with the year
    (``Mon 2 Mar 2025 10:00 EST``) when it is not the year of ``now`` there (or always,
    without ``now``). A naive ``at`` is UTC, as stored."""
    place = ZoneInfo(zone)
    local = (at if at.tzinfo else at.replace(tzinfo=UTC)).astimezone(place)
    day = f"{_DAYS[local.weekday()]} {local.day} {_MONTHS[local.month - 1]}"
    this_year = now is not None and now.astimezone(place).year == local.year
    year = "" if this_year else f" {local.year}"
    return f"{day}{year} {local:%H:%M} {zone_label(local)}"
