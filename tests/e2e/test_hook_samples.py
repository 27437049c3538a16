"""Every documented platform sample (``../shared/datasets/webhook-samples``) posted over
real HTTP to a configured endpoint of its kind, on SQLite and PostgreSQL (issue 14):
signed as the platform signs, each good sample is stored raw and becomes its lead (or
waits for the fetch from the platform); each ``*.bad.json`` variant is a clear 4xx (a
Web-to-Lead post too, never its 303 to the thank-you page) naming the field, with the
raw body kept in the log; a wrong signature is a 401 with the request kept; a lead
whose email the form sends under a custom field is fixed by a mapping change and a
retry; a Calendly booking hands the lead to a rep under the example contract.

The samples are not shipped with the project: without the share these tests are
skipped (tests/unit/test_adapters_inline.py covers the adapters without it)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from tests.e2e.live_server import live_server

from baton.api.app import create_app
from baton.domain.access import operator
from baton.domain.clock import ManualClock
from baton.domain.reps import RepCreate, TeamCreate
from baton.integrations import calendly, hubspot, meta_lead_ads
from baton.integrations._common import b64, hmac_sha256
from baton.services import contracts as contract_service
from baton.services import handoffs as handoff_service
from baton.services import intake as intake_service
from baton.services import reps as rep_service
from baton.services.context import Context
from baton.store.tables import activities, leads

SAMPLES = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "webhook-samples"
pytestmark = pytest.mark.skipif(
    not SAMPLES.is_dir(), reason="../shared/datasets/webhook-samples is not present"
)
EXAMPLE = (Path(__file__).parents[2] / "contracts" / "example.yaml").read_text()
OP = operator("test")
ALWAYS = {d: ["00:00-24:00"] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
THANKS = "https://www.northwind-analytics.example.com/demo/thanks"
FILES = {
    "typeform": "typeform",
    "hubspot": "hubspot",
    "web_to_lead": "salesforce-web-to-lead",
    "meta_lead_ads": "facebook-lead-ads",
    "google_ads_lead_form": "google-ads-lead-form",
    "calendly": "calendly",
}
SECRETS = {
    "typeform": "tf-secret-123",
    "hubspot": "hs-client-secret",
    "web_to_lead": "00D8d000000PqDA",  # the org id the form sends as oid
    "meta_lead_ads": "meta-app-secret",
    "google_ads_lead_form": "ygjyepttepfdqhdfkfw",  # the samples' google_key
    "calendly": "calendly-signing-key",
}


def samples(kind: str, *, bad: bool = False) -> list[dict[str, Any]]:
    path = SAMPLES / (FILES[kind] + (".bad.json" if bad else ".json"))
    return list(json.loads(path.read_text(encoding="utf-8"))["samples"])


def body_of(sample: dict[str, Any]) -> tuple[bytes, str]:
    if "raw_body" in sample:
        return sample["raw_body"].encode(), str(sample["content_type"])
    return json.dumps(sample["payload"]).encode(), "application/json"


def name_of(kind: str) -> str:
    return kind.replace("_", "-")


def signed(kind: str, body: bytes, url: str, now_ms: int) -> dict[str, str]:
    """The headers the platform would send with ``body``."""
    secret = SECRETS[kind]
    if kind == "typeform":
        return {"Typeform-Signature": "sha256=" + b64(hmac_sha256(secret, body))}
    if kind == "hubspot":
        stamp = str(now_ms)
        return {
            "X-HubSpot-Signature-v3": hubspot.signature_v3(secret, "POST", url, body, stamp),
            "X-HubSpot-Request-Timestamp": stamp,
        }
    if kind == "meta_lead_ads":
        return {"X-Hub-Signature-256": meta_lead_ads.signature(secret, body)}
    if kind == "calendly":
        return {"Calendly-Webhook-Signature": calendly.signature(secret, body, now_ms // 1000)}
    return {}  # web_to_lead and google: the key is in the body


def add_endpoints(ctx: Context, **mappings: dict[str, Any]) -> None:
    for kind in FILES:
        spec: dict[str, Any] = {
            "name": name_of(kind),
            "kind": kind,
            "source": kind.split("_")[0],
            "secret": SECRETS[kind],
            "mapping": mappings.get(kind, {}),
        }
        if kind == "web_to_lead":
            spec["return_urls"] = ["https://www.northwind-analytics.example.com/"]
        intake_service.add_endpoint(ctx, spec, actor=OP)
    relay = {"name": "meta-relay", "kind": "meta_lead_ads", "source": "meta"}
    intake_service.add_endpoint(ctx, {**relay, "secret": SECRETS["meta_lead_ads"]}, actor=OP)


@pytest.fixture
def served(ctx: Context) -> Iterator[tuple[Context, httpx.Client, str]]:
    with (
        live_server(create_app(ctx)) as url,
        httpx.Client(base_url=url, timeout=30, follow_redirects=False) as client,
    ):
        yield ctx, client, url


def post(
    client: httpx.Client,
    url: str,
    ctx: Context,
    kind: str,
    body: bytes,
    content_type: str,
    name: str | None = None,
) -> httpx.Response:
    path = f"/hooks/{name or name_of(kind)}"
    now_ms = int(ctx.clock.now().timestamp() * 1000)
    headers = {"content-type": content_type, **signed(kind, body, url + path, now_ms)}
    return client.post(path, content=body, headers=headers)


def lead_emails(ctx: Context) -> set[str]:
    with ctx.read() as connection:
        return {e for (e,) in connection.execute(select(leads.c.email)) if e}


def test_every_good_sample_is_stored_and_becomes_its_lead(
    served: tuple[Context, httpx.Client, str],
) -> None:
    ctx, client, url = served
    add_endpoints(
        ctx,
        typeform={"title": "nwa_role", "consent": "nwa_consent"},
        web_to_lead={"00N8d0000035y5T": "utm_source", "00N8d00000AgCtX": "attributes.size"},
    )
    answers: dict[str, list[tuple[int, Any]]] = {}
    for kind in FILES:
        for sample in samples(kind):
            if kind == "web_to_lead" and "raw_body" not in sample:
                continue  # the file's JSON rendering of the same post, not a wire format
            if kind == "meta_lead_ads" and sample["name"] == "graph_api_bulk_read_form_leads":
                continue  # a page of the fetch step (tests/unit), not something Meta posts
            body, content_type = body_of(sample)
            # a Graph lead body as a relay (or the fetch step) delivers it: its own
            # endpoint, since the notification above already holds that lead id
            relay = "meta-relay" if sample["name"] == "graph_api_get_lead" else None
            answer = post(client, url, ctx, kind, body, content_type, relay)
            answers.setdefault(kind, []).append(
                (answer.status_code, answer.json() if answer.status_code != 303 else answer)
            )
            assert answer.status_code in (200, 202, 303), (kind, sample["name"], answer.text)
    assert answers["web_to_lead"][0][1].headers["location"] == THANKS
    # HubSpot's batch and Meta's notification carry ids only: they wait for the fetch
    hubspot_batch = answers["hubspot"][0]
    assert hubspot_batch[0] == 202
    assert [i["status"] for i in hubspot_batch[1]["items"]] == ["awaiting_fetch"] * 2
    meta_notice = answers["meta_lead_ads"][0]
    assert meta_notice[0] == 202
    assert [i["status"] for i in meta_notice[1]["items"]] == ["awaiting_fetch"] * 2
    # the Graph lead body posted as the fetch step delivers it is read at once
    assert answers["meta_lead_ads"][1][1]["items"][0]["status"] == "processed"
    assert lead_emails(ctx) == {
        "sophie.marchand@example.net",
        "priya.raman@example.com",
        "kenji.watanabe@example.net",
        "marcus.bell@example.org",
        "liam.hargreaves@example.com",
        "daniel.okafor@example.org",
    }
    with ctx.read() as connection:
        marcus = (
            connection.execute(select(leads).where(leads.c.email == "marcus.bell@example.org"))
            .mappings()
            .one()
        )
        kinds = {t for (t,) in connection.execute(select(activities.c.type))}
    assert (marcus["utm_source"], marcus["region"]) == ("google", "IL")
    assert {"form_submit", "meeting_booked"} <= kinds
    # the Google test lead (no email) is stored by its phone, as a capture only
    log = intake_service.intake_log(ctx, actor=OP, endpoint="google-ads-lead-form")
    assert {r.status for r in log} == {"processed"} and len(log) == 2
    # replays: same answer, nothing written twice
    before = lead_emails(ctx)
    body, content_type = body_of(samples("typeform")[0])
    again = post(client, url, ctx, "typeform", body, content_type)
    assert again.status_code == 200 and again.json()["items"][0]["status"] == "duplicate"
    assert lead_emails(ctx) == before


def test_every_bad_sample_is_a_clear_4xx_and_kept_raw(
    served: tuple[Context, httpx.Client, str],
) -> None:
    ctx, client, url = served
    add_endpoints(ctx)
    for kind in FILES:
        for sample in samples(kind, bad=True):
            body, content_type = body_of(sample)
            answer = post(client, url, ctx, kind, body, content_type)
            # A web form too: its thank-you page would say the lead reached sales
            # (before 0.12.0 it got its 303).
            assert answer.headers.get("location") is None, (kind, sample["name"])
            assert answer.status_code == 422, (kind, sample["name"], answer.text)
            problem = answer.json()
            assert answer.headers["content-type"] == "application/problem+json"
            assert problem["errors"] and all(e["loc"] for e in problem["errors"])
            [logged] = intake_service.intake_log(ctx, actor=OP, limit=1)
            assert logged.status == "failed", (kind, sample["name"])
            shown = intake_service.show_request(ctx, logged.id, actor=OP)
            # As received, but for the endpoint's secret (a web form's oid): masked.
            expected = body.decode()
            if SECRETS[kind]:
                expected = expected.replace(SECRETS[kind], "***")
            assert shown.body_text == expected, (kind, sample["name"])
    assert lead_emails(ctx) == set()


def test_a_wrong_signature_is_401_and_the_request_is_kept(
    served: tuple[Context, httpx.Client, str],
) -> None:
    ctx, client, url = served
    add_endpoints(ctx)
    for kind in FILES:
        sample = samples(kind)[0]
        body, content_type = body_of(sample)
        if kind == "web_to_lead":
            body = body.replace(b"oid=00D8d000000PqDA", b"oid=00D000000000BAD")
        elif kind == "google_ads_lead_form":
            body = body.replace(b"ygjyepttepfdqhdfkfw", b"not-the-key")
        headers = {"content-type": content_type}
        headers.update({k: v[:-4] + "AAAA" for k, v in signed(kind, body, url, 0).items()})
        answer = client.post(f"/hooks/{name_of(kind)}", content=body, headers=headers)
        if kind == "web_to_lead":
            assert answer.status_code == 303
        else:
            assert answer.status_code == 401, (kind, answer.text)
            assert SECRETS[kind] not in answer.text
        [logged] = intake_service.intake_log(ctx, actor=OP, limit=1)
        assert logged.status == "refused"
    assert lead_emails(ctx) == set()


def test_meta_subscribe_handshake(served: tuple[Context, httpx.Client, str]) -> None:
    ctx, client, _ = served
    add_endpoints(ctx)
    query = {"hub.mode": "subscribe", "hub.challenge": "1158201444", "hub.verify_token": ""}
    good = client.get(
        "/hooks/meta-lead-ads", params={**query, "hub.verify_token": SECRETS["meta_lead_ads"]}
    )
    assert (good.status_code, good.text) == (200, "1158201444")
    wrong = client.get("/hooks/meta-lead-ads", params={**query, "hub.verify_token": "guess"})
    assert wrong.status_code == 403 and "meta-app-secret" not in wrong.text


def test_a_custom_email_field_is_fixed_by_the_mapping_and_retried(
    served: tuple[Context, httpx.Client, str],
) -> None:
    ctx, client, url = served
    add_endpoints(ctx)
    production = samples("google_ads_lead_form")[0]["payload"]
    columns = [
        {**c, "column_id": "work_email_q", "column_name": "Your work email"}
        if c["column_id"] == "EMAIL"
        else c
        for c in production["user_column_data"]
        if c["column_id"] != "PHONE_NUMBER"
    ]
    body = json.dumps({**production, "user_column_data": columns}).encode()
    first = post(client, url, ctx, "google_ads_lead_form", body, "application/json")
    assert first.status_code == 422
    assert first.json()["errors"][0]["loc"] == "user_column_data"
    intake_service.update_endpoint(
        ctx, "google-ads-lead-form", {"mapping": {"Your work email": "email"}}, actor=OP
    )
    report = intake_service.retry(ctx, actor=OP, endpoint="google-ads-lead-form")
    assert report.processed == 1
    assert lead_emails(ctx) == {"daniel.okafor@example.org"}
    assert intake_service.retry(ctx, actor=OP, endpoint="google-ads-lead-form").processed == 0


def test_a_calendly_booking_hands_the_lead_to_a_rep(
    served: tuple[Context, httpx.Client, str],
) -> None:
    ctx, client, url = served
    assert isinstance(ctx.clock, ManualClock)
    version = contract_service.create_contract(ctx, EXAMPLE, actor=OP).version
    contract_service.approve_contract(ctx, version, role="marketing", actor=operator("maria"))
    contract_service.approve_contract(ctx, version, role="sales", actor=operator("sam"))
    contract_service.activate_contract(ctx, version, actor=OP)
    rep_service.create_team(ctx, TeamCreate(name="na"), actor=OP)
    rep_service.create_rep(
        ctx,
        RepCreate(email="ana@lumen.example", name="Ana Ruiz", team="na", working_hours=ALWAYS),
        actor=OP,
    )
    add_endpoints(ctx)
    payload = json.loads(json.dumps(samples("calendly")[0]["payload"]))
    booked = ctx.clock.now().isoformat().replace("+00:00", "Z")
    payload["created_at"] = payload["payload"]["created_at"] = booked  # booked just now
    answer = post(client, url, ctx, "calendly", json.dumps(payload).encode(), "application/json")
    assert answer.status_code == 200, answer.text
    [answered] = answer.json()["items"]
    assert "lead_id" not in answered, "the sender gets no internal id; the log has it"
    [item] = intake_service.show_request(ctx, answer.json()["request_id"], actor=OP).items
    assert item.lead_id is not None and item.activity_id is not None
    [handoff] = handoff_service.list_handoffs(ctx, lead_id=item.lead_id, actor=OP)
    assert handoff.rep_email == "ana@lumen.example"
    with ctx.read() as connection:
        properties = connection.execute(
            select(activities.c.properties).where(activities.c.id == item.activity_id)
        ).scalar_one()
    assert properties["event_uri"].startswith("https://api.calendly.com/scheduled_events/")
    assert properties["cancel_url"].startswith("https://calendly.com/cancellations/")
