"""Marketing's dashboard over HTTP, on the small day of handoffs the report tests use
(``tests/e2e/test_reports_api_cli.py``'s ``seed``): its tables hold the same figures
as ``/api/v1/reports/*`` for the same period, zone and filters; each chart's CSV link
answers CSV through the one export path, a formula-like campaign guarded; who may see
it follows the reports' rule. Also the two reports the dashboard added to the API:
SLA by week and the speed-to-lead distribution. SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from html.parser import HTMLParser
from typing import Any

import pytest
from fastapi.testclient import TestClient
from tests.conftest import bearer, token_for
from tests.e2e.test_reports_api_cli import DAY, EXAMPLE, MARIA, SPEND, ok, seed

from baton.api.app import create_app
from baton.domain.access import Role, operator
from baton.domain.reps import RepCreate
from baton.domain.users import UserCreate
from baton.services import reps as rep_service
from baton.services import users as user_service
from baton.services.context import Context

PASSWORD = "correct horse battery staple"
MIA = "mia@lumen.example"
PAGE = {"from": "2026-03-02", "until": "2026-03-02"}
"""The dashboard's form for the API's ``DAY`` (``until`` is included, ``to`` is not);
Mia reads in Europe/Paris, the zone of ``DAY``."""
FORMULA = "=1+2"

assert EXAMPLE.exists()


class Tables(HTMLParser):
    """Every ``<table>`` of a page by caption: rows of cell texts; and the links."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.links: list[str] = []
        self._rows: list[list[str]] | None = None
        self._caption: list[str] | None = None
        self._cell: list[str] | None = None
        self._name = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self._rows, self._name = [], f"table {len(self.tables)}"
        elif tag == "caption":
            self._caption = []
        elif tag == "tr" and self._rows is not None:
            self._rows.append([])
        elif tag in ("td", "th") and self._rows is not None:
            self._cell = []
        elif tag == "a":
            self.links.append(dict(attrs).get("href") or "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "caption" and self._caption is not None:
            self._name = " ".join("".join(self._caption).split())
            self._caption = None
        elif tag in ("td", "th") and self._cell is not None and self._rows:
            self._rows[-1].append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "table" and self._rows is not None:
            self.tables[self._name] = [r for r in self._rows if r]
            self._rows = None

    def handle_data(self, data: str) -> None:
        if self._caption is not None:
            self._caption.append(data)
        elif self._cell is not None:
            self._cell.append(data)


def read_page(html: str) -> Tables:
    parser = Tables()
    parser.feed(html)
    return parser


def table(page: Tables, caption: str) -> dict[str, list[str]]:
    """A table's body rows by their first cell (its header row left out)."""
    [name] = [n for n in page.tables if n.startswith(caption)]
    return {row[0]: row[1:] for row in page.tables[name][1:]}


def number(text: str) -> float | None:
    text = text.split(" (")[0].replace(",", "").rstrip("%")
    return None if text in ("—", "") else float(text)


@pytest.fixture
def api(ctx: Context) -> Iterator[TestClient]:
    with TestClient(
        create_app(ctx),
        base_url="https://testserver",
        raise_server_exceptions=False,
        headers=bearer(token_for(ctx, "admin")),
    ) as client:
        yield client


def person(ctx: Context, email: str, role: Role, zone: str = "Europe/Paris") -> None:
    if role is Role.REP:
        rep_service.create_rep(ctx, RepCreate(email=email, name="Rita Rep"), actor=operator("test"))
    user_service.add_user(
        ctx,
        UserCreate(
            email=email,
            display_name=email.split("@")[0],
            role=role,
            timezone=zone,
            rep_email=email if role is Role.REP else None,
        ),
        actor=operator("test"),
        password=PASSWORD,
    )


def browser(ctx: Context, email: str | None) -> TestClient:
    """A person's client with their session cookie (no token), or nobody's."""
    client = TestClient(
        create_app(ctx), base_url="https://testserver", raise_server_exceptions=False
    )
    if email is not None:
        ok(client.post("/auth/login", json={"email": email, "password": PASSWORD}))
    return client


@pytest.fixture
def day(api: TestClient, ctx: Context) -> TestClient:
    seed(api, ctx)
    maria = bearer(token_for(ctx, "marketing", email="maria.spend@lumen.example"))
    ok(
        api.post(
            "/api/v1/spend/import",
            content=SPEND.encode(),
            headers={"Content-Type": "text/csv", **maria},
        )
    )
    person(ctx, MIA, Role.MARKETING)
    return api


def api_report(api: TestClient, name: str, **params: Any) -> dict[str, Any]:
    return dict(ok(api.get(f"/api/v1/reports/{name}", params={**DAY, **params})))


def test_the_new_reports_agree_with_the_ones_they_refine(day: TestClient) -> None:
    [sla] = api_report(day, "sla")["rows"]
    weekly = api_report(day, "sla-weekly")
    assert weekly["report"] == "sla_weekly" and weekly["group_by"] == "week"
    assert [(r["group"], r["handoffs"], r["accepted_in_sla"]) for r in weekly["rows"]] == [
        ("2026-03-02", sla["handoffs"], sla["accepted_in_sla"])
    ]
    # three weeks in Paris: Wed 25 Feb to Mon 2 Mar, the week of the 2nd, Mon 9 Mar alone
    span = {"from": "2026-02-25", "to": "2026-03-10"}
    rows = api_report(day, "sla-weekly", **span)["rows"]
    assert [r["group"] for r in rows] == ["2026-02-25", "2026-03-02", "2026-03-09"]
    assert [r["handoffs"] for r in rows] == [0, 3, 0]
    assert rows[0]["accepted_in_sla_share"] is None
    [whole] = api_report(day, "sla", **span)["rows"]
    for key in ("handoffs", "accepted_in_sla", "not_accepted", "touched_in_sla", "not_touched"):
        assert sum(r[key] for r in rows) == whole[key], key
    refused = day.get("/api/v1/reports/sla-weekly", params={**DAY, "group_by": "rep"})
    assert refused.status_code == 422

    [speed] = api_report(day, "speed-to-lead")["rows"]
    buckets = api_report(day, "speed-distribution")["rows"]
    assert [(b["bucket"], b["handoffs"]) for b in buckets] == [
        ("within_5m", 1),
        ("within_1h", 0),
        ("within_24h", 0),
        ("later", 0),
        ("not_touched", 2),
    ]
    assert sum(b["handoffs"] for b in buckets) == speed["handoffs"] == 3
    assert buckets[0]["share"] == pytest.approx(speed["within_5m"])
    by_source = api_report(day, "speed-distribution", group_by="source")["rows"]
    assert {(b["group"], b["bucket"]): b["handoffs"] for b in by_source if b["handoffs"]} == {
        ("ads", "not_touched"): 2,
        ("webinar", "within_5m"): 1,
    }
    nothing = api_report(day, "speed-distribution", team="emea")["rows"]
    assert [b["handoffs"] for b in nothing] == [0] * 5


def test_the_dashboard_holds_the_report_apis_figures(day: TestClient, ctx: Context) -> None:
    with browser(ctx, MIA) as mia:
        response = mia.get("/dashboard", params=PAGE)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    page = read_page(html)
    assert html.count('role="img"') >= 9  # two funnels, two speed charts, SLA, 4 more

    cohort = api_report(day, "funnel")["rows"][0]
    flow = api_report(day, "funnel", mode="flow")["rows"][0]
    funnel = table(page, "Leads per stage")
    names = {"Leads": "lead", "MQL": "mql", "SAL": "sal", "SQL": "sql", "Customer": "customer"}
    for label, stage in names.items():
        assert number(funnel[label][0]) == cohort[stage], label
        assert number(funnel[label][2]) == flow[stage], label
    assert funnel["Leads"][1] == "75.0%"  # lead → mql, as the API's 0.75

    [speed] = api_report(day, "speed-to-lead")["rows"]
    buckets = table(page, "MQLs by time to first touch")
    assert sum(number(v[0]) or 0 for v in buckets.values()) == speed["handoffs"]
    assert number(buckets["≤ 5 min"][0]) == 1 and number(buckets["not touched"][0]) == 2
    delays = table(page, "Minutes")
    assert number(delays["MQL to first touch"][0]) == speed["median_minutes"]

    [sla] = api_report(day, "sla")["rows"]
    weeks = table(page, "Handoffs per week")
    assert list(weeks) == ["2026-03-02"]
    assert number(weeks["2026-03-02"][0]) == sla["handoffs"]
    assert number(weeks["2026-03-02"][1]) == sla["accepted_in_sla"]
    assert number(weeks["2026-03-02"][3]) == sla["not_accepted"]

    rejected = api_report(day, "rejections")["rows"]
    reasons = table(page, "Handoffs rejected")
    assert {k: number(v[2]) for k, v in reasons.items()} == {
        r["label"]: r["count"] for r in rejected
    }

    credit = api_report(day, "credit")["rows"]
    shown = table(page, "MQLs by source")
    assert {k: [number(x) for x in v[:5]] for k, v in shown.items()} == {
        r["group"]: [
            r["mqls"],
            r["rejected_without_credit"],
            r["credited_mqls"],
            r["accepted"],
            r["won"],
        ]
        for r in credit
    }

    cost = api_report(day, "cost")
    spent = table(page, "Cost by source")
    assert {k: (number(v[0]), number(v[1])) for k, v in spent.items()} == {
        r["group"]: (r["spend"], r["leads"]) for r in cost["rows"]
    }
    gap = table(page, "The cost of the gap")
    assert number(gap["Rejected"][0]) == cost["gap"]["leads_rejected"]
    assert number(gap["Rejected"][1]) == cost["gap"]["spend_on_rejected"]

    nurture = table(page, "Nurture sequences in the period")  # the contract's sequences
    assert set(nurture) == {"not-ready", "wrong-contact", "All sequences"}
    assert all(number(v[1]) == 0 for v in nurture.values())  # nothing sent that day

    with browser(ctx, MIA) as mia:  # a team filter narrows everything but cost
        narrowed = read_page(mia.get("/dashboard", params={**PAGE, "team": "emea"}).text)
    assert number(table(narrowed, "Leads per stage")["Leads"][0]) == 0
    assert table(narrowed, "Cost by source")  # spend has no team


def test_each_csv_link_answers_csv_with_formulas_guarded(day: TestClient, ctx: Context) -> None:
    body = {"email": "formula@northwind.example.com", "source": "ads", "campaign": FORMULA}
    ok(day.post("/api/v1/leads", json=body), 201)
    event = {"email": body["email"], "type": "demo_request"}
    ok(day.post("/api/v1/activities", json=event), 201)
    with browser(ctx, MIA) as mia:
        page = read_page(mia.get("/dashboard", params={**PAGE, "group": "campaign"}).text)
        links = [link for link in page.links if ".csv?" in link]
        names = {link.split("/dashboard/")[1].split(".csv")[0] for link in links}
        assert names == {
            "funnel-cohort",
            "funnel-flow",
            "speed-distribution",
            "speed-to-lead",
            "sla-weekly",
            "rejections",
            "credit",
            "cost",
            "cost-gap",
            "nurture",
        }
        for link in links:
            answer = mia.get(link)
            assert answer.status_code == 200, link
            assert answer.headers["content-type"].startswith("text/csv"), link
            assert "attachment" in answer.headers["content-disposition"]
            rows = list(csv.reader(io.StringIO(answer.text)))
            assert rows[0][-6:] == ["from", "until", "timezone", "source", "campaign", "team"]
            assert rows[1:], link
            cells = [c for row in rows for c in row]
            assert all(not c.startswith(("=", "+", "-", "@")) for c in cells), link
        credit = mia.get("/dashboard/credit.csv", params={**PAGE, "group": "campaign"}).text
        assert f"'{FORMULA}" in credit  # the campaign is a group of the credit report
        # a filter is echoed in every row of every file, guarded too
        for link in links:
            filtered = mia.get(link + "&campaign=" + "%3D1%2B2").text
            rows = list(csv.reader(io.StringIO(filtered)))
            assert all(row[-2] == f"'{FORMULA}" for row in rows[1:]), link
        assert mia.get("/dashboard/nothing.csv").status_code == 404


@pytest.mark.parametrize(
    ("role", "status"),
    [
        (Role.MARKETING, 200),
        (Role.SALES_MANAGER, 200),
        (Role.ADMIN, 200),
        (Role.REP, 403),
        (None, 303),
    ],
)
def test_who_may_read_the_dashboard_is_who_may_read_reports(
    ctx: Context, role: Role | None, status: int
) -> None:
    email = None
    if role is not None:
        email = f"{role.value}@lumen.example"
        person(ctx, email, role, "UTC")
    with browser(ctx, email) as client:
        for path in ("/dashboard", "/dashboard/funnel-cohort.csv"):
            answer = client.get(path, follow_redirects=False)
            assert answer.status_code == status, (path, answer.text[:300])
            if status == 303:
                assert answer.headers["location"].startswith("/login?next=/dashboard")


def test_a_wrong_period_is_named_and_the_default_shown(ctx: Context) -> None:
    person(ctx, MIA, Role.MARKETING)
    with browser(ctx, MIA) as mia:
        answer = mia.get("/dashboard", params={"from": "yesterday", "until": "2026-03-02"})
        assert answer.status_code == 200
        assert "from: &#39;yesterday&#39; is not a date" in answer.text
        assert "No data for this period" in answer.text  # an empty database
        backwards = mia.get("/dashboard", params={"from": "2026-03-05", "until": "2026-03-02"})
        assert "after &#39;until&#39;" in backwards.text


def test_marias_default_is_the_last_30_days_in_her_zone(ctx: Context) -> None:
    assert MARIA
    person(ctx, MIA, Role.MARKETING, "Pacific/Auckland")
    with browser(ctx, MIA) as mia:
        html = mia.get("/dashboard").text
    # the clock is Mon 2 Mar 2026 09:00 UTC: already 22:00 that day in Auckland
    assert 'name="from" value="2026-02-01"' in html
    assert 'name="until" value="2026-03-02"' in html
    assert "in Pacific/Auckland" in html
