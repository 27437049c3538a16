"""The manager's view (``/team``) and the admin pages (``/admin/…``) over HTTP, on the
small web world (:mod:`tests.web_world`): every action through its form, as a
browser without JavaScript would send it.

World: Sam manages teams na (Ana) and emea (Ben); the example contract sends a
company of 1,000+ employees to the team ``enterprise``, which has no reps, so such a
lead waits in the queue.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import urlencode

import pytest
from fastapi.testclient import TestClient
from tests.e2e.test_web_access import sign_in
from tests.web_world import ANA, BEN, OPS, PASSWORD, World, build_world

from baton.api.app import create_app
from baton.domain.access import Role, operator
from baton.domain.activities import ActivityCreate
from baton.domain.leads import SAME_PHONE, LeadCreate
from baton.domain.users import IntakeKeyCreate, UserCreate
from baton.services.activities import ingest_activity
from baton.services.context import Context
from baton.services.handoffs import get_handoff, list_handoffs
from baton.services.leads import capture_lead
from baton.services.merge import count_duplicates, list_duplicates
from baton.services.users import (
    add_intake_key,
    add_user,
    list_intake_keys,
    list_tokens,
    list_users,
)
from baton.services.worker import check_duplicates

NINA = "nina@lumen.example"
"""A manager of team na only."""


@pytest.fixture
def world(sqlite_ctx: Context) -> World:
    world = build_world(sqlite_ctx, handoffs_each=1)
    add_user(
        sqlite_ctx,
        UserCreate(email=NINA, display_name="Nina", role=Role.SALES_MANAGER, teams=["na"]),
        actor=OPS,
        password=PASSWORD,
    )
    return world


@pytest.fixture
def client(sqlite_ctx: Context, world: World) -> Iterator[TestClient]:
    with TestClient(
        create_app(sqlite_ctx), base_url="https://testserver", follow_redirects=False
    ) as client:
        yield client


def queued_handoff(ctx: Context, email: str = "cio@bigcorp.example.com") -> int:
    """A hand-raise from a company of 5,000: the enterprise pool has no reps."""
    data = LeadCreate.model_validate(
        {"email": email, "first_name": "Cleo", "last_name": "Ito", "company": "Bigcorp",
         "country": "US", "attributes": {"employees": 5000}},
        context={"default_region": "US"},
    )  # fmt: skip
    lead = capture_lead(ctx, data, actor=operator("form")).lead
    event = ActivityCreate(email=email, type="demo_request", occurred_at=ctx.clock.now())
    ingest_activity(ctx, event, actor=operator("web"))
    [handoff] = list_handoffs(ctx, lead_id=lead.id, actor=OPS)
    assert handoff.status == "queued", handoff
    return handoff.id


def test_a_manager_assigns_a_queued_handoff_to_a_named_rep(
    client: TestClient, sqlite_ctx: Context, world: World
) -> None:
    queued = queued_handoff(sqlite_ctx)
    csrf = sign_in(client, world.users["sales_manager"])
    page = client.get("/team")
    assert page.status_code == 200
    queue = page.text[page.text.index('id="queue"') :]
    assert f'id="queued-{queued}"' in queue and "team enterprise has no reps" in queue
    assert f'action="/team/handoffs/{queued}/assign"' in queue
    assert "Ben Okafor" in page.text and "in hours" in page.text
    done = client.post(f"/team/handoffs/{queued}/assign", data={"to": BEN, "csrf_token": csrf})
    assert done.status_code == 303 and done.headers["location"] == "/team#queue"
    handoff = get_handoff(sqlite_ctx, queued, actor=OPS)
    assert (handoff.status, handoff.rep_email) == ("assigned", BEN)
    assert handoff.routing["assigned_by"] == world.users["sales_manager"]
    after = client.get("/team")
    assert f"Handoff {queued} assigned to {BEN}" in after.text
    assert f'id="queued-{queued}"' not in after.text
    assert f'id="handoff-{queued}"' in after.text, "now among the open handoffs, on time"
    # Assigning it again is refused on the page, not with an error page.
    again = client.post(f"/team/handoffs/{queued}/assign", data={"to": ANA, "csrf_token": csrf})
    assert again.status_code == 303
    assert "only a queued handoff is assigned" in client.get("/team").text


def test_a_manager_reassigns_an_open_handoff(
    client: TestClient, sqlite_ctx: Context, world: World
) -> None:
    csrf = sign_in(client, world.users["sales_manager"])
    ana = world.first(ANA)
    done = client.post(f"/team/handoffs/{ana}/reassign", data={"to": BEN, "csrf_token": csrf})
    assert done.status_code == 303
    assert get_handoff(sqlite_ctx, ana, actor=OPS).status == "reassigned"
    [moved] = list_handoffs(sqlite_ctx, actor=OPS, rep_email=BEN, status=["assigned"])[:1]
    assert moved.lead_id == get_handoff(sqlite_ctx, ana, actor=OPS).lead_id


def test_a_manager_of_one_team_does_not_see_another_teams_handoffs(
    client: TestClient, world: World
) -> None:
    sign_in(client, NINA)
    page = client.get("/team")
    assert page.status_code == 200
    assert f'id="handoff-{world.first(ANA)}"' in page.text
    assert f'id="handoff-{world.first(BEN)}"' not in page.text
    assert "Ben Okafor" not in page.text and BEN not in page.text
    # Nor can Nina reassign Ben's handoff: it is missing for her (the 404 page).
    csrf = sign_in(client, NINA)
    answer = client.post(
        f"/team/handoffs/{world.first(BEN)}/reassign", data={"to": ANA, "csrf_token": csrf}
    )
    assert answer.status_code == 404
    for role in ("rep", "marketing"):
        sign_in(client, world.users[role])
        assert client.get("/team").status_code == 403


def test_admin_creates_a_user_and_a_token_shown_once_then_disables_the_user(
    client: TestClient, sqlite_ctx: Context, world: World
) -> None:
    csrf = sign_in(client, world.users["admin"])
    made = client.post(
        "/admin/users",
        data={"email": "lee@lumen.example", "display_name": "Lee", "role": "marketing",
              "csrf_token": csrf},
    )  # fmt: skip
    assert made.status_code == 200 and "only this once" in made.text
    password = re.search(r'id="secret" class="secret" value="([^"]+)"', made.text)
    assert password is not None
    assert made.headers["cache-control"] == "no-store"
    listing = client.get("/admin/users")
    assert "lee@lumen.example" in listing.text and password[1] not in listing.text

    token = client.post(
        "/admin/tokens",
        data={"name": "CRM sync", "user_email": "lee@lumen.example",
              "scopes": ["leads:read", "reports:read"], "csrf_token": csrf},
    )  # fmt: skip
    assert token.status_code == 200
    secret = re.search(r'id="secret" class="secret" value="([^"]+)"', token.text)
    assert secret is not None
    tokens = client.get("/admin/tokens")
    [record] = [t for t in list_tokens(sqlite_ctx, actor=OPS) if t.name == "CRM sync"]
    assert f"{record.prefix}…" in tokens.text, "listed by its prefix"
    assert secret[1] not in tokens.text, "never shown again"
    assert (
        client.get("/api/v1/leads", headers={"Authorization": f"Bearer {secret[1]}"}).status_code
        == 200
    )

    [lee] = [u for u in list_users(sqlite_ctx, actor=OPS) if u.email == "lee@lumen.example"]
    off = client.post(f"/admin/users/{lee.id}/disable", data={"csrf_token": csrf})
    assert off.status_code == 303
    assert "lee@lumen.example is disabled" in client.get("/admin/users").text
    [lee] = [u for u in list_users(sqlite_ctx, actor=OPS) if u.email == "lee@lumen.example"]
    assert not lee.active
    client.cookies.clear()
    answer = client.get("/api/v1/leads", headers={"Authorization": f"Bearer {secret[1]}"})
    assert answer.status_code == 401, "a disabled user's token stops"
    # A refused form says why on the page.
    csrf = sign_in(client, world.users["admin"])
    bad = client.post(
        "/admin/users",
        data={"email": "not-an-email", "display_name": "X", "role": "rep", "csrf_token": csrf},
    )
    assert bad.status_code == 303
    assert "email" in client.get("/admin/users").text


def _look_alikes(ctx: Context) -> None:
    for email, phone, first in (
        ("dana@northwind.com", "202-456-1111", "Dana"),
        ("dana.reyes@gmail.com", "(202) 456 1111", "D."),
        ("jsmith@acme.io", None, "Jonathan"),
        ("jon@gmail.com", None, "Jonathon"),
    ):
        fields = {"email": email, "phone": phone, "first_name": first}
        if phone is None:
            fields |= {"last_name": "Smith", "company": "Acme"}
        data = LeadCreate.model_validate(fields, context={"default_region": "US"})
        capture_lead(ctx, data, actor=operator("marketing"))
    check_duplicates(ctx)


def test_bulk_dismiss_of_duplicates_from_the_page(
    client: TestClient, sqlite_ctx: Context, world: World
) -> None:
    _look_alikes(sqlite_ctx)
    pairs = list_duplicates(sqlite_ctx, actor=OPS)
    phone = [p for p in pairs if p.reason == SAME_PHONE]
    assert phone, pairs
    total = len(pairs)
    csrf = sign_in(client, world.users["admin"])
    page = client.get("/admin/duplicates")
    assert page.status_code == 200
    assert f"<strong>{total}</strong> open pairs to review" in page.text
    assert "dana.reyes@gmail.com" in page.text, "both leads side by side"
    # The dry-run count by filter, then the dismissal by filter.
    filtered = client.get("/admin/duplicates", params={"reason": SAME_PHONE})
    assert f"<strong>{len(phone)}</strong> open pairs match this filter" in filtered.text
    dry = client.post(
        "/admin/duplicates/dismiss",
        data={"by_filter": "1", "reason": SAME_PHONE, "dry_run": "1", "csrf_token": csrf},
    )
    assert dry.status_code == 303 and dry.headers["location"] == "/admin/duplicates?" + urlencode(
        {"reason": SAME_PHONE}
    )
    assert (
        f"Dry run: {len(phone)} pairs would be dismissed"
        in client.get(dry.headers["location"]).text
    )
    assert count_duplicates(sqlite_ctx, actor=OPS) == total
    done = client.post(
        "/admin/duplicates/dismiss",
        data={"by_filter": "1", "reason": SAME_PHONE, "csrf_token": csrf},
    )
    assert done.status_code == 303
    assert count_duplicates(sqlite_ctx, actor=OPS) == total - len(phone)
    # By selection: the ticked pairs only.
    left = list_duplicates(sqlite_ctx, actor=OPS)
    picked = [p.id for p in left[:2]]
    done = client.post(
        "/admin/duplicates/dismiss", data={"ids": [str(i) for i in picked], "csrf_token": csrf}
    )
    assert done.status_code == 303
    assert f"{len(picked)} pairs dismissed" in client.get("/admin/duplicates").text
    assert count_duplicates(sqlite_ctx, actor=OPS) == total - len(phone) - len(picked)
    # An empty filter is refused, not read as "all of them".
    client.post("/admin/duplicates/dismiss", data={"by_filter": "1", "csrf_token": csrf})
    assert "say which pairs" in client.get("/admin/duplicates").text
    assert count_duplicates(sqlite_ctx, actor=OPS) == total - len(phone) - len(picked)


def test_a_refused_intake_key_form_says_so_in_the_forms_words_and_keeps_what_was_typed(
    client: TestClient, world: World, sqlite_ctx: Context
) -> None:
    """The admin page words a refusal with its own fields' names and what to write
    instead (not the API's ``origins.0`` or "a JSON number"), and gives the form back
    open, as typed, rather than as stored."""
    key, _ = add_intake_key(
        sqlite_ctx,
        IntakeKeyCreate(name="pricing form", source="web", origins=["https://a.example"]),
        actor=OPS,
    )
    csrf = sign_in(client, world.users["admin"])
    typed = "https://a.example\r\nwww.x.com"
    bad = client.post(
        f"/admin/intake-keys/{key.id}",
        data={"rate_per_minute": "sixty", "origins": typed, "csrf_token": csrf},
    )
    assert bad.status_code == 422
    text = " ".join(bad.text.split())
    assert (
        "Rate per minute must be a whole number from 1 to 100,000. Origin 2 (www.x.com) is "
        "not a browser origin: write it as https://www.x.com." in text
    ), text
    for api_wording in ("rate_per_minute:", "origins.", "JSON", "Input should"):
        assert api_wording not in text
    assert 'value="sixty"' in bad.text and "https://a.example\r\nwww.x.com</textarea>" in bad.text
    assert re.search(rf'<tr id="key-{key.id}">.*?<details open>', bad.text, re.S)
    [same] = [k for k in list_intake_keys(sqlite_ctx, actor=OPS) if k.id == key.id]
    assert (same.rate_per_minute, same.origins) == (60, ["https://a.example"])  # unchanged

    made = client.post(
        "/admin/intake-keys",
        data={"name": "landing", "source": "web", "origins": "landing.example/form",
              "rate_per_minute": "0", "csrf_token": csrf},
    )  # fmt: skip
    assert made.status_code == 422
    assert "Rate per minute must be a whole number from 1 to 100,000." in made.text
    assert "write it as https://landing.example." in made.text
    assert 'value="landing"' in made.text and 'value="0"' in made.text

    fixed = client.post(
        f"/admin/intake-keys/{key.id}",
        data={"rate_per_minute": "90", "origins": "HTTPS://A.example", "csrf_token": csrf},
    )
    assert fixed.status_code == 303
    [now] = [k for k in list_intake_keys(sqlite_ctx, actor=OPS) if k.id == key.id]
    assert (now.rate_per_minute, now.origins) == (90, ["https://a.example"])
