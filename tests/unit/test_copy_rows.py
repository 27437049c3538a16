"""The ``COPY`` text of a lead import's rows (:func:`baton.store.bulk.copy_table_text`),
built column by column with a plain column taken as it is, is exactly the text of
every field escaped one by one; a value it does not write sends the rows the usual way."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import JSON, Boolean, Column, Integer, MetaData, String, Table

from baton.store.bulk import _COPY_NULL, _copy_text, copy_table_text, encode_json
from baton.store.types import UtcDateTime

TABLE = Table(
    "people",
    MetaData(),
    Column("id", Integer, primary_key=True),
    Column("name", String(100)),
    Column("consent", Boolean),
    Column("at", UtcDateTime),
    Column("attributes", JSON),
)
AWKWARD = st.text(alphabet=st.sampled_from('ab é"\\,{}\t\n\r\x01\u2028'), max_size=6)
moments = st.datetimes(
    min_value=datetime(1970, 1, 2), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
)
rows = st.lists(
    st.fixed_dictionaries(
        {
            "id": st.integers(min_value=1, max_value=2**62),
            "name": st.none() | AWKWARD | st.sampled_from(["Ana", "Ben"]),
            "consent": st.none() | st.booleans(),
            "at": st.none() | moments,
            "attributes": st.dictionaries(AWKWARD, st.none() | AWKWARD | st.integers(), max_size=2),
        }
    ),
    min_size=1,
    max_size=6,
)


def _field(name: str, value: Any) -> str:
    if name == "attributes":
        return _copy_text(encode_json(value))
    if value is None:
        return _COPY_NULL
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, datetime):
        return value.isoformat()
    return _copy_text(str(value))


@given(rows)
def test_the_copy_text_is_every_field_escaped_one_by_one(people: list[dict[str, Any]]) -> None:
    names = list(people[0])  # the columns: the first row's keys, in their order
    expected = "".join(
        "\t".join(_field(name, person[name]) for name in names) + "\n" for person in people
    )
    assert copy_table_text(TABLE, people) == expected


def test_values_it_does_not_write_leave_the_rows_to_the_insert() -> None:
    at = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
    person = {"id": 1, "name": "Ana", "consent": True, "at": at, "attributes": {}}
    assert copy_table_text(TABLE, [person]) is not None
    assert copy_table_text(TABLE, [{**person, "at": at.replace(tzinfo=None)}]) is None
    assert copy_table_text(TABLE, [{**person, "id": 1.5}]) is None
    assert copy_table_text(TABLE, [person, {**person, "name": 7}]) is None
