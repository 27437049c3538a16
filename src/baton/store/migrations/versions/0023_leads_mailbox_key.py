"""Possible duplicates by mailbox: ``leads.mailbox_key`` holds the one mailbox a provider
delivers an address to, for the providers that deliver several spellings to one
(``j.smith+news@gmail.com`` and ``jsmith@gmail.com`` -> ``jsmith@gmail.com``), so the
worker finds such pairs by one index range, like a shared phone number.

The column is filled for the leads that exist (only addresses at those providers; the
partial index holds no others), and every lead whose mailbox an older lead already has
is queued for the comparison, so the pairs flagged before this revision are completed
by the worker's next pass rather than only for leads captured from now on.

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-06 01:45:00
"""

from datetime import UTC, datetime

from alembic import op
import sqlalchemy as sa

from baton.store.types import Id, UtcDateTime

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None

# Frozen copies of baton.domain.contact as of this revision.
DOTLESS_MAIL_DOMAINS = frozenset({"gmail.com", "googlemail.com"})
PLUS_TAG_DOMAINS = frozenset(
    {
        *DOTLESS_MAIL_DOMAINS,
        "outlook.com",
        "hotmail.com",
        "live.com",
        "icloud.com",
        "me.com",
        "mac.com",
        "fastmail.com",
        "proton.me",
        "protonmail.com",
    }
)
_WHERE = "mailbox_key IS NOT NULL"


def _mailbox_key(key: str | None) -> str | None:
    if not key:
        return None
    local, _, domain = key.rpartition("@")
    if domain not in PLUS_TAG_DOMAINS:
        return None
    local = local.partition("+")[0]
    if domain in DOTLESS_MAIL_DOMAINS:
        local, domain = local.replace(".", ""), "gmail.com"
    return f"{local}@{domain}" if local else None


def _backfill() -> None:
    connection = op.get_bind()
    domains = sorted(PLUS_TAG_DOMAINS)
    rows = connection.execute(
        sa.text("SELECT id, email_key FROM leads WHERE email_domain IN :domains").bindparams(
            sa.bindparam("domains", expanding=True)
        ),
        {"domains": domains},
    ).all()
    changes = [
        {"id": lead_id, "key": key}
        for lead_id, email in rows
        if (key := _mailbox_key(email)) is not None
    ]
    if changes:
        connection.execute(sa.text("UPDATE leads SET mailbox_key = :key WHERE id = :id"), changes)
    # The newer leads of each shared mailbox, not merged away and not queued already.
    newer = connection.execute(
        sa.text(
            "SELECT l.id FROM leads AS l WHERE l.mailbox_key IS NOT NULL"
            " AND l.merged_into_id IS NULL"
            " AND EXISTS (SELECT 1 FROM leads AS o WHERE o.mailbox_key = l.mailbox_key"
            " AND o.id < l.id AND o.merged_into_id IS NULL)"
            " AND NOT EXISTS (SELECT 1 FROM duplicate_checks AS d WHERE d.lead_id = l.id)"
        )
    ).scalars()
    now = datetime.now(UTC)
    queued = [{"lead_id": lead_id, "queued_at": now} for lead_id in newer]
    if queued:
        checks = sa.table(
            "duplicate_checks", sa.column("lead_id", Id), sa.column("queued_at", UtcDateTime)
        )
        connection.execute(sa.insert(checks), queued)


def upgrade() -> None:
    op.add_column("leads", sa.Column("mailbox_key", sa.String(length=254), nullable=True))
    op.create_index(
        "ix_leads_mailbox_key",
        "leads",
        ["mailbox_key"],
        sqlite_where=sa.text(_WHERE),
        postgresql_where=sa.text(_WHERE),
    )
    _backfill()


def downgrade() -> None:
    op.drop_index("ix_leads_mailbox_key", table_name="leads")
    op.drop_column("leads", "mailbox_key")
