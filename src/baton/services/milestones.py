"""Milestones: the facts the reports count, kept beside what they summarise.

A year of history is a million leads, ten million activities and hundreds of
thousands of handoffs; deriving the stages each lead reached from its transitions, and
each chain's outcome from its handoffs, on every report would take tens of seconds.
So two projections are kept in the transaction of the change they reflect:

* on each lead (``leads``): the stages it ever moved into (one bit each, see
  :data:`~baton.domain.reports.STAGE_BITS`), the first moment it entered each funnel
  stage, the contract version of its first MQL, the rep of its first handoff, and what sales did
  with its chains (:data:`~baton.domain.reports.OUTCOME_BITS`, and the accept deadline
  of an open chain nobody accepted yet);
* per chain of handoffs (``handoff_chains``): the first handoff's rep, contract and MQL
  moment, the chain's first notification and first touch (and the speed-to-lead
  durations between them), and whether it was accepted, rejected (with or without
  credit for marketing), won, lost, or is still open;

plus, on each handoff, how many reminders and manager notifications its SLA ladder
sent.

Both are functions of the transitions, the handoffs and which leads were merged:
:func:`refresh_leads` and :func:`refresh_chains` recompute them (for some ids, or
all), and what the use cases keep incrementally always equals such a recomputation (a
test plays a history and compares). ``baton report rebuild`` runs :func:`rebuild` for
an operator who wrote to the tables by hand; on PostgreSQL it holds writers off for
its duration.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    and_,
    bindparam,
    case,
    delete,
    false,
    func,
    insert,
    or_,
    select,
    type_coerce,
    update,
)
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from baton.domain.reports import MILESTONE_STAGES, OUTCOME_BITS, STAGE_BITS
from baton.services.context import Context
from baton.services.queries import constant, flag, one_of, one_of_params, seconds_between
from baton.store.tables import (
    OPEN_HANDOFF_STATUSES,
    handoff_chains,
    handoff_events,
    handoffs,
    leads,
    transitions,
)
from baton.store.types import UtcDateTime

STEP_COUNTERS = {"reminded": "reminders", "manager_notified": "manager_notifications"}
"""Handoff event kinds counted on the handoff itself (for the SLA report)."""


def _bitmask(
    bits: Mapping[str, int], condition: Callable[[str], ColumnElement[bool]]
) -> ColumnElement[Any]:
    """Aggregate: the sum of ``bits[name]`` for every name whose ``condition`` holds for
    some row of the group (a MAX per bit, so no DISTINCT aggregate); 0 for no rows."""
    mask: Any = None
    for name, bit in bits.items():
        term = func.max(case((condition(name), constant(bit)), else_=constant(0)))
        mask = term if mask is None else mask + term
    return func.coalesce(mask, constant(0))


# --- leads ---------------------------------------------------------------------------------


def on_transition(
    stage: str,
    now: datetime | ColumnElement[Any],
    contract_version: int | ColumnElement[Any] | None,
) -> dict[str, Any]:
    """The milestone values for the ``UPDATE leads`` of a transition into ``stage`` at
    ``now``: its bit added, and the stage's first moment (with the contract version for
    an MQL) kept unless an earlier one is already there. ``now`` and
    ``contract_version`` may be bound parameters, for a statement built once."""
    values: dict[str, Any] = {}
    bit = STAGE_BITS.get(stage)
    if bit is not None:
        values["reached_stages"] = leads.c.reached_stages.op("|")(bit)
    if stage in MILESTONE_STAGES:
        column = leads.c[f"{stage}_at"]
        moment = type_coerce(now, UtcDateTime)
        first = or_(column.is_(None), column > moment)
        values[f"{stage}_at"] = case((first, moment), else_=column)
        if stage == "mql":
            values["mql_contract_version"] = case(
                (first, contract_version), else_=leads.c.mql_contract_version
            )
    return values


def on_transition_of(
    lead: Mapping[str, Any], stage: str, now: datetime, contract_version: int | None
) -> dict[str, Any]:
    """What :func:`on_transition` will write on ``lead`` (a row as read): the same
    values, computed here, for a caller that acts on the moved lead before it writes
    it (a hand-raise on PostgreSQL routes first, then writes the stage with the
    handoff facts, so the lead row is written once)."""
    values: dict[str, Any] = {}
    bit = STAGE_BITS.get(stage)
    if bit is not None:
        reached = lead["reached_stages"]
        values["reached_stages"] = None if reached is None else reached | bit
    if stage in MILESTONE_STAGES:
        column = lead[f"{stage}_at"]
        first = column is None or column > now
        values[f"{stage}_at"] = now if first else column
        if stage == "mql":
            values["mql_contract_version"] = (
                contract_version if first else lead["mql_contract_version"]
            )
    return values


def handoff_facts() -> dict[str, Any]:
    """The lead's handoff facts (``first_rep_id``, ``handoff_outcomes``,
    ``open_accept_due_at``) as the values of an ``UPDATE leads``, read from its
    handoffs and chains: what :func:`refresh_leads_of_chains` writes, for a caller that
    writes them with other columns of the lead in one statement."""
    return _handoff_values()


def _lead_values() -> dict[str, Any]:
    """Every milestone column as a correlated subquery over the lead's transitions and
    handoffs."""
    t = transitions.alias("mt")
    own = t.c.lead_id == leads.c.id
    values: dict[str, Any] = {
        "reached_stages": select(_bitmask(STAGE_BITS, lambda stage: t.c.to_stage == stage))
        .where(own)
        .scalar_subquery(),
        "mql_contract_version": select(t.c.contract_version)
        .where(own, t.c.to_stage == "mql")
        .order_by(t.c.occurred_at, t.c.id)
        .limit(1)
        .scalar_subquery(),
    }
    for stage in MILESTONE_STAGES:
        values[f"{stage}_at"] = (
            select(func.min(t.c.occurred_at)).where(own, t.c.to_stage == stage).scalar_subquery()
        )
    return {**values, **_handoff_values()}


def _handoff_values() -> dict[str, Any]:
    """``first_rep_id``, ``handoff_outcomes`` and ``open_accept_due_at`` as
    correlated subqueries over the lead's handoffs and chains."""
    c = handoff_chains.alias("oc")
    own = c.c.lead_id == leads.c.id
    unaccepted = and_(~c.c.accepted, ~c.c.rejected)
    conditions = {
        "rejected": c.c.rejected,
        "rejected_without_credit": c.c.rejected_without_credit,
        "closed_unaccepted": and_(~c.c.is_open, unaccepted),
        "open": c.c.is_open,
    }
    waiting = case((and_(c.c.is_open, unaccepted), c.c.open_accept_due_at))
    probe = handoffs.alias("fh")
    # min(id) over ix_handoffs_lead_id (lead_id, id): one probe. (ORDER BY id LIMIT 1
    # let PostgreSQL walk the primary key filtering on the lead: every handoff per row.)
    first_id = (
        select(func.min(probe.c.id))
        .where(probe.c.lead_id == leads.c.id)
        .correlate(leads)
        .scalar_subquery()
    )
    return {
        "first_rep_id": select(handoffs.c.rep_id)
        .where(handoffs.c.id == first_id)
        .scalar_subquery(),
        "handoff_outcomes": select(_bitmask(OUTCOME_BITS, conditions.__getitem__))
        .where(own)
        .scalar_subquery(),
        "open_accept_due_at": select(func.max(waiting)).where(own).scalar_subquery(),
    }


def refresh_leads(connection: Connection, lead_ids: Sequence[int] | None = None) -> int:
    """Recompute the milestones of ``lead_ids`` (every lead with a transition, a
    handoff or a milestone when None) from their transitions and handoffs. Returns
    the number of leads updated."""
    if lead_ids is not None:
        if not lead_ids:
            return 0
        which: ColumnElement[bool] = leads.c.id.in_(sorted(set(lead_ids)))
    else:
        # EXISTS, not IN (...) OR ...: PostgreSQL cannot hash an IN list it expects to
        # outgrow work_mem, and would rescan it for every lead.
        which = or_(
            select(transitions.c.id).where(transitions.c.lead_id == leads.c.id).exists(),
            select(handoffs.c.id).where(handoffs.c.lead_id == leads.c.id).exists(),
            leads.c.reached_stages != 0,
            leads.c.first_rep_id.is_not(None),
            leads.c.handoff_outcomes != 0,
            leads.c.open_accept_due_at.is_not(None),
        )
    result = connection.execute(update(leads).where(which).values(**_lead_values()))
    return int(result.rowcount or 0)


# --- chains ----------------------------------------------------------------------------------


def _chain_select(
    dialect: str,
    chain_ids: Callable[[Any], ColumnElement[bool]] | None,
    *,
    alone: bool = False,
) -> Any:
    """One row per chain: the first handoff's facts, the members' aggregates, what the
    lead did while the chain was its latest MQL (:func:`_by_the_lead`), and the
    speed-to-lead durations computed from them. ``chain_ids``: the condition on the
    chain's id that chooses the chains (None: every chain). ``alone``: every chain
    chosen has its first handoff as its only member (see :func:`_chain_facts`)."""
    facts = _chain_facts(chain_ids, alone=alone).subquery("facts")
    query = select(facts, _next_mql(facts.c).label("next_mql")).subquery("windowed")
    f = query.c
    rep_delay = seconds_between(dialect, f.notified_at, f.first_touch_at)
    computed = {
        "speed_seconds": seconds_between(dialect, f.mql_at, f.first_touch_at),
        "system_seconds": seconds_between(dialect, f.mql_at, f.notified_at),
        "rep_seconds": case((rep_delay < constant(0), constant(0)), else_=rep_delay),
        **_by_the_lead(f),
    }
    return select(*(computed[c].label(c) if c in computed else f[c] for c in CHAIN_COLUMNS))


def _next_mql(f: Any) -> Any:
    """The MQL moment of the lead's next chain (NULL for its latest): the end of the
    window in which the chain is the lead's current MQL."""
    n = handoffs.alias("nx")
    return (
        select(func.min(n.c.mql_at))
        .where(
            n.c.lead_id == f.lead_id,
            n.c.id == n.c.chain_id,
            or_(n.c.mql_at > f.mql_at, and_(n.c.mql_at == f.mql_at, n.c.id > f.chain_id)),
        )
        .scalar_subquery()
    )


def _by_the_lead(f: Any) -> dict[str, ColumnElement[Any]]:
    """``accepted``, ``won`` and ``lost`` by what happened to the lead, whatever path it
    took, in the chain's window (from its MQL moment to the next chain's):

    * accepted: a handoff of the chain was accepted, or the lead moved into ``sal``
      (a manager who took a queued lead by hand accepted it for sales);
    * won: the lead **first** became a customer in the window, by a verdict or by
      hand (at most one chain of a lead is won, so a customer is counted once);
    * lost: a handoff of the chain was lost, or the lead moved into ``lost``.

    Read from the transitions, not the lead's milestones, so that a rebuild (which
    writes the chains before the leads) needs nothing but the history."""
    t = transitions.alias("wt")

    def inside(moment: Any) -> ColumnElement[bool]:
        return and_(moment >= f.mql_at, or_(f.next_mql.is_(None), moment < f.next_mql))

    def reached(stage: str) -> ColumnElement[bool]:
        return (
            select(t.c.id)
            .where(
                t.c.lead_id == f.lead_id, t.c.to_stage == constant(stage), inside(t.c.occurred_at)
            )
            .exists()
        )

    became_customer = (
        select(func.min(t.c.occurred_at))
        .where(t.c.lead_id == f.lead_id, t.c.to_stage == constant("customer"))
        .scalar_subquery()
    )
    return {
        "accepted": or_(f.accepted, reached("sal")),
        "won": and_(became_customer.is_not(None), inside(became_customer)),
        "lost": or_(f.lost, reached("lost")),
    }


def _chain_facts(
    chain_ids: Callable[[Any], ColumnElement[bool]] | None, *, alone: bool = False
) -> Any:
    """The chains' own facts, aggregated over their members. ``alone``: each chain
    chosen has one member, its first handoff (a chain just opened), so each aggregate
    is that row's own value: the same row, read without the join and the grouping
    (a shorter statement, cheaper to plan and to run)."""
    head = handoffs.alias("ch")
    m = head if alone else handoffs.alias("cm")
    owner = leads.alias("cl")
    # A look-up per chain (a correlated subquery), whatever the planner's estimates.
    merged_into = (
        select(owner.c.merged_into_id).where(owner.c.id == head.c.lead_id).scalar_subquery()
    )
    open_ = m.c.status.in_([constant(s) for s in OPEN_HANDOFF_STATUSES])
    won = m.c.status == constant("won")

    def most(value: Any) -> Any:
        return value if alone else func.max(value)

    def least(value: Any) -> Any:
        return value if alone else func.min(value)

    def any_(condition: ColumnElement[bool]) -> ColumnElement[bool]:
        return most(flag(condition)) == constant(1)  # type: ignore[no-any-return]

    query = select(
        head.c.id.label("chain_id"),
        most(head.c.lead_id).label("lead_id"),
        most(head.c.rep_id).label("rep_id"),
        most(head.c.contract_version).label("contract_version"),
        most(head.c.mql_at).label("mql_at"),
        least(m.c.notified_at).label("notified_at"),
        least(m.c.first_touch_at).label("first_touch_at"),
        # Stored on the chain's first touch only (see log_touch_in).
        most(m.c.first_touch_business_minutes).label("touch_business_minutes"),
        any_(m.c.accepted_at.is_not(None)).label("accepted"),
        any_(m.c.status == constant("rejected")).label("rejected"),
        any_(and_(m.c.status == constant("rejected"), m.c.marketing_credit == false())).label(
            "rejected_without_credit"
        ),
        any_(won).label("won"),
        any_(m.c.status == constant("lost")).label("lost"),
        most(case((won, m.c.deal_value))).label("deal_value"),
        any_(open_).label("is_open"),
        most(case((open_, m.c.accept_due_at))).label("open_accept_due_at"),
    ).where(head.c.chain_id == head.c.id, merged_into.is_(None))
    if not alone:
        query = query.select_from(head.join(m, m.c.chain_id == head.c.id)).group_by(head.c.id)
    if chain_ids is not None:
        query = query.where(chain_ids(head.c.id))
    return query


CHAIN_COLUMNS = tuple(c.name for c in handoff_chains.columns)


def refresh_chains(connection: Connection, chain_ids: Sequence[int]) -> int:
    """Recompute the ``handoff_chains`` rows of ``chain_ids`` from their handoffs (a
    chain of a merged lead has none), and the handoff facts of their leads. Returns the
    number of chains recomputed."""
    if not chain_ids:
        return 0
    heads = connection.execute(
        select(handoffs.c.id, handoffs.c.lead_id)
        .where(handoffs.c.id.in_(sorted(set(chain_ids))))
        .with_for_update()
    ).all()
    _rewrite_chains(connection, [h.id for h in heads], [h.lead_id for h in heads])
    return len(heads)


def add_chains(connection: Connection, chain_ids: Sequence[int], lead_ids: Sequence[int]) -> None:
    """Write the chains of handoffs just opened in this transaction, each the first of
    its chain, and the handoff facts of their leads (``lead_ids``): what
    :func:`refresh_chains` writes for them, without its look-up and lock of rows that
    no other transaction can see yet, and with no old chain row to delete. No
    ``lead_ids``: the caller writes the leads' facts (:func:`handoff_facts`)."""
    if not chain_ids:
        return
    chains, by_chain = _ids("chain_ids", chain_ids)
    connection.execute(_rewrite_statements(connection.dialect.name, chains).add, by_chain)
    if lead_ids:
        refresh_leads_of_chains(connection, lead_ids)


def chain_insert(dialect: str, chain_ids: Sequence[int]) -> tuple[Any, dict[str, Any]]:
    """The ``INSERT … SELECT`` :func:`add_chains` writes the chains ``chain_ids``
    with, built once, and its parameters, for a caller that writes more in the same
    statement; it must then call :func:`refresh_leads_of_chains`."""
    arity, params = _ids("chain_ids", chain_ids)
    return _rewrite_statements(dialect, arity).add, params


def refresh_leads_of_chains(connection: Connection, lead_ids: Sequence[int]) -> None:
    """The second half of :func:`add_chains`: the handoff facts of ``lead_ids``, from
    their chains just written."""
    arity, params = _ids("lead_ids", lead_ids)
    connection.execute(_rewrite_statements(connection.dialect.name, None, arity).update, params)


def _ids(name: str, ids: Sequence[int]) -> tuple[int | None, dict[str, Any]]:
    """The parameters of ``ids`` for :func:`_rewrite_statements` (one id, as a
    hand-raise or a verdict has, by a statement of its own)."""
    return one_of_params(name, sorted(set(ids)), up_to=1)


@dataclass(frozen=True)
class _Rewrite:
    """The statements of :func:`_rewrite_chains`, built once per dialect (building and
    compiling them took longer than running them), taking ``chain_ids`` and
    ``lead_ids`` (as :func:`_ids` gives them)."""

    delete: Any
    insert: Any
    add: Any
    """:attr:`insert` of chains whose only member is their first handoff."""
    update: Any


@functools.cache
def _rewrite_statements(dialect: str, chains: int | None, leads_: int | None = None) -> _Rewrite:
    """The statements for ``chains`` chain ids and ``leads_`` lead ids (None: any
    number, as an expanding list)."""

    def chain_ids(column: Any) -> ColumnElement[bool]:
        return one_of(column, "chain_ids", chains)

    values = _handoff_values()
    same = and_(*(leads.c[name].is_not_distinct_from(value) for name, value in values.items()))
    return _Rewrite(
        delete=delete(handoff_chains).where(chain_ids(handoff_chains.c.chain_id)),
        insert=insert(handoff_chains).from_select(CHAIN_COLUMNS, _chain_select(dialect, chain_ids)),
        add=insert(handoff_chains).from_select(
            CHAIN_COLUMNS, _chain_select(dialect, chain_ids, alone=True)
        ),
        update=update(leads).where(one_of(leads.c.id, "lead_ids", leads_), ~same).values(**values),
    )


def _rewrite_chains(connection: Connection, chain_ids: list[int], lead_ids: list[int]) -> None:
    """Rewrite the rows of ``chain_ids`` (their first handoffs locked by the caller:
    two transactions changing one chain then rewrite it one after the other, each from
    fresh data) and the handoff facts of their leads where those changed. A lead whose
    facts stay the same is not written, so a change that cannot alter them (a
    notification sent) never waits for the lead."""
    chains, ids = _ids("chain_ids", chain_ids)
    statements = _rewrite_statements(connection.dialect.name, chains)
    connection.execute(statements.delete, ids)
    connection.execute(statements.insert, ids)
    refresh_leads_of_chains(connection, lead_ids)


def refresh_chains_of_leads(connection: Connection, lead_ids: Sequence[int]) -> int:
    """Recompute every chain of ``lead_ids`` (after a merge: the absorbed lead's
    chains leave the reports)."""
    chain_ids = connection.execute(
        select(handoffs.c.id).where(
            handoffs.c.lead_id.in_(sorted(set(lead_ids))), handoffs.c.id == handoffs.c.chain_id
        )
    ).scalars()
    return refresh_chains(connection, [int(i) for i in chain_ids])


def refresh_step_counts(connection: Connection) -> int:
    """Recount every handoff's reminders and manager notifications from its events."""
    counts = {
        column: select(func.count())
        .where(handoff_events.c.handoff_id == handoffs.c.id, handoff_events.c.kind == kind)
        .scalar_subquery()
        for kind, column in STEP_COUNTERS.items()
    }
    stepped = (
        select(handoff_events.c.id)
        .where(
            handoff_events.c.handoff_id == handoffs.c.id,
            handoff_events.c.kind.in_(list(STEP_COUNTERS)),
        )
        .exists()
    )
    which = or_(
        stepped,
        *(handoffs.c[column] != 0 for column in STEP_COUNTERS.values()),
    )
    return int(connection.execute(update(handoffs).where(which).values(**counts)).rowcount or 0)


_HEAD = handoffs.alias("head")
_HEAD_OF = (
    select(_HEAD.c.id, _HEAD.c.lead_id)
    .select_from(handoffs.join(_HEAD, _HEAD.c.id == handoffs.c.chain_id))
    .where(handoffs.c.id == bindparam("handoff_id"))
    .with_for_update(of=_HEAD)
)
"""A handoff's chain (its first handoff, locked) and lead."""
_STEP_COUNT = {
    column: update(handoffs)
    .where(handoffs.c.id == bindparam("handoff_id"))
    .values({column: handoffs.c[column] + 1})
    for column in STEP_COUNTERS.values()
}


def on_handoff_event(connection: Connection, handoff_id: int, kind: str) -> None:
    """Keep the handoff's chain and step counts in step with a change just made to it
    (called by :func:`baton.services.routing.log_event`, after the change)."""
    column = STEP_COUNTERS.get(kind)
    if column is not None:
        connection.execute(_STEP_COUNT[column], {"handoff_id": handoff_id})
        return
    found = connection.execute(_HEAD_OF, {"handoff_id": handoff_id}).first()
    if found is not None:
        _rewrite_chains(connection, [int(found.id)], [int(found.lead_id)])


WINDOW_STAGES = frozenset({"sal", "customer", "lost"})
"""Stages whose transitions decide a chain's accepted, won and lost (see
:func:`_by_the_lead`)."""


def on_stage_change(connection: Connection, lead_id: int, stage: str) -> None:
    """Keep the lead's latest chain in step with a transition into ``stage`` just made
    (called by :func:`baton.services.stages.change_stage_in`). A verdict logs an event on
    its open handoff, which rewrites the chain anyway; a lead moved by hand after its
    chain closed (a manager took a queued lead through to ``customer``) has no such
    event, so its chain is rewritten here."""
    if stage not in WINDOW_STAGES:
        return
    h = handoffs.alias("lh")
    latest = connection.execute(
        select(h.c.id)
        .where(h.c.lead_id == lead_id, h.c.id == h.c.chain_id)
        .order_by(h.c.mql_at.desc(), h.c.id.desc())
        .limit(1)
    ).scalar()
    if latest is None:
        return
    still_open = connection.execute(
        select(handoffs.c.id)
        .where(handoffs.c.chain_id == latest, handoffs.c.status.in_(OPEN_HANDOFF_STATUSES))
        .limit(1)
    ).first()
    if still_open is None:
        refresh_chains(connection, [int(latest)])


def rebuild(connection: Connection) -> dict[str, int]:
    """Recompute every milestone, chain and step count from the history (after a bulk
    load, or writes made around the use cases)."""
    # Every chain first: the leads' handoff facts are read from them by refresh_leads,
    # which recomputes every milestone of every lead in one pass.
    connection.execute(delete(handoff_chains))
    connection.execute(
        insert(handoff_chains).from_select(
            CHAIN_COLUMNS, _chain_select(connection.dialect.name, None)
        )
    )
    chains = connection.execute(select(func.count()).select_from(handoff_chains)).scalar()
    return {
        "leads": refresh_leads(connection),
        "chains": int(chains or 0),
        "handoffs": refresh_step_counts(connection),
    }


def rebuild_milestones(ctx: Context) -> dict[str, int]:
    """:func:`rebuild` in one transaction: the use case behind ``baton report
    rebuild``. Safe while Baton runs: on PostgreSQL it first locks out writers to the
    tables it reads and writes (readers go on; writers wait until it commits), so no
    change lands between its reads and its writes; SQLite has one writer anyway."""
    with ctx.write() as connection:
        if connection.dialect.name == "postgresql":
            connection.exec_driver_sql(
                "LOCK TABLE leads, transitions, handoffs, handoff_events, handoff_chains"
                " IN SHARE ROW EXCLUSIVE MODE"
            )
        return rebuild(connection)
