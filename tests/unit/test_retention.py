"""Retention: which buckets and entities expire, and that an event too old to tell apart is refused."""

from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from salespulse.domain.aggregation import Aggregator, SourceEvent, parse_measure_key, plan_expiry
from salespulse.domain import states
from salespulse.domain.events import CallEnded, CustomerChurned, Envelope, OrderCancelled, OrderLine, OrderPlaced
from salespulse.domain.money import CurrencyConverter
from salespulse.domain.retention import Retention

TZ = ZoneInfo("Europe/Paris")
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=timezone.utc)
RETENTION = Retention({"day": 30, "week": 60}, entity_days=90)


def test_a_bucket_expires_its_retention_days_after_it_ends():
    assert not RETENTION.bucket_expired("day", date(2026, 10, 23), date(2026, 11, 22))  # ended 30 days ago
    assert RETENTION.bucket_expired("day", date(2026, 10, 22), date(2026, 11, 22))
    assert not RETENTION.bucket_expired("month", date(2020, 1, 1), date(2026, 11, 22))  # no retention: kept
    with pytest.raises(ValueError, match="unknown period"):
        Retention({"fortnight": 3})


def call(call_id: str, started: datetime) -> Envelope:
    data = CallEnded(call_id, "rep-1", "outbound", "answered", started, started + timedelta(minutes=2),
                     started + timedelta(seconds=5))
    return Envelope(f"{call_id}-e", "test", "call.ended", None, data)


def order(order_id: str, placed: datetime) -> Envelope:
    data = OrderPlaced(order_id, "cust", "rep-1", placed, "EUR", (OrderLine("p", Decimal(1), Decimal(10), Decimal(1)),))
    return Envelope(order_id, "test", "order.placed", None, data)


def test_old_rows_are_not_written_dropped_later_and_too_old_events_are_refused():
    aggregator = Aggregator(TZ, CurrencyConverter("EUR"), retention=RETENTION, clock=lambda: NOW)
    events = [SourceEvent("sales.calls", 0, 0, call("fresh", NOW - timedelta(days=20))),
              SourceEvent("sales.calls", 0, 1, call("old", NOW - timedelta(days=100))),
              SourceEvent("sales.orders", 0, 0, order("o", NOW - timedelta(days=45)))]
    result = aggregator.apply({}, events)
    assert [(e.envelope.id, "retention" in reason) for e, reason in result.rejected] == [("old-e", True)]
    rows = {parse_measure_key(k)[1] for k in result.measures}
    # the order's day bucket is past its 30 days: only its week, month, quarter and year are kept
    assert {r.period for r in rows if r.dim == "all" and r.key == "all"} == {"day", "week", "month", "quarter", "year"}
    assert not any(r.period == "day" and r.start == (NOW - timedelta(days=45)).date().isoformat() for r in rows)

    store = {**result.measures, **result.entities}
    later = NOW + timedelta(days=80)  # the call's day and week have expired, and the call itself
    expiry = plan_expiry(store, RETENTION, later, TZ)
    assert {r.period for _, r in expiry.rows} == {"day", "week"}
    assert any("|e|sales.calls|call:fresh" in k for k in expiry.drop)
    assert any("|e|sales.orders|order:o" in k for k in expiry.drop)  # placed 125 days before `later`
    assert not any("|e|customer|" in k for k in expiry.drop)  # a customer is kept, its old orders folded
    assert all(parse_measure_key(k) is None or parse_measure_key(k)[1].period in ("day", "week") for k in expiry.drop)
    assert list(expiry.rewrite) == [k for k in store if "|e|customer|" in k] and not expiry.unmatched


def test_orders_expire_their_customer_keeps_a_fixed_size_history_and_a_late_return_is_unmatched():
    aggregator = Aggregator(TZ, CurrencyConverter("EUR"), retention=RETENTION, clock=lambda: NOW)
    placed = [NOW - timedelta(days=d) for d in (80, 60, 40, 10)]
    store: dict = {}
    for i, moment in enumerate(placed):
        result = aggregator.apply(store, [SourceEvent("sales.orders", 0, i, order(f"o{i}", moment))])
        store.update({**result.measures, **result.entities})
    customer_key = next(k for k in store if "|e|customer|cust" in k)

    later = NOW + timedelta(days=45)  # orders placed before NOW - 45 days are past the 90 days
    expiry = plan_expiry(store, RETENTION, later, TZ)
    assert sorted(k.rsplit(":", 1)[1] for k in expiry.drop if "|e|sales.orders|" in k) == ["o0", "o1"]
    frozen = states.state_from_json(expiry.rewrite[customer_key]["s"])
    assert [o.order_id for o in frozen.orders] == ["o2", "o3"]
    assert frozen.history.first_at == placed[0] and frozen.history.last_at == placed[1]
    assert expiry.rewrite[customer_key]["o"] == store[customer_key]["o"]  # its offsets stay

    for key in expiry.drop:
        del store[key]
    store.update(expiry.rewrite)
    late = Aggregator(TZ, CurrencyConverter("EUR"), retention=RETENTION, clock=lambda: later)
    resent = late.apply(store, [SourceEvent("sales.orders", 0, 9, order("o0", placed[0]))])
    assert len(resent.rejected) == 1 and "ENTITY_RETENTION_DAYS" in resent.rejected[0][1]
    churn = Envelope("ch", "test", "customer.churned", None, CustomerChurned("cust", placed[0]))
    assert late.apply(store, [SourceEvent("sales.customers", 0, 0, churn)]).rejected
    # a return of an expired order waits for an order that will not come, and is reported when it expires
    cancel = Envelope("x", "test", "order.cancelled", None, OrderCancelled("o1", "cust", later))
    returned = late.apply(store, [SourceEvent("sales.orders", 0, 10, cancel)])
    assert not returned.rejected and not returned.measures
    store.update(returned.entities)
    assert plan_expiry(store, RETENTION, later + timedelta(days=91), TZ).unmatched == {"order": 1}


def test_keeping_everything_expires_nothing():
    aggregator = Aggregator(TZ, CurrencyConverter("EUR"), clock=lambda: NOW)
    result = aggregator.apply({}, [SourceEvent("sales.calls", 0, 0, call("c", NOW - timedelta(days=5000)))])
    assert not result.rejected
    expiry = plan_expiry({**result.measures, **result.entities}, Retention({}, 0), NOW, TZ)
    assert not expiry.drop and not expiry.rewrite
