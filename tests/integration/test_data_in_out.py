"""Data in, data out (issue 11, items 10 to 12) on SQLite and PostgreSQL: external ids
as an identity, shared email domains never made accounts, sources case-folded in every
report and in the data already stored."""

from __future__ import annotations

import io
from datetime import timedelta

from alembic.script import ScriptDirectory
from sqlalchemy import insert, select
from tests.conftest import START
from tests.integration.test_handoffs import BUDGET, OPS, hand_raise, only_handoff, sales_floor

from baton.domain.access import operator
from baton.domain.clock import ManualClock
from baton.domain.leads import LeadCreate
from baton.domain.reports import ReportFilters, ReportPeriod
from baton.services.context import Context
from baton.services.handoffs import accept_handoff, qualify_handoff, won_handoff
from baton.services.imports import import_leads
from baton.services.leads import capture_lead, list_leads
from baton.services.reports import cost, funnel, import_spend, marketing_credit
from baton.services.reps import list_accounts
from baton.store.engine import make_engine
from baton.store.migrate import alembic_config, upgrade
from baton.store.tables import leads, spend

MARKETING = operator("marketing")


def capture(ctx: Context, **fields: object) -> int:
    data = LeadCreate.model_validate(fields, context={"default_region": "US"})
    return capture_lead(ctx, data, actor=MARKETING).lead.id


# --- external ids (item 10) ---------------------------------------------------------------


def test_an_external_id_is_an_identity_like_an_email(ctx: Context) -> None:
    first = capture(ctx, external_id="P-1", external_system="CRM", first_name="Ann")
    # Matched before the email, and a lead without email takes the one given later.
    again = capture(ctx, external_id="P-1", external_system="crm", email="ann@acme.example.com")
    assert again == first
    # The same id in another system is another person.
    other = capture(ctx, external_id="P-1", external_system="erp", first_name="Bo")
    assert other != first
    # A lead first known by email takes its external id from a later capture, once.
    known = capture(ctx, email="cy@gamma.example.com")
    assert capture(ctx, email="cy@gamma.example.com", external_id="P-2") == known
    assert capture(ctx, external_id="P-2") == known

    report = import_leads(
        ctx,
        io.StringIO("Prospect ID,Title\nP-1,CTO\nP-3,CEO\n"),
        actor=MARKETING,
        column_map={"Prospect ID": "external_id"},
        external_system="crm",
    )

    assert (report.created, report.updated, report.rejected) == (1, 1, 0)
    page = list_leads(ctx, actor=OPS, limit=10)
    by_id = {(lead.external_system, lead.external_id): lead for lead in page.items}
    assert page.total == 4
    assert by_id[("crm", "P-1")].id == first
    assert (by_id[("crm", "P-1")].email, by_id[("crm", "P-1")].title) == (
        "ann@acme.example.com",
        "CTO",
    )
    assert by_id[("default", "P-2")].id == known
    assert by_id[("crm", "P-3")].title == "CEO"


def test_an_email_another_lead_has_is_not_taken_by_an_external_id(ctx: Context) -> None:
    owner = capture(ctx, email="dana@northwind.example.com")
    other = capture(ctx, external_id="X-9")

    assert capture(ctx, external_id="X-9", email="dana@northwind.example.com") == other
    import_leads(
        ctx, io.StringIO("external_id,email\nX-9,dana@northwind.example.com\n"), actor=MARKETING
    )

    emails = {lead.id: lead.email for lead in list_leads(ctx, actor=OPS).items}
    assert emails == {owner: "dana@northwind.example.com", other: None}


# --- shared domains never become accounts (item 11) ----------------------------------------


def win(ctx: Context, lead_id: int) -> str:
    handoff = only_handoff(ctx, lead_id)
    owner = str(handoff.rep_email)
    accept_handoff(ctx, handoff.id, actor=operator(owner))
    qualify_handoff(ctx, handoff.id, fields=BUDGET, actor=operator(owner))
    won_handoff(ctx, handoff.id, amount=1000, actor=operator(owner))
    return owner


def test_a_shared_email_domain_never_becomes_an_account(ctx: Context, clock: ManualClock) -> None:
    sales_floor(ctx, "ana@lumen.example", "ben@lumen.example")
    # A free-mail address, and a made-up provider no list knows whose leads work at
    # three different companies.
    win(ctx, hand_raise(ctx, "dana.reyes@gmail.com"))
    for i, company in enumerate(("Initech", "Globex", "Umbrella")):
        capture(ctx, email=f"p{i}@mailhub.example", company=company, first_name="P")
    win(ctx, hand_raise(ctx, "zed@mailhub.example", company="Initech"))
    # A company's own domain still becomes its winner's account.
    winner = win(ctx, hand_raise(ctx, "dana@northwind.com"))

    assert [(a.domain, a.owner_email) for a in list_accounts(ctx, actor=OPS)] == [
        ("northwind.com", winner)
    ]
    clock.advance(days=1)
    for address in ("kim@gmail.com", "lou@mailhub.example"):
        routed = only_handoff(ctx, hand_raise(ctx, address, first_name="Kim"))
        assert routed.routing["account_owner"] is False


# --- sources case-folded (item 12) ---------------------------------------------------------


def test_google_and_google_are_one_source_in_every_report(ctx: Context) -> None:
    for i, source in enumerate(
        ("Google", "google", " GOOGLE ", "Direct Traffic", "direct  traffic")
    ):
        capture(ctx, email=f"p{i}@acme{i}.example.com", source=source, utm_source=source)
    import_leads(
        ctx,
        io.StringIO("email,lead source\nq@acme.example.com,GooGle\n"),
        actor=MARKETING,
    )
    today = ctx.clock.now().date()
    import_spend(
        ctx, io.StringIO(f"source,start,end,amount\nGoogle,{today},{today},400\n"), actor=MARKETING
    )
    period = ReportPeriod.from_dates(today, today + timedelta(days=1))

    by_source = {
        row.group: row.counts["lead"]
        for row in funnel(ctx, period, group_by="source", actor=OPS).rows
    }
    filtered = funnel(ctx, period, filters=ReportFilters(source="GOOGLE"), actor=OPS)
    credit = marketing_credit(ctx, period, group_by="source", actor=OPS)
    spent = {row.group: row for row in cost(ctx, period, actor=OPS).rows}

    assert by_source == {"google": 4, "direct traffic": 2}
    assert filtered.rows[0].counts["lead"] == 4
    assert {row.group for row in credit.rows} <= {"google", "direct traffic"}
    assert list_leads(ctx, actor=OPS, source="Google ").total == 4
    assert spent["google"].leads == 4


def test_the_migration_folds_the_sources_already_stored(empty_database_url: str) -> None:
    before = ScriptDirectory.from_config(alembic_config()).get_revision("0008").down_revision
    engine = make_engine(empty_database_url)
    try:
        upgrade(engine, str(before))
        now = START
        with engine.begin() as connection:
            for i, source in enumerate(("Google", "google", "Direct  Traffic", None)):
                connection.execute(
                    insert(leads).values(
                        email_key=f"p{i}@acme.example.com",
                        source=source,
                        last_source=source,
                        attributes={},
                        stage="lead",
                        stage_changed_at=now,
                        created_at=now,
                        updated_at=now,
                    )
                )
            connection.execute(
                insert(spend).values(
                    source="Google",
                    starts_on=now.date(),
                    ends_on=now.date(),
                    amount=10,
                    currency="USD",
                    imported_at=now,
                    imported_by="test",
                )
            )
        upgrade(engine)
        with engine.connect() as connection:
            stored = connection.execute(
                select(leads.c.source, leads.c.last_source).order_by(leads.c.id)
            ).all()
            spent = connection.execute(select(spend.c.source)).scalars().all()
        assert [tuple(row) for row in stored] == [
            ("google", "google"),
            ("google", "google"),
            ("direct traffic", "direct traffic"),
            (None, None),
        ]
        assert spent == ["google"]
    finally:
        engine.dispose()
