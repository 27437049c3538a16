"""Email delivery over SMTP: build one message, send it, say whether a retry can help.

:func:`send_email` either returns (the server accepted the message for every
recipient) or raises :class:`DeliveryError`, whose ``permanent`` flag tells the outbox
what to do next:

* ``permanent=True``: trying again cannot help. The server answered with a 5xx code
  (unknown recipient, sender refused, message rejected, login refused), the server
  lacks something the settings ask for (STARTTLS, AUTH), the message cannot be built,
  or some recipients got it and others were refused (a retry would send it twice to
  the ones who got it).
* ``permanent=False``: try again later. The server answered with a 4xx code
  (greylisting, mailbox busy, rate limit), closed the connection, could not be reached,
  or timed out.

The message of the error is one readable sentence naming the server and its answer,
fit to show an administrator; it never contains a Python exception name.

Every message carries a ``Message-ID``. The outbox passes a stable one per outbox row
(e.g. ``<outbox-42@baton>``) so that a message sent twice (the server took it but the
connection broke before its answer arrived) is recognisable as one message.
"""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from baton.config import Settings

RESERVED_HEADERS = frozenset(
    {
        "from",
        "to",
        "cc",
        "bcc",
        "subject",
        "date",
        "message-id",
        "mime-version",
        "content-type",
        "content-transfer-encoding",
    }
)
"""Headers that :func:`build_message` sets itself; ``OutgoingEmail.headers`` may not."""


@dataclass(frozen=True)
class SmtpConfig:
    """Where and how to send email (``BATON_SMTP_*`` settings).

    ``ssl`` connects over TLS from the start (usually port 465); ``starttls`` connects
    in plain text and upgrades (usually port 587); at most one of them may be set.
    ``timeout`` is in seconds and applies to the connection and to each command.
    """

    host: str
    port: int = 25
    sender: str = "baton@localhost"
    username: str | None = None
    password: str | None = None
    starttls: bool = False
    ssl: bool = False
    timeout: float = 10.0

    def __post_init__(self) -> None:
        if self.ssl and self.starttls:
            raise ValueError("use either SMTP over SSL or STARTTLS, not both")
        if self.timeout <= 0:
            raise ValueError("the SMTP timeout must be positive")

    @classmethod
    def from_settings(cls, settings: Settings) -> SmtpConfig:
        password = settings.smtp_password
        return cls(
            host=settings.smtp_host,
            port=settings.smtp_port,
            sender=settings.smtp_from,
            username=settings.smtp_username or None,
            password=password.get_secret_value() if password is not None else None,
            starttls=settings.smtp_starttls,
            ssl=settings.smtp_ssl,
            timeout=settings.smtp_timeout_seconds,
        )

    def __repr__(self) -> str:
        # Never print the password (configurations end up in logs).
        hidden = "'**********'" if self.password is not None else "None"
        return (
            f"SmtpConfig(host={self.host!r}, port={self.port!r}, sender={self.sender!r}, "
            f"username={self.username!r}, password={hidden}, starttls={self.starttls!r}, "
            f"ssl={self.ssl!r}, timeout={self.timeout!r})"
        )


@dataclass(frozen=True)
class OutgoingEmail:
    """One email to send: plain text, and optionally an HTML alternative.

    ``message_id`` is the ``Message-ID`` header (angle brackets are added when
    missing); without it a random one is made. ``headers`` are extra headers (e.g.
    ``List-Unsubscribe``); the ones :func:`build_message` sets itself are refused.
    """

    to: tuple[str, ...]
    subject: str
    text: str
    html: str | None = None
    message_id: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.to, str):
            raise TypeError("`to` is a tuple of addresses, not one string")
        if not self.to:
            raise ValueError("an email needs at least one recipient")
        clashes = sorted(name for name in self.headers if name.lower() in RESERVED_HEADERS)
        if clashes:
            raise ValueError(f"headers set by Baton itself cannot be overridden: {clashes}")


class DeliveryError(Exception):
    """The email was not delivered (to every recipient).

    ``permanent`` is true when trying again cannot help (see the module docstring);
    ``smtp_code`` is the server's reply code when there was one; ``refused`` maps each
    refused recipient to the server's ``(code, text)``.
    """

    def __init__(
        self,
        message: str,
        *,
        permanent: bool,
        smtp_code: int | None = None,
        refused: Mapping[str, tuple[int, str]] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.permanent = permanent
        self.smtp_code = smtp_code
        self.refused: dict[str, tuple[int, str]] = dict(refused or {})

    def __str__(self) -> str:
        return self.message


def build_message(
    config: SmtpConfig, email: OutgoingEmail, *, now: datetime | None = None
) -> EmailMessage:
    """The message as it goes on the wire.

    ``multipart/alternative`` (text, then HTML) when ``email.html`` is given, else
    plain text; ``Date`` is ``now`` (default: the current time). Raises ``ValueError``
    for a header value that contains a line break (header injection).
    """
    message = EmailMessage()
    message["From"] = config.sender
    message["To"] = ", ".join(email.to)
    message["Subject"] = email.subject
    message["Date"] = format_datetime((now or datetime.now(UTC)).astimezone(UTC))
    message["Message-ID"] = _message_id(config, email.message_id)
    for name, value in email.headers.items():
        message[name] = value
    message.set_content(email.text)
    if email.html is not None:
        message.add_alternative(email.html, subtype="html")
    return message


def send_email(config: SmtpConfig, email: OutgoingEmail, *, now: datetime | None = None) -> None:
    """Send ``email`` through the SMTP server of ``config``.

    Returns when the server accepted it for every recipient; raises
    :class:`DeliveryError` otherwise (see the module docstring for ``permanent``).
    """
    try:
        message = build_message(config, email, now=now)
    except ValueError as error:
        raise DeliveryError(f"the email cannot be built: {error}", permanent=True) from error
    server = f"SMTP server {config.host}:{config.port}"
    client: smtplib.SMTP | None = None
    step = "connect"
    try:
        client = _connect(config)
        if config.starttls:
            step = "starttls"
            client.starttls(context=ssl.create_default_context())
        if config.username:
            step = "login"
            client.login(config.username, config.password or "")
        step = "send"
        refused = client.send_message(message, from_addr=config.sender, to_addrs=list(email.to))
    except smtplib.SMTPRecipientsRefused as error:
        answers = {
            address: _answer(code, text) for address, (code, text) in error.recipients.items()
        }
        permanent = all(code >= 500 for code, _ in answers.values())
        raise DeliveryError(
            f"{server} refused every recipient: {_list_refused(answers)}",
            permanent=permanent,
            refused=answers,
        ) from error
    except smtplib.SMTPSenderRefused as error:
        code, text = _answer(error.smtp_code, error.smtp_error)
        raise DeliveryError(
            f"{server} refused the sender {config.sender}: {code} {text}",
            permanent=code >= 500,
            smtp_code=code,
        ) from error
    except smtplib.SMTPResponseException as error:
        code, text = _answer(error.smtp_code, error.smtp_error)
        raise DeliveryError(
            f"{server} {_REFUSED[step]}: {code} {text}".rstrip(),
            permanent=code >= 500,
            smtp_code=code,
        ) from error
    except smtplib.SMTPNotSupportedError as error:
        raise DeliveryError(
            f"{server} does not support what the settings ask for: {error}", permanent=True
        ) from error
    except smtplib.SMTPServerDisconnected as error:
        # smtplib turns a timeout while waiting for a reply into a disconnection.
        what = (
            f"gave no answer within {config.timeout:g} seconds"
            if "timed out" in str(error)
            else "closed the connection"
        )
        raise DeliveryError(f"{server} {what} {_STEP[step]}", permanent=False) from error
    except smtplib.SMTPException as error:
        raise DeliveryError(f"{server} failed {_STEP[step]}: {error}", permanent=False) from error
    except OSError as error:
        reason = _network_reason(error, config.timeout)
        raise DeliveryError(
            f"cannot reach {server}: {reason}"
            if step == "connect"
            else f"{server}: {reason} {_STEP[step]}",
            permanent=False,
        ) from error
    finally:
        if client is not None:
            _close(client)
    if refused:
        answers = {address: _answer(code, text) for address, (code, text) in refused.items()}
        accepted = [address for address in email.to if address not in answers]
        raise DeliveryError(
            f"{server} accepted the email for {', '.join(accepted)} but refused "
            f"{_list_refused(answers)}; not retried, so nobody gets it twice",
            permanent=True,
            refused=answers,
        )


_STEP = {
    "connect": "while connecting",
    "starttls": "during STARTTLS",
    "login": "during the login",
    "send": "while sending",
}
_REFUSED = {
    "connect": "refused the connection",
    "starttls": "refused STARTTLS",
    "login": "refused the login",
    "send": "refused the email",
}


def _connect(config: SmtpConfig) -> smtplib.SMTP:
    if config.ssl:
        return smtplib.SMTP_SSL(
            config.host, config.port, timeout=config.timeout, context=ssl.create_default_context()
        )
    return smtplib.SMTP(config.host, config.port, timeout=config.timeout)


def _close(client: smtplib.SMTP) -> None:
    """QUIT politely; a failure here changes nothing about what was delivered."""
    try:
        client.quit()
    except (smtplib.SMTPException, OSError):
        client.close()


def _message_id(config: SmtpConfig, given: str | None) -> str:
    if given is None:
        domain = config.sender.rpartition("@")[2] or "baton"
        return make_msgid(domain=domain)
    given = given.strip()
    if not given:
        raise ValueError("the Message-ID is empty")
    return given if given.startswith("<") and given.endswith(">") else f"<{given}>"


def _answer(code: int, text: bytes | str) -> tuple[int, str]:
    """A server reply as ``(code, one line of text)``."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    return code, " ".join(text.split())


def _list_refused(answers: Mapping[str, tuple[int, str]]) -> str:
    return ", ".join(f"{address} ({code} {text})" for address, (code, text) in answers.items())


def _network_reason(error: OSError, timeout: float) -> str:
    if isinstance(error, TimeoutError):
        return f"no answer within {timeout:g} seconds"
    if isinstance(error, ssl.SSLError):
        return f"TLS failed ({error.reason or error.strerror or 'handshake error'})"
    return error.strerror or str(error) or "network error"
