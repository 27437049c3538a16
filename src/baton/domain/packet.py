"""What a lead is interested in, read from what it did: the part of the handoff
packet that saves the rep from asking "so, what are you looking at?".

Pure: takes activities as plain values and returns ranked topics.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlparse

_TITLE_KEYS = ("title", "name", "asset", "webinar", "subject")


@dataclass(frozen=True)
class Interest:
    """A topic (a product, a page, a piece of content) with how often and how
    recently the lead showed interest in it."""

    topic: str
    kind: str
    count: int
    last_at: datetime


def _topics(kind: str, props: Mapping[str, Any]) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    product = props.get("product")
    if isinstance(product, str) and product.strip():
        found.append(("product", product.strip()))
    if kind == "page_view":
        raw = props.get("url") or props.get("page")
        if isinstance(raw, str) and raw:
            path = urlparse(raw).path or raw
            parts = [p for p in path.split("/") if p]
            if parts and parts[0] in ("product", "products") and len(parts) > 1:
                found.append(("product", parts[1]))
            elif parts:
                found.append(("page", "/" + "/".join(parts[:2])))
    elif kind in ("content_download", "webinar_registered", "webinar_attended", "event_booth_scan"):
        title = next((props[k] for k in _TITLE_KEYS if isinstance(props.get(k), str)), None)
        if title:
            found.append(("webinar" if kind.startswith("webinar") else "content", title))
    return found


def interests(
    activities: Iterable[tuple[str, datetime, Mapping[str, Any]]], *, limit: int = 10
) -> list[Interest]:
    """Topics from ``(type, occurred_at, properties)`` triples, most frequent first
    (ties: most recent first)."""
    counts: dict[tuple[str, str], list[Any]] = {}
    for kind, at, props in activities:
        for topic_kind, topic in _topics(kind, props or {}):
            entry = counts.setdefault((topic_kind, topic), [0, at])
            entry[0] += 1
            entry[1] = max(entry[1], at)
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1][0], -kv[1][1].timestamp(), kv[0][1]))
    return [Interest(topic, kind, n, last) for (kind, topic), (n, last) in ranked[:limit]]
