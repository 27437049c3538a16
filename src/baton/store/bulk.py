"""Fast paths for the high-volume writes (activity ingest, counters).

SQLAlchemy's per-row parameter processing costs more than SQLite's own insert, so these
statements go to the driver directly with values already in the column's stored form:
on SQLite an ``executemany`` with the same text format SQLAlchemy uses for datetimes;
on PostgreSQL ``COPY`` of the events whose idempotency keys are not stored yet, else
single statements over ``unnest`` of arrays (one round trip per batch instead of one
per row). Arrays go to PostgreSQL as one array literal per column (text the driver
passes as it is: it dumps a Python list element by element, which costs more than the
server's work). Both honour the idempotency key. Tests check that rows written here
read back exactly like rows written through the Core tables, and that each fast
conversion gives the text of the plain one.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any, NamedTuple, cast

from sqlalchemy import ARRAY, JSON, Column, MetaData, String, Table
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.exc import DBAPIError, IntegrityError

from baton.domain.event_rows import utc_text
from baton.store.types import UtcDateTime

_JSON = json.JSONEncoder(allow_nan=False)
"""One encoder for all rows: ``json.dumps`` with a non-default option builds a new
encoder per call, which costs more than the insert itself."""


def _prebuilt_encoder() -> Any:
    """``_JSON.encode`` without its per-call set-up (it builds the C encoder on every
    call, which costs more than encoding a small object): the same C encoder with the
    same options, built once, and no check for circular references (the values come
    from JSON or passed :func:`~baton.domain.limits.check_json`, which bounds depth)."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # pragma: no cover - CPython always has the C encoder
        return _JSON.encode
    encode = make(
        None,
        _JSON.default,
        json.encoder.encode_basestring_ascii,
        None,
        _JSON.key_separator,
        _JSON.item_separator,
        False,
        False,
        False,
    )

    def dumps(value: Any) -> str:
        return "".join(encode(value, 0))

    return dumps


encode_json = _prebuilt_encoder()
"""``_JSON.encode`` (the text stored for a JSON column), several times faster."""


def sqlite_datetime(value: datetime) -> str:
    """The text SQLAlchemy stores for a datetime on SQLite (naive UTC, microseconds)."""
    if value.tzinfo is None:
        raise ValueError("naive datetime given to the database; use the injected clock")
    return utc_text(value)


def read_datetime(value: datetime | str) -> datetime:
    """A datetime as the driver returns it (SQLite: the text above) made aware UTC."""
    if isinstance(value, str):
        return datetime.fromisoformat(value).replace(tzinfo=UTC)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


class ActivityRow(NamedTuple):
    """An activity as :func:`insert_activity_rows` takes it (the table's columns), and
    ``occurred_text``: :func:`sqlite_datetime` of ``occurred_at`` when the caller has it
    already (the fast validation reads it from the text as sent), else ``None``."""

    lead_id: int
    type: str
    occurred_at: datetime
    received_at: datetime
    properties: Mapping[str, Any]
    idempotency_key: str | None
    recorded_by: str | None
    occurred_text: str | None = None

    def columns(self) -> dict[str, Any]:
        """The row as the table's column values."""
        values = self._asdict()
        del values["occurred_text"]
        return values


def insert_activities(connection: Connection, rows: Sequence[Mapping[str, Any]]) -> list[int]:
    """Insert activity rows (keys: lead_id, type, occurred_at, received_at, properties,
    idempotency_key, recorded_by) and return the positions (in ``rows``) of the rows
    actually stored: a row whose idempotency key exists already (stored before, by a
    concurrent retry that won the race, or earlier in ``rows``) is skipped and not
    returned, so counters and scores stay exact."""
    return insert_activity_rows(
        connection,
        [
            ActivityRow(
                r["lead_id"],
                r["type"],
                r["occurred_at"],
                r["received_at"],
                r["properties"],
                r["idempotency_key"],
                r["recorded_by"],
            )
            for r in rows
        ],
    )


def insert_activity_rows(connection: Connection, rows: Sequence[ActivityRow]) -> list[int]:
    """:func:`insert_activities` of rows already in the table's column order.

    SQLite: one ``INSERT ... ON CONFLICT DO NOTHING`` run per row; only when it stored
    fewer rows than given are the new rows read back (ids above the highest before:
    writers are serialized) to tell which.

    PostgreSQL: the keys are looked up in one statement and the new rows copied
    (``COPY``) under a savepoint; when a concurrent writer stored one of the keys after
    the look-up, the copy fails, is rolled back to the savepoint, and the rows go in
    with ``INSERT ... ON CONFLICT DO NOTHING`` instead: the same result either way."""
    if not rows:
        return []
    if connection.dialect.name == "postgresql":
        return _insert_activities_postgres(connection, rows)
    dumps = encode_json
    # Rows received together share their received_at (told apart by identity: hashing
    # an aware datetime costs as much as writing it out).
    last_at: datetime | None = None
    at_text = ""
    params = []
    for lead, kind, occurred, at, properties, key, by, occurred_text in rows:
        if at is not last_at:
            last_at, at_text = at, sqlite_datetime(at)
        if occurred_text is None:
            # A capture happens when it is received: the same moment, written once.
            occurred_text = at_text if occurred is at else sqlite_datetime(occurred)
        params.append((lead, kind, occurred_text, at_text, dumps(properties), key, by))
    before = connection.exec_driver_sql("SELECT max(id) FROM activities").scalar() or 0
    stored = connection.exec_driver_sql(
        f"INSERT INTO activities ({_ACTIVITY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (idempotency_key) DO NOTHING",
        params,
    ).rowcount
    if stored == len(rows):
        return list(range(len(rows)))
    new_keys = {
        key
        for (key,) in connection.exec_driver_sql(
            "SELECT idempotency_key FROM activities WHERE id > ? AND idempotency_key IS NOT NULL",
            (before,),
        )
    }
    positions = []
    for i, r in enumerate(rows):
        if r.idempotency_key is None:
            positions.append(i)
        elif r.idempotency_key in new_keys:  # the first row with the key is the one stored
            positions.append(i)
            new_keys.discard(r.idempotency_key)
    return positions


_ACTIVITY_KEYS = Table("activities", MetaData(), Column("idempotency_key"))
_ACTIVITY_COLUMNS = (
    "lead_id, type, occurred_at, received_at, properties, idempotency_key, recorded_by"
)
_ACTIVITY_COLUMNS_LIST = _ACTIVITY_COLUMNS.split(", ")


def _insert_activities_postgres(connection: Connection, rows: Sequence[ActivityRow]) -> list[int]:
    """:func:`insert_activity_rows` on PostgreSQL. Rows go in the order of their keys, so
    concurrent batches with overlapping keys wait for each other instead of deadlocking."""
    every_key = [r.idempotency_key for r in rows]
    keyless = None in every_key
    keys = sorted({key for key in every_key if key is not None})
    known = {key for (key,) in find_by_keys(connection, _ACTIVITY_KEYS, "idempotency_key", keys)}
    positions = []
    for i, key in enumerate(every_key):
        if key is not None:
            if key in known:
                continue
            known.add(key)
        positions.append(i)
    if not positions:
        return []
    fresh = (
        sorted(positions, key=lambda i: (every_key[i] is None, every_key[i] or ""))
        if keyless
        else sorted(positions, key=cast(list[str], every_key).__getitem__)
    )
    if _copy_activities(connection, [rows[i] for i in fresh], keyed=bool(keys)):
        return positions
    in_order = [rows[i] for i in fresh]
    stored = connection.exec_driver_sql(
        f"INSERT INTO activities ({_ACTIVITY_COLUMNS}) SELECT * FROM unnest(%s::bigint[],"
        " %s::varchar[], %s::timestamptz[], %s::timestamptz[], %s::jsonb[],"
        " %s::varchar[], %s::varchar[])"
        " ON CONFLICT (idempotency_key) DO NOTHING RETURNING idempotency_key",
        (
            pg_array([r.lead_id for r in in_order]),
            pg_array([r.type for r in in_order]),
            pg_array([r.occurred_at for r in in_order]),
            pg_array([r.received_at for r in in_order]),
            pg_array([encode_json(r.properties) for r in in_order]),
            pg_array([r.idempotency_key for r in in_order]),
            pg_array([r.recorded_by for r in in_order]),
        ),
    )
    won = {key for (key,) in stored}
    return [
        i for i in positions if rows[i].idempotency_key is None or rows[i].idempotency_key in won
    ]


def _copy_activities(
    connection: Connection, rows: Sequence[ActivityRow], *, keyed: bool = True
) -> bool:
    """``COPY`` the rows into activities under a savepoint, through the driver's own
    connection (the same transaction); ``False``, with nothing written, when one of the
    idempotency keys was stored by a concurrent writer after the caller looked. Rows
    without keys (not ``keyed``: an import's captures) cannot conflict: no savepoint,
    two round trips less."""
    data = copy_lines(rows)
    if not keyed:
        _copy_text_into(connection, "activities", _ACTIVITY_COLUMNS_LIST, data)
        return True
    return _copy_unless_stored(connection, "activities", _ACTIVITY_COLUMNS_LIST, data)


def _copy_unless_stored(
    connection: Connection, name: str, columns: Sequence[str], data: str
) -> bool:
    """``COPY`` ``data`` into table ``name`` under a savepoint; ``False``, with nothing
    written, when a row hits a unique key (a concurrent writer stored it first). Any
    other error is raised, as SQLAlchemy's (a deadlock is an ``OperationalError`` that
    the caller's retry sees)."""
    savepoint = connection.begin_nested()
    try:
        _copy_text_into(connection, name, columns, data)
    except IntegrityError as exc:
        if getattr(exc.orig, "sqlstate", None) != _UNIQUE_VIOLATION:
            raise
        savepoint.rollback()
        return False
    savepoint.commit()
    return True


def copy_lines(rows: Sequence[ActivityRow]) -> str:
    """The rows as ``COPY``'s text format reads them (the columns of
    :data:`_ACTIVITY_COLUMNS`): every text field escaped as :func:`_copy_text` escapes it,
    with the checks that most fields need nothing done cheaper than a search each (a
    test holds the two together)."""
    dumps = encode_json
    text = _copy_text
    null = _COPY_NULL
    # Rows received together share their received_at and recorder, and a batch has few
    # types: each written once (the received_at told apart by identity, as on SQLite).
    fields: dict[str | None, str] = {}
    last_at: datetime | None = None
    at_text = ""
    lines = []
    for lead, kind, occurred, received, properties, key, by, occurred_text in rows:
        if received is not last_at:
            last_at, at_text = received, received.isoformat()
        # timestamptz input: the UTC text with its zone, or the ISO text of the datetime
        when = occurred.isoformat() if occurred_text is None else occurred_text + "+00"
        # The encoder's JSON is ASCII with every control character escaped: only its
        # backslashes need escaping.
        data = dumps(properties)
        if "\\" in data:
            data = data.replace("\\", "\\\\")
        if key is not None:
            key = key if key.isprintable() and "\\" not in key else text(key)
        kind_field = fields.get(kind)
        if kind_field is None:
            kind_field = fields[kind] = text(kind)
        by_field = fields.get(by)
        if by_field is None:
            by_field = fields[by] = null if by is None else text(by)
        lines.append(
            f"{lead}\t{kind_field}\t{when}\t{at_text}\t{data}"
            f"\t{null if key is None else key}\t{by_field}\n"
        )
    return "".join(lines)


_UNIQUE_VIOLATION = "23505"
_COPY_NULL = "\\N"
_COPY_SPECIAL = re.compile(r"[\\\t\n\r]")
_COPY_ESCAPES = {"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"}


def _copy_text(value: str) -> str:
    """``value`` as a field of ``COPY``'s text format (backslash escapes)."""
    if _COPY_SPECIAL.search(value) is None:
        return value
    return _COPY_SPECIAL.sub(lambda m: _COPY_ESCAPES[m.group()], value)


def copy_new_rows(connection: Connection, table: Table, rows: Sequence[Mapping[str, Any]]) -> bool:
    """PostgreSQL: ``COPY`` ``rows`` (all with the same keys, values of the kinds
    :func:`copy_table_text` writes) into ``table`` under a savepoint, in the caller's
    transaction; ``False``, with nothing written, when a row hits a unique key (a
    concurrent writer stored it first) or a value is of another kind: the caller then
    inserts them its usual way (``ON CONFLICT DO NOTHING``), with the same result.

    ``COPY`` parses each row once and skips the per-row work of ``INSERT … SELECT …
    FROM unnest … ON CONFLICT``: the arrays parsed into values, the speculative
    insertion into every unique index, the ``RETURNING`` (measured on a lead import:
    about a third less of the server's CPU for the leads, and a fifth of the client's
    for building their text)."""
    data = copy_table_text(table, rows)
    if data is None:
        return False
    return _copy_unless_stored(connection, table.name, list(rows[0]), data)


def copy_rows_in(connection: Connection, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """PostgreSQL: ``COPY`` ``rows`` (all with the same keys) into ``table``, in the
    caller's transaction, for rows no other writer can have stored (about leads the
    transaction created itself): a conflict is an error, as with :func:`insert_rows`
    without ``ignore_conflicts``, which takes rows with values of other kinds."""
    data = copy_table_text(table, rows)
    if data is None:
        insert_rows(connection, table, rows)
        return
    if data:
        _copy_text_into(connection, table.name, list(rows[0]), data)


def _copy_text_into(connection: Connection, name: str, columns: Sequence[str], data: str) -> None:
    """``COPY name (columns) FROM STDIN`` of ``data`` through the driver's own
    connection (the caller's transaction)."""
    driver = connection.connection.driver_connection
    assert driver is not None
    statement = f"COPY {name} ({', '.join(columns)}) FROM STDIN"
    dbapi = connection.dialect.loaded_dbapi
    try:
        with driver.cursor() as cursor, cursor.copy(statement) as copy:
            copy.write(data)
    except dbapi.Error as exc:
        # The driver's own error, as SQLAlchemy raises it for every other statement:
        # a deadlock or a serialization failure (OperationalError) is retried by
        # Context.write_retrying, and the shells' handlers answer the rest.
        raise DBAPIError.instance(
            statement, None, exc, dbapi.Error, dialect=connection.dialect
        ) from exc


def copy_table_text(table: Table, rows: Sequence[Mapping[str, Any]]) -> str | None:
    """``rows`` (all with the same keys) as ``COPY``'s text format reads them into
    ``table``'s columns of those names, or ``None`` when a value is of a kind it does
    not write (texts, integers, booleans, aware datetimes and ``None``; any value in a
    JSON column). Built column by column, so that a column of plain texts (no tab,
    line break or backslash in any) is taken as it is, in one search."""
    if not rows:
        return ""
    names = list(rows[0])
    # The rows' values column by column: one C-level itemgetter per row, transposed by
    # zip (a comprehension per column cost more than the rest of the text).
    by_column = (
        zip(*map(itemgetter(*names), rows), strict=True)
        if len(names) > 1
        else [[row[names[0]] for row in rows]]
    )
    columns: list[list[str]] = []
    for name, values in zip(names, by_column, strict=True):
        column_type = table.c[name].type
        if isinstance(column_type, JSON) or "JSON" in type(column_type).__name__:
            # The encoder's JSON is ASCII with every control character escaped: only its
            # backslashes need escaping.
            texts = [encode_json(value) for value in values]
            if any("\\" in text for text in texts):
                texts = [text.replace("\\", "\\\\") for text in texts]
            columns.append(texts)
            continue
        fields = _copy_fields(values)
        if fields is None:
            return None
        columns.append(fields)
    return "".join(line + "\n" for line in map("\t".join, zip(*columns, strict=True)))


def _copy_fields(values: Sequence[Any]) -> list[str] | None:
    """One column's values as ``COPY`` text fields (see :func:`copy_table_text`)."""
    kinds = set(map(type, values))
    null = _COPY_NULL
    if kinds <= _TEXTS:
        texts = [v for v in values if v is not None]
        if _COPY_SPECIAL.search("".join(texts)) is None:
            if len(texts) == len(values):
                return texts
            return [null if v is None else v for v in values]
        return [null if v is None else _copy_text(v) for v in values]
    if kinds <= _INTEGERS:
        return [null if v is None else str(v) for v in values]
    if kinds <= _BOOLEANS:
        return [null if v is None else ("t" if v else "f") for v in values]
    if kinds <= _DATETIMES:
        if any(v is not None and v.tzinfo is None for v in values):
            return None  # read in the server's zone: not this path's to decide
        # A chunk's rows share a few moments: each written once (told apart by identity:
        # hashing an aware datetime costs as much as writing it out).
        fields: list[str] = []
        last: Any = None
        text = null
        for value in values:
            if value is not last:
                last, text = value, null if value is None else value.isoformat()
            fields.append(text)
        return fields
    return None


_TEXTS = {str, type(None)}
_INTEGERS = {int, type(None)}
_BOOLEANS = {bool, type(None)}
_DATETIMES = {datetime, type(None)}


def pg_array(values: Sequence[Any]) -> str:
    """A PostgreSQL array literal of ``values`` (integers, texts, datetimes, ``None``),
    to be cast in the statement (``%s::bigint[]``): the driver passes one text, where a
    Python list is dumped element by element at several times the server's cost.

    Lists of integers alone, and of texts alone with no quote or backslash in them (ids,
    emails, keys: the common arrays), are joined in one step; the text is the same as the
    element-by-element one (a test holds the two together)."""
    kinds = set(map(type, values))
    if kinds == _INT:
        return "{" + ",".join(map(str, values)) + "}"
    if kinds == _STR:
        plain = "".join(values)
        if '"' not in plain and "\\" not in plain:
            return '{"' + '","'.join(values) + '"}'
    return _pg_array_each(values)


_INT = {int}
_STR = {str}
_LITERAL_KINDS = {int, str, datetime, type(None)}
"""The types of the values :func:`pg_array` writes as PostgreSQL reads them back."""


def _pg_array_each(values: Sequence[Any]) -> str:
    """:func:`pg_array` element by element (any values it takes)."""
    parts = []
    for value in values:
        if value is None:
            parts.append("NULL")
        elif type(value) is int:
            parts.append(str(value))
        else:
            text = value.isoformat() if isinstance(value, datetime) else str(value)
            if '"' in text or "\\" in text:
                text = text.replace("\\", "\\\\").replace('"', '\\"')
            parts.append(f'"{text}"')
    return "{" + ",".join(parts) + "}"


def bump_counters(
    connection: Connection,
    per_lead: Mapping[int, tuple[int, datetime]],
    *,
    texts: Mapping[int, str | None] | None = None,
) -> None:
    """Add ``n`` to each lead's activity count and move ``last_activity_at`` forward to
    ``at`` (never backward: a late-arriving old event does not make a lead look stale).

    One statement: on PostgreSQL an update joined to the arrays; on SQLite one prepared
    update run per lead (faster there than a join over ``json_each``). ``texts``: lead
    id -> :func:`sqlite_datetime` of its ``at`` where the caller has it already.

    On PostgreSQL the update of :data:`CACHED_PLAN_FROM` leads or more is planned with
    :data:`CACHED_PAGE_COST` as the cost of a random page (for that statement only):
    the leads it updates were just read and locked by the same transaction, so their
    pages are in memory, and with the default cost (4, a disk seek) the planner hashed
    the whole table for every batch instead of probing the primary key once per lead:
    22 µs of server CPU per event against 7.7 at 100,000 leads (1,000,000 events), and
    growing with the table."""
    if not per_lead:
        return
    known = texts or {}
    if connection.dialect.name == "postgresql":
        ids = sorted(per_lead)
        # timestamptz input: the UTC text with its zone where known, else the ISO text
        stamps = []
        for lead_id in ids:
            stamp = known.get(lead_id)
            stamps.append(per_lead[lead_id][1].isoformat() if stamp is None else stamp + "+00")
        usual = (
            connection.exec_driver_sql(
                "SELECT usual, set_config('random_page_cost', %s, true)"
                " FROM (SELECT current_setting('random_page_cost') AS usual OFFSET 0) AS s",
                (CACHED_PAGE_COST,),
            ).scalar()
            if len(ids) >= CACHED_PLAN_FROM
            else None
        )
        connection.exec_driver_sql(
            "UPDATE leads SET activity_count = leads.activity_count + v.n,"
            " last_activity_at = GREATEST(leads.last_activity_at, v.at)"
            " FROM unnest(%s::bigint[], %s::bigint[], %s::timestamptz[]) AS v(id, n, at)"
            " WHERE leads.id = v.id",
            (
                pg_array(ids),
                pg_array([per_lead[i][0] for i in ids]),
                pg_array(stamps),
            ),
        )
        if usual is not None:
            connection.exec_driver_sql("SELECT set_config('random_page_cost', %s, true)", (usual,))
        return
    connection.exec_driver_sql(
        "UPDATE leads SET activity_count = activity_count + ?,"
        " last_activity_at = CASE WHEN last_activity_at IS NULL OR last_activity_at < ?"
        " THEN ? ELSE last_activity_at END WHERE id = ?",
        [
            (n, stamp, stamp, lead_id)
            for lead_id, (n, at) in sorted(per_lead.items())
            for stamp in (known.get(lead_id) or sqlite_datetime(at),)
        ],
    )


CACHED_PAGE_COST = "1.1"
"""PostgreSQL's ``random_page_cost`` for pages known to be in memory (the value commonly
advised for data that fits the cache), as :func:`bump_counters` plans with it."""
CACHED_PLAN_FROM = 100
"""Leads from which :func:`bump_counters` sets :data:`CACHED_PAGE_COST` (two more
statements): a few leads are probed by key whatever the cost (a hand-raise's one)."""


def insert_rows(
    connection: Connection,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    *,
    ignore_conflicts: bool = False,
) -> None:
    """Plain multi-row insert of ``rows`` (all with the same keys) into ``table``,
    converting datetimes and JSON the way the Core column types would. With
    ``ignore_conflicts`` a row that hits a unique constraint is skipped (a concurrent
    writer created it first)."""
    if not rows:
        return
    names = list(rows[0])
    postgres = connection.dialect.name == "postgresql"
    if postgres and len(rows) > 1 and _unnest_fits(table, names):
        _insert_unnest(connection, table, rows, ignore_conflicts=ignore_conflicts, returning=False)
        return
    converters: list[Any] = []
    for name in names:
        column_type = table.c[name].type
        if isinstance(column_type, UtcDateTime):
            converters.append(None if postgres else _memo(_sqlite_datetime_or_none))
        elif isinstance(column_type, JSON) or "JSON" in type(column_type).__name__:
            converters.append(encode_json)  # json.dumps's text, without its set-up
        else:
            converters.append(None)
    mark = "%s" if postgres else "?"
    sql = (
        f"INSERT INTO {table.name} ({', '.join(names)}) "
        f"VALUES ({', '.join([mark] * len(names))})"
        + (" ON CONFLICT DO NOTHING" if ignore_conflicts else "")
    )
    connection.exec_driver_sql(sql, _parameters(rows, names, converters))


def _parameters(
    rows: Sequence[Mapping[str, Any]], names: Sequence[str], converters: Sequence[Any]
) -> list[tuple[Any, ...]]:
    """Each row's values in the order of ``names``, converted where ``converters`` has a
    function: one C-level ``itemgetter`` call per row, then only the converted columns
    touched (a generator over every column cost more than SQLite's insert of the row)."""
    if len(names) == 1:
        (name,), (convert,) = names, converters
        return [(row[name] if convert is None else convert(row[name]),) for row in rows]
    values = list(map(itemgetter(*names), rows))
    converted = [(i, convert) for i, convert in enumerate(converters) if convert is not None]
    if not converted:
        return values
    out: list[tuple[Any, ...]] = []
    for row_values in values:
        row = list(row_values)
        for i, convert in converted:
            row[i] = convert(row[i])
        out.append(tuple(row))  # SQLAlchemy takes a list of tuples (or of dicts)
    return out


def _memo(convert: Any) -> Any:
    """Rows of one batch share most timestamps (``now``): convert each value once. The
    same object as the value before is answered without hashing it (hashing an aware
    datetime costs about as much as converting it)."""
    seen: dict[Any, Any] = {}
    last: list[Any] = [_NOTHING, None]

    def cached(value: Any) -> Any:
        if value is last[0]:
            return last[1]
        if value not in seen:
            seen[value] = convert(value)
        last[0], last[1] = value, seen[value]
        return last[1]

    return cached


_NOTHING = object()


def _sqlite_datetime_or_none(value: datetime | None) -> str | None:
    return None if value is None else sqlite_datetime(value)


def find_by_keys(
    connection: Connection,
    table: Table,
    key: str,
    values: Sequence[Any],
    *columns: str,
    lock: bool | str = False,
) -> list[tuple[Any, ...]]:
    """Rows of ``table`` whose ``key`` is one of ``values``, as tuples of ``key`` then
    ``columns``: one statement with one parameter (SQLite ``json_each``, PostgreSQL
    ``= ANY``), however many values. Much cheaper than chunked ``IN (...)`` lists with
    thousands of bound parameters. With ``lock`` the rows are locked on PostgreSQL,
    in ``key`` order so that concurrent writers never deadlock: ``True`` is
    ``FOR UPDATE``, a text another locking clause (``FOR UPDATE SKIP LOCKED``,
    ``FOR KEY SHARE``); SQLite's write transaction already excludes other writers."""
    if not values:
        return []
    selected = ", ".join(f"t.{name}" for name in (key, *columns))
    sql, parameter = _keyed(connection, f"SELECT {selected} FROM", table, key, values)
    if lock and connection.dialect.name == "postgresql":
        sql += f" ORDER BY t.{key} " + ("FOR UPDATE" if lock is True else str(lock))
    # The driver's own tuples: iterating the result row by row costs more than the query.
    result = connection.exec_driver_sql(sql, (parameter,))
    try:
        return list(result.cursor.fetchall())
    finally:
        result.close()


def delete_by_keys(connection: Connection, table: Table, key: str, values: Sequence[Any]) -> None:
    """Delete the rows of ``table`` whose ``key`` is one of ``values``, in one statement
    with one parameter, as :func:`find_by_keys` reads them."""
    if values:
        sql, parameter = _keyed(connection, "DELETE FROM", table, key, values)
        connection.exec_driver_sql(sql, (parameter,))


def _keyed(
    connection: Connection, verb: str, table: Table, key: str, values: Sequence[Any]
) -> tuple[str, Any]:
    """``verb`` on the rows of ``table`` (aliased ``t``) whose ``key`` is one of
    ``values``, and its one parameter: ``= ANY`` of an array on PostgreSQL, a JSON list
    on SQLite (read through ``json_each``, joined when selecting)."""
    if connection.dialect.name == "postgresql":
        cast = _array_type(values)
        parameter: Any = pg_array(values) if cast else list(values)
        return f"{verb} {table.name} t WHERE t.{key} = ANY(%s{cast})", parameter
    parameter = json.dumps(list(values))
    if verb.startswith("SELECT"):
        return f"{verb} json_each(?) j JOIN {table.name} t ON t.{key} = j.value", parameter
    return f"{verb} {table.name} AS t WHERE t.{key} IN (SELECT value FROM json_each(?))", parameter


def _array_type(values: Sequence[Any]) -> str:
    """The cast of :func:`pg_array` for ``values``: all integers or all texts; ``""``
    (a list parameter, dumped by the driver) for anything else."""
    if all(type(v) is int for v in values):
        return "::bigint[]"
    if all(type(v) is str for v in values):
        return "::text[]"
    return ""


SEARCH_INSERT_TRIGGER = "leads_search_insert"
"""The SQLite trigger (migration 0009) that adds each new lead to the search index."""


def insert_new_leads(
    connection: Connection, leads: Table, rows: Sequence[Mapping[str, Any]]
) -> set[int]:
    """Insert new leads into ``leads`` (the table), skipping a row that hits a unique
    key (a concurrent writer created that lead first); return the ids of the rows
    inserted, so that the caller knows which rows are its own.

    PostgreSQL: rows that carry their ids (taken from the sequence by the caller) are
    copied (:func:`copy_new_rows`); otherwise, or when one hits a unique key, one
    ``INSERT … SELECT … FROM unnest(…) RETURNING id`` (one round trip and one plan,
    not one per row). SQLite: :func:`insert_rows`, and the
    search index gets the new rows from one ``INSERT … SELECT`` after them instead of
    from the per-row trigger, which costs several times the insert itself: the trigger
    is dropped for the statement and created again from its own stored text, all inside
    the caller's transaction (writers are serialized, readers see the schema of their
    snapshot, and a rollback restores it). The index holds the very rows the trigger
    would have added: the leads inserted here, those above the highest id before them."""
    if not rows:
        return set()
    if connection.dialect.name == "postgresql":
        # Ids taken from the sequence already (a lead import's): the rows are copied,
        # and all of them are inserted unless a unique key says otherwise.
        if "id" in rows[0] and copy_new_rows(connection, leads, rows):
            return {int(row["id"]) for row in rows}
        return _insert_returning_ids(connection, leads, rows)
    before = connection.exec_driver_sql("SELECT coalesce(max(id), 0) FROM leads").scalar()
    trigger = connection.exec_driver_sql(
        "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = ?",
        (SEARCH_INSERT_TRIGGER,),
    ).scalar()
    if trigger is not None:
        connection.exec_driver_sql(f"DROP TRIGGER {SEARCH_INSERT_TRIGGER}")
    insert_rows(connection, leads, rows, ignore_conflicts=True)
    if trigger is not None:
        connection.exec_driver_sql(
            "INSERT INTO leads_search (rowid, email, first_name, last_name, company)"
            " SELECT id, email, first_name, last_name, company FROM leads WHERE id > ?",
            (before,),
        )
        connection.exec_driver_sql(str(trigger))
    found = connection.exec_driver_sql("SELECT id FROM leads WHERE id > ?", (before,))
    try:  # the driver's own tuples, as find_by_keys takes them
        return {int(lead_id) for (lead_id,) in found.cursor.fetchall()}
    finally:
        found.close()


def _insert_returning_ids(
    connection: Connection, table: Table, rows: Sequence[Mapping[str, Any]]
) -> set[int]:
    """PostgreSQL: ``rows`` inserted by one ``INSERT … SELECT … FROM unnest`` of one
    typed array per column (JSON sent as text, as :func:`insert_rows` sends it),
    conflicts skipped; the ids of the rows inserted."""
    return _insert_unnest(connection, table, rows, ignore_conflicts=True, returning=True)


def _unnest_fits(table: Table, names: Sequence[str]) -> bool:
    """Whether every column of ``names`` is one :func:`_insert_unnest` sends as a
    one-dimensional array of its values (an array column is not: unnest would flatten
    it)."""
    return not any(isinstance(table.c[name].type, ARRAY) for name in names)


def _insert_unnest(
    connection: Connection,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    *,
    ignore_conflicts: bool,
    returning: bool,
) -> set[int]:
    """PostgreSQL: ``rows`` (all with the same keys) inserted in their order by one
    ``INSERT … SELECT … FROM unnest`` of one typed array per column, one round trip
    and one plan, where ``executemany`` runs the statement once per row on the server
    (measured: the import's queue rows cost 45 µs each that way). With ``returning``,
    the ids of the rows inserted (the table has an ``id``), else an empty set."""
    returned = ("id",) if returning else ()
    found = _unnest_execute(connection, table, rows, ignore_conflicts, returned)
    return {int(lead_id) for (lead_id,) in found} if returning else set()


def insert_returning(
    connection: Connection,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    returned: tuple[str, ...],
) -> list[tuple[Any, ...]]:
    """PostgreSQL: ``rows`` (all with the same keys) inserted as :func:`_insert_unnest`
    inserts them, a row that hits a unique key skipped; the ``returned`` columns of
    each row inserted. The statement's text depends on the columns only, not on how
    many rows: psycopg converts its placeholders once and prepares it after a few runs,
    where a multi-row ``VALUES`` of one placeholder per value (SQLAlchemy's
    ``insertmanyvalues``) changes with the count, and past 50 values is parsed again by
    psycopg and planned again by the server at every call."""
    result = _unnest_execute(connection, table, rows, True, returned)
    try:  # the driver's own tuples, as find_by_keys takes them
        return list(result.cursor.fetchall())
    finally:
        result.close()


def _unnest_execute(
    connection: Connection,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    ignore_conflicts: bool,
    returned: tuple[str, ...],
) -> Any:
    names = tuple(rows[0])
    sql, json_columns = _unnest_statement(
        table, names, connection.dialect, ignore_conflicts, returned
    )
    values: list[list[Any] | str] = []
    for name, is_json in zip(names, json_columns, strict=True):
        column = [row[name] for row in rows]
        if is_json:
            column = [json.dumps(value) for value in column]
        # One array literal per column where :func:`pg_array` takes every value (the
        # driver dumps a list element by element, at several times the insert's cost).
        values.append(pg_array(column) if set(map(type, column)) <= _LITERAL_KINDS else column)
    return connection.exec_driver_sql(sql, tuple(values))


@functools.lru_cache(maxsize=64)
def _unnest_statement(
    table: Table,
    names: tuple[str, ...],
    dialect: Dialect,
    ignore_conflicts: bool,
    returned: tuple[str, ...],
) -> tuple[str, tuple[bool, ...]]:
    """The ``INSERT … SELECT … FROM unnest`` of one typed array per column of
    ``names``, and which of them are JSON (sent as text): built once per shape
    (compiling a column's type costs more than inserting a few rows)."""
    arrays: list[str] = []
    selected: list[str] = []
    json_columns: list[bool] = []
    for name in names:
        column_type = table.c[name].type
        is_json = isinstance(column_type, JSON) or "JSON" in type(column_type).__name__
        json_columns.append(is_json)
        if is_json:
            arrays.append("%s::text[]")
            selected.append(f"{name}::jsonb")
        else:
            # Text as text: a cast to varchar(n) would cut a value the column refuses.
            sql_type = "text" if isinstance(column_type, String) else column_type.compile(dialect)
            arrays.append(f"%s::{sql_type}[]")
            selected.append(name)
    sql = (
        f"INSERT INTO {table.name} ({', '.join(names)}) SELECT {', '.join(selected)}"
        f" FROM unnest({', '.join(arrays)}) AS v({', '.join(names)})"
        + (" ON CONFLICT DO NOTHING" if ignore_conflicts else "")
        + (f" RETURNING {', '.join(returned)}" if returned else "")
    )
    return sql, tuple(json_columns)
