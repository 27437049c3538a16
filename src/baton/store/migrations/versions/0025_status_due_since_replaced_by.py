"""What ``baton status`` needs to judge retries and restarts truly:

* ``intake_items.due_since``: when an item awaiting a fetch first fell due in its
  current series of attempts. Each failed read moves ``next_attempt_at`` into the
  future, so an item failing for hours never looked late; its lateness is now measured
  from here (set by the worker when it claims the series' first attempt; NULL for the
  items waiting now, which are then judged by ``next_attempt_at`` as before).
* ``worker_heartbeats.replaced_by``: the heartbeat row of the worker that took over
  from this one on the same host (the process was killed, so it never said it
  stopped), so a restart no longer leaves a *silent* worker beside the running one.

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-06 06:00:00
"""

from alembic import op
import sqlalchemy as sa

from baton.store.types import Id, UtcDateTime

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("intake_items", sa.Column("due_since", UtcDateTime, nullable=True))
    op.add_column("worker_heartbeats", sa.Column("replaced_by", Id, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("worker_heartbeats") as batch:
        batch.drop_column("replaced_by")
    with op.batch_alter_table("intake_items") as batch:
        batch.drop_column("due_since")
