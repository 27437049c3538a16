"""Possible duplicates at the scale of a real import: each new lead adds at most
``MAX_PAIRS_PER_LEAD`` pairs (its best), and pairs are dismissed in bulk by ids or by
filter, with a dry run; on both databases."""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import select
from tests.conftest import principal_for

from baton.domain.access import operator
from baton.domain.clock import ManualClock
from baton.domain.duplicates import DuplicateDismissal, DuplicateFilter
from baton.domain.errors import Forbidden
from baton.domain.leads import MAX_PAIRS_PER_LEAD, SAME_EMAIL_DOMAIN, SAME_PHONE
from baton.services.context import Context
from baton.services.duplicate_checks import flag_pending_duplicates
from baton.services.imports import import_leads
from baton.services.leads import CaptureResult
from baton.services.merge import count_duplicates, dismiss_duplicates, list_duplicates
from baton.store.tables import duplicate_candidates, leads

OPS = operator("ops")
Capture = Callable[..., CaptureResult]
ROWS = 600
NAMES = (("Ana", "Alvarez"), ("Ben", "Becker"))


def look_alikes(rows: int = ROWS, *, shared_phone: bool = True) -> str:
    """``rows`` people at one company, all called Ana Alvarez or Ben Becker: each looks
    like every earlier one of the same name (without the cap: 49,901 pairs for 600 rows,
    up to 101 for one lead; with it 2,970). With ``shared_phone`` the last row shares its
    phone number with the row two before it."""
    lines = ["Email,First Name,Last Name,Company,Phone"]
    for i in range(rows):
        first, last = NAMES[i % 2]
        phone = "+1 415 555 0100" if shared_phone and i in (rows - 3, rows - 1) else ""
        lines.append(f"{first.lower()}.{i}@globex.example.com,{first},{last},Globex,{phone}")
    return "\n".join(lines) + "\n"


def pairs(ctx: Context) -> list[dict[str, object]]:
    with ctx.read() as connection:
        return [
            dict(r)
            for r in connection.execute(
                select(duplicate_candidates).order_by(duplicate_candidates.c.id)
            ).mappings()
        ]


def flag_queued(ctx: Context) -> None:
    """What the worker does after an import: flag the queued leads, batch by batch."""
    while flag_pending_duplicates(ctx, limit=97):
        pass


def test_an_import_of_look_alikes_stays_within_the_cap(ctx: Context) -> None:
    report = import_leads(ctx, io.StringIO(look_alikes()), actor=OPS)
    assert report.created == report.duplicate_checks_queued == ROWS
    assert pairs(ctx) == []  # flagged by the worker, not during the import
    flag_queued(ctx)
    found = pairs(ctx)
    per_lead = Counter(p["lead_id"] for p in found)
    assert max(per_lead.values()) == MAX_PAIRS_PER_LEAD
    # The k-th lead of a name has k earlier look-alikes and keeps min(k, 5) of them.
    expected = 2 * sum(min(k, MAX_PAIRS_PER_LEAD) for k in range(ROWS // 2))
    assert len(found) == expected
    assert len(found) <= MAX_PAIRS_PER_LEAD * ROWS
    with ctx.read() as connection:
        emails = {r.id: r.email for r in connection.execute(select(leads.c.id, leads.c.email))}
    id_of = {int(email.split("@")[0].split(".")[1]): i for i, email in emails.items()}
    last, partner = id_of[ROWS - 1], id_of[ROWS - 3]
    same_name = sorted(i for row, i in id_of.items() if row % 2 == (ROWS - 1) % 2 and i < last)
    kept = {int(p["other_lead_id"]): p["reason"] for p in found if p["lead_id"] == last}
    # The shared phone is kept, then the oldest look-alikes (all equally similar).
    assert kept.pop(partner) == SAME_PHONE
    assert sorted(kept) == [i for i in same_name if i != partner][:4]
    assert set(kept.values()) == {SAME_EMAIL_DOMAIN}


@pytest.fixture
def queue(ctx: Context, clock: ManualClock, capture: Capture) -> dict[str, list[int]]:
    """Pairs of three kinds, flagged at two moments: an import's look-alikes (now),
    then, an hour later, one pair of a shared phone and one of similar names."""
    import_leads(ctx, io.StringIO(look_alikes(40, shared_phone=False)), actor=OPS)
    flag_queued(ctx)
    imported = [int(p["id"]) for p in pairs(ctx)]
    clock.advance(timedelta(hours=1))
    capture(email="dana@northwind.com", phone="202-456-1111", first_name="Dana")
    capture(email="dana.reyes@gmail.com", phone="(202) 456 1111", first_name="D.")
    capture(email="jsmith@acme.io", first_name="Jonathan", last_name="Smith", company="Acme")
    capture(email="jon@gmail.com", first_name="Jonathon", last_name="Smith", company="Acme")
    flag_queued(ctx)
    later = [int(p["id"]) for p in pairs(ctx) if int(p["id"]) not in imported]
    assert len(later) == 2
    return {"imported": imported, "later": later}


def test_a_dry_run_counts_and_changes_nothing(
    ctx: Context, clock: ManualClock, queue: dict[str, list[int]]
) -> None:
    since = clock.now() - timedelta(minutes=1)
    request = DuplicateDismissal(created_since=since, dry_run=True)
    report = dismiss_duplicates(ctx, request, actor=OPS)
    assert (report.matched, report.dismissed, report.dry_run) == (2, 0, True)
    assert sorted(report.sample) == sorted(queue["later"])
    assert count_duplicates(ctx, actor=OPS) == len(queue["imported"]) + 2


def test_dismiss_by_filter_takes_exactly_what_the_filter_picks(
    ctx: Context, clock: ManualClock, queue: dict[str, list[int]]
) -> None:
    before = clock.now() - timedelta(minutes=1)
    request = DuplicateDismissal(reason="email_domain", created_before=before)
    report = dismiss_duplicates(ctx, request, actor=OPS)
    assert report.matched == report.dismissed == len(queue["imported"])
    left = list_duplicates(ctx, actor=OPS)
    assert sorted(c.id for c in left) == sorted(queue["later"])
    assert count_duplicates(ctx, actor=OPS, status="dismissed") == len(queue["imported"])
    # Similar names (92.9) but not a shared phone (100):
    [similar] = list_duplicates(ctx, actor=OPS, where=DuplicateFilter(similarity_below=95))
    report = dismiss_duplicates(ctx, DuplicateDismissal(similarity_below=95), actor=OPS)
    assert (report.matched, report.dismissed, report.sample) == (1, 1, [similar.id])
    [phone] = list_duplicates(ctx, actor=OPS)
    assert phone.reason == SAME_PHONE
    again = dismiss_duplicates(ctx, DuplicateDismissal(similarity_below=95), actor=OPS)
    assert (again.matched, again.dismissed) == (0, 0)


def test_dismiss_by_ids_reports_the_ones_left_alone(
    ctx: Context, queue: dict[str, list[int]]
) -> None:
    done, open_ = queue["imported"][0], queue["imported"][1:4]
    dismiss_duplicates(ctx, DuplicateDismissal(ids=[done]), actor=OPS)
    missing = 10**9
    report = dismiss_duplicates(ctx, DuplicateDismissal(ids=[*open_, done, missing]), actor=OPS)
    assert (report.matched, report.dismissed) == (3, 3)
    assert report.skipped == sorted([done, missing])
    assert sorted(report.sample, reverse=True) == report.sample
    assert count_duplicates(ctx, actor=OPS, status="dismissed") == 4
    with ctx.read() as connection:
        by = connection.execute(
            select(duplicate_candidates.c.resolved_by).where(duplicate_candidates.c.id == done)
        ).scalar_one()
    assert by == "ops"


def test_ids_and_a_filter_both_hold(ctx: Context, queue: dict[str, list[int]]) -> None:
    ids = [*queue["imported"][:2], *queue["later"]]
    report = dismiss_duplicates(ctx, DuplicateDismissal(ids=ids, reason="phone"), actor=OPS)
    assert report.matched == report.dismissed == 1
    assert len(report.skipped) == 3


def test_only_those_who_review_duplicates_dismiss_them(
    ctx: Context, queue: dict[str, list[int]]
) -> None:
    manager = principal_for(ctx, "sales_manager")
    with pytest.raises(Forbidden):
        dismiss_duplicates(ctx, DuplicateDismissal(reason="phone"), actor=manager)
    marketing = principal_for(ctx, "marketing")
    report = dismiss_duplicates(ctx, DuplicateDismissal(reason="phone"), actor=marketing)
    assert report.dismissed == 1
