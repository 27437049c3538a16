"""Learned scoring models through the use cases (issue #16 item 2), on both databases:
a model's round trip, versions signed by both teams, the leakage guard, and the
histories that cannot teach."""

from __future__ import annotations

import pytest
from sqlalchemy import update
from tests.conftest import principal_for
from tests.model_helpers import plant_after_handoff, write_history

from baton.domain.access import operator
from baton.domain.clock import ManualClock
from baton.domain.errors import Conflict, Forbidden, ValidationFailed
from baton.learn.features import FeatureRow
from baton.learn.model import LeadModel, measure, train
from baton.services.context import Context
from baton.services.model_store import feature_rows_in, load_model_in
from baton.services.models import (
    activate_model,
    approve_model,
    examples_in,
    get_model,
    list_models,
    train_model,
)
from baton.store.tables import leads

ADMIN = operator("admin-cli")


def _split_rows(
    ctx: Context, version: int
) -> tuple[LeadModel, list[FeatureRow], list[int], list[FeatureRow], list[int]]:
    """The stored model, and its training and held-out rows and labels rebuilt from the
    database (features as of each lead's handoff; held out: handed off from
    ``held_out_from`` on)."""
    model = get_model(ctx, version, actor=ADMIN)
    held_from = model.trained_on["held_out_from"]
    with ctx.read() as connection:
        loaded = load_model_in(connection, version)
        examples = examples_in(connection, model.target, ctx.clock.now())
        moments = dict(zip(examples.ids, examples.moments, strict=True))
        labels = dict(zip(examples.ids, examples.labels, strict=True))
        rows = feature_rows_in(
            connection,
            loaded.spec,
            examples.ids,
            moments,
            numeric_attributes=loaded.numeric_attributes,
        )
    held = [i for i in examples.ids if moments[i].isoformat() >= held_from]
    fit = [i for i in examples.ids if moments[i].isoformat() < held_from]
    return (
        loaded,
        [rows[i] for i in fit],
        [labels[i] for i in fit],
        [rows[i] for i in held],
        [labels[i] for i in held],
    )


def test_a_trained_model_round_trips_through_the_database(ctx: Context) -> None:
    history = write_history(ctx)
    marketing = principal_for(ctx, "marketing")
    stored = train_model(ctx, actor=marketing, kind="logistic_regression", name="first")
    assert (stored.version, stored.status, stored.name) == (1, "draft", "first")
    on = stored.trained_on
    assert on["rows"] == len(history.lead_ids) - 10  # the ten in play are no examples
    assert on["positives"] == sum(1 for w in history.won.values() if w)
    assert on["split"] == "time" and on["held_out_rows"] == round(on["rows"] * 0.3)
    assert on["training_to"] < on["held_out_from"]
    assert stored.evaluation.roc_auc > 0.7
    assert stored.top_features and stored.top_features_source.startswith("the model itself")
    assert "attributes.company_size" in {f"attributes.{a}" for a in stored.spec.attributes}
    # Loaded back, the model gives the very probabilities it was evaluated with, the
    # same as the model fitted again in memory on the same rows.
    loaded, fit_rows, fit_labels, held_rows, held_labels = _split_rows(ctx, 1)
    probabilities = loaded.probabilities(held_rows)
    assert measure(probabilities, held_labels) == stored.evaluation
    again = train("logistic_regression", loaded.spec, fit_rows, fit_labels)
    assert again.probabilities(held_rows) == probabilities
    assert [m.version for m in list_models(ctx, actor=marketing)] == [1]


def test_versions_are_signed_by_two_people_and_one_is_active(ctx: Context) -> None:
    write_history(ctx)
    marketing = principal_for(ctx, "marketing")
    manager = principal_for(ctx, "sales_manager")
    admin = principal_for(ctx, "admin")
    first = train_model(ctx, actor=marketing, kind="logistic_regression").version
    second = train_model(ctx, actor=admin, kind="naive_bayes").version
    assert (first, second) == (1, 2)
    with pytest.raises(Forbidden):
        approve_model(ctx, first, role="marketing", actor=admin)
    with pytest.raises(Forbidden):
        train_model(ctx, actor=manager)
    with pytest.raises(Conflict, match="needs approval by marketing and sales"):
        activate_model(ctx, first, actor=admin)
    # The same person cannot sign both sides (the local operator signs by name).
    maria = operator("maria")
    approve_model(ctx, second, role="marketing", actor=maria)
    with pytest.raises(Conflict, match="two different approvers"):
        approve_model(ctx, second, role="sales", actor=maria)
    signed = approve_model(ctx, first, role="marketing", actor=marketing)
    assert signed.status == "draft" and signed.approvals == {"marketing": marketing.name}
    with pytest.raises(Conflict, match="already approved for marketing"):
        approve_model(ctx, first, role="marketing", actor=maria)
    with pytest.raises(Conflict, match="needs approval by sales"):
        activate_model(ctx, first, actor=admin)
    assert approve_model(ctx, first, role="sales", actor=manager).status == "approved"
    with pytest.raises(Forbidden):
        activate_model(ctx, first, actor=marketing)
    assert activate_model(ctx, first, actor=admin).previous is None
    approve_model(ctx, second, role="sales", actor=manager)
    assert activate_model(ctx, second, actor=admin).previous == first
    statuses = {m.version: m.status for m in list_models(ctx, actor=manager)}
    assert statuses == {1: "superseded", 2: "active"}
    with pytest.raises(Conflict, match="only drafts are signed"):
        approve_model(ctx, second, role="marketing", actor=marketing)


def test_nothing_recorded_after_the_handoff_is_learned(ctx: Context) -> None:
    """The leakage guard: many meetings booked the day after the handoff, on the
    winners only, would predict the outcome perfectly; they change nothing."""
    history = write_history(ctx)
    before = train_model(ctx, actor=ADMIN, kind="gradient_boosting")
    with ctx.read() as connection:
        rows_before = feature_rows_in(connection, before.spec, history.lead_ids, history.mql_at)
    assert plant_after_handoff(ctx, history) > 100
    after = train_model(ctx, actor=ADMIN, kind="gradient_boosting")
    with ctx.read() as connection:
        rows_after = feature_rows_in(connection, after.spec, history.lead_ids, history.mql_at)
    assert rows_after == rows_before
    assert after.spec == before.spec and "meeting_booked" not in after.spec.event_types
    assert after.evaluation == before.evaluation
    assert after.evaluation.roc_auc < 0.95


def test_sales_verdicts_and_imported_outcome_columns_are_targets(ctx: Context) -> None:
    history = write_history(ctx, timed=False, converted=True)
    accepted = train_model(ctx, actor=ADMIN, kind="logistic_regression", target="accepted")
    rejected = [v for v in history.verdicts.values() if v != "accepted"]
    assert accepted.trained_on["rejected_by_reason"] == {
        r: rejected.count(r) for r in sorted(set(rejected))
    }
    converted = train_model(
        ctx, actor=ADMIN, kind="logistic_regression", target="attributes.converted"
    )
    assert converted.trained_on["split"] == "stratified"  # every lead at one moment
    assert converted.trained_on["rows"] == len(history.lead_ids) - 10
    assert "converted" not in converted.spec.used_attributes()
    assert "attributes.converted" in converted.trained_on["excluded"]


def test_histories_that_cannot_teach_are_refused_with_what_is_missing(ctx: Context) -> None:
    with pytest.raises(ValidationFailed, match="the history is empty") as empty:
        train_model(ctx, actor=ADMIN)
    assert empty.value.problems[0].loc == "target"
    write_history(ctx, n=30, in_play=0)
    with pytest.raises(ValidationFailed, match="too few 'won' outcomes"):
        train_model(ctx, actor=ADMIN)
    with pytest.raises(ValidationFailed, match=r"no lead has attributes\.converted set"):
        train_model(ctx, actor=ADMIN, target="attributes.converted")
    with pytest.raises(ValidationFailed) as options:
        train_model(ctx, actor=ADMIN, kind="forest", holdout=0.9, split="random")
    assert {p.loc for p in options.value.problems} == {"kind", "holdout", "split"}
    with pytest.raises(ValidationFailed, match="unknown target"):
        train_model(ctx, actor=ADMIN, target="revenue")


def test_a_history_with_no_win_says_so(ctx: Context) -> None:
    write_history(ctx, n=60, in_play=0)
    with ctx.write() as connection:
        connection.execute(update(leads).values(customer_at=None, stage="lost"))
    with pytest.raises(ValidationFailed, match="no positive 'won' outcomes"):
        train_model(ctx, actor=ADMIN)


def test_the_clock_decides_which_leads_are_still_in_play(ctx: Context) -> None:
    write_history(ctx, in_play=30)
    clock = ctx.clock
    assert isinstance(clock, ManualClock)
    first = train_model(ctx, actor=ADMIN, kind="naive_bayes").trained_on["rows"]
    from datetime import timedelta

    clock.advance(timedelta(days=100))
    later = train_model(ctx, actor=ADMIN, kind="naive_bayes").trained_on["rows"]
    assert later == first + 30  # handed off 90+ days ago without a win: lost


def test_the_worker_retrains_a_draft_when_due_and_never_activates_it(
    ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dataclasses import replace
    from datetime import timedelta

    from baton.services import models as model_service
    from baton.services.worker import Lane, retrain_models, tick

    history = write_history(ctx, n=200, in_play=60)
    first = train_model(ctx, actor=ADMIN, kind="logistic_regression", exclude=["country"])
    approve_model(ctx, first.version, role="marketing", actor=operator("maria"))
    approve_model(ctx, first.version, role="sales", actor=operator("sam"))
    activate_model(ctx, first.version, actor=ADMIN)
    assert model_service.retrain_check(ctx).reason == "scheduled retraining is off"
    assert retrain_models(ctx).retrained == 0
    on = replace(ctx, settings=ctx.settings.model_copy(update={"retrain_model_days": 30}))
    clock = ctx.clock
    assert isinstance(clock, ManualClock)
    assert "younger than 30 days" in model_service.retrain_check(on).reason
    clock.advance(timedelta(days=40))  # old enough, but the 60 in play are still in play
    assert model_service.retrain_check(on).reason == "0 new outcomes (needs 50)"
    clock.advance(timedelta(days=50))  # handed off 98 days ago without a win: lost
    won = [i for i, w in history.won.items() if w is None][::2]  # ... or won meanwhile
    with ctx.write() as connection:
        connection.execute(
            update(leads)
            .where(leads.c.id.in_(won))
            .values(customer_at=clock.now(), stage="customer")
        )
    assert model_service.retrain_check(on).new_outcomes == 60
    # A failing pass is logged and the lane carries on.
    lane = Lane("model retraining", lambda: retrain_models(on), 3600.0)

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(model_service, "train_model", broken)
    assert lane.step() == 1.0 and lane.failures == 1
    monkeypatch.undo()
    assert tick(on).retrained == 1
    models = {m.version: m for m in list_models(ctx, actor=ADMIN)}
    draft = models[2]
    assert (draft.status, draft.kind, draft.target) == ("draft", "logistic_regression", "won")
    assert draft.trained_on["retrained_from"] == 1 and draft.trained_on["rows"] == 200
    assert "country" in draft.spec.exclude and models[1].status == "active"
    assert draft.created_by == model_service.RETRAINER
    assert lane.step() == 3600.0 and lane.failures == 0  # the draft is young: nothing due
