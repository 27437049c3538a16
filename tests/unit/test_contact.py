"""Contact details: email and phone normalization, company keys."""

from __future__ import annotations

import re

import email_validator
import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st

from baton.domain.contact import (
    NOT_SPECIAL_USE,
    InvalidContact,
    company_key,
    email_domain,
    email_key,
    normalize_email,
    normalize_phone,
)

# --- email -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("dana@northwind.example.com", "dana@northwind.example.com"),
        ("  Dana.Reyes@NorthWind.Example.COM \n", "Dana.Reyes@northwind.example.com"),
        ("\tJ.Doe+Webinar@Mail.ACME.io", "J.Doe+Webinar@mail.acme.io"),
        ("o'brien@Example.org", "o'brien@example.org"),
    ],
)
def test_email_is_trimmed_with_lower_cased_domain_and_local_part_kept(
    raw: str, expected: str
) -> None:
    assert normalize_email(raw) == expected


@pytest.mark.parametrize(
    ("raw", "hint"),
    [
        ("", "@"),
        ("   ", "@"),
        ("dana.northwind.example.com", "@"),
        ("dana@", "after the @"),
        ("@northwind.example.com", "before the @"),
        ("dana@@northwind.example.com", ""),
        ("da..na@northwind.example.com", "period"),
        (".dana@northwind.example.com", "period"),
        ("dana@northwind", "period"),
        ("dana reyes@northwind.example.com", ""),
        ("dana@-northwind.example.com", ""),
        ("dana@northwind.localhost", "special-use"),
        ("dana@printer.local", "special-use"),
        ("dana@example.invalid", "special-use"),
    ],
)
def test_invalid_addresses_are_refused_with_a_reason(raw: str, hint: str) -> None:
    with pytest.raises(InvalidContact) as caught:
        normalize_email.__wrapped__(raw)
    message = str(caught.value)
    assert len(message) > 15
    assert hint in message


def test_email_key_ignores_case_everywhere_and_domain_is_lower_cased() -> None:
    assert email_key(normalize_email("Dana.Reyes@X.io")) == email_key(
        normalize_email("dana.reyes@x.IO")
    )
    assert email_domain(normalize_email("Dana@Sub.Northwind.COM")) == "sub.northwind.com"


_LOCAL_CHARS = "abcxyzABCXYZ0189.+-_!#$%&'*/=?^`{|}~"
_LABEL_CHARS = "abcmnxyzABCMNXYZ0129-"
ROLE_MAILBOXES = ("info", "marketing", "sales", "support", "abuse", "postmaster", "webmaster")

local_parts = st.one_of(
    st.text(alphabet=_LOCAL_CHARS, min_size=1, max_size=20),
    st.sampled_from(ROLE_MAILBOXES).flatmap(
        lambda role: st.sampled_from([role, role.upper(), role.title()])
    ),
    st.builds(
        lambda a, b: f"{a}.{b}",
        st.text(alphabet="abcXYZ", min_size=1, max_size=8),
        st.text(alphabet="abcXYZ+-", min_size=1, max_size=8),
    ),
)
labels = st.one_of(
    st.text(alphabet=_LABEL_CHARS, min_size=0, max_size=12),
    st.builds(
        lambda head, tail: f"{head}--{tail}",
        st.sampled_from(["ab", "xn", "XN", "a1"]),
        st.sampled_from(["", "cd", "bcher-kva", "abc", "4dbc"]),
    ),
)
tlds = st.one_of(
    st.sampled_from(["com", "io", "org", "DE", "co", "Travel", "test", "local", "arpa"]),
    st.text(alphabet="abcXYZ019-", min_size=0, max_size=6),
)
domains = st.builds(
    lambda parts, tld: ".".join([*parts, tld]), st.lists(labels, min_size=0, max_size=3), tlds
)
addresses = st.builds(lambda local, domain: f"{local}@{domain}", local_parts, domains)

_atoms = st.text(alphabet="abcXYZ019+_-", min_size=1, max_size=8)
_plain_labels = st.from_regex(r"[a-zA-Z0-9]([a-zA-Z0-9-]{0,8}[a-zA-Z0-9])?", fullmatch=True)
well_formed_addresses = st.builds(
    lambda atoms, host, tld: f"{'.'.join(atoms)}@{'.'.join(host)}.{tld}",
    st.lists(_atoms, min_size=1, max_size=3),
    st.lists(_plain_labels, min_size=1, max_size=3),
    st.from_regex(r"[a-zA-Z]{2,6}", fullmatch=True),
)


def _library(address: str) -> str | None:
    try:
        return str(email_validator.validate_email(address, check_deliverability=False).normalized)
    except email_validator.EmailNotValidError:
        return None


def _ours(address: str) -> str | None:
    try:
        return normalize_email.__wrapped__(address)
    except InvalidContact:
        return None


@given(st.one_of(addresses, well_formed_addresses))
@example("dana.reyes@northwind.example.com")
@example("Dana+Q4@Sub.North-Wind.Example.COM")
@example("x@a-b.co")
@example("a@b.c")
@example("a@123.com")
@example("a@b.123")
@example("a@x.home")
def test_fast_path_agrees_with_email_validator(address: str) -> None:
    assert _ours(address) == _library(address)


def test_role_mailboxes_are_lower_cased_like_email_validator() -> None:
    assert _ours("Info@Northwind.com") == _library("Info@Northwind.com")


def test_labels_with_double_hyphen_are_refused_like_email_validator() -> None:
    assert _ours("dana@ab--cd.com") == _library("dana@ab--cd.com") is None


@pytest.mark.parametrize("address", ["dana@xn--abc.com", "dana@xn--bcher-kva.com"])
def test_punycode_domains_are_handled_like_email_validator(address: str) -> None:
    assert _ours(address) == _library(address)


@given(well_formed_addresses)
def test_normalizing_twice_changes_nothing(address: str) -> None:
    once = _ours(address)
    assume(once is not None)
    assert normalize_email.__wrapped__(once) == once


@given(addresses, st.sampled_from(["", " ", "  \t", "\n"]), st.sampled_from(["", " ", "\r\n"]))
def test_surrounding_whitespace_never_matters(address: str, before: str, after: str) -> None:
    assert _ours(before + address + after) == _ours(address)


# --- phone -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("(202) 456-1111", "US", "+12024561111"),
        ("202.456.1111", "us", "+12024561111"),
        ("+1 202 456 1111", "DE", "+12024561111"),
        ("030 22732152", "DE", "+493022732152"),
        ("0151 23456789", "DE", "+4915123456789"),
        ("+44 20 7946 0958", "US", "+442079460958"),
        ("  +33 1 42 68 53 00 ", "US", "+33142685300"),
    ],
)
def test_phones_come_out_in_e164(raw: str, region: str, expected: str) -> None:
    assert normalize_phone(raw, region) == expected


@pytest.mark.parametrize("raw", ["", "hello", "12", "+1 202 456 11", "555-0134-99999999", "+49 1"])
def test_invalid_phones_are_refused(raw: str) -> None:
    with pytest.raises(InvalidContact) as caught:
        normalize_phone(raw, "US")
    assert "phone number" in str(caught.value)
    assert "(1)" not in str(caught.value)  # never the library's error code


def test_a_foreign_number_without_country_code_is_refused_naming_the_region() -> None:
    with pytest.raises(InvalidContact) as caught:
        normalize_phone("030 22732152", "US")
    assert "US" in str(caught.value)


# --- company key -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("ACME, Inc.", "Acme"),
        ("Northwind Traders Ltd.", "northwind traders"),
        ("Globex GmbH", "GLOBEX"),
        ("Initech LLC", "Initech, llc"),
    ],
)
def test_company_key_ignores_case_punctuation_and_legal_suffixes(a: str, b: str) -> None:
    assert company_key(a) == company_key(b)
    assert company_key(a)


@pytest.mark.parametrize(("a", "b"), [("Acme", "Globex"), ("Northwind", "Southwind Traders")])
def test_different_companies_have_different_keys(a: str, b: str) -> None:
    assert company_key(a) != company_key(b)


@pytest.mark.parametrize("raw", [None, "", "   ", "Inc.", ", LLC"])
def test_company_key_of_nothing_is_none(raw: str | None) -> None:
    assert company_key(raw) is None


@given(
    local=st.from_regex(r"[a-z0-9._]{1,20}", fullmatch=True),
    labels=st.lists(st.from_regex(r"[a-z0-9]{1,10}", fullmatch=True), min_size=1, max_size=3),
    last=st.sampled_from(["test", "TEST", "Invalid", "local", "localhost", "onion", "arpa", "home"])
    | st.from_regex(r"[a-zA-Z]{2,8}", fullmatch=True),
)
def test_the_schema_pattern_refuses_the_special_use_domains_the_code_refuses(
    local: str, labels: list[str], last: str
) -> None:
    """The OpenAPI's email pattern and :func:`normalize_email` agree on special-use
    domain names (``.home`` is not one), whatever their case: a client generating data
    from the schema is not refused for a domain the schema allowed."""
    address = f"{local}@{'.'.join([*labels, last])}"
    special = last.lower() in email_validator.SPECIAL_USE_DOMAIN_NAMES
    assert (re.match(NOT_SPECIAL_USE, address) is None) == special
    if special:
        with pytest.raises(InvalidContact):
            normalize_email(address)
