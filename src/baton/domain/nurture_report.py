"""The nurture report: per sequence, what nurture did in a period, and how many of the
period's opportunities came through it. Pure: no I/O.

:mod:`baton.services.nurture_reports` counts in SQL; this module states the
definitions, builds the rows (one per sequence, zeros included, and a total) and the
rates. Every figure counts what *happened in the period* (a flow, like the funnel's
``flow`` mode), so an email sent in March and opened in April is sent in March's
report and opened in April's:

``enrolled``
    enrollments that started in the period.
``sent``
    steps whose email the SMTP server accepted in the period (a step is one row of the
    send log, so a retry never counts twice).
``opened`` / ``clicked``
    unique: steps (enrollment and step) with at least one open (click) recorded in the
    period by the signed pixel (click link) of that step. A scanner that opens every
    link counts once per step, however often it comes back.
``unsubscribed`` / ``hard_bounced``
    enrollments whose lead unsubscribed (hard-bounced) in the period: an enrollment
    that ended for that reason, or a lead's unsubscribe (bounce) after the enrollment
    ended, credited to the lead's latest enrollment that started before it.
``returned_to_sales``
    enrollments whose lead became an MQL again in the period (by score, a hand-raise
    or a reply), or that sales took back (a handoff opened, a rep claimed the lead),
    credited to the lead's latest enrollment that started before it.
``opportunities``
    leads whose first move into ``opportunity`` in the period came after they were
    enrolled (credited to their latest enrollment before it).

And over all sequences (:class:`OpportunityShare`): of the distinct leads that moved
into ``opportunity`` in the period, how many had been enrolled in nurture before
(``through_nurture``), their share, and the uplift: ``through_nurture / other``, the
"+20% opportunities" that recycling cold leads to nurture is said to bring, measured.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from baton.domain.reports import Report, share

TOTAL = "(all)"
"""The ``sequence`` of the total row."""

COUNTS: tuple[str, ...] = (
    "enrolled",
    "sent",
    "opened",
    "clicked",
    "unsubscribed",
    "hard_bounced",
    "returned_to_sales",
    "opportunities",
)
"""The counted columns, in the order a table shows them."""

RATES: tuple[str, ...] = ("open_rate", "click_rate", "unsubscribe_rate")
"""Per email sent in the period: ``opened``, ``clicked`` and ``unsubscribed`` over
``sent`` (``None`` when nothing was sent)."""


@dataclass(frozen=True)
class NurtureRow:
    """One sequence's figures in the period (see the module for each definition)."""

    sequence: str
    enrolled: int = 0
    sent: int = 0
    opened: int = 0
    clicked: int = 0
    unsubscribed: int = 0
    hard_bounced: int = 0
    returned_to_sales: int = 0
    opportunities: int = 0

    @property
    def open_rate(self) -> float | None:
        return share(self.opened, self.sent)

    @property
    def click_rate(self) -> float | None:
        return share(self.clicked, self.sent)

    @property
    def unsubscribe_rate(self) -> float | None:
        return share(self.unsubscribed, self.sent)

    def flat(self) -> dict[str, Any]:
        return {**asdict(self), **{name: getattr(self, name) for name in RATES}}


@dataclass(frozen=True)
class OpportunityShare:
    """Distinct leads that moved into ``opportunity`` in the period, and those of them
    enrolled in nurture before that move."""

    opportunities: int = 0
    through_nurture: int = 0

    @property
    def other(self) -> int:
        return self.opportunities - self.through_nurture

    @property
    def share(self) -> float | None:
        """``through_nurture / opportunities``."""
        return share(self.through_nurture, self.opportunities)

    @property
    def uplift(self) -> float | None:
        """``through_nurture / other``: how many more opportunities nurture brought on
        top of those that came another way (0.2 is "+20%")."""
        return share(self.through_nurture, self.other)

    def to_json(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "other": self.other,
            "share": self.share,
            "uplift": self.uplift,
        }


def nurture_rows(
    counts: Mapping[str, Mapping[str, int]], sequences: Iterable[str] = ()
) -> list[NurtureRow]:
    """One row per sequence, by name: every sequence in ``sequences`` (those of the
    active contract, shown with zeros when nothing happened) and every sequence with
    figures (an older contract's); ``counts`` maps a sequence to its counted columns.
    An unknown column is a programming error (``ValueError``)."""
    names = sorted({*sequences, *counts})
    rows = []
    for name in names:
        figures = dict(counts.get(name, {}))
        unknown = set(figures) - set(COUNTS)
        if unknown:
            raise ValueError(f"unknown nurture report columns: {sorted(unknown)}")
        rows.append(NurtureRow(name, **{k: int(v) for k, v in figures.items()}))
    return rows


def total_row(rows: Iterable[NurtureRow]) -> NurtureRow:
    """The sum of the rows (each figure counts enrollments, steps or leads credited to
    one sequence only, so the sum counts each once)."""
    sums = dict.fromkeys(COUNTS, 0)
    for row in rows:
        for name in COUNTS:
            sums[name] += getattr(row, name)
    return NurtureRow(TOTAL, **sums)


@dataclass(frozen=True)
class NurtureReport(Report):
    """The nurture report of a period: one row per sequence (``sequence`` set when the
    report was asked for one sequence), the total, and the opportunities' share."""

    sequence: str | None = None
    rows: list[NurtureRow] = field(default_factory=list)
    opportunities: OpportunityShare = field(default_factory=OpportunityShare)

    @property
    def total(self) -> NurtureRow:
        return total_row(self.rows)

    def columns(self) -> list[str]:
        return ["sequence", *COUNTS, *RATES]

    def to_json(self) -> dict[str, Any]:
        return {
            **self.header("nurture"),
            "sequence": self.sequence,
            "rows": [r.flat() for r in self.rows],
            "total": self.total.flat(),
            "opportunities": self.opportunities.to_json(),
        }
