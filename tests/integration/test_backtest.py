"""The backtest on a small recorded history (tests/backtest_history.py), on SQLite and
PostgreSQL: the figures equal the ones computed by hand, a changed rule changes them
through the real scoring code, and nothing live is touched."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select
from tests.backtest_history import AGAINST, DRAFT, build_history, random_history, store_active

from baton.domain.access import Principal, Role, operator
from baton.domain.errors import Forbidden, ValidationFailed
from baton.services.backtest import backtest_contract
from baton.services.context import Context
from baton.store.bulk import read_datetime
from baton.store.tables import activities, lead_scores, leads, metadata, outbox


def _admin(ctx: Context) -> Any:
    return operator("test")


def test_the_backtest_equals_the_hand_computed_result(ctx: Context) -> None:
    build_history(ctx)
    store_active(ctx)
    seen: list[tuple[int, int]] = []

    report = backtest_contract(
        ctx, DRAFT, actor=_admin(ctx), progress=lambda d, t: seen.append((d, t)), chunk=4
    )

    assert (report.leads, report.won, report.accepted, report.qualified, report.rejected) == (
        6,
        3,
        1,
        1,
        3,
    )
    assert seen[-1] == (6, 6)
    draft = report.draft.totals
    assert report.draft.label == "draft"
    assert draft.mqls == 3
    assert (draft.accepted, draft.qualified, draft.won) == (1, 1, 1)
    assert draft.accepted_share == pytest.approx(0.3333)
    assert (draft.missed_winners, draft.missed_sample) == (2, (3, 6))
    assert draft.rejected_by_reason == {"disqualified (history)": 1, "no_budget": 1}
    assert draft.precision == pytest.approx(0.3333)
    assert draft.recall == pytest.approx(0.3333)
    assert draft.median_hours_to_mql == 48.0
    assert draft.p90_hours_to_mql == pytest.approx(163.2)
    # peaks: 50, 0, 40, 30, 50, 30 against won 1, 0, 1, 0, 0, 1: 6 of 9 pairs.
    assert draft.roc_auc == pytest.approx(0.6667, abs=1e-4)
    weeks = {w.week: (w.mqls, w.won, w.rejected) for w in report.draft.weeks}
    assert weeks == {"2026-W02": (1, 1, 0), "2026-W03": (2, 0, 2)}
    own = [p for p in report.draft.sweep if p.own]
    assert [(p.threshold, p.mqls, p.precision) for p in own] == [(50.0, 3, pytest.approx(0.3333))]
    lowest = report.draft.sweep[0]
    assert (lowest.threshold, lowest.mqls, lowest.recall) == (0.0, 6, 1.0)

    assert report.against is not None and report.against.label == "version 1"
    against = report.against.totals
    assert (against.mqls, against.won, against.missed_sample) == (4, 2, (6,))
    assert against.precision == 0.5
    assert against.recall == pytest.approx(0.6667)
    assert not report.warnings


def test_a_changed_rule_changes_the_backtest(ctx: Context) -> None:
    build_history(ctx)
    before = backtest_contract(ctx, DRAFT, actor=_admin(ctx))
    after = backtest_contract(ctx, AGAINST, actor=_admin(ctx))

    assert before.against is None  # nothing active: the draft alone
    assert (before.draft.totals.mqls, after.draft.totals.mqls) == (3, 4)
    assert 3 in before.draft.totals.missed_sample
    assert 3 not in after.draft.totals.missed_sample


def test_the_backtest_touches_no_live_data(ctx: Context) -> None:
    build_history(ctx)
    store_active(ctx)
    with ctx.write() as connection:
        connection.execute(
            lead_scores.insert().values(
                lead_id=1,
                contract_version=1,
                fit=30,
                engagement=20,
                total=50,
                grade="D",
                state={},
                scored_at=ctx.clock.now(),
            )
        )

    def snapshot() -> tuple[dict[str, int], list[Any]]:
        with ctx.read() as connection:
            counts = {
                t.name: connection.execute(select(func.count()).select_from(t)).scalar_one()
                for t in metadata.sorted_tables
            }
            scores = [tuple(r) for r in connection.execute(select(lead_scores))]
        return counts, scores

    before = snapshot()
    backtest_contract(ctx, DRAFT, actor=_admin(ctx))
    assert snapshot() == before
    assert before[0][outbox.name] == 0


def test_an_invalid_draft_an_empty_history_and_no_winner_are_clear(ctx: Context) -> None:
    with pytest.raises(ValidationFailed) as invalid:
        backtest_contract(ctx, DRAFT.replace("threshold: 50", "threshhold: 50"), actor=_admin(ctx))
    assert any("line" in p.message for p in invalid.value.problems)

    with pytest.raises(ValidationFailed, match="no leads to replay"):
        backtest_contract(ctx, DRAFT, actor=_admin(ctx))

    build_history(ctx, won=False)
    report = backtest_contract(ctx, DRAFT, actor=_admin(ctx))
    totals = report.draft.totals
    assert totals.mqls == 4  # lead 6, never won now, is replayed to its Jan 20 visit
    assert (totals.precision, totals.recall, totals.roc_auc) == (None, None, None)
    assert any("no lead was won" in w for w in report.warnings)


def test_a_rep_may_not_backtest(ctx: Context) -> None:
    with pytest.raises(Forbidden):
        backtest_contract(ctx, DRAFT, actor=Principal("user", "ann", Role.REP, user_id=9, rep_id=1))


PREDICTED = """schema_version: 1
name: Predicted only
scoring:
  fit: []
  engagement: []
  predicted: {{model: {model}, weight: 100}}
mql:
  threshold: 50
  hand_raise: [demo_request]
"""


def test_a_predicted_component_uses_the_probability_as_of_each_moment(
    sqlite_ctx: Context,
) -> None:
    ctx = sqlite_ctx
    from tests.model_helpers import store_tiny_model, write_history

    from baton.services.model_store import feature_rows_in, load_model_in
    from baton.store.tables import activities, leads

    version = store_tiny_model(ctx)
    write_history(ctx, n=40, in_play=0)

    report = backtest_contract(ctx, PREDICTED.format(model=version), actor=_admin(ctx))

    # Independently: the stored model on the features model_store builds in SQL, at
    # capture and at each activity up to the win.
    expected = 0
    with ctx.read() as connection:
        model = load_model_in(connection, version)
        moments: dict[int, list[Any]] = {}
        for lead_id, at in connection.execute(
            select(activities.c.lead_id, activities.c.occurred_at)
        ):
            moments.setdefault(lead_id, []).append(at)
        for lead_id, created, won_at in connection.execute(
            select(leads.c.id, leads.c.created_at, leads.c.customer_at)
        ):
            points = [
                m for m in [created, *moments.get(lead_id, [])] if won_at is None or m <= won_at
            ]
            best = max(
                round(
                    100
                    * model.probability(
                        feature_rows_in(
                            connection,
                            model.spec,
                            [lead_id],
                            moment,
                            numeric_attributes=model.numeric_attributes,
                        )[lead_id]
                    ),
                    2,
                )
                for moment in points
            )
            expected += best >= 50
    assert 0 < expected < 40
    assert report.draft.totals.mqls == expected
    assert set(report.draft.totals.rejected_by_reason) <= {"no_budget", "wrong_fit"}
    assert report.draft.totals.roc_auc is not None


def test_two_processes_and_any_chunk_give_the_report_of_one(ctx: Context) -> None:
    random_history(ctx, leads_count=120, seed=4)
    store_active(ctx)
    one = backtest_contract(ctx, DRAFT, actor=_admin(ctx), processes=1).to_json()
    two = backtest_contract(ctx, DRAFT, actor=_admin(ctx), processes=2, chunk=7).to_json()
    assert two == one
    assert one["leads"] == 120 and one["against"] is not None
    with ctx.read() as connection:
        first = min(
            connection.execute(select(func.min(leads.c.created_at))).scalar_one(),
            connection.execute(select(func.min(activities.c.occurred_at))).scalar_one(),
        )
    assert one["first_touch"] == read_datetime(first).isoformat()


def test_an_imported_outcome_column_is_what_counts_as_won(ctx: Context) -> None:
    """X Education's history has no customers, only a `Converted` column: with
    ``outcome="attributes.converted"`` the report judges the contract against it."""
    from baton.domain.leads import LeadCreate
    from baton.services.leads import capture_lead

    operator_ = operator("ops")
    for email, title, converted in (
        ("yes@acme.example.com", "Director of Sales", "1"),
        ("no@acme.example.com", "Intern", "0"),
    ):
        capture_lead(
            ctx,
            LeadCreate(email=email, title=title, attributes={"converted": converted}),
            actor=operator_,
        )
    draft = DRAFT.replace("threshold: 50", "threshold: 30")
    by_default = backtest_contract(ctx, draft, actor=operator_, processes=1)
    by_column = backtest_contract(
        ctx, draft, actor=operator_, processes=1, outcome="attributes.converted"
    )

    assert (by_default.won, by_default.outcome) == (0, "won")
    assert (by_column.won, by_column.outcome) == (1, "attributes.converted")
    assert by_column.draft.totals.mqls == 1
    assert by_column.draft.totals.won == 1
    assert by_column.draft.totals.roc_auc == 1.0
    with pytest.raises(ValidationFailed) as refused:
        backtest_contract(ctx, draft, actor=operator_, outcome="converted")
    assert refused.value.problems[0].loc == "outcome"
