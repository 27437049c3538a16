"""History as a client and an operator give it: ``occurred_at`` on the HTTP API (a
capture, a stage change), and the CLI's saved mappings, history import (summary,
warnings file, re-run) and Olist import (on a small file of the same shape; the real
files are imported in tests/integration/test_olist.py)."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from tests.conftest import bearer, token_for
from typer.testing import CliRunner

from baton.api.app import create_app
from baton.cli import app
from baton.domain.clock import ManualClock
from baton.services.context import Context

LEADS = "/api/v1/leads"


@pytest.fixture
def api(sqlite_ctx: Context) -> Iterator[TestClient]:
    with TestClient(
        create_app(sqlite_ctx),
        raise_server_exceptions=False,
        headers=bearer(token_for(sqlite_ctx, "admin", email="admin@lumen.example")),
    ) as client:
        yield client


def test_a_capture_and_a_stage_change_carry_the_time_they_happened(
    api: TestClient, sqlite_ctx: Context
) -> None:
    clock = sqlite_ctx.clock
    assert isinstance(clock, ManualClock)
    then = clock.now() - timedelta(days=30)
    created = api.post(LEADS, json={"email": "old@acme.example", "occurred_at": then.isoformat()})
    assert created.status_code == 201, created.text
    lead = created.json()["lead"]
    assert lead["created_at"].startswith(then.date().isoformat())
    url = f"{LEADS}/{lead['id']}/transitions"
    future = api.post(
        url,
        json={
            "to_stage": "mql",
            "reason": "x",
            "occurred_at": (clock.now() + timedelta(days=1)).isoformat(),
        },
    )
    assert future.status_code == 422
    assert future.headers["content-type"].startswith("application/problem+json")
    assert [e["loc"] for e in future.json()["errors"]] == ["occurred_at"]
    before = api.post(
        url,
        json={
            "to_stage": "mql",
            "reason": "x",
            "occurred_at": (then - timedelta(days=1)).isoformat(),
        },
    )
    assert before.status_code == 422 and "before the lead existed" in before.text
    moved = api.post(
        url,
        json={
            "to_stage": "mql",
            "reason": "became an MQL back then",
            "occurred_at": (then + timedelta(days=2)).isoformat(),
        },
    )
    assert moved.status_code == 201, moved.text
    body = moved.json()
    assert body["historical"] is True and body["recorded_at"] is not None
    assert body["occurred_at"].startswith((then + timedelta(days=2)).date().isoformat())
    naive = api.post(LEADS, json={"email": "n@acme.example", "occurred_at": "2026-01-01T10:00"})
    assert naive.status_code == 422 and "time zone" in naive.text


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("BATON_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.delenv("BATON_ENV", raising=False)
    monkeypatch.chdir(tmp_path)
    return CliRunner()


def summary(output: str) -> dict[str, int]:
    return {
        line.split("│")[1].strip(): int(line.split("│")[2].strip().replace(",", ""))
        for line in output.splitlines()
        if line.count("│") == 3 and line.split("│")[2].strip().replace(",", "").isdigit()
    }


def write(path: Path, headers: list[str], rows: list[list[str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(headers)
        writer.writerows(rows)
    return path


def test_mappings_and_a_history_import_from_the_command_line(
    runner: CliRunner, tmp_path: Path
) -> None:
    saved = runner.invoke(
        app,
        [
            "import",
            "mapping",
            "save",
            "crm",
            "--map",
            "Created=created_at",
            "--map",
            "MQL Date=mql_at",
            "--map",
            "Won Date=won_at",
            "--map",
            "Status=outcome",
            "--map",
            "Amount=amount",
        ],
    )
    assert saved.exit_code == 0, saved.output
    listed = runner.invoke(app, ["import", "mapping", "list"])
    assert all(name in listed.output for name in ("crm", "hubspot", "salesforce"))
    shown = runner.invoke(app, ["import", "mapping", "show", "hubspot"])
    assert "Became a Marketing Qualified" in shown.output and "mql_at" in shown.output
    bad = runner.invoke(app, ["import", "mapping", "save", "x", "--map", "A=nope"])
    assert bad.exit_code == 1 and "not a field" in bad.output
    source = write(
        tmp_path / "crm.csv",
        ["Email", "Created", "MQL Date", "Won Date", "Status", "Amount"],
        [
            ["a@x.example", "2025-01-02", "2025-01-03", "2025-02-01", "Closed Won", "1,000"],
            ["b@x.example", "2025-01-02", "2025-01-09", "2025-01-05", "Closed Won", ""],
            ["c@x.example", "2025-01-02", "2025-01-04", "", "", ""],
        ],
    )
    result = runner.invoke(
        app, ["import", "leads", str(source), "--mapping", "crm", "--historical"]
    )
    assert result.exit_code == 0, result.output
    counts = summary(result.output)
    assert counts["leads created"] == 3 and counts["won"] == 2
    assert counts["stage changes recorded"] == 5 + 5 + 1
    assert counts["MQLs recorded as history (no live handoff)"] == 3
    assert counts["steps moved to keep the order"] == 1
    assert counts["new leads queued for the duplicate check"] == 3
    assert "not queued for the duplicate check" not in result.output
    warnings = (tmp_path / "crm.csv.warnings.csv").read_text()
    assert "before the step before it" in warnings
    again = runner.invoke(app, ["import", "leads", str(source), "--mapping", "crm"])
    assert again.exit_code == 0, again.output
    assert summary(again.output)["stage changes recorded"] == 0
    alone = runner.invoke(app, ["import", "leads", str(source), "--historical"])
    assert alone.exit_code == 1 and "--mapping" in alone.output


def test_a_history_import_says_why_new_leads_were_not_queued_for_the_duplicate_check(
    runner: CliRunner, tmp_path: Path
) -> None:
    """A CRM's opportunities identified by their ids alone (Maven's without an account)
    cannot be paired with anyone: the history summary says so, as a plain import's does."""
    saved = runner.invoke(
        app,
        [
            *("import", "mapping", "save", "ids", "--map", "Id=external_id"),
            *("--map", "Account=company", "--map", "Created=created_at", "--map", "Status=outcome"),
        ],
    )
    assert saved.exit_code == 0, saved.output
    source = write(
        tmp_path / "deals.csv",
        ["Id", "Account", "Created", "Status"],
        [
            ["d-1", "", "2025-01-02", "Closed Won"],
            ["d-2", "", "2025-01-03", "Closed Lost"],
            ["d-3", "Initech", "2025-01-04", "Closed Won"],
        ],
    )
    result = runner.invoke(
        app, ["import", "leads", str(source), "--mapping", "ids", "--system", "crm", "--historical"]
    )
    assert result.exit_code == 0, result.output
    counts = summary(result.output)
    assert (counts["leads created"], counts["new leads queued for the duplicate check"]) == (3, 1)
    assert "2 new leads were not queued for the duplicate check" in result.output


def test_the_olist_import_from_the_command_line(runner: CliRunner, tmp_path: Path) -> None:
    folder = tmp_path / "olist"
    folder.mkdir()
    write(
        folder / "olist_marketing_qualified_leads_dataset.csv",
        ["mql_id", "first_contact_date", "landing_page_id", "origin"],
        [
            ["m1", "2018-01-02", "p1", "paid_search"],
            ["m2", "2018-01-03", "p2", "social"],
            ["m3", "2018-01-04", "p1", ""],
        ],
    )
    write(
        folder / "olist_closed_deals_dataset.csv",
        ["mql_id", "seller_id", "won_date", "business_segment", "lead_type"],
        [["m1", "s1", "2018-02-10 10:00:00", "pet", "online_medium"]],
    )
    result = runner.invoke(app, ["import", "olist", str(folder)])
    assert result.exit_code == 0, result.output
    counts = summary(result.output)
    assert (counts["leads created"], counts["won"], counts["stage changes recorded"]) == (3, 1, 7)
    funnel = runner.invoke(
        app, ["report", "funnel", "--from", "2018-01-01", "--to", "2018-02-01", "--format", "csv"]
    )
    assert funnel.exit_code == 0, funnel.output
    row = dict(zip(*list(csv.reader(funnel.output.splitlines()))[:2], strict=True))
    assert (row["lead"], row["mql"], row["customer"]) == ("3", "3", "1")
    missing = runner.invoke(app, ["import", "olist", str(tmp_path)])
    assert missing.exit_code == 1 and "is missing" in missing.output
