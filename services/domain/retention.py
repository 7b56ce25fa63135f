"""How long state is kept, so that it grows with keys x periods kept, not with events.

- A measure bucket of a kind with a retention is dropped once it ended more than that many
  days ago (day buckets after 400 days by default; month, quarter and year buckets are kept).
  Date windows read year rows for whole past years, so they stay right as days expire.
- A finished entity (an ended call, a closed deal, an activity, a survey answer, a spend
  record, an order, an invoice paid in full) is dropped once its business time is older than
  `entity_days`. An event about such an entity arriving later could not be told from a new
  one, so an event whose own time is that old is refused with a reason (dead-lettered)
  instead of being counted again. An unpaid invoice is kept: it is still owed.
- A customer keeps its orders placed within `entity_days`; older ones are folded into a
  fixed-size history (`customers.freeze`), since no order that old can arrive any more.

An order cancellation (a return) names no order date: one that arrives after its order
expired waits for it like a cancellation that overtook its order, and is reported as
unmatched when it expires in turn. The same holds for a payment of an invoice no longer kept.
Hence the default of 400 days: longer than a year's return window and dunning.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from salespulse.domain import entities, states
from salespulse.domain.events import (
    ActivityLogged,
    CallAnswered,
    CallEnded,
    CallStarted,
    CustomerChurned,
    DealChanged,
    InvoiceIssued,
    OrderPlaced,
    PaymentReceived,
    SpendRecorded,
    SurveyAnswered,
)
from salespulse.domain.periods import PERIODS, next_period_start

DEFAULT_BUCKET_DAYS: dict[str, int] = {"day": 400, "week": 800}

# The business time of an event about an entity that expires, and of the entity itself.
_EVENT_TIME = {
    CallStarted: "started_at", CallAnswered: "started_at", CallEnded: "started_at",
    DealChanged: "updated_at", ActivityLogged: "updated_at", SurveyAnswered: "answered_at",
    SpendRecorded: "spent_at", OrderPlaced: "placed_at", InvoiceIssued: "issued_at",
    PaymentReceived: "received_at", CustomerChurned: "churned_at",
}


def _invoice_finished_at(s) -> datetime | None:
    if s.issued_at is not None and s.outstanding_cents:
        return None  # still owed
    moments = [p.received_at for p in s.payments]
    if s.issued_at is not None:
        moments.append(s.issued_at)
    return max(moments)


# When a finished entity last changed, by its storage kind; entities of other kinds never expire.
_FINISHED_AT = {
    "call": lambda s: s.started_at if s.rank >= 3 else None,
    "deal": lambda s: s.updated_at if s.stage in entities.CLOSED_STAGES else None,
    "activity": lambda s: s.updated_at,
    "survey": lambda s: s.answered_at,
    "spend": lambda s: s.spent_at,
    "order": lambda s: s.placed_at or s.cancelled_at,
    "invoice": _invoice_finished_at,
}
EXPIRING_KINDS = frozenset(_FINISHED_AT)


def _finished_at(state) -> datetime | None:
    """When a finished entity last changed; None while it may still change, or if it never expires."""
    finished_at = _FINISHED_AT.get(states.kind_of(state))
    return None if finished_at is None else finished_at(state)


def unmatched(state) -> bool:
    """Whether an entity is only a cancellation or payments still waiting for its order or invoice."""
    kind = states.kind_of(state)
    return (kind == "order" and state.placed_at is None) or (kind == "invoice" and state.issued_at is None)


@dataclass(frozen=True)
class Retention:
    bucket_days: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_BUCKET_DAYS))
    entity_days: int = 400  # 0: keep every entity

    def __post_init__(self) -> None:
        unknown = set(self.bucket_days) - set(PERIODS)
        if unknown:
            raise ValueError(f"retention for unknown period kinds {sorted(unknown)}; known: {', '.join(PERIODS)}")

    def bucket_expired(self, period: str, start: date, today: date) -> bool:
        days = self.bucket_days.get(period, 0)
        return bool(days) and next_period_start(period, start) + timedelta(days=days) <= today

    def entity_expired(self, state, now: datetime) -> bool:
        finished = _finished_at(state)
        return bool(self.entity_days) and finished is not None and finished < now - timedelta(days=self.entity_days)

    def freeze_before(self, now: datetime) -> datetime | None:
        """The moment before which customers' orders are folded into their history."""
        return now - timedelta(days=self.entity_days) if self.entity_days else None

    def too_late(self, data, now: datetime) -> str | None:
        """Why an event is refused, if it is about an entity that would have expired already."""
        name = _EVENT_TIME.get(type(data))
        if not self.entity_days or name is None:
            return None
        moment = getattr(data, name)
        if moment < now - timedelta(days=self.entity_days):
            return (f"{name} {moment.isoformat()} is older than the {self.entity_days}-day retention of "
                    "finished entities: it could not be told from a re-sent event (ENTITY_RETENTION_DAYS)")
        return None


KEEP_EVERYTHING = Retention({}, 0)
