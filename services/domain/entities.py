"""Calls, deals and orders as state: how each event changes one, and what one contributes.

A measure is never incremented blindly. Each entity's contribution to the measures is a pure
function of its current state, and an event's effect is contribution(new) - contribution(old).
So a re-delivered event, a stale deal update or a cancellation that overtakes its order all
give the right totals by construction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from salespulse.domain.events import (
    CallAnswered,
    CallEnded,
    CallStarted,
    DealChanged,
    OrderCancelled,
    OrderPlaced,
)
from salespulse.domain.money import CurrencyConverter, to_cents
from salespulse.domain.records import evolve

SEEN_IDS_KEPT = 8  # event ids remembered per entity to recognise a re-sent event

# Win probability in basis points when a deal.changed carries none.
STAGE_PROBABILITY_BP: dict[str, int] = {
    "lead": 1_000, "qualified": 2_000, "proposal": 5_000, "negotiation": 7_500, "won": 10_000, "lost": 0,
}
CLOSED_STAGES = frozenset({"won", "lost"})
QUALIFIED_STAGES = frozenset({"qualified", "proposal", "negotiation", "won"})
HOT_LEAD_SCORE = 70  # a lead scored at or above this is hot
# What a lead must carry to be a complete record of the prospecting file.
LEAD_FIELDS = ("customer_id", "product", "source", "lead_score")

APPLIED, DUPLICATE, STALE = "applied", "duplicate", "stale"
WINDOW_PERIODS = ("day", "month", "year")  # the rows a date-window sum reads (windows.py)
UNKNOWN = "unknown"  # the dimension value of an attribute the event did not carry


@dataclass(frozen=True, slots=True)
class Contribution:
    """Measures an entity adds to every dimension value in `dims`.

    `at` is the business instant whose period buckets receive them; None means the
    measures describe current state (the `now` pseudo-period), such as open pipeline.
    `periods` narrows the kinds of bucket: e.g. a measure only summed over date windows
    needs day, month and year rows, and "new in the period" differs by kind.
    """

    at: datetime | None
    dims: tuple[tuple[str, str], ...]
    measures: tuple[tuple[str, int], ...]
    periods: tuple[str, ...] | None = None  # the period kinds that receive it; None: all


Dims = tuple[tuple[str, str], ...]


def rep_dims(rep_id: str, team: str | None, region: str | None) -> Dims:
    """The company, the rep, and the team and region the rep belonged to for this entity."""
    return (("all", "all"), ("rep", rep_id), ("team", team or UNKNOWN), ("region", region or UNKNOWN))


def remember(seen: tuple[str, ...], event_id: str) -> tuple[str, ...]:
    return (seen + (event_id,))[-SEEN_IDS_KEPT:]


# --- calls -------------------------------------------------------------------------------

CALL_STAGE_RANK = {CallStarted: 1, CallAnswered: 2, CallEnded: 3}


@dataclass(frozen=True, slots=True)
class CallState:
    rep_id: str
    direction: str
    started_at: datetime
    answered_at: datetime | None = None
    ended_at: datetime | None = None
    status: str | None = None
    rank: int = 0  # latest lifecycle stage seen: 1 started, 2 answered, 3 ended
    seen: tuple[str, ...] = ()
    team: str | None = None  # the rep's, when the call started (from the directory)
    region: str | None = None

    @property
    def answered(self) -> bool:
        if self.status is not None:
            return self.status == "answered"
        return self.answered_at is not None


def next_call_state(state: CallState | None, event_id: str, event) -> tuple[CallState | None, str]:
    """Merge a call event into the call's state; a later lifecycle stage is authoritative."""
    if state is not None and event_id in state.seen:
        return state, DUPLICATE
    rank = CALL_STAGE_RANK[type(event)]
    known = {
        "rep_id": event.rep_id,
        "direction": event.direction,
        "started_at": event.started_at,
        "answered_at": getattr(event, "answered_at", None),
        "ended_at": getattr(event, "ended_at", None),
        "status": getattr(event, "status", None),
    }
    if state is None:
        return CallState(**known, rank=rank, seen=(event_id,)), APPLIED
    if rank >= state.rank:
        merged = {k: v for k, v in known.items() if v is not None}
        merged["rank"] = rank
    else:  # an earlier stage arriving late only fills what is still unknown
        merged = {k: v for k, v in known.items() if v is not None and getattr(state, k) is None}
    return evolve(state, **merged, seen=remember(state.seen, event_id)), APPLIED


def call_contributions(state: CallState | None) -> list[Contribution]:
    if state is None:
        return []
    measures: dict[str, int] = {}
    ended = state.rank >= 3
    if state.direction == "outbound":
        measures["calls_outbound"] = 1
        if state.answered:
            measures["outbound_answered"] = 1
    elif state.answered:
        measures["inbound_answered"] = 1
    elif ended:
        measures["inbound_missed"] = 1
    if ended and state.answered and state.answered_at is not None and state.ended_at is not None:
        talk_ms = int((state.ended_at - state.answered_at).total_seconds() * 1000)
        measures["talk_ms"] = max(0, talk_ms)
        measures["talked_calls"] = 1
    if not measures:
        return []
    dims = rep_dims(state.rep_id, state.team, state.region)
    return [Contribution(state.started_at, dims, tuple(measures.items()))]


# --- deals -------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class DealState:
    rep_id: str
    stage: str
    amount_cents: int
    probability_bp: int
    created_at: datetime
    updated_at: datetime
    closed_at: datetime | None = None
    seen: tuple[str, ...] = ()
    product: str | None = None
    customer_id: str | None = None
    source: str | None = None
    lead_score: float | None = None
    loss_reason: str | None = None
    team: str | None = None  # the rep's when the deal last changed (from the directory)
    region: str | None = None
    sector: str | None = None  # the customer's
    qualified: bool = False  # reached a stage past `lead` in an update seen so far

    @property
    def complete(self) -> bool:
        return all(getattr(self, name) is not None for name in LEAD_FIELDS)


def next_deal_state(
    state: DealState | None, event_id: str, event: DealChanged, converter: CurrencyConverter
) -> tuple[DealState | None, str]:
    """A deal.changed carries the full deal; one not newer than the state seen is ignored."""
    if state is not None and event_id in state.seen:
        return state, DUPLICATE
    if state is not None and event.updated_at <= state.updated_at:
        if event.stage in QUALIFIED_STAGES and not state.qualified:
            # An older update still shows the lead was qualified once: whether a lead was
            # qualified must not depend on the order updates arrive in.
            return evolve(state, qualified=True, seen=remember(state.seen, event_id)), APPLIED
        return state, STALE
    if event.probability is not None:
        probability_bp = round(event.probability * 10_000)
    else:
        probability_bp = STAGE_PROBABILITY_BP[event.stage]
    new = DealState(
        rep_id=event.rep_id,
        stage=event.stage,
        amount_cents=converter.cents(event.amount, event.currency),
        probability_bp=probability_bp,
        created_at=event.created_at,
        updated_at=event.updated_at,
        closed_at=event.closed_at,
        seen=remember(state.seen if state else (), event_id),
        product=event.product,
        customer_id=event.customer_id,
        source=event.source,
        lead_score=event.lead_score,
        loss_reason=event.loss_reason,
        qualified=(state is not None and state.qualified) or event.stage in QUALIFIED_STAGES,
    )
    return new, APPLIED


def deal_contributions(state: DealState | None) -> list[Contribution]:
    """Open deals now; won or lost in the period they closed; and, in the period the deal was
    created, the lead it started as (a lead cohort: converted, hot, qualified)."""
    if state is None:
        return []
    dims = rep_dims(state.rep_id, state.team, state.region) + (
        ("product", state.product or UNKNOWN), ("customer", state.customer_id or UNKNOWN),
        ("sector", state.sector or UNKNOWN), ("source", state.source or UNKNOWN))
    lead = {"leads": 1}
    if state.stage == "won":
        lead["leads_converted"] = 1
    if state.lead_score is not None and state.lead_score >= HOT_LEAD_SCORE:
        lead["hot_leads"] = 1
    if state.qualified and state.complete:
        lead["leads_qualified"] = 1
    out = [Contribution(state.created_at, dims, tuple(lead.items())),
           # A deal counts as worked from its creation to its close: window sums of these give
           # the deals open at any time in a period (close_rate's denominator).
           Contribution(state.created_at, dims, (("deals_created", 1),), WINDOW_PERIODS)]
    if state.stage not in CLOSED_STAGES:
        measures = (
            ("open_deals", 1),
            ("open_cents", state.amount_cents),
            ("weighted_cents_bp", state.amount_cents * state.probability_bp),
        )
        return out + [Contribution(None, dims, measures)]
    closed_at = state.closed_at or state.updated_at
    out.append(Contribution(closed_at, dims, (("deals_closed", 1),), WINDOW_PERIODS))
    if state.stage == "won":
        cycle_s = max(0, int((closed_at - state.created_at).total_seconds()))
        won = (("deals_won", 1), ("won_cents", state.amount_cents), ("won_cycle_s", cycle_s))
        return out + [Contribution(closed_at, dims, won)]
    lost = (("deals_lost", 1), ("lost_cents", state.amount_cents))
    return out + [Contribution(closed_at, dims + (("reason", state.loss_reason or UNKNOWN),), lost)]


# --- orders ------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ProductLine:
    """An order's lines of one product, in reporting-currency cents."""

    product: str
    revenue_cents: int
    cost_cents: int
    category: str | None = None  # from the product catalog


@dataclass(frozen=True, slots=True)
class OrderState:
    placed_at: datetime | None = None
    rep_id: str | None = None
    customer_id: str | None = None
    revenue_cents: int = 0  # the sum of its products' revenue
    cost_cents: int = 0
    cancelled_at: datetime | None = None
    seen: tuple[str, ...] = ()
    channel: str | None = None
    products: tuple[ProductLine, ...] = ()
    team: str | None = None  # the rep's when the order was placed (from the directory)
    region: str | None = None
    sector: str | None = None  # the customer's


def next_order_state(
    state: OrderState | None, event_id: str, event: OrderPlaced | OrderCancelled,
    converter: CurrencyConverter,
) -> tuple[OrderState | None, str]:
    """An order is placed once and cancelled once; either may arrive first."""
    current = state or OrderState()
    if event_id in current.seen:
        return state, DUPLICATE
    if isinstance(event, OrderPlaced):
        if current.placed_at is not None:
            return state, DUPLICATE  # the same order placed again under another event id
        products = product_lines(event, converter)
        new = evolve(
            current,
            placed_at=event.placed_at,
            rep_id=event.rep_id,
            customer_id=event.customer_id,
            channel=event.channel,
            products=products,
            revenue_cents=sum(p.revenue_cents for p in products),
            cost_cents=sum(p.cost_cents for p in products),
        )
    else:
        if current.cancelled_at is not None:
            return state, DUPLICATE
        new = evolve(current, cancelled_at=event.cancelled_at, customer_id=current.customer_id or event.customer_id)
    return evolve(new, seen=remember(current.seen, event_id)), APPLIED


def product_lines(event: OrderPlaced, converter: CurrencyConverter) -> tuple[ProductLine, ...]:
    """The order's lines summed per product, each product's amounts rounded to the cent once."""
    revenue: dict[str, Decimal] = {}
    cost: dict[str, Decimal] = {}
    for line in event.lines:
        revenue[line.product] = revenue.get(line.product, 0) + line.quantity * line.unit_price
        cost[line.product] = cost.get(line.product, 0) + line.quantity * line.unit_cost
    return tuple(
        ProductLine(product, to_cents(converter.to_reporting(revenue[product], event.currency)),
                    to_cents(converter.to_reporting(cost[product], event.currency)))
        for product in sorted(revenue))


def order_contributions(state: OrderState | None) -> list[Contribution]:
    """The whole order by rep, team, region, customer, sector and channel; each product's
    share of it by product and category (an order counts once for each product it holds)."""
    if state is None or state.placed_at is None or state.rep_id is None:
        return []
    order_dims = rep_dims(state.rep_id, state.team, state.region) + (
        ("customer", state.customer_id or UNKNOWN), ("sector", state.sector or UNKNOWN),
        ("channel", state.channel or UNKNOWN))
    parts = [(order_dims, state.revenue_cents, state.cost_cents)]
    parts += [((("product", p.product), ("category", p.category or UNKNOWN)), p.revenue_cents, p.cost_cents)
              for p in state.products]
    out = []
    for dims, revenue, cost in parts:
        placed = (("orders", 1), ("revenue_cents", revenue), ("cost_cents", cost))
        out.append(Contribution(state.placed_at, dims, placed))
        if state.cancelled_at is not None:
            # A cancellation (or full return) is booked when it happens: closed periods stay closed.
            reversed_ = tuple((name, -value) for name, value in placed) + (("orders_cancelled", 1),)
            out.append(Contribution(state.cancelled_at, dims, reversed_))
    return out
