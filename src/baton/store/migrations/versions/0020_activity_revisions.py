"""Count changes to activities other than inserts, for one-pass re-scores.

A full re-score reads every lead's engagement in one pass over
``activities`` before its chunks (instead of each chunk reading its leads' events at
random), and each chunk checks, inside its own write transaction, that what it was
read from still holds: an activity inserted since has a larger id (SQLite gives a new
row the largest id plus one, and activities are never deleted without this counter
moving), and an update or a delete of an activity (an erasure clears its properties)
moves ``activity_revisions.revision`` through the triggers made here (per row on
SQLite, per statement on PostgreSQL, where an erasure is one statement; two erasures
at once take turns on the counter's row). On PostgreSQL, where ids are not given in
commit order, the re-score first waits for the writers in flight (a ``SHARE`` lock on
``activities``, released at once) and takes the largest id then.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-05 17:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

TRIGGERS = {
    "activities_revised_on_update": (
        "AFTER UPDATE OF lead_id, type, occurred_at, properties ON activities"
    ),
    "activities_revised_on_delete": "AFTER DELETE ON activities",
}


BUMP = (
    "INSERT INTO activity_revisions (id, revision) VALUES (1, 1)"
    " ON CONFLICT (id) DO UPDATE SET revision = activity_revisions.revision + 1"
)
"""The counter moved (its row made again if someone deleted it: a missing row reads 0)."""


def upgrade() -> None:
    bind = op.get_bind()
    if "activity_revisions" not in sa.inspect(bind).get_table_names():
        table = op.create_table(
            "activity_revisions",
            sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
            sa.Column(
                "revision", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
            ),
            sa.PrimaryKeyConstraint("id"),
        )
        op.bulk_insert(table, [{"id": 1, "revision": 0}])
    if bind.dialect.name == "sqlite":
        for name, when in TRIGGERS.items():
            op.execute(f"CREATE TRIGGER IF NOT EXISTS {name} {when} FOR EACH ROW BEGIN {BUMP}; END")
        return
    # PostgreSQL: once per statement (an erasure updates a person's activities in one).
    op.execute(
        "CREATE OR REPLACE FUNCTION activities_revised() RETURNS trigger LANGUAGE plpgsql"
        f" AS $$ BEGIN {BUMP}; RETURN NULL; END $$"
    )
    for name, when in TRIGGERS.items():
        op.execute(f"DROP TRIGGER IF EXISTS {name} ON activities")
        op.execute(
            f"CREATE TRIGGER {name} {when} FOR EACH STATEMENT EXECUTE FUNCTION activities_revised()"
        )


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for name in TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS {name}" + (" ON activities" if postgres else ""))
    if postgres:
        op.execute("DROP FUNCTION IF EXISTS activities_revised()")
    op.drop_table("activity_revisions")
