"""Bouncing addresses: ``leads.email_status`` (``NULL`` while mail is delivered,
``soft_bounce`` after a temporary failure, ``hard_bounce`` after a permanent one),
when it was set and what the bounce said. A delivery status notification received by
``baton inbound-smtp`` sets them; nurture sends nothing to a hard-bounced address.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05 06:00:00
"""

import sqlite3

from alembic import op
import sqlalchemy as sa

from baton.store.types import UtcDateTime

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN: nullable columns are added in place, where a batch copy would
    # rebuild ``leads`` under the foreign keys that point at it.
    op.add_column("leads", sa.Column("email_status", sa.String(length=20), nullable=True))
    op.add_column("leads", sa.Column("email_status_at", UtcDateTime, nullable=True))
    op.add_column(
        "leads", sa.Column("email_status_detail", sa.String(length=500), nullable=True)
    )


def downgrade() -> None:
    columns = ("email_status_detail", "email_status_at", "email_status")
    if op.get_bind().dialect.name != "sqlite" or sqlite3.sqlite_version_info >= (3, 35):
        for column in columns:
            op.execute(f"ALTER TABLE leads DROP COLUMN {column}")
    else:
        with op.batch_alter_table("leads", schema=None) as batch_op:
            for column in columns:
                batch_op.drop_column(column)
