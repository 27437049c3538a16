"""Is it healthy? Over HTTP (`GET /api/v1/status` for admins, the public `/healthz` and
`/readyz` that tell no queue) and on the command line (`baton status`, whose exit code
a cron job or a monitor reads)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, inspect, text
from tests.conftest import PostgresServer, bearer, token_for
from typer.testing import CliRunner

from baton import cli as baton_cli
from baton.api.app import create_app
from baton.cli import app as cli
from baton.config import Settings
from baton.domain.access import operator
from baton.domain.reps import RepCreate, TeamCreate
from baton.services.context import Context, open_context
from baton.services.outbox import enqueue_email
from baton.services.reps import create_rep, create_team
from baton.services.status import expected_revision, start_heartbeat

ANA = "ana@lumen.example"
OPS = operator("ops")


def test_only_admins_read_the_status_and_the_probes_tell_no_queue(sqlite_ctx: Context) -> None:
    ctx = sqlite_ctx
    create_team(ctx, TeamCreate(name="na"), actor=OPS)
    create_rep(ctx, RepCreate(email=ANA, name="Ana", team="na"), actor=OPS)
    with ctx.write() as connection:
        enqueue_email(
            connection, topic="sla.remind", to=ANA, now=ctx.clock.now() - timedelta(minutes=5)
        )
    start_heartbeat(ctx, host="app-1", pid=4182)
    api = TestClient(create_app(ctx))

    admin = api.get("/api/v1/status", headers=bearer(token_for(ctx, "admin")))
    assert admin.status_code == 200, admin.text
    found = admin.json()
    assert found["verdict"] == "behind"
    assert found["reasons"] == [
        "email to send: 1 waiting, the oldest due 5 min ago (lane email delivery)"
    ]
    [email] = [q for q in found["queues"] if q["key"] == "outbox_email"]
    assert (email["waiting"], email["age_seconds"], email["behind"]) == (1, 300.0, True)
    assert [(w["host"], w["pid"], w["state"]) for w in found["workers"]] == [
        ("app-1", 4182, "running")
    ]
    assert ctx.settings.secret_key not in admin.text and "sqlite" not in admin.text

    monitor = token_for(ctx, "admin", email="monitor@lumen.example", scopes=("status:read",))
    assert api.get("/api/v1/status", headers=bearer(monitor)).status_code == 200
    for role, extra in (
        ("marketing", {}),
        ("sales_manager", {"teams": ("na",)}),
        ("rep", {"rep_email": ANA}),
    ):
        refused = api.get("/api/v1/status", headers=bearer(token_for(ctx, role, **extra)))
        assert refused.status_code == 403, role
    assert api.get("/api/v1/status").status_code == 401

    health = api.get("/healthz")  # liveness: cheap, and never about the queues
    assert health.status_code == 200 and health.json()["status"] == "ok"
    ready = api.get("/readyz")
    assert ready.status_code == 200
    assert set(ready.json()) == {"status", "version"} and ready.json()["status"] == "ready"

    with ctx.write() as connection:  # a deploy whose migrations have not run
        connection.execute(text("UPDATE alembic_version SET version_num = '0023'"))
    unready = api.get("/readyz")
    assert unready.status_code == 503
    assert unready.headers["content-type"] == "application/problem+json"
    assert unready.json()["detail"] == (
        "the database schema is not the one this version of Baton needs"
    )
    assert api.get("/healthz").status_code == 200


def test_the_status_operation_documents_an_example(sqlite_ctx: Context) -> None:
    spec = create_app(sqlite_ctx).openapi()
    operation = spec["paths"]["/api/v1/status"]["get"]
    assert operation["operationId"] == "get_status" and operation["security"]
    schema = spec["components"]["schemas"]["DeploymentStatusPublic"]
    assert schema["examples"][0]["verdict"] == "behind"
    assert "security" not in spec["paths"]["/readyz"]["get"]


@pytest.fixture
def database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("BATON_DATABASE_URL", url)
    monkeypatch.delenv("BATON_ENV", raising=False)
    monkeypatch.setattr(baton_cli.console, "width", 200)  # whole rows on one line
    monkeypatch.chdir(tmp_path)
    return url


def test_baton_status_exit_codes_and_it_never_migrates(database: str) -> None:
    """0 ok, 1 behind, 2 worker silent, 3 unreadable. A monitor runs it every minute:
    it must never migrate (production mid-upgrade, the migration lock), so a database
    not migrated is its own answer, as /readyz says it."""
    runner = CliRunner()
    fresh = runner.invoke(cli, ["status"])
    assert fresh.exit_code == 3, fresh.output
    assert "the database was never initialised: run `baton init`" in fresh.output
    assert "at an upgrade" not in fresh.output
    as_json = runner.invoke(cli, ["status", "--json"])
    assert as_json.exit_code == 3
    assert json.loads(as_json.stdout)["verdict"] == "unreadable"
    engine = create_engine(database)
    try:
        assert inspect(engine).get_table_names() == [], "baton status migrated the database"
    finally:
        engine.dispose()

    ctx = open_context(Settings(database_url=database))  # migrates; the wall clock
    try:
        silent = runner.invoke(cli, ["status"])
        assert silent.exit_code == 2, silent.output
        assert "worker silent" in silent.output
        assert "no worker has ever run against this database" in silent.output

        start_heartbeat(ctx, host="app-1", pid=4182)
        ok = runner.invoke(cli, ["status"])
        assert ok.exit_code == 0, ok.output
        assert "ok at" in ok.output and "app-1" in ok.output
        as_json = runner.invoke(cli, ["status", "--json"])
        assert as_json.exit_code == 0
        assert json.loads(as_json.output)["verdict"] == "ok"

        with ctx.write() as connection:
            late = datetime.now(UTC) - timedelta(minutes=10)
            enqueue_email(connection, topic="sla.remind", to=ANA, now=late)
        behind = runner.invoke(cli, ["status", "--json"])
        assert behind.exit_code == 1
        found = json.loads(behind.output)
        assert found["verdict"] == "behind"
        [email] = [q for q in found["queues"] if q["key"] == "outbox_email"]
        assert email["waiting"] == 1 and email["age_seconds"] >= 600
        shown = runner.invoke(cli, ["status"])
        assert shown.exit_code == 1
        assert "behind" in shown.output and "email to send: 1 waiting" in shown.output

        with ctx.write() as connection:  # a new version before its migrations ran
            connection.execute(text("UPDATE alembic_version SET version_num = '0023'"))
        unready = runner.invoke(cli, ["status"])
        assert unready.exit_code == 3, unready.output
        assert "never migrates" in unready.output
        assert f"database at 0023, this version needs {expected_revision()}" in unready.output
        with ctx.read() as connection:
            assert connection.execute(text("SELECT version_num FROM alembic_version")).scalar() == (
                "0023"
            )
    finally:
        ctx.engine.dispose()


def test_baton_status_after_a_one_off_pass_says_when_it_ran(database: str) -> None:
    runner = CliRunner()
    assert runner.invoke(cli, ["init"]).exit_code == 0
    ran = runner.invoke(cli, ["worker", "--once"])
    assert ran.exit_code == 0, ran.output
    after = runner.invoke(cli, ["status"])
    assert after.exit_code == 2, after.output  # no worker keeps running: still silent
    assert "no worker has ever run" not in after.output
    assert "a one-off pass (`baton worker --once`)" in after.output
    assert "one pass (--once)" in after.output
    [row] = json.loads(runner.invoke(cli, ["status", "--json"]).stdout)["workers"]
    assert (row["state"], row["one_pass"]) == ("stopped", True)


def test_baton_status_names_why_the_database_refuses(
    database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A database that answers but refuses (no such file here; no such role or database
    on PostgreSQL) is named with the driver's reason, in the line and in ``--json``,
    as every other command names it: "does not answer" alone sends people to the
    network. /readyz (public) keeps the bare phrase."""
    monkeypatch.setenv("BATON_DATABASE_URL", f"sqlite:///{tmp_path / 'missing' / 'cli.db'}")
    runner = CliRunner()
    shown = runner.invoke(cli, ["status"])
    assert shown.exit_code == 3, shown.output
    assert "unable to open database file" in shown.output
    as_json = runner.invoke(cli, ["status", "--json"])
    [reason] = json.loads(as_json.stdout)["reasons"]
    assert "unable to open database file" in reason


@pytest.mark.postgres
def test_baton_status_names_a_missing_role_with_the_password_masked(
    postgres_server: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = postgres_server.base_url.set(
        drivername="postgresql+psycopg", username="nobody", password="pw-s3cret-9"
    )
    monkeypatch.setenv("BATON_DATABASE_URL", url.render_as_string(hide_password=False))
    monkeypatch.delenv("BATON_ENV", raising=False)
    as_json = CliRunner().invoke(cli, ["status", "--json"])
    assert as_json.exit_code == 3, as_json.output
    [reason] = json.loads(as_json.stdout)["reasons"]
    assert 'role "nobody" does not exist' in reason, reason
    assert "pw-s3cret-9" not in as_json.output
