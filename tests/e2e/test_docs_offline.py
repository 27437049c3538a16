"""``/docs`` and ``/redoc`` work on an air-gapped install: the pages name no outside
address, and every script, style sheet and icon they load is answered by Baton itself,
without credentials (the page must render before anyone clicks Authorize).

(A real-browser check comes with the web app; this checks what a browser would fetch.)
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from html.parser import HTMLParser

import pytest
from fastapi.testclient import TestClient

from baton.api.app import create_app
from baton.services.context import Context

CONTENT_TYPES = {
    "script": ("text/javascript", "application/javascript"),
    "stylesheet": ("text/css",),
    "icon": ("image/png", "image/x-icon", "image/svg+xml"),
}


class Assets(HTMLParser):
    """Every URL a browser loads from the page: scripts, style sheets, icons, images."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "script" and values.get("src"):
            self.found.append(("script", values["src"]))
        elif tag == "link" and values.get("href"):
            rel = values.get("rel", "")
            self.found.append(("stylesheet" if "stylesheet" in rel else "icon", values["href"]))
        elif tag == "img" and values.get("src"):
            self.found.append(("icon", values["src"]))


@pytest.fixture
def anonymous(sqlite_ctx: Context) -> Iterator[TestClient]:
    with TestClient(create_app(sqlite_ctx), raise_server_exceptions=False) as client:
        yield client


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_docs_page_loads_everything_from_baton(anonymous: TestClient, page: str) -> None:
    response = anonymous.get(page)
    assert response.status_code == 200
    html = response.text
    assert not re.search(r"https?://", html), re.findall(r"https?://\S+", html)
    parser = Assets()
    parser.feed(html)
    kinds = {kind for kind, _ in parser.found}
    assert "script" in kinds and "icon" in kinds
    if page == "/docs":
        assert "stylesheet" in kinds
    for kind, url in parser.found:
        assert url.startswith("/"), url
        asset = anonymous.get(url)
        assert asset.status_code == 200, (url, asset.status_code)
        assert asset.headers["content-type"].startswith(CONTENT_TYPES[kind]), (url, asset.headers)
        assert len(asset.content) > 1000, url


def test_the_docs_page_reads_the_document_from_baton(anonymous: TestClient) -> None:
    html = anonymous.get("/docs").text
    assert "url: '/openapi.json'" in html
    assert '"validatorUrl": null' in html, "no badge fetched from the Swagger validator"
    assert anonymous.get("/openapi.json").status_code == 200
    assert anonymous.get("/docs/oauth2-redirect").status_code == 200


def test_a_missing_asset_is_a_plain_404(anonymous: TestClient) -> None:
    response = anonymous.get("/docs/assets/nothing-here.js")
    assert response.status_code == 404
