"""A seeded demo company, *Lumen Analytics* (B2B analytics software), whose history is
played, not written.

Nothing in the demo's history is decided here that Baton decides in real life. The
generator first draws the company from the seed: the people who will find Lumen, through
which channel and when, what each of them will do on the website, in the newsletter, in
webinars, whether they will ask for a demo, and what marketing will learn about them.
Then it walks a :class:`~baton.domain.clock.ManualClock` through the last ``days`` days
and, at each moment, calls the use case a real system or person would have called then:

* web-form contacts arrive with the marketing automation platform's hourly sync (the
  import's write path, their sign-up moment kept), the summit's booth scans and the
  publisher's weekly lists are imported; website activity comes every two hours, the
  email platform's opens and clicks every six, webinar attendance after the session,
  and a demo request, a contact-sales form or an inbound call the moment it happens
  (``ingest_activities``): scoring runs at those moments;
* marketing ops reviews the warm leads every weekday morning and ticks the prep items it
  has learnt by then (``tick_prep``: use case, company size, budget owner),
  disqualifies competitors and throw-away mailboxes (``change_stage``), and imports
  spend per channel and month (``import_spend``: the budget when the month opens, the
  actuals when it has closed);
* every MQL is therefore the contract's doing (the score reached the threshold with the
  required fields and prep items, or a hand-raise), every handoff is routed by the
  contract's routing, and the worker's passes (``run_due_steps``, ``assign_queued``)
  run the SLA ladder and the unassigned queue when something falls due: a step before
  the rep's next move, a rep starting their day;
* each rep plays their part through the handoff use cases, in their working hours, with
  their own pace and habits (some are quick, one is slow and gets reminded and
  reassigned, some turn down more, some close more): turn down at first look or accept,
  first call, turn down with the catalog reason that fits the lead (a student is junk,
  a 10-person shop has no budget, a lead outside the market is out of area, a curious
  hand-raise is not ready), discovery, qualify with what they learnt, open an
  opportunity, win or lose it.

Batching the deliveries (hourly, every two or six hours) and running the worker only
when something is due are what keep 3,000 leads near 20 s of CPU: every use case call
costs milliseconds, and a pass of the worker when nothing is due does nothing.

Every decision of a person is drawn from a random generator seeded by the seed and what
it is about (the person, their n-th handoff), never by a database id, so the same seed
gives the same company on a new database of either kind.
"""

from __future__ import annotations

import heapq
import io
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from baton.domain.access import Principal, Role, operator
from baton.domain.activities import ActivityCreate, ActivityType
from baton.domain.business_hours import add_business_minutes, working_intervals
from baton.domain.clock import ManualClock
from baton.domain.errors import Conflict
from baton.domain.leads import LeadCreate
from baton.domain.lifecycle import Stage
from baton.domain.limits import CONTEXT_KEY as JSON_LIMITS
from baton.domain.reps import AbsenceCreate, RepCreate, TeamCreate
from baton.domain.routing import Rep
from baton.domain.users import UserCreate
from baton.services.activities import ingest_activities
from baton.services.context import Context
from baton.services.contract_rules import active_contract
from baton.services.contracts import activate_contract, approve_contract, create_contract
from baton.services.handoffs import (
    accept_handoff,
    log_touch,
    lost_handoff,
    open_opportunity,
    qualify_handoff,
    reject_handoff,
    won_handoff,
)
from baton.services.imports import ImportReport, write_leads_in
from baton.services.leads import capture_lead, change_stage
from baton.services.notes import add_note, add_tag
from baton.services.prep import tick_prep
from baton.services.reports import import_spend
from baton.services.reps import add_absence, create_rep, create_team, list_reps, routing_reps
from baton.services.users import add_user
from baton.services.worker import assign_queued, run_due_steps
from baton.store.tables import handoffs, lead_prep, lead_scores, leads, notes, spend, transitions

# --- the company's world -------------------------------------------------------------------

FIRST_NAMES = (
    "Ana", "Ben", "Chloe", "Diego", "Elif", "Farah", "Gustav", "Hana", "Ines", "Jonas",
    "Kenji", "Lena", "Marco", "Nadia", "Omar", "Priya", "Quentin", "Rosa", "Sven", "Tara",
    "Umar", "Vera", "Wei", "Ximena", "Yusuf", "Zoe", "Aaron", "Bianca", "Carlos", "Dana",
)  # fmt: skip
LAST_NAMES = (
    "Alvarez", "Becker", "Chen", "Dubois", "Eriksen", "Fischer", "Garcia", "Haddad",
    "Ivanova", "Jensen", "Kowalski", "Lopez", "Moreau", "Nakamura", "Okafor", "Petrov",
    "Quinn", "Rossi", "Schmidt", "Tanaka", "Usman", "Varga", "Weber", "Xu", "Yilmaz", "Zhang",
)  # fmt: skip
COMPANY_WORDS = (
    "North", "Blue", "Peak", "River", "Iron", "Bright", "Cedar", "Atlas", "Nova", "Summit",
    "Harbor", "Pixel", "Vertex", "Orbit", "Granite", "Willow", "Falcon", "Quartz",
)  # fmt: skip
COMPANY_KINDS = (
    "Logistics", "Health", "Retail", "Labs", "Systems", "Foods", "Energy", "Capital",
    "Media", "Robotics", "Travel", "Insurance",
)  # fmt: skip
SUFFIXES = ("Inc", "GmbH", "Ltd", "SAS", "BV", "LLC", "")
SENIOR_TITLES = (
    "VP Operations", "Head of Data", "CFO", "CTO", "Director of Finance",
    "Head of Analytics", "VP Sales Operations",
)  # fmt: skip
OTHER_TITLES = (
    "Data Analyst", "IT Manager", "Marketing Manager", "BI Lead", "Consultant",
    "Financial Analyst", "Operations Manager", "Software Engineer",
)  # fmt: skip
COUNTRIES: tuple[tuple[str, str, float, str], ...] = (
    # code, phone pattern, weight, time zone (for when people are at their desks)
    ("US", "+1 415 555 {:04d}", 0.40, "America/New_York"),
    ("CA", "+1 416 555 {:04d}", 0.08, "America/Toronto"),
    ("GB", "+44 20 7946 {:04d}", 0.14, "Europe/London"),
    ("DE", "+49 30 {:08d}", 0.14, "Europe/Berlin"),
    ("FR", "+33 1 {:08d}", 0.08, "Europe/Paris"),
    ("NL", "+31 20 {:07d}", 0.06, "Europe/Amsterdam"),
    ("ES", "+34 91 {:07d}", 0.04, "Europe/Madrid"),
    ("BR", "+55 11 9{:08d}", 0.02, "America/Sao_Paulo"),
    ("IN", "+91 98{:08d}", 0.02, "Asia/Kolkata"),
    ("AU", "+61 2 {:08d}", 0.02, "Australia/Sydney"),
)
MARKET = frozenset({"US", "CA", "GB", "DE", "FR", "NL"})
"""Where Lumen sells (the contract's "Target market"): a lead elsewhere is out of area."""
EMPLOYEES = (8, 30, 120, 450, 1200, 5000)
FREE_MAIL = ("gmail.com", "outlook.com", "yahoo.com")
COMPETITORS = ("tableau.example.com", "looker.example.com")
DISPOSABLE = "spam-me.example.net"
PAGES_HOT = ("/pricing", "/product/dashboards", "/product/connectors", "/security", "/customers")
PAGES_COLD = ("/", "/blog/kpi-guide", "/docs/getting-started", "/careers", "/blog/data-stack")
COMPARE_PAGE = "/compare/spreadsheet"
USE_CASES = (
    "board reporting straight from the warehouse",
    "self-serve dashboards for sales operations",
    "replacing the spreadsheet KPI pack",
    "embedded analytics for their own customers",
    "marketing attribution across channels",
    "faster month-end close reporting for finance",
)
CURRENT_TOOLS = (
    "spreadsheets",
    "spreadsheets and a legacy BI tool",
    "a home-grown SQL dashboard",
)
WEBINAR_TITLE = "From spreadsheets to self-serve analytics"
REPORT_TITLE = "State of analytics 2026"
NEWSLETTER = "Your analytics, minus the spreadsheets"


@dataclass(frozen=True)
class Channel:
    """Where leads come from: attribution, how they arrive (``form``: captured one by
    one; ``list``: imported in batches), how interested and senior they tend to be, and
    what marketing spends on it per month (USD)."""

    source: str
    campaign: str | None
    utm_source: str | None
    utm_medium: str | None
    share: float
    arrival: str
    interest: float
    senior: float
    free_mail: float
    hand_raise: float
    monthly_spend: float


CHANNELS = (
    # source, campaign, utm source and medium; share of leads, arrival; interest,
    # senior titles, free mail, extra hand-raises; monthly spend
    Channel("paid_search", "brand-search", "google", "cpc",
            0.15, "form", 0.55, 0.35, 0.06, 0.10, 6500),
    Channel("paid_search", "competitor-search", "google", "cpc",
            0.09, "form", 0.45, 0.30, 0.08, 0.04, 4800),
    Channel("webinar", "data-webinar-series", "linkedin", "paid_social",
            0.14, "form", 0.45, 0.30, 0.08, 0.02, 5200),
    Channel("paid_social", "retargeting", "linkedin", "paid_social",
            0.12, "form", 0.30, 0.25, 0.15, 0.01, 3600),
    Channel("content", "state-of-analytics-report", "newsletter", "email",
            0.18, "list", 0.25, 0.20, 0.25, 0.01, 2900),
    Channel("event", "saas-summit-berlin", None, None,
            0.08, "list", 0.40, 0.35, 0.04, 0.03, 0),
    Channel("organic", None, None, None,
            0.17, "form", 0.40, 0.25, 0.20, 0.05, 0),
    Channel("referral", "partner-program", "partner", "referral",
            0.07, "form", 0.60, 0.45, 0.03, 0.12, 1500),
)  # fmt: skip
EVENT_COST = 16_000.0
"""The booth at the summit, spent once (the event's days)."""


@dataclass(frozen=True)
class RepHabits:
    """How a rep works: ``pace`` (median business minutes to take a look at a new
    handoff), ``ghost`` (share of handoffs they never open: the SLA ladder then reminds
    and reassigns), ``picky`` (extra share they turn down), ``closer`` and ``winner``
    (multipliers on qualifying and on winning)."""

    pace: float
    ghost: float = 0.02
    picky: float = 0.0
    closer: float = 1.0
    winner: float = 1.0


TEAMS = (
    ("na", "sam.becker@lumen.example", "America/New_York"),
    ("emea", "lea.martin@lumen.example", "Europe/Berlin"),
    ("enterprise", "sam.becker@lumen.example", "America/Chicago"),
)
REPS = (
    ("Alex Kim", "na", "America/New_York", RepHabits(pace=6)),
    ("Bea Torres", "na", "America/Chicago", RepHabits(pace=11, closer=1.2)),
    ("Chris Olsen", "na", "America/Los_Angeles", RepHabits(pace=24, ghost=0.08, closer=0.85)),
    ("Dana Wright", "na", "America/New_York", RepHabits(pace=9, picky=0.12)),
    ("Emil Braun", "emea", "Europe/Berlin", RepHabits(pace=8)),
    ("Fatima Haddad", "emea", "Europe/Paris", RepHabits(pace=5, closer=1.2, winner=1.1)),
    ("Gus Jansen", "emea", "Europe/Amsterdam", RepHabits(pace=16, ghost=0.05)),
    ("Hannah Lee", "emea", "Europe/London", RepHabits(pace=10, picky=0.08)),
    ("Ivan Petrov", "enterprise", "America/New_York", RepHabits(pace=14, winner=1.25)),
    ("Julia Costa", "enterprise", "Europe/London", RepHabits(pace=7, closer=1.1)),
)
REJECT_CODES = ("junk", "no_budget", "out_of_area", "not_ready", "wrong_contact")
LOST_REASONS = (
    "no decision: went quiet after the demo",
    "chose a competitor",
    "budget frozen this year",
    "staying on spreadsheets for now",
)
SALES_NOTES = (
    "Asked about SSO and the security review; send the SOC 2 summary.",
    "12 analysts on spreadsheets today; the KPI pack takes them three days a month.",
    "Evaluating two other tools, decision in about six weeks.",
    "Wants a trial on their own warehouse before a second call.",
    "Procurement needs a DPA; legal contact copied.",
)
MARKETING = operator("Maria Lopez")
"""Marketing operations: imports, prep ticks, spend, disqualifying obvious junk."""
WEBSITE = operator("website")
AUTOMATION = operator("marketing-automation")
EMAIL_PLATFORM = operator("email-platform")
WEBINAR_PLATFORM = operator("webinar-platform")
MARKETING_TICKS = ("use_case_noted", "company_size_confirmed", "budget_owner_known")
"""The prep items marketing ticks when it has learnt them (the contract's two required
ones, and who holds the budget); "current tools" is left for sales to find out."""
WARM = 55.0
"""Marketing reviews leads whose score reached this (the threshold is 60)."""
DEMO = operator("demo")
DEMO_USERS = (
    ("admin@lumen.example", "Ada Admin", Role.ADMIN, None, ()),
    ("maria.lopez@lumen.example", "Maria Lopez", Role.MARKETING, None, ()),
    ("sam.becker@lumen.example", "Sam Becker", Role.SALES_MANAGER, None, ("na", "enterprise")),
    ("alex.kim@lumen.example", "Alex Kim", Role.REP, "alex.kim@lumen.example", ()),
)
"""One person per role, so each view of Baton can be tried (development only)."""


@dataclass(frozen=True)
class DemoSummary:
    """How much the demo created, and what came of it."""

    leads: int
    activities: int
    transitions: int
    notes: int
    reps: int = 0
    handoffs: int = 0
    contract_version: int | None = None
    mqls: int = 0
    """MQL moments (a recycled lead may come back), each on score or by a hand-raise."""
    hand_raises: int = 0
    """Of them, those a hand-raise caused (the rest reached the threshold with prep)."""
    prep_ticks: int = 0
    spend_rows: int = 0
    spend: float = 0.0
    """Spend recorded for the months the demo covers (USD)."""


def demo_users(ctx: Context) -> list[tuple[str, str, str]]:
    """Make the demo's users, one per role, each with a one-time password; returns
    (email, role, password) to print once. Skips users that exist."""
    made: list[tuple[str, str, str]] = []
    for email, name, role, rep, teams in DEMO_USERS:
        try:
            user, secret = add_user(
                ctx,
                UserCreate(
                    email=email, display_name=name, role=role, rep_email=rep, teams=list(teams)
                ),
                actor=DEMO,
                demo=True,
            )
        except Conflict:
            continue
        assert secret is not None
        made.append((user.email, user.role, secret))
    return made


def _rep_email(name: str) -> str:
    return name.lower().replace(" ", ".") + "@lumen.example"


HABITS = {_rep_email(name): habits for name, _, _, habits in REPS}


def _sales_team(ctx: Context) -> int:
    """The demo's sales side: three teams and ten reps in their own time zones, working
    08:00-18:00 on weekdays."""
    if list_reps(ctx, actor=DEMO):
        return 0
    for name, manager, _ in TEAMS:
        create_team(ctx, TeamCreate(name=name, manager_email=manager), actor=DEMO)
    hours = {day: ["08:00-18:00"] for day in ("mon", "tue", "wed", "thu", "fri")}
    for index, (name, team, zone, _) in enumerate(REPS):
        create_rep(
            ctx,
            RepCreate(
                email=_rep_email(name),
                name=name,
                team=team,
                timezone=zone,
                working_hours=hours,
                capacity=200,
                weight=2.0 if index % 4 == 0 else 1.0,
            ),
            actor=DEMO,
        )
    return len(REPS)


EXAMPLE_CONTRACT = Path(__file__).resolve().parents[3] / "contracts" / "example.yaml"


def sign_demo_contract(ctx: Context, body: str | None = None) -> int | None:
    """Store, sign (marketing: Maria Lopez, sales: Sam Becker) and activate the example
    contract, so the demo shows scores, grades and handoff reasons. Returns the version,
    or ``None`` when no contract text is available (an installed package without the
    repository's ``contracts/`` folder)."""
    if body is None:
        if not EXAMPLE_CONTRACT.exists():
            return None
        body = EXAMPLE_CONTRACT.read_text(encoding="utf-8")
    version = create_contract(ctx, body, actor=operator("Maria Lopez")).version
    approve_contract(ctx, version, role="marketing", actor=operator("Maria Lopez"))
    approve_contract(ctx, version, role="sales", actor=operator("Sam Becker"))
    activate_contract(ctx, version, actor=operator("Admin"))
    return version


# --- the plan: who will come, and what they will do ----------------------------------------


@dataclass
class _Person:
    """One future lead: who they are, how they arrive, what they will do, and what
    marketing will learn about them (prep item -> the moment it becomes known)."""

    index: int
    data: LeadCreate
    channel: Channel
    created_at: datetime
    interest: float
    senior: bool
    zone: str
    use_case: str
    tools: str
    junk: str | None = None
    facts: dict[str, datetime] = field(default_factory=dict)
    lead_id: int | None = None
    ticked: set[str] = field(default_factory=set)
    recycled: int = 0
    handoffs: int = 0

    def learn(self, item: str, at: datetime) -> None:
        known = self.facts.get(item)
        if known is None or at < known:
            self.facts[item] = at

    @property
    def employees(self) -> int:
        return int(self.data.attributes.get("employees") or 0)


def _rng(seed: int, *about: object) -> random.Random:
    """A generator for one decision, seeded by the seed and what it is about."""
    return random.Random("/".join(str(part) for part in (seed, *about)))  # noqa: S311


def _whole(moment: datetime) -> datetime:
    return moment.replace(microsecond=0)


def _daytime(rng: random.Random, day: datetime, zone: str) -> datetime:
    """A moment in the working day of ``day`` in ``zone`` (people act at their desks)."""
    local = day.astimezone(ZoneInfo(zone))
    hour = min(22.9, max(7.0, rng.gauss(13.5, 2.6)))
    moment = local.replace(hour=int(hour), minute=int(hour % 1 * 60), second=rng.randrange(60))
    return _whole(moment.astimezone(UTC))


def _weekday_moment(rng: random.Random, start: datetime, end: datetime, zone: str) -> datetime:
    """A moment between ``start`` and ``end``, mostly on weekdays and in working hours."""
    for _ in range(8):
        day = start + (end - start) * rng.random()
        if day.weekday() < 5 or rng.random() < 0.25:
            break
    moment = _daytime(rng, day, zone)
    return min(max(moment, start), end)


def _company(rng: random.Random) -> tuple[str, str, int]:
    word = rng.choice(COMPANY_WORDS) + rng.choice(COMPANY_WORDS).lower()
    name = f"{word} {rng.choice(COMPANY_KINDS)}"
    suffix = rng.choice(SUFFIXES)
    domain = name.lower().replace(" ", "") + rng.choice((".com", ".io", ".co"))
    employees = rng.choices(EMPLOYEES, weights=(12, 16, 26, 22, 16, 8))[0]
    return (f"{name} {suffix}".strip(), domain, employees)


class _Plan:
    """The company drawn from the seed: people, and the calendar of what happens."""

    def __init__(
        self,
        seed: int,
        leads_count: int,
        start: datetime,
        end: datetime,
        context: dict[str, Any],
    ) -> None:
        self.seed = seed
        self.context = context
        self.start, self.end = start, end
        rng = _rng(seed, "company")
        span = end - start
        self.companies = [_company(rng) for _ in range(max(20, leads_count // 5))]
        # The summit: two days a little before the middle, the booth scans imported the
        # morning after; content lists arrive every Tuesday; webinars every other
        # Thursday; the newsletter every Tuesday afternoon.
        event_day = (start + span * 0.45).replace(hour=0, minute=0, second=0, microsecond=0)
        while event_day.weekday() not in (1, 2, 3):
            event_day += timedelta(days=1)
        self.event_days = (event_day, event_day + timedelta(days=1))
        # (A window of a few days squeezes the summit in before its end.)
        self.event_import = min(event_day + timedelta(days=2, hours=9), end - timedelta(hours=1))
        self.list_days = self._weekly(1, 10) or [end - timedelta(hours=1)]
        self.webinars = self._weekly(3, 16, every=2)
        self.newsletters = self._weekly(1, 15)
        self.people: list[_Person] = []
        emails: set[str] = set()
        shares = [c.share for c in CHANNELS]
        for index in range(leads_count):
            channel = rng.choices(CHANNELS, weights=shares)[0]
            person = self._person(_rng(seed, "person", index), index, channel, emails)
            self.people.append(person)
        self.people.sort(key=lambda p: (p.created_at, p.index))

    def _weekly(self, weekday: int, hour: int, every: int = 1) -> list[datetime]:
        moment = self.start.replace(hour=hour, minute=0, second=0, microsecond=0)
        while moment.weekday() != weekday or moment <= self.start:
            moment += timedelta(days=1)
        found = []
        while moment < self.end:
            found.append(moment)
            moment += timedelta(days=7 * every)
        return found

    def _person(
        self, rng: random.Random, index: int, channel: Channel, emails: set[str]
    ) -> _Person:
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        company, domain, employees = rng.choice(self.companies)
        junk = None
        roll = rng.random()
        if roll < 0.012:
            domain, junk = rng.choice(COMPETITORS), "competitor"
        elif roll < 0.022:
            domain, junk = DISPOSABLE, "disposable"
        elif rng.random() < channel.free_mail:
            domain = rng.choice(FREE_MAIL)
        countries = COUNTRIES
        if channel.source == "event":  # the summit is in Berlin
            countries = COUNTRIES[2:7]
        country, phone_pattern, _, zone = rng.choices(countries, weights=[c[2] for c in countries])[
            0
        ]
        senior = rng.random() < channel.senior
        if rng.random() < 0.05:
            title = "Student"
            senior = False
        else:
            title = rng.choice(SENIOR_TITLES if senior else OTHER_TITLES)
        interest = min(0.99, max(0.01, rng.betavariate(2, 2) * 0.7 + channel.interest * 0.5))
        local = f"{first}.{last}".lower()
        email = f"{local}@{domain}"
        number = 2
        while email in emails:
            email = f"{local}{number}@{domain}"
            number += 1
        emails.add(email)
        payload: dict[str, Any] = {
            "email": email,
            "phone": phone_pattern.format(rng.randrange(10_000)) if rng.random() < 0.6 else None,
            "first_name": first,
            "last_name": last,
            "company": company,
            "title": title,
            # Some forms do not ask for the country: such a lead cannot become an MQL
            # on score (a required field) until someone fills it in.
            "country": None if channel.arrival == "form" and rng.random() < 0.04 else country,
            "source": channel.source,
            "campaign": channel.campaign,
            "utm_source": channel.utm_source,
            "utm_medium": channel.utm_medium,
            "consent": rng.random() < 0.8,
            "attributes": {"employees": employees, "industry": company.split()[1].lower()},
        }
        if channel.arrival == "list" and channel.source == "event":
            created = self.event_import
        elif channel.arrival == "list":
            created = rng.choice(self.list_days)
        else:
            created = _weekday_moment(rng, self.start, self.end - timedelta(minutes=5), zone)
        data = LeadCreate.model_validate(payload, context=self.context)
        person = _Person(
            index=index,
            data=data,
            channel=channel,
            created_at=created,
            interest=interest,
            senior=senior,
            zone=zone,
            use_case=rng.choice(USE_CASES),
            tools=rng.choice(CURRENT_TOOLS),
            junk=junk,
        )
        corporate = domain not in FREE_MAIL and junk is None
        if corporate and rng.random() < 0.9:  # sized up on the company's site
            person.learn("company_size_confirmed", created + timedelta(hours=rng.uniform(2, 60)))
        if senior and rng.random() < 0.75:  # the form's role field says so
            person.learn("budget_owner_known", created)
        return person


# --- the simulation --------------------------------------------------------------------------


@dataclass(order=True)
class _Due:
    at: datetime
    seq: int
    act: Callable[[], object] = field(compare=False)


class _Simulation:
    """Walks the clock through the plan, calling the real use cases at each moment."""

    def __init__(self, ctx: Context, plan: _Plan) -> None:
        self.plan = plan
        self.seed = plan.seed
        self.clock = ManualClock(plan.start)
        # The same database and settings, with a clock of the demo's own.
        self.ctx = Context(engine=ctx.engine, settings=ctx.settings, clock=self.clock)
        self.scoring = True
        self.queue: list[_Due] = []
        self.seq = 0
        self.by_lead: dict[int, _Person] = {}
        self.buffers: dict[tuple[str, datetime], list[ActivityCreate]] = {}
        self.pending: dict[datetime, list[_Person]] = {}
        self.lanes: set[tuple[str, datetime]] = set()
        self.registrations: dict[datetime, list[_Person]] = {}
        self.junk: list[_Person] = []
        self.seen_handoffs: set[int] = set()
        self.timers: set[datetime] = set()
        self.shifts: set[datetime] = set()
        self.moves: dict[int, datetime | None] = {}
        self.prep_items: frozenset[str] = frozenset()
        self.roster: dict[int, Rep] = {}
        self.reps_by_email: dict[str, Rep] = {}
        self.counts = {"activities": 0}
        self.progressed = 0

    # the calendar

    def at(self, moment: datetime, act: Callable[[], object]) -> None:
        if moment > self.plan.end:
            return
        self.seq += 1
        heapq.heappush(self.queue, _Due(_whole(max(moment, self.plan.start)), self.seq, act))

    def run(self, progress: Callable[[int], None] | None, total: int) -> None:
        span = (self.plan.end - self.plan.start).total_seconds() or 1.0
        while self.queue:
            due = heapq.heappop(self.queue)
            if due.at > self.clock.now():
                self.clock.set(due.at)
            due.act()
            if progress is not None:
                done = int(total * (self.clock.now() - self.plan.start).total_seconds() / span)
                if done > self.progressed:
                    progress(done - self.progressed)
                    self.progressed = done
        if progress is not None and total > self.progressed:
            progress(total - self.progressed)

    # setting up

    def load_roster(self) -> None:
        with self.ctx.read() as connection:
            roster = routing_reps(connection)
        self.roster = {rep.id: rep for rep in roster}
        self.reps_by_email = {rep.email: rep for rep in roster}

    def book_absences(self) -> None:
        """A week of holiday for Dana (booked ahead), two sick days for Gus (told on
        the morning): routing passes them over, their SLA clocks stop."""
        span = self.plan.end - self.plan.start
        plans = (
            ("Dana Wright", 0.30, 7.0, "summer holiday", timedelta(days=-20), "sam.becker"),
            ("Gus Jansen", 0.70, 2.0, "sick", timedelta(hours=5), "lea.martin"),
        )
        for name, when, length, note, told, manager in plans:
            rep = self.reps_by_email.get(_rep_email(name))
            if rep is None:
                continue
            first = (self.plan.start + span * when).replace(hour=0, minute=0, second=0)
            absence = AbsenceCreate(
                starts_at=first, ends_at=first + timedelta(days=length), note=note
            )
            actor = operator(f"{manager}@lumen.example")
            self.at(
                first + told,
                partial(self._absence, rep, absence, actor),
            )

    def _absence(self, rep: Rep, absence: AbsenceCreate, actor: Principal) -> None:
        add_absence(self.ctx, rep.id, absence, actor=actor)
        self.load_roster()
        self.schedule_shifts(self.clock.now())

    def schedule_shifts(self, after: datetime) -> None:
        """A pass of the worker's queue lane each time a rep starts working (the queue
        cannot move at any other moment: nobody else became available)."""
        starts: set[datetime] = set()
        for rep in self.roster.values():
            for begin, _ in working_intervals(rep.schedule, after, self.plan.end):
                if begin > after:
                    starts.add(begin)
        for moment in sorted(starts - self.shifts):
            self.shifts.add(moment)
            self.at(moment, self.queue_pass)

    def schedule_plan(self) -> None:
        plan = self.plan
        lists: dict[datetime, list[_Person]] = {}
        for person in plan.people:
            if person.channel.arrival == "list":
                lists.setdefault(person.created_at, []).append(person)
            else:
                self.pending.setdefault(self._sync_moment("web", person.created_at), []).append(
                    person
                )
        for moment in sorted(self.pending):
            self._lane("web", moment)
        for moment in sorted(lists):
            self.at(moment, partial(self.import_list, lists[moment]))
        for index, webinar in enumerate(plan.webinars):
            self.at(webinar + timedelta(hours=2), partial(self.webinar_attendance, index))
        for moment in plan.newsletters:
            self.at(moment, partial(self.newsletter, moment))
        day = plan.start.replace(hour=14, minute=30, second=0, microsecond=0)
        while day < plan.end and self.scoring:
            if day.weekday() < 5 and day > plan.start:
                self.at(day, self.review)
            day += timedelta(days=1)
        self.schedule_spend()

    # leads arrive, and what they do reaches Baton

    def _sync_moment(self, lane: str, at: datetime) -> datetime:
        """When the lane next delivers what happened at ``at``: the marketing
        automation platform syncs every hour (new contacts, with the moment they signed
        up, then their website activity), the email platform every six hours."""
        hours = 2 if lane == "web" else 6
        moment = _whole(at).replace(minute=0, second=0) + timedelta(hours=1)
        while moment.hour % hours:
            moment += timedelta(hours=1)
        return min(moment, self.plan.end)  # the story ends with a last delivery

    def _lane(self, lane: str, moment: datetime) -> None:
        if (lane, moment) not in self.lanes:
            self.lanes.add((lane, moment))
            self.at(moment, partial(self.sync, lane, moment))

    def sync(self, lane: str, moment: datetime) -> None:
        """One delivery of a lane: the hourly sync captures the contacts that signed up
        through a web form since the last one (the import's write path, their sign-up
        moment kept), then both lanes send the events since the last delivery."""
        people = [p for p in self.pending.pop(moment, []) if p.lead_id is None]
        if lane == "web" and people:
            with self.ctx.write() as connection:
                ids = write_leads_in(
                    connection,
                    [(i, p.data) for i, p in enumerate(people)],
                    actor=AUTOMATION,
                    now=moment,
                    report=ImportReport(),
                    captured_at={i: p.created_at for i, p in enumerate(people)},
                )
            for person in people:
                self._arrived(person, ids[(person.data.email or "").lower()])
        events = self.buffers.pop((lane, moment), [])
        self._deliver(events, AUTOMATION if lane == "web" else EMAIL_PLATFORM)

    def capture_now(self, person: _Person) -> None:
        """A form that posts straight to Baton (the demo request): captured at once."""
        result = capture_lead(self.ctx, person.data, actor=WEBSITE)
        self._arrived(person, result.lead_id)

    def import_list(self, people: list[_Person]) -> None:
        """The booth scans after the summit, the publisher's weekly list of report
        downloads: imported in one go, with what each person did before."""
        now = self.clock.now()
        with self.ctx.write() as connection:
            ids = write_leads_in(
                connection,
                [(i, p.data) for i, p in enumerate(people)],
                actor=MARKETING,
                now=now,
                report=ImportReport(),
            )
        events = []
        for person in people:
            self._arrived(person, ids[(person.data.email or "").lower()])
            rng = _rng(self.seed, "list", person.index)
            if person.channel.source == "event":
                day = rng.choice(self.plan.event_days)
                at = day + timedelta(hours=rng.uniform(8, 16))
                kind, props = ActivityType.EVENT_BOOTH_SCAN, {"event": "SaaS Summit Berlin"}
            else:
                at = now - timedelta(days=rng.uniform(0.2, 6.5))
                kind, props = ActivityType.CONTENT_DOWNLOAD, {"title": REPORT_TITLE}
                if rng.random() < 0.6:
                    person.learn("use_case_noted", at)
            events.append(self._event(person, kind, min(at, now), props))
        self._deliver(events, MARKETING)

    def _arrived(self, person: _Person, lead_id: int) -> None:
        person.lead_id = lead_id
        self.by_lead[lead_id] = person
        if person.junk is not None:
            self.junk.append(person)
        if person.channel.source == "webinar":
            self.register(person, person.created_at + timedelta(seconds=30))
        self.plan_engagement(person, person.created_at)

    def plan_engagement(self, person: _Person, since: datetime, boost: float = 0.0) -> None:
        """Website visits, a report download, a chat, a webinar, maybe a hand-raise:
        drawn from the person's interest, spread over the weeks after ``since``."""
        rng = _rng(self.seed, "engagement", person.index, person.recycled)
        interest = min(0.99, person.interest + boost)
        if person.junk is not None:
            interest *= 0.3
        visits = int(interest * 4 + rng.random() * 1.6) + (1 if boost else 0)
        for _ in range(visits):
            at = since + timedelta(days=rng.expovariate(1 / (3 + 18 * (1 - interest))))
            at = _daytime(rng, at, person.zone)
            if at <= since:
                at = since + timedelta(minutes=rng.randrange(3, 90))
            pages = 1 + int(interest * 2.5 + rng.random() * 1.5)
            for step in range(pages):
                hot = rng.random() < interest
                url = rng.choice(PAGES_HOT if hot else PAGES_COLD)
                if rng.random() < 0.05 + 0.1 * interest:
                    url = COMPARE_PAGE
                    if rng.random() < 0.6:
                        person.learn("current_tools_noted", at)
                moment = at + timedelta(minutes=3 * step + rng.randrange(3))
                self._buffer("web", person, ActivityType.PAGE_VIEW, moment, {"url": url})
            if rng.random() < 0.05 + 0.15 * interest:
                moment = at + timedelta(minutes=3 * pages + 2)
                self._buffer("web", person, ActivityType.CHAT, moment, {"topic": person.use_case})
                person.learn("use_case_noted", moment)
                if rng.random() < 0.5:
                    person.learn("current_tools_noted", moment)
                if rng.random() < 0.3:
                    person.learn("budget_owner_known", moment)
        if person.channel.source != "content" and rng.random() < 0.1 + 0.3 * interest:
            # The report's download form asks what they want to analyse.
            at = _daytime(rng, since + timedelta(days=rng.expovariate(1 / 9)), person.zone)
            props = {"title": REPORT_TITLE}
            self._buffer("web", person, ActivityType.CONTENT_DOWNLOAD, at, props)
            if rng.random() < 0.7:
                person.learn("use_case_noted", at)
        if person.channel.source != "webinar" and rng.random() < 0.12 * interest:
            self.register(person, since + timedelta(days=rng.uniform(0, 20)))
        chance = 0.01 + 0.12 * interest**2 + person.channel.hand_raise * 0.7 + boost * 0.15
        if rng.random() < chance:
            if not boost and person.channel.arrival == "form" and rng.random() < 0.3:
                at = since + timedelta(minutes=rng.randrange(2, 30))  # the demo form itself
            else:
                at = _daytime(rng, since + timedelta(days=rng.expovariate(1 / 6)), person.zone)
            kind = rng.choices(
                (ActivityType.DEMO_REQUEST, ActivityType.CONTACT_SALES, ActivityType.INBOUND_CALL),
                weights=(6, 3, 1),
            )[0]
            self.at(at, partial(self.hand_raise, person, kind))

    def register(self, person: _Person, at: datetime) -> None:
        """A webinar sign-up (the website form): the platform sends the attendees later."""
        upcoming = [w for w in self.plan.webinars if w > at]
        if not upcoming:
            return
        props = {"webinar": WEBINAR_TITLE, "date": upcoming[0].date().isoformat()}
        self._buffer("web", person, ActivityType.WEBINAR_REGISTERED, at, props)
        self.registrations.setdefault(upcoming[0], []).append(person)

    def webinar_attendance(self, index: int) -> None:
        """The webinar platform's attendee list, sent two hours after the session."""
        webinar = self.plan.webinars[index]
        events = []
        for person in self.registrations.get(webinar, []):
            rng = _rng(self.seed, "webinar", index, person.index)
            if person.lead_id is not None and rng.random() < 0.35 + 0.35 * person.interest:
                at = webinar + timedelta(minutes=rng.randrange(0, 10))
                props = {"webinar": WEBINAR_TITLE}
                events.append(self._event(person, ActivityType.WEBINAR_ATTENDED, at, props))
                if rng.random() < 0.5:  # the poll: "what would you use it for?"
                    person.learn("use_case_noted", webinar + timedelta(minutes=40))
        self._deliver(events, WEBINAR_PLATFORM)

    def newsletter(self, sent: datetime) -> None:
        """The weekly newsletter to everyone who consented: opens and clicks come back
        from the email platform every six hours."""
        for person in self.by_lead.values():
            if not person.data.consent or person.junk is not None:
                continue
            rng = _rng(self.seed, "newsletter", sent.date(), person.index)
            if rng.random() > 0.08 + 0.3 * person.interest:
                continue
            opened = sent + timedelta(minutes=rng.expovariate(1 / 300))
            subject = {"subject": NEWSLETTER}
            self._buffer("email", person, ActivityType.EMAIL_OPEN, opened, subject)
            if rng.random() < 0.1 + 0.35 * person.interest:
                clicked = opened + timedelta(minutes=rng.randrange(1, 5))
                self._buffer("email", person, ActivityType.EMAIL_CLICK, clicked, subject)
            if rng.random() < 0.004 + 0.01 * person.interest:
                replied = opened + timedelta(minutes=rng.randrange(10, 120))
                self._buffer("email", person, ActivityType.EMAIL_REPLY, replied, subject)
                person.learn("use_case_noted", replied)
            elif person.interest < 0.25 and rng.random() < 0.04:
                self._buffer("email", person, ActivityType.UNSUBSCRIBE, opened, subject)

    def hand_raise(self, person: _Person, kind: ActivityType) -> None:
        """A demo request, a contact-sales form or a call: sent at once, not batched
        (a demo request from someone new captures them first)."""
        now = self.clock.now()
        if person.lead_id is None:
            self.capture_now(person)
        props: dict[str, Any] = {"message": f"We are looking at {person.use_case}."}
        if kind is ActivityType.DEMO_REQUEST:
            props["form"] = "book-a-demo"
        person.learn("use_case_noted", now)
        self._deliver([self._event(person, kind, now, props)], WEBSITE)

    def _event(
        self, person: _Person, kind: ActivityType, at: datetime, props: dict[str, Any]
    ) -> ActivityCreate:
        return ActivityCreate(lead_id=person.lead_id, type=kind, occurred_at=at, properties=props)

    def _buffer(
        self, lane: str, person: _Person, kind: ActivityType, at: datetime, props: dict[str, Any]
    ) -> None:
        """Hold an event for the lane's next delivery. An event after the story's end
        never happens: the last delivery (clamped to the end) carries only what
        happened by then, so no activity is dated after the demo's "now"."""
        at = _whole(at)
        moment = self._sync_moment(lane, at)
        if at > self.plan.end or moment > self.plan.end or person.lead_id is None:
            return
        self._lane(lane, moment)
        self.buffers.setdefault((lane, moment), []).append(self._event(person, kind, at, props))

    def _deliver(self, events: list[ActivityCreate], actor: Principal) -> None:
        if not events:
            return
        events.sort(key=lambda e: (e.occurred_at or self.clock.now(), e.lead_id or 0))
        report = ingest_activities(self.ctx, events, actor=actor)
        self.counts["activities"] += report.stored
        if report.mql:
            self.handed_off()

    # marketing operations

    def review(self) -> None:
        """The morning review: disqualify the competitors and throw-away mailboxes that
        came in since yesterday, then go through the warm leads (score at least
        :data:`WARM`, not handed off) and tick the prep items marketing has learnt."""
        now = self.clock.now()
        moment = now
        for person in self.junk:
            moment += timedelta(seconds=40)
            why = (
                "competitor looking at our pricing"
                if person.junk == "competitor"
                else "throw-away mailbox"
            )
            self.at(moment, partial(self.disqualify, person, why))
        self.junk = []
        with self.ctx.read() as connection:
            warm = connection.execute(
                select(leads.c.id)
                .join(lead_scores, lead_scores.c.lead_id == leads.c.id)
                .where(
                    lead_scores.c.total >= WARM,
                    leads.c.stage.in_((Stage.LEAD.value, Stage.NURTURE.value)),
                )
                .order_by(leads.c.id)
            ).scalars()
            for lead_id in warm:
                lead = self.by_lead.get(lead_id)
                if lead is None or lead.junk is not None:
                    continue
                known = sorted(
                    item
                    for item, at in lead.facts.items()
                    if at <= now and item not in lead.ticked and item in self.prep_items
                )
                if known:
                    moment += timedelta(seconds=90)
                    self.at(moment, partial(self.tick, lead, known))

    def disqualify(self, person: _Person, why: str) -> None:
        """Marketing takes obvious junk out of the funnel, unless sales has it already
        (a hand-raise made it an MQL first: then sales gives the verdict)."""
        with self.ctx.read() as connection:
            stage = connection.execute(
                select(leads.c.stage).where(leads.c.id == person.lead_id)
            ).scalar()
        if stage == Stage.LEAD.value:
            change_stage(
                self.ctx, person.lead_id or 0, Stage.DISQUALIFIED, actor=MARKETING, reason=why
            )

    def tick(self, person: _Person, items: list[str]) -> None:
        assert person.lead_id is not None
        for item in items:
            tick_prep(self.ctx, person.lead_id, item, actor=MARKETING)
            person.ticked.add(item)
        self.handed_off()

    def schedule_spend(self) -> None:
        """Spend per channel and month: the budget imported when the month starts,
        the actuals (which replace it) on the third of the next month; the summit's
        booth the day after it."""
        month = date(self.plan.start.year, self.plan.start.month, 1)
        while month <= self.plan.end.date():
            following = date(month.year + month.month // 12, month.month % 12 + 1, 1)
            opens = datetime(month.year, month.month, 1, 15, tzinfo=UTC)
            closes = datetime(following.year, following.month, 3, 15, tzinfo=UTC)
            self.at(max(opens, self.plan.start), partial(self.import_spend, month, False))
            self.at(closes, partial(self.import_spend, month, True))
            month = following
        day_one, day_two = self.plan.event_days
        row = f"event,saas-summit-berlin,{day_one.date()},{day_two.date()},{EVENT_COST:.2f},USD"
        self.at(self.plan.event_import, lambda: self._spend([row]))

    def import_spend(self, month: date, actual: bool) -> None:
        following = date(month.year + month.month // 12, month.month % 12 + 1, 1)
        last = following - timedelta(days=1)
        rows = []
        for channel in CHANNELS:
            if not channel.monthly_spend:
                continue
            amount = channel.monthly_spend
            if actual:
                amount *= _rng(self.seed, "spend", month, channel.campaign).uniform(0.88, 1.08)
            rows.append(f"{channel.source},{channel.campaign},{month},{last},{amount:.2f},USD")
        self._spend(rows)

    def _spend(self, rows: list[str]) -> None:
        text = "source,campaign,start,end,amount,currency\n" + "\n".join(rows) + "\n"
        import_spend(self.ctx, io.StringIO(text), actor=MARKETING)

    # sales

    def handed_off(self) -> None:
        """Find the handoffs just assigned (an MQL routed at once, the queue, the SLA
        ladder's reassignments) and let their reps play their part."""
        now = self.clock.now()
        with self.ctx.read() as connection:
            found = list(
                connection.execute(
                    select(handoffs.c.id, handoffs.c.lead_id, handoffs.c.rep_id)
                    .where(handoffs.c.status == "assigned", handoffs.c.assigned_at == now)
                    .order_by(handoffs.c.id)
                )
            )
        for handoff_id, lead_id, rep_id in found:
            if handoff_id in self.seen_handoffs:
                continue
            self.seen_handoffs.add(handoff_id)
            person = self.by_lead.get(lead_id)
            rep = self.roster.get(rep_id)
            if person is not None and rep is not None:
                _SalesPlay(self, handoff_id, person, rep).start()
            else:
                self.expect(handoff_id, None)

    def expect(self, handoff_id: int, next_move: datetime | None) -> None:
        """Note when the rep will next act on the handoff (``None``: never), and
        schedule a pass of the worker's SLA lane if a step falls due before that.

        Passes are only run when something is due: a pass at any other moment finds
        nothing to do, so leaving it out changes nothing but the time the demo takes."""
        self.moves[handoff_id] = next_move
        with self.ctx.read() as connection:
            due = connection.execute(
                select(handoffs.c.next_step_at).where(handoffs.c.id == handoff_id)
            ).scalar()
        self._timer(handoff_id, due)

    def _timer(self, handoff_id: int, due: datetime | None) -> None:
        if due is None or due in self.timers or due > self.plan.end:
            return
        move = self.moves.get(handoff_id)
        if move is None or due < move:
            self.timers.add(due)
            self.at(due, self.sla_pass)

    def sla_pass(self) -> None:
        """A pass of the worker's SLA lane: every step due now (remind, reassign, tell
        the manager); then the steps that fall due later are scheduled."""
        now = self.clock.now()
        run_due_steps(self.ctx)
        self.handed_off()
        with self.ctx.read() as connection:
            later = list(
                connection.execute(
                    select(handoffs.c.id, handoffs.c.next_step_at)
                    .where(
                        handoffs.c.status.in_(("assigned", "accepted")),
                        handoffs.c.next_step_at > now,
                    )
                    .order_by(handoffs.c.next_step_at, handoffs.c.id)
                )
            )
        for handoff_id, due in later:
            self._timer(handoff_id, due)

    def queue_pass(self) -> None:
        """A pass of the worker's queue lane: waiting handoffs go to whoever just came
        in."""
        if assign_queued(self.ctx):
            self.handed_off()

    def rep_moment(self, rep: Rep, after: datetime, minutes: float) -> datetime | None:
        """``minutes`` of the rep's working time after ``after``."""
        moment = add_business_minutes(rep.schedule, after, max(0.5, minutes), horizon_days=40)
        return None if moment is None else _whole(moment)

    def verdict(self, handoff_id: int, act: Callable[[], object]) -> bool:
        """Give a verdict; False when the handoff is no longer the rep's to act on (the
        SLA ladder reassigned it meanwhile): the use case refuses, as the API would."""
        try:
            act()
        except Conflict:
            return False
        return True

    def recycled(self, person: _Person) -> None:
        """Back to nurture: the next morning marketing tags the lead, and some come back
        a month or two later, interested again (when they may return is the contract's
        cool-down)."""
        person.recycled += 1
        rng = _rng(self.seed, "recycled", person.index, person.recycled)
        lead_id = person.lead_id or 0
        self.at(
            self.clock.now() + timedelta(hours=18),
            lambda: add_tag(self.ctx, lead_id, "recycled", actor=MARKETING),
        )
        if rng.random() < 0.5:
            again = self.clock.now() + timedelta(days=rng.uniform(25, 55))
            self.at(again, lambda: self.plan_engagement(person, again, boost=0.3))


class _SalesPlay:
    """One rep working one handoff: a first look (accept, or turn down junk and leads
    outside the market at once), a first call (where a lead without budget, without
    authority or without a project is turned down with its catalog reason), a discovery
    meeting (qualify with what was learnt, turn down, or lose), the opportunity and its
    close."""

    def __init__(self, sim: _Simulation, handoff_id: int, person: _Person, rep: Rep) -> None:
        self.sim, self.handoff_id, self.person, self.rep = sim, handoff_id, person, rep
        self.habits = HABITS.get(rep.email, RepHabits(pace=10))
        person.handoffs += 1  # seeded by the lead and its n-th handoff, never by an id
        self.rng = _rng(sim.seed, "handoff", person.index, person.handoffs)
        self.actor = operator(rep.email)
        self.turn_down = self._judge()

    def _judge(self) -> tuple[str, str] | None:
        """What the rep will make of the lead: a rejection reason and note, or None."""
        data, person, rng = self.person.data, self.person, self.rng
        if data.title == "Student":
            return ("junk", "student project, no company behind it")
        if data.country is not None and data.country not in MARKET:
            return ("out_of_area", f"based in {data.country}, outside our market")
        if person.employees < 50 and rng.random() < 0.7:
            return ("no_budget", f"{person.employees} people; no budget for a BI tool")
        if rng.random() < self.habits.picky + (0.0 if person.senior else 0.12):
            return ("wrong_contact", "not the buyer; will come back through their manager")
        if person.interest < 0.45 and rng.random() < 0.45:
            return ("not_ready", "curious, no project before next quarter")
        return None

    def _then(self, days: float, minutes: float, step: Callable[[], None]) -> datetime | None:
        """Schedule ``step`` ``minutes`` into the rep's working time ``days`` from now."""
        after = self.sim.clock.now() + timedelta(days=days)
        moment = self.sim.rep_moment(self.rep, after, minutes)
        if moment is not None:
            self.sim.at(moment, step)
        return moment

    def _do(self, act: Callable[[], object]) -> bool:
        return self.sim.verdict(self.handoff_id, act)

    def _reject(self, code: str, note: str) -> None:
        ctx, handoff_id, actor = self.sim.ctx, self.handoff_id, self.actor
        done = self._do(lambda: reject_handoff(ctx, handoff_id, code=code, note=note, actor=actor))
        if done and code in ("not_ready", "wrong_contact"):
            self.sim.recycled(self.person)

    def start(self) -> None:
        if self.rng.random() < self.habits.ghost:
            self.sim.expect(self.handoff_id, None)  # never opened: the ladder acts
            return
        pace = self.rng.lognormvariate(math.log(self.habits.pace), 0.8)
        self.sim.expect(self.handoff_id, self._then(0, pace, self.first_look))

    def first_look(self) -> None:
        """The packet tells junk, a lead outside the market, and most often a company
        too small or a contact without authority: turned down at once; the rest is
        accepted (the call may still find it not ready, or without budget)."""
        down = self.turn_down
        if down is not None and (
            down[0] in ("junk", "out_of_area")
            or (down[0] in ("no_budget", "wrong_contact") and self.rng.random() < 0.6)
        ):
            self._reject(*down)
            return
        ctx, handoff_id, actor = self.sim.ctx, self.handoff_id, self.actor
        if self._do(lambda: accept_handoff(ctx, handoff_id, actor=actor)):
            call = self._then(0, self.rng.lognormvariate(math.log(25), 0.9), self.first_call)
            self.sim.expect(handoff_id, call)

    def first_call(self) -> None:
        ctx, handoff_id, actor = self.sim.ctx, self.handoff_id, self.actor
        if not self._do(
            lambda: log_touch(ctx, handoff_id, kind="call", note="first call", actor=actor)
        ):
            return
        self.sim.moves[handoff_id] = None  # accepted and touched: the ladder is done
        if self.rng.random() < 0.35:
            add_note(ctx, self.person.lead_id or 0, self.rng.choice(SALES_NOTES), actor=actor)
        if self.turn_down is not None:
            self._reject(*self.turn_down)
        else:
            self._then(self.rng.uniform(1, 6), self.rng.uniform(0, 240), self.discovery)

    def discovery(self) -> None:
        ctx, handoff_id, actor, person, rng = (
            self.sim.ctx,
            self.handoff_id,
            self.actor,
            self.person,
            self.rng,
        )
        if not self._do(
            lambda: log_touch(ctx, handoff_id, kind="meeting", note="discovery call", actor=actor)
        ):
            return
        chance = 0.3 + 0.25 * person.senior + 0.15 * (person.employees >= 120)
        chance *= self.habits.closer * (0.6 + 0.6 * person.interest)
        roll = rng.random()
        if roll < chance:
            fields = {
                "budget": "approved" if person.senior else "in next quarter's plan",
                "authority": person.data.title or "unknown",
                "need": person.use_case,
                "timing": rng.choice(("this quarter", "next quarter")),
            }
            if self._do(lambda: qualify_handoff(ctx, handoff_id, fields=fields, actor=actor)):
                self._then(rng.uniform(1, 5), 60, self.opportunity)
        elif roll < chance + (1 - chance) * 0.45:
            if rng.random() < 0.35:
                self._reject("no_budget", "no budget this year")
            else:
                self._reject("not_ready", "project pushed back")
        else:
            self._do(lambda: lost_handoff(ctx, handoff_id, reason=LOST_REASONS[0], actor=actor))

    def opportunity(self) -> None:
        ctx, handoff_id, actor = self.sim.ctx, self.handoff_id, self.actor
        seats = max(5, min(200, self.person.employees // 20))
        amount = round(seats * 1800 * self.rng.uniform(0.8, 1.3), -2)
        if self._do(lambda: open_opportunity(ctx, handoff_id, amount=amount, actor=actor)):
            self._then(self.rng.uniform(12, 45), 120, self.closing)

    def closing(self) -> None:
        ctx, handoff_id, actor = self.sim.ctx, self.handoff_id, self.actor
        if self.rng.random() < (0.32 + 0.1 * self.person.senior) * self.habits.winner:
            self._do(lambda: won_handoff(ctx, handoff_id, actor=actor))
        else:
            reason = self.rng.choice(LOST_REASONS[1:])
            self._do(lambda: lost_handoff(ctx, handoff_id, reason=reason, actor=actor))


def generate_demo(
    ctx: Context,
    *,
    leads_count: int = 3000,
    seed: int = 7,
    days: int = 90,
    progress: Callable[[int], None] | None = None,
) -> DemoSummary:
    """Fill an empty database with a demo company's last ``days`` days, played through
    the real use cases with the clock walking through them (see the module docstring).
    ``progress`` is told how far the history has got, in ``leads_count`` steps.

    Refuses (:class:`~baton.domain.errors.Conflict`) when the database has leads: demo
    data must never mix with real data."""
    with ctx.read() as connection:
        existing = connection.execute(select(func.count()).select_from(leads)).scalar_one()
    if existing:
        raise Conflict(f"the database already has {existing} leads; the demo needs an empty one")
    end = _whole(ctx.clock.now())
    start = end - timedelta(days=days)
    context = {
        "default_region": ctx.settings.default_phone_region,
        JSON_LIMITS: ctx.settings.json_limits,
    }
    plan = _Plan(seed, leads_count, start, end, context)
    simulation = _Simulation(ctx, plan)
    # The contract was signed and the team hired a week before the story starts.
    simulation.clock.set(start - timedelta(days=7))
    reps_created = _sales_team(simulation.ctx)
    active = active_contract(simulation.ctx)
    version = active[0] if active else sign_demo_contract(simulation.ctx)
    active = active_contract(simulation.ctx)
    simulation.scoring = active is not None
    if active is not None:
        listed = {item.id for item in active[1].prep_checklist}
        simulation.prep_items = frozenset(listed & set(MARKETING_TICKS))
    simulation.clock.set(start)
    simulation.load_roster()
    simulation.book_absences()
    simulation.schedule_shifts(start)
    simulation.schedule_plan()
    simulation.run(progress, leads_count)
    with ctx.read() as connection:

        def count(query: Any) -> int:
            return int(connection.execute(query).scalar_one())

        mql = transitions.c.to_stage == Stage.MQL.value
        return DemoSummary(
            leads=count(select(func.count()).select_from(leads)),
            activities=simulation.counts["activities"],
            transitions=count(select(func.count()).select_from(transitions)),
            notes=count(select(func.count()).select_from(notes)),
            reps=reps_created,
            handoffs=count(select(func.count()).select_from(handoffs)),
            contract_version=version,
            mqls=count(select(func.count()).where(mql)),
            hand_raises=count(
                select(func.count()).where(mql, transitions.c.reason.like("hand-raise%"))
            ),
            prep_ticks=count(select(func.count()).select_from(lead_prep)),
            spend_rows=count(select(func.count()).select_from(spend)),
            spend=float(
                connection.execute(select(func.coalesce(func.sum(spend.c.amount), 0))).scalar_one()
            ),
        )
