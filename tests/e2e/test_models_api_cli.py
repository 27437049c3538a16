"""Learned scoring models over HTTP, on the command line and on the web page, as
marketing ops would use them: train a draft on the recorded outcomes, read its
evaluation, two people sign it, an admin activates it; a history that cannot teach is
one clear error (422 problem+json, one CLI line), never a stack trace."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from tests.conftest import START, bearer, token_for
from tests.model_helpers import write_history
from typer.testing import CliRunner

from baton.api.app import create_app
from baton.cli import app as cli_app
from baton.config import Settings
from baton.domain.access import operator
from baton.domain.clock import ManualClock
from baton.domain.users import UserCreate
from baton.services.context import Context, open_context
from baton.services.users import add_user

MARIA, SAM = "maria@lumen.example", "sam@lumen.example"
PASSWORD = "correct horse battery staple"


@pytest.fixture
def client(sqlite_ctx: Context) -> TestClient:
    return TestClient(create_app(sqlite_ctx), headers=bearer(token_for(sqlite_ctx, "admin")))


def test_train_sign_and_activate_over_http(client: TestClient, sqlite_ctx: Context) -> None:
    maria = bearer(token_for(sqlite_ctx, "marketing", email=MARIA))
    sam = bearer(token_for(sqlite_ctx, "sales_manager", email=SAM))
    empty = client.post("/api/v1/models", json={}, headers=maria)
    assert empty.status_code == 422
    assert empty.headers["content-type"] == "application/problem+json"
    assert empty.json()["errors"][0]["loc"] == "target"
    assert "the history is empty" in empty.json()["errors"][0]["message"]
    write_history(sqlite_ctx)
    trained = client.post(
        "/api/v1/models",
        json={"kind": "logistic_regression", "exclude": ["country"], "name": "first"},
        headers=maria,
    )
    assert trained.status_code == 201, trained.text
    body = trained.json()
    assert (body["version"], body["status"], body["target"]) == (1, "draft", "won")
    assert body["evaluation"]["roc_auc"] > 0.7 and body["evaluation"]["calibration"]
    assert body["trained_on"]["split"] == "time" and "country" in body["features"]["exclude"]
    assert body["top_features"][0]["weight"] != 0
    assert client.get("/api/v1/models").json()[0]["version"] == 1
    assert client.get("/api/v1/models/1").json()["name"] == "first"
    assert client.get("/api/v1/models/7").status_code == 404
    early = client.post("/api/v1/models/1/activate")
    assert early.status_code == 409 and "needs approval by" in early.json()["detail"]
    assert (
        client.post("/api/v1/models/1/approvals", json={"role": "sales"}, headers=maria)
    ).status_code == 403
    assert client.post("/api/v1/models/1/approvals", json={"role": "marketing"}).status_code == 403
    for role, headers in (("marketing", maria), ("sales", sam)):
        signed = client.post("/api/v1/models/1/approvals", json={"role": role}, headers=headers)
        assert signed.status_code == 200, signed.text
    assert signed.json()["status"] == "approved"
    assert signed.json()["approvals"]["sales"].startswith(SAM)
    assert client.post("/api/v1/models/1/activate", headers=maria).status_code == 403
    activated = client.post("/api/v1/models/1/activate")
    assert activated.json() == {"version": 1, "previous": None}
    wrong = client.post("/api/v1/models", json={"target": "attributes.converted"}, headers=maria)
    assert wrong.status_code == 422 and "attributes.converted" in wrong.json()["detail"]
    bad = client.post("/api/v1/models", json={"kind": "forest", "holdout": 0.9})
    assert bad.status_code == 422


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


def test_the_model_commands(runner: tuple[CliRunner, Context]) -> None:
    cli, ctx = runner
    empty = cli.invoke(cli_app, ["model", "train"])
    assert empty.exit_code == 1
    assert empty.output.count("\n") <= 3 and "Traceback" not in empty.output
    assert "error: --target: the history is empty" in " ".join(empty.output.split())
    write_history(ctx, n=30, in_play=0)
    few = cli.invoke(cli_app, ["model", "train", "--kind", "naive_bayes"])
    assert few.exit_code == 1 and "too few 'won' outcomes" in " ".join(few.output.split())
    write_history(ctx, seed=6)
    steps = [
        ["model", "train", "--kind", "logistic_regression", "--exclude", "attributes.tags"],
        ["model", "list"],
        ["model", "show", "1"],
        ["model", "approve", "1", "--side", "marketing", "--actor", "maria"],
        ["model", "approve", "1", "--role", "sales", "--actor", "sam"],
        ["model", "activate", "1"],
    ]
    outputs = []
    for step in steps:
        result = cli.invoke(cli_app, step)
        assert result.exit_code == 0, (step, result.output)
        outputs.append(result.output)
    trained, listing, shown, *_, activated = outputs
    for text in (trained, shown):
        assert "ROC AUC" in text and "Calibration" in text and "Brier" in text
    assert "asked to leave out, but no such feature: attributes.tags" in trained
    assert "draft model version 1 stored" in trained
    assert "logistic_regression" in listing
    assert "model version 1 is active" in activated
    cli.invoke(cli_app, ["model", "train", "--kind", "naive_bayes", "--split", "stratified"])
    cli.invoke(cli_app, ["model", "approve", "2", "--side", "marketing", "--actor", "sam"])
    twice = cli.invoke(cli_app, ["model", "approve", "2", "--side", "sales", "--actor", "sam"])
    assert twice.exit_code == 1 and "two different approvers" in twice.output
    missing = cli.invoke(cli_app, ["model", "show", "9"])
    assert missing.exit_code == 1 and "model version 9 does not exist" in missing.output


def _sign_in(client: TestClient, email: str) -> str:
    client.cookies.clear()
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text)
    assert token is not None
    answer = client.post(
        "/login", data={"email": email, "password": PASSWORD, "csrf_token": token.group(1)}
    )
    assert answer.status_code == 303, answer.text
    return str(client.get("/auth/me").json()["csrf_token"])


def test_the_models_page_shows_the_evaluation_and_the_readers_buttons(
    sqlite_ctx: Context,
) -> None:
    from baton.services.models import train_model

    for email, role in ((MARIA, "marketing"), (SAM, "sales_manager"), ("ad@x.example", "admin")):
        add_user(
            sqlite_ctx,
            UserCreate(email=email, display_name=email.split("@")[0], role=role),
            actor=operator("test"),
            password=PASSWORD,
        )
    write_history(sqlite_ctx)
    train_model(sqlite_ctx, actor=operator("test"), kind="logistic_regression")
    app = create_app(sqlite_ctx)
    with TestClient(app, base_url="https://testserver", follow_redirects=False) as web:
        csrf = _sign_in(web, MARIA)
        listing = web.get("/admin/models")
        assert listing.status_code == 200 and 'href="/admin/models/1"' in listing.text
        page = web.get("/admin/models/1")
        assert "Calibration" in page.text and "ROC AUC" in page.text
        assert "Sign for marketing" in page.text and "Sign for sales" not in page.text
        signed = web.post("/admin/models/1/approve", data={"role": "marketing", "csrf_token": csrf})
        assert signed.status_code == 303
        csrf = _sign_in(web, SAM)
        assert "Sign for sales" in web.get("/admin/models/1").text
        web.post("/admin/models/1/approve", data={"role": "sales", "csrf_token": csrf})
        csrf = _sign_in(web, "ad@x.example")
        page = web.get("/admin/models/1")
        assert "Activate model 1" in page.text and "Sign for" not in page.text
        web.post("/admin/models/1/activate", data={"csrf_token": csrf})
        assert "status-active" in web.get("/admin/models/1").text
