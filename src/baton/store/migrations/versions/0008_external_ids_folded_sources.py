"""External ids and case-folded sources: a lead may carry the id another system gave it
(``external_system``, ``external_id``; unique per system, matched on re-import like an
email), and every stored source is case-folded so that ``Google`` and ``google`` are one
source in every report.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05 00:40:00
"""

from alembic import op
import sqlalchemy as sa

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

# (table, column) pairs holding a source, as of this revision.
SOURCE_COLUMNS = (
    ("leads", "source"),
    ("leads", "last_source"),
    ("leads", "utm_source"),
    ("spend", "source"),
    ("intake_keys", "source"),
)


def _fold(value: str) -> str:
    """Frozen copy of ``baton.domain.leads.fold_source`` as of this revision (SQL
    ``lower()`` folds only ASCII on SQLite)."""
    return " ".join(value.split()).casefold()


def _fold_sources() -> None:
    connection = op.get_bind()
    for table, column in SOURCE_COLUMNS:
        values = connection.execute(
            sa.text(f"SELECT DISTINCT {column} FROM {table} WHERE {column} IS NOT NULL")
        ).scalars()
        changes = [{"old": v, "new": _fold(v)} for v in values if _fold(v) != v]
        if changes:
            connection.execute(
                sa.text(f"UPDATE {table} SET {column} = :new WHERE {column} = :old"), changes
            )


def upgrade() -> None:
    op.add_column("leads", sa.Column("external_system", sa.String(length=100), nullable=True))
    op.add_column("leads", sa.Column("external_id", sa.String(length=200), nullable=True))
    op.create_index("uq_leads_external", "leads", ["external_id", "external_system"], unique=True)
    _fold_sources()


def downgrade() -> None:
    op.drop_index("uq_leads_external", table_name="leads")
    op.drop_column("leads", "external_id")
    op.drop_column("leads", "external_system")
