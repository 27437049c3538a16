"""Possible duplicates reviewed in bulk, as marketing does it: the queue narrowed by
reason and similarity, a dry run that counts, a dismissal by filter or by ids, and
requests that would say nothing refused; over HTTP and on the command line."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from tests.conftest import bearer, token_for
from typer.testing import CliRunner

from baton import cli as baton_cli
from baton.api.app import create_app
from baton.cli import app as cli
from baton.cli._output import when
from baton.services.context import Context
from baton.services.worker import check_duplicates

DUPLICATES = "/api/v1/duplicates"
LEADS = "/api/v1/leads"
PEOPLE = [
    {"email": "dana@northwind.com", "phone": "202-456-1111", "first_name": "Dana"},
    {"email": "dana.reyes@gmail.com", "phone": "(202) 456 1111", "first_name": "D."},
    {"email": "jsmith@acme.io", "first_name": "Jonathan", "last_name": "Smith", "company": "Acme"},
    {"email": "jon@gmail.com", "first_name": "Jonathon", "last_name": "Smith", "company": "Acme"},
]


@pytest.fixture
def api(sqlite_ctx: Context) -> Iterator[TestClient]:
    with TestClient(
        create_app(sqlite_ctx),
        raise_server_exceptions=False,
        headers=bearer(token_for(sqlite_ctx, "marketing")),
    ) as client:
        yield client


def ok(response: Any) -> Any:
    assert response.status_code == 200, response.text
    return response.json()


def problem(response: Any) -> dict[str, Any]:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    found: dict[str, Any] = response.json()
    return found


def test_bulk_dismissal_over_http(api: TestClient, sqlite_ctx: Context) -> None:
    for person in PEOPLE:
        assert api.post(LEADS, json=person).json()["duplicates"] == "pending"
    assert ok(api.get(DUPLICATES)) == []
    check_duplicates(sqlite_ctx)  # the worker's lane
    [phone] = ok(api.get(DUPLICATES, params={"reason": "phone"}))
    [similar] = ok(api.get(DUPLICATES, params={"similarity_below": 95}))
    assert similar["reason"] == "similar name and company"

    empty = problem(api.post(f"{DUPLICATES}/dismiss", json={}))
    assert "say which pairs" in str(empty["errors"])
    bogus = problem(api.post(f"{DUPLICATES}/dismiss", json={"reason": "same name"}))
    assert "phone, mailbox, email_domain, company" in bogus["errors"][0]["message"]
    backwards = {"created_since": "2026-03-03T00:00:00Z", "created_before": "2026-03-02T00:00:00Z"}
    problem(api.get(DUPLICATES, params=backwards))

    dry = ok(api.post(f"{DUPLICATES}/dismiss", json={"similarity_below": 95, "dry_run": True}))
    assert dry == {
        "matched": 1,
        "dismissed": 0,
        "dry_run": True,
        "sample": [similar["id"]],
        "skipped": [],
    }
    assert len(ok(api.get(DUPLICATES))) == 2
    done = ok(api.post(f"{DUPLICATES}/dismiss", json={"ids": [similar["id"], phone["id"], 999]}))
    assert (done["matched"], done["dismissed"], done["skipped"]) == (2, 2, [999])
    assert ok(api.get(DUPLICATES)) == []
    assert len(ok(api.get(DUPLICATES, params={"status": "dismissed"}))) == 2


@pytest.fixture
def runner(sqlite_ctx: Context, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> CliRunner:
    monkeypatch.setenv("BATON_DATABASE_URL", str(sqlite_ctx.engine.url))
    monkeypatch.delenv("BATON_ENV", raising=False)
    monkeypatch.setattr(baton_cli.console, "width", 200)  # whole rows on one line
    monkeypatch.chdir(tmp_path)
    return CliRunner()


def test_bulk_dismissal_on_the_command_line(
    sqlite_ctx: Context, api: TestClient, runner: CliRunner
) -> None:
    for person in PEOPLE:
        api.post(LEADS, json=person)
    check_duplicates(sqlite_ctx)

    def run(*args: str, code: int = 0) -> str:
        result = runner.invoke(cli, ["duplicates", *args])
        assert result.exit_code == code, (args, result.output)
        return result.output

    listing = run("list")
    assert "2 open pairs match; 2 shown" in listing
    assert "phone" in listing and "company" in listing
    assert "1 open pair matches; 1 shown" in run("list", "--below", "95")
    assert "no open pairs match" in run("list", "--reason", "email_domain")
    assert "say which pairs" in run("dismiss", code=1)
    assert "--before must be after --since" in run(
        "dismiss", "--since", "2026-03-03", "--before", "2026-03-02", code=1
    )
    assert "--below" in run("dismiss", "--below", "101", code=1)

    assert run("dismiss", "--reason", "phone", "--dry-run").startswith(
        "would dismiss 1 open pair (dry run: nothing changed)"
    )
    assert run("dismiss", "--reason", "phone").startswith("dismissed 1 of 1 open pair")
    assert "1 open pair matches" in run("list")
    [left] = ok(api.get(DUPLICATES))
    out = run("dismiss", str(left["id"]), "12345")
    assert out.startswith("dismissed 1 of 1 open pair")
    assert "left alone: 12345" in out
    assert "no open pairs" in run("list")
    assert "2 dismissed pairs match" in run("list", "--status", "dismissed")


def test_the_queue_says_who_the_two_leads_are_and_why(
    sqlite_ctx: Context, api: TestClient, runner: CliRunner
) -> None:
    """A reviewer decides from the list: each lead's name, email, phone, company, stage
    and when it was captured, and why the pair was flagged (the reason in words and its
    code), over HTTP and on the command line; the pair's fields as they were stay."""
    for person in PEOPLE:
        api.post(LEADS, json=person)
    check_duplicates(sqlite_ctx)
    [pair] = ok(api.get(DUPLICATES, params={"reason": "company"}))
    assert {"id", "lead_id", "other_lead_id", "similarity", "status", "created_at"} <= set(pair)
    assert (pair["reason"], pair["reason_code"]) == ("similar name and company", "company")
    assert pair["lead"] == {
        "id": pair["lead_id"],
        "name": "Jonathon Smith",
        "email": "jon@gmail.com",
        "phone": None,
        "company": "Acme",
        "stage": "lead",
        "created_at": pair["lead"]["created_at"],
    }
    assert (pair["other_lead"]["id"], pair["other_lead"]["name"]) == (
        pair["other_lead_id"],
        "Jonathan Smith",
    )
    assert pair["other_lead"]["email"] == "jsmith@acme.io"

    listing = runner.invoke(cli, ["duplicates", "list", "--reason", "company"]).output
    for shown in ("Jonathon Smith", "jon@gmail.com", "Jonathan Smith", "jsmith@acme.io"):
        assert shown in listing, listing
    assert "Acme" in listing and "similar name and company" in listing
    for lead in (pair["lead"], pair["other_lead"]):  # how far along, and since when
        captured = when(datetime.fromisoformat(lead["created_at"].replace("Z", "+00:00")))
        assert f"{lead['stage']}, captured {captured}" in listing, listing
    phone = runner.invoke(cli, ["duplicates", "list", "--reason", "phone"]).output
    assert "+12024561111" in phone and "(no name)" not in phone and "D." in phone
