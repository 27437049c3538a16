"""The intelligence pages in a real browser: the model list and a model's page (its
evaluation, calibration and signatures), and a contract version's backtest, at phone
width, passing axe."""

from __future__ import annotations

from typing import Any

from tests.model_helpers import store_tiny_model

from baton.services.context import Context


def test_marketing_reads_a_model_and_backtests_the_active_contract(
    page_as: Any, axe_check: Any, screenshot: Any, web_ctx: Context
) -> None:
    version = store_tiny_model(web_ctx, status="draft", name="browser model")
    page = page_as("marketing")

    page.goto("/admin/models")
    assert page.locator("h1").count() == 1
    assert page.get_by_text("browser model").count() >= 1
    axe_check(page)

    page.goto(f"/admin/models/{version}")
    assert page.locator("h1").count() == 1
    assert page.get_by_text("ROC AUC").count() >= 1
    axe_check(page)
    screenshot(page, "model")

    page.goto("/contract/1/backtest")
    assert page.locator("h1").count() == 1
    # The world has no won lead: the sweep is a table, and the page says why there is
    # no precision (the chart itself is drawn in tests/e2e/test_backtest_api_cli.py).
    assert page.locator("#h-sweep").count() == 1
    axe_check(page)
    screenshot(page, "backtest")

    phone = page_as("sales_manager", viewport=(375, 812))
    for path in (f"/admin/models/{version}", "/contract/1/backtest"):
        phone.goto(path)
        # Nothing wider than the phone: wide tables scroll inside their own box.
        width = phone.evaluate("document.documentElement.scrollWidth")
        assert width <= 375, (path, width)
