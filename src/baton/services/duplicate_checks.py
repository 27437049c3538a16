"""Possible-duplicate flagging as work that can wait.

Comparing a new lead with every older lead that shares its phone, company or corporate
email domain is the costliest part of a capture (about half of it, growing with the
database), and nothing a caller does next depends on it: the pairs land in the review
queue for a person to look at. So capture and import only queue the new lead
(:func:`queue_duplicate_checks_in`, one row in the caller's transaction) and the worker
flags pairs in batches (:func:`flag_pending_duplicates`).

What a caller may rely on: a queued lead is compared exactly as
:func:`possible_duplicates_of` compares it, and its pairs are written in a transaction
that also removes it from the queue (a worker killed midway leaves it queued); a lead
merged away before its turn is dropped from the queue unflagged; one whose records a
merge changed while it was being compared is compared again."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import datetime, timedelta
from operator import itemgetter
from typing import Any, NamedTuple

from sqlalchemy import func, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from baton.domain.clock import SystemClock
from baton.domain.contact import FREE_MAIL_DOMAINS, email_key
from baton.domain.leads import (
    MAX_PAIRS_PER_LEAD,
    ON_ITS_OWN,
    CandidateGroup,
    DuplicateMatch,
    best_duplicates,
    duplicates_in_groups,
    newer_candidates,
)
from baton.services.collector import collector_paused
from baton.services.context import Context
from baton.services.queries import IN_CHUNK, chunks, dialect_insert
from baton.store.advisory import PAIR_LOCKS
from baton.store.bulk import copy_rows_in, delete_by_keys, find_by_keys, insert_rows
from baton.store.tables import duplicate_candidates, duplicate_checks, leads

log = logging.getLogger("baton.worker")

BATCH = 2000
"""Leads compared per worker pass over the queue, in one read transaction (on SQLite in
parts of :data:`READ_PART` leads, a read transaction each): set-based,
so a batch costs a handful of indexed queries whatever its size, and the candidates a
batch reads (up to :data:`MAX_CANDIDATES` per shared phone, company or domain) serve
every lead of it that shares them. Under ``bench/intake_http.py``'s stream (400
companies) the comparison cost 766 µs per lead in batches of 500, 336 in batches of
2,000 and 192 in batches of 5,000; 2,000 keeps a batch's read under a second."""

WRITE_BATCH = 100
"""Leads whose pairs are written per write transaction (claimed, flagged, dequeued): a
batch's comparison is written in parts this size, so that on SQLite no part holds the
one write turn that captures wait for for long. Measured on that stream's leads (about
1.7 pairs each): a part of 500 held it 11.5 ms (p50; 23 at most), one of 100 3.1 ms
(10.8 at most), for the same CPU in all."""


def queue_duplicate_checks_in(
    connection: Connection,
    lead_ids: Sequence[int],
    *,
    now: datetime,
    created: bool = False,
    again: bool = False,
) -> None:
    """Queue new leads for the comparison, inside the caller's transaction (a lead
    already queued stays queued once), as plain tuples: the Core statement's per-row
    parameter processing cost 4 µs per row of an import's chunk.

    ``created``: the caller's transaction inserted every one of the leads, so none can
    be queued yet (nobody else sees them): on PostgreSQL the rows are copied
    (``COPY``), without the conflict check. ``again``: the leads' compared fields
    changed after they arrived (a capture or an import filled in a phone, a name, a
    company or an email; a merge), so one already queued is queued anew (``queued_at``
    is ``now``): a worker that compared it before the change then leaves it queued
    instead of writing what it found. Such a lead is compared with the newer leads
    holding its values too (``compare_newer``; see :func:`possible_duplicates_of`)."""
    if again and lead_ids:
        rows = [{"lead_id": i, "queued_at": now, "compare_newer": True} for i in lead_ids]
        upsert = dialect_insert(connection, duplicate_checks)
        connection.execute(
            upsert.on_conflict_do_update(
                index_elements=[duplicate_checks.c.lead_id],
                # Its reservation ends too, so any worker may take it now: the one
                # comparing it leaves it queued, its queued_at not the one it read.
                set_={
                    "queued_at": upsert.excluded.queued_at,
                    "reserved_until": None,
                    "compare_newer": True,
                },
            ),
            rows,
        )
        return
    rows = [{"lead_id": i, "queued_at": now} for i in lead_ids]
    if created and len(rows) > 1 and connection.dialect.name == "postgresql":
        copy_rows_in(connection, duplicate_checks, rows)
        return
    insert_rows(connection, duplicate_checks, rows, ignore_conflicts=True)


def pending_duplicate_checks(
    ctx: Context, *, at_most: int | None = None, free: bool = False
) -> int:
    """Leads still waiting for the comparison (the capture answer and health say so);
    with ``at_most``, counted up to that many only (an index range of that many at
    most, whatever the backlog: the worker's lane asks whether a batch is left). With
    ``free``, on PostgreSQL, only those no worker has reserved (:func:`_reserve`): what
    this worker may take now."""
    with ctx.read() as connection:
        if free and connection.dialect.name == "postgresql":
            sql = f"SELECT lead_id FROM duplicate_checks WHERE {_FREE}"
            if at_most is not None:
                sql += f" LIMIT {int(at_most)}"
            counted = connection.exec_driver_sql(
                f"SELECT count(*) FROM ({sql}) AS waiting", (_clock_of(ctx),)
            )
            return int(counted.scalar_one())
        waiting: Any = duplicate_checks
        if at_most is not None:
            waiting = select(duplicate_checks.c.lead_id).limit(at_most).subquery()
        return int(connection.execute(select(func.count()).select_from(waiting)).scalar_one())


class Compared(NamedTuple):
    """What one batch of :func:`compare_batch` did."""

    taken: int
    """Queued leads the batch took (read, or reserved on PostgreSQL): fewer than its
    limit when fewer were queued (and free of other workers' reservations)."""
    dequeued: int
    """Those that left the queue, flagged or dropped."""


def flag_pending_duplicates(ctx: Context, *, limit: int = BATCH) -> int:
    """Compare up to ``limit`` queued leads (:func:`compare_batch`); how many left the
    queue."""
    return compare_batch(ctx, limit=limit).dequeued


@collector_paused
def compare_batch(ctx: Context, *, limit: int = BATCH) -> Compared:
    """Compare up to ``limit`` queued leads, oldest first, and flag their pairs; return
    how many the batch took and how many left the queue.

    The comparison (the costly part: candidates read, names compared) runs in a read
    transaction (on SQLite one per part of :data:`READ_PART` leads), so on SQLite it
    never holds the one write turn that captures wait for;
    short write transactions of :data:`WRITE_BATCH` leads each then claim the leads
    still queued as they were read (on PostgreSQL skipping rows another worker holds, so
    several workers share the queue without waiting for each other), write the pairs of
    those still not merged away, and remove them from the queue, all or nothing per
    part. A lead another worker claimed first is left to it; one merged meanwhile is
    dropped unflagged; one queued again meanwhile (a merge asks for its comparison
    again), or one whose pair names a lead merged away meanwhile, stays queued and is
    compared again; a worker stopped between two parts leaves the later parts queued.

    On PostgreSQL the batch is first reserved (:func:`_reserve`), so that several
    workers compare different batches; the leads of the batch still queued at the end
    (not compared, or to compare again) are released for any worker to take."""
    reserved: datetime | None = None
    queued: dict[int, Any] = {}
    newer: set[int] = set()
    if ctx.dialect == "postgresql":
        queued, reserved, newer = _reserve(ctx, limit)
        if reserved is None:
            return Compared(0, 0)
    dequeued: list[int] = []
    try:
        with ctx.read() as connection:
            if reserved is None:
                for lead_id, at, compare_newer in connection.execute(_OLDEST, {"limit": limit}):
                    queued[int(lead_id)] = at
                    if compare_newer:
                        newer.add(int(lead_id))
                if not queued:
                    return Compared(0, 0)
            ids = list(queued)
            live = _live(connection, ids)
            now = ctx.clock.now()
            parts = _read_parts(connection, live)
            comparison = _Comparison(len(live))
            comparison.add(connection, parts[0], now=now, newer=newer)
            if len(parts) == 1:
                records, failed, holding = comparison.result(connection)
        # SQLite: each further part in a snapshot of its own (READ_PART), the last one's
        # also reading the pairs already held.
        for number, later in enumerate(parts[1:], start=2):
            with ctx.read() as connection:
                comparison.add(connection, later, now=now, newer=newer)
                if number == len(parts):
                    records, failed, holding = comparison.result(connection)
        ids = [lead_id for lead_id in ids if lead_id not in failed]
        # Each pair is written with the queued lead whose comparison found it: a newer
        # lead's pair with a lead compared again (compare_newer) is that lead's.
        pairs: dict[int, list[dict[str, Any]]] = {}
        judged: set[int] = set()  # newer leads judged against a lead compared again
        for record in records:
            owner = record.pop(OWNER, record["lead_id"])
            pairs.setdefault(owner, []).append(record)
            if owner != record["lead_id"]:
                judged.add(int(record["lead_id"]))
        # Counted at the write, whichever part of the batch writes them: a part may
        # write a judged lead's pair before the part with its own first comparison.
        counted = newer | holding | judged
        for part in chunks(ids, WRITE_BATCH):
            dequeued += _write_flags(ctx, part, queued, pairs, counted)
    finally:
        if reserved is not None and len(dequeued) < len(queued):
            _release(ctx, sorted(set(queued).difference(dequeued)), reserved)
    return Compared(len(queued), len(dequeued))


RESERVATION = timedelta(minutes=1)
"""How long a worker's reservation of its batch keeps the other workers off it
(PostgreSQL): far longer than a batch takes (about a second; seconds when its leads are
compared one by one), so that only a worker that died leaves its batch to another, and
under ``BATON_STATUS_BEHIND_SECONDS`` (120 s by default), so that a dead worker's batch
is taken over before ``baton status`` calls the queue behind. A batch that outlasts it is
compared by another worker too; the claim that writes the pairs still lets one of them
write each lead."""

_NOW = "coalesce(%s::timestamptz, statement_timestamp())"
"""The reservations' clock: the database's with the real clock (one clock for every
worker host, as heartbeats have), else the context's (a test's ``ManualClock``)."""

_FREE = f"(reserved_until IS NULL OR reserved_until <= {_NOW})"

_RESERVE = (
    "WITH picked AS (SELECT lead_id FROM duplicate_checks"
    f" WHERE {_FREE} ORDER BY queued_at, lead_id LIMIT %s FOR UPDATE SKIP LOCKED)"
    f" UPDATE duplicate_checks d SET reserved_until = {_NOW} + %s::interval FROM picked"
    " WHERE d.lead_id = picked.lead_id"
    " RETURNING d.lead_id, d.queued_at, d.reserved_until, d.compare_newer"
)


def _clock_of(ctx: Context) -> datetime | None:
    """The time a reservation is taken and judged at, ``None`` for the database's
    (:data:`_NOW`)."""
    return None if isinstance(ctx.clock, SystemClock) else ctx.clock.now()


def _reserve(ctx: Context, limit: int) -> tuple[dict[int, Any], datetime | None, set[int]]:
    """PostgreSQL: the oldest ``limit`` queued leads that no live reservation holds,
    reserved for this worker for :data:`RESERVATION`, in one short committed
    transaction; with ``queued_at`` as the driver gives it (oldest first), the
    reservation's end (``None`` when nothing was reserved), which :func:`_release`
    matches, and those to compare with newer leads too (``compare_newer``).

    A reservation holds no row lock and no lock slot while the batch is compared (row
    locks made a merge wait for the comparison; an advisory lock per lead used up
    PostgreSQL's shared lock table): it is a hint that others skip, and the claim in
    :func:`_write_flags` still decides who writes. So the transaction commits without
    waiting for its WAL to reach the disk: a reservation lost in a crash only lets
    another worker take the batch. An empty queue (the idle worker's pass) is found by a
    read, without the write transaction."""
    if not pending_duplicate_checks(ctx, at_most=1, free=True):
        return {}, None, set()
    now = _clock_of(ctx)
    with ctx.write() as connection:
        connection.exec_driver_sql("SET LOCAL synchronous_commit TO off")
        result = connection.exec_driver_sql(_RESERVE, (now, limit, now, RESERVATION))
        try:
            rows = sorted(result.cursor.fetchall(), key=lambda row: (row[1], row[0]))
        finally:
            result.close()
    until = rows[0][2] if rows else None
    newer = {int(row[0]) for row in rows if row[3]}
    return {int(lead_id): at for lead_id, at, *_ in rows}, until, newer


def _release(ctx: Context, lead_ids: Sequence[int], reserved: datetime) -> None:
    """The leads of a batch still queued, released for any worker to take (those
    another worker reserved since, whose reservation ends at another instant, are left
    to it). Best effort: a release that fails (the database gone) leaves the
    reservation to run out."""
    try:
        with ctx.write() as connection:
            connection.exec_driver_sql("SET LOCAL synchronous_commit TO off")
            connection.exec_driver_sql(
                "UPDATE duplicate_checks SET reserved_until = NULL"
                " WHERE lead_id = ANY(%s::bigint[]) AND reserved_until = %s",
                (list(lead_ids), reserved),
            )
    except Exception:
        log.warning(
            "possible duplicates: %d queued leads stay reserved until their reservation "
            "runs out (%s)",
            len(lead_ids),
            reserved.isoformat(),
            exc_info=True,
        )


def _holding_pairs(connection: Connection, lead_ids: Collection[int]) -> set[int]:
    """Those of ``lead_ids`` that are the newer lead of a pair already (one read)."""
    if not lead_ids:
        return set()
    found = find_by_keys(connection, duplicate_candidates, "lead_id", sorted(lead_ids), "id")
    return {int(lead_id) for lead_id, _ in found}


def _write_flags(
    ctx: Context,
    ids: Sequence[int],
    queued: Mapping[int, Any],
    pairs: Mapping[int, list[dict[str, Any]]],
    counted: Collection[int],
) -> list[int]:
    """One write transaction of :func:`flag_pending_duplicates`: the leads of ``ids``
    still queued as they were when compared (``queued``: their ``queued_at`` as the
    driver read it) claimed,
    the pairs of those not merged away written (:func:`_within_bound`), the claimed
    removed from the queue; the leads removed. A lead queued again since, or with a
    pair naming a lead merged away since, is left queued for a new comparison. Run
    again when PostgreSQL aborts it as a deadlock victim."""
    return ctx.write_retrying(
        lambda connection: _write_flags_in(connection, ids, queued, pairs, counted), attempts=3
    )


def _write_flags_in(
    connection: Connection,
    ids: Sequence[int],
    queued: Mapping[int, Any],
    pairs: Mapping[int, list[dict[str, Any]]],
    counted: Collection[int],
) -> list[int]:
    """:func:`_write_flags` in ``connection``; ``counted``: the leads compared again and
    those holding pairs already, whose new pairs are counted with theirs
    (:func:`_within_bound`)."""
    offered = [(lead_id, r) for lead_id in ids for r in pairs.get(lead_id, ())]
    named = {i for _, r in offered for i in (r["lead_id"], r["other_lead_id"])}
    # The leads first, then their queue rows, in the order a capture takes them (the
    # lead, then its queue row when it completes the lead): the other order deadlocked
    # with a capture completing a lead whose comparison was being written.
    live = set(_live(connection, sorted(named.union(ids)), lock=True))
    # One parameter (a JSON list on SQLite, an array on PostgreSQL) rather than an IN
    # list of 100 built per part: the parts are many, and short by design.
    rows = find_by_keys(
        connection, duplicate_checks, "lead_id", ids, "queued_at", lock="FOR UPDATE SKIP LOCKED"
    )
    claimed = [int(i) for i, at in rows if at == queued[int(i)]]
    if not claimed:
        return []
    taken = set(claimed)
    found = [(owner, r) for owner, r in offered if owner in taken and owner in live]
    # The other lead of a pair may have been merged away since the comparison (its
    # open pairs closed by the merge, its record now the survivor's): the lead is
    # compared again rather than paired with it.
    gone = named - live
    again = {o for o, r in found if r["lead_id"] in gone or r["other_lead_id"] in gone}
    claimed = [i for i in claimed if i not in again]
    kept = [r for owner, r in found if owner not in again]
    # A lead's first comparison gives its best five; the pairs of a lead compared again,
    # and of the newer leads judged against it, are counted with those it has.
    bounded = {r["lead_id"] for owner, r in found if owner != r["lead_id"] or owner in counted}
    record_pairs_in(connection, _within_bound(connection, kept, bounded))
    delete_by_keys(connection, duplicate_checks, "lead_id", claimed)
    return claimed


def _within_bound(
    connection: Connection, rows: list[dict[str, Any]], counted: Collection[int]
) -> list[dict[str, Any]]:
    """The pairs of ``rows`` that keep each lead of ``counted`` (a pair's ``lead_id``,
    its newer lead) within :data:`~baton.domain.leads.MAX_PAIRS_PER_LEAD` pairs,
    counting the pairs it has (in any state): its best new ones, as
    :func:`best_duplicates` ranks them, fill the room left; past five, only its first
    shared phone or inbox (a pair that needs no similar name) is added, while it has
    none: six at most. A pair already flagged is left as it is. A lead compared again,
    and the newer leads judged against it, would otherwise add a best five to the pairs
    they had. The other leads' rows are a first comparison's best five of a lead that
    held no pair when the batch was read (:func:`flag_pending_duplicates`), kept as they
    are without a read (a bulk import's flagging paid 8 % for it); only pairs another
    worker writes for such a lead meanwhile (PostgreSQL) can take it past the bound.
    On PostgreSQL the leads' pair locks (an advisory lock each, in id order) make two
    workers adding pairs to one lead count one after the other."""
    free = [r for r in rows if r["lead_id"] not in counted]
    rows = [r for r in rows if r["lead_id"] in counted]
    if not rows:
        return free
    flagged = sorted({int(r["lead_id"]) for r in rows})
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(_LOCK_PAIRS, {"leads": flagged})
    held: dict[int, dict[int, tuple[bool, float]]] = {}
    for lead_id, other_id, reason, similarity in find_by_keys(
        connection,
        duplicate_candidates,
        "lead_id",
        flagged,
        "other_lead_id",
        "reason",
        "similarity",
    ):
        held.setdefault(int(lead_id), {})[int(other_id)] = _rank(reason, similarity)
    by_lead: dict[int, dict[int, dict[str, Any]]] = {}
    for row in rows:  # a pair found twice (by each of its leads' comparisons) counts once
        if int(row["other_lead_id"]) not in held.get(int(row["lead_id"]), {}):
            by_lead.setdefault(int(row["lead_id"]), {})[int(row["other_lead_id"])] = row
    kept: list[dict[str, Any]] = []
    for lead_id, found in by_lead.items():
        new = list(found.values())
        has = held.get(lead_id, {})
        ranked = best_duplicates(
            [DuplicateMatch(int(r["other_lead_id"]), r["reason"], r["similarity"]) for r in new],
            limit=len(new),
        )
        room = max(MAX_PAIRS_PER_LEAD - len(has), 0)
        best = {m.other_id for m in ranked[:room]}
        own = any(not name_based for name_based, _ in has.values()) or any(
            m.reason in ON_ITS_OWN for m in ranked[:room]
        )
        if not own and (one := next((m for m in ranked if m.reason in ON_ITS_OWN), None)):
            best.add(one.other_id)  # past five: its first shared phone or inbox
        kept.extend(r for r in new if int(r["other_lead_id"]) in best)
    return free + kept


def _rank(reason: str, similarity: float) -> tuple[bool, float]:
    """A pair's place as :func:`best_duplicates` ranks pairs (lower first), without its
    tie-break on the other lead's age."""
    return (reason not in ON_ITS_OWN, -float(similarity))


_LOCK_PAIRS = (
    f"SELECT count(pg_advisory_xact_lock({PAIR_LOCKS}, (lead %% 2147483647)::integer))"
    " FROM (SELECT unnest(CAST(%(leads)s AS bigint[])) AS lead ORDER BY 1) AS flagged"
)


READ_PART = 250
"""SQLite: leads of a batch compared per read transaction. A batch (up to :data:`BATCH`,
a second's captures) read in one snapshot held it for most of a second, mostly reading
candidates, and no WAL checkpoint can finish while a snapshot is open: under
``bench/intake_http.py``'s stream the WAL grew to 50 MB by 150 MB of database, and the
checkpoint that then ran on a capture's commit copied it all (the capture's p99 34.8 ms
in a third load of 20 s, against 15.2 in the first). The batch is therefore compared in
parts of this many leads, each in a snapshot of its own, the leads sorted by company and
email domain so that the leads sharing a group (a company's or a domain's 200 oldest
holders, the large reads) are mostly in one part and the group is read once, as in one
snapshot. Each part sees every lead older than those it compares (they were all stored
before the batch was read), so a lead's older candidates are the same in any part; a
lead merged away between two parts is what the writes already check for. A lead
compared again (``compare_newer``) in a later part may also be judged against by newer
leads that arrived meanwhile, as a later batch would judge it. PostgreSQL keeps the
batch in one transaction (read committed: each statement sees the latest commits): its
checkpoints do not wait for readers."""


def _read_parts(connection: Connection, live: Sequence[int]) -> list[list[int]]:
    """``live`` in the parts its comparison reads in snapshots of their own
    (:data:`READ_PART`): one part on PostgreSQL, and for a batch no larger than a
    part."""
    if connection.dialect.name == "postgresql" or len(live) <= READ_PART:
        return [list(live)]
    found = find_by_keys(connection, leads, "id", list(live), "company_key", "email_domain")
    groups = {int(lead_id): (company, domain) for lead_id, company, domain in found}

    def by_group(lead_id: int) -> tuple[bool, str, bool, str, int]:
        company, domain = groups.get(lead_id, (None, None))
        return (company is None, company or "", domain is None, domain or "", lead_id)

    return [list(part) for part in chunks(sorted(live, key=by_group), READ_PART)]


class _Comparison:
    """The pairs of a batch's leads and the leads that could not be compared, gathered
    over the parts it is compared in (:meth:`add`, a read transaction each). Each part is
    compared at once, but for the leads whose comparison raised before in this process
    (:data:`_UNCOMPARABLE`): those are compared alone, so a lead that cannot be compared,
    which stays queued at the head of the queue, costs its own comparison at each batch
    rather than sending every batch after it through the one-by-one comparison. When
    none of the batch's leads can be compared and some were not known to fail,
    :meth:`result` raises the error (a bug, not a bad lead): the lane logs it and backs
    off, and the queue keeps them all. A batch of known ones alone (a lead that cannot
    be compared, left at the head of an otherwise empty queue) fails quietly: the lane
    waits its interval."""

    def __init__(self, leads_in_batch: int) -> None:
        self.size = leads_in_batch
        self.records: list[dict[str, Any]] = []
        self.failed: set[int] = set()
        self.error: Exception | None = None
        self.any_unknown = False

    def add(
        self,
        connection: Connection,
        lead_ids: Sequence[int],
        *,
        now: datetime,
        newer: Collection[int] = frozenset(),
    ) -> None:
        """Compare ``lead_ids`` (one part) in ``connection``'s read transaction and keep
        their pairs and the leads that could not be compared."""
        known = set(_UNCOMPARABLE)  # one look: another thread may change it meanwhile
        suspects = [i for i in lead_ids if i in known]
        rest = [i for i in lead_ids if i not in known]
        self.any_unknown = self.any_unknown or bool(rest)
        try:
            if rest:
                self.records += possible_duplicates_of(connection, rest, now=now, newer=newer)[1]
        except DBAPIError:
            raise
        except Exception:
            self._keep(*_one_by_one(connection, rest, now=now, newer=newer))
        self._keep(*_one_by_one(connection, suspects, now=now, newer=newer))

    def _keep(
        self, records: list[dict[str, Any]], failed: set[int], error: Exception | None
    ) -> None:
        """Keep what :func:`_one_by_one` gave: its pairs, its failures, the first error."""
        self.records += records
        self.failed |= failed
        self.error = self.error or error

    def result(self, connection: Connection) -> tuple[list[dict[str, Any]], set[int], set[int]]:
        """The pairs, the leads that could not be compared, and the leads the pairs would
        be added to that have pairs already (a newer lead a lead compared again was
        judged against: counted when written)."""
        if self.error is not None and len(self.failed) == self.size and self.any_unknown:
            raise self.error
        holding = _holding_pairs(connection, {int(r["lead_id"]) for r in self.records})
        return self.records, self.failed, holding


_UNCOMPARABLE: dict[int, None] = {}
"""Leads whose comparison raised in this process, compared alone until one succeeds (at
most :data:`UNCOMPARABLE_KEPT`, the oldest forgotten first: one forgotten is compared
with its batch again, and found out again)."""

UNCOMPARABLE_KEPT = 10_000
_UNCOMPARABLE_LOCK = threading.Lock()


def _one_by_one(
    connection: Connection,
    lead_ids: Sequence[int],
    *,
    now: datetime,
    newer: Collection[int] = frozenset(),
) -> tuple[list[dict[str, Any]], set[int], Exception | None]:
    """Each lead on its own (the same pairs, since a lead is compared as of its
    arrival): the pairs, the leads that could not be compared and the last error. A
    lead that cannot be compared is logged at its first failure and remembered
    (:data:`_UNCOMPARABLE`); one that can is forgotten."""
    records: list[dict[str, Any]] = []
    failed: set[int] = set()
    error: Exception | None = None
    for lead_id in lead_ids:
        try:
            records.extend(possible_duplicates_of(connection, [lead_id], now=now, newer=newer)[1])
        except DBAPIError:
            raise
        except Exception as exc:
            with _UNCOMPARABLE_LOCK:
                first = lead_id not in _UNCOMPARABLE
                _UNCOMPARABLE[lead_id] = None
                while len(_UNCOMPARABLE) > UNCOMPARABLE_KEPT:
                    _UNCOMPARABLE.pop(next(iter(_UNCOMPARABLE)), None)
            if first:
                log.exception(
                    "possible duplicates: lead %s could not be compared; it stays queued, "
                    "compared on its own from now on",
                    lead_id,
                )
            failed.add(lead_id)
            error = exc.with_traceback(None)  # no frame cycle kept while the collector waits
        else:
            with _UNCOMPARABLE_LOCK:
                _UNCOMPARABLE.pop(lead_id, None)
    return records, failed, error


_OLDEST = text(
    "SELECT lead_id, queued_at, compare_newer FROM duplicate_checks"
    " ORDER BY queued_at, lead_id LIMIT :limit"
)
"""The oldest queued leads, ``queued_at`` as the driver gives it (no column type: the
claim compares it with its own read of the same column, :func:`find_by_keys`')."""


def _live(connection: Connection, ids: Sequence[int], *, lock: bool = False) -> list[int]:
    """The leads among ``ids`` not merged into another, in id order (one statement with
    one parameter: building an ``IN`` list of a part's ids cost more than running it).

    ``lock`` (PostgreSQL): the rows are held ``FOR KEY SHARE`` until the transaction
    ends, in id order, so a merge of one of them (which locks it ``FOR UPDATE``) either
    waits for the caller's pairs, and then closes them, or commits first, and the
    caller then reads the lead as merged (SQLite's one writer already excludes both)."""
    clause = "FOR KEY SHARE" if lock else False
    found = find_by_keys(connection, leads, "id", list(ids), "merged_into_id", lock=clause)
    return sorted(int(lead_id) for lead_id, merged_into in found if merged_into is None)


def record_pairs_in(connection: Connection, rows: list[dict[str, Any]]) -> None:
    """Write review items (rows of :func:`possible_duplicates_of`) in the caller's
    transaction; a pair already flagged is kept as it is. In the pairs' order, so that
    two workers writing some of the same pairs (one comparing a lead again with the
    newer leads, another comparing one of those) wait for each other in one order, never
    in a cycle (a deadlock on PostgreSQL)."""
    ordered = sorted(
        ({k: v for k, v in r.items() if k != OWNER} for r in rows),
        key=lambda r: (r["lead_id"], r["other_lead_id"]),
    )
    insert_rows(connection, duplicate_candidates, ordered, ignore_conflicts=True)


DUPLICATE_COLUMNS = (
    leads.c.id,
    leads.c.phone,
    leads.c.first_name,
    leads.c.last_name,
    leads.c.company,
    leads.c.company_key,
    leads.c.email_domain,
    leads.c.mailbox_key,
)
COMPARED_FIELDS = frozenset({"email", "phone", "first_name", "last_name", "company"})
"""The fields of a lead the comparison reads (directly, or by the keys made of them:
``email_domain``, ``mailbox_key``, ``company_key``): a capture or an import that changes
one of an existing lead's queues it again (:func:`queue_duplicate_checks_in`'s
``again``)."""


def compared_fields_changed(changes: Mapping[str, Any], email_key_before: str | None) -> bool:
    """Whether ``changes`` (the new values of an existing lead's fields) change what the
    comparison reads (:data:`COMPARED_FIELDS`): a new spelling of the same address (its
    case, as one form and then another type it) does not."""
    touched = COMPARED_FIELDS.intersection(changes)
    if touched == {"email"} and changes["email"] is not None:
        return email_key(changes["email"]) != email_key_before
    return bool(touched)


MAX_CANDIDATES = 200
SHARED_PHONE_LIMIT = 5
"""A number shared by more leads than this is a switchboard or a shared line, not a sign
that two records are one person."""


def possible_duplicates_of(
    connection: Connection,
    lead_ids: Sequence[int],
    *,
    now: datetime,
    newer: Collection[int] = frozenset(),
) -> tuple[list[DuplicateMatch], list[dict[str, Any]]]:
    """The matches of new leads with older leads and the review items (rows of
    ``duplicate_candidates``) that flag them, without writing anything: the worker
    compares in a read transaction and writes the rows in a short one.

    Set-based, so that an import of 100,000 rows costs a handful of indexed queries:
    candidates sharing a phone, a mailbox key (one inbox), a company key, or a corporate
    email domain with the same last name are gathered per signal, each shared value's
    oldest by one index range
    (:func:`_oldest_holding`; an ``OR`` across columns would scan the table on SQLite),
    and compared in memory, group by group
    (:func:`~baton.domain.leads.duplicates_in_groups`, held equal to
    :func:`~baton.domain.leads.find_duplicates` over all of a lead's candidates).
    A pair is flagged once, on its newer lead, and each lead only against the leads
    older than it: flagging many new leads at once flags the pairs that flagging them
    one by one, as they arrived, would have flagged.

    The leads of ``newer`` had their compared fields changed after they arrived (see
    :func:`queue_duplicate_checks_in`'s ``again``): each is also judged against by the
    newer leads among its candidates, each of those as its own comparison would judge
    it now (:func:`_newer_pairs`), so a lead that gains a phone is paired with the lead
    that already held it, whichever arrived first. Matches are the compared leads'
    (older leads only); the rows include the newer leads' pairs."""
    people: list[dict[str, Any]] = []
    for part in chunks(list(lead_ids)):
        found = connection.execute(select(*DUPLICATE_COLUMNS).where(leads.c.id.in_(part)))
        names = list(found.keys())  # once: dict(row) of a RowMapping asks for them per row
        people.extend(dict(zip(names, r, strict=True)) for r in found.all())

    def phone_of(p: dict[str, Any]) -> Any:
        return p["phone"]

    def column_is_phone(key_of: Callable[[dict[str, Any]], Any]) -> bool:
        return key_of is phone_of

    def corporate(p: dict[str, Any]) -> Any:
        return p["email_domain"] if p["email_domain"] not in FREE_MAIL_DOMAINS else None

    # Each signal: the column, the value a lead is compared by (its group), and the value
    # whose group a lead compared again reads for the newer leads that are compared by
    # it: a corporate domain is a lead's group only with a last name, but a newer lead
    # with one compares by it whatever the changed lead has.
    signals: list[tuple[Any, Callable[[dict[str, Any]], Any], Callable[[dict[str, Any]], Any]]]
    signals = [
        (leads.c.phone, phone_of, phone_of),
        (leads.c.mailbox_key, itemgetter("mailbox_key"), itemgetter("mailbox_key")),
        (leads.c.company_key, itemgetter("company_key"), itemgetter("company_key")),
        (leads.c.email_domain, lambda p: corporate(p) if p["last_name"] else None, corporate),
    ]

    def read_of(
        key_of: Callable[[dict[str, Any]], Any], reach_of: Callable[[dict[str, Any]], Any]
    ) -> Callable[[dict[str, Any]], Any]:
        return lambda p: reach_of(p) if p["id"] in newer else key_of(p)

    # A phone's group only tells whether more than SHARED_PHONE_LIMIT leads up to a new
    # lead hold it (a shared line, skipped) and, if not, which: its oldest
    # SHARED_PHONE_LIMIT + 1 holders tell both (a switchboard's 200 were read).
    reads = [
        (
            column.name,
            read_of(key_of, reach_of),
            SHARED_PHONE_LIMIT + 1 if column_is_phone(key_of) else MAX_CANDIDATES,
        )
        for column, key_of, reach_of in signals
    ]
    matches: list[DuplicateMatch] = []
    records: list[dict[str, Any]] = []
    waiting = [people]
    while waiting:
        some = waiting.pop()
        try:
            # At most CANDIDATE_ROWS held: past that, the leads are compared in two halves
            # (a lone lead's groups, at most 200 rows a signal, are read whatever the limit).
            room = CANDIDATE_ROWS if len(some) > 1 else None
            groups = _groups_of(connection, some, reads, room)
            if changed := [p for p in some if p["id"] in newer]:
                if room is not None:  # what the groups read left
                    room -= sum(len(g.ids) for grouped in groups for g in grouped.values())
                for (column, _, reach_of), (_, _, most), grouped in zip(
                    signals, reads, groups, strict=True
                ):
                    if column is not leads.c.phone:  # a full phone group is a shared line
                        read = _read_newer_past(
                            connection, column.name, changed, reach_of, grouped, most, room
                        )
                        room = None if room is None else room - read
        except _TooMany:
            half = len(some) // 2
            waiting += [some[:half], some[half:]]
            continue
        for person in some:
            # As of the lead's own arrival: leads created after it (in the same batch of
            # a worker or an import) neither count towards a shared line nor become its
            # candidates, so a lead is flagged the same whenever its turn comes.
            its_groups = [
                (group, SHARED_PHONE_LIMIT if column_is_phone(key_of) else None)
                for (_, key_of, _), grouped in zip(signals, groups, strict=True)
                if (key := key_of(person)) is not None and (group := grouped.get(key)) is not None
            ]
            # At most MAX_PAIRS_PER_LEAD pairs per new lead, the best ones (see there why).
            pairs = duplicates_in_groups(person, its_groups, limit=MAX_CANDIDATES)
            for match in best_duplicates(pairs):
                matches.append(match)
                records.append(_pair(person["id"], match, now))
            if person["id"] in newer:
                reached = [
                    (group, SHARED_PHONE_LIMIT if column_is_phone(key_of) else None, key_of, key)
                    for (_, key_of, reach_of), grouped in zip(signals, groups, strict=True)
                    if (key := reach_of(person)) is not None
                    and (group := grouped.get(key)) is not None
                ]
                records.extend(_newer_pairs(person, reached, now))
    return matches, records


def _pair(lead_id: int, match: DuplicateMatch, now: datetime) -> dict[str, Any]:
    """The review item (a ``duplicate_candidates`` row) of ``lead_id``'s ``match``."""
    return {
        "lead_id": lead_id,
        "other_lead_id": match.other_id,
        "reason": match.reason,
        "similarity": match.similarity,
        "status": "open",
        "created_at": now,
    }


NEWER_HOLDERS = 10_000
"""Holders of a value read past a group's first :data:`MAX_CANDIDATES` for a lead
compared again (the newer leads whose own comparison reaches it): a company of more than
10,200 leads is judged against its first 10,200."""


def _read_newer_past(
    connection: Connection,
    column: str,
    changed: Sequence[dict[str, Any]],
    reach_of: Callable[[dict[str, Any]], Any],
    grouped: dict[Any, CandidateGroup],
    most: int,
    room: int | None,
) -> int:
    """Extend the full groups (``most`` holders read) of the values that leads compared
    again hold among the first ``most`` with the holders past them, up to
    :data:`NEWER_HOLDERS`: a newer lead there compares itself with the group's first
    ``most``, so with such a lead, and is judged against it (:func:`_newer_pairs`). The
    other leads of the batch see the same first ``most`` as before (their comparison
    stops there). The rows read; :class:`_TooMany` past ``room`` rows (read in parts
    that the room left can hold)."""
    after: dict[Any, int] = {}
    for person in changed:
        value = reach_of(person)
        group = grouped.get(value) if value is not None else None
        if group is None or len(group.ids) < most or int(person["id"]) > group.ids[most - 1]:
            continue  # all read already, or past the first: no newer lead's reaches it
        after[value] = group.ids[-1]
    if not after:
        return 0
    records = _oldest_holding(connection, column, sorted(after), NEWER_HOLDERS, room, after)
    past: dict[Any, list[dict[str, Any]]] = {}
    for record in records:
        past.setdefault(record[column], []).append(record)
    for value, held in past.items():
        group = grouped[value]
        grouped[value] = CandidateGroup([*group.records, *sorted(held, key=_id_of)])
    return len(records)


OWNER = "_owner"
"""The key :func:`_newer_pairs` adds to its rows: the lead compared again whose
comparison found the pair (the pair's ``lead_id`` is the newer lead), which writes it."""


def _newer_pairs(
    changed: Mapping[str, Any],
    groups: Sequence[tuple[CandidateGroup, int | None, Callable[[dict[str, Any]], Any], Any]],
    now: datetime,
) -> list[dict[str, Any]]:
    """The pairs of the leads newer than ``changed`` among the groups of the values it
    holds (``groups``: each with its shared-line cap, the signal's value of a lead and
    the group's value) with it. Those leads were compared when they arrived, before
    ``changed`` held the values it holds now: each that could match it
    (:func:`~baton.domain.leads.newer_candidates`: its phone, its inbox, a close name) is
    judged as its own comparison judges it, by those of the groups it is compared by
    itself (against the leads older than it, a shared line counted up to it, its best
    :data:`~baton.domain.leads.MAX_PAIRS_PER_LEAD` kept), and its pair with ``changed``
    kept if among them (the rows carry :data:`OWNER`). Newer leads past a group's first
    :data:`MAX_CANDIDATES` are not read (the groups are read oldest first)."""
    own_id = int(changed["id"])
    newer: dict[int, tuple[dict[str, Any], list[tuple[CandidateGroup, int | None]]]] = {}
    for group, most, key_of, value in groups:
        for position in newer_candidates(changed, group):
            record = dict(group.records[position])
            if key_of(record) == value:  # a group of its own comparison
                newer.setdefault(int(record["id"]), (record, []))[1].append((group, most))
    rows: list[dict[str, Any]] = []
    for other_id, (record, shared) in sorted(newer.items()):
        judged = duplicates_in_groups(record, shared, limit=MAX_CANDIDATES)
        for match in best_duplicates(judged):
            if match.other_id == own_id:
                rows.append({**_pair(other_id, match, now), OWNER: own_id})
    return rows


CANDIDATE_ROWS = 200_000
"""Candidate rows one comparison holds in memory at most (about 160 MB). A batch whose
leads share few values (a stream from a few hundred companies: about 100,000 rows for
2,000 leads) or bring small groups (an import's: a few rows a value) is compared at
once; one whose every lead brings large groups of its own (2,000 distinct companies of
200 leads or more would be 800,000 rows) is found out while its candidates are read and
compared in halves, each with its own reads. The result is the same either way: each
lead is compared with the leads older than it, whoever else is in its part."""


class _TooMany(Exception):
    """More candidate rows than the comparison may hold (:data:`CANDIDATE_ROWS`)."""


def _groups_of(
    connection: Connection,
    people: Sequence[dict[str, Any]],
    reads: Sequence[tuple[str, Callable[[dict[str, Any]], Any], int]],
    room: int | None,
) -> list[dict[Any, CandidateGroup]]:
    """For each signal of ``reads`` (column, the value a person brings, the holders read
    per value), the candidate groups of the values ``people`` bring, by value;
    :class:`_TooMany` once more than ``room`` rows are read in all."""
    groups: list[dict[Any, CandidateGroup]] = []
    for column, key_of, most in reads:
        values = sorted({v for p in people if (v := key_of(p)) is not None})
        read = _oldest_holding(connection, column, values, most, room)
        if room is not None:
            room -= len(read)
        holders: dict[Any, list[dict[str, Any]]] = {}
        for record in read:
            holders.setdefault(record[column], []).append(record)
        groups.append({v: CandidateGroup(sorted(rows, key=_id_of)) for v, rows in holders.items()})
    return groups


_CANDIDATE_NAMES = tuple(c.name for c in DUPLICATE_COLUMNS)
_SQLITE_PARTS = 100
"""Values per SQLite statement (one ``UNION ALL`` part each; SQLite allows 500)."""


def _oldest_holding(
    connection: Connection,
    column: str,
    values: Sequence[Any],
    most: int | None = None,
    room: int | None = None,
    after: Mapping[Any, int] | None = None,
) -> list[dict[str, Any]]:
    """For each of ``values``, the ``most`` (default :data:`MAX_CANDIDATES`) oldest
    leads not merged away whose ``column`` holds it (the records a new lead would be
    merged into), or with ``after``, those with an id past the value's there (the next
    holders of a group already read); :class:`_TooMany` as soon as more than ``room``
    rows are read.

    One index range per value, read in id order and stopped at the limit, so a value
    that every lead shares (one corporate domain) costs 200 rows, not the table: the
    query this replaces ranked every lead holding each value with a window function,
    a scan of the whole table per worker pass once a domain was everyone's (the
    worker then spent more CPU per captured lead than the server). The index on
    ``(column, id)`` (migration 0030) is that order on both databases: on PostgreSQL an
    index on the value alone let the planner read the whole table through the primary
    key once per value whenever it had no statistics yet. On PostgreSQL a ``LATERAL``
    part per value."""
    if not values:
        return []
    most = MAX_CANDIDATES if most is None else most
    names = ", ".join(_CANDIDATE_NAMES)
    rows: list[Any] = []
    if connection.dialect.name == "postgresql":
        given, named, past = "CAST(%(values)s AS text[])", "v(value)", ""
        if after is not None:
            given += ", CAST(%(after)s AS bigint[])"
            named, past = "v(value, after)", " AND id > v.after"
        sql = (
            f"SELECT c.* FROM unnest({given}) AS {named} CROSS JOIN LATERAL"
            f" (SELECT {names} FROM leads WHERE {column} = v.value{past} AND merged_into_id IS NULL"
            f" ORDER BY id LIMIT {int(most)}) AS c"
        )
        # Parts no larger than the room left can hold (a part of 900 values may read
        # 180,000 rows).
        size = IN_CHUNK if room is None else max(1, min(IN_CHUNK, room // most + 1))
        for part in chunks(values, size):
            params: dict[str, Any] = {"values": list(part)}
            if after is not None:
                params["after"] = [after[v] for v in part]
            rows.extend(connection.exec_driver_sql(sql, params).all())
            if room is not None and len(rows) > room:
                raise _TooMany
    else:
        one = (
            f"SELECT * FROM (SELECT {names} FROM leads WHERE {column} = ?"
            f"{'' if after is None else ' AND id > ?'} AND merged_into_id IS NULL"
            f" ORDER BY id LIMIT {int(most)})"
        )
        for part in chunks(values, _SQLITE_PARTS):
            sql = " UNION ALL ".join([one] * len(part))
            flat = part if after is None else [x for v in part for x in (v, after[v])]
            rows.extend(connection.exec_driver_sql(sql, tuple(flat)).all())
            if room is not None and len(rows) > room:
                raise _TooMany
    return [dict(zip(_CANDIDATE_NAMES, row, strict=True)) for row in rows]


def _id_of(record: Mapping[str, Any]) -> int:
    return int(record["id"])
