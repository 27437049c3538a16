"""The command line as a user runs it: real files, a real SQLite database, exit codes."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from baton.cli import app

LEADS_CSV = """Email,First Name,Last Name,Company,Phone,Country,Lead Source,Shoe Size
dana@northwind.example.com,Dana,Reyes,Northwind,+1 415 555 0134,US,webinar,42
not-an-email,Bad,Row,Nowhere,,US,ads,40
sam@contoso.example.com,Sam,Okafor,Contoso,,USA,ads,41
lee@fabrikam.example.com,Lee,Chen,Fabrikam,+44 20 7946 0123,GB,content,
,,,Phoneless,,,,
"""

ACTIVITIES_CSV = """email,type,occurred_at,idempotency_key,url
dana@northwind.example.com,page_view,2026-03-01 10:00:00,evt-1,/pricing
dana@northwind.example.com,page_vew,2026-03-01 10:05:00,evt-2,/docs
new.person@example.org,demo_request,2026-03-01T11:00:00+01:00,evt-3,
dana@northwind.example.com,email_open,yesterday,evt-4,
"""


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("BATON_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.delenv("BATON_ENV", raising=False)
    monkeypatch.chdir(tmp_path)
    return CliRunner()


def export(runner: CliRunner, tmp_path: Path) -> list[dict[str, str]]:
    out = tmp_path / "export.csv"
    result = runner.invoke(app, ["export", "leads", "--output", str(out)])
    assert result.exit_code == 0, result.output
    with out.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_import_leads_keeps_valid_rows_and_reports_bad_ones_by_line(
    runner: CliRunner, tmp_path: Path
) -> None:
    source = tmp_path / "leads.csv"
    source.write_text(LEADS_CSV)

    result = runner.invoke(app, ["import", "leads", str(source)])

    assert result.exit_code == 1
    assert "2 rows rejected; the other 3 rows were imported" in result.output
    assert "Traceback" not in result.output
    # One row per rejected line: its number, its messages, then its own columns.
    errors = list(csv.DictReader((tmp_path / "leads.csv.errors.csv").open()))
    assert [e["baton_line"] for e in errors] == ["3", "6"]
    assert errors[0]["baton_errors"].startswith("email: ")
    assert "; (row): " in errors[0]["baton_errors"]  # and so nothing identifies the lead
    assert errors[1]["baton_errors"].startswith("(row): ")
    assert list(errors[0])[2:] == LEADS_CSV.splitlines()[0].split(",")
    assert (errors[0]["Email"], errors[0]["Shoe Size"]) == ("not-an-email", "40")
    leads = {row["email"]: row for row in export(runner, tmp_path)}
    assert set(leads) == {
        "dana@northwind.example.com",
        "sam@contoso.example.com",
        "lee@fabrikam.example.com",
    }
    assert leads["sam@contoso.example.com"]["country"] == "US"  # written "USA"
    assert leads["dana@northwind.example.com"]["phone"] == "+14155550134"
    assert leads["lee@fabrikam.example.com"]["source"] == "content"
    assert json.loads(leads["dana@northwind.example.com"]["attributes"]) == {"shoe_size": "42"}


def test_importing_the_same_file_twice_creates_nothing_new(
    runner: CliRunner, tmp_path: Path
) -> None:
    source = tmp_path / "leads.csv"
    source.write_text(LEADS_CSV)
    runner.invoke(app, ["import", "leads", str(source)])

    again = runner.invoke(app, ["import", "leads", str(source), "--errors", "again.csv"])

    assert "leads created" in again.output
    created_line = next(line for line in again.output.splitlines() if "leads created" in line)
    assert created_line.split("│")[2].strip() == "0"
    assert len(export(runner, tmp_path)) == 3


def test_column_map_option_maps_an_unusual_header(runner: CliRunner, tmp_path: Path) -> None:
    source = tmp_path / "odd.csv"
    source.write_text("Courriel,Société\nmarie@exemple.example.fr,Exemple SA\n")

    result = runner.invoke(
        app, ["import", "leads", str(source), "--map", "Courriel=email", "--map", "Société=company"]
    )

    assert result.exit_code == 0, result.output
    (lead,) = export(runner, tmp_path)
    assert (lead["email"], lead["company"]) == ("marie@exemple.example.fr", "Exemple SA")


def test_import_activities_reports_bad_rows_and_is_idempotent(
    runner: CliRunner, tmp_path: Path
) -> None:
    source = tmp_path / "events.csv"
    source.write_text(ACTIVITIES_CSV)

    first = runner.invoke(app, ["import", "activities", str(source), "--timezone", "Europe/Paris"])
    second = runner.invoke(
        app, ["import", "activities", str(source), "--errors", str(tmp_path / "e2.csv")]
    )

    assert first.exit_code == 1
    errors = list(csv.DictReader((tmp_path / "events.csv.errors.csv").open()))
    assert [(e["baton_line"], e["baton_errors"].split(":")[0]) for e in errors] == [
        ("3", "type"),
        ("5", "occurred_at"),
    ]
    assert [e["idempotency_key"] for e in errors] == ["evt-2", "evt-4"]
    stored = {
        line.split("│")[1].strip(): line.split("│")[2].strip()
        for line in first.output.splitlines()
        if line.count("│") == 3
    }
    assert stored["events stored"] == "2"
    assert stored["leads created"] == "2"
    again = {
        line.split("│")[1].strip(): line.split("│")[2].strip()
        for line in second.output.splitlines()
        if line.count("│") == 3
    }
    assert again["events stored"] == "0"
    assert again["already imported (same key)"] == "2"


def test_unknown_time_zone_is_a_readable_error(runner: CliRunner, tmp_path: Path) -> None:
    source = tmp_path / "events.csv"
    source.write_text(ACTIVITIES_CSV)

    result = runner.invoke(app, ["import", "activities", str(source), "--timezone", "Mars/Base"])

    assert result.exit_code == 1
    assert "unknown time zone" in result.output


def test_production_without_a_secret_is_refused_in_one_line(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BATON_ENV", "production")

    result = runner.invoke(app, ["init"])

    assert result.exit_code == 1
    assert "BATON_SECRET_KEY" in result.output
    assert "Traceback" not in result.output


def test_export_jsonl_has_one_lead_per_line(runner: CliRunner, tmp_path: Path) -> None:
    source = tmp_path / "leads.csv"
    source.write_text(LEADS_CSV)
    runner.invoke(app, ["import", "leads", str(source)])

    result = runner.invoke(app, ["export", "leads", "--format", "jsonl"])

    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert sorted(x["email"] for x in lines) == [
        "dana@northwind.example.com",
        "lee@fabrikam.example.com",
        "sam@contoso.example.com",
    ]
    assert all(x["stage"] == "lead" for x in lines)
