"""Reps and teams from CSV (issue 14, item 5), on SQLite and PostgreSQL: teams created
as needed, hours, territories and segments read from cells, row errors with line
numbers, a re-import that changes what changed (and routing sees it), admins only."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from tests.conftest import principal_for

from baton.domain.access import operator
from baton.domain.errors import Forbidden
from baton.domain.rep_rows import parse_hours_text
from baton.services.context import Context
from baton.services.rep_import import import_reps
from baton.services.reps import find_rep, list_teams, routing_reps

OP = operator("test")
HEADER = ["Email", "Name", "Team", "Time Zone", "Hours", "Capacity", "Territories",
          "Segment", "Manager", "Active", "Desk"]  # fmt: skip


def write(path: Path, rows: list[list[str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(HEADER)
        writer.writerows(rows)
    return path


def test_a_roster_file_adds_then_changes_reps_and_teams(ctx: Context, tmp_path: Path) -> None:
    first = write(
        tmp_path / "reps.csv",
        [
            ["ana@lumen.example", "Ana Ruiz", "na", "America/New_York",
             "mon-fri=09:00-12:00,13:00-17:00; sat=10:00-14:00", "15", "US; CA",
             "smb|mid", "sam@lumen.example", "yes", "3F"],
            ["emil@lumen.example", "Emil Berg", "emea", "Europe/Berlin", "", "", "DE, AT",
             "", "", "", ""],
            ["bad@lumen.example", "Bad Hours", "na", "Mars/Base", "mon-fri=9-5", "-3", "",
             "", "", "maybe", ""],
            ["", "No Email", "na", "", "", "", "", "", "", "", ""],
            ["new@lumen.example", "", "na", "", "", "", "", "", "", "", ""],
        ],
    )  # fmt: skip
    report = import_reps(ctx, first, actor=OP)
    assert (report.rows, report.created, report.teams_created, report.rejected) == (5, 2, 2, 3)
    problems = {(e.row, e.field) for e in report.errors}
    assert (4, "active") in problems  # the first bad cell read stops the row
    assert (5, "email") in problems and (6, "name") in problems
    assert report.extra_columns == ["Desk"]
    ana = find_rep(ctx, "ana@lumen.example", actor=OP)
    assert (ana.team, ana.timezone, ana.capacity) == ("na", "America/New_York", 15)
    assert ana.working_hours["mon"] == ["09:00-12:00", "13:00-17:00"]
    assert ana.working_hours["sat"] == ["10:00-14:00"] and not ana.working_hours.get("sun")
    assert (ana.countries, ana.segments, ana.manager_email) == (
        ["CA", "US"],
        ["mid", "smb"],
        "sam@lumen.example",
    )
    emil = find_rep(ctx, "emil@lumen.example", actor=OP)
    assert (emil.team, emil.capacity, emil.countries, emil.active) == (
        "emea",
        20,
        ["AT", "DE"],
        True,
    )
    assert sorted(t.name for t in list_teams(ctx, actor=OP)) == ["emea", "na"]

    with ctx.read() as connection:
        assert {r.email for r in routing_reps(connection)} >= {"ana@lumen.example"}
    again = write(
        tmp_path / "again.csv",
        [
            ["ANA@lumen.example", "", "emea", "", "", "25", "", "", "-", "no", ""],
            ["emil@lumen.example", "Emil Berg", "emea", "Europe/Berlin", "", "", "DE;AT",
             "", "", "", ""],
        ],
    )  # fmt: skip
    second = import_reps(ctx, again, actor=OP)
    assert (second.created, second.updated, second.unchanged, second.teams_created) == (0, 1, 1, 0)
    ana = find_rep(ctx, "ana@lumen.example", actor=OP)
    assert (ana.team, ana.capacity, ana.manager_email, ana.active) == ("emea", 25, None, False)
    assert ana.timezone == "America/New_York"  # blank cells leave settings as they are
    with ctx.read() as connection:
        active = {r.email: r for r in routing_reps(connection)}
    assert "ana@lumen.example" not in active or not active["ana@lumen.example"].active


def test_only_admins_import_reps(ctx: Context, tmp_path: Path) -> None:
    source = write(
        tmp_path / "r.csv", [["x@lumen.example", "X", "", "", "", "", "", "", "", "", ""]]
    )
    with pytest.raises(Forbidden):
        import_reps(ctx, source, actor=principal_for(ctx, "marketing"))
    assert import_reps(ctx, source, actor=principal_for(ctx, "admin")).created == 1


def test_hours_cells() -> None:
    assert parse_hours_text("mon-fri 09:00-17:00; sat 10:00-14:00") == {
        **{d: ["09:00-17:00"] for d in ("mon", "tue", "wed", "thu", "fri")},
        "sat": ["10:00-14:00"],
    }
    for bad, words in (("fun=09:00-17:00", "unknown day"), ("fri-mon=09:00-17:00", "backwards"),
                       ("whenever", "cannot read")):  # fmt: skip
        with pytest.raises(ValueError, match=words):
            parse_hours_text(bad)
