"""The contract pages over HTTP: the active version in words with its RACI, a draft
posted through the form (problems shown by field and line), both signatures and the
activation through the buttons' forms with their CSRF token, and the diff page."""

from __future__ import annotations

import re
from collections.abc import Iterator
from html import unescape

import pytest
import yaml
from fastapi.testclient import TestClient
from tests.e2e.test_web_access import sign_in
from tests.web_world import EXAMPLE, World, build_world

from baton.api.app import create_app
from baton.services.context import Context


@pytest.fixture
def world(sqlite_ctx: Context) -> World:
    return build_world(sqlite_ctx, handoffs_each=1)


@pytest.fixture
def client(sqlite_ctx: Context, world: World) -> Iterator[TestClient]:
    with TestClient(
        create_app(sqlite_ctx), base_url="https://testserver", follow_redirects=False
    ) as client:
        yield client


def text_of(html: str) -> str:
    """The page's words, tags dropped and spaces folded."""
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html)))


def changed_example() -> str:
    data = yaml.safe_load(EXAMPLE.read_text())
    data["mql"]["threshold"] = 55
    data["raci"]["verdict"]["accountable"] = "revenue_lead"
    return yaml.safe_dump(data, sort_keys=False)


def test_the_active_version_reads_in_words_with_its_raci(client: TestClient, world: World) -> None:
    sign_in(client, world.users["rep"])
    page = client.get("/contract")

    assert page.status_code == 200
    words = text_of(page.text)
    assert "In force: version 1" in words
    assert "a total of 60 points or more" in words
    assert "Decision-maker title title matches" in words and "+20" in words
    assert "Interested, but not ready to buy yet not_ready recycled to nurture kept" in words
    assert "Spam, student or test entry junk disqualified lost" in words
    assert "Enterprise attributes.employees >= 1000 team enterprise least loaded" in words
    assert "Routing Revenue operations Sales manager Marketing Sales rep" in words, (
        "the RACI row of routing"
    )
    assert '<th scope="row">First touch</th>' in page.text
    # A rep reads but signs nothing and drafts nothing.
    assert "Sign for" not in words and 'href="/contract/new"' not in page.text


def test_a_broken_draft_shows_each_problem_with_its_line(client: TestClient, world: World) -> None:
    token = sign_in(client, world.users["marketing"])
    body = EXAMPLE.read_text().replace(
        "accountable: sales_manager, consulted: [marketing], informed: [rep]",
        "accountable: sales_manger, consulted: [marketing], informed: [rep]",
        1,
    )
    line = next(i for i, t in enumerate(body.splitlines(), 1) if "sales_manger" in t)

    answer = client.post("/contract/new", data={"body": body, "csrf_token": token})

    assert answer.status_code == 422
    words = text_of(answer.text)
    assert f"line {line} , raci.routing.accountable : unknown role or team 'sales_manger'" in words
    assert "(did you mean 'sales_manager'?)" in words
    assert f'<li id="line-{line}" class="bad">' in answer.text
    # The text comes back as it was typed, to be fixed in place.
    assert "accountable: sales_manger" in answer.text


def test_a_draft_without_raci_is_stored_with_a_warning(client: TestClient, world: World) -> None:
    token = sign_in(client, world.users["marketing"])
    body = EXAMPLE.read_text().split("\n# Who does each step of the handoff (RACI)")[0]

    answer = client.post("/contract/new", files={"file": ("c.yaml", body.encode())},
                         data={"csrf_token": token})  # fmt: skip

    assert answer.status_code == 303 and answer.headers["location"] == "/contract/2"
    page = client.get("/contract/2")
    words = text_of(page.text)
    assert "Warning: raci: not agreed yet" in words
    assert "Not agreed: this version has no RACI section" in words


def test_marketing_and_sales_sign_through_the_forms_and_an_admin_activates(
    client: TestClient, world: World
) -> None:
    token = sign_in(client, world.users["marketing"])
    created = client.post("/contract/new", data={"body": changed_example(), "csrf_token": token})
    assert created.status_code == 303
    version = int(created.headers["location"].rsplit("/", 1)[1])
    page = client.get(f"/contract/{version}").text
    assert "Sign for marketing" in page and "Sign for sales" not in page
    assert "Activate" not in page
    # Marketing may not sign for sales, even by posting the form by hand.
    refused = client.post(
        f"/contract/{version}/approve", data={"role": "sales", "csrf_token": token}
    )
    assert refused.status_code == 303
    assert "only a sales_manager user signs for sales" in text_of(
        client.get(refused.headers["location"]).text
    )
    # No token, no signature.
    assert (
        client.post(f"/contract/{version}/approve", data={"role": "marketing"}).status_code == 403
    )
    signed = client.post(
        f"/contract/{version}/approve", data={"role": "marketing", "csrf_token": token}
    )
    assert signed.status_code == 303
    assert f"Version {version} signed for marketing." in text_of(
        client.get(f"/contract/{version}").text
    )

    token = sign_in(client, world.users["sales_manager"])
    page = client.get(f"/contract/{version}").text
    assert "Sign for sales" in page and "Sign for marketing" not in page
    signed = client.post(
        f"/contract/{version}/approve", data={"role": "sales", "csrf_token": token}
    )
    assert signed.status_code == 303
    assert "Both sides have signed" in text_of(client.get(f"/contract/{version}").text)

    token = sign_in(client, world.users["admin"])
    page = client.get(f"/contract/{version}").text
    assert f"Activate version {version}" in page and "Sign for" not in page
    assert client.post(f"/contract/{version}/activate", data={}).status_code == 403
    activated = client.post(f"/contract/{version}/activate", data={"csrf_token": token})
    assert activated.status_code == 303
    words = text_of(client.get(f"/contract/{version}").text)
    assert f"Version {version} is active." in words and "leads re-scored" in words

    home = text_of(client.get("/contract").text)
    assert f"In force: version {version}" in home
    assert "a total of 55 points or more" in home
    assert "retired" in home

    diff = text_of(client.get(f"/contract/diff?old=1&new={version}").text)
    assert "threshold 60 → 55" in diff
    assert "verdict: accountable sales_manager → revenue_lead" in diff

    # "What changed" on a version page compares it with the version before it.
    assert f'href="/contract/diff?new={version}"' in client.get(f"/contract/{version}").text
    default = text_of(client.get(f"/contract/diff?new={version}").text)
    assert f"From version 1 to version {version}" in default
    assert "threshold 60 → 55" in default
