"""`baton contract ...`: validate, create, approve, activate, re-score and compare
versions of the handoff contract."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.table import Table

from baton.cli._common import LOCAL, ActorOption, context
from baton.cli._output import console, day, errors, fail, progress, when
from baton.domain.access import operator

contract_app = typer.Typer(
    help="The handoff contract: validate, create, approve, activate, compare.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)


ContractFile = Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)]


@contract_app.command("validate")
def contract_validate(file: ContractFile) -> None:
    """Check a contract file; print every problem with its path (exit 1 if any)."""
    from baton.domain.contract import ContractError, contract_warnings, parse_contract

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
        f"{contract.mql.threshold}, {len(contract.prep_checklist)} prep item(s), "
        f"{len(contract.nurture.sequences)} nurture sequence(s)"
    )
    for warning in contract_warnings(contract):
        console.print(f"[yellow]![/] {warning}", highlight=False)


@contract_app.command("create")
def contract_create(file: ContractFile, actor: ActorOption = "cli") -> None:
    """Store FILE as a new draft version."""
    from baton.domain.errors import BatonError
    from baton.services.contracts import create_contract

    with context() as ctx:
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
    for warning in version.warnings:
        console.print(f"[yellow]![/] {warning}", highlight=False)


@contract_app.command("list")
def contract_list() -> None:
    """Every version with its status and signatures."""
    from baton.services.contracts import list_contracts

    with context() as ctx:
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
            f"{day(v.created_at)} by {v.created_by}",
            when(v.activated_at) if v.activated_at else "",
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
    with context() as ctx:
        result = approve_contract(ctx, version, role=side, actor=operator(actor))
    console.print(f"version {version} signed for {role} by {actor}; status: {result.status}")


@contract_app.command("activate")
def contract_activate(version: int, actor: ActorOption = "cli") -> None:
    """Make an approved VERSION active and re-score every lead (progress shown)."""
    from baton.services.contracts import activate_contract

    with context() as ctx, progress() as bar:
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
        ("became MQL", report.became_mql),
        ("of which history (qualified too long ago: no live handoff)", report.held_back),
    ):
        table.add_row(name, f"{value:,}")
    console.print(table)


@contract_app.command("rescore")
def contract_rescore(actor: ActorOption = "cli") -> None:
    """Re-score every lead with the active version (finishes an interrupted activation;
    safe to run any time)."""
    from baton.services.contracts import rescore_active

    with context() as ctx, progress() as bar:
        task = bar.add_task("Re-scoring leads", total=None)

        def advance(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        report = rescore_active(ctx, actor=operator(actor), progress=advance)
    console.print(
        f"{report.leads_scored:,} leads re-scored with version {report.version}; "
        f"{report.became_mql - report.held_back:,} handed off, {report.held_back:,} recorded "
        "as history (qualified longer ago than mql.live_within_days)"
    )


@contract_app.command("diff")
def contract_diff(old: int, new: int) -> None:
    """What changed from version OLD to version NEW, in words."""
    from baton.services.contracts import diff_versions

    with context() as ctx:
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
