"""Handoffs on the command line as a sales manager and a rep run them: a real SQLite
file, the wall clock, readable output and one-line errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from baton.cli import app

EXAMPLE = Path(__file__).parents[2] / "contracts" / "example.yaml"
ANA, BEN, SAM = "ana@lumen.example", "ben@lumen.example", "sam@lumen.example"
ALWAYS = "mon-sun=00:00-24:00"
"""Working hours that include whenever the test runs (the CLI reads the wall clock)."""


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("BATON_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.delenv("BATON_ENV", raising=False)
    monkeypatch.setenv("BATON_TIMEZONE", "UTC")  # times printed as on a server in UTC
    monkeypatch.chdir(tmp_path)
    return CliRunner()


def run(runner: CliRunner, *args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, (args, result.output)
    return result.output


def refused(runner: CliRunner, *args: str) -> str:
    """Run a command that must fail with exactly one readable line and exit code 1."""
    result: Result = runner.invoke(app, list(args))
    assert result.exit_code == 1, (args, result.output)
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith("error: ")
    return lines[0]


@pytest.fixture
def floor(runner: CliRunner) -> CliRunner:
    """The example contract signed and active; team na (where US leads go) managed by
    Sam, with Ana in it, working around the clock."""
    run(runner, "contract", "create", str(EXAMPLE), "--actor", "maria")
    run(runner, "contract", "approve", "1", "--role", "marketing", "--actor", "maria")
    run(runner, "contract", "approve", "1", "--role", "sales", "--actor", "sam")
    run(runner, "contract", "activate", "1")
    assert run(runner, "team", "add", "na", "--manager", SAM) == (
        f"team na created (id 1), manager {SAM}\n"
    )
    added = run(runner, "rep", "add", ANA, "--name", "Ana Silva", "--team", "na", "--hours", ALWAYS)
    assert added == (
        f"rep 1 added: {ANA} (Ana Silva): team na, UTC, mon-sun 00:00-24:00, available, "
        "0/20 open handoffs\n"
    )
    return runner


def hand_raise(runner: CliRunner, tmp_path: Path) -> None:
    """A US decision-maker from Northwind asks for a demo now: an MQL at once."""
    leads = tmp_path / "leads.csv"
    leads.write_text(
        "Email,First Name,Company,Country,Title\n"
        "dana@northwind.example.com,Dana,Northwind,US,VP Operations\n"
    )
    now = datetime.now(UTC).isoformat(timespec="seconds")
    events = tmp_path / "events.csv"
    events.write_text(
        f"email,type,occurred_at,idempotency_key\ndana@northwind.example.com,demo_request,{now},e1\n"
    )
    run(runner, "import", "leads", str(leads))
    run(runner, "import", "activities", str(events))


def test_a_rep_takes_a_lead_from_packet_to_won(floor: CliRunner, tmp_path: Path) -> None:
    teams = run(floor, "team", "list")
    assert "na" in teams and SAM in teams
    hand_raise(floor, tmp_path)

    listing = run(floor, "handoff", "list")
    row = next(line for line in listing.splitlines() if ANA in line)
    assert "assigned" in row and "accept by" in row
    assert ANA in run(floor, "handoff", "list", "--status", "assigned", "--rep", ANA)
    assert ANA not in run(floor, "handoff", "list", "--status", "won")
    assert run(floor, "handoff", "queue") == "the unassigned queue is empty\n"
    assert "unknown status 'done'" in refused(floor, "handoff", "list", "--status", "done")

    packet = run(floor, "handoff", "packet", "1")
    assert packet.startswith("Dana (Northwind)\n")
    assert "Why you: rule Everyone else" in packet
    assert "+20  Decision-maker title" in packet
    assert "[ ] Use case noted (what they want to analyse, and for whom) (required)" in packet

    assert run(floor, "handoff", "accept", "1", "--actor", ANA) == (
        f"handoff 1 accepted by {ANA}; lead 1 is now sal\n"
    )
    unknown = refused(floor, "handoff", "reject", "1", "meh", "--actor", ANA)
    assert "unknown rejection reason 'meh'" in unknown
    assert "out_of_area, no_budget, not_ready, wrong_contact, junk" in unknown
    assert "lead 1 is now sal" in run(
        floor, "handoff", "touch", "1", "call", "--note", "intro call", "--actor", ANA
    )
    missing = refused(floor, "handoff", "qualify", "1", "--field", "budget=40k", "--actor", ANA)
    assert "qualification needs authority, need, timing" in missing
    fields = ["budget=40k", "authority=VP Ops", "need=dashboards", "timing=Q3"]
    qualify = ["handoff", "qualify", "1", "--actor", ANA]
    for field in fields:
        qualify += ["--field", field]
    assert run(floor, *qualify) == "handoff 1 qualified; lead 1 is now sql\n"
    assert run(floor, "handoff", "won", "1", "--amount", "52000", "--actor", SAM) == (
        "handoff 1 won; lead 1 is now customer\n"
    )

    shown = run(floor, "handoff", "show", "1")
    assert shown.startswith("Handoff 1 of lead 1: won\n")
    assert f"rep:          {ANA}" in shown
    assert "qualification: budget=40k, authority=VP Ops, need=dashboards, timing=Q3" in shown
    assert "deal value:   52,000.00" in shown
    for kind, actor in (("accepted", ANA), ("touch", ANA), ("qualified", ANA), ("won", SAM)):
        assert any(f"│ {kind} " in line and actor in line for line in shown.splitlines()), kind
    assert any("│ assigned " in line for line in shown.splitlines())
    accounts = run(floor, "account", "list")
    assert "northwind.example.com" in accounts and ANA in accounts


def test_rep_settings_and_their_one_line_errors(floor: CliRunner) -> None:
    zone = refused(floor, "rep", "add", BEN, "--name", "Ben", "--timezone", "Mars/Olympus")
    assert zone == (
        "error: --timezone: unknown time zone 'Mars/Olympus'; use an IANA name such as "
        "Europe/Berlin"
    )
    assert refused(floor, "rep", "add", BEN, "--name", "Ben", "--hours", "mon-fri=9-5") == (
        "error: --hours: mon: '9-5' is not an 'HH:MM-HH:MM' interval"
    )
    assert "runs backwards" in refused(
        floor, "rep", "add", BEN, "--name", "Ben", "--hours", "fri-mon=09:00-17:00"
    )
    assert "takes DAYS=HH:MM-HH:MM" in refused(
        floor, "rep", "add", BEN, "--name", "Ben", "--hours", "09:00-17:00"
    )
    assert "team 'emea' does not exist" in refused(
        floor, "rep", "add", BEN, "--name", "Ben", "--team", "emea"
    )
    assert "already exists" in refused(floor, "rep", "add", ANA, "--name", "Ana")
    assert "nothing to change" in refused(floor, "rep", "update", ANA)
    assert "rep nobody@lumen.example does not exist" in refused(
        floor, "rep", "update", "nobody@lumen.example", "--status", "away"
    )

    added = run(
        floor,
        "rep",
        "add",
        BEN,
        "--name",
        "Ben Okafor",
        "--timezone",
        "Europe/Berlin",
        "--hours",
        "mon-thu=09:00-12:00,13:00-17:00",
        "--hours",
        "fri=09:00-15:00",
        "--capacity",
        "5",
        "--tag",
        "Enterprise",
        "--country",
        "de",
    )
    assert (
        "Europe/Berlin, mon-thu 09:00-12:00,13:00-17:00; fri 09:00-15:00, available, "
        "0/5 open handoffs"
    ) in added
    updated = run(floor, "rep", "update", BEN, "--status", "away", "--team", "na")
    assert f"{BEN} (Ben Okafor): team na," in updated and ", away, 0/5" in updated
    reps = run(floor, "rep", "list", "--team", "na")
    assert ANA in reps and BEN in reps and "away" in reps

    assert run(floor, "account", "set", "contoso.com", "--owner", BEN, "--name", "Contoso") == (
        f"account 1: contoso.com (Contoso) is owned by {BEN}\n"
    )
    assert "not a domain" in refused(floor, "account", "set", "contoso", "--owner", BEN)


def test_with_every_rep_away_the_handoff_waits_in_the_queue(
    floor: CliRunner, tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    start, end = (now - timedelta(hours=1)).isoformat(), (now + timedelta(days=1)).isoformat()
    away = run(floor, "rep", "away", ANA, "--from", start, "--until", end, "--note", "offsite")
    assert away.startswith(f"{ANA} is out of office from ")
    assert away.endswith(" UTC (absence 1)\n")
    assert refused(floor, "rep", "away", ANA, "--from", end, "--until", start) == (
        "error: --until must be after --from"  # the options typed, not ends_at/starts_at
    )

    hand_raise(floor, tmp_path)

    queue = run(floor, "handoff", "queue")
    assert "Unassigned queue" in queue
    assert "│ 1  │ 1    │" in queue
    assert "team na" in queue
    assert "it is queued" in refused(floor, "handoff", "accept", "1", "--actor", ANA)


def test_webhook_endpoints_on_the_command_line(runner: CliRunner) -> None:
    added = run(
        runner,
        "webhook",
        "add",
        "https://hooks.example.com/baton",
        "--event",
        "handoff.assigned",
        "--event",
        "handoff.won",
    )
    first, second = added.splitlines()
    assert (
        first == "webhook 1 added: handoff.assigned, handoff.won → https://hooks.example.com/baton"
    )
    assert second.startswith("signing secret (shown only now, store it): ")
    secret = second.rsplit(" ", 1)[1]
    assert len(secret) >= 32
    assert "webhook 2 added: * →" in run(runner, "webhook", "add", "https://crm.example.org/in")
    inside = refused(runner, "webhook", "add", "http://10.0.0.5:8080/in")
    assert "10.0.0.5 is a private address; webhooks may only reach public addresses" in inside

    bad = refused(runner, "webhook", "add", "https://hooks.example.com", "--event", "lead.eaten")
    assert "--event: unknown event 'lead.eaten'" in bad
    assert "must start with http:// or https://" in refused(runner, "webhook", "add", "mailto:x")

    listing = run(runner, "webhook", "list")
    assert "hooks.example.com" in listing and "handoff.won" in listing
    assert secret not in listing
    assert run(runner, "webhook", "remove", "1") == (
        "webhook 1 (https://hooks.example.com/baton) disabled\n"
    )
    rows = [line for line in run(runner, "webhook", "list").splitlines() if line.startswith("│ 1")]
    assert "│ no " in rows[0]
    assert "webhook endpoint 9 does not exist" in refused(runner, "webhook", "remove", "9")
    assert "Deliveries of webhook 2" in run(runner, "webhook", "deliveries", "2")


def test_the_rep_list_keeps_a_time_zone_whole_at_80_columns(floor: CliRunner) -> None:
    """A manager reads the list in an 80-column terminal: the time zone stays one word."""
    run(
        floor,
        "rep",
        "add",
        "ravi.krishnamurthy@lumen.example",
        "--name",
        "Ravi Krishnamurthy",
        "--team",
        "na",
        "--timezone",
        "Asia/Kolkata",
        "--hours",
        "mon-thu=09:00-12:00,13:00-17:00",
        "--hours",
        "fri=09:00-15:00",
    )
    listed = run(floor, "rep", "list")
    assert max(len(line) for line in listed.splitlines()) <= 80
    assert "Asia/Kolkata" in listed
