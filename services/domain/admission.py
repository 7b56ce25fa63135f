"""Why the processor would dead-letter an event that its schema lets through, if it would.

The API asks before it produces (POST /events answers 422, a translated webhook event is
`invalid`), so a sender hears of it at once instead of the event going to sales.deadletter
after a 202; events written straight to Kafka are still dead-lettered for the same reasons.
The API and the processors take the same settings (FX_RATES, ENTITY_RETENTION_DAYS).
"""

from __future__ import annotations

from datetime import datetime

from salespulse.domain.money import CurrencyConverter, UnknownCurrency
from salespulse.domain.retention import Retention


def refusal(data: object, converter: CurrencyConverter, retention: Retention, now: datetime) -> str | None:
    """The reason, prefixed with the field it is about, or None."""
    currency = getattr(data, "currency", None)
    if currency is not None:
        try:
            converter.check(currency)
        except UnknownCurrency as exc:
            return f"event.data.currency: {exc}"
    too_late = retention.too_late(data, now)
    return f"event.data.{too_late}" if too_late else None
