"""The Olist marketing funnel, imported from the real files (``../shared/datasets/
olist-marketing-funnel/``; skipped when they are absent: the data set is not shipped,
see the README): 8,000 leads, 842 won, and one origin's MQL→won rate equal to the rate
computed here from the CSV files with the csv module. One import per module, on SQLite
(the import itself takes about a second).
"""

from __future__ import annotations

import csv
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from baton.config import Settings
from baton.domain.access import operator
from baton.domain.clock import ManualClock
from baton.domain.reports import ReportPeriod
from baton.services.context import Context, open_context
from baton.services.history import HistoryReport
from baton.services.olist import DEALS_FILE, MQL_FILE, import_olist
from baton.services.reports import funnel, velocity
from baton.store.tables import handoffs, leads, outbox, transitions

DATA = Path(__file__).parents[2] / ".." / "shared" / "datasets" / "olist-marketing-funnel"
OPS = operator("ops")
ALL_OF_IT = ReportPeriod(datetime(2017, 1, 1, tzinfo=UTC), datetime(2019, 1, 1, tzinfo=UTC))

pytestmark = pytest.mark.skipif(
    not (DATA / MQL_FILE).is_file() or not (DATA / DEALS_FILE).is_file(),
    reason=f"the Olist data set is not at {DATA.resolve()} (not shipped: CC BY-NC-SA 4.0)",
)


@pytest.fixture(scope="module")
def olist(
    sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Context, HistoryReport]]:
    path = tmp_path_factory.mktemp("olist") / "baton.db"
    shutil.copyfile(sqlite_template, path)
    clock = ManualClock(current=datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    ctx = open_context(Settings(database_url=f"sqlite:///{path}", env="test"), clock=clock)
    try:
        yield ctx, import_olist(ctx, DATA, actor=OPS)
    finally:
        ctx.engine.dispose()


def scalar(ctx: Context, query: object) -> int:
    with ctx.read() as connection:
        return int(connection.execute(query).scalar_one())  # type: ignore[call-overload]


def test_eight_thousand_leads_and_842_won(olist: tuple[Context, HistoryReport]) -> None:
    ctx, report = olist
    assert (report.rows, report.created, report.rejected, report.won) == (8000, 8000, 0, 842)
    assert scalar(ctx, select(func.count()).select_from(leads)) == 8000
    assert scalar(ctx, select(func.count()).where(leads.c.stage == "customer")) == 842
    (row,) = funnel(ctx, ALL_OF_IT, actor=OPS).rows
    assert (row.counts["lead"], row.counts["mql"], row.counts["customer"]) == (8000, 8000, 842)
    # History: nothing was handed off or sent.
    assert scalar(ctx, select(func.count()).select_from(handoffs)) == 0
    assert scalar(ctx, select(func.count()).select_from(outbox)) == 0
    # The deal won before its first contact is recorded at the first contact, and said so.
    assert report.moved == 1
    mql_to_sal = next(r for r in velocity(ctx, ALL_OF_IT, actor=OPS).rows if r.from_stage == "mql")
    assert (mql_to_sal.leads, mql_to_sal.negative_durations) == (842, 0)


def test_one_origins_mql_to_won_rate_equals_the_hand_computed_one(
    olist: tuple[Context, HistoryReport],
) -> None:
    ctx, _ = olist
    with (DATA / MQL_FILE).open(newline="", encoding="utf-8") as handle:
        origin_of = {r["mql_id"]: r["origin"] for r in csv.DictReader(handle)}
    with (DATA / DEALS_FILE).open(newline="", encoding="utf-8") as handle:
        won = {r["mql_id"] for r in csv.DictReader(handle)}
    mqls = [i for i, origin in origin_of.items() if origin == "paid_search"]
    by_hand = sum(i in won for i in mqls) / len(mqls)
    assert (len(mqls), sum(i in won for i in mqls)) == (1586, 195)
    rows = {r.group: r for r in funnel(ctx, ALL_OF_IT, actor=OPS, group_by="source").rows}
    paid = rows["paid_search"]
    assert (paid.counts["mql"], paid.counts["customer"]) == (1586, 195)
    assert paid.counts["customer"] / paid.counts["mql"] == pytest.approx(by_hand)
    assert paid.conversion["lead→customer"] == pytest.approx(by_hand)


def test_deal_fields_are_attributes_and_a_second_import_records_nothing(
    olist: tuple[Context, HistoryReport],
) -> None:
    ctx, _ = olist
    with ctx.read() as connection:
        customer = connection.execute(
            select(leads.c.attributes, leads.c.external_system).where(leads.c.stage == "customer")
        ).first()
    assert customer is not None and customer.external_system == "olist"
    assert {"landing_page_id", "business_segment", "lead_type", "seller_id"} <= set(
        customer.attributes
    )
    before = scalar(ctx, select(func.count()).select_from(transitions))
    again = import_olist(ctx, DATA, actor=OPS)
    assert (again.created, again.transitions, again.won) == (0, 0, 0)
    assert scalar(ctx, select(func.count()).select_from(transitions)) == before
