"""`baton call log`: an inbound phone call, recorded as a hand-raise on its lead."""

from __future__ import annotations

from typing import Annotated

import typer

from baton.cli._common import ActorOption, work
from baton.cli._output import console, fail

call_app = typer.Typer(
    help="Inbound phone calls: log one on its lead (found by phone, email or id, or created).",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)

NAMES = {
    "phone": "--phone",
    "email": "--email",
    "lead_id": "--lead",
    "occurred_at": "--at",
    "duration_seconds": "--duration",
    "rep": "--rep",
    "notes": "--notes",
    "recording_url": "--recording-url",
    "call_id": "--call-id",
    "source": "--source",
}


@call_app.command("log")
def log_call_command(
    phone: Annotated[
        str | None, typer.Option(help="The caller's number, in any common writing.")
    ] = None,
    email: Annotated[str | None, typer.Option(help="The caller's email.")] = None,
    lead: Annotated[int | None, typer.Option("--lead", help="The lead's id.")] = None,
    duration: Annotated[
        str | None, typer.Option(help="How long: 300, 90s, 5m, 1h5m, 4:30 (min:sec).")
    ] = None,
    at: Annotated[
        str | None,
        typer.Option("--at", help="When the call came in (2026-11-20T14:03:00Z); default now."),
    ] = None,
    rep: Annotated[
        str | None, typer.Option(help="The rep who took the call (email or name).")
    ] = None,
    notes: Annotated[str | None, typer.Option(help="What the caller wanted.")] = None,
    recording_url: Annotated[
        str | None, typer.Option("--recording-url", help="Link to the recording (never fetched).")
    ] = None,
    call_id: Annotated[
        str | None,
        typer.Option("--call-id", help="The phone system's id of the call (a retry stores once)."),
    ] = None,
    source: Annotated[
        str | None, typer.Option(help="Source of a lead the call creates (default: phone).")
    ] = None,
    actor: ActorOption = "cli",
) -> None:
    """Log an inbound call as an `inbound_call` activity (a hand-raise in the example
    contract: the lead is handed off at once).

    The lead is found by --lead, else --email, else --phone (a number several leads share
    goes to the most recently active one, and Baton says so); an unknown caller becomes
    a new lead."""
    from pydantic import ValidationError

    from baton.cli._common import in_option_words, option_of
    from baton.domain.access import operator
    from baton.domain.batches import describe
    from baton.domain.calls import CallCreate, parse_duration
    from baton.services.calls import log_inbound_call, validation_context

    seconds = None
    if duration is not None:
        try:
            seconds = parse_duration(duration)
        except ValueError as exc:
            raise fail(f"--duration: {exc}") from None
    with work(NAMES) as ctx:
        try:
            call = CallCreate.model_validate(
                {
                    "phone": phone,
                    "email": email,
                    "lead_id": lead,
                    "duration_seconds": seconds,
                    "occurred_at": at,
                    "rep": rep,
                    "notes": notes,
                    "recording_url": recording_url,
                    "call_id": call_id,
                    "source": source,
                },
                context=validation_context(ctx),
            )
        except ValidationError as exc:
            lines = [
                in_option_words(m, NAMES) if loc == "(row)" else f"{option_of(loc, NAMES)}: {m}"
                for loc, m in describe(exc)
            ]
            raise fail("; ".join(lines)) from None
        result = log_inbound_call(ctx, call, actor=operator(actor))
    who = result.lead.email or result.lead.phone or f"lead {result.lead.id}"
    if result.duplicate:
        console.print(f"Call {call_id} was already logged on lead {result.lead.id} ({who}).")
        return
    found = {
        "created": "new lead",
        "phone": "found by phone",
        "email": "found by email",
        "lead_id": "by id",
    }[result.matched_by]
    console.print(
        f"Call logged on lead {result.lead.id} ({who}, {found}), stage {result.lead.stage}.",
        markup=False,
    )
    if result.note:
        console.print(f"Note: {result.note}", markup=False)
    handoff = result.handoff
    if handoff is not None:
        owner = handoff.rep_name or handoff.rep_email or "nobody yet: in the queue"
        console.print(f"Handoff {handoff.id} ({handoff.status}): {owner}", markup=False)
