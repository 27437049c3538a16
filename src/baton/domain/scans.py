"""Event badge scans: the rows of a scanner app's export, read into what Baton records.

A row is a person (name or first/last, email, phone, company, title, country), who
scanned them (a rep, by email or name), a rating (hot, warm or cold, in any case),
notes and when. What each rating does is decided here, so the CLI, the README and the
service say the same:

* **hot**: the person asked for sales: besides the ``event_booth_scan`` the row records
  an ``event_hot_scan``, a hand-raise where the contract lists it (the example does);
* **warm**: the scan is recorded and scored like any touch;
* **cold**: the lead goes to ``nurture`` (only from ``lead``: a lead sales already
  holds stays where it is, with a warning), so it is not handed off on this touch.

A re-import of the same file records nothing twice: each row's key is made of the
event, the person (email, else phone) and the scan time (:func:`scan_key`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from baton.domain.suggest import suggest


class Rating(StrEnum):
    """How the rep at the booth rated the conversation."""

    HOT = "hot"
    WARM = "warm"
    COLD = "cold"


RATINGS: tuple[str, ...] = tuple(r.value for r in Rating)

SCAN_COLUMNS = frozenset(
    {
        "name",
        "first_name",
        "last_name",
        "email",
        "phone",
        "company",
        "title",
        "country",
        "scanned_by",
        "rating",
        "notes",
        "scanned_at",
    }
)
"""The columns a badge-scan file may have (others are kept on the scan's properties)."""

SCAN_ALIASES: dict[str, str] = {
    "full_name": "name",
    "attendee": "name",
    "attendee_name": "name",
    "contact_name": "name",
    "first": "first_name",
    "firstname": "first_name",
    "given_name": "first_name",
    "last": "last_name",
    "lastname": "last_name",
    "surname": "last_name",
    "e_mail": "email",
    "email_address": "email",
    "work_email": "email",
    "phone_number": "phone",
    "mobile": "phone",
    "telephone": "phone",
    "company_name": "company",
    "organization": "company",
    "organisation": "company",
    "job_title": "title",
    "position": "title",
    "country_code": "country",
    "scanner": "scanned_by",
    "scanned_by_email": "scanned_by",
    "rep": "scanned_by",
    "captured_by": "scanned_by",
    "owner": "scanned_by",
    "lead_rating": "rating",
    "temperature": "rating",
    "score": "rating",
    "note": "notes",
    "comments": "notes",
    "comment": "notes",
    "scan_time": "scanned_at",
    "scan_date": "scanned_at",
    "scanned": "scanned_at",
    "timestamp": "scanned_at",
    "date": "scanned_at",
    "time": "scanned_at",
}


def read_rating(text: str) -> Rating:
    """The rating ``text`` names (any case, spaces around); ``ValueError`` with the
    closest rating otherwise."""
    key = text.strip().casefold()
    try:
        return Rating(key)
    except ValueError:
        raise ValueError(
            f"unknown rating {text.strip()!r}{suggest(key, RATINGS)}; use hot, warm or cold"
        ) from None


def split_name(full: str) -> tuple[str | None, str | None]:
    """``"Dana Reyes"`` → (``Dana``, ``Reyes``); ``"Reyes, Dana"`` → the same; a single
    word is a first name."""
    text = " ".join(full.split())
    if not text:
        return None, None
    if "," in text:
        last, _, first = (part.strip() for part in text.partition(","))
        return first or None, last or None
    first, _, last = text.partition(" ")
    return first, last or None


@dataclass(frozen=True)
class RosterRep:
    """A rep as a scan names them."""

    id: int
    email: str
    name: str


def resolve_rep(written: str, roster: Sequence[RosterRep]) -> RosterRep:
    """The rep ``written`` names: an email (any case) or a full name (any case, spaces
    folded); ``ValueError`` naming the value (and the closest name) otherwise."""
    text = " ".join(written.split())
    folded = text.casefold()
    if "@" in text:
        found = [r for r in roster if r.email.casefold() == folded]
    else:
        found = [r for r in roster if " ".join(r.name.split()).casefold() == folded]
    if len(found) == 1:
        return found[0]
    if found:
        emails = ", ".join(r.email for r in found)
        raise ValueError(f"several reps are called {text!r} ({emails}): write the email")
    choices = [r.email if "@" in text else r.name for r in roster]
    hint = suggest(text, choices)
    raise ValueError(f"no rep is called or has the email {text!r}{hint}; add the rep first")


def scan_key(event: str, person: str, scanned_at: datetime | None) -> str:
    """The idempotency key of a scan: the same event, person and time is one scan."""
    moment = scanned_at.isoformat() if scanned_at is not None else ""
    text = f"{' '.join(event.split()).casefold()}|{person.casefold()}|{moment}"
    return "scan:" + hashlib.sha256(text.encode()).hexdigest()[:40]
