"""Sales reps and teams as the people who manage them describe them: who, where they
work and when, how many open handoffs they can carry, which patch they cover.

These are the validated inputs (the edge models); :class:`baton.domain.routing.Rep` is
what routing reads.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal
from zoneinfo import available_timezones

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from baton.domain.business_hours import WorkingHours
from baton.domain.clock import ensure_utc
from baton.domain.contact import NOT_SPECIAL_USE, InvalidContact, normalize_email
from baton.domain.moments import Instant

_TIMEZONES = frozenset(available_timezones())

DEFAULT_HOURS: dict[str, list[str]] = WorkingHours.weekdays().to_spec()


def _email(value: str) -> str:
    try:
        return normalize_email(value)
    except InvalidContact as exc:
        raise ValueError(str(exc)) from None


Email = Annotated[
    str,
    AfterValidator(_email),
    WithJsonSchema(
        {"type": "string", "format": "email", "maxLength": 254, "pattern": NOT_SPECIAL_USE}
    ),
]
Name = Annotated[
    str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\- ]*$")
]


def _timezone(value: str) -> str:
    if value not in _TIMEZONES:
        raise ValueError(f"unknown time zone '{value}'; use an IANA name such as Europe/Berlin")
    return value


TimeZone = Annotated[
    str,
    AfterValidator(_timezone),
    WithJsonSchema({"type": "string", "enum": sorted(_TIMEZONES), "examples": ["Europe/Berlin"]}),
]
"""An IANA time zone name known to this machine (the schema lists them)."""


def _hours(value: dict[str, list[str]]) -> dict[str, list[str]]:
    return WorkingHours.parse(value).to_spec()


def _lower_set(values: list[str]) -> list[str]:
    return sorted({v.strip().lower() for v in values if v.strip()})


def _upper_set(values: list[str]) -> list[str]:
    return sorted({v.strip().upper() for v in values if v.strip()})


def _postal_set(values: list[str]) -> list[str]:
    return sorted({v.replace(" ", "").upper() for v in values if v.strip()})


def _country(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z]{2}", value):
        raise ValueError(f"'{value}' is not a two-letter country code")
    return value


Country = Annotated[
    str, AfterValidator(_country), WithJsonSchema({"type": "string", "pattern": "^[A-Za-z]{2}$"})
]


class TeamCreate(BaseModel):
    """A sales team: its name (used in routing pools) and its manager."""

    model_config = ConfigDict(extra="forbid")

    name: Name
    manager_email: Email | None = None


CLEARABLE = frozenset({"team", "manager_email"})
"""Rep fields a change may set to null (to clear them); others are left out instead."""


def _only_clearable_nulls(schema: dict[str, Any]) -> None:
    for name, field in schema.get("properties", {}).items():
        options = field.get("anyOf")
        if name in CLEARABLE or not options:
            continue
        kept = [option for option in options if option.get("type") != "null"]
        if field.get("default", ...) is None:
            del field["default"]
        if len(kept) == 1:
            del field["anyOf"]
            field.update(kept[0])
        else:
            field["anyOf"] = kept


class _RepFields(BaseModel):
    # Left out means "the default" (create) or "unchanged" (update); null only clears.
    model_config = ConfigDict(extra="forbid", json_schema_extra=_only_clearable_nulls)

    name: str | None = Field(None, min_length=1, max_length=200)
    team: Name | None = None
    timezone: TimeZone | None = None
    working_hours: Annotated[dict[str, list[str]], AfterValidator(_hours)] | None = Field(
        None,
        description='Local working intervals per weekday, e.g. {"mon": ["09:00-12:00", '
        '"13:00-17:00"]}; a missing day is a day off.',
    )
    status: Literal["available", "away"] | None = None
    capacity: int | None = Field(None, ge=0, le=100_000, description="Maximum open handoffs.")
    weight: float | None = Field(None, gt=0, le=1000, description="Share in weighted routing.")
    tags: Annotated[list[str], AfterValidator(_lower_set)] | None = None
    countries: Annotated[list[Country], AfterValidator(_upper_set)] | None = None
    regions: Annotated[list[str], AfterValidator(_upper_set)] | None = None
    postal_prefixes: Annotated[list[str], AfterValidator(_postal_set)] | None = None
    segments: Annotated[list[str], AfterValidator(_lower_set)] | None = None
    manager_email: Email | None = None
    active: StrictBool | None = None


class RepCreate(_RepFields):
    """A new rep. Only email and name are required: a rep without hours works
    Monday to Friday 09:00-17:00 in UTC, carries 20 open handoffs, weight 1."""

    email: Email
    name: str = Field(min_length=1, max_length=200)


class RepUpdate(_RepFields):
    """A partial change to a rep; fields left out stay as they are, and only
    ``team`` and ``manager_email`` may be null (cleared)."""


class AbsenceCreate(BaseModel):
    """An out-of-office period (end exclusive). The rep gets no new handoffs in it and
    SLA business time does not run."""

    model_config = ConfigDict(extra="forbid")

    starts_at: Instant
    ends_at: Instant = Field(description="After starts_at (the end is exclusive).")
    note: str | None = Field(None, max_length=300)

    @model_validator(mode="after")
    def _ordered(self) -> AbsenceCreate:
        self.starts_at = ensure_utc(self.starts_at)
        self.ends_at = ensure_utc(self.ends_at)
        if self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be after starts_at")
        return self


DOMAIN_PATTERN = (
    r"^([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$"
)
"""A host name with at least two labels, the last one starting with a letter."""


class AccountCreate(BaseModel):
    """A customer or target account: its email domain and the rep who owns it."""

    model_config = ConfigDict(extra="forbid")

    domain: str = Field(
        min_length=3,
        max_length=253,
        json_schema_extra={"pattern": DOMAIN_PATTERN},
        description="The email domain, such as example.com (a leading www. is dropped)",
    )
    name: str | None = Field(None, max_length=300)
    owner_email: Email | None = None

    @field_validator("domain")
    @classmethod
    def _domain(cls, value: str) -> str:
        if not re.fullmatch(DOMAIN_PATTERN, value):
            raise ValueError(f"'{value}' is not a domain such as example.com")
        value = value.lower()
        if value.startswith("www.") and value.count(".") > 1:
            value = value.removeprefix("www.")
        return value
