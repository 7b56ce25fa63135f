"""Hypothesis strategies for consistent event logs: every event type, as they happen."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

from hypothesis import strategies as st

from salespulse.domain.directory import Assignment, CustomerRecord, Directory, ProductRecord, RepRecord
from salespulse.domain.events import (
    ActivityLogged,
    CallAnswered,
    CallEnded,
    CallStarted,
    CustomerChurned,
    DealChanged,
    Envelope,
    InvoiceIssued,
    OrderCancelled,
    OrderLine,
    OrderPlaced,
    PaymentReceived,
    SpendRecorded,
    SurveyAnswered,
)

EPOCH = datetime(2026, 1, 1, tzinfo=timezone.utc)
REPS = ["rep-1", "rep-2", "rep-3"]
CUSTOMERS = ["cust-1", "cust-2"]


def directory() -> Directory:
    """rep-1 moves from team a to b 200 days in; rep-3 is not in it; so are p3, p4 and cust-2."""
    d = Directory()
    d.put("reps", "rep-1", RepRecord("rep-1", (Assignment("a", "north"),)).assign("b", "south", EPOCH + timedelta(days=200)).to_doc())
    d.put("reps", "rep-2", RepRecord("rep-2", (Assignment("b", "south"),)).to_doc())
    d.put("products", "p1", ProductRecord("p1", "hardware").to_doc())
    d.put("products", "p2", ProductRecord("p2", "software").to_doc())
    d.put("customers", "cust-1", CustomerRecord("cust-1", "retail").to_doc())
    return d

moments = st.integers(min_value=0, max_value=400 * 24 * 3600).map(lambda s: EPOCH + timedelta(seconds=s))
money = st.integers(min_value=0, max_value=10**9).map(lambda c: Decimal(c) / 100)


def envelope(event_id: str, event_type: str, data) -> Envelope:
    return Envelope(event_id, "test", event_type, None, data)


@st.composite
def call_events(draw, n: int) -> list[Envelope]:
    call_id, rep = f"call-{n}", draw(st.sampled_from(REPS))
    direction = draw(st.sampled_from(["inbound", "outbound"]))
    started = draw(moments)
    answered = draw(st.booleans())
    answered_at = started + timedelta(seconds=draw(st.integers(1, 60))) if answered else None
    ended_at = (answered_at or started) + timedelta(seconds=draw(st.integers(1, 3600)))
    status = "answered" if answered else draw(st.sampled_from(["missed", "busy", "failed", "voicemail"]))
    out = [envelope(f"{call_id}-s", "call.started", CallStarted(call_id, rep, direction, started))]
    if answered:
        out.append(envelope(f"{call_id}-a", "call.answered",
                            CallAnswered(call_id, rep, direction, started, answered_at)))
    if draw(st.booleans()) or not answered:
        out.append(envelope(f"{call_id}-e", "call.ended",
                            CallEnded(call_id, rep, direction, status, started, ended_at, answered_at)))
    return out


@st.composite
def deal_events(draw, n: int) -> list[Envelope]:
    deal_id = f"deal-{n}"
    created = draw(moments)
    stages = draw(st.lists(st.sampled_from(["lead", "qualified", "proposal", "negotiation", "won", "lost"]),
                           min_size=1, max_size=5))
    out, at = [], created
    for i, stage in enumerate(stages):
        at = at + timedelta(seconds=draw(st.integers(1, 86400 * 20)))
        probability = draw(st.none() | st.floats(0, 1).map(lambda p: round(p, 4)))
        out.append(envelope(f"{deal_id}-{i}", "deal.changed", DealChanged(
            deal_id, draw(st.sampled_from(REPS)), stage, draw(money), "EUR", created, at,
            probability=probability, closed_at=at if stage in ("won", "lost") else None,
            product=draw(st.sampled_from([None, "p1", "p2"])), customer_id=draw(st.sampled_from([None, *CUSTOMERS])),
            source=draw(st.sampled_from([None, "web", "fair"])),
            lead_score=draw(st.sampled_from([None, 50.0, 85.0])), loss_reason=draw(st.sampled_from([None, "price"])))))
    return out


@st.composite
def order_events(draw, n: int) -> list[Envelope]:
    order_id = f"order-{n}"
    placed = draw(moments)
    lines = tuple(
        OrderLine(f"p{draw(st.integers(1, 4))}", Decimal(draw(st.integers(1, 20))), draw(money), draw(money))
        for _ in range(draw(st.integers(1, 3)))
    )
    customer = draw(st.sampled_from(CUSTOMERS))
    out = [envelope(f"{order_id}-p", "order.placed",
                    OrderPlaced(order_id, customer, draw(st.sampled_from(REPS)), placed,
                                "EUR", lines, draw(st.sampled_from([None, "web", "shop"]))))]
    if draw(st.booleans()):
        cancelled = placed + timedelta(seconds=draw(st.integers(1, 86400 * 60)))
        out.append(envelope(f"{order_id}-c", "order.cancelled", OrderCancelled(order_id, customer, cancelled)))
    return out


@st.composite
def activity_events(draw, n: int) -> list[Envelope]:
    """An activity logged, and sometimes logged again with a completed report."""
    activity_id = f"activity-{n}"

    occurred = draw(moments)

    def logged(event_id: str, complete: bool, version: int) -> Envelope:
        return envelope(event_id, "activity.logged", ActivityLogged(
            activity_id, draw(st.sampled_from(REPS)), draw(st.sampled_from(["meeting", "visit", "email"])),
            draw(st.sampled_from(["prospect", "customer"])), occurred, occurred + timedelta(hours=version),
            customer_id=draw(st.sampled_from([None, *CUSTOMERS])),
            participants=draw(st.sampled_from([None, (), ("rep-2",)])),
            result=draw(st.sampled_from([None, "none", "deal", "order"])),
            notes="notes" if complete else None, next_step="call back" if complete else None))

    out = [logged(f"{activity_id}-1", draw(st.booleans()), 1)]
    if draw(st.booleans()):
        out.append(logged(f"{activity_id}-2", True, 2))
    return out


@st.composite
def customer_events(draw, n: int) -> list[Envelope]:
    """On sales.customers: a survey answer, an invoice with payments, or a churn."""
    customer = draw(st.sampled_from(CUSTOMERS))
    what = draw(st.sampled_from(["survey", "invoice", "churn"]))
    if what == "survey":
        kind = draw(st.sampled_from(["csat", "nps", "review"]))
        score = draw(st.integers(0, 10) if kind == "nps" else st.integers(1, 5))
        return [envelope(f"survey-{n}", "survey.answered", SurveyAnswered(
            f"survey-{n}", customer, kind, score, draw(moments), draw(st.sampled_from([None, *REPS]))))]
    if what == "churn":
        return [envelope(f"churn-{n}", "customer.churned", CustomerChurned(customer, draw(moments)))]
    invoice_id, issued = f"invoice-{n}", draw(moments)
    out = [envelope(f"{invoice_id}-i", "invoice.issued", InvoiceIssued(
        invoice_id, customer, draw(money), "EUR", issued, issued + timedelta(days=draw(st.integers(0, 60))),
        draw(st.sampled_from([None, *REPS]))))]
    for k in range(draw(st.integers(0, 2))):
        out.append(envelope(f"{invoice_id}-p{k}", "payment.received", PaymentReceived(
            f"{invoice_id}-payment-{k}", invoice_id, customer, draw(money), "EUR", draw(moments))))
    return out


@st.composite
def spend_events(draw, n: int) -> list[Envelope]:
    return [envelope(f"spend-{n}", "spend.recorded", SpendRecorded(
        f"spend-{n}", draw(st.sampled_from(["fair", "ads"])), draw(money), "EUR", draw(moments),
        draw(st.sampled_from([None, "web", "fair"]))))]


STRATEGIES = {"call": (call_events, "sales.calls"), "deal": (deal_events, "sales.deals"),
              "order": (order_events, "sales.orders"), "activity": (activity_events, "sales.activities"),
              "customer": (customer_events, "sales.customers"), "spend": (spend_events, "sales.spend")}


@st.composite
def event_logs(draw, max_entities: int = 12) -> list[tuple[str, Envelope]]:
    """(topic, envelope) for a few entities, in one arbitrary arrival order."""
    kinds = draw(st.lists(st.sampled_from(sorted(STRATEGIES)), min_size=0, max_size=max_entities))
    events = []
    for n, kind in enumerate(kinds):
        strategy, topic = STRATEGIES[kind]
        events += [(topic, e) for e in draw(strategy(n))]
    return draw(st.permutations(events))
