"""`baton webhook ...`: endpoints that receive handoff events, and their deliveries."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from baton.cli._common import LOCAL, ActorOption, work
from baton.cli._output import console, day, say, show_list, when
from baton.domain.access import operator

webhook_app = typer.Typer(
    help="Webhook endpoints that receive handoff events.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)


@webhook_app.command("add")
def webhook_add(
    url: str,
    event: Annotated[
        list[str] | None,
        typer.Option(
            "--event", help="An event to send, e.g. handoff.assigned (repeat; default *)."
        ),
    ] = None,
    secret: Annotated[
        str | None, typer.Option("--secret", help="Signing secret (default: a random one).")
    ] = None,
    actor: ActorOption = "cli",
) -> None:
    """Send handoff events to URL, signed (the secret is shown only now)."""
    from baton.services.webhooks import create_endpoint

    with work() as ctx:
        endpoint, key = create_endpoint(
            ctx, url=url, events=event or ["*"], secret=secret, actor=operator(actor)
        )
    say(f"webhook {endpoint.id} added: {', '.join(endpoint.events)} → {endpoint.url}")
    say(f"signing secret (shown only now, store it): {key}")


@webhook_app.command("list")
def webhook_list() -> None:
    """Every webhook endpoint."""
    from baton.services.webhooks import list_endpoints

    with work() as ctx:
        endpoints = list_endpoints(ctx, actor=LOCAL)
    table = Table(title="Webhook endpoints")
    for column in ("id", "url", "events", "active", "created"):
        table.add_column(column, no_wrap=column in ("id", "url", "active"), overflow="fold")
    for e in endpoints:
        table.add_row(
            str(e.id),
            escape(e.url),
            ", ".join(e.events),
            "yes" if e.active else "no",
            escape(f"{day(e.created_at)} by {e.created_by}"),
        )
    console.print(table)


@webhook_app.command("remove")
def webhook_remove(
    endpoint_id: Annotated[int, typer.Argument(metavar="ID")], actor: ActorOption = "cli"
) -> None:
    """Stop sending to a webhook endpoint (its delivery log is kept)."""
    from baton.services.webhooks import disable_endpoint

    with work() as ctx:
        endpoint = disable_endpoint(ctx, endpoint_id, actor=operator(actor))
    say(f"webhook {endpoint.id} ({endpoint.url}) disabled")


@webhook_app.command("deliveries")
def webhook_deliveries(
    endpoint_id: Annotated[int, typer.Argument(metavar="ID")],
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="How many, newest first.")] = 50,
) -> None:
    """The newest events sent (or to send) to a webhook endpoint, with their attempts."""
    from baton.services.webhooks import list_deliveries

    with work() as ctx:
        found = list_deliveries(ctx, endpoint_id, limit=limit, actor=LOCAL)
    names = ("id", "event", "handoff", "status", "attempts", "last error", "sent")
    rows = [
        [
            str(d.id),
            d.topic,
            str(d.handoff_id or ""),
            d.status,
            str(d.attempts),
            escape(d.last_error or ""),
            when(d.sent_at),
        ]
        for d in found
    ]
    columns = [(name, name == "last error") for name in names]
    show_list(f"Deliveries of webhook {endpoint_id}", columns, rows, record="delivery")
