"""Unfinished re-scores: ``contract_rescores``.

An activation re-scores every lead in chunks after the version is already active; one
stopped half way (killed, Ctrl+C, a database error) left the rest scored by the older
version with nothing to say so but a warning at the next start. The activation now
writes a row in its own transaction, notes its progress as it goes and deletes the row
when it ends, so ``baton status``, ``baton contract list``, the contract page and
``GET /api/v1/status`` can say "re-score of version N unfinished" by one small read.
A re-score interrupted before this upgrade leaves no row (nothing recorded it).

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-06 11:00:00
"""

from alembic import op
import sqlalchemy as sa

from baton.store.types import Id, UtcDateTime

revision = "0027"
down_revision = "0026"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "contract_rescores",
        sa.Column("version", Id, primary_key=True, autoincrement=False),
        sa.Column("total", Id, nullable=False),
        sa.Column("scored", Id, nullable=False),
        sa.Column("started_at", UtcDateTime, nullable=False),
        sa.Column("noted_at", UtcDateTime, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("contract_rescores")
