"""History brought from another CRM: transitions say whether they were recorded after
the fact (``historical``, with ``recorded_at``, when Baton learnt of them, beside
``occurred_at``, when they happened) and carry a won deal's value; saved column mappings
for history imports (``import_mappings``).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-05 06:00:00
"""

import sqlite3

from alembic import op
import sqlalchemy as sa

from baton.store.types import Id, Json, UtcDateTime

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN (no batch copy): SQLite adds a NOT NULL column with a default in
    # place, where a batch would rebuild ``transitions`` (see 0010).
    op.add_column(
        "transitions",
        sa.Column("historical", sa.Boolean(), server_default=sa.false(), nullable=False),
    )
    op.add_column("transitions", sa.Column("recorded_at", UtcDateTime, nullable=True))
    op.add_column("transitions", sa.Column("deal_value", sa.Float(), nullable=True))
    op.create_table(
        "import_mappings",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("columns", Json, nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("updated_at", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_import_mappings")),
        sa.UniqueConstraint("name", name=op.f("uq_import_mappings_name")),
    )


def downgrade() -> None:
    op.drop_table("import_mappings")
    if op.get_bind().dialect.name != "sqlite" or sqlite3.sqlite_version_info >= (3, 35):
        for column in ("deal_value", "recorded_at", "historical"):
            op.execute(f"ALTER TABLE transitions DROP COLUMN {column}")
    else:
        with op.batch_alter_table("transitions", schema=None) as batch_op:
            for column in ("deal_value", "recorded_at", "historical"):
                batch_op.drop_column(column)
