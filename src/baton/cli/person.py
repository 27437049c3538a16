"""`baton person ...`: a person's data on request: export it all as JSON, or erase it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from baton.cli._common import ActorOption, work
from baton.cli._output import fail, say
from baton.domain.access import operator

person_app = typer.Typer(
    help="A person's data on request (GDPR access and erasure): export it, or erase it.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)


@person_app.command("export")
def person_export(
    email: Annotated[str, typer.Argument(help="The person's email address.")],
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Write the JSON to this file (default: standard output)."),
    ] = None,
    actor: ActorOption = "cli",
) -> None:
    """Everything Baton holds about the person with this address, as JSON: their
    lead(s) (merged ones too), activities, notes, tags, transitions, handoffs and their
    events, raw intake requests and inbound mail, outbox messages, nurture enrollments
    and sends, suppression entry."""
    import json

    from baton.services.person import export_person

    with work() as ctx:
        document = export_person(ctx, email, actor=operator(actor))
    text = json.dumps(document, indent=2, ensure_ascii=False, sort_keys=False)
    if out is None:
        say(text)
        return
    try:
        out.write_text(text + "\n", encoding="utf-8")
    except OSError as exc:
        raise fail(f"cannot write {out}: {exc.strerror or exc}") from None
    say(f"wrote {out}: {len(document['leads'])} lead(s), {len(document['activities'])} activities")


@person_app.command("erase")
def person_erase(
    email: Annotated[str, typer.Argument(help="The person's email address.")],
    yes: Annotated[bool, typer.Option("--yes", help="Erase without asking.")] = False,
    actor: ActorOption = "cli",
) -> None:
    """Erase the person with this address in one transaction: personal fields nulled,
    notes deleted, activity properties, intake bodies, outbox payloads and nurture
    addresses blanked; the lead rows stay (stage, times, source) so reports keep their
    counts, and the SHA-256 of the address is kept as a suppression so it is not mailed
    again. Cannot be undone."""
    from baton.services.person import erase_person

    if not yes and not typer.confirm(
        f"Erase every trace of {email}? This cannot be undone", default=False
    ):
        raise fail("nothing erased")
    with work() as ctx:
        result = erase_person(ctx, email, actor=operator(actor))
    say(
        f"erased: {result.leads} lead(s), {result.activities} activities, {result.notes} "
        f"notes, {result.intake_requests} intake requests, {result.outbox_messages} outbox "
        f"messages, {result.nurture_sends} nurture sends; suppressed as "
        f"{result.suppression_key}"
    )
