"""The schema. Every change here needs an Alembic migration (a test checks)."""

from __future__ import annotations

import secrets

from sqlalchemy import (
    Boolean,
    Column,
    Date,
    Float,
    ForeignKey,
    Index,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    text,
    true,
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
    Column("email_domain", String(253)),
    # The one mailbox of an address at a provider that ignores dots or a +tag
    # (baton.domain.contact.mailbox_key; migration 0023), else None: a shared one is a
    # possible duplicate, found by the partial index ix_leads_mailbox_key.
    Column("mailbox_key", String(254)),
    Column("phone", String(32)),
    Column("external_system", String(100)),
    Column("external_id", String(200)),
    Column("first_name", String(200)),
    Column("last_name", String(200)),
    Column("company", String(300)),
    Column("company_key", String(300)),
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
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("last_activity_at", UtcDateTime),
    Column("activity_count", Id, nullable=False, server_default="0"),
    # Milestones (see baton.services.milestones): kept by the stage-change use case,
    # recomputed from the transitions and handoffs by a merge or a rebuild.
    Column("reached_stages", Id, nullable=False, server_default="0"),
    Column("mql_at", UtcDateTime),
    Column("sal_at", UtcDateTime),
    Column("sql_at", UtcDateTime),
    Column("opportunity_at", UtcDateTime),
    Column("customer_at", UtcDateTime),
    Column("mql_contract_version", Id),
    Column("first_rep_id", Id),
    Column("handoff_outcomes", Id, nullable=False, server_default="0"),
    Column("open_accept_due_at", UtcDateTime),
    # Bounces (migration 0013): None while mail is delivered, "soft_bounce" or
    # "hard_bounce" after a delivery status notification; nurture skips a hard bounce.
    Column("email_status", String(20)),
    Column("email_status_at", UtcDateTime),
    Column("email_status_detail", String(500)),
    Column("consent_basis", String(40)),
    Column("consent_at", UtcDateTime),
    Column("consent_source", String(300)),
    Column("unsubscribed_at", UtcDateTime),
    Index(
        "ix_leads_cohort",
        "created_at",
        "merged_into_id",
        "source",
        "campaign",
        "country",
        "reached_stages",
        "first_rep_id",
        "mql_contract_version",
        "mql_at",
        "sal_at",
        "sql_at",
        "opportunity_at",
        "customer_at",
        "handoff_outcomes",
        "open_accept_due_at",
    ),
    Index("uq_leads_external", "external_id", "external_system", unique=True),
    # The possible-duplicate comparison reads each value's oldest holders in id order
    # (migration 0030): the id ends these indexes.
    Index("ix_leads_phone", "phone", "id"),
    Index("ix_leads_company_key", "company_key", "id"),
    Index("ix_leads_email_domain", "email_domain", "id"),
    Index(
        "ix_leads_mailbox_key",
        "mailbox_key",
        "id",
        sqlite_where=text("mailbox_key IS NOT NULL"),
        postgresql_where=text("mailbox_key IS NOT NULL"),
    ),
)
"""A person or account marketing has captured. ``ix_leads_cohort`` serves every
look-up by creation time and covers the reports' cohort scans (period, merged or not,
the lead dimensions they group by and the milestones they count), so a report over a
year of leads reads that index and never the wide lead rows.

Milestones: ``reached_stages`` has one bit per stage the lead ever moved into
(:data:`baton.domain.reports.STAGE_BITS`), ``<stage>_at`` the first time it moved
into each funnel stage, ``mql_contract_version`` the contract of its first MQL and
``first_rep_id`` the rep of its first handoff (lowest id); ``handoff_outcomes`` what sales did
with its chains of handoffs (:data:`baton.domain.reports.OUTCOME_BITS`) and
``open_accept_due_at`` the accept deadline of its open chain while nobody accepted it."""

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
    # type is in the index so that a re-score reads type-only engagement rules from it
    # (migration 0019).
    Index("ix_activities_lead_occurred_type", "lead_id", "occurred_at", "type"),
)

activity_revisions = Table(
    "activity_revisions",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=False),
    Column("revision", Id, nullable=False),
)
"""One row (id 1). On SQLite, triggers (migration 0020) count every update and delete of
an activity in ``revision``, so that a re-score that read all engagement in one pass can
tell, per chunk, that no activity it read has changed since (inserts it tells by id)."""

transitions = Table(
    "transitions",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("lead_id", Id, ForeignKey("leads.id"), nullable=False),
    Column("from_stage", String(20), nullable=False),
    Column("to_stage", String(20), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("reason", Text, nullable=False),
    Column("actor_user_id", Id),
    Column("occurred_at", UtcDateTime, nullable=False),
    Column("contract_version", Id),
    Column("merged_from_id", Id),
    Column("historical", Boolean, nullable=False, server_default=false()),
    Column("recorded_at", UtcDateTime),
    Column("deal_value", Float),
    Index("ix_transitions_lead_occurred", "lead_id", "occurred_at"),
    Index("ix_transitions_stage_occurred_lead", "to_stage", "occurred_at", "lead_id"),
    Index("ix_transitions_lead_stage", "lead_id", "to_stage", "occurred_at"),
)

notes = Table(
    "notes",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("lead_id", Id, ForeignKey("leads.id"), nullable=False, index=True),
    Column("author", String(200), nullable=False),
    Column("actor_user_id", Id),
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
    Column("actor_user_id", Id),
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
    Column("actor_user_id", Id),
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
    Index(
        "uq_contracts_one_active",
        "status",
        unique=True,
        sqlite_where=text("status = 'active'"),
        postgresql_where=text("status = 'active'"),
    ),
)
"""At most one version is active (``uq_contracts_one_active``): with none active yet,
two activations at the same moment had no row to lock and both committed."""

contract_approvals = Table(
    "contract_approvals",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("contract_id", Id, ForeignKey("contracts.id"), nullable=False),
    Column("role", String(20), nullable=False),
    Column("approver", String(200), nullable=False),
    Column("actor_user_id", Id),
    Column("approved_at", UtcDateTime, nullable=False),
    UniqueConstraint("contract_id", "role", name="uq_contract_approvals_role"),
)

contract_rescores = Table(
    "contract_rescores",
    metadata,
    Column("version", Id, primary_key=True, autoincrement=False),
    Column("total", Id, nullable=False),
    Column("scored", Id, nullable=False),
    Column("started_at", UtcDateTime, nullable=False),
    Column("noted_at", UtcDateTime, nullable=False),
    Column("stopped_at", UtcDateTime),
)
"""A re-score of every lead that has not finished: one row per version, written in the
transaction that activates it, its progress noted every few seconds as chunks commit
(``scored`` of ``total`` leads, ``noted_at``), deleted when the re-score ends. A row
left behind (killed, Ctrl+C, a database error) is how ``baton status``, ``baton
contract list``, the contract page and ``GET /api/v1/status`` tell that the leads are
still partly scored by an older version, by one primary-key read instead of comparing
a million score rows with the active version (:mod:`baton.services.rescore_progress`)."""

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
    Column("probability", Float),
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

teams = Table(
    "teams",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(100), nullable=False, unique=True),
    Column("manager_email", String(254)),
    Column("created_at", UtcDateTime, nullable=False),
)

reps = Table(
    "reps",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("email", String(254), nullable=False, unique=True),
    Column("name", String(200), nullable=False),
    Column("team_id", Id, ForeignKey("teams.id"), index=True),
    Column("timezone", String(64), nullable=False),
    Column("working_hours", Json, nullable=False),
    Column("status", String(20), nullable=False),
    Column("capacity", Id, nullable=False),
    Column("weight", Float, nullable=False),
    Column("tags", Json, nullable=False),
    Column("countries", Json, nullable=False),
    Column("regions", Json, nullable=False),
    Column("postal_prefixes", Json, nullable=False),
    Column("segments", Json, nullable=False),
    Column("manager_email", String(254)),
    Column("active", Boolean, nullable=False),
    Column("revision", Id, nullable=False, server_default="0"),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("notify_email", Boolean, nullable=False, server_default=true()),
)
"""``revision`` grows with every change to the rep or their absences, so routing can
cache the roster and notice any change with one cheap aggregate."""

rep_absences = Table(
    "rep_absences",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("rep_id", Id, ForeignKey("reps.id"), nullable=False, index=True),
    Column("starts_at", UtcDateTime, nullable=False),
    Column("ends_at", UtcDateTime, nullable=False),
    Column("note", String(300)),
    Column("created_by", String(200), nullable=False),
)

accounts = Table(
    "accounts",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("domain", String(253), nullable=False, unique=True),
    Column("name", String(300)),
    Column("owner_rep_id", Id, ForeignKey("reps.id"), index=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

OPEN_HANDOFF_STATUSES = ("queued", "assigned", "accepted", "qualified")
_OPEN_SQL = "status IN ('queued', 'assigned', 'accepted', 'qualified')"

handoffs = Table(
    "handoffs",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("lead_id", Id, ForeignKey("leads.id"), nullable=False),
    Column("rep_id", Id, ForeignKey("reps.id")),
    Column("status", String(20), nullable=False),
    Column("chain_id", Id, index=True),
    Column("previous_id", Id),
    Column("contract_version", Id),
    Column("mql_at", UtcDateTime, nullable=False),
    Column("created_at", UtcDateTime, nullable=False, index=True),
    Column("assigned_at", UtcDateTime),
    Column("notified_at", UtcDateTime),
    Column("accepted_at", UtcDateTime),
    Column("first_touch_at", UtcDateTime),
    Column("closed_at", UtcDateTime),
    Column("outcome", String(40)),
    Column("rejection_code", String(60)),
    Column("marketing_credit", Boolean),
    Column("accept_due_at", UtcDateTime),
    Column("touch_due_at", UtcDateTime),
    Column("next_step", Id),
    Column("next_step_at", UtcDateTime),
    Column("reassignments", Id, nullable=False, server_default="0"),
    Column("routing", Json, nullable=False),
    Column("qualification", Json),
    Column("deal_value", Float),
    Column("first_touch_business_minutes", Float),
    Column("reminders", Id, nullable=False, server_default="0"),
    Column("manager_notifications", Id, nullable=False, server_default="0"),
    Index(
        "uq_handoffs_open_lead",
        "lead_id",
        unique=True,
        sqlite_where=text(_OPEN_SQL),
        postgresql_where=text(_OPEN_SQL),
    ),
    Index("ix_handoffs_status_next_step_at", "status", "next_step_at"),
    # (rep_id, status): a rep's open handoffs (inbox, packet, team view, loads) without
    # reading the rep's whole history of closed ones (migration 0011).
    Index("ix_handoffs_rep_status", "rep_id", "status"),
    Index("ix_handoffs_assigned_at", "assigned_at"),
    # (lead_id, id): a lead's handoffs in order, so its first one is one index probe.
    Index("ix_handoffs_lead_id", "lead_id", "id"),
)
"""One passing of the baton: an MQL given to a rep (or waiting for one in the
``queued`` state). At most one open handoff per lead, enforced by a partial unique
index; a reassignment closes one and opens the next in the same ``chain_id``.
``reminders`` and ``manager_notifications`` count the SLA steps taken on it."""

handoff_chains = Table(
    "handoff_chains",
    metadata,
    Column("chain_id", Id, ForeignKey("handoffs.id"), primary_key=True),
    Column("lead_id", Id, ForeignKey("leads.id"), nullable=False, index=True),
    Column("rep_id", Id),
    Column("contract_version", Id),
    Column("mql_at", UtcDateTime, nullable=False, index=True),
    Column("notified_at", UtcDateTime),
    Column("first_touch_at", UtcDateTime),
    Column("touch_business_minutes", Float),
    Column("speed_seconds", Float),
    Column("system_seconds", Float),
    Column("rep_seconds", Float),
    Column("accepted", Boolean, nullable=False),
    Column("rejected", Boolean, nullable=False),
    Column("rejected_without_credit", Boolean, nullable=False),
    Column("won", Boolean, nullable=False),
    Column("lost", Boolean, nullable=False),
    Column("deal_value", Float),
    Column("is_open", Boolean, nullable=False),
    Column("open_accept_due_at", UtcDateTime),
)
"""One row per chain of handoffs (an MQL and its reassignments) of a lead not merged
into another (merged leads are left out of every report), the unit of the
speed-to-lead, credit and cost reports: the first handoff's rep, contract and MQL
moment, and what happened across the chain (first notification, first touch, accepted,
rejected, won, lost, still open). Durations, in seconds rounded to the millisecond:
``speed_seconds`` MQL → first touch, ``system_seconds`` MQL → first notification,
``rep_seconds`` first notification → first touch (never below 0). Kept in step by
:func:`baton.services.routing.log_event` (every change to a handoff logs an event)."""

handoff_events = Table(
    "handoff_events",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("handoff_id", Id, ForeignKey("handoffs.id"), nullable=False, index=True),
    Column("kind", String(40), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("actor_user_id", Id),
    Column("occurred_at", UtcDateTime, nullable=False),
    Column("detail", Json, nullable=False),
)

rotations = Table(
    "rotations",
    metadata,
    Column("pool", String(300), primary_key=True),
    Column("virtual_pass", Float, nullable=False),
    Column("passes", Json, nullable=False),
)
"""Stride state per routing pool (see :mod:`baton.domain.routing`). A decision locks
its pool's row FOR UPDATE (and the rows of the reps it may choose), so rotations and
capacity counts never race. The row with pool ``*`` was the global routing lock before
0.12 and is no longer read."""

outbox = Table(
    "outbox",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("channel", String(20), nullable=False),
    Column("topic", String(60), nullable=False),
    Column("handoff_id", Id, ForeignKey("handoffs.id"), index=True),
    Column("endpoint_id", Id),
    Column("recipient", String(2000), nullable=False),
    Column("payload", Json, nullable=False),
    Column("status", String(20), nullable=False),
    Column("attempts", Id, nullable=False, server_default="0"),
    Column("next_attempt_at", UtcDateTime, nullable=False),
    Column("claimed_until", UtcDateTime),
    Column("claim_token", String(32)),
    Column("attempts_base", Id, nullable=False, server_default="0"),
    Column("last_error", Text),
    Column("created_at", UtcDateTime, nullable=False),
    Column("sent_at", UtcDateTime),
    Column("chat_channel_id", Id),
    # The unguessable part of an email's Message-ID (<outbox-N.KEY@baton>): a reply or a
    # bounce naming a Baton email is believed only when its key matches (filled on insert).
    Column("message_key", String(24), default=lambda: secrets.token_urlsafe(12)),
    Index("ix_outbox_channel_status_next_attempt_at", "channel", "status", "next_attempt_at"),
)
"""Messages to send after commit (email, webhooks): written in the transaction that
decided them, delivered by the worker, so a rolled-back handoff never notifies anyone
and a committed one is never forgotten. A worker leases the rows it claims
(``claimed_until``) under its own ``claim_token``, and sends a row only while the lease
is still its own (fencing). ``attempts_base`` is ``attempts`` when an admin last
retried the row: the attempts since then are the ones that count towards giving up."""

webhook_endpoints = Table(
    "webhook_endpoints",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("url", String(2000), nullable=False),
    Column("secret", String(200), nullable=False),
    Column("events", Json, nullable=False),
    Column("active", Boolean, nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
)

chat_channels = Table(
    "chat_channels",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("rep_id", Id, ForeignKey("reps.id"), index=True),
    Column("team_id", Id, ForeignKey("teams.id"), index=True),
    Column("kind", String(10), nullable=False),
    Column("url", String(2000), nullable=False),
    Column("url_hint", String(100), nullable=False),
    Column("label", String(100), nullable=False),
    Column("active", Boolean, nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("removed_at", UtcDateTime),
)
"""Slack and Microsoft Teams incoming webhooks of a rep or of a team (exactly one of
``rep_id`` and ``team_id``). ``url`` is a secret
(whoever has it posts into the channel): shown once when added, never read back by any
use case (``url_hint`` is what people see), and blanked when the channel is removed;
the row stays for the outbox's delivery log."""

spend = Table(
    "spend",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("source", String(200), nullable=False),
    Column("campaign", String(200)),
    Column("starts_on", Date, nullable=False),
    Column("ends_on", Date, nullable=False),
    Column("amount", Float, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("imported_at", UtcDateTime, nullable=False),
    Column("imported_by", String(200), nullable=False),
    Index("ix_spend_source_campaign", "source", "campaign"),
)
"""Marketing spend per source (and optionally campaign) over whole days, imported from
CSV; reports prorate it over their period. One row per (source, campaign, starts_on,
ends_on): a re-import replaces the amount."""

deliveries = Table(
    "deliveries",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("outbox_id", Id, ForeignKey("outbox.id"), nullable=False, index=True),
    Column("attempt", Id, nullable=False),
    Column("attempted_at", UtcDateTime, nullable=False),
    Column("ok", Boolean, nullable=False),
    Column("status_code", Id),
    Column("error", Text),
    Column("duration_ms", Float, nullable=False),
)


users = Table(
    "users",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("email", String(254), nullable=False, unique=True),
    Column("display_name", String(200), nullable=False),
    Column("role", String(20), nullable=False),
    Column("active", Boolean, nullable=False),
    Column("rep_id", Id, ForeignKey("reps.id"), unique=True),
    Column("timezone", String(64), nullable=False),
    Column("password_hash", String(200)),
    Column("one_time_password", Boolean, nullable=False),
    Column("one_time_password_expires_at", UtcDateTime),
    Column("demo", Boolean, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("created_by", String(200), nullable=False),
)
"""People who sign in. ``password_hash`` is argon2id; ``one_time_password`` stays true
until the user sets a password of their own (production refuses to start while no
admin has one), and a one-time password stops working at
``one_time_password_expires_at``; ``demo`` marks users the demo created."""

user_teams = Table(
    "user_teams",
    metadata,
    Column("user_id", Id, ForeignKey("users.id"), primary_key=True),
    Column("team_id", Id, ForeignKey("teams.id"), primary_key=True),
)
"""The teams a sales manager manages."""

sessions = Table(
    "sessions",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("user_id", Id, ForeignKey("users.id"), nullable=False, index=True),
    Column("csrf_token", String(64), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("ended_at", UtcDateTime),
    Column("address", String(64)),
)
"""Server-side sessions: the cookie carries a signed random key whose SHA-256 is
``key_hash``, so logout or disabling the user ends the session at the next request."""

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("prefix", String(16), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("user_id", Id, ForeignKey("users.id"), nullable=False, index=True),
    Column("name", String(100), nullable=False),
    Column("scopes", Json, nullable=False),
    Column("expires_at", UtcDateTime),
    Column("last_used_at", UtcDateTime),
    Column("revoked_at", UtcDateTime),
    Column("created_at", UtcDateTime, nullable=False),
    Column("created_by", String(200), nullable=False),
)
"""API tokens for programs, stored only as a SHA-256 of the token (a 256-bit random
secret needs no slow hash); ``prefix`` lets people tell their tokens apart."""

intake_keys = Table(
    "intake_keys",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("prefix", String(16), nullable=False),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("name", String(100), nullable=False, unique=True),
    Column("source", String(200), nullable=False),
    Column("origins", Json, nullable=False),
    Column("rate_per_minute", Id, nullable=False),
    Column("revoked_at", UtcDateTime),
    Column("created_at", UtcDateTime, nullable=False),
    Column("created_by", String(200), nullable=False),
)
"""Public keys for websites and form tools: they may only create leads and activities,
from the listed browser origins, at a limited rate."""

login_failures = Table(
    "login_failures",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("account", String(254), nullable=False),
    Column("address", String(64), nullable=False),
    Column("failed_at", UtcDateTime, nullable=False),
    Index("ix_login_failures_account", "account", "failed_at"),
    Index("ix_login_failures_address", "address", "failed_at"),
)
"""Failed sign-ins (and attempts in flight), kept in the database so every process
throttles alike."""

saved_filters = Table(
    "saved_filters",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(100), nullable=False),
    Column("owner_user_id", Id, ForeignKey("users.id"), nullable=False),
    Column("query", Json, nullable=False),
    Column("shared", Boolean, nullable=False, index=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    UniqueConstraint("owner_user_id", "name", name="uq_saved_filters_owner_name"),
)
"""Named lead queries (:class:`baton.domain.search.LeadQuery` as JSON), private to their
owner or shared with everyone. Lead search itself lives outside this metadata, in
migration 0009: an FTS5 table with triggers on SQLite, a GIN expression index on
PostgreSQL (:mod:`baton.store.search`)."""

intake_endpoints = Table(
    "intake_endpoints",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(100), nullable=False, unique=True),
    Column("kind", String(30), nullable=False),
    Column("source", String(200), nullable=False),
    Column("campaign", String(200)),
    Column("event_type", String(40)),
    Column("mapping", Json, nullable=False),
    Column("secret", String(500)),
    Column("fetch_token", String(2000)),
    Column("fetch_base_url", String(2000)),
    Column("return_urls", Json, nullable=False),
    Column("honeypot_field", String(100)),
    Column("rate_per_minute", Id, nullable=False),
    Column("max_body_bytes", Id, nullable=False),
    Column("active", Boolean, nullable=False),
    Column("throttled_count", Id, nullable=False, server_default="0"),
    Column("last_throttled_at", UtcDateTime),
    Column("created_at", UtcDateTime, nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)
"""Inbound endpoints under ``/hooks/{name}``: which adapter reads the body (``kind``),
the lead ``source`` and default ``campaign`` a submission sets, the activity type it
records (``event_type``: a "contact sales" form is a hand-raise), the field
``mapping``, and the checks at the door. ``secret`` is what the platform signs with or
sends (kept, since an HMAC needs it; never shown again after creation); ``fetch_token``
reads the full record where a webhook carries only ids."""

intake_requests = Table(
    "intake_requests",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("endpoint_id", Id, ForeignKey("intake_endpoints.id"), nullable=False),
    Column("received_at", UtcDateTime, nullable=False),
    Column("content_type", String(200), nullable=False),
    Column("headers", Json, nullable=False),
    Column("body", LargeBinary, nullable=False),
    Column("remote_address", String(64)),
    Column("method", String(10)),
    Column("url", Text),
    Column("query", Json),
    Column("status", String(20), nullable=False),
    Column("error", Text),
    Column("processed_at", UtcDateTime),
    Index("ix_intake_requests_endpoint_id", "endpoint_id", "received_at"),
    Index("ix_intake_requests_status", "status"),
)
"""The intake log: every request to a hook, stored raw and committed before it is read,
so a mapping bug never loses a lead. ``status``: received, processed, partial, failed,
refused. Throttled requests are counted, not stored."""

intake_items = Table(
    "intake_items",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("request_id", Id, ForeignKey("intake_requests.id"), nullable=False, index=True),
    Column("endpoint_id", Id, ForeignKey("intake_endpoints.id"), nullable=False),
    Column("position", Id, nullable=False),
    Column("upstream_id", String(300)),
    Column("status", String(20), nullable=False),
    Column("item", Json),
    Column("error", Json),
    Column("lead_id", Id, ForeignKey("leads.id")),
    Column("activity_id", Id),
    Column("duplicate_of", Id),
    Column("attempts", Id, nullable=False, server_default="0"),
    Column("next_attempt_at", UtcDateTime),
    Column("claimed_until", UtcDateTime),
    Column("claim_token", String(32)),
    Column("processed_at", UtcDateTime),
    # When the current series of fetch attempts first fell due (failed reads move
    # next_attempt_at on, not this): how late a retrying item is (migration 0025).
    Column("due_since", UtcDateTime),
    UniqueConstraint("endpoint_id", "upstream_id", name="uq_intake_items_endpoint_upstream"),
    Index("ix_intake_items_status_next_attempt_at", "status", "next_attempt_at"),
)
"""One submission inside a request (a HubSpot batch holds many): its upstream id (the
platform's delivery or lead id, unique per endpoint, so a replay is recognized), what
became of it (pending, processed, failed, awaiting_fetch, duplicate, refused) with the
field errors, and the lead and activity it made. Items awaiting a fetch are claimed by
the worker like outbox rows (``claimed_until``/``claim_token``)."""

import_mappings = Table(
    "import_mappings",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(100), nullable=False, unique=True),
    Column("columns", Json, nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)
"""Saved column mappings for history imports (``baton import mapping save NAME``): CSV
header -> lead field, ``attributes.NAME``, a history field (``mql_at``, ``won_at``,
``amount``...) or ``-``. The built-ins ``hubspot`` and ``salesforce`` live in code
(:mod:`baton.services.history`)."""

nurture_enrollments = Table(
    "nurture_enrollments",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("lead_id", Id, ForeignKey("leads.id"), nullable=False, index=True),
    Column("sequence", String(100), nullable=False),
    Column("contract_version", Id, nullable=False),
    Column("status", String(20), nullable=False),
    Column("reason", String(300), nullable=False),
    Column("enrolled_at", UtcDateTime, nullable=False),
    Column("enrolled_by", String(200), nullable=False),
    Column("next_step", Id, nullable=False, server_default="0"),
    Column("next_due_at", UtcDateTime),
    Column("touches", Id, nullable=False, server_default="0"),
    Column("last_touch_at", UtcDateTime),
    Column("ended_at", UtcDateTime),
    Column("exit_reason", String(40)),
    Column("claimed_until", UtcDateTime),
    Column("claim_token", String(32)),
    Index("ix_nurture_enrollments_status_next_due_at", "status", "next_due_at"),
    Index("ix_nurture_enrollments_claimed_until", "claimed_until"),
    Index(
        "uq_nurture_enrollments_active_lead",
        "lead_id",
        unique=True,
        sqlite_where=text("status = 'active'"),
        postgresql_where=text("status = 'active'"),
    ),
)
"""A lead's place in a nurture sequence of the contract version that enrolled it: the
next step and when it is due, touches so far, and why it ended (``exit_reason``: reply,
hand_raise, re_mql, unsubscribe, hard_bounce, sales_took_back, max_touches, completed).
At most one active enrollment per lead."""

nurture_sends = Table(
    "nurture_sends",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("enrollment_id", Id, ForeignKey("nurture_enrollments.id"), nullable=False),
    Column("step", Id, nullable=False),
    Column("lead_id", Id, ForeignKey("leads.id"), nullable=False, index=True),
    Column("email", String(254), nullable=False),
    Column("template", String(100), nullable=False),
    Column("outbox_id", Id),
    Column("message_id", String(200)),
    Column("status", String(20), nullable=False),
    Column("planned_at", UtcDateTime, nullable=False),
    Column("sent_at", UtcDateTime),
    # The original URLs of the rendered step: a click link redirects only to one of these.
    Column("links", Json),
    UniqueConstraint("enrollment_id", "step", name="uq_nurture_sends_enrollment_step"),
    Index("ix_nurture_sends_planned_at", "planned_at"),
    Index("ix_nurture_sends_outbox_id", "outbox_id"),
)
"""The send log: one row per enrollment and step, written in the transaction that puts
the message in the outbox, so a step is planned once and never twice (the unique
constraint), and its outbox row carries the Message-ID that ties the SMTP accept back."""

suppressions = Table(
    "suppressions",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("email_key", String(254), nullable=False, unique=True),
    Column("reason", String(30), nullable=False),
    Column("source", String(300)),
    Column("created_at", UtcDateTime, nullable=False),
    Column("created_by", String(200), nullable=False),
)
"""Addresses that get no marketing email: unsubscribed, hard-bounced, complained or
added by hand. Removed only when the person opts in again."""

lead_models = Table(
    "lead_models",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("version", Id, nullable=False, unique=True),
    Column("name", String(200), nullable=False),
    Column("kind", String(40), nullable=False),
    Column("target", String(120), nullable=False),
    Column("status", String(20), nullable=False, index=True),
    Column("features", Json, nullable=False),
    Column("artifact", LargeBinary, nullable=False),
    Column("artifact_sha256", String(64), nullable=False),
    Column("evaluation", Json, nullable=False),
    Column("trained_on", Json, nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("activated_at", UtcDateTime),
    Column("activated_by", String(200)),
    Column("superseded_at", UtcDateTime),
)
"""Learned scoring models, versioned like contracts (draft, approved by both teams,
active, superseded). ``artifact`` is the model's bytes (:mod:`baton.learn.model`),
loaded only when ``artifact_sha256`` matches; ``features`` its
:class:`~baton.learn.features.FeatureSpec`; ``target`` what it predicts (``won`` or
``accepted``); ``evaluation`` its held-out figures; ``trained_on`` the history it saw
(rows, outcomes, split, period)."""

lead_model_approvals = Table(
    "lead_model_approvals",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("model_id", Id, ForeignKey("lead_models.id"), nullable=False),
    Column("role", String(20), nullable=False),
    Column("approver", String(200), nullable=False),
    Column("actor_user_id", Id),
    Column("approved_at", UtcDateTime, nullable=False),
    UniqueConstraint("model_id", "role", name="uq_lead_model_approvals_role"),
)
"""One signature per side (marketing, sales) of a model version, as for contracts."""

duplicate_checks = Table(
    "duplicate_checks",
    metadata,
    Column("lead_id", Id, ForeignKey("leads.id"), primary_key=True, autoincrement=False),
    Column("queued_at", UtcDateTime, nullable=False, index=True),
    Column("reserved_until", UtcDateTime, nullable=True),
    Column("compare_newer", Boolean, nullable=False, server_default=false()),
)
"""New leads waiting for the possible-duplicate comparison with older leads. Capture and
import add a row in their own transaction; the worker takes rows oldest first, flags the
pairs and deletes the rows in one transaction, so a lead is checked once even if a
worker dies midway. ``reserved_until`` (PostgreSQL): a worker is comparing the lead,
so others take later leads until then (a hint for sharing the work, never a lock).
``compare_newer``: the lead's compared fields changed after it arrived (a capture, an
import or a merge filled them in), so it is compared with the newer leads holding its
values as well as the older ones."""

worker_heartbeats = Table(
    "worker_heartbeats",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("host", String(255), nullable=False),
    Column("pid", Id, nullable=False),
    Column("started_at", UtcDateTime, nullable=False),
    Column("last_tick_at", UtcDateTime, nullable=False),
    Column("stopped_at", UtcDateTime),
    Column("lanes", Json, nullable=False),
    Column("replaced_by", Id),
    Column("one_pass", Boolean, nullable=False, server_default=false()),
    Index("ix_worker_heartbeats_last_tick_at", "last_tick_at"),
)
"""One row per running (or lately stopped) worker process: where it runs, when it
started, when it last beat (``last_tick_at``, every few seconds while it runs) and, in
``lanes``, when each lane last ended a pass and how many passes in a row failed. A
worker that stops cleanly sets ``stopped_at``; one killed simply stops beating. Rows of
workers silent for a week are removed when a worker starts (migration 0024). A worker
starting on a host marks the unstopped rows of that host's processes that are gone
(killed) as ``replaced_by`` its own row (migration 0025). A one-off pass (``baton
worker --once``) writes a row already stopped, marked ``one_pass``, replacing the
previous one (migration 0031)."""
