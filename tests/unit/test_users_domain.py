"""Intake keys' origins are kept the way browsers send them."""

from __future__ import annotations

import pytest

from baton.domain.users import IntakeKeyCreate, origin_for


@pytest.mark.parametrize(
    ("written", "kept"),
    [
        ("https://EXAMPLE.org:443", "https://example.org"),
        ("http://example.org:80/", "http://example.org"),
        ("https://example.org:8443", "https://example.org:8443"),
        ("http://example.org:443", "http://example.org:443"),
        ("HTTPS://shop.example", "https://shop.example"),  # the scheme as pasted, too
        ("Http://Shop.Example:80", "http://shop.example"),
    ],
)
def test_an_origin_is_kept_as_a_browser_sends_it(written: str, kept: str) -> None:
    key = IntakeKeyCreate(name="site", source="web", origins=[written])
    assert key.origins == [kept]


@pytest.mark.parametrize(
    ("written", "meant"),
    [
        ("www.x.com", "https://www.x.com"),
        ("https://x.com/pricing", "https://x.com"),
        ("//Shop.Example/form", "https://shop.example"),
        ("not an address", None),
        ("ftp://x.com", None),
    ],
)
def test_a_refused_origin_suggests_the_one_meant(written: str, meant: str | None) -> None:
    assert origin_for(written) == meant
