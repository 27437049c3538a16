"""Capacity planning: a simulated week with 50 reps and ~2,000 MQLs (target < 10 s),
then the search for "how many reps, on which hours, for 90 % touched within 5 minutes".

The floor: 25 reps in Europe/Berlin (team emea, GB/DE/FR/NL) and 25 in
America/New_York (team na, everyone else), 09:00-17:00 local on weekdays, capacity 20,
two of them out of office all week, routed by a contract of the example's shape
(round robin in emea, weighted in na) through the real ``route_lead``, SLA deadline and
business hours. Arrivals (UTC, MQLs per hour): Mon-Fri 00-07=2, 07-13=20, 13-17=36,
17-22=20, 22-24=4, Sat-Sun=3 (~2,070 a week); 40 % of the leads are European. Work per
lead: 10 minutes. The search starts from no rep at all on a single round-robin pool.

    python bench/capacity.py                 # one week, 50 reps, then the search
    python bench/capacity.py --runs 3 --no-search
"""

from __future__ import annotations

import argparse
import random
import time
from datetime import UTC, datetime, timedelta

from _common import machine
from baton.domain import capacity as cap
from baton.domain.business_hours import Absence, Schedule
from baton.domain.contract import HandoffContract
from baton.domain.routing import Rep

TARGET_SECONDS = 10.0
MONDAY = datetime(2026, 3, 2, tzinfo=UTC)
RATES = [
    "Mon-Fri 00-07=2",
    "Mon-Fri 07-13=20",
    "Mon-Fri 13-17=36",
    "Mon-Fri 17-22=20",
    "Mon-Fri 22-24=4",
    "Sat-Sun=3",
]
CONTRACT = HandoffContract.model_validate(
    {
        "schema_version": 1,
        "name": "bench",
        "mql": {"threshold": 0},
        "routing": {
            "rules": [
                {
                    "name": "EMEA",
                    "when": [{"field": "country", "in": ["GB", "DE", "FR", "NL"]}],
                    "pool": {"team": "emea"},
                },
                {"name": "Everyone else", "pool": {"team": "na"}, "strategy": "weighted"},
            ]
        },
        "sla": {"first_touch_within_minutes": 5, "business_hours": False},
    }
)


def sales_floor() -> list[Rep]:
    hours = cap.parse_hours("Mon-Fri 09-17")
    reps: list[Rep] = []
    for n in range(50):
        team, zone = ("emea", "Europe/Berlin") if n < 25 else ("na", "America/New_York")
        away = (Absence(MONDAY, MONDAY + timedelta(days=7)),) if n in (3, 30) else ()
        reps.append(
            Rep(
                id=n + 1,
                email=f"rep{n + 1}@bench.example",
                name=f"Rep {n + 1}",
                schedule=Schedule(zone, hours, away),
                team=team,
                weight=1.0 + (n % 3) * 0.5,
            )
        )
    return reps


def leads(count: int, rng: random.Random) -> list[cap.LeadSample]:
    europe = ("GB", "DE", "FR", "NL")
    elsewhere = ("US", "CA", "MX", "BR")
    return [
        cap.LeadSample({"country": rng.choice(europe if rng.random() < 0.4 else elsewhere)})
        for _ in range(count)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1, help="weeks simulated (seeds)")
    parser.add_argument("--no-search", action="store_true", help="skip the staffing search")
    args = parser.parse_args()
    rates = cap.parse_rates(RATES)
    reps = sales_floor()
    samples = leads(500, random.Random(11))
    print(f"Capacity plan benchmark ({machine()})")
    print(f"  arrivals: {sum(rates):,.0f} MQLs/week expected; 50 reps (2 out of office)")
    for run in range(args.runs):
        arrivals = cap.poisson_arrivals(
            rates, start=MONDAY, weeks=1, timezone="UTC", rng=random.Random(7 + run)
        )
        began = time.perf_counter()
        sim = cap.simulate(CONTRACT, reps, arrivals, minutes_per_lead=10, leads=samples)
        seconds = time.perf_counter() - began
        verdict = "ok" if seconds < TARGET_SECONDS else "SLOW"
        print(
            f"  week {run + 1}: {sim.mqls:,} MQLs simulated in {seconds:.2f} s "
            f"(target < {TARGET_SECONDS:g} s: {verdict}); within 5 min "
            f"{sim.share_within(5):.1%}, within SLA {sim.share_within_sla:.1%}, "
            f"p50 {_m(sim.percentile(50))}, p90 {_m(sim.percentile(90))}, "
            f"p99 {_m(sim.percentile(99))} min"
        )
    if args.no_search:
        return
    arrivals = cap.poisson_arrivals(
        rates, start=MONDAY, weeks=1, timezone="UTC", rng=random.Random(7)
    )
    contract = cap.plan_contract(CONTRACT)
    shifts = cap.candidate_shifts(rates)
    simulations = 0

    def share(roster: list[Rep]) -> float:
        nonlocal simulations
        simulations += 1
        return cap.simulate(contract, roster, arrivals, minutes_per_lead=10).share_within(5)

    began = time.perf_counter()
    floor = cap.load_floor(rates, shifts, minutes_per_lead=10)
    added, steps, met = cap.search_staffing(
        share, [], shifts, target=0.9, timezone="UTC", capacity=20, max_added=80, floor=floor
    )
    seconds = time.perf_counter() - began
    print(
        f"  search for 90 % within 5 min: {len(added)} reps, target "
        f"{'met' if met else 'NOT met'} ({steps[-1].share:.1%}) in {seconds:.1f} s, "
        f"{simulations} simulated weeks over {len(shifts)} candidate shifts, from a "
        f"load floor of {len(floor)} reps ({steps[0].share:.1%})"
    )
    counts: dict[str, int] = {}
    for rep in added:
        text = cap.hours_text(rep.schedule.hours)
        counts[text] = counts.get(text, 0) + 1
    for text, n in sorted(counts.items(), key=lambda kv: -kv[1]):
        print(f"    {n:>3} × {text} (UTC)")
    table = cap.staffing_table(added, MONDAY, "UTC")
    print("    reps per hour (UTC)  " + " ".join(f"{h:02d}" for h in range(24)))
    for name, row in zip(("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"), table, strict=True):
        print(f"    {name:<20} " + " ".join(f"{n:>2}" if n else " ." for n in row))


def _m(value: float | None) -> str:
    return "never" if value is None else f"{value:.1f}"


if __name__ == "__main__":
    main()
