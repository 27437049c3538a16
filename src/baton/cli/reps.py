"""`baton team|rep|account ...`: the sales side that routing picks from."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from baton.cli._common import LOCAL, ActorOption, valid, work
from baton.cli._output import console, fail, say, show_list, when
from baton.domain.access import operator

team_app = typer.Typer(
    help="Sales teams (routing pools name them).", no_args_is_help=True, rich_markup_mode="markdown"
)
rep_app = typer.Typer(
    help="Sales reps: working hours, capacity, patch, out-of-office periods.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)
account_app = typer.Typer(
    help="Accounts: email domains owned by a rep (their leads go to the owner).",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)


def _parse_hours(values: list[str]) -> dict[str, list[str]]:
    """``--hours mon-fri=09:00-17:00 --hours sat=10:00-14:00`` as the mapping reps
    store; days left out are days off."""
    from baton.domain.business_hours import WEEKDAYS

    spec: dict[str, list[str]] = {}
    for value in values:
        days_text, sep, spans = value.partition("=")
        if not sep or not days_text.strip() or not spans.strip():
            raise fail(
                f"--hours takes DAYS=HH:MM-HH:MM[,HH:MM-HH:MM], e.g. mon-fri=09:00-17:00; "
                f"got {value!r}"
            )
        for part in days_text.lower().split(","):
            first, dash, last = (x.strip() for x in part.partition("-"))
            if first not in WEEKDAYS or (dash and last not in WEEKDAYS):
                raise fail(
                    f"--hours {value!r}: unknown day in {part.strip()!r}; days are "
                    f"{' '.join(WEEKDAYS)} (a range: mon-fri)"
                )
            start = WEEKDAYS.index(first)
            end = WEEKDAYS.index(last) if dash else start
            if end < start:
                raise fail(f"--hours {value!r}: {part.strip()} runs backwards; write e.g. mon-fri")
            for day in WEEKDAYS[start : end + 1]:
                spec.setdefault(day, []).extend(s.strip() for s in spans.split(",") if s.strip())
    return spec


def _hours_text(spec: dict[str, list[str]]) -> str:
    """Working hours in the ``--hours`` syntax, consecutive equal days grouped:
    ``mon-fri 09:00-17:00``."""
    from baton.domain.business_hours import WEEKDAYS

    groups: list[tuple[str, str, str]] = []
    for day in WEEKDAYS:
        spans = ",".join(spec.get(day, []))
        if groups and groups[-1][2] == spans and spans:
            groups[-1] = (groups[-1][0], day, spans)
        else:
            groups.append((day, day, spans))
    parts = [f"{a}-{b} {s}" if a != b else f"{a} {s}" for a, b, s in groups if s]
    return "; ".join(parts) or "never"


def _rep_values(
    *,
    name: str | None,
    team: str | None,
    timezone: str | None,
    hours: list[str] | None,
    capacity: int | None,
    weight: float | None,
    tags: list[str] | None,
    countries: list[str] | None,
    segments: list[str] | None,
    manager: str | None,
) -> dict[str, Any]:
    given: dict[str, Any] = {
        "name": name,
        "team": team,
        "timezone": timezone,
        "working_hours": _parse_hours(hours) if hours else None,
        "capacity": capacity,
        "weight": weight,
        "tags": tags,
        "countries": countries,
        "segments": segments,
        "manager_email": manager,
    }
    return {k: v for k, v in given.items() if v is not None}


def _rep_line(rep: Any) -> str:
    return (
        f"{rep.email} ({rep.name}): team {rep.team or '—'}, {rep.timezone}, "
        f"{_hours_text(rep.working_hours)}, {rep.status}, {rep.open_handoffs}/{rep.capacity} "
        "open handoffs"
    )


TeamOption = Annotated[str | None, typer.Option("--team", help="Team name.")]
TimezoneOption = Annotated[
    str | None, typer.Option("--timezone", help="IANA time zone, e.g. Europe/Berlin.")
]
HoursOption = Annotated[
    list[str] | None,
    typer.Option(
        "--hours",
        help="Working hours as DAYS=HH:MM-HH:MM[,HH:MM-HH:MM] in local time, repeatable: "
        "--hours mon-fri=09:00-17:00 --hours sat=10:00-14:00. Days left out are off.",
    ),
]
CapacityOption = Annotated[
    int | None, typer.Option("--capacity", help="Most open handoffs at once.")
]
WeightOption = Annotated[
    float | None, typer.Option("--weight", help="Share in weighted routing (default 1).")
]
TagOption = Annotated[list[str] | None, typer.Option("--tag", help="A routing tag (repeat).")]
CountryOption = Annotated[
    list[str] | None, typer.Option("--country", help="A two-letter country covered (repeat).")
]
SegmentOption = Annotated[
    list[str] | None, typer.Option("--segment", help="A segment covered (repeat).")
]
ManagerOption = Annotated[str | None, typer.Option("--manager", help="The manager's email.")]


@team_app.command("add")
def team_add(name: str, manager: ManagerOption = None, actor: ActorOption = "cli") -> None:
    """Create team NAME (routing pools refer to it: `pool: {team: NAME}`)."""
    from baton.domain.reps import TeamCreate
    from baton.services.reps import create_team

    data = valid(TeamCreate, {"name": name, "manager_email": manager}, {"name": "NAME"})
    with work() as ctx:
        team = create_team(ctx, data, actor=operator(actor))
    say(f"team {team.name} created (id {team.id}), manager {team.manager_email or '—'}")


@team_app.command("list")
def team_list() -> None:
    """Every team with its manager and number of reps."""
    from baton.services.reps import list_teams

    with work() as ctx:
        teams = list_teams(ctx, actor=LOCAL)
    table = Table(title="Teams")
    for column in ("id", "team", "manager", "reps"):
        table.add_column(column, no_wrap=True)
    for t in teams:
        table.add_row(str(t.id), escape(t.name), t.manager_email or "—", str(t.reps))
    console.print(table)


@rep_app.command("add")
def rep_add(
    email: str,
    name: Annotated[str, typer.Option("--name", help="Full name.")],
    team: TeamOption = None,
    timezone: TimezoneOption = None,
    hours: HoursOption = None,
    capacity: CapacityOption = None,
    weight: WeightOption = None,
    tag: TagOption = None,
    country: CountryOption = None,
    segment: SegmentOption = None,
    manager: ManagerOption = None,
    actor: ActorOption = "cli",
) -> None:
    """Add a rep. Defaults: Monday to Friday 09:00-17:00 UTC, 20 open handoffs,
    weight 1."""
    from baton.domain.reps import RepCreate
    from baton.services.reps import create_rep

    values = _rep_values(
        name=name,
        team=team,
        timezone=timezone,
        hours=hours,
        capacity=capacity,
        weight=weight,
        tags=tag,
        countries=country,
        segments=segment,
        manager=manager,
    )
    data = valid(RepCreate, {"email": email, **values})
    with work() as ctx:
        rep = create_rep(ctx, data, actor=operator(actor))
    say(f"rep {rep.id} added: {_rep_line(rep)}")


@rep_app.command("update")
def rep_update(
    email: str,
    name: Annotated[str | None, typer.Option("--name", help="Full name.")] = None,
    team: TeamOption = None,
    timezone: TimezoneOption = None,
    hours: HoursOption = None,
    capacity: CapacityOption = None,
    weight: WeightOption = None,
    tag: TagOption = None,
    country: CountryOption = None,
    segment: SegmentOption = None,
    manager: ManagerOption = None,
    status: Annotated[
        str | None, typer.Option("--status", help="available or away (takes no new leads).")
    ] = None,
    active: Annotated[
        bool | None,
        typer.Option("--active/--inactive", help="An inactive rep (who left) gets nothing."),
    ] = None,
    actor: ActorOption = "cli",
) -> None:
    """Change some settings of the rep EMAIL; options left out stay as they are (a
    repeatable option given replaces its whole list, --hours the whole week)."""
    from baton.domain.reps import RepUpdate
    from baton.services.reps import find_rep, update_rep

    values = _rep_values(
        name=name,
        team=team,
        timezone=timezone,
        hours=hours,
        capacity=capacity,
        weight=weight,
        tags=tag,
        countries=country,
        segments=segment,
        manager=manager,
    )
    if status is not None:
        values["status"] = status
    if active is not None:
        values["active"] = active
    if not values:
        raise fail("nothing to change: give at least one option (see --help)")
    data = valid(RepUpdate, values)
    with work() as ctx:
        rep = update_rep(ctx, find_rep(ctx, email, actor=LOCAL).id, data, actor=operator(actor))
    say(f"rep {rep.id} updated: {_rep_line(rep)}")


@rep_app.command("list")
def rep_list(team: TeamOption = None) -> None:
    """Every rep (or a team's) with hours, status, load and out-of-office periods."""
    from baton.services.reps import list_reps

    with work() as ctx:
        reps = list_reps(ctx, team=team, actor=LOCAL)
    # A table when the email, status and load fit whole with room for the rest (a wide
    # terminal); else one block per rep, a field a line: piped at 80 columns, the table
    # squeezed every column to a letter and cut the out-of-office periods off.
    columns = [
        ("rep", False),
        ("name", True),
        ("team", False),
        ("status", False),
        ("load", False),
        ("zone", False),  # one word, never cut: "Asia/Kolkata"
        ("hours", True),
        ("out of office", True),
    ]
    rows = [
        [
            escape(cell)
            for cell in (
                r.email,
                r.name,
                r.team or "—",
                r.status if r.active else "inactive",
                f"{r.open_handoffs}/{r.capacity}",
                r.timezone,
                _hours_text(r.working_hours),
                "\n".join(f"{when(a.starts_at)} → {when(a.ends_at)}" for a in r.absences),
            )
        ]
        for r in reps
    ]
    show_list(f"Reps of team {team}" if team else "Reps", columns, rows, record="rep")


@rep_app.command("away")
def rep_away(
    email: str,
    starts: Annotated[
        str, typer.Option("--from", help="Start, ISO 8601 (UTC unless it has an offset).")
    ],
    ends: Annotated[str, typer.Option("--until", help="End (exclusive), ISO 8601.")],
    note: Annotated[str | None, typer.Option("--note", help="Why (shown to managers).")] = None,
    actor: ActorOption = "cli",
) -> None:
    """Record an out-of-office period for the rep EMAIL: no new handoffs, and SLA
    business time stops."""
    from baton.domain.reps import AbsenceCreate
    from baton.services.reps import add_absence, find_rep

    data = valid(AbsenceCreate, {"starts_at": starts, "ends_at": ends, "note": note})
    with work() as ctx:
        rep = add_absence(ctx, find_rep(ctx, email, actor=LOCAL).id, data, actor=operator(actor))
    absence = max(rep.absences, key=lambda a: a.id)
    say(
        f"{rep.email} is out of office from {when(absence.starts_at)} until "
        f"{when(absence.ends_at)} (absence {absence.id})"
    )


@account_app.command("set")
def account_set(
    domain: str,
    owner: Annotated[str, typer.Option("--owner", help="Email of the owning rep.")],
    name: Annotated[str | None, typer.Option("--name", help="The company's name.")] = None,
    actor: ActorOption = "cli",
) -> None:
    """Create or update the account of DOMAIN and its owner."""
    from baton.domain.reps import AccountCreate
    from baton.services.reps import upsert_account

    data = valid(AccountCreate, {"domain": domain, "name": name, "owner_email": owner})
    with work() as ctx:
        account = upsert_account(ctx, data, actor=operator(actor))
    say(
        f"account {account.id}: {account.domain} ({account.name or 'no name'}) is owned by "
        f"{account.owner_email}"
    )


@account_app.command("list")
def account_list() -> None:
    """Every account with its owner."""
    from baton.services.reps import list_accounts

    with work() as ctx:
        accounts = list_accounts(ctx, actor=LOCAL)
    table = Table(title="Accounts")
    for column in ("domain", "name", "owner"):
        table.add_column(column, no_wrap=column != "name")
    for a in accounts:
        table.add_row(a.domain, escape(a.name or "—"), a.owner_email or "—")
    console.print(table)


channel_app = typer.Typer(
    help="Slack and Microsoft Teams channels of a rep or a team, and email on or off.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)
rep_app.add_typer(channel_app, name="channel")

ChannelTeamOption = Annotated[
    str | None, typer.Option("--team", help="A team's name instead of a rep's EMAIL.")
]


def _owner(ctx: Any, email: str | None, team: str | None) -> dict[str, int]:
    """``rep_id`` or ``team_id`` for the use cases, from EMAIL or ``--team``."""
    from baton.services.reps import find_rep, list_teams

    if (email is None) == (team is None):
        raise fail("give a rep's EMAIL or --team NAME (one of them)")
    if email is not None:
        return {"rep_id": find_rep(ctx, email, actor=LOCAL).id}
    for found in list_teams(ctx, actor=LOCAL):
        if found.name == team:
            return {"team_id": found.id}
    raise fail(f"no team named {team!r} (see `baton team list`)")


@channel_app.command("add")
def channel_add(
    kind: Annotated[str, typer.Argument(help="slack or teams")],
    email: Annotated[str | None, typer.Argument(help="The rep's email.")] = None,
    team: ChannelTeamOption = None,
    label: Annotated[str | None, typer.Option("--label", help="A name, e.g. #ana-leads.")] = None,
    url: Annotated[
        str | None,
        typer.Option(
            "--url",
            help="The incoming webhook's URL; omit it to type it unseen or pipe it in "
            "(a URL on the command line stays in the shell's history).",
        ),
    ] = None,
    actor: ActorOption = "cli",
) -> None:
    """Post assignments, reminders (rep) and escalations (team) to a Slack or Teams
    incoming webhook. The URL is a secret: it is not shown again."""
    from baton.services.chat import add_channel

    secret = url or typer.prompt("Incoming webhook URL", hide_input=True)
    with work({"url": "--url", "kind": "KIND", "label": "--label", "owner": "EMAIL/--team"}) as ctx:
        channel, _ = add_channel(
            ctx,
            kind=kind,
            url=secret,
            label=label,
            actor=operator(actor),
            **_owner(ctx, email, team),
        )
    owner = email or f"team {team}"
    say(
        f"{channel.kind} channel {channel.id} ({channel.label}) added for {owner}: "
        f"{channel.url_hint}"
    )


@channel_app.command("list")
def channel_list(
    email: Annotated[str | None, typer.Argument(help="The rep's email.")] = None,
    team: ChannelTeamOption = None,
) -> None:
    """A rep's (or a team's) channels; URLs show only their host and last characters."""
    from baton.services.chat import get_notifications, list_channels

    with work() as ctx:
        owner = _owner(ctx, email, team)
        channels = list_channels(ctx, actor=LOCAL, **owner)
        email_on = (
            get_notifications(ctx, owner["rep_id"], actor=LOCAL).email
            if "rep_id" in owner
            else None
        )
    title = f"Chat channels of {email or 'team ' + str(team)}"
    if email_on is not None:
        title += f" (email {'on' if email_on else 'off'})"
    table = Table(title=title)
    for column in ("id", "kind", "label", "url", "on", "added"):
        table.add_column(column, no_wrap=column != "label", overflow="fold")
    for c in channels:
        table.add_row(
            str(c.id),
            c.kind,
            escape(c.label),
            escape(c.url_hint),
            "yes" if c.active else "no",
            f"{when(c.created_at)} by {escape(c.created_by)}",
        )
    console.print(table)


@channel_app.command("remove")
def channel_remove(channel_id: int, actor: ActorOption = "cli") -> None:
    """Remove chat channel CHANNEL_ID: its URL is forgotten; messages waiting for it fail."""
    from baton.services.chat import remove_channel

    with work() as ctx:
        remove_channel(ctx, channel_id, actor=operator(actor))
    say(f"chat channel {channel_id} removed")


@channel_app.command("switch")
def channel_switch(
    email: Annotated[str, typer.Argument(help="The rep's email.")],
    what: Annotated[str, typer.Argument(help="email, or a channel id")],
    state: Annotated[str, typer.Argument(help="on or off")],
    actor: ActorOption = "cli",
) -> None:
    """Turn the rep's email, or one of their channels, on or off."""
    from baton.services.chat import set_notifications
    from baton.services.reps import find_rep

    if state not in ("on", "off"):
        raise fail(f"STATE is on or off, not {state!r}")
    if what != "email" and not what.isdigit():
        raise fail(f"WHAT is email or a channel id (see `baton rep channel list`), not {what!r}")
    on = state == "on"
    with work() as ctx:
        rep_id = find_rep(ctx, email, actor=LOCAL).id
        if what == "email":
            set_notifications(ctx, rep_id, email=on, actor=operator(actor))
        else:
            set_notifications(ctx, rep_id, channels={int(what): on}, actor=operator(actor))
    say(f"{email}: {'email' if what == 'email' else 'chat channel ' + what} {state}")
