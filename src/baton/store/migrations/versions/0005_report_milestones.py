"""Report milestones: what each lead reached and when and what sales did with it, one
row per chain of handoffs of a live lead, SLA step counts on handoffs, and the indexes
the year-scale reports read; backfilled from the history.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25 20:20:00
"""

from alembic import op
import sqlalchemy as sa

import baton.store.types

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Time = baton.store.types.UtcDateTime(timezone=True)

# Frozen copies of the definitions in baton.services.milestones as of this revision
# (a migration must not import code that later revisions change).
BITS = {
    "mql": 1,
    "sal": 2,
    "sql": 4,
    "opportunity": 8,
    "customer": 16,
    "nurture": 32,
    "disqualified": 64,
    "lost": 128,
}
MILESTONES = ("mql", "sal", "sql", "opportunity", "customer")
OPEN = "('queued', 'assigned', 'accepted', 'qualified')"


def _backfill() -> None:
    mask = " + ".join(
        f"max(CASE WHEN t.to_stage = '{stage}' THEN {bit} ELSE 0 END)"
        for stage, bit in BITS.items()
    )
    own = "FROM transitions t WHERE t.lead_id = leads.id"
    firsts = ",\n".join(
        f"{stage}_at = (SELECT min(t.occurred_at) {own} AND t.to_stage = '{stage}')"
        for stage in MILESTONES
    )
    op.execute(
        f"""
        UPDATE leads SET
        reached_stages = coalesce((SELECT {mask} {own}), 0),
        {firsts},
        mql_contract_version = (SELECT t.contract_version {own} AND t.to_stage = 'mql'
                                ORDER BY t.occurred_at, t.id LIMIT 1),
        first_rep_id = (SELECT h.rep_id FROM handoffs h WHERE h.id =
                        (SELECT min(f.id) FROM handoffs f WHERE f.lead_id = leads.id))
        WHERE id IN (SELECT lead_id FROM transitions UNION SELECT lead_id FROM handoffs)
        """
    )
    op.execute(
        f"""
        INSERT INTO handoff_chains (chain_id, lead_id, rep_id, contract_version, mql_at,
            notified_at, first_touch_at, touch_business_minutes, accepted, rejected,
            rejected_without_credit, won, lost, deal_value, is_open, open_accept_due_at)
        SELECT ch.id, max(ch.lead_id), max(ch.rep_id), max(ch.contract_version),
            max(ch.mql_at), min(cm.notified_at), min(cm.first_touch_at),
            max(cm.first_touch_business_minutes),
            max(CASE WHEN cm.accepted_at IS NOT NULL THEN 1 ELSE 0 END) = 1,
            max(CASE WHEN cm.status = 'rejected' THEN 1 ELSE 0 END) = 1,
            max(CASE WHEN cm.status = 'rejected' AND cm.marketing_credit = false
                THEN 1 ELSE 0 END) = 1,
            max(CASE WHEN cm.status = 'won' THEN 1 ELSE 0 END) = 1,
            max(CASE WHEN cm.status = 'lost' THEN 1 ELSE 0 END) = 1,
            max(CASE WHEN cm.status = 'won' THEN cm.deal_value END),
            max(CASE WHEN cm.status IN {OPEN} THEN 1 ELSE 0 END) = 1,
            max(CASE WHEN cm.status IN {OPEN} THEN cm.accept_due_at END)
        FROM handoffs ch JOIN handoffs cm ON cm.chain_id = ch.id
        JOIN leads cl ON cl.id = ch.lead_id
        WHERE ch.chain_id = ch.id AND cl.merged_into_id IS NULL
        GROUP BY ch.id
        """
    )
    if op.get_bind().dialect.name == "postgresql":
        seconds = "round(CAST(EXTRACT(EPOCH FROM {1} - {0}) AS NUMERIC), 3)"
    else:
        seconds = "round((julianday({1}) - julianday({0})) * 86400.0, 3)"
    rep = seconds.format("notified_at", "first_touch_at")
    op.execute(
        f"""
        UPDATE handoff_chains SET
            speed_seconds = {seconds.format("mql_at", "first_touch_at")},
            system_seconds = {seconds.format("mql_at", "notified_at")},
            rep_seconds = CASE WHEN {rep} < 0 THEN 0 ELSE {rep} END
        """
    )
    chains = "FROM handoff_chains c WHERE c.lead_id = leads.id"
    unaccepted = "NOT c.accepted AND NOT c.rejected"
    op.execute(
        f"""
        UPDATE leads SET
        handoff_outcomes = coalesce((SELECT
            max(CASE WHEN c.rejected THEN 1 ELSE 0 END)
            + max(CASE WHEN c.rejected_without_credit THEN 2 ELSE 0 END)
            + max(CASE WHEN NOT c.is_open AND {unaccepted} THEN 4 ELSE 0 END)
            + max(CASE WHEN c.is_open THEN 8 ELSE 0 END) {chains}), 0),
        open_accept_due_at = (SELECT
            max(CASE WHEN c.is_open AND {unaccepted} THEN c.open_accept_due_at END) {chains})
        WHERE id IN (SELECT lead_id FROM handoff_chains)
        """
    )
    for kind, column in (("reminded", "reminders"), ("manager_notified", "manager_notifications")):
        op.execute(
            f"""
            UPDATE handoffs SET {column} = (
                SELECT count(*) FROM handoff_events e
                WHERE e.handoff_id = handoffs.id AND e.kind = '{kind}')
            WHERE id IN (SELECT handoff_id FROM handoff_events WHERE kind = '{kind}')
            """
        )


def upgrade() -> None:
    op.create_table(
        "handoff_chains",
        sa.Column("chain_id", Id, nullable=False),
        sa.Column("lead_id", Id, nullable=False),
        sa.Column("rep_id", Id, nullable=True),
        sa.Column("contract_version", Id, nullable=True),
        sa.Column("mql_at", Time, nullable=False),
        sa.Column("notified_at", Time, nullable=True),
        sa.Column("first_touch_at", Time, nullable=True),
        sa.Column("touch_business_minutes", sa.Float(), nullable=True),
        sa.Column("speed_seconds", sa.Float(), nullable=True),
        sa.Column("system_seconds", sa.Float(), nullable=True),
        sa.Column("rep_seconds", sa.Float(), nullable=True),
        sa.Column("accepted", sa.Boolean(), nullable=False),
        sa.Column("rejected", sa.Boolean(), nullable=False),
        sa.Column("rejected_without_credit", sa.Boolean(), nullable=False),
        sa.Column("won", sa.Boolean(), nullable=False),
        sa.Column("lost", sa.Boolean(), nullable=False),
        sa.Column("deal_value", sa.Float(), nullable=True),
        sa.Column("is_open", sa.Boolean(), nullable=False),
        sa.Column("open_accept_due_at", Time, nullable=True),
        sa.ForeignKeyConstraint(
            ["chain_id"], ["handoffs.id"], name=op.f("fk_handoff_chains_chain_id_handoffs")
        ),
        sa.ForeignKeyConstraint(
            ["lead_id"], ["leads.id"], name=op.f("fk_handoff_chains_lead_id_leads")
        ),
        sa.PrimaryKeyConstraint("chain_id", name=op.f("pk_handoff_chains")),
    )
    with op.batch_alter_table("handoff_chains", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_handoff_chains_lead_id"), ["lead_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_handoff_chains_mql_at"), ["mql_at"], unique=False)

    with op.batch_alter_table("handoffs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reminders", Id, server_default="0", nullable=False))
        batch_op.add_column(
            sa.Column("manager_notifications", Id, server_default="0", nullable=False)
        )
        batch_op.create_index("ix_handoffs_assigned_at", ["assigned_at"], unique=False)
        # A lead's handoffs in id order: its first one is one probe, not a walk of the
        # primary key filtering on the lead.
        batch_op.drop_index("ix_handoffs_lead_id")
        batch_op.create_index("ix_handoffs_lead_id", ["lead_id", "id"], unique=False)

    with op.batch_alter_table("leads", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reached_stages", Id, server_default="0", nullable=False))
        for stage in MILESTONES:
            batch_op.add_column(sa.Column(f"{stage}_at", Time, nullable=True))
        batch_op.add_column(sa.Column("mql_contract_version", Id, nullable=True))
        batch_op.add_column(sa.Column("first_rep_id", Id, nullable=True))
        batch_op.add_column(sa.Column("handoff_outcomes", Id, server_default="0", nullable=False))
        batch_op.add_column(sa.Column("open_accept_due_at", Time, nullable=True))

    with op.batch_alter_table("transitions", schema=None) as batch_op:
        batch_op.drop_index("ix_transitions_to_stage_occurred")
        batch_op.create_index(
            "ix_transitions_stage_occurred_lead",
            ["to_stage", "occurred_at", "lead_id"],
            unique=False,
        )

    _backfill()

    with op.batch_alter_table("leads", schema=None) as batch_op:
        batch_op.drop_index("ix_leads_created_report")
        batch_op.create_index(
            "ix_leads_cohort",
            [
                "created_at",
                "merged_into_id",
                "source",
                "campaign",
                "country",
                "reached_stages",
                "first_rep_id",
                "mql_contract_version",
                *(f"{stage}_at" for stage in MILESTONES),
                "handoff_outcomes",
                "open_accept_due_at",
            ],
            unique=False,
        )


def downgrade() -> None:
    # Plain ALTER TABLE ... DROP COLUMN (SQLite 3.35+ and PostgreSQL): a batch
    # rebuild of leads would trip the foreign keys that point at it.
    with op.batch_alter_table("leads", schema=None) as batch_op:
        batch_op.drop_index("ix_leads_cohort")
        batch_op.create_index(
            "ix_leads_created_report",
            ["created_at", "merged_into_id", "source", "campaign", "country"],
            unique=False,
        )
    for column in (
        "open_accept_due_at",
        "handoff_outcomes",
        "first_rep_id",
        "mql_contract_version",
        *(f"{stage}_at" for stage in reversed(MILESTONES)),
        "reached_stages",
    ):
        op.execute(f"ALTER TABLE leads DROP COLUMN {column}")

    with op.batch_alter_table("transitions", schema=None) as batch_op:
        batch_op.drop_index("ix_transitions_stage_occurred_lead")
        batch_op.create_index(
            "ix_transitions_to_stage_occurred", ["to_stage", "occurred_at"], unique=False
        )

    with op.batch_alter_table("handoffs", schema=None) as batch_op:
        batch_op.drop_index("ix_handoffs_assigned_at")
        batch_op.drop_index("ix_handoffs_lead_id")
        batch_op.create_index("ix_handoffs_lead_id", ["lead_id"], unique=False)
    for column in ("manager_notifications", "reminders"):
        op.execute(f"ALTER TABLE handoffs DROP COLUMN {column}")

    with op.batch_alter_table("handoff_chains", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_handoff_chains_mql_at"))
        batch_op.drop_index(batch_op.f("ix_handoff_chains_lead_id"))

    op.drop_table("handoff_chains")
