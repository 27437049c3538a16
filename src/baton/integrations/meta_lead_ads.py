"""Meta (Facebook and Instagram) lead ads.

The Page webhook (``object: page``, ``entry[].changes[]`` with ``field: leadgen``)
carries only ids: each change becomes an item that must be completed from the Graph API
(``fetch=FetchRequest("meta", leadgen_id)``; the fetch job reads ``GET /<leadgen_id>``
with the endpoint's page token and hands the body to :func:`read_fetched`). Ids arrive
as JSON numbers or numeric strings and are kept as strings. Changes of other fields are
skipped.

The fetched lead's ``field_data`` is ``[{name, values: [text]}]``. Prefill questions
have fixed names (``full_name``, ``first_name``, ``last_name``, ``email``,
``phone_number``, ``company_name``, ``job_title``, ``country``, ``state``,
``zip_code``...); custom questions use the key set in the form: the mapping (question key
-> lead field, ``attributes.<name>`` or ``properties.<name>``) says where each goes, and
an unmapped one becomes a lead attribute under its key.

The endpoint's secret is the app secret: ``X-Hub-Signature-256: sha256=<hex HMAC(app
secret, body)>`` is checked on every POST, and the same text is the verify token Meta
sends in the ``GET`` subscribe handshake (:func:`challenge`).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from baton.domain.errors import FieldProblem
from baton.domain.intake import (
    Delivery,
    EndpointConfig,
    FetchRequest,
    IntakeItem,
    SignatureRefused,
)
from baton.integrations._common import (
    Problems,
    check_targets,
    from_iso,
    header,
    item_event_type,
    join,
    parse_json,
    put,
    refuse,
    same,
    split_name,
)

DEFAULT_EVENT_TYPE = "form_submit"
SIGNATURE_HEADER = "X-Hub-Signature-256"

FIELDS = (
    "id,created_time,ad_id,ad_name,adset_id,campaign_id,campaign_name,form_id,is_organic,"
    "platform,field_data"
)
"""The ``?fields=`` of the Graph API read of one lead."""

PREFILL: dict[str, str] = {
    "email": "email",
    "work_email": "email",
    "phone_number": "phone",
    "work_phone_number": "phone",
    "first_name": "first_name",
    "last_name": "last_name",
    "company_name": "company",
    "job_title": "title",
    "country": "country",
    "state": "region",
    "province": "region",
    "zip_code": "postal_code",
    "post_code": "postal_code",
    "city": "attributes.city",
    "street_address": "attributes.street",
    "date_of_birth": "attributes.date_of_birth",
    "gender": "attributes.gender",
}
"""Meta's prefill question names -> lead fields (``full_name`` is split)."""


def signature(secret: str, body: bytes) -> str:
    """The ``X-Hub-Signature-256`` value of a body (tests sign with it too)."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(delivery: Delivery, endpoint: EndpointConfig) -> None:
    if not endpoint.secret or delivery.method.upper() == "GET":
        return
    given = header(delivery, SIGNATURE_HEADER)
    if not given:
        raise SignatureRefused(f"missing {SIGNATURE_HEADER} header (the endpoint has a secret)")
    if not same(given.strip().lower(), signature(endpoint.secret, delivery.body)):
        raise SignatureRefused(
            f"{SIGNATURE_HEADER} does not match the body signed with the endpoint's app secret"
        )


def challenge(delivery: Delivery, endpoint: EndpointConfig) -> str | None:
    """Meta's subscribe handshake: ``hub.mode=subscribe`` with the right
    ``hub.verify_token`` answers ``hub.challenge``; anything else (no or another mode,
    a wrong token, no challenge, an endpoint without a secret) is ``None``, which the
    route answers with a 403."""
    token = delivery.query.get("hub.verify_token") or ""
    answer = delivery.query.get("hub.challenge") or ""
    if delivery.query.get("hub.mode") != "subscribe" or not answer or not endpoint.secret:
        return None
    return answer if same(token, endpoint.secret) else None


def check_mapping(mapping: Mapping[str, Any]) -> list[FieldProblem]:
    """Keys are question keys, values lead fields / attributes. / properties."""
    return check_targets(mapping, targets_are_keys=False)


def _an_id(value: Any) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and value > 0:
        return str(value)
    if isinstance(value, str) and value.strip().isdigit():
        return value.strip()
    return None


def read(delivery: Delivery, endpoint: EndpointConfig) -> list[IntakeItem]:
    body = parse_json(delivery, "Meta")
    problems = Problems()
    if not isinstance(body, Mapping):
        problems.expected("body", "a webhook object", body)
        problems.raise_if_any("the Meta request is not a webhook")
        raise AssertionError  # unreachable
    if "field_data" in body:
        return [read_fetched(body, endpoint)]  # a lead body posted as-is (a relay)
    if "object" not in body and isinstance(body.get("data"), list):
        return read_fetched_page(body, endpoint)  # a relay posting a GET /<form_id>/leads page
    if body.get("object") != "page":
        problems.expected("object", '"page" (a Page leadgen subscription)', body.get("object"))
    entries = body.get("entry")
    if not isinstance(entries, list):
        problems.expected("entry", "an array", entries)
        entries = []
    items: list[IntakeItem] = []
    for e, entry in enumerate(entries):
        loc = join("entry", e)
        if not isinstance(entry, Mapping):
            problems.expected(loc, "an object", entry)
            continue
        changes = entry.get("changes")
        if not isinstance(changes, list):
            problems.expected(join(loc, "changes"), "an array", changes)
            continue
        for c, change in enumerate(changes):
            where = join(join(loc, "changes"), c)
            if not isinstance(change, Mapping):
                problems.expected(where, "an object", change)
                continue
            if change.get("field") != "leadgen":
                continue
            value = change.get("value")
            if not isinstance(value, Mapping):
                problems.expected(join(where, "value"), "an object", value)
                continue
            if "leadgen_id" not in value:
                problems.missing(
                    join(join(where, "value"), "leadgen_id"),
                    "without it there is no lead to fetch from the Graph API",
                )
                continue
            lead_id = _an_id(value.get("leadgen_id"))
            if lead_id is None:
                problems.expected(
                    join(join(where, "value"), "leadgen_id"), "a numeric id", value["leadgen_id"]
                )
                continue
            properties: dict[str, Any] = {"leadgen_id": lead_id}
            for key in ("page_id", "form_id", "ad_id", "adgroup_id"):
                found = _an_id(value.get(key))
                if found is not None:
                    properties[key] = found
            created = value.get("created_time")
            occurred = None
            if isinstance(created, int) and not isinstance(created, bool):
                try:
                    occurred = datetime.fromtimestamp(created, UTC)
                except (OverflowError, OSError, ValueError):
                    occurred = None
            items.append(
                IntakeItem(
                    upstream_id=lead_id,
                    event_type=item_event_type(endpoint, DEFAULT_EVENT_TYPE),
                    occurred_at=occurred,
                    properties=properties,
                    fetch=FetchRequest("meta", lead_id),
                    raw=dict(value),
                )
            )
    problems.raise_if_any("the Meta leadgen webhook cannot be read")
    return items


def read_fetched(lead: Mapping[str, Any], endpoint: EndpointConfig, loc: str = "") -> IntakeItem:
    """A Graph API lead (``GET /<leadgen_id>``) as an item: prefill answers fill the lead,
    custom answers go where the mapping says (else into the lead's attributes)."""
    problems = Problems()
    if not isinstance(lead, Mapping):
        problems.expected(loc or "body", "a lead object", lead)
        problems.raise_if_any("the Meta lead cannot be read")
        raise AssertionError  # unreachable
    lead_id = _an_id(lead.get("id"))
    if lead_id is None:
        problems.expected(join(loc, "id"), "the lead's id", lead.get("id"))
    data = lead.get("field_data")
    if not isinstance(data, list):
        problems.expected(join(loc, "field_data"), "an array of {name, values}", data)
        data = []
    answers: dict[str, list[str]] = {}
    for index, entry in enumerate(data):
        where = join(join(loc, "field_data"), index)
        if not isinstance(entry, Mapping):
            problems.expected(where, "an object {name, values}", entry)
            continue
        name = entry.get("name")
        if not isinstance(name, str) or not name:
            problems.expected(join(where, "name"), "a question key", name)
            continue
        values = entry.get("values")
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            problems.expected(join(where, "values"), "an array of texts", values)
            continue
        answers[name] = list(values)
    created = lead.get("created_time")
    occurred = from_iso(created)
    if created is not None and occurred is None:
        problems.expected(
            join(loc, "created_time"), "an ISO time such as 2025-11-05T07:12:44+0000", created
        )
    problems.raise_if_any("the Meta lead cannot be read")
    assert lead_id is not None

    fields: dict[str, Any] = {}
    properties: dict[str, Any] = {}
    for name, values in answers.items():
        text = ";".join(v for v in values if v.strip())
        if not text:
            continue
        mapped = endpoint.mapping.get(name)
        if isinstance(mapped, str) and mapped:
            put(fields, properties, mapped, text)
        elif name == "full_name":
            first, last = split_name(text)
            if first and not fields.get("first_name"):
                fields["first_name"] = first
            if last and not fields.get("last_name"):
                fields["last_name"] = last
        elif name in PREFILL:
            put(fields, properties, PREFILL[name], text)
        else:
            fields.setdefault("attributes", {})[name] = values[0] if len(values) == 1 else values
    for key in (
        "ad_id",
        "ad_name",
        "adset_id",
        "campaign_id",
        "campaign_name",
        "form_id",
        "platform",
    ):
        if isinstance(lead.get(key), str | int) and not isinstance(lead.get(key), bool):
            properties[key] = str(lead[key])
    if isinstance(lead.get("is_organic"), bool):
        properties["is_organic"] = lead["is_organic"]
    properties["leadgen_id"] = lead_id
    return IntakeItem(
        upstream_id=lead_id,
        lead=fields,
        event_type=item_event_type(endpoint, DEFAULT_EVENT_TYPE),
        occurred_at=occurred,
        properties=properties,
        raw=dict(lead),
    )


def read_fetched_page(body: Mapping[str, Any], endpoint: EndpointConfig) -> list[IntakeItem]:
    """A bulk read (``GET /<form_id>/leads``: ``{data: [...], paging}``) as items."""
    data = body.get("data") if isinstance(body, Mapping) else None
    if not isinstance(data, list):
        raise refuse(
            "the Meta leads page cannot be read",
            [FieldProblem("data", "expected an array of leads")],
        )
    return [read_fetched(lead, endpoint, join("data", i)) for i, lead in enumerate(data)]


__all__ = [
    "FIELDS",
    "challenge",
    "check_mapping",
    "read",
    "read_fetched",
    "read_fetched_page",
    "signature",
    "verify",
]
