"""The nurture report: per sequence, enrolled, sent, opened, clicked, unsubscribed,
hard bounced, returned to sales and opportunities in a period, and the share of the
period's opportunities that came through nurture (definitions in
:mod:`baton.domain.nurture_report` and the README, "Reports").

Counted in SQL, set-based, one read-only transaction, the same on SQLite and
PostgreSQL. Lead-level events (an unsubscribe, a hard bounce, an MQL, an opportunity)
carry no enrollment, so each is credited to the lead's *latest enrollment that started
before it* (an enrollment's own exit is credited to that enrollment): one query joins
the events to the lead's enrollments and keeps, per event, the enrollment with no
later one before the event. Every count is of distinct enrollments (or leads), so an
unsubscribe recorded both as an activity and as the enrollment's exit counts once.

Merged leads: a merge moves the absorbed lead's activities and transitions to the
survivor, and its enrollments stay on the absorbed lead (which is left out, like
everywhere in the reports), so the survivor's events are credited to the survivor's
own enrollments. An erased person's lead row stays (without personal fields), so the
counts survive an erasure.

Who may read it: like every report (``Action.READ_REPORTS`` over everything).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import (
    Integer,
    String,
    and_,
    cast,
    distinct,
    exists,
    func,
    literal,
    null,
    select,
    union_all,
)
from sqlalchemy.sql.elements import ColumnElement

from baton.domain.access import Principal
from baton.domain.errors import FieldProblem, ValidationFailed
from baton.domain.nurture_report import NurtureReport, OpportunityShare, nurture_rows
from baton.domain.reports import ReportFilters, ReportPeriod
from baton.domain.suggest import suggest
from baton.services.context import Context
from baton.services.contract_rules import active_contract_in
from baton.services.queries import flag
from baton.services.reports import _may_read
from baton.store.tables import (
    activities,
    leads,
    nurture_enrollments,
    nurture_sends,
    transitions,
)

UNSUBSCRIBE_EXIT = "unsubscribe"
HARD_BOUNCE_EXIT = "hard_bounce"
TAKEN_BACK_EXIT = "sales_took_back"
SENT = "sent"
"""The send log status of a step whose email the SMTP server accepted."""


def _in(column: Any, period: ReportPeriod) -> list[ColumnElement[bool]]:
    return [column >= period.start, column < period.end]


def _live(lead_id: Any) -> ColumnElement[bool]:
    """The lead is not merged into another."""
    return exists().where(leads.c.id == lead_id, leads.c.merged_into_id.is_(None))


def _sequence_counts(
    connection: Any, query: Any, name: str, into: dict[str, dict[str, int]]
) -> None:
    for sequence, n in connection.execute(query):
        into[str(sequence)][name] = int(n or 0)


def _credited(events: Any) -> Any:
    """``events`` (``kind``, ``lead_id``, ``at``, ``enrollment_id``) with the enrollment
    they are credited to: an enrollment's own exit names it; any other event goes to the
    lead's latest enrollment that started *before* it (strictly: an MQL at the very
    moment of the recycle is the one that was recycled, not a return). Answers (kind,
    sequence, enrollment id, lead id)."""
    e = nurture_enrollments.alias("ce")
    later = nurture_enrollments.alias("cl")
    newer = exists().where(
        later.c.lead_id == events.c.lead_id,
        later.c.enrolled_at < events.c.at,
        (later.c.enrolled_at > e.c.enrolled_at)
        | and_(later.c.enrolled_at == e.c.enrolled_at, later.c.id > e.c.id),
    )
    columns = [events.c.kind, e.c.sequence, e.c.id.label("enrollment_id"), events.c.lead_id]
    own = select(*columns).select_from(events.join(e, e.c.id == events.c.enrollment_id))
    attributed = (
        select(*columns)
        .select_from(
            events.join(e, and_(e.c.lead_id == events.c.lead_id, e.c.enrolled_at < events.c.at))
        )
        .where(events.c.enrollment_id.is_(None), ~newer)
    )
    return union_all(own, attributed)


def _event(kind: str, lead_id: Any, at: Any, enrollment_id: Any = None) -> list[Any]:
    own = cast(null(), Integer) if enrollment_id is None else enrollment_id
    return [
        literal(kind, String).label("kind"),
        lead_id.label("lead_id"),
        at.label("at"),
        own.label("enrollment_id"),
    ]


def _lead_events(period: ReportPeriod) -> Any:
    """Every event of the period that nurture is credited with, as (kind, lead_id, at,
    enrollment_id: set for an enrollment's own exit): unsubscribes, hard bounces,
    returns to sales (MQL again, or an enrollment sales took back) and each lead's
    first opportunity of the period."""
    e = nurture_enrollments
    a = activities
    t = transitions
    ended = e.c.ended_at
    first_opportunity = (
        select(t.c.lead_id, func.min(t.c.occurred_at).label("at"))
        .where(t.c.to_stage == "opportunity", *_in(t.c.occurred_at, period))
        .group_by(t.c.lead_id)
        .subquery("fo")
    )
    parts = [
        select(*_event("unsubscribed", a.c.lead_id, a.c.occurred_at)).where(
            a.c.type == "unsubscribe", *_in(a.c.occurred_at, period)
        ),
        select(*_event("unsubscribed", e.c.lead_id, ended, e.c.id)).where(
            e.c.exit_reason == UNSUBSCRIBE_EXIT, *_in(ended, period)
        ),
        select(*_event("hard_bounced", leads.c.id, leads.c.email_status_at)).where(
            leads.c.email_status == "hard_bounce", *_in(leads.c.email_status_at, period)
        ),
        select(*_event("hard_bounced", e.c.lead_id, ended, e.c.id)).where(
            e.c.exit_reason == HARD_BOUNCE_EXIT, *_in(ended, period)
        ),
        select(*_event("returned_to_sales", t.c.lead_id, t.c.occurred_at)).where(
            t.c.to_stage == "mql", *_in(t.c.occurred_at, period)
        ),
        select(*_event("returned_to_sales", e.c.lead_id, ended, e.c.id)).where(
            e.c.exit_reason == TAKEN_BACK_EXIT, *_in(ended, period)
        ),
        select(*_event("opportunities", first_opportunity.c.lead_id, first_opportunity.c.at)),
    ]
    return union_all(*parts).subquery("ev")


def _engagement(period: ReportPeriod) -> Any:
    """(sequence, kind, distinct steps) of the period's opens and clicks recorded by a
    nurture email's signed links: their activities carry the enrollment and the step."""
    a = activities
    e = nurture_enrollments
    enrollment = cast(a.c.properties["enrollment_id"].as_string(), Integer)
    step = a.c.properties["step"].as_string()
    engaged = (
        select(
            a.c.type.label("kind"),
            enrollment.label("enrollment_id"),
            step.label("step"),
        )
        .where(
            a.c.type.in_(("email_open", "email_click")),
            *_in(a.c.occurred_at, period),
            a.c.properties["enrollment_id"].as_string().is_not(None),
        )
        .distinct()
        .subquery("engaged")
    )
    return (
        select(e.c.sequence, engaged.c.kind, func.count())
        .select_from(engaged.join(e, e.c.id == engaged.c.enrollment_id))
        .group_by(e.c.sequence, engaged.c.kind)
    )


def nurture_report(
    ctx: Context,
    period: ReportPeriod,
    *,
    actor: Principal,
    sequence: str | None = None,
) -> NurtureReport:
    """What nurture did in ``period``, per sequence (only ``sequence`` when given),
    and how many of the period's opportunities came through it."""
    _may_read(actor)
    e = nurture_enrollments
    s = nurture_sends
    counts: dict[str, dict[str, int]] = defaultdict(dict)
    with ctx.read() as connection:
        _sequence_counts(
            connection,
            select(e.c.sequence, func.count())
            .where(*_in(e.c.enrolled_at, period))
            .group_by(e.c.sequence),
            "enrolled",
            counts,
        )
        _sequence_counts(
            connection,
            select(e.c.sequence, func.count())
            .select_from(s.join(e, e.c.id == s.c.enrollment_id))
            .where(s.c.status == SENT, *_in(s.c.sent_at, period))
            .group_by(e.c.sequence),
            "sent",
            counts,
        )
        for name, kind, n in connection.execute(_engagement(period)):
            counts[str(name)]["opened" if kind == "email_open" else "clicked"] = int(n)
        credited = _credited(_lead_events(period)).subquery("credited")
        live = _live(credited.c.lead_id)
        query = (
            select(
                credited.c.kind,
                credited.c.sequence,
                func.count(distinct(credited.c.enrollment_id)),
            )
            .where(live)
            .group_by(credited.c.kind, credited.c.sequence)
        )
        for kind, name, n in connection.execute(query):
            counts[str(name)][str(kind)] = int(n)
        t = transitions
        first = (
            select(t.c.lead_id, func.min(t.c.occurred_at).label("at"))
            .where(t.c.to_stage == "opportunity", *_in(t.c.occurred_at, period), _live(t.c.lead_id))
            .group_by(t.c.lead_id)
            .subquery("opp")
        )
        nurtured = exists().where(e.c.lead_id == first.c.lead_id, e.c.enrolled_at < first.c.at)
        total, through = connection.execute(
            select(func.count(), func.coalesce(func.sum(flag(nurtured)), 0)).select_from(first)
        ).one()
        active = active_contract_in(connection, share_lock=False)
        ever: set[str] = set()
        if sequence is not None:
            ever = set(connection.execute(select(e.c.sequence).distinct()).scalars())
    known: list[str] = []
    if active is not None:
        section = getattr(active[1], "nurture", None)
        known = list(getattr(section, "sequences", None) or {})
    if sequence is not None and sequence not in known and sequence not in ever:
        # A misspelt name would otherwise be a row of zeros that looks like a fact.
        names = sorted({*known, *ever})
        problem = (
            f"unknown nurture sequence '{sequence}'{suggest(sequence, names)}; "
            f"use one of: {', '.join(names) or '(none)'}"
        )
        raise ValidationFailed(problem, [FieldProblem("sequence", problem)])
    if sequence is not None:
        counts = defaultdict(dict, {k: v for k, v in counts.items() if k == sequence})
        known = [sequence]
    return NurtureReport(
        period=period,
        group_by="sequence",
        filters=ReportFilters(),
        sequence=sequence,
        rows=nurture_rows(counts, known),
        opportunities=OpportunityShare(opportunities=int(total), through_nurture=int(through)),
    )
