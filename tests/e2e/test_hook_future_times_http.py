"""Over real HTTP, on SQLite and PostgreSQL (issue 17, found by the user trial): a hook
submission dated in the future is refused naming the payload's own field, the one the
mapping reads ``occurred_at`` from, with a hint a sender can act on (the field, the
sender's clock and zone, this server's clock), and, in the intake log only (the
sender is anonymous), a remedy that a retry then honours (point the mapping
elsewhere, or drop it to date submissions when received). A platform's own time names
``occurred_at`` and this server's clock: no mapping is at fault there."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from tests.e2e.live_server import live_server

from baton.api.app import create_app
from baton.domain.access import operator
from baton.integrations._common import b64, hmac_sha256
from baton.services import intake as intake_service
from baton.services.context import Context
from baton.store.tables import activities

OP = operator("test")
MAPPING = {"email": "contact.email", "upstream_id": "id", "occurred_at": "meta.submitted_at"}


@pytest.fixture
def served(ctx: Context) -> Iterator[tuple[Context, httpx.Client]]:
    spec = {"name": "contact", "kind": "generic", "source": "website", "mapping": MAPPING}
    intake_service.add_endpoint(ctx, {**spec, "secret": None}, actor=OP)
    intake_service.update_endpoint(ctx, "contact", {"secret": None}, actor=OP)
    with (
        live_server(create_app(ctx)) as url,
        httpx.Client(base_url=url, timeout=30) as client,
    ):
        yield ctx, client


def submission(n: int, at: str | None) -> dict[str, Any]:
    return {
        "id": f"s-{n}",
        "meta": {"submitted_at": at},
        "contact": {"email": f"d{n}@acme.example"},
    }


def stored_times(ctx: Context) -> list[datetime]:
    with ctx.read() as connection:
        query = select(activities.c.occurred_at).where(activities.c.type == "form_submit")
        return [
            t.astimezone(UTC) for t in connection.execute(query.order_by(activities.c.id)).scalars()
        ]


def test_a_future_time_names_the_payload_field_and_a_remedy_a_retry_honours(
    served: tuple[Context, httpx.Client],
) -> None:
    ctx, client = served
    now = ctx.clock.now()
    ahead = (now + timedelta(hours=2)).isoformat().replace("+00:00", "Z")
    refused = client.post("/hooks/contact", json=submission(1, ahead))
    assert refused.status_code == 422
    assert refused.headers["content-type"].startswith("application/problem+json")
    problem = refused.json()
    [error] = problem["errors"]
    assert error["loc"] == "meta.submitted_at", "the payload's field, not occurred_at"
    message = error["message"]
    for said in (ahead, "more than 10 minutes ahead of this server's clock"):
        assert said in message, (said, message)
    assert "the sender's clock and time zone" in message
    # The remedy (the mapping, the retry) is the admins': in the intake log, not told
    # to an anonymous sender (a newcomer's trial).
    assert "mapping" not in message and "baton" not in problem["detail"]
    shown = intake_service.show_request(ctx, problem["request_id"], actor=OP)
    logged = shown.items[0].errors[0]["message"]
    for said in (
        "read into occurred_at by the mapping",
        "remove it to date submissions when received",
        "baton intake retry",
    ):
        assert said in logged, (said, logged)

    batch = client.post("/hooks/contact", json=[submission(2, ahead), submission(3, None)])
    assert batch.status_code == 200 and batch.json()["status"] == "partial", batch.text
    first, second = batch.json()["items"]
    assert [e["loc"] for e in first["errors"]] == ["meta.submitted_at"]
    assert second["status"] == "processed"
    both = client.post("/hooks/contact", json=[submission(4, ahead), submission(5, ahead)])
    assert both.status_code == 422
    assert [e["loc"] for e in both.json()["errors"]] == [
        "[0].meta.submitted_at",
        "[1].meta.submitted_at",
    ]
    within_skew = (now + timedelta(minutes=5)).isoformat()
    assert client.post("/hooks/contact", json=submission(6, within_skew)).status_code == 200
    assert stored_times(ctx) == [now, now + timedelta(minutes=5)]

    # The hint's remedy: without occurred_at in the mapping, a retry dates the
    # submission when it was received, and it is processed.
    unmapped = {k: v for k, v in MAPPING.items() if k != "occurred_at"}
    intake_service.update_endpoint(ctx, "contact", {"mapping": unmapped}, actor=OP)
    report = intake_service.retry(ctx, actor=OP, request_ids=[problem["request_id"]])
    assert (report.processed, report.failed) == (1, 0)
    assert stored_times(ctx) == [now, now + timedelta(minutes=5), now]


def typeform_refusal(ctx: Context, ahead: str) -> dict[str, Any]:
    """The error of a Typeform submission sent at ``ahead``, over HTTP."""
    secret = "tf-secret-123"
    spec = {"name": "demo-form", "kind": "typeform", "source": "typeform", "secret": secret}
    intake_service.add_endpoint(ctx, spec, actor=OP)
    body = json.dumps(
        {
            "event_id": "ev1",
            "event_type": "form_response",
            "form_response": {
                "token": "tok1",
                "submitted_at": ahead,
                "definition": {"fields": [{"id": "f1", "ref": "mail", "title": "Email?"}]},
                "answers": [{"type": "email", "email": "ana@acme.example", "field": {"id": "f1"}}],
            },
        }
    ).encode()
    headers = {
        "content-type": "application/json",
        "Typeform-Signature": "sha256=" + b64(hmac_sha256(secret, body)),
    }
    with live_server(create_app(ctx)) as url, httpx.Client(base_url=url, timeout=30) as client:
        refused = client.post("/hooks/demo-form", content=body, headers=headers)
    assert refused.status_code == 422, refused.text
    [error] = refused.json()["errors"]
    return dict(error)


def test_a_platforms_future_time_names_occurred_at_and_this_servers_clock(
    ctx: Context,
) -> None:
    ahead = (ctx.clock.now() + timedelta(days=1)).isoformat().replace("+00:00", "Z")
    error = typeform_refusal(ctx, ahead)
    assert error["loc"] == "occurred_at"
    assert "the time the typeform platform sent" in error["message"]
    assert "ahead of this server's clock" in error["message"]
    assert "mapping" not in error["message"] and "baton" not in error["message"]
    # What the admins can do about it is in the intake log.
    [request] = intake_service.intake_log(ctx, actor=OP)
    logged = intake_service.show_request(ctx, request.id, actor=OP).items[0].errors[0]
    assert "check this server's clock" in logged["message"]
    assert "baton intake retry" in logged["message"]


def test_a_platforms_time_after_2200_is_outside_the_range_not_ahead_of_the_clock(
    ctx: Context,
) -> None:
    error = typeform_refusal(ctx, "2201-03-02T09:00:00Z")
    assert error == {
        "loc": "occurred_at",
        "message": "the time the typeform platform sent, 2201-03-02T09:00:00Z, is outside "
        "1970 to 2200, the times Baton keeps: check what the platform sends there",
    }
