"""Engagement events: what a lead did, when, and with which details.

Types are a closed list so that scoring rules (the contract) and reports can rely on
them; a typo is an error that lists the known types and suggests the closest one, not
a silently ignored event. How a type is written does not matter: ``Page View``,
``page-view``, ``PAGE_VIEW`` and ``pageView`` are all ``page_view`` (every tool spells
its event names its own way).

An event sent without ``occurred_at`` happened when Baton received it: the service
fills in the time of receipt from its injected clock (the model leaves it ``None``). A
file is different: a row without its time is an error, since an old export dated "now"
would count stale engagement as fresh.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from baton.domain.contact import NOT_SPECIAL_USE
from baton.domain.dates import read_instant
from baton.domain.leads import checked_email, fold_source
from baton.domain.limits import check_json, limits_from
from baton.domain.moments import INSTANT_PATTERN, instant_text, written
from baton.domain.suggest import suggest


class ActivityType(StrEnum):
    """Kinds of engagement Baton understands."""

    PAGE_VIEW = "page_view"
    FORM_SUBMIT = "form_submit"
    EMAIL_OPEN = "email_open"
    EMAIL_CLICK = "email_click"
    EMAIL_REPLY = "email_reply"
    CONTENT_DOWNLOAD = "content_download"
    WEBINAR_REGISTERED = "webinar_registered"
    WEBINAR_ATTENDED = "webinar_attended"
    EVENT_BOOTH_SCAN = "event_booth_scan"
    EVENT_HOT_SCAN = "event_hot_scan"
    """A badge scan rated hot: the person asked sales to follow up (a hand-raise)."""
    TRIAL_SIGNUP = "trial_signup"
    DEMO_REQUEST = "demo_request"
    CONTACT_SALES = "contact_sales"
    INBOUND_CALL = "inbound_call"
    CHAT = "chat"
    MEETING_BOOKED = "meeting_booked"
    AD_CLICK = "ad_click"
    UNSUBSCRIBE = "unsubscribe"
    CAPTURED = "captured"


ACTIVITY_TYPES: tuple[str, ...] = tuple(t.value for t in ActivityType)

_SEPARATORS = re.compile(r"[\s\-./:]+")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def activity_type(value: str) -> ActivityType:
    """The type ``value`` names, however it is written (case, spaces, hyphens, dots,
    camelCase); ``ValueError`` listing the types and the closest one otherwise."""
    key = _SEPARATORS.sub("_", _CAMEL.sub("_", value.strip())).strip("_").casefold()
    try:
        return ActivityType(key)
    except ValueError:
        shown = value if len(value) <= 60 else value[:57] + "..."
        raise ValueError(
            f"unknown activity type '{shown}'{suggest(key, ACTIVITY_TYPES)}; use one of "
            + ", ".join(ACTIVITY_TYPES)
        ) from None


MAX_FUTURE_SKEW = timedelta(minutes=10)
MAX_ID = 2**63 - 1
"""Largest id any database column holds."""


class ActivityCreate(BaseModel):
    """One engagement event. Identify the lead by ``email`` (an unknown address creates
    the lead) or by ``lead_id``. Send an ``idempotency_key`` (unique per event, e.g. the
    source system's event id) so that a retried request never doubles an event.

    ``type`` ignores case and separators (``Page View`` is ``page_view``). Without
    ``occurred_at`` the event happened when it was received (the service fills it in).

    Validation context (optional): ``now`` (aware datetime; events more than 10 minutes
    in the future are refused) and ``naive_timezone`` (IANA name used to read timestamps
    that carry no zone, for CSV files; the API requires a zone). With
    ``naive_timezone`` the row comes from a file: ``occurred_at`` is required and read in
    the common formats of :mod:`baton.domain.dates` (``day_first`` in the context for
    ``02/03/2026`` as 2 March).
    """

    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={
            "examples": [
                {
                    "email": "dana.reyes@northwind.example.com",
                    "type": "page_view",
                    "occurred_at": "2026-11-20T14:03:00Z",
                    "properties": {"url": "/pricing", "title": "Pricing"},
                    "idempotency_key": "web-evt-7f3a9c",
                }
            ],
            # The lead is named by its email or its id (see _identified).
            "anyOf": [
                {"required": ["email"], "properties": {"email": {"type": "string"}}},
                {"required": ["lead_id"], "properties": {"lead_id": {"type": "integer"}}},
            ],
        },
    )

    email: str | None = Field(
        None,
        min_length=3,
        max_length=254,
        json_schema_extra={"format": "email", "pattern": NOT_SPECIAL_USE},
    )
    lead_id: int | None = Field(None, ge=1, le=MAX_ID)
    type: ActivityType = Field(
        description="One of the types listed; case, spaces and hyphens do not matter "
        "(`Page View` and `page-view` are `page_view`)."
    )
    occurred_at: datetime | None = Field(
        None,
        validate_default=True,
        description="When it happened, with a time zone (ISO 8601), 1970 to 2200, at most "
        "10 minutes in the future. Left out (or null): when Baton received it.",
        json_schema_extra={
            "anyOf": [
                {"type": "string", "format": "date-time", "pattern": INSTANT_PATTERN},
                {"type": "null"},
            ]
        },
    )
    properties: dict[str, Any] = Field(default_factory=dict)
    idempotency_key: str | None = Field(None, min_length=1, max_length=200)
    source: str | None = Field(None, max_length=200, description="Source of a new lead.")
    campaign: str | None = Field(None, max_length=200)

    @field_validator("properties")
    @classmethod
    def _storable(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        return dict(check_json(value, limits_from(info.context)))

    @field_validator("idempotency_key", "source", "campaign")
    @classmethod
    def _no_nul(cls, value: str | None) -> str | None:
        if value is not None and "\x00" in value:
            raise ValueError("text cannot contain the NUL character")
        return value

    @field_validator("type", mode="before")
    @classmethod
    def _type(cls, value: Any) -> Any:
        return activity_type(value) if isinstance(value, str) else value

    @field_validator("source")
    @classmethod
    def _fold(cls, value: str | None) -> str | None:
        # One spelling per source, as for a capture (see baton.domain.leads).
        return (fold_source(value) or None) if value is not None else None

    @field_validator("email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        return checked_email(value)

    @field_validator("lead_id", mode="before")
    @classmethod
    def _an_id(cls, value: Any, info: ValidationInfo) -> Any:
        context = info.context if isinstance(info.context, Mapping) else {}
        if context.get("naive_timezone") or value is None or type(value) is int:
            return value  # a file's cells are text; JSON must send a number
        if type(value) is float and value.is_integer():
            return int(value)  # 84.0 is the integer 84 in JSON
        raise ValueError("lead_id must be a whole number")

    @field_validator("occurred_at", mode="before")
    @classmethod
    def _written(cls, value: Any, info: ValidationInfo) -> Any:
        context = info.context if isinstance(info.context, Mapping) else {}
        zone = context.get("naive_timezone")
        if zone and isinstance(value, str):
            # A file: common formats, zone-less times read in the file's zone.
            return read_instant(value, zone=str(zone), day_first=bool(context.get("day_first")))
        if zone:
            return written(value)
        return instant_text(value)

    @field_validator("occurred_at")
    @classmethod
    def _aware(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        context = info.context if isinstance(info.context, Mapping) else {}
        if value is None:
            if context.get("naive_timezone"):
                raise ValueError("is required in a file: when did the event happen?")
            return None
        if value.year < 1970 or value.year > 2200:
            raise ValueError("occurred_at must be between 1970 and 2200")
        if value.tzinfo is UTC:
            pass
        elif value.tzinfo is None:
            zone = context.get("naive_timezone")
            if not zone:
                raise ValueError(
                    "occurred_at needs a time zone, e.g. 2026-11-20T14:03:00Z or +01:00"
                )
            value = value.replace(tzinfo=ZoneInfo(str(zone))).astimezone(UTC)
        else:
            value = value.astimezone(UTC)
        now = context.get("now")
        if isinstance(now, datetime) and value > now + MAX_FUTURE_SKEW:
            raise ValueError("occurred_at is in the future")
        return value

    @model_validator(mode="after")
    def _identified(self) -> ActivityCreate:
        if self.email is None and self.lead_id is None:
            raise ValueError("an activity needs the lead's email or lead_id")
        return self
