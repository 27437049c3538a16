"""Saved filters: named lead queries, private to the user who saved them or shared with
everyone, and the ids of the leads one matches (for bulk work such as enrolling them
in a nurture).

Whoever may read leads may save filters. A user sees their own filters and the shared
ones; a filter they cannot see answers 404 like one that does not exist. Only the
owner (or an admin) deletes one. Running a filter always applies the *runner's* access:
a rep running a filter shared by marketing sees only their own leads in it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, or_, select, true
from sqlalchemy.engine import Connection, RowMapping
from sqlalchemy.exc import IntegrityError

from baton.domain.access import Action, Principal, Role
from baton.domain.errors import Conflict, Forbidden, NotFound
from baton.domain.search import LeadQuery, SavedFilterCreate, read_lead_query
from baton.services.access import allowed
from baton.services.context import Context
from baton.services.lead_search import LeadResults, matching_lead_ids, search_leads
from baton.services.queries import inserted_id
from baton.store.tables import saved_filters, users


@dataclass(frozen=True)
class SavedFilter:
    id: int
    name: str
    owner_user_id: int
    owner_name: str
    query: LeadQuery
    shared: bool
    created_at: datetime
    updated_at: datetime


def _visible(actor: Principal) -> Any:
    if actor.trusted:
        return true()
    if actor.user_id is None:
        return saved_filters.c.shared.is_(True)
    return or_(saved_filters.c.shared.is_(True), saved_filters.c.owner_user_id == actor.user_id)


def _select() -> Any:
    return select(saved_filters, users.c.display_name.label("owner_name")).select_from(
        saved_filters.join(users, users.c.id == saved_filters.c.owner_user_id)
    )


def _to_filter(row: RowMapping) -> SavedFilter:
    return SavedFilter(
        id=int(row["id"]),
        name=row["name"],
        owner_user_id=int(row["owner_user_id"]),
        owner_name=row["owner_name"],
        query=LeadQuery.model_validate(row["query"]),
        shared=bool(row["shared"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _get(connection: Connection, actor: Principal, filter_id: int) -> SavedFilter:
    row = (
        connection.execute(_select().where(saved_filters.c.id == filter_id, _visible(actor)))
        .mappings()
        .first()
    )
    if row is None:
        raise NotFound(f"saved filter {filter_id} does not exist")
    return _to_filter(row)


def create_saved_filter(
    ctx: Context, data: SavedFilterCreate | Mapping[str, Any], *, actor: Principal
) -> SavedFilter:
    """Save a named lead query for ``actor`` (a user); a name they already use is a
    :class:`Conflict`. The query is checked like a search's."""
    allowed(actor, Action.READ_LEADS)
    if actor.user_id is None:
        raise Forbidden("saved filters belong to a user: sign in (or use a user's token)")
    if not isinstance(data, SavedFilterCreate):
        raw = dict(data)
        query = read_lead_query(raw.pop("query", None) or {})
        data = SavedFilterCreate.model_validate({**raw, "query": query})
    now = ctx.clock.now()
    try:
        with ctx.write() as connection:
            exists = connection.execute(
                select(saved_filters.c.id).where(
                    saved_filters.c.owner_user_id == actor.user_id,
                    saved_filters.c.name == data.name,
                )
            ).first()
            if exists is not None:
                raise Conflict(f"you already have a saved filter named {data.name!r}")
            new_id = inserted_id(
                connection.execute(
                    insert(saved_filters).values(
                        name=data.name,
                        owner_user_id=actor.user_id,
                        query=data.query.criteria(),
                        shared=data.shared,
                        created_at=now,
                        updated_at=now,
                    )
                )
            )
            return _get(connection, actor, new_id)
    except IntegrityError:  # a concurrent save of the same name won
        raise Conflict(f"you already have a saved filter named {data.name!r}") from None


def list_saved_filters(ctx: Context, *, actor: Principal) -> list[SavedFilter]:
    """The filters ``actor`` may use: their own and the shared ones, by name."""
    allowed(actor, Action.READ_LEADS)
    with ctx.read() as connection:
        rows = connection.execute(
            _select().where(_visible(actor)).order_by(saved_filters.c.name, saved_filters.c.id)
        ).mappings()
        return [_to_filter(r) for r in rows]


def get_saved_filter(ctx: Context, filter_id: int, *, actor: Principal) -> SavedFilter:
    allowed(actor, Action.READ_LEADS)
    with ctx.read() as connection:
        return _get(connection, actor, filter_id)


def delete_saved_filter(ctx: Context, filter_id: int, *, actor: Principal) -> None:
    """Delete a filter: its owner or an admin; someone else's shared filter is
    :class:`Forbidden`, one they cannot see :class:`NotFound`."""
    allowed(actor, Action.READ_LEADS)
    with ctx.write() as connection:
        found = _get(connection, actor, filter_id)
        if not (actor.trusted or actor.role is Role.ADMIN or found.owner_user_id == actor.user_id):
            raise Forbidden("only the owner of a saved filter (or an admin) may delete it")
        connection.execute(delete(saved_filters).where(saved_filters.c.id == filter_id))


def run_saved_filter(
    ctx: Context, filter_id: int, *, actor: Principal, offset: int = 0, limit: int | None = None
) -> LeadResults:
    """A page of the leads the filter matches, within ``actor``'s reach."""
    found = get_saved_filter(ctx, filter_id, actor=actor)
    query = found.query.page(offset)
    if limit is not None:
        query = read_lead_query({**query.model_dump(mode="json"), "limit": limit})
    return search_leads(ctx, query, actor=actor)


def leads_of_saved_filter(ctx: Context, filter_id: int, *, actor: Principal) -> Iterator[int]:
    """Every id of a lead the saved filter matches within ``actor``'s reach, in id
    order (for bulk work: nurture enrollment)."""
    found = get_saved_filter(ctx, filter_id, actor=actor)
    yield from matching_lead_ids(ctx, found.query, actor=actor)
