"""The outbox as an admin sees it: what failed and why, filtered by state and channel,
and retried, over HTTP and on the command line."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from tests.conftest import bearer, token_for
from tests.notify_servers import closed_port, smtp_server
from typer.testing import CliRunner

from baton import cli as baton_cli
from baton.api.app import create_app
from baton.cli import app as cli
from baton.domain.access import operator
from baton.domain.activities import ActivityCreate
from baton.domain.clock import ManualClock
from baton.domain.leads import LeadCreate
from baton.domain.reps import RepCreate, TeamCreate
from baton.notify.email import SmtpConfig
from baton.notify.webhooks import next_attempt_delay
from baton.services.activities import ingest_activity
from baton.services.context import Context
from baton.services.contracts import activate_contract, approve_contract, create_contract
from baton.services.leads import capture_lead
from baton.services.reps import create_rep, create_team
from baton.services.worker import tick
from baton.store.tables import outbox

EXAMPLE = Path(__file__).parents[2] / "contracts" / "example.yaml"
ANA = "ana@lumen.example"
OPS = operator("ops")
OUTBOX = "/api/v1/outbox"
DEAD = SmtpConfig(host="127.0.0.1", port=closed_port(), timeout=2)


def sales_floor(ctx: Context) -> None:
    version = create_contract(ctx, EXAMPLE.read_text(), actor=operator("maria")).version
    approve_contract(ctx, version, role="marketing", actor=operator("maria"))
    approve_contract(ctx, version, role="sales", actor=operator("sam"))
    activate_contract(ctx, version, actor=operator("maria"))
    create_team(ctx, TeamCreate(name="na"), actor=OPS)
    create_rep(ctx, RepCreate(email=ANA, name="Ana", team="na"), actor=OPS)


def hand_raise(ctx: Context) -> None:
    email = "dana@northwind.com"
    data = LeadCreate.model_validate({"email": email, "company": "Northwind", "country": "US"})
    capture_lead(ctx, data, actor=OPS)
    event = {"email": email, "type": "demo_request", "occurred_at": ctx.clock.now()}
    ingest_activity(ctx, ActivityCreate.model_validate(event), actor=OPS)


@pytest.fixture
def api(ctx: Context) -> Iterator[TestClient]:
    with TestClient(
        create_app(ctx), raise_server_exceptions=False, headers=bearer(token_for(ctx, "admin"))
    ) as client:
        yield client


def ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def problem(response: Any, status: int) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    return str(response.json()["detail"])


def test_failed_email_is_listed_by_state_and_retried_over_the_api(
    ctx: Context, clock: ManualClock, api: TestClient
) -> None:
    sales_floor(ctx)
    hand_raise(ctx)
    tick(ctx, smtp=DEAD)

    [retrying] = ok(api.get(OUTBOX, params={"state": "retrying"}))
    assert (retrying["channel"], retrying["topic"], retrying["recipient"]) == (
        "email",
        "handoff.assigned",
        ANA,
    )
    assert (retrying["attempts"], retrying["in_flight"]) == (1, False)
    assert retrying["last_error"] == (
        f"cannot reach SMTP server 127.0.0.1:{DEAD.port}: Connection refused"
    )
    assert ok(api.get(OUTBOX, params={"state": "failed"})) == []
    assert ok(api.get(OUTBOX, params={"channel": "webhook"})) == []

    # The mail server is back but does not know Ana (a typo, fixed later): given up.
    with smtp_server(refuse={ANA: "550 5.1.1 No such user"}) as smtp:
        config = SmtpConfig(host=smtp.host, port=smtp.port)
        clock.advance(next_attempt_delay(1))
        tick(ctx, smtp=config)
        [failed] = ok(api.get(OUTBOX, params=[("state", "failed"), ("state", "sent")]))
        message_id = failed["id"]
        assert (failed["attempts"], failed["next_attempt_at"]) == (2, None)
        assert "550 5.1.1 No such user" in failed["last_error"]

        smtp.refuse.clear()
        retried = ok(api.post(f"{OUTBOX}/{message_id}/retry"))
        assert (retried["state"], retried["attempts"]) == ("pending", 2)
        assert datetime.fromisoformat(retried["next_attempt_at"]) == clock.now()
        tick(ctx, smtp=config)
    with ctx.read() as connection:
        key = connection.execute(
            select(outbox.c.message_key).where(outbox.c.id == message_id)
        ).scalar_one()
    assert [m["Message-ID"] for m in smtp.messages] == [f"<outbox-{message_id}.{key}@baton>"]

    sent = ok(api.get(f"{OUTBOX}/{message_id}"))
    assert sent["state"] == "sent"
    assert [(a["attempt"], a["ok"], a["status_code"]) for a in sent["history"]] == [
        (1, False, None),
        (2, False, None),
        (3, True, 250),
    ]
    assert "a retry would send it twice" in problem(api.post(f"{OUTBOX}/{message_id}/retry"), 409)
    assert ok(api.post(f"{OUTBOX}/retry-failed")) == {"retried": 0}
    assert "outbox message 999999 does not exist" in problem(api.get(f"{OUTBOX}/999999"), 404)
    marketing = bearer(token_for(ctx, "marketing"))
    assert "may not read and retry the outbox" in problem(api.get(OUTBOX, headers=marketing), 403)


def test_a_retry_starts_a_fresh_series_of_attempts(
    ctx: Context, clock: ManualClock, api: TestClient
) -> None:
    sales_floor(ctx)
    hand_raise(ctx)
    with smtp_server(refuse={ANA: "550 5.1.1 No such user"}) as smtp:
        tick(ctx, smtp=SmtpConfig(host=smtp.host, port=smtp.port))
    assert ok(api.post(f"{OUTBOX}/retry-failed", params={"channel": "webhook"})) == {"retried": 0}
    assert ok(api.post(f"{OUTBOX}/retry-failed", params={"channel": "email"})) == {"retried": 1}
    tick(ctx, smtp=DEAD)
    [message] = ok(api.get(OUTBOX))
    # The first attempt of the new series: retried after 30 s, as a first failure is.
    assert (message["state"], message["attempts"]) == ("retrying", 2)
    assert datetime.fromisoformat(message["next_attempt_at"]) == (
        clock.now() + next_attempt_delay(1)
    )


# --- the command line -------------------------------------------------------------------


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("BATON_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("BATON_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("BATON_SMTP_PORT", str(closed_port()))
    monkeypatch.delenv("BATON_ENV", raising=False)
    monkeypatch.setattr(baton_cli.console, "width", 200)  # whole rows on one line
    monkeypatch.chdir(tmp_path)
    return CliRunner()


def run(runner: CliRunner, *args: str) -> str:
    result = runner.invoke(cli, list(args))
    assert result.exit_code == 0, (args, result.output)
    return result.output


def refused(runner: CliRunner, *args: str) -> str:
    result = runner.invoke(cli, list(args))
    assert result.exit_code == 1, (args, result.output)
    [line] = result.output.strip().splitlines()
    return line


def test_the_outbox_on_the_command_line(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run(runner, "contract", "create", str(EXAMPLE), "--actor", "maria")
    run(runner, "contract", "approve", "1", "--role", "marketing", "--actor", "maria")
    run(runner, "contract", "approve", "1", "--role", "sales", "--actor", "sam")
    run(runner, "contract", "activate", "1")
    run(runner, "team", "add", "na")
    run(
        runner, "rep", "add", ANA, "--name", "Ana", "--team", "na", "--hours", "mon-sun=00:00-24:00"
    )
    (tmp_path / "leads.csv").write_text("Email,Company,Country\ndana@northwind.com,Northwind,US\n")
    now = datetime.now(UTC).isoformat(timespec="seconds")
    (tmp_path / "events.csv").write_text(
        f"email,type,occurred_at\ndana@northwind.com,demo_request,{now}\n"
    )
    run(runner, "import", "leads", "leads.csv")
    run(runner, "import", "activities", "events.csv")
    assert "no outbox messages in that state" in run(runner, "outbox", "list", "--state", "failed")

    assert "email delivery" not in run(runner, "worker", "--once")  # one pass: it failed
    listing = run(runner, "outbox", "list", "--state", "retrying", "--channel", "email")
    assert "handoff.assigned" in listing and ANA in listing and "retrying" in listing
    assert "Connection refused" in listing
    assert run(runner, "outbox", "retry", "--failed") == "0 failed messages due again\n"
    assert run(runner, "outbox", "retry", "1") == (
        f"outbox 1 (handoff.assigned to {ANA}) due again\n"
    )
    shown = run(runner, "outbox", "show", "1")
    assert shown.startswith(f"outbox 1: email handoff.assigned to {ANA}, pending")
    assert "Connection refused" in shown

    with smtp_server() as smtp:
        monkeypatch.setenv("BATON_SMTP_PORT", str(smtp.port))
        run(runner, "worker", "--once")
    assert len(smtp.messages) == 1
    assert "sent" in run(runner, "outbox", "list", "--state", "sent")
    assert "a retry would send it twice" in refused(runner, "outbox", "retry", "1")
    assert "name message ids, or give --failed" in refused(runner, "outbox", "retry")
