"""The contract format: the example parses, and each broken contract is refused with
the exact path and a message that says what is allowed."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from baton.domain.contract import ContractError, diff_contracts, parse_contract

EXAMPLE = Path(__file__).parents[2] / "contracts" / "example.yaml"

MINIMAL = {"schema_version": 1, "name": "Test", "mql": {"threshold": 50}}


def contract_text(**changes: object) -> str:
    data = {**MINIMAL, **changes}
    return yaml.safe_dump(data, sort_keys=False)


def problems(text: str) -> list[str]:
    with pytest.raises(ContractError) as caught:
        parse_contract(text)
    return caught.value.problems


def test_the_example_contract_is_valid_and_complete() -> None:
    contract = parse_contract(EXAMPLE.read_text())

    assert contract.mql.threshold == 60
    assert {r.when.model_dump().get("email_domain") for r in contract.scoring.fit} >= {
        "free_mail",
        "disposable",
        "competitor",
    }
    assert [i.id for i in contract.prep_checklist if i.required] == [
        "use_case_noted",
        "company_size_confirmed",
    ]
    assert contract.mql.hand_raise


BROKEN = [
    (
        "misspelled field",
        {
            "scoring": {
                "fit": [
                    {"when": {"field": "email"}, "points": 1},
                    {"when": {"field": "email"}, "points": 1},
                    {"when": {"field": "titel", "regex": "vp"}, "points": 5},
                ]
            }
        },
        "scoring.fit[2].when.field: unknown field 'titel' (did you mean 'title'?)",
    ),
    (
        "misspelled key",
        {"mql": {"threshhold": 60}},
        "mql.threshhold: unknown key 'threshhold' (did you mean 'threshold'?)",
    ),
    ("missing threshold", {"mql": {}}, "mql.threshold: is required"),
    (
        "two operators",
        {
            "scoring": {
                "fit": [{"when": {"field": "title", "equals": "CEO", "regex": "x"}, "points": 1}]
            }
        },
        "scoring.fit[0].when: give exactly one operator: equals, in, regex, min/max or exists"
        " (found equals, regex)",
    ),
    (
        "no operator",
        {"scoring": {"fit": [{"when": {"field": "title"}, "points": 1}]}},
        "scoring.fit[0].when: give exactly one operator",
    ),
    (
        "condition without subject",
        {"scoring": {"fit": [{"when": {"emial_domain": "free_mail"}, "points": 1}]}},
        "scoring.fit[0].when: a condition needs 'field' or 'email_domain'",
    ),
    (
        "unknown email class",
        {"scoring": {"fit": [{"when": {"email_domain": "freemail"}, "points": 1}]}},
        "scoring.fit[0].when.email_domain: 'freemail' is not allowed (did you mean 'free_mail'?)",
    ),
    (
        "bad regex",
        {"scoring": {"fit": [{"when": {"field": "title", "regex": "(vp"}, "points": 1}]}},
        "scoring.fit[0].when.regex: invalid regular expression",
    ),
    (
        "unknown event type",
        {"scoring": {"engagement": [{"event": "page_veiw", "points": 3}]}},
        "scoring.engagement[0].event: unknown event type 'page_veiw' (did you mean 'page_view'?)",
    ),
    (
        "misspelled property operator",
        {
            "scoring": {
                "engagement": [
                    {"event": "page_view", "where": {"url": {"containz": "x"}}, "points": 3}
                ]
            }
        },
        "scoring.engagement[0].where.url.containz: unknown key 'containz'"
        " (did you mean 'contains'?)",
    ),
    (
        "negative half-life",
        {"scoring": {"engagement": [{"event": "page_view", "points": 3, "half_life_days": -2}]}},
        "scoring.engagement[0].half_life_days: Input should be greater than 0",
    ),
    (
        "grades out of order",
        {"scoring": {"grades": {"A": 10, "B": 20, "C": 5}}},
        "scoring.grades: grades must satisfy A >= B >= C (got 10, 20, 5)",
    ),
    (
        "range upside down",
        {
            "scoring": {
                "fit": [
                    {"when": {"field": "attributes.employees", "min": 500, "max": 50}, "points": 1}
                ]
            }
        },
        "scoring.fit[0].when: min 500.0 is greater than max 50.0",
    ),
    (
        "unknown required field",
        {"mql": {"threshold": 5, "required_fields": ["compnay"]}},
        "mql.required_fields: unknown field 'compnay' (did you mean 'company'?)",
    ),
    (
        "unknown minimum grade",
        {"mql": {"threshold": 5, "min_grade": "E"}},
        "mql.min_grade: 'E' is not allowed; use one of A, B, C, D",
    ),
    (
        "duplicate prep item",
        {"prep_checklist": [{"id": "slot", "label": "a"}, {"id": "slot", "label": "b"}]},
        "prep_checklist: id 'slot' is used twice",
    ),
    ("future schema", {"schema_version": 2}, "schema_version: unsupported schema_version"),
]


@pytest.mark.parametrize(("case", "changes", "expected"), BROKEN, ids=[b[0] for b in BROKEN])
def test_a_broken_contract_names_the_path_and_the_fix(
    case: str, changes: dict[str, object], expected: str
) -> None:
    found = problems(contract_text(**changes))

    assert any(line.startswith(expected) for line in found), found


def test_yaml_syntax_errors_give_the_line() -> None:
    found = problems("schema_version: 1\nname: [unclosed\nmql: {threshold: 1}\n")

    assert len(found) == 1
    assert found[0].startswith("line ")
    assert "not valid YAML" in found[0]


def test_a_contract_must_be_a_mapping() -> None:
    assert problems("- just\n- a list\n") == [
        "(contract): the file must be a YAML mapping of sections"
    ]


def test_every_problem_is_reported_at_once() -> None:
    found = problems(
        contract_text(
            mql={"threshhold": 1},
            scoring={"engagement": [{"event": "nope", "points": 1}]},
        )
    )

    assert len(found) >= 3


def test_diff_describes_changes_in_words() -> None:
    old = parse_contract(EXAMPLE.read_text())
    data = yaml.safe_load(EXAMPLE.read_text())
    data["mql"]["threshold"] = 70
    data["scoring"]["fit"] = [r for r in data["scoring"]["fit"] if r["name"] != "Student"]
    data["scoring"]["fit"][0]["points"] = 25
    data["scoring"]["engagement"].append({"event": "trial_signup", "points": 20})
    new = parse_contract(yaml.safe_dump(data))

    texts = [c.text for c in diff_contracts(old, new)]

    assert "threshold 60 → 70" in texts
    assert "rule removed: Student (-30)" in texts
    assert "rule changed: Decision-maker title: points +20 → +25" in texts
    assert "rule added: trial_signup (+20)" in texts
    assert diff_contracts(old, old) == []


def test_yaml_aliases_are_refused_so_a_small_file_cannot_explode() -> None:
    bomb = (
        'a: &a ["x","x","x","x","x","x","x","x","x","x"]\n'
        "b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
        "schema_version: 1\nname: bomb\nmql: {threshold: 1, min_grade: *b}\n"
    )
    (line,) = problems(bomb)
    assert "aliases (*name) are not allowed" in line


def test_deep_nesting_is_a_contract_error_not_a_crash() -> None:
    (line,) = problems("[" * 5000)
    assert "nested too deeply" in line or "not valid YAML" in line


def test_long_bad_values_are_shortened_in_messages() -> None:
    found = problems(contract_text(mql={"threshold": 1, "min_grade": "Z" * 5000}))
    assert all(len(line) < 300 for line in found), found


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        (
            {"mql": {"threshold": 1, "required_fields": ["attributes."]}},
            "mql.required_fields: name the attribute",
        ),
        (
            {"scoring": {"fit": [{"when": {"field": "country", "in": []}, "points": 1}]}},
            "scoring.fit[0].when.in:",
        ),
        (
            {"scoring": {"fit": [{"when": {"field": "country", "equals": [1, 2]}, "points": 1}]}},
            "scoring.fit[0].when.equals: must be text, a number, or true/false",
        ),
        (
            {"mql": {"threshold": 7.5}},
            "mql.threshold: must be a whole number",
        ),
        (
            {"sla": {"business_hours": "sometimes"}},
            "sla.business_hours: must be true or false",
        ),
    ],
    ids=["empty attribute", "empty in-list", "list as a value", "fraction", "not a bool"],
)
def test_more_broken_contracts(changes: dict[str, object], expected: str) -> None:
    found = problems(contract_text(**changes))
    assert any(line.startswith(expected) for line in found), found


def test_diff_sees_prep_and_list_changes_and_never_claims_no_change() -> None:
    data = yaml.safe_load(EXAMPLE.read_text())
    old = parse_contract(yaml.safe_dump(data))
    data["prep_checklist"][2]["required"] = True
    data["scoring"]["disposable_domains"].append("junk.example.org")
    new = parse_contract(yaml.safe_dump(data))
    texts = [c.text for c in diff_contracts(old, new)]
    assert "item Budget owner known: now required" in texts
    assert "disposable domain added: junk.example.org" in texts

    data["scoring"]["fit"][0]["when"]["regex"] = "(?i)vp"
    changed = parse_contract(yaml.safe_dump(data))
    assert [c.text for c in diff_contracts(new, changed)] == [
        "rule changed: Decision-maker title: settings changed"
    ]
