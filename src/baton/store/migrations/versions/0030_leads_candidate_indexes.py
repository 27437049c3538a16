"""The indexes the possible-duplicate comparison reads end with the lead's id.

The worker gathers, for each phone, company, corporate email domain and mailbox of the
leads it compares, the oldest 200 leads holding that value (``ORDER BY id LIMIT 200``).
On PostgreSQL an index on the value alone returns its holders in no useful order, so
the planner chose between reading all of them and sorting, and reading the whole
table in id order through the primary key until 200 matched. On a table without
statistics yet (a new database during its first minute of captures, before
autovacuum's first ``ANALYZE``) it took the second for every value: each batch of
500 leads read the table about 2,000 times (2.3 s a batch at 21,000 leads, and one of
the machine's two cores). An index on ``(value, id)`` is that order itself: a range
read that stops at the 200th entry, whatever the statistics say. On SQLite an index
entry already ends with the rowid, so its order was right before; the indexes are the
same on both databases so that the schema is one.

On PostgreSQL each index is dropped and built again while the migration holds
``leads`` (about 5 s at 1,000,000 leads; reads wait too). To upgrade a large database
without that pause, build the new indexes beforehand while Baton runs, and the
migration keeps an index that already ends with the id::

    CREATE INDEX CONCURRENTLY ix_leads_phone_new ON leads (phone, id);
    DROP INDEX CONCURRENTLY ix_leads_phone;
    ALTER INDEX ix_leads_phone_new RENAME TO ix_leads_phone;
    -- the same for company_key, email_domain, and for mailbox_key with
    -- ON leads (mailbox_key, id) WHERE mailbox_key IS NOT NULL

Revision ID: 0030
Revises: 0029
Create Date: 2026-12-06 16:50:00
"""

from alembic import op
import sqlalchemy as sa

revision = "0030"
down_revision = "0029"
branch_labels = None
depends_on = None

VALUES = ("phone", "company_key", "email_domain")
MAILBOX = "mailbox_key IS NOT NULL"


def _remake(with_id: bool) -> None:
    tail = ["id"] if with_id else []
    # An index built beforehand is kept when it is the one wanted: its columns, valid
    # (a CREATE INDEX CONCURRENTLY that failed leaves an index the planner never uses),
    # and for the mailbox key partial as declared.
    have = {
        index["name"]: (
            list(index["column_names"]),
            bool(index.get("dialect_options", {}).get("postgresql_invalid")),
            any(
                "mailbox_key IS NOT NULL" in str(where).replace("(", "").replace(")", "")
                for key, where in index.get("dialect_options", {}).items()
                if key.endswith("_where")
            ),
        )
        for index in sa.inspect(op.get_bind()).get_indexes("leads")
    }
    for column in VALUES:
        if have.get(f"ix_leads_{column}", ([], True, False))[:2] != ([column, *tail], False):
            op.drop_index(f"ix_leads_{column}", table_name="leads")
            op.create_index(f"ix_leads_{column}", "leads", [column, *tail])
    if have.get("ix_leads_mailbox_key") != (["mailbox_key", *tail], False, True):
        op.drop_index("ix_leads_mailbox_key", table_name="leads")
        op.create_index(
            "ix_leads_mailbox_key",
            "leads",
            ["mailbox_key", *tail],
            sqlite_where=sa.text(MAILBOX),
            postgresql_where=sa.text(MAILBOX),
        )


def upgrade() -> None:
    _remake(with_id=True)


def downgrade() -> None:
    _remake(with_id=False)
