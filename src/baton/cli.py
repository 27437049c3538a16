"""The ``baton`` command line: a thin shell over the same use cases as the API."""

from __future__ import annotations

import csv
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy.exc import DataError, IntegrityError, OperationalError

from baton import __version__
from baton.config import Settings
from baton.domain.errors import BatonError
from baton.services.context import Context, open_context
from baton.services.imports import ImportReport, export_leads, import_activities, import_leads

app = typer.Typer(
    name="baton",
    help="Baton: the marketing-to-sales lead handoff engine.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
)
import_app = typer.Typer(
    help="Import leads or activities from CSV files.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)
export_app = typer.Typer(help="Export data.", no_args_is_help=True, rich_markup_mode="markdown")
contract_app = typer.Typer(
    help="The handoff contract: validate, create, approve, activate, compare.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)
app.add_typer(import_app, name="import")
app.add_typer(export_app, name="export")
app.add_typer(contract_app, name="contract")

console = Console()
errors = Console(stderr=True, soft_wrap=True)

ActorOption = Annotated[str, typer.Option("--actor", help="Who is acting (stored on changes).")]


def fail(message: str, code: int = 1) -> typer.Exit:
    errors.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code)


def _settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        lines = [f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}" for e in exc.errors()]
        raise fail("invalid configuration: " + "; ".join(lines)) from None


@contextmanager
def _context() -> Iterator[Context]:
    settings = _settings()
    try:
        ctx = open_context(settings)
    except Exception as exc:
        raise fail(f"cannot open the database {settings.database_url!r}: {exc}") from None
    try:
        yield ctx
    except BatonError as exc:
        raise fail(exc.detail) from None
    except IntegrityError:
        raise fail(
            "another change touched the same records at the same moment; nothing was "
            "saved, run the command again"
        ) from None
    except DataError as exc:
        raise fail(f"a value cannot be stored; nothing was saved ({exc.orig})") from None
    except OperationalError as exc:
        raise fail(f"the database is busy or unreachable; nothing was saved ({exc.orig})") from None
    finally:
        ctx.engine.dispose()


def _version(value: bool) -> None:
    if value:
        console.print(f"baton {__version__}")
        raise typer.Exit


@app.callback()
def main_options(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show version.")
    ] = False,
) -> None:
    """Configuration comes from BATON_* environment variables (see the README)."""


@app.command()
def init() -> None:
    """Create the database (or bring its schema up to date)."""
    from baton.store.migrate import current_revision

    with _context() as ctx:
        console.print(
            f"[green]ready[/] {ctx.settings.database_url} at schema revision "
            f"{current_revision(ctx.engine)}"
        )


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Listen address (BATON_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (BATON_PORT).")] = None,
    workers: Annotated[int, typer.Option(help="Server processes (PostgreSQL only).")] = 1,
) -> None:
    """Run the API server (docs at /docs)."""
    import uvicorn

    settings = _settings()
    with _context():
        pass
    host = host or settings.host
    port = port or settings.port
    if workers > 1 and settings.database_url.startswith("sqlite"):
        raise fail("several server processes need PostgreSQL; SQLite has one writer")
    console.print(f"Baton API on [bold]http://{host}:{port}[/] (docs: http://{host}:{port}/docs)")
    uvicorn.run(
        "baton.api.asgi:app",
        host=host,
        port=port,
        workers=workers,
        log_level=settings.log_level,
    )


@app.command()
def worker(
    once: Annotated[bool, typer.Option("--once", help="Run one pass and exit.")] = False,
    poll: Annotated[
        float | None,
        typer.Option(help="Seconds between passes when idle (BATON_WORKER_POLL_SECONDS)."),
    ] = None,
) -> None:
    """Run the background work: due SLA steps (remind, reassign, notify the manager),
    assignment of queued handoffs, and delivery of email and webhooks. Run as many
    workers as you like against PostgreSQL; they never act twice on the same thing."""
    import time

    from baton.services.worker import tick

    settings = _settings()
    interval = poll if poll is not None else settings.worker_poll_seconds
    with _context() as ctx:
        if not once:
            console.print(f"Baton worker running (polling every {interval:g} s; Ctrl+C stops)")
        try:
            while True:
                report = tick(ctx)
                if report.busy:
                    console.print(
                        f"{ctx.clock.now():%H:%M:%S} steps {report.steps}, assigned "
                        f"{report.assigned}, sent {report.sent}, failed {report.failed}"
                    )
                if once:
                    break
                if not report.busy:
                    time.sleep(interval)
        except KeyboardInterrupt:
            console.print("worker stopped")


@app.command()
def demo(
    leads: Annotated[int, typer.Option(min=10, max=200_000, help="Leads to generate.")] = 3000,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same company).")] = 7,
    serve_after: Annotated[
        bool, typer.Option("--serve/--no-serve", help="Start the server afterwards.")
    ] = True,
) -> None:
    """Fill an empty database with a generated demo company, then serve it."""
    from baton.domain.errors import Conflict
    from baton.services.demo import generate_demo, sign_demo_contract

    with _context() as ctx:
        try:
            with _progress() as bar:
                task = bar.add_task("Generating the demo company", total=leads)
                summary = generate_demo(
                    ctx, leads_count=leads, seed=seed, progress=lambda n: bar.advance(task, n)
                )
        except Conflict as exc:
            console.print(f"[yellow]{exc.detail}; using it as it is[/]")
        else:
            table = Table(title="Demo company: Lumen Analytics")
            table.add_column("created")
            table.add_column("count", justify="right")
            for name, value in (
                ("leads", summary.leads),
                ("activities", summary.activities),
                ("stage transitions", summary.transitions),
                ("notes", summary.notes),
            ):
                table.add_row(name, f"{value:,}")
            console.print(table)
            version = sign_demo_contract(ctx)
            if version is not None:
                console.print(
                    f"Handoff contract version {version} (contracts/example.yaml) signed by "
                    "marketing and sales and active: every lead is scored."
                )
    if serve_after:
        serve(host=None, port=None, workers=1)


def _progress() -> Progress:
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
        disable=not sys.stdout.isatty() and not console.is_terminal,
    )


def _parse_map(pairs: list[str]) -> dict[str, str]:
    mapping = {}
    for pair in pairs:
        header, sep, field = pair.partition("=")
        if not sep or not header.strip() or not field.strip():
            raise fail(f"--map takes HEADER=FIELD, got {pair!r}")
        mapping[header.strip()] = field.strip()
    return mapping


def _report(kind: str, source: Path, report: ImportReport, errors_file: Path | None) -> None:
    table = Table(title=f"Import of {source.name}")
    table.add_column("result")
    table.add_column("rows", justify="right")
    rows = [("rows read", report.rows)]
    if kind == "leads":
        rows += [
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
        console.print(f"Columns kept as {target}: {', '.join(report.extra_columns)}")
    if report.errors:
        path = errors_file or source.with_name(source.name + ".errors.csv")
        with path.open("w", newline="", encoding="utf-8") as out:
            writer = csv.writer(out)
            writer.writerow(["line", "field", "message"])
            for error in report.errors:
                writer.writerow([error.row, error.field, error.message])
        for error in report.errors[:5]:
            errors.print(f"line {error.row}: {error.field}: {error.message}")
        more = len(report.errors) - 5
        if more > 0:
            errors.print(f"... and {more} more")
        raise fail(
            f"{report.rejected} row(s) rejected; all other rows were imported. Details: {path}"
        )


EncodingOption = Annotated[
    str, typer.Option(help="Text encoding of the file (utf-8, latin-1, utf-16, cp1252...).")
]
MapOption = Annotated[
    list[str] | None,
    typer.Option("--map", help="Map a header to a field: --map 'Work Email=email' (repeat)."),
]
ErrorsOption = Annotated[
    Path | None,
    typer.Option("--errors", help="Where to write rejected rows (default: FILE.errors.csv)."),
]


@import_app.command("leads")
def import_leads_command(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    column_map: MapOption = None,
    errors_file: ErrorsOption = None,
    actor: ActorOption = "cli",
    encoding: EncodingOption = "utf-8-sig",
) -> None:
    """Import leads: create-or-update by email, all valid rows in one transaction.

    Headers are matched forgivingly (Email, E-mail, Email Address...); unknown columns are
    kept as attributes. Rejected rows go to FILE.errors.csv with their line numbers; the
    exit code is 1 when any row was rejected."""
    with _context() as ctx, _progress() as bar:
        task = bar.add_task("Importing leads", total=None)
        report = import_leads(
            ctx,
            file,
            actor=actor,
            column_map=_parse_map(column_map or []),
            progress=lambda n: bar.advance(task, n),
            encoding=encoding,
        )
        bar.update(task, total=report.rows, completed=report.rows)
    _report("leads", file, report, errors_file)


@import_app.command("activities")
def import_activities_command(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    timezone: Annotated[str, typer.Option(help="Zone of timestamps written without one.")] = "UTC",
    column_map: MapOption = None,
    errors_file: ErrorsOption = None,
    actor: ActorOption = "cli",
    encoding: EncodingOption = "utf-8-sig",
) -> None:
    """Import engagement events (email, type, occurred_at, idempotency_key, ...).

    Other columns become event properties (url, subject...). A file imported twice stores
    its keyed events once."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise fail(f"unknown time zone {timezone!r} (use an IANA name like Europe/Paris)") from None
    with _context() as ctx, _progress() as bar:
        task = bar.add_task("Importing activities", total=None)
        report = import_activities(
            ctx,
            file,
            actor=actor,
            naive_timezone=timezone,
            column_map=_parse_map(column_map or []),
            progress=lambda n: bar.advance(task, n),
            encoding=encoding,
        )
        bar.update(task, total=report.rows, completed=report.rows)
    _report("activities", file, report, errors_file)


@export_app.command("leads")
def export_leads_command(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File to write (default: stdout).")
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="csv or jsonl.")] = "csv",
    stage: Annotated[str | None, typer.Option(help="Only leads in this stage.")] = None,
) -> None:
    """Export leads as CSV or JSON lines."""
    if fmt not in ("csv", "jsonl"):
        raise fail("--format must be csv or jsonl")
    with _context() as ctx:
        if output is None:
            count = export_leads(ctx, sys.stdout, fmt=fmt, stage=stage)
        else:
            with output.open("w", newline="", encoding="utf-8") as out:
                count = export_leads(ctx, out, fmt=fmt, stage=stage)
            console.print(f"{count:,} leads written to {output}")


ContractFile = Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)]


@contract_app.command("validate")
def contract_validate(file: ContractFile) -> None:
    """Check a contract file; print every problem with its path (exit 1 if any)."""
    from baton.domain.contract import ContractError, parse_contract

    try:
        contract = parse_contract(file.read_text(encoding="utf-8"))
    except ContractError as exc:
        for line in exc.problems:
            errors.print(f"[red]✗[/] {line}", highlight=False)
        raise fail(f"{len(exc.problems)} problem(s) in {file}") from None
    except UnicodeDecodeError:
        raise fail(f"{file} is not UTF-8 text") from None
    console.print(
        f"[green]✓[/] {file}: '{contract.name}', {len(contract.scoring.fit)} fit and "
        f"{len(contract.scoring.engagement)} engagement rules, MQL at "
        f"{contract.mql.threshold}, {len(contract.prep_checklist)} prep item(s)"
    )


@contract_app.command("create")
def contract_create(file: ContractFile, actor: ActorOption = "cli") -> None:
    """Store FILE as a new draft version."""
    from baton.services.contracts import create_contract

    with _context() as ctx:
        try:
            version = create_contract(ctx, file.read_text(encoding="utf-8"), actor=actor)
        except BatonError as exc:
            for problem in getattr(exc, "problems", []):
                errors.print(f"[red]✗[/] {problem.loc}: {problem.message}", highlight=False)
            raise
    console.print(
        f"draft version [bold]{version.version}[/] stored; it needs approval by "
        "marketing and sales (`baton contract approve`)"
    )


@contract_app.command("list")
def contract_list() -> None:
    """Every version with its status and signatures."""
    from baton.services.contracts import list_contracts

    with _context() as ctx:
        versions = list_contracts(ctx)
    table = Table(title="Handoff contract versions")
    for column in ("version", "name", "status", "marketing", "sales", "created", "activated"):
        table.add_column(column)
    for v in versions:
        table.add_row(
            str(v.version),
            v.name,
            v.status,
            v.approvals.get("marketing", "—"),
            v.approvals.get("sales", "—"),
            f"{v.created_at:%Y-%m-%d} by {v.created_by}",
            f"{v.activated_at:%Y-%m-%d %H:%M}" if v.activated_at else "",
        )
    console.print(table)


@contract_app.command("approve")
def contract_approve(
    version: int,
    role: Annotated[str, typer.Option(help="marketing or sales")],
    actor: Annotated[str, typer.Option("--actor", help="Who signs (a person's name).")],
) -> None:
    """Sign VERSION for one side; two different people must sign."""
    from baton.services.contracts import approve_contract

    if role not in ("marketing", "sales"):
        raise fail("--role must be marketing or sales")
    with _context() as ctx:
        result = approve_contract(ctx, version, role=role, actor=actor)  # type: ignore[arg-type]
    console.print(f"version {version} signed for {role} by {actor}; status: {result.status}")


@contract_app.command("activate")
def contract_activate(version: int, actor: ActorOption = "cli") -> None:
    """Make an approved VERSION active and re-score every lead (progress shown)."""
    from baton.services.contracts import activate_contract

    with _context() as ctx, _progress() as bar:
        task = bar.add_task(f"Re-scoring leads with version {version}", total=None)

        def advance(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        report = activate_contract(ctx, version, actor=actor, progress=advance)
    table = Table(
        title=f"Version {version} is active"
        + (f" (was {report.previous})" if report.previous else "")
    )
    table.add_column("result")
    table.add_column("leads", justify="right")
    for name, value in (
        ("re-scored", report.leads_scored),
        ("crossed the threshold upward", report.crossed_up),
        ("fell below the threshold", report.crossed_down),
        ("handed off (became MQL)", report.became_mql),
    ):
        table.add_row(name, f"{value:,}")
    console.print(table)


@contract_app.command("rescore")
def contract_rescore(actor: ActorOption = "cli") -> None:
    """Re-score every lead with the active version (finishes an interrupted activation;
    safe to run any time)."""
    from baton.services.contracts import rescore_active

    with _context() as ctx, _progress() as bar:
        task = bar.add_task("Re-scoring leads", total=None)

        def advance(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        report = rescore_active(ctx, actor=actor, progress=advance)
    console.print(
        f"{report.leads_scored:,} leads re-scored with version {report.version}; "
        f"{report.became_mql:,} handed off"
    )


@contract_app.command("diff")
def contract_diff(old: int, new: int) -> None:
    """What changed from version OLD to version NEW, in words."""
    from baton.services.contracts import diff_versions

    with _context() as ctx:
        changes = diff_versions(ctx, old, new)
    if not changes:
        console.print(f"versions {old} and {new} score and hand off leads the same way")
        return
    table = Table(title=f"Changes from version {old} to {new}")
    table.add_column("section")
    table.add_column("change")
    for change in changes:
        table.add_row(change.section, change.text)
    console.print(table)


def main() -> None:
    """Entry point: a bug prints one line (and the trace only with BATON_DEBUG=1)."""
    import logging
    import os

    try:
        app()
    except Exception as exc:
        if os.environ.get("BATON_DEBUG"):
            raise
        logging.getLogger("baton").debug("crash", exc_info=True)
        errors.print(
            f"[bold red]internal error:[/] {type(exc).__name__}: {exc}\n"
            "Nothing was half-written (each step is one transaction). "
            "Run again with BATON_DEBUG=1 to see the trace, and please report it."
        )
        raise SystemExit(70) from None


if __name__ == "__main__":
    main()
