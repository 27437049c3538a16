"""The handoff packet: everything known about a lead, in one place, for the rep.

Who the lead is, the score with its rule-by-rule explanation, where they came from,
what they are interested in, every touch in order, the prep checklist, notes and tags,
and earlier handoffs with their verdicts: so the customer never explains twice.
Built on demand (for the API and, by the worker, for the notification email), so it
always shows the lead as it is now.

Whoever reaches the handoff reaches its packet: the rep it is given to sees the same
packet as their email, earlier reps' verdicts included (they are the lead's history,
not someone else's handoff to act on).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from baton.domain.access import Principal
from baton.domain.errors import BatonError
from baton.domain.leads import Lead
from baton.domain.packet import Interest, interests
from baton.services.context import Context
from baton.services.handoffs import HandoffPublic, get_handoff, handoff_events_of, lead_handoffs_in
from baton.services.leads import get_lead
from baton.services.prep import PrepItemState, prep_checklist
from baton.services.scoring import LeadScore, lead_score
from baton.services.timeline import TimelineItem, lead_timeline
from baton.store.tables import activities, notes

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


def handoff_packet(ctx: Context, handoff_id: int, *, actor: Principal) -> HandoffPacket:
    """The packet of a handoff within the actor's reach (raises
    :class:`~baton.domain.errors.NotFound` otherwise, as for a missing one)."""
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
    )
