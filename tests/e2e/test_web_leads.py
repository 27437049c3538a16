"""The lead list and the lead page over HTTP (TestClient, SQLite): search and filters
through the index, sort links, saved filters, the CSV download of what is shown, the
CSV upload with its report, and notes and tags on the lead page. Access per role is
in ``test_web_access.py``; the browser test in ``tests/browser/test_leads.py``."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from tests.e2e.test_web_access import sign_in
from tests.web_world import ANA, BEN, World, build_world

from baton.api.app import create_app
from baton.services.context import Context


@pytest.fixture
def world(sqlite_ctx: Context) -> World:
    return build_world(sqlite_ctx, handoffs_each=2)


@pytest.fixture
def client(sqlite_ctx: Context, world: World) -> Iterator[TestClient]:
    with TestClient(
        create_app(sqlite_ctx), base_url="https://testserver", follow_redirects=False
    ) as test_client:
        yield test_client


def lead_links(html: str) -> list[int]:
    return [int(i) for i in re.findall(r'<td><a href="/leads/(\d+)">', html)]


def test_search_filters_sort_and_pages(client: TestClient, world: World) -> None:
    sign_in(client, world.users["marketing"])
    everyone = client.get("/leads")
    assert everyone.status_code == 200
    assert len(lead_links(everyone.text)) == 4 and "<strong>4</strong> leads" in everyone.text
    first_lead = world.leads[ANA][0]
    page = client.get("/leads", params={"q": "northw dana"})
    assert len(lead_links(page.text)) == 4
    assert lead_links(client.get("/leads", params={"q": "zzz"}).text) == []
    assert "No lead matches" in client.get("/leads", params={"q": "zzz"}).text
    owned = client.get("/leads", params={"owner": BEN})
    assert sorted(lead_links(owned.text)) == sorted(world.leads[BEN])
    # Sort links keep the filters and flip the order of the current sort.
    by_score = client.get("/leads", params={"owner": BEN, "sort": "score"})
    assert 'href="/leads?owner=ben%40lumen.example&amp;sort=score&amp;order=asc"' in by_score.text
    # A bad filter: the page says which, with the allowed values.
    bad = client.get("/leads", params={"stage": "mqll"})
    assert bad.status_code == 422 and "did you mean" in bad.text
    # Pages of 50: no pager with 4 leads; partial answers the results alone.
    partial = client.get("/leads", params={"q": "dana", "partial": "1"})
    assert "<table" in partial.text and "<html" not in partial.text
    assert first_lead in lead_links(partial.text)


def test_a_rep_lists_only_their_leads(client: TestClient, world: World) -> None:
    sign_in(client, world.users["rep"])
    assert sorted(lead_links(client.get("/leads").text)) == sorted(world.leads[ANA])
    assert client.get(f"/leads/{world.leads[BEN][0]}").status_code == 404
    assert "Import leads" not in client.get("/leads").text


def test_saved_filters_save_pick_and_delete(client: TestClient, world: World) -> None:
    token = sign_in(client, world.users["marketing"])
    saved = client.post(
        "/leads/filters",
        data={"name": "Ben's", "query": f"owner={BEN}&sort=score", "shared": "1",
              "csrf_token": token},
    )  # fmt: skip
    assert saved.status_code == 303
    target = saved.headers["location"]
    assert re.fullmatch(r"/leads\?filter=\d+", target)
    shown = client.get(target)
    assert sorted(lead_links(shown.text)) == sorted(world.leads[BEN])
    assert "Saved the filter" in shown.text and "Ben&#39;s (shared by" in shown.text
    again = client.post("/leads/filters", data={"name": "Ben's", "query": "", "csrf_token": token})
    assert "already have a saved filter" in client.get(again.headers["location"]).text
    # Shared: the rep sees it, runs it within their own reach (none of Ben's leads).
    filter_id = int(target.rsplit("=", 1)[1])
    rep_token = sign_in(client, world.users["rep"])
    assert lead_links(client.get(target).text) == []
    refused = client.post(f"/leads/filters/{filter_id}/delete", data={"csrf_token": rep_token})
    assert "only the owner" in client.get(refused.headers["location"]).text
    token = sign_in(client, world.users["marketing"])
    client.post(f"/leads/filters/{filter_id}/delete", data={"csrf_token": token})
    assert "No saved filters yet" in client.get("/leads").text


def test_the_csv_download_holds_what_the_filters_match(client: TestClient, world: World) -> None:
    sign_in(client, world.users["sales_manager"])
    answer = client.get("/leads/export.csv", params={"owner": BEN, "q": "dana"})
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/csv")
    assert "attachment" in answer.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    assert sorted(int(r["id"]) for r in rows) == sorted(world.leads[BEN])
    assert client.get("/leads/export.csv", params={"q": "zzz"}).text.count("\n") == 1


def test_the_upload_runs_the_import_and_reports_each_line(client: TestClient, world: World) -> None:
    token = sign_in(client, world.users["marketing"])
    content = (
        b"email,first_name,company,consent\n"
        b"new.person@initech.example,Peter,Initech,yes\n"
        b"not-an-email,Bad,Initech,yes\n"
        b'=cmd@evil.example,Eve,"=HYPERLINK(1)",maybe\n'
    )
    report = client.post(
        "/leads/import",
        data={"csrf_token": token},
        files={"file": ("people.csv", content, "text/csv")},
    )
    assert report.status_code == 200, report.text[:500]
    text = report.text
    assert "Import report: people.csv" in text
    assert re.search(r"Rows rejected</th><td class=\"num\">\d", text)
    assert '<td class="num">3</td><td>email</td>' in text  # line 3 of the file
    lines = re.search(r'name="lines" value="([^"]*)"', text)
    assert lines is not None
    download = client.post(
        "/leads/import/rejected.csv",
        data={"csrf_token": token, "lines": lines[1].replace("&#34;", '"').replace("&#39;", "'")},
    )
    assert download.headers["content-disposition"].startswith("attachment")
    assert "not-an-email" in download.text
    assert lead_links(client.get("/leads", params={"q": "initech"}).text)
    sign_in(client, world.users["rep"])
    refused = client.post(
        "/leads/import", data={"csrf_token": sign_in(client, world.users["rep"])},
        files={"file": ("people.csv", content, "text/csv")},
    )  # fmt: skip
    assert refused.status_code == 403


def test_the_lead_page_and_its_notes_and_tags(client: TestClient, world: World) -> None:
    token = sign_in(client, world.users["rep"])
    lead_id = world.leads[ANA][0]
    page = client.get(f"/leads/{lead_id}")
    assert page.status_code == 200
    for heading in ("Details", "Score", "Stage history", "Handoffs", "Timeline", "Notes", "Tags"):
        assert f">{heading}</h2>" in page.text, heading
    assert "lead → mql" in page.text and "Before an MQL on score" in page.text
    assert f'href="/handoffs/{world.first(ANA)}"' in page.text
    noted = client.post(
        f"/leads/{lead_id}/notes", data={"body": "Called <b>twice</b>", "csrf_token": token}
    )
    assert noted.status_code == 303 and noted.headers["location"] == f"/leads/{lead_id}#notes"
    client.post(f"/leads/{lead_id}/tags", data={"tag": "Hot Lead", "csrf_token": token})
    after = client.get(f"/leads/{lead_id}").text
    assert "Called &lt;b&gt;twice&lt;/b&gt;" in after
    assert "<li>hot lead" in after
    client.post(f"/leads/{lead_id}/tags/remove", data={"tag": "hot lead", "csrf_token": token})
    assert "<li>hot lead" not in client.get(f"/leads/{lead_id}").text
    # Another rep's lead: the 404 page, for the page and its forms.
    other = world.leads[BEN][0]
    assert client.get(f"/leads/{other}").status_code == 404
    assert (
        client.post(f"/leads/{other}/notes", data={"body": "x", "csrf_token": token}).status_code
        == 404
    )


def test_the_upload_takes_the_clis_column_map_and_system(client: TestClient, world: World) -> None:
    """A CRM's file without emails (as X Education's and Olist's are) imports by the id
    the other system gave each row, as ``--map 'Prospect ID=external_id' --system``."""
    token = sign_in(client, world.users["marketing"])
    content = b"Prospect ID,Lead Origin,Notes\np-101,Landing Page,x\np-102,API,y\n"
    upload = {"file": ("crm.csv", content, "text/csv")}
    refused = client.post("/leads/import", data={"csrf_token": token}, files=upload)
    assert re.search(r"Rows imported</th><td class=\"num\">0<", refused.text)
    mapped = client.post(
        "/leads/import",
        data={
            "csrf_token": token,
            "column_map": "Prospect ID=external_id\n\nNotes=-\n",
            "system": "old-crm",
        },
        files=upload,
    )
    assert re.search(r"Rows imported</th><td class=\"num\">2<", mapped.text), mapped.text[-800:]
    bad = client.post(
        "/leads/import",
        data={"csrf_token": token, "column_map": "Prospect ID"},
        files=upload,
    )
    assert bad.status_code == 303
    assert "HEADER=FIELD" in client.get(bad.headers["location"]).text
