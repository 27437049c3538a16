"""How a hook request is written (issue 17, the inbound hooks' throughput), on SQLite and
PostgreSQL, through the use case (the HTTP shell is tests/e2e/test_hooks.py):

- the raw request is committed before it is read, so a reading that breaks leaves it
  stored ``failed`` (answered 202) for ``baton intake retry``, with nothing of the
  reading saved;
- on SQLite concurrent requests are committed together (group commit), and one whose
  reading breaks fails alone: the others' leads are all saved;
- a request reads the active contract once, however many of its steps ask (the capture,
  its activity, the throw-away address check), and again after a submission's savepoint
  was rolled back (on PostgreSQL that releases the share lock of the first read).
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from sqlalchemy import event, select
from tests.integration.test_group_commit import contract_reads, statements
from tests.integration.test_intake import OP, count, delivery_of, endpoint, post, submission

from baton.domain.intake import Delivery
from baton.services import intake as intake_service
from baton.services.context import Context
from baton.services.demo import sign_demo_contract
from baton.store.tables import intake_items, intake_requests, lead_scores, leads


def activate_example(ctx: Context) -> None:
    assert sign_demo_contract(ctx) is not None  # the example contract, signed, active


def post_async(ctx: Context, body: Any, name: str = "contact") -> intake_service.HookOutcome:
    """:func:`post` through the API's shell (:func:`intake_service.receive_async`)."""
    return asyncio.run(
        intake_service.receive_async(
            ctx, name, delivery_of(ctx, body), remote_address="203.0.113.9"
        )
    )


SHELLS = {"receive": post, "receive_async": post_async}


@pytest.mark.parametrize("shell", sorted(SHELLS))
def test_a_reading_that_breaks_leaves_the_raw_request_stored_failed(
    ctx: Context, monkeypatch: pytest.MonkeyPatch, shell: str
) -> None:
    endpoint(ctx)

    def broken(*_: Any, **__: Any) -> Any:
        raise RuntimeError("a bug in a reader")

    monkeypatch.setattr(intake_service, "_apply_in", broken)
    outcome = SHELLS[shell](ctx, submission(1))
    assert (outcome.status, outcome.request_status) == (202, "failed")
    with ctx.read() as connection:
        stored = connection.execute(select(intake_requests)).mappings().one()
        items = connection.execute(select(intake_items)).all()
    assert stored["id"] == outcome.request_id
    assert stored["status"] == "failed" and stored["error"] == "internal error: RuntimeError"
    assert b"dana1@northwind1.example.com" in stored["body"]
    assert items == [] and count(ctx, leads) == 0  # nothing of the reading saved
    monkeypatch.undo()
    report = intake_service.retry(ctx, actor=OP, all_failed=True)
    assert (report.requests, report.processed) == (1, 1)
    assert count(ctx, leads) == 1


def test_concurrent_requests_commit_together_and_a_broken_one_fails_alone(
    sqlite_ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = sqlite_ctx
    endpoint(ctx)
    real = intake_service._apply_in

    def sometimes_broken(connection: Any, item: Any, *args: Any, **kwargs: Any) -> Any:
        if item.lead.get("email", "").startswith("broken"):
            raise RuntimeError("a bug in a reader")
        return real(connection, item, *args, **kwargs)

    monkeypatch.setattr(intake_service, "_apply_in", sometimes_broken)
    commits: list[int] = []
    event.listen(ctx.engine, "commit", lambda _conn: commits.append(1))
    senders = 12
    start = threading.Barrier(senders)
    outcomes: dict[int, intake_service.HookOutcome] = {}

    def send(n: int) -> None:
        email = "broken@northwind.example.com" if n == 5 else None
        start.wait()
        outcomes[n] = post(ctx, submission(n, email=email))

    threads = [threading.Thread(target=send, args=(n,)) for n in range(senders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes[5].status == 202 and outcomes[5].request_status == "failed"
    others = [outcomes[n] for n in range(senders) if n != 5]
    assert all(o.status == 200 and o.request_status == "processed" for o in others)
    assert count(ctx, leads) == senders - 1
    assert count(ctx, intake_requests) == senders
    with ctx.read() as connection:
        statuses = sorted(connection.execute(select(intake_requests.c.status)).scalars())
    assert statuses == ["failed"] + ["processed"] * (senders - 1)
    # The engine's commits, its reads' included: 31 when each request committed its
    # own writes (the raw row, its reading, the failed one's status), fewer in groups.
    assert len(commits) <= 2 * senders + 1


def test_a_request_reads_the_active_contract_once(ctx: Context) -> None:
    endpoint(ctx)
    activate_example(ctx)
    post(ctx, submission(1))  # the first of a process reads more (caches fill)
    with statements(ctx) as said:
        outcome = post(ctx, submission(2, email="someone@mailinator.com"))
    assert outcome.items[0].status == "processed"
    assert contract_reads(said) == 1, said


def test_a_submission_rolled_back_makes_the_next_one_read_the_contract_again(
    ctx: Context,
) -> None:
    endpoint(ctx)
    activate_example(ctx)
    post(ctx, submission(1))
    late = submission(2)
    late["submitted_at"] = "2099-01-01T00:00:00Z"  # refused after its capture ran
    with statements(ctx) as said:
        outcome = post(ctx, [late, submission(3)])
    assert [i.status for i in outcome.items] == ["failed", "processed"]
    assert outcome.items[0].errors[0]["loc"] == "submitted_at"  # the sender's own field
    assert count(ctx, leads) == 2  # the late one's capture rolled back with its savepoint
    assert contract_reads(said) == 2, said


def test_a_contract_activated_mid_request_scores_the_submissions_after_it(
    ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL (on SQLite the request holds the one writer: an activation waits for
    it): a request of two submissions read with no contract active, and a version
    activated (committed by another connection) between them. "None active" holds no
    lock there, so the request does not remember it: the second submission reads the
    version and is scored (the first was read before it; the activation's re-score
    misses it, as it would a capture committing at that moment)."""
    if ctx.dialect == "sqlite":
        pytest.skip("SQLite has one writer: the activation waits for the request")
    endpoint(ctx)
    real = intake_service._apply_in
    applied: list[int] = []

    def then_activate(connection: Any, item: Any, *args: Any, **kwargs: Any) -> Any:
        answer = real(connection, item, *args, **kwargs)
        applied.append(answer[0])
        if len(applied) == 1:
            worker = threading.Thread(target=activate_example, args=(ctx,))
            worker.start()
            worker.join()
        return answer

    monkeypatch.setattr(intake_service, "_apply_in", then_activate)
    outcome = post(ctx, [submission(1), submission(2)])
    assert [i.status for i in outcome.items] == ["processed", "processed"]
    with ctx.read() as connection:
        scored = set(connection.execute(select(lead_scores.c.lead_id)).scalars())
    assert applied[1] in scored


@pytest.mark.parametrize("shell", sorted(SHELLS))
def test_both_shells_store_and_answer_the_same(ctx: Context, shell: str) -> None:
    """The API's awaited shell and the plain one take the same steps: stored raw, read,
    captured, recorded; over the rate, answered 429 and counted, nothing stored."""
    endpoint(ctx, rate_per_minute=1)
    outcome = SHELLS[shell](ctx, submission(1))
    assert (outcome.status, outcome.request_status) == (200, "processed")
    assert [i.status for i in outcome.items] == ["processed"]
    throttled = SHELLS[shell](ctx, submission(2))
    assert throttled.status == 429 and throttled.request_id is None
    assert count(ctx, intake_requests) == 1 and count(ctx, leads) == 1
    [view] = intake_service.list_endpoints(ctx, actor=OP)
    assert (view.throttled_count, view.requests) == (1, 1)
    missing = SHELLS[shell](ctx, submission(3), name="nowhere")
    assert missing.status == 404


def test_a_large_body_is_checked_off_the_event_loop_and_a_refused_one_not_parsed(
    sqlite_ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The API's shell checks a small request on its event loop, a large one (a web
    form's body is parsed for its return URL, 65 ms at 256 KB) in a thread, so that no
    other request waits on it; and a request over the rate is answered without its
    body parsed at all."""
    ctx = sqlite_ctx
    intake_service.add_endpoint(
        ctx,
        {
            "name": "site",
            "kind": "web_to_lead",
            "source": "website",
            "return_urls": ["https://northwind.example/thanks"],
            "rate_per_minute": 2,
        },
        actor=OP,
    )
    checked_on: list[bool] = []
    parsed: list[int] = []
    admit, form_value = intake_service._admit, intake_service._form_value

    def spy_admit(*args: Any) -> Any:
        try:
            asyncio.get_running_loop()
            checked_on.append(True)
        except RuntimeError:
            checked_on.append(False)
        return admit(*args)

    def spy_form_value(delivery: Delivery, name: str) -> Any:
        parsed.append(len(delivery.body))
        return form_value(delivery, name)

    monkeypatch.setattr(intake_service, "_admit", spy_admit)
    monkeypatch.setattr(intake_service, "_form_value", spy_form_value)

    def form(size: int) -> intake_service.HookOutcome:
        body = "email=ana%40northwind.example.com&message=" + "x" * size
        delivery = delivery_of(ctx, body.encode(), content_type="application/x-www-form-urlencoded")
        return asyncio.run(intake_service.receive_async(ctx, "site", delivery))

    assert form(100).status == 200
    large = form(intake_service.SMALL_BODY + 1)  # read, and its message refused as too long
    assert large.status == 422 and large.redirect == "https://northwind.example/thanks"
    assert checked_on == [True, False]  # on the loop, then in a thread
    assert len(parsed) == 2
    assert form(100).status == 429  # the third in a minute
    assert len(parsed) == 2, "a refused request's body is not parsed"
