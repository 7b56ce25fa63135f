"""Domain events: one dataclass per event type, field for field its JSON Schema's `data`.

tests/unit/test_schema_drift.py checks that names and optionality match schemas/ exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal


@dataclass(frozen=True, slots=True)
class CallStarted:
    call_id: str
    rep_id: str
    direction: str
    started_at: datetime
    customer_id: str | None = None
    queue: str | None = None


@dataclass(frozen=True, slots=True)
class CallAnswered:
    call_id: str
    rep_id: str
    direction: str
    started_at: datetime
    answered_at: datetime
    customer_id: str | None = None
    queue: str | None = None


@dataclass(frozen=True, slots=True)
class CallEnded:
    call_id: str
    rep_id: str
    direction: str
    status: str
    started_at: datetime
    ended_at: datetime
    answered_at: datetime | None = None
    customer_id: str | None = None
    queue: str | None = None


@dataclass(frozen=True, slots=True)
class DealChanged:
    deal_id: str
    rep_id: str
    stage: str
    amount: Decimal
    currency: str
    created_at: datetime
    updated_at: datetime
    probability: float | None = None
    product: str | None = None
    customer_id: str | None = None
    source: str | None = None
    lead_score: float | None = None
    loss_reason: str | None = None
    closed_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class OrderLine:
    product: str
    quantity: Decimal
    unit_price: Decimal
    unit_cost: Decimal


@dataclass(frozen=True, slots=True)
class OrderPlaced:
    order_id: str
    customer_id: str
    rep_id: str
    placed_at: datetime
    currency: str
    lines: tuple[OrderLine, ...]
    channel: str | None = None


@dataclass(frozen=True, slots=True)
class OrderCancelled:
    order_id: str
    customer_id: str
    cancelled_at: datetime
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class ActivityLogged:
    activity_id: str
    rep_id: str
    kind: str  # meeting | visit | email
    party: str  # prospect | customer
    occurred_at: datetime
    updated_at: datetime
    customer_id: str | None = None
    deal_id: str | None = None
    participants: tuple[str, ...] | None = None
    result: str | None = None  # none | follow_up | deal | order
    notes: str | None = None
    next_step: str | None = None


@dataclass(frozen=True, slots=True)
class SurveyAnswered:
    survey_id: str
    customer_id: str
    kind: str  # csat | nps | review
    score: int
    answered_at: datetime
    rep_id: str | None = None
    comment: str | None = None


@dataclass(frozen=True, slots=True)
class InvoiceIssued:
    invoice_id: str
    customer_id: str
    amount: Decimal
    currency: str
    issued_at: datetime
    due_at: datetime
    rep_id: str | None = None


@dataclass(frozen=True, slots=True)
class PaymentReceived:
    payment_id: str
    invoice_id: str
    customer_id: str
    amount: Decimal
    currency: str
    received_at: datetime


@dataclass(frozen=True, slots=True)
class CustomerChurned:
    customer_id: str
    churned_at: datetime
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class SpendRecorded:
    spend_id: str
    campaign: str
    amount: Decimal
    currency: str
    spent_at: datetime
    source: str | None = None


CallEvent = CallStarted | CallAnswered | CallEnded
DomainEvent = (
    CallStarted | CallAnswered | CallEnded | DealChanged | OrderPlaced | OrderCancelled | ActivityLogged
    | SurveyAnswered | InvoiceIssued | PaymentReceived | CustomerChurned | SpendRecorded
)

EVENT_CLASSES: dict[str, type] = {
    "call.started": CallStarted,
    "call.answered": CallAnswered,
    "call.ended": CallEnded,
    "deal.changed": DealChanged,
    "order.placed": OrderPlaced,
    "order.cancelled": OrderCancelled,
    "activity.logged": ActivityLogged,
    "survey.answered": SurveyAnswered,
    "invoice.issued": InvoiceIssued,
    "payment.received": PaymentReceived,
    "customer.churned": CustomerChurned,
    "spend.recorded": SpendRecorded,
}


@dataclass(frozen=True, slots=True)
class Envelope:
    """A validated CloudEvent with its typed payload."""

    id: str
    source: str
    type: str
    time: datetime | None
    data: DomainEvent
