"""At most one active contract version: a partial unique index on ``contracts.status``.

Activation locks the active version's row before it supersedes it, but when no version
is active yet there is no row to lock: two first activations of different versions at
the same moment on PostgreSQL both committed, and every write that scores then read two
active contracts. The index makes the second one fail (a conflict to retry) instead.
A database that already holds several active versions keeps the one activated last;
the others are marked superseded at that moment.

Revision ID: 0029
Revises: 0028
Create Date: 2026-12-06 14:45:00
"""

from alembic import op
import sqlalchemy as sa

revision = "0029"
down_revision = "0028"
branch_labels = None
depends_on = None

ONE_ACTIVE = "status = 'active'"


def upgrade() -> None:
    bind = op.get_bind()
    active = bind.execute(
        sa.text(
            "SELECT id, activated_at FROM contracts WHERE status = 'active' "
            "ORDER BY CASE WHEN activated_at IS NULL THEN 1 ELSE 0 END, activated_at DESC, id DESC"
        )
    ).all()
    for row in active[1:]:
        bind.execute(
            sa.text(
                "UPDATE contracts SET status = 'superseded', superseded_at = :at WHERE id = :id"
            ),
            {"at": active[0].activated_at, "id": row.id},
        )
    op.create_index(
        "uq_contracts_one_active",
        "contracts",
        ["status"],
        unique=True,
        sqlite_where=sa.text(ONE_ACTIVE),
        postgresql_where=sa.text(ONE_ACTIVE),
    )


def downgrade() -> None:
    op.drop_index("uq_contracts_one_active", table_name="contracts")
