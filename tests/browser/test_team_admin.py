"""The manager's view and the admin pages in a real browser: a manager hands a queued
handoff to a rep they name; the pages pass axe-core; ``team.png`` and ``admin.png``
are saved."""

from __future__ import annotations

import uuid
from typing import Any

from tests.e2e.test_web_team_admin import queued_handoff
from tests.web_world import BEN, OPS

from baton.domain.users import IntakeKeyCreate
from baton.services.context import Context
from baton.services.handoffs import get_handoff
from baton.services.users import add_intake_key, list_intake_keys


def test_a_manager_assigns_a_queued_handoff_to_a_named_rep(
    page_as: Any, web_ctx: Context, axe_check: Any, screenshot: Any
) -> None:
    queued = queued_handoff(web_ctx, f"cio.{uuid.uuid4().hex[:6]}@bigcorp.example.com")
    page = page_as("sales_manager")
    page.goto("/team")
    row = page.locator(f"#queued-{queued}")
    assert "team enterprise has no reps" in row.inner_text()
    axe_check(page)
    screenshot(page, "team")
    row.get_by_label("Rep", exact=True).select_option(BEN)
    row.get_by_role("button", name="Assign").click()
    page.wait_for_load_state()
    assert f"Handoff {queued} assigned to {BEN}" in page.get_by_role("status").first.inner_text()
    assert page.locator(f"#queued-{queued}").count() == 0
    assert page.locator(f"#handoff-{queued}").count() == 1
    handoff = get_handoff(web_ctx, queued, actor=OPS)
    assert (handoff.status, handoff.rep_email) == ("assigned", BEN)


def test_an_admin_makes_an_intake_key_with_the_forms_rate(page_as: Any, web_ctx: Context) -> None:
    """The form posts the rate as text; the page reads it as the number the API wants
    (the API refuses a text of digits)."""
    page = page_as("admin")
    page.goto("/admin/intake-keys")
    page.get_by_label("Name").fill("landing")
    page.get_by_label("Source of its leads").fill("web")
    page.get_by_label("Rate per minute").fill("30")
    page.get_by_label("Allowed browser origins").fill("www.landing.example")
    page.get_by_role("button", name="Make key").click()
    page.wait_for_load_state()
    said = page.get_by_role("alert").first.inner_text()
    assert said == (
        "Origin 1 (www.landing.example) is not a browser origin: write it as "
        "https://www.landing.example."
    ), said
    assert [page.get_by_label(f).input_value() for f in ("Name", "Rate per minute")] == [
        "landing",
        "30",
    ]  # nothing typed is lost
    page.get_by_label("Allowed browser origins").fill("HTTPS://www.landing.example")
    page.get_by_role("button", name="Make key").click()
    assert "landing" in page.locator("main").inner_text()
    [key] = [k for k in list_intake_keys(web_ctx, actor=OPS) if k.name == "landing"]
    assert (key.rate_per_minute, key.origins) == (30, ["https://www.landing.example"])


def test_an_admin_changes_a_keys_rate_and_origins_on_the_page(
    page_as: Any, web_ctx: Context, axe_check: Any
) -> None:
    """As ``PATCH /api/v1/intake-keys/{id}`` does, keeping the website's key: the form
    shows the rate and origins as they are; a bad origin is refused naming it; blank
    origins make a key for servers only; a post without the page's CSRF token is
    refused."""
    key, _ = add_intake_key(
        web_ctx,
        IntakeKeyCreate(name="pricing form", source="web", origins=["https://a.example"]),
        actor=OPS,
    )
    page = page_as("admin")
    page.goto("/admin/intake-keys")
    row = page.locator(f"#key-{key.id}")
    row.get_by_text("Change rate or origins").click()
    axe_check(page)
    assert row.get_by_label("Rate per minute").input_value() == "60"
    origins = row.get_by_label("Browser origins")
    assert origins.input_value() == "https://a.example"
    row.get_by_label("Rate per minute").fill("90")
    origins.fill("https://a.example\nhttps://shop.a.example")
    row.get_by_role("button", name="Save").click()
    page.wait_for_load_state()
    said = page.get_by_role("status").first.inner_text()
    assert "90 requests a minute" in said and "https://shop.a.example" in said, said
    [now] = [k for k in list_intake_keys(web_ctx, actor=OPS) if k.id == key.id]
    assert (now.rate_per_minute, now.origins) == (
        90,
        ["https://a.example", "https://shop.a.example"],
    )
    assert now.prefix == key.prefix  # the same key: the website needs no change

    row = page.locator(f"#key-{key.id}")
    row.get_by_text("Change rate or origins").click()
    row.get_by_label("Rate per minute").fill("120")
    typed = "HTTPS://a.example\nshop.a.example/form"
    row.get_by_label("Browser origins").fill(typed)
    row.get_by_role("button", name="Save").click()
    page.wait_for_load_state()
    said = page.get_by_role("alert").first.inner_text()
    assert said == (
        "Origin 2 (shop.a.example/form) is not a browser origin: write it as "
        "https://shop.a.example."
    ), said
    row = page.locator(f"#key-{key.id}")  # the form is open again, as typed
    assert row.get_by_label("Rate per minute").input_value() == "120"
    assert row.get_by_label("Browser origins").input_value() == typed
    axe_check(page)
    row.get_by_label("Browser origins").fill("HTTPS://a.example\nhttps://shop.a.example")
    row.get_by_role("button", name="Save").click()
    page.wait_for_load_state()
    [now] = [k for k in list_intake_keys(web_ctx, actor=OPS) if k.id == key.id]
    assert (now.rate_per_minute, now.origins) == (
        120,
        ["https://a.example", "https://shop.a.example"],  # the scheme in lower case too
    )

    csrf = page.locator("input[name=csrf_token]").first.get_attribute("value")
    for rate in ("abc", "0", "100001"):  # a browser's own check stops these; a script's not
        refused = page.request.post(
            f"/admin/intake-keys/{key.id}",
            form={"rate_per_minute": rate, "origins": "https://a.example", "csrf_token": csrf},
        )
        assert refused.status == 422
        assert "Rate per minute must be a whole number from 1 to 100,000." in refused.text()
        assert "JSON" not in refused.text() and "greater than" not in refused.text()

    row = page.locator(f"#key-{key.id}")
    row.get_by_text("Change rate or origins").click()
    row.get_by_label("Browser origins").fill("")
    row.get_by_role("button", name="Save").click()
    page.wait_for_load_state()
    assert "none (servers only)" in page.locator(f"#key-{key.id}").inner_text()

    forged = page.request.post(
        f"/admin/intake-keys/{key.id}", form={"rate_per_minute": "1", "origins": ""}
    )
    assert forged.status == 403
    [last] = [k for k in list_intake_keys(web_ctx, actor=OPS) if k.id == key.id]
    assert (last.rate_per_minute, last.origins) == (120, [])


def test_the_admin_pages_pass_axe(page_as: Any, axe_check: Any, screenshot: Any) -> None:
    page = page_as("admin")
    for path in (
        "/admin",
        "/admin/users",
        "/admin/tokens",
        "/admin/reps",
        "/admin/reps/1",
        "/admin/webhooks",
        "/admin/intake-keys",
        "/admin/duplicates",
    ):
        page.goto(path)
        assert page.locator("h1").count() == 1, path
        axe_check(page)
    page.goto("/admin")
    screenshot(page, "admin")
