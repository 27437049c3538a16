"""Event badge scans (issue 14, item 3), on SQLite and PostgreSQL, from generated CSV
files: hot → a hand-raise routed to a rep, cold → nurture (only from ``lead``), warm →
recorded; who scanned by email or name; row errors (unknown rep, unknown rating with
"did you mean") with line numbers; a re-import records nothing twice. And the CLI:
progress, the errors file mended and imported as it is.

Time: the ``clock`` fixture, Monday 2026-03-02 09:00 UTC; Ana works around the clock.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from baton.cli import app
from baton.domain.access import operator
from baton.domain.activities import ActivityCreate
from baton.domain.leads import LeadCreate
from baton.domain.reps import RepCreate, TeamCreate
from baton.domain.scans import read_rating, resolve_rep, split_name
from baton.services import contracts as contract_service
from baton.services import reps as rep_service
from baton.services.activities import ingest_activity
from baton.services.calls import open_handoff_of
from baton.services.context import Context
from baton.services.leads import capture_lead
from baton.services.scans import import_scans
from baton.store.tables import activities, leads

EXAMPLE = (Path(__file__).parents[2] / "contracts" / "example.yaml").read_text()
OP = operator("test")
ALWAYS = {d: ["00:00-24:00"] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
HEADER = ["Full Name", "Email", "Phone", "Company", "Title", "Country", "Scanned By",
          "Rating", "Notes", "Scanned At", "Interest"]  # fmt: skip
ROWS = [
    # line 2: hot, by email: handed off to Ana
    ["Dana Reyes", "dana@northwind.com", "", "Northwind", "VP Ops", "US",
     "ana@lumen.example", "HOT", "wants a demo", "2026-03-01 14:05", "dashboards"],
    # line 3: warm, "Last, First", by name in another case
    ["Reyes, Lee", "lee@contoso.com", "", "Contoso", "Analyst", "Atlantis",
     "ana ruiz", "warm", "", "2026-03-01 15:00", ""],
    # line 4: cold, phone only: nurture
    ["Kim Park", "", "+1 415 555 0199", "Fabrikam", "", "US",
     "Ana Ruiz", "Cold", "student", "2026-03-01 16:00", ""],
    # line 5: a typo in the rating
    ["Sam Typo", "sam@typo.example.com", "", "", "", "",
     "ana@lumen.example", "hto", "", "2026-03-01 16:30", ""],
    # line 6: an unknown rep
    ["Zed Zero", "zed@zero.example.com", "", "", "", "",
     "zed@lumen.example", "warm", "", "2026-03-01 17:00", ""],
    # line 7: cold, but already an MQL in sales' hands: stays, with a warning
    ["Mia Held", "mia@held.example.com", "", "Held", "", "US",
     "ana@lumen.example", "cold", "", "2026-03-01 17:30", ""],
]  # fmt: skip


def write_csv(path: Path, rows: list[list[str]], header: list[str] = HEADER) -> Path:
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def floor(ctx: Context) -> None:
    version = contract_service.create_contract(ctx, EXAMPLE, actor=OP).version
    contract_service.approve_contract(ctx, version, role="marketing", actor=operator("maria"))
    contract_service.approve_contract(ctx, version, role="sales", actor=operator("sam"))
    contract_service.activate_contract(ctx, version, actor=OP)
    rep_service.create_team(ctx, TeamCreate(name="na"), actor=OP)
    rep_service.create_rep(
        ctx,
        RepCreate(email="ana@lumen.example", name="Ana Ruiz", team="na", working_hours=ALWAYS),
        actor=OP,
    )


def mia_is_an_mql(ctx: Context) -> int:
    data = LeadCreate(email="mia@held.example.com", company="Held", country="US")
    lead_id = capture_lead(ctx, data, actor=OP).lead.id
    ingest_activity(
        ctx, ActivityCreate(email="mia@held.example.com", type="demo_request"), actor=OP
    )
    return lead_id


def count(ctx: Context, table: object, *where: object) -> int:
    with ctx.read() as connection:
        return int(
            connection.execute(select(func.count()).select_from(table).where(*where)).scalar_one()
        )  # type: ignore[arg-type]


def lead_of(ctx: Context, **where: str) -> dict[str, object]:
    with ctx.read() as connection:
        query = select(leads)
        for name, value in where.items():
            query = query.where(leads.c[name] == value)
        return dict(connection.execute(query).mappings().one())


def test_a_booth_file_becomes_hand_raises_nurture_and_row_errors(
    ctx: Context, tmp_path: Path
) -> None:
    floor(ctx)
    mia = mia_is_an_mql(ctx)
    source = write_csv(tmp_path / "saastr.csv", ROWS)
    steps: list[tuple[str, int, int]] = []
    report = import_scans(
        ctx,
        source,
        event="SaaStr  2026",
        actor=OP,
        naive_timezone="America/Los_Angeles",
        progress=lambda *step: steps.append(step),
    )
    assert steps[-1] == ("writing", 4, 4)
    assert (report.rows, report.imported, report.rejected) == (6, 4, 2)
    assert (report.created, report.updated, report.stored) == (3, 1, 4)
    assert (report.hot, report.warm, report.cold, report.nurtured, report.mql) == (1, 1, 2, 1, 1)
    problems = {(e.row, e.field): e.message for e in report.errors}
    assert "did you mean 'hot'" in problems[(5, "rating")]
    assert "zed@lumen.example" in problems[(6, "scanned_by")]
    warned = {(w.row, w.field) for w in report.warnings}
    assert (3, "country") in warned and (7, "rating") in warned

    dana = lead_of(ctx, email="dana@northwind.com")
    assert (dana["stage"], dana["source"], dana["campaign"]) == ("mql", "event", "SaaStr 2026")
    with ctx.read() as connection:
        handoff = open_handoff_of(connection, int(str(dana["id"])))
        scan = connection.execute(
            select(activities.c.properties, activities.c.occurred_at).where(
                activities.c.lead_id == dana["id"], activities.c.type == "event_booth_scan"
            )
        ).one()
    assert handoff is not None and handoff.rep_email == "ana@lumen.example"
    assert scan.properties == {
        "event": "SaaStr 2026",
        "rating": "hot",
        "scanned_by": "ana@lumen.example",
        "scanned_by_name": "Ana Ruiz",
        "notes": "wants a demo",
        "interest": "dashboards",
    }
    assert scan.occurred_at.isoformat() == "2026-03-01T22:05:00+00:00"  # 14:05 in LA
    lee = lead_of(ctx, email="lee@contoso.com")
    assert (lee["first_name"], lee["last_name"], lee["stage"]) == ("Lee", "Reyes", "lead")
    assert lead_of(ctx, phone="+14155550199")["stage"] == "nurture"
    assert lead_of(ctx, email="mia@held.example.com")["stage"] == "mql"
    assert count(ctx, activities, activities.c.type == "event_hot_scan") == 1

    before = count(ctx, activities)
    again = import_scans(ctx, source, event="saastr 2026", actor=OP,
                         naive_timezone="America/Los_Angeles")  # fmt: skip
    assert (again.duplicates, again.stored, again.created, again.mql) == (4, 0, 0, 0)
    assert count(ctx, activities) == before
    assert mia  # the MQL made before the import stayed where it was


def test_the_rules_of_a_row() -> None:
    assert read_rating(" Warm ") == "warm"
    with pytest.raises(ValueError, match="did you mean 'cold'"):
        read_rating("clod")
    assert split_name("Reyes, Dana") == ("Dana", "Reyes")
    assert split_name("Dana  van Reyes") == ("Dana", "van Reyes")
    from baton.domain.scans import RosterRep

    roster = [RosterRep(1, "ana@x.example", "Ana Ruiz"), RosterRep(2, "an2@x.example", "Ana Ruiz")]
    assert resolve_rep("ANA@x.example", roster).id == 1
    with pytest.raises(ValueError, match="several reps"):
        resolve_rep("ana ruiz", roster)
    with pytest.raises(ValueError, match="did you mean 'Ana Ruiz'"):
        resolve_rep("Ana Ruis", roster[:1])


def test_the_cli_writes_the_errors_file_and_the_mended_file_imports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BATON_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.delenv("BATON_ENV", raising=False)
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    for args in (
        ["team", "add", "na"],
        ["rep", "add", "ana@lumen.example", "--name", "Ana Ruiz", "--team", "na"],
    ):
        assert runner.invoke(app, args).exit_code == 0
    source = write_csv(tmp_path / "booth.csv", ROWS[:2] + ROWS[3:5])
    result = runner.invoke(app, ["import", "scans", str(source), "--event", "SaaStr 2026"])
    assert result.exit_code == 1, result.output
    assert "scans recorded" in result.stdout and "did you mean 'hot'" in result.output
    errors = tmp_path / "booth.csv.errors.csv"
    rows = list(csv.reader(io.StringIO(errors.read_text(encoding="utf-8"))))
    assert [r[0] for r in rows[1:]] == ["4", "5"]
    # Columns: baton_line, baton_errors, Full Name ... Scanned By (8), Rating (9) ...
    mended = [
        [*r[:8], "ana@lumen.example", "hot" if r[9] == "hto" else r[9], *r[10:]] for r in rows
    ]
    write_csv(errors, mended[1:], mended[0])
    again = runner.invoke(app, ["import", "scans", str(errors), "--event", "SaaStr 2026"])
    assert again.exit_code == 0, again.output
    assert "hot" in again.stdout
