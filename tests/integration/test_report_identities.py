"""The reports agree (issue 11, items 13 and 14), on SQLite and PostgreSQL.

A lead that reaches ``customer`` is won in every report, whatever path it took: a
rep's verdicts, a manager's moves by hand after taking a lead out of the queue, a
recycle and return, or a duplicate merged in. The identities checked, per month and
per source:

* funnel (cohort) ``customer`` = credit ``won`` + ``won_without_handoff`` (every lead
  here becomes an MQL in the month it is created, so the two anchors agree; a lead
  whose winning MQL falls in a later month moves from one month to the other, and the
  identity holds over a period holding both);
* cost ``customers`` = funnel ``customer``, and the cost report's all-time win rate is
  won chains / (won + lost chains), losses by hand included.

And velocity counts a step whose next stage came before the previous one (data
written around Baton, as loaded histories are) instead of dropping it silently.
"""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update
from typer.testing import CliRunner

from baton.cli import app as cli
from baton.domain.access import operator
from baton.domain.activities import ActivityCreate
from baton.domain.clock import ManualClock
from baton.domain.leads import LeadCreate
from baton.domain.lifecycle import Stage
from baton.domain.reports import ReportFilters, ReportPeriod
from baton.domain.reps import RepCreate, TeamCreate
from baton.services.activities import ingest_activity
from baton.services.context import Context
from baton.services.contracts import activate_contract, approve_contract, create_contract
from baton.services.handoffs import (
    accept_handoff,
    list_handoffs,
    lost_handoff,
    open_opportunity,
    qualify_handoff,
    reject_handoff,
    won_handoff,
)
from baton.services.leads import capture_lead, change_stage
from baton.services.merge import merge_leads
from baton.services.milestones import rebuild_milestones
from baton.services.reports import cost, funnel, marketing_credit, velocity
from baton.services.reps import create_rep, create_team
from baton.store.tables import leads, transitions

EXAMPLE = (Path(__file__).parents[2] / "contracts" / "example.yaml").read_text()
ANA, SAM = "ana@lumen.example", "sam@lumen.example"
BANT = {"budget": "40k", "authority": "VP", "need": "dashboards", "timing": "Q3"}
OPS = operator("ops")
MONTHS = (date(2026, 1, 1), date(2026, 2, 1), date(2026, 3, 1), date(2026, 4, 1))


class History:
    """Leads made through the use cases at chosen moments; ``n`` makes emails unique."""

    def __init__(self, ctx: Context, clock: ManualClock) -> None:
        self.ctx, self.clock, self.n = ctx, clock, 0
        clock.set(datetime(2025, 12, 1, 9, tzinfo=UTC))
        version = create_contract(ctx, EXAMPLE, actor=operator("maria")).version
        approve_contract(ctx, version, role="marketing", actor=operator("maria"))
        approve_contract(ctx, version, role="sales", actor=operator("sam"))
        activate_contract(ctx, version, actor=operator("maria"))
        create_team(ctx, TeamCreate(name="na", manager_email=SAM), actor=OPS)
        always = {d: ["00:00-24:00"] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
        create_rep(
            ctx,
            RepCreate(email=ANA, name="Ana", team="na", working_hours=always, capacity=1000),
            actor=OPS,
        )

    def at(self, day: date, hours: float = 0) -> None:
        self.clock.set(
            datetime(day.year, day.month, day.day, 9, tzinfo=UTC) + timedelta(hours=hours)
        )

    def lead(self, source: str, *, employees: int = 200) -> tuple[int, str]:
        self.n += 1
        email = f"buyer{self.n}@company{self.n}.example.com"
        data = LeadCreate.model_validate(
            {
                "email": email,
                "country": "US",
                "source": source,
                "attributes": {"employees": employees},
            }
        )
        return capture_lead(self.ctx, data, actor=operator("form")).lead.id, email

    def raise_hand(self, email: str) -> None:
        event = ActivityCreate(email=email, type="demo_request", occurred_at=self.clock.now())
        ingest_activity(self.ctx, event, actor=operator("web"))

    def open_handoff(self, lead_id: int) -> Any:
        [handoff] = list_handoffs(self.ctx, lead_id=lead_id, actor=OPS, limit=1)
        return handoff

    def handed(self, source: str) -> tuple[int, int]:
        """A lead that asks for a demo at once: Ana's handoff."""
        lead_id, email = self.lead(source)
        self.raise_hand(email)
        handoff = self.open_handoff(lead_id)
        assert handoff.rep_email == ANA, handoff
        return lead_id, handoff.id

    def win(self, handoff_id: int) -> None:
        accept_handoff(self.ctx, handoff_id, actor=OPS)
        qualify_handoff(self.ctx, handoff_id, fields=BANT, actor=OPS)
        open_opportunity(self.ctx, handoff_id, amount=1000, actor=OPS)
        won_handoff(self.ctx, handoff_id, amount=1000, actor=OPS)

    def by_hand(self, lead_id: int, *stages: Stage) -> None:
        for stage in stages:
            self.clock.advance(minutes=10)
            change_stage(self.ctx, lead_id, stage, actor=operator("sam"), reason="by hand")

    def queued(self, source: str) -> int:
        """A company of 5,000: the enterprise pool has no reps, so it waits."""
        lead_id, email = self.lead(source, employees=5000)
        self.raise_hand(email)
        assert self.open_handoff(lead_id).status == "queued"
        return lead_id

    def month(self, first: date) -> dict[str, int]:
        """One month of leads; returns the customers it should count, per source."""
        self.at(first, 1)
        _, won = self.handed("ads")  # a rep's verdicts
        self.clock.advance(hours=1)
        self.win(won)

        hand = self.queued("ads")  # a manager takes it out of the queue, by hand
        self.by_hand(hand, Stage.SAL, Stage.SQL, Stage.OPPORTUNITY, Stage.CUSTOMER)

        recycled, rejected = self.handed("events")  # recycled, back, won on its 2nd MQL
        accept_handoff(self.ctx, rejected, actor=OPS)
        reject_handoff(self.ctx, rejected, code="not_ready", actor=OPS)
        self.clock.advance(hours=2)
        self.raise_hand(self.email_of(recycled))
        second = self.open_handoff(recycled)
        assert second.id != rejected
        self.win(second.id)

        survivor, _ = self.lead("events")  # never handed off: absorbs a won duplicate
        duplicate, dup_handoff = self.handed("events")
        self.win(dup_handoff)
        merge_leads(self.ctx, survivor, duplicate, actor=OPS)

        _, later = self.handed("ads")  # won next month: counted in its MQL's month
        _, lost_handoff_id = self.handed("ads")  # lost by a verdict
        accept_handoff(self.ctx, lost_handoff_id, actor=OPS)
        lost_handoff(self.ctx, lost_handoff_id, reason="went dark", actor=OPS)
        gone = self.queued("events")  # lost by hand
        self.by_hand(gone, Stage.SAL, Stage.LOST)
        self.queued("ads")  # never touched: no credit either way
        self.at(first + timedelta(days=20))
        self.win(later)
        return {"ads": 3, "events": 2}

    def email_of(self, lead_id: int) -> str:
        from baton.services.leads import get_lead

        return str(get_lead(self.ctx, lead_id, actor=OPS).email)


def by_group(rows: list[Any]) -> dict[Any, Any]:
    return {r.group: r for r in rows}


def period(first: date, end: date) -> ReportPeriod:
    return ReportPeriod.from_dates(first, end)


def check_identities(ctx: Context, first: date, end: date, customers: dict[str, int]) -> None:
    span = period(first, end)
    funnel_rows = by_group(funnel(ctx, span, actor=OPS, group_by="source").rows)
    credit_rows = by_group(marketing_credit(ctx, span, actor=OPS, group_by="source").rows)
    cost_rows = by_group(cost(ctx, span, actor=OPS, group_by="source").rows)
    assert {g: r.counts["customer"] for g, r in funnel_rows.items()} == customers, first
    for source, n in customers.items():
        credit = credit_rows[source]
        assert credit.won + credit.won_without_handoff == n, (first, source, credit)
        assert cost_rows[source].customers == n, (first, source)
    [total] = funnel(ctx, span, actor=OPS).rows
    [credit_total] = marketing_credit(ctx, span, actor=OPS, group_by=None).rows
    assert total.counts["customer"] == credit_total.won + credit_total.won_without_handoff
    flat = marketing_credit(ctx, span, actor=OPS).to_json()["rows"]
    assert all("won_without_handoff" in row for row in flat)


def test_a_customer_is_won_in_every_report_whatever_path_it_took(
    ctx: Context, clock: ManualClock
) -> None:
    history = History(ctx, clock)
    expected = [history.month(first) for first in MONTHS[:3]]
    for (first, end), customers in zip(itertools.pairwise(MONTHS), expected, strict=True):
        check_identities(ctx, first, end, customers)
        credit = by_group(marketing_credit(ctx, period(first, end), actor=OPS).rows)
        # ads: the verdict, the lead taken by hand, the one won a month later; events:
        # the recycled lead's second MQL, and the merged-in customer (no chain of its own).
        assert (credit["ads"].won, credit["ads"].won_without_handoff) == (3, 0)
        assert (credit["events"].won, credit["events"].won_without_handoff) == (1, 1)
        # A manager who took a queued lead to SAL by hand accepted it for sales.
        assert credit["ads"].accepted == 4  # verdict, by hand, later, lost
    # All time: 12 chains won (3 + 1 a month) against 6 lost (a verdict and a move by
    # hand a month); the merged-away duplicates' chains are left out, as merged leads are.
    gap = cost(ctx, period(MONTHS[0], MONTHS[3]), actor=OPS).gap
    assert gap.win_rate is not None and abs(gap.win_rate - 12 / 18) < 1e-9

    # A lead created in March, recycled, and back as an MQL in April where it is won:
    # the funnel counts it in March (created), the credit report in April (its winning
    # MQL); a period holding both agrees.
    history.at(date(2026, 3, 25))
    late, chain = history.handed("events")
    accept_handoff(ctx, chain, actor=OPS)
    reject_handoff(ctx, chain, code="not_ready", actor=OPS)
    history.at(date(2026, 4, 2))
    history.raise_hand(history.email_of(late))
    history.win(history.open_handoff(late).id)
    march = by_group(marketing_credit(ctx, period(MONTHS[2], MONTHS[3]), actor=OPS).rows)
    assert march["events"].won + march["events"].won_without_handoff == 2
    assert (
        by_group(funnel(ctx, period(MONTHS[2], MONTHS[3]), actor=OPS, group_by="source").rows)[
            "events"
        ].counts["customer"]
        == 3
    )
    check_identities(ctx, MONTHS[2], date(2026, 5, 1), {"ads": 3, "events": 3})
    check_identities(ctx, MONTHS[0], date(2026, 5, 1), {"ads": 9, "events": 7})


def test_the_credit_report_agrees_with_a_rebuild_from_the_history(
    ctx: Context, clock: ManualClock
) -> None:
    history = History(ctx, clock)
    history.month(MONTHS[0])
    span = period(MONTHS[0], MONTHS[1])
    kept = marketing_credit(ctx, span, actor=OPS).to_json()
    rebuild_milestones(ctx)
    assert marketing_credit(ctx, span, actor=OPS).to_json() == kept


def test_velocity_counts_a_step_out_of_order_instead_of_dropping_it(
    ctx: Context, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    history = History(ctx, clock)
    history.at(MONTHS[0], 1)
    for _ in range(3):
        _, handoff_id = history.handed("ads")
        clock.advance(hours=1)
        history.win(handoff_id)
    # A history loaded around Baton: one lead's opportunity dated a day before its SQL.
    [odd] = [h.lead_id for h in list_handoffs(ctx, actor=OPS, limit=1)]
    moved = transitions.c.lead_id == odd, transitions.c.to_stage == "opportunity"
    with ctx.write() as connection:
        when = connection.execute(select(transitions.c.occurred_at).where(*moved)).scalar_one()
        connection.execute(
            update(transitions).where(*moved).values(occurred_at=when - timedelta(days=1))
        )
        connection.execute(update(leads).where(leads.c.id == odd).values(reached_stages=0))
    rebuild_milestones(ctx)

    report = velocity(ctx, period(MONTHS[0], MONTHS[1]), actor=OPS)
    steps = {(r.from_stage, r.to_stage): r for r in report.rows}
    step = steps[("sql", "opportunity")]
    assert (step.leads, step.negative_durations) == (3, 1)
    assert step.median_hours is not None and step.median_hours >= 0, "medians of the others"
    assert steps[("opportunity", "customer")].negative_durations == 0
    assert report.negative_durations == 1
    data = report.to_json()
    assert data["data_quality"] == {
        "negative_durations": 1,
        "note": "1 step went backwards in time (the later stage is dated before the earlier "
        "one): counted in leads, left out of the medians and p90s",
    }
    assert data["rows"][0]["negative_durations"] == 0
    # Filtered to a source without such a lead: no line to show.
    clean = velocity(
        ctx, period(MONTHS[0], MONTHS[1]), actor=OPS, filters=ReportFilters(source="events")
    )
    assert clean.to_json()["data_quality"] == {"negative_durations": 0, "note": None}

    # On the command line: a line under the table, a column in the CSV.
    monkeypatch.setenv("BATON_DATABASE_URL", ctx.engine.url.render_as_string(hide_password=False))
    dates = ["--from", "2026-01-01", "--to", "2026-02-01"]
    shown = CliRunner().invoke(cli, ["report", "velocity", *dates])
    assert shown.exit_code == 0, shown.output
    assert shown.output.strip().splitlines()[-1] == f"data quality: {data['data_quality']['note']}"
    rows = CliRunner().invoke(cli, ["report", "velocity", *dates, "--format", "csv"]).output
    assert "negative_durations" in rows.splitlines()[0]
