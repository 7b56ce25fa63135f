"""A customer's life as state: its orders (not cancelled), churns, and what that contributes.

Orders are keyed by customer on sales.orders, so every order of a customer is applied on the
partition that keeps this state. Whether a customer is new, active, lost or a repeat buyer,
and whether an order is new or recurring revenue, is a function of the whole state, so a late
order or a cancellation corrects every figure it changes.

A customer is active from an order until `horizon` days after its latest order, or until a
churn after that order, whichever comes first. An order after a lapse reactivates it; every
churn counts, so a customer can be lost, won back and lost again.

So that the state does not grow with a customer's orders, `freeze` folds the orders placed
before a moment (the retention boundary: nothing older can arrive any more) into a
`CustomerHistory`: what the later figures still need of them (the first order's time, the
last order's time and its spell while that may still change, and order counts of the period
buckets that straddle the boundary). Every figure that depends only on frozen orders is final:
it stays in the rows it was written to and is no longer computed.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from salespulse.domain.entities import UNKNOWN, WINDOW_PERIODS, Contribution, OrderState, rep_dims
from salespulse.domain.periods import PERIODS, bucket_starts, next_period_start

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
class FrozenBucket:
    """A period bucket that straddles the freeze boundary: how many frozen orders it holds."""

    kind: str
    start: str  # ISO date
    count: int
    first_at: datetime  # the first of them


@dataclass(frozen=True, slots=True)
class CustomerHistory:
    """What the live figures need of the orders folded so far (see the module doc)."""

    first_at: datetime  # the customer's first order
    last_at: datetime  # its last order before `before`
    spell_start_at: datetime | None = None  # when last_at's active spell began, while that spell may change
    buckets: tuple[FrozenBucket, ...] = ()


@dataclass(frozen=True, slots=True)
class CustomerState:
    orders: tuple[CustomerOrder, ...] = ()  # placed, not cancelled, not frozen; by placed_at then id
    churned_at: tuple[datetime, ...] = ()  # every churn, sorted, each moment once
    sector: str | None = None  # from the directory
    history: CustomerHistory | None = None


def with_order(state: CustomerState | None, order_id: str, order: OrderState) -> CustomerState:
    """The customer's state once `order` (its current state) is known: in, or out if cancelled."""
    current = state or CustomerState()
    kept = tuple(o for o in current.orders if o.order_id != order_id)
    if order.placed_at is not None and order.cancelled_at is None and order.rep_id is not None:
        kept += (CustomerOrder(order_id, order.placed_at, order.revenue_cents, order.rep_id, order.team,
                               order.region, order.channel),)
    return replace(current, orders=tuple(sorted(kept, key=lambda o: (o.placed_at, o.order_id))))


def with_churn(state: CustomerState | None, churned_at: datetime) -> tuple[CustomerState, bool]:
    """(new state, whether it changed): a churn at a moment already known changes nothing."""
    current = state or CustomerState()
    if churned_at in current.churned_at:
        return current, False
    return replace(current, churned_at=tuple(sorted(current.churned_at + (churned_at,)))), True


def _spell_end(at: datetime, following: datetime | None, churns: tuple[datetime, ...],
               horizon: timedelta) -> datetime:
    """When the activity an order at `at` gives ends, if `following` does not continue it."""
    end = at + horizon
    i = bisect_left(churns, at)
    if i < len(churns) and (following is None or churns[i] < following):
        end = min(end, churns[i])
    return end


def _bucket_end(kind: str, start: str, tz: ZoneInfo) -> datetime:
    return datetime.combine(next_period_start(kind, date.fromisoformat(start)), time(), tz)


def freeze(state: CustomerState, before: datetime, tz: ZoneInfo,
           horizon_days: int = DEFAULT_HORIZON_DAYS) -> CustomerState:
    """The state with its orders placed before `before` folded into its history.

    Only valid when no order placed, nor churn, before `before` can still arrive; then
    contributions(state) = contributions(freeze(state)) + figures that are final.
    """
    frozen = [o for o in state.orders if o.placed_at < before]
    churns = tuple(c for c in state.churned_at if c >= before)  # older ones only shaped final spells
    prior = state.history
    open_prior = prior is not None and prior.spell_start_at is not None
    if not frozen and not open_prior:
        return replace(state, churned_at=churns)
    horizon = timedelta(days=horizon_days)
    live = state.orders[len(frozen):]
    # Walk the spell that the last frozen order belongs to (it may have ended since the last fold).
    times = ([prior.last_at] if open_prior else []) + [o.placed_at for o in frozen]
    spell_start = prior.spell_start_at if open_prior else times[0]
    for at, following in zip(times, times[1:]):
        if following >= _spell_end(at, following, state.churned_at, horizon):
            spell_start = following
    last_at = times[-1]
    # Open while a later order can still change it: one placed at `before` itself takes over a
    # churn at that same moment, so a spell cut there is not final yet.
    still_open = _spell_end(last_at, live[0].placed_at if live else None, state.churned_at, horizon) >= before
    # Buckets that end after the boundary still count the frozen orders in them.
    counts: dict[tuple[str, str], list] = {}
    for b in prior.buckets if prior is not None else ():
        counts[b.kind, b.start] = [b.count, b.first_at]
    for o in frozen:
        starts = bucket_starts(o.placed_at, tz)
        for kind in PERIODS:
            bucket = counts.setdefault((kind, starts[kind].isoformat()), [0, o.placed_at])
            bucket[0] += 1
    buckets = tuple(FrozenBucket(kind, start, n, first_at) for (kind, start), (n, first_at) in sorted(counts.items())
                    if _bucket_end(kind, start, tz) > before)
    history = CustomerHistory(prior.first_at if prior is not None else frozen[0].placed_at, last_at,
                              spell_start if still_open else None, buckets)
    return replace(state, orders=live, churned_at=churns, history=history)


def customer_contributions(customer_id: str, state: CustomerState | None, tz: ZoneInfo,
                           horizon_days: int = DEFAULT_HORIZON_DAYS) -> list[Contribution]:
    """What the customer contributes, but for the final figures of its frozen history."""
    if state is None or (not state.orders and state.history is None):
        return []
    horizon = timedelta(days=horizon_days)
    orders, history = state.orders, state.history
    life_dims = (("all", "all"), ("sector", state.sector or UNKNOWN))
    out: list[Contribution] = []

    if history is None:
        first = orders[0]
        out.append(Contribution(first.placed_at, life_dims + rep_dims(first.rep_id, first.team, first.region)[1:] + (
            ("channel", first.channel or UNKNOWN),), (("new_customers", 1),)))

    # Active spells: activation at a spell's first order, loss when the horizon runs out after
    # its last order (or at a churn before that), unless the next order came first.
    times = [o.placed_at for o in orders]
    if history is not None and history.spell_start_at is not None:
        times.insert(0, history.last_at)
    spell_start = history.spell_start_at if history is not None and history.spell_start_at else (
        times[0] if times else None)
    for i, at in enumerate(times):
        following = times[i + 1] if i + 1 < len(times) else None
        end = _spell_end(at, following, state.churned_at, horizon)
        if following is not None and following < end:
            continue
        lifetime_s = int((at - spell_start).total_seconds())
        out.append(Contribution(spell_start, life_dims, (("activations", 1),), WINDOW_PERIODS))
        out.append(Contribution(end, life_dims, (("losses", 1), ("lost_lifetime_s", lifetime_s)), WINDOW_PERIODS))
        spell_start = following

    # Per period bucket: buyers and repeat buyers; new revenue (orders in the bucket of the
    # customer's first order); recurring revenue (orders with another within the horizon before).
    first_buckets = bucket_starts(history.first_at if history is not None else orders[0].placed_at, tz)
    buckets: dict[tuple[str, str], list] = {  # (kind, start) -> [orders, first moment]
        (b.kind, b.start): [b.count, b.first_at] for b in (history.buckets if history is not None else ())}
    previous = history.last_at if history is not None else None
    for order in orders:
        starts = bucket_starts(order.placed_at, tz)
        for kind in PERIODS:
            bucket = buckets.setdefault((kind, starts[kind].isoformat()), [0, order.placed_at])
            bucket[0] += 1
        order_dims = rep_dims(order.rep_id, order.team, order.region) + (
            ("customer", customer_id), ("sector", state.sector or UNKNOWN), ("channel", order.channel or UNKNOWN))
        new_in = tuple(kind for kind in PERIODS if starts[kind] == first_buckets[kind])
        if new_in:
            out.append(Contribution(order.placed_at, order_dims, (("new_revenue_cents", order.revenue_cents),), new_in))
        if previous is not None and order.placed_at - previous < horizon:
            out.append(Contribution(order.placed_at, order_dims, (("recurring_revenue_cents", order.revenue_cents),)))
        previous = order.placed_at
    for (kind, _), (count, moment) in buckets.items():
        measures = (("buyers", 1), ("repeat_buyers", 1)) if count > 1 else (("buyers", 1),)
        out.append(Contribution(moment, life_dims, measures, (kind,)))
    return out
