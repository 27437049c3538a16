"""A person's data, exported and erased, on SQLite and PostgreSQL.

One person reaches Baton the ways people do: a web form (``web_to_lead`` hook, with an
explicit opt-in), a capture through the API, an email to sales (a hand-raise that hands
them to a rep and mails the rep), a second address merged into the first, a note, a
tag, a nurture enrollment with a send and its outbox message, and an unsubscribe. A
second person goes through the same doors and must come out untouched.

The erasure test then scans **every text, JSON and binary column of every table in the
database** (found by inspecting the database, not from Baton's metadata) for the
address, the second address, the phone number and the distinctive last name: a new
table that stores them without being erased fails it.

Consent: an opt-in needs a basis to lift an unsubscribe; legitimate interest never does.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from sqlalchemy import func, insert, inspect, select, text
from tests.email_messages import new_email

from baton.domain.access import operator
from baton.domain.activities import ActivityCreate
from baton.domain.errors import Forbidden, ValidationFailed
from baton.domain.intake import Delivery
from baton.domain.leads import LeadCreate
from baton.domain.privacy import erased_key, suppression_keys
from baton.domain.reports import ReportPeriod
from baton.domain.reps import RepCreate, TeamCreate
from baton.services.activities import ingest_activity
from baton.services.context import Context
from baton.services.contracts import activate_contract, approve_contract, create_contract
from baton.services.handoffs import (
    accept_handoff,
    list_handoffs,
    log_touch,
    qualify_handoff,
    reject_handoff,
)
from baton.services.inbound_email import ensure_email_endpoint, receive_message
from baton.services.intake import add_endpoint, receive
from baton.services.leads import capture_lead, get_lead
from baton.services.merge import merge_leads
from baton.services.notes import add_note, add_tag
from baton.services.nurture_reports import nurture_report
from baton.services.outbox import enqueue_email
from baton.services.person import erase_in, erase_person, export_person, scan_in
from baton.services.reports import funnel
from baton.services.reps import create_rep, create_team
from baton.store.tables import (
    activities,
    intake_requests,
    leads,
    nurture_enrollments,
    nurture_sends,
    outbox,
    suppressions,
)

EXAMPLE = (Path(__file__).parents[2] / "contracts" / "example.yaml").read_text()
OPS = operator("ops")
ADDRESS = "Zelda.Quigglesworth@Northwind.example"
SECOND = "zq.private@mailbox.example"
PHONE = "+14155550134"
SURNAME = "Quigglesworth"
OTHER = "olive.other@contoso.example"
MAIL = "sales-mail"
FORM = "site-form"


def sales_floor(ctx: Context) -> None:
    version = create_contract(ctx, EXAMPLE, actor=operator("maria")).version
    approve_contract(ctx, version, role="marketing", actor=operator("maria"))
    approve_contract(ctx, version, role="sales", actor=operator("sam"))
    activate_contract(ctx, version, actor=operator("maria"))
    create_team(ctx, TeamCreate(name="na"), actor=operator("sam"))
    create_rep(ctx, RepCreate(email="riley@lumen.example", name="Riley", team="na"), actor=OPS)
    add_endpoint(
        ctx,
        {
            "name": FORM,
            "kind": "web_to_lead",
            "source": "website",
            "return_urls": ["https://northwind.example/thanks"],
        },
        actor=OPS,
    )
    ensure_email_endpoint(ctx, MAIL, actor=OPS)


def form_post(ctx: Context, **fields: str) -> None:
    body = urlencode(fields).encode()
    delivery = Delivery(
        body,
        "application/x-www-form-urlencoded",
        {"user-agent": "test"},
        {},
        ctx.clock.now(),
        url=f"https://baton.example/hooks/{FORM}",
    )
    outcome = receive(ctx, FORM, delivery, remote_address="203.0.113.9")
    assert outcome.status < 300, outcome


def email_in(ctx: Context, sender: str, message_id: str) -> None:
    message = new_email(sender=sender, message_id=message_id)
    reply = receive_message(
        ctx,
        MAIL,
        bytes(message),
        mail_from=sender.split("<")[-1].rstrip(">"),
        rcpt_tos=["sales@example.com"],
    )
    assert reply.code == 250, reply


def one_person(ctx: Context, address: str, surname: str, phone: str) -> int:
    """The person through every door; returns their lead id."""
    form_post(
        ctx,
        first_name="Zelda",
        last_name=surname,
        email=address,
        company=f"{surname} Traders",
        phone=phone,
        description=f"Call me on {phone}",
    )
    lead = capture_lead(
        ctx,
        LeadCreate(
            email=address,
            title="VP Operations",
            postal_code="94107",
            consent_basis="consent",
            consent_source="https://northwind.example/webinar?ref=" + address,
            attributes={"personal_note": f"{surname} likes golf"},
        ),
        actor=OPS,
    ).lead
    email_in(ctx, f'"Zelda {surname}" <{address}>', f"<{surname.lower()}.1@mail.example>")
    add_note(ctx, lead.id, f"Spoke to Zelda {surname} at {address}", actor=OPS)
    add_tag(ctx, lead.id, "webinar", actor=OPS)
    [handoff] = list_handoffs(ctx, actor=OPS, lead_id=lead.id)
    log_touch(ctx, handoff.id, kind="call", note=f"Zelda {surname} says call {phone}", actor=OPS)
    accept_handoff(ctx, handoff.id, actor=OPS)
    fields = {"budget": "40k", "authority": f"Zelda {surname}", "need": "ops", "timing": phone}
    qualify_handoff(ctx, handoff.id, fields=fields, actor=OPS)
    unsubscribe(ctx, lead.id)  # (a suppression; the enrollment below stays active)
    now = ctx.clock.now()
    with ctx.write() as connection:
        enrollment = connection.execute(
            insert(nurture_enrollments)
            .values(
                lead_id=lead.id,
                sequence="not-ready",
                contract_version=1,
                status="active",
                reason="test",
                enrolled_at=now,
                enrolled_by="ops",
                next_due_at=now + timedelta(days=7),
            )
            .returning(nurture_enrollments.c.id)
        ).scalar_one()
        enqueue_email(
            connection,
            topic="nurture.step",
            to=address,
            now=now,
            data={"subject": f"Hello Zelda {surname}", "to": address},
        )
        outbox_id = connection.execute(select(func.max(outbox.c.id))).scalar_one()
        connection.execute(
            insert(nurture_sends).values(
                enrollment_id=enrollment,
                step=0,
                lead_id=lead.id,
                email=address,
                template="check-in",
                outbox_id=outbox_id,
                message_id=f"<n1.{surname.lower()}@baton.example>",
                status="sent",
                planned_at=now,
                links=[f"https://northwind.example/p?u={address}"],
            )
        )
    return lead.id


@pytest.fixture
def world(ctx: Context) -> dict[str, Any]:
    sales_floor(ctx)
    zelda = one_person(ctx, ADDRESS, SURNAME, PHONE)
    second = capture_lead(
        ctx, LeadCreate(email=SECOND, first_name="Zelda", last_name=SURNAME), actor=OPS
    ).lead.id
    raised = {"email": SECOND, "type": "demo_request", "occurred_at": ctx.clock.now()}
    ingest_activity(ctx, ActivityCreate.model_validate(raised), actor=OPS)
    [handoff] = list_handoffs(ctx, actor=OPS, lead_id=second)
    reject_handoff(ctx, handoff.id, code="not_ready", note=f"{SURNAME}: next year", actor=OPS)
    merge_leads(ctx, zelda, second, actor=OPS)
    olive = one_person(ctx, OTHER, "Oliphant", "+14155550199")
    return {"zelda": zelda, "second": second, "olive": olive}


def text_columns(connection: Any) -> dict[str, list[str]]:
    """Every table in the database and its columns that can hold text (found by
    inspecting the database itself, so new tables are included)."""
    found: dict[str, list[str]] = {}
    inspector = inspect(connection)
    for table in inspector.get_table_names():
        names = [
            c["name"]
            for c in inspector.get_columns(table)
            if any(
                word in str(c["type"]).upper()
                for word in ("CHAR", "TEXT", "JSON", "BLOB", "BYTEA", "CLOB")
            )
        ]
        if names:
            found[table] = names
    return found


def holding(ctx: Context, needles: list[str]) -> list[str]:
    """``table.column`` of every row value holding one of the needles (any case)."""
    hits: list[str] = []
    with ctx.read() as connection:
        postgres = connection.dialect.name == "postgresql"
        for table, columns in sorted(text_columns(connection).items()):
            if table.startswith("leads_search_"):
                continue  # FTS5 shadow tables: tokens, never whole values (module text)
            for column in columns:
                value = f'"{column}"'
                if postgres:
                    kind = connection.execute(
                        text(
                            "SELECT data_type FROM information_schema.columns "
                            "WHERE table_name = :t AND column_name = :c"
                        ),
                        {"t": table, "c": column},
                    ).scalar_one()
                    value = f"encode({value}, 'escape')" if kind == "bytea" else f"{value}::text"
                else:
                    value = f"CAST({value} AS TEXT)"
                for needle in needles:
                    count = connection.execute(
                        text(f'SELECT count(*) FROM "{table}" WHERE lower({value}) LIKE :n'),
                        {"n": f"%{needle.lower()}%"},
                    ).scalar_one()
                    if count:
                        hits.append(f"{table}.{column} ({needle})")
    return hits


def test_export_holds_everything_about_the_person(ctx: Context, world: dict[str, Any]) -> None:
    document = export_person(ctx, ADDRESS.upper(), actor=OPS)
    ids = {lead["id"] for lead in document["leads"]}
    assert ids == {world["zelda"], world["second"]}
    assert {a["type"] for a in document["activities"]} >= {"captured", "form_submit"}
    assert [n["body"] for n in document["notes"]] == [f"Spoke to Zelda {SURNAME} at {ADDRESS}"]
    assert [t["tag"] for t in document["tags"]] == ["webinar"]
    assert document["transitions"] and document["handoffs"]
    assert all(h["events"] for h in document["handoffs"])
    assert [m["merged_id"] for m in document["merges"]] == [world["second"]]
    [form] = document["intake_requests"]
    assert SURNAME in form["body"] and form["endpoint"] == FORM and form["items"]
    [mail] = document["inbound_email"]
    assert ADDRESS in mail["body"] and mail["endpoint_kind"] == "email"
    topics = sorted(m["topic"] for m in document["outbox"])
    assert "nurture.step" in topics and "handoff.assigned" in topics
    [enrollment] = document["nurture_enrollments"]
    assert enrollment["sends"][0]["email"] == ADDRESS
    assert [s["reason"] for s in document["suppressions"]] == ["unsubscribe"]
    assert document["leads"][0]["consent_basis"] == "consent"
    # Nothing of the other person.
    flat = repr(document).lower()
    assert OTHER not in flat and "oliphant" not in flat
    # An unknown address is an empty answer, not an error.
    empty = export_person(ctx, "nobody@nowhere.example", actor=OPS)
    assert empty["leads"] == [] and empty["outbox"] == []


def test_erase_keeps_the_counts_and_leaves_no_trace(ctx: Context, world: dict[str, Any]) -> None:
    period = ReportPeriod(
        datetime(2000, 1, 1, tzinfo=ctx.clock.now().tzinfo), ctx.clock.now() + timedelta(days=1)
    )
    before = funnel(ctx, period, actor=OPS)
    needles = [ADDRESS, SECOND, PHONE, SURNAME, PHONE[2:]]
    assert len(holding(ctx, needles)) > 10  # the scan finds them before
    clicked(ctx, world["zelda"])  # a click through the nurture email's signed link
    nurture_before = nurture_report(ctx, period, actor=OPS)
    assert nurture_before.total.clicked == 1

    result = erase_person(ctx, ADDRESS, actor=OPS)
    assert result.leads == 2 and result.notes == 1
    assert result.intake_requests == 2 and result.enrollments_ended == 1
    assert funnel(ctx, period, actor=OPS) == before
    # The click keeps only its anonymous nurture references: the report stays true.
    assert nurture_report(ctx, period, actor=OPS).total == nurture_before.total
    left = holding(ctx, needles)
    assert left == [], left

    with ctx.read() as connection:
        erased = (
            connection.execute(select(leads).where(leads.c.id == world["zelda"])).mappings().one()
        )
        keys = set(connection.execute(select(suppressions.c.email_key, suppressions.c.reason)))
        statuses = set(connection.execute(select(intake_requests.c.status)).scalars())
    assert erased["stage"] != "lead" and erased["email"] is None and erased["attributes"] == {}
    assert erased["source"] == "website"
    assert (erased_key(ADDRESS), "erased") in keys
    assert (OTHER, "unsubscribe") in keys  # the other person untouched
    assert "erased" in statuses and "processed" in statuses
    olive = get_lead(ctx, world["olive"], actor=OPS)
    assert olive.email == OTHER and olive.last_name == "Oliphant"
    assert export_person(ctx, OTHER, actor=OPS)["notes"]

    # A later capture of the address is a fresh lead, still suppressed (by the hash)
    # until the person opts in again explicitly.
    fresh = capture_lead(ctx, LeadCreate(email=ADDRESS), actor=OPS)
    assert fresh.created and fresh.lead.id not in world.values()
    # (and under its plain key again, so every check by email key sees it)
    assert suppressed(ctx, ADDRESS) == ["erased", "erased"]
    capture_lead(ctx, LeadCreate(email=ADDRESS, consent_basis="legitimate_interest"), actor=OPS)
    assert suppressed(ctx, ADDRESS) == ["erased", "erased"]
    capture_lead(ctx, LeadCreate(email=ADDRESS, consent_basis="consent"), actor=OPS)
    assert suppressed(ctx, ADDRESS) == []


def clicked(ctx: Context, lead_id: int) -> None:
    """An ``email_click`` as the signed click link records it (its URL holds the address)."""
    with ctx.write() as connection:
        enrollment, send = connection.execute(
            select(nurture_sends.c.enrollment_id, nurture_sends.c.id).where(
                nurture_sends.c.lead_id == lead_id
            )
        ).one()
        connection.execute(
            insert(activities).values(
                lead_id=lead_id,
                type="email_click",
                occurred_at=ctx.clock.now(),
                received_at=ctx.clock.now(),
                recorded_by="email link",
                properties={
                    "sequence": "not-ready",
                    "enrollment_id": enrollment,
                    "step": 0,
                    "send_id": send,
                    "url": f"https://northwind.example/p?u={ADDRESS}",
                },
            )
        )


def suppressed(ctx: Context, address: str) -> list[str]:
    with ctx.read() as connection:
        return sorted(
            connection.execute(
                select(suppressions.c.reason).where(
                    suppressions.c.email_key.in_(suppression_keys(address))
                )
            ).scalars()
        )


def unsubscribe(ctx: Context, lead_id: int) -> None:
    """The one-click unsubscribe's use case (it keeps ``consent`` as it was)."""
    from baton.services.nurture_links import unsubscribe_lead_in

    with ctx.write() as connection:
        unsubscribe_lead_in(connection, lead_id, now=ctx.clock.now(), actor=OPS, source="one-click")


def test_an_unsubscribe_reported_by_an_email_platform_is_honoured(ctx: Context) -> None:
    """Not only scored: the lead is unsubscribed and its address suppressed, as by the
    unsubscribe link, and the activity is recorded once; a public key may not send one."""
    address = "vic@acme.example"
    lead = capture_lead(ctx, LeadCreate(email=address, consent_basis="consent"), actor=OPS)
    platform = operator("email-platform")
    event = ActivityCreate(email=address, type="unsubscribe", occurred_at=ctx.clock.now())
    ingest_activity(ctx, event, actor=platform)
    assert get_lead(ctx, lead.lead_id, actor=OPS).unsubscribed_at == ctx.clock.now()
    assert suppressed(ctx, address) == ["unsubscribe"]
    ingest_activity(ctx, event, actor=platform)  # reported twice: nothing more changes
    with ctx.read() as connection:
        kinds = connection.execute(
            select(activities.c.type).where(activities.c.lead_id == lead.lead_id)
        ).scalars()
        assert sorted(kinds) == ["captured", "unsubscribe", "unsubscribe"]
    assert suppressed(ctx, address) == ["unsubscribe"]
    # The link's own path still records its activity once.
    other = capture_lead(ctx, LeadCreate(email="wyn@acme.example"), actor=OPS)
    unsubscribe(ctx, other.lead_id)
    with ctx.read() as connection:
        kinds = connection.execute(
            select(activities.c.type).where(activities.c.lead_id == other.lead_id)
        ).scalars()
        assert sorted(kinds) == ["captured", "unsubscribe"]


def test_a_public_opt_in_never_lifts_an_erasure_or_an_unsubscribe(ctx: Context) -> None:
    """Knowing an address is not enough to re-subscribe someone: an intake key's
    explicit opt-in records the answer on the lead but lifts no suppression."""
    key = operator("x").__class__(kind="intake_key", name="intake:site", source="web")
    erased, left = "eve@acme.example", "ulf@acme.example"
    capture_lead(ctx, LeadCreate(email=erased, consent_basis="consent"), actor=OPS)
    erase_person(ctx, erased, actor=OPS)
    lead = capture_lead(ctx, LeadCreate(email=left, consent_basis="consent"), actor=OPS)
    unsubscribe(ctx, lead.lead_id)
    before = {a: suppressed(ctx, a) for a in (erased, left)}
    assert before[erased] and before[left] == ["unsubscribe"]
    for address in (erased, left):
        capture_lead(ctx, LeadCreate(email=address, consent_basis="consent"), actor=key)
    assert suppressed(ctx, erased) == ["erased", "erased"], "the hash and the plain key"
    assert suppressed(ctx, left) == ["unsubscribe"]
    assert get_lead(ctx, lead.lead_id, actor=OPS).unsubscribed_at is not None


def test_only_an_explicit_opt_in_lifts_an_unsubscribe(ctx: Context) -> None:
    address = "una@acme.example"
    lead = capture_lead(
        ctx, LeadCreate(email=address, consent_basis="legitimate_interest"), actor=OPS
    ).lead
    assert (lead.consent, lead.consent_basis) == (True, "legitimate_interest")
    assert lead.consent_at == ctx.clock.now()
    unsubscribe(ctx, lead.id)
    for answer in (
        {"consent": True},
        {"consent_basis": "legitimate_interest", "consent_source": "crm import"},
    ):
        again = capture_lead(ctx, LeadCreate(email=address, **answer), actor=OPS).lead
        assert again.unsubscribed_at is not None
        assert again.consent_basis == "legitimate_interest"
        assert suppressed(ctx, address) == ["unsubscribe"]
    # A public form (an intake key) cannot re-subscribe someone who refused...
    hook = operator("x").__class__(kind="intake_key", name="hook:form", source="web")
    public = capture_lead(ctx, LeadCreate(email=address, consent_basis="consent"), actor=hook)
    assert public.lead_id == lead.id
    assert get_lead(ctx, lead.id, actor=OPS).unsubscribed_at is not None
    # ...a trusted capture of an explicit opt-in does, with when and where.
    ctx.clock.advance(timedelta(hours=1))  # type: ignore[attr-defined]
    opted = capture_lead(
        ctx,
        LeadCreate(email=address, consent_basis="consent", consent_source="double opt-in"),
        actor=OPS,
    ).lead
    assert (opted.consent, opted.consent_basis, opted.consent_source) == (
        True,
        "consent",
        "double opt-in",
    )
    assert opted.unsubscribed_at is None and opted.consent_at == ctx.clock.now()
    assert suppressed(ctx, address) == []
    # Legitimate interest never replaces a recorded consent; a refusal clears the basis.
    same = capture_lead(
        ctx, LeadCreate(email=address, consent_basis="legitimate_interest"), actor=OPS
    ).lead
    assert same.consent_basis == "consent"
    capture_lead(ctx, LeadCreate(email=address, consent=False), actor=hook)
    refused = get_lead(ctx, lead.id, actor=OPS)
    assert (refused.consent, refused.consent_basis) == (False, None)


def test_a_basis_that_cannot_cover_marketing_is_refused_by_name() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=r"contract \(GDPR Art. 6\(1\)\(b\)\)"):
        LeadCreate(email="a@b.example", consent_basis="contract")
    with pytest.raises(ValidationError, match="not a lawful basis"):
        LeadCreate(email="a@b.example", consent_basis="because")
    with pytest.raises(ValidationError, match="give one or the other"):
        LeadCreate(email="a@b.example", consent=False, consent_basis="consent")
    assert LeadCreate(email="a@b.example", consent_basis="Legitimate Interest").consent is True


def test_only_admins_and_valid_addresses(ctx: Context) -> None:
    from tests.conftest import principal_for

    with pytest.raises(Forbidden):
        export_person(ctx, ADDRESS, actor=principal_for(ctx, "marketing"))
    with pytest.raises(ValidationFailed):
        erase_person(ctx, "not an address", actor=OPS)


def test_a_form_opt_in_records_basis_time_and_page(ctx: Context) -> None:
    add_endpoint(
        ctx,
        {
            "name": "optin-form",
            "kind": "web_to_lead",
            "source": "website",
            "return_urls": ["https://northwind.example/thanks"],
            "mapping": {"newsletter": "consent"},
        },
        actor=OPS,
    )
    page = "https://northwind.example/pricing"
    for fields in ({"newsletter": "1"}, {"emailOptOut": "1"}):
        body = urlencode({"email": "otto@acme.example", "last_name": "Otto", **fields})
        delivery = Delivery(
            body.encode(),
            "application/x-www-form-urlencoded",
            {"referer": page},
            {},
            ctx.clock.now(),
        )
        assert receive(ctx, "optin-form", delivery).status < 300
        with ctx.read() as connection:
            row = (
                connection.execute(select(leads).where(leads.c.email_key == "otto@acme.example"))
                .mappings()
                .one()
            )
        if "newsletter" in fields:
            assert (row["consent"], row["consent_basis"], row["consent_source"]) == (
                True,
                "consent",
                page,
            )
            assert row["consent_at"] == ctx.clock.now()
            ctx.clock.advance(timedelta(days=1))  # type: ignore[attr-defined]
        else:  # the same form's opt-out box withdraws it, dated
            assert (row["consent"], row["consent_basis"]) == (False, None)
            assert row["consent_at"] == ctx.clock.now()


def test_erase_finds_unlinked_requests_and_spares_lookalike_addresses(ctx: Context) -> None:
    add_endpoint(
        ctx,
        {
            "name": FORM,
            "kind": "web_to_lead",
            "source": "website",
            "return_urls": ["https://northwind.example/thanks"],
        },
        actor=OPS,
    )
    form_post(ctx, email="ann@acme.example", last_name="Ann")
    form_post(ctx, email="joann@acme.example", last_name="Jo")
    form_post(ctx, email="ann@acme.example.org", last_name="Org")
    with ctx.read() as connection:  # the scan ahead of the erasing transaction...
        scanned = scan_in(connection, "ann@acme.example")
    # ...then, before the erasure, a post refused as a whole (a name longer than the
    # form allows): no lead, only the body, found by the scan inside the transaction.
    refused = Delivery(
        urlencode({"email": "ann@acme.example", "first_name": "A" * 41}).encode(),
        "application/x-www-form-urlencoded",
        {},
        {},
        ctx.clock.now(),
    )
    assert receive(ctx, FORM, refused).status >= 400

    with ctx.write() as connection:
        result = erase_in(
            connection, "ann@acme.example", actor=OPS, now=ctx.clock.now(), scanned=scanned
        )
    assert (result.leads, result.intake_requests) == (1, 2)
    assert erase_person(ctx, "ANN@acme.example", actor=OPS).intake_requests == 0  # done
    with ctx.read() as connection:
        bodies = [
            bytes(b).decode()
            for b in connection.execute(
                select(intake_requests.c.body).order_by(intake_requests.c.id)
            ).scalars()
        ]
    assert bodies[0] == "" and bodies[3] == ""
    assert "joann%40acme.example" in bodies[1] and "ann%40acme.example.org" in bodies[2]
    with ctx.read() as connection:
        kept = set(connection.execute(select(leads.c.email)).scalars())
    assert kept == {None, "joann@acme.example", "ann@acme.example.org"}
