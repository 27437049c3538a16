"""The intake pages in a real browser, on a phone: marketing adds an inbound endpoint,
copies its secret, a form tool posts to it, and the request shows in the log and on
its own page with the raw body; the pages pass axe-core and never scroll sideways."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
from tests.browser.conftest import PHONE


def test_marketing_adds_an_endpoint_and_reads_its_log_on_a_phone(
    page_as: Any, base_url: str, axe_check: Any, screenshot: Any
) -> None:
    name = f"demo-form-{uuid.uuid4().hex[:6]}"
    page = page_as("marketing", viewport=PHONE)
    page.goto("/admin/intake")
    axe_check(page)
    page.get_by_label("Name (the end of its URL").fill(name)
    page.get_by_label("Kind", exact=True).select_option("generic")
    page.get_by_label("Source of its leads").fill("website")
    page.get_by_label("Field mapping").fill(
        json.dumps({"email": "email", "first_name": "name", "upstream_id": "id"})
    )
    page.get_by_role("button", name="Add endpoint").click()
    page.wait_for_load_state()
    secret = page.get_by_label("Secret").input_value()
    assert secret.startswith("bhk_")

    posted = httpx.post(
        f"{base_url}/hooks/{name}",
        json={"id": "s-1", "email": f"{name}@example.org", "name": "Ida"},
        headers={"X-Baton-Hook-Key": secret},
        timeout=30,
    )
    assert posted.status_code == 200, posted.text

    page.goto(f"/admin/intake?endpoint={name}")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE[0]
    page.get_by_role("link", name="#", exact=False).first.click()
    page.wait_for_load_state()
    assert f"{name}@example.org" in page.locator("pre.raw").last.inner_text()
    assert "processed" in page.locator("section.item").first.inner_text()
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE[0]
    axe_check(page)
    screenshot(page, "intake-request")
