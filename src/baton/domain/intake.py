"""Inbound submissions: what an adapter reads out of a platform's request.

Every inbound channel (a form tool's webhook, an ad platform's lead form, a calendar
booking, an HTML form post, an email) is read by a pure adapter in
:mod:`baton.integrations` into :class:`IntakeItem` values: the person (lead fields),
what they did (an activity type, when, with which details) and the platform's own id
for the submission, so a replayed delivery is recognized. The service layer stores the
raw request first, then turns items into captures and activities; adapters never touch
the database or the network, so each is tested on the platforms' documented payloads.

A request an adapter cannot read raises :class:`PayloadRefused` with field-level
problems (the request stays in the intake log with that error); a request whose
signature or key does not match raises :class:`SignatureRefused`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from baton.domain.errors import FieldProblem, Unauthorized, ValidationFailed

IntakeKind = Literal[
    "generic",
    "typeform",
    "hubspot",
    "web_to_lead",
    "meta_lead_ads",
    "google_ads_lead_form",
    "calendly",
    "email",
]
INTAKE_KINDS: tuple[str, ...] = (
    "generic",
    "typeform",
    "hubspot",
    "web_to_lead",
    "meta_lead_ads",
    "google_ads_lead_form",
    "calendly",
    "email",
)

FetchPlatform = Literal["meta", "hubspot"]


@dataclass(frozen=True)
class Delivery:
    """One inbound request as received: the exact body bytes, its content type, the
    headers (names lower-cased), the query string, the method and the full URL as the
    sender addressed it (HubSpot signs method + URL + body)."""

    body: bytes
    content_type: str
    headers: Mapping[str, str]
    query: Mapping[str, str]
    received_at: datetime
    method: str = "POST"
    url: str = ""


@dataclass(frozen=True)
class EndpointConfig:
    """What an adapter needs to know about the endpoint that received a request."""

    name: str
    kind: str
    source: str
    campaign: str | None = None
    event_type: str | None = None
    """Activity type a submission records (``demo_request`` for a "contact sales"
    form); ``None``: the adapter's default for its kind."""
    mapping: Mapping[str, Any] = field(default_factory=dict)
    """Kind-specific field mapping: for ``generic``, lead field -> dot path; for
    ``typeform``, lead field -> answer ref; for ``web_to_lead``, custom ``00N...`` id
    -> attribute name; for ad forms, question key -> lead field or attribute."""
    secret: str | None = field(default=None, repr=False)  # never in a log or traceback
    return_urls: tuple[str, ...] = ()
    honeypot_field: str | None = None


@dataclass(frozen=True)
class FetchRequest:
    """The full record to read from the platform before the item can be processed
    (the webhook carried only ids)."""

    platform: FetchPlatform
    object_id: str


@dataclass
class IntakeItem:
    """One submission read from a request.

    ``lead`` holds :class:`baton.domain.leads.LeadCreate` fields (``email``, ``phone``,
    ``first_name``, ``company``, ``utm_source``, ``attributes``, ``consent``...), not
    yet validated: the service validates them and stores field errors on the item.
    ``event_type`` is the activity recorded besides the capture (``None``: capture
    only). ``properties`` are the activity's details (answers, page, meeting time).
    ``fetch`` is set when the item must be completed from the platform first.
    """

    upstream_id: str | None
    lead: dict[str, Any] = field(default_factory=dict)
    event_type: str | None = None
    occurred_at: datetime | None = None
    properties: dict[str, Any] = field(default_factory=dict)
    fetch: FetchRequest | None = None
    raw: Any = None


class PayloadRefused(ValidationFailed):
    """The request cannot be read (broken body, wrong shape, a required field
    missing): a 4xx naming the field; the raw request stays in the log."""

    def __init__(self, message: str, problems: list[FieldProblem] | None = None) -> None:
        super().__init__(message, problems or [])


class SignatureRefused(Unauthorized):
    """The request's signature or key does not match the endpoint's secret (401); the
    detail never echoes what was expected."""
