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
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.engine import Connection

from baton.domain.access import Action, Principal
from baton.domain.backtest import (
    NOTES,
    Outcome,
    ProbabilityAt,
    SideReport,
    Tally,
    no_winner_warning,
    replay_lead,
    summarise,
)
from baton.domain.contract import HandoffContract
from baton.domain.errors import FieldProblem, NotFound, ValidationFailed
from baton.domain.scoring import Event, event_types_needing_properties, relevant_event_types
from baton.services.access import allowed
from baton.services.context import Context
from baton.services.contract_rules import active_contract_in, rules_of
from baton.services.contracts import check_contract, problem_lines
from baton.services.scoring import SCORED_COLUMNS
from baton.store.bulk import read_datetime
from baton.store.tables import contracts, handoffs, leads, transitions

CHUNK = 5000
"""Leads per id range read at once."""
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
        }


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


class _Side:
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
) -> BacktestReport:
    """Replay the history through ``draft`` (YAML text, or a stored version's number)
    and ``against`` (a stored version; by default the active one, if any and not the
    draft itself). Raises :class:`ValidationFailed` for an invalid draft (each problem
    with its line) and for an empty history, :class:`NotFound` for a missing version."""
    allowed(actor, Action.RUN_BACKTEST)
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
        sides = [_Side(connection, rules)] + ([_Side(connection, other)] if other else [])
        counts = _replay_all(connection, sides, total=int(total), progress=progress, chunk=chunk)
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
    )


_LEAD_NAMES = [c.name for c in SCORED_COLUMNS] + ["created_at", "sal_at", "sql_at", "customer_at"]


def _lead_rows(connection: Connection, after: int, chunk: int) -> list[dict[str, Any]]:
    postgres = connection.dialect.name == "postgresql"
    mark = "%s" if postgres else "?"
    rows = connection.exec_driver_sql(
        f"SELECT {', '.join(_LEAD_NAMES)} FROM leads WHERE id > {mark}"
        f" AND merged_into_id IS NULL ORDER BY id LIMIT {int(chunk)}",
        (after,),
    ).fetchall()
    found: list[dict[str, Any]] = []
    for values in rows:
        row = dict(zip(_LEAD_NAMES, values, strict=True))
        if isinstance(row["attributes"], str):
            row["attributes"] = json.loads(row["attributes"])
        for name in ("created_at", "stage_changed_at", "updated_at"):
            row[name] = read_datetime(row[name])
        for name in ("sal_at", "sql_at", "customer_at"):
            if row[name] is not None:
                row[name] = read_datetime(row[name])
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


def _activities(
    connection: Connection,
    first: int,
    last: int,
    kinds: set[str] | None,
    with_props: set[str],
) -> Iterator[tuple[int, list[Event], datetime | None]]:
    """Per lead of ``first..last`` with activities: its events of ``kinds`` (all when
    None) in time order, and its first activity of any type."""
    postgres = connection.dialect.name == "postgresql"
    mark = "%s" if postgres else "?"
    rows = connection.exec_driver_sql(
        "SELECT lead_id, type, occurred_at, properties FROM activities"
        f" WHERE lead_id >= {mark} AND lead_id <= {mark} ORDER BY lead_id, occurred_at, id",
        (first, last),
    ).fetchall()
    current: int | None = None
    events: list[Event] = []
    earliest: datetime | None = None
    empty: dict[str, Any] = {}
    decoded: dict[str, dict[str, Any]] = {}
    for lead_id, kind, at, props in rows:
        if lead_id != current:
            if current is not None:
                yield current, events, earliest
            current, events, earliest = lead_id, [], None
        if earliest is None:
            earliest = _moment(at)
            if kinds is not None and kind not in kinds:
                continue
            moment = earliest
        elif kinds is not None and kind not in kinds:
            continue
        else:
            moment = _moment(at)
        if kind not in with_props:
            events.append(Event(kind, moment, empty))
        elif isinstance(props, str):
            # Properties repeat (the same pages): each distinct text is decoded once.
            found = decoded.get(props)
            if found is None:
                if len(decoded) > 50_000:
                    decoded.clear()
                found = decoded[props] = json.loads(props) or empty
            events.append(Event(kind, moment, found))
        else:
            events.append(Event(kind, moment, props or empty))
    if current is not None:
        yield current, events, earliest


def _replay_all(
    connection: Connection,
    sides: list[_Side],
    *,
    total: int,
    progress: Progress | None,
    chunk: int,
) -> dict[str, Any]:
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
    counts: dict[str, Any] = dict.fromkeys(("leads", "won", "accepted", "qualified", "rejected"), 0)
    counts["first"] = counts["last"] = None
    after = 0
    while True:
        people = _lead_rows(connection, after, chunk)
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
            won_at: datetime | None = lead["customer_at"]
            outcome = Outcome(
                won=won_at is not None,
                accepted=lead["sal_at"] is not None,
                qualified=lead["sql_at"] is not None,
                won_at=won_at,
                rejections=tuple(sorted(rejected.get(lead_id, ()))),
            )
            counts["leads"] += 1
            counts["won"] += outcome.won
            counts["accepted"] += outcome.accepted
            counts["qualified"] += outcome.qualified
            counts["rejected"] += bool(outcome.rejections)
            created: datetime = lead["created_at"]
            start = min(created, earliest) if earliest is not None else created
            end = events[-1].occurred_at if events else created
            if counts["first"] is None or start < counts["first"]:
                counts["first"] = start
            if counts["last"] is None or end > counts["last"]:
                counts["last"] = end
            for side in sides:
                replay = replay_lead(
                    side.contract,
                    lead_id,
                    lead,
                    created,
                    events,
                    until=won_at,
                    first_activity=earliest,
                    probability_at=side.probability_at(lead, events) if predicted else None,
                )
                side.tally.add(replay, outcome)
        if progress is not None:
            progress(counts["leads"], total)
    return counts
