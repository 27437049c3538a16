"""Heavy runs (backtest, training, contract suggestion, capacity plan) are bounded per
process: while one runs, the next request gets a 429 with Retry-After at once instead
of taking another worker thread; a capacity search that would simulate too much is
refused up front, naming the field."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from tests.conftest import bearer, token_for

from baton.api.app import create_app
from baton.api.heavy import heavy_run
from baton.domain.errors import TooManyRequests
from baton.services.context import Context

PROBLEM = "application/problem+json"
HEAVY = [
    ("/api/v1/contracts/backtest", {"version": 1}),
    ("/api/v1/contracts/suggest", {"target": "won"}),
    ("/api/v1/models", {"kind": "logistic_regression"}),
    ("/api/v1/plan/capacity", {"rates": ["Mon-Fri 09-17=3"], "reps": 1}),
]


@pytest.fixture
def api(sqlite_ctx: Context) -> Iterator[TestClient]:
    token = token_for(sqlite_ctx, "marketing", email="maria@lumen.example")
    app = create_app(sqlite_ctx)
    with TestClient(app, raise_server_exceptions=False, headers=bearer(token)) as client:
        yield client


def test_one_heavy_run_at_a_time_the_next_gets_429_with_retry_after(api: TestClient) -> None:
    with heavy_run("backtest"):
        with pytest.raises(TooManyRequests), heavy_run("capacity plan"):
            pass
        for url, body in HEAVY:
            answer = api.post(url, json=body)
            assert answer.status_code == 429, (url, answer.text)
            assert answer.headers["content-type"].startswith(PROBLEM)
            assert int(answer.headers["Retry-After"]) > 0
            assert "a backtest is running" in answer.json()["detail"]
    # Released: the next run goes ahead (a plan of 1 rep on the given rates).
    free = api.post(HEAVY[3][0], json={**HEAVY[3][1], "runs": 1})
    assert free.status_code == 200, free.text
    # A run that fails releases its slot too.
    failed = api.post("/api/v1/contracts/backtest", json={"version": 9})
    assert failed.status_code == 404
    with heavy_run("backtest"):
        pass


def test_a_capacity_search_too_big_to_run_is_refused_up_front(api: TestClient) -> None:
    body = {
        "rates": ["Mon-Fri 09-17=20"],
        "reps": 0,
        "target": 0.99,
        "runs": 20,
        "weeks_simulated": 12,
        "max_added": 500,
    }
    answer = api.post("/api/v1/plan/capacity", json=body)
    assert answer.status_code == 422, answer.text
    problem = answer.json()
    assert [e["loc"] for e in problem["errors"]] == ["max_added"]
    assert "lower max_added" in problem["detail"]
    too_many = api.post("/api/v1/plan/capacity", json={"rates": ["Mon=1"] * 169, "reps": 1})
    assert too_many.status_code == 422
    huge_csv = api.post("/api/v1/plan/capacity", json={"rates_csv": "1\n" * 20_000, "reps": 1})
    assert huge_csv.status_code == 422
    for field in ("hours", "timezone"):
        long = api.post("/api/v1/plan/capacity", json={"rates": ["Mon=1"], field: "x" * 600})
        assert long.status_code == 422 and len(long.text) < 2_000, long.text


def test_the_backtest_page_says_busy_as_a_page(sqlite_ctx: Context) -> None:
    from tests.e2e.test_web_access import sign_in
    from tests.web_world import build_world

    world = build_world(sqlite_ctx, handoffs_each=1)
    with TestClient(
        create_app(sqlite_ctx), base_url="https://testserver", follow_redirects=False
    ) as client:
        sign_in(client, world.users["marketing"])
        with heavy_run("training run"):
            busy = client.get("/contract/1/backtest")
        free = client.get("/contract/1/backtest")
    assert busy.status_code == 429
    assert busy.headers["content-type"].startswith("text/html")
    assert "a training run is running" in busy.text and "Traceback" not in busy.text
    assert free.status_code == 200
