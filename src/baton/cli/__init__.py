"""The ``baton`` command line: a thin shell over the same use cases as the API.

One module per command group (as :mod:`baton.api.routes` has one per resource); the
options, the database context and the printing helpers they share live in
:mod:`baton.cli._common` and :mod:`baton.cli._output`. Modules import only Typer and
Rich at import time and the services inside each command, so that ``baton --help``
and ``baton --version`` start without loading SQLAlchemy, FastAPI or the services.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from baton import __version__
from baton.cli._output import console, errors
from baton.cli.calls import call_app
from baton.cli.contracts import contract_app
from baton.cli.duplicates import duplicates_app
from baton.cli.exports import export_app
from baton.cli.handoffs import handoff_app
from baton.cli.imports import import_app
from baton.cli.inbound import inbound_app
from baton.cli.intake import endpoints_app
from baton.cli.models import model_app
from baton.cli.nurture import nurture_app
from baton.cli.outbox import outbox_app
from baton.cli.person import person_app
from baton.cli.plan import plan_app
from baton.cli.reports import report_app
from baton.cli.reps import account_app, rep_app, team_app
from baton.cli.server import server_app
from baton.cli.status import status_app
from baton.cli.users import intake_app, token_app, user_app
from baton.cli.webhooks import webhook_app

__all__ = ["app", "console", "main"]

app = typer.Typer(
    name="baton",
    help="Baton: the marketing-to-sales lead handoff engine.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
)
app.add_typer(server_app)  # init, serve, worker, demo: no group name, merged in
app.add_typer(status_app)  # status: no group name, merged in
app.add_typer(inbound_app)  # inbound-smtp: no group name, merged in
app.add_typer(import_app, name="import")
app.add_typer(export_app, name="export")
app.add_typer(duplicates_app, name="duplicates")
app.add_typer(contract_app, name="contract")
app.add_typer(model_app, name="model")
app.add_typer(team_app, name="team")
app.add_typer(rep_app, name="rep")
app.add_typer(account_app, name="account")
app.add_typer(handoff_app, name="handoff")
app.add_typer(call_app, name="call")
app.add_typer(webhook_app, name="webhook")
app.add_typer(outbox_app, name="outbox")
app.add_typer(report_app, name="report")
app.add_typer(user_app, name="user")
app.add_typer(token_app, name="token")
app.add_typer(intake_app, name="intake-key")
app.add_typer(endpoints_app, name="intake")
app.add_typer(person_app, name="person")
app.add_typer(nurture_app, name="nurture")
app.add_typer(plan_app, name="plan")


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
            "Nothing was half-written: each step is one transaction (an import keeps "
            "the whole chunks it wrote; importing the same file again completes it). "
            "Run again with BATON_DEBUG=1 to see the trace, and please report it.",
            markup=True,
            highlight=False,
        )
        raise SystemExit(70) from None
