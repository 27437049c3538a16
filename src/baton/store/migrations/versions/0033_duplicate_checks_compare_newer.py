"""A lead whose compared fields change is compared again, with newer leads too:
``duplicate_checks.compare_newer``.

A queued new lead is compared with the leads older than it (a pair is flagged once, on
its newer lead, when the newer one arrives). A lead that gains a phone, a name, a
company or an email later (a newsletter sign-up, then a demo request) was never
compared again, so its pair with a lead that already held that phone was never
flagged. Capture and import now queue such a lead again with ``compare_newer`` set: the
worker compares it with every lead holding its values, older or newer.

Revision ID: 0033
Revises: 0032
Create Date: 2026-12-07 02:20:00
"""

from alembic import op
import sqlalchemy as sa

revision = "0033"
down_revision = "0032"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "duplicate_checks",
        sa.Column("compare_newer", sa.Boolean(), nullable=False, server_default=sa.false()),
    )


def downgrade() -> None:
    with op.batch_alter_table("duplicate_checks") as batch:
        batch.drop_column("compare_newer")
