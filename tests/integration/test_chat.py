"""Slack and Microsoft Teams notifications, end to end: a real HTTP receiver on
loopback takes the posts the worker makes, on SQLite and PostgreSQL, with a manual
clock. The channels' URLs are secrets: they never reach the outbox's recipients, the
logs or any list."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from tests.notify_servers import HttpReceiver, SmtpServer, http_receiver, smtp_server

from baton.domain.access import Principal, Role, operator
from baton.domain.activities import ActivityCreate
from baton.domain.chat import ChatMessage, check_chat_url, slack_payload, url_hint
from baton.domain.clock import ManualClock
from baton.domain.egress import EgressPolicy
from baton.domain.errors import Conflict, NotFound, ValidationFailed
from baton.domain.leads import LeadCreate
from baton.domain.reps import RepCreate, TeamCreate
from baton.notify.email import SmtpConfig
from baton.notify.webhooks import MAX_ATTEMPTS
from baton.redact import install_log_masking
from baton.services import chat as chat_service
from baton.services.activities import ingest_activity
from baton.services.context import Context
from baton.services.contracts import activate_contract, approve_contract, create_contract
from baton.services.handoffs import HandoffPublic, get_handoff, list_handoffs
from baton.services.leads import capture_lead
from baton.services.outbox import list_messages, retry_message
from baton.services.reps import create_rep, create_team, find_rep
from baton.services.worker import tick
from baton.store.tables import outbox

EXAMPLE = (Path(__file__).parents[2] / "contracts" / "example.yaml").read_text()
ANA, BEN, SAM = "ana@lumen.example", "ben@lumen.example", "sam@lumen.example"
OPS = operator("ops")
MONDAY_9_NY = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)  # 09:00 EST


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with smtp_server() as server:
        yield server


@pytest.fixture
def slack() -> Iterator[HttpReceiver]:
    with http_receiver(body=b"ok") as server:
        yield server


@pytest.fixture
def teams() -> Iterator[HttpReceiver]:
    with http_receiver(body=b"1") as server:
        yield server


def floor(ctx: Context, clock: ManualClock) -> dict[str, int]:
    """The example contract; team ``na`` (managed by Sam) with Ana, in New York."""
    clock.set(MONDAY_9_NY)
    ctx.settings = ctx.settings.model_copy(
        update={"webhook_internal_allowlist": "127.0.0.1", "public_url": "https://baton.acme.test"}
    )
    version = create_contract(ctx, EXAMPLE, actor=operator("maria")).version
    approve_contract(ctx, version, role="marketing", actor=operator("maria"))
    approve_contract(ctx, version, role="sales", actor=operator("sam"))
    activate_contract(ctx, version, actor=operator("maria"))
    team = create_team(ctx, TeamCreate(name="na", manager_email=SAM), actor=OPS)
    for email in (ANA, BEN):
        create_rep(
            ctx,
            RepCreate(
                email=email,
                name=email.split("@")[0].title(),
                team="na" if email == ANA else None,
                capacity=500,
                timezone="America/New_York",
                status="available" if email == ANA else "away",
            ),
            actor=OPS,
        )
    return {
        "team": team.id,
        "ana": find_rep(ctx, ANA, actor=OPS).id,
        "ben": find_rep(ctx, BEN, actor=OPS).id,
    }


def hand_raise(ctx: Context, number: int = 1) -> HandoffPublic:
    email = f"dana{number}@northwind{number}.com"
    data = LeadCreate.model_validate(
        {"email": email, "first_name": "Dana", "company": "Northwind", "country": "US"}
    )
    lead_id = capture_lead(ctx, data, actor=operator("form")).lead.id
    ingest_activity(
        ctx,
        ActivityCreate.model_validate(
            {"email": email, "type": "demo_request", "occurred_at": ctx.clock.now()}
        ),
        actor=operator("web"),
    )
    [handoff] = list_handoffs(ctx, lead_id=lead_id, actor=OPS)
    return handoff


def rep_user(rep_id: int, email: str) -> Principal:
    return Principal(kind="user", name=email, role=Role.REP, email=email, rep_id=rep_id, user_id=1)


def config_for(server: SmtpServer) -> SmtpConfig:
    return SmtpConfig(host=server.host, port=server.port, sender="baton@lumen.example", timeout=5)


def posts(receiver: HttpReceiver) -> list[dict[str, object]]:
    return [json.loads(r.body) for r in receiver.requests]


def test_an_assignment_reaches_the_reps_slack_and_the_teams_teams_channel(
    ctx: Context,
    clock: ManualClock,
    smtp: SmtpServer,
    slack: HttpReceiver,
    teams: HttpReceiver,
    caplog: pytest.LogCaptureFixture,
) -> None:
    ids = floor(ctx, clock)
    slack_url = slack.url_for("/services/T0/B0/ana-secret-token-123")
    teams_url = teams.url_for("/webhookb2/team-secret-token-456")
    ana = rep_user(ids["ana"], ANA)
    mine, shown = chat_service.add_channel(
        ctx, kind="slack", url=slack_url, label="#ana", rep_id=ids["ana"], actor=ana
    )
    assert shown == slack_url and mine.url_hint == "127.0.0.1:" + str(slack.port) + "/…-123"
    chat_service.add_channel(ctx, kind="teams", url=teams_url, team_id=ids["team"], actor=OPS)

    handoff = hand_raise(ctx)
    assert handoff.rep_email == ANA
    install_log_masking()  # as `baton worker` does
    with caplog.at_level(logging.DEBUG):
        tick(ctx, smtp=config_for(smtp))

    [to_ana] = posts(slack)
    assert slack.requests[0].path == "/services/T0/B0/ana-secret-token-123"
    section = to_ana["blocks"][0]["text"]["text"]  # type: ignore[index]
    assert "New lead for Ana: Dana (Northwind)" in section
    assert "Why now: hand-raise (demo request)" in section
    assert "EST" in section and "Accept by" in section
    link = f"https://baton.acme.test/handoffs/{handoff.id}"
    assert to_ana["blocks"][1]["elements"][0]["url"] == link  # type: ignore[index]
    assert "EST" in str(to_ana["text"])

    [to_team] = posts(teams)
    card = to_team["attachments"][0]["content"]  # type: ignore[index]
    assert to_team["type"] == "message"
    assert card["type"] == "AdaptiveCard"
    assert card["actions"][0]["url"] == link
    facts = {f["title"]: f["value"] for f in card["body"][1]["facts"]}
    assert facts["Why now"] == "hand-raise (demo request)"
    assert facts["Accept by"].endswith("EST")

    assert [m["To"] for m in smtp.messages] == [ANA], "email is on by default"
    assert get_handoff(ctx, handoff.id, actor=OPS).notified_at is not None
    # Exactly once per event per channel: another pass sends nothing more.
    tick(ctx, smtp=config_for(smtp))
    assert (len(slack.requests), len(teams.requests)) == (1, 1)
    # The URLs are secrets: not in the outbox an admin reads, not in any log line.
    chats = list_messages(ctx, actor=OPS, channel="chat")
    assert {m.state for m in chats} == {"sent"} and len(chats) == 2
    for text in [m.recipient for m in chats] + [r.getMessage() for r in caplog.records]:
        assert "secret-token" not in text


def test_a_rep_who_turned_email_off_gets_no_email_but_chat(
    ctx: Context, clock: ManualClock, smtp: SmtpServer, slack: HttpReceiver
) -> None:
    ids = floor(ctx, clock)
    ana = rep_user(ids["ana"], ANA)
    channel, _ = chat_service.add_channel(
        ctx, kind="slack", url=slack.url, rep_id=ids["ana"], actor=ana
    )
    chosen = chat_service.set_notifications(ctx, ids["ana"], email=False, actor=ana)
    assert chosen.email is False and [c.id for c in chosen.channels] == [channel.id]

    hand_raise(ctx)
    tick(ctx, smtp=config_for(smtp))

    assert smtp.messages == []
    assert len(slack.requests) == 1

    # Channel off, email back on: the next lead comes by email only.
    chat_service.set_notifications(
        ctx, ids["ana"], email=True, channels={channel.id: False}, actor=ana
    )
    hand_raise(ctx, 2)
    tick(ctx, smtp=config_for(smtp))
    assert [m["To"] for m in smtp.messages] == [ANA]
    assert len(slack.requests) == 1


def test_reminders_go_to_the_rep_and_escalations_to_the_team(
    ctx: Context, clock: ManualClock, smtp: SmtpServer, slack: HttpReceiver, teams: HttpReceiver
) -> None:
    ids = floor(ctx, clock)
    chat_service.add_channel(ctx, kind="slack", url=slack.url, rep_id=ids["ana"], actor=OPS)
    chat_service.add_channel(ctx, kind="teams", url=teams.url, team_id=ids["team"], actor=OPS)
    hand_raise(ctx)
    tick(ctx, smtp=config_for(smtp))
    assert (len(slack.requests), len(teams.requests)) == (1, 1)

    clock.advance(minutes=21)  # the example contract reminds at 20 minutes
    tick(ctx, smtp=config_for(smtp))
    assert "Reminder: Ana, accept Dana (Northwind)" in json.dumps(posts(slack)[-1])
    assert len(teams.requests) == 1

    clock.advance(minutes=10)  # tells the manager (and reassigns) at 30
    tick(ctx, smtp=config_for(smtp))
    escalation = json.dumps(posts(teams)[1])
    assert "SLA missed: Dana (Northwind) (Ana)" in escalation
    assert "Ana: not accepted in time" in escalation


def test_a_failing_channel_is_retried_then_dead_lettered(
    ctx: Context, clock: ManualClock, smtp: SmtpServer
) -> None:
    ids = floor(ctx, clock)
    with http_receiver(status=503) as down, http_receiver(status=404, body=b"no_service") as gone:
        chat_service.add_channel(ctx, kind="slack", url=down.url, rep_id=ids["ana"], actor=OPS)
        chat_service.add_channel(ctx, kind="teams", url=gone.url, rep_id=ids["ana"], actor=OPS)
        hand_raise(ctx)
        tick(ctx, smtp=config_for(smtp))
        assert (len(down.requests), len(gone.requests)) == (1, 1)
        states = {m.recipient.split()[0]: m for m in list_messages(ctx, actor=OPS, channel="chat")}
        assert states["teams"].state == "failed", "404 (deleted webhook) fails at once"
        assert states["slack"].state == "retrying"
        assert states["slack"].last_error == "HTTP 503 Service Unavailable"
        for _ in range(MAX_ATTEMPTS):
            clock.advance(hours=3)  # the reminder and escalations come meanwhile, too
            tick(ctx, smtp=config_for(smtp))
    messages = list_messages(ctx, actor=OPS, channel="chat")
    [dead] = [m for m in messages if m.recipient[0] == "s" and m.topic == "handoff.assigned"]
    assert (dead.state, dead.attempts) == ("failed", MAX_ATTEMPTS)
    assert all(m.attempts == 1 for m in messages if m.recipient[0] == "t")
    assert len(gone.requests) == sum(1 for m in messages if m.recipient[0] == "t")


def test_a_removed_channel_forgets_its_url_and_its_waiting_messages_fail(
    ctx: Context, clock: ManualClock, smtp: SmtpServer, slack: HttpReceiver
) -> None:
    ids = floor(ctx, clock)
    channel, _ = chat_service.add_channel(
        ctx, kind="slack", url=slack.url, rep_id=ids["ana"], actor=OPS
    )
    hand_raise(ctx)
    chat_service.remove_channel(ctx, channel.id, actor=OPS)
    tick(ctx, smtp=config_for(smtp))
    assert slack.requests == []
    [message] = list_messages(ctx, actor=OPS, channel="chat")
    assert (message.state, message.last_error) == ("failed", "chat channel removed")
    with ctx.read() as connection:
        chat = select(outbox.c.chat_channel_id).where(outbox.c.channel == "chat")
        assert connection.execute(chat).scalar_one() == channel.id
    assert chat_service.list_channels(ctx, rep_id=ids["ana"], actor=OPS) == []
    with pytest.raises(Conflict, match="was removed"):
        retry_message(ctx, message.id, actor=OPS)


def test_channels_of_others_are_out_of_reach(ctx: Context, clock: ManualClock) -> None:
    ids = floor(ctx, clock)
    url = "https://hooks.slack.com/services/T0/B0/XXXXXXXXXXXXXXXX"
    ana, ben = rep_user(ids["ana"], ANA), rep_user(ids["ben"], BEN)
    anas, _ = chat_service.add_channel(ctx, kind="slack", url=url, rep_id=ids["ana"], actor=ana)
    sam = Principal(kind="user", name=SAM, role=Role.SALES_MANAGER, email=SAM, user_id=2)
    stranger = Principal(
        kind="user", name="x@y.z", role=Role.SALES_MANAGER, email="x@y.z", user_id=3
    )

    for attempt in (
        lambda: chat_service.list_channels(ctx, rep_id=ids["ana"], actor=ben),
        lambda: chat_service.add_channel(ctx, kind="slack", url=url, rep_id=ids["ana"], actor=ben),
        lambda: chat_service.remove_channel(ctx, anas.id, actor=ben),
        lambda: chat_service.set_channel_active(ctx, anas.id, False, actor=ben),
        lambda: chat_service.get_notifications(ctx, ids["ana"], actor=ben),
        lambda: chat_service.set_notifications(
            ctx, ids["ben"], channels={anas.id: False}, actor=ben
        ),
        lambda: chat_service.add_channel(
            ctx, kind="teams", url=url, team_id=ids["team"], actor=ana
        ),
        lambda: chat_service.list_channels(ctx, team_id=ids["team"], actor=stranger),
        lambda: chat_service.list_channels(ctx, rep_id=ids["ana"], actor=stranger),
        lambda: chat_service.list_channels(ctx, rep_id=9999, actor=OPS),
    ):
        with pytest.raises(NotFound):
            attempt()
    # The manager of the team manages its reps' and the team's channels.
    assert [c.id for c in chat_service.list_channels(ctx, rep_id=ids["ana"], actor=sam)] == [
        anas.id
    ]
    chat_service.add_channel(ctx, kind="teams", url=url, team_id=ids["team"], actor=sam)
    assert len(chat_service.list_channels(ctx, team_id=ids["team"], actor=sam)) == 1


def test_urls_are_checked_like_outbound_webhooks(ctx: Context, clock: ManualClock) -> None:
    ids = floor(ctx, clock)
    ctx.settings = ctx.settings.model_copy(update={"webhook_internal_allowlist": ""})
    for url in ("http://127.0.0.1:9/x", "http://169.254.169.254/latest", "ftp://hooks.a.b/x"):
        with pytest.raises(ValidationFailed) as refused:
            chat_service.add_channel(ctx, kind="slack", url=url, rep_id=ids["ana"], actor=OPS)
        assert url not in str(refused.value.problems), "a refusal never quotes the secret"
    with pytest.raises(ValidationFailed):
        chat_service.add_channel(ctx, kind="irc", url="https://a.b/c", rep_id=ids["ana"], actor=OPS)

    public = EgressPolicy.parse("")
    assert check_chat_url("http://hooks.slack.com/services/x", public, production=False) == []
    [problem] = check_chat_url("http://hooks.slack.com/services/x", public, production=True)
    assert problem.message == "must start with https://"
    assert check_chat_url("https://u:p@hooks.slack.com/x", public, production=True)
    assert (
        url_hint("https://hooks.slack.com/services/T0/B0/abcdefgh1234") == "hooks.slack.com/…1234"
    )


def test_slack_text_is_escaped() -> None:
    message = ChatMessage(
        topic="handoff.assigned",
        handoff_id=1,
        rep="Ana",
        who="<!channel> & co",
        why_now="score 90 (A)",
        deadline_label="Accept by",
        deadline="Mon 2 Mar 09:20 EST",
        link="https://baton.acme.test/handoffs/1",
    )
    body = json.dumps(slack_payload(message))
    assert "<!channel>" not in body.split('"blocks"')[1]
    assert "&lt;!channel&gt; &amp; co" in body


def test_a_time_past_the_deadline_moves_nothing_twice(
    ctx: Context, clock: ManualClock, smtp: SmtpServer, slack: HttpReceiver
) -> None:
    """Two workers' passes at the same moment post each message once (the outbox's
    claim and fencing)."""
    ids = floor(ctx, clock)
    chat_service.add_channel(ctx, kind="slack", url=slack.url, rep_id=ids["ana"], actor=OPS)
    for number in range(3):
        hand_raise(ctx, number)
        clock.advance(timedelta(seconds=1))
    tick(ctx, smtp=config_for(smtp))
    tick(ctx, smtp=config_for(smtp))
    assert len(slack.requests) == 3
    assert len({r.headers["X-Baton-Delivery"] for r in slack.requests}) == 3
