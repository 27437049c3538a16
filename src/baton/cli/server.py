"""`baton init`, `serve`, `worker` and `demo`: the database, the API server and the
background worker."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from baton.cli._common import context, load_settings, safe_url, valid, work
from baton.cli._output import console, errors, fail, progress, say, when
from baton.domain.access import operator

if TYPE_CHECKING:
    from baton.config import Settings
    from baton.services.context import Context
    from baton.services.worker import TickReport

server_app = typer.Typer()
"""Commands of the top level (merged into `baton`, no group name)."""


@server_app.command()
def init(
    admin_email: Annotated[
        str, typer.Option("--admin-email", help="Email of the first admin (made only if none).")
    ] = "admin@example.com",
    admin_name: Annotated[str, typer.Option("--admin-name", help="Their display name.")] = "Admin",
    admin_password_stdin: Annotated[
        bool,
        typer.Option(
            "--admin-password-stdin",
            help="Read the first admin's own password from standard input (one line) "
            "instead of printing a one-time one.",
        ),
    ] = False,
) -> None:
    """Create the database (or bring its schema up to date) and, when there is no
    admin yet, a first admin: with the password read from standard input
    (--admin-password-stdin), else with a one-time password printed once (production
    starts once an admin has their own: sign in, or `baton user set-password`)."""
    from baton.domain.users import PasswordSet, UserCreate
    from baton.services.users import add_user, has_admin
    from baton.store.migrate import current_revision

    chosen = None
    if admin_password_stdin:
        chosen = valid(
            PasswordSet,
            {"password": sys.stdin.readline().rstrip("\r\n")},
            {"password": "--admin-password-stdin"},
        )
    with work() as ctx:
        console.print(
            f"[green]ready[/] {safe_url(ctx.settings.database_url)} at schema revision "
            f"{current_revision(ctx.engine)}"
        )
        if has_admin(ctx):
            if chosen is not None:
                say(
                    "an admin exists already: no password changed (`baton user "
                    "set-password EMAIL` sets one)"
                )
            return
        data = valid(
            UserCreate,
            {"email": admin_email, "display_name": admin_name, "role": "admin"},
            {"email": "--admin-email", "display_name": "--admin-name"},
        )
        user, secret = add_user(
            ctx,
            data,
            actor=operator("baton init"),
            password=None if chosen is None else chosen.password,
        )
    say(f"first admin: {user.email}")
    if secret is None:
        say("with the password given on standard input")
    else:
        if ctx.settings.env == "production":
            # Production refuses to start until an admin has their own password, so a
            # sign-in with this one can never happen: say the one way forward.
            say(
                f"no password of their own yet: run `baton user set-password {user.email}` "
                "before `baton serve` or `baton worker` (production refuses to start "
                "until then)"
            )
        else:
            say(f"one-time password (shown only now; sign in and choose your own): {secret}")
            say(
                f"it works until {when(user.one_time_password_expires_at)}; after that, "
                "`baton user reset-password` gives a new one"
            )


def _refuse_unready(ctx: Context, *, warn: bool = True) -> None:
    """In production, refuse to start without an admin, with demo users, or while no
    admin has chosen their own password; a colleague's unused one-time password is a
    warning (``warn``; the server's processes give it themselves)."""
    from baton.api.app import NotReady, refuse_unready

    try:
        refuse_unready(ctx, warn=warn)
    except NotReady as exc:
        raise fail(str(exc)) from None


@server_app.command()
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

    settings = load_settings()
    _log_lines(settings)  # before the worker's first line, which would go unformatted
    with context() as ctx:
        _refuse_unready(ctx, warn=False)
    host = host or settings.host
    port = port or settings.port
    if workers > 1 and settings.database_url.startswith("sqlite"):
        raise fail("several server processes need PostgreSQL; SQLite has one writer")
    if with_worker:  # once the server may start: no pass on a database it refuses
        _start_worker_thread()
    console.print(f"Baton API on [bold]http://{host}:{port}[/] (docs: http://{host}:{port}/docs)")
    uvicorn.run(
        "baton.api.asgi:app",
        host=host,
        port=port,
        workers=workers,
        log_level=settings.log_level,
    )


def _log_lines(settings: Settings) -> None:
    """Baton's own log lines (``baton.access``: keys made, changed, revoked; the
    worker's lanes) on standard error at ``BATON_LOG_LEVEL``, with time and logger."""
    import logging

    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # The HTTP client logs every request at info: one line per webhook, chat message
    # or platform fetch the worker sends, which the pass summary already counts. Its
    # warnings stay; its request lines only at BATON_LOG_LEVEL=debug.
    quiet = logging.DEBUG if settings.log_level == "debug" else logging.WARNING
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(quiet)


def _start_worker_thread() -> None:
    """The worker's loop (the same one as `baton worker`) in a daemon thread beside the
    server, with its own context; a SIGTERM writes its last summary and its stop."""
    import atexit
    import logging
    import signal
    import threading

    from baton.services.context import open_context
    from baton.services.worker import Worker
    from baton.services.worker_log import start_pass_log

    # Busy passes at debug, summed up at info once a minute (what `baton worker` writes).
    log = logging.getLogger("baton.worker")
    stop = threading.Event()
    passes = start_pass_log(log, stop)
    ctx = open_context(load_settings(), migrate=False)
    worker = Worker(ctx, on_pass=passes)
    threading.Thread(target=worker.run, args=(stop,), name="baton-worker", daemon=True).start()

    ended = threading.Event()

    def worker_stopped() -> None:
        """The worker's last summary and its stop, once, however the process ends."""
        if not ended.is_set():
            ended.set()
            stop.set()
            passes.flush()
            log.info("worker stopped")

    def stopped(signum: int, _frame: object) -> None:
        # uvicorn puts this handler back after its graceful shutdown and raises the
        # SIGTERM again: the worker's stop is written, then the process ends by the
        # signal as a service manager expects (exit 143).
        worker_stopped()
        signal.signal(signum, signal.SIG_DFL)
        signal.raise_signal(signum)

    signal.signal(signal.SIGTERM, stopped)
    # With --workers N uvicorn's supervisor replaces the handler for good: a normal
    # exit writes the stop then.
    atexit.register(worker_stopped)


def _wait_for_database(settings: Settings) -> None:
    """A worker started before its database (a reboot, a deploy) waits for it with
    backoff instead of exiting; a configuration that can never work still fails."""
    from sqlalchemy.exc import OperationalError

    from baton.redact import mask
    from baton.services.context import open_context

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


@server_app.command()
def worker(
    once: Annotated[
        bool,
        typer.Option(
            "--once",
            help="Run one pass and exit (the duplicate check takes up to 40,000 new leads "
            "a pass; it says how many still wait). `baton status` then shows when it ran.",
        ),
    ] = False,
    poll: Annotated[
        float | None,
        typer.Option(
            min=0.01,
            max=60,
            help="Seconds between passes when idle, 0.01 to 60 (BATON_WORKER_POLL_SECONDS).",
        ),
    ] = None,
) -> None:
    """Run the background work: due SLA steps (remind, reassign, notify the manager),
    assignment of queued handoffs, intake items to fetch, due nurture steps, the
    possible-duplicate check of new leads, delivery of email, webhooks and chat, and on
    PostgreSQL fresh planner statistics of tables that doubled. Run as many
    workers as you like against PostgreSQL; they never act twice on the same thing.
    A database that goes away is waited for (logged, retried with backoff), never a
    reason to exit; Ctrl+C or SIGTERM stops after the current passes."""
    import contextlib
    import logging
    import signal
    import threading

    from baton.heap import freeze_startup_heap
    from baton.services.duplicate_checks import pending_duplicate_checks
    from baton.services.model_store import preload_scoring_model
    from baton.services.scoring import restore_total_index
    from baton.services.worker import Worker, one_pass
    from baton.services.worker_log import pass_summary, start_pass_log

    settings = load_settings()
    if poll is not None:
        settings = settings.model_copy(update={"worker_poll_seconds": poll})
    if not once:
        _wait_for_database(settings)
    with context() as ctx:
        ctx.settings = settings
        # After the migrations, whose chatter is not the worker's, and before the
        # checks, so a warning (a colleague's one-time password) has time and level too.
        _log_lines(settings)
        _refuse_unready(ctx)
        restore_total_index(ctx)
        log = logging.getLogger("baton.worker")

        def show(lane: str, report: TickReport) -> None:
            # A log line like every other line of the worker's (time, level, logger), as
            # `baton serve --with-worker` writes it: one format to grep and alert on.
            log.info("%s: %s", lane, pass_summary(report))

        if once:
            report = one_pass(ctx)
            if report.busy:
                show("pass", report)
            waiting = pending_duplicate_checks(ctx)
            if waiting:
                console.print(
                    f"{waiting:,} new leads still wait for the duplicate check: run "
                    "`baton worker --once` again, or keep `baton worker` running."
                )
            return
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        log.info(
            "Baton worker running (polling every %g s; Ctrl+C stops; routine work summed "
            "up once a minute, each pass at BATON_LOG_LEVEL=debug)",
            settings.worker_poll_seconds,
        )
        preload_scoring_model(ctx)
        freeze_startup_heap()
        # Each busy pass at debug; at info one line a minute with the counts
        # (baton.services.worker_log), while failures keep their own lines at once.
        passes = start_pass_log(log, stop)
        try:
            with contextlib.suppress(KeyboardInterrupt):  # Ctrl+C: the lanes end their passes
                Worker(ctx, on_pass=passes).run(stop)
        finally:
            stop.set()  # and the summary thread its last summary
            passes.flush()
        log.info("worker stopped")


@server_app.command()
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

    with context() as ctx:
        if ctx.settings.env == "production":
            raise fail("the demo fills a database with made-up people; not in production")
        try:
            with progress() as bar:
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
                ("engagement events", summary.activities),
                ("MQLs (by the contract)", summary.mqls),
                ("  of them hand-raises", summary.hand_raises),
                ("handoffs", summary.handoffs),
                ("prep items ticked", summary.prep_ticks),
                ("stage transitions", summary.transitions),
                ("notes", summary.notes),
                ("sales reps", summary.reps),
                ("spend rows (per channel, month)", summary.spend_rows),
            ):
                table.add_row(name, f"{value:,}")
            table.add_row("spend (USD)", f"{summary.spend:,.0f}")
            console.print(table)
            version = summary.contract_version
            if version is not None:
                console.print(
                    f"Handoff contract version {version} (contracts/example.yaml) signed by "
                    "marketing and sales and active: every lead is scored."
                )
        users = demo_users(ctx)
        if users:
            table = Table(
                title="Demo users (one-time passwords, shown only now; each works for "
                f"{ctx.settings.one_time_password_days:g} days)"
            )
            for column in ("email", "role", "one-time password"):
                table.add_column(column, no_wrap=True)
            for email, role, secret in users:
                table.add_row(email, role, secret)
            console.print(table)
            console.print(
                "Sign in in a browser at /login (the rep's inbox, the manager's team, "
                "marketing's dashboard, the admin pages); each user chooses their own "
                "password first. Programs sign in with POST /auth/login."
            )
    if serve_after:
        serve(host=None, port=None, workers=1, with_worker=True)
