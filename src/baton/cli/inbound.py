"""`baton inbound-smtp`: the SMTP listener for email hand-raises, replies and bounces."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from baton.cli._common import ActorOption, context
from baton.cli._output import console, fail, local
from baton.domain.access import operator

if TYPE_CHECKING:
    from baton.services.inbound_email import SmtpReply

inbound_app = typer.Typer()
"""Commands of the top level (merged into `baton`, no group name)."""


@inbound_app.command("inbound-smtp")
def inbound_smtp(
    address: Annotated[
        list[str],
        typer.Option(
            "--address",
            help="Address to take mail for (repeatable); mail for any other is refused (550).",
        ),
    ],
    host: Annotated[str, typer.Option(help="Listen address.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port (0 picks a free one).", min=0, max=65535)] = 2525,
    endpoint: Annotated[
        str,
        typer.Option(help="Intake endpoint the mail goes to (kind email; made when missing)."),
    ] = "email",
    max_size: Annotated[
        int | None,
        typer.Option(
            "--max-size",
            help="Largest message in bytes (SIZE, else 552); default the endpoint's limit.",
            min=1024,
        ),
    ] = None,
    source: Annotated[str, typer.Option(help="Lead source of a new endpoint's mail.")] = "email",
    actor: ActorOption = "cli",
) -> None:
    """Take email for sales@ (or any address you give) and turn it into hand-raises:
    a new email is a `contact_sales` hand-raise of its sender, a reply to a Baton email
    is an `email_reply` on that lead, a bounce marks the address as bouncing.

    Every message is stored raw in the intake log before the sending server hears 250
    (451 when it cannot be stored: it retries). Put it behind your MX or forward sales@
    to it; TLS is terminated in front. Ctrl+C or SIGTERM stops after the messages being
    stored."""
    from baton.inbound_smtp import ListenerConfig, run
    from baton.services.inbound_email import ensure_email_endpoint, receive_message

    addresses = _addresses(address)
    with context() as ctx:
        target = ensure_email_endpoint(
            ctx, endpoint, actor=operator(actor), max_bytes=max_size, source=source
        )
        if target.created:
            console.print(f"created the email endpoint [bold]{escape(endpoint)}[/]")

        def deliver(
            content: bytes, mail_from: str, rcpt_tos: Sequence[str], peer: str | None
        ) -> SmtpReply:
            reply = receive_message(
                ctx, endpoint, content, mail_from=mail_from, rcpt_tos=rcpt_tos, peer=peer
            )
            now = local(ctx.clock.now())
            console.print(
                f"{now:%H:%M:%S} {reply.code} from {escape(mail_from or '<>')} "
                f"({len(content):,} bytes): {escape(reply.text)}",
                highlight=False,
                soft_wrap=True,
            )
            return reply

        config = ListenerConfig(
            host=host, port=port, addresses=addresses, max_bytes=target.max_bytes
        )

        def ready(bound: int) -> None:
            console.print(
                f"Baton inbound SMTP on [bold]{host}:{bound}[/] for "
                f"{escape(', '.join(addresses))} -> endpoint {escape(endpoint)} "
                f"(max {target.max_bytes:,} bytes; Ctrl+C stops)",
                highlight=False,
                soft_wrap=True,
            )

        try:
            stats = run(config, deliver, ready=ready)
        except OSError as exc:
            raise fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    console.print(
        f"inbound SMTP stopped: {stats.accepted} stored, {stats.deferred} deferred, "
        f"{stats.refused_recipients} recipient(s) refused",
        soft_wrap=True,
    )


def _addresses(given: Sequence[str]) -> tuple[str, ...]:
    out: list[str] = []
    for raw in given:
        value = raw.strip().strip("<>").strip()
        local_part, at, domain = value.rpartition("@")
        if not at or not local_part or "." not in domain or any(c.isspace() for c in value):
            raise fail(f"--address: {raw!r} is not an email address")
        out.append(value)
    if not out:
        raise fail("--address: give at least one address to take mail for")
    return tuple(out)
