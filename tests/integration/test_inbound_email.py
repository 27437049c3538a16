"""Email into Baton on SQLite and PostgreSQL: real messages sent with :mod:`smtplib` to
the inbound SMTP listener (in this process, on a free port) become hand-raises that
route to a rep, replies thread to their lead, bounces mark the address, and a
redelivered message records nothing twice. Every message is in the intake log first.

Contract: ``contracts/example.yaml`` (``contact_sales`` and ``email_reply`` are
hand-raises; a lead from no listed country goes to team ``na``). Time: the ``clock``
fixture, Monday 2026-03-02 09:00 UTC, inside the rep's working hours.
"""

from __future__ import annotations

import smtplib
from collections.abc import Iterator, Sequence
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, insert, select, text
from tests.email_messages import SALES, dsn, html_only, new_email, out_of_office, reply

from baton.domain.access import operator
from baton.domain.reps import RepCreate, TeamCreate
from baton.inbound_smtp import ListenerConfig, ListenerStats, listening
from baton.services.context import Context
from baton.services.contracts import activate_contract, approve_contract, create_contract
from baton.services.delivery import message_id_of
from baton.services.email_threads import HARD_BOUNCE, SOFT_BOUNCE
from baton.services.handoffs import list_handoffs
from baton.services.inbound_email import (
    SmtpReply,
    ensure_email_endpoint,
    receive_message,
)
from baton.services.intake import intake_log, retry
from baton.services.leads import capture_lead, get_lead
from baton.services.reps import create_rep, create_team
from baton.store.tables import (
    activities,
    intake_items,
    intake_requests,
    leads,
    nurture_enrollments,
    nurture_sends,
    outbox,
    suppressions,
)

EXAMPLE = (Path(__file__).parents[2] / "contracts" / "example.yaml").read_text()
OPS = operator("ops")
REP = "riley@lumen.example"
ENDPOINT = "sales-mail"


def sales_floor(ctx: Context) -> None:
    version = create_contract(ctx, EXAMPLE, actor=operator("maria")).version
    approve_contract(ctx, version, role="marketing", actor=operator("maria"))
    approve_contract(ctx, version, role="sales", actor=operator("sam"))
    activate_contract(ctx, version, actor=operator("maria"))
    create_team(ctx, TeamCreate(name="na"), actor=operator("sam"))
    create_rep(ctx, RepCreate(email=REP, name="Riley", team="na"), actor=operator("sam"))


@pytest.fixture
def stats() -> ListenerStats:
    return ListenerStats()


@pytest.fixture
def smtp(ctx: Context, stats: ListenerStats) -> Iterator[smtplib.SMTP]:
    """A client connected to a listener for sales@ storing through ``ctx``."""
    target = ensure_email_endpoint(ctx, ENDPOINT, actor=OPS, max_bytes=200_000)

    def deliver(content: bytes, mail_from: str, rcpt: Sequence[str], peer: str | None) -> SmtpReply:
        return receive_message(
            ctx, ENDPOINT, content, mail_from=mail_from, rcpt_tos=rcpt, peer=peer
        )

    config = ListenerConfig(
        host="127.0.0.1", port=0, addresses=(SALES,), max_bytes=target.max_bytes
    )
    with (
        listening(config, deliver, stats=stats) as port,
        smtplib.SMTP("127.0.0.1", port, timeout=30) as client,
    ):
        yield client


def send(
    client: smtplib.SMTP, message: EmailMessage | bytes, sender: str = "dana@northwind.com"
) -> None:
    if isinstance(message, EmailMessage):
        client.send_message(message, from_addr=sender, to_addrs=[SALES])
    else:
        client.sendmail(sender, [SALES], message)


def count(ctx: Context, table: Any, *where: Any) -> int:
    with ctx.read() as connection:
        query = select(func.count()).select_from(table)
        return int(connection.execute(query.where(*where) if where else query).scalar_one())


def lead_id_of(ctx: Context, email: str) -> int | None:
    with ctx.read() as connection:
        return connection.execute(select(leads.c.id).where(leads.c.email_key == email)).scalar()


def activity_types(ctx: Context, lead_id: int) -> list[str]:
    with ctx.read() as connection:
        return list(
            connection.execute(
                select(activities.c.type)
                .where(activities.c.lead_id == lead_id)
                .order_by(activities.c.id)
            ).scalars()
        )


def last_email(ctx: Context) -> tuple[int, str]:
    """Id and Message-ID key of the newest handoff email in the outbox."""
    with ctx.read() as connection:
        row = connection.execute(
            select(outbox.c.id, outbox.c.message_key)
            .where(outbox.c.channel == "email", outbox.c.handoff_id.is_not(None))
            .order_by(outbox.c.id.desc())
            .limit(1)
        ).one()
    return int(row.id), str(row.message_key)


def emailed(ctx: Context, address: str) -> str:
    """Baton sent ``address`` an email (an outbox row to it): its Message-ID."""
    now = ctx.clock.now()
    with ctx.write() as connection:
        row = connection.execute(
            insert(outbox)
            .values(
                channel="email",
                topic="nurture",
                recipient=address,
                payload={},
                status="sent",
                next_attempt_at=now,
                created_at=now,
                sent_at=now,
            )
            .returning(outbox.c.id, outbox.c.message_key)
        ).one()
    return message_id_of(int(row.id), row.message_key)


def test_an_email_to_sales_is_a_hand_raise_routed_to_a_rep(
    ctx: Context, smtp: smtplib.SMTP
) -> None:
    sales_floor(ctx)
    send(smtp, new_email(attachment=("rfp.pdf", b"%PDF-1.7 " + b"z" * 3000)))
    lead_id = lead_id_of(ctx, "dana@northwind.com")
    assert lead_id is not None
    lead = get_lead(ctx, lead_id, actor=OPS)
    assert (lead.first_name, lead.last_name, lead.source) == ("Dana", "Reyes", "email")
    assert lead.stage == "mql"
    [handoff] = list_handoffs(ctx, lead_id=lead_id, actor=OPS)
    assert (handoff.rep_email, handoff.status) == (REP, "assigned")
    with ctx.read() as connection:
        row = connection.execute(
            select(activities.c.type, activities.c.properties).where(
                activities.c.lead_id == lead_id, activities.c.type == "contact_sales"
            )
        ).one()
        raw = connection.execute(select(intake_requests.c.body, intake_requests.c.status)).one()
    assert row.properties["subject"] == "Pricing for 40 seats"
    assert row.properties["attachments"] == [
        {"filename": "rfp.pdf", "content_type": "application/pdf", "size": 3009}
    ]
    assert "zzzz" not in str(row.properties)  # noted, not stored with the lead
    assert b"Pricing for 40 seats" in raw.body  # the raw message is in the intake log
    assert raw.status == "processed"


def test_redelivery_of_the_same_message_records_nothing_twice(
    ctx: Context, smtp: smtplib.SMTP
) -> None:
    message = new_email()
    send(smtp, message)
    send(smtp, message)
    lead_id = lead_id_of(ctx, "dana@northwind.com")
    assert lead_id is not None
    assert activity_types(ctx, lead_id).count("contact_sales") == 1
    assert count(ctx, intake_requests) == 2  # both deliveries are logged
    assert count(ctx, intake_items, intake_items.c.status == "duplicate") == 1


def test_html_only_mail_becomes_text(ctx: Context, smtp: smtplib.SMTP) -> None:
    send(smtp, html_only(), sender="lee.chen@acme.io")
    lead_id = lead_id_of(ctx, "lee.chen@acme.io")
    assert lead_id is not None
    with ctx.read() as connection:
        properties = connection.execute(
            select(activities.c.properties).where(
                activities.c.lead_id == lead_id, activities.c.type == "contact_sales"
            )
        ).scalar_one()
    assert properties["text"] == "Can we get a demo next week?\n\nThanks & regards,\nLee"


def test_a_reply_to_a_baton_email_lands_on_its_lead(ctx: Context, smtp: smtplib.SMTP) -> None:
    sales_floor(ctx)
    send(smtp, new_email())
    lead_id = lead_id_of(ctx, "dana@northwind.com")
    assert lead_id is not None
    outbox_id, key = last_email(ctx)  # the rep's "new lead" email
    # Dana answers from her private address: the reply still lands on her lead.
    send(smtp, reply(outbox_id, key=key), sender="dana.private@mailbox.example.org")
    assert activity_types(ctx, lead_id)[-1] == "email_reply"
    assert lead_id_of(ctx, "dana.private@mailbox.example.org") is None
    # The rep answering the notification is no hand-raise of the lead.
    send(
        smtp,
        reply(outbox_id, sender=f"Riley <{REP}>", message_id="<r2@lumen.example>", key=key),
        sender=REP,
    )
    assert activity_types(ctx, lead_id).count("email_reply") == 1
    assert lead_id_of(ctx, REP) is None


def test_a_bounce_marks_the_address_and_hand_raises_nothing(
    ctx: Context, smtp: smtplib.SMTP
) -> None:
    lead = capture_lead_for(ctx, "gone@northwind.com")
    emailed(ctx, "Gone@northwind.com")
    send(
        smtp,
        dsn("full@northwind.com", status="4.2.2", action="delayed", message_id="<b0@mx>"),
        sender="",
    )
    send(smtp, dsn("gone@northwind.com", message_id="<b1@mx>"), sender="")
    shown = get_lead(ctx, lead, actor=OPS)
    assert shown.email_status == HARD_BOUNCE
    assert shown.email_status_at is not None
    # A later soft bounce never hides the hard one.
    send(
        smtp,
        dsn("gone@northwind.com", status="4.4.1", action="delayed", message_id="<b2@mx>"),
        sender="",
    )
    assert get_lead(ctx, lead, actor=OPS).email_status == HARD_BOUNCE
    assert activity_types(ctx, lead) == ["captured"]
    assert lead_id_of(ctx, "mailer-daemon@mx.example.net") is None
    assert count(ctx, intake_items, intake_items.c.status == "processed") == 3


def test_a_soft_bounce_marks_soft(ctx: Context, smtp: smtplib.SMTP) -> None:
    lead = capture_lead_for(ctx, "full@northwind.com")
    original = emailed(ctx, "full@northwind.com")
    send(
        smtp,
        dsn("full@northwind.com", status="4.2.2", action="delayed", original_id=original),
        sender="",
    )
    assert get_lead(ctx, lead, actor=OPS).email_status == SOFT_BOUNCE


def test_a_forged_reply_id_threads_onto_no_one(ctx: Context, smtp: smtplib.SMTP) -> None:
    """#14 security review: ``<outbox-N@baton>`` was guessable, so anyone could thread a
    hand-raise onto the lead of any handoff email. Unkeyed and wrongly keyed ids are
    refused: the mail is the sender's own (captured by their address)."""
    sales_floor(ctx)
    send(smtp, new_email())
    dana = lead_id_of(ctx, "dana@northwind.com")
    assert dana is not None
    outbox_id, _ = last_email(ctx)
    for number, (forged, mid) in enumerate(((None, "<f1@evil.example>"), ("x" * 16, "<f2@e>"))):
        attacker = f"mallory{number}@evil.example"
        send(smtp, reply(outbox_id, key=forged, sender=attacker, message_id=mid), sender=attacker)
        assert lead_id_of(ctx, attacker) is not None  # a hand-raise of the attacker's own
    assert "email_reply" not in activity_types(ctx, dana)


def test_a_reply_to_a_nurture_email_lands_on_its_lead(ctx: Context, smtp: smtplib.SMTP) -> None:
    lead = capture_lead_for(ctx, "dana@northwind.com")
    original = emailed(ctx, "dana@northwind.com")
    outbox_id = int(original.split("-")[1].split(".")[0])
    now = ctx.clock.now()
    with ctx.write() as connection:
        enrollment = connection.execute(
            insert(nurture_enrollments)
            .values(
                lead_id=lead,
                sequence="not-ready",
                contract_version=1,
                status="active",
                reason="test",
                enrolled_at=now,
                enrolled_by="test",
            )
            .returning(nurture_enrollments.c.id)
        ).scalar_one()
        connection.execute(
            insert(nurture_sends).values(
                enrollment_id=enrollment,
                step=0,
                lead_id=lead,
                email="dana@northwind.com",
                template="check-in",
                outbox_id=outbox_id,
                message_id=original,
                status="sent",
                planned_at=now,
            )
        )
    key = original.split(".")[1].split("@")[0]
    send(smtp, reply(outbox_id, key=key), sender="dana.private@mailbox.example.org")
    assert activity_types(ctx, lead)[-1] == "email_reply"
    assert lead_id_of(ctx, "dana.private@mailbox.example.org") is None


def test_a_bounce_for_an_address_baton_never_emailed_is_ignored(
    ctx: Context, smtp: smtplib.SMTP
) -> None:
    """A forged bounce cannot mark any lead's address dead: only addresses Baton sent
    email to (here: none), and a hard one suppresses the address for nurture."""
    lead = capture_lead_for(ctx, "dana@northwind.com")
    send(smtp, dsn("dana@northwind.com", message_id="<fake@mx>"), sender="")
    assert get_lead(ctx, lead, actor=OPS).email_status is None
    assert count(ctx, suppressions) == 0
    # A bounce naming a real Baton email to someone else does not mark Dana either.
    other = emailed(ctx, "lee@acme.io")
    emailed(ctx, "dana@northwind.com")
    send(smtp, dsn("dana@northwind.com", message_id="<f2@mx>", original_id=other), sender="")
    assert get_lead(ctx, lead, actor=OPS).email_status is None
    # The genuine one does, and suppresses the address.
    send(smtp, dsn("dana@northwind.com", message_id="<b3@mx>"), sender="")
    assert get_lead(ctx, lead, actor=OPS).email_status == HARD_BOUNCE
    with ctx.read() as connection:
        reason = connection.execute(
            select(suppressions.c.reason).where(suppressions.c.email_key == "dana@northwind.com")
        ).scalar_one()
    assert reason == HARD_BOUNCE


def test_an_auto_reply_is_recorded_and_never_a_hand_raise(ctx: Context, smtp: smtplib.SMTP) -> None:
    sales_floor(ctx)
    lead = capture_lead_for(ctx, "dana@northwind.com")
    send(smtp, out_of_office())
    assert "contact_sales" not in activity_types(ctx, lead)
    assert list_handoffs(ctx, lead_id=lead, actor=OPS) == []
    with ctx.read() as connection:
        item = connection.execute(select(intake_items.c.status, intake_items.c.lead_id)).one()
    assert (item.status, item.lead_id) == ("processed", lead)


def test_a_message_it_cannot_read_is_kept_and_retried(ctx: Context, smtp: smtplib.SMTP) -> None:
    """No From address: the sender still hears 250 (it is stored), the log shows it
    failed, and a retry re-reads it (still failing: nothing is invented)."""
    message = EmailMessage()
    message["To"] = SALES
    message["Subject"] = "who am I"
    message["Message-ID"] = "<nofrom@x.example>"
    message.set_content("no sender here")
    send(smtp, message)
    [summary] = intake_log(ctx, actor=OPS)
    assert summary.status == "failed"
    report = retry(ctx, actor=OPS, all_failed=True)
    assert report is not None
    assert count(ctx, leads) == 0


def capture_lead_for(ctx: Context, email: str) -> int:
    from baton.domain.leads import LeadCreate

    data = LeadCreate.model_validate({"email": email, "company": "Northwind", "country": "US"})
    return capture_lead(ctx, data, actor=operator("form")).lead.id


# --- the door: recipients, size, database failure -------------------------------------


def test_mail_for_another_address_is_refused_no_relay(sqlite_ctx: Context) -> None:
    ctx = sqlite_ctx
    ensure_email_endpoint(ctx, ENDPOINT, actor=OPS)
    config = ListenerConfig(host="127.0.0.1", port=0, addresses=(SALES,), max_bytes=50_000)
    stats = ListenerStats()

    def deliver(content: bytes, mail_from: str, rcpt: Sequence[str], peer: str | None) -> SmtpReply:
        return receive_message(
            ctx, ENDPOINT, content, mail_from=mail_from, rcpt_tos=rcpt, peer=peer
        )

    with listening(config, deliver, stats=stats) as port, smtplib.SMTP("127.0.0.1", port) as client:
        code, _ = client.ehlo()
        assert code == 250
        assert client.has_extn("size") and client.esmtp_features["size"] == "50000"
        with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
            client.sendmail(
                "x@spam.example", ["victim@elsewhere.example"], b"Subject: relay\r\n\r\nhi"
            )
        assert refused.value.recipients["victim@elsewhere.example"][0] == 550
        big = new_email(attachment=("huge.pdf", b"a" * 60_000))
        with pytest.raises(smtplib.SMTPSenderRefused) as too_big:
            client.send_message(big, from_addr="dana@northwind.com", to_addrs=[SALES])
        assert too_big.value.smtp_code == 552
    assert count(ctx, intake_requests) == 0
    assert stats.refused_recipients == 1


def test_a_database_failure_answers_451_and_the_retry_is_stored(sqlite_ctx: Context) -> None:
    """The raw insert fails (a trigger plays a full disk): 451, nothing half-stored; the
    sending server's retry, once the database is back, is stored and processed."""
    ctx = sqlite_ctx
    ensure_email_endpoint(ctx, ENDPOINT, actor=OPS)
    with ctx.write() as connection:
        connection.execute(
            text(
                "CREATE TRIGGER refuse_mail BEFORE INSERT ON intake_requests "
                "BEGIN SELECT RAISE(ABORT, 'disk full'); END"
            )
        )
    config = ListenerConfig(host="127.0.0.1", port=0, addresses=(SALES,), max_bytes=100_000)

    def deliver(content: bytes, mail_from: str, rcpt: Sequence[str], peer: str | None) -> SmtpReply:
        return receive_message(
            ctx, ENDPOINT, content, mail_from=mail_from, rcpt_tos=rcpt, peer=peer
        )

    with listening(config, deliver) as port, smtplib.SMTP("127.0.0.1", port) as client:
        with pytest.raises(smtplib.SMTPDataError) as deferred:
            send(client, new_email())
        assert deferred.value.smtp_code == 451
        assert count(ctx, intake_requests) == 0
        with ctx.write() as connection:
            connection.execute(text("DROP TRIGGER refuse_mail"))
        send(client, new_email())
    assert count(ctx, intake_requests) == 1
    assert lead_id_of(ctx, "dana@northwind.com") is not None
