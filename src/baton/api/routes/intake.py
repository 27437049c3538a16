"""/api/v1/intake: inbound endpoints (``/hooks/{name}``), the intake log, retries.

Admins and marketing (decided by :mod:`baton.services.intake`): marketing ops wire the
forms, and the log's raw bodies hold personal data. Every route needs credentials."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query, status
from pydantic import BaseModel, ConfigDict, Field

from baton.api.deps import Actor, Authenticated, Ctx
from baton.domain.activities import MAX_ID
from baton.domain.intake_endpoints import NAME_PATTERN, EndpointCreate, EndpointUpdate
from baton.services import intake as intake_service

router = APIRouter(prefix="/api/v1/intake", tags=["intake"], dependencies=[Authenticated])

EndpointName = Annotated[
    str,
    Path(
        min_length=1,
        max_length=64,
        pattern=NAME_PATTERN,
        description="The endpoint's name (its hook is /hooks/{name}).",
    ),
]
RequestId = Annotated[int, Path(ge=1, le=MAX_ID, description="A logged request's id.")]
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No such endpoint"}}


class IntakeEndpointPublic(BaseModel):
    """An inbound endpoint; its secret and fetch token are never shown (only whether
    they are set)."""

    id: int
    name: str
    kind: str
    path: str = Field(description="Where the platform posts: /hooks/{name}.")
    source: str
    campaign: str | None
    event_type: str | None
    mapping: dict[str, Any]
    secret_set: bool
    fetch_token_set: bool
    fetch_base_url: str | None
    return_urls: list[str]
    honeypot_field: str | None
    rate_per_minute: int
    max_body_bytes: int
    active: bool
    throttled_count: int = Field(description="Requests answered 429 (counted, not stored).")
    requests: int
    failed_requests: int
    last_request_at: datetime | None
    created_at: datetime
    created_by: str
    updated_at: datetime


class IntakeEndpointCreatedPublic(IntakeEndpointPublic):
    secret: str | None = Field(
        description="The secret Baton generated (shown only now; paste it into the "
        "platform), or null when you gave one or the kind needs none."
    )


class IntakeRequestPublic(BaseModel):
    id: int
    endpoint: str
    kind: str
    received_at: datetime
    content_type: str
    size: int
    remote_address: str | None
    status: str = Field(description="received, processed, partial, failed or refused.")
    error: str | None
    items: int
    failed_items: int
    processed_at: datetime | None


class IntakeItemPublic(BaseModel):
    id: int
    position: int
    upstream_id: str | None
    status: str = Field(
        description="pending, processed, failed, awaiting_fetch, duplicate or refused."
    )
    lead_id: int | None
    activity_id: int | None
    duplicate_of: int | None
    attempts: int
    errors: list[dict[str, str]]
    item: dict[str, Any] | None
    next_attempt_at: datetime | None
    processed_at: datetime | None


class IntakeRequestDetailPublic(IntakeRequestPublic):
    method: str | None
    url: str | None
    headers: dict[str, str]
    query: dict[str, str]
    body_text: str | None = Field(description="The raw body when it is UTF-8 text.")
    body_base64: str | None = Field(description="The raw body in base64 otherwise.")
    request_items: list[IntakeItemPublic]


class IntakeRetry(BaseModel):
    """Which logged requests to read again with their endpoint's current mapping."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"endpoint": "contact-sales"}, {"request_ids": [12, 13]}]},
    )

    request_ids: list[Annotated[int, Field(ge=1, le=MAX_ID)]] | None = Field(
        None, max_length=10_000
    )
    endpoint: str | None = Field(None, max_length=64)
    all_failed: bool = False


class IntakeRetryPublic(BaseModel):
    requests: int
    processed: int
    failed: int
    awaiting_fetch: int
    skipped: list[str]
    request_ids: list[int]


def _public(view: intake_service.EndpointView) -> IntakeEndpointPublic:
    return IntakeEndpointPublic.model_validate(asdict(view))


@router.post(
    "/endpoints",
    operation_id="create_intake_endpoint",
    response_model=IntakeEndpointCreatedPublic,
    status_code=status.HTTP_201_CREATED,
    responses={
        409: {"description": "An endpoint with this name exists"},
        422: {"description": "Unknown kind, bad mapping or URL (problem+json)"},
    },
)
def create_intake_endpoint(
    ctx: Ctx,
    actor: Actor,
    body: Annotated[
        EndpointCreate,
        Body(
            openapi_examples={
                "contact-sales form (generic JSON)": {
                    "value": EndpointCreate.model_json_schema()["examples"][0]
                },
                "Salesforce Web-to-Lead form, unchanged": {
                    "value": {
                        "name": "w2l",
                        "kind": "web_to_lead",
                        "source": "website",
                        "event_type": "contact_sales",
                        "return_urls": ["https://www.example.com/thanks"],
                        "honeypot_field": "website_url",
                    }
                },
            }
        ),
    ],
) -> IntakeEndpointCreatedPublic:
    """Add an endpoint: a platform then posts to ``/hooks/{name}``. A generic,
    Typeform or Google Ads endpoint without a secret gets a generated one, shown only
    in this answer."""
    view, secret = intake_service.add_endpoint(ctx, body, actor=actor)
    return IntakeEndpointCreatedPublic(**asdict(view), secret=secret)


@router.get(
    "/endpoints", operation_id="list_intake_endpoints", response_model=list[IntakeEndpointPublic]
)
def list_intake_endpoints(ctx: Ctx, actor: Actor) -> list[IntakeEndpointPublic]:
    """Every endpoint, with its requests, failed requests and throttled count."""
    return [_public(v) for v in intake_service.list_endpoints(ctx, actor=actor)]


@router.get(
    "/endpoints/{name}",
    operation_id="get_intake_endpoint",
    response_model=IntakeEndpointPublic,
    responses=NOT_FOUND,
)
def get_intake_endpoint(ctx: Ctx, actor: Actor, name: EndpointName) -> IntakeEndpointPublic:
    """One endpoint."""
    return _public(intake_service.show_endpoint(ctx, name, actor=actor))


@router.patch(
    "/endpoints/{name}",
    operation_id="update_intake_endpoint",
    response_model=IntakeEndpointPublic,
    responses={**NOT_FOUND, 422: {"description": "Bad mapping or URL (problem+json)"}},
)
def update_intake_endpoint(
    ctx: Ctx,
    actor: Actor,
    name: EndpointName,
    body: Annotated[
        EndpointUpdate,
        Body(
            openapi_examples={
                "fix the mapping": {"value": EndpointUpdate.model_json_schema()["examples"][0]},
                "a tighter rate": {"value": {"rate_per_minute": 30}},
            }
        ),
    ],
) -> IntakeEndpointPublic:
    """Change an endpoint; after a mapping fix, retry its failed requests."""
    return _public(
        intake_service.update_endpoint(ctx, name, body.model_dump(exclude_unset=True), actor=actor)
    )


@router.delete(
    "/endpoints/{name}",
    operation_id="deactivate_intake_endpoint",
    response_model=IntakeEndpointPublic,
    responses=NOT_FOUND,
)
def deactivate_intake_endpoint(ctx: Ctx, actor: Actor, name: EndpointName) -> IntakeEndpointPublic:
    """Deactivate an endpoint: its hook answers 404; its log is kept."""
    return _public(intake_service.deactivate_endpoint(ctx, name, actor=actor))


@router.get(
    "/requests", operation_id="list_intake_requests", response_model=list[IntakeRequestPublic]
)
def list_intake_requests(
    ctx: Ctx,
    actor: Actor,
    status_: Annotated[
        str | None,
        Query(
            alias="status",
            pattern="^(received|processed|partial|failed|refused)$",
            description="received, processed, partial, failed or refused",
        ),
    ] = None,
    endpoint: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    before: Annotated[int | None, Query(ge=1, le=MAX_ID, description="A request id")] = None,
) -> list[IntakeRequestPublic]:
    """The intake log, newest first: every request stored raw, with what became of it."""
    return [
        IntakeRequestPublic.model_validate(asdict(s))
        for s in intake_service.intake_log(
            ctx, actor=actor, status=status_, endpoint=endpoint, limit=limit, before=before
        )
    ]


@router.get(
    "/requests/{request_id}",
    operation_id="get_intake_request",
    response_model=IntakeRequestDetailPublic,
    responses={404: {"description": "No such request"}},
)
def get_intake_request(ctx: Ctx, actor: Actor, request_id: RequestId) -> IntakeRequestDetailPublic:
    """One logged request: headers, the raw body, and each submission with its errors."""
    detail = intake_service.show_request(ctx, request_id, actor=actor)
    return IntakeRequestDetailPublic(
        **asdict(detail.summary),
        method=detail.method,
        url=detail.url,
        headers=detail.headers,
        query=detail.query,
        body_text=detail.body_text,
        body_base64=detail.body_base64,
        request_items=[IntakeItemPublic.model_validate(asdict(i)) for i in detail.items],
    )


@router.post(
    "/retry",
    operation_id="retry_intake",
    response_model=IntakeRetryPublic,
    responses={
        404: {"description": "No such request"},
        422: {"description": "Nothing chosen (problem+json)"},
    },
)
def retry_intake(ctx: Ctx, actor: Actor, body: IntakeRetry) -> IntakeRetryPublic:
    """Read failed requests again with their endpoint's current mapping and process
    the submissions that failed; processed ones are never done twice."""
    report = intake_service.retry(
        ctx,
        actor=actor,
        request_ids=body.request_ids,
        endpoint=body.endpoint,
        all_failed=body.all_failed,
    )
    return IntakeRetryPublic.model_validate(asdict(report))
