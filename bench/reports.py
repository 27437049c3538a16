"""Reports over a year of history: seconds per report on SQLite and PostgreSQL.

Fills a migrated database with a consistent synthetic year (written in bulk, straight
to the driver: ``executemany`` on SQLite, ``COPY`` on PostgreSQL; the set-up is timed
but not the figure): the example contract active, 3 teams and 50 reps, N leads over
2025 from 8 sources and 48 campaigns, their stage transitions along the lifecycle
(about a quarter become MQLs, then SAL, SQL, opportunity, customer or lost; rejections
to nurture or disqualified; some recycled leads come back), one handoff chain per MQL
(reassignments, SLA deadlines in the reps' working hours, touches, verdicts, deal
values) with its events, spend per source (or campaign) per month, and M activities
spread over the leads. The bulk load goes around the use cases, so the milestones the
reports read are then recomputed from that history (``baton.services.milestones.
rebuild``, timed). Then ANALYZE, and each report of ``baton.services.reports`` over one
year and over one month, timed (best of ``--repeat`` runs). A kept database from an
older schema is migrated on reuse (the migration backfills the milestones).

    python bench/reports.py                          # 1,000,000 leads, 10,000,000 events, both
    python bench/reports.py --scale 0.05 --backend sqlite
    python bench/reports.py --keep /tmp/reports.db --backend sqlite     # generate once, reuse
    python bench/reports.py --keep /tmp/reports-pg/ --backend postgresql   # kept pgserver data
    python bench/reports.py --scale 0.1 --explain     # plans of the statements of slow reports

``--keep`` takes a SQLite file, a ``postgresql://`` URL or a directory (ending in ``/``)
for a kept PostgreSQL cluster; a database already filled with the same sizes is reused
as it is, an empty one is filled. Give it a scratch database.
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import math
import random
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from sqlalchemy import Engine, event, inspect, text

from _common import BENCH, MARIA, SAM, context, database, machine
from baton.domain.reps import RepCreate, TeamCreate
from baton.services import milestones
from baton.services.context import Context

TARGET_S = 2.0
EXAMPLE = Path(__file__).parent.parent / "contracts" / "example.yaml"

DAY = 86_400.0
EPOCH_DAY = date(1970, 1, 1).toordinal()
YEAR_START = datetime(2025, 1, 1, tzinfo=UTC)
YEAR_END = datetime(2026, 1, 1, tzinfo=UTC)
NOW_DT = datetime(2026, 1, 15, 9, 0, tzinfo=UTC)
START = YEAR_START.timestamp()
YEAR = YEAR_END.timestamp() - START
NOW = NOW_DT.timestamp()
PERIODS = (
    ("year", date(2025, 1, 1), date(2026, 1, 1)),
    ("month", date(2025, 6, 1), date(2025, 7, 1)),
)

# name, share of leads, MQL rate, utm medium, monthly budget (USD), budget per campaign
# fmt: off
SOURCES = (
    ("google_ads", 0.24, 0.20, "cpc", 60_000, True),
    ("linkedin", 0.14, 0.28, "paid_social", 45_000, True),
    ("organic", 0.20, 0.22, "organic", 8_000, False),
    ("webinar", 0.10, 0.34, "webinar", 12_000, True),
    ("content", 0.12, 0.18, "content", 10_000, False),
    ("events", 0.06, 0.40, "event", 30_000, True),
    ("referral", 0.06, 0.42, "referral", 3_000, False),
    ("partner", 0.08, 0.30, "partner", 9_000, False),
)
TOPICS = ("brand", "pricing", "kpi-guide", "dashboards", "retargeting", "launch")
COUNTRIES = (
    ("US", 35), ("CA", 6), ("GB", 12), ("DE", 12), ("FR", 8), ("NL", 5), ("ES", 4), ("IN", 8),
    ("BR", 5), ("AU", 5),
)
EMEA = frozenset({"GB", "DE", "FR", "NL"})
EMPLOYEES = ((8, 15), (35, 20), (120, 20), (350, 15), (900, 10), (2500, 12), (12000, 8))
TITLES = (
    "VP Marketing", "Head of Data", "Data Analyst", "Operations Manager", "CTO",
    "Director of Finance", "BI Lead", "Consultant", "Student", "Software Engineer",
)
FIRST = (
    "Ana", "Ben", "Chloe", "Diego", "Elif", "Farah", "Gustav", "Hana", "Ines", "Jonas", "Kenji",
    "Lena", "Marco", "Nadia", "Omar", "Priya", "Rosa", "Sven", "Tara", "Wei",
)
LAST = (
    "Alvarez", "Becker", "Chen", "Dubois", "Eriksen", "Fischer", "Garcia", "Haddad", "Jensen",
    "Kowalski", "Lopez", "Moreau", "Nakamura", "Okafor", "Rossi", "Schmidt",
)
WORDS = ("North", "Blue", "Peak", "River", "Iron", "Bright", "Cedar", "Atlas", "Nova", "Summit")
KINDS = ("Logistics", "Health", "Retail", "Labs", "Systems", "Foods", "Energy", "Media")
COMPANIES = 60_000
# team: (time zone, UTC offset in hours without DST, reps)
TEAMS = {
    "enterprise": ("America/Chicago", -6, 10),
    "emea": ("Europe/Berlin", 1, 15),
    "na": ("America/New_York", -5, 25),
}
# (code, outcome, marketing credit, weight): the example contract's catalog
REJECTIONS = (
    ("not_ready", "recycle", True, 30),
    ("wrong_contact", "recycle", True, 15),
    ("out_of_area", "disqualify", False, 15),
    ("no_budget", "disqualify", False, 20),
    ("junk", "disqualify", False, 20),
)
PAGES = ("/", "/pricing", "/product", "/product/dashboards", "/docs", "/blog/kpi-guide")
# (type, properties, weight): cheap but plausible engagement
ACTIVITY_KINDS = (
    *(("page_view", f'{{"url": "{p}"}}', w)
      for p, w in zip(PAGES, (20, 9, 10, 6, 5, 8), strict=True)),
    ("email_open", '{"email": "newsletter"}', 14),
    ("email_open", '{"email": "nurture-3"}', 6),
    ("email_click", '{"email": "newsletter", "url": "/blog/kpi-guide"}', 7),
    ("ad_click", '{"network": "search"}', 4),
    ("content_download", '{"asset": "kpi-guide.pdf"}', 4),
    ("webinar_registered", '{"webinar": "dashboards-101"}', 2),
    ("webinar_attended", '{"webinar": "dashboards-101"}', 1.5),
    ("form_submit", '{"form": "newsletter"}', 2),
    ("chat", '{"topic": "pricing"}', 0.5),
)
FIRST_ACTIVITY = ("form_submit", '{"form": "signup"}')
HAND_RAISE = ("demo_request", '{"form": "demo"}')

LEAD_COLUMNS = (
    "id", "email", "email_key", "email_domain", "phone", "first_name", "last_name", "company",
    "company_key", "title", "country", "source", "campaign", "last_source", "last_campaign",
    "utm_source", "utm_medium", "utm_campaign", "consent", "attributes", "stage",
    "stage_changed_at", "merged_into_id", "created_at", "updated_at", "last_activity_at",
    "activity_count",
)
ACTIVITY_COLUMNS = ("lead_id", "type", "occurred_at", "received_at", "properties")
TRANSITION_COLUMNS = (
    "lead_id", "from_stage", "to_stage", "actor", "reason", "occurred_at", "contract_version",
)
HANDOFF_COLUMNS = (
    "id", "lead_id", "rep_id", "status", "chain_id", "previous_id", "contract_version", "mql_at",
    "created_at", "assigned_at", "notified_at", "accepted_at", "first_touch_at", "closed_at",
    "outcome", "rejection_code", "marketing_credit", "accept_due_at", "touch_due_at",
    "reassignments", "routing", "qualification", "deal_value",
)
EVENT_COLUMNS = ("handoff_id", "kind", "actor", "occurred_at", "detail")

# fmt: on
_DAYS = [date.fromordinal(EPOCH_DAY + d).isoformat() for d in range(int(NOW // DAY) + 2)]


def stamp(t: float) -> str:
    """Epoch seconds as the text SQLAlchemy stores on SQLite (naive UTC, microseconds);
    PostgreSQL reads the same text as timestamptz in a UTC session."""
    s = int(t)
    d, rest = divmod(s, 86_400)
    h, rest = divmod(rest, 3600)
    m, sec = divmod(rest, 60)
    return "%s %02d:%02d:%02d.%06d" % (_DAYS[d], h, m, sec, int((t - s) * 1e6))  # noqa: UP031


# --- working time (Monday to Friday 09:00-17:00 local, a fixed UTC offset) -------------

_OPEN, _CLOSE = 9 * 3600.0, 17 * 3600.0


def business_add(t: float, minutes: float, offset_h: int) -> float:
    """The moment ``minutes`` of working time after ``t`` (``t`` itself, or the next
    opening when out of hours, for 0)."""
    off = offset_h * 3600.0
    local = t + off
    left = minutes * 60.0
    while True:
        day0 = local - local % DAY
        if (int(day0 // DAY) + 3) % 7 < 5:  # 1970-01-01 was a Thursday
            begin = max(local, day0 + _OPEN)
            end = day0 + _CLOSE
            if begin < end:
                if begin + left <= end:
                    return begin + left - off
                left -= end - begin
        local = day0 + DAY


def business_minutes(t0: float, t1: float, offset_h: int) -> float:
    """Working minutes between ``t0`` and ``t1``."""
    off = offset_h * 3600.0
    local, stop = t0 + off, t1 + off
    total = 0.0
    while local < stop:
        day0 = local - local % DAY
        if (int(day0 // DAY) + 3) % 7 < 5:
            begin, end = max(local, day0 + _OPEN), min(stop, day0 + _CLOSE)
            if begin < end:
                total += end - begin
        local = day0 + DAY
    return total / 60.0


# --- the synthetic history -----------------------------------------------------------


@dataclass
class Rep:
    id: int
    email: str
    speed: float  # multiplies this rep's reaction times


@dataclass
class Lead:
    """Per-lead state while its history is generated."""

    id: int
    created: float
    team: str
    mql_rate: float
    stage: str = "lead"
    changed: float = 0.0
    mql_at: float | None = None
    hand_raise: bool = False
    merged_into: int | None = None


@dataclass
class Buffers:
    leads: list[tuple[Any, ...]] = field(default_factory=list)
    activities: list[tuple[Any, ...]] = field(default_factory=list)
    transitions: list[tuple[Any, ...]] = field(default_factory=list)
    handoffs: list[tuple[Any, ...]] = field(default_factory=list)
    handoff_events: list[tuple[Any, ...]] = field(default_factory=list)


def _lognormal(rng: random.Random, median: float, sigma: float) -> float:
    return rng.lognormvariate(math.log(median), sigma)


class History:
    """Generates the year lead by lead, in order of creation (ids follow time)."""

    def __init__(
        self,
        n_leads: int,
        n_activities: int,
        reps: dict[str, list[Rep]],
        contract_version: int,
        *,
        seed: int,
        business_column: bool,
    ) -> None:
        self.rng = random.Random(seed)
        self.n_leads = n_leads
        self.n_activities = n_activities
        self.reps = reps
        self.cv = contract_version
        self.business_column = business_column
        self.out = Buffers()
        self.next_handoff = 1
        self.activity_kinds = [(k, p) for k, p, _ in ACTIVITY_KINDS]
        self.activity_cum = list(_cumulative(w for *_, w in ACTIVITY_KINDS))
        self.sources = [s[0] for s in SOURCES]
        self.source_cum = list(_cumulative(s[1] for s in SOURCES))
        self.source_info = {s[0]: s for s in SOURCES}
        self.countries = [c for c, _ in COUNTRIES]
        self.country_cum = list(_cumulative(w for _, w in COUNTRIES))
        self.employees = [e for e, _ in EMPLOYEES]
        self.employees_cum = list(_cumulative(w for _, w in EMPLOYEES))
        self.hours_cum = list(
            _cumulative(_busy(START + h * 3600) for h in range(int(YEAR // 3600)))
        )

    # -- one chunk of leads ------------------------------------------------------------

    def chunk(self, first: int, last: int) -> Buffers:
        """Leads ``first``..``last - 1`` (0-based) and everything that hangs off them."""
        rng = self.rng
        self.out = Buffers()
        people: list[tuple[Lead, tuple[Any, ...]]] = []
        for i in range(first, last):
            lead, fields = self._lead(i)
            self._path(lead)
            people.append((lead, fields))
        # Activities: this chunk's exact share of the total, skewed towards MQLs.
        quota = round(self.n_activities * last / self.n_leads) - round(
            self.n_activities * first / self.n_leads
        )
        weights = [
            (1.0 + rng.expovariate(1 / 3.0)) if lead.mql_at is not None else rng.expovariate(1.0)
            for lead, _ in people
        ]
        scale = quota / (sum(weights) or 1.0)
        acc, given = 0.0, 0
        for (lead, fields), weight in zip(people, weights, strict=True):
            acc += weight * scale
            count = min(int(acc + 0.5), quota) - given
            given += count
            last_at = self._activities(lead, count) if count else None
            self.out.leads.append(
                (
                    *fields,
                    lead.stage,
                    stamp(lead.changed),
                    lead.merged_into,
                    stamp(lead.created),
                    stamp(max(lead.changed, last_at or lead.created)),
                    stamp(last_at) if last_at is not None else None,
                    count,
                )
            )
        return self.out

    def _lead(self, i: int) -> tuple[Lead, tuple[Any, ...]]:
        rng = self.rng
        lead_id = i + 1
        # Leads arrive in order of id, mostly on weekdays in European and American hours.
        at = (i + rng.random()) / self.n_leads * self.hours_cum[-1]
        hour = bisect.bisect_right(self.hours_cum, at)
        before = self.hours_cum[hour - 1] if hour else 0.0
        created = START + (hour + (at - before) / (self.hours_cum[hour] - before)) * 3600
        source = rng.choices(self.sources, cum_weights=self.source_cum)[0]
        campaign = f"{source}-{TOPICS[rng.randrange(len(TOPICS))]}"
        country = rng.choices(self.countries, cum_weights=self.country_cum)[0]
        employees = rng.choices(self.employees, cum_weights=self.employees_cum)[0]
        team = "enterprise" if employees >= 1000 else "emea" if country in EMEA else "na"
        company_no = rng.randrange(COMPANIES)
        company = f"{WORDS[company_no % 10]} {WORDS[company_no // 10 % 10]} {KINDS[company_no % 8]}"
        domain = f"{company.split()[0].lower()}{company_no}.example.com"
        first, last = FIRST[rng.randrange(20)], LAST[rng.randrange(16)]
        email = f"{first}.{last}.{lead_id}@{domain}".lower()
        last_campaign = campaign if rng.random() < 0.8 else f"{source}-retargeting"
        fields = (
            lead_id,
            email,
            email,
            domain,
            f"+1555{lead_id:07d}" if rng.random() < 0.6 else None,
            first,
            last,
            company,
            f"{company.lower()} {company_no}",
            TITLES[rng.randrange(len(TITLES))],
            country,
            source,
            campaign,
            source,
            last_campaign,
            source,
            self.source_info[source][3],
            campaign,
            rng.random() < 0.8,
            '{"employees": %d}' % employees,  # noqa: UP031
        )
        lead = Lead(lead_id, created, team, self.source_info[source][2], changed=created)
        return lead, fields

    def _activities(self, lead: Lead, count: int) -> float:
        """Write ``count`` activities of ``lead``; returns the last one's time."""
        rng = self.rng
        begin = lead.created
        span = min(NOW, begin + 150 * DAY) - begin
        times = sorted([begin + rng.random() * span for _ in range(count)])
        kinds = rng.choices(self.activity_kinds, cum_weights=self.activity_cum, k=count)
        times[0] = begin
        kinds[0] = FIRST_ACTIVITY
        if lead.hand_raise and lead.mql_at is not None and count > 1:
            at = lead.mql_at - 1.0
            times[1:] = sorted([*times[2:], at])
            kinds[times.index(at)] = HAND_RAISE
        lead_id = lead.id
        for t, (kind, props) in zip(times, kinds, strict=True):
            s = stamp(t)
            self.out.activities.append((lead_id, kind, s, s, props))
        return times[-1]

    # -- the lifecycle ------------------------------------------------------------------

    def _move(
        self, lead: Lead, to: str, at: float, actor: str, reason: str, cv: int | None = None
    ) -> None:
        self.out.transitions.append((lead.id, lead.stage, to, actor, reason, stamp(at), cv))
        lead.stage, lead.changed = to, at

    def _event(self, handoff_id: int, kind: str, actor: str, at: float, detail: str) -> None:
        self.out.handoff_events.append((handoff_id, kind, actor, stamp(at), detail))

    def _path(self, lead: Lead) -> None:
        rng = self.rng
        if rng.random() < lead.mql_rate:
            hand_raise = rng.random() < 0.35
            if hand_raise:
                delay = rng.uniform(60, 3600)
            else:  # days later, at about the time of day the lead is usually active
                delay = max(60.0, int(rng.expovariate(1 / 12)) * DAY + rng.gauss(0, 7200))
            mql_at = lead.created + delay
            if mql_at < NOW:
                lead.mql_at, lead.hand_raise = mql_at, hand_raise
                why = "hand raise: demo_request" if hand_raise else "score 64 >= 60, grade B"
                self._move(lead, "mql", mql_at, "baton", why, self.cv)
                ended = self._chain(lead, mql_at)
                if ended is not None and lead.stage == "nurture" and rng.random() < 0.3:
                    back = ended + 30 * DAY + rng.expovariate(1 / (45 * DAY))
                    if back < NOW:
                        why = "score 61 >= 60 after the recycle cooldown"
                        self._move(lead, "mql", back, "baton", why, self.cv)
                        self._chain(lead, back)
                return
        u = rng.random()
        at = lead.created + rng.uniform(600, 3 * DAY)
        if u < 0.05 and at < NOW:
            self._move(lead, "disqualified", at, "marketing-ops", "junk: test or student entry")
        elif u < 0.09 and at < NOW:
            self._move(lead, "nurture", at, "marketing-ops", "not a fit yet")
        elif u < 0.093 and lead.id > 1:
            lead.merged_into = rng.randrange(1, lead.id)

    def _chain(self, lead: Lead, mql_at: float) -> float | None:
        """One MQL's handoff chain; returns when it left sales' hands (None: still open,
        or won/lost)."""
        rng = self.rng
        _, off, _ = TEAMS[lead.team]
        pool = self.reps[lead.team]
        hid = chain = self._new_handoff()
        opens = business_add(mql_at, 0, off)
        if opens > mql_at + 1:  # nobody works now: queued until the team's morning
            self._event(hid, "queued", "baton", mql_at, '{"why": "nobody available"}')
            assigned = opens + rng.uniform(1, 90)
        else:
            assigned = mql_at + rng.uniform(0.05, 0.6)
        routing = ROUTING[lead.team]
        if assigned >= NOW:
            queued = Handoff(hid, None, None, mql_at, status="queued")
            self._handoff(lead, queued, chain, None, 0, mql_at, routing)
            return None
        u = rng.random()
        verdict = "reject" if u < 0.18 else "expire" if u < 0.25 else "accept"
        first_assigned, created, previous, reassignments = assigned, mql_at, None, 0
        had: set[int] = set()
        while True:
            rep = pool[rng.randrange(len(pool))]
            while rep.id in had:
                rep = pool[rng.randrange(len(pool))]
            h = Handoff(hid, rep, assigned, mql_at)
            h.notify_delay = _lognormal(rng, 2.0, 0.7)
            h.accept_due = business_add(assigned, 30, off)
            h.touch_due = business_add(assigned, 120, off)
            self._event(hid, "assigned", "baton", assigned, f'{{"rep": "{rep.email}"}}')
            accept_after = _lognormal(rng, 12, 1.0) * rep.speed
            if (
                accept_after > 30
                and reassignments < 2
                and h.accept_due < NOW
                and rng.random() < 0.45
            ):  # the ladder: reminded at 20, reassigned and manager told at 30
                self._event(hid, "reminded", "baton", business_add(assigned, 20, off), STEP0)
                self._event(hid, "reassigned", "baton", h.accept_due, REASSIGNED)
                self._event(hid, "manager_notified", "baton", h.accept_due, NOT_ACCEPTED)
                h.status, h.closed, h.outcome = "reassigned", h.accept_due, "reassigned"
                self._handoff(lead, h, chain, previous, reassignments, created, routing)
                had.add(rep.id)
                previous, hid = hid, self._new_handoff()
                reassignments += 1
                created = assigned = h.accept_due + rng.uniform(0.1, 1.0)
                continue
            break
        t_accept = business_add(assigned, accept_after, off)
        touch = None
        if verdict != "expire" and rng.random() < 0.9:
            touch = business_add(assigned, _lognormal(rng, 40, 1.1) * rep.speed, off)
        ended: float | None = None
        if verdict == "expire":
            give_up = assigned + 14 * DAY + rng.uniform(0, 7 * DAY)
            if rng.random() < 0.5 and give_up < NOW:
                h.status, h.closed, h.outcome = "closed", give_up, "lead moved to nurture"
                self._move(lead, "nurture", give_up, "marketing-ops", "no answer from sales")
                self._event(hid, "closed", "marketing-ops", give_up, CLOSED)
                ended = give_up
        elif verdict == "reject" and rng.random() < 0.6:
            at = business_add(assigned, _lognormal(rng, 45, 1.2), off)
            if at < NOW:
                ended = self._reject(lead, h, at)
        elif t_accept < NOW:
            h.status, h.accepted = "accepted", t_accept
            self._move(lead, "sal", t_accept, rep.email, f"accepted handoff {hid}")
            self._event(hid, "accepted", rep.email, t_accept, "{}")
            if verdict == "reject":
                at = t_accept + _lognormal(rng, 3 * DAY, 1.0)
                if at < NOW:
                    ended = self._reject(lead, h, at)
            else:
                ended = self._progress(lead, h)
        until = min(NOW, h.closed or NOW)
        if touch is not None and touch < until:
            h.touched = touch
            self._event(hid, "touch", rep.email, touch, '{"touch": "call", "first": true}')
        reminded = business_add(assigned, 20, off)
        if (h.accepted is None or h.accepted > reminded) and reminded < until:
            self._event(hid, "reminded", "baton", reminded, STEP0)
        if (h.accepted is None or h.accepted > h.accept_due) and h.accept_due < until:
            self._event(hid, "manager_notified", "baton", h.accept_due, NOT_ACCEPTED)
        if (h.touched is None or h.touched > h.touch_due) and h.touch_due < until:
            self._event(hid, "manager_notified", "baton", h.touch_due, NOT_TOUCHED)
        if h.touched is not None:
            h.business_minutes = round(business_minutes(first_assigned, h.touched, off), 2)
        self._handoff(lead, h, chain, previous, reassignments, created, routing)
        return ended

    def _reject(self, lead: Lead, h: Handoff, at: float) -> float:
        code, outcome, credit, _ = self.rng.choices(REJECTIONS, cum_weights=REJECTION_CUM)[0]
        assert h.rep is not None
        h.status, h.closed, h.outcome, h.code, h.credit = "rejected", at, outcome, code, credit
        target = "nurture" if outcome == "recycle" else "disqualified"
        self._move(lead, target, at, h.rep.email, f"rejected: {code}")
        credit_json = "true" if credit else "false"
        detail = f'{{"code": "{code}", "outcome": "{outcome}", "marketing_credit": {credit_json}}}'
        self._event(h.id, "rejected", h.rep.email, at, detail)
        return at

    def _progress(self, lead: Lead, h: Handoff) -> float | None:
        """After acceptance: qualified, opportunity, won or lost, back to nurture, or
        still open when the next step would come after NOW."""
        rng = self.rng
        assert h.rep is not None and h.accepted is not None
        rep = h.rep.email
        u = rng.random()
        if u < 0.55:
            at = h.accepted + _lognormal(rng, 7 * DAY, 0.9)
            if at >= NOW:
                return None
            h.status, h.qualification = "qualified", QUALIFICATION
            self._move(lead, "sql", at, rep, "qualified: budget, authority, need, timing")
            self._event(h.id, "qualified", rep, at, "{}")
            v = rng.random()
            if v < 0.6:
                at += _lognormal(rng, 10 * DAY, 0.8)
                if at >= NOW:
                    return None
                h.deal = round(_lognormal(rng, 24_000, 0.8), -2)
                self._move(lead, "opportunity", at, rep, "opportunity opened")
                self._event(h.id, "opportunity", rep, at, f'{{"amount": {h.deal}}}')
                w = rng.random()
                if w < 0.4:
                    at += _lognormal(rng, 30 * DAY, 0.7)
                    if at < NOW:
                        h.status, h.closed, h.outcome = "won", at, "won"
                        self._move(lead, "customer", at, rep, "won")
                        self._event(h.id, "won", rep, at, f'{{"amount": {h.deal}}}')
                elif w < 0.85:
                    self._lost(lead, h, at + _lognormal(rng, 25 * DAY, 0.8))
                return None
            if v < 0.8:
                self._lost(lead, h, at + _lognormal(rng, 14 * DAY, 0.8))
                return None
            if v < 0.85:
                return self._back_to_nurture(lead, h, at + _lognormal(rng, 20 * DAY, 0.8))
            return None
        if u < 0.70:
            self._lost(lead, h, h.accepted + _lognormal(rng, 10 * DAY, 0.8))
        elif u < 0.82:
            return self._back_to_nurture(lead, h, h.accepted + _lognormal(rng, 15 * DAY, 0.8))
        return None

    def _lost(self, lead: Lead, h: Handoff, at: float) -> None:
        if at < NOW:
            assert h.rep is not None
            h.status, h.closed, h.outcome = "lost", at, "lost"
            self._move(lead, "lost", at, h.rep.email, "lost: chose a competitor")
            self._event(h.id, "lost", h.rep.email, at, '{"reason": "chose a competitor"}')

    def _back_to_nurture(self, lead: Lead, h: Handoff, at: float) -> float | None:
        if at >= NOW:
            return None
        h.status, h.closed, h.outcome = "closed", at, "lead moved to nurture"
        self._move(lead, "nurture", at, "marketing-ops", "stalled: back to nurture")
        self._event(h.id, "closed", "marketing-ops", at, CLOSED)
        return at

    def _new_handoff(self) -> int:
        self.next_handoff += 1
        return self.next_handoff - 1

    def _handoff(
        self,
        lead: Lead,
        h: Handoff,
        chain: int,
        previous: int | None,
        reassignments: int,
        created: float,
        routing: str,
    ) -> None:
        row = (
            h.id,
            lead.id,
            h.rep.id if h.rep else None,
            h.status,
            chain,
            previous,
            self.cv,
            stamp(h.mql_at),
            stamp(created),
            _stamp(h.assigned),
            None if h.assigned is None else stamp(h.assigned + h.notify_delay),
            _stamp(h.accepted),
            _stamp(h.touched),
            _stamp(h.closed),
            h.outcome,
            h.code,
            h.credit,
            _stamp(h.accept_due),
            _stamp(h.touch_due),
            reassignments,
            routing,
            h.qualification,
            h.deal,
        )
        if self.business_column:
            row = (*row, h.business_minutes)
        self.out.handoffs.append(row)


@dataclass
class Handoff:
    id: int
    rep: Rep | None
    assigned: float | None
    mql_at: float
    status: str = "assigned"
    notify_delay: float = 0.0
    accept_due: float | None = None
    touch_due: float | None = None
    accepted: float | None = None
    touched: float | None = None
    closed: float | None = None
    outcome: str | None = None
    code: str | None = None
    credit: bool | None = None
    deal: float | None = None
    qualification: str | None = None
    business_minutes: float | None = None


def _busy(t: float) -> float:
    """Relative arrival rate of new leads in the hour starting at ``t`` (UTC)."""
    if (int(t // DAY) + 3) % 7 >= 5:
        return 0.35
    hour = int(t % DAY // 3600)
    return 3.0 if 13 <= hour < 22 else 2.0 if 7 <= hour < 13 else 0.6


def _stamp(t: float | None) -> str | None:
    return None if t is None else stamp(t)


def _cumulative(weights: Any) -> Iterator[float]:
    acc = 0.0
    for w in weights:
        acc += w
        yield acc


REJECTION_CUM = list(_cumulative(r[3] for r in REJECTIONS))
QUALIFICATION = '{"budget": "approved", "authority": "yes", "need": "reporting", "timing": "Q2"}'
STEP0 = '{"step": 0, "action": "remind"}'
REASSIGNED = '{"step": 1, "action": "reassign", "why": "not accepted in time"}'
NOT_ACCEPTED = '{"step": 2, "action": "notify_manager", "why": "not accepted in time"}'
NOT_TOUCHED = '{"step": 3, "action": "notify_manager", "why": "not touched in time"}'
CLOSED = '{"outcome": "lead moved to nurture"}'
ROUTING = {
    team: '{"rule": "%s", "strategy": "%s", "pool": "team:%s", "reason": "rule %s"}'  # noqa: UP031
    % (rule, strategy, team, rule)
    for team, rule, strategy in (
        ("enterprise", "Enterprise", "least_loaded"),
        ("emea", "EMEA", "round_robin"),
        ("na", "Everyone else", "weighted"),
    )
}


# --- writing ---------------------------------------------------------------------------


def _copy_text(rows: list[tuple[Any, ...]]) -> str:
    """Rows in COPY's text format (the generated values hold no tab, newline or
    backslash, so nothing needs escaping)."""
    return "".join("\t".join(["\\N" if v is None else str(v) for v in row]) + "\n" for row in rows)


class Loader:
    """Writes chunks straight to the driver on one connection, in a background thread
    so that generating the next chunk overlaps with the database's work."""

    def __init__(self, engine: Engine, handoff_columns: tuple[str, ...]) -> None:
        self.sqlite = engine.dialect.name == "sqlite"
        self.handoff_columns = handoff_columns
        self.fairy = engine.raw_connection()
        self.raw: Any = self.fairy.driver_connection
        if self.sqlite:
            # The load only: the rows are consistent by construction; this connection is
            # thrown away afterwards.
            for pragma in ("foreign_keys=OFF", "synchronous=OFF", "cache_size=-262144"):
                self.raw.execute(f"PRAGMA {pragma}")
        else:
            self.raw.execute("SET TimeZone = 'UTC'")
            try:  # no foreign-key triggers per row (needs a superuser, as pgserver's)
                self.raw.execute("SET session_replication_role = replica")
            except Exception:
                self.raw.rollback()
                self.raw.execute("SET TimeZone = 'UTC'")
            self.raw.commit()
        self.seconds = 0.0
        self.error: BaseException | None = None
        self.pending: list[Buffers] = []
        self.cond = threading.Condition()
        self.done = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def put(self, chunk: Buffers) -> None:
        with self.cond:
            while len(self.pending) >= 2 and self.error is None:
                self.cond.wait()
            if self.error is not None:
                raise RuntimeError("writing failed") from self.error
            self.pending.append(chunk)
            self.cond.notify_all()

    def close(self) -> None:
        with self.cond:
            self.done = True
            self.cond.notify_all()
        self.thread.join()
        if self.error is not None:
            raise RuntimeError("writing failed") from self.error
        if not self.sqlite:
            for table in ("leads", "handoffs"):
                self.raw.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"
                    f" (SELECT max(id) FROM {table}))"
                )
            self.raw.commit()
        self.fairy.invalidate()  # never give the load's settings back to the pool

    def _run(self) -> None:
        while True:
            with self.cond:
                while not self.pending and not self.done:
                    self.cond.wait()
                if not self.pending:
                    return
                chunk = self.pending[0]
            try:
                began = time.perf_counter()
                self._write(chunk)
                self.seconds += time.perf_counter() - began
            except BaseException as exc:
                with self.cond:
                    self.error = exc
                    self.cond.notify_all()
                return
            with self.cond:
                self.pending.pop(0)
                self.cond.notify_all()

    def _write(self, chunk: Buffers) -> None:
        tables = (
            ("leads", LEAD_COLUMNS, chunk.leads),
            ("activities", ACTIVITY_COLUMNS, chunk.activities),
            ("transitions", TRANSITION_COLUMNS, chunk.transitions),
            ("handoffs", self.handoff_columns, chunk.handoffs),
            ("handoff_events", EVENT_COLUMNS, chunk.handoff_events),
        )
        if self.sqlite:
            self.raw.execute("BEGIN")
            for name, columns, rows in tables:
                marks = ", ".join("?" * len(columns))
                self.raw.executemany(
                    f"INSERT INTO {name} ({', '.join(columns)}) VALUES ({marks})", rows
                )
            self.raw.execute("COMMIT")
            return
        with self.raw.cursor() as cursor:
            for name, columns, rows in tables:
                if rows:
                    with cursor.copy(f"COPY {name} ({', '.join(columns)}) FROM STDIN") as copy:
                        copy.write(_copy_text(rows))
        self.raw.commit()


# --- set-up, generation, checks --------------------------------------------------------


@dataclass
class Generated:
    reused: bool
    seconds: float = 0.0
    write_seconds: float = 0.0
    analyze_seconds: float = 0.0
    milestones_seconds: float = 0.0
    counts: dict[str, int] = field(default_factory=dict)


def setup(ctx: Context, seed: int) -> tuple[int, dict[str, list[Rep]]]:
    """The example contract (created, approved, active) and 3 teams of 50 reps, through
    the real use cases on the empty database."""
    from baton.services.contracts import activate_contract, approve_contract, create_contract
    from baton.services.reps import create_rep, create_team

    ctx.clock.set(YEAR_START - timedelta(days=14))  # type: ignore[attr-defined]
    version = create_contract(ctx, EXAMPLE.read_text(), actor=MARIA).version
    approve_contract(ctx, version, role="marketing", actor=MARIA)
    approve_contract(ctx, version, role="sales", actor=SAM)
    activate_contract(ctx, version, actor=BENCH)
    rng = random.Random(seed + 1)
    reps: dict[str, list[Rep]] = {}
    for team, (zone, _, count) in TEAMS.items():
        manager = f"manager.{team}@lumen.example.com"
        create_team(ctx, TeamCreate(name=team, manager_email=manager), actor=BENCH)
        for k in range(1, count + 1):
            made = create_rep(
                ctx,
                RepCreate(
                    email=f"{team}.rep{k}@lumen.example.com",
                    name=f"{team.upper()} rep {k}",
                    team=team,
                    timezone=zone,
                    manager_email=manager,
                ),
                actor=BENCH,
            )
            reps.setdefault(team, []).append(Rep(made.id, made.email, rng.lognormvariate(0, 0.45)))
    return version, reps


def insert_spend(ctx: Context, rng: random.Random) -> int:
    """Spend per source per month (paid sources per campaign), if the schema has it."""
    from sqlalchemy import insert

    from baton.store import tables

    spend = getattr(tables, "spend", None)
    if spend is None or not inspect(ctx.engine).has_table("spend"):
        return 0
    rows: list[dict[str, Any]] = []
    for source, _, _, _, budget, per_campaign in SOURCES:
        for month in range(1, 13):
            starts = date(2025, month, 1)
            ends = date(2025 + month // 12, month % 12 + 1, 1) - timedelta(days=1)
            amount = budget * rng.uniform(0.8, 1.2)
            if per_campaign:
                shares = [rng.uniform(0.5, 1.5) for _ in TOPICS]
                parts = [
                    (f"{source}-{topic}", amount * share / sum(shares))
                    for topic, share in zip(TOPICS, shares, strict=True)
                ]
            else:
                parts = [(None, amount)]
            for campaign, value in parts:
                row = {
                    "source": source,
                    "campaign": campaign,
                    "starts_on": starts,
                    "ends_on": ends,
                    "amount": round(value, 2),
                    "currency": "USD",
                    "imported_at": NOW_DT - timedelta(days=10),
                    "imported_by": "bench",
                }
                rows.append({k: v for k, v in row.items() if k in spend.c})
    with ctx.write() as connection:
        connection.execute(insert(spend), rows)
    return len(rows)


def generate(
    ctx: Context, n_leads: int, n_activities: int, seed: int, console: Console
) -> Generated:
    version, reps = setup(ctx, seed)
    ctx.clock.set(NOW_DT)  # type: ignore[attr-defined]
    columns = {c["name"] for c in inspect(ctx.engine).get_columns("handoffs")}
    business = "first_touch_business_minutes" in columns
    handoff_columns = HANDOFF_COLUMNS
    if business:
        handoff_columns = (*HANDOFF_COLUMNS, "first_touch_business_minutes")
    history = History(n_leads, n_activities, reps, version, seed=seed, business_column=business)
    loader = Loader(ctx.engine, handoff_columns)
    began = time.perf_counter()
    step = max(1, min(20_000, n_leads // 10))
    shown = 0
    try:
        for first in range(0, n_leads, step):
            loader.put(history.chunk(first, min(n_leads, first + step)))
            if (first + step) * 10 // n_leads > shown:
                shown = (first + step) * 10 // n_leads
                console.print(
                    f"  {min(n_leads, first + step):,} leads"
                    f" ({time.perf_counter() - began:,.0f} s)",
                    highlight=False,
                )
    finally:
        loader.close()
    spend = insert_spend(ctx, random.Random(seed + 2))
    seconds = time.perf_counter() - began
    result = Generated(False, seconds, loader.seconds)
    began = time.perf_counter()
    with ctx.write() as connection:
        rebuilt = milestones.rebuild(connection)
    result.milestones_seconds = time.perf_counter() - began
    console.print(
        "  milestones rebuilt: "
        + ", ".join(f"{n:,} {what}" for what, n in rebuilt.items())
        + f" ({result.milestones_seconds:,.1f} s)",
        highlight=False,
    )
    began = time.perf_counter()
    analyze(ctx.engine)
    result.analyze_seconds = time.perf_counter() - began
    result.counts = table_counts(ctx)
    assert result.counts.get("spend", 0) == spend
    return result


def analyze(engine: Engine) -> None:
    """Planner statistics after the load: ANALYZE on SQLite; VACUUM ANALYZE on
    PostgreSQL (also sets the visibility map that autovacuum would have set on a
    long-lived database, so index-only scans are possible)."""
    fairy = engine.raw_connection()
    try:
        raw: Any = fairy.driver_connection
        if engine.dialect.name == "sqlite":
            raw.execute("ANALYZE")
        else:
            raw.autocommit = True
            raw.execute("VACUUM ANALYZE")
            raw.autocommit = False
    finally:
        fairy.close()


COUNTED = ("leads", "activities", "transitions", "handoffs", "handoff_events")


def table_counts(ctx: Context) -> dict[str, int]:
    names = [*COUNTED, *(["spend"] if inspect(ctx.engine).has_table("spend") else [])]
    with ctx.read() as connection:
        return {
            t: int(connection.execute(text(f"SELECT count(*) FROM {t}")).scalar_one())
            for t in names
        }


def verify(ctx: Context, console: Console, sample: int = 5000) -> None:
    """Counts per stage, status and event kind, and consistency checks: activity
    counters, stages replayed from transitions (a sample), open handoffs vs stages."""
    from baton.domain.lifecycle import Stage, Transition, replay

    with ctx.read() as c:

        def rows(sql: str) -> list[Any]:
            return list(c.execute(text(sql)).all())

        for title, sql in (
            ("lead stages", "SELECT stage, count(*) FROM leads GROUP BY stage ORDER BY 2 DESC"),
            (
                "handoff statuses",
                "SELECT status, count(*) FROM handoffs GROUP BY 1 ORDER BY 2 DESC",
            ),
            ("event kinds", "SELECT kind, count(*) FROM handoff_events GROUP BY 1 ORDER BY 2 DESC"),
            (
                "rejections",
                "SELECT rejection_code, count(*) FROM handoffs"
                " WHERE rejection_code IS NOT NULL GROUP BY 1 ORDER BY 2 DESC",
            ),
        ):
            console.print(f"  {title}: " + ", ".join(f"{k} {v:,}" for k, v in rows(sql)))
        counters, stored = (
            rows("SELECT sum(activity_count), count(*) FROM leads")[0][0],
            rows("SELECT count(*) FROM activities")[0][0],
        )
        assert counters == stored, (counters, stored)
        open_pairs = rows(
            "SELECT h.status, l.stage, count(*) FROM handoffs h JOIN leads l ON l.id = h.lead_id"
            " WHERE h.status IN ('queued', 'assigned', 'accepted', 'qualified') GROUP BY 1, 2"
        )
        expected = {
            "queued": {"mql"},
            "assigned": {"mql"},
            "accepted": {"sal"},
            "qualified": {"sql", "opportunity"},
        }
        wrong = [p for p in open_pairs if p[1] not in expected[p[0]]]
        assert not wrong, wrong
        closed_pairs = rows(
            "SELECT h.status, l.stage, count(*) FROM handoffs h JOIN leads l ON l.id = h.lead_id"
            " WHERE h.status IN ('won', 'lost') GROUP BY 1, 2"
        )
        assert all((s, st) in {("won", "customer"), ("lost", "lost")} for s, st, _ in closed_pairs)
        top = rows("SELECT max(id) FROM leads")[0][0]
        ids = random.Random(5).sample(range(1, top + 1), min(sample, top))
        history: dict[int, list[Transition]] = {}
        for chunk in range(0, len(ids), 500):
            part = ",".join(str(i) for i in ids[chunk : chunk + 500])
            for r in rows(
                "SELECT lead_id, from_stage, to_stage, actor, reason, occurred_at FROM transitions"
                f" WHERE lead_id IN ({part}) ORDER BY lead_id, occurred_at, id"
            ):
                history.setdefault(r[0], []).append(
                    Transition(Stage(r[1]), Stage(r[2]), r[3], r[4], r[5])
                )
        stages = {}
        for chunk in range(0, len(ids), 500):
            part = ",".join(str(i) for i in ids[chunk : chunk + 500])
            stages.update(rows(f"SELECT id, stage FROM leads WHERE id IN ({part})"))
        bad = [i for i in ids if replay(history.get(i, [])).value != stages[i]]
        assert not bad, bad[:10]
        console.print(
            f"  checks passed: activity counters, open and closed handoffs vs stages,"
            f" {len(ids):,} leads replayed through the lifecycle"
        )


# --- the databases ---------------------------------------------------------------------


@contextlib.contextmanager
def target(backend: str, keep: list[str]) -> Iterator[str]:
    """A URL for ``backend``: its ``--keep`` target, else a throw-away database."""
    for item in keep:
        if backend == "postgresql" and item.startswith("postgresql"):
            yield item
            return
        if backend == "postgresql" and (item.endswith("/") or Path(item).is_dir()):
            import pgserver

            path = Path(item).expanduser().resolve()
            path.parent.mkdir(parents=True, exist_ok=True)
            server = pgserver.get_server(path, cleanup_mode="stop")
            try:
                yield server.get_uri()
            finally:
                server.cleanup()
            return
        pg_like = item.startswith("postgresql") or item.endswith("/") or Path(item).is_dir()
        if backend == "sqlite" and not pg_like:
            yield f"sqlite:///{Path(item).expanduser().resolve()}"
            return
    with database(backend) as url:
        yield url


def prepare(
    url: str, n_leads: int, n_activities: int, seed: int, console: Console
) -> tuple[Context, Generated]:
    """A database holding the history: reused when it already holds one of these sizes,
    generated when it is empty."""
    ctx = context(url)
    ctx.clock.set(NOW_DT)  # type: ignore[attr-defined]
    with ctx.read() as c:
        leads_top = c.execute(text("SELECT max(id) FROM leads")).scalar() or 0
        activities_top = c.execute(text("SELECT max(id) FROM activities")).scalar() or 0
        teams_n = c.execute(text("SELECT count(*) FROM teams")).scalar_one()
    if leads_top:
        if (leads_top, activities_top) != (n_leads, n_activities):
            raise SystemExit(
                f"{url} holds {leads_top:,} leads and {activities_top:,} activities, not"
                f" {n_leads:,} and {n_activities:,}: give an empty database or the same sizes"
            )
        console.print(f"  reusing the history in {url}", highlight=False)
        return ctx, Generated(True, counts=table_counts(ctx))
    if teams_n:
        raise SystemExit(f"{url} is not empty (teams, no leads): give an empty database")
    console.print(
        f"  generating {n_leads:,} leads and {n_activities:,} activities", highlight=False
    )
    generated = generate(ctx, n_leads, n_activities, seed, console)
    verify(ctx, console)
    return ctx, generated


def database_size(ctx: Context) -> int:
    with ctx.read() as c:
        if ctx.dialect == "sqlite":
            pages = c.execute(text("PRAGMA page_count")).scalar_one()
            return int(pages) * int(c.execute(text("PRAGMA page_size")).scalar_one())
        return int(c.execute(text("SELECT pg_database_size(current_database())")).scalar_one())


# --- timing the reports ----------------------------------------------------------------


def cases() -> list[tuple[str, Callable[[Context, Any], Any]]]:
    """The reports timed, with the arguments of the spec."""
    from baton.services import reports as r

    return [
        ("funnel (cohort)", lambda ctx, p: r.funnel(ctx, p, actor=BENCH, mode="cohort")),
        ("funnel (flow)", lambda ctx, p: r.funnel(ctx, p, actor=BENCH, mode="flow")),
        ("funnel by source", lambda ctx, p: r.funnel(ctx, p, actor=BENCH, group_by="source")),
        ("funnel by rep", lambda ctx, p: r.funnel(ctx, p, actor=BENCH, group_by="rep")),
        (
            "funnel (flow) by campaign",
            lambda ctx, p: r.funnel(ctx, p, actor=BENCH, mode="flow", group_by="campaign"),
        ),
        ("velocity", lambda ctx, p: r.velocity(ctx, p, actor=BENCH)),
        ("velocity by team", lambda ctx, p: r.velocity(ctx, p, actor=BENCH, group_by="team")),
        (
            "speed to lead by team",
            lambda ctx, p: r.speed_to_lead(ctx, p, actor=BENCH, group_by="team"),
        ),
        ("SLA compliance", lambda ctx, p: r.sla_compliance(ctx, p, actor=BENCH)),
        (
            "SLA compliance by rep",
            lambda ctx, p: r.sla_compliance(ctx, p, actor=BENCH, group_by="rep"),
        ),
        (
            "rejections by source",
            lambda ctx, p: r.rejections(ctx, p, actor=BENCH, group_by="source"),
        ),
        (
            "marketing credit by campaign",
            lambda ctx, p: r.marketing_credit(ctx, p, actor=BENCH, group_by="campaign"),
        ),
        ("cost by source", lambda ctx, p: r.cost(ctx, p, actor=BENCH, group_by="source")),
    ]


@dataclass
class Timing:
    runs: list[float] = field(default_factory=list)
    rows: int | None = None
    error: str | None = None
    statements: list[tuple[str, Any, float]] = field(default_factory=list)

    @property
    def best(self) -> float | None:
        return min(self.runs) if self.runs else None


class Watch:
    """Engine hooks: a time limit per report (SQLite: a progress handler that
    interrupts; PostgreSQL: ``statement_timeout``) and, while capturing, each
    statement with its parameters and duration."""

    def __init__(self, engine: Engine, timeout_s: float) -> None:
        self.deadline = math.inf
        self.capture: list[tuple[str, Any, float]] | None = None
        sqlite = engine.dialect.name == "sqlite"

        @event.listens_for(engine, "connect")
        def _limit(dbapi_connection: Any, _record: Any) -> None:
            if sqlite:
                dbapi_connection.set_progress_handler(
                    lambda: 1 if time.monotonic() > self.deadline else 0, 100_000
                )
            else:
                with dbapi_connection.cursor() as cursor:
                    cursor.execute(f"SET statement_timeout = {int(timeout_s * 1000)}")
                dbapi_connection.commit()

        @event.listens_for(engine, "before_cursor_execute")
        def _before(_c: Any, _cur: Any, statement: str, params: Any, ctx: Any, _m: bool) -> None:
            if ctx is not None:
                ctx.bench_began = time.perf_counter()

        @event.listens_for(engine, "after_cursor_execute")
        def _after(_c: Any, _cur: Any, statement: str, params: Any, ctx: Any, _m: bool) -> None:
            if self.capture is not None and ctx is not None and hasattr(ctx, "bench_began"):
                self.capture.append((statement, params, time.perf_counter() - ctx.bench_began))

        engine.dispose()  # connections made from now on get the hooks


def time_reports(
    ctx: Context,
    periods: list[tuple[str, Any]],
    repeat: int,
    timeout_s: float,
    only: str | None,
    console: Console,
) -> dict[tuple[str, str], Timing]:
    watch = Watch(ctx.engine, timeout_s)
    results: dict[tuple[str, str], Timing] = {}
    for name, run in cases():
        if only and only.lower() not in name.lower():
            continue
        for label, period in periods:
            timing = Timing()
            for _ in range(repeat):
                watch.capture = []
                watch.deadline = time.monotonic() + timeout_s
                began = time.perf_counter()
                try:
                    report = run(ctx, period)
                except Exception as exc:
                    elapsed = time.perf_counter() - began
                    timed_out = elapsed >= timeout_s * 0.99 or "cancel" in str(exc).lower()
                    timing.error = "timeout" if timed_out else f"{type(exc).__name__}: {exc}"
                    timing.statements = watch.capture
                    break
                finally:
                    watch.deadline = math.inf
                elapsed = time.perf_counter() - began
                if not timing.runs or elapsed < min(timing.runs):
                    timing.statements = watch.capture
                timing.runs.append(elapsed)
                timing.rows = len(getattr(report, "rows", []) or [])
                if elapsed > 5 * TARGET_S:
                    break  # far over the target: one run says enough
            watch.capture = None
            results[(name, label)] = timing
            runs = ", ".join(f"{s:.2f}" for s in timing.runs)
            status = f"[red]{timing.error[:200]}[/]" if timing.error else f"rows {timing.rows}"
            console.print(f"  {name}, {label}: {runs or '-'} s ({status})")
    return results


def explain(ctx: Context, timing: Timing, console: Console, top: int = 3) -> None:
    """The plans of the slowest statements of a report (PostgreSQL: EXPLAIN ANALYZE,
    which runs the statement again)."""
    slowest = sorted(timing.statements, key=lambda s: -s[2])[:top]
    for statement, params, seconds in slowest:
        if seconds < 0.05:
            continue
        console.print(f"[bold]{seconds:.2f} s[/]:\n{statement.strip()}", highlight=False)
        prefix = "EXPLAIN QUERY PLAN " if ctx.dialect == "sqlite" else "EXPLAIN (ANALYZE, BUFFERS) "
        with ctx.read() as c:
            plan = c.exec_driver_sql(prefix + statement, params).all()
        if ctx.dialect == "sqlite":
            depth: dict[int, int] = {0: 0}
            for node, parent, _, detail in plan:
                depth[node] = depth.get(parent, 0) + 1
                console.print("  " * depth[node] + detail, highlight=False, markup=False)
        else:
            for (line,) in plan:
                console.print("  " + line, highlight=False, markup=False)


# --- the command -----------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=1_000_000)
    parser.add_argument("--activities", type=int, default=10_000_000)
    parser.add_argument("--scale", type=float, help="Shortcut: 0.1 = 100,000 leads, 1M activities")
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument(
        "--keep",
        action="append",
        default=[],
        metavar="DB",
        help="A SQLite file, a postgresql:// URL or a directory/ for a kept PostgreSQL"
        " cluster: filled once, reused by later runs of the same sizes (repeatable)",
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=2, help="Runs per report (best is shown)")
    parser.add_argument("--timeout", type=float, default=600.0, help="Seconds per report run")
    parser.add_argument("--only", help="Only the reports whose name contains this")
    parser.add_argument("--periods", choices=("both", "year", "month"), default="both")
    parser.add_argument("--generate-only", action="store_true")
    parser.add_argument(
        "--explain", action="store_true", help="Print the plans of reports over the target"
    )
    args = parser.parse_args()
    n_leads, n_activities = args.leads, args.activities
    if args.scale:
        n_leads, n_activities = round(1_000_000 * args.scale), round(10_000_000 * args.scale)
    backends = ("sqlite", "postgresql") if args.backend == "both" else (args.backend,)
    console = Console() if sys.stdout.isatty() else Console(width=120)
    have_reports = True
    try:
        from baton.domain.reports import ReportPeriod
        from baton.services import reports  # noqa: F401
    except ImportError as exc:
        have_reports = False
        console.print(f"[yellow]no reports to time yet ({exc}); generating only[/]")
    periods = []
    if have_reports:
        periods = [
            (label, ReportPeriod.from_dates(start, end))
            for label, start, end in PERIODS
            if args.periods in ("both", label)
        ]
    made: dict[str, dict[str, str]] = {}
    results: dict[str, dict[tuple[str, str], Timing]] = {}
    for backend in backends:
        console.print(f"[bold]{backend}[/]")
        with target(backend, args.keep) as url:
            ctx, gen = prepare(url, n_leads, n_activities, args.seed, console)
            made[backend] = describe(gen, database_size(ctx))
            if have_reports and not args.generate_only:
                results[backend] = time_reports(
                    ctx, periods, args.repeat, args.timeout, args.only, console
                )
                if args.explain:
                    for (name, label), timing in results[backend].items():
                        if timing.error or (timing.best or 0) > TARGET_S:
                            console.rule(f"{backend}: {name}, {label}")
                            explain(ctx, timing, console)
            ctx.engine.dispose()
    table = Table(title=f"History: {n_leads:,} leads, {n_activities:,} activities ({machine()})")
    table.add_column("")
    for backend in made:
        table.add_column(backend, justify="right")
    for key in next(iter(made.values())):
        table.add_row(key, *(made[b][key] for b in made))
    console.print(table)
    if results:
        show(results, periods, n_leads, n_activities, args.repeat, console)


def describe(gen: Generated, size: int) -> dict[str, str]:
    counts = gen.counts
    out = {t.replace("_", " "): f"{counts.get(t, 0):,}" for t in COUNTED}
    out["spend rows"] = f"{counts['spend']:,}" if "spend" in counts else "-"
    if gen.reused:
        out["generated in"] = "reused"
    else:
        out["generated in"] = f"{gen.seconds:,.0f} s"
        out["of which the writer thread"] = f"{gen.write_seconds:,.0f} s"
        out["milestones rebuilt in"] = f"{gen.milestones_seconds:,.1f} s"
        out["ANALYZE"] = f"{gen.analyze_seconds:,.1f} s"
    out["database size"] = f"{size / 2**30:.2f} GiB"
    return out


def show(
    results: dict[str, dict[tuple[str, str], Timing]],
    periods: list[tuple[str, Any]],
    n_leads: int,
    n_activities: int,
    repeat: int,
    console: Console,
) -> None:
    table = Table(
        title=f"Reports: seconds, best of {repeat} ({n_leads:,} leads, {n_activities:,}"
        f" activities; year = 2025, month = June 2025)"
    )
    table.add_column("report", no_wrap=True)
    names = list(dict.fromkeys(name for r in results.values() for name, _ in r))
    for backend in results:
        for label, _ in periods:
            table.add_column(
                f"{'SQLite' if backend == 'sqlite' else 'PostgreSQL'} {label}", justify="right"
            )
    table.add_column("target", justify="right")
    missed = 0
    for name in names:
        cells = [name]
        for backend in results:
            for label, _ in periods:
                timing = results[backend].get((name, label))
                if timing is None:
                    cells.append("")
                elif timing.error:
                    cells.append(f"[red]{'timeout' if timing.error == 'timeout' else 'error'}[/]")
                    missed += 1
                else:
                    best = timing.best or 0.0
                    missed += best > TARGET_S
                    cells.append(f"[red]{best:.2f}[/]" if best > TARGET_S else f"{best:.2f}")
        table.add_row(*cells, f"< {TARGET_S:g} s")
    console.print(table)
    console.print(f"{missed} of {sum(len(r) for r in results.values())} timings miss the target.")


if __name__ == "__main__":
    main()
