"""A rep's day in a real browser on a phone-sized screen (375×812): the inbox shows a
new handoff without a reload, the rep accepts it and rejects another with a reason
(both leave the "New" list; the rejected one the inbox), opens a packet, and cannot
open another rep's packet (the 404 page). Axe-core checks and screenshots on the way."""

from __future__ import annotations

from typing import Any

from tests.web_world import ANA, BEN, World, hand_raise

from baton.domain.access import operator
from baton.services.context import Context
from baton.services.handoffs import get_handoff

PHONE = (375, 812)


def test_a_rep_sees_a_new_handoff_arrive_accepts_it_and_rejects_another(
    page_as: Any, web_ctx: Context, world: World, axe_check: Any, screenshot: Any
) -> None:
    page = page_as("rep", viewport=PHONE)
    page.goto("/")
    assert page.url.endswith("/inbox")
    new = page.locator("#new")
    before = new.locator("li.card").count()
    assert before >= 1
    page.evaluate("window.stillThisPage = true")

    handoff_id = hand_raise(web_ctx, country="US", name="Nina Newcomer")
    card = page.locator(f"#handoff-{handoff_id}")
    card.wait_for(timeout=12_000)  # the page polls every 5 s
    assert page.evaluate("window.stillThisPage") is True, "the page was reloaded"
    assert "Nina Newcomer" in card.inner_text()
    assert "hand-raise" in card.inner_text()
    assert "left" in card.locator(".due").inner_text()
    # Wide enough: nothing sticks out of a 375 px screen.
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE[0]
    axe_check(page)
    screenshot(page, "inbox")

    card.get_by_role("button", name="Accept").click()
    page.wait_for_url("**/inbox")
    assert "Accepted" in page.get_by_role("status").first.inner_text()
    assert new.locator(f"#handoff-{handoff_id}").count() == 0
    assert page.locator(f"#working #handoff-{handoff_id}").count() == 1
    assert get_handoff(web_ctx, handoff_id, actor=operator("t")).status == "accepted"

    other = world.handoffs[ANA][0]
    row = page.locator(f"#handoff-{other}")
    row.get_by_text("Reject…").click()
    reason = row.get_by_label("Reason")
    assert "→ back to nurture" in reason.inner_text()
    assert "→ disqualified" in reason.inner_text()
    reason.select_option("not_ready")
    row.get_by_label("Note (optional)").fill("Budget is for next year")
    row.get_by_role("button", name="Reject").click()
    page.wait_for_url("**/inbox")
    assert page.locator(f"#handoff-{other}").count() == 0
    rejected = get_handoff(web_ctx, other, actor=operator("t"))
    assert (rejected.status, rejected.rejection_code) == ("rejected", "not_ready")


def test_the_packet_page_and_another_reps_packet(
    page_as: Any, world: World, axe_check: Any, screenshot: Any
) -> None:
    page = page_as("rep", viewport=PHONE)
    mine = world.handoffs[ANA][-1]
    page.goto(f"/handoffs/{mine}")
    for heading in ("Who", "Why this lead", "Prep checklist", "Notes and tags", "Timeline"):
        assert page.get_by_role("heading", name=heading).is_visible()
    page.get_by_label("Add a note").fill("Called, voicemail")
    page.get_by_role("button", name="Add the note").click()
    page.wait_for_url(f"**/handoffs/{mine}")
    assert "Called, voicemail" in page.inner_text("main")
    page.get_by_label("Add a tag").fill("Hot")
    page.get_by_role("button", name="Tag", exact=True).click()
    assert page.get_by_role("list", name="Tags").inner_text().strip() == "hot"
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE[0]
    axe_check(page)
    screenshot(page, "packet")

    answer = page.goto(f"/handoffs/{world.handoffs[BEN][0]}")
    assert answer is not None and answer.status == 404
    assert page.get_by_role("heading", level=1).inner_text() == "Not found"
