"""Widen the activities index ``(lead_id, occurred_at)`` to ``(lead_id, occurred_at,
type)``. Every query the old index served keeps its plan (same leading columns, same
order within a lead), and a re-score's engagement query now answers its rules that
filter on the event type alone from the index, without reading an activity row: on
SQLite a full re-score read each event's row at random through the old index, about
half of its time at 1,000,000 leads and 10,000,000 events. It replaces the old index
rather than adding one, so ingest maintains the same number of indexes (each entry is
the type's few bytes longer).

On a large PostgreSQL table ``CREATE INDEX`` blocks writes to ``activities`` while it
builds; an operator who cannot pause ingest builds it first with ``CREATE INDEX
CONCURRENTLY`` under the same name, which this migration then leaves as it is.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-05 14:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def _indexes() -> set[str]:
    return {str(index["name"]) for index in sa.inspect(op.get_bind()).get_indexes("activities")}


def upgrade() -> None:
    if "ix_activities_lead_occurred_type" not in _indexes():
        op.create_index(
            "ix_activities_lead_occurred_type",
            "activities",
            ["lead_id", "occurred_at", "type"],
        )
    op.drop_index("ix_activities_lead_occurred", table_name="activities")


def downgrade() -> None:
    op.create_index("ix_activities_lead_occurred", "activities", ["lead_id", "occurred_at"])
    op.drop_index("ix_activities_lead_occurred_type", table_name="activities")
