"""How much free-form JSON one object may carry.

Lead ``attributes`` and activity ``properties`` are free-form on purpose: every team
records different facts. Without bounds one request could store megabytes that every
later read of the lead, its timeline and its handoff packet sends back again. These
limits keep an object to what a person or a form produces: a size for the whole object
(as compact JSON, the way it is stored), a number of keys at every level, a nesting
depth, and a length for each text. They are settings (``BATON_JSON_MAX_*``) so a team
that imports wide files can raise them; callers pass them as Pydantic validation
context under :data:`CONTEXT_KEY`, and without it the defaults below apply.

What JSON columns cannot store faithfully is refused whatever the limits: NaN and
infinities, and the NUL character.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

CONTEXT_KEY = "json_limits"
"""Key of the validation context that carries a :class:`JsonLimits`."""


@dataclass(frozen=True)
class JsonLimits:
    """Bounds for one free-form JSON object (``attributes``, ``properties``)."""

    max_bytes: int = 65_536
    """Size of the whole object as compact UTF-8 JSON."""
    max_keys: int = 200
    """Keys counted at every level of nesting."""
    max_depth: int = 10
    """Levels of objects and lists inside the object."""
    max_string: int = 10_000
    """Characters in one text value or key."""


DEFAULT_JSON_LIMITS = JsonLimits()


def limits_from(context: object) -> JsonLimits:
    """The limits a caller put in the validation context, else the defaults."""
    if isinstance(context, Mapping):
        found = context.get(CONTEXT_KEY)
        if isinstance(found, JsonLimits):
            return found
    return DEFAULT_JSON_LIMITS


def check_json(value: Any, limits: JsonLimits = DEFAULT_JSON_LIMITS) -> Any:
    """Return ``value`` unchanged, or raise :class:`ValueError` naming the first place
    (``a.b[2]``) that breaks a limit or cannot be stored."""
    if type(value) is dict and _flat_texts_pass(value, limits):
        return value
    keys = 0

    def where(path: str) -> str:
        return f" at {path}" if path else ""

    def text(item: str, path: str, what: str) -> None:
        if "\x00" in item:
            raise ValueError(f"{what} cannot contain the NUL character{where(path)}")
        if not item.isascii() and _SURROGATE.search(item):
            raise ValueError(
                f"{what} cannot contain a lone surrogate (\\ud800-\\udfff: not Unicode "
                f"text){where(path)}"
            )
        if len(item) > limits.max_string:
            raise ValueError(
                f"{what} of {len(item):,} characters{where(path)}; at most {limits.max_string:,}"
            )

    def walk(item: Any, path: str, depth: int) -> None:
        nonlocal keys
        if isinstance(item, float) and not math.isfinite(item):
            raise ValueError(f"numbers must be finite (no NaN or Infinity){where(path)}")
        if isinstance(item, str):
            text(item, path, "a text")
            return
        if not isinstance(item, dict | list):
            return
        if depth + 1 > limits.max_depth:
            raise ValueError(
                f"nested too deeply{where(path)} (more than {limits.max_depth} levels)"
            )
        if isinstance(item, dict):
            for key, inner in item.items():
                name = str(key)
                text(name, path, "a key")
                keys += 1
                if keys > limits.max_keys:
                    raise ValueError(f"more than {limits.max_keys:,} keys")
                walk(inner, f"{path}.{name}" if path else name, depth + 1)
        else:
            for index, inner in enumerate(item):
                walk(inner, f"{path}[{index}]", depth + 1)

    walk(value, "", 0)
    if _flat_ascii_size_at_most(value) <= limits.max_bytes:
        return value  # the common case (a form's or a CSV row's texts): surely small enough
    size = len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())
    if size > limits.max_bytes:
        raise ValueError(f"{size:,} bytes as JSON; at most {limits.max_bytes:,}")
    return value


def _flat_texts_pass(value: dict[Any, Any], limits: JsonLimits) -> bool:
    """Whether :func:`check_json` surely accepts ``value``, an object whose keys and
    values are all texts (a CSV row's attributes: one Python call per text of a
    30-column file cost more than the rest of the row's validation), checked on the
    texts joined; ``False`` whenever the full walk must tell (it finds and words the
    problem, if any)."""
    if len(value) > limits.max_keys or limits.max_depth < 1:
        return False
    texts = [*value, *value.values()]
    if not set(map(type, texts)) <= _STR:
        return False
    joined = "".join(texts)
    if "\x00" in joined or (texts and max(map(len, texts)) > limits.max_string):
        return False
    if joined.isascii():
        # as _flat_ascii_size_at_most counts: 6 bytes a character at most, quotes etc.
        return 2 + 6 * len(joined) + 6 * len(value) <= limits.max_bytes
    if _SURROGATE.search(joined):
        return False
    size = len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())
    return size <= limits.max_bytes


_STR = frozenset({str})

_SURROGATE = re.compile("[\ud800-\udfff]")
"""Half of a UTF-16 pair on its own (JSON's ``"\\ud800"`` escape decodes to one): no
database can store it as text, and UTF-8 cannot encode it."""


def _flat_ascii_size_at_most(value: Any) -> float:
    """An upper bound of ``value``'s size as compact JSON when it is an object of ASCII
    texts (each character takes at most 6 bytes, ``\\u001f``), else infinity: then only
    encoding it tells."""
    if not isinstance(value, dict):
        return math.inf
    size = 2
    for key, item in value.items():
        if not (type(key) is str and type(item) is str and key.isascii() and item.isascii()):
            return math.inf
        size += 6 * (len(key) + len(item)) + 6  # two pairs of quotes, a colon, a comma
    return size
