"""Validation against schemas/: what is accepted, and the reasons given for what is not."""

import copy
import re

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from salespulse.contracts.events import InvalidEvent, decode_event, parse_event, route_of

CALL = {
    "specversion": "1.0", "id": "evt-0001", "source": "pbx/paris-1", "type": "call.ended",
    "time": "2026-11-22T09:14:03+01:00", "datacontenttype": "application/json",
    "data": {"call_id": "c-1", "rep_id": "rep-7", "direction": "outbound", "status": "answered",
             "started_at": "2026-11-22T09:10:00+01:00", "answered_at": "2026-11-22T09:10:09+01:00",
             "ended_at": "2026-11-22T09:14:03+01:00", "customer_id": "cust-42"},
}


def test_the_design_example_is_valid_and_routed_by_call_id():
    envelope = parse_event(CALL)
    assert envelope.data.rep_id == "rep-7"
    assert route_of(envelope) == ("sales.calls", "c-1")


@pytest.mark.parametrize("change, reason", [
    (lambda e: e["data"].pop("status"), "must contain ['status']"),
    (lambda e: e["data"].update(started_at="2026-11-22T09:10:00"), "started_at must be an RFC 3339 date-time with a UTC offset"),
    (lambda e: e["data"].update(started_at="2026-02-30T09:10:00Z"), "started_at must be an RFC 3339 date-time"),
    (lambda e: e.update(type="call.teleported"), "unknown event type 'call.teleported'"),
    (lambda e: e["data"].update(direction="sideways"), "direction must be one of"),
    (lambda e: e.update(specversion="0.3"), "specversion"),
    (lambda e: e.pop("id"), "must contain"),
    (lambda e: e.update(id=""), "id must be longer than or equal to 1"),
    # found by test_bad_input: an order of 9999-12-31 overflowed the customer's activity spell
    (lambda e: e["data"].update(ended_at="9999-12-31T23:59:59+14:00"), "ended_at 9999-12-31T23:59:59+14:00 is outside the years 1900-2999"),
    (lambda e: e.update(time="0001-01-01T00:00:00Z"), "event: time 0001-01-01T00:00:00Z is outside the years"),
])
def test_invalid_events_are_refused_with_a_reason(change, reason):
    event = copy.deepcopy(CALL)
    change(event)
    with pytest.raises(InvalidEvent, match=re.escape(reason)):
        parse_event(event)


@pytest.mark.parametrize("amount", [-1, "-1", "1e5", "NaN", True, None])
def test_amounts_must_be_non_negative_numbers_or_decimal_strings(amount):
    deal = {"specversion": "1.0", "id": "x", "source": "crm", "type": "deal.changed", "data": {
        "deal_id": "d", "rep_id": "r", "stage": "lead", "amount": amount, "currency": "EUR",
        "created_at": "2026-11-22T09:00:00Z", "updated_at": "2026-11-22T09:00:00Z"}}
    with pytest.raises(InvalidEvent, match="amount"):
        parse_event(deal)


@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_crash_the_decoder(raw):
    try:
        decode_event(raw)
    except InvalidEvent:
        pass


def test_nan_and_truncated_json_are_refused():
    for raw in (b'{"specversion": NaN}', orjson.dumps(CALL)[:-5], b"", None):
        with pytest.raises(InvalidEvent):
            decode_event(raw)
