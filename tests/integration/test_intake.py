"""Inbound endpoints and the intake log (issue 14, items 1 and 4), on SQLite and
PostgreSQL, through the use cases (the HTTP shell is tests/e2e/test_hooks.py):
a generic mapping captures the lead and records its event; a mapping bug leaves the
request in the log, a fix and a retry process it once; a replay writes nothing twice;
the limits at the door (rate: 429 counted not stored; size: 413; honeypot: refused and
logged); a throw-away address is flagged; a "contact sales" mapping hands the lead to a
rep as the activity API does.

Time: the ``clock`` fixture (ManualClock)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from tests.conftest import principal_for

from baton.domain.access import Principal, Role, operator
from baton.domain.clock import ManualClock
from baton.domain.errors import Conflict, Forbidden, ValidationFailed
from baton.domain.intake import Delivery
from baton.domain.reps import RepCreate, TeamCreate
from baton.services import contracts as contract_service
from baton.services import handoffs as handoff_service
from baton.services import intake as intake_service
from baton.services import reps as rep_service
from baton.services.context import Context
from baton.services.leads import list_leads
from baton.store.tables import activities, intake_requests, lead_tags, leads

EXAMPLE = (Path(__file__).parents[2] / "contracts" / "example.yaml").read_text()
OP = operator("test")
ALWAYS = {d: ["00:00-24:00"] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
MAPPING = {
    "email": "contact.email",
    "first_name": "contact.first",
    "company": "contact.company",
    "country": "contact.country",
    "attributes.employees": "company.size",
    "properties.message": "message",
    "upstream_id": "id",
    "occurred_at": "submitted_at",
}


def endpoint(ctx: Context, name: str = "contact", **extra: Any) -> str | None:
    spec = {
        "name": name,
        "kind": "generic",
        "source": "Website",
        "campaign": "contact-page",
        "mapping": MAPPING,
        "secret": None,
        **extra,
    }
    _, secret = intake_service.add_endpoint(ctx, spec, actor=OP)
    if secret:  # a generated secret: these tests post unsigned
        intake_service.update_endpoint(ctx, name, {"secret": None}, actor=OP)
    return secret


def delivery_of(ctx: Context, body: Any, **headers: str) -> Delivery:
    """A request as the route hands it over: ``body`` as JSON (or bytes as they are)."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return Delivery(
        body=raw,
        content_type=headers.pop("content_type", "application/json"),
        headers={k.replace("_", "-"): v for k, v in headers.items()},
        query={},
        received_at=ctx.clock.now(),
    )


def post(
    ctx: Context, body: Any, name: str = "contact", **headers: str
) -> intake_service.HookOutcome:
    delivery = delivery_of(ctx, body, **headers)
    return intake_service.receive(ctx, name, delivery, remote_address="203.0.113.9")


def submission(n: int = 1, email: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "id": f"sub-{n}",
        "submitted_at": "2026-02-27T10:00:00Z",
        "contact": {
            "email": email or f"dana{n}@northwind{n}.example.com",
            "first": "Dana",
            "company": "Northwind",
            "country": "US",
        },
        "company": {"size": 420},
        "message": "Please call me",
        **extra,
    }


def count(ctx: Context, table: Any) -> int:
    with ctx.read() as connection:
        return int(connection.execute(select(func.count()).select_from(table)).scalar_one())


def test_a_generic_submission_captures_the_lead_and_records_its_event(ctx: Context) -> None:
    endpoint(ctx)
    outcome = post(ctx, submission())
    assert (outcome.status, outcome.request_status) == (200, "processed")
    [item] = outcome.items
    assert item.status == "processed" and item.lead_id and item.activity_id
    with ctx.read() as connection:
        lead = connection.execute(select(leads).where(leads.c.id == item.lead_id)).mappings().one()
        event = (
            connection.execute(select(activities).where(activities.c.id == item.activity_id))
            .mappings()
            .one()
        )
    assert (lead["email"], lead["first_name"], lead["source"], lead["campaign"]) == (
        "dana1@northwind1.example.com",
        "Dana",
        "website",
        "contact-page",
    )
    assert lead["attributes"] == {"employees": 420}
    assert event["type"] == "form_submit"  # the generic default
    assert event["occurred_at"].isoformat().startswith("2026-02-27T10:00")
    assert event["properties"]["message"] == "Please call me"
    assert event["recorded_by"] == "hook:contact"


def test_a_mapping_bug_is_kept_fixed_and_retried_and_the_lead_appears_once(
    ctx: Context,
) -> None:
    endpoint(ctx, mapping={**MAPPING, "email": "contact.mail"})  # the form sends "email"
    first = post(ctx, submission())
    assert first.status == 422 and first.request_status == "failed"
    assert first.errors[0]["loc"] == "email"
    assert count(ctx, leads) == 0
    [logged] = intake_service.intake_log(ctx, actor=OP, status="failed")
    assert logged.id == first.request_id and logged.failed_items == 1
    detail = intake_service.show_request(ctx, logged.id, actor=OP)
    assert json.loads(detail.body_text or "")["contact"]["email"].startswith("dana1")
    assert detail.items[0].errors[0]["loc"] == "email"

    intake_service.update_endpoint(ctx, "contact", {"mapping": MAPPING}, actor=OP)
    report = intake_service.retry(ctx, actor=OP, endpoint="contact")
    assert (report.requests, report.processed, report.failed) == (1, 1, 0)
    again = intake_service.retry(ctx, actor=OP, request_ids=[logged.id])
    assert again.processed == 0 and again.skipped == [f"request {logged.id}: processed"]
    assert count(ctx, leads) == 1
    with ctx.read() as connection:
        kinds = list(connection.execute(select(activities.c.type)).scalars())
    assert sorted(kinds) == ["captured", "form_submit"]
    assert intake_service.intake_log(ctx, actor=OP, status="failed") == []


def test_a_replay_answers_like_the_first_time_and_writes_nothing_twice(ctx: Context) -> None:
    endpoint(ctx, event_type="demo_request")
    first = post(ctx, submission())
    replay = post(ctx, submission())
    assert replay.status == 200
    [item] = replay.items
    assert item.status == "duplicate"
    assert (item.lead_id, item.activity_id) == (first.items[0].lead_id, first.items[0].activity_id)
    assert count(ctx, leads) == 1
    with ctx.read() as connection:
        demos = connection.execute(
            select(func.count()).where(activities.c.type == "demo_request")
        ).scalar_one()
    assert demos == 1
    assert count(ctx, intake_requests) == 2  # both requests are in the log


def test_a_batch_with_one_bad_submission_is_partial_and_retried_item_by_item(
    ctx: Context,
) -> None:
    endpoint(ctx)
    bad = submission(2)
    bad["contact"]["email"] = "not an address"
    outcome = post(ctx, [submission(1), bad])
    assert outcome.status == 200 and outcome.request_status == "partial"
    assert [i.status for i in outcome.items] == ["processed", "failed"]
    assert outcome.items[1].errors[0]["loc"] == "email"
    # Nothing to fix in the mapping: the retry processes nothing twice, fails again.
    report = intake_service.retry(ctx, actor=OP, all_failed=True)
    assert (report.processed, report.failed) == (0, 1)
    assert count(ctx, leads) == 1


def test_over_the_rate_is_429_counted_and_not_stored(ctx: Context, clock: ManualClock) -> None:
    endpoint(ctx, rate_per_minute=2)
    assert post(ctx, submission(1)).status == 200
    clock.advance(timedelta(seconds=10))
    assert post(ctx, submission(2)).status == 200
    clock.advance(timedelta(seconds=10))
    throttled = post(ctx, submission(3))
    assert throttled.status == 429 and throttled.request_id is None
    assert throttled.retry_after is not None and 1 <= throttled.retry_after <= 61
    assert count(ctx, intake_requests) == 2
    [view] = intake_service.list_endpoints(ctx, actor=OP)
    assert (view.throttled_count, view.requests) == (1, 2)
    clock.advance(timedelta(seconds=45))  # the first request is a minute old
    assert post(ctx, submission(3)).status == 200


def test_an_oversized_body_is_413_and_not_stored(ctx: Context) -> None:
    endpoint(ctx, max_body_bytes=1024)
    outcome = post(ctx, submission(message="x" * 2000))
    assert outcome.status == 413 and outcome.request_id is None
    assert count(ctx, intake_requests) == 0


def test_a_filled_honeypot_is_refused_and_logged_but_the_bot_is_not_told(ctx: Context) -> None:
    endpoint(ctx, honeypot_field="website")
    outcome = post(ctx, submission(website="http://spam.example"))
    # Answered like a taken post, so a bot learns nothing about which field trapped it...
    assert outcome.status == 200 and outcome.request_status == "processed"
    assert [i.status for i in outcome.items] == ["processed"] and not outcome.errors
    # ...while nothing was captured and the log tells the truth.
    assert count(ctx, leads) == 0
    [logged] = intake_service.intake_log(ctx, actor=OP, status="refused")
    assert "honeypot" in (logged.error or "")
    assert post(ctx, submission(2, website="")).status == 200  # left empty: a person


def test_a_disposable_address_is_flagged_not_refused(ctx: Context) -> None:
    endpoint(ctx)
    outcome = post(ctx, submission(email="someone@mailinator.com"))
    assert outcome.items[0].status == "processed"
    with ctx.read() as connection:
        tags = list(connection.execute(select(lead_tags.c.tag)).scalars())
    assert tags == [intake_service.DISPOSABLE_TAG]


def test_a_contact_sales_mapping_hands_the_lead_to_a_rep(ctx: Context) -> None:
    version = contract_service.create_contract(ctx, EXAMPLE, actor=OP).version
    contract_service.approve_contract(ctx, version, role="marketing", actor=operator("maria"))
    contract_service.approve_contract(ctx, version, role="sales", actor=operator("sam"))
    contract_service.activate_contract(ctx, version, actor=OP)
    rep_service.create_team(ctx, TeamCreate(name="na"), actor=OP)
    rep_service.create_rep(
        ctx,
        RepCreate(email="ana@lumen.example", name="Ana Ruiz", team="na", working_hours=ALWAYS),
        actor=OP,
    )
    endpoint(
        ctx,
        mapping={
            **MAPPING,
            "occurred_at": "when",  # not sent: the hand-raise happened on receipt
            "event_type_path": "form.kind",
            "event_types": {"contact-sales": "contact_sales", "newsletter": None},
        },
    )
    newsletter = post(ctx, submission(1, form={"kind": "newsletter"}))
    assert newsletter.items[0].activity_id is None  # captured only
    outcome = post(ctx, submission(2, form={"kind": "contact-sales"}))
    lead_id = outcome.items[0].lead_id
    [handoff] = handoff_service.list_handoffs(ctx, lead_id=lead_id, actor=OP)
    assert (handoff.status, handoff.rep_email) == ("assigned", "ana@lumen.example")
    assert list_leads(ctx, search="dana2", actor=OP).items[0].stage == "mql"
    # The contract's own throw-away domains are flagged too.
    flagged = post(ctx, submission(3, email="x@spam-me.example.net")).items[0].lead_id
    with ctx.read() as connection:
        tags = connection.execute(select(lead_tags.c.tag).where(lead_tags.c.lead_id == flagged))
        assert list(tags.scalars()) == [intake_service.DISPOSABLE_TAG]


def test_endpoints_are_checked_and_only_admins_and_marketing_manage_them(
    ctx: Context,
) -> None:
    with pytest.raises(ValidationFailed) as refused:
        intake_service.add_endpoint(
            ctx,
            {"name": "x", "kind": "generic", "source": "web", "mapping": {"emial": "a.b"}},
            actor=OP,
        )
    assert any("unknown lead field" in p.message for p in refused.value.problems)
    secret = endpoint(ctx, "signed", secret=None)
    assert secret and secret.startswith("bhk_")
    with pytest.raises(Conflict):
        endpoint(ctx, "signed")
    [view] = intake_service.list_endpoints(ctx, actor=principal_for(ctx, "marketing"))
    assert view.path == "/hooks/signed" and not view.secret_set
    rep = Principal(kind="user", name="Ana", role=Role.REP, user_id=99)
    for someone in (rep, principal_for(ctx, "sales_manager")):
        with pytest.raises(Forbidden):
            intake_service.list_endpoints(ctx, actor=someone)
        with pytest.raises(Forbidden):
            intake_service.intake_log(ctx, actor=someone)


def test_a_signed_generic_endpoint_refuses_a_bad_signature_and_keeps_the_request(
    ctx: Context,
) -> None:
    import hashlib
    import hmac

    intake_service.add_endpoint(
        ctx,
        {
            "name": "signed",
            "kind": "generic",
            "source": "web",
            "mapping": MAPPING,
            "secret": "s3cret-s3cret",
        },
        actor=OP,
    )
    body = json.dumps(submission()).encode()
    refused = post(ctx, body, "signed", x_baton_signature="sha256=" + "0" * 64)
    assert refused.status == 401 and refused.request_status == "refused"
    good = hmac.new(b"s3cret-s3cret", body, hashlib.sha256).hexdigest()
    assert post(ctx, body, "signed", x_baton_signature=f"sha256={good}").status == 200
    assert count(ctx, intake_requests) == 2


def test_an_unknown_or_inactive_endpoint_is_404_and_nothing_is_stored(ctx: Context) -> None:
    endpoint(ctx)
    intake_service.deactivate_endpoint(ctx, "contact", actor=OP)
    assert post(ctx, submission()).status == 404
    assert post(ctx, submission(), "nope").status == 404
    assert count(ctx, intake_requests) == 0


def test_a_replay_of_a_failed_submission_processes_it_once_the_mapping_is_fixed(
    ctx: Context,
) -> None:
    endpoint(ctx, mapping={**MAPPING, "email": "contact.mail"})
    first = post(ctx, submission())
    assert first.items[0].status == "failed"
    intake_service.update_endpoint(ctx, "contact", {"mapping": MAPPING}, actor=OP)
    replay = post(ctx, submission())  # the platform sends it again
    assert (replay.status, replay.items[0].status) == (200, "processed")
    assert intake_service.intake_log(ctx, actor=OP, status="failed") == []  # both settled
    assert intake_service.retry(ctx, actor=OP, all_failed=True).requests == 0
    assert count(ctx, leads) == 1
    third = post(ctx, submission())
    assert third.items[0].status == "duplicate"
    assert third.items[0].lead_id == replay.items[0].lead_id


def test_a_request_left_unread_by_a_stopped_server_is_read_by_the_retry(
    ctx: Context, clock: ManualClock
) -> None:
    from sqlalchemy import insert

    endpoint(ctx)
    [view] = intake_service.list_endpoints(ctx, actor=OP)
    with ctx.write() as connection:  # stored raw, then the server stopped
        connection.execute(
            insert(intake_requests).values(
                endpoint_id=view.id,
                received_at=clock.now(),
                content_type="application/json",
                headers={},
                body=json.dumps(submission()).encode(),
                status="received",
            )
        )
    assert intake_service.retry(ctx, actor=OP, all_failed=True).requests == 0  # in progress?
    clock.advance(timedelta(minutes=6))
    report = intake_service.retry(ctx, actor=OP, all_failed=True)
    assert (report.requests, report.processed) == (1, 1)
    assert count(ctx, leads) == 1
