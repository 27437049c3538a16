"""The links of a real nurture email, followed over HTTP (FastAPI's TestClient) on
SQLite and PostgreSQL.

A consenting lead is enrolled in the example contract's ``not-ready`` sequence, the
send lane plans step 0 and the worker delivers it to a real SMTP server (aiosmtpd).
The test then reads the message as received (its ``List-Unsubscribe`` headers, its
html's pixel and click links) and follows them without any login: the pixel is a GIF,
a click redirects to the template's URL, a tampered link is the 404 page, the
unsubscribe page has a confirm button and no script, and the RFC 8058 one-click POST
unsubscribes at once (200, no redirect).
"""

from __future__ import annotations

import random
import re
import string
from collections.abc import Iterator
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from tests.notify_servers import smtp_server

from baton.api.app import create_app
from baton.domain.access import operator
from baton.domain.clock import ManualClock
from baton.domain.leads import LeadCreate
from baton.notify.email import SmtpConfig
from baton.services import nurture_links as links
from baton.services.context import Context
from baton.services.contracts import activate_contract, approve_contract, create_contract
from baton.services.leads import capture_lead
from baton.services.nurture import enroll_in
from baton.services.nurture_send import run_nurture
from baton.services.worker import tick
from baton.store.tables import (
    activities,
    leads,
    nurture_enrollments,
    nurture_sends,
    suppressions,
)

EXAMPLE = (Path(__file__).parents[2] / "contracts" / "example.yaml").read_text()
BASE = "http://testserver"
GUIDE = "https://lumen-analytics.example/guides/when-to-replace-reporting"
HREF = re.compile(r'href="([^"]+)"')
PIXEL = re.compile(r'<img src="([^"]+/n/o/[^"]+)"')


@pytest.fixture
def client(ctx: Context) -> Iterator[TestClient]:
    ctx.settings = ctx.settings.model_copy(update={"public_url": BASE})
    with TestClient(create_app(ctx), raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def mail(ctx: Context, clock: ManualClock) -> tuple[int, EmailMessage]:
    """Dana's first nurture email, as the SMTP server received it."""
    version = create_contract(ctx, EXAMPLE, actor=operator("maria")).version
    approve_contract(ctx, version, role="marketing", actor=operator("maria"))
    approve_contract(ctx, version, role="sales", actor=operator("sam"))
    activate_contract(ctx, version, actor=operator("maria"))
    data = LeadCreate.model_validate(
        {
            "email": "dana@northwind.com",
            "first_name": "Dana",
            "company": "Northwind",
            "consent": True,
            "consent_basis": "consent",
            "consent_source": "https://lumen-analytics.example/webinar",
        }
    )
    lead_id = capture_lead(ctx, data, actor=operator("form")).lead.id
    with ctx.write() as connection:
        enroll_in(
            connection,
            lead_id,
            "not-ready",
            reason="tag cold",
            now=clock.now(),
            actor=operator("maria"),
        )
    clock.advance(timedelta(days=8))
    assert run_nurture(ctx).planned == 1
    with smtp_server() as smtp:
        tick(ctx, smtp=SmtpConfig(host=smtp.host, port=smtp.port))
        [message] = smtp.messages
    return lead_id, message


def html_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("html",))
    assert part is not None
    return str(part.get_content())


def path_of(url: str) -> str:
    assert url.startswith(BASE + "/n/"), url
    return url[len(BASE) :]


def types(ctx: Context, lead_id: int) -> list[str]:
    with ctx.read() as connection:
        return list(
            connection.execute(
                select(activities.c.type)
                .where(activities.c.lead_id == lead_id)
                .order_by(activities.c.id)
            ).scalars()
        )


def test_the_emails_links_work_without_a_login(
    ctx: Context, client: TestClient, mail: tuple[int, EmailMessage]
) -> None:
    lead_id, message = mail
    with ctx.read() as connection:
        logged = connection.execute(select(nurture_sends.c.message_id)).scalar_one()
    assert message["Message-ID"] == logged  # the send log ties the SMTP accept back
    assert re.fullmatch(r"<outbox-\d+\.[\w-]{16}@baton>", logged)  # keyed: not guessable
    html = html_of(message)
    [pixel] = PIXEL.findall(html)
    response = client.get(path_of(pixel))
    assert (response.status_code, response.headers["content-type"]) == (200, "image/gif")
    assert response.content == links.PIXEL_GIF
    assert "no-store" in response.headers["cache-control"]

    clicks = [u for u in HREF.findall(html) if "/n/c/" in u]
    assert clicks, html
    response = client.get(path_of(clicks[0]), follow_redirects=False)
    assert response.status_code == 302
    assert response.headers["location"] == GUIDE
    assert response.headers["referrer-policy"] == "no-referrer"
    # A scanner probing with HEAD is redirected too, and counts nothing.
    assert client.head(path_of(clicks[0]), follow_redirects=False).status_code == 302
    assert types(ctx, lead_id).count("email_click") == 1
    assert types(ctx, lead_id).count("email_open") == 1


def test_a_tampered_or_foreign_link_is_the_404_page_never_a_redirect(
    ctx: Context, client: TestClient, mail: tuple[int, EmailMessage]
) -> None:
    lead_id, message = mail
    [click] = [u for u in HREF.findall(html_of(message)) if "/n/c/" in u][:1]
    token = click.rsplit("/", 1)[1]
    payload, _, signature = token.partition(".")
    enrollment_id, step, _ = links.read_click_token(ctx.settings, token) or (0, 0, "")
    elsewhere = links.click_url(ctx.settings, enrollment_id, step, "https://evil.example/login")
    for path in (
        f"/n/c/{payload}.{signature[:-2]}xx",
        f"/n/c/{payload[:-1]}.{signature}",
        path_of(elsewhere),  # signed (the secret leaked), but not a URL of that email
        "/n/c/" + "A" * 300,
        "/n/c/%00%ff",
        "/n/o/nonsense",
        "/n/u/nonsense",
    ):
        response = client.get(path, follow_redirects=False, headers={"accept": "text/html"})
        assert response.status_code == 404, (path, response.status_code)
        assert "location" not in response.headers
        assert response.headers["content-type"].startswith("text/html")
    assert client.post("/n/u/nonsense", data={"List-Unsubscribe": "One-Click"}).status_code == 404
    # Random and near-miss tokens, as any client asks (no Accept): 404, never a 5xx.
    chance = random.Random(15)
    alphabet = string.ascii_letters + string.digits + "-_.~%"
    for _ in range(30):
        junk = "".join(chance.choice(alphabet) for _ in range(chance.randint(1, 120)))
        for kind in ("o", "c", "u"):
            answer = client.get(f"/n/{kind}/{junk}", follow_redirects=False)
            assert answer.status_code in (404, 400), (kind, junk, answer.status_code)
    assert "email_click" not in types(ctx, lead_id)


def test_one_click_unsubscribe_per_rfc_8058(
    ctx: Context, client: TestClient, mail: tuple[int, EmailMessage]
) -> None:
    lead_id, message = mail
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    target = str(message["List-Unsubscribe"]).strip().strip("<>")
    assert target == links.unsubscribe_url(ctx.settings, lead_id)
    # A POST without the one-click field unsubscribes nobody.
    assert client.post(path_of(target), data={"other": "x"}).status_code == 400
    # What a mail client sends: form-encoded List-Unsubscribe=One-Click; 200, no redirect.
    response = client.post(
        path_of(target),
        content=b"List-Unsubscribe=One-Click",
        headers={"content-type": "application/x-www-form-urlencoded"},
        follow_redirects=False,
    )
    assert response.status_code == 200
    assert "You are unsubscribed" in response.text
    with ctx.read() as connection:
        assert (
            connection.execute(
                select(leads.c.unsubscribed_at).where(leads.c.id == lead_id)
            ).scalar()
            is not None
        )
        assert connection.execute(select(suppressions.c.source)).scalar() == "one-click"
        assert (
            connection.execute(
                select(nurture_enrollments.c.exit_reason).where(
                    nurture_enrollments.c.lead_id == lead_id
                )
            ).scalar()
            == "unsubscribe"
        )
    # multipart/form-data (also allowed by RFC 8058), again: still 200, nothing twice.
    again = client.post(path_of(target), files={"List-Unsubscribe": (None, "One-Click")})
    assert again.status_code == 200
    assert types(ctx, lead_id).count("unsubscribe") == 1


def test_the_unsubscribe_page_asks_first_and_has_no_script(
    ctx: Context, client: TestClient, mail: tuple[int, EmailMessage]
) -> None:
    lead_id, message = mail
    [target] = [u for u in HREF.findall(html_of(message)) if "/n/u/" in u]
    page = client.get(path_of(target))
    assert page.status_code == 200
    assert "d***@northwind.com" in page.text
    assert "dana@northwind.com" not in page.text
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "'unsafe-inline'" not in csp
    assert re.search(r"<script(?![^>]*\bsrc=)[^>]*>", page.text) is None  # no inline script
    assert f'action="{path_of(target)}"' in page.text
    assert "unsubscribe" not in types(ctx, lead_id)  # looking changes nothing
    form = dict(re.findall(r'name="([^"]+)" value="([^"]+)"', page.text))
    done = client.post(path_of(target), data=form, follow_redirects=False)
    assert done.status_code == 200
    assert "You are unsubscribed" in client.get(path_of(target)).text
    with ctx.read() as connection:
        assert connection.execute(select(suppressions.c.source)).scalar() == "page"
