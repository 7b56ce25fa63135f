"""Entity state transitions: the cases the issue names, spelled out."""

from datetime import datetime, timedelta, timezone
from decimal import Decimal

from salespulse.domain.directory import REPS, UNASSIGNED, Assignment, Directory, RepRecord
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
)
from salespulse.domain.events import CallAnswered, CallEnded, CallStarted, DealChanged, OrderCancelled, OrderLine, OrderPlaced
from salespulse.domain.money import CurrencyConverter
from salespulse.domain.states import enrich, state_from_json, state_to_json

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
    assert measures(deal_contributions(state)) == {
        "deals_won": 1, "won_cents": 100_000, "won_cycle_s": 600, "deals_created": 1, "deals_closed": 1,
        "leads": 1, "leads_converted": 1}


def test_reopening_a_won_deal_takes_the_win_back():
    won, _ = next_deal_state(None, "e1", deal("won", 10), FX)
    reopened, outcome = next_deal_state(won, "e2", deal("negotiation", 20), FX)
    assert outcome == APPLIED
    assert measures(deal_contributions(reopened)) == {
        "open_deals": 1, "open_cents": 100_000, "weighted_cents_bp": 100_000 * 7_500, "leads": 1, "deals_created": 1}


def test_a_cancellation_that_overtakes_its_order_is_applied_when_the_order_arrives():
    placed = OrderPlaced("o", "cust", "rep-1", T0, "EUR", (OrderLine("p", Decimal(3), Decimal("19.99"), Decimal("7.5")),))
    cancelled = OrderCancelled("o", "c", T0 + timedelta(days=40))
    state, _ = next_order_state(None, "c", cancelled, FX)
    assert order_contributions(state) == []
    state, _ = next_order_state(state, "p", placed, FX)
    placed_part, cancelled_part, product_placed, product_cancelled = order_contributions(state)
    assert dict(placed_part.measures) == {"orders": 1, "revenue_cents": 5997, "cost_cents": 2250}
    assert placed_part.at == T0 and cancelled_part.at == cancelled.cancelled_at
    assert dict(cancelled_part.measures) == {"orders": -1, "revenue_cents": -5997, "cost_cents": -2250, "orders_cancelled": 1}
    assert dict(product_placed.dims)["product"] == "p"
    assert (product_placed.measures, product_cancelled.measures) == (placed_part.measures, cancelled_part.measures)


def test_an_order_splits_by_product_and_the_products_add_up_to_the_order():
    lines = (OrderLine("a", Decimal("1.5"), Decimal("10.01"), Decimal(4)),  # 15.015 -> 15.02
             OrderLine("b", Decimal(1), Decimal("0.333"), Decimal(0)),
             OrderLine("a", Decimal(1), Decimal("0.005"), Decimal(0)))  # a: 15.02 exactly
    state, _ = next_order_state(None, "p", OrderPlaced("o", "cust", "rep-1", T0, "EUR", lines, "web"), FX)
    whole, *products = order_contributions(state)
    by_product = {dict(c.dims)["product"]: dict(c.measures) for c in products}
    assert by_product == {"a": {"orders": 1, "revenue_cents": 1502, "cost_cents": 600},
                          "b": {"orders": 1, "revenue_cents": 33, "cost_cents": 0}}
    assert dict(whole.measures) == {"orders": 1, "revenue_cents": 1535, "cost_cents": 600}
    assert dict(whole.dims) == {"all": "all", "rep": "rep-1", "team": "unknown", "region": "unknown",
                                "customer": "cust", "sector": "unknown", "channel": "web"}


def test_a_rep_moving_team_keeps_history_where_it_was_earned():
    directory = Directory()
    record = RepRecord("rep-1", (Assignment("hunters", "north"),)).assign("farmers", "south", T0)
    directory.put(REPS, "rep-1", record.to_doc())
    before, _ = next_call_state(None, "e1", CallStarted("c1", "rep-1", "outbound", T0 - timedelta(seconds=1)))
    after, _ = next_call_state(None, "e2", CallStarted("c2", "rep-1", "outbound", T0))
    assert dict(call_contributions(enrich(before, directory))[0].dims)["team"] == "hunters"
    assert dict(call_contributions(enrich(after, directory))[0].dims)["region"] == "south"
    # an order keeps the team of when it was placed, its cancellation included
    placed = OrderPlaced("o", "cust", "rep-1", T0 - timedelta(days=1), "EUR",
                         (OrderLine("p", Decimal(1), Decimal(1), Decimal(0)),))
    order, _ = next_order_state(None, "p", placed, FX)
    order, _ = next_order_state(order, "c", OrderCancelled("o", "c", T0 + timedelta(days=1)), FX)
    placed_part, cancelled_part, *_ = order_contributions(enrich(order, directory))
    assert dict(placed_part.dims)["team"] == dict(cancelled_part.dims)["team"] == "hunters"


def test_unknown_reps_products_and_customers_are_unassigned():
    directory = Directory()
    placed = OrderPlaced("o", "cust", "rep-9", T0, "EUR", (OrderLine("p", Decimal(1), Decimal(1), Decimal(0)),))
    order = enrich(next_order_state(None, "p", placed, FX)[0], directory)
    whole, product = order_contributions(order)
    assert {dict(whole.dims)[d] for d in ("team", "region", "sector")} == {UNASSIGNED}
    assert dict(product.dims)["category"] == UNASSIGNED
    assert state_from_json(state_to_json(order)) == order


def test_states_survive_their_storage_form():
    state, _ = next_deal_state(None, "e1", deal("won", 10, closed_at=T0), FX)
    assert state_from_json(state_to_json(state)) == state
