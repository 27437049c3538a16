"""PostgreSQL: leave half of each page of ``leads`` free (fillfactor 50, was 70 since
0018), so that the counter updates of an activity ingest are all HOT updates.

An ingest transaction updates the counters of up to 2,500 neighbouring leads at once,
so each page needs room for a new version of every row on it. With 30 % free, about one
update in eight found no room: it went to another page and wrote all nine indexes of
``leads`` (the full-text one among them). Measured with ``bench/ingest.py``'s rows
(1,000,000 events, 100,000 leads): 88 % → 99.9 % of the updates HOT, and the counter
update's server CPU 7.4–7.7 → 4.5–4.6 µs per event (all the server's work about 24 →
20–21 µs). The table and its indexes even ended smaller (71 MB against 103 MB: the
updates that moved rows grew the table and all nine indexes); leads never updated take
more room (up to 1.4×). SQLite has no such setting: nothing to do.

Only pages written from now on keep the room; ``VACUUM FULL leads`` (which locks the
table) applies it to existing rows when an operator wants it at once.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-05 20:30:00
"""

from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE leads SET (fillfactor = 50)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE leads SET (fillfactor = 70)")
