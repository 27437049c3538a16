"""The contract page in a real browser: marketing drafts and signs a new version, a
sales manager signs it, an admin activates it, and the page shows it in force; each
page passes axe-core; ``contract.png`` is saved.

The new version keeps the rules of the world's contract (only its RACI and description
change), so activating it re-scores every lead to the same score and the other
browser tests, which share the world, see the same leads."""

from __future__ import annotations

import re
from typing import Any

import yaml
from tests.web_world import EXAMPLE


def _new_body() -> str:
    data = yaml.safe_load(EXAMPLE.read_text())
    data["description"] = "Agreed again: the revenue lead now answers for sales' verdicts."
    data["raci"]["verdict"]["accountable"] = "revenue_lead"
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def _confirming(page: Any) -> Any:
    page.on("dialog", lambda dialog: dialog.accept())
    return page


def test_marketing_and_sales_sign_a_draft_and_an_admin_activates_it(
    page_as: Any, axe_check: Any, screenshot: Any
) -> None:
    marketing = _confirming(page_as("marketing"))
    marketing.goto("/contract")
    axe_check(marketing)
    marketing.get_by_role("link", name="New draft").click()
    marketing.get_by_label("Contract (YAML)").fill(_new_body())
    marketing.get_by_role("button", name="Store the draft").click()
    marketing.wait_for_url(re.compile(r"/contract/\d+$"))
    version = int(marketing.url.rsplit("/", 1)[1])
    assert (
        marketing.get_by_role("status")
        .first.inner_text()
        .startswith(f"Draft version {version} stored")
    )
    axe_check(marketing)
    marketing.get_by_role("button", name="Sign for marketing").click()
    marketing.wait_for_load_state()
    assert f"Version {version} signed for marketing." in marketing.content()
    assert marketing.get_by_role("button", name="Sign for sales").count() == 0

    sales = _confirming(page_as("sales_manager"))
    sales.goto(f"/contract/{version}")
    sales.get_by_role("button", name="Sign for sales").click()
    sales.wait_for_load_state()
    assert "Both sides have signed" in sales.content()
    assert sales.get_by_role("button", name=re.compile("^Activate")).count() == 0

    admin = _confirming(page_as("admin"))
    admin.goto(f"/contract/{version}")
    admin.get_by_role("button", name=f"Activate version {version}").click()
    admin.wait_for_load_state()
    assert f"Version {version} is active." in admin.content()

    admin.goto("/contract")
    assert f"In force: version {version}" in admin.inner_text("main")
    verdict = admin.get_by_role("row", name=re.compile("^Verdict"))
    assert "Revenue lead" in verdict.inner_text()
    axe_check(admin)
    screenshot(admin, "contract")

    admin.goto("/contract/diff")
    admin.get_by_label("From version").select_option(str(version - 1))
    admin.get_by_label("To version").select_option(str(version))
    admin.get_by_role("button", name="Compare").click()
    assert "verdict: accountable sales_manager → revenue_lead" in admin.inner_text("main")
    axe_check(admin)


def test_a_broken_draft_points_at_its_line_on_a_phone(page_as: Any, axe_check: Any) -> None:
    page = page_as("marketing", viewport=(375, 812))
    page.goto("/contract")
    axe_check(page)
    page.goto("/contract/new")
    good = "accountable: revenue_lead, consulted: [sales_manager]"
    body = EXAMPLE.read_text().replace(good, good.replace("revenue_lead", "revenue_led"), 1)
    page.get_by_label("Contract (YAML)").fill(body)
    page.get_by_role("button", name="Store the draft").click()
    alert = page.get_by_role("alert").inner_text()
    assert "raci.mql.accountable" in alert and "did you mean 'revenue_lead'" in alert
    page.get_by_role("link", name=re.compile(r"^line \d+")).click()
    assert re.search(r"#line-\d+$", page.url)
    axe_check(page)
