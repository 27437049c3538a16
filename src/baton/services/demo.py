"""A realistic, seeded demo company: "Lumen Analytics", a B2B analytics vendor.

Everything is generated here (no data is copied from elsewhere) and goes through the
same use cases as real traffic: leads are captured, events ingested, stages changed by
transitions, notes and tags written. The same seed gives the same company.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from baton.domain.access import Role, operator, system
from baton.domain.activities import ActivityCreate, ActivityType
from baton.domain.errors import Conflict
from baton.domain.leads import LeadCreate
from baton.domain.lifecycle import Stage
from baton.domain.limits import CONTEXT_KEY as JSON_LIMITS
from baton.services.activities import ingest_validated_in
from baton.services.context import Context
from baton.services.imports import ImportReport, write_leads_in
from baton.services.leads import change_stage_in
from baton.store.tables import lead_tags, leads, notes, tag_events

FIRST_NAMES = (
    "Ana",
    "Ben",
    "Chloe",
    "Diego",
    "Elif",
    "Farah",
    "Gustav",
    "Hana",
    "Ines",
    "Jonas",
    "Kenji",
    "Lena",
    "Marco",
    "Nadia",
    "Omar",
    "Priya",
    "Quentin",
    "Rosa",
    "Sven",
    "Tara",
    "Umar",
    "Vera",
    "Wei",
    "Ximena",
    "Yusuf",
    "Zoe",
    "Aaron",
    "Bianca",
    "Carlos",
    "Dana",
)
LAST_NAMES = (
    "Alvarez",
    "Becker",
    "Chen",
    "Dubois",
    "Eriksen",
    "Fischer",
    "Garcia",
    "Haddad",
    "Ivanova",
    "Jensen",
    "Kowalski",
    "Lopez",
    "Moreau",
    "Nakamura",
    "Okafor",
    "Petrov",
    "Quinn",
    "Rossi",
    "Schmidt",
    "Tanaka",
    "Usman",
    "Varga",
    "Weber",
    "Xu",
    "Yilmaz",
    "Zhang",
)
COMPANY_WORDS = (
    "North",
    "Blue",
    "Peak",
    "River",
    "Iron",
    "Bright",
    "Cedar",
    "Atlas",
    "Nova",
    "Summit",
    "Harbor",
    "Pixel",
    "Vertex",
    "Orbit",
    "Granite",
    "Willow",
    "Falcon",
    "Quartz",
)
COMPANY_KINDS = (
    "Logistics",
    "Health",
    "Retail",
    "Labs",
    "Systems",
    "Foods",
    "Energy",
    "Capital",
    "Media",
    "Robotics",
    "Travel",
    "Insurance",
)
SUFFIXES = ("Inc", "GmbH", "Ltd", "SAS", "BV", "LLC", "")
TITLES = (
    "VP Operations",
    "Head of Data",
    "Data Analyst",
    "CFO",
    "IT Manager",
    "CTO",
    "Marketing Manager",
    "BI Lead",
    "Student",
    "Consultant",
    "Director of Finance",
)
COUNTRIES = (
    ("US", "+1 415 555 {:04d}", 0.45),
    ("GB", "+44 20 7946 {:04d}", 0.15),
    ("DE", "+49 30 {:08d}", 0.15),
    ("FR", "+33 1 {:08d}", 0.1),
    ("NL", "+31 20 {:07d}", 0.05),
    ("CA", "+1 416 555 {:04d}", 0.1),
)
CAMPAIGNS = (
    ("webinar", "2026-q3-data-webinar", "linkedin", "paid_social"),
    ("paid_search", "2026-brand-search", "google", "cpc"),
    ("paid_search", "2026-competitor-search", "google", "cpc"),
    ("content", "state-of-analytics-report", "newsletter", "email"),
    ("event", "saas-summit-berlin", None, None),
    ("organic", None, None, None),
    ("referral", "partner-program", "partner", "referral"),
    ("paid_social", "2026-q4-retargeting", "linkedin", "paid_social"),
)
PAGES = (
    "/",
    "/pricing",
    "/product/dashboards",
    "/product/connectors",
    "/customers",
    "/blog/kpi-guide",
    "/docs/getting-started",
    "/security",
    "/compare/spreadsheet",
)
FREE_MAIL = ("gmail.com", "outlook.com", "yahoo.com")
NOTES = (
    "Asked about SSO and the security review; send the SOC 2 summary.",
    "Budget opens in Q1; wants a call in January.",
    "Using spreadsheets today, 12 analysts.",
    "Met at the Berlin booth; interested in the connectors.",
    "Evaluating two competitors, decision in 6 weeks.",
)


@dataclass(frozen=True)
class DemoSummary:
    """How much the demo created."""

    leads: int
    activities: int
    transitions: int
    notes: int
    reps: int = 0
    handoffs: int = 0
    contract_version: int | None = None


TEAMS = (
    ("na", "sam.becker@lumen.example", "America/New_York"),
    ("emea", "lea.martin@lumen.example", "Europe/Berlin"),
    ("enterprise", "sam.becker@lumen.example", "America/Chicago"),
)
REPS = (
    ("Alex Kim", "na", "America/New_York"),
    ("Bea Torres", "na", "America/Chicago"),
    ("Chris Olsen", "na", "America/Los_Angeles"),
    ("Dana Wright", "na", "America/New_York"),
    ("Emil Braun", "emea", "Europe/Berlin"),
    ("Fatima Haddad", "emea", "Europe/Paris"),
    ("Gus Jansen", "emea", "Europe/Amsterdam"),
    ("Hannah Lee", "emea", "Europe/London"),
    ("Ivan Petrov", "enterprise", "America/New_York"),
    ("Julia Costa", "enterprise", "Europe/London"),
)
REJECT_CODES = ("junk", "no_budget", "out_of_area")
DEMO = operator("demo")
DEMO_USERS = (
    ("admin@lumen.example", "Ada Admin", Role.ADMIN, None, ()),
    ("maria.lopez@lumen.example", "Maria Lopez", Role.MARKETING, None, ()),
    ("sam.becker@lumen.example", "Sam Becker", Role.SALES_MANAGER, None, ("na", "enterprise")),
    ("alex.kim@lumen.example", "Alex Kim", Role.REP, "alex.kim@lumen.example", ()),
)
"""One person per role, so each view of Baton can be tried (development only)."""


def demo_users(ctx: Context) -> list[tuple[str, str, str]]:
    """Make the demo's users, one per role, each with a one-time password; returns
    (email, role, password) to print once. Skips users that exist."""
    from baton.domain.users import UserCreate
    from baton.services.users import add_user

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


def _sales_team(ctx: Context) -> int:
    """The demo's sales side: three teams and ten reps in their own time zones, working
    08:00-18:00 on weekdays."""
    from baton.domain.reps import RepCreate, TeamCreate
    from baton.services.reps import create_rep, create_team, list_reps

    if list_reps(ctx, actor=DEMO):
        return 0
    for name, manager, _ in TEAMS:
        create_team(ctx, TeamCreate(name=name, manager_email=manager), actor=DEMO)
    hours = {day: ["08:00-18:00"] for day in ("mon", "tue", "wed", "thu", "fri")}
    for index, (name, team, zone) in enumerate(REPS):
        create_rep(
            ctx,
            RepCreate(
                email=name.lower().replace(" ", ".") + "@lumen.example",
                name=name,
                team=team,
                timezone=zone,
                working_hours=hours,
                capacity=500,
                weight=2.0 if index % 4 == 0 else 1.0,
            ),
            actor=DEMO,
        )
    return len(REPS)


def _company(rng: random.Random) -> tuple[str, str]:
    word = rng.choice(COMPANY_WORDS) + rng.choice(COMPANY_WORDS).lower()
    name = f"{word} {rng.choice(COMPANY_KINDS)}"
    suffix = rng.choice(SUFFIXES)
    domain = name.lower().replace(" ", "") + rng.choice((".com", ".io", ".co"))
    return (f"{name} {suffix}".strip(), domain)


def generate_demo(
    ctx: Context,
    *,
    leads_count: int = 3000,
    seed: int = 7,
    days: int = 90,
    progress: Callable[[int], None] | None = None,
) -> DemoSummary:
    """Fill an empty database with a demo company's last ``days`` days of marketing.

    Refuses (:class:`~baton.domain.errors.Conflict`) when the database has leads: demo
    data must never mix with real data."""
    with ctx.read() as connection:
        existing = connection.execute(select(func.count()).select_from(leads)).scalar_one()
    if existing:
        raise Conflict(f"the database already has {existing} leads; the demo needs an empty one")
    rng = random.Random(seed)  # noqa: S311 (demo data, not secrets)
    now = ctx.clock.now()
    start = now - timedelta(days=days)
    companies = [_company(rng) for _ in range(max(20, leads_count // 6))]
    people: list[tuple[LeadCreate, datetime, float]] = []
    context = {
        "default_region": ctx.settings.default_phone_region,
        JSON_LIMITS: ctx.settings.json_limits,
    }
    for i in range(leads_count):
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        company, domain = rng.choice(companies)
        if rng.random() < 0.15:
            domain = rng.choice(FREE_MAIL)
        country, phone_pattern, _ = rng.choices(COUNTRIES, weights=[c[2] for c in COUNTRIES])[0]
        source, campaign, utm_source, utm_medium = rng.choice(CAMPAIGNS)
        interest = rng.random()
        data = LeadCreate.model_validate(
            {
                "email": f"{first}.{last}{i}@{domain}".lower(),
                "phone": phone_pattern.format(rng.randrange(10_000))
                if rng.random() < 0.6
                else None,
                "first_name": first,
                "last_name": last,
                "company": company,
                "title": rng.choice(TITLES),
                "country": country,
                "source": source,
                "campaign": campaign,
                "utm_source": utm_source,
                "utm_medium": utm_medium,
                "consent": rng.random() < 0.8,
                "attributes": {
                    "employees": rng.choice((8, 40, 120, 450, 1200, 5000)),
                    "industry": company.split()[1].lower(),
                },
            },
            context=context,
        )
        created = start + timedelta(seconds=rng.randrange(0, days * 86400))
        people.append((data, created, interest))
    people.sort(key=lambda p: p[1])
    actions: list[tuple[datetime, int, Any]] = []
    for index, (data, created, interest) in enumerate(people):
        actions.append((created, 0, ("lead", index, data)))
        for event in _events_for(rng, data, created, interest, now):
            actions.append((event.occurred_at, 1, ("event", index, event)))
        moment = created
        for stage, reason in _path_for(rng, interest):
            moment = min(now, moment + timedelta(hours=rng.randrange(2, 24 * 12)))
            actions.append((moment, 2, ("stage", index, (stage, reason))))
    report = ImportReport()
    counts = {"events": 0, "transitions": 0, "notes": 0}
    reps_created = _sales_team(ctx)
    from baton.services.contracts import active_contract

    active = active_contract(ctx)
    version = active[0] if active else sign_demo_contract(ctx)
    active = active_contract(ctx)
    contract = active[1] if active else None
    script = _SalesScript(rng, contract)
    with ctx.write() as connection:
        ids = write_leads_in(
            connection,
            list(enumerate(p[0] for p in people)),
            actor=DEMO,
            now=now,
            report=report,
            captured_at={i: p[1] for i, p in enumerate(people)},
        )
        if progress:
            progress(leads_count // 4)
        events = [(i, a[2][2]) for i, a in enumerate(a for a in actions if a[2][0] == "event")]
        for start_at in range(0, len(events), 10_000):
            ingest_validated_in(
                connection,
                events[start_at : start_at + 10_000],
                actor=DEMO,
                now=now,
                score=False,
            )
        counts["events"] = len(events)
        if progress:
            progress(leads_count // 4)
        moves = sorted((a for a in actions if a[2][0] == "stage"), key=lambda a: a[0])
        step = max(1, len(moves) // max(1, leads_count - 2 * (leads_count // 4)))
        for done, (at, _, (_, index, (stage, reason))) in enumerate(moves, start=1):
            lead_id = ids[(people[index][0].email or "").lower()]
            actor = "marketing-ops" if stage in (Stage.MQL, Stage.DISQUALIFIED) else "sales"
            at, actor = script.move(connection, lead_id, stage, reason, at=at, now=now)
            counts["transitions"] += 1
            if stage is Stage.NURTURE:
                connection.execute(
                    lead_tags.insert().values(
                        lead_id=lead_id, tag="cold", added_by=actor, added_at=at
                    )
                )
                connection.execute(
                    tag_events.insert().values(
                        lead_id=lead_id, tag="cold", action="added", actor=actor, occurred_at=at
                    )
                )
            if stage in (Stage.SAL, Stage.NURTURE) and rng.random() < 0.4:
                connection.execute(
                    notes.insert().values(
                        lead_id=lead_id, author=actor, body=rng.choice(NOTES), created_at=at
                    )
                )
                counts["notes"] += 1
            if progress and done % step == 0:
                progress(1)
    if version is not None:
        from baton.services.contracts import rescore_active

        rescore_active(ctx, actor=DEMO)
    return DemoSummary(
        leads=report.created,
        activities=counts["events"],
        transitions=counts["transitions"],
        notes=counts["notes"],
        reps=reps_created,
        handoffs=script.handoffs,
        contract_version=version,
    )


class _SalesScript:
    """Plays sales' part in the demo's history through the real use cases: an MQL is
    routed when it happens (or from the queue as soon as a rep is in), and every later
    stage is a verdict by the assigned rep, with a first touch before acceptance."""

    def __init__(self, rng: random.Random, contract: Any) -> None:
        self.rng = rng
        self.contract = contract
        self.open: dict[int, tuple[int, str, datetime]] = {}
        self.handed_off: set[int] = set()
        self.handoffs = 0

    def move(
        self,
        connection: Any,
        lead_id: int,
        stage: Stage,
        reason: str,
        *,
        at: datetime,
        now: datetime,
    ) -> tuple[datetime, str]:
        from baton.services import handoffs as h

        current = self.open.get(lead_id)
        if stage is Stage.MQL:
            self.handed_off.add(lead_id)
        elif current is None and lead_id in self.handed_off:
            return at, "sales"  # never got a rep in the demo's window: it stays queued
        if stage is Stage.MQL or current is None or self.contract is None:
            actor = "marketing-ops" if stage in (Stage.MQL, Stage.DISQUALIFIED) else "sales"
            change_stage_in(
                connection, lead_id, stage, actor=operator(actor), reason=reason, now=at
            )
            if stage is Stage.MQL:
                self.handoffs += 1
                self._route(connection, lead_id, at, now)
            return at, actor
        handoff_id, rep, since = current
        at = max(at, since + timedelta(minutes=self.rng.randrange(3, 90)))
        at = min(at, now)
        if stage is Stage.SAL:
            h.log_touch_in(connection, handoff_id, kind="call", actor=operator(rep), now=at)
            h.accept_handoff_in(connection, handoff_id, actor=operator(rep), now=at)
        elif stage is Stage.SQL:
            fields = {"budget": "approved", "authority": "VP", "need": "reporting", "timing": "Q3"}
            h.qualify_handoff_in(connection, handoff_id, fields=fields, actor=operator(rep), now=at)
        elif stage is Stage.OPPORTUNITY:
            amount = float(self.rng.choice((12_000, 24_000, 48_000, 90_000)))
            h.open_opportunity_in(
                connection, handoff_id, amount=amount, actor=operator(rep), now=at
            )
        elif stage is Stage.CUSTOMER:
            h.won_handoff_in(connection, handoff_id, actor=operator(rep), now=at)
        elif stage is Stage.LOST:
            h.lost_handoff_in(connection, handoff_id, reason=reason, actor=operator(rep), now=at)
        elif stage is Stage.NURTURE:
            h.reject_handoff_in(
                connection, handoff_id, code="not_ready", actor=operator(rep), now=at
            )
        else:
            code = self.rng.choice(REJECT_CODES)
            h.reject_handoff_in(connection, handoff_id, code=code, actor=operator(rep), now=at)
        self.open[lead_id] = (handoff_id, rep, at)
        return at, rep

    def _route(self, connection: Any, lead_id: int, at: datetime, now: datetime) -> None:
        from baton.domain.business_hours import next_working_moment
        from baton.services.handoffs import assign_in, handoff_query
        from baton.services.reps import routing_reps
        from baton.store.tables import handoffs

        def current(*conditions: Any) -> Any:
            return connection.execute(handoff_query().where(*conditions)).mappings().first()

        row = current(handoffs.c.lead_id == lead_id, handoffs.c.status.in_(("assigned", "queued")))
        if row is None:
            return
        if row["status"] == "queued":
            if self.contract is None:
                return
            roster = routing_reps(connection)
            when = at
            give_up = min(now, at + timedelta(days=4))
            while when < give_up:
                moments = [
                    next_working_moment(r.schedule, when + timedelta(minutes=1), horizon_days=8)
                    for r in roster
                ]
                upcoming = [m for m in moments if m is not None]
                if not upcoming or min(upcoming) >= give_up:
                    break
                when = min(upcoming)
                if assign_in(connection, row, self.contract, now=when, actor=system("baton")):
                    break
                when += timedelta(hours=1)
            row = current(handoffs.c.id == row["id"], handoffs.c.status == "assigned")
            if row is None:
                return
        self.open[lead_id] = (int(row["id"]), str(row["rep_email"]), row["assigned_at"])


def _events_for(
    rng: random.Random, data: LeadCreate, created: datetime, interest: float, now: datetime
) -> list[ActivityCreate]:
    span = max(60, int((now - created).total_seconds()))
    events = []
    for _ in range(int(interest * 14) + 1):
        at = created + timedelta(seconds=rng.randrange(0, span))
        kind = rng.choices(
            (
                ActivityType.PAGE_VIEW,
                ActivityType.EMAIL_OPEN,
                ActivityType.EMAIL_CLICK,
                ActivityType.CONTENT_DOWNLOAD,
                ActivityType.WEBINAR_ATTENDED,
            ),
            weights=(50, 25, 12, 8, 5),
        )[0]
        props: dict[str, Any] = {}
        if kind is ActivityType.PAGE_VIEW:
            props = {"url": rng.choice(PAGES)}
        elif kind in (ActivityType.EMAIL_OPEN, ActivityType.EMAIL_CLICK):
            props = {"subject": "Your analytics, minus the spreadsheets"}
        elif kind is ActivityType.CONTENT_DOWNLOAD:
            props = {"title": "State of analytics 2026"}
        events.append(ActivityCreate(email=data.email, type=kind, occurred_at=at, properties=props))
    if interest > 0.85:
        at = created + timedelta(seconds=rng.randrange(0, min(span, 5 * 86400)))
        events.append(
            ActivityCreate(
                email=data.email,
                type=ActivityType.DEMO_REQUEST,
                occurred_at=at,
                properties={"form": "book-a-demo"},
            )
        )
    return events


def _path_for(rng: random.Random, interest: float) -> list[tuple[Stage, str]]:
    path: list[tuple[Stage, str]] = []
    if interest > 0.6:
        path.append((Stage.MQL, "engaged: pricing and demo interest"))
        roll = rng.random()
        if roll < 0.15:
            return path  # handed off, waiting for sales
        if roll < 0.6:
            path.append((Stage.SAL, "accepted by sales"))
            if rng.random() < 0.5:
                path.append((Stage.SQL, "budget, authority, need and timing confirmed"))
                if rng.random() < 0.5:
                    path.append((Stage.OPPORTUNITY, "opportunity opened"))
                    path.append(
                        rng.choice(
                            ((Stage.CUSTOMER, "closed won"), (Stage.LOST, "chose a competitor"))
                        )
                    )
        elif roll < 0.8:
            path.append((Stage.NURTURE, "rejected: not ready yet"))
        else:
            path.append((Stage.DISQUALIFIED, "rejected: student, no budget"))
    elif interest < 0.08:
        path.append((Stage.DISQUALIFIED, "unsubscribed from all email"))
    return path


EXAMPLE_CONTRACT = Path(__file__).resolve().parents[3] / "contracts" / "example.yaml"


def sign_demo_contract(ctx: Context, body: str | None = None) -> int | None:
    """Store, sign (marketing: Maria Lopez, sales: Sam Becker) and activate the example
    contract, so the demo shows scores, grades and handoff reasons. Returns the version,
    or ``None`` when no contract text is available (an installed package without the
    repository's ``contracts/`` folder)."""
    from baton.services.contracts import activate_contract, approve_contract, create_contract

    if body is None:
        if not EXAMPLE_CONTRACT.exists():
            return None
        body = EXAMPLE_CONTRACT.read_text(encoding="utf-8")
    version = create_contract(ctx, body, actor=operator("Maria Lopez")).version
    approve_contract(ctx, version, role="marketing", actor=operator("Maria Lopez"))
    approve_contract(ctx, version, role="sales", actor=operator("Sam Becker"))
    activate_contract(ctx, version, actor=operator("Admin"))
    return version
