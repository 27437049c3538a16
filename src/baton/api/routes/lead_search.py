"""/api/v1/search/leads and /api/v1/saved-filters: the lead list's search (by prefix
of the words of email, name and company, through the index), and named, reusable lead
queries. What each caller reaches is decided by the use cases: a rep finds only the
leads of their handoffs, sees their own saved filters and the shared ones."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Path, Query, status
from pydantic import BaseModel, Field

from baton.api.deps import Actor, Authenticated, Ctx
from baton.domain.activities import MAX_ID
from baton.domain.lifecycle import Stage
from baton.domain.search import MAX_OFFSET, MAX_PAGE, LeadSort
from baton.services import saved_filters as filter_service
from baton.services.lead_search import LeadResults, search_leads

search_router = APIRouter(prefix="/api/v1/search", tags=["leads"], dependencies=[Authenticated])
filters_router = APIRouter(
    prefix="/api/v1/saved-filters", tags=["saved filters"], dependencies=[Authenticated]
)

FilterId = Annotated[int, Path(ge=1, le=MAX_ID, description="A saved filter's id.")]
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such saved filter within your reach (problem+json)"}
}
INVALID: dict[int | str, dict[str, Any]] = {
    422: {"description": "A bad field of the query, with the allowed values (problem+json)"}
}

Q = Annotated[
    str | None,
    Query(
        max_length=200,
        description="Words that start words of the email, first or last name or company "
        "(each must match: `ann north` finds ann.lee@northwind.com)",
        examples=["ann north"],
    ),
]
Stages = Annotated[list[Stage] | None, Query(description="Only these stages (repeat)")]
Grades = Annotated[
    list[Literal["A", "B", "C", "D"]] | None, Query(description="Only these grades (repeat)")
]
Source = Annotated[str | None, Query(max_length=200)]
Tag = Annotated[str | None, Query(max_length=100)]
Owner = Annotated[
    str | None,
    Query(max_length=254, description="Only leads whose latest handoff is this rep's (email)"),
]
Sort = Annotated[LeadSort, Query(description="Order by score, creation, last activity or name")]
Order = Annotated[Literal["asc", "desc"], Query()]
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Rows to skip")]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE)]


class LeadHitPublic(BaseModel):
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
    tags: list[str]
    owner_rep_name: str | None
    owner_rep_email: str | None


class LeadSearchPublic(BaseModel):
    """A page of matching leads with the total and the next page's offset."""

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "items": [
                        {
                            "id": 40,
                            "email": "ann.lee@northwind.example.com",
                            "first_name": "Ann",
                            "last_name": "Lee",
                            "company": "Northwind",
                            "stage": "mql",
                            "source": "webinar",
                            "created_at": "2026-03-02T09:00:00Z",
                            "last_activity_at": "2026-03-03T14:10:00Z",
                            "score": 72.5,
                            "grade": "A",
                            "tags": ["hot"],
                            "owner_rep_name": "Ana Ruiz",
                            "owner_rep_email": "ana@lumen.example",
                        }
                    ],
                    "total": 1,
                    "total_exact": True,
                    "offset": 0,
                    "limit": 50,
                    "next_offset": None,
                }
            ]
        }
    }

    items: list[LeadHitPublic]
    total: int = Field(
        description="Leads within your reach matching the query, counted up to 10,000"
    )
    total_exact: bool = Field(description="False when more match than were counted")
    offset: int
    limit: int
    next_offset: int | None = Field(description="Offset of the next page; null on the last")


def _page(results: LeadResults) -> LeadSearchPublic:
    return LeadSearchPublic(
        items=[LeadHitPublic.model_validate(h, from_attributes=True) for h in results.items],
        total=results.total,
        total_exact=results.exact,
        offset=results.query.offset,
        limit=results.query.limit,
        next_offset=results.next_offset,
    )


@search_router.get(
    "/leads", operation_id="search_leads", response_model=LeadSearchPublic, responses=INVALID
)
def search(
    ctx: Ctx,
    actor: Actor,
    q: Q = None,
    stage: Stages = None,
    grade: Grades = None,
    source: Source = None,
    tag: Tag = None,
    owner: Owner = None,
    sort: Sort = LeadSort.CREATED,
    order: Order = "desc",
    offset: Offset = 0,
    limit: Limit = 50,
) -> LeadSearchPublic:
    """Leads you may read (merged ones left out) matching every given condition, in the
    order asked (ties by id), a page at a time with the total. Score and grade are the
    lead's under the active contract (none yet: listed last by score)."""
    results = search_leads(
        ctx,
        {
            "q": q,
            "stage": stage,
            "grade": grade,
            "source": source,
            "tag": tag,
            "owner": owner,
            "sort": sort,
            "order": order,
            "offset": offset,
            "limit": limit,
        },
        actor=actor,
    )
    return _page(results)


class LeadQueryBody(BaseModel):
    """The conditions and order of a saved filter (the search's parameters)."""

    model_config = {"extra": "forbid"}

    q: str = Field("", max_length=200)
    stage: list[Stage] = []
    grade: list[Literal["A", "B", "C", "D"]] = []
    source: str | None = Field(None, max_length=200)
    tag: str | None = Field(None, max_length=100)
    owner: str | None = Field(None, max_length=254)
    sort: LeadSort = LeadSort.CREATED
    order: Literal["asc", "desc"] = "desc"
    limit: int = Field(50, ge=1, le=MAX_PAGE)


class SavedFilterCreateBody(BaseModel):
    model_config = {
        "extra": "forbid",
        "json_schema_extra": {
            "examples": [
                {
                    "name": "Hot Northwind leads",
                    "query": {"q": "northwind", "grade": ["A", "B"], "sort": "score"},
                    "shared": True,
                }
            ]
        },
    }

    name: str = Field(min_length=1, max_length=100)
    query: LeadQueryBody
    shared: bool = Field(False, description="Readable (and runnable) by every user")


class SavedFilterPublic(BaseModel):
    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "id": 3,
                    "name": "Hot Northwind leads",
                    "owner_user_id": 7,
                    "owner_name": "Maria",
                    "query": {"q": "northwind", "grade": ["A", "B"], "sort": "score"},
                    "shared": True,
                    "created_at": "2026-03-02T09:00:00Z",
                    "updated_at": "2026-03-02T09:00:00Z",
                }
            ]
        }
    }

    id: int
    name: str
    owner_user_id: int
    owner_name: str
    query: dict[str, Any] = Field(description="The query's fields that differ from defaults")
    shared: bool
    created_at: datetime
    updated_at: datetime


def _public(found: filter_service.SavedFilter) -> SavedFilterPublic:
    return SavedFilterPublic(
        id=found.id,
        name=found.name,
        owner_user_id=found.owner_user_id,
        owner_name=found.owner_name,
        query=found.query.criteria(),
        shared=found.shared,
        created_at=found.created_at,
        updated_at=found.updated_at,
    )


@filters_router.get("", operation_id="list_saved_filters", response_model=list[SavedFilterPublic])
def list_filters(ctx: Ctx, actor: Actor) -> list[SavedFilterPublic]:
    """Your saved filters and the shared ones, by name."""
    return [_public(f) for f in filter_service.list_saved_filters(ctx, actor=actor)]


@filters_router.post(
    "",
    operation_id="create_saved_filter",
    response_model=SavedFilterPublic,
    status_code=status.HTTP_201_CREATED,
    responses={409: {"description": "You already have a filter with this name"}, **INVALID},
)
def create_filter(
    ctx: Ctx, actor: Actor, body: Annotated[SavedFilterCreateBody, Body()]
) -> SavedFilterPublic:
    """Save a lead query under a name (unique among yours), private unless shared.
    Only users (or their tokens) own filters."""
    query = body.query.model_dump(mode="json", exclude_defaults=True)
    found = filter_service.create_saved_filter(
        ctx, {"name": body.name, "query": query, "shared": body.shared}, actor=actor
    )
    return _public(found)


@filters_router.get(
    "/{filter_id}",
    operation_id="get_saved_filter",
    response_model=SavedFilterPublic,
    responses=NOT_FOUND,
)
def get_filter(ctx: Ctx, actor: Actor, filter_id: FilterId) -> SavedFilterPublic:
    """One of your saved filters, or a shared one."""
    return _public(filter_service.get_saved_filter(ctx, filter_id, actor=actor))


@filters_router.delete(
    "/{filter_id}",
    operation_id="delete_saved_filter",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={**NOT_FOUND, 403: {"description": "A shared filter of someone else's"}},
)
def delete_filter(ctx: Ctx, actor: Actor, filter_id: FilterId) -> None:
    """Delete one of your saved filters (an admin: anyone's)."""
    filter_service.delete_saved_filter(ctx, filter_id, actor=actor)


@filters_router.get(
    "/{filter_id}/leads",
    operation_id="run_saved_filter",
    response_model=LeadSearchPublic,
    responses=NOT_FOUND,
)
def run_filter(
    ctx: Ctx, actor: Actor, filter_id: FilterId, offset: Offset = 0, limit: Limit | None = None
) -> LeadSearchPublic:
    """A page of the leads the filter matches, within your reach (a rep running a
    shared filter sees only the leads of their handoffs in it)."""
    return _page(
        filter_service.run_saved_filter(ctx, filter_id, actor=actor, offset=offset, limit=limit)
    )
