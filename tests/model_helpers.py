"""A tiny learned model for tests: synthetic feature rows with a known signal, a model
trained on them, and that model stored as a version in ``lead_models``.

The rows use the names :func:`baton.services.model_store.feature_rows_in` builds for
leads captured in tests (``source``, ``country``, ``title.executive``,
``email.free_mail``, ``events.page_view``), so the stored model scores real leads:
a lead from a ``webinar`` with an executive title and page views gets a higher
probability than a free-mail lead from ``ads`` without any.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import select

from baton.learn.features import FeatureRow, FeatureSpec
from baton.learn.model import Evaluation, LeadModel, ModelKind, evaluate, stratified_holdout, train
from baton.services.context import Context
from baton.services.models import store_model_in
from baton.store.bulk import insert_activities, insert_rows
from baton.store.tables import handoffs, leads

TINY_SPEC = FeatureSpec(
    fields=("source", "country", "title"),
    attributes=(),
    event_types=("page_view",),
)
"""The feature spec the tiny model is stored with."""

SOURCES = ("webinar", "ads", "referral", "organic")
COUNTRIES = ("us", "de", "fr")


def synthetic_examples(n: int = 300, *, seed: int = 11) -> tuple[list[FeatureRow], list[int]]:
    """``n`` feature rows and their 0/1 outcomes; the same on every call with ``seed``.

    The signal: ``source = webinar`` (+1.6 log-odds), an executive title (+1.2), page
    views (+0.9 per log-count), free mail (-1.0), on a base of -1.2."""
    rng = np.random.default_rng(seed)
    rows: list[FeatureRow] = []
    labels: list[int] = []
    for _ in range(n):
        row: FeatureRow = {
            "source": SOURCES[int(rng.integers(len(SOURCES)))],
            "country": COUNTRIES[int(rng.integers(len(COUNTRIES)))],
        }
        executive = rng.random() < 0.3
        free_mail = rng.random() < 0.4
        views = int(rng.integers(0, 6))
        if executive:
            row["title.executive"] = 1.0
        row["email.free_mail" if free_mail else "email.corporate"] = 1.0
        if views:
            row["events.page_view"] = math.log1p(views)
        logit = (
            -1.2
            + 1.6 * (row["source"] == "webinar")
            + 1.2 * executive
            + 0.9 * math.log1p(views)
            - 1.0 * free_mail
        )
        labels.append(int(rng.random() < 1.0 / (1.0 + math.exp(-logit))))
        rows.append(row)
    return rows, labels


def train_tiny(
    kind: ModelKind = "logistic_regression", *, n: int = 300, seed: int = 11
) -> tuple[LeadModel, Evaluation]:
    """A model of ``kind`` fitted on 70 % of :func:`synthetic_examples` and its
    evaluation on the other 30 %."""
    rows, labels = synthetic_examples(n, seed=seed)
    held = stratified_holdout(labels, share=0.3)
    fit_rows = [r for r, h in zip(rows, held, strict=True) if not h]
    fit_labels = [y for y, h in zip(labels, held, strict=True) if not h]
    test_rows = [r for r, h in zip(rows, held, strict=True) if h]
    test_labels = [y for y, h in zip(labels, held, strict=True) if h]
    model = train(kind, TINY_SPEC, fit_rows, fit_labels)
    return model, evaluate(model, test_rows, test_labels)


def store_tiny_model(
    ctx: Context,
    *,
    kind: ModelKind = "logistic_regression",
    status: str = "active",
    target: str = "won",
    name: str = "tiny test model",
    created_by: str = "test",
) -> int:
    """Train a tiny model and store it as the next version (``active`` unless told;
    any other active version is left as it is); returns its version number."""
    model, evaluation = train_tiny(kind)
    with ctx.write() as connection:
        return store_model_in(
            connection,
            model,
            name=name,
            target=target,
            evaluation=evaluation,
            trained_on={
                "rows": 300,
                "positives": evaluation.positives,
                "target": target,
                "split": "stratified",
                "holdout": 0.3,
                "synthetic": True,
            },
            created_by=created_by,
            now=ctx.clock.now(),
            status=status,
        )


# --- a small synthetic history in the database -------------------------------------------

HISTORY_START = datetime(2025, 6, 2, 9, 0, tzinfo=UTC)
"""The first lead of :func:`write_history` is created then (the test clock starts
2026-03-02, so every handoff is more than 90 days old)."""
REASONS = ("no_budget", "wrong_fit")


@dataclass(frozen=True)
class History:
    """What :func:`write_history` wrote: lead ids with their handoff moment and outcome
    (1 won, 0 lost, None still in play), and the accepted/rejected verdicts."""

    lead_ids: list[int]
    mql_at: dict[int, datetime]
    won: dict[int, int | None]
    verdicts: dict[int, str]


def write_history(
    ctx: Context,
    n: int = 240,
    *,
    seed: int = 5,
    in_play: int = 10,
    days: int = 120,
    timed: bool = True,
    converted: bool = False,
) -> History:
    """``n`` handed-off leads written as Baton stores them (leads with milestones,
    page views before the handoff, handoffs with sales' verdicts), the signal as in
    :func:`synthetic_examples`. Leads are created over ``days`` days (all at one
    moment unless ``timed``); the last ``in_play`` are handed off a week before the
    test clock's start, with no outcome yet. With ``converted`` each lead also gets an
    ``attributes.converted`` column ("1"/"0"; the in-play ones blank)."""
    rng = np.random.default_rng(seed)
    now = ctx.clock.now()
    lead_rows: list[dict[str, Any]] = []
    plan: list[tuple[datetime, int, int | None, int]] = []
    for i in range(n):
        created = HISTORY_START + (timedelta(days=days * i / n) if timed else timedelta(0))
        playing = i >= n - in_play
        if playing:
            created = now - timedelta(days=8)
        mql = created + timedelta(days=1)
        source = SOURCES[int(rng.integers(len(SOURCES)))]
        executive = bool(rng.random() < 0.3)
        free_mail = bool(rng.random() < 0.4)
        views = int(rng.integers(0, 6))
        logit = -1.6 + 2.6 * (source == "webinar") + 2.0 * executive + 1.2 * math.log1p(views)
        logit -= 1.5 * free_mail
        won: int | None = None if playing else int(rng.random() < 1 / (1 + math.exp(-logit)))
        domain = "gmail.com" if free_mail else f"c{i}.example.com"
        email = f"s{seed}.lead{i}@{domain}"
        stage = "mql" if won is None else "customer" if won else "lost"
        reached = 1 | (2 | 4 | 8 | 16 if won else 0) | (128 if won == 0 else 0)
        attributes: dict[str, Any] = {"company_size": str(int(rng.integers(1, 500)))}
        if converted:
            attributes["converted"] = "" if won is None else str(won)
        lead_rows.append(
            {
                "email": email,
                "email_key": email,
                "email_domain": domain,
                "title": "CEO" if executive else "Analyst",
                "country": COUNTRIES[int(rng.integers(len(COUNTRIES)))].upper(),
                "source": source,
                "attributes": attributes,
                "stage": stage,
                "stage_changed_at": mql,
                "created_at": created,
                "updated_at": mql,
                "activity_count": views,
                "reached_stages": reached,
                "mql_at": mql,
                "sal_at": mql + timedelta(days=2) if won else None,
                "customer_at": mql + timedelta(days=30) if won else None,
                "handoff_outcomes": 0 if won is None or won else 1,
            }
        )
        plan.append((mql, views, won, i))
    with ctx.write() as connection:
        insert_rows(connection, leads, lead_rows)
        ids = {
            str(email): int(lead_id)
            for lead_id, email in connection.execute(select(leads.c.id, leads.c.email))
        }
        lead_ids = [ids[r["email"]] for r in lead_rows]
        events: list[dict[str, Any]] = []
        handoff_rows: list[dict[str, Any]] = []
        verdicts: dict[int, str] = {}
        for lead_id, (mql, views, won, i) in zip(lead_ids, plan, strict=True):
            for k in range(views):
                at = mql - timedelta(hours=3 + 5 * k)
                events.append(_event(lead_id, "page_view", at))
            if won is None:
                continue
            verdict = "accepted" if won else REASONS[i % 2]
            verdicts[lead_id] = verdict
            handoff_rows.append(
                {
                    "lead_id": lead_id,
                    "status": "won" if won else "rejected",
                    "mql_at": mql,
                    "created_at": mql,
                    "accepted_at": mql + timedelta(days=2) if won else None,
                    "closed_at": mql + timedelta(days=2),
                    "outcome": "won" if won else "disqualify",
                    "rejection_code": None if won else verdict,
                    "routing": {},
                }
            )
        insert_activities(connection, events)
        insert_rows(connection, handoffs, handoff_rows)
    return History(
        lead_ids=lead_ids,
        mql_at={lead_id: p[0] for lead_id, p in zip(lead_ids, plan, strict=True)},
        won={lead_id: p[2] for lead_id, p in zip(lead_ids, plan, strict=True)},
        verdicts=verdicts,
    )


def _event(lead_id: int, kind: str, at: datetime) -> dict[str, Any]:
    return {
        "lead_id": lead_id,
        "type": kind,
        "occurred_at": at,
        "received_at": at,
        "properties": {},
        "idempotency_key": None,
        "recorded_by": "test",
    }


def plant_after_handoff(
    ctx: Context, history: History, *, kind: str = "meeting_booked", per_lead: int = 5
) -> int:
    """The leakage trap: ``per_lead`` ``kind`` events the day after the handoff, on the
    winners only (a perfect predictor, were it read); returns how many were written."""
    rows = [
        _event(lead_id, kind, history.mql_at[lead_id] + timedelta(days=1, minutes=k))
        for lead_id, won in history.won.items()
        if won
        for k in range(per_lead)
    ]
    with ctx.write() as connection:
        insert_activities(connection, rows)
    return len(rows)
