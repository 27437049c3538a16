"""`baton import leads|activities|spend`: CSV files in; rejected lines to FILE.errors.csv,
ready to be mended and imported again."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from baton.cli._common import ActorOption, context
from baton.cli._output import console, errors, fail, progress
from baton.domain.access import operator

if TYPE_CHECKING:
    from collections.abc import Callable

    from rich.progress import Progress, TaskID

    from baton.services.imports import ImportReport

import_app = typer.Typer(
    help="Import leads, activities or marketing spend from CSV files.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)


def _parse_map(pairs: list[str]) -> dict[str, str]:
    from baton.services.imports import parse_column_map

    try:
        return parse_column_map(pairs)
    except ValueError as exc:
        raise fail(f"--map takes {exc}") from None


def _report(kind: str, source: Path, report: ImportReport, errors_file: Path | None) -> None:
    table = Table(title=f"Import of {source.name}")
    table.add_column("result")
    table.add_column("rows", justify="right")
    rows = [("lines read", report.lines), ("rows read", report.rows)]
    if report.blank_lines:
        rows.append(("blank lines", report.blank_lines))
    rows.append(("rows imported", report.imported))
    if kind == "leads":
        rows += [
            ("of which with a value left out", report.rows_with_warnings),
            ("leads created", report.created),
            ("leads updated", report.updated),
            ("unchanged", report.unchanged),
            ("possible duplicates flagged", report.possible_duplicates),
        ]
    else:
        rows += [
            ("events stored", report.stored),
            ("already imported (same key)", report.duplicates),
            ("leads created", report.created),
        ]
    rows.append(("rows rejected", report.rejected))
    for name, value in rows:
        table.add_row(name, f"{value:,}")
    console.print(table)
    if report.extra_columns:
        target = "attributes" if kind == "leads" else "properties"
        console.print(f"Columns kept as {target}: {', '.join(report.extra_columns)}", markup=False)
    if report.dropped_columns:
        console.print(f"Columns left out: {', '.join(report.dropped_columns)}", markup=False)
    if report.hint:
        errors.print(f"Hint: {report.hint}", markup=False)
    _lines_to_mend(source, report, errors_file)


def _writable(path: Path, chosen: bool) -> tuple[Path, Any]:
    """``path`` opened for writing; beside us (the current folder) when its own folder
    is read-only (a shared data set), unless the user chose it (then an error)."""
    try:
        return path, path.open("w", newline="", encoding="utf-8")
    except OSError:
        if chosen:
            raise fail(f"cannot write {path}; give another --errors file") from None
        path = Path.cwd() / path.name
        return path, path.open("w", newline="", encoding="utf-8")


def _lines_to_mend(source: Path, report: ImportReport, errors_file: Path | None) -> None:
    """Write the rejected lines to FILE.errors.csv (and the lines imported with a value
    left out to FILE.warnings.csv): each line's own columns under the file's header,
    after its line number and its messages, so that the user mends the cells and
    imports the file as it is. Show the first five problems; exit 1 when any row was
    rejected."""
    from baton.services.imports import write_lines_to_mend

    path = errors_file or source.with_name(source.name + ".errors.csv")
    name = path.name.removesuffix(".csv").removesuffix(".errors")
    warnings_path = path.with_name(name + ".warnings.csv")
    if report.errors:
        path, out = _writable(path, errors_file is not None)
        with out:
            write_lines_to_mend(report, out)
    if report.warnings:
        warnings_path, out = _writable(warnings_path, False)
        with out:
            write_lines_to_mend(report, out, warnings=True)
    shown = report.errors or report.warnings
    suffix = "" if report.errors else " (left out; the row was imported)"
    for problem in shown[:5]:
        errors.print(
            f"line {problem.row}: {problem.field}: {problem.message}{suffix}", markup=False
        )
    if len(shown) > 5:
        errors.print(f"... and {len(shown) - 5} more")
    if report.warnings:
        errors.print(
            f"{report.rows_with_warnings:,} row(s) imported with a value left out "
            f"({len(report.warnings):,} value(s)): {warnings_path} (mend and import it to "
            "fill them in)",
            markup=False,
        )
    if report.errors:
        raise fail(
            f"{report.rejected} row(s) rejected; all other rows were imported. The rejected "
            f"lines are in {path}: mend them there and import that file as it is"
        )


def _row_errors(
    source: Path,
    found: list[Any],
    rejected: int,
    errors_file: Path | None,
    warnings: list[Any] | None = None,
) -> None:
    """The spend import's FILE.errors.csv: one row per problem (line, field, message,
    outcome), through the export path; show the first five, and exit 1 when any row
    was rejected."""
    warnings = warnings or []
    if not found and not warnings:
        return
    path = errors_file or source.with_name(source.name + ".errors.csv")
    listed = sorted(
        [(e, "row rejected") for e in found] + [(w, "value left out") for w in warnings],
        key=lambda item: item[0].row,
    )
    try:
        out = path.open("w", newline="", encoding="utf-8")
    except OSError:
        if errors_file is not None:
            raise fail(f"cannot write {errors_file}; give another --errors file") from None
        # The file's folder is read-only (a shared data set): write beside us instead.
        path = Path.cwd() / path.name
        out = path.open("w", newline="", encoding="utf-8")
    from baton.services.exports import write_table

    with out:
        write_table(
            out,
            ["line", "field", "message", "outcome"],
            ([error.row, error.field, error.message, outcome] for error, outcome in listed),
        )
    suffix = "" if found else " (left out; the row was imported)"
    for error in (found or warnings)[:5]:
        errors.print(f"line {error.row}: {error.field}: {error.message}{suffix}", markup=False)
    more = len(found or warnings) - 5
    if more > 0:
        errors.print(f"... and {more} more")
    if warnings:
        rows = len({w.row for w in warnings})
        errors.print(
            f"{rows:,} row(s) imported with a value left out ({len(warnings):,} value(s)). "
            f"Details: {path}",
            markup=False,
        )
    if found:
        raise fail(f"{rejected} row(s) rejected; all other rows were imported. Details: {path}")


EncodingOption = Annotated[
    str, typer.Option(help="Text encoding of the file (utf-8, latin-1, utf-16, cp1252...).")
]
MapOption = Annotated[
    list[str] | None,
    typer.Option(
        "--map",
        help="Map a header to a field: --map 'Work Email=email', to an attribute: "
        "--map 'Lead Number=attributes.number', or leave it out: --map 'Tags=-' (repeat).",
    ),
]
BlankOption = Annotated[
    list[str] | None,
    typer.Option(
        "--blank",
        help="A value that means 'not given', in any case: --blank Select (repeat).",
    ),
]
SystemOption = Annotated[
    str | None,
    typer.Option(
        "--system",
        help="The system the file's external ids come from (default: 'default').",
    ),
]
ErrorsOption = Annotated[
    Path | None,
    typer.Option("--errors", help="Where to write rejected rows (default: FILE.errors.csv)."),
]
DayFirstOption = Annotated[
    bool,
    typer.Option(
        "--day-first",
        help="Read dates like 02/03/2026 as 2 March (day first); without it, as February 3.",
    ),
]
TimezoneOption = Annotated[
    str,
    typer.Option(
        "--timezone",
        help="IANA zone of times written without one (default UTC: what servers and "
        "exports write).",
    ),
]


def _zone(name: str) -> str:
    """``name`` when it is a time zone this machine knows; a CLI error otherwise."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise fail(f"unknown time zone {name!r} (use an IANA name like Europe/Paris)") from None
    return name


def _steps(bar: Progress, what: str) -> Callable[[str, int, int], None]:
    """The import's progress on ``bar``: one line per step (checking the file's rows,
    then writing the valid ones), each with its total from the start."""
    tasks: dict[str, TaskID] = {}

    def advance(step: str, done: int, total: int) -> None:
        if step not in tasks:
            tasks[step] = bar.add_task(f"{step.capitalize()} {what}", total=total)
        bar.update(tasks[step], completed=done, total=total)

    return advance


@import_app.command("leads")
def import_leads_command(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    column_map: MapOption = None,
    blank: BlankOption = None,
    system: SystemOption = None,
    errors_file: ErrorsOption = None,
    actor: ActorOption = "cli",
    encoding: EncodingOption = "utf-8-sig",
    day_first: DayFirstOption = False,
    timezone: TimezoneOption = "UTC",
) -> None:
    """Import leads: create-or-update by external id, email or phone.

    Headers are matched forgivingly (Email, E-mail, Email Address...); unknown columns are
    kept as attributes. A row that cannot be identified is rejected: its line goes to
    FILE.errors.csv with its own columns and its problems; mend the cells there and import
    that file as it is (exit code 1 when any row was rejected). A bad optional value (a
    country nobody can read) is left out and its row imported; such lines go to
    FILE.warnings.csv the same way. A Baton lead export imports as it is.

    A created_at column (Created Date, Create Date...) dates each capture, and the lead
    when the import creates it: 2026-03-02, 03/02/2026 (--day-first: 02/03/2026),
    March 2, 2026, 2 Mar 2026 14:05, Unix time... Times without a zone are in --timezone."""
    from baton.services.imports import import_leads

    zone = _zone(timezone)
    with context() as ctx, progress() as bar:
        report = import_leads(
            ctx,
            file,
            actor=operator(actor),
            column_map=_parse_map(column_map or []),
            progress=_steps(bar, "leads"),
            encoding=encoding,
            blanks=blank or [],
            external_system=system,
            naive_timezone=zone,
            day_first=day_first,
        )
    _report("leads", file, report, errors_file)


@import_app.command("activities")
def import_activities_command(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    timezone: TimezoneOption = "UTC",
    column_map: MapOption = None,
    errors_file: ErrorsOption = None,
    actor: ActorOption = "cli",
    encoding: EncodingOption = "utf-8-sig",
    day_first: DayFirstOption = False,
) -> None:
    """Import engagement events (email, type, occurred_at, idempotency_key, ...).

    Other columns become event properties (url, subject...). A file imported twice stores
    its keyed events once. Rejected lines go to FILE.errors.csv, to mend and import.
    Types are read in any case and spelling (Page View, page-view); every row needs its
    time: 2026-03-02T14:05:00Z, 03/02/2026 14:05 (--day-first:
    02/03/2026), 2 Mar 2026 14:05, Unix time... Times without a zone are in --timezone."""
    from baton.services.imports import import_activities

    zone = _zone(timezone)
    with context() as ctx, progress() as bar:
        report = import_activities(
            ctx,
            file,
            actor=operator(actor),
            naive_timezone=zone,
            column_map=_parse_map(column_map or []),
            progress=_steps(bar, "activities"),
            encoding=encoding,
            day_first=day_first,
        )
    _report("activities", file, report, errors_file)


@import_app.command("spend")
def import_spend_command(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    errors_file: ErrorsOption = None,
    actor: ActorOption = "cli",
    encoding: EncodingOption = "utf-8-sig",
    day_first: DayFirstOption = False,
) -> None:
    """Import marketing spend: source, campaign, start, end, amount[, currency].

    `end` is included; currency defaults to USD; campaign may be empty (spend on the
    whole source). A `month` column (2026-03, March 2026) may stand for start and end.
    Days may be written 2026-03-02, 03/02/2026 (--day-first: 02/03/2026), 2 Mar 2026...
    A row for a source, campaign and days already stored replaces its amount. Rejected
    rows go to FILE.errors.csv with their line numbers (exit code 1)."""
    from baton.services.reports import import_spend

    with context() as ctx:
        report = import_spend(
            ctx, file, actor=operator(actor), encoding=encoding, day_first=day_first
        )
    table = Table(title=f"Import of {file.name}")
    table.add_column("result")
    table.add_column("rows", justify="right")
    for name, value in (
        ("rows read", report.rows),
        ("spend rows stored", report.stored),
        ("of which replaced an amount", report.replaced),
        ("rows rejected", report.rejected),
    ):
        table.add_row(name, f"{value:,}")
    console.print(table)
    _row_errors(file, report.errors, report.rejected, errors_file)
