"""Nurture: enrollments in the contract's sequences, the send log (one row per
enrollment and step), the suppression list, and the lawful basis of a lead's consent
(``consent_basis``, ``consent_at``, ``consent_source``) with ``unsubscribed_at``.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-05 06:30:00
"""

import sqlite3

from alembic import op
import sqlalchemy as sa

from baton.store.types import Id, Json, UtcDateTime

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

LEAD_COLUMNS = ("consent_basis", "consent_at", "consent_source", "unsubscribed_at")


def upgrade() -> None:
    # Plain ADD COLUMN: nullable columns are added in place (no batch copy of leads).
    op.add_column("leads", sa.Column("consent_basis", sa.String(length=40), nullable=True))
    op.add_column("leads", sa.Column("consent_at", UtcDateTime, nullable=True))
    op.add_column("leads", sa.Column("consent_source", sa.String(length=300), nullable=True))
    op.add_column("leads", sa.Column("unsubscribed_at", UtcDateTime, nullable=True))
    # The unguessable part of outbox email Message-IDs (older rows have none: refused).
    op.add_column("outbox", sa.Column("message_key", sa.String(length=24), nullable=True))
    op.create_table(
        "nurture_enrollments",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("lead_id", Id, nullable=False),
        sa.Column("sequence", sa.String(length=100), nullable=False),
        sa.Column("contract_version", Id, nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("reason", sa.String(length=300), nullable=False),
        sa.Column("enrolled_at", UtcDateTime, nullable=False),
        sa.Column("enrolled_by", sa.String(length=200), nullable=False),
        sa.Column("next_step", Id, server_default="0", nullable=False),
        sa.Column("next_due_at", UtcDateTime, nullable=True),
        sa.Column("touches", Id, server_default="0", nullable=False),
        sa.Column("last_touch_at", UtcDateTime, nullable=True),
        sa.Column("ended_at", UtcDateTime, nullable=True),
        sa.Column("exit_reason", sa.String(length=40), nullable=True),
        sa.Column("claimed_until", UtcDateTime, nullable=True),
        sa.Column("claim_token", sa.String(length=32), nullable=True),
        sa.ForeignKeyConstraint(
            ["lead_id"], ["leads.id"], name=op.f("fk_nurture_enrollments_lead_id_leads")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_nurture_enrollments")),
    )
    op.create_index("ix_nurture_enrollments_lead_id", "nurture_enrollments", ["lead_id"])
    op.create_index(
        "ix_nurture_enrollments_status_next_due_at",
        "nurture_enrollments",
        ["status", "next_due_at"],
    )
    op.create_index(
        "ix_nurture_enrollments_claimed_until", "nurture_enrollments", ["claimed_until"]
    )
    op.create_index(
        "uq_nurture_enrollments_active_lead",
        "nurture_enrollments",
        ["lead_id"],
        unique=True,
        sqlite_where=sa.text("status = 'active'"),
        postgresql_where=sa.text("status = 'active'"),
    )
    op.create_table(
        "nurture_sends",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("enrollment_id", Id, nullable=False),
        sa.Column("step", Id, nullable=False),
        sa.Column("lead_id", Id, nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("template", sa.String(length=100), nullable=False),
        sa.Column("outbox_id", Id, nullable=True),
        sa.Column("message_id", sa.String(length=200), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("planned_at", UtcDateTime, nullable=False),
        sa.Column("sent_at", UtcDateTime, nullable=True),
        sa.Column("links", Json, nullable=True),
        sa.ForeignKeyConstraint(
            ["enrollment_id"],
            ["nurture_enrollments.id"],
            name=op.f("fk_nurture_sends_enrollment_id_nurture_enrollments"),
        ),
        sa.ForeignKeyConstraint(
            ["lead_id"], ["leads.id"], name=op.f("fk_nurture_sends_lead_id_leads")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_nurture_sends")),
        sa.UniqueConstraint("enrollment_id", "step", name="uq_nurture_sends_enrollment_step"),
    )
    op.create_index("ix_nurture_sends_lead_id", "nurture_sends", ["lead_id"])
    op.create_index("ix_nurture_sends_planned_at", "nurture_sends", ["planned_at"])
    op.create_index("ix_nurture_sends_outbox_id", "nurture_sends", ["outbox_id"])
    op.create_table(
        "suppressions",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("email_key", sa.String(length=254), nullable=False),
        sa.Column("reason", sa.String(length=30), nullable=False),
        sa.Column("source", sa.String(length=300), nullable=True),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_suppressions")),
        sa.UniqueConstraint("email_key", name=op.f("uq_suppressions_email_key")),
    )


def downgrade() -> None:
    op.drop_table("suppressions")
    op.drop_index("ix_nurture_sends_outbox_id", table_name="nurture_sends")
    op.drop_index("ix_nurture_sends_planned_at", table_name="nurture_sends")
    op.drop_index("ix_nurture_sends_lead_id", table_name="nurture_sends")
    op.drop_table("nurture_sends")
    op.drop_index("uq_nurture_enrollments_active_lead", table_name="nurture_enrollments")
    op.drop_index("ix_nurture_enrollments_claimed_until", table_name="nurture_enrollments")
    op.drop_index("ix_nurture_enrollments_status_next_due_at", table_name="nurture_enrollments")
    op.drop_index("ix_nurture_enrollments_lead_id", table_name="nurture_enrollments")
    op.drop_table("nurture_enrollments")
    if op.get_bind().dialect.name != "sqlite" or sqlite3.sqlite_version_info >= (3, 35):
        op.execute("ALTER TABLE outbox DROP COLUMN message_key")
        for column in reversed(LEAD_COLUMNS):
            op.execute(f"ALTER TABLE leads DROP COLUMN {column}")
    else:
        with op.batch_alter_table("outbox", schema=None) as batch_op:
            batch_op.drop_column("message_key")
        with op.batch_alter_table("leads", schema=None) as batch_op:
            for column in reversed(LEAD_COLUMNS):
                batch_op.drop_column(column)
