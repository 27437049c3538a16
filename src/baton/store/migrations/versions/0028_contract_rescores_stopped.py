"""Unfinished re-scores say when they stopped: ``contract_rescores.stopped_at``.

A re-score that stops in its own process (a database error, Ctrl+C) notes how far it
got; without a mark that it stopped, that fresh note read as "it may still be running"
for a minute, and ``baton contract rescore`` warned of a re-score running beside it
when none was. ``stopped_at`` is set by that note and cleared by any later one (``baton
contract rescore`` taking the run over); a killed process leaves it empty, and its age
alone tells.

Revision ID: 0028
Revises: 0027
Create Date: 2026-12-06 12:15:00
"""

from alembic import op
import sqlalchemy as sa

from baton.store.types import UtcDateTime

revision = "0028"
down_revision = "0027"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("contract_rescores", sa.Column("stopped_at", UtcDateTime, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("contract_rescores") as batch:
        batch.drop_column("stopped_at")
