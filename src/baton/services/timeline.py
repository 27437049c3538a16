"""A lead's whole history in time order: activities, stage transitions, notes, tag
changes and merges. This is what sales reads so that a customer never explains twice.

Whoever may read the lead reads its whole history, including the handoffs other reps
had before (that is the point: the next rep knows what the last one heard)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import or_, select

from baton.domain.access import Action, Principal
from baton.domain.errors import NotFound
from baton.services.access import check_lead
from baton.services.context import Context
from baton.store.tables import (
    activities,
    handoff_events,
    handoffs,
    lead_merges,
    leads,
    notes,
    tag_events,
    transitions,
)

Kind = Literal["created", "activity", "transition", "note", "tag", "merge", "handoff"]


@dataclass(frozen=True)
class TimelineItem:
    """One dated entry. ``summary`` is a sentence for people; ``data`` has the details.
    ``merged_from`` names the lead an entry came from when it was moved by a merge."""

    at: datetime
    kind: Kind
    summary: str
    actor: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    merged_from: int | None = None


_KIND_ORDER = {
    "created": 0,
    "activity": 1,
    "transition": 2,
    "handoff": 3,
    "tag": 4,
    "note": 5,
    "merge": 6,
}


def _describe_activity(kind: str, props: dict[str, Any]) -> str:
    label = kind.replace("_", " ")
    for key in ("url", "page", "subject", "title", "name", "campaign", "source"):
        if props.get(key):
            return f"{label}: {props[key]}"
    return label


def _describe_handoff_event(handoff_id: int, kind: str, detail: dict[str, Any]) -> str:
    text = f"handoff {handoff_id}: {kind.replace('_', ' ')}"
    extra = detail.get("rep") or detail.get("to") or detail.get("touch") or detail.get("code")
    if extra:
        text += f" ({extra})"
    if detail.get("note"):
        text += f": {detail['note']}"
    return text


def lead_timeline(
    ctx: Context, lead_id: int, *, actor: Principal, limit: int | None = None
) -> list[TimelineItem]:
    """Every entry of the lead's history, oldest first (the newest ``limit`` if given);
    a lead out of ``actor``'s reach is :class:`NotFound`."""
    items: list[TimelineItem] = []
    with ctx.read() as connection:
        check_lead(connection, actor, Action.READ_LEADS, lead_id)
        lead = connection.execute(select(leads).where(leads.c.id == lead_id)).mappings().first()
        if lead is None:
            raise NotFound(f"lead {lead_id} does not exist")
        if lead["merged_into_id"] is not None:
            raise NotFound(
                f"lead {lead_id} was merged into lead {lead['merged_into_id']}; "
                "its history is there"
            )
        items.append(TimelineItem(lead["created_at"], "created", "lead created"))
        for r in connection.execute(
            select(activities).where(activities.c.lead_id == lead_id)
        ).mappings():
            items.append(
                TimelineItem(
                    r["occurred_at"],
                    "activity",
                    _describe_activity(r["type"], r["properties"]),
                    actor=r["recorded_by"],
                    data={"id": r["id"], "type": r["type"], "properties": r["properties"]},
                    merged_from=r["merged_from_id"],
                )
            )
        for r in connection.execute(
            select(transitions).where(transitions.c.lead_id == lead_id)
        ).mappings():
            items.append(
                TimelineItem(
                    r["occurred_at"],
                    "transition",
                    f"{r['from_stage']} → {r['to_stage']}: {r['reason']}",
                    r["actor"],
                    {
                        "from": r["from_stage"],
                        "to": r["to_stage"],
                        "reason": r["reason"],
                        "contract_version": r["contract_version"],
                    },
                    r["merged_from_id"],
                )
            )
        for r in connection.execute(select(notes).where(notes.c.lead_id == lead_id)).mappings():
            items.append(
                TimelineItem(
                    r["created_at"],
                    "note",
                    r["body"],
                    r["author"],
                    {"id": r["id"]},
                    r["merged_from_id"],
                )
            )
        for r in connection.execute(
            select(tag_events).where(tag_events.c.lead_id == lead_id)
        ).mappings():
            items.append(
                TimelineItem(
                    r["occurred_at"],
                    "tag",
                    f"tag '{r['tag']}' {r['action']}",
                    r["actor"],
                    {"tag": r["tag"], "action": r["action"]},
                    r["merged_from_id"],
                )
            )
        for r in connection.execute(
            select(lead_merges).where(lead_merges.c.survivor_id == lead_id)
        ).mappings():
            items.append(
                TimelineItem(
                    r["occurred_at"],
                    "merge",
                    f"lead {r['merged_id']} merged into this lead",
                    r["actor"],
                    dict(r["changes"]),
                )
            )
        for r in connection.execute(
            select(handoff_events, handoffs.c.lead_id)
            .select_from(
                handoff_events.join(handoffs, handoffs.c.id == handoff_events.c.handoff_id)
            )
            .where(
                or_(
                    handoffs.c.lead_id == lead_id,
                    handoffs.c.lead_id.in_(
                        select(leads.c.id).where(leads.c.merged_into_id == lead_id)
                    ),
                )
            )
        ).mappings():
            items.append(
                TimelineItem(
                    r["occurred_at"],
                    "handoff",
                    _describe_handoff_event(r["handoff_id"], r["kind"], r["detail"]),
                    r["actor"],
                    {"handoff_id": r["handoff_id"], "event": r["kind"], **r["detail"]},
                    r["lead_id"] if r["lead_id"] != lead_id else None,
                )
            )
    items.sort(key=lambda i: (i.at, _KIND_ORDER[i.kind]))
    if limit is not None:
        items = items[-limit:]
    return items
