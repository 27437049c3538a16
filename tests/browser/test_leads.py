"""The lead list and the lead page in a real browser: marketing searches (the form
works without JavaScript; with it the results follow the typing), saves the search,
opens a lead and tags it; a rep on a phone sees only their own leads and gets the 404
page for another rep's. Each page passes axe-core; ``leads.png`` and ``lead.png`` are
saved."""

from __future__ import annotations

import re
from typing import Any

from tests.browser.conftest import PHONE
from tests.web_world import World


def test_marketing_searches_saves_a_filter_and_tags_a_lead(
    page_as: Any, world: World, axe_check: Any, screenshot: Any
) -> None:
    page = page_as("marketing")
    page.goto("/leads")
    axe_check(page)
    rows = page.locator("table.leads tbody tr")
    everyone = rows.count()
    assert everyone >= 4
    # Typing narrows the results without a click (the enhancement)...
    page.get_by_label("Search email, name or company").fill("zzzz")
    page.get_by_text("No lead matches").wait_for()
    assert "q=zzzz" in page.url
    # ...and the plain form does the same with the button.
    page.get_by_label("Search email, name or company").fill("dana north")
    page.get_by_role("button", name="Search", exact=True).click()
    page.wait_for_url(re.compile(r"q=dana\+north"))
    found = rows.all_inner_texts()
    assert 4 <= len(found) <= everyone
    assert all("dana" in text.lower() or "north" in text.lower() for text in found), found
    page.get_by_role("link", name="Score").click()
    page.wait_for_url(re.compile(r"sort=score"))
    page.get_by_label("Save this search as").fill("Northwind by score")
    page.get_by_role("button", name="Save", exact=True).click()
    page.wait_for_url(re.compile(r"filter=\d+"))
    assert "Saved the filter" in page.content()
    assert page.get_by_label("Use a saved filter").input_value()
    screenshot(page, "leads")
    axe_check(page)

    rows.first.get_by_role("link").first.click()
    page.wait_for_url(re.compile(r"/leads/\d+$"))
    assert page.get_by_role("heading", name="Stage history").is_visible()
    page.get_by_label("Add a tag").fill("webinar-vip")
    page.get_by_role("button", name="Add tag").click()
    page.wait_for_load_state()
    assert "Tagged “webinar-vip”" in page.content()
    axe_check(page)
    screenshot(page, "lead")


def test_a_rep_on_a_phone_sees_only_their_leads(page_as: Any, world: World, axe_check: Any) -> None:
    page = page_as("rep", viewport=PHONE)
    page.goto("/leads")
    links = page.locator("table.leads tbody tr td:first-child a")
    shown = {int(h.rsplit("/", 1)[1]) for h in links.evaluate_all("els => els.map(e => e.href)")}
    assert shown and not shown & set(world.leads.get("ben@lumen.example", []))
    assert set(world.leads["ana@lumen.example"]) <= shown
    # Nothing wider than the phone's screen.
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE[0]
    axe_check(page)
    other = world.leads["ben@lumen.example"][0]
    answer = page.goto(f"/leads/{other}")
    assert answer is not None and answer.status == 404
    assert "Not found" in page.content()
