"""Every documented platform sample in ``../shared/datasets/webhook-samples`` read by its
adapter: the good ones give the expected lead, activity type and upstream id; every
``*.bad.json`` variant is refused with a problem naming the field.

The samples are not shipped with the project; without the share these tests are skipped
(the inline payloads in test_adapters_inline.py cover the behaviour without it)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from baton.domain.intake import (
    Delivery,
    EndpointConfig,
    FetchRequest,
    IntakeItem,
    PayloadRefused,
)
from baton.integrations import adapter_for, meta_lead_ads

SAMPLES = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "webhook-samples"
pytestmark = pytest.mark.skipif(
    not SAMPLES.is_dir(), reason="../shared/datasets/webhook-samples is not present"
)

FILES = {
    "typeform": "typeform",
    "hubspot": "hubspot",
    "web_to_lead": "salesforce-web-to-lead",
    "meta_lead_ads": "facebook-lead-ads",
    "google_ads_lead_form": "google-ads-lead-form",
    "calendly": "calendly",
}


def sample(kind: str, name: str, *, bad: bool = False) -> dict[str, Any]:
    path = SAMPLES / (FILES[kind] + (".bad.json" if bad else ".json"))
    for found in json.loads(path.read_text(encoding="utf-8"))["samples"]:
        if found["name"] == name:
            return dict(found)
    raise AssertionError(f"no sample {name} in {path.name}")


def delivery_of(found: dict[str, Any]) -> Delivery:
    if "raw_body" in found:
        body, content_type = found["raw_body"].encode(), found["content_type"]
    else:
        body, content_type = json.dumps(found["payload"]).encode(), "application/json"
    return Delivery(
        body=body,
        content_type=content_type,
        headers={},
        query={},
        received_at=datetime(2025, 11, 5, 9, 0, tzinfo=UTC),
    )


def endpoint(kind: str, **mapping: str) -> EndpointConfig:
    return EndpointConfig(name=f"{kind}-test", kind=kind, source=kind, mapping=mapping)


def read(kind: str, name: str, config: EndpointConfig | None = None) -> list[IntakeItem]:
    adapter = adapter_for(kind)
    items: list[IntakeItem] = adapter.read(
        delivery_of(sample(kind, name)), config or endpoint(kind)
    )
    return items


def test_typeform_demo_request_reads_every_answer_type() -> None:
    config = endpoint(
        "typeform",
        title="nwa_role",
        consent="nwa_consent",
        **{"attributes.company_size": "nwa_company_size", "attributes.seats": "nwa_seats"},
    )
    (item,) = read("typeform", "webhook_form_response_demo_request", config)
    assert item.upstream_id == "46a950c3173e6e5ea297438cf93f3a2e"
    assert item.event_type == "form_submit"
    assert item.occurred_at == datetime(2025, 11, 4, 8, 58, 7, tzinfo=UTC)
    assert item.lead == {
        "first_name": "Sophie",
        "last_name": "Marchand",
        "email": "sophie.marchand@example.net",
        "phone": "+33199004567",
        "company": "Atelier Vautrin SAS",
        "country": "France",
        "title": "Head of Data",
        "consent": True,
        "attributes": {"company_size": "11-50", "seats": 35},
        "utm_source": "newsletter",
        "utm_medium": "email",
        "utm_campaign": "nwa_demo_q4_fr",
        "utm_content": "forecasting_teaser",
    }
    answers = item.properties["answers"]
    # Unmapped answers stay, by question title, for the rep (every other type: url,
    # choices, long text, number, date, boolean); the recall placeholder is filled in.
    assert answers["Your company's website"] == "https://atelier-vautrin.example.net"
    assert answers["Which parts of Northwind should the demo cover? Pick as many as you like."] == [
        "Self-service dashboards",
        "Revenue forecasting",
    ]
    assert answers["How soon do you need this? 1 = just exploring, 5 = this quarter"] == 4
    assert answers["Is there a date you'd ideally like to be up and running?"] == "2026-01-15"
    assert answers["Does your team use another BI tool today?"] is True
    assert any(title.startswith("Thanks, Sophie! What would") for title in answers)
    assert item.properties["variables"] == {"score": 7, "segment": "smb"}
    assert item.properties["form_title"] == "Northwind Analytics: request a demo"


def test_typeform_bad_variants_name_the_field() -> None:
    adapter = adapter_for("typeform")
    truncated = delivery_of(sample("typeform", "form_response_truncated_body", bad=True))
    with pytest.raises(PayloadRefused) as caught:
        adapter.read(truncated, endpoint("typeform"))
    assert caught.value.problems[0].loc == "body"
    assert "truncated" in caught.value.problems[0].message

    wrong = delivery_of(sample("typeform", "form_response_wrong_value_types", bad=True))
    with pytest.raises(PayloadRefused) as caught:
        adapter.read(wrong, endpoint("typeform"))
    problems = {p.loc: p.message for p in caught.value.problems}
    assert problems == {
        "form_response.answers[11].number": 'expected a number, got the string "about 35"',
        "form_response.answers[15].boolean": 'expected true or false, got the string "yes"',
    }


def test_hubspot_webhook_batch_asks_for_each_contact() -> None:
    items = read("hubspot", "webhooks_batch_contact_events")
    assert [(i.upstream_id, i.fetch and i.fetch.object_id) for i in items] == [
        ("8442437980", "2974960"),
        ("2476869041", "2982973"),
    ]
    assert all(i.fetch is not None and i.fetch.platform == "hubspot" for i in items)
    assert items[0].properties["property_name"] == "lifecyclestage"
    assert items[0].properties["property_value"] == "salesqualifiedlead"
    assert items[1].occurred_at == datetime(2025, 11, 3, 10, 14, 23, 387000, tzinfo=UTC)


def test_hubspot_forms_submission_with_consent_and_page_utms() -> None:
    (item,) = read("hubspot", "forms_v3_submit_basic")
    assert item.event_type == "form_submit"
    assert item.lead == {
        "email": "priya.raman@example.com",
        "first_name": "Priya",
        "last_name": "Raman",
        "company": "Larchmont Freight Ltd",
        "title": "Head of Operations",
        "phone": "+44 161 496 0123",
        "country": "United Kingdom",
        "utm_source": "linkedin",
        "utm_medium": "paid_social",
        "utm_campaign": "nwa_demo_q4_uk",
        "consent": True,
        "consent_basis": "consent",
        "consent_source": "www.northwind-analytics.example.com/demo?utm_source=linkedin"
        "&utm_medium=paid_social&utm_campaign=nwa_demo_q4_uk",
    }
    assert item.properties["fields"]["company_size_band"] == "51-200"
    assert item.properties["consent_to_process"] is True
    assert item.properties["hutk"] == "a8baf657400a5c949fda56f65cfb1514"
    assert item.occurred_at == datetime(2025, 11, 3, 10, 14, 22, tzinfo=UTC)
    again = read("hubspot", "forms_v3_submit_basic")
    assert again[0].upstream_id == item.upstream_id  # a replay is recognized


def test_hubspot_mixed_value_types() -> None:
    (item,) = read("hubspot", "forms_v3_submit_authenticated_mixed_types")
    assert item.lead == {"email": "kenji.watanabe@example.net", "last_name": "Watanabe"}
    assert item.properties["fields"] == {
        "demo_topics": ["dashboards", "forecasting"],
        "preferred_demo_date": "2025-11-12",
        "is_existing_bi_user": True,
    }
    assert item.properties["sfdc_campaign_id"] == "7018d000000vtCAAAY"


def test_hubspot_bad_variants_name_the_field() -> None:
    adapter = adapter_for("hubspot")
    for name, loc, words in (
        ("webhooks_batch_unknown_subscription_type", "[1].subscriptionType", "contact.teleported"),
        ("forms_v3_submit_missing_email", "fields", "no field named 'email'"),
    ):
        with pytest.raises(PayloadRefused) as caught:
            adapter.read(delivery_of(sample("hubspot", name, bad=True)), endpoint("hubspot"))
        (problem,) = caught.value.problems
        assert problem.loc == loc and words in problem.message


def test_web_to_lead_demo_request() -> None:
    config = endpoint(
        "web_to_lead",
        **{
            "00N8d00000AgCtX": "attributes.company_size",
            "00N8d00000gxLBX": "attributes.demo_topics",
            "00N8d00000hsvrw": "consent",
            "00N8d0000035y5T": "utm_source",
            "00N8d00000oTboW": "utm_medium",
            "00N8d00000wpjic": "utm_campaign",
        },
    )
    (item,) = read("web_to_lead", "demo_request_urlencoded_body", config)
    assert item.lead["email"] == "marcus.bell@example.org"
    assert item.lead["last_name"] == "Bell"
    assert item.lead["company"] == "Tallgrass Software Inc."
    assert item.lead["phone"] == "+1 312 555 0164"
    assert item.lead["region"] == "IL"
    assert item.lead["campaign"] == "7018d000000QMN1"
    assert item.lead["consent"] is True
    assert (item.lead["utm_source"], item.lead["utm_medium"]) == ("google", "cpc")
    assert item.lead["attributes"]["demo_topics"] == "Revenue forecasting;Data warehouse connectors"
    assert item.lead["attributes"]["company_size"] == "51-200"
    assert (
        item.properties["return_url"] == "https://www.northwind-analytics.example.com/demo/thanks"
    )
    assert item.properties["description"].startswith("Pipeline numbers live in three tools.\r\n")
    # the unmapped custom field is kept under its id
    assert item.properties["fields"] == {
        "00N8d00000iQSIb": "A weekly pipeline and forecast dashboard our CFO can trust "
        "(~20 viewers)."
    }
    # the JSON representation in the sample file is the same submission
    as_json = sample("web_to_lead", "demo_request_as_json_object")["payload"]
    assert item.lead["title"] == as_json["title"]


def test_web_to_lead_bad_variants_name_the_field() -> None:
    adapter = adapter_for("web_to_lead")
    with pytest.raises(PayloadRefused) as caught:
        adapter.read(
            delivery_of(sample("web_to_lead", "urlencoded_body_truncated_mid_escape", bad=True)),
            endpoint("web_to_lead"),
        )
    (problem,) = caught.value.problems
    assert problem.loc == "description" and "'%0'" in problem.message
    assert "cut off" in problem.message
    with pytest.raises(PayloadRefused) as caught:
        adapter.read(
            delivery_of(sample("web_to_lead", "urlencoded_last_name_oversized", bad=True)),
            endpoint("web_to_lead"),
        )
    (problem,) = caught.value.problems
    assert problem.loc == "last_name" and "maxlength of 80" in problem.message


def test_meta_webhook_asks_for_each_lead_and_the_graph_lead_fills_it() -> None:
    items = read("meta_lead_ads", "webhook_page_leadgen_notification")
    assert [(i.upstream_id, i.fetch) for i in items] == [
        ("437874384353", FetchRequest("meta", "437874384353")),
        ("437874384986", FetchRequest("meta", "437874384986")),
    ]
    lead = sample("meta_lead_ads", "graph_api_get_lead")["payload"]
    item = meta_lead_ads.read_fetched(
        lead, endpoint("meta_lead_ads", team_size_band="attributes.team_size")
    )
    assert item.upstream_id == items[0].upstream_id
    assert item.occurred_at == datetime(2025, 11, 5, 7, 12, 44, tzinfo=UTC)
    assert item.lead == {
        "first_name": "Liam",
        "last_name": "Hargreaves",
        "email": "liam.hargreaves@example.com",
        "phone": "+61491570156",
        "company": "Quokka Retail Pty Ltd",
        "title": "Chief Technology Officer",
        "attributes": {
            "team_size": "201-1000",
            "goal_with_northwind": "Store-level sales and stock dashboards that refresh hourly",
        },
    }
    page = sample("meta_lead_ads", "graph_api_bulk_read_form_leads")["payload"]
    (grace,) = meta_lead_ads.read_fetched_page(page, endpoint("meta_lead_ads"))
    assert grace.upstream_id == items[1].upstream_id
    assert grace.lead["email"] == "grace.whitfield@example.org"
    # a relay may post the page as it came from GET /<form_id>/leads
    (posted,) = meta_lead_ads.read(
        delivery_of(sample("meta_lead_ads", "graph_api_bulk_read_form_leads")),
        endpoint("meta_lead_ads"),
    )
    assert posted.lead == grace.lead and posted.upstream_id == grace.upstream_id


def test_meta_bad_variants_name_the_field() -> None:
    with pytest.raises(PayloadRefused) as caught:
        meta_lead_ads.read(
            delivery_of(sample("meta_lead_ads", "webhook_leadgen_missing_leadgen_id", bad=True)),
            endpoint("meta_lead_ads"),
        )
    (problem,) = caught.value.problems
    assert problem.loc == "entry[0].changes[0].value.leadgen_id"
    bare = sample("meta_lead_ads", "graph_lead_values_not_arrays", bad=True)["payload"]
    with pytest.raises(PayloadRefused) as caught:
        meta_lead_ads.read_fetched(bare, endpoint("meta_lead_ads"))
    assert caught.value.problems[0].loc == "field_data[0].values"
    assert caught.value.problems[0].message == (
        'expected an array of texts, got the string "Liam Hargreaves"'
    )
    assert len(caught.value.problems) == 7


def test_google_ads_production_and_test_leads() -> None:
    (item,) = read("google_ads_lead_form", "lead_production")
    assert item.upstream_id.startswith("Cj0KCQiA7rmJoYM785pHPDF2")
    assert item.event_type == "form_submit"
    assert item.lead == {
        "first_name": "Daniel",
        "last_name": "Okafor",
        "phone": "+16475550142",
        "email": "daniel.okafor@example.org",
        "company": "Brightwater Clinics Inc.",
        "title": "VP Finance",
    }
    assert item.properties["google_campaign_id"] == "231298"
    (test_lead,) = read("google_ads_lead_form", "lead_test_capital_google_key")
    assert test_lead.event_type is None  # a test lead never raises a hand
    assert test_lead.properties["is_test"] is True
    assert test_lead.lead["attributes"] == {"google_ads_test": True}


def test_google_ads_bad_variants_name_the_field() -> None:
    adapter = adapter_for("google_ads_lead_form")
    for name, words in (
        ("lead_missing_email_and_phone", "no EMAIL, WORK_EMAIL or PHONE_NUMBER column"),
        ("lead_user_column_data_not_array", "got an object"),
    ):
        with pytest.raises(PayloadRefused) as caught:
            adapter.read(
                delivery_of(sample("google_ads_lead_form", name, bad=True)),
                endpoint("google_ads_lead_form"),
            )
        (problem,) = caught.value.problems
        assert problem.loc == "user_column_data" and words in problem.message


def test_calendly_booking_is_a_meeting_booked() -> None:
    (item,) = read("calendly", "webhook_v2_invitee_created")
    assert item.event_type == "meeting_booked"
    assert item.upstream_id == (
        "invitee.created:https://api.calendly.com/scheduled_events/V9FRWG9FE52NF9GB"
        "/invitees/HYYALFS9OS1QA7IE"
    )
    assert item.lead == {
        "email": "priya.raman@example.com",
        "first_name": "Priya",
        "last_name": "Raman",
        "phone": "+44 161 496 0123",
        "company": "Larchmont Freight Ltd",
        "utm_source": "hubspot",
        "utm_medium": "email",
        "utm_campaign": "nwa_demo_q4_uk",
        "utm_content": "book_your_slot",
    }
    assert item.properties["event_uri"] == (
        "https://api.calendly.com/scheduled_events/V9FRWG9FE52NF9GB"
    )
    assert item.properties["timezone"] == "Europe/London"
    assert item.properties["cancel_url"].startswith("https://calendly.com/cancellations/")
    assert "meeting_start" not in item.properties  # the documented payload has none
    assert len(item.properties["answers"]) == 3


def test_calendly_bad_variants_name_the_field() -> None:
    adapter = adapter_for("calendly")
    for name, loc in (
        ("invitee_created_missing_email", "payload.email"),
        ("unknown_event_type", "event"),
    ):
        with pytest.raises(PayloadRefused) as caught:
            adapter.read(delivery_of(sample("calendly", name, bad=True)), endpoint("calendly"))
        (problem,) = caught.value.problems
        assert problem.loc == loc


@pytest.mark.parametrize("kind", sorted(FILES))
def test_every_bad_variant_is_refused(kind: str) -> None:
    path = SAMPLES / (FILES[kind] + ".bad.json")
    adapter = adapter_for(kind)
    for found in json.loads(path.read_text(encoding="utf-8"))["samples"]:
        with pytest.raises(PayloadRefused) as caught:
            if kind == "meta_lead_ads" and "field_data" in found.get("payload", {}):
                meta_lead_ads.read_fetched(found["payload"], endpoint(kind))
            else:
                adapter.read(delivery_of(found), endpoint(kind))
        assert caught.value.problems, found["name"]
        assert all(p.loc and p.message for p in caught.value.problems)
