"""The nurture lane on the real services, a real database and a real SMTP server: a due
step goes out once with List-Unsubscribe (RFC 8058), everything is checked again at send
time, the send rate holds, a bad enrollment never stops the lane."""

from __future__ import annotations

from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, insert, select, update
from tests.notify_servers import smtp_server

from baton.domain.access import operator
from baton.domain.clock import ManualClock
from baton.notify.email import SmtpConfig
from baton.services.context import Context
from baton.services.contracts import activate_contract, approve_contract, create_contract
from baton.services.nurture_send import plan_step, run_nurture
from baton.services.worker import tick
from baton.store.bulk import insert_rows
from baton.store.tables import (
    handoffs,
    lead_scores,
    leads,
    nurture_enrollments,
    nurture_sends,
    outbox,
    suppressions,
)

EXAMPLE = (Path(__file__).parents[2] / "contracts" / "example.yaml").read_text()


def activate(ctx: Context, body: str = EXAMPLE) -> int:
    version = create_contract(ctx, body, actor=operator("maria")).version
    approve_contract(ctx, version, role="marketing", actor=operator("maria"))
    approve_contract(ctx, version, role="sales", actor=operator("sam"))
    activate_contract(ctx, version, actor=operator("maria"))
    return version


def enrolled(
    ctx: Context, version: int, n: int, *, sequence: str = "not-ready", step: int = 0, **lead: Any
) -> list[int]:
    """``n`` consenting leads, each enrolled in ``sequence`` with ``step`` due now."""
    now = ctx.clock.now()
    with ctx.write() as connection:
        first = int(connection.execute(select(func.coalesce(func.max(leads.c.id), 0))).scalar_one())
        rows = [
            {
                "id": first + i + 1,
                "email": f"p{first + i + 1}@example.com",
                "email_key": f"p{first + i + 1}@example.com",
                "first_name": f"Pat{first + i + 1}",
                "company": "Acme",
                "consent": True,
                "consent_basis": "consent",
                "consent_at": now,
                "attributes": {},
                "stage": "nurture",
                "stage_changed_at": now,
                "created_at": now,
                "updated_at": now,
                **lead,
            }
            for i in range(n)
        ]
        insert_rows(connection, leads, rows)
        insert_rows(
            connection,
            nurture_enrollments,
            [
                {
                    "lead_id": row["id"],
                    "sequence": sequence,
                    "contract_version": version,
                    "status": "active",
                    "reason": "test",
                    "enrolled_at": now - timedelta(days=7),
                    "enrolled_by": "test",
                    "next_step": step,
                    "next_due_at": now,
                    "touches": step,
                }
                for row in rows
            ],
        )
        return [
            int(i)
            for i in connection.execute(
                select(nurture_enrollments.c.id)
                .where(nurture_enrollments.c.lead_id > first)
                .order_by(nurture_enrollments.c.id)
            ).scalars()
        ]


def enrollment(ctx: Context, enrollment_id: int) -> dict[str, Any]:
    with ctx.read() as connection:
        row = (
            connection.execute(
                select(nurture_enrollments).where(nurture_enrollments.c.id == enrollment_id)
            )
            .mappings()
            .one()
        )
        return dict(row)


def sends(ctx: Context) -> list[dict[str, Any]]:
    with ctx.read() as connection:
        return [
            dict(r)
            for r in connection.execute(
                select(nurture_sends).order_by(nurture_sends.c.id)
            ).mappings()
        ]


def test_a_due_step_goes_out_once_with_one_click_unsubscribe(
    ctx: Context, clock: ManualClock
) -> None:
    version = activate(ctx)
    (enrollment_id,) = enrolled(ctx, version, 1)
    with smtp_server() as smtp:
        config = SmtpConfig(host=smtp.host, port=smtp.port)
        tick(ctx, smtp=config)
        tick(ctx, smtp=config)  # nothing more is due
    assert len(smtp.messages) == 1
    message: EmailMessage = smtp.messages[0]
    (sent,) = sends(ctx)
    assert sent["status"] == "sent" and sent["step"] == 0 and sent["template"] == "check-in"
    assert message["Message-ID"] == sent["message_id"]
    assert (
        message["List-Unsubscribe"].startswith("<http") and "/n/u/" in message["List-Unsubscribe"]
    )
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["Subject"] == "Pat1, a quick thought for Acme"
    html = message.get_body(("html",))
    text = message.get_body(("plain",))
    assert html is not None and text is not None
    assert "/n/o/" in html.get_content()  # the open pixel
    assert "/n/c/" in html.get_content() and "/n/c/" in text.get_content()  # signed clicks
    assert "https://lumen-analytics.example/guides/when-to-replace-reporting" in sent["links"]
    after = enrollment(ctx, enrollment_id)
    assert after["status"] == "active" and after["touches"] == 1
    assert after["last_touch_at"] == clock.now() and after["claim_token"] is None
    # The next step (case-study) wants grade A/B: this unscored lead skips to benchmark.
    assert after["next_step"] == 2
    assert after["next_due_at"] == clock.now() + timedelta(days=21)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"unsubscribed_at": True}, "unsubscribe"),
        ({"email_status": "hard_bounce"}, "hard_bounce"),
        ({"consent_basis": None}, "no_consent"),
        ({"consent": False}, "no_consent"),
        ("suppressed", "unsubscribe"),
        ("handoff", "sales_took_back"),
    ],
)
def test_everything_is_checked_again_at_send_time(
    sqlite_ctx: Context, change: Any, reason: str
) -> None:
    ctx = sqlite_ctx
    version = activate(ctx)
    first, other = enrolled(ctx, version, 2)
    now = ctx.clock.now()
    lead_id = enrollment(ctx, first)["lead_id"]
    with ctx.write() as connection:
        if change == "suppressed":
            connection.execute(
                insert(suppressions).values(
                    email_key=f"p{lead_id}@example.com",
                    reason="manual",
                    created_at=now,
                    created_by="test",
                )
            )
        elif change == "handoff":
            connection.execute(
                insert(handoffs).values(
                    lead_id=lead_id, status="queued", mql_at=now, created_at=now, routing={}
                )
            )
        else:
            values = {k: (now if v is True else v) for k, v in change.items()}
            connection.execute(update(leads).where(leads.c.id == lead_id).values(**values))
    done = run_nurture(ctx)
    assert (done.planned, done.exited) == (1, 1)
    ended = enrollment(ctx, first)
    assert (ended["status"], ended["exit_reason"], ended["next_due_at"]) == ("exited", reason, None)
    assert [s["enrollment_id"] for s in sends(ctx)] == [other]


def test_a_step_whose_condition_no_longer_holds_is_skipped_not_sent(sqlite_ctx: Context) -> None:
    ctx = sqlite_ctx
    version = activate(ctx)
    (enrollment_id,) = enrolled(ctx, version, 1, step=1)  # case-study: grades A, B
    with ctx.write() as connection:
        lead_id = enrollment(ctx, enrollment_id)["lead_id"]
        connection.execute(
            insert(lead_scores).values(
                lead_id=lead_id,
                contract_version=version,
                fit=1,
                engagement=0,
                total=1,
                grade="D",
                state={},
                scored_at=ctx.clock.now(),
            )
        )
    assert run_nurture(ctx).skipped == 1
    (skipped,) = sends(ctx)
    assert (skipped["step"], skipped["status"], skipped["outbox_id"]) == (1, "skipped", None)
    after = enrollment(ctx, enrollment_id)
    assert after["touches"] == 1 and after["next_step"] == 2  # no touch counted


def test_a_step_is_planned_once_whatever_retries(ctx: Context) -> None:
    version = activate(ctx)
    (enrollment_id,) = enrolled(ctx, version, 1)
    with ctx.write() as connection:
        connection.execute(
            update(nurture_enrollments)
            .where(nurture_enrollments.c.id == enrollment_id)
            .values(claim_token="a" * 32, claimed_until=ctx.clock.now() + timedelta(minutes=5))
        )
    assert plan_step(ctx, enrollment_id, token="b" * 32) == "gone"  # not our claim
    assert plan_step(ctx, enrollment_id, token="a" * 32) == "planned"
    assert plan_step(ctx, enrollment_id, token="a" * 32) == "gone"  # claim spent
    assert plan_step(ctx, enrollment_id) == "gone"  # the next step is not due yet
    with ctx.read() as connection:
        assert connection.execute(select(func.count()).select_from(outbox)).scalar_one() == 1
    assert [s["step"] for s in sends(ctx)] == [0]


def test_the_send_rate_holds_across_passes(sqlite_ctx: Context) -> None:
    ctx = sqlite_ctx
    clock = ctx.clock
    assert isinstance(clock, ManualClock)
    version = activate(
        ctx, EXAMPLE.replace("send_rate_per_minute: 120", "send_rate_per_minute: 30")
    )
    enrolled(ctx, version, 45)
    assert run_nurture(ctx, limit=20).planned == 20
    assert run_nurture(ctx, limit=20).planned == 10
    throttled = run_nurture(ctx, limit=20)
    assert throttled.planned == 0 and throttled.throttled
    clock.advance(timedelta(seconds=61))
    assert run_nurture(ctx, limit=50).planned == 15
    assert len(sends(ctx)) == 45


def test_a_bad_enrollment_ends_with_error_and_the_lane_goes_on(
    sqlite_ctx: Context, caplog: pytest.LogCaptureFixture
) -> None:
    ctx = sqlite_ctx
    version = activate(ctx)
    (bad,) = enrolled(ctx, version, 1, sequence="no-such-sequence")
    (good,) = enrolled(ctx, version, 1)
    done = run_nurture(ctx)
    assert (done.planned, done.exited) == (1, 1)
    assert (enrollment(ctx, bad)["status"], enrollment(ctx, bad)["exit_reason"]) == (
        "exited",
        "error",
    )
    assert enrollment(ctx, good)["touches"] == 1
    assert f"nurture enrollment {bad}" in caplog.text


def test_a_lead_another_transaction_holds_waits_for_the_next_pass(ctx: Context) -> None:
    """The worker never waits for a lead (a verdict or an unsubscribe in progress): it
    leaves that enrollment for the next pass, where the committed change is seen."""
    if ctx.dialect != "postgresql":
        pytest.skip("SQLite has one writer: no transaction can hold a lead meanwhile")
    version = activate(ctx)
    (enrollment_id,) = enrolled(ctx, version, 1)
    lead_id = enrollment(ctx, enrollment_id)["lead_id"]
    with ctx.engine.begin() as other:
        other.execute(
            update(leads).where(leads.c.id == lead_id).values(unsubscribed_at=ctx.clock.now())
        )
        done = run_nurture(ctx)
        assert (done.planned, done.exited) == (0, 0)
        held = enrollment(ctx, enrollment_id)
        assert held["status"] == "active" and held["claim_token"] is None
    done = run_nurture(ctx)  # the unsubscribe committed: seen
    assert done.exited == 1 and enrollment(ctx, enrollment_id)["exit_reason"] == "unsubscribe"
    assert sends(ctx) == []


def test_a_bug_on_one_enrollment_costs_only_that_one(
    sqlite_ctx: Context, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A failure inside Baton fails the batch's transaction; the lane then plans the
    enrollments one at a time, and only the one that still fails ends (``error``)."""
    import baton.services.nurture_send as lane

    ctx = sqlite_ctx
    version = activate(ctx)
    first, bad, last = enrolled(ctx, version, 3)
    bad_lead = enrollment(ctx, bad)["lead_id"]
    real = lane.step_applies

    def broken(step: Any, facts: Any) -> bool:
        if facts.source == "poison":
            raise RuntimeError("a bug")
        return real(step, facts)

    with ctx.write() as connection:
        connection.execute(update(leads).where(leads.c.id == bad_lead).values(source="poison"))
    monkeypatch.setattr(lane, "step_applies", broken)
    done = run_nurture(ctx)
    assert (done.planned, done.exited) == (2, 1)
    assert enrollment(ctx, bad)["exit_reason"] == "error"
    assert [s["enrollment_id"] for s in sends(ctx)] == [first, last]
    assert f"nurture enrollment {bad}: planning failed inside Baton" in caplog.text


def test_a_mailbox_the_server_refuses_for_good_is_a_hard_bounce(ctx: Context) -> None:
    """A ``550 no such user`` at send time is learnt as a bounce notice would be: the
    lead is marked hard-bounced, the address suppressed, the sequence ended, and no
    later step is ever planned for it."""
    version = activate(ctx)
    gone, alive = enrolled(ctx, version, 2)
    gone_lead = int(enrollment(ctx, gone)["lead_id"])
    with ctx.read() as connection:
        address = connection.execute(
            select(leads.c.email).where(leads.c.id == gone_lead)
        ).scalar_one()
    with smtp_server(refuse={address: "550 5.1.1 no such user"}) as smtp:
        tick(ctx, smtp=SmtpConfig(host=smtp.host, port=smtp.port))
    assert len(smtp.messages) == 1  # the other lead's step went out
    with ctx.read() as connection:
        status = connection.execute(
            select(leads.c.email_status).where(leads.c.id == gone_lead)
        ).scalar_one()
        suppressed = connection.execute(
            select(suppressions.c.reason).where(suppressions.c.email_key == address)
        ).scalar()
    assert status == "hard_bounce" and suppressed == "hard_bounce"
    ended = enrollment(ctx, gone)
    assert ended["status"] == "exited" and ended["exit_reason"] == "hard_bounce"
    assert enrollment(ctx, alive)["status"] == "active"
    assert [s["status"] for s in sends(ctx) if s["enrollment_id"] == gone] == ["failed"]
