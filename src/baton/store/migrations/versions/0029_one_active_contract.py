"""At most one active contract version: a partial unique index on ``contracts.status``.

Activation locks the active version's row before it supersedes it, but when no version
is active yet there is no row to lock: two first activations of different versions at
the same moment on PostgreSQL both committed, and every write that scores then read two
active contracts. The index makes the second one fail (a conflict to retry) instead.
A database that already holds several active versions keeps the one activated last;
the others are marked superseded at that moment, and the kept version's re-score is
marked unfinished (its leads carry scores of several versions: `baton status` says to
run `baton contract rescore`).

Revision ID: 0029
Revises: 0028
Create Date: 2026-12-06 14:45:00
"""

from datetime import UTC, datetime

from alembic import op
import sqlalchemy as sa

from baton.store.types import UtcDateTime

revision = "0029"
down_revision = "0028"
branch_labels = None
depends_on = None

ONE_ACTIVE = "status = 'active'"


def upgrade() -> None:
    bind = op.get_bind()
    active = bind.execute(
        sa.text(
            "SELECT id, version, activated_at FROM contracts WHERE status = 'active' "
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
    if len(active) > 1:
        # The leads carry scores of several versions: the kept one's re-score is marked
        # unfinished and stopped (0 scored), so `baton status` and the contract list say
        # to run `baton contract rescore`.
        now = datetime.now(UTC)
        bind.execute(sa.text("DELETE FROM contract_rescores"))
        bind.execute(
            sa.text(
                "INSERT INTO contract_rescores (version, total, scored, started_at, noted_at,"
                " stopped_at) SELECT :version, count(*), 0, :now, :now, :now FROM leads"
                " WHERE merged_into_id IS NULL"
            ).bindparams(sa.bindparam("now", type_=UtcDateTime)),
            {"version": active[0].version, "now": now},
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
