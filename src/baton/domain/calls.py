"""An inbound phone call as a phone system or a person reports it.

A call is a hand-raise in the example contract (``inbound_call``): someone rang sales.
The caller is named by the lead's id, email or phone number (as the phone system saw
it; any common writing, read into E.164 with the default phone region). A recording
URL is checked to be a plain ``http(s)`` address and stored as given: Baton never
fetches it (it would be a request into wherever the URL points).

Durations are written the ways people write them: ``300`` (seconds), ``90s``, ``5m``,
``1h5m``, ``4:30`` (minutes:seconds) or ``1:02:03``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from baton.domain.activities import MAX_FUTURE_SKEW, MAX_ID
from baton.domain.contact import NOT_SPECIAL_USE
from baton.domain.leads import checked_email, checked_phone
from baton.domain.moments import INSTANT_PATTERN, instant_text

MAX_CALL_SECONDS = 24 * 3600
_UNITS = re.compile(r"(\d+(?:\.\d+)?)\s*(h|hr|hrs|hours?|m|min|mins|minutes?|s|sec|secs|seconds?)")


def parse_duration(text: str) -> int:
    """Seconds in ``text`` (``300``, ``90s``, ``5m``, ``1h5m``, ``4:30``, ``1:02:03``);
    ``ValueError`` naming the accepted forms otherwise."""
    value = text.strip().lower()
    problem = (
        f"cannot read the duration {text!r}; write seconds (300), 90s, 5m, 1h5m, "
        "4:30 (minutes:seconds) or 1:02:03"
    )
    if not value:
        raise ValueError(problem)
    if re.fullmatch(r"\d+", value):
        return int(value)
    if re.fullmatch(r"\d+(:[0-5]\d){1,2}", value):
        parts = [int(p) for p in value.split(":")]
        seconds = 0
        for part in parts:
            seconds = seconds * 60 + part
        return seconds
    spaced = value.replace(" ", "")
    found = _UNITS.findall(spaced)
    if not found or "".join(n + u for n, u in found) != spaced:
        raise ValueError(problem)
    total = 0.0
    for number, unit in found:
        factor = 3600 if unit.startswith("h") else 60 if unit.startswith("m") else 1
        total += float(number) * factor
    return round(total)


def check_recording_url(value: str) -> str:
    """``value`` when it is an absolute ``http``/``https`` URL with a host and no
    spaces or credentials; ``ValueError`` otherwise. Never fetched."""
    url = value.strip()
    if len(url) > 2000 or any(c.isspace() for c in url):
        raise ValueError("a recording URL is one http(s) address without spaces")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("a recording URL starts with https:// (or http://) and names a host")
    if parts.username or parts.password:
        raise ValueError("a recording URL must not carry a user name or password")
    return url


class CallCreate(BaseModel):
    """An inbound call: who called (``lead_id``, ``email`` or ``phone``), when, how
    long, which rep took it, notes and a recording link. An unknown email or number
    creates the lead. ``call_id`` (the phone system's id of the call) makes a retry
    store nothing twice.

    Validation context: ``default_region`` (phone numbers without a country code) and
    ``now`` (calls more than 10 minutes in the future are refused)."""

    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={
            "examples": [
                {
                    "phone": "+1 415 555 0134",
                    "occurred_at": "2026-11-20T14:03:00Z",
                    "duration_seconds": 310,
                    "rep": "ana@lumen.example",
                    "notes": "Wants a demo for the ops team next week",
                    "recording_url": "https://calls.example.com/rec/8812",
                    "call_id": "pbx-8812",
                }
            ],
            # The caller is named by a phone, an email or a lead id (see _identified).
            "anyOf": [
                {"required": ["phone"], "properties": {"phone": {"type": "string"}}},
                {"required": ["email"], "properties": {"email": {"type": "string"}}},
                {"required": ["lead_id"], "properties": {"lead_id": {"type": "integer"}}},
            ],
        },
    )

    lead_id: int | None = Field(None, ge=1, le=MAX_ID)
    email: str | None = Field(
        None,
        min_length=3,
        max_length=254,
        json_schema_extra={"format": "email", "pattern": NOT_SPECIAL_USE},
    )
    phone: str | None = Field(None, min_length=3, max_length=40)
    occurred_at: datetime | None = Field(
        None,
        description="When the call came in, with a time zone; left out: when Baton received it.",
        json_schema_extra={
            "anyOf": [
                {"type": "string", "format": "date-time", "pattern": INSTANT_PATTERN},
                {"type": "null"},
            ]
        },
    )
    duration_seconds: int | None = Field(None, ge=0, le=MAX_CALL_SECONDS)
    rep: str | None = Field(
        None, max_length=254, description="The rep who took the call: email or name."
    )
    notes: str | None = Field(None, max_length=5000)
    recording_url: str | None = Field(
        None,
        max_length=2000,
        description="Link to the recording (http or https); stored, never fetched.",
    )
    call_id: str | None = Field(
        None, min_length=1, max_length=150, description="The phone system's id of the call."
    )
    source: str | None = Field(None, max_length=200, description="Source of a new lead.")

    @field_validator("email", "phone", "rep", "notes", "call_id", "source", mode="before")
    @classmethod
    def _blank(cls, value: Any) -> Any:
        if isinstance(value, str):
            if "\x00" in value:
                raise ValueError("text cannot contain the NUL character")
            return value.strip() or None
        return value

    @field_validator("email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        return checked_email(value)

    @field_validator("phone")
    @classmethod
    def _phone(cls, value: str | None, info: ValidationInfo) -> str | None:
        return checked_phone(value, info.context)

    @field_validator("recording_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return None if value is None else check_recording_url(value)

    @field_validator("occurred_at", mode="before")
    @classmethod
    def _written(cls, value: Any) -> Any:
        return instant_text(value)

    @field_validator("occurred_at")
    @classmethod
    def _aware(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("occurred_at needs a time zone, e.g. 2026-11-20T14:03:00Z")
        value = value.astimezone(UTC)
        context = info.context if isinstance(info.context, Mapping) else {}
        now = context.get("now")
        if isinstance(now, datetime) and value > now + MAX_FUTURE_SKEW:
            raise ValueError("occurred_at is in the future")
        return value

    @model_validator(mode="after")
    def _identified(self) -> CallCreate:
        if self.lead_id is None and self.email is None and self.phone is None:
            raise ValueError("name the caller: phone, email or lead_id")
        return self
