"""A customer's row is encoded from the encoding of its previous orders when they differ by one
order, and reads back exactly as if encoded from scratch."""

from datetime import datetime, timedelta, timezone

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from salespulse.domain import states
from salespulse.domain.customers import with_order
from salespulse.domain.entities import OrderState
from salespulse.domain.states import state_from_json, state_to_json

T0 = datetime(2026, 9, 1, 10, 0, tzinfo=timezone.utc)


def placed(hours: int, cancelled: bool = False) -> OrderState:
    at = T0 + timedelta(hours=hours)
    return OrderState(placed_at=at, rep_id="rep-1", customer_id="c", revenue_cents=100 + hours,
                      cancelled_at=at + timedelta(days=1) if cancelled else None)


def customer(orders: int):
    state = None
    for i in range(orders):
        state = with_order(state, f"o{i:03d}", placed(10 * i))
    return state


def from_scratch(encoded: dict) -> dict:
    """The same state encoded from records of its own (decoded again): nothing cached applies."""
    return state_to_json(state_from_json(orjson.loads(orjson.dumps(encoded))))


@settings(max_examples=150)
@given(st.lists(st.tuples(st.integers(0, 40),  # which order: known ones change, others are new
                          st.integers(-5, 400),  # when: before, among or after the others
                          st.booleans()), min_size=1, max_size=12))
def test_a_customer_encodes_as_from_scratch_however_its_orders_change(changes):
    state = customer(states.RUN_LENGTH + 4)
    state_to_json(state)
    for which, hours, cancelled in changes:
        state = with_order(state, f"o{which:03d}", placed(hours, cancelled))
        encoded = state_to_json(state)
        assert encoded == from_scratch(encoded)
        assert state_from_json(encoded) == state


def test_one_order_more_or_fewer_is_spliced_into_the_last_encoding(monkeypatch):
    before = customer(states.RUN_LENGTH + 4)
    state_to_json(before)
    one_by_one = []
    monkeypatch.setattr(states, "_records_one_by_one", lambda records: one_by_one.append(records) or [])
    late = with_order(before, "late", placed(55))  # between the 6th and 7th
    cancelled = with_order(late, "o003", placed(30, cancelled=True))
    last = with_order(cancelled, "last", placed(10_000))
    for state in (late, cancelled, last):
        encoded = state_to_json(state)
        assert [o[0] for o in encoded["orders"]] == [o.order_id for o in state.orders]
    assert one_by_one == [], "each was one order away from the one encoded before it"
