"""The features a lead had at one moment, for a model to learn from or to score.

**Leakage guard.** Everything a model sees is what was known at ``as_of``: events that
happened after it are dropped here, whoever calls, so a model trained on features "as
of the handoff" never learns from what sales did afterwards. Lead fields are the stored
values; the fields sales fills in after contact (a CRM's "Tags", "Lead Quality"...)
must be left out by name (:attr:`FeatureSpec.exclude`, with :data:`NEVER_FEATURES`
always out), because Baton keeps no per-field history to rewind them.

Features are a flat ``name -> value`` mapping: a string is a category (one-hot
encoded by the model, compared case- and space-insensitively, "Select" and blanks
missing), a number is a number. Names read like the contract's fields
(``country``, ``attributes.lead_origin``, ``events.page_view``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from baton.domain.contact import FREE_MAIL_DOMAINS

FeatureValue = float | str
FeatureRow = dict[str, FeatureValue]

LEAD_FEATURE_FIELDS: tuple[str, ...] = (
    "source",
    "campaign",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "country",
    "region",
    "title",
)
"""Lead columns a model may use by default (known at capture time)."""

NEVER_FEATURES: frozenset[str] = frozenset(
    {
        "stage",
        "stage_changed_at",
        "owner",
        "first_rep_id",
        "mql_at",
        "sal_at",
        "sql_at",
        "opportunity_at",
        "customer_at",
        "handoff_outcomes",
        "email",
        "phone",
        "first_name",
        "last_name",
        "external_id",
    }
)
"""Never features: outcomes (they are the label) and identities (a model that learns
a name learns nothing it can use on the next lead)."""

IDENTITY_WORDS: frozenset[str] = frozenset(
    {"email", "phone", "telephone", "fax", "address", "ip", "ssn", "passport", "password"}
    | {"secret", "token", "birthday", "dob", "linkedin"}
)
"""Words that make an attribute key an identity (``contact_email``, ``Phone Number``,
``ip_address``), unless it is a consent flag (``Do Not Email``)."""

NAME_KEYS: frozenset[str] = frozenset(
    {"name", "first_name", "last_name", "full_name", "contact_name", "lead_name"}
    | {"person_name", "surname", "given_name", "family_name", "firstname", "lastname"}
    | {"fullname", "mobile", "mobile_number", "email_id"}
)
CONSENT_WORDS: frozenset[str] = frozenset({"do", "not", "no", "opt", "optin", "optout", "consent"})

EMAIL_VALUE = re.compile(r"[^@\s]+@[^@\s]+\.[a-z]{2,}")
"""A value that holds an email address is never a feature value, whatever its key."""


def is_identity(key: str) -> bool:
    """Whether an attribute key names a person's identity or contact data: never a
    feature, whatever the history looks like, so neither a model's top features nor a
    score explanation can show one lead's personal data to another reader."""
    words = [w for w in re.split(r"[^a-z0-9]+", key.lower()) if w]
    snake = "_".join(words)
    if snake in NEVER_FEATURES or snake in NAME_KEYS:
        return True
    return any(w in IDENTITY_WORDS for w in words) and not any(w in CONSENT_WORDS for w in words)


BLANKS: frozenset[str] = frozenset({"", "select", "n/a", "na", "none", "null", "-", "nan"})
"""Category values that mean "not given" (X Education's forms say "Select")."""

RECENT_DAYS = 30.0
TITLE_WORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("executive", ("chief", "ceo", "cto", "cfo", "coo", "cmo", "founder", "owner", "president")),
    ("vp", ("vp", "vice president")),
    ("director", ("director", "head")),
    ("manager", ("manager", "lead")),
    ("student", ("student", "intern")),
)


@dataclass(frozen=True)
class FeatureSpec:
    """Which features a model uses; stored with the model, so scoring a lead later
    builds exactly the row the model was trained on.

    ``fields``: lead columns; ``attributes``: keys of ``attributes``; ``event_types``:
    activity types counted (all before ``as_of``, and within the last 30 days);
    ``exclude``: names left out (checked against ``fields``, ``attributes.<key>`` and
    ``events.<type>``)."""

    fields: tuple[str, ...] = LEAD_FEATURE_FIELDS
    attributes: tuple[str, ...] = ()
    event_types: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()

    def to_json(self) -> dict[str, list[str]]:
        return {
            "fields": list(self.fields),
            "attributes": list(self.attributes),
            "event_types": list(self.event_types),
            "exclude": list(self.exclude),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Sequence[str]]) -> FeatureSpec:
        return cls(
            fields=tuple(data.get("fields", ())),
            attributes=tuple(data.get("attributes", ())),
            event_types=tuple(data.get("event_types", ())),
            exclude=tuple(data.get("exclude", ())),
        )

    def used_fields(self) -> tuple[str, ...]:
        gone = set(self.exclude) | NEVER_FEATURES
        return tuple(f for f in self.fields if f not in gone)

    def used_attributes(self) -> tuple[str, ...]:
        gone = set(self.exclude)
        return tuple(
            a
            for a in self.attributes
            if f"attributes.{a}" not in gone and a not in gone and not is_identity(a)
        )

    def used_event_types(self) -> tuple[str, ...]:
        gone = set(self.exclude)
        return tuple(t for t in self.event_types if f"events.{t}" not in gone)


@dataclass(frozen=True)
class TimedEvent:
    """What features need of an activity: its type and when it happened."""

    type: str
    occurred_at: datetime


def category(value: Any) -> str | None:
    """A category value folded for comparison, or None when it means "not given"."""
    if value is None or isinstance(value, bool):
        return None if value is None else str(value).lower()
    text = " ".join(str(value).split()).lower()
    return None if text in BLANKS else text[:80]


def number(value: Any) -> float | None:
    """A finite number, or None (booleans and text that is not a number are not)."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value) if math.isfinite(float(value)) else None
    if isinstance(value, str):
        try:
            parsed = float(value.replace(",", "").strip())
        except ValueError:
            return None
        return parsed if math.isfinite(parsed) else None
    return None


def _title_words(title: Any) -> list[str]:
    text = f" {str(title).lower()} " if title else ""
    return [
        name
        for name, words in TITLE_WORDS
        if any(f" {w} " in text or f" {w}," in text for w in words)
    ]


def _value(raw: Any, *, numeric: bool) -> FeatureValue | None:
    if numeric:
        return number(raw)
    found = category(raw)
    return None if found is not None and EMAIL_VALUE.search(found) else found


@dataclass
class _Counts:
    total: dict[str, float] = field(default_factory=dict)
    recent: dict[str, float] = field(default_factory=dict)
    first: datetime | None = None


def lead_features(
    spec: FeatureSpec,
    lead: Mapping[str, Any],
    events: Iterable[TimedEvent],
    as_of: datetime,
    *,
    numeric_attributes: Iterable[str] = (),
) -> FeatureRow:
    """The features of ``lead`` (a mapping of lead columns, ``attributes`` a dict) at
    ``as_of``. Events after ``as_of`` are ignored (the leakage guard); so is the time
    after it: ``days_known`` counts from the lead's creation (or first event) to
    ``as_of``. ``numeric_attributes`` are attribute keys read as numbers."""
    row: FeatureRow = {}
    numeric = set(numeric_attributes)
    for name in spec.used_fields():
        value = category(lead.get(name))
        if value is not None:
            row[name] = value
    if "title" in spec.used_fields():
        row.pop("title", None)
        for word in _title_words(lead.get("title")):
            row[f"title.{word}"] = 1.0
    attributes = lead.get("attributes") or {}
    for key in spec.used_attributes():
        found = _value(attributes.get(key), numeric=key in numeric)
        if found is not None:
            row[f"attributes.{key}"] = found
    email = str(lead.get("email") or "")
    if email and "email" not in spec.exclude:
        domain = email.rpartition("@")[2].lower()
        row["email.free_mail" if domain in FREE_MAIL_DOMAINS else "email.corporate"] = 1.0
    if "phone" not in spec.exclude and lead.get("phone"):
        row["has_phone"] = 1.0
    wanted = set(spec.used_event_types())
    counts = _Counts()
    for event in events:
        if event.occurred_at > as_of:
            continue
        if counts.first is None or event.occurred_at < counts.first:
            counts.first = event.occurred_at
        if event.type not in wanted:
            continue
        counts.total[event.type] = counts.total.get(event.type, 0.0) + 1.0
        if (as_of - event.occurred_at).total_seconds() <= RECENT_DAYS * 86_400:
            counts.recent[event.type] = counts.recent.get(event.type, 0.0) + 1.0
    for kind, count in counts.total.items():
        row[f"events.{kind}"] = math.log1p(count)
    for kind, count in counts.recent.items():
        row[f"events_30d.{kind}"] = math.log1p(count)
    created = lead.get("created_at")
    start = created if isinstance(created, datetime) else counts.first
    if counts.first is not None and start is not None and counts.first < start:
        start = counts.first
    if start is not None and start <= as_of and "days_known" not in spec.exclude:
        row["days_known"] = math.log1p((as_of - start).total_seconds() / 86_400)
    return row


def feature_label(name: str, value: FeatureValue | None = None) -> str:
    """A feature (and its value) in words, for the score explanation."""
    if name.startswith("events_30d."):
        return f"{name.removeprefix('events_30d.').replace('_', ' ')} events in the last 30 days"
    if name.startswith("events."):
        return f"{name.removeprefix('events.').replace('_', ' ')} events"
    if name == "days_known":
        return "time since first touch"
    if name == "has_phone":
        return "has a phone number"
    if name.startswith("email."):
        return f"{name.removeprefix('email.').replace('_', ' ')} email"
    if name.startswith("title."):
        return f"title says {name.removeprefix('title.')}"
    if isinstance(value, str):
        return f"{name} = {value}"
    return name


POSITIVE_WORDS: frozenset[str] = frozenset(
    {"1", "1.0", "yes", "y", "true", "t", "won", "converted"}
)
NEGATIVE_WORDS: frozenset[str] = frozenset({"0", "0.0", "no", "n", "false", "f", "lost"})


def outcome_label(value: Any) -> int | None:
    """An imported outcome column's value as 1 (won), 0 (not won) or None (blank or
    unreadable: no outcome). Shared by training and the backtest, so both read X
    Education's ``Converted`` the same way."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | float):
        return 1 if value == 1 else 0 if value == 0 else None
    text = str(value or "").strip().lower()
    if text in POSITIVE_WORDS:
        return 1
    if text in NEGATIVE_WORDS:
        return 0
    return None
