"""`baton outbox ...`: email and webhooks to send; list them by state, retry failures."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer
from rich.markup import escape

from baton.cli._common import LOCAL, ActorOption, work
from baton.cli._output import fail, say, show_list, when
from baton.domain.access import operator

outbox_app = typer.Typer(
    help="The outbox: email and webhooks to send; list them by state, retry failures.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)


class OutboxStateOption(StrEnum):
    pending = "pending"
    retrying = "retrying"
    failed = "failed"
    sent = "sent"


class OutboxChannelOption(StrEnum):
    email = "email"
    webhook = "webhook"
    chat = "chat"


@outbox_app.command("list")
def outbox_list(
    state: Annotated[
        list[OutboxStateOption] | None,
        typer.Option("--state", help="Only this state (repeat for several)."),
    ] = None,
    channel: Annotated[
        OutboxChannelOption | None, typer.Option("--channel", help="email, webhook or chat.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="How many, newest first.")] = 50,
) -> None:
    """Email and webhooks to send, sent or given up on, newest first."""
    from baton.services.outbox import list_messages

    with work() as ctx:
        found = list_messages(
            ctx,
            actor=LOCAL,
            states=[s.value for s in state or ()],
            channel=channel.value if channel else None,
            limit=limit,
        )
    if not found:
        say("no outbox messages" + (" in that state" if state or channel else ""))
        return
    columns = [
        ("id", False),
        ("channel", False),
        ("topic", False),
        ("to", True),
        ("state", False),
        ("attempts", False),
        ("next / sent", False),
        ("error", True),
    ]
    rows = [
        [
            str(m.id),
            m.channel,
            m.topic,
            escape(m.recipient),
            m.state + (" (sending)" if m.in_flight else ""),
            str(m.attempts),
            when(m.sent_at or m.next_attempt_at),
            escape(m.last_error or ""),
        ]
        for m in found
    ]
    show_list("Outbox", columns, rows, record="outbox")


@outbox_app.command("show")
def outbox_show(message_id: Annotated[int, typer.Argument(metavar="ID")]) -> None:
    """One message with every attempt."""
    from baton.services.outbox import get_message

    with work() as ctx:
        m = get_message(ctx, message_id, actor=LOCAL)
    say(f"outbox {m.id}: {m.channel} {m.topic} to {m.recipient}, {m.state}")
    columns = [(name, name == "error") for name in ("attempt", "at", "ok", "code", "ms", "error")]
    rows = [
        [
            str(a.attempt),
            when(a.attempted_at),
            "yes" if a.ok else "no",
            str(a.status_code or ""),
            f"{a.duration_ms:.0f}",
            escape(a.error or ""),
        ]
        for a in m.history or []
    ]
    show_list(f"Attempts of outbox {m.id}", columns, rows, record="attempt")


@outbox_app.command("retry")
def outbox_retry(
    message_ids: Annotated[list[int] | None, typer.Argument(metavar="[ID]...")] = None,
    failed: Annotated[
        bool, typer.Option("--failed", help="Every failed message instead of chosen ones.")
    ] = False,
    channel: Annotated[
        OutboxChannelOption | None, typer.Option("--channel", help="With --failed: only this.")
    ] = None,
    actor: ActorOption = "cli",
) -> None:
    """Send failed (or retrying) messages again now, each with a fresh series of attempts."""
    from baton.services.outbox import retry_failed, retry_message

    if bool(message_ids) == failed:
        raise fail("name message ids, or give --failed (not both)")
    with work() as ctx:
        if failed:
            count = retry_failed(
                ctx,
                actor=operator(actor),
                channel=channel.value if channel else None,
            )
            say(f"{count} failed message{'s' if count != 1 else ''} due again")
            return
        for message_id in message_ids or []:
            m = retry_message(ctx, message_id, actor=operator(actor))
            say(f"outbox {m.id} ({m.topic} to {m.recipient}) due again")
