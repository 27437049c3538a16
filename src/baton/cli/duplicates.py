"""`baton duplicates ...`: the review queue of possible duplicates; list it, and
dismiss pairs in bulk (by ids or by filter, with a dry run)."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from baton.cli._common import LOCAL, ActorOption, valid, work
from baton.cli._output import console, say, when
from baton.domain.access import operator

if TYPE_CHECKING:
    from baton.services.merge import PairLead

duplicates_app = typer.Typer(
    help="Possible duplicates: list the review queue, dismiss pairs in bulk.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)

NAMES = {
    "reason": "--reason",
    "similarity_below": "--below",
    "created_since": "--since",
    "created_before": "--before",
    "ids": "ID",
}
"""The option of each field of the filter, for error messages."""


class StatusOption(StrEnum):
    open = "open"
    merged = "merged"
    dismissed = "dismissed"


class ReasonOption(StrEnum):
    phone = "phone"
    mailbox = "mailbox"
    email_domain = "email_domain"
    company = "company"


ReasonOpt = Annotated[
    ReasonOption | None,
    typer.Option(
        "--reason",
        help="phone (same number), mailbox (same email inbox, written differently), "
        "email_domain (similar name, same company email domain) "
        "or company (similar name and company).",
    ),
]
BelowOpt = Annotated[
    float | None, typer.Option("--below", help="Only pairs with a similarity below this (0-100).")
]
SinceOpt = Annotated[
    str | None,
    typer.Option("--since", help="Flagged at or after: a day (UTC midnight) or ISO 8601 time."),
]
BeforeOpt = Annotated[
    str | None,
    typer.Option("--before", help="Flagged before: a day (UTC midnight) or ISO 8601 time."),
]


def _moment(value: str | None) -> str | None:
    """A day alone means its midnight UTC; anything else is validated as ISO 8601."""
    if value is not None and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value.strip()):
        return f"{value.strip()}T00:00:00Z"
    return value


def _filter(
    reason: ReasonOption | None, below: float | None, since: str | None, before: str | None
) -> dict[str, Any]:
    return {
        "reason": reason.value if reason else None,
        "similarity_below": below,
        "created_since": _moment(since),
        "created_before": _moment(before),
    }


def _who(lead: PairLead) -> str:
    """One lead of a pair in a cell: its id and name, then how to reach them and where
    they work, then its stage and when it was captured (a customer, or the older of two
    leads, is usually the one to keep), so a reviewer can decide from the list."""
    lines = [f"{lead.id} {escape(lead.name or '(no name)')}"]
    lines += [escape(v) for v in (lead.email, lead.phone, lead.company) if v]
    lines.append(f"{escape(lead.stage)}, captured {when(lead.created_at)}")
    return "\n".join(lines)


@duplicates_app.command("list")
def duplicates_list(
    status: Annotated[
        StatusOption, typer.Option("--status", help="open (to review), merged or dismissed.")
    ] = StatusOption.open,
    reason: ReasonOpt = None,
    below: BelowOpt = None,
    since: SinceOpt = None,
    before: BeforeOpt = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="How many, newest first.")] = 50,
) -> None:
    """Pairs of leads that may be one person, newest first, and how many match."""
    from baton.domain.duplicates import DuplicateFilter
    from baton.services.merge import count_duplicates, list_duplicates

    where = valid(DuplicateFilter, _filter(reason, below, since, before), NAMES)
    with work(NAMES) as ctx:
        total = count_duplicates(ctx, actor=LOCAL, status=status.value, where=where)
        found = list_duplicates(ctx, actor=LOCAL, status=status.value, limit=limit, where=where)
    if not found:
        say(f"no {status.value} pairs" + ("" if where.empty else " match"))
        return
    table = Table(title=f"Possible duplicates ({status.value})")
    for column in ("id", "lead", "other", "why", "score", "flagged"):
        table.add_column(column, no_wrap=column in ("id", "score", "flagged"))
    for pair in found:
        table.add_row(
            str(pair.id),
            _who(pair.lead),
            _who(pair.other_lead),
            pair.reason,
            f"{pair.similarity:g}",
            when(pair.created_at),
        )
    console.print(table)
    many = total != 1
    say(
        f"{total:,} {status.value} pair{'s' if many else ''} match{'' if many else 'es'}; "
        f"{len(found)} shown"
    )


@duplicates_app.command("dismiss")
def duplicates_dismiss(
    pair_ids: Annotated[list[int] | None, typer.Argument(metavar="[ID]...")] = None,
    reason: ReasonOpt = None,
    below: BelowOpt = None,
    since: SinceOpt = None,
    before: BeforeOpt = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count what would be dismissed; change nothing.")
    ] = False,
    actor: ActorOption = "cli",
) -> None:
    """Dismiss open pairs (two different people) in one transaction: the ids given,
    the pairs the options pick, or the given ids the options also pick. Say which:
    with neither ids nor an option nothing is dismissed."""
    from baton.domain.duplicates import DuplicateDismissal
    from baton.services.merge import dismiss_duplicates

    request = valid(
        DuplicateDismissal,
        {**_filter(reason, below, since, before), "ids": pair_ids or None, "dry_run": dry_run},
        NAMES,
    )
    with work(NAMES) as ctx:
        report = dismiss_duplicates(ctx, request, actor=operator(actor))
    pairs = f"{report.matched:,} open pair{'s' if report.matched != 1 else ''}"
    if report.dry_run:
        say(f"would dismiss {pairs} (dry run: nothing changed)")
    else:
        say(f"dismissed {report.dismissed:,} of {pairs}")
    if report.sample:
        say("newest: " + ", ".join(map(str, report.sample)))
    if report.skipped:
        say("not open or not found, left alone: " + ", ".join(map(str, report.skipped)))
