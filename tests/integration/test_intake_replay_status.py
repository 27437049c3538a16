"""A replayed hook request says what became of it (issue 17, found by the real-data
trial): a replay whose failing submission fails again is ``partial`` (or ``failed``)
as the first run was, never ``processed``; the log counts its failed submission and
shows the errors; once the mapping is fixed a retry processes the submission once and
settles both requests ``processed``."""

from __future__ import annotations

from typing import Any

from tests.integration.test_intake import MAPPING, OP, count, endpoint, post, submission

from baton.services import intake as intake_service
from baton.services.context import Context
from baton.store.tables import activities, leads

BROKEN = {**MAPPING, "email": "contact.mail"}
"""The endpoint's mapping bug: the form sends ``contact.email``."""


def pair() -> list[dict[str, Any]]:
    """One submission the broken mapping reads (it also sends ``mail``) and one it
    cannot."""
    readable = submission(1)
    readable["contact"]["mail"] = readable["contact"]["email"]
    return [readable, submission(2)]


def logged(ctx: Context) -> dict[int, tuple[str, int]]:
    return {r.id: (r.status, r.failed_items) for r in intake_service.intake_log(ctx, actor=OP)}


def test_a_replay_whose_submission_fails_again_is_partial_like_the_first_run(
    ctx: Context,
) -> None:
    endpoint(ctx, mapping=BROKEN)
    first = post(ctx, pair())
    replay = post(ctx, pair())
    assert (first.status, first.request_status) == (200, "partial")
    assert (replay.status, replay.request_status) == (200, "partial")
    assert [i.status for i in replay.items] == ["duplicate", "failed"]
    assert replay.items[1].errors == first.items[1].errors
    assert logged(ctx) == {first.request_id: ("partial", 1), replay.request_id: ("partial", 1)}
    assert replay.request_id is not None
    shown = intake_service.show_request(ctx, replay.request_id, actor=OP)
    assert [i.status for i in shown.items] == ["duplicate", "failed"]
    assert shown.items[1].errors[0]["loc"] == "email"
    assert count(ctx, leads) == 1


def test_a_single_replay_that_fails_again_is_failed_like_the_first_run(ctx: Context) -> None:
    endpoint(ctx, mapping=BROKEN)
    first = post(ctx, submission())
    replay = post(ctx, submission())
    assert (first.status, first.request_status) == (422, "failed")
    assert (replay.status, replay.request_status) == (422, "failed")
    assert replay.errors == first.errors
    assert intake_service.intake_log(ctx, actor=OP, status="processed") == []


def test_after_the_fix_a_retry_processes_the_submission_once_and_settles_both(
    ctx: Context,
) -> None:
    endpoint(ctx, mapping=BROKEN)
    first = post(ctx, pair())
    replay = post(ctx, pair())
    intake_service.update_endpoint(ctx, "contact", {"mapping": MAPPING}, actor=OP)
    report = intake_service.retry(ctx, actor=OP, all_failed=True)
    assert (report.requests, report.processed, report.failed) == (2, 2, 0)
    assert logged(ctx) == {
        first.request_id: ("processed", 0),
        replay.request_id: ("processed", 0),
    }
    assert replay.request_id is not None
    shown = intake_service.show_request(ctx, replay.request_id, actor=OP)
    assert [i.status for i in shown.items] == ["duplicate", "duplicate"]
    assert count(ctx, leads) == 2
    with ctx.read() as connection:
        submits = connection.execute(
            activities.select().where(activities.c.type == "form_submit")
        ).all()
    assert len(submits) == 2  # one per submission, none twice


def test_retrying_the_replay_alone_processes_the_first_submission_and_settles_both(
    ctx: Context,
) -> None:
    endpoint(ctx, mapping=BROKEN)
    first = post(ctx, submission())
    replay = post(ctx, submission())
    assert replay.request_id is not None
    intake_service.update_endpoint(ctx, "contact", {"mapping": MAPPING}, actor=OP)
    report = intake_service.retry(ctx, actor=OP, request_ids=[replay.request_id])
    assert (report.processed, report.failed) == (1, 0)
    assert logged(ctx) == {
        first.request_id: ("processed", 0),
        replay.request_id: ("processed", 0),
    }
    assert count(ctx, leads) == 1
    third = post(ctx, submission())
    assert (third.request_status, third.items[0].status) == ("processed", "duplicate")
