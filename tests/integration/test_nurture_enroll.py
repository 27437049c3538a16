"""Nurture enrollment and exits on the real services, SQLite and PostgreSQL.

Contract: ``contracts/example.yaml`` (sequence ``not-ready``: check-in after 7 days, ...;
recycle reasons ``not_ready`` -> not-ready, ``wrong_contact`` -> wrong-contact; tag
``cold`` -> not-ready; hand-raise types include ``demo_request`` and ``email_reply``).
Time: the ``clock`` fixture.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, insert, select, update
from tests.conftest import principal_for
from tests.integration.test_handoffs import OPS, activate_example, hand_raise, sales_floor

from baton.domain.access import operator
from baton.domain.activities import ActivityCreate
from baton.domain.clock import ManualClock
from baton.domain.errors import Forbidden, ValidationFailed
from baton.domain.leads import LeadCreate
from baton.domain.lifecycle import Stage
from baton.services.activities import ingest_activity
from baton.services.context import Context
from baton.services.handoffs import list_handoffs, reject_handoff
from baton.services.leads import capture_lead, change_stage
from baton.services.notes import add_tag
from baton.services.nurture import (
    Selection,
    end_enrollment,
    enroll_leads,
    exit_enrollments_in,
    lead_enrollments,
    list_enrollments,
    preview_enrollment,
)
from baton.services.saved_filters import create_saved_filter
from baton.store.tables import leads, nurture_enrollments, suppressions


def lead(ctx: Context, email: str | None, *, basis: str | None = "consent", **fields: Any) -> int:
    data: dict[str, Any] = {"first_name": "Ana", "company": "Acme", "country": "US", **fields}
    if email is not None:
        data["email"] = email
    if basis is not None:
        data["consent_basis"] = basis
    created = LeadCreate.model_validate(data, context={"default_region": "US"})
    return capture_lead(ctx, created, actor=operator("form")).lead.id


def set_lead(ctx: Context, lead_id: int, **values: Any) -> None:
    with ctx.write() as connection:
        connection.execute(update(leads).where(leads.c.id == lead_id).values(**values))


def active_of(ctx: Context, lead_id: int) -> list[dict[str, Any]]:
    with ctx.read() as connection:
        return [
            dict(r)
            for r in connection.execute(
                select(nurture_enrollments).where(
                    nurture_enrollments.c.lead_id == lead_id,
                    nurture_enrollments.c.status == "active",
                )
            ).mappings()
        ]


def enrollments_count(ctx: Context) -> int:
    with ctx.read() as connection:
        return int(
            connection.execute(select(func.count()).select_from(nurture_enrollments)).scalar_one()
        )


def test_a_recycle_rejection_enrolls_in_the_mapped_sequence_in_the_same_transaction(
    ctx: Context, clock: ManualClock
) -> None:
    sales_floor(ctx, "rep@lumen.example")
    lead_id = hand_raise(ctx, "dana@northwind.com", consent_basis="consent")
    [handoff] = list_handoffs(ctx, lead_id=lead_id, actor=OPS)
    reject_handoff(ctx, handoff.id, code="not_ready", actor=OPS)
    [row] = active_of(ctx, lead_id)
    assert row["sequence"] == "not-ready"
    assert row["reason"] == "rejected: not_ready"
    assert row["next_step"] == 0
    assert row["next_due_at"] == clock.now() + timedelta(days=7)
    # A lead without a lawful basis is recycled but not enrolled; the verdict stands.
    other = hand_raise(ctx, "lee@northwind.com")
    [second] = list_handoffs(ctx, lead_id=other, actor=OPS)
    reject_handoff(ctx, second.id, code="not_ready", actor=OPS)
    assert active_of(ctx, other) == []
    with ctx.read() as connection:
        stage = connection.execute(select(leads.c.stage).where(leads.c.id == other)).scalar()
    assert stage == "nurture"


def test_a_mapped_tag_enrolls_and_an_unmapped_one_does_not(ctx: Context) -> None:
    activate_example(ctx)
    lead_id = lead(ctx, "ana@acme.example")
    add_tag(ctx, lead_id, "webinar", actor=OPS)
    assert active_of(ctx, lead_id) == []
    add_tag(ctx, lead_id, "Cold", actor=OPS)
    [row] = active_of(ctx, lead_id)
    assert (row["sequence"], row["reason"]) == ("not-ready", "tagged cold")


def _crowd(ctx: Context) -> dict[str, int]:
    """Leads tagged ``spring`` (not mapped to a sequence), one per exclusion reason."""
    ids = {
        "ok": lead(ctx, "ok@acme.example"),
        "ok2": lead(ctx, "ok2@acme.example", country="DE"),
        "no_consent": lead(ctx, "nobasis@acme.example", basis=None, consent=True),
        "unsubscribed": lead(ctx, "gone@acme.example"),
        "suppressed": lead(ctx, "blocked@acme.example"),
        "hard_bounce": lead(ctx, "bounced@acme.example"),
        "already": lead(ctx, "already@acme.example"),
        "no_email": lead(ctx, None, phone="+14155550123"),
    }
    ids["open_handoff"] = hand_raise(ctx, "hot@acme.example", consent_basis="consent")
    set_lead(ctx, ids["unsubscribed"], unsubscribed_at=ctx.clock.now())
    set_lead(ctx, ids["hard_bounce"], email_status="hard_bounce")
    with ctx.write() as connection:
        connection.execute(
            insert(suppressions).values(
                email_key="blocked@acme.example",
                reason="manual",
                created_at=ctx.clock.now(),
                created_by="test",
            )
        )
    enroll_leads(ctx, Selection("not-ready", lead_ids=(ids["already"],)), actor=OPS)
    for lead_id in ids.values():
        add_tag(ctx, lead_id, "spring", actor=OPS)
    return ids


def test_bulk_by_tag_previews_who_and_why_then_enrolls_the_same_once(
    ctx: Context, clock: ManualClock
) -> None:
    activate_example(ctx)
    ids = _crowd(ctx)
    marketing = principal_for(ctx, "marketing")
    selection = Selection("not-ready", tag="spring")
    before = enrollments_count(ctx)
    shown = preview_enrollment(ctx, selection, actor=marketing)
    assert enrollments_count(ctx) == before  # a preview changes nothing
    assert shown.matched == len(ids)
    assert shown.would_enroll == 2
    assert sorted(p.lead_id for p in shown.enroll_sample) == sorted([ids["ok"], ids["ok2"]])
    assert {p.first_template for p in shown.enroll_sample} == {"check-in"}
    reasons = {p.lead_id: set(p.reasons) for p in shown.excluded_sample}
    assert reasons[ids["no_consent"]] == {"no_consent"}
    assert reasons[ids["unsubscribed"]] == {"unsubscribed"}
    assert reasons[ids["suppressed"]] == {"suppressed"}
    assert reasons[ids["hard_bounce"]] == {"hard_bounce"}
    assert reasons[ids["already"]] == {"already_enrolled"}
    assert reasons[ids["no_email"]] == {"no_email"}
    assert {"open_handoff", "stage"} <= reasons[ids["open_handoff"]]
    assert shown.excluded == 7
    assert shown.excluded_by_reason["no_consent"] == 1
    assert all(p.why for p in shown.excluded_sample)

    done = enroll_leads(ctx, selection, actor=marketing)
    assert (done.enrolled, done.would_enroll) == (2, 2)
    assert enrollments_count(ctx) == before + 2
    [row] = active_of(ctx, ids["ok"])
    assert row["enrolled_by"] == marketing.name
    assert row["next_due_at"] == clock.now() + timedelta(days=7)
    again = enroll_leads(ctx, selection, actor=marketing)
    assert again.enrolled == 0  # idempotent: already enrolled leads are skipped
    assert again.excluded_by_reason["already_enrolled"] == 3
    assert enrollments_count(ctx) == before + 2


def test_bulk_by_saved_filter_name(ctx: Context) -> None:
    activate_example(ctx)
    marketing = principal_for(ctx, "marketing")
    first = lead(ctx, "f1@acme.example", source="webinar")
    lead(ctx, "f2@acme.example", source="ads")
    create_saved_filter(ctx, {"name": "webinar", "query": {"source": "webinar"}}, actor=marketing)
    shown = enroll_leads(ctx, Selection("not-ready", saved_filter="webinar"), actor=marketing)
    assert shown.enrolled == 1 and [p.lead_id for p in shown.enroll_sample] == [first]
    with pytest.raises(ValidationFailed) as refused:
        preview_enrollment(ctx, Selection("not-ready", saved_filter="nope"), actor=marketing)
    assert refused.value.problems[0].loc == "filter"


def test_naming_a_lead_without_consent_fails_the_whole_call_naming_lead_and_field(
    ctx: Context,
) -> None:
    activate_example(ctx)
    good = lead(ctx, "good@acme.example")
    bad = lead(ctx, "bad@acme.example", basis=None)
    with pytest.raises(ValidationFailed) as refused:
        enroll_leads(ctx, Selection("not-ready", lead_ids=(good, bad)), actor=OPS)
    problem = refused.value.problems[0]
    assert problem.loc.endswith("consent_basis") and f"lead {bad}" in problem.message
    assert active_of(ctx, good) == []  # nothing half-enrolled
    with pytest.raises(ValidationFailed) as unknown:
        enroll_leads(ctx, Selection("no-such", lead_ids=(good,)), actor=OPS)
    assert unknown.value.problems[0].loc == "sequence"
    assert enrollments_count(ctx) == 0


def test_only_admins_and_marketing_enroll(ctx: Context) -> None:
    activate_example(ctx)
    rep = principal_for(ctx, "sales_manager")
    with pytest.raises(Forbidden):
        preview_enrollment(ctx, Selection("not-ready", tag="x"), actor=rep)
    with pytest.raises(Forbidden):
        list_enrollments(ctx, actor=rep)


def _enrolled(ctx: Context, email: str) -> int:
    lead_id = lead(ctx, email)
    enroll_leads(ctx, Selection("not-ready", lead_ids=(lead_id,)), actor=OPS)
    assert active_of(ctx, lead_id)
    return lead_id


def _exit_reason(ctx: Context, lead_id: int) -> str | None:
    [found] = list_enrollments(ctx, actor=OPS, lead_id=lead_id)
    return found.exit_reason if found.status == "exited" else None


def _activity(ctx: Context, lead_id: int, kind: str) -> None:
    event = ActivityCreate.model_validate({"lead_id": lead_id, "type": kind})
    ingest_activity(ctx, event, actor=operator("web"))


def test_exits_reply_hand_raise_re_mql_unsubscribe_and_by_hand(ctx: Context) -> None:
    activate_example(ctx)
    opened = _enrolled(ctx, "open@acme.example")
    _activity(ctx, opened, "email_open")  # engagement is no exit
    assert active_of(ctx, opened)
    replied = _enrolled(ctx, "reply@acme.example")
    _activity(ctx, replied, "email_reply")
    assert _exit_reason(ctx, replied) == "reply"
    raised = _enrolled(ctx, "raise@acme.example")
    _activity(ctx, raised, "demo_request")
    assert _exit_reason(ctx, raised) == "hand_raise"
    mql = _enrolled(ctx, "mql@acme.example")
    change_stage(ctx, mql, Stage.MQL, actor=OPS, reason="by hand")
    assert _exit_reason(ctx, mql) == "re_mql"
    gone = _enrolled(ctx, "gone@acme.example")
    with ctx.write() as connection:
        assert exit_enrollments_in(connection, [gone], "unsubscribe", now=ctx.clock.now())
        assert not exit_enrollments_in(connection, [gone], "unsubscribe", now=ctx.clock.now())
    assert _exit_reason(ctx, gone) == "unsubscribe"
    manual = _enrolled(ctx, "manual@acme.example")
    [enrollment] = list_enrollments(ctx, actor=OPS, lead_id=manual)
    ended = end_enrollment(ctx, enrollment.id, actor=OPS)
    assert (ended.status, ended.exit_reason, ended.next_due_at) == ("exited", "manual", None)
    assert end_enrollment(ctx, enrollment.id, actor=OPS).ended_at == ended.ended_at
    # An ended enrollment lets the lead be enrolled again.
    assert enroll_leads(ctx, Selection("not-ready", lead_ids=(manual,)), actor=OPS).enrolled == 1
    shown = lead_enrollments(ctx, "manual@acme.example", actor=OPS)
    assert [e.status for e in shown] == ["active", "exited"]
    assert shown[0].sends == []


def test_a_sequence_that_does_not_exit_on_reply_or_re_mql_keeps_going(ctx: Context) -> None:
    from tests.integration.test_handoffs import EXAMPLE

    from baton.services.contracts import activate_contract, approve_contract, create_contract

    text = EXAMPLE.replace(
        "exit_on: [reply, hand_raise, re_mql, unsubscribe, hard_bounce, sales_took_back]",
        "exit_on: [hand_raise]",
    )
    assert text != EXAMPLE
    version = create_contract(ctx, text, actor=operator("maria")).version
    approve_contract(ctx, version, role="marketing", actor=operator("maria"))
    approve_contract(ctx, version, role="sales", actor=operator("sam"))
    activate_contract(ctx, version, actor=operator("maria"))
    kept = _enrolled(ctx, "kept@acme.example")
    with ctx.write() as connection:
        assert not exit_enrollments_in(connection, [kept], "reply", now=ctx.clock.now())
    change_stage(ctx, kept, Stage.MQL, actor=OPS, reason="by hand")
    assert active_of(ctx, kept)  # re_mql is not in exit_on: still enrolled
    # ... but it is in sales' hands now, so the send lane finds it blocked.
    from baton.services.nurture import blockers_in

    with ctx.read() as connection:
        assert "open_handoff" in blockers_in(connection, [kept])[kept]
    # Unsubscribe always ends it, listed or not.
    with ctx.write() as connection:
        assert exit_enrollments_in(connection, [kept], "unsubscribe", now=ctx.clock.now())
    assert _exit_reason(ctx, kept) == "unsubscribe"


def test_a_merged_away_lead_leaves_its_sequence(ctx: Context) -> None:
    from baton.services.merge import merge_leads

    activate_example(ctx)
    survivor = lead(ctx, "keep@acme.example")
    absorbed = _enrolled(ctx, "old@acme.example")
    merge_leads(ctx, survivor, absorbed, actor=OPS)
    assert _exit_reason(ctx, absorbed) == "merged"


def test_a_rep_getting_the_lead_is_sales_taking_it_back(ctx: Context) -> None:
    from tests.integration.test_handoffs import EXAMPLE, add_rep, add_team

    from baton.services.contracts import activate_contract, approve_contract, create_contract

    text = EXAMPLE.replace(
        "exit_on: [reply, hand_raise, re_mql, unsubscribe, hard_bounce, sales_took_back]",
        "exit_on: [sales_took_back]",
    )
    version = create_contract(ctx, text, actor=operator("maria")).version
    approve_contract(ctx, version, role="marketing", actor=operator("maria"))
    approve_contract(ctx, version, role="sales", actor=operator("sam"))
    activate_contract(ctx, version, actor=operator("maria"))
    add_team(ctx, "na")
    add_rep(ctx, "rep@lumen.example", "na")
    taken = _enrolled(ctx, "taken@acme.example")
    _activity(ctx, taken, "demo_request")  # hand_raise and re_mql are not exits here...
    [handoff] = list_handoffs(ctx, lead_id=taken, actor=OPS)
    assert handoff.rep_email == "rep@lumen.example"
    assert _exit_reason(ctx, taken) == "sales_took_back"  # ... but a rep has it now
