"""Command-line wording: each problem said once (intake log, import warnings)."""

import json

from baton.cli.intake import _short_error


def test_problems_already_in_the_detail_are_not_repeated() -> None:
    error = json.dumps(
        {
            "detail": "the form post cannot be read: description: broken escape",
            "errors": [{"loc": "description", "message": "broken escape"}],
        }
    )
    assert _short_error(error) == "the form post cannot be read: description: broken escape"


def test_problems_missing_from_the_detail_are_added() -> None:
    error = json.dumps(
        {"detail": "submission(s) failed", "errors": [{"loc": "[0].email", "message": "bad"}]}
    )
    assert _short_error(error) == "submission(s) failed; [0].email: bad"


def test_an_import_warning_says_left_out_once() -> None:
    from baton.cli.imports import _kept_suffix

    assert _kept_suffix("'Engaging' is not a stage Baton knows; left out") == (
        " (the row was imported)"
    )
    assert _kept_suffix("no date; not recorded") == " (the row was imported)"
    moved = "customer dated 2026-07-15 is before the step before it; recorded at that moment"
    assert _kept_suffix(moved) == " (the row was imported)"
    assert _kept_suffix("unknown country 'Atlantis'") == " (left out; the row was imported)"
