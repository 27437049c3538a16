"""SQLite's one pass over the activities tests each event's type once and reads a
filtered property with one ``json_extract`` where a true or false could not change the
filter's answer (``baton.services.scoring._event_rows_query``): the same outcome as
the per-lead path, also for properties that are true, false, numbers or null and for
filters whose wanted text a true or false would match or contain."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.integration.test_rescore_sets import CONTRACT, LEADS, check_one_pass

from baton.domain.contract import parse_contract
from baton.services.context import Context
from baton.services.scoring import _event_rows_query

WHERE = [
    {},
    {"url": "/pricing"},
    {"url": {"contains": "PROD"}},
    {"url": "true"},
    {"url": " False "},
    {"url": "1"},
    {"url": {"contains": "ru"}},
    {"url": {"contains": "0"}},
    {"url": {"contains": "1."}},
]
"""Filters SQLite reads cheaply (``/pricing``, ``PROD``, ``1.``) and those a true or
false could match or contain either way (as ``True``/``False`` or ``1``/``0``)."""

ENGAGEMENT = st.lists(
    st.fixed_dictionaries(
        {
            "event": st.sampled_from(["page_view", "email_click", "webinar_attended"]),
            "where": st.sampled_from(WHERE),
            "points": st.integers(-20, 40),
            "cap": st.none() | st.integers(0, 50),
            "half_life_days": st.none() | st.sampled_from([0.5, 7, 30.5]),
        }
    ),
    min_size=1,
    max_size=5,
)
PROPERTIES = [
    {"url": "/pricing"},
    {"url": " /Pricing "},
    {"url": "/product/x"},
    {"url": True},
    {"url": False},
    {"url": 1},
    {"url": 0},
    {"url": 1.5},
    {"url": "TRUE"},
    {"url": None},
    {},
]
EVENTS = st.lists(
    st.tuples(
        st.integers(0, 11),
        st.sampled_from(["page_view", "email_click", "webinar_attended", "email_open"]),
        st.integers(-3600, 200 * 86400),
        st.sampled_from(PROPERTIES),
    ),
    min_size=3,
    max_size=40,
)


@settings(
    max_examples=40,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    new=CONTRACT,
    engagement=ENGAGEMENT,
    people=LEADS,
    events=EVENTS,
    size=st.integers(1, 5),
)
def test_the_one_pass_filters_true_false_and_numbers_as_the_per_lead_path(
    sqlite_ctx: Context,
    new: dict[str, Any],
    engagement: list[dict[str, Any]],
    people: list[dict[str, Any]],
    events: list[Any],
    size: int,
) -> None:
    """Chunk by chunk, the one pass stores exactly what the per-lead path stores, with
    several rules on one event type and properties of every JSON kind."""
    check_one_pass(sqlite_ctx, {**new, "engagement": engagement}, people, events, size, 0)


EXAMPLE = Path(__file__).resolve().parents[2] / "contracts" / "example.yaml"


def test_the_one_pass_tests_the_type_once_and_parses_each_property_once_per_rule() -> None:
    """The example contract's statement: one ``CASE`` on the type (not a type test per
    rule) and one ``json_extract`` per filter of its page views, no ``json_type``
    (``/pricing`` and ``/product`` are neither matched nor contained by a true or false
    read either way)."""
    found = _event_rows_query(parse_contract(EXAMPLE.read_text()))
    assert found is not None
    sql, params = found
    assert sql.count("CASE type ") == 1
    assert "type = ?" not in sql
    assert "json_type" not in sql
    assert sql.count("json_extract(") == 2
    assert sql.count("?") == len(params) + 2  # the window's bounds


def test_a_filter_a_true_or_false_could_answer_keeps_reading_the_json_type() -> None:
    """``equals: "true"`` and ``contains: "ru"``: a true property reads as ``True`` (as
    Python's ``str`` gives it), never as ``1``."""
    text = EXAMPLE.read_text().replace("where: {url: /pricing}", "where: {url: 'true'}")
    text = text.replace("where: {url: {contains: /product}}", "where: {url: {contains: ru}}")
    found = _event_rows_query(parse_contract(text))
    assert found is not None
    assert found[0].count("json_type(properties, ?)") == 2
