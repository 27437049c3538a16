"""Backtest a contract on the recorded history, before anyone signs it.

``backtest_contract`` replays every lead (not merged) and its activities in time order
through a draft's scoring and MQL rules (the real scoring code, see
:mod:`baton.domain.backtest`), side by side with a stored version (the active one by
default), and compares what each would have sent with what sales did in history.

It never touches live data: one read transaction, no stage change, no handoff, no
email, no score written. Leads are read in id ranges and their activities streamed
ordered by ``(lead_id, occurred_at)`` with plain driver SQL (the hot loop), so a
million leads with ten million activities fit in memory a range at a time.

Outcomes come from the history Baton holds: won = ``customer_at``, accepted =
``sal_at``, qualified = ``sql_at``; rejected = a handoff sales rejected (its reason
code), or, for history imports (which record verdicts as stage changes, not handoffs),
a historical move out of ``mql`` to ``disqualified`` or ``nurture``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.engine import Connection

from baton.config import Settings
from baton.domain.access import Action, Principal
from baton.domain.backtest import (
    NOTES,
    Outcome,
    ProbabilityAt,
    Replayer,
    SideReport,
    Tally,
    fit_key,
    fit_of,
    no_winner_warning,
    summarise,
)
from baton.domain.contract import HandoffContract
from baton.domain.errors import FieldProblem, NotFound, ValidationFailed
from baton.domain.scoring import Event, event_types_needing_properties, relevant_event_types
from baton.learn.features import outcome_label
from baton.services.access import allowed
from baton.services.context import Context
from baton.services.contract_rules import active_contract_in, rules_of
from baton.services.contracts import check_contract, problem_lines
from baton.services.scoring import SCORED_COLUMNS
from baton.store.bulk import read_datetime
from baton.store.tables import contracts, handoffs, leads, transitions

CHUNK = 5000
"""Leads per id range read at once."""
PARALLEL_FROM = 200_000
"""From this many leads the replay is split over :data:`MAX_PROCESSES` processes."""
MAX_PROCESSES = 2
HISTORY_VERDICTS = {"disqualified": "disqualified (history)", "nurture": "recycled (history)"}
"""A history import's move out of ``mql`` (no handoff, no code) as a rejection reason."""

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class BacktestReport:
    """What the draft (and the contract it is compared with) would have done."""

    leads: int
    won: int
    accepted: int
    qualified: int
    rejected: int
    first_touch: datetime | None
    last_event: datetime | None
    draft: SideReport
    against: SideReport | None
    warnings: tuple[str, ...] = ()
    notes: tuple[str, ...] = NOTES
    outcome: str = "won"
    """What counts as won: ``won`` (the lead became a customer) or an imported outcome
    column, ``attributes.KEY`` (1/yes/true)."""

    def to_json(self) -> dict[str, Any]:
        """The report as JSON-friendly values (datetimes as ISO text)."""

        def side(report: SideReport | None) -> dict[str, Any] | None:
            if report is None:
                return None
            return asdict(report)

        return {
            "leads": self.leads,
            "won": self.won,
            "accepted": self.accepted,
            "qualified": self.qualified,
            "rejected": self.rejected,
            "first_touch": self.first_touch.isoformat() if self.first_touch else None,
            "last_event": self.last_event.isoformat() if self.last_event else None,
            "draft": side(self.draft),
            "against": side(self.against),
            "warnings": list(self.warnings),
            "notes": list(self.notes),
            "outcome": self.outcome,
        }


def check_outcome(outcome: str) -> None:
    """``won`` or ``attributes.KEY``, else :class:`ValidationFailed` on ``outcome``."""
    key = outcome.removeprefix("attributes.")
    if outcome == "won" or (outcome.startswith("attributes.") and key and len(key) <= 100):
        return
    raise ValidationFailed(
        "unknown outcome",
        [
            FieldProblem(
                "outcome",
                f"'{outcome[:100]}' is not an outcome: use won or attributes.KEY (an imported "
                "outcome column such as attributes.converted)",
            )
        ],
    )


def _won(lead: dict[str, Any], outcome: str) -> tuple[bool, datetime | None]:
    """Whether ``lead`` was won, and when (None for an imported outcome column)."""
    if outcome == "won":
        won_at: datetime | None = lead["customer_at"]
        return won_at is not None, won_at
    return outcome_label(
        (lead["attributes"] or {}).get(outcome.removeprefix("attributes."))
    ) == 1, None


def _draft_rules(connection: Connection, draft: str | int) -> tuple[HandoffContract, int | None]:
    if isinstance(draft, int):
        return _stored(connection, draft), draft
    try:
        return check_contract(draft), None
    except ValidationFailed as exc:
        problems = [
            FieldProblem(loc, f"{message} (line {line})" if line else message)
            for line, loc, message in problem_lines(draft, exc.problems)
        ]
        raise ValidationFailed(f"the draft has {len(problems)} problem(s)", problems) from None


def _stored(connection: Connection, version: int) -> HandoffContract:
    row = connection.execute(select(contracts.c.spec).where(contracts.c.version == version)).first()
    if row is None:
        raise NotFound(f"contract version {version} does not exist")
    return rules_of(row[0])


class ReplaySide:
    """One contract being replayed: its rules, tally and (for ``scoring.predicted``)
    the model that gives the probability at each moment."""

    def __init__(self, connection: Connection, contract: HandoffContract) -> None:
        self.contract = contract
        self.tally = Tally(contract)
        self.model: Any = None
        if contract.scoring.predicted is not None:
            from baton.services.model_store import load_model_in

            self.model = load_model_in(connection, contract.scoring.predicted.model)

    def probability_at(self, lead: Mapping[str, Any], timed: Sequence[Any]) -> ProbabilityAt | None:
        if self.model is None:
            return None
        from baton.learn.features import lead_features

        model = self.model
        memo: dict[datetime, float] = {}

        def at(moment: datetime) -> float:
            if moment not in memo:
                row = lead_features(
                    model.spec,
                    lead,
                    timed,
                    moment,
                    numeric_attributes=model.numeric_attributes,
                )
                memo[moment] = float(model.probability(row))
            return memo[moment]

        return at


def _rank(scores: Sequence[float], labels: Sequence[int]) -> tuple[float, float]:
    from baton.learn.model import measure

    found = measure(scores, labels)
    return found.roc_auc, found.pr_auc


def backtest_contract(
    ctx: Context,
    draft: str | int,
    *,
    against: int | None = None,
    actor: Principal,
    progress: Progress | None = None,
    chunk: int = CHUNK,
    processes: int | None = None,
    outcome: str = "won",
) -> BacktestReport:
    """Replay the history through ``draft`` (YAML text, or a stored version's number)
    and ``against`` (a stored version; by default the active one, if any and not the
    draft itself). Raises :class:`ValidationFailed` for an invalid draft (each problem
    with its line) and for an empty history, :class:`NotFound` for a missing version.

    ``processes``: how many processes replay (each a share of the lead ids, reading
    its own snapshot); by default 2 on a machine with 2 cores or more for a history of
    :data:`PARALLEL_FROM` leads or more, else 1.

    ``outcome``: what counts as won: ``won`` (became a customer: the replay of a won
    lead stops at its win) or ``attributes.KEY``, an outcome column that came with
    imported data (X Education's ``attributes.converted``: 1/yes/true won; it has no
    moment, so the whole history is replayed)."""
    allowed(actor, Action.RUN_BACKTEST)
    check_outcome(outcome)
    with ctx.read() as connection:
        rules, draft_version = _draft_rules(connection, draft)
        other: HandoffContract | None = None
        if against is not None:
            other = _stored(connection, against)
        else:
            active = active_contract_in(connection, share_lock=False)
            if active is not None and active[0] != draft_version:
                against, other = active
        total = connection.execute(
            select(func.count()).select_from(leads).where(leads.c.merged_into_id.is_(None))
        ).scalar_one()
        if not total:
            raise ValidationFailed(
                "no leads to replay: the history is empty (import leads and their "
                "activities first)",
                [FieldProblem("history", "no leads to replay")],
            )
        sides = [ReplaySide(connection, rules)] + ([ReplaySide(connection, other)] if other else [])
        counts = replay_all(
            ctx,
            connection,
            sides,
            total=int(total),
            progress=progress,
            chunk=chunk,
            processes=processes_for(ctx, int(total)) if processes is None else max(1, processes),
            outcome=outcome,
        )
    warnings: list[str] = []
    if counts["won"] == 0:
        warnings.append(no_winner_warning(counts["leads"]))
    elif counts["won"] == counts["leads"]:
        warnings.append("every lead was won in the history: ROC AUC against won cannot be measured")
    draft_label = "draft" if draft_version is None else f"version {draft_version}"
    return BacktestReport(
        leads=counts["leads"],
        won=counts["won"],
        accepted=counts["accepted"],
        qualified=counts["qualified"],
        rejected=counts["rejected"],
        first_touch=counts["first"],
        last_event=counts["last"],
        draft=summarise(sides[0].tally, label=draft_label, version=draft_version, rank=_rank),
        against=(
            summarise(sides[1].tally, label=f"version {against}", version=against, rank=_rank)
            if len(sides) > 1
            else None
        ),
        warnings=tuple(warnings),
        outcome=outcome,
    )


_LEAD_NAMES = [c.name for c in SCORED_COLUMNS] + ["created_at", "sal_at", "sql_at", "customer_at"]


def _lead_rows(
    connection: Connection, after: int, chunk: int, high: int | None = None
) -> list[dict[str, Any]]:
    postgres = connection.dialect.name == "postgresql"
    mark = "%s" if postgres else "?"
    bound = "" if high is None else f" AND id <= {int(high)}"
    cursor = connection.connection.cursor()
    try:
        cursor.execute(
            f"SELECT {', '.join(_LEAD_NAMES)} FROM leads WHERE id > {mark}{bound}"
            f" AND merged_into_id IS NULL ORDER BY id LIMIT {int(chunk)}",
            (after,),
        )
        rows = cursor.fetchall()
    finally:
        cursor.close()
    found: list[dict[str, Any]] = []
    names = _LEAD_NAMES
    for values in rows:
        row = dict(zip(names, values, strict=True))
        if isinstance(row["attributes"], str):
            row["attributes"] = json.loads(row["attributes"])
        for name in ("created_at", "stage_changed_at", "updated_at"):
            row[name] = _moment(row[name])
        for name in ("sal_at", "sql_at", "customer_at"):
            if row[name] is not None:
                row[name] = _moment(row[name])
        if isinstance(row["consent"], int) and not isinstance(row["consent"], bool):
            row["consent"] = bool(row["consent"])
        found.append(row)
    return found


def _rejections(connection: Connection, first: int, last: int) -> dict[int, set[str]]:
    found: dict[int, set[str]] = {}
    for lead_id, code in connection.execute(
        select(handoffs.c.lead_id, handoffs.c.rejection_code).where(
            handoffs.c.lead_id >= first,
            handoffs.c.lead_id <= last,
            or_(handoffs.c.status == "rejected", handoffs.c.rejection_code.is_not(None)),
        )
    ):
        found.setdefault(lead_id, set()).add(code or "rejected (no code)")
    for lead_id, stage in connection.execute(
        select(transitions.c.lead_id, transitions.c.to_stage).where(
            transitions.c.lead_id >= first,
            transitions.c.lead_id <= last,
            transitions.c.historical.is_(True),
            transitions.c.from_stage == "mql",
            transitions.c.to_stage.in_(tuple(HISTORY_VERDICTS)),
        )
    ):
        found.setdefault(lead_id, set()).add(HISTORY_VERDICTS[stage])
    return found


def _moment(value: datetime | str) -> datetime:
    """A stored moment as an aware UTC datetime (SQLite's text read the fast way)."""
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value + "+00:00")
        except ValueError:
            pass
    return read_datetime(value)


def _in_list(kinds: set[str]) -> str:
    """An SQL ``IN`` list of event type names (they are enum values: safe to inline)."""
    return ", ".join("'" + kind.replace("'", "''") + "'" for kind in sorted(kinds))


def _activities(
    connection: Connection,
    first: int,
    last: int,
    kinds: set[str] | None,
    with_props: set[str],
) -> Iterator[tuple[int, list[Event], datetime | None]]:
    """Per lead of ``first..last`` with activities: its events of ``kinds`` (all when
    None) in time order, and its first activity of any type.

    Only the types some rule counts are read (their properties only when a rule
    filters on them), the first activity with one ``MIN`` per lead, through the
    driver's own cursor (the hot loop)."""
    postgres = connection.dialect.name == "postgresql"
    mark = "%s" if postgres else "?"
    cursor = connection.connection.cursor()
    try:
        props = (
            f"CASE WHEN type IN ({_in_list(with_props)}) THEN properties END"
            if with_props
            else "NULL"
        )
        where = f"lead_id >= {mark} AND lead_id <= {mark}"
        earliest_of: dict[int, Any] = {}
        if kinds is not None:
            if not kinds:
                cursor.execute(
                    f"SELECT lead_id, MIN(occurred_at) FROM activities WHERE {where}"
                    " GROUP BY lead_id",
                    (first, last),
                )
                for lead_id, at in cursor.fetchall():
                    yield lead_id, [], _moment(at)
                return
            cursor.execute(
                f"SELECT lead_id, MIN(occurred_at) FROM activities WHERE {where} GROUP BY lead_id",
                (first, last),
            )
            earliest_of = dict(cursor.fetchall())
            where += f" AND type IN ({_in_list(kinds)})"
        cursor.execute(
            f"SELECT lead_id, type, occurred_at, {props} FROM activities"
            f" WHERE {where} ORDER BY lead_id, occurred_at, id",
            (first, last),
        )
        rows = cursor.fetchall()
    finally:
        cursor.close()
    current: int | None = None
    events: list[Event] = []
    empty: dict[str, Any] = {}
    decoded: dict[str, dict[str, Any]] = {}
    seen: set[int] = set()

    def first_of(lead_id: int, events: list[Event]) -> datetime | None:
        if kinds is None:
            return events[0].occurred_at if events else None
        seen.add(lead_id)
        raw = earliest_of.get(lead_id)
        if raw is None:
            return None
        if events and raw == events[0].occurred_at:
            return events[0].occurred_at
        return _moment(raw)

    for lead_id, kind, at, found in rows:
        if lead_id != current:
            if current is not None:
                yield current, events, first_of(current, events)
            current, events = lead_id, []
        moment = _moment(at)
        if found is None:
            events.append(Event(kind, moment, empty))
        elif isinstance(found, str):
            # Properties repeat (the same pages): each distinct text is decoded once.
            value = decoded.get(found)
            if value is None:
                if len(decoded) > 50_000:
                    decoded.clear()
                value = decoded[found] = json.loads(found) or empty
            events.append(Event(kind, moment, value))
        else:
            events.append(Event(kind, moment, found or empty))
    if current is not None:
        yield current, events, first_of(current, events)
    # Leads whose activities are all of types no rule counts: only their first touch.
    for lead_id, raw in earliest_of.items():
        if lead_id not in seen:
            yield lead_id, [], _moment(raw)


@dataclass
class _Part:
    """The replay of one id range: counts and one tally per side."""

    counts: dict[str, Any]
    tallies: list[Tally]


def _replay_range(
    connection: Connection,
    sides: list[ReplaySide],
    *,
    low: int,
    high: int | None,
    progress: Callable[[int], None] | None,
    chunk: int,
    outcome: str = "won",
) -> _Part:
    """Replay the leads with ids in ``low..high`` (no upper bound when None)."""
    predicted = any(side.model is not None for side in sides)
    kinds: set[str] | None = None
    with_props: set[str] = set()
    if not predicted:
        kinds = set()
        for side in sides:
            kinds |= relevant_event_types(side.contract)
            kinds |= {e.value for e in side.contract.mql.hand_raise}
    for side in sides:
        with_props |= event_types_needing_properties(side.contract)
    # Sides with the same fit rules share one fit computation per lead.
    keys = [fit_key(side.contract) for side in sides]
    share = [next(i for i in range(len(sides)) if keys[i] == keys[k]) for k in range(len(sides))]
    shared = [share.count(share[k]) > 1 for k in range(len(sides))]
    tallies = [Tally(side.contract) for side in sides]
    replayer = Replayer([side.contract for side in sides])
    counts: dict[str, Any] = dict.fromkeys(("leads", "won", "accepted", "qualified", "rejected"), 0)
    counts["first"] = counts["last"] = None
    after = low - 1
    while True:
        people = _lead_rows(connection, after, chunk, high)
        if not people:
            break
        first, last = int(people[0]["id"]), int(people[-1]["id"])
        after = last
        rejected = _rejections(connection, first, last)
        histories: dict[int, tuple[list[Event], datetime | None]] = {
            lead_id: (events, earliest)
            for lead_id, events, earliest in _activities(connection, first, last, kinds, with_props)
        }
        for lead in people:
            lead_id = int(lead["id"])
            events, earliest = histories.get(lead_id, ([], None))
            won, won_at = _won(lead, outcome)
            result = Outcome(
                won=won,
                accepted=lead["sal_at"] is not None,
                qualified=lead["sql_at"] is not None,
                won_at=won_at,
                rejections=tuple(sorted(rejected.get(lead_id, ()))),
            )
            counts["leads"] += 1
            counts["won"] += result.won
            counts["accepted"] += result.accepted
            counts["qualified"] += result.qualified
            counts["rejected"] += bool(result.rejections)
            created: datetime = lead["created_at"]
            start = min(created, earliest) if earliest is not None else created
            end = events[-1].occurred_at if events else created
            if counts["first"] is None or start < counts["first"]:
                counts["first"] = start
            if counts["last"] is None or end > counts["last"]:
                counts["last"] = end
            fits: list[float | None] = [None] * len(sides)
            for index, owner in enumerate(share):
                if shared[index]:
                    if fits[owner] is None:
                        fits[owner] = fit_of(sides[owner].contract, lead, created)
                    fits[index] = fits[owner]
            replays = replayer.replay(
                lead_id,
                lead,
                created,
                events,
                until=won_at,
                first_activity=earliest,
                probability_at=(
                    [side.probability_at(lead, events) for side in sides] if predicted else None
                ),
                fits=fits,
            )
            for tally, replay in zip(tallies, replays, strict=True):
                tally.add(replay, result)
        if progress is not None:
            progress(counts["leads"])
    return _Part(counts, tallies)


def processes_for(ctx: Context, total: int) -> int:
    """How many processes replay a history of ``total`` leads by default."""
    url = ctx.settings.database_url
    if total < PARALLEL_FROM or ":memory:" in url or url.rstrip("/") in ("sqlite:", "sqlite://"):
        return 1
    return max(1, min(MAX_PROCESSES, os.cpu_count() or 1))


def _bounds(connection: Connection, total: int, processes: int) -> list[tuple[int, int | None]]:
    """``processes`` id ranges of about the same number of leads."""
    postgres = connection.dialect.name == "postgresql"
    mark = "%s" if postgres else "?"
    cuts: list[int] = []
    for k in range(1, processes):
        row = connection.exec_driver_sql(
            f"SELECT id FROM leads WHERE merged_into_id IS NULL ORDER BY id LIMIT 1 OFFSET {mark}",
            (max(0, total * k // processes - 1),),
        ).first()
        if row is not None and (not cuts or int(row[0]) > cuts[-1]):
            cuts.append(int(row[0]))
    lows = [0] + [cut + 1 for cut in cuts]
    highs: list[int | None] = [*cuts, None]
    return list(zip(lows, highs, strict=True))


def _replay_part(
    settings: Settings,
    contracts: list[HandoffContract],
    low: int,
    high: int | None,
    chunk: int,
    outcome: str = "won",
) -> _Part:
    """A worker process's share: its own connection and its own read snapshot."""
    from baton.services.context import open_context

    ctx = open_context(settings, migrate=False)
    try:
        with ctx.read() as connection:
            sides = [ReplaySide(connection, contract) for contract in contracts]
            return _replay_range(
                connection, sides, low=low, high=high, progress=None, chunk=chunk, outcome=outcome
            )
    finally:
        ctx.engine.dispose()


def replay_all(
    ctx: Context,
    connection: Connection,
    sides: list[ReplaySide],
    *,
    total: int,
    progress: Progress | None,
    chunk: int,
    processes: int = 1,
    outcome: str = "won",
) -> dict[str, Any]:
    """Replay every lead: in this process, or split by id range over ``processes``
    (this one replays the first range; the parts are merged in id order, so the
    result is the same as one process's)."""
    ranges = _bounds(connection, total, processes) if processes > 1 else [(0, None)]
    share = len(ranges)

    def tick(done: int) -> None:
        if progress is not None:
            progress(min(total, done * share), total)

    if len(ranges) == 1:
        parts = [
            _replay_range(
                connection, sides, low=0, high=None, progress=tick, chunk=chunk, outcome=outcome
            )
        ]
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        contracts = [side.contract for side in sides]
        with ProcessPoolExecutor(
            max_workers=len(ranges) - 1, mp_context=multiprocessing.get_context("spawn")
        ) as pool:
            futures = [
                pool.submit(_replay_part, ctx.settings, contracts, low, high, chunk, outcome)
                for low, high in ranges[1:]
            ]
            low, high = ranges[0]
            first = _replay_range(
                connection, sides, low=low, high=high, progress=tick, chunk=chunk, outcome=outcome
            )
            parts = [first] + [future.result() for future in futures]
    counts = parts[0].counts
    for side, tally in zip(sides, parts[0].tallies, strict=True):
        side.tally = tally
    for part in parts[1:]:
        for name in ("leads", "won", "accepted", "qualified", "rejected"):
            counts[name] += part.counts[name]
        if part.counts["first"] is not None:
            if counts["first"] is None or part.counts["first"] < counts["first"]:
                counts["first"] = part.counts["first"]
            if counts["last"] is None or part.counts["last"] > counts["last"]:
                counts["last"] = part.counts["last"]
        for side, tally in zip(sides, part.tallies, strict=True):
            side.tally.merge(tally)
    if progress is not None:
        progress(counts["leads"], total)
    return counts
