"""Re-scoring computes engagement in SQL (one grouped query per rule); it must give
the same state as folding the events in Python, on SQLite and PostgreSQL."""

from __future__ import annotations

import math
import uuid
from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from baton.domain.access import operator
from baton.domain.contract import HandoffContract
from baton.domain.scoring import Event, engagement_state
from baton.services.activities import ingest_activities
from baton.services.context import Context
from baton.services.scoring import _engagement_states_sql, engagement_states

FILTERS = [
    {},
    {"url": "/pricing"},
    {"url": {"contains": "PROD"}},
    {"flag": "true"},
    {"n": "3"},
]
RULES = st.lists(
    st.fixed_dictionaries(
        {
            "event": st.sampled_from(["page_view", "email_click"]),
            "where": st.sampled_from(FILTERS),
            "points": st.integers(-20, 40),
            "half_life_days": st.none() | st.sampled_from([0.5, 7, 30.5]),
        }
    ),
    min_size=1,
    max_size=4,
)
PROPS = st.sampled_from(
    [
        {"url": "/pricing"},
        {"url": " /Pricing "},
        {"url": "/product/x"},
        {"url": None},
        {"flag": True},
        {"flag": False},
        {"n": 3},
        {"n": 3.5},
        {},
    ]
)
EVENTS = st.lists(
    st.tuples(
        st.integers(0, 2),
        st.sampled_from(["page_view", "email_click", "email_open"]),
        st.integers(0, 120 * 86400),
        PROPS,
    ),
    max_size=30,
)


@settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rules=RULES, events=EVENTS)
def test_sql_states_equal_python_states(
    ctx: Context, rules: list[dict[str, Any]], events: list[tuple[int, str, int, Any]]
) -> None:
    contract = HandoffContract.model_validate(
        {
            "schema_version": 1,
            "name": "t",
            "mql": {"threshold": 1},
            "scoring": {"engagement": rules},
        }
    )
    tag = uuid.uuid4().hex[:8]
    now = ctx.clock.now()
    rows = [
        {
            "email": f"p{person}-{tag}@northwind.com",
            "type": kind,
            "occurred_at": (now - timedelta(seconds=age)).isoformat(),
            "properties": props,
        }
        for person, kind, age, props in events
    ]
    report = ingest_activities(ctx, rows, actor=operator("t"), return_ids=True)
    assert not report.errors
    lead_ids = sorted({i for i in report.lead_ids if i is not None})
    if not lead_ids:
        return
    with ctx.read() as connection:
        from_sql = _engagement_states_sql(connection, contract, lead_ids[0], lead_ids[-1])
        either = engagement_states(connection, contract, lead_ids[0], lead_ids[-1])
    assert from_sql is not None
    assert either == from_sql
    for lead_id in lead_ids:
        mine = [
            Event(kind, now - timedelta(seconds=age), props)
            for (person, kind, age, props), owner in zip(events, report.lead_ids, strict=True)
            if owner == lead_id
        ]
        expected = engagement_state(contract, mine)
        got = from_sql.get(lead_id, {})
        assert set(got) == set(expected), (got, expected)
        for key, (value, as_of, count) in expected.items():
            assert got[key][2] == count
            assert math.isclose(got[key][1], as_of, abs_tol=1e-3)
            assert math.isclose(got[key][0], value, rel_tol=1e-9, abs_tol=1e-9)
