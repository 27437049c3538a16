"""PostgreSQL: leave room on the pages of ``leads`` (fillfactor 70) so that the counter
and stage updates every capture, ingest and re-score make can be HOT updates, which do
not touch the table's nine indexes (the full-text GIN index among them). With full pages
each such update rewrote every index entry. SQLite has no such setting: nothing to do.

Only pages written from now on keep the room; ``VACUUM FULL leads`` (which locks the
table) applies it to existing rows when an operator wants it at once.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-05 12:55:00
"""

from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE leads SET (fillfactor = 70)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE leads RESET (fillfactor)")
