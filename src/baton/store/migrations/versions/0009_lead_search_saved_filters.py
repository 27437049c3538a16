"""Lead search and saved filters.

Search by prefix/token of email, name and company with an index, kept right by the
database itself so that every write path (capture, the bulk import, merges, the demo)
keeps it exact:

- SQLite: an FTS5 table ``leads_search`` with external content (the ``leads`` rows),
  maintained by triggers and filled here for the rows that exist;
- PostgreSQL: a GIN index ``ix_leads_search`` over the ``simple`` text-search vector of
  the same fields (an expression index: nothing to keep in sync).

Both index the fields with every run of characters other than letters and digits
turned into a space, so ``ann.lee@northwind.com`` is found by ``ann``, ``lee`` or
``northwind`` on both databases. ``saved_filters`` holds named lead queries.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05 02:50:00
"""

from alembic import op
import sqlalchemy as sa

from baton.store.types import Id, Json, UtcDateTime

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

FIELDS = ("email", "first_name", "last_name", "company")

# Frozen copies of baton.store.search as of this revision.
PG_DOCUMENT = (
    "to_tsvector('simple'::regconfig, regexp_replace(lower("
    + " || ' ' || ".join(f"coalesce({f}, '')" for f in FIELDS)
    + "), '[^[:alnum:]]+', ' ', 'g'))"
)


def _sqlite_upgrade() -> None:
    columns = ", ".join(FIELDS)
    new = ", ".join(f"new.{f}" for f in FIELDS)
    old = ", ".join(f"old.{f}" for f in FIELDS)
    changed = " OR ".join(f"old.{f} IS NOT new.{f}" for f in FIELDS)
    op.execute(
        f"CREATE VIRTUAL TABLE leads_search USING fts5({columns}, content='leads',"
        " content_rowid='id', tokenize=\"unicode61 remove_diacritics 0 separators '_'\","
        " prefix='1 2 3')"
    )
    op.execute(
        "CREATE TRIGGER leads_search_insert AFTER INSERT ON leads BEGIN"
        f" INSERT INTO leads_search(rowid, {columns}) VALUES (new.id, {new}); END"
    )
    op.execute(
        "CREATE TRIGGER leads_search_delete AFTER DELETE ON leads BEGIN"
        f" INSERT INTO leads_search(leads_search, rowid, {columns})"
        f" VALUES ('delete', old.id, {old}); END"
    )
    op.execute(
        f"CREATE TRIGGER leads_search_update AFTER UPDATE OF {columns} ON leads"
        f" WHEN {changed} BEGIN"
        f" INSERT INTO leads_search(leads_search, rowid, {columns})"
        f" VALUES ('delete', old.id, {old});"
        f" INSERT INTO leads_search(rowid, {columns}) VALUES (new.id, {new}); END"
    )
    op.execute("INSERT INTO leads_search(leads_search) VALUES ('rebuild')")


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        _sqlite_upgrade()
    elif dialect == "postgresql":
        op.execute(f"CREATE INDEX ix_leads_search ON leads USING gin ({PG_DOCUMENT})")
    op.create_table(
        "saved_filters",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("owner_user_id", Id, sa.ForeignKey("users.id"), nullable=False),
        sa.Column("query", Json, nullable=False),
        sa.Column("shared", sa.Boolean(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.UniqueConstraint("owner_user_id", "name", name="uq_saved_filters_owner_name"),
    )
    op.create_index("ix_saved_filters_shared", "saved_filters", ["shared"])


def downgrade() -> None:
    op.drop_index("ix_saved_filters_shared", table_name="saved_filters")
    op.drop_table("saved_filters")
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for trigger in ("insert", "delete", "update"):
            op.execute(f"DROP TRIGGER IF EXISTS leads_search_{trigger}")
        op.execute("DROP TABLE IF EXISTS leads_search")
    elif dialect == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_leads_search")
