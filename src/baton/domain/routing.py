"""Routing: which rep gets an MQL, and why every other rep did not.

A decision is a pure function of the contract's ``routing`` section, the lead, its
score, the reps (with their schedules and current load), and the rotation state of
each pool. The service layer loads those, calls :func:`route_lead` and stores the
:class:`RoutingDecision` on the handoff, so that "why did Ana get this lead and not
Ben?" always has a written answer.

Fairness. Every pool keeps a weighted-fair rotation (WF2Q+): each rep has a
``pass`` (how far through the rotation they are) and the pool a ``virtual`` time (the
lowest pass among the reps who could take leads at the last decision). Among reps whose
pass has reached the virtual time, the one who would finish first (pass + 1/weight)
gets the lead; round robin is the case where every weight is 1. A rep who was away
(out of office, out of hours, at capacity) is moved forward by the virtual time that
passed without them, so they come back exactly as far ahead or behind as they left:
time away earns no backlog, and reps who return together stay within one lead of each
other. Reps excluded from one decision (they already had the lead) keep their place.
Ties are broken by a hash of lead and rep, never by who was created first.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from baton.domain.business_hours import Schedule, is_working
from baton.domain.contract import LEAD_FIELDS, HandoffContract, Pool, RoutingRule
from baton.domain.scoring import condition_holds, field_value

RepStatus = Literal["available", "away"]

ROUTED_FIELDS: tuple[str, ...] = ("id", *LEAD_FIELDS, "attributes")
"""Every lead column a decision may read: the id, the fields a contract's conditions may
test (:data:`~baton.domain.contract.LEAD_FIELDS`, ``attributes.<key>``), which include
what the territory and segment checks read. A caller that reads a lead only to route
it reads these, not the whole row: about half its columns, and each result column
costs the driver's and SQLAlchemy's work on every hand-raise."""


@dataclass(frozen=True)
class Rep:
    """What routing needs to know about a sales rep."""

    id: int
    email: str
    name: str
    schedule: Schedule
    team: str | None = None
    tags: frozenset[str] = frozenset()
    status: RepStatus = "available"
    capacity: int = 20
    weight: float = 1.0
    countries: frozenset[str] = frozenset()
    regions: frozenset[str] = frozenset()
    postal_prefixes: tuple[str, ...] = ()
    segments: frozenset[str] = frozenset()
    manager_email: str | None = None
    active: bool = True
    hours_key: tuple[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Reps on the same schedule share one working-hours answer per decision.
        canonical = _CANONICAL_HOURS.setdefault(self.schedule.hours, self.schedule.hours)
        object.__setattr__(self, "hours_key", (self.schedule.timezone, id(canonical)))


_CANONICAL_HOURS: dict[Any, Any] = {}


@dataclass(frozen=True)
class Skip:
    """A rep of the pool who could not take the lead, and why."""

    rep_id: int
    rep: str
    reason: str


@dataclass(frozen=True)
class RoutingDecision:
    """The outcome: the chosen rep (``None``: the handoff waits in the unassigned
    queue), the rule that matched, and the reasons every other candidate was passed
    over. ``pool_key`` names the rotation the choice advanced."""

    rep_id: int | None
    reason: str
    rule: str | None = None
    strategy: str | None = None
    pool_key: str | None = None
    account_owner: bool = False
    skipped: tuple[Skip, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "rep_id": self.rep_id,
            "reason": self.reason,
            "rule": self.rule,
            "strategy": self.strategy,
            "pool": self.pool_key,
            "account_owner": self.account_owner,
            "skipped": [
                {"rep_id": s.rep_id, "rep": s.rep, "reason": s.reason} for s in self.skipped
            ],
        }


WAITING_REASONS_SHOWN = 3
"""Distinct reasons a queue line names before "..." (a large pool's reasons are all in
``baton handoff show``)."""


def waiting_reason(routing: Mapping[str, Any]) -> str:
    """Why a queued handoff waits, in one line: routing's reason with why its pool's
    reps were passed over (``nobody in team na is available: at capacity (50/50 open
    handoffs)``). The reason alone said "nobody is available" of two reps working
    around the clock who were full (a newcomer's trial). A reason all the passed-over
    reps share is said once; else each with how many reps it held back, the commonest
    first."""
    reason = str(routing.get("reason") or "")
    skips = routing.get("skipped") or []
    counts: dict[str, int] = {}
    for skip in skips:
        why = skip.get("reason") if isinstance(skip, Mapping) else None
        if why:
            counts[str(why)] = counts.get(str(why), 0) + 1
    if not counts:
        return reason
    if len(counts) == 1:
        return f"{reason}: {next(iter(counts))}"
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    said = [f"{n} {why}" for why, n in ranked[:WAITING_REASONS_SHOWN]]
    more = ", ..." if len(ranked) > WAITING_REASONS_SHOWN else ""
    return f"{reason}: {', '.join(said)}{more}"


@dataclass
class Rotation:
    """One pool's stride state: each rep's pass, the pool's virtual time, and the
    virtual time at which each rep was last eligible (to carry their lead or lag over
    an absence)."""

    virtual: float = 0.0
    passes: dict[int, float] = field(default_factory=dict)
    seen: dict[int, float] = field(default_factory=dict)


def pool_key(pool: Pool) -> str:
    """The rotation a pool uses. Keyed by who is in the pool (not by rule name), so
    two rules sending leads to one team share one fair rotation and renaming a rule
    keeps its history."""
    if pool.team is not None:
        return f"team:{pool.team}"
    if pool.tag is not None:
        return f"tag:{pool.tag}"
    return "reps:" + ",".join(sorted(pool.reps or ()))


def members(pool: Pool, reps: Sequence[Rep]) -> list[Rep]:
    """The active reps a pool names, in id order."""
    if pool.team is not None:
        chosen = [r for r in reps if r.team == pool.team]
    elif pool.tag is not None:
        chosen = [r for r in reps if pool.tag in r.tags]
    else:
        wanted = set(pool.reps or ())
        chosen = [r for r in reps if r.email in wanted]
    return sorted((r for r in chosen if r.active), key=lambda r: r.id)


def rule_matches(
    rule: RoutingRule,
    contract: HandoffContract,
    lead: Mapping[str, Any],
    *,
    total: float | None,
    grade: str | None,
) -> bool:
    """Whether every condition of ``rule`` holds for the lead and its score."""
    if rule.min_score is not None and (total is None or total < rule.min_score):
        return False
    if rule.max_score is not None and (total is None or total > rule.max_score):
        return False
    if rule.grades is not None and grade not in rule.grades:
        return False
    return all(condition_holds(c, lead, contract) for c in rule.when)


def first_rule(
    contract: HandoffContract,
    lead: Mapping[str, Any],
    *,
    total: float | None,
    grade: str | None,
) -> RoutingRule | None:
    """The rule :func:`route_lead` routes ``lead`` by when its account owner cannot take
    it: the first whose conditions hold. Known before any rep or rotation is read, so a
    caller can lock that rule's pool (and only it) before deciding."""
    return next(
        (
            r
            for r in contract.routing.rules
            if rule_matches(r, contract, lead, total=total, grade=grade)
        ),
        None,
    )


def _covers_territory(rep: Rep, lead: Mapping[str, Any]) -> str | None:
    if not (rep.countries or rep.regions or rep.postal_prefixes):
        return None
    country = str(field_value(lead, "country") or "").upper()
    region = str(field_value(lead, "region") or "").upper()
    postal = str(field_value(lead, "postal_code") or "").replace(" ", "").upper()
    if country and country in rep.countries:
        return None
    if region and region in {r.upper() for r in rep.regions}:
        return None
    if postal and any(postal.startswith(p.replace(" ", "").upper()) for p in rep.postal_prefixes):
        return None
    where = ", ".join(x for x in (country, region, postal) if x) or "unknown"
    return f"outside territory (lead: {where})"


def _covers_segment(rep: Rep, lead: Mapping[str, Any]) -> str | None:
    if not rep.segments:
        return None
    wanted = {
        str(v).lower()
        for v in (field_value(lead, "attributes.segment"), field_value(lead, "attributes.product"))
        if v is not None
    }
    if wanted & rep.segments:
        return None
    return f"does not cover segment {', '.join(sorted(wanted)) or '(none given)'}"


def unavailable_reason(
    rep: Rep,
    lead: Mapping[str, Any],
    now: datetime,
    open_handoffs: int,
    hours_memo: dict[tuple[str, int], bool] | None = None,
) -> str | None:
    """Why ``rep`` cannot take ``lead`` at ``now`` (``None``: they can). Checked in the
    order a manager would ask: away, out of office or hours, full, wrong patch.
    ``hours_memo`` shares working-hours answers between reps on the same schedule
    within one decision."""
    if not rep.active:
        return "deactivated"
    if rep.status == "away":
        return "status away"
    schedule = rep.schedule
    if schedule.absences and any(a.start <= now < a.end for a in schedule.absences):
        return "out of office"
    key = rep.hours_key
    working = hours_memo.get(key) if hours_memo is not None else None
    if working is None:
        working = is_working(schedule, now)
        if hours_memo is not None and not schedule.absences:
            hours_memo[key] = working
    if not working:
        return f"outside working hours ({schedule.timezone})"
    if open_handoffs >= rep.capacity:
        return f"at capacity ({open_handoffs}/{rep.capacity} open handoffs)"
    return _covers_territory(rep, lead) or _covers_segment(rep, lead)


@dataclass(frozen=True)
class ManualCheck:
    """What stands between a rep and a queued handoff a manager gives them by name.

    ``refused``: deactivated or at capacity; never overridden (capacity is the promise
    to the rep that keeps the SLA achievable). ``unavailable``: away, out of office or
    outside working hours; a manager may assign anyway with a reason, which is
    recorded. ``uncovered``: outside the rep's territory or segments; naming the rep
    is the manager's choice, so it is only noted."""

    refused: str | None = None
    unavailable: str | None = None
    uncovered: str | None = None


def manual_assignment_check(
    rep: Rep, lead: Mapping[str, Any], now: datetime, open_handoffs: int
) -> ManualCheck:
    """The checks of a manager's assignment of ``lead`` to ``rep`` at ``now`` (see
    :class:`ManualCheck`); the same facts routing reads, sorted by who may set them
    aside."""
    if not rep.active:
        return ManualCheck(refused="deactivated")
    if open_handoffs >= rep.capacity:
        return ManualCheck(refused=f"at capacity ({open_handoffs}/{rep.capacity} open handoffs)")
    off = _off_now(rep, now)
    return ManualCheck(
        unavailable=None if off is None else off[1],
        uncovered=_covers_territory(rep, lead) or _covers_segment(rep, lead),
    )


Availability = Literal["in hours", "outside hours", "away", "out of office", "full", "inactive"]
"""A rep's availability at a moment, as a manager asks it: deactivated, away (their
status), out of office, outside their working hours, at capacity, or in hours with room."""


def _off_now(rep: Rep, now: datetime) -> tuple[Availability, str] | None:
    """Why ``rep`` is not working at ``now`` (their status, an absence, their hours),
    as an :data:`Availability` and the words routing records; ``None``: they are."""
    if rep.status == "away":
        return "away", "status away"
    if any(a.start <= now < a.end for a in rep.schedule.absences):
        return "out of office", "out of office"
    if not is_working(rep.schedule, now):
        return "outside hours", f"outside working hours ({rep.schedule.timezone})"
    return None


def availability(rep: Rep, now: datetime, open_handoffs: int) -> Availability:
    """Whether ``rep`` can take a lead at ``now`` and, if not, the first reason in the
    order a manager asks (the same facts as :func:`unavailable_reason`, without a
    lead's territory): deactivated, away, out of office, outside hours, full."""
    if not rep.active:
        return "inactive"
    off = _off_now(rep, now)
    if off is not None:
        return off[0]
    return "full" if open_handoffs >= rep.capacity else "in hours"


def _tie(lead_id: int, rep_id: int) -> bytes:
    return hashlib.blake2b(f"{lead_id}:{rep_id}".encode(), digest_size=8).digest()


def pick(
    strategy: str,
    candidates: Sequence[Rep],
    *,
    rotation: Rotation,
    loads: Mapping[int, int],
    lead_id: int,
    bystanders: Sequence[Rep] = (),
) -> Rep:
    """Choose among eligible ``candidates`` (not empty) and advance ``rotation``.
    ``bystanders`` are available reps who may not take this particular lead (they
    already had it): they keep their place in the rotation, neither chosen nor treated
    as away.

    Weighted fair queueing (WF2Q+): among reps whose pass has reached the pool's
    virtual time, the one who would finish first (pass + 1/weight) gets the lead. A rep
    who was away is moved forward by the virtual time that passed without them, so
    they come back exactly as far ahead or behind as they left: no backlog, and reps
    who return together stay within one lead of each other."""
    virtual = rotation.virtual
    weighted = strategy == "weighted"
    starts: dict[int, float] = {}
    for rep in (*candidates, *bystanders):
        stored = rotation.passes.get(rep.id)
        seen = rotation.seen.get(rep.id)
        if stored is None:
            starts[rep.id] = virtual
        elif seen is None:
            starts[rep.id] = max(stored, virtual)
        else:
            starts[rep.id] = stored + max(0.0, virtual - seen)

    def share(rep: Rep) -> float:
        return 1.0 / max(rep.weight if weighted else 1.0, 1e-6)

    def order(rep: Rep) -> tuple[Any, ...]:
        start = starts[rep.id]
        fair = (round(start + share(rep), 9), round(start, 9), _tie(lead_id, rep.id))
        if strategy == "least_loaded":
            return (loads.get(rep.id, 0) / max(rep.capacity, 1), *fair)
        return fair

    ready = [r for r in candidates if starts[r.id] <= virtual + 1e-9] or list(candidates)
    chosen = min(ready if strategy != "least_loaded" else candidates, key=order)
    starts[chosen.id] += share(chosen)
    virtual = min(starts.values())
    rotation.virtual = virtual
    for rep in (*candidates, *bystanders):
        rotation.passes[rep.id] = starts[rep.id]
        rotation.seen[rep.id] = virtual
    return chosen


def route_lead(
    contract: HandoffContract,
    lead: Mapping[str, Any],
    *,
    lead_id: int,
    total: float | None,
    grade: str | None,
    reps: Sequence[Rep],
    loads: Mapping[int, int],
    rotations: MutableMapping[str, Rotation],
    now: datetime,
    account_owner_id: int | None = None,
    exclude: Collection[int] = (),
) -> RoutingDecision:
    """Decide who gets the lead now. ``rotations`` are updated in place for the pool
    that chose (the caller persists them); ``exclude`` are reps who already had this
    MQL (a reassignment never goes back to them)."""
    memo: dict[tuple[str, int], bool] = {}
    if contract.routing.account_matching and account_owner_id is not None:
        owner = next((r for r in reps if r.id == account_owner_id), None)
        if owner is not None and owner.id not in exclude:
            why = unavailable_reason(owner, lead, now, loads.get(owner.id, 0), memo)
            if why is None:
                return RoutingDecision(owner.id, f"account owner {owner.email}", account_owner=True)
            skipped_owner: tuple[Skip, ...] = (
                Skip(owner.id, owner.email, f"account owner, {why}"),
            )
        else:
            skipped_owner = ()
    else:
        skipped_owner = ()
    for rule in contract.routing.rules:
        if not rule_matches(rule, contract, lead, total=total, grade=grade):
            continue
        key = pool_key(rule.pool)
        skipped = list(skipped_owner)
        eligible: list[Rep] = []
        bystanders: list[Rep] = []
        for rep in members(rule.pool, reps):
            if rep.id in exclude:
                skipped.append(Skip(rep.id, rep.email, "already had this lead"))
                if unavailable_reason(rep, lead, now, loads.get(rep.id, 0), memo) is None:
                    bystanders.append(rep)
                continue
            why = unavailable_reason(rep, lead, now, loads.get(rep.id, 0), memo)
            if why is None:
                eligible.append(rep)
            else:
                skipped.append(Skip(rep.id, rep.email, why))
        if not eligible:
            reason = (
                f"nobody in {rule.pool.describe()} is available"
                if skipped
                else f"{rule.pool.describe()} has no reps"
            )
            return RoutingDecision(
                None, reason, rule.name, rule.strategy, key, skipped=tuple(skipped)
            )
        rotation = rotations.setdefault(key, Rotation())
        chosen = pick(
            rule.strategy,
            eligible,
            rotation=rotation,
            loads=loads,
            lead_id=lead_id,
            bystanders=bystanders,
        )
        return RoutingDecision(
            chosen.id,
            f"rule {rule.name}: {rule.strategy} in {rule.pool.describe()}",
            rule.name,
            rule.strategy,
            key,
            skipped=tuple(skipped),
        )
    return RoutingDecision(
        None,
        "no routing rule matches this lead" if contract.routing.rules else "no routing rules",
        skipped=skipped_owner,
    )
