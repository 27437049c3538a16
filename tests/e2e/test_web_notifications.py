"""The rep's notification settings page (``/settings/notifications``) over HTTP: add a
Slack channel, turn email off, remove it; the URL is never on a page; another rep's
channel is the 404 page. Uses the shared web world (``tests/web_world.py``)."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from tests.conftest import START
from tests.web_world import ANA, BEN, PASSWORD, World, build_world

from baton.api.app import create_app
from baton.config import Settings
from baton.domain.access import operator
from baton.domain.clock import ManualClock
from baton.services import chat as chat_service
from baton.services.context import Context, open_context
from baton.services.reps import find_rep

SECRET = "PageSecretPart0123456789"
URL = f"https://hooks.slack.com/services/T0/B0/{SECRET}"


@pytest.fixture
def world_ctx(sqlite_template: Path, tmp_path: Path) -> Iterator[tuple[Context, World]]:
    path = tmp_path / "baton.db"
    shutil.copyfile(sqlite_template, path)
    context = open_context(
        Settings(database_url=f"sqlite:///{path}", env="test"), clock=ManualClock(current=START)
    )
    try:
        yield context, build_world(context, handoffs_each=1)
    finally:
        context.engine.dispose()


def sign_in(client: TestClient, email: str) -> str:
    client.cookies.clear()
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text)
    assert token is not None
    answer = client.post(
        "/login",
        data={"email": email, "password": PASSWORD, "csrf_token": token[1]},
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text
    return str(client.get("/auth/me").json()["csrf_token"])


def test_a_rep_sets_up_slack_and_turns_email_off(world_ctx: tuple[Context, World]) -> None:
    ctx, _ = world_ctx
    with TestClient(create_app(ctx), base_url="https://testserver") as client:
        csrf = sign_in(client, ANA)
        page = client.get("/settings/notifications")
        assert page.status_code == 200
        assert "No chat channel yet" in page.text
        assert 'href="/settings/notifications" aria-current="page"' in page.text
        assert re.search(r'id="email-on" name="email" value="on" checked', page.text)

        added = client.post(
            "/settings/notifications/channels",
            data={"kind": "slack", "label": "#ana-leads", "url": URL, "csrf_token": csrf},
        )
        assert added.status_code == 200  # followed the 303 back to the page
        assert "Slack channel “#ana-leads” added (hooks.slack.com/…6789)" in added.text
        assert SECRET not in added.text
        [channel] = chat_service.list_channels(
            ctx, rep_id=find_rep(ctx, ANA, actor=operator()).id, actor=operator()
        )

        # Untick email, keep the channel on.
        saved = client.post(
            "/settings/notifications",
            data={"shown": str(channel.id), "on": str(channel.id), "csrf_token": csrf},
        )
        assert "Notification settings saved" in saved.text
        assert not re.search(r'id="email-on" name="email" value="on" checked', saved.text)
        assert re.search(
            rf'id="channel-{channel.id}" name="on" value="{channel.id}" checked', saved.text
        )
        assert SECRET not in saved.text

        refused = client.post(
            "/settings/notifications/channels",
            data={"kind": "slack", "url": "http://10.1.2.3/hook", "csrf_token": csrf},
        )
        assert "private address" in refused.text

        # Ben cannot remove Ana's channel: the 404 page.
        ben_csrf = sign_in(client, BEN)
        other = client.post(
            f"/settings/notifications/channels/{channel.id}/remove",
            data={"csrf_token": ben_csrf},
            headers={"accept": "text/html"},
        )
        assert other.status_code == 404 and "Not found" in other.text

        csrf = sign_in(client, ANA)
        gone = client.post(
            f"/settings/notifications/channels/{channel.id}/remove", data={"csrf_token": csrf}
        )
        assert f"Channel {channel.id} removed" in gone.text
        assert "No chat channel yet" in gone.text


def test_people_without_a_rep_record_are_told_so(world_ctx: tuple[Context, World]) -> None:
    ctx, world = world_ctx
    with TestClient(create_app(ctx), base_url="https://testserver") as client:
        sign_in(client, world.users["sales_manager"])
        page = client.get("/settings/notifications", headers={"accept": "text/html"})
        assert page.status_code == 403 and "no rep record" in page.text
