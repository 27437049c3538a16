"""A lead's time in nurture, in one sentence for the rep who gets it back.

"Recycled on 3 Mar (not ready), sequence not-ready: 4 touches, opened 3, clicked pricing
twice, came back on 2 Jun by score." The rep sees why the lead went away, what
marketing sent it, what it read, and what brought it back, so the first call starts
where nurture left off.

Pure: enrollments, sends and the ``email_open`` / ``email_click`` activities come in as
plain values (:mod:`baton.services.packet` reads them); days are shown in the reader's
zone, English names whatever the machine's locale.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlparse
from zoneinfo import ZoneInfo

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

CAME_BACK = {
    "re_mql": "by score",
    "hand_raise": "by raising a hand",
    "reply": "by replying",
    "sales_took_back": "when sales took it back",
}
"""How an enrollment's exit reads when the lead returned to sales."""
ENDED = {
    "unsubscribe": "unsubscribed",
    "hard_bounce": "its address bounced",
    "max_touches": "sequence finished",
    "completed": "sequence finished",
    "disqualified": "disqualified",
    "erased": "erased on request",
    "error": "stopped by an error",
    "manual": "taken out by hand",
}
"""How the other endings read."""


@dataclass(frozen=True)
class EnrollmentFacts:
    """One enrollment as stored (``nurture_enrollments``)."""

    id: int
    sequence: str
    reason: str
    enrolled_at: datetime
    status: str
    touches: int = 0
    exit_reason: str | None = None
    ended_at: datetime | None = None


@dataclass(frozen=True)
class LinkClicks:
    """Clicks on one URL of the emails: ``label`` is what the rep reads (``pricing``)."""

    label: str
    url: str
    count: int


@dataclass(frozen=True)
class NurtureHistory:
    """One enrollment, summarised."""

    enrollment_id: int
    sequence: str
    reason: str
    enrolled_at: datetime
    status: str
    touches: int
    opened: int
    """Emails opened (each sent email counts once however often it was opened)."""
    clicks: list[LinkClicks] = field(default_factory=list)
    exit_reason: str | None = None
    ended_at: datetime | None = None
    summary: str = ""


def day_text(at: datetime, zone: str = "UTC", *, now: datetime | None = None) -> str:
    """``3 Mar`` in ``zone`` (``3 Mar 2025`` when not the year of ``now``)."""
    place = ZoneInfo(zone)
    local = (at if at.tzinfo else at.replace(tzinfo=UTC)).astimezone(place)
    year = "" if now is not None and now.astimezone(place).year == local.year else f" {local.year}"
    return f"{local.day} {_MONTHS[local.month - 1]}{year}"


def link_label(url: str) -> str:
    """What a URL is about, for a person: its last path segment (``pricing``,
    ``when-to-replace-reporting``), else its host."""
    parsed = urlparse(url)
    parts = [p for p in parsed.path.split("/") if p]
    if parts:
        label = parts[-1].rsplit(".", 1)[0] if "." in parts[-1] else parts[-1]
        return label[:60] or parsed.netloc
    return parsed.netloc or url[:60]


def times(count: int) -> str:
    return {1: "once", 2: "twice"}.get(count, f"{count} times")


def _why(reason: str) -> str:
    """``rejected: not_ready`` -> ``not ready``; ``tagged cold`` as it is."""
    text = reason.split(":", 1)[1] if reason.startswith("rejected:") else reason
    return text.strip().replace("_", " ")


def summarize(
    enrollment: EnrollmentFacts,
    engagement: Iterable[tuple[str, datetime, Mapping[str, Any]]],
    *,
    zone: str = "UTC",
    now: datetime | None = None,
) -> NurtureHistory:
    """The history of ``enrollment`` from its ``(type, occurred_at, properties)``
    opens and clicks (others, and those of other enrollments, are ignored)."""
    opened: set[int] = set()
    clicks: dict[str, int] = {}
    for kind, _, props in engagement:
        if props.get("enrollment_id") != enrollment.id:
            continue
        step = props.get("step")
        if kind == "email_open" and isinstance(step, int):
            opened.add(step)
        elif kind == "email_click":
            url = props.get("url")
            if isinstance(url, str) and url:
                clicks[url] = clicks.get(url, 0) + 1
                if isinstance(step, int):
                    opened.add(step)  # a click is an open, even with images blocked
    clicked = sorted(
        (LinkClicks(link_label(u), u, n) for u, n in clicks.items()),
        key=lambda c: (-c.count, c.label),
    )
    head = (
        f"{_verb(enrollment.reason)} on {day_text(enrollment.enrolled_at, zone, now=now)}"
        f" ({_why(enrollment.reason)}), sequence {enrollment.sequence}:"
    )
    facts = [f"{enrollment.touches} touch{'' if enrollment.touches == 1 else 'es'}"]
    if opened:
        facts.append(f"opened {len(opened)}")
    facts.extend(f"clicked {c.label} {times(c.count)}" for c in clicked[:3])
    if len(clicked) > 3:
        facts.append(f"clicked {len(clicked) - 3} more link(s)")
    facts.append(_ending(enrollment, zone, now))
    return NurtureHistory(
        enrollment_id=enrollment.id,
        sequence=enrollment.sequence,
        reason=enrollment.reason,
        enrolled_at=enrollment.enrolled_at,
        status=enrollment.status,
        touches=enrollment.touches,
        opened=len(opened),
        clicks=clicked,
        exit_reason=enrollment.exit_reason,
        ended_at=enrollment.ended_at,
        summary=f"{head} {', '.join(facts)}.",
    )


def _verb(reason: str) -> str:
    return "Recycled" if reason.startswith("rejected") else "Enrolled"


def _ending(enrollment: EnrollmentFacts, zone: str, now: datetime | None) -> str:
    if enrollment.status == "active" or enrollment.ended_at is None:
        return "still in the sequence"
    when = day_text(enrollment.ended_at, zone, now=now)
    reason = enrollment.exit_reason or enrollment.status
    if reason in CAME_BACK:
        return f"came back on {when} {CAME_BACK[reason]}"
    return f"{ENDED.get(reason, reason.replace('_', ' '))} on {when}"


def nurture_history(
    enrollments: Sequence[EnrollmentFacts],
    engagement: Sequence[tuple[str, datetime, Mapping[str, Any]]],
    *,
    zone: str = "UTC",
    now: datetime | None = None,
    limit: int = 5,
) -> list[NurtureHistory]:
    """Every enrollment summarised, newest first (at most ``limit``)."""
    newest = sorted(enrollments, key=lambda e: (e.enrolled_at, e.id), reverse=True)[:limit]
    return [summarize(e, engagement, zone=zone, now=now) for e in newest]
