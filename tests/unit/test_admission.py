"""What the API refuses before it produces, because the processor would dead-letter it."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

from salespulse.contracts.events import parse_event
from salespulse.domain.admission import refusal
from salespulse.domain.money import CurrencyConverter
from salespulse.domain.retention import KEEP_EVERYTHING, Retention

NOW = datetime(2026, 12, 7, 12, tzinfo=timezone.utc)
EUR_USD = CurrencyConverter("EUR", {"USD": Decimal("0.92")})
FOUR_HUNDRED_DAYS = Retention({}, 400)


def order(currency: str, placed: datetime):
    return parse_event({"specversion": "1.0", "id": "e", "source": "erp", "type": "order.placed", "data": {
        "order_id": "o", "customer_id": "c", "rep_id": "r", "placed_at": placed.isoformat(), "currency": currency,
        "lines": [{"product": "p", "quantity": 1, "unit_price": "10.00", "unit_cost": "1.00"}]}}).data


def test_an_event_the_processor_counts_is_not_refused():
    assert refusal(order("EUR", NOW), EUR_USD, FOUR_HUNDRED_DAYS, NOW) is None
    assert refusal(order("USD", NOW - timedelta(days=399)), EUR_USD, FOUR_HUNDRED_DAYS, NOW) is None
    assert refusal(order("EUR", NOW - timedelta(days=4000)), EUR_USD, KEEP_EVERYTHING, NOW) is None


def test_a_currency_without_a_rate_or_a_moment_past_retention_is_refused_with_the_processors_reason():
    assert refusal(order("GBP", NOW), EUR_USD, FOUR_HUNDRED_DAYS, NOW) == (
        'event.data.currency: no exchange rate from GBP to EUR; set FX_RATES, e.g. {"GBP": "1.0"}')
    late = refusal(order("EUR", NOW - timedelta(days=401)), EUR_USD, FOUR_HUNDRED_DAYS, NOW)
    assert late.startswith("event.data.placed_at 2025-11-01T12:00:00+00:00 is older than the 400-day retention")
