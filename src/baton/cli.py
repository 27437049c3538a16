"""The ``baton`` command line: a thin shell over the same use cases as the API."""

from __future__ import annotations

import csv
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import typer
from pydantic import BaseModel, ValidationError
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy.exc import DataError, IntegrityError, OperationalError

from baton import __version__
from baton.config import Settings
from baton.domain.access import Role, operator
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
    help="Import leads, activities or marketing spend from CSV files.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)
export_app = typer.Typer(help="Export data.", no_args_is_help=True, rich_markup_mode="markdown")
contract_app = typer.Typer(
    help="The handoff contract: validate, create, approve, activate, compare.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)
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
handoff_app = typer.Typer(
    help="Handoffs: lists, the unassigned queue, the packet, and sales' verdicts.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)
webhook_app = typer.Typer(
    help="Webhook endpoints that receive handoff events.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)
report_app = typer.Typer(
    help="Reports: funnel, velocity, speed to lead, SLA, rejections, credit, cost.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)
app.add_typer(import_app, name="import")
app.add_typer(export_app, name="export")
app.add_typer(contract_app, name="contract")
app.add_typer(team_app, name="team")
app.add_typer(rep_app, name="rep")
app.add_typer(account_app, name="account")
app.add_typer(handoff_app, name="handoff")
app.add_typer(webhook_app, name="webhook")
outbox_app = typer.Typer(
    help="The outbox: email and webhooks to send; list them by state, retry failures.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)
app.add_typer(outbox_app, name="outbox")
user_app = typer.Typer(
    help="People who sign in: add, list, disable, reset a password.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)
token_app = typer.Typer(
    help="API tokens for programs (shown once, stored as a hash).",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)
intake_app = typer.Typer(
    help="Intake keys: public keys that only capture leads and activities.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)
app.add_typer(report_app, name="report")
app.add_typer(user_app, name="user")
app.add_typer(token_app, name="token")
app.add_typer(intake_app, name="intake-key")

console = Console()
errors = Console(stderr=True, soft_wrap=True)

ActorOption = Annotated[str, typer.Option("--actor", help="Who is acting (stored on changes).")]
LOCAL = operator()
"""The local operator: the CLI runs on the server, without signing in, with every
right (whoever runs it already holds the database); changes record ``--actor``."""
M = TypeVar("M", bound=BaseModel)


def fail(message: str, code: int = 1) -> typer.Exit:
    from baton.redact import mask

    # Every error line is masked: a driver's message may quote the database URL.
    errors.print(f"[bold red]error:[/] {mask(message)}")
    return typer.Exit(code)


def _settings() -> Settings:
    from baton.redact import install_log_masking, remember_settings

    install_log_masking()
    try:
        settings = Settings()
    except ValidationError as exc:
        lines = [f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}" for e in exc.errors()]
        raise fail("invalid configuration: " + "; ".join(lines)) from None
    remember_settings(settings)
    return settings


@contextmanager
def _context() -> Iterator[Context]:
    settings = _settings()
    try:
        ctx = open_context(settings)
    except Exception as exc:
        # fail() masks the password wherever the message repeats it.
        raise fail(f"cannot open the database {safe_url(settings.database_url)}: {exc}") from None
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
def init(
    admin_email: Annotated[
        str, typer.Option("--admin-email", help="Email of the first admin (made only if none).")
    ] = "admin@example.com",
    admin_name: Annotated[str, typer.Option("--admin-name", help="Their display name.")] = "Admin",
) -> None:
    """Create the database (or bring its schema up to date) and, when there is no
    admin yet, a first admin with a one-time password printed once."""
    from baton.domain.users import UserCreate
    from baton.services.users import add_user, has_admin
    from baton.store.migrate import current_revision

    with _work() as ctx:
        console.print(
            f"[green]ready[/] {safe_url(ctx.settings.database_url)} at schema revision "
            f"{current_revision(ctx.engine)}"
        )
        if has_admin(ctx):
            return
        data = _valid(
            UserCreate,
            {"email": admin_email, "display_name": admin_name, "role": "admin"},
            {"email": "--admin-email", "display_name": "--admin-name"},
        )
        user, secret = add_user(ctx, data, actor=operator("baton init"))
    say(f"first admin: {user.email}")
    say(f"one-time password (shown only now; sign in and choose your own): {secret}")


def safe_url(url: str) -> str:
    """A database URL fit to print: the password masked (the one masking rule of
    :mod:`baton.redact`)."""
    from baton.redact import mask

    return mask(url)


def _refuse_unready(ctx: Context) -> None:
    """In production, refuse to start without an admin, or with demo users or
    never-changed one-time passwords."""
    from baton.api.app import NotReady, refuse_unready

    try:
        refuse_unready(ctx)
    except NotReady as exc:
        raise fail(str(exc)) from None


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Listen address (BATON_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (BATON_PORT).")] = None,
    workers: Annotated[int, typer.Option(help="Server processes (PostgreSQL only).")] = 1,
    with_worker: Annotated[
        bool,
        typer.Option(
            "--with-worker/--no-worker",
            help="Also run the background worker in this process (handy on one machine).",
        ),
    ] = False,
) -> None:
    """Run the API server (docs at /docs)."""
    import uvicorn

    if with_worker:
        _start_worker_thread()

    settings = _settings()
    with _context() as ctx:
        _refuse_unready(ctx)
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


def _start_worker_thread() -> None:
    """The worker's loop (the same one as `baton worker`) in a daemon thread beside the
    server, with its own context."""
    import threading

    from baton.services.worker import Worker

    ctx = open_context(_settings(), migrate=False)
    worker = Worker(ctx)
    threading.Thread(
        target=worker.run, args=(threading.Event(),), name="baton-worker", daemon=True
    ).start()


def _wait_for_database(settings: Settings) -> None:
    """A worker started before its database (a reboot, a deploy) waits for it with
    backoff instead of exiting; a configuration that can never work still fails."""
    from sqlalchemy.exc import OperationalError

    from baton.redact import mask

    delay = 1.0
    while True:
        try:
            open_context(settings).engine.dispose()
            return
        except OperationalError as exc:
            errors.print(
                f"[yellow]waiting for the database {safe_url(settings.database_url)}: "
                f"{escape(mask(str(exc.orig)).strip().splitlines()[0])}; "
                f"trying again in {delay:g} s[/]"
            )
            time.sleep(delay)
            delay = min(delay * 2, 30.0)


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
    workers as you like against PostgreSQL; they never act twice on the same thing.
    A database that goes away is waited for (logged, retried with backoff), never a
    reason to exit; Ctrl+C or SIGTERM stops after the current passes."""
    import logging
    import signal
    import threading

    from baton.services.worker import TickReport, Worker, tick

    settings = _settings()
    if poll is not None:
        settings = settings.model_copy(update={"worker_poll_seconds": poll})
    if not once:
        _wait_for_database(settings)
    with _context() as ctx:
        ctx.settings = settings
        _refuse_unready(ctx)
        logging.basicConfig(  # after the migrations, whose chatter is not the worker's
            level=settings.log_level.upper(),
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )

        def show(lane: str, report: TickReport) -> None:
            counts = (
                ("steps", report.steps),
                ("assigned", report.assigned),
                ("sent", report.sent),
                ("failed", report.failed),
            )
            done = ", ".join(f"{name} {count}" for name, count in counts if count)
            console.print(f"{ctx.clock.now():%H:%M:%S} {lane}: {done}")

        if once:
            report = tick(ctx)
            if report.busy:
                show("pass", report)
            return
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        console.print(
            f"Baton worker running (polling every {settings.worker_poll_seconds:g} s; "
            "Ctrl+C stops)"
        )
        try:
            Worker(ctx, on_pass=show).run(stop)
        except KeyboardInterrupt:
            stop.set()
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
    from baton.services.demo import demo_users, generate_demo

    with _context() as ctx:
        if ctx.settings.env == "production":
            raise fail("the demo fills a database with made-up people; not in production")
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
                ("sales reps", summary.reps),
                ("handoffs", summary.handoffs),
            ):
                table.add_row(name, f"{value:,}")
            console.print(table)
            version = summary.contract_version
            if version is not None:
                console.print(
                    f"Handoff contract version {version} (contracts/example.yaml) signed by "
                    "marketing and sales and active: every lead is scored."
                )
        users = demo_users(ctx)
        if users:
            table = Table(title="Demo users (one-time passwords, shown only now)")
            for column in ("email", "role", "one-time password"):
                table.add_column(column, no_wrap=True)
            for email, role, secret in users:
                table.add_row(email, role, secret)
            console.print(table)
            console.print(
                "Sign in with POST /auth/login; each user chooses their own password first."
            )
    if serve_after:
        serve(host=None, port=None, workers=1, with_worker=True)


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
            raise fail(f"--map takes HEADER=FIELD (or HEADER=- to leave it out), got {pair!r}")
        mapping[header.strip()] = field.strip()
    return mapping


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
    _row_errors(source, report.errors, report.rejected, errors_file, report.warnings)


def _row_errors(
    source: Path,
    found: list[Any],
    rejected: int,
    errors_file: Path | None,
    warnings: list[Any] | None = None,
) -> None:
    """Write rejected rows (and values left out of imported rows) to FILE.errors.csv,
    show the first five, and exit 1 when any row was rejected."""
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
    with out:
        writer = csv.writer(out)
        writer.writerow(["line", "field", "message", "outcome"])
        for error, outcome in listed:
            writer.writerow([error.row, error.field, error.message, outcome])
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


@import_app.command("leads")
def import_leads_command(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    column_map: MapOption = None,
    blank: BlankOption = None,
    system: SystemOption = None,
    errors_file: ErrorsOption = None,
    actor: ActorOption = "cli",
    encoding: EncodingOption = "utf-8-sig",
) -> None:
    """Import leads: create-or-update by external id, email or phone.

    Headers are matched forgivingly (Email, E-mail, Email Address...); unknown columns are
    kept as attributes. A bad optional value (a country nobody can read) is left out and
    its row imported; a row that cannot be identified is rejected. Both go to
    FILE.errors.csv with their line numbers; the exit code is 1 when any row was rejected."""
    with _context() as ctx, _progress() as bar:
        task = bar.add_task("Importing leads", total=None)
        report = import_leads(
            ctx,
            file,
            actor=operator(actor),
            column_map=_parse_map(column_map or []),
            progress=lambda n: bar.advance(task, n),
            encoding=encoding,
            blanks=blank or [],
            external_system=system,
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
            actor=operator(actor),
            naive_timezone=timezone,
            column_map=_parse_map(column_map or []),
            progress=lambda n: bar.advance(task, n),
            encoding=encoding,
        )
        bar.update(task, total=report.rows, completed=report.rows)
    _report("activities", file, report, errors_file)


@import_app.command("spend")
def import_spend_command(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    errors_file: ErrorsOption = None,
    actor: ActorOption = "cli",
    encoding: EncodingOption = "utf-8-sig",
) -> None:
    """Import marketing spend: source, campaign, start, end, amount[, currency].

    `end` is included; currency defaults to USD; campaign may be empty (spend on the
    whole source). A row for a source, campaign and days already stored replaces its
    amount. Rejected rows go to FILE.errors.csv with their line numbers (exit code 1)."""
    from baton.services.reports import import_spend

    with _context() as ctx:
        report = import_spend(ctx, file, actor=operator(actor), encoding=encoding)
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
            count = export_leads(ctx, sys.stdout, fmt=fmt, stage=stage, actor=LOCAL)
        else:
            with output.open("w", newline="", encoding="utf-8") as out:
                count = export_leads(ctx, out, fmt=fmt, stage=stage, actor=LOCAL)
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
            version = create_contract(ctx, file.read_text(encoding="utf-8"), actor=operator(actor))
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
        versions = list_contracts(ctx, actor=LOCAL)
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
    side: Literal["marketing", "sales"] = "marketing" if role == "marketing" else "sales"
    with _context() as ctx:
        result = approve_contract(ctx, version, role=side, actor=operator(actor))
    console.print(f"version {version} signed for {role} by {actor}; status: {result.status}")


@contract_app.command("activate")
def contract_activate(version: int, actor: ActorOption = "cli") -> None:
    """Make an approved VERSION active and re-score every lead (progress shown)."""
    from baton.services.contracts import activate_contract

    with _context() as ctx, _progress() as bar:
        task = bar.add_task(f"Re-scoring leads with version {version}", total=None)

        def advance(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        report = activate_contract(ctx, version, actor=operator(actor), progress=advance)
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

        report = rescore_active(ctx, actor=operator(actor), progress=advance)
    console.print(
        f"{report.leads_scored:,} leads re-scored with version {report.version}; "
        f"{report.became_mql:,} handed off"
    )


@contract_app.command("diff")
def contract_diff(old: int, new: int) -> None:
    """What changed from version OLD to version NEW, in words."""
    from baton.services.contracts import diff_versions

    with _context() as ctx:
        changes = diff_versions(ctx, old, new, actor=LOCAL)
    if not changes:
        console.print(f"versions {old} and {new} score and hand off leads the same way")
        return
    table = Table(title=f"Changes from version {old} to {new}")
    table.add_column("section")
    table.add_column("change")
    for change in changes:
        table.add_row(change.section, change.text)
    console.print(table)


# --- the sales side: teams, reps, accounts ---------------------------------------------

VerdictActor = Annotated[
    str,
    typer.Option(
        "--actor",
        help="Who gives the verdict, recorded on it (the CLI acts as the local operator; "
        "over the API only the rep, their manager or an admin may).",
    ),
]

_OPTION_OF = {
    "email": "EMAIL",
    "name": "--name",
    "team": "--team",
    "timezone": "--timezone",
    "working_hours": "--hours",
    "status": "--status",
    "capacity": "--capacity",
    "weight": "--weight",
    "tags": "--tag",
    "countries": "--country",
    "segments": "--segment",
    "manager_email": "--manager",
    "owner_email": "--owner",
    "domain": "DOMAIN",
    "starts_at": "--from",
    "ends_at": "--until",
    "note": "--note",
}


def say(text: str) -> None:
    """Output as is (no markup: names and URLs are shown verbatim), never wrapped, so
    it can be grepped and copied."""
    console.print(text, markup=False, highlight=False, soft_wrap=True)


def _valid(model: type[M], data: dict[str, Any], names: dict[str, str] | None = None) -> M:
    """Validate command-line input; a problem becomes one line naming the option."""
    from baton.domain.batches import describe

    names = {**_OPTION_OF, **(names or {})}

    try:
        return model.model_validate(data)
    except ValidationError as exc:
        lines = []
        for loc, message in describe(exc):
            field = loc.split(".", 1)[0]
            lines.append(
                message if field == "(row)" else f"{_OPTION_OF.get(field, loc)}: {message}"
            )
        raise fail("; ".join(lines)) from None


@contextmanager
def _work() -> Iterator[Context]:
    """Like :func:`_context`, and an invalid-input error also says what each bad field
    needs (e.g. the rejection codes the contract knows)."""
    from baton.domain.errors import ValidationFailed

    with _context() as ctx:
        try:
            yield ctx
        except ValidationFailed as exc:
            details = "; ".join(f"{p.loc}: {p.message}" for p in exc.problems)
            raise fail(f"{exc.detail} ({details})" if details else exc.detail) from None


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

    data = _valid(TeamCreate, {"name": name, "manager_email": manager}, {"name": "NAME"})
    with _work() as ctx:
        team = create_team(ctx, data, actor=operator(actor))
    say(f"team {team.name} created (id {team.id}), manager {team.manager_email or '—'}")


@team_app.command("list")
def team_list() -> None:
    """Every team with its manager and number of reps."""
    from baton.services.reps import list_teams

    with _work() as ctx:
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
    data = _valid(RepCreate, {"email": email, **values})
    with _work() as ctx:
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
    data = _valid(RepUpdate, values)
    with _work() as ctx:
        rep = update_rep(ctx, find_rep(ctx, email, actor=LOCAL).id, data, actor=operator(actor))
    say(f"rep {rep.id} updated: {_rep_line(rep)}")


@rep_app.command("list")
def rep_list(team: TeamOption = None) -> None:
    """Every rep (or a team's) with hours, status, load and out-of-office periods."""
    from baton.services.reps import list_reps

    with _work() as ctx:
        reps = list_reps(ctx, team=team, actor=LOCAL)
    table = Table(title=f"Reps of team {team}" if team else "Reps")
    for column in ("rep", "team", "status", "load", "hours", "out of office"):
        table.add_column(column, no_wrap=column in ("rep", "status", "load"), overflow="fold")
    for r in reps:
        hours = _hours_text(r.working_hours).replace("; ", "\n").replace(",", " ")
        table.add_row(
            *map(
                escape,
                (
                    f"{r.email}\n{r.name}",
                    r.team or "—",
                    r.status if r.active else "inactive",
                    f"{r.open_handoffs}/{r.capacity}",
                    f"{r.timezone}\n{hours}",
                    "\n".join(
                        f"{a.starts_at:%Y-%m-%d %H:%M} → {a.ends_at:%Y-%m-%d %H:%M}"
                        for a in r.absences
                    ),
                ),
            )
        )
    console.print(table)


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

    data = _valid(AbsenceCreate, {"starts_at": starts, "ends_at": ends, "note": note})
    with _work() as ctx:
        rep = add_absence(ctx, find_rep(ctx, email, actor=LOCAL).id, data, actor=operator(actor))
    absence = max(rep.absences, key=lambda a: a.id)
    say(
        f"{rep.email} is out of office from {absence.starts_at:%Y-%m-%d %H:%M} until "
        f"{absence.ends_at:%Y-%m-%d %H:%M} UTC (absence {absence.id})"
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

    data = _valid(AccountCreate, {"domain": domain, "name": name, "owner_email": owner})
    with _work() as ctx:
        account = upsert_account(ctx, data, actor=operator(actor))
    say(
        f"account {account.id}: {account.domain} ({account.name or 'no name'}) is owned by "
        f"{account.owner_email}"
    )


@account_app.command("list")
def account_list() -> None:
    """Every account with its owner."""
    from baton.services.reps import list_accounts

    with _work() as ctx:
        accounts = list_accounts(ctx, actor=LOCAL)
    table = Table(title="Accounts")
    for column in ("domain", "name", "owner"):
        table.add_column(column, no_wrap=column != "name")
    for a in accounts:
        table.add_row(a.domain, escape(a.name or "—"), a.owner_email or "—")
    console.print(table)


# --- handoffs ----------------------------------------------------------------------------


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


def _when(value: Any) -> str:
    return f"{value:%Y-%m-%d %H:%M}" if value else "—"


def _flat(value: Any) -> str:
    if isinstance(value, dict):
        return "(" + ", ".join(f"{k}={v}" for k, v in value.items()) + ")"
    return str(value)


def _handoff_next(h: Any) -> str:
    """What is next for a handoff, or how it ended."""
    if h.status == "assigned":
        return f"accept by {_when(h.accept_due_at)}"
    if h.status in ("accepted", "qualified") and h.first_touch_at is None:
        return f"touch by {_when(h.touch_due_at)}"
    if h.status == "queued":
        return str(h.routing.get("reason", ""))
    return str(h.rejection_code or h.outcome or "")


def _handoff_table(title: str, handoffs: list[Any], *, queue: bool = False) -> Table:
    table = Table(title=title)
    columns = (
        ("id", "lead", "MQL at", "waiting because")
        if queue
        else ("id", "lead", "status", "rep", "MQL at", "next / outcome")
    )
    for column in columns:
        table.add_column(
            column,
            no_wrap=column in ("id", "lead", "status", "rep", "MQL at"),
            min_width=len(column) if column in ("id", "lead") else None,
            overflow="fold",
        )
    for h in handoffs:
        if queue:
            table.add_row(
                str(h.id), str(h.lead_id), _when(h.mql_at), escape(h.routing.get("reason", ""))
            )
        else:
            table.add_row(
                str(h.id),
                str(h.lead_id),
                h.status,
                h.rep_email or "—",
                _when(h.mql_at),
                escape(_handoff_next(h)),
            )
    return table


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
    with _work() as ctx:
        found = list_handoffs(ctx, status=status, rep_email=rep, limit=limit, actor=LOCAL)
    console.print(_handoff_table("Handoffs", found))


@handoff_app.command("queue")
def handoff_queue() -> None:
    """The unassigned queue: handoffs nobody could take yet, and why."""
    from baton.services.handoffs import list_handoffs

    with _work() as ctx:
        found = list_handoffs(ctx, status=["queued"], limit=1000, actor=LOCAL)
    if not found:
        say("the unassigned queue is empty")
        return
    console.print(_handoff_table("Unassigned queue", found, queue=True))


@handoff_app.command("show")
def handoff_show(handoff_id: Annotated[int, typer.Argument(metavar="ID")]) -> None:
    """One handoff: status, rep, deadlines, routing, and what happened to it."""
    from baton.services.handoffs import get_handoff, handoff_events_of

    with _work() as ctx:
        h = get_handoff(ctx, handoff_id, actor=LOCAL)
        events = handoff_events_of(ctx, handoff_id, actor=LOCAL)
    lines = [
        f"Handoff {h.id} of lead {h.lead_id}: {h.status}",
        f"rep:          {h.rep_email or '— (unassigned)'}",
        f"MQL at:       {_when(h.mql_at)}",
        f"accept by:    {_when(h.accept_due_at)}    accepted: {_when(h.accepted_at)}",
        f"touch by:     {_when(h.touch_due_at)}    first touch: {_when(h.first_touch_at)}",
        f"routing:      {h.routing.get('reason', '—')}",
    ]
    if h.outcome:
        lines.append(
            f"outcome:      {h.outcome}" + (f" ({h.rejection_code})" if h.rejection_code else "")
        )
    if h.qualification:
        lines.append("qualification: " + ", ".join(f"{k}={v}" for k, v in h.qualification.items()))
    if h.deal_value is not None:
        lines.append(f"deal value:   {h.deal_value:,.2f}")
    say("\n".join(lines))
    table = Table(title="Events")
    for column in ("at", "event", "by", "detail"):
        table.add_column(column, no_wrap=column != "detail")
    for e in events:
        detail = ", ".join(
            f"{k}={_flat(v)}" for k, v in e.detail.items() if v not in (None, "", {}, [])
        )
        table.add_row(_when(e.at), e.kind, escape(e.actor), escape(detail))
    console.print(table)


@handoff_app.command("packet")
def handoff_packet_command(handoff_id: Annotated[int, typer.Argument(metavar="ID")]) -> None:
    """The handoff packet as the rep's email shows it: who, score and why, interests,
    prep checklist, notes, timeline."""
    from baton.notify.render import render_email
    from baton.services.packet import handoff_packet

    with _work() as ctx:
        packet = handoff_packet(ctx, handoff_id, actor=LOCAL)
    typer.echo(render_email("handoff.assigned", packet).text)


def _verdict_done(ctx: Context, handoff: Any, what: str) -> None:
    from baton.services.leads import get_lead

    stage = get_lead(ctx, handoff.lead_id, actor=LOCAL).stage
    say(f"handoff {handoff.id} {what}; lead {handoff.lead_id} is now {stage}")


HandoffArg = Annotated[int, typer.Argument(metavar="ID", help="The handoff's id.")]


@handoff_app.command("accept")
def handoff_accept(handoff_id: HandoffArg, actor: VerdictActor) -> None:
    """Accept the lead (it becomes a SAL)."""
    from baton.services.handoffs import accept_handoff

    with _work() as ctx:
        _verdict_done(
            ctx, accept_handoff(ctx, handoff_id, actor=operator(actor)), f"accepted by {actor}"
        )


@handoff_app.command("reject")
def handoff_reject(
    handoff_id: HandoffArg,
    code: Annotated[str, typer.Argument(help="A rejection code of the contract.")],
    actor: VerdictActor,
    note: Annotated[str | None, typer.Option("--note", help="Why, in words.")] = None,
) -> None:
    """Turn the lead down with CODE from the contract's rejection reasons."""
    from baton.services.handoffs import reject_handoff

    with _work() as ctx:
        handoff = reject_handoff(ctx, handoff_id, code=code, note=note, actor=operator(actor))
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

    with _work() as ctx:
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
    with _work() as ctx:
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

    with _work() as ctx:
        handoff = open_opportunity(ctx, handoff_id, amount=amount, actor=operator(actor))
        _verdict_done(ctx, handoff, "is an opportunity")


@handoff_app.command("won")
def handoff_won(
    handoff_id: HandoffArg,
    actor: VerdictActor,
    amount: AmountOption = None,
    note: Annotated[str | None, typer.Option("--note", help="A word on the deal.")] = None,
) -> None:
    """The deal is won: the lead becomes a customer."""
    from baton.services.handoffs import won_handoff

    with _work() as ctx:
        handoff = won_handoff(ctx, handoff_id, amount=amount, note=note, actor=operator(actor))
        _verdict_done(ctx, handoff, "won")


@handoff_app.command("lost")
def handoff_lost(
    handoff_id: HandoffArg,
    actor: VerdictActor,
    reason: Annotated[str, typer.Option("--reason", help="Why the deal was lost.")],
) -> None:
    """The deal is lost, with a reason."""
    from baton.services.handoffs import lost_handoff

    with _work() as ctx:
        _verdict_done(
            ctx, lost_handoff(ctx, handoff_id, reason=reason, actor=operator(actor)), "lost"
        )


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

    with _work() as ctx:
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

    with _work() as ctx:
        done = assign_handoff(
            ctx, handoff_id, to_email=to, override_reason=override, actor=operator(actor)
        )
    due = f", accept by {_when(done.accept_due_at)} UTC" if done.accept_due_at else ""
    say(f"handoff {handoff_id} assigned to {done.rep_email}{due}")


# --- webhooks ----------------------------------------------------------------------------


@webhook_app.command("add")
def webhook_add(
    url: str,
    event: Annotated[
        list[str] | None,
        typer.Option(
            "--event", help="An event to send, e.g. handoff.assigned (repeat; default *)."
        ),
    ] = None,
    secret: Annotated[
        str | None, typer.Option("--secret", help="Signing secret (default: a random one).")
    ] = None,
    actor: ActorOption = "cli",
) -> None:
    """Send handoff events to URL, signed (the secret is shown only now)."""
    from baton.services.webhooks import create_endpoint

    with _work() as ctx:
        endpoint, key = create_endpoint(
            ctx, url=url, events=event or ["*"], secret=secret, actor=operator(actor)
        )
    say(f"webhook {endpoint.id} added: {', '.join(endpoint.events)} → {endpoint.url}")
    say(f"signing secret (shown only now, store it): {key}")


@webhook_app.command("list")
def webhook_list() -> None:
    """Every webhook endpoint."""
    from baton.services.webhooks import list_endpoints

    with _work() as ctx:
        endpoints = list_endpoints(ctx, actor=LOCAL)
    table = Table(title="Webhook endpoints")
    for column in ("id", "url", "events", "active", "created"):
        table.add_column(column, no_wrap=column in ("id", "url", "active"), overflow="fold")
    for e in endpoints:
        table.add_row(
            str(e.id),
            escape(e.url),
            ", ".join(e.events),
            "yes" if e.active else "no",
            escape(f"{e.created_at:%Y-%m-%d} by {e.created_by}"),
        )
    console.print(table)


@webhook_app.command("remove")
def webhook_remove(
    endpoint_id: Annotated[int, typer.Argument(metavar="ID")], actor: ActorOption = "cli"
) -> None:
    """Stop sending to a webhook endpoint (its delivery log is kept)."""
    from baton.services.webhooks import disable_endpoint

    with _work() as ctx:
        endpoint = disable_endpoint(ctx, endpoint_id, actor=operator(actor))
    say(f"webhook {endpoint.id} ({endpoint.url}) disabled")


@webhook_app.command("deliveries")
def webhook_deliveries(
    endpoint_id: Annotated[int, typer.Argument(metavar="ID")],
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="How many, newest first.")] = 50,
) -> None:
    """The newest events sent (or to send) to a webhook endpoint, with their attempts."""
    from baton.services.webhooks import list_deliveries

    with _work() as ctx:
        found = list_deliveries(ctx, endpoint_id, limit=limit, actor=LOCAL)
    table = Table(title=f"Deliveries of webhook {endpoint_id}")
    for column in ("id", "event", "handoff", "status", "attempts", "last error", "sent"):
        table.add_column(column, no_wrap=column != "last error")
    for d in found:
        table.add_row(
            str(d.id),
            d.topic,
            str(d.handoff_id or ""),
            d.status,
            str(d.attempts),
            escape(d.last_error or ""),
            _when(d.sent_at),
        )
    console.print(table)


# --- outbox -------------------------------------------------------------------------------


class OutboxStateOption(StrEnum):
    pending = "pending"
    retrying = "retrying"
    failed = "failed"
    sent = "sent"


class OutboxChannelOption(StrEnum):
    email = "email"
    webhook = "webhook"


@outbox_app.command("list")
def outbox_list(
    state: Annotated[
        list[OutboxStateOption] | None,
        typer.Option("--state", help="Only this state (repeat for several)."),
    ] = None,
    channel: Annotated[
        OutboxChannelOption | None, typer.Option("--channel", help="email or webhook.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="How many, newest first.")] = 50,
) -> None:
    """Email and webhooks to send, sent or given up on, newest first."""
    from baton.services.outbox import list_messages

    with _work() as ctx:
        found = list_messages(
            ctx,
            actor=LOCAL,
            states=[s.value for s in state or ()],
            channel=channel.value if channel else None,
            limit=limit,
        )
    if not found:
        say("no outbox messages" + (" in that state" if state or channel else ""))
        return
    table = Table(title="Outbox")
    for column in ("id", "channel", "topic", "to", "state", "attempts", "next / sent", "error"):
        table.add_column(column, no_wrap=column not in ("to", "error"), overflow="fold")
    for m in found:
        table.add_row(
            str(m.id),
            m.channel,
            m.topic,
            escape(m.recipient),
            m.state + (" (sending)" if m.in_flight else ""),
            str(m.attempts),
            _when(m.sent_at or m.next_attempt_at),
            escape(m.last_error or ""),
        )
    console.print(table)


@outbox_app.command("show")
def outbox_show(message_id: Annotated[int, typer.Argument(metavar="ID")]) -> None:
    """One message with every attempt."""
    from baton.services.outbox import get_message

    with _work() as ctx:
        m = get_message(ctx, message_id, actor=LOCAL)
    say(f"outbox {m.id}: {m.channel} {m.topic} to {m.recipient}, {m.state}")
    table = Table(title=f"Attempts of outbox {m.id}")
    for column in ("attempt", "at", "ok", "code", "ms", "error"):
        table.add_column(column, no_wrap=column != "error")
    for a in m.history or []:
        table.add_row(
            str(a.attempt),
            _when(a.attempted_at),
            "yes" if a.ok else "no",
            str(a.status_code or ""),
            f"{a.duration_ms:.0f}",
            escape(a.error or ""),
        )
    console.print(table)


@outbox_app.command("retry")
def outbox_retry(
    message_ids: Annotated[list[int] | None, typer.Argument(metavar="[ID]...")] = None,
    failed: Annotated[
        bool, typer.Option("--failed", help="Every failed message instead of chosen ones.")
    ] = False,
    channel: Annotated[
        OutboxChannelOption | None, typer.Option("--channel", help="With --failed: only this.")
    ] = None,
    actor: ActorOption = "cli",
) -> None:
    """Send failed (or retrying) messages again now, each with a fresh series of attempts."""
    from baton.services.outbox import retry_failed, retry_message

    if bool(message_ids) == failed:
        raise fail("name message ids, or give --failed (not both)")
    with _work() as ctx:
        if failed:
            count = retry_failed(
                ctx,
                actor=operator(actor),
                channel=channel.value if channel else None,
            )
            say(f"{count} failed message{'s' if count != 1 else ''} due again")
            return
        for message_id in message_ids or []:
            m = retry_message(ctx, message_id, actor=operator(actor))
            say(f"outbox {m.id} ({m.topic} to {m.recipient}) due again")


# --- reports ------------------------------------------------------------------------------


class ReportFormat(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


class FunnelModeOption(StrEnum):
    cohort = "cohort"
    flow = "flow"


FromOption = Annotated[
    str, typer.Option("--from", help="First day of the period, YYYY-MM-DD (in --tz).")
]
ToOption = Annotated[str, typer.Option("--to", help="Day after the last one (exclusive).")]
TzOption = Annotated[str, typer.Option("--tz", help="IANA zone of the days (default UTC).")]
GroupByOption = Annotated[
    str | None,
    typer.Option("--group-by", help="source, campaign, team, rep, country or contract_version."),
]
SourceFilter = Annotated[str | None, typer.Option("--source", help="Only this source.")]
CampaignFilter = Annotated[str | None, typer.Option("--campaign", help="Only this campaign.")]
TeamFilter = Annotated[str | None, typer.Option("--team", help="Only this team's reps.")]
RepFilter = Annotated[str | None, typer.Option("--rep", help="Only this rep (email).")]
CountryFilter = Annotated[str | None, typer.Option("--country", help="Only this country.")]
VersionFilter = Annotated[
    int | None, typer.Option("--contract-version", help="Only this contract version.")
]
FormatOption = Annotated[
    ReportFormat, typer.Option("--format", help="table (default), csv or json.")
]


def _report_args(
    start: str, end: str, tz: str, group_by: str | None, filters: dict[str, Any]
) -> tuple[Any, Any]:
    """The period and filters of a report command, or a one-line error."""
    from datetime import date

    from baton.domain.reports import GROUP_BY, ReportFilters, ReportPeriod

    days = []
    for option, text in (("--from", start), ("--to", end)):
        try:
            days.append(date.fromisoformat(text))
        except ValueError:
            raise fail(f"{option}: {text!r} is not a date; write YYYY-MM-DD") from None
    try:
        period = ReportPeriod.from_dates(days[0], days[1], tz)
    except ValueError as exc:
        raise fail(str(exc)) from None
    if group_by is not None and group_by not in GROUP_BY:
        raise fail(f"--group-by: cannot group by {group_by!r}; use one of {', '.join(GROUP_BY)}")
    return period, ReportFilters(**filters)


_PERCENT_KEYS = ("share", "rate", "within_", "uplift", "→")


def _cell(key: str, value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if any(k in key for k in _PERCENT_KEYS):
            return f"{value:.1%}"
        return f"{value:,.2f}"
    return str(value)


def _period_text(report: Any) -> str:
    period = report.period
    text = f"{period.first_day} → {period.end_day} (exclusive) in {report.timezone}"
    if report.group_by:
        text += f", by {report.group_by}"
    given = report.filters.given()
    if given:
        text += ", only " + ", ".join(f"{k}={v}" for k, v in given.items())
    return text


def _rows_table(title: str, rows: list[dict[str, Any]], columns: list[str]) -> Table:
    table = Table(title=title)
    for column in columns:
        table.add_column(
            column.replace("_", " "),
            justify="left"
            if column in ("group", "code", "label", "outcome", "from_stage", "to_stage")
            else "right",
            overflow="fold",
        )
    for row in rows:
        table.add_row(*(escape(_cell(c, row.get(c))) for c in columns))
    return table


def _emit(report: Any, fmt: ReportFormat, title: str, extra: list[Table] | None = None) -> None:
    """Print a report as Rich tables, CSV rows (stdout) or its JSON."""
    import json

    data = report.to_json()
    rows: list[dict[str, Any]] = data["rows"]
    if fmt == ReportFormat.json:
        typer.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))
        return
    if fmt == ReportFormat.csv:
        columns = report.columns()
        writer = csv.DictWriter(sys.stdout, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return
    columns = [c for c in report.columns() if report.group_by or c != "group"]
    if not _nothing_to_group(report, title):
        console.print(_rows_table(f"{title}: {_period_text(report)}", rows, columns))
    for table in extra or []:
        console.print(table)


def _nothing_to_group(report: Any, title: str) -> bool:
    """Say so, in words, when a grouped report has no group in its period (an empty
    table reads like a display fault); ``True`` when it said so."""
    if not report.group_by or report.rows:
        return False
    fewer = " or fewer filters" if report.filters.given() else ""
    console.print(
        f"{title}: {_period_text(report)}\nNothing to show: the period has no data to group "
        f"by {report.group_by} (try a wider period{fewer}).",
        markup=False,
    )
    return True


def _funnel_table(report: Any) -> Table:
    """Stages down, groups across: the count and the conversion from the stage before."""
    from baton.domain.reports import FUNNEL, SIDE_STAGES

    table = Table(title=f"Funnel ({report.mode}): {_period_text(report)}")
    table.add_column("stage")
    for row in report.rows:
        table.add_column(
            escape(_cell("group", row.group if row.group is not None else "(none)"))
            if report.group_by
            else "leads",
            justify="right",
        )
    previous = None
    for stage in (*FUNNEL, *SIDE_STAGES):
        cells = []
        for row in report.rows:
            count = f"{row.counts[stage]:,}"
            rate = row.conversion.get(f"{previous}→{stage}") if previous else None
            cells.append(count + (f" ({rate:.1%})" if rate is not None else ""))
        table.add_row(stage, *cells)
        previous = stage if stage in FUNNEL else None
    cells = [_cell("→", row.conversion["lead→customer"]) for row in report.rows]
    table.add_row("lead → customer", *cells)
    return table


@report_app.command("funnel")
def report_funnel(
    start: FromOption,
    end: ToOption,
    tz: TzOption = "UTC",
    group_by: GroupByOption = None,
    mode: Annotated[
        FunnelModeOption,
        typer.Option(
            "--mode",
            help="cohort: leads created in the period, and how far they "
            "went; flow: leads that moved into each stage in the period.",
        ),
    ] = FunnelModeOption.cohort,
    source: SourceFilter = None,
    campaign: CampaignFilter = None,
    team: TeamFilter = None,
    rep: RepFilter = None,
    country: CountryFilter = None,
    contract_version: VersionFilter = None,
    fmt: FormatOption = ReportFormat.table,
) -> None:
    """Leads per stage and the conversion from each stage to the next."""
    from baton.services.reports import funnel

    period, filters = _report_args(start, end, tz, group_by, locals_filters(locals()))
    with _context() as ctx:
        report = funnel(
            ctx, period, mode=mode.value, group_by=group_by, filters=filters, actor=LOCAL
        )
    if fmt == ReportFormat.table:
        if not _nothing_to_group(report, f"Funnel ({mode.value})"):
            console.print(_funnel_table(report))
        return
    _emit(report, fmt, "Funnel")


def locals_filters(values: dict[str, Any]) -> dict[str, Any]:
    """The filter options of a report command, by their ReportFilters names."""
    return {
        name: values.get(name)
        for name in ("source", "campaign", "team", "rep", "country", "contract_version")
    }


@report_app.command("velocity")
def report_velocity(
    start: FromOption,
    end: ToOption,
    tz: TzOption = "UTC",
    group_by: GroupByOption = None,
    source: SourceFilter = None,
    campaign: CampaignFilter = None,
    team: TeamFilter = None,
    rep: RepFilter = None,
    country: CountryFilter = None,
    contract_version: VersionFilter = None,
    fmt: FormatOption = ReportFormat.table,
) -> None:
    """Hours between consecutive stages (median, 90th percentile) for the leads created
    in the period."""
    from baton.services.reports import velocity

    period, filters = _report_args(start, end, tz, group_by, locals_filters(locals()))
    with _context() as ctx:
        report = velocity(ctx, period, group_by=group_by, filters=filters, actor=LOCAL)
    _emit(report, fmt, "Velocity (hours)")
    note = report.to_json()["data_quality"]["note"]
    if note and fmt == ReportFormat.table:
        say(f"data quality: {note}")


@report_app.command("speed")
def report_speed(
    start: FromOption,
    end: ToOption,
    tz: TzOption = "UTC",
    group_by: GroupByOption = None,
    source: SourceFilter = None,
    campaign: CampaignFilter = None,
    team: TeamFilter = None,
    rep: RepFilter = None,
    country: CountryFilter = None,
    contract_version: VersionFilter = None,
    fmt: FormatOption = ReportFormat.table,
) -> None:
    """Speed to lead (minutes) of the MQLs of the period: MQL → first touch, system
    and rep delay, business minutes, shares touched within 5 min, 1 h, 24 h."""
    from baton.services.reports import speed_to_lead

    period, filters = _report_args(start, end, tz, group_by, locals_filters(locals()))
    with _context() as ctx:
        report = speed_to_lead(ctx, period, group_by=group_by, filters=filters, actor=LOCAL)
    _emit(report, fmt, "Speed to lead (minutes)")


@report_app.command("sla")
def report_sla(
    start: FromOption,
    end: ToOption,
    tz: TzOption = "UTC",
    group_by: GroupByOption = None,
    source: SourceFilter = None,
    campaign: CampaignFilter = None,
    team: TeamFilter = None,
    rep: RepFilter = None,
    country: CountryFilter = None,
    contract_version: VersionFilter = None,
    fmt: FormatOption = ReportFormat.table,
) -> None:
    """SLA compliance of the handoffs assigned in the period, and the escalations."""
    from baton.services.reports import sla_compliance

    period, filters = _report_args(start, end, tz, group_by, locals_filters(locals()))
    with _context() as ctx:
        report = sla_compliance(ctx, period, group_by=group_by, filters=filters, actor=LOCAL)
    _emit(report, fmt, "SLA compliance")


@report_app.command("rejections")
def report_rejections(
    start: FromOption,
    end: ToOption,
    tz: TzOption = "UTC",
    group_by: GroupByOption = None,
    source: SourceFilter = None,
    campaign: CampaignFilter = None,
    team: TeamFilter = None,
    rep: RepFilter = None,
    country: CountryFilter = None,
    contract_version: VersionFilter = None,
    fmt: FormatOption = ReportFormat.table,
) -> None:
    """Rejections of the period by reason, and what became of the recycled leads."""
    from baton.services.reports import rejections

    period, filters = _report_args(start, end, tz, group_by, locals_filters(locals()))
    with _context() as ctx:
        report = rejections(ctx, period, group_by=group_by, filters=filters, actor=LOCAL)
    summary = report.recycled.to_json()
    extra = _rows_table("Leads recycled to nurture", [summary], list(summary))
    _emit(report, fmt, "Rejections", [extra])


@report_app.command("credit")
def report_credit(
    start: FromOption,
    end: ToOption,
    tz: TzOption = "UTC",
    group_by: Annotated[
        str,
        typer.Option(
            "--group-by", help="source (default), campaign, team, rep, country or contract_version."
        ),
    ] = "source",
    source: SourceFilter = None,
    campaign: CampaignFilter = None,
    team: TeamFilter = None,
    rep: RepFilter = None,
    country: CountryFilter = None,
    contract_version: VersionFilter = None,
    fmt: FormatOption = ReportFormat.table,
) -> None:
    """Marketing credit: MQLs, those rejected without credit, and of the credited ones
    how many were accepted and won."""
    from baton.services.reports import marketing_credit

    period, filters = _report_args(start, end, tz, group_by, locals_filters(locals()))
    with _context() as ctx:
        report = marketing_credit(ctx, period, group_by=group_by, filters=filters, actor=LOCAL)
    _emit(report, fmt, "Marketing credit")


@report_app.command("cost")
def report_cost(
    start: FromOption,
    end: ToOption,
    tz: TzOption = "UTC",
    group_by: Annotated[
        str, typer.Option("--group-by", help="source (default) or campaign.")
    ] = "source",
    source: SourceFilter = None,
    campaign: CampaignFilter = None,
    fmt: FormatOption = ReportFormat.table,
) -> None:
    """Spend per source or campaign against the leads created in the period, cost per
    lead, MQL, SAL, SQL and customer, and the cost of the gap."""
    from baton.services.reports import cost

    filters = {"source": source, "campaign": campaign}
    period, report_filters = _report_args(start, end, tz, group_by, filters)
    with _context() as ctx:
        report = cost(ctx, period, group_by=group_by, filters=report_filters, actor=LOCAL)
    gap = report.gap.to_json()
    extra = [_rows_table("Cost of the gap", [gap], list(gap))]
    if report.currencies:
        currency = Table.grid()
        currency.add_row(f"Amounts in {', '.join(report.currencies)}")
        extra.append(currency)
    _emit(report, fmt, "Cost", extra)


@report_app.command("rebuild")
def report_rebuild() -> None:
    """Recompute the milestones reports read (stages each lead reached, chains of
    handoffs, SLA step counts) from the history. Baton keeps them as it goes; run this
    after writing to the database around Baton (a bulk load, a manual fix)."""
    from baton.services.milestones import rebuild_milestones

    with _context() as ctx, console.status("Recomputing milestones from the history..."):
        started = time.perf_counter()
        counts = rebuild_milestones(ctx)
    say(
        f"Rebuilt milestones of {counts['leads']:,} leads and {counts['chains']:,} chains of"
        f" handoffs, step counts of {counts['handoffs']:,} handoffs"
        f" ({time.perf_counter() - started:,.1f} s)."
    )


# --- users, tokens and intake keys -------------------------------------------------------


def _user_table(found: list[Any]) -> Table:
    table = Table(title="Users")
    for column in ("id", "email", "name", "role", "rep / teams", "time zone", "active", "password"):
        table.add_column(column, overflow="fold")
    for u in found:
        table.add_row(
            str(u.id),
            escape(u.email),
            escape(u.display_name),
            u.role,
            escape(u.rep_email or ", ".join(u.teams) or "-"),
            u.timezone,
            "yes" if u.active else "[red]no[/]",
            ("[yellow]one-time[/]" if u.one_time_password else "own")
            + (" (demo)" if u.demo else ""),
        )
    return table


@user_app.command("add")
def user_add(
    email: str,
    role: Annotated[Role, typer.Option("--role", help="admin, marketing, sales_manager or rep.")],
    name: Annotated[str | None, typer.Option("--name", help="Display name.")] = None,
    rep: Annotated[
        str | None, typer.Option("--rep", help="For a rep user: the email of their rep record.")
    ] = None,
    team: Annotated[
        list[str] | None, typer.Option("--team", help="For a sales manager: a team (repeat).")
    ] = None,
    timezone: Annotated[
        str | None,
        typer.Option("--timezone", help="IANA time zone (default: the rep's, else UTC)."),
    ] = None,
    actor: ActorOption = "cli",
) -> None:
    """Add a person; prints their one-time password (shown only now)."""
    from baton.domain.users import UserCreate
    from baton.services.users import add_user

    data = _valid(
        UserCreate,
        {
            "email": email,
            "display_name": name or email.split("@")[0],
            "role": role.value,
            "rep_email": rep,
            "teams": team or [],
            **({"timezone": timezone} if timezone else {}),
        },
    )
    with _work() as ctx:
        user, secret = add_user(ctx, data, actor=operator(actor))
    say(f"user {user.id} added: {user.email} ({user.role})")
    say(f"one-time password (shown only now; they choose their own at first sign-in): {secret}")


@user_app.command("list")
def user_list() -> None:
    """Every user, their role, and who still has a one-time password."""
    from baton.services.users import list_users

    with _work() as ctx:
        found = list_users(ctx, actor=operator())
    console.print(_user_table(found))


@user_app.command("disable")
def user_disable(email: str, actor: ActorOption = "cli") -> None:
    """Disable a user: their sessions end at once, their tokens within seconds."""
    from baton.services.users import disable_user, find_user

    with _work() as ctx:
        user = disable_user(ctx, find_user(ctx, email, actor=operator()).id, actor=operator(actor))
    say(f"user {user.email} disabled")


@user_app.command("reset-password")
def user_reset_password(email: str, actor: ActorOption = "cli") -> None:
    """Give a user a new one-time password (shown only now); their sessions end."""
    from baton.services.users import find_user, reset_password

    with _work() as ctx:
        secret = reset_password(
            ctx, find_user(ctx, email, actor=operator()).id, actor=operator(actor)
        )
    say(f"new one-time password for {email} (shown only now): {secret}")


@token_app.command("add")
def token_add(
    name: str,
    user: Annotated[str, typer.Option("--user", help="Email of the user the token acts as.")],
    scope: Annotated[
        list[str],
        typer.Option("--scope", help="A scope, e.g. leads:write (repeat). `baton token scopes`."),
    ],
    expires_in_days: Annotated[
        int | None, typer.Option("--expires-in-days", min=1, help="Expire after so many days.")
    ] = None,
    actor: ActorOption = "cli",
) -> None:
    """Make an API token for a user (an integration's service user, say); it never
    grants more than that user's role. Prints the token once."""
    from datetime import timedelta

    from baton.domain.users import TokenCreate
    from baton.services.users import create_token

    with _work() as ctx:
        expires = (
            None if expires_in_days is None else ctx.clock.now() + timedelta(days=expires_in_days)
        )
        data = _valid(
            TokenCreate,
            {"name": name, "scopes": scope, "expires_at": expires, "user_email": user},
        )
        token, secret = create_token(ctx, data, actor=operator(actor))
    say(f"token {token.id} ({token.prefix}…) for {token.user_email}: {', '.join(token.scopes)}")
    say(f"token (shown only now, send it as a bearer token): {secret}")


@token_app.command("list")
def token_list() -> None:
    """Every API token (never the secrets), with when each was last used."""
    from baton.services.users import list_tokens

    with _work() as ctx:
        found = list_tokens(ctx, actor=operator(), all_users=True)
    table = Table(title="API tokens")
    for column in ("id", "prefix", "name", "user", "scopes", "expires", "last used", "state"):
        table.add_column(column, no_wrap=column in ("id", "prefix"))
    for t in found:
        table.add_row(
            str(t.id),
            t.prefix + "…",
            escape(t.name),
            escape(t.user_email),
            ", ".join(t.scopes),
            _when(t.expires_at),
            _when(t.last_used_at),
            "[red]revoked[/]" if t.revoked_at else "active",
        )
    console.print(table)


@token_app.command("revoke")
def token_revoke(
    token_id: Annotated[int, typer.Argument(metavar="ID")], actor: ActorOption = "cli"
) -> None:
    """Revoke a token: refused by every process within seconds."""
    from baton.services.users import revoke_token

    with _work() as ctx:
        token = revoke_token(ctx, token_id, actor=operator(actor))
    say(f"token {token.id} ({token.name}) revoked")


@token_app.command("scopes")
def token_scopes() -> None:
    """The scopes a token can carry."""
    from baton.domain.access import SCOPES

    table = Table(title="Token scopes")
    table.add_column("scope", no_wrap=True)
    table.add_column("lets a program")
    for scope, meaning in SCOPES.items():
        table.add_row(scope, meaning)
    console.print(table)


@intake_app.command("add")
def intake_key_add(
    name: str,
    source: Annotated[str, typer.Option("--source", help="Source given to leads it captures.")],
    origin: Annotated[
        list[str] | None,
        typer.Option("--origin", help="A browser origin allowed, e.g. https://www.example.com."),
    ] = None,
    rate: Annotated[int, typer.Option("--rate", help="Requests a minute at most.")] = 60,
    actor: ActorOption = "cli",
) -> None:
    """Make a public intake key for a website or form tool: it may only capture
    leads and activities. Prints the key once."""
    from baton.domain.users import IntakeKeyCreate
    from baton.services.users import add_intake_key

    data = _valid(
        IntakeKeyCreate,
        {"name": name, "source": source, "origins": origin or [], "rate_per_minute": rate},
    )
    with _work() as ctx:
        key, secret = add_intake_key(ctx, data, actor=operator(actor))
    say(f"intake key {key.id} '{key.name}' (source {key.source}, {key.rate_per_minute}/min)")
    say(f"key (shown only now; send as X-Baton-Intake-Key): {secret}")


@intake_app.command("list")
def intake_key_list() -> None:
    """Every intake key (never the secrets)."""
    from baton.services.users import list_intake_keys

    with _work() as ctx:
        found = list_intake_keys(ctx, actor=operator())
    table = Table(title="Intake keys")
    for column in ("id", "prefix", "name", "source", "origins", "rate/min", "state"):
        table.add_column(column, no_wrap=column in ("id", "prefix"))
    for k in found:
        table.add_row(
            str(k.id),
            k.prefix + "…",
            escape(k.name),
            escape(k.source),
            escape(", ".join(k.origins) or "(servers only)"),
            str(k.rate_per_minute),
            "[red]revoked[/]" if k.revoked_at else "active",
        )
    console.print(table)


@intake_app.command("revoke")
def intake_key_revoke(
    key_id: Annotated[int, typer.Argument(metavar="ID")], actor: ActorOption = "cli"
) -> None:
    """Revoke an intake key."""
    from baton.services.users import revoke_intake_key

    with _work() as ctx:
        key = revoke_intake_key(ctx, key_id, actor=operator(actor))
    say(f"intake key {key.id} ({key.name}) revoked")


def main() -> None:
    """Entry point: a bug prints one line (and the trace only with BATON_DEBUG=1), with
    any password in it masked."""
    import logging
    import os

    from baton.redact import install_log_masking, mask, mask_exception

    install_log_masking()
    try:
        app()
    except Exception as exc:
        if os.environ.get("BATON_DEBUG"):
            sys.stderr.write(mask_exception(exc))
            raise SystemExit(70) from None
        logging.getLogger("baton").debug("crash", exc_info=True)
        errors.print(
            f"[bold red]internal error:[/] {type(exc).__name__}: {mask(str(exc))}\n"
            "Nothing was half-written (each step is one transaction). "
            "Run again with BATON_DEBUG=1 to see the trace, and please report it.",
            markup=True,
            highlight=False,
        )
        raise SystemExit(70) from None


if __name__ == "__main__":
    main()
