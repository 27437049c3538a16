"""Suggesting a contract over HTTP and on the command line: marketing asks for the
points the outcomes say the active contract's rules are worth; a bad request is a
problem+json or one error line."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from tests.conftest import bearer, token_for
from tests.suggest_history import COURSES_CONTRACT
from typer.testing import CliRunner

from baton.api.app import create_app
from baton.cli import app as cli_app
from baton.domain.access import operator
from baton.services.context import Context
from baton.services.imports import import_leads

CONTRACT = COURSES_CONTRACT


def _csv(n: int) -> str:
    rng = np.random.default_rng(9)
    lines = ["Prospect ID,Occupation,Color,Converted"]
    for i in range(n):
        working = rng.random() < 0.5
        converted = rng.random() < (0.85 if working else 0.15)
        occupation = "Working Professional" if working else "Student"
        color = "red" if rng.random() < 0.5 else "blue"
        lines.append(f"P-{i},{occupation},{color},{int(converted)}")
    return "\n".join(lines) + "\n"


def test_marketing_suggests_over_http_and_a_sales_manager_may_not(sqlite_ctx: Context) -> None:
    import_leads(
        sqlite_ctx,
        io.StringIO(_csv(400)),
        actor=operator("ops"),
        column_map={"Prospect ID": "external_id"},
    )
    client = TestClient(create_app(sqlite_ctx))
    marketing = bearer(token_for(sqlite_ctx, "marketing"))
    manager = bearer(token_for(sqlite_ctx, "sales_manager"))
    wanted = {"body": CONTRACT, "target": "attributes.converted", "save": True}

    found = client.post("/api/v1/contracts/suggest", json=wanted, headers=marketing)
    refused = client.post("/api/v1/contracts/suggest", json=wanted, headers=manager)
    no_active = client.post(
        "/api/v1/contracts/suggest", json={"target": "attributes.converted"}, headers=marketing
    )

    assert found.status_code == 200, found.text
    data = found.json()
    assert [r["old"] for r in data["rules"]] == [5, 15]
    assert data["rules"][0]["suggested"] == 15
    assert data["saved_version"] == 1 and data["examples"] == 400
    assert "# was 5" in data["body"]
    assert refused.status_code == 403
    assert no_active.status_code == 422
    assert no_active.headers["content-type"].startswith("application/problem+json")
    assert "no contract is active yet" in no_active.text


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("BATON_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.chdir(tmp_path)
    return CliRunner()


def test_the_command_prints_the_rules_and_writes_or_saves_the_draft(
    runner: CliRunner, tmp_path: Path
) -> None:
    (tmp_path / "leads.csv").write_text(_csv(300))
    (tmp_path / "courses.yaml").write_text(CONTRACT)
    imported = runner.invoke(
        cli_app, ["import", "leads", "leads.csv", "--map", "Prospect ID=external_id"]
    )
    assert imported.exit_code == 0, imported.output

    nothing = runner.invoke(cli_app, ["contract", "suggest", "--target", "attributes.converted"])
    wrote = runner.invoke(
        cli_app,
        [
            "contract",
            "suggest",
            "courses.yaml",
            "--target",
            "attributes.converted",
            "--out",
            "s.yaml",
        ],
    )
    saved = runner.invoke(
        cli_app,
        ["contract", "suggest", "courses.yaml", "--target", "attributes.converted", "--save"],
    )
    listed = runner.invoke(cli_app, ["contract", "list"])

    assert nothing.exit_code == 1
    assert "error: no contract is active yet" in nothing.output
    assert "Traceback" not in nothing.output
    assert wrote.exit_code == 0, wrote.output
    assert "Working professional" in wrote.output and "wrong-signed" in wrote.output
    assert "points: 15  # was 5" in (tmp_path / "s.yaml").read_text()
    assert saved.exit_code == 0 and "draft version 1 stored" in saved.output
    assert "(suggested" in listed.output and "draft" in listed.output
