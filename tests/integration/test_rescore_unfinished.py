"""An activation whose re-score of every lead stopped half way is visible where people
look (a newcomer's trial, issue #17: it showed only in the start warning and in
``contract activate``'s own hint): ``baton status`` (and ``--json``, and
``GET /api/v1/status``), ``baton contract list``, the contract page; and it is gone
once ``baton contract rescore`` has finished it."""

from __future__ import annotations

import json
from typing import Any
from unittest import mock

import pytest
from fastapi.testclient import TestClient
from tests.conftest import bearer, token_for
from tests.integration.test_rescore_sets import contract_text, fill, northwind, signed
from typer.testing import CliRunner

from baton.cli import app
from baton.domain.access import operator
from baton.domain.clock import ManualClock
from baton.domain.rescores import RUNNING_WITHIN_SECONDS, rescore_text
from baton.services import contracts as contracts_service
from baton.services import rescore_progress, scoring
from baton.services.context import Context
from baton.services.contracts import activate_contract, list_contracts, rescore_active
from baton.services.status import deployment_status

EASY_MQL = {
    "fit": [{"when": {"field": "title", "exists": True}, "points": 40}],
    "engagement": [],
    "grades": {"A": 40, "B": 25, "C": 10},
    "threshold": 30,
    "min_grade": "D",
    "required": [],
    "prep_required": False,
    "cooldown": 0,
    "live": 7,
}
"""Every lead of :func:`northwind` becomes an MQL."""

ADMIN = operator("ops")


def _cli(ctx: Context, monkeypatch: pytest.MonkeyPatch, *args: str) -> Any:
    monkeypatch.setenv("BATON_DATABASE_URL", ctx.engine.url.render_as_string(hide_password=False))
    monkeypatch.delenv("BATON_ENV", raising=False)
    return CliRunner().invoke(app, list(args))


def _interrupted(ctx: Context, monkeypatch: pytest.MonkeyPatch, *, after: int) -> int:
    """Six leads; a version activated whose re-score is stopped (Ctrl+C) once ``after``
    of them are re-scored, in chunks of two, its progress noted after every chunk."""
    fill(ctx, northwind(6), [])
    version = signed(ctx, contract_text(EASY_MQL, "interrupted"))
    monkeypatch.setattr(scoring, "SET_CHUNK", 2)
    monkeypatch.setattr(rescore_progress, "NOTE_EVERY_SECONDS", 0.0)

    def ctrl_c(done: int, total: int) -> None:
        if done >= after:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        activate_contract(ctx, version, actor=ADMIN, progress=ctrl_c)
    return version


def test_an_interrupted_rescore_shows_in_status_and_the_list_until_rescore_finishes_it(
    ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    version = _interrupted(ctx, monkeypatch, after=4)
    assert isinstance(ctx.clock, ManualClock)
    ctx.clock.advance(minutes=5)  # long after its last note: not running any more

    found = deployment_status(ctx, actor=ADMIN).rescore
    assert found is not None
    assert (found.version, found.scored, found.total) == (version, 4, 6)
    assert not found.may_be_running
    line = (
        f"re-score of version {version} unfinished: 4 of 6 leads scored; run `baton "
        "contract rescore` to finish it"
    )
    assert rescore_text(found) == line
    listed = {v.version: v for v in list_contracts(ctx, actor=ADMIN)}
    assert listed[version].rescore == found

    status = _cli(ctx, monkeypatch, "status")
    assert line in " ".join(status.output.split()), status.output
    as_json = json.loads(_cli(ctx, monkeypatch, "status", "--json").output)
    assert as_json["rescore"]["scored"] == 4 and as_json["rescore"]["text"] == line
    shown = _cli(ctx, monkeypatch, "contract", "list")
    assert shown.exit_code == 0, shown.output
    rows = shown.output.splitlines()
    active = next(i for i, row in enumerate(rows) if " active " in f"{row} ")
    assert rows[active + 1].split()[0] == "unfinished", shown.output  # under the status
    table = [row for row in rows if not row.startswith("!")]  # the sentence is one line
    assert max(len(row) for row in table) <= 80, shown.output
    assert line in " ".join(shown.output.split())

    finished = _cli(ctx, monkeypatch, "contract", "rescore")
    assert finished.exit_code == 0, finished.output
    assert deployment_status(ctx, actor=ADMIN).rescore is None
    assert all(v.rescore is None for v in list_contracts(ctx, actor=ADMIN))
    assert "unfinished" not in _cli(ctx, monkeypatch, "status").output
    assert "unfinished" not in _cli(ctx, monkeypatch, "contract", "list").output


def test_a_rescore_killed_before_its_first_chunk_shows_none_of_the_leads_scored(
    ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process killed gets no chance to say how far it got: the row written with the
    activation says it, as of its last note."""
    fill(ctx, northwind(4), [])
    version = signed(ctx, contract_text(EASY_MQL, "killed"))
    with (
        mock.patch.object(contracts_service, "rescore_all", side_effect=SystemExit),
        mock.patch.object(rescore_progress.RescoreNotes, "stopped"),  # killed: no last word
        pytest.raises(SystemExit),
    ):
        activate_contract(ctx, version, actor=ADMIN)
    found = deployment_status(ctx, actor=ADMIN).rescore
    assert found is not None and (found.scored, found.total) == (0, 4)
    assert found.may_be_running  # noted as it began, a moment ago
    assert "it may still be running" in rescore_text(found)
    assert isinstance(ctx.clock, ManualClock)
    ctx.clock.advance(seconds=RUNNING_WITHIN_SECONDS + 1)
    later = deployment_status(ctx, actor=ADMIN).rescore
    assert later is not None and not later.may_be_running


def test_a_finished_activation_leaves_no_mark(
    ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    fill(ctx, northwind(5), [])
    version = signed(ctx, contract_text(EASY_MQL, "complete"))
    monkeypatch.setattr(scoring, "SET_CHUNK", 2)
    report = activate_contract(ctx, version, actor=ADMIN)
    assert report.leads_scored == 5
    assert deployment_status(ctx, actor=ADMIN).rescore is None
    assert all(v.rescore is None for v in list_contracts(ctx, actor=ADMIN))


def test_the_api_status_and_the_contract_page_say_it(sqlite_ctx: Context) -> None:
    from tests.e2e.test_web_access import sign_in
    from tests.e2e.test_web_contract import text_of
    from tests.web_world import build_world

    from baton.api.app import create_app
    from baton.store.tables import contract_rescores

    world = build_world(sqlite_ctx, handoffs_each=1)
    assert isinstance(sqlite_ctx.clock, ManualClock)
    noted = sqlite_ctx.clock.now()
    with sqlite_ctx.write() as connection:  # as a re-score stopped after 4 of 6 leaves it
        connection.execute(
            contract_rescores.insert().values(
                version=1, total=6, scored=4, started_at=noted, noted_at=noted
            )
        )
    sqlite_ctx.clock.advance(minutes=5)
    line = "re-score of version 1 unfinished: 4 of 6 leads scored; run `baton contract rescore`"
    with TestClient(
        create_app(sqlite_ctx), base_url="https://testserver", follow_redirects=False
    ) as client:
        answer = client.get("/api/v1/status", headers=bearer(token_for(sqlite_ctx))).json()
        assert answer["rescore"]["version"] == 1
        assert (answer["rescore"]["scored"], answer["rescore"]["total"]) == (4, 6)
        assert answer["rescore"]["text"].startswith(line)
        headers = bearer(token_for(sqlite_ctx))
        listed = client.get("/api/v1/contracts", headers=headers).json()
        marks = {c["version"]: c["rescore"] for c in listed}
        assert marks[1] is not None and (marks[1]["scored"], marks[1]["total"]) == (4, 6)
        assert all(mark is None for version, mark in marks.items() if version != 1)
        one = client.get("/api/v1/contracts/1", headers=headers).json()
        assert one["rescore"]["text"].startswith(line)
        sign_in(client, world.users["rep"])
        for page in ("/contract", "/contract/1"):
            html = client.get(page).text
            shown = line.replace("`", "")
            assert f"Not every lead is scored by this version yet: {shown}" in text_of(html)
            assert "run <code>baton contract rescore</code> to finish it" in html, page
        assert "active re-score unfinished" in text_of(client.get("/contract").text)


def test_a_refused_activation_answers_before_counting_every_lead(
    ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A draft, or the version already active, is refused at once: the count of every
    lead (seconds on a million-lead file just copied) is paid only by an activation
    that goes ahead, and no mark of an unfinished re-score is left by a refusal."""
    from baton.domain.errors import Conflict
    from baton.services.contracts import create_contract

    fill(ctx, northwind(3), [])
    counted: list[int] = []
    real_count = contracts_service.leads_to_rescore

    def count(ctx_: Context) -> int:
        counted.append(1)
        return real_count(ctx_)

    monkeypatch.setattr(contracts_service, "leads_to_rescore", count)
    draft = create_contract(ctx, contract_text(EASY_MQL, "draft"), actor=ADMIN).version
    with pytest.raises(Conflict, match="needs approval"):
        activate_contract(ctx, draft, actor=ADMIN)
    assert counted == []
    version = signed(ctx, contract_text(EASY_MQL, "signed"))
    activate_contract(ctx, version, actor=ADMIN)
    assert counted == [1]
    with pytest.raises(Conflict, match="already active"):
        activate_contract(ctx, version, actor=ADMIN)
    assert counted == [1]
    assert all(v.rescore is None for v in list_contracts(ctx, actor=ADMIN))


def test_an_overtaken_run_leaves_the_mark_of_a_newer_activation_of_its_version(
    ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run A re-scores with v1; between its chunks v2 is activated and finished, then
    v1 activated again (a rollback) and killed at once. A goes on (v1 is active), and
    its end must not delete the newer run's mark: leads A passed are scored by v2."""
    from sqlalchemy import select

    from baton.store.tables import lead_scores

    fill(ctx, northwind(6), [])
    v1 = signed(ctx, contract_text(EASY_MQL, "one"))
    v2 = signed(ctx, contract_text({**EASY_MQL, "threshold": 35}, "two"))
    monkeypatch.setattr(scoring, "SET_CHUNK", 2)
    monkeypatch.setattr(rescore_progress, "NOTE_EVERY_SECONDS", 0.0)
    clock = ctx.clock
    assert isinstance(clock, ManualClock)
    overtaken: list[int] = []

    def meanwhile(done: int, total: int) -> None:
        if done == 2 and not overtaken:  # run A of v1, between its chunks 1 and 2
            overtaken.append(done)
            clock.advance(seconds=1)
            activate_contract(ctx, v2, actor=ADMIN)  # B: every lead scored with v2
            clock.advance(seconds=1)
            with (
                mock.patch.object(contracts_service, "rescore_all", side_effect=SystemExit),
                pytest.raises(SystemExit),
            ):
                activate_contract(ctx, v1, actor=ADMIN)  # C: a rollback, killed at once

    activate_contract(ctx, v1, actor=ADMIN, progress=meanwhile)  # A goes on to its end
    with ctx.read() as connection:
        versions = set(connection.execute(select(lead_scores.c.contract_version)).scalars())
    assert versions == {v1, v2}  # A's first chunk: scored by v2 again, under active v1
    mark = deployment_status(ctx, actor=ADMIN).rescore
    assert mark is not None and (mark.version, mark.scored, mark.total) == (v1, 0, 6)
    rescore_active(ctx, actor=ADMIN)
    assert deployment_status(ctx, actor=ADMIN).rescore is None


def test_a_run_before_its_first_chunk_notes_it_is_alive(
    sqlite_ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The workers' start and the one pass over the events come before the first chunk
    (a minute on a large database): meanwhile the run notes that it is alive, so the
    status says it may still be running instead of telling to start another."""
    import time

    fill(sqlite_ctx, northwind(4), [])
    version = signed(sqlite_ctx, contract_text(EASY_MQL, "alive"))
    clock = sqlite_ctx.clock
    assert isinstance(clock, ManualClock)
    monkeypatch.setattr(rescore_progress, "ALIVE_EVERY_SECONDS", 0.02)
    seen: list[Any] = []

    def long_pass(ctx: Context, report: Any, **_: Any) -> None:
        clock.advance(minutes=5)  # the one pass, long
        deadline = time.monotonic() + 10
        while (found := deployment_status(ctx, actor=ADMIN).rescore) is not None and (
            not found.may_be_running and time.monotonic() < deadline
        ):
            time.sleep(0.02)
        seen.append(found)
        raise KeyboardInterrupt

    monkeypatch.setattr(contracts_service, "rescore_all", long_pass)
    with pytest.raises(KeyboardInterrupt):
        activate_contract(sqlite_ctx, version, actor=ADMIN)
    assert seen[0] is not None and seen[0].may_be_running, seen
    assert seen[0].scored == 0


def test_contract_rescore_says_when_another_re_score_may_still_be_running(
    ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import UTC, datetime

    from baton.store.tables import contract_rescores

    fill(ctx, northwind(4), [])
    version = signed(ctx, contract_text(EASY_MQL, "beside"))
    with mock.patch.object(contracts_service, "rescore_all"):
        activate_contract(ctx, version, actor=ADMIN)
    now = datetime.now(UTC)
    with ctx.write() as connection:  # the activation's run, noted a moment ago
        connection.execute(
            contract_rescores.insert().values(
                version=version, total=4, scored=2, started_at=now, noted_at=now
            )
        )
    done = _cli(ctx, monkeypatch, "contract", "rescore")
    assert done.exit_code == 0, done.output
    said = " ".join(done.output.split())
    assert f"version {version}'s re-score noted its progress" in said, said
    assert "(2 of 4 leads) and may still be running: this one runs beside it" in said
    assert deployment_status(ctx, actor=ADMIN).rescore is None
    quiet = _cli(ctx, monkeypatch, "contract", "rescore")
    assert "may still be running" not in quiet.output


def test_a_run_that_stopped_in_its_process_is_not_said_to_be_running(
    ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An activation stopped by an error says to run `baton contract rescore`; doing so
    at once must not warn of a re-score "that may still be running" beside it, and
    `baton status` says to finish it, not that it may be running."""
    from baton.services.scoring import RescoreStopped

    fill(ctx, northwind(4), [])
    version = signed(ctx, contract_text(EASY_MQL, "stopped"))
    stopped = RescoreStopped(
        f"version {version} is active, but its re-score stopped after 0 of 4 leads "
        "(deadlock detected); run `baton contract rescore` to finish it"
    )
    with mock.patch.object(contracts_service, "rescore_all", side_effect=stopped):
        failed = _cli(ctx, monkeypatch, "contract", "activate", str(version))
    assert failed.exit_code != 0
    status = " ".join(_cli(ctx, monkeypatch, "status").output.split())
    assert f"re-score of version {version} unfinished: 0 of 4 leads scored; run" in status
    done = _cli(ctx, monkeypatch, "contract", "rescore")
    assert done.exit_code == 0, done.output
    assert "may still be running" not in " ".join(done.output.split())
    assert deployment_status(ctx, actor=ADMIN).rescore is None


def test_a_kill_between_chunks_leaves_the_exact_count_at_the_default_pace(
    ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Chunks that commit one after the other note their count in their own
    transaction: a process killed after the second chunk (no last word) leaves 4 of 6,
    not the count of a note up to 2 s older (a trial read 0 of 27,720 with 10,000
    scored)."""
    fill(ctx, northwind(6), [])
    version = signed(ctx, contract_text(EASY_MQL, "exact"))
    monkeypatch.setattr(scoring, "SET_CHUNK", 2)
    monkeypatch.setattr(scoring, "CHUNKS_AT_ONCE", 1)

    def killed(done: int, total: int) -> None:
        if done >= 4:
            raise SystemExit

    with (
        mock.patch.object(rescore_progress.RescoreNotes, "stopped"),  # killed: no last word
        pytest.raises(SystemExit),
    ):
        activate_contract(ctx, version, actor=ADMIN, progress=killed)
    found = deployment_status(ctx, actor=ADMIN).rescore
    assert found is not None and (found.scored, found.total) == (4, 6)
