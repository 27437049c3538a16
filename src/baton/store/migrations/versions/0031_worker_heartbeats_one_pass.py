"""A one-off pass of the worker (``baton worker --once``) leaves a heartbeat row:
``worker_heartbeats.one_pass``.

Before, only a long-running worker wrote a row, so ``baton status`` after a pass from a
script or cron said "no worker has ever run against this database" while the pass had
just checked duplicates and sent email. A one-off pass now writes a row that reads
*stopped*, marked ``one_pass``, and replaces the previous one-off row (whatever its
host: a cron job's container may have a new host name each run), so a pass every
minute adds no row a minute.

Revision ID: 0031
Revises: 0030
Create Date: 2026-12-06 21:40:00
"""

from alembic import op
import sqlalchemy as sa

revision = "0031"
down_revision = "0030"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "worker_heartbeats",
        sa.Column("one_pass", sa.Boolean(), nullable=False, server_default=sa.false()),
    )


def downgrade() -> None:
    with op.batch_alter_table("worker_heartbeats") as batch:
        batch.drop_column("one_pass")
