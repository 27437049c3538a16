"""Consent, its lawful basis, and what an erased person leaves behind (pure rules).

**Lawful basis** (GDPR Art. 6(1)): Baton records why it may send a lead marketing
email, when and where that was given (``consent_basis``, ``consent_at``,
``consent_source``). Two of the six bases can cover marketing email:

* ``consent`` (Art. 6(1)(a)): the person opted in (a ticked box, a double opt-in).
  It is the only basis that lifts an unsubscribe: an *explicit opt-in*;
* ``legitimate_interest`` (Art. 6(1)(f), with ePrivacy's "soft opt-in" for existing
  customers): it never overrides a refusal or an unsubscribe, since the right to object
  to direct marketing is absolute (Art. 21(3)), and never replaces a recorded consent.

The other four are refused with the reason: ``contract`` (6(1)(b)) covers only what the
contract needs, never marketing; ``legal_obligation``, ``vital_interests`` and
``public_task`` (6(1)(c)-(e)) never apply to a marketing email.

**Erasure** keeps one thing about the person: a suppression keyed by
:func:`erased_key`, the SHA-256 of the address (``sha256:<hex>``), so that a later
import or capture of the same address is not mailed again (the address itself is not
kept, and the key cannot be read back; it can only be matched by whoever already knows
the address). An explicit opt-in by that address later removes it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

from baton.domain.contact import email_key


class ConsentBasis(StrEnum):
    """The GDPR Art. 6(1) bases that can cover marketing email."""

    CONSENT = "consent"
    LEGITIMATE_INTEREST = "legitimate_interest"


NOT_FOR_MARKETING: Final[dict[str, str]] = {
    "contract": "contract (GDPR Art. 6(1)(b)) covers only what the contract needs, never "
    "marketing email; use legitimate_interest for existing customers (soft opt-in)",
    "legal_obligation": "legal_obligation (Art. 6(1)(c)) never covers marketing email",
    "vital_interests": "vital_interests (Art. 6(1)(d)) never covers marketing email",
    "public_task": "public_task (Art. 6(1)(e)) never covers marketing email",
}
"""The other lawful bases, each with why it cannot be recorded for marketing email."""


def read_basis(value: Any) -> ConsentBasis | None:
    """A consent basis from input (case and ``-``/space forgiving); ``ValueError``
    naming what is allowed, or why a known but unfitting basis is refused."""
    if value is None or isinstance(value, ConsentBasis):
        return value
    text = "_".join(str(value).strip().casefold().replace("-", " ").split())
    if not text:
        return None
    if text in NOT_FOR_MARKETING:
        raise ValueError(NOT_FOR_MARKETING[text])
    try:
        return ConsentBasis(text)
    except ValueError:
        allowed = ", ".join(b.value for b in ConsentBasis)
        raise ValueError(
            f"{value!r} is not a lawful basis for marketing email: use {allowed}"
        ) from None


SUPPRESSION_REASONS: Final = ("unsubscribe", "hard_bounce", "complaint", "manual", "erased")
CLEARED_BY_OPT_IN: Final = frozenset({"unsubscribe", "complaint", "erased"})
"""Suppressions an explicit opt-in removes: the person's own refusals. A hard bounce
(the mailbox does not exist) and a suppression added by hand stay."""

ERASED_PREFIX: Final = "sha256:"


def erased_key(address: str) -> str:
    """The suppression key an erased address leaves: ``sha256:`` and the hex SHA-256
    of its email key (the lower-cased address)."""
    digest = hashlib.sha256(email_key(address.strip()).encode()).hexdigest()
    return ERASED_PREFIX + digest


def suppression_keys(address: str) -> tuple[str, str]:
    """Every suppression key that may stand for this address: its email key, and the
    key an erasure of it left (:func:`erased_key`). Check both before mailing."""
    return email_key(address.strip()), erased_key(address)


@dataclass(frozen=True)
class ConsentDecision:
    """What one capture's consent answer changes on a lead (column -> value), and
    whether it is an explicit opt-in that lifts the person's unsubscribe and
    suppressions (:data:`CLEARED_BY_OPT_IN`)."""

    changes: dict[str, Any] = field(default_factory=dict)
    opt_in: bool = False


def decide_consent(
    existing: Mapping[str, Any], incoming: Mapping[str, Any], *, fill_only: bool = False
) -> ConsentDecision:
    """Apply a capture's ``consent`` / ``consent_basis`` / ``consent_source`` to a lead.

    * no answer (``consent`` None): nothing changes;
    * ``consent`` false: consent withdrawn, basis cleared (any source may withdraw);
    * ``consent_basis: consent`` (an explicit opt-in): recorded, and it lifts an
      unsubscribe (``unsubscribed_at`` cleared, ``opt_in``), except from a public
      source (``fill_only``: an intake key, a hook) over a stored refusal, since knowing
      an address must not be enough to re-subscribe someone;
    * ``legitimate_interest``: recorded only where nobody refused or unsubscribed and
      no consent is recorded;
    * ``consent`` true with no basis: the old Boolean answer; it is kept (it does not
      replace a stored refusal from a public source, nor lift an unsubscribe) but it is
      no lawful basis: nurture needs one.

    ``consent_at`` is not set here (the caller dates the change); ``consent_source`` is
    the incoming one whenever consent or basis changes."""
    consent = incoming.get("consent")
    basis = read_basis(incoming.get("consent_basis"))
    if basis is not None and consent is None:
        consent = True
    if consent is None:
        return ConsentDecision()
    old_consent, old_basis = existing.get("consent"), existing.get("consent_basis")
    unsubscribed = existing.get("unsubscribed_at") is not None
    refused = old_consent is False or unsubscribed
    source = incoming.get("consent_source")
    wanted: dict[str, Any]
    opt_in = False
    if consent is False:
        wanted = {"consent": False, "consent_basis": None}
    elif basis is ConsentBasis.CONSENT:
        if fill_only and refused:
            return ConsentDecision()
        wanted = {"consent": True, "consent_basis": basis.value}
        opt_in = True
    elif basis is ConsentBasis.LEGITIMATE_INTEREST:
        if refused or old_basis == ConsentBasis.CONSENT.value:
            return ConsentDecision()
        wanted = {"consent": True, "consent_basis": basis.value}
    else:
        if unsubscribed or (fill_only and refused):
            return ConsentDecision()
        wanted = {"consent": True}
    changes = {k: v for k, v in wanted.items() if existing.get(k) != v}
    if opt_in and unsubscribed:
        changes["unsubscribed_at"] = None
    if changes:
        changes["consent_source"] = source
    return ConsentDecision(changes, opt_in)
