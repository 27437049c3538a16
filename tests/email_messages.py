"""Email messages for the inbound email tests, built the way mail programs send them.

* :func:`new_email`: a person writing to sales@ (plain text and HTML alternatives,
  optional attachment);
* :func:`html_only`: a message with only an HTML body (script and style inside);
* :func:`reply`: an answer to a Baton email (``In-Reply-To: <outbox-N.KEY@baton>``);
* :func:`dsn`: a delivery status notification as Postfix writes it (RFC 3464), with
  the returned message's headers;
* :func:`out_of_office`: an auto-reply (``Auto-Submitted: auto-replied``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime

SALES = "sales@example.com"
WHEN = datetime(2026, 3, 2, 8, 55, tzinfo=UTC)


def new_email(
    *,
    sender: str = '"Dana Reyes" <dana@northwind.com>',
    subject: str = "Pricing for 40 seats",
    text: str = "Hello,\n\nwe would like a quote for 40 seats.\n\nDana",
    message_id: str | None = "<7f3a9c.dana@northwind.com>",
    html: str | None = "<p>Hello,</p><p>we would like a quote for <b>40 seats</b>.</p>",
    attachment: tuple[str, bytes] | None = None,
) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = SALES
    message["Subject"] = subject
    message["Date"] = format_datetime(WHEN)
    if message_id:
        message["Message-ID"] = message_id
    message.set_content(text)
    if html is not None:
        message.add_alternative(html, subtype="html")
    if attachment is not None:
        name, data = attachment
        message.add_attachment(data, maintype="application", subtype="pdf", filename=name)
    return message


def html_only(message_id: str = "<html.only@acme.io>") -> EmailMessage:
    message = EmailMessage()
    message["From"] = "Lee Chen <lee.chen@acme.io>"
    message["To"] = SALES
    message["Subject"] = "Demo please"
    message["Message-ID"] = message_id
    message.set_content(
        "<html><head><title>t</title><style>p { color: red }</style>"
        "<script>alert('x')</script></head><body><div>Can we get a <b>demo</b>"
        "&nbsp;next week?</div><p>Thanks &amp; regards,<br>Lee</p></body></html>",
        subtype="html",
    )
    return message


def reply(
    outbox_id: int,
    *,
    sender: str = "Dana <dana.private@mailbox.example.org>",
    message_id: str = "<reply.1@mailbox.example.org>",
    via_references: bool = False,
    key: str | None = "k3yOfTheRowXyz12",
) -> EmailMessage:
    """A reply to Baton's email ``<outbox-N.KEY@baton>`` (``key=None``: the unkeyed
    ``<outbox-N@baton>`` of mail from before keys, or a guess)."""
    original = f"<outbox-{outbox_id}.{key}@baton>" if key else f"<outbox-{outbox_id}@baton>"
    message = EmailMessage()
    message["From"] = sender
    message["To"] = SALES
    message["Subject"] = "Re: New lead for you"
    message["Message-ID"] = message_id
    if via_references:
        message["References"] = f"<older@x.example> {original}"
    else:
        message["In-Reply-To"] = original
        message["References"] = original
    message.set_content("Yes, call me tomorrow at 10.\n\n> earlier text")
    return message


def out_of_office(message_id: str = "<ooo.1@northwind.com>") -> bytes:
    message = EmailMessage()
    message["From"] = "Dana Reyes <dana@northwind.com>"
    message["To"] = SALES
    message["Subject"] = "Automatic reply: Pricing"
    message["Message-ID"] = message_id
    message["Auto-Submitted"] = "auto-replied"
    message.set_content("I am out of the office until Monday.")
    return message.as_bytes()


def dsn(
    recipient: str,
    *,
    status: str = "5.1.1",
    action: str = "failed",
    message_id: str = "<20260302085501.4F2A1@mx.example.net>",
    original_id: str = "<outbox-7.k3yOfTheRowXyz12@baton>",
) -> bytes:
    """A Postfix bounce: multipart/report with the human part, the delivery-status
    part and the returned message's headers."""
    boundary = "4F2A1.1772441701/mx.example.net"
    diagnostic = (
        "smtp; 550 5.1.1 <{r}>: Recipient address rejected: User unknown"
        if status.startswith("5")
        else "smtp; 452 4.2.2 <{r}>: Mailbox full"
    ).format(r=recipient)
    text = f"""Return-Path: <>
Date: Mon,  2 Mar 2026 08:55:01 +0000 (UTC)
From: MAILER-DAEMON@mx.example.net (Mail Delivery System)
Subject: Undelivered Mail Returned to Sender
To: {SALES}
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
\tboundary="{boundary}"
Content-Transfer-Encoding: 8bit
Message-Id: {message_id}

This is a MIME-encapsulated message.

--{boundary}
Content-Description: Notification
Content-Type: text/plain; charset=us-ascii

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients.

<{recipient}>: host mx.northwind.com said: {diagnostic.partition("; ")[2]}

--{boundary}
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.net
X-Postfix-Queue-ID: 4F2A1
Arrival-Date: Mon,  2 Mar 2026 08:55:00 +0000 (UTC)

Final-Recipient: rfc822; {recipient}
Original-Recipient: rfc822;{recipient}
Action: {action}
Status: {status}
Remote-MTA: dns; mx.northwind.com
Diagnostic-Code: {diagnostic}

--{boundary}
Content-Description: Undelivered Message Headers
Content-Type: text/rfc822-headers

From: Baton <baton@example.com>
To: {recipient}
Subject: Your guide
Message-ID: {original_id}

--{boundary}--
"""
    return text.replace("\n", "\r\n").encode("ascii")
