"""A nurture step is planned into the outbox, and the courier may send it much later
(behind the throttle, or after an SMTP outage). Whatever happened to the person in
between (an unsubscribe, a suppression, a hard bounce, a withdrawn consent) is read
again right before the SMTP conversation: the message is never sent and never retried."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, insert, select, update
from tests.integration.test_nurture_send import activate, enrolled, enrollment, sends
from tests.notify_servers import smtp_server

from baton.domain.access import operator, system
from baton.notify.email import SmtpConfig
from baton.services.context import Context
from baton.services.nurture_links import unsubscribe_lead_in
from baton.services.nurture_send import run_nurture
from baton.services.person import erase_person
from baton.services.worker import tick
from baton.store.tables import leads, outbox, suppressions


@pytest.mark.parametrize(
    "change",
    ["unsubscribe", "suppressed", "hard_bounce", "no_consent", "erased"],
)
def test_a_planned_step_is_not_sent_after_the_person_opted_out(ctx: Context, change: str) -> None:
    version = activate(ctx)
    first, other = enrolled(ctx, version, 2)
    assert run_nurture(ctx).planned == 2  # both steps are in the outbox now
    lead_id = enrollment(ctx, first)["lead_id"]
    now = ctx.clock.now()
    if change == "erased":
        erase_person(ctx, f"p{lead_id}@example.com", actor=operator("ops"))
    with ctx.write() as connection:
        if change == "erased":
            pass
        elif change == "unsubscribe":
            unsubscribe_lead_in(connection, lead_id, now=now, actor=system("test"), source="t")
        elif change == "suppressed":
            connection.execute(
                insert(suppressions).values(
                    email_key=f"p{lead_id}@example.com",
                    reason="complaint",
                    created_at=now,
                    created_by="test",
                )
            )
        else:
            values: dict[str, Any] = (
                {"email_status": "hard_bounce"}
                if change == "hard_bounce"
                else {"consent": False, "consent_basis": None}
            )
            connection.execute(update(leads).where(leads.c.id == lead_id).values(**values))
    with smtp_server() as smtp:
        config = SmtpConfig(host=smtp.host, port=smtp.port)
        tick(ctx, smtp=config)
        tick(ctx, smtp=config)
    assert [m["To"] for m in smtp.messages] == [f"p{enrollment(ctx, other)['lead_id']}@example.com"]
    by_enrollment = {s["enrollment_id"]: s for s in sends(ctx)}
    assert by_enrollment[other]["status"] == "sent"
    with ctx.read() as connection:
        statuses = dict(
            connection.execute(
                select(outbox.c.status, func.count()).group_by(outbox.c.status)
            ).all()
        )
        errors = list(
            connection.execute(
                select(outbox.c.last_error).where(outbox.c.status == "failed")
            ).scalars()
        )
    if change == "erased":  # the erasure itself took the message out of the outbox
        assert statuses == {"sent": 1, "erased": 1}
    else:
        assert statuses == {"sent": 1, "failed": 1}
        assert errors[0].startswith("not sent: ")
        assert by_enrollment[first]["status"] == "failed"
