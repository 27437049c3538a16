"""The handoff packet: everything known about a lead, in one place, for the rep.

Who the lead is, the score with its rule-by-rule explanation, where they came from,
what they are interested in, every touch in order, the prep checklist, notes and tags,
and earlier handoffs with their verdicts: so the customer never explains twice.
Built on demand (for the API and, by the worker, for the notification email), so it
always shows the lead as it is now.

Whoever reaches the handoff reaches its packet: the rep it is given to sees the same
packet as their email, earlier reps' verdicts included (they are the lead's history,
not someone else's handoff to act on).

Times are read in the reader's zone (:func:`reader_zone`): the packet carries the zone,
and people see ``Mon 2 Mar 10:00 EST`` (:func:`~baton.domain.local_time.local_text`)
while programs keep the UTC fields.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection

from baton.domain.access import Principal
from baton.domain.errors import BatonError
from baton.domain.leads import Lead
from baton.domain.local_time import local_text
from baton.domain.nurture_history import EnrollmentFacts, NurtureHistory, nurture_history
from baton.domain.packet import Interest, interests
from baton.domain.scoring import MqlGap
from baton.services.context import Context
from baton.services.handoffs import HandoffPublic, get_handoff, handoff_events_of, lead_handoffs_in
from baton.services.leads import get_lead
from baton.services.prep import PrepItemState, prep_checklist
from baton.services.scoring import LeadScore, lead_score
from baton.services.timeline import TimelineItem, lead_timeline
from baton.store.tables import activities, leads, notes, nurture_enrollments, reps, users

ATTRIBUTION = (
    "source",
    "campaign",
    "last_source",
    "last_campaign",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "utm_term",
    "utm_content",
)


@dataclass(frozen=True)
class PacketNote:
    at: Any
    author: str
    body: str


@dataclass(frozen=True)
class HandoffPacket:
    """One handoff with the whole context of its lead."""

    handoff: HandoffPublic
    lead: Lead
    score: LeadScore | None
    attribution: dict[str, Any]
    interests: list[Interest]
    timeline: list[TimelineItem]
    prep: list[PrepItemState]
    notes: list[PacketNote]
    tags: list[str]
    earlier_handoffs: list[HandoffPublic]
    events: list[Any]
    mql_gaps: list[MqlGap] = field(default_factory=list)
    """What the lead still misses of the MQL rule on score (a lead handed off by a
    hand-raise may miss a required prep item: sales sees what marketing did not do)."""
    time_zone: str = "UTC"
    """The reader's zone (IANA name), in which :meth:`local` shows times."""
    now: datetime | None = None
    """When the packet was built (a time in another year shows its year)."""
    nurture: list[NurtureHistory] = field(default_factory=list)
    """The lead's time in nurture, newest first: why it was recycled, the touches,
    what it opened and clicked, how it came back (``summary`` says it in a sentence)."""

    def local(self, at: datetime | None) -> str | None:
        """``at`` as the reader reads it (``Mon 2 Mar 10:00 EST``), or ``None``."""
        return None if at is None else local_text(at, self.time_zone, now=self.now)


def reader_zone(
    connection: Connection,
    *,
    actor: Principal,
    rep_id: int | None,
    reader_email: str | None = None,
) -> str:
    """The zone whoever reads the packet reads times in: the recipient of an email
    (``reader_email``: the user with that address, else the rep), or the user who asks
    (``actor``), else the rep the handoff is given to (their working hours' zone). UTC
    when nobody's zone is known (the operator, a queued handoff)."""
    zone: str | None = None
    if reader_email is not None:
        for people in (users, reps):
            found = people.c.email == reader_email
            zone = zone or connection.execute(select(people.c.timezone).where(found)).scalar()
    elif actor.user_id is not None:
        zone = connection.execute(
            select(users.c.timezone).where(users.c.id == actor.user_id)
        ).scalar()
    if zone is None and rep_id is not None:
        zone = connection.execute(select(reps.c.timezone).where(reps.c.id == rep_id)).scalar()
    return zone or "UTC"


def handoff_packet(
    ctx: Context, handoff_id: int, *, actor: Principal, reader_email: str | None = None
) -> HandoffPacket:
    """The packet of a handoff within the actor's reach (raises
    :class:`~baton.domain.errors.NotFound` otherwise, as for a missing one), with times
    in the zone of its reader: ``reader_email`` for an email, else ``actor``
    (:func:`reader_zone`)."""
    handoff = get_handoff(ctx, handoff_id, actor=actor)
    lead = get_lead(ctx, handoff.lead_id, actor=actor)
    try:
        score: LeadScore | None = lead_score(ctx, lead.id, actor=actor)
    except BatonError:
        score = None
    try:
        prep = prep_checklist(ctx, lead.id, actor=actor)
    except BatonError:
        prep = []
    with ctx.read() as connection:
        acts = connection.execute(
            select(activities.c.type, activities.c.occurred_at, activities.c.properties).where(
                activities.c.lead_id == lead.id
            )
        ).all()
        lead_notes = [
            PacketNote(r.created_at, r.author, r.body)
            for r in connection.execute(
                select(notes).where(notes.c.lead_id == lead.id).order_by(notes.c.created_at)
            )
        ]
        earlier = [h for h in lead_handoffs_in(connection, lead.id, limit=50) if h.id != handoff.id]
        zone = reader_zone(
            connection, actor=actor, rep_id=handoff.rep_id, reader_email=reader_email
        )
        enrolled = enrollments_of_in(connection, lead.id)
    engagement = [(t, at, p or {}) for t, at, p in acts if t in ("email_open", "email_click")]
    now = ctx.clock.now()
    return HandoffPacket(
        handoff=handoff,
        lead=lead,
        score=score,
        attribution={k: getattr(lead, k, None) for k in ATTRIBUTION},
        interests=interests((t, at, p) for t, at, p in acts),
        timeline=lead_timeline(ctx, lead.id, actor=actor),
        prep=prep,
        notes=lead_notes,
        tags=list(lead.tags),
        earlier_handoffs=earlier,
        events=handoff_events_of(ctx, handoff_id, actor=actor),
        mql_gaps=list(score.mql_gaps) if score is not None else [],
        time_zone=zone,
        now=now,
        nurture=nurture_history(enrolled, engagement, zone=zone, now=now),
    )


def enrollments_of_in(connection: Connection, lead_id: int) -> list[EnrollmentFacts]:
    """The nurture enrollments of a lead and of the leads merged into it."""
    merged = select(leads.c.id).where(leads.c.merged_into_id == lead_id)
    rows = connection.execute(
        select(nurture_enrollments).where(
            (nurture_enrollments.c.lead_id == lead_id) | nurture_enrollments.c.lead_id.in_(merged)
        )
    ).mappings()
    return [
        EnrollmentFacts(
            id=int(r["id"]),
            sequence=str(r["sequence"]),
            reason=str(r["reason"]),
            enrolled_at=r["enrolled_at"],
            status=str(r["status"]),
            touches=int(r["touches"] or 0),
            exit_reason=r["exit_reason"],
            ended_at=r["ended_at"],
        )
        for r in rows
    ]
