"""A page that fails unexpectedly answers an HTML error page (a person's browser shows
it), with the incident id the server log has, never problem+json text; the API keeps
problem+json for the same failure.

Fixtures come from :mod:`tests.e2e.test_web_access` (the small world, a fresh copy
per test); the client answers a server error as a 500 instead of raising, as a
browser would see it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.exc import OperationalError
from tests.e2e import test_web_access as access
from tests.web_world import World

from baton.api.app import create_app
from baton.services.context import Context
from baton.web.pages import backtest as backtest_page

world_template = access.world_template
sqlite_ctx = access.sqlite_ctx
world = access.world


class Boom(RuntimeError):
    """A failure nobody planned for (its text must not reach the person)."""


def _boom(*args: object, **kwargs: object) -> object:
    raise Boom("secret internals: /srv/baton/model.bin")


@pytest.fixture
def app(sqlite_ctx: Context, world: World) -> FastAPI:
    return create_app(sqlite_ctx)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(
        app, base_url="https://testserver", follow_redirects=False, raise_server_exceptions=False
    ) as test_client:
        yield test_client


def test_a_page_that_fails_answers_an_html_error_page_with_the_incident(
    client: TestClient,
    world: World,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(backtest_page, "backtest_contract", _boom)
    access.sign_in(client, world.users["marketing"])
    with caplog.at_level(logging.ERROR, logger="baton.api"):
        answer = client.get("/contract/1/backtest")
    assert answer.status_code == 500
    assert answer.headers["content-type"].startswith("text/html"), answer.text[:200]
    assert "<h1>Internal error</h1>" in answer.text
    assert "secret internals" not in answer.text
    assert "Traceback" not in answer.text
    incident = answer.text.split("Incident ", 1)[1].split(" ", 1)[0]
    assert len(incident) == 12
    assert any(incident in record.getMessage() for record in caplog.records), "in the log"
    assert answer.headers["x-frame-options"] == "DENY"
    assert "content-security-policy" in answer.headers
    assert 'href="/"' in answer.text, "the signed-in person is offered their home page"


def test_a_busy_database_on_a_page_is_an_html_503_with_retry_after(
    client: TestClient, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    def busy(*args: object, **kwargs: object) -> object:
        raise OperationalError("SELECT 1", {}, Exception("database is locked"))

    monkeypatch.setattr(backtest_page, "backtest_contract", busy)
    access.sign_in(client, world.users["marketing"])
    answer = client.get("/contract/1/backtest")
    assert answer.status_code == 503
    assert answer.headers["content-type"].startswith("text/html")
    assert answer.headers["retry-after"] == "5"
    assert "retry shortly" in answer.text


def test_the_api_keeps_problem_json_for_the_same_failure(app: FastAPI, client: TestClient) -> None:
    def crash() -> None:
        _boom()

    app.add_api_route("/api/v1/test-boom", crash, methods=["GET"])
    answer = client.get("/api/v1/test-boom", headers={"Accept": "text/html"})
    assert answer.status_code == 500
    assert answer.headers["content-type"].startswith("application/problem+json")
    body = answer.json()
    assert body["type"] == "/problems/internal"
    assert "secret internals" not in answer.text
