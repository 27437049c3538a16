"""The rep's notification settings in a real browser, on a phone-sized screen: add a
Slack channel, see it listed by its hint (never its URL), remove it again (the world
is shared with the other browser tests, so it is left as it was); axe-core passes."""

from __future__ import annotations

from typing import Any

from tests.browser.conftest import PHONE

SECRET = "BrowserSecret0123456789"
URL = f"https://hooks.slack.com/services/T0/B0/{SECRET}"


def test_a_rep_adds_and_removes_a_slack_channel_on_a_phone(
    page_as: Any, axe_check: Any, screenshot: Any
) -> None:
    page = page_as("rep", PHONE)
    page.on("dialog", lambda dialog: dialog.accept())
    page.get_by_role("link", name="Notifications").click()
    page.wait_for_url("**/settings/notifications")
    assert page.get_by_role("heading", name="Notifications", level=1).is_visible()
    axe_check(page)

    page.get_by_label("Kind").select_option("slack")
    page.get_by_label("Name (optional)").fill("#ana-leads")
    page.get_by_label("Incoming webhook URL").fill(URL)
    page.get_by_role("button", name="Add channel").click()
    page.wait_for_load_state()
    flash = page.get_by_role("status").first.inner_text()
    assert flash.startswith("Slack channel “#ana-leads” added (hooks.slack.com/…6789)")
    assert SECRET not in page.content()
    assert page.get_by_label("Slack: #ana-leads").is_checked()
    axe_check(page)
    screenshot(page, "notifications")

    page.get_by_role("button", name="Remove #ana-leads").click()
    page.wait_for_load_state()
    assert "removed" in page.get_by_role("status").first.inner_text()
    assert "No chat channel yet" in page.content()
