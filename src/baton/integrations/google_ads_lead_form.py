"""Google Ads lead form webhook: one JSON object per lead.

``user_column_data`` is ``[{column_id, column_name, string_value}]``: the standard
columns fill the lead (``FULL_NAME`` is split into first and last name, ``EMAIL`` or
``WORK_EMAIL``, ``PHONE_NUMBER`` or ``WORK_PHONE``, ``COMPANY_NAME``, ``JOB_TITLE``,
``COUNTRY``, ``POSTAL_CODE``, ``CITY``, ``REGION``...); custom questions go where the
mapping says (question ``column_id`` or ``column_name`` -> lead field,
``attributes.<name>`` or ``properties.<name>``), else into the lead's attributes under
their question text. A phone written without ``+`` (the Testing page sends
``650-555-0100``) is read in the default phone region. A lead needs an email or a phone
column.

The key: the ``google_key`` configured on the form (the Samples page spells it
``Google_key``; both are read) must equal the endpoint's secret. ``lead_id`` is the
submission's id.

Test leads (``is_test: true``, from the form's "Send test data" button) are stored, so
the button proves the wiring end to end, but recorded as a capture only (no activity, so
never a hand-raise or a handoff, whatever the endpoint's event type) with the lead
attribute ``google_ads_test: true`` and ``is_test`` in the intake item.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from baton.domain.errors import FieldProblem
from baton.domain.intake import (
    Delivery,
    EndpointConfig,
    IntakeItem,
    PayloadRefused,
    SignatureRefused,
)
from baton.integrations._common import (
    Problems,
    check_targets,
    from_iso,
    item_event_type,
    join,
    parse_json,
    put,
    same,
    split_name,
)

DEFAULT_EVENT_TYPE = "form_submit"

COLUMNS: dict[str, str] = {
    "EMAIL": "email",
    "WORK_EMAIL": "email",
    "PHONE_NUMBER": "phone",
    "WORK_PHONE": "phone",
    "FIRST_NAME": "first_name",
    "LAST_NAME": "last_name",
    "COMPANY_NAME": "company",
    "JOB_TITLE": "title",
    "COUNTRY": "country",
    "REGION": "region",
    "POSTAL_CODE": "postal_code",
    "CITY": "attributes.city",
    "STREET_ADDRESS": "attributes.street",
}
"""Google's standard ``column_id`` -> lead field (``FULL_NAME`` is split)."""

CONTACT_COLUMNS = ("EMAIL", "WORK_EMAIL", "PHONE_NUMBER", "WORK_PHONE")


def check_mapping(mapping: Mapping[str, Any]) -> list[FieldProblem]:
    """Keys are column ids or question texts, values lead fields / attributes."""
    return check_targets(mapping, targets_are_keys=False)


def _key(body: Mapping[str, Any]) -> Any:
    return body["google_key"] if "google_key" in body else body.get("Google_key")


def verify(delivery: Delivery, endpoint: EndpointConfig) -> None:
    """With a secret set, the body's ``google_key`` must equal it."""
    if not endpoint.secret:
        return
    try:
        body = parse_json(delivery, "Google Ads")
    except PayloadRefused:
        return  # not JSON: read() refuses it (422) and nothing is stored as a lead
    given = _key(body) if isinstance(body, Mapping) else None
    if not isinstance(given, str) or not given:
        raise SignatureRefused("the lead has no google_key (the endpoint expects the form's key)")
    if not same(given, endpoint.secret):
        raise SignatureRefused("the lead's google_key is not the key this endpoint expects")


def read(delivery: Delivery, endpoint: EndpointConfig) -> list[IntakeItem]:
    body = parse_json(delivery, "Google Ads")
    problems = Problems()
    if not isinstance(body, Mapping):
        problems.expected("body", "a lead object", body)
        problems.raise_if_any("the Google Ads request is not a lead")
        raise AssertionError  # unreachable
    lead_id = body.get("lead_id")
    if not isinstance(lead_id, str) or not lead_id.strip():
        problems.expected("lead_id", "the lead's id (a text)", lead_id)
    columns = body.get("user_column_data")
    if not isinstance(columns, list):
        problems.expected(
            "user_column_data", "an array of {column_id, column_name, string_value}", columns
        )
        columns = []
    rows: list[tuple[str | None, str | None, str]] = []
    for index, column in enumerate(columns):
        loc = join("user_column_data", index)
        if not isinstance(column, Mapping):
            problems.expected(loc, "an object {column_id, column_name, string_value}", column)
            continue
        value = column.get("string_value")
        if not isinstance(value, str):
            problems.expected(join(loc, "string_value"), "a text", value)
            continue
        column_id = column.get("column_id")
        column_name = column.get("column_name")
        if not isinstance(column_id, str) and not isinstance(column_name, str):
            problems.missing(join(loc, "column_id"), "a column needs an id or a name")
            continue
        rows.append(
            (
                column_id if isinstance(column_id, str) else None,
                column_name if isinstance(column_name, str) else None,
                value,
            )
        )
    is_test = body.get("is_test")
    if is_test is not None and not isinstance(is_test, bool):
        problems.expected("is_test", "true or false", is_test)
    problems.raise_if_any("the Google Ads lead cannot be read")
    if not any(cid in CONTACT_COLUMNS and value.strip() for cid, _name, value in rows):
        mapped = {key for key, target in endpoint.mapping.items() if target in ("email", "phone")}
        if not any(
            (cid in mapped or name in mapped) and value.strip() for cid, name, value in rows
        ):
            problems.add(
                "user_column_data",
                "no EMAIL, WORK_EMAIL or PHONE_NUMBER column: the lead cannot be contacted"
                " (add an email or phone question to the lead form)",
            )
            problems.raise_if_any("the Google Ads lead cannot be read")

    lead: dict[str, Any] = {}
    properties: dict[str, Any] = {}
    for column_id, column_name, value in rows:
        if not value.strip():
            continue
        target = endpoint.mapping.get(column_id or "") or endpoint.mapping.get(column_name or "")
        if isinstance(target, str) and target:
            put(lead, properties, target, value)
        elif column_id == "FULL_NAME":
            first, last = split_name(value)
            if first:
                lead.setdefault("first_name", first)
            if last:
                lead.setdefault("last_name", last)
        elif column_id in COLUMNS:
            put(lead, properties, COLUMNS[column_id], value)
        else:
            question = column_name or column_id or "question"
            lead.setdefault("attributes", {})[question] = value
    for key in ("campaign_id", "form_id", "adgroup_id", "creative_id", "asset_group_id"):
        found = body.get(key)
        if isinstance(found, int | str) and not isinstance(found, bool) and found not in (0, ""):
            properties[f"google_{key}"] = str(found)
    for key in ("gcl_id", "lead_stage", "api_version", "lead_submit_time"):
        if isinstance(body.get(key), str) and body[key]:
            properties[key] = body[key]
    event_type = item_event_type(endpoint, DEFAULT_EVENT_TYPE)
    if is_test:
        properties["is_test"] = True
        lead.setdefault("attributes", {})["google_ads_test"] = True
        event_type = None
    assert isinstance(lead_id, str)
    return [
        IntakeItem(
            upstream_id=lead_id.strip(),
            lead=lead,
            event_type=event_type,
            occurred_at=from_iso(body.get("lead_submit_time")),
            properties=properties,
        )
    ]


__all__ = ["check_mapping", "read", "verify"]
