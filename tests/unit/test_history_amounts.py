"""Amounts as CRMs and spreadsheets write them (history import, spend import)."""

import pytest

from baton.domain.history import read_amount


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("12,500.00", 12500.0),
        ("$12500", 12500.0),
        ("12500 USD", 12500.0),
        ("1,250,000", 1250000.0),
        ("12.000,50 €", 12000.5),
        ("1.250.000", 1250000.0),
        ("12 500", 12500.0),
        ("12,5", 12.5),
        ("12,50", 12.5),
        ("99.95", 99.95),
        ("", None),
    ],
)
def test_amounts_read_with_either_decimal_mark(text: str, value: float | None) -> None:
    assert read_amount(text) == value


@pytest.mark.parametrize("text", ["lots", "-", "1.2.3,4,5", "12-500", "-300"])
def test_what_is_not_an_amount_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        read_amount(text)


@pytest.mark.parametrize(
    ("text", "amount"),
    [("1200", 1200.0), ("1,200.50", 1200.5), ("1,250,000", 1250000.0), (".5", 0.5)],
)
def test_a_spend_amount_reads_commas_as_thousands(text: str, amount: float) -> None:
    from baton.services.reports import _spend_row

    row, problems = _spend_row({"source": "ads", "month": "2026-03", "amount": text}, 2)
    assert problems == [] and row is not None and row["amount"] == amount


@pytest.mark.parametrize("text", ["12,5", "1,20", "12.000,50", "1,2,3"])
def test_a_spend_amount_with_a_decimal_comma_is_refused_not_misread(text: str) -> None:
    from baton.services.reports import _spend_row

    row, problems = _spend_row({"source": "ads", "month": "2026-03", "amount": text}, 2)
    assert row is None and [p.field for p in problems] == ["amount"]
