"""Who reaches which lead, on SQLite and PostgreSQL (issue 10, OWASP API1).

A rep reaches the leads of their own handoffs (open or past) and nothing else; a sales
manager those of their team's handoffs and of the queue; marketing and admins every
lead. A lead out of reach is reported exactly like one that does not exist (404), so a
rep cannot learn which ids are someone else's by guessing; a role that may not take an
action at all is refused (403). Intake keys only create leads and activities, and what
they create comes from their source.

Setup (``floor``): the example contract; team ``na`` (manager Sam, rep Ann) and team
``emea`` (manager Eve, rep Carl). A US prospect's hand-raise is routed to Ann, a German
one's to Carl; a third lead never reached a handoff.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from tests.conftest import principal_for

from baton.domain.access import Principal, operator
from baton.domain.activities import ActivityCreate
from baton.domain.errors import Forbidden, NotFound
from baton.domain.leads import LeadCreate
from baton.domain.lifecycle import Stage
from baton.domain.reps import RepCreate, TeamCreate
from baton.domain.users import IntakeKeyCreate
from baton.services.activities import ingest_activities, ingest_activity
from baton.services.context import Context
from baton.services.contracts import activate_contract, approve_contract, create_contract
from baton.services.exports import export_leads
from baton.services.leads import capture_lead, change_stage, get_lead, list_leads, stage_history
from baton.services.merge import dismiss_duplicate, list_duplicates, merge_leads
from baton.services.notes import add_note, add_tag, remove_tag
from baton.services.prep import prep_checklist, tick_prep, untick_prep
from baton.services.reps import create_rep, create_team
from baton.services.scoring import lead_score
from baton.services.timeline import lead_timeline
from baton.services.users import add_intake_key, intake_principal
from baton.store.tables import handoffs, notes, tag_events, transitions

EXAMPLE = (Path(__file__).parents[2] / "contracts" / "example.yaml").read_text()
OPS = operator("ops")
"""Sets the floor up and checks what was stored (the local operator reaches all)."""


@dataclass(frozen=True)
class Floor:
    ann_lead: int
    carl_lead: int
    lone_lead: int


def hand_raise(ctx: Context, email: str, country: str) -> int:
    data = LeadCreate.model_validate(
        {"email": email, "last_name": "Reyes", "company": "Northwind", "country": country}
    )
    lead_id = capture_lead(ctx, data, actor=operator("form")).lead.id
    event = ActivityCreate.model_validate(
        {"email": email, "type": "demo_request", "occurred_at": ctx.clock.now()}
    )
    ingest_activity(ctx, event, actor=operator("web"))
    return lead_id


def rep_of(ctx: Context, lead_id: int) -> int | None:
    with ctx.read() as connection:
        return connection.execute(
            select(handoffs.c.rep_id).where(handoffs.c.lead_id == lead_id)
        ).scalar_one()


@pytest.fixture
def floor(ctx: Context) -> Floor:
    version = create_contract(ctx, EXAMPLE, actor=operator("maria")).version
    approve_contract(ctx, version, role="marketing", actor=operator("maria"))
    approve_contract(ctx, version, role="sales", actor=operator("sam"))
    activate_contract(ctx, version, actor=OPS)
    create_team(ctx, TeamCreate(name="na", manager_email="sam@lumen.example"), actor=OPS)
    create_team(ctx, TeamCreate(name="emea", manager_email="eve@lumen.example"), actor=OPS)
    ann = create_rep(ctx, RepCreate(email="ann@lumen.example", name="Ann", team="na"), actor=OPS)
    carl = create_rep(
        ctx, RepCreate(email="carl@lumen.example", name="Carl", team="emea"), actor=OPS
    )
    made = Floor(
        ann_lead=hand_raise(ctx, "dana@northwind.com", "US"),
        carl_lead=hand_raise(ctx, "jonas@northwind.de", "DE"),
        lone_lead=capture_lead(
            ctx, LeadCreate(email="lone@example.org"), actor=operator("form")
        ).lead.id,
    )
    assert (rep_of(ctx, made.ann_lead), rep_of(ctx, made.carl_lead)) == (ann.id, carl.id)
    return made


def ann(ctx: Context) -> Principal:
    return principal_for(ctx, "rep", rep_email="ann@lumen.example")


READS: dict[str, Any] = {
    "get_lead": lambda ctx, lead_id, who: get_lead(ctx, lead_id, actor=who),
    "timeline": lambda ctx, lead_id, who: lead_timeline(ctx, lead_id, actor=who),
    "stage_history": lambda ctx, lead_id, who: stage_history(ctx, lead_id, actor=who),
    "score": lambda ctx, lead_id, who: lead_score(ctx, lead_id, actor=who),
    "prep": lambda ctx, lead_id, who: prep_checklist(ctx, lead_id, actor=who),
}
ANNOTATIONS: dict[str, Any] = {
    "note": lambda ctx, lead_id, who: add_note(ctx, lead_id, "hello", actor=who),
    "tag": lambda ctx, lead_id, who: add_tag(ctx, lead_id, "hot", actor=who),
    "untag": lambda ctx, lead_id, who: remove_tag(ctx, lead_id, "hot", actor=who),
    "tick": lambda ctx, lead_id, who: tick_prep(ctx, lead_id, "budget_owner_known", actor=who),
    "untick": lambda ctx, lead_id, who: untick_prep(ctx, lead_id, "budget_owner_known", actor=who),
}


@pytest.mark.parametrize("use_case", sorted(READS))
def test_a_rep_reads_the_lead_of_their_handoff_and_no_other(
    ctx: Context, floor: Floor, use_case: str
) -> None:
    read = READS[use_case]
    rep = ann(ctx)
    read(ctx, floor.ann_lead, rep)
    for lead_id in (floor.carl_lead, floor.lone_lead, 987_654_321):
        with pytest.raises(NotFound) as caught:
            read(ctx, lead_id, rep)
        assert "does not exist" in caught.value.detail, "out of reach looks like missing"


@pytest.mark.parametrize("use_case", sorted(ANNOTATIONS))
def test_a_rep_annotates_the_lead_of_their_handoff_and_no_other(
    ctx: Context, floor: Floor, use_case: str
) -> None:
    annotate = ANNOTATIONS[use_case]
    rep = ann(ctx)
    annotate(ctx, floor.ann_lead, rep)
    for lead_id in (floor.carl_lead, floor.lone_lead):
        with pytest.raises(NotFound):
            annotate(ctx, lead_id, rep)
    with ctx.read() as connection:
        touched = {
            lead_id
            for table in (notes, tag_events)
            for lead_id in connection.execute(select(table.c.lead_id)).scalars()
        }
    assert touched <= {floor.ann_lead}, "nothing was written on the other leads"


def test_notes_and_tags_record_the_user_beside_the_name(ctx: Context, floor: Floor) -> None:
    rep = ann(ctx)
    add_note(ctx, floor.ann_lead, "called, voicemail", actor=rep)
    add_tag(ctx, floor.ann_lead, "callback", actor=rep)
    with ctx.read() as connection:
        note = connection.execute(select(notes.c.author, notes.c.actor_user_id)).one()
        tag = connection.execute(select(tag_events.c.actor, tag_events.c.actor_user_id)).one()
    assert tuple(note) == tuple(tag) == (rep.name, rep.user_id)
    assert rep.user_id is not None


def test_a_rep_lists_and_exports_only_the_leads_of_their_handoffs(
    ctx: Context, floor: Floor
) -> None:
    rep = ann(ctx)
    page = list_leads(ctx, actor=rep)
    assert ([lead.id for lead in page.items], page.total) == ([floor.ann_lead], 1)
    assert list_leads(ctx, actor=rep, search="jonas").total == 0
    out = io.StringIO()
    assert export_leads(ctx, out, actor=rep, fmt="jsonl") == 1
    assert "dana@northwind.com" in out.getvalue() and "jonas" not in out.getvalue()
    assert list_leads(ctx, actor=OPS).total == 3


def test_a_rep_keeps_the_lead_of_a_past_handoff(ctx: Context, floor: Floor) -> None:
    from baton.services.handoffs import reject_handoff

    with ctx.read() as connection:
        handoff_id = connection.execute(
            select(handoffs.c.id).where(handoffs.c.lead_id == floor.ann_lead)
        ).scalar_one()
    rep = ann(ctx)
    reject_handoff(ctx, handoff_id, code="not_ready", note="next quarter", actor=rep)
    assert get_lead(ctx, floor.ann_lead, actor=rep).id == floor.ann_lead


def test_a_manager_reaches_their_teams_leads_only(ctx: Context, floor: Floor) -> None:
    sam = principal_for(ctx, "sales_manager", email="sam@lumen.example", teams=("na",))
    assert [lead.id for lead in list_leads(ctx, actor=sam).items] == [floor.ann_lead]
    add_note(ctx, floor.ann_lead, "Ann, call today", actor=sam)
    for lead_id in (floor.carl_lead, floor.lone_lead):
        with pytest.raises(NotFound):
            get_lead(ctx, lead_id, actor=sam)
        with pytest.raises(NotFound):
            change_stage(ctx, lead_id, Stage.NURTURE, actor=sam, reason="not now")
    with ctx.read() as connection:
        moved = sorted(connection.execute(select(transitions.c.lead_id)).scalars())
    assert moved == [floor.ann_lead, floor.carl_lead], "only the two hand-raises moved"


def test_a_rep_may_not_capture_merge_move_or_ingest(ctx: Context, floor: Floor) -> None:
    rep = ann(ctx)
    refusals = [
        lambda: capture_lead(ctx, LeadCreate(email="new@example.org"), actor=rep),
        lambda: merge_leads(ctx, floor.ann_lead, floor.lone_lead, actor=rep),
        lambda: list_duplicates(ctx, actor=rep),
        lambda: dismiss_duplicate(ctx, 1, actor=rep),
        lambda: change_stage(ctx, floor.ann_lead, Stage.NURTURE, actor=rep, reason="x"),
        lambda: ingest_activities(
            ctx, [{"email": "x@example.org", "type": "page_view"}], actor=rep
        ),
    ]
    for refuse in refusals:
        with pytest.raises(Forbidden):
            refuse()
    assert list_leads(ctx, actor=OPS).total == 3


def test_marketing_reaches_every_lead_and_captures(ctx: Context, floor: Floor) -> None:
    maria = principal_for(ctx, "marketing")
    assert list_leads(ctx, actor=maria).total == 3
    for lead_id in (floor.ann_lead, floor.carl_lead, floor.lone_lead):
        assert get_lead(ctx, lead_id, actor=maria).id == lead_id
    result = capture_lead(ctx, LeadCreate(email="new@example.org"), actor=maria)
    assert result.created
    merge_leads(ctx, floor.lone_lead, result.lead.id, actor=maria)


def test_a_token_acts_only_within_its_scopes(ctx: Context, floor: Floor) -> None:
    reader = principal_for(ctx, "marketing", scopes=("leads:read",))
    assert list_leads(ctx, actor=reader).total == 3
    with pytest.raises(Forbidden):
        capture_lead(ctx, LeadCreate(email="new@example.org"), actor=reader)
    with pytest.raises(Forbidden):
        add_note(ctx, floor.lone_lead, "hello", actor=reader)


def intake(ctx: Context, source: str = "web") -> Principal:
    _, secret = add_intake_key(
        ctx, IntakeKeyCreate(name=f"site-{source}", source=source), actor=OPS
    )
    principal = intake_principal(ctx, secret)
    assert principal is not None
    return principal


def test_an_intake_key_captures_with_its_source_unless_the_payload_names_one(
    ctx: Context,
) -> None:
    key = intake(ctx, "web")
    plain = capture_lead(ctx, LeadCreate(email="a@example.org"), actor=key)
    named = capture_lead(ctx, LeadCreate(email="b@example.org", source="webinar"), actor=key)
    assert (plain.lead, named.lead) == (None, None)  # a public key reads nothing back
    sources = [get_lead(ctx, r.lead_id, actor=OPS).source for r in (plain, named)]
    assert sources == ["web", "webinar"]
    event = ActivityCreate.model_validate(
        {"email": "c@example.org", "type": "page_view", "occurred_at": ctx.clock.now()}
    )
    made = ingest_activity(ctx, event, actor=key)
    assert made.lead_created
    assert get_lead(ctx, made.lead_id, actor=OPS).source == "web"
    [activity] = [i for i in lead_timeline(ctx, made.lead_id, actor=OPS) if i.kind == "activity"]
    assert activity.actor == key.name == "intake:site-web"


def test_an_intake_key_reads_nothing(ctx: Context, floor: Floor) -> None:
    key = intake(ctx)
    for read in READS.values():
        with pytest.raises(Forbidden):
            read(ctx, floor.lone_lead, key)
    with pytest.raises(Forbidden):
        list_leads(ctx, actor=key)
    with pytest.raises(Forbidden):
        add_note(ctx, floor.lone_lead, "hello", actor=key)
