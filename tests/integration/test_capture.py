"""Capture (create-or-update by email), duplicate flagging and merging, on both
databases."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from pydantic import ValidationError
from tests.conftest import principal_for

from baton.domain.access import operator
from baton.domain.clock import ManualClock
from baton.domain.errors import Conflict, NotFound
from baton.domain.leads import LeadCreate
from baton.domain.lifecycle import Stage, replay
from baton.services.activities import ingest_activities
from baton.services.context import Context
from baton.services.leads import (
    CaptureResult,
    capture_lead,
    change_stage,
    get_lead,
    list_leads,
    stage_history,
)
from baton.services.merge import dismiss_duplicate, list_duplicates, merge_leads
from baton.services.notes import add_note, add_tag
from baton.services.timeline import lead_timeline
from baton.services.worker import check_duplicates

CLI = operator()
"""The local operator, reading what a test stored (reads record nothing)."""

Capture = Callable[..., CaptureResult]


def activity_types(ctx: Context, lead_id: int) -> list[str]:
    return [i.data["type"] for i in lead_timeline(ctx, lead_id, actor=CLI) if i.kind == "activity"]


def test_a_new_email_creates_a_lead(ctx: Context, clock: ManualClock, capture: Capture) -> None:
    result = capture(email="dana@northwind.com", first_name="Dana", source="webinar")
    assert result.created
    lead = get_lead(ctx, result.lead.id, actor=CLI)
    assert (lead.email, lead.first_name, lead.source) == ("dana@northwind.com", "Dana", "webinar")
    assert lead.stage == "lead"
    assert lead.created_at == clock.now()
    assert lead.stage_changed_at == clock.now()
    assert lead.merged_into_id is None


def test_capturing_the_same_email_again_updates_instead_of_duplicating(
    ctx: Context, clock: ManualClock, capture: Capture
) -> None:
    first = capture(
        email="Dana.Reyes@Northwind.com",
        first_name="Dana",
        last_name="Reyes",
        title="Ops lead",
        source="webinar",
        campaign="q4-webinar",
        utm_source="linkedin",
    )
    clock.advance(days=3)
    second = capture(
        email="dana.reyes@NORTHWIND.COM",
        first_name="",
        title="VP Operations",
        source="ads",
        campaign="spring",
        utm_source="google",
    )
    assert not second.created
    assert second.lead.id == first.lead.id
    assert "title" in second.changed_fields
    lead = get_lead(ctx, first.lead.id, actor=CLI)
    assert lead.first_name == "Dana" and lead.last_name == "Reyes"
    assert lead.title == "VP Operations"
    assert (lead.source, lead.campaign, lead.utm_source) == ("webinar", "q4-webinar", "linkedin")
    assert (lead.last_source, lead.last_campaign) == ("ads", "spring")
    assert lead.updated_at == clock.now()
    assert list_leads(ctx, actor=CLI).total == 1


def test_changed_fields_name_the_fields_a_client_knows(ctx: Context, capture: Capture) -> None:
    """Not the keys Baton derives from them to find people (before, a new spelling of
    the email listed email_key, email_domain and mailbox_key, a new company company_key)."""
    first = capture(email="Dana.Reyes@Northwind.com", company="Northwind", title="Ops")
    again = capture(email="dana.reyes@NORTHWIND.COM", company="Northwind", title="VP")
    assert again.changed_fields == ["email", "title"]  # the newest spelling is kept
    assert again.lead.email == "dana.reyes@northwind.com"  # (a domain has no case)
    moved = capture(email="Dana.Reyes@northwind.com", company="Northwind Traders")
    assert moved.changed_fields == ["company", "email"]
    assert moved.lead.id == first.lead.id
    assert moved.lead.company == "Northwind Traders"


def test_recapture_merges_attributes_and_never_blanks(ctx: Context, capture: Capture) -> None:
    first = capture(
        email="dana@northwind.com",
        phone="202 456 1111",
        company="Northwind",
        attributes={"employees": 400, "industry": "logistics"},
        consent=True,
    )
    capture(email="dana@northwind.com", attributes={"employees": 450, "plan": "pro"})
    lead = get_lead(ctx, first.lead.id, actor=CLI)
    assert lead.phone == "+12024561111"
    assert lead.company == "Northwind"
    assert lead.consent is True
    assert lead.attributes == {"employees": 450, "industry": "logistics", "plan": "pro"}


def test_withdrawn_consent_is_stored(ctx: Context, capture: Capture) -> None:
    first = capture(email="dana@northwind.com", consent=True)
    capture(email="dana@northwind.com", consent=False)
    capture(email="dana@northwind.com", title="CTO")
    assert get_lead(ctx, first.lead.id, actor=CLI).consent is False


def test_a_consent_answer_without_its_source_records_who_sent_it(ctx: Context) -> None:
    """A token's opt-in without ``consent_source`` used to empty the stored source: it
    records who gave the answer to Baton instead, as an import records its file."""
    token = principal_for(ctx, "marketing", email="mia@lumen.example", scopes=("leads:write",))
    page = "https://northwind.example.com/webinar"
    given = {"email": "dana@northwind.com", "consent": True, "consent_source": page}
    lead_id = capture_lead(ctx, LeadCreate.model_validate(given), actor=token).lead.id
    repeated = {"email": "dana@northwind.com", "consent": True}
    capture_lead(ctx, LeadCreate.model_validate(repeated), actor=token)
    assert get_lead(ctx, lead_id, actor=CLI).consent_source == page, "no change: kept"
    opt_in = {"email": "dana@northwind.com", "consent_basis": "consent"}
    capture_lead(ctx, LeadCreate.model_validate(opt_in), actor=token)
    lead = get_lead(ctx, lead_id, actor=CLI)
    assert (lead.consent_basis, lead.consent_source) == ("consent", token.name)
    assert token.name.startswith("mia@lumen.example (token ")
    withdrawn = {"email": "ben@northwind.com", "consent": False}
    new = capture_lead(ctx, LeadCreate.model_validate(withdrawn), actor=operator("crm"))
    assert get_lead(ctx, new.lead.id, actor=CLI).consent_source == "crm"
    silent = capture_lead(ctx, LeadCreate(email="cy@northwind.com"), actor=operator("crm"))
    assert get_lead(ctx, silent.lead.id, actor=CLI).consent_source is None, "no answer"


def test_every_capture_is_a_captured_activity_with_its_touch(
    ctx: Context, clock: ManualClock, capture: Capture
) -> None:
    lead_id = capture(email="dana@northwind.com", source="webinar", actor="form").lead.id
    clock.advance(hours=2)
    capture(email="dana@northwind.com", source="ads", campaign="spring", actor="crm-sync")
    captured = [
        i
        for i in lead_timeline(ctx, lead_id, actor=CLI)
        if i.kind == "activity" and i.data["type"] == "captured"
    ]
    assert len(captured) == 2
    assert [c.data["properties"].get("source") for c in captured] == ["webinar", "ads"]
    assert [c.actor for c in captured] == ["form", "crm-sync"]
    lead = get_lead(ctx, lead_id, actor=CLI)
    assert lead.activity_count == 2
    assert lead.last_activity_at == clock.now()


def test_a_capture_with_an_earlier_moment_never_moves_last_activity_back(
    ctx: Context, clock: ManualClock, capture: Capture
) -> None:
    """A capture run again after PostgreSQL aborted it keeps the moment of its first
    run; an activity stored in between is later, and the lead's last activity stays it."""
    lead_id = capture(email="dana@northwind.com", actor="form").lead.id
    clock.advance(minutes=5)
    latest = clock.now()
    capture(email="dana@northwind.com", source="ads", actor="form")
    clock.set(latest - timedelta(seconds=3))

    capture(email="dana@northwind.com", source="webinar", actor="form")

    lead = get_lead(ctx, lead_id, actor=CLI)
    assert lead.last_activity_at == latest
    assert lead.activity_count == 3


def test_a_phone_only_lead_is_found_again_by_phone(ctx: Context, capture: Capture) -> None:
    first = capture(phone="(202) 456-1111", first_name="Dana")
    second = capture(phone="+1 202 456 1111", last_name="Reyes")
    assert not second.created
    assert second.lead.id == first.lead.id
    assert list_leads(ctx, actor=CLI).total == 1


def test_same_phone_with_another_email_is_flagged_not_merged(
    ctx: Context, capture: Capture
) -> None:
    first = capture(email="dana@northwind.com", phone="202-456-1111", first_name="Dana")
    second = capture(email="dana.reyes@gmail.com", phone="(202) 456 1111", first_name="D.")
    assert second.created
    assert second.lead.id != first.lead.id
    assert (second.duplicates, second.possible_duplicates) == ("pending", [])
    assert list_duplicates(ctx, actor=CLI) == []  # the worker's turn
    assert check_duplicates(ctx).checked == 2
    [queued] = list_duplicates(ctx, actor=CLI)
    assert {queued.lead_id, queued.other_lead_id} == {first.lead.id, second.lead.id}
    assert queued.status == "open"
    assert get_lead(ctx, first.lead.id, actor=CLI).merged_into_id is None
    assert get_lead(ctx, second.lead.id, actor=CLI).merged_into_id is None
    assert list_leads(ctx, actor=CLI).total == 2


def test_similar_name_at_a_similar_company_is_flagged(ctx: Context, capture: Capture) -> None:
    first = capture(
        email="jsmith@acme.io", first_name="Jonathan", last_name="Smith", company="ACME, Inc."
    )
    second = capture(
        email="jon.smith@gmail.com", first_name="Jonathon", last_name="Smith", company="Acme"
    )
    check_duplicates(ctx)
    [queued] = list_duplicates(ctx, actor=CLI)
    assert (queued.lead_id, queued.other_lead_id) == (second.lead.id, first.lead.id)


def test_different_people_at_one_company_are_not_flagged(ctx: Context, capture: Capture) -> None:
    capture(email="dana@acme.io", first_name="Dana", last_name="Reyes", company="Acme")
    other = capture(email="sam@acme.io", first_name="Sam", last_name="Okafor", company="Acme")
    assert other.duplicates == "pending"
    assert check_duplicates(ctx).checked == 2
    assert list_duplicates(ctx, actor=CLI) == []


def test_a_dismissed_pair_leaves_the_queue(ctx: Context, capture: Capture) -> None:
    capture(email="dana@northwind.com", phone="202-456-1111")
    capture(email="dana@gmail.com", phone="202-456-1111")
    check_duplicates(ctx)
    [queued] = list_duplicates(ctx, actor=CLI)
    dismiss_duplicate(ctx, queued.id, actor=operator("alice"))
    assert list_duplicates(ctx, actor=CLI) == []
    assert [c.id for c in list_duplicates(ctx, status="dismissed", actor=CLI)] == [queued.id]
    with pytest.raises(NotFound):
        dismiss_duplicate(ctx, 987_654_321, actor=operator("alice"))
    dismiss_duplicate(ctx, queued.id, actor=operator("alice"))  # twice: no harm
    assert [c.id for c in list_duplicates(ctx, status="dismissed", actor=CLI)] == [queued.id]


def test_a_merged_pair_cannot_be_dismissed(ctx: Context, capture: Capture) -> None:
    first = capture(email="dana@northwind.com", phone="202-456-1111")
    second = capture(email="dana@gmail.com", phone="202-456-1111")
    check_duplicates(ctx)
    [queued] = list_duplicates(ctx, actor=CLI)
    merge_leads(ctx, first.lead.id, second.lead.id, actor=operator("alice"))
    with pytest.raises(Conflict, match="merged"):
        dismiss_duplicate(ctx, queued.id, actor=operator("alice"))
    assert [c.id for c in list_duplicates(ctx, status="merged", actor=CLI)] == [queued.id]


# --- merging -----------------------------------------------------------------------


def build_history(ctx: Context, clock: ManualClock, lead_id: int, tag: str, n_events: int) -> None:
    """Give a lead activities, transitions, notes and tags, an hour apart."""
    email = get_lead(ctx, lead_id, actor=CLI).email
    rows: list[dict[str, Any]] = []
    for i in range(n_events):
        clock.advance(hours=1)
        rows.append(
            {
                "email": email,
                "type": "page_view",
                "occurred_at": clock.now().isoformat(),
                "properties": {"url": f"/p/{tag}/{i}"},
                "idempotency_key": f"{tag}-{i}",
            }
        )
    assert ingest_activities(ctx, rows, actor=operator("web")).stored == n_events
    clock.advance(hours=1)
    change_stage(ctx, lead_id, Stage.MQL, actor=operator("scoring"), reason="score 60")
    clock.advance(hours=1)
    add_note(ctx, lead_id, f"note on {tag}", actor=operator("alice"))
    clock.advance(hours=1)
    add_tag(ctx, lead_id, tag, actor=operator("alice"))


def kinds(ctx: Context, lead_id: int) -> Counter[str]:
    return Counter(i.kind for i in lead_timeline(ctx, lead_id, actor=CLI))


def test_merge_keeps_everything_of_both_leads(
    ctx: Context, clock: ManualClock, capture: Capture
) -> None:
    survivor = capture(email="dana@northwind.com", first_name="Dana").lead.id
    absorbed = capture(
        email="dana.reyes@gmail.com", last_name="Reyes", title="CTO", source="fair"
    ).lead.id
    build_history(ctx, clock, survivor, "hot", 3)
    build_history(ctx, clock, absorbed, "fair-2026", 2)
    before_s, before_a = kinds(ctx, survivor), kinds(ctx, absorbed)
    items_a = {
        (i.kind, i.summary) for i in lead_timeline(ctx, absorbed, actor=CLI) if i.kind != "created"
    }
    count_s, count_a = (
        get_lead(ctx, survivor, actor=CLI).activity_count,
        get_lead(ctx, absorbed, actor=CLI).activity_count,
    )

    clock.advance(hours=1)
    result = merge_leads(ctx, survivor, absorbed, actor=operator("alice"))

    assert (result.survivor_id, result.merged_id) == (survivor, absorbed)
    after = kinds(ctx, survivor)
    for kind in ("activity", "transition", "note", "tag"):
        assert after[kind] == before_s[kind] + before_a[kind], kind
    assert after["merge"] == 1
    merged_items = lead_timeline(ctx, survivor, actor=CLI)
    moved = {(i.kind, i.summary) for i in merged_items if i.merged_from == absorbed}
    # The merge closes the absorbed lead's open handoff: one new entry, the rest moved.
    closed = {m for m in moved if m[0] == "handoff" and m[1].endswith("closed")}
    assert len(closed) == 1
    assert moved - closed == items_a
    lead = get_lead(ctx, survivor, actor=CLI)
    assert set(lead.tags) == {"hot", "fair-2026"}
    assert lead.activity_count == count_s + count_a
    assert (lead.first_name, lead.last_name, lead.title) == ("Dana", "Reyes", "CTO")
    assert lead.email == "dana@northwind.com"
    gone = get_lead(ctx, absorbed, actor=CLI)
    assert gone.merged_into_id == survivor
    assert [i.id for i in list_leads(ctx, actor=CLI).items] == [survivor]
    with pytest.raises(NotFound):
        lead_timeline(ctx, absorbed, actor=CLI)


def test_merge_keeps_the_survivors_own_stage_history(
    ctx: Context, clock: ManualClock, capture: Capture
) -> None:
    survivor = capture(email="dana@northwind.com").lead.id
    absorbed = capture(email="dana@gmail.com").lead.id
    clock.advance(hours=1)
    change_stage(ctx, absorbed, Stage.NURTURE, actor=operator("alice"), reason="later")
    merge_leads(ctx, survivor, absorbed, actor=operator("alice"))
    assert replay(stage_history(ctx, survivor, actor=CLI)) == Stage(
        get_lead(ctx, survivor, actor=CLI).stage
    )
    change_stage(ctx, survivor, Stage.MQL, actor=operator("scoring"), reason="score 60")
    assert get_lead(ctx, survivor, actor=CLI).stage == "mql"


def test_capturing_the_absorbed_email_updates_the_survivor(
    ctx: Context, clock: ManualClock, capture: Capture
) -> None:
    survivor = capture(email="dana@northwind.com", first_name="Dana").lead.id
    absorbed = capture(email="dana.reyes@gmail.com").lead.id
    merge_leads(ctx, survivor, absorbed, actor=operator("alice"))
    clock.advance(days=1)
    again = capture(email="Dana.Reyes@gmail.com", title="CTO")
    assert not again.created
    assert again.lead.id == survivor
    assert get_lead(ctx, survivor, actor=CLI).title == "CTO"
    assert activity_types(ctx, survivor).count("captured") == 3
    assert [i.id for i in list_leads(ctx, actor=CLI).items] == [survivor]


def test_events_for_the_absorbed_email_go_to_the_survivor(
    ctx: Context, clock: ManualClock, capture: Capture
) -> None:
    survivor = capture(email="dana@northwind.com").lead.id
    absorbed = capture(email="dana.reyes@gmail.com").lead.id
    merge_leads(ctx, survivor, absorbed, actor=operator("alice"))
    row = {"email": "dana.reyes@gmail.com", "type": "email_open", "occurred_at": clock.now()}
    report = ingest_activities(
        ctx, [row, {**row, "email": None, "lead_id": absorbed}], actor=operator("esp")
    )
    assert (report.stored, report.leads_created, report.errors) == (2, 0, [])
    assert activity_types(ctx, survivor).count("email_open") == 2


def test_a_merge_closes_the_open_duplicate_pair(ctx: Context, capture: Capture) -> None:
    first = capture(email="dana@northwind.com", phone="202-456-1111").lead.id
    second = capture(email="dana@gmail.com", phone="202-456-1111").lead.id
    check_duplicates(ctx)
    merge_leads(ctx, first, second, actor=operator("alice"))
    assert list_duplicates(ctx, actor=CLI) == []
    [closed] = list_duplicates(ctx, status="merged", actor=CLI)
    assert {closed.lead_id, closed.other_lead_id} == {first, second}


def test_merging_twice_is_a_conflict(ctx: Context, capture: Capture) -> None:
    survivor = capture(email="dana@northwind.com").lead.id
    absorbed = capture(email="dana@gmail.com").lead.id
    third = capture(email="d.reyes@example.org").lead.id
    merge_leads(ctx, survivor, absorbed, actor=operator("alice"))
    with pytest.raises(Conflict):
        merge_leads(ctx, survivor, absorbed, actor=operator("alice"))
    with pytest.raises(Conflict):
        merge_leads(ctx, third, absorbed, actor=operator("alice"))
    with pytest.raises(Conflict):
        merge_leads(ctx, absorbed, third, actor=operator("alice"))
    with pytest.raises(Conflict):
        merge_leads(ctx, survivor, survivor, actor=operator("alice"))
    with pytest.raises(NotFound):
        merge_leads(ctx, survivor, 987_654_321, actor=operator("alice"))
    assert get_lead(ctx, third, actor=CLI).merged_into_id is None


def test_a_refused_merge_changes_nothing(
    ctx: Context, clock: ManualClock, capture: Capture
) -> None:
    survivor = capture(email="dana@northwind.com").lead.id
    absorbed = capture(email="dana@gmail.com").lead.id
    merge_leads(ctx, survivor, absorbed, actor=operator("alice"))
    before = lead_timeline(ctx, survivor, actor=CLI)
    clock.advance(minutes=1)
    with pytest.raises(Conflict):
        merge_leads(ctx, survivor, absorbed, actor=operator("bob"))
    assert lead_timeline(ctx, survivor, actor=CLI) == before


def test_chained_merges_point_at_the_final_survivor(
    ctx: Context, clock: ManualClock, capture: Capture
) -> None:
    a = capture(email="a@northwind.com").lead.id
    b = capture(email="b@northwind.com").lead.id
    c = capture(email="c@northwind.com").lead.id
    merge_leads(ctx, b, a, actor=operator("alice"))
    clock.advance(timedelta(minutes=5))
    merge_leads(ctx, c, b, actor=operator("alice"))
    assert get_lead(ctx, a, actor=CLI).merged_into_id == c
    row = {"email": "a@northwind.com", "type": "email_click", "occurred_at": clock.now()}
    assert ingest_activities(ctx, [row], actor=operator("esp")).stored == 1
    assert activity_types(ctx, c).count("email_click") == 1


@pytest.mark.parametrize(
    ("field", "length"),
    [("first_name", 300), ("title", 400), ("region", 150), ("postal_code", 40), ("utm_term", 300)],
)
def test_a_value_that_passes_validation_is_stored_whole(
    request: pytest.FixtureRequest, backend: str, ctx: Context, field: str, length: int
) -> None:
    """Whatever LeadCreate accepts must fit the columns; otherwise it must be refused up
    front as a field error, not crash the database write."""
    value = "x" * length
    try:
        data = LeadCreate.model_validate({"email": "dana@northwind.com", field: value})
    except ValidationError:
        return  # refused as a field error: that is fine too
    lead = capture_lead(ctx, data, actor=operator("form")).lead
    assert getattr(get_lead(ctx, lead.id, actor=CLI), field) == value
