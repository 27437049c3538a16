"""`baton contract ...`: validate, create, approve, activate, re-score and compare
versions of the handoff contract."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer
from rich import box
from rich.table import Table

from baton.cli._common import LOCAL, ActorOption, context
from baton.cli._output import console, day, errors, fail, progress
from baton.cli._rescore_progress import rescore_progress
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
    predicted = contract.scoring.predicted
    note = None
    if predicted is not None:
        found, note = _model_check(predicted.model)
        if found is False:
            errors.print(
                f"[red]✗[/] scoring.predicted.model: model version {predicted.model} does not "
                "exist; see baton model list",
                highlight=False,
            )
            raise fail(f"1 problem(s) in {file}")
    component = (
        f", a predicted component (model v{predicted.model}, up to {predicted.weight:g} points)"
        if predicted is not None
        else ""
    )
    console.print(
        f"[green]✓[/] {file}: '{contract.name}', {len(contract.scoring.fit)} fit and "
        f"{len(contract.scoring.engagement)} engagement rules{component}, MQL at "
        f"{contract.mql.threshold}, {len(contract.prep_checklist)} prep item(s), "
        f"{len(contract.nurture.sequences)} nurture sequence(s)",
        highlight=False,
    )
    if note:
        console.print(f"[yellow]![/] {note}", highlight=False)
    for warning in contract_warnings(contract):
        console.print(f"[yellow]![/] {warning}", highlight=False)


def _model_check(version: int) -> tuple[bool | None, str | None]:
    """Whether model ``version`` exists in the configured database: (True, None),
    (False, None), or (None, why it could not be checked). A SQLite file that does not
    exist yet is not created."""
    from pathlib import Path as FilePath

    from sqlalchemy.engine import make_url

    from baton.cli._common import load_settings, safe_url
    from baton.services.context import open_context
    from baton.services.models import model_exists

    settings = load_settings()
    url = settings.database_url
    cannot = f"could not check that model version {version} exists"
    try:
        parsed = make_url(url)
    except Exception:
        return None, f"{cannot}: the database URL is not valid"
    if parsed.get_backend_name() == "sqlite":
        path = parsed.database or ""
        if not path or path == ":memory:" or not FilePath(path).exists():
            return None, f"{cannot}: no database at {safe_url(url)} (set BATON_DATABASE_URL)"
    try:
        ctx = open_context(settings, migrate=False)
    except Exception:
        return None, f"{cannot}: the database {safe_url(url)} cannot be opened"
    try:
        return model_exists(ctx, version, actor=LOCAL), None
    except Exception as exc:
        reason = type(exc).__name__
        return None, f"{cannot}: the database {safe_url(url)} did not answer ({reason})"
    finally:
        ctx.engine.dispose()


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
    # Readable at 80 columns: version, status and dates never cut (dates only, no
    # time: `contract show` has it; an unfinished re-score on a line of its own under
    # the status); names and signers fold onto more lines.
    table = Table(
        title="Handoff contract versions",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        collapse_padding=True,
    )
    table.add_column("v", justify="right", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("name", overflow="fold")
    table.add_column("marketing", overflow="fold")
    table.add_column("sales", overflow="fold")
    table.add_column("created", min_width=10, overflow="fold")
    table.add_column("activated", no_wrap=True)
    for v in versions:
        table.add_row(
            str(v.version),
            f"{v.status}\n[yellow]unfinished[/]" if v.rescore is not None else v.status,
            v.name,
            v.approvals.get("marketing", "—"),
            v.approvals.get("sales", "—"),
            f"{day(v.created_at)} by {v.created_by}",
            day(v.activated_at) if v.activated_at else "",
        )
    console.print(table)
    for v in versions:
        if v.rescore is not None:
            from baton.domain.rescores import rescore_text

            console.print(f"[yellow]![/] {rescore_text(v.rescore)}", highlight=False)


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

    with context() as ctx, rescore_progress(f"Re-scoring leads with version {version}") as watch:
        report = activate_contract(ctx, version, actor=operator(actor), watch=watch)
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
    from baton.domain.status import age_text
    from baton.services.contracts import list_contracts, rescore_active

    with context() as ctx:
        running = [
            v.rescore
            for v in list_contracts(ctx, actor=operator(actor))
            if v.rescore is not None and v.rescore.may_be_running
        ]
        for found in running:  # both finish, but this one does the work again
            console.print(
                f"[yellow]![/] version {found.version}'s re-score noted its progress "
                f"{age_text(found.noted_seconds)} ago ({found.scored:,} of {found.total:,} "
                "leads) and may still be running: this one runs beside it, and both finish",
                highlight=False,
            )
        with rescore_progress("Re-scoring leads") as watch:
            report = rescore_active(ctx, actor=operator(actor), watch=watch)
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


@contract_app.command("suggest")
def contract_suggest(
    file: Annotated[
        Path | None,
        typer.Argument(
            exists=True,
            dir_okay=False,
            readable=True,
            help="A contract file to start from (default: the active version).",
        ),
    ] = None,
    version: Annotated[
        int | None, typer.Option(help="A stored version to start from instead.")
    ] = None,
    target: Annotated[
        str,
        typer.Option(
            help="The outcome: won, accepted (sales' verdicts) or attributes.KEY (an "
            "imported outcome column such as attributes.converted)."
        ),
    ] = "won",
    save: Annotated[bool, typer.Option("--save", help="Store it as a draft version.")] = False,
    out: Annotated[Path | None, typer.Option(help="Write the suggested YAML to OUT.")] = None,
    actor: ActorOption = "cli",
) -> None:
    """Suggest points for the contract's EXISTING rules from the history's outcomes (a
    logistic regression, rounded to whole points on the contract's own range), with a
    threshold keeping today's MQL volume. Prints old vs suggested points per rule and
    the rules the data calls worthless or wrong-signed; the YAML goes to --out, is
    stored as a draft with --save, or is printed."""
    from baton.domain.errors import ValidationFailed
    from baton.learn.suggest import IN_SAMPLE, describe
    from baton.services.contract_suggest import suggest_contract

    if file is not None and version is not None:
        raise fail("give a contract FILE or --version, not both")
    body = None
    if file is not None:
        try:
            body = file.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise fail(f"{file} is not UTF-8 text") from None
    with context() as ctx, progress() as bar:
        task = bar.add_task("Reading the history", total=None)

        def advance(step: str, done: int, total: int) -> None:
            bar.update(task, description=step, completed=done, total=total)

        try:
            result = suggest_contract(
                ctx,
                actor=operator(actor),
                target=target,
                version=version,
                body=body,
                save=save,
                progress=advance,
            )
        except ValidationFailed as exc:
            bar.stop()
            for problem in exc.problems:
                errors.print(f"[red]✗[/] {problem.loc}: {problem.message}", highlight=False)
            raise
    s = result.suggestion
    start = file.name if file is not None else result.source
    table = Table(title=f"Suggested points for {start} ({s.examples:,} outcomes)")
    for column in ("section", "rule", "leads", "was", "suggested", "note"):
        right = column in ("leads", "was", "suggested")
        table.add_column(column, justify="right" if right else "left")
    for rule in s.rules:
        note = "worthless" if rule.worthless and rule.old else ""
        note = "wrong sign" if rule.wrong_sign else note
        table.add_row(
            rule.section, rule.label, f"{rule.support:,}", str(rule.old), str(rule.suggested), note
        )
    console.print(table)
    found = describe(s.rules)
    auc = (
        f"ROC AUC ({IN_SAMPLE}): {s.old_roc_auc} as written, {s.new_roc_auc} suggested; "
        if s.old_roc_auc is not None and s.new_roc_auc is not None
        else ""
    )
    match = s.volume_match
    volume = (
        match.sentence
        if match is not None
        else f"MQL threshold {s.old_threshold} -> {s.volume.threshold}"
    )
    console.print(
        f"{auc}{len(found['worthless'])} rule(s) worthless, {len(found['wrong_sign'])} "
        f"wrong-signed. {volume[0].upper()}{volume[1:]}; the best F1 on the "
        f"{s.examples:,} outcome leads ({s.best_f1.f1}) would be at {s.best_f1.threshold}.",
        highlight=False,
    )
    if out is not None:
        out.write_text(result.body, encoding="utf-8")
        console.print(f"suggested contract written to {out}")
    if result.saved is not None:
        console.print(
            f"draft version [bold]{result.saved.version}[/] stored; compare it with "
            "`baton contract backtest` and sign it like any other"
        )
    if out is None and result.saved is None:
        console.print(result.body, markup=False, highlight=False, soft_wrap=True)


@contract_app.command("backtest")
def contract_backtest(
    file: Annotated[
        Path | None,
        typer.Argument(
            exists=True, dir_okay=False, readable=True, help="A draft contract (YAML)."
        ),
    ] = None,
    version: Annotated[
        int | None,
        typer.Option("--version", min=1, help="A stored version instead of FILE."),
    ] = None,
    against: Annotated[
        int | None,
        typer.Option("--against", min=1, help="Stored version to compare with (default: active)."),
    ] = None,
    outcome: Annotated[
        str,
        typer.Option(
            "--outcome",
            help="What counts as won: won (became a customer) or attributes.KEY, an "
            "imported outcome column (X Education: attributes.converted).",
        ),
    ] = "won",
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    weeks: Annotated[int, typer.Option("--weeks", min=1, help="Weeks shown (the last N).")] = 12,
    actor: ActorOption = "cli",
) -> None:
    """Replay the recorded history through FILE (a draft) or --version N, and the
    active version (or --against VERSION): MQLs, speed, what sales did with them,
    missed winners, precision/recall/ROC AUC against won, and a threshold sweep.
    Changes nothing."""
    import json

    from baton.domain.errors import ValidationFailed
    from baton.services.backtest import backtest_contract

    if (file is None) == (version is None):
        raise fail("give a draft FILE or --version N (one of them)")
    target: str | int
    if file is not None:
        try:
            target = file.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise fail(f"{file} is not UTF-8 text") from None
    else:
        target = int(version or 0)
    with context() as ctx:
        try:
            if as_json:
                report = backtest_contract(
                    ctx, target, against=against, actor=operator(actor), outcome=outcome
                )
            else:
                with progress() as bar:
                    task = bar.add_task("Replaying leads", total=None)

                    def advance(done: int, total: int) -> None:
                        bar.update(task, completed=done, total=total)

                    report = backtest_contract(
                        ctx,
                        target,
                        against=against,
                        actor=operator(actor),
                        progress=advance,
                        outcome=outcome,
                    )
        except ValidationFailed as exc:
            for problem in exc.problems:
                errors.print(f"[red]✗[/] {problem.loc}: {problem.message}", highlight=False)
            raise
    if as_json:
        console.print_json(json.dumps(report.to_json()))
        return
    from baton.cli._backtest import show

    show(report, weeks=weeks)
