"""A person's data over HTTP and on the command line: export as JSON, erase (admins
only), a lawful basis given with a capture and with an import, and the errors each
shell gives for a bad address or a basis that cannot cover marketing email."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from tests.conftest import bearer, token_for
from typer.testing import CliRunner

from baton import cli as baton_cli
from baton.api.app import create_app
from baton.cli import app as cli
from baton.domain.access import operator
from baton.domain.leads import LeadCreate
from baton.domain.privacy import erased_key
from baton.services.context import Context
from baton.services.leads import capture_lead
from baton.services.notes import add_note
from baton.store.tables import leads, suppressions

OPS = operator("ops")
DANA = "dana.reyes@northwind.example.com"


@pytest.fixture
def api(sqlite_ctx: Context) -> Iterator[TestClient]:
    with TestClient(
        create_app(sqlite_ctx),
        raise_server_exceptions=False,
        headers=bearer(token_for(sqlite_ctx, "admin")),
    ) as client:
        yield client


def ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    return body


def test_export_and_erase_over_http(sqlite_ctx: Context, api: TestClient) -> None:
    made = ok(
        api.post(
            "/api/v1/leads",
            json={
                "email": DANA,
                "first_name": "Dana",
                "phone": "+1 415 555 0134",
                "source": "webinar",
                "consent_basis": "consent",
                "consent_source": "https://northwind.example/webinar",
            },
        ),
        201,
    )["lead"]
    assert (made["consent"], made["consent_basis"]) == (True, "consent")
    assert made["consent_source"] == "https://northwind.example/webinar"
    assert made["consent_at"] is not None and made["unsubscribed_at"] is None
    refused = problem(
        api.post("/api/v1/leads", json={"email": DANA, "consent_basis": "contract"}), 422
    )
    assert "consent_basis" in json.dumps(refused) and "6(1)(b)" in json.dumps(refused)

    document = ok(api.get("/api/v1/people/export", params={"email": DANA.upper()}))
    assert [lead["id"] for lead in document["leads"]] == [made["id"]]
    assert document["activities"][0]["type"] == "captured"
    marketing = bearer(token_for(sqlite_ctx, "marketing"))
    assert (
        api.get("/api/v1/people/export", params={"email": DANA}, headers=marketing).status_code
        == 403
    )
    bad = problem(api.get("/api/v1/people/export", params={"email": "not an address"}), 422)
    assert "email" in json.dumps(bad)

    erased = ok(api.post("/api/v1/people/erase", json={"email": DANA}))
    assert erased["leads"] == 1 and erased["suppression_key"] == erased_key(DANA)
    after = ok(api.get("/api/v1/people/export", params={"email": DANA}))
    assert after["leads"] == [] and [s["reason"] for s in after["suppressions"]] == ["erased"]
    lead = ok(api.get(f"/api/v1/leads/{made['id']}"))
    assert lead["email"] is None and lead["phone"] is None and lead["source"] == "webinar"
    assert (
        api.post("/api/v1/people/erase", json={"email": DANA}, headers=marketing).status_code == 403
    )


@pytest.fixture
def runner(sqlite_ctx: Context, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("BATON_DATABASE_URL", str(sqlite_ctx.engine.url))
    monkeypatch.delenv("BATON_ENV", raising=False)
    monkeypatch.setattr(baton_cli.console, "width", 200)
    monkeypatch.chdir(tmp_path)
    return CliRunner()


def test_export_and_erase_on_the_command_line(
    sqlite_ctx: Context, runner: CliRunner, tmp_path: Path
) -> None:
    lead = capture_lead(sqlite_ctx, LeadCreate(email=DANA, last_name="Reyes"), actor=OPS).lead
    add_note(sqlite_ctx, lead.id, "Dana prefers email", actor=OPS)

    out = tmp_path / "dana.json"
    result = runner.invoke(cli, ["person", "export", DANA, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "wrote" in result.output
    document = json.loads(out.read_text())
    assert document["notes"][0]["body"] == "Dana prefers email"
    shown = runner.invoke(cli, ["person", "export", DANA])
    assert json.loads(shown.output)["leads"][0]["last_name"] == "Reyes"

    bad = runner.invoke(cli, ["person", "export", "nope"])
    assert bad.exit_code == 1 and "EMAIL" in bad.output and "valid email" in bad.output

    kept = runner.invoke(cli, ["person", "erase", DANA], input="n\n")
    assert kept.exit_code == 1 and "nothing erased" in kept.output
    erased = runner.invoke(cli, ["person", "erase", DANA, "--yes"])
    assert erased.exit_code == 0, erased.output
    assert "erased: 1 lead(s)" in erased.output and "1 notes" in erased.output
    with sqlite_ctx.read() as connection:
        row = connection.execute(select(leads).where(leads.c.id == lead.id)).mappings().one()
        reasons = list(connection.execute(select(suppressions.c.reason)).scalars())
    assert row["email"] is None and row["last_name"] is None and reasons == ["erased"]


def test_an_import_records_the_files_lawful_basis(
    sqlite_ctx: Context, runner: CliRunner, tmp_path: Path
) -> None:
    csv = tmp_path / "webinar.csv"
    csv.write_text(
        "Email,Opt In\nann@acme.example,yes\nbob@acme.example,no\ncy@acme.example,\n",
        encoding="utf-8",
    )
    wrong = runner.invoke(cli, ["import", "leads", str(csv), "--consent-basis", "contract"])
    assert wrong.exit_code == 1 and "--consent-basis" in wrong.output and "6(1)(b)" in wrong.output
    result = runner.invoke(cli, ["import", "leads", str(csv), "--consent-basis", "consent"])
    assert result.exit_code == 0, result.output
    with sqlite_ctx.read() as connection:
        found = {
            r["email"]: (r["consent"], r["consent_basis"], r["consent_source"], r["consent_at"])
            for r in connection.execute(select(leads)).mappings()
        }
    assert found["ann@acme.example"][:3] == (True, "consent", "import webinar.csv")
    assert found["cy@acme.example"][:3] == (True, "consent", "import webinar.csv")
    assert found["bob@acme.example"][:3] == (False, None, "import webinar.csv")
    assert all(f[3] is not None for f in found.values())
