"""The unassigned queue says why a handoff waits, not only that "nobody in team na is
available" (a newcomer's trial: both reps of team na were working 24/7 but at
capacity, which routing knew and the queue did not say)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from baton.cli import app as cli
from baton.domain.routing import waiting_reason

EXAMPLE = Path(__file__).parents[2] / "contracts" / "example.yaml"
ANA, BEN, SAM = "ana@lumen.example", "ben@lumen.example", "sam@lumen.example"


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("BATON_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.delenv("BATON_ENV", raising=False)
    monkeypatch.chdir(tmp_path)
    return CliRunner()


def run(runner: CliRunner, *args: str) -> str:
    result = runner.invoke(cli, list(args))
    assert result.exit_code == 0, (args, result.output)
    return result.output


def test_the_queue_says_both_reps_are_at_capacity(runner: CliRunner, tmp_path: Path) -> None:
    run(runner, "contract", "create", str(EXAMPLE), "--actor", "maria")
    run(runner, "contract", "approve", "1", "--role", "marketing", "--actor", "maria")
    run(runner, "contract", "approve", "1", "--role", "sales", "--actor", "sam")
    run(runner, "contract", "activate", "1")
    run(runner, "team", "add", "na", "--manager", SAM)
    always = "mon-sun=00:00-24:00"  # the CLI reads the wall clock
    for rep in (ANA, BEN):
        name = rep.split("@")[0].title()
        run(
            runner,
            "rep",
            "add",
            rep,
            "--name",
            name,
            "--team",
            "na",
            "--hours",
            always,
            "--capacity",
            "1",
        )
    now = datetime.now(UTC).isoformat(timespec="seconds")
    events = tmp_path / "events.csv"
    events.write_text(
        "email,type,occurred_at\n"
        + "".join(f"ops{n}@small{n}.example.com,demo_request,{now}\n" for n in range(3))
    )
    run(runner, "import", "activities", str(events))
    shown = run(runner, "handoff", "queue")
    said = "nobody in team na is available: at capacity (1/1 open handoffs)"
    assert said in waiting_because(shown), shown


def waiting_because(shown: str) -> str:
    """The queue's last column, its lines joined (the table folds it to the console's
    width), or the block layout's ``waiting because:`` lines."""
    cells = [
        line.split("\u2502")[-2].strip() for line in shown.splitlines() if line.startswith("\u2502")
    ]
    if not cells:
        cells = [line.split(":", 1)[1] for line in shown.splitlines() if "waiting because:" in line]
    return " ".join(c.strip() for c in cells if c.strip())


@pytest.mark.parametrize(
    ("skipped", "said"),
    [
        ([], "nobody in team na is available"),
        (
            ["at capacity (50/50 open handoffs)", "at capacity (50/50 open handoffs)"],
            "nobody in team na is available: at capacity (50/50 open handoffs)",
        ),
        (
            ["status away", "at capacity (5/5 open handoffs)", "status away"],
            "nobody in team na is available: 2 status away, 1 at capacity (5/5 open handoffs)",
        ),
        (
            ["a", "b", "c", "d"],
            "nobody in team na is available: 1 a, 1 b, 1 c, ...",
        ),
    ],
)
def test_the_waiting_reason_names_why_the_reps_were_passed_over(
    skipped: list[str], said: str
) -> None:
    routing = {
        "reason": "nobody in team na is available",
        "skipped": [
            {"rep_id": i, "rep": f"r{i}@x.example", "reason": r} for i, r in enumerate(skipped)
        ],
    }
    assert waiting_reason(routing) == said
