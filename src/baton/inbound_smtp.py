"""The SMTP listener of ``baton inbound-smtp``: a thin shell (like the API) over
:func:`baton.services.inbound_email.receive_message`.

It is an :mod:`aiosmtpd` server that takes mail for the configured addresses only:

* ``RCPT TO`` another address is ``550`` (Baton is never an open relay); more than
  :data:`MAX_RECIPIENTS` recipients is ``452``;
* the size limit is advertised (``SIZE``) and enforced (``552``);
* ``DATA`` is answered only after the message is stored: the service runs in a small
  thread pool (the database calls block), ``250`` once the raw message is committed,
  ``451`` when it could not be (the sending server retries later);
* Ctrl+C or SIGTERM stops accepting connections, lets the messages being stored
  finish, and exits.

Put it behind the domain's MX or forward ``sales@`` to it; TLS is terminated in front
(the MX, a relay, a proxy): the listener speaks plain SMTP on the address it is given.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session

from baton.services.inbound_email import SmtpReply

log = logging.getLogger(__name__)

MAX_RECIPIENTS = 20
DELIVERY_THREADS = 4
SHUTDOWN_GRACE_SECONDS = 30.0

Deliver = Callable[[bytes, str, Sequence[str], "str | None"], SmtpReply]
"""Store one message: ``(content, mail_from, rcpt_tos, peer) -> reply``."""


@dataclass(frozen=True)
class ListenerConfig:
    """Where the listener listens and what it takes."""

    host: str
    port: int
    addresses: tuple[str, ...]
    max_bytes: int
    hostname: str = "baton"


@dataclass
class ListenerStats:
    """What a listener did (printed when it stops)."""

    accepted: int = 0
    deferred: int = 0
    refused_recipients: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


class InboundHandler:
    """aiosmtpd handler: recipients checked against the configured addresses, each
    message stored through ``deliver`` before ``DATA`` is answered."""

    def __init__(
        self,
        deliver: Deliver,
        addresses: Sequence[str],
        executor: ThreadPoolExecutor,
        stats: ListenerStats | None = None,
    ) -> None:
        self.deliver = deliver
        self.addresses = frozenset(a.strip().casefold() for a in addresses)
        self.executor = executor
        self.stats = stats or ListenerStats()
        self.storing = 0
        """Messages being stored now (read and written in the event loop's thread)."""

    async def settled(self, grace: float) -> None:
        """Wait (at most ``grace`` seconds) until no message is being stored, so each
        sender hears its answer before the listener exits."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        while self.storing and loop.time() < deadline:
            await asyncio.sleep(0.05)

    async def handle_RCPT(  # noqa: N802 (aiosmtpd's hook name)
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if address.strip().casefold() not in self.addresses:
            with self.stats.lock:
                self.stats.refused_recipients += 1
            return "550 5.7.1 Relaying denied: no such recipient here"
        if len(envelope.rcpt_tos) >= MAX_RECIPIENTS:
            return "452 4.5.3 Too many recipients"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(  # noqa: N802 (aiosmtpd's hook name)
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        content = envelope.original_content or envelope.content or b""
        if isinstance(content, str):
            content = content.encode("utf-8", "surrogateescape")
        peer = session.peer[0] if isinstance(session.peer, tuple) and session.peer else None
        loop = asyncio.get_running_loop()
        self.storing += 1
        try:
            reply = await loop.run_in_executor(
                self.executor,
                self.deliver,
                bytes(content),
                envelope.mail_from or "",
                list(envelope.rcpt_tos),
                str(peer) if peer else None,
            )
        except Exception:
            log.exception("storing a message failed")
            reply = SmtpReply(451, "4.3.0 Cannot store the message now; try again later")
        finally:
            self.storing -= 1
        with self.stats.lock:
            if reply.code == 250:
                self.stats.accepted += 1
            else:
                self.stats.deferred += 1
        return reply.line


def smtp_factory(config: ListenerConfig, handler: InboundHandler) -> Callable[[], SMTP]:
    def make() -> SMTP:
        return SMTP(
            handler,
            data_size_limit=config.max_bytes,
            enable_SMTPUTF8=True,
            decode_data=False,
            hostname=config.hostname,
            ident="Baton inbound-smtp",
        )

    return make


async def serve(
    config: ListenerConfig,
    handler: InboundHandler,
    stop: asyncio.Event,
    *,
    ready: Callable[[int], None] | None = None,
) -> None:
    """Listen until ``stop`` is set; ``ready`` gets the port (``port=0`` picks one)."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(smtp_factory(config, handler), config.host, config.port)
    port = int(server.sockets[0].getsockname()[1])
    if ready is not None:
        ready(port)
    try:
        await stop.wait()
    finally:
        server.close()  # no new connections; the messages being stored get their answer
        await handler.settled(SHUTDOWN_GRACE_SECONDS)
        with suppress(asyncio.TimeoutError):
            await asyncio.wait_for(server.wait_closed(), SHUTDOWN_GRACE_SECONDS)


def run(
    config: ListenerConfig,
    deliver: Deliver,
    *,
    ready: Callable[[int], None] | None = None,
    stats: ListenerStats | None = None,
) -> ListenerStats:
    """Serve in the calling thread until Ctrl+C or SIGTERM; then stop taking
    connections, finish the messages being stored, and return what was done."""
    stats = stats or ListenerStats()
    executor = ThreadPoolExecutor(DELIVERY_THREADS, thread_name_prefix="baton-smtp")
    handler = InboundHandler(deliver, config.addresses, executor, stats)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            with suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(signum, stop.set)
        await serve(config, handler, stop, ready=ready)

    try:
        asyncio.run(main())
    except KeyboardInterrupt:  # a signal before the handlers were installed
        pass
    finally:
        executor.shutdown(wait=True)  # the messages being stored are committed first
    return stats


@contextmanager
def listening(
    config: ListenerConfig, deliver: Deliver, *, stats: ListenerStats | None = None
) -> Iterator[int]:
    """The listener in a background thread (embedding, tests); yields its port and
    stops it cleanly when the block ends."""
    stats = stats or ListenerStats()
    executor = ThreadPoolExecutor(DELIVERY_THREADS, thread_name_prefix="baton-smtp")
    handler = InboundHandler(deliver, config.addresses, executor, stats)
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    started = threading.Event()
    port: list[int] = []
    failure: list[BaseException] = []

    def on_ready(bound: int) -> None:
        port.append(bound)
        started.set()

    def target() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(serve(config, handler, stop, ready=on_ready))
        except BaseException as exc:  # surfaced to the caller below
            failure.append(exc)
            started.set()
        finally:
            loop.close()

    thread = threading.Thread(target=target, name="baton-inbound-smtp", daemon=True)
    thread.start()
    started.wait(10)
    if failure or not port:
        thread.join(1)
        raise RuntimeError(
            f"the SMTP listener did not start: {failure[0] if failure else 'timeout'}"
        )
    try:
        yield port[0]
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(SHUTDOWN_GRACE_SECONDS)
        executor.shutdown(wait=True)


def describe(stats: ListenerStats) -> dict[str, Any]:
    return {
        "accepted": stats.accepted,
        "deferred": stats.deferred,
        "refused_recipients": stats.refused_recipients,
    }
