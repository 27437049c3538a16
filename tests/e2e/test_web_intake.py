"""The intake pages over HTTP (FastAPI's TestClient) on the web world: an admin or
marketing adds an endpoint, a form tool posts to it with a mapping mistake, the
failed request shows in the log with its error and raw body, the mapping is fixed on
the endpoint's page and the request retried: the lead appears, once."""

from __future__ import annotations

import json
import re

from fastapi.testclient import TestClient
from sqlalchemy import func, select
from tests.e2e import test_web_access as access
from tests.web_world import World

from baton.services.context import Context
from baton.store.tables import intake_endpoints, leads

# The page tests' world and signed-in client (tests/e2e/test_web_access.py).
world_template = access.world_template
sqlite_ctx = access.sqlite_ctx
world = access.world
app_client = access.app_client
sign_in = access.sign_in

SUBMISSION = {
    "submission_id": "sub-1001",
    "contact": {"email_address": "nora.quist@example.org", "name": "Nora"},
    "note": "<script>alert(1)</script> call me",
}


def add_form(client: TestClient, token: str, **fields: str) -> object:
    data = {
        "name": "contact-sales",
        "kind": "generic",
        "source": "website",
        "event_type": "contact_sales",
        "mapping": json.dumps({"email": "contact.email", "upstream_id": "submission_id"}),
        "csrf_token": token,
        **fields,
    }
    return client.post("/admin/intake/endpoints", data=data)


def lead_count(ctx: Context) -> int:
    with ctx.read() as connection:
        return int(connection.execute(select(func.count()).select_from(leads)).scalar_one())


def test_a_mapping_mistake_is_seen_fixed_and_retried_from_the_pages(
    app_client: TestClient, world: World, sqlite_ctx: Context
) -> None:
    token = sign_in(app_client, world.users["marketing"])
    before = lead_count(sqlite_ctx)

    made = add_form(app_client, token)
    assert made.status_code == 200, made.text[:500]
    assert "shown <strong>only this once</strong>" in made.text
    secret = re.search(r'id="secret" class="secret" value="([^"]+)"', made.text)
    assert secret is not None and secret.group(1).startswith("bhk_")
    listing = app_client.get("/admin/intake")
    assert "/hooks/contact-sales" in listing.text
    assert secret.group(1) not in listing.text, "the secret is shown once only"

    # The form tool posts; the mapping names a field the payload does not have.
    posted = app_client.post(
        "/hooks/contact-sales",
        content=json.dumps(SUBMISSION),
        headers={"Content-Type": "application/json", "X-Baton-Hook-Key": secret.group(1)},
    )
    assert posted.status_code in (200, 422), posted.text[:300]
    assert lead_count(sqlite_ctx) == before

    log = app_client.get("/admin/intake?status=failed")
    assert log.status_code == 200
    found = re.search(r'href="/admin/intake/requests/(\d+)"', log.text)
    assert found is not None, log.text[-2000:]
    request_id = found.group(1)
    shown = app_client.get(f"/admin/intake/requests/{request_id}")
    assert shown.status_code == 200
    assert "nora.quist@example.org" in shown.text, "the raw body is shown"
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in shown.text, "escaped, never run"
    assert "<script>alert(1)" not in shown.text
    assert 'class="late"' in shown.text, "the submission's error is shown"

    fixed = app_client.post(
        "/admin/intake/endpoints/contact-sales",
        data={
            "source": "website",
            "event_type": "contact_sales",
            "mapping": json.dumps(
                {"email": "contact.email_address", "first_name": "contact.name",
                 "upstream_id": "submission_id"}
            ),
            "rate_per_minute": "120",
            "active": "yes",
            "csrf_token": token,
        },
    )  # fmt: skip
    assert fixed.status_code == 303
    assert fixed.headers["location"] == "/admin/intake/endpoints/contact-sales"
    with sqlite_ctx.read() as connection:
        kept = connection.execute(select(intake_endpoints.c.secret)).scalar_one()
    assert kept == secret.group(1), "a blank secret field keeps the secret"

    retried = app_client.post(
        f"/admin/intake/requests/{request_id}/retry", data={"csrf_token": token}
    )
    assert retried.status_code == 303
    assert "1 processed" in app_client.get(retried.headers["location"]).text
    assert lead_count(sqlite_ctx) == before + 1
    # Again: nothing is done twice.
    app_client.post("/admin/intake/retry", data={"csrf_token": token})
    assert lead_count(sqlite_ctx) == before + 1
    page = app_client.get(f"/admin/intake/requests/{request_id}")
    assert "processed" in page.text and "/leads/" in page.text


def test_a_refused_endpoint_form_says_why(app_client: TestClient, world: World) -> None:
    token = sign_in(app_client, world.users["admin"])
    bad_json = add_form(app_client, token, mapping="{email: oops")
    assert bad_json.status_code == 303
    assert "the mapping is not JSON" in app_client.get(bad_json.headers["location"]).text
    bad_kind = add_form(app_client, token, kind="carrier-pigeon")
    assert bad_kind.status_code == 303
    assert "unknown kind" in app_client.get(bad_kind.headers["location"]).text


def test_the_endpoint_forms_refuse_a_missing_csrf_token_and_other_roles(
    app_client: TestClient, world: World
) -> None:
    token = sign_in(app_client, world.users["admin"])
    assert add_form(app_client, token).status_code == 200
    for path in (
        "/admin/intake/endpoints/contact-sales",
        "/admin/intake/endpoints/contact-sales/deactivate",
        "/admin/intake/requests/1/retry",
    ):
        answer = app_client.post(path, data={"source": "x"}, headers={"accept": "text/html"})
        assert answer.status_code == 403, path
    sign_in(app_client, world.users["sales_manager"])
    assert app_client.get("/admin/intake/endpoints/contact-sales").status_code == 403
    rep_token = sign_in(app_client, world.users["rep"])
    refused = app_client.post(
        "/admin/intake/endpoints/contact-sales/deactivate",
        data={"csrf_token": rep_token},
        headers={"accept": "text/html"},
    )
    assert refused.status_code == 403
    sign_in(app_client, world.users["admin"])
    page = app_client.get("/admin/intake/endpoints/contact-sales")
    assert page.status_code == 200 and "Turn off" in page.text


def test_marketing_finds_the_page_in_the_nav_and_admins_in_the_admin_menu(
    app_client: TestClient, world: World
) -> None:
    sign_in(app_client, world.users["marketing"])
    assert 'href="/admin/intake"' in app_client.get("/dashboard").text
    sign_in(app_client, world.users["admin"])
    home = app_client.get("/admin")
    assert 'href="/admin/intake"' in home.text
    keys = app_client.get("/admin/intake-keys").text
    assert keys.count('aria-current="page"') == 2, "Admin in the top nav, Intake keys only"


def test_a_meta_endpoint_shows_where_it_fetches_and_never_its_token(
    app_client: TestClient, world: World
) -> None:
    token = sign_in(app_client, world.users["admin"])
    fetch_token = "EAAGpage-token-never-shown-0123456789"
    made = add_form(
        app_client,
        token,
        name="meta-ads",
        kind="meta_lead_ads",
        mapping="",
        secret="meta-app-secret-0123",
        fetch_token=fetch_token,
    )
    assert made.status_code == 303, made.text[:300]
    assert made.headers["location"] == "/admin/intake"
    listing = app_client.get("/admin/intake")
    assert "fetch token set" in listing.text
    page = app_client.get("/admin/intake/endpoints/meta-ads")
    assert page.status_code == 200
    assert "https://graph.facebook.com/v21.0" in page.text
    for text in (listing.text, page.text):
        assert fetch_token not in text and "meta-app-secret-0123" not in text
