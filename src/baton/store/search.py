"""The lead search index, in SQL (built by migration 0009, outside ``tables.metadata``).

SQLite: ``leads_search``, an FTS5 table with external content (the ``leads`` rows) kept
in sync by triggers on ``leads``, so every write path (capture, the bulk import, merges,
the demo) keeps it exact. PostgreSQL: ``ix_leads_search``, a GIN index over
:data:`PG_DOCUMENT`; a query must use that very expression to use the index.

Both index email, first and last name and company with every run of characters other
than letters and digits read as a space; :func:`baton.domain.search.search_tokens`
splits what people type the same way, and each token matches as a prefix.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, column, literal_column, select, table, text
from sqlalchemy.sql import FromClause, Select

from baton.store.tables import leads

FIELDS = ("email", "first_name", "last_name", "company")

PG_DOCUMENT = (
    "to_tsvector('simple'::regconfig, regexp_replace(lower("
    + " || ' ' || ".join(f"coalesce({f}, '')" for f in FIELDS)
    + "), '[^[:alnum:]]+', ' ', 'g'))"
)
"""The indexed expression, exactly as in the migration (columns unqualified)."""

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
