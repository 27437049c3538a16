"""The backtest over real HTTP and on the command line, on the small history of
tests/backtest_history.py (its figures are computed by hand there)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from tests.backtest_history import DRAFT, build_history, store_active
from tests.conftest import bearer, token_for
from tests.e2e.live_server import live_server
from tests.e2e.test_web_access import sign_in
from tests.web_world import build_world
from typer.testing import CliRunner

from baton.api.app import create_app
from baton.cli import app as cli_app
from baton.services.context import Context


def test_the_api_backtests_a_draft_and_refuses_a_broken_one(sqlite_ctx: Context) -> None:
    build_history(sqlite_ctx)
    store_active(sqlite_ctx)
    marketing = bearer(token_for(sqlite_ctx, "marketing", email="maria@lumen.example"))
    unscoped = token_for(sqlite_ctx, "marketing", email="mia@lumen.example", scopes=("leads:read",))

    with live_server(create_app(sqlite_ctx)) as url, httpx.Client(base_url=url, timeout=30) as http:
        ok = http.post("/api/v1/contracts/backtest", json={"draft": DRAFT}, headers=marketing)
        stored = http.post(
            "/api/v1/contracts/backtest", json={"version": 1, "against": 1}, headers=marketing
        )
        broken = http.post(
            "/api/v1/contracts/backtest",
            json={"draft": DRAFT.replace("threshold: 50", "threshhold: 50")},
            headers=marketing,
        )
        both = http.post(
            "/api/v1/contracts/backtest", json={"draft": DRAFT, "version": 1}, headers=marketing
        )
        missing = http.post("/api/v1/contracts/backtest", json={"version": 9}, headers=marketing)
        no_scope = http.post(
            "/api/v1/contracts/backtest", json={"draft": DRAFT}, headers=bearer(unscoped)
        )

    assert ok.status_code == 200, ok.text
    report = ok.json()
    assert report["leads"] == 6
    assert report["draft"]["totals"]["mqls"] == 3
    assert report["draft"]["totals"]["missed_sample"] == [3, 6]
    assert report["draft"]["totals"]["rejected_by_reason"] == {
        "disqualified (history)": 1,
        "no_budget": 1,
    }
    assert report["against"]["label"] == "version 1"
    assert report["against"]["totals"]["mqls"] == 4
    assert any(p["own"] and p["threshold"] == 50 for p in report["draft"]["sweep"])
    assert stored.status_code == 200 and stored.json()["draft"]["label"] == "version 1"
    assert broken.status_code == 422
    assert broken.headers["content-type"].startswith("application/problem+json")
    assert "(line " in broken.text
    assert both.status_code == 422
    assert missing.status_code == 404
    assert no_scope.status_code == 403  # the token lacks models:read


@pytest.fixture
def runner(sqlite_ctx: Context, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> CliRunner:
    monkeypatch.setenv(
        "BATON_DATABASE_URL", sqlite_ctx.engine.url.render_as_string(hide_password=False)
    )
    monkeypatch.setenv("COLUMNS", "240")
    monkeypatch.chdir(tmp_path)
    return CliRunner()


def test_the_cli_prints_the_tables_and_json(
    runner: CliRunner, sqlite_ctx: Context, tmp_path: Path
) -> None:
    draft = tmp_path / "draft.yaml"
    draft.write_text(DRAFT)
    empty = runner.invoke(cli_app, ["contract", "backtest", str(draft)])
    build_history(sqlite_ctx)
    store_active(sqlite_ctx)
    broken = tmp_path / "broken.yaml"
    broken.write_text(DRAFT.replace("threshold: 50", "threshhold: 50"))

    tables = runner.invoke(cli_app, ["contract", "backtest", str(draft), "--weeks", "1"])
    as_json = runner.invoke(cli_app, ["contract", "backtest", str(draft), "--json"])
    refused = runner.invoke(cli_app, ["contract", "backtest", str(broken)])

    assert empty.exit_code == 1 and "no leads to replay" in empty.output
    assert "Traceback" not in empty.output
    assert tables.exit_code == 0, tables.output
    for words in ("Totals", "missed winners", "2026-W03", "no_budget", "Threshold sweep"):
        assert words in tables.output
    assert "2026-W02" not in tables.output  # --weeks 1: the last week only
    assert as_json.exit_code == 0, as_json.output
    assert json.loads(as_json.output)["draft"]["totals"]["mqls"] == 3
    assert refused.exit_code == 1
    assert "line" in refused.output and "threshhold" in refused.output


def test_the_cli_backtests_a_stored_version_against_an_imported_outcome(
    runner: CliRunner, sqlite_ctx: Context, tmp_path: Path
) -> None:
    build_history(sqlite_ctx)
    store_active(sqlite_ctx)

    stored = runner.invoke(
        cli_app, ["contract", "backtest", "--version", "1", "--outcome", "attributes.converted"]
    )
    neither = runner.invoke(cli_app, ["contract", "backtest"])
    wrong = runner.invoke(cli_app, ["contract", "backtest", "--version", "1", "--outcome", "x"])

    assert stored.exit_code == 0, stored.output
    assert "(attributes.converted)" in stored.output
    assert "version 1" in stored.output
    assert neither.exit_code == 1 and "--version" in neither.output
    assert wrong.exit_code == 1 and "attributes.KEY" in " ".join(wrong.output.split())
    assert "Traceback" not in neither.output + wrong.output


def test_the_version_page_backtests_and_draws_the_sweep(sqlite_ctx: Context) -> None:
    world = build_world(sqlite_ctx, handoffs_each=1)
    with TestClient(
        create_app(sqlite_ctx), base_url="https://testserver", follow_redirects=False
    ) as client:
        sign_in(client, world.users["marketing"])
        version = client.get("/contract/1")
        page = client.get("/contract/1/backtest")

    assert "Backtest this version against the active one" in version.text
    assert page.status_code == 200, page.text
    for words in ("Totals", "version 1 (MQL at 60)", "Threshold sweep", "No chart"):
        assert words in page.text
    assert "no lead was won in the history" in page.text  # the world has no customer
    assert "Nothing was changed" in page.text
