"""The platform adapters on tiny inline payloads (no share needed): reading, mapping,
refusals naming the field, and every signature or key check passing and failing."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from baton.domain.intake import (
    Delivery,
    EndpointConfig,
    FetchRequest,
    PayloadRefused,
    SignatureRefused,
)
from baton.integrations import (
    adapter_for,
    calendly,
    google_ads_lead_form,
    hubspot,
    meta_lead_ads,
    typeform,
    web_to_lead,
)

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def delivery(
    body: bytes | str | Any,
    *,
    content_type: str = "application/json",
    headers: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
    method: str = "POST",
    url: str = "https://baton.example.com/hooks/x",
    received_at: datetime = NOW,
) -> Delivery:
    if isinstance(body, str):
        raw = body.encode()
    elif isinstance(body, bytes):
        raw = body
    else:
        raw = json.dumps(body).encode()
    return Delivery(
        body=raw,
        content_type=content_type,
        headers={k.lower(): v for k, v in (headers or {}).items()},
        query=query or {},
        received_at=received_at,
        method=method,
        url=url,
    )


def config(kind: str, secret: str | None = None, **mapping: Any) -> EndpointConfig:
    return EndpointConfig(name="x", kind=kind, source="web", secret=secret, mapping=mapping)


# -- Typeform -------------------------------------------------------------------------

TYPEFORM = {
    "event_id": "ev1",
    "event_type": "form_response",
    "form_response": {
        "token": "tok1",
        "submitted_at": "2026-03-02T09:58:00Z",
        "hidden": {"utm_source": "newsletter", "plan": "pro"},
        "definition": {
            "title": "Demo",
            "fields": [
                {"id": "f1", "ref": "mail", "title": "Email?"},
                {"id": "f2", "ref": "size", "title": "Size, {{field:name}}?"},
                {"id": "f3", "ref": "name", "title": "Name"},
            ],
        },
        "answers": [
            {"type": "email", "email": "ana@example.com", "field": {"id": "f1", "ref": "mail"}},
            {
                "type": "choice",
                "choice": {"other": "about 40"},
                "field": {"id": "f2", "ref": "size"},
            },
            {"type": "text", "text": "Ana", "field": {"id": "f3", "ref": "name"}},
            {"type": "file_url", "file_url": "https://x.example/f", "field": {"id": "f4"}},
        ],
    },
}


def test_typeform_reads_by_ref_and_keeps_the_rest_by_title() -> None:
    (item,) = typeform.read(delivery(TYPEFORM), config("typeform", first_name="name"))
    assert item.upstream_id == "tok1"
    assert item.lead == {
        "first_name": "Ana",
        "email": "ana@example.com",
        "utm_source": "newsletter",
    }
    assert item.properties["answers"] == {"Size, Ana?": "about 40", "f4": "https://x.example/f"}
    assert item.properties["hidden"] == {"plan": "pro"}
    # by field id too, and from a hidden field
    (item,) = typeform.read(
        delivery(TYPEFORM),
        config("typeform", company="f2", **{"attributes.plan": "hidden.plan"}),
    )
    assert item.lead["company"] == "about 40"
    assert item.lead["attributes"] == {"plan": "pro"}


def test_typeform_refuses_what_it_cannot_read() -> None:
    wrong: Any = json.loads(json.dumps(TYPEFORM))
    wrong["form_response"]["answers"][0] = {"type": "email", "field": {"id": "f1"}}
    wrong["event_type"] = "form_partial"
    with pytest.raises(PayloadRefused) as caught:
        typeform.read(delivery(wrong), config("typeform"))
    assert {p.loc for p in caught.value.problems} == {
        "event_type",
        "form_response.answers[0].email",
    }
    for body in (b"", b"[1, 2]", b'{"a": NaN}', b"\xff\xfe"):
        with pytest.raises(PayloadRefused):
            typeform.read(delivery(body), config("typeform"))


def test_typeform_signature() -> None:
    body = json.dumps(TYPEFORM).encode()
    good = "sha256=" + base64.b64encode(hmac.new(b"s3", body, hashlib.sha256).digest()).decode()
    typeform.verify(delivery(body, headers={"Typeform-Signature": good}), config("typeform", "s3"))
    typeform.verify(delivery(body), config("typeform"))  # no secret: nothing to check
    for headers in ({}, {"Typeform-Signature": "sha256=AAAA"}):
        with pytest.raises(SignatureRefused) as caught:
            typeform.verify(delivery(body, headers=headers), config("typeform", "s3"))
        assert "s3" not in caught.value.detail and good not in caught.value.detail
    with pytest.raises(SignatureRefused):  # a changed body
        typeform.verify(
            delivery(body + b" ", headers={"Typeform-Signature": good}), config("typeform", "s3")
        )


# -- HubSpot --------------------------------------------------------------------------


def test_hubspot_form_mapping_and_values() -> None:
    body = {
        "submittedAt": 1772445480000,
        "fields": [
            {"name": "email", "value": "bo@example.com"},
            {"name": "segment", "value": "smb"},
            {"name": "topics", "value": "a;b"},
            {"name": "topics", "value": "c"},
            {"name": "note", "value": "one; two"},
        ],
        "context": {"pageUri": "https://x.example/p?utm_source=ads&utm_medium=cpc"},
        "legalConsentOptions": {"consent": {"communications": [{"value": False}]}},
    }
    (item,) = hubspot.read(delivery(body), config("hubspot", **{"attributes.segment": "segment"}))
    assert item.lead == {
        "email": "bo@example.com",
        "attributes": {"segment": "smb"},
        "utm_source": "ads",
        "utm_medium": "cpc",
        "consent": False,
        "consent_source": "https://x.example/p?utm_source=ads&utm_medium=cpc",
    }
    assert item.properties["fields"] == {"topics": ["a", "b", "c"], "note": "one; two"}
    assert item.occurred_at == datetime(2026, 3, 2, 9, 58, tzinfo=UTC)
    with pytest.raises(PayloadRefused) as caught:
        hubspot.read(delivery({"fields": [{"value": 1}]}), config("hubspot"))
    assert caught.value.problems[0].loc == "fields[0].name"


def test_hubspot_events_skip_known_others_and_read_the_fetched_contact() -> None:
    events = [
        {"objectId": "7", "eventId": 1, "subscriptionType": "contact.deletion"},
        {"objectId": 8, "eventId": 2, "eventType": "contact.creation", "occurredAt": 0},
    ]
    (item,) = hubspot.read(delivery(events), config("hubspot"))
    assert (item.upstream_id, item.fetch) == ("2", FetchRequest("hubspot", "8"))
    with pytest.raises(PayloadRefused):
        hubspot.read(delivery([]), config("hubspot"))
    contact = {
        "id": "8",
        "createdAt": "2026-03-01T08:00:00.000Z",
        "properties": {
            "email": "cy@example.com",
            "firstname": "Cy",
            "mobilephone": "+14155550100",
            "hs_object_id": "8",
            "lifecyclestage": "lead",
            "city": None,
        },
    }
    fetched = hubspot.read_fetched(contact, config("hubspot"))
    assert fetched.lead == {
        "email": "cy@example.com",
        "first_name": "Cy",
        "phone": "+14155550100",
        "external_system": "hubspot",
        "external_id": "8",
    }
    assert fetched.properties["contact"] == {"lifecyclestage": "lead"}
    assert fetched.occurred_at == datetime(2026, 3, 1, 8, tzinfo=UTC)
    with pytest.raises(PayloadRefused) as caught:
        hubspot.read_fetched({"id": "x", "properties": []}, config("hubspot"))
    assert {p.loc for p in caught.value.problems} == {"id", "properties"}


def test_hubspot_signature_v3() -> None:
    body = b'[{"objectId": 8, "eventId": 2, "subscriptionType": "contact.creation"}]'
    url = "https://baton.example.com/hooks/hs?x=%3A1"
    stamp = str(int(NOW.timestamp() * 1000))
    message = b"POST" + b"https://baton.example.com/hooks/hs?x=:1" + body + stamp.encode()
    good = base64.b64encode(hmac.new(b"app", message, hashlib.sha256).digest()).decode()
    assert hubspot.signature_v3("app", "POST", url, body, stamp) == good
    headers = {"X-HubSpot-Signature-v3": good, "X-HubSpot-Request-Timestamp": stamp}
    hubspot.verify(delivery(body, headers=headers, url=url), config("hubspot", "app"))
    with pytest.raises(SignatureRefused):  # another secret
        hubspot.verify(delivery(body, headers=headers, url=url), config("hubspot", "other"))
    with pytest.raises(SignatureRefused):  # signed for another address
        hubspot.verify(delivery(body, headers=headers, url=url + "2"), config("hubspot", "app"))
    late = NOW + timedelta(minutes=6)
    with pytest.raises(SignatureRefused) as caught:  # an old request replayed
        hubspot.verify(
            delivery(body, headers=headers, url=url, received_at=late), config("hubspot", "app")
        )
    assert "5 minutes" in caught.value.detail
    with pytest.raises(SignatureRefused):
        hubspot.verify(delivery(body, url=url), config("hubspot", "app"))


# -- Web-to-Lead ----------------------------------------------------------------------


def form(body: str, **kwargs: Any) -> Any:
    return delivery(body, content_type="application/x-www-form-urlencoded", **kwargs)


def test_web_to_lead_reads_a_form_post() -> None:
    body = (
        "oid=00Dorg&retURL=https%3A%2F%2Fx.example%2Fthanks&last_name=Ng&email=ng%40example.com"
        "&mobile=%2B14155550101&phone=%2B14155550100&00Nabc=a&00Nabc=b&00Nzzz=keep"
        "&emailOptOut=1&doNotCall=1&description=line1%0D%0Aline2&company="
    )
    (item,) = web_to_lead.read(form(body), config("web_to_lead", **{"00Nabc": "attributes.topics"}))
    assert item.lead == {
        "last_name": "Ng",
        "email": "ng@example.com",
        "phone": "+14155550101",
        "attributes": {"mobile": "+14155550100", "topics": "a;b", "do_not_call": True},
        "consent": False,
        "consent_source": "web-to-lead form",
    }
    assert item.properties == {
        "description": "line1\r\nline2",
        "fields": {"00Nzzz": "keep"},
        "return_url": "https://x.example/thanks",
    }
    assert web_to_lead.return_url(form(body)) == "https://x.example/thanks"
    assert web_to_lead.return_url(form("retURL=https%3A%2F%2Fx.example&a=%")) == "https://x.example"


def test_web_to_lead_multipart_and_charset() -> None:
    body = (
        '--B\r\nContent-Disposition: form-data; name="email"\r\n\r\nmo@example.com\r\n'
        '--B\r\nContent-Disposition: form-data; name="last_name"\r\n\r\nM\u00fcller\r\n--B--\r\n'
    ).encode()
    (item,) = web_to_lead.read(
        delivery(body, content_type="multipart/form-data; boundary=B"), config("web_to_lead")
    )
    assert item.lead == {"email": "mo@example.com", "last_name": "M\u00fcller"}
    latin = form("email=a%40example.com&last_name=M%FCller", query={"encoding": "ISO-8859-1"})
    assert web_to_lead.read(latin, config("web_to_lead"))[0].lead["last_name"] == "M\u00fcller"
    with pytest.raises(PayloadRefused) as caught:  # %FC is not UTF-8
        web_to_lead.read(form("email=a%40example.com&last_name=M%FCller"), config("web_to_lead"))
    assert caught.value.problems[0].loc == "last_name"


def test_web_to_lead_refusals_name_the_field() -> None:
    for body, loc in (
        ("email=a%40example.com&first_name=" + "x" * 41, "first_name"),
        ("email=a%40example.com&zip=%G1", "zip"),
        ("email=a%40example.com&novalue", "novalue"),
        ("", "body"),
        ("oid=1&retURL=x", "email"),
    ):
        with pytest.raises(PayloadRefused) as caught:
            web_to_lead.read(form(body), config("web_to_lead"))
        assert caught.value.problems[0].loc == loc, body
    with pytest.raises(PayloadRefused) as caught:
        web_to_lead.read(delivery({"email": "a@example.com"}), config("web_to_lead"))
    assert caught.value.problems[0].loc == "content-type"


def test_web_to_lead_org_id() -> None:
    web_to_lead.verify(form("oid=00Dorg&email=a%40example.com"), config("web_to_lead", "00Dorg"))
    for body in ("oid=00Dother&email=a%40example.com", "email=a%40example.com"):
        with pytest.raises(SignatureRefused) as caught:
            web_to_lead.verify(form(body), config("web_to_lead", "00Dorg"))
        assert "00Dorg" not in caught.value.detail


# -- Meta lead ads --------------------------------------------------------------------


def test_meta_ids_as_numbers_or_strings_and_other_fields_skipped() -> None:
    body = {
        "object": "page",
        "entry": [
            {
                "changes": [
                    {"field": "feed", "value": {}},
                    {"field": "leadgen", "value": {"leadgen_id": "9007199254740993123"}},
                    {"field": "leadgen", "value": {"leadgen_id": 55, "created_time": 1772445480}},
                ]
            }
        ],
    }
    items = meta_lead_ads.read(delivery(body), config("meta_lead_ads"))
    assert [i.upstream_id for i in items] == ["9007199254740993123", "55"]
    assert items[1].occurred_at == datetime(2026, 3, 2, 9, 58, tzinfo=UTC)
    body["entry"][0]["changes"][1]["value"]["leadgen_id"] = True  # type: ignore[index]
    with pytest.raises(PayloadRefused) as caught:
        meta_lead_ads.read(delivery(body), config("meta_lead_ads"))
    assert caught.value.problems[0].loc == "entry[0].changes[1].value.leadgen_id"


def test_meta_graph_lead_mapping_and_a_lead_posted_directly() -> None:
    lead = {
        "id": "77",
        "created_time": "2026-03-02T09:58:00+0000",
        "field_data": [
            {"name": "email", "values": ["di@example.com"]},
            {"name": "budget", "values": ["10k"]},
            {"name": "interests", "values": ["a", "b"]},
        ],
    }
    item = meta_lead_ads.read_fetched(lead, config("meta_lead_ads", budget="properties.budget"))
    assert item.lead == {"email": "di@example.com", "attributes": {"interests": ["a", "b"]}}
    assert item.properties["budget"] == "10k"
    (posted,) = meta_lead_ads.read(delivery(lead), config("meta_lead_ads"))
    assert posted.fetch is None and posted.upstream_id == "77"
    with pytest.raises(PayloadRefused) as caught:
        meta_lead_ads.read_fetched({**lead, "created_time": "yesterday"}, config("meta_lead_ads"))
    assert caught.value.problems[0].loc == "created_time"


def test_meta_signature_and_handshake() -> None:
    body = b'{"object": "page", "entry": []}'
    good = "sha256=" + hmac.new(b"appsecret", body, hashlib.sha256).hexdigest()
    assert meta_lead_ads.signature("appsecret", body) == good
    secret = config("meta_lead_ads", "appsecret")
    meta_lead_ads.verify(delivery(body, headers={"X-Hub-Signature-256": good}), secret)
    for headers in ({}, {"X-Hub-Signature-256": "sha256=00"}):
        with pytest.raises(SignatureRefused):
            meta_lead_ads.verify(delivery(body, headers=headers), secret)
    query = {"hub.mode": "subscribe", "hub.verify_token": "appsecret", "hub.challenge": "1158"}
    assert meta_lead_ads.challenge(delivery(b"", method="GET", query=query), secret) == "1158"
    for wrong in ({}, {**query, "hub.verify_token": "guess"}, {**query, "hub.mode": "x"}):
        assert meta_lead_ads.challenge(delivery(b"", method="GET", query=wrong), secret) is None
    assert meta_lead_ads.challenge(delivery(b"", query=query), config("meta_lead_ads")) is None


# -- Google Ads lead forms ------------------------------------------------------------


def test_google_ads_custom_questions_dashed_phone_and_key() -> None:
    body = {
        "lead_id": "L1",
        "user_column_data": [
            {"column_id": "PHONE_NUMBER", "string_value": "650-555-0100"},
            {
                "column_id": "WORK_EMAIL",
                "column_name": "Work email",
                "string_value": "e@example.com",
            },
            {"column_id": "budget_q", "column_name": "What is your budget?", "string_value": "5k"},
            {"column_id": "seg", "column_name": "Segment", "string_value": "smb"},
        ],
        "google_key": "k3y",
        "lead_submit_time": "2026-03-02T09:58:00Z",
    }
    (item,) = google_ads_lead_form.read(
        delivery(body), config("google_ads_lead_form", seg="attributes.segment")
    )
    assert item.lead == {
        "phone": "650-555-0100",  # read with the default region when validated
        "email": "e@example.com",
        "attributes": {"What is your budget?": "5k", "segment": "smb"},
    }
    assert item.occurred_at == datetime(2026, 3, 2, 9, 58, tzinfo=UTC)
    google_ads_lead_form.verify(delivery(body), config("google_ads_lead_form", "k3y"))
    capital = {**body, "Google_key": "k3y"}
    del capital["google_key"]
    google_ads_lead_form.verify(delivery(capital), config("google_ads_lead_form", "k3y"))
    for wrong in (
        {**body, "google_key": "nope"},
        {k: v for k, v in body.items() if k != "google_key"},
    ):
        with pytest.raises(SignatureRefused) as caught:
            google_ads_lead_form.verify(delivery(wrong), config("google_ads_lead_form", "k3y"))
        assert "k3y" not in caught.value.detail
    with pytest.raises(PayloadRefused) as caught:
        google_ads_lead_form.read(
            delivery({**body, "user_column_data": [{"column_id": "EMAIL", "string_value": 5}]}),
            config("google_ads_lead_form"),
        )
    assert caught.value.problems[0].loc == "user_column_data[0].string_value"


# -- Calendly -------------------------------------------------------------------------

CALENDLY = {
    "event": "invitee.created",
    "created_at": "2026-03-02T09:58:00.000000Z",
    "payload": {
        "email": "ed@example.com",
        "name": "Ed Vale",
        "uri": "https://api.calendly.com/scheduled_events/E1/invitees/I1",
        "event": "https://api.calendly.com/scheduled_events/E1",
        "questions_and_answers": [{"question": "Team size", "answer": "12", "position": 0}],
        "tracking": {"utm_source": None, "utm_campaign": "spring"},
        "scheduled_event": {"start_time": "2026-03-05T15:00:00.000000Z", "name": "Demo"},
    },
}


def test_calendly_newer_payload_keeps_the_meeting_time_and_a_cancel_is_no_hand_raise() -> None:
    (item,) = calendly.read(
        delivery(CALENDLY), config("calendly", **{"Team size": "attributes.team"})
    )
    assert item.event_type == "meeting_booked"
    assert item.lead == {
        "email": "ed@example.com",
        "first_name": "Ed",
        "last_name": "Vale",
        "utm_campaign": "spring",
        "attributes": {"team": "12"},
    }
    assert item.properties["meeting_start"] == "2026-03-05T15:00:00.000000Z"
    canceled = {**CALENDLY, "event": "invitee.canceled"}
    (cancel,) = calendly.read(delivery(canceled), config("calendly"))
    assert cancel.event_type is None
    assert cancel.upstream_id != item.upstream_id
    assert cancel.properties["calendly_event"] == "invitee.canceled"


def test_calendly_signature() -> None:
    body = json.dumps(CALENDLY).encode()
    stamp = int(NOW.timestamp())
    digest = hmac.new(b"key", f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    header = f"t={stamp},v1={digest}"
    assert calendly.signature("key", body, stamp) == header
    calendly.verify(
        delivery(body, headers={"Calendly-Webhook-Signature": header}), config("calendly", "key")
    )
    for sent in ("", f"t={stamp},v1=00", "v1=" + digest, f"t={stamp - 600},v1={digest}"):
        with pytest.raises(SignatureRefused):
            calendly.verify(
                delivery(body, headers={"Calendly-Webhook-Signature": sent} if sent else {}),
                config("calendly", "key"),
            )


# -- Mapping checks -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "good", "bad"),
    [
        ("typeform", {"email": "mail", "attributes.x": "y"}, {"nonsense": "mail"}),
        ("hubspot", {"company": "company_name"}, {"company": ""}),
        ("web_to_lead", {"00Nabc": "attributes.size"}, {"00Nabc": "attributes."}),
        ("meta_lead_ads", {"budget": "properties.budget"}, {"budget": 3}),
        ("google_ads_lead_form", {"Segment": "segment"}, {"Segment": ""}),
        ("calendly", {"Team size": "attributes.team"}, {"Team size": None}),
    ],
)
def test_check_mapping(kind: str, good: dict[str, Any], bad: dict[str, Any]) -> None:
    adapter = adapter_for(kind)
    assert adapter.check_mapping(good) == []
    (problem,) = adapter.check_mapping(bad)
    assert problem.loc.startswith("mapping")


# -- Whatever arrives: a refusal, never a crash ---------------------------------------

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
_keys = st.sampled_from(
    [
        "form_response",
        "answers",
        "fields",
        "entry",
        "changes",
        "field_data",
        "user_column_data",
        "payload",
        "event",
        "object",
        "lead_id",
        "email",
    ]
)
_shaped = st.dictionaries(_keys, _json, max_size=5)


@settings(max_examples=60, deadline=None)
@given(
    kind=st.sampled_from(
        ["typeform", "hubspot", "web_to_lead", "meta_lead_ads", "google_ads_lead_form", "calendly"]
    ),
    body=st.binary(max_size=64)
    | _json.map(lambda v: json.dumps(v).encode())
    | _shaped.map(lambda v: json.dumps(v).encode()),
)
def test_any_body_is_read_or_refused(kind: str, body: bytes) -> None:
    adapter = adapter_for(kind)
    content_type = (
        "application/x-www-form-urlencoded" if kind == "web_to_lead" else "application/json"
    )
    try:
        items = adapter.read(delivery(body, content_type=content_type), config(kind))
    except PayloadRefused as refused:
        assert refused.problems
    else:
        assert isinstance(items, list)


@settings(max_examples=60, deadline=None)
@given(
    record=_json
    | _shaped
    | st.dictionaries(st.sampled_from(["id", "properties", "field_data", "created_time"]), _json)
)
def test_any_fetched_record_is_read_or_refused(record: Any) -> None:
    for adapter in (meta_lead_ads, hubspot):
        try:
            adapter.read_fetched(record, config("meta_lead_ads"))
        except PayloadRefused as refused:
            assert refused.problems
