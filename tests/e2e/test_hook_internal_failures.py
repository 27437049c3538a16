"""/hooks/{name}: a submission that fails for a reason that is none of its fields (a
lead changed concurrently, a lead named by an email thread gone) tells the anonymous
sender a plain "could not be processed; please try again", never the internal text
(review finding: "lead 4242 does not exist" named an internal id, "retry the capture"
an operator's step), and a web form's visitor is not told that what they typed "could
not be read". The intake log keeps the full text for admins. Over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from tests.e2e.live_server import live_server

from baton.api.app import create_app
from baton.domain.access import operator
from baton.domain.batches import RowError
from baton.domain.errors import Conflict, NotFound
from baton.services import intake as intake_service
from baton.services.context import Context

OP = operator("test")
BROWSER = {"accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
CONCURRENT = "the lead was changed concurrently; retry the capture"
PLAIN = [{"loc": "(item)", "message": "the submission could not be processed; please try again"}]


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
    mapping = {"email": "contact.email", "upstream_id": "id", "event_type_path": "event"}
    spec = {"name": "contact", "kind": "generic", "source": "website", "mapping": mapping}
    intake_service.add_endpoint(ctx, spec, actor=OP)
    intake_service.update_endpoint(ctx, "contact", {"secret": None}, actor=OP)
    with live_server(create_app(ctx)) as url, httpx.Client(base_url=url, timeout=30) as client:
        yield ctx, client


def logged(ctx: Context) -> list[str]:
    request = intake_service.intake_log(ctx, actor=OP)[0]
    shown = intake_service.show_request(ctx, request.id, actor=OP)
    return [e["message"] for item in shown.items for e in item.errors]


def test_a_concurrent_change_asks_the_sender_to_try_again_without_the_operators_words(
    served: tuple[Context, httpx.Client], monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx, client = served

    def concurrent(*args: Any, **kwargs: Any) -> Any:
        raise Conflict(CONCURRENT)

    monkeypatch.setattr(intake_service, "capture_lead_in", concurrent)
    form = {"email": "dana@northwind.example.com", "last_name": "Reyes"}
    curl = client.post("/hooks/w2l", data=form)
    assert curl.status_code == 422, curl.text
    assert curl.json()["errors"] == PLAIN
    assert "retry" not in curl.text and "field to correct" not in curl.text
    assert logged(ctx) == [CONCURRENT]

    page = client.post("/hooks/w2l", data=form, headers=BROWSER)
    assert page.status_code == 422 and page.headers["content-type"].startswith("text/html")
    text = " ".join(page.text.split())
    assert "could not be processed" in text and "send it again" in text
    assert "could not be read" not in text and "retry" not in text


def test_an_internal_lead_id_never_reaches_the_sender(
    served: tuple[Context, httpx.Client], monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx, client = served

    def gone(*args: Any, **kwargs: Any) -> Any:
        raise NotFound("lead 4242 does not exist")

    monkeypatch.setattr(intake_service, "capture_lead_in", gone)
    answer = client.post("/hooks/contact", json={"id": "1", "contact": {"email": "a@b.example"}})
    assert answer.status_code == 422 and "4242" not in answer.text, answer.text
    assert answer.json()["errors"] == PLAIN
    assert logged(ctx) == ["lead 4242 does not exist"]

    def unknown_lead(*args: Any, **kwargs: Any) -> Any:
        return SimpleNamespace(errors=[RowError(0, "lead_id", "lead 4243 does not exist")])

    monkeypatch.undo()
    monkeypatch.setattr(intake_service, "ingest_validated_in", unknown_lead)
    body = {"id": "2", "event": "page_view", "contact": {"email": "c@d.example"}}
    answer = client.post("/hooks/contact", json=body)
    assert answer.status_code == 422 and "4243" not in answer.text, answer.text
    assert answer.json()["errors"] == PLAIN
    assert logged(ctx) == ["lead 4243 does not exist"]
