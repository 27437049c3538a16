"""Lead search: the lead list's use case (search text through the index, filters,
sort, a page with its total), and the ids behind a query for bulk work.

Only leads ``actor`` may read are listed (a rep: the leads of their handoffs), merged
leads never; the total counts the same rows.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, func, literal, select
from sqlalchemy.engine import Connection, RowMapping

from baton.domain.access import Action, Principal, Reach
from baton.domain.errors import FieldProblem, ValidationFailed
from baton.domain.search import MAX_OFFSET, LeadQuery, LeadSort, read_lead_query
from baton.services.access import allowed, lead_scope, rep_scope
from baton.services.context import Context
from baton.services.queries import chunks, tags_of
from baton.store.search import leads_search, search_condition, searched
from baton.store.tables import handoffs, lead_scores, lead_tags, leads, reps

ID_PAGE = 5000
COUNT_LIMIT = 10_000
"""Matches counted at most for a page's total (:attr:`LeadResults.exact`)."""


@dataclass(frozen=True)
class LeadHit:
    """One row of the lead list."""

    id: int
    email: str | None
    first_name: str | None
    last_name: str | None
    company: str | None
    stage: str
    source: str | None
    created_at: datetime
    last_activity_at: datetime | None
    score: float | None
    grade: str | None
    tags: list[str] = field(default_factory=list)
    owner_rep_name: str | None = None
    owner_rep_email: str | None = None

    @property
    def name(self) -> str:
        return " ".join(p for p in (self.first_name, self.last_name) if p)


@dataclass(frozen=True)
class LeadResults:
    """A page of the lead list: the rows, how many match in all, the query it answers."""

    items: list[LeadHit]
    total: int
    query: LeadQuery
    exact: bool = True
    """False when more than :data:`COUNT_LIMIT` match: ``total`` is then that limit
    (counting every match of a one-letter search of a million leads costs more than
    the page; nobody pages through ten thousand rows)."""

    @property
    def next_offset(self) -> int | None:
        after = self.query.offset + len(self.items)
        more = after < self.total or (not self.exact and len(self.items) == self.query.limit)
        return after if more and self.items and after <= MAX_OFFSET else None

    @property
    def previous_offset(self) -> int | None:
        if self.query.offset == 0:
            return None
        return max(0, self.query.offset - self.query.limit)


def as_query(query: LeadQuery | Mapping[str, Any]) -> LeadQuery:
    return query if isinstance(query, LeadQuery) else read_lead_query(query)


def _owner_rep(connection: Connection, actor: Principal, email: str) -> int:
    level = allowed(actor, Action.READ_REPS)
    found = connection.execute(
        select(reps.c.id).where(func.lower(reps.c.email) == email, rep_scope(actor, level))
    ).scalar()
    if found is None:
        message = f"no rep has the email {email}"
        raise ValidationFailed(
            f"invalid lead query: owner: {message}", [FieldProblem("owner", message)]
        )
    return int(found)


def owned_by(rep_id: int) -> ColumnElement[bool]:
    """Leads whose latest handoff is the rep's."""
    later = handoffs.alias("later")
    return leads.c.id.in_(
        select(handoffs.c.lead_id).where(
            handoffs.c.rep_id == rep_id,
            ~exists().where(
                and_(later.c.lead_id == handoffs.c.lead_id, later.c.id > handoffs.c.id)
            ),
        )
    )


def conditions_of(
    connection: Connection, query: LeadQuery, *, actor: Principal, search: bool = True
) -> tuple[list[Any], bool]:
    """The conditions on ``leads`` (joined to ``lead_scores``) for ``query`` within
    ``actor``'s reach, and whether they need the score join (``search=False``: leave
    the search text out, for a caller that joins the index itself)."""
    level = allowed(actor, Action.READ_LEADS)
    conditions: list[Any] = [leads.c.merged_into_id.is_(None)]
    if level is not Reach.ALL:
        conditions.append(lead_scope(actor, level))
    tokens = query.tokens
    if tokens and search:
        conditions.append(search_condition(connection.dialect.name, tokens))
    if query.stage:
        conditions.append(leads.c.stage.in_([s.value for s in query.stage]))
    if query.source:
        conditions.append(leads.c.source == query.source)
    if query.tag:
        conditions.append(
            leads.c.id.in_(select(lead_tags.c.lead_id).where(lead_tags.c.tag == query.tag))
        )
    if query.owner:
        conditions.append(owned_by(_owner_rep(connection, actor, query.owner)))
    needs_scores = bool(query.grade)
    if query.grade:
        conditions.append(lead_scores.c.grade.in_(list(query.grade)))
    return conditions, needs_scores


def _order(query: LeadQuery, lead_id: Any = leads.c.id) -> list[Any]:
    """The ORDER BY of ``query``; ``lead_id`` is the column that stands for the lead's id
    (the FTS5 table's rowid when it drives the join: SQLite then reads the matches
    newest first straight from the index and stops after the page)."""
    descending = query.order == "desc"

    def direction(column: Any) -> Any:
        return (column.desc() if descending else column.asc()).nulls_last()

    tie = lead_id.desc() if descending else lead_id.asc()
    if query.sort is LeadSort.SCORE:
        return [direction(lead_scores.c.total), tie]
    if query.sort is LeadSort.LAST_ACTIVITY:
        return [direction(leads.c.last_activity_at), tie]
    if query.sort is LeadSort.NAME:
        return [
            direction(func.lower(leads.c.last_name)),
            direction(func.lower(leads.c.first_name)),
            direction(func.lower(leads.c.email)),
            tie,
        ]
    return [tie]  # created: ids grow with creation time


def search_leads(
    ctx: Context, query: LeadQuery | Mapping[str, Any], *, actor: Principal
) -> LeadResults:
    """One page of the leads ``actor`` may read that match ``query``, in its order,
    with the total (a mapping is validated first: :class:`ValidationFailed` names each
    bad field)."""
    wanted = as_query(query)
    scored = leads.outerjoin(lead_scores, lead_scores.c.lead_id == leads.c.id)
    with ctx.read() as connection:
        conditions, needs_scores = conditions_of(connection, wanted, actor=actor, search=False)
        counted: Any = scored if needs_scores else leads
        joined: Any = scored
        lead_id: Any = leads.c.id
        if wanted.tokens:
            if ctx.dialect == "sqlite":
                lead_id = leads_search.c.rowid
            joined, match = searched(ctx.dialect, scored, wanted.tokens)
            counted = joined if needs_scores else searched(ctx.dialect, leads, wanted.tokens)[0]
            conditions.append(match)
        capped = select(literal(1)).select_from(counted).where(*conditions).limit(COUNT_LIMIT + 1)
        total = connection.execute(select(func.count()).select_from(capped.subquery())).scalar_one()
        columns = (
            leads.c.id,
            leads.c.email,
            leads.c.first_name,
            leads.c.last_name,
            leads.c.company,
            leads.c.stage,
            leads.c.source,
            leads.c.created_at,
            leads.c.last_activity_at,
            lead_scores.c.total.label("score"),
            lead_scores.c.grade,
        )
        rows = _best_scored(connection, wanted, total, columns, actor) or (
            connection.execute(
                select(
                    leads.c.id,
                    leads.c.email,
                    leads.c.first_name,
                    leads.c.last_name,
                    leads.c.company,
                    leads.c.stage,
                    leads.c.source,
                    leads.c.created_at,
                    leads.c.last_activity_at,
                    lead_scores.c.total.label("score"),
                    lead_scores.c.grade,
                )
                .select_from(joined)
                .where(*conditions)
                .order_by(*_order(wanted, lead_id))
                .offset(wanted.offset)
                .limit(wanted.limit)
            )
            .mappings()
            .all()
        )
        ids = [int(r["id"]) for r in rows]
        tags = tags_of(connection, ids)
        owners = latest_reps(connection, ids)
    items = []
    for row in rows:
        owner = owners.get(int(row["id"]))
        items.append(
            LeadHit(
                **row,
                tags=tags[int(row["id"])],
                owner_rep_name=owner[0] if owner else None,
                owner_rep_email=owner[1] if owner else None,
            )
        )
    return LeadResults(
        items=items, total=min(int(total), COUNT_LIMIT), query=wanted, exact=total <= COUNT_LIMIT
    )


BROAD = 5_000
"""Matches from which a page by score reads the score index rather than the matches."""


def _total_index_in(connection: Connection) -> bool:
    """Whether SQLite has ``ix_lead_scores_total`` now: a large re-score writes its
    scores without it and builds it again at the end
    (:func:`baton.services.scoring._total_index_held_back`), and ``INDEXED BY`` an index
    that is not there fails the statement; meanwhile the general query sorts the
    matches. Read in the search's own transaction, so the statement sees the same
    schema."""
    found = connection.exec_driver_sql(
        "SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = 'ix_lead_scores_total'"
    ).first()
    return found is not None


def _best_scored(
    connection: Connection,
    query: LeadQuery,
    matches: int,
    columns: Sequence[Any],
    actor: Principal,
) -> list[RowMapping] | None:
    """A search by score with many matches: the page read in score order from
    ``ix_lead_scores_total``, keeping the leads among the matches (``id IN (matches)``),
    which stops after the page instead of sorting every match (a one-letter search of a
    million leads on SQLite: 30 ms instead of 300). SQLite's planner does not pick that
    index by itself, hence ``INDEXED BY``; PostgreSQL's does once the query asks for
    scored leads only (no ``NULLS LAST``). None when it does not apply, or when the page reaches
    past the scored matches (unscored leads come last, read by the general query)."""
    if (
        connection.dialect.name not in ("sqlite", "postgresql")
        or query.sort is not LeadSort.SCORE
        or matches < BROAD
        or not query.tokens
    ):
        return None
    conditions, _ = conditions_of(connection, query, actor=actor)
    descending = query.order == "desc"
    statement = (
        select(lead_scores.c.lead_id)
        .select_from(lead_scores.join(leads, leads.c.id == lead_scores.c.lead_id))
        .where(*conditions)
        .order_by(
            lead_scores.c.total.desc() if descending else lead_scores.c.total.asc(),
            lead_scores.c.lead_id.desc() if descending else lead_scores.c.lead_id.asc(),
        )
        .offset(query.offset)
        .limit(query.limit)
    )
    if connection.dialect.name == "postgresql":  # the planner picks the index itself
        ids = [int(i) for i in connection.execute(statement).scalars()]
    else:
        compiled = statement.compile(
            dialect=connection.dialect, compile_kwargs={"render_postcompile": True}
        )
        plain = "FROM lead_scores JOIN leads"
        sql = str(compiled)
        if plain not in sql or compiled.positiontup is None or not _total_index_in(connection):
            return None
        sql = sql.replace(plain, "FROM lead_scores INDEXED BY ix_lead_scores_total JOIN leads", 1)
        values = tuple(compiled.params[name] for name in compiled.positiontup)
        ids = [int(i) for (i,) in connection.exec_driver_sql(sql, values)]
    if len(ids) < query.limit:
        return None
    found = {
        int(row["id"]): row
        for row in connection.execute(
            select(*columns)
            .select_from(leads.outerjoin(lead_scores, lead_scores.c.lead_id == leads.c.id))
            .where(leads.c.id.in_(ids))
        ).mappings()
    }
    return [found[i] for i in ids]


def latest_reps(connection: Connection, lead_ids: Sequence[int]) -> dict[int, tuple[str, str]]:
    """Lead id → (name, email) of the rep of its latest handoff, when it has one."""
    found: dict[int, tuple[str, str]] = {}
    for part in chunks(list(lead_ids)):
        latest = (
            select(handoffs.c.lead_id, func.max(handoffs.c.id).label("handoff_id"))
            .where(handoffs.c.lead_id.in_(part))
            .group_by(handoffs.c.lead_id)
            .subquery()
        )
        rows = connection.execute(
            select(latest.c.lead_id, reps.c.name, reps.c.email).select_from(
                latest.join(handoffs, handoffs.c.id == latest.c.handoff_id).join(
                    reps, reps.c.id == handoffs.c.rep_id
                )
            )
        )
        for lead_id, name, email in rows:
            found[int(lead_id)] = (name, email)
    return found


def matching_lead_ids(
    ctx: Context, query: LeadQuery | Mapping[str, Any], *, actor: Principal
) -> Iterator[int]:
    """Every id of a lead ``actor`` may read that matches ``query`` (its sort and page
    ignored), in id order, read :data:`ID_PAGE` at a time in short transactions."""
    wanted = as_query(query)
    joined = leads.outerjoin(lead_scores, lead_scores.c.lead_id == leads.c.id)
    last = 0
    while True:
        with ctx.read() as connection:
            conditions, _ = conditions_of(connection, wanted, actor=actor)
            ids = [
                int(i)
                for i in connection.execute(
                    select(leads.c.id)
                    .select_from(joined)
                    .where(*conditions, leads.c.id > last)
                    .order_by(leads.c.id)
                    .limit(ID_PAGE)
                ).scalars()
            ]
        yield from ids
        if len(ids) < ID_PAGE:
            return
        last = ids[-1]
