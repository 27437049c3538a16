"""Worker heartbeats: each running ``baton worker`` keeps a row saying where it runs
(host, pid), when it started, when it last beat and when each of its lanes last ended
a pass, so ``baton status`` and ``GET /api/v1/status`` can tell a worker that is
silent from a deployment that merely has nothing to do.

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-06 05:00:00
"""

from alembic import op
import sqlalchemy as sa

from baton.store.types import Id, Json, UtcDateTime

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "worker_heartbeats",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("pid", Id, nullable=False),
        sa.Column("started_at", UtcDateTime, nullable=False),
        sa.Column("last_tick_at", UtcDateTime, nullable=False),
        sa.Column("stopped_at", UtcDateTime, nullable=True),
        sa.Column("lanes", Json, nullable=False),
    )
    op.create_index("ix_worker_heartbeats_last_tick_at", "worker_heartbeats", ["last_tick_at"])


def downgrade() -> None:
    op.drop_index("ix_worker_heartbeats_last_tick_at", table_name="worker_heartbeats")
    op.drop_table("worker_heartbeats")
