"""Times in the reader's zone, with its label, in the packet and the emails (on SQLite
and PostgreSQL): a rep in New York reads New York times marked EST (EDT in summer),
their manager in Berlin reads CET, and programs keep the UTC fields."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from tests.notify_servers import SmtpServer, smtp_server

from baton.domain.access import operator
from baton.domain.activities import ActivityCreate
from baton.domain.clock import ManualClock
from baton.domain.leads import LeadCreate
from baton.domain.reps import RepCreate, TeamCreate
from baton.domain.users import UserCreate
from baton.notify.email import SmtpConfig
from baton.notify.render import render_email
from baton.services.activities import ingest_activity
from baton.services.context import Context
from baton.services.contracts import activate_contract, approve_contract, create_contract
from baton.services.handoffs import HandoffPublic, list_handoffs
from baton.services.leads import capture_lead
from baton.services.packet import handoff_packet
from baton.services.reps import create_rep, create_team
from baton.services.users import add_user
from baton.services.worker import tick

EXAMPLE = (Path(__file__).parents[2] / "contracts" / "example.yaml").read_text()
ANA, SAM = "ana@lumen.example", "sam@lumen.example"
OPS = operator("ops")


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def new_york_floor(ctx: Context) -> None:
    """The example contract; team ``na`` (US leads) managed by Sam, who reads in Berlin;
    Ana in it, working 09:00-17:00 in New York."""
    version = create_contract(ctx, EXAMPLE, actor=operator("maria")).version
    approve_contract(ctx, version, role="marketing", actor=operator("maria"))
    approve_contract(ctx, version, role="sales", actor=operator("sam"))
    activate_contract(ctx, version, actor=operator("maria"))
    create_team(ctx, TeamCreate(name="na", manager_email=SAM), actor=OPS)
    create_rep(
        ctx, RepCreate(email=ANA, name="Ana", team="na", timezone="America/New_York"), actor=OPS
    )
    add_user(
        ctx,
        UserCreate(
            email=SAM,
            display_name="Sam",
            role="sales_manager",
            teams=["na"],
            timezone="Europe/Berlin",
        ),
        actor=OPS,
    )


def demo_request(ctx: Context) -> HandoffPublic:
    """A US decision-maker asks for a demo now: handed to Ana at once."""
    lead = LeadCreate.model_validate(
        {
            "email": "dana@northwind.com",
            "first_name": "Dana",
            "company": "Northwind",
            "country": "US",
        }
    )
    lead_id = capture_lead(ctx, lead, actor=operator("form")).lead.id
    event = ActivityCreate(
        email="dana@northwind.com", type="demo_request", occurred_at=ctx.clock.now()
    )
    ingest_activity(ctx, event, actor=operator("web"))
    [handoff] = list_handoffs(ctx, lead_id=lead_id, actor=OPS)
    assert handoff.rep_email == ANA
    return handoff


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with smtp_server() as server:
        yield server


def test_the_reps_email_shows_new_york_times_with_their_label(
    ctx: Context, clock: ManualClock, smtp: SmtpServer
) -> None:
    clock.set(utc(2026, 3, 2, 15, 0))  # Monday 10:00 in New York
    new_york_floor(ctx)
    handoff = demo_request(ctx)
    assert handoff.accept_due_at == utc(2026, 3, 2, 15, 30)  # stored in UTC

    config = SmtpConfig(host=smtp.host, port=smtp.port, sender="baton@lumen.example", timeout=5)
    with httpx.Client(timeout=30) as client:
        tick(ctx, smtp=config, client=client)
        [message] = smtp.messages
        body = message.get_body(("plain",))
        assert body is not None
        text = str(body.get_content())
        for line in (
            f"Handoff {handoff.id}: assigned; MQL at Mon 2 Mar 10:00 EST",
            "(times in America/New_York)",
            "Accept by:      Mon 2 Mar 10:30 EST",
            "First touch by: Mon 2 Mar 12:00 EST",
            "  Mon 2 Mar 10:00 EST  demo request",
        ):
            assert line in text, line
        assert "UTC" not in text

        clock.set(utc(2026, 3, 2, 15, 20))  # the SLA's reminder
        tick(ctx, smtp=config, client=client)
    reminder = smtp.messages[-1]
    assert str(reminder["Subject"]).strip().endswith("before Mon 2 Mar 10:30 EST")


def test_summer_time_is_labelled_edt(ctx: Context, clock: ManualClock) -> None:
    clock.set(utc(2026, 7, 6, 14, 0))  # Monday 10:00 EDT
    new_york_floor(ctx)
    handoff = demo_request(ctx)
    packet = handoff_packet(ctx, handoff.id, actor=OPS)
    assert packet.time_zone == "America/New_York"
    assert packet.local(packet.handoff.accept_due_at) == "Mon 6 Jul 10:30 EDT"
    text = render_email("handoff.assigned", packet).text
    assert "Accept by:      Mon 6 Jul 10:30 EDT" in text


def test_each_reader_reads_their_own_zone(ctx: Context, clock: ManualClock) -> None:
    clock.set(utc(2026, 3, 2, 15, 0))
    new_york_floor(ctx)
    handoff = demo_request(ctx)
    # The manager's email (the SLA ladder's last step) is read in Berlin.
    for_sam = handoff_packet(ctx, handoff.id, actor=OPS, reader_email=SAM)
    assert for_sam.time_zone == "Europe/Berlin"
    assert (
        "Accept by:      Mon 2 Mar 16:30 CET"
        in render_email("sla.manager", for_sam, data={"why": "late"}).text
    )
    # The rep's email, and the operator (no zone of their own), read the rep's.
    assert handoff_packet(ctx, handoff.id, actor=OPS, reader_email=ANA).time_zone == (
        "America/New_York"
    )
    assert handoff_packet(ctx, handoff.id, actor=OPS).time_zone == "America/New_York"
