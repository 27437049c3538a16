"""Forgiving input and readable times as a client and an operator meet them: over HTTP
an event without a time is dated on receipt, a type is read however it is written and a
misspelled one gets a suggestion in the problem+json, a spend file can be day first, and
the packet speaks the reader's zone; on the command line ``--day-first`` and
``--timezone`` decide how a file's dates are read."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from tests.conftest import bearer, token_for
from typer.testing import CliRunner

from baton.api.app import create_app
from baton.cli import app
from baton.domain.access import operator
from baton.domain.clock import ManualClock
from baton.domain.reps import RepCreate, TeamCreate
from baton.domain.users import IntakeKeyCreate
from baton.services.context import Context
from baton.services.contracts import activate_contract, approve_contract, create_contract
from baton.services.reps import create_rep, create_team
from baton.services.users import add_intake_key
from baton.store.engine import make_engine
from baton.store.tables import activities, leads

PROBLEM = "application/problem+json"
ACTIVITIES = "/api/v1/activities"
EXAMPLE = (Path(__file__).parents[2] / "contracts" / "example.yaml").read_text()
ANA = "ana@lumen.example"
OPS = operator("ops")
MONDAY = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)  # 10:00 in New York


@pytest.fixture
def api(ctx: Context) -> Iterator[TestClient]:
    """A client signed in as an admin (API token; the admin reads in UTC)."""
    assert isinstance(ctx.clock, ManualClock)
    ctx.clock.set(MONDAY)
    with TestClient(
        create_app(ctx),
        raise_server_exceptions=False,
        headers=bearer(token_for(ctx, "admin", email="ops@lumen.example")),
    ) as client:
        yield client


def timeline_activities(api: TestClient, lead_id: int) -> list[tuple[str, str]]:
    items = api.get(f"/api/v1/leads/{lead_id}/timeline").json()
    return [(i["data"]["type"], i["at"]) for i in items if i["kind"] == "activity"]


def test_an_event_without_a_time_is_dated_on_receipt_and_its_type_read_as_meant(
    api: TestClient, ctx: Context
) -> None:
    made = api.post(ACTIVITIES, json={"email": "dana@northwind.com", "type": "Page View"})
    assert made.status_code == 201, made.text
    lead_id = made.json()["lead_id"]
    _, secret = add_intake_key(ctx, IntakeKeyCreate(name="website", source="web"), actor=OPS)
    with TestClient(create_app(ctx), raise_server_exceptions=False) as public:
        sent = public.post(
            ACTIVITIES,
            json={"email": "dana@northwind.com", "type": "form-submit"},
            headers={"X-Baton-Intake-Key": secret},
        )
        assert sent.status_code == 202, sent.text
    assert timeline_activities(api, lead_id) == [
        ("page_view", "2026-03-02T15:00:00Z"),
        ("form_submit", "2026-03-02T15:00:00Z"),
    ]


def test_a_misspelled_type_is_answered_with_the_closest_one(api: TestClient) -> None:
    answer = api.post(
        ACTIVITIES,
        json={"email": "dana@northwind.com", "type": "from_submit", "occurred_at": None},
    )
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"].startswith(PROBLEM)
    [error] = answer.json()["errors"]
    assert error["loc"] == "type"
    assert "did you mean 'form_submit'?" in error["message"]
    assert "page_view" in error["message"]  # and the allowed values


def test_a_spend_file_can_be_written_day_first(api: TestClient) -> None:
    body = "source,month,start,end,amount\nads,,02/03/2026,04/03/2026,300\nseo,Feb 2026,,,90\n"
    headers = {"Content-Type": "text/csv"}
    stored = api.post("/api/v1/spend/import?day_first=true", content=body, headers=headers)
    assert stored.status_code == 200, stored.text
    assert stored.json()["rejected_rows"] == 0
    days = {s["source"]: (s["starts_on"], s["ends_on"]) for s in api.get("/api/v1/spend").json()}
    assert days == {"ads": ("2026-03-02", "2026-03-04"), "seo": ("2026-02-01", "2026-02-28")}


def test_the_packet_speaks_the_readers_zone_and_keeps_utc_for_programs(
    api: TestClient, ctx: Context
) -> None:
    version = create_contract(ctx, EXAMPLE, actor=operator("maria")).version
    approve_contract(ctx, version, role="marketing", actor=operator("maria"))
    approve_contract(ctx, version, role="sales", actor=operator("sam"))
    activate_contract(ctx, version, actor=operator("maria"))
    create_team(ctx, TeamCreate(name="na"), actor=OPS)
    create_rep(
        ctx, RepCreate(email=ANA, name="Ana", team="na", timezone="America/New_York"), actor=OPS
    )
    as_ana = bearer(token_for(ctx, "rep", rep_email=ANA))  # takes her rep's zone
    lead = {"email": "dana@northwind.com", "first_name": "Dana", "country": "US"}
    assert api.post("/api/v1/leads", json=lead).status_code == 201
    asked = api.post(ACTIVITIES, json={"email": "dana@northwind.com", "type": "Demo Request"})
    assert asked.status_code == 201, asked.text
    [handoff] = api.get("/api/v1/handoffs").json()

    packet = api.get(f"/api/v1/handoffs/{handoff['id']}/packet", headers=as_ana).json()
    assert packet["time_zone"] == "America/New_York"
    assert packet["local_times"]["mql_at"] == "Mon 2 Mar 10:00 EST"
    assert packet["local_times"]["accept_due_at"] == "Mon 2 Mar 10:30 EST"
    assert packet["local_times"]["touch_due_at"] == "Mon 2 Mar 12:00 EST"
    assert packet["handoff"]["accept_due_at"] == "2026-03-02T15:30:00Z"
    text = api.get(
        f"/api/v1/handoffs/{handoff['id']}/packet", params={"format": "text"}, headers=as_ana
    ).text
    assert "Accept by:      Mon 2 Mar 10:30 EST" in text

    # Sales ops, who never chose a zone, read UTC: the reader's zone, not the rep's.
    ops = api.get(f"/api/v1/handoffs/{handoff['id']}/packet").json()
    assert (ops["time_zone"], ops["local_times"]["accept_due_at"]) == (
        "UTC",
        "Mon 2 Mar 15:30 UTC",
    )


# --- the command line --------------------------------------------------------------------


@pytest.fixture
def database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("BATON_DATABASE_URL", url)
    monkeypatch.delenv("BATON_ENV", raising=False)
    monkeypatch.chdir(tmp_path)
    return url


def stored(url: str, query: Any) -> list[Any]:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return list(connection.execute(query).all())
    finally:
        engine.dispose()


def test_day_first_and_timezone_decide_how_a_files_dates_are_read(
    database: str, tmp_path: Path
) -> None:
    runner = CliRunner()
    events = tmp_path / "events.csv"
    events.write_text(
        "Email,Event,Date,Event ID\n"
        "dana@northwind.com,Page View,02/03/2024 10:00,a-1\n"
        "dana@northwind.com,page view,2 Mar 2024 10:00,a-2\n"
    )
    result = runner.invoke(
        app,
        ["import", "activities", str(events), "--day-first", "--timezone", "Europe/Paris"],
    )
    assert result.exit_code == 0, result.output
    times = stored(
        database, select(activities.c.occurred_at).where(activities.c.type == "page_view")
    )
    assert {t.replace(tzinfo=UTC) for (t,) in times} == {datetime(2024, 3, 2, 9, 0, tzinfo=UTC)}

    people = tmp_path / "people.csv"
    people.write_text("email,Create Date\nana@acme.example.com,02/03/2024\n")
    result = runner.invoke(app, ["import", "leads", str(people)])  # month first, UTC
    assert result.exit_code == 0, result.output
    [(created,)] = stored(
        database, select(leads.c.created_at).where(leads.c.email == "ana@acme.example.com")
    )
    assert created.replace(tzinfo=UTC) == datetime(2024, 2, 3, tzinfo=UTC)

    refused = runner.invoke(app, ["import", "leads", str(people), "--timezone", "Mars/Olympus"])
    assert refused.exit_code != 0
    assert "unknown time zone 'Mars/Olympus'" in refused.output
