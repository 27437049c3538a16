"""The rules in force: the active contract version and any stored version's rules,
parsed once per content, read inside whoever's transaction needs them.

Scoring, a stage change, routing, the SLA ladder, the prep checklist and the reports
all read the rules, and activating a version re-scores every lead; so reading them
lives here, below every use case and importing none, while the versions' own use cases
(draft, sign, activate, compare) are in :mod:`baton.services.contracts`, above scoring.
These are internal reads on behalf of a use case that already checked its actor, so
they take no actor of their own.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Text, bindparam, cast, exists, func, literal_column, select, true
from sqlalchemy.engine import Connection

from baton.domain.contract import HandoffContract
from baton.domain.errors import NotFound
from baton.services.context import Context
from baton.store.group_commit import LOCKED_READS_ONLY, group_memo
from baton.store.tables import contracts

_PARSED: dict[str, HandoffContract] = {}
"""Parsed rules by their exact content: a stored version never changes, so each one is
parsed once per process (keyed by content, so two databases never mix up)."""


_RECENT: list[tuple[Any, HandoffContract]] = []
"""The last specs asked for: comparing a spec with them (C-level equality) is much
cheaper than serialising it for the key, and every capture asks for the active one."""


def rules_of(spec: Any) -> HandoffContract:
    """The rules of a stored version's ``spec`` column, parsed once per content."""
    for known, rules in _RECENT:
        if known == spec:
            return rules
    key = json.dumps(spec, sort_keys=True)
    if key not in _PARSED:
        _PARSED[key] = HandoffContract.model_validate(spec)
    _RECENT.insert(0, (spec, _PARSED[key]))
    del _RECENT[4:]
    return _PARSED[key]


def contract_spec(ctx: Context, version: int) -> HandoffContract:
    """The rules of a stored version, for re-scoring (an internal read on behalf of
    whoever activated the version, so it takes no actor of its own)."""
    with ctx.read() as connection:
        spec = connection.execute(
            select(contracts.c.spec).where(contracts.c.version == version)
        ).first()
    if spec is None:
        raise NotFound(f"contract version {version} does not exist")
    return rules_of(spec[0])


_ACTIVE = select(contracts.c.version, cast(contracts.c.spec, Text)).where(
    contracts.c.status == "active"
)
_ACTIVE_SHARED = _ACTIVE.with_for_update(read=True)
"""Built once: every capture and scoring reads the active version. Its spec is read as
the text the database keeps and its rules found by that text (:func:`rules_of_text`):
decoding the spec's JSON and comparing it cost a capture on SQLite about a tenth of
its CPU (PostgreSQL's writers read a digest instead, :data:`_ACTIVE_DIGEST`)."""

_BY_TEXT: dict[str, HandoffContract] = {}
"""Parsed rules by the text of their spec as the database returns it (by content, like
:data:`_PARSED`: an equal text is an equal spec)."""


def rules_of_text(text: str) -> HandoffContract:
    """:func:`rules_of` of a spec read as its text, parsed once per text."""
    rules = _BY_TEXT.get(text)
    if rules is None:
        rules = _BY_TEXT[text] = rules_of(json.loads(text))
    return rules


_ACTIVE_DIGEST = (
    select(
        contracts.c.version.label("active_version"),
        func.encode(
            func.sha256(func.convert_to(cast(contracts.c.spec, Text), "UTF8")), "hex"
        ).label("active_digest"),
    )
    .where(contracts.c.status == "active")
    .with_for_update(read=True)
)
"""PostgreSQL: the active version with a SHA-256 of its spec (64 characters instead of
the spec's kilobytes, which the driver would decode and :func:`rules_of` compare at
every read)."""

ACTIVE_LOCKED = _ACTIVE_DIGEST.subquery("active_contract")
"""PostgreSQL: :data:`_ACTIVE_DIGEST` (columns ``active_version``, ``active_digest``)
as a subquery, for a writer to join into the first statement it sends, so the version
row is share-locked as :func:`active_contract_in` locks it without a round trip of its
own (a hand-raise: :func:`baton.services.stages.change_stage_in`). The subquery's lock
is taken before the statement's own row locks, in the order of two statements. The
writer hands what it read to :func:`active_contract_from`, after asking
:func:`active_contract_known` (a group commit that already read it reads it once)."""
_SPEC_OF = select(contracts.c.spec).where(contracts.c.version == bindparam("version"))
_ACTIVE_OR_NONE = select(
    ACTIVE_LOCKED.c.active_version,
    ACTIVE_LOCKED.c.active_digest,
    exists().where(contracts.c.status == "active").label("any_active"),
).select_from(
    select(literal_column("1").label("one")).subquery("one").outerjoin(ACTIVE_LOCKED, true())
)
"""PostgreSQL: :data:`ACTIVE_LOCKED` in one row always, with whether the statement's
snapshot held an active version at all: no version row and none active is "no
contract" without a second read (before any activation every group of captures read
twice); no row while one was active is the version waited for and superseded."""

_BY_DIGEST: dict[str, HandoffContract] = {}
"""Parsed rules by the digest of their spec as PostgreSQL prints it (``jsonb`` prints
equal contents alike): keyed by content, like :data:`_PARSED`, so a version activated
by another process, or another database, is never mistaken for one seen before."""


def active_contract_in(
    connection: Connection, *, share_lock: bool = True
) -> tuple[int, HandoffContract] | None:
    """The active version and its rules (parsed once per content).

    With ``share_lock`` (the default, for writers) the version row is locked in share
    mode on PostgreSQL, so an activation waits for writers already scoring with the old
    version, and writers starting during an activation wait for it to finish. The
    writes of one group commit read it once (:func:`~baton.store.group_commit.group_memo`);
    a read without the lock takes the version the group read with it (no activation
    can come between them: it waits for that lock, or on SQLite for the group's write),
    but never stands in for a locked read (a hook's submission asked three times)."""
    memo = group_memo(connection)
    if memo is not None and _ACTIVE_KEY in memo:
        known: tuple[int, HandoffContract] | None = memo[_ACTIVE_KEY]
        return known
    active, locked = _active_in(connection, share_lock=share_lock)
    if share_lock:
        _remember(connection, active, locked=locked)
    return active


_ACTIVE_KEY = "active_contract"


def _remember(
    connection: Connection, active: tuple[int, HandoffContract] | None, *, locked: bool
) -> None:
    """Keep ``active`` in the transaction's memo, if it has one. A read that took no
    lock on PostgreSQL ("none active", or the version read again after the one waited
    for was superseded) is kept by a group commit's memo, one read per group (its
    captures then score as a capture that read just before an activation would), but
    not by a :func:`~baton.store.group_commit.transaction_memo`, whose transaction (a
    hook request, up to 1,000 submissions) would otherwise score every submission after
    an activation as if none were active (a review's test)."""
    memo = group_memo(connection)
    if memo is None:
        return
    if not locked and memo.get(LOCKED_READS_ONLY) and connection.dialect.name == "postgresql":
        return
    memo[_ACTIVE_KEY] = active


def active_contract_known(connection: Connection) -> bool:
    """Whether :func:`active_contract_in` would answer without reading (the writes of
    a group commit read the active version once)."""
    memo = group_memo(connection)
    return memo is not None and _ACTIVE_KEY in memo


def active_contract_from(
    connection: Connection,
    version: int | None,
    digest: str | None,
    *,
    any_active: bool = True,
) -> tuple[int, HandoffContract] | None:
    """:func:`active_contract_in` (share-locked, PostgreSQL) from the ``active_version``
    and ``active_digest`` a writer's statement read through :data:`ACTIVE_LOCKED`
    (None: no row, so no version is active, or the one waited for was superseded
    meanwhile: read as :func:`active_contract_in` reads it then). ``any_active=False``:
    the same statement's snapshot held no active version at all (an unlocked
    ``EXISTS``), so no row means none is active, without that read."""
    if version is None and not any_active:
        active = None
    else:
        active = _rules_by_digest(connection, version, digest)
    _remember(connection, active, locked=version is not None and digest is not None)
    return active


def _rules_by_digest(
    connection: Connection, version: int | None, digest: str | None
) -> tuple[int, HandoffContract] | None:
    if version is None or digest is None:
        # The row we waited for was superseded meanwhile: read the new active one.
        row = connection.execute(_ACTIVE).first()
        return None if row is None else (int(row[0]), rules_of_text(row[1]))
    rules = _BY_DIGEST.get(digest)
    if rules is None:  # a content not seen yet: its spec, under the share lock
        spec = connection.execute(_SPEC_OF, {"version": version}).scalar_one()
        rules = _BY_DIGEST[digest] = rules_of(spec)
    return int(version), rules


def _active_in(
    connection: Connection, *, share_lock: bool
) -> tuple[tuple[int, HandoffContract] | None, bool]:
    """The active version and whether the read holds it until the transaction ends
    (PostgreSQL: a version row share-locked; SQLite: always, one writer)."""
    postgres = connection.dialect.name == "postgresql"
    if share_lock and postgres:
        version, digest, any_active = connection.execute(_ACTIVE_OR_NONE).one()
        if version is None and not any_active:
            return None, False
        return _rules_by_digest(connection, version, digest), version is not None
    # (SQLite: no row lock to wait for, and no other writer inside our write.)
    row = connection.execute(_ACTIVE_SHARED if share_lock else _ACTIVE).first()
    if row is None:
        return None, not postgres
    version, text = row
    return (version, rules_of_text(text)), not postgres


def active_rules_in(connection: Connection) -> tuple[int | None, HandoffContract | None]:
    """Like :func:`active_contract_in` (share-locked), as ``(None, None)`` before any
    version is active: for routing and verdicts, which work without one."""
    active = active_contract_in(connection)
    return (active[0], active[1]) if active else (None, None)


def active_contract(ctx: Context) -> tuple[int, HandoffContract] | None:
    """The active version and its rules, for Baton's own use (the demo, re-scoring):
    not a use case, so it takes no actor; people read versions with
    :func:`baton.services.contracts.list_contracts` and
    :func:`~baton.services.contracts.get_contract`."""
    with ctx.read() as connection:
        return active_contract_in(connection, share_lock=False)
