"""What the model and suggest commands say (issue #16 review): a suspiciously good
model and an identifier left out are said on the command line and the page, a bad
draft given to suggest prints its problems, the suggestion's ROC AUC is labelled
in-sample, and validate checks the model a draft names when it can."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update
from tests.conftest import START, bearer, token_for
from tests.model_helpers import store_tiny_model, write_history
from typer.testing import CliRunner

from baton.api.app import create_app
from baton.cli import app as cli_app
from baton.config import Settings
from baton.domain.access import operator
from baton.domain.clock import ManualClock
from baton.domain.users import UserCreate
from baton.services.context import Context, open_context
from baton.services.imports import import_leads
from baton.services.users import add_user
from baton.store.tables import leads

CONTRACT = """schema_version: 1
name: Courses
scoring:
  fit:
    - name: Working professional
      when: {field: attributes.occupation, equals: Working Professional}
      points: 5
mql:
  threshold: 5
"""
PASSWORD = "correct horse battery staple"
PREDICTED = CONTRACT.replace("mql:", "  predicted: {model: 999, weight: 30}\nmql:")


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[CliRunner, Context]]:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("BATON_DATABASE_URL", url)
    monkeypatch.chdir(tmp_path)
    ctx = open_context(Settings(database_url=url, env="test"), clock=ManualClock(current=START))
    try:
        yield CliRunner(), ctx
    finally:
        ctx.engine.dispose()


def _flat(text: str) -> str:
    return " ".join(text.split())


def test_train_says_a_suspicious_auc_and_how_to_keep_an_identifier(
    runner: tuple[CliRunner, Context],
) -> None:
    cli, ctx = runner
    history = write_history(ctx)
    with ctx.write() as connection:
        for lead_id, attributes in connection.execute(select(leads.c.id, leads.c.attributes)):
            won = history.won[int(lead_id)]
            extra = {"page": f"p{lead_id}", "tags": "revert" if won else "ringing"}
            connection.execute(
                update(leads)
                .where(leads.c.id == lead_id)
                .values(attributes={**attributes, **extra})
            )
    trained = cli.invoke(cli_app, ["model", "train", "--kind", "logistic_regression"])
    assert trained.exit_code == 0, trained.output
    text = _flat(trained.output)
    assert "! suspiciously good: held-out ROC AUC" in text
    assert "attributes.tags" in text.split("suspiciously good")[1]
    assert "--keep attributes.page to use it" in text
    assert "features as of each lead's first handoff; handed off from" in text
    kept = cli.invoke(
        cli_app, ["model", "train", "--keep", "attributes.page", "--exclude", "attributes.tags"]
    )
    assert kept.exit_code == 0, kept.output
    assert "kept (asked): attributes.page" in _flat(kept.output)
    assert "suspiciously good" not in kept.output
    personal = cli.invoke(cli_app, ["model", "train", "--keep", "attributes.email"])
    assert personal.exit_code == 1 and "Traceback" not in personal.output
    assert "identity or contact data" in _flat(personal.output)
    client = TestClient(create_app(ctx), headers=bearer(token_for(ctx, "admin")))
    shown = client.get("/api/v1/models/1").json()
    assert shown["evaluation"]["warnings"][0].startswith("suspiciously good")
    add_user(
        ctx,
        UserCreate(email="ad@x.example", display_name="ad", role="admin"),
        actor=operator("test"),
        password=PASSWORD,
    )
    with TestClient(create_app(ctx), base_url="https://testserver") as web:
        token = re.search(r'name="csrf_token" value="([^"]+)"', web.get("/login").text)
        assert token is not None
        data = {"email": "ad@x.example", "password": PASSWORD, "csrf_token": token.group(1)}
        web.post("/login", data=data, follow_redirects=False)
        page = _flat(web.get("/admin/models/1").text)
    assert "suspiciously good: held-out ROC AUC" in page
    assert "features as of each lead&#39;s first handoff; handed off from" in page
    assert "Weights are in log-odds" in page
    assert "attributes.page only for their many values" in page


def test_suggest_prints_a_bad_drafts_problems_and_labels_its_auc(
    runner: tuple[CliRunner, Context], tmp_path: Path
) -> None:
    cli, ctx = runner
    rng = np.random.default_rng(3)
    lines = ["Prospect ID,Occupation,Converted"]
    for i in range(200):
        working = rng.random() < 0.5
        converted = int(rng.random() < (0.8 if working else 0.2))
        lines.append(f"P-{i},{'Working Professional' if working else 'Student'},{converted}")
    import_leads(
        ctx,
        io.StringIO("\n".join(lines) + "\n"),
        actor=operator("ops"),
        column_map={"Prospect ID": "external_id"},
    )
    (tmp_path / "courses.yaml").write_text(CONTRACT)
    (tmp_path / "bad.yaml").write_text(CONTRACT.replace("threshold: 5", "threshold: -3"))
    bad = cli.invoke(cli_app, ["contract", "suggest", "bad.yaml"])
    assert bad.exit_code == 1 and "Traceback" not in bad.output
    assert "✗ mql.threshold:" in bad.output
    good = cli.invoke(
        cli_app, ["contract", "suggest", "courses.yaml", "--target", "attributes.converted"]
    )
    assert good.exit_code == 0, good.output
    text = _flat(good.output)
    assert "Suggested points for courses.yaml" in text
    assert "ROC AUC (in-sample: fitted on these leads)" in text
    assert "counted as the backtest does, over all 200 recorded leads" in text


def test_validate_checks_the_model_a_draft_names(
    runner: tuple[CliRunner, Context], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cli, ctx = runner
    (tmp_path / "draft.yaml").write_text(PREDICTED)
    (tmp_path / "one.yaml").write_text(PREDICTED.replace("model: 999", "model: 1"))
    missing = cli.invoke(cli_app, ["contract", "validate", "draft.yaml"])
    assert missing.exit_code == 1
    assert "✗ scoring.predicted.model: model version 999 does not exist" in missing.output
    store_tiny_model(ctx)
    found = cli.invoke(cli_app, ["contract", "validate", "one.yaml"])
    assert found.exit_code == 0, found.output
    assert "a predicted component (model v1, up to 30 points)" in _flat(found.output)
    monkeypatch.setenv("BATON_DATABASE_URL", f"sqlite:///{tmp_path / 'none.db'}")
    unchecked = cli.invoke(cli_app, ["contract", "validate", "draft.yaml"])
    assert unchecked.exit_code == 0, unchecked.output
    assert "could not check that model version 999 exists" in _flat(unchecked.output)
    assert not (tmp_path / "none.db").exists()
