"""/api/v1/users, /api/v1/tokens, /api/v1/intake-keys: who may use Baton and how.

Users and intake keys are an admin's; every person manages their own API tokens (an
admin also those of others, e.g. an integration's service user). Secrets (one-time
passwords, tokens, intake keys) appear in the answer that makes them and never again.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query, status
from pydantic import BaseModel, Field

from baton.api.deps import Actor, Authenticated, Ctx
from baton.domain.activities import MAX_ID
from baton.domain.users import (
    IntakeKeyCreate,
    IntakeKeyUpdate,
    TokenCreate,
    UserCreate,
    UserUpdate,
)
from baton.services import users as user_service

UserId = Annotated[int, Path(ge=1, le=MAX_ID, description="A user's id.")]
TokenId = Annotated[int, Path(ge=1, le=MAX_ID, description="A token's id.")]
KeyId = Annotated[int, Path(ge=1, le=MAX_ID, description="An intake key's id.")]
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No such object"}}


class UserPublicModel(BaseModel):
    """A user; never a password or its hash."""

    id: int
    email: str
    display_name: str
    role: str
    active: bool
    rep_email: str | None
    teams: list[str]
    timezone: str
    one_time_password: bool = Field(
        description="True until the user signs in and sets their own password."
    )
    demo: bool
    created_at: datetime
    one_time_password_expires_at: datetime | None = Field(
        None,
        description="When the one-time password stops working (an admin then resets it); "
        "null once the user has their own.",
    )


class UserCreatedPublic(BaseModel):
    user: UserPublicModel
    one_time_password: str = Field(description="Shown only now: hand it to the person.")


class PasswordResetPublic(BaseModel):
    one_time_password: str = Field(description="Shown only now: hand it to the person.")


class TokenPublicModel(BaseModel):
    id: int
    name: str
    prefix: str = Field(description="The token's first characters, to tell tokens apart.")
    user_email: str
    scopes: list[str]
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None
    created_at: datetime
    created_by: str


class TokenCreatedPublic(TokenPublicModel):
    token: str = Field(description="Shown only now: send as 'Authorization: Bearer <token>'.")


class IntakeKeyPublicModel(BaseModel):
    id: int
    name: str
    prefix: str
    source: str
    origins: list[str]
    rate_per_minute: int
    revoked_at: datetime | None
    created_at: datetime
    created_by: str


class IntakeKeyCreatedPublic(IntakeKeyPublicModel):
    key: str = Field(
        description="Shown only now: send as 'X-Baton-Intake-Key' (or a bearer token)."
    )


def user_model(user: user_service.UserPublic) -> UserPublicModel:
    return UserPublicModel.model_validate(asdict(user))


users_router = APIRouter(prefix="/api/v1/users", tags=["access"], dependencies=[Authenticated])


@users_router.get("", operation_id="list_users", response_model=list[UserPublicModel])
def list_users(ctx: Ctx, actor: Actor) -> list[UserPublicModel]:
    """Every user, with role, links and whether they still have a one-time password."""
    return [user_model(u) for u in user_service.list_users(ctx, actor=actor)]


@users_router.post(
    "",
    operation_id="create_user",
    response_model=UserCreatedPublic,
    status_code=status.HTTP_201_CREATED,
    responses={409: {"description": "The email (or the rep) has a user already"}},
)
def create_user(ctx: Ctx, actor: Actor, body: UserCreate) -> UserCreatedPublic:
    """Add a person; the answer carries their one-time password, shown this once."""
    user, secret = user_service.add_user(ctx, body, actor=actor)
    assert secret is not None
    return UserCreatedPublic(user=user_model(user), one_time_password=secret)


@users_router.get(
    "/{user_id}", operation_id="get_user", response_model=UserPublicModel, responses=NOT_FOUND
)
def get_user(ctx: Ctx, actor: Actor, user_id: UserId) -> UserPublicModel:
    return user_model(user_service.get_user(ctx, user_id, actor=actor))


@users_router.patch(
    "/{user_id}", operation_id="update_user", response_model=UserPublicModel, responses=NOT_FOUND
)
def update_user(ctx: Ctx, actor: Actor, user_id: UserId, body: UserUpdate) -> UserPublicModel:
    """Change a user; ``"active": false`` disables them (sessions end at once, tokens
    within seconds)."""
    return user_model(user_service.update_user(ctx, user_id, body, actor=actor))


@users_router.post(
    "/{user_id}/reset-password",
    operation_id="reset_password",
    response_model=PasswordResetPublic,
    responses={
        **NOT_FOUND,
        409: {"description": "The last active admin with a password of their own keeps it"},
    },
)
def reset_password(ctx: Ctx, actor: Actor, user_id: UserId) -> PasswordResetPublic:
    """Give the user a new one-time password (shown this once); their sessions end.
    The last active admin with a password of their own keeps it (409): production
    would refuse its next start; `baton user set-password` is the shell's way."""
    return PasswordResetPublic(
        one_time_password=user_service.reset_password(ctx, user_id, actor=actor)
    )


tokens_router = APIRouter(prefix="/api/v1/tokens", tags=["access"], dependencies=[Authenticated])


def _token(token: user_service.TokenPublic) -> TokenPublicModel:
    return TokenPublicModel.model_validate(asdict(token))


@tokens_router.get("", operation_id="list_tokens", response_model=list[TokenPublicModel])
def list_tokens(
    ctx: Ctx,
    actor: Actor,
    all_users: Annotated[bool, Query(description="Everyone's tokens (admins only)")] = False,
) -> list[TokenPublicModel]:
    """Your API tokens (never the secrets), with when each was last used."""
    return [_token(t) for t in user_service.list_tokens(ctx, actor=actor, all_users=all_users)]


@tokens_router.post(
    "",
    operation_id="create_token",
    response_model=TokenCreatedPublic,
    status_code=status.HTTP_201_CREATED,
    responses={404: {"description": "No user has user_email"}},
)
def create_token(ctx: Ctx, actor: Actor, body: TokenCreate) -> TokenCreatedPublic:
    """Make an API token with some scopes; it never grants more than its owner's role.
    The token is in this answer only."""
    token, secret = user_service.create_token(ctx, body, actor=actor)
    return TokenCreatedPublic(**asdict(token), token=secret)


@tokens_router.delete(
    "/{token_id}", operation_id="revoke_token", response_model=TokenPublicModel, responses=NOT_FOUND
)
def revoke_token(ctx: Ctx, actor: Actor, token_id: TokenId) -> TokenPublicModel:
    """Revoke a token: refused everywhere within seconds."""
    return _token(user_service.revoke_token(ctx, token_id, actor=actor))


keys_router = APIRouter(prefix="/api/v1/intake-keys", tags=["access"], dependencies=[Authenticated])


def _key(key: user_service.IntakeKeyPublic) -> IntakeKeyPublicModel:
    return IntakeKeyPublicModel.model_validate(asdict(key))


@keys_router.get("", operation_id="list_intake_keys", response_model=list[IntakeKeyPublicModel])
def list_intake_keys(ctx: Ctx, actor: Actor) -> list[IntakeKeyPublicModel]:
    return [_key(k) for k in user_service.list_intake_keys(ctx, actor=actor)]


@keys_router.post(
    "",
    operation_id="create_intake_key",
    response_model=IntakeKeyCreatedPublic,
    status_code=status.HTTP_201_CREATED,
    responses={409: {"description": "A key of that name exists"}},
)
def create_intake_key(ctx: Ctx, actor: Actor, body: IntakeKeyCreate) -> IntakeKeyCreatedPublic:
    """Make a public key for a website or form tool: it can only capture leads and
    activities, from its origins, at its rate. The key is in this answer only."""
    key, secret = user_service.add_intake_key(ctx, body, actor=actor)
    return IntakeKeyCreatedPublic(**asdict(key), key=secret)


@keys_router.delete(
    "/{key_id}",
    operation_id="revoke_intake_key",
    response_model=IntakeKeyPublicModel,
    responses=NOT_FOUND,
)
def revoke_intake_key(ctx: Ctx, actor: Actor, key_id: KeyId) -> IntakeKeyPublicModel:
    """Revoke an intake key: refused everywhere within seconds."""
    return _key(user_service.revoke_intake_key(ctx, key_id, actor=actor))


@keys_router.patch(
    "/{key_id}",
    operation_id="update_intake_key",
    response_model=IntakeKeyPublicModel,
    responses={
        **NOT_FOUND,
        409: {"description": "The key is revoked"},
        422: {
            "description": "A rate or origin that is not valid, or nothing to change (an "
            "empty body, or only nulls) (problem+json)"
        },
    },
)
def update_intake_key(
    ctx: Ctx,
    actor: Actor,
    key_id: KeyId,
    body: Annotated[
        IntakeKeyUpdate,
        Body(
            openapi_examples={
                "a higher rate": {"value": {"rate_per_minute": 120}},
                "another origin": {
                    "value": {"origins": ["https://www.example.com", "https://shop.example.com"]}
                },
            }
        ),
    ],
) -> IntakeKeyPublicModel:
    """Change a key's rate (requests a minute) or browser origins, one of them at least
    (a body that changes nothing is a 422); the secret stays, so the website needs no
    change. Applies from the next request (in other server
    processes within seconds); a new rate starts a fresh one-minute window."""
    return _key(user_service.update_intake_key(ctx, key_id, body, actor=actor))
