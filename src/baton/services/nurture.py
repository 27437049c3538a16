"""Nurture enrollment: who enters a contract sequence, who may not and why, and when an
enrollment ends.

Leads enter a sequence three ways, all planned by :mod:`baton.domain.nurture`:

* automatically, inside the transaction that sets it off: sales rejects a handoff with a
  recycle reason mapped in ``nurture.enroll.rejection_reasons``
  (:func:`enroll_on_rejection_in`), or someone tags a lead with a tag mapped in
  ``nurture.enroll.tags`` (:func:`enroll_on_tag_in`). A lead that may not get nurture
  email (no consent...) is simply not enrolled: the verdict or the tag stands;
* in bulk by tag, by saved lead filter or by a list of lead ids: always previewed first
  (:func:`preview_enrollment`: who would be enrolled, who is excluded and why), then
  enrolled with the same selection (:func:`enroll_leads`) in ONE transaction, skipping
  leads already enrolled (idempotent). Naming leads explicitly (``lead_ids``) is strict:
  any lead that may not be enrolled fails the whole call with a 422 naming the lead and
  the field, and nothing is enrolled;
* one lead inside another use case: :func:`enroll_in`.

An enrollment ends (:func:`exit_enrollments_in`) on a reply or a hand-raise recorded as an
activity (:func:`exit_on_activities_in`, called by the activities ingest), on a stage
change out of marketing's hands (:func:`exit_on_stage_in`, called by
:func:`baton.services.stages.change_stage_in` in the transaction that makes the lead an
MQL), on an unsubscribe, a hard bounce or an erasure (the callers' use cases), or by hand
(:func:`end_enrollment`). Reasons a sequence's ``exit_on`` may leave out (reply,
hand_raise, re_mql, sales_took_back) end only the enrollments whose sequence lists them.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import and_, insert, or_, select, update
from sqlalchemy.engine import Connection, RowMapping

from baton.domain.access import Action, Principal
from baton.domain.contract import HandoffContract
from baton.domain.errors import FieldProblem, NotFound, ValidationFailed
from baton.domain.nurture import (
    BLOCKER_TEXT,
    Blocker,
    Bounds,
    ExitReason,
    Plan,
    Reachability,
    blockers,
    cap_of,
    ends,
    exit_for_activity,
    exit_for_stage,
    lead_facts,
    plan_first,
)
from baton.domain.nurture_rules import NurtureSection
from baton.domain.privacy import suppression_keys
from baton.domain.tags import normalize_tag
from baton.services.access import allowed
from baton.services.context import Context
from baton.services.contract_rules import active_contract_in, rules_of
from baton.services.queries import chunks
from baton.store.tables import (
    OPEN_HANDOFF_STATUSES,
    contracts,
    handoffs,
    lead_scores,
    lead_tags,
    leads,
    nurture_enrollments,
    nurture_sends,
    saved_filters,
    suppressions,
)

ENROLLMENT_STATUSES = ("active", "completed", "exited")

OPTIONAL_EXITS = frozenset({"reply", "hand_raise", "re_mql", "sales_took_back"})
"""Exits a sequence's ``exit_on`` decides; every other reason ends any enrollment."""

BLOCKER_FIELDS: dict[Blocker, str] = {
    Blocker.NO_EMAIL: "email",
    Blocker.NO_CONSENT: "consent_basis",
    Blocker.UNSUBSCRIBED: "unsubscribed_at",
    Blocker.SUPPRESSED: "email",
    Blocker.HARD_BOUNCE: "email_status",
    Blocker.OPEN_HANDOFF: "handoff",
    Blocker.STAGE: "stage",
    Blocker.ALREADY_ENROLLED: "lead_id",
    Blocker.NO_STEP: "sequence",
}
"""The lead field a blocker is about, named in a 422 (``lead_ids[3].consent_basis``)."""


# --- reading the rules ----------------------------------------------------------------


def _section(contract: HandoffContract) -> NurtureSection:
    section: NurtureSection = contract.nurture
    return section


def _bounds(section: NurtureSection) -> Bounds:
    return Bounds(section.delay_days.min, section.delay_days.max)


def _unknown_sequence(
    section: NurtureSection, name: str, loc: str = "sequence"
) -> ValidationFailed:
    known = ", ".join(sorted(section.sequences)) or "none: the contract has no nurture sequences"
    return ValidationFailed(
        f"unknown nurture sequence '{name}'", [FieldProblem(loc, f"use one of: {known}")]
    )


def _contract_rules(
    connection: Connection, versions: Collection[int]
) -> dict[int, HandoffContract]:
    if not versions:
        return {}
    return {
        int(version): rules_of(spec)
        for version, spec in connection.execute(
            select(contracts.c.version, contracts.c.spec).where(
                contracts.c.version.in_(sorted(versions))
            )
        )
    }


# --- who may be enrolled --------------------------------------------------------------


def blockers_in(
    connection: Connection, lead_ids: Sequence[int], *, enrolled_counts: bool = False
) -> dict[int, list[Blocker]]:
    """Why each of ``lead_ids`` may get no nurture email (absent: it may), read now.
    With ``enrolled_counts`` an active enrollment is a blocker too (for enrolling; the
    send lane re-checks a lead that IS enrolled)."""
    found: dict[int, list[Blocker]] = {}
    for part in chunks(sorted(set(lead_ids))):
        rows = connection.execute(
            select(
                leads.c.id,
                leads.c.email,
                leads.c.email_key,
                leads.c.consent,
                leads.c.consent_basis,
                leads.c.unsubscribed_at,
                leads.c.email_status,
                leads.c.stage,
            ).where(leads.c.id.in_(part))
        ).mappings()
        rows_by_id = {int(r["id"]): r for r in rows}
        keys: dict[str, int] = {}
        for lead_id, row in rows_by_id.items():
            if row["email_key"]:
                for key in suppression_keys(str(row["email_key"])):
                    keys[key] = lead_id
        suppressed = {
            keys[k]
            for part_keys in chunks(sorted(keys))
            for k in connection.execute(
                select(suppressions.c.email_key).where(suppressions.c.email_key.in_(part_keys))
            ).scalars()
        }
        # Statuses are filtered here, not in SQL: an IN list plus a status test lets
        # PostgreSQL pick the status index and scan every active row per chunk.
        in_handoff = {
            int(lead_id)
            for lead_id, status in connection.execute(
                select(handoffs.c.lead_id, handoffs.c.status).where(handoffs.c.lead_id.in_(part))
            )
            if status in OPEN_HANDOFF_STATUSES
        }
        enrolled = set(_active_in(connection, part)) if enrolled_counts else set()
        for lead_id, row in rows_by_id.items():
            reasons = blockers(
                Reachability(
                    email=row["email"],
                    consent=row["consent"],
                    consent_basis=row["consent_basis"],
                    unsubscribed=row["unsubscribed_at"] is not None,
                    suppressed=lead_id in suppressed,
                    email_status=row["email_status"],
                    open_handoff=lead_id in in_handoff,
                    stage=str(row["stage"]),
                )
            )
            if lead_id in enrolled:
                reasons.append(Blocker.ALREADY_ENROLLED)
            if reasons:
                found[lead_id] = reasons
    return found


def _facts_of(connection: Connection, lead_ids: Sequence[int]) -> dict[int, RowMapping]:
    out: dict[int, RowMapping] = {}
    for part in chunks(sorted(set(lead_ids))):
        for row in connection.execute(
            select(
                leads.c.id,
                leads.c.email,
                leads.c.first_name,
                leads.c.last_name,
                leads.c.country,
                leads.c.source,
                leads.c.merged_into_id,
                lead_scores.c.grade,
            )
            .select_from(leads.outerjoin(lead_scores, lead_scores.c.lead_id == leads.c.id))
            .where(leads.c.id.in_(part))
        ).mappings():
            out[int(row["id"])] = row
    return out


@dataclass
class _Evaluation:
    plans: dict[int, Plan] = field(default_factory=dict)
    excluded: dict[int, list[Blocker]] = field(default_factory=dict)
    facts: dict[int, RowMapping] = field(default_factory=dict)
    missing: list[int] = field(default_factory=list)


def _evaluate(
    connection: Connection,
    lead_ids: Sequence[int],
    section: NurtureSection,
    sequence: str,
    *,
    now: datetime,
) -> _Evaluation:
    """Who of ``lead_ids`` would enter ``sequence`` now (with their first step) and who
    is excluded and why; merged leads and ids that do not exist are ``missing``."""
    rules = section.sequences[sequence]
    cap = cap_of(rules.max_touches, section.max_touches)
    bounds = _bounds(section)
    result = _Evaluation()
    result.facts = _facts_of(connection, lead_ids)
    present = [
        i for i in lead_ids if i in result.facts and result.facts[i]["merged_into_id"] is None
    ]
    kept = set(present)
    result.missing = [i for i in lead_ids if i not in kept]
    result.excluded = blockers_in(connection, present, enrolled_counts=True)
    for lead_id in present:
        plan = plan_first(
            rules.steps,
            enrolled_at=now,
            lead=lead_facts(result.facts[lead_id]),
            max_touches=cap,
            bounds=bounds,
        )
        if plan.step is None:
            result.excluded.setdefault(lead_id, []).append(Blocker.NO_STEP)
        elif lead_id not in result.excluded:
            result.plans[lead_id] = plan
    return result


def _insert_enrollments(
    connection: Connection,
    plans: Mapping[int, Plan],
    *,
    sequence: str,
    version: int,
    reason: str,
    now: datetime,
    actor: Principal,
) -> dict[int, int]:
    """Insert one active enrollment per planned lead (in batches); returns lead id ->
    enrollment id."""
    ids: dict[int, int] = {}
    ordered = sorted(plans)
    for part in chunks(ordered):
        created = connection.execute(
            insert(nurture_enrollments).returning(
                nurture_enrollments.c.id, nurture_enrollments.c.lead_id
            ),
            [
                {
                    "lead_id": lead_id,
                    "sequence": sequence,
                    "contract_version": version,
                    "status": "active",
                    "reason": reason[:300],
                    "enrolled_at": now,
                    "enrolled_by": actor.name[:200],
                    "next_step": plans[lead_id].step,
                    "next_due_at": plans[lead_id].due_at,
                    "touches": 0,
                }
                for lead_id in part
            ],
        )
        ids.update((int(lead_id), int(enrollment_id)) for enrollment_id, lead_id in created)
    return ids


def _active_in(
    connection: Connection, lead_ids: Sequence[int], *columns: Any
) -> dict[int, RowMapping]:
    """The active enrollment of each of ``lead_ids`` (at most 900) that has one, by
    lead: looked up by the lead index, the status tested here (see :func:`blockers_in`)."""
    rows = connection.execute(
        select(
            nurture_enrollments.c.id,
            nurture_enrollments.c.lead_id,
            nurture_enrollments.c.status,
            *columns,
        ).where(nurture_enrollments.c.lead_id.in_(lead_ids))
    ).mappings()
    return {int(r["lead_id"]): r for r in rows if r["status"] == "active"}


def enroll_in(
    connection: Connection,
    lead_id: int,
    sequence: str,
    *,
    reason: str,
    now: datetime,
    actor: Principal,
    contract: tuple[int, HandoffContract] | None = None,
    strict: bool = True,
) -> int | None:
    """Enroll one lead in ``sequence`` of the active contract (or ``contract``) inside
    the caller's transaction (the caller checked access and locked the lead). Returns
    the enrollment id, or None when the lead is already in an active enrollment.

    ``strict`` (explicit enrollment): a lead that may not get nurture email, or to whom
    no step applies, raises :class:`ValidationFailed` naming the field; not strict
    (automatic enrollment): such a lead is silently left out (None)."""
    active = contract or active_contract_in(connection)
    if active is None:
        if not strict:
            return None
        raise ValidationFailed(
            "no contract is active", [FieldProblem("sequence", "activate a contract first")]
        )
    version, rules = active
    section = _section(rules)
    if sequence not in section.sequences:
        if not strict:
            return None
        raise _unknown_sequence(section, sequence)
    evaluation = _evaluate(connection, [lead_id], section, sequence, now=now)
    if lead_id in evaluation.missing:
        raise NotFound(f"lead {lead_id} does not exist")
    found = evaluation.excluded.get(lead_id, [])
    if Blocker.ALREADY_ENROLLED in found:
        return None
    if found:
        if not strict:
            return None
        raise _refused({lead_id: found}, single=True)
    return _insert_enrollments(
        connection,
        evaluation.plans,
        sequence=sequence,
        version=version,
        reason=reason,
        now=now,
        actor=actor,
    )[lead_id]


def _refused(excluded: Mapping[int, list[Blocker]], *, single: bool = False) -> ValidationFailed:
    problems = []
    for index, (lead_id, reasons) in enumerate(sorted(excluded.items())):
        prefix = "" if single else f"lead_ids[{index}]."
        for blocker in reasons:
            problems.append(
                FieldProblem(
                    f"{prefix}{BLOCKER_FIELDS[blocker]}",
                    f"lead {lead_id}: {BLOCKER_TEXT[blocker]}",
                )
            )
    names = ", ".join(str(i) for i in sorted(excluded)[:20])
    return ValidationFailed(
        f"lead {names} cannot be enrolled"
        if single or len(excluded) == 1
        else f"leads {names} cannot be enrolled",
        problems[:100],
    )


# --- automatic enrollment -------------------------------------------------------------


def enroll_on_rejection_in(
    connection: Connection, lead_id: int, code: str, *, now: datetime, actor: Principal
) -> int | None:
    """Sales rejected the lead with ``code``: enroll it in the sequence the contract maps
    that recycle reason to (if any, and if the lead may get nurture email)."""
    active = active_contract_in(connection)
    if active is None:
        return None
    sequence = _section(active[1]).sequence_for_reason(code)
    if sequence is None:
        return None
    return enroll_in(
        connection,
        lead_id,
        sequence,
        reason=f"rejected: {code}",
        now=now,
        actor=actor,
        contract=active,
        strict=False,
    )


def enroll_on_tag_in(
    connection: Connection, lead_id: int, tag: str, *, now: datetime, actor: Principal
) -> int | None:
    """The lead was just tagged ``tag``: enroll it where the contract maps that tag."""
    active = active_contract_in(connection)
    if active is None:
        return None
    sequence = _section(active[1]).sequence_for_tags([tag])
    if sequence is None:
        return None
    return enroll_in(
        connection,
        lead_id,
        sequence,
        reason=f"tagged {tag}",
        now=now,
        actor=actor,
        contract=active,
        strict=False,
    )


# --- exits ----------------------------------------------------------------------------


def exit_enrollments_in(
    connection: Connection,
    lead_ids: Iterable[int],
    reason: str,
    *,
    now: datetime,
    ended_leads: set[int] | None = None,
    remaining: set[int] | None = None,
) -> list[int]:
    """End the active enrollments of ``lead_ids`` with ``reason`` inside the caller's
    transaction; reasons a sequence may leave out of ``exit_on`` (reply, hand_raise,
    re_mql, sales_took_back) end only enrollments whose sequence lists them. Returns
    the ids of the enrollments ended (none active: nothing happens); ``ended_leads``,
    when given, receives the ids of the leads whose enrollment ended, ``remaining`` the
    ids of the leads whose active enrollment stays."""
    if ended_leads is None:
        ended_leads = set()
    ids = sorted(set(lead_ids))
    if not ids:
        return []
    candidates: list[RowMapping] = []
    for part in chunks(ids):
        candidates.extend(
            _active_in(
                connection,
                part,
                nurture_enrollments.c.sequence,
                nurture_enrollments.c.contract_version,
            ).values()
        )
    if not candidates:
        return []
    rules = (
        _contract_rules(connection, {int(c["contract_version"]) for c in candidates})
        if reason in OPTIONAL_EXITS
        else {}
    )
    ending: list[int] = []
    for row in candidates:
        contract = rules.get(int(row["contract_version"]))
        sequence = _section(contract).sequence(str(row["sequence"])) if contract else None
        if sequence is None or ends(reason, sequence.exit_on):
            ending.append(int(row["id"]))
    ended = set(ending)
    ended_leads.update(int(r["lead_id"]) for r in candidates if int(r["id"]) in ended)
    if remaining is not None:
        remaining.update(int(r["lead_id"]) for r in candidates if int(r["id"]) not in ended)
    for part in chunks(ending):
        connection.execute(
            update(nurture_enrollments)
            .where(nurture_enrollments.c.id.in_(part), nurture_enrollments.c.status == "active")
            .values(
                status="exited",
                exit_reason=reason[:40],
                ended_at=now,
                next_due_at=None,
                claimed_until=None,
                claim_token=None,
            )
        )
    return ending


def _has_active(connection: Connection, lead_ids: Sequence[int]) -> list[int]:
    found: list[int] = []
    for part in chunks(sorted(set(lead_ids))):
        found.extend(_active_in(connection, part))
    return found


def exit_on_activities_in(
    connection: Connection,
    types_by_lead: Mapping[int, Collection[str]],
    *,
    now: datetime,
) -> dict[int, str]:
    """Activities just stored (their types by lead): a reply or a contract hand-raise
    ends the lead's enrollment (when its sequence exits on it). Called by the ingest
    before scoring, so a hand-raise that also makes the lead an MQL reads as a
    hand-raise. Returns lead id -> exit reason for the enrollments ended."""
    enrolled = _has_active(connection, list(types_by_lead))
    if not enrolled:
        return {}
    active = active_contract_in(connection, share_lock=False)
    hand_raise = {e.value for e in active[1].mql.hand_raise} if active else set()
    by_reason: dict[str, list[int]] = {}
    for lead_id in enrolled:
        found = {exit_for_activity(t, hand_raise) for t in types_by_lead[lead_id]} - {None}
        # A reply is the more specific signal when both arrive together.
        if found:
            why = ExitReason.REPLY if ExitReason.REPLY in found else ExitReason.HAND_RAISE
            by_reason.setdefault(why.value, []).append(lead_id)
    ended: dict[int, str] = {}
    for reason, lead_ids in by_reason.items():
        done: set[int] = set()
        exit_enrollments_in(connection, lead_ids, reason, now=now, ended_leads=done)
        ended.update(dict.fromkeys(done, reason))
    return ended


def exit_on_stage_in(
    connection: Connection,
    lead_ids: Collection[int],
    target: str,
    *,
    actor: Principal,
    now: datetime,
    remaining: set[int] | None = None,
) -> list[int] | None:
    """The leads moved to ``target``: an MQL ends their enrollments ``re_mql`` (or
    ``sales_took_back`` when sales moved them), a sales stage ``sales_took_back``,
    disqualified ``disqualified``. Called by the stage change itself, once for all the
    leads it moved. Returns the ids of the enrollments ended, or None when ``target``
    ends none (nothing is looked up); ``remaining``, when given and something was looked
    up, receives the leads whose active enrollment stays (its sequence does not exit on
    this reason)."""
    role = actor.role.value if actor.role is not None else None
    reason = exit_for_stage(target, role)
    if reason is None:
        return None
    return exit_enrollments_in(connection, lead_ids, reason.value, now=now, remaining=remaining)


# --- bulk enrollment with preview -------------------------------------------------------


@dataclass(frozen=True)
class Selection:
    """Which leads a bulk enrollment is about: exactly one of a tag, a saved filter (id
    or name) or explicit lead ids."""

    sequence: str
    tag: str | None = None
    saved_filter: str | None = None
    lead_ids: tuple[int, ...] | None = None

    def describe(self) -> str:
        if self.tag is not None:
            return f"tag '{self.tag}'"
        if self.saved_filter is not None:
            return f"saved filter '{self.saved_filter}'"
        return f"{len(self.lead_ids or ())} lead(s) named"


@dataclass(frozen=True)
class PreviewLead:
    lead_id: int
    email: str | None
    name: str | None
    first_template: str | None = None
    first_due_at: datetime | None = None
    reasons: tuple[str, ...] = ()
    why: tuple[str, ...] = ()


@dataclass(frozen=True)
class EnrollPreview:
    """Who a bulk enrollment would enroll and who it leaves out, and why."""

    sequence: str
    selection: str
    contract_version: int
    matched: int
    would_enroll: int
    excluded: int
    excluded_by_reason: dict[str, int]
    enroll_sample: list[PreviewLead]
    excluded_sample: list[PreviewLead]
    enrolled: int = 0
    enrollment_ids: list[int] = field(default_factory=list)


def _check_selection(selection: Selection) -> None:
    given = [
        name
        for name, value in (
            ("tag", selection.tag),
            ("filter", selection.saved_filter),
            ("lead_ids", selection.lead_ids),
        )
        if value is not None
    ]
    if len(given) != 1:
        raise ValidationFailed(
            "name exactly one of tag, filter or lead_ids",
            [FieldProblem(g, "given together with another selection") for g in given]
            or [FieldProblem("tag", "give a tag, a saved filter or lead ids")],
        )


def _saved_filter_id(connection: Connection, actor: Principal, name: str) -> int:
    query = select(saved_filters.c.id, saved_filters.c.owner_user_id).where(
        or_(
            saved_filters.c.name == name,
            saved_filters.c.id == (int(name) if name.isdigit() and len(name) < 16 else -1),
        )
    )
    if not actor.trusted:
        mine = saved_filters.c.owner_user_id == actor.user_id if actor.user_id else None
        shared = saved_filters.c.shared.is_(True)
        query = query.where(or_(shared, mine) if mine is not None else shared)
    rows = list(connection.execute(query.order_by(saved_filters.c.id)))
    if not rows:
        raise ValidationFailed(
            f"no saved filter '{name}'",
            [FieldProblem("filter", "name a saved lead filter you own or that is shared")],
        )
    own = [r for r in rows if r[1] == actor.user_id]
    return int((own or rows)[0][0])


def _selected_ids(ctx: Context, selection: Selection, actor: Principal) -> list[int]:
    if selection.lead_ids is not None:
        return list(dict.fromkeys(selection.lead_ids))
    if selection.tag is not None:
        tag = normalize_tag(selection.tag)
        with ctx.read() as connection:
            return [
                int(i)
                for i in connection.execute(
                    select(lead_tags.c.lead_id)
                    .select_from(lead_tags.join(leads, leads.c.id == lead_tags.c.lead_id))
                    .where(lead_tags.c.tag == tag, leads.c.merged_into_id.is_(None))
                    .order_by(lead_tags.c.lead_id)
                ).scalars()
            ]
    from baton.services.saved_filters import leads_of_saved_filter

    with ctx.read() as connection:
        filter_id = _saved_filter_id(connection, actor, str(selection.saved_filter))
    return list(leads_of_saved_filter(ctx, filter_id, actor=actor))


def _name(row: Mapping[Any, Any] | None) -> str | None:
    if row is None:
        return None
    parts = [p for p in (row.get("first_name"), row.get("last_name")) if p]
    return " ".join(parts) or None


def _preview_of(
    selection: Selection,
    version: int,
    section: NurtureSection,
    evaluation: _Evaluation,
    matched: int,
    sample: int,
) -> EnrollPreview:
    steps = section.sequences[selection.sequence].steps
    counts: dict[str, int] = {}
    for reasons in evaluation.excluded.values():
        for blocker in reasons:
            counts[blocker.value] = counts.get(blocker.value, 0) + 1
    enroll_sample = [
        PreviewLead(
            lead_id,
            evaluation.facts[lead_id]["email"],
            _name(evaluation.facts[lead_id]),
            steps[plan.step].template if plan.step is not None else None,
            plan.due_at,
        )
        for lead_id, plan in sorted(evaluation.plans.items())[:sample]
    ]
    excluded_sample = [
        PreviewLead(
            lead_id,
            evaluation.facts[lead_id]["email"],
            _name(evaluation.facts[lead_id]),
            reasons=tuple(b.value for b in reasons),
            why=tuple(BLOCKER_TEXT[b] for b in reasons),
        )
        for lead_id, reasons in sorted(evaluation.excluded.items())[:sample]
    ]
    return EnrollPreview(
        sequence=selection.sequence,
        selection=selection.describe(),
        contract_version=version,
        matched=matched,
        would_enroll=len(evaluation.plans),
        excluded=len(evaluation.excluded),
        excluded_by_reason=dict(sorted(counts.items())),
        enroll_sample=enroll_sample,
        excluded_sample=excluded_sample,
    )


def _active_section(connection: Connection, sequence: str) -> tuple[int, NurtureSection]:
    active = active_contract_in(connection)
    if active is None:
        raise ValidationFailed(
            "no contract is active", [FieldProblem("sequence", "activate a contract first")]
        )
    section = _section(active[1])
    if sequence not in section.sequences:
        raise _unknown_sequence(section, sequence)
    return active[0], section


def _missing_leads(missing: list[int]) -> NotFound:
    return NotFound(
        "lead " + ", ".join(str(i) for i in missing[:20]) + " does not exist (or was merged)"
    )


def preview_enrollment(
    ctx: Context, selection: Selection, *, actor: Principal, sample: int = 50
) -> EnrollPreview:
    """What :func:`enroll_leads` would do with the same selection now: counts, who would
    be enrolled (first step and when) and who is excluded and why (up to ``sample`` of
    each). Changes nothing."""
    allowed(actor, Action.MANAGE_NURTURE)
    _check_selection(selection)
    ids = _selected_ids(ctx, selection, actor)
    with ctx.read() as connection:
        version, section = _active_section(connection, selection.sequence)
        evaluation = _evaluate(connection, ids, section, selection.sequence, now=ctx.clock.now())
    if selection.lead_ids is not None and evaluation.missing:
        raise _missing_leads(evaluation.missing)
    return _preview_of(selection, version, section, evaluation, len(ids), sample)


def enroll_leads(
    ctx: Context, selection: Selection, *, actor: Principal, sample: int = 50
) -> EnrollPreview:
    """Enroll the selection in ONE transaction, re-evaluated at that moment: leads
    already enrolled are skipped (so a second call enrolls nobody twice), excluded
    leads are counted as in the preview. With explicit ``lead_ids`` any lead that may
    not be enrolled (other than already enrolled) fails the whole call (422 naming the
    lead and field) and nothing is enrolled."""
    allowed(actor, Action.MANAGE_NURTURE)
    _check_selection(selection)
    ids = _selected_ids(ctx, selection, actor)
    now = ctx.clock.now()
    with ctx.write() as connection:
        version, section = _active_section(connection, selection.sequence)
        if ids:
            # Lock the leads in id order (PostgreSQL) so no concurrent change slips in.
            for part in chunks(sorted(ids)):
                connection.execute(
                    select(leads.c.id).where(leads.c.id.in_(part)).with_for_update()
                ).all()
        evaluation = _evaluate(connection, ids, section, selection.sequence, now=now)
        if selection.lead_ids is not None:
            if evaluation.missing:
                raise _missing_leads(evaluation.missing)
            refused: dict[int, list[Blocker]] = {
                i: [b for b in r if b is not Blocker.ALREADY_ENROLLED]
                for i, r in evaluation.excluded.items()
            }
            refused = {i: r for i, r in refused.items() if r}
            if refused:
                raise _refused(refused, single=len(ids) == 1)
        created = _insert_enrollments(
            connection,
            evaluation.plans,
            sequence=selection.sequence,
            version=version,
            reason=f"bulk: {selection.describe()}",
            now=now,
            actor=actor,
        )
    preview = _preview_of(selection, version, section, evaluation, len(ids), sample)
    return EnrollPreview(
        **{
            **preview.__dict__,
            "enrolled": len(created),
            "enrollment_ids": [created[i] for i in sorted(created)],
        }
    )


# --- reading enrollments --------------------------------------------------------------


@dataclass(frozen=True)
class SendRow:
    step: int
    template: str
    status: str
    planned_at: datetime
    sent_at: datetime | None
    message_id: str | None


@dataclass(frozen=True)
class Enrollment:
    id: int
    lead_id: int
    email: str | None
    sequence: str
    contract_version: int
    status: str
    reason: str
    enrolled_at: datetime
    enrolled_by: str
    next_step: int | None
    next_template: str | None
    next_due_at: datetime | None
    touches: int
    max_touches: int | None
    last_touch_at: datetime | None
    ended_at: datetime | None
    exit_reason: str | None
    sends: list[SendRow] | None = None


def _enrollments(
    connection: Connection, where: Sequence[Any], *, limit: int, offset: int = 0
) -> list[Enrollment]:
    rows = list(
        connection.execute(
            select(nurture_enrollments, leads.c.email)
            .select_from(
                nurture_enrollments.join(leads, leads.c.id == nurture_enrollments.c.lead_id)
            )
            .where(*where)
            .order_by(nurture_enrollments.c.id.desc())
            .limit(limit)
            .offset(offset)
        ).mappings()
    )
    rules = _contract_rules(connection, {int(r["contract_version"]) for r in rows})
    out: list[Enrollment] = []
    for row in rows:
        contract = rules.get(int(row["contract_version"]))
        section = _section(contract) if contract else None
        sequence = section.sequence(str(row["sequence"])) if section else None
        active = row["status"] == "active"
        step = int(row["next_step"]) if active else None
        template = (
            sequence.steps[step].template
            if sequence is not None and step is not None and step < len(sequence.steps)
            else None
        )
        out.append(
            Enrollment(
                id=int(row["id"]),
                lead_id=int(row["lead_id"]),
                email=row["email"],
                sequence=str(row["sequence"]),
                contract_version=int(row["contract_version"]),
                status=str(row["status"]),
                reason=str(row["reason"]),
                enrolled_at=row["enrolled_at"],
                enrolled_by=str(row["enrolled_by"]),
                next_step=step,
                next_template=template,
                next_due_at=row["next_due_at"] if active else None,
                touches=int(row["touches"]),
                max_touches=(
                    cap_of(sequence.max_touches, section.max_touches)
                    if sequence is not None and section is not None
                    else None
                ),
                last_touch_at=row["last_touch_at"],
                ended_at=row["ended_at"],
                exit_reason=row["exit_reason"],
            )
        )
    return out


def list_enrollments(
    ctx: Context,
    *,
    actor: Principal,
    lead_id: int | None = None,
    sequence: str | None = None,
    status: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[Enrollment]:
    """Enrollments newest first, by lead, sequence and status (active, completed,
    exited), with the next step and when it is due."""
    allowed(actor, Action.READ_NURTURE)
    if status is not None and status not in ENROLLMENT_STATUSES:
        raise ValidationFailed(
            f"unknown status '{status}'",
            [FieldProblem("status", "use one of: " + ", ".join(ENROLLMENT_STATUSES))],
        )
    where: list[Any] = []
    if lead_id is not None:
        where.append(nurture_enrollments.c.lead_id == lead_id)
    if sequence is not None:
        where.append(nurture_enrollments.c.sequence == sequence)
    if status is not None:
        where.append(nurture_enrollments.c.status == status)
    with ctx.read() as connection:
        return _enrollments(connection, where, limit=limit, offset=offset)


def lead_enrollments(ctx: Context, lead: str | int, *, actor: Principal) -> list[Enrollment]:
    """Every enrollment of one lead (by id or email), newest first, each with its send
    log: for ``baton nurture show``."""
    allowed(actor, Action.READ_NURTURE)
    with ctx.read() as connection:
        lead_id = _lead_id(connection, lead)
        found = _enrollments(connection, [nurture_enrollments.c.lead_id == lead_id], limit=1000)
        sends: dict[int, list[SendRow]] = {}
        for row in connection.execute(
            select(nurture_sends)
            .where(nurture_sends.c.lead_id == lead_id)
            .order_by(nurture_sends.c.enrollment_id, nurture_sends.c.step)
        ).mappings():
            sends.setdefault(int(row["enrollment_id"]), []).append(
                SendRow(
                    int(row["step"]),
                    str(row["template"]),
                    str(row["status"]),
                    row["planned_at"],
                    row["sent_at"],
                    row["message_id"],
                )
            )
    return [Enrollment(**{**e.__dict__, "sends": sends.get(e.id, [])}) for e in found]


def _lead_id(connection: Connection, lead: str | int) -> int:
    text = str(lead).strip()
    if text.isdigit() and len(text) < 19:
        query = select(leads.c.id).where(leads.c.id == int(text))
    else:
        query = select(leads.c.id).where(leads.c.email_key == text.lower())
    found = connection.execute(query).scalar()
    if found is None:
        raise NotFound(f"lead {text} does not exist")
    return int(found)


def get_enrollment(ctx: Context, enrollment_id: int, *, actor: Principal) -> Enrollment:
    allowed(actor, Action.READ_NURTURE)
    with ctx.read() as connection:
        found = _enrollments(connection, [nurture_enrollments.c.id == enrollment_id], limit=1)
    if not found:
        raise NotFound(f"enrollment {enrollment_id} does not exist")
    return found[0]


def end_enrollment(
    ctx: Context, enrollment_id: int, *, actor: Principal, reason: str = ExitReason.MANUAL.value
) -> Enrollment:
    """End one enrollment by hand (``exited``, reason ``manual``); ending one that has
    already ended changes nothing (idempotent) and returns it as it is."""
    allowed(actor, Action.MANAGE_NURTURE)
    now = ctx.clock.now()
    with ctx.write() as connection:
        row = connection.execute(
            select(nurture_enrollments.c.lead_id, nurture_enrollments.c.status)
            .where(nurture_enrollments.c.id == enrollment_id)
            .with_for_update()
        ).first()
        if row is None:
            raise NotFound(f"enrollment {enrollment_id} does not exist")
        if row[1] == "active":
            connection.execute(
                update(nurture_enrollments)
                .where(
                    and_(
                        nurture_enrollments.c.id == enrollment_id,
                        nurture_enrollments.c.status == "active",
                    )
                )
                .values(
                    status="exited",
                    exit_reason=reason[:40],
                    ended_at=now,
                    next_due_at=None,
                    claimed_until=None,
                    claim_token=None,
                )
            )
    return get_enrollment(ctx, enrollment_id, actor=actor)
