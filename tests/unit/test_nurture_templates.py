"""Rendering a nurture template for one lead: personal fields with fallbacks, html
escaped and text not, every link through the hook (and listed once), the unsubscribe
URL left alone, a one-line subject, and the sandbox holding at render time."""

from __future__ import annotations

from pathlib import Path

import pytest

from baton.domain.contract import parse_contract
from baton.domain.nurture_rules import NurtureTemplate
from baton.notify.nurture_templates import (
    TemplateContext,
    TemplateRenderError,
    lead_context,
    render_step,
    rep_context,
)

EXAMPLE = Path(__file__).parents[2] / "contracts" / "example.yaml"
UNSUBSCRIBE = "https://baton.example/u/abc"


def context(rep: bool = True, **lead: object) -> TemplateContext:
    return TemplateContext(
        lead=lead_context(lead),
        rep=rep_context("Sam Becker", "sam@lumen.example") if rep else None,
        unsubscribe_url=UNSUBSCRIBE,
    )


def clicks(url: str) -> str:
    return f"https://baton.example/c/{len(url)}?u={url}&sig=x"


def test_every_example_template_renders_for_a_full_and_an_empty_lead() -> None:
    nurture = parse_contract(EXAMPLE.read_text()).nurture
    full = context(
        first_name="Ana",
        company="Acme",
        title="CFO",
        email="ana@acme.example",
        attributes={"industry": "logistics firm"},
    )
    empty = context(rep=False)

    for name, template in nurture.templates.items():
        for ctx in (full, empty):
            email = render_step(template, ctx, link=clicks, name=name)
            assert email.subject and "None" not in email.subject
            assert "None" not in email.text
            assert UNSUBSCRIBE in email.text
            assert "\n" not in email.subject

    check_in = render_step(nurture.templates["check-in"], full, link=clicks)
    assert check_in.subject == "Ana, a quick thought for Acme"
    assert check_in.text.startswith("Hi Ana,\n\nSam mentioned the timing wasn't right for Acme")
    fallback = render_step(nurture.templates["check-in"], empty, link=clicks)
    assert fallback.subject == "Hi, a quick thought for your team"
    assert fallback.text.startswith("Hi there,\n\nI understand the timing")


def test_links_go_through_the_hook_and_come_back_once_each() -> None:
    template = NurtureTemplate(
        subject="Links",
        text=(
            "Read https://lumen.example/guide, then https://lumen.example/pricing?plan=team.\n"
            "Again: (https://lumen.example/guide) and leave: {{ unsubscribe_url }}\n"
        ),
        html=(
            '<a href="https://lumen.example/pricing?plan=team&amp;y=1">Pricing</a>'
            "<a href='https://lumen.example/guide'>Guide</a>"
            '<a href="mailto:maria@lumen.example">Mail</a>'
            '<a href="{{ unsubscribe_url }}">Unsubscribe</a>'
        ),
    )

    email = render_step(template, context(), link=clicks)

    assert email.links == [
        "https://lumen.example/guide",
        "https://lumen.example/pricing?plan=team",
        "https://lumen.example/pricing?plan=team&y=1",
    ]
    assert "https://baton.example/c/27?u=https://lumen.example/guide&sig=x, then" in email.text
    assert "plan=team&sig=x." in email.text  # the full stop stays outside the URL
    assert "(https://baton.example/c/27?u=https://lumen.example/guide&sig=x)" in email.text
    assert f"leave: {UNSUBSCRIBE}" in email.text
    assert email.html is not None
    assert (
        'href="https://baton.example/c/43?u=https://lumen.example/pricing?plan=team&amp;y=1&amp;sig=x"'
        in (email.html)
    )
    assert 'href="mailto:maria@lumen.example"' in email.html
    assert f'href="{UNSUBSCRIBE}"' in email.html


def test_html_escapes_lead_data_and_text_does_not() -> None:
    template = NurtureTemplate(
        subject="For {{ lead.company }}",
        text="Hello {{ lead.company }}",
        html="<p>Hello {{ lead.company }}</p>",
    )

    email = render_step(template, context(company='Smith & <b>Sons</b> "Ltd"'))

    assert email.subject == 'For Smith & <b>Sons</b> "Ltd"'
    assert email.text == 'Hello Smith & <b>Sons</b> "Ltd"'
    assert email.html == "<p>Hello Smith &amp; &lt;b&gt;Sons&lt;/b&gt; &#34;Ltd&#34;</p>"


def test_a_subject_is_one_line_of_at_most_200_characters_whatever_the_data() -> None:
    template = NurtureTemplate(subject="Hi {{ lead.company }}", text="x")

    email = render_step(template, context(company="Acme\r\nBcc: victim@example.com " + "x" * 300))

    assert "\n" not in email.subject and "\r" not in email.subject
    assert email.subject.startswith("Hi Acme Bcc: victim@example.com x")
    assert len(email.subject) == 200


def test_the_sandbox_refuses_unsafe_access_at_render_time() -> None:
    # A template validated in the contract never gets here; this one was not.
    template = NurtureTemplate(subject="x", text="{{ lead.attributes.__class__.__mro__ }}")

    with pytest.raises(TemplateRenderError) as refused:
        render_step(template, context(), name="evil")

    assert refused.value.problems[0].loc == "nurture.templates.evil.text"


def test_a_missing_attribute_with_a_fallback_and_an_absent_rep() -> None:
    template = NurtureTemplate(
        subject="{{ lead.attributes.industry | default('Your team') }}",
        text="{% if rep %}{{ rep.first_name }}{% else %}our team{% endif %}",
    )

    with_rep = render_step(template, context(attributes={"industry": "Freight"}))
    without = render_step(template, context(rep=False))

    assert (with_rep.subject, with_rep.text) == ("Freight", "Sam")
    assert (without.subject, without.text) == ("Your team", "our team")
