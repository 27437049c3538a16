"""Reports: the periods and filters they take, the rows they return, and the little
arithmetic (conversion, shares, nearest-rank percentiles) that both the SQL and the
documentation rely on. Pure: no I/O.

Every figure is computed in SQL by :mod:`baton.services.reports`; the helpers here
state the definitions (``nearest_rank`` is the rank the SQL picks) and format rows.

Periods are half-open ``[start, end)`` in UTC, usually built from local dates in a
time zone (``from_dates``): a report for March in Europe/Paris starts at local
midnight of 1 March and ends at local midnight of 1 April. Every report echoes the
zone it was asked in.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, date, datetime, time
from typing import Any, Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

GroupBy = Literal["source", "campaign", "team", "rep", "country", "contract_version", "grade"]
GROUP_BY: tuple[str, ...] = get_args(GroupBy)
ATTRIBUTE_GROUP = "attributes."
"""``group_by=attributes.NAME`` groups by one of the leads' free-form attributes (as
text: ``landing_page``, ``segment``, ``lead_type``...). Attributes are free-form, so a
name no lead carries is not an error: every lead falls in the one group ``None`` (no
value), a labelled result that shows the name matched nothing."""
ATTRIBUTE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_\- ]{0,99}")
"""An attribute name reports group by: what an import keeps as a column name."""
GROUP_BY_PATTERN = (
    "^(" + "|".join(GROUP_BY) + "|attributes\\." + ATTRIBUTE_NAME.pattern + ")$"
)
"""Every value ``group_by`` takes, as a regular expression (for the API's schema)."""
FunnelMode = Literal["cohort", "flow"]
FUNNEL_MODES: tuple[str, ...] = get_args(FunnelMode)

FUNNEL: tuple[str, ...] = ("lead", "mql", "sal", "sql", "opportunity", "customer")
"""The main road, in order. A lead reaches a stage only from the one before it."""
SIDE_STAGES: tuple[str, ...] = ("nurture", "disqualified", "lost")
STAGE_BITS: dict[str, int] = {
    "mql": 1,
    "sal": 2,
    "sql": 4,
    "opportunity": 8,
    "customer": 16,
    "nurture": 32,
    "disqualified": 64,
    "lost": 128,
}
"""One bit per stage a lead can move into: the stages a lead ever reached are one
integer (``leads.reached_stages``). Stored, so a bit never changes meaning."""
OUTCOME_BITS: dict[str, int] = {
    "rejected": 1,
    "rejected_without_credit": 2,
    "closed_unaccepted": 4,
    "open": 8,
}
"""What sales did with a lead's chains of handoffs, one bit each, kept on the lead
(``leads.handoff_outcomes``): one was rejected; one was rejected without credit for
marketing; one closed without being accepted or rejected; one is open. Stored, so a
bit never changes meaning."""
MILESTONE_STAGES: tuple[str, ...] = FUNNEL[1:]
"""The stages whose first moment is kept on the lead (``leads.<stage>_at``)."""
CONVERSIONS: tuple[tuple[str, str], ...] = (
    *itertools.pairwise(FUNNEL),
    ("lead", "customer"),
)
COST_GROUP_BY: tuple[str, ...] = ("source", "campaign")

Group = str | int | None
"""The value of the group_by dimension for a row; ``None`` for leads without one (and
for the single row of an ungrouped report)."""


def zone(name: str) -> ZoneInfo:
    """The IANA zone ``name`` or ``ValueError`` naming the problem."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {name!r} (use an IANA name like Europe/Paris or UTC)"
        ) from None


@dataclass(frozen=True)
class ReportPeriod:
    """``[start, end)`` in UTC, and the zone the period was given in."""

    start: datetime
    end: datetime
    timezone: str = "UTC"

    def __post_init__(self) -> None:
        zone(self.timezone)
        for name in ("start", "end"):
            value = getattr(self, name)
            if value.tzinfo is None:
                raise ValueError(f"{name} must carry a time zone")
            object.__setattr__(self, name, value.astimezone(UTC))
        if self.end <= self.start:
            raise ValueError(
                f"the period must end after it starts (from {self.start.isoformat()} "
                f"to {self.end.isoformat()})"
            )

    @classmethod
    def from_dates(cls, start: date, end: date, timezone: str = "UTC") -> ReportPeriod:
        """Local midnight of ``start`` to local midnight of ``end`` (exclusive) in
        ``timezone``, as UTC. ``ValueError`` if ``end <= start`` or the zone is
        unknown."""
        tz = zone(timezone)
        if end <= start:
            raise ValueError(
                f"'to' must be after 'from' (to is exclusive): got from {start.isoformat()} "
                f"to {end.isoformat()}"
            )
        return cls(
            datetime.combine(start, time(0), tz).astimezone(UTC),
            datetime.combine(end, time(0), tz).astimezone(UTC),
            timezone,
        )

    @property
    def first_day(self) -> date:
        """The local date the period starts on."""
        return self.start.astimezone(zone(self.timezone)).date()

    @property
    def end_day(self) -> date:
        """The first local date after the period (exclusive), counting a partly covered
        last day as covered."""
        local = self.end.astimezone(zone(self.timezone))
        day = local.date()
        if local.time() != time(0):
            day = date.fromordinal(day.toordinal() + 1)
        return day

    def to_json(self) -> dict[str, Any]:
        return {
            "from": self.first_day.isoformat(),
            "to": self.end_day.isoformat(),
            "timezone": self.timezone,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
        }


@dataclass(frozen=True)
class ReportFilters:
    """Only leads (or handoffs) matching every given value. ``source``, ``campaign`` and
    ``country`` are the lead's first-touch fields; ``team`` and ``rep`` (an email) are
    those of the handoff's rep (for lead-based reports, the lead's first handoff);
    ``contract_version`` is the version of the lead's first MQL transition (funnel,
    velocity, cost) or of the handoff."""

    source: str | None = None
    campaign: str | None = None
    team: str | None = None
    rep: str | None = None
    country: str | None = None
    contract_version: int | None = None

    def __post_init__(self) -> None:
        if self.source is not None:
            from baton.domain.leads import fold_source

            object.__setattr__(self, "source", fold_source(self.source))
        if self.rep is not None:
            object.__setattr__(self, "rep", self.rep.strip().lower())
        if self.country is not None:
            object.__setattr__(self, "country", self.country.strip().upper())

    def given(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


def attribute_group(value: str | None) -> str | None:
    """The attribute name of ``attributes.NAME`` (``None`` for any other value)."""
    if value is None or not value.startswith(ATTRIBUTE_GROUP):
        return None
    return value[len(ATTRIBUTE_GROUP) :]


def check_group_by(value: str | None, allowed: tuple[str, ...] = GROUP_BY) -> Any:
    """``value`` if it is a dimension reports can group by (or ``None``), else
    ``ValueError`` listing them. The lead-based dimensions (:data:`GROUP_BY`) also
    take ``attributes.NAME`` (see :data:`ATTRIBUTE_GROUP`)."""
    if value is None or value in allowed:
        return value
    takes_attributes = allowed == GROUP_BY
    name = attribute_group(value)
    if takes_attributes and name is not None:
        if ATTRIBUTE_NAME.fullmatch(name):
            return value
        raise ValueError(
            f"cannot group by {value!r}: an attribute name is 1 to 100 letters, digits, "
            "_, - or spaces (attributes.landing_page)"
        )
    more = ", or attributes.NAME (any lead attribute)" if takes_attributes else ""
    raise ValueError(f"cannot group by {value!r}; use one of {', '.join(allowed)}{more}")


def nearest_rank(p: int, n: int) -> int:
    """The 1-based rank of the ``p``-th percentile among ``n`` sorted values:
    ``ceil(p/100 * n)`` (at least 1), in integer arithmetic exactly as the SQL does."""
    return max(1, (p * n + 99) // 100)


def percentile(values: list[float], p: int) -> float | None:
    """The nearest-rank percentile of ``values`` (``None`` when empty); the median is
    ``percentile(values, 50)``."""
    if not values:
        return None
    return sorted(values)[nearest_rank(p, len(values)) - 1]


def share(part: float, whole: float) -> float | None:
    """``part / whole``, or ``None`` when ``whole`` is 0."""
    return part / whole if whole else None


def per(amount: float, count: int) -> float | None:
    """Money per unit (cost per lead...), rounded to the cent; ``None`` when ``count``
    is 0."""
    return round(amount / count, 2) if count else None


def conversion(counts: Mapping[str, int]) -> dict[str, float | None]:
    """``count(next) / count(previous)`` for each step of the funnel, and lead →
    customer overall; ``None`` where the previous count is 0."""
    return {f"{a}→{b}": share(counts.get(b, 0), counts.get(a, 0)) for a, b in CONVERSIONS}


PERCENTILES: tuple[int, ...] = (50, 90)
"""The percentiles reports give (median and p90)."""


def minutes(seconds: float | None) -> float | None:
    return None if seconds is None else round(float(seconds) / 60, 4)


def hours(seconds: float | None) -> float | None:
    return None if seconds is None else round(float(seconds) / 3600, 4)


def group_order(group: Group) -> tuple[int, str, float]:
    """Rows sort by group value, with ``None`` last (the same on every database)."""
    if group is None:
        return (2, "", 0.0)
    if isinstance(group, int):
        return (0, "", float(group))
    return (1, group, 0.0)


# --- rows and reports -------------------------------------------------------------------


@dataclass(frozen=True)
class Report:
    """What every report carries: the period, its zone, the grouping and the filters."""

    period: ReportPeriod
    group_by: str | None
    filters: ReportFilters

    @property
    def timezone(self) -> str:
        return self.period.timezone

    def columns(self) -> list[str]:
        """The keys of the flat rows of ``to_json()`` (for CSV headers)."""
        rows = getattr(self, "rows", None)
        if rows:
            return list(rows[0].flat())
        return list(_COLUMNS.get(type(self).__name__, ("group",)))

    def header(self, name: str) -> dict[str, Any]:
        return {
            "report": name,
            "period": self.period.to_json(),
            "timezone": self.timezone,
            "group_by": self.group_by,
            "filters": self.filters.given(),
        }


@dataclass(frozen=True)
class FunnelRow:
    group: Group
    counts: dict[str, int]
    conversion: dict[str, float | None]

    def flat(self) -> dict[str, Any]:
        return {"group": self.group, **self.counts, **self.conversion}


@dataclass(frozen=True)
class FunnelReport(Report):
    mode: FunnelMode = "cohort"
    rows: list[FunnelRow] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            **self.header("funnel"),
            "mode": self.mode,
            "rows": [r.flat() for r in self.rows],
        }


@dataclass(frozen=True)
class VelocityRow:
    """One step of the funnel: ``leads`` that made it, the median and p90 of their
    durations, and ``negative_durations``: how many of those leads entered the later
    stage **before** the earlier one (history loaded around Baton, clocks that
    disagree). They are counted, never dropped, and left out of the percentiles, which
    a negative time would drag below anything that happened."""

    group: Group
    from_stage: str
    to_stage: str
    leads: int
    median_hours: float | None
    p90_hours: float | None
    negative_durations: int = 0

    def flat(self) -> dict[str, Any]:
        return asdict(self)


def negative_note(count: int) -> str | None:
    """The data-quality line of a report with ``count`` negative durations (``None``
    when there are none)."""
    if not count:
        return None
    steps = "1 step went" if count == 1 else f"{count:,} steps went"
    return (
        f"{steps} backwards in time (the later stage is dated before the earlier one): "
        "counted in leads, left out of the medians and p90s"
    )


@dataclass(frozen=True)
class VelocityReport(Report):
    rows: list[VelocityRow] = field(default_factory=list)

    @property
    def negative_durations(self) -> int:
        """Steps of the report's leads that went backwards in time, all rows together."""
        return sum(r.negative_durations for r in self.rows)

    def to_json(self) -> dict[str, Any]:
        return {
            **self.header("velocity"),
            "rows": [r.flat() for r in self.rows],
            "data_quality": {
                "negative_durations": self.negative_durations,
                "note": negative_note(self.negative_durations),
            },
        }


@dataclass(frozen=True)
class SpeedRow:
    group: Group
    handoffs: int
    touched: int
    median_minutes: float | None
    p90_minutes: float | None
    within_5m: float | None
    within_1h: float | None
    within_24h: float | None
    system_median_minutes: float | None
    system_p90_minutes: float | None
    rep_median_minutes: float | None
    rep_p90_minutes: float | None
    business_median_minutes: float | None
    business_p90_minutes: float | None

    def flat(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SpeedReport(Report):
    rows: list[SpeedRow] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {**self.header("speed_to_lead"), "rows": [r.flat() for r in self.rows]}


@dataclass(frozen=True)
class SlaRow:
    group: Group
    handoffs: int
    accepted_in_sla: int
    accepted_late: int
    not_accepted: int
    pending_accept: int
    """Open, not accepted yet, inside its window now: neither in time nor missed."""
    touched_in_sla: int
    touched_late: int
    not_touched: int
    pending_touch: int
    accepted_in_sla_share: float | None
    touched_in_sla_share: float | None
    reminders: int
    reassignments: int
    manager_notifications: int

    def flat(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SlaReport(Report):
    rows: list[SlaRow] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {**self.header("sla"), "rows": [r.flat() for r in self.rows]}


@dataclass(frozen=True)
class RejectionRow:
    group: Group
    code: str
    label: str
    outcome: str | None
    marketing_credit: bool | None
    count: int
    share: float | None

    def flat(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RecycleSummary:
    """Leads rejected with a ``recycle`` outcome in the period, and what became of
    them afterwards."""

    recycled: int = 0
    returned_as_mql: int = 0
    won: int = 0

    @property
    def uplift(self) -> float | None:
        return share(self.won, self.recycled)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "uplift": self.uplift}


@dataclass(frozen=True)
class RejectionReport(Report):
    rows: list[RejectionRow] = field(default_factory=list)
    recycled: RecycleSummary = field(default_factory=RecycleSummary)

    def to_json(self) -> dict[str, Any]:
        return {
            **self.header("rejections"),
            "rows": [r.flat() for r in self.rows],
            "recycled": self.recycled.to_json(),
        }


@dataclass(frozen=True)
class CreditRow:
    """Chains of the period and what became of them; ``won`` counts a chain whose lead
    became a customer while it was the lead's latest MQL, by a verdict or by hand;
    ``won_without_handoff`` the customers with no such chain (a duplicate merged in,
    history loaded around Baton), so that every customer is counted once:
    won + won_without_handoff = the customers whose winning MQL is in the period."""

    group: Group
    mqls: int
    rejected_without_credit: int
    credited_mqls: int
    accepted: int
    won: int
    acceptance_rate: float | None
    win_rate: float | None
    won_without_handoff: int = 0

    def flat(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class CreditReport(Report):
    rows: list[CreditRow] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {**self.header("marketing_credit"), "rows": [r.flat() for r in self.rows]}


@dataclass(frozen=True)
class CostRow:
    group: Group
    spend: float
    leads: int
    mqls: int
    sals: int
    sqls: int
    customers: int
    cost_per_lead: float | None
    cost_per_mql: float | None
    cost_per_sal: float | None
    cost_per_sql: float | None
    cost_per_customer: float | None
    net_mqls: int
    net_cost_per_mql: float | None

    def flat(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class CostOfGap:
    """What the leads lost between marketing and sales cost, and are worth."""

    spend_on_rejected: float = 0.0
    spend_on_expired: float = 0.0
    spend_on_dropped: float = 0.0
    leads_rejected: int = 0
    leads_expired: int = 0
    leads_dropped: int = 0
    average_deal_value: float | None = None
    win_rate: float | None = None
    expected_revenue_lost: float | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class CostReport(Report):
    rows: list[CostRow] = field(default_factory=list)
    gap: CostOfGap = field(default_factory=CostOfGap)
    currencies: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            **self.header("cost"),
            "currencies": self.currencies,
            "rows": [r.flat() for r in self.rows],
            "gap": self.gap.to_json(),
        }


@dataclass(frozen=True)
class SlaWeeklyReport(SlaReport):
    """SLA compliance week by week: one :class:`SlaRow` per week of the period (weeks
    start on Monday in the period's zone; the first and last may be partial), its
    ``group`` the week's first day in the period (``2026-03-02``), weeks without
    handoffs included with zeros."""

    def to_json(self) -> dict[str, Any]:
        return {**self.header("sla_weekly"), "rows": [r.flat() for r in self.rows]}


MAX_WEEKS = 262
"""The longest weekly report: about five years of weeks. A weekly chart of decades says
nothing a reader can see, and each week is a branch of the report's query, so an
unbounded period would let one request hold a worker for seconds."""


def weeks(period: ReportPeriod) -> list[ReportPeriod]:
    """The period cut at each local Monday midnight of its zone: the weeks of a
    weekly report, in order (the first from the period's start, the last up to its
    end)."""
    tz = zone(period.timezone)
    cuts = [period.start]
    day = period.first_day
    day = date.fromordinal(day.toordinal() + 7 - day.weekday())  # the next Monday
    while True:
        at = datetime.combine(day, time(0), tz).astimezone(UTC)
        if at >= period.end:
            break
        cuts.append(at)
        day = date.fromordinal(day.toordinal() + 7)
    cuts.append(period.end)
    return [ReportPeriod(a, b, period.timezone) for a, b in itertools.pairwise(cuts)]


SPEED_BUCKETS: tuple[tuple[str, str, int | None], ...] = (
    ("within_5m", "≤ 5 min", 300),
    ("within_1h", "5–60 min", 3600),
    ("within_24h", "1–24 h", 86400),
    ("later", "> 24 h", None),
    ("not_touched", "not touched", None),
)
"""The buckets of the speed-to-lead distribution: (key, label, upper bound in seconds,
included); ``later`` is every touch after 24 hours, ``not_touched`` the chains with no
touch yet."""


@dataclass(frozen=True)
class SpeedBucketRow:
    """How many chains (MQLs handed to a rep) were first touched within a bucket of
    time, and their share of the group's chains."""

    group: Group
    bucket: str
    label: str
    handoffs: int
    share: float | None

    def flat(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SpeedDistributionReport(Report):
    rows: list[SpeedBucketRow] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {**self.header("speed_distribution"), "rows": [r.flat() for r in self.rows]}


def _fields(row_type: type) -> tuple[str, ...]:
    return tuple(f.name for f in fields(row_type))


_COLUMNS: dict[str, tuple[str, ...]] = {
    "FunnelReport": ("group", *FUNNEL, *SIDE_STAGES, *(f"{a}→{b}" for a, b in CONVERSIONS)),
    "VelocityReport": _fields(VelocityRow),
    "SpeedReport": _fields(SpeedRow),
    "SlaReport": _fields(SlaRow),
    "RejectionReport": _fields(RejectionRow),
    "CreditReport": _fields(CreditRow),
    "CostReport": _fields(CostRow),
    "SlaWeeklyReport": _fields(SlaRow),
    "SpeedDistributionReport": _fields(SpeedBucketRow),
}

AnyReport = (
    FunnelReport
    | VelocityReport
    | SpeedReport
    | SlaReport
    | RejectionReport
    | CreditReport
    | CostReport
    | SlaWeeklyReport
    | SpeedDistributionReport
)


def cost_row(group: Group, spend: float, counts: Mapping[str, int], net_mqls: int) -> CostRow:
    """A cost row from the spend and the cohort's counts (costs per head, to the cent)."""
    spend = round(spend, 2)
    return CostRow(
        group=group,
        spend=spend,
        leads=counts.get("lead", 0),
        mqls=counts.get("mql", 0),
        sals=counts.get("sal", 0),
        sqls=counts.get("sql", 0),
        customers=counts.get("customer", 0),
        cost_per_lead=per(spend, counts.get("lead", 0)),
        cost_per_mql=per(spend, counts.get("mql", 0)),
        cost_per_sal=per(spend, counts.get("sal", 0)),
        cost_per_sql=per(spend, counts.get("sql", 0)),
        cost_per_customer=per(spend, counts.get("customer", 0)),
        net_mqls=net_mqls,
        net_cost_per_mql=per(spend, net_mqls),
    )


# --- spend ----------------------------------------------------------------------------


@dataclass(frozen=True)
class SpendEntry:
    """Money spent on a source (and optionally one campaign) over ``[starts_on,
    ends_on]`` (both days included); reports prorate it by days of overlap."""

    source: str
    campaign: str | None
    starts_on: date
    ends_on: date
    amount: float
    currency: str
    origin: Literal["import", "contract"] = "import"
    imported_at: datetime | None = None
    imported_by: str | None = None

    def key(self) -> tuple[str, str, date, date]:
        return (self.source, self.campaign or "", self.starts_on, self.ends_on)


def prorated(entry_start: date, entry_end: date, amount: float, first: date, end: date) -> float:
    """The part of ``amount`` (spent evenly over ``[entry_start, entry_end]``, both
    included) that falls in the days ``[first, end)``."""
    days = (entry_end - entry_start).days + 1
    overlap = (min(entry_end.toordinal() + 1, end.toordinal())) - max(
        entry_start.toordinal(), first.toordinal()
    )
    return amount * max(0, overlap) / days if days > 0 else 0.0
