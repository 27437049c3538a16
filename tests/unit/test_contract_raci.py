"""The contract's RACI section: every step present, exactly one accountable, at least
one responsible, unknown names refused with the closest known one; old contracts
without it still load (with a warning); the diff says who changed."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from baton.domain.contract import (
    RACI_MISSING,
    RACI_STEPS,
    ContractError,
    HandoffContract,
    contract_warnings,
    diff_contracts,
    line_of,
    parse_contract,
)

EXAMPLE = Path(__file__).parents[2] / "contracts" / "example.yaml"
MINIMAL: dict[str, Any] = {"schema_version": 1, "name": "Test", "mql": {"threshold": 50}}


def full_raci() -> dict[str, Any]:
    steps = {s: {"responsible": ["marketing"], "accountable": "marketing"} for s in RACI_STEPS}
    return {"teams": {"revops": "Revenue operations"}, **steps}


def text(raci: Any) -> str:
    return yaml.safe_dump({**MINIMAL, "raci": raci}, sort_keys=False)


def problems(raci: Any) -> list[str]:
    with pytest.raises(ContractError) as caught:
        parse_contract(text(raci))
    return caught.value.problems


def test_the_example_agrees_every_step_with_one_accountable() -> None:
    contract = parse_contract(EXAMPLE.read_text())

    assert contract.raci is not None
    for step in RACI_STEPS:
        assignment = contract.raci.step(step)
        assert assignment.responsible and assignment.accountable
    assert contract.raci.routing.responsible == ["revops"]
    assert contract.raci.party_label("revops").startswith("Revenue operations")
    assert contract_warnings(contract) == []


def test_a_contract_without_raci_loads_and_is_flagged_not_agreed() -> None:
    contract = parse_contract(yaml.safe_dump(MINIMAL))

    assert contract.raci is None
    assert contract_warnings(contract) == [RACI_MISSING]
    # A version stored before the section existed (its spec has no "raci" key) loads too.
    stored = contract.model_dump(mode="json", by_alias=True)
    del stored["raci"]
    assert HandoffContract.model_validate(stored).raci is None


def test_every_step_must_be_present() -> None:
    raci = full_raci()
    del raci["first_touch"]

    assert problems(raci) == ["raci.first_touch: is required"]


def test_exactly_one_accountable() -> None:
    raci = full_raci()
    raci["verdict"]["accountable"] = ["rep", "sales_manager"]
    raci["mql"]["accountable"] = []
    del raci["scoring"]["accountable"]

    found = problems(raci)

    assert (
        "raci.verdict.accountable: name exactly one accountable party (found 2: rep, "
        "sales_manager)" in found
    )
    assert "raci.mql.accountable: name exactly one accountable party" in found
    assert "raci.scoring.accountable: is required" in found


def test_a_one_item_list_or_a_single_name_is_fine() -> None:
    raci = full_raci()
    raci["verdict"] = {"responsible": "rep", "accountable": ["sales_manager"], "informed": "sales"}

    contract = parse_contract(text(raci))

    assert contract.raci is not None
    assert contract.raci.verdict.responsible == ["rep"]
    assert contract.raci.verdict.accountable == "sales_manager"
    assert contract.raci.verdict.informed == ["sales"]


def test_at_least_one_responsible_and_no_name_twice() -> None:
    raci = full_raci()
    raci["routing"]["responsible"] = []
    raci["recycle"]["consulted"] = ["rep", "rep"]

    found = problems(raci)

    assert "raci.routing.responsible: name at least one responsible party" in found
    assert "raci.recycle.consulted: 'rep' is listed twice" in found


def test_unknown_names_get_a_did_you_mean_at_their_exact_place() -> None:
    raci = full_raci()
    raci["routing"]["responsible"] = ["revops", "sales_manger"]
    raci["reporting"]["accountable"] = "revop"
    raci["scoring"]["informed"] = ["nobody_at_all"]

    found = problems(raci)

    assert found[0].startswith(
        "raci.scoring.informed[0]: unknown role or team 'nobody_at_all'; use a role"
    )
    assert any(
        p.startswith(
            "raci.routing.responsible[1]: unknown role or team 'sales_manger' "
            "(did you mean 'sales_manager'?)"
        )
        for p in found
    )
    assert any(
        p.startswith(
            "raci.reporting.accountable: unknown role or team 'revop' (did you mean 'revops'?)"
        )
        for p in found
    )
    assert len(found) == 3


def test_unknown_keys_and_steps_are_suggested() -> None:
    raci = full_raci()
    raci["first_tuch"] = raci.pop("first_touch")
    raci["mql"]["acountable"] = raci["mql"].pop("accountable")

    found = problems(raci)

    assert any(
        p.startswith("raci.first_tuch: unknown key 'first_tuch' (did you mean 'first_touch'?)")
        for p in found
    )
    assert any(
        p.startswith("raci.mql.acountable: unknown key 'acountable' (did you mean 'accountable'?)")
        for p in found
    )


def test_team_names_are_checked() -> None:
    raci = full_raci()
    raci["teams"] = {"marketing": "Our marketing"}
    assert problems(raci) == [
        "raci.teams: 'marketing' is a role already; give the team another name"
    ]
    raci["teams"] = {"Rev Ops": "Revenue operations"}
    assert problems(raci) == ["raci.teams: 'Rev Ops' is not a team name (lower case, digits, _)"]


def test_the_diff_names_each_raci_change() -> None:
    base = yaml.safe_load(EXAMPLE.read_text())
    before = parse_contract(yaml.safe_dump(base, sort_keys=False))
    changed = copy.deepcopy(base)
    changed["raci"]["first_touch"]["accountable"] = "revenue_lead"
    changed["raci"]["routing"]["responsible"] = ["revops", "sales_manager"]
    changed["raci"]["reporting"]["informed"] = ["sales"]
    changed["raci"]["teams"]["sdr"] = "Sales development reps"
    after = parse_contract(yaml.safe_dump(changed, sort_keys=False))

    texts = [c.text for c in diff_contracts(before, after) if c.section == "raci"]

    assert texts == [
        "team added: sdr (Sales development reps)",
        "routing: responsible added sales_manager",
        "first_touch: accountable sales_manager → revenue_lead",
        "reporting: informed removed rep",
    ]


def test_the_diff_says_when_raci_is_agreed_or_dropped() -> None:
    with_raci = parse_contract(EXAMPLE.read_text())
    data = yaml.safe_load(EXAMPLE.read_text())
    del data["raci"]
    without = parse_contract(yaml.safe_dump(data, sort_keys=False))

    assert [c.text for c in diff_contracts(without, with_raci) if c.section == "raci"] == [
        f"RACI agreed for {len(RACI_STEPS)} steps"
    ]
    assert [c.text for c in diff_contracts(with_raci, without) if c.section == "raci"] == [
        "RACI removed (now not agreed)"
    ]
    assert diff_contracts(with_raci, with_raci) == []


def test_a_problem_path_points_at_its_line() -> None:
    body = EXAMPLE.read_text()
    lines = body.splitlines()

    def line(path: str) -> str:
        number = line_of(body, path)
        assert number is not None, path
        return lines[number - 1]

    assert line("scoring.fit[2].when.field").strip().startswith("when: {field: country")
    assert line("raci.mql.accountable").strip().startswith("mql:")
    assert line("raci.nothing_here").strip() == "raci:"
    assert line_of(body, "line 4, column 2") == 4
    assert line_of(body, "(contract)") is None
    assert line_of("key: [unclosed", "key") is None
