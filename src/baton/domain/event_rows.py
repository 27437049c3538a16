"""Engagement events as the ingest stores them, and a cheap way to validate the common ones.

Validating an event with :class:`~baton.domain.activities.ActivityCreate` costs about
ten microseconds, more than storing it. Most events a website or a marketing tool sends
have one plain shape: an email or a lead id, a type spelled as Baton spells it, an ISO
8601 time with its zone, a flat object of short properties, an idempotency key. For
those, :func:`read_event` runs the model's own checks in plain Python; for anything
else it answers ``None`` and :func:`validate_events` lets the model decide. So the
model alone writes every error message, and the fast path only ever accepts: a test
draws rows of every shape and holds :func:`validate_events` equal to validating every
row with the model (the same rows kept with the same values, the same errors).

:class:`EventRow` is what the rest of the ingest reads: the model's fields, with the
type as its text, in a tuple (building a model costs more than checking one).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple

from baton.domain.activities import (
    MAX_FUTURE_SKEW,
    MAX_ID,
    ActivityCreate,
    ActivityType,
    activity_type,
)
from baton.domain.batches import RowError, validate_many
from baton.domain.contact import email_key, simple_email
from baton.domain.leads import checked_email, fold_source
from baton.domain.limits import JsonLimits, limits_from
from baton.domain.moments import iso_instant


class EventRow(NamedTuple):
    """A valid event, as :class:`ActivityCreate` holds it (``type`` as its text).

    ``occurred_text`` is :func:`utc_text` of ``occurred_at`` when the fast path read the
    time in UTC's own spelling (taken from the text as sent: the store then need not
    write the datetime out again, which costs more than reading it); ``None`` otherwise
    (and always for a model's row). ``email_key`` is
    :func:`~baton.domain.contact.email_key` of ``email`` where the fast path had it at
    hand (remembered with the address), else ``None`` (the store works it out)."""

    email: str | None
    lead_id: int | None
    type: str
    occurred_at: datetime | None
    properties: dict[str, Any]
    idempotency_key: str | None
    source: str | None
    campaign: str | None
    occurred_text: str | None = None
    email_key: str | None = None


def event_row(model: ActivityCreate) -> EventRow:
    """The row of an already validated model."""
    return EventRow(
        model.email,
        model.lead_id,
        model.type.value,
        model.occurred_at,
        model.properties,
        model.idempotency_key,
        model.source,
        model.campaign,
    )


def validate_events(
    rows: Sequence[tuple[int, Any]], context: Mapping[str, Any]
) -> tuple[list[tuple[int, EventRow]], list[RowError]]:
    """Numbered rows (raw mappings or :class:`ActivityCreate` models) split into valid
    events, in row order, and the errors of the others: exactly what validating each raw
    row with :class:`ActivityCreate` in ``context`` gives (see the module docstring),
    except for :attr:`EventRow.occurred_text`, which only the fast path fills in."""
    good: list[tuple[int, EventRow]] = []
    rest: list[tuple[int, Mapping[str, Any]]] = []
    fast = _FastRules.of(context)
    read = fast.read if fast is not None else _never
    keep = good.append
    for number, raw in rows:
        row = read(raw)
        if row is not None:
            keep((number, row))
        elif isinstance(raw, ActivityCreate):
            keep((number, event_row(raw)))
        else:
            rest.append((number, raw))
    if not rest:
        return good, []
    checked, errors = validate_many(ActivityCreate, rest, context)
    good.extend((number, event_row(model)) for number, model in checked)
    good.sort(key=lambda pair: pair[0])
    return good, errors


def _never(raw: Any) -> EventRow | None:
    return None


def read_event(raw: Any, context: Mapping[str, Any]) -> EventRow | None:
    """The event ``raw`` holds when it has the common shape and passes every check of
    :class:`ActivityCreate` in ``context``; ``None`` otherwise (then only the model
    can tell whether it is valid, and why not)."""
    fast = _FastRules.of(context)
    return fast.read(raw) if fast is not None else None


def utc_text(moment: datetime) -> str:
    """An aware time as the text of its UTC wall clock, ``YYYY-MM-DD HH:MM:SS.ffffff``
    (ISO 8601 with a space, always with microseconds, without the zone): the text a
    database without a time zone type keeps, whose order is the order of the times."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime: its instant is unknown")
    if moment.tzinfo is not UTC:
        moment = moment.astimezone(UTC)
    return moment.isoformat(" ", "microseconds")[:-6]  # without "+00:00"


_FIELDS = frozenset(ActivityCreate.model_fields)
_TYPES: dict[str, str] = {t.value: t.value for t in ActivityType}
"""Types as sent, as Baton spells them (other spellings go through activity_type)."""
_CACHED = 20_000
"""Most spellings of types remembered per batch."""
_EMAILS: dict[str, tuple[str, str]] = {}
"""Addresses as sent -> normalized, and its key (:func:`email_key`), across batches (a
lead's events come in many batches). A plain dict, emptied when it holds
:data:`_EMAILS_KEPT`: a hit costs one look-up and a miss one plain check, where an LRU's
bookkeeping on every call cost more than the check itself once its size was outrun (1.8
µs per address against 1.0; the result depends on the address alone)."""
_EMAILS_KEPT = 1 << 17
"""131,072 addresses, about 22 MB at most (measured: 11 MB of entries, and the addresses
as sent kept alive): enough for the leads of a large ingest, whose events for a lead
come in many batches."""
_MAX_NUMBER = 10**15
"""Integers up to this size take at most 16 characters as JSON."""


class _FastRules:
    """The checks of :class:`ActivityCreate` for rows of the common shape, with the
    validation context read once per batch."""

    __slots__ = ("latest", "limits", "spellings")

    def __init__(self, limits: JsonLimits, now: datetime | None) -> None:
        self.limits = limits
        self.latest = now + MAX_FUTURE_SKEW if now is not None else None
        self.spellings: dict[str, str] = dict(_TYPES)

    @classmethod
    def of(cls, context: Mapping[str, Any]) -> _FastRules | None:
        """The rules for ``context``; ``None`` for a file's rows (``naive_timezone``:
        times in many formats, ids as text), which the model reads."""
        if context.get("naive_timezone"):
            return None
        now = context.get("now")
        limits = limits_from(context)
        if limits.max_depth < 1:
            return None
        return cls(limits, now if isinstance(now, datetime) else None)

    def read(self, raw: Any) -> EventRow | None:
        if type(raw) is not dict or not _FIELDS.issuperset(raw):
            return None
        get = raw.get
        email = get("email")
        lead_id = get("lead_id")
        if email is not None:
            known_email = _EMAILS.get(email) if type(email) is str else None
            if known_email is None:
                if not _plain_text(email, 3, 254):
                    return None
                # Trimmed already (a plain text): the library only when not plain ASCII.
                normalized = simple_email(email)
                if normalized is None:
                    try:
                        normalized = checked_email(email)
                    except ValueError:
                        return None
                    if normalized is None:
                        return None
                if len(_EMAILS) >= _EMAILS_KEPT:
                    _EMAILS.clear()
                key_of_email = email_key(normalized)
                # One text kept where the three are equal (the common address).
                if normalized == email:
                    normalized = email
                if key_of_email == normalized:
                    key_of_email = normalized
                known_email = _EMAILS[email] = (normalized, key_of_email)
            email, key_of_email = known_email
        else:
            key_of_email = None
        if lead_id is not None and not (type(lead_id) is int and 1 <= lead_id <= MAX_ID):
            return None
        if email is None and lead_id is None:
            return None
        kind = get("type")
        if type(kind) is not str:
            return None
        known = self.spellings.get(kind)
        if known is None:
            try:
                known = activity_type(kind).value
            except ValueError:
                return None
            if len(self.spellings) < _CACHED:
                self.spellings[kind] = known
        occurred_at = get("occurred_at")
        text = None
        if occurred_at is not None:
            # As the model reads a time: ISO 8601 text with its zone, 1970 to 2200 in
            # UTC, not too far ahead.
            if type(occurred_at) is not str:
                return None
            sent = occurred_at
            size = len(sent)
            if (size == 20 and sent[4::3] == "--T::Z") or (
                size == 25 and sent[4::3] == "--T::+:" and sent[19:] == "+00:00"
            ):
                # The commonest spelling (whole seconds in UTC), told by its separators:
                # fromisoformat then reads ASCII digits only, and checks the day and the
                # time of day as the pattern does.
                try:
                    occurred_at = datetime.fromisoformat(sent)
                except ValueError:
                    return None
                if not 1970 <= occurred_at.year <= 2200:
                    return None
                text = sent[:19].replace("T", " ") + ".000000"
            else:
                spelled = iso_instant(sent)
                if spelled is None:
                    return None
                sent = spelled
                try:
                    occurred_at = datetime.fromisoformat(sent)
                except ValueError:
                    return None
                if occurred_at.tzinfo is not UTC:
                    if occurred_at.tzinfo is None:
                        return None
                    occurred_at = occurred_at.astimezone(UTC)
                elif size > 20 and sent[19] == "." and (sent[-1] == "Z" or sent[-6:] == "+00:00"):
                    # A fraction of a second in UTC: padded to microseconds.
                    clock = sent[:-1] if sent[-1] == "Z" else sent[:-6]
                    text = f"{clock[:10]} {clock[11:19]}.{clock[20:]:0<6}"
                if not 1970 <= occurred_at.year <= 2200:
                    return None
            if self.latest is not None and occurred_at > self.latest:
                return None
        properties = get("properties", _EMPTY)
        if type(properties) is not dict:
            return None
        if properties and not self._flat_properties(properties):
            return None
        key = get("idempotency_key")
        # The common key (printable ASCII, unpadded) is told without a call.
        if (
            key is not None
            and not (
                type(key) is str
                and 0 < len(key) <= 200
                and key.isascii()
                and key.isprintable()
                and key[0] != " "
                and key[-1] != " "
            )
            and not _plain_text(key, 1, 200, True)
        ):
            return None
        source = get("source")
        if source is not None:
            if not _plain_text(source, 0, 200, True):
                return None
            source = fold_source(source) or None
        campaign = get("campaign")
        if campaign is not None and not _plain_text(campaign, 0, 200, True):
            return None
        # The caller's properties object itself (the model would copy it): nothing
        # in the ingest changes it. Built by tuple's own constructor: the named tuple's
        # generated one adds a Python call per row.
        return _new_tuple(
            EventRow,
            (
                email,
                lead_id,
                known,
                occurred_at,
                properties,
                key,
                source,
                campaign,
                text,
                key_of_email,
            ),
        )

    def _flat_properties(self, properties: dict[Any, Any]) -> bool:
        """Whether a one-level object of texts, numbers, booleans and nulls keeps within
        the JSON limits, judged without encoding it (a bound of its compact size)."""
        limits = self.limits
        if len(properties) > limits.max_keys:
            return False
        longest = limits.max_string
        size = 2
        for key, value in properties.items():
            # The common texts (printable ASCII) pass without a call.
            if type(key) is not str or len(key) > longest:
                return False
            if not (key.isascii() and key.isprintable()) and not _storable_text(key, longest):
                return False
            kind = type(value)
            if kind is str:
                if len(value) > longest:
                    return False
                if not (value.isascii() and value.isprintable()) and not _storable_text(
                    value, longest
                ):
                    return False
                size += 6 * len(value) + 2
            elif kind is int:
                if not -_MAX_NUMBER < value < _MAX_NUMBER:
                    return False
                size += 16
            elif kind is float:
                if not math.isfinite(value):
                    return False
                size += 24
            elif value is None or kind is bool:
                size += 5
            else:
                return False
            size += 6 * len(key) + 4  # its quotes, the colon and a comma
        return size <= limits.max_bytes


_EMPTY: dict[str, Any] = {}
_new_tuple = tuple.__new__


def _plain_text(value: Any, shortest: int, longest: int, nul: bool = False) -> bool:
    """A text the model keeps as it is (nothing to strip; Unicode text pydantic-core can
    read; with ``nul``, without the NUL character) whose length is in range."""
    if type(value) is not str or not shortest <= len(value) <= longest:
        return False
    if value.isascii() and value.isprintable():  # the common case: no NUL, no surrogate
        return not value or (value[0] != " " and value[-1] != " ")
    if value and (value[0].isspace() or value[-1].isspace()):
        return False
    if nul and "\x00" in value:
        return False
    return value.isascii() or not _SURROGATE.search(value)


def _storable_text(value: str, longest: int) -> bool:
    """The checks of :func:`~baton.domain.limits.check_json` on one text."""
    if len(value) > longest:
        return False
    if value.isascii() and value.isprintable():
        return True
    return "\x00" not in value and (value.isascii() or not _SURROGATE.search(value))


_SURROGATE = re.compile("[\ud800-\udfff]")
