"""The nurture history sentence of the handoff packet (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from baton.domain.nurture_history import (
    EnrollmentFacts,
    day_text,
    link_label,
    nurture_history,
    summarize,
)

MAR_3 = datetime(2026, 3, 3, 15, 0, tzinfo=UTC)
JUN_2 = datetime(2026, 6, 2, 10, 12, tzinfo=UTC)
PRICING = "https://lumen-analytics.example/pricing"
GUIDE = "https://lumen-analytics.example/guides/when-to-replace-reporting"


def came_back(**changes: object) -> EnrollmentFacts:
    facts = {
        "id": 41,
        "sequence": "not-ready",
        "reason": "rejected: not_ready",
        "enrolled_at": MAR_3,
        "status": "exited",
        "touches": 4,
        "exit_reason": "re_mql",
        "ended_at": JUN_2,
    }
    facts.update(changes)
    return EnrollmentFacts(**facts)  # type: ignore[arg-type]


def event(kind: str, step: int, url: str | None = None, enrollment: int = 41) -> tuple:
    props: dict[str, object] = {"enrollment_id": enrollment, "step": step}
    if url:
        props["url"] = url
    return (kind, MAR_3 + timedelta(days=10 * step), props)


def test_the_issues_sentence() -> None:
    engagement = [
        event("email_open", 0),
        event("email_open", 0),  # opened the same email again: one email opened
        event("email_open", 1),
        event("email_click", 2, PRICING),
        event("email_click", 3, PRICING),
        event("email_click", 3, GUIDE),
        event("email_open", 0, enrollment=7),  # another enrollment's
        ("page_view", MAR_3, {"url": "/pricing"}),
    ]
    history = summarize(came_back(), engagement, now=JUN_2)
    assert history.summary == (
        "Recycled on 3 Mar (not ready), sequence not-ready: 4 touches, opened 4, "
        "clicked pricing twice, clicked when-to-replace-reporting once, "
        "came back on 2 Jun by score."
    )
    assert (history.opened, [(c.label, c.count) for c in history.clicks]) == (
        4,
        [("pricing", 2), ("when-to-replace-reporting", 1)],
    )


def test_other_endings_and_zones() -> None:
    quiet = summarize(
        came_back(
            status="active", exit_reason=None, ended_at=None, touches=1, reason="tagged cold"
        ),
        [],
        now=JUN_2,
    )
    assert quiet.summary == (
        "Enrolled on 3 Mar (tagged cold), sequence not-ready: 1 touch, still in the sequence."
    )
    left = summarize(came_back(exit_reason="unsubscribe"), [], now=JUN_2)
    assert left.summary.endswith("4 touches, unsubscribed on 2 Jun.")
    raised = summarize(came_back(exit_reason="hand_raise"), [], now=JUN_2 + timedelta(days=300))
    assert raised.summary.endswith("came back on 2 Jun 2026 by raising a hand.")
    assert raised.summary.startswith("Recycled on 3 Mar 2026 ")
    # Days are the reader's: 00:30 UTC on 3 Mar is still 2 Mar in New York.
    late = datetime(2026, 3, 3, 0, 30, tzinfo=UTC)
    assert day_text(late, "America/New_York", now=JUN_2) == "2 Mar"


def test_newest_first_and_bounded() -> None:
    older = came_back(id=1, enrolled_at=MAR_3 - timedelta(days=200))
    newer = came_back(id=2)
    assert [h.enrollment_id for h in nurture_history([older, newer], [])] == [2, 1]
    many = [came_back(id=i, enrolled_at=MAR_3 + timedelta(days=i)) for i in range(9)]
    assert len(nurture_history(many, [], limit=5)) == 5


def test_link_labels() -> None:
    assert link_label(PRICING) == "pricing"
    assert link_label("https://x.example/guides/report.pdf") == "report"
    assert link_label("https://x.example/") == "x.example"
