"""Previewing a nurture email for a real lead, as marketing would before enrolling
anyone: by template or by a sequence's step, from the active contract or from a
draft's text, over HTTP (problem+json naming the field on a mistake) and on the
command line; the last rep who had the lead signs the copy."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from tests.conftest import bearer, principal_for, token_for
from typer.testing import CliRunner

from baton.api.app import create_app
from baton.cli import app as cli_app
from baton.domain.access import operator
from baton.domain.activities import ActivityCreate
from baton.domain.errors import Forbidden, ValidationFailed
from baton.domain.leads import LeadCreate
from baton.domain.reps import RepCreate, TeamCreate
from baton.services import contracts as contract_service
from baton.services import reps as rep_service
from baton.services.activities import ingest_activity
from baton.services.context import Context
from baton.services.leads import capture_lead
from baton.services.nurture_preview import preview_template

EXAMPLE = Path(__file__).parents[2] / "contracts" / "example.yaml"
OP = operator("test")
ALWAYS = {d: ["00:00-24:00"] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}


def activate_example(ctx: Context) -> int:
    version = contract_service.create_contract(ctx, EXAMPLE.read_text(), actor=OP).version
    contract_service.approve_contract(ctx, version, role="marketing", actor=operator("m"))
    contract_service.approve_contract(ctx, version, role="sales", actor=operator("s"))
    contract_service.activate_contract(ctx, version, actor=OP)
    return version


def a_lead_sam_had(ctx: Context) -> int:
    """Ana of Acme asked for a demo and was routed to Sam Becker, the only rep."""
    rep_service.create_team(ctx, TeamCreate(name="na"), actor=OP)
    rep_service.create_rep(
        ctx,
        RepCreate(
            email="sam@lumen.example",
            name="Sam Becker",
            team="na",
            working_hours=ALWAYS,
            capacity=100,
        ),
        actor=OP,
    )
    data = LeadCreate.model_validate(
        {"email": "ana@acme.example", "first_name": "Ana", "company": "Acme", "country": "US"}
    )
    lead_id = capture_lead(ctx, data, actor=OP).lead.id
    ingest_activity(
        ctx,
        ActivityCreate(email="ana@acme.example", type="demo_request", occurred_at=ctx.clock.now()),
        actor=OP,
    )
    return lead_id


@pytest.fixture
def world(ctx: Context) -> tuple[int, int]:
    """(active contract version, lead id)."""
    version = activate_example(ctx)
    return version, a_lead_sam_had(ctx)


def test_marketing_previews_a_template_and_a_sequence_step(
    ctx: Context, world: tuple[int, int]
) -> None:
    version, lead_id = world
    marketing = principal_for(ctx, "marketing")

    shown = preview_template(ctx, lead_id=lead_id, template="check-in", actor=marketing)
    step = preview_template(ctx, lead_id=lead_id, sequence="not-ready", step=3, actor=marketing)

    assert shown.contract_version == version and shown.to == "ana@acme.example"
    assert shown.email.subject == "Ana, a quick thought for Acme"
    assert "Sam mentioned the timing wasn't right for Acme" in shown.email.text
    assert "/u/preview" in shown.email.text
    assert shown.email.links == ["https://lumen-analytics.example/guides/when-to-replace-reporting"]
    assert step.template == "benchmark" and step.step == 3
    with pytest.raises(Forbidden):
        preview_template(
            ctx,
            lead_id=lead_id,
            template="check-in",
            actor=principal_for(ctx, "rep", rep_email="sam@lumen.example"),
        )


def test_a_draft_is_previewed_before_it_is_signed(ctx: Context, world: tuple[int, int]) -> None:
    _, lead_id = world
    draft = EXAMPLE.read_text().replace(
        "a quick thought for {{ lead.company", "one idea for {{ lead.company"
    )
    broken = EXAMPLE.read_text().replace(
        "{{ lead.first_name | default('there') }}", "{{ lead.frist_name }}", 1
    )

    shown = preview_template(
        ctx, lead_id=lead_id, template="check-in", contract_text=draft, actor=OP
    )
    with pytest.raises(ValidationFailed) as refused:
        preview_template(ctx, lead_id=lead_id, template="check-in", contract_text=broken, actor=OP)

    assert shown.contract_version is None and shown.email.subject == "Ana, one idea for Acme"
    [problem] = refused.value.problems
    assert problem.loc == "nurture.templates.check-in.text"
    assert "unknown variable 'lead.frist_name'" in problem.message


def test_preview_over_http(ctx: Context, world: tuple[int, int]) -> None:
    _, lead_id = world
    api = TestClient(create_app(ctx), headers=bearer(token_for(ctx, "marketing")))

    shown = api.post("/api/v1/nurture/preview", json={"lead_id": lead_id, "template": "benchmark"})
    unknown = api.post("/api/v1/nurture/preview", json={"lead_id": lead_id, "template": "chek-in"})
    too_far = api.post(
        "/api/v1/nurture/preview", json={"lead_id": lead_id, "sequence": "not-ready", "step": 9}
    )
    both = api.post(
        "/api/v1/nurture/preview",
        json={"lead_id": lead_id, "template": "check-in", "sequence": "not-ready"},
    )
    missing = api.post("/api/v1/nurture/preview", json={"lead_id": 999_999, "template": "check-in"})

    assert shown.status_code == 200, shown.text
    body = shown.json()
    assert body["subject"] == "Ana, how do 400 mid-size companies report?"
    assert body["links"] == [
        "https://lumen-analytics.example/benchmark",
        "https://lumen-analytics.example/pricing",
    ]
    assert body["html"].startswith("<p>Hi Ana,</p>")
    assert unknown.status_code == 422
    assert unknown.headers["content-type"].startswith("application/problem+json")
    [error] = unknown.json()["errors"]
    assert error["loc"] == "template" and "did you mean 'check-in'" in error["message"]
    assert too_far.status_code == 422 and too_far.json()["errors"][0]["loc"] == "step"
    assert both.status_code == 422
    assert missing.status_code == 404


def test_preview_on_the_command_line(
    ctx: Context, world: tuple[int, int], database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, lead_id = world
    monkeypatch.setenv("BATON_DATABASE_URL", database_url)
    runner = CliRunner()

    shown = runner.invoke(cli_app, ["nurture", "preview", "right-person", "--lead", str(lead_id)])
    step = runner.invoke(
        cli_app,
        ["nurture", "preview", "--sequence", "not-ready", "--step", "1", "--lead", str(lead_id)],
    )
    wrong = runner.invoke(cli_app, ["nurture", "preview", "rightperson", "--lead", str(lead_id)])

    assert shown.exit_code == 0, shown.output
    assert "Subject: Who looks after reporting at Acme?" in shown.output
    assert "Thanks for talking to us with Sam." in shown.output
    assert step.exit_code == 0 and "check-in (step 1 of not-ready)" in step.output
    assert "https://lumen-analytics.example/guides/when-to-replace-reporting" in step.output
    assert wrong.exit_code == 1
    assert "unknown template 'rightperson' (did you mean 'right-person'?)" in wrong.output


def test_the_contract_page_reads_the_sequences_in_words(sqlite_ctx: Context) -> None:
    import re
    from html import unescape

    from tests.e2e.test_web_access import sign_in
    from tests.web_world import build_world

    world = build_world(sqlite_ctx, handoffs_each=1)
    with TestClient(
        create_app(sqlite_ctx), base_url="https://testserver", follow_redirects=False
    ) as client:
        sign_in(client, world.users["marketing"])
        page = client.get("/contract")

    words = re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", page.text)))
    assert page.status_code == 200
    assert "Each email waits 6 to 45 days after the previous one" in words
    assert (
        "Enrolls leads rejected as Interested, but not ready to buy yet; leads tagged cold. "
        "At most 6 emails; ends on a reply, a hand-raise, re-MQL" in words
    )
    assert "After 14 days: case-study" in words and "only for grade A/B" in words


def test_a_draft_with_bad_nurture_is_refused_naming_each_field(sqlite_ctx: Context) -> None:
    api = TestClient(create_app(sqlite_ctx), headers=bearer(token_for(sqlite_ctx, "marketing")))
    body = (
        EXAMPLE.read_text()
        .replace("{template: benchmark, delay_days: 21}", "{template: benchmark, delay_days: 60}")
        .replace(
            "<p>Hi {{ lead.first_name | default('there') }},</p>", "<p>{{ lead.frist_name }}", 1
        )
        .replace("{% if lead.title %}Section 3", "{% if lead.title %Section 3", 1)
    )

    answer = api.post("/api/v1/contracts", json={"body": body})

    assert answer.status_code == 422
    assert answer.headers["content-type"].startswith("application/problem+json")
    errors = {e["loc"]: e["message"] for e in answer.json()["errors"]}
    assert errors["nurture.sequences.not-ready.steps[2].delay_days"] == (
        "60 is outside the contract's bounds 6..45 days (nurture.delay_days)"
    )
    assert errors["nurture.templates.check-in.html"].startswith(
        "unknown variable 'lead.frist_name' (did you mean 'first_name'?)"
    )
    assert errors["nurture.templates.benchmark.text"].startswith("does not compile: ")
    assert api.get("/api/v1/contracts").json() == [], "nothing half-stored"
