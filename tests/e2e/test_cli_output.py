"""What the command line prints, as an operator at an 80-column terminal reads it: every
report fits without a wrapped cell and covers the last 30 days unless told otherwise;
errors name the option typed (``--until``), never the API's field (``ends_at``); times
are in the operator's zone (``BATON_TIMEZONE``, else the machine's) with its label.

The data is the small day of handoffs of the report tests (Monday 2 March 2026, from
09:00 UTC) in a SQLite file; the CLI's clock is pinned where a test needs "today"."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from rich.cells import cell_len
from tests.conftest import START, bearer, token_for
from tests.e2e.test_reports_api_cli import seed
from typer.testing import CliRunner

import baton.services.context as service_context
from baton.api.app import create_app
from baton.cli import app, console
from baton.cli.reports import _cell
from baton.config import Settings
from baton.domain.clock import ManualClock
from baton.services.context import open_context

REPORTS = ("funnel", "velocity", "speed", "sla", "rejections", "credit", "cost")
PERIOD = ("--from", "2026-03-01", "--to", "2026-04-01", "--tz", "Europe/Paris")


@pytest.fixture(scope="module")
def day_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The seeded day in a SQLite file, made once for the module (tests only read it)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('day') / 'day.db'}"
    ctx = open_context(Settings(database_url=url, env="test"), clock=ManualClock(current=START))
    try:
        with TestClient(create_app(ctx), headers=bearer(token_for(ctx, "admin"))) as client:
            seed(client, ctx)
    finally:
        ctx.engine.dispose()
    return url


@pytest.fixture
def cli(day_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    """The CLI on the seeded day, 80 columns wide, in UTC unless a test says otherwise."""
    monkeypatch.setenv("BATON_DATABASE_URL", day_db)
    monkeypatch.delenv("BATON_ENV", raising=False)
    monkeypatch.setenv("BATON_TIMEZONE", "UTC")
    monkeypatch.setattr(console, "width", 80)
    monkeypatch.chdir(tmp_path)
    return CliRunner()


@pytest.fixture
def today(monkeypatch: pytest.MonkeyPatch) -> Iterator[ManualClock]:
    """The CLI's clock, pinned (its contexts get this clock instead of the wall's)."""
    clock = ManualClock(current=START + timedelta(days=1))
    real = service_context.open_context

    def pinned(settings: Settings, **options: Any) -> Any:
        return real(settings, **{**options, "clock": clock})

    monkeypatch.setattr(service_context, "open_context", pinned)
    yield clock


def run(runner: CliRunner, *args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, (args, result.output)
    return result.output


def refused(runner: CliRunner, *args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 1, (args, result.output)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]


# --- reports fit 80 columns ------------------------------------------------------------


_BOX = re.compile(r"[\s│┃┏┓┗┛━┡┩╇┳┻└┘─┼┬┴╋]+")


def _words(report: dict[str, Any]) -> set[str]:
    """Every word of every name and figure of a report's JSON, as the CLI writes it."""
    found: set[str] = set()
    for row in [*report["rows"], report.get("recycled") or {}, report.get("gap") or {}]:
        for key, value in row.items():
            if "→" in key:  # the funnel's conversions: "(50.0%)" beside the count
                if value is not None:
                    shown = _cell(key, value)
                    found.add(shown if key == "lead→customer" else f"({shown})")
                continue
            if key not in ("group", "code", "from_stage", "to_stage"):
                found |= set(key.split("_"))  # names of figures (rows name themselves)
            if not (key == "group" and value is None):
                found |= set(_cell(key, value).split())
    return found


@pytest.mark.parametrize("command", REPORTS)
@pytest.mark.parametrize("grouping", [(), ("--group-by", "source"), ("--group-by", "campaign")])
def test_every_report_fits_80_columns_without_a_wrapped_cell(
    cli: CliRunner, command: str, grouping: tuple[str, ...]
) -> None:
    shown = run(cli, "report", command, *PERIOD, *grouping)
    data = json.loads(run(cli, "report", command, *PERIOD, *grouping, "--format", "json"))

    too_wide = [line for line in shown.splitlines() if cell_len(line) > 80]
    assert not too_wide, shown
    # A wrapped cell splits its text over two lines ("opportuni" / "ty"): every word of
    # every name and figure must be on the screen whole.
    expected = _words(data)
    assert len(expected) > 8
    on_screen = {word.removesuffix(":") for word in _BOX.split(shown)}
    assert not expected - on_screen, (sorted(expected - on_screen), shown)
    # Each table row is one line: no line of a table body starts with an empty cell
    # (what a cell wrapped onto the next line leaves behind).
    for line in shown.splitlines():
        if line.startswith("│"):
            assert line.split("│")[1].strip(), (line, shown)


def test_reports_without_a_period_cover_the_last_30_days_and_say_so(
    cli: CliRunner, today: ManualClock
) -> None:
    # The day's leads came on 2 March; "today" is 3 March (UTC), so the last 30 days,
    # today included, are 2 February to 3 March: 2026-02-02 up to 2026-03-04 exclusive.
    data = json.loads(run(cli, "report", "funnel", "--format", "json"))
    assert (data["period"]["from"], data["period"]["to"]) == ("2026-02-02", "2026-03-04")
    assert data["rows"][0]["lead"] == 4
    for command in REPORTS:
        shown = run(cli, "report", command)
        assert "the last 30 days, 2026-02-02 → 2026-03-04 (exclusive) in UTC" in shown, shown

    # Only --to: the 30 days before it; only --from: up to today, included.
    data = json.loads(run(cli, "report", "sla", "--to", "2026-03-02", "--format", "json"))
    assert (data["period"]["from"], data["period"]["to"]) == ("2026-01-31", "2026-03-02")
    data = json.loads(run(cli, "report", "sla", "--from", "2026-03-01", "--format", "json"))
    assert (data["period"]["from"], data["period"]["to"]) == ("2026-03-01", "2026-03-04")

    # "Today" is the day in --tz: at 12:00 UTC on 3 March it is already 4 March in Kiritimati.
    today.set(datetime(2026, 3, 3, 12, tzinfo=UTC))
    data = json.loads(run(cli, "report", "sla", "--tz", "Pacific/Kiritimati", "--format", "json"))
    assert (data["period"]["from"], data["period"]["to"]) == ("2026-02-03", "2026-03-05")


# --- errors name the options typed -----------------------------------------------------


def test_a_report_given_from_after_to_names_the_options(cli: CliRunner, today: ManualClock) -> None:
    assert refused(cli, "report", "velocity", "--from", "2026-03-10", "--to", "2026-03-01") == (
        "error: --to must be after --from (--to is exclusive): got --from 2026-03-10 "
        "--to 2026-03-01"
    )
    # Without --to the period ends tomorrow, which a future --from is after.
    assert refused(cli, "report", "funnel", "--from", "2026-05-01") == (
        "error: --to must be after --from (--to is exclusive): got --from 2026-05-01 "
        "--to 2026-03-04 (tomorrow)"
    )
    assert refused(cli, "report", "sla", "--tz", "Mars/Olympus").startswith(
        "error: --tz: unknown time zone 'Mars/Olympus'"
    )


def test_input_errors_name_the_option_or_argument_typed(cli: CliRunner) -> None:
    # A rule across two fields: "ends_at must be after starts_at" in the API.
    assert refused(
        cli,
        "rep",
        "away",
        "ana@lumen.example",
        "--from",
        "2026-03-05T00:00:00Z",
        "--until",
        "2026-03-04T00:00:00Z",
    ) == ("error: --until must be after --from")
    # One field: the team's name is the NAME argument here, not a --name option.
    bad_name = refused(cli, "team", "add", "bad/name")
    assert bad_name.startswith("error: NAME: "), bad_name
    assert "name" not in bad_name.removeprefix("error: NAME: ")
    # A field of the service's own checks: the token's user is --user, its scopes --scope.
    bad_scope = refused(cli, "token", "add", "ci", "--user", "x@example.com", "--scope", "eat:all")
    assert bad_scope.startswith("error: --scope"), bad_scope
    assert "scopes" not in bad_scope
    assert refused(cli, "rep", "add", "ben@lumen.example", "--name", "Ben", "--capacity", "-1") == (
        "error: --capacity: Input should be greater than or equal to 0"
    )


# --- times in the operator's zone, labelled --------------------------------------------


def test_times_are_shown_in_baton_timezone_with_its_label(
    cli: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(console, "width", 200)  # whole rows on one line
    monkeypatch.setenv("BATON_TIMEZONE", "Europe/Paris")
    # Dana's MQL came at 09:00 UTC, 10:00 in Paris (CET in March).
    shown = run(cli, "handoff", "show", "1")
    assert "MQL at:       2026-03-02 10:00 CET" in shown, shown
    assert re.search(r"│ 1 +│ \d+ +│ accepted .*2026-03-02 10:00 CET", run(cli, "handoff", "list"))
    outbox = run(cli, "outbox", "list")
    assert re.search(r"2026-03-02 1\d:\d\d CET", outbox), outbox
    assert " UTC" not in outbox

    monkeypatch.setenv("BATON_TIMEZONE", "America/New_York")
    assert "MQL at:       2026-03-02 04:00 EST" in run(cli, "handoff", "show", "1")
    packet = run(cli, "handoff", "packet", "1")
    assert "EST" in packet and "CET" not in packet, packet

    monkeypatch.setenv("BATON_TIMEZONE", "Mars/Olympus")
    assert refused(cli, "handoff", "list").startswith(
        "error: invalid configuration: BATON_TIMEZONE: unknown time zone 'Mars/Olympus'"
    )


@pytest.mark.parametrize(
    "command",
    [("handoff", "list"), ("handoff", "show", "1"), ("outbox", "list"), ("token", "list")],
)
def test_lists_at_80_columns_never_cut_a_time(
    cli: CliRunner, monkeypatch: pytest.MonkeyPatch, command: tuple[str, ...]
) -> None:
    monkeypatch.setenv("BATON_TIMEZONE", "Europe/Paris")
    shown = run(cli, *command)
    assert all(cell_len(line) <= 80 for line in shown.splitlines()), shown
    dates = re.findall(r"\d{4}-\d\d-\d\d", shown)
    whole = re.findall(r"\d{4}-\d\d-\d\d \d\d:\d\d CET\b", shown)
    assert dates and len(whole) == len(dates), shown


def test_unset_the_machines_zone_is_used(cli: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BATON_TIMEZONE")
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    try:
        assert "MQL at:       2026-03-02 18:00 JST" in run(cli, "handoff", "show", "1")
    finally:
        monkeypatch.undo()
        time.tzset()


def test_report_csv_goes_through_the_export_path_and_guards_formula_cells(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A campaign named like a spreadsheet formula is a text cell in ``--format csv``,
    as in every other download (``'=`` …), and the rest of the row is unchanged."""
    url = f"sqlite:///{tmp_path / 'hostile.db'}"
    ctx = open_context(Settings(database_url=url, env="test"), clock=ManualClock(current=START))
    try:
        with TestClient(create_app(ctx), headers=bearer(token_for(ctx, "admin"))) as client:
            lead = {"email": "x@northwind.example.com", "source": "ads", "campaign": "=1+2"}
            assert client.post("/api/v1/leads", json=lead).status_code == 201
    finally:
        ctx.engine.dispose()
    monkeypatch.setenv("BATON_DATABASE_URL", url)
    monkeypatch.setenv("BATON_TIMEZONE", "UTC")
    out = run(CliRunner(), "report", "funnel", *PERIOD, "--group-by", "campaign", "--format", "csv")
    groups = [line.split(",")[0] for line in out.splitlines()[1:]]
    assert "'=1+2" in groups, out
    assert "=1+2" not in groups


def test_worker_help_names_the_nurture_lane(cli: CliRunner) -> None:
    shown = cli.invoke(app, ["worker", "--help"], env={"COLUMNS": "200"})
    assert shown.exit_code == 0 and "due nurture steps" in shown.output, shown.output
