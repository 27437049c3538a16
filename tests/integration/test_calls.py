"""Inbound calls (issue 14, item 3), on SQLite and PostgreSQL: a call finds its lead by
phone (E.164, the most recently active of several), email or id, or creates it; it is
an ``inbound_call`` hand-raise under the example contract, so it opens a handoff to an
available rep; a retry with the phone system's call id is stored once; who may.

Time: the ``clock`` fixture, Monday 2026-03-02 09:00 UTC; Ana works around the clock.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from tests.conftest import principal_for

from baton.domain.access import Principal, operator
from baton.domain.calls import CallCreate, check_recording_url, parse_duration
from baton.domain.clock import ManualClock
from baton.domain.errors import Forbidden, NotFound, ValidationFailed
from baton.domain.leads import LeadCreate
from baton.domain.reps import RepCreate, TeamCreate
from baton.services import contracts as contract_service
from baton.services import reps as rep_service
from baton.services.calls import log_inbound_call, validation_context
from baton.services.context import Context
from baton.services.leads import capture_lead
from baton.store.tables import activities

EXAMPLE = (Path(__file__).parents[2] / "contracts" / "example.yaml").read_text()
OP = operator("test")
ALWAYS = {d: ["00:00-24:00"] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}


def floor(ctx: Context) -> None:
    version = contract_service.create_contract(ctx, EXAMPLE, actor=OP).version
    contract_service.approve_contract(ctx, version, role="marketing", actor=operator("maria"))
    contract_service.approve_contract(ctx, version, role="sales", actor=operator("sam"))
    contract_service.activate_contract(ctx, version, actor=OP)
    rep_service.create_team(ctx, TeamCreate(name="na"), actor=OP)
    rep_service.create_rep(
        ctx,
        RepCreate(email="ana@lumen.example", name="Ana Ruiz", team="na", working_hours=ALWAYS),
        actor=OP,
    )


def call(ctx: Context, **fields: object) -> CallCreate:
    return CallCreate.model_validate(fields, context=validation_context(ctx))


def lead(ctx: Context, **fields: object) -> int:
    data = LeadCreate.model_validate(fields, context={"default_region": "US"})
    return capture_lead(ctx, data, actor=OP).lead.id


def test_a_known_number_is_a_hand_raise_routed_to_a_rep(ctx: Context) -> None:
    floor(ctx)
    dana = lead(
        ctx, email="dana@northwind.com", phone="+1 415 555 0134", company="Northwind", country="US"
    )
    result = log_inbound_call(
        ctx,
        call(
            ctx,
            phone="(415) 555-0134",
            duration_seconds=parse_duration("5m"),
            rep="ana ruiz",
            notes="wants a demo",
            recording_url="https://calls.example.com/rec/1",
        ),
        actor=OP,
    )
    assert (result.lead.id, result.matched_by, result.lead_created) == (dana, "phone", False)
    assert result.became_mql and result.lead.stage == "mql"
    assert result.handoff is not None
    assert (result.handoff.status, result.handoff.rep_email) == ("assigned", "ana@lumen.example")
    with ctx.read() as connection:
        row = connection.execute(
            select(activities.c.properties).where(activities.c.id == result.activity_id)
        ).one()
    assert row.properties == {
        "direction": "inbound",
        "phone": "+14155550134",
        "duration_seconds": 300,
        "rep": "ana@lumen.example",
        "rep_name": "Ana Ruiz",
        "notes": "wants a demo",
        "recording_url": "https://calls.example.com/rec/1",
    }


def test_a_shared_number_goes_to_the_most_recently_active_lead(ctx: Context) -> None:
    clock = ctx.clock
    assert isinstance(clock, ManualClock)
    older = lead(ctx, email="a@shared.example.com", phone="+14155550100")
    clock.advance(timedelta(hours=1))
    newer = lead(ctx, email="b@shared.example.com", phone="+14155550100")
    clock.advance(timedelta(hours=1))
    lead(ctx, email="a@shared.example.com", company="Touched again")  # older is now latest
    result = log_inbound_call(ctx, call(ctx, phone="415 555 0100"), actor=OP)
    assert result.lead.id == older
    assert result.note is not None and "2 leads" in result.note and str(newer) in result.note


def test_an_unknown_caller_becomes_a_lead_and_a_retry_is_stored_once(ctx: Context) -> None:
    first = log_inbound_call(ctx, call(ctx, phone="+44 20 7946 0958", call_id="pbx-1"), actor=OP)
    assert first.lead_created and first.matched_by == "created"
    assert (first.lead.phone, first.lead.source) == ("+442079460958", "phone")
    assert first.handoff is None  # no active contract: recorded, not handed off
    again = log_inbound_call(ctx, call(ctx, phone="+44 20 7946 0958", call_id="pbx-1"), actor=OP)
    assert again.duplicate and again.activity_id == first.activity_id
    assert again.lead.id == first.lead.id and not again.lead_created
    by_email = log_inbound_call(ctx, call(ctx, email="new@caller.example.com"), actor=OP)
    assert by_email.lead_created and by_email.lead.email == "new@caller.example.com"
    assert log_inbound_call(ctx, call(ctx, lead_id=first.lead.id), actor=OP).matched_by == "lead_id"


def test_refusals(ctx: Context) -> None:
    with pytest.raises(NotFound):
        log_inbound_call(ctx, call(ctx, lead_id=999), actor=OP)
    with pytest.raises(ValidationFailed, match="no rep"):
        log_inbound_call(ctx, call(ctx, phone="+14155550111", rep="nobody"), actor=OP)
    rep_service.create_team(ctx, TeamCreate(name="na"), actor=OP)
    rep_service.create_rep(ctx, RepCreate(email="ana@lumen.example", name="Ana"), actor=OP)
    refused = [
        principal_for(ctx, "rep", rep_email="ana@lumen.example"),
        principal_for(ctx, "sales_manager", teams=("na",)),
        Principal(kind="intake_key", name="web form", source="web"),
    ]
    for actor in refused:
        with pytest.raises(Forbidden):
            log_inbound_call(ctx, call(ctx, phone="+14155550111"), actor=actor)
    marketing = principal_for(ctx, "marketing")
    assert log_inbound_call(ctx, call(ctx, phone="+14155550111"), actor=marketing).lead_created


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("300", 300), ("90s", 90), ("5m", 300), ("1h5m", 3900), ("4:30", 270), ("1:02:03", 3723)],
)
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


def test_bad_input_is_refused_by_name() -> None:
    for bad in ("5 parsecs", "", "m5"):
        with pytest.raises(ValueError, match="cannot read the duration"):
            parse_duration(bad)
    for url in ("ftp://x.example/a", "javascript:alert(1)", "https://u:p@x.example/", "/rec/1"):
        with pytest.raises(ValueError, match="recording URL"):
            check_recording_url(url)
    with pytest.raises(ValueError, match="name the caller"):
        CallCreate.model_validate({"notes": "who?"})


def test_a_new_caller_known_by_phone_only_shows_in_the_reps_inbox(ctx: Context) -> None:
    from baton.services.inbox import rep_inbox

    floor(ctx)
    result = log_inbound_call(ctx, call(ctx, phone="+1 415 555 0177"), actor=OP)
    assert result.lead_created and result.became_mql and result.handoff is not None
    ana = principal_for(ctx, "rep", rep_email="ana@lumen.example")
    [item] = rep_inbox(ctx, actor=ana).items
    assert (item.name, item.email) == (f"lead {result.lead.id}", "")


def test_over_http_and_the_command_line(
    sqlite_ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fastapi.testclient import TestClient
    from tests.conftest import bearer, token_for
    from typer.testing import CliRunner

    from baton.api.app import create_app
    from baton.cli import app

    client = TestClient(create_app(sqlite_ctx))
    admin = bearer(token_for(sqlite_ctx, "admin"))
    body = {"phone": "(415) 555-0150", "duration_seconds": 95, "call_id": "pbx-9"}
    first = client.post("/api/v1/calls", json=body, headers=admin)
    assert first.status_code == 201, first.text
    assert first.json()["lead"]["phone"] == "+14155550150" and first.json()["lead_created"]
    again = client.post("/api/v1/calls", json=body, headers=admin)
    assert again.status_code == 200 and again.json()["duplicate"]
    bad = client.post(
        "/api/v1/calls",
        json={"phone": "+14155550150", "recording_url": "file:///etc"},
        headers=admin,
    )
    assert bad.status_code == 422 and "recording_url" in bad.text

    monkeypatch.setenv("BATON_DATABASE_URL", str(sqlite_ctx.engine.url))
    monkeypatch.delenv("BATON_ENV", raising=False)
    runner = CliRunner()
    args = ["call", "log", "--phone", "415 555 0150", "--duration", "5m", "--notes", "demo?"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "found by phone" in result.stdout
    wrong = runner.invoke(
        app, ["call", "log", "--phone", "415 555 0150", "--duration", "5 parsecs"]
    )
    assert wrong.exit_code == 1 and "--duration" in wrong.output
    nobody = runner.invoke(app, ["call", "log", "--notes", "who?"])
    assert nobody.exit_code == 1 and "name the caller" in nobody.output
    no_rep = runner.invoke(app, ["call", "log", "--phone", "415 555 0150", "--rep", "zed"])
    assert no_rep.exit_code == 1 and no_rep.output.count("no rep is called") == 1
    assert "--rep: no rep is called" in no_rep.output
