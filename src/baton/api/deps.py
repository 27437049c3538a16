"""Request dependencies: the service context and the acting user."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Path, Request

from baton.domain.activities import MAX_ID
from baton.services.context import Context


def get_context(request: Request) -> Context:
    context: Context = request.app.state.context
    return context


def get_actor(
    x_baton_actor: Annotated[
        str | None,
        Header(
            description="Who is acting (a user or system name). Until authentication "
            "exists this header names the actor; it is stored on every change.",
            max_length=200,
        ),
    ] = None,
) -> str:
    return (x_baton_actor or "").strip() or "api"


Ctx = Annotated[Context, Depends(get_context)]
LeadId = Annotated[int, Path(ge=1, le=MAX_ID, description="A lead's id.")]
CandidateId = Annotated[int, Path(ge=1, le=MAX_ID)]
Actor = Annotated[str, Depends(get_actor)]
