"""Lead search: the query people build on the lead list (search text, filters, sort,
page) and the saved filters that name one, as plain values (no I/O).

The search text matches by token prefix: it is split into runs of letters and digits
(``ann@north`` → ``ann``, ``north``) and a lead matches when each run starts a word of
its email, first or last name or company (the index in :mod:`baton.store.search`
splits those fields the same way). Accents are folded on both sides (:func:`fold_accents`):
``gonzalez`` finds González and ``gonzález`` finds Gonzalez, since people type names
with and without them.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from enum import StrEnum
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator

from baton.domain.batches import describe
from baton.domain.contract import Grade
from baton.domain.errors import FieldProblem, ValidationFailed
from baton.domain.leads import fold_source
from baton.domain.lifecycle import Stage
from baton.domain.suggest import suggest

MAX_TOKENS: Final = 8
"""Search words used at most (more narrow nothing a person would notice)."""
MAX_PAGE: Final = 200
MAX_OFFSET: Final = 100_000
"""Deepest row a page may start at (refine the search instead of paging further)."""
_TOKEN = re.compile(r"[^\W_]+")
_MARKS = re.compile("(?<=[A-Za-z])[\u0300-\u036f]+")
"""Combining accents (the Unicode block U+0300–U+036F) after a Latin letter A–Z."""


def fold_accents(text: str) -> str:
    """``text`` with the accents of Latin letters taken off: ``é`` → ``e``, ``Ñ`` →
    ``N``, ``ễ`` → ``e`` (decomposed, the accents after a letter A–Z dropped, composed
    again). Letters that are not a letter plus accents (``ø``, ``ł``, ``ß``) and other
    scripts (``й`` stays ``й``) are kept. Exactly what the PostgreSQL index does
    (:data:`baton.store.search.PG_FOLDED`, the same three steps), so a query finds what
    the index holds; SQLite's FTS5 folds the same letters with ``remove_diacritics 2``
    but two (Ǡ, ǡ: an A with two marks, Livonian)."""
    if text.isascii():
        return text
    return unicodedata.normalize("NFC", _MARKS.sub("", unicodedata.normalize("NFD", text)))


def search_tokens(text: str) -> list[str]:
    """The words of a search text, accents folded and lower-cased: runs of letters and
    digits, at most :data:`MAX_TOKENS`, each cut to 40 characters."""
    return [t[:40] for t in _TOKEN.findall(fold_accents(text).casefold())][:MAX_TOKENS]


class LeadSort(StrEnum):
    """What the lead list is ordered by."""

    SCORE = "score"
    CREATED = "created"
    LAST_ACTIVITY = "last_activity"
    NAME = "name"


def _listed(value: Any) -> Any:
    """One value, a list, or comma-separated values, as a list of stripped items."""
    if value is None or value == "":
        return []
    items = [value] if isinstance(value, str) else list(value)
    return [
        part.strip()
        for item in items
        for part in (item.split(",") if isinstance(item, str) else [item])
        if not isinstance(part, str) or part.strip()
    ]


def _lower_list(value: Any) -> Any:
    """Lower-cased, each value once (``[sal, SAL]`` is the same filter as ``[sal]``)."""
    return list(dict.fromkeys(v.lower() if isinstance(v, str) else v for v in _listed(value)))


def _upper_list(value: Any) -> Any:
    """Upper-cased, each value once."""
    return list(dict.fromkeys(v.upper() if isinstance(v, str) else v for v in _listed(value)))


def _blank_none(value: Any) -> Any:
    return (value.strip() or None) if isinstance(value, str) else value


def _folded(value: Any) -> Any:
    return (fold_source(value) or None) if isinstance(value, str) else value


def _lower(value: Any) -> Any:
    return (value.strip().lower() or None) if isinstance(value, str) else value


class LeadQuery(BaseModel):
    """Which leads to list and how: every condition given must hold. ``owner`` is the
    email of the rep of the lead's latest handoff."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    q: Annotated[str, Field(max_length=200)] = ""
    stage: Annotated[list[Stage], BeforeValidator(_lower_list), Field(max_length=9)] = []
    grade: Annotated[list[Grade], BeforeValidator(_upper_list), Field(max_length=4)] = []
    source: Annotated[Annotated[str, Field(max_length=200)] | None, BeforeValidator(_folded)] = None
    tag: Annotated[Annotated[str, Field(max_length=100)] | None, BeforeValidator(_lower)] = None
    owner: Annotated[Annotated[str, Field(max_length=254)] | None, BeforeValidator(_lower)] = None
    sort: LeadSort = LeadSort.CREATED
    order: Literal["asc", "desc"] = "desc"
    offset: Annotated[int, Field(ge=0, le=MAX_OFFSET)] = 0
    limit: Annotated[int, Field(ge=1, le=MAX_PAGE)] = 50

    @field_validator("q", mode="before")
    @classmethod
    def _text(cls, value: Any) -> Any:
        if value is None:
            return ""
        if isinstance(value, str):
            if "\x00" in value:
                raise ValueError("cannot contain NUL")
            return " ".join(value.split())
        return value

    @property
    def tokens(self) -> list[str]:
        return search_tokens(self.q)

    def criteria(self) -> dict[str, Any]:
        """What a saved filter keeps: everything but the page position, as JSON values,
        defaults left out."""
        return self.model_dump(mode="json", exclude={"offset"}, exclude_defaults=True)

    def page(self, offset: int) -> LeadQuery:
        return self.model_copy(update={"offset": max(0, min(offset, MAX_OFFSET))})


def read_lead_query(values: Mapping[str, Any]) -> LeadQuery:
    """The query from ``values`` (blank ones ignored), or :class:`ValidationFailed`
    naming every bad field (a closed list's allowed values included)."""
    given = {k: v for k, v in values.items() if v is not None and v not in ("", [], ())}
    try:
        return LeadQuery.model_validate(given)
    except ValidationError as exc:
        problems = [
            FieldProblem(loc.split(".", 1)[0], _words(item, message))
            for item, (loc, message) in zip(
                exc.errors(include_url=False), describe(exc), strict=True
            )
        ]
        detail = "; ".join(f"{p.loc}: {p.message}" for p in problems)
        raise ValidationFailed(f"invalid lead query: {detail}", problems) from None


def _words(item: Mapping[str, Any], message: str) -> str:
    expected = (item.get("ctx") or {}).get("expected")
    if item.get("type") in ("enum", "literal_error") and expected:
        given = item.get("input")
        hint = suggest(given, re.findall(r"'([^']*)'", expected)) if isinstance(given, str) else ""
        return f"unknown value {given!r}{hint}; use one of {expected}"
    return message


SavedFilterName = Annotated[str, BeforeValidator(_blank_none), Field(min_length=1, max_length=100)]


class SavedFilterCreate(BaseModel):
    """A named lead query to keep: private to its owner unless ``shared``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: SavedFilterName
    query: LeadQuery
    shared: bool = False
