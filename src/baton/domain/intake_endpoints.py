"""Inbound endpoints: what an operator configures for ``/hooks/{name}``, and the pure
checks at the door (honeypot, return URLs).

An endpoint has a URL-safe ``name`` (the last part of ``/hooks/{name}``), a ``kind``
(which adapter reads its requests), the lead ``source`` and default ``campaign`` its
submissions set, the activity type a submission records (``event_type``: a "contact
sales" form is a hand-raise), a kind-specific field ``mapping``, a ``secret`` (what the
platform signs with or sends), and the limits at the door: requests per minute, the
largest body, a honeypot field, the allowed return URLs of a web form.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import parse_qsl, urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from baton.domain.activities import ActivityType, activity_type
from baton.domain.intake import INTAKE_KINDS
from baton.domain.leads import LeadCreate, fold_source

NAME_PATTERN: Final = r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$"
"""An endpoint's name (anchored: pydantic searches a pattern)."""

DEFAULT_RATE_PER_MINUTE: Final = 120
"""Requests a minute an endpoint takes before answering 429 (a form tool's burst fits)."""
DEFAULT_MAX_BODY_BYTES: Final = 256 * 1024
"""The largest request body an endpoint reads (a HubSpot batch of 100 fits in 256 KiB)."""
MAX_RATE_PER_MINUTE: Final = 100_000
MAX_BODY_LIMIT: Final = 32 * 1024 * 1024

GENERATED_SECRET_KINDS: Final = frozenset({"generic", "typeform", "google_ads_lead_form"})
"""Kinds whose secret Baton makes when none is given (the operator pastes it into the
platform: Typeform's webhook secret, Google Ads' webhook key, the header a generic
sender adds). HubSpot, Calendly and Meta issue theirs: give it with ``--secret``."""

LEAD_FIELDS: Final = tuple(name for name in LeadCreate.model_fields if name != "attributes")
"""Lead fields a mapping may fill (``attributes.X`` and ``properties.X`` besides)."""

SPECIAL_KEYS: Final = ("upstream_id", "occurred_at", "event_type_path", "event_types")
"""Keys of a generic mapping that are not lead fields: the submission's own id (for
replays), when it happened, and which event type it is."""

_PATH = re.compile(r"[^.\s][^.]*(?:\.[^.\s][^.]*)*")


def generic_mapping_problems(mapping: Mapping[str, Any]) -> list[tuple[str, str]]:
    """What is wrong with a generic endpoint's mapping, as ``(key, message)`` pairs.

    Keys are lead fields, ``attributes.NAME`` or ``properties.NAME`` (each -> a dot
    path such as ``contact.email`` or ``answers.0.value``), ``upstream_id`` and
    ``occurred_at`` (-> a path), ``event_type_path`` (-> a path) with ``event_types``
    (the value found there -> an activity type, or null to record only the capture)."""
    problems: list[tuple[str, str]] = []
    for key, value in mapping.items():
        where = f"mapping.{key}"
        if key == "event_types":
            if not isinstance(value, Mapping):
                problems.append((where, "an object: value found at event_type_path -> type"))
                continue
            for found, kind in value.items():
                if kind is None:
                    continue
                if not isinstance(kind, str):
                    problems.append((f"{where}.{found}", "an activity type or null"))
                    continue
                try:
                    activity_type(kind)
                except ValueError as exc:
                    problems.append((f"{where}.{found}", str(exc)))
            continue
        if not isinstance(value, str) or not _PATH.fullmatch(value.strip()):
            problems.append((where, "a dot path such as contact.email or answers.0.value"))
            continue
        head, _, rest = key.partition(".")
        if key in SPECIAL_KEYS:
            continue
        if head in ("attributes", "properties"):
            if not rest.strip():
                problems.append((where, f"name the {head[:-3]}y: {head}.NAME"))
            continue
        if key not in LEAD_FIELDS:
            problems.append(
                (
                    where,
                    f"unknown lead field {key!r}; use one of {', '.join(LEAD_FIELDS)}, "
                    "attributes.NAME, properties.NAME, " + ", ".join(SPECIAL_KEYS),
                )
            )
    if "event_types" in mapping and "event_type_path" not in mapping:
        problems.append(("mapping.event_types", "needs event_type_path (where the value is)"))
    if not any(k in mapping for k in ("email", "phone", "external_id")):
        problems.append(("mapping", "map at least one of email, phone, external_id"))
    return problems


def mapping_problems(kind: str, mapping: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Per-kind checks of a mapping (generic is checked fully; other kinds' mappings
    are refinements their adapters read, checked for shape only)."""
    if kind == "generic":
        return generic_mapping_problems(mapping)
    problems: list[tuple[str, str]] = []
    for key, value in mapping.items():
        if not isinstance(key, str) or not key.strip():
            problems.append(("mapping", "keys are non-empty names"))
        elif not isinstance(value, str | int | float | bool | type(None) | Mapping | list):
            problems.append((f"mapping.{key}", "a JSON value"))
    return problems


class _EndpointFields(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    source: str | None = Field(None, min_length=1, max_length=200)
    campaign: str | None = Field(None, max_length=200)
    event_type: str | None = Field(
        None,
        max_length=40,
        description="Activity type a submission records (e.g. contact_sales, a hand-raise); "
        "null: the kind's default (generic: form_submit).",
    )
    mapping: dict[str, Any] | None = None
    secret: str | None = Field(None, min_length=8, max_length=500)
    fetch_token: str | None = Field(None, max_length=2000)
    fetch_base_url: str | None = Field(None, max_length=2000)
    return_urls: list[str] | None = Field(None, max_length=20)
    honeypot_field: str | None = Field(None, max_length=100)
    rate_per_minute: int | None = Field(None, ge=1, le=MAX_RATE_PER_MINUTE)
    max_body_bytes: int | None = Field(None, ge=256, le=MAX_BODY_LIMIT)
    active: bool | None = None

    @field_validator("source")
    @classmethod
    def _fold(cls, value: str | None) -> str | None:
        return fold_source(value) if value else value

    @field_validator("event_type")
    @classmethod
    def _event_type(cls, value: str | None) -> str | None:
        return activity_type(value).value if value else None

    @field_validator("return_urls")
    @classmethod
    def _urls(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        for url in value:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"{url[:100]!r} is not an http(s) URL")
        return value

    @field_validator("fetch_base_url")
    @classmethod
    def _base(cls, value: str | None) -> str | None:
        if value:
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError("an http(s) URL")
        return value or None


class EndpointCreate(_EndpointFields):
    """A new inbound endpoint (``baton intake add``, ``POST /api/v1/intake/endpoints``)."""

    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={
            "examples": [
                {
                    "name": "contact-sales",
                    "kind": "generic",
                    "source": "website",
                    "campaign": "contact-page",
                    "event_type": "contact_sales",
                    "mapping": {
                        "email": "contact.email",
                        "first_name": "contact.first_name",
                        "company": "contact.company",
                        "attributes.employees": "company.size",
                        "properties.message": "message",
                        "upstream_id": "submission_id",
                        "occurred_at": "submitted_at",
                    },
                }
            ]
        },
    )

    name: str = Field(
        min_length=1,
        max_length=64,
        pattern=NAME_PATTERN,
        description="URL-safe: the endpoint answers at /hooks/{name}.",
    )
    kind: str = Field(description="Which adapter reads the requests: " + ", ".join(INTAKE_KINDS))
    source: str = Field(min_length=1, max_length=200)
    mapping: dict[str, Any] = Field(default_factory=dict)
    return_urls: list[str] = Field(default_factory=list, max_length=20)
    rate_per_minute: int = Field(DEFAULT_RATE_PER_MINUTE, ge=1, le=MAX_RATE_PER_MINUTE)
    max_body_bytes: int = Field(DEFAULT_MAX_BODY_BYTES, ge=256, le=MAX_BODY_LIMIT)
    active: bool = True

    @field_validator("name", mode="before")
    @classmethod
    def _name(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("kind")
    @classmethod
    def _kind(cls, value: str) -> str:
        value = value.strip().lower().replace("-", "_")
        if value not in INTAKE_KINDS:
            raise ValueError(f"unknown kind {value!r}; use one of {', '.join(INTAKE_KINDS)}")
        return value

    @model_validator(mode="after")
    def _mapping(self) -> EndpointCreate:
        problems = mapping_problems(self.kind, self.mapping)
        if problems:
            raise ValueError("; ".join(f"{where}: {message}" for where, message in problems))
        if self.kind == "web_to_lead" and not self.return_urls:
            raise ValueError("a web_to_lead endpoint needs at least one return URL")
        return self


class EndpointUpdate(_EndpointFields):
    """Changes to an endpoint (the mapping fix a retry then uses); absent fields stay."""

    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={
            "examples": [{"mapping": {"email": "contact.email_address", "upstream_id": "id"}}]
        },
    )


def default_event_type(kind: str, configured: str | None) -> str | None:
    """The activity a submission records when the payload does not say."""
    if configured:
        return configured
    return ActivityType.FORM_SUBMIT.value if kind in ("generic", "web_to_lead") else None


def honeypot_filled(body: bytes, content_type: str, field: str) -> bool:
    """Whether the hidden field a person never sees (bots fill every field) carries a
    value: a form field of an urlencoded body, or a top-level key of a JSON object (or
    of any object of a JSON array)."""
    kind = content_type.split(";")[0].strip().lower()
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    if kind == "application/x-www-form-urlencoded":
        return any(k == field and v.strip() for k, v in parse_qsl(text, keep_blank_values=True))
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        return False
    objects = data if isinstance(data, list) else [data]
    return any(
        isinstance(o, dict) and o.get(field) not in (None, "", [], {}) for o in objects[:1000]
    )


def allowed_return_url(wanted: str | None, allowed: list[str] | tuple[str, ...]) -> str | None:
    """Where a web form's visitor is sent: ``wanted`` (the form's ``retURL``) when it
    has the scheme and host of an allowed return URL and starts with its path, else
    the first allowed URL (never an open redirect)."""
    if wanted:
        target = urlsplit(wanted.strip())
        for url in allowed:
            base = urlsplit(url)
            if (
                target.scheme == base.scheme
                and (target.hostname or "") == (base.hostname or "")
                and target.port == base.port
                and (target.path or "/").startswith(base.path or "/")
                and not target.username
                and "\\" not in wanted
            ):
                return wanted.strip()
    return allowed[0] if allowed else None
