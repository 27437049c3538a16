"""Handoffs end to end, on SQLite and PostgreSQL: a hand-raise makes an MQL that is
routed in the same transaction, sales gives verdicts, the worker runs the SLA ladder,
the unassigned queue and the outbox against a real SMTP server and HTTP receiver.

Contract: ``contracts/example.yaml`` (routing to teams enterprise, emea and na; SLA 30
business minutes to accept with the ladder remind 20, reassign 30, manager 30, manager
120 until touched; max 2 reassignments). Time: the ``clock`` fixture, Monday
2026-03-02 09:00 UTC; reps work 09:00-17:00 UTC on weekdays unless told otherwise.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, insert, select
from tests.conftest import principal_for
from tests.notify_servers import HttpReceiver, SmtpServer, http_receiver, smtp_server

from baton.domain.access import operator
from baton.domain.activities import ActivityCreate
from baton.domain.clock import ManualClock
from baton.domain.errors import Conflict, Forbidden, NotFound, ValidationFailed
from baton.domain.leads import LeadCreate
from baton.domain.lifecycle import Stage
from baton.domain.reps import AbsenceCreate, RepCreate, RepUpdate, TeamCreate
from baton.notify.email import SmtpConfig
from baton.notify.webhooks import MAX_ATTEMPTS, next_attempt_delay, verify
from baton.services.activities import ingest_activity
from baton.services.context import Context
from baton.services.contracts import activate_contract, approve_contract, create_contract
from baton.services.duplicate_checks import flag_pending_duplicates
from baton.services.handoffs import (
    HandoffPublic,
    accept_handoff,
    get_handoff,
    handoff_events_of,
    handoff_queue,
    list_handoffs,
    log_touch,
    lost_handoff,
    qualify_handoff,
    reassign_handoff,
    reject_handoff,
    won_handoff,
)
from baton.services.leads import capture_lead, get_lead, stage_history
from baton.services.packet import handoff_packet
from baton.services.queries import inserted_id
from baton.services.reps import (
    AccountPublic,
    RepPublic,
    add_absence,
    create_rep,
    create_team,
    list_accounts,
    update_rep,
)
from baton.services.stages import change_stage_in
from baton.services.worker import TickReport, tick
from baton.store.tables import (
    deliveries,
    handoff_events,
    handoffs,
    outbox,
    rotations,
    webhook_endpoints,
)

EXAMPLE = (Path(__file__).parents[2] / "contracts" / "example.yaml").read_text()
MANAGER = "sam@lumen.example"
SECRET = "whsec_handoffs"
BUDGET = {"budget": "40k", "authority": "VP Ops", "need": "dashboards", "timing": "Q2"}
OPS = operator("ops")
"""Reads the tests' checks make (the local operator reaches everything); who may read
and act on which handoff is tested on its own, with real users."""


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


# --- setup helpers -------------------------------------------------------------------------


def activate_example(ctx: Context) -> int:
    version = create_contract(ctx, EXAMPLE, actor=operator("maria")).version
    approve_contract(ctx, version, role="marketing", actor=operator("maria"))
    approve_contract(ctx, version, role="sales", actor=operator("sam"))
    activate_contract(ctx, version, actor=operator("maria"))
    return version


def add_team(ctx: Context, name: str = "na", manager: str | None = MANAGER) -> None:
    create_team(ctx, TeamCreate(name=name, manager_email=manager), actor=operator("sam"))


def add_rep(ctx: Context, email: str, team: str = "na", **fields: Any) -> RepPublic:
    name = email.split("@")[0].title()
    return create_rep(
        ctx, RepCreate(email=email, name=name, team=team, **fields), actor=operator("sam")
    )


def sales_floor(ctx: Context, *emails: str, team: str = "na", **fields: Any) -> list[RepPublic]:
    """The example contract, team ``team`` managed by Sam, and one rep per email."""
    activate_example(ctx)
    add_team(ctx, team)
    return [add_rep(ctx, email, team, **fields) for email in emails]


def hand_raise(
    ctx: Context,
    email: str = "dana@northwind.com",
    *,
    kind: str = "demo_request",
    at: datetime | None = None,
    **fields: Any,
) -> int:
    """Capture the lead (a US prospect unless told otherwise), then a hand-raise."""
    lead = {
        "email": email,
        "first_name": "Dana",
        "last_name": "Reyes",
        "company": "Northwind Traders",
        "country": "US",
        **fields,
    }
    data = LeadCreate.model_validate(lead, context={"default_region": "US"})
    lead_id = capture_lead(ctx, data, actor=operator("form")).lead.id
    event = ActivityCreate.model_validate(
        {
            "email": email,
            "type": kind,
            "occurred_at": at or ctx.clock.now(),
            "properties": {"url": "/demo"},
        }
    )
    assert ingest_activity(ctx, event, actor=operator("web")).lead_id == lead_id
    return lead_id


def only_handoff(ctx: Context, lead_id: int) -> HandoffPublic:
    [handoff] = list_handoffs(ctx, lead_id=lead_id, actor=OPS)
    return handoff


def other(reps: list[RepPublic], email: str | None) -> str:
    [rest] = [r.email for r in reps if r.email != email]
    return rest


def add_endpoint(ctx: Context, url: str, secret: str = SECRET) -> int:
    with ctx.write() as connection:
        return int(
            inserted_id(
                connection.execute(
                    insert(webhook_endpoints).values(
                        url=url,
                        secret=secret,
                        events=["*"],
                        active=True,
                        created_by="test",
                        created_at=ctx.clock.now(),
                    )
                )
            )
        )


def count(ctx: Context, table: Any) -> int:
    with ctx.read() as connection:
        return int(connection.execute(select(func.count()).select_from(table)).scalar_one())


def pool_rotations(ctx: Context) -> dict[str, Any]:
    with ctx.read() as connection:
        query = select(rotations.c.pool, rotations.c.passes).where(rotations.c.pool != "*")
        return {str(pool): passes for pool, passes in connection.execute(query)}


def event_kinds(ctx: Context, handoff_id: int) -> list[str]:
    return [e.kind for e in handoff_events_of(ctx, handoff_id, actor=OPS)]


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with smtp_server() as server:
        yield server


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30) as client:
        yield client


@pytest.fixture
def worker(ctx: Context, smtp: SmtpServer, http: httpx.Client) -> Any:
    config = SmtpConfig(host=smtp.host, port=smtp.port, sender="baton@lumen.example", timeout=5)

    def run() -> TickReport:
        return tick(ctx, smtp=config, client=http)

    return run


def mails(smtp: SmtpServer) -> list[tuple[str, str]]:
    """(recipient, subject) of every email received so far (a long subject is folded
    onto the header's next line: unfolded as a mail client shows it)."""
    return [(str(m["To"]), str(m["Subject"]).strip()) for m in smtp.messages]


def text_of(message: EmailMessage) -> str:
    body = message.get_body(("plain",))
    assert body is not None
    return str(body.get_content())


# --- the handoff opens with the MQL --------------------------------------------------------


def test_a_hand_raise_opens_one_handoff_routed_with_its_reasons_and_business_deadlines(
    ctx: Context, clock: ManualClock
) -> None:
    # Monday 15:50 UTC: 16:50 in Berlin, 00:50 on Tuesday in Tokyo.
    clock.set(utc(2026, 3, 2, 15, 50))
    activate_example(ctx)
    add_team(ctx, "na")
    ana = add_rep(ctx, "ana@lumen.example", timezone="Europe/Berlin")
    ben = add_rep(ctx, "ben@lumen.example", status="away")
    cy = add_rep(ctx, "cy@lumen.example")
    add_absence(
        ctx,
        cy.id,
        AbsenceCreate(starts_at=utc(2026, 3, 2, 0, 0), ends_at=utc(2026, 3, 7, 0, 0)),
        actor=operator("cy@lumen.example"),
    )
    dee = add_rep(ctx, "dee@lumen.example", timezone="Asia/Tokyo")
    eve = add_rep(ctx, "eve@lumen.example", capacity=0)

    lead_id = hand_raise(ctx)

    handoff = only_handoff(ctx, lead_id)
    assert get_lead(ctx, lead_id, actor=OPS).stage == "mql"
    assert (handoff.status, handoff.rep_id, handoff.rep_email) == ("assigned", ana.id, ana.email)
    assert handoff.mql_at == handoff.assigned_at == clock.now()
    assert handoff.chain_id == handoff.id and handoff.reassignments == 0
    # Ana's day ends at 17:00 Berlin (16:00 UTC): 10 minutes on Monday, the rest from
    # 09:00 Berlin (08:00 UTC) on Tuesday.
    assert handoff.accept_due_at == utc(2026, 3, 3, 8, 20)  # 30 business minutes
    assert handoff.touch_due_at == utc(2026, 3, 3, 9, 50)  # 120 business minutes
    assert handoff.next_step_at == utc(2026, 3, 3, 8, 10)  # the reminder at 20
    assert handoff.routing == {
        "rep_id": ana.id,
        "reason": "rule Everyone else: weighted in team na",
        "rule": "Everyone else",
        "strategy": "weighted",
        "pool": "team:na",
        "account_owner": False,
        "skipped": [
            {"rep_id": ben.id, "rep": "ben@lumen.example", "reason": "status away"},
            {"rep_id": cy.id, "rep": "cy@lumen.example", "reason": "out of office"},
            {
                "rep_id": dee.id,
                "rep": "dee@lumen.example",
                "reason": "outside working hours (Asia/Tokyo)",
            },
            {
                "rep_id": eve.id,
                "rep": "eve@lumen.example",
                "reason": "at capacity (0/0 open handoffs)",
            },
        ],
    }
    [assigned] = handoff_events_of(ctx, handoff.id, actor=OPS)
    assert (assigned.kind, assigned.actor, assigned.at) == ("assigned", "web", clock.now())
    assert assigned.detail == {"rep": ana.email, "why": "rule Everyone else: weighted in team na"}


def test_the_rule_for_the_lead_picks_the_team(ctx: Context) -> None:
    activate_example(ctx)
    for team in ("enterprise", "emea", "na"):
        add_team(ctx, team)
        add_rep(ctx, f"{team}@lumen.example", team)
    german = hand_raise(ctx, "jonas@fabrik.de", country="DE")
    big = hand_raise(ctx, "kim@megacorp.com", country="DE", attributes={"employees": 20000})
    small = hand_raise(ctx, "lou@tiny.com", country="US")
    assert only_handoff(ctx, german).rep_email == "emea@lumen.example"
    assert only_handoff(ctx, big).rep_email == "enterprise@lumen.example"
    assert only_handoff(ctx, small).rep_email == "na@lumen.example"
    assert only_handoff(ctx, big).routing["rule"] == "Enterprise"


def test_another_hand_raise_while_a_handoff_is_open_opens_no_other(
    ctx: Context, clock: ManualClock
) -> None:
    reps = sales_floor(ctx, "ana@lumen.example", "ben@lumen.example")
    lead_id = hand_raise(ctx)
    first = only_handoff(ctx, lead_id)
    clock.advance(minutes=5)
    hand_raise(ctx, kind="contact_sales")
    assert only_handoff(ctx, lead_id) == first
    accept_handoff(ctx, first.id, actor=operator(str(first.rep_email)))
    clock.advance(minutes=5)
    hand_raise(ctx, kind="inbound_call")
    assert [h.id for h in list_handoffs(ctx, lead_id=lead_id, actor=OPS)] == [first.id]
    assert get_lead(ctx, lead_id, actor=OPS).stage == "sal"
    assert other(reps, first.rep_email) not in {h.rep_email for h in list_handoffs(ctx, actor=OPS)}


# --- verdicts ----------------------------------------------------------------------------


def test_accept_makes_the_lead_a_sal_and_leaves_only_the_touch_rung(
    ctx: Context, clock: ManualClock
) -> None:
    sales_floor(ctx, "ana@lumen.example")
    lead_id = hand_raise(ctx)
    handoff = only_handoff(ctx, lead_id)
    clock.advance(minutes=12)
    accepted = accept_handoff(ctx, handoff.id, actor=operator("ana@lumen.example"))
    assert (accepted.status, accepted.accepted_at) == ("accepted", clock.now())
    assert get_lead(ctx, lead_id, actor=OPS).stage == "sal"
    # Only "notify the manager at 120 until touched" is left: 11:00 UTC.
    assert accepted.next_step_at == utc(2026, 3, 2, 11, 0)
    with pytest.raises(Conflict):
        accept_handoff(ctx, handoff.id, actor=operator("ana@lumen.example"))


@pytest.mark.parametrize(
    ("code", "stage", "outcome", "credit"),
    [
        ("not_ready", "nurture", "recycle", True),
        ("out_of_area", "disqualified", "disqualify", False),
    ],
)
def test_a_rejection_reason_decides_the_leads_stage_and_marketings_credit(
    ctx: Context, clock: ManualClock, code: str, stage: str, outcome: str, credit: bool
) -> None:
    sales_floor(ctx, "ana@lumen.example")
    lead_id = hand_raise(ctx)
    handoff = only_handoff(ctx, lead_id)
    clock.advance(minutes=3)
    rejected = reject_handoff(
        ctx, handoff.id, code=code, note="spoke to them", actor=operator("ana@lumen.example")
    )
    assert (rejected.status, rejected.outcome, rejected.rejection_code) == (
        "rejected",
        outcome,
        code,
    )
    assert rejected.marketing_credit is credit
    assert rejected.closed_at == clock.now() and rejected.next_step_at is None
    assert get_lead(ctx, lead_id, actor=OPS).stage == stage
    last = stage_history(ctx, lead_id, actor=OPS)[-1]
    assert (last.from_stage, last.to_stage, last.actor) == ("mql", stage, "ana@lumen.example")
    assert list_handoffs(ctx, status=["assigned", "accepted", "queued"], actor=OPS) == []


def test_an_unknown_rejection_code_is_refused_and_changes_nothing(ctx: Context) -> None:
    sales_floor(ctx, "ana@lumen.example")
    lead_id = hand_raise(ctx)
    handoff = only_handoff(ctx, lead_id)
    with pytest.raises(ValidationFailed) as caught:
        reject_handoff(ctx, handoff.id, code="too_small", actor=operator("ana@lumen.example"))
    [problem] = caught.value.problems
    assert problem.loc == "code"
    assert problem.message == "use one of: out_of_area, no_budget, not_ready, wrong_contact, junk"
    assert get_handoff(ctx, handoff.id, actor=OPS) == handoff
    assert get_lead(ctx, lead_id, actor=OPS).stage == "mql"


# --- who may read and act on a handoff ----------------------------------------------------


def stored_actor(ctx: Context, handoff_id: int, kind: str) -> tuple[str, int | None]:
    """The text actor and the user id of a handoff's event, as stored."""
    with ctx.read() as connection:
        row = connection.execute(
            select(handoff_events.c.actor, handoff_events.c.actor_user_id).where(
                handoff_events.c.handoff_id == handoff_id, handoff_events.c.kind == kind
            )
        ).one()
    return str(row[0]), row[1]


def test_only_the_assigned_rep_their_manager_or_an_admin_may_give_a_verdict(
    ctx: Context, clock: ManualClock
) -> None:
    reps = sales_floor(ctx, "ana@lumen.example", "ben@lumen.example")
    add_team(ctx, "emea", manager="lee@lumen.example")
    lead_id = hand_raise(ctx)
    handoff = only_handoff(ctx, lead_id)
    stranger = principal_for(ctx, "rep", rep_email=other(reps, handoff.rep_email))
    elsewhere = principal_for(ctx, "sales_manager", email="lee@lumen.example", teams=("emea",))
    # Another rep, or another team's manager: the handoff is missing to them, exactly
    # as one that does not exist (OWASP API1), for reads and verdicts alike.
    for actor in (stranger, elsewhere):
        for handoff_id in (handoff.id, 999_999):
            missing = f"handoff {handoff_id} does not exist"
            with pytest.raises(NotFound, match=missing):
                accept_handoff(ctx, handoff_id, actor=actor)
            with pytest.raises(NotFound, match=missing):
                reject_handoff(ctx, handoff_id, code="junk", actor=actor)
            with pytest.raises(NotFound, match=missing):
                log_touch(ctx, handoff_id, kind="call", actor=actor)
            with pytest.raises(NotFound, match=missing):
                get_handoff(ctx, handoff_id, actor=actor)
            with pytest.raises(NotFound, match=missing):
                handoff_events_of(ctx, handoff_id, actor=actor)
            with pytest.raises(NotFound, match=missing):
                handoff_packet(ctx, handoff_id, actor=actor)
        assert list_handoffs(ctx, actor=actor) == []
        assert list_handoffs(ctx, lead_id=lead_id, actor=actor) == []
    # Marketing reads the handoff but never gives sales' verdict: 403 with the reason,
    # for an id that exists or not.
    marketing = principal_for(ctx, "marketing", email="maria@lumen.example")
    assert get_handoff(ctx, handoff.id, actor=marketing) == handoff
    for handoff_id in (handoff.id, 999_999):
        with pytest.raises(Forbidden, match="marketing role may not accept"):
            accept_handoff(ctx, handoff_id, actor=marketing)
        with pytest.raises(Forbidden):
            reject_handoff(ctx, handoff_id, code="junk", actor=marketing)
        with pytest.raises(Forbidden):
            log_touch(ctx, handoff_id, kind="call", actor=marketing)
    assert get_handoff(ctx, handoff.id, actor=OPS) == handoff
    assert get_lead(ctx, lead_id, actor=OPS).stage == "mql"

    # The team's manager may act for the rep; the event keeps the name and the user.
    sam = principal_for(ctx, "sales_manager", email=MANAGER, teams=("na",))
    accepted = accept_handoff(ctx, handoff.id, actor=sam)
    assert accepted.status == "accepted"
    assert handoff_events_of(ctx, handoff.id, actor=sam)[-1].actor == sam.name
    assert stored_actor(ctx, handoff.id, "accepted") == (sam.name, sam.user_id)
    # An admin may act on any handoff.
    admin = principal_for(ctx, "admin")
    touched = log_touch(ctx, handoff.id, kind="call", actor=admin)
    assert touched.first_touch_at == clock.now()
    assert stored_actor(ctx, handoff.id, "touch") == (admin.name, admin.user_id)


def test_a_rep_reads_and_acts_on_their_own_handoffs_only(ctx: Context) -> None:
    ana, ben = sales_floor(ctx, "ana@lumen.example", "ben@lumen.example")
    leads_ = [hand_raise(ctx, f"p{i}@buyer{i}.com") for i in range(4)]
    handoffs_ = [only_handoff(ctx, lead) for lead in leads_]
    mine = {h.id for h in handoffs_ if h.rep_id == ana.id}
    theirs = {h.id for h in handoffs_ if h.rep_id == ben.id}
    assert mine and theirs, "the rotation gives each rep some"
    as_ana = principal_for(ctx, "rep", rep_email=ana.email)
    assert {h.id for h in list_handoffs(ctx, actor=as_ana)} == mine
    # Filtering by another rep's email shows nothing, not their handoffs.
    assert list_handoffs(ctx, rep_email=ben.email, actor=as_ana) == []
    assert {h.id for h in list_handoffs(ctx, rep_email=ben.email, actor=OPS)} == theirs
    own = min(mine)
    assert get_handoff(ctx, own, actor=as_ana).rep_email == ana.email
    assert [e.kind for e in handoff_events_of(ctx, own, actor=as_ana)] == ["assigned"]
    packet = handoff_packet(ctx, own, actor=as_ana)
    assert packet.handoff.id == own and packet.lead.id == packet.handoff.lead_id
    accepted = accept_handoff(ctx, own, actor=as_ana)
    assert accepted.status == "accepted"
    assert stored_actor(ctx, own, "accepted") == (as_ana.name, as_ana.user_id)
    for handoff_id in theirs:
        with pytest.raises(NotFound):
            accept_handoff(ctx, handoff_id, actor=as_ana)
        assert get_handoff(ctx, handoff_id, actor=OPS).status == "assigned"
    # A rep has no say in the queue nor in reassignments (403, whatever the id).
    with pytest.raises(Forbidden):
        handoff_queue(ctx, actor=as_ana)
    with pytest.raises(Forbidden, match="rep role may not reassign"):
        reassign_handoff(ctx, own, actor=as_ana)


def test_a_token_acts_only_within_its_scopes(ctx: Context) -> None:
    [ana] = sales_floor(ctx, "ana@lumen.example")
    handoff = only_handoff(ctx, hand_raise(ctx))
    reader = principal_for(ctx, "rep", rep_email=ana.email, scopes=("handoffs:read",))
    assert get_handoff(ctx, handoff.id, actor=reader) == handoff
    with pytest.raises(Forbidden, match="handoffs:verdict"):
        accept_handoff(ctx, handoff.id, actor=reader)
    assert get_handoff(ctx, handoff.id, actor=OPS).status == "assigned"


def test_the_queue_is_for_managers_and_admins(ctx: Context) -> None:
    sales_floor(ctx, "ana@lumen.example", status="away")
    queued = only_handoff(ctx, hand_raise(ctx))
    assert queued.status == "queued"
    sam = principal_for(ctx, "sales_manager", email=MANAGER, teams=("na",))
    admin = principal_for(ctx, "admin")
    assert handoff_queue(ctx, actor=sam) == handoff_queue(ctx, actor=admin) == [queued]
    # A queued handoff is the team manager's to watch, not yet any rep's.
    assert get_handoff(ctx, queued.id, actor=sam) == queued
    with pytest.raises(NotFound):
        get_handoff(ctx, queued.id, actor=principal_for(ctx, "rep", rep_email="ana@lumen.example"))
    with pytest.raises(Forbidden, match="marketing role may not read the unassigned queue"):
        handoff_queue(ctx, actor=principal_for(ctx, "marketing"))


def test_a_manager_reassigns_within_their_team_and_an_admin_anywhere(ctx: Context) -> None:
    ana, ben = sales_floor(ctx, "ana@lumen.example", "ben@lumen.example")
    add_team(ctx, "emea", manager="lee@lumen.example")
    eva = add_rep(ctx, "eva@lumen.example", "emea")
    handoff = only_handoff(ctx, hand_raise(ctx))
    owner, colleague = (ana, ben) if handoff.rep_id == ana.id else (ben, ana)
    sam = principal_for(ctx, "sales_manager", email=MANAGER, teams=("na",))
    lee = principal_for(ctx, "sales_manager", email="lee@lumen.example", teams=("emea",))
    # Another team's manager cannot see the handoff at all.
    with pytest.raises(NotFound, match=f"handoff {handoff.id} does not exist"):
        reassign_handoff(ctx, handoff.id, to_email=eva.email, actor=lee)
    # Sam cannot hand it to a rep outside his team: that rep is missing to him, as one
    # that does not exist.
    for target in (eva.email, "nobody@lumen.example"):
        with pytest.raises(NotFound, match=f"rep {target} does not exist"):
            reassign_handoff(ctx, handoff.id, to_email=target.upper(), actor=sam)
    assert get_handoff(ctx, handoff.id, actor=OPS).status == "assigned"
    moved = reassign_handoff(ctx, handoff.id, to_email=colleague.email, actor=sam)
    assert (moved.rep_email, moved.chain_id, moved.reassignments) == (
        colleague.email,
        handoff.id,
        1,
    )
    assert stored_actor(ctx, handoff.id, "reassigned") == (sam.name, sam.user_id)
    assert handoff_events_of(ctx, handoff.id, actor=sam)[-1].detail["why"] == (
        f"reassigned by {sam.name}"
    )
    # An admin reaches every rep.
    admin = principal_for(ctx, "admin")
    again = reassign_handoff(ctx, moved.id, to_email=eva.email, actor=admin)
    assert (again.rep_email, again.reassignments) == (eva.email, 2)
    # The new handoff is out of Sam's team now: he no longer sees it.
    with pytest.raises(NotFound):
        get_handoff(ctx, again.id, actor=sam)
    assert owner.email not in {
        h.rep_email for h in list_handoffs(ctx, status=["assigned"], actor=OPS)
    }


def test_the_first_touch_is_recorded_once(ctx: Context, clock: ManualClock) -> None:
    sales_floor(ctx, "ana@lumen.example")
    handoff = only_handoff(ctx, hand_raise(ctx))
    clock.advance(minutes=7)
    first_touch = clock.now()
    touched = log_touch(
        ctx, handoff.id, kind="call", note="left a voicemail", actor=operator("ana@lumen.example")
    )
    assert touched.first_touch_at == first_touch
    assert touched.status == "assigned", "a touch is not an acceptance"
    # The accept rungs still run: the reminder at 20 minutes stays due.
    assert touched.next_step_at == utc(2026, 3, 2, 9, 20)
    clock.advance(minutes=30)
    again = log_touch(ctx, handoff.id, kind="email", actor=operator("ana@lumen.example"))
    assert again.first_touch_at == first_touch
    touches = [e.detail for e in handoff_events_of(ctx, handoff.id, actor=OPS) if e.kind == "touch"]
    assert [(t["touch"], t["first"]) for t in touches] == [("call", True), ("email", False)]
    # Accepted and touched: no rung of the ladder is left.
    assert accept_handoff(ctx, handoff.id, actor=operator("ana@lumen.example")).next_step_at is None


def test_qualify_needs_budget_authority_need_and_timing(ctx: Context) -> None:
    sales_floor(ctx, "ana@lumen.example")
    lead_id = hand_raise(ctx)
    handoff = only_handoff(ctx, lead_id)
    with pytest.raises(Conflict):
        qualify_handoff(
            ctx, handoff.id, fields=BUDGET, actor=operator("ana@lumen.example")
        )  # not accepted
    accept_handoff(ctx, handoff.id, actor=operator("ana@lumen.example"))
    with pytest.raises(ValidationFailed) as caught:
        qualify_handoff(
            ctx,
            handoff.id,
            fields={"budget": "40k", "need": ""},
            actor=operator("ana@lumen.example"),
        )
    assert [p.loc for p in caught.value.problems] == [
        "fields.authority",
        "fields.need",
        "fields.timing",
    ]
    assert get_lead(ctx, lead_id, actor=OPS).stage == "sal"
    qualified = qualify_handoff(ctx, handoff.id, fields=BUDGET, actor=operator("ana@lumen.example"))
    assert (qualified.status, qualified.qualification) == ("qualified", BUDGET)
    assert get_lead(ctx, lead_id, actor=OPS).stage == "sql"


def test_a_won_deal_makes_a_customer_and_an_account_that_later_leads_route_to(
    ctx: Context, clock: ManualClock
) -> None:
    reps = sales_floor(ctx, "ana@lumen.example", "ben@lumen.example")
    lead_id = hand_raise(ctx)
    handoff = only_handoff(ctx, lead_id)
    owner = str(handoff.rep_email)
    with pytest.raises(Conflict):
        won_handoff(ctx, handoff.id, amount=1, actor=operator(owner))  # not qualified yet
    accept_handoff(ctx, handoff.id, actor=operator(owner))
    qualify_handoff(ctx, handoff.id, fields=BUDGET, actor=operator(owner))
    clock.advance(days=20)
    won = won_handoff(ctx, handoff.id, amount=48_000, note="signed", actor=operator(owner))
    assert (won.status, won.outcome, won.deal_value, won.closed_at) == (
        "won",
        "won",
        48_000,
        clock.now(),
    )
    assert [t.to_stage for t in stage_history(ctx, lead_id, actor=OPS)] == [
        "mql",
        "sal",
        "sql",
        "opportunity",
        "customer",
    ]
    [account] = list_accounts(ctx, actor=OPS)
    assert (account.domain, account.name, account.owner_email) == (
        "northwind.com",
        "Northwind Traders",
        owner,
    )
    assert isinstance(account, AccountPublic)

    # A colleague from the same company raises a hand: the owner gets it, for any
    # lead id (the rotation would otherwise split them between the two reps).
    clock.advance(days=1)
    colleagues = [
        hand_raise(ctx, f"p{i}@northwind.com", first_name="Pat", last_name=f"Lee{i}")
        for i in range(4)
    ]
    for colleague in colleagues:
        routed = only_handoff(ctx, colleague)
        assert routed.rep_email == owner
        assert routed.routing["account_owner"] is True
        assert routed.routing["reason"] == f"account owner {owner}"
    # A lead from another company still goes through the rules.
    stranger = only_handoff(ctx, hand_raise(ctx, "zoe@elsewhere.com"))
    assert stranger.routing["account_owner"] is False
    assert {stranger.rep_email} <= {r.email for r in reps}


def test_an_unavailable_account_owner_is_skipped_with_the_reason(
    ctx: Context, clock: ManualClock
) -> None:
    reps = sales_floor(ctx, "ana@lumen.example", "ben@lumen.example")
    handoff = only_handoff(ctx, hand_raise(ctx))
    owner = next(r for r in reps if r.email == handoff.rep_email)
    accept_handoff(ctx, handoff.id, actor=operator(owner.email))
    qualify_handoff(ctx, handoff.id, fields=BUDGET, actor=operator(owner.email))
    won_handoff(ctx, handoff.id, actor=operator(owner.email))
    update_rep(ctx, owner.id, RepUpdate(status="away"), actor=operator("sam"))
    routed = only_handoff(ctx, hand_raise(ctx, "pat@northwind.com", first_name="Pat"))
    assert routed.rep_email == other(reps, owner.email)
    assert routed.routing["account_owner"] is False
    assert routed.routing["skipped"][0] == {
        "rep_id": owner.id,
        "rep": owner.email,
        "reason": "account owner, status away",
    }


def test_a_lost_deal_needs_a_reason(ctx: Context, clock: ManualClock) -> None:
    sales_floor(ctx, "ana@lumen.example")
    lead_id = hand_raise(ctx)
    handoff = only_handoff(ctx, lead_id)
    with pytest.raises(Conflict):
        lost_handoff(
            ctx, handoff.id, reason="no answer", actor=operator("ana@lumen.example")
        )  # assigned
    accept_handoff(ctx, handoff.id, actor=operator("ana@lumen.example"))
    for blank in ("", "   "):
        with pytest.raises(ValidationFailed):
            lost_handoff(ctx, handoff.id, reason=blank, actor=operator("ana@lumen.example"))
    assert get_handoff(ctx, handoff.id, actor=OPS).status == "accepted"
    clock.advance(days=3)
    lost = lost_handoff(
        ctx, handoff.id, reason="chose a competitor", actor=operator("ana@lumen.example")
    )
    assert (lost.status, lost.outcome, lost.closed_at) == ("lost", "lost", clock.now())
    assert get_lead(ctx, lead_id, actor=OPS).stage == "lost"
    assert handoff_events_of(ctx, handoff.id, actor=OPS)[-1].detail == {
        "reason": "chose a competitor"
    }


def test_a_recycled_lead_returns_with_a_fresh_hand_raise_as_a_second_handoff(
    ctx: Context, clock: ManualClock
) -> None:
    sales_floor(ctx, "ana@lumen.example")
    lead_id = hand_raise(ctx)
    first = only_handoff(ctx, lead_id)
    clock.advance(hours=1)
    recycled_at = clock.now()
    reject_handoff(ctx, first.id, code="not_ready", actor=operator("ana@lumen.example"))
    assert get_lead(ctx, lead_id, actor=OPS).stage == "nurture"
    clock.advance(days=2)
    # A demo request from before the recycle, stored late, hands nobody off.
    hand_raise(ctx, at=recycled_at - timedelta(minutes=30))
    assert get_lead(ctx, lead_id, actor=OPS).stage == "nurture"
    assert len(list_handoffs(ctx, lead_id=lead_id, actor=OPS)) == 1
    # A new one does, cool-down or not.
    hand_raise(ctx)
    assert get_lead(ctx, lead_id, actor=OPS).stage == "mql"
    second, earlier = list_handoffs(ctx, lead_id=lead_id, actor=OPS)
    assert earlier.id == first.id
    assert (second.status, second.rep_email, second.mql_at) == (
        "assigned",
        "ana@lumen.example",
        clock.now(),
    )
    assert second.chain_id == second.id != first.chain_id
    # Ana's packet shows her the earlier verdict on the lead.
    packet = handoff_packet(
        ctx, second.id, actor=principal_for(ctx, "rep", rep_email="ana@lumen.example")
    )
    [shown] = packet.earlier_handoffs
    assert (shown.id, shown.status, shown.rejection_code, shown.marketing_credit) == (
        first.id,
        "rejected",
        "not_ready",
        True,
    )
    assert packet.handoff == second


# --- the unassigned queue -----------------------------------------------------------------


def test_with_everyone_away_the_handoff_waits_until_a_rep_is_back(
    ctx: Context, clock: ManualClock, smtp: SmtpServer, worker: Any
) -> None:
    _, ben = sales_floor(ctx, "ana@lumen.example", "ben@lumen.example", status="away")
    lead_id = hand_raise(ctx)
    queued = only_handoff(ctx, lead_id)
    assert (queued.status, queued.rep_id, queued.assigned_at) == ("queued", None, None)
    assert queued.accept_due_at is None and queued.next_step_at is None
    assert queued.routing["reason"] == "nobody in team na is available"
    assert [s["reason"] for s in queued.routing["skipped"]] == ["status away", "status away"]
    assert [h.id for h in list_handoffs(ctx, status=["queued"], actor=OPS)] == [queued.id]
    worker()
    assert len(smtp.messages) == 1
    assert smtp.messages[0]["To"] == MANAGER
    assert str(smtp.messages[0]["Subject"]).startswith("Nobody available for Dana Reyes")
    assert worker().assigned == 0
    assert only_handoff(ctx, lead_id).status == "queued"

    update_rep(ctx, ben.id, RepUpdate(status="available"), actor=operator("ben@lumen.example"))
    clock.advance(minutes=5)
    report = worker()
    assert report.assigned == 1
    assigned = get_handoff(ctx, queued.id, actor=OPS)
    assert (assigned.status, assigned.rep_email) == ("assigned", "ben@lumen.example")
    assert assigned.assigned_at == clock.now() == utc(2026, 3, 2, 9, 5)
    assert assigned.accept_due_at == utc(2026, 3, 2, 9, 35)
    assert list_handoffs(ctx, status=["queued"], actor=OPS) == []
    assert mails(smtp)[1] == (
        "ben@lumen.example",
        "New lead for you: Dana Reyes (Northwind Traders)",
    )
    assert event_kinds(ctx, queued.id) == ["queued", "assigned", "notified"]


def test_a_lead_no_one_can_take_does_not_block_the_queue_for_other_teams(
    ctx: Context, clock: ManualClock, worker: Any
) -> None:
    activate_example(ctx)
    add_team(ctx, "emea")
    add_team(ctx, "na")
    add_rep(ctx, "eva@lumen.example", "emea", status="away")
    ned = add_rep(ctx, "ned@lumen.example", "na", status="away")
    german = hand_raise(ctx, "jonas@fabrik.de", country="DE")
    clock.advance(minutes=1)
    american = hand_raise(ctx, "lou@tiny.com", country="US")
    assert {h.status for h in list_handoffs(ctx, actor=OPS)} == {"queued"}
    update_rep(ctx, ned.id, RepUpdate(status="available"), actor=operator("sam"))
    clock.advance(minutes=1)
    worker()
    assert only_handoff(ctx, german).status == "queued"
    assert only_handoff(ctx, american).rep_email == "ned@lumen.example"


# --- the SLA ladder -----------------------------------------------------------------------


def test_the_ladder_reminds_at_20_and_reassigns_at_30_business_minutes_exactly(
    ctx: Context, clock: ManualClock, smtp: SmtpServer, worker: Any
) -> None:
    # Assigned Monday 16:50 UTC, ten minutes before the reps' day ends.
    clock.set(utc(2026, 3, 2, 16, 50))
    reps = sales_floor(ctx, "ana@lumen.example", "ben@lumen.example")
    lead_id = hand_raise(ctx)
    first = only_handoff(ctx, lead_id)
    first_rep = str(first.rep_email)
    second_rep = other(reps, first_rep)
    worker()
    assert mails(smtp) == [(first_rep, "New lead for you: Dana Reyes (Northwind Traders)")]

    # Twenty wall-clock minutes are not twenty business minutes.
    clock.set(utc(2026, 3, 2, 17, 10))
    assert worker().steps == 0
    clock.set(utc(2026, 3, 3, 9, 9, 59))
    assert worker().steps == 0
    assert len(smtp.messages) == 1
    clock.set(utc(2026, 3, 3, 9, 10))
    assert worker().steps == 1
    assert len(smtp.messages) == 2
    to, subject = mails(smtp)[1]
    assert to == first_rep
    assert subject == "Reminder: accept Dana Reyes (Northwind Traders) before Tue 3 Mar 09:20 UTC"
    assert get_handoff(ctx, first.id, actor=OPS).next_step_at == utc(2026, 3, 3, 9, 20)

    clock.set(utc(2026, 3, 3, 9, 19, 59))
    assert worker().steps == 0
    assert len(smtp.messages) == 2
    assert get_handoff(ctx, first.id, actor=OPS).status == "assigned"
    clock.set(utc(2026, 3, 3, 9, 20))
    worker()
    old = get_handoff(ctx, first.id, actor=OPS)
    assert (old.status, old.outcome, old.closed_at, old.next_step_at) == (
        "reassigned",
        "reassigned",
        clock.now(),
        None,
    )
    [new] = list_handoffs(ctx, status=["assigned"], actor=OPS)
    assert (new.rep_email, new.chain_id, new.reassignments) == (second_rep, first.id, 1)
    assert (new.mql_at, new.assigned_at) == (first.mql_at, clock.now())
    assert new.accept_due_at == utc(2026, 3, 3, 9, 50)
    assert new.routing["skipped"] == [
        {"rep_id": first.rep_id, "rep": first_rep, "reason": "already had this lead"}
    ]
    assert sorted(mails(smtp)[2:]) == sorted(
        [
            (second_rep, "New lead for you: Dana Reyes (Northwind Traders)"),
            (MANAGER, f"SLA missed: Dana Reyes (Northwind Traders) (handoff {first.id})"),
        ]
    )
    manager_mail = next(m for m in smtp.messages if m["To"] == MANAGER)
    assert f"{first_rep}: not accepted in time" in text_of(manager_mail)
    assert event_kinds(ctx, first.id) == [
        "assigned",
        "notified",
        "reminded",
        "reassigned",
        "manager_notified",
    ]
    # Nothing runs twice.
    assert worker().steps == 0
    assert len(smtp.messages) == 4


def test_automatic_reassignments_stop_at_the_contracts_maximum(
    ctx: Context, clock: ManualClock, smtp: SmtpServer, worker: Any
) -> None:
    sales_floor(
        ctx, "ana@lumen.example", "ben@lumen.example", "cy@lumen.example", "dee@lumen.example"
    )
    lead_id = hand_raise(ctx)
    for _ in range(3):
        clock.advance(minutes=30)
        worker()
    chain = list(reversed(list_handoffs(ctx, lead_id=lead_id, actor=OPS)))
    assert [h.status for h in chain] == ["reassigned", "reassigned", "assigned"]
    assert [h.reassignments for h in chain] == [0, 1, 2]
    assert {h.chain_id for h in chain} == {chain[0].id}
    assert len({h.rep_id for h in chain}) == 3, "each reassignment goes to someone new"
    last = chain[-1]
    assert last.assigned_at == utc(2026, 3, 2, 10, 0)
    skipped = [
        e for e in handoff_events_of(ctx, last.id, actor=OPS) if e.kind == "reassign_skipped"
    ]
    assert [(e.at, e.detail["why"]) for e in skipped] == [
        (utc(2026, 3, 2, 10, 30), "already reassigned 2 times")
    ]
    # The manager hears about each of the three misses.
    assert [to for to, _ in mails(smtp)].count(MANAGER) == 3
    # The 120-minute "until touched" rung is what is left.
    assert last.status == "assigned"
    assert get_handoff(ctx, last.id, actor=OPS).next_step_at == utc(2026, 3, 2, 12, 0)


def test_with_nobody_else_available_the_handoff_stays_and_the_manager_is_told(
    ctx: Context, clock: ManualClock, smtp: SmtpServer, worker: Any
) -> None:
    sales_floor(ctx, "ana@lumen.example")
    handoff = only_handoff(ctx, hand_raise(ctx))
    clock.advance(minutes=30)
    worker()
    stays = get_handoff(ctx, handoff.id, actor=OPS)
    assert (stays.status, stays.rep_email, stays.reassignments) == (
        "assigned",
        "ana@lumen.example",
        0,
    )
    assert len(list_handoffs(ctx, actor=OPS)) == 1
    failed = [
        e for e in handoff_events_of(ctx, handoff.id, actor=OPS) if e.kind == "reassign_failed"
    ]
    assert [e.detail["why"] for e in failed] == ["nobody in team na is available"]
    assert [to for to, _ in mails(smtp)] == ["ana@lumen.example", "ana@lumen.example", MANAGER]
    # What is left: the manager at 120 minutes if nobody touched the lead (11:00 UTC).
    assert stays.next_step_at == utc(2026, 3, 2, 11, 0)


def test_an_accepted_lead_nobody_touches_reaches_the_manager_at_120_minutes(
    ctx: Context, clock: ManualClock, smtp: SmtpServer, worker: Any
) -> None:
    sales_floor(ctx, "ana@lumen.example", "ben@lumen.example")
    handoff = only_handoff(ctx, hand_raise(ctx))
    clock.advance(minutes=5)
    accept_handoff(ctx, handoff.id, actor=operator(str(handoff.rep_email)))
    worker()
    clock.set(utc(2026, 3, 2, 10, 59, 59))
    assert worker().steps == 0
    assert [to for to, _ in mails(smtp)] == [handoff.rep_email], "no reminder once accepted"
    clock.set(utc(2026, 3, 2, 11, 0))
    assert worker().steps == 1
    assert [to for to, _ in mails(smtp)] == [handoff.rep_email, MANAGER]
    assert f"{handoff.rep_email}: not touched in time" in text_of(smtp.messages[1])
    done = get_handoff(ctx, handoff.id, actor=OPS)
    assert (done.status, done.rep_email, done.next_step_at) == (
        "accepted",
        handoff.rep_email,
        None,
    )


def test_capacity_counts_open_handoffs_until_they_are_qualified(
    ctx: Context, clock: ManualClock
) -> None:
    ana, ben = sales_floor(ctx, "ana@lumen.example", "ben@lumen.example", capacity=1)
    first = only_handoff(ctx, hand_raise(ctx, "p1@one.com"))
    second = only_handoff(ctx, hand_raise(ctx, "p2@two.com"))
    assert {first.rep_email, second.rep_email} == {ana.email, ben.email}
    third = only_handoff(ctx, hand_raise(ctx, "p3@three.com"))
    assert third.status == "queued"
    assert sorted(s["reason"] for s in third.routing["skipped"]) == [
        "at capacity (1/1 open handoffs)",
        "at capacity (1/1 open handoffs)",
    ]
    # Accepted still counts; qualified no longer does.
    accept_handoff(ctx, first.id, actor=operator(str(first.rep_email)))
    assert only_handoff(ctx, hand_raise(ctx, "p4@four.com")).status == "queued"
    qualify_handoff(ctx, first.id, fields=BUDGET, actor=operator(str(first.rep_email)))
    fifth = only_handoff(ctx, hand_raise(ctx, "p5@five.com"))
    assert (fifth.status, fifth.rep_email) == ("assigned", first.rep_email)


# --- the outbox -------------------------------------------------------------------------


def test_the_assignment_email_carries_the_packet_and_marks_the_rep_notified(
    ctx: Context, clock: ManualClock, smtp: SmtpServer, worker: Any
) -> None:
    sales_floor(ctx, "ana@lumen.example")
    lead_id = hand_raise(ctx, title="VP Operations", phone="+1 415 555 0134")
    handoff = only_handoff(ctx, lead_id)
    assert handoff.notified_at is None
    clock.advance(minutes=2)
    worker()
    [message] = smtp.messages
    assert message["To"] == "ana@lumen.example"
    assert message["From"] == "baton@lumen.example"
    assert message["Subject"] == "New lead for you: Dana Reyes (Northwind Traders)"
    assert message["X-Baton-Handoff"] == str(handoff.id)
    assert message["X-Baton-Topic"] == "handoff.assigned"
    assert str(message["Message-ID"]).startswith("<outbox-")
    text = text_of(message)
    for line in (
        "Dana Reyes (Northwind Traders)",
        "Email:    dana@northwind.com",
        "Phone:    +14155550134",
        "Title:    VP Operations",
        "Country:  US",
        f"Handoff {handoff.id}: assigned; MQL at Mon 2 Mar 09:00 UTC",
        "Accept by:      Mon 2 Mar 09:30 UTC",
        "First touch by: Mon 2 Mar 11:00 UTC",
        "Why you: rule Everyone else: weighted in team na",
        "+20  Decision-maker title",
        "[ ] Use case noted (what they want to analyse, and for whom) (required)",
    ):
        assert line in text, line
    assert "  Mon 2 Mar 09:00 UTC  demo request: /demo" in text  # the timeline
    notified = get_handoff(ctx, handoff.id, actor=OPS)
    assert notified.notified_at == utc(2026, 3, 2, 9, 2)
    [delivery] = deliveries_of(ctx, "email")
    assert (delivery["ok"], delivery["status_code"], delivery["attempt"]) == (True, 250, 1)


def deliveries_of(ctx: Context, channel: str) -> list[dict[str, Any]]:
    with ctx.read() as connection:
        return [
            dict(r)
            for r in connection.execute(
                select(deliveries)
                .join(outbox, outbox.c.id == deliveries.c.outbox_id)
                .where(outbox.c.channel == channel)
                .order_by(deliveries.c.id)
            ).mappings()
        ]


def outbox_rows(ctx: Context, channel: str) -> list[dict[str, Any]]:
    with ctx.read() as connection:
        return [
            dict(r)
            for r in connection.execute(
                select(outbox).where(outbox.c.channel == channel).order_by(outbox.c.id)
            ).mappings()
        ]


def test_a_webhook_endpoint_receives_a_signed_handoff_assigned(
    ctx: Context, clock: ManualClock, worker: Any
) -> None:
    [ana] = sales_floor(ctx, "ana@lumen.example")
    with http_receiver() as receiver:
        endpoint_id = add_endpoint(ctx, receiver.url)
        lead_id = hand_raise(ctx)
        handoff = only_handoff(ctx, lead_id)
        clock.advance(seconds=3)
        worker()
        [request] = receiver.requests
    assert (request.method, request.path) == ("POST", "/webhook")
    assert request.headers["X-Baton-Event"] == "handoff.assigned"
    assert request.headers["Content-Type"] == "application/json"
    timestamp = int(request.headers["X-Baton-Timestamp"])
    assert timestamp == int(clock.now().timestamp())
    signature = request.headers["X-Baton-Signature"]
    assert verify(SECRET, timestamp, request.body, signature, now=timestamp + 10)
    assert not verify("wrong secret", timestamp, request.body, signature, now=timestamp)
    assert not verify(SECRET, timestamp, request.body + b" ", signature, now=timestamp)
    body = json.loads(request.body)
    [row] = outbox_rows(ctx, "webhook")
    assert (row["endpoint_id"], row["status"], row["sent_at"]) == (
        endpoint_id,
        "sent",
        clock.now(),
    )
    assert request.headers["X-Baton-Delivery"] == str(row["id"])
    assert body == {
        "id": row["id"],
        "event": "handoff.assigned",
        "occurred_at": "2026-03-02T09:00:00+00:00",
        "data": {
            "handoff_id": handoff.id,
            "lead_id": lead_id,
            "rep": {"id": ana.id, "email": "ana@lumen.example", "name": "Ana"},
            "why": "rule Everyone else: weighted in team na",
        },
    }


def test_a_failing_receiver_is_retried_with_backoff_until_it_recovers(
    ctx: Context, clock: ManualClock, worker: Any
) -> None:
    sales_floor(ctx, "ana@lumen.example")
    with http_receiver(status=500, body=b"database down") as receiver:
        add_endpoint(ctx, receiver.url)
        hand_raise(ctx)
        start = clock.now()
        worker()
        assert len(receiver.requests) == 1
        [row] = outbox_rows(ctx, "webhook")
        assert (row["status"], row["attempts"]) == ("pending", 1)
        assert (
            row["next_attempt_at"] == start + next_attempt_delay(1) == start + timedelta(seconds=30)
        )
        assert row["last_error"] == "HTTP 500 Internal Server Error"  # never the reply body

        clock.advance(seconds=29)
        worker()
        assert len(receiver.requests) == 1, "not before the backoff has passed"
        clock.advance(seconds=1)
        worker()
        assert len(receiver.requests) == 2
        [row] = outbox_rows(ctx, "webhook")
        second_try = clock.now()
        assert (row["status"], row["attempts"]) == ("pending", 2)
        assert row["next_attempt_at"] == second_try + timedelta(minutes=1)

        receiver.status = 200
        clock.advance(seconds=59)
        worker()
        assert len(receiver.requests) == 2
        clock.advance(seconds=1)
        worker()
        assert len(receiver.requests) == 3
        requests = list(receiver.requests)
    [row] = outbox_rows(ctx, "webhook")
    assert (row["status"], row["attempts"], row["sent_at"]) == ("sent", 3, clock.now())
    assert [(d["attempt"], d["ok"], d["status_code"]) for d in deliveries_of(ctx, "webhook")] == [
        (1, False, 500),
        (2, False, 500),
        (3, True, 200),
    ]
    assert [d["attempted_at"] for d in deliveries_of(ctx, "webhook")] == [
        start,
        start + timedelta(seconds=30),
        start + timedelta(seconds=90),
    ]
    # One delivery id across the retries, each attempt signed at its own time.
    assert {r.headers["X-Baton-Delivery"] for r in requests} == {str(row["id"])}
    for request, sent in zip(requests, (0, 30, 90), strict=True):
        timestamp = int(request.headers["X-Baton-Timestamp"])
        assert timestamp == int(start.timestamp()) + sent
        assert verify(
            SECRET, timestamp, request.body, request.headers["X-Baton-Signature"], now=timestamp
        )


def assigned(receiver: HttpReceiver) -> list[Any]:
    """The requests that delivered ``handoff.assigned`` (the SLA ladder sends others)."""
    return [r for r in receiver.requests if r.headers["X-Baton-Event"] == "handoff.assigned"]


def test_a_refusing_receiver_is_not_retried_and_a_failing_one_is_given_up_on(
    ctx: Context, clock: ManualClock, worker: Any
) -> None:
    sales_floor(ctx, "ana@lumen.example")
    with http_receiver(status=410) as gone, http_receiver(status=503) as down:
        add_endpoint(ctx, gone.url)
        add_endpoint(ctx, down.url)
        hand_raise(ctx)
        worker()
        for attempt in range(1, MAX_ATTEMPTS):
            clock.advance(next_attempt_delay(attempt))
            worker()
        clock.advance(hours=12)
        worker()
        assert (len(assigned(gone)), len(assigned(down))) == (1, MAX_ATTEMPTS)
    refused, failing = [r for r in outbox_rows(ctx, "webhook") if r["topic"] == "handoff.assigned"]
    assert (refused["status"], refused["attempts"]) == ("failed", 1)
    assert refused["last_error"] == "HTTP 410 Gone"
    assert (failing["status"], failing["attempts"]) == ("failed", MAX_ATTEMPTS)


def test_a_receivers_retry_after_is_respected(
    ctx: Context, clock: ManualClock, worker: Any
) -> None:
    sales_floor(ctx, "ana@lumen.example")
    with http_receiver(status=503, headers={"Retry-After": "600"}) as receiver:
        add_endpoint(ctx, receiver.url)
        hand_raise(ctx)
        start = clock.now()
        worker()
        [row] = outbox_rows(ctx, "webhook")
        assert row["next_attempt_at"] >= start + timedelta(seconds=600)
        clock.advance(seconds=599)
        worker()
        assert len(receiver.requests) == 1


def test_notified_at_waits_for_the_email_not_for_a_webhook(
    ctx: Context, clock: ManualClock, smtp: SmtpServer, worker: Any
) -> None:
    sales_floor(ctx, "ana@lumen.example")
    with http_receiver() as receiver:
        add_endpoint(ctx, receiver.url)
        handoff = only_handoff(ctx, hand_raise(ctx))
        smtp.data_reply = "451 4.3.0 mailbox busy, try later"
        worker()
        assert len(receiver.requests) == 1 and smtp.messages == []
        assert get_handoff(ctx, handoff.id, actor=OPS).notified_at is None
        smtp.data_reply = None
        clock.advance(seconds=30)
        worker()
    assert len(smtp.messages) == 1
    assert get_handoff(ctx, handoff.id, actor=OPS).notified_at == clock.now()


def test_a_transaction_that_fails_after_the_mql_leaves_no_handoff_and_no_message(
    ctx: Context, clock: ManualClock, smtp: SmtpServer, worker: Any
) -> None:
    sales_floor(ctx, "ana@lumen.example")
    with http_receiver() as receiver:
        add_endpoint(ctx, receiver.url)
        data = LeadCreate.model_validate({"email": "dana@northwind.com", "country": "US"})
        lead_id = capture_lead(ctx, data, actor=operator("form")).lead.id
        while flag_pending_duplicates(ctx):  # the capture's own work, done before the test
            pass
        with pytest.raises(RuntimeError, match="after the MQL"), ctx.write() as connection:
            change_stage_in(
                connection,
                lead_id,
                Stage.MQL,
                actor=operator("ops"),
                reason="manual",
                now=clock.now(),
            )
            inside = connection.execute(select(func.count()).select_from(handoffs))
            assert inside.scalar_one() == 1, "the handoff opens in the same transaction"
            raise RuntimeError("failed after the MQL")
        assert get_lead(ctx, lead_id, actor=OPS).stage == "lead"
        assert list_handoffs(ctx, actor=OPS) == []
        assert count(ctx, outbox) == count(ctx, handoff_events) == 0
        assert pool_rotations(ctx) == {}, "no rotation moved"
        assert worker().busy is False
        assert receiver.requests == []
    assert smtp.messages == []
    # The same change committed does open it, and notifies.
    with ctx.write() as connection:
        change_stage_in(
            connection, lead_id, Stage.MQL, actor=operator("ops"), reason="manual", now=clock.now()
        )
    assert only_handoff(ctx, lead_id).status == "assigned"
    assert count(ctx, outbox) == 2


def test_sales_stages_change_only_through_verdicts_while_a_rep_has_the_lead(
    ctx: Context,
) -> None:
    from baton.domain.errors import Conflict
    from baton.domain.lifecycle import Stage
    from baton.services.leads import change_stage

    sales_floor(ctx, "ana@lumen.example")
    lead_id = hand_raise(ctx, "erin@globex.example")
    handoff = only_handoff(ctx, lead_id)
    assert handoff.rep_email == "ana@lumen.example"

    with pytest.raises(Conflict, match=f"handoff {handoff.id}"):
        change_stage(ctx, lead_id, Stage.SAL, actor=operator("someone"), reason="skip the rep")
    assert get_handoff(ctx, handoff.id, actor=OPS).status == "assigned"
    assert get_lead(ctx, lead_id, actor=OPS).stage == "mql"
