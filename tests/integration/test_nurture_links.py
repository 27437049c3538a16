"""Signed links of nurture email on SQLite and PostgreSQL: opens and clicks become
scored activities (once per send, URL and 10-minute window), a click goes only to a URL
of that email, unsubscribing is immediate (suppression, enrollment ended) and forged or
damaged tokens are refused.

World: the example contract active (``email_click`` scores 2, ``unsubscribe`` -20), one
consenting lead enrolled in ``not-ready`` with step 0 sent (a send log row holding the
rendered email's URLs, as the send lane writes it).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, insert, select
from tests.conftest import bearer, token_for

from baton.api.app import create_app
from baton.config import Settings
from baton.domain.access import operator
from baton.domain.activities import ActivityCreate
from baton.domain.clock import ManualClock
from baton.domain.errors import NotFound
from baton.domain.leads import LeadCreate
from baton.domain.reps import RepCreate, TeamCreate
from baton.notify.render import render_email
from baton.services import nurture_links as links
from baton.services.activities import ingest_activity
from baton.services.context import Context
from baton.services.contracts import activate_contract, approve_contract, create_contract
from baton.services.handoffs import list_handoffs, reject_handoff
from baton.services.leads import capture_lead
from baton.services.nurture_send import run_nurture
from baton.services.packet import handoff_packet
from baton.services.reps import create_rep, create_team
from baton.store.tables import (
    activities,
    lead_scores,
    leads,
    nurture_enrollments,
    nurture_sends,
    suppressions,
)

EXAMPLE = (Path(__file__).parents[2] / "contracts" / "example.yaml").read_text()
GUIDE = "https://lumen-analytics.example/guides/when-to-replace-reporting"
PRICING = "https://lumen-analytics.example/pricing"
REP = "riley@lumen.example"
OPS = operator("ops")


@dataclass(frozen=True)
class Sent:
    lead_id: int
    enrollment_id: int
    send_id: int


def contract(ctx: Context) -> None:
    version = create_contract(ctx, EXAMPLE, actor=operator("maria")).version
    approve_contract(ctx, version, role="marketing", actor=operator("maria"))
    approve_contract(ctx, version, role="sales", actor=operator("sam"))
    activate_contract(ctx, version, actor=operator("maria"))


def lead(ctx: Context, email: str = "dana@northwind.com") -> int:
    data = LeadCreate.model_validate(
        {"email": email, "first_name": "Dana", "company": "Northwind", "consent": True}
    )
    return capture_lead(ctx, data, actor=operator("form")).lead.id


def sent(ctx: Context, lead_id: int, *, urls: list[str] | None = None, step: int = 0) -> Sent:
    """An active enrollment of ``lead_id`` whose ``step`` went out with ``urls``."""
    now = ctx.clock.now()
    with ctx.write() as connection:
        enrollment = connection.execute(
            select(nurture_enrollments.c.id).where(
                nurture_enrollments.c.lead_id == lead_id, nurture_enrollments.c.status == "active"
            )
        ).scalar()
        if enrollment is None:
            enrollment = connection.execute(
                insert(nurture_enrollments)
                .values(
                    lead_id=lead_id,
                    sequence="not-ready",
                    contract_version=1,
                    status="active",
                    reason="rejected: not_ready",
                    enrolled_at=now,
                    enrolled_by="test",
                    next_step=step + 1,
                    touches=step + 1,
                )
                .returning(nurture_enrollments.c.id)
            ).scalar_one()
        send_id = connection.execute(
            insert(nurture_sends)
            .values(
                enrollment_id=enrollment,
                step=step,
                lead_id=lead_id,
                email="dana@northwind.com",
                template="benchmark",
                status="sent",
                planned_at=now,
                sent_at=now,
                links=[GUIDE, PRICING] if urls is None else urls,
            )
            .returning(nurture_sends.c.id)
        ).scalar_one()
    return Sent(lead_id, int(enrollment), int(send_id))


def token_of(url: str) -> str:
    return url.rsplit("/", 1)[1]


def events(ctx: Context, lead_id: int, kind: str) -> list[dict[str, object]]:
    with ctx.read() as connection:
        return [
            dict(p)
            for p in connection.execute(
                select(activities.c.properties)
                .where(activities.c.lead_id == lead_id, activities.c.type == kind)
                .order_by(activities.c.id)
            ).scalars()
        ]


def engagement(ctx: Context, lead_id: int) -> float:
    with ctx.read() as connection:
        value = connection.execute(
            select(lead_scores.c.engagement).where(lead_scores.c.lead_id == lead_id)
        ).scalar()
    return float(value or 0)


@pytest.fixture
def world(ctx: Context) -> Sent:
    contract(ctx)
    return sent(ctx, lead(ctx))


# --- tokens ---------------------------------------------------------------------------


def test_links_are_absolute_signed_and_of_one_kind_each(ctx: Context) -> None:
    settings = ctx.settings.model_copy(update={"public_url": "https://baton.lumen.example/"})
    opened = links.open_url(settings, 12, 3)
    clicked = links.click_url(settings, 12, 3, PRICING)
    leave = links.unsubscribe_url(settings, 99)
    assert opened.startswith("https://baton.lumen.example/n/o/")
    assert clicked.startswith("https://baton.lumen.example/n/c/")
    assert leave.startswith("https://baton.lumen.example/n/u/")
    assert PRICING not in clicked  # the URL travels as a hash, not in clear
    assert links.read_open_token(settings, token_of(opened)) == (12, 3)
    assert links.read_click_token(settings, token_of(clicked)) == (12, 3, links.url_hash(PRICING))
    assert links.read_unsubscribe_token(settings, token_of(leave)) == 99
    # A token of one kind is no token of another; Baton's own links are not wrapped.
    assert links.read_unsubscribe_token(settings, token_of(opened)) is None
    assert links.read_open_token(settings, token_of(leave)) is None
    assert links.click_url(settings, 12, 3, leave) == leave
    # Another secret, a changed id, garbage: refused.
    other = Settings(secret_key="another-secret-key-of-at-least-32-chars!", public_url="http://x")
    assert links.read_open_token(other, token_of(opened)) is None
    payload, _, signature = token_of(leave).partition(".")
    assert links.read_unsubscribe_token(settings, f"{payload}x.{signature}") is None
    for junk in ("", ".", "x" * 500, "WzEyXQ.AAAA", "%00", "W10.abc"):
        assert links.read_unsubscribe_token(settings, junk) is None


def test_headers_and_pixel_for_the_email(ctx: Context) -> None:
    headers = links.list_unsubscribe_headers(ctx.settings, 7)
    assert headers["List-Unsubscribe"] == f"<{links.unsubscribe_url(ctx.settings, 7)}>"
    assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    pixel = links.open_pixel_html(ctx.settings, 1, 0)
    assert links.with_open_pixel("<p>Hi</p></body>", pixel) == f"<p>Hi</p>{pixel}</body>"
    assert links.with_open_pixel("<p>Hi</p>", pixel) == f"<p>Hi</p>{pixel}"


# --- opens and clicks -------------------------------------------------------------------


def test_an_open_is_recorded_once_per_window(ctx: Context, clock: ManualClock, world: Sent) -> None:
    token = token_of(links.open_url(ctx.settings, world.enrollment_id, 0))
    assert links.record_open(ctx, token) is True
    clock.advance(timedelta(seconds=20))  # the mail client loads images again
    assert links.record_open(ctx, token) is False
    clock.advance(timedelta(hours=2))  # read again later: another open
    assert links.record_open(ctx, token) is True
    opens = events(ctx, world.lead_id, "email_open")
    assert len(opens) == 2
    assert opens[0] == {
        "sequence": "not-ready",
        "enrollment_id": world.enrollment_id,
        "step": 0,
        "send_id": world.send_id,
    }


def test_a_click_goes_to_the_emails_url_and_scores(
    ctx: Context, clock: ManualClock, world: Sent
) -> None:
    before = engagement(ctx, world.lead_id)
    pricing = token_of(links.click_url(ctx.settings, world.enrollment_id, 0, PRICING))
    guide = token_of(links.click_url(ctx.settings, world.enrollment_id, 0, GUIDE))
    assert links.follow_click(ctx, pricing) == PRICING
    assert links.follow_click(ctx, pricing) == PRICING  # a scanner's second fetch: once
    assert links.follow_click(ctx, guide) == GUIDE  # another URL is another click
    clock.advance(timedelta(days=2))
    assert links.follow_click(ctx, pricing) == PRICING  # came back: clicked pricing twice
    clicks = events(ctx, world.lead_id, "email_click")
    assert [c["url"] for c in clicks] == [PRICING, GUIDE, PRICING]
    assert {c["step"] for c in clicks} == {0}
    assert engagement(ctx, world.lead_id) > before  # re-scored on the way in


def test_a_click_to_a_url_not_in_the_email_is_refused(ctx: Context, world: Sent) -> None:
    elsewhere = token_of(
        links.click_url(ctx.settings, world.enrollment_id, 0, "https://evil.example/")
    )
    with pytest.raises(NotFound):
        links.follow_click(ctx, elsewhere)
    # The right URL for another step (never sent), or a send with no URL list: refused.
    with pytest.raises(NotFound):
        links.follow_click(
            ctx, token_of(links.click_url(ctx.settings, world.enrollment_id, 5, GUIDE))
        )
    bare = sent(ctx, world.lead_id, urls=[], step=1)
    with pytest.raises(NotFound):
        links.follow_click(
            ctx, token_of(links.click_url(ctx.settings, bare.enrollment_id, 1, GUIDE))
        )
    # A non-web URL in the list is never a redirect target.
    odd = sent(ctx, world.lead_id, urls=["javascript:alert(1)"], step=2)
    with pytest.raises(NotFound):
        links.follow_click(
            ctx,
            token_of(links.click_url(ctx.settings, odd.enrollment_id, 2, "javascript:alert(1)")),
        )
    assert events(ctx, world.lead_id, "email_click") == []


def test_forged_tokens_are_not_found(ctx: Context, world: Sent) -> None:
    other = ctx.settings.model_copy(update={"secret_key": "z" * 40})
    forged = token_of(links.click_url(other, world.enrollment_id, 0, PRICING))
    for call in (links.follow_click, links.record_open, links.unsubscribe, links.unsubscribe_view):
        with pytest.raises(NotFound):
            call(ctx, forged)  # type: ignore[operator]
    with pytest.raises(NotFound):  # a genuine token of a send Baton does not hold
        links.record_open(ctx, token_of(links.open_url(ctx.settings, 999, 0)))


# --- unsubscribing ------------------------------------------------------------------------


def test_unsubscribe_is_immediate_and_ends_the_enrollment(ctx: Context, world: Sent) -> None:
    token = token_of(links.unsubscribe_url(ctx.settings, world.lead_id))
    shown = links.unsubscribe_view(ctx, token)
    assert (shown.address, shown.unsubscribed) == ("d***@northwind.com", False)
    done = links.unsubscribe(ctx, token, source="one-click")
    assert (done.unsubscribed, done.changed) == (True, True)
    with ctx.read() as connection:
        lead_row = connection.execute(select(leads).where(leads.c.id == world.lead_id)).one()
        enrollment = connection.execute(
            select(nurture_enrollments).where(nurture_enrollments.c.id == world.enrollment_id)
        ).one()
        suppressed = connection.execute(select(suppressions)).one()
    assert lead_row.unsubscribed_at == ctx.clock.now()
    assert (enrollment.status, enrollment.exit_reason) == ("exited", "unsubscribe")
    assert enrollment.next_due_at is None
    assert (suppressed.email_key, suppressed.reason, suppressed.source) == (
        "dana@northwind.com",
        "unsubscribe",
        "one-click",
    )
    assert len(events(ctx, world.lead_id, "unsubscribe")) == 1
    # Again (the page's button after the mail client's one-click): nothing more.
    again = links.unsubscribe(ctx, token)
    assert (again.unsubscribed, again.changed) == (True, False)
    assert len(events(ctx, world.lead_id, "unsubscribe")) == 1
    assert links.unsubscribe_view(ctx, token).unsubscribed is True


def test_unsubscribing_a_merged_lead_unsubscribes_the_survivor(ctx: Context) -> None:
    contract(ctx)
    old, survivor = lead(ctx, "dana@old.example"), lead(ctx, "dana@northwind.com")
    with ctx.write() as connection:
        connection.execute(leads.update().where(leads.c.id == old).values(merged_into_id=survivor))
    links.unsubscribe(ctx, token_of(links.unsubscribe_url(ctx.settings, old)))
    with ctx.read() as connection:
        flagged = connection.execute(
            select(leads.c.id).where(leads.c.unsubscribed_at.is_not(None))
        ).scalars()
        assert list(flagged) == [survivor]
        assert connection.execute(select(func.count()).select_from(suppressions)).scalar() == 1


# --- the packet -------------------------------------------------------------------------


def test_a_lead_back_from_nurture_brings_its_history_to_the_rep(
    ctx: Context, clock: ManualClock
) -> None:
    """Handed off, rejected as not ready (recycled into ``not-ready``), one email sent,
    opened and clicked, then a demo request: the new handoff's packet tells the story."""
    contract(ctx)
    create_team(ctx, TeamCreate(name="na"), actor=operator("sam"))
    create_rep(ctx, RepCreate(email=REP, name="Riley", team="na"), actor=operator("sam"))
    data = LeadCreate.model_validate(
        {
            "email": "dana@northwind.com",
            "first_name": "Dana",
            "company": "Northwind",
            "country": "US",
            "consent": True,
            "consent_basis": "consent",
        }
    )
    lead_id = capture_lead(ctx, data, actor=operator("form")).lead.id
    ingest_activity(ctx, ActivityCreate(lead_id=lead_id, type="demo_request"), actor=OPS)
    [first] = list_handoffs(ctx, lead_id=lead_id, actor=OPS)
    reject_handoff(ctx, first.id, code="not_ready", actor=operator("riley"))

    clock.advance(timedelta(days=8))
    assert run_nurture(ctx).planned == 1
    with ctx.read() as connection:
        send = connection.execute(select(nurture_sends)).one()
    links.record_open(ctx, token_of(links.open_url(ctx.settings, send.enrollment_id, 0)))
    clock.advance(timedelta(hours=1))
    links.follow_click(
        ctx, token_of(links.click_url(ctx.settings, send.enrollment_id, 0, send.links[0]))
    )
    clock.advance(timedelta(days=3))
    ingest_activity(ctx, ActivityCreate(lead_id=lead_id, type="demo_request"), actor=OPS)

    latest = list_handoffs(ctx, lead_id=lead_id, actor=OPS)[0]
    assert latest.id != first.id
    packet = handoff_packet(ctx, latest.id, actor=OPS)
    [history] = packet.nurture
    assert history.summary == (
        "Recycled on 2 Mar (not ready), sequence not-ready: 1 touch, opened 1, "
        "clicked when-to-replace-reporting once, came back on 13 Mar by raising a hand."
    )
    text = render_email("handoff.assigned", packet, data={}, base_url="http://x").text
    assert history.summary in text
    with TestClient(create_app(ctx), headers=bearer(token_for(ctx, "admin"))) as api:
        shown = api.get(f"/api/v1/handoffs/{latest.id}/packet").json()["nurture"]
    assert [(n["summary"], n["opened"], n["exit_reason"]) for n in shown] == [
        (history.summary, 1, "hand_raise")
    ]


def test_unsubscribed_until_the_person_opts_in_again(ctx: Context, world: Sent) -> None:
    links.unsubscribe(ctx, token_of(links.unsubscribe_url(ctx.settings, world.lead_id)))

    def unsubscribed() -> tuple[bool, int]:
        with ctx.read() as connection:
            at = connection.execute(
                select(leads.c.unsubscribed_at).where(leads.c.id == world.lead_id)
            ).scalar()
            count = connection.execute(select(func.count()).select_from(suppressions)).scalar()
        return at is not None, int(count or 0)

    # Filling in another form (no consent given there) changes nothing.
    again = LeadCreate.model_validate({"email": "dana@northwind.com", "company": "Northwind"})
    capture_lead(ctx, again, actor=operator("form"))
    assert unsubscribed() == (True, 1)
    # An explicit opt-in with its lawful basis does.
    opt_in = LeadCreate.model_validate(
        {"email": "dana@northwind.com", "consent": True, "consent_basis": "consent"}
    )
    capture_lead(ctx, opt_in, actor=operator("form"))
    assert unsubscribed() == (False, 0)


def test_hammering_a_link_takes_no_write_after_the_first(
    ctx: Context, clock: ManualClock, world: Sent, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Anyone holding their own email can fetch its pixel or a link in a loop: a repeat
    within the window is one read, never a write transaction (SQLite has one writer)."""
    opened = token_of(links.open_url(ctx.settings, world.enrollment_id, 0))
    clicked = token_of(links.click_url(ctx.settings, world.enrollment_id, 0, PRICING))
    assert links.record_open(ctx, opened) is True
    assert links.follow_click(ctx, clicked) == PRICING
    writes = 0
    real_write = ctx.write

    def counting_write() -> Any:
        nonlocal writes
        writes += 1
        return real_write()

    monkeypatch.setattr(ctx, "write", counting_write)
    for _ in range(20):
        assert links.record_open(ctx, opened) is False
        assert links.follow_click(ctx, clicked) == PRICING
    assert writes == 0
    clock.advance(timedelta(hours=1))  # a later visit counts again
    assert links.record_open(ctx, opened) is True
    assert writes == 1


def test_a_replayed_unsubscribe_takes_no_write(
    ctx: Context, world: Sent, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = token_of(links.unsubscribe_url(ctx.settings, world.lead_id))
    assert links.unsubscribe(ctx, token).changed is True
    writes = 0
    real_write = ctx.write

    def counting_write() -> Any:
        nonlocal writes
        writes += 1
        return real_write()

    monkeypatch.setattr(ctx, "write", counting_write)
    for _ in range(10):
        again = links.unsubscribe(ctx, token)
        assert again.unsubscribed is True and again.changed is False
    assert writes == 0
