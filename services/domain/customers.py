"""A customer's life as state: its orders (not cancelled), churn, and what that contributes.

Orders are keyed by customer on sales.orders, so every order of a customer is applied on the
partition that keeps this state. Whether a customer is new, active, lost or a repeat buyer,
and whether an order is new or recurring revenue, is a function of the whole state, so a late
order or a cancellation corrects every figure it changes.

A customer is active from an order until `horizon` days after its latest order, or until it is
marked churned after that order, whichever comes first. An order after a lapse reactivates it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from salespulse.domain.entities import UNKNOWN, WINDOW_PERIODS, Contribution, OrderState, rep_dims
from salespulse.domain.periods import PERIODS, bucket_starts

DEFAULT_HORIZON_DAYS = 365


@dataclass(frozen=True, slots=True)
class CustomerOrder:
    """What the customer's figures need of one of its orders (reporting-currency cents)."""

    order_id: str
    placed_at: datetime
    revenue_cents: int
    rep_id: str
    team: str | None = None
    region: str | None = None
    channel: str | None = None


@dataclass(frozen=True, slots=True)
class CustomerState:
    orders: tuple[CustomerOrder, ...] = ()  # placed and not cancelled, by placed_at then id
    churned_at: datetime | None = None  # the latest customer.churned
    churn_seen: tuple[str, ...] = ()
    sector: str | None = None  # from the directory


def with_order(state: CustomerState | None, order_id: str, order: OrderState) -> CustomerState:
    """The customer's state once `order` (its current state) is known: in, or out if cancelled."""
    current = state or CustomerState()
    kept = tuple(o for o in current.orders if o.order_id != order_id)
    if order.placed_at is not None and order.cancelled_at is None and order.rep_id is not None:
        kept += (CustomerOrder(order_id, order.placed_at, order.revenue_cents, order.rep_id, order.team,
                               order.region, order.channel),)
    return replace(current, orders=tuple(sorted(kept, key=lambda o: (o.placed_at, o.order_id))))


def with_churn(state: CustomerState | None, event_id: str, churned_at: datetime) -> tuple[CustomerState, bool]:
    """(new state, whether it changed): the latest churn date wins; a re-sent event changes nothing."""
    current = state or CustomerState()
    if event_id in current.churn_seen:
        return current, False
    latest = churned_at if current.churned_at is None else max(current.churned_at, churned_at)
    return replace(current, churned_at=latest, churn_seen=(current.churn_seen + (event_id,))[-8:]), True


def customer_contributions(customer_id: str, state: CustomerState | None, tz: ZoneInfo,
                           horizon_days: int = DEFAULT_HORIZON_DAYS) -> list[Contribution]:
    if state is None or not state.orders:
        return []
    horizon = timedelta(days=horizon_days)
    orders = state.orders
    life_dims = (("all", "all"), ("sector", state.sector or UNKNOWN))
    out: list[Contribution] = []

    first = orders[0]
    out.append(Contribution(first.placed_at, life_dims + rep_dims(first.rep_id, first.team, first.region)[1:] + (
        ("channel", first.channel or UNKNOWN),), (("new_customers", 1),)))

    # Active spells: activation at a spell's first order, loss when the horizon runs out after
    # its last order (or at a churn before that), unless the next order came first.
    spell_start = first
    for i, order in enumerate(orders):
        end = order.placed_at + horizon
        following = orders[i + 1] if i + 1 < len(orders) else None
        if state.churned_at is not None and state.churned_at >= order.placed_at and (
                following is None or state.churned_at < following.placed_at):
            end = min(end, state.churned_at)
        if following is not None and following.placed_at < end:
            continue
        lifetime_s = int((order.placed_at - spell_start.placed_at).total_seconds())
        out.append(Contribution(spell_start.placed_at, life_dims, (("activations", 1),), WINDOW_PERIODS))
        out.append(Contribution(end, life_dims, (("losses", 1), ("lost_lifetime_s", lifetime_s)), WINDOW_PERIODS))
        if following is not None:
            spell_start = following

    # Per period bucket: buyers and repeat buyers; new revenue (orders in the bucket of the
    # customer's first order); recurring revenue (orders with another within the horizon before).
    first_buckets = bucket_starts(first.placed_at, tz)
    buckets: dict[tuple[str, object], list] = {}  # (kind, start) -> [orders, first moment]
    previous = None
    for order in orders:
        starts = bucket_starts(order.placed_at, tz)
        for kind in PERIODS:
            bucket = buckets.setdefault((kind, starts[kind]), [0, order.placed_at])
            bucket[0] += 1
        order_dims = rep_dims(order.rep_id, order.team, order.region) + (
            ("customer", customer_id), ("sector", state.sector or UNKNOWN), ("channel", order.channel or UNKNOWN))
        new_in = tuple(kind for kind in PERIODS if starts[kind] == first_buckets[kind])
        if new_in:
            out.append(Contribution(order.placed_at, order_dims, (("new_revenue_cents", order.revenue_cents),), new_in))
        if previous is not None and order.placed_at - previous.placed_at < horizon:
            out.append(Contribution(order.placed_at, order_dims, (("recurring_revenue_cents", order.revenue_cents),)))
        previous = order
    for (kind, _), (count, moment) in buckets.items():
        measures = (("buyers", 1), ("repeat_buyers", 1)) if count > 1 else (("buyers", 1),)
        out.append(Contribution(moment, life_dims, measures, (kind,)))
    return out
