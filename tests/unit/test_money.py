from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from salespulse.domain.money import CurrencyConverter, UnknownCurrency, cents_to_decimal, to_cents, to_decimal


@given(st.integers(min_value=0, max_value=10**14))
def test_json_floats_of_cent_amounts_are_read_exactly(cents):
    text = f"{cents // 100}.{cents % 100:02d}"
    assert to_decimal(float(text)) == Decimal(text)
    assert to_cents(to_decimal(float(text))) == cents


def test_sums_of_cents_are_exact_where_float_sums_are_not():
    amounts = [to_decimal(0.1)] * 10
    assert sum(to_cents(a) for a in amounts) == 100
    assert sum([0.1] * 10) != 1.0  # why money is never summed as floats


def test_half_cents_round_half_up():
    assert to_cents(Decimal("10.005")) == 1001
    assert to_cents(Decimal("10.0049")) == 1000
    assert cents_to_decimal(1001) == Decimal("10.01")


def test_conversion_uses_configured_rates_and_refuses_unknown_currencies():
    fx = CurrencyConverter("EUR", {"USD": Decimal("0.92")})
    assert fx.cents(Decimal("100"), "USD") == 9200
    assert fx.cents(Decimal("100"), "EUR") == 10000
    with pytest.raises(UnknownCurrency, match="no exchange rate from GBP to EUR"):
        fx.cents(Decimal("1"), "GBP")
