"""Typeform webhooks (``event_type: form_response``).

One POST per response: ``form_response`` holds the ``answers`` (each ``{type, <value
under the key its type names>, field{id, ref, type}}``), the form ``definition`` (field
titles), ``hidden`` fields (where UTM parameters arrive) and ``variables``.

Mapping (endpoint ``mapping``): lead field -> answer ``ref`` (or field ``id``), e.g.
``{"email": "work_email", "company": "company", "attributes.size": "company_size"}``;
a source may also be ``hidden.<key>`` or ``variables.<key>``. Without a mapping, the
first ``email`` answer is the email, the first ``phone_number`` answer the phone, and an
answer whose ref is ``first_name``, ``last_name``, ``company``, ``title``, ``country`` or
``postal_code``, or ends with ``_`` and one of them (``nwa_company``), fills that
field. Every answer not mapped is kept in the activity's ``answers`` (question title ->
answer) so the rep sees it in the handoff packet.

Signature: with a secret set, ``Typeform-Signature: sha256=<base64 HMAC-SHA256(secret,
raw body)>`` is required. The submission's id is the response ``token`` (else the
``event_id``), so a redelivery is recognized.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date
from typing import Any

from baton.domain.errors import FieldProblem
from baton.domain.intake import Delivery, EndpointConfig, IntakeItem, SignatureRefused
from baton.integrations._common import (
    UTM_FIELDS,
    Problems,
    b64,
    check_targets,
    describe,
    from_iso,
    header,
    hmac_sha256,
    item_event_type,
    join,
    parse_json,
    put,
    same,
)

DEFAULT_EVENT_TYPE = "form_submit"
SIGNATURE_HEADER = "Typeform-Signature"

_GUESSED = ("first_name", "last_name", "company", "title", "country", "postal_code")
"""Lead fields an answer fills without a mapping when its ref is (or ends with
``_``) their name: ``first_name``, ``nwa_company``."""
_TEXT_TYPES = ("text", "email", "url", "phone_number", "file_url")
_RECALL = re.compile(r"\{\{\s*(field|hidden|var(?:iable)?):([^}\s]+)\s*\}\}")


def verify(delivery: Delivery, endpoint: EndpointConfig) -> None:
    """With a secret set, the signature header must be the body's HMAC."""
    if not endpoint.secret:
        return
    given = header(delivery, SIGNATURE_HEADER)
    if not given:
        raise SignatureRefused(f"missing {SIGNATURE_HEADER} header (the endpoint has a secret)")
    expected = "sha256=" + b64(hmac_sha256(endpoint.secret, delivery.body))
    if not same(given.strip(), expected):
        raise SignatureRefused(
            f"{SIGNATURE_HEADER} does not match the body signed with the endpoint's secret"
        )


def check_mapping(mapping: Mapping[str, Any]) -> list[FieldProblem]:
    """Mapping problems: keys are lead fields (or attributes./properties.), values refs."""
    return check_targets(mapping, targets_are_keys=True)


def _answer_value(answer: Mapping[str, Any], loc: str, problems: Problems) -> tuple[bool, Any]:
    """``(ok, value)`` of one answer; a wrong type is a problem naming the value's key."""
    kind = answer.get("type")
    if not isinstance(kind, str) or not kind:
        problems.expected(join(loc, "type"), "an answer type", kind)
        return False, None
    if kind not in answer:
        problems.missing(join(loc, kind), f"an answer of type {kind!r} carries its value there")
        return False, None
    value = answer[kind]
    where = join(loc, kind)
    if kind in _TEXT_TYPES:
        if not isinstance(value, str):
            problems.expected(where, "a text", value)
            return False, None
        return True, value
    if kind == "number":
        if isinstance(value, bool) or not isinstance(value, int | float):
            problems.expected(where, "a number", value)
            return False, None
        return True, value
    if kind == "boolean":
        if not isinstance(value, bool):
            problems.expected(where, "true or false", value)
            return False, None
        return True, value
    if kind == "date":
        if isinstance(value, str):
            try:
                date.fromisoformat(value)
            except ValueError:
                pass
            else:
                return True, value
        problems.expected(where, 'a date "YYYY-MM-DD"', value)
        return False, None
    if kind == "choice":
        if not isinstance(value, Mapping):
            problems.expected(where, "an object {id, label, ref}", value)
            return False, None
        label = value.get("label", value.get("other"))
        if not isinstance(label, str):
            problems.expected(join(where, "label"), "a text", label)
            return False, None
        return True, label
    if kind == "choices":
        if not isinstance(value, Mapping):
            problems.expected(where, "an object {ids, labels, refs}", value)
            return False, None
        labels = value.get("labels", [])
        if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
            problems.expected(join(where, "labels"), "an array of texts", labels)
            return False, None
        chosen = list(labels)
        other = value.get("other")
        if isinstance(other, str) and other:
            chosen.append(other)
        return True, chosen
    if kind == "payment":
        if not isinstance(value, Mapping):
            problems.expected(where, "an object {amount, last4, name, success}", value)
            return False, None
        return True, dict(value)
    # A type added after this adapter was written: kept as it came.
    return True, value


def _as_lead_value(value: Any) -> Any:
    """An answer as a lead field's value (multiple choices joined with ';')."""
    if isinstance(value, list):
        return ";".join(str(x) for x in value)
    return value


def read(delivery: Delivery, endpoint: EndpointConfig) -> list[IntakeItem]:
    body = parse_json(delivery, "Typeform")
    problems = Problems()
    if not isinstance(body, Mapping):
        problems.expected("body", "a JSON object", body)
        problems.raise_if_any("the Typeform request is not a webhook payload")
        raise AssertionError  # unreachable
    event_type = body.get("event_type")
    if event_type != "form_response":
        problems.expected("event_type", '"form_response"', event_type)
    response = body.get("form_response")
    if not isinstance(response, Mapping):
        problems.expected("form_response", "an object", response)
        problems.raise_if_any("the Typeform request cannot be read")
        raise AssertionError  # unreachable
    loc = "form_response"
    answers = response.get("answers", [])
    if not isinstance(answers, list):
        problems.expected(join(loc, "answers"), "an array", answers)
        answers = []
    hidden = response.get("hidden") or {}
    if not isinstance(hidden, Mapping):
        problems.expected(join(loc, "hidden"), "an object", hidden)
        hidden = {}
    definition = response.get("definition") or {}
    titles: dict[str, str] = {}
    if isinstance(definition, Mapping) and isinstance(definition.get("fields"), list):
        for field in definition["fields"]:
            if isinstance(field, Mapping) and isinstance(field.get("title"), str):
                for key in ("id", "ref"):
                    if isinstance(field.get(key), str):
                        titles[field[key]] = field["title"]

    values: dict[str, Any] = {}  # ref and id -> value
    order: list[tuple[str, str, Any, str]] = []  # (ref, id, value, answer type)
    for index, answer in enumerate(answers):
        where = join(join(loc, "answers"), index)
        if not isinstance(answer, Mapping):
            problems.expected(where, "an answer object", answer)
            continue
        field = answer.get("field")
        if not isinstance(field, Mapping) or not (
            isinstance(field.get("ref"), str) or isinstance(field.get("id"), str)
        ):
            problems.expected(join(where, "field"), "an object with id and ref", field)
            continue
        ok, value = _answer_value(answer, where, problems)
        if not ok:
            continue
        ref = str(field["ref"] if isinstance(field.get("ref"), str) else field["id"])
        field_id = str(field["id"]) if isinstance(field.get("id"), str) else ref
        values[ref] = value
        values[field_id] = value
        order.append((ref, field_id, value, str(answer["type"])))

    token = response.get("token")
    event_id = body.get("event_id")
    upstream = token if isinstance(token, str) and token else event_id
    if not isinstance(upstream, str) or not upstream:
        problems.missing(join(loc, "token"), "the response has no token nor event_id")
    problems.raise_if_any("the Typeform response cannot be read")

    lead: dict[str, Any] = {}
    properties: dict[str, Any] = {}
    used: set[str] = set()
    variables = response.get("variables")
    variable_values: dict[str, Any] = {}
    if isinstance(variables, list):
        for variable in variables:
            if isinstance(variable, Mapping) and isinstance(variable.get("key"), str):
                kind = variable.get("type")
                variable_values[variable["key"]] = (
                    variable.get(kind) if isinstance(kind, str) else None
                )

    for target, source in endpoint.mapping.items():
        if not isinstance(source, str):
            continue
        if source.startswith("hidden."):
            value = hidden.get(source.removeprefix("hidden."))
        elif source.startswith("variables."):
            value = variable_values.get(source.removeprefix("variables."))
        else:
            value = values.get(source)
            if source in values:
                used.add(source)
        if value is None:
            continue
        put(
            lead,
            properties,
            target,
            value if target.startswith(("attributes.", "properties.")) else _as_lead_value(value),
        )

    for ref, field_id, value, kind in order:
        if ref in used or field_id in used:
            continue
        guess = None
        if kind == "email" and not lead.get("email"):
            guess = "email"
        elif kind == "phone_number" and not lead.get("phone"):
            guess = "phone"
        else:
            guess = next(
                (
                    name
                    for name in _GUESSED
                    if (ref == name or ref.endswith("_" + name)) and not lead.get(name)
                ),
                None,
            )
        if guess is not None:
            lead[guess] = _as_lead_value(value)
            used.add(ref)

    for key in UTM_FIELDS:
        value = hidden.get(key)
        if isinstance(value, str) and value.strip() and not lead.get(key):
            lead[key] = value.strip()

    def title(ref: str, field_id: str) -> str:
        text = titles.get(field_id) or titles.get(ref) or ref

        def recall(match: re.Match[str]) -> str:
            scope, key = match.group(1), match.group(2)
            found = hidden.get(key) if scope == "hidden" else values.get(key)
            if scope.startswith("var"):
                found = variable_values.get(key)
            return str(_as_lead_value(found)) if found is not None else "..."

        return _RECALL.sub(recall, text)

    shown: dict[str, Any] = {}
    for ref, field_id, value, _kind in order:
        if ref in used or field_id in used:
            continue
        name = title(ref, field_id)
        shown[name if name not in shown else f"{name} ({ref})"] = value
    if shown:
        properties["answers"] = shown
    other_hidden = {k: v for k, v in hidden.items() if k not in UTM_FIELDS}
    if other_hidden:
        properties["hidden"] = dict(other_hidden)
    if variable_values:
        properties["variables"] = variable_values
    properties["form_id"] = response.get("form_id")
    if isinstance(definition, Mapping) and isinstance(definition.get("title"), str):
        properties["form_title"] = definition["title"]
    for key in ("landed_at", "submitted_at"):
        if isinstance(response.get(key), str):
            properties[key] = response[key]
    calculated = response.get("calculated")
    if isinstance(calculated, Mapping) and "score" in calculated:
        properties["score"] = calculated["score"]
    if isinstance(event_id, str):
        properties["event_id"] = event_id
    properties = {k: v for k, v in properties.items() if v is not None}

    return [
        IntakeItem(
            upstream_id=str(upstream),
            lead=lead,
            event_type=item_event_type(endpoint, DEFAULT_EVENT_TYPE),
            occurred_at=from_iso(response.get("submitted_at")),
            properties=properties,
            raw=None,
        )
    ]


__all__ = ["check_mapping", "describe", "read", "verify"]
