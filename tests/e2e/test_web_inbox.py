"""The rep's inbox and packet pages over HTTP (TestClient): every verdict through its
form, the list fragment the page polls, a refused verdict said on the page, and the
API's inbox (the same use case)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from tests.web_world import ANA, PASSWORD, World, build_world, hand_raise

from baton.api.app import create_app
from baton.domain.access import operator
from baton.services.context import Context
from baton.services.handoffs import get_handoff


@pytest.fixture
def world(sqlite_ctx: Context) -> World:
    return build_world(sqlite_ctx, handoffs_each=1)


@pytest.fixture
def ana(sqlite_ctx: Context, world: World) -> Iterator[tuple[TestClient, str]]:
    """A client signed in as the rep Ana, and her CSRF token."""
    with TestClient(
        create_app(sqlite_ctx), base_url="https://testserver", follow_redirects=False
    ) as client:
        page = client.get("/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert token is not None
        client.post("/login", data={"email": ANA, "password": PASSWORD, "csrf_token": token[1]})
        yield client, str(client.get("/auth/me").json()["csrf_token"])


def _status(ctx: Context, handoff_id: int) -> str:
    return get_handoff(ctx, handoff_id, actor=operator("t")).status


def test_a_handoff_from_accept_to_won_through_the_forms(
    ana: tuple[TestClient, str], sqlite_ctx: Context, world: World
) -> None:
    client, csrf = ana
    hid = world.first(ANA)
    page = client.get("/inbox")
    assert page.status_code == 200 and f'id="handoff-{hid}"' in page.text
    assert "Why now:</strong> hand-raise (demo request)" in page.text
    assert "→ back to nurture" in page.text and "→ disqualified" in page.text
    assert 'data-poll="/inbox/list"' in page.text

    def post(action: str, **fields: str) -> str:
        answer = client.post(
            f"/handoffs/{hid}/{action}", data={**fields, "csrf_token": csrf, "next": "/inbox"}
        )
        assert answer.status_code == 303 and answer.headers["location"] == "/inbox"
        return client.get("/inbox").text

    assert "Accepted" in post("accept")
    assert _status(sqlite_ctx, hid) == "accepted"
    assert "Logged: call" in post("touch", kind="call", note="left a voicemail")
    fields = {f"field_{f}": "yes" for f in ("budget", "authority", "need", "timing")}
    assert "Qualified" in post("qualify", **fields)
    assert _status(sqlite_ctx, hid) == "qualified"
    text = post("won", amount="12,500")
    assert "Won" in text and f'id="handoff-{hid}"' not in text
    assert get_handoff(sqlite_ctx, hid, actor=operator("t")).deal_value == 12500


def test_reject_lost_and_a_refused_verdict(
    ana: tuple[TestClient, str], sqlite_ctx: Context, world: World
) -> None:
    client, csrf = ana
    first = world.first(ANA)
    second = hand_raise(sqlite_ctx, country="US")
    back = f"/handoffs/{first}"
    refused = client.post(
        f"/handoffs/{first}/qualify", data={"csrf_token": csrf, "next": back}
    )  # not accepted yet
    assert refused.headers["location"] == back
    assert "Not done:" in client.get(back).text
    client.post(f"/handoffs/{first}/reject", data={"csrf_token": csrf, "code": "junk"})
    assert _status(sqlite_ctx, first) == "rejected"
    client.post(f"/handoffs/{second}/accept", data={"csrf_token": csrf})
    client.post(f"/handoffs/{second}/lost", data={"csrf_token": csrf, "reason": "chose a rival"})
    assert _status(sqlite_ctx, second) == "lost"
    fragment = client.get("/inbox/list")
    assert fragment.status_code == 200 and "<html" not in fragment.text
    assert "Nothing waits for you" in fragment.text


def test_the_packet_page_ticks_prep_and_adds_notes_and_tags(
    ana: tuple[TestClient, str], sqlite_ctx: Context, world: World
) -> None:
    client, csrf = ana
    hid = world.first(ANA)
    page = client.get(f"/handoffs/{hid}")
    assert page.status_code == 200
    item = re.search(r'name="item" value="([^"]+)"', page.text)
    assert item is not None
    client.post(f"/handoffs/{hid}/prep", data={"csrf_token": csrf, "item": item[1], "done": "true"})
    client.post(
        f"/handoffs/{hid}/notes", data={"csrf_token": csrf, "body": "Asked for <b>pricing</b>"}
    )
    client.post(f"/handoffs/{hid}/tags", data={"csrf_token": csrf, "tag": "Hot"})
    page = client.get(f"/handoffs/{hid}")
    assert 'aria-pressed="true"' in page.text
    assert "Asked for &lt;b&gt;pricing&lt;/b&gt;" in page.text  # escaped
    assert "<li>hot</li>" in page.text


def test_the_api_inbox_is_the_same_use_case(ana: tuple[TestClient, str], world: World) -> None:
    client, _ = ana
    body = client.get("/api/v1/handoffs/inbox").json()
    assert [i["handoff"]["id"] for i in body["items"]] == world.handoffs[ANA]
    assert body["zone"] == "America/New_York"
    assert {r["goes_to"] for r in body["reasons"]} == {"disqualified", "back to nurture"}
