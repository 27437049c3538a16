"""The error lines a newcomer meets setting Baton up for production: each says what is
wrong in the operator's words, without a library's boilerplate (SQLAlchemy's
"Background on this error" link, pydantic's "Value error,") and never the password."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.conftest import PostgresServer
from typer.testing import CliRunner

from baton.cli import app as cli


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.delenv("BATON_ENV", raising=False)
    monkeypatch.delenv("BATON_SECRET_KEY", raising=False)
    monkeypatch.setenv("BATON_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.chdir(tmp_path)
    return CliRunner()


def test_a_database_that_cannot_be_opened_is_one_line_without_the_background_link(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BATON_DATABASE_URL", f"sqlite:///{tmp_path / 'missing' / 'cli.db'}")
    for command in (["init"], ["status"]):
        result = runner.invoke(cli, command)
        assert result.exit_code in (1, 3), result.output
        assert "unable to open database file" in result.output
        assert "Background on this error" not in result.output
        assert "sqlalche.me" not in result.output


def test_an_invalid_setting_reads_without_pydantics_prefix(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BATON_ENV", "production")
    result = runner.invoke(cli, ["status"])
    assert result.exit_code == 1, result.output
    line = " ".join(result.output.split())
    assert "error: invalid configuration: BATON_SECRET_KEY must be" in line
    assert "Value error" not in line and "settings:" not in line


@pytest.mark.postgres
def test_init_without_the_role_names_it_without_the_link_or_the_password(
    runner: CliRunner, postgres_server: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README's production set-up before its `createuser`/`createdb` step."""
    url = postgres_server.base_url.set(
        drivername="postgresql+psycopg", username="baton", password="pw-s3cret-9"
    )
    monkeypatch.setenv("BATON_DATABASE_URL", url.render_as_string(hide_password=False))
    result = runner.invoke(cli, ["init"])
    assert result.exit_code == 1, result.output
    line = " ".join(result.output.split())
    assert 'role "baton" does not exist' in line
    assert "Background on this error" not in line
    assert "pw-s3cret-9" not in line
