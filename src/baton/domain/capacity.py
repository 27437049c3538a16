"""Capacity planning: how many reps, on which hours, to touch MQLs in time.

A discrete-event simulation of a week (or several) of MQL arrivals through **the real
routing decision** (:func:`baton.domain.routing.route_lead`: pools, rotation, working
hours, out of office, capacity), **the real SLA deadline**
(:func:`baton.domain.sla.deadline`, in the rep's business time) and **the real
business hours** (:mod:`baton.domain.business_hours`), on a simulated clock: nothing
here reads the clock or a database, so a week runs in a fraction of a second.

The model (also in the README, "Capacity planning"):

* MQLs arrive by a Poisson process whose rate is constant within each hour of the week
  (:func:`poisson_arrivals`, seeded), or at given moments (tests, replays).
* Each MQL is routed the moment it arrives, by ``route_lead`` on the simulated roster
  state (open handoffs, rotations, who works at that moment). Nobody can take it: it
  waits in the queue, oldest first, and is routed again whenever a rep finishes a lead
  or a shift starts (Baton's worker tries the queue every fraction of a second).
* A rep works their own handoffs one at a time, oldest first, and only within their
  working hours (a lead being worked when the shift ends is finished). The **touch** is
  the moment the rep starts on a lead; the lead then occupies the rep for
  ``minutes_per_lead``. A handoff counts against the rep's capacity from assignment until
  that work is done (in Baton it stays open until sales' verdict, days later: the
  simulation starts every rep with no open handoffs and ignores the accept step and the
  SLA ladder's reassignments).
* Speed to lead is arrival → touch (wall clock, what "touched within 5 minutes" means);
  "within the SLA" is touch ≤ the first-touch deadline fixed at assignment, as Baton's
  SLA report judges it.
"""

from __future__ import annotations

import heapq
import math
import random
import re
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from baton.domain.business_hours import (
    WEEKDAYS,
    LocalSpan,
    Schedule,
    WorkingHours,
    is_working,
    working_intervals,
)
from baton.domain.contract import HandoffContract, MqlTrigger, Pool, Routing, RoutingRule
from baton.domain.routing import Rep, Rotation, route_lead
from baton.domain.sla import deadline

WEEK_HOURS = 168
"""Hours in a week: an arrival pattern has one rate per hour, Monday 00:00 first."""

DEFAULT_MINUTES_PER_LEAD = 10.0
"""Work time per lead when neither the caller nor the history says."""

PLAN_TEAM = "capacity-plan"
"""The team of hypothetical reps (``--reps``) and of the reps a search adds: internal,
never shown (:func:`seat_text` and the waiting reasons say "hypothetical reps")."""

_DAY_NAMES = {name: index for index, name in enumerate(WEEKDAYS)}
_HOURS = re.compile(r"^(\d{1,2})(?::(\d{2}))?\s*-\s*(\d{1,2})(?::(\d{2}))?$")


# ------------------------------------------------------------------------ reading specs


def _days(text: str) -> list[int]:
    """``Mon-Fri`` / ``Sat`` / ``Mon,Wed`` / ``daily`` → weekday indexes."""
    text = text.strip().lower()
    if text in {"daily", "every day", "mon-sun", "all"}:
        return list(range(7))
    found: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if "-" in part:
            first, _, last = part.partition("-")
            a, b = _day(first), _day(last)
            if b < a:
                raise ValueError(f"days {part!r} run backwards (write Mon-Sun order)")
            found.extend(range(a, b + 1))
        else:
            found.append(_day(part))
    return sorted(set(found))


def _day(text: str) -> int:
    key = text.strip().lower()[:3]
    if key not in _DAY_NAMES:
        raise ValueError(f"unknown day {text.strip()!r}: use Mon, Tue, Wed, Thu, Fri, Sat, Sun")
    return _DAY_NAMES[key]


def _span(text: str) -> tuple[int, int]:
    """``09-17`` or ``09:30-17:00`` → minutes of the day ``(start, end)``."""
    match = _HOURS.match(text.strip())
    if match is None:
        raise ValueError(f"hours {text.strip()!r} must look like 09-17 or 09:30-17:00")
    start = int(match[1]) * 60 + int(match[2] or 0)
    end = int(match[3]) * 60 + int(match[4] or 0)
    if not (0 <= start < end <= 24 * 60):
        raise ValueError(f"hours {text.strip()!r} must start before they end, within 00-24")
    return start, end


def _day_and_span(text: str) -> tuple[list[int], tuple[int, int]]:
    parts = text.strip().split()
    if len(parts) == 1:
        if any(ch.isdigit() for ch in parts[0]):
            return list(range(7)), _span(parts[0])
        return _days(parts[0]), (0, 24 * 60)
    if len(parts) == 2:
        return _days(parts[0]), _span(parts[1])
    raise ValueError(f"{text.strip()!r}: expected 'DAYS HH-HH' such as 'Mon-Fri 09-17'")


def parse_rates(specs: Iterable[str]) -> tuple[float, ...]:
    """Arrival rates per hour of the week from ``'Mon-Fri 09-17=6'``, ``'Sat=1'``
    (MQLs per hour; hours not named have none; a later spec overrides an earlier one
    where they overlap). Hours are whole: ``09-17`` is 09:00 to 16:59."""
    rates = [0.0] * WEEK_HOURS
    for spec in specs:
        where, sep, value = spec.rpartition("=")
        if not sep or not where.strip():
            raise ValueError(f"rate {spec!r} must look like 'Mon-Fri 09-17=6' (MQLs per hour)")
        try:
            rate = float(value)
        except ValueError:
            raise ValueError(f"rate {spec!r}: {value.strip()!r} is not a number") from None
        if not math.isfinite(rate) or rate < 0:
            raise ValueError(f"rate {spec!r}: MQLs per hour must be 0 or more")
        days, (start, end) = _day_and_span(where)
        if start % 60 or end % 60:
            raise ValueError(f"rate {spec!r}: rates are per whole hour (09-17, not 09:30)")
        for day in days:
            for hour in range(start // 60, end // 60):
                rates[day * 24 + hour] = rate
    return tuple(rates)


def rates_from_csv(text: str) -> tuple[float, ...]:
    """168 rates (Monday 00:00 first) from CSV text: one row per hour of the week, the
    rate in the last column; a first row that is not a number is a header."""
    rows = [line.strip() for line in text.splitlines() if line.strip()]
    values: list[float] = []
    for number, row in enumerate(rows, start=1):
        cell = row.split(",")[-1].strip().strip('"')
        try:
            value = float(cell)
        except ValueError:
            if number == 1:
                continue
            raise ValueError(f"rates CSV row {number}: {cell!r} is not a number") from None
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"rates CSV row {number}: a rate must be 0 or more")
        values.append(value)
    if len(values) != WEEK_HOURS:
        raise ValueError(
            f"a rates CSV needs {WEEK_HOURS} rows (one per hour of the week, Monday 00:00 "
            f"first), found {len(values)}"
        )
    return tuple(values)


def parse_hours(text: str) -> WorkingHours:
    """A shift from ``'Mon-Fri 08-18'`` (several joined by ``;``: ``'Mon-Fri 08-12;
    Mon-Fri 13-17'``) as :class:`WorkingHours`."""
    spans: list[list[tuple[int, int]]] = [[] for _ in range(7)]
    for part in text.split(";"):
        if not part.strip():
            continue
        days, span = _day_and_span(part)
        for day in days:
            spans[day].append(span)
    if not any(spans):
        raise ValueError(f"hours {text!r} name no working time")
    return WorkingHours(tuple(tuple(_local(s) for s in sorted(day)) for day in spans))


def _local(span: tuple[int, int]) -> LocalSpan:
    start, end = span
    end_time = time.max if end == 24 * 60 else time(end // 60, end % 60)
    return time(start // 60, start % 60), end_time


def hours_text(hours: WorkingHours) -> str:
    """A shift as ``Mon-Fri 08:00-16:00`` (consecutive days with equal hours grouped)."""
    groups: list[tuple[int, int, tuple[LocalSpan, ...]]] = []
    for index, day in enumerate(hours.days):
        if not day:
            continue
        if groups and groups[-1][1] == index - 1 and groups[-1][2] == day:
            groups[-1] = (groups[-1][0], index, day)
        else:
            groups.append((index, index, day))
    parts = []
    for first, last, day in groups:
        names = WEEKDAYS[first].title()
        if last != first:
            names += "-" + WEEKDAYS[last].title()
        text = ", ".join(
            f"{s.strftime('%H:%M')}-{'24:00' if e == time.max else e.strftime('%H:%M')}"
            for s, e in day
        )
        parts.append(f"{names} {text}")
    return "; ".join(parts) or "(never)"


# ------------------------------------------------------------------------------ arrivals


def week_start(moment: datetime, timezone: str) -> datetime:
    """The first Monday 00:00 (in ``timezone``) at or after ``moment``, as UTC: the
    week a plan simulates (the roster's absences in it apply)."""
    zone = ZoneInfo(timezone)
    local = moment.astimezone(zone)
    monday = local.date() - timedelta(days=local.weekday())
    start = datetime.combine(monday, time(0), zone)
    if start < moment:
        start = datetime.combine(monday + timedelta(days=7), time(0), zone)
    return start.astimezone(ZoneInfo("UTC"))


def hour_of_week(moment: datetime, timezone: str) -> int:
    """0 (Monday 00:00-00:59 in ``timezone``) to 167."""
    local = moment.astimezone(ZoneInfo(timezone))
    return local.weekday() * 24 + local.hour


def rates_from_moments(
    moments: Iterable[datetime], *, weeks: int, timezone: str
) -> tuple[float, ...]:
    """Average MQLs per hour of the week over ``weeks`` weeks of past MQL moments."""
    counts = [0] * WEEK_HOURS
    for moment in moments:
        counts[hour_of_week(moment, timezone)] += 1
    return tuple(c / max(weeks, 1) for c in counts)


def bunched_hour(
    moments: Sequence[datetime], *, share: float = 0.5, minimum: int = 20
) -> tuple[datetime, int] | None:
    """The clock hour (UTC, on the hour) holding at least ``share`` of ``moments``, and
    at least ``minimum`` of them, with their count; ``None`` when none does. MQLs that
    arrive as leads do are spread over the weeks; half of them in one hour is an import
    that dated its MQLs when it ran."""
    if len(moments) < minimum:
        return None
    counts: dict[datetime, int] = {}
    for moment in moments:
        hour = moment.astimezone(ZoneInfo("UTC")).replace(minute=0, second=0, microsecond=0)
        counts[hour] = counts.get(hour, 0) + 1
    hour, count = max(counts.items(), key=lambda kv: (kv[1], kv[0]))
    if count < minimum or count < share * len(moments):
        return None
    return hour, count


def poisson_arrivals(
    rates: Sequence[float], *, start: datetime, weeks: int, timezone: str, rng: random.Random
) -> list[datetime]:
    """Arrival moments from ``start`` (a Monday 00:00 in ``timezone``) for ``weeks``
    weeks: within each local hour a Poisson process of that hour's rate (exponential
    gaps), so the count per hour is Poisson and the moments uniform within it."""
    zone = ZoneInfo(timezone)
    origin = start.astimezone(zone)
    found: list[datetime] = []
    for week in range(weeks):
        for index, rate in enumerate(rates):
            if rate <= 0:
                continue
            day, hour = divmod(index, 24)
            local_day = origin.date() + timedelta(days=week * 7 + day)
            begin = datetime.combine(local_day, time(hour), zone).astimezone(ZoneInfo("UTC"))
            offset = rng.expovariate(rate)
            while offset < 1.0:
                found.append(begin + timedelta(hours=offset))
                offset += rng.expovariate(rate)
    found.sort()
    return found


# ----------------------------------------------------------------------------- simulation


@dataclass(frozen=True)
class LeadSample:
    """A lead as routing reads it: its fields (country, attributes...) and score."""

    fields: Mapping[str, Any] = field(default_factory=dict)
    total: float | None = None
    grade: str | None = None
    account_owner_id: int | None = None


@dataclass(frozen=True)
class Outcome:
    """What happened to one MQL in the simulation. ``touched_at`` ``None``: never
    touched within the simulated horizon."""

    arrived_at: datetime
    assigned_at: datetime | None
    touched_at: datetime | None
    rep_id: int | None
    touch_due_at: datetime | None
    waited_reason: str | None = None

    @property
    def minutes(self) -> float | None:
        """Speed to lead: arrival → touch, minutes."""
        if self.touched_at is None:
            return None
        return (self.touched_at - self.arrived_at).total_seconds() / 60

    @property
    def within_sla(self) -> bool:
        return (
            self.touched_at is not None
            and self.touch_due_at is not None
            and self.touched_at <= self.touch_due_at
        )


@dataclass(frozen=True)
class Simulation:
    """Every MQL's outcome, in arrival order, and the figures drawn from them."""

    outcomes: tuple[Outcome, ...]

    @property
    def mqls(self) -> int:
        return len(self.outcomes)

    def share_within(self, minutes: float) -> float:
        """Share of MQLs touched within ``minutes`` of arriving (1.0 when none arrived)."""
        if not self.outcomes:
            return 1.0
        hit = sum(1 for o in self.outcomes if (m := o.minutes) is not None and m <= minutes + 1e-9)
        return hit / len(self.outcomes)

    @property
    def share_within_sla(self) -> float:
        if not self.outcomes:
            return 1.0
        return sum(1 for o in self.outcomes if o.within_sla) / len(self.outcomes)

    @property
    def share_touched(self) -> float:
        if not self.outcomes:
            return 1.0
        return sum(1 for o in self.outcomes if o.touched_at is not None) / len(self.outcomes)

    def percentile(self, p: float) -> float | None:
        """Nearest-rank percentile of speed to lead in minutes over every MQL (the
        untouched count as slower than any touched one: ``None`` when the rank falls on
        them)."""
        return percentile([o.minutes for o in self.outcomes], p)


def percentile(values: Sequence[float | None], p: float) -> float | None:
    """Nearest rank (``ceil(p/100 * n)``) with ``None`` as +infinity; ``None`` if empty."""
    if not values:
        return None
    ordered = sorted(values, key=lambda v: math.inf if v is None else v)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


HISTOGRAM_EDGES: tuple[float, ...] = (1, 5, 15, 60, 240, 1440)
"""Speed-to-lead bins, minutes: ≤1, ≤5, ≤15, ≤60, ≤240, ≤1440, later, never."""


HISTOGRAM_LABELS: tuple[str, ...] = (
    "≤ 1 min",
    "1-5 min",
    "5-15 min",
    "15-60 min",
    "1-4 h",
    "4-24 h",
    "> 24 h",
    "never",
)


def histogram(values: Sequence[float | None]) -> list[tuple[str, int]]:
    """Counts of speed to lead per :data:`HISTOGRAM_EDGES` bin, then later, never."""
    counts = [0] * len(HISTOGRAM_LABELS)
    for value in values:
        if value is None:
            counts[-1] += 1
            continue
        for index, edge in enumerate(HISTOGRAM_EDGES):
            if value <= edge + 1e-9:
                counts[index] += 1
                break
        else:
            counts[-2] += 1
    return list(zip(HISTOGRAM_LABELS, counts, strict=True))


def _why_waiting(reason: str, skips: Sequence[str]) -> str:
    """The routing reason with the commonest reason its reps were skipped
    (``nobody in team x is available: outside working hours (UTC)``)."""
    reason = reason.replace(f"nobody in team {PLAN_TEAM} is", "no hypothetical rep is")
    reason = reason.replace(f"team {PLAN_TEAM}", "the hypothetical reps")
    if not skips:
        return reason
    counts: dict[str, int] = {}
    for skip in skips:
        key = "at capacity" if skip.startswith("at capacity") else skip
        counts[key] = counts.get(key, 0) + 1
    return f"{reason}: {max(counts.items(), key=lambda kv: (kv[1], kv[0]))[0]}"


_FREE, _WAKE, _ARRIVE = 0, 1, 2
"""Event order at one moment: a rep finishing, then shifts starting, then arrivals."""


@dataclass
class _RepState:
    rep: Rep
    own: deque[tuple[int, datetime]] = field(default_factory=deque)
    busy: bool = False


def simulate(
    contract: HandoffContract,
    reps: Sequence[Rep],
    arrivals: Sequence[datetime],
    *,
    minutes_per_lead: float,
    leads: Sequence[LeadSample] = (),
    drain: timedelta = timedelta(days=7),
) -> Simulation:
    """Run the arrivals (sorted moments) through routing and the reps' work; the
    ``i``-th arrival is the lead ``leads[i % len(leads)]`` (an empty lead without
    samples). Runs until every MQL is touched or ``drain`` after the last arrival."""
    if minutes_per_lead <= 0 or not math.isfinite(minutes_per_lead):
        raise ValueError("minutes per lead must be more than 0")
    ordered = sorted(arrivals)
    if not ordered:
        return Simulation(())
    work = timedelta(minutes=minutes_per_lead)
    horizon = ordered[-1] + drain
    states = {r.id: _RepState(r) for r in reps}
    loads: dict[int, int] = {r.id: 0 for r in reps}
    rotations: dict[str, Rotation] = {}
    sla = contract.sla
    samples = list(leads) or [LeadSample()]
    arrived = list(ordered)
    assigned: list[datetime | None] = [None] * len(ordered)
    touched: list[datetime | None] = [None] * len(ordered)
    rep_of: list[int | None] = [None] * len(ordered)
    due: list[datetime | None] = [None] * len(ordered)
    reasons: list[str | None] = [None] * len(ordered)
    pools: list[str] = [""] * len(ordered)
    queue: deque[int] = deque()
    untouched = len(ordered)
    events: list[tuple[datetime, int, int, int]] = []
    sequence = 0

    def push(at: datetime, kind: int, subject: int) -> None:
        nonlocal sequence
        sequence += 1
        heapq.heappush(events, (at, kind, sequence, subject))

    for index, moment in enumerate(ordered):
        push(moment, _ARRIVE, index)
    for state in states.values():
        rep = state.rep
        if not rep.active or rep.status == "away":
            continue
        for start, _ in working_intervals(rep.schedule, ordered[0], horizon):
            if start > ordered[0]:
                push(start, _WAKE, rep.id)

    def route(index: int, now: datetime) -> bool:
        sample = samples[index % len(samples)]
        decision = route_lead(
            contract,
            sample.fields,
            lead_id=index + 1,
            total=sample.total,
            grade=sample.grade,
            reps=reps,
            loads=loads,
            rotations=rotations,
            now=now,
            account_owner_id=sample.account_owner_id,
        )
        if decision.rep_id is None:
            reasons[index] = _why_waiting(decision.reason, [s.reason for s in decision.skipped])
            pools[index] = decision.pool_key or ""
            return False
        rep = states[decision.rep_id].rep
        assigned[index] = now
        rep_of[index] = rep.id
        due[index] = deadline(
            rep.schedule, now, sla.first_touch_within_minutes, business_hours=sla.business_hours
        )
        loads[rep.id] += 1
        states[rep.id].own.append((index, now))
        start_work(rep.id, now)
        return True

    def start_work(rep_id: int, now: datetime) -> None:
        state = states[rep_id]
        if state.busy or not state.own or state.rep.status == "away":
            return
        if not is_working(state.rep.schedule, now):
            return
        nonlocal untouched
        index, _ = state.own.popleft()
        touched[index] = now
        untouched -= 1
        state.busy = True
        push(now + work, _FREE, rep_id)

    def retry_queue(now: datetime) -> None:
        if not queue:
            return
        stuck: set[str] = set()
        kept: deque[int] = deque()
        for index in queue:
            if pools[index] in stuck:
                kept.append(index)
            elif not route(index, now):
                stuck.add(pools[index])
                kept.append(index)
        queue.clear()
        queue.extend(kept)

    while events:
        now, kind, _, subject = heapq.heappop(events)
        if now > horizon:
            break
        if kind == _ARRIVE:
            if not route(subject, now):
                queue.append(subject)
        elif kind == _FREE:
            state = states[subject]
            state.busy = False
            loads[subject] -= 1
            start_work(subject, now)
            retry_queue(now)
        else:
            start_work(subject, now)
            retry_queue(now)
        if untouched == 0:
            break
    return Simulation(
        tuple(
            Outcome(arrived[i], assigned[i], touched[i], rep_of[i], due[i], reasons[i])
            for i in range(len(ordered))
        )
    )


# ----------------------------------------------------------------------------- staffing


def plan_contract(contract: HandoffContract | None) -> HandoffContract:
    """The contract of a hypothetical roster: one round-robin rule over
    :data:`PLAN_TEAM`, with the SLA of ``contract`` (the active one) when given."""
    base = contract or HandoffContract(
        schema_version=1, name="capacity plan", mql=MqlTrigger(threshold=0)
    )
    routing = Routing(
        account_matching=False,
        rules=[RoutingRule(name="capacity plan", pool=Pool(team=PLAN_TEAM))],
    )
    return base.model_copy(update={"routing": routing})


PoolSeat = tuple[str | None, frozenset[str]]
"""Where an added rep sits: their team and tags (what routing pools name)."""


def hypothetical_reps(
    count: int,
    hours: WorkingHours,
    *,
    timezone: str,
    capacity: int,
    first_id: int = 1_000_000,
    seat: PoolSeat = (PLAN_TEAM, frozenset()),
) -> list[Rep]:
    """``count`` reps on ``hours`` in ``timezone``, of the team and tags of ``seat``
    (default: :data:`PLAN_TEAM`)."""
    schedule = Schedule(timezone, hours)
    return [
        Rep(
            id=first_id + n,
            email=f"planned-{first_id + n}@capacity.plan",
            name=f"Planned rep {n + 1}",
            schedule=schedule,
            team=seat[0],
            tags=seat[1],
            capacity=capacity,
        )
        for n in range(count)
    ]


def candidate_shifts(rates: Sequence[float], *, length: int = 8) -> list[WorkingHours]:
    """``length``-hour blocks on Mon-Fri and on Sat-Sun, starting every 4 hours
    and at the first busy hour (and ending at the last), that cover at least one hour
    with arrivals."""
    day_sets = (list(range(5)), [5, 6])
    found: list[WorkingHours] = []
    for days in day_sets:
        busy = [h for h in range(24) if any(rates[d * 24 + h] > 0 for d in days)]
        starts = set(range(0, 24 - length + 1, 4))
        if busy:
            # Also the blocks that start with the first busy hour and end with the last.
            starts |= {min(busy, default=0), max(busy) + 1 - length}
        for start in sorted(s for s in starts if 0 <= s <= 24 - length):
            covered = sum(rates[d * 24 + h] for d in days for h in range(start, start + length))
            if covered <= 0:
                continue
            spans = [
                (((_local((start * 60, (start + length) * 60))),) if d in days else ())
                for d in range(7)
            ]
            found.append(WorkingHours(tuple(spans)))
    return found


def seats_of(contract: HandoffContract) -> list[PoolSeat]:
    """The teams and tags the contract's routing pools name, in rule order: where a
    rep added by a search can sit (pools naming reps by email take no newcomer)."""
    found: list[PoolSeat] = []
    for rule in contract.routing.rules:
        pool = rule.pool
        seat: PoolSeat | None = None
        if pool.team is not None:
            seat = (pool.team, frozenset())
        elif pool.tag is not None:
            seat = (None, frozenset({pool.tag}))
        if seat is not None and seat not in found:
            found.append(seat)
    return found


def seat_text(seat: PoolSeat) -> str:
    team, tags = seat
    if team == PLAN_TEAM:
        return "hypothetical reps"
    if team is not None:
        return f"team {team}"
    return "tag " + ", ".join(sorted(tags)) if tags else "no team"


def covers(hours: WorkingHours) -> list[bool]:
    """Which hours of the week (Monday 00:00 first) a shift works at their start."""
    found = []
    for day in range(7):
        for hour in range(24):
            moment = time(hour)
            found.append(any(s <= moment < e for s, e in hours.days[day]))
    return found


def load_floor(
    rates: Sequence[float], shifts: Sequence[WorkingHours], *, minutes_per_lead: float
) -> list[WorkingHours]:
    """The fewest reps (greedily) on ``shifts`` so that every hour of the week has at
    least its offered load, ``ceil(rate × minutes_per_lead / 60)`` reps working: below
    that the hour's leads pile up whatever the routing does. The search starts there
    rather than from zero, which saves most of its simulations."""
    need = [math.ceil(rate * minutes_per_lead / 60 - 1e-9) for rate in rates]
    coverage = [covers(s) for s in shifts]
    chosen: list[WorkingHours] = []
    while shifts:
        gains = [sum(1 for h, c in enumerate(cover) if c and need[h] > 0) for cover in coverage]
        best = max(range(len(shifts)), key=lambda i: (gains[i], -i))
        if gains[best] == 0:
            break
        chosen.append(shifts[best])
        need = [n - 1 if coverage[best][h] else n for h, n in enumerate(need)]
    return chosen


@dataclass(frozen=True)
class SearchStep:
    """A step of the search: the shift of the rep it added (the floor's last, for the
    floor), the share after it, and how many reps were added by then."""

    hours: WorkingHours
    share: float
    added: int
    seat: PoolSeat = (PLAN_TEAM, frozenset())


def search_staffing(
    evaluate: Callable[[list[Rep]], float],
    base: Sequence[Rep],
    shifts: Sequence[WorkingHours],
    *,
    target: float,
    timezone: str,
    capacity: int,
    max_added: int,
    floor: Sequence[WorkingHours] = (),
    seats: Sequence[PoolSeat] = ((PLAN_TEAM, frozenset()),),
    on_step: Callable[[int, float], None] | None = None,
) -> tuple[list[Rep], list[SearchStep], bool]:
    """Greedy: start with the reps on ``floor`` (see :func:`load_floor`; in the first
    of ``seats``), then add one rep at a time on the shift of ``shifts`` and in the
    seat of ``seats`` (a team or tag a routing pool names) whose rep raises
    ``evaluate(roster)`` most (ties: the earlier), until the target is met or
    ``max_added`` reps were added. Returns the added reps, the steps and whether the
    target was met."""
    added: list[Rep] = []
    steps: list[SearchStep] = []

    def rep_on(hours: WorkingHours, seat: PoolSeat) -> Rep:
        [rep] = hypothetical_reps(
            1,
            hours,
            timezone=timezone,
            capacity=capacity,
            first_id=1_000_000 + len(added),
            seat=seat,
        )
        return rep

    for hours in floor:
        added.append(rep_on(hours, seats[0]))
    share = evaluate([*base, *added])
    if floor:
        steps.append(SearchStep(floor[-1], share, len(added), seats[0]))
    if on_step:
        on_step(len(added), share)
    openings = [(hours, seat) for seat in seats for hours in shifts]
    while share < target and len(added) < max_added and openings:
        best: tuple[float, int, Rep] | None = None
        for position, (hours, seat) in enumerate(openings):
            candidate = rep_on(hours, seat)
            value = evaluate([*base, *added, candidate])
            if best is None or value > best[0] + 1e-12:
                best = (value, position, candidate)
        assert best is not None
        share = best[0]
        added.append(best[2])
        hours, seat = openings[best[1]]
        steps.append(SearchStep(hours, share, len(added), seat))
        if on_step:
            on_step(len(added), share)
    return added, steps, share >= target


def staffing_table(reps: Sequence[Rep], start: datetime, timezone: str) -> list[list[int]]:
    """Reps working per local day (Monday first) and hour in the week from ``start``
    (a Monday 00:00 in ``timezone``), counted at each hour's first minute."""
    zone = ZoneInfo(timezone)
    origin = start.astimezone(zone)
    table = [[0] * 24 for _ in range(7)]
    for day in range(7):
        for hour in range(24):
            local = datetime.combine(origin.date() + timedelta(days=day), time(hour), zone)
            moment = local.astimezone(ZoneInfo("UTC"))
            table[day][hour] = sum(
                1
                for r in reps
                if r.active and r.status != "away" and is_working(r.schedule, moment)
            )
    return table
