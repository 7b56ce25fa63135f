"""What the API admits to the sales.* topics: events the processor would count, not dead-letter.

POST /events and the webhook intake both check an event against its schema, against what the
processor refuses beyond it (domain.admission: a currency with no rate, older than
ENTITY_RETENTION_DAYS) and against the processor's size limit, so a sender hears of it at once
instead of the event being dead-lettered after a 2xx.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from salespulse.contracts.events import InvalidEvent, encode_event, parse_event
from salespulse.domain.admission import refusal
from salespulse.domain.events import Envelope
from salespulse.domain.money import CurrencyConverter
from salespulse.domain.retention import Retention


@dataclass(frozen=True)
class Admission:
    converter: CurrencyConverter  # the processors' FX_RATES
    retention: Retention  # and ENTITY_RETENTION_DAYS

    def admit(self, doc: Any, now: datetime) -> tuple[Envelope, bytes]:
        """The event parsed and the message value to produce; InvalidEvent with the reason."""
        envelope = parse_event(doc)
        refused = refusal(envelope.data, self.converter, self.retention, now)
        if refused:
            raise InvalidEvent(refused)
        return envelope, encode_event(doc)
