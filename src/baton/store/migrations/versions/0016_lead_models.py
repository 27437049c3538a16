"""Learned scoring: model versions (``lead_models``) with their two-team signatures
(``lead_model_approvals``), and the model's probability beside each lead's score
(``lead_scores.probability``).

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-05 09:10:00
"""

from alembic import op
import sqlalchemy as sa

from baton.store.types import Id, Json, UtcDateTime

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("lead_scores", sa.Column("probability", sa.Float(), nullable=True))
    op.create_table(
        "lead_models",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("version", Id, nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("target", sa.String(length=120), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("features", Json, nullable=False),
        sa.Column("artifact", sa.LargeBinary(), nullable=False),
        sa.Column("artifact_sha256", sa.String(length=64), nullable=False),
        sa.Column("evaluation", Json, nullable=False),
        sa.Column("trained_on", Json, nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("activated_at", UtcDateTime, nullable=True),
        sa.Column("activated_by", sa.String(length=200), nullable=True),
        sa.Column("superseded_at", UtcDateTime, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lead_models")),
        sa.UniqueConstraint("version", name=op.f("uq_lead_models_version")),
    )
    op.create_index("ix_lead_models_status", "lead_models", ["status"])
    op.create_table(
        "lead_model_approvals",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("model_id", Id, nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("approver", sa.String(length=200), nullable=False),
        sa.Column("actor_user_id", Id, nullable=True),
        sa.Column("approved_at", UtcDateTime, nullable=False),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["lead_models.id"],
            name=op.f("fk_lead_model_approvals_model_id_lead_models"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lead_model_approvals")),
        sa.UniqueConstraint("model_id", "role", name="uq_lead_model_approvals_role"),
    )


def downgrade() -> None:
    op.drop_table("lead_model_approvals")
    op.drop_index("ix_lead_models_status", table_name="lead_models")
    op.drop_table("lead_models")
    with op.batch_alter_table("lead_scores") as batch:
        batch.drop_column("probability")
