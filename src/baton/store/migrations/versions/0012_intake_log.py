"""Inbound endpoints and the intake log: ``intake_endpoints`` (one per ``/hooks/{name}``),
``intake_requests`` (every request stored raw before it is read) and ``intake_items``
(each submission in a request, with its upstream id, outcome and errors).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05 06:00:00
"""

from alembic import op
import sqlalchemy as sa

from baton.store.types import Id, Json, UtcDateTime

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "intake_endpoints",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=30), nullable=False),
        sa.Column("source", sa.String(length=200), nullable=False),
        sa.Column("campaign", sa.String(length=200), nullable=True),
        sa.Column("event_type", sa.String(length=40), nullable=True),
        sa.Column("mapping", Json, nullable=False),
        sa.Column("secret", sa.String(length=500), nullable=True),
        sa.Column("fetch_token", sa.String(length=2000), nullable=True),
        sa.Column("fetch_base_url", sa.String(length=2000), nullable=True),
        sa.Column("return_urls", Json, nullable=False),
        sa.Column("honeypot_field", sa.String(length=100), nullable=True),
        sa.Column("rate_per_minute", Id, nullable=False),
        sa.Column("max_body_bytes", Id, nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("throttled_count", Id, server_default="0", nullable=False),
        sa.Column("last_throttled_at", UtcDateTime, nullable=True),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("updated_at", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_intake_endpoints")),
        sa.UniqueConstraint("name", name=op.f("uq_intake_endpoints_name")),
    )
    op.create_table(
        "intake_requests",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("endpoint_id", Id, nullable=False),
        sa.Column("received_at", UtcDateTime, nullable=False),
        sa.Column("content_type", sa.String(length=200), nullable=False),
        sa.Column("headers", Json, nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("remote_address", sa.String(length=64), nullable=True),
        sa.Column("method", sa.String(length=10), nullable=True),
        sa.Column("url", sa.Text(), nullable=True),
        sa.Column("query", Json, nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("processed_at", UtcDateTime, nullable=True),
        sa.ForeignKeyConstraint(
            ["endpoint_id"],
            ["intake_endpoints.id"],
            name=op.f("fk_intake_requests_endpoint_id_intake_endpoints"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_intake_requests")),
    )
    op.create_index(
        "ix_intake_requests_endpoint_id", "intake_requests", ["endpoint_id", "received_at"]
    )
    op.create_index("ix_intake_requests_status", "intake_requests", ["status"])
    op.create_table(
        "intake_items",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("request_id", Id, nullable=False),
        sa.Column("endpoint_id", Id, nullable=False),
        sa.Column("position", Id, nullable=False),
        sa.Column("upstream_id", sa.String(length=300), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("item", Json, nullable=True),
        sa.Column("error", Json, nullable=True),
        sa.Column("lead_id", Id, nullable=True),
        sa.Column("activity_id", Id, nullable=True),
        sa.Column("duplicate_of", Id, nullable=True),
        sa.Column("attempts", Id, server_default="0", nullable=False),
        sa.Column("next_attempt_at", UtcDateTime, nullable=True),
        sa.Column("claimed_until", UtcDateTime, nullable=True),
        sa.Column("claim_token", sa.String(length=32), nullable=True),
        sa.Column("processed_at", UtcDateTime, nullable=True),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["intake_requests.id"],
            name=op.f("fk_intake_items_request_id_intake_requests"),
        ),
        sa.ForeignKeyConstraint(
            ["endpoint_id"],
            ["intake_endpoints.id"],
            name=op.f("fk_intake_items_endpoint_id_intake_endpoints"),
        ),
        sa.ForeignKeyConstraint(
            ["lead_id"], ["leads.id"], name=op.f("fk_intake_items_lead_id_leads")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_intake_items")),
        sa.UniqueConstraint(
            "endpoint_id", "upstream_id", name="uq_intake_items_endpoint_upstream"
        ),
    )
    op.create_index("ix_intake_items_request_id", "intake_items", ["request_id"])
    op.create_index(
        "ix_intake_items_status_next_attempt_at", "intake_items", ["status", "next_attempt_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_intake_items_status_next_attempt_at", table_name="intake_items")
    op.drop_index("ix_intake_items_request_id", table_name="intake_items")
    op.drop_table("intake_items")
    op.drop_index("ix_intake_requests_status", table_name="intake_requests")
    op.drop_index("ix_intake_requests_endpoint_id", table_name="intake_requests")
    op.drop_table("intake_requests")
    op.drop_table("intake_endpoints")
