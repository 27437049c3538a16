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
    help="Import leads (or a CRM's history with a saved mapping), activities, marketing "
    "spend, badge scans and reps from CSV files; the Olist data set.",
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
    table.add_column("count", justify="right")
    rows = [("lines read", report.lines), ("rows read", report.rows)]
    if report.blank_lines:
        rows.append(("blank lines", report.blank_lines))
    rows.append(("rows imported", report.imported))
    if kind == "leads":
        rows.append(("of which with a value left out", report.rows_with_warnings))
    rows.append(("rows rejected", report.rejected))
    if kind == "leads":
        # Several rows of one person make one lead: these count leads, not rows.
        outcomes = [
            ("leads created", report.created),
            ("leads updated", report.updated),
            ("leads unchanged", report.unchanged),
            ("new leads queued for the duplicate check", report.duplicate_checks_queued),
        ]
        if report.compared_again:
            outcomes.append(("updated leads to compare again", report.compared_again))
    else:
        outcomes = [
            ("events stored", report.stored),
            ("already imported (same key)", report.duplicates),
            ("leads created", report.created),
        ]
    for name, value in rows:
        table.add_row(name, f"{value:,}")
    table.add_section()
    for name, value in outcomes:
        table.add_row(name, f"{value:,}")
    console.print(table)
    if report.extra_columns:
        target = "attributes" if kind == "leads" else "properties"
        console.print(f"Columns kept as {target}: {', '.join(report.extra_columns)}", markup=False)
    if report.dropped_columns:
        console.print(f"Columns left out: {', '.join(report.dropped_columns)}", markup=False)
    if report.name_column:
        console.print(
            f"Column read as the full name (split into first and last name): {report.name_column}",
            markup=False,
        )
    if kind == "leads":
        _say_not_compared(report)
    if report.hint:
        errors.print(f"Hint: {report.hint}", markup=False)
    _lines_to_mend(source, report, errors_file)


def _say_not_compared(report: ImportReport) -> None:
    """Why the new leads queued for the duplicate check may be fewer than those created."""
    if report.not_compared:
        console.print(
            f"{report.not_compared:,} new leads were not queued for the duplicate check: "
            "nothing Baton can compare them by (no email, phone or company name)",
            markup=False,
        )


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
    for problem in shown[:5]:
        suffix = "" if report.errors else _kept_suffix(problem.message)
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
            f"{rejected_summary(report.rejected, report.imported)}. The rejected "
            f"lines are in {path}: mend them there and import that file as it is"
        )


def rejected_summary(rejected: int, imported: int) -> str:
    """The rejected rows and what became of the others: a file whose rows were all
    rejected was not "imported but for these" (a trial's 8,800 rows, none imported,
    read "all other rows were imported")."""
    if imported == 0:
        whole = "the only row was" if rejected == 1 else f"all {rejected:,} rows were"
        return f"{whole} rejected; nothing was imported"
    rows = "row" if rejected == 1 else "rows"
    others = "the other row was" if imported == 1 else f"the other {imported:,} rows were"
    return f"{rejected:,} {rows} rejected; {others} imported"


def _row_errors(
    source: Path,
    found: list[Any],
    rejected: int,
    errors_file: Path | None,
    warnings: list[Any] | None = None,
    *,
    imported: int,
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
    for error in (found or warnings)[:5]:
        suffix = "" if found else _kept_suffix(error.message)
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
        raise fail(f"{rejected_summary(rejected, imported)}. Details: {path}")


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
    mapping: Annotated[
        str | None,
        typer.Option(
            "--mapping",
            help="Import history from a CRM with this saved column mapping (or the "
            "built-in hubspot or salesforce): created dates, stage dates, outcomes.",
        ),
    ] = None,
    historical: Annotated[
        bool,
        typer.Option(
            "--historical",
            help="With --mapping: the file is history; no MQL in it opens a live handoff, "
            "routes or sends anything, however recent.",
        ),
    ] = False,
    consent_basis: Annotated[
        str | None,
        typer.Option(
            "--consent-basis",
            help="The lawful basis for marketing email of every row that does not refuse "
            "or name its own: consent (the list was gathered with opt-in) or "
            "legitimate_interest (existing customers).",
        ),
    ] = None,
    consent_source: Annotated[
        str | None,
        typer.Option(
            "--consent-source",
            help="Where the rows' consent was given (default: import FILE-NAME).",
        ),
    ] = None,
    jobs: Annotated[
        int | None,
        typer.Option(
            "--jobs",
            min=1,
            max=64,
            help="Processes for a file of 20,000 rows or more: N - 1 validate while this "
            "one writes (default BATON_IMPORT_JOBS, 1); the same result, faster only with "
            "an idle core.",
        ),
    ] = None,
) -> None:
    """Import leads: create-or-update by external id, email or phone.

    Headers are matched forgivingly (Email, E-mail, Email Address...); unknown columns are
    kept as attributes. Without first and last name columns, a Name, Full Name or Contact
    Name column is the full name, split into first and last name ("Dana Reyes", "Reyes,
    Dana"); --map 'Contact=full_name' names another. A row that cannot be identified is
    rejected: its line goes to FILE.errors.csv with its own columns and its problems;
    mend the cells there and import that file as it is (exit code 1 when any row was
    rejected). A bad optional value (a country nobody can read) is left out and its row
    imported; such lines go to FILE.warnings.csv the same way. A Baton lead export imports as it is.

    A created_at column (Created Date, Create Date...) dates each capture, and the lead
    when the import creates it: 2026-03-02, 03/02/2026 (--day-first: 02/03/2026),
    March 2, 2026, 2 Mar 2026 14:05, Unix time... Times without a zone are in --timezone.

    With --mapping NAME, the file is a CRM's history: each lead with its created time,
    its stage changes with their dates ("Became a Marketing Qualified Lead Date"...) and
    its outcome (won with value and date, lost, disqualified); see `baton import mapping`.
    Re-importing records nothing twice.

    Consent: a consent column (Opt In, Marketing Consent...) is read as yes or no, a
    consent_basis column (Lawful Basis) as consent or legitimate_interest; --consent-basis
    gives the basis of the rows that do not refuse nor name one."""
    from baton.domain.privacy import read_basis
    from baton.services.imports import import_leads

    zone = _zone(timezone)
    try:
        basis = read_basis(consent_basis)
    except ValueError as exc:
        raise fail(f"--consent-basis: {exc}") from None
    if (basis is not None or consent_source) and mapping is not None:
        raise fail("--consent-basis and --consent-source go with a plain import, not --mapping")
    if mapping is not None:
        _import_history(
            file,
            mapping=mapping,
            historical=historical,
            column_map=_parse_map(column_map or []),
            blanks=blank or [],
            system=system,
            errors_file=errors_file,
            actor=actor,
            encoding=encoding,
            day_first=day_first,
            zone=zone,
        )
        return
    if historical:
        raise fail("--historical goes with --mapping NAME (a history import)")
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
            consent_basis=basis,
            consent_source=consent_source,
            jobs=jobs,
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
    _row_errors(
        file, report.errors, report.rejected, errors_file, imported=report.rows - report.rejected
    )


@import_app.command("scans")
def import_scans_command(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    event: Annotated[
        str, typer.Option("--event", help="The event the badges were scanned at: 'SaaStr 2026'.")
    ],
    column_map: MapOption = None,
    errors_file: ErrorsOption = None,
    actor: ActorOption = "cli",
    encoding: EncodingOption = "utf-8-sig",
    day_first: DayFirstOption = False,
    timezone: TimezoneOption = "UTC",
    source: Annotated[
        str, typer.Option("--source", help="Source of the leads the scans create.")
    ] = "event",
) -> None:
    """Import an event's badge scans: name (or first/last), email, phone, company,
    title, country, scanned_by (a rep's email or name), rating, notes, scanned_at.

    Every row captures the person (the event is their campaign) and records an
    event_booth_scan activity. Rating hot (any case): also an event_hot_scan, a
    hand-raise in the example contract (handed off at once); cold: a lead still in
    stage lead goes to nurture, so it is not handed off. Other columns are kept on the
    scan. Importing the file again records nothing twice (event + person + scanned_at).
    Rejected lines go to FILE.errors.csv, to mend and import as it is (exit code 1)."""
    from baton.services.scans import import_scans

    zone = _zone(timezone)
    with context() as ctx, progress() as bar:
        report = import_scans(
            ctx,
            file,
            event=event,
            actor=operator(actor),
            column_map=_parse_map(column_map or []),
            progress=_steps(bar, "scans"),
            encoding=encoding,
            naive_timezone=zone,
            day_first=day_first,
            lead_source=source,
        )
    table = Table(title=f"Badge scans of {event} from {file.name}")
    table.add_column("result")
    table.add_column("rows", justify="right")
    for name, value in (
        ("rows read", report.rows),
        ("scans recorded", report.stored),
        ("already imported (same event, person, time)", report.duplicates),
        ("leads created", report.created),
        ("leads updated", report.updated),
        ("hot", report.hot),
        ("  handed off (hand-raise)", report.mql),
        ("warm", report.warm),
        ("cold", report.cold),
        ("  moved to nurture", report.nurtured),
        ("rows rejected", report.rejected),
    ):
        table.add_row(name, f"{value:,}")
    console.print(table)
    if report.extra_columns:
        console.print(f"Columns kept on the scans: {', '.join(report.extra_columns)}", markup=False)
    _lines_to_mend(file, report, errors_file)


@import_app.command("reps")
def import_reps_command(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    column_map: MapOption = None,
    errors_file: ErrorsOption = None,
    actor: ActorOption = "cli",
    encoding: EncodingOption = "utf-8-sig",
) -> None:
    """Add or change reps from CSV, creating their teams: email, name, team, timezone,
    working_hours, capacity, weight, status, countries, regions, postal_prefixes,
    segments, tags, manager_email, active.

    A known email changes the settings its cells give (blank leaves one as it is; `-`
    clears team or manager). Hours: mon-fri=09:00-17:00; sat=10:00-14:00. Lists are
    separated by ; , or |. A row with a bad cell is rejected whole: its line goes to
    FILE.errors.csv with its problems, to mend and import as it is (exit code 1)."""
    from baton.services.rep_import import import_reps

    with context() as ctx, progress() as bar:
        report = import_reps(
            ctx,
            file,
            actor=operator(actor),
            column_map=_parse_map(column_map or []),
            progress=_steps(bar, "reps"),
            encoding=encoding,
        )
    table = Table(title=f"Import of {file.name}")
    table.add_column("result")
    table.add_column("rows", justify="right")
    for name, value in (
        ("rows read", report.rows),
        ("reps added", report.created),
        ("reps changed", report.updated),
        ("unchanged", report.unchanged),
        ("teams created", report.teams_created),
        ("rows rejected", report.rejected),
    ):
        table.add_row(name, f"{value:,}")
    console.print(table)
    if report.extra_columns:
        console.print(f"Columns left out: {', '.join(report.extra_columns)}", markup=False)
    _lines_to_mend(file, report, errors_file)


# --- history from a CRM (saved mappings) and the Olist funnel ----------------------------------

mapping_app = typer.Typer(
    help="Saved column mappings for history imports (`baton import leads FILE --mapping NAME`).",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)
import_app.add_typer(mapping_app, name="mapping")


def _history_summary(title: str, report: Any) -> None:
    """What a history import recorded and what it held back."""
    table = Table(title=title)
    table.add_column("result")
    table.add_column("count", justify="right")
    for name, value in (
        ("rows read", report.rows),
        ("rows imported", report.imported),
        ("leads created", report.created),
        ("leads updated", report.updated),
        ("unchanged", report.unchanged),
        ("new leads queued for the duplicate check", report.duplicate_checks_queued),
        *(
            (("updated leads to compare again", report.compared_again),)
            if report.compared_again
            else ()
        ),
        ("stage changes recorded", report.transitions),
        ("of which implied (a stage the file skips)", report.implied),
        ("already recorded (re-import)", report.already_recorded),
        ("won", report.won),
        ("lost", report.lost),
        ("disqualified", report.disqualified),
        ("MQLs recorded as history (no live handoff)", report.mql_held_back),
        ("MQLs handed off live", report.mql_live),
        ("steps held back", report.steps_held_back),
        ("steps moved to keep the order", report.moved),
        ("rows rejected", report.rejected),
    ):
        table.add_row(name, f"{value:,}")
    if report.won_value:
        table.add_row("won value", f"{report.won_value:,.2f}")
    console.print(table)
    _say_not_compared(report)


def _import_history(
    file: Path,
    *,
    mapping: str,
    historical: bool,
    column_map: dict[str, str],
    blanks: list[str],
    system: str | None,
    errors_file: Path | None,
    actor: str,
    encoding: str,
    day_first: bool,
    zone: str,
) -> None:
    from baton.services.history import import_history

    with context() as ctx, progress() as bar:
        report = import_history(
            ctx,
            file,
            actor=operator(actor),
            mapping=mapping,
            historical=historical,
            column_map=column_map,
            progress=_steps(bar, "history"),
            encoding=encoding,
            blanks=blanks,
            external_system=system,
            naive_timezone=zone,
            day_first=day_first,
        )
    _history_summary(f"History import of {file.name} (mapping {mapping})", report)
    _lines_to_mend(file, report, errors_file)


@mapping_app.command("save")
def mapping_save_command(
    name: Annotated[str, typer.Argument(help="The mapping's name (lower case, - and _).")],
    column_map: Annotated[
        list[str],
        typer.Option(
            "--map",
            help="HEADER=TARGET: a lead field, attributes.NAME, a history field (stage, "
            "mql_at, sal_at, sql_at, opportunity_at, customer_at, won_at, lost_at, "
            "disqualified_at, closed_at, outcome, won, amount) or - (repeat).",
        ),
    ],
    actor: ActorOption = "cli",
) -> None:
    """Save (or replace) a column mapping for history imports."""
    from baton.services.history import save_mapping

    with context() as ctx:
        saved = save_mapping(ctx, name, _parse_map(column_map), actor=operator(actor))
    console.print(f"Saved mapping {saved.name} ({len(saved.columns)} columns)", markup=False)


@mapping_app.command("list")
def mapping_list_command(actor: ActorOption = "cli") -> None:
    """The saved mappings and the built-ins (hubspot, salesforce)."""
    from baton.services.history import list_mappings

    with context() as ctx:
        found = list_mappings(ctx, actor=operator(actor))
    table = Table(title="Column mappings")
    for column in ("name", "kind", "columns", "updated"):
        table.add_column(column)
    for item in found:
        table.add_row(
            item.name,
            "built-in" if item.built_in else "saved",
            str(len(item.columns)),
            item.updated_at.isoformat(timespec="seconds") if item.updated_at else "",
        )
    console.print(table)


@mapping_app.command("show")
def mapping_show_command(
    name: Annotated[str, typer.Argument(help="The mapping's name.")],
    actor: ActorOption = "cli",
) -> None:
    """A mapping's columns: CSV header -> where its values go."""
    from baton.services.history import get_mapping

    with context() as ctx:
        found = get_mapping(ctx, name, actor=operator(actor))
    table = Table(title=f"Mapping {found.name}" + (" (built-in)" if found.built_in else ""))
    table.add_column("column")
    table.add_column("goes to")
    for header, target in found.columns.items():
        table.add_row(header, target)
    console.print(table)


@import_app.command("olist")
def import_olist_command(
    folder: Annotated[Path, typer.Argument(exists=True, file_okay=False, readable=True)],
    actor: ActorOption = "cli",
) -> None:
    """Load the Olist marketing funnel (8,000 MQLs, 842 won deals) from its folder.

    Leads (source = origin, landing page and deal fields as attributes), their MQL at
    the first contact and their win at the won date, as history: no handoff opens,
    nothing is sent. Running it again records nothing twice. The data set is not shipped
    (CC BY-NC-SA 4.0): see the README for where to get it."""
    from baton.services.olist import import_olist

    with context() as ctx, progress() as bar:
        report = import_olist(ctx, folder, actor=operator(actor), progress=_steps(bar, "Olist"))
    _history_summary(f"Olist import from {folder.name}", report)
    for problem in (report.errors + report.warnings)[:5]:
        errors.print(f"line {problem.row}: {problem.field}: {problem.message}", markup=False)
    if report.errors:
        raise fail(f"{report.rejected} row(s) rejected; all other rows were imported")


def _kept_suffix(message: str) -> str:
    """What a warning line adds: that the row was imported (and, unless the message
    already says so, that the value was left out)."""
    if "left out" in message or "recorded" in message:
        return " (the row was imported)"
    return " (left out; the row was imported)"
