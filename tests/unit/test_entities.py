"""Entity state transitions: the cases the issue names, spelled out."""

from datetime import datetime, timedelta, timezone
from decimal import Decimal

from salespulse.domain.entities import (
    APPLIED,
    DUPLICATE,
    STALE,
    call_contributions,
    deal_contributions,
    next_call_state,
    next_deal_state,
    next_order_state,
    order_contributions,
    state_from_json,
    state_to_json,
)
from salespulse.domain.events import CallAnswered, CallEnded, CallStarted, DealChanged, OrderCancelled, OrderLine, OrderPlaced
from salespulse.domain.money import CurrencyConverter

T0 = datetime(2026, 11, 22, 9, 0, tzinfo=timezone.utc)
FX = CurrencyConverter("EUR")


def measures(contributions):
    total = {}
    for c in contributions:
        for name, v in c.measures:
            total[name] = total.get(name, 0) + v
    return total


def test_an_inbound_call_is_missed_only_once_it_ended_unanswered():
    state, _ = next_call_state(None, "e1", CallStarted("c", "rep-1", "inbound", T0))
    assert measures(call_contributions(state)) == {}
    state, _ = next_call_state(state, "e2", CallEnded("c", "rep-1", "inbound", "voicemail", T0, T0 + timedelta(seconds=30)))
    assert measures(call_contributions(state)) == {"inbound_missed": 1}


def test_call_events_in_any_order_give_the_same_call():
    events = [("s", CallStarted("c", "rep-1", "inbound", T0)),
              ("a", CallAnswered("c", "rep-1", "inbound", T0, T0 + timedelta(seconds=5))),
              ("e", CallEnded("c", "rep-1", "inbound", "answered", T0, T0 + timedelta(seconds=65), T0 + timedelta(seconds=5)))]
    results = []
    for order in ([0, 1, 2], [2, 1, 0], [1, 2, 0]):
        state = None
        for i in order:
            state, _ = next_call_state(state, *events[i])
        results.append(measures(call_contributions(state)))
    assert results[0] == results[1] == results[2] == {"inbound_answered": 1, "talk_ms": 60_000, "talked_calls": 1}


def test_a_resent_call_event_is_a_duplicate():
    state, _ = next_call_state(None, "e1", CallStarted("c", "rep-1", "outbound", T0))
    assert next_call_state(state, "e1", CallStarted("c", "rep-1", "outbound", T0)) == (state, DUPLICATE)


def deal(stage, minutes, amount="1000", **kw):
    return DealChanged("d", "rep-1", stage, Decimal(amount), "EUR", T0, T0 + timedelta(minutes=minutes), **kw)


def test_an_older_deal_update_is_ignored():
    state, _ = next_deal_state(None, "e2", deal("won", 10), FX)
    assert next_deal_state(state, "e1", deal("proposal", 5), FX) == (state, STALE)
    assert measures(deal_contributions(state)) == {"deals_won": 1, "won_cents": 100_000}


def test_reopening_a_won_deal_takes_the_win_back():
    won, _ = next_deal_state(None, "e1", deal("won", 10), FX)
    reopened, outcome = next_deal_state(won, "e2", deal("negotiation", 20), FX)
    assert outcome == APPLIED
    assert measures(deal_contributions(reopened)) == {
        "open_deals": 1, "open_cents": 100_000, "weighted_cents_bp": 100_000 * 7_500}


def test_a_cancellation_that_overtakes_its_order_is_applied_when_the_order_arrives():
    placed = OrderPlaced("o", "cust", "rep-1", T0, "EUR", (OrderLine("p", Decimal(3), Decimal("19.99"), Decimal("7.5")),))
    cancelled = OrderCancelled("o", T0 + timedelta(days=40))
    state, _ = next_order_state(None, "c", cancelled, FX)
    assert order_contributions(state) == []
    state, _ = next_order_state(state, "p", placed, FX)
    placed_part, cancelled_part = order_contributions(state)
    assert dict(placed_part.measures) == {"orders": 1, "revenue_cents": 5997, "cost_cents": 2250}
    assert placed_part.at == T0 and cancelled_part.at == cancelled.cancelled_at
    assert dict(cancelled_part.measures) == {"orders": -1, "revenue_cents": -5997, "cost_cents": -2250, "orders_cancelled": 1}


def test_states_survive_their_storage_form():
    state, _ = next_deal_state(None, "e1", deal("won", 10, closed_at=T0), FX)
    assert state_from_json(state_to_json(state)) == state
