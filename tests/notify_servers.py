"""Real servers for notification tests: an SMTP server, an HTTP receiver and dead ends.

Plain context managers, so any test module can use them (directly or wrapped in a
fixture of its own)::

    from tests.notify_servers import http_receiver, smtp_server

    def test_handoff_emails_the_rep() -> None:
        with smtp_server() as smtp:
            config = SmtpConfig(host=smtp.host, port=smtp.port)
            ...  # run the code under test with ``config``
        assert smtp.messages[0]["Subject"] == "..."

Everything listens on 127.0.0.1 on a port of its own, runs in a background thread and
is stopped when the ``with`` block ends. What was received is recorded before the
server answers, so it is complete as soon as the client call has returned.

* :func:`smtp_server`: an aiosmtpd server that stores every message; it can refuse
  chosen recipients or every message with any reply (e.g. ``550`` or ``450``).
* :func:`http_receiver`: an HTTP server that records each request and answers with a
  configurable status, body, headers and delay.
* :func:`closed_port`: a port where nothing listens (connection refused).
* :func:`silent_server`: a port that accepts connections and never answers (timeouts).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller

HOST = "127.0.0.1"


# --- SMTP ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Envelope:
    """What the SMTP client said around one message: sender, accepted recipients and
    the message exactly as received (with ``\r\n`` line ends)."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    content: bytes


@dataclass
class SmtpServer:
    """A running SMTP server (see :func:`smtp_server`).

    ``messages[i]`` and ``envelopes[i]`` describe the i-th accepted message. Change
    ``refuse`` or ``data_reply`` at any time to change how the next messages go.
    """

    host: str
    port: int
    refuse: dict[str, str] = field(default_factory=dict)
    """Recipient address -> SMTP reply to ``RCPT TO``, e.g. ``"550 5.1.1 no such user"``."""
    data_reply: str | None = None
    """When set, the reply to every message's ``DATA`` (e.g. ``"451 4.3.0 try later"``);
    such messages are not stored."""
    on_message: Callable[[], None] | None = None
    """Called as each message's data arrives, before the server answers: a test moves
    its manual clock here to play a slow server, or breaks something mid-send."""
    messages: list[EmailMessage] = field(default_factory=list)
    envelopes: list[Envelope] = field(default_factory=list)


class _Handler:
    """aiosmtpd handler: applies the server's refusals and stores what it accepts."""

    def __init__(self, server: SmtpServer) -> None:
        self.server = server

    async def handle_RCPT(  # noqa: N802 (aiosmtpd's hook name)
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any
    ) -> str:
        reply = self.server.refuse.get(address)
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(  # noqa: N802 (aiosmtpd's hook name)
        self, server: Any, session: Any, envelope: Any
    ) -> str:
        if self.server.on_message is not None:
            self.server.on_message()
        if self.server.data_reply is not None:
            return self.server.data_reply
        content = envelope.original_content or envelope.content
        assert isinstance(content, bytes)
        # Parsed with Python's line ends (\n), as the sender built it; the wire has \r\n.
        parsed = message_from_bytes(content.replace(b"\r\n", b"\n"), policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        self.server.envelopes.append(
            Envelope(envelope.mail_from, tuple(envelope.rcpt_tos), content)
        )
        self.server.messages.append(parsed)
        return "250 Message accepted for delivery"


@contextmanager
def smtp_server(
    *,
    refuse: Mapping[str, str] | None = None,
    data_reply: str | None = None,
    on_message: Callable[[], None] | None = None,
) -> Iterator[SmtpServer]:
    """An SMTP server on 127.0.0.1 (plain text, no AUTH, no STARTTLS) for the block."""
    server = SmtpServer(
        host=HOST,
        port=0,
        refuse=dict(refuse or {}),
        data_reply=data_reply,
        on_message=on_message,
    )
    controller = _start_controller(server)
    try:
        yield server
    finally:
        controller.stop()


def _start_controller(server: SmtpServer) -> Controller:
    """Start aiosmtpd on a free port, which it records in ``server.port``.

    aiosmtpd cannot listen on port 0 (it connects to its own port to check that it is
    up), so take a free port, retrying in the unlikely case another process takes it
    in between."""
    for attempt in range(5):
        server.port = _free_port()
        controller = Controller(
            _Handler(server), hostname=HOST, port=server.port, server_hostname="smtp.test"
        )
        try:
            controller.start()
        except (OSError, RuntimeError):
            if attempt == 4:
                raise
            continue
        return controller
    raise AssertionError("unreachable")


# --- HTTP ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReceivedRequest:
    """One request as the receiver saw it; ``headers`` ignore case (``headers["x-a"]``)."""

    method: str
    path: str
    headers: Any  # http.client.HTTPMessage: case-insensitive, like an email message
    body: bytes


@dataclass
class HttpReceiver:
    """A running HTTP server (see :func:`http_receiver`); change ``status``, ``body``,
    ``headers`` or ``delay`` at any time to change the next answers."""

    host: str
    port: int
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    """Seconds to wait before answering (to make a client time out)."""
    requests: list[ReceivedRequest] = field(default_factory=list)
    closing: threading.Event = field(default_factory=threading.Event)

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>/webhook`` (any path is accepted)."""
        return self.url_for("/webhook")

    def url_for(self, path: str) -> str:
        return f"http://{self.host}:{self.port}{path}"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    receiver: HttpReceiver


class _RequestHandler(BaseHTTPRequestHandler):
    server: _Server

    def _handle(self) -> None:
        receiver = self.server.receiver
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        receiver.requests.append(ReceivedRequest(self.command, self.path, self.headers, body))
        if receiver.delay and receiver.closing.wait(receiver.delay):
            return  # the receiver is closing: drop the connection unanswered
        self.send_response(receiver.status)
        for name, value in receiver.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(receiver.body)))
        self.end_headers()
        if receiver.body and self.command != "HEAD":
            self.wfile.write(receiver.body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _handle  # noqa: N815

    def log_message(self, *args: Any) -> None:
        """Silent: test output should show only what the tests print."""


@contextmanager
def http_receiver(
    *,
    status: int = 200,
    body: bytes = b"",
    headers: Mapping[str, str] | None = None,
    delay: float = 0.0,
) -> Iterator[HttpReceiver]:
    """An HTTP server on 127.0.0.1 that records requests and answers ``status``."""
    server = _Server((HOST, 0), _RequestHandler)
    receiver = HttpReceiver(
        host=HOST,
        port=server.server_address[1],
        status=status,
        body=body,
        headers=dict(headers or {}),
        delay=delay,
    )
    server.receiver = receiver
    # A short poll interval: shutdown() waits for it, at the end of every test.
    thread = threading.Thread(
        target=server.serve_forever, args=(0.02,), name="http-receiver", daemon=True
    )
    thread.start()
    try:
        yield receiver
    finally:
        receiver.closing.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


# --- Dead ends -------------------------------------------------------------------------


def closed_port() -> int:
    """A port on 127.0.0.1 where nothing listens: connecting is refused at once."""
    return _free_port()


@contextmanager
def silent_server() -> Iterator[tuple[str, int]]:
    """``(host, port)`` that accepts connections (the kernel completes them) and never
    sends a byte: a client waiting for a banner or an answer times out."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind((HOST, 0))
        listener.listen(16)
        yield HOST, listener.getsockname()[1]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port
