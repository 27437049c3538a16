"""The manager's view and the admin pages in a real browser: a manager hands a queued
handoff to a rep they name; the pages pass axe-core; ``team.png`` and ``admin.png``
are saved."""

from __future__ import annotations

import uuid
from typing import Any

from tests.e2e.test_web_team_admin import queued_handoff
from tests.web_world import BEN, OPS

from baton.services.context import Context
from baton.services.handoffs import get_handoff
from baton.services.users import list_intake_keys


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
    page.get_by_label("Requests per minute").fill("30")
    page.get_by_role("button", name="Make key").click()
    assert "landing" in page.locator("main").inner_text()
    [key] = [k for k in list_intake_keys(web_ctx, actor=OPS) if k.name == "landing"]
    assert key.rate_per_minute == 30


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
