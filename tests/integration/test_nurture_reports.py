"""The nurture report on a hand-made March: every figure below is counted by hand from
the story in :func:`march`, on SQLite and PostgreSQL.

The rows are written straight into the tables the nurture services write (enrollments,
the send log, activities, transitions), so the report is tested on its own definitions;
the 6-month simulation (``test_nurture_simulation.py``) runs it on what the real
services wrote.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import insert, update
from tests.conftest import bearer, principal_for, token_for
from typer.testing import CliRunner

from baton.api.app import create_app
from baton.cli import app as cli_app
from baton.domain.access import operator
from baton.domain.errors import Forbidden, ValidationFailed
from baton.domain.leads import LeadCreate
from baton.domain.nurture_report import NurtureRow, OpportunityShare, nurture_rows, total_row
from baton.domain.reports import ReportPeriod
from baton.services.context import Context
from baton.services.leads import CaptureResult, capture_lead
from baton.services.nurture_reports import nurture_report
from baton.store.tables import activities, leads, nurture_enrollments, nurture_sends, transitions

MARCH = ReportPeriod.from_dates(date(2026, 3, 1), date(2026, 4, 1))


def at(month: int, day: int) -> datetime:
    return datetime(2026, month, day, 12, 0, tzinfo=UTC)


class March:
    """Writes the story's rows."""

    def __init__(self, ctx: Context, capture: Callable[..., CaptureResult]) -> None:
        self.ctx = ctx
        self.capture = capture
        self.step_of: dict[int, int] = {}

    def lead(self, name: str) -> int:
        return self.capture(email=f"{name}@example.com", first_name=name.title()).lead.id

    def enroll(
        self,
        lead_id: int,
        sequence: str,
        enrolled: datetime,
        *,
        ended: datetime | None = None,
        exit_reason: str | None = None,
    ) -> int:
        status = (
            "active"
            if ended is None
            else ("completed" if exit_reason in ("max_touches", "completed") else "exited")
        )
        with self.ctx.write() as connection:
            return int(
                connection.execute(
                    insert(nurture_enrollments)
                    .values(
                        lead_id=lead_id,
                        sequence=sequence,
                        contract_version=1,
                        status=status,
                        reason="test",
                        enrolled_at=enrolled,
                        enrolled_by="test",
                        next_step=0,
                        touches=0,
                        ended_at=ended,
                        exit_reason=exit_reason,
                    )
                    .returning(nurture_enrollments.c.id)
                ).scalar_one()
            )

    def send(
        self, enrollment_id: int, lead_id: int, step: int, status: str, sent: datetime | None
    ) -> None:
        with self.ctx.write() as connection:
            connection.execute(
                insert(nurture_sends).values(
                    enrollment_id=enrollment_id,
                    step=step,
                    lead_id=lead_id,
                    email="x@example.com",
                    template="check-in",
                    status=status,
                    planned_at=sent or at(3, 1),
                    sent_at=sent,
                )
            )

    def activity(self, lead_id: int, kind: str, when: datetime, **properties: Any) -> None:
        with self.ctx.write() as connection:
            connection.execute(
                insert(activities).values(
                    lead_id=lead_id,
                    type=kind,
                    occurred_at=when,
                    received_at=when,
                    properties=properties,
                )
            )

    def move(self, lead_id: int, stage: str, when: datetime) -> None:
        with self.ctx.write() as connection:
            connection.execute(
                insert(transitions).values(
                    lead_id=lead_id,
                    from_stage="nurture",
                    to_stage=stage,
                    actor="test",
                    reason="test",
                    occurred_at=when,
                )
            )


def march(ctx: Context, capture: Callable[..., CaptureResult]) -> None:
    """The story, and what each line adds to the March report (not-ready | cold):

    * L1, not-ready since 20 Feb: step 0 sent 27 Feb, step 1 sent 10 Mar; step 0 opened
      twice in March, step 1 opened once and clicked twice; MQL again 15 Mar (exit
      re_mql), opportunity 25 Mar. -> sent 1, opened 2, clicked 1, returned 1, opp 1
    * L2, not-ready from 3 Mar: step 0 sent 10 Mar, step 1 queued (not sent yet);
      unsubscribed 12 Mar (activity and exit: once); an open on 2 Apr is April's.
      -> enrolled 1, sent 1, unsubscribed 1
    * L3, cold from 5 Mar: step 0 sent 12 Mar, step 1 skipped; hard bounce 13 Mar
      (the lead's status and the exit: once). -> enrolled 1, sent 1, hard bounced 1
    * L4, cold 10 Jan - 20 Feb (completed); unsubscribes 20 Mar, after the end: the
      latest enrollment is credited. An open from a CRM (no enrollment) is not nurture's.
      -> cold unsubscribed 1
    * L5, not-ready from 28 Mar, taken back by sales 30 Mar. -> enrolled 1, returned 1
    * L6, L7: never enrolled, opportunities 20 and 22 Mar. -> opportunities only
    * L8, cold from 10 Mar, but its opportunity was on 5 Mar, before. -> enrolled 1
    * L9, not-ready 5-20 Jan (reply), cold from 1 Feb: MQL 16 Mar, opportunity 18 Mar,
      both credited to cold, its latest enrollment. -> cold returned 1, opp 1
    * L10, merged into L1: its not-ready enrollment (4 Mar) counts as enrolled; its
      opportunity (left behind) does not count anywhere.
    """
    m = March(ctx, capture)
    l1, l2, l3, l4, l5, l6, l7, l8, l9, l10 = (m.lead(f"lead{n}") for n in range(1, 11))

    e1 = m.enroll(l1, "not-ready", at(2, 20), ended=at(3, 15), exit_reason="re_mql")
    m.send(e1, l1, 0, "sent", at(2, 27))
    m.send(e1, l1, 1, "sent", at(3, 10))
    m.activity(l1, "email_open", at(3, 2), enrollment_id=e1, step=0)
    m.activity(l1, "email_open", at(3, 3), enrollment_id=e1, step=0)
    m.activity(l1, "email_open", at(3, 11), enrollment_id=e1, step=1)
    for day in (11, 12):
        m.activity(
            l1, "email_click", at(3, day), enrollment_id=e1, step=1, url="https://x.example/p"
        )
    m.move(l1, "mql", at(3, 15))
    m.move(l1, "opportunity", at(3, 25))

    e2 = m.enroll(l2, "not-ready", at(3, 3), ended=at(3, 12), exit_reason="unsubscribe")
    m.send(e2, l2, 0, "sent", at(3, 10))
    m.send(e2, l2, 1, "queued", None)
    m.activity(l2, "unsubscribe", at(3, 12))
    m.activity(l2, "email_open", at(4, 2), enrollment_id=e2, step=0)

    e3 = m.enroll(l3, "cold", at(3, 5), ended=at(3, 13), exit_reason="hard_bounce")
    m.send(e3, l3, 0, "sent", at(3, 12))
    m.send(e3, l3, 1, "skipped", None)
    with ctx.write() as connection:
        connection.execute(
            update(leads)
            .where(leads.c.id == l3)
            .values(email_status="hard_bounce", email_status_at=at(3, 13))
        )

    m.enroll(l4, "cold", at(1, 10), ended=at(2, 20), exit_reason="max_touches")
    m.activity(l4, "unsubscribe", at(3, 20))
    m.activity(l4, "email_open", at(3, 5), source="crm")

    m.enroll(l5, "not-ready", at(3, 28), ended=at(3, 30), exit_reason="sales_took_back")

    m.move(l6, "opportunity", at(3, 20))
    m.move(l7, "opportunity", at(3, 22))

    m.enroll(l8, "cold", at(3, 10))
    m.move(l8, "opportunity", at(3, 5))

    m.enroll(l9, "not-ready", at(1, 5), ended=at(1, 20), exit_reason="reply")
    m.enroll(l9, "cold", at(2, 1))
    m.move(l9, "mql", at(3, 16))
    m.move(l9, "opportunity", at(3, 18))

    m.enroll(l10, "not-ready", at(3, 4))
    m.move(l10, "opportunity", at(3, 20))
    with ctx.write() as connection:
        connection.execute(update(leads).where(leads.c.id == l10).values(merged_into_id=l1))


EXPECTED = [
    NurtureRow(
        "cold",
        enrolled=2,
        sent=1,
        opened=0,
        clicked=0,
        unsubscribed=1,
        hard_bounced=1,
        returned_to_sales=1,
        opportunities=1,
    ),
    NurtureRow(
        "not-ready",
        enrolled=3,
        sent=2,
        opened=2,
        clicked=1,
        unsubscribed=1,
        hard_bounced=0,
        returned_to_sales=2,
        opportunities=1,
    ),
]


def test_march_by_hand(ctx: Context, capture: Callable[..., CaptureResult]) -> None:
    march(ctx, capture)
    report = nurture_report(ctx, MARCH, actor=principal_for(ctx, "marketing"))
    assert report.rows == EXPECTED
    assert report.total == NurtureRow("(all)", 5, 3, 2, 1, 2, 1, 3, 2)
    # L1, L6, L7, L8, L9 (L10 is merged away); L1 and L9 came through nurture.
    assert report.opportunities == OpportunityShare(opportunities=5, through_nurture=2)
    assert report.opportunities.share == pytest.approx(0.4)
    assert report.opportunities.uplift == pytest.approx(2 / 3)
    row = report.rows[1].flat()
    assert row["open_rate"] == 1.0 and row["click_rate"] == 0.5 and row["unsubscribe_rate"] == 0.5

    only = nurture_report(ctx, MARCH, actor=principal_for(ctx, "sales_manager"), sequence="cold")
    assert only.rows == EXPECTED[:1] and only.opportunities == report.opportunities
    with pytest.raises(ValidationFailed, match=r"unknown nurture sequence 'colt' \(did you mean"):
        nurture_report(ctx, MARCH, actor=principal_for(ctx, "marketing"), sequence="colt")

    april = ReportPeriod.from_dates(date(2026, 4, 1), date(2026, 5, 1))
    later = nurture_report(ctx, april, actor=principal_for(ctx, "admin"))
    assert [(r.sequence, r.opened) for r in later.rows] == [("not-ready", 1)]
    assert later.total.enrolled == 0 and later.opportunities.share is None

    with pytest.raises(Forbidden):
        nurture_report(ctx, MARCH, actor=principal_for(ctx, "admin", scopes=("leads:read",)))


def test_over_http(ctx: Context, capture: Callable[..., CaptureResult]) -> None:
    march(ctx, capture)
    with TestClient(create_app(ctx), raise_server_exceptions=False) as api:
        params = {"from": "2026-03-01", "to": "2026-04-01", "tz": "UTC"}
        response = api.get(
            "/api/v1/reports/nurture", params=params, headers=bearer(token_for(ctx, "marketing"))
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["report"] == "nurture" and body["period"]["from"] == "2026-03-01"
        assert [r["sequence"] for r in body["rows"]] == ["cold", "not-ready"]
        assert body["total"]["sent"] == 3
        assert (
            body["opportunities"]["through_nurture"] == 2 and body["opportunities"]["share"] == 0.4
        )
        bad = api.get(
            "/api/v1/reports/nurture",
            params={"from": "2026-03-01", "to": "2026-03-01"},
            headers=bearer(token_for(ctx, "admin")),
        )
        assert bad.status_code == 422 and bad.headers["content-type"] == "application/problem+json"


def test_rows_include_quiet_sequences_and_sum_up() -> None:
    rows = nurture_rows({"b": {"sent": 2, "opened": 1}}, ["a", "b"])
    assert rows == [NurtureRow("a"), NurtureRow("b", sent=2, opened=1)]
    assert total_row(rows) == NurtureRow("(all)", sent=2, opened=1)
    assert rows[0].flat()["open_rate"] is None
    with pytest.raises(ValueError, match="unknown"):
        nurture_rows({"a": {"bogus": 1}})


def test_on_the_command_line(
    sqlite_ctx: Context, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    def capture(**fields: Any) -> CaptureResult:
        data = LeadCreate.model_validate(fields, context={"default_region": "US"})
        return capture_lead(sqlite_ctx, data, actor=operator("marketing"))

    march(sqlite_ctx, capture)
    monkeypatch.setenv("BATON_DATABASE_URL", str(sqlite_ctx.engine.url))
    monkeypatch.delenv("BATON_ENV", raising=False)
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    period = ["report", "nurture", "--from", "2026-03-01", "--to", "2026-04-01", "--tz", "UTC"]
    result = runner.invoke(cli_app, [*period, "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["total"]["returned_to_sales"] == 3 and data["opportunities"]["uplift"] == 2 / 3
    result = runner.invoke(cli_app, [*period, "--format", "csv"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.output)))
    assert [(r["sequence"], r["sent"], r["opened"]) for r in rows] == [
        ("cold", "1", "0"),
        ("not-ready", "2", "2"),
    ]
    result = runner.invoke(cli_app, period, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "not-ready" in result.output and "(all)" in result.output
    assert "Opportunities through nurture" in result.output and "40.0%" in result.output
    result = runner.invoke(
        cli_app, ["report", "nurture", "--from", "2026-03-01", "--to", "2026-03-01"]
    )
    assert result.exit_code == 1 and result.output.startswith("error: --to must be after --from")
