"""No personal data in what a model shows (issue #16, review): attribute keys naming a
person's identity or contact data, nearly-unique text and email-address values are
never features, named or not; a rare category value never appears among the top
features, where every reader of the model would see it."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from tests.conftest import principal_for
from tests.model_helpers import write_history

from baton.learn.features import FeatureSpec, is_identity, lead_features
from baton.learn.model import train
from baton.services.context import Context
from baton.services.models import _top_features, train_model
from baton.store.tables import leads


def test_identity_keys_and_email_values_are_never_features() -> None:
    for key in ("contact_email", "Email Address", "Phone Number", "full_name", "name", "ip"):
        assert is_identity(key), key
    for key in ("do_not_email", "Do Not Call", "lead_source", "campaign_name", "company_size"):
        assert not is_identity(key), key
    spec = FeatureSpec(fields=(), attributes=("contact_email", "notes", "plan"))
    lead: dict[str, Any] = {
        "attributes": {"contact_email": "x@y.com", "notes": "ask jo@corp.io", "plan": "pro"}
    }
    row = lead_features(spec, lead, [], as_of=_moment())
    assert row == {"attributes.plan": "pro"}


def test_training_leaves_identities_out_even_when_named(ctx: Context) -> None:
    history = write_history(ctx, 120)
    with ctx.write() as connection:
        found = connection.execute(select(leads.c.id, leads.c.email, leads.c.attributes)).all()
        for lead_id, email, attributes in found:
            extra = {
                "contact_email": email,
                "full_name": f"Person {lead_id}",
                "note": f"called {lead_id} times",
                "do_not_email": "yes" if lead_id % 3 == 0 else "no",
            }
            connection.execute(
                update(leads)
                .where(leads.c.id == lead_id)
                .values(attributes={**attributes, **extra})
            )
    marketing = principal_for(ctx, "marketing")
    named = ["contact_email", "full_name", "note", "do_not_email", "company_size"]
    for attributes in (None, named):
        stored = train_model(
            ctx, actor=marketing, kind="logistic_regression", attributes=attributes
        )
        assert set(stored.spec.attributes) == {"do_not_email", "company_size"}
        left_out = set(stored.trained_on["excluded_identifiers"])
        assert {"attributes.contact_email", "attributes.full_name", "attributes.note"} <= left_out
        shown = " ".join(f"{t.feature} {t.label}" for t in stored.top_features)
        assert "@" not in shown and "person" not in shown.lower()
    assert len(history.lead_ids) == 120


def test_a_rare_category_value_is_not_shown_among_top_features() -> None:
    rows: list[dict[str, float | str]] = []
    labels: list[int] = []
    for i in range(200):
        won = i % 4 == 0
        row: dict[str, float | str] = {"source": "webinar" if i % 2 else "ads"}
        if i < 3:
            row["attributes.company"] = "acme of jane doe"
            won = True
        rows.append(row)
        labels.append(int(won))
    spec = FeatureSpec(fields=("source",), attributes=("company",))
    model = train("logistic_regression", spec, rows, labels)
    assert any(k.startswith("attributes.company=") for k in model.weights())
    top, _ = _top_features(model, rows, labels)
    assert [t["feature"] for t in top if "jane" in t["feature"]] == []
    assert any(t["feature"].startswith("source=") for t in top)


def _moment() -> Any:
    from datetime import UTC, datetime

    return datetime(2026, 1, 1, tzinfo=UTC)


def test_a_broken_model_tells_the_leads_readers_nothing_of_its_insides(ctx: Context) -> None:
    import pickle

    from sqlalchemy import update as sql_update
    from tests.integration.test_predicted_scoring import (
        HOT,
        READER,
        activate,
        capture,
        contract_yaml,
        signed_model,
    )

    from baton.learn.model import FORMAT, checksum
    from baton.services.model_store import _CACHE
    from baton.services.scoring import lead_score
    from baton.store.tables import lead_models

    model = signed_model(ctx)
    activate(ctx, contract_yaml(model, weight=100, threshold=0, min_probability=0.1))
    # Bytes whose checksum matches but that are not a whole model (a pickle of the
    # wrong shape): whatever the exception says stays in the server log.
    broken = FORMAT.encode() + b"\n" + pickle.dumps({"/srv/baton/internal": "jane@x.io"})
    _CACHE.clear()
    with ctx.write() as connection:
        connection.execute(
            sql_update(lead_models)
            .where(lead_models.c.version == model)
            .values(artifact=broken, artifact_sha256=checksum(broken))
        )
    lead_id = capture(ctx, "dana@northwind.example.com", **HOT)
    problem = lead_score(ctx, lead_id, actor=READER).model_problem
    assert problem == f"model v{model} could not be loaded (see the server log); scored without it"
