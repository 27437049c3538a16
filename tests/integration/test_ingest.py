"""Activity ingest: batches with bad rows, idempotency, lead creation and counters."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Connection

from baton.domain.access import operator
from baton.domain.activities import ActivityCreate
from baton.domain.clock import ManualClock
from baton.domain.event_rows import EventRow
from baton.services import activities as activity_service
from baton.services.activities import ingest_activities, ingest_activity
from baton.services.context import Context
from baton.services.contracts import activate_contract, approve_contract, create_contract
from baton.services.leads import CaptureResult, get_lead, list_leads
from baton.services.merge import merge_leads
from baton.services.scoring import lead_score
from baton.services.timeline import lead_timeline
from baton.store import bulk
from baton.store.bulk import ActivityRow, insert_activity_rows
from baton.store.tables import activities

EXAMPLE = (Path(__file__).parents[2] / "contracts" / "example.yaml").read_text()

CLI = operator()
"""The local operator, reading what a test stored (reads record nothing)."""

Capture = Callable[..., CaptureResult]


def page_view(clock: ManualClock, email: str | None, key: str | None, **extra: Any) -> dict:
    row: dict[str, Any] = {
        "type": "page_view",
        "occurred_at": clock.now().isoformat(),
        "properties": {"url": "/pricing"},
    }
    if email is not None:
        row["email"] = email
    if key is not None:
        row["idempotency_key"] = key
    return row | extra


def activities_of(ctx: Context, lead_id: int, kind: str | None = None) -> list[dict[str, Any]]:
    return [
        i.data
        for i in lead_timeline(ctx, lead_id, actor=CLI)
        if i.kind == "activity" and (kind is None or i.data["type"] == kind)
    ]


def lead_id_by_email(ctx: Context, email: str) -> int:
    [lead] = [
        lead for lead in list_leads(ctx, search=email, actor=CLI).items if lead.email == email
    ]
    return lead.id


def test_bad_rows_are_reported_by_index_and_good_rows_stored(
    ctx: Context, clock: ManualClock
) -> None:
    rows = [
        page_view(clock, "dana@northwind.com", "e-0"),
        page_view(clock, "dana@northwind.com", "e-1", type="page_veiw"),
        page_view(clock, None, "e-2"),
        page_view(clock, "sam@acme.io", "e-3"),
        page_view(clock, "not-an-email", "e-4"),
        page_view(clock, "dana@northwind.com", "e-5", occurred_at="2026-03-02T08:00:00"),
        page_view(clock, "dana@northwind.com", "e-6", occurred_at=clock.now() + timedelta(days=1)),
    ]
    report = ingest_activities(ctx, rows, actor=operator("web"))
    assert report.received == 7
    assert report.stored == 2
    assert report.leads_created == 2
    assert sorted({e.row for e in report.errors}) == [1, 2, 4, 5, 6]
    fields = {e.row: e.field for e in report.errors}
    assert fields[1] == "type"
    assert fields[4] == "email"
    assert fields[5] == "occurred_at"
    assert fields[6] == "occurred_at"
    assert all(e.message for e in report.errors)
    assert len(activities_of(ctx, lead_id_by_email(ctx, "dana@northwind.com"))) == 1
    assert len(activities_of(ctx, lead_id_by_email(ctx, "sam@acme.io"))) == 1
    assert list_leads(ctx, actor=CLI).total == 2


def test_a_retried_batch_stores_nothing_twice(ctx: Context, clock: ManualClock) -> None:
    rows = [page_view(clock, f"user{i}@northwind.com", f"evt-{i}") for i in range(5)]
    first = ingest_activities(ctx, rows, actor=operator("web"))
    assert (first.stored, first.duplicates, first.leads_created) == (5, 0, 5)
    clock.advance(minutes=3)
    again = ingest_activities(ctx, rows, actor=operator("web"))
    assert (again.stored, again.duplicates, again.leads_created, again.errors) == (0, 5, 0, [])
    for i in range(5):
        lead = get_lead(ctx, lead_id_by_email(ctx, f"user{i}@northwind.com"), actor=CLI)
        assert lead.activity_count == 1
        assert len(activities_of(ctx, lead.id)) == 1


def test_a_partly_new_batch_stores_only_the_new_events(ctx: Context, clock: ManualClock) -> None:
    ingest_activities(ctx, [page_view(clock, "dana@northwind.com", "a")], actor=operator("web"))
    rows = [page_view(clock, "dana@northwind.com", key) for key in ("a", "b", "c")]
    report = ingest_activities(ctx, rows, actor=operator("web"))
    assert (report.stored, report.duplicates) == (2, 1)
    assert len(activities_of(ctx, lead_id_by_email(ctx, "dana@northwind.com"))) == 3


def test_the_same_key_twice_in_one_batch_is_stored_once(ctx: Context, clock: ManualClock) -> None:
    rows = [
        page_view(clock, "dana@northwind.com", "dup"),
        page_view(clock, "dana@northwind.com", "dup"),
    ]
    report = ingest_activities(ctx, rows, actor=operator("web"))
    assert (report.stored, report.duplicates) == (1, 1)
    assert len(activities_of(ctx, lead_id_by_email(ctx, "dana@northwind.com"))) == 1


def test_events_without_a_key_are_all_stored(ctx: Context, clock: ManualClock) -> None:
    rows = [page_view(clock, "dana@northwind.com", None) for _ in range(3)]
    assert ingest_activities(ctx, rows, actor=operator("web")).stored == 3
    assert ingest_activities(ctx, rows, actor=operator("web")).stored == 3
    assert len(activities_of(ctx, lead_id_by_email(ctx, "dana@northwind.com"))) == 6


def test_an_unknown_email_creates_one_lead_with_the_events_source(
    ctx: Context, clock: ManualClock
) -> None:
    rows = [
        page_view(clock, "New.Person@Acme.io", "n-1", source="ads", campaign="spring"),
        page_view(clock, "new.person@ACME.IO", "n-2"),
    ]
    report = ingest_activities(ctx, rows, actor=operator("web"))
    assert (report.stored, report.leads_created) == (2, 1)
    [lead] = list_leads(ctx, actor=CLI).items
    assert lead.email is not None and lead.email.lower() == "new.person@acme.io"
    assert (lead.source, lead.campaign, lead.stage) == ("ads", "spring", "lead")
    assert lead.activity_count == 2


def test_events_for_an_existing_lead_use_that_lead(
    ctx: Context, clock: ManualClock, capture: Capture
) -> None:
    lead_id = capture(email="dana@northwind.com", source="webinar").lead.id
    rows = [
        page_view(clock, "DANA@northwind.com", "x-1", source="ads"),
        page_view(clock, None, "x-2", lead_id=lead_id),
    ]
    report = ingest_activities(ctx, rows, actor=operator("web"))
    assert (report.stored, report.leads_created, report.errors) == (2, 0, [])
    assert len(activities_of(ctx, lead_id, "page_view")) == 2
    assert get_lead(ctx, lead_id, actor=CLI).source == "webinar"


def test_an_unknown_lead_id_is_a_row_error(ctx: Context, clock: ManualClock) -> None:
    rows = [page_view(clock, None, "u-1", lead_id=987_654_321), page_view(clock, "a@b.io", "u-2")]
    report = ingest_activities(ctx, rows, actor=operator("web"))
    assert report.stored == 1
    [error] = report.errors
    assert (error.row, error.field) == (0, "lead_id")
    assert "987654321" in error.message


def test_counters_follow_the_events(ctx: Context, clock: ManualClock, capture: Capture) -> None:
    lead_id = capture(email="dana@northwind.com").lead.id
    captured_at = clock.now()
    older = captured_at - timedelta(days=2)
    ingest_activities(
        ctx,
        [page_view(clock, "dana@northwind.com", "old", occurred_at=older)],
        actor=operator("web"),
    )
    lead = get_lead(ctx, lead_id, actor=CLI)
    assert lead.activity_count == 2
    assert lead.last_activity_at == captured_at
    clock.advance(hours=5)
    newer = [page_view(clock, "dana@northwind.com", f"new-{i}") for i in range(3)]
    ingest_activities(ctx, newer, actor=operator("web"))
    lead = get_lead(ctx, lead_id, actor=CLI)
    assert lead.activity_count == 5
    assert lead.last_activity_at == clock.now()
    ingest_activities(ctx, newer, actor=operator("web"))
    assert get_lead(ctx, lead_id, actor=CLI).activity_count == 5


def test_events_for_a_merged_leads_id_go_to_the_survivor(
    ctx: Context, clock: ManualClock, capture: Capture
) -> None:
    survivor = capture(email="dana@northwind.com").lead.id
    absorbed = capture(email="dana@gmail.com").lead.id
    merge_leads(ctx, survivor, absorbed, actor=operator("alice"))
    clock.advance(hours=1)
    report = ingest_activities(
        ctx,
        [page_view(clock, None, "m-1", lead_id=absorbed)],
        actor=operator("web"),
        return_ids=True,
    )
    assert report.lead_ids == [survivor]
    assert report.stored == 1
    survivor_lead = get_lead(ctx, survivor, actor=CLI)
    assert survivor_lead.activity_count == 3
    assert survivor_lead.last_activity_at == clock.now()
    assert get_lead(ctx, absorbed, actor=CLI).activity_count == 0


def test_ids_are_reported_per_row(ctx: Context, clock: ManualClock) -> None:
    rows = [
        page_view(clock, "a@northwind.com", "r-0"),
        page_view(clock, "bad", "r-1"),
        page_view(clock, "b@northwind.com", "r-2"),
    ]
    report = ingest_activities(ctx, rows, actor=operator("web"), return_ids=True)
    assert report.activity_ids[1] is None and report.lead_ids[1] is None
    stored = {a["id"] for a in activities_of(ctx, report.lead_ids[0])}
    assert report.activity_ids[0] in stored
    stored = {a["id"] for a in activities_of(ctx, report.lead_ids[2])}
    assert report.activity_ids[2] in stored
    retry = ingest_activities(ctx, rows, actor=operator("web"), return_ids=True)
    assert retry.activity_ids == report.activity_ids, "a retry answers with the first ids"
    assert retry.stored == 0 and retry.duplicates == 2
    assert retry.lead_ids[0] == report.lead_ids[0]


def test_naive_times_in_files_are_read_in_the_given_zone(ctx: Context, clock: ManualClock) -> None:
    row = page_view(clock, "dana@northwind.com", "tz-1", occurred_at="2026-03-02T08:30:00")
    report = ingest_activities(ctx, [row], actor=operator("csv"), naive_timezone="Europe/Berlin")
    assert report.stored == 1
    [item] = [
        i
        for i in lead_timeline(ctx, lead_id_by_email(ctx, "dana@northwind.com"), actor=CLI)
        if i.kind == "activity"
    ]
    assert item.at == clock.now() - timedelta(hours=1, minutes=30)


def test_a_single_retried_event_returns_the_first_id(ctx: Context, clock: ManualClock) -> None:
    event = ActivityCreate.model_validate(page_view(clock, "dana@northwind.com", "one"))
    first = ingest_activity(ctx, event, actor=operator("web"))
    assert (first.duplicate, first.lead_created) == (False, True)
    again = ingest_activity(ctx, event, actor=operator("web"))
    assert (again.duplicate, again.lead_created) == (True, False)
    assert again.activity_id == first.activity_id
    assert again.lead_id == first.lead_id
    assert [a["id"] for a in activities_of(ctx, first.lead_id)] == [first.activity_id]


def test_a_large_batch_goes_through_in_one_call(ctx: Context, clock: ManualClock) -> None:
    rows = [page_view(clock, f"p{i % 1200}@northwind.com", f"big-{i}") for i in range(2500)]
    report = ingest_activities(ctx, rows, actor=operator("web"))
    assert (report.stored, report.leads_created, report.errors) == (2500, 1200, [])
    assert list_leads(ctx, limit=1, actor=CLI).total == 1200


def test_batch_and_single_paths_store_events_identically(ctx: Context, clock: ManualClock) -> None:
    """The batch path writes with driver-level bulk statements, the single path through
    SQLAlchemy Core: a client must not be able to tell the results apart."""
    clock.advance(timedelta(microseconds=123_457))
    occurred = "2026-03-02T10:59:58.654321+02:00"
    properties = {"url": "/preise?x=1&y=ü", "nested": {"list": [1, 2.5, None, True]}, "n": 0}
    base = {"type": "form_submit", "occurred_at": occurred, "properties": properties}
    batch = ingest_activities(
        ctx,
        [base | {"email": "batch@northwind.com", "idempotency_key": "b-1"}],
        actor=operator("web"),
    )
    single = ingest_activity(
        ctx,
        ActivityCreate.model_validate(
            base | {"email": "single@northwind.com", "idempotency_key": "s-1"}
        ),
        actor=operator("web"),
    )
    assert batch.stored == 1 and not single.duplicate
    read = []
    for email in ("batch@northwind.com", "single@northwind.com"):
        lead_id = lead_id_by_email(ctx, email)
        [item] = [i for i in lead_timeline(ctx, lead_id, actor=CLI) if i.kind == "activity"]
        lead = get_lead(ctx, lead_id, actor=CLI)
        read.append((item.at, item.data["type"], item.data["properties"], lead.last_activity_at))
    assert read[0] == read[1]
    at, kind, props, last = read[0]
    assert at == datetime(2026, 3, 2, 8, 59, 58, 654_321, tzinfo=UTC)
    assert (kind, props, last) == ("form_submit", properties, at)


def test_last_activity_never_moves_backwards_at_microsecond_scale(
    ctx: Context, clock: ManualClock, capture: Capture
) -> None:
    lead_id = capture(email="dana@northwind.com").lead.id
    clock.advance(timedelta(microseconds=500))
    newest = clock.now()
    rows = [
        page_view(clock, "dana@northwind.com", "m-new", occurred_at=newest.isoformat()),
        page_view(
            clock,
            "dana@northwind.com",
            "m-old",
            occurred_at=(newest - timedelta(microseconds=1)).isoformat(),
        ),
    ]
    ingest_activities(ctx, rows[:1], actor=operator("web"))
    ingest_activities(ctx, rows[1:], actor=operator("web"))
    assert get_lead(ctx, lead_id, actor=CLI).last_activity_at == newest


# --- chunked transactions, COPY and the fast paths (issue 17) ------------------------------


def test_a_capture_goes_between_the_transactions_of_a_large_ingest(
    ctx: Context, clock: ManualClock, capture: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A large batch is written in several transactions and another writer gets its
    turn between them: here the ingest thread, once its first transaction has
    committed, waits until a capture made meanwhile on another thread is done."""
    monkeypatch.setattr(activity_service, "COMMIT_ROWS", 50)
    rows = [page_view(clock, f"p{i % 70}@northwind.com", f"chunk-{i}") for i in range(200)]
    ingesting = threading.get_ident()
    first_committed, captured = threading.Event(), threading.Event()
    commits = {"before": 0, "after": 0}
    write = ctx.write

    @contextmanager
    def watched_write() -> Iterator[Connection]:
        with write() as connection:
            yield connection
        if threading.get_ident() == ingesting:
            commits["after" if captured.is_set() else "before"] += 1
            first_committed.set()
            assert captured.wait(60), "the capture never ran"

    monkeypatch.setattr(ctx, "write", watched_write)
    outcome: dict[str, Any] = {}

    def capture_meanwhile() -> None:
        assert first_committed.wait(60)
        try:
            outcome["lead"] = capture(email="dana@northwind.com").lead.id
        except Exception as exc:  # reported below, with the ingest's outcome
            outcome["error"] = exc
        finally:
            captured.set()

    other = threading.Thread(target=capture_meanwhile)
    other.start()
    report = ingest_activities(ctx, rows, actor=operator("web"))
    other.join()
    assert "error" not in outcome and outcome["lead"]
    assert (report.stored, report.leads_created, report.errors) == (200, 70, [])
    assert commits == {"before": 1, "after": 3}, "the ingest went on after the capture"
    assert list_leads(ctx, limit=1, actor=CLI).total == 71


def test_a_batch_that_fails_halfway_keeps_its_first_transactions_and_a_retry_completes_it(
    ctx: Context, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(activity_service, "COMMIT_ROWS", 4)
    rows = [page_view(clock, f"p{i % 3}@northwind.com", f"half-{i}") for i in range(10)]
    real = activity_service.bump_counters
    calls = []

    def failing_second(connection: Connection, per_lead: Any, **options: Any) -> None:
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("the database went away")
        real(connection, per_lead, **options)

    monkeypatch.setattr(activity_service, "bump_counters", failing_second)
    with pytest.raises(RuntimeError):
        ingest_activities(ctx, rows, actor=operator("web"))
    monkeypatch.setattr(activity_service, "bump_counters", real)
    retry = ingest_activities(ctx, rows, actor=operator("web"))
    assert (retry.stored, retry.duplicates, retry.errors) == (6, 4, [])
    total = sum(
        get_lead(ctx, lead_id_by_email(ctx, f"p{i}@northwind.com"), actor=CLI).activity_count
        for i in range(3)
    )
    assert total == 10, "every event counted once"


AWKWARD = {
    "note": 'tab\there, line\nbreak, cr\r, back\\slash, "quotes", ü, 😀, \\N',
    "path": "C:\\temp\\x",
    "n": -12.5,
    "empty": "",
    "none": None,
}


def test_events_with_awkward_text_read_back_as_sent(ctx: Context, clock: ManualClock) -> None:
    """Text goes to PostgreSQL through COPY's escaped text format and to SQLite as
    parameters: both read back exactly."""
    keys = ["k\\1", "k\t2", 'k"3', "k 4 ü", "\\N"]
    rows = [
        page_view(clock, "dana@northwind.com", key, properties=AWKWARD, campaign="c\\t")
        for key in keys
    ]
    report = ingest_activities(ctx, rows, actor=operator("we\\b\tsite"))
    assert (report.stored, report.errors) == (5, [])
    with ctx.read() as connection:
        stored = connection.execute(
            select(activities.c.idempotency_key, activities.c.properties, activities.c.recorded_by)
        ).all()
    assert sorted(key for key, _, _ in stored) == sorted(keys)
    assert all(props == AWKWARD and by == "we\\b\tsite" for _, props, by in stored)
    again = ingest_activities(ctx, rows, actor=operator("web"))
    assert (again.stored, again.duplicates) == (0, 5)


def test_leads_an_ingest_creates_keep_awkward_sources_as_sent(
    ctx: Context, clock: ManualClock
) -> None:
    """New leads go to PostgreSQL as one array literal per column (quotes, backslashes,
    commas and braces escaped, the text "NULL" kept as text): they read back exactly."""
    sources = ['a"b', "c\\d", "e,f", "{g}", "null", "h ü"]
    rows = [
        page_view(clock, f"person{n}@northwind.com", None, source=source, campaign=source)
        for n, source in enumerate(sources)
    ]
    report = ingest_activities(ctx, rows, actor=operator("ops"))
    assert (report.stored, report.leads_created, report.errors) == (6, 6, [])
    for n, source in enumerate(sources):
        lead = get_lead(ctx, lead_id_by_email(ctx, f"person{n}@northwind.com"), actor=CLI)
        assert (lead.source, lead.campaign) == (source, source)


def test_a_key_stored_by_another_writer_after_the_look_up_is_skipped(
    ctx: Context, clock: ManualClock, capture: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL looks the keys up and copies the rows it did not find: a key another
    writer stored after that look-up (here: a look-up that misses it) makes the copy
    fail, and the rows then go in skipping it. SQLite inserts skipping known keys and
    reads back which rows went in. A key repeated in the rows is stored once."""
    lead_id = capture(email="dana@northwind.com").lead.id
    ingest_activities(ctx, [page_view(clock, "dana@northwind.com", "raced")], actor=CLI)
    monkeypatch.setattr(bulk, "find_by_keys", lambda *args, **kwargs: [])
    now = clock.now()
    rows = [
        ActivityRow(lead_id, "page_view", now, now, {"i": i}, key, "web")
        for i, key in enumerate(["fresh-1", "raced", None, "fresh-2", "fresh-1"])
    ]
    with ctx.write() as connection:
        assert insert_activity_rows(connection, rows) == [0, 2, 3]
    monkeypatch.undo()
    stored = [a["properties"] for a in activities_of(ctx, lead_id, "page_view")]
    assert sorted(stored, key=str) == [{"i": 0}, {"i": 2}, {"i": 3}, {"url": "/pricing"}]


def _engagement(clock: ManualClock, email: str) -> list[dict[str, Any]]:
    kinds = ["page_view", "email_open", "email_click", "webinar_attended", "page_view"]
    rows = [
        page_view(
            clock,
            email,
            f"{email}-{i}",
            type=kinds[i % len(kinds)],
            occurred_at=(clock.now() - timedelta(hours=40 - i)).isoformat(),
        )
        for i in range(14)
    ]
    rows[9]["type"] = "demo_request"  # a hand-raise halfway: the lead becomes an MQL
    return rows


def test_scores_are_the_same_whether_a_batch_is_written_in_one_transaction_or_many(
    ctx: Context, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    version = create_contract(ctx, EXAMPLE, actor=operator("maria")).version
    approve_contract(ctx, version, role="marketing", actor=operator("maria"))
    approve_contract(ctx, version, role="sales", actor=operator("sam"))
    activate_contract(ctx, version, actor=operator("maria"))
    people = [f"person{i}@northwind.com" for i in range(3)]
    whole = ingest_activities(
        ctx, [r for p in people for r in _engagement(clock, "one." + p)], actor=operator("web")
    )
    monkeypatch.setattr(activity_service, "COMMIT_ROWS", 5)
    pieces = ingest_activities(
        ctx, [r for p in people for r in _engagement(clock, "many." + p)], actor=operator("web")
    )
    assert len(whole.mql) == len(pieces.mql) == 3
    for person in people:
        one, many = (lead_id_by_email(ctx, f"{how}.{person}") for how in ("one", "many"))
        a, b = lead_score(ctx, one, actor=CLI), lead_score(ctx, many, actor=CLI)
        assert (a.fit, a.engagement, a.total, a.grade) == (b.fit, b.engagement, b.total, b.grade)
        la, lb = get_lead(ctx, one, actor=CLI), get_lead(ctx, many, actor=CLI)
        assert (la.stage, la.activity_count, la.last_activity_at) == (
            lb.stage,
            lb.activity_count,
            lb.last_activity_at,
        )


def test_a_batch_named_by_emails_alone_finds_the_leads_the_per_event_loop_finds(
    ctx: Context, clock: ManualClock, capture: Capture
) -> None:
    """The shortcut for the common batch (every event named by its email alone) against
    the per-event loop the same batch takes once one event names its lead by id."""
    survivor = capture(email="dana@northwind.com").lead.id
    absorbed = capture(email="dana@gmail.com").lead.id
    merge_leads(ctx, survivor, absorbed, actor=operator("alice"))
    sam = capture(email="sam@acme.io").lead.id
    emails = ["dana@gmail.com", "sam@acme.io", "new@acme.io", "dana@northwind.com", "new@acme.io"]
    events = [
        (n, EventRow(email, None, "page_view", clock.now(), {}, None, None, None))
        for n, email in enumerate(emails)
    ]
    by_id = (len(events), EventRow(None, sam, "page_view", clock.now(), {}, None, None, None))
    with ctx.write() as connection:
        shortcut = activity_service._resolve_leads(
            connection, events, now=clock.now(), report=activity_service.IngestReport()
        )
        loop = activity_service._resolve_leads(
            connection, [*events, by_id], now=clock.now(), report=activity_service.IngestReport()
        )
    new = shortcut[2]
    assert new not in (None, survivor, absorbed, sam)
    assert shortcut == loop[:-1] == [survivor, sam, new, survivor, new]
    assert loop[-1] == sam


def test_raw_rows_and_models_store_the_same_leads_counters_and_events(
    ctx: Context, clock: ManualClock
) -> None:
    """Raw rows take the fast checks (addresses remembered across batches, with the key
    of each) and models the plain path: the same leads, counters and events either way,
    batch after batch."""
    addresses = ["Dana.Reyes@NorthWind.COM", "dana.reyes@northwind.com", "sam@Acme.io"]

    def batches(prefix: str) -> list[list[dict[str, Any]]]:
        return [
            [
                page_view(clock, f"{prefix}{a}", f"{prefix}{n}-{i}", type=kind)
                | {"properties": {"url": f"/{n}/{i}"}}
                for i, a in enumerate(addresses)
            ]
            for n, kind in enumerate(["page_view", "Email Open", "form_submit"])
        ]

    def stored(prefix: str) -> list[tuple[Any, ...]]:
        leads = list_leads(ctx, search=f"{prefix}", actor=CLI).items
        return sorted(
            (
                lead.email.removeprefix(prefix) if lead.email else None,
                lead.activity_count,
                lead.last_activity_at,
                sorted((a["type"], a["properties"]["url"]) for a in activities_of(ctx, lead.id)),
            )
            for lead in leads
            if lead.email and lead.email.startswith(prefix)
        )

    raw, as_models = batches("raw"), batches("model")
    for batch, models in zip(raw, as_models, strict=True):
        assert not ingest_activities(ctx, batch, actor=operator("web")).errors
        validated = [ActivityCreate.model_validate(row) for row in models]
        assert not ingest_activities(ctx, validated, actor=operator("web")).errors
    assert stored("raw") == stored("model")
    assert [row[:2] for row in stored("raw")] == [
        ("Dana.Reyes@northwind.com", 6),
        ("sam@acme.io", 3),
    ]


ON_POSTGRESQL = pytest.mark.parametrize(
    "backend", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True
)


@ON_POSTGRESQL
def test_the_counter_update_leaves_the_transactions_planner_settings_as_they_were(
    ctx: Context, clock: ManualClock
) -> None:
    """The counter update plans with the cost of a page in memory, for itself only: the
    statements after it in the same transaction (scoring) plan as configured."""
    many = bulk.CACHED_PLAN_FROM
    rows = [page_view(clock, f"p{i}@northwind.com", f"k-{i}") for i in range(many)]
    ingest_activities(ctx, rows, actor=operator("web"))
    lead_ids = [lead_id_by_email(ctx, f"p{i}@northwind.com") for i in (0, many - 1)]
    later = clock.now() + timedelta(minutes=1)
    with ctx.write() as connection:
        all_ids = [i for (i,) in connection.exec_driver_sql("SELECT id FROM leads")]
        connection.exec_driver_sql("SET LOCAL random_page_cost = 3.5")
        bulk.bump_counters(connection, dict.fromkeys(all_ids, (2, later)))
        setting = connection.exec_driver_sql("SHOW random_page_cost").scalar()
    assert len(all_ids) == many and setting == "3.5"
    for lead_id in lead_ids:
        lead = get_lead(ctx, lead_id, actor=CLI)
        assert (lead.activity_count, lead.last_activity_at) == (3, later)


def test_an_ingest_that_creates_many_leads_refreshes_the_planners_count_of_them(
    own_postgres: Context,
) -> None:
    ctx = own_postgres
    clock = ctx.clock
    assert isinstance(clock, ManualClock)
    rows = [page_view(clock, f"p{i}@northwind.com", f"k-{i}") for i in range(1_200)]
    report = ingest_activities(ctx, rows, actor=operator("web"))
    assert report.leads_created == 1_200
    with ctx.engine.connect() as connection:
        counted = connection.exec_driver_sql(
            "SELECT reltuples FROM pg_class WHERE relname = 'leads'"
        ).scalar()
    assert counted == 1_200


def test_one_event_sent_again_answers_its_first_id_and_counts_once(
    ctx: Context, clock: ManualClock
) -> None:
    """One event alone (a hook's, an API call's) is not looked up before its insert:
    the insert itself finds its key taken, and the answer is the same as a batch's."""
    row = [page_view(clock, "solo@northwind.com", "solo-1")]
    first = ingest_activities(ctx, row, actor=operator("web"), return_ids=True)
    again = ingest_activities(ctx, row, actor=operator("web"), return_ids=True)
    assert (first.stored, first.duplicates) == (1, 0)
    assert (again.stored, again.duplicates) == (0, 1)
    assert again.activity_ids == first.activity_ids and again.lead_ids == first.lead_ids
    assert [a["id"] for a in activities_of(ctx, first.lead_ids[0])].count(
        first.activity_ids[0]
    ) == 1
    lead = get_lead(ctx, first.lead_ids[0], actor=CLI)
    assert lead.activity_count == 1
