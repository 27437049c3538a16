"""Scores under the active contract: kept current as activities arrive and as lead
fields change, recomputed for everyone when a new contract is activated, and the handoff
point (MQL) checked each time.

The score of a lead lives in ``lead_scores`` with its engagement *state* (see
:mod:`baton.domain.scoring`), so a new event costs O(1) whatever the lead's history.
"""

from __future__ import annotations

import bisect
import gc
import importlib.util
import itertools
import json
import logging
import os
import secrets
import tempfile
import threading
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast, runtime_checkable

from sqlalchemy import Column, Text, bindparam, func, literal, select, type_coerce
from sqlalchemy import cast as cast_
from sqlalchemy.dialects.sqlite import dialect as sqlite_dialect
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.schema import CreateIndex, DropIndex
from sqlalchemy.sql import visitors
from sqlalchemy.sql.util import ClauseAdapter

from baton.domain.access import Action, Principal
from baton.domain.contract import (
    GRADE_ORDER,
    EmailCondition,
    EngagementRule,
    Grade,
    HandoffContract,
)
from baton.domain.errors import Conflict, NotFound
from baton.domain.history import is_live
from baton.domain.lifecycle import Stage
from baton.domain.scoring import (
    SECONDS_PER_DAY,
    Event,
    MqlGap,
    RuleHit,
    ScoreCard,
    add_event,
    condition_holds,
    engagement_state,
    engagement_total,
    event_types_needing_properties,
    grade_at_least,
    mql_decision,
    mql_gaps,
    relevant_event_types,
    score,
    score_engagement,
)
from baton.lazy import lazy_module
from baton.services.access import allowed, check_lead
from baton.services.context import Context
from baton.services.contract_rules import active_contract_in, contract_spec
from baton.services.queries import chunks
from baton.services.stages import MqlChange, change_stages_in
from baton.store.advisory import rescore_run_key
from baton.store.bulk import find_by_keys, read_datetime, sqlite_datetime
from baton.store.engine import write_turn
from baton.store.score_sql import FitPlan, compile_fit, email_domain
from baton.store.tables import activities, lead_prep, lead_scores, leads

log = logging.getLogger(__name__)

_Row = TypeVar("_Row")

if TYPE_CHECKING:
    import numpy as np

    from baton.learn.model import LeadModel
    from baton.store import event_pass
else:
    # The re-score's alone: a capture or an import that scores leads never loads them.
    np = lazy_module("numpy")
    event_pass = lazy_module("baton.store.event_pass")

SCORED_COLUMNS = (
    leads.c.id,
    leads.c.email,
    leads.c.email_domain,
    leads.c.phone,
    leads.c.first_name,
    leads.c.last_name,
    leads.c.company,
    leads.c.title,
    leads.c.country,
    leads.c.region,
    leads.c.postal_code,
    leads.c.source,
    leads.c.campaign,
    leads.c.last_source,
    leads.c.last_campaign,
    leads.c.utm_source,
    leads.c.utm_medium,
    leads.c.utm_campaign,
    leads.c.utm_term,
    leads.c.utm_content,
    leads.c.consent,
    leads.c.attributes,
    leads.c.stage,
    leads.c.stage_changed_at,
    leads.c.merged_into_id,
    leads.c.updated_at,
)


@dataclass(frozen=True)
class ScoreUpdate:
    """A lead whose score was recomputed, with the MQL decision taken (if any)."""

    lead_id: int
    before: float | None
    card: ScoreCard
    became_mql: bool
    reason: str


def _people(connection: Connection, lead_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    """The scored columns of ``lead_ids``, read at the driver level (scoring runs for
    every event batch)."""
    names = [c.name for c in SCORED_COLUMNS]
    found: dict[int, dict[str, Any]] = {}
    for values in find_by_keys(connection, leads, "id", list(lead_ids), *names[1:]):
        row = dict(zip(names, values, strict=True))
        if isinstance(row["attributes"], str):
            row["attributes"] = json.loads(row["attributes"])
        row["stage_changed_at"] = read_datetime(row["stage_changed_at"])
        row["updated_at"] = read_datetime(row["updated_at"])
        if isinstance(row["consent"], int) and not isinstance(row["consent"], bool):
            row["consent"] = bool(row["consent"])
        found[row["id"]] = row
    return found


@dataclass(frozen=True)
class _Stored:
    total: float
    state: dict[str, list[float]]
    version: int
    fit: float
    grade: str
    scored_at: datetime


def _scores_of(connection: Connection, lead_ids: Sequence[int]) -> dict[int, _Stored]:
    """Stored score row per lead (state decoded)."""
    found: dict[int, _Stored] = {}
    for lead_id, total, state, version, fit, grade, scored_at in find_by_keys(
        connection,
        lead_scores,
        "lead_id",
        list(lead_ids),
        "total",
        "state",
        "contract_version",
        "fit",
        "grade",
        "scored_at",
    ):
        parsed = json.loads(state) if isinstance(state, str) else state
        found[lead_id] = _Stored(total, parsed, version, fit, grade, read_datetime(scored_at))
    return found


def _write_scores(
    connection: Connection,
    version: int,
    cards: Mapping[int, tuple[ScoreCard, Mapping[str, list[float]]]],
    now: datetime,
) -> None:
    """Upsert the score rows (one per lead), so a concurrent writer can never make
    this fail on the key."""
    at: Any = now if connection.dialect.name == "postgresql" else sqlite_datetime(now)
    _upsert_scores(
        connection,
        [
            (
                lead_id,
                version,
                cards[lead_id][0].fit,
                cards[lead_id][0].engagement,
                cards[lead_id][0].total,
                cards[lead_id][0].grade,
                json.dumps(cards[lead_id][1]),
                at,
                cards[lead_id][0].probability,
            )
            for lead_id in sorted(cards)
        ],
    )


def _upsert_scores(connection: Connection, rows: Sequence[tuple[Any, ...]]) -> None:
    """One statement for many score rows: (lead_id, contract_version, fit, engagement,
    total, grade, state as JSON text, scored_at as the driver takes it, probability)."""
    if not rows:
        return
    mark = "%s" if connection.dialect.name == "postgresql" else "?"
    connection.exec_driver_sql(
        "INSERT INTO lead_scores (lead_id, contract_version, fit, engagement, total, grade,"
        f" state, scored_at, probability) VALUES ({', '.join([mark] * 9)})"
        " ON CONFLICT (lead_id) DO UPDATE SET contract_version = excluded.contract_version,"
        " fit = excluded.fit, engagement = excluded.engagement, total = excluded.total,"
        " grade = excluded.grade, state = excluded.state, scored_at = excluded.scored_at,"
        " probability = excluded.probability",
        list(rows),
    )


def _upsert_chunk_scores(
    connection: Connection, version: int, at: str, rows: Sequence[tuple[Any, ...]]
) -> None:
    """SQLite: upsert a chunk's score rows (lead id, fit, engagement, total, grade,
    state as JSON text) under ``version``, scored at ``at`` (the text
    :func:`baton.store.bulk.sqlite_datetime` gives), without a probability, as
    :func:`_upsert_scores` would. The three values every row of the chunk shares are
    written in the statement (the version as a whole number, the moment as a quoted
    text), so each row binds 6 values instead of 9: 20–23 against 28–34 ms of the
    writing process's CPU per chunk of 10,000 measured apart, about 0.7 s at 1,000,000
    leads, on the path every chunk waits on. A literal is stored as the bound value is
    (the same affinity applies to both)."""
    if not rows:
        return
    moment = "'" + at.replace("'", "''") + "'"
    connection.exec_driver_sql(
        "INSERT INTO lead_scores (lead_id, contract_version, fit, engagement, total, grade,"
        f" state, scored_at, probability) VALUES (?, {int(version)}, ?, ?, ?, ?, ?, {moment},"
        " NULL) ON CONFLICT (lead_id) DO UPDATE SET"
        " contract_version = excluded.contract_version, fit = excluded.fit,"
        " engagement = excluded.engagement, total = excluded.total, grade = excluded.grade,"
        " state = excluded.state, scored_at = excluded.scored_at,"
        " probability = excluded.probability",
        list(rows),
    )


def _copy_scores(
    connection: Connection, version: int, at: datetime, rows: Iterable[tuple[Any, ...]]
) -> None:
    """PostgreSQL: upsert a chunk's score rows (lead id, fit, engagement, total, grade,
    state as JSON text) under ``version``, scored at ``at``: copied (``COPY``) into a
    table of the transaction's own, then one ``INSERT ... SELECT ... ON CONFLICT``.
    Measured on chunks of 10,000 (the 100,000-lead fill of ``bench/rescore.py``):
    140–150 ms of the server's CPU against 200–210 ms when the rows travelled as one
    JSON array taken apart by ``json_array_elements`` (its parse was most of it). Floats
    travel as their repr, read back exactly."""
    cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(
            "CREATE TEMPORARY TABLE rescore_chunk_scores (lead_id BIGINT, fit DOUBLE PRECISION,"
            " engagement DOUBLE PRECISION, total DOUBLE PRECISION, grade TEXT, state JSONB)"
            " ON COMMIT DROP"
        )
        with cursor.copy("COPY rescore_chunk_scores FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        cursor.execute(
            "INSERT INTO lead_scores (lead_id, contract_version, fit, engagement, total,"
            " grade, state, scored_at, probability)"
            " SELECT lead_id, %s, fit, engagement, total, grade, state, %s, NULL"
            " FROM rescore_chunk_scores"
            " ON CONFLICT (lead_id) DO UPDATE SET contract_version = excluded.contract_version,"
            " fit = excluded.fit, engagement = excluded.engagement, total = excluded.total,"
            " grade = excluded.grade, state = excluded.state, scored_at = excluded.scored_at,"
            " probability = excluded.probability",
            (version, at),
        )
        # Dropped now, not at the commit: a caller may score two chunks in one transaction.
        cursor.execute("DROP TABLE rescore_chunk_scores")
    finally:
        cursor.close()


@dataclass(frozen=True)
class PredictedReason:
    """One feature's part in the model's probability for a lead: ``effect`` is how
    much the probability drops (positive) or rises (negative) without it."""

    feature: str
    label: str
    effect: float


@dataclass(frozen=True)
class Predictions:
    """The contract's model's probability for each lead scored (empty when the contract
    has no ``predicted`` component), with the top reasons when asked for; ``problem``
    says why there is none when the model could not be used (the leads are then scored
    without the component)."""

    probabilities: dict[int, float] = field(default_factory=dict)
    reasons: dict[int, tuple[PredictedReason, ...]] = field(default_factory=dict)
    problem: str | None = None


def predictions_in(
    connection: Connection,
    contract: HandoffContract,
    lead_ids: Sequence[int],
    now: datetime,
    *,
    reasons: bool = False,
) -> Predictions:
    """Probabilities of ``lead_ids`` at ``now`` from the model ``scoring.predicted``
    names: the features as of ``now`` (:func:`baton.services.model_store.feature_rows_in`)
    scored in one call. A contract without the component loads nothing (the model code,
    scikit-learn, is imported only here, on first use).

    A model that cannot be loaded or used (a changed artifact fails its checksum, a
    missing version) never stops scoring: the problem is logged and returned, and the
    leads are scored without the component. Database errors are not swallowed."""
    component = contract.scoring.predicted
    if component is None or not lead_ids:
        return Predictions()
    from baton.services.model_store import feature_rows_in, load_model_in

    try:
        model: LeadModel = load_model_in(connection, component.model)
        rows = feature_rows_in(
            connection,
            model.spec,
            lead_ids,
            now,
            numeric_attributes=model.numeric_attributes,
        )
        ids = sorted(rows)
        found = dict(zip(ids, model.probabilities([rows[i] for i in ids]), strict=True))
        explained = (
            {
                i: tuple(
                    PredictedReason(r.feature, r.label, r.effect) for r in model.reasons(rows[i])
                )
                for i in ids
            }
            if reasons
            else {}
        )
    except DBAPIError:
        raise
    except Exception as exc:
        from baton.learn.model import ModelFileError

        # Readers of the lead see the problem: Baton's own messages only, never an
        # exception's text from inside the model (paths, classes, feature values).
        said = str(exc) if isinstance(exc, NotFound | ModelFileError) else "see the server log"
        problem = f"model v{component.model} could not be loaded ({said}); scored without it"
        log.warning("scoring: %s", problem, exc_info=not isinstance(exc, NotFound))
        return Predictions(problem=problem)
    return Predictions(found, explained)


def _apply_mql(
    connection: Connection,
    contract: HandoffContract,
    version: int,
    lead: Mapping[str, Any],
    card: ScoreCard,
    *,
    now: datetime,
    hand_raises: Sequence[Event] = (),
    prep_done: set[str],
) -> tuple[bool, str]:
    stage = str(lead["stage"])
    recycled_at = lead["stage_changed_at"] if stage == Stage.NURTURE.value else None
    decision = mql_decision(
        contract,
        stage=stage,
        card=card,
        lead=lead,
        now=now,
        recycled_at=recycled_at,
        prep_done=prep_done,
    )
    for event in hand_raises:
        if decision.qualifies:
            break
        decision = mql_decision(
            contract,
            stage=stage,
            card=card,
            lead=lead,
            now=now,
            event_type=event.type,
            event_at=event.occurred_at,
            recycled_at=recycled_at,
            prep_done=prep_done,
        )
    return decision.qualifies, decision.reason


def score_leads_in(
    connection: Connection,
    lead_ids: Sequence[int],
    *,
    now: datetime,
    actor: Principal,
    new_events: Mapping[int, Sequence[Event]] | None = None,
    historical: bool = False,
    created: Collection[int] = (),
    fields: Mapping[int, Mapping[str, Any]] | None = None,
) -> list[ScoreUpdate]:
    """Bring the scores of ``lead_ids`` up to date inside the caller's transaction,
    folding in ``new_events`` (just stored) and the leads' current fields, then hand off
    every lead that reached the MQL point. No active contract: nothing to do.

    Scoring is a consequence of a change the caller was allowed to make, so it checks
    nothing; the MQL transitions it makes are recorded as ``actor``'s.

    History never fires live work: with ``historical`` (a history import), or when the
    newest of the lead's ``new_events`` is older than the contract's
    ``mql.live_within_days``, the MQL is recorded at that moment as history and no
    handoff opens (:func:`_held_back_moment`).

    ``created``: leads inserted in this transaction, whose whole history is their
    ``new_events`` (a capture's new lead): no score, history or prep ticks of theirs is
    read back, three statements fewer per capture. ``fields``: the scored columns
    (:data:`SCORED_COLUMNS`) of leads the caller has just written and read back in the
    same statement (a new lead's insert returns them), not read again."""
    active = active_contract_in(connection)
    if active is None or not lead_ids:
        return []
    version, contract = active
    events = new_events or {}
    hand_raise_types = {e.value for e in contract.mql.hand_raise}
    people: dict[int, dict[str, Any]] = {}
    previous: dict[int, _Stored] = {}
    asked = set(lead_ids)
    given = {i: dict(row) for i, row in (fields or {}).items() if i in asked}
    if rest := sorted(asked - set(given)):
        people.update(_people(connection, rest))
    people.update(given)
    new = set(created)
    previous.update(_scores_of(connection, sorted(i for i in people if i not in new)))
    # Leads never scored under this version (new, reached before a running activation,
    # merged) are rebuilt from their whole history, which already holds new_events.
    rebuild = sorted(
        lead_id
        for lead_id in people
        if lead_id not in previous or previous[lead_id].version != version
    )
    kinds = relevant_event_types(contract)
    with_props = event_types_needing_properties(contract)
    histories = _histories_of(connection, kinds, with_props, [i for i in rebuild if i not in new])
    for lead_id in (i for i in rebuild if i in new):
        history = [
            Event(e.type, e.occurred_at, dict(e.properties) if e.type in with_props else {})
            for e in events.get(lead_id, ())
            if e.type in kinds
        ]
        if history:  # as _histories_of leaves out a lead without relevant events
            histories[lead_id] = history
    ticks: dict[int, set[str]] = {}
    waiting = [
        i
        for i, p in people.items()
        if p["stage"] in (Stage.LEAD.value, Stage.NURTURE.value) and i not in new
    ]
    if waiting and any(item.required for item in contract.prep_checklist):
        for part in chunks(sorted(waiting)):
            for lead_id, item in connection.execute(
                select(lead_prep.c.lead_id, lead_prep.c.item).where(lead_prep.c.lead_id.in_(part))
            ):
                ticks.setdefault(lead_id, set()).add(item)
    cards: dict[int, tuple[ScoreCard, Mapping[str, list[float]]]] = {}
    updates: list[ScoreUpdate] = []
    # The model's probability moves with every event and field, so it is computed
    # whenever a lead is scored (nothing is loaded without scoring.predicted).
    predicted = predictions_in(
        connection,
        contract,
        sorted(i for i, p in people.items() if p["merged_into_id"] is None),
        now,
    ).probabilities
    for lead_id, lead in people.items():
        if lead["merged_into_id"] is not None:
            continue
        stored = previous.get(lead_id)
        before = stored.total if stored else None
        probability = predicted.get(lead_id)
        if stored is None or stored.version != version:
            state = engagement_state(contract, histories.get(lead_id, ()))
            card = score(contract, lead, state, now, probability=probability)
        else:
            state = stored.state
            for event in events.get(lead_id, ()):
                state = add_event(contract, state, event)
            if lead["updated_at"] < stored.scored_at:
                # Fields unchanged since the last scoring: fit and grade stand and only
                # engagement moves (this card then lists the engagement hits only).
                card = score_engagement(contract, stored.fit, state, now, probability=probability)
            else:
                card = score(contract, lead, state, now, probability=probability)
        cards[lead_id] = (card, state)
        became, reason = _apply_mql(
            connection,
            contract,
            version,
            lead,
            card,
            now=now,
            hand_raises=[e for e in events.get(lead_id, ()) if e.type in hand_raise_types],
            prep_done=ticks.get(lead_id, set()),
        )
        updates.append(ScoreUpdate(lead_id, before, card, became, reason))
    # Scores are written before the stage changes so that routing reads the new score.
    _write_scores(connection, version, cards, now)
    # All the new MQLs are handed off by one call, which locks every pool they may use
    # before any rep: opening them one by one would lock a pool after a rep, and two
    # transactions doing so in crossed orders deadlock on PostgreSQL.
    changes: list[MqlChange] = []
    for update_ in updates:
        if update_.became_mql:
            lead = people[update_.lead_id]
            moments = [e.occurred_at for e in events.get(update_.lead_id, ())]
            held = _held_back_moment(
                contract,
                max(moments) if moments else None,
                lead["stage_changed_at"],
                now=now,
                historical=historical,
            )
            changes.append(
                MqlChange(
                    update_.lead_id,
                    update_.reason + (" (history: no live handoff)" if held else ""),
                    occurred_at=held,
                    historical=held is not None,
                )
            )
    change_stages_in(connection, changes, actor=actor, now=now, contract_version=version)
    return updates


def _held_back_moment(
    contract: HandoffContract,
    moment: datetime | None,
    previous_at: datetime,
    *,
    now: datetime,
    historical: bool,
) -> datetime | None:
    """When an MQL is history (``historical``, or its qualifying ``moment`` older
    than ``mql.live_within_days``): the moment to record it at, never before the lead's
    previous transition nor after ``now``; ``None`` when it is live."""
    if not historical and (
        moment is None
        or is_live(
            moment, now=now, live_within_days=contract.mql.live_within_days, historical=False
        )
    ):
        return None
    return min(max(moment or previous_at, previous_at), now)


def _state_from_history(
    connection: Connection, contract: HandoffContract, lead_id: int
) -> dict[str, list[float]]:
    rows = connection.execute(
        select(activities.c.type, activities.c.occurred_at, activities.c.properties).where(
            activities.c.lead_id == lead_id
        )
    )
    return engagement_state(contract, (Event(t, at, props or {}) for t, at, props in rows))


@dataclass
class ActivationReport:
    """What activating a version did to the leads. A lead "crosses up" when it is over
    the new threshold and was not over the previous one (with its previous score), and
    "down" the other way round."""

    version: int
    previous: int | None
    leads_scored: int = 0
    crossed_up: int = 0
    crossed_down: int = 0
    became_mql: int = 0
    held_back: int = 0
    """Of ``became_mql``: leads whose qualifying moment is older than
    ``mql.live_within_days``, recorded as MQLs of the past with no live handoff."""
    model_problem: str | None = None
    """Why the contract's model gave no probabilities (it could not be loaded): the
    leads were scored without the predicted component."""


def rescore_all(
    ctx: Context,
    report: ActivationReport,
    *,
    actor: Principal,
    progress: Callable[[int, int], None] | None = None,
    chunk: int | None = None,
    set_based: bool = True,
) -> None:
    """Re-score every lead under the now-active version, ``chunk`` leads per transaction
    that locks them and commits (:data:`SET_CHUNK`: about a second of SQLite's write turn,
    and as long for the row locks on PostgreSQL; capture and ingest proceed between
    chunks). Safe to run again (``baton contract rescore``) if a run was interrupted.

    A lead "crosses up" when it is over the new threshold now but was not over the
    previous one, its previous score taken at the same moment under the previous rules
    (so decay or mixed versions never count as a crossing); "down" the other way.

    Each chunk is scored set-based (:func:`rescore_chunk`); ``set_based=False`` forces
    the per-lead path (2,000 at a time), which gives the same scores, decisions and
    counts. From :data:`ONE_PASS_LEADS` leads the engagement of every lead is read in
    one pass first (:func:`_one_pass`), which a chunk uses only where nothing it read
    has changed since; on a SQLite file with two cores or more, in worker processes of
    the re-score's own (:func:`_pass_workers`), which then write the state texts while
    the chunks write the scores. On PostgreSQL, :data:`CHUNKS_AT_ONCE` set-based chunks
    are in flight at once, their handoffs still one chunk after the other
    (:func:`_rescore_chunks_overlapped`).

    Re-scoring every lead (and handing off those that now qualify, as ``actor``) is part
    of activating a version, so it needs the right to activate one."""
    allowed(actor, Action.ACTIVATE_CONTRACT)
    size = chunk or (SET_CHUNK if set_based else 2000)
    with ctx.read() as connection:
        total = connection.execute(
            select(func.count()).select_from(leads).where(leads.c.merged_into_id.is_(None))
        ).scalar_one()
    previous = contract_spec(ctx, report.previous) if report.previous is not None else None
    with (
        _events_reader(ctx) as reader,
        _full_collections_held(),
        _pass_workers(ctx, total if set_based else 0) as workers,
        _total_index_held_back(ctx, total if set_based else 0),
        _reads_ahead(ctx, workers if set_based else None, size) as reads,
    ):
        one_pass = (
            _one_pass(
                ctx,
                report,
                reader,
                total,
                workers,
                before_merge=(
                    (lambda: reads.begin(ctx, report, previous, progress))
                    if reads is not None
                    else None
                ),
            )
            if set_based
            else None
        )
        try:
            _rescore_chunks(
                ctx,
                report,
                previous,
                actor,
                progress,
                size,
                total,
                set_based=set_based,
                reader=reader,
                one_pass=one_pass,
                reads=reads,
            )
        except DBAPIError as error:
            # Not "nothing was saved": the version is active and the chunks before
            # this one are kept, which a rescore finishes.
            reason = str(getattr(error, "orig", error)).strip().splitlines()[0]
            raise RescoreStopped(
                f"version {report.version} is active, but its re-score stopped after "
                f"{report.leads_scored:,} of {total:,} leads ({reason}); run `baton "
                "contract rescore` to finish it"
            ) from error


class RescoreStopped(Conflict):
    """A re-score stopped by the database (a deadlock it broke, a lost connection) after
    its version was activated and some chunks were kept: say so and how to finish."""


TOTAL_INDEX = next(index for index in lead_scores.indexes if index.name == "ix_lead_scores_total")
"""The index of the scores' totals that search by score reads (``INDEXED BY`` on SQLite,
:func:`baton.services.lead_search._best_scored`)."""

REBUILD_TOTAL_INDEX_LEADS = 100_000
"""From this many leads a re-score on SQLite writes its scores without
:data:`TOTAL_INDEX` and builds it again at the end (:func:`_total_index_held_back`)."""


@contextmanager
def _total_index_held_back(ctx: Context, total: int) -> Iterator[None]:
    """On SQLite, for a re-score of ``total`` leads from :data:`REBUILD_TOTAL_INDEX_LEADS`:
    :data:`TOTAL_INDEX` dropped as it begins and built again as it ends, failed or not
    (``IF NOT EXISTS``: a re-score whose process died meanwhile left it out, and the next
    large one, or ``baton contract rescore``, puts it back). Each chunk's totals fall all
    over that index, so its upkeep rewrote nearly every leaf page of it per chunk: measured
    apart, 1,000,000 score rows in chunks of 10,000 cost 4.2 s of ``executemany`` and 2.8 s
    of commits with it, 1.8 and 0.4 s without, while building it once over 1,000,000 rows
    costs about 1.4 s of CPU (one write turn of 1.6–2.8 s at a load of 4, which writers
    wait out in their turn: the write timeout is 30 s). Meanwhile search by score reads
    without it (:func:`baton.services.lead_search._best_scored` checks for it), and
    PostgreSQL keeps it (its upkeep there was not measured)."""
    if total < REBUILD_TOTAL_INDEX_LEADS or ctx.engine.dialect.name != "sqlite":
        yield
        return
    with ctx.write() as connection:
        connection.execute(DropIndex(TOTAL_INDEX, if_exists=True))
    try:
        yield
    finally:
        with ctx.write() as connection:
            connection.execute(CreateIndex(TOTAL_INDEX, if_not_exists=True))


def restore_total_index(ctx: Context) -> bool:
    """On SQLite, build :data:`TOTAL_INDEX` again when a large re-score's process died
    before it could (killed, out of memory, a restart mid-activation), so search by score
    does not stay slow until the next one; True when it had to. Every server process and
    worker calls it as it starts. A re-score still running elsewhere only loses the
    speed it gained by writing without the index."""
    if ctx.engine.dialect.name != "sqlite":
        return False
    with ctx.read() as connection:
        present = connection.exec_driver_sql(
            "SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = ?",
            (TOTAL_INDEX.name,),
        ).first()
    if present is not None:
        return False
    with ctx.write() as connection:
        connection.execute(CreateIndex(TOTAL_INDEX, if_not_exists=True))
    log.warning(
        "the index for search by score (%s) was missing: built again. A re-score of "
        "every lead was interrupted, or is running in another process; if none is "
        "running, `baton contract rescore` finishes it",
        TOTAL_INDEX.name,
    )
    return True


_FULL_COLLECTIONS_HELD = 0
_HELD_LOCK = threading.Lock()
_HELD_THRESHOLDS: tuple[int, int, int] | None = None


@contextmanager
def _full_collections_held() -> Iterator[None]:
    """No full garbage collection while a re-score runs (the third threshold raised out
    of reach; put back when the last re-score of the process ends). A chunk makes tens
    of thousands of rows and tuples, which started a full collection every few chunks,
    and each one walked every object of the process: 2.9–3.6 s of the 45–54 s of CPU of
    a 1,000,000-lead re-score. Young collections go on, so cycles made meanwhile wait
    at most until the end; nothing is frozen for good (in a server or worker, whose
    start-up heap is frozen, ``gc.unfreeze`` would have given it back to the collector,
    and freezing for good would have kept any garbage of that moment)."""
    global _FULL_COLLECTIONS_HELD, _HELD_THRESHOLDS
    with _HELD_LOCK:
        if _FULL_COLLECTIONS_HELD == 0:
            _HELD_THRESHOLDS = gc.get_threshold()
            young, middle, _ = _HELD_THRESHOLDS
            gc.set_threshold(young, middle, 1_000_000_000)
        _FULL_COLLECTIONS_HELD += 1
    try:
        yield
    finally:
        with _HELD_LOCK:
            _FULL_COLLECTIONS_HELD -= 1
            if _FULL_COLLECTIONS_HELD == 0 and _HELD_THRESHOLDS is not None:
                gc.set_threshold(*_HELD_THRESHOLDS)


def _rescore_chunks(
    ctx: Context,
    report: ActivationReport,
    previous: HandoffContract | None,
    actor: Principal,
    progress: Callable[[int, int], None] | None,
    size: int,
    total: int,
    *,
    set_based: bool,
    reader: _Readers | None,
    one_pass: _OnePass | None = None,
    reads: _ChunkReads | None = None,
) -> None:
    """The chunks of :func:`rescore_all`, one transaction each (on PostgreSQL, set-based,
    :data:`CHUNKS_AT_ONCE` at a time: :func:`_rescore_chunks_overlapped`; on a SQLite
    file with worker processes, each chunk's leads read ahead by them (``reads``):
    :func:`_rescore_chunks_read_ahead`)."""
    if set_based and CHUNKS_AT_ONCE > 1 and ctx.engine.dialect.name == "postgresql":
        _rescore_chunks_overlapped(
            ctx, report, previous, actor, progress, size, total, reader=reader, one_pass=one_pass
        )
        return
    if set_based and reads is not None:
        _rescore_chunks_read_ahead(
            ctx,
            report,
            previous,
            actor,
            progress,
            size,
            total,
            reader=reader,
            one_pass=one_pass,
            reads=reads,
        )
        return
    last_id = 0
    done = 0
    while True:
        if one_pass is not None:
            one_pass.texts_after(last_id, size)
        with ctx.write() as connection:
            chunk = _next_chunk(connection, report.version, last_id, size)
            if chunk is None:
                return
            version, contract, ids = chunk
            rescore_chunk(
                connection,
                contract,
                version,
                previous,
                report,
                ids,
                now=ctx.clock.now(),
                actor=actor,
                set_based=set_based,
                reader=reader,
                one_pass=one_pass,
            )
            if isinstance(progress, NotedInChunks):
                progress.note_in(connection, done + len(ids), total)
        done += len(ids)
        report.leads_scored = done
        last_id = ids[-1]
        if progress:
            progress(done, total)


def _next_chunk(
    connection: Connection,
    wanted: int,
    after: int,
    size: int,
    *,
    ids: Sequence[int] | None = None,
) -> tuple[int, HandoffContract, list[int]] | None:
    """In a chunk's transaction: the active version (still ``wanted``) and its contract,
    and the next ``size`` unmerged leads after id ``after``, locked (``FOR UPDATE``; on
    SQLite the transaction's write lock holds them). None when another version became
    active or no lead is left: the re-score stops there. ``ids``: those leads, known
    already to be what this transaction would select (SQLite's read ahead, whose
    transaction holds the only write lock)."""
    active = active_contract_in(connection)
    if active is None or active[0] != wanted:
        return None
    if ids is not None:
        return (active[0], active[1], list(ids)) if ids else None
    # The driver's own tuples, as find_by_keys reads them: 4.2–5.2 ms of CPU per chunk
    # of 10,000 on SQLite instead of 9.2–9.7 through SQLAlchemy's rows (about 0.5 s of
    # the writing process's CPU, which the chunks wait on, at 1,000,000 leads).
    found = connection.execute(
        select(leads.c.id)
        .where(leads.c.id > after, leads.c.merged_into_id.is_(None))
        .order_by(leads.c.id)
        .limit(size)
        .with_for_update()
    )
    try:
        ids = [lead_id for (lead_id,) in found.cursor.fetchall()]
    finally:
        found.close()
    return (active[0], active[1], ids) if ids else None


CHUNKS_AT_ONCE = 2
"""Chunks of a set-based re-score in flight at once on PostgreSQL
(:func:`_rescore_chunks_overlapped`); 1 runs them one after the other."""


class _ChunkStopped(Exception):
    """A chunk rolled back because an earlier chunk failed (never leaves the re-score)."""


@dataclass
class _ChunkTurn:
    """One chunk of :func:`_rescore_chunks_overlapped`: ``taken`` once its leads are
    locked (``last_id`` the largest, ``None`` when there was no chunk to take: the end,
    another version active, a failure), ``done`` once it committed (``committed``) or
    will not."""

    taken: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    last_id: int | None = None
    committed: bool = False
    failed: bool = False
    """It raised, before or after its commit (its ``progress``): the chunks after it stop."""


def _rescore_chunks_overlapped(
    ctx: Context,
    report: ActivationReport,
    previous: HandoffContract | None,
    actor: Principal,
    progress: Callable[[int, int], None] | None,
    size: int,
    total: int,
    *,
    reader: _Readers | None,
    one_pass: _OnePass | None,
) -> None:
    """The chunks of :func:`rescore_all` on PostgreSQL, :data:`CHUNKS_AT_ONCE` in flight,
    each in a transaction of its own on a thread and connection of its own: while one
    chunk hands off its MQLs and commits, the next is already reading and writing its
    scores (the database works for both at once; the threads mostly wait on it).

    What stays as one after the other: a chunk locks its leads (the next ``size`` ids
    after the previous chunk's) only once the previous chunk has locked its own, and
    hands off its MQLs and commits only once the previous chunk has committed, so the
    handoffs are opened and routed in the order, and with the routing state, of one
    chunk after the other (the chunks' leads are disjoint; nothing a chunk reads before
    its handoffs is written by another chunk's). The counts of ``report`` and
    ``progress`` follow the commits, in order. When a chunk fails, the chunk after it
    rolls back (only whole chunks are kept, as before), no further chunk starts, and
    the first failure is raised.

    The wait for the chunk before is one PostgreSQL sees: each chunk holds an advisory
    lock of its own (this run's key, its number) from its start, and the next takes it
    shared before its handoffs. A wait kept in Python alone hid a cycle from the
    deadlock detector (review): a writer holding a routing lock and waiting for a lead
    of chunk k+1, chunk k+1 waiting for chunk k, chunk k's handoff waiting for that
    routing lock hung for good, where one chunk at a time was a deadlock PostgreSQL
    broke within a second."""
    lock = threading.Lock()
    stop = threading.Event()
    interrupted = threading.Event()  # Ctrl+C in the calling thread
    scored = [0]
    run_key = rescore_run_key(secrets.randbits(31))
    numbers = itertools.count(1)

    def run(before: _ChunkTurn, mine: _ChunkTurn, number: int) -> None:
        waited = False

        def in_turn() -> None:
            nonlocal waited
            if not waited:
                waited = True
                # The wait lasts the chunk before's handoffs: a lock_timeout or
                # statement_timeout of the role or database must not end it (they
                # apply again to the rest of the chunk).
                timeouts = connection.exec_driver_sql(
                    "SELECT current_setting('lock_timeout'), current_setting('statement_timeout')"
                ).one()
                connection.exec_driver_sql(
                    "SELECT set_config('lock_timeout', '0', true),"
                    " set_config('statement_timeout', '0', true)"
                )
                connection.execute(select(func.pg_advisory_xact_lock_shared(run_key, number - 1)))
                connection.execute(
                    select(
                        func.set_config("lock_timeout", timeouts[0], True),
                        func.set_config("statement_timeout", timeouts[1], True),
                    )
                )
            before.done.wait()
            # Only a chunk before this one (or Ctrl+C) stops it: a failure after it
            # must not undo a chunk that is handing off in its turn.
            if not before.committed or before.failed or interrupted.is_set():
                raise _ChunkStopped

        try:
            before.taken.wait()
            if before.last_id is None or stop.is_set():
                return
            part = ActivationReport(version=report.version, previous=report.previous)
            with ctx.write() as connection:
                connection.execute(select(func.pg_advisory_xact_lock(run_key, number)))
                chunk = _next_chunk(connection, report.version, before.last_id, size)
                if chunk is None:
                    return
                version, contract, ids = chunk
                mine.last_id = ids[-1]
                mine.taken.set()
                rescore_chunk(
                    connection,
                    contract,
                    version,
                    previous,
                    part,
                    ids,
                    now=ctx.clock.now(),
                    actor=actor,
                    reader=reader,
                    one_pass=one_pass,
                    before_handoff=in_turn,
                )
                in_turn()
            with lock:  # in the commits' order (the next chunk commits once this is done)
                scored[0] += len(ids)
                report.leads_scored = scored[0]
                report.crossed_up += part.crossed_up
                report.crossed_down += part.crossed_down
                report.became_mql += part.became_mql
                report.held_back += part.held_back
                report.model_problem = part.model_problem or report.model_problem
                mine.committed = True
                # Done before ``progress``: were it to wait on the next chunk's leads
                # (a write of the caller's), that chunk need not wait for it.
                mine.done.set()
                if progress:
                    progress(scored[0], total)
        except BaseException:
            mine.failed = True
            stop.set()
            raise
        finally:
            mine.taken.set()
            mine.done.set()

    first = _ChunkTurn(last_id=0, committed=True)
    first.taken.set()
    first.done.set()
    futures: list[Future[None]] = []
    try:
        with ThreadPoolExecutor(max_workers=CHUNKS_AT_ONCE) as pool:
            before = first
            while not stop.is_set():
                mine = _ChunkTurn()
                futures.append(pool.submit(run, before, mine, next(numbers)))
                mine.taken.wait()
                if mine.last_id is None:
                    break
                before = mine
    except BaseException:  # Ctrl+C, even as the last chunks end: none starts, they roll back
        interrupted.set()
        stop.set()
        raise
    for future in futures:
        error = future.exception()
        if error is not None and not isinstance(error, _ChunkStopped):
            raise error


class _Readers:
    """Connections of a re-score's own for its engagement queries, one per query of a
    chunk (:data:`READERS`), each query run on a thread of its own: the queries of a
    chunk (the type-only rules from the index, the property-filtered ones from the
    rows) and the chunk's read of its leads on its own connection run at the same time.
    Both drivers release the interpreter while the database works, so a chunk's reads
    take about as long as the longest of them instead of their sum, where a core is free.

    What each query sees is what the chunk's transaction would see: on SQLite that
    transaction holds the only write lock from its ``BEGIN IMMEDIATE`` and a re-score
    writes no activity, so each query (its own read transaction, in autocommit) sees the
    activities as they were when the chunk began; on PostgreSQL each statement of a
    ``READ COMMITTED`` transaction, the chunk's or a reader's in autocommit, sees what
    was committed when it started."""

    def __init__(self, drivers: Sequence[Any]) -> None:
        self.drivers = list(drivers)
        self.pool = ThreadPoolExecutor(max_workers=len(self.drivers))

    def start(
        self, queries: Sequence[tuple[str, tuple[Any, ...], int]]
    ) -> list[Future[np.ndarray]]:
        """Run ``queries`` (SQL, parameters, width), the i-th on the i-th connection."""
        if len(queries) > len(self.drivers):
            raise ValueError(f"{len(queries)} queries for {len(self.drivers)} readers")
        return [
            self.pool.submit(_driver_rows, driver, sql, params, width)
            for driver, (sql, params, width) in zip(self.drivers, queries, strict=False)
        ]


READERS = 2
"""Reader connections of a re-score: one per engagement query of a chunk."""


def _driver_rows(driver: Any, sql: str, params: tuple[Any, ...], width: int) -> np.ndarray:
    """The rows of one engagement query on a driver connection, as floats (``width``
    columns; plain tuples, which numpy converts faster than result rows), taken
    :data:`FETCH_ROWS` at a time: a one pass over a million leads would otherwise hold
    every row as Python floats at once (about 400 MB) beside the array."""
    parts: list[np.ndarray] = []
    cursor = driver.cursor()
    try:
        cursor.execute(sql, params)
        while rows := cursor.fetchmany(FETCH_ROWS):
            parts.append(np.array(rows, dtype=np.float64))
    finally:
        cursor.close()
    if not parts:
        return np.zeros((0, width))
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


FETCH_ROWS = 50_000
"""Rows of an engagement query converted to an array at a time."""


ONE_PASS_LEADS = 100_000
"""From this many leads a re-score reads all engagement in one pass (:func:`_one_pass`);
below it each chunk reads its own leads' events."""


@dataclass
class _OnePass:
    """Engagement sums of every lead (rows as :func:`_start_sums` gives them, relative
    to the moment ``at``) under the engagement rules ``rules``, read before a
    re-score's chunks with every activity whose id is at most ``high`` and the activity
    revision ``revision`` (migration 0020).

    A chunk uses them (:meth:`for_chunk`) only where they are exactly what its own
    queries would read: inside the chunk's write transaction, no activity was updated
    or deleted since (the revision has not moved: after the first move, no later chunk
    uses them) and no lead of the chunk has an activity with a larger id (SQLite gives
    a new row the largest id plus one, and with no delete no id is reused; on
    PostgreSQL ``high`` was taken once no writer was in flight, see :func:`_one_pass`).
    Otherwise the chunk reads its events itself.

    With worker processes (:func:`_sqlite_one_pass_in_workers`) the state columns of
    every row are made once (``state``) and the workers write their state texts
    (``texts``) while the chunks run: a chunk that uses the rows takes both (the
    texts were a tenth of the chunks' CPU)."""

    rules: tuple[EngagementRule, ...]
    at: float
    sums: np.ndarray
    high: int
    revision: int
    broken: bool = False
    state: _SumsState | None = None
    texts: _StateLines | None = None

    def rows_of(self, first: int, last: int) -> tuple[int, int]:
        """Where the rows of the leads ``first..last`` begin and end."""
        ids = self.sums[:, 0]
        begin = int(np.searchsorted(ids, first, side="left"))
        return begin, int(np.searchsorted(ids, last, side="right"))

    def for_chunk(
        self, connection: Connection, contract: HandoffContract, first: int, last: int
    ) -> np.ndarray | None:
        """The rows of the leads ``first..last``, or ``None`` when the chunk must read
        its events itself."""
        if self.broken or tuple(contract.scoring.engagement) != self.rules:
            return None
        if _activity_revision(connection) != self.revision:
            self.broken = True
            return None
        newer = connection.exec_driver_sql(
            "SELECT 1 FROM activities WHERE id > %s AND lead_id >= %s AND lead_id <= %s LIMIT 1"
            if connection.dialect.name == "postgresql"
            else "SELECT 1 FROM activities NOT INDEXED WHERE id > ? AND lead_id >= ?"
            " AND lead_id <= ? LIMIT 1",
            (self.high, first, last),
        ).first()
        if newer is not None:
            return None
        begin, end = self.rows_of(first, last)
        return self.sums[begin:end]

    def texts_after(self, last_id: int, size: int) -> None:
        """Take from the workers the texts a chunk of ``size`` leads after ``last_id``
        may need, before its transaction begins: a chunk never holds its write turn
        waiting for a worker (a chunk of ``size`` leads has at most ``size`` rows)."""
        if self.texts is None or self.broken:
            return
        begin = int(np.searchsorted(self.sums[:, 0], last_id, side="right"))
        self.texts.lines(begin, min(len(self.sums), begin + size))

    def chunk_texts(
        self, first: int, last: int, lead_ids: np.ndarray, engaged: _Engaged, keys: list[str]
    ) -> list[str] | None:
        """The state texts of the leads ``lead_ids`` (ascending, from ``first..last``)
        whose engagement ``engaged`` was made from this pass's rows and ``state``:
        the workers' texts, a lead without a row ``{}``, and a lead whose state the
        Python fold made (too far from the pass's moment) its own; ``None`` without
        the workers' texts."""
        if self.texts is None or self.state is None:
            return None
        begin, end = self.rows_of(first, last)
        n = len(lead_ids)
        texts = np.full(n, "{}", dtype=object)
        if end > begin and n:
            ids = self.sums[begin:end, 0]
            place = np.minimum(np.searchsorted(lead_ids, ids), n - 1)
            mine = lead_ids[place] == ids
            made = np.array(self.texts.lines(begin, end), dtype=object)
            texts[place[mine]] = made[mine]
            for row in place[mine & self.state.far[begin:end]].tolist():
                texts[row] = _state_text_of(engaged, keys, row)
        return cast(list[str], texts.tolist())


@dataclass
class _SumsState:
    """The engagement state columns made from rows of sums (:func:`_sums_state`)."""

    counts: dict[str, np.ndarray]
    as_of: dict[str, np.ndarray]
    values: dict[str, np.ndarray]
    far: np.ndarray
    """The rows whose state the Python fold makes (over 1,000 half-lives from the
    moment of the sums)."""

    def rows(self, which: Any) -> _SumsState:
        """These rows only (a slice or a mask)."""
        return _SumsState(
            {key: column[which] for key, column in self.counts.items()},
            {key: column[which] for key, column in self.as_of.items()},
            {key: column[which] for key, column in self.values.items()},
            self.far[which],
        )


def _sums_state(
    rules: Sequence[EngagementRule], sums: np.ndarray, at: float, sqlite: bool
) -> _SumsState:
    """Per rule key the count, the state's moment (on SQLite to the stored millisecond)
    and the value at that moment of each row of ``sums`` (decayed sums relative to
    ``at``, :func:`_start_sums`), as :func:`_engaged` stores them."""
    counts: dict[str, np.ndarray] = {}
    as_of: dict[str, np.ndarray] = {}
    values: dict[str, np.ndarray] = {}
    far = np.zeros(len(sums), dtype=bool)
    for k, rule in enumerate(rules):
        count, latest, weighted = sums[:, 1 + 3 * k], sums[:, 2 + 3 * k], sums[:, 3 + 3 * k]
        if sqlite:
            latest = _whole_milliseconds(latest)
        key = str(k)
        counts[key] = count
        as_of[key] = latest
        if rule.half_life_days:
            half = rule.half_life_days * SECONDS_PER_DAY
            lag = (at - latest) / half
            far |= (count > 0) & (np.abs(lag) > 1000.0)
            with np.errstate(over="ignore", invalid="ignore"):
                values[key] = np.where(count > 0, float(rule.points) * weighted * np.exp2(lag), 0.0)
        else:
            values[key] = float(rule.points) * count
    return _SumsState(counts, as_of, values, far)


class _StateLines:
    """The state texts of a one pass's rows (:class:`_SumsState`), made by the worker
    processes in blocks of :data:`STATE_BLOCK` rows while the chunks run: one block in
    hand per worker at a time (the next asked for when its answer is taken: the caller
    never writes a request while a worker waits for its answer to be read, which would
    leave both waiting), the blocks behind the chunks dropped. The chunks go by
    ascending lead id, so a block behind them is never asked for again."""

    def __init__(
        self, workers: Sequence[event_pass.Worker], keys: list[str], state: _SumsState, rows: int
    ) -> None:
        self.workers = list(workers)
        self.keys = keys
        self.state = state
        # The first blocks smaller (a tenth of the others, then twice as large each
        # time): the chunks wait for the first ones as they begin.
        self.bounds = [0]
        size = max(1, STATE_BLOCK // 10)
        while self.bounds[-1] < rows:
            self.bounds.append(min(rows, self.bounds[-1] + size))
            size = min(STATE_BLOCK, 2 * size)
        self.asked = 0
        self.waiting: list[list[int]] = [[] for _ in self.workers]
        self.owner: dict[int, int] = {}
        self.tickets: dict[int, int] = {}
        self.made: dict[int, list[str]] = {}
        for index in range(len(self.workers)):
            self._ask(index)

    def _ask(self, index: int) -> None:
        block = self.asked
        if block >= len(self.bounds) - 1:
            return
        self.asked += 1
        low, high = self.bounds[block], self.bounds[block + 1]
        part = self.state.rows(slice(low, high))
        self.tickets[block] = self.workers[index].ask(
            "state_text_lines", high - low, self.keys, part.values, part.as_of, part.counts
        )
        self.waiting[index].append(block)
        self.owner[block] = index

    def _block(self, block: int) -> list[str]:
        while block not in self.made:
            index = self.owner.get(block, -1)
            if index < 0:  # not asked yet: take the oldest answer, which asks for more
                index = min(
                    (i for i in range(len(self.workers)) if self.waiting[i]),
                    key=lambda i: self.waiting[i][0],
                )
            try:
                text = self.workers[index].answer(self.tickets.pop(self.waiting[index][0]))
                done = self.waiting[index].pop(0)
                self.made[done] = text.split("\n") if text else []
                self._ask(index)
            except (OSError, event_pass.WorkerFailed) as error:
                raise RescoreWorkerFailed(
                    f"a worker process of the re-score failed making state texts: {error}"
                ) from error
        return self.made[block]

    def lines(self, begin: int, end: int) -> list[str]:
        """The texts of the rows ``begin..end - 1``, in order."""
        found: list[str] = []
        block = bisect.bisect_right(self.bounds, begin) - 1
        for behind in [made for made in self.made if made < block]:
            del self.made[behind]  # the chunks go by ascending ids: never asked again
        while block < len(self.bounds) - 1 and self.bounds[block] < end:
            low = self.bounds[block]
            made = self._block(block)
            found += made[max(begin, low) - low : min(end, self.bounds[block + 1]) - low]
            block += 1
        return found


STATE_BLOCK = 100_000
"""Rows of a one pass per request for state texts to a worker (about 0.35 s of its
CPU and 14 MB of columns sent at 6 rules); the first request a tenth of it and the
next ones twice the one before: the chunks begin by waiting for the first blocks,
which stalled them 0.5–1 s at 1,000,000 leads at a load of 5 (one worker idle)."""


def _activity_revision(connection: Any) -> int:
    """``activity_revisions.revision`` (0 when the row is missing) on a SQLAlchemy or
    driver connection."""
    sql = "SELECT revision FROM activity_revisions WHERE id = 1"
    if isinstance(connection, Connection):
        found = connection.exec_driver_sql(sql).first()
    else:
        found = connection.execute(sql).fetchone()
    return int(found[0]) if found is not None else 0


def _snapshot_rows(
    driver: Any,
    sql: str,
    params: tuple[Any, ...],
    width: int,
    postgres: bool,
    *,
    in_order: bool = False,
) -> tuple[int, int, np.ndarray]:
    """:func:`_driver_rows` in one read transaction with the largest activity id (SQLite;
    0 on PostgreSQL) and the activity revision it saw. On PostgreSQL the one pass may
    group in memory (``work_mem``, for this transaction only), in this process alone (no
    parallel workers), and with ``in_order`` by sorting or in the index's order rather
    than by hashing.

    Measured at 1,000,000 leads and 10,000,000 events, each query alone at a load of
    2–3: the type-only rules' query took 9.4 s of wall with the two parallel workers the
    planner gave it, about 18 s of CPU in three processes (each grouping a third, then
    2.4 million partial groups merged), against 8.8–14.0 s in one process hashing and
    6.6–10.2 s in one process grouping in the index's order (an index-only scan, no sort,
    which the planner picks once hashing is off); the property-filtered query
    6.8–7.6 s hashing (the planner's choice, kept), 8.3–10.2 s sorting. The two queries
    run at the same time on the re-score's two readers: on two cores, parallel workers
    only took CPU from the other query (and from everything else on the machine)."""
    high = 0
    if postgres:
        driver.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        driver.execute(f"SET LOCAL work_mem = '{SNAPSHOT_WORK_MEM}'")
        driver.execute("SET LOCAL max_parallel_workers_per_gather = 0")
        if in_order:
            driver.execute("SET LOCAL enable_hashagg = off")
    else:
        driver.execute("BEGIN")
    try:
        if not postgres:
            found = driver.execute("SELECT COALESCE(MAX(id), 0) FROM activities").fetchone()
            high = int(found[0])
        revision = _activity_revision(driver)
        rows = (
            _copied_rows(driver, sql, params, width)
            if postgres
            else _driver_rows(driver, sql, params, width)
        )
    finally:
        driver.execute("COMMIT")
    return high, revision, rows


def _copied_rows(driver: Any, sql: str, params: tuple[Any, ...], width: int) -> np.ndarray:
    """PostgreSQL: the rows of one engagement query (``width`` columns, none of them
    null) as :func:`_driver_rows` gives them, sent by ``COPY ... (FORMAT BINARY)`` as
    8-byte floats and read by numpy as they come, with no Python object per value.
    Measured at 1,000,000 leads: the one pass's two queries gave about 2 million rows of
    13 and 7 columns, which as Python tuples took about 5 s of the re-score's CPU (the
    two readers' threads taking turns at the interpreter), and the server wrote each
    float as text."""
    names = ", ".join(f"c{i}" for i in range(width))
    floats = ", ".join(f"CAST(c{i} AS DOUBLE PRECISION)" for i in range(width))
    fields: list[tuple[str, str]] = [("fields", ">i2")]
    for i in range(width):
        fields += [(f"l{i}", ">i4"), (f"v{i}", ">f8")]
    row = np.dtype(fields)
    parts: list[np.ndarray] = []
    pending = bytearray()
    started = False
    cursor = driver.cursor()
    try:
        with cursor.copy(
            f"COPY (SELECT {floats} FROM ({sql}) AS q({names})) TO STDOUT (FORMAT BINARY)",
            params,
        ) as copy:
            for block in copy:
                pending += block
                if not started:
                    # The header: a signature of 11 bytes, flags, and an extension's
                    # length (then the extension).
                    if len(pending) < 19:
                        continue
                    start = 19 + int.from_bytes(pending[15:19], "big")
                    if len(pending) < start:
                        continue
                    del pending[:start]
                    started = True
                # Whole rows a part at a time, as :func:`_driver_rows` takes them: the
                # text of a million rows is never held beside their array.
                if len(pending) >= FETCH_ROWS * row.itemsize:
                    parts.append(_copied_part(pending, row, width))
    finally:
        cursor.close()
    if not started or len(pending) % row.itemsize != 2 or pending[-2:] != b"\xff\xff":
        raise ValueError("an engagement query's rows were not all floats")
    del pending[-2:]  # the trailer: a field count of -1
    parts.append(_copied_part(pending, row, width))
    return np.concatenate(parts) if len(parts) > 1 else parts[0]


def _copied_part(pending: bytearray, row: np.dtype[Any], width: int) -> np.ndarray:
    """The whole rows at the start of ``pending`` (binary ``COPY`` rows of ``width``
    non-null 8-byte floats) as an array, taken out of it."""
    count = len(pending) // row.itemsize
    rows = np.frombuffer(pending[: count * row.itemsize], dtype=row)
    del pending[: count * row.itemsize]
    if not (
        np.all(rows["fields"] == width) and all(np.all(rows[f"l{i}"] == 8) for i in range(width))
    ):
        raise ValueError("an engagement query's rows were not all floats")
    found = np.empty((count, width))
    for i in range(width):
        found[:, i] = rows[f"v{i}"]
    return found


SNAPSHOT_WORK_MEM = "512MB"
"""PostgreSQL's ``work_mem`` for the one pass: its property-filtered query groups a
million leads in about 220 MB (measured at 1,000,000 leads), spilled to disk below."""


def _settled_high(ctx: Context) -> int | None:
    """On PostgreSQL, the largest activity id once no transaction writing activities
    is in flight (``LOCK ... IN SHARE MODE`` waits for them and is released at once):
    every activity with an id up to it is committed, and a later insert takes a larger
    id (an id is drawn from its sequence while the insert holds its table lock).
    ``None`` when writers kept the lock for :data:`SNAPSHOT_LOCK_WAIT`."""
    try:
        with ctx.engine.begin() as connection:
            connection.exec_driver_sql(f"SET LOCAL lock_timeout = '{SNAPSHOT_LOCK_WAIT}'")
            connection.exec_driver_sql("LOCK TABLE activities IN SHARE MODE")
            found = connection.exec_driver_sql("SELECT COALESCE(MAX(id), 0) FROM activities")
            return int(found.scalar_one())
    except DBAPIError:
        return None


SNAPSHOT_LOCK_WAIT = "2s"
"""How long a PostgreSQL re-score waits for the activity writers in flight before its
one pass (else its chunks read their own events)."""


def _one_pass(
    ctx: Context,
    report: ActivationReport,
    reader: _Readers | None,
    total: int,
    workers: Sequence[event_pass.Worker] | None = None,
    *,
    before_merge: Callable[[], None] | None = None,
) -> _OnePass | None:
    """Every lead's engagement sums under the version being activated, read in one
    pass for a re-score of at least :data:`ONE_PASS_LEADS` leads (on PostgreSQL the
    queries of :func:`_sums_queries` over all leads, each on a reader of its own at the
    same time; on SQLite :func:`_sqlite_one_pass`, or with ``workers``
    :func:`_sqlite_one_pass_in_workers`, which calls ``before_merge`` once the workers
    are done with it); ``None`` where the chunks read their
    own events (an in-memory database, a contract scored per lead or whose filters SQL
    cannot express, a revision that moved between the two readers' reads, activity
    writers holding PostgreSQL's lock).

    Measured at 1,000,000 leads and 10,000,000 events (``bench/rescore.py``): the
    property-filtered rules read each event row at random through the index when a
    chunk reads its own leads' events, about 17 s of CPU on SQLite, and on PostgreSQL
    about 1 s per chunk of 10,000 leads (30,000 heap pages of 133,000); one sequential
    pass and a sort took about 7 s on SQLite (12 s of CPU, now one sequential pass and
    numpy), a sequential scan and a hash aggregate 17 s at a load of 8 on PostgreSQL."""
    if reader is None or total < ONE_PASS_LEADS:
        return None
    postgres = ctx.engine.dialect.name == "postgresql"
    with ctx.read() as connection:
        active = active_contract_in(connection)
    if active is None or active[0] != report.version:
        return None
    contract = active[1]
    previous = contract_spec(ctx, report.previous) if report.previous is not None else None
    if contract.scoring.predicted is not None or (
        previous is not None and previous.scoring.predicted is not None
    ):
        return None
    at = ctx.clock.now().timestamp()
    rules = contract.scoring.engagement
    if not postgres and workers is not None:
        return _sqlite_one_pass_in_workers(
            contract, workers, _sqlite_path(ctx) or "", at, before_merge
        )
    if not postgres:
        return _sqlite_one_pass(contract, reader, at)
    parts = _sums_queries(contract, postgres, 0, 2**62, at)
    if not parts:
        return None
    settled = _settled_high(ctx)
    if settled is None:
        return None
    futures = [
        reader.pool.submit(
            _snapshot_rows,
            driver,
            sql,
            params,
            1 + 3 * len(keys),
            postgres,
            # The type-only rules' query, read from the index.
            in_order=not any(rules[k].where for k in keys),
        )
        for driver, (keys, sql, params) in zip(reader.drivers, parts, strict=False)
    ]
    read = [future.result() for future in futures]
    if len({revision for _, revision, _ in read}) != 1:
        return None
    sums = _merged_sums(
        rules, [(keys, rows) for (keys, _, _), (_, _, rows) in zip(parts, read, strict=True)]
    )
    return _OnePass(rules=tuple(rules), at=at, sums=sums, high=settled, revision=read[0][1])


def _sqlite_one_pass(contract: HandoffContract, reader: _Readers, at: float) -> _OnePass | None:
    """:func:`_one_pass` on SQLite: the events of the rules' types read in windows of
    :data:`EVENT_WINDOW` activity ids along the table (:func:`_event_rows_query`), the
    windows shared out between the readers, each in a read transaction of its own; then
    grouped by lead with numpy (:func:`_grouping`). Both readers must have seen the same
    revision; ``high`` is the smaller of the largest ids they saw (a lead with a newer
    activity, which one of them may have read, has its chunk read its own events, as
    :meth:`_OnePass.for_chunk` checks)."""
    query = _event_rows_query(contract)
    if query is None:
        return None
    sql, params = query
    count = len(reader.drivers)
    futures = [
        reader.pool.submit(_snapshot_events, driver, sql, params, index, count)
        for index, driver in enumerate(reader.drivers)
    ]
    read = [future.result() for future in futures]
    if len({revision for _, revision, _ in read}) != 1:
        return None
    rules = contract.scoring.engagement
    high, revision = min(high for high, _, _ in read), read[0][1]
    events = np.concatenate([rows for _, _, rows in read])
    del read  # each reader's events, copied: not held while grouping
    return _OnePass(
        rules=tuple(rules),
        at=at,
        sums=_grouping(rules, at)(events),
        high=high,
        revision=revision,
    )


class RescoreWorkerFailed(RuntimeError):
    """A worker process of a re-score failed (its error is the cause): the re-score
    stopped before its chunks, nothing of it was written, and ``baton contract
    rescore`` runs it again."""


def _sqlite_one_pass_in_workers(
    contract: HandoffContract,
    workers: Sequence[event_pass.Worker],
    path: str,
    at: float,
    before_merge: Callable[[], None] | None = None,
) -> _OnePass | None:
    """:func:`_sqlite_one_pass` in worker processes (:func:`_pass_workers`), each
    reading its share of the windows on a connection of its own (WAL lets readers run
    side by side) and grouping it
    (:func:`baton.store.event_pass.read_share`); their rows are then merged
    (:func:`baton.store.event_pass.merge_grouped`). In process, numpy's parse of each
    window's text and the grouping hold the interpreter, so the two reader threads took
    turns at them: here each share runs on a core of its own. A lead's events split
    between the shares are summed per share and then added, so a decayed sum may differ
    from the in-process one in its last bits (the scores are rounded to the cent; a
    state's floats may differ there). The same checks as in process: both shares saw
    the same revision; ``high`` is the smaller of their largest ids.

    ``before_merge`` is called as the workers hand back their shares, before they are
    merged in this process (:meth:`_ChunkReads.begin`: the workers read the first
    chunks' leads meanwhile instead of waiting)."""
    query = _event_rows_query(contract)
    if query is None:
        return None
    sql, params = query
    rules = contract.scoring.engagement
    half_lives = tuple(rule.half_life_days for rule in rules)
    try:
        with _window_claims() as claims:
            for index, worker in enumerate(workers):
                worker.ask(
                    "read_share",
                    path,
                    sql,
                    params,
                    index,
                    len(workers),
                    EVENT_WINDOW,
                    half_lives,
                    at,
                    RESCORE_MMAP_BYTES,
                    claims,
                )
            read = [worker.answer() for worker in workers]
    except (OSError, event_pass.WorkerFailed) as error:
        raise RescoreWorkerFailed(
            f"the re-score's pass over the activities failed in a worker process: {error}"
        ) from error
    if before_merge is not None:
        before_merge()
    if len({revision for _, revision, _ in read}) != 1:
        return None
    high, revision = min(high for high, _, _ in read), read[0][1]
    sums = event_pass.merge_grouped([rows for _, _, rows in read], 1 + 3 * len(rules))
    del read
    state = _sums_state(rules, sums, at, True)
    try:
        texts = _StateLines(workers, [str(k) for k in range(len(rules))], state, len(sums))
    except OSError as error:
        raise RescoreWorkerFailed(
            f"a worker process of the re-score failed making state texts: {error}"
        ) from error
    return _OnePass(
        rules=tuple(rules),
        at=at,
        sums=sums,
        high=high,
        revision=revision,
        state=state,
        texts=texts,
    )


@contextmanager
def _window_claims() -> Iterator[str | None]:
    """A new empty file from which the workers of a one pass claim its windows
    (:func:`baton.store.event_pass.claimed_windows`), removed after; ``None`` where
    ``flock`` is missing (not POSIX): each worker reads every other window."""
    if importlib.util.find_spec("fcntl") is None:  # pragma: no cover - not POSIX
        yield None
        return
    descriptor, path = tempfile.mkstemp(prefix="baton-rescore-windows-")
    os.close(descriptor)
    try:
        yield path
    finally:
        Path(path).unlink(missing_ok=True)


PASS_WORKERS = 2
"""Worker processes of SQLite's one pass (:func:`_pass_workers`): one per core of the
machines it was measured on; more would split the same reads finer."""


def _cores() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _sqlite_path(ctx: Context) -> str | None:
    """The file of a SQLite database, ``None`` for anything else (PostgreSQL, in
    memory)."""
    if ctx.engine.dialect.name != "sqlite":
        return None
    path = ctx.engine.url.database
    if not path or path == ":memory:" or path.startswith("file:") or not Path(path).is_file():
        return None
    return path


@contextmanager
def _pass_workers(ctx: Context, total: int) -> Iterator[list[event_pass.Worker] | None]:
    """:data:`PASS_WORKERS` worker processes (:class:`baton.store.event_pass.Worker`:
    a new interpreter each, nothing of a server's threads or locks copied) for SQLite's
    one pass of a re-score of ``total`` leads (from :data:`ONE_PASS_LEADS`, on a file,
    with two cores or more), started as the re-score begins and ended
    with it (killed if it fails); ``None`` otherwise: the pass runs in process
    (:func:`_sqlite_one_pass`)."""
    if total < ONE_PASS_LEADS or _sqlite_path(ctx) is None or _cores() < 2:
        yield None
        return
    workers: list[event_pass.Worker] = []
    ended = False
    try:
        for _ in range(PASS_WORKERS):
            workers.append(event_pass.Worker())
        yield workers
        ended = True
    finally:
        for worker in workers:
            worker.close(kill=not ended)


@contextmanager
def _reads_ahead(
    ctx: Context, workers: Sequence[event_pass.Worker] | None, size: int
) -> Iterator[_ChunkReads | None]:
    """The workers' reads of a re-score's chunks on a SQLite file
    (:class:`_ChunkReads`), their connection closed at the end; ``None`` without
    workers."""
    path = _sqlite_path(ctx)
    if not workers or path is None:
        yield None
        return
    reads = _ChunkReads(workers, path, size)
    try:
        yield reads
    finally:
        reads.close()


def _data_version(driver: Any) -> int:
    """SQLite's ``PRAGMA data_version`` on a driver connection: it moves when another
    connection commits, never for the connection's own commits."""
    return int(driver.execute("PRAGMA data_version").fetchone()[0])


_LeadsReadText = tuple[str, dict[str, Any], list[tuple[int, Callable[[Any], Any]]]]
"""A chunk's read of its leads for a worker process (:func:`_leads_read_text`)."""


def _leads_read_text(reading: _LeadsRead) -> _LeadsReadText:
    """SQLite: the statement of ``reading`` as SQL text and its named parameters (each
    as the driver gets it), ``first`` and ``last`` left to the worker process that runs
    it (:func:`baton.store.event_pass.chunk_leads`), and the columns the driver's
    values are converted in on their way out (a boolean's), with how."""
    dialect = sqlite_dialect(paramstyle="named")
    converted = [
        (i, processor)
        for i, column in enumerate(reading.statement.selected_columns)
        if (processor := column.type.result_processor(dialect, None)) is not None
    ]
    compiled = reading.statement.compile(dialect=dialect)
    expanded = compiled.construct_expanded_state({"first": 0, "last": 0})
    processors = {**compiled._bind_processors, **expanded.processors}
    params = {
        name: processors[name](value) if name in processors else value
        for name, value in expanded.parameters.items()
        if name not in ("first", "last")
    }
    return expanded.statement, params, converted


@dataclass(frozen=True)
class _Ahead:
    """A chunk's read asked of a worker (:class:`_ChunkReads`): the leads of the chunk
    after ``after`` and ``skip + part`` chunks more, read with ``reading`` (the
    ``part``-th of the chunks one request asked for); ``version`` is the re-score's
    writing connection's ``PRAGMA data_version`` just before it was asked."""

    after: int
    skip: int
    version: int
    reading: _LeadsRead
    worker: int
    ticket: int
    part: int = 0


_ChunkRead = tuple[tuple[int, ...], list[tuple[Any, ...]], int]
"""A worker's read of a chunk: its ids, its read's columns, the id it follows."""

EARLY_READS = 10
"""Chunks whose leads each worker reads while the re-score's process merges the one
pass (:meth:`_ChunkReads.begin`): about 0.5 s of a worker's CPU, a third to half of
the merge at 1,000,000 leads, during which both workers were idle."""


class _ChunkReads:
    """The worker processes of a re-score reading its chunks' leads ahead
    (:func:`_rescore_chunks_read_ahead`), one request after the other on each in turn
    (a chunk, or a run of chunks: :meth:`begin`); ``used`` and ``redone`` count the
    chunks that took a worker's read and those that read their leads themselves."""

    def __init__(self, workers: Sequence[event_pass.Worker], path: str, size: int) -> None:
        self.workers = list(workers)
        self.path = path
        self.size = size
        self.turn = 0
        self.texts: dict[int, tuple[_LeadsRead, _LeadsReadText]] = {}
        self.used = 0
        self.redone = 0
        self.answers: dict[tuple[int, int], list[_ChunkRead]] = {}
        self.left: dict[tuple[int, int], int] = {}
        """Per request (worker, ticket): its chunks not taken or forgotten yet."""
        self.held: Connection | None = None
        self.reading: _LeadsRead | None = None
        self.early: list[_Ahead] = []

    def begin(
        self,
        ctx: Context,
        report: ActivationReport,
        previous: HandoffContract | None,
        progress: Callable[[int, int], None] | None,
    ) -> None:
        """Open the chunks' writing connection (:attr:`held`) and ask each worker for
        :data:`EARLY_READS` chunks in one request, one run of chunks after the other,
        while the re-score's process merges the one pass: measured at 1,000,000 leads,
        the merge held that process 1.5–1.8 s of CPU with both workers idle. The first
        chunks then find their reads made, and the workers have that much less to do
        beside the chunks. The chunks take these reads as any other
        (:func:`_rescore_chunks_read_ahead`): used only where nothing else committed
        since they were asked."""
        with ctx.read() as connection:
            active = active_contract_in(connection)
        if active is None or active[0] != report.version:
            return
        compare = previous is not None and report.previous is not None
        self.reading = _leads_read(active[1], previous if compare else None, "sqlite")
        self.held = ctx.engine.connect()
        driver = self.held.connection.driver_connection
        if isinstance(progress, NotedInChunks):
            progress.chunks_begin()
        self.early = [
            ahead
            for run in range(len(self.workers))
            for ahead in self.ask(driver, self.reading, 0, run * EARLY_READS, EARLY_READS)
        ]

    def close(self) -> None:
        """Close :attr:`held` (the chunks close it as they end)."""
        if self.held is not None:
            self.held.close()

    def ask(
        self, driver: Any, reading: _LeadsRead, after: int, skip: int = 0, count: int = 1
    ) -> list[_Ahead]:
        """Ask a worker for the ``count`` chunks after ``after`` and ``skip`` chunks more,
        in one request, ``driver`` being the writing connection's."""
        known = self.texts.get(id(reading))
        if known is None or known[0] is not reading:
            known = (reading, _leads_read_text(reading))
            self.texts[id(reading)] = known
        version = _data_version(driver)
        index = self.turn % len(self.workers)
        self.turn += 1
        sql, params, _ = known[1]
        try:
            ticket = self.workers[index].ask(
                "chunk_leads",
                self.path,
                after,
                skip,
                self.size,
                sql,
                params,
                RESCORE_MMAP_BYTES,
                count,
            )
        except OSError as error:
            raise RescoreWorkerFailed(
                f"a worker process of the re-score failed reading a chunk's leads: {error}"
            ) from error
        self.left[index, ticket] = count
        return [_Ahead(after, skip, version, reading, index, ticket, part) for part in range(count)]

    def take(self, ahead: _Ahead) -> _ChunkRead | None:
        """The worker's answer: the chunk's ids, its read's columns and the id it
        follows, ``None`` when it found no such chunk."""
        key = (ahead.worker, ahead.ticket)
        if key not in self.answers:
            try:
                got = cast(list[_ChunkRead], self.workers[ahead.worker].answer(ahead.ticket))
            except (OSError, event_pass.WorkerFailed) as error:
                raise RescoreWorkerFailed(
                    f"a worker process of the re-score failed reading a chunk's leads: {error}"
                ) from error
            for _, columns, _ in got:
                for i, convert in self.texts[id(ahead.reading)][1][2]:
                    columns[i] = tuple(map(convert, columns[i]))
            self.answers[key] = got
        found = self.answers[key]
        self._done(key)
        return found[ahead.part] if ahead.part < len(found) else None

    def forget(self, ahead: _Ahead) -> None:
        """Drop a read that will not be used (its request's answer once none of its
        chunks is wanted)."""
        key = (ahead.worker, ahead.ticket)
        if key not in self.answers and self.left.get(key) == 1:
            self.workers[ahead.worker].forget(ahead.ticket)
        self._done(key)

    def _done(self, key: tuple[int, int]) -> None:
        self.left[key] -= 1
        if not self.left[key]:
            del self.left[key]
            self.answers.pop(key, None)


@runtime_checkable
class NotedInChunks(Protocol):
    """A re-score's ``progress`` that can also note how far it got inside a chunk's own
    write transaction (:class:`baton.services.rescore_progress.RescoreNotes`): the
    chunks that commit one after the other (:func:`_rescore_chunks`, and SQLite's with
    worker processes, :func:`_rescore_chunks_read_ahead`) ask it there, just before the
    commit, and call it as any ``progress`` after. (PostgreSQL's chunks in flight
    together do not: two transactions updating the one row would wait on each other.)"""

    def __call__(self, done: int, total: int) -> None: ...

    def note_in(self, connection: Connection, done: int, total: int) -> None: ...

    def chunks_begin(self) -> None:
        """The chunks are about to ask the workers for their first reads: nothing else
        may commit from here (a commit moves ``PRAGMA data_version`` and the reads
        asked before it would be thrown away)."""


READ_AHEAD = 2
"""Chunks whose leads the workers read ahead of the chunk being written
(:func:`_rescore_chunks_read_ahead`): the next one and the one after it, so that a
worker busy with a block of state texts does not hold up the next chunk."""


def _rescore_chunks_read_ahead(
    ctx: Context,
    report: ActivationReport,
    previous: HandoffContract | None,
    actor: Principal,
    progress: Callable[[int, int], None] | None,
    size: int,
    total: int,
    *,
    reader: _Readers | None,
    one_pass: _OnePass | None,
    reads: _ChunkReads,
) -> None:
    """The chunks of :func:`rescore_all` on a SQLite file with worker processes, each
    in a write transaction of its own as before, with the chunk's read of its leads
    (the fit rules' SQL, the inputs of those left to Python, the stages: about 50 ms of
    a chunk of 10,000) run by a worker while the chunks before it write
    (:data:`READ_AHEAD`): the chunks' turns to write hold only the writing.

    A worker's read is used only if it is what the chunk's own read would be. All the
    chunks write on one connection of their own, whose ``PRAGMA data_version`` moves if
    and only if another connection committed since it was last asked (its own commits
    never move it; the workers only read). It is read on that connection before a
    chunk is asked of a worker, so the worker's read transaction begins after it, and
    again inside the chunk's write transaction, which holds SQLite's only write lock:
    the same value means no other connection committed in between, so the worker read
    what the chunk would read. The chunk before it may have committed meanwhile, but a
    chunk writes nothing the next one reads of its own leads (their scores, and the
    stages and handoffs of its own leads only). Otherwise (or when the chunk's ids,
    its rules or the chunk it follows differ from the worker's), the chunk reads its
    leads itself, as without workers.

    A worker that fails stops the re-score before the next chunk's transaction begins
    (:class:`RescoreWorkerFailed`): only whole chunks are kept."""
    with ctx.read() as connection:
        active = active_contract_in(connection)
    if active is None or active[0] != report.version:
        return
    compare = previous is not None and report.previous is not None
    reading = _leads_read(active[1], previous if compare else None, "sqlite")
    last_id = 0
    done = 0
    early, reads.early = reads.early, []
    with reads.held if reads.held is not None else ctx.engine.connect() as held:
        driver = held.connection.driver_connection
        if early and reads.reading is reading:  # asked as the one pass was merged
            asked = early
        else:
            for stale in early:
                reads.forget(stale)
            if isinstance(progress, NotedInChunks):
                progress.chunks_begin()
            asked = [a for skip in range(READ_AHEAD) for a in reads.ask(driver, reading, 0, skip)]
        while True:
            if one_pass is not None:
                one_pass.texts_after(last_id, size)
            ahead = asked.pop(0)
            got = reads.take(ahead)
            if got is not None and len(asked) < READ_AHEAD:
                asked += reads.ask(driver, reading, got[0][-1], len(asked))
            with write_turn(ctx.engine), held.begin():
                # The worker's read is what this transaction would read when no other
                # connection committed since it was asked and it follows the chunk
                # before (this connection's own commits change no lead's id or merge):
                # its ids are the chunk's, not selected again (4–5 ms of CPU a chunk).
                current = (
                    got is not None and got[2] == last_id and _data_version(driver) == ahead.version
                )
                chunk = _next_chunk(
                    held, report.version, last_id, size, ids=got[0] if current and got else None
                )
                if chunk is None:
                    return
                version, contract, ids = chunk
                if current:
                    reads.used += 1
                else:
                    reads.redone += 1
                rescore_chunk(
                    held,
                    contract,
                    version,
                    previous,
                    report,
                    ids,
                    now=ctx.clock.now(),
                    actor=actor,
                    reader=reader,
                    one_pass=one_pass,
                    read_ahead=(ahead.reading, got[0], got[1]) if current and got else None,
                )
                if isinstance(progress, NotedInChunks):
                    progress.note_in(held, done + len(ids), total)
            done += len(ids)
            report.leads_scored = done
            last_id = ids[-1]
            # The reads asked were of chunks after another one, or before another
            # connection's commit (as this chunk's): asked again.
            again = got is None or got[0][-1] != last_id or not current
            if progress:
                seen = _data_version(driver)
                progress(done, total)
                # A ``progress`` that committed on a connection of its own: the reads
                # asked before it would not be used, each chunk reading its leads
                # itself in its write turn; asked again after it. (The re-score's own
                # notes of how far it got are written in the chunk's transaction
                # instead, :class:`NotedInChunks`, and move nothing here.)
                again = again or _data_version(driver) != seen
            if again:
                for stale in asked:
                    reads.forget(stale)
                asked = [
                    ahead
                    for skip in range(READ_AHEAD)
                    for ahead in reads.ask(driver, reading, last_id, skip)
                ]


EPOCH_MILLISECONDS = "CAST(round((julianday(occurred_at) - 2440587.5) * 86400000.0) AS INTEGER)"
"""SQLite: an activity's moment as whole epoch milliseconds (``julianday`` keeps the
millisecond), the moment :func:`_whole_milliseconds` gives for the chunks' queries."""

EVENT_WINDOW = 250_000
"""Activity ids per statement of SQLite's one pass (:func:`_snapshot_events`): about
5 MB of text at a time for the example contract's events."""


def _event_rows_query(contract: HandoffContract) -> tuple[str, tuple[Any, ...]] | None:
    """SQLite's one pass: a statement (and its parameters, the window's bounds last)
    that gives, for the activities whose id is in a window ``(low, high]`` and whose
    type a rule counts, one text: per event ``lead id,epoch milliseconds,bits``
    (the i-th bit for each i-th rule counting it), joined by commas, in the table's
    order. ``None`` when a filter cannot be expressed in SQL, or past 62 rules.

    SQLite has no hash aggregate: grouping a million leads' events in SQL meant sorting
    the 3.3 million page views of the property-filtered rules (11.9 s of CPU, of which
    the scan and the filters 2.1 s) and, for the type-only rules read in the index's
    order, three ``CASE`` aggregates per rule for each of their 5 million events (7.7 s;
    measured alone on the 1,000,000-lead fill of ``bench/rescore.py``). Read as rows
    instead and grouped by numpy, the same events cost 4.2 and 4.8 s, much of it making a
    Python tuple per row while holding the interpreter (the two readers, and a server's
    other threads, take turns at it); as one text per window of ids, SQLite writes the
    numbers with the interpreter free and numpy reads them back at once, for about the
    same CPU (3.7 s for the page views; the whole pass 14.3–16.6 s against 13.8–15.0 s
    as rows, at loads of 4–11, where its wall time could not tell the two apart). The
    events are held as three whole numbers each (about 200 MB for 8.3 million, and
    about as much again while numpy groups them).

    Each event's bits come from one ``CASE`` on its type, and the example contract's
    filters read ``url`` with one ``json_extract`` each (:func:`_property_filters`):
    1.97–2.08 against 2.42–2.47 CPU s for ten windows of the 1,000,000-lead fill
    (the same text), about 2 of the pass's 10 CPU s."""
    rules = contract.scoring.engagement
    found = [_property_filters(rule, False, "?", plain=True) for rule in rules]
    if not rules or len(rules) > 62 or any(each is None for each in found):
        return None
    filters = cast(list[tuple[list[str], list[Any]]], found)
    kinds = sorted({rule.event.value for rule in rules})
    # One branch per event type (the type compared once per event, not once per rule):
    # the bits of its rules without filters as one number, each filter as a term.
    branches: list[str] = []
    params: list[Any] = []
    for kind in kinds:
        fixed = 0
        terms: list[str] = []
        params.append(kind)
        for k, (rule, (conditions, condition_params)) in enumerate(
            zip(rules, filters, strict=True)
        ):
            if rule.event.value != kind:
                continue
            if not conditions:
                fixed |= 1 << k
                continue
            terms.append(f"CASE WHEN {' AND '.join(conditions)} THEN {1 << k} ELSE 0 END")
            params += condition_params
        branches.append(f"WHEN ? THEN {' + '.join([str(fixed), *terms])}")
    sql = (
        f"SELECT group_concat(lead_id || ',' || {EPOCH_MILLISECONDS} || ',' ||"
        f" (CASE type {' '.join(branches)} ELSE 0 END), ',') FROM activities"
        f" WHERE type IN ({', '.join(['?'] * len(kinds))}) AND id > ? AND id <= ?"
    )
    return sql, (*params, *kinds)


def _snapshot_events(
    driver: Any, sql: str, params: tuple[Any, ...], index: int, count: int
) -> tuple[int, int, np.ndarray]:
    """In one read transaction, the largest activity id, the activity revision, and the
    events (rows of three whole numbers) of every ``count``-th window of
    :data:`EVENT_WINDOW` ids from the ``index``-th, by :func:`_event_rows_query`'s
    statement ``sql`` (:func:`baton.store.event_pass.snapshot_events`)."""
    return event_pass.snapshot_events(driver, sql, params, index, count, EVENT_WINDOW)


def _grouping(rules: Sequence[EngagementRule], at: float) -> Callable[[np.ndarray], np.ndarray]:
    """What groups the events of :func:`_snapshot_events` for ``rules`` (the i-th
    bit for the i-th rule) into the rows :func:`_start_sums` gives
    (:func:`baton.store.event_pass.group_events`)."""
    half_lives = tuple(rule.half_life_days for rule in rules)
    return lambda events: event_pass.group_events(half_lives, at, events)


def _stable_order(keys: np.ndarray) -> np.ndarray:
    """:func:`baton.store.event_pass.stable_order` (a function, so that importing this
    module does not load the event pass: :mod:`baton.lazy`)."""
    return event_pass.stable_order(keys)


@contextmanager
def _events_reader(ctx: Context) -> Iterator[_Readers | None]:
    """The reader connections of a whole re-score (:class:`_Readers`). On SQLite each
    maps the file once (:data:`RESCORE_MMAP_BYTES`): the events of a chunk's leads lie
    all over the file, and a map set and dropped per query faulted every page in again
    each chunk (a third of the engagement queries' CPU at 1,000,000 leads, measured
    alone); its setting is put back before the connection returns to the pool. On
    PostgreSQL each is in autocommit. ``None`` for an in-memory SQLite database (no
    second connection sees its data): the chunk's own connection reads the events."""
    postgres = ctx.engine.dialect.name == "postgresql"
    raws: list[Any] = []
    restore: list[tuple[Any, int]] = []
    readers: _Readers | None = None
    try:
        for _ in range(READERS):
            raw = ctx.engine.raw_connection()
            raws.append(raw)
            driver = raw.driver_connection
            assert driver is not None
            if postgres:
                driver.rollback()
                driver.autocommit = True
                continue
            setting = driver.execute("PRAGMA mmap_size").fetchone()
            if setting is None:  # an in-memory database: nothing to map, nothing apart
                yield None
                return
            driver.execute(f"PRAGMA mmap_size={RESCORE_MMAP_BYTES}")
            restore.append((driver, int(setting[0] or 0)))
        readers = _Readers([raw.driver_connection for raw in raws])
        yield readers
    finally:
        if readers is not None:
            readers.pool.shutdown(wait=True)
        for driver, setting in restore:
            driver.execute(f"PRAGMA mmap_size={setting}")
        for raw in raws:
            if postgres:
                raw.driver_connection.autocommit = False
            raw.close()


RESCORE_MMAP_BYTES = 16 << 30
"""How much of a SQLite file a re-score may map while it reads activities (address
space, not memory: the pages are the operating system's cache)."""

SET_CHUNK = 10_000
"""Leads per transaction of a set-based re-score: the smallest of 50,000, 20,000 and
10,000 that kept the throughput within 10 % (``bench/rescore.py``, 100,000 leads and
1,000,000 events on SQLite: 8,983 leads/s against 9,335 at 50,000), with a chunk's
transaction held about 1.3 s instead of 5 s at a load of 5 on two cores."""


def rescore_chunk(
    connection: Connection,
    contract: HandoffContract,
    version: int,
    previous: HandoffContract | None,
    report: ActivationReport,
    ids: Sequence[int],
    *,
    now: datetime,
    actor: Principal,
    set_based: bool = True,
    reader: _Readers | None = None,
    one_pass: _OnePass | None = None,
    before_handoff: Callable[[], None] | None = None,
    read_ahead: _ReadAhead | None = None,
) -> None:
    """Score the leads ``ids`` (ascending, unmerged, locked by the caller), and no other,
    under ``contract``, count their crossings against ``previous`` into ``report`` and hand
    off those that qualify, inside the caller's transaction.

    Set-based: fit rules as SQL ``CASE`` expressions (:mod:`baton.store.score_sql`; the
    rules that do not translate exactly are evaluated in Python, once per distinct
    value), engagement as one grouped query, the final decay, cap and rounding
    vectorised per chunk exactly as :func:`baton.domain.scoring.score` does them, and
    the MQL decision taken with :func:`baton.domain.scoring.mql_decision` for the leads
    at or over the threshold only (the others cannot qualify without a hand-raise). A
    contract with ``scoring.predicted`` (now or before) is scored per lead.
    ``before_handoff``: called once the scores are written, before the MQLs' handoffs
    (:func:`_rescore_chunks_overlapped` waits there for the chunk before it).
    ``read_ahead``: the chunk's read of its leads made by a worker process
    (:func:`_rescore_chunks_read_ahead`), used when it is for these ids and rules."""
    uses_model = contract.scoring.predicted is not None or (
        previous is not None and previous.scoring.predicted is not None
    )
    if set_based and not uses_model:
        _rescore_sets(
            connection,
            contract,
            version,
            previous,
            report,
            ids,
            now=now,
            actor=actor,
            reader=reader,
            one_pass=one_pass,
            before_handoff=before_handoff,
            read_ahead=read_ahead,
        )
    else:
        _rescore_per_lead(
            connection,
            contract,
            version,
            previous,
            report,
            ids,
            now=now,
            actor=actor,
            before_handoff=before_handoff,
        )


def _rescore_per_lead(
    connection: Connection,
    contract: HandoffContract,
    version: int,
    previous: HandoffContract | None,
    report: ActivationReport,
    ids: Sequence[int],
    *,
    now: datetime,
    actor: Principal,
    before_handoff: Callable[[], None] | None = None,
) -> None:
    """The simple path: :func:`baton.domain.scoring.score` for each lead."""
    people = _locked_only(
        connection.execute(
            select(*SCORED_COLUMNS)
            .where(leads.c.id >= ids[0], leads.c.id <= ids[-1], leads.c.merged_into_id.is_(None))
            .order_by(leads.c.id)
        )
        .mappings()
        .all(),
        ids,
        lambda row: row["id"],
    )
    states = engagement_states(connection, contract, ids[0], ids[-1])
    old_states: dict[int, dict[str, list[float]]] | None = None
    ticks = _prep_ticks(connection, ids)
    stored = _stored_states(connection, ids[0], ids[-1])
    # One feature read and one model call per chunk (nothing without
    # scoring.predicted); the previous version's model only when it had one.
    predictions = predictions_in(connection, contract, ids, now)
    if predictions.problem is not None:
        report.model_problem = predictions.problem
    old_predicted: dict[int, float] | None = None
    cards: dict[int, tuple[ScoreCard, Mapping[str, list[float]]]] = {}
    handed = _Handed()
    for row in people:
        lead = dict(row)
        state = states.get(lead["id"], {})
        card = score(
            contract,
            lead,
            state,
            now,
            probability=predictions.probabilities.get(lead["id"]),
        )
        cards[lead["id"]] = (card, state)
        if previous is not None and report.previous is not None:
            old_version, old_state = stored.get(lead["id"], (-1, {}))
            if old_version != report.previous:
                if old_states is None:
                    old_states = engagement_states(connection, previous, ids[0], ids[-1])
                old_state = old_states.get(lead["id"], {})
            if old_predicted is None:
                old_predicted = predictions_in(connection, previous, ids, now).probabilities
            old_total = score(
                previous,
                lead,
                old_state,
                now,
                probability=old_predicted.get(lead["id"]),
            ).total
            was_over = old_total >= previous.mql.threshold
        else:
            was_over = False
        now_over = card.total >= contract.mql.threshold
        report.crossed_up += int(now_over and not was_over)
        report.crossed_down += int(was_over and not now_over)
        handed.decide(connection, contract, version, lead, card, now=now, ticks=ticks)
    _write_scores(connection, version, cards, now)
    if before_handoff is not None:
        before_handoff()
    _hand_off(connection, contract, version, report, handed, now=now, actor=actor)


def _locked_only(
    rows: Sequence[_Row], ids: Sequence[int], key: Callable[[_Row], int]
) -> list[_Row]:
    """The ``rows`` of the leads ``ids`` only. A chunk's queries select by id range (the
    index's fast path); under PostgreSQL's READ COMMITTED a lead committed into that range
    after the caller locked ``ids`` (ids come from a sequence, in no commit order) shows
    up in them: it is not the chunk's to score, and is left out of every result, which
    are then matched to one another by lead id, never by position."""
    wanted = set(ids)
    return [row for row in rows if key(row) in wanted]


def _prep_ticks(connection: Connection, lead_ids: Sequence[int]) -> dict[int, set[str]]:
    """The prep items ticked for each of ``lead_ids``."""
    ticks: dict[int, set[str]] = {}
    for part in chunks(list(lead_ids)):
        for lead_id, item in connection.execute(
            select(lead_prep.c.lead_id, lead_prep.c.item).where(lead_prep.c.lead_id.in_(part))
        ):
            ticks.setdefault(lead_id, set()).add(item)
    return ticks


def _prep_ticks_between(connection: Connection, first: int, last: int) -> dict[int, set[str]]:
    """The prep items ticked for each lead with an id in ``first..last``."""
    ticks: dict[int, set[str]] = {}
    mark = "%s" if connection.dialect.name == "postgresql" else "?"
    for lead_id, item in connection.exec_driver_sql(
        f"SELECT lead_id, item FROM lead_prep WHERE lead_id >= {mark} AND lead_id <= {mark}",
        (first, last),
    ):
        ticks.setdefault(lead_id, set()).add(item)
    return ticks


def _stored_states(
    connection: Connection, first: int, last: int
) -> dict[int, tuple[int, dict[str, list[float]]]]:
    """The stored (contract version, engagement state) of the scored leads of
    ``first..last``, by lead id."""
    return {
        lead_id: (scored_version, state)
        for lead_id, scored_version, state in connection.execute(
            select(
                lead_scores.c.lead_id, lead_scores.c.contract_version, lead_scores.c.state
            ).where(lead_scores.c.lead_id >= first, lead_scores.c.lead_id <= last)
        )
    }


@dataclass
class _Handed:
    """The leads of a chunk that become MQLs, with the moment of their last stage
    change (for :func:`_hand_off`)."""

    leads: list[tuple[int, str]] = field(default_factory=list)
    changed_at: dict[int, datetime] = field(default_factory=dict)

    def decide(
        self,
        connection: Connection,
        contract: HandoffContract,
        version: int,
        lead: Mapping[str, Any],
        card: ScoreCard,
        *,
        now: datetime,
        ticks: Mapping[int, set[str]],
    ) -> None:
        """Take the MQL decision for ``lead`` scored ``card``, keeping it when it qualifies."""
        lead_id = int(lead["id"])
        became, why = _apply_mql(
            connection,
            contract,
            version,
            lead,
            card,
            now=now,
            prep_done=ticks.get(lead_id, set()),
        )
        if became:
            self.leads.append((lead_id, why))
            self.changed_at[lead_id] = lead["stage_changed_at"]


def _hand_off(
    connection: Connection,
    contract: HandoffContract,
    version: int,
    report: ActivationReport,
    handed: _Handed,
    *,
    now: datetime,
    actor: Principal,
) -> None:
    """Make the ``handed`` leads MQLs (after their scores are written, so that routing
    reads them), together (:func:`baton.services.stages.change_stages_in`: roster and
    rotations read once, pools locked before reps, so two activations' chunks never
    deadlock on PostgreSQL; it decides as one-by-one stage changes would). A lead whose
    qualifying moment (its last activity, or its last stage change) is older than
    mql.live_within_days is recorded as an MQL of the past, with no live handoff:
    activation never hands off old history."""
    report.became_mql += len(handed.leads)
    if not handed.leads:
        return
    last_seen: dict[int, datetime | None] = {}
    for part in chunks([lead_id for lead_id, _ in handed.leads]):
        for lead_id, seen in connection.execute(
            select(leads.c.id, leads.c.last_activity_at).where(leads.c.id.in_(part))
        ):
            last_seen[lead_id] = seen
    changes: list[MqlChange] = []
    for lead_id, why in handed.leads:
        previous_at = handed.changed_at[lead_id]
        seen = last_seen.get(lead_id)
        moment = max(seen, previous_at) if seen is not None else previous_at
        held = _held_back_moment(contract, moment, previous_at, now=now, historical=False)
        report.held_back += int(held is not None)
        changes.append(
            MqlChange(
                lead_id,
                why + (" (history: no live handoff)" if held else ""),
                occurred_at=held,
                historical=held is not None,
            )
        )
    change_stages_in(connection, changes, actor=actor, now=now, contract_version=version)


def _round2(values: np.ndarray) -> np.ndarray:
    """``round(x, 2)`` of each value, as Python rounds it: numpy's answer wherever the
    value is not within a hair of a half cent (both agree there), Python's elsewhere."""
    rounded = np.round(values, 2)
    scaled = values * 100.0
    near = np.flatnonzero(np.abs(scaled - np.floor(scaled) - 0.5) < 1e-6)
    for index in near.tolist():
        rounded[index] = round(float(values[index]), 2)
    return rounded


def _whole_milliseconds(moments: np.ndarray) -> np.ndarray:
    """SQLite's epoch seconds of stored times (:func:`_epoch`) as the milliseconds
    SQLite keeps them in (its ``julianday`` rounds a time to the millisecond), without
    the noise of the conversion: ``1753279405.0000005`` becomes ``1753279405.0``, what
    ``timestamp()`` gives for a time to the millisecond (the moment a new event's score
    keeps, :func:`baton.domain.scoring.add_event`). Such a float's text is also written
    three times as fast (the state texts: about 1 s of a 1,000,000-lead re-score)."""
    return np.round(moments, 3)


@dataclass
class _Engaged:
    """Engagement of a chunk's leads under one contract, aligned with its lead ids:
    per rule key, the state ``[value, as_of, count]`` columns; and the engagement
    points now (decayed, capped, rounded and summed as :func:`score` does)."""

    values: dict[str, np.ndarray]
    as_of: dict[str, np.ndarray]
    counts: dict[str, np.ndarray]
    points: np.ndarray


def _engaged(
    connection: Connection,
    contract: HandoffContract,
    lead_ids: np.ndarray,
    now: datetime,
    *,
    reader: _Readers | None = None,
    pending: Callable[[], np.ndarray | None] | None = None,
    sums_at: float | None = None,
    ready: _SumsState | None = None,
) -> _Engaged:
    """Engagement of ``lead_ids`` (ascending): one grouped query whose decayed sums are
    taken relative to ``now`` and brought back to each rule's latest event (the state's
    moment), or the Python fold for the leads where that would leave the range of a
    float (events over 1,000 half-lives from ``now``) and for contracts whose filters
    SQL cannot express. ``pending``: that query, started already (:func:`_start_sums`)
    for a range of ids holding ``lead_ids``, or rows read ahead (:class:`_OnePass`) whose
    decayed sums are relative to ``sums_at`` instead of ``now``; ``ready``: the state
    columns of those rows, made already (:func:`_sums_state`)."""
    rules = contract.scoring.engagement
    n = len(lead_ids)
    values = {str(k): np.zeros(n) for k in range(len(rules))}
    as_of = {str(k): np.zeros(n) for k in range(len(rules))}
    counts = {str(k): np.zeros(n) for k in range(len(rules))}
    at = now.timestamp()
    if pending is not None:
        sums = pending()
    elif n:
        first, last = int(lead_ids[0]), int(lead_ids[-1])
        sums = _start_sums(connection, contract, first, last, at, reader=reader)()
    else:
        sums = None
    fold_ids: list[int] = []
    if sums is None:
        fold_ids = lead_ids.tolist()
    elif len(sums):
        place = np.searchsorted(lead_ids, sums[:, 0])
        place = np.minimum(place, n - 1)
        mine = lead_ids[place] == sums[:, 0]
        place = place[mine]
        made = (
            ready.rows(mine)
            if ready is not None
            else _sums_state(
                rules,
                sums[mine],
                at if sums_at is None else sums_at,
                connection.dialect.name == "sqlite",
            )
        )
        for key in values:
            counts[key][place] = made.counts[key]
            as_of[key][place] = made.as_of[key]
            values[key][place] = made.values[key]
        fold_ids = sorted(int(i) for i in lead_ids[place[made.far]].tolist())
    if fold_ids:
        histories = _histories_of(
            connection,
            relevant_event_types(contract),
            event_types_needing_properties(contract),
            fold_ids,
        )
        rows = np.searchsorted(lead_ids, np.array(fold_ids))
        for row, lead_id in zip(rows.tolist(), fold_ids, strict=True):
            state = engagement_state(contract, histories.get(lead_id, ()))
            for key in values:
                value, moment, count = state.get(key, (0.0, 0.0, 0.0))
                values[key][row], as_of[key][row], counts[key][row] = value, moment, count
    total = np.zeros(n)
    for k, rule in enumerate(rules):
        key = str(k)
        current = values[key]
        if rule.half_life_days:
            seconds = at - as_of[key]
            current = np.where(
                seconds > 0,
                current * np.power(0.5, seconds / (rule.half_life_days * SECONDS_PER_DAY)),
                current,
            )
        if rule.cap is not None:
            cap = float(rule.cap)
            current = np.where(np.abs(current) > cap, np.copysign(cap, current), current)
        total = total + np.where(counts[key] > 0, _round2(current), 0.0)
    return _Engaged(values, as_of, counts, _round2(total))


def _start_sums(
    connection: Connection,
    contract: HandoffContract,
    first: int,
    last: int,
    at: float,
    *,
    reader: _Readers | None = None,
) -> Callable[[], np.ndarray | None]:
    """Start the engagement queries of ``first..last`` (:func:`_sums_queries`; on
    ``reader``'s threads when given, see :class:`_Readers`, else on the caller's
    connection when the answer is asked for) and return what waits for the answer: one
    row per lead with a counted event, ascending: the lead id, then per engagement rule
    its event count, latest event (epoch seconds) and ``sum(0.5 ** ((at - t) /
    half_life))`` (the count without a half-life); ``None`` when a filter cannot be
    expressed in SQL."""
    rules = contract.scoring.engagement
    parts = _sums_queries(contract, connection.dialect.name == "postgresql", first, last, at)
    if parts is None:
        return lambda: None
    if not parts:
        return lambda: np.zeros((0, 1))
    queries = [(sql, params, 1 + 3 * len(keys)) for keys, sql, params in parts]
    if reader is not None:
        futures = reader.start(queries)
        return lambda: _merged_sums(
            rules, [(keys, f.result()) for (keys, _, _), f in zip(parts, futures, strict=True)]
        )
    return lambda: _merged_sums(
        rules,
        [
            (keys, _sums_rows(connection, *query))
            for (keys, _, _), query in zip(parts, queries, strict=True)
        ],
    )


def _sums_queries(
    contract: HandoffContract,
    postgres: bool,
    first: int,
    last: int,
    at: float,
) -> list[tuple[list[int], str, tuple[Any, ...]]] | None:
    """The engagement queries of :func:`_start_sums` (the rules each answers, its SQL
    and parameters); ``None`` when a filter cannot be expressed in SQL, none without
    engagement rules.

    Two queries: the rules that filter on the event type alone are answered from the
    ``(lead_id, occurred_at, type)`` index without reading an activity row, grouped in
    the index's order (no sort); the rules that filter on properties read the rows of
    their event types only, each filter evaluated once per event. (SQLite's one pass
    over all leads reads them in the table's own order instead, one sequential pass:
    :func:`_sqlite_one_pass`.)"""
    mark = "%s" if postgres else "?"
    rules = contract.scoring.engagement
    if not rules:
        return []
    filters = [found for found in (_rule_filter(rule, postgres, mark) for rule in rules) if found]
    if len(filters) != len(rules):
        return None
    epoch = (
        "CAST(EXTRACT(EPOCH FROM occurred_at) AS DOUBLE PRECISION)" if postgres else _epoch(False)
    )

    def weight(rule: EngagementRule, ts: str) -> str:
        if rule.half_life_days:
            half = rule.half_life_days * SECONDS_PER_DAY
            return f"POWER(CAST(0.5 AS DOUBLE PRECISION), ({at!r} - {ts}) / {half!r})"
        return "CAST(1.0 AS DOUBLE PRECISION)"

    plain = [k for k, rule in enumerate(rules) if not rule.where]
    filtered = [k for k, rule in enumerate(rules) if rule.where]
    parts: list[tuple[list[int], str, tuple[Any, ...]]] = []
    if plain:
        # Unfenced, so that the grouping follows the index: the type test is cheap to
        # repeat per column.
        columns: list[str] = []
        params: list[Any] = []
        for k in plain:
            rule = rules[k]
            columns += [
                f"SUM(CASE WHEN type = {mark} THEN 1 ELSE 0 END)",
                f"COALESCE(MAX(CASE WHEN type = {mark} THEN {epoch} END), 0)",
                f"COALESCE(SUM(CASE WHEN type = {mark} THEN {weight(rule, epoch)} END), 0)",
            ]
            params += [rule.event.value] * 3
        kinds = sorted({rules[k].event.value for k in plain})
        sql = (
            f"SELECT lead_id, {', '.join(columns)} FROM activities"
            f" WHERE lead_id >= {mark} AND lead_id <= {mark}"
            f" AND type IN ({', '.join([mark] * len(kinds))}) GROUP BY lead_id ORDER BY lead_id"
        )
        parts.append((plain, sql, (*params, first, last, *kinds)))
    if filtered:
        flags: list[str] = []
        params = []
        columns = []
        for k in filtered:
            condition, condition_params = filters[k]
            flags.append(f"CASE WHEN {condition} THEN 1 ELSE 0 END AS m{k}")
            params += condition_params
            columns += [
                f"SUM(m{k})",
                f"COALESCE(MAX(CASE WHEN m{k} = 1 THEN ts END), 0)",
                f"COALESCE(SUM(CASE WHEN m{k} = 1 THEN {weight(rules[k], 'ts')} END), 0)",
            ]
        kinds = sorted({rules[k].event.value for k in filtered})
        # The fence (OFFSET 0) keeps each filter evaluated once per event: without it
        # both databases inline the subquery and evaluate a filter for every column
        # using it.
        fence = "OFFSET 0" if postgres else "LIMIT -1 OFFSET 0"
        sql = (
            f"SELECT lead_id, {', '.join(columns)} FROM ("
            f" SELECT lead_id, {epoch} AS ts, {', '.join(flags)} FROM activities"
            f" WHERE lead_id >= {mark} AND lead_id <= {mark}"
            f" AND type IN ({', '.join([mark] * len(kinds))}) {fence}) AS e"
            " GROUP BY lead_id ORDER BY lead_id"
        )
        parts.append((filtered, sql, (*params, first, last, *kinds)))
    return parts


def _merged_sums(
    rules: Sequence[EngagementRule], results: Sequence[tuple[list[int], np.ndarray]]
) -> np.ndarray:
    """The rows of the engagement queries (each for the rules ``keys``) as one row per
    lead, the rules in contract order (zeros where a query had no row for the lead)."""
    if len(results) == 1 and len(results[0][0]) == len(rules):
        return results[0][1]
    ids = np.unique(np.concatenate([found[:, 0] for _, found in results]))
    merged = np.zeros((len(ids), 1 + 3 * len(rules)))
    merged[:, 0] = ids
    for keys, found in results:
        if not len(found):
            continue
        rows = np.searchsorted(ids, found[:, 0])
        for j, k in enumerate(keys):
            merged[rows, 1 + 3 * k : 4 + 3 * k] = found[:, 1 + 3 * j : 4 + 3 * j]
    return merged


def _sums_rows(connection: Connection, sql: str, params: tuple[Any, ...], width: int) -> np.ndarray:
    """The rows of one engagement query as floats (``width`` columns) in the caller's
    transaction, read through a driver cursor (plain tuples, which numpy converts faster
    than result rows)."""
    cursor = connection.connection.cursor()
    try:
        if connection.dialect.name == "postgresql":
            cursor.execute(sql, params)
            rows = cursor.fetchall()
        else:
            # The events of a range of leads lie all over the file: reading them
            # through a memory map spares a system call per page (the setting is
            # the connection's, so it is put back).
            setting = cursor.execute("PRAGMA mmap_size").fetchone()
            cursor.execute(f"PRAGMA mmap_size={RESCORE_MMAP_BYTES}")
            try:
                rows = cursor.execute(sql, params).fetchall()
            finally:
                cursor.execute(f"PRAGMA mmap_size={int(setting[0] if setting else 0)}")
    finally:
        cursor.close()
    if not rows:
        return np.zeros((0, width))
    return np.array(rows, dtype=np.float64)


def _fallback_inputs(
    dialect: str, fallback: Sequence[tuple[int, Any]], selected: dict[str, Any]
) -> list[list[str]]:
    """Add to ``selected`` (name -> SQL expression on ``leads``) the inputs of the
    ``fallback`` fit rules that it lacks (an attribute as its JSON text), and return the
    names each rule reads: the caller selects them in the same statement as the rest of
    the chunk's columns, so that every value belongs to the row's lead."""
    postgres = dialect == "postgresql"
    inputs: list[list[str]] = []
    for _, rule in fallback:
        when = rule.when
        if isinstance(when, EmailCondition):
            names = ["email"]
        elif when.field.startswith("attributes."):
            key = when.field.removeprefix("attributes.")
            piece: Any
            if postgres:
                piece = cast_(leads.c.attributes[key], Text)
            else:
                path = '$."' + key.replace('"', '\\"') + '"'
                piece = leads.c.attributes.op("->")(literal(path))
            selected.setdefault(when.field, type_coerce(piece, Text))
            names = [when.field]
        else:
            names = [when.field] + (["email"] if when.field == "email_domain" else [])
        for name in names:
            if name not in selected:
                selected[name] = leads.c[name]
        inputs.append(names)
    return inputs


_TEXT_OR_NULL = frozenset({str, type(None)})


def _fallback_fit(
    contract: HandoffContract,
    fallback: Sequence[tuple[int, Any]],
    inputs: Sequence[Sequence[str]],
    values: Mapping[str, Sequence[Any]],
    n: int,
    grouped: dict[tuple[str, ...], tuple[list[int], np.ndarray]] | None = None,
) -> np.ndarray | None:
    """Points of the fit rules SQL cannot express for each of ``n`` leads, from
    ``values`` (per input name of :func:`_fallback_inputs`, a column aligned with the
    leads), each rule evaluated by :func:`baton.domain.scoring.condition_holds` once per
    distinct input (an attribute is read as its JSON text and decoded once per distinct
    text). The leads are grouped by distinct input once per input, not once per rule
    (the example contract's three title rules read one column): ``grouped`` keeps those
    groups for another call on the same ``values`` (the previous version's rules)."""
    if not fallback:
        return None
    ordered = list(values)
    columns = [values[name] for name in ordered]
    points = np.zeros(n)
    if grouped is None:
        grouped = {}
    for (_, rule), names in zip(fallback, inputs, strict=True):
        when = rule.when
        where = [ordered.index(name) for name in names]
        attribute = names[0].startswith("attributes.")
        found = grouped.get(tuple(names))
        if found is None:
            found = grouped[tuple(names)] = _input_groups(columns, where, n)
        rows, group_of = found
        holds = np.zeros(len(rows), dtype=bool)
        for group, row_index in enumerate(rows):
            if attribute:
                text = columns[where[0]][row_index]
                value = None if text is None else json.loads(text)
                lead: dict[str, Any] = {"attributes": {names[0].removeprefix("attributes."): value}}
            else:
                lead = {name: columns[i][row_index] for name, i in zip(names, where, strict=True)}
            holds[group] = condition_holds(when, lead, contract)
        points[holds[group_of]] += float(rule.points)
    return points


def _input_groups(
    columns: Sequence[Sequence[Any]], where: Sequence[int], n: int
) -> tuple[list[int], np.ndarray]:
    """The leads grouped by their input (the ``columns`` at ``where``) to the rules left
    to Python: one row of each group, and each lead's group."""
    # Text keys stand for themselves; others carry their type (1, 1.0 and True are
    # equal keys of a dict, not equal inputs of a rule).
    # A column of texts and NULLs only (an attribute's JSON text, most inputs) is
    # its own keys: told by the set of its types, made in C.
    keys = (
        columns[where[0]]
        if len(where) == 1 and set(map(type, columns[where[0]])) <= _TEXT_OR_NULL
        else [v if type(v) is str else (type(v), v) for v in columns[where[0]]]
        if len(where) == 1
        else [
            tuple((type(v), v) for v in parts)
            for parts in zip(*(columns[i] for i in where), strict=True)
        ]
    )
    # One row per distinct input decides it for all; each lead's group found in
    # one pass in C over the keys (a Python loop cost more than the rules).
    last_rows = dict(zip(keys, range(n), strict=True))
    numbers = {key: group for group, key in enumerate(last_rows)}
    group_of = np.fromiter(map(numbers.__getitem__, keys), dtype=np.intp, count=n)
    return list(last_rows.values()), group_of


def _state_texts(engaged: _Engaged, keys: Sequence[str]) -> list[str]:
    """Each lead's engagement state as the JSON ``json.dumps`` gives for it
    (:func:`baton.store.event_pass.state_texts`)."""
    return event_pass.state_texts(
        len(engaged.points), keys, engaged.values, engaged.as_of, engaged.counts
    )


def _state_text_of(engaged: _Engaged, keys: Sequence[str], row: int) -> str:
    """One lead's state text, as :func:`_state_texts` gives it."""
    return event_pass.state_text_of(keys, engaged.values, engaged.as_of, engaged.counts, row)


@dataclass(frozen=True)
class _LeadsRead:
    """A chunk's read of its leads, one statement (``first`` and ``last`` bound): the
    id, the fit points under the contract, the stage, the previous version's fit points
    (with ``old_plan``), then from ``extra_at`` the inputs named ``names`` of the rules
    left to Python (``inputs`` and ``old_inputs`` say which each rule reads)."""

    statement: Any
    plan: FitPlan
    old_plan: FitPlan | None
    names: list[str]
    inputs: list[list[str]]
    old_inputs: list[list[str]]
    extra_at: int


_ReadAhead = tuple[_LeadsRead, tuple[int, ...], list[tuple[Any, ...]]]
"""A chunk's read of its leads made by a worker process: the read it ran, the chunk's
ids, and the columns of its rows (:func:`baton.store.event_pass.chunk_leads`)."""

_LEADS_READS: dict[
    tuple[int, int, str], tuple[HandoffContract, HandoffContract | None, _LeadsRead]
] = {}


def _leads_read(
    contract: HandoffContract, previous: HandoffContract | None, dialect: str
) -> _LeadsRead:
    """:func:`_compile_leads_read`, once per parsed contract and previous one (the
    active rules are parsed once per content, so a re-score's chunks share one
    statement; compiling the fit rules costs about 20 ms)."""
    key = (id(contract), id(previous), dialect)
    found = _LEADS_READS.get(key)
    if found is not None and found[0] is contract and found[1] is previous:
        return found[2]
    read = _compile_leads_read(contract, previous, dialect)
    if len(_LEADS_READS) >= 16:
        _LEADS_READS.clear()
    _LEADS_READS[key] = (contract, previous, read)
    return read


def _compile_leads_read(
    contract: HandoffContract, previous: HandoffContract | None, dialect: str
) -> _LeadsRead:
    """The statement of :class:`_LeadsRead`. On SQLite, when a fit rule tests the
    address's domain, the leads are read in a subquery that splits the address once
    (fenced by its ``OFFSET``, so that SQLite does not fold it into the outer query):
    SQLite computes an expression again wherever it appears, and the example contract
    split each address four times, a third of the statement (63 → 44 ms of CPU for a
    chunk of 10,000 leads, measured on the 1,000,000-lead fill)."""
    plan = compile_fit(contract, dialect)
    old_plan = compile_fit(previous, dialect) if previous is not None else None
    selected: dict[str, Any] = {}
    inputs = _fallback_inputs(dialect, plan.fallback, selected)
    old_inputs = _fallback_inputs(dialect, old_plan.fallback, selected) if old_plan else []
    columns: list[Any] = [leads.c.id, plan.points, leads.c.stage]
    if old_plan is not None:
        columns.append(old_plan.points)
    extra_at = len(columns)
    columns += selected.values()
    chunk = (
        leads.c.id >= bindparam("first"),
        leads.c.id <= bindparam("last"),
        leads.c.merged_into_id.is_(None),
    )
    by_domain = any(
        isinstance(rule.when, EmailCondition)
        for spec in (contract, previous)
        if spec is not None
        for rule in spec.scoring.fit
    )
    if dialect != "sqlite" or not by_domain:
        statement = select(*columns).where(*chunk).order_by(leads.c.id)
    else:
        needed = {
            found.name: found
            for column in columns
            for found in visitors.iterate(column)
            if isinstance(found, Column) and found.table is leads
        }
        inner = (
            select(*needed.values(), email_domain(dialect).label("email_split_domain"))
            .where(*chunk)
            .limit(-1)
            .offset(0)
            .subquery("chunk_leads")
        )
        domain = inner.c.email_split_domain
        plan = compile_fit(contract, dialect, domain=domain)
        old_plan = compile_fit(previous, dialect, domain=domain) if previous else None
        adapter = ClauseAdapter(inner)
        outer = [inner.c.id, adapter.traverse(plan.points), inner.c.stage]
        if old_plan is not None:
            outer.append(adapter.traverse(old_plan.points))
        outer += [adapter.traverse(expression) for expression in selected.values()]
        statement = select(*outer).order_by(inner.c.id)
    return _LeadsRead(statement, plan, old_plan, list(selected), inputs, old_inputs, extra_at)


def _rescore_sets(
    connection: Connection,
    contract: HandoffContract,
    version: int,
    previous: HandoffContract | None,
    report: ActivationReport,
    ids: Sequence[int],
    *,
    now: datetime,
    actor: Principal,
    reader: _Readers | None = None,
    one_pass: _OnePass | None = None,
    before_handoff: Callable[[], None] | None = None,
    read_ahead: _ReadAhead | None = None,
) -> None:
    """The set-based path of :func:`rescore_chunk`. Everything read of the leads
    themselves (the SQL fit points under both versions, the inputs of the rules left to
    Python, the stage) comes from one statement; the other reads are matched to it by
    lead id."""
    dialect = connection.dialect.name
    first, last = ids[0], ids[-1]
    compare = previous is not None and report.previous is not None
    reading = _leads_read(contract, previous if compare else None, dialect)
    plan, old_plan, extra_at = reading.plan, reading.old_plan, reading.extra_at
    inputs, old_inputs = reading.inputs, reading.old_inputs
    # The chunk's engagement queries run on the readers' threads while this connection
    # reads the leads.
    read = one_pass.for_chunk(connection, contract, first, last) if one_pass else None
    pending: Callable[[], np.ndarray | None] | None = None
    sums_at: float | None = None
    ready: _SumsState | None = None
    if read is not None and one_pass is not None:
        pending, sums_at = (lambda: read), one_pass.at
        if one_pass.state is not None:
            ready = one_pass.state.rows(slice(*one_pass.rows_of(first, last)))
    elif reader is not None:
        pending = _start_sums(connection, contract, first, last, now.timestamp(), reader=reader)
    columns: list[tuple[Any, ...]]
    if (
        read_ahead is not None
        and read_ahead[0] is reading
        and read_ahead[1] == tuple(ids)
        and read_ahead[2]
        and read_ahead[2][0] == read_ahead[1]
    ):
        columns = read_ahead[2]
    else:
        rows = connection.execute(reading.statement, {"first": first, "last": last}).all()
        # The read's columns, transposed in C (a list per column made row by row was
        # about 0.6 s of CPU at 1,000,000 leads); the rows kept as they are when they
        # are the chunk's leads exactly, as they always are on SQLite (its write lock
        # is held).
        columns = list(zip(*rows, strict=True))
        if not columns or columns[0] != tuple(ids):
            rows = _locked_only(rows, ids, lambda row: int(row[0]))
            columns = list(zip(*rows, strict=True))
    if not columns:
        if pending is not None:
            pending()
        return
    n = len(columns[0])
    lead_ids = np.array(columns[0], dtype=np.int64)
    stages = columns[2]
    values = {name: columns[extra_at + i] for i, name in enumerate(reading.names)}
    fit = np.array(columns[1], dtype=np.float64)
    grouped: dict[tuple[str, ...], tuple[list[int], np.ndarray]] = {}
    extra = _fallback_fit(contract, plan.fallback, inputs, values, n, grouped)
    if extra is not None:
        fit = fit + extra
    engaged = _engaged(
        connection,
        contract,
        lead_ids,
        now,
        reader=reader,
        pending=pending,
        sums_at=sums_at,
        ready=ready,
    )
    total = _round2(fit + engaged.points)
    grades = contract.scoring.grades
    grade = np.select(
        [fit >= grades.A, fit >= grades.B, fit >= grades.C], ["A", "B", "C"], default="D"
    ).tolist()
    threshold = contract.mql.threshold
    now_over = total >= threshold
    if previous is not None and old_plan is not None:
        old_fit = np.array(columns[3], dtype=np.float64)
        extra = _fallback_fit(previous, old_plan.fallback, old_inputs, values, n, grouped)
        if extra is not None:
            old_fit = old_fit + extra
        old_engagement = np.zeros(n)
        missing = np.ones(n, dtype=bool)
        for lead_id, (scored_version, state) in _stored_states(connection, first, last).items():
            if scored_version != report.previous:
                continue
            row = int(np.searchsorted(lead_ids, lead_id))
            if row < n and lead_ids[row] == lead_id:
                old_engagement[row] = engagement_total(previous, state, now)
                missing[row] = False
        if missing.any():
            recomputed = _engaged(connection, previous, lead_ids, now, reader=reader).points
            old_engagement = np.where(missing, recomputed, old_engagement)
        was_over = _round2(old_fit + old_engagement) >= previous.mql.threshold
    else:
        was_over = np.zeros(n, dtype=bool)
    report.crossed_up += int(np.count_nonzero(now_over & ~was_over))
    report.crossed_down += int(np.count_nonzero(was_over & ~now_over))
    keys = [str(k) for k in range(len(contract.scoring.engagement))]
    made = (
        one_pass.chunk_texts(first, last, lead_ids, engaged, keys)
        if ready is not None and one_pass is not None
        else None
    )
    states = made if made is not None else _state_texts(engaged, keys)
    postgres = dialect == "postgresql"
    at: Any = now if postgres else sqlite_datetime(now)
    fits = fit.tolist()
    engagements = engaged.points.tolist()
    totals = total.tolist()
    if postgres:
        _copy_scores(
            connection,
            version,
            at,
            zip(lead_ids.tolist(), fits, engagements, totals, grade, states, strict=True),
        )
    else:
        # Each row's tuple made by zip in C (a comprehension unpacking and packing
        # each row was about 0.7 s of CPU at 1,000,000 leads).
        _upsert_chunk_scores(
            connection,
            version,
            at,
            list(zip(lead_ids.tolist(), fits, engagements, totals, grade, states, strict=True)),
        )
    # Only a lead waiting at the handoff point, over the threshold, with the grade and
    # the required prep items can qualify (mql_decision says no to every other one
    # without a hand-raise): the others' rows are not read.
    waiting = {Stage.LEAD.value, Stage.NURTURE.value}
    graded = {g for g in GRADE_ORDER if grade_at_least(g, contract.mql.min_grade)}
    required = {item.id for item in contract.prep_checklist if item.required}
    candidates = [
        int(lead_ids[row])
        for row in np.flatnonzero(now_over).tolist()
        if stages[row] in waiting and grade[row] in graded
    ]
    handed = _Handed()
    # The ticks of the chunk's whole id range, read along the table's key in one
    # statement: a list of thousands of candidates (a chunk of 10,000 leads has up to
    # 10,000) cost a compiled IN of 900 ids a time (2.9 s of CPU at 1,000,000 leads
    # under the profiler, most of it compiling).
    ticks = _prep_ticks_between(connection, first, last) if candidates else {}
    if required:
        candidates = [i for i in candidates if required <= ticks.get(i, set())]
    for part in chunks(candidates):
        for person in connection.execute(
            select(*SCORED_COLUMNS).where(leads.c.id.in_(part)).order_by(leads.c.id)
        ).mappings():
            lead = dict(person)
            row = int(np.searchsorted(lead_ids, lead["id"]))
            card = ScoreCard(
                fit=fits[row],
                engagement=engagements[row],
                total=totals[row],
                grade=cast(Grade, grade[row]),
                hits=(),
            )
            handed.decide(connection, contract, version, lead, card, now=now, ticks=ticks)
    if before_handoff is not None:
        before_handoff()
    _hand_off(connection, contract, version, report, handed, now=now, actor=actor)


def engagement_states(
    connection: Connection, contract: HandoffContract, first: int, last: int
) -> dict[int, dict[str, list[float]]]:
    """Engagement state of every lead with id in ``first..last``: computed in SQL (one
    grouped query per rule: count, latest time, and the decayed sum) when every rule's
    filters can be expressed there, otherwise by folding the events in Python. Both
    give the state :func:`baton.domain.scoring.engagement_state` gives."""
    sql_states = _engagement_states_sql(connection, contract, first, last)
    if sql_states is not None:
        return sql_states
    histories = _histories(
        connection,
        relevant_event_types(contract),
        event_types_needing_properties(contract),
        first,
        last,
    )
    return {lead_id: engagement_state(contract, events) for lead_id, events in histories.items()}


def _property_text(postgres: bool, mark: str, *, plain: bool = False) -> str:
    """SQL for a property as the text Python's ``str()`` gives for it (``plain``, on
    SQLite: as ``json_extract`` gives it, ``1`` and ``0`` for true and false, which
    :func:`_property_filters` uses only where that cannot change a filter's answer)."""
    if postgres:
        return f"(properties ->> {mark})"
    if plain:
        return f"json_extract(properties, {mark})"
    return (
        f"(CASE json_type(properties, {mark}) WHEN 'true' THEN 'True' WHEN 'false'"
        f" THEN 'False' ELSE CAST(json_extract(properties, {mark}) AS TEXT) END)"
    )


_BOOLEAN_TEXTS = ("true", "false", "1", "0")
"""A JSON true or false as :func:`_property_text` gives it (lowered) and as
``json_extract`` alone gives it."""


def _rule_filter(rule: EngagementRule, postgres: bool, mark: str) -> tuple[str, list[Any]] | None:
    """SQL (with its parameters) that selects the events ``rule`` counts, or ``None``
    when one of its property filters cannot be expressed there (``regex``, a
    non-text ``equals``)."""
    found = _property_filters(rule, postgres, mark)
    if found is None:
        return None
    conditions, params = found
    return " AND ".join([f"type = {mark}", *conditions]), [rule.event.value, *params]


def _property_filters(
    rule: EngagementRule, postgres: bool, mark: str, *, plain: bool = False
) -> tuple[list[str], list[Any]] | None:
    """The conditions of :func:`_rule_filter` on the event's properties (none for a
    rule on the type alone), with their parameters. With ``plain`` (SQLite), a filter
    whose wanted text a true or false could never match or contain either way (as
    ``True``/``False`` or as ``1``/``0``, :data:`_BOOLEAN_TEXTS`: ``/pricing`` and
    ``/product`` of the example contract) reads the property with one ``json_extract``
    instead of ``json_type`` and ``json_extract`` (SQLite 3.40 parses the JSON for each
    call): the same answer for every value, the one pass's page views read with half the
    parses."""
    where: list[str] = []
    params: list[Any] = []
    for key, wanted in sorted(rule.where.items()):
        path = key if postgres else '$."' + key.replace('"', '\\"') + '"'
        if wanted.contains is not None:
            text = wanted.contains.lower()
            cheap = plain and not postgres and not any(text in b for b in _BOOLEAN_TEXTS)
            where.append(
                f"strpos(lower({_property_text(postgres, mark)}), {mark}) > 0"
                if postgres
                else f"instr(lower({_property_text(postgres, mark, plain=cheap)}), {mark}) > 0"
            )
            params += [path, text] if postgres or cheap else [path, path, text]
        elif isinstance(wanted.equals, str):
            text = wanted.equals.strip().lower()
            cheap = plain and not postgres and text not in _BOOLEAN_TEXTS
            where.append(f"lower(trim({_property_text(postgres, mark, plain=cheap)})) = {mark}")
            params += [path, text] if postgres or cheap else [path, path, text]
        else:
            return None
    return where, params


def _epoch(postgres: bool) -> str:
    return (
        "EXTRACT(EPOCH FROM occurred_at)"
        if postgres
        else "((julianday(occurred_at) - 2440587.5) * 86400.0)"
    )


def _engagement_states_sql(
    connection: Connection, contract: HandoffContract, first: int, last: int
) -> dict[int, dict[str, list[float]]] | None:
    postgres = connection.dialect.name == "postgresql"
    mark = "%s" if postgres else "?"
    queries: list[tuple[str, EngagementRule, str, list[Any]]] = []
    for index, rule in enumerate(contract.scoring.engagement):
        found = _rule_filter(rule, postgres, mark)
        if found is None:
            return None
        condition, params = found
        queries.append(
            (
                str(index),
                rule,
                f"lead_id >= {mark} AND lead_id <= {mark} AND {condition}",
                [first, last, *params],
            )
        )
    epoch = _epoch(postgres)
    states: dict[int, dict[str, list[float]]] = {}
    for key, rule, condition, params in queries:
        if rule.half_life_days:
            seconds = rule.half_life_days * SECONDS_PER_DAY
            weight = f"SUM(POWER(0.5, (mx - ts) / {seconds!r}))"
        else:
            weight = "COUNT(*)"
        sql = (
            f"SELECT lead_id, COUNT(*), MAX(ts), {weight} FROM ("
            " SELECT lead_id, ts, MAX(ts) OVER (PARTITION BY lead_id) AS mx FROM ("
            f"  SELECT lead_id, {epoch} AS ts FROM activities WHERE {condition}) AS e) AS w"
            " GROUP BY lead_id"
        )
        for lead_id, count, latest, weighted in connection.exec_driver_sql(sql, tuple(params)):
            states.setdefault(lead_id, {})[key] = [
                float(rule.points) * float(weighted),
                float(latest),
                float(count),
            ]
    return states


def _histories_of(
    connection: Connection, kinds: set[str], with_props: set[str], lead_ids: Sequence[int]
) -> dict[int, list[Event]]:
    """Like :func:`_histories`, for a list of leads (one query per 900 leads)."""
    found: dict[int, list[Event]] = {}
    for part in chunks(list(lead_ids)):
        found.update(_histories(connection, kinds, with_props, part[0], part[-1], only=part))
    return found


def _histories(
    connection: Connection,
    kinds: set[str],
    with_props: set[str],
    first: int,
    last: int,
    only: Sequence[int] | None = None,
) -> dict[int, list[Event]]:
    """Events of leads ``first..last`` of the given types, read with one plain query
    (no ORM type processing: this is the hot loop of a re-score); properties are decoded
    only for the types whose rules filter on them."""
    if not kinds:
        return {}
    ordered = sorted(kinds)
    postgres = connection.dialect.name == "postgresql"
    mark = "%s" if postgres else "?"
    if only is not None:
        where = f"lead_id IN ({', '.join([mark] * len(only))})"
        bounds: tuple[Any, ...] = tuple(only)
    else:
        where = f"lead_id >= {mark} AND lead_id <= {mark}"
        bounds = (first, last)
    rows = connection.exec_driver_sql(
        "SELECT lead_id, type, occurred_at, properties FROM activities"
        f" WHERE {where} AND type IN ({', '.join([mark] * len(ordered))})",
        (*bounds, *ordered),
    )
    wanted = set(only) if only is not None else None
    found: dict[int, list[Event]] = {}
    for lead_id, kind, at, props in rows:
        if wanted is not None and lead_id not in wanted:
            continue
        at = read_datetime(at)
        if kind in with_props:
            props = json.loads(props) if isinstance(props, str) else props
        else:
            props = {}
        found.setdefault(lead_id, []).append(Event(kind, at, props or {}))
    return found


@dataclass(frozen=True)
class LeadScore:
    """A lead's current score with the rule-by-rule explanation."""

    lead_id: int
    contract_version: int
    fit: float
    engagement: float
    total: float
    grade: str
    threshold: int
    hits: tuple[RuleHit, ...]
    scored_at: datetime
    mql_gaps: tuple[MqlGap, ...] = ()
    """What stands between the lead and the MQL rule on score now (empty: the rule
    is met); see :func:`baton.domain.scoring.mql_gaps`."""
    probability: float | None = None
    """The contract's model's probability now (``None`` without ``scoring.predicted``,
    or when the model could not be loaded: see ``model_problem``)."""
    reasons: tuple[PredictedReason, ...] = ()
    """The features that moved that probability most (three at most)."""
    model_problem: str | None = None
    """Why there is no probability although the contract has a model."""


def lead_score(ctx: Context, lead_id: int, *, actor: Principal) -> LeadScore:
    """Score, grade and explanation now (engagement decayed to the clock's time); a
    lead out of ``actor``'s reach is :class:`NotFound`."""
    with ctx.read() as connection:
        check_lead(connection, actor, Action.READ_LEADS, lead_id)
        active = active_contract_in(connection)
        lead = (
            connection.execute(select(*SCORED_COLUMNS).where(leads.c.id == lead_id))
            .mappings()
            .first()
        )
        if lead is None:
            raise NotFound(f"lead {lead_id} does not exist")
        if active is None:
            raise NotFound("no contract is active yet: activate one to score leads")
        version, contract = active
        row = connection.execute(
            select(lead_scores.c.state, lead_scores.c.contract_version).where(
                lead_scores.c.lead_id == lead_id
            )
        ).first()
        if row is None or row[1] != version:
            state = _state_from_history(connection, contract, lead_id)
        else:
            state = row[0]
        ticked = set(
            connection.execute(
                select(lead_prep.c.item).where(lead_prep.c.lead_id == lead_id)
            ).scalars()
        )
        now = ctx.clock.now()
        predictions = predictions_in(connection, contract, [lead_id], now, reasons=True)
    probability = predictions.probabilities.get(lead_id)
    card = score(contract, dict(lead), state, now, probability=probability)
    gaps = mql_gaps(
        contract,
        card=card,
        lead=dict(lead),
        now=now,
        prep_done=ticked,
        recycled_at=lead["stage_changed_at"] if lead["stage"] == Stage.NURTURE.value else None,
    )
    return LeadScore(
        lead_id=lead_id,
        contract_version=version,
        fit=card.fit,
        engagement=card.engagement,
        total=card.total,
        grade=card.grade,
        threshold=contract.mql.threshold,
        hits=card.hits,
        scored_at=now,
        mql_gaps=tuple(gaps),
        probability=card.probability,
        reasons=predictions.reasons.get(lead_id, ()),
        model_problem=predictions.problem,
    )
