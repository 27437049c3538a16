"""Several workers on PostgreSQL share the duplicate lane's queue without comparing the
same leads: ``duplicate_checks.reserved_until``.

Before, each worker read the oldest batch and compared it, and only one of them could
write each part: two workers on 19,980 queued leads compared about 40,000. A worker now
reserves its batch first (a short committed update of the rows no live reservation
holds, skipping rows another worker is reserving, timed by the database's clock), so
the next worker takes the batch after it. The reservation is a hint, not a lock: it holds no row and no lock slot while
the batch is compared, a merge never waits for it, and the claim that writes the pairs
is unchanged, so a reservation that runs out (a worker that died) only lets another
worker take the batch. SQLite has one writer and reads no reservation.

Revision ID: 0032
Revises: 0031
Create Date: 2026-12-07 00:20:00
"""

from alembic import op
import sqlalchemy as sa

import baton.store.types

revision = "0032"
down_revision = "0031"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "duplicate_checks",
        sa.Column("reserved_until", baton.store.types.UtcDateTime(timezone=True), nullable=True),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE duplicate_checks SET (fillfactor = 50)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE duplicate_checks RESET (fillfactor)")
    with op.batch_alter_table("duplicate_checks") as batch:
        batch.drop_column("reserved_until")
