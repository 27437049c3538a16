"""Inputs that used to reach the database and come back as 500s now get a clear 4xx,
and unusual CSV files get one readable line instead of an internal error."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from tests.conftest import bearer, token_for
from typer.testing import CliRunner

from baton.api.app import create_app
from baton.cli import app as cli_app
from baton.config import Settings
from baton.services.context import Context


@pytest.fixture
def client(sqlite_ctx: Context) -> TestClient:
    """A client signed in as an admin, so bad input reaches validation."""
    return TestClient(create_app(sqlite_ctx), headers=bearer(token_for(sqlite_ctx, "admin")))


def test_ids_beyond_64_bits_are_a_validation_error(client: TestClient) -> None:
    response = client.get("/api/v1/leads/99999999999999999999")
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"email": "a@northwind.com", "first_name": "a\u0000b"}, "first_name"),
        ({"email": "a@northwind.com", "company": "\u0130" * 300}, None),
    ],
)
def test_text_the_database_cannot_hold_is_refused_or_stored_whole(
    client: TestClient, payload: dict[str, object], field: str | None
) -> None:
    response = client.post("/api/v1/leads", json=payload)
    if field is None:
        assert response.status_code == 201, response.text
    else:
        assert response.status_code == 422
        assert [e["loc"] for e in response.json()["errors"]] == [field]


def test_non_finite_numbers_in_attributes_are_refused(client: TestClient) -> None:
    response = client.post(
        "/api/v1/leads",
        content='{"email": "a@northwind.com", "attributes": {"score": NaN}}',
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 422
    assert "finite" in response.json()["errors"][0]["message"]


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b"not json", 422, "the body is not valid JSON"),
        (b"", 422, "the body is empty: send the lead as a JSON object"),
        (b"\xff\xfe{}", 422, "the body is not valid JSON"),  # read as UTF-16
        (b'{"email": "a@northwind.com", "first_name": "\xff"}', 400, "the body cannot be read"),
        (b'{"email": "a@northwind.com", "x": ' + b"9" * 5000 + b"}", 400, "cannot be read"),
        (b'[{"email": "a@northwind.com"}]', 422, "a lead is a JSON object"),
        (b'"a@northwind.com"', 422, "a lead is a JSON object"),
        (b"[" * 100_000 + b"]" * 100_000, 400, "the body cannot be read"),
    ],
)
def test_a_capture_body_that_is_no_lead_gets_a_problem_naming_the_body(
    client: TestClient, body: bytes, status: int, message: str
) -> None:
    response = client.post(
        "/api/v1/leads", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == status, response.text
    problem = response.json()
    assert response.headers["content-type"] == "application/problem+json"
    assert message in problem["detail"]
    if status == 422:
        assert problem["errors"] == [{"loc": "body", "message": message}]


@pytest.mark.parametrize(
    ("content_type", "status"),
    [
        ("application/json", 201),
        ("application/json; charset=utf-8", 201),
        ("application/vnd.api+json", 201),
        (None, 201),
        ("text/plain", 422),
        ("application/x-www-form-urlencoded", 422),
    ],
)
def test_a_capture_is_read_as_json_only_when_its_type_says_json_or_nothing(
    client: TestClient, content_type: str | None, status: int
) -> None:
    headers = {} if content_type is None else {"content-type": content_type}
    response = client.post(
        "/api/v1/leads", content=b'{"email": "t@northwind.com"}', headers=headers
    )
    assert response.status_code == status, response.text
    if status == 422:
        assert response.json()["errors"] == [
            {"loc": "body", "message": "send the lead as JSON (Content-Type: application/json)"}
        ]


def test_a_capture_without_credentials_is_refused_before_its_body_is_read(
    sqlite_ctx: Context,
) -> None:
    response = TestClient(create_app(sqlite_ctx)).post(
        "/api/v1/leads", content=b"not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 401


def test_an_absurd_timestamp_rejects_its_row_not_the_batch(client: TestClient) -> None:
    rows = [
        {
            "email": "a@northwind.com",
            "type": "page_view",
            "occurred_at": "0001-01-01T00:00:00+01:00",
        },
        {"email": "b@northwind.com", "type": "page_view", "occurred_at": "2026-01-05T10:00:00Z"},
    ]
    response = client.post("/api/v1/activities/batch", json={"activities": rows})
    assert response.status_code == 200
    body = response.json()
    assert body["stored"] == 1
    assert [e["index"] for e in body["errors"]] == [0]


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("BATON_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.chdir(tmp_path)
    return CliRunner()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "the file is empty"),
        (b"email,first_name\n", "the file has a header but no rows"),
        (b"email,Email\na@x.com,b@x.com\n", "appears twice"),
        (b"Phone,Mobile\n+14155550134,+14155550135\n", "both map to phone"),
        ("email,first_name\nz@x.com,Zo\u00eb\n".encode("latin-1"), "--encoding"),
    ],
    ids=["empty", "header only", "duplicate header", "two columns one field", "latin-1"],
)
def test_unreadable_files_get_one_clear_line(
    runner: CliRunner, tmp_path: Path, content: bytes, message: str
) -> None:
    source = tmp_path / "leads.csv"
    source.write_bytes(content)

    result = runner.invoke(cli_app, ["import", "leads", str(source)])

    assert result.exit_code == 1
    assert message in result.output
    assert "Traceback" not in result.output and "internal error" not in result.output


def test_the_encoding_option_reads_a_latin_1_file(runner: CliRunner, tmp_path: Path) -> None:
    source = tmp_path / "leads.csv"
    source.write_bytes("email,first_name\nz@northwind.com,Zo\u00eb\n".encode("latin-1"))

    result = runner.invoke(cli_app, ["import", "leads", str(source), "--encoding", "latin-1"])
    exported = runner.invoke(cli_app, ["export", "leads", "--format", "jsonl"])

    assert result.exit_code == 0, result.output
    assert '"first_name": "Zo\\u00eb"' in exported.stdout


def test_escaped_quotes_late_in_a_file_are_read_correctly(
    runner: CliRunner, tmp_path: Path
) -> None:
    lines = ["email,company"] + [f"p{i}@northwind.com,Plain {i}" for i in range(3000)]
    lines.append('late@northwind.com,"Acme ""Global"", Inc"')
    source = tmp_path / "leads.csv"
    source.write_text("\n".join(lines) + "\n")

    result = runner.invoke(cli_app, ["import", "leads", str(source)])
    exported = runner.invoke(cli_app, ["export", "leads", "--format", "jsonl"])

    assert result.exit_code == 0, result.output
    assert '"company": "Acme \\"Global\\", Inc"' in exported.stdout


def test_an_oversized_body_is_refused_before_it_is_read(client: TestClient) -> None:
    limit = Settings().max_body_bytes

    response = client.post(
        "/api/v1/activities/batch",
        content=b"{" + b" " * (limit + 10) + b"}",
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
