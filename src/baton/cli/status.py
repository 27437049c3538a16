"""`baton status`: is the deployment healthy? Every worker queue's depth and the age of
its oldest due item, the workers' heartbeats, and a verdict whose exit code a cron job
or a monitor can use (:data:`EXIT_CODES`).

It opens the database without migrating it (unlike the other commands): a monitor
asking every minute must never migrate production in the middle of an upgrade, nor
wait on the migration lock. A schema that is not this version's is its own answer
(exit 3), as ``/readyz`` says it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from baton.cli._common import database_reason, load_settings, safe_url
from baton.cli._output import console, fail, show_list, when
from baton.domain.access import operator

if TYPE_CHECKING:
    from baton.domain.status import DeploymentStatus

status_app = typer.Typer()
"""Commands of the top level (merged into `baton`, no group name)."""

VERDICT_STYLE = {"ok": "green", "behind": "yellow", "worker_silent": "red"}
WORKER_STYLE = {"running": "green", "silent": "red", "stopped": "dim", "replaced": "dim"}
EXIT_CODES = {"ok": 0, "behind": 1, "worker_silent": 2}
"""The exit code of each verdict; a monitor tells them apart without parsing."""
UNREADABLE = 3
"""The exit code when the status cannot be read: the database does not answer, or its
schema is not the one this version of Baton needs (not migrated yet, or newer)."""


@status_app.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Print the status as JSON.")] = False,
) -> None:
    """How the deployment is doing: each worker queue (waiting, the oldest due for how
    long), each worker's last heartbeat, and the verdict: ok, behind (a queue's oldest
    item waited longer than BATON_STATUS_BEHIND_SECONDS) or worker silent (no heartbeat
    for 60 s). Exit code 0 ok, 1 behind, 2 worker silent (or none running), 3 the
    database cannot be read or its schema is not this version's (it never migrates).
    A contract activation whose re-score of every lead has not finished is one more
    line (it does not change the verdict: `baton contract rescore` finishes it)."""
    from sqlalchemy.exc import DBAPIError

    from baton.services.context import open_context
    from baton.services.status import SCHEMA_MISMATCH, deployment_status, unready_because

    settings = load_settings()
    try:
        ctx = open_context(settings, migrate=False)
    except Exception as exc:
        raise _unreadable(
            f"cannot open the database {safe_url(settings.database_url)}: {database_reason(exc)}",
            as_json,
        ) from None
    try:
        why = unready_because(ctx, for_operator=True)
        if why is not None:
            if why.startswith(SCHEMA_MISMATCH):
                why += " (`baton status` never migrates; `baton init` does, at an upgrade)"
            raise _unreadable(why, as_json)
        found = deployment_status(ctx, actor=operator("baton status"))
    except DBAPIError as exc:
        raise _unreadable(f"the database does not answer ({exc.orig})", as_json) from None
    finally:
        ctx.engine.dispose()
    if as_json:
        typer.echo(status_json(found))
    else:
        _show(found)
    raise typer.Exit(EXIT_CODES[found.verdict])


def _unreadable(why: str, as_json: bool) -> typer.Exit:
    """Exit 3: under ``--json`` also a document with the verdict ``unreadable``, so a
    monitor that parses the output reads why."""
    if as_json:
        import json

        from baton.redact import mask

        typer.echo(json.dumps({"verdict": "unreadable", "reasons": [mask(why)]}, indent=2))
    return fail(why, UNREADABLE)


def status_json(found: DeploymentStatus) -> str:
    """The status as the API answers it (one JSON document, times in ISO 8601 UTC).
    Times go through Pydantic's serializer, the API's own, so both read
    ``2026-03-02T10:15:00.970000Z`` and a monitor parses either the same way."""
    import json
    from dataclasses import asdict
    from datetime import datetime

    from pydantic import TypeAdapter

    as_api = TypeAdapter(datetime)

    def iso(value: object) -> str:
        if isinstance(value, datetime):
            return str(as_api.dump_python(value, mode="json"))
        return str(value)

    document = asdict(found)
    if found.rescore is not None:
        from baton.domain.rescores import rescore_document

        document["rescore"] = rescore_document(found.rescore)
    return json.dumps(document, indent=2, default=iso)


def _show(found: DeploymentStatus) -> None:
    from rich.markup import escape

    from baton.domain.status import age_text

    rows = []
    for queue in found.queues:
        if queue.behind:
            state = "[yellow]behind[/]"
        elif queue.waiting:
            state = "[green]on time[/]" if queue.judged else "[dim]not judged[/]"
        else:
            state = "[dim]empty[/]"
        if queue.retrying:
            state += f", {queue.retrying:,} retrying"
        if queue.paused:
            state += f", [yellow]paused: {escape(', '.join(queue.paused))}[/]"
        if queue.waiting and queue.note:
            state += f" [dim]({escape(queue.note)})[/]"
        rows.append(
            [
                queue.name,
                queue.lane,
                f"{queue.waiting:,}",
                age_text(queue.age_seconds) if queue.age_seconds is not None else "—",
                state,
            ]
        )
    show_list(
        "Worker queues",
        [
            ("queue", True),
            ("lane", True),
            ("waiting", False),
            ("oldest due", False),
            ("state", True),
        ],
        rows,
        record="queue",
    )
    if found.workers:
        show_list(
            "Workers",
            [
                ("host", True),
                ("pid", False),
                ("started", False),
                ("last heartbeat", False),
                ("state", False),
                ("lanes failing", True),
            ],
            [
                [
                    escape(worker.host),
                    str(worker.pid),
                    when(worker.started_at),
                    f"{age_text(worker.silent_seconds)} ago",
                    f"[{WORKER_STYLE[worker.state]}]"
                    f"{'one pass (--once)' if worker.one_pass else worker.state}[/]",
                    ", ".join(
                        f"{escape(lane.name)} ({lane.failures})"
                        for lane in worker.lanes
                        if lane.failures
                    ),
                ]
                for worker in found.workers
            ],
            record="worker",
        )
    style = VERDICT_STYLE[found.verdict]
    console.print(
        f"[bold {style}]{found.verdict.replace('_', ' ')}[/] at {when(found.checked_at)} "
        f"(behind after {age_text(found.behind_after_seconds)}, "
        f"silent after {age_text(found.silent_after_seconds)})"
    )
    for reason in found.reasons:
        console.print(f"  - {escape(reason)}", highlight=False)
    if found.rescore is not None:
        from baton.domain.rescores import rescore_text

        console.print(f"[yellow]{escape(rescore_text(found.rescore))}[/]", highlight=False)
