"""Suggest a contract: the points the history says the existing rules are worth.

Takes a contract (the active version, a stored version, or a draft's text), builds one
row per example lead with each rule's value as of the lead's moment (the real scoring
code: :func:`baton.learn.suggest.rule_rows`), fits the points on the outcomes
(:func:`baton.learn.suggest.suggest_points`) and returns the draft YAML with the new
numbers, the per-rule report and, with ``save``, the stored draft version (through
:func:`baton.services.contracts.create_contract`, so the same rules and signatures apply).

The MQL volume the suggested threshold keeps is counted as the backtest counts it, over
every recorded lead (not only those with an outcome): both contracts are replayed by
the backtest's own replay (:mod:`baton.services.backtest`), the original at its own
threshold, and the suggested threshold is the whole number whose count of leads with a
peak total (while the MQL rule's other conditions held) at or above it comes closest
(:func:`baton.learn.suggest.match_volume`); a backtest of the suggested YAML gives the
same count. When no threshold can (0 is the lowest), the report says so.

Examples and their moment are those of learned scoring: won/lost, sales' verdicts
(accepted vs rejected) or an imported outcome column (``attributes.KEY``); the moment is
the lead's first handoff (``mql_at``) or else its capture (``created_at``), and nothing
recorded after it is read.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from baton.domain.access import Action, Principal
from baton.domain.contract import HandoffContract
from baton.domain.errors import FieldProblem, NotFound, ValidationFailed
from baton.domain.scoring import Event, relevant_event_types
from baton.learn.model import NotEnoughOutcomes
from baton.learn.suggest import (
    Suggestion,
    VolumeMatch,
    match_volume,
    rename,
    rule_rows,
    suggest_points,
    suggested_name,
    suggested_yaml,
    threshold_choice,
    totals,
)
from baton.services.access import allowed
from baton.services.context import Context
from baton.services.contract_rules import active_contract_in, rules_of
from baton.services.contracts import ContractVersion, check_contract, create_contract
from baton.services.models import STALE_DAYS, check_target, examples_in
from baton.services.queries import chunks
from baton.store.bulk import read_datetime, sqlite_datetime
from baton.store.tables import contracts, leads

OUTCOME_HELP = (
    "a won lead reached customer; a lost or disqualified one, or one handed off more than "
    f"{STALE_DAYS} days ago and not won, is a loss",
    "sales accepted or rejected none of the handed-off leads",
)

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class History:
    """The example leads of a target, with their rule rows (for the service and the
    real-data evaluation, which splits them)."""

    lead_ids: list[int]
    leads: list[dict[str, Any]]
    moments: list[datetime]
    labels: list[int]
    rows: np.ndarray


@dataclass(frozen=True)
class SuggestedContract:
    """What :func:`suggest_contract` returns: the suggestion, its YAML, the contract it
    started from (``source``: "version N" or "file") and the stored draft with ``save``."""

    suggestion: Suggestion
    body: str
    source: str
    target: str
    saved: ContractVersion | None = None


def history_in(
    connection: Connection,
    contract: HandoffContract,
    target: str,
    now: datetime,
    *,
    progress: Progress | None = None,
) -> History:
    """Every example lead of ``target`` (not merged; the examples, labels and moments
    of learned scoring: :func:`baton.services.models.examples_in`), with its rule row.
    An ``attributes.KEY`` target is removed from the leads' attributes: it is the
    label, never a rule's input."""
    check_target(target)
    examples = examples_in(connection, target, now)
    label_of = dict(zip(examples.ids, examples.labels, strict=True))
    moment_of = dict(zip(examples.ids, examples.moments, strict=True))
    chosen: list[dict[str, Any]] = []
    for part in chunks(sorted(label_of)):
        for raw in connection.execute(select(leads).where(leads.c.id.in_(part))).mappings():
            lead = dict(raw)
            lead["created_at"] = read_datetime(lead["created_at"])
            lead["_label"] = label_of[int(lead["id"])]
            chosen.append(lead)
    chosen.sort(key=lambda lead: int(lead["id"]))
    if target.startswith("attributes."):
        key = target.removeprefix("attributes.")
        for lead in chosen:
            lead["attributes"] = {k: v for k, v in (lead["attributes"] or {}).items() if k != key}
    moments = [read_datetime(moment_of[int(lead["id"])]) for lead in chosen]
    events: dict[int, list[Event]] = {}
    kinds = sorted(relevant_event_types(contract))
    if kinds and chosen:
        postgres = connection.dialect.name == "postgresql"
        mark = "%s" if postgres else "?"
        by_id = {lead["id"]: moment for lead, moment in zip(chosen, moments, strict=True)}
        ids = sorted(by_id)
        done = 0
        for part in chunks(ids):
            latest = max(by_id[i] for i in part)
            query = (
                "SELECT lead_id, type, occurred_at, properties FROM activities WHERE lead_id IN "
                f"({', '.join([mark] * len(part))}) AND type IN "
                f"({', '.join([mark] * len(kinds))}) AND occurred_at <= {mark}"
            )
            for lead_id, kind, at, properties in connection.exec_driver_sql(
                query, (*part, *kinds, latest if postgres else sqlite_datetime(latest))
            ):
                moment = read_datetime(at)
                if moment <= by_id[int(lead_id)]:
                    if isinstance(properties, str):
                        properties = json.loads(properties)
                    events.setdefault(int(lead_id), []).append(
                        Event(str(kind), moment, properties or {})
                    )
            done += len(part)
            if progress:
                progress("reading activities", done, len(ids))
    rows = rule_rows(contract, chosen, [events.get(lead["id"], []) for lead in chosen], moments)
    return History(
        lead_ids=[int(lead["id"]) for lead in chosen],
        leads=chosen,
        moments=moments,
        labels=[int(lead["_label"]) for lead in chosen],
        rows=rows,
    )


def _contract_in(
    connection: Connection, version: int | None, body: str | None
) -> tuple[str, HandoffContract, str]:
    if body is not None:
        return body, check_contract(body), "file"
    if version is not None:
        row = connection.execute(
            select(contracts.c.body, contracts.c.spec).where(contracts.c.version == version)
        ).first()
        if row is None:
            raise NotFound(f"contract version {version} does not exist")
        return str(row[0]), rules_of(row[1]), f"version {version}"
    active = active_contract_in(connection, share_lock=False)
    if active is None:
        message = "no contract is active yet: give a contract file or a stored version"
        raise ValidationFailed(message, [FieldProblem("version", message)])
    stored = connection.execute(
        select(contracts.c.body).where(contracts.c.version == active[0])
    ).scalar_one()
    return str(stored), active[1], f"version {active[0]}"


def suggest_contract(
    ctx: Context,
    *,
    actor: Principal,
    target: str = "won",
    version: int | None = None,
    body: str | None = None,
    save: bool = False,
    progress: Progress | None = None,
) -> SuggestedContract:
    """Suggest points for the rules of ``body`` (a draft's text), stored ``version`` or
    the active contract, from the outcomes of ``target``. With ``save`` the suggestion
    is stored as a new draft version (it needs both signatures like any other)."""
    allowed(actor, Action.TRAIN_MODEL)
    check_target(target)
    now = ctx.clock.now()
    with ctx.read() as connection:
        text, contract, source = _contract_in(connection, version, body)
        if not contract.scoring.fit and not contract.scoring.engagement:
            message = "the contract has no fit or engagement rules to suggest points for"
            raise ValidationFailed(message, [FieldProblem("scoring", message)])
        history = history_in(connection, contract, target, now, progress=progress)
    if not history.labels:
        message = f"no lead in the history has a '{target}' outcome yet: {OUTCOME_HELP[0]}"
        if target.startswith("attributes."):
            message = f"no lead in the history has a value in {target} (1/0, yes/no, true/false)"
        elif target == "accepted":
            message = f"no lead in the history has a '{target}' outcome yet: {OUTCOME_HELP[1]}"
        raise ValidationFailed(message, [FieldProblem("target", message)])
    try:
        suggestion = suggest_points(contract, history.rows, history.labels)
    except NotEnoughOutcomes as exc:
        raise ValidationFailed(str(exc), [FieldProblem("target", str(exc))]) from None
    day = now.date().isoformat()
    named = rename(text, suggested_name(contract.name, day))
    points_only = check_contract(
        suggested_yaml(
            named, suggestion, outcomes=target, day=day, threshold=contract.mql.threshold
        )
    )
    match = volume_in(ctx, contract, points_only, progress=progress)
    y = np.asarray(history.labels, dtype=int)
    suggestion = replace(
        suggestion,
        volume=threshold_choice(
            totals([r.suggested for r in suggestion.rules], history.rows), y, match.threshold
        ),
        volume_match=match,
    )
    suggested = suggested_yaml(named, suggestion, outcomes=target, day=day)
    check_contract(suggested)
    saved = create_contract(ctx, suggested, actor=actor) if save else None
    return SuggestedContract(suggestion, suggested, source, target, saved)


def volume_in(
    ctx: Context,
    original: HandoffContract,
    suggested: HandoffContract,
    *,
    progress: Progress | None = None,
) -> VolumeMatch:
    """Replay every recorded lead through ``original`` and ``suggested`` with the
    backtest's replay, and the threshold keeping the original's MQL volume (see the
    module docstring)."""
    from baton.services.backtest import CHUNK, ReplaySide, replay_all

    def advance(done: int, total: int) -> None:
        if progress is not None:
            progress("counting MQLs as the backtest does", done, total)

    with ctx.read() as connection:
        total = connection.execute(
            select(func.count()).select_from(leads).where(leads.c.merged_into_id.is_(None))
        ).scalar_one()
        sides = [ReplaySide(connection, original), ReplaySide(connection, suggested)]
        replay_all(
            ctx, connection, sides, total=int(total), progress=advance, chunk=CHUNK, processes=1
        )
    return match_volume(
        sides[1].tally.eligible, sides[0].tally.mqls, old_threshold=original.mql.threshold
    )


def rows_for(history: History, which: Sequence[bool]) -> tuple[np.ndarray, list[int]]:
    """The rule rows and labels of the examples picked by ``which`` (a hold-out mask)."""
    mask = np.asarray(which, dtype=bool)
    return history.rows[mask], [y for y, keep in zip(history.labels, which, strict=True) if keep]
