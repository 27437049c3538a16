"""Intake keys' origins are kept the way browsers send them."""

from __future__ import annotations

import pytest

from baton.domain.users import IntakeKeyCreate


@pytest.mark.parametrize(
    ("written", "kept"),
    [
        ("https://EXAMPLE.org:443", "https://example.org"),
        ("http://example.org:80/", "http://example.org"),
        ("https://example.org:8443", "https://example.org:8443"),
        ("http://example.org:443", "http://example.org:443"),
    ],
)
def test_an_origin_is_kept_as_a_browser_sends_it(written: str, kept: str) -> None:
    key = IntakeKeyCreate(name="site", source="web", origins=[written])
    assert key.origins == [kept]
