"""What the platform adapters share: reading a JSON body into field-level problems,
describing a wrong value without echoing too much of it, checking HMAC signatures in
constant time, mapping targets (a lead field, ``attributes.x`` or ``properties.x``),
and the small conversions several platforms need (epoch times, full names, UTM
parameters in a page address).

Pure: no I/O. A problem's ``loc`` is the path of the offending value in the body
(``form_response.answers[11].number``) so the person fixing a form knows where to look.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from baton.domain.errors import FieldProblem
from baton.domain.intake import Delivery, EndpointConfig, PayloadRefused, SignatureRefused
from baton.domain.leads import LeadCreate

LEAD_FIELDS: frozenset[str] = frozenset(LeadCreate.model_fields) - {"attributes"}
"""Names a mapping may target directly (``email``, ``company``, ``utm_source``...)."""

UTM_FIELDS: tuple[str, ...] = (
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "utm_term",
    "utm_content",
)

SIGNATURE_TOLERANCE = timedelta(minutes=5)
"""How far a signed timestamp may be from the time Baton received the request."""

_SHOWN = 40


def describe(value: Any) -> str:
    """A wrong value in words: ``the string "about 35"``, ``an object``, ``null``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "the boolean " + ("true" if value else "false")
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, str):
        shown = value if len(value) <= _SHOWN else value[: _SHOWN - 3] + "..."
        return "the string " + json.dumps(shown, ensure_ascii=False)
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list):
        return "an array"
    return type(value).__name__


def refuse(message: str, problems: Iterable[FieldProblem]) -> PayloadRefused:
    """The error for a body that cannot be read (the detail lists the first problems)."""
    listed = list(problems)
    shown = "; ".join(f"{p.loc}: {p.message}" for p in listed[:3])
    more = f" (and {len(listed) - 3} more)" if len(listed) > 3 else ""
    return PayloadRefused(f"{message}: {shown}{more}" if listed else message, listed)


class Problems:
    """Collects every problem of a body, so one 422 names all of them."""

    def __init__(self) -> None:
        self.items: list[FieldProblem] = []

    def add(self, loc: str, message: str) -> None:
        self.items.append(FieldProblem(loc=loc or "body", message=message))

    def expected(self, loc: str, what: str, value: Any) -> None:
        self.add(loc, f"expected {what}, got {describe(value)}")

    def missing(self, loc: str, why: str = "") -> None:
        self.add(loc, "missing" + (f": {why}" if why else ""))

    def raise_if_any(self, message: str) -> None:
        if self.items:
            raise refuse(message, self.items)


def join(loc: str, key: str | int) -> str:
    """``loc`` extended by a key (``a.b``) or an index (``a[3]``)."""
    if isinstance(key, int):
        return f"{loc}[{key}]"
    return f"{loc}.{key}" if loc else key


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def parse_json(delivery: Delivery, platform: str) -> Any:
    """The JSON value of the body, or :class:`PayloadRefused` saying where it breaks
    (a body cut off in transit says so)."""
    body = delivery.body
    if not body.strip():
        raise refuse(f"the {platform} request has an empty body", [FieldProblem("body", "empty")])
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise refuse(
            f"the {platform} request body is not UTF-8 text",
            [FieldProblem("body", f"byte {exc.start} is not UTF-8")],
        ) from None
    try:
        return json.loads(text, parse_constant=_no_constants)
    except json.JSONDecodeError as exc:
        end = len(text.rstrip())
        if exc.pos >= end or exc.msg.startswith("Unterminated string"):
            message = (
                f"the JSON ends early ({exc.msg.lower()}: character {exc.pos} of {end}): "
                "the body looks truncated (cut off in transit?)"
            )
        else:
            message = (
                f"not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno} "
                f"(character {exc.pos})"
            )
        raise refuse(
            f"the {platform} request body is not JSON", [FieldProblem("body", message)]
        ) from None
    except (ValueError, RecursionError) as exc:
        message = str(exc) if isinstance(exc, ValueError) else "nested too deeply"
        raise refuse(
            f"the {platform} request body is not JSON", [FieldProblem("body", message)]
        ) from None


def header(delivery: Delivery, name: str) -> str | None:
    """A request header by name (any case), ``None`` when absent."""
    wanted = name.lower()
    for key, value in delivery.headers.items():
        if key.lower() == wanted:
            return value
    return None


def hmac_sha256(secret: str, message: bytes) -> bytes:
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).digest()


def same(given: str | bytes, expected: str | bytes) -> bool:
    """Constant-time comparison (text compared as UTF-8)."""
    left = given.encode("utf-8") if isinstance(given, str) else given
    right = expected.encode("utf-8") if isinstance(expected, str) else expected
    return hmac.compare_digest(left, right)


def b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode("ascii")


def check_timestamp(seconds: float, delivery: Delivery, header_name: str) -> None:
    """A signed timestamp must be within :data:`SIGNATURE_TOLERANCE` of the receipt (a
    replayed old request is refused even with a right signature)."""
    try:
        signed = datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        raise SignatureRefused(f"{header_name} is not a time") from None
    received = delivery.received_at
    if received.tzinfo is None:
        received = received.replace(tzinfo=UTC)
    if abs(received - signed) > SIGNATURE_TOLERANCE:
        raise SignatureRefused(
            f"{header_name} is more than {int(SIGNATURE_TOLERANCE.total_seconds() // 60)} "
            "minutes away from the time the request arrived (a replayed or delayed request)"
        )


def body_id(delivery: Delivery, prefix: str) -> str:
    """An upstream id for a platform that sends none: the body's digest, so a replay of
    the same request is recognized (and re-reading it after a mapping fix keeps it)."""
    return f"{prefix}:{hashlib.sha256(delivery.body).hexdigest()[:40]}"


def from_epoch_ms(value: Any) -> datetime | None:
    """An epoch-millisecond number (or numeric string) as an aware time, else ``None``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if not isinstance(value, int | float):
        return None
    try:
        return datetime.fromtimestamp(value / 1000, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def from_iso(value: Any) -> datetime | None:
    """An ISO 8601 time with a zone (``Z``, ``+00:00`` or ``+0000``), else ``None``."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    elif len(text) > 5 and text[-5] in "+-" and text[-4:].isdigit() and ":" not in text[-5:]:
        text = f"{text[:-2]}:{text[-2:]}"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def split_name(full: str) -> tuple[str | None, str | None]:
    """``"Daniel Okafor"`` -> ``("Daniel", "Okafor")``: the first word is the first name,
    the rest the last name; one word is a first name."""
    words = full.split()
    if not words:
        return None, None
    return words[0], (" ".join(words[1:]) or None)


def utm_of_page(page: str | None) -> dict[str, str]:
    """The ``utm_*`` parameters of a page address (with or without a scheme)."""
    if not page:
        return {}
    address = page if "//" in page else "//" + page
    try:
        query = urlsplit(address).query
    except ValueError:
        return {}
    found: dict[str, str] = {}
    for key, value in parse_qsl(query, keep_blank_values=False):
        if key in UTM_FIELDS and value.strip() and key not in found:
            found[key] = value.strip()
    return found


def put(lead: dict[str, Any], properties: dict[str, Any], target: str, value: Any) -> None:
    """Store ``value`` at a mapping target: a lead field (``company``), a lead attribute
    (``attributes.size``, or any other bare name) or an activity property
    (``properties.goal``). A lead field already set is kept (the first mapping wins)."""
    if target.startswith("properties."):
        properties[target.removeprefix("properties.")] = value
    elif target.startswith("attributes."):
        lead.setdefault("attributes", {})[target.removeprefix("attributes.")] = value
    elif target in LEAD_FIELDS:
        if lead.get(target) in (None, ""):
            lead[target] = value
    else:
        lead.setdefault("attributes", {})[target] = value


def check_targets(mapping: Mapping[str, Any], *, targets_are_keys: bool) -> list[FieldProblem]:
    """Problems of a mapping whose targets are lead fields, ``attributes.x`` or
    ``properties.x`` (the keys when ``targets_are_keys``, else the values), and whose
    other side names a non-empty source."""
    problems: list[FieldProblem] = []
    for key, value in mapping.items():
        target, source = (key, value) if targets_are_keys else (value, key)
        loc = f"mapping.{key}"
        if not isinstance(target, str) or not target.strip():
            problems.append(FieldProblem(loc, "the target must be a lead field name"))
            continue
        if not isinstance(source, str) or not source.strip():
            problems.append(FieldProblem(loc, "the source must be a non-empty text"))
            continue
        if target.startswith(("attributes.", "properties.")):
            if not target.split(".", 1)[1]:
                problems.append(FieldProblem(loc, f"{target!r} names no key"))
        elif targets_are_keys and target not in LEAD_FIELDS:
            problems.append(
                FieldProblem(
                    loc,
                    f"{target!r} is not a lead field; use one of {', '.join(sorted(LEAD_FIELDS))}"
                    " or attributes.<name> / properties.<name>",
                )
            )
    return problems


def item_event_type(endpoint: EndpointConfig, default: str | None) -> str | None:
    """The activity a submission records: the endpoint's own type, else the kind's."""
    return endpoint.event_type or default
