"""Sales reps and teams as the people who manage them describe them: who, where they
work and when, how many open handoffs they can carry, which patch they cover.

These are the validated inputs (the edge models); :class:`baton.domain.routing.Rep` is
what routing reads.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from zoneinfo import available_timezones

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from baton.domain.business_hours import WorkingHours
from baton.domain.clock import ensure_utc
from baton.domain.contact import InvalidContact, normalize_email

_TIMEZONES = frozenset(available_timezones())

DEFAULT_HOURS: dict[str, list[str]] = WorkingHours.weekdays().to_spec()


def _email(value: str) -> str:
    try:
        return normalize_email(value)
    except InvalidContact as exc:
        raise ValueError(str(exc)) from None


Email = Annotated[str, AfterValidator(_email)]
Name = Annotated[
    str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\- ]*$")
]


def _timezone(value: str) -> str:
    if value not in _TIMEZONES:
        raise ValueError(f"unknown time zone '{value}'; use an IANA name such as Europe/Berlin")
    return value


def _hours(value: dict[str, list[str]]) -> dict[str, list[str]]:
    return WorkingHours.parse(value).to_spec()


def _lower_set(values: list[str]) -> list[str]:
    return sorted({v.strip().lower() for v in values if v.strip()})


def _upper_set(values: list[str]) -> list[str]:
    return sorted({v.strip().upper() for v in values if v.strip()})


def _postal_set(values: list[str]) -> list[str]:
    return sorted({v.replace(" ", "").upper() for v in values if v.strip()})


class TeamCreate(BaseModel):
    """A sales team: its name (used in routing pools) and its manager."""

    model_config = ConfigDict(extra="forbid")

    name: Name
    manager_email: Email | None = None


class _RepFields(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, min_length=1, max_length=200)
    team: Name | None = None
    timezone: Annotated[str, AfterValidator(_timezone)] | None = None
    working_hours: Annotated[dict[str, list[str]], AfterValidator(_hours)] | None = Field(
        None,
        description='Local working intervals per weekday, e.g. {"mon": ["09:00-12:00", '
        '"13:00-17:00"]}; a missing day is a day off.',
    )
    status: Literal["available", "away"] | None = None
    capacity: int | None = Field(None, ge=0, le=100_000, description="Maximum open handoffs.")
    weight: float | None = Field(None, gt=0, le=1000, description="Share in weighted routing.")
    tags: Annotated[list[str], AfterValidator(_lower_set)] | None = None
    countries: Annotated[list[str], AfterValidator(_upper_set)] | None = None
    regions: Annotated[list[str], AfterValidator(_upper_set)] | None = None
    postal_prefixes: Annotated[list[str], AfterValidator(_postal_set)] | None = None
    segments: Annotated[list[str], AfterValidator(_lower_set)] | None = None
    manager_email: Email | None = None
    active: bool | None = None

    @field_validator("countries")
    @classmethod
    def _two_letters(cls, value: list[str] | None) -> list[str] | None:
        for code in value or ():
            if len(code) != 2 or not code.isalpha():
                raise ValueError(f"'{code}' is not a two-letter country code")
        return value


class RepCreate(_RepFields):
    """A new rep. Only email and name are required: a rep without hours works
    Monday to Friday 09:00-17:00 in UTC, carries 20 open handoffs, weight 1."""

    email: Email
    name: str = Field(min_length=1, max_length=200)


class RepUpdate(_RepFields):
    """A partial change to a rep; fields left out stay as they are."""


class AbsenceCreate(BaseModel):
    """An out-of-office period (end exclusive). The rep gets no new handoffs in it and
    SLA business time does not run."""

    model_config = ConfigDict(extra="forbid")

    starts_at: datetime
    ends_at: datetime
    note: str | None = Field(None, max_length=300)

    @model_validator(mode="after")
    def _ordered(self) -> AbsenceCreate:
        self.starts_at = ensure_utc(self.starts_at)
        self.ends_at = ensure_utc(self.ends_at)
        if self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be after starts_at")
        return self


class AccountCreate(BaseModel):
    """A customer or target account: its email domain and the rep who owns it."""

    model_config = ConfigDict(extra="forbid")

    domain: str = Field(min_length=3, max_length=253)
    name: str | None = Field(None, max_length=300)
    owner_email: Email | None = None

    @field_validator("domain")
    @classmethod
    def _domain(cls, value: str) -> str:
        value = value.strip().lower().removeprefix("www.")
        if "." not in value or "@" in value or " " in value:
            raise ValueError(f"'{value}' is not a domain such as example.com")
        return value
