"""A rep's inbox: their open handoffs, most urgent first, each with what the rep
needs to decide in a glance (who, score and grade, source, why now, the next
deadline), and the choices the contract gives for a verdict.

One read transaction for the list; the explanation's top rules are computed only for
handoffs that did not come from a hand-raise (the hand-raise says it all). Used by the
web inbox (``/inbox``) and the API (``GET /api/v1/handoffs/inbox``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from baton.domain.access import Action, Principal
from baton.domain.contract import HandoffContract
from baton.domain.errors import BatonError, Forbidden
from baton.services.access import allowed
from baton.services.context import Context
from baton.services.contract_rules import active_rules_in
from baton.services.delivery import why_now_of
from baton.services.handoffs import HandoffPublic, _to_public, handoff_query
from baton.services.scoring import lead_score
from baton.store.tables import handoffs, lead_scores, leads, transitions, users

OPEN = ("assigned", "accepted", "qualified")
"""A rep still has something to do on these."""


@dataclass(frozen=True)
class InboxItem:
    handoff: HandoffPublic
    name: str
    email: str
    company: str | None
    title: str | None
    source: str | None
    score: float | None
    grade: str | None
    why_now: str
    due_label: str
    """What the deadline is for: ``accept``, ``first touch`` or ``next step``."""
    due_at: datetime | None


@dataclass(frozen=True)
class RejectChoice:
    """A reason of the contract's catalog and what it does to the lead."""

    code: str
    label: str
    outcome: str
    marketing_credit: bool

    @property
    def goes_to(self) -> str:
        return "disqualified" if self.outcome == "disqualify" else "back to nurture"


@dataclass(frozen=True)
class Inbox:
    items: list[InboxItem]
    reasons: list[RejectChoice]
    qualification_fields: list[str]
    zone: str
    now: datetime


def _due(handoff: HandoffPublic) -> tuple[str, datetime | None]:
    if handoff.status == "assigned":
        return "accept", handoff.accept_due_at
    if handoff.first_touch_at is None:
        return "first touch", handoff.touch_due_at
    return "next step", handoff.next_step_at


def _name(row: dict[str, object]) -> str:
    parts = [str(row[k]) for k in ("first_name", "last_name") if row.get(k)]
    # A lead known by phone only (a call, a badge scan) has no email to show.
    return " ".join(parts) or str(row.get("lead_email") or f"lead {row['lead_id']}")


def rep_inbox(ctx: Context, *, actor: Principal, limit: int = 200) -> Inbox:
    """The actor's own open handoffs (a rep user's), most urgent first: the earliest
    deadline (to accept, to touch first, the next step) first, those without one last."""
    allowed(actor, Action.READ_HANDOFFS)
    if actor.rep_id is None:
        raise Forbidden("the inbox is a rep's: this user is not linked to a rep")
    now = ctx.clock.now()
    query = (
        handoff_query()
        .add_columns(
            leads.c.email.label("lead_email"),
            leads.c.first_name,
            leads.c.last_name,
            leads.c.company,
            leads.c.title,
            leads.c.source,
            lead_scores.c.total.label("score_total"),
            lead_scores.c.grade.label("score_grade"),
        )
        .join(leads, leads.c.id == handoffs.c.lead_id)
        .outerjoin(lead_scores, lead_scores.c.lead_id == handoffs.c.lead_id)
        .where(handoffs.c.rep_id == actor.rep_id, handoffs.c.status.in_(OPEN))
        .order_by(handoffs.c.id)
        .limit(limit)
    )
    with ctx.read() as connection:
        rows = [dict(r) for r in connection.execute(query).mappings()]
        lead_ids = [int(str(r["lead_id"])) for r in rows]
        reasons: dict[int, str] = {}
        if lead_ids:
            for lead_id, reason in connection.execute(
                select(transitions.c.lead_id, transitions.c.reason)
                .where(transitions.c.lead_id.in_(lead_ids), transitions.c.to_stage == "mql")
                .order_by(transitions.c.occurred_at, transitions.c.id)
            ):
                reasons[int(lead_id)] = str(reason)
        _, contract = active_rules_in(connection)
        zone = (
            connection.execute(select(users.c.timezone).where(users.c.id == actor.user_id))
            .scalar()
        )  # fmt: skip
    items: list[InboxItem] = []
    for row in rows:
        handoff = _to_public(row)
        reason = reasons.get(handoff.lead_id)
        score = None
        if not (reason or "").startswith("hand-raise") and row["score_total"] is not None:
            try:
                score = lead_score(ctx, handoff.lead_id, actor=actor)
            except BatonError:
                score = None
        label, due = _due(handoff)
        items.append(
            InboxItem(
                handoff=handoff,
                name=_name(row),
                email=str(row["lead_email"] or ""),
                company=row["company"],
                title=row["title"],
                source=row["source"],
                score=None if row["score_total"] is None else float(str(row["score_total"])),
                grade=row["score_grade"],
                why_now=why_now_of(reason, score),
                due_label=label,
                due_at=due,
            )
        )
    far = datetime.max.replace(tzinfo=now.tzinfo)
    items.sort(key=lambda i: (i.due_at is None, i.due_at or far, i.handoff.id))
    catalog, fields = _choices(contract)
    return Inbox(items, catalog, fields, str(zone or "UTC"), now)


def _choices(contract: HandoffContract | None) -> tuple[list[RejectChoice], list[str]]:
    catalog = [
        RejectChoice(r.code, r.label, str(r.outcome), r.marketing_credit)
        for r in (contract.rejection_reasons if contract is not None else [])
    ]
    fields = list(contract.qualification.required_fields) if contract is not None else []
    return catalog, fields


@dataclass(frozen=True)
class VerdictChoices:
    """What the active contract offers a rep for a verdict."""

    reasons: list[RejectChoice]
    qualification_fields: list[str]


def verdict_choices(ctx: Context, *, actor: Principal) -> VerdictChoices:
    """The rejection catalog (with what each reason does) and the qualification fields
    of the active contract, for whoever may read handoffs."""
    allowed(actor, Action.READ_HANDOFFS)
    with ctx.read() as connection:
        _, contract = active_rules_in(connection)
    return VerdictChoices(*_choices(contract))
