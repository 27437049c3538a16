"""Reading a CSV file accounts for every physical line (issue 11, item 9): each line is
the header, part of a row, a rejected line (a quote left open) or blank, and a stray
quote never swallows the rows after it."""

from __future__ import annotations

import csv
import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from baton.services.imports import ImportFileError, read_csv_file

HEADER = ["email", "name", "company", "note"]
cell = st.text(alphabet="ab ,\n\"'", max_size=8)
row = st.lists(cell, min_size=4, max_size=4)
# Line breaks in values, but no line inside a value that is a whole row by itself (which
# reads as a quote left open, see _runaway_quote).
plain_cell = st.one_of(
    st.text(alphabet="ab ,\"'", max_size=8), st.text(alphabet="ab \n\"'", max_size=8)
)
plain_row = st.lists(plain_cell, min_size=4, max_size=4)


def written(rows: list[list[str]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(HEADER)
    writer.writerows(rows)
    return out.getvalue()


def accounted(text: str) -> None:
    """Every line is the header, in exactly one row, rejected, or blank."""
    file = read_csv_file(io.StringIO(text))
    lines = len(text.splitlines())  # \n, \r\n and \r, as the csv module counts them
    used: list[int] = [1]
    for record in file.records:
        used.extend(range(record.line, record.end_line + 1))
    used.extend(problem.row for problem in file.problems)
    assert len(used) == len(set(used)), "a line counted twice"
    assert file.lines == lines
    assert len(used) + file.blank_lines == lines


@settings(max_examples=60)
@given(st.lists(plain_row, max_size=8))
def test_well_formed_rows_come_back_exactly(rows: list[list[str]]) -> None:
    file = read_csv_file(io.StringIO(written(rows)))
    assert file.problems == []
    assert [r.cells for r in file.records] == rows
    accounted(written(rows))


@settings(max_examples=60)
@given(
    st.lists(row, min_size=1, max_size=8),
    st.lists(
        st.tuples(st.integers(0, 400), st.sampled_from(['"', "\n", "\r", '"x\n'])), max_size=3
    ),
)
def test_every_line_is_accounted_for_whatever_the_damage(
    rows: list[list[str]], damage: list[tuple[int, str]]
) -> None:
    text = written(rows)
    header_end = text.index("\n") + 1
    for position, insert in damage:
        at = header_end + position % max(1, len(text) - header_end)
        text = text[:at] + insert + text[at:]
    accounted(text)


def test_a_stray_quote_loses_only_its_own_line() -> None:
    text = written([["a@x.io", "Ann", "Acme", ""], ["b@x.io", "Bob", "Beta", ""]] * 3)
    lines = text.splitlines(keepends=True)
    lines[2] = lines[2].replace("Bob", '"Bob')  # line 3 opens a quote it never closes
    file = read_csv_file(io.StringIO("".join(lines)))
    assert [p.row for p in file.problems] == [3]
    assert [r.line for r in file.records] == [2, 4, 5, 6, 7]


def test_a_quote_left_open_in_the_header_refuses_the_file() -> None:
    with pytest.raises(ImportFileError, match="line 1: a quote in the header runs on to line 3"):
        read_csv_file(io.StringIO('email,"name\na@x.io,Ann\nb@x.io,Bo\n'))
