"""`baton nurture ...`: the contract's nurture sequences at work: preview a template
for a lead (enrollment and sending commands join this group)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer

from baton.cli._common import LOCAL, work
from baton.cli._output import console, fail, heading, say

nurture_app = typer.Typer(
    help="Nurture sequences: preview their emails, enroll leads, list enrollments.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)


@nurture_app.command("preview")
def nurture_preview(
    lead: Annotated[int, typer.Option("--lead", min=1, help="The lead to render it for.")],
    template: Annotated[
        str | None,
        typer.Argument(help="A template of the contract's nurture section (e.g. check-in)."),
    ] = None,
    sequence: Annotated[
        str | None, typer.Option("--sequence", help="Preview a sequence's step instead.")
    ] = None,
    step: Annotated[
        int | None, typer.Option("--step", min=1, help="Which step of --sequence (from 1).")
    ] = None,
    contract: Annotated[
        Path | None,
        typer.Option(
            "--contract",
            exists=True,
            dir_okay=False,
            help="Use this draft contract file instead of the active contract.",
        ),
    ] = None,
    html: Annotated[bool, typer.Option("--html", help="Also print the HTML part.")] = False,
) -> None:
    """Render a nurture email for one lead, as the worker would send it."""
    from baton.services.nurture_preview import preview_template

    if (template is None) == (sequence is None):
        raise fail("give a TEMPLATE, or --sequence (and --step), not both")
    if step is not None and sequence is None:
        raise fail("--step needs --sequence")
    text = contract.read_text(encoding="utf-8") if contract is not None else None
    with work({"lead_id": "--lead", "contract": "--contract"}) as ctx:
        shown = preview_template(
            ctx,
            lead_id=lead,
            template=template,
            sequence=sequence,
            step=step,
            contract_text=text,
            actor=LOCAL,
        )
    email = shown.email
    where = (
        f"contract version {shown.contract_version}"
        if shown.contract_version is not None
        else f"draft {contract}"
    )
    which = shown.template + (f" (step {shown.step} of {shown.sequence})" if shown.sequence else "")
    heading(f"{which} for lead {shown.lead_id}, {where}")
    say(f"To: {shown.to or '(no email address)'}")
    say(f"Subject: {email.subject}")
    console.print()
    console.print(email.text, markup=False, highlight=False)
    if html and email.html is not None:
        heading("HTML")
        console.print(email.html, markup=False, highlight=False)
    if email.links:
        heading("Links (click-tracked when sent)")
        for url in email.links:
            say(f"  {url}")


# --- enrollment ---------------------------------------------------------------------------

_ENROLL_OPTIONS = {"tag": "--tag", "filter": "--filter", "sequence": "--sequence"}


def _show_preview(shown: Any, *, done: bool) -> None:
    from rich.markup import escape

    from baton.cli._output import show_list, when

    verb = "Enrolled" if done else "Would enroll"
    heading(
        f"{shown.selection} into sequence {shown.sequence} (contract version "
        f"{shown.contract_version}): {shown.matched} lead(s) matched"
    )
    if shown.enroll_sample:
        show_list(
            f"{verb} ({shown.would_enroll})",
            [("lead", False), ("email", True), ("first step", False), ("due", False)],
            [
                [
                    str(p.lead_id),
                    escape(p.email or ""),
                    escape(p.first_template or ""),
                    when(p.first_due_at),
                ]
                for p in shown.enroll_sample
            ],
            record="lead",
        )
    if shown.excluded_sample:
        show_list(
            f"Excluded ({shown.excluded})",
            [("lead", False), ("email", True), ("why", True)],
            [
                [str(p.lead_id), escape(p.email or ""), escape("; ".join(p.why))]
                for p in shown.excluded_sample
            ],
            record="lead",
        )
    counts = ", ".join(f"{k} {v}" for k, v in shown.excluded_by_reason.items())
    say(
        f"{verb}: {shown.enrolled if done else shown.would_enroll}; excluded: {shown.excluded}"
        + (f" ({counts})" if counts else "")
    )
    shown_rows = len(shown.enroll_sample) + len(shown.excluded_sample)
    if shown_rows < shown.would_enroll + shown.excluded:
        say(
            f"(showing {shown_rows} of {shown.would_enroll + shown.excluded}; --sample to see more)"
        )


@nurture_app.command("enroll")
def nurture_enroll(
    sequence: Annotated[str, typer.Option("--sequence", help="The contract's sequence.")],
    tag: Annotated[
        str | None, typer.Option("--tag", help="Enroll the leads with this tag.")
    ] = None,
    saved_filter: Annotated[
        str | None, typer.Option("--filter", help="Enroll the leads of this saved filter.")
    ] = None,
    lead: Annotated[
        list[int] | None, typer.Option("--lead", min=1, help="Enroll this lead (repeatable).")
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", help="Enroll without asking.")] = False,
    sample: Annotated[
        int, typer.Option("--sample", min=0, max=1000, help="Leads of each list to show.")
    ] = 20,
) -> None:
    """Enroll leads in a nurture sequence by tag, saved filter or id: prints who would be
    enrolled and who is excluded and why, then asks (unless --yes)."""
    from baton.services.nurture import Selection, enroll_leads, preview_enrollment

    given = [x for x in (tag, saved_filter, lead) if x]
    if len(given) != 1:
        raise fail("give exactly one of --tag, --filter or --lead")
    selection = Selection(
        sequence=sequence,
        tag=tag,
        saved_filter=saved_filter,
        lead_ids=tuple(lead) if lead else None,
    )
    with work({**_ENROLL_OPTIONS, "lead_ids": "--lead"}) as ctx:
        shown = preview_enrollment(ctx, selection, actor=LOCAL, sample=sample)
        _show_preview(shown, done=False)
        refused = set(shown.excluded_by_reason) - {"already_enrolled"}
        if lead and refused:
            # Named leads are strict: the use case refuses them all, naming why.
            enroll_leads(ctx, selection, actor=LOCAL, sample=0)
        if shown.would_enroll == 0:
            say("Nobody to enroll.")
            return
        if not yes and not typer.confirm(f"Enroll {shown.would_enroll} lead(s)?"):
            raise fail("nothing enrolled")
        done = enroll_leads(ctx, selection, actor=LOCAL, sample=0)
    say(f"Enrolled {done.enrolled} lead(s) in {done.sequence}.")


def _enrollment_rows(found: Sequence[Any]) -> list[list[str]]:
    from rich.markup import escape

    from baton.cli._output import when

    return [
        [
            str(e.id),
            str(e.lead_id),
            escape(e.email or ""),
            escape(e.sequence),
            e.status + (f" ({e.exit_reason})" if e.exit_reason else ""),
            f"{e.touches}/{e.max_touches if e.max_touches is not None else '?'}",
            escape(e.next_template or ""),
            when(e.next_due_at),
        ]
        for e in found
    ]


_ENROLLMENT_COLUMNS = [
    ("id", False),
    ("lead", False),
    ("email", True),
    ("sequence", False),
    ("status", False),
    ("touches", False),
    ("next", False),
    ("due", False),
]


@nurture_app.command("list")
def nurture_list(
    sequence: Annotated[str | None, typer.Option("--sequence", help="Only this sequence.")] = None,
    status: Annotated[
        str | None, typer.Option("--status", help="active, completed or exited.")
    ] = None,
    lead: Annotated[int | None, typer.Option("--lead", min=1, help="Only this lead.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000)] = 50,
) -> None:
    """Enrollments newest first, with the next step and when it is due."""
    from baton.cli._output import show_list
    from baton.services.nurture import list_enrollments

    with work({"status": "--status", "sequence": "--sequence"}) as ctx:
        found = list_enrollments(
            ctx, actor=LOCAL, lead_id=lead, sequence=sequence, status=status, limit=limit
        )
    if not found:
        say("No enrollments.")
        return
    show_list("Enrollments", _ENROLLMENT_COLUMNS, _enrollment_rows(found), record="enrollment")


@nurture_app.command("show")
def nurture_show(
    lead: Annotated[str, typer.Argument(help="The lead's id or email address.")],
) -> None:
    """A lead's enrollments, each with its steps sent so far."""
    from rich.markup import escape

    from baton.cli._output import show_list, when
    from baton.services.nurture import lead_enrollments

    with work() as ctx:
        found = lead_enrollments(ctx, lead, actor=LOCAL)
    if not found:
        say(f"Lead {lead} was never enrolled in nurture.")
        return
    for e in found:
        heading(
            f"Enrollment {e.id}: lead {e.lead_id} in {e.sequence} — {e.status}"
            + (f" ({e.exit_reason})" if e.exit_reason else "")
        )
        say(f"Enrolled {when(e.enrolled_at)} by {e.enrolled_by}: {e.reason}")
        say(f"Touches: {e.touches} of {e.max_touches if e.max_touches is not None else '?'}")
        if e.status == "active":
            # Steps count from 1 here, as in `nurture preview --step` and `contract diff`.
            number = "?" if e.next_step is None else e.next_step + 1
            say(f"Next: step {number} {e.next_template or ''} due {when(e.next_due_at)}")
        elif e.ended_at is not None:
            say(f"Ended {when(e.ended_at)}")
        if e.sends:
            show_list(
                "Sent",
                [("step", False), ("template", False), ("status", False), ("sent", False)],
                [
                    [str(s.step + 1), escape(s.template), s.status, when(s.sent_at or s.planned_at)]
                    for s in e.sends
                ],
                record="step",
            )


@nurture_app.command("exit")
def nurture_exit(
    enrollment: Annotated[int, typer.Argument(min=1, help="The enrollment's id.")],
) -> None:
    """End one enrollment now (exit reason manual)."""
    from baton.services.nurture import end_enrollment

    with work() as ctx:
        ended = end_enrollment(ctx, enrollment, actor=LOCAL)
    say(f"Enrollment {ended.id} of lead {ended.lead_id}: {ended.status} ({ended.exit_reason}).")
