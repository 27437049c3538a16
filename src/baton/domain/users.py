"""People, programs and public forms as the admin describes them: the validated inputs
for users, API tokens and intake keys (the edge models), and the password rules."""

from __future__ import annotations

import re
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from baton.domain.access import SCOPES, Role
from baton.domain.leads import fold_source
from baton.domain.moments import Instant
from baton.domain.reps import Email, Name, TimeZone

MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 256


def check_password(value: str) -> str:
    """A password people choose: long enough to resist guessing, short enough to hash."""
    if len(value) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
    if len(value) > MAX_PASSWORD_LENGTH:
        raise ValueError(f"a password has at most {MAX_PASSWORD_LENGTH} characters")
    if value.strip() != value or not value.strip():
        raise ValueError("a password may not start or end with spaces")
    return value


PASSWORD_PATTERN = r"^\S([\s\S]*\S)?$"  # noqa: S105 (a rule, not a password)
"""No space at either end (the length rule is minLength and maxLength)."""

Password = Annotated[
    str,
    AfterValidator(check_password),
    WithJsonSchema(
        {
            "type": "string",
            "minLength": MIN_PASSWORD_LENGTH,
            "maxLength": MAX_PASSWORD_LENGTH,
            "pattern": PASSWORD_PATTERN,
        }
    ),
]


class UserCreate(BaseModel):
    """A person who signs in. A ``rep`` user *is* the rep with ``rep_email``; a
    ``sales_manager`` manages the ``teams`` named."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "email": "sam.becker@example.com",
                    "display_name": "Sam Becker",
                    "role": "sales_manager",
                    "teams": ["EMEA"],
                    "timezone": "Europe/Berlin",
                }
            ]
        },
    )

    email: Email
    display_name: str = Field(min_length=1, max_length=200, json_schema_extra={"pattern": r"\S"})
    role: Role
    rep_email: Email | None = Field(None, description="For a rep user: their rep record.")
    teams: list[Name] = Field(default_factory=list, max_length=50)
    timezone: TimeZone = Field(
        "UTC", description="Times are shown in it; a rep user defaults to their rep's zone."
    )

    @field_validator("display_name")
    @classmethod
    def _trimmed(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("a display name cannot be blank")
        return value


class UserUpdate(BaseModel):
    """A partial change to a user; fields left out stay as they are."""

    model_config = ConfigDict(extra="forbid")

    display_name: str | None = Field(None, min_length=1, max_length=200)
    role: Role | None = None
    rep_email: Email | None = None
    teams: list[Name] | None = Field(None, max_length=50)
    timezone: TimeZone | None = None
    active: StrictBool | None = None


def _scopes(values: list[str]) -> list[str]:
    unknown = sorted(set(values) - set(SCOPES))
    if unknown:
        raise ValueError(f"unknown scope(s) {', '.join(unknown)}; known: {', '.join(SCOPES)}")
    if not values:
        raise ValueError("a token needs at least one scope")
    return sorted(set(values))


class TokenCreate(BaseModel):
    """An API token for a program. ``user_email`` (admins only) makes it for another
    user, e.g. an integration's service user; by default it is the caller's own."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"name": "CRM sync", "scopes": ["leads:write", "activities:write"]},
            ]
        },
    )

    name: str = Field(min_length=1, max_length=100)
    scopes: Annotated[
        list[str],
        AfterValidator(_scopes),
        WithJsonSchema(
            {
                "type": "array",
                "items": {"type": "string", "enum": list(SCOPES)},
                "minItems": 1,
                "maxItems": len(SCOPES),
            }
        ),
    ] = Field(max_length=len(SCOPES))
    expires_at: Instant | None = Field(None, description="In the future; none: never expires")
    user_email: Email | None = None


ORIGIN_PATTERN = (
    r"^[Hh][Tt][Tt][Pp][Ss]?://[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?(:[0-9]{1,5})?/?$"
)
"""What a browser sends in Origin: a scheme, a host name or address, maybe a port. The
scheme in any case (``HTTPS://``, as pasted from somewhere), like the host: both are
kept in lower case (:func:`_origin`). Spelt out rather than a flag: the pattern is also
the published schema's, where regular expressions have no flags."""


def _origin(value: str) -> str:
    if not re.fullmatch(ORIGIN_PATTERN, value):
        raise ValueError(f"'{value}' is not a browser origin; write it as https://www.example.com")
    parts = urlsplit(value.rstrip("/"))
    scheme, host = parts.scheme.lower(), parts.netloc.lower()
    # A browser's Origin header leaves out the scheme's default port.
    return f"{scheme}://{host.removesuffix(DEFAULT_PORTS.get(scheme, ''))}"


DEFAULT_PORTS = {"https": ":443", "http": ":80"}


def origin_for(written: str) -> str | None:
    """The browser origin someone most likely meant by ``written``, which is not one
    (``www.x.com`` -> ``https://www.x.com``, ``https://x.com/pricing`` ->
    ``https://x.com``), to suggest in a refusal; ``None`` when no host can be read."""
    text = written.strip()
    if "://" not in text:
        text = "https://" + text.lstrip("/")
    try:
        parts = urlsplit(text)
        guess = f"{parts.scheme}://{parts.netloc}"
    except ValueError:
        return None
    try:
        return _origin(guess)
    except ValueError:
        return None


MAX_RATE_PER_MINUTE = 100_000
"""The most requests a minute an intake key may be given."""


Origin = Annotated[
    str,
    AfterValidator(_origin),
    WithJsonSchema({"type": "string", "pattern": ORIGIN_PATTERN, "maxLength": 300}),
]


def _a_number(value: object) -> object:
    """A rate is a JSON number: ``"10"`` or ``true`` is a client's bug that the lax
    reading would hide (``true`` would be 1 request a minute). A form's text is turned
    into a number by its page, which knows it is text."""
    if isinstance(value, bool | str):
        sent = "true or false" if isinstance(value, bool) else "text"
        raise ValueError(f"send a whole number such as 60 (a JSON number), not {sent}")
    return value


RatePerMinute = Annotated[
    int,
    Field(
        ge=1,
        le=MAX_RATE_PER_MINUTE,
        description="Requests a minute the key may make, per process (a moving window).",
    ),
    # After the bounds, so that it runs first and the schema keeps them (minimum,
    # maximum): before them, they were published as unknown keywords.
    BeforeValidator(_a_number),
]


class IntakeKeyCreate(BaseModel):
    """A public key for a website or form tool: it can only create leads and
    activities; their ``source`` is the key's unless the payload names one."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "website",
                    "source": "web",
                    "origins": ["https://www.example.com"],
                    "rate_per_minute": 60,
                }
            ]
        },
    )

    name: Name
    source: str = Field(min_length=1, max_length=200, json_schema_extra={"pattern": r"\S"})
    origins: list[Origin] = Field(default_factory=list, max_length=50)
    rate_per_minute: RatePerMinute = 60

    @field_validator("source")
    @classmethod
    def _folded(cls, value: str) -> str:
        value = fold_source(value)  # as captures store sources
        if not value:
            raise ValueError("a source cannot be blank")
        return value


KEY_CHANGES = ("rate_per_minute", "origins")


def _says_a_change(schema: dict[str, Any]) -> None:
    """What :class:`IntakeKeyUpdate` checks, said in its schema: one field at least,
    not null."""
    schema["examples"] = [
        {"rate_per_minute": 120},
        {"origins": ["https://www.example.com", "https://shop.example.com"]},
    ]
    schema["anyOf"] = [
        {"required": [name], "properties": {name: {"not": {"type": "null"}}}}
        for name in KEY_CHANGES
    ]


class IntakeKeyUpdate(BaseModel):
    """A change to an intake key's rate, its origins or both, validated as when a key
    is made; a field left out (or null) stays, but one must be given: a request that
    changes nothing is refused (422) rather than answered as if it had worked (a
    client that misspelt its payload would never know). Its name, source and secret
    stay: another source needs another key."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_says_a_change)

    rate_per_minute: RatePerMinute | None = None
    origins: list[Origin] | None = Field(
        None, max_length=50, description="Replaces the list; [] makes a key for servers only."
    )

    @model_validator(mode="after")
    def _changes_something(self) -> IntakeKeyUpdate:
        if self.rate_per_minute is None and self.origins is None:  # also in the schema
            raise ValueError("nothing to change: give rate_per_minute, origins or both")
        return self


class PasswordChange(BaseModel):
    """A signed-in person replacing their password (a one-time one included)."""

    model_config = ConfigDict(extra="forbid")

    current_password: str = Field(min_length=1, max_length=MAX_PASSWORD_LENGTH)
    new_password: Password


class PasswordSet(BaseModel):
    """The operator setting a person's password from the server's shell (`baton user
    set-password`, `baton init --admin-password-stdin`): the same rule as the web
    page's, and no current password to give, since whoever runs the CLI already
    holds the database."""

    model_config = ConfigDict(extra="forbid")

    password: Password
