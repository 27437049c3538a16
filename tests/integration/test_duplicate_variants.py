"""Possible duplicates a person would call the same person, written differently: a
hyphen or a name particle (``Jean-Paul``/``Jean Paul``, ``van den Berg``/``Vandenberg``)
and one Gmail inbox spelled two ways (``j.smith+news@`` and ``jsmith@``), whichever way
the second lead arrives (capture, import, an event, or already stored before the
upgrade). And the review queue says who the two leads are. On both databases."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import insert, select, text

from baton.domain.access import operator
from baton.domain.leads import SAME_EMAIL_DOMAIN, SAME_MAILBOX, SAME_PHONE, LeadCreate
from baton.services.activities import ingest_activities
from baton.services.context import Context
from baton.services.duplicate_checks import flag_pending_duplicates
from baton.services.imports import import_leads
from baton.services.leads import capture_lead
from baton.services.merge import list_duplicates
from baton.store.engine import make_engine
from baton.store.migrate import upgrade
from baton.store.tables import duplicate_candidates, leads

OPS = operator("ops")


def capture(ctx: Context, email: str, **fields: Any) -> int:
    data = LeadCreate.model_validate({"email": email, **fields}, context={"default_region": "US"})
    return capture_lead(ctx, data, actor=OPS).lead.id


def flagged(ctx: Context) -> dict[tuple[int, int], str]:
    while flag_pending_duplicates(ctx, limit=50):
        pass
    with ctx.read() as connection:
        rows = connection.execute(
            select(
                duplicate_candidates.c.lead_id,
                duplicate_candidates.c.other_lead_id,
                duplicate_candidates.c.reason,
            )
        ).all()
    return {(lead, other): reason for lead, other, reason in rows}


def test_a_hyphen_or_a_particle_written_otherwise_is_one_name(ctx: Context) -> None:
    jp = capture(ctx, "jp@martin-freres.fr", first_name="Jean-Paul", last_name="Martin")
    jp2 = capture(ctx, "jpm@martin-freres.fr", first_name="Jean Paul", last_name="Martin")
    anna = capture(ctx, "anna@berg.nl", first_name="Anna", last_name="van den Berg")
    anna2 = capture(ctx, "a.vandenberg@berg.nl", first_name="Anna", last_name="Vandenberg")
    # Not the same person: a part of the name missing is not a way of writing it.
    capture(ctx, "paul@martin-freres.fr", first_name="Paul", last_name="Martin")
    capture(ctx, "anna.b@berg.nl", first_name="Anna", last_name="Berg")
    assert flagged(ctx) == {(jp2, jp): SAME_EMAIL_DOMAIN, (anna2, anna): SAME_EMAIL_DOMAIN}


def test_one_gmail_inbox_spelled_two_ways_is_flagged_whatever_the_names(ctx: Context) -> None:
    first = capture(ctx, "jsmith@gmail.com", first_name="John", last_name="Smith")
    second = capture(ctx, "J.Smith+news@googlemail.com", first_name="Johnny")
    # Elsewhere a dot or a +tag may name another inbox: not flagged.
    capture(ctx, "j.smith@yahoo.com", first_name="John", last_name="Smith")
    capture(ctx, "jsmith+crm@smith-co.example", first_name="Jo")
    capture(ctx, "jsmith@smith-co.example", first_name="Al")
    assert flagged(ctx) == {(second, first): SAME_MAILBOX}
    with ctx.read() as connection:
        stored = connection.execute(select(leads.c.mailbox_key).where(leads.c.id == second))
        assert stored.scalar() == "jsmith@gmail.com"


def test_an_imported_or_an_events_lead_finds_the_inbox_too(ctx: Context, tmp_path: Path) -> None:
    first = capture(ctx, "maria.lopez@gmail.com", first_name="Maria")
    path = tmp_path / "leads.csv"
    path.write_text("email,first_name\nmarialopez+webinar@gmail.com,Mary\n", encoding="utf-8")
    import_leads(ctx, path, actor=OPS)
    event = {
        "email": "m.a.r.i.a.lopez@gmail.com",
        "type": "page_view",
        "occurred_at": ctx.clock.now().isoformat(),
    }
    assert ingest_activities(ctx, [event], actor=OPS).leads_created == 1
    with ctx.read() as connection:
        ids = dict(connection.execute(select(leads.c.email, leads.c.id)).all())
    imported, clicked = ids["marialopez+webinar@gmail.com"], ids["m.a.r.i.a.lopez@gmail.com"]
    assert flagged(ctx) == {
        (imported, first): SAME_MAILBOX,
        (clicked, first): SAME_MAILBOX,
        (clicked, imported): SAME_MAILBOX,
    }


def test_the_review_queue_says_who_the_two_leads_are(ctx: Context) -> None:
    older = capture(
        ctx, "anna@berg.nl", first_name="Anna", last_name="van den Berg", company="Berg BV"
    )
    newer = capture(ctx, "a.b@gmail.com", first_name="A.", phone="+31 20 555 0100")
    with ctx.write() as connection:  # the same line, learnt later
        connection.execute(leads.update().where(leads.c.id == older).values(phone="+31205550100"))
    flagged(ctx)
    [pair] = list_duplicates(ctx, actor=OPS)
    assert (pair.reason, pair.reason_code) == (SAME_PHONE, "phone")
    assert (pair.lead.id, pair.lead.name, pair.lead.email, pair.lead.company) == (
        newer,
        "A.",
        "a.b@gmail.com",
        None,
    )
    assert pair.lead.phone == "+31205550100"
    assert (pair.other_lead.id, pair.other_lead.name, pair.other_lead.company) == (
        older,
        "Anna van den Berg",
        "Berg BV",
    )
    assert pair.other_lead.stage == "lead"


def test_the_upgrade_fills_the_inbox_of_stored_leads_and_queues_the_newer(
    empty_database_url: str,
) -> None:
    engine = make_engine(empty_database_url)
    try:
        upgrade(engine, "0022")
        with engine.begin() as connection:
            for email in ("jsmith@gmail.com", "j.smith+x@gmail.com", "j.smith@acme.example"):
                connection.execute(
                    insert(leads).values(
                        email=email,
                        email_key=email,
                        email_domain=email.rpartition("@")[2],
                        attributes={},
                        stage="lead",
                        stage_changed_at=text("CURRENT_TIMESTAMP"),
                        created_at=text("CURRENT_TIMESTAMP"),
                        updated_at=text("CURRENT_TIMESTAMP"),
                    )
                )
        upgrade(engine)
        from baton.config import Settings

        ctx = Context(engine=engine, settings=Settings(database_url=empty_database_url))
        with ctx.read() as connection:
            ids = dict(connection.execute(select(leads.c.email, leads.c.id)).all())
            keys = dict(connection.execute(select(leads.c.email, leads.c.mailbox_key)).all())
        assert keys == {
            "jsmith@gmail.com": "jsmith@gmail.com",
            "j.smith+x@gmail.com": "jsmith@gmail.com",
            "j.smith@acme.example": None,
        }
        assert flagged(ctx) == {(ids["j.smith+x@gmail.com"], ids["jsmith@gmail.com"]): SAME_MAILBOX}
    finally:
        engine.dispose()
