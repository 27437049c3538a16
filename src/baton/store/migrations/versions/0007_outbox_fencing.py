"""Outbox fencing and retries: a claim token per leased row (a worker sends a row only
while the lease is still its own), ``attempts_base`` (the attempts an admin's retry
starts a new series from), the claim index per channel (email and webhooks are claimed
apart), and the webhook reply bodies already stored in errors cut off (only the
status line is kept from now on).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05 00:19:44.246279
"""

import re
import sqlite3

from alembic import op
import sqlalchemy as sa

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_STATUS_LINE = re.compile(r"^(HTTP \d{3}[^:]*): .*$", re.DOTALL)
"""What errors of webhook answers looked like: ``HTTP 500 Internal Server Error: <the
start of the receiver's reply>``; the part after the status line goes."""


def upgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("claim_token", sa.String(length=32), nullable=True))
        batch_op.add_column(
            sa.Column(
                "attempts_base",
                sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                server_default="0",
                nullable=False,
            )
        )
        batch_op.drop_index(batch_op.f("ix_outbox_status_next_attempt_at"))
        batch_op.create_index(
            "ix_outbox_channel_status_next_attempt_at",
            ["channel", "status", "next_attempt_at"],
            unique=False,
        )
    _forget_reply_bodies()


def _forget_reply_bodies() -> None:
    connection = op.get_bind()
    outbox = sa.table("outbox", sa.column("id"), sa.column("channel"), sa.column("last_error"))
    deliveries = sa.table("deliveries", sa.column("id"), sa.column("outbox_id"), sa.column("error"))
    webhook_ids = sa.select(outbox.c.id).where(outbox.c.channel == "webhook")
    for table, column, scope in (
        (outbox, outbox.c.last_error, outbox.c.channel == "webhook"),
        (deliveries, deliveries.c.error, deliveries.c.outbox_id.in_(webhook_ids)),
    ):
        rows = connection.execute(
            sa.select(table.c.id, column).where(scope, column.like("HTTP %: %"))
        ).all()
        for row_id, error in rows:
            cut = _STATUS_LINE.sub(r"\1", error)
            if cut != error:
                connection.execute(
                    sa.update(table).where(table.c.id == row_id).values({column.name: cut})
                )


def downgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_channel_status_next_attempt_at")
        batch_op.create_index(
            batch_op.f("ix_outbox_status_next_attempt_at"),
            ["status", "next_attempt_at"],
            unique=False,
        )
    if op.get_bind().dialect.name != "sqlite":
        op.drop_column("outbox", "attempts_base")
        op.drop_column("outbox", "claim_token")
    elif sqlite3.sqlite_version_info >= (3, 35):
        # Natively: a batch copy of the table would DROP TABLE outbox, which the
        # foreign key of ``deliveries`` refuses as soon as a delivery exists.
        op.execute("ALTER TABLE outbox DROP COLUMN attempts_base")
        op.execute("ALTER TABLE outbox DROP COLUMN claim_token")
    else:  # an older SQLite: only a copy can drop a column (an empty outbox log)
        with op.batch_alter_table("outbox", schema=None) as batch_op:
            batch_op.drop_column("attempts_base")
            batch_op.drop_column("claim_token")
