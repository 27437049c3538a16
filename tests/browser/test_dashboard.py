"""Marketing's dashboard in a real browser: every chart renders (an ``svg[role=img]``
per section, with bars drawn) and the tables beside them hold the same totals as the
report API for the same period; the page passes axe-core, at desktop width and on a
375-px phone; ``dashboard.png`` is saved.

Before opening it, the world gets what every section needs and the shared world lacks:
one more hand-raise (a Dana of Northwind like the world's others, from a webinar)
touched at once (the shared clock is left alone) then rejected as junk (so the inbox
other tests read is unchanged), and two months of webinar spend."""

from __future__ import annotations

import io
from typing import Any

from tests.web_world import ANA

from baton.domain.access import operator
from baton.domain.activities import ActivityCreate
from baton.domain.leads import LeadCreate
from baton.services import handoffs as handoff_service
from baton.services import reports as report_service
from baton.services.activities import ingest_activity
from baton.services.context import Context
from baton.services.leads import capture_lead

SECTIONS = ("funnel", "speed", "sla", "rejections", "credit", "cost")
SPEND = "source,start,end,amount\nwebinar,2026-02-01,2026-03-31,5900\n"


def _data(ctx: Context) -> None:
    ops = operator("browser test")
    email = "dana.webinar@northwind.example.com"
    fields = {"email": email, "first_name": "Dana", "last_name": "Webinar",
              "title": "VP Operations", "company": "Northwind & Co", "country": "US",
              "source": "webinar", "campaign": "spring-webinar",
              "attributes": {"employees": 420}}  # fmt: skip
    lead = capture_lead(
        ctx, LeadCreate.model_validate(fields, context={"default_region": "US"}), actor=ops
    ).lead
    moment = {"email": email, "type": "demo_request", "occurred_at": ctx.clock.now()}
    ingest_activity(ctx, ActivityCreate.model_validate(moment), actor=ops)
    [found] = handoff_service.list_handoffs(ctx, actor=ops, lead_id=lead.id)
    assert found.rep_email == ANA
    handoff = found.id
    handoff_service.log_touch(ctx, handoff, kind="call", note="left a message", actor=ops)
    handoff_service.reject_handoff(ctx, handoff, code="junk", actor=ops)
    report_service.import_spend(ctx, io.StringIO(SPEND), actor=ops)


def _number(text: str) -> float:
    return float(text.split(" (")[0].replace(",", "").strip() or 0)


def test_marketing_sees_every_chart_with_the_report_apis_totals(
    page_as: Any, web_ctx: Context, axe_check: Any, screenshot: Any
) -> None:
    _data(web_ctx)
    page = page_as("marketing")
    page.goto("/dashboard")
    assert page.get_by_role("heading", level=1).inner_text() == "Dashboard"
    for section in SECTIONS:
        charts = page.locator(f"section#{section} svg[role=img]")
        assert charts.count() >= 1, section
        drawn = page.locator(f"section#{section} svg[role=img] rect.bar")
        assert drawn.count() >= 1, f"no bars in {section}"
        widths = [
            float(w) for w in drawn.evaluate_all("bars => bars.map(b => b.getAttribute('width'))")
        ]
        heights = [
            float(h) for h in drawn.evaluate_all("bars => bars.map(b => b.getAttribute('height'))")
        ]
        assert max(w * h for w, h in zip(widths, heights, strict=True)) > 0, section
        box = charts.first.bounding_box()
        assert box is not None and box["width"] > 100, section

    first = page.get_by_label("From").input_value()
    until = page.get_by_label("Until (included)").input_value()
    api = page.request  # the same session reads the API

    def report(name: str, **params: Any) -> dict[str, Any]:
        answer = api.get(
            f"/api/v1/reports/{name}",
            params={"from": first, "to": _next_day(until), "tz": "UTC", **params},
        )
        assert answer.ok, answer.text()
        return dict(answer.json())

    def cell(table: str, row: str, column: int) -> float:
        found = page.locator(f"table:has(caption:text-is('{table}')) tr:has(th:text-is('{row}'))")
        return _number(found.locator("td").nth(column).inner_text())

    [cohort] = report("funnel")["rows"]
    [flow] = report("funnel", mode="flow")["rows"]
    for label, stage in (("Leads", "lead"), ("MQL", "mql"), ("SAL", "sal")):
        assert cell("Leads per stage", label, 0) == cohort[stage], label
        assert cell("Leads per stage", label, 2) == flow[stage], label

    [speed] = report("speed-to-lead")["rows"]
    buckets = page.locator(
        "table:has(caption:text-is('MQLs by time to first touch')) tbody tr td:nth-of-type(1)"
    ).all_inner_texts()
    assert sum(_number(b) for b in buckets) == speed["handoffs"] > 0
    assert cell("MQLs by time to first touch", "≤ 5 min", 0) >= 1

    weeks = report("sla-weekly")["rows"]
    shown = page.locator(
        "table:has(caption:text-is('Handoffs per week')) tbody tr td:nth-of-type(1)"
    ).all_inner_texts()
    assert [_number(s) for s in shown] == [w["handoffs"] for w in weeks]
    assert sum(w["handoffs"] for w in weeks) == report("sla")["rows"][0]["handoffs"]

    rejected = report("rejections")["rows"]
    for row in rejected:
        assert cell("Handoffs rejected in the period", row["label"], 2) == row["count"]
    assert rejected

    for row in report("credit")["rows"]:
        assert cell("MQLs by source", row["group"] or "(none)", 0) == row["mqls"]

    cost = report("cost")
    for row in cost["rows"]:
        assert cell("Cost by source", row["group"] or "(none)", 0) == row["spend"]
        assert cell("Cost by source", row["group"] or "(none)", 1) == row["leads"]
    assert any(r["spend"] > 0 for r in cost["rows"])

    axe_check(page)
    screenshot(page, "dashboard")

    phone = page_as("marketing", viewport=(375, 812))
    phone.goto("/dashboard")
    axe_check(phone)
    wide = phone.evaluate("document.documentElement.scrollWidth")
    assert wide <= 375 + 1, f"the page scrolls sideways on a phone ({wide} px)"


def _next_day(day: str) -> str:
    from datetime import date, timedelta

    return (date.fromisoformat(day) + timedelta(days=1)).isoformat()
