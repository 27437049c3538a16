"""What a lead is made of, how a capture is validated, and how two records of the same
person are combined.

``LeadCreate`` is the one validated shape of a captured lead, used by the API, the CSV
import and the demo alike. Validation needs one setting, the default phone region, which
callers pass as Pydantic validation context ``{"default_region": "US"}``.

A lead is identified by, in this order: the id another system gave it (``external_system``
and ``external_id``, for leads that come with neither email nor phone, such as a CRM
export), its email, or (only when it has no email) its phone number.

Sources are case-folded when they are captured (``Google``, ``google`` and ``GOOGLE `` are
the one source ``google``), so every report, filter and spend figure agrees on what a
source is without each query having to ignore case.
"""

from __future__ import annotations

import unicodedata
from bisect import bisect_right
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator
from rapidfuzz import fuzz, process

from baton.domain.contact import (
    FREE_MAIL_DOMAINS,
    InvalidContact,
    company_key,
    normalize_country,
    normalize_email,
    normalize_phone,
)
from baton.domain.limits import check_json, limits_from
from baton.domain.privacy import ConsentBasis, decide_consent, read_basis

PROFILE_FIELDS: tuple[str, ...] = (
    "email",
    "phone",
    "first_name",
    "last_name",
    "company",
    "title",
    "country",
    "region",
    "postal_code",
)
"""Fields describing the person: newer non-blank values replace older ones."""

ATTRIBUTION_FIELDS: tuple[str, ...] = (
    "source",
    "campaign",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "utm_term",
    "utm_content",
)
"""First-touch attribution: set once, never overwritten (later touches are recorded as
``last_source`` / ``last_campaign`` and in the timeline)."""

IDENTITY_FIELDS: tuple[str, ...] = ("external_system", "external_id")
"""The id another system gave the lead: set once (with the first capture that carries
it), never replaced, unique per system."""

DEFAULT_EXTERNAL_SYSTEM = "default"
"""The system of an ``external_id`` given without one."""

FOLDED_FIELDS: tuple[str, ...] = ("source", "utm_source")

DEFAULT_REGION = "US"


def checked_email(value: str | None) -> str | None:
    """The email field of every input model (a lead, a call, an activity): normalized,
    or a ``ValueError`` Pydantic reports on the field."""
    if value is None:
        return None
    try:
        return normalize_email(value)
    except InvalidContact as exc:
        raise ValueError(f"not a valid email address: {exc}") from None


def checked_phone(value: str | None, context: Any) -> str | None:
    """The phone field of every input model: E.164, read in the validation context's
    ``default_region`` (the installation's setting) when it has no +country code."""
    if value is None:
        return None
    region = DEFAULT_REGION
    if isinstance(context, Mapping):
        region = str(context.get("default_region", DEFAULT_REGION))
    try:
        return normalize_phone(value, region)
    except InvalidContact as exc:
        raise ValueError(str(exc)) from None


def fold_source(value: str) -> str:
    """The one spelling of a source: inner runs of spaces made one, case-folded."""
    return " ".join(value.split()).casefold()


def _blank_to_none(value: Any) -> Any:
    if isinstance(value, str) and not isinstance(value, Enum):
        if "\x00" in value:
            raise ValueError("text cannot contain the NUL character")
        value = value.strip()
        return value or None
    return value


class LeadCreate(BaseModel):
    """A person captured from any channel. Create-or-update by email: capturing the same
    address again fills in and refreshes, but never blanks a field."""

    model_config = ConfigDict(
        extra="forbid",
        str_max_length=200,
        json_schema_extra={
            "examples": [
                {
                    "email": "dana.reyes@northwind.example.com",
                    "phone": "+1 415 555 0134",
                    "first_name": "Dana",
                    "last_name": "Reyes",
                    "company": "Northwind Traders",
                    "title": "VP Operations",
                    "country": "US",
                    "region": "CA",
                    "postal_code": "94107",
                    "source": "webinar",
                    "campaign": "2026-q4-ops-webinar",
                    "utm_source": "linkedin",
                    "utm_medium": "paid_social",
                    "consent": True,
                    "consent_basis": "consent",
                    "consent_source": "https://northwind.example.com/webinar/register",
                    "attributes": {"employees": 420, "industry": "logistics"},
                }
            ]
        },
    )

    email: str | None = Field(
        None, max_length=254, description="Normalized: trimmed, domain lower-cased."
    )
    phone: str | None = Field(None, max_length=40, description="Normalized to E.164.")
    external_id: str | None = Field(
        None,
        max_length=200,
        description="The lead's id in the system it comes from (a CRM's prospect id): "
        "identifies a lead that has no email or phone; matched before the email.",
    )
    external_system: str | None = Field(
        None,
        max_length=100,
        description=f"The system that gave external_id (case-folded; "
        f"{DEFAULT_EXTERNAL_SYSTEM!r} when omitted). Ids are unique per system.",
    )
    first_name: str | None = None
    last_name: str | None = None
    company: str | None = Field(None, max_length=300)
    title: str | None = Field(None, max_length=300)
    country: str | None = Field(
        None,
        max_length=100,
        description="Stored as the ISO 3166-1 alpha-2 code; codes (DE, DEU) and English "
        "names (Germany) are accepted.",
    )
    region: str | None = Field(None, max_length=100, description="State, province or region code.")
    postal_code: str | None = Field(None, max_length=32)
    source: str | None = Field(
        None, description="Channel of first touch (webinar, ads...); case-folded."
    )
    campaign: str | None = None
    utm_source: str | None = None
    utm_medium: str | None = None
    utm_campaign: str | None = None
    utm_term: str | None = None
    utm_content: str | None = None
    consent: bool | None = Field(
        None,
        description="Marketing email consent. The latest explicit answer wins (a later "
        "opt-out unsubscribes, a later opt-in re-subscribes); blank keeps the old answer. "
        "True alone is no lawful basis for nurture email: give consent_basis.",
    )
    consent_basis: ConsentBasis | None = Field(
        None,
        description="The lawful basis (GDPR Art. 6(1)) for marketing email: consent (an "
        "explicit opt-in: it also lifts an earlier unsubscribe) or legitimate_interest "
        "(never overrides a refusal). Implies consent true; contradicts consent false.",
    )
    consent_source: str | None = Field(
        None,
        max_length=300,
        description="Where the consent answer was given: a form, a page URL, an import "
        "file. Stored (with the time) whenever the answer changes the lead's consent; "
        "left out, the name of who sent the answer (user, API token, intake key) is.",
    )
    attributes: dict[str, Any] = Field(default_factory=dict, description="Free-form facts.")

    @field_validator("*", mode="before")
    @classmethod
    def _strip(cls, value: Any) -> Any:
        return _blank_to_none(value)

    @field_validator("attributes")
    @classmethod
    def _storable(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        return dict(check_json(value, limits_from(info.context)))

    @field_validator("email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        return checked_email(value)

    @field_validator("phone")
    @classmethod
    def _phone(cls, value: str | None, info: ValidationInfo) -> str | None:
        return checked_phone(value, info.context)

    @field_validator("country")
    @classmethod
    def _country(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return normalize_country(value)
        except InvalidContact as exc:
            raise ValueError(str(exc)) from None

    @field_validator("consent_basis", mode="before")
    @classmethod
    def _basis(cls, value: Any) -> Any:
        return read_basis(value)

    @field_validator(*FOLDED_FIELDS, "external_system")
    @classmethod
    def _fold(cls, value: str | None) -> str | None:
        return fold_source(value) if value is not None else None

    @model_validator(mode="after")
    def _reachable(self) -> LeadCreate:
        if self.external_id is None and self.external_system is not None:
            raise ValueError("external_system names the system of an external_id: give both")
        if self.external_id is not None and self.external_system is None:
            self.external_system = DEFAULT_EXTERNAL_SYSTEM
        if self.email is None and self.phone is None and self.external_id is None:
            raise ValueError("a lead needs an email or a phone number (or an external_id)")
        if self.consent_basis is not None:
            if self.consent is False:
                raise ValueError(
                    "consent_basis records why the lead may be emailed, consent false that "
                    "it may not: give one or the other"
                )
            self.consent = True
        return self

    def fields(self) -> dict[str, Any]:
        """The non-empty profile and attribution values, as stored columns."""
        return self.model_dump(exclude=set(NOT_COLUMNS), exclude_none=True)

    def consent_answer(self) -> dict[str, Any]:
        """The capture's consent answer, as :func:`merge_profile` reads it."""
        return {
            "consent": self.consent,
            "consent_basis": self.consent_basis.value if self.consent_basis else None,
            "consent_source": self.consent_source,
        }


NOT_COLUMNS = frozenset({"attributes", "consent", "consent_basis", "consent_source"})
"""Fields of a capture that are not copied to the lead as they are (merged by rule)."""

CONSENT_COLUMNS: tuple[str, ...] = (
    "consent",
    "consent_basis",
    "consent_source",
    "consent_at",
    "unsubscribed_at",
)
"""The lead's consent record (see :mod:`baton.domain.privacy`)."""


def merge_profile(
    existing: Mapping[str, Any],
    incoming: Mapping[str, Any],
    *,
    fill_only: bool = False,
    at: datetime | None = None,
) -> dict[str, Any]:
    """The column changes that capturing ``incoming`` makes to ``existing``.

    Rules a caller may rely on: a blank never replaces a value; profile fields take the
    newer non-blank value; an external id is set once, on a lead that has none;
    attribution fields keep the first touch, and a different new source or campaign is
    reported as ``last_source`` / ``last_campaign``; attributes are merged key by key;
    consent follows :func:`baton.domain.privacy.decide_consent` (an explicit answer
    replaces the old one, within the rules of lawful basis and unsubscribes), dated
    ``consent_at = at`` when ``at`` is given.

    ``fill_only`` is for sources anyone may write to (a public intake key): they only
    fill blank fields and new attribute keys, and may withdraw consent but never grant
    it over a stored refusal, so knowing someone's email is not enough to rewrite them.
    """
    changes: dict[str, Any] = {}
    if incoming.get("external_id") and not existing.get("external_id"):
        changes.update({name: incoming.get(name) for name in IDENTITY_FIELDS})
    for name in PROFILE_FIELDS:
        new = incoming.get(name)
        if fill_only and existing.get(name) not in (None, ""):
            continue
        if new not in (None, "") and new != existing.get(name):
            changes[name] = new
    for name in ATTRIBUTION_FIELDS:
        new = incoming.get(name)
        if new not in (None, "") and existing.get(name) in (None, ""):
            changes[name] = new
    for name, last in (("source", "last_source"), ("campaign", "last_campaign")):
        new = incoming.get(name)
        if new not in (None, "") and new != existing.get(last):
            changes[last] = new
    new_attrs = incoming.get("attributes") or {}
    if new_attrs:
        merged = dict(existing.get("attributes") or {})
        merged.update(
            {
                k: v
                for k, v in new_attrs.items()
                if v not in (None, "") and not (fill_only and merged.get(k) not in (None, ""))
            }
        )
        if merged != (existing.get("attributes") or {}):
            changes["attributes"] = merged
    consent = decide_consent(existing, incoming, fill_only=fill_only)
    changes.update(consent.changes)
    if consent.changes and at is not None:
        changes["consent_at"] = at
    return changes


@dataclass(frozen=True)
class DuplicateMatch:
    """Why two leads look like the same person (never merged without a human)."""

    other_id: int
    reason: str
    similarity: float


def _full_name(person: Mapping[str, Any]) -> str:
    return f"{person.get('first_name') or ''} {person.get('last_name') or ''}".strip()


NAME_SIMILARITY = 88.0
COMPANY_SIMILARITY = 85.0

SAME_PHONE = "same phone number"
SAME_MAILBOX = "same email inbox, written differently"
SAME_EMAIL_DOMAIN = "similar name, same company email domain"
SIMILAR_COMPANY = "similar name and company"
DUPLICATE_REASONS = {
    "phone": SAME_PHONE,
    "mailbox": SAME_MAILBOX,
    "email_domain": SAME_EMAIL_DOMAIN,
    "company": SIMILAR_COMPANY,
}
"""Why a pair was flagged, by a short code (for filters typed by people) and as stored."""

ON_ITS_OWN = frozenset({SAME_PHONE, SAME_MAILBOX})
"""Reasons that need no similar name: one phone line or one inbox is one person (or
one household, one desk) far more often than not."""


def find_duplicates(
    lead: Mapping[str, Any],
    candidates: list[Mapping[str, Any]],
    *,
    names: Mapping[int, str] | None = None,
) -> list[DuplicateMatch]:
    """Candidates (gathered cheaply by the caller: same phone, same mailbox key, same
    company key or same corporate email domain) that are probably the same person as
    ``lead``, in the candidates' order. The definition of a possible duplicate: the
    worker finds the same pairs group by group (:func:`duplicates_in_groups`, tested
    equal to this).

    Same phone number, or the same inbox (``mailbox_key``: ``j.smith+news@gmail.com``
    is ``jsmith@gmail.com``), is a match on its own; otherwise the full names must be
    close (ratio >= 88 of either of :func:`duplicate_names`' two forms: the words in
    sorted order, hyphens splitting them, or the words with hyphenated parts and name
    particles written as one, so ``Jean-Paul`` is ``Jean Paul`` and ``van den Berg`` is
    ``Vandenberg``) and the companies close too (>= 85) or the corporate email domain
    shared.

    The names are compared in one call into rapidfuzz's C loop, not one Python call per
    candidate: a new lead at a big company has hundreds of candidates. ``names``: the
    candidates' names as compared (:func:`duplicate_name`) by id, for a caller that
    compares many leads with the same candidates and so computes them once.
    """
    found: list[tuple[int, DuplicateMatch]] = []
    name, joined = duplicate_names(lead)
    phone = lead.get("phone")
    mailbox = lead.get("mailbox_key")
    own_id = lead.get("id")
    # Each candidate is looked at once, in one loop per case: a lead at a big company
    # has hundreds of candidates, and the worker compares every new lead.
    if phone or mailbox:
        compared = []
        for position, other in enumerate(candidates):
            if other["id"] == own_id:
                continue
            if phone and phone == other.get("phone"):
                found.append((position, DuplicateMatch(int(other["id"]), SAME_PHONE, 100.0)))
            elif mailbox and mailbox == other.get("mailbox_key"):
                found.append((position, DuplicateMatch(int(other["id"]), SAME_MAILBOX, 100.0)))
            elif name:
                compared.append((position, other))
    elif name:
        compared = [(p, o) for p, o in enumerate(candidates) if o["id"] != own_id]
    else:
        compared = []
    if compared:
        if names is not None:
            choices = [names[int(other["id"])] for _, other in compared]
        else:
            choices = [duplicate_name(other) for _, other in compared]
        close = _close(name, choices)
        if joined:
            for index, score in _close(joined, [joined_name(o) for _, o in compared]).items():
                close[index] = max(score, close.get(index, 0.0))
        domain = lead.get("email_domain")
        corporate = bool(domain) and domain not in FREE_MAIL_DOMAINS
        key = company_key(lead.get("company"))
        family = family_name(lead) if close else None
        for index, name_score in close.items():
            position, other = compared[index]
            if family is not None and not families_agree(lead, family, other, family_name(other)):
                continue
            if corporate and domain == other.get("email_domain"):
                found.append(
                    (
                        position,
                        DuplicateMatch(int(other["id"]), SAME_EMAIL_DOMAIN, round(name_score, 1)),
                    )
                )
                continue
            other_key = company_key(other.get("company"))
            if key and other_key:
                company_score = fuzz.ratio(key, other_key)
                if company_score >= COMPANY_SIMILARITY:
                    found.append(
                        (
                            position,
                            DuplicateMatch(
                                int(other["id"]),
                                SIMILAR_COMPANY,
                                round(min(name_score, company_score), 1),
                            ),
                        )
                    )
    found.sort(key=lambda item: item[0])
    return [match for _, match in found]


@dataclass
class CandidateGroup:
    """The candidates holding one value (a phone, a company key, a corporate domain),
    oldest first, with what :func:`duplicates_in_groups` compares of them made once for
    all the new leads of a batch."""

    records: list[Mapping[str, Any]]
    ids: list[int] = field(init=False)
    names: list[str] = field(init=False)
    joined: list[str] = field(init=False)
    variants: list[int] = field(init=False)
    """Positions whose joined name differs from the name (a hyphen, a particle): the
    only ones a lead whose two forms agree must compare by the joined form too."""
    variant_names: list[str] = field(init=False)
    by_phone: dict[str, list[int]] = field(init=False)
    by_mailbox: dict[str, list[int]] = field(init=False)

    def __post_init__(self) -> None:
        self.ids = [int(r["id"]) for r in self.records]
        both = [duplicate_names(r) for r in self.records]
        self.names = [name for name, _ in both]
        self.joined = [joined for _, joined in both]
        self.variants = [p for p, (name, joined) in enumerate(both) if joined != name]
        self.variant_names = [self.joined[p] for p in self.variants]
        self.by_phone = {}
        self.by_mailbox = {}
        for position, record in enumerate(self.records):
            if record.get("phone"):
                self.by_phone.setdefault(record["phone"], []).append(position)
            if record.get("mailbox_key"):
                self.by_mailbox.setdefault(record["mailbox_key"], []).append(position)


def duplicates_in_groups(
    lead: Mapping[str, Any],
    groups: list[tuple[CandidateGroup, int | None]],
    *,
    limit: int,
) -> list[DuplicateMatch]:
    """What :func:`find_duplicates` finds for ``lead`` among the union of the groups'
    leads older than it (the first ``limit`` of each group's), in no particular order,
    without building that union: a group of a shared domain holds hundreds, and only
    the few whose name is close (rapidfuzz's C loop over the group's names) or whose
    phone is the lead's are looked at in Python. Each pair's outcome depends on the two
    leads only, so it is the same whichever group brings the candidate.

    ``groups``: each group with the most of its leads up to ``lead`` it may have (a
    shared line's cap: more, and the group is skipped), or None."""
    own_id = int(lead["id"])
    name, joined = duplicate_names(lead)
    phone = lead.get("phone")
    mailbox = lead.get("mailbox_key")
    found: dict[int, DuplicateMatch] = {}
    named: dict[int, tuple[Mapping[str, Any], float]] = {}
    for group, most in groups:
        upto = bisect_right(group.ids, own_id)
        if most is not None and upto > most:
            continue
        upto = min(upto, limit)
        if phone:
            for position in group.by_phone.get(phone, ()):
                other_id = group.ids[position]
                if position < upto and other_id != own_id:
                    found[other_id] = DuplicateMatch(other_id, SAME_PHONE, 100.0)
        if mailbox:
            for position in group.by_mailbox.get(mailbox, ()):
                other_id = group.ids[position]
                same_phone = phone and group.records[position].get("phone") == phone
                if position < upto and other_id != own_id and not same_phone:
                    found[other_id] = DuplicateMatch(other_id, SAME_MAILBOX, 100.0)
        if name and upto:
            close = _close(name, group.names[:upto])
            if joined != name:
                more = _close(joined, group.joined[:upto]) if joined else {}
            elif group.variants:  # the same as by name but for candidates whose forms differ
                variants, choices = group.variants, group.variant_names
                if upto < len(group.ids):
                    variants = [p for p in variants if p < upto]
                    choices = [group.joined[p] for p in variants]
                found_by = _close(joined, choices)
                more = {variants[index]: score for index, score in found_by.items()}
            else:
                more = {}
            for position, score in more.items():
                close[position] = max(score, close.get(position, 0.0))
            for position, score in close.items():
                other = group.records[position]
                if (
                    group.ids[position] != own_id
                    and not (phone and other.get("phone") == phone)
                    and not (mailbox and other.get("mailbox_key") == mailbox)
                ):
                    named[group.ids[position]] = (other, score)
    domain = lead.get("email_domain")
    corporate = bool(domain) and domain not in FREE_MAIL_DOMAINS
    key = company_key(lead.get("company")) if named else None
    family = family_name(lead) if named else None
    for other_id, (other, name_score) in named.items():
        if family is not None and not families_agree(lead, family, other, family_name(other)):
            continue
        if corporate and domain == other.get("email_domain"):
            found[other_id] = DuplicateMatch(other_id, SAME_EMAIL_DOMAIN, round(name_score, 1))
            continue
        other_key = company_key(other.get("company"))
        if key and other_key:
            company_score = fuzz.ratio(key, other_key)
            if company_score >= COMPANY_SIMILARITY:
                found[other_id] = DuplicateMatch(
                    other_id, SIMILAR_COMPANY, round(min(name_score, company_score), 1)
                )
    return list(found.values())


def newer_candidates(lead: Mapping[str, Any], group: CandidateGroup) -> list[int]:
    """The positions in ``group`` of the leads newer than ``lead`` that
    :func:`duplicates_in_groups` could pair with it, judging them: those with its phone
    or its inbox, or a name close to its name (either form; rapidfuzz's ratio is the
    same both ways), found in one call per form. The others cannot match it, so a lead
    compared with the newer leads of a group of 200 is judged against the few."""
    own_id = int(lead["id"])
    first = bisect_right(group.ids, own_id)
    if first >= len(group.ids):
        return []
    found: set[int] = set()
    if phone := lead.get("phone"):
        found.update(p for p in group.by_phone.get(phone, ()) if p >= first)
    if mailbox := lead.get("mailbox_key"):
        found.update(p for p in group.by_mailbox.get(mailbox, ()) if p >= first)
    name, joined = duplicate_names(lead)
    if name:
        found.update(first + p for p in _close(name, group.names[first:]))
    if joined:
        found.update(first + p for p in _close(joined, group.joined[first:]))
    return sorted(found)


SHORT_FAMILY_NAME = 4
"""Letters up to which a family name is short: ``Li``, ``Liu``, ``Wan``, ``Wang``."""


def family_name(person: Mapping[str, Any]) -> str:
    """A person's family name as :func:`families_agree` compares it: folded like
    :func:`duplicate_names`, with hyphens, apostrophes and spaces taken out (``De Luca``
    is ``deluca``, ``Ng-Li`` is ``ngli``). No last name: the name's last word."""
    last = str(person.get("last_name") or "").strip() or (_full_name(person).split() or [""])[-1]
    if not last.isascii():
        last = "".join(
            c
            for c in unicodedata.normalize("NFKD", last)
            if not unicodedata.combining(c) and _visible(c)
        )
    return "".join(last.lower().translate(_HYPHENS_OUT).split())


def families_agree(
    one: Mapping[str, Any], family: str, other: Mapping[str, Any], other_family: str
) -> bool:
    """Whether two close names may be one person by their family names (``family``,
    ``other_family``: :func:`family_name` of each). A whole-name ratio forgives a
    letter or two, which in a long family name is a typo (``Jonson``, ``Johnson``) but
    in a short one is another family: ``Yu Li`` and ``Yu Liu`` score 90.9, ``Wei Wang``
    and ``Wei Wan`` 93.3 (real matching tools weigh short names likewise). So a short
    family name (:data:`SHORT_FAMILY_NAME` letters or fewer) must be the other's, or
    one of the words of the other's name (first and last name swapped: ``Li Yu``,
    ``Yu Li``); the words are looked at only then, which is rare."""
    if family == other_family:
        return True
    if len(family) <= SHORT_FAMILY_NAME and family not in _name_words(other):
        return False
    return len(other_family) > SHORT_FAMILY_NAME or other_family in _name_words(one)


def _name_words(person: Mapping[str, Any]) -> set[str]:
    """The words of both forms of :func:`duplicate_names` (``Ng-Li``: ``ng``, ``li``,
    ``ngli``)."""
    words, joined = duplicate_names(person)
    return {*words.split(), *joined.split()}


def _close(name: str, choices: list[str]) -> dict[int, float]:
    """The positions of the choices close to ``name`` (ratio >= :data:`NAME_SIMILARITY`)
    and their scores, in one call into rapidfuzz's C loop."""
    found = process.extract(
        name, choices, scorer=fuzz.ratio, score_cutoff=NAME_SIMILARITY, limit=None
    )
    return {index: score for _, score, index in found}


def duplicate_name(person: Mapping[str, Any]) -> str:
    """The form of a person's name that :func:`find_duplicates` compares first: lower
    case, accents folded (``María González`` is ``maria gonzalez``), its words (split at
    any whitespace, a no-break or zero-width space, or a hyphen: ``Jean-Paul`` is
    ``Jean Paul``) in sorted order, so that rapidfuzz's plain ratio of two of them is
    the token-sorted ratio of the names."""
    return duplicate_names(person)[0]


def joined_name(person: Mapping[str, Any]) -> str:
    """The second form :func:`find_duplicates` compares (see :func:`duplicate_names`)."""
    return duplicate_names(person)[1]


NAME_PARTICLES = frozenset(
    {
        "van", "von", "der", "den", "ter", "ten", "de", "del", "della", "di", "da", "du",
        "des", "la", "le", "dos", "das", "al", "el", "mac", "mc", "st",
    }
)  # fmt: skip
"""Words that start a family name (``van den Berg``, ``de la Cruz``, ``Al Hassan``,
``Mc Donald``) and that people also write joined to it (``Vandenberg``)."""


def duplicate_names(person: Mapping[str, Any]) -> tuple[str, str]:
    """A person's name in the two forms :func:`find_duplicates` compares, the better
    ratio counting: :func:`duplicate_name` (words apart, sorted), and the words with
    hyphens and apostrophes taken out and the particles (:data:`NAME_PARTICLES`, never
    a name's first or last word) joined to the word after them, sorted: ``Mary-Jane``
    is ``Maryjane``, ``Anna van den Berg`` is ``Anna Vandenberg``, ``O'Brien`` is
    ``OBrien``. The two are equal for most names, which spares the second comparison."""
    name = _full_name(person)
    plain = name.isascii()
    if not plain:
        name = "".join(
            " " if c in _INVISIBLE_SPACES else c
            for c in unicodedata.normalize("NFKD", name)
            if not unicodedata.combining(c) and (c in _INVISIBLE_SPACES or _visible(c))
        )
    name = name.lower()
    if plain and "-" not in name and "'" not in name:  # most names: one split, one sort
        parts = name.split()
        words = " ".join(sorted(parts))
        middle = parts[1:-1]
        if not middle or NAME_PARTICLES.isdisjoint(middle):
            return words, words
    else:
        words = " ".join(sorted(name.translate(_HYPHENS_APART).split()))
        parts = name.translate(_HYPHENS_OUT).split()
    joined: list[str] = []
    particles = ""
    for position, part in enumerate(parts):
        if 0 < position < len(parts) - 1 and part in NAME_PARTICLES:
            particles += part
        else:
            joined.append(particles + part)
            particles = ""
    return words, " ".join(sorted(joined))


_HYPHENS = "-\u2010\u2011\u2012\u2013\u2014"
_HYPHENS_APART = str.maketrans(dict.fromkeys(_HYPHENS, " "))
_HYPHENS_OUT = str.maketrans(dict.fromkeys(_HYPHENS + "'\u2019\u02bc", None))


_INVISIBLE_SPACES = frozenset("\u200b\u2060\ufeff")
"""Zero-width space, word joiner, byte-order mark: pasted between words, they separate
them; other format characters are dropped."""


def _visible(char: str) -> bool:
    return unicodedata.category(char) != "Cf"


MAX_PAIRS_PER_LEAD = 5
"""Most possible-duplicate pairs one new lead adds to the review queue.

The queue is read by a person. A new lead that looks like more than a handful of
earlier ones is a common name at a big company (or at one corporate email domain),
and five pairs already show that; every pair past them only buries the queue (a
20,000-row import of such a file once flagged 144,690 pairs, about seven per lead).
The best five are kept, a shared phone number or inbox first: that pair is never the
one dropped."""


def best_duplicates(
    matches: list[DuplicateMatch], limit: int = MAX_PAIRS_PER_LEAD
) -> list[DuplicateMatch]:
    """The ``limit`` best of one lead's matches, best first: a shared phone number or
    inbox, then the highest similarity, and among equals the oldest lead (the record
    the others would be merged into)."""
    ranked = sorted(matches, key=lambda m: (m.reason not in ON_ITS_OWN, -m.similarity, m.other_id))
    return ranked[: max(limit, 0)]


class Lead(BaseModel):
    """A lead as stored: profile, first- and last-touch attribution, stage and tags."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    email: str | None
    phone: str | None
    external_system: str | None = None
    external_id: str | None = None
    first_name: str | None
    last_name: str | None
    company: str | None
    title: str | None
    country: str | None
    region: str | None
    postal_code: str | None
    source: str | None
    campaign: str | None
    last_source: str | None
    last_campaign: str | None
    utm_source: str | None
    utm_medium: str | None
    utm_campaign: str | None
    utm_term: str | None
    utm_content: str | None
    consent: bool | None
    attributes: dict[str, Any]
    stage: str
    stage_changed_at: datetime
    merged_into_id: int | None
    created_at: datetime
    updated_at: datetime
    last_activity_at: datetime | None
    activity_count: int
    tags: list[str] = Field(default_factory=list)
    email_status: str | None = Field(
        None,
        description="null while mail is delivered; soft_bounce or hard_bounce after a "
        "bounce notice (nurture sends nothing to a hard-bounced address).",
    )
    email_status_at: datetime | None = None
    consent_basis: str | None = Field(
        None, description="consent or legitimate_interest: the lawful basis for email."
    )
    consent_at: datetime | None = Field(None, description="When the consent answer changed.")
    consent_source: str | None = Field(None, description="Where it was given.")
    unsubscribed_at: datetime | None = Field(
        None, description="When the person unsubscribed (until an explicit opt-in)."
    )


def fill_blanks(survivor: Mapping[str, Any], absorbed: Mapping[str, Any]) -> dict[str, Any]:
    """Changes to ``survivor`` when ``absorbed`` is merged into it: the survivor keeps
    every value it has; its empty fields take the absorbed lead's values; attributes are
    merged with the survivor's winning; a withdrawn consent (or an unsubscribe) on
    either side wins, and a survivor without an answer takes the absorbed one's consent
    record (basis, source, time)."""
    changes: dict[str, Any] = {}
    for name in (*PROFILE_FIELDS, *ATTRIBUTION_FIELDS, "last_source", "last_campaign"):
        if survivor.get(name) in (None, "") and absorbed.get(name) not in (None, ""):
            changes[name] = absorbed[name]
    attrs = {**(absorbed.get("attributes") or {}), **(survivor.get("attributes") or {})}
    if attrs != (survivor.get("attributes") or {}):
        changes["attributes"] = attrs
    if absorbed.get("consent") is False and survivor.get("consent") is not False:
        changes.update(consent=False, consent_basis=None)
        changes.update({k: absorbed.get(k) for k in ("consent_source", "consent_at")})
    elif survivor.get("consent") is None and absorbed.get("consent") is not None:
        changes.update({k: absorbed.get(k) for k in CONSENT_COLUMNS[:4]})
    if absorbed.get("unsubscribed_at") is not None and survivor.get("unsubscribed_at") is None:
        changes["unsubscribed_at"] = absorbed["unsubscribed_at"]
    return changes
