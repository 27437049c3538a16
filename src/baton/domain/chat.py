"""Chat notifications: what a Slack or Microsoft Teams incoming webhook receives, and
which webhook URLs Baton accepts (no I/O here).

An incoming-webhook URL is a secret: whoever holds it posts into the channel. It is
checked like an outbound webhook's (:mod:`baton.domain.egress`: no loopback, private
or link-local address unless allow-listed) and must use HTTPS in production; once
saved, people only ever see :func:`url_hint`.

The message says who the lead is, why now (the hand-raise, or the top rules of the
score), the deadline in the rep's zone with its label (``Mon 2 Mar 10:20 EST``) and
links to the packet page. Slack gets ``{"text", "blocks"}`` (Block Kit; ``text`` is the
notification's fallback); Teams gets a ``message`` with one Adaptive Card attachment,
the form both Teams' incoming webhooks and its Workflows accept.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Literal
from urllib.parse import urlsplit

from baton.domain.egress import EgressPolicy
from baton.domain.errors import FieldProblem

ChatKind = Literal["slack", "teams"]
CHAT_KINDS: Final[tuple[ChatKind, ...]] = ("slack", "teams")
CHAT_TOPICS: Final[tuple[str, ...]] = ("handoff.assigned", "sla.remind", "sla.manager")
"""What a chat channel hears: an assignment, a reminder, an escalation to the manager."""

MAX_URL = 2000
MAX_LABEL = 100

HEADLINES: Final[dict[str, str]] = {
    "handoff.assigned": "New lead for {rep}: {who}",
    "sla.remind": "Reminder: {rep}, accept {who}",
    "sla.manager": "SLA missed: {who} ({rep})",
}


def check_chat_url(url: str, policy: EgressPolicy, *, production: bool) -> list[FieldProblem]:
    """Why ``url`` cannot be a chat channel's webhook (empty when it can): HTTPS (plain
    HTTP only outside production), a host, and a host the egress rules allow. Problems
    never quote the URL (it is a secret)."""
    if not url or len(url) > MAX_URL:
        return [FieldProblem("url", f"give a URL of 1 to {MAX_URL} characters")]
    if not url.isascii() or not url.isprintable() or " " in url:
        # As the API's pattern: no space, line break or look-alike letter (IDN: xn--…).
        return [FieldProblem("url", "use printable ASCII only (an international host as xn--…)")]
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 (raises on a bad port)
    except ValueError:
        return [FieldProblem("url", "not a valid URL")]
    allowed_schemes = ("https",) if production else ("http", "https")
    if parts.scheme not in allowed_schemes:
        need = "https://" if production else "http:// or https://"
        return [FieldProblem("url", f"must start with {need}")]
    if not host:
        return [FieldProblem("url", "needs a host, e.g. https://hooks.slack.com/services/…")]
    if parts.username or parts.password:
        return [FieldProblem("url", "must not carry a user name or password")]
    problem = policy.host_problem(host)
    if problem is not None:
        return [FieldProblem("url", problem)]
    return []


def url_hint(url: str) -> str:
    """What people see of a saved URL: its host and the last 4 characters of a long
    path (``hooks.slack.com/…x9Qz``), enough to tell two channels apart, never enough
    to post."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    if parts.port:
        host = f"{host}:{parts.port}"
    tail = (parts.path + ("?" + parts.query if parts.query else "")).rstrip("/")
    return f"{host}/…{tail[-4:]}" if len(tail) >= 16 else f"{host}/…"


@dataclass(frozen=True)
class ChatMessage:
    """What a chat notification says, already in the reader's words and zone."""

    topic: str
    handoff_id: int
    rep: str
    who: str
    why_now: str
    deadline_label: str
    deadline: str
    link: str
    detail: str | None = None
    """A line more (an escalation's reason)."""

    @property
    def headline(self) -> str:
        return HEADLINES.get(self.topic, "Baton: {who}").format(rep=self.rep, who=self.who)


def _slack_escape(text: str) -> str:
    """Slack's three control characters in ``mrkdwn`` text."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_payload(message: ChatMessage) -> dict[str, Any]:
    """The body of a Slack incoming-webhook post (Block Kit, with a text fallback)."""
    e = _slack_escape
    lines = [f"*{e(message.headline)}*", f"Why now: {e(message.why_now)}"]
    if message.detail:
        lines.append(e(message.detail))
    lines.append(f"{e(message.deadline_label)}: *{e(message.deadline)}*")
    return {
        "text": f"{message.headline}. {message.deadline_label}: {message.deadline}",
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)}},
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "text": {"type": "plain_text", "text": "Open the packet"},
                        "url": message.link,
                    }
                ],
            },
            {
                "type": "context",
                "elements": [
                    {"type": "mrkdwn", "text": f"<{message.link}|Handoff {message.handoff_id}>"}
                ],
            },
        ],
    }


def teams_payload(message: ChatMessage) -> dict[str, Any]:
    """The body of a Microsoft Teams incoming-webhook post: one Adaptive Card."""
    facts = [
        {"title": "Why now", "value": message.why_now},
        {"title": message.deadline_label, "value": message.deadline},
    ]
    if message.detail:
        facts.append({"title": "Why", "value": message.detail})
    card = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": [
            {
                "type": "TextBlock",
                "text": message.headline,
                "weight": "Bolder",
                "size": "Medium",
                "wrap": True,
            },
            {"type": "FactSet", "facts": facts},
        ],
        "actions": [
            {
                "type": "Action.OpenUrl",
                "title": f"Open the packet (handoff {message.handoff_id})",
                "url": message.link,
            }
        ],
    }
    return {
        "type": "message",
        "attachments": [
            {
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": None,
                "content": card,
            }
        ],
    }


def chat_payload(kind: str, message: ChatMessage) -> dict[str, Any]:
    """The body for a channel of ``kind``."""
    return slack_payload(message) if kind == "slack" else teams_payload(message)
