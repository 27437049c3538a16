"""CSV import of leads and activities (the exports are :mod:`baton.services.exports`).

An import reads the whole file, validates every row (collecting row-level errors with
the file's line numbers), then writes the valid rows with set-based statements in short
transactions, every row of one person in the same one (:class:`_Chunks`), so that
captures and the worker get their turns during a large import. With worker processes
(``--jobs``), they validate while this process writes: a person's rows are written
once every row that may be theirs is validated (:class:`_ValidatedChunks`).

Stopped halfway, an import keeps the chunks written, and importing the file again
completes it; invalid rows never block valid ones. New leads are queued for the
possible-duplicate comparison, which the worker runs after the import.

Every physical line of the file is accounted for: part of a row that was imported or
rejected (with its line number), or blank. A quote left open costs only the line that
opened it, never the rows after it (:func:`read_csv_file`).

Columns are matched by header name, forgivingly (``E-mail``, ``Email Address`` and
``email`` are one column); columns Baton does not know are kept in the lead's
``attributes`` (for leads) or the event's ``properties`` (for activities), never dropped
unless ``--map 'Header=-'`` says so. A lead row is rejected only when nothing identifies
the lead; a bad optional value is left out of its row and reported
(:func:`validate_lead_rows`).

An import is many captures (or activities) at once and obeys the same rules
(:data:`~baton.domain.access.Action.CAPTURE_LEAD`, ``INGEST_ACTIVITY``).

What an export wrote comes back the same: a cell the export guarded against formulas
(``'=x``) is read without its guard, and a Baton lead export is recognised by its
header (:func:`implied_columns`). The rejected lines of an import are given back as a
file to mend and import as it is (:func:`lines_to_mend`).
"""

from __future__ import annotations

import csv
import difflib
import functools
import io
import logging
import multiprocessing
import os
import re
import time
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any, NamedTuple

from sqlalchemy import bindparam, select, update
from sqlalchemy.engine import Connection

from baton.domain.access import Action, Principal
from baton.domain.activities import MAX_FUTURE_SKEW, ActivityCreate, ActivityType
from baton.domain.batches import RowError, validate_many
from baton.domain.contact import company_key, email_domain, email_key, mailbox_key
from baton.domain.errors import FieldProblem, ValidationFailed
from baton.domain.exports import LEAD_EXPORT_SIGNATURE, LEAD_READ_ONLY
from baton.domain.lead_rows import (
    FULL_NAME,
    IDENTITY_PROBLEM,
    JSON_EXTRAS,
    CaptureValues,
    Checked,
    Columns,
    DatedLeads,
    M,
    capture_values,
    identity_groups,
    ready,
    validate_records,
)
from baton.domain.lead_rows import Validate as Validate  # for history, scans, olist
from baton.domain.lead_rows import validate_lead_rows as validate_lead_rows
from baton.domain.lead_rows import with_consent as with_consent
from baton.domain.leads import (
    ATTRIBUTION_FIELDS,
    IDENTITY_FIELDS,
    PROFILE_FIELDS,
    LeadCreate,
    fold_source,
    merge_profile,
)
from baton.domain.lifecycle import INITIAL_STAGE
from baton.domain.privacy import ERASED_PREFIX, ConsentBasis, decide_consent
from baton.domain.scoring import Event
from baton.services.access import allowed
from baton.services.activities import ingest_validated_in, validation_context
from baton.services.collector import collector_paused
from baton.services.context import Context
from baton.services.duplicate_checks import compared_fields_changed, queue_duplicate_checks_in
from baton.services.exports import write_table
from baton.services.leads import MERGED_COLUMNS, keep_identity
from baton.services.person import carry_erasure_in, lift_suppressions_in
from baton.services.queries import chunks, lock_survivors
from baton.services.scoring import score_leads_in
from baton.store.bulk import (
    ActivityRow,
    bump_counters,
    find_by_keys,
    insert_activity_rows,
    insert_new_leads,
)
from baton.store.statistics import ANALYZE_AFTER_ROWS, refresh_statistics
from baton.store.tables import leads

log = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]
"""Called as an import goes with ``(step, done, total)``: ``"checking"`` the file's rows
(``total`` is every row of the file, known once it is read, before anything slow), then
``"writing"`` the valid ones (``total`` is how many). ``done`` counts rows so far."""

LEAD_ALIASES: dict[str, str] = {
    "e_mail": "email",
    "email_address": "email",
    "mail": "email",
    "work_email": "email",
    "phone_number": "phone",
    "mobile": "phone",
    "telephone": "phone",
    "tel": "phone",
    "mobile_phone": "phone",
    "first": "first_name",
    "firstname": "first_name",
    "given_name": "first_name",
    "last": "last_name",
    "lastname": "last_name",
    "surname": "last_name",
    "family_name": "last_name",
    "company_name": "company",
    "organization": "company",
    "organisation": "company",
    "account": "company",
    "account_name": "company",
    "job_title": "title",
    "position": "title",
    "role": "title",
    "country_code": "country",
    "state": "region",
    "province": "region",
    "county": "region",
    "zip": "postal_code",
    "zip_code": "postal_code",
    "postcode": "postal_code",
    "postal": "postal_code",
    "lead_source": "source",
    "channel": "source",
    "campaign_name": "campaign",
    "opt_in": "consent",
    "marketing_consent": "consent",
    "email_consent": "consent",
    "lawful_basis": "consent_basis",
    "legal_basis": "consent_basis",
    "consent_reason": "consent_basis",
    "opt_in_source": "consent_source",
    "created": "created_at",
    "created_date": "created_at",
    "create_date": "created_at",
    "date_created": "created_at",
    "created_on": "created_at",
    "creation_date": "created_at",
}
LEAD_COLUMNS = frozenset(
    {
        *PROFILE_FIELDS,
        *IDENTITY_FIELDS,
        *ATTRIBUTION_FIELDS,
        "consent",
        "consent_basis",
        "consent_source",
        "created_at",
        FULL_NAME,
    }
)
"""``created_at`` is not a field of a capture: it dates the row's capture (and the lead,
when the import creates it), for history brought over from another system.
``full_name`` is not one either: it is split into first and last name
(:data:`~baton.domain.lead_rows.FULL_NAME`)."""

NAME_HEADERS = ("name", "full_name", "contact_name")
"""Header keys read as the full name when nothing else gives the name
(:func:`implied_columns`): CRM exports have a single ``Name`` column as often as
first and last name columns."""

ACTIVITY_ALIASES: dict[str, str] = {
    "e_mail": "email",
    "email_address": "email",
    "event": "type",
    "event_type": "type",
    "activity": "type",
    "activity_type": "type",
    "timestamp": "occurred_at",
    "time": "occurred_at",
    "date": "occurred_at",
    "occurred": "occurred_at",
    "event_id": "idempotency_key",
    "id": "idempotency_key",
    "key": "idempotency_key",
}
ACTIVITY_COLUMNS = frozenset(
    {"email", "lead_id", "type", "occurred_at", "idempotency_key", "source", "campaign"}
)

DROP = "-"
"""The ``--map`` target that leaves a column out (``--map 'Tags=-'``)."""

_HEADER = re.compile(r"[^a-z0-9]+")


def header_key(raw: str) -> str:
    return _HEADER.sub("_", raw.strip().lower()).strip("_")


def map_headers(
    headers: Sequence[str],
    aliases: Mapping[str, str],
    known: frozenset[str],
    overrides: Mapping[str, str] | None = None,
    extras_key: str = "attributes",
) -> dict[str, str]:
    """Header -> where its values go: a field name, ``<extras_key>.<key>`` (kept as an
    attribute or property; unknown columns go there under their header's key), or
    :data:`DROP`. ``overrides`` (header -> target) come from ``--map`` and win; check
    them first with :func:`check_overrides`."""
    by_key = {header_key(k): v.strip() for k, v in (overrides or {}).items()}
    mapping: dict[str, str] = {}
    for header in headers:
        key = header_key(header)
        target = by_key.get(key) or aliases.get(key) or (key if key in known else None)
        if target == extras_key:
            target = None
        mapping[header] = target if target is not None else f"{extras_key}.{key}"
    return mapping


def check_overrides(
    overrides: Mapping[str, str],
    headers: Sequence[str],
    known: frozenset[str],
    extras_key: str,
) -> None:
    """Refuse, once for the whole file, a ``--map`` that names a column the file does
    not have or a target that is not a field (a typo would otherwise reject every row,
    or silently do nothing)."""
    present = {header_key(h) for h in headers}
    for header, target in overrides.items():
        if header_key(header) not in present:
            raise ImportFileError(
                f"--map {header}={target}: the file has no column {header!r}; its columns "
                f"are {', '.join(repr(h) for h in headers[:40])}"
                + (" ..." if len(headers) > 40 else "")
            )
        target = target.strip()
        if target in known or target in (DROP, extras_key):
            continue
        prefix, dot, name = target.partition(".")
        if prefix == extras_key and dot and name.strip():
            continue
        close = difflib.get_close_matches(target, sorted(known), n=1)
        hint = f"did you mean {close[0]}? " if close else ""
        raise ImportFileError(
            f"--map {header}={target}: {target!r} is not a field; {hint}use one of "
            f"{', '.join(sorted(known))}, {extras_key}.NAME to keep the column under "
            f"another name, or {DROP} to leave it out"
        )


@dataclass
class ImportReport:
    """What an import did, accounting for every line of the file (``lines`` counts the
    header too): each line after the header is part of a row that was imported or
    rejected, or is blank. Row numbers are the file's line numbers (header = line 1; a
    row that spans several lines by a quoted line break is numbered by its first line).

    ``errors`` are the problems of rejected rows (every problem of each, not just the
    first); ``warnings`` are values left out of rows that were imported (a country
    nobody could read, a consent that is not yes or no): the row is kept without them."""

    lines: int = 0
    blank_lines: int = 0
    rows: int = 0
    imported: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    stored: int = 0
    duplicates: int = 0
    duplicate_checks_queued: int = 0
    """New leads queued for the possible-duplicate comparison, which the worker runs
    (:func:`~baton.services.duplicate_checks.flag_pending_duplicates`): the pairs land
    in the review queue after the import, not during it."""
    compared_again: int = 0
    """Existing leads whose name, company, phone or email the import changed, queued to
    be compared again, with the leads newer than them too (a pair the change makes is
    flagged whichever lead arrived first)."""
    mql: int = 0
    errors: list[RowError] = field(default_factory=list)
    warnings: list[RowError] = field(default_factory=list)
    extra_columns: list[str] = field(default_factory=list)
    dropped_columns: list[str] = field(default_factory=list)
    name_column: str | None = None
    """The column read as the full name (split into first and last name), if any."""
    headers: list[str] = field(default_factory=list)
    hint: str | None = None
    file: CsvFile | None = field(default=None, repr=False)
    """The file as read, to give rejected lines back (:func:`lines_to_mend`)."""

    def add_written(self, chunk: ImportReport) -> None:
        """Count what :func:`write_leads_in` reported for one committed chunk (written
        into a report of its own, so that a chunk run again after an abort counts once)."""
        self.created += chunk.created
        self.updated += chunk.updated
        self.unchanged += chunk.unchanged
        self.mql += chunk.mql
        self.duplicate_checks_queued += chunk.duplicate_checks_queued
        self.compared_again += chunk.compared_again
        self.warnings.extend(chunk.warnings)

    @property
    def rejected(self) -> int:
        return len({e.row for e in self.errors})

    @property
    def rows_with_warnings(self) -> int:
        return len({e.row for e in self.warnings})

    @property
    def not_compared(self) -> int:
        """New leads left out of the possible-duplicate comparison: with no email, phone
        or company (identified by their external id alone), nothing could pair them."""
        return max(self.created - self.duplicate_checks_queued, 0)


class ImportFileError(ValidationFailed):
    """The file as a whole cannot be read (encoding, CSV syntax, headers)."""

    title = "File cannot be imported"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, [FieldProblem("(file)", detail)])


MAX_CELL = 1_000_000
csv.field_size_limit(MAX_CELL)

_PHYSICAL_LINE = re.compile(r"[^\r\n]*(?:\r\n|[\r\n])|[^\r\n]+\Z")
"""One physical line with its ending, as the csv module counts lines (``\r\n``, ``\r``
or ``\n``; other Unicode separators are text inside a line)."""


class CsvRecord(NamedTuple):
    """One row of a CSV file: its cells and the physical lines it spans (1-based). A
    named tuple: a large import makes one per row."""

    line: int
    end_line: int
    cells: list[str]


@dataclass
class CsvFile:
    """A CSV file read row by row. ``lines`` counts every physical line, the header's
    too (what ``wc -l`` says); ``problems`` are lines rejected while reading (a quote
    left open). The header, the records, the problems and the blank lines account for
    every one of them."""

    headers: list[str]
    records: list[CsvRecord]
    problems: list[RowError]
    lines: int
    blank_lines: int
    problem_cells: dict[int, list[str]] = field(default_factory=dict)
    """The cells of each line rejected while reading, read from that line alone (for
    the errors file, where the user mends it)."""
    delimiter: str = ","


class _Lines:
    """An iterator over physical lines that counts how many the csv reader took."""

    def __init__(self, lines: Sequence[str], start: int) -> None:
        self.lines = lines
        self.position = start

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        if self.position >= len(self.lines):
            raise StopIteration
        self.position += 1
        return self.lines[self.position - 1]


def _decode(source: Path | IO[str], encoding: str) -> str:
    if not isinstance(source, Path):
        return source.read().removeprefix("\ufeff")
    data = source.read_bytes()
    try:
        return data.decode(encoding).removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ImportFileError(
            f"line {line} is not valid {encoding} text; give the file's encoding with "
            "--encoding (for example latin-1 or utf-16)"
        ) from None
    except LookupError:
        raise ImportFileError(f"unknown encoding {encoding!r}") from None


def _dialect(sample: str) -> type[csv.Dialect]:
    try:
        sniffed: Any = csv.Sniffer().sniff(sample, delimiters=",;\t|")
        delimiter = sniffed.delimiter
    except csv.Error:
        delimiter = ","

    class Dialect(csv.excel):
        pass

    Dialect.delimiter = delimiter
    Dialect.doublequote = True
    return Dialect


def _never_closed(text: str, dialect: type[csv.Dialect]) -> bool:
    """Whether ``text`` (a row's lines) ends inside a quoted value."""
    try:
        for _ in csv.reader(io.StringIO(text), dialect, strict=True):
            pass
    except csv.Error as exc:
        return "end of data" in str(exc)
    return False


def _runaway_quote(
    lines: Sequence[str],
    first: int,
    end: int,
    cells: list[str],
    dialect: type[csv.Dialect],
    width: int,
) -> str | None:
    """Why a row that spans the lines ``first`` to ``end - 1`` (0-based) is a quote left
    open rather than a value with line breaks in it, or ``None`` when it looks genuine.

    A quoted value may hold line breaks (an address, a note); a stray quote makes the
    reader swallow the following lines into one value until the next quote, or to the
    end of the file. The signs: the quote is never closed, the row does not have one
    cell per column, or a line wholly inside the value (a line without quotes) is by
    itself a row with one cell per column. The last sign can mistake a genuine note for
    a runaway quote (a line of the note with exactly as many commas as the header has,
    less one): then that row's first line is rejected and its other lines are read as
    rows, each imported or rejected with its line number, so even then nothing is lost
    unreported."""
    if _never_closed("".join(lines[first:end]), dialect):
        return "a quote opened on this line is never closed"
    if len(cells) != width:
        return (
            f"a quoted value opened on this line runs on to line {end} and the row then has "
            f"{len(cells)} cells for {width} columns (probably a missing closing quote)"
        )
    quote = str(dialect.quotechar)
    for inner in range(first + 1, end - 1):
        # A line without a quote inside a row that goes on is wholly inside one value.
        if quote in lines[inner]:
            continue
        if len(next(csv.reader([lines[inner]], dialect), [])) == width:
            return (
                f"a quoted value opened on this line swallows line {inner + 1}, which is a "
                "row of its own (probably a missing closing quote)"
            )
    return None


def read_csv_file(source: Path | IO[str], encoding: str = "utf-8-sig") -> CsvFile:
    """Read a CSV file row by row, accounting for every physical line.

    The delimiter is sniffed (comma, semicolon, tab, pipe). A row whose quoted value
    runs over several lines is kept when it looks genuine; when it looks like a quote
    left open (see :func:`_runaway_quote`), its first line is rejected with its number
    and reading starts again on the next line, so the rows a stray quote would have
    swallowed are read as the rows they are. Raises :class:`ImportFileError` when the
    file as a whole cannot be read."""
    text = _decode(source, encoding)
    if not text.strip():
        raise ImportFileError("the file is empty")
    dialect = _dialect(text[:65536])
    lines = _PHYSICAL_LINE.findall(text)
    header_lines = _Lines(lines, 0)
    try:
        headers = next(csv.reader(header_lines, dialect))
    except (csv.Error, StopIteration) as exc:
        raise ImportFileError(f"line 1: the header is not valid CSV ({exc})") from None
    if header_lines.position > 1:
        raise ImportFileError(
            f"line 1: a quote in the header runs on to line {header_lines.position} (the "
            "header must be one line: is a closing quote missing?)"
        )
    seen: set[str] = set()
    for header in headers:
        key = header_key(header)
        if not key:
            raise ImportFileError("a column has no header name")
        if key in seen:
            raise ImportFileError(f"the header {header!r} appears twice")
        seen.add(key)
    width = len(headers)
    records: list[CsvRecord] = []
    problems: list[RowError] = []
    blank = 0
    position = header_lines.position
    while position < len(lines):
        feed = _Lines(lines, position)
        reader = csv.reader(feed, dialect)
        restart: int | None = None
        while True:
            first = feed.position
            try:
                cells = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                problems.append(RowError(first + 1, "(row)", f"not valid CSV: {exc}"))
                restart = first + 1
                break
            end = feed.position
            if not cells:
                blank += end - first
                continue
            if end - first > 1:
                runaway = _runaway_quote(lines, first, end, cells, dialect, width)
                if runaway is not None:
                    problems.append(
                        RowError(
                            first + 1,
                            "(row)",
                            f"{runaway}; this line was rejected and the lines after it were "
                            "read as rows",
                        )
                    )
                    restart = first + 1
                    break
            records.append(CsvRecord(first + 1, end, cells))
        if restart is None:
            break
        position = restart
    return CsvFile(
        headers=headers,
        records=records,
        problems=problems,
        lines=len(lines),
        blank_lines=blank,
        problem_cells={
            p.row: next(csv.reader([lines[p.row - 1].rstrip("\r\n")], dialect), [])
            for p in problems
        },
        delimiter=str(dialect.delimiter),
    )


def _read_csv(
    source: Path | IO[str], encoding: str = "utf-8-sig"
) -> tuple[list[str], list[dict[str, str]]]:
    """Headers and rows (as :class:`csv.DictReader` gives them) of a small CSV file in
    which every line must be readable: a quote left open refuses the file, naming its
    line, rather than losing the rows after it. Imports of leads and activities use
    :func:`read_csv_file`, which rejects just that line and goes on."""
    file = read_csv_file(source, encoding)
    if file.problems:
        problem = file.problems[0]
        raise ImportFileError(f"line {problem.row}: {problem.message}")
    if not file.records:
        raise ImportFileError("the file has a header but no rows")
    rows: list[dict[str, Any]] = []
    for record in file.records:
        row: dict[Any, Any] = dict(zip(file.headers, record.cells, strict=False))
        if len(record.cells) > len(file.headers):
            row[None] = record.cells[len(file.headers) :]
        rows.append(row)
    return file.headers, rows


def _check_mapping(mapping: Mapping[str, str]) -> None:
    targets: dict[str, str] = {}
    for header, target in mapping.items():
        if target == DROP:
            continue
        if target in targets:
            raise ImportFileError(
                f"the columns {targets[target]!r} and {header!r} both map to {target}; "
                "rename one, or map it elsewhere with --map"
            )
        targets[target] = header


def _reject_all(
    validate: Callable[..., tuple[list[tuple[int, M]], list[RowError]]],
) -> Validate[M]:
    """A validator that rejects any row with a problem (no field can be left out)."""

    def run(
        model: type[M], rows: Sequence[tuple[int, Mapping[str, Any]]], context: Mapping[str, Any]
    ) -> tuple[list[tuple[int, M]], list[RowError], list[RowError]]:
        good, errors = validate(model, rows, context)
        return good, errors, []

    return run


LINE_COLUMN = "baton_line"
ERRORS_COLUMN = "baton_errors"
WARNINGS_COLUMN = "baton_warnings"
MEND_COLUMNS = frozenset({LINE_COLUMN, ERRORS_COLUMN, WARNINGS_COLUMN})
"""The columns an errors file adds to a file's own (:func:`lines_to_mend`); an import
leaves them out, so the mended errors file imports as it is. Prefixed: a file may well
have a ``line`` (product line) or an ``errors`` column of its own."""


def _name_columns(headers: Sequence[str], chosen: Mapping[str, str]) -> dict[str, str]:
    """Where a lead file's name goes when one column holds it whole: without first or
    last name columns (nor ``chosen`` ones), the first column of the file among
    :data:`NAME_HEADERS` is read as the full name and split; with them, a ``Full Name``
    column stays an attribute (the parts win, the whole is kept)."""
    parts = {"first_name", "last_name"}
    if {LEAD_ALIASES.get(header_key(h), header_key(h)) for h in headers} & parts:
        return {h: f"attributes.{FULL_NAME}" for h in headers if header_key(h) == FULL_NAME}
    if {t.strip() for t in chosen.values()} & {*parts, FULL_NAME}:
        return {}
    found = next((h for h in headers if header_key(h) in NAME_HEADERS), None)
    return {found: FULL_NAME} if found is not None else {}


def implied_columns(
    headers: Sequence[str], extras_key: str, chosen: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The ``--map`` that a file's headers imply (the user's own ``--map``, ``chosen``,
    wins):

    * the columns an errors file added (:data:`MEND_COLUMNS`) are left out;
    * in a Baton lead export (its headers include
      :data:`~baton.domain.exports.LEAD_EXPORT_SIGNATURE`), the columns Baton keeps
      itself (stage, score, tags, owner...) are left out, and ``attributes`` is read as
      the JSON object it is, so that export → import gives the lead's fields back;
    * in a lead file without a first or last name column (nor one ``chosen`` for the
      name), the first ``Name``, ``Full Name`` or ``Contact Name`` column
      (:data:`NAME_HEADERS`) is the full name, split into first and last name: left as
      an attribute, the names would never be compared for duplicates."""
    keys = {header_key(h) for h in headers}
    implied = {h: DROP for h in headers if header_key(h) in MEND_COLUMNS}
    if extras_key == "attributes":
        implied.update(_name_columns(headers, chosen or {}))
    if extras_key == "attributes" and keys >= LEAD_EXPORT_SIGNATURE:
        for header in headers:
            key = header_key(header)
            if key in LEAD_READ_ONLY:
                implied[header] = DROP
            elif key == "attributes":
                implied[header] = f"attributes.{JSON_EXTRAS}"
    return implied


def lines_to_mend(
    report: ImportReport, *, warnings: bool = False
) -> tuple[list[str], list[list[str]]]:
    """The errors file of an import, as headers and rows: one row per rejected line
    (with ``warnings``, per imported line that had a value left out), holding the
    line's own cells under the file's own header, in their order, after two columns:
    the line number and every message for that line, joined by ``"; "``.

    Mended (the bad cells fixed), the file imports as it is: the two added columns
    are left out (:func:`implied_columns`), and its rows are exactly the lines that
    were not imported, so none lands twice. A line the reader rejected (a quote left
    open) comes back as that line alone reads."""
    found = report.warnings if warnings else report.errors
    messages: dict[int, list[str]] = {}
    for problem in found:
        messages.setdefault(problem.row, []).append(f"{problem.field}: {problem.message}")
    file = report.file
    if file is None:
        return [], []
    # An errors file imported again (and rejected again) has the added columns already.
    keep = [i for i, h in enumerate(file.headers) if header_key(h) not in MEND_COLUMNS]
    width = len(file.headers)
    cells = {r.line: r.cells for r in file.records if r.line in messages}
    cells.update(file.problem_cells)
    rows = []
    for line in sorted(messages):
        own = cells.get(line, [])
        rows.append(
            [
                str(line),
                "; ".join(messages[line]),
                *(own[i] if i < len(own) else "" for i in keep),
                *own[width:],  # cells beyond the header's columns, for the user to mend
            ]
        )
    added = [LINE_COLUMN, WARNINGS_COLUMN if warnings else ERRORS_COLUMN]
    return [*added, *(file.headers[i] for i in keep)], rows


def write_lines_to_mend(report: ImportReport, out: IO[str], *, warnings: bool = False) -> int:
    """Write :func:`lines_to_mend` to ``out`` as CSV in the file's own delimiter,
    through the export path (cells that a spreadsheet would run are guarded, and the
    import strips the guard again); returns the number of rows."""
    headers, rows = lines_to_mend(report, warnings=warnings)
    delimiter = report.file.delimiter if report.file else ","
    return write_table(out, headers, rows, delimiter=delimiter)


def _read_and_validate(
    source: Path | IO[str],
    *,
    encoding: str,
    aliases: Mapping[str, str],
    known: frozenset[str],
    column_map: Mapping[str, str] | None,
    extras_key: str,
    model: type[M],
    context: Mapping[str, Any],
    validate: Validate[M],
    step: int,
    progress: Progress | None,
    blanks: Sequence[str] = (),
    external_system: str | None = None,
    jobs: int = 1,
) -> tuple[ImportReport, list[tuple[int, M]]]:
    """The part both imports share: read the file (every line accounted for), check
    ``--map`` once for the file, map the headers, build each row's input (a malformed
    row is a row error) and validate ``step`` rows at a time. Row numbers are the
    file's line numbers.

    With ``jobs`` > 1 and a :class:`~baton.domain.lead_rows.DatedLeads` validator, a
    file of at least :data:`POOL_MIN_ROWS` rows is validated by ``jobs - 1`` worker
    processes, this one taking a part no worker has started (:func:`_checked_parts`);
    the report and the rows returned are the same as with one job."""
    report, columns = _read_mapped(
        source,
        encoding=encoding,
        aliases=aliases,
        known=known,
        column_map=column_map,
        extras_key=extras_key,
        progress=progress,
        blanks=blanks,
        external_system=external_system,
    )
    file = report.file
    assert file is not None
    records = [(record.line, record.cells) for record in file.records]
    parts = [records[start : start + step] for start in range(0, len(records), step)]
    if not isinstance(validate, DatedLeads) or len(records) < POOL_MIN_ROWS:
        jobs = 1
    good: list[tuple[int, M]] = []
    unbuilt: list[RowError] = []
    rejected: list[RowError] = []
    checked = len(file.problems)
    for part, found in zip(
        parts, _checked_parts(parts, columns, model, context, validate, jobs), strict=True
    ):
        good.extend(found.good)
        unbuilt.extend(found.unbuilt)
        rejected.extend(found.errors)
        report.warnings.extend(found.warnings)
        if isinstance(validate, DatedLeads):
            validate.dates.update(found.dates)
        checked += len(part)
        if progress:
            progress("checking", checked, report.rows)
    report.errors.extend(unbuilt)  # rows that cannot be built first, as they were found
    report.errors.extend(rejected)
    report.imported = len(good)
    return report, good


def _read_mapped(
    source: Path | IO[str],
    *,
    encoding: str,
    aliases: Mapping[str, str],
    known: frozenset[str],
    column_map: Mapping[str, str] | None,
    extras_key: str,
    progress: Progress | None,
    blanks: Sequence[str] = (),
    external_system: str | None = None,
) -> tuple[ImportReport, Columns]:
    """Read the file (every line accounted for), check ``--map`` once for the file and
    map the headers: the report so far (the file in it, the lines the reader rejected
    among its errors) and where each cell goes."""
    file = read_csv_file(source, encoding)
    if not file.records and not file.problems:
        raise ImportFileError("the file has a header but no rows")
    check_overrides(column_map or {}, file.headers, known, extras_key)
    implied = implied_columns(file.headers, extras_key, column_map)
    overrides = {**implied, **(column_map or {})}
    mapping = map_headers(file.headers, aliases, known, overrides, extras_key)
    _check_mapping(mapping)
    report = ImportReport(
        lines=file.lines,
        blank_lines=file.blank_lines,
        rows=len(file.records) + len(file.problems),
        headers=file.headers,
        file=file,
    )
    report.errors.extend(file.problems)
    if progress:
        progress("checking", 0, report.rows)
    report.extra_columns = [h for h, t in mapping.items() if t.startswith(extras_key + ".")]
    report.dropped_columns = [h for h, t in mapping.items() if t == DROP]
    report.name_column = next((h for h, t in mapping.items() if t == FULL_NAME), None)
    columns = Columns(
        targets=[None if t == DROP else t for t in mapping.values()],
        extras_key=extras_key,
        blanks=frozenset(b.strip().casefold() for b in blanks if b.strip()),
        external_system=external_system,
    )
    return report, columns


VALIDATE_STEP = 2000
"""Rows of a lead import validated at a time: the unit of progress, and of the work
handed to a worker process."""

POOL_MIN_ROWS = 20_000
"""Fewer rows than this are validated in the importing process whatever ``jobs`` says:
a worker process takes about half a second to start (its imports), about what this
process takes to validate 20,000 rows itself (measured: no gain at 20,000 rows)."""


def _checked_parts(
    parts: Sequence[Sequence[tuple[int, Sequence[str]]]],
    columns: Columns,
    model: type[M],
    context: Mapping[str, Any],
    validate: Validate[M],
    jobs: int,
    values: CaptureValues | None = None,
    meanwhile: Callable[[], object] | None = None,
    started: ProcessPoolExecutor | None = None,
) -> Generator[Checked, None, None]:
    """:func:`~baton.domain.lead_rows.validate_records` of each part, yielded in the
    parts' order, lazily: the caller writes the parts yielded so far while the rest are
    validated. ``started``: worker processes the caller started (:func:`start_validators`)
    and shuts down, used instead of starting ``jobs - 1`` here.

    With ``jobs`` > 1, ``jobs - 1`` worker processes (no more than the cores less this
    one; started by ``spawn``, so that nothing of this process' state, its database
    connections or threads, is inherited) validate the parts in order, ahead of this
    process, which is left the writing. When the part it needs next has not been
    started by a worker yet (the workers are slow to start, or busy), this process
    validates it itself rather than wait: a busy machine costs no more than one
    process would. ``meanwhile`` is run before the first part is yielded, once the
    workers have their parts (they take a while to start).

    A worker that dies (killed by the out-of-memory killer or an operator) breaks the
    pool: this process then validates every part not yet validated itself, with a
    logged warning, so the import still completes with the result of one process
    rather than stop halfway. Each part's result is dropped once yielded (a 1M-row
    import does not keep every part's rows twice)."""
    workers = min(jobs, os.cpu_count() or 1, len(parts)) - 1
    if workers < 1 and started is None:
        if meanwhile is not None:
            meanwhile()
        for part in parts:
            yield validate_records(part, columns, model, context, validate, values)
        return
    pool = started or _spawned(workers)
    futures: deque[Future[Checked] | None] = deque()
    broken = False
    try:
        try:
            for part in parts:
                futures.append(
                    pool.submit(validate_records, part, columns, model, context, validate, values)
                )
        except BrokenProcessPool as exc:  # a started worker died before its first part
            broken = True
            log.warning(
                "a validating worker process died (%s): this process validates the file "
                "itself",
                exc,
            )
            futures = deque([None] * len(parts))
        if meanwhile is not None:
            meanwhile()
        for part in parts:
            future = futures.popleft()
            found: Checked | None = None
            if future is None:
                pass
            elif not broken and not future.cancel():  # not started: checked here instead
                try:
                    found = future.result()
                except BrokenProcessPool as exc:
                    broken = True
                    log.warning(
                        "a validating worker process died (%s): this process validates "
                        "the rest of the file itself",
                        exc,
                    )
            elif broken and future.done() and not future.cancelled() and not future.exception():
                found = future.result()  # validated before the worker died
            del future  # the part's rows are the caller's alone once yielded
            if found is None:
                found = validate_records(part, columns, model, context, validate, values)
            yield found
            del found
    finally:
        # Stopped early (an error while writing): the parts not started are dropped.
        if started is None:
            pool.shutdown(wait=True, cancel_futures=True)
        else:
            for left in futures:
                if left is not None:
                    left.cancel()


def _ready_after(
    records: Sequence[tuple[int, Sequence[str]]], columns: Columns, region: str, step: int
) -> dict[int, int]:
    """Line -> the index of the part (of ``step`` records) after whose validation every
    row that may be about the same person as this line's is validated
    (:func:`~baton.domain.lead_rows.identity_groups`): from then on the person's rows
    can be written, all in one chunk, before the rest of the file is validated."""
    groups = identity_groups(records, columns, region)
    last: dict[int, int] = {}
    for index, group in enumerate(groups):
        last[group] = index // step  # records in file order: the last one wins
    return {line: last[group] for (line, _), group in zip(records, groups, strict=True)}


def _dated_leads(
    dates: dict[int, datetime], *, zone: str, day_first: bool, now: datetime
) -> DatedLeads:
    """A :class:`~baton.domain.lead_rows.DatedLeads` validator that reads the rows'
    ``created_at`` into ``dates`` (line -> moment)."""
    return DatedLeads(zone, day_first, now, MAX_FUTURE_SKEW, dates)


def _identity_hint(report: ImportReport, headers: Sequence[str]) -> str | None:
    """When no row could be identified, the id column to map (the usual cause: a CRM
    export keyed by its own prospect id, without email or phone)."""
    unidentified = {e.row for e in report.errors if e.message.startswith(IDENTITY_PROBLEM)}
    if report.imported or len(unidentified) < report.rejected or not unidentified:
        return None
    ids = [h for h in headers if header_key(h) == "id" or header_key(h).endswith("_id")]
    column = ids[0] if ids else "COLUMN"
    return (
        "no row has an email or a phone number: a lead can be identified by the id another "
        f"system gave it instead, with --map '{column}=external_id' (and --system NAME)"
    )


def parse_column_map(pairs: Iterable[str]) -> dict[str, str]:
    """``HEADER=FIELD`` pairs (``HEADER=-`` leaves a column out) as the ``column_map`` of
    :func:`import_leads`. A pair without ``=``, a header or a field raises
    :class:`ValueError` naming it (the CLI's ``--map`` and the upload page's map both read
    pairs with this)."""
    mapping = {}
    for pair in pairs:
        header, sep, field = pair.partition("=")
        if not sep or not header.strip() or not field.strip():
            raise ValueError(f"HEADER=FIELD (or HEADER=- to leave it out), got {pair!r}")
        mapping[header.strip()] = field.strip()
    return mapping


@collector_paused
def import_leads(
    ctx: Context,
    source: Path | IO[str],
    *,
    actor: Principal,
    column_map: Mapping[str, str] | None = None,
    progress: Progress | None = None,
    encoding: str = "utf-8-sig",
    blanks: Sequence[str] = (),
    external_system: str | None = None,
    naive_timezone: str = "UTC",
    day_first: bool = False,
    consent_basis: ConsentBasis | None = None,
    consent_source: str | None = None,
    jobs: int | None = None,
) -> ImportReport:
    """Import a leads CSV: create-or-update by identity (external id, email, phone), in
    short transactions (:class:`_Chunks`), recorded as ``actor``'s captures. Stopped
    halfway, it keeps the chunks written; importing the file again completes it.

    ``column_map`` (header -> field, ``attributes.NAME`` or ``-``) overrides the header
    matching; ``blanks`` are values that mean "not given" (a form's untouched "Select");
    ``external_system`` names the system of the rows' external ids. A ``created_at``
    column (``Created Date``, ``Create Date``...) dates each row's capture, and the lead
    when the import creates it; its values are read as :func:`read_instant` reads them,
    ``02/03/2026`` as 2 March with ``day_first``, times without a zone in
    ``naive_timezone``. A value that cannot be read is left out and reported, and the
    row is captured now.

    ``consent_basis`` is the lawful basis of the file's rows that do not refuse (a
    ``consent`` column saying no) nor give their own basis: the list was gathered with
    opt-in (``consent``) or is of existing customers (``legitimate_interest``). The
    consent answers of the file are recorded as given at ``consent_source`` (default
    ``import <file name>``).

    ``jobs`` processes validate the rows of a large file (default
    ``BATON_IMPORT_JOBS``, 1): ``jobs - 1`` workers validate the file's parts in order
    while this process writes the people whose rows are all validated
    (:func:`_ready_after`); the result is the same with any number, and the writing is
    always this process' alone, in file order."""
    allowed(actor, Action.CAPTURE_LEAD)
    jobs = jobs or ctx.settings.import_jobs
    validators = start_validators(jobs) if jobs > 1 and _large(source) else None
    try:
        return _import_leads(
            ctx,
            source,
            actor=actor,
            column_map=column_map,
            progress=progress,
            encoding=encoding,
            blanks=blanks,
            external_system=external_system,
            naive_timezone=naive_timezone,
            day_first=day_first,
            consent_basis=consent_basis,
            consent_source=consent_source,
            jobs=jobs,
            validators=validators,
        )
    finally:
        if validators is not None:
            validators.shutdown(wait=True, cancel_futures=True)


def _large(source: Path | IO[str]) -> bool:
    """Whether ``source`` is a file given by path of at least :data:`POOL_MIN_ROWS`
    lines (counted from its start, a megabyte at a time, until there are that many):
    its validating worker processes are then started before it is read (when ``jobs``
    asks for them), so that they are ready when its first part is; a worker process
    takes about half a second to start, the reading of 100,000 rows about as long. Not
    its size: X Education's 2.3 MB of 9,240 wide rows imported in 1.62 s with workers
    started early against 1.39 s without."""
    if not isinstance(source, Path):
        return False
    lines = 0
    try:
        with source.open("rb") as file:
            while lines < POOL_MIN_ROWS and (block := file.read(1 << 20)):
                lines += block.count(b"\n")
    except OSError:
        return False  # reading it says what is wrong
    return lines >= POOL_MIN_ROWS


def start_validators(jobs: int) -> ProcessPoolExecutor | None:
    """``jobs - 1`` validating worker processes (no more than the cores less this one),
    started now (each is given a first task that does nothing, so that it starts and
    imports what validation needs at once); ``None`` when there is no core for one. The
    caller shuts them down."""
    workers = min(jobs, os.cpu_count() or 1) - 1
    if workers < 1:
        return None
    pool = _spawned(workers)
    for _ in range(workers):
        pool.submit(ready)
    return pool


def _spawned(workers: int) -> ProcessPoolExecutor:
    """``workers`` validating processes, started by ``spawn``: nothing of this process'
    state, its database connections or threads, is inherited."""
    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))


def _import_leads(
    ctx: Context,
    source: Path | IO[str],
    *,
    actor: Principal,
    column_map: Mapping[str, str] | None,
    progress: Progress | None,
    encoding: str,
    blanks: Sequence[str],
    external_system: str | None,
    naive_timezone: str,
    day_first: bool,
    consent_basis: ConsentBasis | None,
    consent_source: str | None,
    jobs: int,
    validators: ProcessPoolExecutor | None,
) -> ImportReport:
    """:func:`import_leads` with its validating worker processes, if started."""
    created: dict[int, datetime] = {}
    report, columns = _read_mapped(
        source,
        encoding=encoding,
        aliases=LEAD_ALIASES,
        known=LEAD_COLUMNS,
        column_map=column_map,
        extras_key="attributes",
        progress=progress,
        blanks=blanks,
        external_system=external_system,
    )
    context = {
        "default_region": ctx.settings.default_phone_region,
        "json_limits": ctx.settings.json_limits,  # baton.domain.limits.CONTEXT_KEY
    }
    validate = _dated_leads(created, zone=naive_timezone, day_first=day_first, now=ctx.clock.now())
    file = report.file
    assert file is not None
    records = [(record.line, record.cells) for record in file.records]
    step = VALIDATE_STEP
    parts = [records[start : start + step] for start in range(0, len(records), step)]
    ready_after: dict[int, int] | None = None  # None: every row validated before writing
    if validators is not None or (jobs > 1 and len(records) >= POOL_MIN_ROWS):
        ready_after = {}
    else:
        jobs = 1

    def group() -> None:
        """Fill ``ready_after`` while the workers start."""
        if ready_after is not None:
            region = ctx.settings.default_phone_region
            ready_after.update(_ready_after(records, columns, region, step))

    name = source.name if isinstance(source, Path) else getattr(source, "name", None)
    where = consent_source or (f"import {Path(str(name)).name}" if name else "import")
    values = CaptureValues(consent_basis, where)
    counted = {"valid": 0, "unchecked": len(records)}

    def validated() -> Generator[list[tuple[int, dict[str, Any]]], None, None]:
        """Each part's valid rows (as :class:`~baton.domain.lead_rows.CaptureValues`), in
        file order, as the part is validated; its problems and dates recorded on the way."""
        checked = len(file.problems)
        found_parts = _checked_parts(
            parts,
            columns,
            LeadCreate,
            context,
            validate,
            jobs,
            values=values,
            meanwhile=group,
            started=validators,
        )
        try:
            for part, found in zip(parts, found_parts, strict=True):
                kept: list[tuple[int, dict[str, Any]]] = found.good
                counted["unchecked"] -= len(part)
                counted["valid"] += len(kept)
                report.errors.extend(found.unbuilt)
                report.errors.extend(found.errors)
                report.warnings.extend(found.warnings)
                created.update(found.dates)
                checked += len(part)
                if progress:
                    progress("checking", checked, report.rows)
                yield kept
        finally:
            found_parts.close()  # stopped by an error: the workers stop too

    # One short transaction per chunk (at most BATON_IMPORT_CHUNK_ROWS rows), so that
    # captures and the worker get their turns during a large import.
    feed = validated()
    chunks = _ValidatedChunks(feed, ready_after, ctx.settings.import_chunk_rows)
    written = 0
    try:
        for part in chunks:
            began = 0.0

            def write_chunk(
                connection: Connection, part: list[tuple[int, dict[str, Any]]] = part
            ) -> ImportReport:
                nonlocal began
                began = time.perf_counter()  # after the turn came: the transaction itself
                chunk = ImportReport()
                write_values_in(
                    connection,
                    part,
                    actor=actor,
                    now=ctx.clock.now(),
                    report=chunk,
                    captured_at=created,
                )
                return chunk

            # A chunk PostgreSQL aborts as a deadlock victim (a capture group or another
            # import took the same people's rows in another order) is written again.
            report.add_written(ctx.write_retrying(write_chunk, attempts=CHUNK_ATTEMPTS))
            chunks.took(time.perf_counter() - began)
            written += len(part)
            if progress:  # the rows still to validate may all be valid, until they are not
                progress("writing", written, counted["valid"] + counted["unchecked"])
    finally:
        feed.close()
    report.imported = counted["valid"]
    report.hint = _identity_hint(report, report.headers)
    if ctx.dialect == "postgresql" and report.created >= ANALYZE_AFTER_ROWS:
        with ctx.write() as connection:
            refresh_statistics(
                connection, ("leads", "activities", "duplicate_checks"), new_rows=report.created
            )
    report.errors.sort(key=lambda e: e.row)
    report.warnings.sort(key=lambda e: e.row)
    return report


CHUNK_ATTEMPTS = 3
"""Runs of one import chunk in all when PostgreSQL aborts it as a deadlock victim."""

CHUNK_SECONDS = 0.2
"""About how long one chunk of an import may hold the database (see :class:`_Chunks`)."""


def next_chunk_size(size: int, rows: int, seconds: float, most: int) -> int:
    """The rows of an import's next transaction after one of ``size`` wrote ``rows`` in
    ``seconds``: about as many as that pace writes in :data:`CHUNK_SECONDS`, at most
    twice ``size`` (a fast small chunk says little) and ``most``
    (``BATON_IMPORT_CHUNK_ROWS``), at least 50, so that a larger ``most`` saves commits
    without holding the database longer from a capture that waits for its turn."""
    rate = rows / max(seconds, 1e-6)
    return max(min(most, 50), min(most, 2 * size, int(rate * CHUNK_SECONDS)))


class _Chunks:
    """The valid rows of an import in chunks, in file order, every row of one person
    (one identity) in the same chunk, so that they still combine into one lead.

    A chunk has at most ``most`` rows, and about as many as the previous chunks wrote
    in :data:`CHUNK_SECONDS` (the caller reports each transaction's duration with
    :meth:`took`): writing slows down as the database grows or the machine gets busy,
    and the chunks shrink with it, so other writers never wait long for their turn."""

    def __init__(self, good: Sequence[tuple[int, LeadCreate]], most: int) -> None:
        self.people: dict[str, list[tuple[int, LeadCreate]]] = {}
        for row in good:
            self.people.setdefault(_identity(row[1]), []).append(row)
        self.most = most
        self.size = min(most, 200)
        self.last = 0

    def took(self, seconds: float) -> None:
        """The last chunk's transaction took ``seconds``: size the next one."""
        self.size = next_chunk_size(self.size, self.last, seconds, self.most)

    def __iter__(self) -> Iterator[list[tuple[int, LeadCreate]]]:
        chunk: list[tuple[int, LeadCreate]] = []
        for rows in self.people.values():
            if chunk and len(chunk) + len(rows) > self.size:
                self.last = len(chunk)
                yield chunk
                chunk = []
            chunk.extend(rows)
        if chunk:
            self.last = len(chunk)
            yield chunk


class _ValidatedChunks(_Chunks):
    """:class:`_Chunks` of rows that are still being validated: ``parts`` yields each
    part's valid rows in file order, and a person's rows go into a chunk once the parts
    after which ``ready_after`` (line of the person's first row -> part index) says all
    of them are validated have come; with ``ready_after`` ``None``, once every part has.
    People are taken in the order of their first row and chunks cut where a person does
    not fit, never where validation is, so that the chunks are those of :class:`_Chunks`
    over the whole file, whichever process validates and however fast."""

    def __init__(
        self,
        parts: Iterable[list[tuple[int, dict[str, Any]]]],
        ready_after: Mapping[int, int] | None,
        most: int,
    ) -> None:
        super().__init__((), most)
        self.parts = parts
        self.ready_after = ready_after
        self.rows_of: dict[str, list[tuple[int, dict[str, Any]]]] = {}

    def __iter__(self) -> Iterator[list[tuple[int, dict[str, Any]]]]:  # type: ignore[override]
        people = self.rows_of
        waiting: deque[str] = deque()  # people not in a chunk yet, by their first row
        chunk: list[tuple[int, dict[str, Any]]] = []
        for index, rows in enumerate(self.parts):
            for row in rows:
                key = _identity_of(row[1])
                if (theirs := people.get(key)) is None:
                    people[key] = [row]
                    waiting.append(key)
                else:
                    theirs.append(row)
            if self.ready_after is None:
                continue
            while waiting and self.ready_after[people[waiting[0]][0][0]] <= index:
                theirs = people.pop(waiting.popleft())
                if chunk and len(chunk) + len(theirs) > self.size:
                    self.last = len(chunk)
                    yield chunk
                    chunk = []
                chunk.extend(theirs)
        while waiting:
            theirs = people.pop(waiting.popleft())
            if chunk and len(chunk) + len(theirs) > self.size:
                self.last = len(chunk)
                yield chunk
                chunk = []
            chunk.extend(theirs)
        if chunk:
            self.last = len(chunk)
            yield chunk


_NEW_LEAD_INPUT = (*PROFILE_FIELDS, *IDENTITY_FIELDS, *ATTRIBUTION_FIELDS)
_NO_CONSENT = {"consent": None, "consent_basis": None, "consent_source": None, "consent_at": None}
_company_key = functools.lru_cache(maxsize=65536)(company_key)
""":func:`~baton.domain.contact.company_key` once per distinct name (a file repeats them)."""


def _consent_of(values: Mapping[str, Any], at: datetime) -> dict[str, Any]:
    """A new lead's consent record from its rows' combined answer."""
    if values.get("consent") is None and values.get("consent_basis") is None:
        return dict(_NO_CONSENT)  # decide_consent's answer to no answer: nothing recorded
    answer = decide_consent({}, values).changes
    return {
        "consent": answer.get("consent"),
        "consent_basis": answer.get("consent_basis"),
        "consent_source": answer.get("consent_source"),
        "consent_at": at if answer else None,
    }


def _erasures_exist(connection: Connection) -> bool:
    """Whether any erasure left its key (:func:`~baton.domain.privacy.erased_key`) on
    the suppression list: without one, :func:`~baton.services.person.carry_erasure_in`
    has nothing to find, and a chunk skips hashing each of its addresses. One look-up
    on the unique key's index on SQLite (its text order is bytewise); PostgreSQL's
    collation may not keep the prefix together, so there the answer is always yes."""
    if connection.dialect.name != "sqlite":
        return True
    found = connection.exec_driver_sql(
        "SELECT 1 FROM suppressions WHERE email_key >= ? AND email_key < ? LIMIT 1",
        (ERASED_PREFIX, ERASED_PREFIX[:-1] + chr(ord(ERASED_PREFIX[-1]) + 1)),
    ).first()
    return found is not None


def _ids_of(connection: Connection, people: Mapping[str, Mapping[str, Any]]) -> dict[str, int]:
    """Identity -> lead id for the people (identity -> their combined values) that are
    already stored, looked up set-based in the order one capture uses: external id,
    then email, then (for people without email) phone among the leads without email."""
    found: dict[str, int] = {}
    wanted = {
        (v["external_system"], v["external_id"]): key
        for key, v in people.items()
        if v.get("external_id")
    }
    external_ids = sorted({external_id for _, external_id in wanted})
    for external_id, system, lead_id in find_by_keys(
        connection, leads, "external_id", external_ids, "external_system", "id"
    ):
        if (key := wanted.get((system, external_id))) is not None:
            found[key] = lead_id
    by_email: dict[str, list[str]] = {}
    by_phone: dict[str, list[str]] = {}
    for key, values in people.items():
        if key in found:
            continue
        if values.get("email"):
            by_email.setdefault(email_key(values["email"]), []).append(key)
        elif values.get("phone"):
            by_phone.setdefault(values["phone"], []).append(key)
    for address, lead_id in find_by_keys(connection, leads, "email_key", list(by_email), "id"):
        for key in by_email[address]:
            found[key] = lead_id
    for part in chunks(list(by_phone)):
        for phone, lead_id in connection.execute(
            select(leads.c.phone, leads.c.id)
            .where(leads.c.phone.in_(part), leads.c.email_key.is_(None))
            .order_by(leads.c.id.desc())
        ):
            for key in by_phone[phone]:
                found[key] = lead_id
    return found


def _lock_survivors(connection: Connection, lead_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    """Lock the leads (see :func:`~baton.services.queries.lock_survivors`) and map each
    id to the full row of the lead that now stands for it."""
    final = lock_survivors(connection, lead_ids)
    rows: dict[int, dict[str, Any]] = {}
    for part in chunks(sorted({t for t in final.values() if t is not None})):
        for row in connection.execute(select(leads).where(leads.c.id.in_(part))).mappings():
            rows[row["id"]] = dict(row)
    return {i: rows[t] for i, t in final.items() if t is not None}


def _identity(lead: LeadCreate) -> str:
    """The key that gathers a file's rows about one person: the external id, else the
    email key, else ``phone:<e164>``."""
    if lead.external_id:
        return f"ext:{lead.external_system}\x1f{lead.external_id}"
    return email_key(lead.email) if lead.email else f"phone:{lead.phone}"


def _identity_of(values: Mapping[str, Any]) -> str:
    """:func:`_identity` of a row's :func:`~baton.domain.lead_rows.capture_values`."""
    if external_id := values.get("external_id"):
        return f"ext:{values['external_system']}\x1f{external_id}"
    email = values.get("email")
    return email_key(email) if email else f"phone:{values.get('phone')}"


def _identities(good: Sequence[tuple[int, LeadCreate]]) -> list[str]:
    """:func:`_identity` of each row, except that a row with only an email joins the
    row that gives the same email together with an external id (one person, one lead)."""
    return _identities_of([(number, capture_values(lead)) for number, lead in good])


def _identities_of(good: Sequence[tuple[int, Mapping[str, Any]]]) -> list[str]:
    """:func:`_identities` of rows given as their
    :func:`~baton.domain.lead_rows.capture_values`."""
    keys = [_identity_of(values) for _, values in good]
    by_email = {
        email_key(values["email"]): key
        for key, (_, values) in zip(keys, good, strict=True)
        if values.get("external_id") and values.get("email")
    }
    if not by_email:
        return keys
    return [
        by_email.get(email_key(values["email"]), key)
        if values.get("email") and not values.get("external_id")
        else key
        for key, (_, values) in zip(keys, good, strict=True)
    ]


def _insert_in_file_order(
    connection: Connection, new_rows: Sequence[tuple[str, dict[str, Any]]]
) -> tuple[set[int], dict[str, int]]:
    """Insert the new leads (identity, row), in the order given (the file's), so that
    their ids follow the file; return the ids of the rows inserted and, for those, the
    identity -> id the caller would otherwise look up again. A row skipped on a unique
    key (another writer created the lead first) is in neither.

    SQLite has one writer: the rows go in as given. On PostgreSQL two imports at once
    must insert their unique keys in one order, or each may wait for the other's row:
    the ids are taken from the sequence first, in the order given, and the rows then
    inserted with them in the order of their identities."""
    if not new_rows:
        return set(), {}
    rows = [row for _, row in new_rows]
    if connection.dialect.name != "postgresql":
        inserted = insert_new_leads(connection, leads, rows)
        if len(inserted) < len(rows):
            return inserted, {}  # which rows were skipped: the caller looks them up
        # One writer, rows in order: each takes the next id (max + 1), so the ids
        # inserted, in order, are the rows', in order.
        return inserted, dict(zip((key for key, _ in new_rows), sorted(inserted), strict=True))
    taken = connection.exec_driver_sql(
        "SELECT nextval(pg_get_serial_sequence('leads', 'id')) FROM generate_series(1, %s)",
        (len(rows),),
    )
    for row, lead_id in zip(rows, sorted(int(i) for (i,) in taken), strict=True):
        row["id"] = lead_id
    order = sorted(range(len(rows)), key=lambda i: new_rows[i][0])  # one identity each
    inserted = insert_new_leads(connection, leads, [rows[i] for i in order])
    return inserted, {
        key: row["id"]
        for (key, _), row in zip(new_rows, rows, strict=True)
        if row["id"] in inserted
    }


def write_leads_in(
    connection: Connection,
    good: Sequence[tuple[int, LeadCreate]],
    *,
    actor: Principal,
    now: datetime,
    report: ImportReport,
    progress: Progress | None = None,
    captured_at: Mapping[int, datetime] | None = None,
    score: bool = True,
    capture_keys: Mapping[int, str] | None = None,
) -> dict[str, int]:
    """Create-or-update many validated leads with set-based statements inside the
    caller's transaction; the same rules as one capture (the caller checked that
    ``actor`` may capture). Returns identity -> lead id.

    ``captured_at`` (row number -> time) dates individual captures, for replaying
    history (the demo, backfills); rows not in it are captured ``now``. Without
    ``score`` the leads are not scored (a history import records the rows' stage
    history first, then scores them as history: :mod:`baton.services.history`).
    ``capture_keys`` (row number -> idempotency key) key the rows' captures, so that a
    file imported again records no capture twice. New leads are queued for the
    possible-duplicate comparison, which the worker runs after the transaction
    (:mod:`baton.services.duplicate_checks`)."""
    return write_values_in(
        connection,
        [(number, capture_values(lead)) for number, lead in good],
        actor=actor,
        now=now,
        report=report,
        captured_at=captured_at,
        score=score,
        capture_keys=capture_keys,
    )


def write_values_in(
    connection: Connection,
    good: Sequence[tuple[int, dict[str, Any]]],
    *,
    actor: Principal,
    now: datetime,
    report: ImportReport,
    captured_at: Mapping[int, datetime] | None = None,
    score: bool = True,
    capture_keys: Mapping[int, str] | None = None,
) -> dict[str, int]:
    """:func:`write_leads_in` of the rows' :func:`~baton.domain.lead_rows.capture_values`
    (a lead import's worker processes work them out), which it reads and never
    changes: a chunk written again after a deadlock writes the same."""
    when = captured_at or {}
    keys = capture_keys or {}
    first_at: dict[str, datetime] = {}
    first_row: dict[str, int] = {}
    combined: dict[str, dict[str, Any]] = {}
    touches: list[tuple[str, dict[str, Any], datetime, int]] = []
    # with_intake_source for rows given as values: the intake key's source, unless
    # the row names its own.
    intake_source = (
        fold_source(actor.source) if actor.kind == "intake_key" and actor.source else None
    )
    attribution = ATTRIBUTION_FIELDS
    for key, (number, incoming) in zip(_identities_of(good), good, strict=True):
        if intake_source is not None and incoming.get("source") is None:
            incoming = {**incoming, "source": intake_source}
        if key in combined:
            combined[key].update(merge_profile(combined[key], incoming))
        else:
            combined[key] = {
                **incoming,
                "last_source": incoming.get("source"),
                "last_campaign": incoming.get("campaign"),
            }
            first_row[key] = number
        touch = {name: v for name in attribution if (v := incoming.get(name))}
        at = when.get(number, now)
        touches.append((key, touch, at, number))
        first_at[key] = min(first_at.get(key, at), at)

    # A new lead's counters are written with it when none of its captures is keyed
    # (a keyed one may already be stored and skipped): an UPDATE per lead less.
    touched_at: dict[str, tuple[int, datetime]] = {}
    for key, _, at, number in touches:
        if keys.get(number) is not None:
            touched_at[key] = (-1, at)
        elif (seen := touched_at.get(key)) is None:
            touched_at[key] = (1, at)
        elif seen[0] > 0:
            touched_at[key] = (seen[0] + 1, max(seen[1], at))
    ids = _ids_of(connection, combined)
    new_rows: list[tuple[str, dict[str, Any]]] = []
    emails_taken: dict[str, int] = {}
    opted_in: list[str] = []
    fresh = [(key, values) for key, values in combined.items() if key not in ids]
    # The columns no new lead of the chunk fills are left out of the insert: nullable,
    # without a default of their own, they are NULL either way (a file's unused fields).
    # (A column no row has is skipped without looking at every row for it.)
    named: set[str] = set()
    for _, values in fresh:
        named.update(values)
    inputs = [
        c for c in _NEW_LEAD_INPUT if c in named and any(v.get(c) is not None for _, v in fresh)
    ]
    answered = any(
        v.get("consent") is not None or v.get("consent_basis") is not None for _, v in fresh
    )
    stage, opt_in = INITIAL_STAGE.value, ConsentBasis.CONSENT.value
    for key, values in fresh:
        email = values.get("email")
        address = email_key(email) if email else None
        if address is not None and address in emails_taken:
            # Two new people with one email (different external ids): the email
            # identifies only the first; the other is kept without it.
            report.warnings.append(
                RowError(
                    first_row[key],
                    "email",
                    f"{email} is the email of another lead (line "
                    f"{emails_taken[address]}, another external id); left out",
                )
            )
            values["email"] = email = address = None
        if email and address is not None:
            emails_taken[address] = first_row[key]
            if values.get("consent_basis") == opt_in:
                opted_in.append(email)
        at = first_at[key]
        count, last = touched_at[key]
        new_rows.append(
            (
                key,
                {
                    **dict(zip(inputs, map(values.get, inputs), strict=True)),
                    "email_key": address,
                    "email_domain": email_domain(email) if email else None,
                    "mailbox_key": mailbox_key(address),
                    "company_key": _company_key(values.get("company")),
                    "last_source": values.get("last_source"),
                    "last_campaign": values.get("last_campaign"),
                    "attributes": values.get("attributes") or {},
                    **(_consent_of(values, at) if answered else {}),
                    "stage": stage,
                    "stage_changed_at": at,
                    "created_at": at,
                    "updated_at": at,
                    "activity_count": max(count, 0),
                    "last_activity_at": last if count > 0 else None,
                },
            )
        )
    existed = set(ids)
    # A lead created by another writer since the look-up is skipped here and updated
    # below like any existing lead.
    inserted, known = _insert_in_file_order(connection, new_rows)
    ids.update(known)
    if missing := {k: v for k, v in combined.items() if k not in ids}:
        ids.update(_ids_of(connection, missing))
    counted = {ids[k] for k, row in new_rows if row["activity_count"] and ids[k] in inserted}
    report.created += len(new_rows)

    survivors = _lock_survivors(connection, sorted({ids[k] for k in existed}))
    # A lead without email (found by external id or phone) may take the row's email,
    # unless another lead has it.
    offered = {
        email_key(v["email"])
        for k, v in combined.items()
        if k in existed and v.get("email") and survivors[ids[k]]["email_key"] is None
    }
    taken = {row[0] for row in find_by_keys(connection, leads, "email_key", sorted(offered))}
    pending: dict[int, dict[str, Any]] = {}
    for key, values in combined.items():
        if key not in existed:
            continue
        target = survivors[ids[key]]
        ids[key] = int(target["id"])
        current = pending.setdefault(int(target["id"]), dict(target))
        if decide_consent(current, values).opt_in and values.get("email"):
            opted_in.append(values["email"])
        changes = merge_profile(current, values, at=now)
        address = changes.get("email")
        free = address is not None and email_key(address) not in taken
        keep_identity(current, changes, email_free=free)
        if "email" in changes and current["email_key"] is None:
            current["email_key"] = email_key(changes["email"])
            taken.add(current["email_key"])
        current.update(changes)
    by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    compare_again: list[int] = []
    for lead_id in sorted(pending):
        current = pending[lead_id]
        original = survivors[lead_id]
        changes = {c: current[c] for c in MERGED_COLUMNS if current.get(c) != original.get(c)}
        if not changes:
            report.unchanged += 1
            continue
        report.updated += 1
        if compared_fields_changed(changes, original.get("email_key")):
            compare_again.append(lead_id)
        if "email" in changes:
            changes["email_key"] = email_key(changes["email"])
            changes["email_domain"] = email_domain(changes["email"])
            changes["mailbox_key"] = mailbox_key(changes["email_key"])
        if "company" in changes:
            changes["company_key"] = company_key(changes["company"])
        columns = tuple(sorted(changes))
        by_columns.setdefault(columns, []).append(
            {"lid": lead_id, **{f"v_{c}": v for c, v in changes.items()}}
        )
    if emails_taken and _erasures_exist(connection):
        carry_erasure_in(connection, list(emails_taken), now=now)
    lift_suppressions_in(connection, opted_in)
    for columns, rows in by_columns.items():
        connection.execute(
            update(leads)
            .where(leads.c.id == bindparam("lid"))
            .values({c: bindparam(f"v_{c}") for c in columns} | {"updated_at": now}),
            rows,
        )

    latest: dict[int, datetime] = {}
    counts: dict[int, int] = {}
    kind, by = ActivityType.CAPTURED.value, actor.name
    captured = [
        ActivityRow(ids[key], kind, at, at, touch, keys.get(number), by)
        for key, touch, at, number in touches
    ]
    captured = [captured[i] for i in insert_activity_rows(connection, captured)]
    for row_values in captured:
        lead_id, at = row_values.lead_id, row_values.occurred_at
        if lead_id in counted:
            continue
        counts[lead_id] = counts.get(lead_id, 0) + 1
        latest[lead_id] = max(latest.get(lead_id, at), at)
    if counts:
        bump_counters(connection, {i: (n, latest[i]) for i, n in counts.items()})
    touched: dict[int, list[Event]] = {}
    for row_values in captured:
        touched.setdefault(row_values.lead_id, []).append(
            Event(row_values.type, row_values.occurred_at, row_values.properties)
        )
    if score:
        report.mql += sum(
            u.became_mql
            for u in score_leads_in(
                connection, sorted(touched), now=now, actor=actor, new_events=touched
            )
        )
    new_ids = [
        ids[key] for key, r in new_rows if r.get("phone") or r["company_key"] or r["email_domain"]
    ]
    # The leads this chunk inserted cannot be queued yet (on PostgreSQL: copied); one
    # another writer created first may be.
    queue_duplicate_checks_in(
        connection, [i for i in new_ids if i in inserted], now=now, created=True
    )
    queue_duplicate_checks_in(connection, [i for i in new_ids if i not in inserted], now=now)
    report.duplicate_checks_queued += len(new_ids)
    queue_duplicate_checks_in(connection, compare_again, now=now, again=True)
    report.compared_again += len(compare_again)
    return ids


@collector_paused
def import_activities(
    ctx: Context,
    source: Path | IO[str],
    *,
    actor: Principal,
    column_map: Mapping[str, str] | None = None,
    naive_timezone: str = "UTC",
    progress: Progress | None = None,
    encoding: str = "utf-8-sig",
    day_first: bool = False,
) -> ImportReport:
    """Import an activities CSV in short transactions (about :data:`CHUNK_SECONDS` of
    writing each, at most ``BATON_IMPORT_CHUNK_ROWS`` events: :func:`next_chunk_size`)
    (idempotency keys honoured: a file imported twice stores its keyed events once, so
    an import stopped halfway is completed by running it again), recorded as
    ``actor``'s.

    Every row says when its event happened (``occurred_at``, ``Timestamp``, ``Date``...),
    in any format :func:`~baton.domain.dates.read_instant` reads: ``02/03/2026`` is 2
    March with ``day_first``, and a time without a zone is in ``naive_timezone``."""
    allowed(actor, Action.INGEST_ACTIVITY)
    report, good = _read_and_validate(
        source,
        encoding=encoding,
        aliases=ACTIVITY_ALIASES,
        known=ACTIVITY_COLUMNS,
        column_map=column_map,
        extras_key="properties",
        model=ActivityCreate,
        context={**validation_context(ctx, naive_timezone), "day_first": day_first},
        validate=_reject_all(validate_many),
        step=5000,
        progress=progress,
    )
    most = ctx.settings.import_chunk_rows  # one transaction each: others get turns
    size, start = min(most, 200), 0
    while start < len(good):
        batch = good[start : start + size]
        with ctx.write() as connection:
            began = time.perf_counter()  # after the turn came: the transaction itself
            result = ingest_validated_in(connection, batch, actor=actor, now=ctx.clock.now())
            report.stored += result.stored
            report.duplicates += result.duplicates
            report.created += result.leads_created
            report.errors.extend(result.errors)
        size = next_chunk_size(size, len(batch), time.perf_counter() - began, most)
        start += len(batch)
        if progress:
            progress("writing", start, len(good))
    report.errors.sort(key=lambda e: e.row)
    return report
