"""``baton contract activate`` and ``baton contract rescore`` off a terminal (a deploy
log, CI, a pipe) print plain progress lines as the chunks commit, where Rich hides its
bar and the command printed nothing until it ended (a newcomer's trial: a minutes-long
activation looked hung)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from tests.integration.test_rescore_sets import contract_text, fill, northwind, signed
from tests.integration.test_rescore_unfinished import EASY_MQL
from typer.testing import CliRunner

from baton.cli import _rescore_progress, app
from baton.cli._rescore_progress import progress_line
from baton.services import scoring
from baton.services.context import Context


def test_progress_line_words() -> None:
    assert progress_line(300_000, 1_000_000, 412) == (
        "re-scored 300,000 of 1,000,000 leads (30 %), 412 MQLs so far"
    )
    assert progress_line(0, 0, 0) == "re-scored 0 of 0 leads (100 %), 0 MQLs so far"


def test_activate_off_a_terminal_prints_a_line_per_step_and_the_summary(
    sqlite_ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    fill(sqlite_ctx, northwind(6), [])
    version = signed(sqlite_ctx, contract_text(EASY_MQL, "lines"))
    monkeypatch.setattr(scoring, "SET_CHUNK", 2)
    monkeypatch.setattr(_rescore_progress, "STEP_PERCENT", 25)
    monkeypatch.setenv(
        "BATON_DATABASE_URL", sqlite_ctx.engine.url.render_as_string(hide_password=False)
    )
    monkeypatch.delenv("BATON_ENV", raising=False)
    result = CliRunner().invoke(app, ["contract", "activate", str(version)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == (
        f"Re-scoring leads with version {version}: a line every 25 % of the leads or 15 s"
    )
    # 2 of 6 is 33 % (step 1), 4 of 6 is 66 % (step 2), 6 of 6 is 100 %: a line each.
    assert lines[1:4] == [
        "re-scored 2 of 6 leads (33 %), 2 MQLs so far",
        "re-scored 4 of 6 leads (66 %), 4 MQLs so far",
        "re-scored 6 of 6 leads (100 %), 6 MQLs so far",
    ]
    assert f"Version {version} is active" in result.output  # the summary follows
    assert "became MQL" in result.output


def test_rescore_through_a_pipe_prints_its_progress(sqlite_ctx: Context, tmp_path: Path) -> None:
    """A real process whose standard output is a pipe (not CliRunner's)."""
    fill(sqlite_ctx, northwind(3), [])
    version = signed(sqlite_ctx, contract_text(EASY_MQL, "piped"))
    url = sqlite_ctx.engine.url.render_as_string(hide_password=False)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("BATON_")},
        "BATON_DATABASE_URL": url,
    }
    command = [sys.executable, "-c", "from baton.cli import main; main()"]
    for args in (["contract", "activate", str(version)], ["contract", "rescore"]):
        done = subprocess.run(
            [*command, *args],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert "re-scored 3 of 3 leads (100 %)" in done.stdout, done.stdout
