"""The generic adapter (pure): dot paths into any JSON, the mapping's special keys, the
checks of a mapping, the optional signature, and the door's pure checks (honeypot,
return URLs)."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from baton.domain.intake import Delivery, EndpointConfig, PayloadRefused, SignatureRefused
from baton.domain.intake_endpoints import (
    allowed_return_url,
    generic_mapping_problems,
    honeypot_filled,
)
from baton.integrations import generic

KEYS = st.text(
    alphabet=st.characters(blacklist_characters=".", blacklist_categories=("Cs",)),
    min_size=1,
    max_size=8,
).filter(lambda k: k.strip() == k and not k.lstrip("-").isdigit())
LEAVES = st.none() | st.booleans() | st.integers() | st.text(max_size=10)
DOCUMENTS = st.recursive(
    LEAVES,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=4),
    max_leaves=20,
)


@st.composite
def document_and_path(draw: st.DrawFn) -> tuple[Any, str, Any]:
    """A document, a path that exists in it (drawn by walking it), and the value there."""
    document = draw(st.dictionaries(KEYS, DOCUMENTS, min_size=1, max_size=4))
    steps: list[str] = []
    current: Any = document
    while True:
        if isinstance(current, dict) and current:
            key = draw(st.sampled_from(sorted(current)))
            steps.append(key)
            current = current[key]
        elif isinstance(current, list) and current:
            index = draw(st.integers(-len(current), len(current) - 1))
            steps.append(str(index))
            current = current[index]
        else:
            break
        if draw(st.booleans()):
            break
    return document, ".".join(steps), current


@given(document_and_path())
def test_a_path_that_exists_resolves_to_its_value(case: tuple[Any, str, Any]) -> None:
    document, path, value = case
    assert generic.resolve(document, path) == value


@given(DOCUMENTS, st.text(max_size=30))
def test_any_path_in_any_document_resolves_or_is_missing_never_raises(
    document: Any, path: str
) -> None:
    generic.resolve(document, path)


@given(document_and_path(), KEYS)
def test_a_step_past_the_document_is_missing(case: tuple[Any, str, Any], extra: str) -> None:
    document, path, value = case
    if not isinstance(value, dict | list):
        assert generic.lookup(document, f"{path}.{extra}") is None


def config(mapping: dict[str, Any], **extra: Any) -> EndpointConfig:
    return EndpointConfig(name="contact", kind="generic", source="web", mapping=mapping, **extra)


def delivery(body: Any, **headers: str) -> Delivery:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return Delivery(
        body=raw,
        content_type="application/json",
        headers=headers,
        query={},
        received_at=datetime(2026, 3, 2, 9, tzinfo=UTC),
    )


def test_a_submission_is_read_with_its_mapping() -> None:
    mapping = {
        "email": "answers.0.value",
        "first_name": "person.name.first",
        "attributes.employees": "company.size",
        "properties.page": "meta.page",
        "upstream_id": "meta.id",
        "occurred_at": "meta.at",
        "event_type_path": "form",
        "event_types": {"Contact Sales": "contact_sales", "newsletter": None},
    }
    body = {
        "answers": [{"value": "dana@northwind.example.com"}],
        "person": {"name": {"first": "Dana"}},
        "company": {"size": 420},
        "meta": {"page": "/pricing", "id": 7781, "at": 1772442000000},
        "form": "Contact Sales",
    }
    [item] = generic.read(delivery(body), config(mapping))
    assert item.lead == {
        "email": "dana@northwind.example.com",
        "first_name": "Dana",
        "attributes": {"employees": 420},
    }
    assert (item.upstream_id, item.event_type) == ("7781", "contact_sales")
    assert item.occurred_at == datetime(2026, 3, 2, 9, tzinfo=UTC)  # epoch milliseconds
    assert item.properties == {"page": "/pricing"}
    [newsletter] = generic.read(delivery({**body, "form": "newsletter"}), config(mapping))
    assert newsletter.event_type is None  # mapped to null: capture only
    [other] = generic.read(delivery({**body, "form": "webinar"}), config(mapping))
    assert other.event_type == "form_submit"  # not listed: the endpoint's default


def test_an_array_is_a_batch_and_bad_bodies_are_refused_naming_the_field() -> None:
    mapping = {"email": "e", "first_name": "n"}
    items = generic.read(
        delivery([{"e": "a@b.example.com"}, {"e": "c@d.example.com"}]), config(mapping)
    )
    assert [i.lead["email"] for i in items] == ["a@b.example.com", "c@d.example.com"]
    for body, loc in (
        (b"{not json", "body"),
        (b"\xff\xfe", "body"),
        (b"42", "body"),
        (b"[]", "body"),
        (json.dumps([{"e": "x@y.example.com"}, 3]).encode(), "[1]"),
        (json.dumps({"e": {"nested": 1}}).encode(), "e"),
        (b'{"e": "a@b.example.com", "n": NaN}', "n"),  # not stored as the text "nan"
        (b'{"e": "a@b.example.com", "n": -Infinity}', "n"),
    ):
        with pytest.raises(PayloadRefused) as refused:
            generic.read(delivery(body), config(mapping))
        assert refused.value.problems[0].loc == loc, body


def test_a_secret_needs_the_key_or_a_signature_of_the_body() -> None:
    endpoint = config({"email": "e"}, secret="s3cret-s3cret")
    body = b'{"e": "a@b.example.com"}'
    signature = hmac.new(b"s3cret-s3cret", body, hashlib.sha256).hexdigest()
    generic.verify(delivery(body, **{"x-baton-signature": f"sha256={signature}"}), endpoint)
    generic.verify(delivery(body, **{"x-baton-hook-key": "s3cret-s3cret"}), endpoint)
    generic.verify(delivery(body), config({"email": "e"}))  # no secret: nothing to check
    for headers in (
        {},
        {"x-baton-hook-key": "guess"},
        {"x-baton-signature": "sha256=" + "0" * 64},
        {"x-baton-signature": "md5=abc"},
    ):
        with pytest.raises(SignatureRefused):
            generic.verify(delivery(body, **headers), endpoint)


def test_a_mapping_is_checked_before_it_is_saved() -> None:
    assert generic_mapping_problems({"email": "contact.email", "upstream_id": "id"}) == []
    problems = dict(
        generic_mapping_problems(
            {
                "emial": "contact.email",
                "phone": "",
                "attributes.": "x",
                "event_types": {"a": "no_such_type"},
            }
        )
    )
    assert "unknown lead field" in problems["mapping.emial"]
    assert "dot path" in problems["mapping.phone"]
    assert "mapping.attributes." in problems
    assert "unknown activity type" in problems["mapping.event_types.a"]
    assert "event_type_path" in problems["mapping.event_types"]
    [(where, message)] = generic_mapping_problems({"first_name": "name"})
    assert where == "mapping" and "email, phone, external_id" in message


def test_the_honeypot_and_the_return_url() -> None:
    form = "application/x-www-form-urlencoded"
    assert honeypot_filled(b"email=a%40b.com&website=spam", form, "website")
    assert not honeypot_filled(b"email=a%40b.com&website=", form, "website")
    assert honeypot_filled(b'[{"e": 1}, {"website": "x"}]', "application/json", "website")
    assert not honeypot_filled(b"\xff", "application/json", "website")
    allowed = ["https://www.example.com/thanks"]
    assert allowed_return_url("https://www.example.com/thanks?x=1", allowed) == (
        "https://www.example.com/thanks?x=1"
    )
    for wanted in (
        "https://evil.example/thanks",
        "http://www.example.com/thanks",
        "https://www.example.com/other",
        "https://user@www.example.com/thanks",
        "//evil.example",
        None,
    ):
        assert allowed_return_url(wanted, allowed) == allowed[0], wanted
