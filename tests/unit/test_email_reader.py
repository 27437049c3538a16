"""The email adapter on its own: messages as mail programs and mail servers write them,
read into intake items without a database."""

from __future__ import annotations

from datetime import UTC, datetime
from email.message import EmailMessage

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.email_messages import dsn, html_only, new_email, out_of_office, reply

from baton.domain.intake import Delivery, EndpointConfig, IntakeItem, PayloadRefused
from baton.integrations import adapter_for
from baton.integrations import email as reader

ENDPOINT = EndpointConfig(name="sales", kind="email", source="email")
RECEIVED = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def read(raw: bytes | EmailMessage, *, envelope_from: str = "someone@example.org") -> IntakeItem:
    body = raw.as_bytes() if isinstance(raw, EmailMessage) else raw
    delivery = Delivery(
        body=body,
        content_type="message/rfc822",
        headers={"x-envelope-from": envelope_from},
        query={},
        received_at=RECEIVED,
        method="SMTP",
    )
    [item] = reader.read(delivery, ENDPOINT)
    return item


def test_the_registry_finds_the_email_adapter() -> None:
    assert adapter_for("email") is reader


def test_a_new_email_is_a_contact_sales_hand_raise_of_its_sender() -> None:
    item = read(new_email())
    assert item.upstream_id == "<7f3a9c.dana@northwind.com>"
    assert item.lead == {"email": "dana@northwind.com", "first_name": "Dana", "last_name": "Reyes"}
    assert item.event_type == "contact_sales"
    assert item.occurred_at == RECEIVED
    assert item.properties["subject"] == "Pricing for 40 seats"
    assert item.properties["kind"] == "new"
    # The plain-text part wins over the HTML alternative.
    assert item.properties["text"] == "Hello,\n\nwe would like a quote for 40 seats.\n\nDana"
    assert item.properties["sent_at"] == "2026-03-02T08:55:00+00:00"


def test_the_endpoints_event_type_replaces_the_default() -> None:
    endpoint = EndpointConfig(name="demo", kind="email", source="email", event_type="demo_request")
    delivery = Delivery(
        body=new_email().as_bytes(),
        content_type="message/rfc822",
        headers={},
        query={},
        received_at=RECEIVED,
    )
    assert reader.read(delivery, endpoint)[0].event_type == "demo_request"


def test_html_only_mail_is_read_as_its_visible_text() -> None:
    item = read(html_only())
    assert item.properties["text"] == "Can we get a demo next week?\n\nThanks & regards,\nLee"
    assert "alert" not in item.properties["text"]
    assert "color" not in item.properties["text"]
    assert item.lead == {"email": "lee.chen@acme.io", "first_name": "Lee", "last_name": "Chen"}


def test_an_attachment_is_noted_never_kept() -> None:
    pdf = b"%PDF-1.7 " + b"x" * 4000
    item = read(new_email(attachment=("requirements.pdf", pdf)))
    assert item.properties["attachments"] == [
        {"filename": "requirements.pdf", "content_type": "application/pdf", "size": len(pdf)}
    ]
    assert item.properties["attachment_count"] == 1
    assert "xxxx" not in repr(item.properties)


def test_long_text_is_cut_with_a_mark() -> None:
    item = read(new_email(text="word " * 5000, html=None))
    text = item.properties["text"]
    assert len(text) == reader.MAX_TEXT_CHARS
    assert text.endswith("…")


@pytest.mark.parametrize("via_references", [False, True])
def test_a_reply_to_a_baton_email_names_its_outbox_row(via_references: bool) -> None:
    item = read(reply(42, via_references=via_references))
    assert item.event_type == "email_reply"
    assert item.properties["kind"] == "reply"
    assert item.properties["outbox_ids"] == [42]
    assert item.properties["outbox_refs"] == ["42.k3yOfTheRowXyz12"]  # checked by the service
    assert item.upstream_id == "<reply.1@mailbox.example.org>"
    # The sender's own address travels with the item; the service picks the lead.
    assert item.lead["email"] == "dana.private@mailbox.example.org"


def test_an_unkeyed_baton_id_is_read_but_carries_no_ref() -> None:
    item = read(reply(42, key=None))
    assert item.properties["outbox_ids"] == [42]
    assert item.properties["outbox_refs"] == []  # nothing the service could believe


def test_a_reply_to_someone_elses_message_is_a_new_email() -> None:
    message = new_email()
    message["In-Reply-To"] = "<abc@elsewhere.example>"
    item = read(message)
    assert item.properties["kind"] == "new"
    assert "outbox_ids" not in item.properties
    assert item.properties["references"] == ["<abc@elsewhere.example>"]


def test_a_hard_bounce_names_the_address_and_no_lead() -> None:
    item = read(dsn("gone@northwind.com"), envelope_from="")
    assert item.event_type is None
    assert item.lead == {}
    assert item.properties["kind"] == "bounce"
    assert item.properties["bounced"] == [
        {
            "address": "gone@northwind.com",
            "action": "failed",
            "status": "5.1.1",
            "hard": True,
            "diagnostic": "smtp; 550 5.1.1 <gone@northwind.com>: Recipient address "
            "rejected: User unknown",
        }
    ]
    assert item.properties["outbox_ids"] == [7]  # the returned Baton email
    assert item.properties["outbox_refs"] == ["7.k3yOfTheRowXyz12"]


def test_a_delayed_delivery_is_a_soft_bounce() -> None:
    item = read(dsn("full@northwind.com", status="4.2.2", action="delayed"))
    [bounced] = item.properties["bounced"]
    assert (bounced["hard"], bounced["status"]) == (False, "4.2.2")


def test_a_delivered_report_bounces_nothing() -> None:
    item = read(dsn("ok@northwind.com", status="2.0.0", action="delivered"))
    assert item.properties["bounced"] == []


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("Auto-Submitted", "auto-replied"),
        ("Auto-Submitted", "auto-generated"),
        ("X-Autoreply", "yes"),
        ("Precedence", "bulk"),
    ],
)
def test_automatic_messages_are_never_hand_raises(header: str, value: str) -> None:
    message = new_email(subject="Hello")
    message[header] = value
    item = read(message)
    assert item.properties["kind"] == "automatic"
    assert item.event_type is None


def test_out_of_office_and_null_sender_are_automatic() -> None:
    assert read(out_of_office()).event_type is None
    assert read(new_email(subject="Out of Office: back Monday")).event_type is None
    assert read(new_email(), envelope_from="<>").properties["kind"] == "automatic"
    assert read(new_email(), envelope_from="").properties["kind"] == "automatic"
    notice = new_email(sender="Shop <no-reply@shop.example>")
    assert read(notice).properties["kind"] == "automatic"


def test_auto_submitted_no_is_a_person() -> None:
    message = new_email()
    message["Auto-Submitted"] = "no"
    assert read(message).event_type == "contact_sales"


def test_a_form_mailer_sending_as_noreply_names_the_visitor_in_reply_to() -> None:
    message = new_email(sender="Website <noreply@lumen.example>")
    message["Reply-To"] = "Ana Lima <ana@lima.example>"
    item = read(message)
    assert item.lead == {"email": "ana@lima.example", "first_name": "Ana", "last_name": "Lima"}
    assert item.event_type == "contact_sales"


def test_a_message_without_message_id_gets_a_digest_upstream_id() -> None:
    raw = new_email(message_id=None).as_bytes()
    first, second = read(raw), read(raw)
    assert first.upstream_id is not None and first.upstream_id.startswith("sha256:")
    assert first.upstream_id == second.upstream_id


def test_a_message_without_sender_is_refused_naming_from() -> None:
    message = EmailMessage()
    message["To"] = "sales@example.com"
    message["Subject"] = "no sender"
    message.set_content("hi")
    with pytest.raises(PayloadRefused) as refused:
        read(message)
    assert refused.value.problems[0].loc == "from"


def test_an_empty_body_is_refused() -> None:
    with pytest.raises(PayloadRefused):
        read(b"   \r\n")


@pytest.mark.parametrize(
    ("display", "expected"),
    [
        ("Dana Reyes", ("Dana", "Reyes")),
        ("Reyes, Dana", ("Dana", "Reyes")),
        ("Dana M. Reyes", ("Dana M.", "Reyes")),
        ("Dana", ("Dana", None)),
        ("", (None, None)),
        ("dana@northwind.com", (None, None)),
    ],
)
def test_display_names_split_into_first_and_last(
    display: str, expected: tuple[str | None, str | None]
) -> None:
    assert reader.split_name(display) == expected


def test_encoded_headers_and_non_ascii_text_are_decoded() -> None:
    message = new_email(sender="=?utf-8?q?Jos=C3=A9_N=C3=BA=C3=B1ez?= <jose@ejemplo.es>", html=None)
    del message["Subject"]
    message["Subject"] = "=?utf-8?b?w5xiZXIgZGllIFByZWlzZQ==?="
    message.set_content("Grüße aus München", charset="utf-8")
    item = read(message)
    assert item.lead["first_name"] == "José"
    assert item.lead["last_name"] == "Núñez"
    assert item.properties["subject"] == "Über die Preise"
    assert item.properties["text"] == "Grüße aus München"


@given(st.text(max_size=300))
def test_html_to_text_never_keeps_script_content(visible: str) -> None:
    html = f"<div>{visible}</div><script>SECRET_SCRIPT()</script><style>.SECRET{{}}</style>"
    text = reader.html_to_text(html)
    assert "SECRET_SCRIPT" not in text
    assert ".SECRET" not in text


@given(st.binary(max_size=2000))
def test_any_bytes_are_read_or_refused_never_a_crash(raw: bytes) -> None:
    delivery = Delivery(
        body=raw, content_type="message/rfc822", headers={}, query={}, received_at=RECEIVED
    )
    try:
        items = reader.read(delivery, ENDPOINT)
    except PayloadRefused:
        return
    assert len(items) == 1
    assert items[0].upstream_id
