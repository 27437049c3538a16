"""The manager's view of today: open handoffs against their SLA, the unassigned queue
and why each item waits, and who can take leads now.

One read, for the ``/team`` page and ``GET /api/v1/team/today``. Nothing here decides a
rule: the SLA standing is :func:`baton.domain.sla.standing`, availability is
:func:`baton.domain.routing.availability` on the reps as routing sees them (schedule,
absences, capacity), and the reason a queued handoff waits is the one routing wrote on
it when it could not place it.

Access: for those who watch the queue (:data:`Action.READ_QUEUE`): a sales manager
sees the handoffs and reps of their own teams and the shared queue; an admin sees all.
A rep or marketing is refused (403): a rep's view of their work is their inbox.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.engine import Connection, RowMapping

from baton.domain.access import Action, Principal, Reach
from baton.domain.business_hours import Interval, next_working_moment, working_intervals
from baton.domain.routing import Availability, Rep, availability, waiting_reason
from baton.domain.sla import SlaStanding, standing
from baton.services.access import allowed, handoff_scope, rep_scope
from baton.services.context import Context
from baton.services.handoffs import HandoffPublic
from baton.services.reps import open_loads, routing_reps
from baton.store.tables import handoffs, leads, reps, teams

OPEN_FOR_SLA = ("assigned", "accepted", "qualified")
"""Open handoffs a rep holds (queued ones have no rep and no SLA clock yet)."""

_URGENCY = {"breached": 0, "reminded": 1, "on time": 2}


@dataclass(frozen=True)
class LeadLabel:
    """Who a handoff is about, as a manager recognises them."""

    id: int
    name: str
    company: str | None
    email: str | None


@dataclass(frozen=True)
class TeamHandoff:
    """An open handoff of a rep, with its SLA standing and the rep's time zone (for
    showing its deadline as the rep lives it)."""

    handoff: HandoffPublic
    lead: LeadLabel
    team: str | None
    rep_timezone: str | None
    sla: SlaStanding


@dataclass(frozen=True)
class QueuedHandoff:
    """A handoff nobody could take yet and why (routing's written reason, with why its
    pool's reps were passed over: :func:`~baton.domain.routing.waiting_reason`)."""

    handoff: HandoffPublic
    lead: LeadLabel
    reason: str


@dataclass(frozen=True)
class RepToday:
    """A rep's availability now and their working hours today (their local day)."""

    id: int
    email: str
    name: str
    team: str | None
    timezone: str
    availability: Availability
    open_handoffs: int
    capacity: int
    hours_today: list[Interval]
    next_working_at: datetime | None


@dataclass(frozen=True)
class TeamToday:
    """The manager's view at ``at``: open handoffs, most urgent first; the queue, oldest
    first; the reps, by name. ``more_handoffs``/``more_queued``: the lists were cut at
    the limit."""

    at: datetime
    teams: list[str]
    handoffs: list[TeamHandoff]
    queue: list[QueuedHandoff]
    reps: list[RepToday]
    more_handoffs: bool
    more_queued: bool


def _label(row: Mapping[Any, Any]) -> LeadLabel:
    name = " ".join(p for p in (row["lead_first_name"], row["lead_last_name"]) if p)
    return LeadLabel(
        id=int(row["lead_id"]),
        name=name or row["lead_email"] or f"lead {row['lead_id']}",
        company=row["lead_company"],
        email=row["lead_email"],
    )


def _handoff_rows(connection: Connection, where: list[Any], limit: int) -> list[RowMapping]:
    query = (
        select(
            handoffs,
            reps.c.email.label("rep_email"),
            reps.c.timezone.label("rep_timezone"),
            teams.c.name.label("team"),
            leads.c.first_name.label("lead_first_name"),
            leads.c.last_name.label("lead_last_name"),
            leads.c.company.label("lead_company"),
            leads.c.email.label("lead_email"),
        )
        .select_from(
            handoffs.join(leads, leads.c.id == handoffs.c.lead_id)
            .outerjoin(reps, reps.c.id == handoffs.c.rep_id)
            .outerjoin(teams, teams.c.id == reps.c.team_id)
        )
        .where(*where)
        .order_by(handoffs.c.id)
        .limit(limit + 1)
    )
    return list(connection.execute(query).mappings())


def _public(row: Mapping[Any, Any]) -> HandoffPublic:
    return HandoffPublic(**{k: row[k] for k in HandoffPublic.__dataclass_fields__})


def _today(rep: Rep, now: datetime) -> list[Interval]:
    """The rep's working time on their local calendar day of ``now``, in UTC."""
    zone = ZoneInfo(rep.schedule.timezone)
    day = now.astimezone(zone).date()
    start = datetime.combine(day, time(0), zone)
    end = datetime.combine(day + timedelta(days=1), time(0), zone)
    return working_intervals(rep.schedule, start, end)


def _rep_today(rep: Rep, load: int, now: datetime) -> RepToday:
    state = availability(rep, now, load)
    later = None
    if state in ("outside hours", "out of office"):
        later = next_working_moment(rep.schedule, now, horizon_days=60)
    return RepToday(
        id=rep.id,
        email=rep.email,
        name=rep.name,
        team=rep.team,
        timezone=rep.schedule.timezone,
        availability=state,
        open_handoffs=load,
        capacity=rep.capacity,
        hours_today=_today(rep, now),
        next_working_at=later,
    )


def team_today(
    ctx: Context, *, actor: Principal, team: str | None = None, limit: int = 200
) -> TeamToday:
    """The manager's view now (see the module docstring); ``team`` narrows the handoffs
    and reps to one team (the queue is shared: a queued handoff has no team yet)."""
    level = allowed(actor, Action.READ_QUEUE)
    now = ctx.clock.now()
    with ctx.read() as connection:
        rep_ids_query = select(reps.c.id)
        if level is not Reach.ALL:
            rep_ids_query = rep_ids_query.where(rep_scope(actor, level))
        if team is not None:
            rep_ids_query = rep_ids_query.where(
                reps.c.team_id.in_(select(teams.c.id).where(teams.c.name == team))
            )
        reached = {int(r) for r in connection.execute(rep_ids_query).scalars()}

        scope = [] if level is Reach.ALL else [handoff_scope(actor, level)]
        open_rows = _handoff_rows(
            connection,
            [*scope, handoffs.c.status.in_(OPEN_FOR_SLA), handoffs.c.rep_id.in_(sorted(reached))],
            limit,
        )
        queued_rows = _handoff_rows(connection, [*scope, handoffs.c.status == "queued"], limit)

        roster = sorted(
            (r for r in routing_reps(connection) if r.id in reached),
            key=lambda r: (r.name.lower(), r.email),
        )
        loads = open_loads(connection, [r.id for r in roster])

    rows = []
    for row in open_rows[:limit]:
        sla = standing(
            accept_due_at=row["accept_due_at"],
            touch_due_at=row["touch_due_at"],
            accepted_at=row["accepted_at"],
            first_touch_at=row["first_touch_at"],
            reminders=int(row["reminders"] or 0),
            now=now,
        )
        rows.append(TeamHandoff(_public(row), _label(row), row["team"], row["rep_timezone"], sla))
    far = now + timedelta(days=36_500)
    rows.sort(key=lambda h: (_URGENCY[h.sla.state], h.sla.due_at or far, h.handoff.id))
    queue = [
        QueuedHandoff(_public(r), _label(r), waiting_reason(r["routing"] or {}))
        for r in queued_rows[:limit]
    ]
    team_names = sorted({r.team for r in roster if r.team})
    return TeamToday(
        at=now,
        teams=team_names,
        handoffs=rows,
        queue=queue,
        reps=[_rep_today(r, loads.get(r.id, 0), now) for r in roster],
        more_handoffs=len(open_rows) > limit,
        more_queued=len(queued_rows) > limit,
    )
