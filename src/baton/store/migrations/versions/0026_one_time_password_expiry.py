"""One-time passwords expire: ``users.one_time_password_expires_at``.

A one-time password is handed over by chat or on paper; one never used stayed a
working credential for good. It now stops working at this moment (set when it is made,
``one_time_password_days`` later; NULL for a password the user chose). The one-time
passwords that exist now get a week from the upgrade, so nobody is locked out by it.

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-06 08:00:00
"""

from datetime import UTC, datetime, timedelta

from alembic import op
import sqlalchemy as sa

from baton.store.types import UtcDateTime

revision = "0026"
down_revision = "0025"
branch_labels = None
depends_on = None

GRACE = timedelta(days=7)


def upgrade() -> None:
    op.add_column("users", sa.Column("one_time_password_expires_at", UtcDateTime, nullable=True))
    users = sa.table(
        "users",
        sa.column("one_time_password", sa.Boolean),
        sa.column("one_time_password_expires_at", UtcDateTime),
    )
    op.execute(
        users.update()
        .where(users.c.one_time_password.is_(True))
        .values(one_time_password_expires_at=datetime.now(UTC) + GRACE)
    )


def downgrade() -> None:
    # In place, not by batch: SQLite's rebuild of ``users`` fails on the foreign keys of
    # sessions, teams and tokens (a column without constraints drops in place there).
    op.drop_column("users", "one_time_password_expires_at")
