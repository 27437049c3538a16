"""The rep's inbox use case (:func:`baton.services.inbox.rep_inbox`) on SQLite and
PostgreSQL: only the rep's open handoffs, most urgent first, with why now and the
contract's verdict choices; a user who is not a rep has no inbox."""

from __future__ import annotations

from datetime import timedelta

import pytest
from tests.web_world import ANA, build_world, hand_raise

from baton.domain.access import operator
from baton.domain.clock import ManualClock
from baton.domain.errors import Forbidden
from baton.services.context import Context
from baton.services.handoffs import accept_handoff, reject_handoff
from baton.services.inbox import rep_inbox, verdict_choices
from baton.services.users import find_user, login, session_principal


def _as(ctx: Context, email: str):  # type: ignore[no-untyped-def]
    started = login(ctx, email, "correct horse battery staple", address="test")
    found = session_principal(ctx, started.key)
    assert found is not None
    return found.principal


def test_the_inbox_holds_the_reps_open_handoffs_most_urgent_first(
    ctx: Context, clock: ManualClock
) -> None:
    world = build_world(ctx, handoffs_each=2)
    ana = _as(ctx, ANA)
    box = rep_inbox(ctx, actor=ana)
    assert sorted(i.handoff.id for i in box.items) == sorted(world.handoffs[ANA])
    assert box.zone == "America/New_York"
    assert all(i.handoff.rep_email == ANA for i in box.items)
    assert all(i.why_now == "hand-raise (demo request)" for i in box.items)
    assert all(i.grade and i.score is not None for i in box.items)
    assert [i.due_label for i in box.items] == ["accept", "accept"]

    clock.advance(timedelta(minutes=5))
    newest = hand_raise(ctx, country="US")
    first, second = world.handoffs[ANA][-1], world.handoffs[ANA][0]
    accept_handoff(ctx, first, actor=ana)
    reject_handoff(ctx, second, code="not_ready", actor=ana)
    box = rep_inbox(ctx, actor=ana)
    # The accepted one's deadline (first touch, 2 h) comes after the new one's (accept, 30 min).
    assert [(i.handoff.id, i.due_label) for i in box.items] == [
        (newest, "accept"),
        (first, "first touch"),
    ]
    assert [i.due_at for i in box.items] == sorted(i.due_at for i in box.items)  # type: ignore[type-var]

    reasons = {r.code: r.goes_to for r in box.reasons}
    assert reasons["not_ready"] == "back to nurture" and reasons["junk"] == "disqualified"
    assert box.qualification_fields == ["budget", "authority", "need", "timing"]
    assert verdict_choices(ctx, actor=ana).reasons == box.reasons


def test_only_a_rep_user_has_an_inbox(ctx: Context) -> None:
    world = build_world(ctx, handoffs_each=1)
    with pytest.raises(Forbidden):
        rep_inbox(ctx, actor=_as(ctx, world.users["sales_manager"]))
    with pytest.raises(Forbidden):
        rep_inbox(ctx, actor=operator("cli"))
    assert find_user(ctx, ANA, actor=operator("t")).role == "rep"
