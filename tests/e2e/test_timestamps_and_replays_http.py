"""Over real HTTP, on SQLite and PostgreSQL (issue 17, found by the real-data trial):
the activities API (one event and a batch), the calls API and a capture's
``occurred_at`` take RFC 3339's lowercase ``t``/``z`` and a space separator and store
the same moment as the canonical spelling, still refusing a time without its zone; a
generic hook takes epoch seconds sent as a text of digits and refuses an absurd one
naming the field; a replayed hook request whose submission fails again answers
``partial`` like the first run."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from tests.conftest import bearer, token_for
from tests.e2e.live_server import live_server

from baton.api.app import create_app
from baton.domain.access import operator
from baton.services import intake as intake_service
from baton.services.context import Context
from baton.store.tables import activities

OP = operator("test")
AT = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
SPELLINGS = [
    "2026-03-02T08:00:00Z",
    "2026-03-02t08:00:00z",
    "2026-03-02 08:00:00Z",
    "2026-03-02t09:00:00+01:00",
    "2026-03-02 07:00:00.000-01:00",
]


@pytest.fixture
def served(ctx: Context) -> Iterator[tuple[Context, httpx.Client]]:
    headers = bearer(token_for(ctx, "admin", email="ops@lumen.example"))
    with (
        live_server(create_app(ctx)) as url,
        httpx.Client(base_url=url, timeout=30, headers=headers) as client,
    ):
        yield ctx, client


def stored_times(ctx: Context, **where: Any) -> list[datetime]:
    query = select(activities.c.occurred_at).order_by(activities.c.id)
    for name, value in where.items():
        query = query.where(activities.c[name] == value)
    with ctx.read() as connection:
        return [t.astimezone(UTC) for t in connection.execute(query).scalars()]


def test_activities_calls_and_captures_take_every_rfc3339_spelling(
    served: tuple[Context, httpx.Client],
) -> None:
    ctx, client = served
    for n, sent in enumerate(SPELLINGS):
        made = client.post(
            "/api/v1/activities",
            json={"email": f"one{n}@northwind.com", "type": "page_view", "occurred_at": sent},
        )
        assert made.status_code == 201, (sent, made.text)
    rows = [
        {"email": f"batch{n}@northwind.com", "type": "page_view", "occurred_at": sent}
        for n, sent in enumerate([*SPELLINGS, "2026-03-02 08:00:00", "2026-03-02_08:00:00Z"])
    ]
    batch = client.post("/api/v1/activities/batch", json={"activities": rows})
    assert batch.status_code == 200, batch.text
    answer = batch.json()
    assert answer["stored"] == len(SPELLINGS)
    assert [(e["index"], e["field"]) for e in answer["errors"]] == [
        (len(SPELLINGS), "occurred_at"),
        (len(SPELLINGS) + 1, "occurred_at"),
    ]
    assert stored_times(ctx, type="page_view") == [AT] * (2 * len(SPELLINGS))
    schema = client.get("/openapi.json").json()["components"]["schemas"]["ActivityCreate"]
    [pattern] = [
        o["pattern"] for o in schema["properties"]["occurred_at"]["anyOf"] if "pattern" in o
    ]
    assert all(re.search(pattern, sent) for sent in SPELLINGS), "the schema says so too"
    assert not any(re.search(pattern, r["occurred_at"]) for r in rows[len(SPELLINGS) :])
    naive = client.post(
        "/api/v1/activities",
        json={"email": "x@northwind.com", "type": "page_view", "occurred_at": "2026-03-02 08:00"},
    )
    assert naive.status_code == 422
    assert naive.json()["errors"][0]["loc"] == "occurred_at"
    call = client.post(
        "/api/v1/calls", json={"phone": "+14155550100", "occurred_at": "2026-03-02t08:00:00z"}
    )
    assert call.status_code in (200, 201), call.text
    assert stored_times(ctx, type="inbound_call") == [AT]
    for n, sent in enumerate(SPELLINGS):
        captured = client.post(
            "/api/v1/leads", json={"email": f"cap{n}@acme.example", "occurred_at": sent}
        )
        assert captured.status_code == 201, (sent, captured.text)
        lead_id = captured.json()["lead"]["id"]
        assert stored_times(ctx, type="captured", lead_id=lead_id) == [AT], sent


def test_a_generic_hook_takes_epoch_text_and_answers_a_failing_replay_honestly(
    served: tuple[Context, httpx.Client],
) -> None:
    ctx, client = served
    mapping = {"email": "contact.email", "upstream_id": "id", "occurred_at": "at"}
    spec = {"name": "contact", "kind": "generic", "source": "website", "mapping": mapping}
    intake_service.add_endpoint(ctx, {**spec, "secret": None}, actor=OP)
    intake_service.update_endpoint(ctx, "contact", {"secret": None}, actor=OP)

    def submission(n: int, at: Any, email: str | None = None) -> dict[str, Any]:
        return {"id": f"s-{n}", "at": at, "contact": {"email": email or f"d{n}@acme.example"}}

    taken = client.post("/hooks/contact", json=[submission(1, "1772438400"), submission(2, "")])
    assert taken.status_code == 200 and taken.json()["status"] == "processed", taken.text
    received = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # "" is "when received"
    assert stored_times(ctx, type="form_submit") == [AT, received]
    for at, message in (
        ("9999999999", "'9999999999' is not between 1970 and 2200"),
        (
            99999999999,
            "99999999999 as epoch seconds is after 2200: send ISO 8601 text, or epoch "
            "seconds (10 digits) or milliseconds (13 digits), from 1970 to 2200",
        ),
        (
            1772438400000000,
            "1772438400000000 looks like epoch microseconds: send ISO 8601 text, or epoch "
            "seconds (10 digits) or milliseconds (13 digits), from 1970 to 2200",
        ),
        (
            "2201-03-02T08:00:00Z",
            "'2201-03-02T08:00:00Z' is outside 1970 to 2200, the times Baton keeps: check the year",
        ),
    ):
        absurd = client.post("/hooks/contact", json=submission(3, at))
        assert absurd.status_code == 422
        assert absurd.json()["errors"] == [{"loc": "at", "message": message}]
    broken = [submission(4, 1772438400), submission(5, "2026-03-02t08:00:00z", "not mail")]
    first = client.post("/hooks/contact", json=broken)
    replay = client.post("/hooks/contact", json=broken)
    assert first.json()["status"] == replay.json()["status"] == "partial"
    assert [i["status"] for i in replay.json()["items"]] == ["duplicate", "failed"]
    log = client.get("/api/v1/intake/requests", params={"status": "partial"})
    assert log.status_code == 200, log.text
    assert len(log.json()) == 2
