"""Reps and teams from a CSV file: how a row's cells are read into a rep's settings.

One row per rep, found again by email (a re-import updates). Cells are text as a
spreadsheet holds them:

* ``working_hours``: ``mon-fri=09:00-17:00; sat=10:00-14:00`` (the ``--hours`` syntax)
  or as ``baton rep list`` prints it, ``mon-fri 09:00-12:00,13:00-17:00``; days left
  out are days off;
* lists (countries, regions, postal prefixes, segments, tags): separated by ``;``,
  ``,`` or ``|``;
* ``active``: yes/no, true/false, 1/0.

A blank cell leaves the setting as it is (a new rep gets the default); only ``team``
and ``manager_email`` can be cleared, with ``-``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from baton.domain.business_hours import WEEKDAYS

REP_COLUMNS = frozenset(
    {
        "email",
        "name",
        "team",
        "timezone",
        "working_hours",
        "status",
        "capacity",
        "weight",
        "countries",
        "regions",
        "postal_prefixes",
        "segments",
        "tags",
        "manager_email",
        "active",
    }
)

REP_ALIASES: dict[str, str] = {
    "e_mail": "email",
    "email_address": "email",
    "rep_email": "email",
    "full_name": "name",
    "rep_name": "name",
    "rep": "name",
    "team_name": "team",
    "time_zone": "timezone",
    "tz": "timezone",
    "hours": "working_hours",
    "work_hours": "working_hours",
    "working_time": "working_hours",
    "max_open_handoffs": "capacity",
    "max_open": "capacity",
    "country": "countries",
    "territory": "countries",
    "territories": "countries",
    "region": "regions",
    "states": "regions",
    "state": "regions",
    "postal_codes": "postal_prefixes",
    "postal_prefix": "postal_prefixes",
    "zip_prefixes": "postal_prefixes",
    "segment": "segments",
    "tag": "tags",
    "skills": "tags",
    "manager": "manager_email",
    "manager_email_address": "manager_email",
    "is_active": "active",
    "enabled": "active",
}

LIST_FIELDS = ("countries", "regions", "postal_prefixes", "segments", "tags")
CLEAR = "-"
"""The cell that clears ``team`` or ``manager_email``."""

_LIST_SPLIT = re.compile(r"[;,|]")
_TRUE = frozenset({"yes", "y", "true", "1", "active"})
_FALSE = frozenset({"no", "n", "false", "0", "inactive"})


def parse_hours_text(text: str) -> dict[str, list[str]]:
    """Working hours written as ``DAYS=SPANS`` (or ``DAYS SPANS``) parts separated by
    ``;``: ``mon-fri=09:00-17:00; sat=10:00-14:00``. ``ValueError`` naming the part
    it cannot read. The spans themselves are checked by the rep model."""
    spec: dict[str, list[str]] = {}
    parts = [p.strip() for p in text.split(";") if p.strip()]
    if not parts:
        raise ValueError("write working hours as mon-fri=09:00-17:00; sat=10:00-14:00")
    for part in parts:
        match = re.fullmatch(r"([a-z,\- ]+?)\s*(?:=|\s)\s*([0-9:,\- ]+)", part.lower())
        if match is None:
            raise ValueError(
                f"cannot read {part!r}: write DAYS=HH:MM-HH:MM[,HH:MM-HH:MM], "
                "e.g. mon-fri=09:00-17:00"
            )
        days_text, spans = match.group(1), match.group(2)
        for piece in days_text.split(","):
            first, dash, last = (x.strip() for x in piece.partition("-"))
            if first not in WEEKDAYS or (dash and last not in WEEKDAYS):
                raise ValueError(
                    f"unknown day in {piece.strip()!r}; days are {' '.join(WEEKDAYS)} "
                    "(a range: mon-fri)"
                )
            start = WEEKDAYS.index(first)
            end = WEEKDAYS.index(last) if dash else start
            if end < start:
                raise ValueError(f"{piece.strip()} runs backwards; write e.g. mon-fri")
            for day in WEEKDAYS[start : end + 1]:
                spec.setdefault(day, []).extend(
                    s.replace(" ", "") for s in spans.split(",") if s.strip()
                )
    return spec


def rep_input(raw: Mapping[str, Any], *, exists: bool) -> dict[str, Any]:
    """A row's cells as the input of :class:`~baton.domain.reps.RepCreate` (a new rep)
    or :class:`~baton.domain.reps.RepUpdate` (``exists``: only the cells given).
    ``ValueError`` for a cell that cannot be read (hours, active)."""
    data: dict[str, Any] = {}
    for name, value in raw.items():
        if name not in REP_COLUMNS or not isinstance(value, str) or not value.strip():
            continue
        text = value.strip()
        if name in ("team", "manager_email") and text == CLEAR:
            if exists:
                data[name] = None
            continue
        if name == "email" and exists:
            continue
        if name == "working_hours":
            data[name] = parse_hours_text(text)
        elif name in LIST_FIELDS:
            data[name] = [p.strip() for p in _LIST_SPLIT.split(text) if p.strip()]
        elif name == "active":
            folded = text.casefold()
            if folded not in _TRUE | _FALSE:
                raise ValueError(f"active: write yes or no, not {text!r}")
            data[name] = folded in _TRUE
        elif name == "status":
            data[name] = text.casefold()
        else:
            data[name] = text
    return data
