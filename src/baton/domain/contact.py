"""Normalizing the ways people write contact details.

Email addresses are checked with ``email-validator`` (syntax only, no DNS). The
common case, a plain ASCII address, takes a fast path that gives exactly the same
answer as the library (a property test holds the two together); anything unusual
(international characters, quoted local parts, special-use domains) goes to the
library. Phone numbers go to ``phonenumbers`` and come out in E.164. Countries go to
``pycountry`` (ISO 3166-1, kept up to date by its maintainers) and come out as alpha-2
codes, whether they were written as codes or as English names. Whether an email domain
can stand for one company (and so become a rep's account) is decided here too.
"""

from __future__ import annotations

import re
from functools import lru_cache

import email_validator
import phonenumbers
import pycountry
from phonenumbers import phonenumberutil as _pn
from phonenumbers.phonemetadata import PhoneMetadata as _PhoneMetadata

_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_SIMPLE_EMAIL = re.compile(rf"{_ATOM}(?:\.{_ATOM})*@(?:{_LABEL}\.)+[A-Za-z]{{2,63}}")
_SPECIAL_USE = frozenset({"arpa", "invalid", "local", "localhost", "onion", "test", "home"})
NOT_SPECIAL_USE = "^(?!.*\\.(?:{})\\.?$)".format(
    "|".join(
        "".join(f"[{c}{c.upper()}]" for c in name)
        for name in sorted(email_validator.SPECIAL_USE_DOMAIN_NAMES)
    )
)
"""A JSON Schema pattern (ECMA-262, which has no case-insensitive flag: hence the
classes) for an address whose domain does not end in a special-use name (``.test``,
``.invalid``…: the library's list), which :func:`normalize_email` refuses: the
OpenAPI says it, so a client generating valid data from the schema is not refused for
it."""
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
    plain = simple_email(value) if len(value) <= 254 else None
    if plain is not None:
        return plain
    try:
        checked = email_validator.validate_email(value, check_deliverability=False)
    except email_validator.EmailNotValidError as exc:
        raise InvalidContact(str(exc)) from None
    return str(checked.normalized)


def simple_email(value: str) -> str | None:
    """:func:`normalize_email` of a trimmed address of at most 254 characters when it is
    a plain ASCII one (the fast path: a lower-cased domain); ``None`` when only the
    library can tell (valid or not). Not cached: for callers that keep their own cache."""
    local, _, domain = value.partition("@")
    if (
        len(local) <= 64
        and _SIMPLE_EMAIL.fullmatch(value) is not None
        and "--" not in domain
        and domain.rpartition(".")[2].lower() not in _SPECIAL_USE
        and local.lower() not in _ROLE_MAILBOXES
    ):
        return f"{local}@{domain.lower()}"
    return None


def email_key(normalized_email: str) -> str:
    """The identity used to find the same person again: the whole address lower-cased,
    because in practice mailbox providers ignore case in the local part too."""
    return normalized_email.lower()[:254]


def email_domain(normalized_email: str) -> str:
    return normalized_email.rpartition("@")[2].lower()


DOTLESS_MAIL_DOMAINS = frozenset({"gmail.com", "googlemail.com"})
"""Gmail ignores dots before the ``@`` (``j.smith`` and ``jsmith`` are one mailbox), and
``googlemail.com`` is the same mailbox as ``gmail.com``. No other provider is known to."""

PLUS_TAG_DOMAINS = frozenset(
    {
        *DOTLESS_MAIL_DOMAINS,
        "outlook.com",
        "hotmail.com",
        "live.com",
        "icloud.com",
        "me.com",
        "mac.com",
        "fastmail.com",
        "proton.me",
        "protonmail.com",
    }
)
"""Providers documented to deliver ``name+tag@`` to ``name@``. Elsewhere a ``+`` is left
alone: a company's mail server may give it another meaning (or none), and two
addresses that differ are then two people until a person says otherwise."""


def mailbox_key(key: str | None) -> str | None:
    """The one mailbox a provider delivers an address to, for the providers that deliver
    several spellings to one (``J.Smith+news@googlemail.com`` -> ``jsmith@gmail.com``);
    ``None`` for any other address. ``key``: an :func:`email_key`. Two leads with the
    same mailbox key are one inbox, so a possible duplicate on its own."""
    if not key:
        return None
    local, _, domain = key.rpartition("@")
    if domain not in PLUS_TAG_DOMAINS:
        return None
    local = local.partition("+")[0]
    if domain in DOTLESS_MAIL_DOMAINS:
        local, domain = local.replace(".", ""), "gmail.com"
    return f"{local}@{domain}" if local else None


def normalize_phone(raw: str, default_region: str) -> str:
    """E.164 form (``+14155550100``) of a number written in any common way; numbers
    without a country code are read in ``default_region`` (ISO 3166 alpha-2).

    The check is "possible" (right length for the country), not "valid" (an assigned
    range in the library's metadata): new number ranges and stale metadata must never
    cost a real lead, and the strict check is several times slower on large imports.

    Each distinct ``(raw, region)`` is parsed once per process (an import repeats
    numbers), and two common shapes take a fast path that gives exactly the library's
    answer (tests hold them together): ``(415) 555-0100`` in the default region US,
    and an international number of digits and spaces (``+44 20 7946 0958``), read with
    the library's own metadata in about a quarter of its time."""
    return _e164(raw.strip(), default_region.upper())


_NANP_SHAPE = re.compile(
    r"(?:\(([2-9][0-9]{2})\) ?|([2-9][0-9]{2})[ .-]?)([0-9]{3})[ .-]?([0-9]{4})"
)
"""A ten-digit US number written plainly: the library reads it as itself (no national
prefix to strip: it starts with 2-9) and ten digits are a possible US length."""


_INTERNATIONAL_SHAPE = re.compile(r"\+([1-9][0-9 ]{2,60})")
"""``+``, a country code and digits, spaces between them allowed: nothing in it is an
extension, a letter or a second number, so the library reads its digits as they are."""
_KEEPS_PREFIX = frozenset(
    {
        _pn.ValidationResult.TOO_SHORT,
        _pn.ValidationResult.IS_POSSIBLE_LOCAL_ONLY,
        _pn.ValidationResult.INVALID_LENGTH,
    }
)
_POSSIBLE = frozenset(
    {_pn.ValidationResult.IS_POSSIBLE, _pn.ValidationResult.IS_POSSIBLE_LOCAL_ONLY}
)


def _international(value: str) -> str | None:
    """The E.164 form of an international number of :data:`_INTERNATIONAL_SHAPE`, by
    the steps ``phonenumbers.parse`` takes for it (country code, national prefix,
    lengths from the library's metadata), or ``None`` when the library itself must
    answer: another shape, or a number it refuses (its message says why)."""
    shape = _INTERNATIONAL_SHAPE.fullmatch(value)
    if shape is None:
        return None
    digits = shape.group(1).replace(" ", "")
    for size in (1, 2, 3):
        if int(digits[:size]) in _pn.COUNTRY_CODE_TO_REGION_CODE:
            code, national = int(digits[:size]), digits[size:]
            break
    else:
        return None
    metadata = _PhoneMetadata.metadata_for_region_or_calling_code(
        code, _pn.region_code_for_country_code(code)
    )
    if metadata is None or len(national) < 2:
        return None
    _, stripped, _ = _pn._maybe_strip_national_prefix_carrier_code(national, metadata)
    if _pn._test_number_length(stripped, metadata) not in _KEEPS_PREFIX:
        national = stripped
    if not 2 <= len(national) <= 17:
        return None
    if _pn._test_number_length(national, metadata) not in _POSSIBLE:
        return None
    return f"+{code}{national}"


@lru_cache(maxsize=65536)
def _e164(value: str, default_region: str) -> str:
    if default_region == "US" and (shape := _NANP_SHAPE.fullmatch(value)) is not None:
        return "+1" + "".join(part for part in shape.groups() if part)
    if value[:1] == "+" and (found := _international(value)) is not None:
        return found
    try:
        parsed = phonenumbers.parse(value, default_region)
    except phonenumbers.NumberParseException as exc:
        # the library's message starts with its error code, "(1) ": not for people
        words = re.sub(r"^\(\d+\) ", "", str(exc))
        raise InvalidContact(f"not a phone number: {words}") from None
    if not phonenumbers.is_possible_number(parsed):
        raise InvalidContact(
            f"not a possible phone number: wrong length for its country (read with default"
            f" region {default_region}; add a +country code if it is foreign)"
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


_COUNTRY_ALIASES = {
    "uk": "GB",
    "great britain": "GB",
    "england": "GB",
    "scotland": "GB",
    "wales": "GB",
    "northern ireland": "GB",
    "britain": "GB",
    "usa": "US",
    "united states": "US",
    "russia": "RU",
    "turkey": "TR",
    "ivory coast": "CI",
    "holland": "NL",
    "burma": "MM",
    "swaziland": "SZ",
    "macedonia": "MK",
    "south korea": "KR",
    "north korea": "KP",
    "vatican": "VA",
    "palestine": "PS",
    "kosovo": "XK",
}
"""Names people write that ISO 3166-1 does not list under that spelling (``pycountry``
knows the official, common and short names and the alpha-2, alpha-3 and numeric codes).
``XK`` (Kosovo) is the user-assigned code that every major data provider uses."""


@lru_cache(maxsize=4096)
@lru_cache(maxsize=4096)
def normalize_country(raw: str) -> str:
    """The ISO 3166-1 alpha-2 code of a country written as a code (``de``, ``DEU``) or
    an English name (``Germany``, ``United States of America``, ``UK``); raises
    :class:`InvalidContact` for anything else, such as a region (``Asia/Pacific``)."""
    value = " ".join(raw.replace(".", "").split())
    alias = _COUNTRY_ALIASES.get(value.lower())
    if alias is not None:
        return alias
    try:
        found = pycountry.countries.lookup(value)
    except LookupError:
        raise InvalidContact(
            f"{raw.strip()!r} is not a country: use an ISO 3166-1 code (US, DE) or an "
            "English country name (Germany)"
        ) from None
    return str(found.alpha_2)


SHARED_DOMAIN_COMPANIES = 3
"""Companies named by a domain's leads that make it a shared domain (a constant, not a
setting)."""


def shared_domain_reason(domain: str, companies: int, threshold: int) -> str | None:
    """Why ``domain`` cannot stand for one company, or ``None`` when it can.

    A won lead makes its email domain an account owned by the winning rep, and every
    later lead from that domain is routed to that rep. That is right for a company's own
    domain and badly wrong for a shared one: a mailbox provider (the known list), or any
    domain whose leads name ``threshold`` or more different companies (``companies`` is
    the number of distinct company keys among the domain's leads), which is how an
    unlisted provider, an agency, a university or a made-up domain shows itself."""
    if domain in FREE_MAIL_DOMAINS:
        return f"{domain} is a free mail provider"
    if companies >= threshold:
        return f"the leads from {domain} name {companies} different companies"
    return None
