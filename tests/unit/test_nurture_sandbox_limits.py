"""The nurture template sandbox bounds memory and work, whatever the template (or the
lead's own data) does: doubling a value in a loop, joining copies, ``replace``,
mutating lists, exponential macro recursion. Each is refused with a clear problem at
validation, or as a :class:`TemplateRenderError` at send time; never an exhausted
server. Also: no ``include``/``import``/``extends``/``autoescape``, no
``javascript:``/``data:`` links."""

from __future__ import annotations

import pytest

from baton.domain import nurture_rules
from baton.domain.nurture_rules import (
    NurtureSection,
    NurtureTemplate,
    nurture_problems,
    template_problems,
)
from baton.notify.nurture_templates import (
    TemplateContext,
    TemplateRenderError,
    lead_context,
    render_step,
)

BOMBS = {
    # 2**25 characters after 24 doublings: memory grows without any loop being long.
    "doubling": (
        "{% set ns = namespace(s='xx') %}{% for i in range(24) %}"
        "{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s | length }}"
    ),
    "doubling with +": (
        "{% set ns = namespace(s='xx') %}{% for i in range(24) %}"
        "{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s | length }}"
    ),
    "join of copies": "{{ ([('x' * 10000)] * 1000) | join | length }}",
    "replace": "{{ ('x' * 10000) | replace('x', 'x' * 1000) | length }}",
    "str.replace": "{{ ('x' * 10000).replace('x', 'x' * 1000) | length }}",
    "list extend": (
        "{% set l = [1, 2] %}{% for i in range(22) %}{{ l.extend(l) or '' }}{% endfor %}"
        "{{ l | length }}"
    ),
    "sum of lists": "{{ ([[1] * 1000] * 1000) | sum(start=[]) | length }}",
    "squaring": (
        "{% set ns = namespace(x=10 ** 60) %}{% for i in range(16) %}"
        "{% set ns.x = ns.x * ns.x %}{% endfor %}{{ ns.x > 0 }}"
    ),
    "bytes": "{{ ('x'.encode() * 100000000) | length }}",
    "bytes padding": "{{ ('%999999999s'.encode() % 'x'.encode()) | length }}",
    "batch fill": "{{ [1] | batch(10000000, 0) | first | length }}",
    "exponential macro": (
        "{% macro f(n) %}{% if n > 0 %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}"
        "{{ f(19) }}"
    ),
    "set block": (
        "{% set big = 'x' * 10000 %}{% set out %}{% for i in range(1000) %}"
        "{{ big }}{% endfor %}{% endset %}{{ out | length }}"
    ),
}


@pytest.mark.parametrize("name", list(BOMBS))
def test_a_template_building_too_much_is_refused_at_validation(name: str) -> None:
    problems = template_problems(BOMBS[name], "text")
    assert problems, name
    assert any(
        word in problems[0]
        for word in (
            "longer than",
            "characters",
            "steps",
            "unsafe",
            "numbers only",
            "count from",
            "digits",
        )
    ), problems


@pytest.mark.parametrize(
    ("source", "tag"),
    [
        ("{% include 'x' %}", "include"),
        ("{% import 'x' as y %}", "import"),
        ("{% from 'x' import y %}", "import"),
        ("{% extends 'x' %}", "extends"),
        ("{% autoescape false %}{{ lead.first_name }}{% endautoescape %}", "autoescape"),
    ],
)
def test_tags_reaching_other_templates_or_turning_escaping_off_are_refused(
    source: str, tag: str
) -> None:
    problems = template_problems(source, "html")
    assert problems and f"{{% {tag} %}} is not available" in problems[0], problems


@pytest.mark.parametrize(
    "html",
    [
        '<a href="javascript:alert(1)">x</a>',
        "<a href='JavaScript&#58;alert(1)'>x</a>",
        '<a href=" data:text/html;base64,PHNjcmlwdD4=">x</a>',
        '<img src="vbscript:msgbox">',
    ],
)
def test_a_link_that_is_not_http_is_refused_at_validation(html: str) -> None:
    problems = template_problems(html, "html")
    assert problems and "links only to http(s)" in problems[0], problems


def test_ordinary_links_and_mailto_pass() -> None:
    html = '<a href="https://example.com/p">p</a> <a href="mailto:hi@example.com">m</a>'
    assert template_problems(html, "html") == []


def test_lead_data_cannot_make_a_validated_template_explode_at_send() -> None:
    # Validation renders with an empty attribute; at send the lead's own (hostile)
    # data drives the loops: 90,000 turns writing 300 characters each.
    text = (
        "{% set v = lead.attributes.get('note', '') %}"
        "{% for a in v %}{% for b in v %}{{ v }}{% endfor %}{% endfor %}"
    )
    assert template_problems(text, "text") == []
    template = NurtureTemplate(subject="Hi", text=text)
    context = TemplateContext(
        lead=lead_context({"attributes": {"note": "y" * 300}}),
        rep=None,
        unsubscribe_url="https://baton.example/n/u/x",
    )
    with pytest.raises(TemplateRenderError) as caught:
        render_step(template, context, name="t")
    assert caught.value.problems[0].loc == "nurture.templates.t.text"


def test_a_lead_value_cannot_put_a_script_link_into_the_email() -> None:
    html = "<a href=\"{{ lead.attributes.site | default('https://example.com') }}\">site</a>"
    assert template_problems(html, "html") == []
    template = NurtureTemplate(subject="Hi", text="Hi", html=html)
    context = TemplateContext(
        lead=lead_context({"attributes": {"site": " JavaScript:alert(document.cookie)"}}),
        rep=None,
        unsubscribe_url="https://baton.example/n/u/x",
    )
    rendered = render_step(template, context, name="t")
    assert rendered.html is not None
    assert "javascript:" not in rendered.html.lower()
    assert rendered.links == []


def test_only_sites_the_template_names_become_click_redirects() -> None:
    """A lead's own data printed as a URL (a first name of ``https://evil…``, a site
    attribute) is never made into a signed redirect through Baton."""
    template = NurtureTemplate(
        subject="Hi",
        text="Hi {{ lead.first_name }}, see https://good.example/pricing",
        html=(
            "<p>{{ lead.first_name }}</p>"
            "<a href=\"{{ lead.attributes.site | default('https://good.example/') }}\">s</a>"
            '<a href="https://good.example/guide?a=1&amp;b=2">g</a>'
        ),
    )
    context = TemplateContext(
        lead=lead_context(
            {
                "first_name": "https://evil.example/login",
                "attributes": {"site": "https://good.example@evil.example/"},
            }
        ),
        rep=None,
        unsubscribe_url="https://baton.example/n/u/x",
    )
    rendered = render_step(template, context, link=lambda u: "TRACKED", name="t")
    assert rendered.links == [
        "https://good.example/pricing",
        "https://good.example/guide?a=1&b=2",
    ]
    assert "https://evil.example/login" in rendered.text


def test_checking_a_contract_has_one_budget_for_all_its_templates(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each template stays under the per-render budget, but a contract holding many of
    them cannot make one validation (or one draft preview) run for minutes."""
    monkeypatch.setattr(nurture_rules, "MAX_VALIDATION_OPERATIONS", 200_000, raising=False)
    heavy = "{% for i in range(1000) %}{% for j in range(60) %}{{ i }}{% endfor %}{% endfor %}"
    section = NurtureSection(
        templates={f"t{n}": NurtureTemplate(subject=f"S{n}", text=heavy) for n in range(4)}
    )
    problems = nurture_problems(section, {})
    assert problems and all("steps" in p for p in problems)
    assert not any(p.startswith("nurture.templates.t0.") for p in problems)
