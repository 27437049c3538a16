"""Notes and tags on leads: how sales and marketing talk about a lead in the open.

Tags are lower-cased and trimmed so that ``Cold`` and ``cold `` are one tag; every add
and removal is kept as a tag event for the timeline.

Whoever may read a lead's handoff may talk about it: a rep notes and tags the leads of
their own handoffs, a sales manager those of their team, marketing and admins any lead
(:data:`~baton.domain.access.Action.ANNOTATE_LEAD`). A lead out of reach is not found.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, insert, select

from baton.domain.access import Action, Principal
from baton.domain.errors import FieldProblem, ValidationFailed
from baton.domain.tags import normalize_tag
from baton.services.access import check_lead
from baton.services.context import Context
from baton.services.nurture import enroll_on_tag_in
from baton.services.queries import insert_ignoring_conflicts, lock_active_lead
from baton.store.tables import lead_tags, notes, tag_events


@dataclass(frozen=True)
class Note:
    """A free-text note on a lead."""

    id: int
    lead_id: int
    author: str
    body: str
    created_at: datetime


def add_note(ctx: Context, lead_id: int, body: str, *, actor: Principal) -> Note:
    """Attach a note (1 to 10,000 characters) to a lead, signed by ``actor``."""
    now = ctx.clock.now()
    with ctx.write() as connection:
        check_lead(connection, actor, Action.ANNOTATE_LEAD, lead_id)
        text = body.strip()
        if not text or len(text) > 10_000:
            raise ValidationFailed(
                "a note needs text", [FieldProblem("body", "between 1 and 10,000 characters")]
            )
        lock_active_lead(connection, lead_id)
        note_id = connection.execute(
            insert(notes)
            .values(
                lead_id=lead_id,
                author=actor.name,
                actor_user_id=actor.user_id,
                body=text,
                created_at=now,
            )
            .returning(notes.c.id)
        ).scalar_one()
    return Note(note_id, lead_id, actor.name, text, now)


def add_tag(ctx: Context, lead_id: int, tag: str, *, actor: Principal) -> list[str]:
    """Tag a lead (idempotent: tagging twice records one event); returns its tags."""
    now = ctx.clock.now()
    with ctx.write() as connection:
        check_lead(connection, actor, Action.ANNOTATE_LEAD, lead_id)
        name = normalize_tag(tag)
        lock_active_lead(connection, lead_id)
        added = connection.execute(
            insert_ignoring_conflicts(connection, lead_tags)
            .values(lead_id=lead_id, tag=name, added_by=actor.name, added_at=now)
            .returning(lead_tags.c.tag)
        ).first()
        if added is not None:
            connection.execute(
                insert(tag_events).values(
                    lead_id=lead_id,
                    tag=name,
                    action="added",
                    actor=actor.name,
                    actor_user_id=actor.user_id,
                    occurred_at=now,
                )
            )
            # A tag the contract maps to a nurture sequence enrolls the lead (same
            # transaction; a lead that may not get nurture email is left out).
            enroll_on_tag_in(connection, lead_id, name, now=now, actor=actor)
        return list(
            connection.execute(
                select(lead_tags.c.tag).where(lead_tags.c.lead_id == lead_id).order_by("tag")
            ).scalars()
        )


def remove_tag(ctx: Context, lead_id: int, tag: str, *, actor: Principal) -> list[str]:
    """Remove a tag (removing an absent tag changes nothing); returns the lead's tags."""
    now = ctx.clock.now()
    with ctx.write() as connection:
        check_lead(connection, actor, Action.ANNOTATE_LEAD, lead_id)
        name = normalize_tag(tag)
        lock_active_lead(connection, lead_id)
        removed = connection.execute(
            delete(lead_tags).where(lead_tags.c.lead_id == lead_id, lead_tags.c.tag == name)
        ).rowcount
        if removed:
            connection.execute(
                insert(tag_events).values(
                    lead_id=lead_id,
                    tag=name,
                    action="removed",
                    actor=actor.name,
                    actor_user_id=actor.user_id,
                    occurred_at=now,
                )
            )
        return list(
            connection.execute(
                select(lead_tags.c.tag).where(lead_tags.c.lead_id == lead_id).order_by("tag")
            ).scalars()
        )
