"""Lead search folds accents: ``gonzalez`` finds González, ``gonzález`` finds Gonzalez.

- SQLite: the FTS5 table ``leads_search`` is made again with ``remove_diacritics 2``
  (it had ``0``) and rebuilt from the ``leads`` rows; its triggers stay as they are
  (they name the table and its columns, which do not change).
- PostgreSQL: ``ix_leads_search`` is made again over the same document with the
  accents of Latin letters taken off first: ``normalize`` to NFD, the combining accents
  after a letter A–Z dropped, ``normalize`` to NFC (immutable, so an index may use it;
  the ``unaccent`` extension may be missing and is not immutable; ``translate()`` with
  every accented letter cost ten times as much CPU per row); a text of ASCII only is
  left as it is without that work. Needs a UTF-8 database.

Both index every existing lead at once: the FTS5 ``rebuild`` reads them all, and a new
expression index is built over the table. The query side folds the same way in
Python (:func:`baton.domain.search.fold_accents`).

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-05 23:10:00
"""

from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None

FIELDS = ("email", "first_name", "last_name", "company")

# Frozen copies of baton.store.search as of this revision.
_JOINED = " || ' ' || ".join(f"coalesce({f}, '')" for f in FIELDS)
_FOLDED = (
    f"CASE WHEN octet_length({_JOINED}) = char_length({_JOINED}) THEN {_JOINED}"
    f" ELSE normalize(regexp_replace(normalize({_JOINED}, NFD),"
    " '([A-Za-z])[\\u0300-\\u036f]+', '\\1', 'g'), NFC) END"
)
PG_DOCUMENT = (
    f"to_tsvector('simple'::regconfig, regexp_replace(lower({_FOLDED}),"
    " '[^[:alnum:]]+', ' ', 'g'))"
)
OLD_PG_DOCUMENT = (
    f"to_tsvector('simple'::regconfig, regexp_replace(lower({_JOINED}),"
    " '[^[:alnum:]]+', ' ', 'g'))"
)


def _sqlite_table(remove_diacritics: int) -> None:
    op.execute("DROP TABLE leads_search")
    op.execute(
        f"CREATE VIRTUAL TABLE leads_search USING fts5({', '.join(FIELDS)}, content='leads',"
        f" content_rowid='id', tokenize=\"unicode61 remove_diacritics {remove_diacritics}"
        " separators '_'\", prefix='1 2 3')"
    )
    op.execute("INSERT INTO leads_search(leads_search) VALUES ('rebuild')")


def _pg_index(document: str) -> None:
    op.execute("DROP INDEX IF EXISTS ix_leads_search")
    op.execute(f"CREATE INDEX ix_leads_search ON leads USING gin ({document})")


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        _sqlite_table(2)
    elif dialect == "postgresql":
        _pg_index(PG_DOCUMENT)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        _sqlite_table(0)
    elif dialect == "postgresql":
        _pg_index(OLD_PG_DOCUMENT)
