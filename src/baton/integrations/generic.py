"""The ``generic`` adapter: any JSON body, read with a mapping of dot paths.

The body is a JSON object (one submission) or an array of objects (a batch). The
endpoint's mapping says where each lead field is::

    {
      "email": "contact.email",            # lead field -> dot path
      "first_name": "contact.name.first",
      "phone": "answers.2.value",          # a number indexes a list
      "attributes.employees": "company.size",
      "properties.message": "message",     # details of the recorded activity
      "upstream_id": "submission.id",      # the sender's id: a replay is recognized
      "occurred_at": "submitted_at",       # when it happened (ISO 8601 or epoch seconds)
      "event_type_path": "form.kind",      # which event it is, read from the payload...
      "event_types": {"contact-sales": "contact_sales", "newsletter": null}
    }

The event type is the value found at ``event_type_path`` looked up in
``event_types`` (null: record only the capture); a value not listed, or no path,
gives the endpoint's ``event_type`` (default ``form_submit``). A path that is not in
the payload leaves the field out; a value that is an object or a list is refused for a
lead field (it is kept as is for an attribute or a property).

If the endpoint has a secret, the sender proves it with either
``X-Baton-Signature: sha256=<hex HMAC-SHA256 of the body with the secret>`` or
``X-Baton-Hook-Key: <secret>``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from baton.domain.dates import read_instant
from baton.domain.errors import FieldProblem
from baton.domain.intake import (
    Delivery,
    EndpointConfig,
    IntakeItem,
    PayloadRefused,
    SignatureRefused,
)
from baton.domain.intake_endpoints import SPECIAL_KEYS, default_event_type
from baton.domain.moments import FIRST_YEAR, LAST_YEAR

MAX_ITEMS = 1000
SIGNATURE_HEADER = "x-baton-signature"
KEY_HEADER = "x-baton-hook-key"
_MISSING = object()


def resolve(document: Any, path: str) -> Any:
    """The value at a dot path (``contact.email``, ``answers.0.value``), or
    :data:`_MISSING` when any step is absent. A step that is a whole number indexes a
    list (negative numbers count from the end); on an object it is a key."""
    current = document
    for step in path.strip().split("."):
        if isinstance(current, Mapping):
            if step not in current:
                return _MISSING
            current = current[step]
        elif isinstance(current, list):
            try:
                index = int(step)
            except ValueError:
                return _MISSING
            if not -len(current) <= index < len(current):
                return _MISSING
            current = current[index]
        else:
            return _MISSING
    return current


def lookup(document: Any, path: str) -> Any:
    """:func:`resolve`, with ``None`` for a missing path."""
    value = resolve(document, path)
    return None if value is _MISSING else value


def verify(delivery: Delivery, endpoint: EndpointConfig) -> None:
    """With a secret, the body must be signed with it (or the key sent as is)."""
    if not endpoint.secret:
        return
    secret = endpoint.secret.encode()
    signature = delivery.headers.get(SIGNATURE_HEADER, "").strip()
    if signature:
        scheme, _, given = signature.partition("=")
        expected = hmac.new(secret, delivery.body, hashlib.sha256).hexdigest()
        if scheme.lower() == "sha256" and hmac.compare_digest(
            given.lower().encode(), expected.encode()
        ):
            return
        raise SignatureRefused(f"the {SIGNATURE_HEADER} header does not match the body")
    key = delivery.headers.get(KEY_HEADER, "")
    if key and hmac.compare_digest(key.encode(), secret):
        return
    raise SignatureRefused(
        f"send X-Baton-Signature: sha256=<HMAC of the body> or {KEY_HEADER.title()}"
    )


def _scalar(value: Any, where: str, problems: list[FieldProblem]) -> Any:
    if isinstance(value, dict | list):
        problems.append(FieldProblem(where, "the mapped path holds an object or a list"))
        return None
    if isinstance(value, float) and not math.isfinite(value):  # NaN, Infinity: not "nan"
        problems.append(FieldProblem(where, "the mapped path holds no finite number"))
        return None
    return value


_NUMBER_TEXT = re.compile(r"[0-9]+(\.[0-9]+)?")
"""A number written as text (``"1733400000"``, ``"1733400000.25"``, ``"20260302"``)."""


def _zero(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float):
        return value == 0
    return (
        isinstance(value, str)
        and _NUMBER_TEXT.fullmatch(value.strip()) is not None
        and (float(value) == 0)
    )


_ACCEPTED = (
    f"send ISO 8601 text, or epoch seconds (10 digits) or milliseconds (13 digits), "
    f"from {FIRST_YEAR} to {LAST_YEAR}"
)
_LAST_SECOND = datetime(LAST_YEAR + 1, 1, 1, tzinfo=UTC).timestamp()


def _epoch_problem(value: float) -> str:
    """What is wrong with an epoch number that is no time from 1970 to 2200, and what
    would be accepted. Microseconds and nanoseconds are named, not read: nothing else in
    Baton reads them (a file's cell neither, :mod:`baton.domain.dates`), and a sender
    that writes them can as easily write milliseconds."""
    if value < 0:
        return f"{value} is before 1970 as an epoch time: {_ACCEPTED}"
    for unit, scale in (("microseconds", 10**6), ("nanoseconds", 10**9)):
        if 10**11 * scale // 1000 <= value < _LAST_SECOND * scale:
            return f"{value} looks like epoch {unit}: {_ACCEPTED}"
    unit = "milliseconds" if value >= 10**11 else "seconds"
    return f"{value} as epoch {unit} is after {LAST_YEAR}: {_ACCEPTED}"


def _occurred(value: Any, where: str, problems: list[FieldProblem]) -> datetime | None:
    """When the submission happened: ISO 8601 (``T``/``Z`` in either case, or a space
    between day and time; no zone is UTC), or epoch seconds as a number (from 10^11:
    milliseconds). A number written as text is read as a file's cell is
    (:func:`baton.domain.dates.read_instant`: 10 digits seconds, 13 milliseconds, 8 a
    compact day, any other length refused). Outside 1970 to 2200 is a problem at
    ``where`` that says so (a time in 2201 is not "ahead of the server's clock", and
    microseconds are named as such), whichever way it is written. Zero (``0``, ``"0"``)
    is no time at all, as many platforms send it for a time they do not have: the
    submission is dated when received, not in 1970."""
    if value is None or value == "" or _zero(value):
        return None
    if isinstance(value, bool):
        problems.append(FieldProblem(where, "a date-time (ISO 8601) or epoch seconds"))
        return None
    if isinstance(value, str) and _NUMBER_TEXT.fullmatch(value.strip()):
        try:
            return read_instant(value)
        except ValueError as exc:
            problems.append(FieldProblem(where, str(exc)))
            return None
    if isinstance(value, int | float):
        seconds = value / 1000 if value >= 10**11 else value
        try:
            moment = datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError, ValueError):
            moment = None
        if moment is None or not FIRST_YEAR <= moment.year <= LAST_YEAR:
            problems.append(FieldProblem(where, _epoch_problem(value)))
            return None
        return moment
    if isinstance(value, str):
        text = value.strip()
        if len(text) > 10 and text[10] in "t ":
            text = f"{text[:10]}T{text[11:]}"
        try:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            problems.append(FieldProblem(where, f"not a date-time: {value[:60]!r}"))
            return None
        if not FIRST_YEAR <= parsed.year <= LAST_YEAR:
            problems.append(
                FieldProblem(
                    where,
                    f"{value[:60]!r} is outside {FIRST_YEAR} to {LAST_YEAR}, the times Baton "
                    "keeps: check the year",
                )
            )
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    problems.append(FieldProblem(where, "a date-time (ISO 8601) or epoch seconds"))
    return None


def read_one(document: Mapping[str, Any], endpoint: EndpointConfig, where: str = "") -> IntakeItem:
    """One submission read with the endpoint's mapping; problems with a mapped value
    (an object where a text belongs, a date that is not one) are refused."""
    mapping = endpoint.mapping
    problems: list[FieldProblem] = []
    lead: dict[str, Any] = {}
    attributes: dict[str, Any] = {}
    properties: dict[str, Any] = {}
    for key, path in mapping.items():
        if key in SPECIAL_KEYS or not isinstance(path, str):
            continue
        value = resolve(document, path)
        if value is _MISSING or value is None:
            continue
        head, _, name = key.partition(".")
        if head == "attributes" and name:
            attributes[name] = value
        elif head == "properties" and name:
            properties[name] = value
        else:
            value = _scalar(value, f"{where}{path}", problems)
            if value is not None:
                lead[key] = (
                    str(value) if isinstance(value, int | float) and key != "consent" else value
                )
    if attributes:
        lead["attributes"] = attributes
    upstream: str | None = None
    if isinstance(mapping.get("upstream_id"), str):
        found = _scalar(
            lookup(document, mapping["upstream_id"]), f"{where}{mapping['upstream_id']}", problems
        )
        upstream = None if found in (None, "") else str(found)[:300]
    occurred_at = None
    if isinstance(mapping.get("occurred_at"), str):
        path = mapping["occurred_at"]
        occurred_at = _occurred(lookup(document, path), f"{where}{path}", problems)
    event_type = default_event_type("generic", endpoint.event_type)
    if isinstance(mapping.get("event_type_path"), str):
        path = mapping["event_type_path"]
        found = lookup(document, path)
        table = mapping.get("event_types") or {}
        if isinstance(found, str | int) and str(found) in table:
            event_type = table[str(found)]
        elif found is not None:
            properties.setdefault(
                "form_kind", found if not isinstance(found, dict | list) else None
            )
    if problems:
        # Answered to the sender as is: its own fields' paths, no word of the mapping.
        raise PayloadRefused("a value in the submission cannot be read", problems)
    return IntakeItem(
        upstream_id=upstream,
        lead=lead,
        event_type=event_type,
        occurred_at=occurred_at,
        properties=properties,
        raw=document,
    )


def read(delivery: Delivery, endpoint: EndpointConfig) -> list[IntakeItem]:
    """Every submission of a JSON body (an object, or an array of up to 1,000)."""
    try:
        document = json.loads(delivery.body.decode("utf-8"))
    except UnicodeDecodeError:
        raise PayloadRefused(
            "the body is not UTF-8 text", [FieldProblem("body", "send JSON encoded as UTF-8")]
        ) from None
    except ValueError as exc:
        raise PayloadRefused(
            "the body is not JSON", [FieldProblem("body", f"not valid JSON: {exc}"[:200])]
        ) from None
    if isinstance(document, dict):
        return [read_one(document, endpoint)]
    if isinstance(document, list) and document:
        if len(document) > MAX_ITEMS:
            raise PayloadRefused(
                "too many submissions", [FieldProblem("body", f"at most {MAX_ITEMS} per request")]
            )
        bad = [i for i, d in enumerate(document) if not isinstance(d, dict)]
        if bad:
            raise PayloadRefused(
                "every submission must be a JSON object",
                [FieldProblem(f"[{bad[0]}]", "not a JSON object")],
            )
        return [read_one(d, endpoint, f"[{i}].") for i, d in enumerate(document)]
    raise PayloadRefused(
        "the body must be a JSON object or a non-empty array of objects",
        [FieldProblem("body", "a JSON object (one submission) or an array of objects")],
    )
