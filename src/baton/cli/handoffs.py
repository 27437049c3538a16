"""`baton handoff ...`: lists, the unassigned queue, the packet, and sales' verdicts."""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from baton.cli._common import LOCAL, work
from baton.cli._output import fail, reader_zone_name, say, show_list, when
from baton.domain.access import operator

if TYPE_CHECKING:
    from baton.services.context import Context

handoff_app = typer.Typer(
    help="Handoffs: lists, the unassigned queue, the packet, and sales' verdicts.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)

VerdictActor = Annotated[
    str,
    typer.Option(
        "--actor",
        help="Who gives the verdict, recorded on it (the CLI acts as the local operator; "
        "over the API only the rep, their manager or an admin may).",
    ),
]


HANDOFF_STATUSES = (
    "queued",
    "assigned",
    "accepted",
    "qualified",
    "rejected",
    "won",
    "lost",
    "reassigned",
    "closed",
)


class TouchKind(StrEnum):
    call = "call"
    email = "email"
    meeting = "meeting"


EMPTY: tuple[Any, ...] = (None, "", {}, [])


def _flat(value: Any) -> str:
    if isinstance(value, dict):
        return "(" + ", ".join(f"{k}={v}" for k, v in value.items()) + ")"
    return str(value)


def _handoff_next(h: Any) -> str:
    """What is next for a handoff, or how it ended."""
    if h.status == "assigned":
        return f"accept by {when(h.accept_due_at)}"
    if h.status in ("accepted", "qualified") and h.first_touch_at is None:
        return f"touch by {when(h.touch_due_at)}"
    if h.status == "queued":
        from baton.domain.routing import waiting_reason

        return waiting_reason(h.routing)
    return str(h.rejection_code or h.outcome or "")


def _show_handoffs(title: str, handoffs: list[Any], *, queue: bool = False) -> None:
    if queue:
        from baton.domain.routing import waiting_reason

        columns = [("id", False), ("lead", False), ("MQL at", False), ("waiting because", True)]
        rows = [
            [str(h.id), str(h.lead_id), when(h.mql_at), escape(waiting_reason(h.routing))]
            for h in handoffs
        ]
    else:
        columns = [
            ("id", False),
            ("lead", False),
            ("status", False),
            ("rep", False),
            ("MQL at", False),
            ("next / outcome", True),
        ]
        rows = [
            [
                str(h.id),
                str(h.lead_id),
                h.status,
                escape(h.rep_email or "—"),
                when(h.mql_at),
                escape(_handoff_next(h)),
            ]
            for h in handoffs
        ]
    show_list(title, columns, rows, record="handoff")


@handoff_app.command("list")
def handoff_list(
    status: Annotated[
        list[str] | None,
        typer.Option("--status", help="Only this status (repeat): queued, assigned, accepted..."),
    ] = None,
    rep: Annotated[str | None, typer.Option("--rep", help="Only this rep's (email).")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="How many, newest first.")] = 50,
) -> None:
    """Handoffs, newest first."""
    from baton.services.handoffs import list_handoffs

    unknown = [s for s in status or [] if s not in HANDOFF_STATUSES]
    if unknown:
        raise fail(f"unknown status {unknown[0]!r}; use one of {', '.join(HANDOFF_STATUSES)}")
    with work() as ctx:
        found = list_handoffs(ctx, status=status, rep_email=rep, limit=limit, actor=LOCAL)
    _show_handoffs("Handoffs", found)


@handoff_app.command("queue")
def handoff_queue() -> None:
    """The unassigned queue: handoffs nobody could take yet, and why."""
    from baton.services.handoffs import list_handoffs

    with work() as ctx:
        found = list_handoffs(ctx, status=["queued"], limit=1000, actor=LOCAL)
    if not found:
        say("the unassigned queue is empty")
        return
    _show_handoffs("Unassigned queue", found, queue=True)


@handoff_app.command("show")
def handoff_show(handoff_id: Annotated[int, typer.Argument(metavar="ID")]) -> None:
    """One handoff: status, rep, deadlines, routing, and what happened to it."""
    from baton.services.handoffs import get_handoff, handoff_events_of

    with work() as ctx:
        h = get_handoff(ctx, handoff_id, actor=LOCAL)
        events = handoff_events_of(ctx, handoff_id, actor=LOCAL)
    lines = [
        f"Handoff {h.id} of lead {h.lead_id}: {h.status}",
        f"rep:          {h.rep_email or '— (unassigned)'}",
        f"MQL at:       {when(h.mql_at)}",
        f"accept by:    {when(h.accept_due_at)}    accepted: {when(h.accepted_at)}",
        f"touch by:     {when(h.touch_due_at)}    first touch: {when(h.first_touch_at)}",
        f"routing:      {h.routing.get('reason', '—')}",
    ]
    for skip in h.routing.get("skipped") or []:  # why each rep of the pool was passed over
        if isinstance(skip, dict):
            lines.append(f"  passed over: {skip.get('rep')}: {skip.get('reason')}")
    if h.outcome:
        lines.append(
            f"outcome:      {h.outcome}" + (f" ({h.rejection_code})" if h.rejection_code else "")
        )
    if h.qualification:
        lines.append("qualification: " + ", ".join(f"{k}={v}" for k, v in h.qualification.items()))
    if h.deal_value is not None:
        lines.append(f"deal value:   {h.deal_value:,.2f}")
    say("\n".join(lines))
    rows = [
        [
            when(e.at),
            e.kind,
            escape(e.actor),
            escape(", ".join(f"{k}={_flat(v)}" for k, v in e.detail.items() if v not in EMPTY)),
        ]
        for e in events
    ]
    columns = [("at", False), ("event", False), ("by", False), ("detail", True)]
    show_list("Events", columns, rows, record="at")


@handoff_app.command("packet")
def handoff_packet_command(handoff_id: Annotated[int, typer.Argument(metavar="ID")]) -> None:
    """The handoff packet as the rep's email shows it: who, score and why, interests,
    prep checklist, notes, timeline (times in your zone: BATON_TIMEZONE)."""
    from dataclasses import replace

    from baton.notify.render import render_email
    from baton.services.packet import handoff_packet

    with work() as ctx:
        packet = handoff_packet(ctx, handoff_id, actor=LOCAL)
    zone = reader_zone_name()  # the operator reads it, not the rep
    if zone is not None:
        packet = replace(packet, time_zone=zone)
    typer.echo(render_email("handoff.assigned", packet).text)


def _verdict_done(ctx: Context, handoff: Any, what: str) -> None:
    from baton.services.leads import get_lead

    stage = get_lead(ctx, handoff.lead_id, actor=LOCAL).stage
    say(f"handoff {handoff.id} {what}; lead {handoff.lead_id} is now {stage}")


HandoffArg = Annotated[int, typer.Argument(metavar="ID", help="The handoff's id.")]
OccurredAtOption = Annotated[
    str | None,
    typer.Option(
        "--occurred-at",
        help="When it really happened, if earlier (2026-03-02T14:05:00Z; no zone: UTC): "
        "recorded as history; never in the future or before the lead's last stage change.",
    ),
]


def _occurred_at(text: str | None) -> Any:
    """``--occurred-at`` as an aware moment (``None`` when not given)."""
    if text is None:
        return None
    from baton.domain.dates import read_instant

    try:
        return read_instant(text)
    except ValueError as exc:
        raise fail(f"--occurred-at: {exc}") from None


@handoff_app.command("accept")
def handoff_accept(
    handoff_id: HandoffArg, actor: VerdictActor, occurred_at: OccurredAtOption = None
) -> None:
    """Accept the lead (it becomes a SAL)."""
    from baton.services.handoffs import accept_handoff

    at = _occurred_at(occurred_at)
    with work() as ctx:
        handoff = accept_handoff(ctx, handoff_id, actor=operator(actor), occurred_at=at)
        _verdict_done(ctx, handoff, f"accepted by {actor}")


@handoff_app.command("reject")
def handoff_reject(
    handoff_id: HandoffArg,
    code: Annotated[str, typer.Argument(help="A rejection code of the contract.")],
    actor: VerdictActor,
    note: Annotated[str | None, typer.Option("--note", help="Why, in words.")] = None,
    occurred_at: OccurredAtOption = None,
) -> None:
    """Turn the lead down with CODE from the contract's rejection reasons."""
    from baton.services.handoffs import reject_handoff

    at = _occurred_at(occurred_at)
    with work() as ctx:
        handoff = reject_handoff(
            ctx, handoff_id, code=code, note=note, actor=operator(actor), occurred_at=at
        )
        _verdict_done(ctx, handoff, f"rejected ({code})")


@handoff_app.command("touch")
def handoff_touch(
    handoff_id: HandoffArg,
    kind: Annotated[TouchKind, typer.Argument(help="call, email or meeting")],
    actor: VerdictActor,
    note: Annotated[str | None, typer.Option("--note", help="What happened.")] = None,
) -> None:
    """Record a call, email or meeting with the lead (the first meets the touch SLA)."""
    from baton.services.handoffs import log_touch

    with work() as ctx:
        handoff = log_touch(ctx, handoff_id, kind=kind.value, note=note, actor=operator(actor))
        _verdict_done(ctx, handoff, f"touched ({kind.value})")


@handoff_app.command("qualify")
def handoff_qualify(
    handoff_id: HandoffArg,
    actor: VerdictActor,
    field: Annotated[
        list[str] | None,
        typer.Option("--field", help="NAME=VALUE, repeat: --field budget=40k --field timing=Q3"),
    ] = None,
) -> None:
    """Qualify the lead (SAL → SQL) with the fields the contract asks for."""
    from baton.services.handoffs import qualify_handoff

    fields: dict[str, str] = {}
    for pair in field or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise fail(f"--field takes NAME=VALUE, got {pair!r}")
        fields[key.strip()] = value.strip()
    with work() as ctx:
        _verdict_done(
            ctx, qualify_handoff(ctx, handoff_id, fields=fields, actor=operator(actor)), "qualified"
        )


AmountOption = Annotated[float | None, typer.Option("--amount", min=0, help="The deal value.")]


@handoff_app.command("opportunity")
def handoff_opportunity(
    handoff_id: HandoffArg, actor: VerdictActor, amount: AmountOption = None
) -> None:
    """Open an opportunity on a qualified lead (SQL → opportunity)."""
    from baton.services.handoffs import open_opportunity

    with work() as ctx:
        handoff = open_opportunity(ctx, handoff_id, amount=amount, actor=operator(actor))
        _verdict_done(ctx, handoff, "is an opportunity")


@handoff_app.command("won")
def handoff_won(
    handoff_id: HandoffArg,
    actor: VerdictActor,
    amount: AmountOption = None,
    note: Annotated[str | None, typer.Option("--note", help="A word on the deal.")] = None,
    occurred_at: OccurredAtOption = None,
) -> None:
    """The deal is won: the lead becomes a customer."""
    from baton.services.handoffs import won_handoff

    at = _occurred_at(occurred_at)
    with work() as ctx:
        handoff = won_handoff(
            ctx, handoff_id, amount=amount, note=note, actor=operator(actor), occurred_at=at
        )
        _verdict_done(ctx, handoff, "won")


@handoff_app.command("lost")
def handoff_lost(
    handoff_id: HandoffArg,
    actor: VerdictActor,
    reason: Annotated[str, typer.Option("--reason", help="Why the deal was lost.")],
    occurred_at: OccurredAtOption = None,
) -> None:
    """The deal is lost, with a reason."""
    from baton.services.handoffs import lost_handoff

    at = _occurred_at(occurred_at)
    with work() as ctx:
        handoff = lost_handoff(
            ctx, handoff_id, reason=reason, actor=operator(actor), occurred_at=at
        )
        _verdict_done(ctx, handoff, "lost")


@handoff_app.command("reassign")
def handoff_reassign(
    handoff_id: HandoffArg,
    actor: Annotated[
        str, typer.Option("--actor", help="Who reassigns, recorded on it (e.g. the manager).")
    ],
    to: Annotated[
        str | None, typer.Option("--to", help="The new rep (default: the next available).")
    ] = None,
) -> None:
    """Move a handoff to another rep (managers only); a new handoff replaces it."""
    from baton.services.handoffs import reassign_handoff

    with work() as ctx:
        new = reassign_handoff(ctx, handoff_id, to_email=to, actor=operator(actor))
    say(f"handoff {handoff_id} reassigned: handoff {new.id} is now {new.status} to {new.rep_email}")


@handoff_app.command("assign")
def handoff_assign(
    handoff_id: HandoffArg,
    to: Annotated[str, typer.Option("--to", help="The rep who gets it (email).")],
    actor: Annotated[
        str, typer.Option("--actor", help="Who assigns, recorded on it (e.g. the manager).")
    ],
    override: Annotated[
        str | None,
        typer.Option(
            "--override",
            help="Why the rep gets it although away, out of office or off hours (recorded).",
        ),
    ] = None,
) -> None:
    """Give a queued handoff to a named rep (managers only): active and under capacity;
    an unavailable rep only with --override and the reason."""
    from baton.services.handoffs import assign_handoff

    with work() as ctx:
        done = assign_handoff(
            ctx, handoff_id, to_email=to, override_reason=override, actor=operator(actor)
        )
    due = f", accept by {when(done.accept_due_at)}" if done.accept_due_at else ""
    say(f"handoff {handoff_id} assigned to {done.rep_email}{due}")
