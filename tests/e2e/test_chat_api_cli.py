"""Chat channels over HTTP (SQLite and PostgreSQL) and on the command line: the
webhook URL is in the answer that adds a channel and in nothing after it; another
rep's channels answer 404 exactly like missing ones."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from tests.conftest import bearer, token_for
from typer.testing import CliRunner

from baton import cli as baton_cli
from baton.api.app import create_app
from baton.cli import app as cli
from baton.services.context import Context

ANA, BEN, SAM = "ana@lumen.example", "ben@lumen.example", "sam@lumen.example"
SECRET = "XyZsecretPart0123456789"
SLACK = f"https://hooks.slack.com/services/T0/B0/{SECRET}"
TEAMS = f"https://acme.webhook.office.com/webhookb2/{SECRET}-teams"


def ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json() if response.content else None


@pytest.fixture
def admin(ctx: Context) -> Iterator[TestClient]:
    with TestClient(
        create_app(ctx), raise_server_exceptions=False, headers=bearer(token_for(ctx, "admin"))
    ) as client:
        ok(client.post("/api/v1/teams", json={"name": "na", "manager_email": SAM}), 201)
        ok(client.post("/api/v1/teams", json={"name": "emea"}), 201)
        for email in (ANA, BEN):
            ok(
                client.post("/api/v1/reps", json={"email": email, "name": email[:3], "team": "na"}),
                201,
            )
        yield client


def test_the_url_is_shown_once_and_others_get_404(admin: TestClient, ctx: Context) -> None:
    reps = {r["email"]: r["id"] for r in ok(admin.get("/api/v1/reps"))}
    teams = {t["name"]: t["id"] for t in ok(admin.get("/api/v1/teams"))}
    ana = bearer(token_for(ctx, "rep", rep_email=ANA))
    ben = bearer(token_for(ctx, "rep", rep_email=BEN))
    sam = bearer(token_for(ctx, "sales_manager", email=SAM))

    created = ok(
        admin.post(
            f"/api/v1/reps/{reps[ANA]}/channels",
            json={"kind": "slack", "url": SLACK, "label": "#ana"},
            headers=ana,
        ),
        201,
    )
    assert created["url"] == SLACK
    assert created["url_hint"] == f"hooks.slack.com/…{SECRET[-4:]}"
    channel = created["id"]
    team_channel = ok(
        admin.post(f"/api/v1/teams/{teams['na']}/channels", json={"kind": "teams", "url": TEAMS}),
        201,
    )
    assert team_channel["url"] == TEAMS

    answers = [
        admin.get(f"/api/v1/reps/{reps[ANA]}/channels", headers=ana),
        admin.get(f"/api/v1/reps/{reps[ANA]}/channels", headers=sam),
        admin.get(f"/api/v1/reps/{reps[ANA]}/notifications", headers=ana),
        admin.put(
            f"/api/v1/reps/{reps[ANA]}/notifications",
            json={"email": False, "channels": [{"id": channel, "active": True}]},
            headers=ana,
        ),
        admin.patch(f"/api/v1/chat-channels/{channel}", json={"active": False}, headers=ana),
        admin.get(f"/api/v1/teams/{teams['na']}/channels", headers=sam),
        admin.get(f"/api/v1/teams/{teams['na']}/channels"),
        admin.get("/api/v1/outbox?channel=chat"),
        admin.get("/openapi.json"),
    ]
    for answer in answers:
        assert answer.status_code == 200, answer.text
        assert SECRET not in answer.text
    listed = answers[0].json()
    assert [(c["id"], c["active"]) for c in listed] == [(channel, True)]
    assert answers[3].json()["email"] is False
    assert answers[4].json()["active"] is False
    assert [c["kind"] for c in answers[5].json()] == ["teams"]

    # Ben, a rep of the same team: Ana's channels do not exist for him.
    for denied in (
        admin.get(f"/api/v1/reps/{reps[ANA]}/channels", headers=ben),
        admin.post(
            f"/api/v1/reps/{reps[ANA]}/channels", json={"kind": "slack", "url": SLACK}, headers=ben
        ),
        admin.get(f"/api/v1/reps/{reps[ANA]}/notifications", headers=ben),
        admin.put(f"/api/v1/reps/{reps[ANA]}/notifications", json={"email": True}, headers=ben),
        admin.put(
            f"/api/v1/reps/{reps[BEN]}/notifications",
            json={"channels": [{"id": channel, "active": False}]},
            headers=ben,
        ),
        admin.patch(f"/api/v1/chat-channels/{channel}", json={"active": True}, headers=ben),
        admin.delete(f"/api/v1/chat-channels/{channel}", headers=ben),
        admin.delete("/api/v1/chat-channels/999999", headers=ben),
        admin.get(f"/api/v1/teams/{teams['na']}/channels", headers=ben),
        admin.get(f"/api/v1/teams/{teams['emea']}/channels", headers=sam),
    ):
        assert denied.status_code == 404, denied.text
        assert denied.headers["content-type"] == "application/problem+json"
        assert SECRET not in denied.text

    refused = admin.post(
        f"/api/v1/reps/{reps[ANA]}/channels",
        json={"kind": "slack", "url": f"http://169.254.169.254/{SECRET}"},
        headers=ana,
    )
    assert refused.status_code == 422 and SECRET not in refused.text
    assert "link-local" in refused.text

    ok(admin.delete(f"/api/v1/chat-channels/{channel}", headers=ana), 204)
    assert ok(admin.get(f"/api/v1/reps/{reps[ANA]}/channels", headers=ana)) == []
    assert admin.delete(f"/api/v1/chat-channels/{channel}", headers=ana).status_code == 404


# --- the command line -------------------------------------------------------------------


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("BATON_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.delenv("BATON_ENV", raising=False)
    monkeypatch.setattr(baton_cli.console, "width", 200)
    monkeypatch.chdir(tmp_path)
    return CliRunner()


def run(runner: CliRunner, *args: str, input: str | None = None) -> str:
    result = runner.invoke(cli, list(args), input=input)
    assert result.exit_code == 0, (args, result.output)
    return result.output


def test_channels_on_the_command_line_never_print_the_url(runner: CliRunner) -> None:
    run(runner, "team", "add", "na")
    run(runner, "rep", "add", ANA, "--name", "Ana", "--team", "na")

    added = run(runner, "rep", "channel", "add", "slack", ANA, "--label", "#ana", "--url", SLACK)
    assert added.startswith("slack channel 1 (#ana) added for ana@lumen.example")
    assert SECRET not in added
    typed = run(runner, "rep", "channel", "add", "teams", "--team", "na", input=TEAMS + "\n")
    assert "teams channel 2 (teams channel) added for team na" in typed
    assert SECRET not in typed, "typed unseen: the prompt does not echo it"

    run(runner, "rep", "channel", "switch", ANA, "email", "off")
    listing = run(runner, "rep", "channel", "list", ANA)
    assert "(email off)" in listing and "#ana" in listing and "hooks.slack.com/…" in listing
    assert SECRET not in listing
    assert "acme.webhook.office.com/…" in run(runner, "rep", "channel", "list", "--team", "na")

    run(runner, "rep", "channel", "switch", ANA, "1", "off")
    assert " no " in run(runner, "rep", "channel", "list", ANA)
    assert run(runner, "rep", "channel", "remove", "1") == "chat channel 1 removed\n"
    assert "#ana" not in run(runner, "rep", "channel", "list", ANA)

    wrong = runner.invoke(cli, ["rep", "channel", "add", "slack", "--url", SLACK])
    assert wrong.exit_code == 1 and "give a rep's EMAIL or --team NAME" in wrong.output
    bad = runner.invoke(
        cli, ["rep", "channel", "add", "slack", ANA, "--url", f"http://10.0.0.1/{SECRET}"]
    )
    assert bad.exit_code == 1 and "--url" in bad.output and SECRET not in bad.output
