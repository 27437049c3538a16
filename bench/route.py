"""The routing decision: how long one ``route_lead`` call takes.

Builds a sales floor of N reps (a dozen time zones, split shifts, night shifts, 24/7
desks, out-of-office periods, teams, tags, territories by country, region and postal
prefix, segments, capacities and current loads, a few away or deactivated) and a
contract of M routing rules (field conditions, regular expressions, email-domain
classes, score and grade ranges). The rules are ordered as a real contract is:
named accounts, partner and vertical plays, enterprise carve-outs first, regional
pools and a catch-all last, so most leads only match at rule 40 or later and pay for
every rule before it. Each of L generated leads (spread over two weeks, across a
daylight-saving change) is routed with the pure domain function, timed with
``time.perf_counter_ns`` (wall clock, the figure the target is about) and
``time.thread_time_ns`` (CPU time of the thread: the same call without the time the
operating system gave the CPU to other processes, which on a busy machine is most of
the tail). The rotations and loads carry over from lead to lead as they would in the
database. Nothing else is timed (no database, no I/O).

    python bench/route.py                       # 20,000 leads, 500 reps, 50 rules
    python bench/route.py --leads 100000 --profile
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import random
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from rich.console import Console
from rich.table import Table

from _common import machine
from baton.domain.business_hours import Absence, Schedule, WorkingHours
from baton.domain.contract import HandoffContract
from baton.domain.routing import Rep, Rotation, members, route_lead

TARGET_P99_MS = 2.0
START = datetime(2026, 3, 23, tzinfo=UTC)  # a Monday; Europe changes clocks on the 29th
WINDOW = timedelta(days=14)

# Team -> (time zones its reps live in, countries it covers).
TEAMS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "na_east": (("America/New_York", "America/Toronto"), ("US", "CA")),
    "na_west": (("America/Los_Angeles", "America/Vancouver"), ("US", "CA")),
    "na_central": (("America/Chicago", "America/Denver"), ("US", "CA", "MX")),
    "latam": (
        ("America/Sao_Paulo", "America/Mexico_City", "America/Bogota"),
        ("BR", "MX", "AR", "CL", "CO", "PE"),
    ),
    "uk_ie": (("Europe/London", "Europe/Dublin"), ("GB", "IE")),
    "dach": (("Europe/Berlin", "Europe/Vienna", "Europe/Zurich"), ("DE", "AT", "CH")),
    "france": (("Europe/Paris",), ("FR", "BE", "LU")),
    "nordics_benelux": (
        ("Europe/Stockholm", "Europe/Amsterdam"),
        ("SE", "NO", "DK", "FI", "NL", "BE"),
    ),
    "south_europe": (("Europe/Madrid", "Europe/Rome"), ("ES", "IT", "PT")),
    "apac": (
        ("Asia/Singapore", "Asia/Tokyo", "Australia/Sydney", "Asia/Kolkata"),
        ("SG", "JP", "AU", "NZ", "IN", "KR"),
    ),
    "enterprise": (("America/New_York", "Europe/London", "Europe/Berlin"), ()),
    "overflow": (("UTC", "America/New_York", "Europe/Dublin", "Asia/Singapore"), ()),
}
TAGS = (
    "enterprise",
    "midmarket",
    "smb",
    "spanish",
    "german",
    "french",
    "japanese",
    "partner",
    "healthcare",
    "fintech",
    "public_sector",
    "inbound",
)
SEGMENTS = ("analytics", "embedded", "platform")
US_EAST = ("NY", "MA", "NJ", "PA", "FL", "GA", "VA", "NC")
US_WEST = ("CA", "WA", "OR", "NV", "AZ", "UT")
INDUSTRIES = (
    "software",
    "retail",
    "logistics",
    "manufacturing",
    "media",
    "education",
    "consulting",
    "telecom",
)
TITLES = (
    "Data Analyst",
    "Operations Manager",
    "BI Developer",
    "Marketing Manager",
    "Product Manager",
    "Software Engineer",
    "Consultant",
    "Finance Manager",
    "Head of Data",
    "Director of Analytics",
    "VP Operations",
    "Chief Data Officer",
)
COUNTRY_WEIGHTS = {
    "US": 34,
    "CA": 4,
    "MX": 2,
    "BR": 4,
    "AR": 1,
    "CL": 1,
    "CO": 1,
    "GB": 8,
    "IE": 1,
    "DE": 7,
    "AT": 1,
    "CH": 1,
    "FR": 5,
    "BE": 1,
    "NL": 3,
    "SE": 1,
    "NO": 1,
    "DK": 1,
    "FI": 1,
    "ES": 3,
    "IT": 3,
    "PT": 1,
    "SG": 2,
    "JP": 3,
    "AU": 3,
    "IN": 4,
    "KR": 1,
    "ZA": 1,
    "AE": 1,
    "PL": 1,
    "TR": 1,
}
STRATEGIC = tuple(f"Strategic Account {i}" for i in range(40))
BROAD_RULES = 11
"""The regional pools and the catch-all that end the rule list."""
COMPETITORS = ("tableau.example.com", "looker.example.com", "qlik.example.com")


def working_hours(rng: random.Random) -> WorkingHours:
    roll = rng.random()
    if roll < 0.05:
        return WorkingHours.always()
    if roll < 0.10:  # night desk
        return WorkingHours.parse(
            {d: ["00:00-06:00", "22:00-24:00"] for d in ("mon", "tue", "wed", "thu", "fri")}
        )
    if roll < 0.35:  # split shift with a lunch break
        return WorkingHours.parse(
            {d: ["08:30-12:00", "13:00-17:30"] for d in ("mon", "tue", "wed", "thu", "fri")}
        )
    if roll < 0.45:  # Monday to Saturday
        return WorkingHours.parse(
            {d: ["10:00-18:00"] for d in ("mon", "tue", "wed", "thu", "fri", "sat")}
        )
    if roll < 0.55:  # late shift covering the next continent
        return WorkingHours.weekdays("12:00", "20:00")
    if roll < 0.65:
        return WorkingHours.weekdays("07:00", "15:00")
    return WorkingHours.weekdays("09:00", "17:00")


def absences(rng: random.Random) -> tuple[Absence, ...]:
    if rng.random() >= 0.2:
        return ()
    found = []
    for _ in range(rng.randint(1, 3)):
        start = START - timedelta(days=7) + timedelta(hours=rng.randrange(0, 24 * 28))
        found.append(Absence(start, start + timedelta(hours=rng.choice((4, 8, 24, 72, 120)))))
    return tuple(found)


def make_reps(count: int, rng: random.Random) -> list[Rep]:
    team_names = list(TEAMS)
    reps: list[Rep] = []
    for i in range(1, count + 1):
        team = team_names[i % len(team_names)]
        zones, countries = TEAMS[team]
        territory: dict[str, Any] = {}
        if countries:
            roll = rng.random()
            if team in ("na_east", "na_west") and roll < 0.5:
                territory = {
                    "regions": frozenset(US_EAST if team == "na_east" else US_WEST),
                    "countries": frozenset({"CA"}),
                }
            elif roll < 0.2:
                territory = {
                    "postal_prefixes": tuple(
                        str(rng.randrange(10, 99)) for _ in range(rng.randint(3, 12))
                    )
                }
            else:
                territory = {"countries": frozenset(countries)}
        reps.append(
            Rep(
                id=i,
                email=f"rep{i}@sales.example.com",
                name=f"Rep {i}",
                schedule=Schedule(rng.choice(zones), working_hours(rng), absences(rng)),
                team=team,
                # Every third rep also takes the catch-all "inbound" leads.
                tags=frozenset(rng.sample(TAGS, rng.randint(0, 3)) + ["inbound"] * (i % 3 == 0)),
                status="away" if rng.random() < 0.05 else "available",
                capacity=rng.choice((10, 15, 20, 25, 30, 40, 50)),
                weight=rng.choice((0.5, 1.0, 1.0, 1.0, 1.5, 2.0)),
                segments=frozenset(rng.sample(SEGMENTS, 1)) if rng.random() < 0.1 else frozenset(),
                active=rng.random() >= 0.02,
                **territory,
            )
        )
    return reps


def make_contract(rule_count: int, reps: list[Rep]) -> HandoffContract:
    """``rule_count`` rules; the last 10 are the regional pools and the catch-all that
    most leads reach, everything before them is a narrower play that rarely matches."""
    named = [r.email for r in reps[:200:20]]
    narrow: list[dict[str, Any]] = []
    for i in range(8):
        chunk = STRATEGIC[i * 5 : i * 5 + 5]
        narrow.append(
            {
                "name": f"Strategic accounts {i + 1}",
                "when": [{"field": "company", "in": list(chunk)}],
                "pool": {"reps": named[i % len(named) : i % len(named) + 3] or named[:3]},
            }
        )
    narrow += [
        {
            "name": "Competitor research",
            "when": [{"email_domain": "competitor"}],
            "pool": {"tag": "partner"},
        },
        {
            "name": "Disposable mailboxes",
            "when": [{"email_domain": "disposable"}],
            "pool": {"team": "overflow"},
        },
        {
            "name": "Partner referrals",
            "when": [{"field": "source", "equals": "partner_referral"}],
            "pool": {"tag": "partner"},
            "strategy": "least_loaded",
        },
        {
            "name": "Partner attribute",
            "when": [{"field": "attributes.partner", "exists": True}],
            "pool": {"tag": "partner"},
        },
    ]
    for industry, tag in (
        ("healthcare", "healthcare"),
        ("banking", "fintech"),
        ("insurance", "fintech"),
        ("government", "public_sector"),
    ):
        narrow.append(
            {
                "name": f"{industry.title()} large",
                "when": [
                    {"field": "attributes.employees", "min": 1000},
                    {"field": "attributes.industry", "equals": industry},
                ],
                "pool": {"tag": tag},
                "strategy": "least_loaded",
            }
        )
        narrow.append(
            {
                "name": f"{industry.title()} hot",
                "when": [{"field": "attributes.industry", "in": [industry, f"{industry}_it"]}],
                "min_score": 80,
                "grades": ["A", "B"],
                "pool": {"tag": tag},
            }
        )
    for lang, countries in (
        ("spanish", ["ES", "MX", "AR", "CO", "CL", "PE"]),
        ("german", ["DE", "AT", "CH"]),
        ("french", ["FR", "BE", "LU"]),
        ("japanese", ["JP"]),
    ):
        narrow.append(
            {
                "name": f"{lang.title()} executives",
                "when": [
                    {"field": "country", "in": countries},
                    {"field": "title", "regex": r"(?i)\b(chief|c[eiot]o|president|founder)\b"},
                ],
                "pool": {"tag": lang},
                "strategy": "weighted",
            }
        )
    for region, countries in (
        ("NA", ["US", "CA"]),
        ("EMEA", ["GB", "DE", "FR", "NL", "IE"]),
        ("APAC", ["JP", "AU", "SG", "IN"]),
        ("LATAM", ["BR", "MX"]),
    ):
        narrow.append(
            {
                "name": f"Enterprise {region}",
                "when": [
                    {"field": "country", "in": countries},
                    {"field": "attributes.employees", "min": 5000},
                ],
                "pool": {"team": "enterprise"},
                "strategy": "least_loaded",
            }
        )
        narrow.append(
            {
                "name": f"Enterprise {region} hot score",
                "when": [{"field": "country", "in": countries}],
                "min_score": 95,
                "grades": ["A"],
                "pool": {"tag": "enterprise"},
                "strategy": "least_loaded",
            }
        )
    narrow += [
        {
            "name": "Embedded analytics",
            "when": [{"field": "attributes.product", "in": ["embedded", "oem"]}],
            "pool": {"team": "enterprise"},
        },
        {
            "name": "Students and researchers",
            "when": [{"field": "title", "regex": r"(?i)\b(student|phd|researcher|intern)\b"}],
            "pool": {"team": "overflow"},
        },
        {
            "name": "Free mail low score",
            "when": [{"email_domain": "free_mail"}],
            "max_score": 20,
            "pool": {"tag": "smb"},
        },
        {
            "name": "Very small companies",
            "when": [
                {"field": "attributes.employees", "max": 4},
                {"field": "country", "in": ["US", "CA", "GB"]},
            ],
            "pool": {"tag": "smb"},
        },
        {
            "name": "Role mailboxes",
            "when": [{"email_domain": "role"}],
            "pool": {"team": "overflow"},
        },
        {
            "name": "Agencies and studios",
            "when": [{"field": "company", "regex": r"(?i)\b(agency|studio|partners)\b"}],
            "pool": {"tag": "midmarket"},
        },
        {
            "name": "Events: trade show",
            "when": [{"field": "campaign", "regex": r"^2026-tradeshow-"}],
            "pool": {"tag": "midmarket"},
        },
    ]
    broad: list[dict[str, Any]] = [
        {
            "name": "US East",
            "when": [
                {"field": "country", "equals": "US"},
                {"field": "region", "in": list(US_EAST)},
            ],
            "pool": {"team": "na_east"},
        },
        {
            "name": "US West",
            "when": [
                {"field": "country", "equals": "US"},
                {"field": "region", "in": list(US_WEST)},
            ],
            "pool": {"team": "na_west"},
            "strategy": "weighted",
        },
        {
            "name": "North America",
            "when": [{"field": "country", "in": ["US", "CA", "MX"]}],
            "pool": {"team": "na_central"},
            "strategy": "least_loaded",
        },
        {
            "name": "Latin America",
            "when": [{"field": "country", "in": ["BR", "AR", "CL", "CO", "PE"]}],
            "pool": {"team": "latam"},
        },
        {
            "name": "UK and Ireland",
            "when": [{"field": "country", "in": ["GB", "IE"]}],
            "pool": {"team": "uk_ie"},
        },
        {
            "name": "DACH",
            "when": [{"field": "country", "in": ["DE", "AT", "CH"]}],
            "pool": {"team": "dach"},
            "strategy": "least_loaded",
        },
        {
            "name": "France",
            "when": [{"field": "country", "in": ["FR", "LU"]}],
            "pool": {"team": "france"},
        },
        {
            "name": "Nordics and Benelux",
            "when": [{"field": "country", "in": ["SE", "NO", "DK", "FI", "NL", "BE"]}],
            "pool": {"team": "nordics_benelux"},
            "strategy": "weighted",
        },
        {
            "name": "Southern Europe",
            "when": [{"field": "country", "in": ["ES", "IT", "PT"]}],
            "pool": {"team": "south_europe"},
        },
        {
            "name": "Asia Pacific",
            "when": [{"field": "country", "in": ["SG", "JP", "AU", "NZ", "IN", "KR"]}],
            "pool": {"team": "apac"},
        },
        {"name": "Everyone else", "pool": {"tag": "inbound"}, "strategy": "weighted"},
    ]
    assert len(broad) == BROAD_RULES
    if not len(broad) <= rule_count <= len(narrow) + len(broad):
        raise SystemExit(f"--rules must be {len(broad)} to {len(narrow) + len(broad)}")
    rules = narrow[: rule_count - len(broad)] + broad
    return HandoffContract.model_validate(
        {
            "schema_version": 1,
            "name": "Routing benchmark",
            "mql": {"threshold": 60},
            "scoring": {"competitors": list(COMPETITORS)},
            "routing": {"account_matching": True, "rules": rules},
        }
    )


def make_leads(count: int, rng: random.Random, first_id: int) -> list[dict[str, Any]]:
    countries, weights = zip(*COUNTRY_WEIGHTS.items(), strict=True)
    leads = []
    for i in range(count):
        lead_id = first_id + i
        country = rng.choices(countries, weights)[0]
        roll = rng.random()
        company = rng.choice(STRATEGIC) if roll < 0.02 else f"Company {rng.randrange(50_000)}"
        domain = (
            rng.choice(COMPETITORS)
            if roll > 0.995
            else "gmail.com"
            if roll > 0.97
            else f"company{rng.randrange(50_000)}.example.com"
        )
        local = "info" if rng.random() < 0.01 else f"person{lead_id}"
        size = rng.random()
        employees = (
            rng.randint(5, 999)
            if size < 0.75
            else rng.randint(1000, 4999)
            if size < 0.93
            else rng.randint(5000, 90_000)
        )
        attributes: dict[str, Any] = {
            "employees": employees,
            "industry": rng.choice(INDUSTRIES)
            if rng.random() < 0.95
            else rng.choice(("healthcare", "banking", "insurance", "government")),
        }
        if rng.random() < 0.1:
            attributes["segment"] = rng.choice(SEGMENTS)
        if rng.random() < 0.01:
            attributes["product"] = "embedded"
        region = None
        if country == "US":
            region = rng.choice((*US_EAST, *US_WEST, "TX", "IL", "CO", "OH", "MN", "MI"))
        leads.append(
            {
                "id": lead_id,
                "email": f"{local}@{domain}",
                "email_domain": domain,
                "first_name": "Alex",
                "last_name": f"Lead{lead_id}",
                "company": company,
                "title": rng.choice(TITLES),
                "country": country,
                "region": region,
                "postal_code": f"{rng.randrange(10, 99)}{rng.randrange(100, 999)}",
                "source": "partner_referral" if rng.random() < 0.01 else "web",
                "campaign": "2026-q1-webinar",
                "attributes": attributes,
                "_total": round(rng.uniform(20, 100), 1),
                "_grade": rng.choice("AABBBCCD"),
                "_owner": rng.randint(1, 500) if rng.random() < 0.03 else None,
            }
        )
    return leads


@dataclass
class Run:
    """What :func:`run` measured, one entry per lead."""

    wall: list[int] = field(default_factory=list)
    cpu: list[int] = field(default_factory=list)
    pool_size: list[int] = field(default_factory=list)
    """Reps in the pool of the matching rule (0: account owner or no rule)."""
    matched: Counter[str] = field(default_factory=Counter)
    assigned: int = 0


def run(
    contract: HandoffContract,
    reps: list[Rep],
    leads: list[dict[str, Any]],
    loads: dict[int, int],
    rotations: dict[str, Rotation],
    rng: random.Random,
) -> Run:
    """Route every lead, timing each call; loads and rotations carry over."""
    step = WINDOW / max(len(leads), 1)
    rules = {
        rule.name: (i + 1, len(members(rule.pool, reps)))
        for i, rule in enumerate(contract.routing.rules)
    }
    first_broad = len(contract.routing.rules) - BROAD_RULES + 1
    result = Run()
    rep_ids = [r.id for r in reps]
    for n, lead in enumerate(leads):
        now = START + step * n + timedelta(seconds=rng.randrange(60))
        total, grade, owner = lead["_total"], lead["_grade"], lead["_owner"]
        began_cpu = time.thread_time_ns()
        began = time.perf_counter_ns()
        decision = route_lead(
            contract,
            lead,
            lead_id=lead["id"],
            total=total,
            grade=grade,
            reps=reps,
            loads=loads,
            rotations=rotations,
            now=now,
            account_owner_id=owner,
        )
        result.wall.append(time.perf_counter_ns() - began)
        result.cpu.append(time.thread_time_ns() - began_cpu)
        if decision.account_owner or decision.rule is None:
            result.matched["(account owner)" if decision.account_owner else "(no rule)"] += 1
            result.pool_size.append(0)
        else:
            position, size = rules[decision.rule]
            result.matched[f"rule {position}" if position < first_broad else "broad"] += 1
            result.pool_size.append(size)
        if decision.rep_id is not None:
            result.assigned += 1
            loads[decision.rep_id] = loads.get(decision.rep_id, 0) + 1
            # Reps work their leads: one open handoff somewhere closes per new one.
            closing = rng.choice(rep_ids)
            if loads.get(closing, 0) > 0:
                loads[closing] -= 1
    return result


def percentile(sorted_values: list[int], fraction: float) -> float:
    index = min(len(sorted_values) - 1, max(0, round(fraction * len(sorted_values)) - 1))
    return sorted_values[index] / 1e6


def row(label: str, values: list[int]) -> list[str]:
    ordered = sorted(values)
    return [
        label,
        f"{len(ordered):,}",
        *(f"{percentile(ordered, q):.3f} ms" for q in (0.50, 0.90, 0.99, 0.999)),
        f"{statistics.fmean(ordered) / 1e6:.3f} ms",
        f"{ordered[-1] / 1e6:.3f} ms",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=20_000)
    parser.add_argument("--reps", type=int, default=500)
    parser.add_argument("--rules", type=int, default=50, help="Routing rules (at least 11)")
    parser.add_argument("--warmup", type=int, default=1_000, help="Decisions not measured")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--profile",
        action="store_true",
        help="Also run the leads under cProfile and print"
        " the functions with the most own time (the timings above are taken without it)",
    )
    args = parser.parse_args()
    rng = random.Random(args.seed)
    reps = make_reps(args.reps, rng)
    contract = make_contract(args.rules, reps)
    loads = {r.id: rng.randint(0, r.capacity) for r in reps}
    rotations: dict[str, Rotation] = {}
    warmup = make_leads(args.warmup, rng, first_id=1)
    leads = make_leads(args.leads, rng, first_id=args.warmup + 1)
    run(contract, reps, warmup, loads, rotations, rng)
    load = os.getloadavg()[0]
    result = run(contract, reps, leads, loads, rotations, rng)

    rules = len(contract.routing.rules)
    first_broad = rules - BROAD_RULES + 1
    table = Table(
        title=f"Routing decision: {len(leads):,} leads, {len(reps)} reps, {rules} rules"
        f" ({machine()})"
    )
    for column in ("per call", "calls", "p50", "p90", "p99", "p99.9", "mean", "max"):
        table.add_column(column, justify="right")
    table.add_row(*row("wall clock", result.wall))
    table.add_row(*row("CPU time", result.cpu))
    for low, high in ((1, 10), (11, 60), (61, args.reps)):
        chosen = [
            c for c, size in zip(result.cpu, result.pool_size, strict=True) if low <= size <= high
        ]
        if chosen:
            table.add_row(*row(f"CPU, pool of {low}-{high} reps", chosen))
    console = Console()
    console.print(table)
    p99 = percentile(sorted(result.wall), 0.99)
    verdict = "[green]met[/]" if p99 < TARGET_P99_MS else "[red]missed[/]"
    console.print(
        f"Target p99 < {TARGET_P99_MS:g} ms (wall clock): {verdict} (p99 {p99:.3f} ms);"
        f" load average when the run started: {load:.2f} on {os.cpu_count()} cores."
    )
    matched = result.matched
    matched[f"rules {first_broad}-{rules}"] = matched.pop("broad", 0)
    deep = matched[f"rules {first_broad}-{rules}"]
    share = ", ".join(f"{name} {count / len(leads):.1%}" for name, count in matched.most_common(5))
    console.print(
        f"Matched at rule {first_broad} or later: {deep / len(leads):.1%} of leads"
        f" (largest shares: {share}); assigned to a rep: {result.assigned / len(leads):.1%},"
        " the rest queued (nobody in the pool available at that moment)."
    )

    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        run(contract, reps, leads, loads, rotations, rng)
        profiler.disable()
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out).sort_stats("tottime")
        stats.print_stats(15)
        console.print(out.getvalue(), markup=False, highlight=False)


if __name__ == "__main__":
    main()
