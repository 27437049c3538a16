"""The schema. Every change here needs an Alembic migration (a test checks)."""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from baton.store.types import Id, Json, UtcDateTime

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

leads = Table(
    "leads",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("email", String(254)),
    Column("email_key", String(254), unique=True),
    Column("email_domain", String(253), index=True),
    Column("phone", String(32), index=True),
    Column("first_name", String(200)),
    Column("last_name", String(200)),
    Column("company", String(300)),
    Column("company_key", String(300), index=True),
    Column("title", String(300)),
    Column("country", String(2)),
    Column("region", String(100)),
    Column("postal_code", String(32)),
    Column("source", String(200)),
    Column("campaign", String(200)),
    Column("last_source", String(200)),
    Column("last_campaign", String(200)),
    Column("utm_source", String(200)),
    Column("utm_medium", String(200)),
    Column("utm_campaign", String(200)),
    Column("utm_term", String(200)),
    Column("utm_content", String(200)),
    Column("consent", Boolean),
    Column("attributes", Json, nullable=False),
    Column("stage", String(20), nullable=False, index=True),
    Column("stage_changed_at", UtcDateTime, nullable=False),
    Column("merged_into_id", Id, ForeignKey("leads.id")),
    Column("created_at", UtcDateTime, nullable=False, index=True),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("last_activity_at", UtcDateTime),
    Column("activity_count", Id, nullable=False, server_default="0"),
)

activities = Table(
    "activities",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("lead_id", Id, ForeignKey("leads.id"), nullable=False),
    Column("type", String(40), nullable=False),
    Column("occurred_at", UtcDateTime, nullable=False),
    Column("received_at", UtcDateTime, nullable=False),
    Column("properties", Json, nullable=False),
    Column("idempotency_key", String(200), unique=True),
    Column("recorded_by", String(200)),
    Column("merged_from_id", Id),
    Index("ix_activities_lead_occurred", "lead_id", "occurred_at"),
)

transitions = Table(
    "transitions",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("lead_id", Id, ForeignKey("leads.id"), nullable=False),
    Column("from_stage", String(20), nullable=False),
    Column("to_stage", String(20), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("reason", Text, nullable=False),
    Column("occurred_at", UtcDateTime, nullable=False),
    Column("contract_version", Id),
    Column("merged_from_id", Id),
    Index("ix_transitions_lead_occurred", "lead_id", "occurred_at"),
    Index("ix_transitions_to_stage_occurred", "to_stage", "occurred_at"),
)

notes = Table(
    "notes",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("lead_id", Id, ForeignKey("leads.id"), nullable=False, index=True),
    Column("author", String(200), nullable=False),
    Column("body", Text, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("merged_from_id", Id),
)

lead_tags = Table(
    "lead_tags",
    metadata,
    Column("lead_id", Id, ForeignKey("leads.id"), primary_key=True),
    Column("tag", String(100), primary_key=True),
    Column("added_by", String(200), nullable=False),
    Column("added_at", UtcDateTime, nullable=False),
    Index("ix_lead_tags_tag", "tag"),
)

tag_events = Table(
    "tag_events",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("lead_id", Id, ForeignKey("leads.id"), nullable=False, index=True),
    Column("tag", String(100), nullable=False),
    Column("action", String(10), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("occurred_at", UtcDateTime, nullable=False),
    Column("merged_from_id", Id),
)

duplicate_candidates = Table(
    "duplicate_candidates",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("lead_id", Id, ForeignKey("leads.id"), nullable=False, index=True),
    Column("other_lead_id", Id, ForeignKey("leads.id"), nullable=False, index=True),
    Column("reason", String(200), nullable=False),
    Column("similarity", Float, nullable=False),
    Column("status", String(20), nullable=False, index=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("resolved_at", UtcDateTime),
    Column("resolved_by", String(200)),
    UniqueConstraint("lead_id", "other_lead_id", name="uq_duplicate_pair"),
)

lead_merges = Table(
    "lead_merges",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("survivor_id", Id, ForeignKey("leads.id"), nullable=False, index=True),
    Column("merged_id", Id, ForeignKey("leads.id"), nullable=False, unique=True),
    Column("actor", String(200), nullable=False),
    Column("occurred_at", UtcDateTime, nullable=False),
    Column("changes", Json, nullable=False),
)

contracts = Table(
    "contracts",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("version", Id, nullable=False, unique=True),
    Column("name", String(200), nullable=False),
    Column("body", Text, nullable=False),
    Column("spec", Json, nullable=False),
    Column("status", String(20), nullable=False, index=True),
    Column("created_by", String(200), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("activated_at", UtcDateTime),
    Column("activated_by", String(200)),
    Column("superseded_at", UtcDateTime),
)

contract_approvals = Table(
    "contract_approvals",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("contract_id", Id, ForeignKey("contracts.id"), nullable=False),
    Column("role", String(20), nullable=False),
    Column("approver", String(200), nullable=False),
    Column("approved_at", UtcDateTime, nullable=False),
    UniqueConstraint("contract_id", "role", name="uq_contract_approvals_role"),
)

lead_scores = Table(
    "lead_scores",
    metadata,
    Column("lead_id", Id, ForeignKey("leads.id"), primary_key=True),
    Column("contract_version", Id, nullable=False),
    Column("fit", Float, nullable=False),
    Column("engagement", Float, nullable=False),
    Column("total", Float, nullable=False, index=True),
    Column("grade", String(1), nullable=False),
    Column("state", Json, nullable=False),
    Column("scored_at", UtcDateTime, nullable=False),
)
"""The lead's score under the active contract. Kept beside ``leads`` (not in it) so
that re-scoring on activation rewrites a narrow table and never contends with capture
for the lead rows."""

lead_prep = Table(
    "lead_prep",
    metadata,
    Column("lead_id", Id, ForeignKey("leads.id"), primary_key=True),
    Column("item", String(60), primary_key=True),
    Column("done_by", String(200), nullable=False),
    Column("done_at", UtcDateTime, nullable=False),
)
