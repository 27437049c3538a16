"""The migrations build exactly the schema the code declares, on both databases."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event, func, insert, inspect, select, text
from sqlalchemy.engine import Connection

from baton.store.engine import make_engine
from baton.store.migrate import MIGRATIONS, alembic_config, current_revision, upgrade
from baton.store.search import outside_metadata
from baton.store.tables import leads, metadata


def head_revision() -> str:
    config = alembic_config()
    assert MIGRATIONS.is_dir()
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None
    return head


def test_upgrade_builds_the_declared_schema_with_nothing_missing(empty_database_url: str) -> None:
    engine = make_engine(empty_database_url)
    try:
        assert inspect(engine).get_table_names() == []
        assert current_revision(engine) is None
        upgrade(engine)
        assert current_revision(engine) == head_revision()
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"compare_type": True, "include_name": outside_metadata}
            )
            differences = compare_metadata(context, metadata)
        assert differences == []
        tables = set(inspect(engine).get_table_names())
        assert {t.name for t in metadata.sorted_tables} <= tables
    finally:
        engine.dispose()


def test_upgrade_is_idempotent(empty_database_url: str) -> None:
    engine = make_engine(empty_database_url)
    try:
        upgrade(engine)
        before = {name: inspect(engine).get_columns(name) for name in metadata.tables}
        upgrade(engine)
        upgrade(engine)
        assert current_revision(engine) == head_revision()
        after = {name: inspect(engine).get_columns(name) for name in metadata.tables}
        assert [str(c) for c in after.items()] == [str(c) for c in before.items()]
    finally:
        engine.dispose()


def test_migrating_a_new_database_fails_no_statement(empty_database_url: str) -> None:
    """Not even the look at which revision it is at: on PostgreSQL each failed statement
    is an ERROR line in the server's log, which the first `baton init` of every new
    database left there ('relation "alembic_version" does not exist')."""
    engine = make_engine(empty_database_url)
    failed: list[str] = []
    event.listen(engine, "handle_error", lambda context: failed.append(context.statement))
    try:
        upgrade(engine)
        upgrade(engine)
    finally:
        engine.dispose()
    assert failed == []


def _a_lead(connection: Connection) -> None:
    now = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    connection.execute(
        insert(leads).values(
            email="dana@northwind.com",
            email_key="dana@northwind.com",
            attributes={},
            stage="lead",
            stage_changed_at=now,
            created_at=now,
            updated_at=now,
        )
    )


def test_upgrade_keeps_existing_data(empty_database_url: str) -> None:
    engine = make_engine(empty_database_url)
    try:
        upgrade(engine)
        with engine.begin() as connection:
            _a_lead(connection)
        upgrade(engine)
        with engine.connect() as connection:
            assert connection.execute(select(func.count()).select_from(leads)).scalar_one() == 1
    finally:
        engine.dispose()


def test_leads_pages_keep_room_for_hot_updates_on_postgresql(empty_database_url: str) -> None:
    """Counter and stage updates of a lead stay off its indexes only when its page has
    room (fillfactor 50 on PostgreSQL, room for a new version of every row of a page, as
    an ingest's counter update of neighbouring leads needs; SQLite has no such
    setting)."""
    engine = make_engine(empty_database_url)
    try:
        upgrade(engine)
        if engine.dialect.name != "postgresql":
            pytest.skip("fillfactor is a PostgreSQL setting")
        with engine.connect() as connection:
            options = connection.execute(
                text("SELECT reloptions FROM pg_class WHERE relname = 'leads'")
            ).scalar_one()
        assert "fillfactor=50" in (options or [])
    finally:
        engine.dispose()


def test_activities_index_carries_the_type_for_rescoring(empty_database_url: str) -> None:
    """Migration 0019 widens the activities index to (lead_id, occurred_at, type), so a
    re-score reads type-only engagement rules from it, and leaves no second index for
    ingest to maintain."""
    engine = make_engine(empty_database_url)
    try:
        upgrade(engine)
        indexes = {
            index["name"]: index["column_names"]
            for index in inspect(engine).get_indexes("activities")
        }
        assert indexes["ix_activities_lead_occurred_type"] == ["lead_id", "occurred_at", "type"]
        assert "ix_activities_lead_occurred" not in indexes
    finally:
        engine.dispose()


def test_several_active_versions_keep_the_last_activated_and_ask_for_a_rescore(
    empty_database_url: str,
) -> None:
    """Migration 0029 (one active version): a database where a race left several active
    keeps the one activated last, the others superseded, and marks its re-score
    unfinished, since its leads carry scores of several versions."""
    from alembic import command

    from baton.config import Settings
    from baton.domain.access import operator
    from baton.services.context import open_context
    from baton.services.status import deployment_status
    from baton.store.tables import contracts

    engine = make_engine(empty_database_url)
    try:
        with engine.begin() as connection:
            command.upgrade(alembic_config(connection), "0028")
        now = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
        with engine.begin() as connection:
            for version, activated in ((1, now), (2, now.replace(month=4)), (3, None)):
                connection.execute(
                    insert(contracts).values(
                        version=version,
                        name=f"v{version}",
                        body="b",
                        spec={},
                        status="active",
                        created_by="x",
                        created_at=now,
                        activated_at=activated,
                    )
                )
            _a_lead(connection)
        upgrade(engine)
        with engine.connect() as connection:
            statuses = connection.execute(
                select(contracts.c.version, contracts.c.status).order_by(contracts.c.version)
            ).all()
        assert [tuple(row) for row in statuses] == [
            (1, "superseded"),
            (2, "active"),
            (3, "superseded"),
        ]
    finally:
        engine.dispose()
    ctx = open_context(Settings(database_url=empty_database_url, env="test"))
    try:
        rescore = deployment_status(ctx, actor=operator("admin")).rescore
    finally:
        ctx.engine.dispose()
    assert rescore is not None
    assert (rescore.version, rescore.scored, rescore.total) == (2, 0, 1)


def test_candidate_indexes_built_beforehand_are_kept(empty_database_url: str) -> None:
    """Migration 0030 keeps an index an operator built beforehand (on PostgreSQL with
    ``CREATE INDEX CONCURRENTLY``, while Baton ran) and remakes the others; the schema
    is the declared one either way, and a downgrade gives the indexes of 0029 back."""
    from alembic import command

    engine = make_engine(empty_database_url)
    try:
        with engine.begin() as connection:
            command.upgrade(alembic_config(connection), "0029")
            connection.exec_driver_sql("DROP INDEX ix_leads_phone")
            connection.exec_driver_sql("CREATE INDEX ix_leads_phone ON leads (phone, id)")
            connection.exec_driver_sql("DROP INDEX ix_leads_mailbox_key")
            connection.exec_driver_sql(
                "CREATE INDEX ix_leads_mailbox_key ON leads (mailbox_key, id)"
                " WHERE mailbox_key IS NOT NULL"
            )
            built = [
                _index_identity(connection, n) for n in ("ix_leads_phone", "ix_leads_mailbox_key")
            ]
        upgrade(engine)
        with engine.connect() as connection:
            kept = [
                _index_identity(connection, n) for n in ("ix_leads_phone", "ix_leads_mailbox_key")
            ]
            assert kept == built  # not rebuilt

        def columns() -> dict[str, list[str]]:
            found = inspect(engine).get_indexes("leads")
            return {i["name"]: list(i["column_names"]) for i in found if i["name"]}

        assert {name: columns()[name] for name in CANDIDATE_INDEXES} == {
            "ix_leads_phone": ["phone", "id"],
            "ix_leads_company_key": ["company_key", "id"],
            "ix_leads_email_domain": ["email_domain", "id"],
            "ix_leads_mailbox_key": ["mailbox_key", "id"],
        }
        with engine.begin() as connection:
            command.downgrade(alembic_config(connection), "0029")
        assert {name: columns()[name] for name in CANDIDATE_INDEXES} == {
            "ix_leads_phone": ["phone"],
            "ix_leads_company_key": ["company_key"],
            "ix_leads_email_domain": ["email_domain"],
            "ix_leads_mailbox_key": ["mailbox_key"],
        }
    finally:
        engine.dispose()


CANDIDATE_INDEXES = (
    "ix_leads_phone",
    "ix_leads_company_key",
    "ix_leads_email_domain",
    "ix_leads_mailbox_key",
)


def _index_identity(connection: Connection, name: str) -> object:
    """What changes when an index is built again: its object id on PostgreSQL (where
    the pause matters). SQLite may build it again in the very pages it freed: not told
    apart there (None)."""
    if connection.dialect.name == "postgresql":
        return connection.exec_driver_sql(f"SELECT '{name}'::regclass::oid").scalar()
    return None
