"""Regressions of the web app's security review: each test is one defect that a
user (or someone probing) could hit, fixed. A bad value typed in a form or a URL
gives a message on the page, never a 500; what the API refuses, the pages refuse.

Fixtures come from :mod:`tests.e2e.test_web_access` (the small world, a client on a
fresh copy of it); ``client`` here answers a server error as a 500 instead of
raising, so a test sees the status a browser would.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from tests.e2e import test_web_access as access
from tests.web_world import ANA, World

from baton.api.app import create_app
from baton.domain.access import operator
from baton.services.context import Context
from baton.services.handoffs import get_handoff

OPS = operator("test")
sign_in = access.sign_in
# The small world and its fresh copy per test (fixtures, used by name).
world_template = access.world_template
sqlite_ctx = access.sqlite_ctx
world = access.world


@pytest.fixture
def client(sqlite_ctx: Context, world: World) -> Iterator[TestClient]:
    app = create_app(sqlite_ctx)
    with TestClient(
        app, base_url="https://testserver", follow_redirects=False, raise_server_exceptions=False
    ) as test_client:
        yield test_client


def _flash(client: TestClient, location: str) -> str:
    return client.get(location).text


def _qualified(client: TestClient, token: str, handoff_id: int) -> None:
    """Take Ana's handoff to SQL through the forms (accept, a call, qualify)."""
    for action, data in (
        ("accept", {}),
        ("touch", {"kind": "call"}),
        ("qualify", {f"field_{f}": "yes" for f in ("budget", "authority", "need", "timing")}),
    ):
        answer = client.post(f"/handoffs/{handoff_id}/{action}", data={**data, "csrf_token": token})
        assert answer.status_code == 303, (action, answer.text[:300])


@pytest.mark.parametrize("amount", ["-5", "-1e300", "nan", "inf", "1e400", "2e12", "ten"])
def test_a_won_deal_value_out_of_the_apis_range_is_refused_with_a_message(
    client: TestClient, sqlite_ctx: Context, world: World, amount: str
) -> None:
    """packet.py ``won`` passed any float to the use case: a negative, NaN or infinite
    deal value was stored (the API's ``WonCreate`` takes 0 to 10^12 only)."""
    token = sign_in(client, world.users["rep"])
    handoff_id = world.first(ANA)
    _qualified(client, token, handoff_id)
    answer = client.post(
        f"/handoffs/{handoff_id}/won", data={"amount": amount, "csrf_token": token}
    )
    assert answer.status_code == 303
    assert "deal value must be a number from 0 to" in _flash(client, answer.headers["location"])
    handoff = get_handoff(sqlite_ctx, handoff_id, actor=OPS)
    assert handoff.status == "qualified" and handoff.deal_value is None


def test_a_won_deal_value_in_range_is_kept(
    client: TestClient, sqlite_ctx: Context, world: World
) -> None:
    token = sign_in(client, world.users["rep"])
    handoff_id = world.first(ANA)
    _qualified(client, token, handoff_id)
    answer = client.post(
        f"/handoffs/{handoff_id}/won", data={"amount": "52,000", "csrf_token": token}
    )
    assert answer.status_code == 303
    handoff = get_handoff(sqlite_ctx, handoff_id, actor=OPS)
    assert handoff.status == "won" and handoff.deal_value == 52000


@pytest.mark.parametrize(
    "query",
    [
        "until=0001-01-05",
        "until=9999-12-31",
        "from=0001-01-01&until=0001-01-02",
        "from=1969-12-31",
        "until=2201-01-01",
    ],
)
def test_a_dashboard_date_out_of_range_is_named_not_a_500(
    client: TestClient, world: World, query: str
) -> None:
    """dashboard.py ``read_form`` took any ISO date: year 1 or 9999 overflowed the
    period arithmetic (OverflowError: a 500, on the page and on each CSV link)."""
    sign_in(client, world.users["marketing"])
    page = client.get(f"/dashboard?{query}")
    assert page.status_code == 200, page.text[-500:]
    assert "1970 to 2200" in page.text
    csv = client.get(f"/dashboard/funnel-cohort.csv?{query}")
    assert csv.status_code == 200
    assert csv.headers["content-type"].startswith("text/csv")


@pytest.mark.parametrize("ids", [("99999999999999999999", "1"), ("1", "-3"), ("0", "2")])
def test_a_merge_with_an_id_out_of_range_is_refused_with_a_message(
    client: TestClient, world: World, ids: tuple[str, str]
) -> None:
    """admin.py ``merge`` took any integer: one past 2^63 reached SQLite (OverflowError,
    a 500)."""
    token = sign_in(client, world.users["admin"])
    answer = client.post(
        "/admin/duplicates/merge",
        data={"survivor_id": ids[0], "merged_id": ids[1], "csrf_token": token},
    )
    assert answer.status_code == 303
    assert "choose which lead to keep" in _flash(client, answer.headers["location"])


@pytest.mark.parametrize(
    "next_url",
    ["//evil.example", "/\\evil.example", "https://evil.example", "/\t/evil.example", "\\/x"],
)
def test_sign_in_never_sends_off_site(client: TestClient, world: World, next_url: str) -> None:
    """``next`` is a local path only, on the form and on ``GET /login`` when signed in
    (a tab is sent escaped, so a browser cannot strip it into ``//evil``)."""
    sign_in(client, world.users["rep"])
    location = client.get("/login", params={"next": next_url}).headers["location"]
    assert location.startswith("/") and not location.startswith(("//", "/\\"))
    assert "\t" not in location


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.slack.com/services/T0/B0/a b c d e f",
        "https://hооks.slack.com/services/T0/B0/abcdefgh1234",  # Cyrillic "о"s
        "https://hooks.slack.com/services/T0/B0/abcdefgh1234\r\nX-Evil: 1",
    ],
)
def test_a_chat_url_the_api_refuses_is_refused_by_the_settings_page_too(
    client: TestClient, world: World, url: str
) -> None:
    """The API's schema takes printable ASCII URLs only; the settings form went
    straight to the use case and stored a look-alike host or a URL with a space or
    a line break (domain/chat.py ``check_chat_url`` now refuses them for both)."""
    token = sign_in(client, world.users["rep"])
    answer = client.post(
        "/settings/notifications/channels",
        data={"kind": "slack", "url": url, "label": "mine", "csrf_token": token},
    )
    assert answer.headers["location"] == "/settings/notifications#add"
    page = client.get(answer.headers["location"]).text
    assert "printable ASCII only" in page and "mine" not in page


def test_a_chat_url_is_shown_nowhere_after_it_is_added(client: TestClient, world: World) -> None:
    """Secret once: not in the redirect, its flash message, the page, nor another rep's
    reach (Ben's remove of Ana's channel is the 404 page)."""
    secret_part = "XsEcReTpArT0123456789"
    url = f"https://hooks.slack.com/services/T0/B0/{secret_part}"
    token = sign_in(client, world.users["rep"])
    answer = client.post(
        "/settings/notifications/channels",
        data={"kind": "slack", "url": url, "label": "mine", "csrf_token": token},
    )
    assert answer.status_code == 303 and secret_part not in answer.headers["location"]
    assert secret_part[:8] not in str(answer.headers.get("set-cookie", ""))
    page = client.get(answer.headers["location"]).text
    assert "mine" in page and secret_part[:8] not in page
    channel_id = int(page.split("/settings/notifications/channels/")[1].split("/")[0])
    ben = sign_in(client, world.users["other_rep"])
    refused = client.post(
        f"/settings/notifications/channels/{channel_id}/remove", data={"csrf_token": ben}
    )
    assert refused.status_code == 404 and "Not found" in refused.text
    toggled = client.post(
        "/settings/notifications",
        data={"email": "on", "shown": str(channel_id), "csrf_token": ben},
    )
    assert toggled.status_code == 404


PAGES_BY_ROLE = {
    "rep": ["/inbox", "/inbox/list", "/handoffs/{ana}", "/leads", "/leads/{ana_lead}",
            "/contract", "/settings/notifications", "/home", "/password"],
    "sales_manager": ["/team", "/handoffs/{ben}", "/contract/diff?old=1&new=1", "/leads"],
    "marketing": ["/dashboard", "/contract/new", "/admin/duplicates"],
    "admin": ["/admin", "/admin/users", "/admin/tokens", "/admin/reps", "/admin/reps/1",
              "/admin/webhooks", "/admin/intake-keys", "/contract/1"],
}  # fmt: skip


def test_no_page_carries_what_its_csp_would_block(client: TestClient, world: World) -> None:
    """The CSP allows our own files only (``script-src 'self'; style-src 'self'``): an
    inline script, a ``<style>`` block, a ``style=`` attribute or an ``on…=``
    handler would be dropped silently by the browser; none may be in a page."""

    ids = {
        "ana": world.first(ANA),
        "ben": world.handoffs["ben@lumen.example"][0],
        "ana_lead": world.leads[ANA][0],
    }
    for role, paths in PAGES_BY_ROLE.items():
        sign_in(client, world.users[role])
        for path in paths:
            page = client.get(path.format(**ids))
            assert page.status_code == 200, (role, path)
            assert not _csp_blocked(page.text), (role, path, _csp_blocked(page.text))


def _csp_blocked(page: str) -> list[str]:
    """What the browser would drop from the page's markup: the tags and attributes
    themselves, read by an HTML parser, so a template shown as text (the contract's
    nurture email with its ``style=``, escaped in a textarea) is not mistaken for one."""
    from html.parser import HTMLParser

    found: list[str] = []

    class Markup(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            names = {name for name, _ in attrs}
            if tag == "script" and "src" not in names:
                found.append("inline <script>")
            if tag == "style":
                found.append("<style>")
            for name, value in attrs:
                if name == "style" or name.startswith("on"):
                    found.append(f"<{tag} {name}=>")
                if (value or "").strip().lower().startswith("javascript:"):
                    found.append(f"<{tag} {name}=javascript:>")

    Markup().feed(page)
    return found


HANDOFF_FORMS = {
    "accept": {},
    "reject": {"code": "no_budget"},
    "touch": {"kind": "call", "note": "x"},
    "qualify": {"field_budget": "1"},
    "won": {"amount": "1"},
    "lost": {"reason": "x"},
    "prep": {"item": "use_case_noted", "done": "true"},
    "notes": {"body": "mine now"},
    "tags": {"tag": "mine"},
}


def test_a_rep_acting_on_another_reps_handoff_or_lead_gets_the_404_page(
    client: TestClient, sqlite_ctx: Context, world: World
) -> None:
    """Every form on a handoff or a lead goes through the use cases' access checks:
    Ana posting to Ben's handoff (or his lead) changes nothing and sees the 404 page,
    as for an id that does not exist."""
    ben_handoff = world.handoffs["ben@lumen.example"][0]
    ben_lead = world.leads["ben@lumen.example"][0]
    before = get_handoff(sqlite_ctx, ben_handoff, actor=OPS)
    token = sign_in(client, world.users["rep"])
    for action, data in HANDOFF_FORMS.items():
        answer = client.post(
            f"/handoffs/{ben_handoff}/{action}", data={**data, "csrf_token": token}
        )
        assert answer.status_code == 404, (action, answer.status_code)
        assert "Not found" in answer.text
    for action, data in (("notes", {"body": "x"}), ("tags", {"tag": "x"})):
        answer = client.post(f"/leads/{ben_lead}/{action}", data={**data, "csrf_token": token})
        assert answer.status_code == 404, action
    for action in ("assign", "reassign"):
        answer = client.post(
            f"/team/handoffs/{ben_handoff}/{action}", data={"to": ANA, "csrf_token": token}
        )
        assert answer.status_code in (403, 404), action
    assert get_handoff(sqlite_ctx, ben_handoff, actor=OPS) == before


@pytest.mark.parametrize("channel_id", ["99999999999999999999", "0", "-1"])
def test_a_channel_id_out_of_range_in_the_settings_form_is_not_a_500(
    client: TestClient, world: World, channel_id: str
) -> None:
    """settings.py ``choose`` took any integer as a channel id: one past 2^63 reached
    SQLite (OverflowError, a 500); now the form is refused with the 400 page."""
    token = sign_in(client, world.users["rep"])
    answer = client.post(
        "/settings/notifications",
        data={"email": "on", "shown": channel_id, "on": channel_id, "csrf_token": token},
    )
    assert answer.status_code == 400 and "Not sent" in answer.text


def test_a_weekly_report_of_decades_is_refused_not_computed(
    client: TestClient, world: World
) -> None:
    """Each week is a branch of the weekly SLA query: 1970–2200 held a worker for
    seconds. The API answers 422 naming the limit; the dashboard says so and shows the
    last 30 days."""
    sign_in(client, world.users["marketing"])
    api = client.get("/api/v1/reports/sla-weekly?from=1970-01-01&to=2200-01-01")
    assert api.status_code == 422, api.text
    assert "weeks" in api.json()["detail"]
    fine = client.get("/api/v1/reports/sla-weekly?from=2026-01-05&to=2026-03-02")
    assert fine.status_code == 200
    assert len(fine.json()["rows"]) == 8
    page = client.get("/dashboard?from=1970-01-01&until=2199-12-31")
    assert page.status_code == 200
    assert "at most 262 weeks" in page.text


@pytest.mark.parametrize("value", ["99999999999999999999", "0", "-4", "x"])
def test_a_saved_filter_id_out_of_range_is_named_not_a_500(
    client: TestClient, world: World, value: str
) -> None:
    sign_in(client, world.users["marketing"])
    page = client.get(f"/leads?filter={value}")
    assert page.status_code == 422, page.text[-300:]  # the list, with the problem named
    assert "no such saved filter" in page.text
