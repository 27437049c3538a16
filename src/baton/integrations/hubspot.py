"""HubSpot: Forms API v3 submissions and contact webhooks.

Two bodies arrive at a ``hubspot`` endpoint:

* a **Forms API v3 submission** (an object with ``fields[]`` of ``{name, value}``,
  ``context`` with ``pageUri``/``hutk``, ``legalConsentOptions``), the body a site posts
  to HubSpot's submit endpoint, pointed at Baton instead (or as well). Standard contact
  properties fill the lead (``email``, ``firstname``, ``lastname``, ``company``,
  ``jobtitle``, ``phone``, ``country``, ``state``, ``zip``...); the mapping (lead field ->
  property name) adds or overrides; every other field is kept in the activity's
  ``fields``. Values are read as HubSpot sends them: a date property is an epoch-ms
  number at midnight UTC (kept as ``YYYY-MM-DD``), a multi-checkbox is one
  ``;``-joined string (kept as a list when the parts have no spaces around them), a
  checkbox is ``"true"``/``"false"`` (kept as a boolean). Marketing consent is the
  ``communications`` answers (any ticked -> consent, lawful basis ``consent``; else a
  ``legitimateInterest`` with ``value: true`` -> basis ``legitimate_interest``), given
  at ``context.pageUri`` (``consent_source``); ``consentToProcess`` is kept in
  the properties. UTM parameters come from ``context.pageUri``. A submission carries no
  id of its own: its id is the body's digest (a replay is recognized).
* a **contact-webhook batch** (a JSON array of events, up to 100). Events carry ids only:
  each ``contact.creation`` / ``contact.propertyChange`` becomes an item that must be
  completed from the CRM (``fetch=FetchRequest("hubspot", objectId)``, then
  :func:`read_fetched`); its id is the ``eventId``. Other contact events HubSpot sends
  (deletion, merge, association, restore) are skipped by name; an unknown
  ``subscriptionType`` refuses the batch naming the event.

Signature: with a secret set (the app's client secret), ``X-HubSpot-Signature-v3`` must
be ``base64(HMAC-SHA256(secret, method + URI + body + timestamp))`` and
``X-HubSpot-Request-Timestamp`` (epoch ms) within 5 minutes of the receipt.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from baton.domain.errors import FieldProblem
from baton.domain.intake import (
    Delivery,
    EndpointConfig,
    FetchRequest,
    IntakeItem,
    PayloadRefused,
    SignatureRefused,
)
from baton.integrations._common import (
    Problems,
    b64,
    body_id,
    check_targets,
    check_timestamp,
    from_epoch_ms,
    from_iso,
    header,
    hmac_sha256,
    item_event_type,
    join,
    parse_json,
    put,
    refuse,
    same,
    utm_of_page,
)

DEFAULT_FORM_EVENT_TYPE = "form_submit"
SIGNATURE_HEADER = "X-HubSpot-Signature-v3"
TIMESTAMP_HEADER = "X-HubSpot-Request-Timestamp"

STANDARD: dict[str, str] = {
    "email": "email",
    "firstname": "first_name",
    "lastname": "last_name",
    "company": "company",
    "jobtitle": "title",
    "phone": "phone",
    "mobilephone": "phone",
    "country": "country",
    "state": "region",
    "zip": "postal_code",
    "utm_source": "utm_source",
    "utm_medium": "utm_medium",
    "utm_campaign": "utm_campaign",
    "utm_term": "utm_term",
    "utm_content": "utm_content",
    "city": "attributes.city",
    "website": "attributes.website",
    "industry": "attributes.industry",
    "numemployees": "attributes.employees",
}
"""HubSpot contact property -> lead field (or attribute)."""

PROPERTIES: tuple[str, ...] = (
    *STANDARD,
    "lifecyclestage",
    "hs_lead_status",
    "hs_analytics_source",
    "createdate",
)
"""Contact properties to ask the CRM for (``?properties=``); add the mapping's."""

CONTACT_EVENTS = ("contact.creation", "contact.propertyChange")
SKIPPED_EVENTS = frozenset(
    {
        "contact.deletion",
        "contact.privacyDeletion",
        "contact.merge",
        "contact.associationChange",
        "contact.restore",
    }
)

_URI_DECODE = {
    "%3A": ":",
    "%2F": "/",
    "%3F": "?",
    "%40": "@",
    "%21": "!",
    "%24": "$",
    "%27": "'",
    "%28": "(",
    "%29": ")",
    "%2A": "*",
    "%2C": ",",
    "%3B": ";",
}
_DAY_MS = 86_400_000


def signed_uri(url: str) -> str:
    """The URI as HubSpot signs it: the listed percent-escapes decoded."""
    out = url
    for escape, char in _URI_DECODE.items():
        out = out.replace(escape, char).replace(escape.lower(), char)
    return out


def signature_v3(secret: str, method: str, url: str, body: bytes, timestamp: str) -> str:
    """The ``X-HubSpot-Signature-v3`` value of a request (tests sign with it too)."""
    message = method.upper().encode() + signed_uri(url).encode() + body + timestamp.encode()
    return b64(hmac_sha256(secret, message))


def verify(delivery: Delivery, endpoint: EndpointConfig) -> None:
    if not endpoint.secret:
        return
    given = header(delivery, SIGNATURE_HEADER)
    stamp = header(delivery, TIMESTAMP_HEADER)
    if not given or not stamp:
        raise SignatureRefused(
            f"missing {SIGNATURE_HEADER} or {TIMESTAMP_HEADER} header (the endpoint has a secret)"
        )
    if not stamp.strip().isdigit():
        raise SignatureRefused(f"{TIMESTAMP_HEADER} is not epoch milliseconds")
    check_timestamp(int(stamp.strip()) / 1000, delivery, TIMESTAMP_HEADER)
    expected = signature_v3(
        endpoint.secret, delivery.method, delivery.url, delivery.body, stamp.strip()
    )
    if not same(given.strip(), expected):
        raise SignatureRefused(
            f"{SIGNATURE_HEADER} does not match the request signed with the endpoint's secret"
        )


def check_mapping(mapping: Mapping[str, Any]) -> list[FieldProblem]:
    """Keys are lead fields (or attributes./properties.), values HubSpot property names."""
    return check_targets(mapping, targets_are_keys=True)


def _an_id(value: Any) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and value.strip().isdigit():
        return value.strip()
    return None


def _field_value(value: Any) -> Any:
    """A form field's value as HubSpot means it."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        if isinstance(value, int) and value % _DAY_MS == 0 and 0 < value < 7_258_118_400_000:
            return datetime.fromtimestamp(value / 1000, UTC).date().isoformat()
        return value
    if isinstance(value, str):
        if value in ("true", "false"):
            return value == "true"
        if ";" in value:
            parts = value.split(";")
            if all(p and p == p.strip() for p in parts):
                return parts
    return value


def _lead_value(value: Any) -> Any:
    return ";".join(str(x) for x in value) if isinstance(value, list) else value


def _fill(
    lead: dict[str, Any],
    properties: dict[str, Any],
    found: Mapping[str, Any],
    mapping: Mapping[str, Any],
) -> set[str]:
    """Lead fields from HubSpot property values: the mapping first, then the standard
    names; returns the names used."""
    used: set[str] = set()
    for target, source in mapping.items():
        if isinstance(source, str) and source in found and found[source] is not None:
            value = found[source]
            keep = target.startswith(("attributes.", "properties."))
            put(lead, properties, target, value if keep else _lead_value(value))
            used.add(source)
    for name, target in STANDARD.items():
        if name in found and name not in used and found[name] not in (None, ""):
            value = found[name]
            keep = target.startswith("attributes.")
            put(lead, properties, target, value if keep else _lead_value(value))
            used.add(name)
    return used


def _read_form(body: Mapping[str, Any], delivery: Delivery, endpoint: EndpointConfig) -> IntakeItem:
    problems = Problems()
    fields = body.get("fields")
    found: dict[str, Any] = {}
    if not isinstance(fields, list):
        problems.expected("fields", "an array of {name, value}", fields)
        fields = []
    for index, field in enumerate(fields):
        loc = join("fields", index)
        if not isinstance(field, Mapping):
            problems.expected(loc, "an object {name, value}", field)
            continue
        name = field.get("name")
        if not isinstance(name, str) or not name:
            problems.expected(join(loc, "name"), "a property name", name)
            continue
        value = field.get("value")
        if value is not None and not isinstance(value, str | int | float | bool):
            problems.expected(join(loc, "value"), "a text, number or boolean", value)
            continue
        value = _field_value(value)
        if name in found and value is not None:  # a repeated field: HubSpot joins with ';'
            before = found[name]
            found[name] = (before if isinstance(before, list) else [before]) + (
                value if isinstance(value, list) else [value]
            )
        else:
            found[name] = value
    submitted = body.get("submittedAt")
    occurred = from_epoch_ms(submitted) if submitted is not None else None
    if submitted is not None and occurred is None:
        problems.expected("submittedAt", "epoch milliseconds", submitted)
    context = body.get("context") or {}
    if not isinstance(context, Mapping):
        problems.expected("context", "an object", context)
        context = {}
    problems.raise_if_any("the HubSpot form submission cannot be read")

    lead: dict[str, Any] = {}
    properties: dict[str, Any] = {}
    used = _fill(lead, properties, found, endpoint.mapping)
    if not lead.get("email") and not lead.get("phone"):
        email_source = endpoint.mapping.get("email", "email")
        raise refuse(
            "the HubSpot form submission names no contact",
            [
                FieldProblem(
                    "fields",
                    f"no field named {email_source!r}: HubSpot identifies a contact by its "
                    "email, so the submission cannot be matched to or create a lead",
                )
            ],
        )
    page = context.get("pageUri") if isinstance(context.get("pageUri"), str) else None
    for key, value in utm_of_page(page).items():
        lead.setdefault(key, value)
    rest = {name: value for name, value in found.items() if name not in used}
    if rest:
        properties["fields"] = rest
    for key, name in (
        ("pageUri", "page_uri"),
        ("pageName", "page_name"),
        ("hutk", "hutk"),
        ("ipAddress", "ip_address"),
        ("sfdcCampaignId", "sfdc_campaign_id"),
        ("pageId", "page_id"),
    ):
        if isinstance(context.get(key), str) and context[key]:
            properties[name] = context[key]
    consent = body.get("legalConsentOptions")
    if isinstance(consent, Mapping):
        detail = consent.get("consent")
        if isinstance(detail, Mapping):
            if isinstance(detail.get("consentToProcess"), bool):
                properties["consent_to_process"] = detail["consentToProcess"]
            if isinstance(detail.get("text"), str):
                properties["consent_text"] = detail["text"]
            communications = detail.get("communications")
            if isinstance(communications, list):
                answers = [
                    c
                    for c in communications
                    if isinstance(c, Mapping) and isinstance(c.get("value"), bool)
                ]
                if answers:
                    lead.setdefault("consent", any(c["value"] for c in answers))
                    if lead["consent"] is True:
                        lead.setdefault("consent_basis", "consent")
                    properties["communications"] = [
                        {
                            "subscription_type_id": c.get("subscriptionTypeId"),
                            "value": c["value"],
                            "text": c.get("text"),
                        }
                        for c in answers
                    ]
        legitimate = consent.get("legitimateInterest")
        if isinstance(legitimate, Mapping):
            properties["legitimate_interest"] = dict(legitimate)
            if legitimate.get("value") is True and lead.get("consent") is not False:
                lead.setdefault("consent_basis", "legitimate_interest")
        if "consent" in lead or "consent_basis" in lead:
            lead.setdefault("consent_source", (page or "hubspot form")[:300])
    return IntakeItem(
        upstream_id=body_id(delivery, "form"),
        lead=lead,
        event_type=item_event_type(endpoint, DEFAULT_FORM_EVENT_TYPE),
        occurred_at=occurred,
        properties=properties,
    )


def _read_events(events: list[Any], endpoint: EndpointConfig) -> list[IntakeItem]:
    problems = Problems()
    items: list[IntakeItem] = []
    for index, event in enumerate(events):
        loc = f"[{index}]"
        if not isinstance(event, Mapping):
            problems.expected(loc, "an event object", event)
            continue
        key = "subscriptionType" if "subscriptionType" in event else "eventType"
        kind = event.get(key)
        if not isinstance(kind, str):
            problems.expected(f"{loc}.subscriptionType", "an event type", kind)
            continue
        if kind in SKIPPED_EVENTS:
            continue
        if kind not in CONTACT_EVENTS:
            problems.add(
                f"{loc}.{key}",
                f"unknown event {kind!r}: a hubspot endpoint reads "
                f"{', '.join(CONTACT_EVENTS)} (and skips {', '.join(sorted(SKIPPED_EVENTS))});"
                " subscribe the app to contact events only",
            )
            continue
        object_id = _an_id(event.get("objectId"))
        if object_id is None:
            problems.expected(f"{loc}.objectId", "a contact id", event.get("objectId"))
        event_id = _an_id(event.get("eventId"))
        if event_id is None:
            problems.expected(f"{loc}.eventId", "an event id", event.get("eventId"))
        if object_id is None or event_id is None:
            continue
        properties: dict[str, Any] = {"hubspot_event": kind, "object_id": object_id}
        for name, out in (
            ("propertyName", "property_name"),
            ("propertyValue", "property_value"),
            ("changeSource", "change_source"),
            ("portalId", "portal_id"),
            ("subscriptionId", "subscription_id"),
            ("attemptNumber", "attempt_number"),
        ):
            if event.get(name) is not None:
                properties[out] = event[name]
        items.append(
            IntakeItem(
                upstream_id=event_id,
                event_type=item_event_type(endpoint, None),
                occurred_at=from_epoch_ms(event.get("occurredAt")),
                properties=properties,
                fetch=FetchRequest("hubspot", object_id),
                raw=dict(event),
            )
        )
    problems.raise_if_any("the HubSpot webhook batch cannot be read")
    return items


def read(delivery: Delivery, endpoint: EndpointConfig) -> list[IntakeItem]:
    body = parse_json(delivery, "HubSpot")
    if isinstance(body, list):
        if not body:
            raise refuse("the HubSpot webhook batch is empty", [FieldProblem("body", "no events")])
        return _read_events(body, endpoint)
    if isinstance(body, Mapping):
        if "fields" in body:
            return [_read_form(body, delivery, endpoint)]
        if "subscriptionType" in body or "eventType" in body:
            return _read_events([body], endpoint)
    raise refuse(
        "the HubSpot request is neither a form submission nor a webhook batch",
        [
            FieldProblem(
                "body",
                "expected an object with fields[] (Forms API v3) or an array of webhook events",
            )
        ],
    )


def read_fetched(record: Mapping[str, Any], endpoint: EndpointConfig) -> IntakeItem:
    """A CRM v3 contact (``GET /crm/v3/objects/contacts/{id}``) as an item: the lead's
    fields from its properties; the contact id becomes the lead's external id in system
    ``hubspot``. The caller keeps the webhook item's upstream id and properties."""
    problems = Problems()
    contact_id = _an_id(record.get("id")) if isinstance(record, Mapping) else None
    if contact_id is None:
        problems.expected(
            "id", "a contact id", record.get("id") if isinstance(record, Mapping) else record
        )
    found = record.get("properties") if isinstance(record, Mapping) else None
    if not isinstance(found, Mapping):
        problems.expected("properties", "an object of contact properties", found)
    problems.raise_if_any("the HubSpot contact cannot be read")
    assert isinstance(found, Mapping) and contact_id is not None
    values = {k: v for k, v in found.items() if isinstance(k, str)}
    lead: dict[str, Any] = {}
    properties: dict[str, Any] = {}
    used = _fill(lead, properties, values, endpoint.mapping)
    lead["external_system"] = "hubspot"
    lead["external_id"] = contact_id
    page = values.get("hs_analytics_first_url")
    for key, value in utm_of_page(page if isinstance(page, str) else None).items():
        lead.setdefault(key, value)
    rest = {
        k: v
        for k, v in values.items()
        if k not in used and v not in (None, "") and k not in ("hs_object_id",)
    }
    if rest:
        properties["contact"] = rest
    properties["hubspot_contact_id"] = contact_id
    return IntakeItem(
        upstream_id=f"contact:{contact_id}",
        lead=lead,
        event_type=item_event_type(endpoint, None),
        occurred_at=from_iso(record.get("createdAt")),
        properties=properties,
        raw=dict(record),
    )


__all__ = [
    "PROPERTIES",
    "PayloadRefused",
    "check_mapping",
    "read",
    "read_fetched",
    "signature_v3",
    "verify",
]
