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


_CAUSAL_RANK = {
    "created": 0,  # the lead exists before anything about it
    "activity": 1,  # a capture or an event, which a re-score reacts to
    "merge": 2,  # a merge, whose re-score and handoff close follow it
    "transition": 3,  # a stage change ...
    "handoff": 4,  # ... then what it set off: the handoff opened or closed, or the verdict
    "tag": 5,
    "note": 6,
}
"""Order of kinds written at the same instant. A use case stamps all it writes with one
reading of the clock, so entries of one transaction share a time; this is the order in
which one transaction causes them (each kind's own rows then follow their ids)."""


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
    a lead out of ``actor``'s reach is :class:`NotFound`.

    Entries with the same time keep the order they were written in: by kind in the
    order one transaction causes them (:data:`_CAUSAL_RANK`), then by row id, which
    each table hands out in write order. So ``sql → opportunity`` stays before
    ``opportunity → customer`` when a deal won from SQL records both at once, and a
    handoff's events read assigned, accepted, won even with the clock standing still."""
    entries: list[tuple[int, TimelineItem]] = []

    def add(row_id: int, item: TimelineItem) -> None:
        entries.append((row_id, item))

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
        add(lead_id, TimelineItem(lead["created_at"], "created", "lead created"))
        for r in connection.execute(
            select(activities).where(activities.c.lead_id == lead_id)
        ).mappings():
            add(
                r["id"],
                TimelineItem(
                    r["occurred_at"],
                    "activity",
                    _describe_activity(r["type"], r["properties"]),
                    actor=r["recorded_by"],
                    data={"id": r["id"], "type": r["type"], "properties": r["properties"]},
                    merged_from=r["merged_from_id"],
                ),
            )
        for r in connection.execute(
            select(transitions).where(transitions.c.lead_id == lead_id)
        ).mappings():
            add(
                r["id"],
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
                        **(
                            {
                                "historical": True,
                                "recorded_at": r["recorded_at"].isoformat()
                                if r["recorded_at"]
                                else None,
                                "deal_value": r["deal_value"],
                            }
                            if r["historical"]
                            else {}
                        ),
                    },
                    r["merged_from_id"],
                ),
            )
        for r in connection.execute(select(notes).where(notes.c.lead_id == lead_id)).mappings():
            add(
                r["id"],
                TimelineItem(
                    r["created_at"],
                    "note",
                    r["body"],
                    r["author"],
                    {"id": r["id"]},
                    r["merged_from_id"],
                ),
            )
        for r in connection.execute(
            select(tag_events).where(tag_events.c.lead_id == lead_id)
        ).mappings():
            add(
                r["id"],
                TimelineItem(
                    r["occurred_at"],
                    "tag",
                    f"tag '{r['tag']}' {r['action']}",
                    r["actor"],
                    {"tag": r["tag"], "action": r["action"]},
                    r["merged_from_id"],
                ),
            )
        for r in connection.execute(
            select(lead_merges).where(lead_merges.c.survivor_id == lead_id)
        ).mappings():
            add(
                r["id"],
                TimelineItem(
                    r["occurred_at"],
                    "merge",
                    f"lead {r['merged_id']} merged into this lead",
                    r["actor"],
                    dict(r["changes"]),
                ),
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
            add(
                r["id"],
                TimelineItem(
                    r["occurred_at"],
                    "handoff",
                    _describe_handoff_event(r["handoff_id"], r["kind"], r["detail"]),
                    r["actor"],
                    {"handoff_id": r["handoff_id"], "event": r["kind"], **r["detail"]},
                    r["lead_id"] if r["lead_id"] != lead_id else None,
                ),
            )
    entries.sort(key=lambda e: (e[1].at, _CAUSAL_RANK[e[1].kind], e[0]))
    items = [item for _, item in entries]
    if limit is not None:
        items = items[-limit:]
    return items
