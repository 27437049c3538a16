"""`baton plan capacity`: simulate MQL arrivals through the real routing and SLA code,
and search the reps (and their hours) needed to touch MQLs in time."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from baton.cli._common import LOCAL, valid, work
from baton.cli._output import console, fail, fit_table, heading, progress, say

if TYPE_CHECKING:
    from baton.services.capacity import CapacityPlan

plan_app = typer.Typer(
    help="Plans: how many reps, on which hours, to meet the SLA.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)


class PlanFormat(StrEnum):
    table = "table"
    json = "json"


NAMES = {
    "rates": "--rate",
    "rates_csv": "--rates-csv",
    "reps": "--reps",
    "hours": "--hours",
    "timezone": "--tz",
    "minutes_per_lead": "--minutes-per-lead",
    "weeks": "--weeks",
    "target": "--target",
    "within": "--within",
    "runs": "--runs",
    "shift_hours": "--shift-hours",
    "seed": "--seed",
    "capacity": "--capacity",
}
"""Each field of the request named as the user types it (errors say ``--runs``)."""

DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
BAR = 40


@plan_app.command("capacity")
def capacity(
    rate: Annotated[
        list[str] | None,
        typer.Option(
            "--rate",
            help="MQLs per hour for some hours of the week, e.g. 'Mon-Fri 09-17=6', "
            "'Sat=1' (repeat; later ones win). Default: the MQL history.",
        ),
    ] = None,
    rates_csv: Annotated[
        Path | None,
        typer.Option("--rates-csv", help="CSV of 168 rates (Monday 00:00 first, last column)."),
    ] = None,
    weeks: Annotated[int, typer.Option("--weeks", help="Weeks of MQL history to read.")] = 8,
    reps: Annotated[
        int | None,
        typer.Option("--reps", help="Hypothetical reps instead of the current roster."),
    ] = None,
    hours: Annotated[
        str, typer.Option("--hours", help="The hypothetical reps' hours: 'Mon-Fri 08-18'.")
    ] = "Mon-Fri 09-17",
    tz: Annotated[
        str, typer.Option("--tz", help="IANA zone of --rate, --hours and the table.")
    ] = "UTC",
    capacity: Annotated[
        int, typer.Option("--capacity", help="Max open handoffs of a hypothetical rep.")
    ] = 20,
    minutes_per_lead: Annotated[
        float | None,
        typer.Option(
            "--minutes-per-lead",
            help="Work per lead (default: median rep delay in history, else 10).",
        ),
    ] = None,
    within: Annotated[float, typer.Option("--within", help="Speed-to-lead goal in minutes.")] = 5,
    target: Annotated[
        float | None,
        typer.Option("--target", help="Share to reach (0.9): search the reps to add."),
    ] = None,
    shift_hours: Annotated[
        int, typer.Option("--shift-hours", help="Length of the shifts the search tries.")
    ] = 8,
    runs: Annotated[
        int | None,
        typer.Option(
            "--runs",
            help="Seeded runs of a week, pooled (default 3, more for small volumes: "
            "about 500 MQLs simulated, at most 20 runs).",
        ),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the arrivals.")] = 7,
    output: Annotated[PlanFormat, typer.Option("--format", help="table or json.")] = (
        PlanFormat.table
    ),
) -> None:
    """Predict the share of MQLs touched in time and the speed-to-lead spread, by
    running a simulated week through the real routing and SLA code (nothing is
    written); with --target, add reps one at a time until the target is met."""
    from baton.services.capacity import CapacityRequest, plan_capacity, plan_json

    csv_text = None
    if rates_csv is not None:
        try:
            csv_text = rates_csv.read_text(encoding="utf-8")
        except OSError as error:
            raise fail(f"--rates-csv: cannot read {rates_csv}: {error.strerror}") from None
    request = valid(
        CapacityRequest,
        {
            "rates": rate or None,
            "rates_csv": csv_text,
            "weeks": weeks,
            "reps": reps,
            "hours": hours,
            "timezone": tz,
            "capacity": capacity,
            "minutes_per_lead": minutes_per_lead,
            "within": within,
            "target": target,
            "shift_hours": shift_hours,
            "runs": runs,
            "seed": seed,
        },
        NAMES,
    )
    with work(NAMES) as ctx:
        if target is None:
            plan = plan_capacity(ctx, request, actor=LOCAL, max_search_arrivals=None)
        else:
            with progress() as bar:
                task = bar.add_task("searching reps", total=None)

                def step(added: int, share: float) -> None:
                    bar.update(
                        task,
                        completed=added,
                        description=f"searching reps: +{added}, {share:.0%} in time",
                    )

                plan = plan_capacity(
                    ctx, request, actor=LOCAL, progress=step, max_search_arrivals=None
                )
    if output is PlanFormat.json:
        say(json.dumps(plan_json(plan), indent=2))
        return
    _show(plan)


def _minutes(value: float | None) -> str:
    return "never" if value is None else f"{value:,.1f}"


def _simulated(plan: CapacityPlan) -> str:
    """``326 in 3 runs (the rates expect 276: this draw is 18% high; more --runs even
    it out)``: the Poisson draws of a small volume stray from the rates."""
    runs = f"{plan.runs} run{'s' if plan.runs != 1 else ''}"
    text = f"{plan.mqls_simulated:,} in {runs} (the rates expect {plan.mqls_expected:,.0f}"
    if plan.mqls_expected > 0:
        off = plan.mqls_simulated / plan.mqls_expected - 1
        if abs(off) >= 0.1:
            side = "high" if off > 0 else "low"
            more = "; more --runs even it out" if plan.runs < 20 else ""
            return f"{text}: this draw is {abs(off):.0%} {side}{more})"
    return text + ")"


def _show(plan: CapacityPlan) -> None:
    heading(
        f"Capacity plan, week of {plan.week_of:%Y-%m-%d} ({plan.timezone}): "
        f"{plan.mqls_per_week:,.1f} MQLs/week from {plan.arrivals_from}"
    )
    say(f"Reps: {plan.roster}; {plan.reps} in the plan")
    say(f"Work per lead: {plan.minutes_per_lead:,.1f} min ({plan.minutes_per_lead_from})")
    say(
        f"SLA first touch: {plan.sla_minutes:g} min"
        f"{' of business time' if plan.sla_business_hours else ''} ({plan.sla_from})"
    )
    for warning in plan.warnings:
        console.print(f"[yellow]Warning:[/] {escape(warning)}", highlight=False, soft_wrap=True)
    say("")
    lines = [
        ("MQLs simulated", _simulated(plan)),
        (f"Touched within {plan.within:g} min", f"{plan.share_within:.1%}"),
        ("Touched within the SLA", f"{plan.share_within_sla:.1%}"),
        ("Touched at all", f"{plan.share_touched:.1%}"),
        (
            "Speed to lead (min)",
            f"p50 {_minutes(plan.p50_minutes)}, p90 {_minutes(plan.p90_minutes)}, "
            f"p99 {_minutes(plan.p99_minutes)}",
        ),
    ]
    width = max(len(label) for label, _ in lines) + 2
    for label, value in lines:
        say(f"{label + ':':<{width}}{value}")
    if plan.target is not None:
        verdict = "met" if plan.target_met else "NOT met"
        say(f"Target {plan.target:.0%} within {plan.within:g} min: {verdict}")
    say("")
    heading("Speed to lead")
    top = max((count for _, count in plan.histogram), default=0) or 1
    for label, count in plan.histogram:
        share = count / plan.mqls_simulated if plan.mqls_simulated else 0.0
        bar = "█" * round(BAR * count / top)
        say(f"  {label:>9} | {bar:<{BAR}} {count:>6,} {share:6.1%}")
    if plan.added:
        say("")
        heading("Reps to add")
        for shift in plan.added:
            say(f"  {shift.reps} × {shift.hours}")
    if plan.shifts:
        say("")
        heading("Shifts in the plan")
        for shift in plan.shifts:
            say(f"  {shift.reps} × {shift.hours}")
    say("")
    heading(f"Reps working per hour ({plan.timezone})")
    headers = ["day", *(f"{h:02d}" for h in range(24))]
    rows = [[DAYS[d], *(str(n) if n else "." for n in plan.staffing[d])] for d in range(7)]
    table = fit_table(headers, rows)
    if table is not None:
        console.print(table)
    else:
        for row in rows:
            say(" ".join(f"{c:>2}" for c in row))
    if plan.waiting_reasons:
        say("")
        heading("Why MQLs waited for a rep")
        for reason, count in plan.waiting_reasons:
            say(f"  {count:>6,}  {reason}")
