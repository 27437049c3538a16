"""A capture of a new person in one round trip (PostgreSQL).

A capture by email looks the person up (their lead locked), and when no lead has them
writes three rows (the lead, its ``captured`` touch, its place in the possible-duplicate
queue) and asks two questions (is the address on the suppression list; which contract
version is active, share-locked): one statement each, with the transaction's ``BEGIN``
and ``COMMIT`` nine round trips. At 8 connections most group commits hold one capture,
so each capture paid them all, and each round trip costs the API process and PostgreSQL
CPU and a wake-up on both sides, not just time. Here the look-up and the three inserts
are ``WITH`` queries of one statement that also answers both questions: three round
trips without a contract, four with one (the new lead's score row). With a contract
active the insert also returns the new lead's scored columns, so the score needs no
read of its own (in process, 1,173-1,271 → 993-1,019 µs of the client's CPU per
capture, PostgreSQL's 803-832 → 732; without one the columns are not built: a ``CASE``
on the active version).

Same rows and answers as one statement each (a test holds them equal): the insert runs
only when the look-up found nobody (``WHERE NOT EXISTS``, one snapshot), and the touch
and the queue row only when the lead was inserted (they read its id from the insert's
``RETURNING``). The lead found is returned instead, locked as the look-up alone locks
it, as one JSON document rather than a column each (the driver builds a description
object per column of every result: in process, 681 → 625 µs of the client's CPU per new
person, 7 alternated pairs, and PostgreSQL's 398 → 378); when another writer created the
same email after the statement's snapshot, nothing is written and no row comes back, as
the lone insert's ``ON CONFLICT DO NOTHING`` answered no id.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, case, exists, func, literal_column, null, select, true
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection, Dialect

from baton.services.contract_rules import ACTIVE_LOCKED
from baton.store.tables import activities, contracts, duplicate_checks, leads, suppressions
from baton.store.types import UtcDateTime


@dataclass(frozen=True)
class NewLeadWritten:
    """What the statement wrote and read: the new lead's id (None: not inserted), the
    lead found by the email instead (its ``reads`` columns, locked), whether any of the
    address's suppression keys is listed (None: no address asked about), and the
    active version with its digest as :data:`ACTIVE_LOCKED` reads them (share-locked),
    with whether the statement's snapshot held an active version at all (``active``:
    None when the contract was not asked for); and the new lead's ``returned`` columns
    as the insert stored them (None: not inserted, none asked for, or no contract active
    in the statement's snapshot, when nothing is scored)."""

    lead_id: int | None
    found: dict[str, Any] | None
    suppressed: bool | None
    active_version: int | None
    active_digest: str | None
    active: bool | None
    inserted: dict[str, Any] | None = None


TOUCH_COLUMNS = ("type", "occurred_at", "received_at", "properties", "recorded_by")
"""The touch's columns besides ``lead_id`` (:func:`baton.services.leads._touch_row`)."""


def write_new_lead(
    connection: Connection,
    values: dict[str, Any],
    touch: dict[str, Any],
    *,
    queued_at: datetime,
    reads: Sequence[str],
    suppression_keys: Sequence[str] = (),
    with_contract: bool = False,
    returned: Sequence[str] = (),
    active_known: bool = False,
) -> NewLeadWritten | None:
    """Look up the lead with ``values["email_key"]`` (locked; its ``reads`` columns);
    when there is none, insert the lead ``values`` (``ON CONFLICT DO NOTHING``), its
    ``touch`` (the activity row without ``lead_id``) and its duplicate-queue row at
    ``queued_at``. Ask whether one of ``suppression_keys`` (0 or 2) is listed, and
    with ``with_contract`` the active version (share-locked). When a contract is active
    (``active_known``: the caller knows one is, its group read it) the new lead's
    ``returned`` columns come back as stored (its scored columns: the score needs no
    read of its own). None: nobody found and nothing inserted (another writer's lead
    came in between; the answers are lost with it, and asked again by the statements
    that need them)."""
    columns = tuple(sorted(values))
    statement = _statement(
        columns, tuple(reads), len(suppression_keys), with_contract, tuple(returned), active_known
    )
    params = {f"v_{name}": value for name, value in values.items()}
    params.update({f"t_{name}": touch[name] for name in TOUCH_COLUMNS})
    params["q_at"] = queued_at
    params["f_email_key"] = values["email_key"]
    params.update({f"s{i}": key for i, key in enumerate(suppression_keys)})
    row = connection.execute(statement, params).mappings().one()
    if row["new_id"] is None and row["found"] is None:
        return None
    found = None if row["found"] is None else _lead_values(row["found"], reads, connection.dialect)
    suppressed = bool(row["suppressed"]) if suppression_keys else None
    inserted = None
    if returned and row["inserted"] is not None:
        inserted = _lead_values(row["inserted"], returned, connection.dialect)
    if not with_contract:
        return NewLeadWritten(row["new_id"], found, suppressed, None, None, None, inserted)
    return NewLeadWritten(
        row["new_id"],
        found,
        suppressed,
        row["active_version"],
        row["active_digest"],
        bool(row["any_active"]),
        inserted,
    )


def _lead_values(
    document: dict[str, Any], reads: Sequence[str], dialect: Dialect
) -> dict[str, Any]:
    """The ``reads`` columns of a lead (found, or inserted), from its JSON document, as a
    column each would have read them: times (text in JSON) through their column's type, the rest
    (text, numbers, booleans, the ``attributes`` object) as they are."""
    found = {}
    for name in reads:
        value = document[name]
        if value is not None and name in _TIMES:
            value = _TIME.process_result_value(value, dialect)
        found[name] = value
    return found


_TIMES = frozenset(c.name for c in leads.c if isinstance(c.type, UtcDateTime))
"""The columns of ``leads`` that JSON carries as text: times."""
_TIME = UtcDateTime()


@functools.lru_cache(maxsize=64)
def _statement(
    columns: tuple[str, ...],
    reads: tuple[str, ...],
    keys: int,
    with_contract: bool,
    returned: tuple[str, ...] = (),
    active_known: bool = False,
) -> Any:
    """Built once per set of columns (a capture's consent answer adds some): a
    statement object keeps its compiled form."""
    found = (
        select(*(leads.c[name] for name in reads))
        .where(leads.c.email_key == bindparam("f_email_key", type_=leads.c.email_key.type))
        .with_for_update()
        .cte("found")
    )
    new = (
        postgresql.insert(leads)
        .from_select(
            list(columns),
            select(*(bindparam(f"v_{name}", type_=leads.c[name].type) for name in columns)).where(
                ~exists().select_from(found)
            ),
        )
        .on_conflict_do_nothing()
        .returning(leads.c.id, *(leads.c[name] for name in returned if name != "id"))
        .cte("new_lead")
    )
    touch = activities.insert().from_select(
        ["lead_id", *TOUCH_COLUMNS],
        select(
            new.c.id,
            *(bindparam(f"t_{name}", type_=activities.c[name].type) for name in TOUCH_COLUMNS),
        ),
    )
    queued = (
        postgresql.insert(duplicate_checks)
        .from_select(
            ["lead_id", "queued_at"],
            select(new.c.id, bindparam("q_at", type_=duplicate_checks.c.queued_at.type)),
        )
        .on_conflict_do_nothing()
    )
    # The lead found as one JSON document, not 30 columns (see the module's docstring).
    answer: list[Any] = [
        new.c.id.label("new_id"),
        func.to_jsonb(found.table_valued()).label("found"),
    ]
    if returned:  # only when a contract is active (else nothing is scored)
        document: Any = func.to_jsonb(new.table_valued())
        if not active_known:
            # The version the statement reads with its lock, or (outside a group, which
            # reads none) whether one is active.
            active: Any = (
                ACTIVE_LOCKED.c.active_version.is_not(None)
                if with_contract
                else exists().where(contracts.c.status == "active")
            )
            document = case((active, document), else_=null())
        answer.append(document.label("inserted"))
    if keys:
        listed = [bindparam(f"s{i}", type_=suppressions.c.email_key.type) for i in range(keys)]
        answer.append(exists().where(suppressions.c.email_key.in_(listed)).label("suppressed"))
    # One row always (a FULL JOIN needs a join condition PostgreSQL can hash or merge).
    one = select(literal_column("1").label("one")).subquery("one")
    source: Any = one.outerjoin(found, true()).outerjoin(new, true())
    if with_contract:
        answer += [
            ACTIVE_LOCKED.c.active_version,
            ACTIVE_LOCKED.c.active_digest,
            exists().where(contracts.c.status == "active").label("any_active"),
        ]
        source = source.outerjoin(ACTIVE_LOCKED, true())
    return select(*answer).select_from(source).add_cte(touch.cte("touch"), queued.cte("queued"))
