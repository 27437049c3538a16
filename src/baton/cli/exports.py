"""`baton export leads|handoffs|activities|verdicts`: data out as CSV or JSON lines, through the
one export path (:mod:`baton.services.exports`): formula cells neutralised, filters
checked (a misspelt one is an error listing the allowed values, never an empty file)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from baton.cli._common import LOCAL, context
from baton.cli._output import console, fail

if TYPE_CHECKING:
    from baton.services.exports import Export

export_app = typer.Typer(
    help="Export leads, handoffs, activities or verdicts as CSV (safe to open in a spreadsheet) or "
    "JSON lines.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)

OutputOption = Annotated[
    Path | None, typer.Option("--output", "-o", help="File to write (default: stdout).")
]
FormatOption = Annotated[str, typer.Option("--format", help="csv or jsonl.")]
SinceOption = Annotated[
    str | None,
    typer.Option(help="From this day (2026-03-01, UTC) or time (2026-03-01T09:00:00Z)."),
]
UntilOption = Annotated[
    str | None,
    typer.Option(help="To this day, included (2026-03-31), or up to this time, excluded."),
]
LeadOption = Annotated[int | None, typer.Option("--lead", help="Only this lead's (its id).")]

OPTIONS = {
    "stage": "--stage",
    "source": "--source",
    "owner": "--owner",
    "tag": "--tag",
    "grade": "--grade",
    "status": "--status",
    "rep": "--rep",
    "type": "--type",
    "lead_id": "--lead",
    "since": "--since",
    "until": "--until",
    "format": "--format",
    "verdict": "--verdict",
    "columns": "--columns",
}
"""The option a user typed for each filter, to name it in an error."""


def _run(
    kind: str,
    output: Path | None,
    fmt: str,
    filters: dict[str, Any],
    what: str,
    **options: Any,
) -> None:
    """Prepare the export (the filters are checked before any file is opened, so a bad
    one leaves no empty file behind), then write it to ``output`` or stdout."""
    from baton.domain.errors import ValidationFailed
    from baton.services.exports import EXPORTS, check_format

    with context() as ctx:
        try:
            check_format(fmt)
            export: Export = EXPORTS[kind](ctx, actor=LOCAL, filters=filters, **options)
        except ValidationFailed as exc:
            lines = [f"{OPTIONS.get(p.loc, p.loc)}: {p.message}" for p in exc.problems]
            raise fail("invalid export filter: " + "; ".join(lines)) from None
        if output is None:
            export.write(sys.stdout, fmt)
            return
        with output.open("w", newline="", encoding="utf-8") as out:
            count = export.write(out, fmt)
        console.print(f"{count:,} {what} written to {output}", markup=False)


@export_app.command("leads")
def export_leads_command(
    output: OutputOption = None,
    fmt: FormatOption = "csv",
    stage: Annotated[
        list[str] | None, typer.Option(help="Only leads in this stage (repeat, or mql,sal).")
    ] = None,
    source: Annotated[str | None, typer.Option(help="Only leads from this source.")] = None,
    owner: Annotated[
        str | None, typer.Option(help="Only leads whose latest handoff is this rep's (email).")
    ] = None,
    tag: Annotated[str | None, typer.Option(help="Only leads with this tag.")] = None,
    grade: Annotated[list[str] | None, typer.Option(help="Only leads of this grade (A-D).")] = None,
    since: SinceOption = None,
    until: UntilOption = None,
    columns: Annotated[
        str | None,
        typer.Option(
            "--columns",
            help="Name the columns as a CRM's import template does: salesforce (Lead) or "
            "hubspot (contact); default: Baton's own.",
        ),
    ] = None,
) -> None:
    """Export leads with their score, grade, tags and owner rep.

    --since and --until bound when each lead was created. The CSV imports back as it
    is (`baton import leads`): the columns Baton keeps itself (stage, score, owner...)
    are left out, the rest gives the same values. --columns salesforce|hubspot writes
    the columns of that CRM's import template (FirstName, LastName, ..., Status; First
    Name, ..., Lifecycle Stage), to load the leads back into it."""
    filters = {
        "stage": stage,
        "source": source,
        "owner": owner,
        "tag": tag,
        "grade": grade,
        "since": since,
        "until": until,
    }
    _run("leads", output, fmt, filters, "leads", columns=columns)


@export_app.command("handoffs")
def export_handoffs_command(
    output: OutputOption = None,
    fmt: FormatOption = "csv",
    status: Annotated[
        list[str] | None,
        typer.Option(help="Only handoffs in this status (repeat, or won,lost)."),
    ] = None,
    rep: Annotated[str | None, typer.Option(help="Only this rep's handoffs (email).")] = None,
    lead: LeadOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
) -> None:
    """Export handoffs: lead, rep, status, verdict and reason, and their moments.

    --since and --until bound when each handoff was opened."""
    filters = {"status": status, "rep": rep, "lead_id": lead, "since": since, "until": until}
    _run("handoffs", output, fmt, filters, "handoffs")


@export_app.command("activities")
def export_activities_command(
    output: OutputOption = None,
    fmt: FormatOption = "csv",
    type_: Annotated[
        list[str] | None,
        typer.Option("--type", help="Only activities of this type (repeat, or a,b)."),
    ] = None,
    lead: LeadOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
) -> None:
    """Export activities: lead, type, when, who recorded it, and properties as JSON.

    --since and --until bound when each activity happened."""
    filters = {"type": type_, "lead_id": lead, "since": since, "until": until}
    _run("activities", output, fmt, filters, "activities")


@export_app.command("verdicts")
def export_verdicts_command(
    output: OutputOption = None,
    fmt: FormatOption = "csv",
    verdict: Annotated[
        list[str] | None,
        typer.Option(help="Only these verdicts: accepted, rejected, qualified, won, lost."),
    ] = None,
    rep: Annotated[str | None, typer.Option(help="Only this rep's handoffs (email).")] = None,
    lead: LeadOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
) -> None:
    """Export sales' verdicts: each accept, reject (reason code and words), qualify,
    win (deal value) and loss, who gave it and when, with the lead's email and its id
    in another system, to load back into a CRM.

    --since and --until bound when each verdict was given."""
    filters = {"verdict": verdict, "rep": rep, "lead_id": lead, "since": since, "until": until}
    _run("verdicts", output, fmt, filters, "verdicts")
