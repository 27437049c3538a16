"""Routing reads no lead column outside :data:`~baton.domain.routing.ROUTED_FIELDS`.

A hand-raise reads only those columns of its lead (not the whole row), so a decision
that read another one would get nothing (``lead.get`` gives None) and could route
silently otherwise. Here every field a contract's condition may test, email classes,
and reps with territories and segments are decided on a full row whose every read is
recorded; the keys read must be routed fields, and the row cut to them must be
decided alike.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from baton.domain.business_hours import Schedule, WorkingHours
from baton.domain.contract import LEAD_FIELDS, HandoffContract
from baton.domain.routing import ROUTED_FIELDS, Rep, Rotation, route_lead
from baton.store.tables import leads

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
ATTRIBUTES = ("segment", "product", "industry")
VALUES = ("US", "de", "10115", "smb", "x", "")


class Watched(Mapping[str, Any]):
    """A lead row that records every key read."""

    def __init__(self, row: dict[str, Any]) -> None:
        self.row = row
        self.read: set[str] = set()

    def __getitem__(self, key: str) -> Any:
        self.read.add(key)
        return self.row[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.row)

    def __len__(self) -> int:
        return len(self.row)


conditions = st.one_of(
    st.builds(
        lambda field, value: {"field": field, "equals": value},
        st.sampled_from([*LEAD_FIELDS, *(f"attributes.{a}" for a in ATTRIBUTES)]),
        st.sampled_from(VALUES[:-1]),
    ),
    st.builds(
        lambda field, exists: {"field": field, "exists": exists},
        st.sampled_from([*LEAD_FIELDS, *(f"attributes.{a}" for a in ATTRIBUTES)]),
        st.booleans(),
    ),
    st.sampled_from(
        [{"email_domain": kind} for kind in ("free_mail", "role", "corporate", "competitor")]
    ),
)
rows = st.fixed_dictionaries(
    {
        **{c.name: st.sampled_from(VALUES) for c in leads.c if c.name != "attributes"},
        "attributes": st.dictionaries(st.sampled_from(ATTRIBUTES), st.sampled_from(VALUES)),
        "email": st.sampled_from(("info@gmail.com", "ana@acme.com", "bo@rival.io", "")),
    }
)
reps = st.lists(
    st.builds(
        lambda i, countries, regions, postal, segments: Rep(
            id=i,
            email=f"rep{i}@lumen.test",
            name=f"Rep {i}",
            schedule=Schedule("UTC", WorkingHours.always()),
            team="a",
            countries=frozenset(countries),
            regions=frozenset(regions),
            postal_prefixes=tuple(postal),
            segments=frozenset(segments),
        ),
        st.integers(1, 1000),
        st.lists(st.sampled_from(("US", "DE"))),
        st.lists(st.sampled_from(("de", "CA"))),
        st.lists(st.sampled_from(("101", "9"))),
        st.lists(st.sampled_from(("smb", "x"))),
    ),
    min_size=1,
    max_size=4,
    unique_by=lambda r: r.id,
)


@settings(max_examples=300, deadline=None)
@given(
    rules=st.lists(st.lists(conditions, min_size=1, max_size=3), min_size=1, max_size=3),
    row=rows,
    floor=reps,
)
def test_routing_reads_only_the_routed_fields(
    rules: list[list[dict[str, Any]]], row: dict[str, Any], floor: list[Rep]
) -> None:
    _decides_alike(rules, row, floor)


@pytest.mark.parametrize("field", [*LEAD_FIELDS, "attributes.segment"])
def test_every_field_a_condition_may_test_is_routed(field: str) -> None:
    """Each field in turn, tested by a rule of its own (the property above reaches
    the later conditions of a rule only now and then)."""
    row = {c.name: "x" for c in leads.c} | {"attributes": {"segment": "x"}}
    read = _decides_alike([[{"field": field, "equals": "x"}]], row, [_rep()])
    assert field.partition(".")[0] in read


def _rep() -> Rep:
    return Rep(
        id=1, email="rep1@lumen.test", name="Rep 1", schedule=Schedule("UTC", WorkingHours.always())
    )


def _decides_alike(
    rules: list[list[dict[str, Any]]], row: dict[str, Any], floor: list[Rep]
) -> set[str]:
    """Decide on ``row`` (recording the keys read, which must be routed fields) and on
    ``row`` cut to the routed fields, which must decide alike; returns the keys read."""
    contract = HandoffContract.model_validate(
        {
            "schema_version": 1,
            "name": "Routed fields",
            "mql": {"threshold": 50},
            "scoring": {"competitors": ["rival.io"]},
            "routing": {
                "rules": [
                    {"name": f"rule{i}", "when": when, "pool": {"team": "a"}}
                    for i, when in enumerate(rules)
                ]
            },
        }
    )
    watched = Watched(row)

    def decide(lead: Mapping[str, Any]) -> Any:
        return route_lead(
            contract,
            lead,
            lead_id=1,
            total=None,
            grade=None,
            reps=floor,
            loads={},
            rotations={"team:a": Rotation()},
            now=NOW,
        )

    decided = decide(watched)
    assert watched.read <= set(ROUTED_FIELDS)
    assert decide({k: row[k] for k in ROUTED_FIELDS}) == decided
    return watched.read
