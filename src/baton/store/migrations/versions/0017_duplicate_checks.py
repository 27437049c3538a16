"""Possible-duplicate flagging off the capture request: new leads wait in
``duplicate_checks`` until the worker compares them with older leads.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-05 11:50:00
"""

from alembic import op
import sqlalchemy as sa

from baton.store.types import Id, UtcDateTime

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "duplicate_checks",
        sa.Column("lead_id", Id, sa.ForeignKey("leads.id"), primary_key=True, autoincrement=False),
        sa.Column("queued_at", UtcDateTime, nullable=False),
    )
    op.create_index("ix_duplicate_checks_queued_at", "duplicate_checks", ["queued_at"])


def downgrade() -> None:
    op.drop_index("ix_duplicate_checks_queued_at", table_name="duplicate_checks")
    op.drop_table("duplicate_checks")
