"""Chat channels: Slack and Microsoft Teams incoming webhooks of a rep or a team, the
rep's choice to get email or not (``reps.notify_email``), and the chat channel an
outbox message goes to (``outbox.chat_channel_id``).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05 03:00:00
"""

import sqlite3

from alembic import op
import sqlalchemy as sa

from baton.store.types import Id, UtcDateTime

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "chat_channels",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("rep_id", Id, sa.ForeignKey("reps.id"), nullable=True),
        sa.Column("team_id", Id, sa.ForeignKey("teams.id"), nullable=True),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("url", sa.String(length=2000), nullable=False),
        sa.Column("url_hint", sa.String(length=100), nullable=False),
        sa.Column("label", sa.String(length=100), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("removed_at", UtcDateTime, nullable=True),
    )
    op.create_index("ix_chat_channels_rep_id", "chat_channels", ["rep_id"])
    op.create_index("ix_chat_channels_team_id", "chat_channels", ["team_id"])
    # Plain ADD COLUMN (no batch copy): SQLite adds a NOT NULL column with a default in
    # place, where a batch would rebuild ``reps`` and trip the foreign keys of its rows.
    op.add_column(
        "reps", sa.Column("notify_email", sa.Boolean(), server_default=sa.true(), nullable=False)
    )
    op.add_column("outbox", sa.Column("chat_channel_id", Id, nullable=True))


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite" or sqlite3.sqlite_version_info >= (3, 35):
        # Natively: a batch copy would DROP TABLE outbox/reps, which their foreign keys
        # refuse as soon as rows point at them.
        op.execute("ALTER TABLE outbox DROP COLUMN chat_channel_id")
        op.execute("ALTER TABLE reps DROP COLUMN notify_email")
    else:
        with op.batch_alter_table("outbox", schema=None) as batch_op:
            batch_op.drop_column("chat_channel_id")
        with op.batch_alter_table("reps", schema=None) as batch_op:
            batch_op.drop_column("notify_email")
    op.drop_index("ix_chat_channels_team_id", table_name="chat_channels")
    op.drop_index("ix_chat_channels_rep_id", table_name="chat_channels")
    op.drop_table("chat_channels")
