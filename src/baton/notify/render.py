"""Turning a handoff packet into the email a rep reads (plain text and HTML).

Templates live beside this module (``templates/``) and are rendered with Jinja2; the
HTML one autoescapes, so a lead's name can never inject markup into a rep's inbox.

Times are shown in the reader's zone with its abbreviation (``Mon 2 Mar 10:00 EST``,
the packet's ``time_zone``), never as UTC a person has to convert.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from jinja2 import Environment, PackageLoader, StrictUndefined, pass_context, select_autoescape
from jinja2.runtime import Context

if TYPE_CHECKING:
    from baton.services.packet import HandoffPacket


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    text: str
    html: str


@lru_cache(maxsize=1)
def _env() -> Environment:
    env = Environment(
        loader=PackageLoader("baton.notify", "templates"),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = _when
    return env


@pass_context
def _when(context: Context, value: datetime | None) -> str:
    """A time as the packet's reader reads it, or a dash."""
    packet = context.get("p")
    if not value:
        return "—"
    if packet is None:
        return f"{value:%Y-%m-%d %H:%M} UTC"
    return str(packet.local(value))


def who_of(packet: HandoffPacket) -> str:
    """The lead in a few words: name (company), else email."""
    lead = packet.lead
    name = " ".join(x for x in (lead.first_name, lead.last_name) if x) or lead.email or "a lead"
    return f"{name} ({lead.company})" if lead.company else name


SUBJECTS = {
    "handoff.assigned": "New lead for you: {who}",
    "sla.remind": "Reminder: accept {who} before {due}",
    "sla.manager": "SLA missed: {who} (handoff {id})",
    "queue.alert": "Nobody available for {who}: waiting in the unassigned queue",
}


def render_email(
    topic: str, packet: HandoffPacket, *, data: dict[str, Any] | None = None, base_url: str = ""
) -> RenderedEmail:
    """The email for an outbox ``topic`` about ``packet``'s handoff."""
    due = packet.handoff.accept_due_at
    subject = SUBJECTS.get(topic, "Baton: {who}").format(
        who=who_of(packet),
        due=packet.local(due) or "the deadline",
        id=packet.handoff.id,
    )
    context = {
        "topic": topic,
        "p": packet,
        "who": who_of(packet),
        "data": data or {},
        "link": f"{base_url.rstrip('/')}/api/v1/handoffs/{packet.handoff.id}/packet"
        if base_url
        else None,
    }
    env = _env()
    return RenderedEmail(
        subject=subject[:200],
        text=env.get_template("packet.txt").render(context),
        html=env.get_template("packet.html").render(context),
    )
