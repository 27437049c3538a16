"""Duplicates and merging.

Baton flags possible duplicates but never merges on its own: a person decides. A merge
keeps everything: the absorbed lead's activities, notes, transitions and tag events move
to the survivor (marked with where they came from), its tags are added, its blank-filling
profile values are taken, and the absorbed record stays, pointing at the survivor, so old
links and later captures of its email still find the right lead.

Merging and reviewing duplicates is :data:`~baton.domain.access.Action.MERGE_LEADS`
(marketing and admins): a merge rewrites two people's records, so whoever does it must
reach both leads; a lead out of reach is reported as missing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, func, insert, or_, select, true, update
from sqlalchemy.engine import Connection

from baton.domain.access import Action, Principal, Reach
from baton.domain.contact import company_key
from baton.domain.duplicates import DuplicateDismissal, DuplicateFilter
from baton.domain.errors import Conflict, NotFound
from baton.domain.leads import DUPLICATE_REASONS, fill_blanks
from baton.services.access import allowed, check_lead, lead_scope
from baton.services.context import Context
from baton.services.duplicate_checks import queue_duplicate_checks_in
from baton.services.milestones import refresh_chains_of_leads, refresh_leads
from baton.services.nurture import exit_enrollments_in
from baton.services.queries import chunks, insert_ignoring_conflicts, lock_lead
from baton.services.routing import close_open_handoff_in
from baton.services.scoring import score_leads_in
from baton.store.tables import (
    activities,
    duplicate_candidates,
    lead_merges,
    lead_prep,
    lead_scores,
    lead_tags,
    leads,
    notes,
    tag_events,
    transitions,
)


@dataclass(frozen=True)
class MergeResult:
    """What a merge moved and changed."""

    survivor_id: int
    merged_id: int
    moved: dict[str, int]
    filled_fields: list[str]


def merge_leads(ctx: Context, survivor_id: int, merged_id: int, *, actor: Principal) -> MergeResult:
    """Merge lead ``merged_id`` into ``survivor_id`` in one transaction, recorded as
    ``actor``'s (who must reach both leads)."""
    allowed(actor, Action.MERGE_LEADS)
    if survivor_id == merged_id:
        raise Conflict("a lead cannot be merged into itself")
    now = ctx.clock.now()
    with ctx.write() as connection:
        for lead_id in (survivor_id, merged_id):
            check_lead(connection, actor, Action.MERGE_LEADS, lead_id)
        first, second = sorted((survivor_id, merged_id))
        rows = {first: lock_lead(connection, first), second: lock_lead(connection, second)}
        survivor, absorbed = rows[survivor_id], rows[merged_id]
        for row in (survivor, absorbed):
            if row["merged_into_id"] is not None:
                raise Conflict(
                    f"lead {row['id']} was already merged into lead {row['merged_into_id']}"
                )
        changes = fill_blanks(dict(survivor), dict(absorbed))
        if "email" in changes:
            changes.pop("email")
        if "company" in changes:
            changes["company_key"] = company_key(changes["company"])
        moved: dict[str, int] = {}
        for name, table in (
            ("activities", activities),
            ("transitions", transitions),
            ("notes", notes),
            ("tag_events", tag_events),
        ):
            moved[name] = connection.execute(
                update(table)
                .where(table.c.lead_id == merged_id)
                .values(lead_id=survivor_id, merged_from_id=merged_id)
            ).rowcount
        absorbed_tags = (
            connection.execute(select(lead_tags).where(lead_tags.c.lead_id == merged_id))
            .mappings()
            .all()
        )
        if absorbed_tags:
            connection.execute(
                insert_ignoring_conflicts(connection, lead_tags),
                [{**t, "lead_id": survivor_id} for t in absorbed_tags],
            )
        latest = [t for t in (survivor["last_activity_at"], absorbed["last_activity_at"]) if t]
        connection.execute(
            update(leads)
            .where(leads.c.id == survivor_id)
            .values(
                **changes,
                activity_count=survivor["activity_count"] + absorbed["activity_count"],
                last_activity_at=max(latest) if latest else None,
                updated_at=now,
            )
        )
        connection.execute(
            update(leads)
            .where(leads.c.id == merged_id)
            .values(merged_into_id=survivor_id, updated_at=now, activity_count=0)
        )
        connection.execute(
            update(leads)
            .where(leads.c.merged_into_id == merged_id)
            .values(merged_into_id=survivor_id)
        )
        # The open handoff before the chains' first handoffs: the lock order of every
        # change to a handoff (lead, handoff, then its chain's first handoff).
        close_open_handoff_in(
            connection,
            merged_id,
            outcome=f"lead merged into lead {survivor_id}",
            now=now,
            actor=actor,
        )
        # The absorbed lead gets no more nurture email; the survivor keeps its own.
        exit_enrollments_in(connection, [merged_id], "merged", now=now)
        refresh_leads(connection, [survivor_id, merged_id])
        refresh_chains_of_leads(connection, [merged_id])
        touching = or_(
            duplicate_candidates.c.lead_id == merged_id,
            duplicate_candidates.c.other_lead_id == merged_id,
        )
        still_open = duplicate_candidates.c.status == "open"
        paired = connection.execute(
            select(duplicate_candidates.c.lead_id, duplicate_candidates.c.other_lead_id).where(
                touching, still_open
            )
        ).all()
        connection.execute(
            update(duplicate_candidates)
            .where(touching, still_open)
            .values(status="merged", resolved_at=now, resolved_by=actor.name)
        )
        # The absorbed lead's open pairs with third leads said those leads look like it;
        # its record now lives in the survivor, so they and the survivor are compared
        # again by the worker, by the same rules (a pair the survivor has, in any state,
        # is not made twice): closing them for good lost the likely duplicates.
        others = {lead for pair in paired for lead in pair} - {merged_id}
        queue_duplicate_checks_in(connection, sorted(others | {survivor_id}), now=now, again=True)
        connection.execute(
            delete(lead_scores).where(lead_scores.c.lead_id.in_([survivor_id, merged_id]))
        )
        survivor_ticks = set(
            connection.execute(
                select(lead_prep.c.item).where(lead_prep.c.lead_id == survivor_id)
            ).scalars()
        )
        connection.execute(
            delete(lead_prep).where(
                lead_prep.c.lead_id == merged_id, lead_prep.c.item.in_(survivor_ticks)
            )
        )
        connection.execute(
            update(lead_prep).where(lead_prep.c.lead_id == merged_id).values(lead_id=survivor_id)
        )
        score_leads_in(connection, [survivor_id], now=now, actor=actor)
        record: dict[str, Any] = {
            "filled": sorted(changes),
            "absorbed_stage": absorbed["stage"],
            "absorbed_email": absorbed["email"],
            "moved": moved,
        }
        connection.execute(
            insert(lead_merges).values(
                survivor_id=survivor_id,
                merged_id=merged_id,
                actor=actor.name,
                actor_user_id=actor.user_id,
                occurred_at=now,
                changes=record,
            )
        )
    return MergeResult(survivor_id, merged_id, moved, sorted(changes))


@dataclass(frozen=True)
class PairLead:
    """One lead of a pair as a reviewer needs it to decide without opening it: who, how
    to reach them, where they work, how far along they are."""

    id: int
    name: str | None
    email: str | None
    phone: str | None
    company: str | None
    stage: str
    created_at: datetime


@dataclass(frozen=True)
class DuplicateCandidate:
    """A pair of leads that may be one person, waiting for a decision: the pair, why it
    was flagged (``reason``, and its short code as filters take it), and both leads."""

    id: int
    lead_id: int
    other_lead_id: int
    reason: str
    similarity: float
    status: str
    created_at: datetime
    reason_code: str | None
    lead: PairLead
    other_lead: PairLead


_PAIR_LEAD = (
    leads.c.id,
    leads.c.first_name,
    leads.c.last_name,
    leads.c.email,
    leads.c.phone,
    leads.c.company,
    leads.c.stage,
    leads.c.created_at,
)


def _pair_leads(connection: Connection, ids: set[int]) -> dict[int, PairLead]:
    """The leads of the listed pairs by id, in one query per chunk of ids."""
    found: dict[int, PairLead] = {}
    for part in chunks(sorted(ids)):
        for r in connection.execute(select(*_PAIR_LEAD).where(leads.c.id.in_(part))):
            name = f"{r.first_name or ''} {r.last_name or ''}".strip() or None
            found[r.id] = PairLead(r.id, name, r.email, r.phone, r.company, r.stage, r.created_at)
    return found


def _pair_in_reach(actor: Principal, level: Reach) -> ColumnElement[bool]:
    """Rows of ``duplicate_candidates`` whose two leads are both within ``level``."""
    if level is Reach.ALL:
        return true()
    reachable = select(leads.c.id).where(lead_scope(actor, level))
    return and_(
        duplicate_candidates.c.lead_id.in_(reachable),
        duplicate_candidates.c.other_lead_id.in_(reachable),
    )


def _picked_by(wanted: DuplicateFilter | None) -> list[ColumnElement[bool]]:
    """The conditions of a filter on ``duplicate_candidates`` (all must hold)."""
    if wanted is None:
        return []
    pairs = duplicate_candidates.c
    conditions: list[ColumnElement[bool]] = []
    if wanted.reason is not None:
        conditions.append(pairs.reason == wanted.reason)
    if wanted.similarity_below is not None:
        conditions.append(pairs.similarity < wanted.similarity_below)
    if wanted.created_since is not None:
        conditions.append(pairs.created_at >= wanted.created_since)
    if wanted.created_before is not None:
        conditions.append(pairs.created_at < wanted.created_before)
    return conditions


def list_duplicates(
    ctx: Context,
    *,
    actor: Principal,
    status: str = "open",
    limit: int = 100,
    where: DuplicateFilter | None = None,
) -> list[DuplicateCandidate]:
    """Review queue of possible duplicates, newest first (only pairs whose two leads
    ``actor`` reaches: the pair tells who the other lead is), narrowed by ``where``."""
    level = allowed(actor, Action.MERGE_LEADS)
    with ctx.read() as connection:
        query = (
            select(duplicate_candidates)
            .where(
                duplicate_candidates.c.status == status,
                _pair_in_reach(actor, level),
                *_picked_by(where),
            )
            .order_by(duplicate_candidates.c.id.desc())
            .limit(limit)
        )
        rows = connection.execute(query).mappings().all()
        people = _pair_leads(connection, {r[k] for r in rows for k in ("lead_id", "other_lead_id")})
    code_of = {text: code for code, text in DUPLICATE_REASONS.items()}
    return [
        DuplicateCandidate(
            r["id"],
            r["lead_id"],
            r["other_lead_id"],
            r["reason"],
            r["similarity"],
            r["status"],
            r["created_at"],
            code_of.get(r["reason"]),
            people[r["lead_id"]],
            people[r["other_lead_id"]],
        )
        for r in rows
    ]


def dismiss_duplicate(ctx: Context, candidate_id: int, *, actor: Principal) -> None:
    """Mark a flagged pair as two different people (a pair ``actor`` cannot see whole
    is not found). Dismissing twice is harmless; a pair already merged is a conflict:
    the two leads are one now, and calling them different would rewrite history."""
    level = allowed(actor, Action.MERGE_LEADS)
    pair = and_(duplicate_candidates.c.id == candidate_id, _pair_in_reach(actor, level))
    with ctx.write() as connection:
        status = connection.execute(
            select(duplicate_candidates.c.status).where(pair).with_for_update()
        ).scalar()
        if status is None:
            raise NotFound(f"duplicate candidate {candidate_id} does not exist")
        if status == "merged":
            raise Conflict(f"duplicate candidate {candidate_id} was merged; it cannot be dismissed")
        if status == "open":
            connection.execute(
                update(duplicate_candidates)
                .where(duplicate_candidates.c.id == candidate_id)
                .values(status="dismissed", resolved_at=ctx.clock.now(), resolved_by=actor.name)
            )


def count_duplicates(
    ctx: Context, *, actor: Principal, status: str = "open", where: DuplicateFilter | None = None
) -> int:
    """How many pairs :func:`list_duplicates` would list without its limit."""
    level = allowed(actor, Action.MERGE_LEADS)
    with ctx.read() as connection:
        return int(
            connection.execute(
                select(func.count())
                .select_from(duplicate_candidates)
                .where(
                    duplicate_candidates.c.status == status,
                    _pair_in_reach(actor, level),
                    *_picked_by(where),
                )
            ).scalar_one()
        )


SAMPLE = 20
"""Pair ids a bulk dismissal names in its answer (the newest), to check a dry run by."""


@dataclass(frozen=True)
class DismissReport:
    """What a bulk dismissal did (or, on a dry run, would do)."""

    matched: int
    """Open pairs within reach that the request picked."""
    dismissed: int
    """Pairs now dismissed (0 on a dry run)."""
    dry_run: bool
    sample: list[int]
    """Up to :data:`SAMPLE` of the picked pair ids, newest first."""
    skipped: list[int]
    """Ids the request named that are not open pairs within reach (missing, out of
    reach, or already merged or dismissed): left as they are."""


def dismiss_duplicates(
    ctx: Context, request: DuplicateDismissal, *, actor: Principal
) -> DismissReport:
    """Dismiss, in one transaction, every open pair within ``actor``'s reach that the
    request picks (by ids, by filter, or both); with ``dry_run``, only count them.

    The same rule as :func:`dismiss_duplicate`: reviewing duplicates is
    ``MERGE_LEADS``, and a pair counts only when both its leads are in reach."""
    level = allowed(actor, Action.MERGE_LEADS)
    pairs = duplicate_candidates.c
    picked = [pairs.status == "open", _pair_in_reach(actor, level), *_picked_by(request)]
    opened = ctx.read if request.dry_run else ctx.write
    with opened() as connection:
        if request.ids is not None:
            wanted = sorted(set(request.ids))
            found: list[int] = []
            for part in chunks(wanted):
                found.extend(
                    connection.execute(select(pairs.id).where(pairs.id.in_(part), *picked))
                    .scalars()
                    .all()
                )
            ids = sorted(found, reverse=True)
            matched, sample = len(ids), ids[:SAMPLE]
            skipped = sorted(set(wanted) - set(ids))
        else:
            matched = int(
                connection.execute(
                    select(func.count()).select_from(duplicate_candidates).where(*picked)
                ).scalar_one()
            )
            sample = list(
                connection.execute(
                    select(pairs.id).where(*picked).order_by(pairs.id.desc()).limit(SAMPLE)
                ).scalars()
            )
            skipped = []
        if request.dry_run or not matched:
            return DismissReport(matched, 0, request.dry_run, sample, skipped)
        resolved = {
            "status": "dismissed",
            "resolved_at": ctx.clock.now(),
            "resolved_by": actor.name,
        }
        dismissed = 0
        if request.ids is not None:
            for part in chunks(sorted(ids)):
                dismissed += connection.execute(
                    update(duplicate_candidates)
                    .where(pairs.id.in_(part), pairs.status == "open")
                    .values(**resolved)
                ).rowcount
        else:
            dismissed = connection.execute(
                update(duplicate_candidates).where(*picked).values(**resolved)
            ).rowcount
    return DismissReport(matched, dismissed, False, sample, skipped)
