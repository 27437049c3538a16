"""The contract's ``nurture`` section: every mistake is a problem naming its path when
the contract is validated (delays out of bounds, touch caps, unknown templates,
sequences and reason codes, templates that do not compile or use unknown variables),
the example's section reads back as written, and the diff says what changed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from baton.domain.contract import ContractError, diff_contracts, parse_contract
from baton.domain.nurture_rules import NurtureSection, describe_sequence

EXAMPLE = Path(__file__).parents[2] / "contracts" / "example.yaml"


def with_nurture(nurture: dict[str, object]) -> str:
    """The example contract with its nurture section replaced."""
    data = yaml.safe_load(EXAMPLE.read_text())
    data["nurture"] = nurture
    return yaml.safe_dump(data, sort_keys=False)


def problems(text: str) -> list[str]:
    with pytest.raises(ContractError) as refused:
        parse_contract(text)
    return refused.value.problems


SIMPLE_TEMPLATE = {"subject": "Hello", "text": "Hi {{ lead.first_name | default('there') }}"}


def section(**overrides: object) -> dict[str, object]:
    base: dict[str, object] = {
        "sequences": {"slow": {"steps": [{"template": "hello", "delay_days": 7}]}},
        "templates": {"hello": SIMPLE_TEMPLATE},
    }
    base.update(overrides)
    return base


def test_the_example_section_reads_as_written() -> None:
    nurture = parse_contract(EXAMPLE.read_text()).nurture

    assert list(nurture.sequences) == ["not-ready", "wrong-contact"]
    assert (nurture.delay_days.min, nurture.delay_days.max) == (6, 45)
    assert nurture.touch_cap("not-ready") == 6
    assert nurture.sequence_for_reason("not_ready") == "not-ready"
    assert nurture.sequence_for_reason("out_of_area") is None
    assert nurture.sequence_for_tags(["VIP", "Cold"]) == "not-ready"
    assert len(nurture.templates) == 4
    step = nurture.sequences["not-ready"].steps[1]
    assert step.when is not None and step.when.grades == ["A", "B"]
    assert step.when.applies(grade="A", source="webinar", country="US")
    assert not step.when.applies(grade="C", source="webinar", country="US")
    assert "unsubscribe" in nurture.sequences["wrong-contact"].exits


def test_a_contract_without_the_section_enrolls_nobody() -> None:
    text = re.sub(r"\nnurture:.*", "\n", EXAMPLE.read_text(), flags=re.S)
    nurture = parse_contract(text).nurture

    assert nurture == NurtureSection()
    assert nurture.sequences == {} and nurture.max_touches == 10
    assert (nurture.delay_days.min, nurture.delay_days.max) == (6, 45)


def test_delays_must_respect_the_contracts_bounds() -> None:
    found = problems(
        with_nurture(
            section(
                sequences={
                    "slow": {
                        "steps": [
                            {"template": "hello", "delay_days": 3},
                            {"template": "hello", "delay_days": 50},
                            {"template": "hello", "delay_days": 20},
                        ]
                    }
                }
            )
        )
    )

    assert found == [
        "nurture.sequences.slow.steps[0].delay_days: 3 is outside the contract's bounds "
        "6..45 days (nurture.delay_days)",
        "nurture.sequences.slow.steps[1].delay_days: 50 is outside the contract's bounds "
        "6..45 days (nurture.delay_days)",
    ]


@pytest.mark.parametrize(
    ("bounds", "expected"),
    [
        ({"min": 0, "max": 45}, "nurture.delay_days.min:"),
        ({"min": 6, "max": 400}, "nurture.delay_days.max:"),
        ({"min": 30, "max": 10}, "nurture.delay_days: min 30 is greater than max 10"),
    ],
)
def test_the_bounds_themselves_lie_within_a_year(bounds: dict[str, int], expected: str) -> None:
    found = problems(with_nurture(section(delay_days=bounds)))

    assert any(line.startswith(expected) for line in found), found


def test_a_sequence_cannot_send_more_than_the_global_cap() -> None:
    text = with_nurture(
        section(
            max_touches=5,
            sequences={
                "slow": {"max_touches": 8, "steps": [{"template": "hello", "delay_days": 7}]}
            },
        )
    )

    assert problems(text) == [
        "nurture.sequences.slow.max_touches: 8 is more than nurture.max_touches 5"
    ]


def test_unknown_names_are_named_with_a_suggestion() -> None:
    text = with_nurture(
        section(
            sequences={"slow": {"steps": [{"template": "helo", "delay_days": 7}]}},
            enroll={
                "rejection_reasons": {"not_redy": "slow", "no_budget": "slow", "not_ready": "slo"},
                "tags": {"cold": "fast"},
            },
        )
    )

    found = problems(text)

    assert found[0] == (
        "nurture.sequences.slow.steps[0].template: unknown template 'helo' (did you mean "
        "'hello'?); use one of hello"
    )
    assert found[1].startswith(
        "nurture.enroll.rejection_reasons.not_redy: unknown rejection reason 'not_redy' "
        "(did you mean 'not_ready'?); use a recycle reason: not_ready, wrong_contact"
    )
    assert found[2] == (
        "nurture.enroll.rejection_reasons.no_budget: reason 'no_budget' has outcome "
        "disqualify; only a recycle reason sends a lead back to marketing"
    )
    assert found[3].startswith(
        "nurture.enroll.rejection_reasons.not_ready: unknown sequence 'slo' (did you mean 'slow'?)"
    )
    assert found[4].startswith("nurture.enroll.tags.cold: unknown sequence 'fast'")
    assert len(found) == 5


@pytest.mark.parametrize(
    ("part", "source", "expected"),
    [
        ("html", "<p>Hi {{ lead.frist_name }}</p>", "unknown variable 'lead.frist_name' (did"),
        ("text", "Hi {{ first_name }}", "unknown variable 'first_name'"),
        ("text", "{{ rep.phone }}", "unknown variable 'rep.phone'"),
        ("text", "{{ lead.attributes.industry }}", "lead.attributes.industry needs a fallback"),
        ("text", "{% if lead.first_name %}Hi", "does not compile: "),
        ("text", "{{ lead.first_name | nosuchfilter }}", "does not compile: "),
        ("text", "Call {{ rep.name }}", "fails for a lead with no fields and no rep"),
        ("subject", "Hi\n{{ lead.first_name }}", "must be one line"),
        ("subject", "{{ 'x' * 300 }}", "renders longer than 200 characters"),
        ("text", "{{ lead.__class__ }}", "unknown variable 'lead.__class__'"),
        ("text", "{{ ''.__class__.__mro__ }}", "fails for a lead with every field"),
        # Nothing a template does may take the server's memory or time, here or at send.
        ("text", "{{ 'x' * 10**9 }}", "repeating builds more than 10,000 characters"),
        ("text", "{{ 10**10**10 }}", "powers are limited to small numbers"),
        ("text", "{{ '{:>999999999}'.format(1) }}", "attribute 'format' of 'str' object is unsafe"),
        ("text", "{{ 'x'.rjust(10**9) }}", "attribute 'rjust' of 'str' object is unsafe"),
        ("text", "{{ '%0*d' % (10**9, 1) }}", "%-formatting text is not allowed"),
        ("text", "{{ 'x' | center(10**9) }}", "No filter named 'center'"),
        ("html", "{{ lead.company | safe }}", "No filter named 'safe'"),
        ("text", "{{ range(10**6) | list }}", "range is limited to 1,000 numbers"),
        ("text", "{{ lipsum(10**6) }}", "unknown variable 'lipsum'"),
        (
            "text",
            "{% for a in range(1000) %}{% for b in range(1000) %}{{ 'x' * 99 }}"
            "{% endfor %}{% endfor %}",
            "renders more than 1,000,000 characters",
        ),
        (
            "text",
            "{% for a in [1] %}{% for b in [1] %}{% for c in [1] %}{% endfor %}{% endfor %}"
            "{% endfor %}",
            "loops may be nested at most 2 deep",
        ),
    ],
)
def test_a_bad_template_fails_validation_naming_the_part(
    part: str, source: str, expected: str
) -> None:
    template = {**SIMPLE_TEMPLATE, part: source}

    found = problems(with_nurture(section(templates={"hello": template})))

    assert found[0].startswith(f"nurture.templates.hello.{part}: "), found
    assert expected in found[0], found


def test_fallbacks_and_guards_pass_validation() -> None:
    template = {
        "subject": "{{ lead.first_name | default('Hello') }}, one idea",
        "text": (
            "Hi {{ lead.first_name | default('there') }} at {{ lead.company }},\n"
            "{% if rep %}{{ rep.first_name }} says hi.{% endif %}\n"
            "{{ lead.attributes.industry | default('your industry') }} "
            "{{ lead.attributes.get('size') }}\n"
            "{% for item in ['a', 'b'] %}{{ loop.index }}{{ item }}{% endfor %}\n"
            "{% macro sign(name) %}-- {{ name }}{% endmacro %}{{ sign('Maria') }}\n"
            "{{ '-' * 20 }} {{ 2 ** 8 }} {{ 7 % 3 }} {% for i in range(3) %}{{ i }}{% endfor %}\n"
            "{{ unsubscribe_url }}"
        ),
        "html": "<a href='{{ unsubscribe_url }}'>Unsubscribe</a>",
    }

    contract = parse_contract(with_nurture(section(templates={"hello": template})))

    assert "hello" in contract.nurture.templates


def test_unknown_keys_in_the_section_are_named_with_the_allowed_ones() -> None:
    text = with_nurture(
        section(
            sequences={"slow": {"stepz": [], "steps": [{"template": "hello", "delay_days": 7}]}}
        )
    )

    found = problems(text)

    assert found[0].startswith("nurture.sequences.slow.stepz: unknown key 'stepz' (did you mean")
    assert "allowed: description, max_touches, exit_on, steps" in found[0]


def test_the_diff_says_what_changed_in_words() -> None:
    old = parse_contract(EXAMPLE.read_text())
    new = parse_contract(
        EXAMPLE.read_text()
        .replace("{template: benchmark, delay_days: 21}", "{template: benchmark, delay_days: 28}")
        .replace("tags: {cold: not-ready}", "tags: {cold: not-ready, dormant: wrong-contact}")
        .replace("send_rate_per_minute: 120", "send_rate_per_minute: 60")
    )

    changes = [(c.section, c.text) for c in diff_contracts(old, new)]

    assert ("nurture", "send_rate_per_minute 120 → 60") in changes
    assert ("nurture.enroll", "tag dormant now enrolls into wrong-contact") in changes
    [sequence] = [text for section_, text in changes if section_ == "nurture.sequences"]
    assert "3. after 28 days: benchmark" in sequence
    assert describe_sequence(new.nurture, "wrong-contact").startswith(
        "2 step(s), at most 2 emails: 1. after 7 days: right-person"
    )
