"""A small recorded history for the backtest tests, with outcomes known by hand.

Contract DRAFT: Director title 30 (fit); pricing page 20, webinar 10 (engagement, no
decay); MQL at 50; a demo request is a hand-raise. AGAINST is the same with the webinar
at 20 points (one rule changed).

=====  ========  ========================================  =============================
lead   title     events (2026)                              history
=====  ========  ========================================  =============================
1      Director  created Jan 5 09:00; pricing Jan 6 09:00   accepted, qualified, won Feb 1
2      Analyst   created Jan 5 09:00; demo Jan 13 09:00     handoff rejected: no_budget
3      Director  created Jan 5 09:00; webinar Jan 7 09:00   won Feb 10
4      Analyst   created Jan 5; pricing + webinar Jan 8     history: mql -> disqualified
5      Director  created Jan 12 09:00; pricing Jan 14 09:00 history: mql -> disqualified
6      Director  created Jan 5; pricing Jan 20 (after win)  won Jan 10
7      Director  merged into lead 1 (never replayed)
=====  ========  ========================================  =============================

Under DRAFT: MQLs 1 (Jan 6, 24 h, 2026-W02), 2 (Jan 13 hand-raise, 192 h, W03), 5 (Jan
14, 48 h, W03); won 1, 3, 6; missed winners 3 and 6 (6's pricing visit came after it
was won); rejected: no_budget (2), disqualified (history) (5) - lead 4 is not an MQL
under the draft, so its verdict is not counted. Under AGAINST lead 3 is an MQL too (Jan
7, 48 h).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert

from baton.services.context import Context
from baton.store.tables import activities, contracts, handoffs, leads, transitions

DRAFT = """schema_version: 1
name: Backtest draft
scoring:
  fit:
    - name: Director
      when: {field: title, regex: "(?i)director"}
      points: 30
  engagement:
    - name: Pricing page
      event: page_view
      where: {url: /pricing}
      points: 20
    - name: Webinar
      event: webinar_attended
      points: 10
mql:
  threshold: 50
  hand_raise: [demo_request]
"""

AGAINST = DRAFT.replace("name: Backtest draft", "name: Backtest active").replace(
    "      points: 10\n", "      points: 20\n"
)


def at(month: int, day: int, hour: int = 9) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=UTC)


def store_active(ctx: Context, body: str = AGAINST) -> int:
    """Store ``body`` as the active version 1 (written directly: activating through the
    use case would hand these historical leads off)."""
    from baton.services.contracts import check_contract

    spec = check_contract(body)
    with ctx.write() as connection:
        connection.execute(
            insert(contracts).values(
                version=1,
                name=spec.name,
                body=body,
                spec=spec.model_dump(mode="json", by_alias=True),
                status="active",
                created_by="test",
                created_at=at(1, 1),
                activated_at=at(1, 1),
                activated_by="test",
            )
        )
    return 1


def build_history(ctx: Context, *, won: bool = True) -> None:
    """The leads of the module docstring (``won=False``: nobody was won)."""

    def lead(id_: int, title: str, created: datetime, **extra: Any) -> dict[str, Any]:
        row: dict[str, Any] = {
            "id": id_,
            "email": f"p{id_}@acme.example",
            "email_key": f"p{id_}@acme.example",
            "email_domain": "acme.example",
            "title": title,
            "attributes": {},
            "stage": "lead",
            "stage_changed_at": created,
            "created_at": created,
            "updated_at": created,
            "merged_into_id": None,
            "sal_at": None,
            "sql_at": None,
            "customer_at": None,
        }
        row.update(extra)
        if not won:
            row["customer_at"] = None
        return row

    rows = [
        lead(1, "Director", at(1, 5), sal_at=at(1, 7), sql_at=at(1, 9), customer_at=at(2, 1)),
        lead(2, "Analyst", at(1, 5)),
        lead(3, "Director", at(1, 5), customer_at=at(2, 10)),
        lead(4, "Analyst", at(1, 5)),
        lead(5, "Director", at(1, 12)),
        lead(6, "Director", at(1, 5), customer_at=at(1, 10)),
        lead(7, "Director", at(1, 5)),
    ]
    events = [
        (1, "page_view", at(1, 6), {"url": "/pricing"}),
        (1, "email_open", at(1, 5, 8), {}),
        (2, "demo_request", at(1, 13), {}),
        (3, "webinar_attended", at(1, 7), {}),
        (3, "page_view", at(1, 7, 10), {"url": "/blog"}),
        (4, "page_view", at(1, 8), {"url": "/pricing"}),
        (4, "webinar_attended", at(1, 8, 10), {}),
        (5, "page_view", at(1, 14), {"url": "/pricing"}),
        (6, "page_view", at(1, 20), {"url": "/pricing"}),
        (7, "page_view", at(1, 6), {"url": "/pricing"}),
    ]
    with ctx.write() as connection:
        for row in rows:
            connection.execute(insert(leads).values(**row))
        connection.execute(leads.update().where(leads.c.id == 7).values(merged_into_id=1))
        connection.execute(
            insert(activities),
            [
                {
                    "lead_id": lead_id,
                    "type": kind,
                    "occurred_at": moment,
                    "received_at": moment,
                    "properties": props,
                }
                for lead_id, kind, moment, props in events
            ],
        )
        connection.execute(
            insert(handoffs).values(
                lead_id=2,
                status="rejected",
                mql_at=at(1, 13),
                created_at=at(1, 13),
                closed_at=at(1, 14),
                outcome="recycled",
                rejection_code="no_budget",
                routing={},
            )
        )
        connection.execute(
            insert(transitions),
            [
                {
                    "lead_id": lead_id,
                    "from_stage": "mql",
                    "to_stage": "disqualified",
                    "actor": "import",
                    "reason": "history",
                    "occurred_at": at(1, 20),
                    "historical": True,
                }
                for lead_id in (4, 5)
            ],
        )


RANDOM_KINDS = (
    ("page_view", {"url": "/pricing"}),
    ("page_view", {"url": "/blog"}),
    ("webinar_attended", {}),
    ("email_open", {}),
    ("demo_request", {}),
)


def random_history(ctx: Context, *, leads_count: int, seed: int) -> None:
    """``leads_count`` leads with seeded random titles, outcomes and activities (some
    before the lead's creation, some only of types no rule counts, some none)."""
    import random
    from datetime import timedelta

    rng = random.Random(seed)
    rows: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    for id_ in range(1, leads_count + 1):
        created = at(1, 5) + timedelta(minutes=rng.randrange(0, 40 * 1440))
        won = rng.random() < 0.3
        rows.append(
            {
                "id": id_,
                "email": f"p{id_}@acme.example",
                "email_key": f"p{id_}@acme.example",
                "email_domain": "acme.example",
                "title": rng.choice(("Director", "Analyst")),
                "attributes": {},
                "stage": "lead",
                "stage_changed_at": created,
                "created_at": created,
                "updated_at": created,
                "sal_at": created + timedelta(days=3) if won or rng.random() < 0.2 else None,
                "customer_at": created + timedelta(days=rng.randrange(1, 30)) if won else None,
            }
        )
        kinds = RANDOM_KINDS if rng.random() < 0.8 else RANDOM_KINDS[3:4]
        for _ in range(rng.randrange(0, 8)):
            kind, props = rng.choice(kinds)
            moment = created + timedelta(minutes=rng.randrange(-2 * 1440, 30 * 1440))
            events.append(
                {
                    "lead_id": id_,
                    "type": kind,
                    "occurred_at": moment,
                    "received_at": moment,
                    "properties": props,
                }
            )
    with ctx.write() as connection:
        connection.execute(insert(leads), rows)
        if events:
            connection.execute(insert(activities), events)
