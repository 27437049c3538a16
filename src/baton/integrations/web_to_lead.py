"""Salesforce Web-to-Lead: an HTML form post, so an existing form points at Baton
unchanged (only its ``action`` changes).

The body is ``application/x-www-form-urlencoded`` (``multipart/form-data`` from script
is read too) with Salesforce's Lead field names: ``first_name``, ``last_name``,
``email``, ``company``, ``title``, ``phone``, ``mobile``, ``city``, ``state``, ``zip``,
``country``, ``url``, ``description``, ``lead_source``, ``Campaign_ID``... A repeated key
(a multi-select picklist) is joined with ``;`` as Salesforce stores it; a ticked checkbox
sends ``1``. Custom fields arrive under their 15-character ``00N...`` ids: the endpoint
mapping (posted name -> lead field, ``attributes.<name>`` or ``properties.<name>``) says
what each means; unmapped ones are kept in the activity's ``fields``. The mapping may also
re-target a standard name (``{"Campaign_ID": "attributes.sf_campaign"}``).

Consent: a ticked ``emailOptOut`` withdraws it; a box mapped to ``consent`` and ticked
is an opt-in (lawful basis ``consent``); either is recorded as given at the page that
posted the form (``Referer``), else ``web-to-lead form``.

Values longer than the ``maxlength`` Salesforce's generated form sets are refused naming
the field (the browser enforces it, so a longer value came from elsewhere). ``retURL``
is handed back in ``properties["return_url"]`` (the service redirects there when it is
one of the endpoint's return URLs). With a secret set, ``oid`` (the org id) must equal
it. A form post has no id of its own: its id is the body's digest, so a double submit or
a replay is recognized.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Mapping
from email.message import Message
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any
from urllib.parse import parse_qsl, unquote_plus

from baton.domain.errors import FieldProblem
from baton.domain.intake import (
    Delivery,
    EndpointConfig,
    IntakeItem,
    PayloadRefused,
    SignatureRefused,
)
from baton.integrations._common import (
    LEAD_FIELDS,
    Problems,
    body_id,
    item_event_type,
    put,
    refuse,
    same,
)

DEFAULT_EVENT_TYPE = "form_submit"

MAXLENGTH: dict[str, int] = {
    "first_name": 40,
    "last_name": 80,
    "email": 80,
    "company": 40,
    "city": 40,
    "state": 20,
    "title": 40,
    "url": 80,
    "phone": 40,
    "mobile": 40,
    "fax": 40,
    "zip": 20,
    "country": 40,
}
"""``maxlength`` of the standard inputs in the HTML Salesforce generates."""

STANDARD: dict[str, str] = {
    "first_name": "first_name",
    "last_name": "last_name",
    "email": "email",
    "company": "company",
    "title": "title",
    "phone": "phone",
    "mobile": "phone",
    "state": "region",
    "zip": "postal_code",
    "country": "country",
    "Campaign_ID": "campaign",
    "city": "attributes.city",
    "street": "attributes.street",
    "url": "attributes.website",
    "URL": "attributes.website",
    "salutation": "attributes.salutation",
    "industry": "attributes.industry",
    "rating": "attributes.rating",
    "revenue": "attributes.annual_revenue",
    "employees": "attributes.employees",
    "fax": "attributes.fax",
    "lead_source": "attributes.lead_source",
    "description": "properties.description",
    "member_status": "properties.member_status",
    "recordType": "properties.record_type",
}
"""Salesforce Lead field name -> lead field, attribute or activity property."""

HIDDEN = frozenset(
    {"oid", "orgid", "retURL", "captcha_settings", "debug", "debugEmail", "encoding"}
)
CHECKBOXES = frozenset({"emailOptOut", "faxOptOut", "doNotCall"})
_BAD_ESCAPE = re.compile(rb"%(?![0-9A-Fa-f]{2})")


def check_mapping(mapping: Mapping[str, Any]) -> list[FieldProblem]:
    """Keys are posted names (``00N...``), values lead fields / attributes. / properties."""
    problems: list[FieldProblem] = []
    for key, value in mapping.items():
        if not isinstance(key, str) or not key.strip():
            problems.append(FieldProblem("mapping", "a posted field name cannot be empty"))
        elif not isinstance(value, str) or not value.strip():
            problems.append(FieldProblem(f"mapping.{key}", "the target must be a field name"))
        elif value.startswith(("attributes.", "properties.")) and not value.split(".", 1)[1]:
            problems.append(FieldProblem(f"mapping.{key}", f"{value!r} names no key"))
    return problems


def _charset(delivery: Delivery) -> str:
    wanted = delivery.query.get("encoding") or "utf-8"
    match = re.search(r"charset=\"?([\w.-]+)", delivery.content_type or "", re.IGNORECASE)
    if match:
        wanted = match.group(1)
    try:
        return codecs.lookup(wanted).name
    except LookupError:
        raise refuse(
            "the form post names an unknown character encoding",
            [FieldProblem("encoding", f"{wanted!r} is not a character encoding")],
        ) from None


def _urlencoded(body: bytes, charset: str) -> list[tuple[str, str]]:
    """Pairs of a urlencoded body; a broken pair is a problem naming its field."""
    problems = Problems()
    pairs: list[tuple[str, str]] = []
    offset = 0
    for chunk in body.split(b"&"):
        start = offset
        offset += len(chunk) + 1
        if not chunk:
            continue
        raw_name = chunk.split(b"=", 1)[0]
        try:
            name = raw_name.decode("ascii", "replace").replace("+", " ")
        except UnicodeDecodeError:  # pragma: no cover - "replace" never raises
            name = "?"
        loc = name if name and "%" not in name else f"body[{start}]"
        bad = _BAD_ESCAPE.search(chunk)
        if bad is not None:
            end = start + bad.start()
            cut = (
                " (the body ends there: it was cut off in transit)"
                if offset - 1 >= len(body)
                else ""
            )
            escape = chunk[bad.start() : bad.start() + 3].decode("ascii", "replace")
            problems.add(loc, f"broken percent-escape {escape!r} at byte {end}{cut}")
            continue
        if b"=" not in chunk:
            problems.add(loc, "a form pair without '=' (not a form post?)")
            continue
        try:
            parsed = parse_qsl(
                chunk.decode("ascii"),
                keep_blank_values=True,
                strict_parsing=True,
                encoding=charset,
                errors="strict",
            )
        except UnicodeDecodeError:
            problems.add(loc, f"the value is not {charset} text")
            continue
        except ValueError as exc:
            problems.add(loc, f"cannot be read: {exc}")
            continue
        pairs.extend(parsed)
    problems.raise_if_any("the form post cannot be read")
    return pairs


def _multipart(body: bytes, content_type: str) -> list[tuple[str, str]]:
    message = BytesParser(policy=HTTP).parsebytes(
        f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode() + body
    )
    if not message.is_multipart():
        raise refuse(
            "the form post cannot be read",
            [FieldProblem("body", "multipart/form-data without parts (boundary?)")],
        )
    pairs: list[tuple[str, str]] = []
    for part in message.iter_parts():
        assert isinstance(part, Message)
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str) or part.get_filename():
            continue  # files are not lead fields
        payload = part.get_payload(decode=True)
        charset = part.get_content_charset() or "utf-8"
        if isinstance(payload, bytes):
            try:
                pairs.append((name, payload.decode(charset)))
            except (UnicodeDecodeError, LookupError):
                raise refuse(
                    "the form post cannot be read",
                    [FieldProblem(name, f"the value is not {charset} text")],
                ) from None
    return pairs


def form_pairs(delivery: Delivery) -> list[tuple[str, str]]:
    """The posted ``(name, value)`` pairs in form order."""
    content_type = (delivery.content_type or "").strip()
    if content_type.lower().startswith("multipart/form-data"):
        return _multipart(delivery.body, content_type)
    if content_type and not content_type.lower().startswith("application/x-www-form-urlencoded"):
        raise refuse(
            "a web_to_lead endpoint takes an HTML form post",
            [
                FieldProblem(
                    "content-type",
                    f"expected application/x-www-form-urlencoded, got {content_type[:80]!r}",
                )
            ],
        )
    if not delivery.body.strip():
        raise refuse("the form post is empty", [FieldProblem("body", "no fields")])
    return _urlencoded(delivery.body.strip(), _charset(delivery))


def _gathered(pairs: list[tuple[str, str]]) -> dict[str, str]:
    """One value per name, repeated names (multi-select picklists) joined with ';'."""
    values: dict[str, list[str]] = {}
    for name, value in pairs:
        values.setdefault(name, []).append(value)
    return {name: ";".join(v for v in found if v != "") for name, found in values.items()}


def _lenient(delivery: Delivery, wanted: str) -> str | None:
    """One field of a post, read leniently: also from a post that :func:`read` refuses
    (a body cut off after the field), so the browser still goes back to the site and a
    broken post from the right form is a 422, not a 401."""
    try:
        return _gathered(form_pairs(delivery)).get(wanted)
    except PayloadRefused:
        pass
    for chunk in delivery.body.split(b"&"):
        name, _, value = chunk.partition(b"=")
        if name.strip() == wanted.encode():
            try:
                return unquote_plus(value.decode("ascii"), errors="strict").strip() or None
            except (UnicodeDecodeError, ValueError):
                return None
    return None


def return_url(delivery: Delivery) -> str | None:
    """The form's ``retURL`` (read leniently)."""
    return _lenient(delivery, "retURL") or None


def verify(delivery: Delivery, endpoint: EndpointConfig) -> None:
    """With a secret set, the hidden ``oid`` (org id) must equal it."""
    if not endpoint.secret:
        return
    oid = _lenient(delivery, "oid") or ""
    if not oid:
        raise SignatureRefused("the form post has no oid (the endpoint expects its org id)")
    if not same(oid, endpoint.secret):
        raise SignatureRefused("the form's oid is not the org id this endpoint expects")


def _as_target(target: str, value: str) -> Any:
    if target == "consent":
        return value.strip().lower() in ("1", "true", "yes", "on")
    return value


def read(delivery: Delivery, endpoint: EndpointConfig) -> list[IntakeItem]:
    values = _gathered(form_pairs(delivery))
    problems = Problems()
    for name, limit in MAXLENGTH.items():
        value = values.get(name, "")
        if len(value) > limit:
            problems.add(
                name,
                f"{len(value)} characters, over the form's maxlength of {limit}"
                " (Salesforce's generated form never sends more)",
            )
    problems.raise_if_any("the form post breaks the form's limits")

    lead: dict[str, Any] = {}
    properties: dict[str, Any] = {}
    rest: dict[str, Any] = {}
    for name, value in values.items():
        if name in HIDDEN:
            continue
        mapped = endpoint.mapping.get(name)
        target = mapped if isinstance(mapped, str) and mapped else STANDARD.get(name)
        if name in CHECKBOXES and target is None:
            ticked = value.strip() in ("1", "true", "on")
            if name == "emailOptOut":
                if ticked:
                    lead["consent"] = False
            else:
                lead.setdefault("attributes", {})[_snake(name)] = ticked
            continue
        if value == "":
            continue
        if target is None:
            rest[name] = value
            continue
        if target == "phone" and lead.get("phone"):
            target = "attributes.mobile"
        put(lead, properties, target, _as_target(target, value))
    if rest:
        properties["fields"] = rest
    if values.get("retURL"):
        properties["return_url"] = values["retURL"]
    if lead.get("consent") is True:
        lead.setdefault("consent_basis", "consent")  # a ticked opt-in box
    if "consent" in lead:
        page = delivery.headers.get("referer") or "web-to-lead form"
        lead.setdefault("consent_source", page[:300])
    if not set(lead) & (LEAD_FIELDS - {"consent"}):
        problems.add("email", "the form post has no lead fields (is it a Web-to-Lead form?)")
    problems.raise_if_any("the form post cannot be read")
    return [
        IntakeItem(
            upstream_id=body_id(delivery, "post"),
            lead=lead,
            event_type=item_event_type(endpoint, DEFAULT_EVENT_TYPE),
            properties=properties,
        )
    ]


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z])(?=[A-Z])", "_", name).lower()


__all__ = ["check_mapping", "form_pairs", "read", "return_url", "verify"]
