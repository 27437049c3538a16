"""What an export holds and which filters it takes: the columns of each export and the
rules a filter must meet, as plain values (no I/O).

A filter that cannot match anything because it is misspelt (``stage=bogus``) is an
error that lists the allowed values, never an empty file: an empty export with a
success code reads as "there is nothing", which is a wrong answer, not a missing one.

Periods: ``since`` and ``until`` take a day (``2026-03-01``, UTC) or a time with its
zone (``2026-03-01T09:00:00+01:00``). ``since`` includes its moment; ``until`` a day
includes that whole day, a time excludes that instant; so ``since=2026-03-01
until=2026-03-31`` is the whole of March.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Final, Literal, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from baton.domain.activities import MAX_ID, ActivityType
from baton.domain.batches import describe
from baton.domain.cells import Kind
from baton.domain.clock import ensure_utc
from baton.domain.contract import Grade
from baton.domain.errors import FieldProblem, ValidationFailed
from baton.domain.leads import ATTRIBUTION_FIELDS, IDENTITY_FIELDS, PROFILE_FIELDS, fold_source
from baton.domain.lifecycle import Stage
from baton.domain.moments import DAY_PATTERN, check_year, iso_instant
from baton.domain.suggest import suggest

ExportFormat = Literal["csv", "jsonl"]
FORMATS: Final[tuple[str, ...]] = ("csv", "jsonl")

HandoffStatus = Literal[
    "queued", "assigned", "accepted", "qualified", "rejected", "won", "lost", "reassigned", "closed"
]

Column = tuple[str, Kind]
"""A column of an export: its header and what it holds."""


def _columns(names: tuple[str, ...], kinds: Mapping[str, Kind]) -> tuple[Column, ...]:
    return tuple((name, kinds.get(name, Kind.TEXT)) for name in names)


LEAD_COLUMNS: Final[tuple[Column, ...]] = _columns(
    (
        "id",
        *PROFILE_FIELDS,
        *IDENTITY_FIELDS,
        *ATTRIBUTION_FIELDS,
        "last_source",
        "last_campaign",
        "consent",
        "stage",
        "stage_changed_at",
        "created_at",
        "last_activity_at",
        "activity_count",
        "score",
        "grade",
        "fit",
        "engagement",
        "tags",
        "owner_rep_name",
        "owner_rep_email",
        "attributes",
    ),
    {
        "id": Kind.NUMBER,
        "phone": Kind.PHONE,
        "consent": Kind.BOOL,
        "stage_changed_at": Kind.TIME,
        "created_at": Kind.TIME,
        "last_activity_at": Kind.TIME,
        "activity_count": Kind.NUMBER,
        "score": Kind.NUMBER,
        "fit": Kind.NUMBER,
        "engagement": Kind.NUMBER,
        "tags": Kind.LIST,
        "attributes": Kind.JSON,
    },
)
"""A lead: its fields, where it is, its score under the active contract, its tags and
its owner (the rep of its latest handoff; empty while that one is queued)."""

LEAD_READ_ONLY: Final[frozenset[str]] = frozenset(
    {
        "id",
        "last_source",
        "last_campaign",
        "stage",
        "stage_changed_at",
        "created_at",
        "updated_at",
        "last_activity_at",
        "activity_count",
        "score",
        "grade",
        "fit",
        "engagement",
        "tags",
        "owner_rep_name",
        "owner_rep_email",
        "merged_into_id",
    }
)
"""Columns of a lead export that Baton keeps itself: a lead import of an export leaves
them out (a stage changes by a transition, a score by the contract, never by a file)."""

LEAD_EXPORT_SIGNATURE: Final[frozenset[str]] = frozenset(
    {"id", "stage", "stage_changed_at", "activity_count"}
)
"""Headers that together mark a file as a Baton lead export (every version has them)."""

HANDOFF_COLUMNS: Final[tuple[Column, ...]] = _columns(
    (
        "id",
        "lead_id",
        "lead_email",
        "lead_name",
        "lead_company",
        "rep_name",
        "rep_email",
        "status",
        "outcome",
        "reason_code",
        "reason",
        "marketing_credit",
        "mql_at",
        "opened_at",
        "assigned_at",
        "accepted_at",
        "first_touch_at",
        "closed_at",
        "accept_due_at",
        "touch_due_at",
        "reassignments",
        "deal_value",
        "contract_version",
        "chain_id",
    ),
    {
        "id": Kind.NUMBER,
        "lead_id": Kind.NUMBER,
        "marketing_credit": Kind.BOOL,
        "mql_at": Kind.TIME,
        "opened_at": Kind.TIME,
        "assigned_at": Kind.TIME,
        "accepted_at": Kind.TIME,
        "first_touch_at": Kind.TIME,
        "closed_at": Kind.TIME,
        "accept_due_at": Kind.TIME,
        "touch_due_at": Kind.TIME,
        "reassignments": Kind.NUMBER,
        "deal_value": Kind.NUMBER,
        "contract_version": Kind.NUMBER,
        "chain_id": Kind.NUMBER,
    },
)
"""A handoff: its lead and rep, its status and sales' verdict (``outcome``: recycle,
disqualify, won, lost, reassigned, closed; ``reason_code`` the rejection reason,
``reason`` the words given with a rejection or a lost deal), and its moments."""

ACTIVITY_COLUMNS: Final[tuple[Column, ...]] = _columns(
    (
        "id",
        "lead_id",
        "lead_email",
        "type",
        "occurred_at",
        "received_at",
        "recorded_by",
        "idempotency_key",
        "properties",
    ),
    {
        "id": Kind.NUMBER,
        "lead_id": Kind.NUMBER,
        "occurred_at": Kind.TIME,
        "received_at": Kind.TIME,
        "properties": Kind.JSON,
    },
)
"""An activity: its lead, type, when it happened and was received, who recorded it
(the source system, user or intake key), the source system's event id, and its
properties as JSON text."""


# --- filters -----------------------------------------------------------------------

BOUND_FORMATS = (
    "a day (2026-03-01) or a time with its zone (2026-03-01T09:00:00Z), between 1970 and 2200"
)


def _bound(value: Any, *, end: bool) -> datetime:
    if isinstance(value, datetime):
        return ensure_utc(value)
    if isinstance(value, date):
        day = value
    elif isinstance(value, str) and re.fullmatch(DAY_PATTERN, value.strip()):
        day = date.fromisoformat(value.strip())
    elif isinstance(value, str) and (spelled := iso_instant(value.strip())) is not None:
        return ensure_utc(datetime.fromisoformat(spelled))
    else:
        raise ValueError(f"write {BOUND_FORMATS}")
    check_year(day)
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return start + timedelta(days=1) if end else start


def _since(value: Any) -> Any:
    return None if value in (None, "") else _bound(value, end=False)


def _until(value: Any) -> Any:
    return None if value in (None, "") else _bound(value, end=True)


def _listed(value: Any) -> Any:
    """One value, a list, or comma-separated values (``--stage mql,sal``), as a list
    of stripped, lower-cased items."""
    if value is None:
        return []
    items = [value] if isinstance(value, str) else list(value)
    return [
        part.strip().lower()
        for item in items
        for part in (item.split(",") if isinstance(item, str) else [item])
        if not isinstance(part, str) or part.strip()
    ]


def _upper(value: Any) -> Any:
    return [v.upper() if isinstance(v, str) else v for v in _listed(value)]


def _email(value: Any) -> Any:
    return (value.strip().lower() or None) if isinstance(value, str) else value


def _folded(value: Any) -> Any:
    return (fold_source(value) or None) if isinstance(value, str) else value


def _tag(value: Any) -> Any:
    return (value.strip().lower() or None) if isinstance(value, str) else value


Since = Annotated[datetime | None, BeforeValidator(_since)]
Until = Annotated[datetime | None, BeforeValidator(_until)]
RepEmail = Annotated[str | None, BeforeValidator(_email), Field(max_length=254)]
LeadRef = Annotated[int | None, Field(ge=1, le=MAX_ID)]


class _Filter(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    since: Since = None
    until: Until = None

    @model_validator(mode="after")
    def _ordered(self) -> Any:
        if self.since is not None and self.until is not None and self.until <= self.since:
            raise ValueError("until must be after since")
        return self


class LeadFilter(_Filter):
    """Which leads a lead export holds (every condition given must hold). ``since`` and
    ``until`` bound the creation time."""

    stage: Annotated[list[Stage], BeforeValidator(_listed)] = []
    source: Annotated[str | None, BeforeValidator(_folded), Field(max_length=200)] = None
    owner: RepEmail = None
    tag: Annotated[str | None, BeforeValidator(_tag), Field(max_length=100)] = None
    grade: Annotated[list[Grade], BeforeValidator(_upper)] = []
    q: Annotated[str | None, Field(max_length=200)] = None
    """Search text, as on the lead list (:func:`baton.domain.search.search_tokens`)."""


class HandoffFilter(_Filter):
    """Which handoffs a handoff export holds; ``since``/``until`` bound when each was
    opened (its MQL reached the routing)."""

    status: Annotated[list[HandoffStatus], BeforeValidator(_listed)] = []
    rep: RepEmail = None
    lead_id: LeadRef = None


class ActivityFilter(_Filter):
    """Which activities an activity export holds; ``since``/``until`` bound when each
    happened."""

    type: Annotated[list[ActivityType], BeforeValidator(_listed)] = []
    lead_id: LeadRef = None


F = TypeVar("F", bound=_Filter)


def read_filter(model: type[F], values: Mapping[str, Any]) -> F:
    """The filter from ``values`` (unset ones as ``None``), or :class:`ValidationFailed`
    naming every bad filter with the values it allows."""
    given = {k: v for k, v in values.items() if v is not None and v != [] and v != ()}
    try:
        return model.model_validate(given)
    except ValidationError as exc:
        problems = [
            FieldProblem(_field(loc), _words(item, message))
            for item, (loc, message) in zip(
                exc.errors(include_url=False), describe(exc), strict=True
            )
        ]
        detail = "; ".join(f"{p.loc}: {p.message}" for p in problems)
        raise ValidationFailed(f"invalid export filter: {detail}", problems) from None


def _field(loc: str) -> str:
    """``stage.0`` → ``stage``; the model's own check (``(row)``) is about ``until``."""
    name = loc.split(".", 1)[0]
    return "until" if name == "(row)" else name


def _words(item: Mapping[str, Any], message: str) -> str:
    """A value outside a closed list, said with the value and the list."""
    expected = (item.get("ctx") or {}).get("expected")
    if item.get("type") in ("enum", "literal_error") and expected:
        given = item.get("input")
        hint = suggest(given, re.findall(r"'([^']*)'", expected)) if isinstance(given, str) else ""
        return f"unknown value {given!r}{hint}; use one of {expected}"
    return message


def export_filename(kind: str, fmt: str, now: datetime) -> str:
    """``baton-leads-20260302T0900Z.csv``: what is in it and when it was made (UTC)."""
    return f"baton-{kind}-{ensure_utc(now):%Y%m%dT%H%MZ}.{fmt}"


# --- verdicts ----------------------------------------------------------------------

VERDICT_KINDS: Final[tuple[str, ...]] = ("accepted", "rejected", "qualified", "won", "lost")
"""Sales' verdicts on a handoff, as its events record them."""

VERDICT_COLUMNS: Final[tuple[Column, ...]] = _columns(
    (
        "id",
        "handoff_id",
        "lead_id",
        "lead_email",
        "lead_external_system",
        "lead_external_id",
        "verdict",
        "reason_code",
        "reason",
        "outcome",
        "marketing_credit",
        "deal_value",
        "by",
        "rep_email",
        "occurred_at",
        "contract_version",
    ),
    {
        "id": Kind.NUMBER,
        "handoff_id": Kind.NUMBER,
        "lead_id": Kind.NUMBER,
        "marketing_credit": Kind.BOOL,
        "deal_value": Kind.NUMBER,
        "occurred_at": Kind.TIME,
        "contract_version": Kind.NUMBER,
    },
)
"""A verdict: one row per accept, reject, qualify, win or loss of a handoff, with the
reason code and words of a rejection (or a lost deal's reason), what it decided
(``outcome``: recycle or disqualify for a rejection; won; lost), marketing's credit,
the deal value of a win, who gave it (``by``), the handoff's rep and when. The lead's
id in another system comes along, to load the verdicts back into that CRM."""

Verdict = Literal["accepted", "rejected", "qualified", "won", "lost"]


class VerdictFilter(_Filter):
    """Which verdicts a verdict export holds; ``since``/``until`` bound when each was
    given."""

    verdict: Annotated[list[Verdict], BeforeValidator(_listed)] = []
    rep: RepEmail = None
    lead_id: LeadRef = None


# --- CRM import templates ------------------------------------------------------------

CrmColumn = tuple[str, str, Kind]
"""A column of a CRM's import template: its header there, the lead export column (or
derived value, see :func:`crm_value`) it is filled from, what it holds."""

NOT_PROVIDED: Final = "[not provided]"
"""What Salesforce itself writes into a required lead field a form left blank
(``LastName``, ``Company``), so that the import does not refuse the row."""

SALESFORCE_STATUS: Final[dict[str, str]] = {
    "lead": "Open - Not Contacted",
    "nurture": "Open - Not Contacted",
    "mql": "Open - Not Contacted",
    "sal": "Working - Contacted",
    "sql": "Working - Contacted",
    "opportunity": "Closed - Converted",
    "customer": "Closed - Converted",
    "disqualified": "Closed - Not Converted",
    "lost": "Closed - Not Converted",
}
"""Baton's stage as the values of Salesforce's default Lead Status picklist."""

SALESFORCE_RATING: Final[dict[str, str]] = {"A": "Hot", "B": "Warm", "C": "Cold", "D": "Cold"}
"""Baton's grade as Salesforce's default Lead Rating picklist."""

HUBSPOT_LIFECYCLE: Final[dict[str, str]] = {
    "lead": "Lead",
    "nurture": "Lead",
    "mql": "Marketing Qualified Lead",
    "sal": "Sales Qualified Lead",
    "sql": "Sales Qualified Lead",
    "opportunity": "Opportunity",
    "customer": "Customer",
    "disqualified": "Other",
    "lost": "Other",
}
"""Baton's stage as HubSpot's default Lifecycle Stage labels (HubSpot has no "sales
accepted": an SAL is a Sales Qualified Lead there; a disqualified or lost lead is
Other)."""

CRM_COLUMNS: Final[dict[str, tuple[CrmColumn, ...]]] = {
    "salesforce": (
        ("FirstName", "first_name", Kind.TEXT),
        ("LastName", "last_name!", Kind.TEXT),
        ("Email", "email", Kind.TEXT),
        ("Phone", "phone", Kind.PHONE),
        ("Company", "company!", Kind.TEXT),
        ("Title", "title", Kind.TEXT),
        ("Country", "country", Kind.TEXT),
        ("State", "region", Kind.TEXT),
        ("PostalCode", "postal_code", Kind.TEXT),
        ("LeadSource", "source", Kind.TEXT),
        ("Status", "salesforce_status", Kind.TEXT),
        ("Rating", "salesforce_rating", Kind.TEXT),
        ("HasOptedOutOfEmail", "opted_out", Kind.BOOL),
        ("Baton_Lead_Id__c", "id", Kind.NUMBER),
        ("Baton_Stage__c", "stage", Kind.TEXT),
        ("Baton_Score__c", "score", Kind.NUMBER),
        ("Baton_Campaign__c", "campaign", Kind.TEXT),
        ("Baton_Owner_Email__c", "owner_rep_email", Kind.TEXT),
    ),
    "hubspot": (
        ("First Name", "first_name", Kind.TEXT),
        ("Last Name", "last_name", Kind.TEXT),
        ("Email", "email", Kind.TEXT),
        ("Phone Number", "phone", Kind.PHONE),
        ("Company Name", "company", Kind.TEXT),
        ("Job Title", "title", Kind.TEXT),
        ("Country/Region", "country", Kind.TEXT),
        ("State/Region", "region", Kind.TEXT),
        ("Postal Code", "postal_code", Kind.TEXT),
        ("Lifecycle Stage", "hubspot_lifecycle", Kind.TEXT),
        ("Marketing contact status", "hubspot_marketing", Kind.TEXT),
        ("Baton Lead ID", "id", Kind.NUMBER),
        ("Baton Stage", "stage", Kind.TEXT),
        ("Baton Score", "score", Kind.NUMBER),
        ("Baton Grade", "grade", Kind.TEXT),
        ("Baton Source", "source", Kind.TEXT),
        ("Baton Campaign", "campaign", Kind.TEXT),
        ("Contact owner", "owner_rep_email", Kind.TEXT),
    ),
}
"""Lead columns named as each CRM's lead (Salesforce) or contact (HubSpot) import
template names them; ``Baton_..__c`` / ``Baton ...`` are custom fields to create there
(or leave unmapped in the import wizard). HubSpot's ``Contact owner`` takes a user's
email."""

CRM_NAMES: Final[tuple[str, ...]] = tuple(CRM_COLUMNS)


def crm_value(row: Mapping[str, Any], source: str) -> Any:
    """The value of a CRM column filled from ``source`` for one lead export row (see
    :data:`CRM_COLUMNS`; a trailing ``!`` marks a field the CRM requires)."""
    if source.endswith("!"):
        value = row.get(source[:-1])
        return value if value not in (None, "") else NOT_PROVIDED
    stage = str(row.get("stage") or "")
    if source == "salesforce_status":
        return SALESFORCE_STATUS.get(stage)
    if source == "salesforce_rating":
        return SALESFORCE_RATING.get(str(row.get("grade") or ""))
    if source == "hubspot_lifecycle":
        return HUBSPOT_LIFECYCLE.get(stage)
    if source == "opted_out":
        return _opted_out(row)
    if source == "hubspot_marketing":
        # Only leads who said yes are marketing contacts (HubSpot bills by them).
        marketing = row.get("consent") and not _opted_out(row)
        return "Marketing contact" if marketing else "Non-marketing contact"
    return row.get(source)


def _opted_out(row: Mapping[str, Any]) -> bool:
    """Refused or unsubscribed: either way a CRM must not mail the person (an
    unsubscribe leaves the consent answer as it was, with ``unsubscribed_at`` set)."""
    return row.get("consent") is False or row.get("unsubscribed_at") is not None


def check_crm(name: str | None) -> str | None:
    """``name`` (lower-cased) when it is a CRM whose columns Baton writes, ``None`` for
    Baton's own; :class:`ValidationFailed` listing them otherwise."""
    if name is None or name.strip() in ("", "baton"):
        return None
    key = name.strip().lower()
    if key in CRM_COLUMNS:
        return key
    message = f"unknown columns {name!r}{suggest(key, CRM_NAMES)}; use baton, " + ", ".join(
        CRM_NAMES
    )
    raise ValidationFailed(message, [FieldProblem("columns", message)])
