"""The evaluation on real data (issue #16, item 4), every figure computed through Baton:
the files are imported into a temporary SQLite database with Baton's own import
services, then ranked by Baton's contract scoring, its suggested contract and its
learned models.

    .venv/bin/python bench/evaluate.py [--data ../shared/datasets]

- X Education (``x-education-lead-scoring/Leads.csv``, 9,240 leads, ``Converted``):
  capture-time fields only (no Tags, Lead Quality, Lead Profile, Asymmetrique scores
  or Last Notable Activity), with and without Last Activity; "Select" is blank; one
  30 % stratified hold-out (seed 7) for every row of the table. Held-out ROC AUC of
  the hand-written contracts/x-education.yaml, the suggested contract (points fitted
  on the other 70 %), the learned models and naive Bayes.
- UCI bank marketing (``uci-bank-marketing/bank-additional-full.csv``, ``y``, without
  ``duration``): the learned models' held-out ROC AUC.
- Olist (``olist-marketing-funnel``, ``baton import olist``): MQL -> won by origin and
  by landing page (Baton's funnel report), and the learned model on a time split.
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import BENCH, context  # noqa: E402
from baton.domain.contract import HandoffContract, parse_contract  # noqa: E402
from baton.learn.features import FeatureSpec  # noqa: E402
from baton.learn.model import (  # noqa: E402
    MODEL_KINDS,
    ModelKind,
    evaluate,
    measure,
    stratified_holdout,
    time_holdout,
    train,
)
from baton.learn.suggest import old_points, suggest_points, totals  # noqa: E402
from baton.services.context import Context  # noqa: E402
from baton.services.contract_suggest import History, history_in  # noqa: E402
from baton.services.imports import import_leads  # noqa: E402
from baton.services.model_store import feature_rows_in  # noqa: E402

X_AFTER_CONTACT = (
    "tags",
    "lead_quality",
    "lead_profile",
    "asymmetrique_activity_index",
    "asymmetrique_profile_index",
    "asymmetrique_activity_score",
    "asymmetrique_profile_score",
    "last_notable_activity",
)
"""X Education's fields sales fills in after the first contact: never features."""
X_CAPTURE = (
    "lead_origin",
    "do_not_email",
    "do_not_call",
    "totalvisits",
    "total_time_spent_on_website",
    "page_views_per_visit",
    "specialization",
    "how_did_you_hear_about_x_education",
    "what_is_your_current_occupation",
    "what_matters_most_to_you_in_choosing_a_course",
    "search",
    "magazine",
    "newspaper_article",
    "x_education_forums",
    "newspaper",
    "digital_advertisement",
    "through_recommendations",
    "receive_more_updates_about_our_courses",
    "update_me_on_supply_chain_content",
    "get_updates_on_dm_content",
    "city",
    "i_agree_to_pay_the_amount_through_cheque",
    "a_free_copy_of_mastering_the_interview",
)
X_NUMERIC = ("totalvisits", "total_time_spent_on_website", "page_views_per_visit")
LAST_ACTIVITY = "last_activity"
BANK_NUMERIC = (
    "age",
    "campaign",
    "pdays",
    "previous",
    "emp.var.rate",
    "cons.price.idx",
    "cons.conf.idx",
    "euribor3m",
    "nr.employed",
)

Row = tuple[str, str, str]
"""(data set, what, figure)"""


def _without_last_activity(contract: HandoffContract) -> HandoffContract:
    kept = [
        r
        for r in contract.scoring.fit
        if getattr(r.when, "field", None) != f"attributes.{LAST_ACTIVITY}"
    ]
    scoring = contract.scoring.model_copy(update={"fit": kept})
    return contract.model_copy(update={"scoring": scoring})


def _stable(history: History) -> History:
    """The examples in the order of their external ids: the import numbers leads in an
    order that may change from run to run, and the hold-out must not."""
    order = sorted(range(len(history.lead_ids)), key=lambda i: history.leads[i]["external_id"])
    return History(
        lead_ids=[history.lead_ids[i] for i in order],
        leads=[history.leads[i] for i in order],
        moments=[history.moments[i] for i in order],
        labels=[history.labels[i] for i in order],
        rows=history.rows[order],
    )


def _split(labels: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    held = np.asarray(stratified_holdout(labels, share=0.3, seed=7), dtype=bool)
    return ~held, held


def _contract_aucs(contract: HandoffContract, history: History) -> tuple[float, float, int]:
    """Held-out ROC AUC of the contract as written and of its suggestion fitted on
    the training part."""
    y = np.asarray(history.labels)
    fit, held = _split(history.labels)
    written = measure(totals(old_points(contract), history.rows[held]).tolist(), y[held].tolist())
    suggestion = suggest_points(contract, history.rows[fit], y[fit].tolist())
    points = [r.suggested for r in suggestion.rules]
    suggested = measure(totals(points, history.rows[held]).tolist(), y[held].tolist())
    return written.roc_auc, suggested.roc_auc, len(contract.scoring.fit)


def _models(
    ctx: Context,
    history: History,
    spec: FeatureSpec,
    numeric: Sequence[str],
    held: Sequence[bool],
    kinds: Sequence[ModelKind] = MODEL_KINDS,
) -> dict[str, tuple[float, float]]:
    """Held-out (ROC AUC, PR AUC) of each kind on Baton's feature rows."""
    moments = dict(zip(history.lead_ids, history.moments, strict=True))
    with ctx.read() as connection:
        found = feature_rows_in(
            connection, spec, history.lead_ids, moments, numeric_attributes=numeric
        )
    rows = [found[i] for i in history.lead_ids]
    train_rows = [r for r, h in zip(rows, held, strict=True) if not h]
    train_y = [y for y, h in zip(history.labels, held, strict=True) if not h]
    test_rows = [r for r, h in zip(rows, held, strict=True) if h]
    test_y = [y for y, h in zip(history.labels, held, strict=True) if h]
    results: dict[str, tuple[float, float]] = {}
    for kind in kinds:
        model = train(kind, spec, train_rows, train_y, numeric_attributes=numeric)
        evaluation = evaluate(model, test_rows, test_y)
        results[kind] = (evaluation.roc_auc, evaluation.pr_auc)
    return results


def x_education(folder: Path, work: Path) -> list[Row]:
    path = folder / "x-education-lead-scoring" / "Leads.csv"
    if not path.exists():
        return [("X Education", "skipped", f"{path} not found")]
    ctx = context(f"sqlite:///{work / 'x.db'}")
    began = time.perf_counter()
    import_leads(
        ctx,
        path,
        actor=BENCH,
        column_map={"Prospect ID": "external_id"},
        blanks=["Select"],
        external_system="x-education",
    )
    imported = time.perf_counter() - began
    contract = parse_contract((ROOT / "contracts" / "x-education.yaml").read_text())
    now = ctx.clock.now()
    out: list[Row] = []
    with ctx.read() as connection:
        history = _stable(history_in(connection, contract, "attributes.converted", now))
    labels = history.labels
    out.append(
        (
            "X Education",
            "leads, converted (imported in)",
            f"{len(labels):,}, {sum(labels):,} ({imported:.1f} s)",
        )
    )
    _, held = _split(labels)
    for label, variant in (
        ("with Last Activity", contract),
        ("without Last Activity", _without_last_activity(contract)),
    ):
        with ctx.read() as connection:
            part = _stable(history_in(connection, variant, "attributes.converted", now))
        written, suggested, rules = _contract_aucs(variant, part)
        out.append(
            ("X Education", f"(a) hand-written contract, {rules} rules, {label}", f"{written:.3f}")
        )
        out.append(("X Education", f"(b) suggested contract, {label}", f"{suggested:.3f}"))
        attributes = X_CAPTURE + ((LAST_ACTIVITY,) if variant is contract else ())
        spec = FeatureSpec(fields=("source", "country"), attributes=attributes)
        found = _models(ctx, history, spec, X_NUMERIC, held.tolist())
        names = {
            "gradient_boosting": "(c) learned: gradient boosting",
            "logistic_regression": "(c) learned: logistic regression",
            "naive_bayes": "(d) naive Bayes (CRM-style)",
        }
        for kind, (roc, pr) in found.items():
            out.append(("X Education", f"{names[kind]}, {label}", f"{roc:.3f} (PR AUC {pr:.3f})"))
    return out


def bank(folder: Path, work: Path) -> list[Row]:
    path = folder / "uci-bank-marketing" / "bank-additional-full.csv"
    if not path.exists():
        return [("UCI bank", "skipped", f"{path} not found")]
    # The file has no identifier: a row number becomes the external id (in a temporary
    # copy; the data set itself is never changed).
    copy = work / "bank.csv"
    with path.open(newline="", encoding="utf-8") as source, copy.open("w", newline="") as out:
        reader = csv.reader(source, delimiter=";")
        writer = csv.writer(out)
        header = next(reader)
        writer.writerow(["row_id", *header])
        for number, row in enumerate(reader, 1):
            writer.writerow([str(number), *row])
    column_map = {h: f"attributes.{h}" for h in header}
    column_map["duration"] = "-"  # known only after the call: it leaks the outcome
    column_map["row_id"] = "external_id"
    ctx = context(f"sqlite:///{work / 'bank.db'}")
    began = time.perf_counter()
    import_leads(ctx, copy, actor=BENCH, column_map=column_map, external_system="uci-bank")
    imported = time.perf_counter() - began
    contract = parse_contract(
        "schema_version: 1\nname: none\nscoring:\n  fit:\n    - when: {field: attributes.age, "
        "min: 0}\n      points: 1\nmql:\n  threshold: 1\n"
    )
    with ctx.read() as connection:
        history = _stable(history_in(connection, contract, "attributes.y", ctx.clock.now()))
    _, held = _split(history.labels)
    attributes = tuple(h for h in header if h not in ("y", "duration"))
    spec = FeatureSpec(fields=(), attributes=attributes)
    found = _models(
        ctx,
        history,
        spec,
        BANK_NUMERIC,
        held.tolist(),
        ("gradient_boosting", "logistic_regression"),
    )
    out: list[Row] = [
        (
            "UCI bank",
            "clients, subscribed (imported in)",
            f"{len(history.labels):,}, {sum(history.labels):,} ({imported:.1f} s)",
        )
    ]
    for kind, (roc, pr) in found.items():
        out.append(
            ("UCI bank", f"learned: {kind.replace('_', ' ')}", f"{roc:.3f} (PR AUC {pr:.3f})")
        )
    return out


def olist(folder: Path, work: Path) -> list[Row]:
    from baton.domain.reports import ReportPeriod
    from baton.services.olist import import_olist
    from baton.services.reports import funnel

    path = folder / "olist-marketing-funnel"
    if not path.exists():
        return [("Olist", "skipped", f"{path} not found")]
    ctx = context(f"sqlite:///{work / 'olist.db'}")
    import_olist(ctx, path, actor=BENCH)
    period = ReportPeriod(datetime(2017, 1, 1, tzinfo=UTC), datetime(2019, 1, 1, tzinfo=UTC))
    out: list[Row] = []
    for group_by, top in (("source", 12), ("attributes.landing_page_id", 10)):
        report = funnel(ctx, period, actor=BENCH, group_by=group_by)
        rows = sorted(report.rows, key=lambda r: -r.counts.get("mql", 0))[:top]
        for row in rows:
            mqls = row.counts.get("mql", 0)
            won = row.counts.get("customer", 0)
            share = f"{won / mqls:.1%}" if mqls else "-"
            name = row.group if row.group is not None else "(none)"
            out.append(("Olist", f"MQL -> won by {group_by}: {name}", f"{won}/{mqls} = {share}"))
    contract = parse_contract(
        "schema_version: 1\nname: none\nscoring:\n  fit:\n    - when: {field: source, "
        "exists: true}\n      points: 1\nmql:\n  threshold: 1\n"
    )
    with ctx.read() as connection:
        history = history_in(connection, contract, "won", ctx.clock.now())
    held = time_holdout(history.moments, share=0.3)
    spec = FeatureSpec(fields=("source",), attributes=("landing_page_id",))
    found = _models(ctx, history, spec, (), held, ("gradient_boosting", "logistic_regression"))
    for kind, (roc, pr) in found.items():
        out.append(
            (
                "Olist",
                f"learned: {kind.replace('_', ' ')}, time split",
                f"{roc:.3f} (PR AUC {pr:.3f})",
            )
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "datasets")
    args = parser.parse_args()
    began = time.perf_counter()
    rows: list[Row] = []
    # One OpenMP thread: on a machine whose cores are busy, gradient boosting's thread
    # pool waits on them (measured here: a fit 18.5 s with the pool, 2.8 s on one thread).
    with (
        threadpool_limits(limits=1, user_api="openmp"),
        tempfile.TemporaryDirectory(prefix="baton-evaluate-") as tmp,
    ):
        for part in (x_education, bank, olist):
            started = time.perf_counter()
            rows.extend(part(args.data, Path(tmp)))
            took = time.perf_counter() - started
            rows.append((rows[-1][0], "seconds (import, features, training)", f"{took:.0f}"))
    width = max(len(what) for _, what, _ in rows)
    print(f"{'data set':<12} {'what':<{width}}  held-out ROC AUC / figure")
    for dataset, what, figure in rows:
        print(f"{dataset:<12} {what:<{width}}  {figure}")
    print(f"\n{time.perf_counter() - began:.0f} s in all")


if __name__ == "__main__":
    main()
