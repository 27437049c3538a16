"""The tables of ``baton contract backtest``: totals side by side, per week, sent but
rejected by reason, and the threshold sweep."""

from __future__ import annotations

from rich.table import Table

from baton.cli._output import console
from baton.domain.backtest import SideReport, SweepPoint, Totals
from baton.services.backtest import BacktestReport


def _share(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


def _number(value: float | None, unit: str = "") -> str:
    return "—" if value is None else f"{value:,.1f}{unit}"


def _auc(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def _total_rows(t: Totals) -> list[str]:
    return [
        f"{t.mqls:,}",
        _number(t.median_hours_to_mql, " h"),
        _number(t.p90_hours_to_mql, " h"),
        _share(t.accepted_share),
        _share(t.qualified_share),
        _share(t.won_share),
        f"{t.missed_winners:,}",
        f"{sum(t.rejected_by_reason.values()):,}",
        _share(t.precision),
        _share(t.recall),
        _auc(t.roc_auc),
        _auc(t.pr_auc),
    ]


TOTAL_LABELS = (
    "MQLs",
    "first touch → MQL, median",
    "first touch → MQL, p90",
    "accepted by sales (history)",
    "qualified (history)",
    "won (history)",
    "missed winners (won, never an MQL)",
    "sent but rejected",
    "precision (MQL vs won)",
    "recall (MQL vs won)",
    "ROC AUC of the peak score vs won",
    "PR AUC",
)


def show(report: BacktestReport, *, weeks: int = 12) -> None:
    """Print the report's tables."""
    sides = [report.draft] + ([report.against] if report.against else [])
    console.print(
        f"Replayed {report.leads:,} leads"
        + (
            f" ({report.first_touch:%Y-%m-%d} to {report.last_event:%Y-%m-%d})"
            if report.first_touch and report.last_event
            else ""
        )
        + f": {report.won:,} won"
        + ("" if report.outcome == "won" else f" ({report.outcome})")
        + f", {report.accepted:,} accepted, {report.qualified:,} "
        f"qualified, {report.rejected:,} rejected in history. Nothing was changed."
    )
    for warning in report.warnings:
        console.print(f"[yellow]![/] {warning}", highlight=False)
    totals = Table(title="Totals")
    totals.add_column("", no_wrap=True)
    for side in sides:
        totals.add_column(f"{side.label} (MQL at {side.threshold})", justify="right")
    columns = [_total_rows(side.totals) for side in sides]
    for index, label in enumerate(TOTAL_LABELS):
        totals.add_row(label, *(column[index] for column in columns))
    console.print(totals)
    for side in sides:
        if side.totals.missed_sample:
            console.print(
                f"{side.label}: missed winners include lead(s) "
                + ", ".join(str(i) for i in side.totals.missed_sample)
            )
    _weeks(sides, weeks)
    _rejected(sides)
    for side in sides:
        _sweep(side.label, side.sweep)
    for note in report.notes:
        console.print(f"[dim]note: {note}[/]", highlight=False)


def _weeks(sides: list[SideReport], count: int) -> None:
    names = sorted({w.week for side in sides for w in side.weeks})[-count:]
    if not names:
        return
    table = Table(title=f"Per week of the MQL (last {len(names)})")
    table.add_column("week", no_wrap=True, min_width=8)
    for side in sides:
        for column in ("MQLs", "accepted", "won", "rejected", "median h"):
            table.add_column(f"{side.label}: {column}", justify="right")
    by_side = [{w.week: w for w in side.weeks} for side in sides]
    for name in names:
        cells = [name]
        for found in by_side:
            week = found.get(name)
            if week is None:
                cells += ["0", "", "", "", ""]
            else:
                cells += [
                    f"{week.mqls:,}",
                    f"{week.accepted:,}",
                    f"{week.won:,}",
                    f"{week.rejected:,}",
                    _number(week.median_hours_to_mql),
                ]
        table.add_row(*cells)
    console.print(table)


def _rejected(sides: list[SideReport]) -> None:
    codes = sorted({code for side in sides for code in side.totals.rejected_by_reason})
    if not codes:
        return
    table = Table(title="Sent but rejected by sales in history, by reason")
    table.add_column("reason", no_wrap=True)
    for side in sides:
        table.add_column(side.label, justify="right")
    for code in codes:
        table.add_row(code, *(f"{side.totals.rejected_by_reason.get(code, 0):,}" for side in sides))
    console.print(table)


def _sweep(label: str, points: tuple[SweepPoint, ...]) -> None:
    table = Table(title=f"Threshold sweep: {label}")
    for column in ("threshold", "MQLs", "precision", "recall"):
        table.add_column(column, justify="right")
    for point in points:
        mark = " ◀ contract" if point.own else ""
        table.add_row(
            f"{point.threshold:g}{mark}",
            f"{point.mqls:,}",
            _share(point.precision),
            _share(point.recall),
        )
    console.print(table)
