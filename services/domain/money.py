"""Exact money: amounts become integer minor units (cents) of the reporting currency."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

CENT = Decimal("0.01")


class UnknownCurrency(ValueError):
    """An amount is in a currency with no configured exchange rate."""


def to_decimal(value: int | float | str | Decimal) -> Decimal:
    """A JSON amount as an exact Decimal.

    A float is read through its shortest repr, which is the decimal text the sender wrote
    for any amount of 15 significant digits or fewer (strings carry more).
    """
    if isinstance(value, Decimal):
        return value
    if isinstance(value, float):
        return Decimal(repr(value))
    return Decimal(value)


def to_cents(amount: Decimal) -> int:
    return int(amount.quantize(CENT, rounding=ROUND_HALF_UP) * 100)


def cents_to_decimal(cents: int) -> Decimal:
    return (Decimal(cents) / 100).quantize(CENT)


@dataclass(frozen=True)
class CurrencyConverter:
    """Converts amounts into the reporting currency with configured rates (1 unit = rate)."""

    reporting: str = "EUR"
    rates: dict[str, Decimal] = field(default_factory=dict)

    def to_reporting(self, amount: Decimal, currency: str) -> Decimal:
        if currency == self.reporting:
            return amount
        rate = self.rates.get(currency)
        if rate is None:
            raise UnknownCurrency(
                f"no exchange rate from {currency} to {self.reporting}; set FX_RATES, "
                f'e.g. {{"{currency}": "1.0"}}')
        return amount * rate

    def check(self, currency: str) -> None:
        """UnknownCurrency, with the processor's reason, unless amounts in `currency` convert."""
        self.to_reporting(Decimal(0), currency)

    def cents(self, amount: Decimal, currency: str) -> int:
        return to_cents(self.to_reporting(amount, currency))
