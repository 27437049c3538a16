"""The bulk writer's fast conversions give exactly the text of the plain ones they
replace: PostgreSQL array literals joined in one step, and ``COPY`` lines escaped only
where a field needs it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from baton.store.bulk import (
    _COPY_NULL,
    ActivityRow,
    _copy_text,
    _pg_array_each,
    copy_lines,
    encode_json,
    pg_array,
)

AWKWARD = st.text(alphabet=st.sampled_from('ab é"\\,{}\t\n\r\x01\u2028NUL'), max_size=6)
"""Texts made of the characters array literals and COPY escape, and a few others."""
moments = st.datetimes(
    min_value=datetime(1970, 1, 2), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
)


@given(
    st.one_of(
        st.lists(st.integers(min_value=-(2**63), max_value=2**63 - 1)),
        st.lists(st.text()),
        st.lists(AWKWARD),
        st.lists(st.one_of(st.none(), st.integers(), AWKWARD, moments)),
    )
)
def test_array_literals_joined_at_once_are_the_literals_written_one_by_one(
    values: list[Any],
) -> None:
    assert pg_array(values) == _pg_array_each(values)


def _copy_lines_one_by_one(rows: list[ActivityRow]) -> str:
    """The plain way: every text field through ``_copy_text``, each time written out."""
    lines = []
    for lead, kind, occurred, received, properties, key, by, occurred_text in rows:
        when = occurred.isoformat() if occurred_text is None else occurred_text + "+00"
        lines.append(
            f"{lead}\t{_copy_text(kind)}\t{when}\t{received.isoformat()}"
            f"\t{_copy_text(encode_json(properties))}"
            f"\t{_COPY_NULL if key is None else _copy_text(key)}"
            f"\t{_COPY_NULL if by is None else _copy_text(by)}\n"
        )
    return "".join(lines)


json_values = st.none() | st.booleans() | st.integers() | AWKWARD | st.text()
received_at = datetime(2026, 12, 1, tzinfo=UTC)


@st.composite
def activity_rows(draw: st.DrawFn) -> ActivityRow:
    occurred = draw(moments)
    return ActivityRow(
        draw(st.integers(min_value=1, max_value=10**9)),
        draw(st.sampled_from(["page_view", "email_open"]) | AWKWARD),
        occurred,
        draw(st.sampled_from([received_at, received_at + timedelta(seconds=1)])),
        draw(st.dictionaries(AWKWARD | st.text(), json_values, max_size=3)),
        draw(st.none() | AWKWARD | st.text()),
        draw(st.none() | st.sampled_from(["bench", "ops"]) | AWKWARD),
        draw(st.none() | st.just(occurred.replace(tzinfo=None).isoformat(" ", "microseconds"))),
    )


@given(st.lists(activity_rows(), max_size=8))
def test_copy_lines_escape_every_field_as_copy_text_does(rows: list[ActivityRow]) -> None:
    assert copy_lines(rows) == _copy_lines_one_by_one(rows)
