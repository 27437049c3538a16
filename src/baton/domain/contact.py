"""Normalizing the ways people write contact details.

Email addresses are checked with ``email-validator`` (syntax only, no DNS). The
common case, a plain ASCII address, takes a fast path that gives exactly the same
answer as the library (a property test holds the two together); anything unusual
(international characters, quoted local parts, special-use domains) goes to the
library. Phone numbers go to ``phonenumbers`` and come out in E.164.
"""

from __future__ import annotations

import re
from functools import lru_cache

import email_validator
import phonenumbers

_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_SIMPLE_EMAIL = re.compile(rf"{_ATOM}(?:\.{_ATOM})*@(?:{_LABEL}\.)+[A-Za-z]{{2,63}}")
_SPECIAL_USE = frozenset({"arpa", "invalid", "local", "localhost", "onion", "test", "home"})
_ROLE_MAILBOXES = frozenset(
    {
        "info",
        "marketing",
        "sales",
        "support",
        "abuse",
        "noc",
        "security",
        "postmaster",
        "hostmaster",
        "usenet",
        "news",
        "webmaster",
        "www",
        "uucp",
        "ftp",
    }
)
"""RFC 2142 mailboxes, which the library lower-cases; they take the library's path.
Domains with ``--`` (IDNA ``xn--`` labels and reserved forms) do too."""

FREE_MAIL_DOMAINS = frozenset(
    {
        "gmail.com",
        "googlemail.com",
        "yahoo.com",
        "yahoo.co.uk",
        "yahoo.fr",
        "ymail.com",
        "hotmail.com",
        "hotmail.co.uk",
        "hotmail.fr",
        "outlook.com",
        "live.com",
        "msn.com",
        "aol.com",
        "icloud.com",
        "me.com",
        "mac.com",
        "proton.me",
        "protonmail.com",
        "gmx.de",
        "gmx.net",
        "gmx.com",
        "web.de",
        "mail.com",
        "mail.ru",
        "yandex.ru",
        "yandex.com",
        "qq.com",
        "163.com",
        "126.com",
        "zoho.com",
        "laposte.net",
        "orange.fr",
        "free.fr",
        "libero.it",
        "t-online.de",
        "fastmail.com",
        "hey.com",
    }
)
"""Consumer mailbox providers: a shared domain says nothing about the company, so it is
never used to find duplicates (and later, in scoring, it is a weak fit signal)."""


class InvalidContact(ValueError):
    """A value that cannot be normalized; the message says why in plain words."""


@lru_cache(maxsize=65536)
def normalize_email(raw: str) -> str:
    """Trimmed address with a lower-cased domain; raises :class:`InvalidContact`."""
    value = raw.strip()
    if (
        len(value) <= 254
        and _SIMPLE_EMAIL.fullmatch(value)
        and len(value.partition("@")[0]) <= 64
        and value.rpartition(".")[2].lower() not in _SPECIAL_USE
        and "--" not in value.partition("@")[2]
        and value.partition("@")[0].lower() not in _ROLE_MAILBOXES
    ):
        local, _, domain = value.partition("@")
        return f"{local}@{domain.lower()}"
    try:
        checked = email_validator.validate_email(value, check_deliverability=False)
    except email_validator.EmailNotValidError as exc:
        raise InvalidContact(str(exc)) from None
    return str(checked.normalized)


def email_key(normalized_email: str) -> str:
    """The identity used to find the same person again: the whole address lower-cased,
    because in practice mailbox providers ignore case in the local part too."""
    return normalized_email.lower()[:254]


def email_domain(normalized_email: str) -> str:
    return normalized_email.rpartition("@")[2].lower()


def normalize_phone(raw: str, default_region: str) -> str:
    """E.164 form (``+14155550100``) of a number written in any common way; numbers
    without a country code are read in ``default_region`` (ISO 3166 alpha-2).

    The check is "possible" (right length for the country), not "valid" (an assigned
    range in the library's metadata): new number ranges and stale metadata must never
    cost a real lead, and the strict check is several times slower on large imports."""
    value = raw.strip()
    try:
        parsed = phonenumbers.parse(value, default_region.upper())
    except phonenumbers.NumberParseException as exc:
        raise InvalidContact(f"not a phone number: {exc}") from None
    if not phonenumbers.is_possible_number(parsed):
        raise InvalidContact(
            f"not a possible phone number: wrong length for its country (read with default"
            f" region {default_region.upper()}; add a +country code if it is foreign)"
        )
    return str(phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164))


_COMPANY_SUFFIXES = re.compile(
    r"\b(inc|incorporated|llc|ltd|limited|gmbh|ag|sa|sas|sarl|bv|nv|plc|corp|corporation|"
    r"co|company|srl|spa|oy|ab|as|pty|kk)\b\.?",
)
_NON_WORD = re.compile(r"[^\w]+")


def company_key(company: str | None) -> str | None:
    """A loose key for a company name ("ACME, Inc." and "Acme" share ``acme``), used only
    to gather duplicate candidates; the fuzzy comparison decides."""
    if not company:
        return None
    text = _COMPANY_SUFFIXES.sub(" ", company.lower())
    key = _NON_WORD.sub(" ", text).strip()[:300]
    return key or None
