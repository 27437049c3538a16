"""``GET /api/v1/search/leads`` and ``/api/v1/saved-filters`` over HTTP: the answers'
shape, paging, problem+json errors naming the bad field, and a saved filter's life.
Who may call what is in ``test_access_matrix.py``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from tests.conftest import bearer, token_for

from baton.api.app import create_app
from baton.services.context import Context

SEARCH = "/api/v1/search/leads"
FILTERS = "/api/v1/saved-filters"


@pytest.fixture
def api(sqlite_ctx: Context) -> Iterator[TestClient]:
    token = token_for(sqlite_ctx, "marketing", email="maria@lumen.example")
    with TestClient(
        create_app(sqlite_ctx), raise_server_exceptions=False, headers=bearer(token)
    ) as client:
        yield client


def test_search_pages_and_errors(api: TestClient) -> None:
    for i in range(5):
        body = {"email": f"p{i}@northwind.example", "last_name": f"Lee{i}", "source": "Ads"}
        assert api.post("/api/v1/leads", json=body).status_code == 201
    api.post("/api/v1/leads", json={"email": "x@acme.example", "company": "Acme"})
    page = api.get(SEARCH, params={"q": "northw", "limit": 2, "sort": "name", "order": "asc"})
    assert page.status_code == 200
    body = page.json()
    assert body["total"] == 5 and body["next_offset"] == 2 and body["limit"] == 2
    assert [i["last_name"] for i in body["items"]] == ["Lee0", "Lee1"]
    last = api.get(SEARCH, params={"q": "northw", "limit": 2, "offset": 4}).json()
    assert last["next_offset"] is None and len(last["items"]) == 1
    assert api.get(SEARCH, params={"source": "ads", "q": "acme"}).json()["total"] == 0
    assert api.get("/api/v1/exports/leads", params={"q": "acme"}).text.count("\n") == 2
    bad = api.get(SEARCH, params={"owner": "nobody@example.com"})
    assert bad.status_code == 422
    assert bad.headers["content-type"].startswith("application/problem+json")
    assert "owner" in bad.text
    assert api.get(SEARCH, params={"stage": "bogus"}).status_code == 422


def test_a_saved_filter_lives_and_runs(api: TestClient) -> None:
    api.post("/api/v1/leads", json={"email": "ann@northwind.example", "first_name": "Ann"})
    made = api.post(
        FILTERS, json={"name": "Anns", "query": {"q": "ann", "sort": "score"}, "shared": True}
    )
    assert made.status_code == 201, made.text
    saved = made.json()
    assert saved["query"] == {"q": "ann", "sort": "score"} and saved["shared"] is True
    assert api.post(FILTERS, json={"name": "Anns", "query": {}}).status_code == 409
    bad = api.post(FILTERS, json={"name": "Bad", "query": {"grade": ["Z"]}})
    assert bad.status_code == 422
    assert [f["name"] for f in api.get(FILTERS).json()] == ["Anns"]
    assert api.get(f"{FILTERS}/{saved['id']}").json()["name"] == "Anns"
    run = api.get(f"{FILTERS}/{saved['id']}/leads").json()
    assert [i["email"] for i in run["items"]] == ["ann@northwind.example"]
    assert api.delete(f"{FILTERS}/{saved['id']}").status_code == 204
    assert api.get(f"{FILTERS}/{saved['id']}").status_code == 404
