"""Capacity planning, the use case (``baton plan capacity``, ``POST /api/v1/plan/capacity``).

Reads, in one read transaction, what the simulation needs: the roster as routing sees
it (schedules, out of office, capacity, pools), the active contract (routing rules and
SLA), the MQL arrivals of the last weeks (moments and a sample of the leads, so that
territory and score rules route as they do live) and the reps' median delay; then runs
:func:`baton.domain.capacity.simulate` in memory. Nothing is written.
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any

from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.engine import Connection

from baton.domain import capacity as cap
from baton.domain.access import Action, Principal
from baton.domain.business_hours import Schedule, WorkingHours
from baton.domain.contract import HandoffContract
from baton.domain.errors import FieldProblem, ValidationFailed
from baton.domain.routing import Rep
from baton.services.access import allowed
from baton.services.context import Context
from baton.services.contract_rules import active_rules_in
from baton.services.reps import account_owner, routing_reps
from baton.store.tables import handoffs, lead_scores, leads, transitions

MAX_ARRIVALS = 200_000
"""At most this many simulated MQLs per plan (rates × weeks simulated × runs)."""

MAX_SEARCH_ARRIVALS = 1_000_000
"""On the API, at most this many simulated MQLs over a whole search, counted at its
worst (every rep up to ``max_added`` tried on every shift and seat; about a minute on
two busy cores): the plan runs on the request's thread, so a search that could take
many minutes is refused up front. The CLI, in its own process, is not bound."""

DELAY_SAMPLES = 5_000
"""The rep delay (work per lead) is the median of this many recent touched handoffs."""

LEAD_SAMPLES = 500
"""At most this many recent MQL leads are replayed as the simulated leads' fields."""

DEFAULT_RUNS = 3
"""Seeded runs pooled when the request does not say, unless the volume is small."""

AUTO_RUNS_MQLS = 500
"""Without ``runs``, small volumes get more runs (up to :data:`MAX_RUNS`) until about
this many MQLs are simulated: 80 MQLs a week over 3 runs draw 90 to 103 a run, a share
that moves by several points from one seed to the next."""

MAX_RUNS = 20


class CapacityRequest(BaseModel):
    """What to plan. Arrivals: ``rates`` (``'Mon-Fri 09-17=6'``, MQLs per hour),
    ``rates_csv`` (168 rows), or else the MQLs of the last ``weeks`` weeks. Reps:
    ``reps`` hypothetical reps on ``hours``, or else the current roster and the active
    contract's routing. ``target``: search the reps to add (one at a time, on
    ``shift_hours``-hour shifts) until ``target`` of MQLs are touched within
    ``within`` minutes."""

    model_config = {
        "extra": "forbid",
        "json_schema_extra": {
            "examples": [
                {
                    "rates": ["Mon-Fri 09-17=6", "Sat=1"],
                    "reps": 3,
                    "hours": "Mon-Fri 08-18",
                    "timezone": "Europe/Berlin",
                    "minutes_per_lead": 10,
                    "within": 5,
                    "target": 0.9,
                    "runs": 1,
                    "max_added": 10,
                }
            ]
        },
    }

    weeks: int = Field(8, ge=1, le=104, description="Weeks of MQL history to read")
    rates: list[Annotated[str, Field(max_length=200)]] | None = Field(
        None,
        max_length=168,
        description="Arrival rates per hour of week, e.g. 'Mon-Fri 09-17=6'",
    )
    rates_csv: str | None = Field(
        None, max_length=20_000, description="168 rates, one row per hour of the week"
    )
    reps: int | None = Field(None, ge=0, le=1000, description="Hypothetical reps")
    hours: str = Field("Mon-Fri 09-17", max_length=500, description="The hypothetical reps' hours")
    timezone: str = Field(
        "UTC", max_length=64, description="IANA zone of rates, hours and the table"
    )
    capacity: int = Field(20, ge=1, le=10_000, description="Max open handoffs of a new rep")
    minutes_per_lead: float | None = Field(
        None, gt=0, le=1440, description="Work per lead; default from history, else 10"
    )
    within: float = Field(5, gt=0, le=100_000, description="Speed-to-lead goal, minutes")
    target: float | None = Field(None, gt=0, le=1, description="Share to reach (search)")
    shift_hours: int = Field(8, ge=1, le=24, description="Length of the searched shifts")
    max_added: int = Field(60, ge=1, le=500, description="At most this many reps added")
    weeks_simulated: int = Field(1, ge=1, le=12, description="Weeks per simulated run")
    runs: int | None = Field(
        None,
        ge=1,
        le=MAX_RUNS,
        description="Seeded runs, pooled; default 3, more for small volumes (about 500 "
        "MQLs simulated, at most 20 runs)",
    )
    seed: int = 7


@dataclass(frozen=True)
class PlannedShift:
    hours: str
    reps: int


@dataclass(frozen=True)
class SearchPoint:
    """After ``added`` reps (the first point: the load floor), the last one on
    ``hours``, ``share`` of MQLs were touched in time."""

    added: int
    hours: str
    share: float


@dataclass(frozen=True)
class CapacityPlan:
    """The simulated week(s): where arrivals came from, who worked, and how fast MQLs
    were touched (pooled over the runs)."""

    arrivals_from: str
    mqls_per_week: float
    rates: list[float]
    timezone: str
    week_of: datetime
    roster: str
    reps: int
    minutes_per_lead: float
    minutes_per_lead_from: str
    sla_minutes: float
    sla_business_hours: bool
    sla_from: str
    within: float
    runs: int
    mqls_expected: float
    """The MQLs the rates promise over the runs (the Poisson draws vary around it)."""
    mqls_simulated: int
    share_within: float
    share_within_sla: float
    share_touched: float
    p50_minutes: float | None
    p90_minutes: float | None
    p99_minutes: float | None
    histogram: list[tuple[str, int]]
    waiting_reasons: list[tuple[str, int]]
    staffing: list[list[int]]
    shifts: list[PlannedShift]
    target: float | None
    target_met: bool | None
    added: list[PlannedShift]
    search: list[SearchPoint]
    warnings: list[str]
    """What the reader must know to trust the plan: arrivals learnt from an import,
    the default SLA used for want of an active contract."""


def _refuse(loc: str, message: str) -> ValidationFailed:
    return ValidationFailed(message, [FieldProblem(loc, message)])


def _mql_history(
    connection: Connection, start: datetime, end: datetime
) -> tuple[list[datetime], list[int]]:
    rows = connection.execute(
        select(transitions.c.occurred_at, transitions.c.lead_id).where(
            transitions.c.to_stage == "mql",
            transitions.c.occurred_at >= start,
            transitions.c.occurred_at < end,
        )
    ).all()
    return [r[0] for r in rows], [int(r[1]) for r in rows]


def _samples(connection: Connection, lead_ids: Sequence[int], seed: int) -> list[cap.LeadSample]:
    unique = sorted(set(lead_ids))
    if len(unique) > LEAD_SAMPLES:
        unique = sorted(random.Random(seed).sample(unique, LEAD_SAMPLES))  # noqa: S311
    found: dict[int, cap.LeadSample] = {}
    for start in range(0, len(unique), 400):
        chunk = unique[start : start + 400]
        query = (
            select(leads, lead_scores.c.total.label("_total"), lead_scores.c.grade.label("_grade"))
            .select_from(leads.outerjoin(lead_scores, lead_scores.c.lead_id == leads.c.id))
            .where(leads.c.id.in_(chunk))
        )
        for row in connection.execute(query).mappings():
            fields = {k: v for k, v in row.items() if not k.startswith("_")}
            found[int(row["id"])] = cap.LeadSample(
                fields,
                row["_total"],
                row["_grade"],
                account_owner(connection, row.get("email_domain")),
            )
    return [found[i] for i in unique if i in found]


def _median_rep_minutes(connection: Connection) -> float | None:
    """The median rep delay of the last :data:`DELAY_SAMPLES` touched handoffs:
    assignment → first touch (the reports' rep delay starts at the notification, a
    fraction of a second later), in minutes."""
    rows = connection.execute(
        select(handoffs.c.assigned_at, handoffs.c.first_touch_at)
        .where(handoffs.c.assigned_at.is_not(None), handoffs.c.first_touch_at.is_not(None))
        .order_by(handoffs.c.id.desc())
        .limit(DELAY_SAMPLES)
    ).all()
    values = [max((touched - assigned).total_seconds(), 0.0) for assigned, touched in rows]
    if not values:
        return None
    median = statistics.median(values) / 60
    return median if median > 0 else None


def _rates(request: CapacityRequest, moments: Sequence[datetime]) -> tuple[tuple[float, ...], str]:
    try:
        if request.rates_csv is not None:
            return cap.rates_from_csv(request.rates_csv), "the given rates (CSV)"
        if request.rates:
            return cap.parse_rates(request.rates), "the given rates"
    except ValueError as error:
        raise _refuse("rates_csv" if request.rates_csv else "rates", str(error)) from None
    if not moments:
        raise _refuse(
            "rates",
            f"no MQL in the last {request.weeks} weeks to learn arrivals from: give the "
            "arrival rates (--rate 'Mon-Fri 09-17=6', MQLs per hour, or --rates-csv)",
        )
    rates = cap.rates_from_moments(moments, weeks=request.weeks, timezone=request.timezone)
    return rates, f"MQL history, last {request.weeks} weeks: {len(moments):,} MQLs"


def _import_warning(moments: Sequence[datetime]) -> str | None:
    """A warning when the history's MQLs are bunched in one clock hour (an import that
    dated its MQLs when it ran): their arrival pattern is the import's, not the
    leads'."""
    bunch = cap.bunched_hour(moments)
    if bunch is None:
        return None
    hour, count = bunch
    return (
        f"{count:,} of the {len(moments):,} MQLs in the history ({count / len(moments):.0%}) "
        f"became MQLs within one hour ({hour:%Y-%m-%d %H}:00 UTC): an import, not leads "
        "arriving, so the arrival pattern comes from the import; give the real one with "
        "--rate 'Mon-Fri 09-17=N' (MQLs per hour) or --rates-csv"
    )


def _runs(request: CapacityRequest, per_run: float) -> int:
    """The runs asked for, or :data:`DEFAULT_RUNS`, more for a small volume."""
    if request.runs is not None:
        return request.runs
    wanted = math.ceil(AUTO_RUNS_MQLS / per_run) if per_run > 0 else DEFAULT_RUNS
    return max(DEFAULT_RUNS, min(MAX_RUNS, wanted))


def plan_capacity(
    ctx: Context,
    request: CapacityRequest,
    *,
    actor: Principal,
    progress: Callable[[int, float], None] | None = None,
    max_search_arrivals: int | None = MAX_SEARCH_ARRIVALS,
) -> CapacityPlan:
    """Simulate the week(s) ahead with the real routing and SLA code; with a target,
    search the reps to add. ``progress(added, share)`` is told each search step. A
    search that could simulate more than ``max_search_arrivals`` MQLs is refused
    (None: no bound)."""
    allowed(actor, Action.PLAN_CAPACITY)
    try:
        Schedule(request.timezone, WorkingHours.always())
    except ValueError as error:
        raise _refuse("timezone", str(error)) from None
    try:
        hours = cap.parse_hours(request.hours)
    except ValueError as error:
        raise _refuse("hours", str(error)) from None
    now = ctx.clock.now()
    with ctx.read() as connection:
        version, active = active_rules_in(connection)
        moments, lead_ids = _mql_history(connection, now - timedelta(weeks=request.weeks), now)
        roster = [] if request.reps is not None else routing_reps(connection)
        samples = _samples(connection, lead_ids, request.seed)
        history_minutes = (
            _median_rep_minutes(connection) if request.minutes_per_lead is None else None
        )
    rates, arrivals_from = _rates(request, moments)
    contract: HandoffContract
    if request.reps is not None:
        if request.reps == 0 and request.target is None:
            raise _refuse("reps", "0 reps touch nothing: give --reps 1 or more, or a --target")
        contract = cap.plan_contract(active)
        base = cap.hypothetical_reps(
            request.reps, hours, timezone=request.timezone, capacity=request.capacity
        )
        plural = "" if request.reps == 1 else "s"
        roster_text = f"{request.reps} hypothetical rep{plural}, {cap.hours_text(hours)}"
        samples = []
    else:
        working = [r for r in roster if r.active]
        if not working:
            raise _refuse(
                "reps",
                "no active reps on the roster: add reps (baton rep add) or plan with "
                "hypothetical ones (--reps 5 --hours 'Mon-Fri 08-18')",
            )
        if active is None:
            raise _refuse(
                "reps",
                "no active contract, so no routing rules: activate one, or plan with "
                "hypothetical reps (--reps 5)",
            )
        contract = active
        base = roster
        roster_text = f"the current roster ({len(working)} active reps, contract v{version})"
    if request.minutes_per_lead is not None:
        minutes, minutes_from = request.minutes_per_lead, "given"
    elif history_minutes is not None:
        minutes, minutes_from = history_minutes, "median rep delay, assignment → first touch"
    else:
        minutes = cap.DEFAULT_MINUTES_PER_LEAD
        minutes_from = "Baton's default: no touched handoff in the history to measure"
    if sum(rates) <= 0:
        raise _refuse("rates", "every rate is 0: no MQL would arrive")
    per_run = sum(rates) * request.weeks_simulated
    runs = _runs(request, per_run)
    expected = per_run * runs
    if expected > MAX_ARRIVALS:
        raise _refuse(
            "rates",
            f"{expected:,.0f} MQLs to simulate ({sum(rates):,.0f} a week × "
            f"{request.weeks_simulated} weeks × {runs} runs) is more than "
            f"{MAX_ARRIVALS:,}: lower the rates, the weeks or the runs",
        )
    warnings: list[str] = []
    if not request.rates and request.rates_csv is None:
        bunched = _import_warning(moments)
        if bunched is not None:
            warnings.append(bunched)
    if version is None:
        sla_from = "Baton's default: no active contract"
        warnings.append(
            "no active contract: the SLA used is Baton's default, first touch within "
            f"{contract.sla.first_touch_within_minutes:g} minutes"
            f"{' of business time' if contract.sla.business_hours else ''}; activate a "
            "contract to plan with yours"
        )
    else:
        sla_from = f"contract v{version}"
    start = cap.week_start(now, request.timezone)
    arrival_runs = [
        cap.poisson_arrivals(
            rates,
            start=start,
            weeks=request.weeks_simulated,
            timezone=request.timezone,
            rng=random.Random(request.seed + run),  # noqa: S311
        )
        for run in range(runs)
    ]

    def run_all(reps: Sequence[Rep], runs: Sequence[list[datetime]]) -> list[cap.Outcome]:
        outcomes: list[cap.Outcome] = []
        for arrivals in runs:
            outcomes.extend(
                cap.simulate(
                    contract, reps, arrivals, minutes_per_lead=minutes, leads=samples
                ).outcomes
            )
        return outcomes

    added: list[Rep] = []
    points: list[SearchPoint] = []
    met: bool | None = None
    if request.target is not None:
        target = request.target

        def evaluate(reps: list[Rep]) -> float:
            # Every run, so that the share the search stops at is the answer's.
            return cap.Simulation(tuple(run_all(reps, arrival_runs))).share_within(request.within)

        shifts = cap.candidate_shifts(rates, length=request.shift_hours)
        seats = cap.seats_of(contract)
        if not seats:
            raise _refuse(
                "target",
                "the contract's routing pools name their reps one by one, so an added rep "
                "would get no lead: search with hypothetical reps (--reps 0 --target ...)",
            )
        tries = 1 + request.max_added * max(len(shifts) * len(seats), 1)
        if max_search_arrivals is not None and request.runs is None:
            # Runs chosen for the reader, not asked for: as many as the bound allows.
            fits = max(1, int(max_search_arrivals // max(per_run * tries, 1e-9)))
            if fits < runs:
                runs, arrival_runs = fits, arrival_runs[:fits]
                expected = per_run * runs
        worst = expected * tries
        if max_search_arrivals is not None and worst > max_search_arrivals:
            raise _refuse(
                "max_added",
                f"the search could simulate {worst:,.0f} MQLs ({expected:,.0f} per try × up "
                f"to {request.max_added} reps × {len(shifts) * len(seats)} shifts and seats), "
                f"more than {max_search_arrivals:,} on the server: lower max_added, the runs "
                "or the weeks simulated, or run `baton plan capacity`",
            )
        floor = cap.load_floor(rates, shifts, minutes_per_lead=minutes) if len(seats) == 1 else []
        added, steps, met = cap.search_staffing(
            evaluate,
            base,
            shifts,
            target=target,
            timezone=request.timezone,
            capacity=request.capacity,
            max_added=request.max_added,
            floor=floor[: request.max_added],
            seats=seats,
            on_step=progress,
        )
        points = [
            SearchPoint(s.added, f"{cap.hours_text(s.hours)}, {cap.seat_text(s.seat)}", s.share)
            for s in steps
        ]
    final = [*base, *added]
    simulation = cap.Simulation(tuple(run_all(final, arrival_runs)))
    if request.target is not None:
        met = simulation.share_within(request.within) >= request.target
    speeds = [o.minutes for o in simulation.outcomes]
    waiting: dict[str, int] = {}
    for outcome in simulation.outcomes:
        if outcome.assigned_at is None or outcome.assigned_at > outcome.arrived_at:
            key = outcome.waited_reason or "waited"
            waiting[key] = waiting.get(key, 0) + 1
    return CapacityPlan(
        arrivals_from=arrivals_from,
        mqls_per_week=sum(rates),
        rates=list(rates),
        timezone=request.timezone,
        week_of=start,
        roster=roster_text,
        reps=len([r for r in final if r.active]),
        minutes_per_lead=round(minutes, 3),
        minutes_per_lead_from=minutes_from,
        sla_minutes=contract.sla.first_touch_within_minutes,
        sla_business_hours=contract.sla.business_hours,
        sla_from=sla_from,
        within=request.within,
        runs=runs,
        mqls_expected=round(expected, 1),
        mqls_simulated=simulation.mqls,
        share_within=simulation.share_within(request.within),
        share_within_sla=simulation.share_within_sla,
        share_touched=simulation.share_touched,
        p50_minutes=_round(simulation.percentile(50)),
        p90_minutes=_round(simulation.percentile(90)),
        p99_minutes=_round(simulation.percentile(99)),
        histogram=cap.histogram(speeds),
        waiting_reasons=sorted(waiting.items(), key=lambda kv: (-kv[1], kv[0]))[:10],
        staffing=cap.staffing_table(final, start, request.timezone),
        shifts=_shifts(final),
        target=request.target,
        target_met=met,
        added=_shifts(added),
        search=points,
        warnings=warnings,
    )


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def _shifts(reps: Sequence[Rep]) -> list[PlannedShift]:
    counts: dict[str, int] = {}
    for rep in reps:
        if not rep.active:
            continue
        seat = "" if rep.team == cap.PLAN_TEAM else f", {cap.seat_text((rep.team, rep.tags))}"
        text = f"{cap.hours_text(rep.schedule.hours)} ({rep.schedule.timezone}){seat}"
        counts[text] = counts.get(text, 0) + 1
    return [PlannedShift(k, v) for k, v in sorted(counts.items(), key=lambda kv: -kv[1])]


def plan_json(plan: CapacityPlan) -> Mapping[str, Any]:
    """The plan as JSON-ready data (the API's body, ``--format json``)."""
    from dataclasses import asdict

    data = asdict(plan)
    data["week_of"] = plan.week_of.isoformat()
    return data
