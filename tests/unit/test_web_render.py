"""The web app's template filters and helpers (no database, no server)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from baton.web.deps import safe_next
from baton.web.render import duration, money, percent, templates

NOW = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)


def _render(source: str, **values: object) -> str:
    return templates.from_string(source).render(
        {"zone": "America/New_York", "now": NOW, "csrf_token": "tok", **values}
    )


def test_times_are_shown_in_the_readers_zone_with_time_left_or_late() -> None:
    due = NOW + timedelta(minutes=25)
    assert _render("{{ at|when }}", at=due) == "Mon 2 Mar 09:25 EST"
    assert _render("{{ at|when('Europe/London') }}", at=due) == "Mon 2 Mar 14:25 GMT"
    assert _render("{{ at|countdown }}", at=due) == "25 min left"
    assert _render("{{ at|countdown }}", at=NOW - timedelta(hours=1, minutes=5)) == (
        "overdue by 1 h 5 min"
    )
    assert _render("{{ at|ago }}", at=NOW - timedelta(hours=3)) == "3 h ago"
    assert _render("{{ at|when }} {{ at|countdown }}", at=None) == "— —"


def test_numbers() -> None:
    assert [duration(s) for s in (5, 600, 3600 * 3 + 300, 86400 * 3 + 7200)] == [
        "5 s",
        "10 min",
        "3 h 5 min",
        "3 d 2 h",
    ]
    assert money(12500) == "12,500" and money(1234.5, "USD") == "USD 1,234.50"
    assert percent(0.4251) == "43%" and percent(0.4251, 1) == "42.5%" and percent(None) == "—"


def test_output_is_escaped_and_forms_carry_the_token() -> None:
    assert _render("{{ v }}", v="<script>") == "&lt;script&gt;"
    assert _render("{{ csrf_field() }}") == '<input type="hidden" name="csrf_token" value="tok">'


def test_only_local_paths_are_followed_after_sign_in() -> None:
    assert safe_next("/inbox?x=1") == "/inbox?x=1"
    for bad in (None, "", "https://evil.example/", "//evil.example", "/\\evil.example", "inbox"):
        assert safe_next(bad) == "/"
