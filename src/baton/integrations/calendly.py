"""Calendly webhooks (API v2 subscriptions): ``{event, created_at, payload}`` where the
payload is the Invitee.

* ``invitee.created`` -> a ``meeting_booked`` activity (a hand-raise in the example
  contract), unless the endpoint names another event type. The activity carries the
  scheduled event's URI, the cancel and reschedule links, the invitee's time zone, the
  questions and answers, and ``salesforce_uuid``; ``tracking.utm_*`` fill the lead's UTM
  fields. **Meeting time:** the documented (2020) payload has no start time, only the
  scheduled event's URI (``properties.event_uri``); when a newer payload embeds
  ``scheduled_event`` its ``start_time``/``end_time``/``name``/``location`` are stored as
  ``meeting_start``/``meeting_end``/``meeting_name``/``meeting_location``.
* ``invitee.canceled`` -> recorded as a capture only (the person is updated and the
  cancellation, with its reason, stays in the intake log and on the item): not a
  hand-raise, and it does not undo a handoff already made (a reschedule sends a
  cancellation and a new ``invitee.created``; the new booking records a new meeting).
* ``invitee_no_show.created`` / ``invitee_no_show.deleted`` -> capture only, likewise.
* any other event -> refused naming ``event``.

The invitee's ``name`` is split into first and last name (``first_name``/``last_name``
win when the event type asks for them); ``text_reminder_number`` is the phone. The
mapping (question text -> lead field, ``attributes.<name>`` or ``properties.<name>``)
takes answers into the lead; a question named "Company" or "Company name" fills the
company without one. The submission's id is the event name and the invitee URI, so a
redelivery is recognized and a cancel never collides with its booking.

Signature: with a secret set (the webhook signing key), ``Calendly-Webhook-Signature:
t=<epoch s>,v1=<hex HMAC-SHA256(key, "<t>.<body>")>`` is required and ``t`` must be
within 5 minutes of the receipt.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

from baton.domain.errors import FieldProblem
from baton.domain.intake import Delivery, EndpointConfig, IntakeItem, SignatureRefused
from baton.integrations._common import (
    UTM_FIELDS,
    Problems,
    check_targets,
    check_timestamp,
    from_iso,
    header,
    join,
    parse_json,
    put,
    same,
    split_name,
)

SIGNATURE_HEADER = "Calendly-Webhook-Signature"
BOOKED = "invitee.created"
CAPTURE_ONLY = ("invitee.canceled", "invitee_no_show.created", "invitee_no_show.deleted")
DEFAULT_EVENT_TYPE = "meeting_booked"
_COMPANY_QUESTIONS = frozenset({"company", "company name", "organization", "organisation"})


def signature(key: str, body: bytes, timestamp: int) -> str:
    """The ``Calendly-Webhook-Signature`` value of a body (tests sign with it too)."""
    digest = hmac.new(key.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify(delivery: Delivery, endpoint: EndpointConfig) -> None:
    if not endpoint.secret:
        return
    given = header(delivery, SIGNATURE_HEADER)
    if not given:
        raise SignatureRefused(f"missing {SIGNATURE_HEADER} header (the endpoint has a secret)")
    parts: dict[str, str] = {}
    for piece in given.split(","):
        name, _, value = piece.strip().partition("=")
        parts.setdefault(name, value)
    stamp, sent = parts.get("t", ""), parts.get("v1", "")
    if not stamp.isdigit() or not sent:
        raise SignatureRefused(f"{SIGNATURE_HEADER} is not t=<time>,v1=<signature>")
    check_timestamp(int(stamp), delivery, SIGNATURE_HEADER)
    expected = signature(endpoint.secret, delivery.body, int(stamp)).partition("v1=")[2]
    if not same(sent.lower(), expected):
        raise SignatureRefused(
            f"{SIGNATURE_HEADER} does not match the body signed with the endpoint's key"
        )


def check_mapping(mapping: Mapping[str, Any]) -> list[FieldProblem]:
    """Keys are question texts, values lead fields / attributes. / properties."""
    return check_targets(mapping, targets_are_keys=False)


def read(delivery: Delivery, endpoint: EndpointConfig) -> list[IntakeItem]:
    body = parse_json(delivery, "Calendly")
    problems = Problems()
    if not isinstance(body, Mapping):
        problems.expected("body", "a webhook object {event, payload}", body)
        problems.raise_if_any("the Calendly request is not a webhook")
        raise AssertionError  # unreachable
    event = body.get("event")
    if event != BOOKED and event not in CAPTURE_ONLY:
        problems.add(
            "event",
            f"unknown event {describe_event(event)}: a calendly endpoint reads "
            f"{', '.join((BOOKED, *CAPTURE_ONLY))}",
        )
        problems.raise_if_any("the Calendly webhook cannot be read")
    invitee = body.get("payload")
    if not isinstance(invitee, Mapping):
        problems.expected("payload", "the invitee object", invitee)
        problems.raise_if_any("the Calendly webhook cannot be read")
        raise AssertionError  # unreachable
    email = invitee.get("email")
    if "email" not in invitee:
        problems.missing("payload.email", "the invitee cannot be matched to a lead")
    elif not isinstance(email, str) or not email.strip():
        problems.expected("payload.email", "an email address", email)
    uri = invitee.get("uri")
    if not isinstance(uri, str) or not uri.strip():
        problems.expected("payload.uri", "the invitee's URI", uri)
    answers = invitee.get("questions_and_answers") or []
    if not isinstance(answers, list):
        problems.expected("payload.questions_and_answers", "an array", answers)
        answers = []
    shown: dict[str, str] = {}
    for index, qa in enumerate(answers):
        loc = join("payload.questions_and_answers", index)
        if not isinstance(qa, Mapping):
            problems.expected(loc, "an object {question, answer}", qa)
            continue
        question, answer = qa.get("question"), qa.get("answer")
        if not isinstance(question, str):
            problems.expected(join(loc, "question"), "a text", question)
            continue
        if answer is not None and not isinstance(answer, str):
            problems.expected(join(loc, "answer"), "a text", answer)
            continue
        if answer:
            shown[question] = answer
    tracking = invitee.get("tracking") or {}
    if not isinstance(tracking, Mapping):
        problems.expected("payload.tracking", "an object", tracking)
        tracking = {}
    problems.raise_if_any("the Calendly webhook cannot be read")
    assert isinstance(email, str) and isinstance(uri, str) and isinstance(event, str)

    lead: dict[str, Any] = {"email": email}
    properties: dict[str, Any] = {"calendly_event": event}
    first, last = invitee.get("first_name"), invitee.get("last_name")
    if isinstance(first, str) and first.strip():
        lead["first_name"] = first
        if isinstance(last, str) and last.strip():
            lead["last_name"] = last
    elif isinstance(invitee.get("name"), str):
        first_word, rest = split_name(invitee["name"])
        if first_word:
            lead["first_name"] = first_word
        if rest:
            lead["last_name"] = rest
    phone = invitee.get("text_reminder_number")
    if isinstance(phone, str) and phone.strip():
        lead["phone"] = phone
    for key in UTM_FIELDS:
        value = tracking.get(key)
        if isinstance(value, str) and value.strip():
            lead[key] = value.strip()
    if isinstance(tracking.get("salesforce_uuid"), str):
        properties["salesforce_uuid"] = tracking["salesforce_uuid"]
    rest_answers: dict[str, str] = {}
    for question, answer in shown.items():
        mapped = endpoint.mapping.get(question)
        if isinstance(mapped, str) and mapped:
            put(lead, properties, mapped, answer)
            continue
        if question.strip().casefold() in _COMPANY_QUESTIONS and not lead.get("company"):
            lead["company"] = answer
        rest_answers[question] = answer
    if rest_answers:
        properties["answers"] = rest_answers
    for key, name in (
        ("event", "event_uri"),
        ("uri", "invitee_uri"),
        ("cancel_url", "cancel_url"),
        ("reschedule_url", "reschedule_url"),
        ("timezone", "timezone"),
        ("status", "status"),
        ("old_invitee", "old_invitee"),
        ("new_invitee", "new_invitee"),
    ):
        if isinstance(invitee.get(key), str) and invitee[key]:
            properties[name] = invitee[key]
    if invitee.get("rescheduled") is True:
        properties["rescheduled"] = True
    cancellation = invitee.get("cancellation")
    if isinstance(cancellation, Mapping):
        for key in ("reason", "canceled_by", "canceler_type"):
            if isinstance(cancellation.get(key), str):
                properties[f"cancel_{key}"] = cancellation[key]
    scheduled = invitee.get("scheduled_event")
    if isinstance(scheduled, Mapping):
        for key, name in (
            ("start_time", "meeting_start"),
            ("end_time", "meeting_end"),
            ("name", "meeting_name"),
        ):
            if isinstance(scheduled.get(key), str):
                properties[name] = scheduled[key]
        location = scheduled.get("location")
        if isinstance(location, Mapping):
            where = location.get("join_url") or location.get("location") or location.get("type")
            if isinstance(where, str):
                properties["meeting_location"] = where

    booked = event == BOOKED
    return [
        IntakeItem(
            upstream_id=f"{event}:{uri.strip()}",
            lead=lead,
            event_type=(endpoint.event_type or DEFAULT_EVENT_TYPE) if booked else None,
            occurred_at=(
                from_iso(invitee.get("created_at"))
                if booked
                else from_iso(invitee.get("updated_at"))
            )
            or from_iso(body.get("created_at")),
            properties=properties,
        )
    ]


def describe_event(event: Any) -> str:
    if isinstance(event, str):
        return repr(event[:60])
    return "missing" if event is None else "not a text"


__all__ = ["check_mapping", "read", "signature", "verify"]
