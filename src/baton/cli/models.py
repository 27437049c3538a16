"""`baton model ...`: train a learned scoring model on the recorded outcomes, read its
evaluation, sign it (marketing and sales, as a contract) and activate it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal

import typer
from rich.markup import escape
from rich.progress import TaskID
from rich.table import Table

from baton.cli._common import LOCAL, ActorOption, work
from baton.cli._output import console, day, fail, progress, say, show_list, when
from baton.domain.access import operator

if TYPE_CHECKING:
    from baton.services.models import ModelVersion

model_app = typer.Typer(
    help="Learned scoring models: train on the recorded outcomes, show, approve, activate.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)

NAMES = {
    "target": "--target",
    "kind": "--kind",
    "holdout": "--holdout",
    "split": "--split",
    "exclude": "--exclude",
    "keep": "--keep",
    "role": "--side",
}
STEPS = {
    "history": "Reading the outcomes",
    "features": "Features as of each handoff",
    "training": "Training",
    "evaluating": "Evaluating on the hold-out",
}


@model_app.command("train")
def model_train(
    kind: Annotated[
        str,
        typer.Option(help="gradient_boosting, logistic_regression or naive_bayes."),
    ] = "gradient_boosting",
    target: Annotated[
        str,
        typer.Option(
            help="What to predict: **won** (became a customer vs lost, disqualified or "
            "handed off 90+ days ago without a win), **accepted** (sales' verdicts: "
            "accepted vs rejected, counted by reason) or **attributes.KEY** (an outcome "
            "column that came with imported data, e.g. attributes.converted: 1/yes/true "
            "vs 0/no/false)."
        ),
    ] = "won",
    exclude: Annotated[
        list[str] | None,
        typer.Option(
            "--exclude",
            help="A feature to leave out, e.g. attributes.tags (repeat the option). Leave "
            "out every field sales fills in after the first contact (a CRM's tags, lead "
            "quality, a profile): Baton keeps no history of a field's values, so such a "
            "field holds what happened after the handoff and leaks the outcome into the "
            "model. Activities after the handoff are never read.",
        ),
    ] = None,
    keep: Annotated[
        list[str] | None,
        typer.Option(
            "--keep",
            help="An attribute to use although it looks like an identifier for its many "
            "values, e.g. attributes.landing_page_id (repeat the option). Identity and "
            "contact data (emails, names, phones) are never used.",
        ),
    ] = None,
    holdout: Annotated[
        float,
        typer.Option(
            help="Share of the examples held out for the evaluation (it must hold 10 of "
            "each outcome)."
        ),
    ] = 0.3,
    split: Annotated[
        str,
        typer.Option(
            help="auto (by time when the handoffs spread over more than a week: the latest "
            "share is held out; else stratified), time or stratified."
        ),
    ] = "auto",
    name: Annotated[str | None, typer.Option(help="A name for the version.")] = None,
    actor: ActorOption = "cli",
) -> None:
    """Train a model on the recorded outcomes and store it as a draft version (features
    as they were at each lead's handoff; the evaluation on the hold-out)."""
    from baton.services.models import train_model

    with work(NAMES) as ctx, progress() as bar:
        tasks: dict[str, TaskID] = {}

        def advance(step: str, done: int, total: int) -> None:
            if step not in tasks:
                tasks[step] = bar.add_task(STEPS.get(step, step), total=total)
            bar.update(tasks[step], completed=done, total=total)

        model = train_model(
            ctx,
            actor=operator(actor),
            kind=kind,
            target=target,
            name=name,
            exclude=tuple(exclude or ()),
            keep=tuple(keep or ()),
            holdout=holdout,
            split=split,
            progress=advance,
        )
    show(model)
    console.print(
        f"draft model version [bold]{model.version}[/] stored; it needs approval by "
        "marketing and sales (`baton model approve`)"
    )


def show(model: ModelVersion) -> None:
    """A model's evaluation, calibration and top features as tables."""
    from baton.services.models import features_as_of

    on = model.trained_on
    e = model.evaluation
    say(
        f"Model {model.version} '{model.name}': {model.kind} predicting {model.target}; "
        f"{model.status}; {on.get('rows', 0):,} examples ({on.get('positives', 0):,} positive), "
        f"{on.get('split', '?')} split, {on.get('held_out_rows', e.rows):,} held out; "
        f"{features_as_of(on)}"
    )
    table = Table(title="Evaluation on the held-out examples")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for label, value in (
        ("ROC AUC", f"{e.roc_auc:.3f}"),
        ("PR AUC", f"{e.pr_auc:.3f}"),
        ("Brier score", f"{e.brier:.4f}"),
        ("base rate", f"{e.base_rate:.1%}"),
        ("rows (positive)", f"{e.rows:,} ({e.positives:,})"),
    ):
        table.add_row(label, value)
    console.print(table)
    for warning in e.warnings:
        console.print(f"[yellow]![/] {escape(warning)}", highlight=False)
    bands = Table(title="Calibration: predicted vs observed, per band of probability")
    for column in ("band", "mean predicted", "observed", "rows"):
        bands.add_column(column, justify="right")
    for predicted, observed, rows in e.calibration:
        low = min(int(predicted * 10), 9) / 10
        bands.add_row(
            f"{low:.1f}–{low + 0.1:.1f}", f"{predicted:.1%}", f"{observed:.1%}", f"{rows:,}"
        )
    console.print(bands)
    if model.top_features:
        top = Table(
            title=f"Top features (weights in log-odds; source: {model.top_features_source})"
        )
        top.add_column("feature")
        top.add_column("log-odds", justify="right")
        for feature in model.top_features:
            top.add_row(feature.feature, f"{feature.weight:+.3f}")
        console.print(top)
    for key, what in (
        ("excluded", "left out (asked)"),
        ("excluded_leaks", "left out as leaks (present on most positives, almost no negatives)"),
        ("kept", "kept (asked)"),
        ("keep_unmatched", "asked to keep, but no such attribute"),
        ("exclude_unmatched", "asked to leave out, but no such feature"),
    ):
        names = on.get(key) or []
        if names:
            say(f"{what}: {', '.join(names)}")
    keepable = set(on.get("keepable_identifiers") or [])
    identities = [n for n in on.get("excluded_identifiers") or [] if n not in keepable]
    if identities:
        say(f"left out as personal data (identity or contact): {', '.join(identities)}")
    for name in on.get("keepable_identifiers") or []:
        say(
            f"left out as an identifier (a different value on nearly every lead, or 200+ "
            f"values): {name}; --keep {name} to use it"
        )
    reasons = on.get("rejected_by_reason") or {}
    if reasons:
        say("rejected by reason: " + ", ".join(f"{k} {v:,}" for k, v in reasons.items()))


@model_app.command("list")
def model_list() -> None:
    """Every model version with its evaluation, status and signatures."""
    from baton.services.models import list_models

    with work(NAMES) as ctx:
        models = list_models(ctx, actor=LOCAL)
    columns = [
        ("version", False),
        ("name", True),
        ("kind", False),
        ("target", False),
        ("status", False),
        ("ROC AUC", False),
        ("marketing", True),
        ("sales", True),
        ("created", True),
        ("activated", False),
    ]
    rows = [
        [
            str(m.version),
            escape(m.name),
            m.kind,
            escape(m.target),
            m.status,
            f"{m.evaluation.roc_auc:.3f}",
            escape(m.approvals.get("marketing", "—")),
            escape(m.approvals.get("sales", "—")),
            escape(f"{day(m.created_at)} by {m.created_by}"),
            when(m.activated_at) if m.activated_at else "",
        ]
        for m in models
    ]
    show_list("Scoring models", columns, rows, record="model")


@model_app.command("show")
def model_show(version: int) -> None:
    """One version: its evaluation, calibration bands and top features."""
    from baton.services.models import get_model

    with work(NAMES) as ctx:
        model = get_model(ctx, version, actor=LOCAL)
    show(model)
    signed = ", ".join(f"{side} by {name}" for side, name in sorted(model.approvals.items()))
    say(f"signed: {signed or 'by nobody yet'}")


@model_app.command("approve")
def model_approve(
    version: int,
    side: Annotated[str, typer.Option("--side", "--role", help="marketing or sales")],
    actor: Annotated[str, typer.Option("--actor", help="Who signs (a person's name).")],
) -> None:
    """Sign model VERSION for one side; two different people must sign."""
    from baton.services.models import approve_model

    if side not in ("marketing", "sales"):
        raise fail("--side must be marketing or sales")
    role: Literal["marketing", "sales"] = "marketing" if side == "marketing" else "sales"
    with work(NAMES) as ctx:
        result = approve_model(ctx, version, role=role, actor=operator(actor))
    console.print(f"model version {version} signed for {side} by {actor}; status: {result.status}")


@model_app.command("activate")
def model_activate(version: int, actor: ActorOption = "cli") -> None:
    """Make model VERSION (signed by both sides) the active one; the previous active
    model is superseded. A contract names the version it scores with
    (`scoring.predicted.model`)."""
    from baton.services.models import activate_model

    with work(NAMES) as ctx:
        result = activate_model(ctx, version, actor=operator(actor))
    was = f" (was {result.previous})" if result.previous else ""
    console.print(f"model version {version} is active{was}")
