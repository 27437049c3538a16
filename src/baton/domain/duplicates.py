"""Reviewing possible duplicates in bulk: which open pairs a request picks.

One import can flag thousands of pairs that are plainly not one person (a common
name at a big company, a switchboard number): a reviewer clears them by what they
share (the reason, a similarity below some score, when they were flagged) or by a
list of ids, and can ask first how many a request would dismiss (a dry run).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    WithJsonSchema,
    model_validator,
)

from baton.domain.activities import MAX_ID
from baton.domain.leads import DUPLICATE_REASONS
from baton.domain.moments import Instant

MAX_DISMISS_IDS = 10_000
"""Most pair ids one request may name (a filter reaches any number of pairs)."""

PairId = Annotated[int, Field(ge=1, le=MAX_ID)]


def reason_text(value: str) -> str:
    """The stored reason for a short code (``phone``, ``mailbox``, ``email_domain``,
    ``company``) or for the reason written out (any case); ``ValueError`` listing both
    otherwise."""
    wanted = value.strip().lower()
    if wanted in DUPLICATE_REASONS:
        return DUPLICATE_REASONS[wanted]
    for text in DUPLICATE_REASONS.values():
        if wanted == text:
            return text
    codes = ", ".join(DUPLICATE_REASONS)
    raise ValueError(
        f"unknown reason {value.strip()[:100]!r}; use one of {codes} "
        f"(or the reason as listed: {'; '.join(DUPLICATE_REASONS.values())})"
    )


Reason = Annotated[
    str,
    AfterValidator(reason_text),
    WithJsonSchema(
        {
            "type": "string",
            "enum": [*DUPLICATE_REASONS, *DUPLICATE_REASONS.values()],
            "description": "phone, mailbox, email_domain or company (or the reason as listed)",
        }
    ),
]
"""Why a pair was flagged: a short code or the stored text (any case); stored as text."""

CRITERIA = ("ids", "reason", "similarity_below", "created_since", "created_before")
"""The fields that pick pairs: a bulk dismissal needs at least one."""


def _dismissal_schema(schema: dict[str, Any]) -> None:
    """Examples, and what :class:`DuplicateDismissal` checks said in its schema: one
    criterion at least."""
    schema["examples"] = [
        {"reason": "company", "similarity_below": 95, "dry_run": True},
        {"created_since": "2026-03-02T09:00:00Z", "reason": "email_domain"},
        {"ids": [101, 102, 107]},
    ]
    schema["anyOf"] = [{"required": [name]} for name in CRITERIA]


class DuplicateFilter(BaseModel):
    """Which pairs: every given condition must hold (none given: every pair)."""

    model_config = ConfigDict(extra="forbid")

    reason: Reason | None = None
    similarity_below: float | None = Field(
        None, gt=0, le=100, description="Only pairs whose similarity is below this (0-100)"
    )
    created_since: Instant | None = Field(None, description="Flagged at or after this time")
    created_before: Instant | None = Field(None, description="Flagged before this time")

    @model_validator(mode="after")
    def _period(self) -> DuplicateFilter:
        if (
            self.created_since is not None
            and self.created_before is not None
            and self.created_before <= self.created_since
        ):
            raise ValueError("created_before must be after created_since")
        return self

    @property
    def empty(self) -> bool:
        return (
            self.reason is None
            and self.similarity_below is None
            and self.created_since is None
            and self.created_before is None
        )


class DuplicateDismissal(DuplicateFilter):
    """Dismiss open pairs in bulk: those named in ``ids``, those the filter picks, or
    both (the named ones the filter also picks). A request must say which pairs: an
    empty one is refused rather than read as "all of them"."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra=_dismissal_schema,
    )

    ids: list[PairId] | None = Field(
        None,
        min_length=1,
        max_length=MAX_DISMISS_IDS,
        description=f"Pair ids (at most {MAX_DISMISS_IDS:,})",
    )
    dry_run: bool = Field(False, description="Count what would be dismissed; change nothing")

    @model_validator(mode="after")
    def _says_which(self) -> DuplicateDismissal:
        if self.ids is None and self.empty:  # also in the schema: _dismissal_schema
            raise ValueError(
                "say which pairs, by id or by a filter (to dismiss every open pair, set "
                "created_before to now)"
            )
        return self
