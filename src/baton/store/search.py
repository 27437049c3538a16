"""The lead search index, in SQL (built by migration 0009, outside ``tables.metadata``).

SQLite: ``leads_search``, an FTS5 table with external content (the ``leads`` rows) kept
in sync by triggers on ``leads``, so every write path (capture, the bulk import, merges,
the demo) keeps it exact. PostgreSQL: ``ix_leads_search``, a GIN index over
:data:`PG_DOCUMENT`; a query must use that very expression to use the index.

Both index email, first and last name and company with every run of characters other
than letters and digits read as a space and accents folded (migration 0022: FTS5's
``remove_diacritics 2``; on PostgreSQL :data:`PG_FOLDED`, not the ``unaccent``
extension, which a server may lack and which is not immutable, so no index could use
it). :func:`baton.domain.search.search_tokens` splits and folds what people type the
same way, and each token matches as a prefix.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, column, literal_column, select, table, text
from sqlalchemy.sql import FromClause, Select

from baton.store.tables import leads

FIELDS = ("email", "first_name", "last_name", "company")

PG_FOLDED = (
    "CASE WHEN octet_length({0}) = char_length({0}) THEN {0}"
    " ELSE normalize(regexp_replace(normalize({0}, NFD),"
    " '([A-Za-z])[\\u0300-\\u036f]+', '\\1', 'g'), NFC) END"
)
"""The accents of Latin letters taken off, as :func:`baton.domain.search.fold_accents`
does: decomposed, the combining accents after a letter A–Z dropped, composed again
(``normalize`` is immutable, so an index may use it; the database must be UTF-8); a
text of ASCII only (as long in bytes as in characters) is left as it is without that
work. Server CPU to compute the document, per lead (100,000, 5 runs alternated, load
5–7): ASCII only 5.9 µs as before folding; with 20 % of the names accented 5.7 → 9.7
(→ 11.1 unguarded); ``translate()`` with the 486 accented letters cost 63 (it scans its
whole list for every plain letter)."""

PG_DOCUMENT = (
    "to_tsvector('simple'::regconfig, regexp_replace(lower("
    + PG_FOLDED.format(" || ' ' || ".join(f"coalesce({f}, '')" for f in FIELDS))
    + "), '[^[:alnum:]]+', ' ', 'g'))"
)
"""The indexed expression, exactly as in the migration (columns unqualified): accents
folded before ``lower()``, which in a database with the C locale lowers ASCII only."""

SQLITE_OBJECTS = ("leads_search",)
"""Names of the search objects (the FTS5 table and its shadow tables start with it)."""


def outside_metadata(name: str | None, type_: str, parent_names: Any) -> bool:
    """Alembic ``include_name`` hook: False for the search objects, which the metadata
    cannot declare (an FTS5 virtual table, a dialect-specific expression index)."""
    if name is None:
        return True
    return not (name.startswith("leads_search") or name == "ix_leads_search")


def fts_match(tokens: Sequence[str]) -> str:
    """An FTS5 query matching every token as a prefix (tokens are letters and digits
    only, so quoting them is enough)."""
    return " AND ".join(f'"{t}"*' for t in tokens)


def pg_tsquery(tokens: Sequence[str]) -> str:
    """A ``to_tsquery('simple', …)`` text matching every token as a prefix."""
    return " & ".join(f"{t}:*" for t in tokens)


def matching_ids(dialect: str, tokens: Sequence[str]) -> Select[Any]:
    """``SELECT`` of the ids of leads whose indexed fields match all ``tokens``."""
    if dialect == "sqlite":
        return (
            select(literal_column("rowid").label("id"))
            .select_from(text("leads_search"))
            .where(
                text("leads_search MATCH :search_match").bindparams(search_match=fts_match(tokens))
            )
        )
    return select(leads.c.id).where(search_condition(dialect, tokens))


def search_condition(dialect: str, tokens: Sequence[str]) -> ColumnElement[bool]:
    """A condition on ``leads`` rows: their indexed fields match all ``tokens``."""
    if dialect == "sqlite":
        return leads.c.id.in_(matching_ids(dialect, tokens))
    return text(
        f"{PG_DOCUMENT.replace('coalesce(', 'coalesce(leads.')}"
        " @@ to_tsquery('simple'::regconfig, :search_query)"
    ).bindparams(search_query=pg_tsquery(tokens))  # type: ignore[return-value]


leads_search = table("leads_search", column("rowid"))
"""The FTS5 table (SQLite), for joins."""


def searched(
    dialect: str, base: FromClause, tokens: Sequence[str]
) -> tuple[FromClause, ColumnElement[bool]]:
    """``base`` (``leads`` or a join starting with it) restricted to the leads matching
    ``tokens``: the FROM clause and the condition. On SQLite the FTS5 table drives the
    join, so the matches stream out of the index in rowid order (a capped count or a
    page by id stops early) instead of being collected first as ``id IN (…)`` does."""
    if dialect == "sqlite":
        match = text("leads_search MATCH :search_match").bindparams(search_match=fts_match(tokens))
        return leads_search.join(base, leads.c.id == leads_search.c.rowid), match  # type: ignore[return-value]
    return base, search_condition(dialect, tokens)
