"""A learned model inside live scoring (``scoring.predicted``, ``mql.min_probability``):
every scoring path (capture, ingest, activation's re-score, one lead's score) passes the
model's probability to the domain and stores it; a contract names a stored model signed
by both teams; a model that cannot be loaded never breaks capture. On SQLite and
PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
import yaml
from sqlalchemy import insert, select, update
from tests.model_helpers import store_tiny_model

from baton.domain.access import operator
from baton.domain.clock import ManualClock
from baton.domain.errors import Conflict, ValidationFailed
from baton.domain.leads import LeadCreate
from baton.services import model_store
from baton.services.activities import ingest_activities
from baton.services.context import Context
from baton.services.contracts import activate_contract, approve_contract, create_contract
from baton.services.leads import capture_lead, get_lead
from baton.services.scoring import lead_score
from baton.store.tables import lead_model_approvals, lead_models, lead_scores

READER = operator("reader")
HOT = {"source": "webinar", "title": "CEO", "country": "US"}
COLD = {"source": "ads", "title": "Analyst", "country": "US"}


def contract_yaml(
    model: int | None, *, weight: int = 100, threshold: int = 1000, **mql: Any
) -> str:
    scoring: dict[str, Any] = {
        "fit": [{"name": "US", "when": {"field": "country", "equals": "US"}, "points": 10}],
        "engagement": [{"name": "Views", "event": "page_view", "points": 1}],
    }
    if model is not None:
        scoring["predicted"] = {"model": model, "weight": weight}
    data = {
        "schema_version": 1,
        "name": "Predicted test",
        "scoring": scoring,
        "mql": {"threshold": threshold, "hand_raise": ["demo_request"], **mql},
    }
    return yaml.safe_dump(data, sort_keys=False)


def sign_model(ctx: Context, version: int, *sides: str) -> None:
    """Signatures as ``baton model approve`` stores them (the model's use cases are
    another helper's; the contract only reads the signatures)."""
    with ctx.write() as connection:
        model_id = connection.execute(
            select(lead_models.c.id).where(lead_models.c.version == version)
        ).scalar_one()
        for side in sides:
            connection.execute(
                insert(lead_model_approvals).values(
                    model_id=model_id,
                    role=side,
                    approver=f"{side} signer",
                    approved_at=ctx.clock.now(),
                )
            )
        signed = connection.execute(
            select(lead_model_approvals.c.role).where(lead_model_approvals.c.model_id == model_id)
        ).scalars()
        if set(signed) == {"marketing", "sales"}:
            connection.execute(
                update(lead_models).where(lead_models.c.id == model_id).values(status="approved")
            )


def signed_model(ctx: Context) -> int:
    version = store_tiny_model(ctx, status="draft")
    sign_model(ctx, version, "marketing", "sales")
    return version


def activate(ctx: Context, body: str) -> int:
    version = create_contract(ctx, body, actor=operator("maria")).version
    approve_contract(ctx, version, role="marketing", actor=operator("maria"))
    approve_contract(ctx, version, role="sales", actor=operator("sam"))
    activate_contract(ctx, version, actor=operator("admin"))
    return version


def capture(ctx: Context, email: str, **fields: Any) -> int:
    data = LeadCreate.model_validate({"email": email, **fields})
    return capture_lead(ctx, data, actor=operator("form")).lead.id


def events(ctx: Context, email: str, kind: str, n: int) -> None:
    rows = [
        {
            "email": email,
            "type": kind,
            "occurred_at": ctx.clock.now().isoformat(),
            "properties": {"url": "/pricing"},
            "idempotency_key": uuid.uuid4().hex,
        }
        for _ in range(n)
    ]
    assert not ingest_activities(ctx, rows, actor=operator("web")).errors


def stored(ctx: Context, lead_id: int) -> tuple[float, float | None]:
    with ctx.read() as connection:
        row = connection.execute(
            select(lead_scores.c.total, lead_scores.c.probability).where(
                lead_scores.c.lead_id == lead_id
            )
        ).one()
    return float(row[0]), None if row[1] is None else float(row[1])


def expected_probability(ctx: Context, model_version: int, lead_id: int) -> float:
    """The model's probability of the lead now, computed outside scoring."""
    with ctx.read() as connection:
        model = model_store.load_model_in(connection, model_version)
        rows = model_store.feature_rows_in(connection, model.spec, [lead_id], ctx.clock.now())
    return model.probability(rows[lead_id])


def test_a_contract_must_name_a_stored_model(ctx: Context) -> None:
    with pytest.raises(ValidationFailed) as caught:
        create_contract(ctx, contract_yaml(9), actor=operator("maria"))

    assert [(p.loc, p.message) for p in caught.value.problems] == [
        ("scoring.predicted.model", "model version 9 does not exist; see baton model list")
    ]


def test_a_contract_is_activated_only_with_a_model_both_teams_signed(ctx: Context) -> None:
    model = store_tiny_model(ctx, status="draft")
    version = create_contract(ctx, contract_yaml(model), actor=operator("maria")).version
    approve_contract(ctx, version, role="marketing", actor=operator("maria"))
    approve_contract(ctx, version, role="sales", actor=operator("sam"))

    with pytest.raises(
        Conflict, match=f"model v{model}, which is not signed by marketing and sales"
    ):
        activate_contract(ctx, version, actor=operator("admin"))
    sign_model(ctx, model, "marketing")
    with pytest.raises(Conflict, match="not signed by sales"):
        activate_contract(ctx, version, actor=operator("admin"))
    sign_model(ctx, model, "sales")

    report = activate_contract(ctx, version, actor=operator("admin"))

    assert report.version == version
    assert report.model_problem is None


def test_capture_ingest_and_one_lead_score_use_the_models_probability(
    ctx: Context, clock: ManualClock
) -> None:
    model = signed_model(ctx)
    activate(ctx, contract_yaml(model, weight=100))
    hot = capture(ctx, "dana@northwind.example.com", **HOT)
    cold = capture(ctx, "bo@gmail.com", **COLD)

    hot_total, hot_p = stored(ctx, hot)
    cold_total, cold_p = stored(ctx, cold)
    assert hot_p is not None and cold_p is not None
    assert hot_p == pytest.approx(expected_probability(ctx, model, hot))
    assert hot_p > cold_p + 0.2
    assert hot_total == pytest.approx(10 + round(100 * hot_p, 2))
    assert cold_total == pytest.approx(10 + round(100 * cold_p, 2))

    # Events move the probability (the model counts page views), not only engagement.
    clock.advance(timedelta(minutes=5))
    events(ctx, "bo@gmail.com", "page_view", 4)
    total_after, p_after = stored(ctx, cold)
    assert p_after is not None and p_after > cold_p
    assert p_after == pytest.approx(expected_probability(ctx, model, cold))
    assert total_after == pytest.approx(10 + 4 + round(100 * p_after, 2))

    score = lead_score(ctx, cold, actor=READER)
    assert score.probability == pytest.approx(p_after)
    assert score.model_problem is None
    assert score.total == pytest.approx(total_after)
    assert [(h.section, h.points) for h in score.hits if h.section == "predicted"] == [
        ("predicted", round(100 * p_after, 2))
    ]
    assert 1 <= len(score.reasons) <= 3
    assert {r.feature for r in score.reasons} <= {
        "source",
        "country",
        "email.free_mail",
        "events.page_view",
        "events_30d.page_view",
        "days_known",
    }
    assert all(r.label and r.effect != 0 for r in score.reasons)


def test_activation_rescores_every_lead_with_the_model(ctx: Context) -> None:
    activate(ctx, contract_yaml(None))
    ids = [
        capture(ctx, f"lead{i}@northwind.example.com", **(HOT if i % 2 else COLD)) for i in range(5)
    ]
    assert all(stored(ctx, i)[1] is None for i in ids)
    model = signed_model(ctx)

    activate(ctx, contract_yaml(model, weight=50))

    for lead_id in ids:
        total, probability = stored(ctx, lead_id)
        assert probability == pytest.approx(expected_probability(ctx, model, lead_id))
        assert total == pytest.approx(10 + round(50 * (probability or 0), 2))


def test_min_probability_gates_the_mql_and_a_hand_raise_still_qualifies(
    ctx: Context, clock: ManualClock
) -> None:
    model = signed_model(ctx)
    activate(ctx, contract_yaml(model, weight=10, threshold=0, min_probability=0.5))

    hot = capture(ctx, "dana@northwind.example.com", **HOT)
    cold = capture(ctx, "bo@gmail.com", **COLD)

    assert get_lead(ctx, hot, actor=READER).stage == "mql"
    assert get_lead(ctx, cold, actor=READER).stage == "lead"
    gaps = lead_score(ctx, cold, actor=READER).mql_gaps
    assert [(g.kind, g.item) for g in gaps] == [("probability", "min_probability")]
    assert "is below 50%" in gaps[0].label

    clock.advance(timedelta(minutes=1))
    events(ctx, "bo@gmail.com", "demo_request", 1)
    assert get_lead(ctx, cold, actor=READER).stage == "mql"


def test_a_model_that_cannot_be_loaded_never_breaks_capture(ctx: Context) -> None:
    model = signed_model(ctx)
    activate(ctx, contract_yaml(model, weight=100, threshold=0, min_probability=0.1))
    with ctx.write() as connection:
        # The stored bytes no longer match their checksum (changed behind Baton's back).
        connection.execute(
            update(lead_models)
            .where(lead_models.c.version == model)
            .values(artifact_sha256="0" * 64)
        )
    # Nor a server's or worker's start-up: it warns and goes on without the model.
    assert model_store.preload_scoring_model(ctx) is True

    lead_id = capture(ctx, "dana@northwind.example.com", **HOT)

    assert stored(ctx, lead_id) == (10.0, None)
    assert get_lead(ctx, lead_id, actor=READER).stage == "lead"  # no probability, no MQL
    score = lead_score(ctx, lead_id, actor=READER)
    assert score.probability is None
    assert score.reasons == ()
    assert score.model_problem is not None
    assert score.model_problem.startswith(f"model v{model} could not be loaded")
    assert "checksum" in score.model_problem
    assert all(h.section != "predicted" for h in score.hits)


def test_without_a_predicted_component_no_model_is_loaded(
    ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    store_tiny_model(ctx)
    activate(ctx, contract_yaml(None, threshold=5))

    calls: list[str] = []

    def record(*_: Any, **__: Any) -> Any:
        calls.append("a model was loaded")  # (scoring would swallow an exception here)
        raise LookupError("not for this contract")

    monkeypatch.setattr(model_store, "load_model_in", record)
    monkeypatch.setattr(model_store, "feature_rows_in", record)
    lead_id = capture(ctx, "dana@northwind.example.com", **HOT)
    events(ctx, "dana@northwind.example.com", "page_view", 2)

    assert stored(ctx, lead_id) == (12.0, None)
    score = lead_score(ctx, lead_id, actor=READER)
    assert (score.probability, score.reasons, score.model_problem) == (None, (), None)
    assert calls == []


def test_crossings_count_the_previous_versions_model_points(ctx: Context) -> None:
    model = signed_model(ctx)
    activate(ctx, contract_yaml(model, weight=100, threshold=60))
    ids = [capture(ctx, f"lead{i}@gmail.com", **(HOT if i % 2 else COLD)) for i in range(6)]
    over = sum(1 for i in ids if stored(ctx, i)[0] >= 60)
    assert 0 < over < len(ids)

    version = create_contract(ctx, contract_yaml(None, threshold=60), actor=operator("maria"))
    approve_contract(ctx, version.version, role="marketing", actor=operator("maria"))
    approve_contract(ctx, version.version, role="sales", actor=operator("sam"))
    report = activate_contract(ctx, version.version, actor=operator("admin"))

    assert (report.crossed_down, report.crossed_up) == (over, 0)
    assert all(stored(ctx, i) == (10.0, None) for i in ids)


def test_start_up_imports_the_model_libraries_only_for_a_contract_that_scores_with_one(
    ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server or worker imports scikit-learn and loads the model before freezing its
    start-up heap only when the active contract has ``scoring.predicted``: then the
    first score neither imports them inside its write transaction nor unpickles the
    model; otherwise no process pays for them."""
    imported: list[str] = []
    monkeypatch.setattr(model_store, "import_libraries", lambda: imported.append("sklearn"))
    assert model_store.preload_scoring_model(ctx) is False  # no contract
    store_tiny_model(ctx)
    activate(ctx, contract_yaml(None, threshold=5))
    assert model_store.preload_scoring_model(ctx) is False
    assert imported == []
    model = signed_model(ctx)
    activate(ctx, contract_yaml(model))
    model_store._CACHE.clear()
    assert model_store.preload_scoring_model(ctx) is True
    assert imported == ["sklearn"]
    # The model itself is in memory too: the first score does not unpickle it.
    assert [version for version, _ in model_store._CACHE] == [model]
