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
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from operator import attrgetter
from typing import Any
from zoneinfo import ZoneInfo

from salespulse.domain.entities import UNKNOWN, WINDOW_PERIODS, Contribution, OrderState, rep_dims
from salespulse.domain.periods import PERIODS, bucket_starts, next_period_start
from salespulse.domain.records import evolve

DEFAULT_HORIZON_DAYS = 365
# A customer's walk is remembered (Walk.step) every CHECKPOINT_EVERY orders, the last
# CHECKPOINTS_KEPT of these states at most (about 1 KB each): a change among its last 128
# orders (a late order, a cancellation, a late churn) walks 8 orders on average before it and
# those after it again (rewalk), one before that walks all of them.
CHECKPOINT_EVERY = 8
CHECKPOINTS_KEPT = 16


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


SCAN = object()  # with_order's `previous` when nothing is known of where the order sits


def placed(order: OrderState) -> bool:
    """Whether an order counts among its customer's orders."""
    return order.placed_at is not None and order.cancelled_at is None and order.rep_id is not None


def with_order(state: CustomerState | None, order_id: str, order: OrderState, previous: Any = SCAN) -> CustomerState:
    """The customer's state once `order` (its current state) is known: in, or out if cancelled.

    A customer has hundreds of orders, kept sorted: the order is put in its place by bisection
    (sorting them again cost ~50 us at 210 orders, against 14-22). Finding it among them by
    id visits every one of them, and in a worker holding a long history that is a cache miss
    or two each (a scan of 60 orders: 3.5 us in cache, 20-36 us in situ after a 300,000-event
    history; with 210 orders, some 8 % of a live event's decode and aggregate).
    So the caller says where it is, from the order's entity row before the change, when the
    customer's row has applied every event that row has: `previous` is the moment the order
    was placed at if it counts among them (placed()), None if it does not (new, cancelled);
    the order is looked up there, and at its new moment, by bisection. A moment where it turns
    out not to be (an order folded into the history) costs a scan; SCAN (the default) always
    scans."""
    current = state or CustomerState()
    orders = current.orders
    placed_now = placed(order)
    at = _index_of(orders, order_id, previous, order.placed_at)
    if at is not None:
        orders = orders[:at] + orders[at + 1:]
    elif not placed_now:
        return current
    if not placed_now:
        return evolve(current, orders=orders)
    new = _customer_order(order_id, order)
    key = _order_key(new)
    if not orders or _order_key(orders[-1]) < key:
        return evolve(current, orders=orders + (new,))  # the usual case: a new last order
    at = bisect_left(orders, key, key=_order_key)
    return evolve(current, orders=orders[:at] + (new,) + orders[at:])


def _index_of(orders: tuple[CustomerOrder, ...], order_id: str, previous: Any, placed_at: datetime | None) -> int | None:
    """Where the order `order_id` is among `orders`, if it is; `previous` as with_order takes it."""
    for moment in (previous, placed_at) if previous is not SCAN else ():
        if moment is not None:
            at = bisect_left(orders, (moment, order_id), key=_order_key)
            if at < len(orders) and orders[at].order_id == order_id:
                return at
    if previous is not None:  # SCAN, or not where its entity row said
        ids = list(map(_order_id, orders))
        if order_id in ids:
            return ids.index(order_id)
    return None


def _order_key(order: CustomerOrder) -> tuple[datetime, str]:
    return order.placed_at, order.order_id


_order_id = attrgetter("order_id")


def _customer_order(order_id: str, order: OrderState) -> CustomerOrder:
    return CustomerOrder(order_id, order.placed_at, order.revenue_cents, order.rep_id, order.team, order.region,
                         order.channel)


def with_churn(state: CustomerState | None, churned_at: datetime) -> tuple[CustomerState, bool]:
    """(new state, whether it changed): a churn at a moment already known changes nothing."""
    current = state or CustomerState()
    if churned_at in current.churned_at:
        return current, False
    return evolve(current, churned_at=tuple(sorted(current.churned_at + (churned_at,)))), True


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
        return evolve(state, churned_at=churns)
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
    return evolve(state, orders=live, churned_at=churns, history=history)


def customer_contributions(customer_id: str, state: CustomerState | None, tz: ZoneInfo,
                           horizon_days: int = DEFAULT_HORIZON_DAYS) -> list[Contribution]:
    """What the customer contributes, but for the final figures of its frozen history."""
    return walked(customer_id, state, tz, horizon_days)[1]


def walked(customer_id: str, state: CustomerState | None, tz: ZoneInfo,
           horizon_days: int = DEFAULT_HORIZON_DAYS,
           checkpoints: list["Walk"] | None = None) -> tuple["Walk | None", list[Contribution]]:
    """The walk over all of the customer's orders (None when it has none to walk) and its
    contributions (customer_contributions); `checkpoints` collects states on the way (Walk.step)."""
    if state is None or (not state.orders and state.history is None):
        return None, []
    walk = Walk.start(customer_id, state, tz, horizon_days)
    return walk, walk.step(state.orders, checkpoints) + walk.ending()


def same_but_orders_and_churns(old: CustomerState | None, new: CustomerState | None) -> bool:
    """Whether `new` differs from `old` in its orders and churns only (not its sector or history)."""
    return old is not None and new is not None and new.sector == old.sector and new.history == old.history


def first_difference(old: tuple[CustomerOrder, ...], new: tuple[CustomerOrder, ...]) -> int:
    """The index of the first order in which the two differ (the shorter's length if none)."""
    for i, (a, b) in enumerate(zip(old, new)):
        if a is not b and a != b:
            return i
    return min(len(old), len(new))


def kept(checkpoints: list["Walk"] | tuple["Walk", ...]) -> tuple["Walk", ...]:
    """The checkpoints to remember of a walk: the latest CHECKPOINTS_KEPT."""
    return tuple(checkpoints[-CHECKPOINTS_KEPT:])


def rewalk(old: CustomerState, new: CustomerState, checkpoints: tuple["Walk", ...],
           ) -> tuple[list[Contribution], list[Contribution], "Walk", tuple["Walk", ...]] | None:
    """For `new` that differs from `old` in its orders and churns only
    (same_but_orders_and_churns): what each of them contributes from the last checkpoint (a
    state of `old`'s walk, Walk.step) before the first difference on, `new`'s walk and its
    checkpoints. The orders before that checkpoint contribute the same to both, so only these
    parts differ: a late order, a cancellation or a late churn among a customer's last orders
    walks those few orders again, not all of them. None when no checkpoint comes before the
    difference.

    A checkpoint before order j is the same for any churns from order j-1's moment on: stepping
    order k reads only the churns from order k-1's moment to order k's (_spell_end), so the
    walks here take their churns from the states, not from the checkpoint."""
    changed = first_difference(old.orders, new.orders)
    churns = set(old.churned_at).symmetric_difference(new.churned_at)
    earliest = min(churns) if churns else None
    orders = old.orders
    base = next((c for c in reversed(checkpoints) if c.walked <= changed and (
        earliest is None or c.walked == 0 or orders[c.walked - 1].placed_at <= earliest)), None)
    if base is None:
        return None
    old_walk = base.with_churns(old.churned_at)
    old_part = old_walk.step(old.orders[base.walked:]) + old_walk.ending()
    new_walk, marks = base.with_churns(new.churned_at), [c for c in checkpoints if c.walked < base.walked]
    new_part = new_walk.step(new.orders[base.walked:], marks) + new_walk.ending()
    return old_part, new_part, new_walk, kept(marks)


def extends(old: CustomerState | None, new: CustomerState | None) -> bool:
    """Whether `new` is `old` with orders added after its last one and nothing else changed
    (a customer's usual next order): a Walk of `old` then walks on over the new orders."""
    if old is None or new is None or len(new.orders) <= len(old.orders):
        return False
    if new.churned_at != old.churned_at or new.sector != old.sector or new.history != old.history:
        return False
    return all(a is b or a == b for a, b in zip(old.orders, new.orders))


def churned_after(old: CustomerState | None, new: CustomerState | None, last: datetime | None) -> bool:
    """Whether `new` is `old` with churns added and nothing else changed, none of them before
    `last` (the walk of `old`'s latest moment, Walk.last): then only the open spell's end, that
    is Walk.ending(), changes (a churn ends the spell it falls in; one after every order falls
    in no earlier spell)."""
    if old is None or new is None or len(new.churned_at) <= len(old.churned_at):
        return False
    if new.orders != old.orders or new.sector != old.sector or new.history != old.history:
        return False
    added = set(new.churned_at) - set(old.churned_at)
    return set(old.churned_at) <= set(new.churned_at) and (last is None or min(added) >= last)


class Walk:
    """A customer's contributions as a walk over its orders, oldest first: the figures of an
    order are given when the walk reaches it, or, for an active spell and a period bucket,
    when a later order shows that it has ended; `ending()` gives those still open.

    So contributions(state) = step(orders) + ending(), and after a new last order,
    contributions(new) - contributions(old) = step(new orders) + ending() - the old ending():
    a few contributions instead of all of them again (the walk is copied, then stepped on).
    """

    __slots__ = ("customer_id", "tz", "horizon", "churns", "history", "life_dims", "sector", "first_buckets",
                 "walked", "previous", "spell_start", "last", "open")

    @classmethod
    def start(cls, customer_id: str, state: CustomerState, tz: ZoneInfo, horizon_days: int) -> "Walk":
        walk = cls()
        walk.customer_id, walk.tz, walk.horizon = customer_id, tz, timedelta(days=horizon_days)
        walk.churns = state.churned_at
        history = walk.history = state.history
        walk.sector = state.sector or UNKNOWN
        walk.life_dims = (("all", "all"), ("sector", walk.sector))
        walk.first_buckets = bucket_starts(history.first_at, tz) if history is not None else None
        walk.walked = 0
        walk.previous = history.last_at if history is not None else None  # for recurring revenue
        open_spell = history is not None and history.spell_start_at is not None
        walk.spell_start = history.spell_start_at if open_spell else None
        walk.last = history.last_at if open_spell else None  # the open spell's latest moment
        walk.open = {}  # period kind -> [start, orders, first moment] of its latest bucket
        # A history keeps one bucket per kind, the one around its freeze moment (freeze): later
        # orders fall in it or after it.
        for b in history.buckets if history is not None else ():
            walk.open[b.kind] = [b.start, b.count, b.first_at]
        return walk

    def copy(self) -> "Walk":
        walk = Walk()
        for name in Walk.__slots__:
            setattr(walk, name, getattr(self, name))
        walk.open = {kind: list(bucket) for kind, bucket in self.open.items()}
        return walk

    def with_churns(self, churns: tuple[datetime, ...]) -> "Walk":
        """A copy with these churns (see churned_after for when its figures hold)."""
        walk = self.copy()
        walk.churns = churns
        return walk

    def step(self, orders: tuple[CustomerOrder, ...], checkpoints: list["Walk"] | None = None) -> list[Contribution]:
        """Walk on over `orders` (placed after every order walked so far); what they settle.
        `checkpoints` (optional) gets a copy of the walk before every CHECKPOINT_EVERY-th order
        (counted from the first): what the walk of any state with the same orders up to there,
        the same sector and history, and the same churns before the last of those orders, is at
        that point (rewalk gives it its churns)."""
        out: list[Contribution] = []
        churns = self.churns
        life_dims, sector, horizon = self.life_dims, self.sector, self.horizon
        for order in orders:
            if checkpoints is not None and self.walked % CHECKPOINT_EVERY == 0:
                checkpoints.append(self.copy())
            at = order.placed_at
            starts = bucket_starts(at, self.tz)
            if self.first_buckets is None:  # the customer's first order
                self.first_buckets = starts
                out.append(Contribution(at, life_dims + rep_dims(order.rep_id, order.team, order.region)[1:] + (
                    ("channel", order.channel or UNKNOWN),), (("new_customers", 1),)))
            # Spells: activation at a spell's first order, loss when the horizon runs out after
            # its last order (or at a churn before that), unless the next order came first.
            if self.last is None:
                self.spell_start = at
            else:
                end = _spell_end(self.last, at, churns, horizon)
                if at >= end:
                    out += self._spell(end)
                    self.spell_start = at
            self.last = at
            order_dims = rep_dims(order.rep_id, order.team, order.region) + (
                ("customer", self.customer_id), ("sector", sector), ("channel", order.channel or UNKNOWN))
            first = self.first_buckets
            new_in = tuple(kind for kind in PERIODS if starts[kind] == first[kind])
            if new_in:
                out.append(Contribution(at, order_dims, (("new_revenue_cents", order.revenue_cents),), new_in))
            if self.previous is not None and at - self.previous < horizon:
                out.append(Contribution(at, order_dims, (("recurring_revenue_cents", order.revenue_cents),)))
            self.previous = at
            # Period buckets: buyers and repeat buyers, given once a later order opens the next one.
            for kind in PERIODS:
                start = starts[kind].isoformat()
                bucket = self.open.get(kind)
                if bucket is not None and bucket[0] == start:
                    bucket[1] += 1
                    continue
                if bucket is not None:
                    out.append(self._bucket(kind, bucket))
                self.open[kind] = [start, 1, at]
            self.walked += 1
        return out

    def ending(self) -> list[Contribution]:
        """What the open spell and the open buckets contribute (the walk is not changed)."""
        out = [self._bucket(kind, bucket) for kind, bucket in self.open.items()]
        if self.last is not None:
            out += self._spell(_spell_end(self.last, None, self.churns, self.horizon))
        return out

    def _spell(self, end: datetime) -> list[Contribution]:
        lifetime_s = int((self.last - self.spell_start).total_seconds())
        return [Contribution(self.spell_start, self.life_dims, (("activations", 1),), WINDOW_PERIODS),
                Contribution(end, self.life_dims, (("losses", 1), ("lost_lifetime_s", lifetime_s)), WINDOW_PERIODS)]

    def _bucket(self, kind: str, bucket: list) -> Contribution:
        _, count, moment = bucket
        measures = (("buyers", 1), ("repeat_buyers", 1)) if count > 1 else (("buyers", 1),)
        return Contribution(moment, self.life_dims, measures, (kind,))
