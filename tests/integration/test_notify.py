"""Email and webhook delivery against real servers on 127.0.0.1 (no mocks).

The servers come from ``tests/notify_servers.py``: an aiosmtpd SMTP server, an HTTP
receiver, a closed port and a port that never answers.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from http import HTTPStatus

import httpx
import pytest
from pydantic import SecretStr, ValidationError
from tests.notify_servers import (
    HttpReceiver,
    SmtpServer,
    closed_port,
    http_receiver,
    silent_server,
    smtp_server,
)

from baton.config import Settings
from baton.notify.email import (
    DeliveryError,
    OutgoingEmail,
    SmtpConfig,
    build_message,
    send_email,
)
from baton.notify.webhooks import (
    DELIVERY_HEADER,
    EVENT_HEADER,
    MAX_ATTEMPTS,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    AttemptResult,
    next_attempt_delay,
    post_webhook,
    sign,
    verify,
)

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
TIMESTAMP = int(NOW.timestamp())
SECRET = "whsec_test"
BODY = json.dumps({"event": "lead.handed_off", "lead_id": 42}).encode()


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with smtp_server() as server:
        yield server


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    with http_receiver() as server:
        yield server


def config_for(server: SmtpServer, **changes: object) -> SmtpConfig:
    return SmtpConfig(
        host=server.host, port=server.port, sender="baton@acme.test", timeout=5, **changes
    )  # type: ignore[arg-type]


def handoff_email(*to: str, **changes: object) -> OutgoingEmail:
    fields: dict[str, object] = {
        "to": to or ("rep@acme.test",),
        "subject": "New lead for you: Dana Müller (Lumen Analytics)",
        "text": "Dana Müller requested a demo.\nScore 87, grade A.",
        "html": "<p><b>Dana Müller</b> requested a demo.</p>",
        "message_id": "<outbox-42@baton>",
    }
    fields.update(changes)
    return OutgoingEmail(**fields)  # type: ignore[arg-type]


def assert_readable(message: str) -> None:
    """One sentence for an administrator: no Python exception names, no traceback."""
    assert message
    assert "Traceback" not in message
    assert not re.search(r"\b\w+(Error|Exception|Refused|Disconnected)\b", message), message
    assert "[Errno" not in message, message


# --- email ------------------------------------------------------------------------------


def test_email_arrives_with_subject_text_html_and_message_id(smtp: SmtpServer) -> None:
    email = handoff_email("rep@acme.test", "manager@acme.test", headers={"X-Baton-Outbox": "42"})

    send_email(config_for(smtp), email, now=NOW)

    [message] = smtp.messages
    assert message["Subject"] == "New lead for you: Dana Müller (Lumen Analytics)"
    assert message["From"] == "baton@acme.test"
    assert message["To"] == "rep@acme.test, manager@acme.test"
    assert message["Message-ID"] == "<outbox-42@baton>"
    assert message["X-Baton-Outbox"] == "42"
    assert parsedate_to_datetime(message["Date"]) == NOW
    assert message.get_content_type() == "multipart/alternative"
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None and html is not None
    assert text.get_content().rstrip("\n") == "Dana Müller requested a demo.\nScore 87, grade A."
    assert html.get_content().rstrip("\n") == "<p><b>Dana Müller</b> requested a demo.</p>"
    [envelope] = smtp.envelopes
    assert envelope.mail_from == "baton@acme.test"
    assert envelope.rcpt_tos == ("rep@acme.test", "manager@acme.test")


def test_plain_text_email_has_a_generated_message_id(smtp: SmtpServer) -> None:
    send_email(config_for(smtp), handoff_email(html=None, message_id=None))

    [message] = smtp.messages
    assert message.get_content_type() == "text/plain"
    assert re.fullmatch(r"<[^<>@\s]+@acme\.test>", message["Message-ID"])
    sent_at = parsedate_to_datetime(message["Date"])
    assert abs(sent_at - datetime.now(UTC)) < timedelta(minutes=1)


def test_a_retried_email_carries_the_same_message_id(smtp: SmtpServer) -> None:
    config = config_for(smtp)
    send_email(config, handoff_email(message_id="outbox-7@baton"))
    send_email(config, handoff_email(message_id="outbox-7@baton"))

    assert [m["Message-ID"] for m in smtp.messages] == ["<outbox-7@baton>"] * 2


def test_recipient_refused_with_550_is_permanent() -> None:
    with smtp_server(refuse={"gone@acme.test": "550 5.1.1 No such user"}) as smtp:
        with pytest.raises(DeliveryError) as caught:
            send_email(config_for(smtp), handoff_email("gone@acme.test"))

        assert smtp.messages == []
    error = caught.value
    assert error.permanent
    assert error.refused == {"gone@acme.test": (550, "5.1.1 No such user")}
    assert str(error) == (
        f"SMTP server 127.0.0.1:{smtp.port} refused every recipient: "
        "gone@acme.test (550 5.1.1 No such user)"
    )
    assert_readable(str(error))


def test_recipient_refused_with_450_is_transient() -> None:
    refuse = {"busy@acme.test": "450 4.2.1 Mailbox busy, try later"}
    with smtp_server(refuse=refuse) as smtp, pytest.raises(DeliveryError) as caught:
        send_email(config_for(smtp), handoff_email("busy@acme.test"))

    assert not caught.value.permanent
    assert "450 4.2.1 Mailbox busy" in str(caught.value)


def test_partly_refused_recipients_are_permanent_so_nobody_gets_it_twice() -> None:
    with smtp_server(refuse={"gone@acme.test": "550 5.1.1 No such user"}) as smtp:
        with pytest.raises(DeliveryError) as caught:
            send_email(config_for(smtp), handoff_email("rep@acme.test", "gone@acme.test"))

        assert [e.rcpt_tos for e in smtp.envelopes] == [("rep@acme.test",)]
    error = caught.value
    assert error.permanent
    assert error.refused == {"gone@acme.test": (550, "5.1.1 No such user")}
    assert "accepted the email for rep@acme.test but refused gone@acme.test" in str(error)
    assert_readable(str(error))


@pytest.mark.parametrize(
    ("reply", "permanent"),
    [("554 5.6.0 Message rejected as spam", True), ("451 4.3.0 Try again later", False)],
)
def test_message_refused_at_data(reply: str, permanent: bool) -> None:
    with smtp_server(data_reply=reply) as smtp, pytest.raises(DeliveryError) as caught:
        send_email(config_for(smtp), handoff_email())

    assert caught.value.permanent is permanent
    assert caught.value.smtp_code == int(reply[:3])
    assert str(caught.value) == f"SMTP server 127.0.0.1:{smtp.port} refused the email: {reply}"


def test_closed_port_is_a_transient_connection_error() -> None:
    port = closed_port()
    with pytest.raises(DeliveryError) as caught:
        send_email(SmtpConfig(host="127.0.0.1", port=port, timeout=5), handoff_email())

    error = caught.value
    assert not error.permanent
    assert error.smtp_code is None
    assert str(error) == f"cannot reach SMTP server 127.0.0.1:{port}: Connection refused"
    assert_readable(str(error))


def test_server_that_never_answers_is_a_transient_timeout() -> None:
    with silent_server() as (host, port), pytest.raises(DeliveryError) as caught:
        send_email(SmtpConfig(host=host, port=port, timeout=0.3), handoff_email())

    assert not caught.value.permanent
    assert str(caught.value) == (
        f"SMTP server {host}:{port} gave no answer within 0.3 seconds while connecting"
    )


@pytest.mark.parametrize(
    ("changes", "missing"),
    [({"starttls": True}, "STARTTLS"), ({"username": "baton", "password": "pw"}, "AUTH")],
)
def test_server_without_what_the_settings_ask_for_is_permanent(
    smtp: SmtpServer, changes: dict[str, object], missing: str
) -> None:
    with pytest.raises(DeliveryError) as caught:
        send_email(config_for(smtp, **changes), handoff_email())

    assert caught.value.permanent
    assert missing in str(caught.value)
    assert "does not support what the settings ask for" in str(caught.value)
    assert smtp.messages == []


def test_header_injection_is_refused_before_connecting(smtp: SmtpServer) -> None:
    email = handoff_email(subject="Hello\r\nBcc: everyone@acme.test")

    with pytest.raises(ValueError, match="linefeed or carriage return"):
        build_message(config_for(smtp), email)
    with pytest.raises(DeliveryError) as caught:
        send_email(config_for(smtp), email)

    assert caught.value.permanent
    assert str(caught.value).startswith("the email cannot be built: ")
    assert smtp.messages == []


def test_message_id_gets_angle_brackets() -> None:
    message = build_message(SmtpConfig(host="x"), handoff_email(message_id=" outbox-9@baton "))
    assert message["Message-ID"] == "<outbox-9@baton>"


def test_outgoing_email_is_checked() -> None:
    with pytest.raises(ValueError, match="at least one recipient"):
        handoff_email(to=())
    with pytest.raises(TypeError, match="not one string"):
        handoff_email(to="rep@acme.test")
    with pytest.raises(ValueError, match="cannot be overridden"):
        handoff_email(headers={"subject": "sneaky"})


def test_smtp_config_from_settings() -> None:
    settings = Settings(
        env="test",
        smtp_host="mail.acme.test",
        smtp_port=587,
        smtp_from="leads@acme.test",
        smtp_username="baton",
        smtp_password=SecretStr("s3cret"),
        smtp_starttls=True,
        smtp_timeout_seconds=3.5,
    )

    config = SmtpConfig.from_settings(settings)

    assert config == SmtpConfig(
        host="mail.acme.test",
        port=587,
        sender="leads@acme.test",
        username="baton",
        password="s3cret",
        starttls=True,
        ssl=False,
        timeout=3.5,
    )
    assert "s3cret" not in repr(config)
    assert SmtpConfig.from_settings(Settings(env="test")) == SmtpConfig(host="localhost")


def test_ssl_and_starttls_together_are_refused() -> None:
    with pytest.raises(ValidationError, match="not both"):
        Settings(env="test", smtp_ssl=True, smtp_starttls=True)
    with pytest.raises(ValueError, match="not both"):
        SmtpConfig(host="x", ssl=True, starttls=True)


# --- webhook signatures -----------------------------------------------------------------


def test_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    # Computed independently: printf '1772442000.{"lead_id": 42}' \
    #   | openssl dgst -sha256 -hmac whsec_test
    assert sign(SECRET, 1772442000, b'{"lead_id": 42}') == (
        "sha256=ab3a73d9097db09b0b351a9e036bd1f015e3886c5869c670960c24bdc1c934f8"
    )


def test_verify_accepts_fresh_authentic_requests_only() -> None:
    signature = sign(SECRET, TIMESTAMP, BODY)

    assert verify(SECRET, TIMESTAMP, BODY, signature, now=TIMESTAMP)
    assert verify(SECRET, TIMESTAMP, BODY, signature, now=TIMESTAMP + 300)
    assert verify(SECRET, TIMESTAMP, BODY, signature, now=TIMESTAMP - 300)  # clock skew
    assert not verify("other-secret", TIMESTAMP, BODY, signature, now=TIMESTAMP)
    assert not verify(SECRET, TIMESTAMP, BODY + b" ", signature, now=TIMESTAMP)
    assert not verify(SECRET, TIMESTAMP + 1, BODY, signature, now=TIMESTAMP)
    assert not verify(SECRET, TIMESTAMP, BODY, signature, now=TIMESTAMP + 301)  # replay
    assert not verify(SECRET, TIMESTAMP, BODY, signature, now=TIMESTAMP - 301)
    assert verify(SECRET, TIMESTAMP, BODY, signature, now=TIMESTAMP + 900, tolerance_seconds=900)
    assert not verify(SECRET, TIMESTAMP, BODY, signature.removeprefix("sha256="), now=TIMESTAMP)
    assert not verify(SECRET, TIMESTAMP, BODY, "sha256=é", now=TIMESTAMP)
    assert not verify(SECRET, TIMESTAMP, BODY, "", now=TIMESTAMP)


# --- webhook delivery -------------------------------------------------------------------


def deliver(url: str, **changes: object) -> AttemptResult:
    arguments: dict[str, object] = {
        "event": "lead.handed_off",
        "body": BODY,
        "delivery_id": "dlv-42",
        "timestamp": TIMESTAMP,
        "timeout": 5.0,
    }
    arguments.update(changes)
    return post_webhook(url, SECRET, **arguments)  # type: ignore[arg-type]


def test_webhook_arrives_signed_with_every_header(receiver: HttpReceiver) -> None:
    result = deliver(receiver.url)

    assert result.ok
    assert result.status_code == 200
    assert result.error is None
    assert not result.retryable
    assert result.duration_ms > 0
    [request] = receiver.requests
    assert request.method == "POST"
    assert request.path == "/webhook"
    assert request.body == BODY
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["x-baton-event"] == "lead.handed_off"
    assert request.headers[EVENT_HEADER] == "lead.handed_off"
    assert request.headers[DELIVERY_HEADER] == "dlv-42"
    assert request.headers[TIMESTAMP_HEADER] == str(TIMESTAMP)
    assert request.headers["User-Agent"].startswith("Baton-Webhooks/")
    # What a receiver does with what it got:
    timestamp = int(request.headers[TIMESTAMP_HEADER])
    signature = request.headers[SIGNATURE_HEADER]
    assert verify(SECRET, timestamp, request.body, signature, now=TIMESTAMP + 2)
    assert not verify("wrong-secret", timestamp, request.body, signature, now=TIMESTAMP + 2)
    assert not verify(SECRET, timestamp, request.body[:-1] + b"7", signature, now=TIMESTAMP)
    assert not verify(SECRET, timestamp, request.body, signature, now=TIMESTAMP + 3600)


@pytest.mark.parametrize("status", [200, 201, 202, 204])
def test_every_2xx_is_delivered(receiver: HttpReceiver, status: int) -> None:
    receiver.status = status
    result = deliver(receiver.url)
    assert (result.ok, result.status_code, result.retryable) == (True, status, False)


@pytest.mark.parametrize(
    ("status", "retryable"),
    [
        (500, True),
        (502, True),
        (503, True),
        (504, True),
        (429, True),
        (408, True),
        (400, False),
        (401, False),
        (403, False),
        (404, False),
        (410, False),
        (422, False),
    ],
)
def test_failed_status_says_whether_to_retry(
    receiver: HttpReceiver, status: int, retryable: bool
) -> None:
    receiver.status = status
    receiver.body = b'{"error":\n  "lead schema changed"}'

    result = deliver(receiver.url)

    assert not result.ok
    assert result.status_code == status
    assert result.retryable is retryable
    assert result.error is not None
    assert result.error == f"HTTP {status} {HTTPStatus(status).phrase}"
    assert_readable(result.error)


def test_the_reply_body_is_never_kept(receiver: HttpReceiver) -> None:
    # What an internal service answers is exactly what a forged URL would try to read.
    receiver.status = 500
    receiver.body = b"aws_secret_access_key=wJalrXUtnFEMI " + b"x" * 100_000
    result = deliver(receiver.url)
    assert result.error == "HTTP 500 Internal Server Error"


def test_retry_after_is_reported(receiver: HttpReceiver) -> None:
    receiver.status = 429
    receiver.headers = {"Retry-After": "120"}
    assert deliver(receiver.url).retry_after_seconds == 120.0

    receiver.status = 503
    receiver.headers = {"Retry-After": "Mon, 02 Mar 2026 09:10:00 GMT"}
    assert deliver(receiver.url).retry_after_seconds == 600.0

    receiver.status = 500
    receiver.headers = {}
    assert deliver(receiver.url).retry_after_seconds is None


def test_redirects_are_not_followed(receiver: HttpReceiver) -> None:
    receiver.status = 301
    receiver.headers = {"Location": receiver.url_for("/moved")}

    with httpx.Client(follow_redirects=True, timeout=30) as following:
        for client in (None, following):
            result = deliver(receiver.url, client=client)
            assert not result.ok
            assert result.status_code == 301
            assert not result.retryable
            assert result.error == (
                "HTTP 301 Moved Permanently: redirects are not followed; update the webhook URL"
            )
    assert [r.path for r in receiver.requests] == ["/webhook", "/webhook"]


def test_a_shared_client_is_used_and_left_open(receiver: HttpReceiver) -> None:
    with httpx.Client(timeout=30) as client:
        assert deliver(receiver.url, client=client).ok
        assert deliver(receiver.url, client=client).ok
        assert not client.is_closed
    assert len(receiver.requests) == 2


def test_connection_refused_is_retryable() -> None:
    result = deliver(f"http://127.0.0.1:{closed_port()}/webhook")

    assert not result.ok
    assert result.status_code is None
    assert result.retryable
    assert result.error == "could not connect: Connection refused"


def test_timeout_is_retryable(receiver: HttpReceiver) -> None:
    receiver.delay = 10

    result = deliver(receiver.url, timeout=0.3)

    assert not result.ok
    assert result.status_code is None
    assert result.retryable
    assert result.error == "timed out after 0.3 s waiting for the answer"
    assert result.duration_ms < 5000
    assert len(receiver.requests) == 1


def test_silent_server_times_out() -> None:
    with silent_server() as (host, port):
        result = deliver(f"http://{host}:{port}/webhook", timeout=0.3)
    assert result.retryable
    assert result.error is not None and result.error.startswith("timed out after 0.3 s")


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("ftp://127.0.0.1/webhook", "it must start with http:// or https://"),
        ("not a url", "it must start with http:// or https://"),
        ("http://", "it has no host"),
        ("http://127.0.0.1:99999/webhook", "its port is out of range"),
    ],
)
def test_unusable_urls_fail_without_retry(url: str, problem: str) -> None:
    result = deliver(url)
    assert not result.ok
    assert not result.retryable
    assert result.error == f"unusable webhook URL {url!r}: {problem}"


def test_header_values_must_be_single_lines(receiver: HttpReceiver) -> None:
    with pytest.raises(ValueError, match="single line"):
        deliver(receiver.url, event="lead.handed_off\r\nX-Evil: 1")
    assert receiver.requests == []


# --- backoff ----------------------------------------------------------------------------


def test_backoff_doubles_from_the_base() -> None:
    delays = [next_attempt_delay(n) for n in range(1, MAX_ATTEMPTS + 1)]
    assert [d.total_seconds() for d in delays] == [30, 60, 120, 240, 480, 960, 1920, 3840]
    assert MAX_ATTEMPTS == 8


def test_backoff_is_capped() -> None:
    assert next_attempt_delay(10) == timedelta(seconds=30 * 512)  # 4 h 16 min < 6 h
    assert next_attempt_delay(11) == timedelta(hours=6)  # 8 h 32 min, capped
    assert next_attempt_delay(10_000) == timedelta(hours=6)
    assert next_attempt_delay(3, base_seconds=10, cap_seconds=25) == timedelta(seconds=25)
    assert next_attempt_delay(2, base_seconds=1.5) == timedelta(seconds=3)
    with pytest.raises(ValueError, match="from 1"):
        next_attempt_delay(0)
