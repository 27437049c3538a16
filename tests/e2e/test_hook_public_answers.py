"""/hooks/{name} answers anonymous senders without the operator's hints (a newcomer's
trial: curl posting an invalid email to a web form was told "retry it (baton intake
retry 3)", and a browser whose form had no email read "(or an external_id) (check the
mapping)"). The field a sender can correct is still named; the intake log keeps each
error's full text (the mapping, the command) for admins. Over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from tests.e2e.live_server import live_server

from baton.api.app import create_app
from baton.domain.access import operator
from baton.services import intake as intake_service
from baton.services.context import Context

OP = operator("test")
BROWSER = {"accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
MAPPING = {"email": "contact.email", "upstream_id": "id", "occurred_at": "sent_at"}
HINTS = ("baton ", "intake retry", "mapping", "mapped from", "external_id")
"""Words of the operator's trade that no public answer carries."""


@pytest.fixture
def served(sqlite_ctx: Context) -> Iterator[tuple[Context, httpx.Client]]:
    ctx = sqlite_ctx
    intake_service.add_endpoint(
        ctx,
        {
            "name": "w2l",
            "kind": "web_to_lead",
            "source": "website",
            "return_urls": ["https://www.example.com/thanks"],
        },
        actor=OP,
    )
    spec = {"name": "contact", "kind": "generic", "source": "website", "mapping": MAPPING}
    intake_service.add_endpoint(ctx, spec, actor=OP)
    intake_service.update_endpoint(ctx, "contact", {"secret": None}, actor=OP)
    with live_server(create_app(ctx)) as url, httpx.Client(base_url=url, timeout=30) as client:
        yield ctx, client


def hintless(text: str) -> None:
    for hint in HINTS:
        assert hint not in text, (hint, text)


def logged_errors(ctx: Context, request_id: int) -> list[dict[str, str]]:
    shown = intake_service.show_request(ctx, request_id, actor=OP)
    return [e for item in shown.items for e in item.errors]


def test_a_web_forms_refusals_name_the_field_and_nothing_of_the_setup(
    served: tuple[Context, httpx.Client],
) -> None:
    ctx, client = served
    bad_email = {"email": "dana.northwind.example.com", "last_name": "Reyes"}
    curl = client.post("/hooks/w2l", data=bad_email)
    assert curl.status_code == 422 and curl.headers.get("location") is None
    problem = curl.json()
    hintless(curl.text)
    assert [e["loc"] for e in problem["errors"]] == ["email"]
    assert "field to correct" in problem["detail"]

    no_email = {"last_name": "Reyes", "company": "Northwind"}
    page = client.post("/hooks/w2l", data=no_email, headers=BROWSER)
    assert page.status_code == 422 and page.headers["content-type"].startswith("text/html")
    text = " ".join(page.text.split())
    hintless(text)
    assert "no email or phone number" in text
    # The admins still read the whole story in the intake log.
    [logged] = logged_errors(ctx, intake_service.intake_log(ctx, actor=OP)[0].id)
    assert "(check the mapping)" in logged["message"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"email=dana%40northwind.example.com&last_name=" + b"R" * 81, "last_name"),
        (b"email=dana%40northwind.example.com&last_name=Re%zzyes", "last_name"),
    ],
    ids=["over-maxlength", "broken-escape"],
)
def test_a_form_value_over_its_maxlength_or_a_broken_escape_is_not_sent_back(
    served: tuple[Context, httpx.Client], body: bytes, field: str
) -> None:
    """What the README says of a Salesforce form: refused naming the field, and the
    visitor is not sent back to the thank-you page (it said "still sent back")."""
    _, client = served
    form = {"content-type": "application/x-www-form-urlencoded"}
    page = client.post("/hooks/w2l", content=body, headers={**form, **BROWSER})
    assert (page.status_code, page.headers.get("location")) == (422, None)
    assert page.headers["content-type"].startswith("text/html")
    assert field in page.text and "Your form was not sent" in page.text
    curl = client.post("/hooks/w2l", content=body, headers=form)
    assert (curl.status_code, curl.headers.get("location")) == (422, None)
    assert curl.headers["content-type"] == "application/problem+json"
    assert [e["loc"] for e in curl.json()["errors"]] == [field]
    hintless(curl.text)


def test_a_platforms_refusals_keep_its_fields_and_leave_the_hints_to_the_log(
    served: tuple[Context, httpx.Client],
) -> None:
    ctx, client = served
    ahead = (ctx.clock.now() + timedelta(hours=2)).isoformat()
    one = client.post("/hooks/contact", json={"id": "1", "contact": {"email": "x@"}})
    assert one.status_code == 422
    hintless(one.text)
    assert [e["loc"] for e in one.json()["errors"]] == ["email"]
    assert "mapped from contact.email" in logged_errors(ctx, one.json()["request_id"])[0]["message"]

    late = client.post(
        "/hooks/contact", json={"id": "2", "contact": {"email": "a@b.example"}, "sent_at": ahead}
    )
    assert late.status_code == 422
    hintless(late.text)
    [error] = late.json()["errors"]
    assert error["loc"] == "sent_at" and "the sender's clock and time zone" in error["message"]
    [logged] = logged_errors(ctx, late.json()["request_id"])
    assert "baton intake retry" in logged["message"]

    batch: list[dict[str, Any]] = [
        {"id": "3", "contact": {}},
        {"id": "4", "contact": {"email": "ok@b.example"}},
    ]
    partial = client.post("/hooks/contact", json=batch)
    assert partial.status_code == 200 and partial.json()["status"] == "partial"
    hintless(partial.text)
    assert partial.json()["items"][0]["errors"][0]["loc"] == "email"

    unreadable = client.post("/hooks/contact", json={"id": "6", "contact": {"email": {"a": 1}}})
    assert unreadable.status_code == 422
    hintless(unreadable.text)
    assert [e["loc"] for e in unreadable.json()["errors"]] == ["contact.email"]


def test_a_request_that_could_not_be_processed_names_no_command(
    served: tuple[Context, httpx.Client], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the database went away")

    monkeypatch.setattr(intake_service, "_process_request_in", broken)
    _, client = served
    answer = client.post("/hooks/contact", json={"id": "5", "contact": {"email": "a@b.example"}})
    assert answer.status_code == 202 and answer.json()["status"] == "failed"
    hintless(answer.text)
