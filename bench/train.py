"""Learned scoring: train on 100,000 handed-off leads through the use case.

Fills a fresh database with N handed-off leads with outcomes (won, lost, or still in
play) and their activities before and after the handoff (written in bulk: the set-up is
not measured), then trains a gradient boosting and a logistic regression model through
:func:`baton.services.models.train_model` (reading the outcomes, features as of each
handoff, the time split, fitting, the evaluation, storing the draft) and prints the
seconds each took. Target: under 60 s for 100,000 leads.

    python bench/train.py                          # 100,000 leads, SQLite
    python bench/train.py --leads 20000 --backend both
"""

from __future__ import annotations

import argparse
import math
import random
import time
from datetime import UTC, datetime, timedelta

from rich.console import Console
from rich.table import Table

from _common import BENCH, context, database, machine
from baton.services.models import train_model
from baton.store.bulk import insert_activities, insert_rows
from baton.store.tables import leads

SOURCES = ("webinar", "ads", "referral", "organic", "partner", "event")
COUNTRIES = ("US", "DE", "FR", "GB", "BR", "IN")
TITLES = ("VP Operations", "Data Analyst", "Student", "Head of Data", "CTO", "Consultant")
EVENTS = ("page_view", "email_click", "content_download", "webinar_attended", "email_open")
NOW = datetime(2026, 6, 1, tzinfo=UTC)


def fill(url: str, n_leads: int, events_per_lead: int) -> int:
    """Write the leads and their activities; returns how many activities."""
    ctx = context(url)
    rng = random.Random(3)
    batch = 20_000
    written = 0
    first = NOW - timedelta(days=540)
    with ctx.write() as connection:
        for start in range(0, n_leads, batch):
            rows = []
            plans = []
            for i in range(start, min(n_leads, start + batch)):
                created = first + timedelta(minutes=rng.randrange(0, 500 * 1440))
                mql = created + timedelta(hours=rng.randrange(1, 24 * 20))
                source = rng.choice(SOURCES)
                title = rng.choice(TITLES)
                views = rng.randrange(0, 2 * events_per_lead)
                employees = rng.choice((5, 40, 200, 1200, 9000))
                logit = (
                    -2.2
                    + 1.2 * (source == "webinar")
                    + 0.8 * (source == "referral")
                    + 1.0 * (title in ("VP Operations", "CTO", "Head of Data"))
                    + 0.35 * math.log1p(views)
                    + 0.3 * math.log10(employees)
                )
                playing = mql > NOW - timedelta(days=45) and rng.random() < 0.5
                won = None if playing else rng.random() < 1 / (1 + math.exp(-logit))
                email = f"p{i}@c{i % 9000}.example.com"
                rows.append(
                    {
                        "email": email,
                        "email_key": email,
                        "email_domain": f"c{i % 9000}.example.com",
                        "title": title,
                        "country": rng.choice(COUNTRIES),
                        "source": source,
                        "company": f"Company {i % 9000}",
                        "attributes": {"employees": employees, "industry": f"i{i % 17}"},
                        "stage": "mql" if won is None else "customer" if won else "lost",
                        "stage_changed_at": mql,
                        "created_at": created,
                        "updated_at": mql,
                        "activity_count": views,
                        "reached_stages": 1 | (30 if won else 0) | (128 if won is False else 0),
                        "mql_at": mql,
                        "customer_at": mql + timedelta(days=30) if won else None,
                    }
                )
                plans.append((mql, views, won))
            insert_rows(connection, leads, rows)
            ids = [
                int(r[0])
                for r in connection.exec_driver_sql(
                    "SELECT id FROM leads WHERE id > (SELECT COALESCE(MAX(id), 0) FROM leads) - "
                    f"{len(rows)} ORDER BY id"
                )
            ]
            activities = []
            for lead_id, (mql, views, won) in zip(ids, plans, strict=True):
                for k in range(views):
                    activities.append(
                        {
                            "lead_id": lead_id,
                            "type": EVENTS[k % len(EVENTS)],
                            "occurred_at": mql - timedelta(hours=1 + rng.randrange(0, 24 * 60)),
                            "received_at": mql,
                            "properties": {},
                            "idempotency_key": None,
                            "recorded_by": "bench",
                        }
                    )
                if won:  # after the handoff: never read (the leakage guard)
                    activities.append(
                        {
                            "lead_id": lead_id,
                            "type": "meeting_booked",
                            "occurred_at": mql + timedelta(days=2),
                            "received_at": mql + timedelta(days=2),
                            "properties": {},
                            "idempotency_key": None,
                            "recorded_by": "bench",
                        }
                    )
            insert_activities(connection, activities)
            written += len(activities)
    ctx.engine.dispose()
    return written


def train(url: str, kind: str) -> tuple[float, int, float]:
    ctx = context(url)
    ctx.clock.set(NOW)  # type: ignore[attr-defined]
    began = time.perf_counter()
    model = train_model(ctx, actor=BENCH, kind=kind)
    elapsed = time.perf_counter() - began
    ctx.engine.dispose()
    return elapsed, int(model.trained_on["rows"]), model.evaluation.roc_auc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=100_000)
    parser.add_argument("--events-per-lead", type=int, default=4)
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="sqlite")
    args = parser.parse_args()
    backends = ("sqlite", "postgresql") if args.backend == "both" else (args.backend,)
    table = Table(title=f"Training on {args.leads:,} handed-off leads ({machine()})")
    for column in ("database", "model", "examples", "held-out ROC AUC", "seconds"):
        table.add_column(column, justify="right")
    for backend in backends:
        with database(backend) as url:
            began = time.perf_counter()
            events = fill(url, args.leads, args.events_per_lead)
            Console().print(
                f"{backend}: {args.leads:,} leads and {events:,} activities written in "
                f"{time.perf_counter() - began:.1f} s (not measured)"
            )
            for kind in ("gradient_boosting", "logistic_regression"):
                seconds, rows, auc = train(url, kind)
                table.add_row(backend, kind, f"{rows:,}", f"{auc:.3f}", f"{seconds:.1f}")
    Console().print(table)


if __name__ == "__main__":
    main()
