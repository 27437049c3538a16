"""Access: users (with the teams managers manage), server-side sessions, API tokens,
intake keys, login failures, and a nullable ``actor_user_id`` beside each kept text
actor (existing rows keep their strings and get NULL).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04 23:27:05.559508
"""

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
import baton.store.types

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "intake_keys",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("source", sa.String(length=200), nullable=False),
        sa.Column(
            "origins",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "rate_per_minute", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("revoked_at", baton.store.types.UtcDateTime(timezone=True), nullable=True),
        sa.Column("created_at", baton.store.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_intake_keys")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_intake_keys_key_hash")),
        sa.UniqueConstraint("name", name=op.f("uq_intake_keys_name")),
    )
    op.create_table(
        "login_failures",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("account", sa.String(length=254), nullable=False),
        sa.Column("address", sa.String(length=64), nullable=False),
        sa.Column("failed_at", baton.store.types.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_login_failures")),
    )
    with op.batch_alter_table("login_failures", schema=None) as batch_op:
        batch_op.create_index("ix_login_failures_account", ["account", "failed_at"], unique=False)
        batch_op.create_index("ix_login_failures_address", ["address", "failed_at"], unique=False)

    op.create_table(
        "users",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("display_name", sa.String(length=200), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("rep_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("password_hash", sa.String(length=200), nullable=True),
        sa.Column("one_time_password", sa.Boolean(), nullable=False),
        sa.Column("demo", sa.Boolean(), nullable=False),
        sa.Column("created_at", baton.store.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", baton.store.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(["rep_id"], ["reps.id"], name=op.f("fk_users_rep_id_reps")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("email", name=op.f("uq_users_email")),
        sa.UniqueConstraint("rep_id", name=op.f("uq_users_rep_id")),
    )
    op.create_table(
        "api_tokens",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column(
            "scopes",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("expires_at", baton.store.types.UtcDateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", baton.store.types.UtcDateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", baton.store.types.UtcDateTime(timezone=True), nullable=True),
        sa.Column("created_at", baton.store.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_api_tokens_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_api_tokens_token_hash")),
    )
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_api_tokens_user_id"), ["user_id"], unique=False)

    op.create_table(
        "sessions",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("csrf_token", sa.String(length=64), nullable=False),
        sa.Column("created_at", baton.store.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", baton.store.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("ended_at", baton.store.types.UtcDateTime(timezone=True), nullable=True),
        sa.Column("address", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_sessions_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sessions")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_sessions_key_hash")),
    )
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sessions_user_id"), ["user_id"], unique=False)

    op.create_table(
        "user_teams",
        sa.Column("user_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("team_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.ForeignKeyConstraint(
            ["team_id"], ["teams.id"], name=op.f("fk_user_teams_team_id_teams")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_user_teams_user_id_users")
        ),
        sa.PrimaryKeyConstraint("user_id", "team_id", name=op.f("pk_user_teams")),
    )
    with op.batch_alter_table("contract_approvals", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "actor_user_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
            )
        )

    with op.batch_alter_table("handoff_events", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "actor_user_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
            )
        )

    with op.batch_alter_table("lead_merges", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "actor_user_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
            )
        )

    with op.batch_alter_table("notes", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "actor_user_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
            )
        )

    with op.batch_alter_table("tag_events", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "actor_user_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
            )
        )

    with op.batch_alter_table("transitions", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "actor_user_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("transitions", schema=None) as batch_op:
        batch_op.drop_column("actor_user_id")

    with op.batch_alter_table("tag_events", schema=None) as batch_op:
        batch_op.drop_column("actor_user_id")

    with op.batch_alter_table("notes", schema=None) as batch_op:
        batch_op.drop_column("actor_user_id")

    with op.batch_alter_table("lead_merges", schema=None) as batch_op:
        batch_op.drop_column("actor_user_id")

    with op.batch_alter_table("handoff_events", schema=None) as batch_op:
        batch_op.drop_column("actor_user_id")

    with op.batch_alter_table("contract_approvals", schema=None) as batch_op:
        batch_op.drop_column("actor_user_id")

    op.drop_table("user_teams")
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sessions_user_id"))

    op.drop_table("sessions")
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_tokens_user_id"))

    op.drop_table("api_tokens")
    op.drop_table("users")
    with op.batch_alter_table("login_failures", schema=None) as batch_op:
        batch_op.drop_index("ix_login_failures_address")
        batch_op.drop_index("ix_login_failures_account")

    op.drop_table("login_failures")
    op.drop_table("intake_keys")
