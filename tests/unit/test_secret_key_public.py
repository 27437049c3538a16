"""Nurture email sends unsubscribe, click and open links signed with BATON_SECRET_KEY
to the world: a Baton whose public address is not local refuses to start with the
built-in (published) development key, whatever BATON_ENV says."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from baton.config import INSECURE_SECRET, Settings

RANDOM_KEY = "k" * 40


@pytest.mark.parametrize(
    "public_url", ["https://baton.acme.example", "http://203.0.113.5:8000", "http://10.0.0.7"]
)
def test_a_public_address_needs_a_real_secret_key(public_url: str) -> None:
    with pytest.raises(ValidationError, match="BATON_SECRET_KEY must be set"):
        Settings(env="development", secret_key=INSECURE_SECRET, public_url=public_url)
    assert Settings(env="development", secret_key=RANDOM_KEY, public_url=public_url)


@pytest.mark.parametrize(
    "public_url", ["http://127.0.0.1:8000", "http://localhost:8000", "http://baton.localhost"]
)
def test_local_development_needs_no_configuration(public_url: str) -> None:
    assert Settings(env="development", secret_key=INSECURE_SECRET, public_url=public_url)
