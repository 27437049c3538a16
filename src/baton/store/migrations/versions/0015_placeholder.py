"""Placeholder reserved for a parallel change; replaced by its real migration.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-05 06:00:00
"""

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
