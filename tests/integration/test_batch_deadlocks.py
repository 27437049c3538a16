"""The paths that make several leads MQLs in one transaction keep routing's lock order.

Routing locks a lead, then its pool's rotation row, then the reps it may choose. A
transaction that routes twice (two submissions, two scan rows, a history file's live
MQLs and then the leads that qualify on score) took the second lead, pool or rep after
the first routing's reps; a capture routed in that pool, waiting for one of those reps,
then deadlocked with it on PostgreSQL, which aborted one of the two. Each test below
forces that interleaving with the locks themselves, as tests/integration/
test_routing_locks.py does (the other transaction is let go once PostgreSQL reports
the path waiting), and checks that both commit and every lead is handed off:

* a scans import ends its transaction after a row that may have routed
  (:data:`baton.services.scans.CHUNK`; on PostgreSQL, SQLite has one writer);
* a history import locks every pool and rep both routings may take, in order, before
  the first (:func:`baton.services.history._lock_routing_in`);
* a hook request with several submissions, which cannot be ordered (a capture scores
  and routes before the next submission is read), is run once more when PostgreSQL
  aborted it as the deadlock victim (:func:`baton.services.intake._write_retrying`, through
  :meth:`baton.services.context.Context.write_retrying`).

Next to them, each new path gives the same leads, stages, transitions, activities,
handoffs, rotations and report as the path it replaces, on both databases (routing
breaks ties by lead and rep id, so the PostgreSQL runs start their sequences again).
Each deadlock test fails on the path it replaces: PostgreSQL reports "deadlock
detected" (scans, history) and the hook request is stored failed (202).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import re
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, select, text
from sqlalchemy.engine import Connection
from tests.integration import test_batch_routing as batch
from tests.integration import test_routing_locks as locks
from tests.integration.test_write_retry import _aborted

from baton.domain.access import operator
from baton.domain.intake import Delivery
from baton.domain.lifecycle import Stage
from baton.services import history as history_service
from baton.services import intake as intake_service
from baton.services import scans as scans_service
from baton.services.context import Context
from baton.services.history import import_history, save_mapping
from baton.services.routing import lock_pools, lock_reps
from baton.services.stages import change_stage_in
from baton.store.tables import (
    activities,
    handoffs,
    intake_requests,
    leads,
    metadata,
    reps,
    rotations,
    transitions,
)

OPS = operator("ops")
POSTGRES = locks.POSTGRES
BOTH = [pytest.param("sqlite", id="sqlite"), *POSTGRES]
HAND_RAISES = "  hand_raise: [demo_request, event_hot_scan]\n"
GERMANY_FITS = (
    "scoring:\n"
    "  fit:\n"
    "    - name: Germany\n"
    "      when: {field: country, in: [DE]}\n"
    "      points: 10\n"
)
"""With a threshold of 5: a German lead qualifies on score alone."""

PLAIN_CONTRACT = batch.contract_yaml
US, DE, FR = "p0@acme.com", "p1@acme.com", "p2@acme.com"  # the floor's three leads


def _floor(ctx: Context, monkeypatch: pytest.MonkeyPatch, *, germany_fits: bool) -> list[int]:
    """test_routing_locks' floor (rep 0 in team a and tag x, rep 1 in team b and tag x;
    US leads to pool ``team:a``, DE and FR leads to pool ``tag:x``) with a demo request
    and a hot badge scan as hand-raises; with ``germany_fits`` a German lead is an MQL
    on score. Returns the ids of the US, DE and FR leads."""

    def contract(*args: Any) -> str:
        yaml = PLAIN_CONTRACT(*args).replace(
            "  threshold: 1000\n", "  threshold: 1000\n" + HAND_RAISES
        )
        if germany_fits:
            yaml = yaml.replace("  threshold: 1000\n", "  threshold: 5\n")
            yaml = yaml.replace("mql:\n", GERMANY_FITS + "mql:\n")
        return yaml

    monkeypatch.setattr(batch, "contract_yaml", contract)
    return batch.set_up(ctx, locks.FLOOR, locks.RULES, False, [], locks.PEOPLE)


def _crossed(ctx: Context, work: Callable[[], Any]) -> None:
    """Run ``work`` while another transaction holds pool ``tag:x``; once ``work`` waits
    for it, the other locks every rep (rep 0 too, which ``work`` took first when it
    routed a US lead before), makes the FR lead an MQL and commits. Asserts that
    ``work`` ended without error. Should the two form a cycle, ``work`` is the one
    PostgreSQL aborts: the other waits 60 s, not 1, before it looks for one."""
    fr = _lead_id(ctx, FR)
    other = ctx.engine.connect()
    transaction = other.begin()
    other.execute(text("SET LOCAL deadlock_timeout = '60s'"))
    lock_pools(other, [locks._pool(ctx, 1)])
    thread, errors = locks._in_thread(work)
    locks._wait_until_blocked(ctx, thread)
    try:
        lock_reps(other, locks._rep_ids(ctx))
        change_stage_in(other, fr, Stage.MQL, actor=OPS, reason="t", now=ctx.clock.now())
        transaction.commit()
    finally:
        other.close()
    thread.join(120)
    assert not thread.is_alive()
    assert not errors, errors


def _lead_id(ctx: Context, email: str) -> int:
    with ctx.read() as connection:
        return int(
            connection.execute(select(leads.c.id).where(leads.c.email == email)).scalar_one()
        )


def _handed_off(ctx: Context) -> dict[str, tuple[str, str]]:
    """Email -> (stage, handoff status) of the leads with a handoff."""
    with ctx.read() as connection:
        return {
            str(email): (str(stage), str(status))
            for email, stage, status in connection.execute(
                select(leads.c.email, leads.c.stage, handoffs.c.status).join(
                    handoffs, handoffs.c.lead_id == leads.c.id
                )
            )
        }


# --- scans ----------------------------------------------------------------------------------


SCAN_ROWS = [
    (US, "US", "hot"),
    ("new1@initech.com", "DE", "cold"),
    (DE, "DE", "warm"),
    ("new2@initech.com", "FR", "hot"),
    (FR, "FR", "cold"),
    ("new1@initech.com", "DE", "hot"),  # nurtured above: stays there
    (DE, "DE", "hot"),
    ("new3@globex.com", "US", "hot"),
    (US, "US", "cold"),  # an MQL now: stays, with a warning
    ("new4@globex.com", "US", "warm"),
    ("new3@globex.com", "US", "hot"),
    ("new5@umbrella.com", "DE", "hot"),
    ("new6@umbrella.com", "FR", "cold"),
    (US, "US", "hot"),  # scanned again at the same minute: already imported
]
"""Hot, warm and cold rows over known and new people, some twice, a minute apart (the
last one at the first one's minute)."""
MQL_AFTER = [0, 3, 6, 7, 8, 10, 11]
"""The rows whose lead is an MQL after them (rows 8 and 10: leads that already were)."""


def _scans_file(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["Email", "Country", "Rating", "Scanned At"])
        for minute, row in enumerate(rows):
            minute = 0 if row == rows[0] else minute
            writer.writerow([*row, f"2026-03-01 10:{minute:02d}"])
    return path


@pytest.mark.parametrize("backend", POSTGRES)
def test_a_scans_import_routing_two_hot_rows_does_not_deadlock_with_a_capture(
    ctx: Context, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Two hot scans, a US lead (pool team:a, rep 0) then a DE lead (pool tag:x). In one
    transaction the second row locked pool tag:x after rep 0, and PostgreSQL aborted
    the import or the capture; now the first row's routing is committed before the
    second row begins, and both transactions commit."""
    _floor(ctx, monkeypatch, germany_fits=False)
    path = _scans_file(tmp_path / "scans.csv", [(US, "US", "hot"), (DE, "DE", "hot")])
    done: dict[str, Any] = {}

    def run() -> None:
        done["report"] = scans_service.import_scans(ctx, path, event="Expo", actor=OPS)

    _crossed(ctx, run)
    assert done["report"].mql == 2
    assert _handed_off(ctx) == dict.fromkeys((US, DE, FR), ("mql", "assigned"))


def _state(ctx: Context) -> dict[str, Any]:
    """What an import decided, keyed by email: lead and rep ids become their emails and
    the endpoint's id in an idempotency key is left out (PostgreSQL's sequences move on
    between two set-ups)."""
    with ctx.read() as connection:
        email = {int(i): str(e) for i, e in connection.execute(select(leads.c.id, leads.c.email))}
        rep = {int(i): str(e) for i, e in connection.execute(select(reps.c.id, reps.c.email))}

        def routing(decision: dict[str, Any]) -> str:
            named = {
                **decision,
                "rep_id": rep.get(decision["rep_id"] or 0),
                "skipped": [{**s, "rep_id": rep[s["rep_id"]]} for s in decision["skipped"]],
            }
            return json.dumps(named, sort_keys=True)

        return {
            "leads": sorted(
                (str(r.email), r.stage, r.activity_count) for r in connection.execute(select(leads))
            ),
            "transitions": sorted(
                (
                    email[r.lead_id],
                    r.from_stage,
                    r.to_stage,
                    r.reason,
                    r.historical,
                    str(r.occurred_at),
                )
                for r in connection.execute(select(transitions))
            ),
            "activities": sorted(
                (
                    email[r.lead_id],
                    r.type,
                    re.sub(r"^hook:\d+:", "hook:", r.idempotency_key or ""),
                    json.dumps(r.properties, sort_keys=True),
                )
                for r in connection.execute(select(activities))
            ),
            "handoffs": sorted(
                (email[r.lead_id], r.status, rep.get(r.rep_id or 0, ""), routing(r.routing))
                for r in connection.execute(select(handoffs))
            ),
            "rotations": sorted(
                (
                    r.pool,
                    r.virtual_pass,
                    json.dumps({rep[int(k)]: v for k, v in r.passes.items()}, sort_keys=True),
                )
                for r in connection.execute(select(rotations))
                if r.passes  # an empty rotation row is the same as none
            ),
        }


def _empty(ctx: Context) -> None:
    """Delete every row; on PostgreSQL the sequences start again too, so that both runs
    of a comparison give their rows the same ids (routing breaks ties by lead and rep
    id)."""
    with ctx.write() as connection:
        if connection.dialect.name == "postgresql":
            names = ", ".join(f'"{table.name}"' for table in metadata.sorted_tables)
            connection.execute(text(f"TRUNCATE {names} RESTART IDENTITY"))
            return
        for table in reversed(metadata.sorted_tables):
            connection.execute(delete(table))


def _new_and_old(
    ctx: Context,
    monkeypatch: pytest.MonkeyPatch,
    run: Callable[[], Any],
    *,
    new: Callable[[pytest.MonkeyPatch], None],
    old: Callable[[pytest.MonkeyPatch], None],
    germany_fits: bool,
) -> list[tuple[Any, dict[str, Any]]]:
    """The result and state of ``run`` on a fresh floor with ``new`` patched in, then
    on a fresh floor with ``old`` (the path it replaces)."""
    results = []
    for patch in (new, old):
        _empty(ctx)
        with monkeypatch.context() as patched:
            _floor(ctx, patched, germany_fits=germany_fits)
            patch(patched)
            results.append((run(), _state(ctx)))
    return results


def _as_is(patched: pytest.MonkeyPatch) -> None:
    """The code as it is."""


@pytest.mark.parametrize("backend", BOTH)
@pytest.mark.parametrize("chunk", [1, 4, 200])
def test_a_scans_import_equals_one_transaction_per_chunk(
    ctx: Context, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, chunk: int
) -> None:
    """Ending a transaction after a row that may have routed (on PostgreSQL; forced on
    SQLite here) changes what is locked when, not what is written: the same leads,
    stages, transitions, activities, handoffs, rotations and report as ``chunk`` rows
    per transaction whatever they do (the path it replaces); a second import of the
    file finds every row done."""
    monkeypatch.setattr(scans_service, "CHUNK", chunk)
    path = _scans_file(tmp_path / "scans.csv", SCAN_ROWS)

    commits: list[int] = []

    def run() -> tuple[Any, Any]:
        plain = ctx.write
        counted: list[int] = []

        def write() -> Any:
            counted.append(1)
            return plain()

        ctx.write = write  # type: ignore[method-assign]
        try:
            first = scans_service.import_scans(ctx, path, event="Expo", actor=OPS)
        finally:
            del ctx.write
        commits.append(len(counted))
        again = scans_service.import_scans(ctx, path, event="Expo", actor=OPS)
        return dataclasses.asdict(first), dataclasses.asdict(again)

    write = scans_service._write_scan

    def one_transaction_per_chunk(patched: pytest.MonkeyPatch) -> None:
        def never_ends_it(*args: Any, **kwargs: Any) -> bool:
            write(*args, **kwargs)
            return False

        patched.setattr(scans_service, "_write_scan", never_ends_it)

    def split_here_too(patched: pytest.MonkeyPatch) -> None:
        """The split is made on PostgreSQL only; compared on SQLite too."""
        patched.setattr(scans_service, "ROW_LOCKING", {"postgresql", "sqlite"})

    (new_report, new_state), (old_report, old_state) = _new_and_old(
        ctx, monkeypatch, run, new=split_here_too, old=one_transaction_per_chunk, germany_fits=False
    )
    assert new_state == old_state
    assert new_report == old_report
    assert (new_report[0]["mql"], new_report[0]["nurtured"]) == (5, 3)
    assert new_report[1]["duplicates"] == len(SCAN_ROWS)
    # The first import's transactions: one per chunk, and one more after each row whose
    # lead was an MQL after it (the old path: one per chunk).
    rows = len(SCAN_ROWS)
    ends = [i + 1 for i in MQL_AFTER if i + 1 < rows]
    assert commits == [len({*range(0, rows, chunk), *ends}), len(range(0, rows, chunk))]


# --- history --------------------------------------------------------------------------------


def _history_file(ctx: Context, path: Path, rows: list[tuple[str, str]]) -> Path:
    save_mapping(ctx, "crm", {"Email": "email", "MQL Date": "mql_at"}, actor=OPS)
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["Email", "MQL Date"])
        writer.writerows(rows)
    return path


@pytest.mark.parametrize("backend", POSTGRES)
def test_a_history_import_with_live_mqls_does_not_deadlock_with_a_capture(
    ctx: Context, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The file makes the US lead an MQL an hour ago (handed off live: pool team:a,
    rep 0); the DE lead, scored afterwards in the same transaction, qualifies on fit
    (pool tag:x). The second routing locked pool tag:x after rep 0, and PostgreSQL
    aborted the import or the capture; now the import locks every pool, then every
    rep, before the first routing, and both commit."""
    _floor(ctx, monkeypatch, germany_fits=True)
    hour_ago = (ctx.clock.now() - timedelta(hours=1)).strftime("%Y-%m-%d %H:%M")
    path = _history_file(ctx, tmp_path / "crm.csv", [(US, hour_ago), (DE, "")])
    done: dict[str, Any] = {}

    def run() -> None:
        done["report"] = import_history(ctx, path, actor=OPS, mapping="crm", historical=False)

    _crossed(ctx, run)
    assert done["report"].mql_live == 2
    assert _handed_off(ctx) == dict.fromkeys((US, DE, FR), ("mql", "assigned"))


HISTORY_ROWS = [
    (US, "-1h"),
    (DE, ""),
    (FR, "-2h"),
    ("new1@initech.com", "-3h"),
    ("new2@initech.com", "-40d"),  # older than the live window: history only
    ("new3@globex.com", ""),
]


@pytest.mark.parametrize("backend", BOTH)
def test_a_history_import_equals_the_one_without_its_routing_locks(
    ctx: Context, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Locking every pool and rep first changes what waits, not what is decided: the
    same stages, transitions, handoffs, rotations and report as the import that routed
    its live MQLs, then the leads qualifying on score, without it."""
    now = ctx.clock.now()

    def moment(offset: str) -> str:
        if not offset:
            return ""
        amount = int(offset[1:-1])
        delta = timedelta(hours=amount) if offset.endswith("h") else timedelta(days=amount)
        return (now - delta).strftime("%Y-%m-%d %H:%M")

    def run() -> dict[str, Any]:
        path = _history_file(ctx, tmp_path / "crm.csv", [(e, moment(o)) for e, o in HISTORY_ROWS])
        return dataclasses.asdict(
            import_history(ctx, path, actor=OPS, mapping="crm", historical=False)
        )

    locked: list[int] = []
    lock = history_service._lock_routing_in

    def counted(patched: pytest.MonkeyPatch) -> None:
        def take(connection: Connection, contract: Any) -> None:
            locked.append(1)
            lock(connection, contract)

        patched.setattr(history_service, "_lock_routing_in", take)

    def without_the_locks(patched: pytest.MonkeyPatch) -> None:
        patched.setattr(history_service, "_lock_routing_in", lambda *args: None)

    (new_report, new_state), (old_report, old_state) = _new_and_old(
        ctx, monkeypatch, run, new=counted, old=without_the_locks, germany_fits=True
    )
    assert locked == [1]  # the locks were taken (they are no-ops on SQLite)
    assert new_state == old_state
    assert new_report == old_report
    assert (new_report["mql_live"], new_report["mql_held_back"]) == (4, 1)


# --- intake -----------------------------------------------------------------------------------


def _endpoint(ctx: Context) -> None:
    spec = {
        "name": "forms",
        "kind": "generic",
        "source": "Website",
        "mapping": {
            "email": "email",
            "country": "country",
            "upstream_id": "id",
            "event_type_path": "kind",
            "event_types": {"demo": "demo_request", "newsletter": None},
        },
        "secret": None,
    }
    _, secret = intake_service.add_endpoint(ctx, spec, actor=OPS)
    if secret:
        intake_service.update_endpoint(ctx, "forms", {"secret": None}, actor=OPS)


def _post(ctx: Context, items: list[dict[str, Any]]) -> intake_service.HookOutcome:
    delivery = Delivery(
        body=json.dumps(items).encode(),
        content_type="application/json",
        headers={},
        query={},
        received_at=ctx.clock.now(),
    )
    return intake_service.receive(ctx, "forms", delivery, remote_address="203.0.113.9")


@pytest.mark.parametrize("backend", POSTGRES)
def test_a_hook_request_routing_two_submissions_survives_a_deadlock_with_a_capture(
    ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two demo requests in one request, a US lead (pool team:a, rep 0) then a DE lead
    (pool tag:x): the request's transaction deadlocks with the capture and PostgreSQL
    aborts it. It was stored ``failed`` (202, processed by a later retry); it is now
    run again at once and both leads are handed off in the request."""
    _floor(ctx, monkeypatch, germany_fits=False)
    _endpoint(ctx)
    done: dict[str, Any] = {}
    items = [
        {"id": "s1", "email": US, "country": "US", "kind": "demo"},
        {"id": "s2", "email": DE, "country": "DE", "kind": "demo"},
    ]

    def run() -> None:
        done["outcome"] = _post(ctx, items)

    _crossed(ctx, run)
    outcome = done["outcome"]
    assert (outcome.status, outcome.request_status) == (200, "processed")
    assert [i.status for i in outcome.items] == ["processed", "processed"]
    assert _handed_off(ctx) == dict.fromkeys((US, DE, FR), ("mql", "assigned"))
    with ctx.read() as connection:
        assert connection.execute(select(intake_requests.c.status)).scalars().all() == ["processed"]


@pytest.mark.parametrize("backend", BOTH)
def test_a_hook_request_aborted_once_is_processed_as_if_run_once(
    ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A request whose first run PostgreSQL aborted (simulated: a deadlock raised after
    its last submission, so every submission was done once and rolled back) gives the
    same leads, handoffs and answer as a request run once; a request aborted at every
    attempt is stored failed, for ``baton intake retry``."""
    process = intake_service._process_request_in
    runs: list[int] = []

    def aborted_first(patched: pytest.MonkeyPatch) -> None:
        def work(connection: Connection, *args: Any, **kwargs: Any) -> Any:
            outcome = process(connection, *args, **kwargs)
            runs.append(1)
            if len(runs) == 1:
                raise _aborted("40P01")
            return outcome

        patched.setattr(intake_service, "_process_request_in", work)

    items = [
        {"id": "s1", "email": US, "country": "US", "kind": "demo"},
        {"id": "s2", "email": "new@initech.com", "country": "DE", "kind": "newsletter"},
        {"id": "s3", "email": DE, "country": "DE", "kind": "demo"},
    ]

    def run() -> dict[str, Any]:
        _endpoint(ctx)
        outcome = _post(ctx, items)
        return {
            "status": (outcome.status, outcome.request_status),
            "items": [(i.status, i.activity_id is not None) for i in outcome.items],
        }

    (new_answer, new_state), (old_answer, old_state) = _new_and_old(
        ctx, monkeypatch, run, new=aborted_first, old=_as_is, germany_fits=False
    )
    assert runs == [1, 1]  # aborted once, run again
    assert new_state == old_state
    assert new_answer == old_answer
    assert new_answer["status"] == (200, "processed")
    assert {stage for stage, _ in _handed_off(ctx).values()} == {"mql"}

    def always(connection: Connection, *args: Any, **kwargs: Any) -> Any:
        raise _aborted("40P01")

    _empty(ctx)
    _floor(ctx, monkeypatch, germany_fits=False)
    _endpoint(ctx)
    monkeypatch.setattr(intake_service, "_process_request_in", always)
    outcome = _post(ctx, items)
    assert (outcome.status, outcome.request_status) == (202, "failed")
