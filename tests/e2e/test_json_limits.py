"""Free-form JSON is bounded (issue 11, item 3): lead ``attributes`` and activity
``properties`` have a size, a number of keys, a depth and a text length they may not
pass (settings, with documented defaults), answered with 422 problem+json naming the
place; a request body over ``BATON_MAX_BODY_BYTES`` gets 413 problem+json whether its
size is announced or it arrives chunked."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from tests.conftest import bearer, token_for
from tests.e2e.live_server import live_server

from baton.api.app import create_app
from baton.config import Settings
from baton.domain.limits import DEFAULT_JSON_LIMITS, JsonLimits, check_json
from baton.services.context import Context

LEADS = "/api/v1/leads"
ACTIVITIES = "/api/v1/activities"
EVENT = {"type": "page_view", "occurred_at": "2026-03-02T08:00:00Z"}


def _with(ctx: Context, **settings: Any) -> Context:
    current = ctx.settings.model_dump()
    current.update(settings)
    return dataclasses.replace(ctx, settings=Settings(**current))


@pytest.fixture
def small(sqlite_ctx: Context) -> Iterator[tuple[TestClient, Context]]:
    """An API whose limits are small enough to pass cheaply."""
    ctx = _with(
        sqlite_ctx,
        json_max_bytes=2_000,
        json_max_keys=20,
        json_max_depth=3,
        json_max_string=100,
        max_body_bytes=64 * 1024,
    )
    yield TestClient(create_app(ctx), headers=bearer(token_for(ctx, "admin"))), ctx


def _refused(response: httpx.Response, loc: str) -> str:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    errors = response.json()["errors"]
    assert [e["loc"] for e in errors] == [loc], errors
    return str(errors[0]["message"])


@pytest.mark.parametrize(
    ("attributes", "words"),
    [
        ({"notes": "x" * 101}, ["notes", "101 characters", "at most 100"]),
        ({"k" * 101: 1}, ["a key of 101 characters", "at most 100"]),
        ({f"k{i}": i for i in range(21)}, ["more than 20 keys"]),
        ({"a": {"b": {"c": {"d": 1}}}}, ["nested too deeply at a.b.c", "more than 3 levels"]),
        ({f"k{i}": "y" * 99 for i in range(19)}, ["bytes as JSON", "at most 2,000"]),
    ],
    ids=["text", "key", "keys", "depth", "size"],
)
def test_a_lead_over_a_json_limit_is_refused_naming_the_place(
    small: tuple[TestClient, Context], attributes: dict[str, Any], words: list[str]
) -> None:
    client, _ = small
    message = _refused(
        client.post(LEADS, json={"email": "dana@northwind.com", "attributes": attributes}),
        "attributes",
    )
    for word in words:
        assert word in message


def test_activity_properties_have_the_same_limits_one_row_at_a_time(
    small: tuple[TestClient, Context],
) -> None:
    client, _ = small
    big = {"properties": {"html": "<p>" * 40}}
    _refused(
        client.post(ACTIVITIES, json={"email": "a@northwind.com", **EVENT, **big}), "properties"
    )
    rows = [
        {"email": "a@northwind.com", **EVENT, **big},
        {"email": "b@northwind.com", **EVENT, "properties": {"url": "/pricing"}},
    ]
    report = client.post(f"{ACTIVITIES}/batch", json={"activities": rows}).json()
    assert report["stored"] == 1
    assert [(e["index"], e["field"]) for e in report["errors"]] == [(0, "properties")]


def test_within_the_limits_everything_is_kept(small: tuple[TestClient, Context]) -> None:
    client, _ = small
    attributes = {"employees": 420, "tags": ["a", "b"], "address": {"city": "Lyon"}}
    response = client.post(LEADS, json={"email": "dana@northwind.com", "attributes": attributes})
    assert response.status_code == 201, response.text
    assert response.json()["lead"]["attributes"] == attributes


def test_the_defaults_refuse_ten_megabytes_of_attributes(sqlite_ctx: Context) -> None:
    """The case from the issue, with the documented defaults: ten megabytes are refused
    before they are parsed (a lead's body is capped), and what fits the cap but not the
    limits of ``attributes`` is refused naming them."""
    client = TestClient(create_app(sqlite_ctx), headers=bearer(token_for(sqlite_ctx, "admin")))
    huge = {"email": "dana@northwind.com", "attributes": {"blob": "x" * 10_000_000}}
    refused = client.post(LEADS, json=huge)
    assert refused.status_code == 413 and "a lead's body is over" in refused.json()["detail"]
    big = {"email": "dana@northwind.com", "attributes": {"blob": "x" * 100_000}}
    message = _refused(client.post(LEADS, json=big), "attributes")
    assert f"at most {DEFAULT_JSON_LIMITS.max_string:,}" in message
    spread = {f"k{i}": "y" * 5_000 for i in range(20)}
    message = _refused(client.post(LEADS, json={**big, "attributes": spread}), "attributes")
    assert f"at most {DEFAULT_JSON_LIMITS.max_bytes:,}" in message
    assert client.get(LEADS).json()["total"] == 0


def test_what_json_columns_cannot_hold_is_refused_whatever_the_limits() -> None:
    roomy = JsonLimits(max_bytes=10**9, max_keys=10**6, max_depth=100, max_string=10**9)
    for bad in ({"x": float("nan")}, {"x": "a\x00b"}, {"a\x00": 1}):
        with pytest.raises(ValueError, match=r"finite|NUL"):
            check_json(bad, roomy)


def test_a_chunked_body_over_the_limit_gets_413_over_http(
    small: tuple[TestClient, Context],
) -> None:
    """uvicorn hands a chunked body to the app piece by piece: the limit is counted as
    it arrives (it used to end as a 400 "error parsing the body")."""
    _, ctx = small
    headers = {**bearer(token_for(ctx, "admin")), "content-type": "application/json"}

    def chunks(total: int) -> Iterator[bytes]:
        yield b'{"email": "dana@northwind.com", "attributes": {"x": "'
        for _ in range(total // 8192):
            yield b"a" * 8192
        yield b'"}}'

    with live_server(create_app(ctx)) as url, httpx.Client(base_url=url, timeout=30) as http:
        over = http.post(LEADS, content=chunks(128 * 1024), headers=headers)
        announced = http.post(LEADS, content=b"{" + b" " * 70_000 + b"}", headers=headers)
        under = http.post(
            LEADS,
            content=iter([b'{"email": "dana@northwind.com",', b' "first_name": "Dana"}']),
            headers=headers,
        )
    assert "content-length" not in over.request.headers
    assert over.status_code == 413, over.text
    assert over.headers["content-type"] == "application/problem+json"
    assert over.json()["title"] == "Payload too large"
    assert "65,536 bytes" in over.json()["detail"]
    assert announced.status_code == 413
    assert under.status_code == 201, under.text
