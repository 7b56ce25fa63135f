"""Retention: which buckets and entities expire, and that an event too old to tell apart is refused."""

from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from salespulse.domain.aggregation import Aggregator, SourceEvent, expired_rows, parse_measure_key
from salespulse.domain.events import CallEnded, Envelope, OrderPlaced, OrderLine
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
    rows = {parse_measure_key(k)[2] for k in result.measures}
    # the order's day bucket is past its 30 days: only its week, month, quarter and year are kept
    assert {r.period for r in rows if r.dim == "all" and r.key == "all"} == {"day", "week", "month", "quarter", "year"}
    assert not any(r.period == "day" and r.start == (NOW - timedelta(days=45)).date().isoformat() for r in rows)

    store = {**result.measures, **result.entities}
    later = NOW + timedelta(days=80)  # the call's day and week have expired, and the call itself
    keys, dropped = expired_rows(store, RETENTION, later, TZ)
    assert {r.period for _, _, r in dropped} == {"day", "week"}
    assert any("|e|sales.calls|call:fresh" in k for k in keys)
    assert not any("|e|sales.orders|" in k or "|e|customer|" in k for k in keys)  # orders and customers stay
    assert all(parse_measure_key(k) is None or parse_measure_key(k)[2].period in ("day", "week") for k in keys)


def test_keeping_everything_expires_nothing():
    aggregator = Aggregator(TZ, CurrencyConverter("EUR"), clock=lambda: NOW)
    result = aggregator.apply({}, [SourceEvent("sales.calls", 0, 0, call("c", NOW - timedelta(days=5000)))])
    assert not result.rejected
    assert expired_rows({**result.measures, **result.entities}, Retention({}, 0), NOW, TZ) == ([], [])
