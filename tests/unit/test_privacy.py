"""The consent rules as a table: which answer changes what, and which lifts an
unsubscribe (pure, no database)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from baton.domain.leads import fill_blanks, merge_profile
from baton.domain.privacy import decide_consent, erased_key, read_basis, suppression_keys

AT = datetime(2026, 3, 2, 9, tzinfo=UTC)
NEVER: dict[str, Any] = {"consent": None, "consent_basis": None, "unsubscribed_at": None}
OPTED = {"consent": True, "consent_basis": "consent", "unsubscribed_at": None}
LEGIT = {"consent": True, "consent_basis": "legitimate_interest", "unsubscribed_at": None}
REFUSED = {"consent": False, "consent_basis": None, "unsubscribed_at": None}
UNSUBSCRIBED = {"consent": False, "consent_basis": None, "unsubscribed_at": AT}

YES = {"consent": True}
NO = {"consent": False}
OPT_IN = {"consent_basis": "consent", "consent_source": "form"}
INTEREST = {"consent_basis": "legitimate_interest"}


@pytest.mark.parametrize(
    ("existing", "answer", "fill_only", "changed", "opt_in"),
    [
        (NEVER, {}, False, {}, False),
        (NEVER, YES, False, {"consent": True}, False),
        (NEVER, OPT_IN, True, {"consent": True, "consent_basis": "consent"}, True),
        (NEVER, INTEREST, True, {"consent": True, "consent_basis": "legitimate_interest"}, False),
        (OPTED, INTEREST, False, {}, False),
        (OPTED, OPT_IN, False, {}, True),
        (LEGIT, OPT_IN, False, {"consent_basis": "consent"}, True),
        (OPTED, NO, True, {"consent": False, "consent_basis": None}, False),
        (REFUSED, YES, False, {"consent": True}, False),
        (REFUSED, YES, True, {}, False),
        (REFUSED, INTEREST, False, {}, False),
        (REFUSED, OPT_IN, True, {}, False),
        (REFUSED, OPT_IN, False, {"consent": True, "consent_basis": "consent"}, True),
        (UNSUBSCRIBED, YES, False, {}, False),
        (UNSUBSCRIBED, INTEREST, False, {}, False),
        (UNSUBSCRIBED, OPT_IN, True, {}, False),
        (
            UNSUBSCRIBED,
            OPT_IN,
            False,
            {"consent": True, "consent_basis": "consent", "unsubscribed_at": None},
            True,
        ),
    ],
)
def test_consent_rules(
    existing: dict[str, Any],
    answer: dict[str, Any],
    fill_only: bool,
    changed: dict[str, Any],
    opt_in: bool,
) -> None:
    decision = decide_consent(existing, answer, fill_only=fill_only)
    expected = {**changed, "consent_source": answer.get("consent_source")} if changed else {}
    assert (decision.changes, decision.opt_in) == (expected, opt_in)
    dated = merge_profile(existing, answer, fill_only=fill_only, at=AT)
    assert dated.get("consent_at") == (AT if changed else None)


def test_bases_and_keys() -> None:
    assert read_basis(" Legitimate-Interest ") == "legitimate_interest"
    with pytest.raises(ValueError, match="never covers marketing"):
        read_basis("vital_interests")
    plain, hashed = suppression_keys(" Dana@Northwind.example ")
    assert plain == "dana@northwind.example" and hashed == erased_key("DANA@northwind.example")
    assert hashed.startswith("sha256:") and len(hashed) == 71 and "dana" not in hashed


def test_a_merge_keeps_the_refusal_and_the_unsubscribe() -> None:
    assert fill_blanks(OPTED, {**UNSUBSCRIBED, "consent_source": "link"}) == {
        "consent": False,
        "consent_basis": None,
        "consent_source": "link",
        "consent_at": None,
        "unsubscribed_at": AT,
    }
    taken = fill_blanks(NEVER, {**OPTED, "consent_source": "form", "consent_at": AT})
    assert taken == {
        "consent": True,
        "consent_basis": "consent",
        "consent_source": "form",
        "consent_at": AT,
    }
